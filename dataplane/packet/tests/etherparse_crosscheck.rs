//! Property test: for random Ethernet / VLAN / IPv4 / IPv6 / TCP / UDP / ICMP packets built by
//! `etherparse`, our extraction agrees with what etherparse parses back (addresses, ports,
//! protocol, TOS, TTL, flow label, VLAN, TCP flags, ICMP type/code) and with the values the
//! packet was built from (fragment bits).

#![allow(clippy::unwrap_used)]

use etherparse::{
    IpHeaders, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv6FlowLabel, Ipv6Header, LinkHeader,
    NetHeaders, PacketBuilder, PacketHeaders, SingleVlanHeader, TcpHeader, TransportHeader,
    VlanHeader, VlanId, VlanPcp,
};
use proptest::prelude::*;
use xvs_packet::key::layout;
use xvs_packet::{extract, FlowKey};

#[derive(Debug, Clone)]
struct Tag {
    pcp: u8,
    dei: bool,
    vid: u16,
}

#[derive(Debug, Clone)]
struct Spec {
    src: [u8; 6],
    dst: [u8; 6],
    tags: Vec<Tag>,
    v6: bool,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    ttl: u8,
    dscp: u8,
    ecn: u8,
    label: u32,
    mf: bool,
    frag_off: u16,
    l4: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u16,
    payload: Vec<u8>,
}

fn tag() -> impl Strategy<Value = Tag> {
    (0u8..8, any::<bool>(), 0u16..4096).prop_map(|(pcp, dei, vid)| Tag { pcp, dei, vid })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            prop::collection::vec(tag(), 0..=2),
        ),
        (
            any::<bool>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
        ),
        (any::<u8>(), 0u8..64, 0u8..4, 0u32..(1 << 20)),
        (
            prop::bool::weighted(0.1),
            prop_oneof![4 => Just(0u16), 1 => 1u16..8192],
        ),
        (
            0u8..3,
            any::<u16>(),
            any::<u16>(),
            0u16..0x200,
            prop::collection::vec(any::<u8>(), 0..40),
        ),
    )
        .prop_map(|(l2, ip, tos, frag, l4)| Spec {
            src: l2.0,
            dst: l2.1,
            tags: l2.2,
            v6: ip.0,
            src4: ip.1,
            dst4: ip.2,
            src6: ip.3,
            dst6: ip.4,
            ttl: tos.0,
            dscp: tos.1,
            ecn: tos.2,
            label: tos.3,
            mf: frag.0,
            frag_off: frag.1,
            l4: l4.0,
            sport: l4.1,
            dport: l4.2,
            tcp_flags: l4.3,
            payload: l4.4,
        })
}

fn single(t: &Tag) -> SingleVlanHeader {
    SingleVlanHeader {
        pcp: VlanPcp::try_new(t.pcp).unwrap(),
        drop_eligible_indicator: t.dei,
        vlan_id: VlanId::try_new(t.vid).unwrap(),
        ether_type: etherparse::EtherType(0),
    }
}

fn build(s: &Spec) -> Vec<u8> {
    let ip = if s.v6 {
        IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: (s.dscp << 2) | s.ecn,
                flow_label: Ipv6FlowLabel::try_new(s.label).unwrap(),
                payload_length: 0,
                next_header: IpNumber::UDP,
                hop_limit: s.ttl,
                source: s.src6,
                destination: s.dst6,
            },
            Default::default(),
        )
    } else {
        let mut h = Ipv4Header::new(0, s.ttl, IpNumber::UDP, s.src4, s.dst4).unwrap();
        h.dscp = Ipv4Dscp::try_new(s.dscp).unwrap();
        h.ecn = Ipv4Ecn::try_new(s.ecn).unwrap();
        h.more_fragments = s.mf;
        h.fragment_offset = etherparse::IpFragOffset::try_new(s.frag_off).unwrap();
        IpHeaders::Ipv4(h, Default::default())
    };
    let eth = PacketBuilder::ethernet2(s.src, s.dst);
    let step = match s.tags.as_slice() {
        [] => eth.ip(ip),
        [t] => eth.vlan(VlanHeader::Single(single(t))).ip(ip),
        [o, i, ..] => eth
            .vlan(VlanHeader::Double(etherparse::DoubleVlanHeader {
                outer: single(o),
                inner: single(i),
            }))
            .ip(ip),
    };
    let mut out = Vec::new();
    match s.l4 {
        0 => step
            .udp(s.sport, s.dport)
            .write(&mut out, &s.payload)
            .unwrap(),
        1 => {
            let mut t = TcpHeader::new(s.sport, s.dport, 1, 1000);
            let f = s.tcp_flags;
            t.fin = f & 0x001 != 0;
            t.syn = f & 0x002 != 0;
            t.rst = f & 0x004 != 0;
            t.psh = f & 0x008 != 0;
            t.ack = f & 0x010 != 0;
            t.urg = f & 0x020 != 0;
            t.ece = f & 0x040 != 0;
            t.cwr = f & 0x080 != 0;
            t.ns = f & 0x100 != 0;
            step.tcp_header(t).write(&mut out, &s.payload).unwrap()
        }
        _ if s.v6 => step
            .icmpv6_echo_request(s.sport, s.dport)
            .write(&mut out, &s.payload)
            .unwrap(),
        _ => step
            .icmpv4_echo_request(s.sport, s.dport)
            .write(&mut out, &s.payload)
            .unwrap(),
    }
    out
}

