//! The worker: a poll loop over its ports.

use crate::capture::{CaptureConsumer, CaptureTap, Direction};
use crate::counters::{
    DropReason, PortCounters, PortEntry, WorkerShared, WorkerSnapshot, PORT_DOWN, PORT_NO_FWD,
    PORT_NO_RECV,
};
use crate::handoff::Handoff;
use crate::inject::{InjectConsumer, Injection, INJECT_BURST, INJECT_MAX_ACTIONS};
use crate::pipeline::{self, ExecAction, OpenFlowStage, Plan, Shape};
use crate::portctl::{PortCommand, PortCommands, PortReply};
use crate::tunnel::{self, Parked, Received, TunnelStage};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_classifier::MegaflowId;
use xvs_conntrack::{Conntrack, CtInput, CtMeta, CtProbe};
use xvs_flowtable::datapath::DpAction;
use xvs_io::{DeferredRelease, Desc, FramePool, PortIo};
use xvs_packet::key::layout;
use xvs_packet::{ExtractInfo, FlowKey};

/// Packets received per port per iteration, and the size of a transmit batch.
pub const BATCH: usize = 32;
// Per-burst bit sets (`keys_clean`, the caches' pending sets) are u64s.
const _: () = assert!(BATCH <= 64);

/// Most times one packet is looked up again (`ct(table=T)` chains; OVS `MAX_RECIRC_DEPTH`).
/// Beyond it the packet is dropped and counted as `recirc_depth`.
pub const MAX_RECIRC_DEPTH: u8 = 8;

/// Recirculations pending at once in a worker (a burst whose packets all fork twice fits);
/// beyond it packets are dropped and counted as `recirc_queue_full`.
const RECIRC_QUEUE: usize = 4 * BATCH;

/// Key words of the tunnel metadata (`tun_id` .. `tun_tp_dst`): datapath metadata that
/// re-extraction cannot recover, carried across recirculation as OVS keeps `md.tunnel`.
const TUNNEL_WORDS: std::ops::Range<usize> = 19..26;
/// Key words of the Geneve options (`tun_metadata<n>` and their present bits), carried the
/// same way.
const TUN_METADATA_WORDS: std::ops::Range<usize> =
    xvs_packet::key::PACKET_WORDS_END..xvs_packet::KEY_WORDS;

/// A packet waiting for its next pass after `ct(table=T)`.
#[derive(Clone, Debug)]
struct Recirculated {
    desc: Desc,
    in_port: u32,
    /// The port index the packet originally arrived on (for tunnel ICMP errors).
    in_idx: u16,
    recirc_id: u32,
    tunnel: [u64; TUNNEL_WORDS.end - TUNNEL_WORDS.start],
    tun_metadata: [u64; TUN_METADATA_WORDS.end - TUN_METADATA_WORDS.start],
    /// Passes made so far (1 for the first recirculation).
    depth: u8,
    meta: CtMeta,
}

/// Megaflows copied per publication while answering a dump request.
const DUMP_CHUNK: usize = 2048;

/// Interval between two publications of the counters (and refreshes of kernel-side port
/// statistics, which cost a syscall per port).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(10);

/// Interval between two credits of the cached megaflows' hits to their OpenFlow rules: bounds
/// how stale `dump-flows` counters and idle ages are (OVS revalidates every 500 ms), and the
/// cost (a few relaxed atomic adds per rule of every megaflow hit in the interval).
const CREDIT_INTERVAL: Duration = Duration::from_millis(100);

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
    /// A port added at run time has the OpenFlow number of a port the worker already polls.
    #[error("ofport {ofport} is already used by port {name}")]
    DuplicatePort {
        /// The number asked for.
        ofport: u32,
        /// The port that has it.
        name: String,
    },
    /// No port of the worker has this OpenFlow number.
    #[error("no such port: ofport {ofport} is not polled by this worker")]
    NoSuchPort {
        /// The number asked for.
        ofport: u32,
    },
    /// A worker polls at most 65535 ports (cached actions name ports by a 16-bit index).
    #[error("worker already polls {0} ports")]
    TooManyPorts(usize),
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

