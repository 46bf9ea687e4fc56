//! Scalar text forms shared by fields and actions: integers the way OVS's `parse_int_string`
//! reads them, hexadecimal the way `ds_put_hex` writes them, and IPv4/IPv6/Ethernet addresses
//! with optional masks.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// Why an integer could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntError {
    /// More significant bits than the field has.
    Range,
    /// No digits where a decimal number was expected.
    Syntax,
}

/// Reads an integer prefix of `s` into a value of `n_bytes` bytes, as OVS's `parse_int_string`:
/// `0x`-prefixed hexadecimal of any length that fits, otherwise C `strtoull(.., 0)` (decimal,
/// or octal with a leading `0`). Returns the value and the unparsed rest. A decimal number without
/// digits is a syntax error; `0x` alone is zero.
pub(crate) fn parse_int_prefix(s: &str, n_bytes: u8) -> Result<(u128, &str), IntError> {
    let n_bytes = n_bytes.min(16);
    let bytes = s.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'0' && (bytes[1] == b'x' || bytes[1] == b'X') {
        let mut v: u128 = 0;
        let mut len = 0usize;
        let mut i = 2;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b' ' || b == b'\t' || b == b'\r' || b == b'\n' {
                i += 1;
                continue;
            }
            let Some(d) = (b as char).to_digit(16) else {
                break;
            };
            if d != 0 || len > 0 {
                if (len + 2) / 2 > n_bytes as usize {
                    return Err(IntError::Range);
                }
                v = (v << 4) | u128::from(d);
                len += 1;
            }
            i += 1;
        }
        return Ok((v, &s[i..]));
    }
    // strtoull(s, &tail, 0)
    let mut i = 0;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
        neg = bytes[i] == b'-';
        i += 1;
    }
    let (radix, start) = if i < bytes.len() && bytes[i] == b'0' {
        (8u32, i)
    } else {
        (10u32, i)
    };
    let mut j = start;
    let mut v: u64 = 0;
    let mut overflow = false;
    while j < bytes.len() {
        let Some(d) = (bytes[j] as char).to_digit(radix) else {
            break;
        };
        match v
            .checked_mul(u64::from(radix))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
        j += 1;
    }
    if j == start {
        return Err(IntError::Syntax);
    }
    if overflow {
        return Err(IntError::Range);
    }
    if neg {
        v = v.wrapping_neg();
    }
    let v = u128::from(v);
    if n_bytes < 16 && (v >> (8 * u32::from(n_bytes))) != 0 {
        return Err(IntError::Range);
    }
    Ok((v, &s[j..]))
}

/// Writes `v` (a value of `n_bytes` bytes) as OVS's `ds_put_hex`: `0x` and the significant
/// bytes, the first without a leading zero; `0` for zero.
pub(crate) fn put_hex(out: &mut String, v: u128, n_bytes: u8) {
    let n = n_bytes.min(16) as u32;
    let mut printed = false;
    for i in (0..n).rev() {
        let byte = ((v >> (8 * i)) & 0xff) as u8;
        if byte != 0 || printed {
            if printed {
                let _ = write!(out, "{byte:02x}");
            } else {
                let _ = write!(out, "0x{byte:x}");
            }
            printed = true;
        }
    }
    if !printed {
        out.push('0');
    }
}

