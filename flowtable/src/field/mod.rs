//! The field registry: every match and set field xvs understands, with its names (ovs-ofctl,
//! NXM, OXM), width, place in the [`FlowKey`], maskability, prerequisites, wire code points and
//! text form.
//!
//! Field values travel as `u128` in host order (a 48-bit MAC is the low 48 bits, an IPv4
//! address the low 32 bits), so every field up to `ct_label`/`xxreg` fits one type.
//!
//! Invariant: a field's value never has bits set above `n_bits`, except `vlan_vid`, whose value
//! carries the OpenFlow "VLAN present" bit 0x1000 above its 12 VID bits exactly as OpenFlow does.

mod table;

use crate::error::{ParseError, Result};
use crate::names::{format_port, parse_port, NameMap, Port};
use crate::value::{
    parse_eth_masked, parse_int_prefix, parse_ipv4_masked, parse_ipv6_masked, put_eth_masked,
    put_hex, put_ipv4_masked, put_ipv6_masked, IntError,
};
use std::fmt::Write as _;
use xvs_packet::key::{FlowKey, KeyField, KeyField128};

/// Identifies a field of the registry; an index into the static table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldId(u8);

/// An OXM/NXM header code point: class, field number and, for experimenter OXMs, the
/// experimenter id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The name OVS uses for this header, e.g. `NXM_NX_REG0` or `OXM_OF_IPV4_SRC`.
    pub name: &'static str,
    /// OXM class: 0x0000 NXM_OF, 0x0001 NXM_NX, 0x8000 OpenFlow basic, 0x8001 packet registers,
    /// 0xffff experimenter.
    pub class: u16,
    /// Field number within the class (7 bits on the wire).
    pub field: u8,
    /// Experimenter id when `class` is 0xffff.
    pub experimenter: Option<u32>,
}

/// How a field's value is written in text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Decimal integer.
    Decimal,
    /// Hexadecimal integer.
    Hex,
    /// `aa:bb:cc:dd:ee:ff`.
    Ethernet,
    /// Dotted quad.
    Ipv4,
    /// IPv6 text form.
    Ipv6,
    /// A 16-bit OpenFlow port (number or name).
    OfpPort,
    /// A 32-bit OpenFlow 1.1+ port (number or name).
    OfpPortOxm,
    /// `ct_state` flags (`+new+trk`, `est|trk`).
    CtState,
    /// TCP flags (`+syn-ack`).
    TcpFlags,
    /// Fragment handling (`no`, `first`, `later`, `yes`, `not_later`).
    Frag,
    /// Tunnel flags (`oam`, and in printed megaflows `df`, `csum`, `key`).
    TunFlags,
}

/// What a packet must be for a field to be meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prereq {
    /// Always meaningful.
    None,
    /// An Ethernet frame (always true for xvs).
    Ethernet,
    /// ARP or RARP.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// IPv4 or IPv6.
    IpAny,
    /// TCP over IPv4/IPv6.
    Tcp,
    /// UDP over IPv4/IPv6.
    Udp,
    /// SCTP over IPv4/IPv6.
    Sctp,
    /// ICMPv4.
    Icmpv4,
    /// ICMPv6.
    Icmpv6,
    /// ICMPv6 neighbour discovery (type 135 or 136, code 0).
    Nd,
    /// ND neighbour solicitation.
    NdSolicit,
    /// ND neighbour advertisement.
    NdAdvert,
    /// A tracked, valid connection (`ct_state=+trk-inv`).
    Ct,
    /// A VLAN header is present.
    VlanVid,
}

