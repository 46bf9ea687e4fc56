//! Outputs to a port another worker polls: the packet is handed over through the workers'
//! rings and transmitted by the polling worker, byte for byte, in both directions and when
//! one packet goes to a local and a remote port; a full ring drops (counted `remote_port`)
//! without leaking frames; a port that moves to another worker is followed at once; and a
//! port removed from its worker is counted `no_such_port` by the sender.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use xvs_engine::handoff::{mesh, HANDOFF_BYTES};
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig,
};
use xvs_flowtable::datapath::DpAction;
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

const POOL: u32 = 4096;

/// Outputs to the port numbered by the last byte of the destination MAC, and also to port
/// 9 when the byte before it is 9 (one packet to two ports).
struct ByDstMac {
    bridge: Arc<Mutex<Vec<u32>>>,
    version: Arc<AtomicU64>,
}

impl Translator for ByDstMac {
    fn refresh(&mut self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        mask.set(layout::ETH_DST, layout::ETH_DST.max_value());
        let dst = key.get(layout::ETH_DST);
        if (dst >> 8) & 0xff == 9 {
            actions.push(DpAction::Output(9));
        }
        actions.push(DpAction::Output((dst & 0xff) as u32));
        Verdict::Cache
    }

    fn port_exists(&mut self, ofport: u32) -> bool {
        self.bridge.lock().expect("bridge").contains(&ofport)
    }
}

fn frame(dst: [u8; 6], sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 64 + payload.len()];
    let macs = xvs_packet::build::Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst,
    };
    let n = xvs_packet::build::udp4(
        &mut f,
        macs,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        sport,
        80,
        payload,
    )
    .expect("frame");
    f.truncate(n);
    f
}

fn to_port(p: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, p]
}

