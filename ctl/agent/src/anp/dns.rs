//! DNS response parsing for FQDN rules (sans-IO, RFC 1035 §4): the question name and the
//! A and AAAA records of the answer section with their TTLs, and the agent's own A query
//! (re-queries of tracked names). Bounded and panic-free on any input:
//! compression pointers must point strictly backwards and are followed at most
//! [`MAX_POINTER_HOPS`] times, names are capped at 255 bytes.
//!
//! Self-contained (std only) so that the fuzz target (`ctl/agent/fuzz`) can compile this file
//! alone instead of the whole agent.

use std::net::{Ipv4Addr, Ipv6Addr};

/// DNS header length.
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Compression pointers followed per name (a name has at most 127 labels).
pub const MAX_POINTER_HOPS: usize = 128;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const FLAG_RESPONSE: u16 = 0x8000;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a message is not a usable DNS response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Shorter than its header, its question, or its TCP length prefix.
    #[error("truncated DNS message")]
    Truncated,
    /// The QR bit is clear.
    #[error("DNS query, not a response")]
    NotResponse,
    /// QDCOUNT is zero.
    #[error("DNS response without a question")]
    NoQuestion,
    /// A label type other than plain or pointer (0x40, 0x80 prefixes).
    #[error("unsupported DNS label type")]
    BadLabel,
    /// A pointer that does not point strictly backwards, or too many of them.
    #[error("DNS compression pointer loop or forward pointer")]
    PointerLoop,
    /// A name longer than 255 bytes.
    #[error("DNS name too long")]
    NameTooLong,
    /// A name to query with an empty label or one longer than 63 bytes.
    #[error("DNS name with an empty or overlong label")]
    BadName,
}

/// What an FQDN rule learns from one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsResponse {
    /// The message id (matches a re-query with its answer).
    pub id: u16,
    /// The first question's name, lowercase, without the trailing dot.
    pub name: String,
    /// The answer section's A records (any owner: CNAME chains end in them), with TTLs in
    /// seconds (a TTL with the top bit set counts as 0, RFC 2181 §8).
    pub addrs: Vec<(Ipv4Addr, u32)>,
    /// The answer section's AAAA records, with TTLs (parsed, not installed: xvs's pipeline
    /// is IPv4-only).
    pub addrs6: Vec<(Ipv6Addr, u32)>,
    /// True when the message ended before all announced answers (a TCP segment carrying
    /// part of a longer message): `addrs` holds the complete records before the cut.
    pub partial: bool,
}

