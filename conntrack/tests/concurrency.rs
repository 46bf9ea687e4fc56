//! Several workers on one tracker: no lost updates, no duplicate connections, no double NAT
//! allocation, TCP tracked with its two directions on two threads.

mod common;

use common::*;
use std::sync::{Arc, Barrier};
use std::thread;
use xvs_conntrack::tcp::flags::{ACK, PSH, SYN};
use xvs_conntrack::{Conntrack, CtAction, CtStats, NatKind, NatRange};

const Z: u16 = 65520;

fn join_all<T>(hs: Vec<thread::JoinHandle<T>>) -> Vec<T> {
    hs.into_iter()
        .map(|h| match h.join() {
            Ok(v) => v,
            Err(_) => panic!("worker panicked"),
        })
        .collect()
}

/// Two workers commit masked marks and labels on the same connections, one from each
/// direction: every bit set by either survives, every packet is found.
#[test]
fn masked_commits_from_both_directions_lose_no_update() {
    const CONNS: u16 = 64;
    let ct = Arc::new(ct());
    for i in 0..CONNS {
        Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(Z));
    }
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = (0..2u32)
        .map(|t| {
            let ct = Arc::clone(&ct);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut stats = CtStats::default();
                barrier.wait();
                for round in 0..16u32 {
                    let bit = 1u32 << (t * 16 + round);
                    let lbit = (u128::from(bit) << 64) | u128::from(bit);
                    for i in 0..CONNS {
                        let mut p = if t == 0 {
                            Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53)
                        } else {
                            Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000 + i)
                        };
                        p.ct_stats(
                            &ct,
                            SEC,
                            CtAction::commit(Z)
                                .with_mark(bit, bit)
                                .with_label(lbit, lbit),
                            &mut stats,
                        );
                        assert_ne!(p.meta.mark & bit, 0);
                        // Never a torn label: both halves come from the same write.
                        assert_eq!((p.meta.label >> 64) as u64, p.meta.label as u64);
                    }
                }
                stats
            })
        })
        .collect();
    let stats = join_all(hs);
    for s in &stats {
        assert_eq!(
            (s.packets, s.hits, s.created, s.invalid),
            (16 * u64::from(CONNS), 16 * u64::from(CONNS), 0, 0)
        );
    }
    assert_eq!(ct.conn_count(), u32::from(CONNS));
    for e in ct.dump(None, SEC) {
        assert_eq!(e.mark, u32::MAX, "{e}");
        assert_eq!(e.label, (u128::from(u32::MAX) << 64) | u128::from(u32::MAX));
    }
}

/// Two workers commit the same new connections at the same time (one from each side for half
/// of them): each connection is created exactly once.
#[test]
fn racing_creators_make_one_connection() {
    const N: u16 = 2000;
    for _ in 0..3 {
        let ct = Arc::new(ct());
        let barrier = Arc::new(Barrier::new(2));
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let ct = Arc::clone(&ct);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    let mut stats = CtStats::default();
                    barrier.wait();
                    for i in 0..N {
                        let mut p = if t == 1 && i % 2 == 1 {
                            Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000 + i)
                        } else {
                            Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53)
                        };
                        p.ct_stats(&ct, 0, CtAction::commit(Z), &mut stats);
                        assert!(p.meta.conn.is_some(), "no connection for {i}");
                    }
                    stats
                })
            })
            .collect();
        let stats = join_all(hs);
        let created: u64 = stats.iter().map(|s| s.created).sum();
        assert_eq!(created, u64::from(N));
        assert_eq!(ct.counters().created, u64::from(N));
        assert_eq!(ct.conn_count(), u32::from(N));
        assert_eq!(ct.dump(None, 0).len(), usize::from(N));
        assert_eq!(stats.iter().map(|s| s.commit_failed).sum::<u64>(), 0);
    }
}

/// Two workers SNAT clients into one 100-port range at the same time: every port is handed out
/// once, the 101st client fails.
#[test]
fn concurrent_snat_allocates_each_port_once() {
    let ct = Arc::new(ct());
    let Ok(range) = NatRange::new(
        NatKind::Src,
        Some((ip("192.168.1.1"), ip("192.168.1.1"))),
        Some((20000, 20099)),
    ) else {
        panic!("range")
    };
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = (0..2u16)
        .map(|t| {
            let ct = Arc::clone(&ct);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut ports = Vec::new();
                barrier.wait();
                for i in 0..50u16 {
                    let mut p = Packet::udp(&format!("10.0.{t}.{}", i + 1), 5000, "10.20.0.9", 53);
                    p.ct(&ct, 0, CtAction::commit(65521).with_nat_range(range));
                    assert!(p.meta.state.contains(SNAT), "client {t}/{i} not translated");
                    ports.push(p.tuple().src_port);
                }
                ports
            })
        })
        .collect();
    let mut ports: Vec<u16> = join_all(hs).into_iter().flatten().collect();
    ports.sort_unstable();
    assert_eq!(ports, (20000..20100).collect::<Vec<_>>());
    let mut last = Packet::udp("10.0.9.9", 5000, "10.20.0.9", 53);
    last.ct(&ct, 0, CtAction::commit(65521).with_nat_range(range));
    assert!(!last.meta.state.contains(SNAT));
    assert_eq!(ct.counters().nat_exhausted, 1);
}