/// One port as the worker sees it: the backend, its pending-transmit batch and the counters
/// the worker publishes for it.
pub struct EnginePort {
    /// The OpenFlow port number.
    pub ofport: u32,
    /// The backend.
    pub io: Box<dyn PortIo>,
    pending: [Desc; BATCH],
    pending_len: usize,
    counters: Arc<PortCounters>,
    /// The control side's administrative flags for the port ([`PortEntry::flags`]).
    shared_flags: Arc<AtomicU8>,
    /// Administrative flags this iteration (`PORT_DOWN`, ... loaded from `shared_flags`).
    flags: u8,
    /// Transmitted frames are mirrored to the capture ring this iteration.
    capture_tx: bool,
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
            counters: Arc::new(PortCounters::default()),
            shared_flags: Arc::new(AtomicU8::new(0)),
            flags: 0,
            capture_tx: false,
        }
    }

    /// The counters the worker publishes for this port.
    pub fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    fn entry(&self) -> PortEntry {
        PortEntry {
            name: self.io.name().to_string(),
            ofport: self.ofport,
            counters: Arc::clone(&self.counters),
            flags: Arc::clone(&self.shared_flags),
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
    /// Bit `i`: every metadata word of `keys[i]` but `in_port` is zero, so extraction (which
    /// writes `in_port` and all packet words) makes it a fresh packet's key without zeroing
    /// the whole key first. Passes that write metadata (recirculation, tunnels) clear it.
    keys_clean: u64,
    infos: [ExtractInfo; BATCH],
    ids: [Option<MegaflowId>; BATCH],
    /// Connection-tracking metadata of each packet of the pass (OVS `pkt->md.ct_*`).
    metas: Box<[CtMeta; BATCH]>,
    /// What the tracker is told about each packet of the pass whose actions start with
    /// `ct()`, parsed before the pass so that the tracker's loads of the whole pass overlap.
    ct_inputs: Box<[CtInput; BATCH]>,
    /// The connection key and hash of each of those packets, derived once by the tracker's
    /// prefetch for its `ct()`.
    ct_probes: Box<[CtProbe; BATCH]>,
    /// Packets of the pass being run, and those queued for the next one.
    recirc_now: Vec<Recirculated>,
    recirc_next: Vec<Recirculated>,
    /// Packets from the control side (PACKET_OUT), if the daemon gave the worker a ring.
    inject: Option<InjectConsumer>,
    /// The packets of the pass being classified (after decapsulation).
    descs: [Desc; BATCH],
    /// The port index each of them arrived on.
    in_idxs: [u16; BATCH],
    /// IPv4 identification of the outer headers this worker writes.
    ip_id: u16,
    /// Port additions and removals from the control side, if the daemon gave a queue.
    port_commands: Option<PortCommands>,
    /// Port capture (`xvsctl capture`).
    tap: CaptureTap,
    /// The control side's end of the capture ring, until taken.
    capture_consumer: Option<CaptureConsumer>,
    /// The capture mask and port-flags version loaded last, to touch the ports only on a
    /// change.
    masks: (u64, u64),
    /// The last megaflow dump generation answered.
    dump_answered: u64,
    /// Where the megaflow dump in progress resumes (an entry index).
    dump_cursor: u32,
    /// Removed ports whose socket is being released by another thread
    /// ([`Worker::remove_port`]); not polled, their frames still theirs.
    closing: Vec<EnginePort>,
    /// Frames removed ports could not give back.
    frames_lost: u64,
    /// Rings to and from the other workers, for outputs to their ports.
    handoff: Option<Handoff>,
}

/// What [`Worker::remove_port`] did.
pub struct PortRemoval {
    /// Frames the port could not give back (known now only when nothing was deferred; else
    /// counted in [`Worker::frames_lost`] when the worker takes the frames back).
    pub frames_lost: usize,
    /// The slow part of the close, to drop on another thread (`None`: closed already).
    pub release: Option<DeferredRelease>,
}

impl std::fmt::Debug for PortRemoval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortRemoval")
            .field("frames_lost", &self.frames_lost)
            .field("deferred", &self.release.is_some())
            .finish()
    }
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
        let shared = Arc::new(WorkerShared::new(
            id,
            core,
            ports.iter().map(EnginePort::entry).collect(),
        ));
        let (tap, capture_consumer) = CaptureTap::new();
        Ok(Self {
            pool,
            ports,
            forwarding,
            config,
            shared,
            stats: WorkerSnapshot::default(),
            keys: Box::new([FlowKey::ZERO; BATCH]),
            keys_clean: u64::MAX,
            infos: [ExtractInfo::default(); BATCH],
            ids: [None; BATCH],
            metas: Box::new(std::array::from_fn(|_| CtMeta::default())),
            ct_inputs: Box::new(
                [CtInput::new(xvs_conntrack::Tuple::other(
                    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    0,
                )); BATCH],
            ),
            ct_probes: Box::new([CtProbe::default(); BATCH]),
            recirc_now: Vec::with_capacity(RECIRC_QUEUE),
            recirc_next: Vec::with_capacity(RECIRC_QUEUE),
            inject: None,
            descs: [Desc::default(); BATCH],
            in_idxs: [0; BATCH],
            ip_id: 0,
            tap,
            capture_consumer: Some(capture_consumer),
            masks: (0, 0),
            dump_answered: 0,
            dump_cursor: 0,
            port_commands: None,
            closing: Vec::new(),
            frames_lost: 0,
            handoff: None,
        })
    }

    /// Gives the worker its port command queue (the control side keeps the other end).
    pub fn set_port_commands(&mut self, q: PortCommands) {
        self.port_commands = Some(q);
    }

    /// Connects the worker to the others (its element of [`crate::handoff::mesh`]): outputs
    /// to their ports are handed to them, and theirs to its ports are transmitted here.
    pub fn set_handoff(&mut self, mut handoff: Handoff) {
        handoff.seen = handoff.directory().generation();
        if let Forwarding::OpenFlow(stage) = &mut self.forwarding {
            stage.set_port_directory(Arc::clone(handoff.directory()));
        }
        self.handoff = Some(handoff);
    }

    /// Ports the worker polls.
    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// Applies the port commands waiting in the queue (between iterations: no burst is in
    /// flight, every pending transmit batch was flushed by the iteration).
    fn apply_port_commands(&mut self) {
        while let Some((seq, command)) = self.port_commands.as_mut().and_then(PortCommands::next) {
            let started = Instant::now();
            let mut release = None;
            let reply = match command {
                PortCommand::Add(open) => match open(&mut self.pool) {
                    Ok(port) => {
                        let ofport = port.ofport;
                        match self.add_port(port) {
                            Ok(index) => PortReply::Added { ofport, index },
                            Err((e, port)) => {
                                // Refused after opening: close it so its frames come back.
                                let _ = port.io.close(&mut self.pool);
                                PortReply::Failed(e.to_string())
                            }
                        }
                    }
                    Err(e) => PortReply::Failed(e),
                },
                PortCommand::Remove(ofport) => match self.remove_port(ofport) {
                    Ok(removal) => {
                        release = removal.release;
                        PortReply::Removed {
                            ofport,
                            frames_lost: removal.frames_lost,
                        }
                    }
                    Err(e) => PortReply::Failed(e.to_string()),
                },
            };
            if let Some(q) = self.port_commands.as_mut() {
                q.answer(seq, reply, started.elapsed(), release);
            }
        }
    }

    /// Starts polling `port` (at the end of the port list) and returns its index. Call it
    /// between iterations. The caches are flushed: entries translated before may have
    /// resolved outputs to this OpenFlow number as a port of another worker, or as missing.
    /// A refused port is handed back, still open.
    pub fn add_port(&mut self, port: EnginePort) -> Result<usize, (WorkerError, Box<EnginePort>)> {
        if let Some(p) = self.ports.iter().find(|p| p.ofport == port.ofport) {
            let e = WorkerError::DuplicatePort {
                ofport: port.ofport,
                name: p.io.name().to_string(),
            };
            return Err((e, Box::new(port)));
        }
        if self.ports.len() >= usize::from(u16::MAX) {
            return Err((WorkerError::TooManyPorts(self.ports.len()), Box::new(port)));
        }
        self.ports.push(port);
        match &mut self.forwarding {
            Forwarding::IoFwd { peers } => peers.push(None),
            Forwarding::OpenFlow(stage) => stage.ports_changed(&mut self.stats),
        }
        self.publish_port_list();
        Ok(self.ports.len() - 1)
    }

    /// Stops polling the port numbered `ofport` and closes it: what is pending for it is
    /// transmitted first, then its frames (fill ring, TX completions, unsent TX, unread RX)
    /// go back to the pool. The caches are flushed (cached outputs name ports by index, and
    /// the indices after it move). Call it between iterations.
    ///
    /// A backend whose close may block (an AF_XDP socket's release) hands that part back in
    /// [`PortRemoval::release`] for another thread to drop; the port then waits in the
    /// worker's closing list, its frames still counted as held by ports, and the worker takes
    /// them back at its first iteration after the release was dropped.
    pub fn remove_port(&mut self, ofport: u32) -> Result<PortRemoval, WorkerError> {
        let idx = self
            .ports
            .iter()
            .position(|p| p.ofport == ofport)
            .ok_or(WorkerError::NoSuchPort { ofport })?;
        self.flush_all();
        let mut port = self.ports.remove(idx);
        // Its last counters, for whoever still holds the handle.
        port.io.refresh_stats();
        port.counters.publish(&port.io.stats());
        let mut removal = PortRemoval {
            frames_lost: 0,
            release: port.io.begin_close(&mut self.pool),
        };
        if removal.release.is_some() {
            self.closing.push(port);
        } else {
            removal.frames_lost = port.io.close(&mut self.pool);
            self.frames_lost += removal.frames_lost as u64;
        }
        match &mut self.forwarding {
            Forwarding::IoFwd { peers } => {
                peers.remove(idx);
                for p in peers.iter_mut() {
                    *p = match *p {
                        Some(j) if j == idx => None,
                        Some(j) if j > idx => Some(j - 1),
                        other => other,
                    };
                }
            }
            Forwarding::OpenFlow(stage) => stage.ports_changed(&mut self.stats),
        }
        self.publish_port_list();
        Ok(removal)
    }

    /// Takes the frames back from removed ports whose release has been done.
    fn reap_closed_ports(&mut self) {
        let mut i = 0;
        while i < self.closing.len() {
            if self.closing[i].io.released() {
                let port = self.closing.swap_remove(i);
                self.frames_lost += port.io.close(&mut self.pool) as u64;
            } else {
                i += 1;
            }
        }
    }

    /// Removed ports still closing (their release not done yet).
    pub fn ports_closing(&self) -> usize {
        self.closing.len()
    }

    fn publish_port_list(&mut self) {
        let list: Vec<PortEntry> = self.ports.iter().map(EnginePort::entry).collect();
        self.shared.ports.store(Arc::new(list));
        // The ports' indices moved: reload flags and capture bits at the next iteration.
        self.masks = (u64::MAX, u64::MAX);
        // Other workers' cached outputs may name this worker for a port it no longer polls
        // (or another worker for one it polls now).
        if let Some(h) = &self.handoff {
            h.directory().bump();
        }
    }

    /// The control side's end of the capture ring (once; `None` afterwards).
    pub fn take_capture_consumer(&mut self) -> Option<CaptureConsumer> {
        self.capture_consumer.take()
    }

    /// Gives the worker its injection ring (the control side keeps the producer).
    pub fn set_injections(&mut self, q: InjectConsumer) {
        self.inject = Some(q);
    }

    /// Transmits what other workers handed over for this worker's ports, after flushing the
    /// caches if some worker's port list changed since they were built.
    fn run_handoffs(&mut self) -> usize {
        let Worker {
            pool,
            ports,
            forwarding,
            stats,
            tap,
            handoff,
            ..
        } = self;
        let Some(h) = handoff.as_mut() else {
            return 0;
        };
        let generation = h.directory().generation();
        if generation != h.seen {
            h.seen = generation;
            if let Forwarding::OpenFlow(stage) = forwarding {
                stage.ports_changed(stats);
            }
        }
        h.receive(|ofport, data| {
            let Some(idx) = ports.iter().position(|p| p.ofport == ofport) else {
                // Removed since the sender resolved it.
                stats.drops[DropReason::NoSuchPort as usize] += 1;
                return;
            };
            let Some(d) = pool.alloc_desc(data.len() as u32) else {
                stats.drops[DropReason::PoolEmpty as usize] += 1;
                return;
            };
            let buf = pool.region_mut().data_mut(d);
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            enqueue(ports, pool, stats, tap, idx, d);
        })
    }

    /// Transmits up to [`INJECT_BURST`] injected packets after executing their actions.
    fn run_injections(&mut self) -> usize {
        let mut done = 0;
        while done < INJECT_BURST {
            let Some(Ok(inj)) = self.inject.as_mut().map(|q| q.pop()) else {
                break;
            };
            done += 1;
            self.inject_one(&inj);
        }
        done
    }

    fn inject_one(&mut self, inj: &Injection) {
        let data = inj.data();
        let Some(d) = self.pool.alloc_desc(data.len() as u32) else {
            self.stats.drops[DropReason::PoolEmpty as usize] += 1;
            return;
        };
        let buf = self.pool.region_mut().data_mut(d);
        let n = buf.len().min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        let mut key = FlowKey::ZERO;
        let info = xvs_packet::extract(self.pool.region().data(d), inj.in_port, &mut key);
        let h = pipeline::headers(&key, info);
        let mut acts = [ExecAction::CtClear; INJECT_MAX_ACTIONS];
        let mut k = 0;
        let mut outputs = 0;
        for a in inj.actions() {
            let e = match *a {
                // Outputs to other workers' ports are done by those workers.
                DpAction::Output(p) => match self.ports.iter().position(|x| x.ofport == p) {
                    Some(i) => {
                        outputs += 1;
                        ExecAction::Output(i as u16)
                    }
                    None => continue,
                },
                // A tunnel output (a packet-out routed to a remote Node, e.g. a Reject answer
                // to a remote Pod) is encapsulated by the worker holding the uplink; the
                // control side hands it to every worker.
                DpAction::TunnelPush(ref push) => {
                    let Forwarding::OpenFlow(stage) = &mut self.forwarding else {
                        continue;
                    };
                    let Some(t) = stage.tunnel_mut() else {
                        continue;
                    };
                    let uplink = t.uplink_ofport();
                    let Some(out) = self.ports.iter().position(|x| x.ofport == uplink) else {
                        continue;
                    };
                    match t.prepare(push) {
                        Ok(template) => {
                            outputs += 1;
                            ExecAction::Encap {
                                template,
                                out: out as u16,
                            }
                        }
                        // No route or next hop yet: lost, as a packet-out to a down port.
                        Err(_) => continue,
                    }
                }
                DpAction::Ct(ref c) => ExecAction::Ct(crate::ct::ct_action(c)),
                DpAction::CtClear => ExecAction::CtClear,
                DpAction::Recirc(id) => ExecAction::Recirc(id),
                other => ExecAction::Header(other),
            };
            if let Some(slot) = acts.get_mut(k) {
                *slot = e;
                k += 1;
            }
        }
        if outputs == 0 {
            // Nothing of it is this worker's to send (another worker's ports or uplink).
            self.pool.free(d.addr);
            return;
        }
        let Forwarding::OpenFlow(stage) = &self.forwarding else {
            return drop_packet(&mut self.pool, &mut self.stats, d, DropReason::NoOutput);
        };
        let tracker = Arc::clone(stage.conntrack());
        let now = stage.tracker().1;
        let mut meta = CtMeta::default();
        let in_idx = self
            .ports
            .iter()
            .position(|p| p.ofport == inj.in_port)
            .map_or(u16::MAX, |i| i as u16);
        let packet = PacketCtx {
            in_port: inj.in_port,
            in_idx,
            depth: 0,
            key: &key,
            ct_input: None,
        };
        let mut x = Exec {
            pool: &mut self.pool,
            ports: &mut self.ports,
            stats: &mut self.stats,
            tap: &mut self.tap,
            tracker: &tracker,
            now,
            recirc: &mut self.recirc_next,
            // Packet-outs are not metered (their meter actions pass).
            meters: pipeline::MeterCx {
                meters: &[],
                now_ns: 0,
            },
            tunnel: stage.tunnel(),
            ip_id: &mut self.ip_id,
            // Each worker transmits a packet-out on its own ports.
            handoff: None,
        };
        let actions = &acts[..k];
        execute(&mut x, actions, Plan::of(actions), d, h, packet, &mut meta);
        self.run_recirculations();
    }

    /// The handle the control side keeps.
    pub fn shared(&self) -> Arc<WorkerShared> {
        Arc::clone(&self.shared)
    }

    /// The worker's frame pool (for tests and accounting).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Frames currently held by ports (posted for receive, or in flight), removed ports that
    /// are still closing included.
    pub fn frames_held_by_ports(&self) -> usize {
        self.ports
            .iter()
            .chain(&self.closing)
            .map(|p| p.io.frames_held())
            .sum()
    }

    /// Frames removed ports could not give back (they stay lost to the pool).
    pub fn frames_lost(&self) -> u64 {
        self.frames_lost
    }

    /// Frames held by packets parked for a tunnel next hop.
    pub fn frames_parked(&self) -> usize {
        match &self.forwarding {
            Forwarding::OpenFlow(stage) => stage.tunnel().map_or(0, TunnelStage::frames_held),
            Forwarding::IoFwd { .. } => 0,
        }
    }

    /// Polls until [`WorkerShared::request_stop`] is called; publishes final counters on exit.
    pub fn run(&mut self) {
        let mut sleep = Duration::ZERO;
        let mut last = Instant::now();
        let mut last_publish = last;
        let mut last_credit = last;
        // One clock read per iteration: the reading that ends an iteration's accounting
        // starts the next one (the pipeline's clocks included), unless slower work ran
        // between them.
        let mut now = last;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let mut stale = false;
            if self
                .port_commands
                .as_ref()
                .is_some_and(PortCommands::pending)
            {
                self.apply_port_commands();
                now = Instant::now();
            }
            let received = self.poll_once_at(now);
            now = Instant::now();
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
                stale = true;
            }
            if now.duration_since(last_credit) >= CREDIT_INTERVAL {
                last_credit = now;
                self.credit_flow_stats();
                stale = true;
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
                    now = woke;
                    stale = false;
                }
            }
            if stale {
                now = Instant::now();
            }
        }
        // Push out what is pending so stopping loses nothing already forwarded.
        self.reap_closed_ports();
        self.flush_all();
        self.credit_flow_stats();
        self.publish();
        self.shared.stopped.store(true, Ordering::Release);
    }

    /// One iteration: receive from every port, forward, transmit, reclaim. Returns how many
    /// packets were received.
    pub fn poll_once(&mut self) -> usize {
        self.poll_once_at(Instant::now())
    }

    /// [`poll_once`](Self::poll_once) at `now`, a clock reading the caller took (the worker's
    /// loop shares one per iteration between its own accounting and the pipeline's clocks).
    pub fn poll_once_at(&mut self, now: Instant) -> usize {
        self.stats.iterations += 1;
        self.load_port_masks();
        if !self.closing.is_empty() {
            self.reap_closed_ports();
        }
        if let Forwarding::OpenFlow(stage) = &mut self.forwarding {
            stage.begin_batch(&mut self.stats, now);
            if stage.tunnel().is_some() {
                self.run_released();
            }
        }
        let mut rx = [Desc::default(); BATCH];
        let mut received = self.run_injections();
        if self.handoff.is_some() {
            received += self.run_handoffs();
        }
        for in_idx in 0..self.ports.len() {
            let n = self.ports[in_idx].io.rx_burst(&mut self.pool, &mut rx);
            if n == 0 {
                continue;
            }
            received += n;
            self.stats.rx_packets += n as u64;
            if self.tap.wants(in_idx) {
                self.tap.copy(&self.pool, in_idx, Direction::Rx, &rx[..n]);
            }
            let flags = self.ports[in_idx].flags;
            if flags & (PORT_DOWN | PORT_NO_RECV) != 0 {
                self.pool.free_all(&rx[..n]);
                let reason = if flags & PORT_DOWN != 0 {
                    DropReason::PortDown
                } else {
                    DropReason::PortNoRecv
                };
                self.stats.drops[reason as usize] += n as u64;
                continue;
            }
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

    /// The OpenFlow stage for one received burst: decapsulate tunnel frames arriving on the
    /// uplink, extract keys, classify (translating misses), execute each packet's actions;
    /// then the recirculated packets.
    fn openflow_burst(&mut self, in_idx: usize, rx: &[Desc]) {
        let Forwarding::OpenFlow(stage) = &mut self.forwarding else {
            return;
        };
        let in_port = self.ports[in_idx].ofport;
        let tunnel = stage
            .tunnel()
            .filter(|t| t.uplink_ofport() == in_port && in_idx <= usize::from(u16::MAX));
        let mut n = 0;
        for &rd in rx.iter().take(BATCH) {
            let mut d = rd;
            let key = &mut self.keys[n];
            let bit = 1u64 << n;
            if tunnel.is_some() {
                // Decapsulation writes the tunnel metadata words.
                *key = FlowKey::ZERO;
                self.keys_clean &= !bit;
            } else if self.keys_clean & bit == 0 {
                *key = FlowKey::ZERO;
                self.keys_clean |= bit;
            }
            let mut port = in_port;
            if let Some(t) = tunnel {
                match t.receive(self.pool.region().data(d), key) {
                    Received::Plain => {}
                    Received::Decapsulated(inner) => {
                        // The inner frame stays where it is; the descriptor moves past the
                        // outer headers.
                        d.addr += inner.offset as u64;
                        d.len = inner.len as u32;
                        port = inner.ofport;
                        self.stats.decapsulated += 1;
                    }
                    Received::Dropped(reason, detail) => {
                        if let Some(e) = detail {
                            if let Some(c) = self.stats.decap_errors.get_mut(e.index()) {
                                *c += 1;
                            }
                        }
                        drop_packet(&mut self.pool, &mut self.stats, d, reason);
                        continue;
                    }
                }
            }
            xvs_packet::extract_into(self.pool.region().data(d), port, key, &mut self.infos[n]);
            self.descs[n] = d;
            self.in_idxs[n] = in_idx as u16;
            n += 1;
        }
        // The packets' ct metadata starts empty; it is reset lazily, by the first ct-related
        // action (depth 0 marks it stale), so packets that never meet ct() do not pay for it.
        self.openflow_pass(n, &[0; BATCH]);
        self.run_recirculations();
    }

    /// Runs the packets parked for a tunnel next hop that was resolved since, and drops those
    /// whose next hop never answered.
    fn run_released(&mut self) {
        loop {
            let Forwarding::OpenFlow(stage) = &mut self.forwarding else {
                return;
            };
            let Some(t) = stage.tunnel_mut() else { return };
            while let Some(p) = t.pop_failed() {
                drop_packet(
                    &mut self.pool,
                    &mut self.stats,
                    p.desc,
                    DropReason::TunnelNeighUnreachable,
                );
            }
            let mut n = 0;
            while n < BATCH {
                let Some(p) = t.pop_released() else { break };
                let mut scratch = FlowKey::ZERO;
                self.keys_clean &= !(1u64 << n);
                let in_port = p.key.get(xvs_packet::key::layout::IN_PORT) as u32;
                self.infos[n] =
                    xvs_packet::extract(self.pool.region().data(p.desc), in_port, &mut scratch);
                self.keys[n] = p.key;
                self.descs[n] = p.desc;
                self.in_idxs[n] = p.in_idx;
                n += 1;
            }
            if n == 0 {
                return;
            }
            self.openflow_pass(n, &[0; BATCH]);
            self.run_recirculations();
        }
    }

    /// The recirculated packets, pass after pass, in chunks of at most a burst, until none is
    /// left (each pass adds one to a packet's depth, which is bounded, so this ends).
    fn run_recirculations(&mut self) {
        let mut depths = [0u8; BATCH];
        while !self.recirc_next.is_empty() {
            std::mem::swap(&mut self.recirc_now, &mut self.recirc_next);
            let mut start = 0;
            while start < self.recirc_now.len() {
                let m = (self.recirc_now.len() - start).min(BATCH);
                for (j, depth) in depths.iter_mut().enumerate().take(m) {
                    let r = &self.recirc_now[start + j];
                    self.descs[j] = r.desc;
                    self.in_idxs[j] = r.in_idx;
                    *depth = r.depth;
                    self.metas[j].clone_from(&r.meta);
                    let key = &mut self.keys[j];
                    *key = FlowKey::ZERO;
                    self.keys_clean &= !(1u64 << j);
                    // The packet as the previous pass left it (NAT, rewrites), with the
                    // tracker's verdict and the id of the frozen translation.
                    self.infos[j] =
                        xvs_packet::extract(self.pool.region().data(r.desc), r.in_port, key);
                    key.set(layout::RECIRC_ID, u64::from(r.recirc_id));
                    key.words[TUNNEL_WORDS].copy_from_slice(&r.tunnel);
                    key.words[TUN_METADATA_WORDS].copy_from_slice(&r.tun_metadata);
                    crate::ct::write_key(key, &r.meta);
                }
                self.openflow_pass(m, &depths);
                start += m;
            }
            self.recirc_now.clear();
        }
    }

    /// One pass over the first `n` packets of `descs`/`keys`/`infos`/`in_idxs`, whose ct
    /// metadata is in place; `depths` are their passes so far.
    fn openflow_pass(&mut self, n: usize, depths: &[u8]) {
        let n = n.min(BATCH);
        let Worker {
            pool,
            ports,
            forwarding,
            stats,
            keys,
            infos,
            ids,
            metas,
            ct_inputs,
            ct_probes,
            recirc_next,
            descs,
            in_idxs,
            ip_id,
            tap,
            handoff,
            ..
        } = self;
        let Forwarding::OpenFlow(stage) = forwarding else {
            return;
        };
        {
            let ports = &*ports;
            let port_of = |ofport: u32| {
                ports
                    .iter()
                    .position(|p| p.ofport == ofport)
                    .and_then(|i| u16::try_from(i).ok())
            };
            stage.classify(&keys[..n], &mut ids[..n], &port_of, stats);
        }
        // One reference count per pass, so that the loop can borrow the stage mutably for the
        // megaflows' hit counters.
        let tracker = Arc::clone(stage.conntrack());
        let now = stage.tracker().1;
        // Runs of consecutive packets that hit the same megaflow (OVS batches per flow; runs
        // keep the burst's order on every port): a run's actions are looked up, and its
        // statistics counted, once. A packet without a megaflow is a run of its own.
        let mut runs = [(0u8, 0u8); BATCH];
        let mut n_runs = 0;
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            if ids[start].is_some() {
                while end < n && ids[end] == ids[start] {
                    end += 1;
                }
            }
            if let Some(r) = runs.get_mut(n_runs) {
                *r = (start as u8, (end - start) as u8);
                n_runs += 1;
            }
            start = end;
        }
        let runs = &runs[..n_runs];
        // The packets whose cached actions start with ct(): their tracker input is parsed now
        // (nothing runs on the packet before that ct(), so it is what execution would parse)
        // and the tracker loads their connections together, overlapping the cache misses.
        let mut parsed = [false; BATCH];
        let mut any_parsed = false;
        for &(start, len) in runs {
            let (s, e) = (usize::from(start), usize::from(start) + usize::from(len));
            let starts_with_ct = ids[s]
                .and_then(|id| stage.plan(id))
                .is_some_and(|p| p.starts_with_ct);
            if !starts_with_ct {
                continue;
            }
            any_parsed = true;
            for i in s..e {
                let h = pipeline::headers(&keys[i], infos[i]);
                let nw_frag = keys[i].get(layout::NW_FRAG);
                ct_inputs[i] = crate::ct::input(pool.region().data(descs[i]), &h, nw_frag);
                parsed[i] = true;
            }
        }
        if any_parsed {
            let first_ct = |id: Option<MegaflowId>| match stage.actions(id?)?.first()? {
                ExecAction::Ct(act) => Some(act),
                _ => None,
            };
            let items = (0..n).filter_map(|i| {
                let act = first_ct(ids[i]).filter(|_| parsed[i])?;
                // Depth 0: the metadata is stale, the tracker will see it empty.
                let meta = (depths.get(i).copied().unwrap_or(0) > 0).then(|| &metas[i]);
                Some((i, act, &ct_inputs[i], meta))
            });
            tracker.prefetch_probed(items, &mut ct_probes[..]);
        }
        // The general executor for packet `i` of the pass (a macro, not a closure: it
        // reborrows the pass's state, which the run shapes below also use).
        macro_rules! execute_one {
            ($i:expr, $actions:expr, $plan:expr, $meters:expr, $tunnel:expr) => {{
                let i = $i;
                let packet = PacketCtx {
                    in_port: keys[i].get(layout::IN_PORT) as u32,
                    in_idx: in_idxs[i],
                    depth: depths[i],
                    key: &keys[i],
                    ct_input: parsed[i].then(|| (&ct_inputs[i], &ct_probes[i])),
                };
                let mut x = Exec {
                    pool,
                    ports,
                    stats,
                    tap,
                    tracker: &tracker,
                    now,
                    recirc: recirc_next,
                    meters: $meters,
                    tunnel: $tunnel,
                    ip_id,
                    handoff: handoff.as_mut(),
                };
                let h = pipeline::headers(&keys[i], infos[i]);
                execute(&mut x, $actions, $plan, descs[i], h, packet, &mut metas[i]);
            }};
        }
        for &(start, len) in runs {
            let (s, e) = (usize::from(start), usize::from(start) + usize::from(len));
            let Some(id) = ids[s] else {
                // No megaflow: translated for itself, parked, or a failed translation.
                let i = s;
                let d = descs[i];
                if let Some((ip, oif)) = stage.parked(i) {
                    // Waits for the tunnel next hop's MAC (resolution was asked for).
                    let p = Parked {
                        desc: d,
                        in_idx: in_idxs[i],
                        key: keys[i],
                    };
                    if let Some(t) = stage.tunnel_mut() {
                        match t.park(ip, oif, p) {
                            Ok(()) => stats.neigh_parked += 1,
                            Err((desc, reason)) => drop_packet(pool, stats, desc, reason),
                        }
                    }
                    continue;
                }
                stage.packet_in(i, pool.region().data(d));
                let tcp_flags = keys[i].get(layout::TCP_FLAGS) as u16;
                let Some((actions, meters, tunnel)) =
                    stage.packet_actions(i, None, d.len, tcp_flags)
                else {
                    pool.free(d.addr);
                    pipeline::count_drop(stats, stage.miss_reason(i));
                    continue;
                };
                execute_one!(i, actions, Plan::of(actions), meters, tunnel);
                continue;
            };
            let mut bytes = 0u64;
            let mut tcp_flags = 0u16;
            for (d, key) in descs[s..e].iter().zip(&keys[s..e]) {
                bytes += u64::from(d.len);
                tcp_flags |= key.get(layout::TCP_FLAGS) as u16;
            }
            let Some((actions, plan, meters, tunnel)) =
                stage.run_actions(id, (e - s) as u64, bytes, tcp_flags)
            else {
                for (i, d) in descs.iter().enumerate().take(e).skip(s) {
                    pool.free(d.addr);
                    pipeline::count_drop(stats, stage.miss_reason(i));
                }
                continue;
            };
            match plan.shape {
                Shape::Output(out) => {
                    enqueue_run(ports, pool, stats, tap, usize::from(out), &descs[s..e]);
                }
                Shape::RewriteOutput(out) => {
                    let rewrites = actions.split_last().map_or(&[][..], |(_, r)| r);
                    let out = usize::from(out);
                    for i in s..e {
                        let d = descs[i];
                        let h = pipeline::headers(&keys[i], infos[i]);
                        let frame = pool.region_mut().data_mut(d);
                        let rewritten = rewrites.iter().all(|a| match a {
                            ExecAction::Header(set) => crate::rewrite::apply(frame, &h, set),
                            _ => false,
                        });
                        if rewritten {
                            enqueue(ports, pool, stats, tap, out, d);
                        } else {
                            drop_packet(pool, stats, d, DropReason::RewriteFailed);
                        }
                    }
                }
                Shape::Drop(reason) => {
                    pool.free_all(&descs[s..e]);
                    stats.drops[reason as usize] += (e - s) as u64;
                }
                Shape::General => {
                    for i in s..e {
                        execute_one!(i, actions, plan, meters, tunnel);
                    }
                }
            }
        }
    }

    #[inline]
    fn enqueue(&mut self, out: usize, d: Desc) {
        enqueue(
            &mut self.ports,
            &mut self.pool,
            &mut self.stats,
            &mut self.tap,
            out,
            d,
        );
    }

    /// Loads the control side's port masks (one relaxed load each per iteration) and, when
    /// they changed, the ports' flags and the capture clock.
    #[inline]
    fn load_port_masks(&mut self) {
        let capture = self.shared.capture_mask.load(Ordering::Relaxed);
        // Acquire: pairs with `set_port_flags`' Release bump, so the flags read below are at
        // least that new.
        let version = self.shared.port_flags_version.load(Ordering::Acquire);
        if capture != 0 {
            // Wall-clock time for the pcap records: once per iteration, and only while
            // capturing (vDSO, no syscall).
            self.tap.time_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        }
        if (capture, version) == self.masks {
            return;
        }
        self.masks = (capture, version);
        self.tap.mask = capture;
        for (i, p) in self.ports.iter_mut().enumerate() {
            let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
            p.flags = p.shared_flags.load(Ordering::Relaxed);
            p.capture_tx = capture & bit != 0;
        }
    }
}

