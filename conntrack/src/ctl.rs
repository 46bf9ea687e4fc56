//! Control-path text: the arguments of `ovs-appctl dpctl/flush-conntrack` and the output of
//! `dpctl/ct-stats-show`, as Open vSwitch 3.1 parses and prints them (checked against Debian's
//! `ovs-vswitchd`, see `tests/ovs_format.rs` and its fixtures).
//!
//! `dpctl/flush-conntrack [zone=N] [ct-orig-tuple [ct-reply-tuple]]`, where a ct-tuple is a
//! comma-separated list of `ct_nw_src=`, `ct_nw_dst=`, `ct_ipv6_src=`, `ct_ipv6_dst=`,
//! `ct_nw_proto=`, `ct_tp_src=`, `ct_tp_dst=`, `icmp_type=`, `icmp_code=`, `icmp_id=`. Fields
//! left out match anything, except the ICMP fields of an ICMP match, which OVS compares
//! exactly (0 when left out): a partial ICMP tuple without `icmp_type` only matches type 0.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dump::CtEntry;
use crate::tcp::TcpState;
use crate::tuple::{proto, Tuple};

/// One side (original or reply) of a flush match; `None`/0 fields match anything (ports) or
/// exactly 0 (ICMP fields of an ICMP match).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtTupleMatch {
    /// `ct_nw_src` / `ct_ipv6_src`.
    pub src: Option<IpAddr>,
    /// `ct_nw_dst` / `ct_ipv6_dst`.
    pub dst: Option<IpAddr>,
    /// `ct_tp_src` (0 = any).
    pub src_port: u16,
    /// `ct_tp_dst` (0 = any).
    pub dst_port: u16,
    /// `icmp_type`.
    pub icmp_type: u8,
    /// `icmp_code`.
    pub icmp_code: u8,
    /// `icmp_id`.
    pub icmp_id: u16,
}

impl CtTupleMatch {
    fn is_zero(&self, ip_proto: u8) -> bool {
        let addrs = self.src.is_none() && self.dst.is_none();
        if is_icmp_proto(ip_proto) {
            addrs
        } else {
            addrs && self.src_port == 0 && self.dst_port == 0
        }
    }

    fn is_five_tuple(&self, ip_proto: u8) -> bool {
        let addrs = self.src.is_some() && self.dst.is_some();
        if is_icmp_proto(ip_proto) {
            addrs
        } else {
            addrs && self.src_port != 0 && self.dst_port != 0
        }
    }

    fn matches(&self, t: &Tuple, ip_proto: u8) -> bool {
        if self.src.is_some_and(|a| a != t.src) || self.dst.is_some_and(|a| a != t.dst) {
            return false;
        }
        if is_icmp_proto(ip_proto) {
            self.icmp_id == t.icmp_id
                && self.icmp_type == t.icmp_type
                && self.icmp_code == t.icmp_code
        } else {
            (self.src_port == 0 || self.src_port == t.src_port)
                && (self.dst_port == 0 || self.dst_port == t.dst_port)
        }
    }
}

fn is_icmp_proto(p: u8) -> bool {
    p == proto::ICMP || p == proto::ICMPV6
}

/// Address family of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 (`ct_nw_src`/`ct_nw_dst`).
    V4,
    /// IPv6 (`ct_ipv6_src`/`ct_ipv6_dst`).
    V6,
}

/// The connection filter of `dpctl/flush-conntrack` (OVS `ofp_ct_match`), also usable to
/// filter a dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtMatch {
    /// `ct_nw_proto` (0 = any).
    pub ip_proto: u8,
    /// Family fixed by the address fields, if any.
    pub family: Option<Family>,
    /// The original-direction tuple.
    pub orig: CtTupleMatch,
    /// The reply-direction tuple.
    pub reply: CtTupleMatch,
}

impl CtMatch {
    /// True when the match constrains nothing (flush everything, or the whole zone).
    pub fn is_zero(&self) -> bool {
        self.ip_proto == 0
            && self.family.is_none()
            && self.orig.is_zero(self.ip_proto)
            && self.reply.is_zero(self.ip_proto)
    }

