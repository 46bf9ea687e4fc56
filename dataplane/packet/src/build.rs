//! Allocation-free packet builders for tests, traffic generators and generated replies.
//!
//! Each function writes a complete Ethernet frame at the start of `buf`, with valid IP and
//! transport checksums, and returns its length. A buffer too small for the frame gives
//! [`Error::Truncated`] and nothing useful is written.

use crate::error::{Error, Result};
use crate::wire::{
    arp, ethernet, ethertype, icmpv4, icmpv6, ip_proto, ipv4, ipv6, tcp, udp, MacAddr,
};

/// The Ethernet addresses of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    /// Source.
    pub src: MacAddr,
    /// Destination.
    pub dst: MacAddr,
}

/// TTL / hop limit of built packets.
pub const DEFAULT_TTL: u8 = 64;

fn room(buf: &mut [u8], len: usize) -> Result<&mut [u8]> {
    buf.get_mut(..len).ok_or(Error::Truncated)
}

fn eth(buf: &mut [u8], macs: Macs, ty: u16) -> Result<()> {
    ethernet::Repr {
        src: macs.src,
        dst: macs.dst,
        ethertype: ty,
    }
    .emit(buf)
}

fn ip4(buf: &mut [u8], src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize) -> Result<()> {
    ipv4::Repr {
        src,
        dst,
        protocol: proto,
        payload_len: u16::try_from(payload_len).map_err(|_| Error::Malformed)?,
        ttl: DEFAULT_TTL,
        tos: 0,
        ident: 0,
        flags_frag: ipv4::FLAG_DF,
    }
    .emit(buf)
}

fn ip6(buf: &mut [u8], src: [u8; 16], dst: [u8; 16], nh: u8, payload_len: usize) -> Result<()> {
    ipv6::Repr {
        src,
        dst,
        next_header: nh,
        payload_len: u16::try_from(payload_len).map_err(|_| Error::Malformed)?,
        hop_limit: DEFAULT_TTL,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(buf)
}

/// Ethernet + IPv4 + UDP with `payload`.
#[allow(clippy::too_many_arguments)]
pub fn udp4(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Result<usize> {
    let l4_len = udp::HEADER_LEN + payload.len();
    let total = 14 + 20 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV4)?;
    ip4(&mut f[14..], src_ip, dst_ip, ip_proto::UDP, l4_len)?;
    let seg = &mut f[34..];
    udp::Repr {
        src_port: sport,
        dst_port: dport,
    }
    .emit(seg, payload.len())?;
    seg[8..].copy_from_slice(payload);
    udp::Packet::new_unchecked(seg).fill_checksum_v4(src_ip, dst_ip);
    Ok(total)
}

/// Ethernet + IPv6 + UDP with `payload`.
#[allow(clippy::too_many_arguments)]
pub fn udp6(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 16],
    dst_ip: [u8; 16],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Result<usize> {
    let l4_len = udp::HEADER_LEN + payload.len();
    let total = 14 + 40 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV6)?;
    ip6(&mut f[14..], src_ip, dst_ip, ip_proto::UDP, l4_len)?;
    let seg = &mut f[54..];
    udp::Repr {
        src_port: sport,
        dst_port: dport,
    }
    .emit(seg, payload.len())?;
    seg[8..].copy_from_slice(payload);
    udp::Packet::new_unchecked(seg).fill_checksum_v6(&src_ip, &dst_ip);
    Ok(total)
}

/// TCP header values for [`tcp4`] and [`tcp6`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpParams {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags ([`tcp::flags`]).
    pub flags: u16,
    /// Window.
    pub window: u16,
}

fn tcp_seg(seg: &mut [u8], t: TcpParams, payload: &[u8]) -> Result<()> {
    tcp::Repr {
        src_port: t.sport,
        dst_port: t.dport,
        seq: t.seq,
        ack: t.ack,
        flags: t.flags,
        window: t.window,
    }
    .emit(seg)?;
    seg[20..].copy_from_slice(payload);
    Ok(())
}

/// Ethernet + IPv4 + TCP (no options) with `payload`.
pub fn tcp4(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    t: TcpParams,
    payload: &[u8],
) -> Result<usize> {
    let l4_len = tcp::HEADER_LEN + payload.len();
    let total = 14 + 20 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV4)?;
    ip4(&mut f[14..], src_ip, dst_ip, ip_proto::TCP, l4_len)?;
    let seg = &mut f[34..];
    tcp_seg(seg, t, payload)?;
    tcp::Packet::new_unchecked(seg).fill_checksum_v4(src_ip, dst_ip);
    Ok(total)
}

