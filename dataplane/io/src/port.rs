//! The batch port interface every backend implements.

use crate::pool::FramePool;

/// One packet in a worker's [`FramePool`]: `len` bytes at byte offset `addr` of the region.
/// The layout equals the kernel's `struct xdp_desc`, so AF_XDP rings carry it unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Desc {
    /// Offset of the first packet byte from the start of the pool's region.
    pub addr: u64,
    /// Packet length in bytes.
    pub len: u32,
    /// Backend-specific flags (AF_XDP `options`); zero elsewhere.
    pub options: u32,
}

/// Counters every port keeps; read by the control side through the worker's published copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets lost on receive before reaching the engine (ring or pool exhausted, short reads).
    pub rx_dropped: u64,
    /// Packets handed to the kernel or device for transmission.
    pub tx_packets: u64,
    /// Bytes handed for transmission.
    pub tx_bytes: u64,
    /// Packets refused for transmission (ring full, device error).
    pub tx_dropped: u64,
    /// Errors other than drops (failed syscalls), each counted once.
    pub errors: u64,
}

/// A port (or one queue of a port) polled by one worker.
///
/// Every call takes the worker's pool: received packets are placed in frames taken from it and
/// transmitted frames go back to it once the device is done with them.
pub trait PortIo: Send {
    /// The interface name, for logs and counters.
    fn name(&self) -> &str;

    /// Receives up to `out.len()` packets into `out`; returns how many were written.
    /// Never blocks.
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize;

    /// Queues `pkts` for transmission; returns how many (a prefix of `pkts`) the port accepted.
    /// Accepted frames belong to the port, which frees them into `pool` when sent; the caller
    /// frees the rest and counts them as drops.
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize;

    /// Pushes queued transmissions to the device (a kick where one is needed) and reclaims
    /// frames the device finished with. Called once per worker iteration.
    fn flush(&mut self, pool: &mut FramePool);

    /// The port's counters.
    fn stats(&self) -> PortStats;

    /// Refreshes counters that live outside the port (kernel socket statistics); may make a
    /// syscall. The worker calls it when it publishes counters, at most every few milliseconds,
    /// never per packet.
    fn refresh_stats(&mut self) {}

    /// Frames the port holds (posted for receive or in flight for transmit); used to size pools
    /// and to check that nothing leaks.
    fn frames_held(&self) -> usize {
        0
    }

    /// Takes the port out of service for good (a port deleted at run time) and gives the
    /// frames it holds back to `pool`. Returns how many it could not give back (they stay lost
    /// to the pool). The default flushes and reports what is still held, which is right for
    /// backends that hold no frames between calls (memory, tap, pcap).
    fn close(mut self: Box<Self>, pool: &mut FramePool) -> usize {
        self.flush(pool);
        self.frames_held()
    }

    /// Starts closing the port when part of the work may block in the kernel (releasing a
    /// socket waits for in-flight receive paths) and can run on another thread, so the
    /// polling thread does not stall: stops the port and returns that part, which does its
    /// work when dropped. Afterwards call only [`released`](Self::released), then, once it
    /// is true, [`close`](Self::close). `None` (the default): nothing to defer.
    fn begin_close(&mut self, pool: &mut FramePool) -> Option<DeferredRelease> {
        let _ = pool;
        None
    }

    /// After [`begin_close`](Self::begin_close): true once its release was dropped (done).
    fn released(&self) -> bool {
        true
    }
}

/// The slow part of closing a port, done when dropped, on whatever thread drops it
/// ([`PortIo::begin_close`]).
pub type DeferredRelease = Box<dyn Send>;