    /// The exact original tuple, when the match names one connection by its full original
    /// tuple and says nothing of the reply (OVS then flushes by a single lookup, in the given
    /// zone or zone 0).
    pub fn exact_orig(&self) -> Option<Tuple> {
        if !self.orig.is_five_tuple(self.ip_proto) || !self.reply.is_zero(self.ip_proto) {
            return None;
        }
        let (src, dst) = (self.orig.src?, self.orig.dst?);
        Some(if is_icmp_proto(self.ip_proto) {
            Tuple::icmp(
                src,
                dst,
                self.ip_proto,
                self.orig.icmp_type,
                self.orig.icmp_code,
                self.orig.icmp_id,
            )
        } else {
            Tuple::ports(
                src,
                dst,
                self.ip_proto,
                self.orig.src_port,
                self.orig.dst_port,
            )
        })
    }

    /// Does the connection `e` match (OVS `ct_dpif_entry_cmp`)?
    pub fn matches(&self, e: &CtEntry) -> bool {
        if let Some(f) = self.family {
            if (f == Family::V6) != e.orig.is_ipv6() {
                return false;
            }
        }
        if self.ip_proto != 0 && self.ip_proto != e.orig.proto {
            return false;
        }
        self.orig.matches(&e.orig, self.ip_proto) && self.reply.matches(&e.reply, self.ip_proto)
    }
}

/// Parsed `dpctl/flush-conntrack` arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushArgs {
    /// `zone=N`.
    pub zone: Option<u16>,
    /// The tuples; [`CtMatch::is_zero`] when none was given.
    pub filter: CtMatch,
}

/// Why `dpctl/flush-conntrack` arguments were refused; the messages are OVS's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlushArgError {
    /// `zone=` not followed by a 16-bit number.
    #[error("failed to parse zone")]
    Zone,
    /// An unknown `key=value` key.
    #[error("invalid conntrack tuple field: {0}")]
    UnknownField(String),
    /// `key=` with nothing after it.
    #[error("field {0} missing value")]
    MissingValue(String),
    /// A value that does not parse for its field.
    #[error("failed to parse field {0}")]
    BadValue(String),
    /// An address field given twice in one tuple.
    #[error("{0} is set multiple times")]
    Repeated(String),
    /// An address of the other family than an earlier one.
    #[error("the L3 protocol does not match {0}")]
    FamilyMismatch(String),
    /// An ICMP field before `ct_nw_proto` named ICMP or ICMPv6.
    #[error("invalid L4 fields")]
    IcmpFieldsWithoutIcmp,
    /// A port without `ct_nw_proto`.
    #[error("port is set without protocol")]
    PortWithoutProto,
    /// More than two tuples.
    #[error("invalid arguments")]
    TooManyArgs,
}

/// Parses the arguments of `dpctl/flush-conntrack` after the command (and after the optional
/// datapath name, which the caller removes): `[zone=N] [ct-orig-tuple [ct-reply-tuple]]`.
/// Bounded work, no panic, for any input.
pub fn parse_flush_conntrack(args: &[&str]) -> Result<FlushArgs, FlushArgError> {
    let mut out = FlushArgs::default();
    let mut rest = args;
    if let Some(z) = rest.first().and_then(|a| a.strip_prefix("zone=")) {
        out.zone = Some(parse_u16_prefix(z).ok_or(FlushArgError::Zone)?);
        rest = &rest[1..];
    }
    let mut family = None;
    for i in 0..2 {
        let Some(arg) = rest.first() else { break };
        if !arg.is_empty() {
            let t = if i == 0 {
                &mut out.filter.orig
            } else {
                &mut out.filter.reply
            };
            parse_tuple(arg, t, &mut out.filter.ip_proto, &mut family)?;
        }
        rest = &rest[1..];
    }
    if rest.len() > 1 {
        return Err(FlushArgError::TooManyArgs);
    }
    out.filter.family = family;
    Ok(out)
}

/// `ovs_scan("%"SCNu16)`: leading digits (after optional spaces and `+`), trailing text ignored.
fn parse_u16_prefix(s: &str) -> Option<u16> {
    let s = s.trim_start();
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s.get(..digits)?.parse().ok()
}

/// OVS `str_to_u8`/`str_to_u16`: a whole-string number, decimal or `0x` hex.
fn parse_uint<T: TryFrom<u64>>(s: &str) -> Option<T> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        s.parse::<u64>().ok()?
    };
    T::try_from(v).ok()
}

