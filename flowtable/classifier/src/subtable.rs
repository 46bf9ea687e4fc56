//! One classifier subtable: every rule with one particular mask, hashed on the masked value, with
//! staged indices for early exit, split into copy-on-write shards.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashbrown::HashTable;
use xvs_packet::key::layout::CONJ_ID;
use xvs_packet::FlowKey;

use crate::hash;
use crate::rule::{MaskInfo, Rule, MAX_STAGES};

/// log2 of the number of shards. A commit copies only the shards it touched, so a single-rule
/// change to a subtable of n rules copies about n/256 entries.
const SHARD_BITS: u32 = 8;
const N_SHARDS: usize = 1 << SHARD_BITS;

/// Seed of the classifier hashes. The classifier's tables are keyed by rule values that the
/// controller chooses, so a fixed seed is fine here (unlike the datapath caches).
const SEED: u64 = 0x243f_6a88_85a3_08d3;

/// The shard of a hash: bits 32.. of it. Not the top bits, which hashbrown uses as its 7-bit
/// tag (entries of one shard would all share a tag and defeat its SIMD filtering), and not the
/// low bits, which pick the bucket.
#[inline(always)]
fn shard_of(h: u64) -> usize {
    ((h >> 32) as usize) & (N_SHARDS - 1)
}

/// The rules of one bucket (identical match, different priorities), sorted by priority
/// descending, then by `seq` ascending. Never empty.
pub(crate) enum Rules<R> {
    One(Arc<Rule<R>>),
    Many(Vec<Arc<Rule<R>>>),
}

impl<R> Clone for Rules<R> {
    fn clone(&self) -> Self {
        match self {
            Rules::One(r) => Rules::One(Arc::clone(r)),
            Rules::Many(v) => Rules::Many(v.clone()),
        }
    }
}

impl<R> Rules<R> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Arc<Rule<R>>] {
        match self {
            Rules::One(r) => std::slice::from_ref(r),
            Rules::Many(v) => v,
        }
    }
}

/// The compact masked value of a bucket, inline when short (most masks touch 1 to 3 words),
/// so that comparing a key costs no pointer chase beyond the bucket itself.
#[derive(Clone)]
enum BucketKey {
    Inline { len: u8, words: [u64; 3] },
    Shared(Arc<[u64]>),
}

impl BucketKey {
    fn new(value: &Arc<[u64]>) -> Self {
        if value.len() <= 3 {
            let mut words = [0; 3];
            words[..value.len()].copy_from_slice(value);
            BucketKey::Inline {
                len: value.len() as u8,
                words,
            }
        } else {
            BucketKey::Shared(Arc::clone(value))
        }
    }

    #[inline(always)]
    fn as_slice(&self) -> &[u64] {
        match self {
            BucketKey::Inline { len, words } => &words[..usize::from(*len).min(3)],
            BucketKey::Shared(v) => v,
        }
    }
}

/// One hash-table entry: all rules with one exact match (one value under this mask). 64 bytes.
pub(crate) struct Bucket<R> {
    hash: u64,
    key: BucketKey,
    rules: Rules<R>,
}

