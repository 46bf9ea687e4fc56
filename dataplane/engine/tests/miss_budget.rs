//! The per-batch miss budget: the first `MISS_BUDGET` misses of a batch are translated
//! whatever they cost; more are translated while the batch's translations took less than
//! `MISS_BUDGET_NS` (the translator's clock, virtual here); the rest are dropped and counted
//! as `miss_budget`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig, BATCH, MISS_BUDGET, MISS_BUDGET_NS,
};
use xvs_flowtable::datapath::DpAction;
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

/// Every UDP destination port is its own megaflow, output to port 2; each translation
/// advances the virtual clock by `cost_ns`.
struct Costly {
    clock: u64,
    cost_ns: u64,
    translations: Arc<AtomicU64>,
}

impl Translator for Costly {
    fn refresh(&mut self) -> u64 {
        1
    }

    fn translate(
        &mut self,
        _key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        self.translations.fetch_add(1, Ordering::Relaxed);
        self.clock += self.cost_ns;
        mask.set(layout::TP_DST, layout::TP_DST.max_value());
        actions.push(DpAction::Output(2));
        Verdict::Cache
    }

    fn now_ns(&mut self) -> u64 {
        self.clock
    }
}

fn udp_frame(dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let macs = xvs_packet::build::Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };
    let n = xvs_packet::build::udp4(&mut f, macs, [10, 0, 0, 1], [10, 0, 0, 2], 1, dport, b"x")
        .expect("frame");
    f.truncate(n);
    f
}

/// Four sending ports (ofports 1, 3, 4, 5) with a full burst of new flows each, one batch;
/// returns (translations, delivered at port 2, miss_budget drops).
fn one_batch(cost_ns: u64) -> (u64, usize, u64) {
    let translations = Arc::new(AtomicU64::new(0));
    let t = Costly {
        clock: 0,
        cost_ns,
        translations: translations.clone(),
    };
    let stage = OpenFlowStage::new(Box::new(t), CacheConfig::default());
    let pool = FramePool::new(1024, 2048, 128).expect("pool");
    let (p2, mut sink) = MemoryPort::pair("sink", 1024);
    let mut ports = vec![EnginePort::new(2, Box::new(p2))];
    let mut senders: Vec<MemoryPeer> = Vec::new();
    for (i, ofport) in [1u32, 3, 4, 5].into_iter().enumerate() {
        let (p, peer) = MemoryPort::pair(&format!("in{ofport}"), 1024);
        ports.push(EnginePort::new(ofport, Box::new(p)));
        senders.push(peer);
        for j in 0..BATCH {
            assert!(senders[i].send(&udp_frame((i * BATCH + j) as u16 + 1)));
        }
    }
    let mut w = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker");
    w.poll_once();
    w.poll_once();
    let shared = w.shared();
    w.publish_counters();
    let c = shared.counters.load();
    assert_eq!(c.rx_packets, 4 * BATCH as u64);
    (
        translations.load(Ordering::Relaxed),
        sink.recv_all().len(),
        c.drops[DropReason::MissBudget as usize],
    )
}

#[test]
fn cheap_translations_are_not_limited_to_the_count() {
    let n = 4 * BATCH as u64;
    assert!(n > MISS_BUDGET as u64);
    // 1 µs each: all of them fit in the time budget.
    assert_eq!(one_batch(1_000), (n, n as usize, 0));
}

#[test]
fn costly_translations_stop_at_the_count_and_the_time_budget() {
    let n = 4 * BATCH as u64;
    // 100 µs each: the first MISS_BUDGET take 6.4 ms, over the time budget: no more.
    let slow = MISS_BUDGET as u64;
    assert_eq!(one_batch(100_000), (slow, slow as usize, n - slow));
    // 5 µs each: MISS_BUDGET, then more until the batch's translations took MISS_BUDGET_NS.
    let mid = MISS_BUDGET_NS / 5_000;
    assert!(mid > MISS_BUDGET as u64 && mid < n);
    assert_eq!(one_batch(5_000), (mid, mid as usize, n - mid));
}