fn be16(m: &[u8], at: usize) -> Option<u16> {
    let b = m.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(m: &[u8], at: usize) -> Option<u32> {
    let b = m.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the name at `at`; returns it (lowercase, dotted, no trailing dot; "" for the root)
/// and the offset just after it in the original position.
fn read_name(m: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut wire_len = 0usize;
    let mut pos = at;
    // Where reading resumes after the name, fixed at the first pointer.
    let mut end = None;
    let mut hops = 0usize;
    loop {
        let len = *m.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let label = m
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(DnsError::Truncated)?;
                wire_len += 1 + label.len();
                if wire_len + 1 > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                pos += 1 + label.len();
            }
            0xc0 => {
                let target = usize::from(be16(m, pos).ok_or(DnsError::Truncated)? & 0x3fff);
                // Strictly backwards: every hop lowers `pos`, so no loop can last.
                hops += 1;
                if target >= pos || hops > MAX_POINTER_HOPS {
                    return Err(DnsError::PointerLoop);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Parses a DNS response carried in UDP (the whole message).
pub fn parse_response(m: &[u8]) -> Result<DnsResponse, DnsError> {
    parse(m, false)
}

/// Parses a DNS response carried in TCP: a 2-byte length then the message. A segment
/// holding only the start of the message gives what its complete records say
/// ([`DnsResponse::partial`]).
pub fn parse_tcp_response(payload: &[u8]) -> Result<DnsResponse, DnsError> {
    let len = usize::from(be16(payload, 0).ok_or(DnsError::Truncated)?);
    let rest = payload.get(2..).unwrap_or_default();
    let msg = rest.get(..len).unwrap_or(rest);
    parse(msg, msg.len() < len)
}

fn parse(m: &[u8], cut: bool) -> Result<DnsResponse, DnsError> {
    if m.len() < HEADER_LEN {
        return Err(DnsError::Truncated);
    }
    let flags = be16(m, 2).ok_or(DnsError::Truncated)?;
    if flags & FLAG_RESPONSE == 0 {
        return Err(DnsError::NotResponse);
    }
    let qdcount = be16(m, 4).ok_or(DnsError::Truncated)?;
    let ancount = be16(m, 6).ok_or(DnsError::Truncated)?;
    if qdcount == 0 {
        return Err(DnsError::NoQuestion);
    }
    let mut pos = HEADER_LEN;
    let mut first = None;
    for _ in 0..qdcount {
        let (n, after) = read_name(m, pos)?;
        // QTYPE, QCLASS.
        if after + 4 > m.len() {
            return Err(DnsError::Truncated);
        }
        pos = after + 4;
        first.get_or_insert(n);
    }
    let name = first.unwrap_or_default();
    let id = be16(m, 0).ok_or(DnsError::Truncated)?;
    let mut addrs = Vec::new();
    let mut addrs6 = Vec::new();
    let mut partial = cut;
    for _ in 0..ancount {
        let rr = (|| {
            let (_, after) = read_name(m, pos).ok()?;
            let rtype = be16(m, after)?;
            let class = be16(m, after + 2)?;
            let ttl = be32(m, after + 4)?;
            let rdlen = usize::from(be16(m, after + 8)?);
            let rdata = m.get(after + 10..after + 10 + rdlen)?;
            Some((rtype, class, ttl, rdata, after + 10 + rdlen))
        })();
        let Some((rtype, class, ttl, rdata, next)) = rr else {
            // A record cut short (or malformed) ends the answers; the earlier ones stand.
            partial = true;
            break;
        };
        let ttl = if ttl & 0x8000_0000 != 0 { 0 } else { ttl };
        if class == CLASS_IN && rtype == TYPE_A {
            if let Ok(b) = <[u8; 4]>::try_from(rdata) {
                addrs.push((Ipv4Addr::from(b), ttl));
            }
        } else if class == CLASS_IN && rtype == TYPE_AAAA {
            if let Ok(b) = <[u8; 16]>::try_from(rdata) {
                addrs6.push((Ipv6Addr::from(b), ttl));
            }
        }
        pos = next;
    }
    Ok(DnsResponse {
        id,
        name,
        addrs,
        addrs6,
        partial,
    })
}

/// Writes a standard query (recursion desired) for the A records of `name` (dotted, a
/// trailing dot allowed) with message id `id` into `out` (cleared first).
pub fn build_query(id: u16, name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire_len = 1;
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(DnsError::BadName);
            }
            wire_len += 1 + label.len();
            if wire_len > MAX_NAME_LEN {
                return Err(DnsError::NameTooLong);
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A response to `www.foobar.com A` with two answers, the first by pointer to the
    /// question name, the second a CNAME-like owner spelled out.
    fn two_answers() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03WWW\x06FooBar\x03com\x00");
        m.extend_from_slice(&[0, 1, 0, 1]);
        // Answer 1: pointer to offset 12, A IN, TTL 30, 10.10.0.3.
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 10, 0, 3]);
        // Answer 2: "x" + pointer to "foobar.com" (offset 16), A IN, TTL 5, 10.10.0.4.
        m.extend_from_slice(&[
            1, b'x', 0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 10, 0, 4,
        ]);
        m
    }

    #[test]
    fn question_lowercased_and_a_records_with_ttl() {
        let r = parse_response(&two_answers()).unwrap();
        assert_eq!(r.name, "www.foobar.com");
        assert_eq!(
            r.addrs,
            vec![
                (Ipv4Addr::new(10, 10, 0, 3), 30),
                (Ipv4Addr::new(10, 10, 0, 4), 5)
            ]
        );
        assert!(!r.partial);
    }

    #[test]
    fn queries_and_empty_questions_are_refused() {
        let mut m = two_answers();
        m[2] &= 0x7f;
        assert_eq!(parse_response(&m), Err(DnsError::NotResponse));
        let mut m = two_answers();
        m[5] = 0;
        assert_eq!(parse_response(&m), Err(DnsError::NoQuestion));
        assert_eq!(parse_response(&m[..11]), Err(DnsError::Truncated));
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        // The question name is a pointer to itself.
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_response(&m), Err(DnsError::PointerLoop));
        m[13] = 14;
        assert_eq!(parse_response(&m), Err(DnsError::PointerLoop));
        // Two names pointing at each other: the first hop already goes forward.
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[1, b'a', 0xc0, 16, 1, b'b', 0xc0, 12]);
        assert_eq!(parse_response(&m), Err(DnsError::PointerLoop));
    }

    #[test]
    fn long_names_and_odd_labels_are_refused() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_response(&m), Err(DnsError::NameTooLong));
        let mut m = vec![
            0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1,
        ];
        assert_eq!(parse_response(&m), Err(DnsError::BadLabel));
        m[12] = 0x81;
        assert_eq!(parse_response(&m), Err(DnsError::BadLabel));
    }

    #[test]
    fn root_name_and_trailing_dot() {
        let m = [0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        assert_eq!(parse_response(&m).unwrap().name, "");
    }

    #[test]
    fn tcp_framing_and_partial_segments() {
        let msg = two_answers();
        let mut seg = (msg.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(&msg);
        let r = parse_tcp_response(&seg).unwrap();
        assert_eq!(r.addrs.len(), 2);
        assert!(!r.partial);
        // Cut inside the second answer: the first stands.
        let r = parse_tcp_response(&seg[..seg.len() - 3]).unwrap();
        assert_eq!(r.addrs, vec![(Ipv4Addr::new(10, 10, 0, 3), 30)]);
        assert!(r.partial);
        assert_eq!(parse_tcp_response(&seg[..1]), Err(DnsError::Truncated));
        // Bytes after the declared length are ignored.
        seg.extend_from_slice(&[0xff; 7]);
        assert_eq!(parse_tcp_response(&seg).unwrap().addrs.len(), 2);
    }

    #[test]
    fn ttl_with_top_bit_counts_as_zero_and_non_a_records_are_skipped() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        // CNAME (5) to "b", AAAA (28), then A with TTL 0x80000001.
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 9, 0, 3, 1, b'b', 0]);
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 9, 0, 16]);
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0x80, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        let r = parse_response(&m).unwrap();
        assert_eq!(r.addrs, vec![(Ipv4Addr::new(1, 2, 3, 4), 0)]);
        assert_eq!(r.addrs6, vec![(Ipv6Addr::UNSPECIFIED, 9)]);
    }

    /// A two-step CNAME chain (a → b → c) ending in two A records and one AAAA record for c:
    /// every address of the chain counts for the question's name, as in Antrea.
    #[test]
    fn cname_chain_and_aaaa() {
        let mut m = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x03com\x00\x00\x01\x00\x01");
        // a.com CNAME b.com (b + pointer to "com" at 14), TTL 300.
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 44, 0, 4, 1, b'b', 0xc0, 14]);
        // b.com (at 31) CNAME c.com, TTL 30.
        m.extend_from_slice(&[0xc0, 31, 0, 5, 0, 1, 0, 0, 0, 30, 0, 4, 1, b'c', 0xc0, 14]);
        // c.com (at 47): A 10.0.0.1 TTL 7, A 10.0.0.2 TTL 8, AAAA fd00::1 TTL 9.
        m.extend_from_slice(&[0xc0, 47, 0, 1, 0, 1, 0, 0, 0, 7, 0, 4, 10, 0, 0, 1]);
        m.extend_from_slice(&[0xc0, 47, 0, 1, 0, 1, 0, 0, 0, 8, 0, 4, 10, 0, 0, 2]);
        m.extend_from_slice(&[0xc0, 47, 0, 28, 0, 1, 0, 0, 0, 9, 0, 16, 0xfd]);
        m.extend_from_slice(&[0; 14]);
        m.push(1);
        let r = parse_response(&m).unwrap();
        assert_eq!(r.id, 0xabcd);
        assert_eq!(r.name, "a.com");
        assert_eq!(
            r.addrs,
            vec![
                (Ipv4Addr::new(10, 0, 0, 1), 7),
                (Ipv4Addr::new(10, 0, 0, 2), 8)
            ]
        );
        assert_eq!(r.addrs6, vec![("fd00::1".parse().unwrap(), 9)]);
        assert!(!r.partial);
    }

    #[test]
    fn query_round_trip_and_bad_names() {
        let mut q = Vec::new();
        build_query(0x4242, "WWW.foobar.com.", &mut q).unwrap();
        assert_eq!(&q[..4], &[0x42, 0x42, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03WWW\x06foobar\x03com\x00\x00\x01\x00\x01");
        // The query with the QR bit set parses as a response without answers.
        q[2] |= 0x80;
        let r = parse_response(&q).unwrap();
        assert_eq!((r.id, r.name.as_str()), (0x4242, "www.foobar.com"));
        assert!(r.addrs.is_empty());
        assert_eq!(build_query(1, "a..b", &mut q), Err(DnsError::BadName));
        let long = "a".repeat(64);
        assert_eq!(build_query(1, &long, &mut q), Err(DnsError::BadName));
        let many = vec!["a".repeat(63); 4].join(".");
        assert_eq!(build_query(1, &many, &mut q), Err(DnsError::NameTooLong));
        build_query(1, "", &mut q).unwrap();
        assert_eq!(&q[12..], &[0, 0, 1, 0, 1]);
    }

    /// The fuzz corpus (`ctl/agent/fuzz/make_corpus.py`): RFC 1035's compression example and
    /// a CNAME chain, over UDP and TCP.
    #[test]
    fn corpus_responses() {
        let rfc = include_bytes!("../../fuzz/corpus/dns/rfc1035_compression.bin");
        let r = parse_response(rfc).unwrap();
        assert_eq!(r.name, "f.isi.arpa");
        assert_eq!(
            r.addrs,
            vec![
                (Ipv4Addr::new(10, 0, 0, 52), 86400),
                (Ipv4Addr::new(26, 3, 0, 103), 86400)
            ]
        );
        let tcp = include_bytes!("../../fuzz/corpus/dns/tcp_cname_then_a.bin");
        let r = parse_tcp_response(tcp).unwrap();
        assert_eq!(r.name, "www.foobar.com");
        assert_eq!(r.addrs, vec![(Ipv4Addr::new(10, 0, 12, 7), 60)]);
        let nx = include_bytes!("../../fuzz/corpus/dns/nxdomain.bin");
        assert!(parse_response(nx).unwrap().addrs.is_empty());
        let lp = include_bytes!("../../fuzz/corpus/dns/pointer_loop.bin");
        assert_eq!(parse_response(lp), Err(DnsError::PointerLoop));
    }

    /// Answers of a real server (dnsmasq, `ctl/agent/fuzz/capture_real.py`): a two-step
    /// CNAME chain to two A records and an AAAA record, several A records for one name (a
    /// headless Service), over UDP and TCP, and NXDOMAIN.
    #[test]
    fn real_server_answers() {
        use std::collections::BTreeSet;
        fn v4(r: &DnsResponse) -> BTreeSet<(Ipv4Addr, u32)> {
            r.addrs.iter().copied().collect()
        }
        let edge = BTreeSet::from([
            (Ipv4Addr::new(10, 0, 12, 7), 30),
            (Ipv4Addr::new(10, 0, 12, 8), 60),
        ]);
        let r = parse_response(include_bytes!(
            "../../fuzz/corpus/dns/real_cname_chain_a.bin"
        ))
        .unwrap();
        assert_eq!((r.id, r.name.as_str()), (0x5100, "www.foobar.com"));
        assert_eq!(v4(&r), edge);
        assert!(r.addrs6.is_empty() && !r.partial);
        let r = parse_response(include_bytes!(
            "../../fuzz/corpus/dns/real_cname_chain_aaaa.bin"
        ))
        .unwrap();
        assert!(r.addrs.is_empty());
        assert_eq!(r.addrs6, vec![("fd00::12:7".parse().unwrap(), 30)]);
        let r = parse_tcp_response(include_bytes!(
            "../../fuzz/corpus/dns/real_tcp_cname_chain_a.bin"
        ))
        .unwrap();
        assert_eq!(r.name, "www.foobar.com");
        assert_eq!(v4(&r), edge);
        let r = parse_response(include_bytes!(
            "../../fuzz/corpus/dns/real_a_two_records.bin"
        ))
        .unwrap();
        assert_eq!(v4(&r), edge);
        let pods = BTreeSet::from([
            (Ipv4Addr::new(10, 10, 0, 3), 5),
            (Ipv4Addr::new(10, 10, 0, 4), 5),
            (Ipv4Addr::new(10, 10, 0, 5), 5),
        ]);
        let r = parse_response(include_bytes!(
            "../../fuzz/corpus/dns/real_headless_service.bin"
        ))
        .unwrap();
        assert_eq!(r.name, "svca.default.svc.cluster.local");
        assert_eq!(v4(&r), pods);
        let r = parse_tcp_response(include_bytes!(
            "../../fuzz/corpus/dns/real_tcp_headless_service.bin"
        ))
        .unwrap();
        assert_eq!(v4(&r), pods);
        let r = parse_response(include_bytes!("../../fuzz/corpus/dns/real_nxdomain.bin")).unwrap();
        assert_eq!(r.name, "nope.foobar.com");
        assert!(r.addrs.is_empty() && r.addrs6.is_empty());
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        let msg = two_answers();
        for n in 0..=msg.len() {
            let _ = parse_response(&msg[..n]);
            let _ = parse_tcp_response(&msg[..n]);
        }
        for i in 0..msg.len() {
            for v in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut m = msg.clone();
                m[i] = v;
                let _ = parse_response(&m);
            }
        }
    }
}
