//! The datapath caches: exact-match and megaflow tiers, capacity, versions, ranking, counters.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod common;

use common::key;
use xvs_classifier::{
    CacheConfig, DatapathCache, ExactCache, InsertError, Insertion, MegaflowCache, MegaflowConfig,
    EXACT_MAX_BACKOFF, EXACT_WINDOW,
};
use xvs_packet::key::layout::*;
use xvs_packet::FlowKey;

fn mask(fields: &[(xvs_packet::KeyField, u64)]) -> FlowKey {
    key(fields)
}

fn small(capacity: u32, max_subtables: u16) -> MegaflowConfig {
    MegaflowConfig {
        capacity,
        max_subtables,
        resort_interval: 8,
    }
}

#[test]
fn megaflow_hit_miss_and_masking() {
    let mut mf: MegaflowCache<&str> = MegaflowCache::new(MegaflowConfig::default());
    let m = mask(&[(NW_DST, 0xffff_ff00)]);
    let id = mf
        .insert(
            &key(&[(NW_DST, 0x0a00_0001), (TP_DST, 80)]),
            &m,
            "to-net",
            0,
        )
        .unwrap();
    assert_eq!(
        mf.lookup(&key(&[(NW_DST, 0x0a00_00fe), (TP_DST, 22)])),
        Some(id)
    );
    assert_eq!(mf.lookup(&key(&[(NW_DST, 0x0a00_0101)])), None);
    assert_eq!(mf.get(id), Some(&"to-net"));
    assert_eq!(mf.hits(id), Some(1));
    let s = mf.stats();
    assert_eq!((s.hits, s.misses, s.inserted), (1, 1, 1));
    let dumped: Vec<_> = mf.iter().map(|e| (*e.key, *e.mask, *e.actions)).collect();
    assert_eq!(dumped, vec![(key(&[(NW_DST, 0x0a00_0000)]), m, "to-net")]);
}

#[test]
fn full_cache_refuses_and_counts() {
    let mut mf: MegaflowCache<u32> = MegaflowCache::new(small(4, 8));
    let m = mask(&[(TP_DST, 0xffff)]);
    for p in 0..4 {
        mf.insert(&key(&[(TP_DST, p)]), &m, p as u32, 0).unwrap();
    }
    assert_eq!(
        mf.insert(&key(&[(TP_DST, 9)]), &m, 9, 0),
        Err(InsertError::Full)
    );
    assert_eq!(mf.stats().refused_full, 1);
    assert_eq!(mf.len(), 4);
    // Removing one makes room.
    let id = mf.lookup(&key(&[(TP_DST, 2)])).unwrap();
    assert_eq!(mf.remove(id), Some(2));
    assert_eq!(mf.remove(id), None);
    assert!(mf.lookup(&key(&[(TP_DST, 2)])).is_none());
    mf.insert(&key(&[(TP_DST, 9)]), &m, 9, 0).unwrap();
    assert_eq!(mf.len(), 4);
}

#[test]
fn mask_limit_refuses_then_reuses_empty_subtables() {
    let mut mf: MegaflowCache<u32> = MegaflowCache::new(small(16, 2));
    // Disjoint megaflows (they differ in tp_dst), as translation produces them.
    mf.insert(&key(&[(TP_DST, 1)]), &mask(&[(TP_DST, 0xffff)]), 1, 0)
        .unwrap();
    mf.insert(
        &key(&[(TP_DST, 2), (NW_DST, 1)]),
        &mask(&[(TP_DST, 0xffff), (NW_DST, 0xffff_ffff)]),
        2,
        0,
    )
    .unwrap();
    let third = mask(&[(TP_DST, 0xffff), (IN_PORT, 0xffff_ffff)]);
    assert_eq!(
        mf.insert(&key(&[(TP_DST, 3), (IN_PORT, 3)]), &third, 3, 0),
        Err(InsertError::TooManyMasks)
    );
    assert_eq!(mf.stats().refused_masks, 1);
    mf.flush(1);
    assert!(mf.is_empty());
    assert_eq!(mf.n_subtables(), 0);
    mf.insert(&key(&[(TP_DST, 3), (IN_PORT, 3)]), &third, 3, 1)
        .unwrap();
    let id = mf.lookup(&key(&[(TP_DST, 3), (IN_PORT, 3)]));
    assert_eq!(id.and_then(|id| mf.get(id)), Some(&3));
}

