//! Feeds arbitrary bytes to the pcap decoder. Properties: no panic, bounded work, and every file
//! it accepts re-encodes (with our writer) into a file that decodes to the same packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use xvs_io::pcap::{Next, PcapReader, PcapWriter, TsPrecision};

/// Buffer size: a typical pool frame, so both `Packet` and `Oversized` paths run.
const BUF: usize = 2048;

fn decode(bytes: &[u8]) -> Option<Vec<(Duration, Vec<u8>)>> {
    let mut reader = PcapReader::new(bytes).ok()?;
    let mut buf = [0u8; BUF];
    let mut packets = Vec::new();
    loop {
        match reader.next_into(&mut buf) {
            Ok(Next::Packet(h)) => {
                let data = buf
                    .get(..h.caplen as usize)
                    .expect("caplen fits the buffer");
                packets.push((h.timestamp, data.to_vec()));
            }
            Ok(Next::Oversized(h)) => assert!(h.caplen as usize > BUF),
            Ok(Next::End) | Err(_) => return Some(packets),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(packets) = decode(data) else {
        return;
    };
    let mut writer = PcapWriter::new(Vec::new(), TsPrecision::Nano).expect("in-memory writer");
    for (ts, p) in &packets {
        writer.write_packet(*ts, p).expect("in-memory write");
    }
    let again = decode(&writer.into_inner()).expect("our own output decodes");
    assert_eq!(packets.len(), again.len());
    for ((ts_a, a), (ts_b, b)) in packets.iter().zip(&again) {
        assert_eq!(a, b);
        // Classic pcap keeps 32-bit seconds: a damaged fraction that carries past them wraps.
        assert_eq!(ts_a.as_secs() as u32, ts_b.as_secs() as u32);
        assert_eq!(ts_a.subsec_nanos(), ts_b.subsec_nanos());
    }
});
