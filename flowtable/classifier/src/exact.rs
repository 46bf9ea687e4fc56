//! The per-worker exact-match cache: a fixed array of 4-way buckets mapping a hash of the flow
//! key to a megaflow entry.
//!
//! An entry stores a 32-bit signature and a megaflow index, 8 bytes, so the default 8192 slots
//! take 64 KiB (OVS's EMC stores a copy of the key, about 600 bytes an entry, and thrashes the
//! CPU caches beyond a few thousand flows). A hit is verified against the megaflow entry itself
//! (live in the current generation, and the key matches its masked key), so a stale or
//! colliding slot can only cost a miss, never a wrong answer: megaflows do not overlap, so any
//! live megaflow the key matches is the answer.

use xvs_packet::{FlowKey, KEY_WORDS};

use crate::hash;
use crate::megaflow::MegaflowId;

const WAYS: usize = 4;

/// The key words the slot hash reads (see [`ExactCache::hash`]): in_port/recirc_id,
/// pkt_mark/conj_id, ct_state/zone/proto, ct_mark/ports, ct_nw_src/dst, tun_id, tun_src/dst,
/// eth_type/src, eth_dst/vlan, nw_src/dst, ipv6_src, ipv6_dst, proto/tos/ttl/frag/label, ports.
pub const HASHED_WORDS: [usize; 16] =
    [0, 1, 10, 11, 14, 19, 20, 26, 27, 28, 29, 30, 31, 32, 33, 34];
const EMPTY: u32 = u32::MAX;

/// One bucket: 4 signatures and 4 megaflow indices, half a cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct Bucket {
    sig: [u32; WAYS],
    idx: [u32; WAYS],
}

const EMPTY_BUCKET: Bucket = Bucket {
    sig: [0; WAYS],
    idx: [EMPTY; WAYS],
};

/// How the exact-match cache admits entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insertion {
    /// Every megaflow hit is inserted.
    Always,
    /// One megaflow hit in `n` is inserted (OVS's `emc-insert-inv-prob`, default 100), so a
    /// flood of short flows does not evict the long ones.
    OneIn(u32),
    /// The exact-match cache is disabled.
    Never,
}

/// The exact-match cache of one worker.
#[derive(Debug)]
pub struct ExactCache {
    buckets: Box<[Bucket]>,
    mask: usize,
    /// Per-instance random hash keys, one per key word.
    hkeys: Box<[u64; KEY_WORDS]>,
    insertion: Insertion,
    rng: u64,
}

impl ExactCache {
    /// Most slots a cache can have (2^26, 512 MiB); larger requests are clamped.
    pub const MAX_ENTRIES: usize = 1 << 26;

    /// A cache with at least `entries` slots (rounded up to a power of two, at least 4, at most
    /// [`MAX_ENTRIES`](Self::MAX_ENTRIES)).
    pub fn new(entries: usize, insertion: Insertion) -> Self {
        let n_buckets = (entries.clamp(WAYS, Self::MAX_ENTRIES) / WAYS).next_power_of_two();
        let seed = hash::random_seed();
        let mut s = seed;
        let hkeys = Box::new(std::array::from_fn(|_| {
            s = hash::add(s, 0x6a09_e667_f3bc_c908);
            hash::finish(s)
        }));
        Self {
            buckets: vec![EMPTY_BUCKET; n_buckets].into_boxed_slice(),
            mask: n_buckets - 1,
            hkeys,
            insertion,
            rng: seed,
        }
    }

