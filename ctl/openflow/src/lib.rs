//! OpenFlow 1.5 + Nicira extension codec for xvs: the only crate that knows OpenFlow bytes.
//!
//! Sans-IO: [`decode`] turns the front of a byte buffer into a [`Message`] and tells how many
//! bytes it used; [`encode`] appends a message's bytes to a buffer. Sockets, timers and
//! version negotiation state belong to the caller.
//!
//! Layers, bottom up:
//! - `wire`: bounds-checked reading, big-endian writing.
//! - [`oxm`]: OXM/NXM match entries and field headers, mapped to and from
//!   [`xvs_flowtable::Match`] through the field registry's code points, in the order Open
//!   vSwitch sends them (so our bytes equal `ovs-ofctl`'s).
//! - [`actions`]: OpenFlow 1.5 actions and instructions and the Nicira actions Antrea uses,
//!   mapped to and from [`xvs_flowtable::Action`].
//! - this module: the header (version, type, length, xid) and the messages.
//!
//! Invariant: no input makes [`decode`] panic; malformed messages give the OpenFlow error
//! Open vSwitch would send back ([`DecodeError::Invalid`]), with the message's length so the
//! stream can continue.
#![forbid(unsafe_code)]

pub mod actions;
pub mod error;
pub mod mods;
pub mod multipart;
pub mod ofp10;
pub mod oxm;
pub mod packet_in;
pub mod port_mod;
pub mod port_status;
pub mod stats;
mod wire;

pub use mods::MeterCommand;
pub use multipart::{Desc, FlowStatsRequest};

pub use error::{DecodeError, OfpError};
pub use packet_in::PacketIn;
pub use port_status::{PortReason, PortStatus};

use wire::{pad8, patch_u16, put_u16, put_u32, put_u64, Reader};
use xvs_flowtable::flow::{FlowFlags, FlowModCommand};
use xvs_flowtable::group::GroupMod;
use xvs_flowtable::meter::Meter;
use xvs_flowtable::tlv::{TlvCommand, TlvMapping};
use xvs_flowtable::{Action, Flow, FlowMod, Match, Port};

/// OpenFlow 1.0 wire version.
pub const OFP10_VERSION: u8 = 0x01;
/// OpenFlow 1.5 wire version.
pub const OFP15_VERSION: u8 = 0x06;
/// `OFP_NO_BUFFER`.
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// `OFPG_ANY`.
pub const GROUP_ANY: u32 = 0xffff_ffff;
/// `OFPTT_ALL`.
pub const TABLE_ALL: u8 = 0xff;
/// Bytes of the offending request an ERROR message echoes, as OVS does.
pub const ERROR_DATA_MAX: usize = 64;

/// Message type codes (`OFPT_*`, OpenFlow 1.5 numbering).
pub mod msg_type {
    /// `OFPT_HELLO`.
    pub const HELLO: u8 = 0;
    /// `OFPT_ERROR`.
    pub const ERROR: u8 = 1;
    /// `OFPT_ECHO_REQUEST`.
    pub const ECHO_REQUEST: u8 = 2;
    /// `OFPT_ECHO_REPLY`.
    pub const ECHO_REPLY: u8 = 3;
    /// `OFPT_EXPERIMENTER`.
    pub const EXPERIMENTER: u8 = 4;
    /// `OFPT_FEATURES_REQUEST`.
    pub const FEATURES_REQUEST: u8 = 5;
    /// `OFPT_FEATURES_REPLY`.
    pub const FEATURES_REPLY: u8 = 6;
    /// `OFPT_GET_CONFIG_REQUEST`.
    pub const GET_CONFIG_REQUEST: u8 = 7;
    /// `OFPT_GET_CONFIG_REPLY`.
    pub const GET_CONFIG_REPLY: u8 = 8;
    /// `OFPT_SET_CONFIG`.
    pub const SET_CONFIG: u8 = 9;
    /// `OFPT_FLOW_MOD`.
    pub const FLOW_MOD: u8 = 14;
    /// `OFPT_PACKET_IN`.
    pub const PACKET_IN: u8 = 10;
    /// `OFPT_PACKET_OUT`.
    pub const PACKET_OUT: u8 = 13;
    /// `OFPT_PORT_STATUS`.
    pub const PORT_STATUS: u8 = 12;
    /// `OFPT_GROUP_MOD`.
    pub const GROUP_MOD: u8 = 15;
    /// `OFPT_METER_MOD`.
    pub const METER_MOD: u8 = 29;
    /// `OFPT_BUNDLE_CONTROL`.
    pub const BUNDLE_CONTROL: u8 = 33;
    /// `OFPT_BUNDLE_ADD_MESSAGE`.
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
    /// `OFPT_MULTIPART_REQUEST`.
    pub const MULTIPART_REQUEST: u8 = 18;
    /// `OFPT_MULTIPART_REPLY`.
    pub const MULTIPART_REPLY: u8 = 19;
    /// `OFPT_BARRIER_REQUEST`.
    pub const BARRIER_REQUEST: u8 = 20;
    /// `OFPT_BARRIER_REPLY`.
    pub const BARRIER_REPLY: u8 = 21;
    /// `OFPT_ROLE_REQUEST`.
    pub const ROLE_REQUEST: u8 = 24;
    /// `OFPT_ROLE_REPLY`.
    pub const ROLE_REPLY: u8 = 25;
    /// `OFPT_PORT_MOD` (OpenFlow 1.0 numbers it 15: see [`crate::port_mod`]).
    pub const PORT_MOD: u8 = 16;
}

