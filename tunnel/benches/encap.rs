//! Encap and decap cost per 64-byte inner frame.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xvs_flowtable::tlv::{GeneveOptions, TlvCommand, TlvMap, TlvMapping};
use xvs_packet::build::{udp4, Macs};
use xvs_packet::key::FlowKey;
use xvs_tunnel::{
    decap, endpoints, inner_flow_hash, DecapConfig, EncapMeta, OuterL2, Template, TunnelConfig,
    TunnelKind,
};

const HEADROOM: usize = 128;

fn inner() -> ([u8; 64], usize) {
    let mut f = [0u8; 64];
    let macs = Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };
    let n = udp4(
        &mut f,
        macs,
        [10, 10, 0, 5],
        [10, 10, 1, 7],
        1234,
        80,
        &[0; 22],
    )
    .unwrap();
    assert_eq!(n, 64);
    (f, n)
}

fn bench(c: &mut Criterion) {
    let (frame, n) = inner();
    let l2 = OuterL2 {
        src: [2, 0, 0, 0, 1, 1],
        dst: [2, 0, 0, 0, 1, 2],
    };
    let mut g = c.benchmark_group("tunnel");
    g.throughput(Throughput::Elements(1));
    // One 4-byte option, mapped to tun_metadata0 on the receiving side.
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
    let mut one_option = GeneveOptions::EMPTY;
    one_option.push(0xffff, 0x42, &[0, 0, 0x12, 0x34]);
    for (name, kind, csum, options) in [
        ("vxlan4", TunnelKind::Vxlan, false, GeneveOptions::EMPTY),
        ("vxlan4_csum", TunnelKind::Vxlan, true, GeneveOptions::EMPTY),
        ("geneve4", TunnelKind::Geneve, false, GeneveOptions::EMPTY),
        ("geneve4_opt", TunnelKind::Geneve, false, one_option),
    ] {
        let mut cfg = TunnelConfig::flow_based(kind);
        cfg.csum = csum;
        let meta = EncapMeta {
            tun_id: 0,
            tun_dst: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))),
            tun_src: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))),
            geneve_options: options.as_bytes(),
            oam: false,
        };
        let ep = endpoints(&cfg, &meta, None).unwrap();
        let t = Template::new(&cfg, &ep, &meta, l2).unwrap();
        let mut buf = [0u8; HEADROOM + 64];
        buf[HEADROOM..].copy_from_slice(&frame[..n]);
        g.bench_function(format!("encap_{name}"), |b| {
            b.iter(|| {
                let h = inner_flow_hash(&buf[HEADROOM..]);
                black_box(t.apply(&mut buf, HEADROOM, n, h, 0).unwrap())
            })
        });
        let (s, l) = t.apply(&mut buf, HEADROOM, n, 7, 0).unwrap();
        let outer = buf[s..s + l].to_vec();
        let dc = DecapConfig::from_config(&cfg);
        let mut key = FlowKey::ZERO;
        g.bench_function(format!("decap_{name}"), |b| {
            b.iter(|| {
                let d = decap(&dc, black_box(&outer), &mut key).unwrap();
                if kind == TunnelKind::Geneve {
                    // What the engine does for a Geneve port: options into tun_metadata.
                    tlv.read_options(d.options_bytes(), &mut key).unwrap();
                }
                black_box(d.inner_offset)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