/// Appends `d` to port `out`'s pending batch, transmitting the batch when it is full.
#[inline]
fn enqueue(
    ports: &mut [EnginePort],
    pool: &mut FramePool,
    stats: &mut WorkerSnapshot,
    tap: &mut CaptureTap,
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
        transmit(port, out, pool, stats, tap);
    }
}

/// Appends `descs`, in order, to port `out`'s pending batch, transmitting the batch each time
/// it fills: a run of packets with one output costs one port lookup.
#[inline]
fn enqueue_run(
    ports: &mut [EnginePort],
    pool: &mut FramePool,
    stats: &mut WorkerSnapshot,
    tap: &mut CaptureTap,
    out: usize,
    descs: &[Desc],
) {
    let Some(port) = ports.get_mut(out) else {
        pool.free_all(descs);
        stats.drops[DropReason::NoOutput as usize] += descs.len() as u64;
        return;
    };
    let mut rest = descs;
    while !rest.is_empty() {
        let have = port.pending_len.min(BATCH);
        let take = (BATCH - have).min(rest.len());
        let (now, later) = rest.split_at(take);
        port.pending[have..have + take].copy_from_slice(now);
        port.pending_len = have + take;
        rest = later;
        if port.pending_len == BATCH {
            transmit(port, out, pool, stats, tap);
        }
    }
}

