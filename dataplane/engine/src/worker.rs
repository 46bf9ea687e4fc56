//! The worker: a poll loop over its ports.

use crate::counters::{DropReason, WorkerShared, WorkerSnapshot};
use crate::pipeline::{self, ExecAction, OpenFlowStage};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_classifier::MegaflowId;
use xvs_flowtable::datapath::DpAction;
use xvs_io::{Desc, FramePool, PortIo};
use xvs_packet::{ExtractInfo, FlowKey};

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
#[derive(Debug)]
pub enum Forwarding {
    /// Fixed port-to-port forwarding, like DPDK testpmd's io mode: a packet received on port `i`
    /// leaves on port `peers[i]`, untouched. `None` drops it (counted as
    /// [`DropReason::NoOutput`]). This is the I/O ceiling of the engine.
    IoFwd {
        /// Output port index for each input port index.
        peers: Vec<Option<usize>>,
    },
    /// The OpenFlow pipeline: flow-key extraction, exact-match and megaflow caches, and
    /// translation of misses through the tables.
    OpenFlow(Box<OpenFlowStage>),
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
    // Declared (so dropped) before the pool: a port may need the pool's memory while it closes
    // (a DPDK device frees the mbufs it held into frames of the pool).
    ports: Vec<EnginePort>,
    pool: FramePool,
    forwarding: Forwarding,
    config: WorkerConfig,
    shared: Arc<WorkerShared>,
    stats: WorkerSnapshot,
    keys: Box<[FlowKey; BATCH]>,
    infos: [ExtractInfo; BATCH],
    ids: [Option<MegaflowId>; BATCH],
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
            Forwarding::OpenFlow(_) => {}
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
            keys: Box::new([FlowKey::ZERO; BATCH]),
            infos: [ExtractInfo::default(); BATCH],
            ids: [None; BATCH],
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
        if let Forwarding::OpenFlow(stage) = &mut self.forwarding {
            stage.begin_batch(&mut self.stats);
        }
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
                Forwarding::OpenFlow(_) => self.openflow_burst(in_idx, &rx[..n]),
            }
        }
        self.flush_all();
        received
    }

    /// The OpenFlow stage for one received burst: extract keys, classify (translating misses),
    /// execute each packet's actions.
    fn openflow_burst(&mut self, in_idx: usize, rx: &[Desc]) {
        let Forwarding::OpenFlow(stage) = &mut self.forwarding else {
            return;
        };
        let n = rx.len().min(BATCH);
        let in_port = self.ports[in_idx].ofport;
        for ((d, key), info) in rx[..n]
            .iter()
            .zip(self.keys.iter_mut())
            .zip(self.infos.iter_mut())
        {
            *key = FlowKey::ZERO;
            *info = xvs_packet::extract(self.pool.region().data(*d), in_port, key);
        }
        let ports = &self.ports;
        let port_of = |ofport: u32| {
            ports
                .iter()
                .position(|p| p.ofport == ofport)
                .and_then(|i| u16::try_from(i).ok())
        };
        stage.classify(
            &self.keys[..n],
            &mut self.ids[..n],
            &port_of,
            &mut self.stats,
        );
        for (i, &d) in rx[..n].iter().enumerate() {
            let cached = self.ids[i].and_then(|id| stage.actions(id)).map(|a| &a[..]);
            let Some(actions) = cached.or_else(|| stage.uncached_actions(i)) else {
                self.pool.free(d.addr);
                pipeline::count_drop(&mut self.stats, stage.miss_reason(i));
                continue;
            };
            let h = pipeline::headers(&self.keys[i], self.infos[i]);
            execute(
                actions,
                d,
                h,
                &mut self.pool,
                &mut self.ports,
                &mut self.stats,
            );
        }
    }

    #[inline]
    fn enqueue(&mut self, out: usize, d: Desc) {
        enqueue(&mut self.ports, &mut self.pool, &mut self.stats, out, d);
    }
}

/// Appends `d` to port `out`'s pending batch, transmitting the batch when it is full.
#[inline]
fn enqueue(
    ports: &mut [EnginePort],
    pool: &mut FramePool,
    stats: &mut WorkerSnapshot,
    out: usize,
    d: Desc,
) {
    let Some(port) = ports.get_mut(out) else {
        pool.free(d.addr);
        stats.drops[DropReason::NoOutput as usize] += 1;
        return;
    };
    port.pending[port.pending_len] = d;
    port.pending_len += 1;
    if port.pending_len == BATCH {
        transmit(port, pool, stats);
    }
}

