//! Port captures for `xvsctl capture` (`xvs/capture-start|read|stop`): the control side of
//! `xvs_engine::capture`.
//!
//! A capture sets the port's bit in its worker's `capture_mask`; the control loop drains the
//! workers' capture rings every period into the sessions' bounded buffers, and the client reads
//! them as text lines `<time_ns> <orig_len> <rx|tx> <hex bytes>`. Frames beyond a session's
//! buffer are dropped and counted; a session not read for [`IDLE`] (its client went away) is
//! stopped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_engine::capture::{CaptureConsumer, Direction};
use xvs_engine::WorkerShared;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lines a session buffers between two reads (a client starved for a second at ~60 kpps;
/// at most ~16 MiB of text for small frames).
const BUFFER: usize = 65_536;
/// Lines one read returns at most.
const READ_MAX: usize = 4096;
/// A session not read for this long is stopped.
const IDLE: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Session {
    id: u64,
    worker: usize,
    port_idx: usize,
    lines: VecDeque<String>,
    /// Stopped: no more frames; removed once its lines are read.
    stopped: bool,
    captured: u64,
    dropped: u64,
    /// The worker's ring drops when the session started.
    ring_dropped_at_start: u64,
    last_read: Instant,
}

/// The captures in progress and the workers' rings.
#[derive(Debug, Default)]
pub struct Captures {
    /// The workers' capture rings, in worker order.
    pub rings: Vec<CaptureConsumer>,
    sessions: Vec<Session>,
    next_id: u64,
}

impl Captures {
    /// Starts capturing `port` (a name or an OpenFlow number); returns the session id.
    pub fn start(&mut self, workers: &[Arc<WorkerShared>], port: &str) -> Result<String, String> {
        let found = workers.iter().enumerate().find_map(|(w, s)| {
            s.ports
                .load()
                .iter()
                .position(|e| e.name == port || e.ofport.to_string() == port)
                .map(|i| (w, i))
        });
        let Some((worker, port_idx)) = found else {
            return Err(format!("{port}: no such port"));
        };
        if port_idx >= 64 {
            return Err(format!(
                "{port}: only a worker's first 64 ports can be captured"
            ));
        }
        if self.rings.len() <= worker {
            return Err("capture is not available".to_string());
        }
        self.next_id += 1;
        let id = self.next_id;
        self.sessions.push(Session {
            id,
            worker,
            port_idx,
            lines: VecDeque::new(),
            stopped: false,
            captured: 0,
            dropped: 0,
            ring_dropped_at_start: workers[worker].counters.load().capture_dropped,
            last_read: Instant::now(),
        });
        self.update_masks(workers);
        Ok(format!("{id}\n"))
    }

    /// The oldest lines captured and not read yet, at most [`READ_MAX`] (a reply stays small
    /// enough for a slow client). A stopped session is removed once read empty.
    pub fn read(&mut self, id: &str) -> Result<String, String> {
        let s = self.session(id)?;
        s.last_read = Instant::now();
        let mut out = String::new();
        let n = s.lines.len().min(READ_MAX);
        for l in s.lines.drain(..n) {
            out.push_str(&l);
            out.push('\n');
        }
        if out.is_empty() && s.stopped {
            self.sessions.retain(|s| s.id.to_string() != id);
        }
        Ok(out)
    }

    /// Stops mirroring for a session and returns `# captured N dropped M` (frames captured
    /// for it, and frames lost: its buffer's and its worker's ring's during the session). The
    /// lines not read yet stay readable until a read returns nothing.
    pub fn stop(&mut self, workers: &[Arc<WorkerShared>], id: &str) -> Result<String, String> {
        self.session(id)?;
        // What the worker captured up to now goes to the session first (frames of the
        // iteration that still sees the bit are discarded with the session).
        self.drain(workers);
        self.session(id)?.stopped = true;
        self.update_masks(workers);
        let s = self.session(id)?;
        let ring = workers
            .get(s.worker)
            .map_or(0, |w| w.counters.load().capture_dropped)
            .saturating_sub(s.ring_dropped_at_start);
        Ok(format!(
            "# captured {} dropped {}\n",
            s.captured,
            s.dropped + ring
        ))
    }

    /// Moves what the workers captured into the sessions; stops idle sessions.
    pub fn drain(&mut self, workers: &[Arc<WorkerShared>]) {
        let before = self.sessions.len();
        self.sessions.retain(|s| s.last_read.elapsed() < IDLE);
        if self.sessions.len() != before {
            self.update_masks(workers);
        }
        for (w, ring) in self.rings.iter_mut().enumerate() {
            while let Some(r) = ring.pop() {
                for s in self.sessions.iter_mut().filter(|s| {
                    !s.stopped && s.worker == w && s.port_idx == usize::from(r.port_idx)
                }) {
                    if s.lines.len() >= BUFFER {
                        s.dropped += 1;
                        continue;
                    }
                    let dir = match r.direction {
                        Direction::Rx => "rx",
                        Direction::Tx => "tx",
                    };
                    let mut line = format!("{} {} {dir} ", r.time_ns, r.orig_len);
                    line.reserve(2 * r.bytes().len());
                    for b in r.bytes() {
                        line.push(HEX[usize::from(b >> 4)] as char);
                        line.push(HEX[usize::from(b & 15)] as char);
                    }
                    s.lines.push_back(line);
                    s.captured += 1;
                }
            }
        }
    }

    /// True while a capture runs (the control loop then drains the rings more often).
    pub fn active(&self) -> bool {
        !self.sessions.is_empty()
    }

    fn session(&mut self, id: &str) -> Result<&mut Session, String> {
        self.sessions
            .iter_mut()
            .find(|s| s.id.to_string() == id)
            .ok_or_else(|| format!("{id}: no such capture"))
    }

    fn update_masks(&self, workers: &[Arc<WorkerShared>]) {
        for (w, shared) in workers.iter().enumerate() {
            let mask = self
                .sessions
                .iter()
                .filter(|s| s.worker == w && !s.stopped)
                .fold(0u64, |m, s| {
                    m | 1u64.checked_shl(s.port_idx as u32).unwrap_or(0)
                });
            // Relaxed: the worker only needs to see the bits eventually (see
            // `xvs_engine::capture`).
            shared.capture_mask.store(mask, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_engine::{EnginePort, Forwarding, Worker, WorkerConfig};
    use xvs_io::{FramePool, MemoryPort};

    #[test]
    fn sessions_start_read_stop_and_expire() {
        let pool = FramePool::new(256, 2048, 128).expect("pool");
        let (pa, mut a) = MemoryPort::pair("pa0", 64);
        let (pb, _b) = MemoryPort::pair("pb0", 64);
        let ports = vec![
            EnginePort::new(1, Box::new(pa)),
            EnginePort::new(2, Box::new(pb)),
        ];
        let fwd = Forwarding::IoFwd {
            peers: vec![Some(1), Some(0)],
        };
        let mut w = Worker::new(0, None, pool, ports, fwd, WorkerConfig::default()).expect("w");
        let workers = vec![w.shared()];
        let mut c = Captures {
            rings: w.take_capture_consumer().into_iter().collect(),
            ..Captures::default()
        };
        assert!(c.start(&workers, "nosuch").is_err());
        let id = c.start(&workers, "1").expect("by number");
        let id = id.trim().to_string();
        assert!(c.active());
        assert_eq!(workers[0].capture_mask.load(Ordering::Relaxed), 1);
        assert!(a.send(&[0xab; 60]));
        w.poll_once();
        c.drain(&workers);
        let text = c.read(&id).expect("read");
        let line = text.lines().next().expect("a frame");
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[1..3], ["60", "rx"]);
        assert_eq!(parts[3], "ab".repeat(60));
        // Stopped: the mask is clear, the summary counts the frame, the rest is read after.
        assert!(a.send(&[0xcd; 60]));
        w.poll_once();
        let summary = c.stop(&workers, &id).expect("stop");
        assert_eq!(summary, "# captured 2 dropped 0\n");
        assert_eq!(workers[0].capture_mask.load(Ordering::Relaxed), 0);
        assert_eq!(c.read(&id).expect("rest").lines().count(), 1);
        assert_eq!(c.read(&id).expect("empty"), "");
        assert!(c.read(&id).is_err(), "removed once read empty");
        assert!(!c.active());
    }
}
