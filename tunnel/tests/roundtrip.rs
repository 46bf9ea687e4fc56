//! Encap -> decap round trips, checked against xvs-packet's builders and views.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvs_packet::build::{self, Macs, Outer4};
use xvs_packet::key::{layout, FlowKey};
use xvs_packet::wire::{ipv4, ipv6, udp};
use xvs_tunnel::encap::source_port;
use xvs_tunnel::{
    decap, endpoints, inner_flow_hash, DecapConfig, DecapError, EncapError, EncapMeta, Key,
    OuterL2, Remote, Template, TunnelConfig, TunnelKind,
};

const M: Macs = Macs {
    src: [2, 0, 0, 0, 0, 1],
    dst: [2, 0, 0, 0, 0, 2],
};
const L2: OuterL2 = OuterL2 {
    src: [2, 0, 0, 0, 1, 1],
    dst: [2, 0, 0, 0, 1, 2],
};
const OPTS: [u8; 8] = [0x01, 0x04, 0x80, 0x01, 0, 0, 0, 7];

fn inner(sport: u16) -> ([u8; 128], usize) {
    let mut b = [0u8; 128];
    let n = build::udp4(
        &mut b,
        M,
        [10, 0, 0, 1],
        [10, 0, 1, 2],
        sport,
        53,
        b"payload",
    )
    .unwrap();
    (b, n)
}

fn v4(a: [u8; 4]) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::from(a)))
}

fn encap_v4(kind: TunnelKind, opts: &[u8], csum: bool) -> (Vec<u8>, Vec<u8>, u16) {
    let (ib, n) = inner(1111);
    let cfg = TunnelConfig {
        csum,
        ..TunnelConfig::flow_based(kind)
    };
    let meta = EncapMeta {
        tun_id: 0x12_3456,
        tun_dst: v4([192, 168, 0, 2]),
        tun_src: None,
        geneve_options: opts,
        oam: false,
    };
    let ep = endpoints(&cfg, &meta, v4([192, 168, 0, 1])).unwrap();
    let t = Template::new(&cfg, &ep, &meta, L2).unwrap();
    let mut buf = vec![0u8; 256 + n];
    buf[256..].copy_from_slice(&ib[..n]);
    let h = inner_flow_hash(&ib[..n]);
    let (s, l) = t.apply(&mut buf, 256, n, h, 0).unwrap();
    let sport = source_port(h, 32768, 61000 - 32768);
    (buf[s..s + l].to_vec(), ib[..n].to_vec(), sport)
}

#[test]
fn v4_encap_equals_packet_builders() {
    for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
        let opts: &[u8] = if kind == TunnelKind::Geneve {
            &OPTS
        } else {
            &[]
        };
        let (got, inner, sport) = encap_v4(kind, opts, true);
        let outer = Outer4 {
            macs: Macs {
                src: L2.src,
                dst: L2.dst,
            },
            src_ip: [192, 168, 0, 1],
            dst_ip: [192, 168, 0, 2],
            sport,
        };
        let mut want = vec![0u8; 512];
        let n = match kind {
            TunnelKind::Vxlan => build::vxlan4(&mut want, outer, 0x12_3456, &inner).unwrap(),
            TunnelKind::Geneve => {
                build::geneve4(&mut want, outer, 0x12_3456, opts, &inner).unwrap()
            }
        };
        let mut want = want[..n].to_vec();
        if kind == TunnelKind::Geneve {
            // The builder never sets the C bit; OVS and we set it for a critical option.
            want[43] |= 0x40;
            let ip = ipv4::Packet::new_checked(&want[14..]).unwrap();
            let (s, d) = (ip.src(), ip.dst());
            let mut u = udp::Packet::new_unchecked(&mut want[34..]);
            u.set_checksum(0);
            u.fill_checksum_v4(s, d);
        }
        assert_eq!(got, want, "{kind:?}");
        // Decap gives the inner frame back.
        let dc = DecapConfig::from_config(&TunnelConfig::flow_based(kind));
        let mut key = FlowKey::ZERO;
        let d = decap(&dc, &got, &mut key).unwrap();
        assert_eq!(
            &got[d.inner_offset..d.inner_offset + d.inner_len],
            &inner[..]
        );
        assert_eq!(key.get(layout::TUN_ID), 0x12_3456);
        assert_eq!(key.get(layout::TUN_DST), 0xc0a8_0002);
        assert_eq!(key.get(layout::TUN_TP_SRC), u64::from(sport));
    }
}

