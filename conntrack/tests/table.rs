//! The preallocated table: capacity and refusal, record reuse under concurrent readers,
//! batch lookups, one million connections.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use xvs_conntrack::tuple::proto;
use xvs_conntrack::{
    Conntrack, CtAction, CtConfig, CtInput, CtMeta, CtProbe, CtState, CtStats, NatRange, Rewrite,
    TcpSegment, Tuple,
};

const Z: u16 = 7;

fn tuple(i: u32) -> Tuple {
    Tuple::ports(
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 14))),
        IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
        proto::UDP,
        1024 + (i & 0x3fff) as u16,
        53,
    )
}

fn reply(i: u32) -> Tuple {
    let t = tuple(i);
    Tuple::ports(t.dst, t.src, proto::UDP, t.dst_port, t.src_port)
}

fn ct_with(capacity: usize, max: u32) -> Conntrack {
    Conntrack::new(CtConfig {
        max_conns: max,
        initial_capacity: 2 * capacity,
        hash_seed: 1,
        ..CtConfig::default()
    })
}

fn run(ct: &Conntrack, now: u64, t: Tuple, act: CtAction) -> CtMeta {
    let mut m = CtMeta::default();
    let mut s = CtStats::default();
    ct.process(now, &CtInput::new(t), &act, &mut m, &mut s);
    m
}

/// A full slab refuses new connections (counted in `full`) even below `max_conns`; the
/// established ones keep working; a removed connection's record serves the next one.
#[test]
fn a_full_table_refuses_and_established_connections_pass() {
    let ct = ct_with(100, 1000);
    assert_eq!(ct.capacity(), 100);
    for i in 0..100 {
        run(&ct, 0, tuple(i), CtAction::commit(Z));
        run(&ct, 0, reply(i), CtAction::lookup(Z));
    }
    assert_eq!(ct.conn_count(), 100);
    let m = run(&ct, 1, tuple(100), CtAction::commit(Z));
    assert_eq!(m.state, CtState::NEW | CtState::TRACKED);
    assert!(m.conn.is_none());
    assert_eq!(ct.counters().full, 1);
    assert_eq!(ct.conn_count(), 100);
    for i in 0..100 {
        let m = run(&ct, 1, tuple(i), CtAction::lookup(Z));
        assert!(m.state.contains(CtState::ESTABLISHED), "conn {i}");
    }
    assert!(ct.flush_tuple(Z, &tuple(3)));
    let m = run(&ct, 2, tuple(100), CtAction::commit(Z));
    assert!(m.conn.is_some());
    assert_eq!(ct.conn_count(), 100);
    assert_eq!(ct.counters().full, 1);
    assert!(run(&ct, 2, tuple(3), CtAction::lookup(Z)).conn.is_none());
}

