//! A priority re-pack under a continuous flood of new connections (issue 9 §3: "re-packed on
//! collision without a traffic gap"). In the baseline tier (IngressDefaultRule, OpenFlow
//! priorities 10..180) pod a has `keep` (Allow from b, priority 16.9 → OF 11) above `floor`
//! (Drop everything, priority 17 → OF 10, the bottom). While b sends UDP datagrams to a, each
//! from a new source port (a new connection, so each one is evaluated by the policy tables),
//! a policy at 16.95 (guess OF 11 again, a Drop from c) is added: there is no free priority
//! between `keep` and `floor`, and `floor` cannot go lower, so the agent moves `keep` to 12
//! and puts the newcomer at 11, all in one bundle. A moment with `keep` missing or below
//! `floor` would drop datagrams; every one must arrive.

use anyhow::{bail, Context, Result};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_integration::agent::{manifests_dir, node_manifests, node_with_pods, Agent};
use xvs_integration::{is_root, Xvsd};

const A: &str = "10.10.0.2";
const PORT: u16 = 5000;

fn baseline(name: &str, priority: &str, rule: &str) -> String {
    format!(
        "---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  priority: {priority}\n  tier: baseline\n  appliedTo: [{{podSelector: {{matchLabels: {{app: a}}}}}}]\n  ingress: [{rule}]\n"
    )
}

/// The OpenFlow priorities in IngressDefaultRule of flows matching UDP port 5000 from `keep`
/// (its service clause) — one priority while no re-pack is half done.
fn keep_priorities(x: &Xvsd) -> Result<Vec<u16>> {
    let flows = x.ofctl(&[], "dump-flows", &["table=IngressDefaultRule"])?;
    let mut v: Vec<u16> = flows
        .lines()
        .filter(|l| l.contains("nw_src=10.10.0.3"))
        .filter_map(|l| {
            let p = l.split("priority=").nth(1)?;
            p.split([',', ' ']).next()?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

#[test]
fn a_repack_loses_no_packet_of_an_allowed_flood() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let (_node, pods, x) = node_with_pods("rp")?;
    let policies = baseline(
        "keep",
        "16.9",
        "{action: Allow, name: keep-b, from: [{podSelector: {matchLabels: {app: b}}}]}",
    ) + &baseline("floor", "17", "{action: Drop, name: floor}");
    let agent = Agent::start_synced(
        &x,
        &[
            ("00-cluster.yaml", &node_manifests()),
            ("10-policies.yaml", &policies),
        ],
        &[],
    )?;
    let before = keep_priorities(&x)?;
    if before != [11] {
        bail!("keep at {before:?}, expected OF 11 (baseline 16.9)");
    }
    let (a, b, c) = (&pods[0], &pods[1], &pods[2]);
    let receiver = a.run(|| UdpSocket::bind(format!("{A}:{PORT}")))??;
    receiver.set_read_timeout(Some(Duration::from_millis(1500)))?;
    let got = Arc::new(AtomicU32::new(0));
    let counter = {
        let got = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while receiver.recv(&mut buf).is_ok() {
                got.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // The floor drops what keep does not allow: c's datagrams are lost.
    let probe = c.run(|| -> std::io::Result<()> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.send_to(b"c", format!("{A}:{PORT}"))?;
        Ok(())
    })?;
    probe?;
    std::thread::sleep(Duration::from_millis(300));
    if got.load(Ordering::Relaxed) != 0 {
        bail!("c's datagram passed the floor");
    }
    // The flood: one datagram per millisecond, each from its own source port.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        b.run(move || {
            std::thread::spawn(move || -> Result<u32> {
                let mut sent = 0u32;
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && sent < 20_000 {
                    let s = UdpSocket::bind(("0.0.0.0", 20_000 + sent as u16))?;
                    s.send_to(b"b", format!("{A}:{PORT}"))?;
                    sent += 1;
                    let next = start + Duration::from_millis(u64::from(sent));
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                Ok(sent)
            })
        })?
    };
    let result = (|| -> Result<Vec<u16>> {
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(
            manifests_dir(&x).join("20-newcomer.yaml"),
            baseline(
                "newcomer",
                "16.95",
                "{action: Drop, name: drop-c, from: [{podSelector: {matchLabels: {app: c}}}]}",
            ),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = keep_priorities(&x)?;
            if now == [12] {
                break;
            }
            if Instant::now() > deadline {
                bail!("keep still at {now:?}; expected the re-pack to move it to 12");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flood goes on a while after the change.
        std::thread::sleep(Duration::from_millis(700));
        keep_priorities(&x)
    })();
    stop.store(true, Ordering::Relaxed);
    let sent = flood
        .join()
        .map_err(|_| anyhow::anyhow!("flood thread panicked"))??;
    counter
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let after = result.with_context(|| format!("agent log:\n{}", agent.log()))?;
    let received = got.load(Ordering::Relaxed);
    let log = agent.log();
    eprintln!("sent {sent}, received {received}, keep {before:?} -> {after:?}\n{log}");
    assert_eq!(after, [12], "keep moved by the re-pack");
    assert!(
        sent > 1000,
        "the flood ran through the change ({sent} sent)"
    );
    assert_eq!(received, sent, "no datagram of the allowed flood lost");
    // The newcomer is in force: c's datagrams are dropped by it (and the floor).
    let newcomer = x.ofctl(&[], "dump-flows", &["table=IngressDefaultRule"])?;
    assert!(
        newcomer
            .lines()
            .any(|l| l.contains("priority=11,") && l.contains("nw_src=10.10.0.4")),
        "{newcomer}"
    );
    Ok(())
}
