//! In-memory ports: [`MemoryPort`], driven by a test through its [`MemoryPeer`];
//! [`ReplayPort`], which replays a fixed set of frames (or a pcap loaded at start) as received
//! traffic, pktgen-style, for benchmarks and load without NICs; and [`NullPort`], a sink that
//! counts and frees whatever it is given (DPDK's `net_null`).
//!
//! A [`MemoryPort`] and its peer share two single-producer single-consumer byte rings (one per
//! direction). Each frame travels as one record: a 4-byte little-endian length followed by the
//! frame bytes. The worker side copies records straight between a ring and pool frames, so its
//! receive and transmit paths neither allocate nor lock nor block; a full ring is a counted drop.
//!
//! Invariant: a record's header and body are written by one producer before the producer writes
//! anything else, and the writer checks that both fit before writing either, so a consumer that
//! sees a header and not yet the whole body only has to try again later.
//!
//! ```
//! use xvs_io::{Desc, FramePool, MemoryPort, PortIo, ReplayPort};
//!
//! let mut pool = FramePool::new(64, 2048, 256)?;
//! let (mut port, mut peer) = MemoryPort::pair("p0", 16);
//! assert!(peer.send(&[0xaa; 60]));
//! let mut descs = [Desc::default(); 32];
//! let n = port.rx_burst(&mut pool, &mut descs);
//! assert_eq!(n, 1);
//! assert_eq!(port.tx_burst(&mut pool, &descs[..n]), n);
//! assert_eq!(peer.recv(), Some(vec![0xaa; 60]));
//!
//! // 100 packets cycling through two frames, then nothing.
//! let mut replay = ReplayPort::new("gen", [[1u8; 64], [2u8; 64]], Some(100))?;
//! let mut total = 0;
//! while !replay.finished() {
//!     let n = replay.rx_burst(&mut pool, &mut descs);
//!     total += n;
//!     replay.tx_burst(&mut pool, &descs[..n]);
//! }
//! assert_eq!(total, 100);
//! assert_eq!(pool.free_count(), 64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::pool::FramePool;
use crate::port::{Desc, PortIo, PortStats};
use rtrb::{Consumer, Producer, RingBuffer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes of the length header in front of every frame in a ring.
const RECORD_HEADER: usize = 4;
/// Largest frame a memory port carries.
pub const MAX_MEMORY_FRAME: usize = 65535;
/// Ring bytes reserved per frame of `capacity`: an untagged full-size Ethernet frame plus header.
const NOMINAL_RECORD: usize = 1520;
/// Upper bound of one ring, whatever capacity is asked for.
const MAX_RING_BYTES: usize = 256 << 20;

fn ring_bytes(capacity: usize) -> usize {
    capacity
        .saturating_mul(NOMINAL_RECORD)
        .clamp(MAX_MEMORY_FRAME + RECORD_HEADER, MAX_RING_BYTES)
}

/// Writes one record into `ring`; false (and nothing written) when it does not fit.
fn push_record(ring: &mut Producer<u8>, frame: &[u8]) -> bool {
    if frame.len() > MAX_MEMORY_FRAME || ring.slots() < RECORD_HEADER + frame.len() {
        return false;
    }
    // The length fits in 16 bits, checked above.
    let header = (frame.len() as u32).to_le_bytes();
    // Both pushes succeed: the free space was checked above and only this producer consumes it.
    ring.push_entire_slice(&header).is_ok() && ring.push_entire_slice(frame).is_ok()
}

/// The body length of the next complete record in `ring`, if one is there.
fn peek_record(ring: &mut Consumer<u8>) -> Option<usize> {
    let chunk = ring.read_chunk(RECORD_HEADER).ok()?;
    let (a, b) = chunk.as_slices();
    let mut header = [0u8; RECORD_HEADER];
    for (dst, src) in header.iter_mut().zip(a.iter().chain(b.iter())) {
        *dst = *src;
    }
    // Dropping the chunk without committing leaves the header in the ring.
    let len = u32::from_le_bytes(header) as usize;
    if ring.slots() < RECORD_HEADER + len {
        return None;
    }
    Some(len)
}

/// Copies the body of the next record (of body length `len`, already peeked) into `dst`, which
/// must be `len` bytes long, and removes the record. False when the ring does not hold it.
fn pop_record_into(ring: &mut Consumer<u8>, len: usize, dst: &mut [u8]) -> bool {
    let Ok(chunk) = ring.read_chunk(RECORD_HEADER + len) else {
        return false;
    };
    let (a, b) = chunk.as_slices();
    let skip_a = RECORD_HEADER.min(a.len());
    let body_a = a.get(skip_a..).unwrap_or(&[]);
    let body_b = b.get(RECORD_HEADER - skip_a..).unwrap_or(&[]);
    let ok = body_a.len() + body_b.len() == dst.len();
    if ok {
        let (dst_a, dst_b) = dst.split_at_mut(body_a.len());
        dst_a.copy_from_slice(body_a);
        dst_b.copy_from_slice(body_b);
    }
    chunk.commit_all();
    ok
}

/// Removes the next record (of body length `len`) without reading it.
fn skip_record(ring: &mut Consumer<u8>, len: usize) {
    if let Ok(chunk) = ring.read_chunk(RECORD_HEADER + len) {
        chunk.commit_all();
    }
}

/// A port whose wire is a pair of in-memory rings; the other end is a [`MemoryPeer`].
///
/// # Thread safety
/// The port belongs to one worker; its peer may live on another thread. Each ring has exactly
/// one producer and one consumer (rtrb's SPSC protocol), so neither side ever waits for the other.
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    /// Frames the peer sent, received by the port.
    rx: Consumer<u8>,
    /// Frames the port transmitted, for the peer to collect.
    tx: Producer<u8>,
    stats: PortStats,
}