#[test]
fn stale_translation_is_refused() {
    let mut mf: MegaflowCache<u32> = MegaflowCache::new(MegaflowConfig::default());
    mf.set_version(5);
    assert_eq!(
        mf.insert(&FlowKey::ZERO, &FlowKey::ZERO, 1, 4),
        Err(InsertError::StaleVersion {
            built: 4,
            current: 5
        })
    );
    assert_eq!(mf.stats().refused_stale, 1);
    assert!(!mf.set_version(5));
    assert!(mf.set_version(6));
}

#[test]
fn duplicate_insert_returns_the_covering_entry() {
    let mut mf: MegaflowCache<u32> = MegaflowCache::new(MegaflowConfig::default());
    let m = mask(&[(TP_DST, 0xffff)]);
    let a = mf
        .insert(&key(&[(TP_DST, 80), (NW_SRC, 1)]), &m, 1, 0)
        .unwrap();
    let b = mf
        .insert(&key(&[(TP_DST, 80), (NW_SRC, 2)]), &m, 2, 0)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(mf.get(a), Some(&1));
    assert_eq!((mf.len(), mf.stats().duplicates), (1, 1));
}

#[test]
fn subtables_are_ranked_by_hits() {
    let mut mf: MegaflowCache<u32> = MegaflowCache::new(small(64, 8));
    // Five masks; the busiest one is created last. tp_src keeps the megaflows disjoint.
    let fields = [IN_PORT, reg(0), ETH_TYPE, NW_PROTO, TP_DST];
    for (i, f) in fields.iter().enumerate() {
        let mut m = FlowKey::ZERO;
        m.set(*f, 0xff);
        m.set(TP_SRC, 0xffff);
        let mut k = FlowKey::ZERO;
        k.set(*f, 7);
        k.set(TP_SRC, i as u64);
        mf.insert(&k, &m, i as u32, 0).unwrap();
    }
    let hot = key(&[(TP_DST, 7), (TP_SRC, 4)]);
    for _ in 0..8 {
        assert!(mf.lookup(&hot).is_some());
    }
    assert_eq!(mf.stats().subtable_lookups_on_hit, 8 * 5);
    assert_eq!(mf.stats().resorts, 1);
    let before = mf.stats().subtable_lookups_on_hit;
    for _ in 0..8 {
        mf.lookup(&hot);
    }
    // Now probed first.
    assert_eq!(mf.stats().subtable_lookups_on_hit - before, 8);
}

#[test]
fn batch_lookup_goes_exact_then_megaflow_and_flushes_on_version_change() {
    // The exact tier's own behaviour: without the previous-answer check in front of it.
    let mut c: DatapathCache<u32> = DatapathCache::new(CacheConfig {
        repeat_first: false,
        ..CacheConfig::default()
    });
    assert!(c.begin_batch(1));
    let keys: Vec<FlowKey> = (0..100u64)
        .map(|i| key(&[(NW_DST, 0x0a00_0000 + (i % 10)), (TP_SRC, 1000 + i)]))
        .collect();
    let mut out = vec![None; keys.len()];
    c.lookup_batch(&keys, &mut out);
    assert!(out.iter().all(Option::is_none));
    assert_eq!(c.stats().misses, 100);
    let m = mask(&[(NW_DST, 0xffff_ffff)]);
    for k in &keys[..10] {
        c.insert(k, &m, k.get(NW_DST) as u32, 1).unwrap();
    }
    c.lookup_batch(&keys, &mut out);
    for (k, o) in keys.iter().zip(&out) {
        assert_eq!(c.actions(o.unwrap()), Some(&(k.get(NW_DST) as u32)));
    }
    assert_eq!(c.stats().megaflow_hits, 100);
    assert_eq!(c.stats().exact_inserts, 100);
    c.lookup_batch(&keys, &mut out);
    assert_eq!(c.stats().exact_hits, 100);
    // Ten keys per megaflow, two passes.
    assert_eq!(c.megaflow().hits(out[0].unwrap()), Some(20));
    // Same version: nothing happens. New version: both tiers are empty at once.
    assert!(!c.begin_batch(1));
    assert!(c.begin_batch(2));
    c.lookup_batch(&keys, &mut out);
    assert!(out.iter().all(Option::is_none));
    assert_eq!(c.stats().misses, 200);
    assert_eq!(c.stats().flushes, 2);
    // Refill with different answers: the exact tier must not resurrect old ones.
    for k in &keys[..10] {
        c.insert(k, &m, 1000 + k.get(NW_DST) as u32, 2).unwrap();
    }
    c.lookup_batch(&keys, &mut out);
    for (k, o) in keys.iter().zip(&out) {
        assert_eq!(c.actions(o.unwrap()), Some(&(1000 + k.get(NW_DST) as u32)));
    }
    assert_eq!(
        c.insert(&keys[0], &m, 0, 1),
        Err(InsertError::StaleVersion {
            built: 1,
            current: 2
        })
    );
}

