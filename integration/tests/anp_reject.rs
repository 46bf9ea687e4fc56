//! Antrea-native Reject through the agent's packet-in handler: xvsd on AF_XDP veths, the
//! agent, three Pods. An ACNP on b (Allow from c, then Reject everything else): a's TCP
//! connect to b is refused at once (a RST, not a timeout), also through a Service whose only
//! endpoint is b (the RST comes from the ClusterIP), a's ping gets "Destination Host
//! Prohibited" (ICMP 3/10), c still reaches b and a still reaches c; removing the policy lets
//! a in again.

use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_integration::agent::{
    connect, echo_server, hello, manifests_dir, node_manifests, node_with_pods, np_log_path, Agent,
};
use xvs_integration::{is_root, Netns};

fn manifests() -> String {
    let mut s = node_manifests();
    // The agent tests' Service web, with pod-b (10.10.0.3) as its only endpoint.
    s.push_str(&xvs_integration::anp_fixture::edit_manifest(
        include_str!("../../ctl/agent/tests/data/web-service.yaml"),
        "- addresses: [10.10.0.4]\n",
        "",
    ));
    s
}

const REJECT_ON_B: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: reject-to-b}
spec:
  priority: 5
  tier: securityops
  appliedTo: [{podSelector: {matchLabels: {app: b}}}]
  ingress:
  - {action: Allow, from: [{podSelector: {matchLabels: {app: c}}}], name: AllowFromC, enableLogging: true}
  - {action: Reject, name: RejectOthers, enableLogging: true, logLabel: reject-label}
"#;

/// A connect from `ns` to `to` must be refused (ECONNREFUSED) well before a timeout.
fn assert_refused(ns: &Netns, to: &str) -> Result<()> {
    let t0 = Instant::now();
    let r = connect(ns, to, Duration::from_secs(3));
    let took = t0.elapsed();
    match r {
        Ok(_) => anyhow::bail!("connect to {to} succeeded; expected a refusal"),
        Err(e) => {
            let kind = e.downcast_ref::<std::io::Error>().map(|e| e.kind());
            assert_eq!(
                kind,
                Some(ErrorKind::ConnectionRefused),
                "connect to {to}: {e:#} after {took:?}"
            );
        }
    }
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    Ok(())
}

/// One ping from `ns`; its output (whatever the exit status).
fn ping(ns: &Netns, to: &str) -> Result<String> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "2",
            to,
        ])
        .output()
        .context("running ping")?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn packet_in_meter_bounds_reject_answers() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let (_node, pods, x) = node_with_pods("rm")?;
    let agent = Agent::start_synced(
        &x,
        &[
            ("00-cluster.yaml", &manifests()),
            ("10-reject.yaml", REJECT_ON_B),
        ],
        &["--packet-in-rate", "2"],
    )?;
    // 50 pings in 0.5 s against 2 packet-ins/s with a burst of 4: a handful answered, the
    // rest dropped by the meter (no answer: plain loss).
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            pods[0].name(),
            "ping",
            "-n",
            "-i",
            "0.01",
            "-c",
            "50",
            "-W",
            "1",
            "10.10.0.3",
        ])
        .output()
        .context("running ping")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let answered = text.matches("Destination Host Prohibited").count();
    eprintln!("{answered} of 50 pings answered under a 2 pps packet-in meter");
    assert!(
        (1..=10).contains(&answered),
        "{answered} answers of 50 under a 2 pps meter:\n{text}\n{}",
        agent.log()
    );
    Ok(())
}

