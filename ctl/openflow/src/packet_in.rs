//! Packet-ins (OpenFlow 1.5 `OFPT_PACKET_IN`, Nicira `NXT_PACKET_IN2`) and `NXT_RESUME`.
//!
//! `NXT_PACKET_IN2` and `NXT_RESUME` share one body: a list of properties (type, length,
//! value, padded to 8 bytes). The continuation is carried as opaque bytes: the switch that
//! built it is the only one that interprets them.

use crate::error::OfpError;
use crate::oxm;
use crate::wire::{pad8, patch_u16, put_u16, put_u32, put_u64, Reader};
use xvs_flowtable::{Action, Match};

/// `NXT_RESUME` subtype.
pub(crate) const NXT_RESUME: u32 = 28;
/// `NXT_PACKET_IN2` subtype.
pub(crate) const NXT_PACKET_IN2: u32 = 30;

const PACKET: u16 = 0;
const FULL_LEN: u16 = 1;
const BUFFER_ID: u16 = 2;
const TABLE_ID: u16 = 3;
const COOKIE: u16 = 4;
const REASON: u16 = 5;
const METADATA: u16 = 6;
const USERDATA: u16 = 7;
const CONTINUATION: u16 = 8;

/// A packet-in (or, for `NXT_RESUME`, the packet-in a controller hands back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    /// Buffered packet, [`crate::NO_BUFFER`] when none.
    pub buffer_id: u32,
    /// The packet's full length (`data` may be truncated to the controller's `max_len`).
    pub total_len: u32,
    /// `OFPR_*` reason code (0 no match, 1 action, ...).
    pub reason: u8,
    /// Table of the flow that sent the packet.
    pub table_id: u8,
    /// Cookie of the flow that sent the packet.
    pub cookie: u64,
    /// Pipeline fields: `in_port`, registers, metadata, tunnel and ct fields.
    pub metadata: Match,
    /// The packet (or its first bytes).
    pub data: Vec<u8>,
    /// `controller(userdata=...)` bytes; empty when none (`NXT_PACKET_IN2` only).
    pub userdata: Vec<u8>,
    /// Nested continuation properties of a paused translation; empty when not paused
    /// (`NXT_PACKET_IN2` and `NXT_RESUME` only).
    pub continuation: Vec<u8>,
}

/// OpenFlow 1.5 `OFPT_PACKET_IN` body (after the header).
pub(crate) fn put_packet_in(out: &mut Vec<u8>, p: &PacketIn) {
    put_u32(out, p.buffer_id);
    put_u16(out, u16::try_from(p.total_len).unwrap_or(u16::MAX));
    out.push(p.reason);
    out.push(p.table_id);
    put_u64(out, p.cookie);
    oxm::put_match_from(out, &p.metadata, oxm::Sender::Switch);
    put_u16(out, 0);
    out.extend_from_slice(&p.data);
}

/// OpenFlow 1.5 `OFPT_PACKET_IN` body.
pub(crate) fn pull_packet_in(r: &mut Reader<'_>) -> Result<PacketIn, OfpError> {
    let buffer_id = r.u32()?;
    let total_len = u32::from(r.u16()?);
    let reason = r.u8()?;
    let table_id = r.u8()?;
    let cookie = r.u64()?;
    let metadata = oxm::pull_match(r)?;
    r.skip(2)?;
    Ok(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        metadata,
        data: r.rest().to_vec(),
        userdata: Vec::new(),
        continuation: Vec::new(),
    })
}

fn prop_start(out: &mut Vec<u8>, ty: u16) -> usize {
    let s = out.len();
    put_u16(out, ty);
    put_u16(out, 0);
    s
}

fn prop_end(out: &mut Vec<u8>, s: usize) {
    let len = out.len() - s;
    patch_u16(out, s + 2, len);
    pad8(out, s);
}

fn prop(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let s = prop_start(out, ty);
    out.extend_from_slice(value);
    prop_end(out, s);
}

