//! OXM/NXM match entries (`ofp_match` of type OXM) and field headers, mapped to and from
//! [`Match`] through the field registry's code points.
//!
//! A header is `class:16 | field:7 | has_mask:1 | length:8`; class 0xffff (experimenter)
//! carries a 32-bit experimenter id before the value. Fields are encoded in the order Open
//! vSwitch's `nx_put_match` uses for OpenFlow 1.5, so our bytes equal `ovs-ofctl`'s.

use crate::error::OfpError;
use crate::wire::{be_uint, pad8, patch_u16, put_u16, put_u32, put_uint, Reader};
use xvs_flowtable::field::{FieldId, Header};
use xvs_flowtable::{Match, Port};

/// Which header set a field is named by on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderStyle {
    /// OpenFlow 1.5: the OXM header when the field has one, else the NXM header.
    Oxm15,
    /// NXM first (OVS "version 0"), as `learn`, `output_reg` and `ct` zone use.
    Nxm,
}

/// The wire header of `field` (class, field number, experimenter) in `style`.
pub(crate) fn header_of(field: FieldId, style: HeaderStyle) -> Option<Header> {
    let info = field.info();
    if field == FieldId::TCP_FLAGS && style == HeaderStyle::Oxm15 {
        // OpenFlow 1.5 made tcp_flags a basic OXM (42); earlier versions used ONF's.
        return Some(Header {
            name: "OXM_OF_TCP_FLAGS",
            class: 0x8000,
            field: 42,
            experimenter: None,
        });
    }
    match style {
        HeaderStyle::Oxm15 => info.oxm.or(info.nxm),
        HeaderStyle::Nxm => info.nxm.or(info.oxm),
    }
}

/// The field with wire header (class, field, experimenter), if any.
pub(crate) fn field_of(class: u16, field: u8, experimenter: Option<u32>) -> Option<FieldId> {
    if class == 0x8000 && field == 42 {
        return Some(FieldId::TCP_FLAGS);
    }
    if experimenter.is_none() && field < 128 {
        if let Some(slot) = class_slot(class) {
            return direct_table()[slot][usize::from(field)];
        }
    }
    let same = |h: Option<Header>| {
        h.is_some_and(|h| h.class == class && h.field == field && h.experimenter == experimenter)
    };
    FieldId::all().find(|f| {
        let i = f.info();
        same(i.oxm) || same(i.nxm)
    })
}

/// The classes looked up by index: NXM_0, NXM_1, OpenFlow basic, packet registers.
const DIRECT_CLASSES: [u16; 4] = [0x0000, 0x0001, 0x8000, 0x8001];

fn class_slot(class: u16) -> Option<usize> {
    DIRECT_CLASSES.iter().position(|&c| c == class)
}

/// Field lookup by (class, field number) for the common classes, built once from the
/// registry with the same precedence as the linear search (the first field in registry order
/// wins), so decoding a match does not scan the registry for every entry.
fn direct_table() -> &'static [[Option<FieldId>; 128]; 4] {
    static TABLE: std::sync::OnceLock<[[Option<FieldId>; 128]; 4]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[None; 128]; 4];
        for f in FieldId::all() {
            let i = f.info();
            for h in [i.oxm, i.nxm].into_iter().flatten() {
                if h.experimenter.is_some() || h.field >= 128 {
                    continue;
                }
                if let Some(slot) = class_slot(h.class) {
                    let e = &mut t[slot][usize::from(h.field)];
                    if e.is_none() {
                        *e = Some(f);
                    }
                }
            }
        }
        t
    })
}

