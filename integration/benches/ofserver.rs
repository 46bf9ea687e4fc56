//! OpenFlow server benchmark (run as root): flow programming through an ATOMIC bundle over
//! xvsd's `<bridge>.mgmt` socket, and the time from a bundle's commit to its adoption by every
//! worker (as xvsd measures it: `ovs-appctl xvs/ofserver-show`).
//!
//! ```sh
//! cargo build --release -p xvsd
//! sudo cargo bench -p xvs-integration --bench ofserver -- [--flows N] [--reps R] [--workers W]
//! ```
//! Each repetition sends OPEN, N BUNDLE_ADD(FLOW_MOD add) of distinct Antrea-style policy
//! flows, CLOSE and COMMIT in one stream, and times from the first byte written to the COMMIT
//! reply; the flows are deleted (untimed) before the next repetition. Then 200 small bundles
//! (10 flows each) are committed one after the other and the adoption times are reported.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};
use xvs_flowtable::flow::FlowModCommand;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::parse::parse_flow_mod;
use xvs_integration::ofclient::OfClient;
use xvs_integration::{is_root, unique_tag, Netns, Xvsd};
use xvs_openflow::{
    bundle, encode, Body, BundleControl, FlowModMsg, Message, NO_BUFFER, OFP15_VERSION,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flow(i: usize, round: u64) -> Body {
    let text = format!(
        "cookie=0x{:x},table={},priority={},ip,nw_src=10.{}.{}.{},nw_dst=10.200.{}.0/24,actions=set_field:0x{:x}->reg3,goto_table:40",
        round << 48,
        12 + i % 4,
        10000 + i % 50,
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff,
        i % 64,
        i & 0xffff_ffff
    );
    let fm = parse_flow_mod(&text, FlowModCommand::Add, &NameMap::new()).expect("flow parses");
    Body::FlowMod(Box::new(FlowModMsg {
        fm,
        buffer_id: NO_BUFFER,
    }))
}

fn ctrl(out: &mut Vec<u8>, xid: u32, id: u32, ctrl_type: u16) {
    encode(
        &Message {
            version: OFP15_VERSION,
            xid,
            body: Body::BundleControl(BundleControl {
                bundle_id: id,
                ctrl_type,
                flags: bundle::ATOMIC,
                properties: Vec::new(),
            }),
        },
        out,
    );
}

/// OPEN, the adds, CLOSE, COMMIT as one byte stream; returns it and the COMMIT's xid.
fn bundle_bytes(id: u32, flows: &[Body], xid0: u32) -> (Vec<u8>, u32) {
    let mut out = Vec::with_capacity(flows.len() * 120);
    ctrl(&mut out, xid0, id, bundle::OPEN_REQUEST);
    for (i, f) in flows.iter().enumerate() {
        let xid = xid0 + 1 + i as u32;
        encode(
            &Message {
                version: OFP15_VERSION,
                xid,
                body: Body::BundleAdd {
                    bundle_id: id,
                    flags: bundle::ATOMIC,
                    message: Box::new(Message {
                        version: OFP15_VERSION,
                        xid,
                        body: f.clone(),
                    }),
                },
            },
            &mut out,
        );
    }
    let n = flows.len() as u32;
    ctrl(&mut out, xid0 + n + 1, id, bundle::CLOSE_REQUEST);
    ctrl(&mut out, xid0 + n + 2, id, bundle::COMMIT_REQUEST);
    (out, xid0 + n + 2)
}

fn wait_commit(c: &mut OfClient, xid: u32) -> Result<()> {
    loop {
        let m = c.recv()?;
        if m.xid != xid {
            if let Body::Error { error, .. } = m.body {
                bail!("error {error} for xid {}", m.xid);
            }
            continue;
        }
        match m.body {
            Body::BundleControl(BundleControl {
                ctrl_type: bundle::COMMIT_REPLY,
                ..
            }) => return Ok(()),
            other => bail!("commit failed: {other:?}"),
        }
    }
}

fn show(x: &Xvsd) -> Result<(u64, u64, u64, u64)> {
    let text = x.appctl(&["xvs/ofserver-show"])?;
    let num = |key: &str| -> u64 {
        text.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.trim_end_matches(',').parse().ok())
            .unwrap_or(0)
    };
    Ok((
        num("adopted by all workers: "),
        num("last "),
        num("avg "),
        num("max "),
    ))
}

