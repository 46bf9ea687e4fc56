//! Port capture (`xvsctl capture`): tcpdump cannot see frames that AF_XDP takes before the
//! kernel's stack, so a worker mirrors the frames of the ports the control side asked for.
//!
//! # Thread safety
//! The control side sets bits in [`WorkerShared::capture_mask`](crate::WorkerShared) (one bit
//! per worker port index); the worker loads the mask once per iteration (`Relaxed`: a frame
//! more or less at the edges of a capture does not matter, and nothing else is published
//! through it). Copies go onto a preallocated single-producer single-consumer byte ring
//! (`rtrb`, [`RING_BYTES`]) as variable-length records (a small header, then the frame), each
//! committed whole, so the reader never sees half a record. Pushing neither locks nor
//! allocates; a full ring is a counted drop (`capture_dropped`), never a wait. With the mask
//! zero the cost is one load per iteration and one test per burst.

use xvs_io::{Desc, FramePool};

/// Bytes of a frame a record carries at most (a whole frame of the pool); longer frames are
/// truncated (pcap's `caplen`).
pub const SNAPLEN: usize = 4096;
/// Bytes of the ring per worker: some 10,000 small frames, at least 250 of the largest.
pub const RING_BYTES: usize = 1 << 20;
/// Bytes of a record's header: time (8), frame length (4), port index (2), direction (1),
/// pad (1), captured length (2). A frame of `n` bytes takes `RECORD_HEADER + n` of the ring.
pub const RECORD_HEADER: usize = 18;
const HEADER: usize = RECORD_HEADER;

/// Whether a captured frame was received or transmitted by the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the port.
    Rx,
    /// Handed to the port for transmission.
    Tx,
}

/// One captured frame, as the control side reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRecord {
    /// Wall-clock time of the worker's iteration, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The worker port index the frame crossed.
    pub port_idx: u16,
    /// Received or transmitted.
    pub direction: Direction,
    /// The frame's length.
    pub orig_len: u32,
    /// The frame's first bytes (at most [`SNAPLEN`]).
    pub data: Vec<u8>,
}

impl CaptureRecord {
    /// The captured bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

/// The control side's end of a worker's capture ring.
#[derive(Debug)]
pub struct CaptureConsumer {
    ring: rtrb::Consumer<u8>,
}

impl CaptureConsumer {
    /// The next record, if one was committed (allocates its data: control side).
    pub fn pop(&mut self) -> Option<CaptureRecord> {
        let mut h = [0u8; HEADER];
        {
            // Peek at the header (a chunk dropped without commit consumes nothing).
            let chunk = self.ring.read_chunk(HEADER).ok()?;
            let (a, b) = chunk.as_slices();
            h[..a.len()].copy_from_slice(a);
            h[a.len()..].copy_from_slice(b);
        }
        let len = usize::from(u16::from_le_bytes([h[16], h[17]]));
        // The producer commits header and data together: the whole record is there.
        let chunk = self.ring.read_chunk(HEADER + len).ok()?;
        let (a, b) = chunk.as_slices();
        let mut data = Vec::with_capacity(len);
        data.extend(a.iter().chain(b).skip(HEADER).copied());
        chunk.commit_all();
        let mut t = [0u8; 8];
        t.copy_from_slice(&h[..8]);
        Some(CaptureRecord {
            time_ns: u64::from_le_bytes(t),
            orig_len: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            port_idx: u16::from_le_bytes([h[12], h[13]]),
            direction: if h[14] == 0 {
                Direction::Rx
            } else {
                Direction::Tx
            },
            data,
        })
    }
}

/// The worker's end: the ring, this iteration's mask and time, and the counters.
#[derive(Debug)]
pub(crate) struct CaptureTap {
    ring: rtrb::Producer<u8>,
    /// The mask loaded at the start of the iteration.
    pub(crate) mask: u64,
    /// Wall-clock time of the iteration (read only when `mask` is non-zero).
    pub(crate) time_ns: u64,
    /// Frames a full ring refused.
    pub(crate) dropped: u64,
    /// Frames pushed.
    pub(crate) captured: u64,
}

impl CaptureTap {
    /// A tap with its ring (allocated here, once); the consumer goes to the control side.
    pub(crate) fn new() -> (Self, CaptureConsumer) {
        let (ring, consumer) = rtrb::RingBuffer::new(RING_BYTES);
        let tap = Self {
            ring,
            mask: 0,
            time_ns: 0,
            dropped: 0,
            captured: 0,
        };
        (tap, CaptureConsumer { ring: consumer })
    }

    /// True when port `idx` is being captured this iteration.
    #[inline]
    pub(crate) fn wants(&self, idx: usize) -> bool {
        self.mask != 0 && idx < 64 && self.mask & (1 << idx) != 0
    }

    /// Copies `descs` (frames of `pool` that crossed port `idx`) onto the ring.
    pub(crate) fn copy(&mut self, pool: &FramePool, idx: usize, dir: Direction, descs: &[Desc]) {
        for d in descs {
            if !pool.region().contains(*d) {
                continue;
            }
            let data = pool.region().data(*d);
            let n = data.len().min(SNAPLEN);
            let Ok(mut chunk) = self.ring.write_chunk(HEADER + n) else {
                self.dropped += 1;
                continue;
            };
            let mut h = [0u8; HEADER];
            h[..8].copy_from_slice(&self.time_ns.to_le_bytes());
            h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
            h[12..14].copy_from_slice(&(idx as u16).to_le_bytes());
            h[14] = u8::from(dir == Direction::Tx);
            h[16..18].copy_from_slice(&(n as u16).to_le_bytes());
            let (a, b) = chunk.as_mut_slices();
            // The record may wrap around the ring's end: write it across both slices.
            let mut pos = 0;
            for part in [&h[..], &data[..n]] {
                let mut src = part;
                while !src.is_empty() {
                    let dst = match a.get_mut(pos..) {
                        Some(d) if !d.is_empty() => d,
                        _ => match b.get_mut(pos - a.len()..) {
                            Some(d) => d,
                            None => break,
                        },
                    };
                    let k = dst.len().min(src.len());
                    dst[..k].copy_from_slice(&src[..k]);
                    src = &src[k..];
                    pos += k;
                }
            }
            chunk.commit_all();
            self.captured += 1;
        }
    }
}
