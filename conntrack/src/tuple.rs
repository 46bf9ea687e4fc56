//! Packet tuples (what the caller hands in) and connection keys (what the table indexes).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers the tracker knows.
pub mod proto {
    /// ICMP (IPv4 only).
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// DCCP.
    pub const DCCP: u8 = 33;
    /// ICMPv6 (IPv6 only).
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// The addresses and transport identifiers of one packet, as parsed by the caller.
///
/// - TCP, UDP, SCTP: `src_port`/`dst_port` (both must be non-zero); the ICMP fields are 0.
/// - ICMP/ICMPv6: `icmp_type`, `icmp_code` and, for queries (echo, timestamp, info), the
///   identifier in `icmp_id`; the ports are 0.
/// - Any other protocol: only the addresses and `proto`; everything else 0.
///
/// `src` and `dst` must be of the same family; a mixed tuple is tracked as invalid.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (IPv6: the upper-layer protocol after extension headers).
    pub proto: u8,
    /// Transport source port.
    pub src_port: u16,
    /// Transport destination port.
    pub dst_port: u16,
    /// ICMP query identifier.
    pub icmp_id: u16,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
}

impl Tuple {
    /// A TCP/UDP/SCTP (or any port-carrying protocol) tuple.
    pub fn ports(src: IpAddr, dst: IpAddr, proto: u8, src_port: u16, dst_port: u16) -> Tuple {
        Tuple {
            src,
            dst,
            proto,
            src_port,
            dst_port,
            icmp_id: 0,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    /// An ICMP or ICMPv6 tuple (`proto` is [`proto::ICMP`] or [`proto::ICMPV6`]); `id` is the
    /// query identifier (0 for errors).
    pub fn icmp(
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        icmp_type: u8,
        icmp_code: u8,
        id: u16,
    ) -> Tuple {
        Tuple {
            src,
            dst,
            proto,
            src_port: 0,
            dst_port: 0,
            icmp_id: id,
            icmp_type,
            icmp_code,
        }
    }

    /// A tuple of a protocol without transport identifiers.
    pub fn other(src: IpAddr, dst: IpAddr, proto: u8) -> Tuple {
        Tuple::ports(src, dst, proto, 0, 0)
    }

    /// True for IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.src.is_ipv6()
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_icmp(self.proto, self.is_ipv6()) {
            write!(
                f,
                "{}({} -> {} type={} code={} id={})",
                self.proto, self.src, self.dst, self.icmp_type, self.icmp_code, self.icmp_id
            )
        } else {
            write!(
                f,
                "{}({}:{} -> {}:{})",
                self.proto, self.src, self.src_port, self.dst, self.dst_port
            )
        }
    }
}

pub(crate) fn is_icmp(proto: u8, v6: bool) -> bool {
    (!v6 && proto == proto::ICMP) || (v6 && proto == proto::ICMPV6)
}

/// True for protocols whose key carries ports.
pub(crate) fn has_ports(proto: u8) -> bool {
    matches!(proto, proto::TCP | proto::UDP | proto::SCTP)
}

#[inline]
pub(crate) fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[inline]
pub(crate) fn bits_addr(bits: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        // The upper bits of an IPv4 key address are always zero.
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    }
}

/// One direction of a connection, as indexed in the table.
///
/// ICMP queries: both "ports" hold the identifier, `stype` the type of this direction and `dtype`
/// the type of the other (echo request 8 <-> reply 0), so reversing a request key gives the key
/// of its reply, as in OVS.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct ConnKey {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub zone: u16,
    pub proto: u8,
    pub v6: bool,
    pub stype: u8,
    pub dtype: u8,
}

/// Hashes the key in three writes instead of one per field (consistent with `Eq`: every field
/// goes in, packed).
impl std::hash::Hash for ConnKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(self.src);
        h.write_u128(self.dst);
        h.write_u64(
            u64::from(self.sport)
                | u64::from(self.dport) << 16
                | u64::from(self.zone) << 32
                | u64::from(self.proto) << 48
                | u64::from(self.v6) << 56,
        );
        h.write_u16(u16::from(self.stype) | u16::from(self.dtype) << 8);
    }
}

