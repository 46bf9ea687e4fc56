//! Classic libpcap capture files: a small streaming decoder and encoder, and two ports built on
//! them: [`PcapReaderPort`] replays a capture as received traffic, [`PcapWriterPort`] records
//! every transmitted frame.
//!
//! Format (libpcap's `savefile`): a 24-byte file header (magic, version 2.x, zone, sigfigs,
//! snaplen, link type) then records of a 16-byte header (seconds, micro- or nanoseconds, captured
//! length, original length) followed by the captured bytes. The magic tells the byte order and
//! the timestamp precision. Only link type 1 (Ethernet) is accepted. pcapng is not supported.
//!
//! The decoder never panics and never allocates per record: it reads each record into a buffer
//! the caller provides.

use crate::pool::FramePool;
use crate::port::{Desc, PortIo, PortStats};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Size of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest captured length accepted in a record (libpcap's own limit for Ethernet).
pub const MAX_CAPLEN: u32 = 262_144;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length written by [`PcapWriter`].
pub const WRITER_SNAPLEN: u32 = 262_144;

const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
/// Bit of the link-type field announcing an FCS length in the upper bits (pcap format draft).
const LINKTYPE_FCS_PRESENT: u32 = 0x0400_0000;

/// Errors reading or writing capture files.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be opened or created.
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("capture I/O: {0}")]
    Io(#[from] io::Error),
    /// The file is shorter than its 24-byte header.
    #[error("file is {0} bytes long, shorter than a pcap header")]
    ShortHeader(usize),
    /// The magic number is not one of classic pcap's four (pcapng and others are not supported).
    #[error("bad magic {0:#010x}: not a classic pcap file (pcapng is not supported)")]
    BadMagic(u32),
    /// The major version is not 2.
    #[error("unsupported pcap version {major}.{minor}")]
    Version {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The link type is not Ethernet (or frames carry an FCS).
    #[error("unsupported link type {0:#x}: only Ethernet (1) without FCS is supported")]
    LinkType(u32),
    /// A record claims more captured bytes than any valid capture holds.
    #[error("record at byte {offset} claims {caplen} captured bytes (limit {MAX_CAPLEN})")]
    RecordLength {
        /// File offset of the record header.
        offset: u64,
        /// The captured length it claims.
        caplen: u32,
    },
    /// The file ends inside a record.
    #[error("file ends inside the record at byte {offset}")]
    Truncated {
        /// File offset of the record header.
        offset: u64,
    },
}

/// Byte order of a capture file's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little-endian (written by x86 hosts).
    Little,
    /// Big-endian.
    Big,
}

/// Resolution of record timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsPrecision {
    /// The fraction field counts microseconds (magic `a1b2c3d4`).
    Micro,
    /// The fraction field counts nanoseconds (magic `a1b23c4d`).
    Nano,
}

/// The decoded file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Byte order of every header field in the file.
    pub byte_order: ByteOrder,
    /// Timestamp resolution.
    pub precision: TsPrecision,
    /// Format version (major, minor); major is always 2.
    pub version: (u16, u16),
    /// Snapshot length the capture was taken with.
    pub snaplen: u32,
    /// Link type (always [`LINKTYPE_ETHERNET`] once accepted).
    pub linktype: u32,
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Timestamp since the Unix epoch.
    pub timestamp: Duration,
    /// Bytes stored in the file for this packet.
    pub caplen: u32,
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

fn field_u32(bytes: &[u8], at: usize, order: ByteOrder) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    match order {
        ByteOrder::Little => u32::from_le_bytes(b),
        ByteOrder::Big => u32::from_be_bytes(b),
    }
}

fn field_u16(bytes: &[u8], at: usize, order: ByteOrder) -> u16 {
    let mut b = [0u8; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        b.copy_from_slice(src);
    }
    match order {
        ByteOrder::Little => u16::from_le_bytes(b),
        ByteOrder::Big => u16::from_be_bytes(b),
    }
}

