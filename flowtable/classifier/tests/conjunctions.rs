//! Conjunctive matches as ovs-fields(7) ("Conjunctive Match Fields") defines them.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod common;

use common::{cj, key, mk, RefTable};
use xvs_classifier::{Classifier, Conjunction, Match};
use xvs_packet::key::layout::*;
use xvs_packet::FlowKey;

const ALL32: u64 = 0xffff_ffff;

/// A table and its brute-force twin, built together.
struct Both {
    cls: Classifier<u32>,
    reference: RefTable,
    names: Vec<&'static str>,
}

impl Both {
    fn new(rules: &[(Match, u32, &'static str, Vec<Conjunction>)]) -> Self {
        let mut cls = Classifier::new();
        let mut reference = RefTable::default();
        let mut names = Vec::new();
        let mut b = cls.bundle();
        for (m, p, name, conj) in rules {
            let id = names.len() as u32;
            names.push(*name);
            b.insert(m, *p, id, conj).unwrap();
            reference.insert(*m, *p, id, conj);
        }
        b.commit();
        Self {
            cls,
            reference,
            names,
        }
    }

    /// The answer for `k`, checked against the reference and against keys that differ from `k`
    /// only outside the returned wildcard mask.
    fn lookup(&self, k: &FlowKey) -> Option<&'static str> {
        let snap = self.cls.snapshot();
        let mut wc = FlowKey::ZERO;
        let got = snap.lookup(k, &mut wc).map(|r| *r.payload());
        assert_eq!(
            got,
            self.reference.lookup(k),
            "reference disagrees for {k:?}"
        );
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..32 {
            let mut q = *k;
            for w in 0..q.words.len() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Flip a random subset of the unexamined bits.
                q.words[w] ^= x & !wc.words[w];
            }
            let mut wc2 = FlowKey::ZERO;
            let again = snap.lookup(&q, &mut wc2).map(|r| *r.payload());
            assert_eq!(again, got, "wildcards {wc:?} too wide for {k:?}");
        }
        got.map(|i| self.names[i as usize])
    }
}

fn src(ip: u64) -> Match {
    mk(&[(ETH_TYPE, 0x0800, 0xffff), (NW_SRC, ip, ALL32)])
}
fn dst(ip: u64) -> Match {
    mk(&[(ETH_TYPE, 0x0800, 0xffff), (NW_DST, ip, ALL32)])
}
fn port(p: u64) -> Match {
    mk(&[
        (ETH_TYPE, 0x0800, 0xffff),
        (NW_PROTO, 6, 0xff),
        (TP_DST, p, 0xffff),
    ])
}
fn conj_id(id: u64) -> Match {
    mk(&[(CONJ_ID, id, ALL32)])
}
fn pkt(s: u64, d: u64, p: u64) -> FlowKey {
    key(&[
        (ETH_TYPE, 0x0800),
        (NW_SRC, s),
        (NW_DST, d),
        (NW_PROTO, 6),
        (TP_DST, p),
    ])
}
const A: u64 = 0x0a00_0001;
const B: u64 = 0x0a00_0002;
const C: u64 = 0x0a00_0004;
const D: u64 = 0x0a00_0005;
const E: u64 = 0x0a00_0006;

#[test]
fn man_page_example() {
    // ovs-fields(7): ip_src in {.1,.4,.6,.7} and ip_dst in {.2,.5,.7,.8} -> controller.
    let mut rules = vec![
        (conj_id(1234), 32768, "controller", vec![]),
        (Match::catchall(), 0, "drop", vec![]),
    ];
    for s in [1, 4, 6, 7] {
        rules.push((src(0x0a00_0000 + s), 32768, "clause1", vec![cj(1234, 1, 2)]));
    }
    for d in [2, 5, 7, 8] {
        rules.push((dst(0x0a00_0000 + d), 32768, "clause2", vec![cj(1234, 2, 2)]));
    }
    let t = Both::new(&rules);
    for s in [1, 4, 6, 7] {
        for d in [2, 5, 7, 8] {
            assert_eq!(
                t.lookup(&pkt(0x0a00_0000 + s, 0x0a00_0000 + d, 80)),
                Some("controller")
            );
        }
    }
    // One dimension only: the clause flows are never the answer.
    assert_eq!(t.lookup(&pkt(0x0a00_0001, 0x0a00_0003, 80)), Some("drop"));
    assert_eq!(t.lookup(&pkt(0x0a00_0003, 0x0a00_0002, 80)), Some("drop"));
    assert_eq!(t.lookup(&pkt(0x0a00_0003, 0x0a00_0003, 80)), Some("drop"));
}

