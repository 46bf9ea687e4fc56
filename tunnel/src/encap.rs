//! Encapsulation: an outer-header template built once per megaflow, applied per packet.
//!
//! [`Template::new`] writes Ethernet + IPv4/IPv6 + UDP + VXLAN/Geneve (with options) into a
//! fixed array and precomputes the parts of the IPv4 header checksum and the UDP checksum that
//! do not change per packet. [`Template::apply`] copies it into the headroom before a frame and
//! fills the per-packet fields: IP total/payload length, IPv4 id and header checksum (from the
//! partial sum), UDP length, UDP source port (from the inner-flow hash, see [`source_port`])
//! and, when enabled, the full UDP checksum. Nothing is allocated per packet.

use std::net::IpAddr;

use xvs_packet::checksum::{pseudo_header_v4, pseudo_header_v6, Checksum};
use xvs_packet::key::{layout, FlowKey};
use xvs_packet::wire::{ethertype, geneve, ip_proto, ipv4, MacAddr};

use crate::config::{Key, Remote, TunnelConfig, TunnelKind};
use crate::error::EncapError;

/// Largest outer header: Ethernet + IPv6 + UDP + Geneve with 252 bytes of options.
pub const MAX_HEADER_LEN: usize = 14 + 40 + 8 + 8 + geneve::MAX_OPTIONS_LEN;

/// The resolved outer Ethernet addresses (from the route's interface and the neighbour table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OuterL2 {
    /// Source MAC (the uplink's).
    pub src: MacAddr,
    /// Next-hop MAC.
    pub dst: MacAddr,
}

/// Per-packet tunnel metadata set by the pipeline (`set_field:...->tun_dst`, `tun_id`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncapMeta<'a> {
    /// `tun_id` (used when `key=flow`).
    pub tun_id: u64,
    /// `tun_dst` / `tun_ipv6_dst` (used when `remote_ip=flow`).
    pub tun_dst: Option<IpAddr>,
    /// `tun_src` / `tun_ipv6_src`, when set.
    pub tun_src: Option<IpAddr>,
    /// Encoded Geneve TLV options (empty for none).
    pub geneve_options: &'a [u8],
    /// Geneve OAM bit.
    pub oam: bool,
}

impl<'a> EncapMeta<'a> {
    /// Reads `tun_id`, `tun_dst`/`tun_ipv6_dst` and `tun_src`/`tun_ipv6_src` from a flow key
    /// (zero means unset, IPv4 preferred), with the given Geneve options.
    pub fn from_key(key: &FlowKey, geneve_options: &'a [u8]) -> Self {
        let v4 = |f| {
            let a = key.get(f) as u32;
            (a != 0).then(|| IpAddr::from(a.to_be_bytes()))
        };
        let v6 = |f| {
            let a = key.get128(f);
            (a != 0).then(|| IpAddr::from(a.to_be_bytes()))
        };
        Self {
            tun_id: key.get(layout::TUN_ID),
            tun_dst: v4(layout::TUN_DST).or_else(|| v6(layout::TUN_IPV6_DST)),
            tun_src: v4(layout::TUN_SRC).or_else(|| v6(layout::TUN_IPV6_SRC)),
            geneve_options,
            oam: key.get(layout::TUN_FLAGS) & u64::from(crate::TUN_FLAG_OAM) != 0,
        }
    }
}

/// The outer endpoints and VNI of a packet, from the configuration and the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Outer source.
    pub src: IpAddr,
    /// Outer destination.
    pub dst: IpAddr,
    /// VNI.
    pub vni: u32,
}

/// Resolves the destination and VNI from `cfg` and `meta`, and the source from `meta.tun_src`,
/// then `cfg.local_ip`, then `route_src` (the route's preferred source).
pub fn endpoints(
    cfg: &TunnelConfig,
    meta: &EncapMeta<'_>,
    route_src: Option<IpAddr>,
) -> Result<Endpoints, EncapError> {
    let dst = match cfg.remote {
        Remote::Ip(a) => a,
        Remote::Flow => meta.tun_dst.ok_or(EncapError::NoDestination)?,
    };
    let src = meta
        .tun_src
        .or(cfg.local_ip)
        .or(route_src)
        .ok_or(EncapError::NoSource)?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(EncapError::MixedFamilies);
    }
    let vni = match cfg.key {
        Key::Fixed(k) => k,
        Key::Flow => u32::try_from(meta.tun_id).map_err(|_| EncapError::KeyTooLarge)?,
    };
    if vni > 0x00ff_ffff {
        return Err(EncapError::KeyTooLarge);
    }
    Ok(Endpoints { src, dst, vni })
}

/// A prebuilt outer header. See the module documentation.
#[derive(Clone, Debug)]
pub struct Template {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
    l4: usize,
    ipv6: bool,
    /// Folded sum of the IPv4 header with total length, id and checksum zero.
    ip_partial: Checksum,
    /// Pseudo-header without length, plus the UDP destination port and the tunnel header.
    udp_partial: Checksum,
    udp_csum: bool,
    sport_min: u16,
    sport_span: u32,
}