#[test]
fn reject_rule_answers_with_rst_and_icmp_prohibited() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let (_node, pods, x) = node_with_pods("rj")?;
    let np_log = np_log_path(&x);
    let np_log_arg = np_log.display().to_string();
    let agent = Agent::start_synced(
        &x,
        &[("00-cluster.yaml", &manifests())],
        &["--np-log", &np_log_arg],
    )?;
    let (a, b, c) = (&pods[0], &pods[1], &pods[2]);
    let stop = Arc::new(AtomicBool::new(false));
    echo_server(b, "10.10.0.3", 8080, "pod-b", stop.clone())?;
    echo_server(c, "10.10.0.4", 8080, "pod-c", stop.clone())?;
    assert_eq!(
        hello(a, "10.10.0.3:8080").context("a -> b before")?,
        "pod-b"
    );
    assert_eq!(
        hello(a, "10.96.0.10:80").context("a -> Service before")?,
        "pod-b"
    );
    let before = ping(a, "10.10.0.3")?;
    assert!(
        before.contains("1 received"),
        "ping before the policy:\n{before}"
    );

    std::fs::write(manifests_dir(&x).join("10-reject.yaml"), REJECT_ON_B)?;
    agent.wait_log("committed", 2)?;

    let result = (|| -> Result<()> {
        assert_refused(a, "10.10.0.3:8080").context("a -> b")?;
        assert_refused(a, "10.96.0.10:80").context("a -> Service (endpoint b)")?;
        let p = ping(a, "10.10.0.3")?;
        assert!(
            p.contains("Destination Host Prohibited") && p.contains("From 10.10.0.3"),
            "ping a -> b under Reject:\n{p}"
        );
        assert_eq!(
            hello(c, "10.10.0.3:8080").context("c -> b allowed")?,
            "pod-b"
        );
        assert_eq!(
            hello(a, "10.10.0.4:8080").context("a -> c untouched")?,
            "pod-c"
        );
        Ok(())
    })();
    if let Err(e) = result {
        anyhow::bail!("{e:#}\nagent log:\n{}\nxvsd:\n{}", agent.log(), x.stderr());
    }
    // np.log: the Reject lines (TCP per connection, pings merged within 1 s) and the Allow
    // line of c's connection, in Antrea's format. securityops (100), priority 5: rule 0 at
    // 65000 - (200*100 + 20*5) = 44900, rule 1 at 44899.
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(&np_log).context("reading np.log")?;
    let fields = |l: &str| -> Vec<String> { l.split(' ').skip(2).map(String::from).collect() };
    let lines: Vec<Vec<String>> = log.lines().map(fields).collect();
    let has = |want: &[&str]| {
        lines.iter().any(|f| {
            f.len() >= 14
                && want
                    .iter()
                    .enumerate()
                    .all(|(i, w)| w.is_empty() || f[i] == *w)
        })
    };
    eprintln!("np.log:\n{log}");
    let ctx = format!("np.log:\n{log}");
    let reject_tcp = [
        "AntreaPolicyIngressRule",
        "AntreaClusterNetworkPolicy:reject-to-b",
        "RejectOthers",
        "Ingress",
        "Reject",
        "44899",
        "default/pod-b",
        "10.10.0.2",
        "",
        "10.10.0.3",
        "8080",
        "TCP",
        "60",
        "reject-label",
    ];
    assert!(has(&reject_tcp), "TCP reject line; {ctx}");
    let mut reject_icmp = reject_tcp;
    reject_icmp[8] = "<nil>";
    reject_icmp[10] = "<nil>";
    reject_icmp[11] = "ICMP";
    reject_icmp[12] = "84";
    assert!(has(&reject_icmp), "ICMP reject line; {ctx}");
    let allow = [
        "AntreaPolicyIngressRule",
        "AntreaClusterNetworkPolicy:reject-to-b",
        "AllowFromC",
        "Ingress",
        "Allow",
        "44900",
        "default/pod-b",
        "10.10.0.4",
        "",
        "10.10.0.3",
        "8080",
        "TCP",
        "60",
        "<nil>",
    ];
    assert!(has(&allow), "Allow line; {ctx}");
    for l in log.lines() {
        let b = l.as_bytes();
        assert!(
            b.len() > 27 && b[4] == b'/' && b[7] == b'/' && b[13] == b':' && b[19] == b'.',
            "Go log prefix: {l}"
        );
    }
    assert!(
        !agent.log().contains("unanswered"),
        "every reject packet-in answered:\n{}",
        agent.log()
    );

    std::fs::remove_file(manifests_dir(&x).join("10-reject.yaml"))?;
    agent.wait_log("committed", 3)?;
    assert_eq!(hello(a, "10.10.0.3:8080").context("a -> b after")?, "pod-b");
    stop.store(true, Ordering::Relaxed);
    Ok(())
}