/// Formats an IPv4 address held in the low 32 bits of `v`.
pub(crate) fn put_ipv4(out: &mut String, v: u32) {
    let b = v.to_be_bytes();
    let _ = write!(out, "{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
}

/// `ip_format_masked`: address, then `/prefix` for a CIDR mask or `/mask` otherwise.
pub(crate) fn put_ipv4_masked(out: &mut String, v: u32, mask: u32) {
    put_ipv4(out, v);
    if mask != u32::MAX {
        if mask.leading_ones() + mask.trailing_zeros() == 32 {
            let _ = write!(out, "/{}", mask.leading_ones());
        } else {
            out.push('/');
            put_ipv4(out, mask);
        }
    }
}

/// Formats an IPv6 address as glibc's `inet_ntop` does.
pub(crate) fn put_ipv6(out: &mut String, v: u128) {
    let a = Ipv6Addr::from(v);
    let seg = a.segments();
    // glibc prints IPv4-compatible addresses (::a.b.c.d, a run of exactly six zero words) with an
    // embedded dotted quad; Rust does not.
    if seg[..6].iter().all(|w| *w == 0) && seg[6] != 0 {
        let _ = write!(
            out,
            "::{}.{}.{}.{}",
            seg[6] >> 8,
            seg[6] & 0xff,
            seg[7] >> 8,
            seg[7] & 0xff
        );
        return;
    }
    let _ = write!(out, "{a}");
}

/// `ipv6_format_masked`.
pub(crate) fn put_ipv6_masked(out: &mut String, v: u128, mask: u128) {
    put_ipv6(out, v);
    if mask != u128::MAX {
        if mask.leading_ones() + mask.trailing_zeros() == 128 {
            let _ = write!(out, "/{}", mask.leading_ones());
        } else {
            out.push('/');
            put_ipv6(out, mask);
        }
    }
}

/// Formats a MAC address held in the low 48 bits of `v`.
pub(crate) fn put_eth(out: &mut String, v: u64) {
    let b = v.to_be_bytes();
    let _ = write!(
        out,
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    );
}

/// `eth_format_masked`.
pub(crate) fn put_eth_masked(out: &mut String, v: u64, mask: u64) {
    put_eth(out, v);
    if mask != 0xffff_ffff_ffff {
        out.push('/');
        put_eth(out, mask);
    }
}

/// Reads a dotted-quad IPv4 address the way OVS's scanf-based parser does (each part is a
/// decimal number truncated to 8 bits). Returns the address and the rest.
fn parse_ipv4_prefix(s: &str) -> Option<(u32, &str)> {
    let mut rest = s;
    let mut v: u32 = 0;
    for i in 0..4 {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut n: u64 = 0;
        for b in rest[..digits].bytes() {
            n = n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        }
        v = (v << 8) | (n & 0xff) as u32;
        rest = &rest[digits..];
        if i < 3 {
            rest = rest.strip_prefix('.')?;
        }
    }
    Some((v, rest))
}

/// `ip_parse_masked`: `a.b.c.d`, `a.b.c.d/len` or `a.b.c.d/m.m.m.m`.
pub(crate) fn parse_ipv4_masked(s: &str) -> Result<(u32, u32), String> {
    let Some((ip, rest)) = parse_ipv4_prefix(s) else {
        return Err(format!("{s}: invalid IP address"));
    };
    if rest.is_empty() {
        return Ok((ip, u32::MAX));
    }
    let Some(m) = rest.strip_prefix('/') else {
        return Err(format!("{s}: invalid IP address"));
    };
    if let Some((mask, "")) = parse_ipv4_prefix(m) {
        return Ok((ip, mask));
    }
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) {
        let bits: u32 = m.parse().unwrap_or(u32::MAX);
        if bits > 32 {
            return Err(format!(
                "{s}: IPv4 network prefix bits not between 0 and 32, inclusive"
            ));
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        return Ok((ip, mask));
    }
    Err(format!("{s}: invalid IP address"))
}

/// Parses an IPv6 address (no mask).
pub(crate) fn parse_ipv6(s: &str) -> Option<u128> {
    s.parse::<Ipv6Addr>().ok().map(u128::from)
}

/// `ipv6_parse_masked`: `addr`, `addr/len` or `addr/mask`.
pub(crate) fn parse_ipv6_masked(s: &str) -> Result<(u128, u128), String> {
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let Some(ip) = parse_ipv6(a) else {
        return Err(format!("{s}: invalid IPv6 address"));
    };
    let Some(m) = m else {
        return Ok((ip, u128::MAX));
    };
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) {
        let bits: u32 = m.parse().unwrap_or(u32::MAX);
        if bits > 128 {
            return Err(format!(
                "{s}: IPv6 network prefix bits not between 0 and 128, inclusive"
            ));
        }
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        return Ok((ip, mask));
    }
    match parse_ipv6(m) {
        Some(mask) => Ok((ip, mask)),
        None => Err(format!("{s}: invalid IPv6 address")),
    }
}

/// Reads `xx:xx:xx:xx:xx:xx` (one or two hex digits per byte) at the start of `s`.
fn parse_eth_prefix(s: &str) -> Option<(u64, &str)> {
    let mut rest = s;
    let mut v: u64 = 0;
    for i in 0..6 {
        let digits = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if digits == 0 || digits > 2 {
            return None;
        }
        let b = u64::from_str_radix(&rest[..digits], 16).ok()?;
        v = (v << 8) | b;
        rest = &rest[digits..];
        if i < 5 {
            rest = rest.strip_prefix(':')?;
        }
    }
    Some((v, rest))
}

