//! Classifier behaviour: priorities, masks, replace, strict/loose delete, modify, versions.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;

use common::{key, mk};
use xvs_classifier::{Classifier, ClassifierError, Match};
use xvs_packet::key::layout::*;
use xvs_packet::FlowKey;

const ALL32: u64 = 0xffff_ffff;

fn lookup(cls: &Classifier<&'static str>, k: &FlowKey) -> Option<&'static str> {
    let mut wc = FlowKey::ZERO;
    cls.snapshot().lookup(k, &mut wc).map(|r| *r.payload())
}

fn ip_table() -> Classifier<&'static str> {
    let mut cls = Classifier::new();
    let mut b = cls.bundle();
    b.insert(&Match::catchall(), 0, "default", &[]).unwrap();
    b.insert(&mk(&[(NW_DST, 0x0a00_0000, 0xff00_0000)]), 10, "ten/8", &[])
        .unwrap();
    b.insert(
        &mk(&[(NW_DST, 0x0a01_0000, 0xffff_0000)]),
        20,
        "ten.one/16",
        &[],
    )
    .unwrap();
    b.insert(&mk(&[(NW_DST, 0x0a01_0203, ALL32)]), 5, "host-low", &[])
        .unwrap();
    b.commit();
    cls
}

#[test]
fn highest_priority_wins_across_masks() {
    let cls = ip_table();
    assert_eq!(
        lookup(&cls, &key(&[(NW_DST, 0x0a01_0203)])),
        Some("ten.one/16")
    );
    assert_eq!(lookup(&cls, &key(&[(NW_DST, 0x0a02_0203)])), Some("ten/8"));
    assert_eq!(
        lookup(&cls, &key(&[(NW_DST, 0x0b01_0203)])),
        Some("default")
    );
    assert_eq!(cls.snapshot().len(), 4);
    assert_eq!(cls.snapshot().n_subtables(), 4);
}

#[test]
fn empty_table_misses_and_examines_nothing() {
    let cls: Classifier<&'static str> = Classifier::new();
    let mut wc = FlowKey::ZERO;
    assert!(cls
        .snapshot()
        .lookup(&key(&[(NW_DST, 1)]), &mut wc)
        .is_none());
    assert_eq!(wc, FlowKey::ZERO);
}

#[test]
fn wildcards_cover_what_was_examined_and_no_more() {
    let cls = ip_table();
    // The /16 at priority 20 answers: the /32 (priority 5) and /8 subtables are never probed,
    // since the subtables are visited by their maximum priority.
    let mut wc = FlowKey::ZERO;
    let k = key(&[(NW_DST, 0x0a01_0203), (NW_SRC, 0x0102_0304), (TP_DST, 80)]);
    let r = cls.snapshot().lookup(&k, &mut wc).unwrap();
    assert_eq!(*r.payload(), "ten.one/16");
    assert_eq!(wc.get(NW_DST), 0xffff_0000);
    assert_eq!(wc.get(NW_SRC), 0);
    assert_eq!(wc.get(TP_DST), 0);
}

#[test]
fn staged_lookup_unwildcards_only_the_stages_up_to_a_miss() {
    let mut cls = Classifier::new();
    let mut b = cls.bundle();
    // Metadata stage (in_port) then L3 and L4.
    b.insert(
        &mk(&[
            (IN_PORT, 1, ALL32),
            (NW_DST, 0x0a00_0001, ALL32),
            (TP_DST, 80, 0xffff),
        ]),
        100,
        "web-from-1",
        &[],
    )
    .unwrap();
    b.insert(&Match::catchall(), 0, "default", &[]).unwrap();
    b.commit();
    let mut wc = FlowKey::ZERO;
    let k = key(&[(IN_PORT, 2), (NW_DST, 0x0a00_0001), (TP_DST, 80)]);
    let mut wc2 = wc;
    assert_eq!(
        *cls.snapshot().lookup(&k, &mut wc).unwrap().payload(),
        "default"
    );
    // in_port 2 is not in the stage index: only in_port was examined.
    assert_eq!(wc.get(IN_PORT), u64::from(u32::MAX));
    assert_eq!(wc.get(NW_DST), 0);
    assert_eq!(wc.get(TP_DST), 0);
    // in_port 1 passes the first stage; the L3/L4 mismatch needs the whole mask.
    let k = key(&[(IN_PORT, 1), (NW_DST, 0x0a00_0002), (TP_DST, 80)]);
    assert_eq!(
        *cls.snapshot().lookup(&k, &mut wc2).unwrap().payload(),
        "default"
    );
    assert_eq!(wc2.get(NW_DST), u64::from(u32::MAX));
}

