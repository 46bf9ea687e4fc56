//! NAT: DNAT/SNAT, un-NAT of replies, port allocation, exhaustion, Antrea's two-zone chain.

mod common;

use common::*;
use xvs_conntrack::tcp::flags::{ACK, SYN};
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{CtAction, CtStats, NatKind, NatRange, Rewrite, Tuple};

const CT_ZONE: u16 = 65520;
const SNAT_ZONE: u16 = 65521;

fn dnat(addr: &str, port: u16) -> NatRange {
    NatRange::dst(ip(addr), Some(port))
}

#[test]
fn dnat_then_reply_is_un_dnated() {
    let ct = ct();
    let mut p = Packet::udp("10.10.0.5", 40000, "10.96.0.10", 53);
    let rw = p.ct(
        &ct,
        0,
        CtAction::commit(CT_ZONE).with_nat_range(dnat("10.10.1.7", 5353)),
    );
    assert_eq!(
        rw,
        Some(Rewrite {
            dst: Some(ip("10.10.1.7")),
            dst_port: Some(5353),
            ..Rewrite::default()
        })
    );
    assert_eq!(p.state(), st(&[NEW, TRK, DNAT]));
    assert_eq!(
        p.tuple(),
        Tuple::ports(ip("10.10.0.5"), ip("10.10.1.7"), proto::UDP, 40000, 5353)
    );
    // ct_nw_dst etc. keep the original (pre-DNAT) tuple.
    assert_eq!(
        p.meta.orig,
        Some(Tuple::ports(
            ip("10.10.0.5"),
            ip("10.96.0.10"),
            proto::UDP,
            40000,
            53
        ))
    );
    // After NAT the connection is not cached (OVS does not either).
    assert!(p.meta.conn.is_none());

    // Reply from the endpoint: bare nat un-DNATs it.
    let mut r = Packet::udp("10.10.1.7", 5353, "10.10.0.5", 40000);
    let rw = r.ct(&ct, SEC, CtAction::lookup(CT_ZONE).with_nat());
    assert_eq!(
        rw,
        Some(Rewrite {
            src: Some(ip("10.96.0.10")),
            src_port: Some(53),
            ..Rewrite::default()
        })
    );
    assert_eq!(r.state(), st(&[EST, RPL, TRK, SNAT]));
    assert_eq!(
        r.tuple(),
        Tuple::ports(ip("10.96.0.10"), ip("10.10.0.5"), proto::UDP, 53, 40000)
    );

    // Next request: the existing translation applies, the range of a new commit is ignored.
    let mut p2 = Packet::udp("10.10.0.5", 40000, "10.96.0.10", 53);
    p2.ct(
        &ct,
        SEC,
        CtAction::commit(CT_ZONE).with_nat_range(dnat("10.10.9.9", 1)),
    );
    assert_eq!(p2.state(), st(&[EST, TRK, DNAT]));
    assert_eq!(p2.tuple().dst, ip("10.10.1.7"));
    // Without nat in the action, no rewrite even though the connection has one.
    let mut p3 = Packet::udp("10.10.0.5", 40000, "10.96.0.10", 53);
    assert_eq!(p3.ct(&ct, SEC, CtAction::lookup(CT_ZONE)), None);
    assert_eq!(p3.state(), st(&[EST, TRK]));

    assert_eq!(
        ct.dump(None, SEC)[0].to_string(),
        "udp,orig=(src=10.10.0.5,dst=10.96.0.10,sport=40000,dport=53),reply=(src=10.10.1.7,dst=10.10.0.5,sport=5353,dport=40000),zone=65520"
    );
}

