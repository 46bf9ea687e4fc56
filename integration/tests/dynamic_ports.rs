//! Ports attached and detached while xvsd runs, as a CNI plugin does for each Pod:
//! `ovs-appctl -t <run_dir>/xvsd.ctl xvs/add-port IFNAME [ofport=N]` and `xvs/del-port IFNAME`
//! (and the same JSON-RPC spoken directly on the socket, without any OVS tool), with the real
//! `ovs-ofctl` watching: `monitor` prints the OFPT_PORT_STATUS messages, `dump-ports-desc`
//! and `dump-ports` follow. Traffic is ping between Pod namespaces through an OpenFlow
//! pipeline on AF_XDP ports.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd, EXAMPLE_PODS};

/// Forwarding by destination MAC, sources checked per port; output to port 3 before it
/// exists (or after it left) is a drop counted as `no_such_port`.
const FLOWS: &str = "\
table=0,priority=100,in_port=1,dl_src=02:0a:0a:00:00:02,actions=goto_table:1
table=0,priority=100,in_port=2,dl_src=02:0a:0a:00:00:03,actions=goto_table:1
table=0,priority=100,in_port=3,dl_src=02:0a:0a:00:00:04,actions=goto_table:1
table=0,priority=0,actions=drop
table=1,priority=100,dl_dst=02:0a:0a:00:00:02,actions=output:1
table=1,priority=100,dl_dst=02:0a:0a:00:00:03,actions=output:2
table=1,priority=100,dl_dst=02:0a:0a:00:00:04,actions=output:3
table=1,priority=0,actions=drop
";

const TWO_PODS: &str = r#"
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

/// No port at all: every Pod comes at run time; NORMAL switches between whatever is there.
const NO_PORTS: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
flows = "@DIR@/pipeline.flows"
pmd_sleep_max_us = 100
"#;

fn skip() -> bool {
    if !is_root() || Command::new("ovs-ofctl").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and ovs-ofctl");
        return true;
    }
    false
}

/// Pod `i` of [`EXAMPLE_PODS`]: its namespace with `eth0` (address, MAC), the node side
/// `pa0`/`pb0`/`pc0` in `node`, the other pods as permanent neighbours.
fn pod(tag: &str, node: &Netns, i: usize) -> Result<Netns> {
    let (name, ip, mac, port) = EXAMPLE_PODS[i];
    let ns = Netns::new(&format!("{tag}{name}"))?;
    veth(&ns, "eth0", mac, node, port)?;
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
    ns.offloads_off("eth0")?;
    for (_, qip, qmac, _) in EXAMPLE_PODS.iter().filter(|q| q.1 != ip) {
        ns.static_neigh(qip, qmac)?;
    }
    Ok(ns)
}

/// One ping, one second to answer.
fn pings(from: &Netns, ip: &str) -> bool {
    from.exec(&["ping", "-c", "1", "-W", "1", ip]).is_ok()
}

/// Pings until one answer (the first packets of a new path may meet a cold cache), up to 5.
fn reaches(from: &Netns, ip: &str) -> bool {
    (0..5).any(|_| pings(from, ip))
}

fn ofctl(x: &Xvsd, args: &[&str]) -> Result<String> {
    let target = format!("unix:{}", x.run_dir().join("br-int.mgmt").display());
    let mut v = vec!["ovs-ofctl", "-O", "OpenFlow15"];
    let (opts, rest): (Vec<&str>, Vec<&str>) = args.iter().partition(|a| a.starts_with("--"));
    v.extend(opts);
    v.push(rest[0]);
    v.push(&target);
    v.extend(&rest[1..]);
    xvs_integration::sh(&v)
}

/// The error text of a unixctl command that must fail (ovs-appctl exits 2 and prints it).
fn appctl_error(x: &Xvsd, args: &[&str]) -> String {
    match x.appctl(args) {
        Ok(out) => panic!("{args:?} succeeded: {out}"),
        Err(e) => format!("{e:#}"),
    }
}

