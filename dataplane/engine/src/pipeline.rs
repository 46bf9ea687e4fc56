//! The OpenFlow forwarding stage: flow-key extraction, the per-worker caches, translation of
//! misses through the injected [`Translator`], and execution of datapath actions.

use crate::counters::{DropReason, WorkerSnapshot};
use crate::handoff::PortDirectory;
use crate::rewrite::{self, Headers};
use crate::tunnel::{Prepare, TunnelStage};
use crate::worker::BATCH;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use xvs_classifier::{CacheConfig, DatapathCache, MegaflowId};
use xvs_conntrack::{Conntrack, CtAction, CtConfig};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::metering::MeterState;
use xvs_flowtable::stats::Attribution;
use xvs_packet::key::layout;
use xvs_packet::{ExtractInfo, FlowKey};

/// What translation decided for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Execute the actions and install them as a megaflow for every packet matching the mask.
    Cache,
    /// Execute the actions for this packet only: the translation had side effects that every
    /// packet must trigger (learn, packet-in), so nothing is cached.
    Uncached,
    /// Drop the packet; nothing is cached (the translator counts why).
    Drop,
}

/// Translates cache misses through the OpenFlow tables. The daemon injects it; the engine knows
/// nothing else of OpenFlow.
///
/// # Thread safety
/// Each worker owns its translator. `refresh` is the only point where a worker observes table
/// changes: it loads the newest published tables (an `Acquire` load pairing with the
/// publisher's `Release`), once per batch.
pub trait Translator: Send {
    /// Adopts the newest published tables and returns their version.
    fn refresh(&mut self) -> u64;

    /// Translates `key` against the adopted tables: appends the datapath actions to `actions`
    /// and ORs every key bit the result depends on into `mask`.
    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict;

    /// The OpenFlow rules the last translation went through, to which every packet of the
    /// megaflow built from it is credited (`None`: nothing to credit).
    fn attribution(&mut self) -> Option<Attribution> {
        None
    }

    /// The pipeline's clock in nanoseconds: it stamps credited statistics (last-used times
    /// for idle timeouts, in milliseconds), drives meters, and times the translations of a
    /// batch against [`MISS_BUDGET_NS`]. Read once per batch and around each translation (the
    /// miss path only). Tests give a virtual clock. A translator without a clock (always 0)
    /// never exhausts the time budget: every miss of a batch is translated.
    fn now_ns(&mut self) -> u64 {
        0
    }

    /// [`now_ns`](Self::now_ns) at `now`, a reading of the monotonic clock the worker took
    /// for the batch (one read per loop iteration, shared). A translator whose clock counts
    /// from an `Instant` derives it from `now` instead of reading the clock again; the
    /// default reads its own clock.
    fn now_ns_at(&mut self, now: Instant) -> u64 {
        let _ = now;
        self.now_ns()
    }

    /// The rate limiter of meter `id` in the adopted tables, for [`DpAction::Meter`] (`None`:
    /// unknown meter; its packets pass, as in OVS's userspace datapath).
    fn meter(&mut self, id: u32) -> Option<Arc<MeterState>> {
        let _ = id;
        None
    }

    /// Whether OpenFlow port `ofport` exists in the adopted tables' bridge (on any worker). An
    /// output to a port this worker does not poll is then a cross-worker output
    /// ([`DropReason::RemotePort`]), else a port that is gone ([`DropReason::NoSuchPort`]).
    fn port_exists(&mut self, ofport: u32) -> bool {
        let _ = ofport;
        true
    }

    /// The Geneve option map (`tun_metadata` mappings) of the adopted tables; decapsulation
    /// reads it. Called after [`refresh`](Self::refresh) returned a new version.
    fn tlv_map(&mut self) -> xvs_flowtable::tlv::TlvMap {
        xvs_flowtable::tlv::TlvMap::default()
    }

    /// After a [`Verdict::Uncached`] translation: a non-zero token when it asked for
    /// packet-ins, which [`packet_in`](Self::packet_in) then delivers with the packet.
    fn controller_token(&mut self) -> u32 {
        0
    }

