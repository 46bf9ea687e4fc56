//! Counters a worker publishes for the control side.
//!
//! # Thread safety
//! Each counter has exactly one writer, the owning worker, which keeps plain `u64`s on its stack
//! and copies them here with `Relaxed` stores every few hundred iterations and when it stops.
//! Readers (the control thread) load with `Relaxed`: every value is individually monotonic and a
//! snapshot may mix values published at slightly different times, which is fine for counters.

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use xvs_conntrack::CtStats;
use xvs_flowtable::datapath::DpAction;
use xvs_io::PortStats;
use xvs_packet::FlowKey;

/// Why the engine dropped a packet. Each reason has its own counter per worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The output port's transmit ring was full.
    TxRingFull = 0,
    /// The forwarding stage had no output for the packet (io-fwd port without a peer).
    NoOutput = 1,
    /// The descriptor pointed outside the frame region (a bug or a corrupt ring).
    BadDescriptor = 2,
    /// The OpenFlow pipeline's actions for the packet contain no output (a drop flow, a table
    /// miss, or a translation that ended without output).
    ActionDrop = 3,
    /// Translation of a cache miss failed (see the translator's own counters for why).
    TranslationFailed = 4,
    /// More misses arrived in one batch than the per-batch translation budget allows.
    MissBudget = 5,
    /// A header rewrite did not apply to the packet (e.g. truncated headers).
    RewriteFailed = 6,
    /// The output port is polled by another worker that could not be handed the packet (its
    /// ring from this worker was full, or the port was not polled by any worker when the flow
    /// was translated).
    RemotePort = 7,
    /// No free frame for a copy of a packet sent to several ports (or forked by
    /// `ct(table=T)`).
    PoolEmpty = 8,
    /// A meter's drop band refused the packet (over the meter's rate).
    MeterDrop = 9,
    /// The packet recirculated more than [`MAX_RECIRC_DEPTH`](crate::MAX_RECIRC_DEPTH) times.
    RecircDepth = 10,
    /// More recirculations were pending in one batch than the worker's queue holds.
    RecircQueueFull = 11,
    /// The tracker's NAT verdict could not be written into the packet (truncated headers,
    /// SCTP ports).
    NatFailed = 12,
    // ---- Tunnels ----
    /// A tunnel-port frame that failed decapsulation (the reason is counted in
    /// [`WorkerSnapshot::decap_errors`]).
    TunnelDecap = 13,
    /// A valid tunnel frame that no configured tunnel port accepts (remote address mismatch).
    TunnelUnknown = 14,
    /// A tunnel frame whose VNI is not the port's fixed `key`.
    TunnelWrongVni = 15,
    /// No route to the tunnel destination, or a route that does not leave through the uplink.
    TunnelNoRoute = 16,
    /// The outer header could not be built or applied (no destination or source address, key
    /// above 24 bits, not enough headroom).
    TunnelEncap = 17,
    /// The packet waited for the next hop's MAC and the queue for it was full.
    TunnelNeighQueueFull = 18,
    /// The packet waited for the next hop's MAC and the neighbour never answered.
    TunnelNeighUnreachable = 19,
    /// The encapsulated packet would exceed the uplink MTU (an ICMP error went back).
    TunnelMtu = 20,
    /// An output to an OpenFlow port number the bridge does not have (never had, or deleted
    /// with `xvs/del-port`).
    NoSuchPort = 21,
    /// The input or output port is administratively down (OpenFlow PORT_MOD `down`).
    PortDown = 22,
    /// The input port drops what it receives (OpenFlow `OFPPC_NO_RECV`).
    PortNoRecv = 23,
    /// The output port takes nothing (OpenFlow `OFPPC_NO_FWD`).
    PortNoFwd = 24,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 25] = [
        DropReason::TxRingFull,
        DropReason::NoOutput,
        DropReason::BadDescriptor,
        DropReason::ActionDrop,
        DropReason::TranslationFailed,
        DropReason::MissBudget,
        DropReason::RewriteFailed,
        DropReason::RemotePort,
        DropReason::PoolEmpty,
        DropReason::MeterDrop,
        DropReason::RecircDepth,
        DropReason::RecircQueueFull,
        DropReason::NatFailed,
        DropReason::TunnelDecap,
        DropReason::TunnelUnknown,
        DropReason::TunnelWrongVni,
        DropReason::TunnelNoRoute,
        DropReason::TunnelEncap,
        DropReason::TunnelNeighQueueFull,
        DropReason::TunnelNeighUnreachable,
        DropReason::TunnelMtu,
        DropReason::NoSuchPort,
        DropReason::PortDown,
        DropReason::PortNoRecv,
        DropReason::PortNoFwd,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The name printed by counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::NoOutput => "no_output",
            DropReason::BadDescriptor => "bad_descriptor",
            DropReason::ActionDrop => "action_drop",
            DropReason::TranslationFailed => "translation_failed",
            DropReason::MissBudget => "miss_budget",
            DropReason::RewriteFailed => "rewrite_failed",
            DropReason::RemotePort => "remote_port",
            DropReason::PoolEmpty => "pool_empty",
            DropReason::MeterDrop => "meter_drop",
            DropReason::RecircDepth => "recirc_depth",
            DropReason::RecircQueueFull => "recirc_queue_full",
            DropReason::NatFailed => "nat_failed",
            DropReason::TunnelDecap => "tunnel_decap",
            DropReason::TunnelUnknown => "tunnel_unknown",
            DropReason::TunnelWrongVni => "tunnel_wrong_vni",
            DropReason::TunnelNoRoute => "tunnel_no_route",
            DropReason::TunnelEncap => "tunnel_encap",
            DropReason::TunnelNeighQueueFull => "tunnel_neigh_queue_full",
            DropReason::TunnelNeighUnreachable => "tunnel_neigh_unreachable",
            DropReason::TunnelMtu => "tunnel_mtu_exceeded",
            DropReason::NoSuchPort => "no_such_port",
            DropReason::PortDown => "port_down",
            DropReason::PortNoRecv => "port_no_recv",
            DropReason::PortNoFwd => "port_no_fwd",
        }
    }
}

