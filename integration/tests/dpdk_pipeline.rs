//! xvsd on DPDK ports in namespaces: the Antrea-style pipeline (deploy/examples/antrea-lite.flows)
//! with pod-a behind a DPDK `net_af_packet` vdev, pod-b behind a DPDK `net_af_xdp` vdev and
//! pod-c on xvs's own AF_XDP socket, all on one worker and one frame pool: exact delivery of
//! allowed traffic between every pair of backends, nothing of denied traffic, routed traffic
//! rewritten, clean exit (no XDP program, no DPDK runtime directory); clear errors when EAL
//! or a port fails; and a `net_ring` port (no interface behind it) with its two queues on two
//! workers, carrying pod traffic between two AF_XDP ports.
//!
//! Needs root and an xvsd built with `--features dpdk` (`cargo build -p xvsd --features dpdk`).
//! EAL runs with `--no-huge`, so no hugepages are needed.
#![cfg(feature = "dpdk")]

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use xvs_integration::udp::{bound_socket, expect_all, expect_none};
use xvs_integration::{is_root, routed_example_pods, Netns, Pod, Xvsd};

const FLOWS: &str = include_str!("../../deploy/examples/antrea-lite.flows");

struct Topo {
    node: Netns,
    pods: Vec<Pod>,
}

fn topology() -> Result<Topo> {
    let (node, pods) = routed_example_pods("dp")?;
    Ok(Topo { node, pods })
}

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
flows = "@DIR@/pipeline.flows"
pmd_sleep_max_us = 100

[dpdk]
no_huge = true
memory_mb = 128
extra_args = ["--log-level=lib.eal:error"]

[[port]]
name = "pa0"
type = "dpdk"
ofport = 1
devargs = "net_af_packet0,iface=pa0"
rx_descriptors = 512
tx_descriptors = 512

[[port]]
name = "pb0"
type = "dpdk"
ofport = 2
devargs = "net_af_xdp0,iface=pb0,start_queue=0,queue_count=1"

[[port]]
name = "pc0"
type = "afxdp"
ofport = 3
"#;

fn runtime_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/var/run/dpdk/xvs-{pid}"))
}