/// Readers looking connections up while two writers keep creating and removing them in a
/// table of 32 records (so every record is reused thousands of times) only ever see the
/// connection they asked for, with its own mark and an untorn label.
#[test]
fn readers_never_see_a_reused_record_as_their_connection() {
    const KEYS: u32 = 64;
    let ct = Arc::new(ct_with(32, 1000));
    let stop = Arc::new(AtomicBool::new(false));
    let mark = |i: u32| 0x100 + i;
    let label = |i: u32| u128::from(i + 1) << 64 | u128::from(i + 1);
    let writers: Vec<_> = (0..2u32)
        .map(|w| {
            let ct = Arc::clone(&ct);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut round = 0u32;
                while !stop.load(Ordering::Relaxed) || round < 3000 {
                    round += 1;
                    let i = (round * 2 + w) % KEYS;
                    let act = CtAction::commit(Z)
                        .with_mark(mark(i), u32::MAX)
                        .with_label(label(i), u128::MAX);
                    run(&ct, 0, tuple(i), act);
                    if round % 3 != 0 {
                        ct.flush_tuple(Z, &tuple((i + 7) % KEYS));
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u32)
        .map(|r| {
            let ct = Arc::clone(&ct);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut found = 0u64;
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    let i = (n * 13 + r) % KEYS;
                    let (t, rev) = if n % 2 == 0 {
                        (tuple(i), false)
                    } else {
                        (reply(i), true)
                    };
                    let m = run(&ct, 0, t, CtAction::lookup(Z));
                    if m.conn.is_some() {
                        found += 1;
                        assert_eq!(m.orig, Some(tuple(i)), "another connection's key");
                        assert_eq!(m.conn.map(|h| h.is_reply()), Some(rev));
                        // Mark and label are set right after creation: 0 or this connection's.
                        assert!(m.mark == 0 || m.mark == mark(i), "mark {:#x}", m.mark);
                        assert!(m.label == 0 || m.label == label(i), "label {:#x}", m.label);
                    }
                }
                found
            })
        })
        .collect();
    thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        assert!(w.join().is_ok());
    }
    let found: u64 = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_else(|_| panic!("reader failed")))
        .sum();
    assert!(found > 0, "readers never found a connection");
    // Everything left is consistent: counts add up, every live connection is findable.
    let dump = ct.dump(None, 0);
    assert_eq!(dump.len() as u32, ct.conn_count());
    assert_eq!(ct.sweep_list_len() as u32, ct.conn_count());
    for e in &dump {
        let m = run(&ct, 0, e.orig, CtAction::lookup(Z));
        assert!(m.conn.is_some());
    }
    assert_eq!(ct.flush(None), dump.len());
    assert_eq!(ct.conn_count(), 0);
    assert_eq!(ct.sweep_list_len(), 0);
}

/// `process_batch` gives exactly what `process` gives packet by packet.
#[test]
fn batch_equals_one_by_one() {
    let a = ct_with(1000, 1000);
    let b = ct_with(1000, 1000);
    let pkts: Vec<CtInput> = (0..200u32)
        .map(|i| {
            CtInput::new(match i % 3 {
                0 => tuple(i / 3),
                1 => reply(i / 3),
                _ => tuple(i),
            })
        })
        .collect();
    let act = CtAction::commit(Z);
    let mut sa = CtStats::default();
    let mut ma = vec![CtMeta::default(); pkts.len()];
    let mut ra: Vec<Option<Rewrite>> = vec![None; pkts.len()];
    assert_eq!(
        a.process_batch(5, &pkts, &act, &mut ma, &mut sa, &mut ra),
        200
    );
    let mut sb = CtStats::default();
    for (i, p) in pkts.iter().enumerate() {
        let mut m = CtMeta::default();
        let r = b.process(5, p, &act, &mut m, &mut sb);
        assert_eq!(r, ra[i]);
        assert_eq!(
            (m.state, m.orig, m.conn),
            (ma[i].state, ma[i].orig, ma[i].conn)
        );
    }
    assert_eq!(sa, sb);
    assert_eq!(a.conn_count(), b.conn_count());
}

