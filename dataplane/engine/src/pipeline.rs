//! The OpenFlow forwarding stage: flow-key extraction, the per-worker caches, translation of
//! misses through the injected [`Translator`], and execution of datapath actions.

use crate::counters::{DropReason, WorkerSnapshot};
use crate::rewrite::{self, Headers};
use crate::tunnel::{Prepare, TunnelStage};
use crate::worker::BATCH;
use std::net::IpAddr;
use xvs_classifier::{CacheConfig, DatapathCache, MegaflowId};
use xvs_flowtable::datapath::DpAction;
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
}

/// A datapath action with its output port resolved to this worker's port index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecAction {
    /// A header rewrite or VLAN push/pop.
    Header(DpAction),
    /// Transmit on the worker's port at this index.
    Output(u16),
    /// An output to a port this worker does not poll.
    RemoteOutput,
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

/// The cached actions of one megaflow.
pub type Actions = Box<[ExecAction]>;

/// Misses translated per batch at most; the rest are dropped and counted, so a flood of new
/// flows cannot stall the worker's ports.
pub const MISS_BUDGET: usize = 64;

/// State of the OpenFlow stage in one worker.
pub struct OpenFlowStage {
    translator: Box<dyn Translator>,
    cache: DatapathCache<Actions>,
    scratch: Vec<DpAction>,
    version: u64,
    misses_this_batch: usize,
    /// Why packet `i` of the current burst has no megaflow.
    miss_reasons: [DropReason; BATCH],
    /// Actions of packets of the current burst translated with [`Verdict::Uncached`].
    uncached: Vec<ExecAction>,
    /// For packet `i` of the current burst, its range in `uncached` (start, end).
    uncached_range: [(u32, u32); BATCH],
    /// Tunnel ports, when configured.
    tunnel: Option<TunnelStage>,
    /// For packet `i` of the current burst: the tunnel next hop it must wait for.
    parked: [Option<(IpAddr, u32)>; BATCH],
    any_parked: bool,
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
            cache: DatapathCache::new(config),
            scratch: Vec::with_capacity(64),
            version: 0,
            misses_this_batch: 0,
            miss_reasons: [DropReason::TranslationFailed; BATCH],
            uncached: Vec::with_capacity(256),
            uncached_range: [(0, 0); BATCH],
            tunnel: None,
            parked: [None; BATCH],
            any_parked: false,
        }
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

    /// Starts a batch: adopts the newest tables (and underlay), flushing the caches if either
    /// changed.
    pub fn begin_batch(&mut self, stats: &mut WorkerSnapshot) {
        self.version = self.translator.refresh();
        if let Some(t) = self.tunnel.as_mut() {
            // Underlay changes flush the caches like table changes do: cached tunnel actions
            // hold templates built from the old addressing. (Table versions stay far below
            // 2^40.)
            self.version ^= t.begin_batch() << 40;
        }
        if self.cache.begin_batch(self.version) {
            stats.cache_flushes += 1;
            if let Some(t) = self.tunnel.as_mut() {
                t.caches_flushed();
            }
        }
        self.misses_this_batch = 0;
    }

    /// Looks up `keys`, translating and installing misses (within the budget).
    pub fn classify(
        &mut self,
        keys: &[FlowKey],
        ids: &mut [Option<MegaflowId>],
        port_of: &dyn Fn(u32) -> Option<u16>,
        stats: &mut WorkerSnapshot,
    ) {
        self.uncached.clear();
        self.uncached_range = [(0, 0); BATCH];
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
            if self.misses_this_batch >= MISS_BUDGET {
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
            *id = self.upcall(i, key, port_of);
            if id.is_some() || self.uncached_actions(i).is_some() || self.parked(i).is_some() {
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
        let mut pending = None;
        let tunnel = &mut self.tunnel;
        let mut resolve = |a: &DpAction| match *a {
            DpAction::Output(p) => port_of(p).map_or(ExecAction::RemoteOutput, ExecAction::Output),
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
        if verdict == Verdict::Uncached {
            let start = self.uncached.len() as u32;
            self.uncached.extend(resolved.iter().copied());
            if let Some(r) = self.uncached_range.get_mut(i) {
                *r = (start, self.uncached.len() as u32);
            }
            return None;
        }
        self.cache.insert(key, &mask, resolved, self.version).ok()
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

    /// Why packet `i` of the last classified burst has no megaflow.
    #[inline]
    pub fn miss_reason(&self, i: usize) -> DropReason {
        self.miss_reasons
            .get(i)
            .copied()
            .unwrap_or(DropReason::TranslationFailed)
    }

    /// The actions of a megaflow found by [`classify`](Self::classify).
    #[inline]
    pub fn actions(&self, id: MegaflowId) -> Option<&Actions> {
        self.cache.actions(id)
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
