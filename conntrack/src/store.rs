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
    /// The slot value, for removal.
    slot: u64,
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
            slot: 0,
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
            slot: v,
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

    /// Inserts (with the region's lock held) the key `h` of record `idx`; false when the
    /// region has no free slot.
    pub fn insert_locked(&self, h: &Hashed, idx: u32, reply: bool) -> bool {
        let v = Self::slot_value(h, idx, reply);
        let mut b = h.home;
        for _ in 0..=self.bmask {
            for i in 0..SLOTS {
                let w = self.word(b, i);
                if w.load(Ordering::Relaxed) == 0 {
                    // Release: the record was initialised before; a reader that sees the slot
                    // (Acquire) sees the record.
                    w.store(v, Ordering::Release);
                    // Count the overflow on every full bucket passed on the way.
                    let mut c = h.home;
                    while c != b {
                        self.word(c, SLOTS).fetch_add(1, Ordering::Release);
                        c = self.next_bucket(c);
                    }
                    return true;
                }
            }
            b = self.next_bucket(b);
        }
        false
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

    /// Removes (lock held) the entry a probe found.
    pub fn remove_found_locked(&self, h: &Hashed, f: &Found<'_>) -> bool {
        self.remove_value_locked(h, f.slot)
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
