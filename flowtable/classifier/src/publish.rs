//! Single-writer publication of immutable, versioned values to lock-free readers: what both an
//! OpenFlow table ([`Classifier`](crate::Classifier)) and the whole pipeline publish to workers.
//!
//! # Thread safety
//! - The writer ([`Publisher`]) is owned by the control thread. [`Publisher::publish`] stores
//!   the new value into an [`ArcSwap`] (readers load it without locks), then its version into
//!   an `AtomicU64` with `Release`.
//! - A reader ([`Reader`], one per worker) loads the version with `Acquire` at the start of
//!   each batch; seeing a new number guarantees its following `ArcSwap` load returns that value
//!   or a newer one. It keeps its `Arc` for the whole batch, so a batch sees one version.
//! - Each reader reports the version it adopted (`Release` after dropping its old `Arc`); the
//!   writer keeps every replaced value until all live readers are past it, so values are freed
//!   on the control thread, never by a worker, and [`Publisher::readers_reached`] tells when no
//!   worker can still use an old version (an OpenFlow barrier).

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A value that carries its version number.
pub trait Versioned {
    /// The version; published values have strictly increasing versions.
    fn version(&self) -> u64;
}

/// State shared between the writer and the readers.
struct Shared<T> {
    /// The newest published value.
    current: ArcSwap<T>,
    /// Its version. Stored with `Release` after `current`; loaded with `Acquire` by readers.
    version: AtomicU64,
}

/// What a reader tells the writer: the version it adopted, and whether it still exists.
#[derive(Debug)]
struct ReaderSlot {
    adopted: AtomicU64,
    alive: AtomicBool,
}

/// The writer side.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    current: Arc<T>,
    retired: Vec<Arc<T>>,
    readers: Vec<Arc<ReaderSlot>>,
}

impl<T: Versioned> std::fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("version", &self.current.version())
            .field("retired", &self.retired.len())
            .field("readers", &self.readers.len())
            .finish()
    }
}

impl<T: Versioned> Publisher<T> {
    /// Publishes `initial` as the first value.
    pub fn new(initial: Arc<T>) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: ArcSwap::new(Arc::clone(&initial)),
                version: AtomicU64::new(initial.version()),
            }),
            current: initial,
            retired: Vec::new(),
            readers: Vec::new(),
        }
    }

    /// The newest published value.
    pub fn current(&self) -> &Arc<T> {
        &self.current
    }

    /// The newest published version.
    pub fn version(&self) -> u64 {
        self.current.version()
    }

    /// A reader handle for one worker, starting at the current value.
    pub fn reader(&mut self) -> Reader<T> {
        let slot = Arc::new(ReaderSlot {
            adopted: AtomicU64::new(self.current.version()),
            alive: AtomicBool::new(true),
        });
        self.readers.push(Arc::clone(&slot));
        Reader {
            shared: Arc::clone(&self.shared),
            snap: Arc::clone(&self.current),
            slot,
        }
    }

    /// Publishes `next` (whose version must be newer) to every reader.
    pub fn publish(&mut self, next: Arc<T>) {
        let version = next.version();
        let old = std::mem::replace(&mut self.current, Arc::clone(&next));
        self.retired.push(old);
        self.shared.current.store(next);
        // Release: a reader that loads this version (Acquire) is guaranteed to find the value
        // stored just above (or a newer one) in `current`.
        self.shared.version.store(version, Ordering::Release);
        self.reclaim();
    }

    /// The oldest version any live reader still uses (the current version without readers).
    pub fn min_reader_version(&mut self) -> u64 {
        // Acquire on `alive`: pairs with the Release store in the reader's drop.
        self.readers.retain(|r| r.alive.load(Ordering::Acquire));
        self.readers
            .iter()
            // Acquire: pairs with the reader's Release store after it swapped values, so the
            // reader's old Arc is released before the writer drops its own.
            .map(|r| r.adopted.load(Ordering::Acquire))
            .min()
            .unwrap_or(self.current.version())
    }

    /// True when every live reader runs `version` or newer.
    pub fn readers_reached(&mut self, version: u64) -> bool {
        self.min_reader_version() >= version
    }

    /// Drops the replaced values no reader can still hold. Also runs on every publish.
    pub fn reclaim(&mut self) {
        let min = self.min_reader_version();
        // A reader at version `min` may hold value `min` itself; anything older is unused.
        self.retired.retain(|s| s.version() >= min);
    }

    /// Replaced values still kept for readers.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }

    /// Live readers (as of the last reclaim).
    pub fn readers(&self) -> usize {
        self.readers.len()
    }
}

/// A worker's handle: lock-free, allocation-free except when adopting a new version (an `Arc`
/// clone).
///
/// A worker must call [`refresh`](Self::refresh) regularly even when it has no traffic: until
/// it does, the writer keeps every value since the one it holds, and
/// [`Publisher::readers_reached`] stays false. Dropping the reader releases both.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    snap: Arc<T>,
    slot: Arc<ReaderSlot>,
}

impl<T: Versioned> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("version", &self.snap.version())
            .finish()
    }
}

impl<T: Versioned> Reader<T> {
    /// Adopts the newest published value if the version moved. Call once at the start of
    /// every batch.
    #[inline]
    pub fn refresh(&mut self) -> &Arc<T> {
        // Acquire: pairs with the Release store in `Publisher::publish`.
        let v = self.shared.version.load(Ordering::Acquire);
        if v != self.snap.version() {
            self.snap = self.shared.current.load_full();
            // Release: the old value's reference is gone before the writer reads this.
            self.slot
                .adopted
                .store(self.snap.version(), Ordering::Release);
        }
        &self.snap
    }

    /// The value adopted by the last [`refresh`](Self::refresh).
    #[inline]
    pub fn snapshot(&self) -> &Arc<T> {
        &self.snap
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        // Release: pairs with the writer's Acquire load of `alive`.
        self.slot.alive.store(false, Ordering::Release);
    }
}