#[test]
fn snat_port_allocation_avoids_collisions() {
    let ct = ct();
    let g = "192.168.1.1";
    let mut a = Packet::tcp("10.0.0.1", 5555, "10.20.0.9", 80, SYN, 1, 0, 0);
    let rw_a = a.ct(
        &ct,
        0,
        CtAction::commit(SNAT_ZONE).with_nat_range(NatRange::src(ip(g))),
    );
    // The source port is kept when the reply tuple is free.
    assert_eq!(
        rw_a,
        Some(Rewrite {
            src: Some(ip(g)),
            ..Rewrite::default()
        })
    );
    assert_eq!(a.state(), st(&[NEW, TRK, SNAT]));
    // A second client with the same source port must get another one.
    let mut b = Packet::tcp("10.0.0.2", 5555, "10.20.0.9", 80, SYN, 1, 0, 0);
    let Some(rw_b) = b.ct(
        &ct,
        0,
        CtAction::commit(SNAT_ZONE).with_nat_range(NatRange::src(ip(g))),
    ) else {
        panic!("no rewrite for the second client")
    };
    assert_eq!(rw_b.src, Some(ip(g)));
    let port_b = rw_b.src_port.unwrap_or(5555);
    assert_ne!(port_b, 5555);
    assert!((1024..=65535).contains(&port_b));
    // Replies reach the right clients.
    for (port, client) in [(5555, "10.0.0.1"), (port_b, "10.0.0.2")] {
        let mut r = Packet::tcp("10.20.0.9", 80, g, port, SYN | ACK, 100, 2, 0);
        r.ct(&ct, 0, CtAction::lookup(SNAT_ZONE).with_nat());
        assert_eq!(r.state(), st(&[EST, RPL, TRK, DNAT]));
        assert_eq!(
            r.tuple(),
            Tuple::ports(ip("10.20.0.9"), ip(client), proto::TCP, 80, 5555)
        );
    }
    // Low ports stay in their class (OVS: 1-511, 600-1023).
    let mut low = Packet::udp("10.0.0.3", 500, "10.20.0.9", 53);
    low.ct(
        &ct,
        0,
        CtAction::commit(SNAT_ZONE).with_nat_range(NatRange::src(ip(g))),
    );
    let mut low2 = Packet::udp("10.0.0.4", 500, "10.20.0.9", 53);
    low2.ct(
        &ct,
        0,
        CtAction::commit(SNAT_ZONE).with_nat_range(NatRange::src(ip(g))),
    );
    assert!((1..=511).contains(&low2.tuple().src_port) && low2.tuple().src_port != 500);
}

#[test]
fn exhausted_port_range_is_a_counted_failure() {
    let ct = ct();
    let Ok(one_port) = NatRange::new(
        NatKind::Src,
        Some((ip("192.168.1.1"), ip("192.168.1.1"))),
        Some((6000, 6000)),
    ) else {
        panic!("range")
    };
    let act = CtAction::commit(SNAT_ZONE).with_nat_range(one_port);
    let mut stats = CtStats::default();
    let mut a = Packet::udp("10.0.0.1", 1111, "10.20.0.9", 53);
    let rw = a.ct_stats(&ct, 0, act, &mut stats);
    assert_eq!(rw.and_then(|r| r.src_port), Some(6000));
    let mut b = Packet::udp("10.0.0.2", 2222, "10.20.0.9", 53);
    let rw = b.ct_stats(&ct, 0, act, &mut stats);
    assert_eq!(rw, None);
    assert_eq!(b.state(), st(&[NEW, TRK]));
    assert!(b.meta.conn.is_none());
    assert_eq!(b.tuple().src, ip("10.0.0.2"));
    assert_eq!((stats.created, stats.commit_failed), (1, 1));
    assert_eq!(ct.counters().nat_exhausted, 1);
    assert_eq!(ct.conn_count(), 1);
    // Once the first connection expires, the port is free again.
    let mut c = Packet::udp("10.0.0.2", 2222, "10.20.0.9", 53);
    let rw = c.ct(&ct, 61 * SEC, act);
    assert_eq!(rw.and_then(|r| r.src_port), Some(6000));
    assert_eq!(ct.conn_count(), 1);
}

#[test]
fn snat_port_range_and_address_range() {
    let ct = ct();
    let Ok(r) = NatRange::new(
        NatKind::Src,
        Some((ip("192.168.1.1"), ip("192.168.1.2"))),
        Some((7000, 7009)),
    ) else {
        panic!("range")
    };
    let act = CtAction::commit(SNAT_ZONE).with_nat_range(r);
    let mut seen = std::collections::HashSet::new();
    // Ten ports on each of two addresses, but each client hashes to one address: fill until
    // failures appear and check every success is unique and in range.
    let mut ok = 0;
    for i in 0..40u16 {
        let mut p = Packet::udp("10.0.0.1", 10_000 + i, "10.20.0.9", 53);
        if p.ct(&ct, 0, act).is_some() {
            let t = p.tuple();
            assert!((7000..=7009).contains(&t.src_port));
            assert!(t.src == ip("192.168.1.1") || t.src == ip("192.168.1.2"));
            assert!(seen.insert((t.src, t.src_port)));
            ok += 1;
        }
    }
    assert!((10..=20).contains(&ok), "{ok}");
    assert_eq!(ct.counters().nat_exhausted, 40 - ok as u64);
}

