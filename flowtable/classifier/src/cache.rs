//! The datapath cache of one worker: the exact-match cache in front of the megaflow cache, bound
//! to one classifier version, with per-tier counters.

use xvs_packet::FlowKey;

use crate::error::InsertError;
use crate::exact::{ExactCache, Insertion};
use crate::megaflow::{MegaflowCache, MegaflowConfig, MegaflowId, MegaflowStats};

/// Configuration of a [`DatapathCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The megaflow tier.
    pub megaflow: MegaflowConfig,
    /// Slots of the exact-match tier.
    pub exact_entries: usize,
    /// Admission policy of the exact-match tier.
    pub exact_insertion: Insertion,
    /// Switch the exact-match tier off while its hit rate is below this percentage (0: never).
    /// See [`DatapathCache`], "Exact-match bypass".
    pub exact_min_hit_percent: u8,
    /// Try each key against the last answer of the previous batch before the exact-match tier
    /// (see [`DatapathCache::lookup_batch`]).
    pub repeat_first: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            megaflow: MegaflowConfig::default(),
            exact_entries: 8192,
            exact_insertion: Insertion::Always,
            exact_min_hit_percent: 50,
            repeat_first: true,
        }
    }
}

/// Per-tier counters. Totals since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys answered by the exact-match tier.
    pub exact_hits: u64,
    /// Keys answered by the megaflow tier (including `repeat_hits`).
    pub megaflow_hits: u64,
    /// Megaflow hits found by comparing the key with the previous answer, before any hash:
    /// consecutive packets of one megaflow (see [`DatapathCache::lookup_batch`]).
    pub repeat_hits: u64,
    /// Keys neither tier answered (to be translated).
    pub misses: u64,
    /// Entries written into the exact-match tier.
    pub exact_inserts: u64,
    /// Batches that found a new table version and flushed.
    pub flushes: u64,
    /// Keys that skipped the exact-match tier because it was bypassed (went straight to the
    /// megaflow tier).
    pub exact_skipped: u64,
    /// Times the exact-match tier was bypassed for low hit rate.
    pub exact_bypasses: u64,
}

/// Keys looked up through the exact-match tier per measurement window.
pub const EXACT_WINDOW: u32 = 8192;
/// Longest bypass, in windows' worth of keys (the back-off doubles up to it).
pub const EXACT_MAX_BACKOFF: u32 = 64;

/// The two cache tiers of one worker. Owned by that worker's thread; no locks, no allocation
/// on lookups.
///
/// # Freshness after a table change
/// Call [`begin_batch`](Self::begin_batch) with the version of the classifier snapshot the
/// worker adopted for this batch ([`ClassifierReader::refresh`](crate::ClassifierReader::refresh)).
/// If it differs from the version the entries were built from, both tiers are flushed in O(1)
/// (the megaflow generation moves on; exact-match hits are verified against live megaflows,
/// so they die with them). Every entry used during the batch was therefore translated from
/// exactly the snapshot the batch uses for its misses, and inserts from another version are
/// refused. Since the writer publishes a version with `Release` and the reader loads it with
/// `Acquire` at every batch start, any batch that starts after a commit returned uses only
/// entries derived from the committed tables or newer.
///
/// # Exact-match bypass
/// With more live flows than exact-match slots, the tier thrashes: nearly every key pays its
/// hash, a probe and an insertion, and then the megaflow lookup anyway. The tier therefore
/// measures its hit rate over windows of [`EXACT_WINDOW`] keys; when a window's rate is below
/// [`CacheConfig::exact_min_hit_percent`], the next keys skip it entirely (no hash, no probe,
/// no insertion) for a back-off of 1, 2, 4 .. [`EXACT_MAX_BACKOFF`] windows' worth of keys,
/// doubling each time a probation window after a bypass fails again and reset to 1 when one
/// succeeds. OVS leaves this to the operator (`emc-insert-inv-prob`, `smc-enable`); here it
/// follows the traffic. Bypassing changes cost only, never answers: the megaflow tier alone
/// is authoritative.
#[derive(Debug)]
pub struct DatapathCache<A> {
    exact: ExactCache,
    megaflow: MegaflowCache<A>,
    stats: CacheStats,
    min_hit_percent: u32,
    /// Keys and exact hits of the current measurement window.
    window_keys: u32,
    window_hits: u32,
    /// Keys still to skip the exact tier (0: the tier is in use).
    bypass_left: u64,
    /// Windows' worth of keys the next bypass lasts.
    backoff: u32,
    /// The answer to the last key answered, tried first for the next keys.
    last: Option<MegaflowId>,
    repeat_first: bool,
}