#[test]
fn exact_tier_admission_policies() {
    for (policy, expect_exact) in [
        (Insertion::Never, false),
        (Insertion::OneIn(4), true),
        (Insertion::Always, true),
    ] {
        let mut c: DatapathCache<u32> = DatapathCache::new(CacheConfig {
            repeat_first: false,
            exact_insertion: policy,
            ..CacheConfig::default()
        });
        c.begin_batch(1);
        c.insert(&FlowKey::ZERO, &FlowKey::ZERO, 7, 1).unwrap();
        let keys: Vec<FlowKey> = (0..64u64).map(|i| key(&[(TP_SRC, i)])).collect();
        let mut out = vec![None; keys.len()];
        for _ in 0..8 {
            c.lookup_batch(&keys, &mut out);
        }
        assert!(out.iter().all(|o| o.is_some()));
        assert_eq!(c.stats().exact_hits + c.stats().megaflow_hits, 8 * 64);
        assert_eq!(c.stats().exact_hits > 0, expect_exact, "{policy:?}");
        if policy == Insertion::Always {
            assert_eq!(c.stats().megaflow_hits, 64);
        }
    }
}

#[test]
fn exact_cache_collisions_and_eviction_stay_correct() {
    // A 4-slot exact tier in front of 256 megaflows: constant eviction and signature reuse, and
    // every answer still right.
    let mut c: DatapathCache<u64> = DatapathCache::new(CacheConfig {
        exact_entries: 4,
        ..CacheConfig::default()
    });
    c.begin_batch(1);
    let m = mask(&[(TP_DST, 0xffff)]);
    for p in 0..256u64 {
        c.insert(&key(&[(TP_DST, p)]), &m, p, 1).unwrap();
    }
    let keys: Vec<FlowKey> = (0..1024u64)
        .map(|i| key(&[(TP_DST, i % 256), (TP_SRC, i)]))
        .collect();
    let mut out = vec![None; keys.len()];
    for _ in 0..3 {
        c.lookup_batch(&keys, &mut out);
        for (k, o) in keys.iter().zip(&out) {
            assert_eq!(c.actions(o.unwrap()), Some(&k.get(TP_DST)));
        }
    }
    let e = ExactCache::new(4, Insertion::Always);
    assert_eq!(e.capacity(), 4);
    assert_ne!(e.hash(&keys[0]), e.hash(&keys[1]));
}

#[test]
fn no_batch_started_after_a_commit_uses_older_rules() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use xvs_classifier::{Classifier, Match};

    // The control thread commits generation n (every rule's payload is n), then announces n.
    // A worker that saw announcement n before starting a batch must answer n or newer, from
    // the caches as well as from translation.
    let mut cls: Classifier<u64> = Classifier::new();
    let mut b = cls.bundle();
    b.insert(&Match::catchall(), 0, 0, &[]).unwrap();
    b.commit();
    let mut reader = cls.reader();
    let announced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (ann, stp) = (Arc::clone(&announced), Arc::clone(&stop));
    let worker = std::thread::spawn(move || {
        let mut cache: DatapathCache<u64> = DatapathCache::new(CacheConfig::default());
        let keys: Vec<FlowKey> = (0..32u64).map(|i| key(&[(TP_DST, i % 8)])).collect();
        let mut out = vec![None; keys.len()];
        let mut batches = 0u64;
        while !stp.load(Ordering::Relaxed) {
            let floor = ann.load(Ordering::Acquire);
            let snap = Arc::clone(reader.refresh());
            cache.begin_batch(snap.version());
            cache.lookup_batch(&keys, &mut out);
            for (k, o) in keys.iter().zip(out.iter()) {
                let answer = match o {
                    Some(id) => *cache.actions(*id).unwrap(),
                    None => {
                        let mut wc = FlowKey::ZERO;
                        let a = *snap.lookup(k, &mut wc).unwrap().payload();
                        cache.insert(k, &wc, a, snap.version()).unwrap();
                        a
                    }
                };
                assert!(
                    answer >= floor,
                    "batch after commit {floor} used rules of {answer}"
                );
            }
            batches += 1;
        }
        batches
    });
    for n in 1..=300u64 {
        let mut b = cls.bundle();
        b.delete_loose(&Match::catchall());
        for p in 0..8u64 {
            let mut v = FlowKey::ZERO;
            let mut m = FlowKey::ZERO;
            v.set(TP_DST, p);
            m.set(TP_DST, 0xffff);
            b.insert(&Match::new(v, m), 10, n, &[]).unwrap();
        }
        b.commit();
        announced.store(n, Ordering::Release);
        if n % 50 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(worker.join().unwrap() > 0);
}