#[test]
fn ipv6_dnat_and_family_mismatch() {
    let ct = ct();
    let mut p = Packet::tcp("fd00::5", 40000, "fd96::10", 80, SYN, 1, 0, 0);
    p.ct(
        &ct,
        0,
        CtAction::commit(65510).with_nat_range(NatRange::dst(ip("fd00:1::7"), Some(8080))),
    );
    assert_eq!(
        p.tuple(),
        Tuple::ports(ip("fd00::5"), ip("fd00:1::7"), proto::TCP, 40000, 8080)
    );
    let mut r = Packet::tcp("fd00:1::7", 8080, "fd00::5", 40000, SYN | ACK, 9, 2, 0);
    r.ct(&ct, 0, CtAction::lookup(65510).with_nat());
    assert_eq!(r.state(), st(&[EST, RPL, TRK, SNAT]));
    assert_eq!(
        r.tuple(),
        Tuple::ports(ip("fd96::10"), ip("fd00::5"), proto::TCP, 80, 40000)
    );
    // An IPv4 range on an IPv6 packet: counted failure, nothing created.
    let mut bad = Packet::udp("fd00::5", 1, "fd96::10", 53);
    assert_eq!(
        bad.ct(
            &ct,
            0,
            CtAction::commit(65510).with_nat_range(NatRange::src(ip("1.2.3.4")))
        ),
        None
    );
    assert_eq!(ct.counters().nat_family, 1);
    assert_eq!(ct.conn_count(), 1);
}

#[test]
fn icmp_echo_snat_translates_the_identifier_on_collision() {
    let ct = ct();
    let act = CtAction::commit(SNAT_ZONE).with_nat_range(NatRange::src(ip("192.168.1.1")));
    let mut a = Packet::icmp("10.0.0.1", "8.8.8.8", 8, 77);
    a.ct(&ct, 0, act);
    assert_eq!((a.tuple().src, a.tuple().icmp_id), (ip("192.168.1.1"), 77));
    let mut b = Packet::icmp("10.0.0.2", "8.8.8.8", 8, 77);
    let rw = b.ct(&ct, 0, act);
    let id_b = b.tuple().icmp_id;
    assert_ne!(id_b, 77);
    assert_eq!(rw.and_then(|r| r.icmp_id), Some(id_b));
    let mut rb = Packet::icmp("8.8.8.8", "192.168.1.1", 0, id_b);
    rb.ct(&ct, 0, CtAction::lookup(SNAT_ZONE).with_nat());
    assert_eq!(rb.state(), st(&[EST, RPL, TRK, DNAT]));
    assert_eq!((rb.tuple().dst, rb.tuple().icmp_id), (ip("10.0.0.2"), 77));
}

#[test]
fn icmp_error_for_a_natted_connection_rewrites_outer_and_inner() {
    let ct = ct();
    // Service DNAT: client 10.10.0.5:40000 -> VIP 10.96.0.10:80 -> endpoint 10.10.1.7:8080.
    let mut p = Packet::tcp("10.10.0.5", 40000, "10.96.0.10", 80, SYN, 1, 0, 0);
    p.ct(
        &ct,
        0,
        CtAction::commit(CT_ZONE).with_nat_range(dnat("10.10.1.7", 8080)),
    );
    // The endpoint's path is broken: a router between the switch and the endpoint answers the
    // client (the translated SYN went out as 10.10.0.5 -> 10.10.1.7:8080).
    let inner = p.tuple();
    let mut e = Packet::icmp_error("10.10.1.254", "10.10.0.5", 3, 1, inner);
    let rw = e.ct(&ct, SEC, CtAction::lookup(CT_ZONE).with_nat());
    assert_eq!(e.state(), st(&[REL, RPL, TRK, SNAT]));
    let Some(rw) = rw else { panic!("no rewrite") };
    // As in OVS (and Linux), the error appears to come from the VIP the client talked to, and
    // the embedded packet becomes what the client sent.
    assert_eq!((rw.src, rw.dst), (Some(ip("10.96.0.10")), None));
    assert_eq!(
        rw.inner,
        Some(Tuple::ports(
            ip("10.10.0.5"),
            ip("10.96.0.10"),
            proto::TCP,
            40000,
            80
        ))
    );

    // An error about a reply sent by the endpoint, addressed to the VIP (seen after un-DNAT),
    // travels in the original direction and goes back to the endpoint.
    let reply_seen = Tuple::ports(ip("10.96.0.10"), ip("10.10.0.5"), proto::TCP, 80, 40000);
    let mut e2 = Packet::icmp_error("10.10.0.254", "10.96.0.10", 3, 3, reply_seen);
    let rw2 = e2.ct(&ct, SEC, CtAction::lookup(CT_ZONE).with_nat());
    assert_eq!(e2.state(), st(&[REL, TRK, DNAT]));
    let Some(rw2) = rw2 else { panic!("no rewrite") };
    assert_eq!(rw2.dst, Some(ip("10.10.1.7")));
    assert_eq!(
        rw2.inner,
        Some(Tuple::ports(
            ip("10.10.1.7"),
            ip("10.10.0.5"),
            proto::TCP,
            8080,
            40000
        ))
    );
}

