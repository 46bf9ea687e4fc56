//! Translation and bulk-load benchmarks over the Antrea-style pipeline of
//! `tests/common/antrea.rs`.
//!
//! - `translate/antrea_base`: the same walk without the extra rules (no conjunction matches).
//! - `translate/antrea_10k_rules`: translations per second (one table walk per packet, as on a
//!   megaflow miss) with 10k conjunction-based egress rules: each packet's lookup in EgressRule
//!   gathers ~120 conjunction clauses (one source clause, a destination clause shared by 100
//!   rules, a port clause shared by 20).
//! - `load/100k_flows`: parse an `add-flows` text of ~100k flows and commit it as one bundle;
//!   `commit/100k_flows` commits pre-parsed mods only.
//! - Before the groups run, the resident-memory growth per flow of a 100k-flow pipeline is
//!   printed (RSS delta from /proc, an upper bound: allocator slack included).
//!
//! Run: `cargo bench -p xvs-flowtable --bench translate` (short: a shared machine).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/antrea.rs"]
mod antrea;

use std::time::Duration;

use antrea::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xvs_flowtable::pipeline::{load_flows, parse_flows, Pipeline};
use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
use xvs_flowtable::NameMap;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

const RULES: usize = 10_000;
/// Rules generating about 100k flows (a conj_id flow, a source clause and a default drop
/// each, plus the shared clauses and the base pipeline).
const RULES_FOR_100K: usize = 33_150;

fn key(i: usize, allowed: bool) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set(layout::IN_PORT, u64::from(TUN_PORT));
    k.set(layout::ETH_TYPE, 0x0800);
    k.set(layout::ETH_SRC, mac(GVMAC));
    k.set(layout::ETH_DST, mac(GW_MAC));
    k.set(
        layout::NW_SRC,
        u64::from(u32::from_be_bytes([
            10,
            20,
            ((i / 250) % 250) as u8,
            (i % 250 + 1) as u8,
        ])),
    );
    k.set(
        layout::NW_DST,
        u64::from(u32::from_be_bytes([10, 30, (i % 100) as u8, 9])),
    );
    k.set(layout::NW_PROTO, 6);
    k.set(layout::NW_TTL, 64);
    k.set(layout::TP_SRC, 40000 + (i % 1000) as u64);
    let port = 1000 + (i % 500) as u64;
    k.set(layout::TP_DST, if allowed { port } else { port + 1 });
    k
}

fn mac(m: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn bench_translate(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate");
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(20);
    for (name, rules) in [("antrea_base", 0usize), ("antrea_10k_rules", RULES)] {
        let mut p = Pipeline::new();
        load_flows(&mut p, &antrea_flows(rules), &NameMap::new(), 0).unwrap();
        let snap = p.snapshot().clone();
        let keys: Vec<FlowKey> = (0..1024)
            .map(|j| key((j * 7919) % RULES, j % 4 != 0))
            .collect();
        let mut out = Translation::new();
        let mut scratch = TranslateScratch::new();
        if rules > 0 {
            // Sanity: allowed keys reach the gateway, denied ones are dropped.
            translate(&snap, &keys[1], 0, &mut scratch, &mut out);
            assert!(!out.is_drop(), "{:?}", out.actions);
            translate(&snap, &keys[0], 0, &mut scratch, &mut out);
            assert!(out.is_drop());
        }
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut outputs = 0usize;
                for k in &keys {
                    translate(&snap, k, 0, &mut scratch, &mut out);
                    outputs += out.actions.len();
                }
                outputs
            })
        });
    }
    g.finish();
}

fn bench_load(c: &mut Criterion) {
    let text = antrea_flows(RULES_FOR_100K);
    let names = NameMap::new();
    let n_flows = {
        let before = rss_bytes();
        let mut p = Pipeline::new();
        load_flows(&mut p, &text, &names, 0).unwrap();
        let n = p.snapshot().n_flows();
        if let (Some(a), Some(b)) = (before, rss_bytes()) {
            eprintln!(
                "memory: {n} flows, RSS +{:.1} MiB, {:.0} bytes/flow (upper bound, shared machine)",
                b.saturating_sub(a) as f64 / (1 << 20) as f64,
                b.saturating_sub(a) as f64 / n as f64
            );
        }
        n
    };
    let mut g = c.benchmark_group("load");
    g.throughput(Throughput::Elements(n_flows as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("100k_flows", |b| {
        b.iter(|| {
            let mut p = Pipeline::new();
            load_flows(&mut p, &text, &names, 0).unwrap();
            p
        })
    });
    let mods = parse_flows(&text, &names).unwrap();
    g.bench_function("commit_100k_flows", |b| {
        b.iter_batched(
            Pipeline::new,
            |mut p| {
                p.commit(&mods, 0).unwrap();
                p
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_translate, bench_load);
criterion_main!(benches);
