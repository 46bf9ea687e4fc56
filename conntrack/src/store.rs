//! Connection storage: a slab of preallocated connection records and a fixed-size index that
//! maps both keys of every connection straight to its record.
//!
//! The index is an open-addressed table of 64-byte buckets, each seven `AtomicU64` slots and
//! one overflow counter. A slot holds a 32-bit tag of the key's hash and the record's slab
//! index with the key's direction; 0 is empty. A lookup hashes the key, reads its home bucket
//! (one cache line), and for each slot whose tag matches reads the record (one 128-byte aligned
//! pair of lines) and compares the key there, validated by the record's generation and sequence
//! lock. It moves to the next bucket only while the overflow counter says that some key homed
//! earlier was placed further on, so a miss usually costs one bucket. There is no pointer
//! chase besides bucket -> record and no reclamation scheme: records are never freed, only
//! reused, and a reused record has a new generation that stale handles notice.
//!
//! The index is split into 64 regions (by the top bits of the hash), each with its own writer
//! mutex; probes stay inside a region. Readers take no lock. Inserting and removing keys of a
//! region takes its mutex, so a creation (both keys checked and inserted under the mutexes of
//! their two regions, taken in region order) is atomic with respect to other creations: the
//! same connection is never indexed twice and a NAT tuple is claimed exactly once.
//!
//! Records come from 64 lock-free free lists (Treiber stacks with an ABA tag), then from the
//! never-used part of the slab, then from the other lists; a slab without a free record refuses
//! the connection. The slab is allocated in segments of 4096 records: those covering
//! `CtConfig::initial_capacity / 2` at creation, the rest on first use (at most once per 4096
//! connections, up to the capacity).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use foldhash::fast::FixedState;

use crate::conn::{pack, Conn, Rec, I_LIVE, KW};
use crate::tcp::{TcpConn, TcpSegment};
use crate::tuple::ConnKey;

/// Regions of the index, free lists and event rings.
pub(crate) const N_SHARDS: usize = 64;
const SLOTS: usize = 7;
const BUCKET_WORDS: usize = 8;
const SEG_BITS: u32 = 12;
const SEG: usize = 1 << SEG_BITS;
/// Largest capacity (slot references are 31-bit index and direction).
pub(crate) const MAX_CAPACITY: usize = 1 << 30;

#[repr(align(64))]
struct Padded<T>(T);

struct Seg {
    rec: Box<[Rec]>,
    tcp: Box<[Mutex<TcpConn>]>,
}

