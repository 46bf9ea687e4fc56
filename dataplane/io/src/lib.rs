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

pub use memory::{MemoryPeer, MemoryPort, ReplayError, ReplayPort};
pub use pcap::{PcapError, PcapReaderPort, PcapWriterPort};
pub use pool::{FramePool, FrameRegion, PoolError, DEFAULT_FRAME_SIZE, DEFAULT_HEADROOM};
pub use port::{Desc, PortIo, PortStats};
pub use tap::{TapError, TapPort};
