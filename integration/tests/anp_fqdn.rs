//! FQDN egress rules end to end: xvsd on AF_XDP veths, the agent, three Pods. Pod c runs a
//! fake DNS server (UDP, A records with a chosen TTL) and an echo server, Pod b an echo
//! server (the "external" hosts of the names). The doc's acnp-fqdn-all-foobar applies to a
//! (Allow `*foobar.com` TCP 8080, then Drop all egress), with an emergency-tier Allow for DNS
//! so the queries pass. a resolves www.foobar.com with a real UDP query: the answer reaches
//! it only after the agent installed the rule, so its first SYN to the learned address is
//! accepted; port 80 and a name no selector matches stay dropped. The agent runs in the
//! node namespace, which reaches Pod c's DNS server over a side veth (standing in for the
//! host network's path to the cluster DNS): at each expiry it re-queries the name itself,
//! so a client that caches its answer keeps connecting, and when the answer changes the
//! rule follows without any lookup by the Pod. A second test is the doc's
//! acnp-fqdn-headless-service (#23): the name of a headless Service resolves to its Pods'
//! addresses, connections to them are dropped, and the rule follows the endpoints.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xvs_integration::agent::{connect, echo_server, node_manifests, node_with_pods, Agent};
use xvs_integration::{is_root, veth, Netns, Xvsd};

const POLICIES: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: allow-dns}
spec:
  priority: 1
  tier: emergency
  appliedTo: [{podSelector: {matchLabels: {app: a}}}]
  egress:
  - {action: Allow, ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}], name: AllowDNS}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp-fqdn-all-foobar}
spec:
  priority: 1
  appliedTo: [{podSelector: {matchLabels: {app: a}}}]
  egress:
  - action: Allow
    to: [{fqdn: "*foobar.com"}]
    ports: [{protocol: TCP, port: 8080}]
  - action: Drop
"#;

const A_IP: &str = "10.10.0.2";
const B_IP: &str = "10.10.0.3";
const C_IP: &str = "10.10.0.4";

/// The fake DNS server's answers: name → (addresses, TTL); names absent get NXDOMAIN, the
/// name `garbage.foobar.com` gets bytes that are not DNS.
type Zone = Arc<Mutex<HashMap<String, (Vec<Ipv4Addr>, u32)>>>;

/// Sets `name`'s answer.
fn set(zone: &Zone, name: &str, addrs: &[&str], ttl: u32) -> Result<()> {
    let addrs = addrs
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<Ipv4Addr>, _>>()?;
    zone.lock()
        .map_err(|_| anyhow::anyhow!("zone lock"))?
        .insert(name.into(), (addrs, ttl));
    Ok(())
}

/// The question name of a query (labels joined by dots) and where the question ends.
fn query_name(q: &[u8]) -> Option<(String, usize)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(pos)?);
        if len == 0 {
            return Some((labels.join("."), pos + 5));
        }
        labels.push(String::from_utf8_lossy(q.get(pos + 1..pos + 1 + len)?).to_string());
        pos += 1 + len;
    }
}

/// The answer to `q`: the question echoed, then one A record by pointer to it.
fn answer(q: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    let (name, end) = query_name(q)?;
    if name == "garbage.foobar.com" {
        return Some(vec![0xff; 7]);
    }
    let mut r = q.get(..end)?.to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[8..12].fill(0);
    let found = zone.lock().ok()?.get(&name.to_ascii_lowercase()).cloned();
    match found {
        Some((ips, ttl)) => {
            r[6..8].copy_from_slice(&(ips.len() as u16).to_be_bytes());
            for ip in ips {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
                r.extend_from_slice(&ttl.to_be_bytes());
                r.extend_from_slice(&[0, 4]);
                r.extend_from_slice(&ip.octets());
            }
        }
        None => {
            r[6..8].fill(0);
            r[3] = 0x83; // NXDOMAIN
        }
    }
    Some(r)
}