/// `NXT_PACKET_IN2` / `NXT_RESUME` properties (after the experimenter header). Optional
/// properties are left out when they hold their default (full length when not truncated,
/// no buffer, no userdata, no continuation).
pub(crate) fn put_packet_in2(out: &mut Vec<u8>, p: &PacketIn) {
    prop(out, PACKET, &p.data);
    if u32::try_from(p.data.len()).ok() != Some(p.total_len) {
        prop(out, FULL_LEN, &p.total_len.to_be_bytes());
    }
    if p.buffer_id != crate::NO_BUFFER {
        prop(out, BUFFER_ID, &p.buffer_id.to_be_bytes());
    }
    prop(out, TABLE_ID, &[p.table_id]);
    // 64-bit values sit 8-aligned: 4 bytes of padding after the property header.
    let s = prop_start(out, COOKIE);
    put_u32(out, 0);
    put_u64(out, p.cookie);
    prop_end(out, s);
    prop(out, REASON, &[p.reason]);
    let s = prop_start(out, METADATA);
    oxm::put_oxm_fields_from(out, &p.metadata, oxm::Sender::Switch);
    prop_end(out, s);
    if !p.userdata.is_empty() {
        prop(out, USERDATA, &p.userdata);
    }
    if !p.continuation.is_empty() {
        // A nested property list: 4 bytes of padding, then 8-aligned properties.
        let s = prop_start(out, CONTINUATION);
        put_u32(out, 0);
        out.extend_from_slice(&p.continuation);
        prop_end(out, s);
    }
}

/// `NXT_PACKET_IN2` / `NXT_RESUME` properties. Errors are OVS's for the same input: a
/// property shorter than its header or running past the message is `OFPBPC_BAD_LEN`, an
/// unknown one `OFPBPC_BAD_TYPE`, a fixed-size one of the wrong size `OFPBPC_BAD_LEN`; a
/// message without a packet is `OFPBRC_BAD_LEN`.
pub(crate) fn pull_packet_in2(r: &mut Reader<'_>) -> Result<PacketIn, OfpError> {
    let mut p = PacketIn {
        buffer_id: crate::NO_BUFFER,
        total_len: 0,
        reason: 0,
        table_id: 0,
        cookie: 0,
        metadata: Match::default(),
        data: Vec::new(),
        userdata: Vec::new(),
        continuation: Vec::new(),
    };
    let mut have_packet = false;
    let mut full_len = None;
    while !r.is_empty() {
        let mut h = Reader::new(r.rest(), OfpError::BAD_PROP_LEN);
        let ty = h.u16()?;
        let len = usize::from(h.u16()?);
        if len < 4 {
            return Err(OfpError::BAD_PROP_LEN);
        }
        let padded = len.div_ceil(8) * 8;
        let whole = if r.remaining() >= padded {
            r.bytes(padded)?
        } else if r.remaining() >= len {
            // OVS accepts a last property without its padding.
            r.bytes(r.remaining())?
        } else {
            return Err(OfpError::BAD_PROP_LEN);
        };
        let v = &whole[4..len];
        let fixed = |n: usize| {
            if v.len() == n {
                Ok(v)
            } else {
                Err(OfpError::BAD_PROP_LEN)
            }
        };
        match ty {
            PACKET => {
                p.data = v.to_vec();
                have_packet = true;
            }
            FULL_LEN => {
                let b = fixed(4)?;
                full_len = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            BUFFER_ID => {
                let b = fixed(4)?;
                p.buffer_id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            }
            TABLE_ID => p.table_id = fixed(1)?[0],
            REASON => p.reason = fixed(1)?[0],
            COOKIE => {
                let b = fixed(12)?;
                let mut c = [0; 8];
                c.copy_from_slice(&b[4..]);
                p.cookie = u64::from_be_bytes(c);
            }
            METADATA => p.metadata = oxm::pull_oxm_fields(v)?,
            USERDATA => p.userdata = v.to_vec(),
            CONTINUATION => {
                if v.len() < 4 {
                    return Err(OfpError::BAD_PROP_LEN);
                }
                p.continuation = v[4..].to_vec();
                pad_continuation(&mut p.continuation);
            }
            _ => return Err(OfpError::BAD_PROP_TYPE),
        }
    }
    if !have_packet {
        return Err(OfpError::BAD_LEN);
    }
    let len = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
    p.total_len = full_len.unwrap_or(len);
    Ok(p)
}

/// A continuation ends 8-aligned (its properties are padded): keep it so when the last
/// property came without its padding, so that encoding is canonical.
fn pad_continuation(c: &mut Vec<u8>) {
    while c.len() % 8 != 0 {
        c.push(0);
    }
}

/// `NXCPT_*` continuation properties (nested in `NXPINT_CONTINUATION`; OVS's numbering).
const CPT_BRIDGE: u16 = 0x8000;
const CPT_TABLE_ID: u16 = 0x8004;
const CPT_COOKIE: u16 = 0x8005;
const CPT_ACTIONS: u16 = 0x8006;
/// Ours (not OVS's): the paused flow's `goto_table`, an instruction the action list of
/// `CPT_ACTIONS` cannot hold.
const CPT_GOTO_TABLE: u16 = 0x80ff;

/// A paused translation: what NXT_RESUME needs to go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    /// The switch that paused (a resume elsewhere is stale).
    pub bridge: [u8; 16],
    /// Table of the paused flow.
    pub table_id: u8,
    /// Cookie of the paused flow.
    pub cookie: u64,
    /// Encoded OpenFlow actions that follow the pause (see [`crate::actions::put_actions`]).
    pub actions: Vec<u8>,
    /// The paused flow's `goto_table`, run after `actions`.
    pub goto_table: Option<u8>,
}

