//! The versioned OpenFlow table classifier: immutable snapshots for the workers, a single writer
//! that builds the next snapshot in bundles and publishes it atomically.

use std::sync::Arc;

use hashbrown::HashMap;
use xvs_packet::key::layout::CONJ_ID;
use xvs_packet::FlowKey;

use crate::error::ClassifierError;
use crate::publish::{Publisher, Reader, Versioned};
use crate::rule::{Conjunction, MaskInfo, Match, Rule, RuleStats};
use crate::subtable::Subtable;

/// One matching clause flow, borrowed from the snapshot for the duration of a lookup.
#[derive(Clone, Copy, Debug)]
struct Run<'a> {
    /// `u32::MAX - priority`, so that ascending order is priority descending.
    rank: u32,
    /// The flow's conjunctions, sorted by (id, n_clauses, clause).
    conj: &'a [Conjunction],
    /// The (id, n_clauses) of its clause-1 entries, then of its clause-2 entries.
    firsts: &'a [(u32, u8)],
    /// How many entries of `firsts` are clause-1 entries.
    n_clause1: usize,
}

/// Scratch memory for [`Snapshot::lookup_with`], so that lookups of a worker do not allocate
/// once the scratch has grown to the largest set of matching clause flows seen.
#[derive(Debug, Default)]
pub struct LookupScratch {
    /// Always empty between lookups: only its allocation is kept (see [`recycle`]).
    runs: Vec<Run<'static>>,
    /// Candidate conjunctions (id, n_clauses) of one priority.
    candidates: Vec<(u32, u8)>,
}

impl LookupScratch {
    /// An empty scratch.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Empties `v` and returns its allocation with another lifetime. The in-place `collect` of an
/// empty iterator keeps the buffer (same layout), so a worker's scratch does not allocate again
/// once grown; were that optimisation missing, this would only allocate, never misbehave.
// The `filter_map` is what changes the lifetime; `filter` cannot.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut v: Vec<Run<'_>>) -> Vec<Run<'b>> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// The clause bits of a complete conjunction of `n` clauses.
#[inline]
fn all_clauses(n: u8) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// An immutable version of one OpenFlow table.
///
/// Subtables and their shards are shared (`Arc`) with the previous and next versions; only what
/// a bundle changed is copied.
pub struct Snapshot<R> {
    version: u64,
    /// Subtables by slot; `None` for a free slot.
    slots: Vec<Option<Arc<Subtable<R>>>>,
    free_slots: Vec<u32>,
    by_mask: Arc<HashMap<FlowKey, u32>>,
    /// The non-empty subtables in lookup order: by `max_priority`, descending. Empty while a
    /// bundle edits this snapshot (so that the slots hold the only extra reference).
    ordered: Vec<Arc<Subtable<R>>>,
    n_rules: usize,
}

impl<R> std::fmt::Debug for Snapshot<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("rules", &self.n_rules)
            .field("subtables", &self.ordered.len())
            .finish()
    }
}

impl<R> Snapshot<R> {
    fn empty() -> Self {
        Self {
            version: 0,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_mask: Arc::new(HashMap::new()),
            ordered: Vec::new(),
            n_rules: 0,
        }
    }

    /// A copy that shares every subtable, for a bundle to edit.
    fn fork(&self) -> Self {
        Self {
            version: self.version,
            slots: self.slots.clone(),
            free_slots: self.free_slots.clone(),
            by_mask: Arc::clone(&self.by_mask),
            ordered: Vec::new(),
            n_rules: self.n_rules,
        }
    }

    /// Rebuilds the lookup order after edits.
    fn seal(&mut self, version: u64) {
        self.version = version;
        self.ordered = self.slots.iter().flatten().cloned().collect();
        // Stable sort: ties keep slot order, so the order is a function of the contents.
        self.ordered
            .sort_by_key(|st| std::cmp::Reverse(st.max_priority));
    }

