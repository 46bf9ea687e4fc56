//! UDP header (RFC 768).

use crate::bytes::{be16, set_be16, slice, slice_mut};
use crate::checksum::{self, Checksum};
use crate::error::{Error, Result};
use crate::wire::ip_proto;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

view! {
    /// A view of a UDP datagram.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking `8 <= length <= buffer.len()`.
    ///
    /// Errors: [`Error::Truncated`] when the buffer is shorter than 8 bytes or than the length
    /// field; [`Error::Malformed`] when the length field is below 8.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(p.len());
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header and payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the length field says the datagram has no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0 = none, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
    }

    fn datagram(&self) -> &[u8] {
        slice(self.buffer.as_ref(), 0, usize::from(self.len()))
    }

    /// True when the checksum is absent (zero) or verifies against the IPv4 pseudo-header.
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let mut c = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len());
        c.add_bytes(self.datagram());
        c.fold() == 0xffff
    }

    /// True when the checksum verifies against the IPv6 pseudo-header (it is mandatory there).
    pub fn verify_checksum_v6(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let mut c = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, u32::from(self.len()));
        c.add_bytes(self.datagram());
        self.checksum() != 0 && c.fold() == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        slice_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    fn fill_with(&mut self, mut c: Checksum) {
        self.set_checksum(0);
        c.add_bytes(self.datagram());
        self.set_checksum(c.finish_udp());
    }

    /// Computes the checksum over the IPv4 pseudo-header and the datagram.
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        let c = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len());
        self.fill_with(c);
    }

    /// Computes the checksum over the IPv6 pseudo-header and the datagram.
    pub fn fill_checksum_v6(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        let c = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, u32::from(self.len()));
        self.fill_with(c);
    }
}

/// The values of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Reads a checked datagram's ports.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        }
    }

    /// Writes the header for a payload of `payload_len` bytes (checksum zero; fill it after the
    /// payload is in place).
    ///
    /// Errors: [`Error::Truncated`] when `buf` is shorter than 8 bytes; [`Error::Malformed`]
    /// when the length does not fit 16 bits.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = u16::try_from(payload_len + HEADER_LEN).map_err(|_| Error::Malformed)?;
        let mut p = Packet::new_unchecked(buf);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(l);
        p.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_checksum() {
        let mut b = [0u8; 12];
        let r = Repr {
            src_port: 1234,
            dst_port: 53,
        };
        r.emit(&mut b, 4).unwrap();
        b[8..].copy_from_slice(b"abcd");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(Repr::parse(&p), r);
        p.fill_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]);
        assert!(p.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]));
        assert!(!p.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 3]));
        p.fill_checksum_v6(&[1; 16], &[2; 16]);
        assert!(p.verify_checksum_v6(&[1; 16], &[2; 16]));
        assert_eq!(p.payload(), b"abcd");
        assert!(Packet::new_checked(&b[..11]).is_err());
        b[5] = 4;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
    }
}