    /// False when the policy is [`Insertion::Never`]: the tier holds nothing, and lookups skip
    /// it (no hash, no probe).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.insertion != Insertion::Never
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The slot hash of a key: the sum over word pairs of a folded 64×64→128 multiply of the
    /// two words, each xored with a per-instance random key (wyhash's "mum" step), then one
    /// avalanche step. The products are independent, so they pipeline.
    ///
    /// Only the [`HASHED_WORDS`] take part: the words in which packets of different flows
    /// differ (port, recirculation, mark, conntrack state/zone/mark/tuple, tunnel id and
    /// addresses, Ethernet, IPv4/IPv6 addresses, protocol, ports). This is safe because a hit is
    /// verified against the megaflow, never trusted on the hash: keys that differ only in other
    /// words (registers, labels, ARP/ND fields) just share slots. It costs 8 multiplies instead
    /// of 20 for all 40 words (see the `exact/hash_*` benchmarks).
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        let k = &*self.hkeys;
        let mut acc = 0u64;
        for p in 0..HASHED_WORDS.len() / 2 {
            let (a, b) = (HASHED_WORDS[2 * p], HASHED_WORDS[2 * p + 1]);
            acc = acc.wrapping_add(hash::fold_mul(key.words[a] ^ k[a], key.words[b] ^ k[b]));
        }
        hash::finish(acc)
    }

    #[inline(always)]
    fn slot(&self, h: u64) -> (usize, u32) {
        ((h as usize) & self.mask, (h >> 32) as u32)
    }

    /// The candidate megaflow for a key with hash `h`. The caller must verify it
    /// ([`MegaflowCache::matches`](crate::MegaflowCache::matches)).
    #[inline]
    pub fn find(&self, h: u64) -> Option<MegaflowId> {
        let (b, sig) = self.slot(h);
        let bucket = &self.buckets[b];
        for w in 0..WAYS {
            if bucket.sig[w] == sig && bucket.idx[w] != EMPTY {
                return Some(MegaflowId(bucket.idx[w]));
            }
        }
        None
    }

    /// Maybe records `id` for the key with hash `h` (per the insertion policy). Returns true when
    /// it did. Replaces the slot with the same signature, else an empty slot, else a
    /// pseudo-random victim.
    #[inline]
    pub fn insert(&mut self, h: u64, id: MegaflowId) -> bool {
        match self.insertion {
            Insertion::Never => return false,
            Insertion::Always => {}
            Insertion::OneIn(n) => {
                // xorshift64: a cheap, good-enough coin.
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                if n > 1 && self.rng % u64::from(n) != 0 {
                    return false;
                }
            }
        }
        let (b, sig) = self.slot(h);
        let bucket = &mut self.buckets[b];
        let way = (0..WAYS)
            .find(|&w| bucket.sig[w] == sig)
            .or_else(|| (0..WAYS).find(|&w| bucket.idx[w] == EMPTY))
            .unwrap_or(((h >> 8) as usize ^ (self.rng as usize)) % WAYS);
        bucket.sig[way] = sig;
        bucket.idx[way] = id.0;
        self.rng = self.rng.wrapping_add(1);
        true
    }

    /// Forgets every entry (O(capacity)). Not needed for correctness after a table change,
    /// since hits are verified against live megaflows; useful when the megaflow cache is
    /// replaced.
    pub fn clear(&mut self) {
        self.buckets.fill(EMPTY_BUCKET);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_spreads_keys_that_differ_in_one_field() {
        let e = ExactCache::new(1024, Insertion::Always);
        let mut seen = std::collections::HashSet::new();
        for i in 1..20_000u64 {
            for word in [0usize, 26, 28, 33, 34] {
                let mut k = FlowKey::ZERO;
                k.words[word] = i;
                k.words[28] |= 0x0a00_0001 << 32;
                assert!(
                    seen.insert(e.hash(&k)),
                    "collision at word {word} value {i}"
                );
            }
        }
        // Every bucket index bit and signature bit moves.
        let (mut or, mut and) = (0u64, u64::MAX);
        for i in 0..1000u64 {
            let mut k = FlowKey::ZERO;
            k.words[34] = i;
            let h = e.hash(&k);
            or |= h;
            and &= h;
        }
        assert_eq!((or, and), (u64::MAX, 0));
    }

    #[test]
    fn insert_find_and_evict() {
        let mut e = ExactCache::new(4, Insertion::Always);
        assert_eq!(e.capacity(), 4);
        // Same bucket (one bucket only), five signatures: one is evicted.
        for s in 1..=5u64 {
            assert!(e.insert(s << 32, MegaflowId(s as u32)));
        }
        let found = (1..=5u64).filter(|s| e.find(s << 32).is_some()).count();
        assert_eq!(found, 4);
        // Re-inserting a present signature updates in place.
        e.insert(5 << 32, MegaflowId(50));
        assert_eq!(e.find(5 << 32), Some(MegaflowId(50)));
        e.clear();
        assert_eq!(e.find(5 << 32), None);
        let mut never = ExactCache::new(4, Insertion::Never);
        assert!(!never.insert(1 << 32, MegaflowId(1)));
        assert_eq!(never.find(1 << 32), None);
    }
}
