//! xvsd with two workers, pod-a's port polled by one and pod-b's and pod-c's by the other,
//! running the Antrea conntrack pipeline (deploy/examples/antrea-ct.flows): every packet
//! between them is forwarded by one worker and transmitted by the other through the
//! workers' handoff rings, and conntrack sees the two directions of a connection on
//! different workers. Numbered UDP arrives intact both ways, a TCP exchange and iperf3 work,
//! the stateful policy still holds (b cannot open to a), and nothing is counted
//! `remote_port`.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::time::Duration;
use xvs_integration::agent::connect;
use xvs_integration::udp::{bound_socket, expect_all, expect_none};
use xvs_integration::{example_pods, is_root, Xvsd};

const FLOWS: &str = include_str!("../../deploy/examples/antrea-ct.flows");

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0, 1]
forwarding = "openflow"
flows = "@DIR@/pipeline.flows"
pmd_sleep_max_us = 100

[conntrack]
max_connections = 100000

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1
worker = 0

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2
worker = 1

[[port]]
name = "pc0"
type = "afxdp"
ofport = 3
worker = 1
"#;

/// Per worker (in order): its `remote_port` drops and the packets it transmitted, from
/// `xvs/stats`.
fn worker_stats(x: &Xvsd) -> Result<Vec<(u64, u64)>> {
    let v: serde_json::Value = serde_json::from_str(&x.appctl(&["xvs/stats"])?)?;
    let workers = v["workers"]
        .as_array()
        .context("xvs/stats has no workers")?;
    Ok(workers
        .iter()
        .map(|w| {
            (
                w["drops"]["remote_port"].as_u64().unwrap_or(u64::MAX),
                w["tx_packets"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

#[test]
fn two_workers_forward_between_each_others_ports() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let (node, pods) = example_pods("xw")?;
    let mut x = Xvsd::start_with(&node, CONFIG, &[("pipeline.flows", FLOWS)])?;
    let (a, b) = (&pods[0], &pods[1]);
    let show = x.appctl(&["dpif/show"])?;
    assert!(show.contains("pa0") && show.contains("pb0"), "{show}");

    // Numbered UDP, both directions (a opens; b's datagrams are replies to the tracked flow).
    let a1 = bound_socket(&a.ns, format!("{}:7001", a.ip))?;
    let b1 = bound_socket(&b.ns, format!("{}:7001", b.ip))?;
    expect_all(
        &a1,
        &b1,
        "10.10.0.3:7001",
        500,
        "a -> b udp/7001, worker 0 -> 1",
    )
    .with_context(|| x.appctl(&["xvs/stats"]).unwrap_or_default())?;
    expect_all(
        &b1,
        &a1,
        "10.10.0.2:7001",
        500,
        "b -> a replies, worker 1 -> 0",
    )?;
    // The stateful policy: b may not open a new flow to the isolated a.
    let b2 = bound_socket(&b.ns, format!("{}:7002", b.ip))?;
    let a2 = bound_socket(&a.ns, format!("{}:7002", a.ip))?;
    expect_none(&b2, &a2, "10.10.0.2:7002", 50, "b -> a new udp")?;

    // TCP: the SYN goes through worker 0, the SYN-ACK through worker 1.
    let lb = b.ns.run({
        let addr = format!("{}:7001", b.ip);
        move || std::net::TcpListener::bind(addr)
    })??;
    let server = std::thread::spawn(move || -> Result<Vec<u8>> {
        let (mut s, _) = lb.accept()?;
        let mut v = vec![0u8; 5];
        s.read_exact(&mut v)?;
        s.write_all(b"world")?;
        Ok(v)
    });
    let mut s = connect(&a.ns, "10.10.0.3:7001", Duration::from_secs(3))
        .context("a -> b tcp/7001 must connect across workers")?;
    s.write_all(b"hello")?;
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply)?;
    assert_eq!(&reply, b"world");
    assert_eq!(server.join().expect("server")?, b"hello");

    // A bulk transfer across the workers.
    let bytes =
        xvs_integration::iperf3_tcp_bytes(&b.ns, b.ip, &a.ns, 2).with_context(|| x.stderr())?;
    assert!(bytes > 1_000_000, "iperf3 moved only {bytes} bytes");
    eprintln!("iperf3 across two workers: {bytes} bytes in 2 s (debug build, shared machine)");

    let stats = worker_stats(&x)?;
    assert_eq!(stats.len(), 2, "{stats:?}");
    for (i, (remote, tx)) in stats.iter().enumerate() {
        assert_eq!(
            *remote, 0,
            "worker {i} counted remote_port drops: {stats:?}"
        );
        assert!(*tx >= 500, "worker {i} transmitted only {tx}: {stats:?}");
    }
    x.stop()?;
    Ok(())
}
