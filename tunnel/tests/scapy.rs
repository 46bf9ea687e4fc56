//! Byte-for-byte comparison with frames built by scapy the way Linux and OVS send them
//! (tests/fixtures/gen.py; see its docstring for which fields are forced).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::net::IpAddr;

use xvs_packet::key::{layout, FlowKey};
use xvs_tunnel::{
    decap, endpoints, DecapConfig, DecapError, EncapMeta, Key, OuterL2, Remote, Template,
    TunnelConfig, TunnelKind, TUN_FLAG_CRITICAL, TUN_FLAG_CSUM, TUN_FLAG_DONT_FRAGMENT,
    TUN_FLAG_KEY, TUN_FLAG_OAM,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}.bin")).unwrap()
}

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn frames() -> Vec<(String, HashMap<String, String>)> {
    std::fs::read_to_string(format!("{DIR}/frames.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap().to_string();
            let kv = it
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            (name, kv)
        })
        .collect()
}

/// A hash that [`xvs_tunnel::encap::source_port`] maps to `sport`.
fn hash_for(sport: u16, (lo, hi): (u16, u16)) -> u32 {
    let span = u64::from(hi - lo);
    let k = u64::from(sport - lo);
    ((k << 32).div_ceil(span)) as u32
}

#[test]
fn encap_matches_scapy_bytes() {
    let all = frames();
    assert_eq!(all.len(), 7);
    for (name, f) in all {
        let want = read(&name);
        let g = |k: &str| f[k].as_str();
        let n = |k: &str| g(k).parse::<u64>().unwrap();
        let kind = if g("kind") == "vxlan" {
            TunnelKind::Vxlan
        } else {
            TunnelKind::Geneve
        };
        let cfg = TunnelConfig {
            csum: n("csum") == 1,
            df: n("df") == 1,
            ttl: n("ttl") as u8,
            tos: n("tos") as u8,
            remote: Remote::Flow,
            key: Key::Flow,
            ..TunnelConfig::flow_based(kind)
        };
        let opts = hex(g("opts"));
        let meta = EncapMeta {
            tun_id: n("vni"),
            tun_dst: Some(g("dst").parse::<IpAddr>().unwrap()),
            tun_src: Some(g("src").parse::<IpAddr>().unwrap()),
            geneve_options: &opts,
            oam: n("oam") == 1,
        };
        let ep = endpoints(&cfg, &meta, None).unwrap();
        let l2 = OuterL2 {
            src: mac(g("smac")),
            dst: mac(g("dmac")),
        };
        let t = Template::new(&cfg, &ep, &meta, l2).unwrap();
        let inner_off = n("inner") as usize;
        assert_eq!(t.header_len(), inner_off, "{name}");
        let inner = &want[inner_off..];
        let mut buf = vec![0u8; 512];
        buf[400..400 + inner.len()].copy_from_slice(inner);
        let h = hash_for(n("sport") as u16, cfg.sport_range);
        let (s, l) = t
            .apply(&mut buf, 400, inner.len(), h, n("ipid") as u16)
            .unwrap();
        assert_eq!(
            &buf[s..s + l],
            &want[..],
            "{name}: encap differs from scapy"
        );

        // And decap scapy's frame.
        let dc = DecapConfig::from_config(&cfg);
        let mut key = FlowKey::ZERO;
        let d = decap(&dc, &want, &mut key).unwrap();
        assert_eq!(d.inner_offset, inner_off, "{name}");
        assert_eq!(d.inner_len, inner.len(), "{name}");
        assert_eq!(d.options_bytes(), &opts[..], "{name}");
        assert_eq!(key.get(layout::TUN_ID), n("vni"), "{name}");
        assert_eq!(key.get(layout::TUN_TP_SRC), n("sport"), "{name}");
        assert_eq!(key.get(layout::TUN_TP_DST), n("dport"), "{name}");
        assert_eq!(key.get(layout::TUN_TTL), n("ttl"), "{name}");
        assert_eq!(key.get(layout::TUN_TOS), n("tos"), "{name}");
        match (ep.src, ep.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                assert_eq!(key.get(layout::TUN_SRC), u64::from(u32::from(s)));
                assert_eq!(key.get(layout::TUN_DST), u64::from(u32::from(d)));
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                assert_eq!(key.get128(layout::TUN_IPV6_SRC), u128::from(s));
                assert_eq!(key.get128(layout::TUN_IPV6_DST), u128::from(d));
                assert_eq!(key.get(layout::TUN_SRC), 0);
            }
            _ => unreachable!(),
        }
        let mut flags = TUN_FLAG_KEY;
        if n("df") == 1 && ep.dst.is_ipv4() {
            flags |= TUN_FLAG_DONT_FRAGMENT;
        }
        if n("csum") == 1 {
            flags |= TUN_FLAG_CSUM;
        }
        if n("oam") == 1 {
            flags |= TUN_FLAG_OAM;
        }
        if !opts.is_empty() {
            flags |= TUN_FLAG_CRITICAL;
        }
        assert_eq!(key.get(layout::TUN_FLAGS), u64::from(flags), "{name}");
        // Key round trip: metadata read back from the key gives the same template.
        let back = EncapMeta::from_key(&key, d.options_bytes());
        // (Decap sees our tun_src as its source; encap wants it as the destination.)
        assert_eq!(back.tun_id, n("vni"));
        assert_eq!(back.tun_dst, Some(ep.dst));
        assert_eq!(back.oam, n("oam") == 1);
    }
}

#[test]
fn geneve_options_iterate() {
    let f = read("geneve4_opts");
    let cfg = DecapConfig::from_config(&TunnelConfig::flow_based(TunnelKind::Geneve));
    let mut key = FlowKey::ZERO;
    let d = decap(&cfg, &f, &mut key).unwrap();
    let o: Vec<_> = d.options().map(|o| (o.class, o.kind, o.data)).collect();
    assert_eq!(
        o,
        vec![
            (0x0104, 0x80, &[0, 0, 0, 7][..]),
            (0x0102, 0x01, &b"abcdefgh"[..])
        ]
    );
}

#[test]
fn malformed_frames_are_refused() {
    let v = DecapConfig::from_config(&TunnelConfig::flow_based(TunnelKind::Vxlan));
    let g = DecapConfig::from_config(&TunnelConfig::flow_based(TunnelKind::Geneve));
    for (name, cfg, want) in [
        ("bad_vxlan", v, DecapError::BadVxlan),
        ("bad_ip_csum", v, DecapError::BadIpChecksum),
        ("bad_udp_len", v, DecapError::BadIp),
        ("bad_geneve_version", g, DecapError::BadGeneveVersion),
        ("bad_geneve_not_ethernet", g, DecapError::NotEthernet),
        ("vxlan4_ovs", g, DecapError::WrongPort),
    ] {
        let mut key = FlowKey::ZERO;
        assert_eq!(decap(&cfg, &read(name), &mut key), Err(want), "{name}");
        assert_eq!(key, FlowKey::ZERO, "{name}: key touched on error");
    }
}