/// The same JSON-RPC `ovs-appctl` speaks, straight on the socket: (result, error).
fn unixctl(x: &Xvsd, method: &str, params: &[&str]) -> Result<(Option<String>, Option<String>)> {
    let mut s = UnixStream::connect(x.run_dir().join("xvsd.ctl"))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let req = serde_json::json!({"id": 7, "method": method, "params": params});
    s.write_all(req.to_string().as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let reply: serde_json::Value = serde_json::from_str(&text).context("reply")?;
    assert_eq!(reply["id"], 7);
    Ok((
        reply["result"].as_str().map(str::to_string),
        reply["error"].as_str().map(str::to_string),
    ))
}

/// `ovs-ofctl monitor` on the bridge, its output lines on a channel.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Monitor {
    fn start(x: &Xvsd) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // The monitor serves unixctl; keep its socket out of /var/run/openvswitch.
        let unixctl = format!("--unixctl={}", dir.path().join("monitor.ctl").display());
        let target = format!("unix:{}", x.run_dir().join("br-int.mgmt").display());
        let mut child = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow15", &unixctl, "monitor", &target])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ovs-ofctl monitor")?;
        let out = child.stdout.take().context("monitor stdout")?;
        let err = child.stderr.take().context("monitor stderr")?;
        let (tx, lines) = mpsc::channel();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                if err_tx.send(l).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // PORT_STATUS goes to the sessions open when a port changes: give it time to connect
        // and negotiate (a late monitor fails the test, it cannot pass it).
        std::thread::sleep(Duration::from_millis(1000));
        Ok(Self {
            child,
            lines,
            seen: Vec::new(),
            _dir: dir,
        })
    }

    /// Waits up to 5 s for a line containing `what`; returns it.
    fn expect(&mut self, what: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
                return Ok(l.clone());
            }
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(l);
            }
        }
        bail!(
            "monitor never printed {what:?}; it printed:\n{}",
            self.seen.join("\n")
        )
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `xvs/show`'s frame line of worker 0: (pool, free, held by ports); no frame lost.
fn frames(x: &Xvsd) -> Result<(u64, u64, u64)> {
    let show = x.appctl(&["xvs/show"])?;
    let line = show
        .lines()
        .find_map(|l| l.trim().strip_prefix("frames: pool "))
        .context("no frames line")?
        .to_string();
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    match n[..] {
        [pool, free, held, 0] => Ok((pool, free, held)),
        _ => bail!("bad frames line, or frames lost: {line}"),
    }
}

/// No frame of the worker's pool went missing: free + held by ports = pool, as published
/// between two iterations (two equal readings, so not a mix of two publications).
fn assert_frames_accounted(x: &Xvsd) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let first = frames(x)?;
        std::thread::sleep(Duration::from_millis(30));
        let second = frames(x)?;
        if first == second {
            let (pool, free, held) = first;
            assert_eq!(free + held, pool, "frames lost: {first:?}");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("frame gauges never settled: {first:?} {second:?}");
        }
    }
}

fn no_such_port_drops(x: &Xvsd) -> Result<u64> {
    let stats = x.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let line = stats
        .lines()
        .find(|l| l.contains("dropped (no_such_port)"))
        .context("no no_such_port counter")?;
    Ok(line.rsplit(' ').next().unwrap_or("0").parse()?)
}

