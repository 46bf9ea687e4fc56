//! Two xvsd nodes joined by an underlay veth, each with two Pods; Pod 1 of each node talks to
//! the other node's Pod 1 over Geneve, Pod 2 to Pod 2 over VXLAN (both tunnel ports on both
//! nodes, both UDP ports in the uplinks' XDP filters). Ping, UDP, a TCP echo and an iperf3 TCP
//! run cross-node, while a TCP connection between the node namespaces' own addresses goes
//! through the kernels (the uplink XDP programs pass it) and keeps working.
//!
//! ```text
//!  a1 10.244.1.2 -- pa1 ┐                       ┌ pb1 -- b1 10.244.2.2
//!  a2 10.244.1.3 -- pa2 ┤ xvsd A  ul0 ==== ul0  │ xvsd B
//!                       gnv0, vxl0  .88.1  .88.2  gnv0, vxl0 ┘ pb2 -- b2 10.244.2.3
//! ```

mod tunnel_common;

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tunnel_common::{counter, no_ipv6, ping, tcp_echo, udp, wait_running};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};

const GW_MAC: &str = "02:00:00:00:00:fe";

struct Pod {
    ns: Netns,
    ip: String,
}

/// The flows of node `me` (1 or 2): local Pods by address, remote Pod 1 over Geneve (VNI 1),
/// remote Pod 2 over VXLAN (VNI 2).
fn flows(me: u8, peer_underlay: &str) -> String {
    let other = 3 - me;
    let mut f = String::new();
    for (n, port) in [(2u8, "pa1"), (3, "pa2")] {
        let mac = format!("02:00:00:00:0{me}:0{n}");
        f.push_str(&format!(
            "table=0,priority=100,in_port=gnv0,tun_id=1,ip,nw_dst=10.244.{me}.{n},actions=set_field:{GW_MAC}->eth_src,set_field:{mac}->eth_dst,output:{port}\n\
             table=0,priority=100,in_port=vxl0,tun_id=2,ip,nw_dst=10.244.{me}.{n},actions=set_field:{GW_MAC}->eth_src,set_field:{mac}->eth_dst,output:{port}\n"
        ));
    }
    for (n, tun, vni) in [(2u8, "gnv0", 1), (3, "vxl0", 2)] {
        let mac = format!("02:00:00:00:0{other}:0{n}");
        f.push_str(&format!(
            "table=0,priority=100,ip,nw_dst=10.244.{other}.{n},actions=set_field:{peer_underlay}->tun_dst,set_field:{vni}->tun_id,set_field:{GW_MAC}->eth_src,set_field:{mac}->eth_dst,output:{tun}\n"
        ));
    }
    f
}

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
flows = "@DIR@/pipeline.flows"
pmd_sleep_max_us = 100

[[port]]
name = "pa1"
type = "afxdp"
ofport = 1

[[port]]
name = "pa2"
type = "afxdp"
ofport = 2

[[port]]
name = "ul0"
type = "afxdp"
ofport = 3
uplink = true

[[port]]
name = "gnv0"
type = "geneve"
ofport = 100

[[port]]
name = "vxl0"
type = "vxlan"
ofport = 101
"#;

