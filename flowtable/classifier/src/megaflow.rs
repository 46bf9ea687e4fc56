//! The per-worker megaflow cache: tuple-space search over masked keys, one subtable per mask,
//! subtables ranked by hits, fixed capacity.

use std::cmp::Reverse;

use hashbrown::{HashMap, HashTable};
use xvs_packet::key::layout::RECIRC_ID;
use xvs_packet::{FlowKey, KEY_WORDS};

use crate::error::InsertError;
use crate::hash;

/// A handle on a megaflow entry: an index into the cache's entry array. Valid until the entry
/// is removed or the cache is flushed; [`MegaflowCache::get`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MegaflowId(pub(crate) u32);

impl MegaflowId {
    /// The entry index.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// Counters of the megaflow tier. All are totals since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MegaflowStats {
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Subtables probed by the lookups that hit (divide by `hits` for OVS's "avg. subtable
    /// lookups per megaflow hit").
    pub subtable_lookups_on_hit: u64,
    /// Entries installed.
    pub inserted: u64,
    /// Inserts answered with an existing entry that already covers the key (two packets of a
    /// new flow in one batch both missed).
    pub duplicates: u64,
    /// Inserts refused because every entry slot was in use.
    pub refused_full: u64,
    /// Inserts refused because the subtable limit was reached.
    pub refused_masks: u64,
    /// Inserts refused because they were translated from another table version.
    pub refused_stale: u64,
    /// Flushes (table version changes).
    pub flushes: u64,
    /// Subtable re-rankings.
    pub resorts: u64,
}

/// Masked words kept inline at the head of an entry: a hit on a mask of at most this many
/// non-zero words reads one cache line of the entry.
const INLINE: usize = 4;

/// An entry. `repr(C)` keeps the fields a hit reads (hash, generation, counters, the first
/// masked words) in the first cache line; the full masked key (for dumps and wide masks) follows.
#[repr(C)]
struct Entry<A> {
    hash: u64,
    /// Generation of the cache when the entry was made; valid only while equal to the cache's.
    gen: u64,
    hits: u64,
    subtable: u16,
    /// The key's masked words in the subtable's word order (the first `INLINE` of them).
    inline: [u64; INLINE],
    actions: Option<A>,
    /// The key masked by the subtable's mask.
    key: FlowKey,
}

struct MfSubtable {
    mask: FlowKey,
    /// Number of non-zero mask words.
    n: usize,
    /// Their indices and bits (the first `n` are meaningful).
    words: [u8; KEY_WORDS],
    bits: [u64; KEY_WORDS],
    /// Entry indices, hashed by the masked key.
    table: HashTable<u32>,
    /// The subtable is logically empty unless `gen` equals the cache's generation.
    gen: u64,
    live: u32,
    /// Hits since the last ranking.
    interval_hits: u64,
    /// The entry of the subtable's latest batch hit, tried before hashing in
    /// [`MegaflowCache::lookup_masked`] (valid only while that entry is live in this subtable).
    last_hit: u32,
    /// A 256-bit filter of the `recirc_id`s of the entries inserted since the subtable was
    /// (re)started: a key whose bit is clear cannot match any entry, so the lookup skips this
    /// subtable for it without hashing. Each datapath pass (recirculation) of a packet gets its
    /// own recirc_id and usually its own masks, so a pass probes only its own subtables
    /// instead of every pass's. All ones when the mask does not match `recirc_id` exactly.
    /// Bits are never cleared by removals (a stale bit costs a probe, never a wrong answer).
    recirc_filter: [u64; 4],
    filter_recirc: bool,
}

/// The bit of `recirc_id` in a subtable's filter: a multiplicative hash, so that the small
/// sequential ids spread over the 256 bits.
#[inline(always)]
fn recirc_bit(recirc_id: u64) -> (usize, u64) {
    let h = (recirc_id as u32).wrapping_mul(0x9e37_79b1) >> 24;
    ((h >> 6) as usize & 3, 1u64 << (h & 63))
}

impl MfSubtable {
    fn new(mask: &FlowKey, gen: u64) -> Self {
        let mut words = [0u8; KEY_WORDS];
        let mut bits = [0u64; KEY_WORDS];
        let mut n = 0;
        for (i, &w) in mask.words.iter().enumerate() {
            if w != 0 {
                words[n] = i as u8;
                bits[n] = w;
                n += 1;
            }
        }
        let filter_recirc = mask.get(RECIRC_ID) == RECIRC_ID.max_value();
        Self {
            mask: *mask,
            n,
            words,
            bits,
            table: HashTable::new(),
            gen,
            live: 0,
            interval_hits: 0,
            last_hit: u32::MAX,
            recirc_filter: if filter_recirc { [0; 4] } else { [u64::MAX; 4] },
            filter_recirc,
        }
    }