#[test]
fn pod_port_added_deleted_and_readded_at_run_time() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let tag = unique_tag("dp");
    let node = Netns::new(&format!("{tag}n"))?;
    let a = pod(&tag, &node, 0)?;
    let _b = pod(&tag, &node, 1)?;
    let x = Xvsd::start_with(&node, TWO_PODS, &[("pipeline.flows", FLOWS)])?;
    let mut mon = Monitor::start(&x)?;
    assert!(
        reaches(&a, "10.10.0.3"),
        "a -> b before anything: {}",
        x.stderr()
    );

    // The third Pod appears after xvsd started.
    let c = pod(&tag, &node, 2)?;
    assert!(!pings(&a, "10.10.0.4"), "c is not a port yet");
    assert!(
        no_such_port_drops(&x)? >= 1,
        "output:3 before port 3 exists"
    );
    let before = ofctl(&x, &["dump-ports-desc"])?;
    assert!(!before.contains("pc0"), "{before}");

    assert_frames_accounted(&x)?;
    let (_, _, held_before) = frames(&x)?;
    assert_eq!(
        x.appctl(&["xvs/add-port", "pc0", "ofport=3"])?,
        "ofport=3\n"
    );
    let add = mon.expect("OFPT_PORT_STATUS")?;
    assert!(add.contains("ADD: 3(pc0)"), "{add}");
    assert!(
        reaches(&a, "10.10.0.4"),
        "a -> c after add-port: {}",
        x.stderr()
    );
    assert!(reaches(&c, "10.10.0.3"), "c -> b after add-port");
    let desc = ofctl(&x, &["dump-ports-desc"])?;
    assert!(desc.contains(" 3(pc0): addr:"), "{desc}");
    let stats = ofctl(&x, &["dump-ports", "3"])?;
    assert!(stats.contains("port  3: rx pkts="), "{stats}");
    assert!(
        !stats.contains("rx pkts=0,"),
        "port 3 counted traffic: {stats}"
    );
    let named = ofctl(&x, &["--names", "dump-flows", "table=1"])?;
    assert!(named.contains("actions=output:pc0"), "{named}");
    let show = x.appctl(&["xvs/show"])?;
    assert!(show.contains("port 3: pc0"), "{show}");
    assert!(show.contains("runtime ports: added 1, deleted 0"), "{show}");
    // The new socket's fill ring holds frames of the worker's pool.
    assert_frames_accounted(&x)?;
    assert!(frames(&x)?.2 > held_before, "{show}");

    // Errors, each leaving everything as it was.
    let e = appctl_error(&x, &["xvs/add-port", "nope0"]);
    assert!(e.contains("nope0: no such interface"), "{e}");
    let e = appctl_error(&x, &["xvs/add-port", "pc0"]);
    assert!(e.contains("pc0: already a port (ofport 3)"), "{e}");
    let e = appctl_error(&x, &["xvs/add-port", "pa0", "ofport=9"]);
    assert!(e.contains("already a port"), "{e}");
    let e = appctl_error(&x, &["xvs/add-port", "lo", "ofport=1"]);
    assert!(e.contains("ofport 1: already used by port pa0"), "{e}");
    assert!(!node.ip(&["-d", "link", "show", "lo"])?.contains("prog/xdp"));
    assert!(
        reaches(&a, "10.10.0.4"),
        "a -> c after the refused commands"
    );

    // Delete: c is cut off, the others go on, the XDP program leaves the veth.
    assert_eq!(x.appctl(&["xvs/del-port", "pc0"])?, "");
    let del = mon.expect("DEL: 3(pc0)")?;
    assert!(del.starts_with("OFPT_PORT_STATUS"), "{del}");
    let drops = no_such_port_drops(&x)?;
    assert!(!pings(&a, "10.10.0.4"), "c still reachable after del-port");
    assert!(
        no_such_port_drops(&x)? > drops,
        "output to the deleted port is counted"
    );
    assert!(reaches(&a, "10.10.0.3"), "a -> b after c left");
    assert!(!node
        .ip(&["-d", "link", "show", "pc0"])?
        .contains("prog/xdp"));
    assert!(!ofctl(&x, &["dump-ports-desc"])?.contains("pc0"));
    assert!(
        !x.appctl(&["xvs/show"])?.contains("pc0"),
        "counters kept out"
    );
    // Its frames are back in the pool.
    assert_frames_accounted(&x)?;
    assert!(frames(&x)?.2 <= held_before + 256, "{:?}", frames(&x)?);
    let e = appctl_error(&x, &["xvs/del-port", "pc0"]);
    assert!(e.contains("pc0: no such port"), "{e}");

    // Re-added with the same number, through the socket without ovs-appctl.
    let (result, error) = unixctl(&x, "xvs/add-port", &["pc0", "ofport=3"])?;
    assert_eq!((result.as_deref(), error), (Some("ofport=3\n"), None));
    mon.seen.clear();
    mon.expect("ADD: 3(pc0)")?;
    assert!(
        reaches(&a, "10.10.0.4"),
        "a -> c after re-adding: {}",
        x.stderr()
    );
    let (result, error) = unixctl(&x, "xvs/add-port", &["pc0"])?;
    assert_eq!(result, None);
    assert!(error.is_some_and(|e| e.contains("already a port")));
    assert!(!x.stderr().contains("lost to worker"), "{}", x.stderr());
    Ok(())
}

