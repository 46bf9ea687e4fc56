//! One OpenFlow connection's protocol state, sans-IO: bytes in ([`Session::receive`]), bytes
//! out (appended to the session's output buffer), against the shared [`Switch`].
//!
//! Semantics follow Open vSwitch's `ofproto.c` for a primary controller connection:
//! - HELLO negotiation (we speak OpenFlow 1.5 only); no common version: `OFPHFC_INCOMPATIBLE`
//!   and the connection closes.
//! - A malformed or unknown message gets the OFPT_ERROR OVS sends (echoing at most 64 bytes
//!   of the request) and the session continues.
//! - Standalone flow/group/meter mods are applied in order; consecutive mods received in one
//!   read are committed as one pipeline version (a refused mod is reported with its error
//!   and left out, the others still apply, as if applied one by one).
//! - Bundles: BUNDLE_ADD decodes and queues; COMMIT applies every queued mod as one atomic
//!   pipeline commit. A failing mod is reported with its error (echoing its BUNDLE_ADD
//!   message) before the COMMIT's own `OFPBFC_MSG_FAILED`, and nothing is applied. Unlike OVS,
//!   a BUNDLE_ADD that fails to decode also fails the whole bundle, so an atomic bundle is
//!   all-or-nothing whatever went wrong.

use super::switch::Switch;
use std::collections::HashMap;
use xvs_flowtable::pipeline::PipelineMod;
use xvs_openflow::stats::{self, ReplyWriter};
use xvs_openflow::{
    bundle, decode, encode, error_reply, negotiate, Body, BundleControl, DecodeError, Features,
    Message, OfpError, PacketIn, PortStatus, Role, SwitchConfig, OFP10_VERSION, OFP15_VERSION,
};

/// Versions we speak (bitmap bit n = wire version n): 1.5, and 1.0 for what `ovs-ofctl
/// mod-port` does with its default protocol (FEATURES with the port list, PORT_MOD, BARRIER,
/// ECHO; the codec refuses other 1.0 messages).
const OUR_VERSIONS: u32 = (1 << OFP15_VERSION) | (1 << OFP10_VERSION);
/// Open bundles one connection may hold (OVS has no fixed limit; this bounds memory).
const MAX_BUNDLES: usize = 64;
/// Messages one bundle may hold.
const MAX_BUNDLE_MSGS: usize = 4_000_000;
/// Bytes a multipart request split over several messages may total.
const MAX_MULTIPART: usize = 16 << 20;

/// A bundle being filled.
#[derive(Debug)]
struct OpenBundle {
    flags: u16,
    closed: bool,
    /// The mods and, for error reports, the first bytes of their BUNDLE_ADD messages.
    mods: Vec<PipelineMod>,
    origins: Origins,
    /// A BUNDLE_ADD of this bundle was refused: the commit must fail.
    failed: bool,
}

/// Why the connection must close.
#[derive(Debug, PartialEq, Eq)]
pub enum Close {
    /// No common OpenFlow version.
    Incompatible,
    /// The byte stream cannot be framed (a header length below 8).
    BadFraming,
}

