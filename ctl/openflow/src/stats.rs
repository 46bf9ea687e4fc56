//! Multipart (statistics) bodies beyond DESC and FLOW_DESC, OpenFlow 1.5 layouts as Open
//! vSwitch encodes them: AGGREGATE, TABLE_STATS, PORT_STATS, PORT_DESC, GROUP_DESC,
//! GROUP_STATS, GROUP_FEATURES, METER_STATS, METER_DESC (`METER_CONFIG`), METER_FEATURES,
//! TABLE_FEATURES; and [`ReplyWriter`], which splits long replies into several messages
//! flagged `OFPMPF_REPLY_MORE`, as a reply cannot exceed 64 KiB.
//!
//! Requests and replies travel as [`Body::MultipartRequest`] / [`Body::MultipartReply`] with
//! raw bodies; the `pull_*` functions here decode those bodies and the `put_*` functions
//! append them.

use crate::error::OfpError;
use crate::mods::{pull_buckets, put_buckets, put_selection_method};
use crate::multipart::{self, FlowStatsRequest};
use crate::wire::{pad8, patch_u16, put_u16, put_u32, put_u64, Reader};
use crate::{put_mp_header, Body, Message};
use xvs_flowtable::group::{Group, GroupType};
use xvs_flowtable::meter::Meter;

/// `OFPMP_AGGREGATE_STATS`.
pub const MP_AGGREGATE: u16 = 2;
/// `OFPMP_TABLE_STATS`.
pub const MP_TABLE: u16 = 3;
/// `OFPMP_PORT_STATS`.
pub const MP_PORT_STATS: u16 = 4;
/// `OFPMP_GROUP_STATS`.
pub const MP_GROUP_STATS: u16 = 6;
/// `OFPMP_GROUP_DESC`.
pub const MP_GROUP_DESC: u16 = 7;
/// `OFPMP_GROUP_FEATURES`.
pub const MP_GROUP_FEATURES: u16 = 8;
/// `OFPMP_METER_STATS`.
pub const MP_METER_STATS: u16 = 9;
/// `OFPMP_METER_DESC` (`OFPMP_METER_CONFIG` before OpenFlow 1.5).
pub const MP_METER_DESC: u16 = 10;
/// `OFPMP_METER_FEATURES`.
pub const MP_METER_FEATURES: u16 = 11;
/// `OFPMP_TABLE_FEATURES`.
pub const MP_TABLE_FEATURES: u16 = multipart::MP_TABLE_FEATURES;
/// `OFPMP_PORT_DESC`.
pub const MP_PORT_DESC: u16 = multipart::MP_PORT_DESC;

/// Largest message we build: replies are split before they exceed it.
const MAX_MSG: usize = 65535;

/// Appends multipart replies of one type to an output buffer, entry by entry, starting a new
/// message (and flagging the previous one `REPLY_MORE`) when an entry would not fit.
#[derive(Debug)]
pub struct ReplyWriter<'a> {
    out: &'a mut Vec<u8>,
    version: u8,
    xid: u32,
    mp_type: u16,
    start: usize,
}

impl<'a> ReplyWriter<'a> {
    /// Starts the first reply message.
    pub fn new(out: &'a mut Vec<u8>, version: u8, xid: u32, mp_type: u16) -> Self {
        let start = out.len();
        begin_reply(out, version, xid, mp_type);
        ReplyWriter {
            out,
            version,
            xid,
            mp_type,
            start,
        }
    }

    /// Appends one entry written by `put`.
    pub fn entry(&mut self, put: impl FnOnce(&mut Vec<u8>)) {
        let at = self.out.len();
        put(self.out);
        if self.out.len() - self.start > MAX_MSG && at - self.start > 16 {
            // Move the entry into a new message.
            let entry = self.out.split_off(at);
            let len = at - self.start;
            patch_u16(self.out, self.start + 2, len);
            // Flags of the message just closed: REPLY_MORE.
            self.out[self.start + 10] = 0;
            self.out[self.start + 11] = multipart::MORE as u8;
            self.start = self.out.len();
            begin_reply(self.out, self.version, self.xid, self.mp_type);
            self.out.extend_from_slice(&entry);
        }
    }

    /// Closes the last message.
    pub fn finish(self) {
        let len = self.out.len() - self.start;
        patch_u16(self.out, self.start + 2, len);
    }
}