fn transmit(
    port: &mut EnginePort,
    idx: usize,
    pool: &mut FramePool,
    stats: &mut WorkerSnapshot,
    tap: &mut CaptureTap,
) {
    let n = port.pending_len;
    if n == 0 {
        return;
    }
    if port.flags & (PORT_DOWN | PORT_NO_FWD) != 0 {
        pool.free_all(&port.pending[..n]);
        let reason = if port.flags & PORT_DOWN != 0 {
            DropReason::PortDown
        } else {
            DropReason::PortNoFwd
        };
        stats.drops[reason as usize] += n as u64;
        port.pending_len = 0;
        return;
    }
    if port.capture_tx {
        tap.copy(pool, idx, Direction::Tx, &port.pending[..n]);
    }
    let accepted = port.io.tx_burst(pool, &port.pending[..n]).min(n);
    pool.free_all(&port.pending[accepted..n]);
    stats.tx_packets += accepted as u64;
    stats.tx_batches += 1;
    stats.drops[DropReason::TxRingFull as usize] += (n - accepted) as u64;
    port.pending_len = 0;
}

/// What executing actions may touch besides the packet.
struct Exec<'a> {
    pool: &'a mut FramePool,
    ports: &'a mut [EnginePort],
    stats: &'a mut WorkerSnapshot,
    tap: &'a mut CaptureTap,
    tracker: &'a Conntrack,
    now: u64,
    recirc: &'a mut Vec<Recirculated>,
    meters: pipeline::MeterCx<'a>,
    tunnel: Option<&'a TunnelStage>,
    /// IPv4 identification counter for outer headers.
    ip_id: &'a mut u16,
    /// Rings to the other workers, for outputs to their ports.
    handoff: Option<&'a mut Handoff>,
}