    /// False when no entry of this subtable can match `key` because of its `recirc_id`.
    #[inline(always)]
    fn may_hold(&self, key: &FlowKey) -> bool {
        let (w, b) = recirc_bit(key.get(RECIRC_ID));
        self.recirc_filter[w] & b != 0
    }

    /// Empties the filter (the subtable restarts in a new generation).
    fn reset_filter(&mut self) {
        if self.filter_recirc {
            self.recirc_filter = [0; 4];
        }
    }

    fn note_recirc(&mut self, key: &FlowKey) {
        let (w, b) = recirc_bit(key.get(RECIRC_ID));
        self.recirc_filter[w] |= b;
    }

    #[inline(always)]
    fn hash(&self, key: &FlowKey, seed: u64) -> u64 {
        let mut h = seed;
        for j in 0..self.n.min(KEY_WORDS) {
            h = hash::add(h, key.words[usize::from(self.words[j])] & self.bits[j]);
        }
        hash::finish(h)
    }

    /// The first `INLINE` masked words of `key`.
    fn inline_words(&self, key: &FlowKey) -> [u64; INLINE] {
        let mut out = [0; INLINE];
        for (j, o) in out.iter_mut().enumerate().take(self.n) {
            *o = key.words[usize::from(self.words[j])] & self.bits[j];
        }
        out
    }

    /// True when `key` masked by this subtable's mask equals the entry's masked key.
    #[inline(always)]
    fn entry_eq<A>(&self, key: &FlowKey, e: &Entry<A>) -> bool {
        let mut diff = 0;
        if self.n <= INLINE {
            for j in 0..self.n {
                diff |= (key.words[usize::from(self.words[j])] & self.bits[j]) ^ e.inline[j];
            }
        } else {
            for j in 0..self.n.min(KEY_WORDS) {
                let i = usize::from(self.words[j]);
                diff |= (key.words[i] & self.bits[j]) ^ e.key.words[i];
            }
        }
        diff == 0
    }
}

/// Configuration of a [`MegaflowCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MegaflowConfig {
    /// Maximum number of entries (OVS's default flow limit is 200 000 per datapath; per worker,
    /// 65 536 is a good start).
    pub capacity: u32,
    /// Maximum number of distinct masks.
    pub max_subtables: u16,
    /// Re-rank subtables by hits every this many lookups.
    pub resort_interval: u32,
}

impl Default for MegaflowConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            max_subtables: 1024,
            resort_interval: 64 * 1024,
        }
    }
}

/// The megaflow cache of one worker.
///
/// # Invariants
/// - Entries do not overlap: no key matches two live entries. Each entry is installed from one
///   classifier translation, and a lookup is a decision tree over key bits: every probe tests
///   some masked bits, and the wildcard mask is the union of the bits tested on the key's path.
///   Two keys that take different paths diverge at a probe that tested bits both masks contain,
///   with different values there, so their megaflows are disjoint; two keys on the same path get
///   the same mask and the same masked value, i.e. the same megaflow, which [`insert`] detects
///   (it looks the key up first). This holds for a translation made of several table lookups
///   too, provided every decision translation takes on key bits is recorded in the mask.
///   Debug builds assert it on every insert while the cache is small.
/// - Every live entry was built from the table version the cache is bound to
///   ([`flush`](Self::flush) on a version change; [`insert`] refuses other versions).
///
/// [`insert`]: Self::insert
pub struct MegaflowCache<A> {
    entries: Vec<Entry<A>>,
    capacity: u32,
    /// Next never-used-in-this-generation entry index.
    bump: u32,
    /// Freed indices of this generation.
    free: Vec<u32>,
    subtables: Vec<MfSubtable>,
    by_mask: HashMap<FlowKey, u16>,
    /// Subtable indices in probe order.
    order: Vec<u16>,
    max_subtables: u16,
    gen: u64,
    version: u64,
    seed: u64,
    resort_interval: u32,
    until_resort: u32,
    live: u32,
    stats: MegaflowStats,
}