/// A UDP DNS server on `ip:53` in `ns` answering from `zone` until `stop`.
fn dns_server(ns: &Netns, ip: &str, zone: Zone, stop: Arc<AtomicBool>) -> Result<()> {
    let addr = format!("{ip}:53");
    let s = ns.run(move || UdpSocket::bind(addr))??;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                if let Some(r) = answer(&buf[..n], &zone) {
                    let _ = s.send_to(&r, from);
                }
            }
        }
    });
    Ok(())
}

/// A DNS-over-TCP server on `ip:53` in `ns` (2-byte length framing, one query per
/// connection) answering from `zone` until `stop`.
fn dns_tcp_server(ns: &Netns, ip: &str, zone: Zone, stop: Arc<AtomicBool>) -> Result<()> {
    let addr = format!("{ip}:53");
    let l = ns.run(move || TcpListener::bind(addr))??;
    l.set_nonblocking(true)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(r) = answer(&q, &zone) {
                let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&r);
                let _ = s.write_all(&framed);
            }
        }
    });
    Ok(())
}

/// Resolves `name` from `ns` over TCP; the raw answer (without its length prefix).
fn query_tcp(ns: &Netns, server: &str, name: &str) -> Result<Vec<u8>> {
    let mut q = vec![0x43, 0x21, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut s = connect(ns, &format!("{server}:53"), Duration::from_secs(2))?;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .with_context(|| format!("no DNS-over-TCP answer for {name}"))?;
    let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut r)?;
    Ok(r)
}

/// Resolves `name` from Pod a (`ns`) with one UDP query to `server`; the raw answer and the
/// time it took.
fn query(ns: &Netns, server: &str, name: &str) -> Result<(Vec<u8>, Duration)> {
    query_from(ns, A_IP, server, name)
}

/// [`query`] from the Pod with address `src`.
fn query_from(ns: &Netns, src: &str, server: &str, name: &str) -> Result<(Vec<u8>, Duration)> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let server = format!("{server}:53");
    let src = format!("{src}:0");
    let s = ns.run(move || UdpSocket::bind(src))??;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let t0 = Instant::now();
    s.send_to(&q, &server)?;
    let mut buf = [0u8; 512];
    let (n, _) = s
        .recv_from(&mut buf)
        .with_context(|| format!("no DNS answer for {name}"))?;
    Ok((buf[..n].to_vec(), t0.elapsed()))
}

