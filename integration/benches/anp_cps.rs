//! New connections per second through a pipeline holding 10k Antrea-native rules,
//! pipeline-only (no kernel I/O), one worker on one core.
//!
//! ```sh
//! cargo bench -p xvs-integration --bench anp_cps -- [--conns N] [--reps R]
//! ```
//! The agent computes the flows of 10 namespaces × 10 Pods and 1000 ClusterNetworkPolicies ×
//! 10 ingress rules (the `anp_scale` cluster); they are loaded into xvs's tables as xvsd
//! loads them. Replay ports stand for the ten client Pods (app=a1) and the ten server Pods
//! (app=a0); every frame is a TCP SYN with a 5-tuple not sent before, to port 8001, which an
//! Allow rule of the servers' policies admits. So every packet misses the exact-match cache,
//! goes through conntrack (`ct(zone=65520,nat)`: a new connection) and, unless a megaflow
//! already covers it, is translated through the 10k rules; ConntrackCommit commits it.
//! Reported: connections committed per second (the tracker's count), with the share of
//! packets that were translated (upcalls) and the same frames through the same pipeline
//! after the connections exist (the established path) for the split.

use std::time::Instant;
use xvs_agent::anp::admission::admit;
use xvs_agent::anp::AnpObjects;
use xvs_agent::model::{parse_file, Model};
use xvs_agent::pipeline::{desired, Desired, Ids};
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig, WorkerSnapshot,
};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::pipeline::{load_flows, Pipeline};
use xvs_io::{FramePool, ReplayPort};
use xvs_packet::build::{tcp4, Macs, TcpParams};
use xvs_packet::FlowKey;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const NODE: &str = "kind: AgentConfig\nspec:\n  nodeName: node-1\n  tunnelType: geneve\n  gateway: {name: antrea-gw0, ip: 10.10.0.1, mac: \"aa:bb:cc:dd:ee:01\", ofport: 2}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nspec: {podCIDR: 10.10.0.0/16}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n";

/// Pod `p` of namespace `n`: ofport, IP 10.10.n.(p+10), MAC 02:00:00:00:n:p+10.
fn pod_addr(n: usize, p: usize) -> (u32, [u8; 4], [u8; 6]) {
    (
        (100 + n * 10 + p) as u32,
        [10, 10, n as u8, (p + 10) as u8],
        [2, 0, 0, 0, n as u8, (p + 10) as u8],
    )
}

fn policy(i: usize) -> String {
    let mut rules = String::new();
    for r in 0..10 {
        rules.push_str(&format!(
            "  - {{action: {}, name: r{r}, from: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}], ports: [{{protocol: TCP, port: {}}}]}}\n",
            if r % 3 == 0 { "Drop" } else { "Allow" },
            (i + r) % 10,
            8000 + r
        ));
    }
    format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: pol{i}}}\nspec:\n  priority: {}.{:03}\n  appliedTo: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}]\n  ingress:\n{rules}", 1 + i / 100, i % 100, i % 10)
}

fn model() -> Model {
    let mut text = NODE.to_string();
    for n in 0..10 {
        text.push_str(&format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: n{n}, labels: {{kubernetes.io/metadata.name: n{n}}}}}\n"));
        for p in 0..10 {
            let (ofport, ip, mac) = pod_addr(n, p);
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{p}\n  namespace: n{n}\n  labels: {{app: a{p}}}\n  annotations: {{xvs.io/mac: \"{}\", xvs.io/interface: p{ofport}, xvs.io/ofport: \"{ofport}\"}}\nspec: {{nodeName: node-1}}\nstatus: {{podIP: {}.{}.{}.{}}}\n",
                mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
                ip[0], ip[1], ip[2], ip[3]
            ));
        }
    }
    for i in 0..1000 {
        text.push_str("---\n");
        text.push_str(&policy(i));
    }
    let mut m = Model::default();
    for o in parse_file("cps.yaml", &text).expect("manifests parse") {
        m.insert(o);
    }
    let errs = admit(&mut m, &AnpObjects::default());
    assert!(errs.is_empty(), "{errs:?}");
    m
}

