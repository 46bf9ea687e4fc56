//! Route LPM, neighbour queueing/retries/expiry, MTU check and ICMP builders.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, Ipv6Addr};

use xvs_packet::build::{self, Macs};
use xvs_packet::checksum::checksum;
use xvs_packet::wire::{arp, icmpv6, ipv4, ipv6};
use xvs_tunnel::mtu::{
    exceeds_mtu, icmp4_frag_needed, icmp6_packet_too_big, inner_mtu, must_not_fragment,
};
use xvs_tunnel::neigh::{build_solicit, NeighDrop, NeighState};
use xvs_tunnel::{NeighConfig, NeighEvent, NeighTable, Resolution, Route, RouteTable, TableError};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn route(p: &str, len: u8, gw: Option<&str>, oif: u32, metric: u32) -> Route {
    Route {
        prefix: ip(p),
        prefix_len: len,
        gateway: gw.map(ip),
        oif,
        pref_src: None,
        metric,
    }
}

#[test]
fn route_longest_prefix_match() {
    let mut t = RouteTable::new();
    t.add(route("0.0.0.0", 0, Some("192.168.1.254"), 1, 0))
        .unwrap();
    t.add(route("192.168.1.0", 24, None, 1, 0)).unwrap();
    t.add(route("10.0.0.0", 8, Some("192.168.1.10"), 2, 100))
        .unwrap();
    t.add(route("10.1.0.0", 16, Some("192.168.1.11"), 3, 0))
        .unwrap();
    t.add(route("10.0.0.0", 8, Some("192.168.1.12"), 4, 50))
        .unwrap();
    t.add(Route {
        pref_src: Some(ip("192.168.1.5")),
        ..route("10.1.2.3", 32, None, 5, 0)
    })
    .unwrap();
    t.add(route("::", 0, Some("fe80::1"), 1, 0)).unwrap();
    t.add(route("fd00:10::", 32, Some("fd00::9"), 6, 0))
        .unwrap();
    t.add(route("fd00:10:1::", 48, None, 7, 0)).unwrap();
    assert_eq!(t.len(), 9);

    let h = t.lookup(ip("10.1.2.3")).unwrap();
    assert_eq!((h.ip, h.oif, h.direct), (ip("10.1.2.3"), 5, true));
    assert_eq!(h.pref_src, Some(ip("192.168.1.5")));
    assert_eq!(t.lookup(ip("10.1.9.9")).unwrap().oif, 3);
    // Equal prefixes: lowest metric.
    let h = t.lookup(ip("10.200.0.1")).unwrap();
    assert_eq!((h.ip, h.oif), (ip("192.168.1.12"), 4));
    assert_eq!(t.lookup(ip("192.168.1.77")).unwrap().ip, ip("192.168.1.77"));
    assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().ip, ip("192.168.1.254"));
    assert_eq!(t.lookup(ip("fd00:10:1::5")).unwrap().oif, 7);
    assert_eq!(t.lookup(ip("fd00:10:2::5")).unwrap().ip, ip("fd00::9"));
    assert_eq!(t.lookup(ip("2001:db8::1")).unwrap().ip, ip("fe80::1"));

    // Replace, remove, generation.
    let g = t.generation();
    t.add(route("10.1.0.0", 16, Some("192.168.1.99"), 9, 0))
        .unwrap();
    assert_eq!(t.len(), 9);
    assert_eq!(t.lookup(ip("10.1.9.9")).unwrap().oif, 9);
    assert!(t.remove(ip("10.1.0.0"), 16, 0));
    assert!(!t.remove(ip("10.1.0.0"), 16, 0));
    assert_eq!(t.lookup(ip("10.1.9.9")).unwrap().oif, 4);
    assert!(t.generation() > g);
    // Host bits ignored.
    t.add(route("172.16.5.5", 12, None, 11, 0)).unwrap();
    assert_eq!(t.lookup(ip("172.31.0.1")).unwrap().oif, 11);
    // Errors.
    assert_eq!(
        t.add(route("1.0.0.0", 33, None, 1, 0)),
        Err(TableError::BadPrefix)
    );
    assert_eq!(
        t.add(route("::", 129, None, 1, 0)),
        Err(TableError::BadPrefix)
    );
    assert_eq!(
        t.add(route("1.0.0.0", 8, Some("fe80::1"), 1, 0)),
        Err(TableError::FamilyMismatch)
    );
    t.clear();
    assert!(t.is_empty() && t.lookup(ip("8.8.8.8")).is_none());
}