/// One TCP connection, its client direction on one thread and its server direction on the
/// other, interleaving freely: the per-connection lock keeps the window state consistent and
/// no segment is judged invalid.
#[test]
fn tcp_directions_on_two_threads() {
    let ct = Arc::new(ct());
    Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, SYN, 1000, 0, 0).ct(&ct, 0, CtAction::commit(Z));
    Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, SYN | ACK, 5000, 1001, 0).ct(
        &ct,
        0,
        CtAction::lookup(Z),
    );
    Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 1001, 5001, 0).ct(
        &ct,
        0,
        CtAction::lookup(Z),
    );
    // The server opens its scaled window (65535 << 7): the client may now send 8 MB ahead.
    Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, ACK, 5001, 1001, 0).ct(
        &ct,
        0,
        CtAction::lookup(Z),
    );
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = (0..2)
        .map(|t| {
            let ct = Arc::clone(&ct);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut stats = CtStats::default();
                barrier.wait();
                for i in 0..2000u32 {
                    let mut p = if t == 0 {
                        // Client sends 1000-byte segments, acking only the server's SYN.
                        Packet::tcp(
                            "10.0.0.1",
                            40000,
                            "10.0.0.2",
                            80,
                            ACK | PSH,
                            1001 + i * 1000,
                            5001,
                            1000,
                        )
                    } else {
                        // Server sends small segments and acks the client's SYN only (its
                        // acks lag behind: legal, within the window).
                        Packet::tcp(
                            "10.0.0.2",
                            80,
                            "10.0.0.1",
                            40000,
                            ACK | PSH,
                            5001 + i * 10,
                            1001,
                            10,
                        )
                    };
                    p.ct_stats(&ct, SEC, CtAction::lookup(Z), &mut stats);
                    let want = if t == 0 {
                        st(&[EST, TRK])
                    } else {
                        st(&[EST, RPL, TRK])
                    };
                    assert_eq!(p.meta.state, want, "thread {t} segment {i}");
                }
                stats
            })
        })
        .collect();
    let stats = join_all(hs);
    assert!(stats
        .iter()
        .all(|s| s.established == 2000 && s.invalid == 0));
}

/// Lookups keep working while another thread sweeps and flushes.
#[test]
fn lookups_during_sweep_and_flush() {
    let ct = Arc::new(Conntrack::new(xvs_conntrack::CtConfig::default()));
    for i in 0..1000u16 {
        Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(Z));
    }
    let barrier = Arc::new(Barrier::new(2));
    let reader = {
        let ct = Arc::clone(&ct);
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            let mut found = 0u32;
            for round in 0..20 {
                if round == 1 {
                    barrier.wait();
                }
                for i in 0..1000u16 {
                    let mut p = Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53);
                    p.ct(&ct, round * SEC, CtAction::lookup(Z));
                    assert!(p.meta.state.contains(TRK));
                    found += u32::from(p.meta.conn.is_some());
                }
            }
            found
        })
    };
    barrier.wait();
    // Nothing has expired at 30 s (created at 0 with 60 s, refreshed since): the sweeps walk
    // the lists concurrently with the lookups and remove nothing; the flush removes all.
    let mut swept = 0;
    for _ in 0..50 {
        swept += ct.sweep(30 * SEC, 100).expired;
    }
    let flushed = ct.flush(Some(Z));
    let found = join_all(vec![reader])[0];
    assert!(found >= 1000, "{found}");
    assert_eq!((swept, flushed), (0, 1000));
    assert_eq!(ct.conn_count(), 0);
}

/// Two workers create and flush connections while a reader drains the event stream: every
/// event is either delivered or counted as dropped, none twice, and nobody waits on the
/// stream (the workers finish even though the reader holds rings while draining).
#[test]
fn event_stream_under_two_writers_and_a_reader() {
    const PER_WORKER: u16 = 3000;
    let ct = Arc::new(ct());
    ct.enable_events(256);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let ct = Arc::clone(&ct);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                ct.drain_events(&mut got, usize::MAX);
                if finished {
                    return got;
                }
                thread::yield_now();
            }
        })
    };
    let hs: Vec<_> = (0..2u16)
        .map(|t| {
            let ct = Arc::clone(&ct);
            thread::spawn(move || {
                for i in 0..PER_WORKER {
                    let src = if t == 0 { "10.0.0.1" } else { "10.0.0.2" };
                    let mut p = Packet::udp(src, 1000 + i, "10.0.0.9", 53);
                    p.ct(&ct, 0, CtAction::commit(Z));
                    assert!(ct.flush_tuple(Z, &p.tuple()));
                }
            })
        })
        .collect();
    join_all(hs);
    done.store(true, std::sync::atomic::Ordering::Release);
    let got = join_all(vec![reader]).pop().unwrap_or_default();
    let produced = 2 * 2 * u64::from(PER_WORKER); // a New and a Destroy per connection
    assert_eq!(got.len() as u64 + ct.event_drops(), produced);
    let mut seen = std::collections::HashSet::new();
    for e in &got {
        assert!(
            seen.insert((e.orig.src, e.orig.src_port, e.kind)),
            "{e:?} twice"
        );
    }
    assert_eq!(ct.conn_count(), 0);
}
