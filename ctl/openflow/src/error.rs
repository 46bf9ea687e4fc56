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
    /// `OFPFMFC_BAD_COMMAND`.
    BAD_COMMAND = (5, 6, "OFPFMFC_BAD_COMMAND");
    /// `OFPGMFC_BAD_TYPE`: unknown group type (or unsupported group properties).
    BAD_GROUP_TYPE = (6, 10, "OFPGMFC_BAD_TYPE");
    /// `OFPGMFC_BAD_COMMAND`.
    BAD_GROUP_COMMAND = (6, 11, "OFPGMFC_BAD_COMMAND");
    /// `OFPGMFC_BAD_WATCH`.
    BAD_WATCH = (6, 13, "OFPGMFC_BAD_WATCH");
    /// `OFPMMFC_BAD_COMMAND`.
    BAD_METER_COMMAND = (12, 4, "OFPMMFC_BAD_COMMAND");
    /// `OFPMMFC_BAD_BAND`.
    BAD_BAND = (12, 8, "OFPMMFC_BAD_BAND");
    /// `OFPBFC_BAD_TYPE`: unknown bundle control type.
    BUNDLE_BAD_TYPE = (17, 6, "OFPBFC_BAD_TYPE");
    /// `OFPBFC_MSG_BAD_LEN`: the inner message's length disagrees with the outer one.
    BUNDLE_MSG_BAD_LEN = (17, 8, "OFPBFC_MSG_BAD_LEN");
    /// `OFPBFC_MSG_UNSUP`: a message type that cannot be bundled.
    BUNDLE_MSG_UNSUP = (17, 10, "OFPBFC_MSG_UNSUP");
    /// `OFPSCFC_BAD_FLAGS`.
    BAD_CONFIG_FLAGS = (10, 0, "OFPSCFC_BAD_FLAGS");
    /// `OFPRRFC_BAD_ROLE`.
    BAD_ROLE = (11, 2, "OFPRRFC_BAD_ROLE");
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
