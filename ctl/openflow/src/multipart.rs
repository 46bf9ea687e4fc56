//! Typed multipart bodies: DESC and FLOW_DESC (flow stats) requests and replies, OpenFlow 1.5
//! layouts with OXS statistics.

use crate::actions::{pull_instructions, put_instructions};
use crate::error::OfpError;
use crate::oxm::{pull_match, put_match};
use crate::wire::{pad8, patch_u16, put_u16, put_u32, put_u64, Reader};
use xvs_flowtable::flow::{FlowFlags, FlowStats};
use xvs_flowtable::{Flow, Match, Port};

/// `OFPMP_DESC`.
pub const MP_DESC: u16 = 0;
/// `OFPMP_FLOW_DESC`.
pub const MP_FLOW_DESC: u16 = 1;
/// `OFPMP_TABLE_FEATURES`.
pub const MP_TABLE_FEATURES: u16 = 12;
/// `OFPMP_PORT_DESC`.
pub const MP_PORT_DESC: u16 = 13;
/// `OFPMPF_REPLY_MORE` / `OFPMPF_REQ_MORE`.
pub const MORE: u16 = 1;

/// A FLOW_DESC request (`dump-flows` filters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatsRequest {
    /// Table, 0xff = all.
    pub table: u8,
    /// Output port filter, [`Port::NONE`] = any.
    pub out_port: Port,
    /// Output group filter, 0xffffffff = any.
    pub out_group: u32,
    /// Cookie to match under `cookie_mask`.
    pub cookie: u64,
    /// Cookie mask, 0 = any cookie.
    pub cookie_mask: u64,
    /// Flows must match at least this (non-strict).
    pub match_: Match,
}

/// A DESC reply (`ofp_desc`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Manufacturer (up to 255 bytes).
    pub mfr: String,
    /// Hardware description (up to 255 bytes).
    pub hw: String,
    /// Software description (up to 255 bytes).
    pub sw: String,
    /// Serial number (up to 31 bytes).
    pub serial: String,
    /// Datapath description (up to 255 bytes).
    pub dp: String,
}

pub(crate) fn pull_flow_stats_request(r: &mut Reader<'_>) -> Result<FlowStatsRequest, OfpError> {
    let table = r.u8()?;
    r.skip(3)?;
    let out_port = Port::from_ofp11(r.u32()?).ok_or(OfpError::BAD_OUT_PORT)?;
    let out_group = r.u32()?;
    r.skip(4)?;
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let match_ = pull_match(r)?;
    if !r.is_empty() {
        return Err(OfpError::BAD_LEN);
    }
    Ok(FlowStatsRequest {
        table,
        out_port,
        out_group,
        cookie,
        cookie_mask,
        match_,
    })
}

pub(crate) fn put_flow_stats_request(out: &mut Vec<u8>, q: &FlowStatsRequest) {
    out.push(q.table);
    out.extend_from_slice(&[0; 3]);
    put_u32(out, q.out_port.to_ofp11());
    put_u32(out, q.out_group);
    put_u32(out, 0);
    put_u64(out, q.cookie);
    put_u64(out, q.cookie_mask);
    put_match(out, &q.match_);
}

fn put_str(out: &mut Vec<u8>, s: &str, n: usize) {
    let b = s.as_bytes();
    let k = b.len().min(n - 1);
    out.extend_from_slice(&b[..k]);
    out.resize(out.len() + n - k, 0);
}

fn pull_str(r: &mut Reader<'_>, n: usize) -> Result<String, OfpError> {
    let b = r.bytes(n)?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(n);
    Ok(String::from_utf8_lossy(&b[..end]).into_owned())
}

pub(crate) fn put_desc(out: &mut Vec<u8>, d: &Desc) {
    put_str(out, &d.mfr, 256);
    put_str(out, &d.hw, 256);
    put_str(out, &d.sw, 256);
    put_str(out, &d.serial, 32);
    put_str(out, &d.dp, 256);
}

pub(crate) fn pull_desc(r: &mut Reader<'_>) -> Result<Desc, OfpError> {
    let d = Desc {
        mfr: pull_str(r, 256)?,
        hw: pull_str(r, 256)?,
        sw: pull_str(r, 256)?,
        serial: pull_str(r, 32)?,
        dp: pull_str(r, 256)?,
    };
    if !r.is_empty() {
        return Err(OfpError::BAD_LEN);
    }
    Ok(d)
}

