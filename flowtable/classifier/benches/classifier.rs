//! Micro-benchmarks: exact-match hits, megaflow hits over 1/10/100 masks, classifier lookups in
//! an Antrea-style conjunctive policy table, and bundle insertion rate and memory.
//!
//! `cargo bench -p xvs-classifier -- --warm-up-time 1 --measurement-time 3`
//! A positional filter (e.g. `megaflow`) selects benchmarks; the insertion report runs when the
//! filter is absent or matches "insertion".
#![allow(clippy::unwrap_used)] // Benchmark setup: a failure is a bug to see at once.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, BenchmarkId, Throughput};
use xvs_classifier::{
    CacheConfig, Classifier, Conjunction, DatapathCache, Insertion, LookupScratch, Match,
    MegaflowConfig, MegaflowId,
};
use xvs_packet::key::layout::*;
use xvs_packet::FlowKey;

const BATCH: usize = 32;

/// Criterion measured in this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on a
/// machine shared with other work, time spent descheduled is not ours. Cache interference from
/// other processes still shows.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, v1: &u64, v2: &u64) -> u64 {
        v1 + v2
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNs
    }
}

/// Formats CPU nanoseconds like criterion's wall-time formatter, with a "cpu" suffix.
struct CpuNs;

impl ValueFormatter for CpuNs {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns(cpu)")
        } else if typical < 1e6 {
            (1e3, "µs(cpu)")
        } else {
            (1e6, "ms(cpu)")
        };
        for v in values.iter_mut() {
            *v /= div;
        }
        unit
    }
    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
        };
        // elements per CPU-second
        let per_s = n * 1e9 / typical.max(1.0);
        let (div, unit) = if per_s >= 1e6 {
            (1e6, "Melem/s(cpu)")
        } else {
            (1e3, "Kelem/s(cpu)")
        };
        for v in values.iter_mut() {
            *v = n * 1e9 / v.max(1.0) / div;
        }
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns(cpu)"
    }
}

type Criterion = criterion::Criterion<CpuTime>;

/// A cheap deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A realistic IPv4/TCP key.
fn tcp_key(src: u32, dst: u32, sport: u16, dport: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set(IN_PORT, 3);
    k.set(ETH_TYPE, 0x0800);
    k.set(ETH_SRC, 0x0200_0000_0001);
    k.set(ETH_DST, 0x0200_0000_0002);
    k.set(NW_SRC, u64::from(src));
    k.set(NW_DST, u64::from(dst));
    k.set(NW_PROTO, 6);
    k.set(NW_TTL, 64);
    k.set(TP_SRC, u64::from(sport));
    k.set(TP_DST, u64::from(dport));
    k
}

/// `n_masks` megaflow masks, each with `per_mask` disjoint entries (every mask matches in_port,
/// eth_type and nw_proto exactly, the mask index in tp_src's high bits keeps masks disjoint).
fn fill_megaflows(c: &mut DatapathCache<u32>, n_masks: usize, per_mask: usize) -> Vec<FlowKey> {
    let mut keys = Vec::new();
    for mi in 0..n_masks {
        let mut mask = FlowKey::ZERO;
        mask.set(IN_PORT, u64::from(u32::MAX));
        mask.set(ETH_TYPE, 0xffff);
        mask.set(NW_PROTO, 0xff);
        mask.set(TP_SRC, 0xff00);
        // Vary the destination prefix length and add other fields so every mask differs.
        let plen = 8 + (mi % 25) as u32;
        mask.set(NW_DST, u64::from(u32::MAX << (32 - plen)));
        if mi >= 25 {
            mask.set(NW_SRC, u64::from(u32::MAX << (32 - (mi / 25) as u32 * 4)));
        }
        for e in 0..per_mask {
            let dst = 0x0a00_0000u32 | ((e as u32) << (32 - plen.min(24)));
            let k = tcp_key(0x0b00_0001, dst, ((mi as u16) << 8) | 7, 80);
            c.insert(&k, &mask, (mi * per_mask + e) as u32, 1).unwrap();
            keys.push(k);
        }
    }
    keys
}

