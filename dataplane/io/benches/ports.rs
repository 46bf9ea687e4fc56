//! Cost of the in-memory backends per packet: replay (the benchmark source under the pipeline)
//! and the memory port's ring round trip.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use xvs_io::{Desc, FramePool, MemoryPort, PortIo, ReplayPort};

const BURST: usize = 32;

fn frames(len: usize) -> Vec<Vec<u8>> {
    (0..64u8).map(|i| vec![i; len]).collect()
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay");
    for len in [64usize, 1500] {
        g.throughput(Throughput::Elements(BURST as u64));
        g.bench_function(format!("rx_tx_burst{BURST}_{len}B"), |b| {
            let mut pool = FramePool::new(1024, 2048, 256).expect("pool");
            let mut port = ReplayPort::new("bench", frames(len), None).expect("replay");
            let mut descs = [Desc::default(); BURST];
            b.iter(|| {
                let n = port.rx_burst(&mut pool, &mut descs);
                black_box(&descs[..n]);
                port.tx_burst(&mut pool, &descs[..n]);
            });
        });
    }
    g.finish();
}

fn memory(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory");
    let len = 64;
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function(
        format!("peer_send_rx_tx_peer_recv_burst{BURST}_{len}B"),
        |b| {
            let mut pool = FramePool::new(1024, 2048, 256).expect("pool");
            let (mut port, mut peer) = MemoryPort::pair("bench", 1024);
            let frame = vec![7u8; len];
            let mut descs = [Desc::default(); BURST];
            let mut sink = vec![0u8; 2048];
            // Includes the peer's side (a test harness cost, with one allocation per received frame).
            b.iter(|| {
                for _ in 0..BURST {
                    peer.send(&frame);
                }
                let n = port.rx_burst(&mut pool, &mut descs);
                let sent = port.tx_burst(&mut pool, &descs[..n]);
                pool.free_all(&descs[sent..n]);
                while let Some(f) = peer.recv() {
                    sink[..f.len()].copy_from_slice(&f);
                }
                black_box(&sink);
            });
        },
    );
    g.finish();
}

criterion_group!(benches, replay, memory);
criterion_main!(benches);