fn begin_reply(out: &mut Vec<u8>, version: u8, xid: u32, mp_type: u16) {
    out.push(version);
    out.push(crate::msg_type::MULTIPART_REPLY);
    put_u16(out, 0);
    put_u32(out, xid);
    put_mp_header(out, mp_type, 0);
}

/// A multipart request message of `mp_type` whose body `put` writes (for clients and tests).
pub fn request(xid: u32, mp_type: u16, put: impl FnOnce(&mut Vec<u8>)) -> Message {
    let mut body = Vec::new();
    put(&mut body);
    Message {
        version: crate::OFP15_VERSION,
        xid,
        body: Body::MultipartRequest {
            mp_type,
            flags: 0,
            body,
        },
    }
}

/// Decodes an AGGREGATE request body (the FLOW_DESC request layout).
pub fn pull_aggregate_request(body: &[u8]) -> Result<FlowStatsRequest, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    multipart::pull_flow_stats_request(&mut r)
}

/// Appends an AGGREGATE request body.
pub fn put_aggregate_request(out: &mut Vec<u8>, q: &FlowStatsRequest) {
    multipart::put_flow_stats_request(out, q);
}

/// AGGREGATE reply contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aggregate {
    /// Packets of the selected flows.
    pub packets: u64,
    /// Bytes of the selected flows.
    pub bytes: u64,
    /// Number of selected flows.
    pub flows: u32,
}

const OXS_BASIC: u32 = 0x8002;
const OXS_PACKET_COUNT: u32 = 4;
const OXS_BYTE_COUNT: u32 = 5;
const OXS_FLOW_COUNT: u32 = 3;

/// Appends an OpenFlow 1.5 AGGREGATE reply body (an OXS stat list: packets, bytes, flows).
pub fn put_aggregate(out: &mut Vec<u8>, a: &Aggregate) {
    let s = out.len();
    put_u16(out, 0);
    put_u16(out, 0);
    put_u32(out, (OXS_BASIC << 16) | (OXS_PACKET_COUNT << 9) | 8);
    put_u64(out, a.packets);
    put_u32(out, (OXS_BASIC << 16) | (OXS_BYTE_COUNT << 9) | 8);
    put_u64(out, a.bytes);
    put_u32(out, (OXS_BASIC << 16) | (OXS_FLOW_COUNT << 9) | 4);
    put_u32(out, a.flows);
    let len = out.len() - s;
    patch_u16(out, s + 2, len);
    pad8(out, s);
}

/// Decodes an OpenFlow 1.5 AGGREGATE reply body.
pub fn pull_aggregate(body: &[u8]) -> Result<Aggregate, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    r.skip(2)?;
    let len = usize::from(r.u16()?);
    if len < 4 {
        return Err(OfpError::BAD_LEN);
    }
    let mut o = Reader::new(r.bytes(len - 4)?, OfpError::BAD_LEN);
    let mut a = Aggregate::default();
    while !o.is_empty() {
        let h = o.u32()?;
        let v = o.bytes((h & 0xff) as usize)?;
        let v = v.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if h >> 16 != OXS_BASIC {
            continue;
        }
        match (h >> 9) & 0x7f {
            OXS_PACKET_COUNT => a.packets = v,
            OXS_BYTE_COUNT => a.bytes = v,
            OXS_FLOW_COUNT => a.flows = v as u32,
            _ => {}
        }
    }
    Ok(a)
}

/// One table's statistics (`ofp13_table_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Table id.
    pub table_id: u8,
    /// Flows in the table.
    pub active: u32,
    /// Packets looked up in the table.
    pub lookup: u64,
    /// Packets that matched a flow of the table.
    pub matched: u64,
}

/// Appends one `ofp13_table_stats`.
pub fn put_table_stats(out: &mut Vec<u8>, t: &TableStats) {
    out.push(t.table_id);
    out.extend_from_slice(&[0; 3]);
    put_u32(out, t.active);
    put_u64(out, t.lookup);
    put_u64(out, t.matched);
}

/// Decodes a TABLE_STATS reply body.
pub fn pull_table_stats(body: &[u8]) -> Result<Vec<TableStats>, OfpError> {
    if body.len() % 24 != 0 {
        return Err(OfpError::BAD_LEN);
    }
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let table_id = r.u8()?;
        r.skip(3)?;
        v.push(TableStats {
            table_id,
            active: r.u32()?,
            lookup: r.u64()?,
            matched: r.u64()?,
        });
    }
    Ok(v)
}