#[test]
fn equal_priority_overlap_first_added_wins_even_after_replace() {
    let mut cls = Classifier::new();
    let a = mk(&[(NW_SRC, 1, ALL32)]);
    let b_ = mk(&[(NW_DST, 2, ALL32)]);
    let mut b = cls.bundle();
    b.insert(&a, 7, "src", &[]).unwrap();
    b.insert(&b_, 7, "dst", &[]).unwrap();
    b.commit();
    let k = key(&[(NW_SRC, 1), (NW_DST, 2)]);
    assert_eq!(lookup(&cls, &k), Some("src"));
    // Replacing the first one keeps its place in the tie-break.
    let mut b = cls.bundle();
    let old = b.insert(&a, 7, "src-v2", &[]).unwrap();
    assert_eq!(old.map(|r| *r.payload()), Some("src"));
    b.commit();
    assert_eq!(lookup(&cls, &k), Some("src-v2"));
    // Deleting and re-adding makes it the newest.
    let mut b = cls.bundle();
    b.delete_strict(&a, 7).unwrap();
    b.insert(&a, 7, "src-v3", &[]).unwrap();
    b.commit();
    assert_eq!(lookup(&cls, &k), Some("dst"));
}

#[test]
fn add_with_same_match_and_priority_replaces_and_resets_counters() {
    let mut cls = Classifier::new();
    let m = mk(&[(TP_DST, 53, 0xffff)]);
    let mut b = cls.bundle();
    b.insert(&m, 10, "v1", &[]).unwrap();
    b.insert(&m, 11, "other-priority", &[]).unwrap();
    b.commit();
    let k = key(&[(TP_DST, 53)]);
    let mut wc = FlowKey::ZERO;
    let snap = Arc::clone(cls.snapshot());
    snap.lookup(&k, &mut wc).unwrap().stats().record(3, 300, 9);
    let mut b = cls.bundle();
    let old = b.insert(&m, 11, "v2", &[]).unwrap().unwrap();
    assert_eq!(*old.payload(), "other-priority");
    assert_eq!(old.stats().packets(), 3);
    b.commit();
    assert_eq!(cls.snapshot().len(), 2);
    let r = cls.snapshot().lookup(&k, &mut wc).unwrap();
    assert_eq!(*r.payload(), "v2");
    assert_eq!(r.stats().packets(), 0);
}

#[test]
fn modify_strict_keeps_counters_and_errors_when_absent() {
    let mut cls = Classifier::new();
    let m = mk(&[(TP_DST, 53, 0xffff)]);
    let mut b = cls.bundle();
    b.insert(&m, 10, "v1", &[]).unwrap();
    b.commit();
    let k = key(&[(TP_DST, 53)]);
    let mut wc = FlowKey::ZERO;
    cls.snapshot()
        .lookup(&k, &mut wc)
        .unwrap()
        .stats()
        .record(2, 100, 4);
    let mut b = cls.bundle();
    assert_eq!(
        b.modify_strict(&m, 11, "nope", &[]).err(),
        Some(ClassifierError::NoSuchRule)
    );
    let old = b.modify_strict(&m, 10, "v2", &[]).unwrap();
    assert_eq!(*old.payload(), "v1");
    b.commit();
    let r = cls.snapshot().lookup(&k, &mut wc).unwrap();
    assert_eq!(*r.payload(), "v2");
    assert_eq!(
        (
            r.stats().packets(),
            r.stats().bytes(),
            r.stats().last_used()
        ),
        (2, 100, 4)
    );
}

#[test]
fn strict_delete_needs_exact_match_and_priority() {
    let mut cls = ip_table();
    let mut b = cls.bundle();
    assert!(b
        .delete_strict(&mk(&[(NW_DST, 0x0a00_0000, 0xff00_0000)]), 11)
        .is_none());
    assert!(b
        .delete_strict(&mk(&[(NW_DST, 0x0a00_0000, 0xffff_0000)]), 10)
        .is_none());
    let gone = b
        .delete_strict(&mk(&[(NW_DST, 0x0a00_0000, 0xff00_0000)]), 10)
        .unwrap();
    assert_eq!(*gone.payload(), "ten/8");
    b.commit();
    assert_eq!(
        lookup(&cls, &key(&[(NW_DST, 0x0a02_0203)])),
        Some("default")
    );
    assert_eq!(cls.snapshot().n_subtables(), 3);
}

