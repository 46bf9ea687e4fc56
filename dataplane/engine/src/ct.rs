//! The `ct` datapath action on frame bytes: what the tracker is told about a packet
//! ([`input`]), how its NAT verdict is written back ([`apply_nat`]), and how its verdict
//! reaches the flow key of the next pass ([`write_key`]).
//!
//! Everything is read at the offsets extraction found (kept current across VLAN push/pop),
//! range-checked: a header too short for what the tracker needs makes the packet `malformed`,
//! which the tracker turns into `+trk+inv`, never a panic. L4 checksums are not verified
//! (veth and NIC offloads hand over partial checksums); OVS skips them too when the device
//! vouches for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rewrite::{self, Headers};
use xvs_conntrack::nat::NatRange;
use xvs_conntrack::tcp::parse_wscale;
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{CtAction, CtInput, CtMeta, NatAction, NatKind, Rewrite, TcpSegment, Tuple};
use xvs_flowtable::action::{Nat, NatAddrs};
use xvs_flowtable::datapath::{DpAction, DpCt};
use xvs_packet::checksum::update_bytes;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// The tracker's form of a datapath `ct` action (built once per megaflow, at install).
pub fn ct_action(c: &DpCt) -> CtAction {
    let mut a = if c.commit {
        CtAction::commit(c.zone)
    } else {
        CtAction::lookup(c.zone)
    };
    a.force = c.force;
    a.mark = c.mark;
    a.label = c.label;
    a.nat = c.nat.as_ref().map(nat_action);
    a
}

/// `nat` without a kind applies the existing translation; with a kind and a range, the range
/// (a range the tracker refuses degrades to the existing translation: the parser already
/// checks ranges, so this only guards against hand-built actions).
fn nat_action(n: &Nat) -> NatAction {
    let Some(kind) = n.kind else {
        return NatAction::Existing;
    };
    let kind = match kind {
        xvs_flowtable::action::NatKind::Src => NatKind::Src,
        xvs_flowtable::action::NatKind::Dst => NatKind::Dst,
    };
    let addr = n.addrs.map(|a| match a {
        NatAddrs::V4 { min, max } => {
            let max = if max == 0 { min } else { max };
            (
                IpAddr::V4(Ipv4Addr::from(min)),
                IpAddr::V4(Ipv4Addr::from(max)),
            )
        }
        NatAddrs::V6 { min, max } => {
            let max = if max == 0 { min } else { max };
            (
                IpAddr::V6(Ipv6Addr::from(min)),
                IpAddr::V6(Ipv6Addr::from(max)),
            )
        }
    });
    let ports = match n.ports {
        (0, _) => None,
        (lo, 0) => Some((lo, lo)),
        (lo, hi) => Some((lo, hi)),
    };
    match NatRange::new(kind, addr, ports) {
        Ok(mut r) => {
            if n.random {
                r = r.with_random();
            }
            if n.persistent {
                r = r.with_persistent();
            }
            NatAction::Translate(r)
        }
        Err(_) => NatAction::Existing,
    }
}

fn get<const N: usize>(f: &[u8], at: usize) -> Option<[u8; N]> {
    f.get(at..at.checked_add(N)?)
        .and_then(|s| s.try_into().ok())
}

fn get16(f: &[u8], at: usize) -> Option<u16> {
    get::<2>(f, at).map(u16::from_be_bytes)
}

fn get32(f: &[u8], at: usize) -> Option<u32> {
    get::<4>(f, at).map(u32::from_be_bytes)
}

fn malformed() -> CtInput {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    CtInput {
        malformed: true,
        ..CtInput::new(Tuple::other(any, any, 0))
    }
}

/// Addresses of the IP header at `l3`.
fn addrs(f: &[u8], l3: usize, v6: bool) -> Option<(IpAddr, IpAddr)> {
    if v6 {
        Some((
            IpAddr::V6(Ipv6Addr::from(get::<16>(f, l3 + 8)?)),
            IpAddr::V6(Ipv6Addr::from(get::<16>(f, l3 + 24)?)),
        ))
    } else {
        Some((
            IpAddr::V4(Ipv4Addr::from(get::<4>(f, l3 + 12)?)),
            IpAddr::V4(Ipv4Addr::from(get::<4>(f, l3 + 16)?)),
        ))
    }
}

