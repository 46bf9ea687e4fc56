//! The FQDN rules' DNS response parser on arbitrary bytes, as a UDP payload and as a TCP
//! segment (length-prefixed). Any panic or unbounded work is a bug; a parsed response keeps
//! its bounds (name at most 255 characters, at most one address, A or AAAA, per 16 bytes of
//! message). The query builder must round-trip any name it accepts.
//!
//! The parser is compiled from its source file alone (it only needs std and thiserror), so
//! this target does not build the whole agent.
#![no_main]

#[path = "../../src/anp/dns.rs"]
#[allow(dead_code)]
mod dns;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for r in [dns::parse_response(data), dns::parse_tcp_response(data)]
        .into_iter()
        .flatten()
    {
        assert!(r.name.chars().count() <= dns::MAX_NAME_LEN);
        // An A record takes at least 16 bytes, an AAAA record 28.
        assert!(r.addrs.len() + r.addrs6.len() <= data.len() / 16 + 1);
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let mut q = Vec::new();
        if dns::build_query(7, name, &mut q).is_ok() && name.is_ascii() {
            q[2] |= 0x80;
            let r = dns::parse_response(&q).expect("a built query parses back");
            assert_eq!(r.id, 7);
            let want = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            assert_eq!(r.name, want);
        }
    }
});
