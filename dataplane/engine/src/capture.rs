//! Port capture (`xvsctl capture`): tcpdump cannot see frames that AF_XDP takes before the
//! kernel's stack, so a worker mirrors the frames of the ports the control side asked for.
//!
//! # Thread safety
//! The control side sets bits in [`WorkerShared::capture_mask`](crate::WorkerShared) (one bit
//! per worker port index); the worker loads the mask once per iteration (`Relaxed`: a frame
//! more or less at the edges of a capture does not matter, and nothing else is published
//! through it). Copies go onto a preallocated single-producer single-consumer ring of
//! fixed-size records (`rtrb`): pushing neither locks nor allocates, and a full ring is a
//! counted drop (`capture_dropped`), never a wait. With the mask zero the cost is one load per
//! iteration and one test per burst.

use xvs_io::{Desc, FramePool};

/// Bytes of a frame a record carries; longer frames are truncated (pcap's `caplen`).
pub const SNAPLEN: usize = 2048;
/// Records in flight per worker.
pub const QUEUE: usize = 256;

/// Whether a captured frame was received or transmitted by the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the port.
    Rx,
    /// Handed to the port for transmission.
    Tx,
}

/// One captured frame.
#[derive(Clone, Debug)]
pub struct CaptureRecord {
    /// Wall-clock time of the worker's iteration, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The worker port index the frame crossed.
    pub port_idx: u16,
    /// Received or transmitted.
    pub direction: Direction,
    /// The frame's length.
    pub orig_len: u32,
    /// Bytes of `data` in use.
    pub len: u16,
    /// The frame's first `len` bytes.
    pub data: [u8; SNAPLEN],
}

impl CaptureRecord {
    /// The captured bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len).min(SNAPLEN)]
    }
}

/// The control side's end of a worker's capture ring.
pub type CaptureConsumer = rtrb::Consumer<CaptureRecord>;

/// The worker's end: the ring, this iteration's mask and time, and the counters.
#[derive(Debug)]
pub(crate) struct CaptureTap {
    ring: rtrb::Producer<CaptureRecord>,
    /// The mask loaded at the start of the iteration.
    pub(crate) mask: u64,
    /// Wall-clock time of the iteration (read only when `mask` is non-zero).
    pub(crate) time_ns: u64,
    /// Records a full ring refused.
    pub(crate) dropped: u64,
    /// Records pushed.
    pub(crate) captured: u64,
    /// A record to fill before pushing (boxed: 2 KiB kept off the stack).
    scratch: Box<CaptureRecord>,
}

impl CaptureTap {
    /// A tap with its ring; the consumer goes to the control side.
    pub(crate) fn new() -> (Self, CaptureConsumer) {
        let (ring, consumer) = rtrb::RingBuffer::new(QUEUE);
        let tap = Self {
            ring,
            mask: 0,
            time_ns: 0,
            dropped: 0,
            captured: 0,
            scratch: Box::new(CaptureRecord {
                time_ns: 0,
                port_idx: 0,
                direction: Direction::Rx,
                orig_len: 0,
                len: 0,
                data: [0; SNAPLEN],
            }),
        };
        (tap, consumer)
    }

    /// True when port `idx` is being captured this iteration.
    #[inline]
    pub(crate) fn wants(&self, idx: usize) -> bool {
        self.mask != 0 && idx < 64 && self.mask & (1 << idx) != 0
    }

    /// Copies `descs` (frames of `pool` that crossed port `idx`) onto the ring.
    pub(crate) fn copy(&mut self, pool: &FramePool, idx: usize, dir: Direction, descs: &[Desc]) {
        for d in descs {
            if self.ring.is_full() {
                self.dropped += 1;
                continue;
            }
            if !pool.region().contains(*d) {
                continue;
            }
            let data = pool.region().data(*d);
            let n = data.len().min(SNAPLEN);
            let r = &mut *self.scratch;
            r.time_ns = self.time_ns;
            r.port_idx = idx as u16;
            r.direction = dir;
            r.orig_len = data.len() as u32;
            r.len = n as u16;
            r.data[..n].copy_from_slice(&data[..n]);
            // The record is copied into the ring's preallocated slot (no allocation).
            match self.ring.push((*self.scratch).clone()) {
                Ok(()) => self.captured += 1,
                Err(_) => self.dropped += 1,
            }
        }
    }
}
