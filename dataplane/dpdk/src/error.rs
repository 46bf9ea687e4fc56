//! Errors of the DPDK backend.

/// What went wrong opening or running a DPDK port.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` failed: no hugepages (use `no_huge`), no permission (needs root or the
    /// right capabilities), a bad argument, or a devargs string no driver accepts.
    #[error("DPDK EAL initialisation failed ({args}): {reason}")]
    Eal {
        /// The EAL arguments used.
        args: String,
        /// DPDK's explanation.
        reason: String,
    },
    /// EAL failed earlier in this process, or was cleaned up; it cannot start again.
    #[error("DPDK EAL is not available: {0}")]
    EalUnavailable(String),
    /// A configuration value is out of range.
    #[error("{0}")]
    Config(String),
    /// No ethdev has the port's name after EAL probed its devargs.
    #[error(
        "no DPDK port named {name:?} (devargs {devargs:?}): the driver did not create it; \
             see EAL's messages above"
    )]
    NoSuchPort {
        /// The name looked up.
        name: String,
        /// The devargs given.
        devargs: String,
    },
    /// A DPDK call on a port failed.
    #[error("DPDK port {name}: {what} failed: {reason}")]
    Port {
        /// The port.
        name: String,
        /// The call.
        what: &'static str,
        /// DPDK's explanation.
        reason: String,
    },
    /// The worker's frame pool cannot be laid out as mbufs.
    #[error("DPDK port {name}: cannot lay mbufs over the worker's frames: {reason}")]
    Mempool {
        /// The port.
        name: String,
        /// DPDK's explanation.
        reason: String,
    },
}
