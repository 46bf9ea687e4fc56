//! Pipeline-only throughput of one worker: no kernel I/O. A replay port feeds 64-byte UDP frames
//! (pod-a -> pod-b) through the Antrea-style pipeline of `deploy/examples/antrea-lite.flows`;
//! a second replay port is the sink. Prints Mpps per core and the cache tiers' share for 1,
//! 1,000 and 100,000 distinct flows (5-tuples), median of 3 runs. Then the same frames through
//! `deploy/examples/antrea-ct.flows` (conntrack on: `ct(zone=65520,nat)` and a ConntrackCommit
//! per packet, three datapath passes), for the ct-on / ct-off ratio.
//!
//! Next to the wall-clock rate, `Mpps/cpu-s` divides by the time the worker thread was on a CPU
//! (`/proc/thread-self/schedstat`), the figure to compare on a loaded machine.
//!
//! Run: `cargo bench -p xvs-engine --bench pipeline` (release profile, one core); `-- ct` or
//! `-- lite` runs one pipeline, `-- flows=N` one flow count. `-- exact=adaptive,fixed,off,before`
//! runs each cache policy in turn (default `adaptive`, the daemon's): `fixed` keeps the exact
//! tier on whatever its hit rate, `off` disables it, `before` is the caches as they were before
//! the bypass and the previous-answer check (exact tier always on, no check).

use std::time::Instant;
use xvs_engine::{
    CacheConfig, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker, WorkerConfig,
};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::pipeline::{load_flows, Pipeline};
use xvs_io::{FramePool, ReplayPort};
use xvs_packet::build::{udp4, Macs};
use xvs_packet::FlowKey;

const FLOWS: &str = include_str!("../../../deploy/examples/antrea-lite.flows");
const CT_FLOWS: &str = include_str!("../../../deploy/examples/antrea-ct.flows");

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

fn frames(n: usize) -> Vec<Vec<u8>> {
    let macs = Macs {
        src: [2, 0x0a, 0x0a, 0, 0, 2],
        dst: [2, 0x0a, 0x0a, 0, 0, 3],
    };
    (0..n)
        .map(|i| {
            let mut f = vec![0u8; 60];
            let sport = 1024 + (i % 50_000) as u16;
            let dport = 5000 + (i / 50_000) as u16;
            let len = udp4(
                &mut f,
                macs,
                [10, 10, 0, 2],
                [10, 10, 0, 3],
                sport,
                dport,
                &[0u8; 18],
            )
            .unwrap_or(0);
            f.truncate(len);
            f
        })
        .collect()
}

struct Run {
    mpps: f64,
    /// Packets per second the worker thread was on a CPU (0 when unknown).
    cpu_mpps: f64,
    exact: u64,
    megaflow: u64,
    upcalls: u64,
    rx: u64,
    tx: u64,
    recirculations: u64,
}

/// The exact-match tier policy of a run (`-- exact=...`).
fn cache_config(policy: &str) -> CacheConfig {
    let mut c = CacheConfig::default();
    match policy {
        "fixed" => c.exact_min_hit_percent = 0,
        "before" => {
            c.exact_min_hit_percent = 0;
            c.repeat_first = false;
        }
        "off" => c.exact_insertion = xvs_classifier::Insertion::Never,
        _ => {}
    }
    c
}

