//! The Internet checksum (RFC 1071), pseudo-headers, and incremental updates (RFC 1624).
//!
//! A [`Checksum`] accumulates a one's-complement sum; [`Checksum::finish`] gives the value to
//! store in a header. Summing runs over 32 bytes per iteration with 64-bit loads and
//! end-around carries, so a 1500-byte payload takes a few dozen additions.
//!
//! Incremental updates ([`update16`], [`update32`], [`update_bytes`]) follow RFC 1624 equation 3,
//! `HC' = ~(~HC + ~m + m')`, which is correct also when the old checksum was 0xffff. NAT and TTL
//! decrement use them so they never re-read the payload. For UDP, a computed checksum of zero
//! must be sent as 0xffff (zero means "no checksum"); [`Checksum::finish_udp`] and
//! [`update_udp16`] etc. do that mapping.

/// Adds with end-around carry.
#[inline(always)]
fn adc(a: u64, b: u64) -> u64 {
    let (s, c) = a.overflowing_add(b);
    s + u64::from(c)
}

/// Folds a 64-bit one's-complement accumulator to 16 bits.
#[inline(always)]
fn fold64(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The one's-complement sum of `data` read as big-endian 16-bit words, an odd last byte padded
/// with zero, folded to 64 bits (not yet to 16).
#[inline]
fn sum_bytes(data: &[u8]) -> u64 {
    let mut a = 0u64;
    let mut b = 0u64;
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        let w0 = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let w1 = u64::from_be_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
        let w2 = u64::from_be_bytes([c[16], c[17], c[18], c[19], c[20], c[21], c[22], c[23]]);
        let w3 = u64::from_be_bytes([c[24], c[25], c[26], c[27], c[28], c[29], c[30], c[31]]);
        a = adc(adc(a, w0), w1);
        b = adc(adc(b, w2), w3);
    }
    let mut rest = chunks.remainder();
    let mut e8 = rest.chunks_exact(8);
    for c in &mut e8 {
        a = adc(
            a,
            u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        );
    }
    rest = e8.remainder();
    // At most 7 bytes left: place them at their big-endian positions of one 64-bit word.
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    b = adc(b, u64::from_be_bytes(tail));
    adc(a, b)
}

/// A running one's-complement sum.
///
/// Byte slices added with [`Checksum::add_bytes`] must each have an even length, except the
/// last one added: an odd slice is padded with a zero byte, as at the end of a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum(u64);

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Self(0)
    }

    /// Adds the bytes of `data` as big-endian 16-bit words.
    #[inline]
    pub fn add_bytes(&mut self, data: &[u8]) -> &mut Self {
        self.0 = adc(self.0, sum_bytes(data));
        self
    }

    /// Adds one 16-bit word.
    #[inline]
    pub fn add_u16(&mut self, v: u16) -> &mut Self {
        self.0 = adc(self.0, u64::from(v));
        self
    }

    /// Adds a 32-bit value as two 16-bit words.
    #[inline]
    pub fn add_u32(&mut self, v: u32) -> &mut Self {
        self.0 = adc(self.0, u64::from(v));
        self
    }

    /// Adds another partial sum (its bytes must have started at an even offset).
    #[inline]
    pub fn add(&mut self, other: Checksum) -> &mut Self {
        self.0 = adc(self.0, other.0);
        self
    }

    /// The one's-complement sum folded to 16 bits (0xffff when a received header verifies).
    #[inline]
    pub fn fold(self) -> u16 {
        fold64(self.0)
    }

    /// The checksum to store: the complement of the folded sum.
    #[inline]
    pub fn finish(self) -> u16 {
        !self.fold()
    }

    /// The checksum to store in a UDP header: as [`finish`](Self::finish), but zero is sent as
    /// 0xffff because zero means "no checksum".
    #[inline]
    pub fn finish_udp(self) -> u16 {
        match self.finish() {
            0 => 0xffff,
            c => c,
        }
    }
}

/// The Internet checksum of `data`: the value a header's checksum field must hold when `data`
/// covers the header with that field zeroed. Over a received header with its checksum in place,
/// the result is 0 when the header is intact.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Checksum(sum_bytes(data)).finish()
}

/// The IPv4 pseudo-header sum for TCP/UDP/ICMP-less protocols: source, destination, protocol,
/// and the upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u16) -> Checksum {
    let mut c = Checksum::new();
    c.add_u32(u32::from_be_bytes(src))
        .add_u32(u32::from_be_bytes(dst))
        .add_u16(u16::from(protocol))
        .add_u16(len);
    c
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1): source, destination, upper-layer length, next
/// header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(src)
        .add_bytes(dst)
        .add_u32(len)
        .add_u16(u16::from(next_header));
    c
}