#[test]
fn loose_delete_removes_everything_at_least_as_specific() {
    let mut cls = ip_table();
    let mut b = cls.bundle();
    b.insert(
        &mk(&[(NW_DST, 0x0a01_0000, 0xffff_0000), (TP_DST, 80, 0xffff)]),
        30,
        "web",
        &[],
    )
    .unwrap();
    b.commit();
    let sel = mk(&[(NW_DST, 0x0a01_0000, 0xffff_0000)]);
    let mut names: Vec<&str> = cls
        .snapshot()
        .iter_loose(&sel)
        .map(|r| *r.payload())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["host-low", "ten.one/16", "web"]);
    let mut b = cls.bundle();
    assert_eq!(b.delete_loose(&sel).len(), 3);
    b.commit();
    let mut left: Vec<&str> = cls.snapshot().iter().map(|r| *r.payload()).collect();
    left.sort_unstable();
    assert_eq!(left, ["default", "ten/8"]);
    // The catch-all selects every rule.
    let mut b = cls.bundle();
    assert_eq!(b.delete_loose(&Match::catchall()).len(), 2);
    b.commit();
    assert!(cls.snapshot().is_empty());
    assert_eq!(cls.snapshot().n_subtables(), 0);
}

#[test]
fn bundle_is_invisible_until_commit_and_old_readers_keep_old_rules() {
    let mut cls = ip_table();
    let mut reader = cls.reader();
    let v1 = reader.refresh().version();
    let old_snap = Arc::clone(reader.snapshot());
    let k = key(&[(NW_DST, 0x0a01_0203)]);
    let mut b = cls.bundle();
    b.delete_loose(&Match::catchall());
    for i in 0..10_000u64 {
        b.insert(&mk(&[(NW_DST, 0x0a01_0000 + i, ALL32)]), 50, "host", &[])
            .unwrap();
    }
    b.insert(&Match::catchall(), 0, "new-default", &[]).unwrap();
    // Not committed: neither the writer's snapshot nor the reader see anything.
    assert_eq!(b.pending().len(), 10_001);
    assert_eq!(cls_version_of(&reader), v1);
    let v2 = b.commit();
    assert_eq!(v2, v1 + 1);
    // The reader still holds version 1 until it refreshes.
    let mut wc = FlowKey::ZERO;
    assert_eq!(
        *reader.snapshot().lookup(&k, &mut wc).unwrap().payload(),
        "ten.one/16"
    );
    assert!(!cls.readers_reached(v2));
    let snap = Arc::clone(reader.refresh());
    assert_eq!(snap.version(), v2);
    assert_eq!(*snap.lookup(&k, &mut wc).unwrap().payload(), "host");
    assert!(cls.readers_reached(v2));
    // Whoever kept the old snapshot still sees the old table, whole.
    assert_eq!(old_snap.len(), 4);
    assert_eq!(
        *old_snap.lookup(&k, &mut wc).unwrap().payload(),
        "ten.one/16"
    );
    // A discarded bundle changes nothing.
    let mut b = cls.bundle();
    b.delete_loose(&Match::catchall());
    drop(b);
    assert_eq!(cls.snapshot().len(), 10_001);
    assert_eq!(cls.version(), v2);
}

fn cls_version_of<R>(r: &xvs_classifier::ClassifierReader<R>) -> u64 {
    r.snapshot().version()
}

#[test]
fn reader_on_another_thread_sees_each_bundle_whole() {
    // Every bundle replaces all rules with 64 rules carrying the bundle number; a reader thread
    // must never see two numbers in one snapshot.
    let mut cls: Classifier<u64> = Classifier::new();
    let mut reader = cls.reader();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let t = std::thread::spawn(move || {
        let mut seen = 0u64;
        let mut wc = FlowKey::ZERO;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let snap = reader.refresh();
            let mut answer = None;
            for i in 0..64u64 {
                let r = snap
                    .lookup(&key(&[(TP_DST, i)]), &mut wc)
                    .map(|r| *r.payload());
                if i == 0 {
                    answer = r;
                }
                assert_eq!(r, answer, "torn bundle at version {}", snap.version());
            }
            if let Some(a) = answer {
                assert!(a >= seen, "went back in time");
                seen = a;
            }
        }
        seen
    });
    for n in 1..=200u64 {
        let mut b = cls.bundle();
        b.delete_loose(&Match::catchall());
        for i in 0..64u64 {
            b.insert(&mk(&[(TP_DST, i, 0xffff)]), 1, n, &[]).unwrap();
        }
        b.commit();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = t.join().unwrap();
    assert!(seen <= 200);
}