/// Antrea's pipeline for a Service packet that needs SNAT (e.g. hairpin or NodePort):
/// UnSNAT `ct(zone=65521,nat)` -> ConntrackZone `ct(zone=65520,nat)` -> EndpointDNAT
/// `ct(commit,zone=65520,nat(dst=E),exec(mark 0x10/0x10))` -> SNATMark
/// `ct(commit,zone=65520,exec(mark 0x20/0x20))` -> SNAT
/// `ct(commit,zone=65521,nat(src=G),exec(mark 0x20/0x20))`; the reply takes UnSNAT then
/// ConntrackZone.
#[test]
fn antrea_two_zone_chain() {
    let ct = ct();
    let mut stats = CtStats::default();
    let (c, v, e, g) = ("10.10.0.5", "10.96.0.10", "10.10.1.7", "10.10.0.1");
    let mut p = Packet::tcp(c, 40000, v, 80, SYN, 1000, 0, 0);

    assert_eq!(
        p.ct_stats(&ct, 0, CtAction::lookup(SNAT_ZONE).with_nat(), &mut stats),
        None
    );
    assert_eq!((p.state(), p.meta.zone), (st(&[NEW, TRK]), SNAT_ZONE));
    assert_eq!(
        p.ct_stats(&ct, 0, CtAction::lookup(CT_ZONE).with_nat(), &mut stats),
        None
    );
    assert_eq!((p.state(), p.meta.zone), (st(&[NEW, TRK]), CT_ZONE));
    let dnat_act = CtAction::commit(CT_ZONE)
        .with_nat_range(dnat(e, 8080))
        .with_mark(0x10, 0x10);
    assert!(p.ct_stats(&ct, 0, dnat_act, &mut stats).is_some());
    assert_eq!(p.state(), st(&[NEW, TRK, DNAT]));
    assert_eq!(p.meta.mark, 0x10);
    assert_eq!(
        p.tuple(),
        Tuple::ports(ip(c), ip(e), proto::TCP, 40000, 8080)
    );
    // SNATMark: same zone, packet already translated: found through the reverse of its new tuple.
    let lookups = stats.lookups;
    assert_eq!(
        p.ct_stats(
            &ct,
            0,
            CtAction::commit(CT_ZONE).with_mark(0x20, 0x20),
            &mut stats
        ),
        None
    );
    assert_eq!(stats.lookups, lookups + 1);
    assert_eq!(p.state(), st(&[NEW, TRK, DNAT]));
    assert_eq!(p.meta.mark, 0x30);
    assert_eq!(
        p.meta.orig,
        Some(Tuple::ports(ip(c), ip(v), proto::TCP, 40000, 80))
    );
    assert_eq!(ct.conn_count(), 1);
    // SNAT in the other zone.
    let snat_act = CtAction::commit(SNAT_ZONE)
        .with_nat_range(NatRange::src(ip(g)))
        .with_mark(0x20, 0x20);
    let rw = p.ct_stats(&ct, 0, snat_act, &mut stats);
    assert_eq!(rw.and_then(|r| r.src), Some(ip(g)));
    assert_eq!(p.state(), st(&[NEW, TRK, SNAT]));
    assert_eq!((p.meta.mark, p.meta.zone), (0x20, SNAT_ZONE));
    assert_eq!(
        p.tuple(),
        Tuple::ports(ip(g), ip(e), proto::TCP, 40000, 8080)
    );
    assert_eq!(ct.conn_count(), 2);

    // The reply: UnSNAT, then un-DNAT.
    let mut r = Packet::tcp(e, 8080, g, 40000, SYN | ACK, 5000, 1001, 0);
    assert!(r
        .ct(&ct, SEC, CtAction::lookup(SNAT_ZONE).with_nat())
        .is_some());
    assert_eq!(r.state(), st(&[EST, RPL, TRK, DNAT]));
    assert_eq!(
        r.tuple(),
        Tuple::ports(ip(e), ip(c), proto::TCP, 8080, 40000)
    );
    assert_eq!(r.meta.mark, 0x20);
    assert!(r
        .ct(&ct, SEC, CtAction::lookup(CT_ZONE).with_nat())
        .is_some());
    assert_eq!(r.state(), st(&[EST, RPL, TRK, SNAT]));
    assert_eq!(r.tuple(), Tuple::ports(ip(v), ip(c), proto::TCP, 80, 40000));
    assert_eq!(r.meta.mark, 0x30);

    // The client's ACK: established request through both zones.
    let mut a = Packet::tcp(c, 40000, v, 80, ACK, 1001, 5001, 0);
    a.ct(&ct, SEC, CtAction::lookup(SNAT_ZONE).with_nat());
    assert_eq!(a.state(), st(&[NEW, TRK]));
    a.ct(&ct, SEC, CtAction::lookup(CT_ZONE).with_nat());
    assert_eq!(a.state(), st(&[EST, TRK, DNAT]));
    a.ct(&ct, SEC, CtAction::lookup(SNAT_ZONE).with_nat());
    assert_eq!(a.state(), st(&[EST, TRK, SNAT]));
    assert_eq!(
        a.tuple(),
        Tuple::ports(ip(g), ip(e), proto::TCP, 40000, 8080)
    );

    let mut lines: Vec<String> = ct.dump(None, SEC).iter().map(|e| e.to_string()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "tcp,orig=(src=10.10.0.5,dst=10.10.1.7,sport=40000,dport=8080),reply=(src=10.10.1.7,dst=10.10.0.1,sport=8080,dport=40000),zone=65521,mark=32,protoinfo=(state=ESTABLISHED)",
            "tcp,orig=(src=10.10.0.5,dst=10.96.0.10,sport=40000,dport=80),reply=(src=10.10.1.7,dst=10.10.0.5,sport=8080,dport=40000),zone=65520,mark=48,protoinfo=(state=ESTABLISHED)",
        ]
    );
}