    /// The version this snapshot was published as (0 for the initial empty table).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.n_rules
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// The highest-priority rule matching `key` (see the crate documentation for conjunctions
    /// and ties), or `None`. ORs into `wc` every key bit the lookup examined: every key that
    /// agrees with `key` on the 1-bits of `wc` gets the same answer. Allocates a scratch; workers
    /// use [`lookup_with`](Self::lookup_with).
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowKey) -> Option<&Arc<Rule<R>>> {
        self.lookup_with(key, wc, &mut LookupScratch::new())
    }

    /// [`lookup`](Self::lookup) with caller-provided scratch memory.
    pub fn lookup_with(
        &self,
        key: &FlowKey,
        wc: &mut FlowKey,
        scratch: &mut LookupScratch,
    ) -> Option<&Arc<Rule<R>>> {
        let mut runs = recycle(std::mem::take(&mut scratch.runs));
        let hard = self.lookup_inner(key, wc, Some(&mut runs));
        let found = if runs.is_empty() {
            hard
        } else {
            self.complete_conjunctions(key, wc, hard, &mut runs, &mut scratch.candidates)
        };
        scratch.runs = recycle(runs);
        found
    }

    /// The tuple-space search: returns the best ordinary rule and collects the matching clause
    /// flows that could beat it into `runs`. `runs` is `None` for the `conj_id` search, which
    /// ignores clause flows (ovs-fields(7): "the search for the conj_id=id flow itself ignores
    /// conjunctive flows").
    fn lookup_inner<'a>(
        &'a self,
        key: &FlowKey,
        wc: &mut FlowKey,
        mut runs: Option<&mut Vec<Run<'a>>>,
    ) -> Option<&'a Arc<Rule<R>>> {
        let mut hard: Option<&Arc<Rule<R>>> = None;
        let conj_search = runs.is_none();
        for st in &self.ordered {
            // Subtables come by max priority, descending; once a subtable cannot reach the best
            // ordinary match found so far, no later one can. Equal priority still visits, for
            // the first-added tie-break.
            if hard.is_some_and(|h| st.max_priority < h.priority) {
                break;
            }
            if conj_search {
                // Only ordinary rules can answer the conj_id search.
                match st.max_hard_priority {
                    None => continue,
                    Some(p) if hard.is_some_and(|h| p < h.priority) => continue,
                    Some(_) => {}
                }
            }
            if st.excludes_conj_id(key) {
                // Only the conj_id bits decided (e.g. the first search of a table meets the
                // subtable of its conj_id=N action flows).
                wc.set(CONJ_ID, wc.get(CONJ_ID) | st.conj_id_bits);
                continue;
            }
            let Some(rules) = st.probe(key, wc) else {
                continue;
            };
            for r in rules {
                if hard.is_some_and(|h| r.priority < h.priority) {
                    break;
                }
                if r.conjunctions.is_empty() {
                    if hard.is_none_or(|h| r.beats(h)) {
                        hard = Some(r);
                    }
                    // The rest of the bucket is lower in (priority, seq) order.
                    break;
                }
                if let Some(runs) = runs.as_deref_mut() {
                    runs.push(Run {
                        rank: u32::MAX - r.priority,
                        conj: &r.conjunctions,
                        firsts: &r.firsts,
                        n_clause1: r.n_clause1 as usize,
                    });
                }
            }
        }
        hard
    }

    /// Given the best ordinary match `hard` and the matching clause flows `runs`, the answer:
    /// going down by priority (above `hard`'s), the complete conjunctions of each priority by
    /// ascending (id, n_clauses), each tried with a `conj_id` search.
    ///
    /// Every conjunction has a clause 1 and a clause 2, so at one priority the complete ones are
    /// among the (id, n_clauses) of the clause-1 entries, and among those of the clause-2
    /// entries: the smaller set gives the candidates, and each is checked with one binary search
    /// per clause flow of that priority (a clause flow shared by many policies carries a long
    /// list; nothing proportional to it is copied or scanned).
    fn complete_conjunctions<'a>(
        &'a self,
        key: &FlowKey,
        wc: &mut FlowKey,
        hard: Option<&'a Arc<Rule<R>>>,
        runs: &mut Vec<Run<'a>>,
        candidates: &mut Vec<(u32, u8)>,
    ) -> Option<&'a Arc<Rule<R>>> {
        // Clause flows at or below the best ordinary match cannot change the answer (an ordinary
        // flow wins a tie with a conjunction at the same priority).
        if let Some(h) = hard {
            let floor = u32::MAX - h.priority;
            runs.retain(|r| r.rank < floor);
        }
        runs.sort_unstable_by_key(|r| r.rank);
        for group in runs.chunk_by(|a, b| a.rank == b.rank) {
            let (n1, n2) = group.iter().fold((0, 0), |(n1, n2), r| {
                (n1 + r.n_clause1, n2 + (r.firsts.len() - r.n_clause1))
            });
            if n1 == 0 || n2 == 0 {
                continue;
            }
            candidates.clear();
            for r in group {
                let (c1, c2) = r.firsts.split_at(r.n_clause1.min(r.firsts.len()));
                candidates.extend_from_slice(if n1 <= n2 { c1 } else { c2 });
            }
            if group.len() > 1 {
                candidates.sort_unstable();
            }
            candidates.dedup();
            for &(id, n) in candidates.iter() {
                let mut seen = 0u64;
                for r in group {
                    let start = r.conj.partition_point(|c| (c.id, c.n_clauses) < (id, n));
                    for c in r.conj.get(start..).unwrap_or_default() {
                        if c.id != id || c.n_clauses != n {
                            break;
                        }
                        seen |= 1u64 << (c.clause - 1);
                    }
                }
                if seen == all_clauses(n) {
                    // Complete: look for the action flow with conj_id set, ignoring clause flows.
                    let mut k = *key;
                    k.set(CONJ_ID, u64::from(id));
                    if let Some(r) = self.lookup_inner(&k, wc, None) {
                        return Some(r);
                    }
                    // No flow for conj_id=id: as if this conjunction had not matched.
                }
            }
        }
        hard
    }

    /// The rule with exactly this match and priority.
    pub fn find_strict(&self, m: &Match, priority: u32) -> Option<&Arc<Rule<R>>> {
        let slot = *self.by_mask.get(m.mask())?;
        let st = self.slots.get(slot as usize)?.as_ref()?;
        st.find_exact(&st.mask.compact(m.value()), priority)
    }

    /// Every rule whose match is at least as specific as `m` (OVS's loose `del-flows` /
    /// `mod-flows` selection), in no particular order.
    pub fn iter_loose<'a>(&'a self, m: &'a Match) -> impl Iterator<Item = &'a Arc<Rule<R>>> + 'a {
        self.slots
            .iter()
            .flatten()
            .filter(move |st| {
                let om = m.mask();
                st.mask
                    .mask
                    .words
                    .iter()
                    .zip(om.words.iter())
                    .all(|(s, o)| s & o == *o)
            })
            .flat_map(|st| st.rules())
            .filter(move |r| r.to_match().is_at_least_as_specific_as(m))
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Rule<R>>> {
        self.slots.iter().flatten().flat_map(|st| st.rules())
    }
}