/// Where a field lives in the [`FlowKey`] and how its value maps onto the key bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loc {
    /// A plain key field of up to 64 bits (the value is truncated to its width).
    Word(KeyField),
    /// A 128-bit key field.
    Wide(KeyField128),
    /// `ct_state`: the low 8 bits of the key's `CT_STATE`.
    CtState,
    /// `in_port` (16-bit port view) over the key's 32-bit OpenFlow 1.1 `IN_PORT`.
    InPort16,
    /// `nw_tos`: the DSCP bits (0xfc) of `NW_TOS`, in place.
    NwTos,
    /// `ip_dscp`: the DSCP bits of `NW_TOS`, shifted right by 2.
    IpDscp,
    /// `nw_ecn`: the ECN bits (0x03) of `NW_TOS`.
    IpEcn,
    /// `dl_vlan`: the 12 VID bits of `VLAN_TCI` (matching implies a tag is present).
    DlVlan,
    /// `vlan_vid`: VID bits plus the present bit 0x1000 of `VLAN_TCI`.
    VlanVid,
    /// `dl_vlan_pcp`/`vlan_pcp`: the 3 PCP bits of `VLAN_TCI` (matching implies a tag).
    VlanPcp,
    /// `tun_metadata<n>`: the option word plus its present bit (writing the field, or matching
    /// it, makes the option present, as in OVS).
    TunMetadata(u8),
}

/// Static description of one field.
#[derive(Clone, Copy, Debug)]
pub struct FieldInfo {
    /// This field's id.
    pub id: FieldId,
    /// Canonical ovs-ofctl name, e.g. `ip_src`, `tcp_dst`, `reg0`.
    pub name: &'static str,
    /// Alternative ovs-ofctl name, e.g. `nw_src`, `tp_dst`, `dl_src`.
    pub extra_name: Option<&'static str>,
    /// Width in bytes on the wire.
    pub n_bytes: u8,
    /// Width in bits (subfield `[]` covers this many bits).
    pub n_bits: u16,
    /// Whether arbitrary bitwise masks are allowed in matches.
    pub maskable: bool,
    /// Text form of values.
    pub format: Format,
    /// Prerequisites for matching or setting the field.
    pub prereq: Prereq,
    /// Whether actions may write the field.
    pub writable: bool,
    /// NXM header, if the field has one.
    pub nxm: Option<Header>,
    /// OXM header, if the field has one.
    pub oxm: Option<Header>,
    /// Place in the flow key.
    pub loc: Loc,
}

impl FieldId {
    /// The static description of this field.
    pub fn info(self) -> &'static FieldInfo {
        // Ids are only created from indices into FIELDS, so this index is always in range; fall
        // back to the first entry rather than panicking if that invariant were ever broken.
        table::FIELDS
            .get(self.0 as usize)
            .unwrap_or(&table::FIELDS[0])
    }

    /// Canonical ovs-ofctl name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Width in bits.
    pub fn n_bits(self) -> u16 {
        self.info().n_bits
    }

    /// The largest value (all `n_bits` ones; for `vlan_vid` including the present bit).
    pub fn max_value(self) -> u128 {
        if self.info().loc == Loc::VlanVid {
            return 0x1fff;
        }
        ones(self.n_bits())
    }

    /// The exact-match mask: all ones over the field's bytes, as OVS's `union mf_value`
    /// holds it (for `vlan_vid` 0xffff, for `ip_dscp` 0xff).
    pub fn exact_mask(self) -> u128 {
        ones(u16::from(self.info().n_bytes) * 8)
    }

    /// Looks a field up by its ovs-ofctl name or alias (`nw_src`, `ip_src`, `tp_dst`, `reg3`).
    pub fn from_name(name: &str) -> Option<FieldId> {
        table::FIELDS
            .iter()
            .find(|f| f.name == name || f.extra_name == Some(name))
            .map(|f| f.id)
    }

    /// Looks a field up by NXM or OXM header name (`NXM_OF_IP_SRC`, `OXM_OF_IPV4_SRC`).
    pub fn from_header_name(name: &str) -> Option<FieldId> {
        table::FIELDS
            .iter()
            .find(|f| {
                f.nxm.is_some_and(|h| h.name == name) || f.oxm.is_some_and(|h| h.name == name)
            })
            .map(|f| f.id)
    }

    /// Looks a field up by any of its names: header names first, then ovs-ofctl names, as OVS
    /// does for subfields and `set_field`.
    pub fn from_any_name(name: &str) -> Option<FieldId> {
        Self::from_header_name(name).or_else(|| Self::from_name(name))
    }

    /// The header name OVS prints for this field in subfields and `move`/`load`: the NXM name
    /// when there is one, else the OXM name, else the plain name.
    pub fn header_name(self) -> &'static str {
        let i = self.info();
        i.nxm.or(i.oxm).map_or(i.name, |h| h.name)
    }

    /// Every field of the registry.
    pub fn all() -> impl Iterator<Item = FieldId> {
        table::FIELDS.iter().map(|f| f.id)
    }
}