/// One OpenFlow message: header fields plus a typed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Wire version (0x06 for OpenFlow 1.5; HELLO/ERROR/ECHO also in 0x01).
    pub version: u8,
    /// Transaction id.
    pub xid: u32,
    /// The body.
    pub body: Body,
}

/// `FEATURES_REPLY` contents (OpenFlow 1.3+ layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Datapath id.
    pub datapath_id: u64,
    /// Packets the switch can buffer.
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// Auxiliary connection id (0 = main).
    pub auxiliary_id: u8,
    /// `OFPC_*` capability bits.
    pub capabilities: u32,
}

/// `SET_CONFIG`/`GET_CONFIG_REPLY` contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*` flags.
    pub flags: u16,
    /// Bytes of a packet sent to the controller on a table miss.
    pub miss_send_len: u16,
}

/// `ROLE_REQUEST`/`ROLE_REPLY` contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// `OFPCR_ROLE_*` (0 no change, 1 equal, 2 primary, 3 secondary).
    pub role: u32,
    /// Master election generation id.
    pub generation_id: u64,
}

/// A FLOW_MOD: the model's flow mod plus the wire fields it does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowModMsg {
    /// Command, flow, filters.
    pub fm: FlowMod,
    /// Buffered packet to apply the flow to, [`NO_BUFFER`] for none.
    pub buffer_id: u32,
}

/// `PACKET_OUT` contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    /// Buffered packet, [`NO_BUFFER`] when `data` holds the packet.
    pub buffer_id: u32,
    /// Pipeline fields of the packet (OpenFlow 1.5: at least `in_port`).
    pub match_: Match,
    /// Actions to apply.
    pub actions: Vec<Action>,
    /// The packet.
    pub data: Vec<u8>,
}

/// Nicira experimenter message subtypes.
const NXT_SET_FLOW_FORMAT: u32 = 12;
const NXT_FLOW_MOD_TABLE_ID: u32 = 15;
const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
const NXT_SET_CONTROLLER_ID: u32 = 20;
const NXT_TLV_TABLE_MOD: u32 = 24;
const NXT_TLV_TABLE_REQUEST: u32 = 25;
const NXT_TLV_TABLE_REPLY: u32 = 26;

/// `BUNDLE_CONTROL` contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleControl {
    /// Bundle id.
    pub bundle_id: u32,
    /// `OFPBCT_*`: 0 open, 2 close, 4 commit, 6 discard requests; replies are request + 1.
    pub ctrl_type: u16,
    /// `OFPBF_ATOMIC` (1), `OFPBF_ORDERED` (2).
    pub flags: u16,
    /// Bundle properties, not interpreted.
    pub properties: Vec<u8>,
}

/// Bundle control types.
pub mod bundle {
    /// `OFPBCT_OPEN_REQUEST`.
    pub const OPEN_REQUEST: u16 = 0;
    /// `OFPBCT_OPEN_REPLY`.
    pub const OPEN_REPLY: u16 = 1;
    /// `OFPBCT_CLOSE_REQUEST`.
    pub const CLOSE_REQUEST: u16 = 2;
    /// `OFPBCT_CLOSE_REPLY`.
    pub const CLOSE_REPLY: u16 = 3;
    /// `OFPBCT_COMMIT_REQUEST`.
    pub const COMMIT_REQUEST: u16 = 4;
    /// `OFPBCT_COMMIT_REPLY`.
    pub const COMMIT_REPLY: u16 = 5;
    /// `OFPBCT_DISCARD_REQUEST`.
    pub const DISCARD_REQUEST: u16 = 6;
    /// `OFPBCT_DISCARD_REPLY`.
    pub const DISCARD_REPLY: u16 = 7;
    /// `OFPBF_ATOMIC`.
    pub const ATOMIC: u16 = 1;
    /// `OFPBF_ORDERED`.
    pub const ORDERED: u16 = 2;
}

