//! Rules, matches, conjunction clauses and per-rule counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use xvs_packet::{FlowKey, KEY_WORDS};

/// A match: a value key and a mask key (1-bits are compared). The value is kept normalized,
/// `value & !mask == 0`, so two matches that select the same packets compare equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Match {
    value: FlowKey,
    mask: FlowKey,
}

impl Match {
    /// A match from a value and a mask; bits of `value` outside `mask` are cleared.
    pub fn new(value: FlowKey, mask: FlowKey) -> Self {
        Self {
            value: value.masked(&mask),
            mask,
        }
    }

    /// The match that selects every packet.
    pub const fn catchall() -> Self {
        Self {
            value: FlowKey::ZERO,
            mask: FlowKey::ZERO,
        }
    }

    /// The (normalized) value.
    pub fn value(&self) -> &FlowKey {
        &self.value
    }

    /// The mask.
    pub fn mask(&self) -> &FlowKey {
        &self.mask
    }

    /// True when `key` agrees with the value on every mask bit.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        key.matches(&self.value, &self.mask)
    }

    /// OVS's loose-match relation (`del-flows`, `mod-flows` without `--strict`): true when
    /// `self` is at least as specific as `other`, i.e. `self` examines every bit `other`
    /// examines, with the same values there. Every packet `self` matches, `other` matches too.
    pub fn is_at_least_as_specific_as(&self, other: &Match) -> bool {
        (0..KEY_WORDS).all(|i| {
            let om = other.mask.words[i];
            self.mask.words[i] & om == om && (self.value.words[i] ^ other.value.words[i]) & om == 0
        })
    }
}

/// One `conjunction(id, clause/n_clauses)` action of a clause flow (ovs-fields(7)). `clause` is
/// 1-based as in the `ovs-ofctl` text syntax (the NXAST_CONJUNCTION wire encoding is 0-based;
/// the codec converts).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Conjunction {
    /// The conjunction id: the `conj_id` value the action flow matches.
    pub id: u32,
    /// This flow's dimension, 1..=n_clauses.
    pub clause: u8,
    /// The number of dimensions, 2..=64.
    pub n_clauses: u8,
}

/// Per-rule counters, shared by every snapshot that holds the rule (and kept by a strict
/// modify), updated by the workers without locks.
///
/// # Thread safety
/// Every field is an independent monotone quantity; all accesses are `Relaxed`. Nothing is
/// published through these counters, so no ordering with other memory is needed; a reader on
/// the control side may see `packets` and `bytes` from slightly different instants, which
/// OpenFlow statistics tolerate. Workers should add per batch (one `record` per rule per batch),
/// not per packet, to keep the shared cache line cold.
#[derive(Debug, Default)]
pub struct RuleStats {
    packets: AtomicU64,
    bytes: AtomicU64,
    last_used: AtomicU64,
    /// When a TCP FIN or RST first went through the rule (0: never), for `fin_idle_timeout`
    /// and `fin_hard_timeout`.
    fin_at: AtomicU64,
}

impl RuleStats {
    /// Adds `packets`/`bytes` and raises the last-used time to `now` (any monotonic clock the
    /// OpenFlow layer picks, e.g. milliseconds; idle timeouts compare against it).
    #[inline]
    pub fn record(&self, packets: u64, bytes: u64, now: u64) {
        // Relaxed: independent counters, see the type documentation.
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_used.fetch_max(now, Ordering::Relaxed);
    }

