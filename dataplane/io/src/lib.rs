//! Batch packet I/O for xvs.
//!
//! Every worker owns one [`FramePool`]: a page-aligned memory region cut into equal frames, plus
//! the free list of frames that userspace currently owns. Every port the worker polls reads into
//! and writes from that pool, so forwarding between two ports of one worker never copies in our
//! code: an AF_XDP port hands the pool's region to the kernel as its UMEM, and a received frame's
//! descriptor goes straight onto the other port's TX ring.
//!
//! Ownership of a frame moves with its [`Desc`]: out of the free list on receive, through the
//! engine, into a port on transmit (which returns it to the free list when the kernel is done),
//! or back to the free list on drop. A frame is never in two places.
//!
//! Backends, each a [`PortIo`]:
//! - [`MemoryPort`] (module [`memory`]): two SPSC byte rings shared with a [`MemoryPeer`] that a
//!   test drives from any thread; [`ReplayPort`] replays a fixed frame set or a pcap loaded at
//!   start, in a loop, for benchmarks (one frame allocation and one copy per packet, as
//!   `net_pcap`) and sinks whatever it transmits; [`NullPort`] only sinks (as `net_null`).
//! - [`PcapReaderPort`] and [`PcapWriterPort`] (module [`pcap`]): replay a classic pcap file as
//!   received traffic, or record transmitted frames into one.
//! - [`TapPort`] (module [`tap`]): a Linux tap interface, the host-facing side of a bridge.
//! - AF_XDP and DPDK ports live in their own crates.
//!
//! Conventions shared by these backends:
//! - `rx_burst` never blocks and never allocates; when the pool runs dry it stops and leaves the
//!   rest where it was (ring, file, kernel queue). Frames that cannot be received whole (longer
//!   than a pool frame) are skipped and counted in `rx_dropped`.
//! - `tx_burst` returns the accepted prefix. A port refuses the rest only when its wire pushes
//!   back (ring full, `EAGAIN`); the caller frees and counts those. A frame that can never be
//!   sent (bad descriptor, rejected by the kernel, write error) is taken, freed and counted in the
//!   port's `tx_dropped`.
//! - No backend keeps frames between calls, so `frames_held` is always zero.
//!
//! Invariant: after any sequence of calls, every frame is either in the pool's free list or in a
//! descriptor the caller holds; the tests check `free_count()` returns to the total.
#![deny(unsafe_code)]

pub mod memory;
pub mod pcap;
mod pool;
mod port;
#[allow(unsafe_code)]
mod sys;
pub mod tap;
#[cfg(test)]
mod testutil;

pub use memory::{MemoryPeer, MemoryPort, NullPort, ReplayError, ReplayGate, ReplayPort};
pub use pcap::{PcapError, PcapReaderPort, PcapWriterPort};
pub use pool::{FramePool, FrameRegion, PoolError, DEFAULT_FRAME_SIZE, DEFAULT_HEADROOM};
pub use port::{DeferredRelease, Desc, PortIo, PortStats};
pub use tap::{TapError, TapPort};