#[test]
fn v6_round_trip_with_views() {
    for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
        let opts: &[u8] = if kind == TunnelKind::Geneve {
            &OPTS
        } else {
            &[]
        };
        let (ib, n) = inner(2222);
        let cfg = TunnelConfig::flow_based(kind);
        let src = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        let meta = EncapMeta {
            tun_id: 99,
            tun_dst: Some(dst.into()),
            tun_src: Some(src.into()),
            geneve_options: opts,
            oam: kind == TunnelKind::Geneve,
        };
        let ep = endpoints(&cfg, &meta, None).unwrap();
        let t = Template::new(&cfg, &ep, &meta, L2).unwrap();
        assert!(t.is_ipv6());
        let mut buf = vec![0u8; 200 + n];
        buf[200..].copy_from_slice(&ib[..n]);
        let (s, l) = t.apply(&mut buf, 200, n, 0xdead_beef, 0).unwrap();
        let f = &buf[s..s + l];
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (src.octets(), dst.octets()));
        assert_eq!(usize::from(ip.payload_len()), l - 54);
        let u = udp::Packet::new_checked(&f[54..]).unwrap();
        assert!(u.verify_checksum_v6(&ip.src(), &ip.dst()));
        assert_eq!(u.src_port(), source_port(0xdead_beef, 32768, 61000 - 32768));
        let dc = DecapConfig::from_config(&cfg);
        let mut key = FlowKey::ZERO;
        let d = decap(&dc, f, &mut key).unwrap();
        assert_eq!(&f[d.inner_offset..d.inner_offset + d.inner_len], &ib[..n]);
        assert_eq!(key.get128(layout::TUN_IPV6_DST), u128::from(dst));
        assert_eq!(key.get(layout::TUN_ID), 99);
        assert_eq!(d.options_bytes(), opts);
    }
}

#[test]
fn ipv4_checksum_and_lengths_for_many_sizes_and_ids() {
    let cfg = TunnelConfig::flow_based(TunnelKind::Vxlan);
    let meta = EncapMeta {
        tun_id: 1,
        tun_dst: v4([10, 1, 1, 2]),
        tun_src: v4([10, 1, 1, 1]),
        geneve_options: &[],
        oam: false,
    };
    let ep = endpoints(&cfg, &meta, None).unwrap();
    let t = Template::new(&cfg, &ep, &meta, L2).unwrap();
    let mut buf = vec![0u8; 1600];
    for (i, len) in [14usize, 15, 64, 333, 1450].into_iter().enumerate() {
        let id = (i as u16).wrapping_mul(40_000);
        let (s, l) = t.apply(&mut buf, 100, len, i as u32, id).unwrap();
        let ip = ipv4::Packet::new_checked(&buf[s + 14..s + l]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.ident(), id);
        assert!(ip.dont_frag());
        assert_eq!(usize::from(ip.total_len()), l - 14);
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(u.checksum(), 0);
        assert_eq!(usize::from(u.len()), len + 16);
    }
}

