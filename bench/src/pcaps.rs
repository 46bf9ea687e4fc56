//! The traffic of `pipeline`: pcap files written directly (classic libpcap format, Ethernet
//! link type), with the frames of `ovs-dpdk-pipeline.md`. Every frame is 60 bytes (64 on the
//! wire), Ethernet/IPv4 with valid IPv4, UDP and TCP checksums.

use anyhow::{Context, Result};
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Source MAC of the UDP pcaps and of the TCP clients ("MAC A").
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// Destination MAC of the UDP pcaps and source MAC of the TCP servers ("MAC B").
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
/// UDP destination (10.1.0.1:5001).
pub const UDP_DST: [u8; 4] = [10, 1, 0, 1];
pub const UDP_DPORT: u16 = 5001;
/// First UDP source port.
pub const UDP_SPORT: u16 = 1024;
/// TCP clients 10.10.0.2 .. 10.10.0.101, servers 10.10.1.2 .. 10.10.1.10.
pub const TCP_CLIENTS: u8 = 100;
pub const TCP_SERVERS: u8 = 9;
pub const TCP_PORTS: [u16; 3] = [80, 443, 8080];
pub const TCP_CONNS: u32 = 1000;
/// Data segments each way per connection (6-byte payloads).
const TCP_DATA_ROUNDS: u32 = 47;
const FRAME_LEN: usize = 60;

/// One pcap of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pcap {
    Udp1Flow,
    Udp1kFlow,
    Udp100kFlow,
    /// 1,000 TCP connections, SYN .. data .. FIN, in lockstep.
    Tcp1kConn,
    /// The same without the close: established traffic only once the pcap loops.
    Tcp1kConnNoFin,
}

impl Pcap {
    pub const ALL: [Pcap; 5] = [
        Pcap::Udp1Flow,
        Pcap::Udp1kFlow,
        Pcap::Udp100kFlow,
        Pcap::Tcp1kConn,
        Pcap::Tcp1kConnNoFin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pcap::Udp1Flow => "udp-1flow",
            Pcap::Udp1kFlow => "udp-1kflow",
            Pcap::Udp100kFlow => "udp-100kflow",
            Pcap::Tcp1kConn => "tcp-1kconn",
            Pcap::Tcp1kConnNoFin => "tcp-1kconn-nofin",
        }
    }

    /// The frames, in file order.
    pub fn frames(self) -> Vec<[u8; FRAME_LEN]> {
        match self {
            Pcap::Udp1Flow => vec![udp_frame([10, 0, 0, 1], UDP_SPORT)],
            Pcap::Udp1kFlow => (0..1000)
                .map(|i| udp_frame([10, 0, 0, 1], UDP_SPORT + i))
                .collect(),
            Pcap::Udp100kFlow => {
                let mut v = Vec::with_capacity(100_000);
                for port in 0..100u16 {
                    for host in 0..1000u32 {
                        // 10.0.0.1, 10.0.0.2, ... 10.0.3.232
                        let n = host + 1;
                        let src = [10, 0, (n >> 8) as u8, (n & 0xff) as u8];
                        v.push(udp_frame(src, UDP_SPORT + port));
                    }
                }
                v
            }
            Pcap::Tcp1kConn => tcp_conns(true),
            Pcap::Tcp1kConnNoFin => tcp_conns(false),
        }
    }

    /// Writes the pcap under `dir` (once: an existing file of the right size is reused, the
    /// content being a pure function of the name) and returns its path.
    pub fn write_into(self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(format!("{}.pcap", self.name()));
        let frames = self.frames();
        let size = 24 + frames.len() as u64 * (16 + FRAME_LEN as u64);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            return Ok(path);
        }
        let tmp = path.with_extension("pcap.tmp");
        let f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let mut w = BufWriter::new(f);
        write_pcap(&mut w, &frames)?;
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

impl fmt::Display for Pcap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Pcap {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Pcap::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown pcap {s:?}"))
    }
}

