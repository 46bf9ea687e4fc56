//! OpenFlow 1.5 actions and instructions plus the Nicira (NX) extension actions, mapped to and
//! from [`Action`].
//!
//! Encodings follow what Open vSwitch 3.1 sends for OpenFlow 1.5: `set_field`/`load` as
//! (masked) `OFPAT_SET_FIELD`, `move` as `OFPAT_COPY_FIELD`, `meter` as the 1.5 meter action,
//! everything else Antrea uses as `NXAST_*`.

use crate::error::OfpError;
use crate::oxm::{header_of, pull_header, put_entry, put_header, HeaderStyle};
use crate::wire::{be_uint, pad8, patch_u16, put_u16, put_u32, put_u64, put_uint, Reader};
use xvs_flowtable::action::{
    Controller, Ct, CtZone, Learn, LearnSpec, Nat, NatAddrs, NatKind, PacketInReason,
};
use xvs_flowtable::field::{FieldId, Subfield};
use xvs_flowtable::{Action, Port};

/// Nicira's experimenter id.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;

const OFPAT_OUTPUT: u16 = 0;
const OFPAT_PUSH_VLAN: u16 = 17;
const OFPAT_POP_VLAN: u16 = 18;
const OFPAT_GROUP: u16 = 22;
const OFPAT_SET_NW_TTL: u16 = 23;
const OFPAT_DEC_NW_TTL: u16 = 24;
const OFPAT_SET_FIELD: u16 = 25;
const OFPAT_COPY_FIELD: u16 = 28;
const OFPAT_METER: u16 = 29;
const OFPAT_EXPERIMENTER: u16 = 0xffff;

const NXAST_RESUBMIT: u16 = 1;
const NXAST_NOTE: u16 = 8;
const NXAST_RESUBMIT_TABLE: u16 = 14;
const NXAST_OUTPUT_REG: u16 = 15;
const NXAST_LEARN: u16 = 16;
const NXAST_CONTROLLER: u16 = 20;
const NXAST_CONJUNCTION: u16 = 34;
const NXAST_CT: u16 = 35;
const NXAST_NAT: u16 = 36;
const NXAST_CONTROLLER2: u16 = 37;
const NXAST_CT_CLEAR: u16 = 43;
const NXAST_RESUBMIT_TABLE_CT: u16 = 44;
const NXAST_LEARN2: u16 = 45;

const OFPIT_GOTO_TABLE: u16 = 1;
const OFPIT_WRITE_METADATA: u16 = 2;
const OFPIT_WRITE_ACTIONS: u16 = 3;
const OFPIT_APPLY_ACTIONS: u16 = 4;
const OFPIT_CLEAR_ACTIONS: u16 = 5;
const OFPIT_METER: u16 = 6;

/// `ofs << 6 | (n_bits - 1)`, NXM's packed subfield form.
fn ofs_nbits(sf: &Subfield) -> u16 {
    (sf.ofs << 6) | (sf.n_bits.saturating_sub(1) & 0x3f)
}

