//! np.log end to end: xvsd on AF_XDP veths, the agent, three Pods named after the Antrea
//! document's (`nettool` = a, `nettoolv3` = b, `other` = c). The policies of the document's
//! logging section reproduce its five example lines from real traffic, checked field by field
//! (all but time, addresses and source port equal the document's); an ACNP Allow with a
//! logLabel writes one line per TCP connection (issue 9 case #13); and packet-ins above the
//! agent's rate are dropped by the `meter:256,controller(...)` flow (traffic still flows, lines
//! are missing), counted by the meter as `ovs-ofctl meter-stats` shows.

use anyhow::{Context, Result};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_integration::agent::{
    echo_server, hello, node_manifests, node_with_pods, np_log_path, Agent,
};
use xvs_integration::{is_root, Netns, Xvsd};

/// The document's example lines (its §"Audit logging"; Antrea issue 9 spec §5).
const DOC_LINES: [&str; 5] = [
    "2023/07/04 12:45:21.804416 IngressDefaultRule AntreaNetworkPolicy:default/reject-tcp-policy RejectTCPRequest Ingress Reject 16 default/nettoolv3 10.10.1.7 53646 10.10.1.14 80 TCP 60 tcp-log-label",
    "2023/07/03 23:24:36.422233 AntreaPolicyEgressRule AntreaNetworkPolicy:default/reject-icmp-policy RejectICMPRequest Egress Reject 14500 default/nettool 10.10.1.7 <nil> 10.10.2.3 <nil> ICMP 84 icmp-log-label",
    "2023/07/03 23:24:37.424024 AntreaPolicyEgressRule AntreaNetworkPolicy:default/reject-icmp-policy RejectICMPRequest Egress Reject 14500 default/nettool 10.10.1.7 <nil> 10.10.2.3 <nil> ICMP 84 icmp-log-label [2 packets in 1.000855539s]",
    "2023/07/04 12:31:02.801442 IngressRule K8sNetworkPolicy:default/allow-tcp-80 <nil> Ingress Allow 190 default/nettool 10.10.1.13 57050 10.10.1.7 80 TCP 60 <nil>",
    "2023/07/04 12:33:26.221413 IngressDefaultRule K8sNetworkPolicy <nil> Ingress Drop <nil> default/nettool 10.10.1.13 <nil> 10.10.1.7 <nil> ICMP 84 <nil>",
];

const A: &str = "10.10.0.2";
const B: &str = "10.10.0.3";
const C: &str = "10.10.0.4";

/// The node manifests with the Pods renamed after the document's and the logging annotation
/// on the default Namespace.
fn manifests() -> String {
    let s = node_manifests()
        .replace("name: pod-a", "name: nettool")
        .replace("name: pod-b", "name: nettoolv3")
        .replace("name: pod-c", "name: other");
    let ns = "kind: Namespace\nmetadata: {name: default}\n";
    assert!(s.contains(ns), "node_manifests() changed its Namespace");
    s.replace(
        ns,
        "kind: Namespace\nmetadata:\n  name: default\n  annotations: {networkpolicy.antrea.io/enable-logging: \"true\"}\n",
    )
}

/// The document's logging policies on this node's Pods, and #13's ACNP on `other`.
const POLICIES: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: reject-icmp-policy, namespace: default}
spec:
  tier: application
  priority: 5
  appliedTo: [{podSelector: {matchLabels: {app: a}}}]
  egress:
  - action: Reject
    name: RejectICMPRequest
    enableLogging: true
    logLabel: icmp-log-label
    protocols: [{icmp: {icmpType: 8, icmpCode: 0}}]
    to: [{podSelector: {matchLabels: {app: c}}}]
---
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: reject-tcp-policy, namespace: default}
spec:
  tier: baseline
  priority: 16.4
  appliedTo: [{podSelector: {matchLabels: {app: b}}}]
  ingress:
  - action: Reject
    name: RejectTCPRequest
    enableLogging: true
    logLabel: tcp-log-label
    ports: [{protocol: TCP, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-tcp-80, namespace: default}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress]
  ingress:
  - ports: [{protocol: TCP, port: 80}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp-with-log-setting}
spec:
  priority: 5
  tier: securityops
  appliedTo: [{podSelector: {matchLabels: {app: c}}}]
  ingress:
  - action: Allow
    name: AllowFromFrontend
    enableLogging: true
    logLabel: frontend-allowed
    from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{protocol: TCP, port: 80}]