/// The A record address of an answer built by [`answer`].
fn address(r: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = r.get(r.len().checked_sub(4)?..)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// A connect that must succeed on the first SYN (a retransmission comes after 1 s).
fn first_syn_connects(ns: &Netns, to: &str) -> Result<()> {
    connect(ns, to, Duration::from_millis(900))
        .map(drop)
        .with_context(|| format!("{to} not reached on the first SYN"))
}

fn dropped(ns: &Netns, to: &str) -> Result<()> {
    match connect(ns, to, Duration::from_millis(700)) {
        Ok(_) => bail!("connect to {to} succeeded; expected a drop"),
        Err(_) => Ok(()),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The node, its Pods a, b, c with echo servers on b and c (8080, 80) and Pod c's DNS
/// servers (UDP and TCP), and the agent in the node namespace, which reaches c's address over
/// a side veth (node 169.254.53.1/30, c 169.254.53.2/30, a /32 route to c through it).
struct Setup {
    agent: Agent,
    x: Xvsd,
    pods: Vec<Netns>,
    _node: Netns,
    zone: Zone,
    stop: Arc<AtomicBool>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn setup(prefix: &str, manifests: &str) -> Result<Setup> {
    let (node, pods, x) = node_with_pods(prefix)?;
    let c = &pods[2];
    veth(&node, "dns0", "02:00:00:00:53:01", c, "side0")?;
    node.ip(&["addr", "add", "169.254.53.1/30", "dev", "dns0"])?;
    c.ip(&["addr", "add", "169.254.53.2/30", "dev", "side0"])?;
    node.ip(&["route", "add", &format!("{C_IP}/32"), "via", "169.254.53.2"])?;
    let dir = x.run_dir().join("manifests");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("00-cluster.yaml"), node_manifests())?;
    std::fs::write(dir.join("10-fqdn.yaml"), manifests)?;
    let socket = x.run_dir().join("br-int.mgmt");
    let agent = Agent::start_in(&node, &dir, &socket, &x.run_dir().join("agent.log"), &[])?;
    agent.wait_log("in sync", 1)?;
    let stop = Arc::new(AtomicBool::new(false));
    let zone: Zone = Arc::default();
    dns_server(c, C_IP, zone.clone(), stop.clone())?;
    dns_tcp_server(c, C_IP, zone.clone(), stop.clone())?;
    for port in [8080, 80] {
        echo_server(&pods[1], B_IP, port, "pod-b", stop.clone())?;
        echo_server(c, C_IP, port, "pod-c", stop.clone())?;
    }
    Ok(Setup {
        agent,
        x,
        pods,
        _node: node,
        zone,
        stop,
    })
}

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

#[test]
fn fqdn_rule_learns_from_paused_dns_answers_and_requeries() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let st = setup("fq", POLICIES)?;
    let (a, b, agent, zone) = (&st.pods[0], &st.pods[1], &st.agent, &st.zone);
    let ttl = 3;
    set(zone, "www.foobar.com", &[B_IP], ttl)?;
    set(zone, "evil.com", &[C_IP], 60)?;

    let result = (|| -> Result<()> {
        dropped(a, &format!("{B_IP}:8080")).context("before any lookup")?;
        let (r, _) = query(a, C_IP, "www.foobar.com")?;
        let learned_at = Instant::now();
        assert_eq!(
            address(&r),
            Some(B_IP.parse()?),
            "answer for www.foobar.com"
        );
        first_syn_connects(a, &format!("{B_IP}:8080")).context("right after the lookup")?;
        dropped(a, &format!("{B_IP}:80")).context("port 80 not allowed")?;
        let (r, _) = query(a, C_IP, "evil.com")?;
        assert_eq!(address(&r), Some(C_IP.parse()?));
        dropped(a, &format!("{C_IP}:8080")).context("evil.com matches no selector")?;
        // Not DNS: resumed as is (the client gets the bytes), counted as a parse failure.
        let (r, _) = query(a, C_IP, "garbage.foobar.com")?;
        assert_eq!(r, vec![0xff; 7]);
        agent.wait_log("parse failures 1", 1)?;

        // A client that keeps its answer past the TTL: at the expiry the agent asks the
        // Pod's DNS server itself, the answer still lists B, and B stays allowed.
        agent.wait_log("re-query www.foobar.com at 10.10.0.4:53", 1)?;
        sleep_until(learned_at + Duration::from_millis(4000));
        first_syn_connects(a, &format!("{B_IP}:8080"))
            .context("cached answer after its TTL (the re-query kept it)")?;

        // The answer changes: the next re-query (at about 6 s) learns C and drops the
        // expired B, with no lookup by the Pod.
        set(zone, "www.foobar.com", &[C_IP], 30)?;
        agent.wait_log("re-query answer from 10.10.0.4:53: www.foobar.com", 1)?;
        sleep_until(learned_at + Duration::from_millis(7500));
        first_syn_connects(a, &format!("{C_IP}:8080")).context("new address, re-queried")?;
        dropped(a, &format!("{B_IP}:8080")).context("old address after its TTL")?;
        let (r, _) = query(a, C_IP, "www.foobar.com")?;
        assert_eq!(address(&r), Some(C_IP.parse()?));

        // Over TCP: the handshake segments are resumed at once, the answer after the flows.
        set(zone, "tcp.foobar.com", &[B_IP], 60)?;
        let r = query_tcp(a, C_IP, "tcp.foobar.com")?;
        assert_eq!(address(&r), Some(B_IP.parse()?), "answer over TCP");
        first_syn_connects(a, &format!("{B_IP}:8080")).context("after a TCP lookup")?;
        Ok(())
    })();
    if let Err(e) = result {
        bail!(
            "{e:#}\nagent log:\n{}\nxvsd:\n{}",
            agent.log(),
            st.x.stderr()
        );
    }

    // Latency: 20 lookups that each teach a new address (one bundle each), 20 that teach
    // nothing (paused, resumed at once), and 20 from b, which no FQDN rule applies to (not
    // intercepted).
    let mut learning = Vec::new();
    let mut plain = Vec::new();
    let mut unpaused = Vec::new();
    for i in 0..20u8 {
        let name = format!("n{i}.foobar.com");
        set(zone, &name, &[&format!("10.20.0.{}", i + 1)], 60)?;
        learning.push(query(a, C_IP, &name)?.1);
        plain.push(query(a, C_IP, "evil.com")?.1);
        unpaused.push(query_from(b, B_IP, C_IP, "evil.com")?.1);
    }
    let log = agent.log();
    let mut agent_side: Vec<Duration> = log
        .lines()
        .filter_map(|l| l.split("resumed 1 after ").nth(1))
        .filter_map(|rest| rest.split("us").next()?.parse().ok())
        .map(Duration::from_micros)
        .collect();
    eprintln!(
        "DNS answer latency, median of 20: learning {:?} (agent: packet-in to resume {:?}), teaching nothing {:?}, not intercepted {:?}",
        median(&mut learning),
        median(&mut agent_side),
        median(&mut plain),
        median(&mut unpaused)
    );
    Ok(())
}

/// The doc's acnp-fqdn-headless-service (#23), with the headless Service it names: Pod a
/// may not reach the Pods behind `svcA.default.svc.cluster.local`. The DNS server (standing
/// in for the cluster DNS) answers the Service's name with its endpoints' Pod addresses.
const HEADLESS: &str = r#"apiVersion: v1
kind: Service
metadata: {name: svcA, namespace: default}
spec:
  clusterIP: None
  selector: {app: b}
  ports: [{protocol: TCP, port: 8080}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp-fqdn-headless-service}
spec:
  priority: 1
  appliedTo: [{podSelector: {matchLabels: {app: a}}}]
  egress:
  - action: Drop
    to: [{fqdn: "svcA.default.svc.cluster.local"}]
"#;

#[test]
fn fqdn_rule_follows_a_headless_services_pods() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let st = setup("fh", HEADLESS)?;
    let (a, b, agent, zone) = (&st.pods[0], &st.pods[1], &st.agent, &st.zone);
    let name = "svca.default.svc.cluster.local";
    set(zone, name, &[B_IP, C_IP], 4)?;
    let result = (|| -> Result<()> {
        first_syn_connects(a, &format!("{B_IP}:8080")).context("before any lookup")?;
        let (r, _) = query(a, C_IP, "svcA.default.svc.cluster.local")?;
        let learned_at = Instant::now();
        assert_eq!(r[7], 2, "two A records (the Service's two Pods)");
        dropped(a, &format!("{B_IP}:8080")).context("Pod b behind svcA")?;
        dropped(a, &format!("{C_IP}:8080")).context("Pod c behind svcA")?;
        // Pods the rule does not apply to are unaffected.
        first_syn_connects(b, &format!("{C_IP}:8080")).context("b is not applied")?;

        // Pod c leaves the Service (the DNS server stops listing it): after the re-query
        // at the TTL, c is reachable again and b stays dropped, without a lookup by a.
        set(zone, name, &[B_IP], 4)?;
        agent.wait_log(&format!("re-query answer from {C_IP}:53: {name}"), 1)?;
        sleep_until(learned_at + Duration::from_millis(5000));
        first_syn_connects(a, &format!("{C_IP}:8080")).context("c left svcA")?;
        dropped(a, &format!("{B_IP}:8080")).context("b still behind svcA")?;

        // c joins again: the next re-query (about 8 s) drops it again.
        set(zone, name, &[B_IP, C_IP], 4)?;
        agent.wait_log(&format!("re-query answer from {C_IP}:53: {name}"), 2)?;
        sleep_until(learned_at + Duration::from_millis(9000));
        dropped(a, &format!("{C_IP}:8080")).context("c back in svcA")?;
        Ok(())
    })();
    if let Err(e) = result {
        bail!(
            "{e:#}\nagent log:\n{}\nxvs:\n{}",
            agent.log(),
            st.x.stderr()
        );
    }
    Ok(())
}