fn mac(m: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&m);
    u64::from_be_bytes(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn extraction_agrees_with_etherparse(s in spec()) {
        let frame = build(&s);
        let mut k = FlowKey::ZERO;
        let info = extract(&frame, 9, &mut k);
        prop_assert!(info.is_ok(), "{:?}", info);
        let h = PacketHeaders::from_ethernet_slice(&frame).unwrap();

        prop_assert_eq!(k.get(layout::IN_PORT), 9);
        let Some(LinkHeader::Ethernet2(eth)) = &h.link else { panic!("no ethernet") };
        prop_assert_eq!(k.get(layout::ETH_SRC), mac(eth.source));
        prop_assert_eq!(k.get(layout::ETH_DST), mac(eth.destination));

        let outer = match &h.vlan {
            None => None,
            Some(VlanHeader::Single(v)) => Some(v.clone()),
            Some(VlanHeader::Double(d)) => Some(d.outer.clone()),
        };
        let want_tci = outer.map_or(0, |v| {
            (u64::from(v.pcp.value()) << 13)
                | (u64::from(v.drop_eligible_indicator) << 12)
                | u64::from(v.vlan_id.value())
                | 0x1000
        });
        prop_assert_eq!(k.get(layout::VLAN_TCI), want_tci);

        let later = !s.v6 && s.frag_off != 0;
        match h.net.as_ref().unwrap() {
            NetHeaders::Ipv4(ip, _) => {
                prop_assert_eq!(k.get(layout::ETH_TYPE), 0x0800);
                prop_assert_eq!(k.get(layout::NW_SRC), u64::from(u32::from_be_bytes(ip.source)));
                prop_assert_eq!(k.get(layout::NW_DST), u64::from(u32::from_be_bytes(ip.destination)));
                prop_assert_eq!(k.get(layout::NW_PROTO), u64::from(ip.protocol.0));
                prop_assert_eq!(k.get(layout::NW_TTL), u64::from(ip.time_to_live));
                prop_assert_eq!(
                    k.get(layout::NW_TOS),
                    u64::from((ip.dscp.value() << 2) | ip.ecn.value())
                );
                let frag = u64::from(s.mf || s.frag_off != 0) | (u64::from(s.frag_off != 0) << 1);
                prop_assert_eq!(k.get(layout::NW_FRAG), frag);
                prop_assert_eq!(info.l3_end as usize, info.l3_offset as usize + usize::from(ip.total_len));
            }
            NetHeaders::Ipv6(ip, _) => {
                prop_assert_eq!(k.get(layout::ETH_TYPE), 0x86dd);
                prop_assert_eq!(k.get128(layout::IPV6_SRC), u128::from_be_bytes(ip.source));
                prop_assert_eq!(k.get128(layout::IPV6_DST), u128::from_be_bytes(ip.destination));
                prop_assert_eq!(k.get(layout::NW_PROTO), u64::from(ip.next_header.0));
                prop_assert_eq!(k.get(layout::NW_TTL), u64::from(ip.hop_limit));
                prop_assert_eq!(k.get(layout::NW_TOS), u64::from(ip.traffic_class));
                prop_assert_eq!(k.get(layout::IPV6_LABEL), u64::from(ip.flow_label.value()));
                prop_assert_eq!(k.get(layout::NW_FRAG), 0);
            }
        }

        if later {
            prop_assert_eq!(info.l4_offset, 0);
            prop_assert_eq!(k.get(layout::TP_SRC), 0);
            prop_assert_eq!(k.get(layout::TP_DST), 0);
            prop_assert_eq!(k.get(layout::TCP_FLAGS), 0);
            return Ok(());
        }
        // etherparse leaves the transport of fragments unparsed; the built values are the oracle.
        let (tp_src, tp_dst, flags) = match &h.transport {
            Some(TransportHeader::Udp(u)) => (u.source_port, u.destination_port, 0),
            Some(TransportHeader::Tcp(t)) => {
                let b = t.to_bytes();
                (t.source_port, t.destination_port, u16::from_be_bytes([b[12], b[13]]) & 0xfff)
            }
            Some(TransportHeader::Icmpv4(i)) => {
                let b = i.to_bytes();
                (u16::from(b[0]), u16::from(b[1]), 0)
            }
            Some(TransportHeader::Icmpv6(i)) => {
                let b = i.to_bytes();
                (u16::from(b[0]), u16::from(b[1]), 0)
            }
            None => match s.l4 {
                0 => (s.sport, s.dport, 0),
                1 => (s.sport, s.dport, s.tcp_flags),
                _ if s.v6 => (128, 0, 0),
                _ => (8, 0, 0),
            },
        };
        prop_assert_eq!(k.get(layout::TP_SRC), u64::from(tp_src));
        prop_assert_eq!(k.get(layout::TP_DST), u64::from(tp_dst));
        prop_assert_eq!(k.get(layout::TCP_FLAGS), u64::from(flags));
        let l4 = info.l4_offset as usize;
        prop_assert!(l4 > 0 && l4 <= frame.len());
        if s.l4 < 2 {
            prop_assert_eq!([frame[l4], frame[l4 + 1]], tp_src.to_be_bytes());
        } else {
            prop_assert_eq!(u16::from(frame[l4]), tp_src);
        }
    }
}