fn cfg() -> NeighConfig {
    NeighConfig {
        max_entries: 2,
        queue_len: 3,
        max_requests: 3,
        retry_ms: 1000,
        reachable_ms: 60_000,
    }
}

#[test]
fn neighbour_miss_queues_then_releases() {
    let mut n: NeighTable<u32> = NeighTable::new(cfg());
    let gw = ip("192.168.1.1");
    assert_eq!(n.resolve(gw, 1, 10, 0), Resolution::Queued);
    assert_eq!(n.poll_event(), Some(NeighEvent::Solicit { ip: gw, oif: 1 }));
    assert_eq!(n.poll_event(), None);
    assert_eq!(n.resolve(gw, 1, 11, 5), Resolution::Queued);
    assert_eq!(n.resolve(gw, 1, 12, 5), Resolution::Queued);
    // Bounded queue.
    assert_eq!(
        n.resolve(gw, 1, 13, 5),
        Resolution::Dropped(13, NeighDrop::QueueFull)
    );
    assert_eq!(
        n.poll_event(),
        None,
        "one request per resolution, not per packet"
    );
    let mac = [2, 0, 0, 0, 0, 9];
    let released: Vec<u32> = n.learn(gw, mac, 1, 100).into_iter().collect();
    assert_eq!(released, vec![10, 11, 12]);
    assert_eq!(n.resolve(gw, 1, 14, 200), Resolution::Ready(mac, 14));
    assert_eq!(n.lookup(gw, 200), Some(mac));
    // Expiry: 60 s after learning.
    assert_eq!(n.poll_timeout(), Some(60_100));
    n.handle_timeout(60_099);
    assert_eq!(n.lookup(gw, 60_099), Some(mac));
    assert_eq!(n.lookup(gw, 60_100), None);
    n.handle_timeout(60_100);
    assert!(n.is_empty());
    // An expired-but-not-yet-swept entry restarts resolution.
    n.learn(gw, mac, 1, 0);
    assert_eq!(n.resolve(gw, 1, 15, 70_000), Resolution::Queued);
    assert!(matches!(n.state(gw), Some(NeighState::Incomplete { .. })));
    assert_eq!(n.poll_event(), Some(NeighEvent::Solicit { ip: gw, oif: 1 }));
}

#[test]
fn neighbour_retries_then_fails_and_table_bound() {
    let mut n: NeighTable<&str> = NeighTable::new(cfg());
    let a = ip("10.0.0.1");
    assert_eq!(n.resolve(a, 2, "p1", 0), Resolution::Queued);
    assert_eq!(n.resolve(a, 2, "p2", 0), Resolution::Queued);
    let mut solicits = 1;
    let _ = n.poll_event();
    assert_eq!(n.poll_timeout(), Some(1000));
    n.handle_timeout(999);
    assert_eq!(n.poll_event(), None);
    for t in [1000, 2000] {
        n.handle_timeout(t);
        assert_eq!(n.poll_event(), Some(NeighEvent::Solicit { ip: a, oif: 2 }));
        solicits += 1;
    }
    assert_eq!(solicits, 3);
    n.handle_timeout(3000);
    assert_eq!(
        n.poll_event(),
        Some(NeighEvent::Failed {
            ip: a,
            handle: "p1"
        })
    );
    assert_eq!(
        n.poll_event(),
        Some(NeighEvent::Failed {
            ip: a,
            handle: "p2"
        })
    );
    assert_eq!(n.poll_event(), None);
    assert!(n.is_empty());
    // Table bound: two entries max.
    assert_eq!(n.resolve(ip("10.0.0.2"), 1, "a", 0), Resolution::Queued);
    assert_eq!(n.resolve(ip("fd00::2"), 1, "b", 0), Resolution::Queued);
    assert_eq!(
        n.resolve(ip("10.0.0.3"), 1, "c", 0),
        Resolution::Dropped("c", NeighDrop::TableFull)
    );
    // Removing an incomplete entry fails its packets.
    while n.poll_event().is_some() {}
    n.remove(ip("fd00::2"));
    assert_eq!(
        n.poll_event(),
        Some(NeighEvent::Failed {
            ip: ip("fd00::2"),
            handle: "b"
        })
    );
}

