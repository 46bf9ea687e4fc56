//! Extraction and views checked against packets built by scapy (see `fixtures/gen.py`).
//!
//! `fixtures/expected.txt` lists, for each `NAME.bin`, every flow-key field scapy says the
//! packet sets; all other fields must be zero. Offsets and the status are checked too.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use xvs_packet::key::{layout, FlowKey, KeyField, KeyField128};
use xvs_packet::wire::{
    ethernet, geneve, icmpv4, icmpv6, igmp, ip_proto, ipv4, ipv6, tcp, udp, vlan, vxlan,
};
use xvs_packet::{extract, ExtractInfo, Layer, Status};

enum F {
    N(KeyField),
    W(KeyField128),
}

fn field(name: &str) -> Option<F> {
    use layout::*;
    Some(match name {
        "eth_src" => F::N(ETH_SRC),
        "eth_dst" => F::N(ETH_DST),
        "eth_type" => F::N(ETH_TYPE),
        "vlan_tci" => F::N(VLAN_TCI),
        "nw_src" => F::N(NW_SRC),
        "nw_dst" => F::N(NW_DST),
        "nw_proto" => F::N(NW_PROTO),
        "nw_tos" => F::N(NW_TOS),
        "nw_ttl" => F::N(NW_TTL),
        "nw_frag" => F::N(NW_FRAG),
        "ipv6_label" => F::N(IPV6_LABEL),
        "tp_src" => F::N(TP_SRC),
        "tp_dst" => F::N(TP_DST),
        "tcp_flags" => F::N(TCP_FLAGS),
        "arp_sha" => F::N(ARP_SHA),
        "arp_tha" => F::N(ARP_THA),
        "igmp_group" => F::N(IGMP_GROUP),
        "ipv6_src" => F::W(IPV6_SRC),
        "ipv6_dst" => F::W(IPV6_DST),
        "nd_target" => F::W(ND_TARGET),
        _ => return None,
    })
}

fn layer(name: &str) -> Layer {
    match name {
        "Ethernet" => Layer::Ethernet,
        "Vlan" => Layer::Vlan,
        "Arp" => Layer::Arp,
        "Ipv4" => Layer::Ipv4,
        "Ipv6" => Layer::Ipv6,
        "Ipv6Ext" => Layer::Ipv6Ext,
        "L4" => Layer::L4,
        "Nd" => Layer::Nd,
        other => panic!("unknown layer {other}"),
    }
}

fn parse_u128(v: &str) -> u128 {
    u128::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex value")
}

struct Fixture {
    name: String,
    bytes: Vec<u8>,
    key: FlowKey,
    info: ExtractInfo,
}

fn fixtures() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut it = line.split_whitespace();
        let name = it.next().expect("name").to_string();
        let bytes = std::fs::read(dir.join(format!("{name}.bin"))).expect("fixture bytes");
        let mut key = FlowKey::ZERO;
        let mut info = ExtractInfo::default();
        for kv in it {
            let (k, v) = kv.split_once('=').expect("k=v");
            match (k, field(k)) {
                (_, Some(F::N(f))) => key.set(f, parse_u128(v) as u64),
                (_, Some(F::W(f))) => key.set128(f, parse_u128(v)),
                ("l3", _) => info.l3_offset = parse_u128(v) as u32,
                ("l4", _) => info.l4_offset = parse_u128(v) as u32,
                ("l3_end", _) => info.l3_end = parse_u128(v) as u32,
                ("status", _) => {
                    info.status = match v.split_once(':') {
                        None => Status::Ok,
                        Some(("truncated", l)) => Status::Truncated(layer(l)),
                        Some(("malformed", l)) => Status::Malformed(layer(l)),
                        _ => panic!("bad status {v}"),
                    }
                }
                _ => panic!("{name}: unknown key {k}"),
            }
        }
        out.push(Fixture {
            name,
            bytes,
            key,
            info,
        });
    }
    out
}

fn by_name() -> BTreeMap<String, Vec<u8>> {
    fixtures().into_iter().map(|f| (f.name, f.bytes)).collect()
}

#[test]
fn extraction_matches_scapy() {
    let all = fixtures();
    assert!(all.len() >= 45, "only {} fixtures", all.len());
    for f in &all {
        let mut k = FlowKey::ZERO;
        let info = extract(&f.bytes, 7, &mut k);
        let mut want = f.key;
        want.set(layout::IN_PORT, 7);
        assert_eq!(k, want, "{}: key", f.name);
        assert_eq!(info, f.info, "{}: info", f.name);
    }
}

