//! The tracker under hostile or unusual input: simultaneous open and retransmissions, a SYN
//! flood against a full table, the change-event stream's bounds, and arbitrary packets (no
//! panic, bounded growth, nothing created outside the `ct()` zone).

mod common;

use std::net::IpAddr;

use common::*;
use proptest::prelude::*;
use xvs_conntrack::tcp::flags::{ACK, FIN, PSH, RST, SYN};
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{
    Conntrack, CtAction, CtConfig, CtEvent, CtEventKind, CtInput, CtMeta, CtStats, DestroyReason,
    NatKind, NatRange, TcpSegment, TcpState, Tuple,
};

const Z: u16 = 65520;

#[test]
fn tcp_simultaneous_open() {
    let ct = ct();
    let a = |fl, seq, ack| Packet::tcp("10.0.0.1", 5000, "10.0.0.2", 6000, fl, seq, ack, 0);
    let b = |fl, seq, ack| Packet::tcp("10.0.0.2", 6000, "10.0.0.1", 5000, fl, seq, ack, 0);
    let mut p = a(SYN, 100, 0);
    p.ct(&ct, 0, CtAction::commit(Z));
    assert_eq!(p.state(), st(&[NEW, TRK]));
    // The peer's own SYN crosses ours. As in OVS (`CT_UPDATE_VALID_NEW`), a bare SYN from a
    // side that is still opening is `+new` (no `+rpl`), and it joins the same connection.
    let mut p = b(SYN, 900, 0);
    p.ct(&ct, 0, CtAction::lookup(Z));
    assert_eq!(p.state(), st(&[NEW, TRK]));
    assert_eq!(ct.conn_count(), 1);
    let mut p = a(SYN | ACK, 100, 901);
    p.ct(&ct, 0, CtAction::lookup(Z));
    assert_eq!(p.state(), st(&[EST, TRK]));
    let mut p = b(SYN | ACK, 900, 101);
    p.ct(&ct, 0, CtAction::lookup(Z));
    assert_eq!(p.state(), st(&[EST, RPL, TRK]));
    let mut p = a(ACK | PSH, 101, 901);
    p.input.tcp = p.input.tcp.map(|s| TcpSegment {
        payload_len: 10,
        ..s
    });
    p.ct(&ct, SEC, CtAction::lookup(Z));
    assert_eq!(p.state(), st(&[EST, TRK]));
    let d = ct.dump(None, SEC);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].tcp,
        Some((TcpState::Established, TcpState::Established))
    );
}