fn cache_benches(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("cache");
    g.throughput(Throughput::Elements(BATCH as u64));

    // Exact-match hits: 1000 flows, one megaflow mask.
    let mut c = DatapathCache::new(CacheConfig::default());
    c.begin_batch(1);
    let mut mask = FlowKey::ZERO;
    mask.set(NW_DST, u64::from(u32::MAX));
    mask.set(ETH_TYPE, 0xffff);
    let mut rng = Rng(7);
    let flows: Vec<FlowKey> = (0..1000u32)
        .map(|i| tcp_key(0x0b00_0000 + i, 0x0a00_0000 + i, 1000 + i as u16, 80))
        .collect();
    for (i, k) in flows.iter().enumerate() {
        c.insert(k, &mask, i as u32, 1).unwrap();
    }
    let batches: Vec<Vec<FlowKey>> = (0..64)
        .map(|_| {
            (0..BATCH)
                .map(|_| flows[rng.below(1000) as usize])
                .collect()
        })
        .collect();
    let mut out = vec![None::<MegaflowId>; BATCH];
    for b in &batches {
        c.lookup_batch(b, &mut out);
    }
    let mut bi = 0;
    g.bench_function("exact_hit_1k_flows", |bch| {
        bch.iter(|| {
            c.lookup_batch(&batches[bi & 63], &mut out);
            bi += 1;
            black_box(&out);
        })
    });
    let s = c.stats();
    eprintln!(
        "exact_hit_1k_flows: exact hits {} megaflow hits {} misses {}",
        s.exact_hits, s.megaflow_hits, s.misses
    );

    // Megaflow hits (exact tier off), uniform over 1 / 10 / 100 masks.
    for n_masks in [1usize, 10, 100] {
        let mut c = DatapathCache::new(CacheConfig {
            exact_insertion: Insertion::Never,
            megaflow: MegaflowConfig {
                resort_interval: 4096,
                ..MegaflowConfig::default()
            },
            ..CacheConfig::default()
        });
        c.begin_batch(1);
        let keys = fill_megaflows(&mut c, n_masks, 1000 / n_masks.min(100));
        let mut rng = Rng(11);
        let batches: Vec<Vec<FlowKey>> = (0..64)
            .map(|_| {
                (0..BATCH)
                    .map(|_| {
                        let mut k = keys[rng.below(keys.len() as u64) as usize];
                        k.set(TP_DST, rng.below(65536)); // outside every mask
                        k
                    })
                    .collect()
            })
            .collect();
        let mut bi = 0;
        g.bench_with_input(
            BenchmarkId::new("megaflow_hit_uniform", n_masks),
            &n_masks,
            |bch, _| {
                bch.iter(|| {
                    c.lookup_batch(&batches[bi & 63], &mut out);
                    bi += 1;
                    black_box(&out);
                })
            },
        );
        let ms = c.megaflow_stats();
        eprintln!(
            "megaflow {n_masks} masks: hits {} misses {} avg subtables/hit {:.2}",
            ms.hits,
            ms.misses,
            ms.subtable_lookups_on_hit as f64 / ms.hits.max(1) as f64
        );
        // Skewed: 90% of packets hit one mask, which ranking moves to the front.
        if n_masks > 1 {
            let hot: Vec<FlowKey> = keys[keys.len() - keys.len() / n_masks..].to_vec();
            let batches: Vec<Vec<FlowKey>> = (0..64)
                .map(|_| {
                    (0..BATCH)
                        .map(|_| {
                            if rng.below(10) < 9 {
                                hot[rng.below(hot.len() as u64) as usize]
                            } else {
                                keys[rng.below(keys.len() as u64) as usize]
                            }
                        })
                        .collect()
                })
                .collect();
            g.bench_with_input(
                BenchmarkId::new("megaflow_hit_skewed90", n_masks),
                &n_masks,
                |bch, _| {
                    bch.iter(|| {
                        c.lookup_batch(&batches[bi & 63], &mut out);
                        bi += 1;
                        black_box(&out);
                    })
                },
            );
        }
    }
    g.finish();
}

/// One policy's clause values: from-addresses, to-Pods (address or reg1 port), ports.
struct Policy {
    srcs: Vec<u32>,
    dsts: Vec<(bool, u32)>,
    ports: Vec<u16>,
}