/// The packet's datapath metadata for this pass.
#[derive(Clone, Copy)]
struct PacketCtx<'k> {
    in_port: u32,
    /// The port index the packet arrived on (`u16::MAX`: none, e.g. a packet-out).
    in_idx: u16,
    /// Passes made before this one; 0 also means the ct metadata is stale (not reset yet).
    depth: u8,
    /// The key this pass looked the packet up with.
    key: &'k FlowKey,
    /// The tracker input of the packet, parsed before the pass, when its first action is
    /// `ct()` (used by that action only), with the key and hash the prefetch derived for it.
    ct_input: Option<(&'k CtInput, &'k CtProbe)>,
}

/// Queues `d` for another pass under `recirc_id`, or drops it past the depth bound or when
/// the queue is full (the queue never grows: no allocation on the packet path).
fn recirculate(x: &mut Exec, d: Desc, recirc_id: u32, p: PacketCtx, meta: &CtMeta) {
    let depth = p.depth.saturating_add(1);
    if depth > MAX_RECIRC_DEPTH {
        return drop_packet(x.pool, x.stats, d, DropReason::RecircDepth);
    }
    if x.recirc.len() >= RECIRC_QUEUE {
        return drop_packet(x.pool, x.stats, d, DropReason::RecircQueueFull);
    }
    x.stats.recirculations += 1;
    let mut tunnel = [0u64; TUNNEL_WORDS.end - TUNNEL_WORDS.start];
    tunnel.copy_from_slice(&p.key.words[TUNNEL_WORDS]);
    let mut tun_metadata = [0u64; TUN_METADATA_WORDS.end - TUN_METADATA_WORDS.start];
    tun_metadata.copy_from_slice(&p.key.words[TUN_METADATA_WORDS]);
    x.recirc.push(Recirculated {
        desc: d,
        in_port: p.in_port,
        in_idx: p.in_idx,
        recirc_id,
        tunnel,
        tun_metadata,
        depth,
        meta: meta.clone(),
    });
}

