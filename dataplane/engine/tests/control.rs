//! What the control side asks of a worker, over in-memory ports: a megaflow dump answered at
//! the publication point, port capture into the ring (received and transmitted frames,
//! bounded, counted drops when full), and an administratively down port (nothing received
//! from it or sent to it, counted `port_down`).

use std::sync::atomic::Ordering;
use xvs_engine::capture::{Direction, RECORD_HEADER, RING_BYTES};
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig, PORT_DOWN, PORT_NO_FWD, PORT_NO_RECV,
};
use xvs_flowtable::datapath::DpAction;
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

/// Port 1 <-> port 2, matching in_port and the UDP destination port.
struct Cross;

impl Translator for Cross {
    fn refresh(&mut self) -> u64 {
        1
    }

    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        for f in [layout::IN_PORT, layout::ETH_TYPE, layout::TP_DST] {
            mask.set(f, f.max_value());
        }
        let out = if key.get(layout::IN_PORT) == 1 { 2 } else { 1 };
        actions.push(DpAction::Output(out));
        Verdict::Cache
    }
}

fn udp(dport: u16) -> Vec<u8> {
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

fn setup() -> (Worker, MemoryPeer, MemoryPeer) {
    let stage = OpenFlowStage::new(Box::new(Cross), CacheConfig::default());
    let pool = FramePool::new(2048, 2048, 128).expect("pool");
    let (pa, a) = MemoryPort::pair("a", 1024);
    let (pb, b) = MemoryPort::pair("b", 1024);
    let ports = vec![
        EnginePort::new(1, Box::new(pa)),
        EnginePort::new(2, Box::new(pb)),
    ];
    let w = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker");
    (w, a, b)
}

#[test]
fn a_flow_dump_is_answered_at_the_publication_point() {
    let (mut w, mut a, _b) = setup();
    let shared = w.shared();
    for port in [53, 80, 80, 80] {
        assert!(a.send(&udp(port)));
    }
    w.poll_once();
    // Nothing is published before the request.
    w.publish_counters();
    assert_eq!(shared.flow_dump.lock().expect("slot").generation, 0);
    shared.flow_dump_request.store(1, Ordering::Release);
    w.publish_counters();
    let slot = shared.flow_dump.lock().expect("slot");
    assert_eq!(slot.generation, 1);
    let mut flows: Vec<(u64, u64, u64)> = slot
        .flows
        .iter()
        .map(|f| (f.key.get(layout::TP_DST), f.packets, f.bytes))
        .collect();
    flows.sort();
    let len = udp(80).len() as u64;
    assert_eq!(flows, vec![(53, 1, len), (80, 3, 3 * len)]);
    for f in &slot.flows {
        assert_eq!(&f.actions[..], &[DpAction::Output(2)]);
        assert_eq!(f.mask.get(layout::TP_DST), 0xffff);
        assert!(f.used_ns.is_some());
    }
}

#[test]
fn capture_mirrors_rx_and_tx_and_counts_a_full_ring() {
    let (mut w, mut a, mut b) = setup();
    let shared = w.shared();
    let mut ring = w.take_capture_consumer().expect("consumer");
    assert!(w.take_capture_consumer().is_none());
    // Off: nothing is copied.
    assert!(a.send(&udp(80)));
    w.poll_once();
    assert!(ring.pop().is_none());
    // Port a (index 0): its received frames and, for the reverse direction, what it sends.
    shared.capture_mask.store(1, Ordering::Relaxed);
    assert!(a.send(&udp(81)));
    assert!(b.send(&udp(82)));
    w.poll_once();
    let r1 = ring.pop().expect("rx record");
    assert_eq!(r1.orig_len as usize, udp(81).len());
    assert_eq!(r1.direction, Direction::Rx);
    assert_eq!(r1.bytes(), &udp(81)[..]);
    assert_eq!(r1.port_idx, 0);
    assert!(r1.time_ns > 1_600_000_000_000_000_000);
    let r2 = ring.pop().expect("tx record");
    assert_eq!(r2.direction, Direction::Tx);
    assert_eq!(r2.bytes(), &udp(82)[..]);
    assert!(ring.pop().is_none());
    // A full ring drops and counts; forwarding goes on.
    let fit = RING_BYTES / (RECORD_HEADER + udp(83).len());
    let mut sent = 0;
    while sent < fit + 10 {
        let n = (fit + 10 - sent).min(500);
        for _ in 0..n {
            assert!(a.send(&udp(83)));
        }
        while w.poll_once() > 0 {}
        sent += n;
        assert_eq!(b.recv_all().len(), n + if sent == n { 2 } else { 0 });
    }
    w.publish_counters();
    let c = shared.counters.load();
    assert_eq!(c.capture_dropped, 10);
    assert_eq!(c.captured, fit as u64 + 2);
    // The ring gives back every record, whole and in order.
    let mut n = 0;
    while let Some(r) = ring.pop() {
        assert_eq!(r.bytes(), &udp(83)[..]);
        n += 1;
    }
    assert_eq!(n, fit);
}

#[test]
fn a_down_port_neither_receives_nor_sends() {
    let (mut w, mut a, mut b) = setup();
    let shared = w.shared();
    assert!(shared.set_port_flags(2, PORT_DOWN));
    assert!(!shared.set_port_flags(9, PORT_DOWN), "no port 9");
    assert!(a.send(&udp(80)));
    assert!(b.send(&udp(80)));
    w.poll_once();
    assert!(a.recv_all().is_empty());
    assert!(b.recv_all().is_empty());
    w.publish_counters();
    assert_eq!(
        shared.counters.load().drops[DropReason::PortDown as usize],
        2
    );
    shared.set_port_flags(2, 0);
    assert!(a.send(&udp(80)));
    w.poll_once();
    assert_eq!(b.recv_all().len(), 1);
    // no-receive on a: a's frames go nowhere, b's still reach a; no-forward on a: the reverse.
    shared.set_port_flags(1, PORT_NO_RECV);
    assert!(a.send(&udp(80)));
    assert!(b.send(&udp(80)));
    w.poll_once();
    assert_eq!((a.recv_all().len(), b.recv_all().len()), (1, 0));
    shared.set_port_flags(1, PORT_NO_FWD);
    assert!(a.send(&udp(80)));
    assert!(b.send(&udp(80)));
    w.poll_once();
    assert_eq!((a.recv_all().len(), b.recv_all().len()), (0, 1));
    w.publish_counters();
    let d = shared.counters.load().drops;
    assert_eq!(d[DropReason::PortNoRecv as usize], 1);
    assert_eq!(d[DropReason::PortNoFwd as usize], 1);
    assert_eq!(d[DropReason::PortDown as usize], 2);
}

#[test]
fn a_large_dump_is_answered_in_chunks() {
    let (mut w, mut a, _b) = setup();
    let shared = w.shared();
    for chunk in 0..6u16 {
        for i in 0..500u16 {
            assert!(a.send(&udp(1000 + chunk * 500 + i)));
        }
        while w.poll_once() > 0 {}
    }
    shared.flow_dump_request.store(1, Ordering::Release);
    w.publish_counters();
    // 3,000 megaflows: the first publication copies a chunk, the answer is not complete.
    assert_eq!(shared.flow_dump.lock().expect("slot").generation, 0);
    let mut rounds = 1;
    while shared.flow_dump.lock().expect("slot").generation != 1 {
        w.publish_counters();
        rounds += 1;
        assert!(rounds < 10, "the dump never completes");
    }
    let slot = shared.flow_dump.lock().expect("slot");
    assert_eq!(rounds, 2);
    let mut ports: Vec<u64> = slot
        .flows
        .iter()
        .map(|f| f.key.get(layout::TP_DST))
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 3000);
}