#[test]
fn keys_that_differ_only_in_unhashed_words_share_slots_but_get_their_own_answers() {
    // reg3 is not among the exact tier's hashed words: these keys land in the same slot and
    // keep replacing each other there, and every answer must still be right.
    let mut c: DatapathCache<u64> = DatapathCache::new(CacheConfig::default());
    c.begin_batch(1);
    let m = mask(&[(reg(3), 0xffff_ffff)]);
    let keys: Vec<FlowKey> = (0..8u64)
        .map(|r| key(&[(reg(3), r), (TP_DST, 80)]))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        c.insert(k, &m, i as u64, 1).unwrap();
    }
    let mut out = vec![None; keys.len()];
    for _ in 0..4 {
        c.lookup_batch(&keys, &mut out);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(c.actions(o.unwrap()), Some(&(i as u64)));
        }
    }
    assert!(c.stats().megaflow_hits > 8);
}

#[test]
fn absurd_sizes_are_clamped_not_fatal() {
    let e = ExactCache::new(usize::MAX, Insertion::Always);
    assert_eq!(e.capacity(), ExactCache::MAX_ENTRIES);
    let e = ExactCache::new(0, Insertion::Always);
    assert_eq!(e.capacity(), 4);
    let mut mf: MegaflowCache<u8> = MegaflowCache::new(MegaflowConfig {
        capacity: 0,
        max_subtables: 0,
        resort_interval: 0,
    });
    let m = mask(&[(TP_DST, 0xffff)]);
    mf.insert(&key(&[(TP_DST, 1)]), &m, 1, 0).unwrap();
    assert_eq!(
        mf.insert(&key(&[(TP_DST, 2)]), &m, 2, 0),
        Err(InsertError::Full)
    );
    assert_eq!(
        mf.insert(&key(&[(IN_PORT, 2)]), &mask(&[(IN_PORT, 0xffff)]), 3, 0),
        Err(InsertError::TooManyMasks)
    );
    assert_eq!(
        mf.lookup(&key(&[(TP_DST, 1)])).and_then(|id| mf.get(id)),
        Some(&1)
    );
}

/// Looks `keys` up in batches of 32, as a worker does, checking every answer is `expect`.
fn lookup_all(c: &mut DatapathCache<u32>, keys: &[FlowKey], expect: Option<u32>) {
    let mut out = [None; 32];
    for chunk in keys.chunks(32) {
        c.lookup_batch(chunk, &mut out);
        for o in &out[..chunk.len()] {
            assert_eq!(o.and_then(|id| c.actions(id)).copied(), expect);
        }
    }
}