impl<A> std::fmt::Debug for MegaflowCache<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegaflowCache")
            .field("live", &self.live)
            .field("capacity", &self.capacity)
            .field("subtables", &self.subtables.len())
            .field("version", &self.version)
            .field("stats", &self.stats)
            .finish()
    }
}

/// A live entry, as returned by [`MegaflowCache::iter`] (for `dpctl/dump-flows` and revalidation).
#[derive(Debug)]
pub struct MegaflowRef<'a, A> {
    /// The handle.
    pub id: MegaflowId,
    /// The masked key.
    pub key: &'a FlowKey,
    /// The mask.
    pub mask: &'a FlowKey,
    /// The actions.
    pub actions: &'a A,
    /// Packets that hit this entry.
    pub hits: u64,
}

impl<A> MegaflowCache<A> {
    /// Most entries a cache can have (2^24); larger capacities are clamped.
    pub const MAX_CAPACITY: u32 = 1 << 24;

    /// An empty cache bound to table version 0. Reserves the entry array up front.
    pub fn new(config: MegaflowConfig) -> Self {
        let capacity = config.capacity.clamp(1, Self::MAX_CAPACITY);
        Self {
            entries: Vec::with_capacity(capacity as usize),
            capacity,
            bump: 0,
            free: Vec::with_capacity(capacity as usize),
            subtables: Vec::with_capacity(usize::from(config.max_subtables)),
            by_mask: HashMap::new(),
            order: Vec::with_capacity(usize::from(config.max_subtables)),
            max_subtables: config.max_subtables.max(1),
            gen: 1,
            version: 0,
            seed: hash::random_seed(),
            resort_interval: config.resort_interval.max(1),
            until_resort: config.resort_interval.max(1),
            live: 0,
            stats: MegaflowStats::default(),
        }
    }