/// Ethernet + IPv6 + TCP (no options) with `payload`.
pub fn tcp6(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 16],
    dst_ip: [u8; 16],
    t: TcpParams,
    payload: &[u8],
) -> Result<usize> {
    let l4_len = tcp::HEADER_LEN + payload.len();
    let total = 14 + 40 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV6)?;
    ip6(&mut f[14..], src_ip, dst_ip, ip_proto::TCP, l4_len)?;
    let seg = &mut f[54..];
    tcp_seg(seg, t, payload)?;
    tcp::Packet::new_unchecked(seg).fill_checksum_v6(&src_ip, &dst_ip);
    Ok(total)
}

/// Ethernet + IPv4 + ICMP echo request (`request`) or reply with `payload`.
#[allow(clippy::too_many_arguments)]
pub fn icmp4_echo(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    request: bool,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Result<usize> {
    let l4_len = icmpv4::HEADER_LEN + payload.len();
    let total = 14 + 20 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV4)?;
    ip4(&mut f[14..], src_ip, dst_ip, ip_proto::ICMP, l4_len)?;
    let mut p = icmpv4::Packet::new_unchecked(&mut f[34..]);
    p.set_msg_type(if request {
        icmpv4::TYPE_ECHO_REQUEST
    } else {
        icmpv4::TYPE_ECHO_REPLY
    });
    p.set_code(0);
    p.set_echo_ident(ident);
    p.set_echo_seq(seq);
    p.payload_mut().copy_from_slice(payload);
    p.fill_checksum();
    Ok(total)
}

/// Ethernet + IPv6 + ICMPv6 echo request (`request`) or reply with `payload`.
#[allow(clippy::too_many_arguments)]
pub fn icmp6_echo(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 16],
    dst_ip: [u8; 16],
    request: bool,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Result<usize> {
    let l4_len = icmpv6::HEADER_LEN + payload.len();
    let total = 14 + 40 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV6)?;
    ip6(&mut f[14..], src_ip, dst_ip, ip_proto::ICMPV6, l4_len)?;
    let mut p = icmpv6::Packet::new_unchecked(&mut f[54..]);
    p.set_msg_type(if request {
        icmpv6::TYPE_ECHO_REQUEST
    } else {
        icmpv6::TYPE_ECHO_REPLY
    });
    p.set_code(0);
    p.set_data_word((u32::from(ident) << 16) | u32::from(seq));
    p.payload_mut().copy_from_slice(payload);
    p.fill_checksum(&src_ip, &dst_ip);
    Ok(total)
}

/// Ethernet + ARP packet (`oper` = [`arp::OP_REQUEST`] or [`arp::OP_REPLY`]). Returns 42.
pub fn arp(
    buf: &mut [u8],
    macs: Macs,
    oper: u16,
    sha: MacAddr,
    spa: [u8; 4],
    tha: MacAddr,
    tpa: [u8; 4],
) -> Result<usize> {
    let total = 14 + arp::HEADER_LEN;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::ARP)?;
    arp::Repr {
        oper,
        sha,
        spa,
        tha,
        tpa,
    }
    .emit(&mut f[14..])?;
    Ok(total)
}

/// A broadcast ARP request from `sha`/`spa` for `tpa`.
pub fn arp_request(buf: &mut [u8], sha: MacAddr, spa: [u8; 4], tpa: [u8; 4]) -> Result<usize> {
    let macs = Macs {
        src: sha,
        dst: [0xff; 6],
    };
    arp(buf, macs, arp::OP_REQUEST, sha, spa, [0; 6], tpa)
}

/// An ARP reply from `sha`/`spa` to `tha`/`tpa`.
pub fn arp_reply(
    buf: &mut [u8],
    sha: MacAddr,
    spa: [u8; 4],
    tha: MacAddr,
    tpa: [u8; 4],
) -> Result<usize> {
    let macs = Macs { src: sha, dst: tha };
    arp(buf, macs, arp::OP_REPLY, sha, spa, tha, tpa)
}

