//! One DPDK mempool per worker, shared by all of that worker's DPDK queues.
//!
//! A worker's frames live in one [`FramePool`] region; the mempool is laid over that region and
//! every DPDK queue the worker polls (of any device) receives into it and has its transmitted
//! mbufs freed into it. So a frame `net_null` frees after transmit is the next one `net_pcap`
//! (or a NIC) receives into, without passing through the worker's free list: in steady state
//! no frame moves between the pool and the mempool at all. OVS shares a mempool the same way,
//! per NUMA node and MTU.
//!
//! Frames enter the mempool from the pool (`refill`) when it runs short and go back
//! (`reclaim`) when it holds too many, at most once per worker iteration.
//!
//! # Frame accounting
//! The worker's DPDK side holds `given - taken + sent - received` frames (moved into the
//! mempool, taken back, transmitted by any of its queues, received by any of them): free in the
//! mempool or held by the drivers. That count is per worker, not per queue (a driver takes
//! frames from the shared mempool without saying for which queue), and one member queue, the
//! *reporter*, returns it as its [`xvs_io::PortIo::frames_held`], the others 0, so the sum over
//! a worker's ports stays exact. When the reporter leaves, another member takes over; when the
//! last member leaves, everything the mempool holds goes back to the pool, and what the closed
//! drivers kept is reported lost.

use crate::config::{MAX_BURST, POOL_HIGH, POOL_LOW, POOL_TARGET};
use crate::ffi::Mempool;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use xvs_io::FramePool;

/// The mempools by region, so that every queue set up on one worker's pool finds that
/// worker's mempool. Only touched at queue setup (control path).
static REGISTRY: Mutex<Vec<Weak<WorkerMempool>>> = Mutex::new(Vec::new());
/// Numbers the mempools' names (DPDK wants them unique).
static NEXT_NAME: AtomicU32 = AtomicU32::new(0);

/// The mempool of one worker's frame region and the accounting of its frames.
///
/// # Thread safety
/// Shared (`Arc`) by the queues of one worker, which use it from one thread at a time: every
/// put and get (ours, or a driver's inside a burst call) happens in a call that holds the
/// worker's `&mut FramePool` for the mempool's region (checked), or while the worker is not
/// running (queue setup, close, drop). The counters are atomics only so that the struct can be
/// shared; there is a single writer at a time, so loads and stores are `Relaxed` (handing a
/// worker to its thread orders them).
#[derive(Debug)]
pub(crate) struct WorkerMempool {
    pub(crate) mempool: Mempool,
    /// Start address of the region the mempool lies over.
    base: usize,
    len: usize,
    /// Frames on the DPDK side (see the module doc); signed so that a transient imbalance
    /// between counters can never wrap.
    held: AtomicI64,
    /// Member queues, by id; the first is the reporter. Control path only.
    members: Mutex<Vec<u64>>,
    /// The reporter's id (copied out of `members` for the hot `frames_held`).
    reporter: AtomicU64,
    next_member: AtomicU64,
}

fn region_of(pool: &FramePool) -> (usize, usize) {
    let (base, len) = pool.region().raw_parts();
    (base.as_ptr() as usize, len)
}