/// OXS class `OFPXSC_OPENFLOW_BASIC`.
const OXS_BASIC: u32 = 0x8002;
const OXS_DURATION: u32 = 0;
const OXS_IDLE_TIME: u32 = 1;
const OXS_PACKET_COUNT: u32 = 4;
const OXS_BYTE_COUNT: u32 = 5;

fn put_oxs(out: &mut Vec<u8>, field: u32, value: u64) {
    put_u32(out, (OXS_BASIC << 16) | (field << 9) | 8);
    put_u64(out, value);
}

/// Appends one `ofp_flow_desc` (a flow with its statistics).
pub(crate) fn put_flow_desc(out: &mut Vec<u8>, f: &Flow) {
    let s = out.len();
    put_u16(out, 0);
    put_u16(out, 0);
    out.push(f.table);
    out.push(0);
    put_u16(out, f.priority);
    put_u16(out, f.idle_timeout);
    put_u16(out, f.hard_timeout);
    put_u16(out, f.flags.0);
    put_u16(out, f.importance);
    put_u64(out, f.cookie);
    crate::oxm::put_match_from(out, &f.match_, crate::oxm::Sender::Switch);
    let st = f.stats.unwrap_or_default();
    let os = out.len();
    put_u16(out, 0);
    put_u16(out, 0);
    put_oxs(
        out,
        OXS_DURATION,
        (u64::from(st.duration_sec) << 32) | u64::from(st.duration_nsec),
    );
    if let Some(idle) = st.idle_age {
        // Nanoseconds, as OpenFlow 1.5 times are (seconds << 32 | nanoseconds).
        put_oxs(out, OXS_IDLE_TIME, u64::from(idle) << 32);
    }
    put_oxs(out, OXS_PACKET_COUNT, st.n_packets.unwrap_or(u64::MAX));
    put_oxs(out, OXS_BYTE_COUNT, st.n_bytes.unwrap_or(u64::MAX));
    let olen = out.len() - os;
    patch_u16(out, os + 2, olen);
    pad8(out, os);
    put_instructions(out, &f.actions);
    let len = out.len() - s;
    patch_u16(out, s, len);
}

/// Decodes the `ofp_flow_desc` entries of a FLOW_DESC reply.
pub(crate) fn pull_flow_descs(r: &mut Reader<'_>) -> Result<Vec<Flow>, OfpError> {
    let mut flows = Vec::new();
    while !r.is_empty() {
        let mut peek = r.clone();
        let len = usize::from(peek.u16()?);
        if len < 24 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len)?, OfpError::BAD_LEN);
        e.skip(4)?;
        let table = e.u8()?;
        e.skip(1)?;
        let priority = e.u16()?;
        let idle_timeout = e.u16()?;
        let hard_timeout = e.u16()?;
        let flags = e.u16()?;
        let importance = e.u16()?;
        let cookie = e.u64()?;
        let match_ = pull_match(&mut e)?;
        e.skip(2)?;
        let olen = usize::from(e.u16()?);
        if olen < 4 {
            return Err(OfpError::BAD_LEN);
        }
        let mut o = Reader::new(e.bytes(olen - 4)?, OfpError::BAD_LEN);
        e.skip(olen.div_ceil(8) * 8 - olen)?;
        let mut st = FlowStats::default();
        while !o.is_empty() {
            let h = o.u32()?;
            let flen = (h & 0xff) as usize;
            let body = o.bytes(flen)?;
            if h >> 16 != OXS_BASIC || flen != 8 {
                continue;
            }
            let v = u64::from_be_bytes([
                body[0], body[1], body[2], body[3], body[4], body[5], body[6], body[7],
            ]);
            match (h >> 9) & 0x7f {
                OXS_DURATION => {
                    st.duration_sec = (v >> 32) as u32;
                    st.duration_nsec = v as u32;
                }
                OXS_IDLE_TIME => st.idle_age = Some((v >> 32) as u32),
                OXS_PACKET_COUNT => st.n_packets = (v != u64::MAX).then_some(v),
                OXS_BYTE_COUNT => st.n_bytes = (v != u64::MAX).then_some(v),
                _ => {}
            }
        }
        let actions = pull_instructions(e.rest())?;
        flows.push(Flow {
            table,
            priority,
            cookie,
            idle_timeout,
            hard_timeout,
            importance,
            flags: FlowFlags(flags),
            match_,
            actions,
            stats: Some(st),
        });
    }
    Ok(flows)
}
