//! `xvsctl capture PORT -w FILE [-c N] [--timeout S]`: starts a capture of the port in xvsd
//! (`xvs/capture-start`), polls the mirrored frames (`xvs/capture-read`, text lines
//! `<time_ns> <orig_len> <rx|tx> <hex>`), writes them as pcap, and stops it
//! (`xvs/capture-stop` answers `# captured N dropped M`; the frames not read yet are read
//! after it until a read is empty).

use crate::pcap::PcapWriter;
use crate::rpc::{Client, RpcError};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One frame as xvsd reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Capture time, ns since the Unix epoch.
    pub time_ns: u64,
    /// Length on the wire.
    pub orig_len: u32,
    /// Received (true) or transmitted by the port.
    pub rx: bool,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Parses one line of `xvs/capture-read`; `None` for the summary and malformed lines.
pub fn parse_line(line: &str) -> Option<Frame> {
    let mut it = line.split_ascii_whitespace();
    let time_ns = it.next()?.parse().ok()?;
    let orig_len = it.next()?.parse().ok()?;
    let rx = match it.next()? {
        "rx" => true,
        "tx" => false,
        _ => return None,
    };
    let hex = it.next().unwrap_or("");
    if hex.len() % 2 != 0 {
        return None;
    }
    let data = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Frame {
        time_ns,
        orig_len,
        rx,
        data,
    })
}

/// The `# captured N dropped M` summary of `xvs/capture-stop`.
pub fn parse_summary(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("# captured "))?;
    let mut it = line.split_ascii_whitespace().skip(2);
    let captured = it.next()?.parse().ok()?;
    let dropped = it.nth(1)?.parse().ok()?;
    Some((captured, dropped))
}

/// What a capture did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames written to the file.
    pub written: u64,
    /// Frames xvsd mirrored for the session.
    pub captured: u64,
    /// Frames lost (ring or session buffer full).
    pub dropped: u64,
}

/// How long to capture.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Time between two reads.
    pub poll: Duration,
}

/// Captures `port` into `out` until a limit is reached or `stop` is set (Ctrl-C);
/// `started_hook` runs once xvsd mirrors the port.
pub fn run<W: Write>(
    client: &Client,
    port: &str,
    out: W,
    limits: Limits,
    stop: &AtomicBool,
    started_hook: &mut dyn FnMut(),
) -> Result<Outcome, CaptureError> {
    let mut pcap = PcapWriter::new(out)?;
    let id = client
        .call("xvs/capture-start", &[port.to_string()])?
        .trim()
        .to_string();
    started_hook();
    let started = Instant::now();
    let full = |p: &PcapWriter<W>| limits.count.is_some_and(|c| p.frames() >= c);
    let result = (|| -> Result<(), CaptureError> {
        loop {
            let text = client.call("xvs/capture-read", std::slice::from_ref(&id))?;
            write_lines(&mut pcap, &text, limits.count)?;
            if full(&pcap)
                || stop.load(Ordering::Relaxed)
                || limits.timeout.is_some_and(|t| started.elapsed() >= t)
            {
                return Ok(());
            }
            std::thread::sleep(limits.poll);
        }
    })();
    // Stop the session even when reading failed, so xvsd stops mirroring at once.
    let last = client.call("xvs/capture-stop", std::slice::from_ref(&id));
    result?;
    let last = last?;
    let (captured, dropped) = parse_summary(&last).unwrap_or((0, 0));
    // What was captured before the stop and not read yet: read until a read is empty.
    loop {
        let text = client.call("xvs/capture-read", std::slice::from_ref(&id))?;
        if text.is_empty() || full(&pcap) {
            break;
        }
        write_lines(&mut pcap, &text, limits.count)?;
    }
    let written = pcap.frames();
    pcap.finish()?;
    Ok(Outcome {
        written,
        captured,
        dropped,
    })
}

fn write_lines<W: Write>(
    pcap: &mut PcapWriter<W>,
    text: &str,
    count: Option<u64>,
) -> std::io::Result<()> {
    for f in text.lines().filter_map(parse_line) {
        if count.is_some_and(|c| pcap.frames() >= c) {
            break;
        }
        pcap.write(f.time_ns, f.orig_len, &f.data)?;
    }
    Ok(())
}

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Talking to xvsd failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Writing the file failed.
    #[error("writing the capture: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_capture_lines_and_summary() {
        let f = parse_line("1700000000000000001 60 rx 0a0b0c").expect("frame");
        assert_eq!(
            f,
            Frame {
                time_ns: 1_700_000_000_000_000_001,
                orig_len: 60,
                rx: true,
                data: vec![10, 11, 12]
            }
        );
        assert!(!parse_line("1 2 tx ff").expect("frame").rx);
        assert_eq!(parse_line("# captured 3 dropped 0"), None);
        assert_eq!(parse_line("1 2 up ff"), None);
        assert_eq!(parse_line("1 2 rx f"), None);
        assert_eq!(parse_line("1 2 rx zz"), None);
        assert_eq!(
            parse_summary("1 2 rx ff\n# captured 3 dropped 7\n"),
            Some((3, 7))
        );
        assert_eq!(parse_summary(""), None);
    }

    #[test]
    fn stops_at_the_count() {
        let mut p = PcapWriter::new(Vec::new()).expect("pcap");
        write_lines(&mut p, "1 2 rx aa\n3 4 tx bb\n5 6 rx cc\n", Some(2)).expect("write");
        assert_eq!(p.frames(), 2);
    }
}