fn parse_tuple(
    s: &str,
    t: &mut CtTupleMatch,
    ip_proto: &mut u8,
    family: &mut Option<Family>,
) -> Result<(), FlushArgError> {
    for item in s.split([',', ' ', '\t']).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once(['=', ':']).unwrap_or((item, ""));
        let bad = || FlushArgError::BadValue(key.to_string());
        if value.is_empty() {
            return Err(FlushArgError::MissingValue(key.to_string()));
        }
        match key {
            "ct_nw_src" | "ct_nw_dst" | "ct_ipv6_src" | "ct_ipv6_dst" => {
                let v6 = key.starts_with("ct_ipv6");
                let fam = if v6 { Family::V6 } else { Family::V4 };
                if family.is_some_and(|f| f != fam) {
                    return Err(FlushArgError::FamilyMismatch(value.to_string()));
                }
                let slot = if key.ends_with("src") {
                    &mut t.src
                } else {
                    &mut t.dst
                };
                if slot.is_some() {
                    return Err(FlushArgError::Repeated(key.to_string()));
                }
                let a: IpAddr = if v6 {
                    value.parse::<Ipv6Addr>().map_err(|_| bad())?.into()
                } else {
                    value.parse::<Ipv4Addr>().map_err(|_| bad())?.into()
                };
                // OVS stores "no address" as all-zero: an explicit 0.0.0.0 / :: is a wildcard.
                *slot = (!a.is_unspecified()).then_some(a);
                *family = Some(fam);
            }
            // OVS says "set multiple times" here but goes on: the last value wins.
            "ct_nw_proto" => *ip_proto = parse_uint(value).ok_or_else(bad)?,
            "ct_tp_src" => t.src_port = parse_uint(value).ok_or_else(bad)?,
            "ct_tp_dst" => t.dst_port = parse_uint(value).ok_or_else(bad)?,
            "icmp_type" | "icmp_code" | "icmp_id" => {
                if !is_icmp_proto(*ip_proto) {
                    return Err(FlushArgError::IcmpFieldsWithoutIcmp);
                }
                match key {
                    "icmp_type" => t.icmp_type = parse_uint(value).ok_or_else(bad)?,
                    "icmp_code" => t.icmp_code = parse_uint(value).ok_or_else(bad)?,
                    _ => t.icmp_id = parse_uint(value).ok_or_else(bad)?,
                }
            }
            _ => return Err(FlushArgError::UnknownField(key.to_string())),
        }
    }
    if *ip_proto == 0 && (t.src_port != 0 || t.dst_port != 0) {
        return Err(FlushArgError::PortWithoutProto);
    }
    Ok(())
}

/// The text of `ovs-appctl dpctl/ct-stats-show [zone=N] [verbose]` for `entries` (a dump of
/// the zone, or of everything), byte for byte as OVS 3.1 prints it. As in OVS, ICMPv6
/// connections count in the total but get no line of their own.
pub fn format_ct_stats(entries: &[CtEntry], verbose: bool) -> String {
    let mut by_proto = [0usize; 8];
    let mut tcp_states = [0usize; 11];
    const TCP: usize = 0;
    const UDP: usize = 1;
    const UDPLITE: usize = 2;
    const SCTP: usize = 3;
    const ICMP: usize = 4;
    const DCCP: usize = 5;
    const IGMP: usize = 6;
    const OTHER: usize = 7;
    for e in entries {
        let slot = match e.orig.proto {
            proto::ICMPV6 => continue,
            proto::ICMP => ICMP,
            proto::TCP => {
                if let Some((a, b)) = e.tcp {
                    tcp_states[TcpState::summary(a, b) as usize] += 1;
                }
                TCP
            }
            proto::UDP => UDP,
            proto::SCTP => SCTP,
            proto::UDPLITE => UDPLITE,
            proto::DCCP => DCCP,
            proto::IGMP => IGMP,
            _ => OTHER,
        };
        by_proto[slot] += 1;
    }
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(s, "Connections Stats:\n    Total: {}\n", entries.len());
    for (slot, name) in [
        (TCP, "TCP"),
        (UDP, "UDP"),
        (UDPLITE, "UDPLITE"),
        (SCTP, "SCTP"),
        (ICMP, "ICMP"),
        (DCCP, "DCCP"),
        (IGMP, "IGMP"),
        (OTHER, "Other"),
    ] {
        if by_proto[slot] == 0 {
            continue;
        }
        let _ = writeln!(s, "  {name}: {}", by_proto[slot]);
        if slot == TCP && verbose {
            s.push_str("    Conn per TCP states:\n");
            for st in TcpState::ALL {
                let n = tcp_states[st as usize];
                if n != 0 {
                    let _ = writeln!(s, "\t  [{}]={n}", st.name());
                }
            }
        }
    }
    s
}