/// Keys and hashes derived once by `prefetch_probed` give exactly what `process` gives packet
/// by packet, over batches that hold two packets of the same new connection, its reply, ICMP
/// errors, other zones, DNAT, TCP, and recirculated packets whose metadata carries a
/// connection handle or a translation.
#[test]
fn probed_batches_equal_one_by_one() {
    let a = ct_with(1000, 1000);
    let b = ct_with(1000, 1000);
    let svc = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));
    let ep = IpAddr::V4(Ipv4Addr::new(10, 10, 1, 7));
    let dnat = CtAction::commit(Z).with_nat_range(NatRange::dst(ep, Some(5353)));
    let acts = [
        CtAction::lookup(Z).with_nat(),
        CtAction::commit(Z),
        CtAction::commit(Z + 1),
        CtAction::lookup(Z),
        dnat,
    ];
    let tcp = |i: u32, fl: u16, reply_dir: bool| {
        let t = if reply_dir { reply(i) } else { tuple(i) };
        let t = Tuple::ports(t.src, t.dst, proto::TCP, t.src_port, t.dst_port);
        CtInput::tcp(
            t,
            TcpSegment {
                flags: fl,
                seq: if reply_dir { 5000 } else { 100 },
                ack: if reply_dir { 101 } else { 0 },
                window: 1000,
                ..TcpSegment::default()
            },
        )
    };
    // Packet j of the traffic: connection j / 4 sends twice, then its reply, then either an
    // ICMP error about it, a TCP SYN, a SYN-ACK or a packet to the Service.
    let packet = |j: u32| -> CtInput {
        let i = j / 4 % 60;
        match j % 4 {
            0 | 1 => CtInput::new(tuple(i)),
            2 => CtInput::new(reply(i)),
            _ => match i % 4 {
                0 => {
                    let t = tuple(i);
                    CtInput::icmp_error(
                        Tuple::icmp(t.dst, t.src, proto::ICMP, 3, 3, 0),
                        Tuple::ports(t.src, t.dst, proto::UDP, t.src_port, t.dst_port),
                    )
                }
                1 => tcp(i, 0x02, false),
                2 => tcp(i, 0x12, true),
                _ => {
                    let t = tuple(i);
                    CtInput::new(Tuple::ports(t.src, svc, proto::UDP, t.src_port, 53))
                }
            },
        }
    };
    let (mut sa, mut sb) = (CtStats::default(), CtStats::default());
    let mut probes = [CtProbe::default(); 32];
    for round in 0..40u32 {
        let act_of = |k: usize, pass: usize| acts[(round as usize + k * 3 + pass) % acts.len()];
        let pkts: Vec<CtInput> = (0..32).map(|k| packet(round * 8 + k)).collect();
        let mut ma = vec![CtMeta::default(); 32];
        let mut mb = vec![CtMeta::default(); 32];
        // Three passes over the same batch: the later ones start from the metadata the
        // earlier left (as after recirculation), in the zone of the next action.
        for pass in 0..3 {
            let acts_now: Vec<CtAction> = (0..32).map(|k| act_of(k, pass)).collect();
            let items = (0..32).map(|k| {
                let meta = (pass > 0).then(|| &ma[k]);
                (k, &acts_now[k], &pkts[k], meta)
            });
            a.prefetch_probed(items, &mut probes);
            for k in 0..32 {
                let now = u64::from(round) * 1_000_000;
                let ra = a.process_probed(
                    now,
                    &pkts[k],
                    &acts_now[k],
                    &mut ma[k],
                    Some(&probes[k]),
                    &mut sa,
                );
                let rb = b.process(now, &pkts[k], &acts_now[k], &mut mb[k], &mut sb);
                assert_eq!(ra, rb, "round {round} pass {pass} packet {k}");
                assert_eq!(
                    (ma[k].state, ma[k].zone, ma[k].mark, ma[k].orig, ma[k].conn),
                    (mb[k].state, mb[k].zone, mb[k].mark, mb[k].orig, mb[k].conn),
                    "round {round} pass {pass} packet {k}"
                );
            }
        }
    }
    assert_eq!(sa, sb);
    assert!(
        sa.created > 50 && sa.established > 50 && sa.related > 0,
        "{sa:?}"
    );
    assert_eq!(a.conn_count(), b.conn_count());
}

/// One million connections fit in a table preallocated for them; the next is refused.
#[test]
fn one_million_connections_fit() {
    const N: u32 = 1_000_000;
    let ct = ct_with(N as usize, N + 10);
    let act = CtAction::commit(Z);
    let mut s = CtStats::default();
    for i in 0..N {
        let mut m = CtMeta::default();
        ct.process(0, &CtInput::new(tuple(i)), &act, &mut m, &mut s);
    }
    assert_eq!(ct.conn_count(), N);
    assert_eq!(s.created, u64::from(N));
    let m = run(&ct, 0, tuple(N), act);
    assert!(m.conn.is_none());
    assert_eq!(ct.counters().full, 1);
    for i in (0..N).step_by(9973) {
        let m = run(&ct, 0, reply(i), CtAction::lookup(Z));
        assert!(m.state.contains(CtState::ESTABLISHED | CtState::REPLY_DIR));
    }
}