fn subfield_from(field: FieldId, ofs: u16, n_bits: u16) -> Result<Subfield, OfpError> {
    if n_bits == 0 || u32::from(ofs) + u32::from(n_bits) > u32::from(field.n_bits()) {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    Ok(Subfield { field, ofs, n_bits })
}

fn subfield_from_ofs_nbits(field: FieldId, v: u16) -> Result<Subfield, OfpError> {
    subfield_from(field, v >> 6, (v & 0x3f) + 1)
}

/// The length a field header carries: the field's width, or for the variable-length
/// `tun_metadata<n>` OVS's maximum (124), as `ovs-ofctl` sends it in `move`.
fn header_len(field: FieldId) -> usize {
    if FieldId::TUN_METADATA.contains(&field) {
        124
    } else {
        usize::from(field.info().n_bytes)
    }
}

fn put_nxm_header(out: &mut Vec<u8>, field: FieldId) {
    if let Some(h) = header_of(field, HeaderStyle::Nxm) {
        put_header(out, h, false, header_len(field));
    } else {
        put_u32(out, 0);
    }
}

fn pull_field(r: &mut Reader<'_>) -> Result<FieldId, OfpError> {
    let h = pull_header(r)?;
    if h.has_mask {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    h.field.ok_or(OfpError::BAD_ACTION_ARGUMENT)
}

/// Starts an action: type and a length placeholder; returns the start offset.
fn begin(out: &mut Vec<u8>, ty: u16) -> usize {
    let start = out.len();
    put_u16(out, ty);
    put_u16(out, 0);
    start
}

/// Starts a Nicira action (type, length, vendor, subtype).
fn begin_nx(out: &mut Vec<u8>, subtype: u16) -> usize {
    let start = begin(out, OFPAT_EXPERIMENTER);
    put_u32(out, NX_VENDOR_ID);
    put_u16(out, subtype);
    start
}

/// Pads to 8 and writes the length of the action that begun at `start`.
fn finish(out: &mut Vec<u8>, start: usize) {
    pad8(out, start);
    let len = out.len() - start;
    patch_u16(out, start + 2, len);
}

/// Appends the OpenFlow 1.5 encoding of the actions in `actions` (without `goto_table`).
pub fn put_actions(out: &mut Vec<u8>, actions: &[Action]) {
    for a in actions {
        put_action(out, a);
    }
}

/// Appends one action. [`Action::GotoTable`] is an instruction and is skipped here.
pub fn put_action(out: &mut Vec<u8>, a: &Action) {
    match a {
        Action::Output { port, max_len } => {
            let s = begin(out, OFPAT_OUTPUT);
            put_u32(out, port.to_ofp11());
            put_u16(out, *max_len);
            finish(out, s);
        }
        Action::OutputReg { src, max_len } => {
            let s = begin_nx(out, NXAST_OUTPUT_REG);
            put_u16(out, ofs_nbits(src));
            put_nxm_header(out, src.field);
            put_u16(out, *max_len);
            out.extend_from_slice(&[0; 6]);
            finish(out, s);
        }
        Action::Controller(c) => put_controller(out, c),
        Action::Group(g) => {
            let s = begin(out, OFPAT_GROUP);
            put_u32(out, *g);
            finish(out, s);
        }
        Action::Meter(m) => {
            let s = begin(out, OFPAT_METER);
            put_u32(out, *m);
            finish(out, s);
        }
        Action::Resubmit {
            in_port,
            table,
            with_ct_orig,
        } => {
            // OVS sends NXAST_RESUBMIT_TABLE even without a table (255 = current).
            let subtype = if *with_ct_orig {
                NXAST_RESUBMIT_TABLE_CT
            } else {
                NXAST_RESUBMIT_TABLE
            };
            let s = begin_nx(out, subtype);
            put_u16(out, in_port.0);
            out.push(table.unwrap_or(255));
            finish(out, s);
        }
        Action::SetField { field, value, mask } => {
            let s = begin(out, OFPAT_SET_FIELD);
            if let Some(h) = header_of(*field, HeaderStyle::Oxm15) {
                if FieldId::TUN_METADATA.contains(field) {
                    crate::oxm::put_tun_metadata(out, h, *value, *mask);
                } else {
                    let n = usize::from(field.info().n_bytes);
                    let m = (*mask != field.exact_mask()).then_some(*mask);
                    put_entry(out, h, n, *value, m);
                }
            }
            finish(out, s);
        }
        Action::Move { src, dst } => {
            let s = begin(out, OFPAT_COPY_FIELD);
            put_u16(out, src.n_bits);
            put_u16(out, src.ofs);
            put_u16(out, dst.ofs);
            put_u16(out, 0);
            for f in [src.field, dst.field] {
                if let Some(h) = header_of(f, HeaderStyle::Oxm15) {
                    put_header(out, h, false, header_len(f));
                }
            }
            finish(out, s);
        }
        Action::DecTtl => {
            let s = begin(out, OFPAT_DEC_NW_TTL);
            finish(out, s);
        }
        Action::SetNwTtl(t) => {
            let s = begin(out, OFPAT_SET_NW_TTL);
            out.push(*t);
            finish(out, s);
        }
        Action::PushVlan(e) => {
            let s = begin(out, OFPAT_PUSH_VLAN);
            put_u16(out, *e);
            finish(out, s);
        }
        Action::PopVlan => {
            let s = begin(out, OFPAT_POP_VLAN);
            finish(out, s);
        }
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            let s = begin_nx(out, NXAST_CONJUNCTION);
            out.push(clause.saturating_sub(1));
            out.push(*n_clauses);
            put_u32(out, *id);
            finish(out, s);
        }
        Action::Learn(l) => put_learn(out, l),
        Action::Note(bytes) => {
            let s = begin_nx(out, NXAST_NOTE);
            out.extend_from_slice(bytes);
            finish(out, s);
        }
        Action::Ct(ct) => put_ct(out, ct),
        Action::CtClear => {
            let s = begin_nx(out, NXAST_CT_CLEAR);
            finish(out, s);
        }
        Action::GotoTable(_) => {}
    }
}

fn put_controller(out: &mut Vec<u8>, c: &Controller) {
    let reason = reason_code(c.reason);
    if c.userdata.is_empty() && !c.pause && c.meter_id.is_none() {
        let s = begin_nx(out, NXAST_CONTROLLER);
        put_u16(out, c.max_len);
        put_u16(out, c.controller_id);
        out.push(reason);
        finish(out, s);
        return;
    }
    let s = begin_nx(out, NXAST_CONTROLLER2);
    out.extend_from_slice(&[0; 6]);
    let prop = |out: &mut Vec<u8>, ty: u16, body: &[u8]| {
        let ps = out.len();
        put_u16(out, ty);
        put_u16(out, (4 + body.len()) as u16);
        out.extend_from_slice(body);
        pad8(out, ps);
    };
    // 16-bit properties carry two bytes of padding inside their length, as OVS's
    // `ofpprop_put_u16` writes them.
    if c.max_len != u16::MAX {
        let v = c.max_len.to_be_bytes();
        prop(out, 0, &[v[0], v[1], 0, 0]);
    }
    if c.controller_id != 0 {
        let v = c.controller_id.to_be_bytes();
        prop(out, 1, &[v[0], v[1], 0, 0]);
    }
    if c.reason != PacketInReason::Action {
        prop(out, 2, &[reason]);
    }
    if !c.userdata.is_empty() {
        prop(out, 3, &c.userdata);
    }
    if c.pause {
        prop(out, 4, &[]);
    }
    if let Some(m) = c.meter_id {
        prop(out, 5, &m.to_be_bytes());
    }
    finish(out, s);
}

fn reason_code(r: PacketInReason) -> u8 {
    match r {
        PacketInReason::NoMatch => 0,
        PacketInReason::Action => 1,
        PacketInReason::InvalidTtl => 2,
        PacketInReason::ActionSet => 3,
        PacketInReason::Group => 4,
        PacketInReason::PacketOut => 5,
    }
}

fn reason_from(c: u8) -> Result<PacketInReason, OfpError> {
    Ok(match c {
        0 => PacketInReason::NoMatch,
        1 => PacketInReason::Action,
        2 => PacketInReason::InvalidTtl,
        3 => PacketInReason::ActionSet,
        4 => PacketInReason::Group,
        5 => PacketInReason::PacketOut,
        _ => return Err(OfpError::BAD_ACTION_ARGUMENT),
    })
}

const LEARN_SEND_FLOW_REM: u16 = 1;
const LEARN_DELETE_LEARNED: u16 = 2;
const LEARN_WRITE_RESULT: u16 = 4;

fn put_learn(out: &mut Vec<u8>, l: &Learn) {
    let v2 = l.limit != 0 || l.result_dst.is_some();
    let s = begin_nx(out, if v2 { NXAST_LEARN2 } else { NXAST_LEARN });
    put_u16(out, l.idle_timeout);
    put_u16(out, l.hard_timeout);
    put_u16(out, l.priority);
    put_u64(out, l.cookie);
    let mut flags = 0;
    if l.send_flow_rem {
        flags |= LEARN_SEND_FLOW_REM;
    }
    if l.delete_learned {
        flags |= LEARN_DELETE_LEARNED;
    }
    if l.result_dst.is_some() {
        flags |= LEARN_WRITE_RESULT;
    }
    put_u16(out, flags);
    out.push(l.table);
    out.push(0);
    put_u16(out, l.fin_idle_timeout);
    put_u16(out, l.fin_hard_timeout);
    if v2 {
        put_u32(out, l.limit);
        put_u16(out, l.result_dst.map_or(0, |d| d.ofs));
        put_u16(out, 0);
        if let Some(d) = l.result_dst {
            put_nxm_header(out, d.field);
        }
    }
    for spec in &l.specs {
        let (hdr, n_bits) = match spec {
            LearnSpec::MatchField { dst, .. } => (0, dst.n_bits),
            LearnSpec::MatchImm { dst, .. } => (1 << 13, dst.n_bits),
            LearnSpec::LoadField { dst, .. } => (1 << 11, dst.n_bits),
            LearnSpec::LoadImm { dst, .. } => ((1 << 13) | (1 << 11), dst.n_bits),
            LearnSpec::Output { src } => (2 << 11, src.n_bits),
        };
        put_u16(out, hdr | (n_bits & 0x7ff));
        match spec {
            LearnSpec::MatchField { src, .. }
            | LearnSpec::LoadField { src, .. }
            | LearnSpec::Output { src } => {
                put_nxm_header(out, src.field);
                put_u16(out, src.ofs);
            }
            LearnSpec::MatchImm { value, .. } | LearnSpec::LoadImm { value, .. } => {
                let n = 2 * usize::from(n_bits).div_ceil(16);
                put_uint(out, *value, n);
            }
        }
        match spec {
            LearnSpec::MatchField { dst, .. }
            | LearnSpec::MatchImm { dst, .. }
            | LearnSpec::LoadField { dst, .. }
            | LearnSpec::LoadImm { dst, .. } => {
                put_nxm_header(out, dst.field);
                put_u16(out, dst.ofs);
            }
            LearnSpec::Output { .. } => {}
        }
    }
    finish(out, s);
}

const CT_COMMIT: u16 = 1;
const CT_FORCE: u16 = 2;

fn put_ct(out: &mut Vec<u8>, ct: &Ct) {
    let s = begin_nx(out, NXAST_CT);
    let mut flags = 0;
    if ct.commit {
        flags |= CT_COMMIT;
    }
    if ct.force {
        flags |= CT_FORCE;
    }
    put_u16(out, flags);
    match ct.zone {
        CtZone::Imm(z) => {
            put_u32(out, 0);
            put_u16(out, z);
        }
        CtZone::Field(sf) => {
            put_nxm_header(out, sf.field);
            put_u16(out, ofs_nbits(&sf));
        }
    }
    out.push(ct.table.unwrap_or(255));
    out.extend_from_slice(&[0; 3]);
    put_u16(out, ct.alg);
    if let Some(nat) = &ct.nat {
        put_nat(out, nat);
    }
    put_actions(out, &ct.exec);
    finish(out, s);
}

fn put_nat(out: &mut Vec<u8>, nat: &Nat) {
    let s = begin_nx(out, NXAST_NAT);
    put_u16(out, 0);
    let mut flags = 0u16;
    match nat.kind {
        Some(NatKind::Src) => flags |= 1,
        Some(NatKind::Dst) => flags |= 2,
        None => {}
    }
    if nat.persistent {
        flags |= 4;
    }
    if nat.hash {
        flags |= 8;
    }
    if nat.random {
        flags |= 16;
    }
    put_u16(out, flags);
    let present_at = out.len();
    put_u16(out, 0);
    let mut present = 0u16;
    match nat.addrs {
        Some(NatAddrs::V4 { min, max }) => {
            if min != 0 {
                present |= 1;
                put_u32(out, min);
            }
            if max != 0 {
                present |= 2;
                put_u32(out, max);
            }
        }
        Some(NatAddrs::V6 { min, max }) => {
            if min != 0 {
                present |= 4;
                put_uint(out, min, 16);
            }
            if max != 0 {
                present |= 8;
                put_uint(out, max, 16);
            }
        }
        None => {}
    }
    if nat.ports.0 != 0 {
        present |= 16;
        put_u16(out, nat.ports.0);
    }
    if nat.ports.1 != 0 {
        present |= 32;
        put_u16(out, nat.ports.1);
    }
    patch_u16(out, present_at, usize::from(present));
    finish(out, s);
}

/// Where a list of actions is decoded, for the checks that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    /// An instruction's action list.
    Top,
    /// The nested actions of `ct`.
    Ct,
}