/// An Antrea-style NetworkPolicy table: `n_policies` conjunctions with 3 clauses (from-address
/// nw_src, to-Pod nw_dst or reg1, destination port), clause flows at 200 shared between
/// policies (a shared flow accumulates conjunction actions), action flows `conj_id=N` at 190,
/// and a default flow. Returns the classifier, the number of flows and the policies.
fn policy_table(n_policies: u32) -> (Classifier<u32>, usize, Vec<Policy>) {
    let mut rng = Rng(42);
    let mut clauses: HashMap<Match, Vec<Conjunction>> = HashMap::new();
    let exact = |pairs: &[(xvs_packet::KeyField, u64)]| {
        let mut val = FlowKey::ZERO;
        let mut m = FlowKey::ZERO;
        for &(f, v) in pairs {
            val.set(f, v);
            m.set(f, u64::MAX);
        }
        Match::new(val, m)
    };
    let mut policies = Vec::new();
    for id in 1..=n_policies {
        let conj = |clause| Conjunction {
            id,
            clause,
            n_clauses: 3,
        };
        let p = Policy {
            srcs: (0..5)
                .map(|_| 0x0a0a_0000 + rng.below(20_000) as u32)
                .collect(),
            dsts: (0..4)
                .map(|_| (rng.below(2) == 0, 0x0a14_0000 + rng.below(5_000) as u32))
                .collect(),
            ports: (0..2).map(|_| 1000 + 7 * rng.below(50) as u16).collect(),
        };
        for &s in &p.srcs {
            let m = exact(&[(ETH_TYPE, 0x0800), (NW_SRC, u64::from(s))]);
            clauses.entry(m).or_default().push(conj(1));
        }
        for &(by_reg, d) in &p.dsts {
            let m = if by_reg {
                exact(&[(reg(1), u64::from(d & 0xffff))])
            } else {
                exact(&[(ETH_TYPE, 0x0800), (NW_DST, u64::from(d))])
            };
            clauses.entry(m).or_default().push(conj(2));
        }
        for &port in &p.ports {
            let m = exact(&[(ETH_TYPE, 0x0800), (NW_PROTO, 6), (TP_DST, u64::from(port))]);
            clauses.entry(m).or_default().push(conj(3));
        }
        policies.push(p);
    }
    let mut cls = Classifier::new();
    let mut b = cls.bundle();
    let mut n = 0;
    for (m, conj) in &clauses {
        b.insert(m, 200, 0, conj).unwrap();
        n += 1;
    }
    for id in 1..=n_policies {
        b.insert(&exact(&[(CONJ_ID, u64::from(id))]), 190, id, &[])
            .unwrap();
        n += 1;
    }
    b.insert(&Match::catchall(), 0, 0, &[]).unwrap();
    b.commit();
    (cls, n + 1, policies)
}

fn classifier_benches(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("classifier");
    g.throughput(Throughput::Elements(1));
    let (cls, n_flows, policies) = policy_table(1200);
    let snap = cls.snapshot().clone();
    let mut rng = Rng(5);
    // Half the keys satisfy a random policy, half are random addresses from the same ranges.
    let keys: Vec<FlowKey> = (0..4096)
        .map(|i| {
            let (s, (by_reg, d), port) = if i % 2 == 0 {
                let p = &policies[rng.below(policies.len() as u64) as usize];
                (
                    p.srcs[rng.below(5) as usize],
                    p.dsts[rng.below(4) as usize],
                    p.ports[rng.below(2) as usize],
                )
            } else {
                (
                    0x0a0a_0000 + rng.below(20_000) as u32,
                    (rng.below(2) == 0, 0x0a14_0000 + rng.below(5_000) as u32),
                    1000 + 7 * rng.below(50) as u16,
                )
            };
            let mut k = tcp_key(s, d, 40000, port);
            if by_reg {
                k.set_reg(1, d & 0xffff);
                k.set(NW_DST, 0x0a1f_0000 + rng.below(60_000));
            } else {
                k.set_reg(1, 0xffff_0000 | rng.below(60_000) as u32);
            }
            k
        })
        .collect();
    let mut scratch = LookupScratch::new();
    let (mut conj_hits, mut wc_bits) = (0u64, 0u64);
    for k in &keys {
        let mut wc = FlowKey::ZERO;
        if let Some(r) = snap.lookup_with(k, &mut wc, &mut scratch) {
            conj_hits += u64::from(*r.payload() != 0);
        }
        wc_bits += wc
            .words
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum::<u64>();
    }
    eprintln!(
        "policy table: {n_flows} flows, {} subtables; {conj_hits}/{} sample keys hit a conjunction; \
         avg {:.1} unwildcarded bits",
        snap.n_subtables(),
        keys.len(),
        wc_bits as f64 / keys.len() as f64
    );
    let mut i = 0;
    g.bench_function(format!("policy_lookup_{n_flows}_flows"), |b| {
        b.iter(|| {
            let mut wc = FlowKey::ZERO;
            let r = snap.lookup_with(&keys[i & 4095], &mut wc, &mut scratch);
            i += 1;
            black_box((r.map(|r| *r.payload()), wc.words[28]))
        })
    });
    g.finish();
}

