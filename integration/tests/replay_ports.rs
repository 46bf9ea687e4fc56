//! xvsd on its in-memory ports: a `replay` port receiving a pcap loaded at start and a `null`
//! sink, with one flow loaded through the real `ovs-ofctl`. The replay is paused until
//! `ovs-appctl xvs/replay-start`, so a finite loop count must arrive whole at the sink, which
//! `ovs-ofctl dump-ports` shows (packets and bytes, both ports). Bad captures (missing file,
//! pcapng, no packets, a frame larger than the worker's frames) stop xvsd at start with a
//! message naming the problem.
//!
//! Needs root only for the network namespace xvsd runs in; no packet leaves xvsd.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use xvs_integration::{is_root, unique_tag, Netns, Xvsd};

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace)");
            return Ok(());
        }
    };
}

/// A classic pcap (little-endian, microseconds, Ethernet) holding `frames`.
fn pcap_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// UDP-in-IPv4 frames of different lengths (payload 18 + 7 i bytes); checksums are not
/// needed for an output flow.
fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let payload = 18 + 7 * i;
            let mut f = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00];
            let ip_len = (20 + 8 + payload) as u16;
            f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
            f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            f.extend_from_slice(&(10_000 + i as u16).to_be_bytes());
            f.extend_from_slice(&53u16.to_be_bytes());
            f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.extend(std::iter::repeat_n(i as u8, payload));
            f
        })
        .collect()
}

fn config(pcap_dir: &Path, loops: &str, paused: bool) -> String {
    let pcap_dir = pcap_dir.display();
    format!(
        r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100

[[port]]
name = "gen0"
type = "replay"
ofport = 1
pcap = "{pcap_dir}/traffic.pcap"
{loops}
paused = {paused}

[[port]]
name = "sink0"
type = "null"
ofport = 2
"#
    )
}

