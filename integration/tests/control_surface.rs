//! The control surface with the real OVS tools and `xvsctl`: `ovs-appctl` runs `dpif/show`,
//! `dpctl/dump-flows`, `coverage/show`, `vlog/set`/`vlog/list`, `list-commands` against xvsd
//! after real traffic between namespaces; `ovs-ofctl mod-port` takes a port down and up
//! (checked with `dump-ports-desc` and traffic); `xvsctl capture` writes a pcap of a ping that
//! `tshark` reads, and `xvsctl stats` shows the per-port counters.

use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};
use xvs_integration::{is_root, sh, unique_tag, veth, Netns, Xvsd};

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
"#;

const FLOWS: &str = "\
table=0,priority=10,in_port=1,actions=output:2
table=0,priority=10,in_port=2,actions=output:1
";

struct Setup {
    pods: Vec<Netns>,
    _node: Netns,
    xvsd: Xvsd,
}

impl Setup {
    fn new() -> Result<Self> {
        let tag = unique_tag("cs");
        let node = Netns::new(&format!("{tag}n"))?;
        let mut pods = Vec::new();
        for (name, ip, mac, port) in [
            ("a", "10.10.0.2", "02:0a:0a:00:00:02", "pa0"),
            ("b", "10.10.0.3", "02:0a:0a:00:00:03", "pb0"),
        ] {
            let ns = Netns::new(&format!("{tag}{name}"))?;
            veth(&ns, "eth0", mac, &node, port)?;
            ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            ns.offloads_off("eth0")?;
            pods.push(ns);
        }
        pods[0].static_neigh("10.10.0.3", "02:0a:0a:00:00:03")?;
        pods[1].static_neigh("10.10.0.2", "02:0a:0a:00:00:02")?;
        let xvsd = Xvsd::start_with(&node, CONFIG, &[("pipeline.flows", FLOWS)])?;
        Ok(Setup {
            pods,
            _node: node,
            xvsd,
        })
    }

    /// `count` pings from pod a to pod b, 0.1 s apart; true when all were answered.
    fn ping(&self, count: u32) -> bool {
        self.pods[0]
            .exec(&[
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.1",
                "-W",
                "1",
                "10.10.0.3",
            ])
            .is_ok()
    }

    fn target(&self) -> String {
        format!("unix:{}", self.xvsd.run_dir().join("br-int.mgmt").display())
    }

    fn ofctl(&self, args: &[&str]) -> Result<String> {
        let target = self.target();
        let mut v = vec!["ovs-ofctl", "-O", "OpenFlow15", args[0], &target];
        v.extend_from_slice(&args[1..]);
        sh(&v)
    }

