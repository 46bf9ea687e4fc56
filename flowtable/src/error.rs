//! Errors of the text syntax. Messages follow `ovs-ofctl`'s wording; the caller adds the line and
//! column.

use thiserror::Error;

/// Why a flow, action, group or meter string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// A `key=value` pair whose key is no field or keyword (`unknown keyword foo`).
    #[error("unknown keyword {0}")]
    UnknownKeyword(String),
    /// A field name that the registry does not know, e.g. in a subfield (`unknown field `foo'`).
    #[error("{input}: unknown field `{name}'")]
    UnknownField {
        /// The text being parsed.
        input: String,
        /// The unknown name.
        name: String,
    },
    /// An action keyword that is not known.
    #[error("unknown action {0}")]
    UnknownAction(String),
    /// An integer that does not fit the field (`0x1ffff: value too large for 2-byte field tcp_dst`).
    #[error("{input}: {what} too large for {bytes}-byte field {field}")]
    TooLarge {
        /// The text being parsed.
        input: String,
        /// `value` or `mask`.
        what: &'static str,
        /// Width of the field in bytes.
        bytes: u8,
        /// Canonical field name.
        field: &'static str,
    },
    /// A value that does not fit a subfield (`value 0x1f does not fit into 4 bits`).
    #[error("{input}: value {value} does not fit into {bits} bits")]
    DoesNotFit {
        /// The text being parsed.
        input: String,
        /// The value as OVS prints it.
        value: String,
        /// Width of the subfield.
        bits: u16,
    },
    /// A keyword that needs a value but has none (`field table missing value`).
    #[error("field {0} missing value")]
    MissingValue(String),
    /// A table name or number that is not valid (`unknown table "300"`).
    #[error("unknown table \"{0}\"")]
    UnknownTable(String),
    /// A port name or number that is not valid.
    #[error("{0}")]
    BadPort(String),
    /// A flow without `actions=` where one is required.
    #[error("must specify an action")]
    NoActions,
    /// Any other malformed input; the message follows the `ovs-ofctl` wording where one exists.
    #[error("{0}")]
    Invalid(String),
}

impl ParseError {
    /// Shorthand for [`ParseError::Invalid`].
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        ParseError::Invalid(msg.into())
    }
}

/// Result of the parsers.
pub type Result<T> = core::result::Result<T, ParseError>;