/// Classic pcap: global header (microsecond timestamps, snaplen 65535, LINKTYPE_ETHERNET),
/// then one record per frame, 1 µs apart.
pub fn write_pcap(w: &mut impl Write, frames: &[[u8; FRAME_LEN]]) -> Result<()> {
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    for (i, f) in frames.iter().enumerate() {
        let ts = i as u64;
        w.write_all(&((ts / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((ts % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&(FRAME_LEN as u32).to_le_bytes())?;
        w.write_all(&(FRAME_LEN as u32).to_le_bytes())?;
        w.write_all(f)?;
    }
    Ok(())
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for p in parts {
        let mut chunks = p.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 (TTL 64, DF clear) + `l4`, padded to 60 bytes; fills the IPv4 checksum and
/// the L4 checksum at `l4_csum_off` (offset within `l4`).
fn ipv4_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    mut l4: Vec<u8>,
    l4_csum_off: usize,
) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + l4.len();
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum(&[ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let len = (l4.len() as u16).to_be_bytes();
    let pseudo = [
        src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, proto, len[0], len[1],
    ];
    let mut c = checksum(&[&pseudo, &l4]);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    l4[l4_csum_off..l4_csum_off + 2].copy_from_slice(&c.to_be_bytes());
    f[34..34 + l4.len()].copy_from_slice(&l4);
    f
}

fn udp_frame(src: [u8; 4], sport: u16) -> [u8; FRAME_LEN] {
    // 60 - 14 - 20 = 26 bytes of UDP: 8 header + 18 payload.
    let mut l4 = vec![0u8; 26];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&UDP_DPORT.to_be_bytes());
    l4[4..6].copy_from_slice(&26u16.to_be_bytes());
    for (i, b) in l4[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    ipv4_frame(MAC_A, MAC_B, src, UDP_DST, 17, l4, 6)
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// One TCP connection's endpoints.
#[derive(Debug, Clone, Copy)]
pub struct TcpConn {
    pub client: [u8; 4],
    pub server: [u8; 4],
    pub sport: u16,
    pub dport: u16,
}

impl TcpConn {
    /// Connection `i` of the 1,000: client 10.10.0.(2 + i mod 100), server
    /// 10.10.1.(2 + i mod 9), port 80/443/8080 by i mod 3, client port 10000 + i.
    pub fn nth(i: u32) -> Self {
        TcpConn {
            client: [10, 10, 0, 2 + (i % u32::from(TCP_CLIENTS)) as u8],
            server: [10, 10, 1, 2 + (i % u32::from(TCP_SERVERS)) as u8],
            sport: 10_000 + i as u16,
            dport: TCP_PORTS[(i % 3) as usize],
        }
    }

    fn segment(&self, from_client: bool, seq: u32, ack: u32, flags: u8, data: usize) -> [u8; 60] {
        let mut l4 = vec![0u8; 20 + data];
        let (sp, dp) = if from_client {
            (self.sport, self.dport)
        } else {
            (self.dport, self.sport)
        };
        l4[0..2].copy_from_slice(&sp.to_be_bytes());
        l4[2..4].copy_from_slice(&dp.to_be_bytes());
        l4[4..8].copy_from_slice(&seq.to_be_bytes());
        let ack = if flags & ACK != 0 { ack } else { 0 };
        l4[8..12].copy_from_slice(&ack.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = flags;
        l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
        for (k, b) in l4[20..].iter_mut().enumerate() {
            *b = b'a' + k as u8;
        }
        if from_client {
            ipv4_frame(MAC_A, MAC_B, self.client, self.server, 6, l4, 16)
        } else {
            ipv4_frame(MAC_B, MAC_A, self.server, self.client, 6, l4, 16)
        }
    }

    /// The connection's frames in order: handshake, 47 data segments each way (each
    /// acknowledging the other side's last), and with `close` a FIN from each side and the
    /// last ACK (100 frames; 97 without the close).
    pub fn frames(&self, i: u32, close: bool) -> Vec<[u8; 60]> {
        let (c0, s0) = (1_000_000 + i * 7919, 2_000_000 + i * 104_729);
        let mut v = Vec::with_capacity(100);
        v.push(self.segment(true, c0, 0, SYN, 0));
        v.push(self.segment(false, s0, c0 + 1, SYN | ACK, 0));
        let (mut cs, mut ss) = (c0 + 1, s0 + 1);
        v.push(self.segment(true, cs, ss, ACK, 0));
        for _ in 0..TCP_DATA_ROUNDS {
            v.push(self.segment(true, cs, ss, PSH | ACK, 6));
            cs += 6;
            v.push(self.segment(false, ss, cs, PSH | ACK, 6));
            ss += 6;
        }
        if close {
            v.push(self.segment(true, cs, ss, FIN | ACK, 0));
            cs += 1;
            v.push(self.segment(false, ss, cs, FIN | ACK, 0));
            ss += 1;
            v.push(self.segment(true, cs, ss, ACK, 0));
        }
        v
    }
}

/// Every connection advances in lockstep: all first frames, then all second frames, ...
fn tcp_conns(close: bool) -> Vec<[u8; 60]> {
    let per: Vec<Vec<[u8; 60]>> = (0..TCP_CONNS)
        .map(|i| TcpConn::nth(i).frames(i, close))
        .collect();
    let steps = per.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(steps * per.len());
    for step in 0..steps {
        for c in &per {
            out.push(c[step]);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn verify(f: &[u8; 60]) {
        let ihl = 20;
        assert_eq!(checksum(&[&f[14..14 + ihl]]), 0, "ipv4 checksum");
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let l4 = &f[34..14 + total];
        let len = (l4.len() as u16).to_be_bytes();
        let pseudo = [
            f[26], f[27], f[28], f[29], f[30], f[31], f[32], f[33], 0, f[23], len[0], len[1],
        ];
        assert_eq!(checksum(&[&pseudo, l4]), 0, "l4 checksum");
    }

    #[test]
    fn frame_counts_and_checksums() {
        let want = [1, 1000, 100_000, 100_000, 97_000];
        for (p, n) in Pcap::ALL.into_iter().zip(want) {
            let frames = p.frames();
            assert_eq!(frames.len(), n, "{p}");
            for f in frames.iter().step_by(97) {
                verify(f);
            }
        }
    }

    #[test]
    fn distinct_udp_flows() {
        let mut keys: Vec<[u8; 8]> = Pcap::Udp100kFlow
            .frames()
            .iter()
            .map(|f| {
                let mut k = [0u8; 8];
                k[..4].copy_from_slice(&f[26..30]);
                k[4..6].copy_from_slice(&f[34..36]);
                k
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 100_000);
    }

    #[test]
    fn tcp_sequence_numbers_follow_the_data() {
        let c = TcpConn::nth(5);
        let fr = c.frames(5, true);
        assert_eq!(fr.len(), 100);
        let seq = |f: &[u8; 60]| u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
        let ack = |f: &[u8; 60]| u32::from_be_bytes([f[42], f[43], f[44], f[45]]);
        let flags = |f: &[u8; 60]| f[47];
        assert_eq!(flags(&fr[0]), SYN);
        assert_eq!(flags(&fr[1]), SYN | ACK);
        assert_eq!(ack(&fr[1]), seq(&fr[0]) + 1);
        assert_eq!(ack(&fr[2]), seq(&fr[1]) + 1);
        // First data from the server acknowledges the client's 6 bytes.
        assert_eq!(ack(&fr[4]), seq(&fr[3]) + 6);
        assert_eq!(flags(&fr[97]), FIN | ACK);
        assert_eq!(ack(&fr[99]), seq(&fr[98]) + 1);
        // Lockstep: the first 1000 frames of the pcap are SYNs.
        let all = Pcap::Tcp1kConn.frames();
        assert!(all[..1000].iter().all(|f| flags(f) == SYN));
        assert!(all[1000..2000].iter().all(|f| flags(f) == SYN | ACK));
    }

    #[test]
    fn pcap_file_layout() {
        let mut buf = Vec::new();
        write_pcap(&mut buf, &Pcap::Udp1kFlow.frames()).unwrap();
        assert_eq!(buf.len(), 24 + 1000 * 76);
        assert_eq!(&buf[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    }
}