#[test]
fn every_pod_comes_at_run_time() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let tag = unique_tag("dz");
    let node = Netns::new(&format!("{tag}n"))?;
    let x = Xvsd::start_with(
        &node,
        NO_PORTS,
        &[("pipeline.flows", "priority=0,actions=NORMAL\n")],
    )?;
    assert!(!ofctl(&x, &["dump-ports-desc"])?.contains("addr:"));
    let a = pod(&tag, &node, 0)?;
    let b = pod(&tag, &node, 1)?;
    // Numbers picked by xvsd: the lowest free ones.
    assert_eq!(x.appctl(&["xvs/add-port", "pa0"])?, "ofport=1\n");
    assert_eq!(x.appctl(&["xvs/add-port", "pb0"])?, "ofport=2\n");
    let desc = ofctl(&x, &["dump-ports-desc"])?;
    assert!(
        desc.contains(" 1(pa0)") && desc.contains(" 2(pb0)"),
        "{desc}"
    );
    // NORMAL floods until it learns: the flood reaches the ports added at run time.
    assert!(reaches(&a, "10.10.0.3"), "a -> b: {}", x.stderr());
    assert!(reaches(&b, "10.10.0.2"), "b -> a");
    assert_eq!(x.appctl(&["xvs/del-port", "pb0"])?, "");
    assert!(!pings(&a, "10.10.0.3"), "b still reachable");
    assert_eq!(x.appctl(&["xvs/add-port", "pb0"])?, "ofport=2\n");
    assert!(reaches(&a, "10.10.0.3"), "a -> b after re-adding");
    // The Pod goes first (its namespace and veth deleted), then the CNI's del-port: the
    // port closes on a vanished interface and gives its frames back.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.has_link("pb0") {
        assert!(Instant::now() < deadline, "pb0 outlived its Pod");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = appctl_error(&x, &["xvs/add-port", "pb0"]);
    assert!(e.contains("pb0: stale port (ofport 2)"), "{e}");
    assert!(
        !e.contains("already a port"),
        "the CNI would take it for done: {e}"
    );
    assert_eq!(x.appctl(&["xvs/del-port", "pb0"])?, "");
    let e = appctl_error(&x, &["xvs/add-port", "pb0"]);
    assert!(e.contains("pb0: no such interface"), "{e}");
    assert_frames_accounted(&x)?;
    assert!(!x.stderr().contains("lost to worker"), "{}", x.stderr());
    let desc = ofctl(&x, &["dump-ports-desc"])?;
    assert!(desc.contains(" 1(pa0)") && !desc.contains("pb0"), "{desc}");
    Ok(())
}

/// Pod `i`'s UDP socket on `port`, bound inside its namespace.
fn udp(ns: &Netns, i: usize, port: u16) -> Result<std::net::UdpSocket> {
    let addr = format!("{}:{port}", EXAMPLE_PODS[i].1);
    ns.run(move || -> Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(&addr)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(s)
    })?
}

