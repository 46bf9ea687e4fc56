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
//!
//! # Example: Service DNAT and its reply
//!
//! ```
//! use std::net::IpAddr;
//! use xvs_conntrack::{tuple::proto, Conntrack, CtAction, CtConfig, CtInput, CtMeta, CtState,
//!                     CtStats, NatRange, Tuple};
//!
//! let ip = |s: &str| s.parse::<IpAddr>().ok().unwrap_or(IpAddr::from([0, 0, 0, 0]));
//! let ct = Conntrack::new(CtConfig::default());
//! let mut stats = CtStats::default();
//!
//! // ct(commit,zone=65520,nat(dst=10.10.1.7:5353)) on the first request.
//! let req = CtInput::new(Tuple::ports(ip("10.10.0.5"), ip("10.96.0.10"), proto::UDP, 40000, 53));
//! let act = CtAction::commit(65520).with_nat_range(NatRange::dst(ip("10.10.1.7"), Some(5353)));
//! let mut meta = CtMeta::default();
//! let rw = ct.process(0, &req, &act, &mut meta, &mut stats);
//! assert_eq!(meta.state, CtState::NEW | CtState::TRACKED | CtState::DST_NAT);
//! assert_eq!(rw.and_then(|r| r.dst), Some(ip("10.10.1.7")));
//!
//! // ct(zone=65520,nat) on the reply, one second later: established, un-DNATed.
//! let rep = CtInput::new(Tuple::ports(ip("10.10.1.7"), ip("10.10.0.5"), proto::UDP, 5353, 40000));
//! let mut meta = CtMeta::default();
//! let rw = ct.process(1_000_000_000, &rep, &CtAction::lookup(65520).with_nat(), &mut meta, &mut stats);
//! assert!(meta.state.contains(CtState::ESTABLISHED | CtState::REPLY_DIR | CtState::SRC_NAT));
//! assert_eq!(rw.and_then(|r| r.src), Some(ip("10.96.0.10")));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
pub mod ctl;
mod dump;
mod event;
pub mod nat;
mod state;
mod store;
mod table;
pub mod tcp;
mod timeout;
pub mod tuple;

pub use conn::ConnHandle;
pub use ctl::{
    format_ct_limits, format_ct_stats, parse_ct_limit_zones, parse_ct_set_limits,
    parse_flush_conntrack, CtMatch, FlushArgError, FlushArgs, LimitArgError, SetLimits,
};
pub use dump::CtEntry;
pub use event::{CtEvent, CtEventKind, DestroyReason};
pub use nat::{NatAction, NatKind, NatRange};
pub use state::CtState;
pub use table::{
    Conntrack, CtAction, CtConfig, CtCounters, CtInput, CtMeta, CtProbe, CtStats, Rewrite,
    SweepStats,
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