/// Decodes the port number of a PORT_STATS or PORT_DESC request (`OFPP_ANY` = all).
pub fn pull_port_request(body: &[u8]) -> Result<u32, OfpError> {
    if body.len() != 8 {
        return Err(OfpError::BAD_LEN);
    }
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

/// Appends a PORT_STATS / PORT_DESC / GROUP / METER request body: an id and padding.
pub fn put_id_request(out: &mut Vec<u8>, id: u32) {
    put_u32(out, id);
    put_u32(out, 0);
}

/// Decodes the id of a GROUP_STATS / GROUP_DESC / METER_STATS / METER_DESC request.
pub fn pull_id_request(body: &[u8]) -> Result<u32, OfpError> {
    pull_port_request(body)
}

/// A port's description (`ofp14_port` with its Ethernet property).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDesc {
    /// OpenFlow port number (OpenFlow 1.1+ numbering: LOCAL = 0xfffffffe).
    pub port_no: u32,
    /// MAC address.
    pub hw_addr: [u8; 6],
    /// Interface name (up to 15 bytes).
    pub name: String,
    /// `OFPPC_*` bits.
    pub config: u32,
    /// `OFPPS_*` bits.
    pub state: u32,
    /// `OFPPF_*` current features.
    pub curr: u32,
    /// Current bit rate in kbps.
    pub curr_speed: u32,
    /// Maximum bit rate in kbps.
    pub max_speed: u32,
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary (so a
/// name cut to fit its field decodes to the same text).
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Appends one `ofp14_port` with an Ethernet property.
pub fn put_port_desc(out: &mut Vec<u8>, p: &PortDesc) {
    put_u32(out, p.port_no);
    put_u16(out, 72);
    put_u16(out, 0);
    out.extend_from_slice(&p.hw_addr);
    put_u16(out, 0);
    let mut name = [0u8; 16];
    let n = truncated(&p.name, 15);
    name[..n.len()].copy_from_slice(n.as_bytes());
    out.extend_from_slice(&name);
    put_u32(out, p.config);
    put_u32(out, p.state);
    // OFPPDPT14_ETHERNET.
    put_u16(out, 0);
    put_u16(out, 32);
    put_u32(out, 0);
    put_u32(out, p.curr);
    put_u32(out, 0);
    put_u32(out, 0);
    put_u32(out, 0);
    put_u32(out, p.curr_speed);
    put_u32(out, p.max_speed);
}

/// Decodes a PORT_DESC reply body.
pub fn pull_port_descs(body: &[u8]) -> Result<Vec<PortDesc>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let port_no = r.u32()?;
        let len = usize::from(r.u16()?);
        if len < 40 || len % 8 != 0 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len - 6)?, OfpError::BAD_LEN);
        e.skip(2)?;
        let mut hw_addr = [0u8; 6];
        hw_addr.copy_from_slice(e.bytes(6)?);
        e.skip(2)?;
        let name = e.bytes(16)?;
        let end = name.iter().position(|&c| c == 0).unwrap_or(16);
        let mut p = PortDesc {
            port_no,
            hw_addr,
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
            config: e.u32()?,
            state: e.u32()?,
            ..PortDesc::default()
        };
        while !e.is_empty() {
            let ty = e.u16()?;
            let plen = usize::from(e.u16()?);
            if plen < 4 {
                return Err(OfpError::BAD_LEN);
            }
            let mut pr = Reader::new(e.bytes(plen - 4)?, OfpError::BAD_LEN);
            e.skip((plen.div_ceil(8) * 8 - plen).min(e.remaining()))?;
            if ty == 0 && plen == 32 {
                pr.skip(4)?;
                p.curr = pr.u32()?;
                pr.skip(12)?;
                p.curr_speed = pr.u32()?;
                p.max_speed = pr.u32()?;
            }
        }
        v.push(p);
    }
    Ok(v)
}

/// One port's counters (`ofp14_port_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// OpenFlow port number.
    pub port_no: u32,
    /// Seconds the port has existed.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Received packets.
    pub rx_packets: u64,
    /// Transmitted packets.
    pub tx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// Appends one `ofp14_port_stats` with an Ethernet property (its error counters zero: the
/// ports do not report them).
pub fn put_port_stats(out: &mut Vec<u8>, p: &PortStats) {
    put_u16(out, 120);
    put_u16(out, 0);
    put_u32(out, p.port_no);
    put_u32(out, p.duration_sec);
    put_u32(out, p.duration_nsec);
    for v in [
        p.rx_packets,
        p.tx_packets,
        p.rx_bytes,
        p.tx_bytes,
        p.rx_dropped,
        p.tx_dropped,
        p.rx_errors,
        p.tx_errors,
    ] {
        put_u64(out, v);
    }
    put_u16(out, 0);
    put_u16(out, 40);
    put_u32(out, 0);
    out.extend_from_slice(&[0; 32]);
}

