//! Decode errors and the OpenFlow error codes a switch answers with.

use thiserror::Error;

/// An OpenFlow error (`ofp_error_msg` type and code), as Open vSwitch would send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OfpError {
    /// Error type (`OFPET_*`).
    pub ty: u16,
    /// Error code within the type.
    pub code: u16,
}

macro_rules! ofp_errors {
    ($( $(#[$doc:meta])* $name:ident = ($ty:expr, $code:expr, $text:expr); )*) => {
        impl OfpError {
            $( $(#[$doc])* pub const $name: OfpError = OfpError { ty: $ty, code: $code }; )*

            /// OVS's name for the error (`OFPBRC_BAD_LEN`), if it is one this crate produces.
            pub fn name(self) -> Option<&'static str> {
                match (self.ty, self.code) {
                    $( ($ty, $code) => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

ofp_errors! {
    /// `OFPBPC_BAD_TYPE`: unknown property.
    BAD_PROP_TYPE = (14, 0, "OFPBPC_BAD_TYPE");
    /// `OFPBPC_BAD_LEN`: a property's length is wrong.
    BAD_PROP_LEN = (14, 1, "OFPBPC_BAD_LEN");
    /// `OFPPMFC_BAD_PORT`: PORT_MOD of a port that does not exist.
    PORT_MOD_BAD_PORT = (7, 0, "OFPPMFC_BAD_PORT");
    /// `OFPPMFC_BAD_HW_ADDR`: PORT_MOD whose hardware address is not the port's.
    PORT_MOD_BAD_HW_ADDR = (7, 1, "OFPPMFC_BAD_HW_ADDR");
    /// `NXR_STALE`: a continuation the switch no longer accepts (the flow table changed,
    /// or it is not one of ours).
    NX_STALE = (0xffff, 35, "NXR_STALE");
    /// `NXBRC_BAD_REASON`: a PORT_STATUS with a reason other than add, delete, modify.
    NX_BAD_REASON = (0xffff, 5, "NXBRC_BAD_REASON");
    /// `NXTTMFC_BAD_COMMAND`: unknown TLV table mod command.
    TLV_BAD_COMMAND = (0xffff, 16, "NXTTMFC_BAD_COMMAND");
    /// `NXTTMFC_BAD_OPT_LEN`: an option length that is not a TLV size.
    TLV_BAD_OPT_LEN = (0xffff, 17, "NXTTMFC_BAD_OPT_LEN");
    /// `NXTTMFC_BAD_FIELD_IDX`: a `tun_metadata` index the switch does not support.
    TLV_BAD_FIELD_IDX = (0xffff, 18, "NXTTMFC_BAD_FIELD_IDX");
    /// `NXTTMFC_TABLE_FULL`: more option space than the switch supports.
    TLV_TABLE_FULL = (0xffff, 19, "NXTTMFC_TABLE_FULL");
    /// `NXTTMFC_ALREADY_MAPPED`: the field is already mapped.
    TLV_ALREADY_MAPPED = (0xffff, 20, "NXTTMFC_ALREADY_MAPPED");
    /// `NXTTMFC_DUP_ENTRY`: the option is already mapped to another field.
    TLV_DUP_ENTRY = (0xffff, 21, "NXTTMFC_DUP_ENTRY");
    /// `NXFMFC_INVALID_TLV_FIELD`: a flow uses a `tun_metadata` field that is not mapped.
    INVALID_TLV_FIELD = (0xffff, 37, "NXFMFC_INVALID_TLV_FIELD");
    /// `OFPHFC_INCOMPATIBLE`: no common version.
    HELLO_INCOMPATIBLE = (0, 0, "OFPHFC_INCOMPATIBLE");
    /// `OFPBRC_BAD_VERSION`.
    BAD_VERSION = (1, 0, "OFPBRC_BAD_VERSION");
    /// `OFPBRC_BAD_TYPE`: unknown or unsupported message type.
    BAD_TYPE = (1, 1, "OFPBRC_BAD_TYPE");
    /// `OFPBRC_BAD_MULTIPART`: unsupported multipart type.
    BAD_MULTIPART = (1, 2, "OFPBRC_BAD_MULTIPART");
    /// `OFPBRC_BAD_EXPERIMENTER`: unknown experimenter id.
    BAD_EXPERIMENTER = (1, 3, "OFPBRC_BAD_EXPERIMENTER");
    /// `OFPBRC_BAD_EXP_TYPE`: unknown experimenter message subtype.
    BAD_EXP_TYPE = (1, 4, "OFPBRC_BAD_EXP_TYPE");
    /// `OFPBRC_EPERM`: what OVS answers for an unknown packet-in format.
    BAD_PACKET_IN_FORMAT = (1, 5, "OFPBRC_EPERM");
    /// `OFPBRC_BAD_LEN`: wrong length.
    BAD_LEN = (1, 6, "OFPBRC_BAD_LEN");
    /// `OFPBRC_BAD_TABLE_ID`.
    BAD_TABLE_ID = (1, 9, "OFPBRC_BAD_TABLE_ID");
    /// `OFPBRC_BAD_PORT`: a bad port number in a request (packet-out `in_port`).
    BAD_PORT = (1, 11, "OFPBRC_BAD_PORT");
    /// `OFPBRC_BAD_PACKET`: a packet-out without a packet.
    BAD_PACKET = (1, 12, "OFPBRC_BAD_PACKET");
    /// `OFPBRC_MULTIPART_BUFFER_OVERFLOW`: a multipart request too long to assemble.
    MULTIPART_BUFFER_OVERFLOW = (1, 13, "OFPBRC_MULTIPART_BUFFER_OVERFLOW");
    /// `OFPBRC_BUFFER_UNKNOWN`: packet-out of a buffer id (we buffer nothing).
    BUFFER_UNKNOWN = (1, 8, "OFPBRC_BUFFER_UNKNOWN");
    /// `OFPBAC_BAD_TYPE`: unknown action type.
    BAD_ACTION_TYPE = (2, 0, "OFPBAC_BAD_TYPE");
    /// `OFPBAC_BAD_LEN`: wrong action length.
    BAD_ACTION_LEN = (2, 1, "OFPBAC_BAD_LEN");
    /// `OFPBAC_BAD_EXPERIMENTER`: unknown action experimenter.
    BAD_ACTION_EXPERIMENTER = (2, 2, "OFPBAC_BAD_EXPERIMENTER");
    /// `OFPBAC_BAD_EXP_TYPE`: unknown experimenter action subtype.
    BAD_ACTION_EXP_TYPE = (2, 3, "OFPBAC_BAD_EXP_TYPE");
    /// `OFPBAC_BAD_OUT_PORT`.
    BAD_OUT_PORT = (2, 4, "OFPBAC_BAD_OUT_PORT");
    /// `OFPBAC_BAD_ARGUMENT`.
    BAD_ACTION_ARGUMENT = (2, 5, "OFPBAC_BAD_ARGUMENT");
    /// `OFPBAC_UNSUPPORTED_ORDER`: e.g. actions after the end of an instruction list.
    UNSUPPORTED_ORDER = (2, 11, "OFPBAC_UNSUPPORTED_ORDER");
    /// `OFPBAC_BAD_OUT_GROUP`: an output to a group that does not exist.
    BAD_OUT_GROUP = (2, 9, "OFPBAC_BAD_OUT_GROUP");
    /// `OFPBAC_BAD_SET_TYPE`: set_field of an unknown field.
    BAD_SET_TYPE = (2, 13, "OFPBAC_BAD_SET_TYPE");
    /// `OFPBAC_BAD_SET_LEN`.
    BAD_SET_LEN = (2, 14, "OFPBAC_BAD_SET_LEN");
    /// `OFPBAC_BAD_SET_ARGUMENT`: e.g. a masked set_field with value bits outside the mask.
    BAD_SET_ARGUMENT = (2, 15, "OFPBAC_BAD_SET_ARGUMENT");
    /// `OFPBAC_BAD_SET_MASK`.
    BAD_SET_MASK = (2, 16, "OFPBAC_BAD_SET_MASK");
    /// `OFPBIC_UNKNOWN_INST`.
    UNKNOWN_INST = (3, 0, "OFPBIC_UNKNOWN_INST");
    /// `OFPBIC_UNSUP_INST`: a known but unsupported instruction.
    UNSUP_INST = (3, 1, "OFPBIC_UNSUP_INST");
    /// `OFPBIC_BAD_TABLE_ID`: `goto_table` to a table that is not later.
    BAD_INST_TABLE_ID = (3, 2, "OFPBIC_BAD_TABLE_ID");
    /// `OFPBIC_BAD_LEN`.
    BAD_INST_LEN = (3, 7, "OFPBIC_BAD_LEN");
    /// `OFPBIC_DUP_INST`: an instruction given twice.
    DUP_INST = (3, 9, "OFPBIC_DUP_INST");
    /// `OFPBMC_BAD_TYPE`: match type other than OXM.
    BAD_MATCH_TYPE = (4, 0, "OFPBMC_BAD_TYPE");
    /// `OFPBMC_BAD_LEN`.
    BAD_MATCH_LEN = (4, 1, "OFPBMC_BAD_LEN");
    /// `OFPBMC_BAD_FIELD`: unknown match field.
    BAD_FIELD = (4, 6, "OFPBMC_BAD_FIELD");
    /// `OFPBMC_BAD_VALUE`.
    BAD_VALUE = (4, 7, "OFPBMC_BAD_VALUE");
    /// `OFPBMC_BAD_MASK`: a mask on a field that takes none.
    BAD_MASK = (4, 8, "OFPBMC_BAD_MASK");
    /// `OFPBMC_BAD_PREREQ`: a field without its prerequisites.
    BAD_PREREQ = (4, 9, "OFPBMC_BAD_PREREQ");
    /// `OFPBMC_DUP_FIELD`: a field given twice.
    DUP_FIELD = (4, 10, "OFPBMC_DUP_FIELD");
    /// `OFPFMFC_UNKNOWN`: unspecified flow-mod failure.
    FLOW_MOD_UNKNOWN = (5, 0, "OFPFMFC_UNKNOWN");
    /// `OFPFMFC_TABLE_FULL`.
    TABLE_FULL = (5, 1, "OFPFMFC_TABLE_FULL");
    /// `OFPFMFC_BAD_TABLE_ID`: the flow mod names a table that does not exist.
    FLOW_MOD_BAD_TABLE_ID = (5, 2, "OFPFMFC_BAD_TABLE_ID");
    /// `OFPFMFC_OVERLAP`: `check_overlap` found an overlapping flow.
    OVERLAP = (5, 3, "OFPFMFC_OVERLAP");
    /// `OFPFMFC_BAD_COMMAND`.
    BAD_COMMAND = (5, 6, "OFPFMFC_BAD_COMMAND");
    /// `OFPGMFC_GROUP_EXISTS`.
    GROUP_EXISTS = (6, 0, "OFPGMFC_GROUP_EXISTS");
    /// `OFPGMFC_INVALID_GROUP`.
    INVALID_GROUP = (6, 1, "OFPGMFC_INVALID_GROUP");
    /// `OFPGMFC_UNKNOWN_GROUP`.
    UNKNOWN_GROUP = (6, 8, "OFPGMFC_UNKNOWN_GROUP");
    /// `OFPGMFC_UNKNOWN_BUCKET`.
    UNKNOWN_BUCKET = (6, 15, "OFPGMFC_UNKNOWN_BUCKET");
    /// `OFPGMFC_BUCKET_EXISTS`.
    BUCKET_EXISTS = (6, 16, "OFPGMFC_BUCKET_EXISTS");
    /// `OFPGMFC_BAD_TYPE`: unknown group type (or unsupported group properties).
    BAD_GROUP_TYPE = (6, 10, "OFPGMFC_BAD_TYPE");
    /// `OFPGMFC_BAD_COMMAND`.
    BAD_GROUP_COMMAND = (6, 11, "OFPGMFC_BAD_COMMAND");
    /// `OFPGMFC_BAD_WATCH`.
    BAD_WATCH = (6, 13, "OFPGMFC_BAD_WATCH");
    /// `OFPMMFC_METER_EXISTS`.
    METER_EXISTS = (12, 1, "OFPMMFC_METER_EXISTS");
    /// `OFPMMFC_INVALID_METER`.
    INVALID_METER = (12, 2, "OFPMMFC_INVALID_METER");
    /// `OFPMMFC_UNKNOWN_METER`.
    UNKNOWN_METER = (12, 3, "OFPMMFC_UNKNOWN_METER");
    /// `OFPMMFC_BAD_COMMAND`.
    BAD_METER_COMMAND = (12, 4, "OFPMMFC_BAD_COMMAND");
    /// `OFPMMFC_BAD_BAND`.
    BAD_BAND = (12, 8, "OFPMMFC_BAD_BAND");
    /// `OFPBFC_BAD_ID`: no open bundle with that id.
    BUNDLE_BAD_ID = (17, 2, "OFPBFC_BAD_ID");
    /// `OFPBFC_BUNDLE_EXIST`: a bundle with that id is already open.
    BUNDLE_EXIST = (17, 3, "OFPBFC_BUNDLE_EXIST");
    /// `OFPBFC_BUNDLE_CLOSED`: the bundle is closed.
    BUNDLE_CLOSED = (17, 4, "OFPBFC_BUNDLE_CLOSED");
    /// `OFPBFC_OUT_OF_BUNDLES`: too many open bundles on the connection.
    OUT_OF_BUNDLES = (17, 5, "OFPBFC_OUT_OF_BUNDLES");
    /// `OFPBFC_BAD_TYPE`: unknown bundle control type.
    BUNDLE_BAD_TYPE = (17, 6, "OFPBFC_BAD_TYPE");
    /// `OFPBFC_MSG_BAD_LEN`: the inner message's length disagrees with the outer one.
    BUNDLE_MSG_BAD_LEN = (17, 8, "OFPBFC_MSG_BAD_LEN");
    /// `OFPBFC_BAD_FLAGS`: flags that differ from the bundle's.
    BUNDLE_BAD_FLAGS = (17, 7, "OFPBFC_BAD_FLAGS");
    /// `OFPBFC_MSG_UNSUP`: a message type that cannot be bundled.
    BUNDLE_MSG_UNSUP = (17, 10, "OFPBFC_MSG_UNSUP");
    /// `OFPBFC_MSG_TOO_MANY`: the bundle holds too many messages.
    BUNDLE_MSG_TOO_MANY = (17, 12, "OFPBFC_MSG_TOO_MANY");
    /// `OFPBFC_MSG_FAILED`: a message of the bundle failed (the commit's answer).
    BUNDLE_MSG_FAILED = (17, 13, "OFPBFC_MSG_FAILED");
    /// `OFPTFFC_EPERM`: a table-features change that is not allowed.
    TABLE_FEATURES_EPERM = (13, 5, "OFPTFFC_EPERM");
    /// `OFPTFFC_BAD_TABLE`: a table-features entry for a table that does not exist.
    TABLE_FEATURES_BAD_TABLE = (13, 0, "OFPTFFC_BAD_TABLE");
    /// `NXBAC_BAD_CONJUNCTION` (Nicira experimenter error 15 in OpenFlow 1.2+).
    NX_BAD_CONJUNCTION = (0xffff, 15, "NXBAC_BAD_CONJUNCTION");
    /// `OFPSCFC_BAD_FLAGS`.
    BAD_CONFIG_FLAGS = (10, 0, "OFPSCFC_BAD_FLAGS");
    /// `OFPRRFC_BAD_ROLE`.
    BAD_ROLE = (11, 2, "OFPRRFC_BAD_ROLE");
}

impl OfpError {
    /// The error OVS sends for a refused TLV table mod.
    pub fn from_tlv(e: xvs_flowtable::tlv::TlvError) -> Self {
        use xvs_flowtable::tlv::TlvError as E;
        match e {
            E::BadOptLen(_) => Self::TLV_BAD_OPT_LEN,
            E::BadFieldIdx(_) => Self::TLV_BAD_FIELD_IDX,
            E::TableFull(_) => Self::TLV_TABLE_FULL,
            E::AlreadyMapped(_) => Self::TLV_ALREADY_MAPPED,
            E::DupEntry(..) => Self::TLV_DUP_ENTRY,
        }
    }
}

/// `OFPET_EXPERIMENTER`: the error type of experimenter errors, whose code is the
/// experimenter's own and whose data starts with the experimenter id (always Nicira here).
pub const EXPERIMENTER: u16 = 0xffff;

impl OfpError {
    /// The error OVS sends when a flow, group or meter mod is refused by the pipeline.
    pub fn from_pipeline(e: &xvs_flowtable::pipeline::PipelineError) -> OfpError {
        use xvs_flowtable::pipeline::PipelineError as E;
        match e {
            E::BadTable(_) => OfpError::FLOW_MOD_BAD_TABLE_ID,
            E::BadGotoTable { .. } => OfpError::BAD_INST_TABLE_ID,
            E::GotoNotLast | E::GotoInBucket(_) => OfpError::UNSUP_INST,
            E::BadOutGroup(_) => OfpError::BAD_OUT_GROUP,
            E::InvalidMeter(_) | E::BadMeterId(_) => OfpError::INVALID_METER,
            E::BadConjunction => OfpError::NX_BAD_CONJUNCTION,
            E::Overlap => OfpError::OVERLAP,
            E::Classifier(_) => OfpError::FLOW_MOD_UNKNOWN,
            E::GroupExists(_) => OfpError::GROUP_EXISTS,
            E::UnknownGroup(_) => OfpError::UNKNOWN_GROUP,
            E::InvalidGroup(_) => OfpError::INVALID_GROUP,
            E::BucketExists { .. } => OfpError::BUCKET_EXISTS,
            E::UnknownBucket { .. } => OfpError::UNKNOWN_BUCKET,
            E::MeterExists(_) => OfpError::METER_EXISTS,
            E::UnknownMeter(_) => OfpError::UNKNOWN_METER,
        }
    }
}

impl std::fmt::Display for OfpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "OpenFlow error type {} code {}", self.ty, self.code),
        }
    }
}

/// Why [`crate::decode`] could not produce a message.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer holds less than one whole message; wait until it holds `needed` bytes.
    #[error("incomplete message: need {needed} bytes")]
    Incomplete {
        /// Total bytes needed (at least the header's length).
        needed: usize,
    },
    /// The header's length is below 8 bytes; the stream cannot be framed any further.
    #[error("bad OpenFlow header length {0}")]
    BadFraming(u16),
    /// A whole message that is malformed or unsupported: skip `len` bytes and answer with
    /// `error` (see [`crate::error_reply`]).
    #[error("{error} (message of {len} bytes)")]
    Invalid {
        /// The OpenFlow error a switch sends back.
        error: OfpError,
        /// Length of the offending message, to skip it.
        len: usize,
    },
}