impl ConnKey {
    #[inline]
    pub fn reverse(&self) -> ConnKey {
        ConnKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            zone: self.zone,
            proto: self.proto,
            v6: self.v6,
            stype: self.dtype,
            dtype: self.stype,
        }
    }

    pub fn is_icmp(&self) -> bool {
        is_icmp(self.proto, self.v6)
    }

    /// The tuple of a packet travelling in this key's direction.
    #[inline]
    pub fn to_tuple(self) -> Tuple {
        let src = bits_addr(self.src, self.v6);
        let dst = bits_addr(self.dst, self.v6);
        if self.is_icmp() {
            Tuple::icmp(src, dst, self.proto, self.stype, 0, self.sport)
        } else {
            Tuple::ports(src, dst, self.proto, self.sport, self.dport)
        }
    }
}

/// Why a packet could not be keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Source and destination of different families, or an ICMP error without a usable embedded
    /// header.
    Malformed,
    /// An ICMP type the tracker does not track (OVS: neither a query nor an error).
    UntrackedIcmp,
}

/// The key of a packet: its own direction, or for an ICMP error the key of the connection it
/// refers to (seen from the error's direction).
pub(crate) enum Keyed {
    /// A packet of a connection.
    Own(ConnKey),
    /// An ICMP error about the connection with this key.
    Related(ConnKey),
}

/// Reverse ICMP query type, or `None` when `t` is not a tracked query type.
fn icmp4_query_peer(t: u8) -> Option<u8> {
    match t {
        8 => Some(0),
        0 => Some(8),
        13 => Some(14),
        14 => Some(13),
        15 => Some(16),
        16 => Some(15),
        _ => None,
    }
}

fn icmp6_query_peer(t: u8) -> Option<u8> {
    match t {
        128 => Some(129),
        129 => Some(128),
        _ => None,
    }
}