#[test]
fn tcp_retransmissions_stay_established_and_fin_both_ways_closes() {
    let ct = ct();
    let c = |fl, seq, ack, len| Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, fl, seq, ack, len);
    let s = |fl, seq, ack, len| Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, fl, seq, ack, len);
    c(SYN, 1000, 0, 0).ct(&ct, 0, CtAction::commit(Z));
    // The SYN+ACK is lost and sent again: both copies are established replies.
    for _ in 0..2 {
        let mut p = s(SYN | ACK, 5000, 1001, 0);
        p.ct(&ct, 0, CtAction::lookup(Z));
        assert_eq!(p.state(), st(&[EST, RPL, TRK]));
    }
    c(ACK, 1001, 5001, 0).ct(&ct, 0, CtAction::lookup(Z));
    // A data segment retransmitted three times (same sequence): never invalid.
    for i in 0..3 {
        let mut p = c(ACK | PSH, 1001, 5001, 1000);
        p.ct(&ct, i * SEC, CtAction::lookup(Z));
        assert_eq!(p.state(), st(&[EST, TRK]), "copy {i}");
    }
    // The receiver acknowledges only half, then all.
    s(ACK, 5001, 1501, 0).ct(&ct, 3 * SEC, CtAction::lookup(Z));
    let mut p = s(ACK, 5001, 2001, 0);
    p.ct(&ct, 3 * SEC, CtAction::lookup(Z));
    assert_eq!(p.state(), st(&[EST, RPL, TRK]));
    // FIN both ways, the first FIN retransmitted once.
    for _ in 0..2 {
        let mut p = c(FIN | ACK, 2001, 5001, 0);
        p.ct(&ct, 4 * SEC, CtAction::lookup(Z));
        assert_eq!(p.state(), st(&[EST, TRK]));
    }
    s(FIN | ACK, 5001, 2002, 0).ct(&ct, 4 * SEC, CtAction::lookup(Z));
    c(ACK, 2002, 5002, 0).ct(&ct, 4 * SEC, CtAction::lookup(Z));
    let e = &ct.dump(None, 4 * SEC)[0];
    assert!(
        e.to_string().ends_with("protoinfo=(state=TIME_WAIT)"),
        "{e}"
    );
    // Closed: gone 30 s later (virtual clock), and the sweep reclaims it.
    assert_eq!(ct.dump(None, 34 * SEC + 1).len(), 0);
    assert_eq!(ct.sweep(34 * SEC + 1, 10).expired, 1);
    // A late RST after expiry is a new packet without connection, as in OVS (`tcp_valid_new`
    // accepts a bare RST); a late SYN+ACK may not start one.
    let mut p = c(RST, 2002, 0, 0);
    p.ct(&ct, 35 * SEC, CtAction::lookup(Z));
    assert_eq!(p.state(), st(&[NEW, TRK]));
    let mut p = s(SYN | ACK, 5002, 2002, 0);
    p.ct(&ct, 35 * SEC, CtAction::commit(Z));
    assert_eq!(p.state(), st(&[INV, TRK]));
    assert_eq!(ct.conn_count(), 0);
}

fn addr(i: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000u32 | i).to_be_bytes())
}

#[test]
fn syn_flood_at_a_full_table_leaves_established_connections_working() {
    const LIVE: u16 = 200;
    let ct = Conntrack::new(CtConfig {
        max_conns: u32::from(LIVE),
        ..CtConfig::default()
    });
    let mut stats = CtStats::default();
    let server = addr(1);
    let seg = |fl, seq, ack| TcpSegment {
        flags: fl,
        seq,
        ack,
        window: 65535,
        wscale: None,
        payload_len: 0,
    };
    let run = |t: Tuple, s: TcpSegment, act: CtAction, stats: &mut CtStats| {
        let mut m = CtMeta::default();
        ct.process(SEC, &CtInput::tcp(t, s), &act, &mut m, stats);
        m.state
    };
    for i in 0..LIVE {
        let fwd = Tuple::ports(addr(2), server, proto::TCP, 10_000 + i, 80);
        let rev = Tuple::ports(server, addr(2), proto::TCP, 80, 10_000 + i);
        run(fwd, seg(SYN, 1, 0), CtAction::commit(Z), &mut stats);
        run(rev, seg(SYN | ACK, 7, 2), CtAction::lookup(Z), &mut stats);
        assert_eq!(
            run(fwd, seg(ACK, 2, 8), CtAction::lookup(Z), &mut stats),
            st(&[EST, TRK])
        );
    }
    assert_eq!(ct.conn_count(), u32::from(LIVE));
    // 20,000 spoofed SYNs, each committed by the pipeline.
    let mut flood = CtStats::default();
    for i in 0..20_000u32 {
        let t = Tuple::ports(
            addr(0x10000 + i),
            server,
            proto::TCP,
            (i % 60_000) as u16 + 1,
            80,
        );
        assert_eq!(
            run(t, seg(SYN, i, 0), CtAction::commit(Z), &mut flood),
            st(&[NEW, TRK])
        );
    }
    assert_eq!(flood.commit_failed, 20_000);
    assert_eq!(ct.counters().full, 20_000);
    assert_eq!(ct.conn_count(), u32::from(LIVE));
    // Every established connection still passes, both ways.
    for i in 0..LIVE {
        let fwd = Tuple::ports(addr(2), server, proto::TCP, 10_000 + i, 80);
        let rev = Tuple::ports(server, addr(2), proto::TCP, 80, 10_000 + i);
        assert_eq!(
            run(fwd, seg(ACK, 2, 8), CtAction::lookup(Z), &mut stats),
            st(&[EST, TRK])
        );
        assert_eq!(
            run(rev, seg(ACK, 8, 2), CtAction::lookup(Z), &mut stats),
            st(&[EST, RPL, TRK])
        );
    }
}

