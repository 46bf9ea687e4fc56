//! The worker: a poll loop over its ports.

use crate::counters::{DropReason, WorkerShared, WorkerSnapshot};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_io::{Desc, FramePool, PortIo};

/// Packets received per port per iteration, and the size of a transmit batch.
pub const BATCH: usize = 32;

/// Interval between two publications of the counters (and refreshes of kernel-side port
/// statistics, which cost a syscall per port).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(10);

/// Errors building a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// An io-fwd peer index does not name a port of this worker.
    #[error("port {port}: io-fwd peer index {peer} is not a port of this worker")]
    BadPeer {
        /// The port whose peer is wrong.
        port: String,
        /// The bad index.
        peer: usize,
    },
    /// The forwarding table does not have one entry per port.
    #[error("forwarding has {entries} entries for {ports} ports")]
    ForwardingSize {
        /// Entries given.
        entries: usize,
        /// Ports of the worker.
        ports: usize,
    },
}

/// How a worker chooses output ports.
#[derive(Debug, Clone)]
pub enum Forwarding {
    /// Fixed port-to-port forwarding, like DPDK testpmd's io mode: a packet received on port `i`
    /// leaves on port `peers[i]`, untouched. `None` drops it (counted as
    /// [`DropReason::NoOutput`]). This is the I/O ceiling of the engine.
    IoFwd {
        /// Output port index for each input port index.
        peers: Vec<Option<usize>>,
    },
}

/// Tunables of a worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// Upper bound of the sleep taken after idle iterations (OVS's `pmd-sleep-max`). Zero keeps
    /// the worker polling at 100 % of its core. The sleep grows by 1 µs per idle iteration and is
    /// reset as soon as a port delivers half a batch.
    pub sleep_max: Duration,
}

/// One port as the worker sees it: the backend and its pending-transmit batch.
pub struct EnginePort {
    /// The OpenFlow port number.
    pub ofport: u32,
    /// The backend.
    pub io: Box<dyn PortIo>,
    pending: [Desc; BATCH],
    pending_len: usize,
}

impl std::fmt::Debug for EnginePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnginePort")
            .field("ofport", &self.ofport)
            .field("name", &self.io.name())
            .field("pending", &self.pending_len)
            .finish()
    }
}

impl EnginePort {
    /// Wraps a backend as OpenFlow port `ofport`.
    pub fn new(ofport: u32, io: Box<dyn PortIo>) -> Self {
        Self {
            ofport,
            io,
            pending: [Desc::default(); BATCH],
            pending_len: 0,
        }
    }
}

/// A poll-mode worker. Build it anywhere, then call [`Worker::run`] on its (pinned) thread.
#[derive(Debug)]
pub struct Worker {
    pool: FramePool,
    ports: Vec<EnginePort>,
    forwarding: Forwarding,
    config: WorkerConfig,
    shared: Arc<WorkerShared>,
    stats: WorkerSnapshot,
}

impl Worker {
    /// A worker over `ports`, all reading into and writing from `pool`.
    pub fn new(
        id: usize,
        core: Option<usize>,
        pool: FramePool,
        ports: Vec<EnginePort>,
        forwarding: Forwarding,
        config: WorkerConfig,
    ) -> Result<Self, WorkerError> {
        match &forwarding {
            Forwarding::IoFwd { peers } => {
                if peers.len() != ports.len() {
                    return Err(WorkerError::ForwardingSize {
                        entries: peers.len(),
                        ports: ports.len(),
                    });
                }
                for (i, p) in peers.iter().enumerate() {
                    if let Some(peer) = *p {
                        if peer >= ports.len() {
                            return Err(WorkerError::BadPeer {
                                port: ports[i].io.name().to_string(),
                                peer,
                            });
                        }
                    }
                }
            }
        }
        let shared = Arc::new(WorkerShared {
            id,
            core,
            stop: Default::default(),
            stopped: Default::default(),
            counters: Default::default(),
            ports: ports
                .iter()
                .map(|p| (p.io.name().to_string(), p.ofport, Default::default()))
                .collect(),
        });
        Ok(Self {
            pool,
            ports,
            forwarding,
            config,
            shared,
            stats: WorkerSnapshot::default(),
        })
    }

