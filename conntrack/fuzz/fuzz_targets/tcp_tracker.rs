//! Feeds arbitrary TCP segments (flags, sequence and acknowledgement numbers, windows, window
//! scale, payload lengths, clock steps) for a few connections, in both directions, with and
//! without commit, through the tracker. Any panic is a bug; so is a broken invariant: the table
//! never holds more than its limit, every packet leaves `+trk`, `+inv` comes alone, and the
//! connection counts of the zones add up to the total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{
    Conntrack, CtAction, CtConfig, CtInput, CtMeta, CtState, CtStats, TcpSegment, Tuple,
};

const MAX_CONNS: u32 = 4;
const CHUNK: usize = 16;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fuzz_target!(|data: &[u8]| {
    let ct = Conntrack::new(CtConfig {
        max_conns: MAX_CONNS,
        hash_seed: 1,
        ..CtConfig::default()
    });
    if data.first().is_some_and(|b| b & 1 == 1) {
        ct.set_tcp_seq_check(false);
    }
    let client = IpAddr::from([10, 0, 0, 1]);
    let server = IpAddr::from([10, 0, 0, 2]);
    let mut stats = CtStats::default();
    let mut now = 0u64;
    for c in data.chunks_exact(CHUNK) {
        let sel = c[0];
        let conn = u16::from(sel & 7);
        let reply = sel & 8 != 0;
        let zone = if sel & 16 != 0 { 7 } else { 0 };
        let act = if sel & 32 != 0 {
            CtAction::commit(zone)
        } else {
            CtAction::lookup(zone)
        };
        let (cport, sport) = (40_000 + conn, 80);
        let tuple = if reply {
            Tuple::ports(server, client, proto::TCP, sport, cport)
        } else {
            Tuple::ports(client, server, proto::TCP, cport, sport)
        };
        let seg = TcpSegment {
            flags: u16::from_be_bytes([c[1], c[2]]) & 0x1ff,
            seq: be32(&c[3..7]),
            ack: be32(&c[7..11]),
            window: u16::from_be_bytes([c[11], c[12]]),
            wscale: (c[13] != 0xff).then_some(c[13]),
            payload_len: u32::from(c[14]) * 97,
        };
        now = now.saturating_add(u64::from(c[15]) * 250_000_000);
        let mut meta = CtMeta::default();
        let _ = ct.process(now, &CtInput::tcp(tuple, seg), &act, &mut meta, &mut stats);
        assert!(meta.state.contains(CtState::TRACKED));
        if meta.state.contains(CtState::INVALID) {
            assert_eq!(meta.state, CtState::INVALID | CtState::TRACKED);
        }
        assert_eq!(meta.zone, zone);
        assert!(ct.conn_count() <= MAX_CONNS);
        if sel & 64 != 0 {
            ct.sweep(now, usize::from(sel >> 7) + 1);
        }
    }
    let per_zone: u32 = ct.zone_counts().iter().map(|(_, n)| n).sum();
    assert_eq!(per_zone, ct.conn_count());
    for e in ct.dump(None, now) {
        assert!(e.zone == 0 || e.zone == 7);
        let _ = e.to_string();
    }
});
