//! Property tests: the classifier against a brute-force scan, its wildcard masks, and the
//! datapath caches against the classifier, across random table changes.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod common;

use common::{cj, RefTable};
use proptest::prelude::*;
use xvs_classifier::{CacheConfig, Classifier, Conjunction, DatapathCache, Insertion, Match};
use xvs_packet::key::layout::*;
use xvs_packet::key::KeyField;
use xvs_packet::FlowKey;

/// The fields the random rules use, each with a pool of values and of masks.
fn field_spec(i: usize) -> (KeyField, &'static [u64], &'static [u64]) {
    const PORTS: &[u64] = &[1, 2, 3];
    const FULL32: &[u64] = &[0xffff_ffff];
    const REGS: &[u64] = &[0, 1, 2, 0x10];
    const REG_MASKS: &[u64] = &[0xffff_ffff, 0x1, 0xf0];
    const ETH: &[u64] = &[0x0800, 0x86dd];
    const FULL16: &[u64] = &[0xffff];
    const IPS: &[u64] = &[
        0x0a00_0001,
        0x0a00_0002,
        0x0a00_0101,
        0x0b00_0001,
        0x0a01_0001,
    ];
    const IP_MASKS: &[u64] = &[0xffff_ffff, 0xffff_ff00, 0xff00_0000, 0xffff_0000];
    const PROTOS: &[u64] = &[6, 17];
    const FULL8: &[u64] = &[0xff];
    const TPS: &[u64] = &[80, 443, 8080, 0x8001];
    const TP_MASKS: &[u64] = &[0xffff, 0xfff0, 0x8000];
    match i {
        0 => (IN_PORT, PORTS, FULL32),
        1 => (reg(0), REGS, REG_MASKS),
        2 => (ETH_TYPE, ETH, FULL16),
        3 => (NW_SRC, IPS, IP_MASKS),
        4 => (NW_DST, IPS, IP_MASKS),
        5 => (NW_PROTO, PROTOS, FULL8),
        _ => (TP_DST, TPS, TP_MASKS),
    }
}
const N_FIELDS: usize = 7;

#[derive(Clone, Debug)]
struct GenRule {
    m: Match,
    priority: u32,
    conj: Vec<Conjunction>,
}

fn gen_match(allow_conj_id: bool) -> impl Strategy<Value = Match> {
    (
        prop::collection::vec(
            (
                any::<bool>(),
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
            ),
            N_FIELDS,
        ),
        prop::option::weighted(0.2, 1u64..6),
        any::<bool>(),
    )
        .prop_map(move |(sel, conj_id, prefer_sparse)| {
            let mut v = FlowKey::ZERO;
            let mut m = FlowKey::ZERO;
            for (i, (on, vi, mi)) in sel.into_iter().enumerate() {
                // About a third of the fields on a sparse rule, two thirds otherwise.
                if !on || (prefer_sparse && i % 2 == 0) {
                    continue;
                }
                let (f, vals, masks) = field_spec(i);
                v.set(f, *vi.get(vals));
                m.set(f, *mi.get(masks));
            }
            if let Some(id) = conj_id.filter(|_| allow_conj_id) {
                v.set(CONJ_ID, id);
                m.set(CONJ_ID, 0xffff_ffff);
            }
            Match::new(v, m)
        })
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        gen_match(true),
        prop::sample::select(vec![1u32, 2, 3, 5, 10]),
        prop::option::weighted(0.35, prop::collection::vec((1u32..6, 2u8..4, 1u8..4), 1..5)),
    )
        .prop_map(|(mut m, priority, conj)| {
            let conj: Vec<Conjunction> = conj
                .unwrap_or_default()
                .into_iter()
                .map(|(id, n, k)| cj(id, 1 + (k - 1) % n, n))
                .collect();
            if !conj.is_empty() && m.mask().get(CONJ_ID) != 0 {
                // Clause flows cannot match conj_id: drop that part of the match.
                let mut v = *m.value();
                let mut mk = *m.mask();
                v.set(CONJ_ID, 0);
                mk.set(CONJ_ID, 0);
                m = Match::new(v, mk);
            }
            GenRule { m, priority, conj }
        })
}

fn gen_key() -> impl Strategy<Value = FlowKey> {
    (
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u64>(), 0u8..10),
            N_FIELDS,
        ),
        any::<u64>(),
    )
        .prop_map(|(vals, noise)| {
            let mut k = FlowKey::ZERO;
            for (i, (vi, raw, pick)) in vals.into_iter().enumerate() {
                let (f, pool, _) = field_spec(i);
                // Mostly values from the pool, sometimes random bits.
                k.set(f, if pick < 8 { *vi.get(pool) } else { raw });
            }
            // Unrelated fields vary too, so masks that are too wide would be caught.
            k.set(ETH_SRC, noise & 0x3);
            k.set(TP_SRC, noise >> 60);
            k
        })
}

#[derive(Clone, Debug)]
enum Change {
    Insert(GenRule),
    DeleteStrict(usize),
    DeleteLoose(Match),
    Modify(usize),
}

fn gen_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => gen_rule().prop_map(Change::Insert),
        2 => any::<usize>().prop_map(Change::DeleteStrict),
        1 => gen_match(false).prop_map(Change::DeleteLoose),
        1 => any::<usize>().prop_map(Change::Modify),
    ]
}