/// The alternative exact-cache hash: only the non-zero words, plus the bitmap of which words
/// are non-zero (OVS miniflow style), folded sequentially.
fn sparse_hash(k: &FlowKey) -> u64 {
    let mut map = 0u64;
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for (i, &w) in k.words.iter().enumerate() {
        if w != 0 {
            map |= 1 << i;
            let p = u128::from(h ^ w) * 0x9e37_79b9_7f4a_7c15u128;
            h = (p as u64) ^ ((p >> 64) as u64);
        }
    }
    let p = u128::from(h ^ map) * 0xbf58_476d_1ce4_e5b9u128;
    (p as u64) ^ ((p >> 64) as u64)
}

/// The all-40-words variant of the exact-cache hash (20 multiplies), for comparison.
fn full_hash(k: &FlowKey, keys: &[u64; 40]) -> u64 {
    let mut acc = 0u64;
    for i in 0..20 {
        let p = u128::from(k.words[2 * i] ^ keys[2 * i])
            * u128::from(k.words[2 * i + 1] ^ keys[2 * i + 1]);
        acc = acc.wrapping_add((p as u64) ^ ((p >> 64) as u64));
    }
    let p = u128::from(acc) * 0xbf58_476d_1ce4_e5b9u128;
    (p as u64) ^ ((p >> 64) as u64)
}