/// Inserts an 802.1Q tag with `tci` after the MAC addresses of the `len`-byte frame at the start
/// of `buf`, moving the rest up by 4 bytes. Returns the new length.
pub fn push_vlan(buf: &mut [u8], len: usize, tci: u16) -> Result<usize> {
    let new_len = len.checked_add(4).ok_or(Error::Truncated)?;
    if len < ethernet::HEADER_LEN || buf.len() < new_len {
        return Err(Error::Truncated);
    }
    buf.copy_within(12..len, 16);
    buf[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
    buf[14..16].copy_from_slice(&tci.to_be_bytes());
    Ok(new_len)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::extract::extract;
    use crate::key::{layout, FlowKey};

    const M: Macs = Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };

    #[test]
    fn udp4_is_valid() {
        let mut b = [0u8; 128];
        let n = udp4(
            &mut b,
            M,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            1000,
            2000,
            b"hello",
        )
        .unwrap();
        assert_eq!(n, 14 + 20 + 8 + 5);
        let ip = ipv4::Packet::new_checked(&b[14..n]).unwrap();
        assert!(ip.verify_checksum());
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v4(ip.src(), ip.dst()));
        assert_eq!(u.payload(), b"hello");
        assert_eq!(
            udp4(&mut b[..40], M, [0; 4], [0; 4], 1, 2, b""),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn tcp_icmp_arp_udp6() {
        let mut b = [0u8; 256];
        let t = TcpParams {
            sport: 1,
            dport: 2,
            seq: 3,
            ack: 4,
            flags: tcp::flags::SYN,
            window: 1000,
        };
        let n = tcp4(&mut b, M, [1, 1, 1, 1], [2, 2, 2, 2], t, b"x").unwrap();
        let ip = ipv4::Packet::new_checked(&b[14..n]).unwrap();
        assert!(tcp::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum_v4(ip.src(), ip.dst()));
        let n = tcp6(&mut b, M, [1; 16], [2; 16], t, b"xy").unwrap();
        let ip = ipv6::Packet::new_checked(&b[14..n]).unwrap();
        assert!(tcp::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum_v6(&ip.src(), &ip.dst()));
        let n = icmp4_echo(&mut b, M, [1, 1, 1, 1], [2, 2, 2, 2], true, 9, 1, b"abc").unwrap();
        let ip = ipv4::Packet::new_checked(&b[14..n]).unwrap();
        assert!(icmpv4::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum());
        let n = icmp6_echo(&mut b, M, [1; 16], [2; 16], false, 9, 1, b"abc").unwrap();
        let ip = ipv6::Packet::new_checked(&b[14..n]).unwrap();
        let ic = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        assert!(ic.verify_checksum(&ip.src(), &ip.dst()));
        assert_eq!(ic.msg_type(), icmpv6::TYPE_ECHO_REPLY);
        let n = udp6(&mut b, M, [1; 16], [2; 16], 5, 6, b"").unwrap();
        let ip = ipv6::Packet::new_checked(&b[14..n]).unwrap();
        assert!(udp::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum_v6(&ip.src(), &ip.dst()));
        let n = arp_request(&mut b, M.src, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        assert_eq!(n, 42);
        let a = arp::Packet::new_checked(&b[14..n]).unwrap();
        assert_eq!((a.oper(), a.tpa()), (arp::OP_REQUEST, [10, 0, 0, 2]));
        let n = arp_reply(&mut b, M.src, [10, 0, 0, 1], M.dst, [10, 0, 0, 2]).unwrap();
        let mut k = FlowKey::ZERO;
        extract(&b[..n], 1, &mut k);
        assert_eq!(k.get(layout::NW_PROTO), 2);
        assert_eq!(k.get(layout::ETH_DST), 0x0200_0000_0002);
    }

    #[test]
    fn vlan_push() {
        let mut b = [0u8; 128];
        let n = udp4(&mut b, M, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 2000, b"hi").unwrap();
        let n2 = push_vlan(&mut b, n, 0x2064).unwrap();
        assert_eq!(n2, n + 4);
        let mut k = FlowKey::ZERO;
        let info = extract(&b[..n2], 1, &mut k);
        assert!(info.is_ok());
        assert_eq!(k.get(layout::VLAN_TCI), 0x3064);
        assert_eq!(k.get(layout::TP_DST), 2000);
        assert_eq!(info.l3_offset, 18);
        assert_eq!(push_vlan(&mut b[..n2 + 3], n2, 1), Err(Error::Truncated));
    }
}