/// CPU nanoseconds used so far by xvsd's OpenFlow server thread (the machine is shared, so
/// the rate per CPU second is reported next to the wall-clock rate).
fn server_cpu_ns(x: &Xvsd) -> u64 {
    let Ok(pid) = std::fs::read_to_string(x.run_dir().join("xvsd.pid")) else {
        return 0;
    };
    let dir = format!("/proc/{}/task", pid.trim());
    let Ok(tasks) = std::fs::read_dir(&dir) else {
        return 0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "ofserver" {
            return std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn main() -> Result<()> {
    if !is_root() {
        eprintln!("ofserver bench: needs root (network namespace, xvsd)");
        return Ok(());
    }
    let n = arg("--flows", 100_000);
    let reps = arg("--reps", 3);
    let workers = arg("--workers", 1);
    let cores: Vec<String> = (0..workers).map(|c| c.to_string()).collect();
    // One tap port per worker (the port's `worker` is its core).
    let ports: String = (0..workers.max(1))
        .map(|w| {
            format!(
                "\n[[port]]\nname = \"t{w}\"\ntype = \"tap\"\nofport = {}\nworker = {w}\n",
                w + 1
            )
        })
        .collect();
    let config = format!(
        "bridge = \"br-int\"\nrun_dir = \"@RUN@\"\nworkers = [{}]\nforwarding = \"openflow\"\n{}",
        cores.join(", "),
        ports
    );
    let ns = Netns::new(&unique_tag("ob"))?;
    let xvsd = Xvsd::start(&ns, &config)?;
    let mgmt = xvsd.run_dir().join("br-int.mgmt");
    let mut c = OfClient::connect(&mgmt)?;
    println!("flows per bundle: {n}, repetitions: {reps}, workers: {workers}");
    println!(
        "{:>4} {:>8} {:>9} {:>12} {:>10} {:>14} {:>14}",
        "rep", "flows", "wall s", "flows/s", "server CPU s", "flows/CPU s", "adoption us"
    );
    let mut rates = Vec::new();
    let mut xid = 1000u32;
    for rep in 0..reps {
        let flows: Vec<Body> = (0..n).map(|i| flow(i, rep as u64 + 1)).collect();
        let (bytes, commit) = bundle_bytes(rep as u32 + 1, &flows, xid);
        xid = commit + 1;
        let before = show(&xvsd)?.0;
        let cpu0 = server_cpu_ns(&xvsd);
        let t0 = Instant::now();
        c.send_raw(&bytes)?;
        wait_commit(&mut c, commit)?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu = (server_cpu_ns(&xvsd) - cpu0) as f64 / 1e9;
        // Wait until the server saw every worker adopt the commit.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut s = show(&xvsd)?;
        while s.0 <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            s = show(&xvsd)?;
        }
        let rate = n as f64 / secs;
        let cpu_rate = n as f64 / cpu.max(1e-9);
        rates.push((rate, cpu_rate));
        println!(
            "{rep:>4} {n:>8} {secs:>9.3} {rate:>12.0} {cpu:>10.3} {cpu_rate:>14.0} {:>14.1}",
            s.1 as f64 / 1000.0
        );
        // Untimed clean-up: delete the round's flows.
        let del = parse_flow_mod(
            &format!("cookie=0x{:x}/0xffff000000000000", (rep as u64 + 1) << 48),
            FlowModCommand::Delete,
            &NameMap::new(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.send(Body::FlowMod(Box::new(FlowModMsg {
            fm: del,
            buffer_id: NO_BUFFER,
        })))?;
        let errs = c.barrier()?;
        if !errs.is_empty() {
            bail!("delete failed: {errs:?}");
        }
    }
    let mut wall: Vec<f64> = rates.iter().map(|r| r.0).collect();
    let mut cpu: Vec<f64> = rates.iter().map(|r| r.1).collect();
    wall.sort_by(|a, b| a.total_cmp(b));
    cpu.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median flows/s through a bundle: {:.0} (wall), {:.0} per CPU second of the server",
        wall[wall.len() / 2],
        cpu[cpu.len() / 2]
    );

    // Small bundles: commit-to-adoption time of each, as the server measures it.
    let mut adoption_us = Vec::new();
    for b in 0..100u32 {
        let flows: Vec<Body> = (0..10).map(|i| flow(i + 10 * b as usize, 100)).collect();
        let (bytes, commit) = bundle_bytes(10_000 + b, &flows, xid);
        xid = commit + 1;
        let before = show(&xvsd)?.0;
        c.send_raw(&bytes)?;
        wait_commit(&mut c, commit)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut s = show(&xvsd)?;
        while s.0 <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
            s = show(&xvsd)?;
        }
        adoption_us.push(s.1 as f64 / 1000.0);
    }
    adoption_us.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: usize| adoption_us[(adoption_us.len() - 1) * p / 100];
    println!(
        "100 bundles of 10 flows, commit to adoption by every worker: min {:.1} us, median {:.1} us, p90 {:.1} us, max {:.1} us",
        pct(0),
        pct(50),
        pct(90),
        pct(100)
    );
    Ok(())
}