fn is_icmp(p: u8, v6: bool) -> bool {
    (p == proto::ICMP && !v6) || (p == proto::ICMPV6 && v6)
}

fn has_ports(p: u8) -> bool {
    matches!(
        p,
        proto::TCP | proto::UDP | proto::SCTP | proto::DCCP | proto::UDPLITE
    )
}

fn icmp_is_error(t: u8, v6: bool) -> bool {
    if v6 {
        matches!(t, 1..=4)
    } else {
        matches!(t, 3 | 4 | 5 | 11 | 12)
    }
}

/// The tuple of a transport header at `l4` (ports, ICMP type/code/id), reading only what is
/// there: an embedded header is cut after 8 bytes, which still holds ports and ICMP ids.
fn l4_tuple(f: &[u8], src: IpAddr, dst: IpAddr, p: u8, l4: usize, v6: bool) -> Option<Tuple> {
    if has_ports(p) {
        return Some(Tuple::ports(src, dst, p, get16(f, l4)?, get16(f, l4 + 2)?));
    }
    if is_icmp(p, v6) {
        let [t, code] = get::<2>(f, l4)?;
        let id = get16(f, l4 + 4).unwrap_or(0);
        return Some(Tuple::icmp(src, dst, p, t, code, id));
    }
    Some(Tuple::other(src, dst, p))
}

