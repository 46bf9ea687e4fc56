//! SCTP common header (RFC 9260): ports, verification tag, checksum field.
//!
//! The SCTP checksum is CRC32c over the whole packet; this view exposes the field but does not
//! compute it.

use crate::bytes::{be16, be32, set_be16, slice};
use crate::error::{Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const VTAG: usize = 4;
    pub const CHECKSUM: usize = 8;
    pub const CHUNKS: usize = 12;
}

/// Length of the common header.
pub const HEADER_LEN: usize = field::CHUNKS;

view! {
    /// A view of an SCTP packet's common header.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 12-byte common header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
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

    /// Verification tag.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VTAG)
    }

    /// The CRC32c checksum field, as stored.
    #[inline]
    pub fn checksum(&self) -> u32 {
        be32(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The chunks after the common header.
    #[inline]
    pub fn chunks(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::CHUNKS, usize::MAX)
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b = [0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 9];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1, 2));
        assert_eq!((p.verification_tag(), p.checksum()), (3, 4));
        assert_eq!(p.chunks(), &[9]);
        assert!(Packet::new_checked(&b[..11]).is_err());
    }
}