#[test]
fn solicit_bytes() {
    let mac = [2, 0, 0, 0, 0, 1];
    let mut b = [0u8; 128];
    let n = build_solicit(&mut b, mac, ip("192.168.1.5"), ip("192.168.1.1")).unwrap();
    let p = arp::Packet::new_checked(&b[14..n]).unwrap();
    assert_eq!(
        (p.oper(), p.tpa(), p.spa()),
        (arp::OP_REQUEST, [192, 168, 1, 1], [192, 168, 1, 5])
    );
    assert_eq!(&b[..6], &[0xff; 6]);
    let n = build_solicit(&mut b, mac, ip("fd00::5"), ip("fd00::1")).unwrap();
    let p6 = ipv6::Packet::new_checked(&b[14..n]).unwrap();
    let ic = icmpv6::Packet::new_checked(p6.payload()).unwrap();
    assert_eq!(ic.msg_type(), icmpv6::TYPE_NEIGHBOR_SOLICIT);
    assert_eq!(ic.nd_target(), ip6("fd00::1"));
    assert!(ic.verify_checksum(&p6.src(), &p6.dst()));
    assert_eq!(
        build_solicit(&mut b, mac, ip("fd00::5"), ip("1.1.1.1")),
        Err(TableError::FamilyMismatch)
    );
    assert_eq!(
        build_solicit(&mut b[..20], mac, ip("1.1.1.5"), ip("1.1.1.1")),
        Err(TableError::Truncated)
    );
}

fn ip6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

const M: Macs = Macs {
    src: [2, 0, 0, 0, 0, 1],
    dst: [2, 0, 0, 0, 0, 2],
};

#[test]
fn mtu_check_and_icmp4_frag_needed() {
    // Geneve over IPv4 without options: 20 + 8 + 8 = 36 bytes of IP overhead.
    assert_eq!(inner_mtu(1500, 36), 1450);
    assert!(!exceeds_mtu(1464, 36, 1500));
    assert!(exceeds_mtu(1465, 36, 1500));
    let mut inner = vec![0u8; 1600];
    let n = build::udp4(
        &mut inner,
        M,
        [10, 0, 0, 5],
        [10, 0, 1, 7],
        1,
        2,
        &[0xab; 1400],
    )
    .unwrap();
    let inner = &inner[..n];
    assert!(must_not_fragment(inner));
    let mut b = [0u8; 1600];
    let l = icmp4_frag_needed(&mut b, inner, [10, 0, 0, 1], 1450).unwrap();
    assert_eq!(l, 14 + 576);
    assert_eq!((&b[0..6], &b[6..12]), (&M.src[..], &M.dst[..]));
    let p = ipv4::Packet::new_checked(&b[14..l]).unwrap();
    assert!(p.verify_checksum());
    assert_eq!(
        (p.src(), p.dst(), p.protocol()),
        ([10, 0, 0, 1], [10, 0, 0, 5], 1)
    );
    let ic = p.payload();
    assert_eq!(
        (ic[0], ic[1], u16::from_be_bytes([ic[6], ic[7]])),
        (3, 4, 1450)
    );
    assert_eq!(checksum(ic), 0);
    assert_eq!(&ic[8..28], &inner[14..34], "quotes the original header");
    // Small packet: quoted whole.
    let mut small = [0u8; 128];
    let n = build::udp4(&mut small, M, [10, 0, 0, 5], [10, 0, 1, 7], 1, 2, b"x").unwrap();
    let l = icmp4_frag_needed(&mut b, &small[..n], [10, 0, 0, 1], 1400).unwrap();
    assert_eq!(l, 14 + 28 + n - 14);
    // Never answer an ICMP error, IPv6, or garbage.
    let e = b[..l].to_vec();
    assert_eq!(
        icmp4_frag_needed(&mut b, &e, [1; 4], 1),
        Err(TableError::NotAnswerable)
    );
    assert_eq!(
        icmp4_frag_needed(&mut b, &[0; 20], [1; 4], 1),
        Err(TableError::NotAnswerable)
    );
    assert_eq!(
        icmp4_frag_needed(&mut b[..30], &small[..n], [1; 4], 1),
        Err(TableError::Truncated)
    );
}