fn hash_and_admission_benches(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("exact");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut rng = Rng(3);
    let keys: Vec<FlowKey> = (0..BATCH)
        .map(|_| {
            tcp_key(
                rng.next() as u32,
                rng.next() as u32,
                rng.next() as u16,
                rng.next() as u16,
            )
        })
        .collect();
    let e = xvs_classifier::ExactCache::new(1024, Insertion::Always);
    let hkeys: [u64; 40] =
        std::array::from_fn(|i| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1));
    g.bench_function("hash_all_40_words_pairs", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                acc ^= full_hash(black_box(k), &hkeys);
            }
            acc
        })
    });
    g.bench_function("hash_16_words_pairs", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                acc ^= e.hash(black_box(k));
            }
            acc
        })
    });
    g.bench_function("hash_nonzero_words_fold", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                acc ^= sparse_hash(black_box(k));
            }
            acc
        })
    });
    // 100k active flows over one megaflow mask, a 32k-slot exact tier: always-on admission
    // thrashes it, 1-in-100 admission keeps it mostly stable.
    for (name, policy) in [
        ("always", Insertion::Always),
        ("one_in_100", Insertion::OneIn(100)),
    ] {
        let mut c = DatapathCache::new(CacheConfig {
            exact_insertion: policy,
            ..CacheConfig::default()
        });
        c.begin_batch(1);
        let mut mask = FlowKey::ZERO;
        mask.set(NW_DST, u64::from(u32::MAX));
        mask.set(ETH_TYPE, 0xffff);
        for d in 0..1000u32 {
            c.insert(&tcp_key(0, 0x0a00_0000 + d, 0, 0), &mask, d, 1)
                .unwrap();
        }
        let flows: Vec<FlowKey> = (0..100_000u32)
            .map(|i| tcp_key(0x0b00_0000 + i, 0x0a00_0000 + i % 1000, 1000, 80))
            .collect();
        // 4096 batches: a random walk over the 100k flows, far longer than the exact tier.
        let batches: Vec<Vec<FlowKey>> = (0..4096)
            .map(|_| {
                (0..BATCH)
                    .map(|_| flows[rng.below(flows.len() as u64) as usize])
                    .collect()
            })
            .collect();
        let mut out = vec![None::<MegaflowId>; BATCH];
        let mut bi = 0;
        g.bench_function(format!("thrash_100k_flows_{name}"), |b| {
            b.iter(|| {
                c.lookup_batch(&batches[bi & 4095], &mut out);
                bi += 1;
                black_box(&out);
            })
        });
        let s = c.stats();
        eprintln!(
            "thrash {name}: exact hits {} megaflow hits {} exact inserts {}",
            s.exact_hits, s.megaflow_hits, s.exact_inserts
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion::Criterion::default().with_measurement(CpuTime);
    targets = cache_benches, hash_and_admission_benches, classifier_benches
}

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Bundle insertion of `n` rules over 4 masks (nw_src/32, nw_src/32+nw_dst/24, in_port+nw_dst/32,
/// tp_dst), then a single-rule commit into the resulting table.
fn insertion_report(n: u32) {
    let rules: Vec<(Match, u32)> = (0..n)
        .map(|i| {
            let mut v = FlowKey::ZERO;
            let mut m = FlowKey::ZERO;
            v.set(ETH_TYPE, 0x0800);
            m.set(ETH_TYPE, 0xffff);
            match i % 4 {
                0 => {
                    v.set(NW_SRC, u64::from(i));
                    m.set(NW_SRC, u64::from(u32::MAX));
                }
                1 => {
                    v.set(NW_SRC, u64::from(i));
                    m.set(NW_SRC, u64::from(u32::MAX));
                    v.set(NW_DST, 0x0a00_0000);
                    m.set(NW_DST, 0xffff_ff00);
                }
                2 => {
                    v.set(IN_PORT, u64::from(i % 64));
                    m.set(IN_PORT, u64::from(u32::MAX));
                    v.set(NW_DST, u64::from(i));
                    m.set(NW_DST, u64::from(u32::MAX));
                }
                _ => {
                    v.set(reg(1), u64::from(i));
                    m.set(reg(1), u64::from(u32::MAX));
                }
            }
            (Match::new(v, m), 100 + i % 3)
        })
        .collect();
    let before = rss();
    let t = thread_cpu_ns();
    let mut cls: Classifier<u64> = Classifier::new();
    let mut b = cls.bundle();
    for (i, (m, p)) in rules.iter().enumerate() {
        b.insert(m, *p, i as u64, &[]).unwrap();
    }
    b.commit();
    let dt = std::time::Duration::from_nanos(thread_cpu_ns() - t);
    let mem = rss().saturating_sub(before);
    // One more rule, its own bundle: the copy-on-write cost in a big table.
    let t1 = thread_cpu_ns();
    let reps = 100;
    for r in 0..reps {
        let mut v = FlowKey::ZERO;
        let mut m = FlowKey::ZERO;
        v.set(NW_SRC, u64::from(u32::MAX - r));
        m.set(NW_SRC, u64::from(u32::MAX));
        v.set(ETH_TYPE, 0x0800);
        m.set(ETH_TYPE, 0xffff);
        let mut b = cls.bundle();
        b.insert(&Match::new(v, m), 100, 0, &[]).unwrap();
        b.commit();
    }
    let single = std::time::Duration::from_nanos(thread_cpu_ns() - t1) / reps;
    eprintln!(
        "insertion {n} rules in one bundle: {:.0} ms (cpu), {:.2} M rules/s, RSS +{:.0} B/rule \
         (payload 8 B); one-rule commit into it: {:.1} us (cpu)",
        dt.as_secs_f64() * 1e3,
        f64::from(n) / dt.as_secs_f64() / 1e6,
        mem as f64 / f64::from(n),
        single.as_secs_f64() * 1e6
    );
    drop(cls);
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a.parse::<f64>().is_err());
    if filter.as_deref().is_none_or(|f| "insertion".contains(f)) {
        insertion_report(100_000);
        insertion_report(1_000_000);
    }
    benches();
    criterion::Criterion::default()
        .with_measurement(CpuTime)
        .configure_from_args()
        .final_summary();
}
