//! The single-producer/single-consumer ring protocol shared with the kernel, as batch
//! transactions: reserve or peek `n` entries, write or read them, then submit or release all at
//! once (one shared-index store per batch).
//!
//! Memory ordering (the kernel uses the matching `smp_load_acquire`/`smp_store_release`):
//! - a producer loads the consumer index with `Acquire` (the kernel is done with those slots
//!   before we overwrite them), writes entries, then stores the producer index with `Release`
//!   (our entries are visible before the kernel sees the new index);
//! - a consumer loads the producer index with `Acquire` (the kernel's entries are visible), reads
//!   entries, then stores the consumer index with `Release` (we finished reading before the kernel
//!   may reuse the slots).
//!
//! Indices are free-running `u32`s compared with wrapping arithmetic; every count derived from a
//! shared index is clamped to the ring size, so a misbehaving peer cannot make us read or write
//! out of range (the mapping masks every index anyway).

use std::sync::atomic::Ordering;

use crate::sys::{RingEntry, RingMap};

/// Flag in a ring's flags word: the kernel wants a syscall to make progress.
const NEED_WAKEUP: u32 = libc::XDP_RING_NEED_WAKEUP;

/// Our side of a ring we produce into (fill, TX).
#[derive(Debug)]
pub(crate) struct ProdRing<T: RingEntry> {
    map: RingMap<T>,
    size: u32,
    /// Our producer index (published on submit).
    prod: u32,
    /// Last consumer index read from the kernel.
    cons: u32,
}

impl<T: RingEntry> ProdRing<T> {
    pub(crate) fn new(map: RingMap<T>, size: u32) -> Self {
        let prod = map.producer().load(Ordering::Relaxed);
        let cons = map.consumer().load(Ordering::Acquire);
        Self {
            map,
            size,
            prod,
            cons,
        }
    }

    /// Free slots, refreshing the kernel's consumer index only when the cached one does not
    /// show at least `want` free.
    #[inline]
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.prod.wrapping_sub(self.cons).min(self.size);
        if free >= want {
            return free;
        }
        self.cons = self.map.consumer().load(Ordering::Acquire);
        self.size - self.prod.wrapping_sub(self.cons).min(self.size)
    }

    /// Writes entry `i` of the batch being built (0-based after the last submitted entry).
    /// The caller must have seen at least `i + 1` free slots.
    #[inline]
    pub(crate) fn write(&mut self, i: u32, v: T) {
        self.map.write(self.prod.wrapping_add(i), v);
    }

    /// Publishes the first `n` written entries of the batch.
    #[inline]
    pub(crate) fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.prod = self.prod.wrapping_add(n);
        self.map.producer().store(self.prod, Ordering::Release);
    }

    /// Reads back the entry `back` slots before our producer index (1 = the last submitted).
    /// Only meaningful while the kernel cannot have consumed it (error paths during setup).
    pub(crate) fn read_back(&self, back: u32) -> T {
        self.map.read(self.prod.wrapping_sub(back))
    }

    /// Hands every entry the kernel has not consumed to `f`, then forgets them. Only correct once
    /// the kernel can no longer consume from this ring (its socket is closed).
    pub(crate) fn drain_unconsumed(&mut self, mut f: impl FnMut(T)) -> u32 {
        self.cons = self.map.consumer().load(Ordering::Acquire);
        let n = self.prod.wrapping_sub(self.cons).min(self.size);
        for i in 0..n {
            f(self.map.read(self.cons.wrapping_add(i)));
        }
        self.cons = self.prod;
        n
    }

    /// Entries published but not yet taken by the kernel.
    #[inline]
    pub(crate) fn pending(&mut self) -> u32 {
        self.cons = self.map.consumer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons).min(self.size)
    }

    /// True when the kernel asked for a wakeup syscall.
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.map.flags().load(Ordering::Relaxed) & NEED_WAKEUP != 0
    }
}

/// Our side of a ring we consume from (RX, completion).
#[derive(Debug)]
pub(crate) struct ConsRing<T: RingEntry> {
    map: RingMap<T>,
    size: u32,
    /// Last producer index read from the kernel.
    prod: u32,
    /// Our consumer index (published on release).
    cons: u32,
}

impl<T: RingEntry> ConsRing<T> {
    pub(crate) fn new(map: RingMap<T>, size: u32) -> Self {
        let cons = map.consumer().load(Ordering::Relaxed);
        let prod = map.producer().load(Ordering::Acquire);
        Self {
            map,
            size,
            prod,
            cons,
        }
    }

    /// Entries ready to read, at most `want`; refreshes the kernel's producer index only when the
    /// cached one does not show `want` entries.
    #[inline]
    pub(crate) fn peek(&mut self, want: u32) -> u32 {
        let mut avail = self.prod.wrapping_sub(self.cons).min(self.size);
        if avail < want {
            self.prod = self.map.producer().load(Ordering::Acquire);
            avail = self.prod.wrapping_sub(self.cons).min(self.size);
        }
        avail.min(want)
    }

    /// Reads entry `i` of the peeked batch.
    #[inline]
    pub(crate) fn read(&self, i: u32) -> T {
        self.map.read(self.cons.wrapping_add(i))
    }

    /// Gives the first `n` peeked entries back to the kernel.
    #[inline]
    pub(crate) fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cons = self.cons.wrapping_add(n);
        self.map.consumer().store(self.cons, Ordering::Release);
    }
}