#[test]
fn thrashing_exact_tier_is_bypassed_then_probed_again() {
    let mut c: DatapathCache<u32> = DatapathCache::new(CacheConfig {
        repeat_first: false,
        exact_entries: 64,
        ..CacheConfig::default()
    });
    c.begin_batch(1);
    // One megaflow (mask on in_port only) that every key below matches.
    c.insert(&FlowKey::ZERO, &FlowKey::ZERO, 7, 1).unwrap();
    let many: Vec<FlowKey> = (0..100_000u64).map(|i| key(&[(TP_SRC, i)])).collect();
    lookup_all(&mut c, &many, Some(7));
    let s = *c.stats();
    assert!(s.exact_bypasses >= 1, "{s:?}");
    assert!(s.exact_skipped > 50_000, "{s:?}");
    assert!(c.exact_bypassed());
    // While bypassed, nothing is hashed into or written to the exact tier.
    assert!(s.exact_inserts < 40_000, "{s:?}");
    assert_eq!(s.exact_hits + s.megaflow_hits, 100_000);

    // Then the traffic narrows to one flow: once the back-off runs out, the probation window
    // finds the tier useful again and it stays on.
    let one = vec![key(&[(TP_SRC, 1)]); 32];
    for _ in 0..(u64::from(EXACT_MAX_BACKOFF) * u64::from(EXACT_WINDOW) / 32 + 1000) {
        lookup_all(&mut c, &one, Some(7));
    }
    assert!(!c.exact_bypassed());
    let before = *c.stats();
    for _ in 0..1000 {
        lookup_all(&mut c, &one, Some(7));
    }
    let after = *c.stats();
    assert_eq!(after.exact_hits - before.exact_hits, 32_000);
    assert_eq!(after.exact_skipped, before.exact_skipped);
}

#[test]
fn bypass_can_be_disabled() {
    let mut c: DatapathCache<u32> = DatapathCache::new(CacheConfig {
        exact_entries: 64,
        exact_min_hit_percent: 0,
        ..CacheConfig::default()
    });
    c.begin_batch(1);
    c.insert(&FlowKey::ZERO, &FlowKey::ZERO, 7, 1).unwrap();
    let many: Vec<FlowKey> = (0..50_000u64).map(|i| key(&[(TP_SRC, i)])).collect();
    lookup_all(&mut c, &many, Some(7));
    assert_eq!((c.stats().exact_bypasses, c.stats().exact_skipped), (0, 0));
    assert!(!c.exact_bypassed());
}

#[test]
fn table_changes_invalidate_while_bypassed_and_after() {
    let mut c: DatapathCache<u32> = DatapathCache::new(CacheConfig {
        repeat_first: false,
        exact_entries: 64,
        ..CacheConfig::default()
    });
    c.begin_batch(1);
    let m = mask(&[(TP_DST, 0xffff)]);
    c.insert(&key(&[(TP_DST, 80)]), &m, 1, 1).unwrap();
    let many: Vec<FlowKey> = (0..30_000u64)
        .map(|i| key(&[(TP_DST, 80), (TP_SRC, i)]))
        .collect();
    lookup_all(&mut c, &many, Some(1));
    assert!(c.exact_bypassed());
    // A new version while bypassed: the old answer is gone from every tier.
    assert!(c.begin_batch(2));
    lookup_all(&mut c, &many[..64], None);
    c.insert(&key(&[(TP_DST, 80)]), &m, 2, 2).unwrap();
    lookup_all(&mut c, &many, Some(2));
    // Let the tier come back on with a single flow (its entries now point at version 2's
    // megaflow), then change the version again: the exact entries must not answer.
    let one = vec![many[0]; 32];
    for _ in 0..(u64::from(EXACT_MAX_BACKOFF) * u64::from(EXACT_WINDOW) / 32 + 1000) {
        lookup_all(&mut c, &one, Some(2));
    }
    assert!(!c.exact_bypassed());
    assert!(c.stats().exact_hits > 0);
    assert!(c.begin_batch(3));
    lookup_all(&mut c, &one, None);
    c.insert(&key(&[(TP_DST, 80)]), &m, 3, 3).unwrap();
    lookup_all(&mut c, &one, Some(3));
    // A flush that keeps the version (a port change) clears every tier too.
    c.flush();
    lookup_all(&mut c, &one, None);
}

fn answers(mf: &mut MegaflowCache<&'static str>, keys: &[FlowKey]) -> Vec<Option<&'static str>> {
    let mut out = vec![None; keys.len()];
    let all = if keys.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << keys.len()) - 1
    };
    mf.lookup_masked(keys, all, &mut out);
    out.iter()
        .map(|o| o.and_then(|id| mf.get(id)).copied())
        .collect()
}

