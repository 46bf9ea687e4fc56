//! xvsd with conntrack on AF_XDP ports in namespaces, running the Antrea-style pipeline of
//! deploy/examples/antrea-ct.flows (zones 65520/65521, ct_state policies, Service DNAT through
//! select groups, ConntrackCommit): a stateful policy with real TCP and UDP sockets, a
//! ClusterIP Service balanced over two endpoint namespaces with un-DNATed replies, iperf3
//! through the ct pipeline, and the tracker seen through the real ovs-appctl.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvs_integration::{example_pods, is_root, Netns, Pod, Xvsd};

const FLOWS: &str = include_str!("../../deploy/examples/antrea-ct.flows");
const GW_MAC: &str = "aa:bb:cc:dd:ee:ff";

struct Topo {
    node: Netns,
    pods: Vec<Pod>,
}

fn topology() -> Result<Topo> {
    let (node, pods) = example_pods("ct")?;
    // Services go through the gateway (answered by the ARP responder flows; static here).
    for p in &pods {
        p.ns.static_neigh("10.10.0.1", GW_MAC)?;
        p.ns.ip(&["route", "add", "10.96.0.0/16", "via", "10.10.0.1"])?;
    }
    Ok(Topo { node, pods })
}

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
flows = "@DIR@/pipeline.flows"
pmd_sleep_max_us = 100

[conntrack]
max_connections = 100000

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

fn udp(ns: &Netns, addr: String) -> Result<UdpSocket> {
    ns.run(move || -> Result<UdpSocket> {
        let s = UdpSocket::bind(&addr)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        Ok(s)
    })?
}

fn listen(ns: &Netns, addr: String) -> Result<TcpListener> {
    ns.run(move || -> Result<TcpListener> { Ok(TcpListener::bind(&addr)?) })?
}

fn connect(ns: &Netns, to: &str, timeout: Duration) -> Result<TcpStream> {
    let to: SocketAddr = to.parse()?;
    ns.run(move || -> Result<TcpStream> {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(s)
    })?
}

/// Sends `n` datagrams from `from` to `to` and counts those `at` receives; when `echo` is set,
/// `at` answers each to its sender and the answers `from` receives are counted too.
fn udp_round(from: &UdpSocket, at: &UdpSocket, to: &str, n: u32, echo: bool) -> Result<(u32, u32)> {
    let (mut got, mut back) = (0, 0);
    let mut buf = [0u8; 1500];
    for i in 0..n {
        from.send_to(&i.to_be_bytes(), to)?;
        if let Ok((len, peer)) = at.recv_from(&mut buf) {
            if len == 4 && buf[..4] == i.to_be_bytes() {
                got += 1;
                if echo {
                    at.send_to(&buf[..4], peer)?;
                    if let Ok((len, _)) = from.recv_from(&mut buf) {
                        if len == 4 && buf[..4] == i.to_be_bytes() {
                            back += 1;
                        }
                    }
                }
            }
        }
    }
    Ok((got, back))
}

/// Echo servers on `ip:8080` (TCP: answers with `name` then closes; UDP: answers `name`)
/// until `stop`.
fn endpoint(ns: &Netns, ip: &str, name: &'static str, stop: Arc<AtomicBool>) -> Result<()> {
    let tcp = listen(ns, format!("{ip}:8080"))?;
    tcp.set_nonblocking(true)?;
    let udp = udp(ns, format!("{ip}:8080"))?;
    udp.set_read_timeout(Some(Duration::from_millis(50)))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((mut s, _)) = tcp.accept() {
                let _ = s.set_nonblocking(false);
                let _ = s.write_all(name.as_bytes());
            }
            if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(name.as_bytes(), peer);
            }
        }
    });
    Ok(())
}