impl Seg {
    fn new() -> Seg {
        let blank = TcpConn::new(&TcpSegment::default()).0;
        Seg {
            rec: (0..SEG).map(|_| Rec::default()).collect(),
            tcp: (0..SEG).map(|_| Mutex::new(blank)).collect(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a key sits: hash, region, home bucket, tag.
#[derive(Clone, Copy)]
pub(crate) struct Hashed {
    pub region: usize,
    home: usize,
    tag: u64,
}

pub(crate) struct Store {
    segs: Box<[OnceLock<Seg>]>,
    cap: u32,
    /// Records handed out from the never-used part of the slab.
    next: AtomicU32,
    /// Records taken off the free lists or the never-used part and not given back.
    used: AtomicU32,
    free: Box<[Padded<AtomicU64>]>,
    index: Vec<AtomicU64>,
    /// First word of bucket 0 (so that buckets are cache-line aligned).
    base: usize,
    /// Buckets per region - 1.
    bmask: usize,
    locks: Box<[Padded<Mutex<()>>]>,
    hasher: FixedState,
}

/// Result of a probe.
pub(crate) struct Found<'a> {
    pub conn: Conn<'a>,
    pub reply: bool,
    /// Live (not removed, not expired at the probe's `now`).
    pub live: bool,
}

impl Store {
    /// A store for `cap` connections, `prealloc` of them allocated now.
    pub fn new(cap: usize, prealloc: usize, seed: u64) -> Store {
        let cap = cap.clamp(1, MAX_CAPACITY);
        // Two keys per connection, at most ~57% of the slots used at capacity; 8 more buckets
        // per region so that small tables (a few keys per region) do not fill a region by
        // chance before the slab is full.
        let buckets = ((2 * cap).div_ceil(4) + 8 * N_SHARDS).next_power_of_two();
        let per_region = buckets / N_SHARDS;
        let words = buckets * BUCKET_WORDS + BUCKET_WORDS;
        // Zeroed pages from the allocator: untouched parts of a large index cost no memory.
        let index: Vec<AtomicU64> = bytemuck::allocation::zeroed_vec(words);
        let addr = index.as_ptr() as usize;
        let base = ((64 - addr % 64) % 64) / 8;
        let nseg = cap.div_ceil(SEG);
        let segs: Box<[OnceLock<Seg>]> = (0..nseg).map(|_| OnceLock::new()).collect();
        for s in segs.iter().take(prealloc.min(cap).div_ceil(SEG)) {
            s.get_or_init(Seg::new);
        }
        Store {
            segs,
            cap: cap as u32,
            next: AtomicU32::new(0),
            used: AtomicU32::new(0),
            free: (0..N_SHARDS).map(|_| Padded(AtomicU64::new(0))).collect(),
            index,
            base,
            bmask: per_region - 1,
            locks: (0..N_SHARDS).map(|_| Padded(Mutex::new(()))).collect(),
            hasher: FixedState::with_seed(seed),
        }
    }

    /// Connections the slab can hold.
    pub fn capacity(&self) -> u32 {
        self.cap
    }

    /// Records in use (live connections, and removed ones a thread is still tearing down).
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    /// Slab indexes ever handed out (walks stop there).
    pub fn high_water(&self) -> u32 {
        self.next.load(Ordering::Acquire).min(self.cap)
    }

    #[inline]
    pub fn hashed(&self, k: &ConnKey) -> Hashed {
        let h = self.hasher.hash_one(k);
        let region = (h >> 58) as usize;
        Hashed {
            region,
            home: region * (self.bmask + 1) + (h as usize & self.bmask),
            tag: (h >> 16) & 0xffff_ffff,
        }
    }

    #[inline]
    fn next_bucket(&self, b: usize) -> usize {
        (b & !self.bmask) | ((b + 1) & self.bmask)
    }

    #[inline]
    fn word(&self, bucket: usize, i: usize) -> &AtomicU64 {
        // In bounds by construction; `get` keeps it panic-free.
        static ZERO: AtomicU64 = AtomicU64::new(0);
        self.index
            .get(self.base + bucket * BUCKET_WORDS + i)
            .unwrap_or(&ZERO)
    }

    #[inline]
    pub fn rec(&self, idx: u32) -> Option<(&Rec, &Mutex<TcpConn>)> {
        let seg = self.segs.get((idx >> SEG_BITS) as usize)?.get()?;
        let i = idx as usize & (SEG - 1);
        Some((seg.rec.get(i)?, seg.tcp.get(i)?))
    }

    /// A handle on record `idx` as it is now (walks).
    pub fn conn_at(&self, idx: u32) -> Option<(Conn<'_>, u64)> {
        let (rec, tcp) = self.rec(idx)?;
        let (gen, info, exp) = rec.peek();
        let conn = Conn {
            rec,
            tcp,
            idx,
            gen,
            info,
            zone: 0,
        };
        let zone = conn.keys().map_or(0, |k| k[0].zone);
        Some((Conn { zone, ..conn }, exp))
    }

    /// Loads the home bucket of `h` (batch lookups load it early so that the cache misses of
    /// several packets overlap).
    #[inline]
    pub fn touch(&self, h: &Hashed) -> u64 {
        self.word(h.home, 0).load(Ordering::Relaxed)
    }

    /// Loads both lines of the record the first tag match in `h`'s home bucket points to.
    #[inline]
    pub fn touch_rec(&self, h: &Hashed) -> u64 {
        for i in 0..SLOTS {
            let v = self.word(h.home, i).load(Ordering::Relaxed);
            if v != 0 && v >> 32 == h.tag {
                let r = (v as u32).wrapping_sub(1);
                if let Some((rec, _)) = self.rec(r >> 1) {
                    return rec.touch();
                }
            }
        }
        0
    }

    /// Finds `key` (hashed as `h`); the first matching record, live or not.
    #[inline]
    pub fn find(&self, key: &ConnKey, h: &Hashed, now: u64) -> Option<Found<'_>> {
        let kw = pack(key);
        let kinfo = crate::conn::key_info(key);
        let mut b = h.home;
        for _ in 0..=self.bmask {
            for i in 0..SLOTS {
                let v = self.word(b, i).load(Ordering::Acquire);
                if v == 0 || v >> 32 != h.tag {
                    continue;
                }
                if let Some(f) = self.check(v, &kw, kinfo, key.zone, now) {
                    return Some(f);
                }
            }
            if self.word(b, SLOTS).load(Ordering::Acquire) == 0 {
                return None;
            }
            b = self.next_bucket(b);
        }
        None
    }

    /// The record `idx` when it still holds `key` in direction `reply` in generation `gen`
    /// (a [`crate::ConnHandle`] kept across recirculation): no hash, no index read. Liveness
    /// as [`Store::find`] reports it.
    #[inline]
    pub fn at(
        &self,
        idx: u32,
        gen: u32,
        key: &ConnKey,
        reply: bool,
        now: u64,
    ) -> Option<Found<'_>> {
        let (rec, tcp) = self.rec(idx)?;
        let p = rec.probe(usize::from(reply), &pack(key), crate::conn::key_info(key));
        (p.matches && p.gen == gen).then_some(Found {
            conn: Conn {
                rec,
                tcp,
                idx,
                gen: p.gen,
                info: p.info,
                zone: key.zone,
            },
            reply,
            live: p.info & I_LIVE != 0 && p.exp > now,
        })
    }

    #[inline]
    fn check(&self, v: u64, kw: &[u64; KW], kinfo: u32, zone: u16, now: u64) -> Option<Found<'_>> {
        let r = (v as u32).wrapping_sub(1);
        let (idx, dir) = (r >> 1, (r & 1) as usize);
        let (rec, tcp) = self.rec(idx)?;
        let p = rec.probe(dir, kw, kinfo);
        p.matches.then_some(Found {
            conn: Conn {
                rec,
                tcp,
                idx,
                gen: p.gen,
                info: p.info,
                zone,
            },
            reply: dir == 1,
            live: p.info & I_LIVE != 0 && p.exp > now,
        })
    }