/// Message bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `HELLO` with the bitmap of versions the sender supports (bit n = wire version n).
    Hello {
        /// Supported versions; for a HELLO without a bitmap element, the header version and
        /// all below it.
        versions: u32,
    },
    /// `ERROR`.
    Error {
        /// The error.
        error: OfpError,
        /// The first bytes of the offending request.
        data: Vec<u8>,
    },
    /// `ECHO_REQUEST` with its payload.
    EchoRequest(Vec<u8>),
    /// `ECHO_REPLY` with its payload.
    EchoReply(Vec<u8>),
    /// `FEATURES_REQUEST`.
    FeaturesRequest,
    /// `FEATURES_REPLY`.
    FeaturesReply(Features),
    /// `GET_CONFIG_REQUEST`.
    GetConfigRequest,
    /// `GET_CONFIG_REPLY`.
    GetConfigReply(SwitchConfig),
    /// `SET_CONFIG`.
    SetConfig(SwitchConfig),
    /// `BARRIER_REQUEST`.
    BarrierRequest,
    /// `BARRIER_REPLY`.
    BarrierReply,
    /// `ROLE_REQUEST`.
    RoleRequest(Role),
    /// `ROLE_REPLY`.
    RoleReply(Role),
    /// `FLOW_MOD`.
    FlowMod(Box<FlowModMsg>),
    /// `PORT_MOD` (OpenFlow 1.5, or 1.0 when the message's version is 1.0).
    PortMod(port_mod::PortMod),
    /// An OpenFlow 1.0 `FEATURES_REPLY`, which lists the ports.
    FeaturesReply10(Box<ofp10::FeaturesReply10>),
    /// `GROUP_MOD` (OpenFlow 1.5 layout).
    GroupMod(Box<GroupMod>),
    /// `METER_MOD`.
    MeterMod {
        /// Add, modify or delete.
        command: MeterCommand,
        /// The meter (for delete only the id matters).
        meter: Meter,
    },
    /// `BUNDLE_CONTROL`.
    BundleControl(BundleControl),
    /// `BUNDLE_ADD_MESSAGE`.
    BundleAdd {
        /// Bundle id.
        bundle_id: u32,
        /// `OFPBF_*` flags.
        flags: u16,
        /// The bundled message (FLOW_MOD, GROUP_MOD, ...).
        message: Box<Message>,
    },
    /// `PACKET_OUT` (OpenFlow 1.5 layout, with a match for the pipeline fields).
    PacketOut(Box<PacketOut>),
    /// `PACKET_IN` (OpenFlow 1.5 layout: userdata and continuation are not carried).
    PacketIn(Box<PacketIn>),
    /// `NXT_PACKET_IN2`.
    PacketIn2(Box<PacketIn>),
    /// `NXT_RESUME`: a paused packet-in handed back (with its continuation).
    Resume(Box<PacketIn>),
    /// `PORT_STATUS`: a port was added, deleted or changed (switch to controller).
    PortStatus(Box<PortStatus>),
    /// `NXT_SET_CONTROLLER_ID`: the connection's controller id.
    SetControllerId(u16),
    /// `NXT_SET_PACKET_IN_FORMAT`: 0 OpenFlow, 1 `NXT_PACKET_IN`, 2 `NXT_PACKET_IN2`.
    SetPacketInFormat(u32),
    /// `NXT_SET_FLOW_FORMAT`: 0 OpenFlow 1.0, 2 NXM.
    SetFlowFormat(u32),
    /// `NXT_FLOW_MOD_TABLE_ID`: whether OpenFlow 1.0 flow mods carry a table id.
    FlowModTableId(bool),
    /// `NXT_TLV_TABLE_MOD`: add, delete or clear Geneve option <-> `tun_metadata` mappings.
    TlvTableMod {
        /// The command.
        command: TlvCommand,
        /// The mappings (for delete only the indices matter).
        maps: Vec<TlvMapping>,
    },
    /// `NXT_TLV_TABLE_REQUEST`.
    TlvTableRequest,
    /// `NXT_TLV_TABLE_REPLY`.
    TlvTableReply {
        /// Bytes of option data the switch can map.
        max_option_space: u32,
        /// Number of `tun_metadata` fields.
        max_fields: u16,
        /// The mappings.
        maps: Vec<TlvMapping>,
    },
    /// `MULTIPART_REQUEST` of type DESC.
    DescRequest,
    /// `MULTIPART_REPLY` of type DESC.
    DescReply(Desc),
    /// `MULTIPART_REQUEST` of type FLOW_DESC (`dump-flows`).
    FlowStatsRequest(Box<FlowStatsRequest>),
    /// `MULTIPART_REPLY` of type FLOW_DESC: flows with their statistics.
    FlowStatsReply {
        /// `OFPMPF_REPLY_MORE` when more replies follow.
        flags: u16,
        /// The flows (`stats` set).
        flows: Vec<Flow>,
    },
    /// `MULTIPART_REPLY` of another type, body not interpreted.
    MultipartReply {
        /// `OFPMP_*` type.
        mp_type: u16,
        /// `OFPMPF_REPLY_MORE` etc.
        flags: u16,
        /// The type-specific body.
        body: Vec<u8>,
    },
    /// `MULTIPART_REQUEST` of another type, body not interpreted yet.
    MultipartRequest {
        /// `OFPMP_*` type.
        mp_type: u16,
        /// `OFPMPF_REQ_MORE` etc.
        flags: u16,
        /// The type-specific body.
        body: Vec<u8>,
    },
}