#[test]
fn encap_errors() {
    let cfg = TunnelConfig::flow_based(TunnelKind::Vxlan);
    let mut meta = EncapMeta {
        tun_id: 1 << 24,
        tun_dst: None,
        tun_src: None,
        geneve_options: &[],
        oam: false,
    };
    assert_eq!(endpoints(&cfg, &meta, None), Err(EncapError::NoDestination));
    meta.tun_dst = v4([1, 1, 1, 1]);
    assert_eq!(endpoints(&cfg, &meta, None), Err(EncapError::NoSource));
    let six = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(endpoints(&cfg, &meta, six), Err(EncapError::MixedFamilies));
    assert_eq!(
        endpoints(&cfg, &meta, v4([2, 2, 2, 2])),
        Err(EncapError::KeyTooLarge)
    );
    let fixed = TunnelConfig {
        key: Key::Fixed(7),
        remote: Remote::Ip([3, 3, 3, 3].into()),
        ..cfg
    };
    let ep = endpoints(&fixed, &meta, v4([2, 2, 2, 2])).unwrap();
    assert_eq!((ep.vni, ep.dst), (7, IpAddr::from([3, 3, 3, 3])));
    meta.geneve_options = &OPTS;
    assert_eq!(
        Template::new(&cfg, &ep, &meta, L2).unwrap_err(),
        EncapError::BadOptions
    );
    let g = TunnelConfig::flow_based(TunnelKind::Geneve);
    meta.geneve_options = &[1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(
        Template::new(&g, &ep, &meta, L2).unwrap_err(),
        EncapError::BadOptions
    );
    meta.geneve_options = &[];
    let bad_range = TunnelConfig {
        sport_range: (5, 5),
        ..cfg
    };
    assert_eq!(
        Template::new(&bad_range, &ep, &meta, L2).unwrap_err(),
        EncapError::BadPortRange
    );
    let t = Template::new(&cfg, &ep, &meta, L2).unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(t.apply(&mut buf, 49, 20, 0, 0), Err(EncapError::NoHeadroom));
    assert_eq!(t.apply(&mut buf, 60, 41, 0, 0), Err(EncapError::BadRange));
    assert_eq!(t.apply(&mut buf, 60, 10, 0, 0), Err(EncapError::BadRange));
    assert_eq!(
        t.apply(&mut buf, usize::MAX, 10, 0, 0),
        Err(EncapError::BadRange)
    );
    assert!(t.apply(&mut buf, 50, 50, 0, 0).is_ok());
    let mut big = vec![0u8; 70_000];
    assert_eq!(
        t.apply(&mut big, 100, 65_600, 0, 0),
        Err(EncapError::TooLarge)
    );
}

#[test]
fn source_port_range_and_flow_stability() {
    assert_eq!(source_port(0, 32768, 28232), 32768);
    assert_eq!(source_port(u32::MAX, 32768, 28232), 60999);
    let (a, n) = inner(1000);
    let (b, _) = inner(1001);
    assert_eq!(inner_flow_hash(&a[..n]), inner_flow_hash(&a[..n]));
    assert_ne!(inner_flow_hash(&a[..n]), inner_flow_hash(&b[..n]));
    // Garbage never panics.
    for l in 0..64 {
        let _ = inner_flow_hash(&[0x86; 64][..l]);
        let _ = inner_flow_hash(&[0x08; 64][..l]);
    }
}

#[test]
fn decap_rejects_each_layer() {
    let (good, _, _) = encap_v4(TunnelKind::Vxlan, &[], true);
    let cfg = DecapConfig::from_config(&TunnelConfig::flow_based(TunnelKind::Vxlan));
    let run = |f: &[u8]| decap(&cfg, f, &mut FlowKey::default()).map(|d| d.inner_offset);
    assert_eq!(run(&good), Ok(50));
    assert_eq!(run(&good[..10]), Err(DecapError::ShortFrame));
    let mut f = good.clone();
    f[12] = 0x88;
    assert_eq!(run(&f), Err(DecapError::NotIp));
    let mut f = good.clone();
    f[20] = 0x20; // MF
    f[24] = 0;
    f[25] = 0;
    let c = xvs_packet::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(run(&f), Err(DecapError::Fragment));
    let mut f = good.clone();
    f[60] ^= 1; // inner byte: UDP checksum fails
    assert_eq!(run(&f), Err(DecapError::BadUdpChecksum));
    let mut f = good.clone();
    f[49] = 1; // VXLAN reserved byte
    assert_eq!(run(&f), Err(DecapError::BadUdpChecksum));
    let lax = DecapConfig {
        verify_udp_csum: false,
        ..cfg
    };
    assert_eq!(
        decap(&lax, &f, &mut FlowKey::default()).map(|_| ()),
        Err(DecapError::BadVxlan)
    );
    let strict = DecapConfig {
        local_ip: Some([192, 168, 0, 9].into()),
        ..cfg
    };
    assert_eq!(
        decap(&strict, &good, &mut FlowKey::default()).map(|_| ()),
        Err(DecapError::WrongDestination)
    );
    // Ethernet padding after the IP packet is not part of the inner frame.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 6]);
    let d = decap(&cfg, &padded, &mut FlowKey::default()).unwrap();
    assert_eq!(d.inner_offset + d.inner_len, good.len());
    // Every truncation is refused without panic.
    for l in 0..good.len() {
        assert!(run(&good[..l]).is_err());
    }
    assert_eq!(DecapError::BadVxlan.name(), "bad_vxlan");
}

#[test]
fn geneve_options_with_bad_lengths_are_refused() {
    // Two options: 8 bytes (class 0x0104, critical) and 4 bytes (class 0x0105, no data).
    let opts: [u8; 12] = [
        0x01, 0x04, 0x80, 0x01, 0, 0, 0, 7, //
        0x01, 0x05, 0x02, 0x00,
    ];
    let (good, inner_frame, _) = encap_v4(TunnelKind::Geneve, &opts, false);
    let cfg = DecapConfig {
        verify_udp_csum: false,
        ..DecapConfig::from_config(&TunnelConfig::flow_based(TunnelKind::Geneve))
    };
    let run = |f: &[u8]| {
        let mut k = FlowKey::default();
        let r = decap(&cfg, f, &mut k).map(|d| {
            let o: Vec<(u16, u8, usize)> = d
                .options()
                .map(|o| (o.class, o.kind, o.data.len()))
                .collect();
            (o, f[d.inner_offset..d.inner_offset + d.inner_len].to_vec())
        });
        if r.is_err() {
            assert_eq!(k, FlowKey::default(), "key untouched on error");
        }
        r
    };
    let (o, inner) = run(&good).unwrap();
    assert_eq!(o, vec![(0x0104, 0x80, 4), (0x0105, 0x02, 0)]);
    assert_eq!(inner, inner_frame);
    // The Geneve header is at 42: opt_len in the low 6 bits of byte 42, each option's length
    // (in 4-byte words, after its 4-byte header) in the low 5 bits of its byte 3.
    let g = 42;
    let cases: [(&str, usize, u8, DecapError); 5] = [
        // opt_len longer than the whole packet.
        (
            "opt_len past the packet",
            g,
            0x3f,
            DecapError::BadGeneveOptions,
        ),
        // First option claims 3 words of data: 16 bytes, past the 12 of opt_len.
        (
            "option overruns opt_len",
            g + 8 + 3,
            0x03,
            DecapError::BadGeneveOptions,
        ),
        // Last option claims one data word beyond opt_len.
        (
            "last option past opt_len",
            g + 8 + 8 + 3,
            0x01,
            DecapError::BadGeneveOptions,
        ),
        // opt_len shorter than the options: the first option ends beyond it.
        ("opt_len too short", g, 0x01, DecapError::BadGeneveOptions),
        // Version 1.
        ("version", g, 0x43, DecapError::BadGeneveVersion),
    ];
    for (what, at, value, want) in cases {
        let mut f = good.clone();
        f[at] = value;
        assert_eq!(run(&f).map(|_| ()), Err(want), "{what}");
    }
    // opt_len = 0 turns the options into the "inner frame": still accepted (it is only bytes),
    // but no option is reported.
    let mut f = good.clone();
    f[g] = 0;
    let (o, _) = run(&f).unwrap();
    assert!(o.is_empty());
    // A first option of 2 data words swallows the second one's header: still tiles exactly.
    let mut f = good.clone();
    f[g + 8 + 3] = 0x02;
    let (o, _) = run(&f).unwrap();
    assert_eq!(o, vec![(0x0104, 0x80, 8)]);
    // Every truncation inside the options is refused.
    for l in g..g + 8 + opts.len() + 14 {
        assert!(run(&good[..l]).is_err(), "truncated at {l}");
    }
    // The encapsulator refuses option bytes that do not tile.
    for bad in [
        &opts[..11],
        &opts[..6],
        &[0x01, 0x04, 0x80, 0x02, 0, 0, 0, 7][..],
    ] {
        let cfg = TunnelConfig::flow_based(TunnelKind::Geneve);
        let meta = EncapMeta {
            tun_id: 1,
            tun_dst: v4([192, 168, 0, 2]),
            tun_src: v4([192, 168, 0, 1]),
            geneve_options: bad,
            oam: false,
        };
        let ep = endpoints(&cfg, &meta, None).unwrap();
        assert_eq!(
            Template::new(&cfg, &ep, &meta, L2).map(|_| ()),
            Err(EncapError::BadOptions),
            "{bad:?}"
        );
    }
    // Counter indices follow ALL.
    for (i, e) in DecapError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
    }
}