    /// The handle the control side keeps.
    pub fn shared(&self) -> Arc<WorkerShared> {
        Arc::clone(&self.shared)
    }

    /// The worker's frame pool (for tests and accounting).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Frames currently held by ports (posted for receive, or in flight).
    pub fn frames_held_by_ports(&self) -> usize {
        self.ports.iter().map(|p| p.io.frames_held()).sum()
    }

    /// Polls until [`WorkerShared::request_stop`] is called; publishes final counters on exit.
    pub fn run(&mut self) {
        let mut sleep = Duration::ZERO;
        let mut last = Instant::now();
        let mut last_publish = last;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let received = self.poll_once();
            let now = Instant::now();
            let spent = now.duration_since(last).as_nanos() as u64;
            last = now;
            if received > 0 {
                self.stats.busy_ns += spent;
            } else {
                self.stats.idle_ns += spent;
            }
            if now.duration_since(last_publish) >= PUBLISH_INTERVAL {
                last_publish = now;
                self.publish();
            }
            if !self.config.sleep_max.is_zero() {
                if received >= BATCH / 2 {
                    sleep = Duration::ZERO;
                } else if received == 0 {
                    sleep = (sleep + Duration::from_micros(1)).min(self.config.sleep_max);
                    std::thread::sleep(sleep);
                    // The sleep is idle time; start the next iteration's clock after it.
                    let woke = Instant::now();
                    self.stats.idle_ns += woke.duration_since(last).as_nanos() as u64;
                    last = woke;
                }
            }
        }
        // Push out what is pending so stopping loses nothing already forwarded.
        self.flush_all();
        self.publish();
        self.shared.stopped.store(true, Ordering::Release);
    }

    /// One iteration: receive from every port, forward, transmit, reclaim. Returns how many
    /// packets were received.
    pub fn poll_once(&mut self) -> usize {
        self.stats.iterations += 1;
        let mut rx = [Desc::default(); BATCH];
        let mut received = 0;
        for in_idx in 0..self.ports.len() {
            let n = self.ports[in_idx].io.rx_burst(&mut self.pool, &mut rx);
            if n == 0 {
                continue;
            }
            received += n;
            self.stats.rx_packets += n as u64;
            match &self.forwarding {
                Forwarding::IoFwd { peers } => match peers[in_idx] {
                    Some(out) => {
                        for d in &rx[..n] {
                            if !self.pool.region().contains(*d) {
                                self.pool.free(d.addr);
                                self.stats.drops[DropReason::BadDescriptor as usize] += 1;
                                continue;
                            }
                            self.enqueue(out, *d);
                        }
                    }
                    None => {
                        self.pool.free_all(&rx[..n]);
                        self.stats.drops[DropReason::NoOutput as usize] += n as u64;
                    }
                },
            }
        }
        self.flush_all();
        received
    }

    #[inline]
    fn enqueue(&mut self, out: usize, d: Desc) {
        let port = &mut self.ports[out];
        port.pending[port.pending_len] = d;
        port.pending_len += 1;
        if port.pending_len == BATCH {
            self.transmit(out);
        }
    }

    fn transmit(&mut self, idx: usize) {
        let port = &mut self.ports[idx];
        let n = port.pending_len;
        if n == 0 {
            return;
        }
        let accepted = port.io.tx_burst(&mut self.pool, &port.pending[..n]).min(n);
        self.pool.free_all(&port.pending[accepted..n]);
        self.stats.tx_packets += accepted as u64;
        self.stats.tx_batches += 1;
        self.stats.drops[DropReason::TxRingFull as usize] += (n - accepted) as u64;
        port.pending_len = 0;
    }

    fn flush_all(&mut self) {
        for i in 0..self.ports.len() {
            self.transmit(i);
            self.ports[i].io.flush(&mut self.pool);
        }
    }

    fn publish(&mut self) {
        self.shared.counters.publish(&self.stats);
        for (port, (_, _, c)) in self.ports.iter_mut().zip(&self.shared.ports) {
            port.io.refresh_stats();
            c.publish(&port.io.stats());
        }
    }
}