#[test]
fn three_clauses_and_an_incomplete_conjunction() {
    let t = Both::new(&[
        (src(A), 100, "c1", vec![cj(7, 1, 3)]),
        (src(B), 100, "c1", vec![cj(7, 1, 3)]),
        (dst(C), 100, "c2", vec![cj(7, 2, 3)]),
        (port(80), 100, "c3", vec![cj(7, 3, 3)]),
        (port(443), 100, "c3", vec![cj(7, 3, 3)]),
        (conj_id(7), 100, "allow", vec![]),
        (Match::catchall(), 0, "default", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("allow"));
    assert_eq!(t.lookup(&pkt(B, C, 443)), Some("allow"));
    // Two clauses of three.
    assert_eq!(t.lookup(&pkt(A, C, 22)), Some("default"));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("default"));
    assert_eq!(t.lookup(&pkt(E, C, 80)), Some("default"));
}

#[test]
fn shared_clause_flow_with_several_conjunctions() {
    // Antrea's encoding: one flow per distinct value accumulates conjunction() actions.
    let t = Both::new(&[
        (src(A), 200, "shared", vec![cj(10, 1, 2), cj(11, 1, 3)]),
        (src(B), 200, "c", vec![cj(11, 1, 3)]),
        (dst(C), 200, "c", vec![cj(10, 2, 2)]),
        (dst(D), 200, "c", vec![cj(11, 2, 3)]),
        (port(80), 200, "c", vec![cj(11, 3, 3)]),
        (conj_id(10), 190, "rule10", vec![]),
        (conj_id(11), 190, "rule11", vec![]),
        (Match::catchall(), 0, "default", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 22)), Some("rule10"));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("rule11"));
    assert_eq!(t.lookup(&pkt(B, D, 80)), Some("rule11"));
    assert_eq!(t.lookup(&pkt(B, C, 80)), Some("default"));
    assert_eq!(t.lookup(&pkt(A, D, 22)), Some("default"));
}

#[test]
fn clause_and_action_priorities_differ_and_ordinary_flows_compete_by_clause_priority() {
    let base = vec![
        (src(A), 200, "c1", vec![cj(5, 1, 2)]),
        (dst(C), 200, "c2", vec![cj(5, 2, 2)]),
        (conj_id(5), 190, "conj", vec![]),
        (Match::catchall(), 0, "default", vec![]),
    ];
    // An ordinary flow above the clauses wins.
    let mut rules = base.clone();
    rules.push((src(A), 250, "ordinary-250", vec![]));
    let t = Both::new(&rules);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("ordinary-250"));
    // Below the clauses: the conjunction, at 200, wins, and its answer is the 190 flow.
    let mut rules = base.clone();
    rules.push((port(80), 150, "ordinary-150", vec![]));
    let t = Both::new(&rules);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("conj"));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("ordinary-150"));
    // Between the action flow (190) and the clauses (200): the conjunction wins at 200, but the
    // conj_id search is "done in the same general-purpose way as other flow table searches", so
    // the ordinary flow, which matches whatever conj_id is, shadows the 190 action flow.
    let mut rules = base.clone();
    rules.push((port(80), 195, "ordinary-195", vec![]));
    let t = Both::new(&rules);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("ordinary-195"));
    assert_eq!(t.lookup(&pkt(A, C, 22)), Some("conj"));
    // At the clauses' priority: the ordinary flow wins the tie.
    let mut rules = base.clone();
    rules.push((port(80), 200, "ordinary-200", vec![]));
    let t = Both::new(&rules);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("ordinary-200"));
    assert_eq!(t.lookup(&pkt(A, C, 22)), Some("conj"));
}