/// Executes a megaflow's actions (`plan` is theirs) on one packet: header rewrites in place,
/// conntrack, a copy for every output or recirculation but the last, which takes the packet
/// itself.
#[allow(clippy::too_many_arguments)]
fn execute(
    x: &mut Exec,
    actions: &[ExecAction],
    plan: Plan,
    mut d: Desc,
    mut h: crate::rewrite::Headers,
    p: PacketCtx,
    meta: &mut CtMeta,
) {
    let mut consumers_left = plan.consumers as usize;
    if let Shape::Drop(reason) = plan.shape {
        return drop_packet(x.pool, x.stats, d, reason);
    }
    let mut meta_stale = p.depth == 0;
    for (pos, a) in actions.iter().enumerate() {
        match a {
            ExecAction::Output(idx) => {
                let idx = usize::from(*idx);
                consumers_left -= 1;
                if consumers_left == 0 {
                    enqueue(x.ports, x.pool, x.stats, x.tap, idx, d);
                    return;
                }
                if let Some(c) = copy(x, d) {
                    enqueue(x.ports, x.pool, x.stats, x.tap, idx, c);
                }
            }
            ExecAction::Meter(slot) => {
                let pass = x
                    .meters
                    .meters
                    .get(usize::from(*slot))
                    .is_none_or(|m| m.pass(x.meters.now_ns, d.len));
                if !pass {
                    return drop_packet(x.pool, x.stats, d, DropReason::MeterDrop);
                }
            }
            ExecAction::MeterDropped => {
                return drop_packet(x.pool, x.stats, d, DropReason::MeterDrop);
            }
            ExecAction::Recirc(id) => {
                if std::mem::take(&mut meta_stale) {
                    meta.clear();
                }
                consumers_left -= 1;
                if consumers_left == 0 {
                    return recirculate(x, d, *id, p, meta);
                }
                // ct(table=T) followed by more actions: the copy recirculates, the packet
                // goes on.
                if let Some(c) = copy(x, d) {
                    recirculate(x, c, *id, p, meta);
                }
            }
            ExecAction::Ct(act) => {
                if std::mem::take(&mut meta_stale) {
                    meta.clear();
                }
                let parsed;
                let (input, probe) = match p.ct_input.filter(|_| pos == 0) {
                    Some((input, probe)) => (input, Some(probe)),
                    None => {
                        let nw_frag = p.key.get(layout::NW_FRAG);
                        parsed = crate::ct::input(x.pool.region().data(d), &h, nw_frag);
                        (&parsed, None)
                    }
                };
                let stats = &mut x.stats.ct;
                if let Some(rw) = x
                    .tracker
                    .process_probed(x.now, input, act, meta, probe, stats)
                {
                    if !crate::ct::apply_nat(x.pool.region_mut().data_mut(d), &h, &rw) {
                        return drop_packet(x.pool, x.stats, d, DropReason::NatFailed);
                    }
                }
            }
            ExecAction::CtClear => {
                meta_stale = false;
                meta.clear();
            }
            ExecAction::Encap { template, out } => {
                consumers_left -= 1;
                let last = consumers_left == 0;
                let packet = if last { Some(d) } else { copy(x, d) };
                if let Some(c) = packet {
                    *x.ip_id = x.ip_id.wrapping_add(1);
                    encap_and_send(
                        c, *template, *out, x.pool, x.ports, x.stats, x.tunnel, p.key, p.in_idx,
                        *x.ip_id, x.tap,
                    );
                }
                if last {
                    return;
                }
            }
            ExecAction::RemoteOutput { worker, ofport } => {
                consumers_left -= 1;
                let sent = x.handoff.as_deref_mut().is_some_and(|h| {
                    h.send(usize::from(*worker), *ofport, x.pool.region().data(d))
                });
                if !sent {
                    x.stats.drops[DropReason::RemotePort as usize] += 1;
                }
                if consumers_left == 0 {
                    // The bytes travelled; the frame stays here.
                    x.pool.free(d.addr);
                    return;
                }
            }
            ExecAction::Discard(reason) => x.stats.drops[*reason as usize] += 1,
            ExecAction::Header(DpAction::PushVlan { tpid, tci }) => {
                let base = x.pool.region().frame_base(d.addr);
                let start = (d.addr - base) as usize;
                let end = start + d.len as usize;
                match pipeline::push_vlan(
                    x.pool.region_mut().frame_mut(base),
                    start,
                    end,
                    *tpid,
                    *tci,
                ) {
                    Some(new_start) => {
                        d.addr = base + new_start as u64;
                        d.len += 4;
                        shift_offsets(&mut h, 4);
                    }
                    None => return drop_packet(x.pool, x.stats, d, DropReason::RewriteFailed),
                }
            }
            ExecAction::Header(DpAction::PopVlan) => {
                match pipeline::pop_vlan(x.pool.region_mut().data_mut(d)) {
                    Some(moved) => {
                        d.addr += moved as u64;
                        d.len -= moved as u32;
                        shift_offsets(&mut h, -4);
                    }
                    None => return drop_packet(x.pool, x.stats, d, DropReason::RewriteFailed),
                }
            }
            // A meter the translator could not resolve: its packets pass.
            ExecAction::Header(DpAction::Meter(_)) => {}
            ExecAction::Header(set) => {
                if !crate::rewrite::apply(x.pool.region_mut().data_mut(d), &h, set) {
                    return drop_packet(x.pool, x.stats, d, DropReason::RewriteFailed);
                }
            }
        }
    }
    // Only conntrack side effects: nothing took the packet.
    drop_packet(x.pool, x.stats, d, pipeline::no_output_reason(actions));
}