/// Appends a field header; `payload` is the value (+ mask) length in bytes.
pub(crate) fn put_header(out: &mut Vec<u8>, h: Header, has_mask: bool, payload: usize) {
    let exp_len = if h.experimenter.is_some() { 4 } else { 0 };
    let len = (payload + exp_len) as u32 & 0xff;
    put_u32(
        out,
        (u32::from(h.class) << 16)
            | (u32::from(h.field & 0x7f) << 9)
            | (u32::from(has_mask) << 8)
            | len,
    );
    if let Some(e) = h.experimenter {
        put_u32(out, e);
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawHeader {
    pub(crate) field: Option<FieldId>,
    pub(crate) has_mask: bool,
    /// Length of value (+ mask), without the experimenter id.
    pub(crate) payload: usize,
}

/// Reads a header (and the experimenter id of class 0xffff).
pub(crate) fn pull_header(r: &mut Reader<'_>) -> Result<RawHeader, OfpError> {
    let h = r.u32()?;
    let class = (h >> 16) as u16;
    let field = ((h >> 9) & 0x7f) as u8;
    let has_mask = h & 0x100 != 0;
    let mut payload = (h & 0xff) as usize;
    let mut experimenter = None;
    if class == 0xffff {
        experimenter = Some(r.u32()?);
        payload = payload.checked_sub(4).ok_or(OfpError::BAD_MATCH_LEN)?;
    }
    Ok(RawHeader {
        field: field_of(class, field, experimenter),
        has_mask,
        payload,
    })
}

/// The order of fields in OVS's `nx_put_match` for OpenFlow 1.5. Fields sharing key bits
/// (ip_src/arp_spa, tcp_src/icmp_type, ...) are told apart by their prerequisites.
const ORDER: &[FieldId] = &[
    FieldId::RECIRC_ID,
    FieldId::CONJ_ID,
    FieldId::IN_PORT_OXM,
    FieldId::ETH_SRC,
    FieldId::ETH_DST,
    FieldId::ETH_TYPE,
    FieldId::VLAN_VID,
    FieldId::VLAN_PCP,
    FieldId::IPV4_SRC,
    FieldId::IPV4_DST,
    FieldId::IPV6_SRC,
    FieldId::IPV6_DST,
    FieldId::IP_FRAG,
    FieldId::IP_DSCP_SHIFTED,
    FieldId::IP_ECN,
    FieldId::IP_TTL,
    FieldId::IPV6_LABEL,
    FieldId::IP_PROTO,
    FieldId::TCP_SRC,
    FieldId::TCP_DST,
    FieldId::TCP_FLAGS,
    FieldId::UDP_SRC,
    FieldId::UDP_DST,
    FieldId::SCTP_SRC,
    FieldId::SCTP_DST,
    FieldId::ICMPV4_TYPE,
    FieldId::ICMPV4_CODE,
    FieldId::ICMPV6_TYPE,
    FieldId::ICMPV6_CODE,
    FieldId::ND_TARGET,
    FieldId::ND_SLL,
    FieldId::ND_TLL,
    FieldId::ARP_OP,
    FieldId::ARP_SPA,
    FieldId::ARP_TPA,
    FieldId::ARP_SHA,
    FieldId::ARP_THA,
    FieldId::TUN_ID,
    FieldId::TUN_SRC,
    FieldId::TUN_DST,
    FieldId::TUN_IPV6_SRC,
    FieldId::TUN_IPV6_DST,
    FieldId::TUN_FLAGS,
    FieldId::TUN_METADATA0,
    FieldId::TUN_METADATA1,
    FieldId::TUN_METADATA2,
    FieldId::TUN_METADATA3,
    FieldId::XREG0,
    FieldId::XREG1,
    FieldId::XREG2,
    FieldId::XREG3,
    FieldId::XREG4,
    FieldId::XREG5,
    FieldId::XREG6,
    FieldId::XREG7,
    FieldId::PKT_MARK,
    FieldId::CT_STATE,
    FieldId::CT_ZONE,
    FieldId::CT_MARK,
    FieldId::CT_LABEL,
    FieldId::CT_NW_SRC,
    FieldId::CT_IPV6_SRC,
    FieldId::CT_NW_DST,
    FieldId::CT_IPV6_DST,
    FieldId::CT_NW_PROTO,
    FieldId::CT_TP_SRC,
    FieldId::CT_TP_DST,
];

/// True when `mask` is an exact match for `field` (sent without a mask).
fn is_exact(field: FieldId, mask: u128) -> bool {
    let info = field.info();
    if field == FieldId::TUN_FLAGS {
        // One public bit in a 16-bit field: `+oam` goes with the mask 0x0001, as OVS sends it.
        return mask == 0xffff;
    }
    !info.maskable
        || mask == field.max_value()
        || mask == field.exact_mask()
        || (field == FieldId::IP_FRAG && mask & 3 == 3)
}

/// Bytes needed to hold `v` (at least 1).
fn bytes_needed(v: u128) -> usize {
    (16 - v.leading_zeros() as usize / 8).max(1)
}

/// Appends a `tun_metadata<n>` entry. The field has a variable length; as `ovs-ofctl` does
/// (`mf_field_len`), it is sent with the fewest bytes that hold the value (and mask), and an
/// exact match (all ones over a 4- or 8-byte option) without a mask.
pub(crate) fn put_tun_metadata(out: &mut Vec<u8>, h: Header, value: u128, mask: u128) {
    if mask == u128::from(u64::MAX) || mask == u128::from(u32::MAX) {
        put_entry(out, h, bytes_needed(value), value, None);
    } else {
        put_entry(out, h, bytes_needed(value | mask), value, Some(mask));
    }
}

/// Appends one entry (header, value, optional mask).
pub(crate) fn put_entry(
    out: &mut Vec<u8>,
    h: Header,
    n_bytes: usize,
    value: u128,
    mask: Option<u128>,
) {
    match mask {
        None => {
            put_header(out, h, false, n_bytes);
            put_uint(out, value, n_bytes);
        }
        Some(m) => {
            put_header(out, h, true, 2 * n_bytes);
            put_uint(out, value, n_bytes);
            put_uint(out, m, n_bytes);
        }
    }
}

/// Who sends a match: the lengths of the variable-length `tun_metadata<n>` fields differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A controller (flow mods, requests): the fewest bytes holding value and mask, as
    /// `ovs-ofctl` sends them (it has no option map).
    Controller,
    /// The switch (flow statistics, packet-ins): the option's mapped length, as OVS sends
    /// them. xvs maps 4- or 8-byte options; value and mask that fit 4 bytes go as 4.
    Switch,
}

/// Appends the OXM entries of `m` (no `ofp_match` framing), as a controller sends them.
pub fn put_oxm_fields(out: &mut Vec<u8>, m: &Match) {
    put_oxm_fields_from(out, m, Sender::Controller);
}

/// Appends the OXM entries of `m` (no `ofp_match` framing) as `sender` sends them.
pub fn put_oxm_fields_from(out: &mut Vec<u8>, m: &Match, sender: Sender) {
    for &f in ORDER {
        let (v, mask) = m.get(f);
        if mask == 0 || !m.prereqs_ok(f.info().prereq) {
            continue;
        }
        // As OVS: ct_nw_proto and the ct_tp_* fields only with a non-zero ct_nw_proto.
        if matches!(
            f,
            FieldId::CT_NW_PROTO | FieldId::CT_TP_SRC | FieldId::CT_TP_DST
        ) && m.get(FieldId::CT_NW_PROTO).0 == 0
        {
            continue;
        }
        let Some(h) = header_of(f, HeaderStyle::Oxm15) else {
            continue;
        };
        let n = usize::from(f.info().n_bytes);
        if FieldId::TUN_METADATA.contains(&f) {
            match sender {
                Sender::Controller => put_tun_metadata(out, h, v, mask),
                Sender::Switch => {
                    let n = if (v | mask) >> 32 == 0 { 4 } else { 8 };
                    let ones = if n == 4 {
                        u128::from(u32::MAX)
                    } else {
                        u128::from(u64::MAX)
                    };
                    let exact = mask == ones || mask == u128::from(u64::MAX);
                    put_entry(out, h, n, v, (!exact).then_some(mask));
                }
            }
            continue;
        }
        let (value, mask) = if f == FieldId::IN_PORT_OXM {
            // The key holds the 32-bit OpenFlow 1.1 port already.
            (v, None)
        } else if is_exact(f, mask) {
            (v, None)
        } else {
            (v, Some(mask))
        };
        put_entry(out, h, n, value, mask);
    }
}

/// Appends an OpenFlow 1.5 `ofp_match` (type OXM, length, entries, padding to 8), as a
/// controller sends it.
pub fn put_match(out: &mut Vec<u8>, m: &Match) {
    put_match_from(out, m, Sender::Controller);
}

/// Appends an OpenFlow 1.5 `ofp_match` as `sender` sends it.
pub fn put_match_from(out: &mut Vec<u8>, m: &Match, sender: Sender) {
    let start = out.len();
    put_u16(out, 1);
    put_u16(out, 0);
    put_oxm_fields_from(out, m, sender);
    let len = out.len() - start;
    patch_u16(out, start + 2, len);
    pad8(out, start);
}

/// Decodes the OXM entries in `buf` into a match, checking lengths, masks, duplicates, values
/// and prerequisites as OVS's `nx_pull_match` does.
pub fn pull_oxm_fields(buf: &[u8]) -> Result<Match, OfpError> {
    let mut r = Reader::new(buf, OfpError::BAD_MATCH_LEN);
    let mut m = Match::catch_all();
    // Fields seen so far (no allocation: a match names each of the 87 fields once at most).
    let mut seen = [None::<FieldId>; 96];
    let mut n_seen = 0;
    while !r.is_empty() {
        let mut peek = r.clone();
        if peek.u32()? == OXM_PACKET_TYPE {
            // OVS may send `packet_type=(0,0)` (Ethernet, the only kind we carry): a no-op.
            r.skip(4)?;
            if r.u32()? != 0 {
                return Err(OfpError::BAD_VALUE);
            }
            continue;
        }
        let h = pull_header(&mut r)?;
        let payload = r.bytes(h.payload)?;
        let f = h.field.ok_or(OfpError::BAD_FIELD)?;
        let info = f.info();
        let mut n = usize::from(info.n_bytes);
        let tun_metadata = FieldId::TUN_METADATA.contains(&f);
        if tun_metadata {
            // Variable length (OVS: up to 124 bytes); xvs holds at most 8 of them.
            n = h.payload / (1 + usize::from(h.has_mask));
            if n == 0 || n > 124 {
                return Err(OfpError::BAD_MATCH_LEN);
            }
            let value_mask = (&payload[..n], &payload[n..]);
            let wide = |b: &[u8]| b.len() > 8 && b[..b.len() - 8].iter().any(|&x| x != 0);
            if wide(value_mask.0) || wide(value_mask.1) {
                return Err(OfpError::INVALID_TLV_FIELD);
            }
        }
        if h.payload != n * (1 + usize::from(h.has_mask)) {
            return Err(OfpError::BAD_MATCH_LEN);
        }
        if h.has_mask && !info.maskable {
            return Err(OfpError::BAD_MASK);
        }
        if seen[..n_seen].contains(&Some(f)) {
            return Err(OfpError::DUP_FIELD);
        }
        *seen.get_mut(n_seen).ok_or(OfpError::BAD_MATCH_LEN)? = Some(f);
        n_seen += 1;
        let value = be_uint(&payload[..n]);
        let mask = if h.has_mask {
            be_uint(&payload[n..])
        } else {
            f.exact_mask()
        };
        if f == FieldId::IN_PORT_OXM {
            if Port::from_ofp11(value as u32).is_none() {
                return Err(OfpError::BAD_VALUE);
            }
        } else if value & mask & !f.max_value() != 0 {
            return Err(OfpError::BAD_VALUE);
        }
        if !m.prereqs_ok(info.prereq) {
            return Err(OfpError::BAD_PREREQ);
        }
        m.set(f, value, mask);
    }
    Ok(m)
}

/// `OXM_OF_PACKET_TYPE` (class 0x8000, field 44, 4 bytes, no mask).
const OXM_PACKET_TYPE: u32 = 0x8000_5804;

/// Reads an OpenFlow 1.5 `ofp_match` (with its padding) from `r`.
pub(crate) fn pull_match(r: &mut Reader<'_>) -> Result<Match, OfpError> {
    let ty = r.u16()?;
    let len = usize::from(r.u16()?);
    if ty != 1 {
        return Err(OfpError::BAD_MATCH_TYPE);
    }
    if len < 4 {
        return Err(OfpError::BAD_MATCH_LEN);
    }
    let body = r.bytes(len - 4).map_err(|_| OfpError::BAD_MATCH_LEN)?;
    let padded = len.div_ceil(8) * 8;
    r.skip(padded - len).map_err(|_| OfpError::BAD_MATCH_LEN)?;
    pull_oxm_fields(body)
}
