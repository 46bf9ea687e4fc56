//! The OpenFlow 1.5 connection to xvsd's management socket (the only IO in the library):
//! Antrea's connect sequence, table naming, and change sets as ATOMIC bundles.

use crate::diff::Mod;
use crate::pipeline::{ROUND_MASK, TABLES};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use xvs_flowtable::flow::{Flow, FlowModCommand, Match};
use xvs_flowtable::group::{Group, GroupCommand, GroupMod, GroupType};
use xvs_flowtable::names::Port;
use xvs_openflow::multipart::FlowStatsRequest;
use xvs_openflow::{
    bundle, decode, encode, stats, Body, BundleControl, DecodeError, FlowModMsg, Message,
    MeterCommand, OfpError, PacketIn, PacketOut, NO_BUFFER, OFP15_VERSION,
};

/// Connection errors.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket error.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The switch closed the connection.
    #[error("the switch closed the connection")]
    Closed,
    /// The switch sent something undecodable.
    #[error("undecodable message from the switch: {0}")]
    Decode(String),
    /// The switch does not speak OpenFlow 1.5.
    #[error("the switch does not speak OpenFlow 1.5")]
    Version,
    /// No reply in time.
    #[error("no reply from the switch within {0:?}")]
    Timeout(Duration),
    /// The switch refused a request.
    #[error("the switch refused {what}: {error:?}")]
    Refused {
        /// What was sent.
        what: String,
        /// The error.
        error: OfpError,
    },
    /// An unexpected reply.
    #[error("unexpected reply to {0}")]
    Unexpected(String),
}

/// A connected OpenFlow 1.5 session.
#[derive(Debug)]
pub struct OfConn {
    stream: UnixStream,
    rx: Vec<u8>,
    next_xid: u32,
    next_bundle: u32,
    /// Packet-ins received and not yet taken (read whenever the connection is read).
    packet_ins: Vec<PacketIn>,
    /// Packet-ins dropped because `packet_ins` was full.
    packet_ins_dropped: u64,
    /// Set while [`OfConn::idle`] waits: a packet-in ends the wait at once (paused DNS
    /// answers and reject answers must not sit out the rest of the poll interval).
    wake_on_packet_in: bool,
}