/// Parses `mac` or `mac/mask`.
pub(crate) fn parse_eth_masked(s: &str) -> Result<(u64, u64), String> {
    let err = || format!("{s}: invalid Ethernet address");
    let (mac, rest) = parse_eth_prefix(s).ok_or_else(err)?;
    if rest.is_empty() {
        return Ok((mac, 0xffff_ffff_ffff));
    }
    let m = rest.strip_prefix('/').ok_or_else(err)?;
    match parse_eth_prefix(m) {
        Some((mask, "")) => Ok((mac, mask)),
        _ => Err(err()),
    }
}

/// Formats bytes as OVS's `format_hex_arg`: two hex digits per byte joined by dots.
pub(crate) fn put_hex_bytes(out: &mut String, data: &[u8]) {
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let _ = write!(out, "{b:02x}");
    }
}

/// Parses `01.02.0a` style bytes (dots optional), as OVS's `parse_hex_bytes` (via
/// `ofpbuf_put_hex`): pairs of hex digits, each pair optionally followed by a dot.
pub(crate) fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        if i + 1 >= b.len() {
            return None;
        }
        let hi = (b[i] as char).to_digit(16)?;
        let lo = (b[i + 1] as char).to_digit(16)?;
        out.push((hi * 16 + lo) as u8);
        i += 2;
        if i < b.len() && b[i] == b'.' {
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int_prefix("0x10/0xf0", 4), Ok((0x10, "/0xf0")));
        assert_eq!(parse_int_prefix("010", 4), Ok((8, "")));
        assert_eq!(parse_int_prefix("65535", 2), Ok((65535, "")));
        assert_eq!(parse_int_prefix("65536", 2), Err(IntError::Range));
        assert_eq!(parse_int_prefix("0x1ffff", 2), Err(IntError::Range));
        assert_eq!(parse_int_prefix("0x0000ffff", 2), Ok((0xffff, "")));
        assert_eq!(parse_int_prefix("abc", 2), Err(IntError::Syntax));
        assert_eq!(parse_int_prefix("", 2), Err(IntError::Syntax));
        assert_eq!(parse_int_prefix("0x", 2), Ok((0, "")));
        assert_eq!(
            parse_int_prefix("0xfec00000000000000000000000000001", 16),
            Ok((0xfec0_0000_0000_0000_0000_0000_0000_0001, ""))
        );
        assert_eq!(
            parse_int_prefix("99999999999999999999999", 16),
            Err(IntError::Range)
        );
    }

    #[test]
    fn hex() {
        let mut s = String::new();
        put_hex(&mut s, 0, 4);
        s.push(' ');
        put_hex(&mut s, 0x10a, 4);
        assert_eq!(s, "0 0x10a");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_ipv4_masked("10.0.0.300"), Ok((0x0a00_002c, u32::MAX)));
        assert_eq!(
            parse_ipv4_masked("10.0.0.0/8"),
            Ok((0x0a00_0000, 0xff00_0000))
        );
        assert!(parse_ipv4_masked("10.0.0.0/33").is_err());
        assert!(parse_ipv4_masked("10.0.0").is_err());
        let mut s = String::new();
        put_ipv4_masked(&mut s, 0x0a00_0000, 0xff00_ff00);
        assert_eq!(s, "10.0.0.0/255.0.255.0");
        let (v, m) = parse_ipv6_masked("fe80::/10").unwrap_or_default();
        let mut s = String::new();
        put_ipv6_masked(&mut s, v, m);
        assert_eq!(s, "fe80::/10");
        let mut s = String::new();
        put_ipv6(&mut s, 0x0102_0304);
        assert_eq!(s, "::1.2.3.4");
        assert_eq!(
            parse_eth_masked("aa:bb:cc:dd:ee:ff"),
            Ok((0xaabb_ccdd_eeff, 0xffff_ffff_ffff))
        );
        assert!(parse_eth_masked("aa:bb:cc").is_err());
        assert_eq!(parse_hex_bytes("01.02.aa"), Some(vec![1, 2, 0xaa]));
        assert_eq!(parse_hex_bytes("0102"), Some(vec![1, 2]));
        assert_eq!(parse_hex_bytes("1"), None);
    }
}