impl Template {
    /// Builds the template for `ep` with `cfg`'s encapsulation settings, the Geneve options
    /// and OAM bit of `meta` and the outer MACs `l2`.
    pub fn new(
        cfg: &TunnelConfig,
        ep: &Endpoints,
        meta: &EncapMeta<'_>,
        l2: OuterL2,
    ) -> Result<Self, EncapError> {
        let (lo, hi) = cfg.sport_range;
        if hi <= lo {
            return Err(EncapError::BadPortRange);
        }
        let opts = meta.geneve_options;
        let tun_len = match cfg.kind {
            TunnelKind::Vxlan if !opts.is_empty() => return Err(EncapError::BadOptions),
            TunnelKind::Vxlan => 8,
            TunnelKind::Geneve => {
                if opts.len() % 4 != 0 || opts.len() > geneve::MAX_OPTIONS_LEN {
                    return Err(EncapError::BadOptions);
                }
                8 + opts.len()
            }
        };
        let ipv6 = ep.dst.is_ipv6();
        let ip_len = if ipv6 { 40 } else { 20 };
        let l4 = 14 + ip_len;
        let len = l4 + 8 + tun_len;
        let mut b = [0u8; MAX_HEADER_LEN];
        b[0..6].copy_from_slice(&l2.dst);
        b[6..12].copy_from_slice(&l2.src);
        let et = if ipv6 {
            ethertype::IPV6
        } else {
            ethertype::IPV4
        };
        b[12..14].copy_from_slice(&et.to_be_bytes());
        let mut ip_partial = Checksum::new();
        let pseudo = match (ep.src, ep.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let h = &mut b[14..34];
                h[0] = 0x45;
                h[1] = cfg.tos;
                let ff = if cfg.df { ipv4::FLAG_DF } else { 0 };
                h[6..8].copy_from_slice(&ff.to_be_bytes());
                h[8] = cfg.ttl;
                h[9] = ip_proto::UDP;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                ip_partial.add_bytes(h);
                pseudo_header_v4(s.octets(), d.octets(), ip_proto::UDP, 0)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let h = &mut b[14..54];
                let w = 0x6000_0000u32 | (u32::from(cfg.tos) << 20);
                h[0..4].copy_from_slice(&w.to_be_bytes());
                h[6] = ip_proto::UDP;
                h[7] = cfg.ttl;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                pseudo_header_v6(&s.octets(), &d.octets(), ip_proto::UDP, 0)
            }
            _ => return Err(EncapError::MixedFamilies),
        };
        b[l4 + 2..l4 + 4].copy_from_slice(&cfg.dst_port.to_be_bytes());
        let t = &mut b[l4 + 8..len];
        match cfg.kind {
            TunnelKind::Vxlan => {
                t[0] = 0x08;
                t[4..8].copy_from_slice(&(ep.vni << 8).to_be_bytes());
            }
            TunnelKind::Geneve => {
                let critical = options_critical(opts)?;
                let mut it = geneve::Packet::new_unchecked(&mut t[..]);
                it.set_options_len(opts.len());
                it.set_flags(meta.oam, critical);
                it.set_protocol(ethertype::TEB);
                it.set_vni(ep.vni);
                t[8..].copy_from_slice(opts);
            }
        }
        let mut udp_partial = pseudo;
        udp_partial.add_u16(cfg.dst_port).add_bytes(&b[l4 + 8..len]);
        Ok(Self {
            bytes: b,
            len,
            l4,
            ipv6,
            ip_partial,
            udp_partial,
            udp_csum: cfg.csum || ipv6,
            sport_min: lo,
            sport_span: u32::from(hi - lo),
        })
    }

    /// Length of the outer headers this template prepends.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.len
    }

    /// The template bytes (per-packet fields zero).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// True for an IPv6 outer header.
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Bytes the outer IP packet adds over the inner Ethernet frame (IP + UDP + tunnel header),
    /// the figure the uplink MTU must absorb.
    #[inline]
    pub fn ip_overhead(&self) -> usize {
        self.len - 14
    }

    /// Encapsulates the `len`-byte frame at `buf[start..]`: writes the outer headers into the
    /// headroom `buf[start - header_len()..start]` and returns the new `(start, len)`.
    /// `hash` is the inner-flow hash (see [`inner_flow_hash`]); `ip_id` the IPv4 identification
    /// (ignored for IPv6; with DF set any value, e.g. a per-worker counter, is fine).
    #[inline]
    pub fn apply(
        &self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        hash: u32,
        ip_id: u16,
    ) -> Result<(usize, usize), EncapError> {
        let end = start.checked_add(len).ok_or(EncapError::BadRange)?;
        if end > buf.len() || len < 14 {
            return Err(EncapError::BadRange);
        }
        let new_start = start.checked_sub(self.len).ok_or(EncapError::NoHeadroom)?;
        let new_len = len + self.len;
        let ip_total = new_len - 14;
        let udp_len = new_len - self.l4;
        let (Ok(ip_total16), Ok(udp_len16)) = (u16::try_from(ip_total), u16::try_from(udp_len))
        else {
            return Err(EncapError::TooLarge);
        };
        let (head, rest) = buf.split_at_mut(start);
        let inner = &rest[..len];
        let h = &mut head[new_start..];
        h.copy_from_slice(&self.bytes[..self.len]);
        if self.ipv6 {
            h[18..20].copy_from_slice(&udp_len16.to_be_bytes());
        } else {
            h[16..18].copy_from_slice(&ip_total16.to_be_bytes());
            h[18..20].copy_from_slice(&ip_id.to_be_bytes());
            let mut c = self.ip_partial;
            c.add_u16(ip_total16).add_u16(ip_id);
            h[24..26].copy_from_slice(&c.finish().to_be_bytes());
        }
        let sport = source_port(hash, self.sport_min, self.sport_span);
        let l4 = self.l4;
        h[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        h[l4 + 4..l4 + 6].copy_from_slice(&udp_len16.to_be_bytes());
        if self.udp_csum {
            let mut c = self.udp_partial;
            c.add_u16(udp_len16)
                .add_u16(udp_len16)
                .add_u16(sport)
                .add_bytes(inner);
            h[l4 + 6..l4 + 8].copy_from_slice(&c.finish_udp().to_be_bytes());
        }
        Ok((new_start, new_len))
    }
}