fn apply(
    cls: &mut Classifier<u32>,
    reference: &mut RefTable,
    changes: &[Change],
    payload: &mut u32,
) -> u64 {
    let mut b = cls.bundle();
    for ch in changes {
        match ch {
            Change::Insert(r) => {
                *payload += 1;
                b.insert(&r.m, r.priority, *payload, &r.conj)
                    .expect("valid rule");
                reference.insert(r.m, r.priority, *payload, &r.conj);
            }
            Change::DeleteStrict(i) => {
                if reference.rules.is_empty() {
                    continue;
                }
                let r = reference.rules[i % reference.rules.len()].clone();
                assert!(b.delete_strict(&r.m, r.priority).is_some());
                assert!(reference.delete_strict(&r.m, r.priority));
            }
            Change::DeleteLoose(m) => {
                let n = b.delete_loose(m).len();
                assert_eq!(n, reference.delete_loose(m));
            }
            Change::Modify(i) => {
                if reference.rules.is_empty() {
                    continue;
                }
                let r = reference.rules[i % reference.rules.len()].clone();
                *payload += 1;
                b.modify_strict(&r.m, r.priority, *payload, &r.conj)
                    .expect("exists");
                reference.insert(r.m, r.priority, *payload, &r.conj);
            }
        }
    }
    b.commit()
}

/// Checks lookups against the reference and the returned masks against random keys that agree
/// on the masked bits.
fn check_lookups(
    cls: &Classifier<u32>,
    reference: &RefTable,
    keys: &[FlowKey],
    others: &[FlowKey],
) {
    let snap = cls.snapshot();
    for (n, k) in keys.iter().enumerate() {
        let mut wc = FlowKey::ZERO;
        let got = snap.lookup(k, &mut wc).map(|r| *r.payload());
        let want = reference.lookup(k);
        assert_eq!(got, want, "key {k:?}");
        for o in others.iter().skip(n % 3) {
            let mut q = FlowKey::ZERO;
            for w in 0..q.words.len() {
                q.words[w] = (k.words[w] & wc.words[w]) | (o.words[w] & !wc.words[w]);
            }
            let mut wc2 = FlowKey::ZERO;
            let got2 = snap.lookup(&q, &mut wc2).map(|r| *r.payload());
            assert_eq!(got2, got, "mask {wc:?} too wide: key {k:?} vs {q:?}");
            assert_eq!(reference.lookup(&q), got);
        }
    }
}

/// Runs the keys through the datapath cache, translating misses with the classifier, and checks
/// every answer against the reference.
fn run_cache(
    cache: &mut DatapathCache<Option<u32>>,
    cls: &Classifier<u32>,
    reference: &RefTable,
    keys: &[FlowKey],
) {
    let snap = cls.snapshot();
    cache.begin_batch(snap.version());
    for chunk in keys.chunks(7) {
        let mut out = vec![None; chunk.len()];
        cache.lookup_batch(chunk, &mut out);
        for (k, o) in chunk.iter().zip(out.iter()) {
            let want = reference.lookup(k);
            match o {
                Some(id) => {
                    assert_eq!(cache.actions(*id), Some(&want), "cached answer for {k:?}")
                }
                None => {
                    let mut wc = FlowKey::ZERO;
                    let got = snap.lookup(k, &mut wc).map(|r| *r.payload());
                    assert_eq!(got, want);
                    let id = cache.insert(k, &wc, got, snap.version()).expect("room");
                    assert_eq!(cache.actions(id), Some(&want));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn classifier_matches_reference_and_masks_are_exact(
        rules in prop::collection::vec(gen_rule(), 0..40),
        keys in prop::collection::vec(gen_key(), 1..60),
        others in prop::collection::vec(gen_key(), 4),
        changes in prop::collection::vec(prop::collection::vec(gen_change(), 1..12), 1..4),
    ) {
        let mut cls = Classifier::new();
        let mut reference = RefTable::default();
        let mut payload = 0;
        let initial: Vec<Change> = rules.into_iter().map(Change::Insert).collect();
        apply(&mut cls, &mut reference, &initial, &mut payload);
        check_lookups(&cls, &reference, &keys, &others);
        for batch in &changes {
            apply(&mut cls, &mut reference, batch, &mut payload);
            prop_assert_eq!(cls.snapshot().len(), reference.rules.len());
            check_lookups(&cls, &reference, &keys, &others);
        }
    }

    #[test]
    fn caches_answer_like_the_classifier_across_changes(
        rules in prop::collection::vec(gen_rule(), 0..40),
        keys in prop::collection::vec(gen_key(), 1..40),
        changes in prop::collection::vec(prop::collection::vec(gen_change(), 1..12), 1..4),
        one_in in prop::sample::select(vec![1u32, 3]),
    ) {
        let mut cls = Classifier::new();
        let mut reference = RefTable::default();
        let mut payload = 0;
        let initial: Vec<Change> = rules.into_iter().map(Change::Insert).collect();
        apply(&mut cls, &mut reference, &initial, &mut payload);
        let mut cache = DatapathCache::new(CacheConfig {
            exact_entries: 16,
            exact_insertion: if one_in == 1 { Insertion::Always } else { Insertion::OneIn(one_in) },
            ..CacheConfig::default()
        });
        for batch in std::iter::once(&Vec::new()).chain(changes.iter()) {
            apply(&mut cls, &mut reference, batch, &mut payload);
            run_cache(&mut cache, &cls, &reference, &keys);
            // The second pass is served entirely by the caches.
            let before = *cache.stats();
            run_cache(&mut cache, &cls, &reference, &keys);
            let after = *cache.stats();
            prop_assert_eq!(
                after.exact_hits + after.megaflow_hits - before.exact_hits - before.megaflow_hits,
                keys.len() as u64
            );
        }
        prop_assert_eq!(cache.stats().flushes, changes.len() as u64 + 1);
    }
}
