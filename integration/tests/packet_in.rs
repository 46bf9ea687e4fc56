//! Packet-ins from real traffic between namespaces, received by the real
//! `ovs-ofctl -O OpenFlow15 monitor` (Open vSwitch 3.1) with the NXT_PACKET_IN2 format.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use xvs_integration::ofclient::OfClient;
use xvs_integration::udp::socket_with_timeout;
use xvs_integration::{is_root, two_pod_openflow_node, Netns, Xvsd};
use xvs_openflow::{Body, OfpError};

struct Setup {
    _pods: Vec<Netns>,
    _node: Netns,
    xvsd: Xvsd,
}

impl Setup {
    fn new() -> Result<Self> {
        let (node, pods, xvsd) = two_pod_openflow_node("pi")?;
        Ok(Setup {
            _pods: pods,
            _node: node,
            xvsd,
        })
    }

    fn target(&self) -> String {
        format!("unix:{}", self.xvsd.run_dir().join("br-int.mgmt").display())
    }

    fn ofctl(&self, opts: &[&str], cmd: &str, args: &[&str]) -> Result<String> {
        self.xvsd.ofctl(opts, cmd, args)
    }
}

/// `ovs-ofctl -O OpenFlow15 monitor <target> 65534 -P nxt_packet_in2`, with what it prints
/// on stdout and on stderr merged into `lines` (what it receives may come on either stream);
/// killed, and its readers joined, on drop.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
    // The monitor serves unixctl; its socket lives here, out of /var/run/openvswitch.
    _unixctl_dir: tempfile::TempDir,
}

impl Monitor {
    fn start(target: &str) -> Result<Self> {
        let unixctl_dir = tempfile::tempdir()?;
        let unixctl = format!(
            "--unixctl={}",
            unixctl_dir.path().join("monitor.ctl").display()
        );
        let mut child = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow15", &unixctl, "monitor"])
            .args([target, "65534", "-P", "nxt_packet_in2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ovs-ofctl monitor")?;
        let out = child.stdout.take().context("monitor stdout")?;
        let err = child.stderr.take().context("monitor stderr")?;
        let (lines_tx, lines) = mpsc::channel();
        let err_tx = lines_tx.clone();
        let readers = vec![
            std::thread::spawn(move || forward_lines(out, &lines_tx)),
            std::thread::spawn(move || forward_lines(err, &err_tx)),
        ];
        Ok(Monitor {
            child,
            lines,
            readers,
            _unixctl_dir: unixctl_dir,
        })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Sends each line read from `from` to `to` until EOF or until nobody listens.
fn forward_lines(from: impl std::io::Read, to: &mpsc::Sender<String>) {
    for l in BufReader::new(from).lines() {
        let Ok(l) = l else { break };
        if to.send(l).is_err() {
            break;
        }
    }
}

fn skip() -> bool {
    if !is_root() || Command::new("ovs-ofctl").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and ovs-ofctl");
        return true;
    }
    false
}

#[test]
fn monitor_receives_packet_in2_with_userdata() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let s = Setup::new()?;
    let pods = &s._pods;
    s.xvsd.add_flows(&["cookie=0x77,table=0,priority=100,udp,nw_dst=10.10.0.3,tp_dst=7000,actions=set_field:0x2a->reg1,controller(userdata=01.02.03.04,max_len=200),output:2", "table=0,priority=0,actions=drop"])?;

    let mon = Monitor::start(&s.target())?;
    // The monitor has connected once the server has a session that set its format; give it
    // a moment (its first packet-ins would otherwise be unclaimed, which the test tolerates).
    std::thread::sleep(Duration::from_millis(500));

    let rx = socket_with_timeout(&pods[1], "10.10.0.3:7000", Duration::from_millis(200))?;
    let tx = pods[0].run(|| UdpSocket::bind("10.10.0.2:7001"))??;
    let mut delivered = 0;
    let mut text = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = false;
    let mut i = 0u32;
    while Instant::now() < deadline && !found {
        tx.send_to(&i.to_be_bytes(), "10.10.0.3:7000")?;
        i += 1;
        let mut buf = [0u8; 64];
        if rx.recv_from(&mut buf).is_ok() {
            delivered += 1;
        }
        while let Ok(l) = mon.lines.recv_timeout(Duration::from_millis(50)) {
            if l.contains("userdata=01.02.03.04") {
                found = true;
            }
            text.push(l);
        }
    }
    drop(mon);
    let all = text.join("\n");
    if !found {
        bail!(
            "no packet-in with the userdata after {i} packets:\n{all}\n{}",
            s.xvsd.stderr()
        );
    }
    let head = text
        .iter()
        .find(|l| l.starts_with("NXT_PACKET_IN2"))
        .context("no NXT_PACKET_IN2 line")?;
    assert!(head.contains("cookie=0x77"), "{head}");
    assert!(head.contains("reg1=0x2a"), "{head}");
    assert!(head.contains("in_port=1"), "{head}");
    assert!(head.contains("(via action)"), "{head}");
    assert!(all.contains("udp,"), "{all}");
    assert!(all.contains("tp_dst=7000"), "{all}");
    // The packet also went on (the controller action does not stop the pipeline).
    assert!(delivered >= 1, "no packet delivered after the packet-in");
    Ok(())
}

#[test]
fn paused_packet_in_resumes_to_the_namespace() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let s = Setup::new()?;
    let pods = &s._pods;
    s.xvsd.add_flows(&["cookie=0x5,table=0,priority=100,udp,nw_dst=10.10.0.3,tp_dst=7000,actions=set_field:0x7->reg2,controller(pause,userdata=aa.bb),goto_table:3", "table=3,priority=10,reg2=0x7,actions=output:2", "table=0,priority=0,actions=drop"])?;
    let mut c = OfClient::connect(&s.xvsd.run_dir().join("br-int.mgmt"))?;
    c.send(Body::SetPacketInFormat(2))?;
    c.barrier()?;