fn port_rx(show: &str, port: &str) -> u64 {
    let mut lines = show.lines();
    while let Some(l) = lines.next() {
        if l.trim().ends_with(&format!(": {port}")) && l.trim().starts_with("port ") {
            return lines
                .next()
                .and_then(|l| l.split("RX packets:").nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

#[test]
fn antrea_pipeline_over_dpdk_and_afxdp_ports() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let mut x = Xvsd::start_with(&t.node, CONFIG, &[("pipeline.flows", FLOWS)])?;
    let pid = x.pid().context("xvsd pid")?;
    let (a, b, c) = (&t.pods[0], &t.pods[1], &t.pods[2]);
    let sock = |p: &Pod, port: u16| bound_socket(&p.ns, format!("{}:{port}", p.ip));

    // DPDK af_packet <-> DPDK af_xdp, both ways.
    let (a1, b1) = (sock(a, 7001)?, sock(b, 7001)?);
    expect_all(&a1, &b1, "10.10.0.3:7001", 500, "a -> b udp/7001").context("allowed")?;
    expect_all(&b1, &a1, "10.10.0.2:7001", 500, "b -> a udp/7001").context("allowed")?;

    // Egress conjunction on the DPDK port: a -> c udp/7002 denied, a -> b allowed.
    let (a2, b2, c2) = (sock(a, 7002)?, sock(b, 7002)?, sock(c, 7002)?);
    expect_none(
        &a2,
        &c2,
        "10.10.0.4:7002",
        200,
        "a -> c udp/7002 (egress deny)",
    )?;
    expect_all(&a2, &b2, "10.10.0.3:7002", 200, "a -> b udp/7002")?;

    // Ingress conjunction, AF_XDP -> DPDK: c -> b udp/7003 denied; a -> b allowed.
    let (a3, b3, c3) = (sock(a, 7003)?, sock(b, 7003)?, sock(c, 7003)?);
    expect_none(
        &c3,
        &b3,
        "10.10.0.3:7003",
        200,
        "c -> b udp/7003 (ingress deny)",
    )?;
    expect_all(&a3, &b3, "10.10.0.3:7003", 200, "a -> b udp/7003")?;

    // DPDK -> AF_XDP: a -> c udp/7004 allowed; b -> c isolated.
    let (a4, b4, c4) = (sock(a, 7004)?, sock(b, 7004)?, sock(c, 7004)?);
    expect_all(
        &a4,
        &c4,
        "10.10.0.4:7004",
        200,
        "a -> c udp/7004 (allowed by rule)",
    )?;
    expect_none(
        &b4,
        &c4,
        "10.10.0.4:7004",
        200,
        "b -> c udp/7004 (isolated)",
    )?;

    // Spoofed source on the DPDK port.
    a.ns.ip(&["addr", "add", "10.10.0.99/32", "dev", "eth0"])?;
    let spoof = bound_socket(&a.ns, "10.10.0.99:7001".to_string())?;
    expect_none(&spoof, &b1, "10.10.0.3:7001", 200, "spoofed source")?;

    // Routed through the gateway from the DPDK port: MACs rewritten, TTL decremented.
    let c20 = bound_socket(&c.ns, "10.20.0.4:7004".to_string())?;
    expect_all(&a4, &c20, "10.20.0.4:7004", 200, "a -> 10.20.0.4 (routed)")?;
    a4.set_ttl(1)?;
    expect_none(&a4, &c20, "10.20.0.4:7004", 50, "routed with TTL 1")?;

    // Port counters of the DPDK queues are there, with at least what was sent through them.
    let show = x.appctl(&["xvs/show"])?;
    assert!(
        port_rx(&show, "pa0") >= 500 + 200 + 200 + 200 + 200 + 200,
        "{show}"
    );
    assert!(port_rx(&show, "pb0") >= 500 + 200, "{show}");

    // Device counters from rte_eth_stats and the drivers' xstats, through the real ovs-appctl.
    let dpdk = x.appctl(&["dpdk/show"])?;
    assert!(
        dpdk.contains("pa0: port") && dpdk.contains("driver net_af_packet"),
        "{dpdk}"
    );
    assert!(
        dpdk.contains("pb0: port") && dpdk.contains("driver net_af_xdp"),
        "{dpdk}"
    );
    let ipackets: Vec<u64> = dpdk
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rx packets:"))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(ipackets.len(), 2, "{dpdk}");
    assert!(ipackets.iter().all(|&n| n >= 700), "{dpdk}");
    assert!(dpdk.contains("rx_good_packets: "), "no xstats:\n{dpdk}");
    let status = x.stop()?;
    assert!(status.success(), "xvsd exit: {status}: {}", x.stderr());
    assert!(!t.node.any_xdp()?, "an XDP program was left attached");
    assert!(
        !runtime_dir(pid).exists(),
        "{} left behind",
        runtime_dir(pid).display()
    );
    Ok(())
}

fn expect_failure(ns: &Netns, config: &str, needles: &[&str]) -> Result<()> {
    let mut x = Xvsd::spawn(ns, config)?;
    let pid = x.pid().context("xvsd pid")?;
    let status = x.wait(Duration::from_secs(20))?;
    assert!(!status.success(), "xvsd must refuse to start");
    let err = x.stderr();
    for n in needles {
        assert!(err.contains(n), "{n:?} not in:\n{err}");
    }
    assert!(!ns.any_xdp()?, "a failed start left XDP attached");
    assert!(
        !runtime_dir(pid).exists(),
        "{} left behind",
        runtime_dir(pid).display()
    );
    Ok(())
}

#[test]
fn eal_and_port_failures_are_reported_and_leave_nothing() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let base = "bridge = \"br-int\"\nrun_dir = \"@RUN@\"\nworkers = [0]\n\
                [dpdk]\nno_huge = true\nmemory_mb = 128\n";
    // The vdev cannot be created: its interface does not exist (EAL itself starts).
    let bad_iface = format!(
        "{base}[[port]]\nname = \"pa0\"\ntype = \"dpdk\"\nofport = 1\n\
         devargs = \"net_af_packet0,iface=nosuch0\"\n"
    );
    expect_failure(
        &t.node,
        &bad_iface,
        &["nosuch0", "no DPDK port named \"net_af_packet0\""],
    )?;
    // EAL itself fails: hugepages asked for on a host that has none.
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    if meminfo.contains("HugePages_Total:       0") {
        let huge = bad_iface
            .replace("no_huge = true", "no_huge = false")
            .replace("iface=nosuch0", "iface=pa0");
        expect_failure(
            &t.node,
            &huge,
            &[
                "DPDK EAL initialisation failed",
                "--file-prefix=xvs-",
                "no_huge",
            ],
        )?;
    }
    // The port cannot be set up: more queues than the driver has.
    let queues = format!(
        "{base}[[port]]\nname = \"pa0\"\ntype = \"dpdk\"\nofport = 1\n\
         devargs = \"net_af_packet0,iface=pa0\"\nrx_queues = 2\n\
         [[port]]\nname = \"pc0\"\ntype = \"afxdp\"\nofport = 3\n"
    );
    expect_failure(
        &t.node,
        &queues,
        &["port pa0", "the net_af_packet driver allows 1 / 1"],
    )?;
    Ok(())
}

const RING_CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0, 1]
forwarding = "openflow"
flows = "@DIR@/ring.flows"
pmd_sleep_max_us = 100

[dpdk]
no_huge = true
memory_mb = 128
extra_args = ["--log-level=lib.eal:error"]

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1
worker = 0

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2
worker = 0

[[port]]
name = "pr0"
type = "dpdk"
ofport = 10
devargs = "net_ring0"
rx_queues = 2
queue_workers = [0, 1]
"#;

/// pod-a's packets go through the `net_ring` port (a DPDK device with no interface behind it,
/// which loops every transmitted mbuf back to its queue) before they reach pod-b.
const RING_FLOWS: &str = "\
table=0,priority=10,in_port=1 actions=output:10
table=0,priority=10,in_port=10 actions=output:2
table=0,priority=0 actions=drop
";

#[test]
fn net_ring_port_between_afxdp_ports_with_queues_on_two_workers() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let mut x = Xvsd::start_with(&t.node, RING_CONFIG, &[("ring.flows", RING_FLOWS)])?;
    let pid = x.pid().context("xvsd pid")?;
    let (a, b) = (&t.pods[0], &t.pods[1]);
    let (a1, b1) = (
        bound_socket(&a.ns, format!("{}:7001", a.ip))?,
        bound_socket(&b.ns, format!("{}:7001", b.ip))?,
    );
    expect_all(&a1, &b1, "10.10.0.3:7001", 500, "a -> ring -> b")?;
    expect_none(&b1, &a1, "10.10.0.2:7001", 100, "b -> a has no flow")?;

    let dpdk = x.appctl(&["dpdk/show"])?;
    assert!(
        dpdk.contains("pr0: port") && dpdk.contains("driver net_ring"),
        "{dpdk}"
    );
    // Worker 0 transmits on its own queue (0), and the ring brings the packets back there.
    let q0 = dpdk
        .lines()
        .find_map(|l| l.trim().strip_prefix("queue 0: rx packets:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("queue 0 counters")?;
    assert!(q0 >= 500, "{dpdk}");
    assert!(
        dpdk.contains("queue 1: rx packets:0 tx packets:0"),
        "{dpdk}"
    );
    let show = x.appctl(&["xvs/show"])?;
    let w1 = show
        .split("worker 1")
        .nth(1)
        .context("worker 1 in xvs/show")?;
    assert!(
        w1.contains("pr0/q1"),
        "queue 1 must be polled by worker 1:\n{show}"
    );
    assert!(port_rx(&show, "pr0/q0") >= 500, "{show}");

    let status = x.stop()?;
    assert!(status.success(), "xvsd exit: {status}: {}", x.stderr());
    assert!(!t.node.any_xdp()?, "an XDP program was left attached");
    assert!(
        !runtime_dir(pid).exists(),
        "{} left behind",
        runtime_dir(pid).display()
    );
    Ok(())
}