/// The translator and its clock's origin (the clock times the translations of a batch against
/// the engine's miss budget, as xvsd's does).
struct Adapter(xvs_flowtable::translate::WorkerTranslator, Instant);

impl Translator for Adapter {
    fn refresh(&mut self) -> u64 {
        self.0.refresh()
    }
    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        match self.0.translate_into(key, 0, actions, mask) {
            Ok(()) => Verdict::Cache,
            Err(_) => Verdict::Drop,
        }
    }
    fn attribution(&mut self) -> Option<xvs_flowtable::stats::Attribution> {
        Some(self.0.attribution())
    }
    fn now_ns(&mut self) -> u64 {
        self.1.elapsed().as_nanos() as u64
    }
}

/// SYNs from client Pod `c` (namespace c, app=a1) to server Pods (app=a0), 5-tuples
/// `first..first+count` of that client (source port and server vary).
fn syns(c: usize, first: usize, count: usize) -> Vec<Vec<u8>> {
    let (_, src_ip, src_mac) = pod_addr(c, 1);
    (first..first + count)
        .map(|i| {
            let server = i % 10;
            let (_, dst_ip, dst_mac) = pod_addr(server, 0);
            let mut f = vec![0u8; 80];
            let t = TcpParams {
                sport: 1024 + (i / 10 % 60_000) as u16,
                dport: 8001,
                seq: i as u32,
                ack: 0,
                flags: 0x02,
                window: 64_240,
            };
            let len = tcp4(
                &mut f,
                Macs {
                    src: src_mac,
                    dst: dst_mac,
                },
                src_ip,
                dst_ip,
                t,
                &[],
            )
            .unwrap_or(0);
            f.truncate(len);
            f
        })
        .collect()
}

struct Run {
    conns_per_s: f64,
    pkts_per_s: f64,
    upcalls: u64,
    rx: u64,
    tx: u64,
    created: u64,
    /// The worker's counters over the phase (after minus before).
    delta: WorkerSnapshot,
    /// Megaflows and their distinct masks at the end of the phase.
    megaflows: usize,
    masks: usize,
}

fn delta(a: &WorkerSnapshot, b: &WorkerSnapshot) -> WorkerSnapshot {
    let mut d = WorkerSnapshot {
        rx_packets: a.rx_packets - b.rx_packets,
        tx_packets: a.tx_packets - b.tx_packets,
        exact_hits: a.exact_hits - b.exact_hits,
        megaflow_hits: a.megaflow_hits - b.megaflow_hits,
        subtable_lookups: a.subtable_lookups - b.subtable_lookups,
        upcalls_ok: a.upcalls_ok - b.upcalls_ok,
        upcalls_failed: a.upcalls_failed - b.upcalls_failed,
        recirculations: a.recirculations - b.recirculations,
        ..WorkerSnapshot::default()
    };
    for (i, x) in d.drops.iter_mut().enumerate() {
        *x = a.drops[i] - b.drops[i];
    }
    d.ct.packets = a.ct.packets - b.ct.packets;
    d.ct.fast_path = a.ct.fast_path - b.ct.fast_path;
    d.ct.lookups = a.ct.lookups - b.ct.lookups;
    d.ct.created = a.ct.created - b.ct.created;
    d
}

/// Where a phase's packets went: passes, subtables, conntrack work and drops per packet.
fn split(name: &str, r: &Run) {
    let d = &r.delta;
    let rx = d.rx_packets.max(1) as f64;
    let passes = d.exact_hits + d.megaflow_hits + d.upcalls_ok + d.upcalls_failed;
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|&&why| d.drops[why as usize] > 0)
        .map(|&why| format!("{}={}", why.name(), d.drops[why as usize]))
        .collect();
    println!(
        "{name:>6}: {:.2} passes/pkt ({:.2} recirculations), {:.2} subtables probed per megaflow hit, \
         exact hits {}, megaflow hits {}, upcalls ok {} failed {}; ct() {:.2}/pkt, table lookups {:.2}/pkt, \
         handle reused {:.2}/pkt, created {}; {} megaflows over {} masks; drops: {}",
        passes as f64 / rx,
        d.recirculations as f64 / rx,
        d.subtable_lookups as f64 / d.megaflow_hits.max(1) as f64,
        d.exact_hits,
        d.megaflow_hits,
        d.upcalls_ok,
        d.upcalls_failed,
        d.ct.packets as f64 / rx,
        d.ct.lookups as f64 / rx,
        d.ct.fast_path as f64 / rx,
        d.ct.created,
        r.megaflows,
        r.masks,
        if drops.is_empty() { "none".to_string() } else { drops.join(" ") }
    );
}