/// The test side of a [`MemoryPort`]: injects frames into the port's receive path and collects
/// the frames the port transmitted. It may be moved to another thread.
#[derive(Debug)]
pub struct MemoryPeer {
    to_port: Producer<u8>,
    from_port: Consumer<u8>,
}

impl MemoryPort {
    /// A port and its peer. Each direction buffers at least `capacity` frames of up to 1516
    /// bytes (more smaller ones, fewer jumbo ones), and always at least one frame of
    /// [`MAX_MEMORY_FRAME`] bytes; a ring never exceeds 256 MiB.
    pub fn pair(name: &str, capacity: usize) -> (MemoryPort, MemoryPeer) {
        let bytes = ring_bytes(capacity);
        let (to_port, rx) = RingBuffer::new(bytes);
        let (tx, from_port) = RingBuffer::new(bytes);
        (
            MemoryPort {
                name: name.to_owned(),
                rx,
                tx,
                stats: PortStats::default(),
            },
            MemoryPeer { to_port, from_port },
        )
    }
}

impl PortIo for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let room = (pool.region().frame_size() - pool.headroom()) as usize;
        let mut n = 0;
        while n < out.len() {
            let Some(len) = peek_record(&mut self.rx) else {
                break;
            };
            if len > room {
                skip_record(&mut self.rx, len);
                self.stats.rx_dropped += 1;
                continue;
            }
            // An empty pool leaves the frame in the ring for a later burst.
            let Some(d) = pool.alloc_desc(len as u32) else {
                break;
            };
            if !pop_record_into(&mut self.rx, len, pool.region_mut().data_mut(d)) {
                pool.free(d.addr);
                self.stats.errors += 1;
                break;
            }
            if let Some(slot) = out.get_mut(n) {
                *slot = d;
            }
            n += 1;
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
        }
        n
    }

    /// Stops at the first frame that does not fit in the ring: that frame and the rest stay
    /// with the caller, which frees and counts them. Unusable descriptors (out of the pool, or
    /// longer than [`MAX_MEMORY_FRAME`]) are taken, freed and counted in `tx_dropped`.
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        for (i, d) in pkts.iter().enumerate() {
            let data = pool.region().data(*d);
            if data.len() != d.len as usize || data.len() > MAX_MEMORY_FRAME {
                self.stats.tx_dropped += 1;
                self.stats.errors += 1;
            } else if push_record(&mut self.tx, data) {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += u64::from(d.len);
            } else {
                return i;
            }
            pool.free(d.addr);
        }
        pkts.len()
    }

    fn flush(&mut self, _pool: &mut FramePool) {}

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl MemoryPeer {
    /// Queues `frame` for the port to receive; false when the ring is full or the frame is
    /// longer than [`MAX_MEMORY_FRAME`].
    pub fn send(&mut self, frame: &[u8]) -> bool {
        push_record(&mut self.to_port, frame)
    }

    /// The next frame the port transmitted, if any.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let len = peek_record(&mut self.from_port)?;
        let mut frame = vec![0u8; len];
        pop_record_into(&mut self.from_port, len, &mut frame).then_some(frame)
    }

    /// Every frame the port transmitted so far.
    pub fn recv_all(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.recv()).collect()
    }

    /// True when the port has consumed every frame sent to it.
    pub fn rx_drained(&self) -> bool {
        self.to_port.slots() == self.to_port.buffer().capacity()
    }
}

