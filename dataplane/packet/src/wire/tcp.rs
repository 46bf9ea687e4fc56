//! TCP header (RFC 9293): ports, sequence numbers, flags, options length.

use crate::bytes::{be16, be32, set_be16, set_be32, set_u8, slice, slice_mut, u8_at};
use crate::checksum::{self, Checksum};
use crate::error::{Error, Result};
use crate::wire::ip_proto;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// TCP flag bits as in the low 12 bits of the offset/flags word (the flow key's `tcp_flags`).
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
    /// ECE.
    pub const ECE: u16 = 0x040;
    /// CWR.
    pub const CWR: u16 = 0x080;
    /// NS (historic ECN nonce).
    pub const NS: u16 = 0x100;
}

view! {
    /// A view of a TCP segment.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking `20 <= header_len <= buffer.len()`.
    ///
    /// Errors: [`Error::Truncated`] when the buffer is shorter than the header;
    /// [`Error::Malformed`] when the data offset is below 5.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
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

    /// Sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgement number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::OFF_FLAGS) >> 4) * 4
    }

    /// Length of the options (header length minus 20; 0 when the offset is bad).
    #[inline]
    pub fn options_len(&self) -> usize {
        self.header_len().saturating_sub(HEADER_LEN)
    }

    /// The 12 flag bits (see [`flags`]); reserved bits included as OVS does.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OFF_FLAGS) & 0x0fff
    }

    /// SYN set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// ACK set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// FIN set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// RST set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH set.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// URG set.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// Window.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        slice(self.buffer.as_ref(), HEADER_LEN, self.header_len())
    }

    /// The payload: everything after the header (the view's buffer must end where the segment
    /// does, e.g. an IPv4 view's `payload()`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }

    /// True when the checksum verifies over the IPv4 pseudo-header and the whole buffer.
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let mut c = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len);
        c.add_bytes(b);
        c.fold() == 0xffff
    }

    /// True when the checksum verifies over the IPv6 pseudo-header and the whole buffer.
    pub fn verify_checksum_v6(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let mut c = checksum::pseudo_header_v6(src, dst, ip_proto::TCP, len);
        c.add_bytes(b);
        c.fold() == 0xffff
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::SEQ, v);
    }

    /// Sets the acknowledgement number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Sets the header length in bytes (rounded down to 4, at most 60) and the 12 flag bits.
    #[inline]
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: u16) {
        let off = (header_len.min(60) / 4) as u16;
        set_be16(
            self.buffer.as_mut(),
            field::OFF_FLAGS,
            (off << 12) | (flags & 0x0fff),
        );
    }

    /// Sets only the flag bits.
    #[inline]
    pub fn set_flags(&mut self, flags: u16) {
        let hl = self.header_len();
        self.set_header_len_and_flags(hl, flags);
    }

    /// Sets the window.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::WINDOW, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Clears the reserved bits above the flags (the high nibble of byte 12 is the offset).
    #[inline]
    pub fn clear_reserved(&mut self) {
        let b = u8_at(self.buffer.as_ref(), field::OFF_FLAGS);
        set_u8(self.buffer.as_mut(), field::OFF_FLAGS, b & 0xf1);
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        slice_mut(self.buffer.as_mut(), hl, usize::MAX)
    }

    fn fill_with(&mut self, mut c: Checksum) {
        self.set_checksum(0);
        c.add_bytes(self.buffer.as_ref());
        self.set_checksum(c.finish());
    }

    /// Computes the checksum over the IPv4 pseudo-header and the whole buffer.
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        let len = self.buffer.as_ref().len() as u16;
        self.fill_with(checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len));
    }

    /// Computes the checksum over the IPv6 pseudo-header and the whole buffer.
    pub fn fill_checksum_v6(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        let len = self.buffer.as_ref().len() as u32;
        self.fill_with(checksum::pseudo_header_v6(src, dst, ip_proto::TCP, len));
    }
}

/// The values of an option-less TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits ([`flags`]).
    pub flags: u16,
    /// Window.
    pub window: u16,
}

impl Repr {
    /// Reads a checked segment's header (options skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
        }
    }

    /// Writes a 20-byte header with checksum zero (fill it after the payload is in place).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq(self.seq);
        p.set_ack_number(self.ack);
        p.set_header_len_and_flags(HEADER_LEN, self.flags);
        p.set_window(self.window);
        p.set_checksum(0);
        p.set_urgent(0);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_flags_checksum() {
        let r = Repr {
            src_port: 40000,
            dst_port: 80,
            seq: 0xdead_beef,
            ack: 1,
            flags: flags::SYN | flags::ACK,
            window: 65535,
        };
        let mut b = [0u8; 24];
        r.emit(&mut b).unwrap();
        b[20..].copy_from_slice(b"wxyz");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(Repr::parse(&p), r);
        assert!(p.syn() && p.ack() && !p.fin() && !p.rst());
        p.fill_checksum_v4([1, 2, 3, 4], [5, 6, 7, 8]);
        assert!(p.verify_checksum_v4([1, 2, 3, 4], [5, 6, 7, 8]));
        p.fill_checksum_v6(&[3; 16], &[4; 16]);
        assert!(p.verify_checksum_v6(&[3; 16], &[4; 16]));
        assert_eq!(p.payload(), b"wxyz");
        assert_eq!(p.options_len(), 0);
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[12] = 0x70;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..19]), Err(Error::Truncated));
    }
}