/// Encapsulates `d` (which this call consumes) with template `template` and queues it on the
/// uplink `out`; a packet that would not fit the uplink MTU is dropped and, when it may not be
/// fragmented, answered with ICMP fragmentation-needed / packet-too-big on its ingress port.
#[allow(clippy::too_many_arguments)]
fn encap_and_send(
    d: Desc,
    template: u32,
    out: u16,
    pool: &mut FramePool,
    ports: &mut [EnginePort],
    stats: &mut WorkerSnapshot,
    tunnel: Option<&TunnelStage>,
    key: &FlowKey,
    in_idx: u16,
    ip_id: u16,
    tap: &mut CaptureTap,
) {
    let Some((t, stage)) = tunnel.and_then(|s| s.template(template).map(|t| (t, s))) else {
        return drop_packet(pool, stats, d, DropReason::TunnelEncap);
    };
    let mtu = stage.uplink_mtu();
    if xvs_tunnel::mtu::exceeds_mtu(d.len as usize, t.ip_overhead(), mtu) {
        if in_idx != out {
            send_too_big(
                pool,
                ports,
                stats,
                tap,
                stage,
                d,
                key,
                in_idx,
                t.ip_overhead(),
            );
        }
        return drop_packet(pool, stats, d, DropReason::TunnelMtu);
    }
    let base = pool.region().frame_base(d.addr);
    let start = (d.addr - base) as usize;
    let hash = tunnel::key_hash(key);
    match t.apply(
        pool.region_mut().frame_mut(base),
        start,
        d.len as usize,
        hash,
        ip_id,
    ) {
        Ok((new_start, new_len)) => {
            stats.encapsulated += 1;
            let e = Desc {
                addr: base + new_start as u64,
                len: new_len as u32,
                options: 0,
            };
            enqueue(ports, pool, stats, tap, usize::from(out), e);
        }
        Err(_) => drop_packet(pool, stats, d, DropReason::TunnelEncap),
    }
}