    /// Delivers the packet-ins of the translation `token` for `frame` (slow path; the
    /// translator copies what it needs, never blocking). `survived`: how many of the
    /// translation's leading datapath actions the packet got through before a meter among
    /// them dropped it (`usize::MAX`: no meter did). A packet-in requested after more actions
    /// than that is not sent: in OVS the datapath meter ahead of the `userspace()` action
    /// stops the packet (Antrea's `meter:256,controller(...)`).
    fn packet_in(&mut self, token: u32, frame: &[u8], survived: usize) {
        let _ = (token, frame, survived);
    }
}

/// A datapath action with its output port resolved to this worker's port index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecAction {
    /// A header rewrite or VLAN push/pop.
    Header(DpAction),
    /// Transmit on the worker's port at this index.
    Output(u16),
    /// An output to a port another worker polls: handed to that worker
    /// ([`crate::handoff`]).
    RemoteOutput {
        /// The polling worker's index.
        worker: u16,
        /// The port's OpenFlow number.
        ofport: u32,
    },
    /// Run the packet through the connection tracker.
    Ct(CtAction),
    /// Forget the packet's connection-tracking metadata.
    CtClear,
    /// Look the packet (or, when other actions follow, a copy) up again with this
    /// `recirc_id` and its `ct_*` metadata.
    Recirc(u32),
    /// Run the meter in this slot of the stage's meter table ([`MeterCx`]).
    Meter(u16),
    /// A meter that already dropped this packet: it ran ahead of the actions, to decide
    /// the packet-ins that follow it ([`OpenFlowStage::packet_in`]). Ends the packet.
    MeterDropped,
    // ---- Tunnels ----
    /// Encapsulate with the worker's outer-header template `template` and transmit on the
    /// worker's port at index `out` (the uplink).
    Encap {
        /// Index into the worker's template table.
        template: u32,
        /// The uplink's port index.
        out: u16,
    },
    /// An output that cannot happen for any packet of the megaflow (no route to the tunnel
    /// destination, ...): counted under this reason when executed.
    Discard(DropReason),
}

/// What executing [`ExecAction::Meter`] needs: the stage's meters (slots) and the batch's
/// time.
#[derive(Clone, Copy, Debug)]
pub struct MeterCx<'a> {
    /// Meter slots of the current table version.
    pub meters: &'a [Arc<MeterState>],
    /// The translator's clock at the start of the batch (ns).
    pub now_ns: u64,
}

/// The cached actions of one megaflow.
pub type Actions = Box<[ExecAction]>;

/// How an action list runs on a packet, worked out once (when a megaflow is installed) so that
/// the per-packet loop does not walk the list to find out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Only `Output(port)`: each packet is appended, untouched, to the port's pending batch.
    Output(u16),
    /// Field rewrites (no VLAN push/pop, no meter) followed by one `Output(port)`, last.
    RewriteOutput(u16),
    /// Nothing takes the packet and there is no `ct()`: it is dropped for this reason.
    Drop(DropReason),
    /// Anything else: the full executor, packet by packet.
    General,
}

/// What the executor needs to know about an action list before running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The fast path this list allows, if any.
    pub shape: Shape,
    /// Actions that take the packet or a copy of it (outputs, encapsulations, recirculations);
    /// the last of them takes the packet itself.
    pub consumers: u32,
    /// A `ct()` is among the actions (its side effects count even without an output).
    pub has_ct: bool,
    /// The first action is `ct()` (its tracker input can be parsed ahead for the whole burst).
    pub starts_with_ct: bool,
}

impl Plan {
    /// The plan of `actions`.
    pub fn of(actions: &[ExecAction]) -> Self {
        let mut consumers = 0u32;
        let mut has_ct = false;
        for a in actions {
            match a {
                ExecAction::Output(_)
                | ExecAction::RemoteOutput { .. }
                | ExecAction::Encap { .. }
                | ExecAction::Recirc(_) => consumers += 1,
                ExecAction::Ct(_) => has_ct = true,
                _ => {}
            }
        }
        let shape = match actions.split_last() {
            _ if consumers == 0 && !has_ct => Shape::Drop(no_output_reason(actions)),
            Some((ExecAction::Output(port), [])) => Shape::Output(*port),
            Some((ExecAction::Output(port), rest)) if rest.iter().all(is_plain_rewrite) => {
                Shape::RewriteOutput(*port)
            }
            _ => Shape::General,
        };
        Self {
            shape,
            consumers,
            has_ct,
            starts_with_ct: matches!(actions.first(), Some(ExecAction::Ct(_))),
        }
    }
}