    /// The table version the entries were built from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.live as usize
    }

    /// True when there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of subtables holding at least one live entry.
    pub fn n_subtables(&self) -> usize {
        self.subtables
            .iter()
            .filter(|s| s.gen == self.gen && s.live > 0)
            .count()
    }

    /// The counters.
    pub fn stats(&self) -> &MegaflowStats {
        &self.stats
    }

    /// Drops every entry in O(1) and binds the cache to `version`: entries carry the generation
    /// they were made in, and the generation moves on. Subtables are emptied lazily on their
    /// next insert; entry slots are reused from index 0.
    pub fn flush(&mut self, version: u64) {
        self.gen += 1;
        self.version = version;
        self.bump = 0;
        self.free.clear();
        self.live = 0;
        self.stats.flushes += 1;
    }

    /// Binds to `version`, flushing if it differs from the current one. Returns true on a flush.
    #[inline]
    pub fn set_version(&mut self, version: u64) -> bool {
        if version == self.version {
            return false;
        }
        self.flush(version);
        true
    }

    /// True when `id` is a live entry and `key` matches it (used to verify exact-cache hits).
    #[inline]
    pub fn matches(&self, id: MegaflowId, key: &FlowKey) -> bool {
        let Some(e) = self.entries.get(id.0 as usize) else {
            return false;
        };
        e.gen == self.gen
            && self
                .subtables
                .get(usize::from(e.subtable))
                .is_some_and(|st| st.entry_eq(key, e))
    }

    /// The keys among `pending` (bit i = `keys[i]`, at most 64) that match live entry `id`,
    /// as a bit set; counts them as hits of `id`, one subtable examined each. The entry and its
    /// subtable are looked up once for the whole set.
    pub(crate) fn repeat_hits(&mut self, id: MegaflowId, keys: &[FlowKey], pending: u64) -> u64 {
        let Some(e) = self.entries.get(id.0 as usize) else {
            return 0;
        };
        if e.gen != self.gen {
            return 0;
        }
        let Some(st) = self.subtables.get(usize::from(e.subtable)) else {
            return 0;
        };
        let mut matched = 0u64;
        let mut bits = pending;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if keys.get(i).is_some_and(|k| st.entry_eq(k, e)) {
                matched |= 1u64 << i;
            }
        }
        let n = matched.count_ones();
        if n > 0 {
            self.record_hits(id.0, u64::from(n), 1);
        }
        matched
    }

    /// Counts a hit found by an upper tier (the exact-match cache).
    #[inline]
    pub(crate) fn count_hit(&mut self, id: MegaflowId) {
        if let Some(e) = self.entries.get_mut(id.0 as usize) {
            e.hits += 1;
        }
    }

    /// The actions of a live entry.
    #[inline]
    pub fn get(&self, id: MegaflowId) -> Option<&A> {
        let e = self.entries.get(id.0 as usize)?;
        if e.gen != self.gen {
            return None;
        }
        e.actions.as_ref()
    }

    /// The actions of a live entry, mutable (per-entry state the owner keeps with its actions,
    /// e.g. statistics not yet credited).
    #[inline]
    pub fn get_mut(&mut self, id: MegaflowId) -> Option<&mut A> {
        let gen = self.gen;
        let e = self.entries.get_mut(id.0 as usize)?;
        if e.gen != gen {
            return None;
        }
        e.actions.as_mut()
    }

    /// The hit count of a live entry.
    pub fn hits(&self, id: MegaflowId) -> Option<u64> {
        let e = self.entries.get(id.0 as usize)?;
        (e.gen == self.gen).then_some(e.hits)
    }

    fn maybe_resort(&mut self, lookups: u32) {
        if self.until_resort > lookups {
            self.until_resort -= lookups;
            return;
        }
        self.until_resort = self.resort_interval;
        let subtables = &self.subtables;
        let gen = self.gen;
        // In place, no allocation (this runs on the worker).
        self.order.sort_unstable_by_key(|&i| {
            let st = &subtables[usize::from(i)];
            Reverse(if st.gen == gen { st.interval_hits } else { 0 })
        });
        for st in &mut self.subtables {
            st.interval_hits = 0;
        }
        self.stats.resorts += 1;
    }

    /// Finds the entry `key` matches, without counting.
    fn find(&self, key: &FlowKey) -> Option<(u32, u32)> {
        let mut probes = 0;
        for &si in &self.order {
            let st = &self.subtables[usize::from(si)];
            if st.gen != self.gen || st.live == 0 || !st.may_hold(key) {
                continue;
            }
            probes += 1;
            let h = st.hash(key, self.seed);
            let entries = &self.entries;
            if let Some(&idx) = st.table.find(h, |&i| {
                let e = &entries[i as usize];
                e.hash == h && st.entry_eq(key, e)
            }) {
                return Some((idx, probes));
            }
        }
        None
    }

    /// Looks one key up; counts the hit or miss.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<MegaflowId> {
        let r = self.find(key);
        match r {
            Some((idx, probes)) => {
                self.record_hit(idx, probes);
            }
            None => self.stats.misses += 1,
        }
        self.maybe_resort(1);
        r.map(|(idx, _)| MegaflowId(idx))
    }

    #[inline]
    fn record_hit(&mut self, idx: u32, probes: u32) {
        self.record_hits(idx, 1, probes);
    }

    /// Counts `n` hits on entry `idx`, each found at subtable probe `probes`.
    #[inline]
    fn record_hits(&mut self, idx: u32, n: u64, probes: u32) {
        let e = &mut self.entries[idx as usize];
        e.hits += n;
        let si = usize::from(e.subtable);
        self.subtables[si].interval_hits += n;
        self.stats.hits += n;
        self.stats.subtable_lookups_on_hit += n * u64::from(probes);
    }

    /// Looks up the keys whose bit is set in `pending` (bit i = `keys[i]`, at most 64 keys),
    /// subtable by subtable, as OVS's dpcls does: each subtable's mask and hash state stay hot
    /// while it serves the whole batch. Writes hits into `out` and clears their bits; returns
    /// the bits still pending (misses, counted).
    pub fn lookup_masked(
        &mut self,
        keys: &[FlowKey],
        mut pending: u64,
        out: &mut [Option<MegaflowId>],
    ) -> u64 {
        let n = keys.len().min(out.len()).min(64);
        if n < 64 {
            pending &= (1u64 << n) - 1;
        }
        let lookups = pending.count_ones();
        // Subtables probed for each key so far (those the filter skipped do not count).
        let mut probes = [0u32; 64];
        let mut oi = 0;
        while pending != 0 && oi < self.order.len() {
            let si = usize::from(self.order[oi]);
            oi += 1;
            let st = &self.subtables[si];
            if st.gen != self.gen || st.live == 0 {
                continue;
            }
            // The pending keys this subtable may hold (by recirc_id).
            let mut here = 0u64;
            let mut bits = pending;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if st.may_hold(&keys[i]) {
                    here |= 1u64 << i;
                }
            }
            if here == 0 {
                continue;
            }
            // Packets of a batch mostly share a few megaflows (many flows under one mask,
            // e.g. a MAC or a route): first compare every candidate key with the entry this
            // subtable answered last, a few loads from one hot line and no hash; then hash the
            // rest (compute only) and probe them (independent loads). A hit on the last entry
            // is exact, not a guess: the entry is live in this subtable and the key matches it,
            // and live megaflows never overlap.
            let last = st.last_hit;
            let last_live = self
                .entries
                .get(last as usize)
                .filter(|e| e.gen == self.gen && usize::from(e.subtable) == si);
            let mut hashes = [0u64; 64];
            let mut last_hits = 0u64;
            let mut bits = here;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                probes[i] += 1;
                if last_live.is_some_and(|e| st.entry_eq(&keys[i], e)) {
                    out[i] = Some(MegaflowId(last));
                    last_hits |= 1u64 << i;
                } else {
                    hashes[i] = st.hash(&keys[i], self.seed);
                }
            }
            pending &= !last_hits;
            here &= !last_hits;
            while last_hits != 0 {
                let i = last_hits.trailing_zeros() as usize;
                last_hits &= last_hits - 1;
                self.record_hit(last, probes[i]);
            }
            let mut bits = here;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let key = &keys[i];
                let st = &self.subtables[si];
                let h = hashes[i];
                let entries = &self.entries;
                if let Some(&idx) = st.table.find(h, |&j| {
                    let e = &entries[j as usize];
                    e.hash == h && st.entry_eq(key, e)
                }) {
                    out[i] = Some(MegaflowId(idx));
                    pending &= !(1u64 << i);
                    self.record_hit(idx, probes[i]);
                    self.subtables[si].last_hit = idx;
                }
            }
        }
        self.stats.misses += u64::from(pending.count_ones());
        self.maybe_resort(lookups);
        pending
    }

    /// Installs a megaflow: `key` masked by `mask`, with `actions`, translated from table
    /// `version`. If `key` already matches a live entry, that entry is returned and `actions`
    /// is dropped. Refusals are counted.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        actions: A,
        version: u64,
    ) -> Result<MegaflowId, InsertError> {
        if version != self.version {
            self.stats.refused_stale += 1;
            return Err(InsertError::StaleVersion {
                built: version,
                current: self.version,
            });
        }
        if let Some((idx, _)) = self.find(key) {
            self.stats.duplicates += 1;
            return Ok(MegaflowId(idx));
        }
        let si = match self.by_mask.get(mask) {
            Some(&si) => si,
            None => {
                let fresh = MfSubtable::new(mask, self.gen);
                let si = if self.subtables.len() < usize::from(self.max_subtables) {
                    self.subtables.push(fresh);
                    self.order.push((self.subtables.len() - 1) as u16);
                    (self.subtables.len() - 1) as u16
                } else {
                    // Reuse an empty subtable (emptied by removals or by a flush).
                    let gen = self.gen;
                    let Some(si) = self
                        .subtables
                        .iter()
                        .position(|st| st.gen != gen || st.live == 0)
                    else {
                        self.stats.refused_masks += 1;
                        return Err(InsertError::TooManyMasks);
                    };
                    let old = std::mem::replace(&mut self.subtables[si], fresh);
                    self.by_mask.remove(&old.mask);
                    si as u16
                };
                self.by_mask.insert(*mask, si);
                si
            }
        };
        let idx = match self.free.pop() {
            Some(i) => i,
            None if (self.bump as usize) < self.entries.len() => {
                self.bump += 1;
                self.bump - 1
            }
            None if self.entries.len() < self.capacity as usize => {
                self.bump += 1;
                self.entries.push(Entry {
                    hash: 0,
                    gen: 0,
                    hits: 0,
                    subtable: 0,
                    inline: [0; INLINE],
                    actions: None,
                    key: FlowKey::ZERO,
                });
                self.bump - 1
            }
            None => {
                self.stats.refused_full += 1;
                return Err(InsertError::Full);
            }
        };
        let gen = self.gen;
        let st = &mut self.subtables[usize::from(si)];
        if st.gen != gen {
            st.table.clear();
            st.gen = gen;
            st.live = 0;
            st.interval_hits = 0;
            st.reset_filter();
        }
        st.note_recirc(key);
        let masked = key.masked(mask);
        let h = st.hash(&masked, self.seed);
        let inline = st.inline_words(&masked);
        #[cfg(debug_assertions)]
        self.debug_check_disjoint(&masked, mask);
        let st = &mut self.subtables[usize::from(si)];
        let entries = &self.entries;
        st.table
            .insert_unique(h, idx, |&j| entries[j as usize].hash);
        st.live += 1;
        let e = &mut self.entries[idx as usize];
        *e = Entry {
            hash: h,
            gen,
            hits: 0,
            subtable: si,
            inline,
            actions: Some(actions),
            key: masked,
        };
        self.live += 1;
        self.stats.inserted += 1;
        Ok(MegaflowId(idx))
    }

    #[cfg(debug_assertions)]
    fn debug_check_disjoint(&self, masked: &FlowKey, mask: &FlowKey) {
        if self.live > 4096 {
            return;
        }
        for e in &self.entries {
            if e.gen != self.gen || e.actions.is_none() {
                continue;
            }
            let emask = &self.subtables[usize::from(e.subtable)].mask;
            let overlap = (0..masked.words.len())
                .all(|i| (masked.words[i] ^ e.key.words[i]) & mask.words[i] & emask.words[i] == 0);
            debug_assert!(
                !overlap,
                "overlapping megaflows: {masked:?}/{mask:?} and {:?}/{emask:?}",
                e.key
            );
        }
    }

    /// Removes a live entry and returns its actions.
    pub fn remove(&mut self, id: MegaflowId) -> Option<A> {
        let e = self.entries.get_mut(id.0 as usize)?;
        if e.gen != self.gen {
            return None;
        }
        e.gen = 0;
        let (h, si) = (e.hash, usize::from(e.subtable));
        let actions = e.actions.take();
        let st = &mut self.subtables[si];
        if let Ok(found) = st.table.find_entry(h, |&j| j == id.0) {
            found.remove();
            st.live -= 1;
        }
        self.free.push(id.0);
        self.live -= 1;
        actions
    }

    /// Every live entry.
    pub fn iter(&self) -> impl Iterator<Item = MegaflowRef<'_, A>> {
        self.entries.iter().enumerate().filter_map(move |(i, e)| {
            if e.gen != self.gen {
                return None;
            }
            Some(MegaflowRef {
                id: MegaflowId(i as u32),
                key: &e.key,
                mask: &self.subtables[usize::from(e.subtable)].mask,
                actions: e.actions.as_ref()?,
                hits: e.hits,
            })
        })
    }
}