/// Keys handled per inner round (the pending-set bitmap width).
const CHUNK: usize = 64;

impl<A> DatapathCache<A> {
    /// Allocates both tiers.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            exact: ExactCache::new(config.exact_entries, config.exact_insertion),
            megaflow: MegaflowCache::new(config.megaflow),
            stats: CacheStats::default(),
            min_hit_percent: u32::from(config.exact_min_hit_percent.min(100)),
            window_keys: 0,
            window_hits: 0,
            bypass_left: 0,
            backoff: 1,
            last: None,
            repeat_first: config.repeat_first,
        }
    }

    /// True while the exact-match tier is bypassed for low hit rate.
    pub fn exact_bypassed(&self) -> bool {
        self.bypass_left > 0
    }

    /// Accounts one chunk of keys looked up through the exact tier and, at the end of a
    /// window, decides whether the tier pays.
    #[inline]
    fn end_exact_chunk(&mut self, keys: u32, hits: u32) {
        if self.min_hit_percent == 0 {
            return;
        }
        self.window_keys += keys;
        self.window_hits += hits;
        if self.window_keys < EXACT_WINDOW {
            return;
        }
        if u64::from(self.window_hits) * 100
            < u64::from(self.window_keys) * u64::from(self.min_hit_percent)
        {
            self.bypass_left = u64::from(self.backoff) * u64::from(EXACT_WINDOW);
            self.backoff = (self.backoff * 2).min(EXACT_MAX_BACKOFF);
            self.stats.exact_bypasses += 1;
        } else {
            self.backoff = 1;
        }
        self.window_keys = 0;
        self.window_hits = 0;
    }

    /// Binds the caches to table `version`, flushing both tiers if it changed. Returns true on a
    /// flush.
    #[inline]
    pub fn begin_batch(&mut self, version: u64) -> bool {
        let flushed = self.megaflow.set_version(version);
        if flushed {
            self.stats.flushes += 1;
        }
        flushed
    }

    /// Drops every entry now, in O(1), keeping the version: for changes the table version
    /// does not capture (the worker's own port list, which cached output indices point into).
    pub fn flush(&mut self) {
        let version = self.megaflow.version();
        self.megaflow.flush(version);
        self.stats.flushes += 1;
    }

    /// The version the entries are built from.
    pub fn version(&self) -> u64 {
        self.megaflow.version()
    }

    /// Looks every key up: first against the last answer of the previous batch (chunk of 64),
    /// so that traffic dominated by one megaflow costs one masked compare per packet and no
    /// hash; then the exact-match tier, then the megaflow tier (subtable by subtable over the
    /// remaining keys); megaflow hits are admitted to the exact-match tier. `out[i]` is the entry for `keys[i]`, or `None` for a miss. Only
    /// `min(keys.len(), out.len())` keys are processed.
    ///
    /// The previous answer is used only while live, and only for keys that match it, so it is
    /// as exact as a megaflow lookup (live megaflows never overlap); a flush kills it with the
    /// rest. Its hits count as megaflow hits and as `repeat_hits`.
    pub fn lookup_batch(&mut self, keys: &[FlowKey], out: &mut [Option<MegaflowId>]) {
        let n = keys.len().min(out.len());
        let mut hashes = [0u64; CHUNK];
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK).min(n);
            let ks = &keys[start..end];
            let os = &mut out[start..end];
            os.fill(None);
            let mut pending = if ks.len() >= 64 {
                u64::MAX
            } else {
                (1u64 << ks.len()) - 1
            };
            if let Some(id) = self.last {
                let repeats = self.megaflow.repeat_hits(id, ks, pending);
                if repeats != 0 {
                    pending &= !repeats;
                    let mut bits = repeats;
                    while bits != 0 {
                        let i = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        os[i] = Some(id);
                    }
                    let r = u64::from(repeats.count_ones());
                    self.stats.repeat_hits += r;
                    self.stats.megaflow_hits += r;
                }
            }
            let to_exact = pending.count_ones();
            let exact_used = self.exact.enabled() && self.bypass_left == 0;
            if exact_used && pending != 0 {
                // Three passes rather than one per key: hashing is pure compute, and the
                // bucket and entry loads of different keys are independent, so the CPU can
                // have many of them in flight at once.
                let mut bits = pending;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    hashes[i] = self.exact.hash(&ks[i]);
                }
                let mut bits = pending;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    os[i] = self.exact.find(hashes[i]);
                }
                let mut hits = 0;
                let mut bits = pending;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    match os[i] {
                        Some(id) if self.megaflow.matches(id, &ks[i]) => {
                            self.megaflow.count_hit(id);
                            hits += 1;
                            pending &= !(1u64 << i);
                        }
                        _ => os[i] = None,
                    }
                }
                self.stats.exact_hits += u64::from(hits);
                self.end_exact_chunk(to_exact, hits);
            } else if self.bypass_left > 0 {
                self.bypass_left = self.bypass_left.saturating_sub(u64::from(to_exact));
                self.stats.exact_skipped += u64::from(to_exact);
            }
            if pending != 0 {
                let missed = self.megaflow.lookup_masked(ks, pending, os);
                let mut hit = pending & !missed;
                self.stats.megaflow_hits += u64::from(hit.count_ones());
                self.stats.misses += u64::from(missed.count_ones());
                if !exact_used {
                    // Bypassed (or off): no insertion either (and no hashes to insert by).
                    hit = 0;
                }
                while hit != 0 {
                    let i = hit.trailing_zeros() as usize;
                    hit &= hit - 1;
                    if let Some(id) = os[i] {
                        if self.exact.insert(hashes[i], id) {
                            self.stats.exact_inserts += 1;
                        }
                    }
                }
            }
            if self.repeat_first {
                if let Some(found) = os.iter().rev().find_map(|o| *o) {
                    self.last = Some(found);
                }
            }
            start = end;
        }
    }

    /// Installs the megaflow translated for `key` from table `version` (see
    /// [`MegaflowCache::insert`]).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        actions: A,
        version: u64,
    ) -> Result<MegaflowId, InsertError> {
        self.megaflow.insert(key, mask, actions, version)
    }

    /// The actions of a live entry.
    #[inline]
    pub fn actions(&self, id: MegaflowId) -> Option<&A> {
        self.megaflow.get(id)
    }

    /// The actions of a live entry, mutable.
    #[inline]
    pub fn actions_mut(&mut self, id: MegaflowId) -> Option<&mut A> {
        self.megaflow.get_mut(id)
    }

    /// Per-tier counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The megaflow tier's own counters.
    pub fn megaflow_stats(&self) -> &MegaflowStats {
        self.megaflow.stats()
    }

    /// The megaflow tier (dumps, removal, revalidation).
    pub fn megaflow(&self) -> &MegaflowCache<A> {
        &self.megaflow
    }

    /// The megaflow tier, mutable.
    pub fn megaflow_mut(&mut self) -> &mut MegaflowCache<A> {
        &mut self.megaflow
    }

    /// The exact-match tier.
    pub fn exact(&self) -> &ExactCache {
        &self.exact
    }
}
