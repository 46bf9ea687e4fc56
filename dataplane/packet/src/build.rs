//! Allocation-free packet builders for tests, traffic generators and generated replies.
//!
//! Each function writes a complete Ethernet frame at the start of `buf`, with valid IP and
//! transport checksums, and returns its length. A buffer too small for the frame gives
//! [`Error::Truncated`] and nothing useful is written.

use crate::error::{Error, Result};
use crate::wire::{
    arp, ethernet, ethertype, geneve, icmpv4, icmpv6, ip_proto, ipv4, ipv6, tcp, udp, vxlan,
    MacAddr,
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

/// A neighbour solicitation for `target` from `src_ip`/`macs.src`, with a source link-layer
/// address option (omitted, as RFC 4861 requires, when `src_ip` is unspecified). Sent to the
/// solicited-node multicast address of `target` and its MAC.
pub fn nd_ns(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: [u8; 16],
    target: [u8; 16],
) -> Result<usize> {
    let with_sll = src_ip != [0; 16];
    let l4_len = icmpv6::ND_LEN + if with_sll { 8 } else { 0 };
    let total = 14 + 40 + l4_len;
    let mut dst_ip = [0u8; 16];
    dst_ip[..2].copy_from_slice(&[0xff, 0x02]);
    dst_ip[11..13].copy_from_slice(&[0x01, 0xff]);
    dst_ip[13..].copy_from_slice(&target[13..]);
    let dst_mac = [0x33, 0x33, 0xff, target[13], target[14], target[15]];
    let f = room(buf, total)?;
    eth(
        f,
        Macs {
            src: src_mac,
            dst: dst_mac,
        },
        ethertype::IPV6,
    )?;
    ipv6::Repr {
        src: src_ip,
        dst: dst_ip,
        next_header: ip_proto::ICMPV6,
        payload_len: l4_len as u16,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut f[14..])?;
    let mut p = icmpv6::Packet::new_unchecked(&mut f[54..]);
    p.set_msg_type(icmpv6::TYPE_NEIGHBOR_SOLICIT);
    p.set_code(0);
    p.set_data_word(0);
    p.set_nd_target(target);
    if with_sll {
        let o = &mut p.as_bytes_mut()[icmpv6::ND_LEN..];
        o[0] = icmpv6::OPT_SOURCE_LL;
        o[1] = 1;
        o[2..8].copy_from_slice(&src_mac);
    }
    p.fill_checksum(&src_ip, &dst_ip);
    Ok(total)
}

/// A solicited neighbour advertisement (S and O set) for `target` owned by `macs.src`, from
/// `src_ip` to `dst_ip`, with a target link-layer address option.
pub fn nd_na(
    buf: &mut [u8],
    macs: Macs,
    src_ip: [u8; 16],
    dst_ip: [u8; 16],
    target: [u8; 16],
) -> Result<usize> {
    let l4_len = icmpv6::ND_LEN + 8;
    let total = 14 + 40 + l4_len;
    let f = room(buf, total)?;
    eth(f, macs, ethertype::IPV6)?;
    ipv6::Repr {
        src: src_ip,
        dst: dst_ip,
        next_header: ip_proto::ICMPV6,
        payload_len: l4_len as u16,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut f[14..])?;
    let mut p = icmpv6::Packet::new_unchecked(&mut f[54..]);
    p.set_msg_type(icmpv6::TYPE_NEIGHBOR_ADVERT);
    p.set_code(0);
    p.set_data_word(icmpv6::NA_FLAG_SOLICITED | icmpv6::NA_FLAG_OVERRIDE);
    p.set_nd_target(target);
    let o = &mut p.as_bytes_mut()[icmpv6::ND_LEN..];
    o[0] = icmpv6::OPT_TARGET_LL;
    o[1] = 1;
    o[2..8].copy_from_slice(&macs.src);
    p.fill_checksum(&src_ip, &dst_ip);
    Ok(total)
}

/// The outer headers of an IPv4 UDP tunnel packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer4 {
    /// Outer Ethernet addresses.
    pub macs: Macs,
    /// Outer source address.
    pub src_ip: [u8; 4],
    /// Outer destination address.
    pub dst_ip: [u8; 4],
    /// UDP source port (the flow-entropy port).
    pub sport: u16,
}