#[test]
fn megaflow_last_hit_shortcut_stays_exact_through_removal_reuse_and_flush() {
    let mut mf: MegaflowCache<&'static str> = MegaflowCache::new(MegaflowConfig::default());
    let m = mask(&[(TP_DST, 0xffff)]);
    let a = mf.insert(&key(&[(TP_DST, 80)]), &m, "a", 0).unwrap();
    mf.insert(&key(&[(TP_DST, 443)]), &m, "b", 0).unwrap();
    // Runs of one megaflow, interleaved with the other and with misses.
    let keys: Vec<FlowKey> = (0..48u64)
        .map(|i| {
            key(&[
                (TP_DST, [80, 80, 80, 443, 22][(i % 5) as usize]),
                (TP_SRC, i),
            ])
        })
        .collect();
    let expect: Vec<Option<&str>> = (0..48)
        .map(|i| [Some("a"), Some("a"), Some("a"), Some("b"), None][i % 5])
        .collect();
    for _ in 0..3 {
        assert_eq!(answers(&mut mf, &keys), expect);
    }
    let hits = expect.iter().filter(|e| e.is_some()).count() as u64;
    assert_eq!(mf.stats().hits, 3 * hits);
    assert_eq!(mf.stats().misses, 3 * (48 - hits));
    assert_eq!(mf.stats().subtable_lookups_on_hit, 3 * hits);
    assert_eq!(mf.hits(a), Some(3 * 30));
    // The last hit was "a" (or "b"); remove "a" and reuse its slot for another megaflow.
    mf.remove(a).unwrap();
    let port80 = vec![key(&[(TP_DST, 80), (TP_SRC, 7)]); 8];
    assert_eq!(answers(&mut mf, &port80), vec![None; 8]);
    let c = mf.insert(&key(&[(TP_DST, 22)]), &m, "c", 0).unwrap();
    assert_eq!(c, a, "the freed slot is reused");
    let port22 = vec![key(&[(TP_DST, 22), (TP_SRC, 7)]); 8];
    assert_eq!(answers(&mut mf, &port22), vec![Some("c"); 8]);
    assert_eq!(answers(&mut mf, &port80), vec![None; 8]);
    // A flush (new version) kills the remembered entry too.
    mf.flush(1);
    assert_eq!(answers(&mut mf, &port22), vec![None; 8]);
}

#[test]
fn previous_answer_is_tried_first_and_stays_exact() {
    let mut c: DatapathCache<u32> = DatapathCache::new(CacheConfig::default());
    c.begin_batch(1);
    let m = mask(&[(TP_DST, 0xffff)]);
    c.insert(&key(&[(TP_DST, 80)]), &m, 80, 1).unwrap();
    c.insert(&key(&[(TP_DST, 443)]), &m, 443, 1).unwrap();
    // Runs of one megaflow, a switch, and keys no megaflow covers.
    let ports = [80u64, 80, 80, 443, 443, 22, 80];
    let keys: Vec<FlowKey> = (0..70u64)
        .map(|i| key(&[(TP_DST, ports[(i % 7) as usize]), (TP_SRC, i)]))
        .collect();
    let mut out = vec![None; keys.len()];
    for _ in 0..3 {
        c.lookup_batch(&keys, &mut out);
        for (k, o) in keys.iter().zip(&out) {
            let want = k.get(TP_DST);
            let got = o.and_then(|id| c.actions(id)).copied();
            assert_eq!(got, (want != 22).then_some(want as u32));
        }
    }
    let s = *c.stats();
    assert!(s.repeat_hits > 50, "{s:?}");
    assert_eq!(s.exact_hits + s.megaflow_hits, 3 * 60);
    assert_eq!(s.misses, 3 * 10);
    // A new version: the previous answer dies with the rest.
    assert!(c.begin_batch(2));
    let same = vec![key(&[(TP_DST, 80)]); 8];
    let mut out = vec![None; 8];
    c.lookup_batch(&same, &mut out);
    assert!(out.iter().all(Option::is_none));
    c.insert(&key(&[(TP_DST, 80)]), &m, 8080, 2).unwrap();
    c.lookup_batch(&same, &mut out);
    assert!(out
        .iter()
        .all(|o| o.and_then(|id| c.actions(id)) == Some(&8080)));
    // Removing the entry the check remembers: no answer from it afterwards.
    let id = out[0].unwrap();
    c.megaflow_mut().remove(id);
    c.lookup_batch(&same, &mut out);
    assert!(out.iter().all(Option::is_none));
}

