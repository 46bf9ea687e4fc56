//! Ethernet II header (and the 802.3 length/LLC-SNAP case as a flow-key convention).

use crate::bytes::{arr, be16, set_be16, set_bytes, slice, slice_mut};
use crate::error::{Error, Result};
use crate::wire::MacAddr;

mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet header without tags.
pub const HEADER_LEN: usize = field::PAYLOAD;

view! {
    /// A view of an Ethernet II frame (without FCS).
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        arr(self.buffer.as_ref(), field::DST)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        arr(self.buffer.as_ref(), field::SRC)
    }

    /// The ethertype (or 802.3 length when below 0x600), i.e. the TPID when a tag follows.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header (tags included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, v: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::DST, &v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, v: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::SRC, &v);
    }

    /// Sets the ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::ETHERTYPE, v);
    }

    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::PAYLOAD, usize::MAX)
    }
}

/// The values of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: MacAddr,
    /// Destination address.
    pub dst: MacAddr,
    /// Ethertype.
    pub ethertype: u16,
}

impl Repr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src: p.src(),
            dst: p.dst(),
            ethertype: p.ethertype(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_dst(self.dst);
        p.set_src(self.src);
        p.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = Repr {
            src: [2, 0, 0, 0, 0, 1],
            dst: [0xff; 6],
            ethertype: 0x0806,
        };
        let mut b = [0u8; 20];
        r.emit(&mut b).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), r);
        assert_eq!(p.payload().len(), 6);
        assert_eq!(Packet::new_checked(&b[..13]), Err(Error::Truncated));
        assert_eq!(r.emit(&mut b[..13]), Err(Error::Truncated));
    }
}