    let rx = socket_with_timeout(&pods[1], "10.10.0.3:7000", Duration::from_millis(300))?;
    let tx = pods[0].run(|| UdpSocket::bind("10.10.0.2:7001"))??;
    tx.send_to(b"paused", "10.10.0.3:7000")?;
    let pin = loop {
        match c.recv()?.body {
            Body::PacketIn2(p) => break p,
            _ => continue,
        }
    };
    assert_eq!(pin.userdata, vec![0xaa, 0xbb]);
    assert_eq!(pin.cookie, 0x5);
    assert!(
        !pin.continuation.is_empty(),
        "a paused packet-in has a continuation"
    );
    let mut buf = [0u8; 64];
    // Paused: the packet went nowhere.
    assert!(
        rx.recv_from(&mut buf).is_err(),
        "delivered before the resume"
    );

    // A continuation that is not ours: an error, and still nothing delivered.
    let mut bad = pin.clone();
    bad.continuation = vec![0x80, 0x04, 0, 5, 1, 0, 0, 0];
    c.send(Body::Resume(bad))?;
    let err = loop {
        if let Body::Error { error, .. } = c.recv()?.body {
            break error;
        }
    };
    assert_eq!(err, OfpError::NX_STALE);

    c.send(Body::Resume(pin))?;
    c.barrier()?;
    let (n, _) = rx
        .recv_from(&mut buf)
        .with_context(|| format!("not delivered after the resume\n{}", s.xvsd.stderr()))?;
    assert_eq!(&buf[..n], b"paused");
    Ok(())
}

/// Antrea's `meter:N,controller(...)`: the datapath meter ahead of the controller action
/// polices the packet-ins (only those that follow it), while an output ahead of the meter
/// still takes every packet. Checked with the real `ovs-ofctl monitor` and `meter-stats`.
#[test]
fn a_meter_ahead_of_the_controller_action_polices_its_packet_ins() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let s = Setup::new()?;
    let pods = &s._pods;
    s.ofctl(
        &[],
        "add-meter",
        &["meter=1,pktps,burst,stats,bands=type=drop,rate=10,burst_size=10"],
    )?;
    s.xvsd.add_flows(&[
        "table=0,priority=100,udp,nw_dst=10.10.0.3,tp_dst=7002,actions=output:2,resubmit(,1)",
        "table=1,priority=100,actions=meter:1,controller(userdata=05.06,max_len=128)",
        "table=0,priority=0,actions=drop",
    ])?;

    let mon = Monitor::start(&s.target())?;
    std::thread::sleep(Duration::from_millis(500));

    let rx = socket_with_timeout(&pods[1], "10.10.0.3:7002", Duration::from_millis(500))?;
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut got = 0u64;
        while rx.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    // 200 packets in 1 s against 10 packet-ins/s with a burst of 10: about 20 packet-ins.
    let tx = pods[0].run(|| UdpSocket::bind("10.10.0.2:7003"))??;
    let start = Instant::now();
    for i in 0..200u32 {
        tx.send_to(&i.to_be_bytes(), "10.10.0.3:7002")?;
        let next = start + Duration::from_millis(5) * (i + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // The most the meter may let through: burst plus rate over the sending time.
    let most = 10 + (10.0 * start.elapsed().as_secs_f64()).ceil() as u64 + 1;
    let delivered = counter
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let mut packet_ins = 0u64;
    while let Ok(l) = mon.lines.recv_timeout(Duration::from_millis(300)) {
        if l.contains("userdata=05.06") {
            packet_ins += 1;
        }
    }
    drop(mon);
    let stats = s.ofctl(&[], "meter-stats", &[])?;
    let num = |key: &str| -> u64 {
        stats
            .split(key)
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let (metered, band_drops) = (num("packet_in_count:"), num("0: packet_count:"));
    let ctx = format!(
        "delivered {delivered}, packet-ins {packet_ins}, meter-stats:\n{stats}\n{}",
        s.xvsd.stderr()
    );
    eprintln!("{ctx}");
    assert_eq!(
        delivered, 200,
        "the output ahead of the meter takes every packet; {ctx}"
    );
    assert_eq!(metered, 200, "every packet met the meter once; {ctx}");
    assert!(
        (10..=most).contains(&packet_ins),
        "about burst + rate × sending time; {ctx}"
    );
    assert_eq!(
        packet_ins + band_drops,
        200,
        "what the meter passed reached the monitor; {ctx}"
    );
    Ok(())
}