/// Answers a packet too big for the tunnel with an ICMP error from the node, addressed with
/// the packet's original MACs reversed, on the port it came in on.
#[allow(clippy::too_many_arguments)]
fn send_too_big(
    pool: &mut FramePool,
    ports: &mut [EnginePort],
    stats: &mut WorkerSnapshot,
    tap: &mut CaptureTap,
    stage: &TunnelStage,
    d: Desc,
    key: &FlowKey,
    in_idx: u16,
    ip_overhead: usize,
) {
    use xvs_packet::key::layout;
    let mut buf = [0u8; 14 + xvs_tunnel::mtu::ICMP6_MAX];
    let inner = pool.region().data(d);
    if !xvs_tunnel::mtu::must_not_fragment(inner) {
        return;
    }
    let mtu = xvs_tunnel::mtu::inner_mtu(stage.uplink_mtu(), ip_overhead);
    let v6 = key.get(layout::ETH_TYPE) == 0x86dd;
    let built = match stage.icmp_source(v6, key) {
        std::net::IpAddr::V4(src) => {
            xvs_tunnel::mtu::icmp4_frag_needed(&mut buf, inner, src.octets(), mtu as u16)
        }
        std::net::IpAddr::V6(src) => {
            xvs_tunnel::mtu::icmp6_packet_too_big(&mut buf, inner, src.octets(), mtu as u32)
        }
    };
    let Ok(len) = built else { return };
    let mac = |v: u64| {
        let b = v.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    };
    buf[0..6].copy_from_slice(&mac(key.get(layout::ETH_SRC)));
    buf[6..12].copy_from_slice(&mac(key.get(layout::ETH_DST)));
    match pool.alloc_copy(&buf[..len]) {
        Some(r) => {
            stats.icmp_too_big += 1;
            enqueue(ports, pool, stats, tap, usize::from(in_idx), r);
        }
        None => stats.drops[DropReason::PoolEmpty as usize] += 1,
    }
}

/// A copy of `d` in a fresh frame of the pool; `None` (counted) when there is none.
fn copy(x: &mut Exec, d: Desc) -> Option<Desc> {
    match x.pool.alloc_desc(d.len) {
        Some(c) if x.pool.region_mut().copy_data(d, c) => Some(c),
        Some(c) => {
            drop_packet(x.pool, x.stats, c, DropReason::BadDescriptor);
            None
        }
        None => {
            x.stats.drops[DropReason::PoolEmpty as usize] += 1;
            None
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
    /// Publishes a copy of the megaflow cache when the control side asked for one since the
    /// last answer (`dpctl/dump-flows`), [`DUMP_CHUNK`] megaflows per publication so that a
    /// full cache costs the worker a bounded slice of each period. Never waits: if the
    /// control side holds the slot, the work is tried again at the next publication.
    fn answer_flow_dump(&mut self) {
        // Acquire: pairs with the control side's Release of the request (the Mutex orders
        // the data itself).
        let wanted = self.shared.flow_dump_request.load(Ordering::Acquire);
        if wanted == self.dump_answered {
            return;
        }
        let Ok(mut slot) = self.shared.flow_dump.try_lock() else {
            return;
        };
        if slot.filling != wanted {
            slot.filling = wanted;
            slot.flows.clear();
            self.dump_cursor = 0;
        }
        let next = match &self.forwarding {
            Forwarding::OpenFlow(stage) => {
                slot.now_ns = stage.now();
                stage.dump_megaflows(self.dump_cursor, DUMP_CHUNK, &mut slot.flows)
            }
            Forwarding::IoFwd { .. } => None,
        };
        match next {
            Some(cursor) => self.dump_cursor = cursor,
            None => {
                slot.generation = wanted;
                self.dump_answered = wanted;
            }
        }
    }

    fn flush_all(&mut self) {
        for (idx, port) in self.ports.iter_mut().enumerate() {
            transmit(port, idx, &mut self.pool, &mut self.stats, &mut self.tap);
            port.io.flush(&mut self.pool);
        }
    }

    /// Publishes the counters now (the loop does it every 10 ms; tests and shutdown call this).
    /// Also credits the cached megaflows' hits to their OpenFlow rules.
    pub fn publish_counters(&mut self) {
        self.credit_flow_stats();
        self.publish();
    }

    /// Live megaflows and their distinct masks (0, 0 without an OpenFlow stage).
    pub fn megaflow_census(&self) -> (usize, usize) {
        match &self.forwarding {
            Forwarding::OpenFlow(stage) => stage.megaflow_census(),
            _ => (0, 0),
        }
    }

    /// Credits the hits of the cached megaflows to their OpenFlow rules now (the loop does it
    /// every 100 ms).
    pub fn credit_flow_stats(&mut self) {
        if let Forwarding::OpenFlow(stage) = &mut self.forwarding {
            stage.credit_stats();
        }
    }

    fn publish(&mut self) {
        self.stats.captured = self.tap.captured;
        self.stats.capture_dropped = self.tap.dropped;
        self.answer_flow_dump();
        self.shared.counters.publish(&self.stats);
        let f = &self.shared.frames;
        f.pool_size.store(
            u64::from(self.pool.region().frame_count()),
            Ordering::Relaxed,
        );
        f.free
            .store(self.pool.free_count() as u64, Ordering::Relaxed);
        f.lost.store(self.frames_lost, Ordering::Relaxed);
        f.held_by_ports.store(
            (self.frames_held_by_ports() + self.frames_parked()) as u64,
            Ordering::Relaxed,
        );
        for port in self.ports.iter_mut() {
            port.io.refresh_stats();
            port.counters.publish(&port.io.stats());
        }
    }
}