#[test]
fn extraction_leaves_metadata_alone() {
    for f in fixtures() {
        let mut k = FlowKey::ZERO;
        k.set_reg(3, 0xdead_beef);
        k.set(layout::TUN_ID, 99);
        k.set(layout::CT_STATE, 0x21);
        k.set(layout::RECIRC_ID, 5);
        extract(&f.bytes, 1, &mut k);
        assert_eq!(k.reg(3), 0xdead_beef, "{}", f.name);
        assert_eq!(k.get(layout::TUN_ID), 99, "{}", f.name);
        assert_eq!(k.get(layout::CT_STATE), 0x21, "{}", f.name);
        assert_eq!(k.get(layout::RECIRC_ID), 5, "{}", f.name);
    }
}

/// Packet words are written whole: a key reused without reset gives the same packet fields.
#[test]
fn extraction_overwrites_packet_words() {
    for f in fixtures() {
        let mut dirty = FlowKey::ALL_ONES;
        let mut clean = FlowKey::ZERO;
        let a = extract(&f.bytes, 4, &mut dirty);
        let b = extract(&f.bytes, 4, &mut clean);
        assert_eq!(a, b, "{}", f.name);
        assert_eq!(dirty.words[26..40], clean.words[26..40], "{}", f.name);
        // The Geneve option words after them are metadata: left alone.
        assert_eq!(dirty.get(layout::tun_metadata(0)), u64::MAX, "{}", f.name);
        assert_eq!(dirty.get(layout::IN_PORT), 4, "{}", f.name);
        assert_eq!(dirty.get(layout::RECIRC_ID), 0xffff_ffff, "{}", f.name);
    }
}

/// Every prefix of every fixture extracts without panicking and never reports offsets beyond
/// the prefix.
#[test]
fn every_prefix_is_safe() {
    for f in fixtures() {
        for n in 0..=f.bytes.len() {
            let mut k = FlowKey::ZERO;
            let info = extract(&f.bytes[..n], 1, &mut k);
            assert!(info.l3_offset as usize <= n, "{} prefix {n}", f.name);
            assert!(info.l4_offset as usize <= n, "{} prefix {n}", f.name);
            assert!(info.l3_end as usize <= n, "{} prefix {n}", f.name);
        }
    }
}

fn l3(frame: &[u8]) -> &[u8] {
    let mut k = FlowKey::ZERO;
    let info = extract(frame, 0, &mut k);
    &frame[info.l3_offset as usize..]
}

#[test]
fn checksums_agree_with_scapy() {
    let fx = by_name();
    for name in [
        "udp4",
        "tcp4_options",
        "icmp4_echo",
        "vlan_udp4",
        "qinq_tcp4",
        "sctp4",
        "igmp_v2_report",
        "igmp_v3_report",
    ] {
        let ip = ipv4::Packet::new_checked(l3(&fx[name])).expect(name);
        assert!(ip.verify_checksum(), "{name}: ipv4 header");
        let ok = match ip.protocol() {
            ip_proto::UDP => udp::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum_v4(ip.src(), ip.dst()),
            ip_proto::TCP => tcp::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum_v4(ip.src(), ip.dst()),
            ip_proto::ICMP => icmpv4::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum(),
            ip_proto::IGMP => igmp::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum(),
            _ => true,
        };
        assert!(ok, "{name}: transport checksum");
        // Recomputing gives scapy's bytes back.
        let mut copy = ip.as_bytes().to_vec();
        let mut p = ipv4::Packet::new_checked(&mut copy[..]).expect(name);
        p.fill_checksum();
        assert_eq!(&copy[..], ip.as_bytes(), "{name}: refill");
    }
    for name in ["udp6", "tcp6", "icmp6_echo", "nd_ns_sll", "nd_na_tll"] {
        let ip = ipv6::Packet::new_checked(l3(&fx[name])).expect(name);
        let (s, d) = (ip.src(), ip.dst());
        let ok = match ip.next_header() {
            ip_proto::UDP => udp::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum_v6(&s, &d),
            ip_proto::TCP => tcp::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum_v6(&s, &d),
            ip_proto::ICMPV6 => icmpv6::Packet::new_checked(ip.payload())
                .expect(name)
                .verify_checksum(&s, &d),
            _ => false,
        };
        assert!(ok, "{name}: transport checksum");
    }
}

