//! The OpenFlow stage over in-memory ports with a scripted translator: misses are translated
//! once per megaflow, hits reuse the cached actions, a table change flushes the caches, header
//! rewrites reach the wire, several outputs copy the packet, drops are counted by reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig,
};
use xvs_flowtable::datapath::DpAction;
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

/// Port 1 -> port 2 with a new destination MAC, UDP to port 9 dropped, UDP to port 7 flooded to
/// ports 2 and 3. Counts its translations; the version comes from a shared atomic.
struct Scripted {
    version: Arc<AtomicU64>,
    translations: Arc<AtomicU64>,
}

const NEW_DST: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

impl Translator for Scripted {
    fn refresh(&mut self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        self.translations.fetch_add(1, Ordering::Relaxed);
        for f in [
            layout::IN_PORT,
            layout::ETH_TYPE,
            layout::NW_PROTO,
            layout::TP_DST,
        ] {
            mask.set(f, f.max_value());
        }
        if key.get(layout::IN_PORT) != 1 {
            return Verdict::Drop;
        }
        match key.get(layout::TP_DST) {
            9 => {}
            7 => actions.extend([DpAction::Output(2), DpAction::Output(3)]),
            // Port 5000: a slow-path flow, executed but never cached.
            5000 => {
                actions.push(DpAction::Output(2));
                return Verdict::Uncached;
            }
            _ => actions.extend([DpAction::SetEthDst(NEW_DST), DpAction::Output(2)]),
        }
        Verdict::Cache
    }
}

fn udp_frame(sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let macs = xvs_packet::build::Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };
    let n = xvs_packet::build::udp4(
        &mut f,
        macs,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        sport,
        dport,
        b"payload!",
    )
    .expect("frame");
    f.truncate(n);
    f
}

struct Setup {
    worker: Worker,
    a: MemoryPeer,
    b: MemoryPeer,
    c: MemoryPeer,
    version: Arc<AtomicU64>,
    translations: Arc<AtomicU64>,
}

fn setup() -> Setup {
    let version = Arc::new(AtomicU64::new(1));
    let translations = Arc::new(AtomicU64::new(0));
    let t = Scripted {
        version: version.clone(),
        translations: translations.clone(),
    };
    let stage = OpenFlowStage::new(Box::new(t), CacheConfig::default());
    let pool = FramePool::new(1024, 2048, 128).expect("pool");
    let (pa, a) = MemoryPort::pair("a", 1024);
    let (pb, b) = MemoryPort::pair("b", 1024);
    let (pc, c) = MemoryPort::pair("c", 1024);
    let ports = vec![
        EnginePort::new(1, Box::new(pa)),
        EnginePort::new(2, Box::new(pb)),
        EnginePort::new(3, Box::new(pc)),
    ];
    let worker = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker");
    Setup {
        worker,
        a,
        b,
        c,
        version,
        translations,
    }
}

#[test]
fn one_translation_per_megaflow_and_rewrites_on_the_wire() {
    let mut s = setup();
    for i in 0..200u16 {
        assert!(s.a.send(&udp_frame(1000 + i, 80)));
        if i % 20 == 19 {
            s.worker.poll_once();
        }
    }
    s.worker.poll_once();
    let got = s.b.recv_all();
    assert_eq!(got.len(), 200);
    for (i, f) in got.iter().enumerate() {
        let mut want = udp_frame(1000 + i as u16, 80);
        want[..6].copy_from_slice(&NEW_DST);
        assert_eq!(f, &want, "frame {i}");
    }
    // The source port is wildcarded: one megaflow serves all 200 packets.
    assert_eq!(s.translations.load(Ordering::Relaxed), 1);
    s.worker.poll_once();
    let shared = s.worker.shared();
    drop(shared);
    assert_eq!(s.worker.pool().free_count(), 1024);
}

#[test]
fn a_table_change_flushes_the_caches() {
    let mut s = setup();
    assert!(s.a.send(&udp_frame(1, 80)));
    s.worker.poll_once();
    assert!(s.a.send(&udp_frame(2, 80)));
    s.worker.poll_once();
    assert_eq!(s.translations.load(Ordering::Relaxed), 1);
    s.version.store(2, Ordering::Release);
    assert!(s.a.send(&udp_frame(3, 80)));
    s.worker.poll_once();
    assert_eq!(
        s.translations.load(Ordering::Relaxed),
        2,
        "the new version must be translated again"
    );
    assert_eq!(s.b.recv_all().len(), 3);
}

#[test]
fn drops_and_copies_are_accounted() {
    let mut s = setup();
    for i in 0..10 {
        assert!(s.a.send(&udp_frame(i, 9)));
        assert!(s.a.send(&udp_frame(i, 7)));
        assert!(s.b.send(&udp_frame(i, 80)));
    }
    s.worker.poll_once();
    s.worker.poll_once();
    assert_eq!(s.b.recv_all().len(), 10, "flooded copies at b");
    assert_eq!(s.c.recv_all().len(), 10, "flooded copies at c");
    assert!(s.a.recv_all().is_empty());
    let shared = s.worker.shared();
    s.worker.publish_counters();
    let c = shared.counters.load();
    assert_eq!(c.drops[DropReason::ActionDrop as usize], 10);
    assert_eq!(c.drops[DropReason::TranslationFailed as usize], 10);
    assert_eq!(c.rx_packets, 30);
    assert_eq!(c.upcalls_ok, 2);
    assert!(c.upcalls_failed >= 1);
    assert_eq!(s.worker.pool().free_count(), 1024);
}

#[test]
fn uncached_verdicts_are_executed_but_never_installed() {
    let mut s = setup();
    for i in 0..10 {
        assert!(s.a.send(&udp_frame(i, 5000)));
        s.worker.poll_once();
    }
    assert_eq!(
        s.b.recv_all().len(),
        10,
        "every slow-path packet is forwarded"
    );
    assert_eq!(
        s.translations.load(Ordering::Relaxed),
        10,
        "and translated each time"
    );
    s.worker.publish_counters();
    let c = s.worker.shared().counters.load();
    assert_eq!(c.upcalls_ok, 10);
    assert_eq!(c.exact_hits + c.megaflow_hits, 0);
    assert_eq!(s.worker.pool().free_count(), 1024);
}
