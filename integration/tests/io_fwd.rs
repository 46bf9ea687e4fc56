//! xvsd in io-fwd mode on AF_XDP and tap ports, in namespaces, with real traffic:
//! exact delivery and byte equality, clean exit, and clear errors for bad configurations.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};

const MAC_A: &str = "02:0a:e7:00:00:02";
const MAC_B: &str = "02:0a:e7:00:00:03";
const MAC_GW: &str = "02:0a:e7:00:00:01";

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (network namespaces, AF_XDP)");
            return Ok(());
        }
    };
}

/// pod-a (10.231.0.2) <-> pa0 [node] pb0 <-> pod-b (10.231.0.3).
struct Pods {
    a: Netns,
    b: Netns,
    node: Netns,
}

fn pods() -> Result<Pods> {
    let tag = unique_tag("io");
    let a = Netns::new(&format!("{tag}a"))?;
    let b = Netns::new(&format!("{tag}b"))?;
    let node = Netns::new(&format!("{tag}n"))?;
    veth(&a, "eth0", MAC_A, &node, "pa0")?;
    veth(&b, "eth0", MAC_B, &node, "pb0")?;
    a.ip(&["addr", "add", "10.231.0.2/24", "dev", "eth0"])?;
    b.ip(&["addr", "add", "10.231.0.3/24", "dev", "eth0"])?;
    a.ip(&[
        "neigh",
        "replace",
        "10.231.0.3",
        "lladdr",
        MAC_B,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;
    b.ip(&[
        "neigh",
        "replace",
        "10.231.0.2",
        "lladdr",
        MAC_A,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;
    a.offloads_off("eth0")?;
    b.offloads_off("eth0")?;
    Ok(Pods { a, b, node })
}

fn io_fwd_config(mode: &str, second: &str) -> String {
    format!(
        r#"
bridge = "br-test"
run_dir = "@RUN@"
workers = [0]
forwarding = "io-fwd"
pmd_sleep_max_us = 100

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1
xdp_mode = "{mode}"

{second}
"#
    )
}

fn afxdp_pb0(mode: &str) -> String {
    format!("[[port]]\nname = \"pb0\"\ntype = \"afxdp\"\nofport = 2\nxdp_mode = \"{mode}\"\n")
}

/// The payload of datagram `seq`: its number, then bytes derived from it, of varying length.
fn payload(seq: u32) -> Vec<u8> {
    let len = 8 + (seq as usize * 37) % 1400;
    let mut v = seq.to_be_bytes().to_vec();
    v.extend((4..len).map(|i| (i as u32).wrapping_mul(seq | 1).wrapping_add(seq >> 3) as u8));
    v
}

fn udp_socket(ns: &Netns, addr: &'static str) -> Result<UdpSocket> {
    ns.run(move || -> Result<UdpSocket> {
        let s = UdpSocket::bind(addr)?;
        // Room for a whole burst, so the receiving socket itself never drops.
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &(16 << 20))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(s)
    })?
}

/// Sends `count` datagrams `from` -> `to_addr` and checks `to` receives each exactly once, intact.
fn udp_exact(from: &UdpSocket, to: &UdpSocket, to_addr: &str, count: u32) -> Result<()> {
    let receiver = to.try_clone()?;
    let collect = std::thread::spawn(move || {
        let mut got: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let mut dup = 0;
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(20);
        while (got.len() as u32) < count && Instant::now() < deadline {
            if let Ok(n) = receiver.recv(&mut buf) {
                if n >= 4 {
                    let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    if got.insert(seq, buf[..n].to_vec()).is_some() {
                        dup += 1;
                    }
                }
            }
        }
        (got, dup)
    });
    for seq in 0..count {
        from.send_to(&payload(seq), to_addr)?;
        if seq % 256 == 255 {
            // Bounded pace: a burst at a time, well under what the rings hold.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let (got, dup) = collect
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    assert_eq!(dup, 0, "duplicated datagrams");
    let missing: Vec<u32> = (0..count)
        .filter(|s| !got.contains_key(s))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {count} datagrams missing, e.g. {missing:?}",
        count as usize - got.len()
    );
    for (seq, bytes) in &got {
        assert_eq!(bytes, &payload(*seq), "datagram {seq} differs");
    }
    Ok(())
}

fn tcp_exact(
    client_ns: &Netns,
    server_ns: &Netns,
    server: &'static str,
    bytes: usize,
) -> Result<()> {
    let listener = server_ns.run(move || TcpListener::bind(server))??;
    let data: Vec<u8> = (0..bytes)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let expect = data.clone();
    let acceptor = std::thread::spawn(move || -> Result<Vec<u8>> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });
    let mut c = client_ns.run(move || TcpStream::connect(server))??;
    c.write_all(&data)?;
    c.shutdown(std::net::Shutdown::Write)?;
    drop(c);
    let got = acceptor
        .join()
        .map_err(|_| anyhow::anyhow!("acceptor panicked"))??;
    assert_eq!(got.len(), expect.len(), "TCP stream length");
    assert!(got == expect, "TCP stream content differs");
    Ok(())
}

fn afxdp_pair(mode: &str) -> Result<()> {
    let p = pods()?;
    let mut x = Xvsd::start(&p.node, &io_fwd_config(mode, &afxdp_pb0(mode)))?;
    let shown = p.node.ip(&["-d", "link", "show", "pa0"])?;
    let want = if mode == "generic" {
        "xdpgeneric"
    } else {
        "xdp"
    };
    assert!(
        shown.contains(&format!("prog/{want} ")) || shown.contains(&format!("{want} ")),
        "{shown}"
    );

    let sa = udp_socket(&p.a, "10.231.0.2:7000")?;
    let sb = udp_socket(&p.b, "10.231.0.3:7000")?;
    udp_exact(&sa, &sb, "10.231.0.3:7000", 3000).context("UDP a -> b")?;
    udp_exact(&sb, &sa, "10.231.0.2:7000", 3000).context("UDP b -> a")?;
    tcp_exact(&p.a, &p.b, "10.231.0.3:7100", 4 << 20).context("TCP a -> b")?;

    let show = x.appctl(&["xvs/show"])?;
    assert!(
        show.contains("port 1: pa0") && show.contains("port 2: pb0"),
        "{show}"
    );
    let stats = x.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let rx: u64 = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("packets received: "))
        .and_then(|v| v.parse().ok())
        .context("packets received")?;
    assert!(rx >= 6000, "worker saw only {rx} packets:\n{stats}");

    let status = x.stop()?;
    assert!(status.success(), "xvsd exit: {status}: {}", x.stderr());
    assert!(!p.node.any_xdp()?, "an XDP program was left attached");
    assert!(
        !x.run_dir().join("xvsd.pid").exists(),
        "pid file left behind"
    );
    assert!(
        !x.run_dir().join("xvsd.ctl").exists(),
        "control socket left behind"
    );
    Ok(())
}

#[test]
fn afxdp_native_forwards_udp_and_tcp_exactly() -> Result<()> {
    require_root!();
    afxdp_pair("native")
}

#[test]
fn afxdp_generic_forwards_udp_and_tcp_exactly() -> Result<()> {
    require_root!();
    afxdp_pair("generic")
}

#[test]
fn tap_port_reaches_the_host_stack() -> Result<()> {
    require_root!();
    let p = pods()?;
    let tap = format!("[[port]]\nname = \"gw0\"\ntype = \"tap\"\nofport = 2\nmac = \"{MAC_GW}\"\n");
    let mut x = Xvsd::start(&p.node, &io_fwd_config("auto", &tap))?;
    assert!(p.node.has_link("gw0"), "xvsd did not create gw0");
    p.node.ip(&["addr", "add", "10.231.0.1/24", "dev", "gw0"])?;
    p.node.ip(&[
        "neigh",
        "replace",
        "10.231.0.2",
        "lladdr",
        MAC_A,
        "dev",
        "gw0",
        "nud",
        "permanent",
    ])?;
    p.a.ip(&[
        "neigh",
        "replace",
        "10.231.0.1",
        "lladdr",
        MAC_GW,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;
    p.node.offloads_off("gw0")?;

    let sa = udp_socket(&p.a, "10.231.0.2:7000")?;
    let sn = udp_socket(&p.node, "10.231.0.1:7000")?;
    udp_exact(&sa, &sn, "10.231.0.1:7000", 2000).context("UDP pod -> host via tap")?;
    udp_exact(&sn, &sa, "10.231.0.2:7000", 2000).context("UDP host -> pod via tap")?;
    tcp_exact(&p.a, &p.node, "10.231.0.1:7100", 1 << 20).context("TCP pod -> host")?;

    let status = x.stop()?;
    assert!(status.success(), "xvsd exit: {status}: {}", x.stderr());
    assert!(!p.node.has_link("gw0"), "tap gw0 left behind");
    assert!(!p.node.any_xdp()?, "an XDP program was left attached");
    Ok(())
}

fn expect_failure(ns: &Netns, config: &str, needle: &str) -> Result<()> {
    let mut x = Xvsd::spawn(ns, config)?;
    let status = x.wait(Duration::from_secs(20))?;
    assert!(!status.success(), "xvsd accepted a bad configuration");
    let err = x.stderr();
    assert!(
        err.contains(needle),
        "stderr does not name the problem ({needle}):\n{err}"
    );
    assert!(
        !ns.any_xdp()?,
        "a failed start left an XDP program attached"
    );
    Ok(())
}

#[test]
fn bad_configurations_fail_clearly_without_touching_interfaces() -> Result<()> {
    require_root!();
    let p = pods()?;
    let good = io_fwd_config("auto", &afxdp_pb0("auto"));
    expect_failure(
        &p.node,
        &good.replace("\"pb0\"", "\"nosuch0\""),
        "port nosuch0: no such interface",
    )?;
    expect_failure(
        &p.node,
        &good.replace("ofport = 2", "ofport = 1"),
        "ofport 1 is already used by port pa0",
    )?;
    expect_failure(
        &p.node,
        &format!("{good}\nturbo = true\n"),
        "unknown field `turbo`",
    )?;
    expect_failure(
        &p.node,
        &good.replace("workers = [0]", "workers = [4096]"),
        "core 4096 is not available",
    )?;
    Ok(())
}

#[test]
fn a_port_in_use_is_refused_and_the_owner_keeps_forwarding() -> Result<()> {
    require_root!();
    let p = pods()?;
    let config = io_fwd_config("auto", &afxdp_pb0("auto"));
    let mut first = Xvsd::start(&p.node, &config)?;
    let mut second = Xvsd::spawn(&p.node, &config)?;
    let status = second.wait(Duration::from_secs(20))?;
    assert!(!status.success(), "second xvsd started on ports in use");
    let err = second.stderr();
    assert!(
        err.contains("pa0") && err.contains("already"),
        "unclear error:\n{err}"
    );
    let sa = udp_socket(&p.a, "10.231.0.2:7000")?;
    let sb = udp_socket(&p.b, "10.231.0.3:7000")?;
    udp_exact(&sa, &sb, "10.231.0.3:7000", 500).context("first xvsd after the refused start")?;
    assert!(first.stop()?.success());
    assert!(!p.node.any_xdp()?);
    Ok(())
}