    /// Records that a TCP FIN or RST went through the rule at `now` (the first time counts).
    #[inline]
    pub fn record_fin(&self, now: u64) {
        // Relaxed: an independent once-set value, like the counters.
        let _ = self
            .fin_at
            .compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// When a TCP FIN or RST first went through the rule, if one did.
    pub fn fin_at(&self) -> Option<u64> {
        match self.fin_at.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// Packets counted so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes counted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The largest `now` passed to [`record`](Self::record), 0 if never used.
    pub fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }
}

/// A subtable's mask in the compact form lookups use: the indices of the non-zero mask words,
/// their bits, and where each lookup stage ends.
#[derive(Debug)]
pub(crate) struct MaskInfo {
    /// The full mask.
    pub(crate) mask: FlowKey,
    /// Number of non-zero words of `mask`.
    n: u8,
    /// Number of non-empty stages.
    n_stages: u8,
    /// Indices of the non-zero words of `mask`, ascending (the first `n`). Inline, so that a
    /// probe reads the mask from one place.
    words: [u8; KEY_WORDS],
    /// `mask.words[words[j]]` for each `j < n`.
    bits: [u64; KEY_WORDS],
    /// For each non-empty stage, the end (exclusive) of its words in `words`; the last is `n`.
    stage_ends: [u8; MAX_STAGES],
}

/// First word of each lookup stage after the first: metadata (in_port, recirc_id, marks,
/// conj_id, registers, conntrack, tunnel) is words 0..26, L2 26..28, L3 28..34, L4 34..40.
/// Stages follow the order in which a mismatch is most likely and cheapest to detect.
const STAGE_STARTS: [usize; 3] = [26, 28, 34];

/// Stage of a key word.
fn stage_of(word: usize) -> usize {
    STAGE_STARTS.iter().take_while(|&&s| word >= s).count()
}

/// Maximum number of stages, so the number of staged indices is at most `MAX_STAGES - 1`.
pub(crate) const MAX_STAGES: usize = STAGE_STARTS.len() + 1;

impl MaskInfo {
    pub(crate) fn new(mask: &FlowKey) -> Self {
        let mut words = [0u8; KEY_WORDS];
        let mut bits = [0u64; KEY_WORDS];
        let mut stage_ends = [0u8; MAX_STAGES];
        let (mut n, mut n_stages) = (0usize, 0usize);
        let mut cur_stage = None;
        for (i, &w) in mask.words.iter().enumerate() {
            if w == 0 {
                continue;
            }
            let s = stage_of(i);
            if cur_stage.is_some_and(|c| c != s) {
                stage_ends[n_stages] = n as u8;
                n_stages += 1;
            }
            cur_stage = Some(s);
            words[n] = i as u8;
            bits[n] = w;
            n += 1;
        }
        if n > 0 {
            stage_ends[n_stages] = n as u8;
            n_stages += 1;
        }
        Self {
            mask: *mask,
            n: n as u8,
            n_stages: n_stages as u8,
            words,
            bits,
            stage_ends,
        }
    }

    /// Indices of the non-zero mask words, ascending.
    #[inline(always)]
    pub(crate) fn words(&self) -> &[u8] {
        &self.words[..usize::from(self.n).min(KEY_WORDS)]
    }

    /// The mask bits of those words.
    #[inline(always)]
    pub(crate) fn bits(&self) -> &[u64] {
        &self.bits[..usize::from(self.n).min(KEY_WORDS)]
    }

    /// Where each non-empty stage ends in `words()`.
    #[inline(always)]
    pub(crate) fn stage_ends(&self) -> &[u8] {
        &self.stage_ends[..usize::from(self.n_stages).min(MAX_STAGES)]
    }

    /// The masked words of `key`, compact.
    pub(crate) fn compact(&self, key: &FlowKey) -> Arc<[u64]> {
        self.words()
            .iter()
            .zip(self.bits().iter())
            .map(|(&i, &b)| key.words[i as usize] & b)
            .collect()
    }

    /// True when the masked words of `key` equal `compact`.
    #[inline]
    pub(crate) fn eq_compact(&self, key: &FlowKey, compact: &[u64]) -> bool {
        let mut diff = 0;
        for ((&i, &b), &c) in self
            .words()
            .iter()
            .zip(self.bits().iter())
            .zip(compact.iter())
        {
            diff |= (key.words[i as usize] & b) ^ c;
        }
        diff == 0
    }

