//! Path-MTU support: detect that an encapsulated packet would not fit the uplink, and build the
//! ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big" reply to the inner source with
//! the MTU the inner packet may use.

use xvs_packet::checksum::{checksum, pseudo_header_v6};
use xvs_packet::wire::{ethertype, ip_proto, ipv4};

use crate::error::TableError;

/// Largest IPv4 ICMP error (RFC 1812: at most 576 bytes of IP).
pub const ICMP4_MAX: usize = 576;
/// Largest ICMPv6 error (RFC 4443: not over the IPv6 minimum MTU, 1280).
pub const ICMP6_MAX: usize = 1280;

/// The largest inner IP packet that fits an uplink of `uplink_mtu` once encapsulated with
/// `ip_overhead` bytes (see `Template::ip_overhead`) plus the 14-byte inner Ethernet header.
pub fn inner_mtu(uplink_mtu: usize, ip_overhead: usize) -> usize {
    uplink_mtu.saturating_sub(ip_overhead + 14)
}

/// True when the `inner_frame_len`-byte inner Ethernet frame, encapsulated, would exceed the
/// uplink MTU.
pub fn exceeds_mtu(inner_frame_len: usize, ip_overhead: usize, uplink_mtu: usize) -> bool {
    inner_frame_len + ip_overhead > uplink_mtu
}

/// True when the inner frame is IPv4 with DF set, or IPv6: the packets that must be answered
/// with an ICMP error rather than fragmented.
pub fn must_not_fragment(inner: &[u8]) -> bool {
    match inner.get(12..14) {
        Some([0x08, 0x00]) => inner.get(20).is_some_and(|b| b & 0x40 != 0),
        Some([0x86, 0xdd]) => true,
        _ => false,
    }
}

fn is_icmp_error4(ip: &[u8]) -> bool {
    let hl = usize::from(ip[0] & 0x0f) * 4;
    ip[9] == ip_proto::ICMP && ip.get(hl).is_some_and(|t| ![0u8, 8, 13, 14].contains(t))
}

/// Writes an ICMP destination-unreachable / fragmentation-needed (type 3 code 4) reply to the
/// inner IPv4 frame `inner`, from `src_ip` (the gateway's address), with next-hop MTU `mtu`,
/// swapping the inner MACs. Returns its length. Refuses (as RFC 1812 requires) to answer an
/// ICMP error, a non-first fragment, or a non-IPv4 frame.
pub fn icmp4_frag_needed(
    buf: &mut [u8],
    inner: &[u8],
    src_ip: [u8; 4],
    mtu: u16,
) -> Result<usize, TableError> {
    if inner.len() < 34 || inner[12..14] != ethertype::IPV4.to_be_bytes() {
        return Err(TableError::NotAnswerable);
    }
    let ip = &inner[14..];
    let p = ipv4::Packet::new_checked(ip).map_err(|_| TableError::NotAnswerable)?;
    if p.frag_offset() != 0 || is_icmp_error4(ip) {
        return Err(TableError::NotAnswerable);
    }
    let orig_len = usize::from(p.total_len()).min(ip.len());
    let quoted = orig_len.min(ICMP4_MAX - 28);
    let total = 14 + 28 + quoted;
    let f = buf.get_mut(..total).ok_or(TableError::Truncated)?;
    f[0..6].copy_from_slice(&inner[6..12]);
    f[6..12].copy_from_slice(&inner[0..6]);
    f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
    ipv4::Repr {
        src: src_ip,
        dst: p.src(),
        protocol: ip_proto::ICMP,
        payload_len: (8 + quoted) as u16,
        ttl: 64,
        tos: 0xc0,
        ident: 0,
        flags_frag: 0,
    }
    .emit(&mut f[14..34])
    .map_err(|_| TableError::Truncated)?;
    let ic = &mut f[34..];
    ic[0] = 3;
    ic[1] = 4;
    ic[2..6].fill(0);
    ic[6..8].copy_from_slice(&mtu.to_be_bytes());
    ic[8..].copy_from_slice(&ip[..quoted]);
    let c = checksum(ic);
    ic[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

/// Writes an ICMPv6 packet-too-big (type 2) reply to the inner IPv6 frame `inner`, from
/// `src_ip`, with `mtu`, swapping the inner MACs; quotes as much of the packet as fits in 1280
/// bytes. Refuses to answer an ICMPv6 error or a non-IPv6 frame.
pub fn icmp6_packet_too_big(
    buf: &mut [u8],
    inner: &[u8],
    src_ip: [u8; 16],
    mtu: u32,
) -> Result<usize, TableError> {
    if inner.len() < 54 || inner[12..14] != ethertype::IPV6.to_be_bytes() {
        return Err(TableError::NotAnswerable);
    }
    let ip = &inner[14..];
    if ip[0] >> 4 != 6 || (ip[6] == ip_proto::ICMPV6 && ip.get(40).is_some_and(|t| *t < 128)) {
        return Err(TableError::NotAnswerable);
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&ip[8..24]);
    let orig_len = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
    let quoted = orig_len.min(ICMP6_MAX - 48);
    let l4_len = 8 + quoted;
    let total = 14 + 40 + l4_len;
    let f = buf.get_mut(..total).ok_or(TableError::Truncated)?;
    f[0..6].copy_from_slice(&inner[6..12]);
    f[6..12].copy_from_slice(&inner[0..6]);
    f[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
    let h = &mut f[14..54];
    h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    h[6] = ip_proto::ICMPV6;
    h[7] = 64;
    h[8..24].copy_from_slice(&src_ip);
    h[24..40].copy_from_slice(&dst);
    let ic = &mut f[54..];
    ic[0] = 2;
    ic[1] = 0;
    ic[2..4].fill(0);
    ic[4..8].copy_from_slice(&mtu.to_be_bytes());
    ic[8..].copy_from_slice(&ip[..quoted]);
    let mut c = pseudo_header_v6(&src_ip, &dst, ip_proto::ICMPV6, l4_len as u32);
    c.add_bytes(ic);
    ic[2..4].copy_from_slice(&c.finish().to_be_bytes());
    Ok(total)
}
