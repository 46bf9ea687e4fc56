//! The DPDK backend of xvs: poll-mode drivers (physical NICs, and the `net_af_xdp`,
//! `net_af_packet` and `net_ring` virtual devices) serving the same batch Rx/Tx interface
//! ([`xvs_io::PortIo`]) as AF_XDP, so every engine feature works on them.
//!
//! Everything but [`devargs`] and [`DpdkPortConfig`] needs the crate feature `dpdk` (off by default), which generates a
//! binding to the installed libdpdk (22.11 or later, found with pkg-config) at build time.
//!
//! Layers, bottom up:
//! - `ffi` (the only unsafe code): the bindgen binding, a C shim for DPDK's static-inline burst
//!   and mbuf functions, and safe wrappers.
//! - [`Eal`]: EAL starts once per process, with a private runtime directory, and is cleaned up
//!   once every device is closed.
//! - [`DpdkDevice`]: one ethdev (configure, RSS over its queues, start, stop, close, counters).
//! - [`DpdkQueue`]: one rx/tx queue pair polled by one worker, a [`xvs_io::PortIo`].
//!
//! **Frames are mbufs, without copies.** A worker's DPDK queues share one DPDK mempool laid over
//! the worker's whole [`xvs_io::FrameRegion`] (OVS shares one per NUMA node and MTU): frame *i*
//! of the region is mempool object *i*, with the mempool header and the `rte_mbuf` in the
//! frame's first 192 bytes and the mbuf's data room after them. A received mbuf becomes the
//! descriptor of its data (the header is simply abandoned); a descriptor to transmit becomes
//! the mbuf of its frame (the header is rewritten). So a packet moves between a DPDK queue and
//! any other port of the worker (AF_XDP, tap, another DPDK port) by descriptor, and a frame one
//! driver frees after transmit is the next one another receives into. The worker's
//! [`xvs_io::FramePool`] stays the one owner of free frames outside DPDK: frames move into the
//! mempool when it runs short and the surplus goes back, which in balanced traffic is never.
//! Frames are accounted per worker, not per queue (`mempool` module).
//!
//! Invariant: the first 192 bytes of every frame belong to this backend when the worker has a
//! DPDK port; other backends and the engine write packet data at or after the pool's headroom
//! (256 bytes; the kernel's AF_XDP headroom is 256 too).
#![deny(unsafe_code)]

mod config;
pub mod devargs;
#[cfg(feature = "dpdk")]
mod eal;
#[cfg(feature = "dpdk")]
mod error;
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
mod ffi;
#[cfg(feature = "dpdk")]
mod mempool;
#[cfg(feature = "dpdk")]
mod port;

/// True when the crate was built with the `dpdk` feature (the backend is usable).
pub const ENABLED: bool = cfg!(feature = "dpdk");

pub use config::DpdkPortConfig;

#[cfg(feature = "dpdk")]
pub use eal::{Eal, EalConfig};
#[cfg(feature = "dpdk")]
pub use error::DpdkError;
#[cfg(feature = "dpdk")]
pub use ffi::EthStats;
#[cfg(feature = "dpdk")]
pub use port::{DpdkDevice, DpdkQueue, MBUF_AREA};
