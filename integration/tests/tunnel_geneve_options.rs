//! Geneve options as `tun_metadata`, end to end with the real `ovs-ofctl`: two xvsd nodes
//! joined through a Linux bridge in a third namespace (where tcpdump can see the underlay,
//! which the nodes' AF_XDP uplinks hide from the kernel). Node A sets `tun_metadata0` on the
//! way out; node B forwards only packets whose `tun_metadata0` matches under a mask. The
//! option bytes on the wire are checked with tshark's Geneve dissector.
//!
//! ```text
//!  a1 10.244.1.2 -- pa1 xvsd A ul0 ==== ua [br0 in mid] ub ==== ul0 xvsd B pb1 -- b1 10.244.2.2
//!                          .88.1                                  .88.2
//! ```

mod tunnel_common;

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::Duration;
use tunnel_common::{no_ipv6, ping, wait_running};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};

const GW_MAC: &str = "02:00:00:00:00:fe";
const GENEVE: u32 = 100;
const MAP: &str = "{class=0xffff,type=0x42,len=4}->tun_metadata0";

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
name = "ul0"
type = "afxdp"
ofport = 3
uplink = true

[[port]]
name = "gnv0"
type = "geneve"
ofport = 100
"#;

/// The flows node `me` starts with: its Pod from the tunnel, only on node A (node B's one
/// comes later over OpenFlow, with the tun_metadata match), and the way back to node A
/// without options, on node B.
fn base_flows(me: u8) -> String {
    let mac = format!("02:00:00:00:0{me}:02");
    if me == 1 {
        format!(
            "table=0,priority=100,in_port=gnv0,tun_id=1,ip,nw_dst=10.244.1.2,actions=set_field:{GW_MAC}->eth_src,set_field:{mac}->eth_dst,output:pa1\n"
        )
    } else {
        format!(
            "table=0,priority=100,ip,nw_dst=10.244.1.2,actions=set_field:192.168.88.1->tun_dst,set_field:1->tun_id,set_field:{GW_MAC}->eth_src,set_field:02:00:00:00:01:02->eth_dst,output:gnv0\n"
        )
    }
}

/// Node A's flow to node B's Pod, setting `tun_metadata0` to `value`.
fn a_to_b(value: &str) -> String {
    format!(
        "priority=100,ip,nw_dst=10.244.2.2,actions=set_field:192.168.88.2->tun_dst,set_field:1->tun_id,set_field:{value}->tun_metadata0,set_field:{GW_MAC}->eth_src,set_field:02:00:00:00:02:02->eth_dst,output:{GENEVE}"
    )
}

fn pod(tag: &str, node: &Netns, me: u8) -> Result<Netns> {
    let ns = Netns::new(&format!("{tag}p{me}"))?;
    no_ipv6(&ns)?;
    veth(&ns, "eth0", &format!("02:00:00:00:0{me}:02"), node, "pa1")?;
    ns.ip(&["addr", "add", &format!("10.244.{me}.2/24"), "dev", "eth0"])?;
    ns.ip(&["link", "set", "eth0", "mtu", "1400"])?;
    ns.ip(&[
        "route",
        "add",
        "10.244.0.0/16",
        "via",
        &format!("10.244.{me}.1"),
    ])?;
    ns.static_neigh(&format!("10.244.{me}.1"), GW_MAC)?;
    ns.offloads_off("eth0")?;
    Ok(ns)
}

/// `ovs-ofctl -O OpenFlow15 <cmd> unix:<mgmt> <args>`: (success, stdout + stderr).
fn ofctl(x: &Xvsd, cmd: &str, args: &[&str]) -> Result<(bool, String)> {
    let target = format!("unix:{}", x.run_dir().join("br-int.mgmt").display());
    let out = Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow15", "--timeout=10", cmd, &target])
        .args(args)
        .output()
        .context("running ovs-ofctl")?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

fn ofctl_ok(x: &Xvsd, cmd: &str, args: &[&str]) -> Result<String> {
    let (ok, out) = ofctl(x, cmd, args)?;
    if !ok {
        bail!("ovs-ofctl {cmd} {args:?} failed: {out}\n{}", x.stderr());
    }
    Ok(out)
}

/// `ping -c count -W 1` that must get no reply at all.
fn ping_fails(ns: &Netns, dst: &str, count: u32) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "ping", "-c"])
        .arg(count.to_string())
        .args(["-i", "0.2", "-W", "1", dst])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains(" 0 received") {
        bail!("ping {dst} should have been dropped: {text}");
    }
    Ok(())
}