/// `n` one bits.
pub(crate) fn ones(n: u16) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

const VLAN_CFI: u64 = 0x1000;
const VLAN_VID_MASK: u64 = 0x0fff;
const VLAN_PCP_MASK: u64 = 0xe000;

/// Reads the field at `loc` out of `key` (a value or a mask key).
pub(crate) fn read_loc(loc: Loc, key: &FlowKey) -> u128 {
    use xvs_packet::key::layout;
    match loc {
        Loc::Word(f) => u128::from(key.get(f)),
        Loc::Wide(f) => key.get128(f),
        Loc::CtState => u128::from(key.get(layout::CT_STATE) & 0xff),
        Loc::InPort16 => {
            let p = key.get(layout::IN_PORT) as u32;
            u128::from(Port::from_ofp11(p).map_or(p as u16, |p| p.0))
        }
        Loc::NwTos => u128::from(key.get(layout::NW_TOS) & 0xfc),
        Loc::IpDscp => u128::from((key.get(layout::NW_TOS) >> 2) & 0x3f),
        Loc::IpEcn => u128::from(key.get(layout::NW_TOS) & 0x03),
        Loc::DlVlan => u128::from(key.get(layout::VLAN_TCI) & VLAN_VID_MASK),
        Loc::VlanVid => u128::from(key.get(layout::VLAN_TCI) & (VLAN_VID_MASK | VLAN_CFI)),
        Loc::VlanPcp => u128::from((key.get(layout::VLAN_TCI) & VLAN_PCP_MASK) >> 13),
        Loc::TunMetadata(n) => u128::from(key.get(layout::tun_metadata(usize::from(n)))),
    }
}

/// Writes `v` into the bits of `loc` in `key`, leaving other bits alone.
pub(crate) fn write_loc(loc: Loc, key: &mut FlowKey, v: u128) {
    use xvs_packet::key::layout;
    let set_bits = |key: &mut FlowKey, f: KeyField, bits: u64, v: u64| {
        let old = key.get(f);
        key.set(f, (old & !bits) | (v & bits));
    };
    match loc {
        Loc::Word(f) => key.set(f, v as u64),
        Loc::Wide(f) => key.set128(f, v),
        Loc::CtState => set_bits(key, layout::CT_STATE, 0xff, v as u64),
        Loc::InPort16 => key.set(layout::IN_PORT, u64::from(Port(v as u16).to_ofp11())),
        Loc::NwTos => set_bits(key, layout::NW_TOS, 0xfc, v as u64),
        Loc::IpDscp => set_bits(key, layout::NW_TOS, 0xfc, (v as u64) << 2),
        Loc::IpEcn => set_bits(key, layout::NW_TOS, 0x03, v as u64),
        Loc::DlVlan => set_bits(key, layout::VLAN_TCI, VLAN_VID_MASK, v as u64),
        Loc::VlanVid => set_bits(key, layout::VLAN_TCI, VLAN_VID_MASK | VLAN_CFI, v as u64),
        Loc::VlanPcp => set_bits(key, layout::VLAN_TCI, VLAN_PCP_MASK, (v as u64) << 13),
        Loc::TunMetadata(n) => {
            let n = usize::from(n) % layout::N_TUN_METADATA;
            key.set(layout::tun_metadata(n), v as u64);
            set_bits(key, layout::TUN_METADATA_PRESENT, 1 << n, u64::MAX);
        }
    }
}

/// A run of bits of a field: `NXM_NX_REG0[0..3]`, `reg4[16]`, `NXM_OF_IP_DST[]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subfield {
    /// The field.
    pub field: FieldId,
    /// Offset of the least significant bit.
    pub ofs: u16,
    /// Number of bits (1..=field width).
    pub n_bits: u16,
}

impl Subfield {
    /// The whole of `field`.
    pub fn whole(field: FieldId) -> Self {
        Subfield {
            field,
            ofs: 0,
            n_bits: field.n_bits(),
        }
    }

    /// True when this covers the whole field.
    pub fn is_whole(&self) -> bool {
        self.ofs == 0 && self.n_bits == self.field.n_bits()
    }