#[test]
fn complete_conjunction_without_action_flow_is_as_if_unmatched() {
    let t = Both::new(&[
        (src(A), 200, "c1", vec![cj(5, 1, 2)]),
        (dst(C), 200, "c2", vec![cj(5, 2, 2)]),
        (conj_id(6), 190, "other-conj", vec![]),
        (port(80), 100, "web", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("web"));
    assert_eq!(t.lookup(&pkt(A, C, 22)), None);
}

#[test]
fn same_id_at_two_priorities_is_two_conjunctions() {
    let t = Both::new(&[
        (src(A), 200, "c1@200", vec![cj(5, 1, 2)]),
        (dst(C), 100, "c2@100", vec![cj(5, 2, 2)]),
        (conj_id(5), 150, "conj", vec![]),
        (Match::catchall(), 0, "default", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("default"));
}

#[test]
fn lower_priority_conjunction_completes_when_the_higher_one_does_not() {
    let t = Both::new(&[
        (src(A), 300, "c1@300", vec![cj(1, 1, 2)]),
        (dst(D), 300, "c2@300", vec![cj(1, 2, 2)]),
        (src(A), 200, "c1@200", vec![cj(2, 1, 2)]),
        (dst(C), 200, "c2@200", vec![cj(2, 2, 2)]),
        (conj_id(1), 10, "conj1", vec![]),
        (conj_id(2), 10, "conj2", vec![]),
        (port(80), 5, "web", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("conj1"));
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("conj2"));
    assert_eq!(t.lookup(&pkt(A, E, 80)), Some("web"));
}

#[test]
fn clause_flow_above_an_ordinary_flow_with_the_same_match() {
    // Same match, two priorities: the clause flow on top, an ordinary flow below it.
    let t = Both::new(&[
        (src(A), 200, "clause", vec![cj(3, 1, 2)]),
        (src(A), 100, "same-match-ordinary", vec![]),
        (dst(C), 200, "c2", vec![cj(3, 2, 2)]),
        (conj_id(3), 200, "conj", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("conj"));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("same-match-ordinary"));
}

#[test]
fn one_flow_may_carry_every_clause() {
    let t = Both::new(&[
        (src(A), 200, "both", vec![cj(9, 1, 2), cj(9, 2, 2)]),
        (conj_id(9), 1, "conj", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("conj"));
    assert_eq!(t.lookup(&pkt(B, C, 80)), None);
}

#[test]
fn clauses_may_mix_fields_and_prefixes() {
    // "Different flows within a dimension may match on different bits within a field ... or even
    // on entirely different fields."
    let t = Both::new(&[
        (
            mk(&[
                (ETH_TYPE, 0x0800, 0xffff),
                (NW_SRC, 0x0a00_0000, 0xffff_ff00),
            ]),
            50,
            "c1-net",
            vec![cj(4, 1, 2)],
        ),
        (
            mk(&[
                (ETH_TYPE, 0x0800, 0xffff),
                (NW_PROTO, 6, 0xff),
                (TP_SRC, 80, 0xffff),
            ]),
            50,
            "c1-sport",
            vec![cj(4, 1, 2)],
        ),
        (
            mk(&[
                (ETH_TYPE, 0x0800, 0xffff),
                (NW_PROTO, 6, 0xff),
                (TP_DST, 0x8000, 0xfff0),
            ]),
            50,
            "c2-range",
            vec![cj(4, 2, 2)],
        ),
        (conj_id(4), 50, "conj", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(0x0a00_00ff, C, 0x8003)), Some("conj"));
    let mut k = pkt(0x0b00_0001, C, 0x800f);
    k.set(TP_SRC, 80);
    assert_eq!(t.lookup(&k), Some("conj"));
    assert_eq!(t.lookup(&pkt(0x0b00_0001, C, 0x8003)), None);
    assert_eq!(t.lookup(&pkt(0x0a00_0001, C, 0x9003)), None);
}

#[test]
fn conjunction_updates_through_bundles() {
    let mut both = Both::new(&[
        (src(A), 200, "c1", vec![cj(5, 1, 2)]),
        (dst(C), 200, "c2", vec![cj(5, 2, 2)]),
        (conj_id(5), 190, "conj", vec![]),
    ]);
    assert_eq!(both.lookup(&pkt(A, C, 80)), Some("conj"));
    // Removing one clause flow breaks the conjunction.
    let mut b = both.cls.bundle();
    b.delete_strict(&dst(C), 200).unwrap();
    b.commit();
    both.reference.delete_strict(&dst(C), 200);
    assert_eq!(both.lookup(&pkt(A, C, 80)), None);
}

#[test]
fn candidates_from_the_smaller_clause_side_keep_the_id_order() {
    // Lookups draw candidate conjunctions from whichever of clause 1 / clause 2 has fewer
    // matching entries; the answer must not depend on which side that is. Source flows carry
    // many clause-1 entries, destination flows few clause-2 entries (and the other way round
    // for ids 50..): the lowest complete id with an action flow wins.
    let mut shared_src: Vec<Conjunction> = (20..40).map(|id| cj(id, 1, 2)).collect();
    shared_src.push(cj(5, 1, 3)); // same id as below, other n_clauses: a different conjunction
    shared_src.push(cj(5, 1, 2));
    shared_src.extend((50..52).map(|id| cj(id, 2, 2)));
    let many_dst: Vec<Conjunction> = (50..80).map(|id| cj(id, 1, 2)).collect();
    let t = Both::new(&[
        (src(A), 200, "src", shared_src),
        // Clause 2 of 5/2 and of 33/2 and 21/2 (21 has no action flow).
        (
            dst(C),
            200,
            "dst",
            vec![cj(33, 2, 2), cj(21, 2, 2), cj(5, 2, 2)],
        ),
        (
            dst(D),
            200,
            "dst",
            vec![cj(33, 2, 2), cj(21, 2, 2), cj(5, 2, 3)],
        ),
        (port(80), 200, "port", vec![cj(5, 3, 3)]),
        (port(81), 200, "port-many", many_dst),
        (conj_id(5), 190, "rule5", vec![]),
        (conj_id(33), 190, "rule33", vec![]),
        (conj_id(51), 190, "rule51", vec![]),
        // No catch-all: it would answer the conj_id=21 search (as in OVS).
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 22)), Some("rule5"));
    // 5/2 lacks clause 2 here; 5/3 completes with port 80.
    assert_eq!(t.lookup(&pkt(A, D, 22)), Some("rule33"));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("rule5"));
    // Clause 1 of 50/51 from port 81 (30 entries), clause 2 from the source flow.
    assert_eq!(t.lookup(&pkt(A, E, 81)), Some("rule51"));
    assert_eq!(t.lookup(&pkt(B, D, 81)), None);
}

#[test]
fn conj_id_zero_flows_and_partial_conj_id_masks() {
    // The first search skips subtables whose rules all need a non-zero conj_id; a rule that
    // matches conj_id=0 (or a masked conj_id the key's 0 satisfies) must still be found, before
    // and after it is deleted.
    let masked = |v: u64, m: u64| mk(&[(CONJ_ID, v, m)]);
    let mut t = Both::new(&[
        (src(A), 200, "c1", vec![cj(6, 1, 2)]),
        (dst(C), 200, "c2", vec![cj(6, 2, 2)]),
        (conj_id(6), 190, "rule6", vec![]),
        (conj_id(0), 150, "conj-id-zero", vec![]),
        (masked(0x2, 0x2), 180, "bit1-set", vec![]),
        (masked(0x0, 0x4), 120, "bit2-clear", vec![]),
        (Match::catchall(), 0, "default", vec![]),
    ]);
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("rule6"));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("conj-id-zero"));
    let mut b = t.cls.bundle();
    assert!(b.delete_strict(&conj_id(0), 150).is_some());
    b.commit();
    assert!(t.reference.delete_strict(&conj_id(0), 150));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("bit2-clear"));
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("rule6"));
    let mut b = t.cls.bundle();
    assert!(b.delete_strict(&masked(0x0, 0x4), 120).is_some());
    b.commit();
    assert!(t.reference.delete_strict(&masked(0x0, 0x4), 120));
    assert_eq!(t.lookup(&pkt(A, D, 80)), Some("default"));
    assert_eq!(t.lookup(&pkt(A, C, 80)), Some("rule6"));
}