/// The versions in a bitmap supported by both sides, the highest first: the negotiated
/// version, or `None` (answer `OFPHFC_INCOMPATIBLE`).
pub fn negotiate(ours: u32, theirs: u32) -> Option<u8> {
    let common = ours & theirs;
    (common != 0).then(|| (31 - common.leading_zeros()) as u8)
}

/// The ERROR a switch sends for `request` (echoing at most its first 64 bytes).
pub fn error_reply(request: &[u8], error: OfpError) -> Message {
    let (version, xid) = if request.len() >= 8 {
        (
            request[0],
            u32::from_be_bytes([request[4], request[5], request[6], request[7]]),
        )
    } else {
        (OFP15_VERSION, 0)
    };
    Message {
        version,
        xid,
        body: Body::Error {
            error,
            data: request[..request.len().min(ERROR_DATA_MAX)].to_vec(),
        },
    }
}

/// Reads `struct nx_tlv_map`s to the end of the message.
fn pull_tlv_maps(r: &mut Reader<'_>) -> Result<Vec<TlvMapping>, OfpError> {
    if r.remaining() % 8 != 0 {
        return Err(OfpError::BAD_LEN);
    }
    let mut maps = Vec::with_capacity(r.remaining() / 8);
    while !r.is_empty() {
        let class = r.u16()?;
        let kind = r.u8()?;
        let len = r.u8()?;
        let index = r.u16()?;
        r.skip(2)?;
        maps.push(TlvMapping {
            class,
            kind,
            len,
            index,
        });
    }
    Ok(maps)
}

fn put_tlv_maps(out: &mut Vec<u8>, maps: &[TlvMapping]) {
    for m in maps {
        put_u16(out, m.class);
        out.push(m.kind);
        out.push(m.len);
        put_u16(out, m.index);
        put_u16(out, 0);
    }
}

/// Decodes the message at the front of `buf`, returning it and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    if buf.len() < 8 {
        return Err(DecodeError::Incomplete { needed: 8 });
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len < 8 {
        return Err(DecodeError::BadFraming(len as u16));
    }
    if buf.len() < len {
        return Err(DecodeError::Incomplete { needed: len });
    }
    let msg = &buf[..len];
    decode_body(msg)
        .map(|m| (m, len))
        .map_err(|error| DecodeError::Invalid { error, len })
}