fn worker(id: usize, bridge: &Arc<Mutex<Vec<u32>>>, ports: Vec<EnginePort>) -> Worker {
    let t = ByDstMac {
        bridge: bridge.clone(),
        version: Arc::new(AtomicU64::new(1)),
    };
    let stage = OpenFlowStage::new(Box::new(t), CacheConfig::default());
    let pool = FramePool::new(POOL, 2048, 128).expect("pool");
    Worker::new(
        id,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker")
}

struct Two {
    w0: Worker,
    w1: Worker,
    /// Port 1 on worker 0.
    a: MemoryPeer,
    /// Port 2 on worker 1.
    b: MemoryPeer,
    /// Port 9 on worker 0.
    c: MemoryPeer,
    bridge: Arc<Mutex<Vec<u32>>>,
}

fn two_workers() -> Two {
    let bridge = Arc::new(Mutex::new(vec![1, 2, 9]));
    let (pa, a) = MemoryPort::pair("a", 4096);
    let (pb, b) = MemoryPort::pair("b", 4096);
    let (pc, c) = MemoryPort::pair("c", 4096);
    let mut w0 = worker(
        0,
        &bridge,
        vec![
            EnginePort::new(1, Box::new(pa)),
            EnginePort::new(9, Box::new(pc)),
        ],
    );
    let mut w1 = worker(1, &bridge, vec![EnginePort::new(2, Box::new(pb))]);
    let mut rings = mesh(vec![w0.shared(), w1.shared()]).into_iter();
    w0.set_handoff(rings.next().expect("ring 0"));
    w1.set_handoff(rings.next().expect("ring 1"));
    Two {
        w0,
        w1,
        a,
        b,
        c,
        bridge,
    }
}

fn drops(w: &mut Worker, reason: DropReason) -> u64 {
    w.publish_counters();
    w.shared().counters.load().drops[reason as usize]
}

fn assert_no_leak(w: &Worker) {
    assert_eq!(
        w.pool().free_count() + w.frames_held_by_ports(),
        POOL as usize
    );
}

#[test]
fn outputs_to_another_workers_port_arrive_intact_both_ways() {
    let mut t = two_workers();
    let sent: Vec<Vec<u8>> = (0..300u16)
        .map(|i| frame(to_port(2), i, &vec![i as u8; usize::from(i % 7) * 200]))
        .collect();
    for f in &sent {
        assert!(t.a.send(f));
    }
    // Worker 0 forwards (hands over), worker 1 transmits.
    for _ in 0..20 {
        t.w0.poll_once();
        t.w1.poll_once();
    }
    assert_eq!(t.b.recv_all(), sent, "a -> b through the ring, in order");

    let back: Vec<Vec<u8>> = (0..100u16)
        .map(|i| frame(to_port(1), i, b"reply"))
        .collect();
    for f in &back {
        assert!(t.b.send(f));
    }
    for _ in 0..10 {
        t.w1.poll_once();
        t.w0.poll_once();
    }
    assert_eq!(t.a.recv_all(), back, "b -> a");
    assert_eq!(drops(&mut t.w0, DropReason::RemotePort), 0);
    assert_eq!(drops(&mut t.w1, DropReason::RemotePort), 0);
    assert_no_leak(&t.w0);
    assert_no_leak(&t.w1);
}

#[test]
fn one_packet_to_a_local_and_a_remote_port() {
    let mut t = two_workers();
    let f = frame([2, 0, 0, 0, 9, 2], 7, b"both");
    assert!(t.a.send(&f));
    t.w0.poll_once();
    t.w1.poll_once();
    assert_eq!(t.c.recv_all(), vec![f.clone()], "local copy on port 9");
    assert_eq!(t.b.recv_all(), vec![f], "remote copy on port 2");
    assert_no_leak(&t.w0);
    assert_no_leak(&t.w1);
}

#[test]
fn a_full_ring_drops_and_counts_without_leaking() {
    let mut t = two_workers();
    let payload = vec![0x5a; 1400];
    // More bytes than the ring holds, while worker 1 does not poll.
    let n = HANDOFF_BYTES / 1400 + 200;
    let mut offered = 0;
    for i in 0..n {
        offered += usize::from(t.a.send(&frame(to_port(2), i as u16, &payload)));
        if i % 256 == 255 {
            while t.w0.poll_once() > 0 {}
        }
    }
    while t.w0.poll_once() > 0 {}
    let dropped = drops(&mut t.w0, DropReason::RemotePort) as usize;
    assert!(dropped > 0, "the ring must have filled");
    for _ in 0..100 {
        t.w1.poll_once();
    }
    let got = t.b.recv_all().len();
    assert_eq!(got + dropped, offered, "every packet delivered or counted");
    assert_no_leak(&t.w0);
    assert_no_leak(&t.w1);
}

#[test]
fn ports_moving_between_workers_are_followed() {
    let mut t = two_workers();
    assert!(t.a.send(&frame(to_port(2), 1, b"x")));
    t.w0.poll_once();
    t.w1.poll_once();
    assert_eq!(t.b.recv_all().len(), 1);

    // Port 2 leaves worker 1 (still on the bridge): worker 0's cached output to it is
    // dropped by the receiver as no_such_port, then re-resolved after the flush.
    t.w1.remove_port(2).expect("remove");
    assert!(t.a.send(&frame(to_port(2), 2, b"x")));
    t.w0.poll_once();
    t.w1.poll_once();
    let lost = drops(&mut t.w1, DropReason::NoSuchPort) + drops(&mut t.w0, DropReason::RemotePort);
    assert_eq!(lost, 1, "the packet for the removed port is counted");

    // It comes back on worker 0 itself: the output is local again.
    let (pb, mut b) = MemoryPort::pair("b", 4096);
    t.w0.add_port(EnginePort::new(2, Box::new(pb)))
        .map_err(|(e, _)| e)
        .expect("add");
    assert!(t.a.send(&frame(to_port(2), 3, b"x")));
    t.w0.poll_once();
    t.w1.poll_once();
    assert_eq!(b.recv_all().len(), 1, "delivered locally after the move");
    t.bridge.lock().expect("bridge").retain(|&p| p != 2);
    assert_no_leak(&t.w1);
}