/// (rx packets, rx bytes, tx packets, tx bytes) of `port` in `ovs-ofctl dump-ports` output.
fn port_stats(dump: &str, port: u32) -> Option<(u64, u64, u64, u64)> {
    let value = |line: &str, key: &str| -> Option<u64> {
        let i = line.find(key)?;
        line[i + key.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        let t = l.trim();
        let Some(rest) = t.strip_prefix("port") else {
            continue;
        };
        if rest.split(':').next()?.trim().parse::<u32>().ok() != Some(port) {
            continue;
        }
        let tx = lines.next()?;
        return Some((
            value(t, "rx pkts=")?,
            value(t, "bytes=")?,
            value(tx, "tx pkts=")?,
            value(tx, "bytes=")?,
        ));
    }
    None
}

fn dump(x: &Xvsd) -> Result<String> {
    x.ofctl(&[], "dump-ports", &[])
}

#[test]
fn replay_loops_arrive_whole_at_the_null_port() -> Result<()> {
    require_root!();
    const LOOPS: u64 = 7;
    let set = frames(5);
    let bytes_per_loop: u64 = set.iter().map(|f| f.len() as u64).sum();
    let pcap = pcap_bytes(&set);
    let ns = Netns::new(&unique_tag("rpl"))?;
    let dir = capture_dir(Some(&pcap))?;
    let x = Xvsd::start(&ns, &config(dir.path(), &format!("loops = {LOOPS}"), true))?;

    x.ofctl(&[], "add-flow", &["in_port=1,actions=output:2"])?;
    // Paused: nothing received yet, however long we wait.
    std::thread::sleep(Duration::from_millis(300));
    let d = dump(&x)?;
    assert_eq!(port_stats(&d, 1), Some((0, 0, 0, 0)), "{d}");
    let out = x.appctl(&["xvs/replay-start", "gen0"])?;
    assert!(out.contains("gen0: started"), "{out}");

    let want = (LOOPS * set.len() as u64, LOOPS * bytes_per_loop);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = dump(&x)?;
        let sink = port_stats(&d, 2).with_context(|| format!("no port 2 in {d}"))?;
        if (sink.2, sink.3) == want {
            break;
        }
        if sink.2 > want.0 || Instant::now() > deadline {
            bail!("sink got {sink:?}, want {want:?} tx\n{d}\n{}", x.stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // And not one more: the replay stopped after its loops.
    std::thread::sleep(Duration::from_millis(300));
    let d = dump(&x)?;
    assert_eq!(port_stats(&d, 1), Some((want.0, want.1, 0, 0)), "{d}");
    assert_eq!(port_stats(&d, 2), Some((0, 0, want.0, want.1)), "{d}");
    let err = x
        .appctl(&["xvs/replay-start", "sink0"])
        .expect_err("not a replay port");
    assert!(
        err.to_string().contains("sink0: no such replay port"),
        "{err}"
    );
    let show = x.appctl(&["dpif/show"])?;
    assert!(show.contains("(replay") && show.contains("(null"), "{show}");
    Ok(())
}

#[test]
fn replay_stop_holds_and_start_resumes_forever() -> Result<()> {
    require_root!();
    let set = frames(3);
    let pcap = pcap_bytes(&set);
    let ns = Netns::new(&unique_tag("rpf"))?;
    let dir = capture_dir(Some(&pcap))?;
    let x = Xvsd::start(&ns, &config(dir.path(), "", false))?;
    x.ofctl(&[], "add-flow", &["in_port=1,actions=output:2"])?;
    let tx = |x: &Xvsd| -> Result<u64> {
        let d = dump(x)?;
        Ok(port_stats(&d, 2).with_context(|| d.clone())?.2)
    };
    // Not paused, no loop count: traffic flows and keeps flowing.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tx(&x)? < 10_000 {
        if Instant::now() > deadline {
            bail!("forever replay delivered {} packets in 20 s", tx(&x)?);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    x.appctl(&["xvs/replay-stop"])?;
    // Counters reach the control side within a publish period; let them settle.
    std::thread::sleep(Duration::from_millis(300));
    let held = tx(&x)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tx(&x)?, held, "a stopped replay kept sending");
    x.appctl(&["xvs/replay-start"])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tx(&x)? <= held {
        if Instant::now() > deadline {
            bail!("replay did not resume");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn bad_captures_stop_xvsd_with_a_clear_message() -> Result<()> {
    require_root!();
    let ns = Netns::new(&unique_tag("rpb"))?;
    let pcapng = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dataplane/io/testdata/lo.pcapng"),
    )?;
    let mut jumbo = frames(1);
    jumbo.push(vec![0x5a; 5000]);
    let cases: [(&str, Option<Vec<u8>>, &str); 5] = [
        ("missing", None, "traffic.pcap: No such file"),
        ("pcapng", Some(pcapng), "pcapng is not supported"),
        (
            "empty",
            Some(pcap_bytes(&[])),
            "the capture holds no packets",
        ),
        (
            "jumbo",
            Some(pcap_bytes(&jumbo)),
            "frame 1 has 5000 bytes, but the worker's frames hold 3840 bytes",
        ),
        (
            "garbage",
            Some(b"hello, this is not a capture file at all".to_vec()),
            "not a classic pcap file",
        ),
    ];
    for (what, bytes, needle) in cases {
        let dir = capture_dir(bytes.as_deref())?;
        let mut x = Xvsd::spawn(&ns, &config(dir.path(), "loops = 1", false))?;
        let status = x.wait(Duration::from_secs(20))?;
        assert!(!status.success(), "{what}: xvsd started");
        let err = x.stderr();
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("gen0"), "{what}: the port is not named: {err}");
    }
    Ok(())
}

/// A directory holding `traffic.pcap` (when `bytes` is given); removed on drop.
fn capture_dir(bytes: Option<&[u8]>) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("xvs-replay").tempdir()?;
    if let Some(b) = bytes {
        std::fs::write(dir.path().join("traffic.pcap"), b)?;
    }
    Ok(dir)
}