fn decode_body(msg: &[u8]) -> Result<Message, OfpError> {
    let version = msg[0];
    let ty = msg[1];
    let xid = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let mut r = Reader::new(&msg[8..], OfpError::BAD_LEN);
    use msg_type as t;
    let mut common = matches!(ty, t::HELLO | t::ERROR | t::ECHO_REQUEST | t::ECHO_REPLY);
    if version == OFP10_VERSION {
        if let Some(body) = ofp10::decode(ty, &mut r) {
            return Ok(Message {
                version,
                xid,
                body: body?,
            });
        }
        // Same numbers and layouts in 1.0 (what `ovs-ofctl mod-port` may send over 1.0).
        common |= matches!(
            ty,
            t::FEATURES_REQUEST | t::GET_CONFIG_REQUEST | t::GET_CONFIG_REPLY | t::SET_CONFIG
        );
    }
    if version != OFP15_VERSION && !(version == OFP10_VERSION && common) {
        if ty == t::HELLO {
            // A HELLO of any version is fine: versions are negotiated from it.
        } else {
            return Err(OfpError::BAD_VERSION);
        }
    }
    let exact = |r: &Reader<'_>, n: usize| {
        if r.remaining() == n {
            Ok(())
        } else {
            Err(OfpError::BAD_LEN)
        }
    };
    let body = match ty {
        t::HELLO => Body::Hello {
            versions: pull_hello(&mut r, version),
        },
        t::ERROR => {
            let ty = r.u16()?;
            let code = r.u16()?;
            if ty == error::EXPERIMENTER && r.u32()? != actions::NX_VENDOR_ID {
                return Err(OfpError::BAD_EXPERIMENTER);
            }
            Body::Error {
                error: OfpError { ty, code },
                data: r.rest().to_vec(),
            }
        }
        t::ECHO_REQUEST => Body::EchoRequest(r.rest().to_vec()),
        t::ECHO_REPLY => Body::EchoReply(r.rest().to_vec()),
        t::FEATURES_REQUEST => {
            exact(&r, 0)?;
            Body::FeaturesRequest
        }
        t::FEATURES_REPLY => {
            exact(&r, 24)?;
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            let auxiliary_id = r.u8()?;
            r.skip(2)?;
            let capabilities = r.u32()?;
            Body::FeaturesReply(Features {
                datapath_id,
                n_buffers,
                n_tables,
                auxiliary_id,
                capabilities,
            })
        }
        t::GET_CONFIG_REQUEST => {
            exact(&r, 0)?;
            Body::GetConfigRequest
        }
        t::GET_CONFIG_REPLY | t::SET_CONFIG => {
            exact(&r, 4)?;
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            if c.flags & !3 != 0 {
                return Err(OfpError::BAD_CONFIG_FLAGS);
            }
            if ty == t::SET_CONFIG {
                Body::SetConfig(c)
            } else {
                Body::GetConfigReply(c)
            }
        }
        t::BARRIER_REQUEST => {
            exact(&r, 0)?;
            Body::BarrierRequest
        }
        t::BARRIER_REPLY => {
            exact(&r, 0)?;
            Body::BarrierReply
        }
        t::ROLE_REQUEST | t::ROLE_REPLY => {
            exact(&r, 16)?;
            let role = r.u32()?;
            r.skip(4)?;
            let generation_id = r.u64()?;
            if role > 3 {
                return Err(OfpError::BAD_ROLE);
            }
            let role = Role {
                role,
                generation_id,
            };
            if ty == t::ROLE_REQUEST {
                Body::RoleRequest(role)
            } else {
                Body::RoleReply(role)
            }
        }
        t::FLOW_MOD => Body::FlowMod(Box::new(pull_flow_mod(&mut r)?)),
        t::PORT_STATUS => Body::PortStatus(Box::new(port_status::pull_port_status(r.rest())?)),
        t::GROUP_MOD => Body::GroupMod(Box::new(mods::pull_group_mod(&mut r)?)),
        t::METER_MOD => {
            let (command, meter) = mods::pull_meter_mod(&mut r)?;
            Body::MeterMod { command, meter }
        }
        t::BUNDLE_CONTROL => {
            let bundle_id = r.u32()?;
            let ctrl_type = r.u16()?;
            let flags = r.u16()?;
            if ctrl_type > bundle::DISCARD_REPLY {
                return Err(OfpError::BUNDLE_BAD_TYPE);
            }
            Body::BundleControl(BundleControl {
                bundle_id,
                ctrl_type,
                flags,
                properties: r.rest().to_vec(),
            })
        }
        t::BUNDLE_ADD_MESSAGE => {
            let bundle_id = r.u32()?;
            r.skip(2)?;
            let flags = r.u16()?;
            let inner = r.rest();
            let (message, used) = match decode(inner) {
                Ok(x) => x,
                Err(DecodeError::Invalid { error, .. }) => return Err(error),
                Err(_) => return Err(OfpError::BUNDLE_MSG_BAD_LEN),
            };
            // Only padding (or properties, not supported) may follow the inner message.
            if inner[used..].iter().any(|&b| b != 0) || inner.len() - used >= 8 {
                return Err(OfpError::BUNDLE_MSG_BAD_LEN);
            }
            if !matches!(
                message.body,
                Body::FlowMod(_) | Body::GroupMod(_) | Body::MeterMod { .. }
            ) || message.xid != xid
            {
                return Err(OfpError::BUNDLE_MSG_UNSUP);
            }
            Body::BundleAdd {
                bundle_id,
                flags,
                message: Box::new(message),
            }
        }
        t::PACKET_OUT => {
            let buffer_id = r.u32()?;
            let alen = usize::from(r.u16()?);
            r.skip(2)?;
            let match_ = oxm::pull_match(&mut r)?;
            let actions = actions::pull_actions(r.bytes(alen)?)?;
            if actions.iter().any(|a| matches!(a, Action::GotoTable(_))) {
                return Err(OfpError::BAD_ACTION_TYPE);
            }
            Body::PacketOut(Box::new(PacketOut {
                buffer_id,
                match_,
                actions,
                data: r.rest().to_vec(),
            }))
        }
        t::PACKET_IN => Body::PacketIn(Box::new(packet_in::pull_packet_in(&mut r)?)),
        t::EXPERIMENTER => {
            if r.u32()? != actions::NX_VENDOR_ID {
                return Err(OfpError::BAD_EXPERIMENTER);
            }
            match r.u32()? {
                NXT_SET_PACKET_IN_FORMAT => {
                    exact(&r, 4)?;
                    let f = r.u32()?;
                    if f > 2 {
                        return Err(OfpError::BAD_PACKET_IN_FORMAT);
                    }
                    Body::SetPacketInFormat(f)
                }
                packet_in::NXT_PACKET_IN2 => {
                    Body::PacketIn2(Box::new(packet_in::pull_packet_in2(&mut r)?))
                }
                packet_in::NXT_RESUME => {
                    Body::Resume(Box::new(packet_in::pull_packet_in2(&mut r)?))
                }
                NXT_SET_CONTROLLER_ID => {
                    exact(&r, 8)?;
                    r.skip(6)?;
                    Body::SetControllerId(r.u16()?)
                }
                NXT_SET_FLOW_FORMAT => {
                    exact(&r, 4)?;
                    let f = r.u32()?;
                    // OpenFlow 1.0 (0) and NXM (2); OVS answers EPERM for others.
                    if f != 0 && f != 2 {
                        return Err(OfpError::BAD_PACKET_IN_FORMAT);
                    }
                    Body::SetFlowFormat(f)
                }
                NXT_FLOW_MOD_TABLE_ID => {
                    exact(&r, 8)?;
                    let set = r.u8()?;
                    r.skip(7)?;
                    Body::FlowModTableId(set != 0)
                }
                NXT_TLV_TABLE_MOD => {
                    let command = match r.u16()? {
                        0 => TlvCommand::Add,
                        1 => TlvCommand::Delete,
                        2 => TlvCommand::Clear,
                        _ => return Err(OfpError::TLV_BAD_COMMAND),
                    };
                    r.skip(6)?;
                    Body::TlvTableMod {
                        command,
                        maps: pull_tlv_maps(&mut r)?,
                    }
                }
                NXT_TLV_TABLE_REQUEST => {
                    exact(&r, 0)?;
                    Body::TlvTableRequest
                }
                NXT_TLV_TABLE_REPLY => {
                    let max_option_space = r.u32()?;
                    let max_fields = r.u16()?;
                    r.skip(10)?;
                    Body::TlvTableReply {
                        max_option_space,
                        max_fields,
                        maps: pull_tlv_maps(&mut r)?,
                    }
                }
                _ => return Err(OfpError::BAD_EXP_TYPE),
            }
        }
        t::PORT_MOD => Body::PortMod(port_mod::pull_port_mod15(&mut r)?),
        t::MULTIPART_REQUEST => {
            let mp_type = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            match (mp_type, flags) {
                (multipart::MP_DESC, 0) => {
                    exact(&r, 0)?;
                    Body::DescRequest
                }
                (multipart::MP_FLOW_DESC, 0) => {
                    Body::FlowStatsRequest(Box::new(multipart::pull_flow_stats_request(&mut r)?))
                }
                _ => Body::MultipartRequest {
                    mp_type,
                    flags,
                    body: r.rest().to_vec(),
                },
            }
        }
        t::MULTIPART_REPLY => {
            let mp_type = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            match (mp_type, flags) {
                (multipart::MP_DESC, 0) => Body::DescReply(multipart::pull_desc(&mut r)?),
                (multipart::MP_FLOW_DESC, _) => Body::FlowStatsReply {
                    flags,
                    flows: multipart::pull_flow_descs(&mut r)?,
                },
                _ => Body::MultipartReply {
                    mp_type,
                    flags,
                    body: r.rest().to_vec(),
                },
            }
        }
        _ => return Err(OfpError::BAD_TYPE),
    };
    Ok(Message { version, xid, body })
}