/// One port's counters as published by its worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
    errors: AtomicU64,
}

impl PortCounters {
    /// Publishes `s` (single writer: the owning worker).
    pub fn publish(&self, s: &PortStats) {
        self.rx_packets.store(s.rx_packets, Ordering::Relaxed);
        self.rx_bytes.store(s.rx_bytes, Ordering::Relaxed);
        self.rx_dropped.store(s.rx_dropped, Ordering::Relaxed);
        self.tx_packets.store(s.tx_packets, Ordering::Relaxed);
        self.tx_bytes.store(s.tx_bytes, Ordering::Relaxed);
        self.tx_dropped.store(s.tx_dropped, Ordering::Relaxed);
        self.errors.store(s.errors, Ordering::Relaxed);
    }

    /// The last published values.
    pub fn load(&self) -> PortStats {
        PortStats {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            rx_dropped: self.rx_dropped.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A worker's own counters, kept as plain integers inside the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// Packets received from all ports.
    pub rx_packets: u64,
    /// Packets accepted for transmission by a port.
    pub tx_packets: u64,
    /// Transmit batches pushed to ports.
    pub tx_batches: u64,
    /// Drops by [`DropReason`], indexed by `reason as usize`.
    pub drops: [u64; DropReason::COUNT],
    /// Packets answered by the exact-match cache.
    pub exact_hits: u64,
    /// Packets answered by the megaflow cache.
    pub megaflow_hits: u64,
    /// Subtables probed by megaflow hits.
    pub subtable_lookups: u64,
    /// Packets that skipped the exact-match cache while it was bypassed for a low hit rate
    /// (they went straight to the megaflow cache).
    pub exact_skipped: u64,
    /// Megaflow hits found by comparing the packet with the previous batch's last answer,
    /// before any hash (part of `megaflow_hits`).
    pub repeat_hits: u64,
    /// Misses translated and installed (OVS: "miss with success upcall").
    pub upcalls_ok: u64,
    /// Misses whose translation failed or was not attempted (OVS: "miss with failed upcall").
    pub upcalls_failed: u64,
    /// Cache flushes after table changes.
    pub cache_flushes: u64,
    /// Loop iterations.
    pub iterations: u64,
    /// Nanoseconds spent in iterations that received at least one packet.
    pub busy_ns: u64,
    /// Nanoseconds spent in iterations that received nothing (including sleeps).
    pub idle_ns: u64,
    /// Packets looked up again after `ct(table=T)` (OVS: "packet recirculations").
    pub recirculations: u64,
    /// Connection-tracking outcomes of this worker's packets (`+inv` is a state, not a drop).
    pub ct: CtStats,
    /// Tunnel frames decapsulated.
    pub decapsulated: u64,
    /// Packets encapsulated.
    pub encapsulated: u64,
    /// Packets parked while the tunnel next hop's MAC is resolved.
    pub neigh_parked: u64,
    /// ICMP fragmentation-needed / packet-too-big replies sent.
    pub icmp_too_big: u64,
    /// Decapsulation failures by `xvs_tunnel::DecapError::index`.
    pub decap_errors: [u64; DECAP_REASONS],
    /// Frames copied to the capture ring (`xvsctl capture`).
    pub captured: u64,
    /// Frames not captured because the capture ring was full.
    pub capture_dropped: u64,
}

/// Number of decapsulation failure reasons.
pub const DECAP_REASONS: usize = xvs_tunnel::DecapError::ALL.len();

/// The published form of [`WorkerSnapshot`].
#[derive(Debug, Default)]
pub struct WorkerCounters {
    rx_packets: AtomicU64,
    tx_packets: AtomicU64,
    tx_batches: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    cache: [AtomicU64; 8],
    iterations: AtomicU64,
    busy_ns: AtomicU64,
    idle_ns: AtomicU64,
    recirculations: AtomicU64,
    ct: [AtomicU64; 11],
    tunnel: [AtomicU64; 4],
    decap_errors: [AtomicU64; DECAP_REASONS],
    capture: [AtomicU64; 2],
}

fn ct_fields(c: &CtStats) -> [u64; 11] {
    [
        c.packets,
        c.fast_path,
        c.lookups,
        c.hits,
        c.new,
        c.established,
        c.related,
        c.invalid,
        c.fragments,
        c.created,
        c.commit_failed,
    ]
}

impl WorkerCounters {
    /// Publishes `s` (single writer: the owning worker).
    pub fn publish(&self, s: &WorkerSnapshot) {
        self.rx_packets.store(s.rx_packets, Ordering::Relaxed);
        self.tx_packets.store(s.tx_packets, Ordering::Relaxed);
        self.tx_batches.store(s.tx_batches, Ordering::Relaxed);
        for (a, v) in self.drops.iter().zip(s.drops) {
            a.store(v, Ordering::Relaxed);
        }
        let cache = [
            s.exact_hits,
            s.megaflow_hits,
            s.subtable_lookups,
            s.upcalls_ok,
            s.upcalls_failed,
            s.cache_flushes,
            s.exact_skipped,
            s.repeat_hits,
        ];
        for (a, v) in self.cache.iter().zip(cache) {
            a.store(v, Ordering::Relaxed);
        }
        self.iterations.store(s.iterations, Ordering::Relaxed);
        self.busy_ns.store(s.busy_ns, Ordering::Relaxed);
        self.idle_ns.store(s.idle_ns, Ordering::Relaxed);
        let tunnel = [
            s.decapsulated,
            s.encapsulated,
            s.neigh_parked,
            s.icmp_too_big,
        ];
        for (a, v) in self.tunnel.iter().zip(tunnel) {
            a.store(v, Ordering::Relaxed);
        }
        for (a, v) in self.decap_errors.iter().zip(s.decap_errors) {
            a.store(v, Ordering::Relaxed);
        }
        self.recirculations
            .store(s.recirculations, Ordering::Relaxed);
        self.capture[0].store(s.captured, Ordering::Relaxed);
        self.capture[1].store(s.capture_dropped, Ordering::Relaxed);
        for (a, v) in self.ct.iter().zip(ct_fields(&s.ct)) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// The last published values.
    pub fn load(&self) -> WorkerSnapshot {
        let c = |i: usize| self.ct[i].load(Ordering::Relaxed);
        let ct = CtStats {
            packets: c(0),
            fast_path: c(1),
            lookups: c(2),
            hits: c(3),
            new: c(4),
            established: c(5),
            related: c(6),
            invalid: c(7),
            fragments: c(8),
            created: c(9),
            commit_failed: c(10),
        };
        let mut drops = [0; DropReason::COUNT];
        for (d, a) in drops.iter_mut().zip(&self.drops) {
            *d = a.load(Ordering::Relaxed);
        }
        let mut decap_errors = [0; DECAP_REASONS];
        for (d, a) in decap_errors.iter_mut().zip(&self.decap_errors) {
            *d = a.load(Ordering::Relaxed);
        }
        WorkerSnapshot {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_batches: self.tx_batches.load(Ordering::Relaxed),
            drops,
            exact_hits: self.cache[0].load(Ordering::Relaxed),
            megaflow_hits: self.cache[1].load(Ordering::Relaxed),
            subtable_lookups: self.cache[2].load(Ordering::Relaxed),
            upcalls_ok: self.cache[3].load(Ordering::Relaxed),
            upcalls_failed: self.cache[4].load(Ordering::Relaxed),
            cache_flushes: self.cache[5].load(Ordering::Relaxed),
            exact_skipped: self.cache[6].load(Ordering::Relaxed),
            repeat_hits: self.cache[7].load(Ordering::Relaxed),
            iterations: self.iterations.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            idle_ns: self.idle_ns.load(Ordering::Relaxed),
            recirculations: self.recirculations.load(Ordering::Relaxed),
            ct,
            decapsulated: self.tunnel[0].load(Ordering::Relaxed),
            encapsulated: self.tunnel[1].load(Ordering::Relaxed),
            neigh_parked: self.tunnel[2].load(Ordering::Relaxed),
            icmp_too_big: self.tunnel[3].load(Ordering::Relaxed),
            decap_errors,
            captured: self.capture[0].load(Ordering::Relaxed),
            capture_dropped: self.capture[1].load(Ordering::Relaxed),
        }
    }
}

/// What the control side shares with one worker.
#[derive(Debug)]
pub struct WorkerShared {
    /// The worker's id (its index in the daemon's worker list).
    pub id: usize,
    /// The core the worker is pinned to, if any.
    pub core: Option<usize>,
    /// Set by the control side to stop the worker; the worker checks it once per iteration.
    /// `Relaxed` is enough: nothing else is published through this flag.
    pub stop: AtomicBool,
    /// Set by the worker once it has published its final counters and left its loop.
    pub stopped: AtomicBool,
    /// The worker's counters.
    pub counters: WorkerCounters,
    /// The ports the worker polls, in its port order, with their counters and administrative
    /// state. Replaced as a whole by the worker when a port is added or removed at run time
    /// (`ArcSwap`: readers never lock, and the worker swaps only while applying a port
    /// command, never on the packet path); a removed port's entry leaves the list, so later
    /// dumps do not show it.
    pub ports: ArcSwap<Vec<PortEntry>>,
    /// Bit `i`: mirror port `i` (worker order) to the capture ring. Written by the control
    /// side, loaded by the worker once per iteration (`Relaxed`: see [`crate::capture`]).
    pub capture_mask: AtomicU64,
    /// Bumped (Release) after a port's [`PortEntry::flags`] change; the worker loads it
    /// (Acquire) once per iteration and reads the flags only when it moved.
    pub port_flags_version: AtomicU64,
    /// The megaflow dump the control side asked for last (a generation number); the worker
    /// answers at its next publication point (every 10 ms), never waiting.
    pub flow_dump_request: AtomicU64,
    /// The worker's answer: the generation it answers and its megaflows. The worker only
    /// `try_lock`s it, once per request, so it never waits on the control side.
    pub flow_dump: Mutex<FlowDump>,
    /// Where the worker's frames are, published with the counters.
    pub frames: FrameGauges,
}

/// Frame accounting of a worker's pool, stored together by the worker between two
/// iterations, when `free + held_by_ports + lost == pool_size` holds exactly; so a smaller
/// sum read from one publication means frames went missing without being counted.
/// Relaxed: a reader may mix two publications while a store is under way; compare values
/// read twice in a row to be sure.
#[derive(Debug, Default)]
pub struct FrameGauges {
    /// Frames in the pool.
    pub pool_size: AtomicU64,
    /// Frames on the pool's free list.
    pub free: AtomicU64,
    /// Frames held by the worker's ports (fill rings, transmissions in flight), and by
    /// packets parked for a tunnel next hop.
    pub held_by_ports: AtomicU64,
    /// Frames removed ports could not give back (kept by the kernel): the pool has that many
    /// fewer, so `free + held_by_ports + lost == pool_size`.
    pub lost: AtomicU64,
}

/// One port of a worker as the control side sees it.
#[derive(Debug, Clone)]
pub struct PortEntry {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// Counters the worker publishes for the port.
    pub counters: Arc<PortCounters>,
    /// Administrative flags ([`PORT_DOWN`], [`PORT_NO_RECV`], [`PORT_NO_FWD`]) written by the
    /// control side (through [`WorkerShared::set_port_flags`]); they follow the port when
    /// other ports come and go.
    pub flags: Arc<AtomicU8>,
}

/// [`PortEntry::flags`]: down (OpenFlow `OFPPC_PORT_DOWN`): nothing received from or sent to
/// the port (counted `port_down`).
pub const PORT_DOWN: u8 = 1;
/// [`PortEntry::flags`]: drop what the port receives (`OFPPC_NO_RECV`, counted
/// `port_no_recv`).
pub const PORT_NO_RECV: u8 = 2;
/// [`PortEntry::flags`]: drop what is output to the port (`OFPPC_NO_FWD`, counted
/// `port_no_fwd`).
pub const PORT_NO_FWD: u8 = 4;

impl WorkerShared {
    /// The shared state of worker `id` (pinned to `core`) polling `ports`, counters zero.
    pub(crate) fn new(id: usize, core: Option<usize>, ports: Vec<PortEntry>) -> Self {
        WorkerShared {
            id,
            core,
            stop: Default::default(),
            stopped: Default::default(),
            counters: Default::default(),
            ports: ArcSwap::from_pointee(ports),
            capture_mask: Default::default(),
            port_flags_version: Default::default(),
            flow_dump_request: Default::default(),
            flow_dump: Default::default(),
            frames: Default::default(),
        }
    }
}

impl WorkerShared {
    /// Sets the administrative flags of the worker's port numbered `ofport` (control side);
    /// the worker applies them at its next iteration. False: the worker has no such port.
    pub fn set_port_flags(&self, ofport: u32, flags: u8) -> bool {
        let ports = self.ports.load();
        let Some(p) = ports.iter().find(|p| p.ofport == ofport) else {
            return false;
        };
        // Relaxed: published by the Release bump below.
        p.flags.store(flags, Ordering::Relaxed);
        self.port_flags_version.fetch_add(1, Ordering::Release);
        true
    }
}

/// One cached megaflow as `dpctl/dump-flows` shows it.
#[derive(Clone, Debug)]
pub struct MegaflowDump {
    /// The masked key.
    pub key: FlowKey,
    /// The mask.
    pub mask: FlowKey,
    /// The datapath actions translation produced.
    pub actions: Box<[DpAction]>,
    /// Packets executed from the megaflow.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it was last hit (the engine's clock, ns since its epoch), `None`: never.
    pub used_ns: Option<u64>,
}

/// A worker's answer to a megaflow dump request.
#[derive(Clone, Debug, Default)]
pub struct FlowDump {
    /// The request generation answered (complete).
    pub generation: u64,
    /// The request generation being filled, chunk by chunk.
    pub filling: u64,
    /// The engine's clock when the dump was made (ns since its epoch).
    pub now_ns: u64,
    /// The megaflows.
    pub flows: Vec<MegaflowDump>,
}

impl WorkerShared {
    /// Asks the worker to stop after its current iteration.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