/// Wraps the `inner_len`-byte inner frame that starts at `buf[hdr_len..]` in outer Ethernet,
/// IPv4 and UDP headers to `dport`; `write_tunnel` fills the tunnel header at
/// `buf[42..hdr_len]`. The UDP checksum is filled, as a test generator should.
fn udp_tunnel4(
    buf: &mut [u8],
    outer: Outer4,
    dport: u16,
    hdr_len: usize,
    inner_len: usize,
    write_tunnel: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<usize> {
    let l4_len = udp::HEADER_LEN + hdr_len - 42 + inner_len;
    let total = hdr_len + inner_len;
    let f = room(buf, total)?;
    eth(f, outer.macs, ethertype::IPV4)?;
    ip4(
        &mut f[14..],
        outer.src_ip,
        outer.dst_ip,
        ip_proto::UDP,
        l4_len,
    )?;
    write_tunnel(&mut f[42..hdr_len])?;
    let seg = &mut f[34..];
    udp::Repr {
        src_port: outer.sport,
        dst_port: dport,
    }
    .emit(seg, l4_len - udp::HEADER_LEN)?;
    udp::Packet::new_unchecked(seg).fill_checksum_v4(outer.src_ip, outer.dst_ip);
    Ok(total)
}

/// Encapsulates `inner` (an Ethernet frame) in Ethernet + IPv4 + UDP + VXLAN with `vni`.
pub fn vxlan4(buf: &mut [u8], outer: Outer4, vni: u32, inner: &[u8]) -> Result<usize> {
    let hdr = 42 + vxlan::HEADER_LEN;
    buf.get_mut(hdr..hdr + inner.len())
        .ok_or(Error::Truncated)?
        .copy_from_slice(inner);
    udp_tunnel4(buf, outer, vxlan::UDP_PORT, hdr, inner.len(), |t| {
        vxlan::Repr { vni }.emit(t)
    })
}

/// Encapsulates `inner` (an Ethernet frame) in Ethernet + IPv4 + UDP + Geneve with `vni` and
/// the already-encoded TLV `options` (a multiple of 4 bytes, at most 252).
pub fn geneve4(
    buf: &mut [u8],
    outer: Outer4,
    vni: u32,
    options: &[u8],
    inner: &[u8],
) -> Result<usize> {
    let hdr = 42 + geneve::HEADER_LEN + options.len();
    buf.get_mut(hdr..hdr + inner.len())
        .ok_or(Error::Truncated)?
        .copy_from_slice(inner);
    udp_tunnel4(buf, outer, geneve::UDP_PORT, hdr, inner.len(), |t| {
        geneve::Repr {
            vni,
            protocol: ethertype::TEB,
            oam: false,
            critical: false,
            options_len: options.len(),
        }
        .emit(t)?;
        t.get_mut(geneve::HEADER_LEN..)
            .ok_or(Error::Truncated)?
            .copy_from_slice(options);
        Ok(())
    })
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

    #[test]
    fn nd_builders() {
        let mut b = [0u8; 128];
        let target = [
            0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc,
        ];
        let n = nd_ns(&mut b, M.src, [0xfe; 16], target).unwrap();
        let mut k = FlowKey::ZERO;
        assert!(extract(&b[..n], 1, &mut k).is_ok());
        assert_eq!(k.get(layout::TP_SRC), 135);
        assert_eq!(k.get128(layout::ND_TARGET), u128::from_be_bytes(target));
        assert_eq!(k.get(layout::ARP_SHA), 0x0200_0000_0001);
        assert_eq!(k.get(layout::ETH_DST), 0x3333_ffaa_bbcc);
        let ip = ipv6::Packet::new_checked(&b[14..n]).unwrap();
        assert_eq!(ip.dst()[11..], [1, 0xff, 0xaa, 0xbb, 0xcc]);
        assert!(icmpv6::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(&ip.src(), &ip.dst()));
        let n = nd_ns(&mut b, M.src, [0; 16], target).unwrap();
        assert_eq!(n, 14 + 40 + 24);
        let n = nd_na(&mut b, M, [1; 16], [2; 16], target).unwrap();
        let mut k = FlowKey::ZERO;
        assert!(extract(&b[..n], 1, &mut k).is_ok());
        assert_eq!(k.get(layout::TP_SRC), 136);
        assert_eq!(k.get(layout::ARP_THA), 0x0200_0000_0001);
        let ip = ipv6::Packet::new_checked(&b[14..n]).unwrap();
        assert!(icmpv6::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(&ip.src(), &ip.dst()));
    }

    #[test]
    fn tunnel_builders() {
        let mut inner = [0u8; 64];
        let ni = udp4(&mut inner, M, [172, 16, 0, 1], [172, 16, 0, 2], 7, 8, b"in").unwrap();
        let outer = Outer4 {
            macs: M,
            src_ip: [192, 168, 0, 1],
            dst_ip: [192, 168, 0, 2],
            sport: 50000,
        };
        let mut b = [0u8; 256];
        let n = vxlan4(&mut b, outer, 0x12_3456, &inner[..ni]).unwrap();
        assert_eq!(n, 50 + ni);
        let ip = ipv4::Packet::new_checked(&b[14..n]).unwrap();
        assert!(ip.verify_checksum());
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v4(ip.src(), ip.dst()));
        assert_eq!((u.src_port(), u.dst_port()), (50000, vxlan::UDP_PORT));
        let v = vxlan::Packet::new_checked(u.payload()).unwrap();
        assert_eq!((v.vni(), v.payload()), (0x12_3456, &inner[..ni]));

        let opts = [0x01, 0x04, 0x80, 0x01, 0, 0, 0, 7];
        let n = geneve4(&mut b, outer, 0xab_cdef, &opts, &inner[..ni]).unwrap();
        assert_eq!(n, 50 + 8 + ni);
        let ip = ipv4::Packet::new_checked(&b[14..n]).unwrap();
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v4(ip.src(), ip.dst()));
        let g = geneve::Packet::new_checked(u.payload()).unwrap();
        assert_eq!(
            (g.vni(), g.protocol(), g.options_len()),
            (0xab_cdef, 0x6558, 8)
        );
        assert_eq!(g.options().next().map(|o| o.class), Some(0x0104));
        assert_eq!(g.payload(), &inner[..ni]);
        assert_eq!(
            vxlan4(&mut b[..60], outer, 1, &inner[..ni]),
            Err(Error::Truncated)
        );
        assert_eq!(
            geneve4(&mut b, outer, 1, &[1, 2, 3], &inner[..ni]),
            Err(Error::Malformed)
        );
    }
}
