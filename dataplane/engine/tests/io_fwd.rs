//! The worker loop over in-memory ports: exact forwarding, drop accounting, frame accounting,
//! counter publication and stopping.

use std::time::{Duration, Instant};
use xvs_engine::{DropReason, EnginePort, Forwarding, Worker, WorkerConfig, WorkerError};
use xvs_io::{FramePool, MemoryPeer, MemoryPort};

const FRAMES: u32 = 1024;

fn frame(tag: u8, seq: u32) -> Vec<u8> {
    let len = 60 + (seq as usize * 13) % 1400;
    let mut f = vec![tag; len];
    f[..4].copy_from_slice(&seq.to_be_bytes());
    f
}

fn two_ports(peers: Vec<Option<usize>>) -> (Worker, MemoryPeer, MemoryPeer) {
    let pool = FramePool::new(FRAMES, 2048, 128).expect("pool");
    let (pa, peer_a) = MemoryPort::pair("a", 4096);
    let (pb, peer_b) = MemoryPort::pair("b", 4096);
    let ports = vec![
        EnginePort::new(1, Box::new(pa)),
        EnginePort::new(2, Box::new(pb)),
    ];
    let w = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::IoFwd { peers },
        WorkerConfig::default(),
    )
    .expect("worker");
    (w, peer_a, peer_b)
}

#[test]
fn forwards_both_directions_exactly_and_returns_every_frame() {
    let (mut w, mut a, mut b) = two_ports(vec![Some(1), Some(0)]);
    let n = 2000u32;
    let (mut sent_a, mut sent_b) = (0u32, 0u32);
    let (mut got_at_b, mut got_at_a) = (Vec::new(), Vec::new());
    // Interleave injection and polling so the rings never overflow.
    while sent_a < n || sent_b < n || got_at_b.len() < n as usize || got_at_a.len() < n as usize {
        for _ in 0..50 {
            if sent_a < n && a.send(&frame(0xaa, sent_a)) {
                sent_a += 1;
            }
            if sent_b < n && b.send(&frame(0xbb, sent_b)) {
                sent_b += 1;
            }
        }
        w.poll_once();
        got_at_b.extend(b.recv_all());
        got_at_a.extend(a.recv_all());
    }
    assert_eq!(got_at_b, (0..n).map(|s| frame(0xaa, s)).collect::<Vec<_>>());
    assert_eq!(got_at_a, (0..n).map(|s| frame(0xbb, s)).collect::<Vec<_>>());
    assert_eq!(
        w.pool().free_count() + w.frames_held_by_ports(),
        FRAMES as usize
    );
}

#[test]
fn packets_without_output_are_counted_by_reason() {
    let (mut w, mut a, mut b) = two_ports(vec![Some(1), None]);
    for s in 0..100 {
        assert!(b.send(&frame(1, s)));
        assert!(a.send(&frame(2, s)));
    }
    let shared = w.shared();
    let stopper = std::thread::spawn({
        let shared = shared.clone();
        move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while shared.counters.load().rx_packets < 200 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            shared.request_stop();
        }
    });
    w.run();
    stopper.join().expect("stopper");
    let c = shared.counters.load();
    assert_eq!(c.rx_packets, 200);
    assert_eq!(c.tx_packets, 100);
    assert_eq!(c.drops[DropReason::NoOutput as usize], 100);
    assert_eq!(c.drops[DropReason::TxRingFull as usize], 0);
    assert!(shared.stopped.load(std::sync::atomic::Ordering::Acquire));
    assert_eq!(b.recv_all().len(), 100);
    assert!(a.recv_all().is_empty());
    assert_eq!(w.pool().free_count(), FRAMES as usize);
    let ports: Vec<_> = shared
        .ports
        .load()
        .iter()
        .map(|p| (p.name.clone(), p.ofport, p.counters.load()))
        .collect();
    assert_eq!(ports[0].0, "a");
    assert_eq!(ports[0].2.rx_packets, 100);
    assert_eq!(ports[1].2.tx_packets, 100);
}

#[test]
fn worker_on_its_own_thread_stops_when_asked() {
    let (w, mut a, mut b) = two_ports(vec![Some(1), Some(0)]);
    let shared = w.shared();
    let t = std::thread::spawn(move || {
        let mut w = w;
        w.run();
        w
    });
    for s in 0..500 {
        while !a.send(&frame(3, s)) {
            std::thread::yield_now();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < 500 && Instant::now() < deadline {
        got += b.recv_all().len();
    }
    assert_eq!(got, 500);
    shared.request_stop();
    let w = t.join().expect("worker thread");
    assert_eq!(shared.counters.load().rx_packets, 500);
    assert_eq!(w.pool().free_count(), FRAMES as usize);
}

#[test]
fn forwarding_must_cover_every_port() {
    let pool = FramePool::new(256, 2048, 0).expect("pool");
    let (pa, _peer) = MemoryPort::pair("a", 16);
    let ports = vec![EnginePort::new(1, Box::new(pa))];
    let e = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::IoFwd { peers: vec![] },
        WorkerConfig::default(),
    )
    .expect_err("size mismatch");
    assert!(matches!(
        e,
        WorkerError::ForwardingSize {
            entries: 0,
            ports: 1
        }
    ));

    let pool = FramePool::new(256, 2048, 0).expect("pool");
    let (pa, _peer) = MemoryPort::pair("a", 16);
    let ports = vec![EnginePort::new(1, Box::new(pa))];
    let e = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::IoFwd {
            peers: vec![Some(5)],
        },
        WorkerConfig::default(),
    )
    .expect_err("bad peer");
    assert_eq!(
        e.to_string(),
        "port a: io-fwd peer index 5 is not a port of this worker"
    );
}
