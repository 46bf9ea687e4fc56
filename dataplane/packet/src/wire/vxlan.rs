//! VXLAN header (RFC 7348), carried in UDP (port 4789).

use crate::bytes::{be32, set_be32, slice, u8_at};
use crate::error::{Error, Result};

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// IANA UDP port.
pub const UDP_PORT: u16 = 4789;
/// The I flag: the VNI is valid. RFC 7348 requires it.
pub const FLAG_VNI: u8 = 0x08;

view! {
    /// A view of a VXLAN header and the inner Ethernet frame after it.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds 8 bytes and the I flag is set.
    ///
    /// Errors: [`Error::Truncated`] when shorter; [`Error::Malformed`] without the I flag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.flags() & FLAG_VNI == 0 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS)
    }

    /// The first 32-bit word with the flags and reserved bits (GBP extensions live here).
    #[inline]
    pub fn first_word(&self) -> u32 {
        be32(self.buffer.as_ref(), field::FLAGS)
    }

    /// The 24-bit VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI) >> 8
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the I flag and clears the reserved bits of the first word.
    #[inline]
    pub fn set_flags_default(&mut self) {
        set_be32(
            self.buffer.as_mut(),
            field::FLAGS,
            u32::from(FLAG_VNI) << 24,
        );
    }

    /// Sets the VNI (24 bits) and clears the reserved last byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        set_be32(self.buffer.as_mut(), field::VNI, (vni & 0x00ff_ffff) << 8);
    }
}

/// The values of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// VNI (24 bits).
    pub vni: u32,
}

impl Repr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self { vni: p.vni() }
    }

    /// Writes the 8-byte header.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.vni > 0x00ff_ffff {
            return Err(Error::Malformed);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_flags_default();
        p.set_vni(self.vni);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = [0xaau8; 10];
        Repr { vni: 0x12_3456 }.emit(&mut b).unwrap();
        assert_eq!(&b[..8], &[8, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).vni, 0x12_3456);
        assert_eq!(p.payload().len(), 2);
        assert_eq!(Repr { vni: 1 << 24 }.emit(&mut b), Err(Error::Malformed));
        b[0] = 0;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&b[..7]), Err(Error::Truncated));
    }
}
