//! A classic pcap writer (nanosecond timestamps, Ethernet link type): what tcpdump, tshark and
//! Wireshark read.

use std::io::{self, Write};

/// The nanosecond-resolution pcap magic.
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// `LINKTYPE_ETHERNET`.
const LINKTYPE_ETHERNET: u32 = 1;
/// The snapshot length announced in the file header.
pub const SNAPLEN: u32 = 65_535;

/// Writes frames to `W` as a pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    frames: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_NS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self { out, frames: 0 })
    }

    /// Writes one frame captured at `time_ns` (since the Unix epoch), `orig_len` long on the
    /// wire, of which `data` was kept.
    pub fn write(&mut self, time_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let data = &data[..data.len().min(SNAPLEN as usize)];
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((time_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((time_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_classic_layout() {
        let mut w = PcapWriter::new(Vec::new()).expect("header");
        w.write(1_700_000_000_123_456_789, 60, &[0xaa; 42])
            .expect("frame");
        assert_eq!(w.frames(), 1);
        let b = w.finish().expect("finish");
        assert_eq!(b.len(), 24 + 16 + 42);
        assert_eq!(&b[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4);
        assert_eq!(u32::from_le_bytes([b[20], b[21], b[22], b[23]]), 1);
        let r = &b[24..40];
        assert_eq!(u32::from_le_bytes([r[0], r[1], r[2], r[3]]), 1_700_000_000);
        assert_eq!(u32::from_le_bytes([r[4], r[5], r[6], r[7]]), 123_456_789);
        assert_eq!(u32::from_le_bytes([r[8], r[9], r[10], r[11]]), 42);
        assert_eq!(u32::from_le_bytes([r[12], r[13], r[14], r[15]]), 60);
    }
}
