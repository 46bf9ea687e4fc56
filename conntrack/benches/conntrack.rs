//! Conntrack micro-benchmarks: established lookups (1 thread at 1k, 100k and 1M connections;
//! 2 threads at 1k and 100k) and new-connection commits into a table holding 1k, 100k or 1M.
//!
//! Run: `CARGO_TARGET_DIR=target-conntrack cargo bench -p xvs-conntrack --bench conntrack`
//! (add `-- --quick` or a filter such as `lookup_est` for a shorter run).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{Conntrack, CtAction, CtConfig, CtInput, CtMeta, CtStats, Tuple};

const ZONE: u16 = 65520;
const NEW_ZONE: u16 = 65521;

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 14)))
}

/// Client `i` -> server, UDP: a distinct 5-tuple per `i`.
fn orig(i: u32) -> CtInput {
    CtInput::new(Tuple::ports(
        addr(i),
        IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
        proto::UDP,
        1024 + (i & 0x3fff) as u16,
        53,
    ))
}

fn reply(i: u32) -> CtInput {
    let o = orig(i).tuple;
    CtInput::new(Tuple::ports(
        o.dst,
        o.src,
        proto::UDP,
        o.dst_port,
        o.src_port,
    ))
}

/// A tracker with `n` established UDP connections in `ZONE`, preallocated for exactly `n`
/// (`initial_capacity` 0: capacity `max_conns`, slab allocated as it fills).
fn filled(n: u32, initial_capacity: usize) -> Conntrack {
    let ct = Conntrack::new(CtConfig {
        initial_capacity,
        ..CtConfig::default()
    });
    let mut stats = CtStats::default();
    for i in 0..n {
        let mut m = CtMeta::default();
        ct.process(0, &orig(i), &CtAction::commit(ZONE), &mut m, &mut stats);
        let mut m = CtMeta::default();
        ct.process(0, &reply(i), &CtAction::lookup(ZONE), &mut m, &mut stats);
    }
    assert_eq!(ct.conn_count(), n);
    ct
}

fn lookups(ct: &Conntrack, inputs: &[CtInput], iters: u64, stats: &mut CtStats) {
    let act = CtAction::lookup(ZONE);
    let n = inputs.len();
    for k in 0..iters as usize {
        let mut meta = CtMeta::default();
        ct.process(1, &inputs[k % n], &act, &mut meta, stats);
        black_box(meta.state);
    }
}

fn bench_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_est");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for n in [1_000u32, 100_000, 1_000_000] {
        if n >= 1_000_000 {
            g.sample_size(20);
        }
        let ct = Arc::new(filled(n, 2 * n as usize));
        // Visit connections in a scattered order so the 100k case is not cache-friendly.
        let order: Vec<u32> = (0..n).map(|i| i.wrapping_mul(2_654_435_761) % n).collect();
        let fwd: Arc<Vec<CtInput>> = Arc::new(order.iter().map(|&i| orig(i)).collect());
        let rev: Arc<Vec<CtInput>> = Arc::new(order.iter().map(|&i| reply(i)).collect());

        g.bench_with_input(BenchmarkId::new("1thread", n), &n, |b, _| {
            let mut stats = CtStats::default();
            b.iter_custom(|iters| {
                let t = Instant::now();
                lookups(&ct, &fwd, iters, &mut stats);
                t.elapsed()
            });
        });

        // The same lookups through `process_batch`, 32 packets per call.
        g.bench_with_input(BenchmarkId::new("1thread_batch32", n), &n, |b, _| {
            let mut stats = CtStats::default();
            let act = CtAction::lookup(ZONE);
            let mut metas = vec![CtMeta::default(); 32];
            let mut out = vec![None; 32];
            b.iter_custom(|iters| {
                let t = Instant::now();
                let mut done = 0u64;
                let mut k = 0usize;
                while done < iters {
                    if k + 32 > fwd.len() {
                        k = 0;
                    }
                    for m in metas.iter_mut() {
                        *m = CtMeta::default();
                    }
                    ct.process_batch(1, &fwd[k..k + 32], &act, &mut metas, &mut stats, &mut out);
                    black_box(&metas);
                    k += 32;
                    done += 32;
                }
                t.elapsed() * iters as u32 / done as u32
            });
        });

        if n >= 1_000_000 {
            continue;
        }
        // Two workers: one sends the original direction, the other the replies of the same
        // connections (the worst case for shared per-connection state). The figure is wall
        // time divided by the packets of both threads: the aggregate cost per packet.
        g.bench_with_input(
            BenchmarkId::new("2threads_both_directions", n),
            &n,
            |b, _| {
                b.iter_custom(|iters| {
                    let barrier = Arc::new(Barrier::new(3));
                    let hs: Vec<_> = [Arc::clone(&fwd), Arc::clone(&rev)]
                        .into_iter()
                        .map(|inputs| {
                            let ct = Arc::clone(&ct);
                            let barrier = Arc::clone(&barrier);
                            thread::spawn(move || {
                                let mut stats = CtStats::default();
                                barrier.wait();
                                lookups(&ct, &inputs, iters, &mut stats);
                            })
                        })
                        .collect();
                    barrier.wait();
                    let t = Instant::now();
                    for h in hs {
                        let _ = h.join();
                    }
                    t.elapsed() / 2
                });
            },
        );
    }
    g.finish();
}

fn bench_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit_new");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for n in [1_000u32, 100_000, 1_000_000] {
        if n >= 1_000_000 {
            // Each batch ends with a flush that walks the whole table.
            g.sample_size(10);
        }
        // Room for the batches' new connections on top of the `n` (slab allocated on demand).
        let ct = filled(n, 0);
        g.bench_with_input(BenchmarkId::new("udp", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = NEXT.fetch_add(iters as u32, Ordering::Relaxed);
                let inputs: Vec<CtInput> = (0..iters as u32)
                    .map(|k| orig(start.wrapping_add(k)))
                    .collect();
                let act = CtAction::commit(NEW_ZONE);
                let mut stats = CtStats::default();
                let t = Instant::now();
                for inp in &inputs {
                    let mut meta = CtMeta::default();
                    ct.process(1, inp, &act, &mut meta, &mut stats);
                    black_box(meta.state);
                }
                let el = t.elapsed();
                assert_eq!(
                    stats.commit_failed, 0,
                    "the benchmark must measure successful commits"
                );
                // Keep the table at `n` connections between batches.
                ct.flush(Some(NEW_ZONE));
                el
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_lookup, bench_commit);
criterion_main!(benches);