/// The state of one connection.
#[derive(Debug)]
pub struct Session {
    /// Bytes to send.
    pub out: Vec<u8>,
    negotiated: bool,
    /// The negotiated wire version (1.5 until a HELLO says otherwise).
    version: u8,
    config: SwitchConfig,
    role: Role,
    controller_id: u16,
    packet_in_format: u32,
    bundles: HashMap<u32, OpenBundle>,
    /// Standalone mods received but not committed yet, with their request bytes.
    pending: Vec<PipelineMod>,
    pending_origins: Vec<Vec<u8>>,
    /// A multipart request being assembled: (xid, type, body so far).
    multipart: Option<(u32, u16, Vec<u8>)>,
    /// Xid of the next message we originate (echo requests).
    next_xid: u32,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A new session; its output already holds our HELLO.
    pub fn new() -> Self {
        let mut s = Session {
            out: Vec::new(),
            negotiated: false,
            version: OFP15_VERSION,
            config: SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            },
            role: Role::default(),
            controller_id: 0,
            packet_in_format: 0,
            bundles: HashMap::new(),
            pending: Vec::new(),
            pending_origins: Vec::new(),
            multipart: None,
            next_xid: 0x1000_0000,
        };
        s.send(
            0,
            Body::Hello {
                versions: OUR_VERSIONS,
            },
        );
        s
    }

    fn send(&mut self, xid: u32, body: Body) {
        encode(
            &Message {
                version: self.version,
                xid,
                body,
            },
            &mut self.out,
        );
    }

    fn send_error(&mut self, request: &[u8], error: OfpError) {
        encode(&error_reply(request, error), &mut self.out);
    }

    /// Queues `pin` if this connection takes packet-ins for `controller_id`: a negotiated
    /// connection with that controller id (`NXT_SET_CONTROLLER_ID`, default 0), not in the
    /// slave role; as `NXT_PACKET_IN2` when it asked for that format, else as an OpenFlow
    /// 1.5 PACKET_IN (which has no room for userdata). Returns whether it was queued.
    pub fn packet_in(&mut self, pin: &PacketIn, controller_id: u16) -> bool {
        const ROLE_SLAVE: u32 = 3;
        if !self.negotiated
            || self.version != OFP15_VERSION
            || self.controller_id != controller_id
            || self.role.role == ROLE_SLAVE
        {
            return false;
        }
        let body = if self.packet_in_format == 2 {
            Body::PacketIn2(Box::new(pin.clone()))
        } else {
            let mut p = pin.clone();
            p.userdata.clear();
            p.continuation.clear();
            Body::PacketIn(Box::new(p))
        };
        self.send(0, body);
        true
    }

    /// Queues a PORT_STATUS if the connection is negotiated. Every controller gets it,
    /// slaves included (OpenFlow 1.5 sends port status to all roles by default). Returns
    /// whether it was queued.
    pub fn port_status(&mut self, ps: &PortStatus) -> bool {
        if !self.negotiated {
            return false;
        }
        self.send(0, Body::PortStatus(Box::new(ps.clone())));
        true
    }

    /// Queues an ECHO_REQUEST (keepalive).
    pub fn send_echo(&mut self) {
        self.next_xid = self.next_xid.wrapping_add(1);
        self.send(self.next_xid, Body::EchoRequest(Vec::new()));
    }

    /// Handles every whole message at the front of `input`; returns the bytes consumed, or why
    /// the connection must close.
    pub fn receive(&mut self, input: &[u8], sw: &mut Switch) -> Result<usize, Close> {
        let mut used = 0;
        let result = loop {
            let rest = &input[used..];
            match decode(rest) {
                Ok((msg, n)) => {
                    let raw = &rest[..n];
                    used += n;
                    if let Err(c) = self.handle(msg, raw, sw) {
                        break Err(c);
                    }
                }
                Err(DecodeError::Incomplete { .. }) => break Ok(used),
                Err(DecodeError::BadFraming(_)) => break Err(Close::BadFraming),
                Err(DecodeError::Invalid { error, len }) => {
                    let raw = &rest[..len];
                    used += len;
                    self.flush_pending(sw);
                    if raw[1] == xvs_openflow::msg_type::BUNDLE_ADD_MESSAGE {
                        self.fail_bundle_of(raw);
                    }
                    self.send_error(raw, error);
                }
            }
        };
        // Mods of this read are committed before anything else is answered.
        self.flush_pending(sw);
        result
    }

    /// Marks the bundle a refused BUNDLE_ADD named as failed.
    fn fail_bundle_of(&mut self, raw: &[u8]) {
        if raw.len() >= 12 {
            let id = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
            if let Some(b) = self.bundles.get_mut(&id) {
                b.failed = true;
            }
        }
    }

    /// Commits the standalone mods received so far (one pipeline version), reporting each
    /// refused one with its error; the others still apply.
    fn flush_pending(&mut self, sw: &mut Switch) {
        if self.pending.is_empty() {
            return;
        }
        let mut mods = std::mem::take(&mut self.pending);
        let mut origins = std::mem::take(&mut self.pending_origins);
        let mut errors: Vec<(usize, Vec<u8>, OfpError)> = Vec::new();
        let mut removed_before = 0;
        while !mods.is_empty() {
            match sw.commit(&mods) {
                Ok(()) => break,
                Err(e) => {
                    let i = e.index.min(mods.len() - 1);
                    mods.remove(i);
                    let origin = origins.remove(i);
                    errors.push((
                        i + removed_before,
                        origin,
                        OfpError::from_pipeline(&e.error),
                    ));
                    removed_before += 1;
                }
            }
        }
        // Errors go out in request order.
        errors.sort_by_key(|(i, _, _)| *i);
        for (_, origin, err) in errors {
            self.send_error(&origin, err);
        }
    }

    fn handle(&mut self, msg: Message, raw: &[u8], sw: &mut Switch) -> Result<(), Close> {
        let xid = msg.xid;
        crate::vlog::vlog!(
            crate::vlog::Module::Ofserver,
            crate::vlog::Level::Dbg,
            "received message type {} ({} bytes, xid={xid:#x})",
            raw.get(1).copied().unwrap_or(0),
            raw.len()
        );
        // Mods queue up; anything else first commits them, so replies keep request order.
        let is_mod = matches!(
            msg.body,
            Body::FlowMod(_) | Body::GroupMod(_) | Body::MeterMod { .. }
        );
        if !is_mod {
            self.flush_pending(sw);
        }
        if self.negotiated && msg.version != self.version && !matches!(msg.body, Body::Hello { .. })
        {
            // As OVS: a message in another version than the negotiated one.
            self.send_error(raw, OfpError::BAD_VERSION);
            return Ok(());
        }
        match msg.body {
            Body::Hello { versions } => {
                let Some(version) = negotiate(OUR_VERSIONS, versions) else {
                    let mut data = b"We support version 0x06, you support ".to_vec();
                    data.extend_from_slice(format!("bitmap 0x{versions:08x}").as_bytes());
                    encode(
                        &Message {
                            version: OFP15_VERSION,
                            xid,
                            body: Body::Error {
                                error: OfpError::HELLO_INCOMPATIBLE,
                                data,
                            },
                        },
                        &mut self.out,
                    );
                    return Err(Close::Incompatible);
                };
                self.version = version;
                self.negotiated = true;
            }
            Body::FeaturesRequest if self.version == OFP10_VERSION => {
                let reply = xvs_openflow::ofp10::FeaturesReply10 {
                    datapath_id: sw.datapath_id,
                    n_buffers: 0,
                    n_tables: 254,
                    // FLOW_STATS | TABLE_STATS | PORT_STATS | QUEUE_STATS | ARP_MATCH_IP.
                    capabilities: 0xc7,
                    actions: 0xfff,
                    ports: sw.port_descs(u32::MAX),
                };
                self.send(xid, Body::FeaturesReply10(Box::new(reply)));
            }
            Body::EchoRequest(d) => self.send(xid, Body::EchoReply(d)),
            Body::EchoReply(_) | Body::Error { .. } => {}
            Body::FeaturesRequest => self.send(
                xid,
                Body::FeaturesReply(Features {
                    datapath_id: sw.datapath_id,
                    n_buffers: 0,
                    n_tables: super::switch::N_VISIBLE_TABLES as u8,
                    auxiliary_id: 0,
                    // FLOW_STATS | TABLE_STATS | PORT_STATS | GROUP_STATS | QUEUE_STATS, as OVS.
                    capabilities: 0x4f,
                }),
            ),
            Body::GetConfigRequest => self.send(xid, Body::GetConfigReply(self.config)),
            Body::SetConfig(c) => self.config = c,
            Body::BarrierRequest => self.send(xid, Body::BarrierReply),
            Body::PortMod(pm) => {
                if let Err(e) = sw.port_mod(&pm) {
                    self.send_error(raw, e);
                }
            }
            Body::RoleRequest(r) => {
                // Role 0 (no change) only reports; generation ids are not enforced.
                if r.role != 0 {
                    self.role = r;
                }
                let reply = Role {
                    role: if self.role.role == 0 {
                        1
                    } else {
                        self.role.role
                    },
                    generation_id: self.role.generation_id,
                };
                self.send(xid, Body::RoleReply(reply));
            }
            Body::SetControllerId(id) => self.controller_id = id,
            Body::SetPacketInFormat(f) => self.packet_in_format = f,
            // OpenFlow 1.0 session options: accepted, nothing to change in OpenFlow 1.5.
            Body::SetFlowFormat(_) | Body::FlowModTableId(_) => {}
            Body::FlowMod(fm) => {
                if let Err(e) = sw.check_tlv_fields(&fm.fm.flow) {
                    self.flush_pending(sw);
                    self.send_error(raw, e);
                    return Ok(());
                }
                self.pending.push(PipelineMod::Flow(fm.fm));
                self.pending_origins.push(head(raw));
            }
            Body::TlvTableMod { command, maps } => {
                if let Err(e) = sw.tlv_table_mod(command, &maps) {
                    self.send_error(raw, e);
                }
            }
            Body::TlvTableRequest => {
                let tlv = sw.tlv_table();
                self.send(
                    xid,
                    Body::TlvTableReply {
                        max_option_space: xvs_flowtable::tlv::TlvMap::MAX_OPTION_SPACE,
                        max_fields: xvs_flowtable::tlv::TlvMap::MAX_FIELDS,
                        maps: tlv.mappings(),
                    },
                );
            }
            Body::GroupMod(gm) => {
                self.pending.push(PipelineMod::Group(*gm));
                self.pending_origins.push(head(raw));
            }
            Body::MeterMod { command, meter } => {
                self.pending
                    .push(PipelineMod::Meter(meter_mod(command, meter)));
                self.pending_origins.push(head(raw));
            }
            Body::BundleControl(c) => self.bundle_control(xid, raw, c, sw),
            Body::BundleAdd {
                bundle_id,
                flags,
                message,
            } => self.bundle_add(raw, bundle_id, flags, *message, sw),
            Body::DescRequest => self.send(xid, Body::DescReply(sw.desc())),
            Body::FlowStatsRequest(q) => {
                let flows = sw.flow_stats(&q);
                stats::put_flow_stats_replies(&mut self.out, OFP15_VERSION, xid, &flows);
            }
            Body::MultipartRequest {
                mp_type,
                flags,
                body,
            } => self.multipart_request(xid, raw, mp_type, flags, body, sw),
            Body::PacketOut(po) => {
                if let Err(e) = sw.packet_out(&po) {
                    self.send_error(raw, e);
                }
            }
            Body::Resume(pin) => {
                if let Err(e) = sw.resume(&pin) {
                    self.send_error(raw, e);
                }
            }
            // Messages only a switch sends.
            Body::PacketIn(_)
            | Body::PacketIn2(_)
            | Body::PortStatus(_)
            | Body::FeaturesReply(_)
            | Body::FeaturesReply10(_)
            | Body::GetConfigReply(_)
            | Body::BarrierReply
            | Body::RoleReply(_)
            | Body::DescReply(_)
            | Body::FlowStatsReply { .. }
            | Body::TlvTableReply { .. }
            | Body::MultipartReply { .. } => self.send_error(raw, OfpError::BAD_TYPE),
        }
        Ok(())
    }

    fn bundle_control(&mut self, xid: u32, raw: &[u8], c: BundleControl, sw: &mut Switch) {
        let reply = |ctrl_type: u16| {
            Body::BundleControl(BundleControl {
                bundle_id: c.bundle_id,
                ctrl_type,
                flags: 0,
                properties: Vec::new(),
            })
        };
        let result = match c.ctrl_type {
            bundle::OPEN_REQUEST => {
                if self.bundles.contains_key(&c.bundle_id) {
                    Err(OfpError::BUNDLE_EXIST)
                } else if self.bundles.len() >= MAX_BUNDLES {
                    Err(OfpError::OUT_OF_BUNDLES)
                } else {
                    self.bundles.insert(
                        c.bundle_id,
                        OpenBundle {
                            flags: c.flags,
                            closed: false,
                            mods: Vec::new(),
                            origins: Origins::default(),
                            failed: false,
                        },
                    );
                    Ok(bundle::OPEN_REPLY)
                }
            }
            bundle::CLOSE_REQUEST => match self.bundles.get_mut(&c.bundle_id) {
                None => Err(OfpError::BUNDLE_BAD_ID),
                Some(b) if b.closed => Err(OfpError::BUNDLE_CLOSED),
                Some(b) if b.flags != c.flags => Err(OfpError::BUNDLE_BAD_FLAGS),
                Some(b) => {
                    b.closed = true;
                    Ok(bundle::CLOSE_REPLY)
                }
            },
            bundle::COMMIT_REQUEST => match self.bundles.remove(&c.bundle_id) {
                None => Err(OfpError::BUNDLE_BAD_ID),
                // OVS discards the bundle whatever the outcome.
                Some(b) if b.flags != c.flags => Err(OfpError::BUNDLE_BAD_FLAGS),
                Some(b) if b.failed => Err(OfpError::BUNDLE_MSG_FAILED),
                Some(b) => {
                    let r = match sw.commit(&b.mods) {
                        Ok(()) => Ok(bundle::COMMIT_REPLY),
                        Err(e) => {
                            if let Some(origin) = b.origins.get(e.index) {
                                self.send_error(origin, OfpError::from_pipeline(&e.error));
                            }
                            Err(OfpError::BUNDLE_MSG_FAILED)
                        }
                    };
                    sw.defer_drop(b.mods);
                    r
                }
            },
            bundle::DISCARD_REQUEST => match self.bundles.remove(&c.bundle_id) {
                None => Err(OfpError::BUNDLE_BAD_ID),
                Some(_) => Ok(bundle::DISCARD_REPLY),
            },
            _ => Err(OfpError::BUNDLE_BAD_TYPE),
        };
        match result {
            Ok(t) => self.send(xid, reply(t)),
            Err(e) => self.send_error(raw, e),
        }
    }

    fn bundle_add(
        &mut self,
        raw: &[u8],
        bundle_id: u32,
        flags: u16,
        message: Message,
        sw: &Switch,
    ) {
        let m = match message.body {
            Body::FlowMod(fm) => PipelineMod::Flow(fm.fm),
            Body::GroupMod(gm) => PipelineMod::Group(*gm),
            Body::MeterMod { command, meter } => PipelineMod::Meter(meter_mod(command, meter)),
            _ => {
                self.fail_bundle_of(raw);
                self.send_error(raw, OfpError::BUNDLE_MSG_UNSUP);
                return;
            }
        };
        // A BUNDLE_ADD may open the bundle implicitly (OpenFlow 1.4+, as OVS allows).
        if !self.bundles.contains_key(&bundle_id) && self.bundles.len() < MAX_BUNDLES {
            self.bundles.insert(
                bundle_id,
                OpenBundle {
                    flags,
                    closed: false,
                    mods: Vec::new(),
                    origins: Origins::default(),
                    failed: false,
                },
            );
        }
        let err = match self.bundles.get_mut(&bundle_id) {
            None => Some(OfpError::OUT_OF_BUNDLES),
            Some(b) if !b.closed && b.flags == flags => precheck(&m, b, sw).err(),
            _ => None,
        };
        let err = err.or_else(|| match self.bundles.get_mut(&bundle_id) {
            None => Some(OfpError::OUT_OF_BUNDLES),
            Some(b) if b.closed => Some(OfpError::BUNDLE_CLOSED),
            Some(b) if b.flags != flags => Some(OfpError::BUNDLE_BAD_FLAGS),
            Some(b) if b.mods.len() >= MAX_BUNDLE_MSGS => Some(OfpError::BUNDLE_MSG_TOO_MANY),
            Some(b) => {
                b.mods.push(m);
                b.origins.push(raw);
                None
            }
        });
        if let Some(e) = err {
            if let Some(b) = self.bundles.get_mut(&bundle_id) {
                b.failed = true;
            }
            self.send_error(raw, e);
        }
    }

    fn multipart_request(
        &mut self,
        xid: u32,
        raw: &[u8],
        mp_type: u16,
        flags: u16,
        body: Vec<u8>,
        sw: &mut Switch,
    ) {
        // Assemble requests split over several messages (TABLE_FEATURES sets).
        let body = match self.multipart.take() {
            Some((x, t, mut acc)) if x == xid && t == mp_type => {
                acc.extend_from_slice(&body);
                acc
            }
            _ => body,
        };
        if flags & xvs_openflow::multipart::MORE != 0 {
            if body.len() > MAX_MULTIPART {
                self.send_error(raw, OfpError::MULTIPART_BUFFER_OVERFLOW);
            } else {
                self.multipart = Some((xid, mp_type, body));
            }
            return;
        }
        let v = OFP15_VERSION;
        let result: Result<(), OfpError> = (|| {
            match mp_type {
                stats::MP_AGGREGATE => {
                    let q = stats::pull_aggregate_request(&body)?;
                    let a = sw.aggregate(&q);
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    w.entry(|o| stats::put_aggregate(o, &a));
                    w.finish();
                }
                stats::MP_TABLE => {
                    no_body(&body)?;
                    let tables = sw.table_stats();
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for t in &tables {
                        w.entry(|o| stats::put_table_stats(o, t));
                    }
                    w.finish();
                }
                stats::MP_PORT_STATS => {
                    let port = stats::pull_port_request(&body)?;
                    let ports = sw.port_stats(port)?;
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for p in &ports {
                        w.entry(|o| stats::put_port_stats(o, p));
                    }
                    w.finish();
                }
                stats::MP_PORT_DESC => {
                    let port = stats::pull_port_request(&body)?;
                    let ports = sw.port_descs(port);
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for p in &ports {
                        w.entry(|o| stats::put_port_desc(o, p));
                    }
                    w.finish();
                }
                stats::MP_GROUP_DESC => {
                    let id = stats::pull_id_request(&body)?;
                    let groups = sw.groups(id);
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for g in &groups {
                        w.entry(|o| stats::put_group_desc(o, g));
                    }
                    w.finish();
                }
                stats::MP_GROUP_STATS => {
                    let id = stats::pull_id_request(&body)?;
                    let groups = sw.group_stats(id);
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for g in &groups {
                        w.entry(|o| stats::put_group_stats(o, g));
                    }
                    w.finish();
                }
                stats::MP_GROUP_FEATURES => {
                    no_body(&body)?;
                    let f = sw.group_features();
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    w.entry(|o| stats::put_group_features(o, &f));
                    w.finish();
                }
                stats::MP_METER_DESC => {
                    let id = stats::pull_id_request(&body)?;
                    let meters = sw.meters(id);
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for m in &meters {
                        w.entry(|o| stats::put_meter_desc(o, m));
                    }
                    w.finish();
                }
                stats::MP_METER_STATS => {
                    let id = stats::pull_id_request(&body)?;
                    let meters = sw.meter_stats(id);
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for m in &meters {
                        w.entry(|o| stats::put_meter_stats(o, m));
                    }
                    w.finish();
                }
                stats::MP_METER_FEATURES => {
                    no_body(&body)?;
                    let f = sw.meter_features();
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    w.entry(|o| stats::put_meter_features(o, &f));
                    w.finish();
                }
                stats::MP_TABLE_FEATURES => {
                    let set = stats::pull_table_features(&body)?;
                    sw.set_table_features(&set)?;
                    let tables = sw.table_features();
                    let mut w = ReplyWriter::new(&mut self.out, v, xid, mp_type);
                    for t in &tables {
                        w.entry(|o| stats::put_table_features(o, t));
                    }
                    w.finish();
                }
                _ => return Err(OfpError::BAD_MULTIPART),
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.send_error(raw, e);
        }
    }
}

/// The checks OVS makes when a flow mod is added to a bundle (`ofproto_check_ofpacts`):
/// groups and meters it uses must exist, or be added earlier in the same bundle. Reporting
/// them at BUNDLE_ADD time, as OVS does, lets a controller see the error before it closes
/// the bundle; the commit checks everything again.
fn precheck(m: &PipelineMod, b: &OpenBundle, sw: &Switch) -> Result<(), OfpError> {
    use xvs_flowtable::action::Action;
    use xvs_flowtable::flow::FlowModCommand as C;
    use xvs_flowtable::group::GroupCommand;
    let PipelineMod::Flow(fm) = m else {
        return Ok(());
    };
    if matches!(fm.command, C::Delete | C::DeleteStrict) {
        return Ok(());
    }
    sw.check_tlv_fields(&fm.flow)?;
    for a in &fm.flow.actions {
        match a {
            Action::Group(g) => {
                let in_bundle = b.mods.iter().any(|m| {
                    matches!(m, PipelineMod::Group(gm)
                        if gm.group.group_id == *g && gm.command == GroupCommand::Add)
                });
                if !in_bundle && !sw.group_exists(*g) {
                    return Err(OfpError::BAD_OUT_GROUP);
                }
            }
            Action::Meter(id) => {
                let in_bundle = b.mods.iter().any(|m| {
                    matches!(m, PipelineMod::Meter(mm)
                        if mm.meter.meter_id == *id
                            && mm.command == xvs_flowtable::pipeline::MeterCommand::Add)
                });
                if !in_bundle && !sw.meter_exists(*id) {
                    return Err(OfpError::INVALID_METER);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn no_body(body: &[u8]) -> Result<(), OfpError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(OfpError::BAD_LEN)
    }
}

/// The first bytes (what an error echoes) of many requests, in one buffer: a bundle of a
/// million flow mods must not cost a million small allocations.
#[derive(Debug, Default)]
struct Origins {
    bytes: Vec<u8>,
    /// End of each request's bytes in `bytes`.
    ends: Vec<u32>,
}

impl Origins {
    fn push(&mut self, raw: &[u8]) {
        self.bytes
            .extend_from_slice(&raw[..raw.len().min(xvs_openflow::ERROR_DATA_MAX)]);
        self.ends.push(self.bytes.len() as u32);
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.bytes.get(start..end)
    }
}

/// The part of a request an error echoes.
fn head(raw: &[u8]) -> Vec<u8> {
    raw[..raw.len().min(xvs_openflow::ERROR_DATA_MAX)].to_vec()
}

fn meter_mod(
    command: xvs_openflow::MeterCommand,
    meter: xvs_flowtable::meter::Meter,
) -> xvs_flowtable::pipeline::MeterMod {
    use xvs_flowtable::pipeline::MeterCommand as C;
    xvs_flowtable::pipeline::MeterMod {
        command: match command {
            xvs_openflow::MeterCommand::Add => C::Add,
            xvs_openflow::MeterCommand::Modify => C::Modify,
            xvs_openflow::MeterCommand::Delete => C::Delete,
        },
        meter,
    }
}