#[test]
fn conntrack_pipeline_stateful_policy_service_dnat_and_iperf3() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let t = topology()?;
    let mut x = Xvsd::start_with(&t.node, CONFIG, &[("pipeline.flows", FLOWS)])?;
    let (a, b, c) = (&t.pods[0], &t.pods[1], &t.pods[2]);

    // --- Stateful policy, UDP: a -> b allowed with replies; b -> a new is blocked.
    let a1 = udp(&a.ns, format!("{}:7001", a.ip))?;
    let b1 = udp(&b.ns, format!("{}:7001", b.ip))?;
    let (got, back) = udp_round(&a1, &b1, "10.10.0.3:7001", 50, true)?;
    assert_eq!((got, back), (50, 50), "a -> b and its replies");
    let b2 = udp(&b.ns, format!("{}:7002", b.ip))?;
    let a2 = udp(&a.ns, format!("{}:7002", a.ip))?;
    let (got, _) = udp_round(&b2, &a2, "10.10.0.2:7002", 20, false)?;
    assert_eq!(got, 0, "b-initiated UDP must not reach the isolated pod-a");

    // --- Stateful policy, TCP: a connects to b; b cannot connect to a.
    let lb = listen(&b.ns, format!("{}:7001", b.ip))?;
    let server = std::thread::spawn(move || -> Result<Vec<u8>> {
        let (mut s, _) = lb.accept()?;
        let mut v = vec![0u8; 5];
        s.read_exact(&mut v)?;
        s.write_all(b"world")?;
        Ok(v)
    });
    let mut s = connect(&a.ns, "10.10.0.3:7001", Duration::from_secs(3))
        .context("a -> b tcp/7001 must connect")?;
    s.write_all(b"hello")?;
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply)?;
    assert_eq!(&reply, b"world");
    assert_eq!(server.join().expect("server")?, b"hello");
    drop(s);
    let _la = listen(&a.ns, format!("{}:7003", a.ip))?;
    let refused = connect(&b.ns, "10.10.0.2:7003", Duration::from_millis(1500));
    assert!(refused.is_err(), "b -> a tcp must not connect");

    // --- ICMP echo is tracked too: a pings b; b cannot ping the isolated a.
    a.ns.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.10.0.3"])
        .context("a -> b ping must pass")?;
    assert!(
        b.ns.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.10.0.2"])
            .is_err(),
        "b -> a ping must be blocked"
    );

    // --- ClusterIP Service: 10.96.0.10 tcp/80 and udp/53 -> pod-b / pod-c :8080.
    let stop = Arc::new(AtomicBool::new(false));
    endpoint(&b.ns, b.ip, "pod-b", stop.clone())?;
    endpoint(&c.ns, c.ip, "pod-c", stop.clone())?;
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..24 {
        let mut s = connect(&a.ns, "10.96.0.10:80", Duration::from_secs(3))
            .context("connecting to the Service")?;
        let mut name = String::new();
        s.read_to_string(&mut name)?;
        *served.entry(format!("tcp {name}")).or_default() += 1;
    }
    for i in 0..24u16 {
        // A connected socket only accepts datagrams from the Service address: the reply must
        // have been un-DNATed.
        let s = udp(&a.ns, format!("{}:{}", a.ip, 30000 + i))?;
        s.connect("10.96.0.10:53")?;
        s.send(b"q")?;
        let mut buf = [0u8; 16];
        let n = s
            .recv(&mut buf)
            .context("UDP reply from the Service address")?;
        let name = String::from_utf8_lossy(&buf[..n]).to_string();
        *served.entry(format!("udp {name}")).or_default() += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for k in ["tcp pod-b", "tcp pod-c", "udp pod-b", "udp pod-c"] {
        assert!(
            served.get(k).copied().unwrap_or(0) >= 3,
            "both endpoints must serve: {served:?}"
        );
    }
    assert_eq!(served.values().sum::<u32>(), 48, "{served:?}");

    // --- iperf3 TCP through the ct pipeline.
    let bytes =
        xvs_integration::iperf3_tcp_bytes(&b.ns, b.ip, &a.ns, 3).with_context(|| x.stderr())?;
    assert!(bytes > 1_000_000, "iperf3 moved only {bytes} bytes");
    eprintln!("iperf3 through the ct pipeline: {bytes} bytes in 3 s (machine shared, debug build)");

    // --- The tracker and the datapath through the real ovs-appctl.
    let dump = x.appctl(&["dpctl/dump-conntrack", "zone=65520"])?;
    assert!(
        dump.contains("10.96.0.10"),
        "Service connection not in the dump:\n{dump}"
    );
    let ct_stats = x.appctl(&["dpctl/ct-stats-show", "zone=65520"])?;
    assert!(
        ct_stats.starts_with("Connections Stats:") && ct_stats.contains("  TCP: "),
        "{ct_stats}"
    );
    // Flush by 5-tuple: only the Service connections' originals from pod-a to the VIP.
    let before = dump
        .lines()
        .filter(|l| l.contains("dst=10.96.0.10"))
        .count();
    assert!(before > 0, "{dump}");
    x.appctl(&[
        "dpctl/flush-conntrack",
        "zone=65520",
        "ct_nw_dst=10.96.0.10,ct_nw_proto=6",
    ])?;
    let after = x.appctl(&["dpctl/dump-conntrack", "zone=65520"])?;
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with("tcp,") && l.contains("dst=10.96.0.10,")),
        "TCP Service connections survived the tuple flush:\n{after}"
    );
    assert!(
        x.appctl(&["dpctl/flush-conntrack", "zone=65520", "ct_nw_src=bogus"])
            .is_err(),
        "a bad ct-tuple must be refused"
    );
    let show = x.appctl(&["xvs/show"])?;
    assert!(show.contains("conntrack: connections "), "{show}");
    let features = x.appctl(&["dpif/show-dp-features", "br-int"])?;
    assert!(features.contains("CT state NAT: Yes"), "{features}");
    let stats = x.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let recirc: u64 = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("packet recirculations:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(recirc > 1000, "packets must recirculate:\n{stats}");
    let flow = "in_port=pa0,tcp,dl_src=02:0a:0a:00:00:02,dl_dst=aa:bb:cc:dd:ee:ff,\
                nw_src=10.10.0.2,nw_dst=10.96.0.10,nw_ttl=64,tp_src=40000,tp_dst=80";
    let trace = x.appctl(&["ofproto/trace", "br-int", flow])?;
    assert!(
        trace.contains("Datapath actions: ct(zone=65520,nat),recirc(0x1)"),
        "{trace}"
    );
    assert!(
        trace.contains("Datapath actions: ct(commit,zone=65520,mark=0x10/0x10,nat(dst=10.10.0."),
        "{trace}"
    );
    let status = x.stop()?;
    assert!(status.success(), "xvsd exit: {status}: {}", x.stderr());
    assert!(!t.node.any_xdp()?);
    Ok(())
}
