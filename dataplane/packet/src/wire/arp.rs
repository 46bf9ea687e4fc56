//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses.

use crate::bytes::{arr, be16, set_be16, set_bytes, set_u8, u8_at};
use crate::error::{Error, Result};
use crate::wire::{ethertype, MacAddr};

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::END;
/// ARP hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Operation: request.
pub const OP_REQUEST: u16 = 1;
/// Operation: reply.
pub const OP_REPLY: u16 = 2;

view! {
    /// A view of an ARP packet with 6-byte hardware and 4-byte protocol addresses.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds 28 bytes of Ethernet/IPv4 ARP.
    ///
    /// Errors: [`Error::Truncated`] when shorter; [`Error::Unsupported`] for other hardware or
    /// protocol types or address lengths.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if !p.is_ethernet_ipv4() {
            return Err(Error::Unsupported);
        }
        Ok(p)
    }

    /// True when the fixed part announces Ethernet (1) / IPv4 (0x800) with lengths 6 and 4.
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype() == HTYPE_ETHERNET
            && self.ptype() == ethertype::IPV4
            && self.hlen() == 6
            && self.plen() == 4
    }

    /// Hardware type.
    #[inline]
    pub fn htype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type.
    #[inline]
    pub fn ptype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    #[inline]
    pub fn hlen(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::HLEN)
    }

    /// Protocol address length.
    #[inline]
    pub fn plen(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::PLEN)
    }

    /// Operation code.
    #[inline]
    pub fn oper(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> MacAddr {
        arr(self.buffer.as_ref(), field::SHA)
    }

    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> MacAddr {
        arr(self.buffer.as_ref(), field::THA)
    }

    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed part for Ethernet/IPv4.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        set_be16(b, field::HTYPE, HTYPE_ETHERNET);
        set_be16(b, field::PTYPE, ethertype::IPV4);
        set_u8(b, field::HLEN, 6);
        set_u8(b, field::PLEN, 4);
    }

    /// Sets the operation.
    #[inline]
    pub fn set_oper(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::OPER, v);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sha(&mut self, v: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::SHA, &v);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_spa(&mut self, v: [u8; 4]) {
        set_bytes(self.buffer.as_mut(), field::SPA, &v);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_tha(&mut self, v: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::THA, &v);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_tpa(&mut self, v: [u8; 4]) {
        set_bytes(self.buffer.as_mut(), field::TPA, &v);
    }
}

/// The values of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Operation ([`OP_REQUEST`], [`OP_REPLY`], ...).
    pub oper: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: [u8; 4],
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: [u8; 4],
}

impl Repr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            oper: p.oper(),
            sha: p.sha(),
            spa: p.spa(),
            tha: p.tha(),
            tpa: p.tpa(),
        }
    }

    /// Writes the 28 bytes at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_ethernet_ipv4();
        p.set_oper(self.oper);
        p.set_sha(self.sha);
        p.set_spa(self.spa);
        p.set_tha(self.tha);
        p.set_tpa(self.tpa);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_refusals() {
        let r = Repr {
            oper: OP_REPLY,
            sha: [2, 0, 0, 0, 0, 1],
            spa: [10, 0, 0, 1],
            tha: [2, 0, 0, 0, 0, 2],
            tpa: [10, 0, 0, 2],
        };
        let mut b = [0u8; 28];
        r.emit(&mut b).unwrap();
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), r);
        assert_eq!(Packet::new_checked(&b[..27]), Err(Error::Truncated));
        b[4] = 8;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Unsupported));
    }
}