/// Why `dpctl/ct-set-limits`, `ct-get-limits` or `ct-del-limits` arguments were refused; the
/// messages are OVS's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitArgError {
    /// `default=` not followed by a 32-bit number.
    #[error("invalid default limit")]
    Default,
    /// `key=` with nothing after it.
    #[error("field {0} missing value")]
    MissingValue(String),
    /// A key other than `zone` and `limit`.
    #[error("invalid zone limit field: {0}")]
    UnknownField(String),
    /// A value that does not parse for its field.
    #[error("failed to parse field {0}")]
    BadValue(String),
    /// `zone=` or `limit=` missing from a `zone=N,limit=L` tuple.
    #[error("failed to parse zone limit")]
    Incomplete,
    /// A zone list argument not starting with `zone=`.
    #[error("invalid argument {0}")]
    NotZoneList(String),
    /// A zone in a `zone=N1,N2,...` list that is not a 16-bit number.
    #[error("invalid zone")]
    Zone,
}

/// Parsed `dpctl/ct-set-limits [default=L] [zone=N,limit=L]...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetLimits {
    /// `default=L` (0 = unlimited).
    pub default: Option<u32>,
    /// `(zone, limit)` pairs, in argument order (0 = unlimited).
    pub zones: Vec<(u16, u32)>,
}

/// Parses the arguments of `dpctl/ct-set-limits` (after the optional datapath name).
pub fn parse_ct_set_limits(args: &[&str]) -> Result<SetLimits, LimitArgError> {
    let mut out = SetLimits::default();
    let mut rest = args;
    if let Some(d) = rest.first().and_then(|a| a.strip_prefix("default=")) {
        out.default = Some(parse_u32_prefix(d).ok_or(LimitArgError::Default)?);
        rest = &rest[1..];
    }
    for arg in rest {
        let (mut zone, mut limit) = (None, None);
        for item in arg.split([',', ' ', '\t']).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once(['=', ':']).unwrap_or((item, ""));
            if value.is_empty() {
                return Err(LimitArgError::MissingValue(key.to_string()));
            }
            let bad = || LimitArgError::BadValue(key.to_string());
            match key {
                "zone" => zone = Some(parse_uint::<u16>(value).ok_or_else(bad)?),
                "limit" => limit = Some(parse_uint::<u32>(value).ok_or_else(bad)?),
                _ => return Err(LimitArgError::UnknownField(key.to_string())),
            }
        }
        match (zone, limit) {
            (Some(z), Some(l)) => out.zones.push((z, l)),
            _ => return Err(LimitArgError::Incomplete),
        }
    }
    Ok(out)
}

/// Parses the `zone=N1[,N2]...` argument of `dpctl/ct-get-limits` and `dpctl/ct-del-limits`.
pub fn parse_ct_limit_zones(arg: &str) -> Result<Vec<u16>, LimitArgError> {
    let list = arg
        .strip_prefix("zone=")
        .ok_or_else(|| LimitArgError::NotZoneList(arg.to_string()))?;
    let zones: Vec<u16> = list
        .split(',')
        .filter(|z| !z.is_empty())
        .map(|z| parse_u16_prefix(z).ok_or(LimitArgError::Zone))
        .collect::<Result<_, _>>()?;
    if zones.is_empty() {
        return Err(LimitArgError::Zone);
    }
    Ok(zones)
}

/// `ovs_scan("%"SCNu32)`: leading digits, trailing text ignored.
fn parse_u32_prefix(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s.get(..digits)?.parse().ok()
}

