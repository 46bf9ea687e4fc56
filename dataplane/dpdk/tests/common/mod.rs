//! What the DPDK tests share: the frames they replay and the pcap that holds them.

use std::io::Write;

/// Frame `i` of a test capture: 60 bytes, 02:..:aa -> 02:..:bb, a local-experimental
/// EtherType (0x88b5) and `i` big-endian right after it, so every frame is told apart.
pub fn frame(i: u32) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&i.to_be_bytes());
    f
}

/// Writes a classic little-endian pcap (microseconds, Ethernet) of frames `0..frames`.
pub fn write_pcap(path: &std::path::Path, frames: u32) {
    let mut b = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for i in 0..frames {
        for v in [0u32, i, 60, 60] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&frame(i));
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&b))
        .expect("write pcap");
}