/// Errors building a [`ReplayPort`].
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The frame set is empty.
    #[error("a replay port needs at least one frame")]
    Empty,
    /// The capture file holds no packet.
    #[error("{0}: the capture holds no packets; a replay port needs at least one")]
    EmptyCapture(PathBuf),
    /// A frame is empty or longer than [`MAX_MEMORY_FRAME`].
    #[error("frame {index} has {len} bytes; replayed frames need 1..={MAX_MEMORY_FRAME}")]
    FrameLength {
        /// Position of the frame in the set.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// A frame does not fit in the frames of the pool the port receives into.
    #[error(
        "frame {index} has {len} bytes, but the worker's frames hold {room} bytes after \
         their headroom"
    )]
    FrameTooLong {
        /// Position of the frame in the set (0-based; packet `index + 1` in a capture).
        index: usize,
        /// Its length.
        len: usize,
        /// Bytes a pool frame holds after its headroom.
        room: u32,
    },
    /// `loops` times the number of frames does not fit in 64 bits.
    #[error("{loops} loops of {frames} frames is too many packets")]
    TooManyPackets {
        /// Requested loop count.
        loops: u64,
        /// Frames per loop.
        frames: usize,
    },
    /// Reading the frames from a capture failed.
    #[error("reading replay frames: {0}")]
    Pcap(#[from] crate::pcap::PcapError),
}

/// Starts and stops a [`ReplayPort`] from another thread (the daemon's control thread), so a
/// finite replay can wait until the flows it is meant to meet are installed.
///
/// # Thread safety
/// One flag shared with the port. The control side stores with `Release`; the port loads with
/// `Acquire` once per burst and begins emitting only at the burst after the one that saw the
/// flag set, so the worker has started a new iteration (and picked up any table version
/// published before the start) before the first packet leaves.
#[derive(Debug, Clone)]
pub struct ReplayGate(Arc<AtomicBool>);