/// Decodes a PORT_STATS reply body.
pub fn pull_port_stats(body: &[u8]) -> Result<Vec<PortStats>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.u16()?);
        if len < 80 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len - 2)?, OfpError::BAD_LEN);
        e.skip(2)?;
        v.push(PortStats {
            port_no: e.u32()?,
            duration_sec: e.u32()?,
            duration_nsec: e.u32()?,
            rx_packets: e.u64()?,
            tx_packets: e.u64()?,
            rx_bytes: e.u64()?,
            tx_bytes: e.u64()?,
            rx_dropped: e.u64()?,
            tx_dropped: e.u64()?,
            rx_errors: e.u64()?,
            tx_errors: e.u64()?,
        });
    }
    Ok(v)
}

/// Appends one `ofp15_group_desc_stats`: the group with its buckets and properties, as in a
/// GROUP_MOD.
pub fn put_group_desc(out: &mut Vec<u8>, g: &Group) {
    let s = out.len();
    put_u16(out, 0);
    out.push(crate::mods::group_type_code(g.group_type));
    out.push(0);
    put_u32(out, g.group_id);
    let blen_at = out.len();
    put_u16(out, 0);
    out.extend_from_slice(&[0; 6]);
    let b = out.len();
    put_buckets(out, g);
    let blen = out.len() - b;
    patch_u16(out, blen_at, blen);
    put_selection_method(out, g);
    let len = out.len() - s;
    patch_u16(out, s, len);
}

/// Decodes a GROUP_DESC reply body.
pub fn pull_group_descs(body: &[u8]) -> Result<Vec<Group>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.clone().u16()?);
        if len < 16 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len)?, OfpError::BAD_LEN);
        e.skip(2)?;
        let group_type = crate::mods::group_type_from(e.u8()?)?;
        e.skip(1)?;
        let group_id = e.u32()?;
        let blen = usize::from(e.u16()?);
        e.skip(6)?;
        let buckets = pull_buckets(
            &mut Reader::new(e.bytes(blen)?, OfpError::BAD_LEN),
            group_type,
        )?;
        let mut g = Group {
            group_id,
            group_type,
            selection_method: String::new(),
            selection_method_param: 0,
            buckets,
        };
        crate::mods::pull_selection_method(&mut e, &mut g)?;
        v.push(g);
    }
    Ok(v)
}

/// One group's counters (`ofp13_group_stats` and its bucket counters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Group id.
    pub group_id: u32,
    /// Flows (and groups) that refer to the group.
    pub ref_count: u32,
    /// Packets processed by the group.
    pub packets: u64,
    /// Bytes processed by the group.
    pub bytes: u64,
    /// Seconds the group has existed.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// (packets, bytes) per bucket.
    pub buckets: Vec<(u64, u64)>,
}

/// Appends one `ofp13_group_stats`.
pub fn put_group_stats(out: &mut Vec<u8>, g: &GroupStats) {
    let len = 40 + 16 * g.buckets.len();
    put_u16(out, u16::try_from(len).unwrap_or(u16::MAX));
    put_u16(out, 0);
    put_u32(out, g.group_id);
    put_u32(out, g.ref_count);
    put_u32(out, 0);
    put_u64(out, g.packets);
    put_u64(out, g.bytes);
    put_u32(out, g.duration_sec);
    put_u32(out, g.duration_nsec);
    for (p, b) in &g.buckets {
        put_u64(out, *p);
        put_u64(out, *b);
    }
}

/// Decodes a GROUP_STATS reply body.
pub fn pull_group_stats(body: &[u8]) -> Result<Vec<GroupStats>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.clone().u16()?);
        if len < 40 || (len - 40) % 16 != 0 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len)?, OfpError::BAD_LEN);
        e.skip(4)?;
        let group_id = e.u32()?;
        let ref_count = e.u32()?;
        e.skip(4)?;
        let mut g = GroupStats {
            group_id,
            ref_count,
            packets: e.u64()?,
            bytes: e.u64()?,
            duration_sec: e.u32()?,
            duration_nsec: e.u32()?,
            buckets: Vec::new(),
        };
        while !e.is_empty() {
            g.buckets.push((e.u64()?, e.u64()?));
        }
        v.push(g);
    }
    Ok(v)
}

