//! Tunnel port configuration, as OVSDB `Interface.options` would give it.

use std::net::IpAddr;

use xvs_packet::wire::{geneve, vxlan};

/// The encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// Geneve (RFC 8926), default UDP port 6081.
    Geneve,
    /// VXLAN (RFC 7348), default UDP port 4789.
    Vxlan,
}

impl TunnelKind {
    /// The IANA UDP port of the encapsulation.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Geneve => geneve::UDP_PORT,
            Self::Vxlan => vxlan::UDP_PORT,
        }
    }
}

/// `remote_ip`: fixed, or `flow` (taken from `tun_dst` of each packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Remote {
    /// `remote_ip=<addr>`.
    Ip(IpAddr),
    /// `remote_ip=flow`.
    Flow,
}

/// `key`: fixed VNI, or `flow` (taken from `tun_id` of each packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `key=<n>`.
    Fixed(u32),
    /// `key=flow`.
    Flow,
}

/// OVS's default UDP source-port range for tunnels (`tnl_udp_port_min`/`max`): the source port
/// is `min + hash * (max - min) / 2^32`, so it lies in `[min, max)`.
pub const DEFAULT_SPORT_RANGE: (u16, u16) = (32768, 61000);

/// A tunnel port's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelConfig {
    /// Geneve or VXLAN.
    pub kind: TunnelKind,
    /// UDP destination port (`dst_port`), the kind's default unless configured.
    pub dst_port: u16,
    /// `local_ip`; when `None` the source comes from `tun_src` or the route's preferred source.
    pub local_ip: Option<IpAddr>,
    /// `remote_ip`.
    pub remote: Remote,
    /// `key`.
    pub key: Key,
    /// `csum`: fill the outer UDP checksum. Over IPv6 the checksum is always filled (RFC 8200;
    /// the zero-checksum mode of RFC 6935 is not used), as Linux does by default.
    pub csum: bool,
    /// `df_default`: set DF on outer IPv4 (OVS default true).
    pub df: bool,
    /// Outer TTL / hop limit (OVS default 64).
    pub ttl: u8,
    /// Outer TOS / traffic class (fixed; `tos=inherit` is not supported yet).
    pub tos: u8,
    /// UDP source-port range `[min, max)`.
    pub sport_range: (u16, u16),
}

impl TunnelConfig {
    /// Antrea's tunnel port: `remote_ip=flow`, `key=flow`, default port, csum off, DF on,
    /// TTL 64, TOS 0, OVS's source-port range.
    pub const fn flow_based(kind: TunnelKind) -> Self {
        Self {
            kind,
            dst_port: kind.default_port(),
            local_ip: None,
            remote: Remote::Flow,
            key: Key::Flow,
            csum: false,
            df: true,
            ttl: 64,
            tos: 0,
            sport_range: DEFAULT_SPORT_RANGE,
        }
    }
}