/// Checks that encoded Geneve TLVs tile `opts` exactly; true when any option is critical.
pub fn options_critical(opts: &[u8]) -> Result<bool, EncapError> {
    let mut off = 0;
    let mut crit = false;
    while off < opts.len() {
        let (Some(kind), Some(l)) = (opts.get(off + 2), opts.get(off + 3)) else {
            return Err(EncapError::BadOptions);
        };
        crit |= kind & 0x80 != 0;
        off += 4 + usize::from(l & 0x1f) * 4;
    }
    if off != opts.len() {
        return Err(EncapError::BadOptions);
    }
    Ok(crit)
}

/// Maps a 32-bit hash into `[min, min + span)` as OVS's `netdev_tnl_get_src_port` and Linux's
/// `udp_flow_src_port` do: `min + (hash * span) >> 32`.
#[inline]
pub fn source_port(hash: u32, min: u16, span: u32) -> u16 {
    let off = (u64::from(hash) * u64::from(span)) >> 32;
    min.wrapping_add(off as u16)
}

#[inline]
fn mix(mut h: u32, v: u32) -> u32 {
    h ^= v
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

#[inline]
fn fin(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn be32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// A hash of the inner frame's flow: IP addresses, protocol and TCP/UDP/SCTP ports for IPv4
/// (non-fragments) and IPv6 (no extension headers), else the MAC addresses and ethertype.
/// Packets of one flow get one hash, so one outer source port (ECMP and RSS keep them together).
/// The engine may pass its RSS hash to [`Template::apply`] instead.
pub fn inner_flow_hash(frame: &[u8]) -> u32 {
    let mut et = u16::from_be_bytes([
        frame.get(12).copied().unwrap_or(0),
        frame.get(13).copied().unwrap_or(0),
    ]);
    let mut l3 = 14;
    if et == ethertype::VLAN {
        et = u16::from_be_bytes([
            frame.get(16).copied().unwrap_or(0),
            frame.get(17).copied().unwrap_or(0),
        ]);
        l3 = 18;
    }
    let mut h = 0x9747_b28c;
    let ports = |h: u32, proto: u8, l4: usize| {
        if matches!(proto, ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP) {
            mix(h, be32(frame, l4))
        } else {
            h
        }
    };
    match et {
        ethertype::IPV4 if frame.len() >= l3 + 20 => {
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            let proto = frame[l3 + 9];
            h = mix(h, be32(frame, l3 + 12));
            h = mix(h, be32(frame, l3 + 16));
            h = mix(h, u32::from(proto));
            let frag = u16::from_be_bytes([frame[l3 + 6], frame[l3 + 7]]) & 0x3fff;
            if frag == 0 {
                h = ports(h, proto, l3 + ihl);
            }
        }
        ethertype::IPV6 if frame.len() >= l3 + 40 => {
            for off in (8..40).step_by(4) {
                h = mix(h, be32(frame, l3 + off));
            }
            let nh = frame[l3 + 6];
            h = mix(h, u32::from(nh));
            h = ports(h, nh, l3 + 40);
        }
        _ => {
            for off in [0, 4, 8] {
                h = mix(h, be32(frame, off));
            }
        }
    }
    fin(h)
}
