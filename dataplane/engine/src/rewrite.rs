//! Header rewrites: the `Set*`, VLAN push/pop datapath actions applied to frame bytes, with
//! checksums updated incrementally (RFC 1624).
//!
//! Offsets come from extraction ([`ExtractInfo`]), so nothing is parsed again. Every write is
//! bounds-checked; an action that does not apply to the packet (an IPv4 rewrite on ARP, a port
//! rewrite on a later fragment) returns `false` and the caller counts it.

use xvs_flowtable::datapath::DpAction;
use xvs_packet::checksum::{
    update16, update32, update_bytes, update_udp16, update_udp32, update_udp_bytes,
};
use xvs_packet::ExtractInfo;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// What a rewrite needs to know about the packet besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Headers {
    /// Offsets from extraction (kept current across VLAN push/pop).
    pub info: ExtractInfo,
    /// Ethertype after VLAN tags.
    pub eth_type: u16,
    /// IP protocol (0 when not IP).
    pub nw_proto: u8,
}

fn get<const N: usize>(f: &[u8], at: usize) -> Option<[u8; N]> {
    f.get(at..at + N).and_then(|s| s.try_into().ok())
}

fn put(f: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match f.get_mut(at..at + bytes.len()) {
        Some(d) => {
            d.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

fn get16(f: &[u8], at: usize) -> Option<u16> {
    get::<2>(f, at).map(u16::from_be_bytes)
}

fn put16(f: &mut [u8], at: usize, v: u16) -> bool {
    put(f, at, &v.to_be_bytes())
}

/// Offset of the transport checksum and whether it is UDP's (zero = none), for a packet
/// whose L4 header is present.
fn l4_csum(h: &Headers) -> Option<(usize, bool)> {
    let l4 = h.info.l4()?;
    match h.nw_proto {
        IPPROTO_TCP => Some((l4 + 16, false)),
        IPPROTO_UDP => Some((l4 + 6, true)),
        IPPROTO_ICMPV6 if h.eth_type == ETH_P_IPV6 => Some((l4 + 2, false)),
        _ => None,
    }
}

fn fix_l4_pseudo32(f: &mut [u8], h: &Headers, old: u32, new: u32) {
    if let Some((at, udp)) = l4_csum(h) {
        if h.nw_proto == IPPROTO_ICMPV6 {
            return;
        }
        if let Some(c) = get16(f, at) {
            let c = if udp {
                update_udp32(c, old, new)
            } else {
                update32(c, old, new)
            };
            put16(f, at, c);
        }
    }
}

fn fix_l4_pseudo_bytes(f: &mut [u8], h: &Headers, old: &[u8], new: &[u8]) {
    if let Some((at, udp)) = l4_csum(h) {
        if let Some(c) = get16(f, at) {
            let c = if udp {
                update_udp_bytes(c, old, new)
            } else {
                update_bytes(c, old, new)
            };
            put16(f, at, c);
        }
    }
}

fn set_ipv4_addr(f: &mut [u8], h: &Headers, field_at: usize, new: u32) -> bool {
    let Some(l3) = h.info.l3().filter(|_| h.eth_type == ETH_P_IPV4) else {
        return false;
    };
    let Some(old) = get::<4>(f, l3 + field_at).map(u32::from_be_bytes) else {
        return false;
    };
    if old == new {
        return true;
    }
    put(f, l3 + field_at, &new.to_be_bytes());
    if let Some(c) = get16(f, l3 + 10) {
        put16(f, l3 + 10, update32(c, old, new));
    }
    fix_l4_pseudo32(f, h, old, new);
    true
}

fn set_ipv6_addr(f: &mut [u8], h: &Headers, field_at: usize, new: u128) -> bool {
    let Some(l3) = h.info.l3().filter(|_| h.eth_type == ETH_P_IPV6) else {
        return false;
    };
    let Some(old) = get::<16>(f, l3 + field_at) else {
        return false;
    };
    let new = new.to_be_bytes();
    put(f, l3 + field_at, &new);
    fix_l4_pseudo_bytes(f, h, &old, &new);
    true
}

fn set_port(f: &mut [u8], h: &Headers, field_at: usize, new: u16) -> bool {
    let Some(l4) = h.info.l4() else { return false };
    if !matches!(h.nw_proto, IPPROTO_TCP | IPPROTO_UDP) {
        // SCTP's CRC32c is not incremental; ICMP has no ports.
        return false;
    }
    let Some(old) = get16(f, l4 + field_at) else {
        return false;
    };
    put16(f, l4 + field_at, new);
    if let Some((at, udp)) = l4_csum(h) {
        if let Some(c) = get16(f, at) {
            put16(
                f,
                at,
                if udp {
                    update_udp16(c, old, new)
                } else {
                    update16(c, old, new)
                },
            );
        }
    }
    true
}

fn arp_field(f: &mut [u8], h: &Headers, at: usize, bytes: &[u8]) -> bool {
    match h.info.l3().filter(|_| h.eth_type == ETH_P_ARP) {
        Some(l3) => put(f, l3 + at, bytes),
        None => false,
    }
}

/// Applies one header action to `f` (the packet bytes). VLAN push/pop change the frame's
/// length and are not handled here (see [`push_vlan`] and [`pop_vlan`]). Returns false when the
/// action does not apply to this packet.
pub fn apply(f: &mut [u8], h: &Headers, action: &DpAction) -> bool {
    match *action {
        DpAction::SetEthDst(mac) => put(f, 0, &mac),
        DpAction::SetEthSrc(mac) => put(f, 6, &mac),
        DpAction::SetIpv4Src(a) => set_ipv4_addr(f, h, 12, a),
        DpAction::SetIpv4Dst(a) => set_ipv4_addr(f, h, 16, a),
        DpAction::SetIpv6Src(a) => set_ipv6_addr(f, h, 8, a),
        DpAction::SetIpv6Dst(a) => set_ipv6_addr(f, h, 24, a),
        DpAction::SetTos { value, mask } => {
            let Some(l3) = h.info.l3() else { return false };
            match h.eth_type {
                ETH_P_IPV4 => {
                    let Some([vihl, tos]) = get::<2>(f, l3) else {
                        return false;
                    };
                    let new = (tos & !mask) | (value & mask);
                    put(f, l3 + 1, &[new]);
                    if let Some(c) = get16(f, l3 + 10) {
                        let old = u16::from_be_bytes([vihl, tos]);
                        put16(
                            f,
                            l3 + 10,
                            update16(c, old, u16::from_be_bytes([vihl, new])),
                        );
                    }
                    true
                }
                ETH_P_IPV6 => {
                    // Traffic class: low nibble of byte 0, high nibble of byte 1.
                    let Some([b0, b1]) = get::<2>(f, l3) else {
                        return false;
                    };
                    let tc = (b0 << 4) | (b1 >> 4);
                    let tc = (tc & !mask) | (value & mask);
                    put(f, l3, &[(b0 & 0xf0) | (tc >> 4), (b1 & 0x0f) | (tc << 4)])
                }
                _ => false,
            }
        }
        DpAction::SetTtl(ttl) => {
            let Some(l3) = h.info.l3() else { return false };
            match h.eth_type {
                ETH_P_IPV4 => {
                    let Some([old_ttl, proto]) = get::<2>(f, l3 + 8) else {
                        return false;
                    };
                    put(f, l3 + 8, &[ttl]);
                    if let Some(c) = get16(f, l3 + 10) {
                        let (old, new) = (
                            u16::from_be_bytes([old_ttl, proto]),
                            u16::from_be_bytes([ttl, proto]),
                        );
                        put16(f, l3 + 10, update16(c, old, new));
                    }
                    true
                }
                ETH_P_IPV6 => put(f, l3 + 7, &[ttl]),
                _ => false,
            }
        }
        DpAction::SetTpSrc(p) => set_port(f, h, 0, p),
        DpAction::SetTpDst(p) => set_port(f, h, 2, p),
        DpAction::SetArpOp(op) => arp_field(f, h, 6, &op.to_be_bytes()),
        DpAction::SetArpSha(mac) => arp_field(f, h, 8, &mac),
        DpAction::SetArpSpa(a) => arp_field(f, h, 14, &a.to_be_bytes()),
        DpAction::SetArpTha(mac) => arp_field(f, h, 18, &mac),
        DpAction::SetArpTpa(a) => arp_field(f, h, 24, &a.to_be_bytes()),
        DpAction::SetVlanTci(tci) => {
            if get16(f, 12) == Some(0x8100) || get16(f, 12) == Some(0x88a8) {
                put16(f, 14, tci & !0x1000)
            } else {
                false
            }
        }
        DpAction::Output(_)
        | DpAction::PushVlan { .. }
        | DpAction::PopVlan
        | DpAction::Meter(_)
        | DpAction::Ct(_)
        | DpAction::CtClear
        | DpAction::Recirc(_)
        | DpAction::TunnelPush(_) => false,
    }
}

/// Rewrites the identifier of an ICMP/ICMPv6 echo (NAT of ICMP queries), with its checksum.
pub fn set_icmp_id(f: &mut [u8], h: &Headers, id: u16) -> bool {
    const IPPROTO_ICMP: u8 = 1;
    let Some(l4) = h.info.l4() else { return false };
    let icmp = (h.nw_proto == IPPROTO_ICMP && h.eth_type == ETH_P_IPV4)
        || (h.nw_proto == IPPROTO_ICMPV6 && h.eth_type == ETH_P_IPV6);
    let (Some(old), Some(c)) = (get16(f, l4 + 4), get16(f, l4 + 2)) else {
        return false;
    };
    if !icmp {
        return false;
    }
    put16(f, l4 + 4, id);
    put16(f, l4 + 2, update16(c, old, id))
}

/// Inserts an 802.1Q tag after the MAC addresses of the frame held in `region[start..end]`,
/// growing it towards the front (the frame must have 4 bytes of headroom). Returns the new
/// start, or `None` without headroom.
pub fn push_vlan(
    region: &mut [u8],
    start: usize,
    end: usize,
    tpid: u16,
    tci: u16,
) -> Option<usize> {
    if start < 4 || end < start + 12 || end > region.len() {
        return None;
    }
    let new = start - 4;
    region.copy_within(start..start + 12, new);
    region[new + 12..new + 14].copy_from_slice(&tpid.to_be_bytes());
    region[new + 14..new + 16].copy_from_slice(&(tci & !0x1000).to_be_bytes());
    Some(new)
}

/// Removes the outer 802.1Q tag of `f` by moving the MAC addresses 4 bytes up. Returns how many
/// bytes the frame start moved (4), or `None` when the frame has no tag.
pub fn pop_vlan(f: &mut [u8]) -> Option<usize> {
    let tpid = get16(f, 12)?;
    if (tpid != 0x8100 && tpid != 0x88a8) || f.len() < 18 {
        return None;
    }
    f.copy_within(0..12, 4);
    Some(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_packet::checksum::checksum;
    use xvs_packet::{extract, FlowKey};

    fn udp4() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&46u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = IPPROTO_UDP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..36].copy_from_slice(&1000u16.to_be_bytes());
        f[36..38].copy_from_slice(&2000u16.to_be_bytes());
        f[38..40].copy_from_slice(&26u16.to_be_bytes());
        for (i, b) in f[42..60].iter_mut().enumerate() {
            *b = i as u8;
        }
        let sum = udp_sum(&f);
        f[40..42].copy_from_slice(&sum.to_be_bytes());
        f
    }

    fn udp_sum(f: &[u8]) -> u16 {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[26..34]);
        pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
        pseudo.extend_from_slice(&f[38..40]);
        let mut seg = f[34..60].to_vec();
        seg[6] = 0;
        seg[7] = 0;
        pseudo.extend_from_slice(&seg);
        checksum(&pseudo)
    }

    fn headers(f: &[u8]) -> Headers {
        let mut k = FlowKey::ZERO;
        let info = extract(f, 1, &mut k);
        Headers {
            info,
            eth_type: ETH_P_IPV4,
            nw_proto: IPPROTO_UDP,
        }
    }

    #[test]
    fn nat_style_rewrites_keep_checksums_valid() {
        let mut f = udp4();
        let h = headers(&f);
        for a in [
            DpAction::SetIpv4Src(0xc0a8_0101),
            DpAction::SetIpv4Dst(0x0a0a_0a0a),
            DpAction::SetTpSrc(40000),
            DpAction::SetTpDst(53),
            DpAction::SetTtl(63),
            DpAction::SetTos {
                value: 0x28,
                mask: 0xfc,
            },
            DpAction::SetEthDst([2, 0, 0, 0, 0, 9]),
        ] {
            assert!(apply(&mut f, &h, &a), "{a:?}");
        }
        assert_eq!(checksum(&f[14..34]), 0, "IPv4 header checksum");
        assert_eq!(
            u16::from_be_bytes([f[40], f[41]]),
            udp_sum(&f),
            "UDP checksum"
        );
        assert_eq!(&f[26..30], &[192, 168, 1, 1]);
        assert_eq!(&f[34..36], &40000u16.to_be_bytes());
        assert_eq!(f[22], 63);
        assert_eq!(f[15] & 0xfc, 0x28);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 9]);
    }

    #[test]
    fn rewrites_that_do_not_apply_are_refused() {
        let mut f = udp4();
        let h = headers(&f);
        assert!(!apply(&mut f, &h, &DpAction::SetArpOp(2)));
        assert!(!apply(&mut f, &h, &DpAction::SetIpv6Src(1)));
        let mut short = f[..20].to_vec();
        assert!(!apply(&mut short, &h, &DpAction::SetTpSrc(1)));
    }

    #[test]
    fn vlan_push_and_pop_round_trip() {
        let f = udp4();
        let mut region = vec![0u8; 8];
        region.extend_from_slice(&f);
        let end = region.len();
        let start = push_vlan(&mut region, 8, end, 0x8100, 0x1005).expect("headroom");
        assert_eq!(start, 4);
        assert_eq!(&region[start + 12..start + 16], &[0x81, 0x00, 0x00, 0x05]);
        let moved = pop_vlan(&mut region[start..end]).expect("tag");
        assert_eq!(&region[start + moved..end], &f[..]);
        assert!(push_vlan(&mut region, 2, end, 0x8100, 1).is_none());
    }
}