/// The text of `dpctl/ct-get-limits`: the default limit, then one line per
/// `(zone, limit, count)`, and the final newline `ovs-appctl` prints.
pub fn format_ct_limits(default: u32, zones: &[(u16, u32, u32)]) -> String {
    let mut s = format!("default limit={default}");
    for (z, l, c) in zones {
        let _ = write!(s, "\nzone={z},limit={l},count={c}");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn zone_and_two_tuples() {
        let a = parse_flush_conntrack(&[
            "zone=5",
            "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=6,ct_tp_src=1,ct_tp_dst=80",
            "ct_nw_src=10.0.0.2",
        ]);
        let Ok(a) = a else {
            panic!("{a:?}");
        };
        assert_eq!(a.zone, Some(5));
        assert_eq!(a.filter.ip_proto, 6);
        assert_eq!(a.filter.family, Some(Family::V4));
        assert_eq!(a.filter.orig.dst_port, 80);
        assert_eq!(a.filter.reply.src, Some(ip("10.0.0.2")));
        assert_eq!(a.filter.exact_orig(), None, "a reply tuple was given");
    }

    #[test]
    fn errors_have_ovs_messages() {
        let e = |args: &[&str]| parse_flush_conntrack(args).err().map(|e| e.to_string());
        assert_eq!(
            e(&["zone=65520", "ct_nw_src=10.0.0.1,ct_bogus=1"]).as_deref(),
            Some("invalid conntrack tuple field: ct_bogus")
        );
        assert_eq!(e(&["zone=x"]).as_deref(), Some("failed to parse zone"));
        assert_eq!(
            e(&["ct_tp_src=1"]).as_deref(),
            Some("port is set without protocol")
        );
        assert_eq!(
            e(&["ct_nw_src=10.0.0.1,ct_ipv6_dst=::1"]).as_deref(),
            Some("the L3 protocol does not match ::1")
        );
        assert_eq!(
            e(&["ct_nw_proto=6,icmp_type=8"]).as_deref(),
            Some("invalid L4 fields")
        );
        assert_eq!(
            e(&["ct_nw_src=10.0.0.1,ct_nw_src=10.0.0.3"]).as_deref(),
            Some("ct_nw_src is set multiple times")
        );
        assert_eq!(
            e(&["ct_nw_src="]).as_deref(),
            Some("field ct_nw_src missing value")
        );
        assert_eq!(
            e(&["ct_nw_proto=256"]).as_deref(),
            Some("failed to parse field ct_nw_proto")
        );
        assert_eq!(e(&["", "", "a", "b"]).as_deref(), Some("invalid arguments"));
        // One stray argument after the tuples is tolerated, as in OVS (it is the dp name slot).
        assert!(e(&["", "", "a"]).is_none());
    }

    #[test]
    fn icmp_fields_are_exact_ports_are_wildcards() {
        let Ok(a) =
            parse_flush_conntrack(&["ct_nw_proto=1,ct_nw_src=10.0.0.1,icmp_type=8,icmp_id=7"])
        else {
            panic!()
        };
        let e = CtEntry {
            orig: Tuple::icmp(ip("10.0.0.1"), ip("10.0.0.2"), proto::ICMP, 8, 0, 7),
            reply: Tuple::icmp(ip("10.0.0.2"), ip("10.0.0.1"), proto::ICMP, 0, 0, 7),
            zone: 0,
            mark: 0,
            label: 0,
            tcp: None,
            expires_in: std::time::Duration::ZERO,
        };
        // The reply tuple is empty: OVS compares its ICMP fields too (type 0, id 0 != 7).
        assert!(!a.filter.matches(&e));
        let Ok(b) = parse_flush_conntrack(&[
            "ct_nw_proto=1,ct_nw_src=10.0.0.1,icmp_type=8,icmp_id=7",
            "icmp_id=7",
        ]) else {
            panic!()
        };
        assert!(b.filter.matches(&e));
        let Ok(c) = parse_flush_conntrack(&["ct_nw_proto=17,ct_tp_dst=53"]) else {
            panic!()
        };
        let udp = CtEntry {
            orig: Tuple::ports(ip("10.0.0.1"), ip("10.0.0.2"), proto::UDP, 999, 53),
            reply: Tuple::ports(ip("10.0.0.2"), ip("10.0.0.1"), proto::UDP, 53, 999),
            ..e
        };
        assert!(c.filter.matches(&udp));
        assert!(!c.filter.matches(&e));
    }
}