#[test]
fn retired_snapshots_are_freed_by_the_writer_once_readers_moved_on() {
    let mut cls: Classifier<u32> = Classifier::new();
    let mut reader = cls.reader();
    let mut b = cls.bundle();
    b.insert(&Match::catchall(), 0, 1, &[]).unwrap();
    b.commit();
    let weak = Arc::downgrade(cls.snapshot());
    let mut b = cls.bundle();
    b.insert(&Match::catchall(), 0, 2, &[]).unwrap();
    b.commit();
    // Nobody adopted version 1, but the reader (at 0) could still be about to: kept.
    assert!(weak.upgrade().is_some());
    reader.refresh();
    cls.reclaim();
    assert!(weak.upgrade().is_none());
    drop(reader);
    assert_eq!(cls.min_reader_version(), cls.version());
}

#[test]
fn invalid_conjunctions_are_rejected() {
    let mut cls: Classifier<u32> = Classifier::new();
    let mut b = cls.bundle();
    let m = mk(&[(NW_SRC, 1, ALL32)]);
    assert!(matches!(
        b.insert(&m, 1, 0, &[common::cj(1, 1, 1)]),
        Err(ClassifierError::BadClauseCount { .. })
    ));
    assert!(matches!(
        b.insert(&m, 1, 0, &[common::cj(1, 1, 65)]),
        Err(ClassifierError::BadClauseCount { .. })
    ));
    assert!(matches!(
        b.insert(&m, 1, 0, &[common::cj(1, 3, 2)]),
        Err(ClassifierError::BadClause { .. })
    ));
    assert!(matches!(
        b.insert(&m, 1, 0, &[common::cj(1, 0, 2)]),
        Err(ClassifierError::BadClause { .. })
    ));
    assert_eq!(
        b.insert(&mk(&[(CONJ_ID, 1, ALL32)]), 1, 0, &[common::cj(1, 1, 2)])
            .err(),
        Some(ClassifierError::ConjunctionMatchesConjId)
    );
    assert!(b.pending().is_empty());
}

#[test]
fn to_match_round_trips() {
    let mut cls: Classifier<u32> = Classifier::new();
    let m = mk(&[
        (IN_PORT, 3, ALL32),
        (NW_SRC, 0x0a00_0000, 0xffff_ff00),
        (TP_DST, 443, 0xffff),
    ]);
    let mut b = cls.bundle();
    b.insert(&m, 9, 1, &[]).unwrap();
    b.commit();
    let r = cls.snapshot().find_strict(&m, 9).unwrap();
    assert_eq!(r.to_match(), m);
    assert_eq!(r.mask(), m.mask());
    assert!(cls.snapshot().find_strict(&m, 8).is_none());
}

#[test]
fn modify_loose_changes_every_more_specific_rule_and_keeps_counters() {
    let mut cls = ip_table();
    let k = key(&[(NW_DST, 0x0a01_0203)]);
    let mut wc = FlowKey::ZERO;
    cls.snapshot()
        .lookup(&k, &mut wc)
        .unwrap()
        .stats()
        .record(1, 64, 1);
    let mut b = cls.bundle();
    let sel = mk(&[(NW_DST, 0x0a01_0000, 0xffff_0000)]);
    let old = b.modify_loose(&sel, |_| "modified", &[]).unwrap();
    let mut names: Vec<&str> = old.iter().map(|r| *r.payload()).collect();
    names.sort_unstable();
    assert_eq!(names, ["host-low", "ten.one/16"]);
    b.commit();
    let r = cls.snapshot().lookup(&k, &mut wc).unwrap();
    assert_eq!(*r.payload(), "modified");
    assert_eq!(r.stats().packets(), 1);
    assert_eq!(lookup(&cls, &key(&[(NW_DST, 0x0a02_0203)])), Some("ten/8"));
    assert_eq!(cls.snapshot().len(), 4);
}