/// Versions from a HELLO body: the union of its version-bitmap elements, or (without one)
/// the header version and all below it.
fn pull_hello(r: &mut Reader<'_>, version: u8) -> u32 {
    let mut bitmap = 0u32;
    let mut found = false;
    while r.remaining() >= 4 {
        let (Ok(ty), Ok(len)) = (r.u16(), r.u16()) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let Ok(body) = r.bytes((len - 4).min(r.remaining())) else {
            break;
        };
        if ty == 1 && body.len() >= 4 {
            found = true;
            bitmap |= u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        }
        let pad = len.div_ceil(8) * 8 - len;
        if r.skip(pad.min(r.remaining())).is_err() {
            break;
        }
    }
    if found {
        bitmap
    } else if version >= 31 {
        u32::MAX
    } else {
        (2u32 << version) - 2
    }
}

fn command_code(c: FlowModCommand) -> u8 {
    match c {
        FlowModCommand::Add => 0,
        FlowModCommand::Modify => 1,
        FlowModCommand::ModifyStrict => 2,
        FlowModCommand::Delete => 3,
        FlowModCommand::DeleteStrict => 4,
    }
}

fn pull_flow_mod(r: &mut Reader<'_>) -> Result<FlowModMsg, OfpError> {
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let table = r.u8()?;
    let command = match r.u8()? {
        0 => FlowModCommand::Add,
        1 => FlowModCommand::Modify,
        2 => FlowModCommand::ModifyStrict,
        3 => FlowModCommand::Delete,
        4 => FlowModCommand::DeleteStrict,
        _ => return Err(OfpError::BAD_COMMAND),
    };
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    let flags = r.u16()?;
    let importance = r.u16()?;
    let match_ = oxm::pull_match(r)?;
    let actions = actions::pull_instructions(r.rest())?;
    if command == FlowModCommand::Add && table == TABLE_ALL {
        return Err(OfpError::BAD_TABLE_ID);
    }
    let out_port = Port::from_ofp11(out_port).ok_or(OfpError::BAD_OUT_PORT)?;
    let add_or_modify = matches!(
        command,
        FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
    );
    Ok(FlowModMsg {
        fm: FlowMod {
            command,
            flow: Flow {
                table: if table == TABLE_ALL { 0 } else { table },
                priority,
                cookie,
                idle_timeout,
                hard_timeout,
                importance,
                flags: FlowFlags(flags),
                match_,
                actions,
                stats: None,
            },
            table_given: table != TABLE_ALL,
            cookie_mask,
            modify_cookie: add_or_modify && cookie_mask == 0 && cookie != 0,
            out_port,
            out_group,
        },
        buffer_id,
    })
}

