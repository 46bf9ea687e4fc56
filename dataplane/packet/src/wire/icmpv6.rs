//! ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861) solicitations and advertisements with
//! their link-layer address options.

use crate::bytes::{
    arr, be16, be32, set_be16, set_be32, set_bytes, set_u8, slice, slice_mut, u8_at,
};
use crate::checksum;
use crate::error::{Error, Result};
use crate::wire::{ip_proto, MacAddr};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const DATA: usize = 4;
    pub const BODY: usize = 8;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

/// Length of the header including the 4-byte message-specific word.
pub const HEADER_LEN: usize = field::BODY;
/// Length of a neighbour solicitation/advertisement without options.
pub const ND_LEN: usize = field::ND_OPTIONS;
/// Destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 129;
/// Router solicitation.
pub const TYPE_ROUTER_SOLICIT: u8 = 133;
/// Router advertisement.
pub const TYPE_ROUTER_ADVERT: u8 = 134;
/// Neighbour solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbour advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// ND option: source link-layer address.
pub const OPT_SOURCE_LL: u8 = 1;
/// ND option: target link-layer address.
pub const OPT_TARGET_LL: u8 = 2;
/// Neighbour advertisement flag: router.
pub const NA_FLAG_ROUTER: u32 = 0x8000_0000;
/// Neighbour advertisement flag: solicited.
pub const NA_FLAG_SOLICITED: u32 = 0x4000_0000;
/// Neighbour advertisement flag: override.
pub const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

view! {
    /// A view of an ICMPv6 message.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header, and for a neighbour
    /// solicitation/advertisement (code 0) also the target address and well-formed options
    /// (each of non-zero length, inside the buffer).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.is_nd() {
            if len < ND_LEN {
                return Err(Error::Truncated);
            }
            let mut it = p.nd_options();
            for _ in &mut it {}
            if it.malformed {
                return Err(Error::Malformed);
            }
        }
        Ok(p)
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

    /// The message-specific 32-bit word (echo id/seq, NA flags, MTU, pointer).
    #[inline]
    pub fn data_word(&self) -> u32 {
        be32(self.buffer.as_ref(), field::DATA)
    }

    /// True for a neighbour solicitation or advertisement with code 0.
    #[inline]
    pub fn is_nd(&self) -> bool {
        self.code() == 0
            && matches!(
                self.msg_type(),
                TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT
            )
    }

    /// ND target address (neighbour solicitation/advertisement).
    #[inline]
    pub fn nd_target(&self) -> [u8; 16] {
        arr(self.buffer.as_ref(), field::ND_TARGET)
    }

    /// The ND options, walked without allocation.
    #[inline]
    pub fn nd_options(&self) -> NdOptions<'_> {
        NdOptions {
            rest: slice(self.buffer.as_ref(), field::ND_OPTIONS, usize::MAX),
            malformed: false,
        }
    }

    /// The first source link-layer address option of an 8-byte (Ethernet) size.
    pub fn source_ll_addr(&self) -> Option<MacAddr> {
        self.nd_options().find_map(|o| o.ll_addr(OPT_SOURCE_LL))
    }

    /// The first target link-layer address option of an 8-byte (Ethernet) size.
    pub fn target_ll_addr(&self) -> Option<MacAddr> {
        self.nd_options().find_map(|o| o.ll_addr(OPT_TARGET_LL))
    }

    /// The data after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::BODY, usize::MAX)
    }

    /// True when the checksum verifies over the IPv6 pseudo-header and the whole buffer.
    pub fn verify_checksum(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let mut c = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, len);
        c.add_bytes(b);
        c.fold() == 0xffff
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

    /// Sets the message-specific word.
    #[inline]
    pub fn set_data_word(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::DATA, v);
    }

    /// Sets the ND target.
    #[inline]
    pub fn set_nd_target(&mut self, v: [u8; 16]) {
        set_bytes(self.buffer.as_mut(), field::ND_TARGET, &v);
    }

    /// The data after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::BODY, usize::MAX)
    }

    /// Computes the checksum over the IPv6 pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let mut c = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, b.len() as u32);
        c.add_bytes(b);
        self.set_checksum(c.finish());
    }
}

/// One ND option: type and the bytes after the 2-byte type/length head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    /// Option type.
    pub kind: u8,
    /// Option data (length × 8 − 2 bytes).
    pub data: &'a [u8],
}

impl NdOption<'_> {
    /// The MAC address of a link-layer address option of type `kind` and Ethernet size (8 bytes
    /// in total).
    pub fn ll_addr(&self, kind: u8) -> Option<MacAddr> {
        if self.kind == kind && self.data.len() == 6 {
            Some(arr(self.data, 0))
        } else {
            None
        }
    }
}

/// Iterator over ND options. Stops at the end, or at an option of zero length or running past
/// the buffer (then [`NdOptions::malformed`] is true).
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl NdOptions<'_> {
    /// True when the walk stopped at a malformed option.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = NdOption<'a>;

    fn next(&mut self) -> Option<NdOption<'a>> {
        if self.rest.is_empty() || self.malformed {
            return None;
        }
        let len = usize::from(u8_at(self.rest, 1)) * 8;
        if self.rest.len() < 2 || len == 0 || len > self.rest.len() {
            self.malformed = true;
            return None;
        }
        let (opt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(NdOption {
            kind: u8_at(opt, 0),
            data: slice(opt, 2, len),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn neighbor_solicitation() {
        let mut b = [0u8; 32];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_NEIGHBOR_SOLICIT);
        p.set_nd_target([0xfe; 16]);
        p.as_bytes_mut()[24..32].copy_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]);
        p.fill_checksum(&[1; 16], &[2; 16]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_nd() && p.verify_checksum(&[1; 16], &[2; 16]));
        assert_eq!(p.source_ll_addr(), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(p.target_ll_addr(), None);
        assert_eq!(p.nd_target(), [0xfe; 16]);
        let mut bad = b;
        bad[25] = 0;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        bad[25] = 2;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&b[..20]), Err(Error::Truncated));
        bad[0] = TYPE_ECHO_REQUEST;
        assert!(Packet::new_checked(&bad[..]).is_ok());
    }
}
