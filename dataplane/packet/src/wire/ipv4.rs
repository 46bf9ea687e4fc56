//! IPv4 header (RFC 791), options included, with fragment fields.

use crate::bytes::{arr, be16, set_be16, set_bytes, set_u8, slice, slice_mut, u8_at};
use crate::checksum;
use crate::error::{Error, Result};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// "More fragments" flag in the flags/offset word.
pub const FLAG_MF: u16 = 0x2000;
/// "Don't fragment" flag.
pub const FLAG_DF: u16 = 0x4000;
/// Fragment offset mask (in 8-byte units).
pub const OFFSET_MASK: u16 = 0x1fff;

view! {
    /// A view of an IPv4 packet.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking version 4, IHL >= 5, and
    /// `header_len <= total_len <= buffer.len()` (the buffer may hold trailing padding).
    ///
    /// Errors: [`Error::Truncated`] when the buffer is shorter than the header or the total
    /// length; [`Error::Malformed`] for a bad version, IHL or total length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let tl = usize::from(p.total_len());
        if tl < hl {
            return Err(Error::Malformed);
        }
        if tl > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Version (4 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The whole TOS byte (DSCP << 2 | ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TOS)
    }

    /// DSCP (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// ECN (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 3
    }

    /// Total length (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LEN)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// The raw flags/fragment-offset word.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & OFFSET_MASK) << 3
    }

    /// True for any fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// True for a fragment other than the first (non-zero offset).
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.flags_frag() & OFFSET_MASK != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TTL)
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::DST)
    }

    /// The option bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// The payload: from the end of the header to the total length (trailing padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(
            self.buffer.as_ref(),
            self.header_len(),
            usize::from(self.total_len()),
        )
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let h = slice(self.buffer.as_ref(), 0, self.header_len());
        h.len() >= HEADER_LEN && checksum::checksum(h) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (rounded down to 4, at most 60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = (header_len.min(60) / 4) as u8;
        set_u8(self.buffer.as_mut(), field::VER_IHL, 0x40 | ihl);
    }

    /// Sets the TOS byte.
    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TOS, v);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::LEN, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets the raw flags/fragment-offset word.
    #[inline]
    pub fn set_flags_frag(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TTL, v);
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, v: [u8; 4]) {
        set_bytes(self.buffer.as_mut(), field::SRC, &v);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, v: [u8; 4]) {
        set_bytes(self.buffer.as_mut(), field::DST, &v);
    }

    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(slice(self.buffer.as_ref(), 0, hl));
        self.set_checksum(c);
    }

    /// Decrements the TTL (saturating at 0) and updates the checksum incrementally; returns the
    /// new TTL.
    pub fn decrement_ttl(&mut self) -> u8 {
        let b = self.buffer.as_ref();
        let old = be16(b, field::TTL);
        let ttl = self.ttl().saturating_sub(1);
        self.set_ttl(ttl);
        let new = be16(self.buffer.as_ref(), field::TTL);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
        ttl
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (s, e) = (self.header_len(), usize::from(self.total_len()));
        slice_mut(self.buffer.as_mut(), s, e)
    }
}

/// The values of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length (total length minus the header).
    pub payload_len: u16,
    /// TTL.
    pub ttl: u8,
    /// TOS byte.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Flags/fragment-offset word (e.g. [`FLAG_DF`]).
    pub flags_frag: u16,
}

impl Repr {
    /// Reads a checked packet (options are skipped, not kept).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len().saturating_sub(p.header_len() as u16),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            flags_frag: p.flags_frag(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with a valid checksum at the start of `buf`.
    ///
    /// Errors: [`Error::Truncated`] when `buf` is shorter than 20 bytes, [`Error::Malformed`]
    /// when the payload length does not fit the total-length field.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let total = self
            .payload_len
            .checked_add(HEADER_LEN as u16)
            .ok_or(Error::Malformed)?;
        let mut p = Packet::new_unchecked(buf);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_flags_frag(self.flags_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src(self.src);
        p.set_dst(self.dst);
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn repr() -> Repr {
        Repr {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            protocol: 17,
            payload_len: 4,
            ttl: 64,
            tos: 0xb8,
            ident: 7,
            flags_frag: FLAG_DF,
        }
    }

    #[test]
    fn roundtrip_checksum_ttl() {
        let mut b = [0u8; 30];
        repr().emit(&mut b).unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p), repr());
        assert_eq!(p.payload().len(), 4);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
        assert!(!p.is_fragment());
    }

    #[test]
    fn refusals() {
        let mut b = [0u8; 30];
        repr().emit(&mut b).unwrap();
        assert_eq!(Packet::new_checked(&b[..19]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..23]), Err(Error::Truncated));
        let mut bad = b;
        bad[0] = 0x44;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        bad[0] = 0x4f;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Truncated));
        bad[0] = 0x65;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        let mut bad = b;
        bad[3] = 10;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
    }

    #[test]
    fn fragments_and_options() {
        let mut b = [0u8; 40];
        let mut r = repr();
        r.flags_frag = FLAG_MF | 3;
        r.payload_len = 20;
        r.emit(&mut b).unwrap();
        b[0] = 0x46;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && p.is_later_fragment() && p.more_frags());
        assert_eq!(p.frag_offset(), 24);
        assert_eq!(p.options().len(), 4);
        assert_eq!(p.payload().len(), 16);
    }
}
