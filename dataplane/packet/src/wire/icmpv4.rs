//! ICMP for IPv4 (RFC 792): type, code, checksum, echo identifier/sequence.

use crate::bytes::{be16, set_be16, set_u8, slice, slice_mut, u8_at};
use crate::checksum;
use crate::error::{Error, Result};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the header including the 4-byte rest-of-header word.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;
/// Destination-unreachable code: communication administratively prohibited.
pub const CODE_ADMIN_PROHIBITED: u8 = 13;

view! {
    /// A view of an ICMPv4 message.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TYPE)
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::CODE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ)
    }

    /// The data after the 8-byte header (for errors: the offending IP header and 8 bytes).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
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

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::CODE, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SEQ, v);
    }

    /// The data after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::PAYLOAD, usize::MAX)
    }

    /// Computes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn echo() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(TYPE_ECHO_REQUEST);
        p.set_echo_ident(0x1234);
        p.set_echo_seq(7);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.msg_type(), p.code(), p.echo_ident(), p.echo_seq()),
            (8, 0, 0x1234, 7)
        );
        assert!(Packet::new_checked(&b[..7]).is_err());
    }
}