#[test]
fn geneve_tun_metadata_set_on_one_node_and_matched_on_the_other() -> Result<()> {
    if !is_root() || Command::new("ovs-ofctl").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and ovs-ofctl");
        return Ok(());
    }
    let tag = unique_tag("go");
    let na = Netns::new(&format!("{tag}a"))?;
    let nb = Netns::new(&format!("{tag}b"))?;
    let mid = Netns::new(&format!("{tag}m"))?;
    for ns in [&na, &nb, &mid] {
        no_ipv6(ns)?;
    }
    veth(&na, "ul0", "02:00:00:00:88:01", &mid, "ua")?;
    veth(&nb, "ul0", "02:00:00:00:88:02", &mid, "ub")?;
    mid.ip(&["link", "add", "br0", "type", "bridge"])?;
    for i in ["ua", "ub"] {
        mid.ip(&["link", "set", i, "master", "br0"])?;
        mid.ip(&["link", "set", i, "up"])?;
    }
    mid.ip(&["link", "set", "br0", "up"])?;
    na.ip(&["addr", "add", "192.168.88.1/24", "dev", "ul0"])?;
    nb.ip(&["addr", "add", "192.168.88.2/24", "dev", "ul0"])?;
    na.offloads_off("ul0")?;
    nb.offloads_off("ul0")?;
    let a1 = pod(&tag, &na, 1)?;
    let _b1 = pod(&tag, &nb, 2)?;

    let mut xa = Xvsd::start_with(&na, CONFIG, &[("pipeline.flows", &base_flows(1))])?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config_b = if cores > 1 {
        CONFIG.replace("workers = [0]", "workers = [1]")
    } else {
        CONFIG.to_string()
    };
    let mut xb = Xvsd::start_with(&nb, &config_b, &[("pipeline.flows", &base_flows(2))])?;
    wait_running(&xa)?;
    wait_running(&xb)?;

    let pcap = std::env::temp_dir().join(format!("xvs-{tag}.pcap"));
    let result = scenario(&xa, &xb, &a1, &mid, &pcap);
    let _ = std::fs::remove_file(&pcap);
    for x in [&xa, &xb] {
        eprintln!("{}", x.appctl(&["xvs/show"])?);
    }
    result?;
    xa.stop()?;
    xb.stop()?;
    if na.any_xdp()? || nb.any_xdp()? {
        bail!("XDP program left behind");
    }
    Ok(())
}