"#;

/// `ping -c count -i interval` from `ns`; its output (whatever the exit status).
fn ping(ns: &Netns, to: &str, count: u32, interval: &str) -> Result<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "ping", "-n", "-W", "1", "-i"])
        .arg(interval)
        .arg("-c")
        .arg(count.to_string())
        .arg(to)
        .output()
        .context("running ping")?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The spec's line regex, by hand:
/// `^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} (\S+ ){13}\S+( \[\d+ packets in [0-9.]+(ns|µs|ms|s)\])?$`.
/// Returns the 14 fields and the `[N packets in D]` count, if any.
fn parse_line(line: &str) -> Option<(Vec<&str>, Option<u64>)> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (date, rest) = line.split_once(' ')?;
    let (time, rest) = rest.split_once(' ')?;
    let d: Vec<&str> = date.split('/').collect();
    if d.len() != 3 || !digits(d[0], 4) || !digits(d[1], 2) || !digits(d[2], 2) {
        return None;
    }
    let (hms, micros) = time.split_once('.')?;
    let t: Vec<&str> = hms.split(':').collect();
    if t.len() != 3 || !t.iter().all(|x| digits(x, 2)) || !digits(micros, 6) {
        return None;
    }
    let (message, count) = match rest.split_once(" [") {
        None => (rest, None),
        Some((m, suffix)) => {
            let inner = suffix.strip_suffix(']')?;
            let (n, took) = inner.split_once(" packets in ")?;
            let number = ["ns", "µs", "ms", "s"]
                .iter()
                .find_map(|u| took.strip_suffix(u))?;
            if n.is_empty()
                || !n.bytes().all(|b| b.is_ascii_digit())
                || number.is_empty()
                || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            {
                return None;
            }
            (m, Some(n.parse().ok()?))
        }
    };
    let fields: Vec<&str> = message.split(' ').collect();
    if fields.len() != 14 || fields.iter().any(|f| f.is_empty()) {
        return None;
    }
    Some((fields, count))
}

/// Field indexes (of the 14) that vary with the cluster: source IP, source port, destination
/// IP.
const SRC_IP: usize = 7;
const SRC_PORT: usize = 8;
const DST_IP: usize = 9;

/// The lines of `log` whose fields equal `doc`'s but for the addresses (which must be `src`
/// and `dst`) and, when the document shows one, the source port.
fn matching<'l>(
    log: &'l [(Vec<&'l str>, Option<u64>)],
    doc: &str,
    src: &str,
    dst: &str,
) -> Vec<&'l (Vec<&'l str>, Option<u64>)> {
    let (want, _) = parse_line(doc).expect("the document's line parses");
    log.iter()
        .filter(|(f, _)| {
            (0..14).all(|i| match i {
                SRC_IP => f[i] == src,
                DST_IP => f[i] == dst,
                SRC_PORT if want[i] != "<nil>" => f[i].parse::<u16>().is_ok(),
                _ => f[i] == want[i],
            })
        })
        .collect()
}