/// Decodes an action list (`ofp_action_header`s) into actions.
pub fn pull_actions(buf: &[u8]) -> Result<Vec<Action>, OfpError> {
    pull_actions_in(buf, Context::Top)
}

fn pull_actions_in(buf: &[u8], ctx: Context) -> Result<Vec<Action>, OfpError> {
    let mut r = Reader::new(buf, OfpError::BAD_ACTION_LEN);
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut hdr = r.clone();
        let _ty = hdr.u16()?;
        let len = usize::from(hdr.u16()?);
        if len < 8 || len % 8 != 0 {
            return Err(OfpError::BAD_ACTION_LEN);
        }
        let body = r.bytes(len)?;
        out.push(pull_action(body, ctx)?);
    }
    Ok(out)
}

/// Decodes one whole action (`body` includes its header and padding).
fn pull_action(body: &[u8], ctx: Context) -> Result<Action, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_ACTION_LEN);
    let ty = r.u16()?;
    let len = usize::from(r.u16()?);
    let fixed = |want: usize| -> Result<(), OfpError> {
        if len == want {
            Ok(())
        } else {
            Err(OfpError::BAD_ACTION_LEN)
        }
    };
    match ty {
        OFPAT_OUTPUT => {
            fixed(16)?;
            let p = r.u32()?;
            let max_len = r.u16()?;
            let port = Port::from_ofp11(p).ok_or(OfpError::BAD_OUT_PORT)?;
            if port == Port::NONE {
                return Err(OfpError::BAD_OUT_PORT);
            }
            Ok(Action::Output { port, max_len })
        }
        OFPAT_GROUP => {
            fixed(8)?;
            Ok(Action::Group(r.u32()?))
        }
        OFPAT_METER => {
            fixed(8)?;
            Ok(Action::Meter(r.u32()?))
        }
        OFPAT_DEC_NW_TTL => {
            fixed(8)?;
            Ok(Action::DecTtl)
        }
        OFPAT_SET_NW_TTL => {
            fixed(8)?;
            Ok(Action::SetNwTtl(r.u8()?))
        }
        OFPAT_PUSH_VLAN => {
            fixed(8)?;
            let e = r.u16()?;
            if e != 0x8100 && e != 0x88a8 {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            Ok(Action::PushVlan(e))
        }
        OFPAT_POP_VLAN => {
            fixed(8)?;
            Ok(Action::PopVlan)
        }
        OFPAT_SET_FIELD => pull_set_field(&mut r),
        OFPAT_COPY_FIELD => {
            let n_bits = r.u16()?;
            let src_ofs = r.u16()?;
            let dst_ofs = r.u16()?;
            r.skip(2)?;
            let src = pull_field(&mut r)?;
            let dst = pull_field(&mut r)?;
            if !dst.info().writable {
                return Err(OfpError::BAD_SET_TYPE);
            }
            Ok(Action::Move {
                src: subfield_from(src, src_ofs, n_bits)?,
                dst: subfield_from(dst, dst_ofs, n_bits)?,
            })
        }
        OFPAT_EXPERIMENTER => {
            if r.u32()? != NX_VENDOR_ID {
                return Err(OfpError::BAD_ACTION_EXPERIMENTER);
            }
            pull_nx_action(&mut r, len, ctx)
        }
        _ => Err(OfpError::BAD_ACTION_TYPE),
    }
}