fn run(text: &str, flows: usize, packets: u64, cache: CacheConfig) -> Run {
    let mut pipeline = Pipeline::new();
    load_flows(&mut pipeline, text, &NameMap::new(), 0).expect("flows");
    let stage = OpenFlowStage::new(
        Box::new(Adapter(xvs_flowtable::translate::WorkerTranslator::new(
            pipeline.reader(),
        ))),
        cache,
    );
    let set = frames(flows);
    let warm = flows as u64;
    let rx = ReplayPort::new("pa0", &set, Some(warm + packets)).expect("replay");
    let sink = ReplayPort::new("pb0", &set[..1], Some(0)).expect("sink");
    let pool = FramePool::new(4096, 2048, 128).expect("pool");
    let ports = vec![
        EnginePort::new(1, Box::new(rx)),
        EnginePort::new(2, Box::new(sink)),
    ];
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
    // Warm-up: one pass over the flow set fills the caches (and translates the misses).
    loop {
        w.poll_once();
        w.publish_counters();
        if shared.counters.load().rx_packets >= warm {
            break;
        }
    }
    let before = shared.counters.load();
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    // Credit the megaflows' hits to their rules about as often as the daemon's worker does
    // (every 100 ms; here every 32k iterations, about 1 M packets).
    let mut iterations = 0u64;
    while w.poll_once() > 0 {
        iterations += 1;
        if iterations % 32_768 == 0 {
            w.credit_flow_stats();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu_secs = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => f64::INFINITY,
    };
    w.publish_counters();
    let after = shared.counters.load();
    let rx = after.rx_packets - before.rx_packets;
    drop(pipeline);
    Run {
        mpps: rx as f64 / secs / 1e6,
        cpu_mpps: rx as f64 / cpu_secs / 1e6,
        exact: after.exact_hits - before.exact_hits,
        megaflow: after.megaflow_hits - before.megaflow_hits,
        upcalls: after.upcalls_ok - before.upcalls_ok,
        rx,
        tx: after.tx_packets - before.tx_packets,
        recirculations: after.recirculations - before.recirculations,
    }
}

/// On-CPU time of the calling thread (ns): rates per on-CPU second stay comparable when other
/// jobs take the core away from the worker, wall-clock rates do not.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that short.
    let quick =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let packets: u64 = if quick { 20_000 } else { 20_000_000 };
    // `-- ct` / `-- lite`: only that pipeline.
    let only = std::env::args().find(|a| a == "ct" || a == "lite");
    for (short, name, text, packets) in [
        ("lite", "antrea-lite (ct off)", FLOWS, packets),
        ("ct", "antrea-ct (ct on)", CT_FLOWS, packets / 4),
    ] {
        if only.as_deref().is_none_or(|o| o == short) {
            table(name, text, packets);
        }
    }
}

fn table(name: &str, text: &str, packets: u64) {
    println!("pipeline-only, 64-byte UDP, {name} pipeline, one worker, median of 3");
    println!(
        "{:>8} {:>9} {:>10} {:>10} {:>11} {:>12} {:>12} {:>9} {:>8}",
        "flows",
        "exact",
        "Mpps",
        "ns/pkt",
        "Mpps/cpu-s",
        "emc hits %",
        "megaflow %",
        "upcalls",
        "passes"
    );
    let policies: Vec<String> = std::env::args()
        .find_map(|a| a.strip_prefix("exact=").map(str::to_owned))
        .unwrap_or_else(|| "adaptive".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    // `-- flows=N`: only that flow count.
    let only_flows = std::env::args().find_map(|a| {
        a.strip_prefix("flows=")
            .and_then(|n| n.parse::<usize>().ok())
    });
    for flows in [1usize, 1_000, 100_000] {
        if only_flows.is_some_and(|f| f != flows) {
            continue;
        }
        // Policies interleaved run by run, so that drift on a shared machine hits them alike.
        let mut runs: Vec<Vec<Run>> = policies.iter().map(|_| Vec::new()).collect();
        for _ in 0..3 {
            for (p, policy) in policies.iter().enumerate() {
                runs[p].push(run(text, flows, packets, cache_config(policy)));
            }
        }
        for (policy, mut runs) in policies.iter().zip(runs) {
            let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_mpps).collect();
            cpu.sort_by(f64::total_cmp);
            runs.sort_by(|a, b| a.mpps.total_cmp(&b.mpps));
            let m = &runs[1];
            let total = (m.exact + m.megaflow).max(1) as f64;
            assert_eq!(m.tx, m.rx, "every packet must be forwarded");
            println!(
                "{:>8} {:>9} {:>10.2} {:>10.1} {:>11.2} {:>12.1} {:>12.1} {:>9} {:>8.2}",
                flows,
                policy,
                m.mpps,
                1e3 / m.mpps,
                cpu[1],
                m.exact as f64 * 100.0 / total,
                m.megaflow as f64 * 100.0 / total,
                m.upcalls,
                (m.rx + m.recirculations) as f64 / m.rx.max(1) as f64
            );
        }
    }
}