/// Encodes `c` as the nested properties of `NXPINT_CONTINUATION`.
pub fn put_continuation(out: &mut Vec<u8>, c: &Continuation) {
    prop(out, CPT_BRIDGE, &c.bridge);
    prop(out, CPT_TABLE_ID, &[c.table_id]);
    let s = prop_start(out, CPT_COOKIE);
    put_u32(out, 0);
    put_u64(out, c.cookie);
    prop_end(out, s);
    let s = prop_start(out, CPT_ACTIONS);
    put_u32(out, 0);
    out.extend_from_slice(&c.actions);
    prop_end(out, s);
    if let Some(t) = c.goto_table {
        prop(out, CPT_GOTO_TABLE, &[t]);
    }
}

/// Decodes a continuation and its actions. Errors: malformed properties are
/// `OFPBPC_BAD_LEN`/`OFPBPC_BAD_TYPE`, a missing bridge `NXR_STALE`, bad actions the
/// action decoder's error.
pub fn pull_continuation(buf: &[u8]) -> Result<(Continuation, Vec<Action>), OfpError> {
    let mut r = Reader::new(buf, OfpError::BAD_PROP_LEN);
    let mut c = Continuation {
        bridge: [0; 16],
        table_id: 0,
        cookie: 0,
        actions: Vec::new(),
        goto_table: None,
    };
    let mut have_bridge = false;
    while !r.is_empty() {
        let mut h = Reader::new(r.rest(), OfpError::BAD_PROP_LEN);
        let ty = h.u16()?;
        let len = usize::from(h.u16()?);
        if len < 4 {
            return Err(OfpError::BAD_PROP_LEN);
        }
        let padded = len.div_ceil(8) * 8;
        let whole = r.bytes(padded.min(r.remaining()))?;
        let v = whole.get(4..len).ok_or(OfpError::BAD_PROP_LEN)?;
        match ty {
            CPT_BRIDGE => {
                c.bridge = v.try_into().map_err(|_| OfpError::BAD_PROP_LEN)?;
                have_bridge = true;
            }
            CPT_TABLE_ID => {
                let [t] = v else {
                    return Err(OfpError::BAD_PROP_LEN);
                };
                c.table_id = *t;
            }
            CPT_COOKIE => {
                let b: [u8; 12] = v.try_into().map_err(|_| OfpError::BAD_PROP_LEN)?;
                let mut x = [0; 8];
                x.copy_from_slice(&b[4..]);
                c.cookie = u64::from_be_bytes(x);
            }
            CPT_GOTO_TABLE => {
                let [t] = v else {
                    return Err(OfpError::BAD_PROP_LEN);
                };
                c.goto_table = Some(*t);
            }
            CPT_ACTIONS => {
                c.actions = v.get(4..).ok_or(OfpError::BAD_PROP_LEN)?.to_vec();
            }
            _ => return Err(OfpError::BAD_PROP_TYPE),
        }
    }
    if !have_bridge {
        return Err(OfpError::NX_STALE);
    }
    let mut actions = crate::actions::pull_actions(&c.actions)?;
    if let Some(t) = c.goto_table {
        actions.push(Action::GotoTable(t));
    }
    Ok((c, actions))
}