/// The writer side of one OpenFlow table's classifier. Owned by the control thread.
///
/// # Thread safety
/// Single writer, any number of lock-free readers ([`ClassifierReader`], one per worker).
/// - Changes are staged in a [`Bundle`], which edits a private fork of the current snapshot
///   (copy-on-write at subtable and shard granularity), invisible to everyone.
/// - [`Bundle::commit`] seals the fork (version + 1) and publishes it: first into an
///   [`ArcSwap`] (readers load it without locks), then the version into an `AtomicU64` with
///   `Release`. A reader loads the version with `Acquire` at the start of each batch; seeing the
///   new number guarantees its following `ArcSwap` load returns that snapshot or a newer one.
/// - A reader keeps its `Arc<Snapshot>` for the whole batch, so a batch sees one version from
///   start to end, and old versions stay valid for whoever still holds them.
/// - Memory: the writer keeps each replaced snapshot until every live reader has adopted a newer
///   version, then drops it on the control thread, so workers never free table memory.
pub struct Classifier<R> {
    publisher: Publisher<Snapshot<R>>,
    next_seq: u64,
    mask_cache: HashMap<FlowKey, Arc<MaskInfo>>,
}

impl<R> std::fmt::Debug for Classifier<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("current", self.publisher.current())
            .field("retired", &self.publisher.retired())
            .field("readers", &self.publisher.readers())
            .finish()
    }
}

impl<R> Default for Classifier<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> Classifier<R> {
    /// An empty table at version 0.
    pub fn new() -> Self {
        Self {
            publisher: Publisher::new(Arc::new(Snapshot::empty())),
            next_seq: 0,
            mask_cache: HashMap::new(),
        }
    }

    /// The newest published snapshot.
    pub fn snapshot(&self) -> &Arc<Snapshot<R>> {
        self.publisher.current()
    }

    /// The newest published version.
    pub fn version(&self) -> u64 {
        self.publisher.version()
    }

    /// A reader handle for one worker.
    pub fn reader(&mut self) -> ClassifierReader<R> {
        self.publisher.reader()
    }

    /// The oldest version any live reader still uses (the current version without readers).
    pub fn min_reader_version(&mut self) -> u64 {
        self.publisher.min_reader_version()
    }

    /// True when every live reader runs `version` or newer (e.g. to answer an OpenFlow barrier
    /// after a commit only once no worker can still use the old rules).
    pub fn readers_reached(&mut self, version: u64) -> bool {
        self.publisher.readers_reached(version)
    }

    /// Drops the retired snapshots no reader can still hold. Also runs on every commit.
    pub fn reclaim(&mut self) {
        self.publisher.reclaim();
    }