fn scenario(xa: &Xvsd, xb: &Xvsd, a1: &Netns, mid: &Netns, pcap: &std::path::Path) -> Result<()> {
    // A flow naming an unmapped tun_metadata field is refused, as OVS refuses it.
    let (ok, out) = ofctl(xa, "add-flow", &[&a_to_b("0xab1234")])?;
    if ok || !out.contains("NXFMFC_INVALID_TLV_FIELD") {
        bail!("unmapped tun_metadata0 accepted: {out}");
    }
    for x in [xa, xb] {
        ofctl_ok(x, "add-tlv-map", &[MAP])?;
    }
    let dump = ofctl_ok(xb, "dump-tlv-map", &[])?;
    eprintln!("{dump}");
    let row = dump
        .lines()
        .find(|l| l.contains("tun_metadata0"))
        .context("no tun_metadata0 row in dump-tlv-map")?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    if cols != ["0xffff", "0x42", "4", "tun_metadata0"] {
        bail!("dump-tlv-map row: {row}");
    }
    // Mapping the same option twice is refused with OVS's error.
    let (ok, out) = ofctl(xb, "add-tlv-map", &[MAP])?;
    if ok || !out.contains("NXTTMFC_ALREADY_MAPPED") {
        bail!("duplicate mapping accepted: {out}");
    }

    ofctl_ok(
        xb,
        "add-flow",
        &["priority=100,in_port=100,tun_id=1,tun_metadata0=0x1234/0xffff,ip,nw_dst=10.244.2.2,actions=set_field:02:00:00:00:00:fe->eth_src,set_field:02:00:00:00:02:02->eth_dst,output:1"],
    )?;
    let flows = ofctl_ok(xb, "dump-flows", &[])?;
    // ovs-ofctl has no option map: it takes the fewest bytes holding value and mask (2) as
    // the field's length, under which 0xffff is all ones, so it prints no mask (it does the
    // same for OVS's replies). xvsd's own printer shows the mask (see xvs/dump-flows below).
    if !flows.contains("tun_metadata0=0x1234,") {
        bail!("dump-flows does not show the tun_metadata match: {flows}");
    }
    let ours = xb.appctl(&["xvs/dump-flows"])?;
    if !ours.contains("tun_metadata0=0x1234/0xffff") {
        bail!("xvs/dump-flows does not show the masked match: {ours}");
    }
    // ofproto/trace takes and shows the field, and follows the masked match.
    let trace = xb.appctl(&[
        "ofproto/trace",
        "br-int",
        "in_port=100,tun_id=1,tun_metadata0=0x551234,ip,nw_dst=10.244.2.2",
    ])?;
    eprintln!("{trace}");
    let megaflow = trace
        .lines()
        .find(|l| l.starts_with("Megaflow:"))
        .unwrap_or("");
    let actions = trace
        .lines()
        .find(|l| l.starts_with("Datapath actions:"))
        .unwrap_or("");
    if !trace.contains("Flow: in_port=100,tun_id=1,tun_metadata0=0x551234")
        || !megaflow.contains("tun_metadata0=0x1234/0xffff")
        || !actions.ends_with(",1")
    {
        bail!("ofproto/trace: {trace}");
    }
    ofctl_ok(xa, "add-flow", &[&a_to_b("0xab1234")])?;
    let flows = ofctl_ok(xa, "dump-flows", &[])?;
    if !flows.contains("set_field:0xab1234->tun_metadata0") {
        bail!("dump-flows does not show the set_field: {flows}");
    }

    // Capture the underlay in the middle while Pod a1 pings b1: tun_metadata0 matches under
    // the mask (0xab1234 & 0xffff == 0x1234), so the pings pass.
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            mid.name(),
            "timeout",
            "20",
            "tcpdump",
            "-i",
            "ua",
            "-U",
        ])
        .args(["-c", "3", "-w"])
        .arg(pcap)
        .args(["udp dst port 6081 and src host 192.168.88.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tcpdump")?;
    std::thread::sleep(Duration::from_millis(1500));
    let pinged = ping(a1, "10.244.2.2", 3);
    let _ = dump.wait();
    pinged?;
    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=|"])
        .args(["-e", "geneve.vni", "-e", "geneve.option.class", "-e"])
        .args(["geneve.option.type", "-e", "geneve.option.length", "-e"])
        .args(["geneve.option.unknown.data"])
        .output()
        .context("running tshark")?;
    let text = String::from_utf8_lossy(&fields.stdout);
    eprintln!("tshark: {text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 3 {
        bail!("expected 3 captured Geneve packets: {text}");
    }
    for l in lines {
        let c: Vec<String> = l.split('|').map(|s| s.replace(':', "")).collect();
        // VNI 1, one option: class 0xffff, type 0x42, 4 bytes of data 00ab1234 (tshark's
        // length, 8, counts the 4-byte option header too; it repeats the field per subtree).
        let ok = c.len() == 5
            && u32::from_str_radix(c[0].trim_start_matches("0x"), 16).ok() == Some(1)
            && c[1] == "0xffff"
            && c[2] == "0x42"
            && c[3].split(',').all(|n| n == "8")
            && c[4] == "00ab1234";
        if !ok {
            bail!("unexpected Geneve option fields: {l}");
        }
    }

    // Another value under the mask: node B's flow no longer matches, the pings are dropped.
    ofctl_ok(xa, "add-flow", &[&a_to_b("0xab1235")])?;
    ping_fails(a1, "10.244.2.2", 3)?;
    // And back.
    ofctl_ok(xa, "add-flow", &[&a_to_b("0x1234")])?;
    ping(a1, "10.244.2.2", 2)?;
    Ok(())
}
