//! IPv6 header (RFC 8200) and the extension-header walk to the upper-layer protocol.

use crate::bytes::{
    arr, be16, be32, set_be16, set_be32, set_bytes, set_u8, slice, slice_mut, u8_at,
};
use crate::error::{Error, Result};
use crate::wire::ip_proto;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const PAYLOAD: usize = 40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD;

view! {
    /// A view of an IPv6 packet.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking version 6 and `40 + payload_len <= buffer.len()`.
    ///
    /// Errors: [`Error::Truncated`] when the buffer is shorter than the header plus the payload
    /// length; [`Error::Malformed`] for a version other than 6.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(p.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Version (6 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4
    }

    /// Traffic class (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (be32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 16] {
        arr(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 16] {
        arr(self.buffer.as_ref(), field::DST)
    }

    /// The payload (extension headers included), up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(
            self.buffer.as_ref(),
            HEADER_LEN,
            HEADER_LEN + usize::from(self.payload_len()),
        )
    }

    /// Walks the extension headers of the payload; see [`walk_ext_headers`].
    #[inline]
    pub fn walk(&self) -> Result<ExtWalk> {
        walk_ext_headers(self.payload(), self.next_header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class and flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_be32(self.buffer.as_mut(), field::VER_TC_FLOW, w);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::NEXT_HEADER, v);
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::HOP_LIMIT, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, v: [u8; 16]) {
        set_bytes(self.buffer.as_mut(), field::SRC, &v);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, v: [u8; 16]) {
        set_bytes(self.buffer.as_mut(), field::DST, &v);
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        slice_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }
}

/// A fragment header met during the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl Fragment {
    /// True for a real fragment. A fragment header with offset 0 and M clear (an "atomic
    /// fragment", RFC 6946) is not one.
    pub fn is_fragment(&self) -> bool {
        self.offset != 0 || self.more
    }
}

/// Where the extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWalk {
    /// The upper-layer protocol (next header of the last extension header). For a later
    /// fragment the walk stops at the fragment header and this is that header's next header.
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 payload.
    pub offset: usize,
    /// The fragment header, if one was met.
    pub fragment: Option<Fragment>,
}

impl ExtWalk {
    /// True when a non-first fragment ended the walk: what follows is not an L4 header.
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.fragment, Some(f) if f.offset != 0)
    }
}

/// True for the next-header values the walk skips: hop-by-hop, routing, fragment, destination
/// options, authentication header.
#[inline]
pub const fn is_ext_header(nh: u8) -> bool {
    matches!(
        nh,
        ip_proto::HOPOPTS
            | ip_proto::ROUTING
            | ip_proto::FRAGMENT
            | ip_proto::DSTOPTS
            | ip_proto::AH
    )
}

/// Walks extension headers from the start of an IPv6 payload whose first next header is
/// `next_header`, up to the upper-layer protocol. Each header must lie inside `payload`.
/// Stops at a non-first fragment (the rest is fragment data). Never allocates; the loop ends
/// because every header consumes at least 8 bytes.
///
/// Errors: [`Error::Truncated`] when an extension header runs past the payload.
pub fn walk_ext_headers(payload: &[u8], mut next_header: u8) -> Result<ExtWalk> {
    let mut off = 0usize;
    let mut fragment = None;
    while is_ext_header(next_header) {
        let rest = slice(payload, off, usize::MAX);
        if rest.len() < 8 {
            return Err(Error::Truncated);
        }
        let nh = u8_at(rest, 0);
        let hlen = match next_header {
            ip_proto::AH => (usize::from(u8_at(rest, 1)) + 2) * 4,
            ip_proto::FRAGMENT => 8,
            _ => (usize::from(u8_at(rest, 1)) + 1) * 8,
        };
        if hlen > rest.len() {
            return Err(Error::Truncated);
        }
        off += hlen;
        if next_header == ip_proto::FRAGMENT {
            let offlg = be16(rest, 2);
            let f = Fragment {
                offset: offlg & 0xfff8,
                more: offlg & 1 != 0,
                ident: be32(rest, 4),
            };
            fragment = Some(f);
            if f.offset != 0 {
                return Ok(ExtWalk {
                    protocol: nh,
                    offset: off,
                    fragment,
                });
            }
        }
        next_header = nh;
    }
    Ok(ExtWalk {
        protocol: next_header,
        offset: off,
        fragment,
    })
}

/// The values of a fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads a checked packet's fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src(self.src);
        p.set_dst(self.dst);
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
            src: [0xfe; 16],
            dst: [0x20; 16],
            next_header: 17,
            payload_len: 8,
            hop_limit: 255,
            traffic_class: 0xa1,
            flow_label: 0xbeef5,
        };
        let mut b = [0u8; 48];
        r.emit(&mut b).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), r);
        assert_eq!(p.payload().len(), 8);
        assert_eq!(Packet::new_checked(&b[..47]), Err(Error::Truncated));
        b[0] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
    }

    #[test]
    fn walk() {
        // hop-by-hop (8) -> AH (len 1 => 12) -> fragment (first, M=1) -> dstopts (16) -> UDP
        let mut pl = [0u8; 8 + 12 + 8 + 16 + 8];
        pl[0] = ip_proto::AH;
        pl[8] = ip_proto::FRAGMENT;
        pl[9] = 1;
        pl[20] = ip_proto::DSTOPTS;
        pl[23] = 1; // offset 0, M=1
        pl[28] = ip_proto::UDP;
        pl[29] = 1;
        let w = walk_ext_headers(&pl, ip_proto::HOPOPTS).unwrap();
        assert_eq!(w.protocol, ip_proto::UDP);
        assert_eq!(w.offset, 44);
        assert!(w.fragment.is_some_and(|f| f.is_fragment()));
        assert!(!w.is_later_fragment());
        // A later fragment stops the walk.
        pl[22] = 0x01;
        let w = walk_ext_headers(&pl, ip_proto::HOPOPTS).unwrap();
        assert!(w.is_later_fragment());
        assert_eq!((w.protocol, w.offset), (ip_proto::DSTOPTS, 28));
        // Truncated chain.
        pl[22] = 0;
        assert_eq!(
            walk_ext_headers(&pl[..30], ip_proto::HOPOPTS),
            Err(Error::Truncated)
        );
        assert_eq!(
            walk_ext_headers(&[], ip_proto::TCP).map(|w| w.offset),
            Ok(0)
        );
    }
}