#[test]
fn events_report_new_and_destroy_with_reasons() {
    let ct = ct();
    assert!(ct.enable_events(1024));
    assert!(!ct.enable_events(8), "enabled once");
    let mut a = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    a.ct(&ct, 5, CtAction::commit(Z));
    let mut b = Packet::udp("10.0.0.1", 1001, "10.0.0.2", 53);
    b.ct(&ct, 6, CtAction::commit(7));
    // Uncommitted and invalid packets make no event.
    Packet::udp("10.0.0.1", 1002, "10.0.0.2", 53).ct(&ct, 6, CtAction::lookup(Z));
    let mut ev: Vec<CtEvent> = Vec::new();
    assert_eq!(ct.drain_events(&mut ev, 100), 2);
    ev.sort_by_key(|e| e.at);
    assert_eq!(ev[0].kind, CtEventKind::New);
    assert_eq!((ev[0].zone, ev[0].at), (Z, 5));
    assert_eq!(ev[0].orig, a.tuple());
    assert_eq!(ev[1].zone, 7);
    ev.clear();
    assert_eq!(ct.flush(Some(7)), 1);
    assert_eq!(ct.sweep(61 * SEC, 100).expired, 1);
    ct.drain_events(&mut ev, 100);
    let kinds: Vec<_> = ev.iter().map(|e| (e.zone, e.kind)).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&(7, CtEventKind::Destroy(DestroyReason::Flushed))));
    assert!(kinds.contains(&(Z, CtEventKind::Destroy(DestroyReason::Expired))));
    assert_eq!(ct.event_drops(), 0);
}

#[test]
fn event_stream_is_bounded_and_counts_what_it_drops() {
    let ct = ct();
    ct.enable_events(64); // one event per ring of 64
    for i in 0..1000u16 {
        Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(Z));
    }
    let mut ev = Vec::new();
    let got = ct.drain_events(&mut ev, usize::MAX);
    assert!(got <= 64, "{got}");
    assert_eq!(got as u64 + ct.event_drops(), 1000);
    // Drained rings take events again.
    Packet::udp("10.0.0.9", 1, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(Z));
    ev.clear();
    assert_eq!(ct.drain_events(&mut ev, 10), 1);
    // Without enable_events nothing is queued.
    let quiet = common::ct();
    Packet::udp("10.0.0.1", 1, "10.0.0.2", 53).ct(&quiet, 0, CtAction::commit(Z));
    assert_eq!(quiet.drain_events(&mut ev, 10), 0);
}

// ----- arbitrary input -----

const MAX: u32 = 48;
const ZONES: [u16; 3] = [0, 7, Z];

fn any_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4).prop_map(|i| IpAddr::from([10, 0, 0, i])),
        (0u8..3).prop_map(|i| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)])),
        any::<[u8; 4]>().prop_map(IpAddr::from),
    ]
}

fn any_tuple() -> impl Strategy<Value = Tuple> {
    (
        any_addr(),
        any_addr(),
        prop_oneof![
            Just(proto::TCP),
            Just(proto::UDP),
            Just(proto::ICMP),
            Just(proto::ICMPV6),
            Just(proto::SCTP),
            any::<u8>()
        ],
        0u16..4,
        0u16..4,
        any::<u8>(),
        0u8..3,
        0u16..3,
    )
        .prop_map(|(src, dst, p, sp, dp, ty, code, id)| Tuple {
            src,
            dst,
            proto: p,
            src_port: sp,
            dst_port: dp,
            icmp_id: id,
            icmp_type: ty,
            icmp_code: code,
        })
}