    /// ORs the mask bits of the first `end` compact words into `wc`.
    #[inline]
    pub(crate) fn unwildcard(&self, wc: &mut FlowKey, end: usize) {
        let end = end.min(self.words().len());
        for (&i, &b) in self.words()[..end].iter().zip(self.bits()[..end].iter()) {
            wc.words[i as usize] |= b;
        }
    }
}

/// A classifier rule: a match, a priority, conjunction clauses and the caller's payload.
#[derive(Debug)]
pub struct Rule<R> {
    pub(crate) priority: u32,
    /// Insertion order, for the deterministic tie-break (first added wins); kept by a replace.
    pub(crate) seq: u64,
    /// The masked value words, in the order of `mask.words`.
    pub(crate) value: Arc<[u64]>,
    pub(crate) mask: Arc<MaskInfo>,
    /// Sorted by (id, n_clauses, clause).
    pub(crate) conjunctions: Box<[Conjunction]>,
    /// The (id, n_clauses) of the clause-1 entries of `conjunctions`, then those of the
    /// clause-2 entries (`n_clause1` of the first kind), each part sorted: every conjunction
    /// has clauses 1 and 2, so a lookup draws its candidates from the smaller of the two sets.
    pub(crate) firsts: Box<[(u32, u8)]>,
    pub(crate) n_clause1: u32,
    pub(crate) stats: Arc<RuleStats>,
    pub(crate) payload: R,
}

impl<R> Rule<R> {
    /// The priority.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// The payload (the OpenFlow layer's actions and flow metadata).
    pub fn payload(&self) -> &R {
        &self.payload
    }

    /// The conjunction clauses this rule declares; empty for an ordinary rule.
    pub fn conjunctions(&self) -> &[Conjunction] {
        &self.conjunctions
    }

    /// True when this is a clause flow (it has conjunction actions and is never a lookup result).
    pub fn is_conjunctive(&self) -> bool {
        !self.conjunctions.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> &RuleStats {
        &self.stats
    }

    /// The insertion sequence number that breaks priority ties (smaller wins).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The rule's match, rebuilt from its compact form.
    pub fn to_match(&self) -> Match {
        let mut value = FlowKey::ZERO;
        for (&i, &v) in self.mask.words().iter().zip(self.value.iter()) {
            value.words[i as usize] = v;
        }
        Match {
            value,
            mask: self.mask.mask,
        }
    }

    /// The rule's mask.
    pub fn mask(&self) -> &FlowKey {
        &self.mask.mask
    }

    /// True when `self` beats `other` for the same packet: higher priority, then first added.
    #[inline]
    pub(crate) fn beats(&self, other: &Rule<R>) -> bool {
        self.priority > other.priority || (self.priority == other.priority && self.seq < other.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_packet::key::layout::*;

    #[test]
    fn stages_split_by_layer() {
        let mut m = FlowKey::ZERO;
        m.set(IN_PORT, u64::MAX);
        m.set(ETH_TYPE, u64::MAX);
        m.set(NW_SRC, u64::MAX);
        m.set(NW_PROTO, u64::MAX);
        m.set(TP_DST, u64::MAX);
        let mi = MaskInfo::new(&m);
        assert_eq!(mi.words(), &[0, 26, 28, 33, 34]);
        assert_eq!(mi.stage_ends(), &[1, 2, 4, 5]);
        let empty = MaskInfo::new(&FlowKey::ZERO);
        assert!(empty.words().is_empty() && empty.stage_ends().is_empty());
    }

    #[test]
    fn loose_specificity() {
        let mut v = FlowKey::ZERO;
        v.set(NW_SRC, 0x0a00_0001);
        let mut m = FlowKey::ZERO;
        m.set(NW_SRC, 0xffff_ffff);
        let host = Match::new(v, m);
        m.set(NW_SRC, 0xffff_ff00);
        let net = Match::new(v, m);
        assert!(host.is_at_least_as_specific_as(&net));
        assert!(!net.is_at_least_as_specific_as(&host));
        assert!(host.is_at_least_as_specific_as(&Match::catchall()));
        v.set(NW_SRC, 0x0b00_0001);
        let other = Match::new(v, m);
        assert!(!host.is_at_least_as_specific_as(&other));
    }

    #[test]
    fn stats_accumulate() {
        let s = RuleStats::default();
        s.record(2, 120, 5);
        s.record(1, 60, 3);
        assert_eq!((s.packets(), s.bytes(), s.last_used()), (3, 180, 5));
    }
}