/// Adds and deletes a Pod port (`cycles` times) while a stream flows between two other Pods;
/// returns the add-port and del-port times as `ovs-appctl` sees them.
fn churn_during_stream(cycles: usize) -> Result<(Vec<Duration>, Vec<Duration>, String)> {
    let tag = unique_tag("dc");
    let node = Netns::new(&format!("{tag}n"))?;
    let a = pod(&tag, &node, 0)?;
    let b = pod(&tag, &node, 1)?;
    let _c = pod(&tag, &node, 2)?;
    let x = Xvsd::start_with(&node, TWO_PODS, &[("pipeline.flows", FLOWS)])?;
    assert!(reaches(&a, "10.10.0.3"), "a -> b: {}", x.stderr());
    let tx = udp(&a, 0, 7001)?;
    let rx = udp(&b, 1, 7000)?;
    const COUNT: u32 = 3000;
    let sent_all = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = sent_all.clone();
    let sender = std::thread::spawn(move || -> Result<()> {
        for seq in 0..COUNT {
            tx.send_to(&seq.to_be_bytes(), "10.10.0.3:7000")?;
            // About 10,000 packets per second, spread over the churn.
            if seq % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    });
    let receiver = std::thread::spawn(move || {
        let mut got = std::collections::BTreeSet::new();
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < COUNT as usize && Instant::now() < deadline {
            // A read that times out after the last datagram was sent: the stream is over.
            let finished = sent_all.load(std::sync::atomic::Ordering::Acquire);
            match rx.recv(&mut buf) {
                Ok(4) => {
                    got.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                }
                Ok(_) => {}
                Err(_) if finished => break,
                Err(_) => {}
            }
        }
        got.len()
    });
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for _ in 0..cycles {
        let t = Instant::now();
        assert_eq!(
            x.appctl(&["xvs/add-port", "pc0", "ofport=3"])?,
            "ofport=3\n"
        );
        adds.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(x.appctl(&["xvs/del-port", "pc0"])?, "");
        dels.push(t.elapsed());
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    assert_eq!(
        received,
        COUNT as usize,
        "a -> b lost {} of {COUNT} datagrams while pc0 came and went {cycles} times: {}",
        COUNT as usize - received,
        x.appctl(&["dpif-netdev/pmd-stats-show"])?
    );
    assert!(!x.stderr().contains("lost to worker"), "{}", x.stderr());
    assert_frames_accounted(&x)?;
    let show = x.appctl(&["xvs/show"])?;
    let pauses = show
        .lines()
        .find(|l| l.contains("runtime ports:"))
        .context("no runtime ports line")?
        .trim()
        .to_string();
    let want = format!("added {cycles}, deleted {cycles}, refused 0");
    assert!(pauses.contains(&want), "{pauses}");
    Ok((adds, dels, pauses))
}

#[test]
fn other_pods_keep_their_traffic_while_ports_come_and_go() -> Result<()> {
    if skip() {
        return Ok(());
    }
    churn_during_stream(5)?;
    Ok(())
}

/// Figures for BENCHMARKS.md: `cargo test -p xvs-integration --test dynamic_ports --
/// --ignored --nocapture add_del_latency`.
#[test]
#[ignore = "measurement, run by hand"]
fn add_del_latency() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut adds, mut dels, pauses) = churn_during_stream(20)?;
    adds.sort();
    dels.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "add-port (ovs-appctl round trip): median {:.1} ms, max {:.1} ms; del-port: median {:.1} ms, max {:.1} ms; 20 cycles, no datagram of the a -> b stream lost",
        ms(adds[adds.len() / 2]),
        ms(adds[adds.len() - 1]),
        ms(dels[dels.len() / 2]),
        ms(dels[dels.len() - 1])
    );
    println!("{pauses}");
    Ok(())
}
