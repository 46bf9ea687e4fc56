//! Decapsulation: validate an outer frame, fill the tunnel metadata of a [`FlowKey`], and say
//! where the inner Ethernet frame starts.
//!
//! Checks, in order (each failure is a [`DecapError`] drop reason): Ethernet; IPv4 (header
//! length, total length, checksum, not a fragment, protocol UDP) or IPv6 (payload length, next
//! header UDP: extension headers are not accepted); optionally the local address; UDP port and
//! length; the UDP checksum when non-zero (a zero checksum is accepted over IPv6 as Linux's
//! `udp6zerocsumrx` does; refuse it with [`DecapConfig::ipv6_zero_csum`]); then the VXLAN
//! flags word (exactly the I flag, reserved byte zero, as OVS and Linux check) or the Geneve
//! version, options and protocol (0x6558).

use std::net::IpAddr;

use xvs_packet::checksum::{pseudo_header_v4, pseudo_header_v6, Checksum};
use xvs_packet::key::{layout, FlowKey};
use xvs_packet::wire::{ethertype, geneve, ip_proto, ipv4};

use crate::config::{TunnelConfig, TunnelKind};
use crate::error::DecapError;
use crate::{TUN_FLAG_CRITICAL, TUN_FLAG_CSUM, TUN_FLAG_DONT_FRAGMENT, TUN_FLAG_KEY, TUN_FLAG_OAM};

/// What the decapsulator accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecapConfig {
    /// Geneve or VXLAN.
    pub kind: TunnelKind,
    /// The UDP destination port to accept.
    pub dst_port: u16,
    /// When set, the outer destination must be this address.
    pub local_ip: Option<IpAddr>,
    /// Verify a non-zero UDP checksum (OVS does, unless the NIC already did).
    pub verify_udp_csum: bool,
    /// Accept a zero UDP checksum over IPv6.
    pub ipv6_zero_csum: bool,
}

impl DecapConfig {
    /// The receive side of a tunnel port.
    pub const fn from_config(cfg: &TunnelConfig) -> Self {
        Self {
            kind: cfg.kind,
            dst_port: cfg.dst_port,
            local_ip: cfg.local_ip,
            verify_udp_csum: true,
            ipv6_zero_csum: true,
        }
    }
}

/// A decapsulated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapped<'a> {
    /// Offset of the inner Ethernet frame in the outer frame.
    pub inner_offset: usize,
    /// Length of the inner frame (the outer frame may carry Ethernet padding after it).
    pub inner_len: usize,
    /// VNI.
    pub vni: u32,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// The Geneve header with its options (empty for VXLAN).
    geneve_header: &'a [u8],
}

impl<'a> Decapped<'a> {
    /// The raw Geneve options, to pass through intact (empty for VXLAN).
    pub fn options_bytes(&self) -> &'a [u8] {
        self.geneve_header.get(geneve::HEADER_LEN..).unwrap_or(&[])
    }

    /// Iterates the Geneve options (none for VXLAN). They were validated, so the walk ends
    /// cleanly.
    pub fn options(&self) -> OptionIter<'a> {
        OptionIter {
            rest: self.options_bytes(),
        }
    }
}

/// Iterator over validated Geneve options, borrowing the received frame.
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = geneve::GeneveOption<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let total = 4 + usize::from(self.rest.get(3)? & 0x1f) * 4;
        let opt = self.rest.get(..total)?;
        self.rest = &self.rest[total..];
        Some(geneve::GeneveOption {
            class: be16(opt, 0),
            kind: opt[2],
            data: &opt[4..],
        })
    }
}