/// The servers' SYN-ACKs answering [`syns`]`(c, 0, per_client)` of every client `c`, those to
/// server `server` only (reply direction: `+est+rpl` in the tracker).
fn syn_acks(server: usize, per_client: usize) -> Vec<Vec<u8>> {
    let (_, src_ip, src_mac) = pod_addr(server, 0);
    let mut out = Vec::new();
    for c in 0..10 {
        let (_, dst_ip, dst_mac) = pod_addr(c, 1);
        for i in (server..per_client).step_by(10) {
            let mut f = vec![0u8; 80];
            let t = TcpParams {
                sport: 8001,
                dport: 1024 + (i / 10 % 60_000) as u16,
                seq: 1_000_000 + i as u32,
                ack: i as u32 + 1,
                flags: 0x12,
                window: 64_240,
            };
            let len = tcp4(
                &mut f,
                Macs {
                    src: src_mac,
                    dst: dst_mac,
                },
                src_ip,
                dst_ip,
                t,
                &[],
            )
            .unwrap_or(0);
            f.truncate(len);
            out.push(f);
        }
    }
    out
}

fn stage(pipeline: &mut Pipeline) -> OpenFlowStage {
    OpenFlowStage::new(
        Box::new(Adapter(
            xvs_flowtable::translate::WorkerTranslator::new(pipeline.reader()),
            Instant::now(),
        )),
        CacheConfig::default(),
    )
}