fn any_input() -> impl Strategy<Value = CtInput> {
    (
        any_tuple(),
        proptest::option::of((
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            proptest::option::of(any::<u8>()),
            0u32..70_000,
        )),
        proptest::option::of(any_tuple()),
        proptest::bool::weighted(0.05),
        proptest::bool::weighted(0.05),
    )
        .prop_map(|(tuple, tcp, inner, fragment, malformed)| CtInput {
            tuple,
            tcp: tcp.map(
                |(flags, seq, ack, window, wscale, payload_len)| TcpSegment {
                    flags,
                    seq,
                    ack,
                    window,
                    wscale,
                    payload_len,
                },
            ),
            icmp_error_inner: inner,
            fragment,
            malformed,
        })
}

fn any_action() -> impl Strategy<Value = CtAction> {
    (
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        0u8..4,
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(z, commit, force, nat, mark)| {
            let mut a = CtAction {
                zone: ZONES[z],
                commit,
                force,
                ..CtAction::default()
            };
            a = match nat {
                1 => a.with_nat(),
                2 => match NatRange::new(
                    NatKind::Src,
                    Some((
                        IpAddr::from([192, 168, 0, 1]),
                        IpAddr::from([192, 168, 0, 1]),
                    )),
                    Some((1000, 1003)),
                ) {
                    Ok(r) => a.with_nat_range(r),
                    Err(_) => a,
                },
                3 => a.with_nat_range(NatRange::dst(IpAddr::from([10, 0, 0, 3]), None)),
                _ => a,
            };
            if let Some(m) = mark {
                a = a.with_mark(m, u32::MAX);
            }
            a
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_packets_never_panic_never_overflow_never_leave_their_zone(
        steps in proptest::collection::vec((any_input(), any_action(), any::<bool>(), 0u64..40), 1..200)
    ) {
        let ct = Conntrack::new(CtConfig { max_conns: MAX, hash_seed: 9, ..CtConfig::default() });
        ct.enable_events(4096);
        let mut now = 0u64;
        let mut stats = CtStats::default();
        let mut meta = CtMeta::default();
        let mut ev = Vec::new();
        for (input, act, keep_meta, dt) in steps {
            now += dt * SEC;
            if !keep_meta {
                meta = CtMeta::default();
            }
            let _ = ct.process(now, &input, &act, &mut meta, &mut stats);
            prop_assert!(ct.conn_count() <= MAX);
            prop_assert_eq!(meta.zone, act.zone);
            ev.clear();
            ct.drain_events(&mut ev, usize::MAX);
            for e in &ev {
                if e.kind == CtEventKind::New {
                    prop_assert!(act.commit, "created without commit");
                    prop_assert_eq!(e.zone, act.zone, "created outside the ct() zone");
                }
            }
            if dt > 30 {
                ct.sweep(now, 16);
            }
        }
        prop_assert!(ct.dump(None, now).len() <= MAX as usize);
        for z in ZONES {
            for e in ct.dump(Some(z), now) {
                prop_assert_eq!(e.zone, z);
            }
        }
        let total: u32 = ct.zone_counts().iter().map(|(_, n)| n).sum();
        prop_assert_eq!(total, ct.conn_count());
        ct.flush(None);
        prop_assert_eq!(ct.conn_count(), 0);
        prop_assert!(ct.zone_counts().is_empty());
    }
}

#[test]
fn events_name_reopen_force_and_nat_tuples() {
    let ct = ct();
    ct.enable_events(256);
    let c = |fl, seq, ack| Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, fl, seq, ack, 0);
    let s = |fl, seq, ack| Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, fl, seq, ack, 0);
    c(SYN, 1000, 0).ct(&ct, 0, CtAction::commit(Z));
    s(SYN | ACK, 5000, 1001).ct(&ct, 0, CtAction::lookup(Z));
    c(ACK, 1001, 5001).ct(&ct, 0, CtAction::lookup(Z));
    c(FIN | ACK, 1001, 5001).ct(&ct, 0, CtAction::lookup(Z));
    s(FIN | ACK, 5001, 1002).ct(&ct, 0, CtAction::lookup(Z));
    c(ACK, 1002, 5002).ct(&ct, 0, CtAction::lookup(Z));
    // A new SYN on the closed connection ends it and starts another.
    c(SYN, 90_000, 0).ct(&ct, SEC, CtAction::commit(Z));
    // A forced commit from the reply side ends the UDP connection seen as a reply.
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 2 * SEC, CtAction::commit(Z));
    let mut forced = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    forced.ct(
        &ct,
        3 * SEC,
        CtAction {
            force: true,
            ..CtAction::commit(Z)
        },
    );
    // SNAT: the event's reply tuple is the translated one.
    let range = NatRange::new(
        NatKind::Src,
        Some((ip("192.168.9.9"), ip("192.168.9.9"))),
        None,
    );
    let Ok(range) = range else {
        panic!("{range:?}")
    };
    Packet::udp("10.0.0.5", 7000, "10.0.0.2", 53).ct(
        &ct,
        4 * SEC,
        CtAction::commit(Z).with_nat_range(range),
    );
    let mut ev = Vec::new();
    ct.drain_events(&mut ev, usize::MAX);
    ev.sort_by_key(|e| (e.at, matches!(e.kind, CtEventKind::New)));
    let kinds: Vec<(u64, CtEventKind)> = ev.iter().map(|e| (e.at / SEC, e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (0, CtEventKind::New),
            (1, CtEventKind::Destroy(DestroyReason::Reopened)),
            (1, CtEventKind::New),
            (2, CtEventKind::New),
            (3, CtEventKind::Destroy(DestroyReason::Forced)),
            (3, CtEventKind::New),
            (4, CtEventKind::New),
        ]
    );
    let nat = &ev[6];
    assert_eq!(nat.reply.dst, ip("192.168.9.9"));
    assert_eq!(nat.orig.src, ip("10.0.0.5"));
}