#[test]
fn persistent_keeps_a_client_on_one_address_and_random_stays_in_range() {
    let ct = ct();
    let Ok(base) = NatRange::new(
        NatKind::Src,
        Some((ip("192.168.1.1"), ip("192.168.1.8"))),
        Some((30000, 30999)),
    ) else {
        panic!("range")
    };
    // persistent: the address depends on the client address only.
    let act = CtAction::commit(SNAT_ZONE).with_nat_range(base.with_persistent());
    let mut addrs = std::collections::HashSet::new();
    for port in 0..20u16 {
        let mut p = Packet::udp("10.0.0.7", 10_000 + port, "10.20.0.9", 53 + port);
        p.ct(&ct, 0, act);
        assert!(p.state().contains(SNAT));
        addrs.insert(p.tuple().src);
    }
    assert_eq!(addrs.len(), 1);
    // Without it, connections of one client spread over the range.
    let act = CtAction::commit(SNAT_ZONE).with_nat_range(base);
    let mut addrs = std::collections::HashSet::new();
    for port in 0..20u16 {
        let mut p = Packet::udp("10.0.0.8", 10_000 + port, "10.20.0.9", 53 + port);
        p.ct(&ct, 0, act);
        addrs.insert(p.tuple().src);
    }
    assert!(addrs.len() > 1);
    // random: a different start, same guarantees.
    let act = CtAction::commit(SNAT_ZONE).with_nat_range(base.with_random());
    let mut seen = std::collections::HashSet::new();
    for port in 0..200u16 {
        let mut p = Packet::udp("10.0.0.9", 10_000 + port, "10.20.0.9", 53);
        p.ct(&ct, 0, act);
        let t = p.tuple();
        assert!((30000..=30999).contains(&t.src_port));
        assert!(seen.insert((t.src, t.src_port)));
    }
}

#[test]
fn icmpv6_echo_is_not_port_translated() {
    // As in OVS, ICMPv6 identifiers are not translated: two clients pinging the same host with
    // the same identifier through one SNAT address collide, and the second is a counted failure.
    let ct = ct();
    let act = CtAction::commit(65511).with_nat_range(NatRange::src(ip("fd00:ffff::1")));
    let mut a = Packet::icmp("fd00::1", "2001:db8::8", 128, 5);
    a.ct(&ct, 0, act);
    assert_eq!((a.tuple().src, a.tuple().icmp_id), (ip("fd00:ffff::1"), 5));
    let mut b = Packet::icmp("fd00::2", "2001:db8::8", 128, 5);
    assert_eq!(b.ct(&ct, 0, act), None);
    assert_eq!(b.state(), st(&[NEW, TRK]));
    assert_eq!(ct.counters().nat_exhausted, 1);
    let mut c = Packet::icmp("fd00::2", "2001:db8::8", 128, 6);
    c.ct(&ct, 0, act);
    assert_eq!(c.state(), st(&[NEW, TRK, SNAT]));
}