#[test]
fn icmp6_packet_too_big_builder() {
    let mut inner = vec![0u8; 2000];
    let (s, d) = (ip6("fd00:10::5"), ip6("fd00:10:1::7"));
    let n = build::udp6(&mut inner, M, s, d, 1, 2, &[0xcd; 1500]).unwrap();
    let inner = &inner[..n];
    assert!(must_not_fragment(inner));
    let gw = ip6("fd00:10::1");
    let mut b = [0u8; 2000];
    let l = icmp6_packet_too_big(&mut b, inner, gw, 1430).unwrap();
    assert_eq!(l, 14 + 1280);
    let p = ipv6::Packet::new_checked(&b[14..l]).unwrap();
    assert_eq!((p.src(), p.dst()), (gw, s));
    let ic = icmpv6::Packet::new_checked(p.payload()).unwrap();
    assert!(ic.verify_checksum(&gw, &s));
    assert_eq!((ic.msg_type(), ic.code(), ic.data_word()), (2, 0, 1430));
    assert_eq!(&p.payload()[8..48], &inner[14..54]);
    let e = b[..l].to_vec();
    assert_eq!(
        icmp6_packet_too_big(&mut b, &e, gw, 1),
        Err(TableError::NotAnswerable)
    );
    let mut v4 = [0u8; 128];
    let n4 = build::udp4(&mut v4, M, [1; 4], [2; 4], 1, 2, b"").unwrap();
    assert_eq!(
        icmp6_packet_too_big(&mut b, &v4[..n4], gw, 1),
        Err(TableError::NotAnswerable)
    );
}

#[test]
fn snoop_arp_and_na() {
    use xvs_tunnel::neigh::snoop;
    let mut b = [0u8; 128];
    let mac = [2, 0, 0, 0, 0, 9];
    let n = build::arp_reply(&mut b, mac, [192, 168, 1, 1], M.src, [192, 168, 1, 5]).unwrap();
    assert_eq!(snoop(&b[..n]), Some((ip("192.168.1.1"), mac)));
    let n = build::arp_request(&mut b, mac, [192, 168, 1, 1], [192, 168, 1, 5]).unwrap();
    assert_eq!(snoop(&b[..n]), Some((ip("192.168.1.1"), mac)));
    let n = build::arp_request(&mut b, mac, [0; 4], [192, 168, 1, 5]).unwrap();
    assert_eq!(snoop(&b[..n]), None, "ARP probe teaches nothing");
    let t = ip6("fd00::1");
    let macs = Macs {
        src: mac,
        dst: M.src,
    };
    let n = build::nd_na(&mut b, macs, t, ip6("fd00::5"), t).unwrap();
    assert_eq!(snoop(&b[..n]), Some((ip("fd00::1"), mac)));
    b[60] ^= 1;
    assert_eq!(snoop(&b[..n]), None, "bad checksum");
    let n = build::nd_ns(&mut b, mac, ip6("fd00::5"), t).unwrap();
    assert_eq!(snoop(&b[..n]), None);
    for l in 0..n {
        let _ = snoop(&b[..l]);
    }
    // Learning from a snooped reply releases the queue.
    let mut nt: NeighTable<u8> = NeighTable::new(cfg());
    assert_eq!(nt.resolve(ip("fd00::1"), 1, 1, 0), Resolution::Queued);
    let (a, m) = snoop(&{
        let mut c = [0u8; 128];
        let n = build::nd_na(&mut c, macs, t, ip6("fd00::5"), t).unwrap();
        c[..n].to_vec()
    })
    .unwrap();
    assert_eq!(
        nt.learn(a, m, 1, 5).into_iter().collect::<Vec<_>>(),
        vec![1]
    );
}