impl<R> Clone for Bucket<R> {
    fn clone(&self) -> Self {
        Self {
            hash: self.hash,
            key: self.key.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<R> Bucket<R> {
    #[inline(always)]
    fn value(&self) -> &[u64] {
        self.key.as_slice()
    }
}

/// A stage index entry: the hash of the masked words of the stages so far, and how many buckets
/// share it.
type StageEntry = (u64, u32);

pub(crate) struct Shard<R> {
    buckets: HashTable<Bucket<R>>,
    stages: [HashTable<StageEntry>; MAX_STAGES - 1],
}

impl<R> Clone for Shard<R> {
    fn clone(&self) -> Self {
        Self {
            buckets: self.buckets.clone(),
            stages: self.stages.clone(),
        }
    }
}

impl<R> Shard<R> {
    fn new() -> Self {
        Self {
            buckets: HashTable::new(),
            stages: std::array::from_fn(|_| HashTable::new()),
        }
    }
}

/// All rules with one mask.
pub(crate) struct Subtable<R> {
    pub(crate) mask: Arc<MaskInfo>,
    /// Inline (no pointer to follow before the shard itself); the subtable is behind an `Arc`.
    shards: [Option<Arc<Shard<R>>>; N_SHARDS],
    /// Number of rules per priority, for `max_priority` after deletions.
    priorities: BTreeMap<u32, u32>,
    pub(crate) max_priority: u32,
    /// The same for ordinary (non-clause) rules only: the `conj_id` search, which ignores clause
    /// flows, skips subtables that hold none.
    hard_priorities: BTreeMap<u32, u32>,
    pub(crate) max_hard_priority: Option<u32>,
    pub(crate) n_rules: usize,
    /// The `conj_id` bits of the mask, and how many rules have 0 there. A subtable of
    /// `conj_id=N` action flows (none 0) cannot match a key whose `conj_id` is 0 under the
    /// mask, so the first search of a table skips it without probing.
    pub(crate) conj_id_bits: u64,
    pub(crate) n_conj_id_zero: usize,
}

impl<R> Clone for Subtable<R> {
    fn clone(&self) -> Self {
        Self {
            mask: Arc::clone(&self.mask),
            shards: self.shards.clone(),
            priorities: self.priorities.clone(),
            max_priority: self.max_priority,
            hard_priorities: self.hard_priorities.clone(),
            max_hard_priority: self.max_hard_priority,
            n_rules: self.n_rules,
            conj_id_bits: self.conj_id_bits,
            n_conj_id_zero: self.n_conj_id_zero,
        }
    }
}

/// The stage hashes (all but the last stage) and the final hash of compact masked words.
fn hashes(mask: &MaskInfo, value: &[u64]) -> ([u64; MAX_STAGES - 1], u64) {
    let mut stage_hashes = [0; MAX_STAGES - 1];
    let mut h = SEED;
    let mut j = 0;
    let n = mask.stage_ends().len();
    for (s, &end) in mask.stage_ends().iter().enumerate() {
        while j < end as usize {
            h = hash::add(h, value[j]);
            j += 1;
        }
        if s + 1 < n {
            stage_hashes[s] = hash::finish(h);
        }
    }
    (stage_hashes, hash::finish(h))
}

impl<R> Subtable<R> {
    pub(crate) fn new(mask: Arc<MaskInfo>) -> Self {
        let conj_id_bits = mask.mask.get(CONJ_ID);
        Self {
            conj_id_bits,
            n_conj_id_zero: 0,
            mask,
            shards: std::array::from_fn(|_| None),
            priorities: BTreeMap::new(),
            max_priority: 0,
            hard_priorities: BTreeMap::new(),
            max_hard_priority: None,
            n_rules: 0,
        }
    }

    /// True when `rule` (of this subtable) has 0 in the `conj_id` bits of the mask.
    fn conj_id_zero(&self, rule: &Rule<R>) -> bool {
        self.conj_id_bits == 0 || rule.to_match().value().get(CONJ_ID) == 0
    }

    /// True when no rule can match `key` because of its `conj_id`; then every key with the same
    /// `conj_id` bits under the mask misses too.
    #[inline]
    pub(crate) fn excludes_conj_id(&self, key: &FlowKey) -> bool {
        self.conj_id_bits != 0
            && self.n_conj_id_zero == 0
            && key.get(CONJ_ID) & self.conj_id_bits == 0
    }

    /// Looks `key` up. Un-wildcards in `wc` the mask bits of every stage examined: on an early
    /// stage miss only the stages up to the miss, otherwise the whole mask. Returns the bucket of
    /// rules whose match equals the key's masked value.
    #[inline]
    pub(crate) fn probe(&self, key: &FlowKey, wc: &mut FlowKey) -> Option<&[Arc<Rule<R>>]> {
        let m = &*self.mask;
        let mut h = SEED;
        let mut j = 0;
        let (words, bits) = (m.words(), m.bits());
        let n_stages = m.stage_ends().len();
        for (s, &end) in m.stage_ends().iter().enumerate() {
            let end = end as usize;
            while j < end {
                h = hash::add(h, key.words[usize::from(words[j])] & bits[j]);
                j += 1;
            }
            if s + 1 < n_stages {
                let sh = hash::finish(h);
                let present = self.shards[shard_of(sh)]
                    .as_ref()
                    .is_some_and(|shard| shard.stages[s].find(sh, |e| e.0 == sh).is_some());
                if !present {
                    // No rule agrees with the key on stages 0..=s: every key with the same
                    // bits there misses too.
                    m.unwildcard(wc, end);
                    return None;
                }
            }
        }
        m.unwildcard(wc, words.len());
        let fh = hash::finish(h);
        let shard = self.shards[shard_of(fh)].as_ref()?;
        shard
            .buckets
            .find(fh, |b| b.hash == fh && m.eq_compact(key, b.value()))
            .map(|b| b.rules.as_slice())
    }

    /// The rule with exactly this compact value and priority.
    pub(crate) fn find_exact(&self, value: &[u64], priority: u32) -> Option<&Arc<Rule<R>>> {
        let (_, fh) = hashes(&self.mask, value);
        let shard = self.shards[shard_of(fh)].as_ref()?;
        let b = shard
            .buckets
            .find(fh, |b| b.hash == fh && b.value() == value)?;
        b.rules.as_slice().iter().find(|r| r.priority == priority)
    }

    fn shard_mut(&mut self, idx: usize) -> &mut Shard<R> {
        Arc::make_mut(self.shards[idx].get_or_insert_with(|| Arc::new(Shard::new())))
    }

    /// Inserts `rule`; a rule with the same value and priority is replaced and returned.
    pub(crate) fn insert(&mut self, rule: Arc<Rule<R>>) -> Option<Arc<Rule<R>>> {
        let (stage_hashes, fh) = hashes(&self.mask, &rule.value);
        let priority = rule.priority;
        let hard = rule.conjunctions.is_empty();
        let zero = self.conj_id_zero(&rule);
        let shard = self.shard_mut(shard_of(fh));
        let mut replaced = None;
        let mut new_bucket = false;
        match shard
            .buckets
            .find_mut(fh, |b| b.hash == fh && b.value() == &*rule.value)
        {
            Some(b) => {
                let mut v = match std::mem::replace(&mut b.rules, Rules::Many(Vec::new())) {
                    Rules::One(r) => vec![r],
                    Rules::Many(v) => v,
                };
                if let Some(pos) = v.iter().position(|r| r.priority == priority) {
                    replaced = Some(std::mem::replace(&mut v[pos], rule));
                } else {
                    let pos = v.iter().position(|r| rule.beats(r)).unwrap_or(v.len());
                    v.insert(pos, rule);
                }
                b.rules = if v.len() == 1 {
                    match v.pop() {
                        Some(r) => Rules::One(r),
                        None => Rules::Many(v),
                    }
                } else {
                    Rules::Many(v)
                };
            }
            None => {
                shard.buckets.insert_unique(
                    fh,
                    Bucket {
                        hash: fh,
                        key: BucketKey::new(&rule.value),
                        rules: Rules::One(rule),
                    },
                    |b| b.hash,
                );
                new_bucket = true;
            }
        }
        if new_bucket {
            for (s, &sh) in stage_hashes
                .iter()
                .enumerate()
                .take(self.mask.stage_ends().len().saturating_sub(1))
            {
                let st = &mut self.shard_mut(shard_of(sh)).stages[s];
                match st.find_mut(sh, |e| e.0 == sh) {
                    Some(e) => e.1 += 1,
                    None => {
                        st.insert_unique(sh, (sh, 1), |e| e.0);
                    }
                }
            }
        }
        if let Some(old) = &replaced {
            let old_zero = self.conj_id_zero(old);
            self.uncount(old.priority, old.conjunctions.is_empty(), old_zero);
        }
        self.count(priority, hard, zero);
        replaced
    }

    fn count(&mut self, priority: u32, hard: bool, conj_id_zero: bool) {
        self.n_conj_id_zero += usize::from(conj_id_zero);
        *self.priorities.entry(priority).or_insert(0) += 1;
        self.max_priority = self.max_priority.max(priority);
        if hard {
            *self.hard_priorities.entry(priority).or_insert(0) += 1;
            self.max_hard_priority =
                Some(self.max_hard_priority.map_or(priority, |m| m.max(priority)));
        }
        self.n_rules += 1;
    }

    fn uncount(&mut self, priority: u32, hard: bool, conj_id_zero: bool) {
        self.n_conj_id_zero = self
            .n_conj_id_zero
            .saturating_sub(usize::from(conj_id_zero));
        fn dec(map: &mut BTreeMap<u32, u32>, priority: u32) {
            if let Some(c) = map.get_mut(&priority) {
                *c -= 1;
                if *c == 0 {
                    map.remove(&priority);
                }
            }
        }
        dec(&mut self.priorities, priority);
        self.max_priority = self.priorities.keys().next_back().copied().unwrap_or(0);
        if hard {
            dec(&mut self.hard_priorities, priority);
            self.max_hard_priority = self.hard_priorities.keys().next_back().copied();
        }
        self.n_rules -= 1;
    }

    /// Removes and returns the rule with this compact value and priority.
    pub(crate) fn remove(&mut self, value: &[u64], priority: u32) -> Option<Arc<Rule<R>>> {
        let (stage_hashes, fh) = hashes(&self.mask, value);
        // Check first, so that a miss does not copy a shard.
        self.find_exact(value, priority)?;
        let shard = self.shard_mut(shard_of(fh));
        let Ok(mut entry) = shard
            .buckets
            .find_entry(fh, |b| b.hash == fh && b.value() == value)
        else {
            return None;
        };
        let b = entry.get_mut();
        let (removed, bucket_empty) = match &mut b.rules {
            Rules::One(r) => {
                if r.priority == priority {
                    (Some(Arc::clone(r)), true)
                } else {
                    (None, false)
                }
            }
            Rules::Many(v) => {
                let removed = v
                    .iter()
                    .position(|r| r.priority == priority)
                    .map(|pos| v.remove(pos));
                if v.len() == 1 {
                    if let Some(r) = v.pop() {
                        b.rules = Rules::One(r);
                    }
                }
                (removed, false)
            }
        };
        let removed = removed?;
        if bucket_empty {
            entry.remove();
            for (s, &sh) in stage_hashes
                .iter()
                .enumerate()
                .take(self.mask.stage_ends().len().saturating_sub(1))
            {
                let st = &mut self.shard_mut(shard_of(sh)).stages[s];
                if let Ok(mut e) = st.find_entry(sh, |e| e.0 == sh) {
                    if e.get().1 <= 1 {
                        e.remove();
                    } else {
                        e.get_mut().1 -= 1;
                    }
                }
            }
        }
        let zero = self.conj_id_zero(&removed);
        self.uncount(priority, removed.conjunctions.is_empty(), zero);
        Some(removed)
    }

    /// Every rule, bucket by bucket.
    pub(crate) fn rules(&self) -> impl Iterator<Item = &Arc<Rule<R>>> {
        self.shards
            .iter()
            .flatten()
            .flat_map(|s| s.buckets.iter())
            .flat_map(|b| b.rules.as_slice().iter())
    }
}