fn transmit(port: &mut EnginePort, pool: &mut FramePool, stats: &mut WorkerSnapshot) {
    let n = port.pending_len;
    if n == 0 {
        return;
    }
    let accepted = port.io.tx_burst(pool, &port.pending[..n]).min(n);
    pool.free_all(&port.pending[accepted..n]);
    stats.tx_packets += accepted as u64;
    stats.tx_batches += 1;
    stats.drops[DropReason::TxRingFull as usize] += (n - accepted) as u64;
    port.pending_len = 0;
}

/// Executes a megaflow's actions on one packet: header rewrites in place, a copy for every
/// output but the last, which takes the packet itself.
fn execute(
    actions: &[ExecAction],
    mut d: Desc,
    mut h: crate::rewrite::Headers,
    pool: &mut FramePool,
    ports: &mut [EnginePort],
    stats: &mut WorkerSnapshot,
) {
    let mut outputs_left = actions
        .iter()
        .filter(|a| matches!(a, ExecAction::Output(_)))
        .count();
    if outputs_left == 0 {
        pool.free(d.addr);
        let reason = if actions
            .iter()
            .any(|a| matches!(a, ExecAction::RemoteOutput))
        {
            DropReason::RemotePort
        } else {
            DropReason::ActionDrop
        };
        stats.drops[reason as usize] += 1;
        return;
    }
    for a in actions {
        match *a {
            ExecAction::Output(idx) => {
                outputs_left -= 1;
                if outputs_left == 0 {
                    enqueue(ports, pool, stats, usize::from(idx), d);
                    return;
                }
                match pool.alloc_desc(d.len) {
                    Some(c) if pool.region_mut().copy_data(d, c) => {
                        enqueue(ports, pool, stats, usize::from(idx), c)
                    }
                    Some(c) => drop_packet(pool, stats, c, DropReason::BadDescriptor),
                    None => stats.drops[DropReason::PoolEmpty as usize] += 1,
                }
            }
            ExecAction::RemoteOutput => stats.drops[DropReason::RemotePort as usize] += 1,
            ExecAction::Header(DpAction::PushVlan { tpid, tci }) => {
                let base = pool.region().frame_base(d.addr);
                let start = (d.addr - base) as usize;
                let end = start + d.len as usize;
                match pipeline::push_vlan(pool.region_mut().frame_mut(base), start, end, tpid, tci)
                {
                    Some(new_start) => {
                        d.addr = base + new_start as u64;
                        d.len += 4;
                        shift_offsets(&mut h, 4);
                    }
                    None => return drop_packet(pool, stats, d, DropReason::RewriteFailed),
                }
            }
            ExecAction::Header(DpAction::PopVlan) => {
                match pipeline::pop_vlan(pool.region_mut().data_mut(d)) {
                    Some(moved) => {
                        d.addr += moved as u64;
                        d.len -= moved as u32;
                        shift_offsets(&mut h, -4);
                    }
                    None => return drop_packet(pool, stats, d, DropReason::RewriteFailed),
                }
            }
            ExecAction::Header(ref set) => {
                if !crate::rewrite::apply(pool.region_mut().data_mut(d), &h, set) {
                    return drop_packet(pool, stats, d, DropReason::RewriteFailed);
                }
            }
        }
    }
}

fn drop_packet(pool: &mut FramePool, stats: &mut WorkerSnapshot, d: Desc, reason: DropReason) {
    pool.free(d.addr);
    stats.drops[reason as usize] += 1;
}

fn shift_offsets(h: &mut crate::rewrite::Headers, by: i64) {
    let shift = |v: &mut u32| {
        if *v != 0 {
            *v = (i64::from(*v) + by).max(0) as u32;
        }
    };
    shift(&mut h.info.l3_offset);
    shift(&mut h.info.l4_offset);
    shift(&mut h.info.l3_end);
}

impl Worker {
    fn flush_all(&mut self) {
        for port in self.ports.iter_mut() {
            transmit(port, &mut self.pool, &mut self.stats);
            port.io.flush(&mut self.pool);
        }
    }

    /// Publishes the counters now (the loop does it every 10 ms; tests and shutdown call this).
    pub fn publish_counters(&mut self) {
        self.publish();
    }

    fn publish(&mut self) {
        self.shared.counters.publish(&self.stats);
        for (port, (_, _, c)) in self.ports.iter_mut().zip(&self.shared.ports) {
            port.io.refresh_stats();
            c.publish(&port.io.stats());
        }
    }
}