    /// The mask of the covered bits within the field value.
    pub fn mask(&self) -> u128 {
        ones(self.n_bits) << self.ofs
    }

    /// Parses a subfield at the start of `s`, returning it and the rest (OVS
    /// `mf_parse_subfield__`). `s` is also used for error messages.
    pub fn parse_prefix(s: &str) -> Result<(Subfield, &str)> {
        let name_len = s.find(['[', '-']).unwrap_or(s.len());
        let mut name = &s[..name_len];
        if name.len() > 2 && name.ends_with("_W") {
            name = &name[..name.len() - 2];
        }
        let field = FieldId::from_any_name(name).ok_or_else(|| ParseError::UnknownField {
            input: s.to_owned(),
            name: s[..name_len].to_owned(),
        })?;
        let mut rest = &s[name_len..];
        let width = i64::from(field.n_bits());
        let (mut start, mut end) = (0i64, width - 1);
        if rest.starts_with('[') {
            let close = rest.find(']').ok_or_else(|| bracket_error(s))?;
            let inner = &rest[1..close];
            if inner.is_empty() {
            } else if let Some((a, b)) = inner.split_once("..") {
                start = parse_bit(a).ok_or_else(|| bracket_error(s))?;
                end = parse_bit(b).ok_or_else(|| bracket_error(s))?;
            } else {
                start = parse_bit(inner).ok_or_else(|| bracket_error(s))?;
                end = start;
            }
            rest = &rest[close + 1..];
        }
        if start > end {
            return Err(ParseError::invalid(format!(
                "{s}: starting bit {start} is after ending bit {end}"
            )));
        } else if start >= width {
            return Err(ParseError::invalid(format!(
                "{s}: starting bit {start} is not valid because field is only {width} bits wide"
            )));
        } else if end >= width {
            return Err(ParseError::invalid(format!(
                "{s}: ending bit {end} is not valid because field is only {width} bits wide"
            )));
        }
        Ok((
            Subfield {
                field,
                ofs: start as u16,
                n_bits: (end - start + 1) as u16,
            },
            rest,
        ))
    }

    /// Parses a complete subfield; trailing text is an error.
    pub fn parse(s: &str) -> Result<Subfield> {
        let (sf, rest) = Self::parse_prefix(s)?;
        if !rest.is_empty() {
            return Err(ParseError::invalid(
                "unexpected input following field syntax",
            ));
        }
        Ok(sf)
    }

    /// Appends the OVS text form (`NXM_NX_REG0[0..3]`, `NXM_NX_REG0[5]`, `NXM_OF_IP_DST[]`).
    pub fn format(&self, out: &mut String) {
        out.push_str(self.field.header_name());
        if self.is_whole() {
            out.push_str("[]");
        } else if self.n_bits == 1 {
            let _ = write!(out, "[{}]", self.ofs);
        } else {
            let _ = write!(out, "[{}..{}]", self.ofs, self.ofs + self.n_bits - 1);
        }
    }
}

impl std::fmt::Display for Subfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.format(&mut s);
        f.write_str(&s)
    }
}

fn bracket_error(s: &str) -> ParseError {
    ParseError::invalid(format!(
        "{s}: syntax error expecting [] or [<bit>] or [<start>..<end>]"
    ))
}

/// Reads a bit number as scanf `%d` would (optional sign, decimal digits).
fn parse_bit(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    s.parse().ok()
}

/// `ct_state` bit names, bit 0 first.
pub(crate) const CT_STATE_NAMES: [&str; 8] =
    ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];
/// TCP flag names, bit 0 first (OVS prints bits 9..11 as `[200]` etc.).
/// Tunnel flag names, bit 0 first (OVS `flow_tun_flag_to_string`); only `oam` is a public,
/// matchable bit.
pub(crate) const TUN_FLAG_NAMES: [&str; 4] = ["oam", "df", "csum", "key"];
pub(crate) const TCP_FLAG_NAMES: [&str; 12] = [
    "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]",
];

