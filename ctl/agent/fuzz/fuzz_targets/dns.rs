//! The FQDN rules' DNS response parser on arbitrary bytes, as a UDP payload and as a TCP
//! segment (length-prefixed). Any panic or unbounded work is a bug; a parsed response keeps
//! its bounds (name at most 255 characters, at most one address per 16 bytes of message).
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
        assert!(r.addrs.len() <= data.len() / 16 + 1);
    }
});