    /// Locks the regions of `a` and `b` (once when equal), in region order.
    pub fn lock2(&self, a: usize, b: usize) -> (MutexGuard<'_, ()>, Option<MutexGuard<'_, ()>>) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let g1 = self.lock1(lo);
        let g2 = (hi != lo).then(|| self.lock1(hi));
        (g1, g2)
    }

    /// Locks one region.
    pub fn lock1(&self, r: usize) -> MutexGuard<'_, ()> {
        // `locks` has N_SHARDS (non-zero) entries: the modulo keeps the index in bounds.
        lock(&self.locks[r % self.locks.len()].0)
    }

    fn slot_value(h: &Hashed, idx: u32, reply: bool) -> u64 {
        h.tag << 32 | u64::from((idx << 1 | u32::from(reply)) + 1)
    }

    /// Under the region's lock: finds `key` (hashed as `h`) and, unless a live record holds
    /// it, indexes it for record `idx` in direction `reply`, in one walk of the key's chain
    /// instead of a `find` followed by an insertion. A dead occupant of the key (removed
    /// or expired) gives up its slot in place: it has the same hash, so the same home, and the
    /// overflow counts stay right; its record goes with its remover or the sweep. Otherwise
    /// the key takes the first free slot from its home on; every full bucket passed on the
    /// way counts one more overflow.
    ///
    /// `Err` carries the live occupant; `Ok(false)` means the region has no free slot.
    pub fn find_or_insert_locked(
        &self,
        key: &ConnKey,
        h: &Hashed,
        idx: u32,
        reply: bool,
        now: u64,
    ) -> Result<bool, Found<'_>> {
        let kw = pack(key);
        let kinfo = crate::conn::key_info(key);
        let v = Self::slot_value(h, idx, reply);
        let mut free: Option<(usize, usize)> = None;
        let mut b = h.home;
        let mut walked = 0;
        // The key's chain: every bucket a reader's `find` may visit.
        while walked <= self.bmask {
            walked += 1;
            for i in 0..SLOTS {
                let w = self.word(b, i);
                let cur = w.load(Ordering::Relaxed);
                if cur == 0 {
                    free = free.or(Some((b, i)));
                    continue;
                }
                if cur >> 32 != h.tag {
                    continue;
                }
                if let Some(f) = self.check(cur, &kw, kinfo, key.zone, now) {
                    if f.live {
                        return Err(f);
                    }
                    // Release: the record was initialised before; a reader that sees the
                    // slot (Acquire) sees the record.
                    w.store(v, Ordering::Release);
                    return Ok(true);
                }
            }
            if self.word(b, SLOTS).load(Ordering::Relaxed) == 0 {
                break;
            }
            b = self.next_bucket(b);
        }
        // Past the chain: the first free slot further on, if none was met.
        while free.is_none() && walked <= self.bmask {
            b = self.next_bucket(b);
            walked += 1;
            free = (0..SLOTS)
                .find_map(|i| (self.word(b, i).load(Ordering::Relaxed) == 0).then_some((b, i)));
        }
        let Some((fb, fi)) = free else {
            return Ok(false);
        };
        // Release: as above.
        self.word(fb, fi).store(v, Ordering::Release);
        let mut c = h.home;
        while c != fb {
            self.word(c, SLOTS).fetch_add(1, Ordering::Release);
            c = self.next_bucket(c);
        }
        Ok(true)
    }

    /// Removes (with the region's lock held) the slot holding exactly `v` for key hash `h`;
    /// false when it is not there.
    fn remove_value_locked(&self, h: &Hashed, v: u64) -> bool {
        let mut b = h.home;
        for _ in 0..=self.bmask {
            for i in 0..SLOTS {
                let w = self.word(b, i);
                if w.load(Ordering::Relaxed) == v {
                    w.store(0, Ordering::Release);
                    let mut c = h.home;
                    while c != b {
                        self.word(c, SLOTS).fetch_sub(1, Ordering::Release);
                        c = self.next_bucket(c);
                    }
                    return true;
                }
            }
            if self.word(b, SLOTS).load(Ordering::Relaxed) == 0 {
                return false;
            }
            b = self.next_bucket(b);
        }
        false
    }

    /// Removes (lock held) key `h` of record `idx`.
    pub fn remove_locked(&self, h: &Hashed, idx: u32, reply: bool) -> bool {
        self.remove_value_locked(h, Self::slot_value(h, idx, reply))
    }

    /// Removes key `h` of record `idx` (takes the region's lock).
    pub fn remove(&self, h: &Hashed, idx: u32, reply: bool) -> bool {
        let _g = self.lock1(h.region);
        self.remove_value_locked(h, Self::slot_value(h, idx, reply))
    }

    // ----- records -----

    fn pop(&self, list: usize) -> Option<u32> {
        let head = &self.free.get(list)?.0;
        let mut h = head.load(Ordering::Acquire);
        loop {
            let top = h as u32;
            if top == 0 {
                return None;
            }
            let (rec, _) = self.rec(top - 1)?;
            let next = rec.next_free.load(Ordering::Relaxed);
            // The tag in the high half changes on every pop, so a head that was popped and
            // pushed back meanwhile (with another `next`) fails the exchange.
            let new = ((h >> 32).wrapping_add(1) << 32) | u64::from(next);
            match head.compare_exchange_weak(h, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(top - 1),
                Err(cur) => h = cur,
            }
        }
    }

    /// Takes a free record, preferring list `shard`; `None` when the slab is full.
    pub fn alloc(&self, shard: usize) -> Option<u32> {
        let idx = self.pop(shard).or_else(|| {
            if self.next.load(Ordering::Relaxed) < self.cap {
                let i = self.next.fetch_add(1, Ordering::AcqRel);
                if i < self.cap {
                    self.segs
                        .get((i >> SEG_BITS) as usize)?
                        .get_or_init(Seg::new);
                    return Some(i);
                }
            }
            (1..N_SHARDS).find_map(|d| self.pop((shard + d) % N_SHARDS))
        })?;
        self.used.fetch_add(1, Ordering::Relaxed);
        Some(idx)
    }

    /// Gives record `idx` back to list `shard`. The record must be out of the index and not
    /// live (a walk never takes it for a connection).
    pub fn free(&self, idx: u32, shard: usize) {
        let Some((rec, _)) = self.rec(idx) else {
            return;
        };
        let Some(head) = self.free.get(shard).map(|p| &p.0) else {
            return;
        };
        self.used.fetch_sub(1, Ordering::Relaxed);
        let mut h = head.load(Ordering::Relaxed);
        loop {
            rec.next_free.store(h as u32, Ordering::Relaxed);
            let new = (h & 0xffff_ffff_0000_0000) | u64::from(idx + 1);
            match head.compare_exchange_weak(h, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(cur) => h = cur,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::KIND_OTHER;
    use std::collections::HashMap;

    /// Connection `i`'s original key: ids below 64 share two home buckets (long chains,
    /// full buckets), the others spread.
    fn key(i: u32) -> ConnKey {
        static CROWDED: OnceLock<Vec<u32>> = OnceLock::new();
        let crowded = CROWDED.get_or_init(|| {
            let st = Store::new(1024, 0, 7);
            let home = st.hashed(&raw_key(0)).home;
            (1..u32::MAX)
                .filter(|&j| st.hashed(&raw_key(j)).home & !1 == home & !1)
                .take(64)
                .collect()
        });
        let j = match crowded.get(i as usize) {
            Some(&j) => j,
            None => i + (1 << 24),
        };
        raw_key(j)
    }

    fn raw_key(i: u32) -> ConnKey {
        ConnKey {
            src: 0x0a00_0000 | u128::from(i),
            dst: 0x0a01_0001,
            sport: (i % 60_000) as u16 + 1,
            dport: 80,
            zone: 1,
            proto: 17,
            v6: false,
            stype: 0,
            dtype: 0,
        }
    }

    /// A record for connection `i`, both keys written, not indexed.
    fn record(st: &Store, i: u32) -> Conn<'_> {
        let idx = st.alloc(0).expect("a free record");
        let (rec, tcp) = st.rec(idx).expect("allocated");
        let k = key(i);
        let (gen, info) = rec.init(&k, &k.reverse(), None, KIND_OTHER, 0, 0, u64::MAX);
        Conn {
            rec,
            tcp,
            idx,
            gen,
            info,
            zone: k.zone,
        }
    }

    /// Indexes both keys of `c` as a creation does; false (nothing indexed) when a region is
    /// full. Panics on a live occupant: callers only insert absent connections.
    fn index(st: &Store, c: &Conn<'_>, i: u32) -> bool {
        let k = key(i);
        let (hf, hr) = (st.hashed(&k), st.hashed(&k.reverse()));
        let f = st.find_or_insert_locked(&k, &hf, c.idx, false, 0);
        assert!(f.is_ok(), "live occupant for {i}");
        if !matches!(f, Ok(true)) {
            return false;
        }
        let r = st.find_or_insert_locked(&k.reverse(), &hr, c.idx, true, 0);
        assert!(r.is_ok(), "live occupant for reply {i}");
        if !matches!(r, Ok(true)) {
            assert!(st.remove_locked(&hf, c.idx, false));
            return false;
        }
        true
    }

    fn found(st: &Store, k: &ConnKey) -> Option<(u32, bool)> {
        st.find(k, &st.hashed(k), 0)
            .filter(|f| f.live)
            .map(|f| (f.conn.idx, f.reply))
    }

    /// Random creations, duplicate creations, removals and take-overs of dead occupants in a
    /// small index (long chains, full buckets, full regions): after every step each key is
    /// found exactly where a model says, and a live key is never indexed twice.
    #[test]
    fn find_or_insert_matches_a_model() {
        let st = Store::new(1024, 1024, 7);
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u32| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(n)) as u32
        };
        let mut took_over = 0;
        for step in 0..20_000 {
            // Half the steps on the crowded connections.
            let i = if next(2) == 0 { next(64) } else { next(1000) };
            match (model.get(&i).copied(), next(4)) {
                (None, _) => {
                    if st.used() >= st.capacity() {
                        continue;
                    }
                    let c = record(&st, i);
                    if index(&st, &c, i) {
                        model.insert(i, c.idx);
                    } else {
                        assert!(c.mark_removed());
                        st.free(c.idx, 0);
                    }
                }
                (Some(old), 0) => {
                    // A second creation of a live connection meets the live occupant.
                    let c = record(&st, i);
                    let k = key(i);
                    let f = st.find_or_insert_locked(&k, &st.hashed(&k), c.idx, false, 0);
                    assert_eq!(f.err().map(|f| (f.conn.idx, f.reply)), Some((old, false)));
                    assert!(c.mark_removed());
                    st.free(c.idx, 0);
                }
                (Some(old), 1) => {
                    // The connection dies with its keys still indexed (a remover in
                    // progress); a new one takes both slots over in place.
                    let (rec, tcp) = st.rec(old).expect("live record");
                    let (gen, info, _) = rec.peek();
                    let dead = Conn {
                        rec,
                        tcp,
                        idx: old,
                        gen,
                        info,
                        zone: 1,
                    };
                    assert!(dead.mark_removed());
                    let c = record(&st, i);
                    assert!(index(&st, &c, i), "a dead occupant's slot is free");
                    let k = key(i);
                    assert!(!st.remove_locked(&st.hashed(&k), old, false));
                    assert!(!st.remove_locked(&st.hashed(&k.reverse()), old, true));
                    st.free(old, 0);
                    model.insert(i, c.idx);
                    took_over += 1;
                }
                (Some(old), _) => {
                    let k = key(i);
                    assert!(st.remove_locked(&st.hashed(&k), old, false));
                    assert!(st.remove_locked(&st.hashed(&k.reverse()), old, true));
                    let (rec, tcp) = st.rec(old).expect("live record");
                    let (gen, info, _) = rec.peek();
                    let c = Conn {
                        rec,
                        tcp,
                        idx: old,
                        gen,
                        info,
                        zone: 1,
                    };
                    assert!(c.mark_removed());
                    st.free(old, 0);
                    model.remove(&i);
                }
            }
            if step % 97 == 0 || step > 19_900 {
                for j in 0..1000 {
                    let k = key(j);
                    let want = model.get(&j).copied();
                    assert_eq!(
                        found(&st, &k),
                        want.map(|i| (i, false)),
                        "step {step} key {j}"
                    );
                    assert_eq!(found(&st, &k.reverse()), want.map(|i| (i, true)));
                }
            }
        }
        assert!(
            model.len() > 500 && took_over > 1000,
            "{} {took_over}",
            model.len()
        );
    }
}