fn be16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Validates the outer `frame`, fills the tunnel fields of `key` (`tun_id`, `tun_src`/`dst` or
/// their IPv6 forms, `tun_tos`, `tun_ttl`, `tun_tp_src`/`dst`, `tun_flags`), and returns where
/// the inner frame is. Other key words are not touched; on error `key` is unchanged.
pub fn decap<'a>(
    cfg: &DecapConfig,
    frame: &'a [u8],
    key: &mut FlowKey,
) -> Result<Decapped<'a>, DecapError> {
    if frame.len() < 14 {
        return Err(DecapError::ShortFrame);
    }
    let ip = &frame[14..];
    let mut flags = TUN_FLAG_KEY;
    let (src, dst, tos, ttl, l4_off, l4_len, pseudo) = match be16(frame, 12) {
        ethertype::IPV4 => {
            let p = ipv4::Packet::new_checked(ip).map_err(|_| DecapError::BadIp)?;
            if p.version() != 4 {
                return Err(DecapError::BadIp);
            }
            if !p.verify_checksum() {
                return Err(DecapError::BadIpChecksum);
            }
            if p.is_fragment() {
                return Err(DecapError::Fragment);
            }
            if p.protocol() != ip_proto::UDP {
                return Err(DecapError::NotUdp);
            }
            if p.dont_frag() {
                flags |= TUN_FLAG_DONT_FRAGMENT;
            }
            let hl = p.header_len();
            let l4_len = usize::from(p.total_len()).saturating_sub(hl);
            let (s, d) = (p.src(), p.dst());
            let ps = pseudo_header_v4(s, d, ip_proto::UDP, 0);
            (
                IpAddr::from(s),
                IpAddr::from(d),
                p.tos(),
                p.ttl(),
                14 + hl,
                l4_len,
                ps,
            )
        }
        ethertype::IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return Err(DecapError::BadIp);
            }
            let plen = usize::from(be16(ip, 4));
            if 40 + plen > ip.len() {
                return Err(DecapError::BadIp);
            }
            if ip[6] != ip_proto::UDP {
                return Err(DecapError::NotUdp);
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            let tc = ((be16(ip, 0) >> 4) & 0xff) as u8;
            let ps = pseudo_header_v6(&s, &d, ip_proto::UDP, 0);
            (IpAddr::from(s), IpAddr::from(d), tc, ip[7], 54, plen, ps)
        }
        _ => return Err(DecapError::NotIp),
    };
    if let Some(local) = cfg.local_ip {
        if local != dst {
            return Err(DecapError::WrongDestination);
        }
    }
    let udp = frame
        .get(l4_off..l4_off + l4_len)
        .ok_or(DecapError::BadUdpLength)?;
    if udp.len() < 8 || usize::from(be16(udp, 4)) != udp.len() {
        return Err(DecapError::BadUdpLength);
    }
    let (sport, dport, csum) = (be16(udp, 0), be16(udp, 2), be16(udp, 6));
    if dport != cfg.dst_port {
        return Err(DecapError::WrongPort);
    }
    if csum != 0 {
        flags |= TUN_FLAG_CSUM;
        if cfg.verify_udp_csum {
            let mut c: Checksum = pseudo;
            c.add_u16(udp.len() as u16).add_bytes(udp);
            if c.fold() != 0xffff {
                return Err(DecapError::BadUdpChecksum);
            }
        }
    } else if dst.is_ipv6() && !cfg.ipv6_zero_csum {
        return Err(DecapError::BadUdpChecksum);
    }
    let t = &udp[8..];
    let (vni, hdr_len, geneve_header) = match cfg.kind {
        TunnelKind::Vxlan => {
            if t.len() < 8 {
                return Err(DecapError::ShortInner);
            }
            if t[0..4] != [0x08, 0, 0, 0] || t[7] != 0 {
                return Err(DecapError::BadVxlan);
            }
            let vni = u32::from_be_bytes([0, t[4], t[5], t[6]]);
            (vni, 8, &t[..0])
        }
        TunnelKind::Geneve => {
            if t.len() < geneve::HEADER_LEN {
                return Err(DecapError::ShortInner);
            }
            let g = match geneve::Packet::new_checked(t) {
                Ok(g) => g,
                Err(_) if t[0] >> 6 != 0 => return Err(DecapError::BadGeneveVersion),
                Err(_) => return Err(DecapError::BadGeneveOptions),
            };
            if g.protocol() != ethertype::TEB {
                return Err(DecapError::NotEthernet);
            }
            if g.oam() {
                flags |= TUN_FLAG_OAM;
            }
            if g.critical() {
                flags |= TUN_FLAG_CRITICAL;
            }
            let hl = g.header_len();
            (g.vni(), hl, &t[..hl])
        }
    };
    let inner_len = t.len() - hdr_len;
    if inner_len < 14 {
        return Err(DecapError::ShortInner);
    }
    let inner_offset = l4_off + 8 + hdr_len;
    key.set(layout::TUN_ID, u64::from(vni));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            key.set(layout::TUN_SRC, u64::from(u32::from(s)));
            key.set(layout::TUN_DST, u64::from(u32::from(d)));
            key.set128(layout::TUN_IPV6_SRC, 0);
            key.set128(layout::TUN_IPV6_DST, 0);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => u128::from(a),
                IpAddr::V4(_) => 0,
            };
            key.set(layout::TUN_SRC, 0);
            key.set(layout::TUN_DST, 0);
            key.set128(layout::TUN_IPV6_SRC, v6(s));
            key.set128(layout::TUN_IPV6_DST, v6(d));
        }
    }
    key.set(layout::TUN_TOS, u64::from(tos));
    key.set(layout::TUN_TTL, u64::from(ttl));
    key.set(layout::TUN_TP_SRC, u64::from(sport));
    key.set(layout::TUN_TP_DST, u64::from(dport));
    key.set(layout::TUN_FLAGS, u64::from(flags));
    Ok(Decapped {
        inner_offset,
        inner_len,
        vni,
        src,
        dst,
        geneve_header,
    })
}