impl FileHeader {
    /// Decodes and validates a file header.
    pub fn parse(bytes: &[u8; FILE_HEADER_LEN]) -> Result<Self, PcapError> {
        let le = field_u32(bytes, 0, ByteOrder::Little);
        let (byte_order, precision) = match le {
            MAGIC_MICRO => (ByteOrder::Little, TsPrecision::Micro),
            MAGIC_NANO => (ByteOrder::Little, TsPrecision::Nano),
            m if m.swap_bytes() == MAGIC_MICRO => (ByteOrder::Big, TsPrecision::Micro),
            m if m.swap_bytes() == MAGIC_NANO => (ByteOrder::Big, TsPrecision::Nano),
            m => return Err(PcapError::BadMagic(m)),
        };
        let major = field_u16(bytes, 4, byte_order);
        let minor = field_u16(bytes, 6, byte_order);
        if major != 2 {
            return Err(PcapError::Version { major, minor });
        }
        let snaplen = field_u32(bytes, 16, byte_order);
        let network = field_u32(bytes, 20, byte_order);
        if network & LINKTYPE_FCS_PRESENT != 0 || network & 0xffff != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType(network));
        }
        Ok(Self {
            byte_order,
            precision,
            version: (major, minor),
            snaplen,
            linktype: LINKTYPE_ETHERNET,
        })
    }

    /// Decodes a record header found at file offset `offset` (used in errors).
    pub fn parse_record(
        &self,
        bytes: &[u8; RECORD_HEADER_LEN],
        offset: u64,
    ) -> Result<RecordHeader, PcapError> {
        let o = self.byte_order;
        let secs = field_u32(bytes, 0, o);
        let frac = field_u32(bytes, 4, o);
        let caplen = field_u32(bytes, 8, o);
        let orig_len = field_u32(bytes, 12, o);
        if caplen > MAX_CAPLEN {
            return Err(PcapError::RecordLength { offset, caplen });
        }
        let nanos = match self.precision {
            TsPrecision::Micro => u64::from(frac).saturating_mul(1_000),
            TsPrecision::Nano => u64::from(frac),
        };
        // Out-of-range fractions (seen in damaged files) carry into the seconds.
        let timestamp =
            Duration::from_secs(u64::from(secs)).saturating_add(Duration::from_nanos(nanos));
        Ok(RecordHeader {
            timestamp,
            caplen,
            orig_len,
        })
    }

    /// Encodes this header as it is written to a file.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let magic = match self.precision {
            TsPrecision::Micro => MAGIC_MICRO,
            TsPrecision::Nano => MAGIC_NANO,
        };
        let words = [
            magic,
            0, // version, written below as two u16 fields
            0,
            0,
            self.snaplen,
            self.linktype,
        ];
        let mut out = [0u8; FILE_HEADER_LEN];
        for (dst, w) in out.chunks_exact_mut(4).zip(words) {
            let b = match self.byte_order {
                ByteOrder::Little => w.to_le_bytes(),
                ByteOrder::Big => w.to_be_bytes(),
            };
            dst.copy_from_slice(&b);
        }
        let (major, minor) = match self.byte_order {
            ByteOrder::Little => (self.version.0.to_le_bytes(), self.version.1.to_le_bytes()),
            ByteOrder::Big => (self.version.0.to_be_bytes(), self.version.1.to_be_bytes()),
        };
        out[4..6].copy_from_slice(&major);
        out[6..8].copy_from_slice(&minor);
        out
    }
}

/// What [`PcapReader::next_into`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A packet; its `caplen` bytes are at the start of the buffer.
    Packet(RecordHeader),
    /// A packet longer than the buffer; it was skipped and the buffer is unchanged.
    Oversized(RecordHeader),
    /// The end of the file, at a record boundary.
    End,
}

/// Reads as many bytes as are available into `buf`, up to its length; stops early only at EOF.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A streaming capture decoder over any byte source.
#[derive(Debug)]
pub struct PcapReader<R> {
    inner: R,
    header: FileHeader,
    /// Bytes consumed since the start of the file.
    offset: u64,
}

impl<R: Read> PcapReader<R> {
    /// Reads and validates the file header.
    pub fn new(mut inner: R) -> Result<Self, PcapError> {
        let mut raw = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut inner, &mut raw)?;
        if got < FILE_HEADER_LEN {
            return Err(PcapError::ShortHeader(got));
        }
        let header = FileHeader::parse(&raw)?;
        Ok(Self {
            inner,
            header,
            offset: FILE_HEADER_LEN as u64,
        })
    }

    /// The file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Reads the next record into the start of `buf`.
    ///
    /// After an error the reader's position is undefined; callers stop or rewind.
    pub fn next_into(&mut self, buf: &mut [u8]) -> Result<Next, PcapError> {
        let offset = self.offset;
        let mut raw = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut raw)?;
        self.offset += got as u64;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < RECORD_HEADER_LEN {
            return Err(PcapError::Truncated { offset });
        }
        let rec = self.header.parse_record(&raw, offset)?;
        let len = rec.caplen as usize;
        match buf.get_mut(..len) {
            Some(dst) => {
                let got = read_full(&mut self.inner, dst)?;
                self.offset += got as u64;
                if got < len {
                    return Err(PcapError::Truncated { offset });
                }
                Ok(Next::Packet(rec))
            }
            None => {
                let skipped = io::copy(
                    &mut (&mut self.inner).take(u64::from(rec.caplen)),
                    &mut io::sink(),
                )?;
                self.offset += skipped;
                if skipped < u64::from(rec.caplen) {
                    return Err(PcapError::Truncated { offset });
                }
                Ok(Next::Oversized(rec))
            }
        }
    }

    /// The underlying source.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read + Seek> PcapReader<R> {
    /// Goes back to the first record.
    pub fn rewind(&mut self) -> Result<(), PcapError> {
        let back = self.offset - FILE_HEADER_LEN as u64;
        let back = i64::try_from(back).map_err(|_| io::Error::other("capture too large"))?;
        self.inner.seek(SeekFrom::Current(-back))?;
        self.offset = FILE_HEADER_LEN as u64;
        Ok(())
    }
}

