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
    CacheConfig, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker, WorkerConfig,
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

struct Adapter(xvs_flowtable::translate::WorkerTranslator);

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
}

/// Sends `per_client` frames from each client twice: the first pass creates the connections
/// (timed), the second finds them established (timed).
fn run(d: &Desired, per_client: usize) -> (Run, Run) {
    let mut pipeline = Pipeline::new();
    let mut text = String::new();
    for (k, b) in &d.flows {
        text.push_str(&Desired::flow_line(k, b, 1));
        text.push('\n');
    }
    load_flows(&mut pipeline, &text, &NameMap::new(), 0).expect("flows load");
    let stage = OpenFlowStage::new(
        Box::new(Adapter(xvs_flowtable::translate::WorkerTranslator::new(
            pipeline.reader(),
        ))),
        CacheConfig::default(),
    );
    let tracker = std::sync::Arc::clone(stage.conntrack());
    let mut ports = Vec::new();
    for c in 0..10 {
        let set = syns(c, 0, per_client);
        let (ofport, _, _) = pod_addr(c, 1);
        // Two passes over the same frames.
        let rx =
            ReplayPort::new(&format!("c{c}"), &set, Some(2 * per_client as u64)).expect("replay");
        ports.push(EnginePort::new(ofport, Box::new(rx)));
    }
    let empty = syns(0, 0, 1);
    for s in 0..10 {
        let (ofport, _, _) = pod_addr(s, 0);
        let sink = ReplayPort::new(&format!("s{s}"), &empty, Some(0)).expect("sink");
        ports.push(EnginePort::new(ofport, Box::new(sink)));
    }
    let pool = FramePool::new(8192, 2048, 128).expect("pool");
    let mut w = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker");
    let shared = w.shared();
    let total = 10 * per_client as u64;
    let mut measure = |target: u64| {
        let before = shared.counters.load();
        let conns_before = u64::from(tracker.conn_count());
        let t0 = Instant::now();
        loop {
            w.poll_once();
            w.publish_counters();
            if shared.counters.load().rx_packets >= target {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = shared.counters.load();
        let rx = after.rx_packets - before.rx_packets;
        let created = u64::from(tracker.conn_count()).saturating_sub(conns_before);
        Run {
            conns_per_s: created as f64 / secs,
            pkts_per_s: rx as f64 / secs,
            upcalls: after.upcalls_ok - before.upcalls_ok,
            rx,
            tx: after.tx_packets - before.tx_packets,
            created,
        }
    };
    let new = measure(total);
    let est = measure(2 * total);
    drop(pipeline);
    (new, est)
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
    let mut runs: Vec<(Run, Run)> = (0..reps).map(|_| run(&d, per_client)).collect();
    runs.sort_by(|a, b| a.0.conns_per_s.total_cmp(&b.0.conns_per_s));
    println!(
        "{:>10} {:>10} {:>12} {:>10} {:>9} {:>10} {:>10} {:>11}",
        "SYNs",
        "created",
        "new Mconn/s",
        "ns/conn",
        "upcalls",
        "forwarded",
        "est Mpps",
        "est ns/pkt"
    );
    for (new, est) in &runs {
        println!(
            "{:>10} {:>10} {:>12.3} {:>10.0} {:>9} {:>10} {:>10.3} {:>11.0}",
            new.rx,
            new.created,
            new.conns_per_s / 1e6,
            1e9 / new.conns_per_s,
            new.upcalls,
            new.tx,
            est.pkts_per_s / 1e6,
            1e9 / est.pkts_per_s
        );
    }
    println!("(sorted by new Mconn/s; the median is the middle row; SYNs not forwarded were over the per-batch miss budget before their megaflow existed)");
}