impl WorkerMempool {
    /// The mempool of `pool`'s region (created over it on first use) and a new member id.
    pub(crate) fn join(pool: &mut FramePool, socket: i32) -> Result<(Arc<Self>, u64), i32> {
        let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        reg.retain(|w| w.strong_count() > 0);
        let region = region_of(pool);
        let shared = match reg
            .iter()
            .filter_map(Weak::upgrade)
            .find(|m| (m.base, m.len) == region)
        {
            Some(m) => m,
            None => {
                let name = format!("xvs_w{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
                let mempool = Mempool::over_region(&name, pool.region_mut(), socket)?;
                let m = Arc::new(Self {
                    mempool,
                    base: region.0,
                    len: region.1,
                    held: AtomicI64::new(0),
                    members: Mutex::new(Vec::new()),
                    reporter: AtomicU64::new(u64::MAX),
                    next_member: AtomicU64::new(0),
                });
                reg.push(Arc::downgrade(&m));
                m
            }
        };
        let id = shared.next_member.fetch_add(1, Ordering::Relaxed);
        let mut members = shared.members.lock().unwrap_or_else(|p| p.into_inner());
        members.push(id);
        shared.reporter.store(members[0], Ordering::Relaxed);
        drop(members);
        Ok((shared, id))
    }

    /// Removes member `id`; another member becomes the reporter. Returns true when it was the
    /// last member.
    pub(crate) fn leave(&self, id: u64) -> bool {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.retain(|&m| m != id);
        let next = members.first().copied().unwrap_or(u64::MAX);
        self.reporter.store(next, Ordering::Relaxed);
        members.is_empty()
    }

    /// True when `pool` is the pool whose region the mempool lies over.
    #[inline]
    pub(crate) fn owns(&self, pool: &FramePool) -> bool {
        region_of(pool) == (self.base, self.len)
    }

    /// Frames on the worker's DPDK side, as member `id` reports them (all for the reporter, 0
    /// for the others).
    #[inline]
    pub(crate) fn frames_held(&self, id: u64) -> usize {
        if self.reporter.load(Ordering::Relaxed) != id {
            return 0;
        }
        usize::try_from(self.held.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Adds `delta` to the DPDK side's frames (a burst received: negative; sent: positive).
    #[inline]
    pub(crate) fn count(&self, delta: i64) {
        // Single writer (see Thread safety): a load and a store, no read-modify-write.
        let v = self.held.load(Ordering::Relaxed);
        self.held.store(v + delta, Ordering::Relaxed);
    }

    /// Keeps the mempool between [`POOL_LOW`] and [`POOL_HIGH`] free mbufs: refills from or
    /// reclaims into `pool`, up to [`POOL_TARGET`]. Once per worker iteration (any member's
    /// flush); a no-op in balanced steady state.
    #[inline]
    pub(crate) fn trim(&self, pool: &mut FramePool) {
        let avail = self.mempool.avail();
        if avail < POOL_LOW {
            self.refill(pool, POOL_TARGET - avail);
        } else if avail > POOL_HIGH {
            self.reclaim(pool, avail - POOL_TARGET);
        }
    }

    /// Moves up to `n` free frames of `pool` into the mempool; returns how many.
    pub(crate) fn refill(&self, pool: &mut FramePool, n: u32) -> u32 {
        if !self.owns(pool) {
            return 0;
        }
        let mut moved = 0;
        let mut frames = [0u64; MAX_BURST];
        while moved < n {
            let want = ((n - moved) as usize).min(MAX_BURST);
            let mut k = 0;
            while k < want {
                match pool.alloc() {
                    Some(f) => {
                        frames[k] = f;
                        k += 1;
                    }
                    None => break,
                }
            }
            if k == 0 {
                break;
            }
            self.mempool.put(pool.region_mut(), &frames[..k]);
            moved += k as u32;
            self.count(k as i64);
            if k < want {
                break;
            }
        }
        moved
    }

    /// Takes up to `n` mbufs out of the mempool back into `pool`; returns how many.
    pub(crate) fn reclaim(&self, pool: &mut FramePool, n: u32) -> u32 {
        if !self.owns(pool) {
            return 0;
        }
        let mut moved = 0;
        let mut frames = [0u64; MAX_BURST];
        let len = self.len as u64;
        let fs = u64::from(pool.region().frame_size());
        while moved < n {
            let want = ((n - moved) as usize).min(MAX_BURST);
            let k = self.mempool.get(pool.region(), &mut frames[..want]);
            if k == 0 {
                break;
            }
            for &f in &frames[..k] {
                // Every object of the mempool is a frame of the region; anything else would be
                // a bug, and is kept out of the pool rather than corrupting it.
                if f < len && f % fs == 0 {
                    pool.free(f);
                }
            }
            moved += k as u32;
            self.count(-(k as i64));
        }
        moved
    }

    /// After the last member's device closed (its drivers freed what they held into the
    /// mempool): takes every frame back into `pool`. Returns the frames still out (kept by a
    /// closed driver, lost to the pool).
    pub(crate) fn reclaim_all(&self, pool: &mut FramePool) -> usize {
        self.reclaim(pool, u32::MAX);
        let lost = usize::try_from(self.held.load(Ordering::Relaxed)).unwrap_or(0);
        // They are gone for good; a later mempool over the region starts from zero anyway.
        self.held.store(0, Ordering::Relaxed);
        lost
    }
}
