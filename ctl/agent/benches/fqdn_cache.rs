//! Cost of the FQDN cache at Antrea's limits: 10,000 tracked names under 10 wildcard
//! selectors (1,000 each). Measured: a Pod's answer for a new name (tracked, then the least
//! recently resolved name evicted by the total limit), a Pod's answer for a known name
//! (recency refreshed, nothing new), and the scan for due re-queries (nothing due), which
//! the agent runs between packet-ins.

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use xvs_agent::anp::fqdn::{FqdnCache, MAX_WILDCARD_NAMES};

const SELECTORS: usize = 10;

fn selector(i: usize) -> BTreeSet<String> {
    BTreeSet::from([format!("*.s{}.com", i % SELECTORS)])
}

fn name(i: usize) -> String {
    format!("n{i}.s{}.com", i % SELECTORS)
}

fn full() -> FqdnCache {
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 10, 0, 4), 53);
    let mut c = FqdnCache::new(0);
    for i in 0..MAX_WILDCARD_NAMES {
        c.learn(
            &name(i),
            &selector(i),
            &[(Ipv4Addr::from(i as u32), 3600)],
            server,
            Duration::ZERO,
        );
    }
    assert_eq!(c.len(), MAX_WILDCARD_NAMES);
    c
}

fn bench(cr: &mut Criterion) {
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 10, 0, 4), 53);
    let mut c = full();
    let mut i = MAX_WILDCARD_NAMES;
    cr.bench_function("fqdn learn new name, evicting (10k names)", |b| {
        b.iter(|| {
            i += 1;
            black_box(c.learn(
                &name(i),
                &selector(i),
                &[(Ipv4Addr::from(i as u32), 3600)],
                server,
                Duration::from_secs(1),
            ))
        })
    });
    let mut c = full();
    let mut j = 0;
    cr.bench_function("fqdn learn known name (10k names)", |b| {
        b.iter(|| {
            j = (j + 7) % MAX_WILDCARD_NAMES;
            black_box(c.learn(
                &name(j),
                &selector(j),
                &[(Ipv4Addr::from(j as u32), 3600)],
                server,
                Duration::from_secs(1),
            ))
        })
    });
    let mut c = full();
    cr.bench_function("fqdn due scan, nothing due (10k names)", |b| {
        b.iter(|| black_box(c.due(Duration::from_secs(2)).len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
