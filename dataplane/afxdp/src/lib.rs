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
//!   the link dies with the process, so nothing is left behind after a crash (kernels before
//!   5.9 have no XDP links; aya then attaches over netlink, which outlives a crash).
//! - `sys`: the only unsafe code: socket, setsockopt/getsockopt, bind, ring mmaps, kicks.
//! - `ring`: the producer/consumer protocol with the kernel as batch transactions.
//! - [`AfXdpPort`]: one socket per (interface, queue), on the UMEM of the worker's
//!   [`xvs_io::FramePool`]; the first port of a worker registers the UMEM, the others share it
//!   ([`UmemShare`]), so a frame received on one port is transmitted on another without a copy.
//!
//! # Use
//! ```no_run
//! use xvs_afxdp::{AfXdpConfig, AfXdpPort, UmemShare, XdpMode, XdpProgram};
//! use xvs_io::{Desc, FramePool, PortIo};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Control thread, inside the interfaces' network namespace: one program per interface.
//! let mut prog_a = XdpProgram::attach("eth1", XdpMode::Auto)?;
//! let mut prog_b = XdpProgram::attach("eth2", XdpMode::Auto)?;
//! // Per worker: one pool, one UmemShare, one port per (interface, queue) it polls.
//! let (cfg_a, cfg_b) = (AfXdpConfig::new("eth1", 0), AfXdpConfig::new("eth2", 0));
//! let frames = cfg_a.frames_needed() + cfg_b.frames_needed() + 512;
//! let mut pool = FramePool::new(frames as u32, 4096, 256)?;
//! let mut umem = UmemShare::new();
//! let mut a = AfXdpPort::open(&mut prog_a, &cfg_a, &mut pool, &mut umem)?;
//! let mut b = AfXdpPort::open(&mut prog_b, &cfg_b, &mut pool, &mut umem)?;
//! // Worker loop (the ports and the pool may move to the worker thread; the programs stay).
//! let mut burst = [Desc::default(); 32];
//! let n = a.rx_burst(&mut pool, &mut burst);
//! let sent = b.tx_burst(&mut pool, &burst[..n]);
//! pool.free_all(&burst[sent..n]); // refused: count as drops
//! a.flush(&mut pool);
//! b.flush(&mut pool);
//! // A port removed at run time gives its frames back.
//! let lost = a.close(&mut pool);
//! assert_eq!(lost, 0);
//! # Ok(())
//! # }
//! ```
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
//! worker's ports on one thread and move them to its pinned thread, or build them there (both
//! work: a bound socket is tied to its device, not to a thread or namespace). Ports do not
//! borrow their [`XdpProgram`]; keep the program alive as long as its ports (dropping it
//! detaches XDP and the sockets simply stop receiving). Keep one [`UmemShare`] per
//! [`xvs_io::FramePool`], with the same lifetime.
//!
//! # Limits
//! - Sockets sharing a UMEM inherit the first socket's copy/zero-copy mode; a worker mixing a
//!   zero-copy NIC and veth ports needs copy mode on all (or separate pools).
//! - veth: copy mode only; native XDP needs the peer's MTU at most 3506.
//! - One buffer per frame (no multi-buffer `XDP_USE_SG`): frames larger than a pool frame minus
//!   headroom are dropped by the kernel.
//! - The zero-copy paths (fill-ring need-wakeup kicks, single TX kick) follow the kernel
//!   protocol but are untested here: veth, the only device in our tests, has no zero-copy.
//! - `XdpFilter::Select` reads one VLAN tag at most, sends IPv6 with extension headers to the
//!   stack, and has no IPv6 Pod CIDR yet.
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