fn pods(tag: &str, node: &Netns, me: u8) -> Result<Vec<Pod>> {
    let mut out = Vec::new();
    for (n, port) in [(2u8, "pa1"), (3, "pa2")] {
        let ns = Netns::new(&format!("{tag}{me}{n}"))?;
        no_ipv6(&ns)?;
        let mac = format!("02:00:00:00:0{me}:0{n}");
        veth(&ns, "eth0", &mac, node, port)?;
        let ip = format!("10.244.{me}.{n}");
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        // The tunnels take 50 bytes: the Pod MTU leaves room for them, as Antrea sets it.
        ns.ip(&["link", "set", "eth0", "mtu", "1450"])?;
        ns.ip(&[
            "route",
            "add",
            "10.244.0.0/16",
            "via",
            &format!("10.244.{me}.1"),
        ])?;
        ns.ip(&[
            "neigh",
            "replace",
            &format!("10.244.{me}.1"),
            "lladdr",
            GW_MAC,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        ns.offloads_off("eth0")?;
        out.push(Pod { ns, ip });
    }
    Ok(out)
}

/// Runs iperf3 TCP for `secs` from `client` to `server_ip` (server in `server`), returning the
/// bits per second received.
fn iperf3(client: &Netns, server: &Netns, server_ip: &str, secs: u32) -> Result<f64> {
    let mut srv = Command::new("ip")
        .args([
            "netns",
            "exec",
            server.name(),
            "timeout",
            "-k",
            "2",
            "45",
            "iperf3",
            "-s",
            "-1",
            "-p",
            "5202",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        let r = client.exec(&[
            "timeout",
            "-k",
            "2",
            "30",
            "iperf3",
            "-c",
            server_ip,
            "-p",
            "5202",
            "-t",
            &secs.to_string(),
            "-J",
        ]);
        // iperf3 -J exits 0 with an "error" member when it cannot connect (the server may not
        // listen yet): retry that too, until the deadline.
        match r {
            Ok(o) if !o.contains("\"error\":") => break o,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => {
                // SIGTERM: `timeout` passes it on to the iperf3 server.
                let pid = nix::unistd::Pid::from_raw(srv.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let _ = srv.wait();
                bail!("iperf3 client: {other:?}");
            }
        }
    };
    // Bounded by the server's own `timeout`.
    let _ = srv.wait();
    let key = "\"sum_received\":";
    let rest = out
        .split(key)
        .nth(1)
        .context("iperf3 JSON: no sum_received")?;
    let bps = rest
        .split("\"bits_per_second\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .context("iperf3 JSON: no bits_per_second")?;
    Ok(bps)
}

#[test]
fn two_nodes_geneve_and_vxlan_with_node_traffic_through_the_kernel() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("tn");
    let na = Netns::new(&format!("{tag}a"))?;
    let nb = Netns::new(&format!("{tag}b"))?;
    no_ipv6(&na)?;
    no_ipv6(&nb)?;
    veth(&na, "ul0", "02:00:00:00:88:01", &nb, "ul0")?;
    nb.ip(&["link", "set", "ul0", "address", "02:00:00:00:88:02"])?;
    na.ip(&["addr", "add", "192.168.88.1/24", "dev", "ul0"])?;
    nb.ip(&["addr", "add", "192.168.88.2/24", "dev", "ul0"])?;
    na.offloads_off("ul0")?;
    nb.offloads_off("ul0")?;
    let pa = pods(&tag, &na, 1)?;
    let pb = pods(&tag, &nb, 2)?;

    let fa = flows(1, "192.168.88.2");
    let fb = flows(2, "192.168.88.1");
    let mut xa = Xvsd::start_with(&na, CONFIG, &[("pipeline.flows", &fa)])?;
    // The second node's worker on the other core (when there is one), as on two machines.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config_b = if cores > 1 {
        CONFIG.replace("workers = [0]", "workers = [1]")
    } else {
        CONFIG.to_string()
    };
    let mut xb = Xvsd::start_with(&nb, &config_b, &[("pipeline.flows", &fb)])?;

    wait_running(&xa)?;
    wait_running(&xb)?;
    let result = traffic(&na, &nb, &pa, &pb);
    for x in [&xa, &xb] {
        let show = x.appctl(&["xvs/show"])?;
        eprintln!("{show}");
        if result.is_ok()
            && (counter(&show, "decapsulated ") == 0 || counter(&show, "encapsulated ") == 0)
        {
            bail!("no tunnel traffic counted: {show}");
        }
        if result.is_ok() && (show.contains("decap drop") || show.contains("drop tunnel_")) {
            bail!("tunnel drops: {show}");
        }
    }
    result?;
    xa.stop()?;
    xb.stop()?;
    if na.any_xdp()? || nb.any_xdp()? {
        bail!("XDP program left behind");
    }
    Ok(())
}

fn traffic(na: &Netns, nb: &Netns, pa: &[Pod], pb: &[Pod]) -> Result<()> {
    // Pod 1 <-> Pod 1 over Geneve, Pod 2 <-> Pod 2 over VXLAN.
    for (a, b) in [(&pa[0], &pb[0]), (&pa[1], &pb[1])] {
        eprintln!("{} <-> {}", a.ip, b.ip);
        ping(&a.ns, &b.ip, 3)?;
        ping(&b.ns, &a.ip, 3)?;
        udp(&a.ns, &b.ns, &b.ip, 100)?;
        udp(&b.ns, &a.ns, &a.ip, 100)?;
        tcp_echo(&a.ns, &b.ns, &b.ip, 1 << 20)?;
    }
    // Cross: Pod 1 of A to Pod 2 of B (VXLAN there, Geneve back).
    ping(&pa[0].ns, &pb[1].ip, 2)?;

    // iperf3 over Geneve while the nodes' own TCP runs through the kernels.
    eprintln!("iperf3 and node TCP");
    let geneve_bps = std::thread::scope(|sc| -> Result<f64> {
        let node_tcp = sc.spawn(|| -> Result<()> {
            for _ in 0..3 {
                tcp_echo(na, nb, "192.168.88.2", 512 << 10)?;
            }
            Ok(())
        });
        let bps = iperf3(&pa[0].ns, &pb[0].ns, &pb[0].ip, 3)?;
        node_tcp
            .join()
            .map_err(|_| anyhow::anyhow!("node TCP thread panicked"))??;
        Ok(bps)
    })?;
    let vxlan_bps = iperf3(&pb[1].ns, &pa[1].ns, &pa[1].ip, 2)?;
    eprintln!(
        "iperf3 TCP cross-node: Geneve {:.0} Mbit/s, VXLAN {:.0} Mbit/s (debug build, shared machine)",
        geneve_bps / 1e6,
        vxlan_bps / 1e6
    );
    if geneve_bps < 1e6 || vxlan_bps < 1e6 {
        bail!("iperf3 too slow: {geneve_bps} / {vxlan_bps} bit/s");
    }
    ping(na, "192.168.88.2", 2)?;
    Ok(())
}
