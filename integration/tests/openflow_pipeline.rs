//! xvsd forwarding by an Antrea-style OpenFlow pipeline (deploy/examples/antrea-lite.flows) on
//! AF_XDP ports in namespaces: allowed traffic arrives intact, traffic denied by egress and
//! ingress conjunctions and by K8s-style isolation does not, spoofed sources are dropped, the
//! ARP responder answers for the gateway, and routed traffic gets its MACs and TTL rewritten.

use anyhow::{Context, Result};
use std::time::Duration;
use xvs_integration::udp::{bound_socket, expect_all, expect_none};
use xvs_integration::{is_root, routed_example_pods, Netns, Pod, Xvsd};

const FLOWS: &str = include_str!("../../deploy/examples/antrea-lite.flows");
const GW_MAC: &str = "aa:bb:cc:dd:ee:ff";

struct Topo {
    node: Netns,
    pods: Vec<Pod>,
}

fn topology() -> Result<Topo> {
    let (node, pods) = routed_example_pods("of")?;
    Ok(Topo { node, pods })
}

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
flows = "@DIR@/pipeline.flows"
pmd_sleep_max_us = 100

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2

[[port]]
name = "pc0"
type = "afxdp"
ofport = 3
"#;

#[test]
fn antrea_style_pipeline_allows_denies_and_rewrites() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let mut x = Xvsd::start_with(&t.node, CONFIG, &[("pipeline.flows", FLOWS)])?;
    let (a, b, c) = (&t.pods[0], &t.pods[1], &t.pods[2]);
    let sock = |p: &Pod, port: u16| bound_socket(&p.ns, format!("{}:{port}", p.ip));

    // Allowed: pod-a -> pod-b, both ways.
    let (a1, b1) = (sock(a, 7001)?, sock(b, 7001)?);
    expect_all(&a1, &b1, "10.10.0.3:7001", 500, "a -> b udp/7001").context("allowed")?;
    expect_all(&b1, &a1, "10.10.0.2:7001", 500, "b -> a udp/7001").context("allowed")?;

    // Egress conjunction: pod-a -> pod-c udp/7002 denied; pod-a -> pod-b udp/7002 allowed.
    let (a2, b2, c2) = (sock(a, 7002)?, sock(b, 7002)?, sock(c, 7002)?);
    expect_none(
        &a2,
        &c2,
        "10.10.0.4:7002",
        200,
        "a -> c udp/7002 (egress deny)",
    )?;
    expect_all(&a2, &b2, "10.10.0.3:7002", 200, "a -> b udp/7002")?;

    // Ingress conjunction: pod-c -> pod-b udp/7003 denied; pod-a -> pod-b udp/7003 allowed.
    let (a3, b3, c3) = (sock(a, 7003)?, sock(b, 7003)?, sock(c, 7003)?);
    expect_none(
        &c3,
        &b3,
        "10.10.0.3:7003",
        200,
        "c -> b udp/7003 (ingress deny)",
    )?;
    expect_all(&a3, &b3, "10.10.0.3:7003", 200, "a -> b udp/7003")?;

    // Isolation of pod-c: only pod-a udp/7004 gets in.
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

    // SpoofGuard: pod-a sending from an address that is not its own is dropped.
    a.ns.ip(&["addr", "add", "10.10.0.99/32", "dev", "eth0"])?;
    let spoof = bound_socket(&a.ns, "10.10.0.99:7001".to_string())?;
    expect_none(&spoof, &b1, "10.10.0.3:7001", 200, "spoofed source")?;

    // ARP responder: pod-a resolves the gateway to the virtual MAC.
    a.ns.ip(&["neigh", "flush", "dev", "eth0", "to", "10.10.0.1"])?;
    let _ = a.ns.exec(&["ping", "-c", "1", "-W", "1", "10.10.0.1"]);
    let neigh = a.ns.ip(&["neigh", "show", "10.10.0.1", "dev", "eth0"])?;
    assert!(
        neigh.contains(GW_MAC),
        "gateway not resolved by the ARP responder: {neigh:?}"
    );

    // Routed through the gateway: MACs rewritten (pod-c's kernel accepts only its own MAC).
    let c20 = bound_socket(&c.ns, "10.20.0.4:7004".to_string())?;
    expect_all(&a4, &c20, "10.20.0.4:7004", 200, "a -> 10.20.0.4 (routed)")?;
    // dec_ttl: a packet that arrives with TTL 1 cannot be routed.
    a4.set_ttl(1)?;
    expect_none(&a4, &c20, "10.20.0.4:7004", 50, "routed with TTL 1")?;

    let stats = x.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let field = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        field("megaflow hits:") + field("emc hits:") > 1000,
        "caches unused:\n{stats}"
    );
    assert!(field("miss with success upcall:") >= 8, "{stats}");
    assert!(field("dropped (action_drop):") >= 850, "{stats}");

    // ofproto/trace through the real ovs-appctl: an allowed and a denied packet.
    let base = "in_port=pa0,udp,dl_src=02:0a:0a:00:00:02,nw_src=10.10.0.2,nw_ttl=64";
    let allowed = format!("{base},dl_dst=02:0a:0a:00:00:03,nw_dst=10.10.0.3,tp_dst=7001");
    let trace = x.appctl(&["ofproto/trace", "br-int", &allowed])?;
    assert!(trace.contains("Datapath actions: 2"), "{trace}");
    assert!(
        trace.contains("28. "),
        "the trace must reach the Output table:\n{trace}"
    );
    assert!(
        trace.contains("Megaflow: recirc_id=0,")
            && trace.contains(",nw_dst=10.10.0.3,nw_frag=no,tp_dst=7001"),
        "megaflow not shown as a match:\n{trace}"
    );
    let denied = format!("{base},dl_dst=02:0a:0a:00:00:04,nw_dst=10.10.0.4,tp_dst=7002");
    let trace = x.appctl(&["ofproto/trace", &denied])?;
    assert!(trace.contains("Datapath actions: drop"), "{trace}");
    assert!(
        trace.contains("conj_id=1"),
        "the deny rule must show in the trace:\n{trace}"
    );

    let show = x.appctl(&["xvs/show"])?;
    assert!(
        show.contains("ttl_expired: "),
        "translation drop reason not shown:\n{show}"
    );

    let status = x.stop()?;
    assert!(status.success(), "xvsd exit: {status}: {}", x.stderr());
    assert!(!t.node.any_xdp()?);
    Ok(())
}