    /// Starts a bundle of changes against the current version.
    pub fn bundle(&mut self) -> Bundle<'_, R> {
        let next = self.publisher.current().fork();
        Bundle { cls: self, next }
    }
}

/// A set of changes that becomes visible all at once on [`commit`](Bundle::commit). Dropping it
/// without committing discards the changes.
pub struct Bundle<'a, R> {
    cls: &'a mut Classifier<R>,
    next: Snapshot<R>,
}

impl<R> std::fmt::Debug for Bundle<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("base_version", &self.cls.publisher.version())
            .field("rules", &self.next.n_rules)
            .finish()
    }
}

fn check_conjunctions(m: &Match, conj: &[Conjunction]) -> Result<(), ClassifierError> {
    for c in conj {
        if !(2..=64).contains(&c.n_clauses) {
            return Err(ClassifierError::BadClauseCount {
                id: c.id,
                clause: c.clause,
                n_clauses: c.n_clauses,
            });
        }
        if c.clause == 0 || c.clause > c.n_clauses {
            return Err(ClassifierError::BadClause {
                id: c.id,
                clause: c.clause,
                n_clauses: c.n_clauses,
            });
        }
    }
    if !conj.is_empty() && m.mask().get(CONJ_ID) != 0 {
        return Err(ClassifierError::ConjunctionMatchesConjId);
    }
    Ok(())
}

