//! What the DPDK tests share: the frames they replay and the pcap that holds them.

use std::io::Write;
use std::path::PathBuf;
use xvs_dpdk::{Eal, EalConfig};

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

/// The scratch directory `tag`, a capture of `frames` frames in it, and EAL started (without
/// hugepages) with a replaying `net_pcap0` over that capture and a `net_null0` sink. Returns
/// the directory (the caller removes it), the pcap devargs and EAL.
pub fn pcap_and_null(tag: &str, frames: u32) -> (PathBuf, String, Eal) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pcap = dir.join("replay.pcap");
    write_pcap(&pcap, frames);
    let pcap_devargs = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    let eal = Eal::init(&EalConfig {
        cores: "0".into(),
        memory_mb: 128,
        no_huge: true,
        devices: vec![pcap_devargs.clone(), NULL_DEVARGS.into()],
        extra_args: vec!["--log-level=lib.eal:error".into()],
    })
    .expect("EAL with --no-huge");
    (dir, pcap_devargs, eal)
}

/// The sink both tests transmit into.
pub const NULL_DEVARGS: &str = "net_null0,no-rx=1";