fn pull_set_field(r: &mut Reader<'_>) -> Result<Action, OfpError> {
    let h = pull_header(r).map_err(|_| OfpError::BAD_SET_LEN)?;
    let field = h.field.ok_or(OfpError::BAD_SET_TYPE)?;
    let info = field.info();
    if !info.writable {
        return Err(OfpError::BAD_SET_TYPE);
    }
    let mut n = usize::from(info.n_bytes);
    let tun_metadata = FieldId::TUN_METADATA.contains(&field);
    if tun_metadata {
        // Variable length (OVS: up to 124 bytes); xvs holds the low 8.
        n = h.payload / (1 + usize::from(h.has_mask));
        if n == 0 || n > 124 {
            return Err(OfpError::BAD_SET_LEN);
        }
    }
    if h.payload != n * (1 + usize::from(h.has_mask)) {
        return Err(OfpError::BAD_SET_LEN);
    }
    let value_bytes = r.bytes(n).map_err(|_| OfpError::BAD_SET_LEN)?;
    let mask_bytes = if h.has_mask {
        Some(r.bytes(n).map_err(|_| OfpError::BAD_SET_LEN)?)
    } else {
        None
    };
    if tun_metadata {
        let wide = |b: &[u8]| b.len() > 8 && b[..b.len() - 8].iter().any(|&x| x != 0);
        if wide(value_bytes) || mask_bytes.is_some_and(wide) {
            return Err(OfpError::BAD_SET_ARGUMENT);
        }
    }
    let value = be_uint(value_bytes);
    let mask = match mask_bytes {
        Some(m) => be_uint(m),
        None => field.exact_mask(),
    };
    if value & !mask != 0 {
        return Err(OfpError::BAD_SET_ARGUMENT);
    }
    // The rest is padding and must be zero.
    if r.rest().iter().any(|&b| b != 0) {
        return Err(OfpError::BAD_SET_ARGUMENT);
    }
    Ok(Action::SetField { field, value, mask })
}