/// A rewrite of header bytes in place: the frame keeps its length and start.
fn is_plain_rewrite(a: &ExecAction) -> bool {
    match a {
        ExecAction::Header(h) => !matches!(
            h,
            DpAction::PushVlan { .. } | DpAction::PopVlan | DpAction::Meter(_)
        ),
        _ => false,
    }
}

/// Why a packet whose actions output nothing is dropped.
pub fn no_output_reason(actions: &[ExecAction]) -> DropReason {
    actions
        .iter()
        .find_map(|a| match a {
            ExecAction::RemoteOutput { .. } => Some(DropReason::RemotePort),
            ExecAction::Discard(r) => Some(*r),
            ExecAction::MeterDropped => Some(DropReason::MeterDrop),
            _ => None,
        })
        .unwrap_or(DropReason::ActionDrop)
}

/// A cached megaflow: its actions, the rules its hits are credited to, and the hits not yet
/// credited. Plain integers owned by the worker: a hit costs no atomic operation.
#[derive(Debug)]
pub struct CachedFlow {
    actions: Actions,
    plan: Plan,
    attribution: Option<Attribution>,
    packets: u64,
    bytes: u64,
    /// TCP flags of the packets counted (a FIN or RST starts learned flows' fin timeouts).
    tcp_flags: u16,
    /// Listed in the stage's dirty list since the last credit.
    dirty: bool,
    /// The datapath actions as translated (for `dpctl/dump-flows`; built on the miss path).
    dp_actions: Box<[DpAction]>,
    /// Packets and bytes credited so far (`packets`/`bytes` hold the uncredited rest).
    credited_packets: u64,
    credited_bytes: u64,
    /// The stage clock (ns) at the last credit that carried hits; `None`: never hit.
    used_ns: Option<u64>,
}

/// Misses translated per batch whatever they cost. Beyond it, misses are still translated
/// while the batch's translations have taken less than [`MISS_BUDGET_NS`]; the rest are
/// dropped and counted (`miss_budget`), so a flood of new flows cannot stall the worker's
/// ports, while a burst of new connections through cheap translations is not dropped.
pub const MISS_BUDGET: usize = 64;

/// Translation time per batch (the translator's clock, [`Translator::now_ns`]) after which
/// misses beyond [`MISS_BUDGET`] are dropped. 500 µs: about 100-300 translations of the
/// agent's 10k-rule pipeline, a few batches' worth of forwarding time.
pub const MISS_BUDGET_NS: u64 = 500_000;

/// State of the OpenFlow stage in one worker.
pub struct OpenFlowStage {
    translator: Box<dyn Translator>,
    cache: DatapathCache<CachedFlow>,
    /// Megaflows hit since the last credit (each once; capacity = the megaflow capacity, so a
    /// push never allocates).
    dirty: Vec<MegaflowId>,
    /// For packet `i` of the current burst translated with [`Verdict::Uncached`], its rules.
    uncached_attribution: [Option<Attribution>; BATCH],
    /// Bit `i`: `uncached_attribution[i]` belongs to the current burst.
    uncached_credit: u64,
    conntrack: Arc<Conntrack>,
    /// Origin of the tracker's clock (shared with whoever sweeps the tracker).
    epoch: Instant,
    /// Nanoseconds since `epoch`, read once per batch.
    now: u64,
    scratch: Vec<DpAction>,
    /// Meters the cached actions of this version refer to by slot ([`ExecAction::Meter`]);
    /// emptied with the caches on a version change.
    meters: Vec<Arc<MeterState>>,
    /// The translator's clock at the start of the batch.
    now_ns: u64,
    version: u64,
    misses_this_batch: usize,
    /// Time the translations of this batch took (translator clock, ns).
    translate_ns_this_batch: u64,
    /// Why packet `i` of the current burst has no megaflow.
    miss_reasons: [DropReason; BATCH],
    /// Actions of packets of the current burst translated with [`Verdict::Uncached`].
    uncached: Vec<ExecAction>,
    /// For packet `i` of the current burst, its range in `uncached` (start, end).
    uncached_range: [(u32, u32); BATCH],
    /// For packet `i` of the current burst, the translator's packet-in token (0: none).
    packet_in_token: [u32; BATCH],
    /// `uncached_range` or `packet_in_token` holds entries (reset at the next burst only
    /// then: most bursts have no uncached packet).
    uncached_written: bool,
    /// Tunnel ports, when configured.
    tunnel: Option<TunnelStage>,
    /// For packet `i` of the current burst: the tunnel next hop it must wait for.
    parked: [Option<(IpAddr, u32)>; BATCH],
    any_parked: bool,
    /// Which worker polls which port, when the worker can hand packets to others.
    directory: Option<Arc<PortDirectory>>,
}