/// The Geneve option seeds of the decap fuzz corpus decapsulate, and map onto
/// `tun_metadata0` (class 0xffff, type 0x42, 4 bytes) as OVS would: mapped, a mapped option of
/// the wrong length (refused), an unknown critical option (refused), and an unknown
/// non-critical option next to a mapped one (ignored).
#[test]
fn geneve_option_corpus_entries_map_like_ovs() {
    use xvs_flowtable::tlv::{OptionError, TlvCommand, TlvMap, TlvMapping};
    let tlv = TlvMap::default()
        .apply(
            TlvCommand::Add,
            &[TlvMapping {
                class: 0xffff,
                kind: 0x42,
                len: 4,
                index: 0,
            }],
        )
        .unwrap();
    let cfg = DecapConfig::from_config(&TunnelConfig::flow_based(TunnelKind::Geneve));
    for (file, want) in [
        ("geneve4_tlv_mapped.bin", Ok(0x00ab_1234)),
        ("geneve4_tlv_two.bin", Ok(0x1234)),
        (
            "geneve4_tlv_wrong_len.bin",
            Err(OptionError::LengthMismatch),
        ),
        (
            "geneve4_tlv_unknown_critical.bin",
            Err(OptionError::UnknownCritical),
        ),
    ] {
        let path = format!("{}/fuzz/corpus/decap/{file}", env!("CARGO_MANIFEST_DIR"));
        let frame = std::fs::read(&path).unwrap();
        let mut key = FlowKey::ZERO;
        let d = decap(&cfg, &frame, &mut key).unwrap();
        let got = tlv
            .read_options(d.options_bytes(), &mut key)
            .map(|()| key.get(xvs_packet::key::layout::tun_metadata(0)));
        assert_eq!(got, want, "{file}");
    }
}