#[test]
fn np_log_reproduces_the_documents_lines_from_real_traffic() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    for doc in DOC_LINES {
        assert!(parse_line(doc).is_some(), "the checker accepts {doc}");
    }
    let (_node, pods, x) = node_with_pods("lg")?;
    let np_log = np_log_path(&x);
    let np_log_arg = np_log.display().to_string();
    let agent = Agent::start_synced(
        &x,
        &[
            ("00-cluster.yaml", &manifests()),
            ("10-policies.yaml", POLICIES),
        ],
        &["--np-log", &np_log_arg, "--packet-in-rate", "1000"],
    )?;
    let (a, b, c) = (&pods[0], &pods[1], &pods[2]);
    let stop = Arc::new(AtomicBool::new(false));
    echo_server(a, A, 80, "pod-a", stop.clone())?;
    echo_server(b, B, 80, "pod-b", stop.clone())?;
    echo_server(c, C, 80, "pod-c", stop.clone())?;

    let traffic = (|| -> Result<String> {
        // allow-tcp-80: other -> nettool:80 allowed (K8s NP, logged by the annotation).
        assert_eq!(
            hello(c, &format!("{A}:80")).context("other -> nettool:80")?,
            "pod-a"
        );
        // The default drop of the isolated nettool: other's ping is not answered.
        let p = ping(c, A, 1, "1")?;
        assert!(
            p.contains("0 received"),
            "other -> nettool ping dropped:\n{p}"
        );
        // reject-tcp-policy (baseline): nettool -> nettoolv3:80 refused.
        assert!(
            hello(a, &format!("{B}:80")).is_err(),
            "nettool -> nettoolv3:80 rejected"
        );
        // acnp-with-log-setting (#13): three connections nettool -> other:80, one Allow line
        // each; nettoolv3 -> other:80 matches no logged rule.
        for _ in 0..3 {
            assert_eq!(
                hello(a, &format!("{C}:80")).context("nettool -> other:80")?,
                "pod-c"
            );
        }
        assert_eq!(
            hello(b, &format!("{C}:80")).context("nettoolv3 -> other:80")?,
            "pod-c"
        );
        // reject-icmp-policy: a ping every 0.5 s for 2.5 s, each answered "prohibited".
        let p = ping(a, C, 6, "0.5")?;
        assert_eq!(
            p.matches("Destination Host Prohibited").count(),
            6,
            "nettool -> other pings rejected:\n{p}"
        );
        Ok(p)
    })();
    stop.store(true, Ordering::Relaxed);
    if let Err(e) = traffic {
        anyhow::bail!("{e:#}\nagent log:\n{}\nxvsd:\n{}", agent.log(), x.stderr());
    }
    // The last dedup window closes 1 s after the last ping.
    std::thread::sleep(Duration::from_millis(1600));
    let text = std::fs::read_to_string(&np_log).context("reading np.log")?;
    eprintln!("np.log:\n{text}");
    let ctx = format!("np.log:\n{text}\nagent log:\n{}", agent.log());
    let mut log = Vec::new();
    for l in text.lines() {
        log.push(parse_line(l).with_context(|| format!("malformed np.log line {l:?}; {ctx}"))?);
    }

    // Line 1: the baseline Reject of nettool -> nettoolv3:80, once (one connection).
    let tcp_reject = matching(&log, DOC_LINES[0], A, B);
    assert_eq!(tcp_reject.len(), 1, "reject-tcp-policy line; {ctx}");
    assert_eq!(tcp_reject[0].1, None, "one SYN, not merged; {ctx}");
    // Lines 2 and 3: the pings, merged per 1 s window: every window's line is the document's
    // message, plain for 1 packet, `[N packets in D]` for more; together all 6 pings.
    let icmp = matching(&log, DOC_LINES[1], A, C);
    let pings: u64 = icmp.iter().map(|(_, n)| n.unwrap_or(1)).sum();
    assert_eq!(pings, 6, "every rejected ping counted once; {ctx}");
    assert!(
        icmp.iter()
            .all(|(_, n)| n.is_none_or(|n| (2..=3).contains(&n))),
        "2 pings (3 at most, by phase) per 1 s window; {ctx}"
    );
    assert!(
        (2..=4).contains(&icmp.len()),
        "2.5 s of pings in 1 s windows; {ctx}"
    );
    assert!(
        icmp.iter().any(|(_, n)| n.is_some()),
        "a merged `[N packets in D]` line like the document's third; {ctx}"
    );
    // Line 4: the K8s NP Allow of other -> nettool:80, one connection.
    let k8s_allow = matching(&log, DOC_LINES[3], C, A);
    assert_eq!(k8s_allow.len(), 1, "allow-tcp-80 line; {ctx}");
    // Line 5: the K8s default drop of other's ping.
    let k8s_drop = matching(&log, DOC_LINES[4], C, A);
    assert_eq!(k8s_drop.len(), 1, "K8s default drop line; {ctx}");
    assert_eq!(k8s_drop[0].1, None, "one ping; {ctx}");
    // #13: one Allow line per connection, each with its own source port.
    let acnp_doc = "2023/07/04 12:00:00.000000 AntreaPolicyIngressRule AntreaClusterNetworkPolicy:acnp-with-log-setting AllowFromFrontend Ingress Allow 44900 default/other 10.10.1.7 1 10.10.1.8 80 TCP 60 frontend-allowed";
    let acnp = matching(&log, acnp_doc, A, C);
    let mut ports: Vec<&str> = acnp.iter().map(|(f, _)| f[SRC_PORT]).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(
        (acnp.len(), ports.len()),
        (3, 3),
        "one line per connection; {ctx}"
    );
    // Nothing else: nettoolv3 -> other is not logged.
    let expected = tcp_reject.len() + icmp.len() + k8s_allow.len() + k8s_drop.len() + acnp.len();
    assert_eq!(log.len(), expected, "no other lines; {ctx}");
    Ok(())
}