/// The embedded packet of an ICMP error, starting at `at` and ending before `end`.
fn inner_tuple(f: &[u8], at: usize, end: usize, v6: bool) -> Option<Tuple> {
    let f = f.get(..end)?;
    let (src, dst) = addrs(f, at, v6)?;
    let (p, l4) = if v6 {
        // The upper-layer header right after the fixed header (no extension headers).
        (get::<1>(f, at + 6)?[0], at + 40)
    } else {
        let vihl = get::<1>(f, at)?[0];
        let ihl = usize::from(vihl & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        (get::<1>(f, at + 9)?[0], at + ihl)
    };
    get::<8>(f, l4)?;
    l4_tuple(f, src, dst, p, l4, v6)
}

/// What the tracker needs to know about the packet in `f` (`nw_frag` from its flow key).
pub fn input(f: &[u8], h: &Headers, nw_frag: u64) -> CtInput {
    let v6 = match h.eth_type {
        ETH_P_IPV4 => false,
        ETH_P_IPV6 => true,
        _ => return malformed(),
    };
    let Some(l3) = h.info.l3() else {
        return malformed();
    };
    let Some((src, dst)) = addrs(f, l3, v6) else {
        return malformed();
    };
    let p = h.nw_proto;
    if nw_frag & 1 != 0 {
        return CtInput {
            fragment: true,
            ..CtInput::new(Tuple::other(src, dst, p))
        };
    }
    let end = match h.info.l3_end as usize {
        0 => f.len(),
        e => e.min(f.len()),
    };
    let f = &f[..end];
    let Some(l4) = h.info.l4() else {
        return malformed();
    };
    match p {
        proto::TCP => {
            let Some([off]) = get::<1>(f, l4 + 12).filter(|_| l4 + 20 <= end) else {
                return malformed();
            };
            let doff = usize::from(off >> 4) * 4;
            if doff < 20 || l4 + doff > end {
                return malformed();
            }
            let (Some(sport), Some(dport), Some(seq), Some(ack), Some(fl), Some(window)) = (
                get16(f, l4),
                get16(f, l4 + 2),
                get32(f, l4 + 4),
                get32(f, l4 + 8),
                get16(f, l4 + 12),
                get16(f, l4 + 14),
            ) else {
                return malformed();
            };
            let seg = TcpSegment {
                flags: fl & 0x01ff,
                seq,
                ack,
                window,
                wscale: f.get(l4 + 20..l4 + doff).and_then(parse_wscale),
                payload_len: (end - l4 - doff) as u32,
            };
            CtInput::tcp(Tuple::ports(src, dst, p, sport, dport), seg)
        }
        proto::UDP | proto::UDPLITE | proto::DCCP | proto::SCTP => {
            let need = if p == proto::SCTP { 12 } else { 8 };
            if l4 + need > end {
                return malformed();
            }
            match l4_tuple(f, src, dst, p, l4, v6) {
                Some(t) => CtInput::new(t),
                None => malformed(),
            }
        }
        _ if is_icmp(p, v6) => {
            if l4 + 8 > end {
                return malformed();
            }
            let Some(t) = l4_tuple(f, src, dst, p, l4, v6) else {
                return malformed();
            };
            if icmp_is_error(t.icmp_type, v6) {
                match inner_tuple(f, l4 + 8, end, v6) {
                    Some(inner) => CtInput::icmp_error(t, inner),
                    None => malformed(),
                }
            } else {
                CtInput::new(t)
            }
        }
        _ => CtInput::new(Tuple::other(src, dst, p)),
    }
}

fn set_addr(f: &mut [u8], h: &Headers, a: IpAddr, src: bool) -> bool {
    let action = match (a, src) {
        (IpAddr::V4(x), true) => DpAction::SetIpv4Src(x.into()),
        (IpAddr::V4(x), false) => DpAction::SetIpv4Dst(x.into()),
        (IpAddr::V6(x), true) => DpAction::SetIpv6Src(x.into()),
        (IpAddr::V6(x), false) => DpAction::SetIpv6Dst(x.into()),
    };
    rewrite::apply(f, h, &action)
}

/// Writes the tracker's NAT verdict into the packet, checksums updated incrementally.
/// False when the packet cannot take it (truncated, SCTP ports).
pub fn apply_nat(f: &mut [u8], h: &Headers, rw: &Rewrite) -> bool {
    let mut ok = true;
    if let Some(a) = rw.src {
        ok &= set_addr(f, h, a, true);
    }
    if let Some(a) = rw.dst {
        ok &= set_addr(f, h, a, false);
    }
    if let Some(p) = rw.src_port {
        ok &= rewrite::apply(f, h, &DpAction::SetTpSrc(p));
    }
    if let Some(p) = rw.dst_port {
        ok &= rewrite::apply(f, h, &DpAction::SetTpDst(p));
    }
    if let Some(id) = rw.icmp_id {
        ok &= rewrite::set_icmp_id(f, h, id);
    }
    if let Some(inner) = rw.inner {
        ok &= rewrite_inner(f, h, &inner);
    }
    ok
}

/// Rewrites the embedded packet of an ICMP error to `t` (addresses, then ports or ICMP id),
/// fixing the embedded IPv4 header checksum and the ICMP checksum over the changed bytes.
fn rewrite_inner(f: &mut [u8], h: &Headers, t: &Tuple) -> bool {
    const SPAN: usize = 68; // the largest IPv4 header plus 8 transport bytes
    let Some(l4) = h.info.l4() else { return false };
    let at = l4 + 8;
    let end = match h.info.l3_end as usize {
        0 => f.len(),
        e => e.min(f.len()),
    };
    let span_end = (at + SPAN).min(end);
    if span_end <= at {
        return false;
    }
    let mut old = [0u8; SPAN];
    let n = span_end - at;
    old[..n].copy_from_slice(&f[at..span_end]);
    let v6 = h.eth_type == ETH_P_IPV6;
    let body = &mut f[at..span_end];
    let (l4_in, p) = if v6 {
        let Some([p]) = get::<1>(body, 6) else {
            return false;
        };
        (40, p)
    } else {
        let Some([vihl]) = get::<1>(body, 0) else {
            return false;
        };
        let Some([p]) = get::<1>(body, 9) else {
            return false;
        };
        (usize::from(vihl & 0x0f) * 4, p)
    };
    let put = |b: &mut [u8], at: usize, bytes: &[u8]| match b.get_mut(at..at + bytes.len()) {
        Some(d) => {
            d.copy_from_slice(bytes);
            true
        }
        None => false,
    };
    let mut ok = match (t.src, t.dst, v6) {
        (IpAddr::V4(s), IpAddr::V4(d), false) => {
            put(body, 12, &s.octets()) && put(body, 16, &d.octets())
        }
        (IpAddr::V6(s), IpAddr::V6(d), true) => {
            put(body, 8, &s.octets()) && put(body, 24, &d.octets())
        }
        _ => false,
    };
    if has_ports(p) {
        ok &= put(body, l4_in, &t.src_port.to_be_bytes());
        ok &= put(body, l4_in + 2, &t.dst_port.to_be_bytes());
    } else if is_icmp(p, v6) {
        ok &= put(body, l4_in + 4, &t.icmp_id.to_be_bytes());
    }
    if !v6 && l4_in >= 20 && l4_in <= body.len() {
        // Embedded IPv4 header checksum, recomputed (the header is at most 60 bytes).
        body[10] = 0;
        body[11] = 0;
        let c = xvs_packet::checksum::checksum(&body[..l4_in]);
        body[10..12].copy_from_slice(&c.to_be_bytes());
    }
    // The ICMP checksum covers the embedded bytes: fold in the difference (an even-length
    // span starting at an even offset of the message).
    let even = n & !1;
    if let Some(c) = get16(f, l4 + 2) {
        let c = update_bytes(c, &old[..even], &f[at..at + even]);
        let c = if n > even {
            update_bytes(c, &[old[even], 0], &[f[at + even], 0])
        } else {
            c
        };
        f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    }
    ok
}

/// Writes the tracker's verdict (`ct_state`, zone, mark, label, original tuple) into the key
/// of the next pass.
pub fn write_key(key: &mut FlowKey, meta: &CtMeta) {
    key.set(layout::CT_STATE, u64::from(meta.state.bits()));
    key.set(layout::CT_ZONE, u64::from(meta.zone));
    key.set(layout::CT_MARK, u64::from(meta.mark));
    key.set128(layout::CT_LABEL, meta.label);
    let Some(t) = meta.orig.filter(|_| !meta.state.is_empty()) else {
        return;
    };
    key.set(layout::CT_NW_PROTO, u64::from(t.proto));
    match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            key.set(layout::CT_NW_SRC, u64::from(u32::from(s)));
            key.set(layout::CT_NW_DST, u64::from(u32::from(d)));
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            key.set128(layout::CT_IPV6_SRC, u128::from(s));
            key.set128(layout::CT_IPV6_DST, u128::from(d));
        }
        _ => {}
    }
    let v6 = t.is_ipv6();
    if has_ports(t.proto) {
        key.set(layout::CT_TP_SRC, u64::from(t.src_port));
        key.set(layout::CT_TP_DST, u64::from(t.dst_port));
    } else if is_icmp(t.proto, v6) {
        // OVS keeps the ICMP type and code of the original direction there.
        key.set(layout::CT_TP_SRC, u64::from(t.icmp_type));
        key.set(layout::CT_TP_DST, u64::from(t.icmp_code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_packet::extract;

    /// Frames built from random bytes behind valid-looking Ethernet/IP starts: reading them
    /// for the tracker and writing any NAT verdict into them never panics.
    #[test]
    fn random_frames_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let addr4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        let addr6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        for i in 0..20_000usize {
            let len = (next() % 200) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if f.len() > 24 {
                let v6 = i % 2 == 0;
                f[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
                f[14] = if v6 { 0x60 } else { 0x45 };
                let protos = [1u8, 6, 17, 58, 132, 33];
                let p = protos[(next() % protos.len() as u64) as usize];
                if v6 && f.len() > 20 {
                    f[20] = p;
                } else if f.len() > 23 {
                    f[23] = p;
                    f[20] = 0;
                    f[21] = 0;
                }
            }
            let mut key = FlowKey::ZERO;
            let info = extract(&f, 1, &mut key);
            let h = Headers {
                info,
                eth_type: key.get(layout::ETH_TYPE) as u16,
                nw_proto: key.get(layout::NW_PROTO) as u8,
            };
            let input = input(&f, &h, key.get(layout::NW_FRAG));
            let a = if i % 3 == 0 { addr6 } else { addr4 };
            let rw = Rewrite {
                src: Some(a),
                dst: Some(a),
                src_port: Some(1),
                dst_port: Some(2),
                icmp_id: Some(3),
                inner: Some(Tuple::ports(a, a, proto::UDP, 4, 5)),
            };
            let _ = apply_nat(&mut f, &h, &rw);
            let _ = input.malformed;
        }
    }
}