/// The per-subtable `recirc_id` filter: with many recirc ids per subtable (so that filter bits
/// collide), masks with and without an exact `recirc_id`, every key is answered as a
/// brute-force scan of the entries answers, by single and by batch lookups, before and after
/// removals and a flush.
#[test]
fn megaflow_recirc_filter_never_hides_an_entry() {
    let mut mf: MegaflowCache<u32> = MegaflowCache::new(MegaflowConfig::default());
    let exact_recirc = RECIRC_ID.max_value();
    // Three masks that match recirc_id exactly and one that ignores it (a generic user of the
    // cache): the filter must not skip the latter.
    let masks = [
        mask(&[(RECIRC_ID, exact_recirc), (IN_PORT, 0xffff)]),
        mask(&[
            (RECIRC_ID, exact_recirc),
            (IN_PORT, 0xffff),
            (TP_DST, 0xffff),
        ]),
        mask(&[(RECIRC_ID, exact_recirc), (NW_DST, 0xffff_ffff)]),
        mask(&[
            (IN_PORT, 0xffff),
            (NW_SRC, 0xffff_ffff),
            (NW_DST, 0xff00_0000),
        ]),
    ];
    let mut entries: Vec<(FlowKey, FlowKey, u32)> = Vec::new();
    let mut next = 0u32;
    // Disjoint by construction: each mask owns its own range of in_port / nw values.
    for r in 0..600u64 {
        let m = (r % 3) as usize;
        let k = key(&[
            (RECIRC_ID, r),
            (IN_PORT, 1000 + (m as u64)),
            (TP_DST, r),
            (NW_DST, 0x0a00_0000 + r),
        ]);
        mf.insert(&k, &masks[m], next, 0).unwrap();
        entries.push((k.masked(&masks[m]), masks[m], next));
        next += 1;
    }
    for p in 0..50u64 {
        let k = key(&[
            (IN_PORT, 2000 + p),
            (NW_SRC, 0x0b00_0000 + p),
            (NW_DST, 0x0c00_0000),
            (RECIRC_ID, 77),
        ]);
        mf.insert(&k, &masks[3], next, 0).unwrap();
        entries.push((k.masked(&masks[3]), masks[3], next));
        next += 1;
    }
    let probe_keys: Vec<FlowKey> = (0..1200u64)
        .map(|i| {
            key(&[
                (RECIRC_ID, i % 700),
                (
                    IN_PORT,
                    if i % 5 == 0 {
                        2000 + i % 60
                    } else {
                        1000 + i % 3
                    },
                ),
                (TP_DST, i % 650),
                (
                    NW_DST,
                    if i % 5 == 0 {
                        0x0c00_0000
                    } else {
                        0x0a00_0000 + i % 620
                    },
                ),
                (NW_SRC, 0x0b00_0000 + i % 60),
            ])
        })
        .collect();
    let check = |mf: &mut MegaflowCache<u32>, entries: &[(FlowKey, FlowKey, u32)]| {
        for chunk in probe_keys.chunks(64) {
            let mut out = vec![None; chunk.len()];
            let pending = mf.lookup_masked(chunk, u64::MAX, &mut out);
            for (j, k) in chunk.iter().enumerate() {
                let want = entries
                    .iter()
                    .find(|(mk, m, _)| k.masked(m) == *mk)
                    .map(|e| e.2);
                let single = mf.lookup(k).and_then(|id| mf.get(id).copied());
                let batch = out[j].and_then(|id| mf.get(id).copied());
                assert_eq!(single, want, "single lookup of {k:?}");
                assert_eq!(batch, want, "batch lookup of {k:?}");
                assert_eq!(pending & (1 << j) != 0, want.is_none());
            }
        }
    };
    check(&mut mf, &entries);
    // Remove every third entry (filter bits stay: they may only cost probes).
    let ids: Vec<_> = mf.iter().map(|e| (e.id, *e.actions)).collect();
    for (id, a) in ids {
        if a % 3 == 0 {
            mf.remove(id);
        }
    }
    entries.retain(|e| e.2 % 3 != 0);
    check(&mut mf, &entries);
    // A flush restarts the subtables (and their filters) in a new generation.
    mf.flush(1);
    entries.clear();
    let k = key(&[(RECIRC_ID, 5), (IN_PORT, 1000)]);
    mf.insert(&k, &masks[0], 9999, 1).unwrap();
    entries.push((k.masked(&masks[0]), masks[0], 9999));
    check(&mut mf, &entries);
}