#[test]
fn a_bad_flow_file_is_refused_with_its_line() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let bad = format!("{FLOWS}\ntable=5,priority=1,bogus=1 actions=drop\n");
    let mut x = Xvsd::spawn_with(&t.node, CONFIG, &[("pipeline.flows", &bad)])?;
    let status = x.wait(Duration::from_secs(20))?;
    assert!(!status.success());
    let err = x.stderr();
    let line = FLOWS.lines().count() + 2;
    assert!(
        err.contains(&format!("pipeline.flows:{line}")),
        "no line number:\n{err}"
    );
    assert!(err.contains("bogus"), "no reason:\n{err}");
    assert!(!t.node.any_xdp()?, "a refused start left XDP attached");
    Ok(())
}

/// A stateless "reply only after request" firewall built with `learn`: pod-b may answer pod-a
/// on a UDP port only after pod-a sent a request from it to pod-b:7777.
const LEARN_FLOWS: &str = "\
table=0,priority=100,in_port=1,udp,tp_dst=7777 actions=learn(table=1,priority=200,hard_timeout=60,eth_type=0x800,nw_proto=17,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],NXM_OF_UDP_DST[]=NXM_OF_UDP_SRC[],output:NXM_OF_IN_PORT[]),output:2
table=0,priority=100,in_port=2,udp actions=goto_table:1
table=0,priority=0 actions=drop
table=1,priority=0 actions=drop
";

#[test]
fn learned_flows_open_the_reply_path() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let mut x = Xvsd::start_with(&t.node, CONFIG, &[("pipeline.flows", LEARN_FLOWS)])?;
    let (a, b) = (&t.pods[0], &t.pods[1]);
    let a7100 = bound_socket(&a.ns, format!("{}:7100", a.ip))?;
    let a7101 = bound_socket(&a.ns, format!("{}:7101", a.ip))?;
    let b7777 = bound_socket(&b.ns, format!("{}:7777", b.ip))?;

    expect_none(
        &b7777,
        &a7100,
        "10.10.0.2:7100",
        50,
        "reply before any request",
    )?;
    expect_all(
        &a7100,
        &b7777,
        "10.10.0.3:7777",
        200,
        "request a:7100 -> b:7777",
    )?;
    // The control thread installs learned flows within one control period (20 ms).
    std::thread::sleep(Duration::from_millis(200));
    expect_all(
        &b7777,
        &a7100,
        "10.10.0.2:7100",
        200,
        "reply on the learned path",
    )?;
    expect_none(
        &b7777,
        &a7101,
        "10.10.0.2:7101",
        50,
        "reply to a port nobody asked from",
    )?;

    let show = x.appctl(&["xvs/show"])?;
    assert!(show.contains("learned flows: installed 1,"), "{show}");
    assert!(x.stop()?.success(), "{}", x.stderr());
    Ok(())
}
