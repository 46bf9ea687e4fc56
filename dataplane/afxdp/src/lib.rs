//! AF_XDP backend for xvs: the XDP program and its loader, AF_XDP sockets on a worker's shared
//! UMEM, and their [`xvs_io::PortIo`] implementation.
//!
//! # Layers
//! - `bpf/xvs_redirect.c`: the XDP program, compiled by `build.rs` with clang and embedded. It
//!   redirects each frame to the AF_XDP socket of its RX queue (XSKMAP), or passes it to the
//!   kernel stack when no socket is bound there, and reads a one-entry config map whose mode
//!   selects "everything", "nothing" or "only tunnel and Pod traffic" ([`XdpFilter`]).
//! - [`XdpProgram`]: loads the object with aya and attaches it to one interface through a
//!   bpf_link (native mode, generic fallback, or forced). Dropping it detaches the program, and
//!   the link dies with the process, so nothing is left behind after a crash.
//! - `sys`: the only unsafe code: socket, setsockopt/getsockopt, bind, ring mmaps, kicks.
//! - `ring`: the producer/consumer protocol with the kernel as batch transactions.
//! - [`AfXdpPort`]: one socket per (interface, queue), on the UMEM of the worker's
//!   [`xvs_io::FramePool`]; the first port of a worker registers the UMEM, the others share it
//!   ([`UmemShare`]), so a frame received on one port is transmitted on another without a copy.
//!
//! # Why hand-rolled rings rather than xdpilone
//! The rings are ~150 lines over `libc`, and owning them lets descriptors move between the
//! kernel rings and the engine's `Desc` arrays unchanged (the layout is the kernel's
//! `xdp_desc`), keeps the UMEM memory owned by the worker's `FramePool` (xdpilone wants to own
//! its UMEM description), and keeps every syscall decision (need-wakeup, copy-mode TX kicking in
//! 32-frame steps, EBUSY bind retries) visible in one place. xdpilone was proven to work here and
//! remains a fallback.
//!
//! # Frame sizing rule
//! Each port can hold up to [`AfXdpConfig::frames_needed`] frames (fill + RX + TX + completion
//! rings). Size a worker's pool to the sum over its ports plus what its pipeline holds (a burst
//! per port). A smaller pool works but the kernel may find a fill ring empty under load and drop
//! (see [`XdpSocketStats::rx_fill_ring_empty_descs`]).
//!
//! # Namespaces and threads
//! Interface names resolve in the network namespace of the calling thread: attach programs and
//! open ports in a thread inside the interface's namespace. Everything is `Send`; build a
//! worker's ports on one thread and move them to its pinned thread, or build them there.
//!
//! # Limits
//! - Sockets sharing a UMEM inherit the first socket's copy/zero-copy mode; a worker mixing a
//!   zero-copy NIC and veth ports needs copy mode on all (or separate pools).
//! - veth: copy mode only; native XDP needs the peer's MTU at most 3506.
//! - One buffer per frame (no multi-buffer `XDP_USE_SG`): frames larger than a pool frame minus
//!   headroom are dropped by the kernel.
#![deny(unsafe_code)]

mod error;
mod port;
mod program;
mod ring;
#[allow(unsafe_code)]
mod sys;

pub use error::AfXdpError;
pub use port::{
    AfXdpConfig, AfXdpCounters, AfXdpPort, BindMode, UmemShare, XdpSocketStats, CLOSE_TX_TIMEOUT,
    KERNEL_HEADROOM,
};
pub use program::{XdpFilter, XdpMode, XdpProgram, MAX_QUEUES};
