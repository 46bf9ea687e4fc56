//! Word hashing shared by the classifier subtables and the datapath caches.
//!
//! Every hash here is a fold over 64-bit words with a folded 64×64→128 multiply (the low and high
//! halves xored), the same mixing step as wyhash/foldhash. It is not a cryptographic hash: the
//! caches seed it per instance so that a remote sender cannot precompute collisions, and every
//! hit is verified by comparing key words, so a collision only ever costs time.

/// An odd 64-bit constant with well-spread bits (2^64 / golden ratio).
const K0: u64 = 0x9e37_79b9_7f4a_7c15;
/// A second multiplier for the finalizer.
const K1: u64 = 0xbf58_476d_1ce4_e5b9;

/// `(a * b) mod 2^128`, folded to 64 bits by xoring its halves.
#[inline(always)]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Adds one word to a running hash.
#[inline(always)]
pub(crate) fn add(h: u64, w: u64) -> u64 {
    fold_mul(h ^ w, K0)
}

/// Final avalanche so both the low bits (bucket index) and the high bits (hashbrown's control
/// byte, signatures) depend on every input bit.
#[inline(always)]
pub(crate) fn finish(h: u64) -> u64 {
    fold_mul(h ^ (h >> 29), K1)
}

/// A seed for a new cache instance: different per process and per instance.
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7876_735f_636c_7331);
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_depends_on_order_and_value() {
        let a = finish(add(add(1, 2), 3));
        let b = finish(add(add(1, 3), 2));
        let c = finish(add(add(1, 2), 4));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