/// Sends `n` UDP datagrams from `from` to `to`, each from a new socket (a new source port:
/// a new connection, so each one reaches the logged rule), spread over about `over`.
fn udp_connections(from: &Netns, to: &'static str, n: u32, over: Duration) -> Result<u32> {
    from.run(move || -> Result<u32> {
        let gap = over / n;
        let start = Instant::now();
        let mut sent = 0;
        for i in 0..n {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.send_to(b"hello", to)?;
            sent += 1;
            let next = start + gap * (i + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(sent)
    })?
}

const LOG_UDP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: log-udp}
spec:
  priority: 5
  tier: securityops
  appliedTo: [{podSelector: {matchLabels: {app: c}}}]
  ingress:
  - {action: Allow, name: AllowUdp, enableLogging: true, from: [{podSelector: {matchLabels: {app: a}}}], ports: [{protocol: UDP, port: 5353}]}
"#;

/// The `packet_count` of meter 256's band and its `packet_in_count`, from `ovs-ofctl
/// meter-stats`.
fn meter_256(x: &Xvsd) -> Result<(u64, u64)> {
    let text = x.ofctl(&[], "meter-stats", &[])?;
    let block = text
        .split("meter:")
        .find(|b| b.starts_with("256 "))
        .with_context(|| format!("meter 256 in {text}"))?;
    let num = |key: &str| -> Result<u64> {
        let rest = block
            .split(key)
            .nth(1)
            .with_context(|| format!("{key} in {block}"))?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Ok(digits.parse()?)
    };
    Ok((num("packet_in_count:")?, num("0: packet_count:")?))
}

#[test]
fn packet_ins_above_the_rate_are_dropped_by_the_meter_and_traffic_still_flows() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let (_node, pods, x) = node_with_pods("lm")?;
    let np_log = np_log_path(&x);
    let np_log_arg = np_log.display().to_string();
    // 20 packet-ins/s, burst 40.
    let agent = Agent::start_synced(
        &x,
        &[
            ("00-cluster.yaml", &manifests()),
            ("10-policies.yaml", LOG_UDP),
        ],
        &["--np-log", &np_log_arg, "--packet-in-rate", "20"],
    )?;
    let flows = x.ofctl(&[], "dump-flows", &[])?;
    assert!(
        flows.contains("actions=meter:256,controller(") && !flows.contains("meter_id="),
        "Antrea's meter:256,controller(...) form:\n{flows}"
    );
    let (c, a) = (&pods[2], &pods[0]);
    let receiver = c.run(|| UdpSocket::bind(format!("{C}:5353")))??;
    receiver.set_read_timeout(Some(Duration::from_millis(500)))?;
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut got = 0u32;
        while receiver.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    // 300 new connections in 1 s: 300 packet-ins asked for, about 40 + 20 let through.
    let start = Instant::now();
    let sent = udp_connections(a, "10.10.0.4:5353", 300, Duration::from_secs(1))?;
    // The most the meter may let through: the burst plus the rate over the sending time
    // (longer than 1 s on a loaded machine), plus one for rounding.
    let most = 40 + (20.0 * start.elapsed().as_secs_f64()).ceil() as u64 + 1;
    let received = counter
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&np_log).context("reading np.log")?;
    let lines = text
        .lines()
        .filter(|l| l.contains(" AntreaClusterNetworkPolicy:log-udp AllowUdp "))
        .count() as u64;
    let (metered, band_drops) = meter_256(&x)?;
    let ctx = format!(
        "sent {sent} received {received} lines {lines} meter packets {metered} band drops {band_drops}\nagent log:\n{}",
        agent.log()
    );
    eprintln!("{ctx}");
    assert_eq!(received, sent, "traffic is not policed; {ctx}");
    assert_eq!(
        metered,
        u64::from(sent),
        "every new connection met the meter; {ctx}"
    );
    assert!(
        (40..=most).contains(&lines),
        "about burst + rate × sending time lines; {ctx}"
    );
    assert_eq!(
        lines + band_drops,
        u64::from(sent),
        "every packet-in the meter passed is a line; {ctx}"
    );
    Ok(())
}