fn icmp4_is_error(t: u8) -> bool {
    // Destination unreachable, source quench, redirect, time exceeded, parameter problem.
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

fn icmp6_is_error(t: u8) -> bool {
    // Destination unreachable, packet too big, time exceeded, parameter problem.
    matches!(t, 1..=4)
}

/// True when `t` (of an ICMP/ICMPv6 packet) may open a connection (OVS `icmp*_valid_new`).
pub(crate) fn icmp_valid_new(t: u8, v6: bool) -> bool {
    if v6 {
        t == 128
    } else {
        matches!(t, 8 | 13 | 15)
    }
}

#[inline]
fn plain_key(zone: u16, t: &Tuple) -> Result<(ConnKey, bool), KeyError> {
    let v6 = match (t.src, t.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(KeyError::Malformed),
    };
    let mut key = ConnKey {
        src: addr_bits(t.src),
        dst: addr_bits(t.dst),
        sport: 0,
        dport: 0,
        zone,
        proto: t.proto,
        v6,
        stype: 0,
        dtype: 0,
    };
    if has_ports(t.proto) {
        if t.src_port == 0 || t.dst_port == 0 {
            return Err(KeyError::Malformed);
        }
        key.sport = t.src_port;
        key.dport = t.dst_port;
        return Ok((key, false));
    }
    if is_icmp(t.proto, v6) {
        let peer = if v6 {
            icmp6_query_peer(t.icmp_type)
        } else {
            icmp4_query_peer(t.icmp_type)
        };
        if let Some(peer) = peer {
            if t.icmp_code != 0 {
                return Err(KeyError::Malformed);
            }
            key.sport = t.icmp_id;
            key.dport = t.icmp_id;
            key.stype = t.icmp_type;
            key.dtype = peer;
            return Ok((key, false));
        }
        let error = if v6 {
            icmp6_is_error(t.icmp_type)
        } else {
            icmp4_is_error(t.icmp_type)
        };
        return if error {
            Ok((key, true))
        } else {
            Err(KeyError::UntrackedIcmp)
        };
    }
    Ok((key, false))
}

/// Keys a packet for lookup in `zone`. `inner` is the embedded header of an ICMP error.
#[inline]
pub(crate) fn key_packet(zone: u16, t: &Tuple, inner: Option<&Tuple>) -> Result<Keyed, KeyError> {
    let (key, is_error) = plain_key(zone, t)?;
    if !is_error {
        return Ok(Keyed::Own(key));
    }
    let inner = inner.ok_or(KeyError::Malformed)?;
    let (inner_key, inner_error) = plain_key(zone, inner)?;
    // No error about an error; the embedded packet must have been sent by the error's
    // destination (OVS checks this for both families).
    if inner_error || inner_key.v6 != key.v6 || inner_key.src != key.dst {
        return Err(KeyError::Malformed);
    }
    Ok(Keyed::Related(inner_key.reverse()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn echo_reply_key_is_reverse_of_request() {
        let req = Tuple::icmp(v4([1, 1, 1, 1]), v4([2, 2, 2, 2]), proto::ICMP, 8, 0, 77);
        let rep = Tuple::icmp(v4([2, 2, 2, 2]), v4([1, 1, 1, 1]), proto::ICMP, 0, 0, 77);
        let (Ok(Keyed::Own(a)), Ok(Keyed::Own(b))) =
            (key_packet(1, &req, None), key_packet(1, &rep, None))
        else {
            panic!("not keyed");
        };
        assert_eq!(a.reverse(), b);
        assert_eq!(a.to_tuple(), req);
    }

    #[test]
    fn icmp_error_keys_on_reversed_inner() {
        let inner = Tuple::ports(v4([1, 1, 1, 1]), v4([2, 2, 2, 2]), proto::TCP, 1000, 80);
        let err = Tuple::icmp(v4([9, 9, 9, 9]), v4([1, 1, 1, 1]), proto::ICMP, 3, 1, 0);
        let Ok(Keyed::Related(k)) = key_packet(5, &err, Some(&inner)) else {
            panic!("not related");
        };
        assert_eq!(k.src, addr_bits(v4([2, 2, 2, 2])));
        assert_eq!((k.sport, k.dport, k.zone), (80, 1000, 5));
        // Inner source must be the outer destination.
        let bad = Tuple::icmp(v4([9, 9, 9, 9]), v4([3, 3, 3, 3]), proto::ICMP, 3, 1, 0);
        assert!(key_packet(5, &bad, Some(&inner)).is_err());
        assert!(key_packet(5, &err, None).is_err());
    }

    #[test]
    fn rejects_bad_tuples() {
        let mixed = Tuple::ports(
            v4([1, 1, 1, 1]),
            "::1".parse().unwrap_or(v4([0; 4])),
            proto::UDP,
            1,
            2,
        );
        assert_eq!(key_packet(0, &mixed, None).err(), Some(KeyError::Malformed));
        let port0 = Tuple::ports(v4([1, 1, 1, 1]), v4([2, 2, 2, 2]), proto::UDP, 0, 2);
        assert_eq!(key_packet(0, &port0, None).err(), Some(KeyError::Malformed));
        let ra = Tuple::icmp(
            "fe80::1".parse().unwrap_or(v4([0; 4])),
            "ff02::1".parse().unwrap_or(v4([0; 4])),
            proto::ICMPV6,
            134,
            0,
            0,
        );
        assert_eq!(
            key_packet(0, &ra, None).err(),
            Some(KeyError::UntrackedIcmp)
        );
        let echo_code = Tuple::icmp(v4([1, 1, 1, 1]), v4([2, 2, 2, 2]), proto::ICMP, 8, 1, 3);
        assert_eq!(
            key_packet(0, &echo_code, None).err(),
            Some(KeyError::Malformed)
        );
    }
}
