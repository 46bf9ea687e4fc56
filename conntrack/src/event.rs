//! The change-event stream (connection created / destroyed) for a flow exporter.
//!
//! Bounded and lossy: events go into preallocated rings, one per creation shard; a producer
//! that finds its ring full, or momentarily held by another producer or by the reader, drops
//! the event and counts it. The packet path therefore never waits and never allocates for an
//! event; the reader (a control thread) drains the rings periodically.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};

use crate::tuple::Tuple;

/// Why a connection left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestroyReason {
    /// Its timeout passed (found by `sweep` or by a packet reusing its key).
    Expired,
    /// `flush`, `flush_tuple` or `flush_match`.
    Flushed,
    /// A TCP SYN after both sides closed ended it (a new connection follows).
    Reopened,
    /// A `ct(commit,force)` packet in its reply direction ended it.
    Forced,
}

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtEventKind {
    /// The connection was committed.
    New,
    /// The connection was removed.
    Destroy(DestroyReason),
}

/// One event of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtEvent {
    /// New or destroy.
    pub kind: CtEventKind,
    /// The caller's clock (`now` of the call that caused the event).
    pub at: u64,
    /// Zone.
    pub zone: u16,
    /// Original-direction tuple.
    pub orig: Tuple,
    /// Reply-direction tuple (after NAT).
    pub reply: Tuple,
    /// `ct_mark` when the event was produced (on `New`: before the commit's own
    /// `exec(set_field)`, which runs after creation, so normally 0).
    pub mark: u32,
    /// `ct_label`, same rule as `mark`.
    pub label: u128,
}

pub(crate) const EVENT_RINGS: usize = 64;

pub(crate) struct EventRings {
    rings: Box<[Mutex<VecDeque<CtEvent>>]>,
    per_ring: usize,
    dropped: AtomicU64,
}

impl EventRings {
    pub fn new(capacity: usize) -> EventRings {
        let per_ring = capacity.div_ceil(EVENT_RINGS).max(1);
        EventRings {
            rings: (0..EVENT_RINGS)
                .map(|_| Mutex::new(VecDeque::with_capacity(per_ring)))
                .collect(),
            per_ring,
            dropped: AtomicU64::new(0),
        }
    }

    /// Never blocks: a busy or full ring drops the event (counted).
    pub fn push(&self, shard: usize, ev: CtEvent) {
        let Some(ring) = self.rings.get(shard % EVENT_RINGS) else {
            return;
        };
        let mut q = match ring.try_lock() {
            Ok(q) => q,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Relaxed: statistics only.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if q.len() >= self.per_ring {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            // Below the preallocated capacity: no allocation.
            q.push_back(ev);
        }
    }

    /// Moves at most `max` events into `out` (ring by ring; events of one ring stay in order).
    pub fn drain(&self, out: &mut Vec<CtEvent>, max: usize) -> usize {
        let mut n = 0;
        for ring in self.rings.iter() {
            if n >= max {
                break;
            }
            let mut q = ring.lock().unwrap_or_else(|e| e.into_inner());
            let take = q.len().min(max - n);
            out.extend(q.drain(..take));
            n += take;
        }
        n
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
