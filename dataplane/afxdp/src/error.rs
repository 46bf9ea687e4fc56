//! Errors of the control path (attach, open, statistics). The hot path never returns errors: it
//! counts drops and failed kicks in the port's counters.

use std::io;

use crate::program::XdpMode;

/// Everything that can go wrong setting up AF_XDP.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// The interface does not exist in the calling thread's network namespace.
    #[error(
        "interface {ifname:?} does not exist (interface names resolve in the calling thread's \
         network namespace)"
    )]
    NoSuchInterface {
        /// The name asked for.
        ifname: String,
    },
    /// Another XDP program is already attached to the interface (in any mode).
    #[error(
        "an XDP program is already attached to {ifname}; remove it with \
         `ip link set dev {ifname} xdp off` (and `xdpgeneric off`), or stop whoever owns it"
    )]
    AlreadyAttached {
        /// The interface.
        ifname: String,
    },
    /// The embedded BPF object could not be loaded (parsing, map creation or verification).
    #[error("loading the xvs XDP program: {0}")]
    Load(String),
    /// The kernel refused to attach the program in the requested mode.
    #[error("attaching XDP to {ifname} in {mode} mode: {source}{hint}")]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode that failed (the last one tried).
        mode: XdpMode,
        /// A likely cause, when the error code suggests one (else empty).
        hint: &'static str,
        /// The loader's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Reading or writing one of the program's maps failed.
    #[error("updating BPF map {map} of {ifname}: {source}")]
    Map {
        /// The interface of the program.
        ifname: String,
        /// Which map.
        map: &'static str,
        /// The loader's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// The configuration is invalid (ring sizes, queue index, names).
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    /// A system call on the socket failed.
    #[error("AF_XDP {op} on {ifname} queue {queue}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Zero-copy was demanded but the driver cannot do it (veth never can).
    #[error("zero-copy AF_XDP is not supported on {ifname} queue {queue}; use copy or auto mode")]
    ZeroCopyUnsupported {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
    },
    /// The port must be opened with the program attached to its own interface.
    #[error("port {port} cannot use the XDP program of {program}")]
    ProgramMismatch {
        /// The port's interface.
        port: String,
        /// The program's interface (or a note on an ifindex change).
        program: String,
    },
    /// The shared UMEM state belongs to another frame pool.
    #[error("this UmemShare was registered with another frame pool")]
    UmemMismatch,
    /// Ports sharing a UMEM inherit its copy/zero-copy mode; the requested mode differs.
    #[error(
        "{ifname} asks for {asked} but the worker's shared UMEM is bound in {actual} mode \
         (sockets sharing a UMEM inherit its mode)"
    )]
    BindModeMismatch {
        /// The interface.
        ifname: String,
        /// The requested mode.
        asked: &'static str,
        /// The UMEM's mode.
        actual: &'static str,
    },
    /// The pool had no free frame to post on the new socket's fill ring.
    #[error("the frame pool has no free frame for the fill ring of {ifname}")]
    PoolEmpty {
        /// The interface.
        ifname: String,
    },
}

impl AfXdpError {
    /// True when binding failed because the queue's previous socket is still being torn
    /// down (`EBUSY`): trying again a few milliseconds later succeeds.
    pub fn is_queue_busy(&self) -> bool {
        matches!(self, AfXdpError::Socket { op: "bind", source, .. }
            if source.raw_os_error() == Some(libc::EBUSY))
    }
}
