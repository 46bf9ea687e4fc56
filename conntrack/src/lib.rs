//! `xvs-conntrack`: the connection tracker behind the `ct()` action, sans-IO.
//!
//! The caller (the engine) parses the packet, hands the tracker a [`CtInput`] (tuple, TCP
//! segment fields, embedded tuple of an ICMP error), the `ct()` arguments ([`CtAction`]) and the
//! packet's connection-tracking metadata ([`CtMeta`], OVS's `pkt->md.ct_*`), together with the
//! current time in nanoseconds. [`Conntrack::process`] updates the metadata (`ct_state`,
//! `ct_zone`, `ct_mark`, `ct_label`, original tuple) and returns the NAT [`Rewrite`] to apply to
//! the packet bytes. The tracker owns no thread, socket or clock: expiry is driven by the `now`
//! arguments and by [`Conntrack::sweep`], which the daemon calls periodically with a budget.
//!
//! Layers, bottom up:
//! - [`tuple`]: packet tuples and the keys indexed in the table (both directions, per zone).
//! - [`tcp`]: pf-style TCP state and sequence-window tracking as in OVS `conntrack-tcp.c`.
//! - `conn`: one connection: protocol state, expiry, mark/label (lock-free reads).
//! - [`nat`]: NAT ranges and the bounded search for a unique reply tuple.
//! - `table`: the concurrent table and the `ct()` semantics of OVS's userspace tracker
//!   (`lib/conntrack.c`): zones, commit, NAT, limits, sweep, flush, dump.
//!
//! Semantics follow OVS's userspace datapath, including its quirks (documented where they
//! apply): UDP, SCTP and other protocols use OVS's "other" tracker (first/multiple/bidirectional,
//! `+new` until a reply is seen); ICMP queries are tracked by identifier; ICMP errors are `+rel`
//! to the connection of their embedded packet; fragments must be reassembled by the caller.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod dump;
pub mod nat;
mod state;
mod table;
pub mod tcp;
mod timeout;
pub mod tuple;

pub use conn::ConnHandle;
pub use dump::CtEntry;
pub use nat::{NatAction, NatKind, NatRange};
pub use state::CtState;
pub use table::{
    Conntrack, CtAction, CtConfig, CtCounters, CtInput, CtMeta, CtStats, Rewrite, SweepStats,
};
pub use tcp::{TcpSegment, TcpState};
pub use timeout::{Timeouts, MAX_ZONE_POLICIES};
pub use tuple::Tuple;

/// Errors of the control-path API (the packet path reports through states and counters).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CtError {
    /// A NAT range mixes IPv4 and IPv6 addresses.
    #[error("NAT address range mixes IPv4 and IPv6")]
    NatRangeFamily,
    /// A NAT range's minimum is above its maximum, or a port range starts at 0.
    #[error("NAT range minimum above maximum (or port 0)")]
    NatRangeOrder,
    /// More zones than [`MAX_ZONE_POLICIES`] have their own timeout policy.
    #[error("too many zones with their own timeout policy (max {MAX_ZONE_POLICIES})")]
    TooManyTimeoutPolicies,
}
