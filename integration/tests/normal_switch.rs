//! xvsd as an L2 learning switch (`actions=NORMAL`) between three Pods on AF_XDP ports in
//! namespaces: ARP broadcasts flood, replies teach the MAC table, pings work between every
//! pair, and the flow statistics of traffic served from the caches show through the real
//! `ovs-appctl` (`xvs/dump-flows`), as does the MAC table (`xvs/fdb-show`); a learned flow's
//! idle timeout is kept alive by cached traffic and expires when it stops.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};

const FLOWS: &str = "\
table=0,priority=10,icmp,actions=NORMAL
table=0,priority=0,actions=NORMAL
";

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
flows = "@DIR@/normal.flows"
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

const PODS: [(&str, &str, &str, &str); 3] = [
    ("a", "10.30.0.2", "02:1e:00:00:00:02", "pa0"),
    ("b", "10.30.0.3", "02:1e:00:00:00:03", "pb0"),
    ("c", "10.30.0.4", "02:1e:00:00:00:04", "pc0"),
];

/// Runs ping in `ns` and returns its output, whatever its exit status (a lost reply is for
/// the caller to judge, with xvsd's counters at hand).
fn ping(ns: &Netns, args: &[&str]) -> Result<String> {
    let out = ns
        .command(std::path::Path::new("/usr/bin/ping"))
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n_packets` of the flow whose dump line contains `needle`.
fn n_packets(x: &Xvsd, needle: &str) -> Result<u64> {
    let dump = x.appctl(&["xvs/dump-flows"])?;
    for line in dump.lines().filter(|l| l.contains(needle)) {
        if let Some(v) = line
            .split(", ")
            .find_map(|f| f.trim().strip_prefix("n_packets="))
        {
            return Ok(v.parse()?);
        }
    }
    bail!("no flow with {needle} in:\n{dump}")
}

/// The node namespace and the three Pods (namespace, IP).
fn topology(prefix: &str) -> Result<(Netns, Vec<(Netns, &'static str)>)> {
    let tag = unique_tag(prefix);
    let node = Netns::new(&format!("{tag}n"))?;
    let mut pods = Vec::new();
    for (name, ip, mac, port) in PODS {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        veth(&ns, "eth0", mac, &node, port)?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.offloads_off("eth0")?;
        pods.push((ns, ip));
    }
    Ok((node, pods))
}

#[test]
fn normal_switches_between_three_pods() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, AF_XDP)");
        return Ok(());
    }
    let (node, pods) = topology("l2")?;
    let x = Xvsd::start_with(&node, CONFIG, &[("normal.flows", FLOWS)])?;
    // No static neighbours: ARP requests are broadcasts that NORMAL floods.
    let pairs = [(0, 1), (0, 2), (1, 2)];
    for &(from, to) in &pairs {
        let out = pods[from]
            .0
            .exec(&["ping", "-c", "5", "-i", "0.2", "-W", "2", pods[to].1])?;
        assert!(
            out.contains("5 received"),
            "ping {} -> {}: {out}\n{}",
            pods[from].1,
            pods[to].1,
            x.stderr()
        );
    }
    // Every Pod's MAC learned on its port.
    let fdb = x.appctl(&["xvs/fdb-show"])?;
    for (i, (_, _, mac, _)) in PODS.iter().enumerate() {
        let row = fdb.lines().find(|l| l.contains(mac));
        let port = row.and_then(|l| l.split_whitespace().next());
        assert_eq!(port, Some((i + 1).to_string().as_str()), "{mac} in\n{fdb}");
    }
    // 3 pairs x 5 echo requests and replies = 30 ICMP packets; most from the caches. The
    // workers credit the caches' hits every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut icmp = n_packets(&x, "icmp")?;
    while icmp < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        icmp = n_packets(&x, "icmp")?;
    }
    assert_eq!(icmp, 30, "{}", x.appctl(&["xvs/dump-flows"])?);
    assert!(
        n_packets(&x, "priority=0")? >= 6,
        "ARP went through the catch-all"
    );
    let stats = x.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let hits: u64 = stats
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("emc hits: ")
                .or_else(|| l.strip_prefix("megaflow hits: "))
        })
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(
        hits > 0,
        "some packets were served from the caches:\n{stats}"
    );
    Ok(())
}

#[test]
fn cached_traffic_keeps_a_learned_idle_flow_until_it_stops() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, AF_XDP)");
        return Ok(());
    }
    let (node, pods) = topology("it")?;
    // ARP learns a flow with idle_timeout=3 that marks ICMP (reg1=1); ICMP is switched by
    // NORMAL either way, counted by table 2's reg1=1 flow while the learned flow lives. The
    // timeout thus starts with the traffic, not with xvsd (whose start may take seconds).
    let flows = "\
table=0,priority=10,arp,actions=learn(table=1,idle_timeout=3,priority=5,eth_type=0x800,nw_proto=1,load:0x1->NXM_NX_REG1[]),NORMAL
table=0,priority=10,icmp,actions=resubmit(,1),resubmit(,2)
table=0,priority=0,actions=NORMAL
table=2,priority=10,reg1=0x1,actions=NORMAL
table=2,priority=0,actions=NORMAL
";
    let x = Xvsd::start_with(&node, CONFIG, &[("normal.flows", flows)])?;
    let b = pods[1].1;
    // Warm-up: ARP, and with it the learned flow.
    let out = ping(&pods[0].0, &["-c", "1", "-W", "2", b])?;
    assert!(
        out.contains("1 received"),
        "{out}\n{}\n{}\n{}\n{}",
        x.stderr(),
        x.appctl(&["xvs/show"])?,
        x.appctl(&["xvs/dump-flows"])?,
        x.appctl(&["xvs/fdb-show"])?
    );
    std::thread::sleep(Duration::from_millis(300));
    // The learned flow is table 1's only flow (the learning flow's actions say
    // "table=1,idle_timeout=3" too).
    let learned = ", table=1, ";
    let before = n_packets(&x, learned)?;
    // 6 s of pings, twice the idle timeout, nearly all served from the caches.
    let out = ping(&pods[0].0, &["-c", "12", "-i", "0.5", "-W", "2", b])?;
    assert!(
        out.contains("12 received"),
        "{out}\n{}\n{}",
        x.appctl(&["xvs/show"])?,
        x.appctl(&["xvs/dump-flows"])?
    );
    let mut seen = n_packets(&x, learned)? - before;
    let deadline = Instant::now() + Duration::from_secs(1);
    while seen < 24 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = n_packets(&x, learned)? - before;
    }
    assert_eq!(
        seen, 24,
        "the learned flow survived its traffic and counted it"
    );
    assert_eq!(n_packets(&x, "reg1=0x1")?, before + 24);
    // Silence: gone within the idle timeout plus the 1 s expiry period.
    let deadline = Instant::now() + Duration::from_secs(6);
    while x.appctl(&["xvs/dump-flows"])?.contains(learned) {
        assert!(Instant::now() < deadline, "the learned flow did not expire");
        std::thread::sleep(Duration::from_millis(200));
    }
    let show = x.appctl(&["xvs/show"])?;
    assert!(
        show.contains("flows expired (idle/hard timeout): 1"),
        "{show}"
    );
    // Pings still work, now without the mark.
    let out = ping(&pods[0].0, &["-c", "2", "-i", "0.2", "-W", "2", b])?;
    assert!(out.contains("2 received"), "{out}");
    assert_eq!(n_packets(&x, "reg1=0x1")?, before + 24);
    Ok(())
}

#[test]
fn a_meter_limits_a_ping_flood() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, AF_XDP)");
        return Ok(());
    }
    let (node, pods) = topology("mt")?;
    let config = CONFIG.replace(
        "flows = \"@DIR@/normal.flows\"",
        "flows = \"@DIR@/normal.flows\"\nmeters = \"@DIR@/meters\"",
    );
    let meters = "meter=1,pktps,burst,stats,bands=type=drop,rate=20,burst_size=10\n";
    let flows = "table=0,priority=10,icmp,actions=meter:1,NORMAL\n\
                 table=0,priority=0,actions=NORMAL\n";
    let x = Xvsd::start_with(
        &node,
        &config,
        &[("normal.flows", flows), ("meters", meters)],
    )?;
    // 200 echo requests in about 1 s; requests and replies share the meter's 20 packets/s
    // (plus a burst of 10).
    let out = ping(
        &pods[0].0,
        &["-c", "200", "-i", "0.005", "-W", "1", pods[1].1],
    )?;
    let received: u32 = out
        .split(", ")
        .find_map(|f| f.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        (3..=40).contains(&received),
        "{received} replies:\n{out}\n{}\n{}\n{}",
        x.appctl(&["xvs/show"])?,
        x.appctl(&["xvs/dump-flows"])?,
        x.appctl(&["xvs/fdb-show"])?
    );
    let stats = x.appctl(&["xvs/meter-stats"])?;
    let band_drops: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("0: packet_count:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(band_drops >= 150, "{stats}");
    let show = x.appctl(&["xvs/show"])?;
    assert!(show.contains("drop meter_drop: "), "{show}");
    Ok(())
}