#[test]
fn views_on_fixtures() {
    let fx = by_name();
    // IPv4 options and TCP options.
    let ip = ipv4::Packet::new_checked(l3(&fx["tcp4_options"])).unwrap();
    assert_eq!(ip.header_len(), 28);
    assert_eq!(ip.options()[0], 7); // record route
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(t.options_len(), 8);
    assert!(t.syn() && t.ack());
    assert_eq!((t.seq(), t.ack_number()), (7, 9));
    assert_eq!(t.payload(), b"xvs-fixture-payload");

    // VLAN and QinQ tags.
    let e = ethernet::Packet::new_checked(&fx["qinq_tcp4"][..]).unwrap();
    assert_eq!(e.ethertype(), 0x88a8);
    let outer = vlan::Packet::new_checked(e.payload()).unwrap();
    assert_eq!(
        (outer.pcp(), outer.vid(), outer.ethertype()),
        (3, 10, 0x8100)
    );
    let inner = vlan::Packet::new_checked(outer.payload()).unwrap();
    assert_eq!((inner.vid(), inner.ethertype()), (20, 0x0800));

    // Fragments.
    let ip = ipv4::Packet::new_checked(l3(&fx["ipv4_frag_later"])).unwrap();
    assert!(ip.is_later_fragment() && !ip.more_frags());
    assert_eq!(ip.frag_offset(), 800);
    let ip6 = ipv6::Packet::new_checked(l3(&fx["ipv6_frag_first"])).unwrap();
    let w = ip6.walk().unwrap();
    let f = w.fragment.unwrap();
    assert!(f.more && f.offset == 0 && f.ident == 77);
    let ip6 = ipv6::Packet::new_checked(l3(&fx["ipv6_ext_chain"])).unwrap();
    let w = ip6.walk().unwrap();
    assert_eq!(w.protocol, ip_proto::UDP);
    assert!(w.fragment.is_none());
    let u = udp::Packet::new_checked(&ip6.payload()[w.offset..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (11, 12));

    // IGMP versions.
    for (name, want) in [
        ("igmp_v1_query", igmp::Message::V1Query),
        ("igmp_v2_report", igmp::Message::V2Report),
        ("igmp_v2_leave", igmp::Message::V2Leave),
        ("igmp_v3_query", igmp::Message::V3Query),
        ("igmp_v3_report", igmp::Message::V3Report),
    ] {
        let ip = ipv4::Packet::new_checked(l3(&fx[name])).unwrap();
        let g = igmp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(g.message(), want, "{name}");
    }

    // Neighbour discovery.
    let ip6 = ipv6::Packet::new_checked(l3(&fx["nd_ns_sll"])).unwrap();
    let nd = icmpv6::Packet::new_checked(ip6.payload()).unwrap();
    assert!(nd.is_nd());
    assert_eq!(nd.source_ll_addr(), Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(nd.target_ll_addr(), None);
    let ip6 = ipv6::Packet::new_checked(l3(&fx["nd_na_tll"])).unwrap();
    let nd = icmpv6::Packet::new_checked(ip6.payload()).unwrap();
    assert_eq!(nd.target_ll_addr(), Some([2, 0, 0, 0, 0, 2]));
    assert_eq!(
        nd.data_word(),
        icmpv6::NA_FLAG_SOLICITED | icmpv6::NA_FLAG_OVERRIDE
    );
    let ip6 = ipv6::Packet::new_checked(l3(&fx["nd_zero_len_option"])).unwrap();
    assert!(icmpv6::Packet::new_checked(ip6.payload()).is_err());

    // VXLAN: the inner frame extracts like any other.
    let ip = ipv4::Packet::new_checked(l3(&fx["vxlan4"])).unwrap();
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(u.dst_port(), vxlan::UDP_PORT);
    let vx = vxlan::Packet::new_checked(u.payload()).unwrap();
    assert_eq!(vx.vni(), 0x12_3456);
    let mut k = FlowKey::ZERO;
    let info = extract(vx.payload(), 3, &mut k);
    assert!(info.is_ok());
    assert_eq!(k.get(layout::NW_SRC), 0xac10_0001);
    assert_eq!(k.get(layout::NW_PROTO), u64::from(ip_proto::ICMP));

    // Geneve with options.
    let ip = ipv4::Packet::new_checked(l3(&fx["geneve4"])).unwrap();
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(u.dst_port(), geneve::UDP_PORT);
    let g = geneve::Packet::new_checked(u.payload()).unwrap();
    assert_eq!(
        (g.vni(), g.protocol(), g.critical(), g.oam()),
        (0xab_cdef, 0x6558, true, false)
    );
    assert_eq!(g.options_len(), 12);
    let opts: Vec<_> = g.options().collect();
    assert_eq!(opts.len(), 2);
    assert_eq!(
        (opts[0].class, opts[0].kind, opts[0].data),
        (0x0104, 0x80, &[0u8, 0, 0, 7][..])
    );
    assert!(opts[0].is_critical());
    assert_eq!((opts[1].class, opts[1].data.len()), (0xffff, 0));
    let mut k = FlowKey::ZERO;
    extract(g.payload(), 3, &mut k);
    assert_eq!(k.get(layout::TP_DST), 2);
}