    /// `ovs-appctl` that is expected to fail: its stderr.
    fn appctl_err(&self, args: &[&str]) -> Result<String> {
        let ctl = self.xvsd.run_dir().join("xvsd.ctl");
        let out = Command::new("ovs-appctl")
            .arg("-t")
            .arg(&ctl)
            .args(args)
            .output()?;
        if out.status.success() {
            bail!("ovs-appctl {args:?} succeeded");
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn skip() -> bool {
    if !is_root()
        || Command::new("ovs-appctl")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipped: needs root and ovs-appctl");
        return true;
    }
    false
}

/// Polls `f` until it returns `Some` or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `packets:N` of a datapath-flow line.
fn packets_of(line: &str) -> u64 {
    line.split(", ")
        .find_map(|p| p.strip_prefix("packets:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn appctl_shows_ports_megaflows_coverage_and_log_levels() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let s = Setup::new()?;
    let x = &s.xvsd;
    assert!(s.ping(5), "pod a reaches pod b: {}", x.stderr());

    // dpif/show: the bridge's ports with OpenFlow/datapath numbers and types.
    let show = x.appctl(&["dpif/show"])?;
    let lines: Vec<&str> = show.lines().collect();
    assert!(lines[0].starts_with("xvs@xvs-netdev: hit:"), "{show}");
    assert_eq!(lines[1], "  br-int:", "{show}");
    assert_eq!(lines[2], "    pa0 1/1: (afxdp)", "{show}");
    assert_eq!(lines[3], "    pb0 2/2: (afxdp)", "{show}");

    // dpctl/dump-flows: the worker's megaflows, with the packets of the ping.
    let flows = wait_for(Duration::from_secs(3), || {
        let f = x.appctl(&["dpctl/dump-flows"])?;
        let hit = f.lines().any(|l| {
            l.contains("in_port(1),") && l.contains("eth_type(0x0800)") && packets_of(l) >= 5
        });
        Ok(hit.then_some(f))
    })?;
    assert!(
        flows.starts_with("flow-dump from pmd on cpu core: 0\n"),
        "{flows}"
    );
    let icmp = flows
        .lines()
        .find(|l| l.contains("in_port(1),") && l.contains("eth_type(0x0800)"))
        .context("the ping's megaflow")?;
    assert!(
        icmp.starts_with("recirc_id(0),in_port(1),packet_type(ns=0,id=0),"),
        "{icmp}"
    );
    assert!(icmp.ends_with(", actions:2"), "{icmp}");
    assert!(icmp.contains(", bytes:"), "{icmp}");
    assert!(icmp.contains(", used:0."), "{icmp}");
    let named = x.appctl(&["dpctl/dump-flows", "--names"])?;
    assert!(
        named
            .lines()
            .any(|l| l.contains("in_port(pa0),") && l.ends_with("actions:pb0")),
        "{named}"
    );
    let verbose = x.appctl(&["dpctl/dump-flows", "-m"])?;
    assert!(
        verbose
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("ufid:")),
        "{verbose}"
    );
    let err = s.appctl_err(&["dpctl/dump-flows", "--bogus"])?;
    assert!(err.contains("--bogus: unknown option"), "{err}");

    // coverage/show: OVS's layout; the received packets are counted.
    let cov = x.appctl(&["coverage/show"])?;
    assert!(
        cov.starts_with(
            "Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash="
        ),
        "{cov}"
    );
    let received = cov
        .lines()
        .find(|l| l.starts_with("netdev_received "))
        .context("netdev_received")?;
    let total: u64 = received
        .rsplit("total: ")
        .next()
        .and_then(|n| n.parse().ok())
        .context("total")?;
    assert!(total >= 10, "{received}");
    assert!(
        cov.lines()
            .last()
            .is_some_and(|l| l.ends_with(" events never hit")),
        "{cov}"
    );
    assert!(s.ping(2));
    let later = wait_for(Duration::from_secs(2), || {
        let c = x.appctl(&["coverage/show"])?;
        let t: u64 = c
            .lines()
            .find(|l| l.starts_with("netdev_received "))
            .and_then(|l| l.rsplit("total: ").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok((t > total).then_some(t))
    })?;
    assert!(later >= total + 4);

    // vlog: debug lines of the OpenFlow server appear only once asked for.
    s.ofctl(&["dump-flows"])?;
    assert!(!x.stderr().contains("|ofserver|DBG|"), "{}", x.stderr());
    assert_eq!(x.appctl(&["vlog/set", "ofserver:console:dbg"])?, "");
    s.ofctl(&["dump-flows"])?;
    let log = x.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("|ofserver|DBG|received message type")),
        "{log}"
    );
    let list = x.appctl(&["vlog/list"])?;
    assert!(
        list.starts_with("                 console    syslog    file\n"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l == "ofserver           DBG       INFO       INFO"),
        "{list}"
    );
    let err = s.appctl_err(&["vlog/set", "nosuch:dbg"])?;
    assert!(
        err.starts_with("no destination, level, or module \"nosuch\"\n"),
        "{err}"
    );
    x.appctl(&["vlog/set", "ANY:console:info"])?;

    // list-commands and version in OVS's layout.
    let cmds = x.appctl(&["list-commands"])?;
    assert!(cmds.starts_with("The available commands are:\n"), "{cmds}");
    for c in [
        "  coverage/show           \n",
        "  dpif/show               \n",
        "  dpctl/dump-flows        [-m] [--names | --no-names] [dp]\n",
        "  vlog/set                {spec}\n",
    ] {
        assert!(cmds.contains(c), "{c:?} missing:\n{cmds}");
    }
    let names: Vec<&str> = cmds
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted by name, as OVS lists them");
    assert!(x.appctl(&["version"])?.starts_with("xvsd (xvs) "));
    Ok(())
}

#[test]
fn mod_port_down_stops_traffic_and_up_restores_it() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let s = Setup::new()?;
    let x = &s.xvsd;
    assert!(s.ping(2), "{}", x.stderr());

    s.ofctl(&["mod-port", "pa0", "down"])?;
    let desc = s.ofctl(&["dump-ports-desc"])?;
    let pa0: Vec<&str> = desc
        .lines()
        .skip_while(|l| !l.starts_with(" 1(pa0)"))
        .take(3)
        .collect();
    assert_eq!(
        pa0.get(1).map(|l| l.trim()),
        Some("config:     PORT_DOWN"),
        "{desc}"
    );
    assert_eq!(
        pa0.get(2).map(|l| l.trim()),
        Some("state:      LINK_DOWN"),
        "{desc}"
    );
    // `ovs-ofctl show` (OpenFlow 1.0 by default) lists the ports from FEATURES_REPLY.
    let show = sh(&["ovs-ofctl", "show", &s.target()])?;
    assert!(
        show.starts_with("OFPT_FEATURES_REPLY (xid=0x2): dpid:"),
        "{show}"
    );
    let pa0: Vec<&str> = show
        .lines()
        .skip_while(|l| !l.starts_with(" 1(pa0)"))
        .take(3)
        .collect();
    assert_eq!(
        pa0.get(1).map(|l| l.trim()),
        Some("config:     PORT_DOWN"),
        "{show}"
    );
    assert_eq!(
        pa0.get(2).map(|l| l.trim()),
        Some("state:      LINK_DOWN"),
        "{show}"
    );
    assert!(!s.ping(3), "a down port must not forward");
    let dropped = wait_for(Duration::from_secs(2), || {
        let show = x.appctl(&["xvs/show"])?;
        Ok(show
            .lines()
            .find_map(|l| l.trim().strip_prefix("drop port_down: "))
            .and_then(|n| n.parse::<u64>().ok()))
    })?;
    assert!(dropped >= 3, "{dropped}");

    // Other config bits are kept (no-flood is OpenFlow 1.0 only; 1.5 has no-packet-in).
    s.ofctl(&["mod-port", "pa0", "no-packet-in"])?;
    let desc = s.ofctl(&["dump-ports-desc"])?;
    assert!(
        desc.contains("config:     PORT_DOWN NO_PACKET_IN"),
        "{desc}"
    );

    // Without -O, ovs-ofctl 3.1 speaks OpenFlow 1.0: FEATURES (the port list), PORT_MOD,
    // BARRIER in 1.0 layouts.
    sh(&["ovs-ofctl", "mod-port", &s.target(), "pa0", "up"])?;
    let desc = s.ofctl(&["dump-ports-desc"])?;
    assert!(desc.contains("config:     NO_PACKET_IN"), "{desc}");
    assert!(desc.contains("state:      LIVE"), "{desc}");
    assert!(s.ping(2), "the port is up again: {}", x.stderr());

    // no-forward on pb0: the requests are dropped on output (counted port_no_fwd).
    s.ofctl(&["mod-port", "pb0", "no-forward"])?;
    assert!(!s.ping(2), "no-forward must drop the output");
    let no_fwd = wait_for(Duration::from_secs(2), || {
        let show = x.appctl(&["xvs/show"])?;
        Ok(show
            .lines()
            .find_map(|l| l.trim().strip_prefix("drop port_no_fwd: "))
            .and_then(|n| n.parse::<u64>().ok()))
    })?;
    assert!(no_fwd >= 2, "{no_fwd}");
    s.ofctl(&["mod-port", "pb0", "forward"])?;
    assert!(s.ping(2), "forwarding again: {}", x.stderr());

    let err = Command::new("ovs-ofctl")
        .args([
            "-O",
            "OpenFlow15",
            "mod-port",
            &s.target(),
            "nosuch",
            "down",
        ])
        .output()?;
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("couldn't find port `nosuch'"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    Ok(())
}

/// The `xvsctl` binary next to the test binary's target directory (`cargo build -p xvsctl`).
fn xvsctl() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("target directory")?;
    let bin = dir.join("xvsctl");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p xvsctl`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `tshark -r file -Y filter` frame count.
fn tshark_count(file: &std::path::Path, filter: &str) -> Result<usize> {
    let out = sh(&["tshark", "-r", &file.display().to_string(), "-Y", filter])?;
    Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
}

#[test]
fn xvsctl_captures_a_ping_to_pcap_and_shows_stats() -> Result<()> {
    if skip() || Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("skipped: needs root, ovs-appctl and tshark");
        return Ok(());
    }
    let bin = xvsctl()?;
    let s = Setup::new()?;
    let run = s.xvsd.run_dir();
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("pa0.pcap");

    // The verbs that map to unixctl print what ovs-appctl prints.
    let out = Command::new(&bin)
        .arg("--run-dir")
        .arg(&run)
        .arg("show")
        .output()?;
    assert!(out.status.success());
    // The same text, but for the hit/missed counts of the first line: a stray packet (a Pod's
    // IPv6 neighbour traffic) may arrive between the two calls.
    let without_counts = |t: &str| -> String {
        let mut lines = t.lines();
        let first = lines.next().unwrap_or("");
        let bridge = first.split(" hit:").next().unwrap_or("").to_string();
        std::iter::once(bridge)
            .chain(lines.map(str::to_string))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ours = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(ours.starts_with("xvs@xvs-netdev: hit:"), "{ours}");
    assert_eq!(
        without_counts(&ours),
        without_counts(&s.xvsd.appctl(&["dpif/show"])?)
    );
    let out = Command::new(&bin)
        .arg("--run-dir")
        .arg(&run)
        .args(["vlog", "nosuch:dbg"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "no destination, level, or module \"nosuch\"\n"
    );

    // capture: started, then a 4-packet ping; the pcap holds the 4 requests pod a sent into
    // pa0 and the 4 replies xvsd sent out of it.
    let mut child = Command::new(&bin)
        .arg("--run-dir")
        .arg(&run)
        .args(["capture", "pa0", "-w"])
        .arg(&pcap)
        .args(["--timeout", "8"])
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("capturing on pa0") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(10))
        .context("xvsctl did not start capturing")?;
    assert!(s.ping(4), "{}", s.xvsd.stderr());
    let status = child.wait()?;
    let summary = reader.join().map_err(|_| anyhow::anyhow!("reader"))?;
    assert!(status.success(), "{summary}");
    assert!(summary.contains(" dropped"), "{summary}");
    assert!(summary.contains(", 0 dropped"), "{summary}");
    assert_eq!(
        tshark_count(&pcap, "icmp.type == 8 && ip.src == 10.10.0.2")?,
        4
    );
    assert_eq!(
        tshark_count(&pcap, "icmp.type == 0 && ip.dst == 10.10.0.2")?,
        4
    );

    // -c stops after N frames.
    let pcap2 = dir.path().join("two.pcap");
    let child = Command::new(&bin)
        .arg("--run-dir")
        .arg(&run)
        .args(["capture", "pb0", "-c", "2", "--timeout", "8", "-w"])
        .arg(&pcap2)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.ping(3));
    let out = child.wait_with_output()?;
    assert!(out.status.success());
    assert_eq!(tshark_count(&pcap2, "icmp")?, 2);
    // Capturing is off again: the workers' masks are clear, nothing more is mirrored.
    let captured = || -> Result<u64> {
        let cov = s.xvsd.appctl(&["coverage/show"])?;
        cov.lines()
            .find(|l| l.starts_with("capture_frame "))
            .and_then(|l| l.rsplit("total: ").next())
            .and_then(|n| n.parse().ok())
            .context("capture_frame")
    };
    std::thread::sleep(Duration::from_millis(100));
    let before = captured()?;
    assert!(before >= 10, "{before}");
    assert!(s.ping(2));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(captured()?, before);

    // stats: plain text when not on a terminal; two samples, the second with rates.
    let out = Command::new(&bin)
        .arg("--run-dir")
        .arg(&run)
        .args(["stats", "--interval", "0.3", "--count", "2"])
        .output()?;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), 2, "{text}");
    assert!(blocks[0].starts_with("worker 0 (core 0): rx "), "{text}");
    assert!(blocks[1].contains("/s)"), "{text}");
    let row = blocks[1]
        .lines()
        .find(|l| l.trim_start().starts_with("pa0 "))
        .context("pa0 row")?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "1", "{row}");
    let rx: u64 = cols[2].parse()?;
    assert!(rx >= 7, "{row}");
    assert!(cols[3].parse::<f64>().is_ok(), "{row}");
    Ok(())
}