impl ReplayGate {
    /// Lets the port emit.
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Holds the port: it emits nothing until started again (and resumes where it stopped).
    pub fn stop(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// True when started.
    pub fn is_started(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A receive-only source that replays a fixed set of frames in order, in a loop, for
/// benchmarks and pktgen-style load; its transmit side is a sink that counts and frees.
///
/// Receiving costs one frame allocation from the pool and one copy per packet, nothing else:
/// the same work DPDK's `net_pcap` with `infinite_rx=1` does into an mbuf. The loaded frames
/// stay private to the port; a received packet is always a copy in a pool frame. Frames too
/// long for the pool's frames are skipped and counted in `rx_dropped` (the daemon refuses such
/// a set up front with [`ReplayPort::check_fits`]).
#[derive(Debug)]
pub struct ReplayPort {
    name: String,
    /// All frames, back to back.
    data: Vec<u8>,
    /// (offset, length) of every frame in `data`.
    spans: Vec<(usize, u32)>,
    next: usize,
    /// Packets still to emit; `None` replays forever.
    remaining: Option<u64>,
    /// Present when started and stopped from outside ([`ReplayPort::gate`]).
    gate: Option<Arc<AtomicBool>>,
    /// The gate was seen open at a previous burst: emit.
    emitting: bool,
    stats: PortStats,
}

impl ReplayPort {
    /// A port that replays `frames` in order, looping, until it has emitted `count` packets
    /// (`None`: forever). Frames dropped for not fitting a pool frame count as emitted.
    pub fn new<I>(name: &str, frames: I, count: Option<u64>) -> Result<Self, ReplayError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for (index, frame) in frames.into_iter().enumerate() {
            let frame = frame.as_ref();
            if frame.is_empty() || frame.len() > MAX_MEMORY_FRAME {
                return Err(ReplayError::FrameLength {
                    index,
                    len: frame.len(),
                });
            }
            spans.push((data.len(), frame.len() as u32));
            data.extend_from_slice(frame);
        }
        if spans.is_empty() {
            return Err(ReplayError::Empty);
        }
        Ok(Self {
            name: name.to_owned(),
            data,
            spans,
            next: 0,
            remaining: count,
            gate: None,
            emitting: true,
            stats: PortStats::default(),
        })
    }

    /// A port that replays every packet of a pcap file (see [`crate::pcap::read_all`]) until
    /// it has emitted `count` packets (`None`: forever).
    pub fn from_pcap(name: &str, path: &Path, count: Option<u64>) -> Result<Self, ReplayError> {
        let frames = crate::pcap::read_all(path)?;
        if frames.is_empty() {
            return Err(ReplayError::EmptyCapture(path.to_owned()));
        }
        Self::new(name, frames, count)
    }

    /// A port that replays a whole pcap file `loops` times (`None`: forever), as `net_pcap`
    /// does with `infinite_rx=1`. The file is read into memory here, once.
    pub fn from_pcap_loops(
        name: &str,
        path: &Path,
        loops: Option<u64>,
    ) -> Result<Self, ReplayError> {
        let mut port = Self::from_pcap(name, path, None)?;
        if let Some(loops) = loops {
            let frames = port.frame_count();
            port.remaining = Some(
                loops
                    .checked_mul(frames as u64)
                    .ok_or(ReplayError::TooManyPackets { loops, frames })?,
            );
        }
        Ok(port)
    }

    /// Makes the port wait for [`ReplayGate::start`] before it emits anything; returns the
    /// gate. Calling it again returns the same gate.
    pub fn gate(&mut self) -> ReplayGate {
        let flag = self
            .gate
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)));
        let gate = ReplayGate(Arc::clone(flag));
        self.emitting = gate.is_started();
        gate
    }

    /// Refuses a set with a frame longer than what `pool`'s frames hold after their headroom
    /// (such a frame would only ever be dropped).
    pub fn check_fits(&self, pool: &FramePool) -> Result<(), ReplayError> {
        let room = pool.region().frame_size() - pool.headroom();
        match self.spans.iter().position(|&(_, len)| len > room) {
            Some(index) => Err(ReplayError::FrameTooLong {
                index,
                len: self.spans.get(index).map_or(0, |s| s.1 as usize),
                room,
            }),
            None => Ok(()),
        }
    }

    /// Number of distinct frames in the set.
    pub fn frame_count(&self) -> usize {
        self.spans.len()
    }

    /// Packets still to emit; `None` when replaying forever.
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    /// True once the packet count is exhausted.
    pub fn finished(&self) -> bool {
        self.remaining == Some(0)
    }

    /// False while a gate holds the port. A gate seen open starts emission at the next burst.
    #[inline]
    fn gate_open(&mut self) -> bool {
        let Some(flag) = &self.gate else {
            return true;
        };
        let open = flag.load(Ordering::Acquire);
        let was = self.emitting;
        self.emitting = open;
        open && was
    }
}

impl PortIo for ReplayPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        if !self.gate_open() {
            return 0;
        }
        let budget = match self.remaining {
            Some(r) => out.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => out.len(),
        };
        let room = pool.region().frame_size() - pool.headroom();
        let mut n = 0;
        // Packets taken from the set this burst, delivered or dropped.
        let mut emitted = 0;
        while emitted < budget {
            let Some(&(off, len)) = self.spans.get(self.next) else {
                // Unreachable (the set is never empty and `next` stays in range); stay safe.
                self.next = 0;
                break;
            };
            if len > room {
                // Dropped once per replayed copy, like a device refusing an oversized frame.
                self.stats.rx_dropped += 1;
            } else {
                let Some(d) = pool.alloc_desc(len) else {
                    break;
                };
                let src = self.data.get(off..off + len as usize).unwrap_or(&[]);
                let dst = pool.region_mut().data_mut(d);
                if dst.len() == src.len() {
                    dst.copy_from_slice(src);
                }
                if let Some(slot) = out.get_mut(n) {
                    *slot = d;
                }
                n += 1;
                self.stats.rx_bytes += u64::from(len);
            }
            emitted += 1;
            self.next += 1;
            if self.next == self.spans.len() {
                self.next = 0;
            }
        }
        self.stats.rx_packets += n as u64;
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(emitted as u64);
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        sink(&mut self.stats, pool, pkts)
    }

    fn flush(&mut self, _pool: &mut FramePool) {}

    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// Counts `pkts` as transmitted and frees them.
