//! Geneve and VXLAN tunnels for xvs, sans-IO: no sockets, no clocks, no threads.
//!
//! Stages, one module each:
//! - [`config`]: a tunnel port's options (`remote_ip=flow`, `key=flow`, `dst_port`, `csum`,
//!   `df_default`, `ttl`, `tos`, source-port range).
//! - [`encap`]: [`encap::endpoints`] resolves source/destination/VNI from the configuration and
//!   the packet's tunnel metadata; [`encap::Template`] is the outer header (Ethernet, IPv4/IPv6,
//!   UDP, VXLAN/Geneve with options) built once per megaflow and applied per packet into the
//!   frame's headroom, with the per-packet fields filled incrementally.
//! - [`decap`]: validates an outer frame, fills the tunnel fields of the flow key, exposes the
//!   Geneve options, and locates the inner frame; failures are [`DecapError`] drop reasons.
//! - [`route`]: longest-prefix-match route table (IPv4, IPv6) giving next hop, interface and
//!   preferred source. [`neigh`]: next hop -> MAC, with packets queued on a miss rather than
//!   dropped (the fix for Antrea issue 467), bounded retries and expiry on a `now` argument.
//!   Both are filled by whoever reads the kernel (netlink) or configuration.
//! - [`mtu`]: the uplink-MTU check and the ICMP fragmentation-needed / ICMPv6 packet-too-big
//!   replies that make path-MTU discovery work through the tunnel.
//!
//! Translation-time flow: `route.lookup(tun_dst)` -> `neigh.resolve(next_hop, oif, pkt, now)`
//! -> `Template::new(..)` (cached with the megaflow, keyed by the route generation) ->
//! per packet `Template::apply`.
//!
//! Invariant: nothing here panics on any input bytes, and `Template::apply` / `decap` allocate
//! nothing.
#![forbid(unsafe_code)]

pub mod config;
pub mod decap;
pub mod encap;
pub mod error;
pub mod mtu;
pub mod neigh;
pub mod route;

pub use config::{Key, Remote, TunnelConfig, TunnelKind};
pub use decap::{decap, DecapConfig, Decapped};
pub use encap::{endpoints, inner_flow_hash, EncapMeta, Endpoints, OuterL2, Template};
pub use error::{DecapError, EncapError, TableError};
pub use neigh::{NeighConfig, NeighEvent, NeighTable, Resolution};
pub use route::{NextHop, Route, RouteTable};

/// `tun_flags` bit: Geneve OAM (OVS `FLOW_TNL_F_OAM`, the only public flag).
pub const TUN_FLAG_OAM: u16 = 1 << 0;
/// `tun_flags` bit: outer DF was set (OVS `FLOW_TNL_F_DONT_FRAGMENT`).
pub const TUN_FLAG_DONT_FRAGMENT: u16 = 1 << 1;
/// `tun_flags` bit: outer UDP checksum present (OVS `FLOW_TNL_F_CSUM`).
pub const TUN_FLAG_CSUM: u16 = 1 << 2;
/// `tun_flags` bit: a key (VNI) is present (OVS `FLOW_TNL_F_KEY`).
pub const TUN_FLAG_KEY: u16 = 1 << 3;
/// `tun_flags` bit (xvs): the Geneve C bit (critical options present).
pub const TUN_FLAG_CRITICAL: u16 = 1 << 4;
