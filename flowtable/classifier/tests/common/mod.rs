//! Test helpers: match builders and a brute-force reference classifier with the semantics the
//! crate documents (highest priority, first added wins ties, ovs-fields(7) conjunctions).
#![allow(dead_code)]

use xvs_classifier::{Conjunction, Match};
use xvs_packet::key::layout::CONJ_ID;
use xvs_packet::key::KeyField;
use xvs_packet::FlowKey;

/// Builds a match from (field, value, mask) triples.
pub fn mk(fields: &[(KeyField, u64, u64)]) -> Match {
    let mut v = FlowKey::ZERO;
    let mut m = FlowKey::ZERO;
    for &(f, val, mask) in fields {
        v.set(f, val);
        m.set(f, mask);
    }
    Match::new(v, m)
}

/// Builds a key from (field, value) pairs.
pub fn key(fields: &[(KeyField, u64)]) -> FlowKey {
    let mut k = FlowKey::ZERO;
    for &(f, val) in fields {
        k.set(f, val);
    }
    k
}

/// Shorthand for a conjunction clause.
pub fn cj(id: u32, clause: u8, n_clauses: u8) -> Conjunction {
    Conjunction {
        id,
        clause,
        n_clauses,
    }
}

#[derive(Clone, Debug)]
pub struct RefRule {
    pub m: Match,
    pub priority: u32,
    pub seq: u64,
    pub conj: Vec<Conjunction>,
    pub payload: u32,
}

/// The reference table: a plain list scanned linearly.
#[derive(Clone, Debug, Default)]
pub struct RefTable {
    pub rules: Vec<RefRule>,
    next_seq: u64,
}

impl RefTable {
    pub fn insert(&mut self, m: Match, priority: u32, payload: u32, conj: &[Conjunction]) {
        if let Some(r) = self
            .rules
            .iter_mut()
            .find(|r| r.m == m && r.priority == priority)
        {
            r.payload = payload;
            r.conj = conj.to_vec();
            return;
        }
        self.next_seq += 1;
        self.rules.push(RefRule {
            m,
            priority,
            seq: self.next_seq,
            conj: conj.to_vec(),
            payload,
        });
    }

    pub fn delete_strict(&mut self, m: &Match, priority: u32) -> bool {
        let before = self.rules.len();
        self.rules
            .retain(|r| !(r.m == *m && r.priority == priority));
        before != self.rules.len()
    }

    pub fn delete_loose(&mut self, m: &Match) -> usize {
        let before = self.rules.len();
        self.rules.retain(|r| !r.m.is_at_least_as_specific_as(m));
        before - self.rules.len()
    }

    fn best_hard(&self, key: &FlowKey) -> Option<&RefRule> {
        self.rules
            .iter()
            .filter(|r| r.conj.is_empty() && r.m.matches(key))
            .min_by_key(|r| (std::cmp::Reverse(r.priority), r.seq))
    }

    /// The payload of the answer for `key`.
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        let hard = self.best_hard(key);
        let floor = hard.map(|h| h.priority);
        let mut levels: Vec<u32> = self
            .rules
            .iter()
            .filter(|r| !r.conj.is_empty() && r.m.matches(key))
            .map(|r| r.priority)
            .filter(|&p| floor.is_none_or(|f| p > f))
            .collect();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        levels.dedup();
        for p in levels {
            let mut ids: Vec<(u32, u8)> = self
                .rules
                .iter()
                .filter(|r| r.priority == p && r.m.matches(key))
                .flat_map(|r| r.conj.iter().map(|c| (c.id, c.n_clauses)))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for (id, n) in ids {
                let complete = (1..=n).all(|k| {
                    self.rules.iter().any(|r| {
                        r.priority == p
                            && r.m.matches(key)
                            && r.conj
                                .iter()
                                .any(|c| c.id == id && c.n_clauses == n && c.clause == k)
                    })
                });
                if complete {
                    let mut k2 = *key;
                    k2.set(CONJ_ID, u64::from(id));
                    if let Some(r) = self.best_hard(&k2) {
                        return Some(r.payload);
                    }
                }
            }
        }
        hard.map(|h| h.payload)
    }
}
