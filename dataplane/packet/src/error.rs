//! The error type of every view constructor and emitter.

/// Why a buffer could not be viewed as, or written as, a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field inside it says).
    #[error("buffer too short for the header")]
    Truncated,
    /// A field holds a value the format forbids (version, header length, total length, TLV length).
    #[error("malformed header field")]
    Malformed,
    /// The header is well-formed but describes a variant this crate does not decode
    /// (e.g. ARP for a non-Ethernet or non-IPv4 address family).
    #[error("unsupported header variant")]
    Unsupported,
}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, Error>;