/// Reads every packet of a capture file into memory (for replay sets and tests).
pub fn read_all(path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let file = File::open(path).map_err(|source| PcapError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = PcapReader::new(BufReader::new(file))?;
    let mut buf = vec![0u8; MAX_CAPLEN as usize];
    let mut frames = Vec::new();
    loop {
        match reader.next_into(&mut buf)? {
            Next::Packet(h) => frames.push(buf.get(..h.caplen as usize).unwrap_or(&[]).to_vec()),
            // Unreachable with a MAX_CAPLEN buffer, and harmless.
            Next::Oversized(_) => {}
            Next::End => return Ok(frames),
        }
    }
}

/// A streaming capture encoder: little-endian, version 2.4, Ethernet.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    precision: TsPrecision,
    snaplen: u32,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) a capture file at `path`, buffered, with microsecond timestamps.
    pub fn create(path: &Path) -> Result<Self, PcapError> {
        let file = File::create(path).map_err(|source| PcapError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::new(BufWriter::with_capacity(1 << 16, file), TsPrecision::Micro)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header; records get timestamps of the given precision.
    pub fn new(mut inner: W, precision: TsPrecision) -> Result<Self, PcapError> {
        let header = FileHeader {
            byte_order: ByteOrder::Little,
            precision,
            version: (2, 4),
            snaplen: WRITER_SNAPLEN,
            linktype: LINKTYPE_ETHERNET,
        };
        inner.write_all(&header.encode())?;
        Ok(Self {
            inner,
            precision,
            snaplen: WRITER_SNAPLEN,
        })
    }

    /// Appends one packet; bytes beyond the snapshot length are cut, as a capture would.
    pub fn write_packet(&mut self, timestamp: Duration, data: &[u8]) -> Result<(), PcapError> {
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let caplen = orig_len.min(self.snaplen);
        let frac = match self.precision {
            TsPrecision::Micro => timestamp.subsec_micros(),
            TsPrecision::Nano => timestamp.subsec_nanos(),
        };
        // Classic pcap stores 32-bit seconds; later times wrap, as every pcap writer does.
        let secs = timestamp.as_secs() as u32;
        let mut raw = [0u8; RECORD_HEADER_LEN];
        for (dst, w) in raw.chunks_exact_mut(4).zip([secs, frac, caplen, orig_len]) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        self.inner.write_all(&raw)?;
        self.inner
            .write_all(data.get(..caplen as usize).unwrap_or(data))?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.inner.flush()?;
        Ok(())
    }

    /// The underlying writer (not flushed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// A receive-only port that replays a capture file as fast as it is polled, optionally in a
/// loop. Record timestamps are ignored. Its transmit side drops (and frees) every frame.
///
/// Records longer than a pool frame are skipped and counted in `rx_dropped`. A damaged record
/// counts one error and ends the pass (the file is rewound when looping).
#[derive(Debug)]
pub struct PcapReaderPort {
    name: String,
    reader: PcapReader<BufReader<File>>,
    looping: bool,
    /// Packets delivered (or skipped) since the last rewind; a pass without any ends a loop, so
    /// an empty or wholly broken file cannot spin.
    pass_records: u64,
    finished: bool,
    stats: PortStats,
}

impl PcapReaderPort {
    /// Opens `path` and validates its header.
    pub fn open(name: &str, path: &Path, looping: bool) -> Result<Self, PcapError> {
        let file = File::open(path).map_err(|source| PcapError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            reader: PcapReader::new(BufReader::with_capacity(1 << 16, file))?,
            looping,
            pass_records: 0,
            finished: false,
            stats: PortStats::default(),
        })
    }

    /// True once the whole file has been replayed (never, when looping over a non-empty file).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The end of a pass: rewind when looping over a file that produced something, else stop.
    fn end_of_pass(&mut self) {
        if self.looping && self.pass_records > 0 && self.reader.rewind().is_ok() {
            self.pass_records = 0;
        } else {
            self.finished = true;
        }
    }
}

impl PortIo for PcapReaderPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let headroom = pool.headroom();
        let mut n = 0;
        let mut frame = None;
        // Skipped records and rewinds spend the budget too: a looping file of nothing but
        // oversized records cannot hold the worker here.
        let mut steps = 0;
        while n < out.len() && !self.finished && steps < 2 * out.len() + 2 {
            steps += 1;
            let Some(base) = frame.or_else(|| pool.alloc()) else {
                break;
            };
            frame = Some(base);
            let buf = pool.region_mut().frame_mut(base);
            let buf = buf.get_mut(headroom as usize..).unwrap_or(&mut []);
            match self.reader.next_into(buf) {
                Ok(Next::Packet(h)) => {
                    self.pass_records += 1;
                    if let Some(slot) = out.get_mut(n) {
                        *slot = Desc {
                            addr: base + u64::from(headroom),
                            len: h.caplen,
                            options: 0,
                        };
                    }
                    frame = None;
                    n += 1;
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += u64::from(h.caplen);
                }
                Ok(Next::Oversized(_)) => {
                    self.pass_records += 1;
                    self.stats.rx_dropped += 1;
                }
                Ok(Next::End) => self.end_of_pass(),
                Err(_) => {
                    self.stats.errors += 1;
                    self.end_of_pass();
                }
            }
        }
        if let Some(base) = frame {
            pool.free(base);
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        pool.free_all(pkts);
        self.stats.tx_dropped += pkts.len() as u64;
        pkts.len()
    }

    fn flush(&mut self, _pool: &mut FramePool) {}

    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// A transmit-only port that appends every frame it is given to a capture file (microsecond
/// timestamps taken once per burst). Writes are buffered; [`PortIo::flush`] and drop push them
/// to the file. It never receives.
#[derive(Debug)]
pub struct PcapWriterPort {
    name: String,
    writer: PcapWriter<BufWriter<File>>,
    stats: PortStats,
}

impl PcapWriterPort {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(name: &str, path: &Path) -> Result<Self, PcapError> {
        Ok(Self {
            name: name.to_owned(),
            writer: PcapWriter::create(path)?,
            stats: PortStats::default(),
        })
    }
}

impl PortIo for PcapWriterPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, _pool: &mut FramePool, _out: &mut [Desc]) -> usize {
        0
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        for d in pkts {
            let data = pool.region().data(*d);
            if data.len() != d.len as usize {
                self.stats.tx_dropped += 1;
                self.stats.errors += 1;
            } else if self.writer.write_packet(now, data).is_ok() {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += u64::from(d.len);
            } else {
                self.stats.tx_dropped += 1;
                self.stats.errors += 1;
            }
            pool.free(d.addr);
        }
        pkts.len()
    }

    fn flush(&mut self, _pool: &mut FramePool) {
        if self.writer.flush().is_err() {
            self.stats.errors += 1;
        }
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl Drop for PcapWriterPort {
    fn drop(&mut self) {
        // Nothing to report to on drop; an explicit flush reports errors in the counters.
        let _ = self.writer.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::udp_frame;
    use std::process::Command;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    /// A file path removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Self(std::env::temp_dir().join(format!("xvs-io-{}-{n}-{tag}.pcap", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn read_records(bytes: &[u8]) -> Result<Vec<(RecordHeader, Vec<u8>)>, PcapError> {
        read_records_with(bytes, MAX_CAPLEN as usize)
    }

    /// Decodes every record with a `cap`-byte buffer; panics on a record that does not fit.
    fn read_records_with(
        bytes: &[u8],
        cap: usize,
    ) -> Result<Vec<(RecordHeader, Vec<u8>)>, PcapError> {
        let mut r = PcapReader::new(bytes)?;
        let mut buf = vec![0u8; cap];
        let mut out = Vec::new();
        loop {
            match r.next_into(&mut buf)? {
                Next::Packet(h) => out.push((h, buf[..h.caplen as usize].to_vec())),
                Next::Oversized(h) => panic!("oversized {h:?} with a MAX_CAPLEN buffer"),
                Next::End => return Ok(out),
            }
        }
    }

    /// (captured length, wire length, source MAC, destination MAC) of every frame, per tshark.
    fn tshark_summary(path: &Path) -> Vec<(usize, usize, String, String)> {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(path)
            .args(["-T", "fields", "-E", "separator=,"])
            .args([
                "-e",
                "frame.cap_len",
                "-e",
                "frame.len",
                "-e",
                "eth.src",
                "-e",
                "eth.dst",
            ])
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "tshark -r {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f.len(), 4, "tshark line {l:?}");
                (
                    f[0].parse().expect("cap_len"),
                    f[1].parse().expect("len"),
                    f[2].to_owned(),
                    f[3].to_owned(),
                )
            })
            .collect()
    }

    fn mac(b: &[u8]) -> String {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    fn summary(frames: &[(RecordHeader, Vec<u8>)]) -> Vec<(usize, usize, String, String)> {
        frames
            .iter()
            .map(|(h, d)| {
                (
                    h.caplen as usize,
                    h.orig_len as usize,
                    mac(&d[6..12]),
                    mac(&d[0..6]),
                )
            })
            .collect()
    }

    #[test]
    fn codec_round_trip_both_precisions() {
        let frames: Vec<Vec<u8>> = (0..20u8)
            .map(|i| udp_frame(i, &vec![i; usize::from(i) * 50]))
            .collect();
        for precision in [TsPrecision::Micro, TsPrecision::Nano] {
            let mut w = PcapWriter::new(Vec::new(), precision).expect("writer");
            for (i, f) in frames.iter().enumerate() {
                let ts = Duration::new(1_700_000_000 + i as u64, 123_456_789);
                w.write_packet(ts, f).expect("write");
            }
            let bytes = w.into_inner();
            let got = read_records(&bytes).expect("read back");
            assert_eq!(got.len(), frames.len());
            for (i, ((h, d), f)) in got.iter().zip(&frames).enumerate() {
                assert_eq!(d, f);
                assert_eq!(h.orig_len as usize, f.len());
                let nanos = match precision {
                    TsPrecision::Micro => 123_456_000,
                    TsPrecision::Nano => 123_456_789,
                };
                assert_eq!(h.timestamp, Duration::new(1_700_000_000 + i as u64, nanos));
            }
            let r = PcapReader::new(&bytes[..]).expect("header");
            assert_eq!(r.header().precision, precision);
            assert_eq!(r.header().byte_order, ByteOrder::Little);
            assert_eq!(r.header().version, (2, 4));
        }
    }

    #[test]
    fn header_encoding_round_trips_in_both_byte_orders() {
        for byte_order in [ByteOrder::Little, ByteOrder::Big] {
            for precision in [TsPrecision::Micro, TsPrecision::Nano] {
                let h = FileHeader {
                    byte_order,
                    precision,
                    version: (2, 4),
                    snaplen: 65535,
                    linktype: LINKTYPE_ETHERNET,
                };
                assert_eq!(FileHeader::parse(&h.encode()).expect("parse"), h);
            }
        }
    }

    #[test]
    fn reads_real_captures_like_tshark() {
        let cases = [
            ("lo-usec.pcap", ByteOrder::Little, TsPrecision::Micro),
            ("lo-nsec.pcap", ByteOrder::Little, TsPrecision::Nano),
            ("scapy-be-usec.pcap", ByteOrder::Big, TsPrecision::Micro),
            ("scapy-be-nsec.pcap", ByteOrder::Big, TsPrecision::Nano),
        ];
        for (name, order, precision) in cases {
            let path = testdata(name);
            let bytes = std::fs::read(&path).expect("capture");
            let r = PcapReader::new(&bytes[..]).expect("header");
            assert_eq!(r.header().byte_order, order, "{name}");
            assert_eq!(r.header().precision, precision, "{name}");
            let frames = read_records(&bytes).expect(name);
            assert!(!frames.is_empty(), "{name}");
            assert_eq!(summary(&frames), tshark_summary(&path), "{name}");
            assert_eq!(read_all(&path).expect(name).len(), frames.len());
        }
        // scapy wrote the same packets with both precisions at known times.
        let us = read_records(&std::fs::read(testdata("scapy-be-usec.pcap")).expect("file"))
            .expect("usec");
        let ns = read_records(&std::fs::read(testdata("scapy-be-nsec.pcap")).expect("file"))
            .expect("nsec");
        assert_eq!(us.len(), 6);
        for (i, ((hu, du), (hn, dn))) in us.iter().zip(&ns).enumerate() {
            assert_eq!(du, dn);
            assert_eq!(hu.timestamp.as_secs(), 1_700_000_000 + i as u64);
            // scapy rounds 0.123456789 (a float) to 123457 us and to 123456717 ns.
            assert_eq!(hu.timestamp.subsec_nanos(), 123_457_000);
            assert_eq!(
                hn.timestamp,
                Duration::new(1_700_000_000 + i as u64, 123_456_717)
            );
        }
    }

    #[test]
    fn rejects_other_formats_clearly() {
        let sll = std::fs::read(testdata("any-sll.pcap")).expect("file");
        assert!(matches!(
            PcapReader::new(&sll[..]),
            Err(PcapError::LinkType(276))
        ));
        let ng = std::fs::read(testdata("lo.pcapng")).expect("file");
        assert!(matches!(
            PcapReader::new(&ng[..]),
            Err(PcapError::BadMagic(0x0a0d_0d0a))
        ));
        assert!(matches!(
            PcapReader::new(&[][..]),
            Err(PcapError::ShortHeader(0))
        ));
        let good = std::fs::read(testdata("lo-usec.pcap")).expect("file");
        assert!(matches!(
            PcapReader::new(&good[..23]),
            Err(PcapError::ShortHeader(23))
        ));
        let mut v3 = good.clone();
        v3[4] = 3;
        assert!(matches!(
            PcapReader::new(&v3[..]),
            Err(PcapError::Version { major: 3, minor: 4 })
        ));
        let mut fcs = good.clone();
        fcs[23] = 0x14; // FCS-present bit plus an FCS length, Ethernet
        assert!(matches!(
            PcapReader::new(&fcs[..]),
            Err(PcapError::LinkType(_))
        ));
        let err = PcapReader::new(&ng[..]).expect_err("pcapng");
        assert!(err.to_string().contains("pcapng is not supported"), "{err}");
    }

    #[test]
    fn malformed_records_give_errors_not_panics() {
        let good = std::fs::read(testdata("scapy-be-usec.pcap")).expect("file");
        let total = read_records(&good).expect("good").len();
        // Every prefix: either a clean shorter file or a clear error.
        for cut in 0..good.len() {
            match read_records_with(&good[..cut], 2048) {
                Ok(frames) => assert!(frames.len() < total),
                Err(PcapError::ShortHeader(n)) => assert_eq!(n, cut),
                Err(PcapError::Truncated { offset }) => assert!(offset < cut as u64),
                Err(e) => panic!("prefix {cut}: unexpected {e}"),
            }
        }
        // An absurd captured length.
        let mut huge = good.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&(MAX_CAPLEN + 1).to_be_bytes());
        assert!(matches!(
            read_records(&huge),
            Err(PcapError::RecordLength { offset: 24, .. })
        ));
        // Deterministic random corruption of every byte position: no panic, bounded work.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..4000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bad = good.clone();
            let pos = (x as usize) % bad.len();
            bad[pos] ^= (x >> 32) as u8 | 1;
            if let Ok(mut r) = PcapReader::new(&bad[..]) {
                let mut buf = [0u8; 2048];
                while let Ok(Next::Packet(_) | Next::Oversized(_)) = r.next_into(&mut buf) {}
            }
        }
        // Oversized records are skipped, and the reader carries on.
        let mut r = PcapReader::new(&good[..]).expect("header");
        let mut small = [0u8; 100];
        let mut kinds = Vec::new();
        loop {
            match r.next_into(&mut small).expect("record") {
                Next::Packet(h) => kinds.push(('p', h.caplen)),
                Next::Oversized(h) => kinds.push(('o', h.caplen)),
                Next::End => break,
            }
        }
        assert_eq!(kinds.len(), total);
        assert_eq!(kinds.last(), Some(&('o', 1322)));
    }

    #[test]
    fn writer_port_to_reader_port_and_tshark() {
        let path = TempPath::new("port");
        let frames: Vec<Vec<u8>> = (1..=9u8).map(|i| udp_frame(i, &[i; 100])).collect();
        let mut pool = FramePool::new(16, 2048, 256).expect("pool");
        {
            let mut w = PcapWriterPort::create("cap0", &path.0).expect("create");
            let descs: Vec<Desc> = frames
                .iter()
                .map(|f| pool.alloc_copy(f).expect("frame"))
                .collect();
            assert_eq!(w.tx_burst(&mut pool, &descs[..4]), 4);
            w.flush(&mut pool);
            assert_eq!(read_all(&path.0).expect("flushed part").len(), 4);
            assert_eq!(w.tx_burst(&mut pool, &descs[4..]), 5);
            assert_eq!(w.rx_burst(&mut pool, &mut [Desc::default(); 4]), 0);
            let s = w.stats();
            assert_eq!(s.tx_packets, 9);
            assert_eq!(
                s.tx_bytes,
                frames.iter().map(|f| f.len() as u64).sum::<u64>()
            );
            assert_eq!(pool.free_count(), 16);
            // Dropped without a flush: drop writes the rest.
        }
        let seen = tshark_summary(&path.0);
        assert_eq!(seen.len(), 9);
        for ((cap, len, src, dst), f) in seen.iter().zip(&frames) {
            assert_eq!((*cap, *len), (f.len(), f.len()));
            assert_eq!(
                (src.as_str(), dst.as_str()),
                (&*mac(&f[6..12]), &*mac(&f[0..6]))
            );
        }

        // One pass.
        let mut r = PcapReaderPort::open("rep0", &path.0, false).expect("open");
        let mut descs = [Desc::default(); 4];
        let mut got = Vec::new();
        while !r.finished() {
            let n = r.rx_burst(&mut pool, &mut descs);
            for d in &descs[..n] {
                got.push(pool.region().data(*d).to_vec());
            }
            pool.free_all(&descs[..n]);
        }
        assert_eq!(got, frames);
        assert_eq!(r.rx_burst(&mut pool, &mut descs), 0);
        assert_eq!(r.stats().rx_packets, 9);
        assert_eq!(pool.free_count(), 16);

        // Looping: the frames come back in order, forever.
        let mut r = PcapReaderPort::open("rep1", &path.0, true).expect("open");
        let mut got = Vec::new();
        for _ in 0..10 {
            let n = r.rx_burst(&mut pool, &mut descs);
            assert_eq!(n, 4);
            for d in &descs[..n] {
                got.push(pool.region().data(*d).to_vec());
            }
            assert_eq!(r.tx_burst(&mut pool, &descs[..n]), n);
        }
        assert!(!r.finished());
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f, &frames[i % 9]);
        }
        assert_eq!(pool.free_count(), 16);
    }

    #[test]
    fn reader_port_edge_cases() {
        let mut pool = FramePool::new(4, 2048, 256).expect("pool");
        let mut descs = [Desc::default(); 8];

        // Header only, looping: finishes instead of spinning.
        let empty = TempPath::new("empty");
        drop(PcapWriterPort::create("e", &empty.0).expect("create"));
        let mut r = PcapReaderPort::open("e", &empty.0, true).expect("open");
        assert_eq!(r.rx_burst(&mut pool, &mut descs), 0);
        assert!(r.finished());

        // Oversized records are counted drops; a truncated tail is one error.
        let mixed = TempPath::new("mixed");
        let mut w = PcapWriter::new(Vec::new(), TsPrecision::Micro).expect("writer");
        w.write_packet(Duration::ZERO, &[1u8; 60]).expect("write");
        w.write_packet(Duration::ZERO, &[2u8; 3000]).expect("write");
        w.write_packet(Duration::ZERO, &[3u8; 60]).expect("write");
        let mut bytes = w.into_inner();
        bytes.truncate(bytes.len() - 10);
        std::fs::write(&mixed.0, &bytes).expect("write file");
        let mut r = PcapReaderPort::open("m", &mixed.0, false).expect("open");
        let n = r.rx_burst(&mut pool, &mut descs);
        assert_eq!(n, 1);
        assert_eq!(pool.region().data(descs[0]), &[1u8; 60]);
        pool.free_all(&descs[..n]);
        assert!(r.finished());
        let s = r.stats();
        assert_eq!((s.rx_packets, s.rx_dropped, s.errors), (1, 1, 1));
        assert_eq!(pool.free_count(), 4);

        // A looping file of nothing but oversized records: bounded work per burst, no spin.
        let big = TempPath::new("big");
        let mut w = PcapWriter::create(&big.0).expect("create");
        w.write_packet(Duration::ZERO, &[9u8; 3000]).expect("write");
        w.flush().expect("flush");
        let mut r = PcapReaderPort::open("b", &big.0, true).expect("open");
        for _ in 0..3 {
            assert_eq!(r.rx_burst(&mut pool, &mut descs), 0);
        }
        assert!(!r.finished());
        assert!(r.stats().rx_dropped >= 3);
        assert_eq!(pool.free_count(), 4);

        // An empty pool leaves records in the file for later.
        let all = TempPath::new("all");
        let mut w = PcapWriter::new(Vec::new(), TsPrecision::Nano).expect("writer");
        for i in 0..6u8 {
            w.write_packet(Duration::ZERO, &[i; 64]).expect("write");
        }
        std::fs::write(&all.0, w.into_inner()).expect("write file");
        let mut r = PcapReaderPort::open("a", &all.0, false).expect("open");
        assert_eq!(r.rx_burst(&mut pool, &mut descs), 4);
        let first: Vec<Desc> = descs[..4].to_vec();
        assert_eq!(r.rx_burst(&mut pool, &mut descs), 0);
        pool.free_all(&first);
        assert_eq!(r.rx_burst(&mut pool, &mut descs), 2);
        assert_eq!(pool.region().data(descs[1]), &[5u8; 64]);
        pool.free_all(&descs[..2]);
        assert_eq!(r.rx_burst(&mut pool, &mut descs), 0);
        assert!(r.finished());
        assert_eq!(pool.free_count(), 4);

        assert!(matches!(
            PcapReaderPort::open("x", Path::new("/nonexistent/x.pcap"), false),
            Err(PcapError::Open { .. })
        ));
    }

    #[test]
    fn replay_port_from_real_capture() {
        let path = testdata("lo-usec.pcap");
        let frames = read_all(&path).expect("capture");
        let mut port = crate::ReplayPort::from_pcap("r", &path, Some(20)).expect("replay");
        let mut pool = FramePool::new(8, 2048, 0).expect("pool");
        let mut descs = [Desc::default(); 8];
        let mut i = 0;
        while !port.finished() {
            let n = port.rx_burst(&mut pool, &mut descs);
            for d in &descs[..n] {
                assert_eq!(pool.region().data(*d), &frames[i % frames.len()][..]);
                i += 1;
            }
            port.tx_burst(&mut pool, &descs[..n]);
        }
        assert_eq!(i, 20);
        assert_eq!(pool.free_count(), 8);
    }

    #[test]
    fn replay_loops_a_whole_capture_n_times() {
        let path = TempPath::new("loops");
        let frames: Vec<Vec<u8>> = (0..7u8).map(|i| udp_frame(i, &[i; 20])).collect();
        let mut w = PcapWriter::create(&path.0).expect("create");
        for f in &frames {
            w.write_packet(Duration::ZERO, f).expect("write");
        }
        w.flush().expect("flush");
        drop(w);
        let mut port = crate::ReplayPort::from_pcap_loops("r", &path.0, Some(3)).expect("replay");
        assert_eq!(port.remaining(), Some(21));
        let mut pool = FramePool::new(16, 2048, 256).expect("pool");
        port.check_fits(&pool).expect("64-byte frames fit");
        let mut descs = [Desc::default(); 4];
        let mut seen = Vec::new();
        for _ in 0..100 {
            let n = port.rx_burst(&mut pool, &mut descs);
            for d in &descs[..n] {
                seen.push(pool.region().data(*d).to_vec());
            }
            assert_eq!(port.tx_burst(&mut pool, &descs[..n]), n);
        }
        assert_eq!(seen.len(), 21);
        for (i, f) in seen.iter().enumerate() {
            assert_eq!(f, &frames[i % 7]);
        }
        let s = port.stats();
        assert_eq!((s.rx_packets, s.tx_packets, s.rx_dropped), (21, 21, 0));
        assert_eq!(
            s.rx_bytes,
            3 * frames.iter().map(|f| f.len() as u64).sum::<u64>()
        );
        assert_eq!(pool.free_count(), 16);
        // Forever: still going after many loops.
        let mut forever = crate::ReplayPort::from_pcap_loops("r", &path.0, None).expect("replay");
        for _ in 0..50 {
            let n = forever.rx_burst(&mut pool, &mut descs);
            assert_eq!(n, 4);
            pool.free_all(&descs[..n]);
        }
        assert_eq!(forever.remaining(), None);
    }

    #[test]
    fn replay_refuses_bad_captures_by_name() {
        let missing =
            crate::ReplayPort::from_pcap_loops("r", Path::new("/nonexistent/x.pcap"), None)
                .expect_err("missing");
        assert!(
            missing.to_string().contains("/nonexistent/x.pcap"),
            "{missing}"
        );
        let ng = crate::ReplayPort::from_pcap_loops("r", &testdata("lo.pcapng"), None)
            .expect_err("pcapng");
        assert!(ng.to_string().contains("pcapng is not supported"), "{ng}");

        let empty = TempPath::new("empty");
        let w = PcapWriter::create(&empty.0).expect("create");
        drop(w);
        let e = crate::ReplayPort::from_pcap_loops("r", &empty.0, Some(1)).expect_err("empty");
        assert!(matches!(e, crate::ReplayError::EmptyCapture(_)), "{e}");
        assert!(e.to_string().contains("holds no packets"), "{e}");

        let garbage = TempPath::new("garbage");
        std::fs::write(&garbage.0, b"not a capture at all, really").expect("write");
        let e = crate::ReplayPort::from_pcap_loops("r", &garbage.0, None).expect_err("garbage");
        assert!(e.to_string().contains("not a classic pcap file"), "{e}");

        // A 3000-byte frame fits a 4 KiB frame, not a 2 KiB one with 256 bytes of headroom.
        let big = TempPath::new("big");
        let mut w = PcapWriter::create(&big.0).expect("create");
        w.write_packet(Duration::ZERO, &[1u8; 60]).expect("write");
        w.write_packet(Duration::ZERO, &[2u8; 3000]).expect("write");
        w.flush().expect("flush");
        drop(w);
        let port = crate::ReplayPort::from_pcap_loops("r", &big.0, Some(1)).expect("replay");
        let small = FramePool::new(4, 2048, 256).expect("pool");
        let e = port.check_fits(&small).expect_err("too long");
        assert!(
            matches!(
                e,
                crate::ReplayError::FrameTooLong {
                    index: 1,
                    len: 3000,
                    room: 1792
                }
            ),
            "{e}"
        );
        let large = FramePool::new(4, 4096, 256).expect("pool");
        port.check_fits(&large).expect("fits");
    }
}