impl std::fmt::Debug for OpenFlowStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFlowStage")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl OpenFlowStage {
    /// A stage with caches sized by `config`.
    pub fn new(translator: Box<dyn Translator>, config: CacheConfig) -> Self {
        Self {
            translator,
            conntrack: Arc::new(Conntrack::new(CtConfig::default())),
            epoch: Instant::now(),
            now: 0,
            cache: DatapathCache::new(config),
            dirty: Vec::with_capacity(config.megaflow.capacity as usize),
            uncached_attribution: std::array::from_fn(|_| None),
            uncached_credit: 0,
            scratch: Vec::with_capacity(64),
            meters: Vec::with_capacity(64),
            now_ns: 0,
            version: 0,
            misses_this_batch: 0,
            translate_ns_this_batch: 0,
            miss_reasons: [DropReason::TranslationFailed; BATCH],
            uncached: Vec::with_capacity(256),
            uncached_range: [(0, 0); BATCH],
            packet_in_token: [0; BATCH],
            uncached_written: false,
            tunnel: None,
            parked: [None; BATCH],
            any_parked: false,
            directory: None,
        }
    }

    /// Uses `conntrack` (shared by every worker) with the clock `now = epoch.elapsed()`
    /// instead of the stage's private tracker.
    pub fn with_conntrack(mut self, conntrack: Arc<Conntrack>, epoch: Instant) -> Self {
        self.conntrack = conntrack;
        self.epoch = epoch;
        self
    }

    /// The connection tracker.
    pub fn conntrack(&self) -> &Arc<Conntrack> {
        &self.conntrack
    }

    /// The tracker and its clock (nanoseconds since the epoch) for the current batch.
    #[inline]
    pub(crate) fn tracker(&self) -> (&Conntrack, u64) {
        (&self.conntrack, self.now)
    }

    /// Adds tunnel ports (the translator must know their numbers too).
    pub fn with_tunnels(mut self, tunnel: TunnelStage) -> Self {
        self.tunnel = Some(tunnel);
        self
    }

    /// The tunnel stage, if any.
    pub fn tunnel(&self) -> Option<&TunnelStage> {
        self.tunnel.as_ref()
    }

    /// The tunnel stage, if any, writable.
    pub fn tunnel_mut(&mut self) -> Option<&mut TunnelStage> {
        self.tunnel.as_mut()
    }

    /// Starts a batch at `now` (the worker's clock reading for the iteration): adopts the
    /// newest tables (and underlay), flushing the caches if either changed.
    pub fn begin_batch(&mut self, stats: &mut WorkerSnapshot, now: Instant) {
        // The tracker's clock for every ct() of the batch.
        self.now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.version = self.translator.refresh();
        if let Some(t) = self.tunnel.as_mut() {
            // Underlay changes flush the caches like table changes do: cached tunnel actions
            // hold templates built from the old addressing. (Table versions stay far below
            // 2^40.)
            self.version ^= t.begin_batch() << 40;
        }
        if self.version != self.cache.version() {
            // The entries die with the flush: hand their hits to the rules first.
            self.credit_stats();
        }
        if self.cache.begin_batch(self.version) {
            stats.cache_flushes += 1;
            self.meters.clear();
            if let Some(t) = self.tunnel.as_mut() {
                t.caches_flushed();
                t.set_tlv(self.translator.tlv_map());
            }
        }
        self.now_ns = self.translator.now_ns_at(now);
        self.misses_this_batch = 0;
        self.translate_ns_this_batch = 0;
    }

    /// Lets outputs to other workers' ports resolve to them (see [`crate::handoff`]).
    pub fn set_port_directory(&mut self, directory: Arc<PortDirectory>) {
        self.directory = Some(directory);
    }

    /// The worker's port list changed (a port added or removed at run time, here or on
    /// another worker): cached actions hold port indices and owners, and misses translated
    /// before may have resolved an output to a port that now exists or no longer does, so
    /// both cache tiers go now (hits credited first).
    pub fn ports_changed(&mut self, stats: &mut WorkerSnapshot) {
        self.credit_stats();
        self.cache.flush();
        stats.cache_flushes += 1;
        self.meters.clear();
        if let Some(t) = self.tunnel.as_mut() {
            t.caches_flushed();
        }
    }

    /// Looks up `keys`, translating and installing misses (within the budget).
    pub fn classify(
        &mut self,
        keys: &[FlowKey],
        ids: &mut [Option<MegaflowId>],
        port_of: &dyn Fn(u32) -> Option<u16>,
        stats: &mut WorkerSnapshot,
    ) {
        if std::mem::take(&mut self.uncached_written) {
            self.uncached.clear();
            self.uncached_range = [(0, 0); BATCH];
            self.packet_in_token = [0; BATCH];
        }
        self.uncached_credit = 0;
        if self.any_parked {
            self.parked = [None; BATCH];
            self.any_parked = false;
        }
        let before = *self.cache.stats();
        let mf_before = self.cache.megaflow_stats().subtable_lookups_on_hit;
        self.cache.lookup_batch(keys, ids);
        let after = *self.cache.stats();
        stats.exact_hits += after.exact_hits - before.exact_hits;
        stats.megaflow_hits += after.megaflow_hits - before.megaflow_hits;
        stats.exact_skipped += after.exact_skipped - before.exact_skipped;
        stats.repeat_hits += after.repeat_hits - before.repeat_hits;
        stats.subtable_lookups += self.cache.megaflow_stats().subtable_lookups_on_hit - mf_before;
        for (i, (key, id)) in keys.iter().zip(ids.iter_mut()).enumerate() {
            if id.is_some() {
                continue;
            }
            // An earlier miss of this batch may have installed a megaflow covering this key
            // (the packets of one new flow arrive together): look again before translating.
            if self.misses_this_batch > 0 {
                if let Some(found) = self.cache.megaflow_mut().lookup(key) {
                    *id = Some(found);
                    stats.megaflow_hits += 1;
                    continue;
                }
            }
            if self.misses_this_batch >= MISS_BUDGET
                && self.translate_ns_this_batch >= MISS_BUDGET_NS
            {
                stats.upcalls_failed += 1;
                if let Some(r) = self.miss_reasons.get_mut(i) {
                    *r = DropReason::MissBudget;
                }
                continue;
            }
            if let Some(r) = self.miss_reasons.get_mut(i) {
                *r = DropReason::TranslationFailed;
            }
            self.misses_this_batch += 1;
            let started = self.translator.now_ns();
            *id = self.upcall(i, key, port_of);
            self.translate_ns_this_batch += self.translator.now_ns().saturating_sub(started);
            let translated = id.is_some()
                || self.uncached_actions(i).is_some()
                || self.parked(i).is_some()
                || self.miss_reason(i) == DropReason::ActionDrop;
            if translated {
                stats.upcalls_ok += 1;
            } else {
                stats.upcalls_failed += 1;
            }
        }
    }

    fn upcall(
        &mut self,
        i: usize,
        key: &FlowKey,
        port_of: &dyn Fn(u32) -> Option<u16>,
    ) -> Option<MegaflowId> {
        self.scratch.clear();
        let mut mask = FlowKey::ZERO;
        let verdict = self.translator.translate(key, &mut self.scratch, &mut mask);
        if verdict == Verdict::Drop {
            return None;
        }
        // Fields every megaflow matches exactly (as OVS's datapath does).
        mask.set(layout::IN_PORT, layout::IN_PORT.max_value());
        mask.set(layout::RECIRC_ID, layout::RECIRC_ID.max_value());
        mask.set(layout::ETH_TYPE, layout::ETH_TYPE.max_value());
        // Meters first (the closure below cannot borrow the stage mutably).
        for a in &self.scratch {
            if let DpAction::Meter(id) = *a {
                if !self.meters.iter().any(|m| m.config().meter_id == id) {
                    if let Some(m) = self.translator.meter(id) {
                        self.meters.push(m);
                    }
                }
            }
        }
        let meters = &self.meters;
        let mut pending = None;
        let tunnel = &mut self.tunnel;
        let translator = &mut self.translator;
        let directory = self.directory.as_deref();
        let mut resolve = |a: &DpAction| match *a {
            DpAction::Output(p) => match port_of(p) {
                Some(idx) => ExecAction::Output(idx),
                None => match directory.and_then(|d| d.owner(p)) {
                    Some(w) => ExecAction::RemoteOutput {
                        worker: u16::try_from(w).unwrap_or(u16::MAX),
                        ofport: p,
                    },
                    None if translator.port_exists(p) => {
                        ExecAction::Discard(DropReason::RemotePort)
                    }
                    None => ExecAction::Discard(DropReason::NoSuchPort),
                },
            },
            DpAction::Meter(id) => meters
                .iter()
                .position(|m| m.config().meter_id == id)
                .and_then(|i| u16::try_from(i).ok())
                .map_or(ExecAction::Header(DpAction::Meter(id)), ExecAction::Meter),
            DpAction::Ct(ref c) => ExecAction::Ct(crate::ct::ct_action(c)),
            DpAction::CtClear => ExecAction::CtClear,
            DpAction::Recirc(id) => ExecAction::Recirc(id),
            DpAction::TunnelPush(push) => {
                let Some(t) = tunnel.as_mut() else {
                    return ExecAction::Discard(DropReason::TunnelEncap);
                };
                let Some(out) = port_of(t.uplink_ofport()) else {
                    return ExecAction::Discard(DropReason::RemotePort);
                };
                match t.prepare(&push) {
                    Ok(template) => ExecAction::Encap { template, out },
                    Err(Prepare::Drop(r)) => ExecAction::Discard(r),
                    Err(Prepare::Pending { ip, oif }) => {
                        pending = Some((ip, oif));
                        ExecAction::Discard(DropReason::TunnelNeighQueueFull)
                    }
                }
            }
            other => ExecAction::Header(other),
        };
        let resolved: Actions = self.scratch.iter().map(&mut resolve).collect();
        if let Some(hop) = pending {
            // The packet waits for the next hop's MAC; the translation is redone when it runs
            // again, so nothing is cached now.
            if let Some(slot) = self.parked.get_mut(i) {
                *slot = Some(hop);
                self.any_parked = true;
            }
            return None;
        }
        let attribution = self.translator.attribution();
        if verdict == Verdict::Uncached {
            self.uncached_written = true;
            if let Some(t) = self.packet_in_token.get_mut(i) {
                *t = self.translator.controller_token();
            }
            if let Some(a) = self.uncached_attribution.get_mut(i) {
                *a = attribution;
                self.uncached_credit |= 1u64.checked_shl(i as u32).unwrap_or(0);
            }
            if resolved.is_empty() {
                // Translated: the packet's only effect is its packet-in (or learn), then it
                // ends as any flow without output does.
                if let Some(r) = self.miss_reasons.get_mut(i) {
                    *r = DropReason::ActionDrop;
                }
            }
            let start = self.uncached.len() as u32;
            self.uncached.extend(resolved.iter().copied());
            if let Some(r) = self.uncached_range.get_mut(i) {
                *r = (start, self.uncached.len() as u32);
            }
            return None;
        }
        let flow = CachedFlow {
            plan: Plan::of(&resolved),
            actions: resolved,
            attribution,
            packets: 0,
            bytes: 0,
            tcp_flags: 0,
            dirty: false,
            dp_actions: self.scratch.as_slice().into(),
            credited_packets: 0,
            credited_bytes: 0,
            used_ns: None,
        };
        self.cache.insert(key, &mask, flow, self.version).ok()
    }

    /// The actions of packet `i` of the last classified burst (its megaflow `id`, or its
    /// uncached translation), counting the packet (`bytes` long, with `tcp_flags`) for its
    /// rules' statistics.
    #[inline]
    pub fn packet_actions(
        &mut self,
        i: usize,
        id: Option<MegaflowId>,
        bytes: u32,
        tcp_flags: u16,
    ) -> Option<(&[ExecAction], MeterCx<'_>, Option<&TunnelStage>)> {
        let actions = match id {
            Some(id) => {
                let f = self.cache.actions_mut(id)?;
                f.packets += 1;
                f.bytes += u64::from(bytes);
                f.tcp_flags |= tcp_flags;
                if !f.dirty && self.dirty.len() < self.dirty.capacity() {
                    f.dirty = true;
                    self.dirty.push(id);
                }
                &f.actions[..]
            }
            None => {
                self.account_uncached(i, bytes, tcp_flags);
                let (s, e) = *self.uncached_range.get(i)?;
                if e <= s {
                    return None;
                }
                self.uncached.get(s as usize..e as usize)?
            }
        };
        let cx = MeterCx {
            meters: &self.meters,
            now_ns: self.now_ns,
        };
        Some((actions, cx, self.tunnel.as_ref()))
    }

    /// The actions and plan of megaflow `id` for a run of packets of the last classified burst
    /// that all hit it, counted for its rules' statistics once for the whole run (`packets`
    /// packets, `bytes` bytes, the OR of their `tcp_flags`). `None` when the entry is gone.
    #[inline]
    pub fn run_actions(
        &mut self,
        id: MegaflowId,
        packets: u64,
        bytes: u64,
        tcp_flags: u16,
    ) -> Option<(&[ExecAction], Plan, MeterCx<'_>, Option<&TunnelStage>)> {
        let f = self.cache.actions_mut(id)?;
        f.packets += packets;
        f.bytes += bytes;
        f.tcp_flags |= tcp_flags;
        if !f.dirty && self.dirty.len() < self.dirty.capacity() {
            f.dirty = true;
            self.dirty.push(id);
        }
        let cx = MeterCx {
            meters: &self.meters,
            now_ns: self.now_ns,
        };
        Some((&f.actions[..], f.plan, cx, self.tunnel.as_ref()))
    }

    /// The plan of a megaflow found by [`classify`](Self::classify).
    #[inline]
    pub fn plan(&self, id: MegaflowId) -> Option<Plan> {
        self.cache.actions(id).map(|f| f.plan)
    }

    /// Credits packet `i` of the last burst, translated with [`Verdict::Uncached`], to its
    /// rules right away (slow path: it was translated for itself).
    pub fn account_uncached(&mut self, i: usize, bytes: u32, tcp_flags: u16) {
        // Also a translation without actions (e.g. a learn-only flow): its rules matched.
        let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
        if self.uncached_credit & bit == 0 {
            return;
        }
        self.uncached_credit &= !bit;
        let Some(a) = self.uncached_attribution.get_mut(i).and_then(Option::take) else {
            return;
        };
        let now = self.translator.now_ns() / 1_000_000;
        a.credit(1, u64::from(bytes), now);
        a.credit_tcp_flags(tcp_flags, now);
    }

    /// Hands the hits counted since the last call to the rules of their megaflows (as OVS's
    /// revalidators push datapath flow statistics to rules). The worker calls it periodically
    /// and before every cache flush; the cost is proportional to the megaflows hit since.
    pub fn credit_stats(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let now = self.translator.now_ns() / 1_000_000;
        let stage_now = self.now;
        for id in self.dirty.drain(..) {
            if let Some(f) = self.cache.actions_mut(id) {
                if let Some(a) = &f.attribution {
                    a.credit(f.packets, f.bytes, now);
                    a.credit_tcp_flags(f.tcp_flags, now);
                }
                if f.packets > 0 {
                    f.used_ns = Some(stage_now);
                }
                f.credited_packets += f.packets;
                f.credited_bytes += f.bytes;
                f.packets = 0;
                f.bytes = 0;
                f.tcp_flags = 0;
                f.dirty = false;
            }
        }
    }

    /// Live megaflows and the subtables (distinct masks) holding them.
    pub fn megaflow_census(&self) -> (usize, usize) {
        let m = self.cache.megaflow();
        (m.len(), m.n_subtables())
    }

    /// The next hop packet `i` of the last classified burst waits for, if it must be parked.
    #[inline]
    pub fn parked(&self, i: usize) -> Option<(IpAddr, u32)> {
        if !self.any_parked {
            return None;
        }
        self.parked.get(i).copied().flatten()
    }

    /// The actions of packet `i` of the last classified burst when it was translated with
    /// [`Verdict::Uncached`].
    #[inline]
    pub fn uncached_actions(&self, i: usize) -> Option<&[ExecAction]> {
        let (s, e) = *self.uncached_range.get(i)?;
        (e > s)
            .then(|| self.uncached.get(s as usize..e as usize))
            .flatten()
    }

    /// Hands packet `i` of the last classified burst (`frame`, before its actions run) to the
    /// translator when its translation asked for packet-ins.
    ///
    /// The packet's meters run here, ahead of its other actions, so that a packet-in
    /// requested after a meter is sent only if that meter let the packet through. Each meter
    /// action is then rewritten in the packet's own (uncached) action list to its outcome, a
    /// no-op or [`ExecAction::MeterDropped`], so that it is not run twice.
    #[inline]
    pub fn packet_in(&mut self, i: usize, frame: &[u8]) {
        let Some(t) = self.packet_in_token.get_mut(i) else {
            return;
        };
        if *t == 0 {
            return;
        }
        let token = std::mem::take(t);
        let (s, e) = self.uncached_range.get(i).copied().unwrap_or((0, 0));
        let bytes = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let mut survived = usize::MAX;
        if let Some(actions) = self.uncached.get_mut(s as usize..e as usize) {
            for (pos, a) in actions.iter_mut().enumerate() {
                let ExecAction::Meter(slot) = *a else {
                    continue;
                };
                let Some(m) = self.meters.get(usize::from(slot)) else {
                    continue;
                };
                if m.pass(self.now_ns, bytes) {
                    // Passed: execution skips it (an unresolved meter is a no-op).
                    *a = ExecAction::Header(DpAction::Meter(m.config().meter_id));
                } else {
                    *a = ExecAction::MeterDropped;
                    survived = pos;
                    break;
                }
            }
        }
        self.translator.packet_in(token, frame, survived);
    }

    /// Why packet `i` of the last classified burst has no megaflow.
    #[inline]
    pub fn miss_reason(&self, i: usize) -> DropReason {
        self.miss_reasons
            .get(i)
            .copied()
            .unwrap_or(DropReason::TranslationFailed)
    }

    /// Appends up to `max` cached megaflows, from entry index `from` on, to `out`
    /// (control-requested slow path: it allocates); returns the index to resume from, or
    /// `None` when the cache is done. Hits not yet credited count as used at the current
    /// batch.
    pub fn dump_megaflows(
        &self,
        from: u32,
        max: usize,
        out: &mut Vec<crate::MegaflowDump>,
    ) -> Option<u32> {
        let mut n = 0;
        for m in self.cache.megaflow().iter() {
            if m.id.index() < from {
                continue;
            }
            if n == max {
                return Some(m.id.index());
            }
            n += 1;
            let f = m.actions;
            out.push(crate::MegaflowDump {
                key: *m.key,
                mask: *m.mask,
                actions: f.dp_actions.clone(),
                packets: f.credited_packets + f.packets,
                bytes: f.credited_bytes + f.bytes,
                used_ns: if f.packets > 0 {
                    Some(self.now)
                } else {
                    f.used_ns
                },
            });
        }
        None
    }

    /// The stage's clock at the current batch (ns since its epoch).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The actions of a megaflow found by [`classify`](Self::classify).
    #[inline]
    pub fn actions(&self, id: MegaflowId) -> Option<&Actions> {
        self.cache.actions(id).map(|f| &f.actions)
    }
}

/// Header context for rewrites of a packet with `key`/`info`.
#[inline]
pub fn headers(key: &FlowKey, info: ExtractInfo) -> Headers {
    Headers {
        info,
        eth_type: key.get(layout::ETH_TYPE) as u16,
        nw_proto: key.get(layout::NW_PROTO) as u8,
    }
}

/// Counts a dropped packet.
#[inline]
pub fn count_drop(stats: &mut WorkerSnapshot, reason: DropReason) {
    stats.drops[reason as usize] += 1;
}

pub use rewrite::{pop_vlan, push_vlan};