#[inline]
fn sink(stats: &mut PortStats, pool: &mut FramePool, pkts: &[Desc]) -> usize {
    for d in pkts {
        stats.tx_bytes += u64::from(d.len);
        pool.free(d.addr);
    }
    stats.tx_packets += pkts.len() as u64;
    pkts.len()
}

/// A sink: transmitting counts the packets and bytes and frees the frames at once; it never
/// receives. The counterpart of DPDK's `net_null` (`no-rx=1`) for benchmarks that measure the
/// switch alone.
#[derive(Debug)]
pub struct NullPort {
    name: String,
    stats: PortStats,
}

impl NullPort {
    /// A sink named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            stats: PortStats::default(),
        }
    }
}

impl PortIo for NullPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, _pool: &mut FramePool, _out: &mut [Desc]) -> usize {
        0
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        sink(&mut self.stats, pool, pkts)
    }

    fn flush(&mut self, _pool: &mut FramePool) {}

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::udp_frame;

    fn frame(i: u8, len: usize) -> Vec<u8> {
        (0..len).map(|j| i.wrapping_add(j as u8)).collect()
    }

    #[test]
    fn memory_port_round_trip_and_accounting() {
        let mut pool = FramePool::new(64, 2048, 256).expect("pool");
        let (mut port, mut peer) = MemoryPort::pair("m0", 16);
        let sent: Vec<Vec<u8>> = (0..10u8).map(|i| frame(i, 60 + usize::from(i))).collect();
        for f in &sent {
            assert!(peer.send(f));
        }
        let mut descs = [Desc::default(); 4];
        let mut got = Vec::new();
        loop {
            let n = port.rx_burst(&mut pool, &mut descs);
            if n == 0 {
                break;
            }
            assert!(n <= 4);
            for d in &descs[..n] {
                got.push(pool.region().data(*d).to_vec());
            }
            // Echo everything back out.
            assert_eq!(port.tx_burst(&mut pool, &descs[..n]), n);
        }
        assert_eq!(got, sent);
        assert!(peer.rx_drained());
        assert_eq!(peer.recv_all(), sent);
        assert_eq!(pool.free_count(), 64);
        let s = port.stats();
        assert_eq!(s.rx_packets, 10);
        assert_eq!(s.tx_packets, 10);
        assert_eq!(s.rx_bytes, sent.iter().map(|f| f.len() as u64).sum::<u64>());
        assert_eq!(s.tx_bytes, s.rx_bytes);
        assert_eq!(s.rx_dropped + s.tx_dropped + s.errors, 0);
    }

    #[test]
    fn records_wrap_around_the_ring() {
        // Ring of MAX_MEMORY_FRAME + 4 bytes: odd-sized records wrap at every offset.
        let mut pool = FramePool::new(4, 2048, 0).expect("pool");
        let (mut port, mut peer) = MemoryPort::pair("m0", 0);
        let mut descs = [Desc::default(); 1];
        for i in 0..300u32 {
            let f = frame(i as u8, 1000 + (i as usize * 7) % 1000);
            assert!(peer.send(&f));
            assert_eq!(port.rx_burst(&mut pool, &mut descs), 1);
            assert_eq!(pool.region().data(descs[0]), &f[..]);
            assert_eq!(port.tx_burst(&mut pool, &descs), 1);
            assert_eq!(peer.recv().as_deref(), Some(&f[..]));
        }
        assert_eq!(pool.free_count(), 4);
    }

    #[test]
    fn full_rings_and_small_pools_are_handled() {
        let mut pool = FramePool::new(2, 2048, 256).expect("pool");
        let (mut port, mut peer) = MemoryPort::pair("m0", 0);
        let big = vec![7u8; 1500];
        let mut accepted = 0;
        while peer.send(&big) {
            accepted += 1;
        }
        assert_eq!(accepted, (MAX_MEMORY_FRAME + 4) / 1504);
        assert!(!peer.send(&vec![0u8; MAX_MEMORY_FRAME + 1]));
        // The pool has two frames: the rest stays queued, nothing is lost.
        let mut descs = [Desc::default(); 8];
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 2);
        assert_eq!(port.rx_burst(&mut pool, &mut descs[2..]), 0);
        assert_eq!(port.stats().rx_dropped, 0);
        pool.free_all(&descs[..2]);
        let mut total = 2;
        loop {
            let n = port.rx_burst(&mut pool, &mut descs);
            if n == 0 {
                break;
            }
            total += n;
            pool.free_all(&descs[..n]);
        }
        assert_eq!(total, accepted);
        assert_eq!(pool.free_count(), 2);

        // A frame bigger than the pool's frames is dropped and counted.
        assert!(peer.send(&vec![1u8; 1900]));
        assert!(peer.send(&[2u8; 64]));
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 1);
        assert_eq!(pool.region().data(descs[0]), &[2u8; 64]);
        assert_eq!(port.stats().rx_dropped, 1);

        // Transmit into a full ring: the port refuses the rest of the burst, the caller keeps it.
        pool.free(descs[0].addr);
        let mut sent = 0;
        let refused = loop {
            let a = pool.alloc_copy(&big).expect("frame");
            let b = pool.alloc_copy(&big).expect("frame");
            match port.tx_burst(&mut pool, &[a, b]) {
                2 => sent += 2,
                n => {
                    sent += n;
                    break [a, b][n..].to_vec();
                }
            }
            assert!(sent < 1000, "ring never filled");
        };
        assert_eq!(sent, accepted);
        assert_eq!(pool.free_count(), 2 - refused.len());
        pool.free_all(&refused);
        assert_eq!(port.stats().tx_packets, accepted as u64);
        assert_eq!(port.stats().tx_dropped, 0);
        assert_eq!(peer.recv_all().len(), accepted);
        // Room again once the peer drained the ring.
        let a = pool.alloc_copy(&big).expect("frame");
        assert_eq!(port.tx_burst(&mut pool, &[a]), 1);
        assert_eq!(pool.free_count(), 2);
    }

    #[test]
    fn peer_works_from_another_thread() {
        const N: usize = 2000;
        let mut pool = FramePool::new(64, 2048, 256).expect("pool");
        let (mut port, mut peer) = MemoryPort::pair("m0", 64);
        let expected: Vec<Vec<u8>> = (0..N).map(|i| frame(i as u8, 64 + i % 100)).collect();
        let to_send = expected.clone();
        let limit = std::time::Duration::from_secs(20);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let worker_done = done.clone();
        let peer_thread = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + limit;
            let (mut i, mut back) = (0, Vec::new());
            while back.len() < N && std::time::Instant::now() < deadline {
                if i < N && peer.send(&to_send[i]) {
                    i += 1;
                }
                // Read the flag before polling, so an empty ring after it means "all seen".
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                match peer.recv() {
                    Some(f) => back.push(f),
                    None if finished => break,
                    None => std::thread::yield_now(),
                }
            }
            back
        });
        let deadline = std::time::Instant::now() + limit;
        let mut descs = [Desc::default(); 32];
        let (mut forwarded, mut refused) = (0, 0);
        while forwarded < N && std::time::Instant::now() < deadline {
            let n = port.rx_burst(&mut pool, &mut descs);
            let accepted = port.tx_burst(&mut pool, &descs[..n]);
            // Refused frames are dropped by the caller, as the engine does.
            pool.free_all(&descs[accepted..n]);
            refused += n - accepted;
            forwarded += n;
            if n == 0 {
                std::thread::yield_now();
            }
        }
        // Release: every record pushed by tx_burst is visible once the flag is.
        worker_done.store(true, std::sync::atomic::Ordering::Release);
        let back = peer_thread.join().expect("peer thread");
        // Frames the peer did not drain in time were refused; no frame may be lost silently and
        // the survivors keep their order.
        let drops = refused;
        assert_eq!(port.stats().tx_packets as usize, N - refused);
        assert_eq!(forwarded, N);
        assert_eq!(back.len() + drops, N);
        let mut it = expected.iter();
        for f in &back {
            assert!(it.any(|e| e == f), "frames out of order or corrupted");
        }
        assert_eq!(pool.free_count(), 64);
    }

    #[test]
    fn replay_loops_and_counts() {
        let frames = [
            udp_frame(1, b"one"),
            udp_frame(2, b"two-two"),
            udp_frame(3, b"3"),
        ];
        let mut port = ReplayPort::new("r0", &frames, Some(10)).expect("replay");
        let mut pool = FramePool::new(8, 2048, 128).expect("pool");
        let mut descs = [Desc::default(); 4];
        let mut seen = Vec::new();
        while !port.finished() {
            let n = port.rx_burst(&mut pool, &mut descs);
            assert!(n > 0);
            for d in &descs[..n] {
                seen.push(pool.region().data(*d).to_vec());
            }
            assert_eq!(port.tx_burst(&mut pool, &descs[..n]), n);
        }
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 0);
        assert_eq!(seen.len(), 10);
        for (i, f) in seen.iter().enumerate() {
            assert_eq!(f, &frames[i % 3]);
        }
        let s = port.stats();
        assert_eq!(s.rx_packets, 10);
        assert_eq!(s.tx_packets, 10);
        assert_eq!(s.rx_bytes, s.tx_bytes);
        assert_eq!(pool.free_count(), 8);
    }

    #[test]
    fn replay_forever_stops_only_on_empty_pool() {
        let frames = [vec![1u8; 60], vec![2u8; 3000]];
        let mut port = ReplayPort::new("r0", &frames, None).expect("replay");
        let mut pool = FramePool::new(5, 2048, 128).expect("pool");
        let mut descs = [Desc::default(); 16];
        let n = port.rx_burst(&mut pool, &mut descs);
        assert_eq!(n, 5);
        assert!(port.stats().rx_dropped >= 4);
        assert!(descs[..n]
            .iter()
            .all(|d| pool.region().data(*d) == [1u8; 60]));
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 0);
        pool.free_all(&descs[..n]);
        assert_eq!(pool.free_count(), 5);
        assert_eq!(port.remaining(), None);
    }

    #[test]
    fn replay_rejects_bad_sets() {
        let none: [&[u8]; 0] = [];
        assert!(matches!(
            ReplayPort::new("r", none, None),
            Err(ReplayError::Empty)
        ));
        assert!(matches!(
            ReplayPort::new("r", [&[1u8][..], &[]], None),
            Err(ReplayError::FrameLength { index: 1, len: 0 })
        ));
    }

    #[test]
    fn gated_replay_waits_for_its_start_and_resumes_after_a_stop() {
        let mut port = ReplayPort::new("r0", [[1u8; 60], [2u8; 60]], Some(10)).expect("replay");
        let gate = port.gate();
        let mut pool = FramePool::new(8, 2048, 128).expect("pool");
        let mut descs = [Desc::default(); 4];
        for _ in 0..3 {
            assert_eq!(port.rx_burst(&mut pool, &mut descs), 0);
        }
        gate.start();
        assert!(gate.is_started());
        // The burst that first sees the gate open emits nothing; the next one does.
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 0);
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 4);
        pool.free_all(&descs);
        gate.stop();
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 0);
        gate.start();
        let mut total = 4;
        for _ in 0..10 {
            let n = port.rx_burst(&mut pool, &mut descs);
            total += n;
            pool.free_all(&descs[..n]);
        }
        assert_eq!(total, 10);
        assert!(port.finished());
        assert_eq!(port.stats().rx_packets, 10);
        assert_eq!(pool.free_count(), 8);
    }

    #[test]
    fn null_port_counts_frees_and_never_receives() {
        let mut pool = FramePool::new(8, 2048, 128).expect("pool");
        let mut port = NullPort::new("null0");
        let mut descs = [Desc::default(); 4];
        assert_eq!(port.rx_burst(&mut pool, &mut descs), 0);
        let a = pool.alloc_copy(&[1u8; 60]).expect("frame");
        let b = pool.alloc_copy(&[2u8; 100]).expect("frame");
        assert_eq!(pool.free_count(), 6);
        assert_eq!(port.tx_burst(&mut pool, &[a, b]), 2);
        assert_eq!(pool.free_count(), 8);
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (2, 160));
        assert_eq!((s.rx_packets, s.rx_bytes, s.tx_dropped), (0, 0, 0));
        assert_eq!(port.name(), "null0");
    }
}
