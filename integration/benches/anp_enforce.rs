//! Change → enforcement with 10k Antrea-native rules loaded (run as root): xvsd on AF_XDP
//! veths with three Pods, the agent watching a manifest directory holding 1000
//! ClusterNetworkPolicies × 10 rules, one file each (all realised on the node). Each repetition writes one
//! more policy to the directory — a Drop of a's connections to b's port 9000, which work
//! until then — and probes with new TCP connections until the first one is dropped; then
//! removes it and waits (untimed) until a gets through again.
//!
//! ```sh
//! cargo build --release -p xvsd -p xvs-agent
//! sudo XVSD_BIN=target/release/xvsd cargo bench -p xvs-integration --bench anp_enforce -- [--reps N] [--full-reload]
//! ```
//! `--full-reload` makes the agent re-read and parse every manifest file on each change (its
//! behaviour before the incremental reader), for the before/after comparison.
//! Reported per change: the total (file written → first dropped SYN), and its split read from
//! the agent's log line of that commit: detection and model reload (file written → plan
//! start; of it, the agent's own manifest reload and how many files it parsed, when the agent
//! prints them), plan (the incremental recomputation and the diff), bundle (written → COMMIT
//! reply), and the agent reading that reply → the first probe that was dropped (negative when
//! the probe was sent before the agent read the reply: the datapath already enforced it). The agent polls the directory every 20 ms with a 20 ms
//! debounce (`--poll-ms 20 --debounce-ms 20`).

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xvs_integration::agent::{
    agent_binary, connect, node_manifests, NODE_CONFIG, NODE_GW_MAC, NODE_PODS,
};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Policy `i` of the 10k rules: applied to one of the three Pods, ten ingress rules from the
/// others on ports 8000-8009 (never 9000, the probe's port).
fn policy(i: usize) -> String {
    let apps = ["a", "b", "c"];
    let mut rules = String::new();
    for r in 0..10 {
        rules.push_str(&format!(
            "  - {{action: {}, name: r{r}, from: [{{podSelector: {{matchLabels: {{app: {}}}}}}}], ports: [{{protocol: TCP, port: {}}}]}}\n",
            if r % 3 == 0 { "Drop" } else { "Allow" },
            apps[(i + r + 1) % 3],
            8000 + r
        ));
    }
    format!(
        "---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: pol{i}}}\nspec:\n  priority: {}.{:03}\n  appliedTo: [{{podSelector: {{matchLabels: {{app: {}}}}}}}]\n  ingress:\n{rules}",
        1 + i / 100,
        i % 100,
        apps[i % 3]
    )
}

/// The change: a Drop of a → b:9000 at a priority between the loaded policies (re-packing
/// may move some of them).
fn drop_a_to_b(rep: usize) -> String {
    format!(
        "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: change{rep}}}\nspec:\n  priority: 5.0005\n  appliedTo: [{{podSelector: {{matchLabels: {{app: b}}}}}}]\n  ingress:\n  - {{action: Drop, name: drop-a, from: [{{podSelector: {{matchLabels: {{app: a}}}}}}], ports: [{{protocol: TCP, port: 9000}}]}}\n"
    )
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// A listener on `addr` inside `ns` that closes what it accepts (the probes open thousands
/// of connections; none may linger).
fn accept_and_close(ns: &Netns, addr: &str, stop: Arc<AtomicBool>) -> Result<()> {
    let addr = addr.to_string();
    let l = ns.run(move || -> Result<std::net::TcpListener> {
        Ok(std::net::TcpListener::bind(&addr)?)
    })??;
    l.set_nonblocking(true)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    Ok(())
}

/// A new connection a → b:9000 within 30 ms (the veths answer in well under 1 ms).
fn connects(a: &Netns) -> bool {
    connect(a, "10.10.0.3:9000", Duration::from_millis(30)).is_ok()
}

/// The agent's manifest reload lines: (reload us, files parsed). Older agents print none.
fn reloads(log: &str) -> Vec<(u128, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("manifests reloaded in ").nth(1)?;
            let us = rest.split(' ').next()?.parse().ok()?;
            let parsed = rest
                .split("parsed ")
                .nth(1)?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((us, parsed))
        })
        .collect()
}