/// GROUP_FEATURES reply contents (`ofp12_group_features_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupFeatures {
    /// Bitmap of supported group types (bit n = type n).
    pub types: u32,
    /// `OFPGFC_*` capabilities.
    pub capabilities: u32,
    /// Maximum groups per type (all, select, indirect, fast failover).
    pub max_groups: [u32; 4],
    /// Supported `OFPAT_*` actions per type (bitmaps).
    pub actions: [u32; 4],
}

/// Appends a GROUP_FEATURES reply body.
pub fn put_group_features(out: &mut Vec<u8>, f: &GroupFeatures) {
    put_u32(out, f.types);
    put_u32(out, f.capabilities);
    for v in f.max_groups.iter().chain(&f.actions) {
        put_u32(out, *v);
    }
}

/// Decodes a GROUP_FEATURES reply body.
pub fn pull_group_features(body: &[u8]) -> Result<GroupFeatures, OfpError> {
    if body.len() != 40 {
        return Err(OfpError::BAD_LEN);
    }
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut f = GroupFeatures {
        types: r.u32()?,
        capabilities: r.u32()?,
        ..GroupFeatures::default()
    };
    for v in f.max_groups.iter_mut() {
        *v = r.u32()?;
    }
    for v in f.actions.iter_mut() {
        *v = r.u32()?;
    }
    Ok(f)
}

/// Appends one `ofp13_meter_config` (a METER_DESC entry).
pub fn put_meter_desc(out: &mut Vec<u8>, m: &Meter) {
    let s = out.len();
    put_u16(out, 0);
    put_u16(out, m.flags);
    put_u32(out, m.meter_id);
    crate::mods::put_bands(out, &m.bands);
    let len = out.len() - s;
    patch_u16(out, s, len);
}

/// Decodes a METER_DESC reply body.
pub fn pull_meter_descs(body: &[u8]) -> Result<Vec<Meter>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.clone().u16()?);
        if len < 8 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len)?, OfpError::BAD_LEN);
        e.skip(2)?;
        let flags = e.u16()?;
        let meter_id = e.u32()?;
        let bands = crate::mods::pull_bands(&mut e)?;
        v.push(Meter {
            meter_id,
            flags,
            bands,
        });
    }
    Ok(v)
}

/// One meter's counters (`ofp13_meter_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Meter id.
    pub meter_id: u32,
    /// Flows that use the meter.
    pub flow_count: u32,
    /// Packets that entered the meter.
    pub packets_in: u64,
    /// Bytes that entered the meter.
    pub bytes_in: u64,
    /// Seconds the meter has existed.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// (packets, bytes) per band.
    pub bands: Vec<(u64, u64)>,
}

/// Appends one `ofp13_meter_stats`.
pub fn put_meter_stats(out: &mut Vec<u8>, m: &MeterStats) {
    put_u32(out, m.meter_id);
    let len = 40 + 16 * m.bands.len();
    put_u16(out, u16::try_from(len).unwrap_or(u16::MAX));
    out.extend_from_slice(&[0; 6]);
    put_u32(out, m.flow_count);
    put_u64(out, m.packets_in);
    put_u64(out, m.bytes_in);
    put_u32(out, m.duration_sec);
    put_u32(out, m.duration_nsec);
    for (p, b) in &m.bands {
        put_u64(out, *p);
        put_u64(out, *b);
    }
}

/// Decodes a METER_STATS reply body.
pub fn pull_meter_stats(body: &[u8]) -> Result<Vec<MeterStats>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let mut peek = r.clone();
        peek.skip(4)?;
        let len = usize::from(peek.u16()?);
        if len < 40 || (len - 40) % 16 != 0 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len)?, OfpError::BAD_LEN);
        let meter_id = e.u32()?;
        e.skip(8)?;
        let mut m = MeterStats {
            meter_id,
            flow_count: e.u32()?,
            packets_in: e.u64()?,
            bytes_in: e.u64()?,
            duration_sec: e.u32()?,
            duration_nsec: e.u32()?,
            bands: Vec::new(),
        };
        while !e.is_empty() {
            m.bands.push((e.u64()?, e.u64()?));
        }
        v.push(m);
    }
    Ok(v)
}