/// Polls `w` until its ports have received `target` packets in all; the phase's figures.
fn measure(w: &mut Worker, conn_count: &dyn Fn() -> u64, target: u64) -> Run {
    let shared = w.shared();
    // Most packets one iteration receives (a burst from each of ten sending ports).
    let per_poll = (10 * xvs_engine::BATCH) as u64;
    w.publish_counters();
    let before = shared.counters.load();
    let conns_before = conn_count();
    let target = before.rx_packets + target;
    let t0 = Instant::now();
    let mut seen = before.rx_packets;
    let mut polls = 0u64;
    loop {
        w.poll_once();
        polls += 1;
        // Publishing also credits the megaflows' hits to their rules, which xvsd does every
        // 100 ms: here every 16 iterations, and every iteration near the phase's end so that
        // it stops exactly there.
        if polls % 16 == 0 || seen + 16 * per_poll >= target {
            w.publish_counters();
            seen = shared.counters.load().rx_packets;
            if seen >= target {
                break;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = shared.counters.load();
    let (megaflows, masks) = w.megaflow_census();
    let rx = after.rx_packets - before.rx_packets;
    let created = conn_count().saturating_sub(conns_before);
    Run {
        conns_per_s: created as f64 / secs,
        pkts_per_s: rx as f64 / secs,
        upcalls: after.upcalls_ok - before.upcalls_ok,
        rx,
        tx: after.tx_packets - before.tx_packets,
        created,
        delta: delta(&after, &before),
        megaflows,
        masks,
    }
}

/// Sends `per_client` SYNs from each client twice: the first round creates the connections
/// (timed), the second meets them again (timed; a retransmitted SYN is `+new` again, as in
/// OVS, so it takes the new-connection path). Then, on a second worker with its own caches
/// and the same tracker, the servers' SYN-ACKs (timed): established packets.
fn run(d: &Desired, per_client: usize) -> (Run, Run, Run) {
    let mut pipeline = Pipeline::new();
    let mut text = String::new();
    for (k, b) in &d.flows {
        text.push_str(&Desired::flow_line(k, b, 1));
        text.push('\n');
    }
    load_flows(&mut pipeline, &text, &NameMap::new(), 0).expect("flows load");
    let first = stage(&mut pipeline);
    let tracker = std::sync::Arc::clone(first.conntrack());
    let epoch = Instant::now();
    let first = first.with_conntrack(std::sync::Arc::clone(&tracker), epoch);
    let worker = |stage: OpenFlowStage,
                  clients: &dyn Fn(usize) -> Vec<Vec<u8>>,
                  c_count: u64,
                  servers: &dyn Fn(usize) -> Vec<Vec<u8>>,
                  s_count: u64| {
        let mut ports = Vec::new();
        for c in 0..10 {
            let (ofport, _, _) = pod_addr(c, 1);
            let rx = ReplayPort::new(&format!("c{c}"), clients(c), Some(c_count)).expect("replay");
            ports.push(EnginePort::new(ofport, Box::new(rx)));
        }
        for s in 0..10 {
            let (ofport, _, _) = pod_addr(s, 0);
            let rx = ReplayPort::new(&format!("s{s}"), servers(s), Some(s_count)).expect("replay");
            ports.push(EnginePort::new(ofport, Box::new(rx)));
        }
        let pool = FramePool::new(8192, 2048, 128).expect("pool");
        Worker::new(
            0,
            None,
            pool,
            ports,
            Forwarding::OpenFlow(Box::new(stage)),
            WorkerConfig::default(),
        )
        .expect("worker")
    };
    let total = 10 * per_client as u64;
    let nothing = |_: usize| syns(0, 0, 1);
    let mut w = worker(
        first,
        &|c| syns(c, 0, per_client),
        2 * per_client as u64,
        &nothing,
        0,
    );
    let conns = || u64::from(tracker.conn_count());
    let new = measure(&mut w, &conns, total);
    let again = measure(&mut w, &conns, total);
    drop(w);
    let second = stage(&mut pipeline).with_conntrack(std::sync::Arc::clone(&tracker), epoch);
    let mut w = worker(
        second,
        &nothing,
        0,
        &|s| syn_acks(s, per_client),
        per_client as u64,
    );
    let est = measure(&mut w, &conns, total);
    drop(pipeline);
    (new, again, est)
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let conns = arg("--conns", if quick { 2_000 } else { 1_000_000 });
    let reps = arg("--reps", if quick { 1 } else { 3 });
    let t0 = Instant::now();
    let m = model();
    let d = desired(&m, &mut Ids::default());
    println!(
        "10k Antrea-native rules: {} flows computed in {:?}",
        d.flows.len(),
        t0.elapsed()
    );
    let per_client = conns / 10;
    let mut runs: Vec<(Run, Run, Run)> = (0..reps).map(|_| run(&d, per_client)).collect();
    runs.sort_by(|a, b| a.0.conns_per_s.total_cmp(&b.0.conns_per_s));
    println!(
        "{:>10} {:>10} {:>12} {:>10} {:>9} {:>10} {:>13} {:>14} {:>13}",
        "SYNs",
        "created",
        "new Mconn/s",
        "ns/conn",
        "upcalls",
        "forwarded",
        "SYN again ns",
        "est (SYN-ACK)",
        "est ns/pkt"
    );
    for (new, again, est) in &runs {
        println!(
            "{:>10} {:>10} {:>12.3} {:>10.0} {:>9} {:>10} {:>13.0} {:>9.3} Mpps {:>13.0}",
            new.rx,
            new.created,
            new.conns_per_s / 1e6,
            1e9 / new.conns_per_s,
            new.upcalls,
            new.tx,
            1e9 / again.pkts_per_s,
            est.pkts_per_s / 1e6,
            1e9 / est.pkts_per_s
        );
    }
    println!("(sorted by new Mconn/s; the median is the middle row)");
    if let Some((new, again, est)) = runs.get(runs.len() / 2) {
        println!("split of the median run (per received packet):");
        split("new", new);
        split("again", again);
        split("est", est);
    }
}