fn flag_name(names: &[&'static str], bit: u32) -> Option<&'static str> {
    names.get(bit.trailing_zeros() as usize).copied()
}

/// OVS `format_flags`: names joined by `del`, unknown bits as one hex number, `0` when empty.
pub(crate) fn format_flags(out: &mut String, names: &[&'static str], flags: u32, del: char) {
    if flags == 0 {
        out.push('0');
        return;
    }
    let mut bad = 0u32;
    let mut first = true;
    let mut f = flags;
    while f != 0 {
        let bit = f & f.wrapping_neg();
        match flag_name(names, bit) {
            Some(n) => {
                if !first {
                    out.push(del);
                }
                out.push_str(n);
                first = false;
            }
            None => bad |= bit,
        }
        f &= !bit;
    }
    if bad != 0 {
        if !first {
            out.push(del);
        }
        let _ = write!(out, "0x{bad:x}");
    }
}

/// OVS `format_flags_masked` without the name.
pub(crate) fn format_flags_masked(
    out: &mut String,
    names: &[&'static str],
    flags: u32,
    mask: u32,
    max_mask: u32,
) {
    if mask == max_mask {
        format_flags(out, names, flags, '|');
        return;
    }
    if mask == 0 {
        out.push_str("0/0");
        return;
    }
    let mut m = mask;
    while m != 0 {
        let bit = m & m.wrapping_neg();
        out.push(if flags & bit != 0 { '+' } else { '-' });
        out.push_str(flag_name(names, bit).unwrap_or("[Unknown]"));
        m &= !bit;
    }
}

/// OVS `parse_flags` with a mask: `0x21/0x21`, `+new-est`, or `new|trk` / a number (then the
/// mask is all ones). `allowed` limits the bits.
fn parse_flags(
    s: &str,
    names: &[&'static str],
    field_name: &str,
    allowed: u32,
) -> Result<(u32, u32)> {
    let unknown = |rest: &str| ParseError::invalid(format!("{rest}: unknown {field_name} flag(s)"));
    // Numeric "value/mask".
    if let Ok((v, rest)) = parse_c_int(s) {
        if let Some(m) = rest.strip_prefix('/') {
            if let Ok((mask, _)) = parse_c_int(m) {
                if v & !allowed != 0 || mask & !allowed != 0 {
                    return Err(unknown(s));
                }
                return Ok((v, mask));
            }
        }
    }
    if s.starts_with('+') || s.starts_with('-') {
        let (mut flags, mut mask) = (0u32, 0u32);
        let mut rest = s;
        while !rest.is_empty() {
            let set = match rest.as_bytes()[0] {
                b'+' => true,
                b'-' => false,
                _ => {
                    return Err(ParseError::invalid(format!(
                        "{rest}: {field_name} must be preceded by '+' (for SET) or '-' (NOT SET)"
                    )))
                }
            };
            rest = &rest[1..];
            let mut found = None;
            for (i, n) in names.iter().enumerate() {
                if let Some(after) = rest.strip_prefix(n) {
                    if after.is_empty() || after.starts_with('+') || after.starts_with('-') {
                        found = Some((1u32 << i, n.len()));
                        break;
                    }
                }
            }
            let Some((bit, len)) = found else {
                return Err(unknown(rest));
            };
            if mask & bit != 0 {
                return Err(ParseError::invalid(format!(
                    "{rest}: Each {field_name} flag can be specified only once"
                )));
            }
            if bit & allowed == 0 {
                return Err(unknown(rest));
            }
            if set {
                flags |= bit;
            }
            mask |= bit;
            rest = &rest[len..];
        }
        return Ok((flags, mask));
    }
    let mut result = 0u32;
    let mut rest = s;
    while !rest.is_empty() {
        if let Ok((v, after)) = parse_c_int(rest) {
            if after.len() != rest.len() {
                if v & !allowed != 0 {
                    return Err(unknown(rest));
                }
                result |= v;
                rest = after.strip_prefix('|').unwrap_or(after);
                continue;
            }
        }
        let mut found = None;
        for (i, n) in names.iter().enumerate() {
            if let Some(after) = rest.strip_prefix(n) {
                if after.is_empty() || after.starts_with('|') {
                    found = Some((1u32 << i, n.len()));
                    break;
                }
            }
        }
        let Some((bit, len)) = found else {
            return Err(unknown(rest));
        };
        if bit & allowed == 0 {
            return Err(unknown(rest));
        }
        result |= bit;
        rest = &rest[len..];
        rest = rest.strip_prefix('|').unwrap_or(rest);
    }
    Ok((result, u32::MAX))
}

/// scanf `%i` for a 32-bit value: returns the value and the rest; errors when no digits.
fn parse_c_int(s: &str) -> core::result::Result<(u32, &str), ()> {
    match parse_int_prefix(s, 8) {
        Ok((v, rest)) if rest.len() != s.len() => Ok((v as u32, rest)),
        _ => Err(()),
    }
}

/// Fragment names: (name, mask, value).
const FRAGS: [(&str, u8, u8); 7] = [
    ("no", 3, 0),
    ("first", 3, 1),
    ("later", 3, 3),
    ("no", 1, 0),
    ("yes", 1, 1),
    ("not_later", 2, 0),
    ("later", 2, 2),
];

/// Parses a value (and optional `/mask`) of `field` as `mf_parse` does. Returns (value, mask),
/// both limited to the field's whole-byte width (OVS's `union mf_value`); a missing mask is all
/// ones over those bytes. Values are not checked against the field's bit width here: matches
/// truncate (as OVS does) and `set_field` checks validity itself.
pub fn parse_field_value(field: FieldId, s: &str, names: &NameMap) -> Result<(u128, u128)> {
    parse_field_value_unmasked(field, s, names).map(|(v, m)| (v & m, m))
}

/// Like [`parse_field_value`] but leaves value bits outside the mask as written (what
/// `set_field` carries on the wire, where a switch rejects them).
pub(crate) fn parse_field_value_unmasked(
    field: FieldId,
    s: &str,
    names: &NameMap,
) -> Result<(u128, u128)> {
    let info = field.info();
    if s == "*" {
        return Ok((0, 0));
    }
    let (v, m) = match info.format {
        Format::Decimal | Format::Hex => parse_integer_masked(field, s)?,
        Format::OfpPort | Format::OfpPortOxm => {
            let p = parse_port(s, names).ok_or_else(|| {
                ParseError::BadPort(if info.format == Format::OfpPort {
                    format!("{s}: invalid or unknown port for {}", info.name)
                } else {
                    format!("{s}: port value out of range for {}", info.name)
                })
            })?;
            let v = if info.format == Format::OfpPort {
                u128::from(p.0)
            } else {
                u128::from(p.to_ofp11())
            };
            (v, ones(u16::from(info.n_bytes) * 8))
        }
        Format::CtState => {
            let (v, m) = parse_flags(s, &CT_STATE_NAMES, "ct_state", 0xff)?;
            (u128::from(v), u128::from(m))
        }
        Format::TcpFlags => {
            let (v, m) = parse_flags(s, &TCP_FLAG_NAMES, "TCP", 0x0fff)?;
            (u128::from(v), u128::from(m & 0xffff))
        }
        Format::TunFlags => {
            let (v, m) = parse_flags(s, &TUN_FLAG_NAMES, "tunnel", 0x1)?;
            (u128::from(v), u128::from(m & 0x1))
        }
        Format::Frag => {
            let (_, mask, value) = FRAGS
                .iter()
                .find(|(n, _, _)| *n == s)
                .ok_or_else(|| ParseError::invalid(format!("{s}: unknown fragment type")))?;
            (u128::from(*value), u128::from(*mask))
        }
        Format::Ethernet => {
            let (v, m) = parse_eth_masked(s).map_err(ParseError::Invalid)?;
            (u128::from(v), u128::from(m))
        }
        Format::Ipv4 => {
            let (v, m) = parse_ipv4_masked(s).map_err(ParseError::Invalid)?;
            (u128::from(v), u128::from(m))
        }
        Format::Ipv6 => parse_ipv6_masked(s).map_err(ParseError::Invalid)?,
    };
    let full = ones(u16::from(info.n_bytes) * 8);
    if !info.maskable && m != 0 && m & full != full {
        return Err(ParseError::invalid(format!(
            "{s}: invalid mask for field {}",
            info.name
        )));
    }
    Ok((v & full, m & full))
}

/// Integer `value[/mask]` for a decimal/hex field (OVS `mf_from_integer_string`).
fn parse_integer_masked(field: FieldId, s: &str) -> Result<(u128, u128)> {
    let info = field.info();
    let too_large = |what| ParseError::TooLarge {
        input: s.to_owned(),
        what,
        bytes: info.n_bytes,
        field: info.name,
    };
    let bad = |what: &str| ParseError::invalid(format!("{s}: bad syntax for {} {what}", info.name));
    let (v, rest) = parse_int_prefix(s, info.n_bytes).map_err(|e| match e {
        IntError::Range => too_large("value"),
        IntError::Syntax => bad("value"),
    })?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(bad("value"));
    }
    let full = ones(u16::from(info.n_bytes) * 8);
    let m = if let Some(ms) = rest.strip_prefix('/') {
        let (m, tail) = parse_int_prefix(ms, info.n_bytes).map_err(|e| match e {
            IntError::Range => too_large("mask"),
            IntError::Syntax => bad("mask"),
        })?;
        if !tail.is_empty() {
            return Err(bad("mask"));
        }
        m
    } else {
        full
    };
    Ok((v, m))
}

/// Appends a field value as OVS `mf_format` does (used by `set_field` and learn specs). `mask`
/// `None` or all ones means exact.
pub fn format_field_value(
    out: &mut String,
    field: FieldId,
    v: u128,
    mask: Option<u128>,
    names: &NameMap,
) {
    let info = field.info();
    let mask = match mask {
        Some(0) => {
            out.push_str("ANY");
            return;
        }
        Some(m) if m == ones(u16::from(info.n_bytes) * 8) => None,
        m => m,
    };
    match info.format {
        Format::OfpPort | Format::OfpPortOxm if mask.is_none() => {
            let p = if info.format == Format::OfpPort {
                Port(v as u16)
            } else {
                Port::from_ofp11(v as u32).unwrap_or(Port(v as u16))
            };
            format_port(out, p, names);
        }
        Format::Decimal | Format::OfpPort | Format::OfpPortOxm => {
            let _ = write!(out, "{v}");
            if let Some(m) = mask {
                out.push('/');
                put_hex(out, m, info.n_bytes);
            }
        }
        Format::Hex => {
            put_hex(out, v, info.n_bytes);
            if let Some(m) = mask {
                out.push('/');
                put_hex(out, m, info.n_bytes);
            }
        }
        Format::Ethernet => {
            put_eth_masked(out, v as u64, mask.map_or(0xffff_ffff_ffff, |m| m as u64))
        }
        Format::Ipv4 => put_ipv4_masked(out, v as u32, mask.map_or(u32::MAX, |m| m as u32)),
        Format::Ipv6 => put_ipv6_masked(out, v, mask.unwrap_or(u128::MAX)),
        Format::CtState => format_flags_masked(
            out,
            &CT_STATE_NAMES,
            v as u32,
            mask.map_or(u32::MAX, |m| m as u32),
            0xffff,
        ),
        Format::TcpFlags => format_flags_masked(
            out,
            &TCP_FLAG_NAMES,
            v as u32,
            mask.map_or(0xfff, |m| m as u32 & 0xfff),
            0xfff,
        ),
        Format::TunFlags => format_flags_masked(
            out,
            &TUN_FLAG_NAMES,
            v as u32,
            mask.map_or(0x1, |m| m as u32 & 0x1),
            0x1,
        ),
        Format::Frag => {
            let m = mask.map_or(3, |m| m as u8) & 3;
            let val = (v as u8) & m;
            match FRAGS.iter().find(|(_, fm, fv)| *fm == m && *fv == val) {
                Some((n, _, _)) => out.push_str(n),
                None => out.push_str("<error>"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        assert_eq!(FieldId::from_name("nw_src"), Some(FieldId::IPV4_SRC));
        assert_eq!(FieldId::from_name("ip_src"), Some(FieldId::IPV4_SRC));
        assert_eq!(FieldId::from_name("tp_dst"), Some(FieldId::TCP_DST));
        assert_eq!(FieldId::from_name("dl_src"), Some(FieldId::ETH_SRC));
        assert_eq!(
            FieldId::from_header_name("NXM_OF_IP_SRC"),
            Some(FieldId::IPV4_SRC)
        );
        assert_eq!(
            FieldId::from_header_name("OXM_OF_IPV4_SRC"),
            Some(FieldId::IPV4_SRC)
        );
        assert_eq!(
            FieldId::from_header_name("NXM_NX_XXREG3"),
            Some(FieldId::XXREG3)
        );
        assert_eq!(FieldId::from_name("reg15"), Some(FieldId::REG15));
        assert_eq!(FieldId::IPV4_SRC.header_name(), "NXM_OF_IP_SRC");
        assert_eq!(FieldId::VLAN_VID.header_name(), "OXM_OF_VLAN_VID");
        assert_eq!(FieldId::XREG1.header_name(), "OXM_OF_PKT_REG1");
        let reg0 = FieldId::REG0.info().nxm;
        assert_eq!(reg0.map(|h| (h.class, h.field)), Some((1, 0)));
        let ip = FieldId::IPV4_SRC.info().oxm;
        assert_eq!(ip.map(|h| (h.class, h.field)), Some((0x8000, 11)));
    }

    #[test]
    fn every_field_has_a_distinct_name_and_a_valid_location() {
        let mut seen = std::collections::HashSet::new();
        for f in FieldId::all() {
            assert!(seen.insert(f.name()), "{}", f.name());
            assert_eq!(f.info().id, f);
            assert!(f.n_bits() > 0 && f.n_bits() <= u16::from(f.info().n_bytes) * 8);
            let mut k = FlowKey::ZERO;
            write_loc(f.info().loc, &mut k, f.max_value());
            assert_eq!(
                read_loc(f.info().loc, &k) & f.max_value(),
                f.max_value() & read_loc(f.info().loc, &FlowKey::ALL_ONES),
                "{}",
                f.name()
            );
        }
    }

    #[test]
    fn subfields() {
        let (sf, rest) =
            Subfield::parse_prefix("NXM_NX_REG0[0..3]->x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (sf.field, sf.ofs, sf.n_bits, rest),
            (FieldId::REG0, 0, 4, "->x")
        );
        assert_eq!(
            Subfield::parse("reg4[16]").map(|s| s.to_string()).ok(),
            Some("NXM_NX_REG4[16]".into())
        );
        assert_eq!(
            Subfield::parse("NXM_NX_XXREG3[]").map(|s| s.n_bits).ok(),
            Some(128)
        );
        assert_eq!(
            Subfield::parse("NXM_NX_CT_LABEL[32..63]")
                .map(|s| s.to_string())
                .ok(),
            Some("NXM_NX_CT_LABEL[32..63]".into())
        );
        assert!(Subfield::parse("NXM_NX_REG0[0..32]").is_err());
        assert!(Subfield::parse("NXM_NX_REG0[3..1]").is_err());
        assert!(Subfield::parse("NXM_NX_REG0[").is_err());
        assert!(Subfield::parse("FOO[]").is_err());
    }

    #[test]
    fn values() {
        let n = NameMap::new();
        assert_eq!(
            parse_field_value(FieldId::TCP_DST, "0x1ffff", &n)
                .err()
                .map(|e| e.to_string()),
            Some("0x1ffff: value too large for 2-byte field tcp_dst".into())
        );
        assert_eq!(
            parse_field_value(FieldId::CT_STATE, "+new-est+trk", &n).ok(),
            Some((0x21, 0x23))
        );
        assert_eq!(
            parse_field_value(FieldId::CT_STATE, "0x21/0x21", &n).ok(),
            Some((0x21, 0x21))
        );
        assert_eq!(
            parse_field_value(FieldId::CT_STATE, "est|trk", &n).ok(),
            Some((0x22, 0xffff_ffff))
        );
        assert!(parse_field_value(FieldId::CT_STATE, "+foo", &n).is_err());
        assert_eq!(
            parse_field_value(FieldId::REG0, "0x10/0xf0", &n).ok(),
            Some((0x10, 0xf0))
        );
        assert_eq!(
            parse_field_value(FieldId::IPV4_DST, "10.0.0.1/24", &n).ok(),
            Some((0x0a00_0000, 0xffff_ff00))
        );
        let mut s = String::new();
        format_field_value(&mut s, FieldId::REG0, 0x10, Some(0x10), &n);
        assert_eq!(s, "0x10/0x10");
    }
}