fn put_flow_mod(out: &mut Vec<u8>, m: &FlowModMsg) {
    let fm = &m.fm;
    let f = &fm.flow;
    put_u64(out, f.cookie);
    put_u64(out, fm.cookie_mask);
    let table = if fm.table_given {
        f.table
    } else if fm.command == FlowModCommand::Add {
        0
    } else {
        TABLE_ALL
    };
    out.push(table);
    out.push(command_code(fm.command));
    put_u16(out, f.idle_timeout);
    put_u16(out, f.hard_timeout);
    put_u16(out, f.priority);
    put_u32(out, m.buffer_id);
    put_u32(out, fm.out_port.to_ofp11());
    put_u32(out, fm.out_group);
    put_u16(out, f.flags.0);
    put_u16(out, f.importance);
    oxm::put_match(out, &f.match_);
    actions::put_instructions(out, &f.actions);
}

/// Appends a multipart header (type, flags, padding).
pub(crate) fn put_mp_header(out: &mut Vec<u8>, mp_type: u16, flags: u16) {
    put_u16(out, mp_type);
    put_u16(out, flags);
    put_u32(out, 0);
}

/// Appends the bytes of `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    use msg_type as t;
    let start = out.len();
    let ty = match &msg.body {
        Body::Hello { .. } => t::HELLO,
        Body::Error { .. } => t::ERROR,
        Body::EchoRequest(_) => t::ECHO_REQUEST,
        Body::EchoReply(_) => t::ECHO_REPLY,
        Body::FeaturesRequest => t::FEATURES_REQUEST,
        Body::FeaturesReply(_) => t::FEATURES_REPLY,
        Body::GetConfigRequest => t::GET_CONFIG_REQUEST,
        Body::GetConfigReply(_) => t::GET_CONFIG_REPLY,
        Body::SetConfig(_) => t::SET_CONFIG,
        Body::BarrierRequest => t::BARRIER_REQUEST,
        Body::BarrierReply => t::BARRIER_REPLY,
        Body::RoleRequest(_) => t::ROLE_REQUEST,
        Body::RoleReply(_) => t::ROLE_REPLY,
        Body::FlowMod(_) => t::FLOW_MOD,
        Body::PortMod(_) => t::PORT_MOD,
        Body::FeaturesReply10(_) => ofp10::FEATURES_REPLY,
        Body::MultipartRequest { .. } | Body::DescRequest | Body::FlowStatsRequest(_) => {
            t::MULTIPART_REQUEST
        }
        Body::MultipartReply { .. } | Body::DescReply(_) | Body::FlowStatsReply { .. } => {
            t::MULTIPART_REPLY
        }
        Body::GroupMod(_) => t::GROUP_MOD,
        Body::PacketOut(_) => t::PACKET_OUT,
        Body::PacketIn(_) => t::PACKET_IN,
        Body::PortStatus(_) => t::PORT_STATUS,
        Body::SetControllerId(_)
        | Body::PacketIn2(_)
        | Body::Resume(_)
        | Body::SetPacketInFormat(_)
        | Body::SetFlowFormat(_)
        | Body::FlowModTableId(_)
        | Body::TlvTableMod { .. }
        | Body::TlvTableRequest
        | Body::TlvTableReply { .. } => t::EXPERIMENTER,
        Body::MeterMod { .. } => t::METER_MOD,
        Body::BundleControl(_) => t::BUNDLE_CONTROL,
        Body::BundleAdd { .. } => t::BUNDLE_ADD_MESSAGE,
    };
    // OpenFlow 1.0 numbers some types differently.
    let ty = match msg.version {
        OFP10_VERSION => ofp10::wire_type(&msg.body).unwrap_or(ty),
        _ => ty,
    };
    out.push(msg.version);
    out.push(ty);
    put_u16(out, 0);
    put_u32(out, msg.xid);
    match &msg.body {
        Body::Hello { versions } => {
            let s = out.len();
            put_u16(out, 1);
            put_u16(out, 8);
            put_u32(out, *versions);
            pad8(out, s);
        }
        Body::Error { error, data } => {
            put_u16(out, error.ty);
            put_u16(out, error.code);
            if error.ty == error::EXPERIMENTER {
                put_u32(out, actions::NX_VENDOR_ID);
            }
            out.extend_from_slice(data);
        }
        Body::EchoRequest(d) | Body::EchoReply(d) => out.extend_from_slice(d),
        Body::FeaturesRequest
        | Body::GetConfigRequest
        | Body::BarrierRequest
        | Body::BarrierReply => {}
        Body::FeaturesReply(f) => {
            put_u64(out, f.datapath_id);
            put_u32(out, f.n_buffers);
            out.push(f.n_tables);
            out.push(f.auxiliary_id);
            put_u16(out, 0);
            put_u32(out, f.capabilities);
            put_u32(out, 0);
        }
        Body::PortMod(pm) => port_mod::put_port_mod(out, msg.version, pm),
        Body::FeaturesReply10(f) => ofp10::put_features(out, f),
        Body::GetConfigReply(c) | Body::SetConfig(c) => {
            put_u16(out, c.flags);
            put_u16(out, c.miss_send_len);
        }
        Body::RoleRequest(r) | Body::RoleReply(r) => {
            put_u32(out, r.role);
            put_u32(out, 0);
            put_u64(out, r.generation_id);
        }
        Body::FlowMod(m) => put_flow_mod(out, m),
        Body::GroupMod(gm) => mods::put_group_mod(out, gm),
        Body::PacketOut(po) => {
            put_u32(out, po.buffer_id);
            let alen_at = out.len();
            put_u16(out, 0);
            put_u16(out, 0);
            oxm::put_match(out, &po.match_);
            let a = out.len();
            actions::put_actions(out, &po.actions);
            let alen = out.len() - a;
            patch_u16(out, alen_at, alen);
            out.extend_from_slice(&po.data);
        }
        Body::PacketIn(p) => packet_in::put_packet_in(out, p),
        Body::PortStatus(ps) => port_status::put_port_status(out, ps),
        Body::PacketIn2(p) => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, packet_in::NXT_PACKET_IN2);
            packet_in::put_packet_in2(out, p);
        }
        Body::Resume(p) => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, packet_in::NXT_RESUME);
            packet_in::put_packet_in2(out, p);
        }
        Body::SetPacketInFormat(f) => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_SET_PACKET_IN_FORMAT);
            put_u32(out, *f);
        }
        Body::SetFlowFormat(f) => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_SET_FLOW_FORMAT);
            put_u32(out, *f);
        }
        Body::FlowModTableId(set) => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_FLOW_MOD_TABLE_ID);
            out.push(u8::from(*set));
            out.extend_from_slice(&[0; 7]);
        }
        Body::TlvTableMod { command, maps } => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_TLV_TABLE_MOD);
            put_u16(
                out,
                match command {
                    TlvCommand::Add => 0,
                    TlvCommand::Delete => 1,
                    TlvCommand::Clear => 2,
                },
            );
            out.extend_from_slice(&[0; 6]);
            put_tlv_maps(out, maps);
        }
        Body::TlvTableRequest => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_TLV_TABLE_REQUEST);
        }
        Body::TlvTableReply {
            max_option_space,
            max_fields,
            maps,
        } => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_TLV_TABLE_REPLY);
            put_u32(out, *max_option_space);
            put_u16(out, *max_fields);
            out.extend_from_slice(&[0; 10]);
            put_tlv_maps(out, maps);
        }
        Body::SetControllerId(id) => {
            put_u32(out, actions::NX_VENDOR_ID);
            put_u32(out, NXT_SET_CONTROLLER_ID);
            out.extend_from_slice(&[0; 6]);
            put_u16(out, *id);
        }
        Body::MeterMod { command, meter } => mods::put_meter_mod(out, *command, meter),
        Body::BundleControl(c) => {
            put_u32(out, c.bundle_id);
            put_u16(out, c.ctrl_type);
            put_u16(out, c.flags);
            out.extend_from_slice(&c.properties);
        }
        Body::BundleAdd {
            bundle_id,
            flags,
            message,
        } => {
            put_u32(out, *bundle_id);
            put_u16(out, 0);
            put_u16(out, *flags);
            encode(message, out);
        }
        Body::DescRequest => put_mp_header(out, multipart::MP_DESC, 0),
        Body::DescReply(d) => {
            put_mp_header(out, multipart::MP_DESC, 0);
            multipart::put_desc(out, d);
        }
        Body::FlowStatsRequest(q) => {
            put_mp_header(out, multipart::MP_FLOW_DESC, 0);
            multipart::put_flow_stats_request(out, q);
        }
        Body::FlowStatsReply { flags, flows } => {
            put_mp_header(out, multipart::MP_FLOW_DESC, *flags);
            for f in flows {
                multipart::put_flow_desc(out, f);
            }
        }
        Body::MultipartReply {
            mp_type,
            flags,
            body,
        }
        | Body::MultipartRequest {
            mp_type,
            flags,
            body,
        } => {
            put_u16(out, *mp_type);
            put_u16(out, *flags);
            put_u32(out, 0);
            out.extend_from_slice(body);
        }
    }
    let len = out.len() - start;
    patch_u16(out, start + 2, len);
}
