//! An 802.1Q / 802.1ad tag: the 4 bytes after a TPID (0x8100 or 0x88a8).
//!
//! The view starts at the TCI, i.e. right after the ethertype field that held the TPID, and its
//! `ethertype` is the type of what follows the tag (another TPID for QinQ).

use crate::bytes::{be16, set_be16, slice};
use crate::error::{Error, Result};
use crate::wire::ethertype;

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Length of the tag after its TPID.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// True when `tpid` announces a VLAN tag (802.1Q C-tag or 802.1ad S-tag).
#[inline]
pub const fn is_tpid(tpid: u16) -> bool {
    tpid == ethertype::VLAN || tpid == ethertype::QINQ
}

view! {
    /// A view of a VLAN tag's TCI and inner ethertype.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 4-byte tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    /// The whole tag control information.
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator (formerly CFI).
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The type of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// What follows the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TCI.
    #[inline]
    pub fn set_tci(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::TCI, v);
    }

    /// Sets the inner ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::ETHERTYPE, v);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b = [0xb0, 0x64, 0x08, 0x00, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.pcp(), 5);
        assert!(p.dei());
        assert_eq!(p.vid(), 100);
        assert_eq!(p.ethertype(), 0x0800);
        assert_eq!(p.payload(), &[0x45]);
        assert!(Packet::new_checked(&b[..3]).is_err());
        assert!(is_tpid(0x88a8) && is_tpid(0x8100) && !is_tpid(0x0800));
    }
}