/// RFC 1624 eq. 3 with a pre-summed difference `~m + m'`.
#[inline(always)]
fn apply(csum: u16, diff: u64) -> u16 {
    !fold64(adc(u64::from(!csum), diff))
}

/// Updates a stored checksum for one 16-bit word of the covered data changing from `old` to
/// `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    apply(csum, u64::from(!old) + u64::from(new))
}

/// Updates a stored checksum for a 32-bit field (two aligned words, e.g. an IPv4 address or a
/// TCP sequence number) changing from `old` to `new`.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    apply(csum, u64::from(!old) + u64::from(new))
}

/// Updates a stored checksum for a field of whole 16-bit words (e.g. an IPv6 address or a MAC)
/// changing from `old` to `new`. `old` and `new` must have the same, even, length and start at
/// an even offset of the covered data; otherwise the checksum is returned unchanged.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    if old.len() != new.len() || old.len() % 2 != 0 {
        return csum;
    }
    let mut diff = 0u64;
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        diff += u64::from(!u16::from_be_bytes([o[0], o[1]]))
            + u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    apply(csum, diff)
}

/// Updates a stored IPv6 address in a checksum (transport checksums after IPv6 NAT).
#[inline]
pub fn update_ipv6(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    update_bytes(csum, old, new)
}

/// [`update16`] for a UDP checksum: zero ("no checksum") stays zero, and a result of zero is
/// stored as 0xffff.
#[inline]
pub fn update_udp16(csum: u16, old: u16, new: u16) -> u16 {
    if csum == 0 {
        return 0;
    }
    match update16(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// [`update32`] for a UDP checksum (see [`update_udp16`]).
#[inline]
pub fn update_udp32(csum: u16, old: u32, new: u32) -> u16 {
    if csum == 0 {
        return 0;
    }
    match update32(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// [`update_bytes`] for a UDP checksum (see [`update_udp16`]).
#[inline]
pub fn update_udp_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    if csum == 0 {
        return 0;
    }
    match update_bytes(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 reference: 16 bits at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            s += u32::from(data[i]) << 8;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: sum of 00 01 f2 03 f4 f5 f6 f7 is 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header; its checksum field holds 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn matches_reference_on_all_lengths() {
        let mut data = [0u8; 300];
        let mut x: u32 = 0x1234_5678;
        for b in data.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        for len in 0..data.len() {
            assert_eq!(checksum(&data[..len]), reference(&data[..len]), "len {len}");
        }
        let ones = [0xffu8; 257];
        for len in 0..ones.len() {
            assert_eq!(
                checksum(&ones[..len]),
                reference(&ones[..len]),
                "ones len {len}"
            );
        }
    }

    #[test]
    fn incremental_equals_recompute() {
        let mut h = [
            0x45u8, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c0 = checksum(&h);
        // TTL decrement: word 4 (ttl, proto).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let c1 = update16(c0, old, new);
        assert_eq!(c1, checksum(&h));
        // Source address rewrite.
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        h[12..16].copy_from_slice(&[10, 0, 0, 7]);
        let c2 = update32(c1, old, 0x0a00_0007);
        assert_eq!(c2, checksum(&h));
        let before: [u8; 4] = [h[16], h[17], h[18], h[19]];
        h[16..20].copy_from_slice(&[172, 16, 9, 9]);
        let c3 = update_bytes(c2, &before, &[172, 16, 9, 9]);
        assert_eq!(c3, checksum(&h));
        assert_eq!(update_bytes(c3, &[1, 2, 3], &[4, 5, 6]), c3);
    }

    #[test]
    fn udp_zero_mapping() {
        assert_eq!(update_udp16(0, 1, 2), 0);
        let mut c = Checksum::new();
        c.add_u16(0xffff);
        assert_eq!(c.finish(), 0);
        assert_eq!(c.finish_udp(), 0xffff);
    }

    #[test]
    fn pseudo_headers() {
        let p = pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 8);
        let mut r = Checksum::new();
        r.add_bytes(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 8]);
        assert_eq!(p.fold(), r.fold());
        let s = [1u8; 16];
        let d = [2u8; 16];
        let p6 = pseudo_header_v6(&s, &d, 58, 0x0001_0020);
        let mut r6 = Checksum::new();
        r6.add_bytes(&s)
            .add_bytes(&d)
            .add_bytes(&[0, 1, 0, 0x20, 0, 0, 0, 58]);
        assert_eq!(p6.fold(), r6.fold());
    }
}