/// The agent's commit lines: (plan us, bundle us, committed at us).
fn commits(log: &str) -> Vec<(u128, u128, u128)> {
    log.lines()
        .filter_map(|l| {
            let plan = l.split(": plan ").nth(1)?.split(' ').next()?.parse().ok()?;
            let bundle = l
                .split(", bundle ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let at = l.split(", at ").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((plan, bundle, at))
        })
        .collect()
}

fn median_max(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

fn main() -> Result<()> {
    if !is_root() {
        eprintln!("anp_enforce bench: needs root (network namespaces, xvsd)");
        return Ok(());
    }
    let quick =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let reps = arg("--reps", if quick { 1 } else { 10 });
    let tag = unique_tag("ae");
    let node = Netns::new(&format!("{tag}n"))?;
    let mut pods = Vec::new();
    for (name, ip, mac, port, _) in NODE_PODS {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        veth(&ns, "eth0", mac, &node, port)?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.offloads_off("eth0")?;
        for (_, qip, qmac, _, _) in NODE_PODS.iter().filter(|p| p.1 != ip) {
            ns.static_neigh(qip, qmac)?;
        }
        ns.static_neigh("10.10.0.1", NODE_GW_MAC)?;
        pods.push(ns);
    }
    let x = Xvsd::start(&node, NODE_CONFIG)?;
    let dir = x.run_dir().join("manifests");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("00-cluster.yaml"), node_manifests())?;
    // One file per policy, as `kubectl apply -f dir/` sources usually are.
    for i in 0..1000 {
        std::fs::write(dir.join(format!("10-pol{i:04}.yaml")), policy(i))?;
    }
    let log_path = x.run_dir().join("agent.log");
    let mut agent = Command::new(agent_binary()?)
        .args(["run", "--poll-ms", "20", "--debounce-ms", "20"])
        .args(
            std::env::args()
                .any(|a| a == "--full-reload")
                .then_some("--full-reload"),
        )
        .arg("--manifests")
        .arg(&dir)
        .arg("--socket")
        .arg(x.run_dir().join("br-int.mgmt"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .context("starting xvs-agent")?;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let result = (|| -> Result<()> {
        let t0 = Instant::now();
        while !log().contains("in sync") {
            if t0.elapsed() > Duration::from_secs(300) {
                bail!("agent not in sync after 300 s:\n{}", log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let first = commits(&log());
        println!(
            "initial sync of 10k rules: {:?} after start (plan {} ms, bundle {} ms)",
            t0.elapsed(),
            first.first().map_or(0, |c| c.0 / 1000),
            first.first().map_or(0, |c| c.1 / 1000)
        );
        let stop = Arc::new(AtomicBool::new(false));
        accept_and_close(&pods[1], "10.10.0.3:9000", stop.clone())?;
        if !connects(&pods[0]) {
            bail!("a cannot reach b:9000 before any change");
        }
        println!(
            "{:>4} {:>9} {:>10} {:>9} {:>8} {:>8} {:>9} {:>12} {:>7}",
            "rep",
            "total ms",
            "detect ms",
            "reload ms",
            "parsed",
            "plan ms",
            "bundle ms",
            "reply→drop ms",
            "probes"
        );
        let (mut total, mut detect, mut plan, mut bundle, mut packet) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut reload = Vec::new();
        for rep in 0..reps {
            let before = commits(&log()).len();
            let reloads_before = reloads(&log()).len();
            let file = dir.join(format!("50-change{rep}.yaml"));
            let written = now_us();
            std::fs::write(&file, drop_a_to_b(rep))?;
            let mut probes = 0;
            let dropped_at = loop {
                let at = now_us();
                probes += 1;
                // A second failure confirms it (a lone failure could be the box's load).
                if !connects(&pods[0]) && !connects(&pods[0]) {
                    break at;
                }
                if now_us() - written > 30_000_000 {
                    bail!("the Drop was not enforced within 30 s:\n{}", log());
                }
            };
            // The commit line may land just after the first dropped probe.
            let deadline = Instant::now() + Duration::from_secs(5);
            let c = loop {
                let all = commits(&log());
                if all.len() > before {
                    break all[before];
                }
                if Instant::now() > deadline {
                    bail!("no commit logged for change {rep}:\n{}", log());
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let (p, b, at) = c;
            let ms = |us: u128| us as f64 / 1000.0;
            // The reload of this change (the first after the write), when the agent says.
            let r = reloads(&log()).get(reloads_before).copied();
            let t = ms(dropped_at.saturating_sub(written));
            let d = ms(at.saturating_sub(p + b).saturating_sub(written));
            // Signed: the first dropped probe may have been sent before the agent read the
            // COMMIT reply (the datapath already enforced the change).
            let k = (dropped_at as i128 - at as i128) as f64 / 1000.0;
            let (r_ms, parsed) = match r {
                Some((us, n)) => (format!("{:.1}", ms(us)), n.to_string()),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{rep:>4} {t:>9.1} {d:>10.1} {r_ms:>9} {parsed:>8} {:>8.1} {:>9.1} {k:>12.1} {probes:>7}",
                ms(p),
                ms(b)
            );
            if let Some((us, _)) = r {
                reload.push(ms(us));
            }
            total.push(t);
            detect.push(d);
            plan.push(ms(p));
            bundle.push(ms(b));
            packet.push(k);
            // Undo (untimed): a gets through again.
            std::fs::remove_file(&file)?;
            let t1 = Instant::now();
            while !connects(&pods[0]) {
                if t1.elapsed() > Duration::from_secs(30) {
                    bail!("removing the Drop did not restore a → b:\n{}", log());
                }
            }
            let after = commits(&log()).len();
            let deadline = Instant::now() + Duration::from_secs(5);
            while commits(&log()).len() < after.max(before + 2) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        stop.store(true, Ordering::Relaxed);
        for (name, v) in [
            ("total", &mut total),
            ("detect+reload", &mut detect),
            ("plan", &mut plan),
            ("bundle", &mut bundle),
            ("reply→drop", &mut packet),
        ] {
            let (m, x) = median_max(v);
            println!("{name:>14}: median {m:.1} ms, max {x:.1} ms");
        }
        if !reload.is_empty() {
            let (m, x) = median_max(&mut reload);
            println!("{:>14}: median {m:.1} ms, max {x:.1} ms", "of it reload");
        }
        let text = log();
        let paths: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" committed "))
            .filter_map(|l| l.split(" us (").nth(1)?.split(')').next())
            .collect();
        println!("recomputation paths of the commits: {paths:?}");
        Ok(())
    })();
    let _ = agent.kill();
    let _ = agent.wait();
    if result.is_err() {
        eprintln!("{}", x.stderr());
    }
    result
}