fn pull_nx_action(r: &mut Reader<'_>, len: usize, ctx: Context) -> Result<Action, OfpError> {
    let subtype = r.u16()?;
    let fixed = |want: usize| -> Result<(), OfpError> {
        if len == want {
            Ok(())
        } else {
            Err(OfpError::BAD_ACTION_LEN)
        }
    };
    match subtype {
        NXAST_RESUBMIT | NXAST_RESUBMIT_TABLE | NXAST_RESUBMIT_TABLE_CT => {
            fixed(16)?;
            let in_port = Port(r.u16()?);
            let t = r.u8()?;
            let table = if subtype == NXAST_RESUBMIT || t == 255 {
                None
            } else {
                Some(t)
            };
            if subtype != NXAST_RESUBMIT && r.bytes(3)?.iter().any(|&b| b != 0) {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            Ok(Action::Resubmit {
                in_port,
                table,
                with_ct_orig: subtype == NXAST_RESUBMIT_TABLE_CT,
            })
        }
        NXAST_NOTE => Ok(Action::Note(r.rest().to_vec())),
        NXAST_OUTPUT_REG => {
            fixed(24)?;
            let on = r.u16()?;
            let f = pull_field(r)?;
            let max_len = r.u16()?;
            if r.bytes(6)?.iter().any(|&b| b != 0) {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            Ok(Action::OutputReg {
                src: subfield_from_ofs_nbits(f, on)?,
                max_len,
            })
        }
        NXAST_CONJUNCTION => {
            fixed(16)?;
            let clause = r.u8()?;
            let n_clauses = r.u8()?;
            let id = r.u32()?;
            if !(2..=64).contains(&n_clauses) || clause >= n_clauses {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            Ok(Action::Conjunction {
                id,
                clause: clause + 1,
                n_clauses,
            })
        }
        NXAST_CT_CLEAR => {
            fixed(16)?;
            Ok(Action::CtClear)
        }
        NXAST_CONTROLLER => {
            fixed(16)?;
            let max_len = r.u16()?;
            let controller_id = r.u16()?;
            let reason = reason_from(r.u8()?)?;
            Ok(Action::Controller(Controller {
                reason,
                max_len,
                controller_id,
                ..Controller::default()
            }))
        }
        NXAST_CONTROLLER2 => pull_controller2(r),
        NXAST_LEARN | NXAST_LEARN2 => pull_learn(r, subtype == NXAST_LEARN2),
        NXAST_CT => {
            if ctx == Context::Ct {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            pull_ct(r)
        }
        NXAST_NAT => Err(OfpError::BAD_ACTION_ARGUMENT),
        _ => Err(OfpError::BAD_ACTION_EXP_TYPE),
    }
}

fn pull_controller2(r: &mut Reader<'_>) -> Result<Action, OfpError> {
    r.skip(6)?;
    let mut c = Controller::default();
    while !r.is_empty() {
        let ty = r.u16()?;
        let plen = usize::from(r.u16()?);
        if plen < 4 {
            return Err(OfpError::BAD_ACTION_LEN);
        }
        let body = r.bytes(plen - 4)?;
        r.skip((plen.div_ceil(8) * 8 - plen).min(r.remaining()))?;
        let mut b = Reader::new(body, OfpError::BAD_ACTION_LEN);
        let exact = |n: usize| {
            if body.len() == n || (n == 2 && body.len() == 4) {
                Ok(())
            } else {
                Err(OfpError::BAD_ACTION_LEN)
            }
        };
        match ty {
            0 => {
                exact(2)?;
                c.max_len = b.u16()?;
            }
            1 => {
                exact(2)?;
                c.controller_id = b.u16()?;
            }
            2 => {
                exact(1)?;
                c.reason = reason_from(b.u8()?)?;
            }
            3 => c.userdata = body.to_vec(),
            4 => {
                exact(0)?;
                c.pause = true;
            }
            5 => {
                exact(4)?;
                c.meter_id = Some(b.u32()?);
            }
            _ => return Err(OfpError::BAD_ACTION_ARGUMENT),
        }
    }
    Ok(Action::Controller(c))
}

fn pull_learn(r: &mut Reader<'_>, v2: bool) -> Result<Action, OfpError> {
    let mut l = Learn {
        idle_timeout: r.u16()?,
        hard_timeout: r.u16()?,
        priority: r.u16()?,
        cookie: r.u64()?,
        ..Learn::default()
    };
    let flags = r.u16()?;
    l.table = r.u8()?;
    r.skip(1)?;
    l.fin_idle_timeout = r.u16()?;
    l.fin_hard_timeout = r.u16()?;
    if flags & !(LEARN_SEND_FLOW_REM | LEARN_DELETE_LEARNED | LEARN_WRITE_RESULT) != 0
        || l.table == 255
    {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    l.send_flow_rem = flags & LEARN_SEND_FLOW_REM != 0;
    l.delete_learned = flags & LEARN_DELETE_LEARNED != 0;
    if v2 {
        l.limit = r.u32()?;
        let ofs = r.u16()?;
        r.skip(2)?;
        if flags & LEARN_WRITE_RESULT != 0 {
            let f = pull_field(r)?;
            l.result_dst = Some(subfield_from(f, ofs, 1)?);
        }
    } else if flags & LEARN_WRITE_RESULT != 0 {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    while r.remaining() >= 2 {
        let hdr = r.u16()?;
        if hdr == 0 {
            break;
        }
        let n_bits = hdr & 0x7ff;
        let src_imm = hdr & (1 << 13) != 0;
        let dst_type = (hdr >> 11) & 3;
        if n_bits == 0 || hdr & 0xc000 != 0 {
            return Err(OfpError::BAD_ACTION_ARGUMENT);
        }
        let mut src = None;
        let mut value = 0;
        if src_imm {
            let n = 2 * usize::from(n_bits).div_ceil(16);
            value = be_uint(r.bytes(n)?);
        } else {
            let f = pull_field(r)?;
            let ofs = r.u16()?;
            src = Some(subfield_from(f, ofs, n_bits)?);
        }
        let dst = if dst_type == 0 || dst_type == 1 {
            let f = pull_field(r)?;
            let ofs = r.u16()?;
            Some(subfield_from(f, ofs, n_bits)?)
        } else {
            None
        };
        let spec = match (dst_type, src, dst) {
            (0, Some(src), Some(dst)) => LearnSpec::MatchField { dst, src },
            (0, None, Some(dst)) => LearnSpec::MatchImm { dst, value },
            (1, Some(src), Some(dst)) => LearnSpec::LoadField { src, dst },
            (1, None, Some(dst)) => LearnSpec::LoadImm { dst, value },
            (2, Some(src), None) => LearnSpec::Output { src },
            _ => return Err(OfpError::BAD_ACTION_ARGUMENT),
        };
        l.specs.push(spec);
    }
    if r.rest().iter().any(|&b| b != 0) {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    Ok(Action::Learn(Box::new(l)))
}

fn pull_ct(r: &mut Reader<'_>) -> Result<Action, OfpError> {
    let flags = r.u16()?;
    let zone_src = r.u32()?;
    let zone_v = r.u16()?;
    let table = r.u8()?;
    r.skip(3)?;
    let alg = r.u16()?;
    if flags & !(CT_COMMIT | CT_FORCE) != 0 {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    let zone = if zone_src == 0 {
        CtZone::Imm(zone_v)
    } else {
        let bytes = zone_src.to_be_bytes();
        let f = pull_field(&mut Reader::new(&bytes, OfpError::BAD_ACTION_ARGUMENT))?;
        let sf = subfield_from_ofs_nbits(f, zone_v)?;
        if sf.n_bits != 16 {
            return Err(OfpError::BAD_ACTION_ARGUMENT);
        }
        CtZone::Field(sf)
    };
    let mut ct = Ct {
        commit: flags & CT_COMMIT != 0,
        force: flags & CT_FORCE != 0,
        table: (table != 255).then_some(table),
        zone,
        alg,
        ..Ct::default()
    };
    let nested = r.rest();
    // A leading NXAST_NAT is the `nat(...)` clause; the rest is `exec(...)`.
    let mut nr = Reader::new(nested, OfpError::BAD_ACTION_LEN);
    if let Some(nat_len) = leading_nat_len(nested) {
        let body = nr.bytes(nat_len)?;
        ct.nat = Some(pull_nat(body)?);
    }
    ct.exec = pull_actions_in(nr.rest(), Context::Ct)?;
    Ok(Action::Ct(Box::new(ct)))
}

/// The length of a leading NXAST_NAT action in `buf`, if there is one.
fn leading_nat_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 10 {
        return None;
    }
    let ty = u16::from_be_bytes([buf[0], buf[1]]);
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let vendor = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let sub = u16::from_be_bytes([buf[8], buf[9]]);
    (ty == OFPAT_EXPERIMENTER && vendor == NX_VENDOR_ID && sub == NXAST_NAT).then_some(len)
}

fn pull_nat(body: &[u8]) -> Result<Nat, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_ACTION_LEN);
    r.skip(10)?;
    r.skip(2)?;
    let flags = r.u16()?;
    let present = r.u16()?;
    if flags & !0x1f != 0 || present & !0x3f != 0 || flags & 3 == 3 {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    let mut nat = Nat {
        kind: match flags & 3 {
            1 => Some(NatKind::Src),
            2 => Some(NatKind::Dst),
            _ => None,
        },
        persistent: flags & 4 != 0,
        hash: flags & 8 != 0,
        random: flags & 16 != 0,
        ..Nat::default()
    };
    if present & 3 != 0 && present & 12 != 0 {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    if present & 3 != 0 {
        let min = if present & 1 != 0 { r.u32()? } else { 0 };
        let max = if present & 2 != 0 { r.u32()? } else { 0 };
        // All-zero addresses are "no address", as OVS's encoder omits them.
        nat.addrs = (min != 0 || max != 0).then_some(NatAddrs::V4 { min, max });
    } else if present & 12 != 0 {
        let min = if present & 4 != 0 {
            be_uint(r.bytes(16)?)
        } else {
            0
        };
        let max = if present & 8 != 0 {
            be_uint(r.bytes(16)?)
        } else {
            0
        };
        nat.addrs = (min != 0 || max != 0).then_some(NatAddrs::V6 { min, max });
    }
    if present & 16 != 0 {
        nat.ports.0 = r.u16()?;
    }
    if present & 32 != 0 {
        nat.ports.1 = r.u16()?;
    }
    if nat.kind.is_none() && (nat.addrs.is_some() || nat.ports != (0, 0)) {
        return Err(OfpError::BAD_ACTION_ARGUMENT);
    }
    Ok(nat)
}

/// Appends the instructions for `actions`: one APPLY_ACTIONS with everything but
/// `goto_table`, then GOTO_TABLE. No actions means no instructions (drop).
pub fn put_instructions(out: &mut Vec<u8>, actions: &[Action]) {
    let goto = actions.iter().find_map(|a| match a {
        Action::GotoTable(t) => Some(*t),
        _ => None,
    });
    if actions.iter().any(|a| !matches!(a, Action::GotoTable(_))) {
        let s = out.len();
        put_u16(out, OFPIT_APPLY_ACTIONS);
        put_u16(out, 0);
        put_u32(out, 0);
        put_actions(out, actions);
        let len = out.len() - s;
        patch_u16(out, s + 2, len);
    }
    if let Some(t) = goto {
        put_u16(out, OFPIT_GOTO_TABLE);
        put_u16(out, 8);
        out.push(t);
        out.extend_from_slice(&[0; 3]);
    }
}

/// Decodes an instruction list into actions (APPLY_ACTIONS contents, then `goto_table`).
/// Instructions the model cannot hold give OVS's `OFPBIC_UNSUP_INST`.
pub fn pull_instructions(buf: &[u8]) -> Result<Vec<Action>, OfpError> {
    let mut r = Reader::new(buf, OfpError::BAD_INST_LEN);
    let mut apply: Option<Vec<Action>> = None;
    let mut goto = None;
    while !r.is_empty() {
        let mut hdr = r.clone();
        let ty = hdr.u16()?;
        let len = usize::from(hdr.u16()?);
        if len < 8 || len % 8 != 0 {
            return Err(OfpError::BAD_INST_LEN);
        }
        let body = r.bytes(len)?;
        match ty {
            OFPIT_APPLY_ACTIONS => {
                if apply.is_some() {
                    return Err(OfpError::DUP_INST);
                }
                apply = Some(pull_actions(&body[8..])?);
            }
            OFPIT_GOTO_TABLE => {
                if len != 8 {
                    return Err(OfpError::BAD_INST_LEN);
                }
                if goto.is_some() {
                    return Err(OfpError::DUP_INST);
                }
                goto = Some(body[4]);
            }
            OFPIT_WRITE_METADATA | OFPIT_WRITE_ACTIONS | OFPIT_CLEAR_ACTIONS | OFPIT_METER => {
                return Err(OfpError::UNSUP_INST)
            }
            _ => return Err(OfpError::UNKNOWN_INST),
        }
    }
    let mut actions = apply.unwrap_or_default();
    if let Some(t) = goto {
        actions.push(Action::GotoTable(t));
    }
    Ok(actions)
}
