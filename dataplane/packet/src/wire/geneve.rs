//! Geneve header (RFC 8926) with its TLV options, carried in UDP (port 6081).

use crate::bytes::{be16, be32, set_be16, set_be32, set_u8, slice, u8_at};
use crate::error::{Error, Result};

mod field {
    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: usize = 2;
    pub const VNI: usize = 4;
    pub const OPTIONS: usize = 8;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::OPTIONS;
/// IANA UDP port.
pub const UDP_PORT: u16 = 6081;
/// Flag: OAM packet.
pub const FLAG_OAM: u8 = 0x80;
/// Flag: critical options present.
pub const FLAG_CRITICAL: u8 = 0x40;
/// Largest options length (63 × 4 bytes).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;

view! {
    /// A view of a Geneve header, its options and the payload.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking version 0, that the options fit in the buffer, and that the
    /// TLV options tile the options area exactly.
    ///
    /// Errors: [`Error::Truncated`] when the buffer is shorter than the header and options;
    /// [`Error::Malformed`] for another version or an option running past the options area.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 0 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + p.options_len() > len {
            return Err(Error::Truncated);
        }
        let mut it = p.options();
        for _ in &mut it {}
        if it.malformed {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// Version (0).
    #[inline]
    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_OPTLEN) >> 6
    }

    /// Length of the options in bytes.
    #[inline]
    pub fn options_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::VER_OPTLEN) & 0x3f) * 4
    }

    /// Header length including options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// The O bit: an OAM (control) packet.
    #[inline]
    pub fn oam(&self) -> bool {
        u8_at(self.buffer.as_ref(), field::FLAGS) & FLAG_OAM != 0
    }

    /// The C bit: critical options are present.
    #[inline]
    pub fn critical(&self) -> bool {
        u8_at(self.buffer.as_ref(), field::FLAGS) & FLAG_CRITICAL != 0
    }

    /// Protocol type of the payload (0x6558 for Ethernet).
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// The 24-bit virtual network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI) >> 8
    }

    /// The raw options area.
    #[inline]
    pub fn options_bytes(&self) -> &[u8] {
        slice(self.buffer.as_ref(), HEADER_LEN, self.header_len())
    }

    /// The TLV options, walked without allocation.
    #[inline]
    pub fn options(&self) -> Options<'_> {
        Options {
            rest: self.options_bytes(),
            malformed: false,
        }
    }

    /// The payload after the options.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 0 and the options length in bytes (rounded down to 4, at most 252).
    #[inline]
    pub fn set_options_len(&mut self, len: usize) {
        let v = (len.min(MAX_OPTIONS_LEN) / 4) as u8;
        set_u8(self.buffer.as_mut(), field::VER_OPTLEN, v);
    }

    /// Sets the O and C bits (the other flag bits are cleared).
    #[inline]
    pub fn set_flags(&mut self, oam: bool, critical: bool) {
        let mut f = 0;
        if oam {
            f |= FLAG_OAM;
        }
        if critical {
            f |= FLAG_CRITICAL;
        }
        set_u8(self.buffer.as_mut(), field::FLAGS, f);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::PROTOCOL, v);
    }

    /// Sets the VNI (24 bits) and clears the reserved byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        set_be32(self.buffer.as_mut(), field::VNI, (vni & 0x00ff_ffff) << 8);
    }
}

/// One Geneve TLV option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Option class.
    pub class: u16,
    /// Option type; its high bit marks a critical option.
    pub kind: u8,
    /// Option data (length × 4 bytes).
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// True when the option is critical (high bit of the type).
    pub fn is_critical(&self) -> bool {
        self.kind & 0x80 != 0
    }
}

/// Iterator over Geneve options. Stops at the end of the options area, or at an option that
/// runs past it (then [`Options::malformed`] is true).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl Options<'_> {
    /// True when the walk stopped at a malformed option.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = GeneveOption<'a>;

    fn next(&mut self) -> Option<GeneveOption<'a>> {
        if self.rest.is_empty() || self.malformed {
            return None;
        }
        let total = 4 + usize::from(u8_at(self.rest, 3) & 0x1f) * 4;
        if self.rest.len() < 4 || total > self.rest.len() {
            self.malformed = true;
            return None;
        }
        let (opt, rest) = self.rest.split_at(total);
        self.rest = rest;
        Some(GeneveOption {
            class: be16(opt, 0),
            kind: u8_at(opt, 2),
            data: slice(opt, 4, total),
        })
    }
}

/// The values of a Geneve fixed header (options are written separately, after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// VNI (24 bits).
    pub vni: u32,
    /// Protocol type.
    pub protocol: u16,
    /// O bit.
    pub oam: bool,
    /// C bit.
    pub critical: bool,
    /// Length of the options that follow, in bytes (a multiple of 4, at most 252).
    pub options_len: usize,
}

impl Repr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            vni: p.vni(),
            protocol: p.protocol(),
            oam: p.oam(),
            critical: p.critical(),
            options_len: p.options_len(),
        }
    }

    /// Writes the 8-byte fixed header.
    ///
    /// Errors: [`Error::Truncated`] when `buf` is short; [`Error::Malformed`] for a VNI above 24
    /// bits or an options length not a multiple of 4 or above 252.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.vni > 0x00ff_ffff || self.options_len % 4 != 0 || self.options_len > MAX_OPTIONS_LEN
        {
            return Err(Error::Malformed);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_options_len(self.options_len);
        p.set_flags(self.oam, self.critical);
        p.set_protocol(self.protocol);
        p.set_vni(self.vni);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_walk() {
        let r = Repr {
            vni: 0xabcdef,
            protocol: 0x6558,
            oam: false,
            critical: true,
            options_len: 12,
        };
        let mut b = [0u8; 8 + 12 + 2];
        r.emit(&mut b).unwrap();
        // Option 1: class 0x0104, type 0x80 (critical), length 1 (4 bytes of data).
        b[8..16].copy_from_slice(&[0x01, 0x04, 0x80, 0x01, 1, 2, 3, 4]);
        // Option 2: class 0xffff, type 1, no data.
        b[16..20].copy_from_slice(&[0xff, 0xff, 0x01, 0x00]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), r);
        let mut it = p.options();
        let o = it.next().unwrap();
        assert_eq!(
            (o.class, o.kind, o.data),
            (0x0104, 0x80, &[1u8, 2, 3, 4][..])
        );
        assert!(o.is_critical());
        let o = it.next().unwrap();
        assert_eq!((o.class, o.kind, o.data.len()), (0xffff, 1, 0));
        assert!(it.next().is_none() && !it.malformed());
        assert_eq!(p.payload().len(), 2);
        let mut bad = b;
        bad[11] = 0x03;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&b[..19]), Err(Error::Truncated));
        let mut bad = b;
        bad[0] |= 0x40;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
    }
}