/// METER_FEATURES reply contents (`ofp13_meter_features`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterFeatures {
    /// Maximum number of meters.
    pub max_meter: u32,
    /// Bitmap of band types (bit n = `OFPMBT_*` n).
    pub band_types: u32,
    /// Bitmap of meter flags supported.
    pub capabilities: u32,
    /// Maximum bands per meter.
    pub max_bands: u8,
    /// Maximum color value.
    pub max_color: u8,
}

/// Appends a METER_FEATURES reply body.
pub fn put_meter_features(out: &mut Vec<u8>, f: &MeterFeatures) {
    put_u32(out, f.max_meter);
    put_u32(out, f.band_types);
    put_u32(out, f.capabilities);
    out.push(f.max_bands);
    out.push(f.max_color);
    put_u16(out, 0);
}

/// Decodes a METER_FEATURES reply body.
pub fn pull_meter_features(body: &[u8]) -> Result<MeterFeatures, OfpError> {
    if body.len() != 16 {
        return Err(OfpError::BAD_LEN);
    }
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    Ok(MeterFeatures {
        max_meter: r.u32()?,
        band_types: r.u32()?,
        capabilities: r.u32()?,
        max_bands: r.u8()?,
        max_color: r.u8()?,
    })
}

/// One table's features (`ofp13_table_features`); the properties are kept as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableFeatures {
    /// Table id.
    pub table_id: u8,
    /// `OFPTFC15_*` command (requests only; 0 = replace).
    pub command: u8,
    /// `OFPTFF_*` features bits.
    pub features: u32,
    /// Table name (up to 31 bytes).
    pub name: String,
    /// Metadata bits the table can match.
    pub metadata_match: u64,
    /// Metadata bits the table can write.
    pub metadata_write: u64,
    /// `OFPTC_*` capabilities.
    pub capabilities: u32,
    /// Maximum number of flows.
    pub max_entries: u32,
    /// The property list (instructions, next tables, actions, fields...), padded to 8.
    pub properties: Vec<u8>,
}

/// Appends one `ofp13_table_features`.
pub fn put_table_features(out: &mut Vec<u8>, t: &TableFeatures) {
    let s = out.len();
    put_u16(out, 0);
    out.push(t.table_id);
    out.push(t.command);
    put_u32(out, t.features);
    let mut name = [0u8; 32];
    let n = truncated(&t.name, 31);
    name[..n.len()].copy_from_slice(n.as_bytes());
    out.extend_from_slice(&name);
    put_u64(out, t.metadata_match);
    put_u64(out, t.metadata_write);
    put_u32(out, t.capabilities);
    put_u32(out, t.max_entries);
    out.extend_from_slice(&t.properties);
    pad8(out, s);
    let len = out.len() - s;
    patch_u16(out, s, len);
}

/// Decodes the `ofp13_table_features` entries of a TABLE_FEATURES request or reply body.
pub fn pull_table_features(body: &[u8]) -> Result<Vec<TableFeatures>, OfpError> {
    let mut r = Reader::new(body, OfpError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.clone().u16()?);
        if len < 64 || len % 8 != 0 {
            return Err(OfpError::BAD_LEN);
        }
        let mut e = Reader::new(r.bytes(len)?, OfpError::BAD_LEN);
        e.skip(2)?;
        let table_id = e.u8()?;
        let command = e.u8()?;
        let features = e.u32()?;
        let name = e.bytes(32)?;
        let end = name.iter().position(|&c| c == 0).unwrap_or(32);
        v.push(TableFeatures {
            table_id,
            command,
            features,
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
            metadata_match: e.u64()?,
            metadata_write: e.u64()?,
            capabilities: e.u32()?,
            max_entries: e.u32()?,
            properties: e.rest().to_vec(),
        });
    }
    Ok(v)
}

/// Group types a GROUP_FEATURES reply announces (all four).
pub fn all_group_types() -> u32 {
    [
        GroupType::All,
        GroupType::Select,
        GroupType::Indirect,
        GroupType::FastFailover,
    ]
    .iter()
    .map(|t| 1u32 << crate::mods::group_type_code(*t))
    .fold(0, |a, b| a | b)
}

/// Appends the FLOW_DESC replies for `flows` (with their statistics), split into as many
/// messages as needed.
pub fn put_flow_stats_replies(
    out: &mut Vec<u8>,
    version: u8,
    xid: u32,
    flows: &[xvs_flowtable::Flow],
) {
    let mut w = ReplyWriter::new(out, version, xid, multipart::MP_FLOW_DESC);
    for f in flows {
        w.entry(|o| multipart::put_flow_desc(o, f));
    }
    w.finish();
}