/// A logged Pass (Antrea's conjunctionActionPassFlow with logging): the packet goes on to the
/// K8s NetworkPolicy tables and a copy to the agent, which writes a `Pass` line.
const PASS_LOGGED: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: pass-logged}
spec:
  priority: 5
  tier: securityops
  appliedTo: [{podSelector: {matchLabels: {app: b}}}]
  ingress:
  - {action: Pass, name: PassToK8s, enableLogging: true, logLabel: pass-label, from: [{podSelector: {matchLabels: {app: a}}}], ports: [{protocol: TCP, port: 80}]}
  - {action: Drop, name: DropOthers, ports: [{protocol: TCP, port: 80}]}
"#;

#[test]
fn a_logged_pass_writes_a_pass_line_and_a_full_np_log_is_rotated() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let (_node, pods, x) = node_with_pods("lp")?;
    let np_log = np_log_path(&x);
    let np_log_arg = np_log.display().to_string();
    // np.log 100 bytes short of the 1 MB limit: the first line rotates it.
    std::fs::create_dir_all(x.run_dir().join("networkpolicy"))?;
    let old_line = format!("{}\n", "o".repeat(99));
    let filler = old_line.repeat((1024 * 1024 - 100) / 100);
    std::fs::write(&np_log, &filler)?;
    let agent = Agent::start_synced(
        &x,
        &[
            ("00-cluster.yaml", &manifests()),
            ("10-policies.yaml", PASS_LOGGED),
        ],
        &[
            "--np-log",
            &np_log_arg,
            "--packet-in-rate",
            "1000",
            "--np-log-max-size",
            "1",
        ],
    )?;
    let (a, b, c) = (&pods[0], &pods[1], &pods[2]);
    let stop = Arc::new(AtomicBool::new(false));
    echo_server(b, B, 80, "pod-b", stop.clone())?;
    let traffic = (|| -> Result<()> {
        // Passed (nothing in the K8s tables isolates nettoolv3): two connections get through.
        for _ in 0..2 {
            assert_eq!(
                hello(a, &format!("{B}:80")).context("nettool -> nettoolv3:80")?,
                "pod-b"
            );
        }
        // Not passed: other -> nettoolv3:80 meets the Drop after the Pass (not logged).
        assert!(
            hello(c, &format!("{B}:80")).is_err(),
            "other -> nettoolv3:80 dropped"
        );
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    if let Err(e) = traffic {
        anyhow::bail!("{e:#}\nagent log:\n{}\nxvsd:\n{}", agent.log(), x.stderr());
    }
    // Pass lines are deduplicated like Drop/Reject: written when the 1 s window closes.
    std::thread::sleep(Duration::from_millis(1600));
    let text = std::fs::read_to_string(&np_log).context("reading np.log")?;
    let ctx = format!("np.log:\n{text}\nagent log:\n{}", agent.log());
    let mut log = Vec::new();
    for l in text.lines() {
        log.push(parse_line(l).with_context(|| format!("malformed np.log line {l:?}; {ctx}"))?);
    }
    // securityops p5 rule 0: OF priority 44900.
    let pass_doc = "2023/07/04 12:00:00.000000 AntreaPolicyIngressRule AntreaClusterNetworkPolicy:pass-logged PassToK8s Ingress Pass 44900 default/nettoolv3 10.10.1.7 1 10.10.1.8 80 TCP 60 pass-label";
    let pass = matching(&log, pass_doc, A, B);
    let mut ports: Vec<&str> = pass.iter().map(|(f, _)| f[SRC_PORT]).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(
        (pass.len(), ports.len()),
        (2, 2),
        "one Pass line per connection; {ctx}"
    );
    assert!(
        pass.iter().all(|(_, n)| n.is_none()),
        "one SYN per connection, not merged; {ctx}"
    );
    assert_eq!(log.len(), 2, "nothing else is logged; {ctx}");
    // The full file went to a gzipped backup named as lumberjack does (np-<UTC time>.log.gz).
    // (compressed on the agent's clean-up thread: give it a moment on a loaded machine)
    let list = || -> Result<Vec<std::path::PathBuf>> {
        Ok(std::fs::read_dir(x.run_dir().join("networkpolicy"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p != &np_log)
            .collect())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut backups = list()?;
    while !backups
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "gz"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        backups = list()?;
    }
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with("np-20") && name.ends_with(".log.gz") && name.len() == 33,
        "{name}"
    );
    let gz = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&backups[0])
        .output()?;
    assert!(gz.status.success(), "gzip -dc {name}");
    assert!(
        gz.stdout == filler.as_bytes(),
        "the backup holds the old lines"
    );
    Ok(())
}