/// Packet-ins kept between two [`OfConn::take_packet_ins`]; more are dropped (best effort,
/// as the switch's meter already is).
const MAX_PENDING_PACKET_INS: usize = 1024;

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl OfConn {
    /// Connects and negotiates OpenFlow 1.5 (HELLO, FEATURES_REQUEST).
    pub fn connect(path: &Path) -> Result<Self, ConnError> {
        let stream = UnixStream::connect(path)?;
        let mut c = OfConn {
            stream,
            rx: Vec::new(),
            next_xid: 1,
            next_bundle: 1,
            packet_ins: Vec::new(),
            packet_ins_dropped: 0,
            wake_on_packet_in: false,
        };
        c.send(Body::Hello {
            versions: 1 << OFP15_VERSION,
        })?;
        let hello = c.recv(REPLY_TIMEOUT)?;
        match hello.body {
            Body::Hello { versions }
                if versions & (1 << OFP15_VERSION) != 0 && hello.version == OFP15_VERSION => {}
            _ => return Err(ConnError::Version),
        }
        let xid = c.send(Body::FeaturesRequest)?;
        let (reply, _) = c.wait_xid(xid)?;
        if !matches!(reply.body, Body::FeaturesReply(_)) {
            return Err(ConnError::Unexpected("FEATURES_REQUEST".into()));
        }
        c.send(Body::SetPacketInFormat(2))?;
        Ok(c)
    }

    fn send(&mut self, body: Body) -> Result<u32, ConnError> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        let mut out = Vec::new();
        encode(
            &Message {
                version: OFP15_VERSION,
                xid,
                body,
            },
            &mut out,
        );
        self.stream.write_all(&out)?;
        Ok(xid)
    }

    /// The next message (echo requests answered, packet-ins set aside), waiting at most
    /// `timeout`.
    fn recv(&mut self, timeout: Duration) -> Result<Message, ConnError> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode(&self.rx) {
                Ok((msg, n)) => {
                    self.rx.drain(..n);
                    if let Body::EchoRequest(d) = &msg.body {
                        let mut out = Vec::new();
                        encode(
                            &Message {
                                version: OFP15_VERSION,
                                xid: msg.xid,
                                body: Body::EchoReply(d.clone()),
                            },
                            &mut out,
                        );
                        self.stream.write_all(&out)?;
                        continue;
                    }
                    if let Body::PacketIn2(pi) | Body::PacketIn(pi) = msg.body {
                        if self.packet_ins.len() < MAX_PENDING_PACKET_INS {
                            self.packet_ins.push(*pi);
                        } else {
                            self.packet_ins_dropped += 1;
                        }
                        if self.wake_on_packet_in {
                            return Err(ConnError::Timeout(Duration::ZERO));
                        }
                        continue;
                    }
                    return Ok(msg);
                }
                Err(DecodeError::Incomplete { .. }) => {}
                Err(e) => return Err(ConnError::Decode(e.to_string())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnError::Timeout(timeout));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(ConnError::Timeout(timeout))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Serves the connection (echo requests) for `d`, or until a packet-in is pending; errors
    /// only if it breaks.
    pub fn idle(&mut self, d: Duration) -> Result<(), ConnError> {
        let deadline = Instant::now() + d;
        self.wake_on_packet_in = true;
        let mut r = Ok(());
        while Instant::now() < deadline && self.packet_ins.is_empty() {
            match self.recv(deadline.saturating_duration_since(Instant::now())) {
                Ok(_) | Err(ConnError::Timeout(_)) => {}
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        self.wake_on_packet_in = false;
        r
    }

    /// Claims the packet-ins of `controller(id=<id>)` actions for this connection
    /// (NXT_SET_CONTROLLER_ID; the switch sends them only to connections with that id).
    pub fn set_controller_id(&mut self, id: u16) -> Result<(), ConnError> {
        self.send(Body::SetControllerId(id))?;
        self.barrier("NXT_SET_CONTROLLER_ID")
    }

    /// Installs `meter` (ovs-ofctl syntax), replacing one with the same id (ADD, then MODIFY
    /// when the switch already has it: a delete would remove the flows using it).
    pub fn set_meter(&mut self, meter: &str) -> Result<(), ConnError> {
        let meter = xvs_flowtable::meter::parse_meter(meter)
            .map_err(|e| ConnError::Unexpected(format!("{meter}: {e}")))?;
        self.send(Body::MeterMod {
            command: MeterCommand::Add,
            meter: meter.clone(),
        })?;
        if self.barrier("METER_MOD add").is_ok() {
            return Ok(());
        }
        self.send(Body::MeterMod {
            command: MeterCommand::Modify,
            meter,
        })?;
        self.barrier("METER_MOD modify")
    }

    /// The packet-ins received since the last call (NXT_PACKET_IN2, as `connect` asked).
    pub fn take_packet_ins(&mut self) -> Vec<PacketIn> {
        std::mem::take(&mut self.packet_ins)
    }

    /// Packet-ins dropped so far because too many were pending.
    pub fn packet_ins_dropped(&self) -> u64 {
        self.packet_ins_dropped
    }

    /// Sends a PACKET_OUT (no reply: a refusal arrives later as an error and is ignored).
    pub fn packet_out(&mut self, po: PacketOut) -> Result<(), ConnError> {
        self.send(Body::PacketOut(Box::new(po)))?;
        Ok(())
    }

    /// Sends NXT_RESUME for a paused packet-in (its continuation continues the packet's
    /// translation in the switch); no reply: a stale continuation comes back as an error,
    /// ignored like a refused PACKET_OUT.
    pub fn resume(&mut self, pi: PacketIn) -> Result<(), ConnError> {
        self.send(Body::Resume(Box::new(pi)))?;
        Ok(())
    }

    /// Waits for the message with `xid` that ends a request (not a multipart reply with
    /// "more"); returns it and every other message seen before it.
    fn wait_xid(&mut self, xid: u32) -> Result<(Message, Vec<Message>), ConnError> {
        let mut before = Vec::new();
        loop {
            let m = self.recv(REPLY_TIMEOUT)?;
            if m.xid == xid {
                return Ok((m, before));
            }
            before.push(m);
        }
    }

    fn barrier(&mut self, what: &str) -> Result<(), ConnError> {
        let xid = self.send(Body::BarrierRequest)?;
        let (_, before) = self.wait_xid(xid)?;
        for m in before {
            if let Body::Error { error, .. } = m.body {
                return Err(ConnError::Refused {
                    what: what.to_string(),
                    error,
                });
            }
        }
        Ok(())
    }

    /// Names the tables as Antrea does: TABLE_FEATURES get, then set with the names.
    pub fn name_tables(&mut self) -> Result<(), ConnError> {
        let body = self.multipart(stats::MP_TABLE_FEATURES, Vec::new())?;
        let mut tables = stats::pull_table_features(&body).map_err(|error| ConnError::Refused {
            what: "TABLE_FEATURES reply".into(),
            error,
        })?;
        for t in tables.iter_mut() {
            if let Some(n) = TABLES.get(usize::from(t.table_id)) {
                t.name = (*n).to_string();
            }
        }
        let mut out = Vec::new();
        for t in &tables {
            stats::put_table_features(&mut out, t);
        }
        self.multipart(stats::MP_TABLE_FEATURES, out)?;
        Ok(())
    }

    fn multipart(&mut self, mp_type: u16, body: Vec<u8>) -> Result<Vec<u8>, ConnError> {
        let xid = self.send(Body::MultipartRequest {
            mp_type,
            flags: 0,
            body,
        })?;
        let mut all = Vec::new();
        loop {
            let (m, _) = self.wait_xid(xid)?;
            match m.body {
                Body::MultipartReply {
                    mp_type: t,
                    flags,
                    body,
                } if t == mp_type => {
                    all.extend_from_slice(&body);
                    if flags & xvs_openflow::multipart::MORE == 0 {
                        return Ok(all);
                    }
                }
                Body::Error { error, .. } => {
                    return Err(ConnError::Refused {
                        what: format!("multipart {mp_type}"),
                        error,
                    })
                }
                _ => return Err(ConnError::Unexpected(format!("multipart {mp_type}"))),
            }
        }
    }

    /// The switch's ports (PORT_DESC), as `ovs-ofctl dump-ports-desc` lists them.
    pub fn port_descs(&mut self) -> Result<Vec<stats::PortDesc>, ConnError> {
        // OpenFlow 1.5's request names a port: OFPP_ANY, then 4 bytes of padding.
        let mut req = 0xffff_ffffu32.to_be_bytes().to_vec();
        req.extend_from_slice(&[0; 4]);
        let body = self.multipart(stats::MP_PORT_DESC, req)?;
        stats::pull_port_descs(&body).map_err(|error| ConnError::Refused {
            what: "PORT_DESC reply".into(),
            error,
        })
    }

    /// The cookies of every installed flow.
    pub fn installed_cookies(&mut self) -> Result<Vec<u64>, ConnError> {
        Ok(self.flow_stats()?.iter().map(|f| f.cookie).collect())
    }

    /// Every installed flow with its statistics (a FLOW_DESC multipart over all tables).
    pub fn flow_stats(&mut self) -> Result<Vec<Flow>, ConnError> {
        let xid = self.send(Body::FlowStatsRequest(Box::new(FlowStatsRequest {
            table: 0xff,
            out_port: Port::NONE,
            out_group: 0xffff_ffff,
            cookie: 0,
            cookie_mask: 0,
            match_: Match::catch_all(),
        })))?;
        let mut out = Vec::new();
        loop {
            let (m, _) = self.wait_xid(xid)?;
            match m.body {
                Body::FlowStatsReply { flags, flows } => {
                    out.extend(flows);
                    if flags & xvs_openflow::multipart::MORE == 0 {
                        return Ok(out);
                    }
                }
                _ => return Err(ConnError::Unexpected("FLOW_DESC request".into())),
            }
        }
    }

    /// Deletes every flow of `round` (cookie-masked, all tables), outside bundles.
    pub fn delete_round(&mut self, round: u16) -> Result<(), ConnError> {
        let text = format!("cookie={:#x}/{ROUND_MASK:#x}", u64::from(round) << 48);
        let mut fm = xvs_flowtable::parse::parse_flow_mod(
            &text,
            FlowModCommand::Delete,
            &xvs_flowtable::NameMap::new(),
        )
        .map_err(|e| ConnError::Unexpected(format!("{text}: {e}")))?;
        fm.table_given = false;
        self.send(Body::FlowMod(Box::new(FlowModMsg {
            fm,
            buffer_id: NO_BUFFER,
        })))?;
        self.barrier("cookie-masked delete")
    }

    /// Deletes every group.
    pub fn delete_all_groups(&mut self) -> Result<(), ConnError> {
        self.send(Body::GroupMod(Box::new(GroupMod {
            command: GroupCommand::Delete,
            group: Group {
                group_id: 0xffff_fffc,
                group_type: GroupType::All,
                selection_method: String::new(),
                selection_method_param: 0,
                buckets: Vec::new(),
            },
            command_bucket_id: 0xffff_ffff,
        })))?;
        self.barrier("group delete")
    }

    /// Applies `mods` as one ATOMIC bundle: all or nothing. On a refused message the bundle is
    /// discarded and the error returned.
    pub fn apply(&mut self, mods: &[Mod]) -> Result<(), ConnError> {
        if mods.is_empty() {
            return Ok(());
        }
        let id = self.next_bundle;
        self.next_bundle = self.next_bundle.wrapping_add(1);
        let flags = bundle::ATOMIC;
        self.control(id, bundle::OPEN_REQUEST, flags, bundle::OPEN_REPLY)?;
        for m in mods {
            let body = match m {
                Mod::Flow(fm) => Body::FlowMod(Box::new(FlowModMsg {
                    fm: (**fm).clone(),
                    buffer_id: NO_BUFFER,
                })),
                Mod::Group(g) => Body::GroupMod(Box::new(g.clone())),
            };
            let xid = self.next_xid;
            self.next_xid = self.next_xid.wrapping_add(1).max(1);
            let mut out = Vec::new();
            encode(
                &Message {
                    version: OFP15_VERSION,
                    xid,
                    body: Body::BundleAdd {
                        bundle_id: id,
                        flags,
                        message: Box::new(Message {
                            version: OFP15_VERSION,
                            xid,
                            body,
                        }),
                    },
                },
                &mut out,
            );
            self.stream.write_all(&out)?;
        }
        if let Err(e) = self.control(id, bundle::CLOSE_REQUEST, flags, bundle::CLOSE_REPLY) {
            // Best effort: the bundle must not linger.
            let _ = self.control(id, bundle::DISCARD_REQUEST, flags, bundle::DISCARD_REPLY);
            return Err(e);
        }
        self.control(id, bundle::COMMIT_REQUEST, flags, bundle::COMMIT_REPLY)
    }

    fn control(&mut self, id: u32, ctrl: u16, flags: u16, want: u16) -> Result<(), ConnError> {
        let xid = self.send(Body::BundleControl(BundleControl {
            bundle_id: id,
            ctrl_type: ctrl,
            flags,
            properties: Vec::new(),
        }))?;
        let (reply, before) = self.wait_xid(xid)?;
        let what = format!("bundle control {ctrl}");
        if let Some(Body::Error { error, .. }) = before
            .into_iter()
            .map(|m| m.body)
            .find(|b| matches!(b, Body::Error { .. }))
        {
            return Err(ConnError::Refused { what, error });
        }
        match reply.body {
            Body::BundleControl(b) if b.ctrl_type == want => Ok(()),
            Body::Error { error, .. } => Err(ConnError::Refused { what, error }),
            _ => Err(ConnError::Unexpected(what)),
        }
    }
}

/// The round after the highest one among `cookies` (never 0).
pub fn next_round(cookies: &[u64]) -> u16 {
    let max = cookies.iter().map(|c| (c >> 48) as u16).max().unwrap_or(0);
    max.wrapping_add(1).max(1)
}