#[test]
fn churn_without_sweeps_does_not_grow_memory() {
    // Each forced commit from the other side ends the connection and creates a new one; the
    // ended ones must not pile up in the sweep lists while nobody sweeps.
    let ct = ct();
    let a = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    let b = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    let force = CtAction {
        force: true,
        ..CtAction::commit(Z)
    };
    for i in 0..20_000u64 {
        let mut p = if i % 2 == 0 { a.clone() } else { b.clone() };
        p.ct(&ct, i, force);
    }
    assert_eq!(ct.conn_count(), 1);
    // Each of the 64 lists may keep up to 16 entries above twice its share of live ones.
    let bound = 2 * ct.conn_count() as usize + 64 * 17;
    assert!(
        ct.sweep_list_len() <= bound,
        "{} list entries for 1 connection",
        ct.sweep_list_len()
    );
    // Reopened TCP connections and flushed tuples, likewise.
    for i in 0..2_000u32 {
        let isn = i * 100_000;
        let c = |fl, seq, ack| Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, fl, seq, ack, 0);
        let s = |fl, seq, ack| Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, fl, seq, ack, 0);
        c(SYN, isn, 0).ct(&ct, 0, CtAction::commit(Z));
        s(SYN | ACK, 7, isn + 1).ct(&ct, 0, CtAction::lookup(Z));
        c(FIN | ACK, isn + 1, 8).ct(&ct, 0, CtAction::lookup(Z));
        s(FIN | ACK, 8, isn + 2).ct(&ct, 0, CtAction::lookup(Z));
        c(ACK, isn + 2, 9).ct(&ct, 0, CtAction::lookup(Z));
        let t = Packet::udp("10.0.0.3", 1, "10.0.0.2", 53);
        t.clone().ct(&ct, 0, CtAction::commit(Z));
        assert!(ct.flush_tuple(Z, &t.tuple()));
    }
    assert!(ct.conn_count() <= 2);
    assert!(
        ct.sweep_list_len() <= bound + 2,
        "{} list entries for {} connections",
        ct.sweep_list_len(),
        ct.conn_count()
    );
}