impl<R> Bundle<'_, R> {
    /// The table as this bundle would publish it (lookups are not available until the commit,
    /// but strict and loose queries are).
    pub fn pending(&self) -> &Snapshot<R> {
        &self.next
    }

    fn mask_info(&mut self, mask: &FlowKey) -> Arc<MaskInfo> {
        if let Some(mi) = self.cls.mask_cache.get(mask) {
            return Arc::clone(mi);
        }
        let mi = Arc::new(MaskInfo::new(mask));
        self.cls.mask_cache.insert(*mask, Arc::clone(&mi));
        mi
    }

    /// The subtable for `mask`, created if needed, made unique (copied if shared).
    fn subtable_mut(&mut self, mask: &FlowKey) -> &mut Subtable<R> {
        let slot = match self.next.by_mask.get(mask) {
            Some(&s) => s,
            None => {
                let mi = self.mask_info(mask);
                let st = Some(Arc::new(Subtable::new(mi)));
                let s = match self.next.free_slots.pop() {
                    Some(s) => {
                        self.next.slots[s as usize] = st;
                        s
                    }
                    None => {
                        self.next.slots.push(st);
                        (self.next.slots.len() - 1) as u32
                    }
                };
                Arc::make_mut(&mut self.next.by_mask).insert(*mask, s);
                s
            }
        };
        let entry = &mut self.next.slots[slot as usize];
        let arc =
            entry.get_or_insert_with(|| Arc::new(Subtable::new(Arc::new(MaskInfo::new(mask)))));
        Arc::make_mut(arc)
    }

    /// Stores a rule. `keep` = (seq, counters) of the rule it replaces, if it inherits them.
    fn put(
        &mut self,
        m: &Match,
        priority: u32,
        payload: R,
        conjunctions: &[Conjunction],
        seq: Option<u64>,
        stats: Option<Arc<RuleStats>>,
    ) -> Option<Arc<Rule<R>>> {
        let seq = seq.unwrap_or_else(|| {
            self.cls.next_seq += 1;
            self.cls.next_seq
        });
        let stats = stats.unwrap_or_default();
        // Lookups merge clause lists; keep each rule's sorted (their order is not significant).
        let mut conj: Vec<Conjunction> = conjunctions.to_vec();
        conj.sort_unstable_by_key(|c| (c.id, c.n_clauses, c.clause));
        let part = |k: u8| {
            conj.iter()
                .filter(move |c| c.clause == k)
                .map(|c| (c.id, c.n_clauses))
        };
        let n_clause1 = part(1).count() as u32;
        let firsts: Box<[(u32, u8)]> = part(1).chain(part(2)).collect();
        let st = self.subtable_mut(m.mask());
        let rule = Arc::new(Rule {
            priority,
            seq,
            value: st.mask.compact(m.value()),
            mask: Arc::clone(&st.mask),
            conjunctions: conj.into_boxed_slice(),
            firsts,
            n_clause1,
            stats,
            payload,
        });
        let replaced = st.insert(rule);
        if replaced.is_none() {
            self.next.n_rules += 1;
        }
        replaced
    }

    /// Adds a rule. A rule with the same match and priority is replaced (OpenFlow `OFPFC_ADD`:
    /// the replacement starts with fresh counters, but keeps the old rule's place in the
    /// first-added tie-break) and returned.
    pub fn insert(
        &mut self,
        m: &Match,
        priority: u32,
        payload: R,
        conjunctions: &[Conjunction],
    ) -> Result<Option<Arc<Rule<R>>>, ClassifierError> {
        check_conjunctions(m, conjunctions)?;
        let seq = self.next.find_strict(m, priority).map(|r| r.seq);
        Ok(self.put(m, priority, payload, conjunctions, seq, None))
    }

    /// OpenFlow strict modify: replaces the payload and conjunctions of the rule with exactly
    /// this match and priority, keeping its counters. Returns the old rule.
    pub fn modify_strict(
        &mut self,
        m: &Match,
        priority: u32,
        payload: R,
        conjunctions: &[Conjunction],
    ) -> Result<Arc<Rule<R>>, ClassifierError> {
        check_conjunctions(m, conjunctions)?;
        let (seq, stats) = self
            .next
            .find_strict(m, priority)
            .map(|r| (r.seq, Arc::clone(&r.stats)))
            .ok_or(ClassifierError::NoSuchRule)?;
        self.put(m, priority, payload, conjunctions, Some(seq), Some(stats))
            .ok_or(ClassifierError::NoSuchRule)
    }

    /// OpenFlow strict delete: removes the rule with exactly this match and priority.
    pub fn delete_strict(&mut self, m: &Match, priority: u32) -> Option<Arc<Rule<R>>> {
        let slot = *self.next.by_mask.get(m.mask())?;
        let entry = self.next.slots.get_mut(slot as usize)?;
        let arc = entry.as_mut()?;
        let compact = arc.mask.compact(m.value());
        arc.find_exact(&compact, priority)?;
        let st = Arc::make_mut(arc);
        let removed = st.remove(&compact, priority)?;
        self.next.n_rules -= 1;
        if st.n_rules == 0 {
            *entry = None;
            self.next.free_slots.push(slot);
            Arc::make_mut(&mut self.next.by_mask).remove(m.mask());
        }
        Some(removed)
    }

    /// OpenFlow loose delete: removes every rule at least as specific as `m` and returns them.
    pub fn delete_loose(&mut self, m: &Match) -> Vec<Arc<Rule<R>>> {
        let victims: Vec<(Match, u32)> = self
            .next
            .iter_loose(m)
            .map(|r| (r.to_match(), r.priority))
            .collect();
        victims
            .iter()
            .filter_map(|(vm, p)| self.delete_strict(vm, *p))
            .collect()
    }

    /// OpenFlow loose modify: gives every rule at least as specific as `m` the payload
    /// `payload(old_rule)` and the conjunctions `conjunctions` (a flow's conjunction actions are
    /// part of its actions), keeping counters and tie-break places. Returns the old rules.
    pub fn modify_loose(
        &mut self,
        m: &Match,
        mut payload: impl FnMut(&Rule<R>) -> R,
        conjunctions: &[Conjunction],
    ) -> Result<Vec<Arc<Rule<R>>>, ClassifierError> {
        let targets: Vec<Arc<Rule<R>>> = self.next.iter_loose(m).cloned().collect();
        for r in &targets {
            check_conjunctions(&r.to_match(), conjunctions)?;
        }
        for r in &targets {
            let p = payload(r);
            self.put(
                &r.to_match(),
                r.priority,
                p,
                conjunctions,
                Some(r.seq),
                Some(Arc::clone(&r.stats)),
            );
        }
        Ok(targets)
    }

    /// Publishes the bundle: every change becomes visible to readers at once, as the returned
    /// version.
    pub fn commit(self) -> u64 {
        let Bundle { cls, mut next } = self;
        let version = cls.publisher.version() + 1;
        next.seal(version);
        cls.publisher.publish(Arc::new(next));
        version
    }
}

/// A worker's handle on the classifier: lock-free, allocation-free except when adopting a new
/// version (an `Arc` clone). Call [`Reader::refresh`] once at the start of every batch, then
/// pass `snapshot().version()` to the datapath cache; see [`Reader`] for the rules.
pub type ClassifierReader<R> = Reader<Snapshot<R>>;

impl<R> Versioned for Snapshot<R> {
    fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod recycle_tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let conj = [Conjunction {
            id: 1,
            clause: 1,
            n_clauses: 2,
        }];
        let mut v: Vec<Run<'_>> = Vec::with_capacity(16);
        v.push(Run {
            rank: 0,
            conj: &conj,
            firsts: &[],
            n_clause1: 0,
        });
        let cap = v.capacity();
        let back: Vec<Run<'static>> = recycle(v);
        assert!(back.is_empty());
        assert_eq!(back.capacity(), cap);
    }
}
