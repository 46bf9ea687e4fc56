//! Flow-key extraction speed on typical frames.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use xvs_packet::build::{self, Macs, TcpParams};
use xvs_packet::{extract, FlowKey};

const M: Macs = Macs {
    src: [2, 0, 0, 0, 0, 1],
    dst: [2, 0, 0, 0, 0, 2],
};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    let mut udp = [0u8; 64];
    let n = build::udp4(
        &mut udp,
        M,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        1234,
        80,
        &[0; 18],
    )
    .unwrap_or(0);
    assert_eq!(n, 60);
    let mut key = FlowKey::ZERO;
    // Extraction alone: it writes every packet word, so the key needs no reset between frames.
    g.bench_function("udp4_64B", |b| {
        b.iter(|| {
            black_box(extract(black_box(&udp[..60]), 1, &mut key));
            black_box(&key);
        })
    });
    // With the caller's full key reset, as a worker does before extraction.
    g.bench_function("udp4_64B_with_key_reset", |b| {
        b.iter(|| {
            key = FlowKey::ZERO;
            black_box(extract(black_box(&udp[..60]), 1, &mut key));
            black_box(&key);
        })
    });
    let mut tcp = [0u8; 128];
    let t = TcpParams {
        sport: 40000,
        dport: 443,
        seq: 1,
        ack: 2,
        flags: 0x10,
        window: 512,
    };
    let n6 = build::tcp6(&mut tcp, M, [0x20; 16], [0x21; 16], t, &[0; 20]).unwrap_or(0);
    g.bench_function("tcp6_94B", |b| {
        b.iter(|| {
            key = FlowKey::ZERO;
            black_box(extract(black_box(&tcp[..n6]), 1, &mut key));
            black_box(&key);
        })
    });
    let mut vl = [0u8; 128];
    let n = build::udp4(&mut vl, M, [10, 0, 0, 1], [10, 0, 0, 2], 1234, 80, &[0; 18]).unwrap_or(0);
    let nv = build::push_vlan(&mut vl, n, 100).unwrap_or(0);
    g.bench_function("vlan_udp4_68B", |b| {
        b.iter(|| {
            key = FlowKey::ZERO;
            black_box(extract(black_box(&vl[..nv]), 1, &mut key));
            black_box(&key);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
