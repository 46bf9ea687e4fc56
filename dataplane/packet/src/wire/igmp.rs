//! IGMP v1/v2 (RFC 1112, RFC 2236) and v3 (RFC 3376) message heads.

use crate::bytes::{arr, be16, set_be16, set_bytes, set_u8, u8_at};
use crate::checksum;
use crate::error::{Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const MAX_RESP: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const GROUP: usize = 4;
    pub const V3_NUM_RECORDS: usize = 6;
    pub const END: usize = 8;
}

/// Length of a v1/v2 message (and of the common head of v3 messages).
pub const HEADER_LEN: usize = field::END;
/// Length of an IGMPv3 query without sources.
pub const V3_QUERY_LEN: usize = 12;
/// Membership query (all versions).
pub const TYPE_QUERY: u8 = 0x11;
/// v1 membership report.
pub const TYPE_V1_REPORT: u8 = 0x12;
/// v2 membership report.
pub const TYPE_V2_REPORT: u8 = 0x16;
/// v2 leave group.
pub const TYPE_V2_LEAVE: u8 = 0x17;
/// v3 membership report.
pub const TYPE_V3_REPORT: u8 = 0x22;

/// What kind of IGMP message this is, by type and (for queries) length, as RFC 3376 §7.1 tells
/// the versions apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// v1 query (8 bytes, max-response code 0).
    V1Query,
    /// v2 query (8 bytes, non-zero max-response code).
    V2Query,
    /// v3 query (12 bytes or more).
    V3Query,
    /// v1 membership report.
    V1Report,
    /// v2 membership report.
    V2Report,
    /// v2 leave group.
    V2Leave,
    /// v3 membership report (group records follow).
    V3Report,
    /// Any other type (or a query of a length no version defines).
    Other(u8),
}

view! {
    /// A view of an IGMP message.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 8-byte common head.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Type byte.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TYPE)
    }

    /// Max-response code (v2/v3; 0 in v1). This is what OVS stores as the IGMP "code".
    #[inline]
    pub fn max_resp_code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::MAX_RESP)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Group address (v1/v2 messages and v3 queries). In a v3 report these bytes are the
    /// reserved word and the record count.
    #[inline]
    pub fn group(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::GROUP)
    }

    /// Number of group records of a v3 report.
    #[inline]
    pub fn v3_num_records(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V3_NUM_RECORDS)
    }

    /// Classifies the message.
    pub fn message(&self) -> Message {
        let len = self.buffer.as_ref().len();
        match self.msg_type() {
            TYPE_QUERY if len == HEADER_LEN && self.max_resp_code() == 0 => Message::V1Query,
            TYPE_QUERY if len == HEADER_LEN => Message::V2Query,
            TYPE_QUERY if len >= V3_QUERY_LEN => Message::V3Query,
            TYPE_V1_REPORT => Message::V1Report,
            TYPE_V2_REPORT => Message::V2Report,
            TYPE_V2_LEAVE => Message::V2Leave,
            TYPE_V3_REPORT => Message::V3Report,
            t => Message::Other(t),
        }
    }

    /// True when the checksum over the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TYPE, v);
    }

    /// Sets the max-response code.
    #[inline]
    pub fn set_max_resp_code(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::MAX_RESP, v);
    }

    /// Sets the group address.
    #[inline]
    pub fn set_group(&mut self, v: [u8; 4]) {
        set_bytes(self.buffer.as_mut(), field::GROUP, &v);
    }

    /// Computes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        set_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_checked(&mut b[..8]).unwrap();
        p.set_msg_type(TYPE_QUERY);
        p.set_group([224, 0, 0, 1]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.message(), Message::V1Query);
        p.set_max_resp_code(100);
        assert_eq!(p.message(), Message::V2Query);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().message(),
            Message::V3Query
        );
        assert_eq!(
            Packet::new_checked(&b[..10]).unwrap().message(),
            Message::Other(0x11)
        );
        b[0] = TYPE_V3_REPORT;
        b[7] = 2;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.message(), p.v3_num_records()), (Message::V3Report, 2));
        assert!(Packet::new_checked(&b[..7]).is_err());
    }
}
