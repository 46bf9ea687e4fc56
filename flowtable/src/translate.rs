//! Translation of a packet's flow key through the OpenFlow pipeline into datapath actions and a
//! megaflow mask (OVS's `xlate_actions`), sans IO.
//!
//! # What it does
//! Starting at table 0, each table is searched with the classifier (which ORs every key bit it
//! examined into the mask), and the winning flow's actions run on a working copy of the key:
//! `set_field`/`load`, `move`, `goto_table`, `resubmit`, `output` (port, `IN_PORT`, register),
//! `dec_ttl`, `mod_nw_ttl`, `push_vlan`/`pop_vlan`, `group` (all, select, indirect, ff), `meter`,
//! `learn`, `controller`, `ct`, `ct_clear`, `note`. A table miss drops (OpenFlow 1.3+).
//! Before each output (and each `ct`), the packet fields that differ between the working key and
//! the packet as already modified become `DpAction::Set*` (OVS `commit_odp_actions`), then
//! `Output`.
//!
//! # Conntrack and recirculation
//! `ct(...)` becomes `DpAction::Ct` (zone and `exec(...)` resolved into immediates); with
//! `table=T` the translation is frozen under a recirculation id ([`crate::recirc`]) and
//! `DpAction::Recirc(id)` follows; the actions after it keep being translated (the datapath
//! forks), with the `ct_*` fields cleared. A key with `recirc_id != 0` resumes from its frozen
//! state, in the scratch's recirculation table.
//!
//! # The mask (megaflow correctness)
//! The mask is the union of: every lookup's wildcards; the source bits of every `move`,
//! `output:REG`, `learn` and group hash; `nw_ttl` for `dec_ttl`; every field a prerequisite
//! check read; the whole of every packet field an action wrote before an output (whether a
//! `Set*` is emitted depends on its original value); and always `in_port`, `recirc_id`,
//! `eth_type`, the VLAN-present bit and, for IP, `nw_frag`. Invariant: every key that agrees
//! with the translated key on the mask's 1-bits gets the same actions (property-tested in
//! `tests/translate_prop.rs`). Bits a lookup examined after an action overwrote them with a
//! constant are kept (harmless over-specification, as in OVS).
//!
//! # Limits and outcomes
//! Resubmit/group nesting is limited to [`MAX_DEPTH`] (64), table lookups to
//! [`MAX_LOOKUPS`] (4096), executed OpenFlow actions to [`MAX_OF_ACTIONS`], datapath actions to
//! [`MAX_DP_ACTIONS`]. Exceeding one is a *fatal* [`DropReason`]: every action is discarded and
//! the packet dropped; the mask stays valid, so the drop can be cached. Also fatal: `ct(alg=..)`
//! and `resubmit(..,ct)` ([`Unsupported::Ct`]), a second VLAN tag,
//! rewrites of fields the datapath cannot set, and a group or meter missing from the snapshot
//! (cannot happen through [`Pipeline`](crate::pipeline::Pipeline), which refuses such flows and
//! deletes flows with their group/meter). `dec_ttl` on TTL ≤ 1 stops the current action list
//! (as OVS, which would also send a packet-in with reason `invalid_ttl` when a controller is
//! connected) and is reported as [`DropReason::TtlExpired`]; earlier outputs stay.
//!
//! # Side effects
//! [`Translation::rules`] lists every flow that matched (credit their counters with
//! [`Translation::credit`]); [`Translation::learned`] the flow mods `learn` produced (the control
//! side applies them; the packet's own actions are unaffected); [`Translation::controller`] the
//! packet-ins requested; [`Translation::meters`] the meters the packet passed (each is also a
//! [`DpAction::Meter`] that the datapath runs per packet, see [`crate::metering`]). A translation with learn or controller side
//! effects is [`slow_path`](Translation::slow_path): the engine must not cache it, as every
//! packet needs the side effect.
//!
//! # Tracing
//! [`TranslateScratch::set_trace`] makes translations record [`TraceEvent`]s (each lookup with
//! its winning flow and nesting depth, groups, outputs, drops); [`format_trace`] prints them in
//! the spirit of `ovs-appctl ofproto/trace`. Off by default and free when off.

use std::sync::Arc;

use xvs_classifier::LookupScratch;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

use crate::action::{Action, Controller, Learn, LearnSpec, PacketInReason};
use crate::datapath::{DpAction, TunnelPush};
use crate::field::{ones, read_loc, write_loc, FieldId, Loc, Prereq, Subfield};
use crate::flow::{ethertype, ipproto, Flow, FlowMod, FlowModCommand, Match};
use crate::group::GroupType;
use crate::names::Port;
use crate::pipeline::{FlowEntry, FlowRule, PipelineReader, PipelineSnapshot};
use crate::recirc::{FrozenState, RecircTable, DEFAULT_RECIRC_CAPACITY};

/// Deepest nesting of `resubmit` and `group` (OVS `MAX_DEPTH`).
pub const MAX_DEPTH: usize = 64;
/// Most table lookups in one translation (OVS `MAX_RESUBMITS`).
pub const MAX_LOOKUPS: usize = 4096;
/// Most OpenFlow actions executed in one translation.
pub const MAX_OF_ACTIONS: usize = 65_536;
/// Most datapath actions one translation may produce.
pub const MAX_DP_ACTIONS: usize = 1024;

/// What the datapath cannot do yet; translating it drops the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unsupported {
    /// `ct(alg=...)` (FTP/TFTP helpers) and `resubmit(..,ct)`.
    Ct,
    /// `output:NORMAL` (no longer produced: NORMAL is translated, see [`crate::l2`]).
    Normal,
    /// `output:FLOOD` / `output:ALL` (no longer produced).
    Flood,
    /// `output:TABLE` in a flow (only meaningful in packet-outs).
    Table,
    /// `push_vlan` on a packet that already has a tag (QinQ).
    DoubleVlan,
    /// A rewrite of a packet field that has no datapath action (ICMP type/code, IPv6 flow
    /// label, ND target, TCP flags).
    Rewrite,
}

/// Why a translation dropped the packet, or part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Resubmit/group nesting exceeded [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_LOOKUPS`] table lookups.
    TooManyLookups,
    /// More than [`MAX_OF_ACTIONS`] OpenFlow actions executed or [`MAX_DP_ACTIONS`] datapath
    /// actions produced.
    TooManyActions,
    /// `dec_ttl` on a packet with TTL ≤ 1 (the rest of that action list was skipped).
    TtlExpired,
    /// A `group:N` naming a group absent from the snapshot.
    MissingGroup(u32),
    /// A `meter:N` naming a meter absent from the snapshot.
    MissingMeter(u32),
    /// Something the datapath does not support yet.
    Unsupported(Unsupported),
    /// `ct(table=T)` needed a new recirculation id and the worker's table is full (it is
    /// emptied, with the caches, at the next batch).
    RecircFull,
    /// A packet recirculated with an id this translator does not know (a stale id: cannot
    /// happen through the engine, which flushes its caches with the ids).
    UnknownRecirc(u32),
}

impl DropReason {
    /// Number of distinct counters [`index`](Self::index) maps to.
    pub const N: usize = 14;

    /// A dense index for counters.
    pub fn index(self) -> usize {
        match self {
            DropReason::TooDeep => 0,
            DropReason::TooManyLookups => 1,
            DropReason::TooManyActions => 2,
            DropReason::TtlExpired => 3,
            DropReason::MissingGroup(_) => 4,
            DropReason::MissingMeter(_) => 5,
            DropReason::Unsupported(Unsupported::Ct) => 6,
            DropReason::Unsupported(Unsupported::Normal) => 7,
            DropReason::Unsupported(Unsupported::Flood) => 8,
            DropReason::Unsupported(Unsupported::Table) => 9,
            DropReason::Unsupported(Unsupported::DoubleVlan) => 10,
            DropReason::Unsupported(Unsupported::Rewrite) => 11,
            DropReason::RecircFull => 12,
            DropReason::UnknownRecirc(_) => 13,
        }
    }

    /// A stable name for counters and traces.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TooDeep => "resubmit_too_deep",
            DropReason::TooManyLookups => "too_many_resubmits",
            DropReason::TooManyActions => "too_many_actions",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::MissingGroup(_) => "missing_group",
            DropReason::MissingMeter(_) => "missing_meter",
            DropReason::Unsupported(Unsupported::Ct) => "unsupported_ct",
            DropReason::Unsupported(Unsupported::Normal) => "unsupported_normal",
            DropReason::Unsupported(Unsupported::Flood) => "unsupported_flood",
            DropReason::Unsupported(Unsupported::Table) => "unsupported_output_table",
            DropReason::Unsupported(Unsupported::DoubleVlan) => "unsupported_double_vlan",
            DropReason::Unsupported(Unsupported::Rewrite) => "unsupported_rewrite",
            DropReason::RecircFull => "recirc_full",
            DropReason::UnknownRecirc(_) => "unknown_recirc",
        }
    }

    /// True when the whole translation was discarded (every reason but `TtlExpired`).
    pub fn is_fatal(self) -> bool {
        self != DropReason::TtlExpired
    }
}

/// A packet-in the translation asked for (`controller(...)` or `output:CONTROLLER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRequest {
    /// The controller action's parameters (reason, max_len, id, userdata, pause, meter).
    pub controller: Controller,
    /// Table of the flow that asked.
    pub table: u8,
    /// Cookie of the flow that asked.
    pub cookie: u64,
    /// The working key at that point (registers, metadata, rewritten fields: packet-in
    /// metadata).
    pub key: FlowKey,
    /// Datapath actions emitted before the request (the packet-in shows the packet as
    /// modified by them).
    pub after_actions: usize,
    /// For `pause` in a flow's own action list (not inside a resubmit or group): the
    /// actions that follow the controller action, which a resume runs (its `goto_table`
    /// included). `None`: not paused, or paused where the rest cannot be frozen.
    pub resume: Option<Vec<Action>>,
}

/// A flow `learn` produced, for the control side to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnRequest {
    /// The flow mod (an add into the learn's table).
    pub flow_mod: FlowMod,
    /// The learning flow's table and cookie (for `delete_learned`).
    pub learner_table: u8,
    /// The learning flow's cookie.
    pub learner_cookie: u64,
    /// `delete_learned`: the learned flow goes with the learning flow.
    pub delete_learned: bool,
    /// `fin_idle_timeout` and `fin_hard_timeout` (applied by `Pipeline::expire` once a TCP
    /// FIN or RST went through the learned flow).
    pub fin_timeouts: (u16, u16),
    /// `now` of the translation.
    pub now: u64,
}

/// The result of one translation. Reuse one per worker: [`translate`] clears it.
#[derive(Debug, Default)]
pub struct Translation {
    /// Datapath actions; empty = drop.
    pub actions: Vec<DpAction>,
    /// Megaflow mask: 1-bits of the key the actions depend on.
    pub mask: FlowKey,
    /// The first abnormal event (fatal ones discard every action).
    pub reason: Option<DropReason>,
    /// Every flow that matched, in order (the same flow may appear more than once).
    pub rules: Vec<Arc<FlowRule>>,
    /// Flows to learn.
    pub learned: Vec<LearnRequest>,
    /// Packet-ins.
    pub controller: Vec<ControllerRequest>,
    /// Meters passed (each also a [`DpAction::Meter`] in `actions`, enforced per packet).
    pub meters: Vec<u32>,
    /// Pipeline version translated against.
    pub version: u64,
    /// MACs NORMAL saw as sources that the MAC table lacks or has on another port (the
    /// control side applies them with `Pipeline::learn_macs`; the megaflow stays cacheable).
    pub mac_learning: Vec<crate::l2::MacLearning>,
    /// MAC entries NORMAL found on their port (refreshed by the megaflow's hits).
    pub mac_entries: Vec<Arc<crate::l2::MacEntry>>,
    /// Groups run, with the index of each bucket taken (`None`: the group had no bucket to
    /// take), for group and bucket statistics.
    pub groups: Vec<(u32, Option<usize>)>,
}

impl Translation {
    /// An empty translation.
    pub fn new() -> Self {
        Self::default()
    }

    fn clear(&mut self) {
        self.actions.clear();
        self.mask = FlowKey::ZERO;
        self.reason = None;
        self.rules.clear();
        self.learned.clear();
        self.controller.clear();
        self.meters.clear();
        self.version = 0;
        self.mac_learning.clear();
        self.mac_entries.clear();
        self.groups.clear();
    }

    /// True when no datapath output results.
    pub fn is_drop(&self) -> bool {
        !self
            .actions
            .iter()
            .any(|a| matches!(a, DpAction::Output(_) | DpAction::TunnelPush(_)))
    }

    /// True when every packet of this megaflow needs the slow path (learn or packet-in side
    /// effects), so the engine must not cache it.
    pub fn slow_path(&self) -> bool {
        !self.learned.is_empty() || !self.controller.is_empty()
    }

    /// Credits `packets`/`bytes` at time `now` to every flow that matched (once per flow, even
    /// if it matched several times).
    pub fn credit(&self, packets: u64, bytes: u64, now: u64) {
        if self.rules.len() <= 64 {
            for (i, r) in self.rules.iter().enumerate() {
                if !self.rules[..i].iter().any(|o| Arc::ptr_eq(o, r)) {
                    r.stats().record(packets, bytes, now);
                }
            }
        } else {
            // Long walks (up to MAX_LOOKUPS rules): sort by address instead of the quadratic scan.
            let mut rs: Vec<&Arc<FlowRule>> = self.rules.iter().collect();
            rs.sort_by_key(|r| Arc::as_ptr(r));
            rs.dedup_by(|a, b| Arc::ptr_eq(a, b));
            for r in rs {
                r.stats().record(packets, bytes, now);
            }
        }
    }
}

/// Per-worker memory for [`translate`]: lookup scratch, trace buffer and the worker's
/// recirculation ids ([`RecircTable`]).
#[derive(Debug, Default)]
pub struct TranslateScratch {
    lookup: LookupScratch,
    /// Trace events of the last translation, when tracing is on.
    trace: Option<Vec<TraceEvent>>,
    recirc: RecircTable,
    /// OpenFlow ports that are tunnels: an output to one becomes [`DpAction::TunnelPush`].
    tunnel_ports: Vec<u32>,
}

impl TranslateScratch {
    /// Empty scratch (recirculation ids of worker 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty scratch allocating the recirculation ids of worker `worker`.
    pub fn for_worker(worker: u8) -> Self {
        TranslateScratch {
            recirc: RecircTable::new(worker, DEFAULT_RECIRC_CAPACITY),
            ..Self::default()
        }
    }

    /// The recirculation ids allocated so far.
    pub fn recirc(&self) -> &RecircTable {
        &self.recirc
    }

    /// The recirculation ids, to clear them (only when no cached entry can emit them).
    pub fn recirc_mut(&mut self) -> &mut RecircTable {
        &mut self.recirc
    }

    /// Turns tracing on or off: when on, each translation records its [`TraceEvent`]s
    /// (`ofproto/trace`). Off by default; costs nothing when off.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = if on { Some(Vec::new()) } else { None };
    }

    /// The events of the last translation (empty when tracing is off).
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Declares which OpenFlow ports are tunnels (Geneve/VXLAN): an output to one of them
    /// becomes a [`DpAction::TunnelPush`] carrying the flow's tunnel metadata, and that
    /// metadata joins the megaflow mask.
    pub fn set_tunnel_ports(&mut self, ports: &[u32]) {
        self.tunnel_ports = ports.to_vec();
    }
}

/// One step of a traced translation.
#[derive(Debug, Clone)]
pub enum TraceEvent {
    /// A table lookup at resubmit/group nesting `depth`: the winning flow, or `None` (miss).
    Lookup {
        /// The table.
        table: u8,
        /// Resubmit/group nesting.
        depth: usize,
        /// The flow that matched.
        rule: Option<Arc<FlowRule>>,
    },
    /// A group; `bucket` is the index of the selected bucket for select groups.
    Group {
        /// The group id.
        id: u32,
        /// Selected bucket index (select groups).
        bucket: Option<usize>,
    },
    /// A datapath output.
    Output(u32),
    /// A packet-in request.
    Controller,
    /// A `ct()` action in `zone`.
    Ct {
        /// The zone.
        zone: u16,
    },
    /// `ct(table=T)`: a copy of the packet (the packet itself when nothing follows)
    /// recirculates under `id` and resumes at `table`.
    Recirc {
        /// The recirculation id.
        id: u32,
        /// The table it resumes at.
        table: u8,
    },
    /// Translation resumed from a frozen state (a recirculated packet).
    Resume {
        /// The recirculation id.
        id: u32,
        /// The table it resumes at.
        table: u8,
    },
    /// An abnormal event.
    Drop(DropReason),
}

/// Formats a trace in the spirit of `ovs-appctl ofproto/trace`: one block per table lookup
/// (indented by nesting) with the flow's match and actions, then the outcome.
pub fn format_trace(
    events: &[TraceEvent],
    t: &Translation,
    names: &crate::names::NameMap,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for e in events {
        match e {
            TraceEvent::Lookup { table, depth, rule } => {
                let pad = "    ".repeat(*depth);
                match rule {
                    Some(r) => {
                        let f = crate::pipeline::rule_flow(r);
                        let mut m = String::new();
                        crate::print::format_match(&mut m, &f.match_, f.priority, names);
                        let mut a = String::new();
                        crate::print::format_actions(&mut a, &f.actions, names);
                        let _ = writeln!(s, "{pad}{table}. {m}, cookie {:#x}", f.cookie);
                        let _ = writeln!(s, "{pad}    {a}");
                    }
                    None => {
                        let _ = writeln!(s, "{pad}{table}. No match.");
                        let _ = writeln!(s, "{pad}    drop");
                    }
                }
            }
            TraceEvent::Group { id, bucket } => match bucket {
                Some(b) => {
                    let _ = writeln!(s, "    group {id}: bucket {b}");
                }
                None => {
                    let _ = writeln!(s, "    group {id}");
                }
            },
            TraceEvent::Output(p) => {
                let _ = writeln!(s, "    -> output to port {p}");
            }
            TraceEvent::Controller => {
                let _ = writeln!(s, "    -> packet-in to the controller");
            }
            TraceEvent::Ct { zone } => {
                let _ = writeln!(s, "    -> conntrack in zone {zone}");
            }
            TraceEvent::Recirc { id, table } => {
                let _ = writeln!(
                    s,
                    "    -> A clone of the packet is forked to recirculate (recirc_id={id:#x}). \
                     The forked pipeline will be resumed at table {table}."
                );
            }
            TraceEvent::Resume { id, table } => {
                let _ = writeln!(s, "Resuming from recirc_id={id:#x} at table {table}");
            }
            TraceEvent::Drop(r) => {
                let _ = writeln!(s, "    -> {}", r.name());
            }
        }
    }
    s.push_str("\nMegaflow: ");
    let _ = write!(s, "{:?}", t.mask);
    s.push_str("\nDatapath actions: ");
    s.push_str(&crate::datapath::format_dp_actions(&t.actions));
    s.push('\n');
    s
}

/// Translates `key` through `snap` into `out` (cleared first). `now` stamps learn requests.
/// A key with `recirc_id != 0` resumes from the state `scratch`'s recirculation table froze
/// under that id. Never panics; every bad situation is a [`DropReason`].
pub fn translate(
    snap: &PipelineSnapshot,
    key: &FlowKey,
    now: u64,
    scratch: &mut TranslateScratch,
    out: &mut Translation,
) {
    out.clear();
    out.version = snap.version();
    // Always exact: in_port, recirc_id, eth_type, the VLAN-present bit (and nw_frag for IP).
    out.mask.set(layout::IN_PORT, u64::MAX);
    out.mask.set(layout::RECIRC_ID, u64::MAX);
    out.mask.set(layout::ETH_TYPE, u64::MAX);
    out.mask.set(layout::VLAN_TCI, 0x1000);
    let dl = key.get(layout::ETH_TYPE) as u16;
    if dl == ethertype::IP || dl == ethertype::IPV6 {
        out.mask.set(layout::NW_FRAG, u64::MAX);
    }
    let TranslateScratch {
        lookup,
        recirc,
        trace,
        tunnel_ports,
    } = scratch;
    let mut trace = trace.as_mut();
    if let Some(t) = trace.as_deref_mut() {
        t.clear();
    }
    let mut flow = *key;
    let rid = key.get(layout::RECIRC_ID) as u32;
    let mut start = Some(0);
    // Thawed metadata counts as written: a later freeze must carry it on.
    let mut meta_written = FlowKey::ZERO;
    if rid != 0 {
        match recirc.thaw(rid) {
            Some(st) => {
                st.thaw_into(&mut flow);
                meta_written.words[..st.written.len()].copy_from_slice(&st.written);
                start = Some(st.table);
                if let Some(t) = trace.as_deref_mut() {
                    t.push(TraceEvent::Resume {
                        id: rid,
                        table: st.table,
                    });
                }
            }
            None => start = None,
        }
    }
    let mut cx = Ctx {
        snap,
        trace,
        flow,
        base: flow,
        written: FlowKey::ZERO,
        meta_written,
        vlan_tpid: 0x8100,
        depth: 0,
        lookups: 0,
        of_actions: 0,
        fatal: false,
        stop: false,
        now,
        scratch: lookup,
        recirc,
        tunnel_ports: &tunnel_ports[..],
        out,
    };
    match start {
        Some(table) => cx.run_table(table),
        None => cx.fail(DropReason::UnknownRecirc(rid)),
    }
    if cx.fatal {
        cx.out.actions.clear();
    }
}

/// Translates a packet-out: runs `actions` on the packet `key` as if they were a flow's
/// actions, with `output:TABLE` sending the packet, as modified so far, through the tables
/// from table 0 (OVS `OFPP_TABLE`). `out` gets the datapath actions to execute on the packet
/// (no mask is needed: the result is never cached).
pub fn translate_packet_out(
    snap: &PipelineSnapshot,
    key: &FlowKey,
    actions: &[Action],
    now: u64,
    scratch: &mut TranslateScratch,
    out: &mut Translation,
) {
    out.clear();
    out.version = snap.version();
    // A stand-in for the flow the actions belong to (learn and packet-in name one).
    let stand_in = FlowEntry::new(&crate::flow::Flow::default(), 0, now);
    let mut cx = Ctx {
        snap,
        trace: None,
        flow: *key,
        base: *key,
        written: FlowKey::ZERO,
        meta_written: FlowKey::ZERO,
        vlan_tpid: 0x8100,
        depth: 0,
        lookups: 0,
        of_actions: 0,
        fatal: false,
        stop: false,
        now,
        scratch: &mut scratch.lookup,
        // A ct(table=T) in a packet-out freezes into the control side's table, which no
        // worker resolves: such a packet is dropped as `unknown_recirc` by the worker.
        recirc: &mut scratch.recirc,
        tunnel_ports: &scratch.tunnel_ports,
        out,
    };
    for a in actions {
        if cx.fatal || cx.stop {
            break;
        }
        match a {
            Action::Output {
                port: Port::TABLE, ..
            } => {
                // The pipeline sees the packet with the changes made so far.
                cx.commit();
                cx.run_table(0);
                cx.stop = false;
            }
            // Only a resumed continuation has one (PACKET_OUT refuses it): the paused flow's
            // goto_table, which ends its actions.
            Action::GotoTable(t) => {
                cx.commit();
                cx.run_table(*t);
                break;
            }
            _ => {
                cx.run_actions(std::slice::from_ref(a), &stand_in, 0);
            }
        }
    }
    if cx.fatal {
        cx.out.actions.clear();
    }
}

/// A worker's translator: its pipeline reader, scratch, result buffer and drop counters.
#[derive(Debug)]
pub struct WorkerTranslator {
    reader: PipelineReader,
    scratch: TranslateScratch,
    out: Translation,
    counters: TranslateCounters,
    /// Pipeline version the recirculation ids were allocated under.
    recirc_version: u64,
    /// Times the recirculation table was emptied because it was full.
    recirc_generation: u64,
}

/// Counters of a [`WorkerTranslator`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TranslateCounters {
    /// Translations run.
    pub translations: u64,
    /// Translations that output nothing.
    pub drops: u64,
    /// Drop reasons, by [`DropReason::index`].
    pub reasons: [u64; DropReason::N],
    /// Packet-ins requested.
    pub controller: u64,
    /// Learn requests produced.
    pub learned: u64,
}

impl WorkerTranslator {
    /// A translator over `reader`'s pipeline (recirculation ids of worker 0).
    pub fn new(reader: PipelineReader) -> Self {
        Self::for_worker(reader, 0)
    }

    /// A translator over `reader`'s pipeline for worker `worker` (which owns the
    /// recirculation ids `worker << 24 | n`).
    pub fn for_worker(reader: PipelineReader, worker: u8) -> Self {
        WorkerTranslator {
            reader,
            scratch: TranslateScratch::for_worker(worker),
            out: Translation::new(),
            counters: TranslateCounters::default(),
            recirc_version: u64::MAX,
            recirc_generation: 0,
        }
    }

    /// Declares the tunnel ports (see [`TranslateScratch::set_tunnel_ports`]).
    pub fn set_tunnel_ports(&mut self, ports: &[u32]) {
        self.scratch.set_tunnel_ports(ports);
    }

    /// Adopts the newest pipeline (once per batch) and returns the *cache generation*: the
    /// pipeline version, changed also when the recirculation ids had to be recycled. The
    /// caller must flush every cached translation when it moves (recirculation ids are only
    /// valid within one generation).
    pub fn refresh(&mut self) -> u64 {
        let version = self.reader.refresh().version();
        let recirc = self.scratch.recirc_mut();
        if version != self.recirc_version || recirc.overflowed() {
            if version == self.recirc_version {
                self.recirc_generation += 1;
            }
            recirc.clear();
            self.recirc_version = version;
        }
        // Versions stay far below 2^48; the generation makes the value move on a recycle.
        version ^ (self.recirc_generation << 48)
    }

    /// The recirculation ids allocated in the current generation.
    pub fn recirc(&self) -> &RecircTable {
        self.scratch.recirc()
    }

    /// Translates `key` against the adopted pipeline and counts the outcome.
    pub fn translate(&mut self, key: &FlowKey, now: u64) -> &Translation {
        translate(
            self.reader.snapshot(),
            key,
            now,
            &mut self.scratch,
            &mut self.out,
        );
        let c = &mut self.counters;
        c.translations += 1;
        if self.out.is_drop() {
            c.drops += 1;
        }
        if let Some(r) = self.out.reason {
            if let Some(slot) = c.reasons.get_mut(r.index()) {
                *slot += 1;
            }
        }
        c.controller += self.out.controller.len() as u64;
        c.learned += self.out.learned.len() as u64;
        &self.out
    }

    /// The engine's contract: appends the datapath actions to `actions`, ORs the mask into
    /// `mask`; `Err` with the reason when the packet is dropped abnormally.
    pub fn translate_into(
        &mut self,
        key: &FlowKey,
        now: u64,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Result<(), DropReason> {
        let t = self.translate(key, now);
        actions.extend_from_slice(&t.actions);
        mask.union_with(&t.mask);
        match t.reason {
            Some(r) if r.is_fatal() => Err(r),
            _ => Ok(()),
        }
    }

    /// The rules of the last translation, for crediting the hits of the megaflow built from
    /// it.
    pub fn attribution(&self) -> crate::stats::Attribution {
        crate::stats::Attribution::of(&self.out, self.reader.snapshot())
    }

    /// The adopted pipeline snapshot.
    pub fn snapshot(&self) -> &Arc<PipelineSnapshot> {
        self.reader.snapshot()
    }

    /// The last translation.
    pub fn last(&self) -> &Translation {
        &self.out
    }

    /// The counters.
    pub fn counters(&self) -> &TranslateCounters {
        &self.counters
    }
}

/// The key bits that hold `bits` of the field at `loc`.
fn loc_bits(loc: Loc, bits: u128) -> FlowKey {
    let mut k = FlowKey::ZERO;
    match loc {
        // The 16-bit port view maps through reserved numbers; in_port is exact anyway.
        Loc::InPort16 => k.set(layout::IN_PORT, u64::MAX),
        _ => write_loc(loc, &mut k, bits),
    }
    k
}

fn read_sub(sf: &Subfield, key: &FlowKey) -> u128 {
    (read_loc(sf.field.info().loc, key) >> sf.ofs) & ones(sf.n_bits)
}

fn write_masked(field: FieldId, key: &mut FlowKey, value: u128, mask: u128) {
    let loc = field.info().loc;
    let old = read_loc(loc, key);
    write_loc(loc, key, (old & !mask) | (value & mask));
}

/// Key words of packet fields (L2 to L4); every other word is metadata.
const PACKET_WORD_START: usize = xvs_packet::key::PACKET_WORDS_START;
const PACKET_WORD_END: usize = xvs_packet::key::PACKET_WORDS_END;

struct Ctx<'a> {
    snap: &'a PipelineSnapshot,
    trace: Option<&'a mut Vec<TraceEvent>>,
    /// The working key.
    flow: FlowKey,
    /// The packet as the emitted actions leave it.
    base: FlowKey,
    /// Packet-field bits actions wrote.
    written: FlowKey,
    /// Metadata bits (registers, pkt_mark, tunnel) actions wrote: what a freeze keeps.
    meta_written: FlowKey,
    vlan_tpid: u16,
    depth: usize,
    lookups: usize,
    of_actions: usize,
    fatal: bool,
    /// Stop the current action list (dec_ttl expiry, paused controller).
    stop: bool,
    now: u64,
    scratch: &'a mut LookupScratch,
    recirc: &'a mut RecircTable,
    tunnel_ports: &'a [u32],
    out: &'a mut Translation,
}

impl<'a> Ctx<'a> {
    fn record(&mut self, e: impl FnOnce() -> TraceEvent) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.push(e());
        }
    }

    fn fail(&mut self, r: DropReason) {
        self.record(|| TraceEvent::Drop(r));
        if !self.fatal {
            self.fatal = true;
            self.out.reason = Some(r);
        }
    }

    fn note(&mut self, r: DropReason) {
        self.record(|| TraceEvent::Drop(r));
        if self.out.reason.is_none() {
            self.out.reason = Some(r);
        }
    }

    fn unwild(&mut self, k: &FlowKey) {
        self.out.mask.union_with(k);
    }

    fn unwild_field(&mut self, f: xvs_packet::KeyField) {
        let m = self.out.mask.get(f);
        self.out.mask.set(f, m | f.max_value());
    }

    /// Looks up `table` and runs the winner, following `goto_table` iteratively.
    fn run_table(&mut self, mut table: u8) {
        loop {
            if self.fatal {
                return;
            }
            self.lookups += 1;
            if self.lookups > MAX_LOOKUPS {
                self.fail(DropReason::TooManyLookups);
                return;
            }
            let snap = self.snap;
            let Some(t) = snap.table(table) else { return };
            let found = t.lookup_with(&self.flow, &mut self.out.mask, self.scratch);
            let depth = self.depth;
            self.record(|| TraceEvent::Lookup {
                table,
                depth,
                rule: found.cloned(),
            });
            let Some(rule) = found else {
                // Table miss: drop (OpenFlow 1.3+); a resubmit just returns.
                return;
            };
            self.out.rules.push(Arc::clone(rule));
            let entry = rule.payload();
            match self.run_actions(&entry.actions, entry, table) {
                Some(next) if !self.stop => table = next,
                _ => return,
            }
        }
    }

    /// Runs `actions` of `flow` (found in `table`); returns the goto target, if any.
    fn run_actions(&mut self, actions: &'a [Action], flow: &'a FlowEntry, table: u8) -> Option<u8> {
        self.stop = false;
        for a in actions {
            if self.fatal || self.stop {
                return None;
            }
            self.of_actions += 1;
            if self.of_actions > MAX_OF_ACTIONS {
                self.fail(DropReason::TooManyActions);
                return None;
            }
            match a {
                Action::GotoTable(t) => return Some(*t),
                Action::Output { port, max_len } => self.output(*port, *max_len, flow, table),
                Action::OutputReg { src, max_len } => {
                    let v = read_sub(src, &self.flow);
                    self.unwild(&loc_bits(src.field.info().loc, src.mask()));
                    // OVS: a value above 16 bits is out of range and ignored.
                    if let Ok(p) = u16::try_from(v) {
                        self.output(Port(p), *max_len, flow, table);
                    }
                }
                Action::Controller(c) => {
                    // What a pause leaves for the resume: the rest of this flow's actions,
                    // when they are the flow's own (not a resubmitted flow's or a bucket's).
                    let rest = (c.pause && self.depth == 0)
                        .then(|| actions.iter().position(|x| std::ptr::eq(x, a)))
                        .flatten()
                        .and_then(|i| actions.get(i + 1..))
                        .map(<[Action]>::to_vec);
                    self.controller(c.clone(), flow, table, rest);
                }
                Action::Group(g) => self.group(*g, flow, table),
                Action::Meter(m) => {
                    if self.snap.meter(*m).is_some() {
                        self.out.meters.push(*m);
                        // Enforced per packet by the datapath, so the megaflow stays cacheable.
                        self.push(DpAction::Meter(*m));
                    } else {
                        self.fail(DropReason::MissingMeter(*m));
                    }
                }
                Action::Resubmit {
                    in_port,
                    table: t,
                    with_ct_orig,
                } => {
                    if *with_ct_orig {
                        self.fail(DropReason::Unsupported(Unsupported::Ct));
                        return None;
                    }
                    self.resubmit(*in_port, t.unwrap_or(table));
                    // A resubmitted flow's dec_ttl expiry ends only its own action list.
                    self.stop = false;
                }
                Action::SetField { field, value, mask } => self.set_field(*field, *value, *mask),
                Action::Move { src, dst } => self.move_(src, dst),
                Action::DecTtl => self.dec_ttl(),
                Action::SetNwTtl(ttl) => {
                    if self.is_ip() {
                        self.flow.set(layout::NW_TTL, u64::from(*ttl));
                        self.written.set(layout::NW_TTL, 0xff);
                    }
                }
                Action::PushVlan(tpid) => {
                    if self.flow.get(layout::VLAN_TCI) & 0x1000 != 0 {
                        self.fail(DropReason::Unsupported(Unsupported::DoubleVlan));
                        return None;
                    }
                    self.flow.set(layout::VLAN_TCI, 0x1000);
                    self.written.set(layout::VLAN_TCI, 0xffff);
                    self.vlan_tpid = *tpid;
                }
                Action::PopVlan => {
                    if self.flow.get(layout::VLAN_TCI) & 0x1000 != 0 {
                        self.flow.set(layout::VLAN_TCI, 0);
                        self.written.set(layout::VLAN_TCI, 0xffff);
                    }
                }
                Action::Conjunction { .. } | Action::Note(_) => {}
                Action::Learn(l) => self.learn(l, flow, table),
                Action::Ct(ct) => self.ct(ct),
                Action::CtClear => {
                    clear_ct_fields(&mut self.flow);
                    self.push(DpAction::CtClear);
                }
            }
        }
        None
    }

    /// `ct(...)` (OVS `compose_conntrack_action`): commits pending rewrites so the tracker
    /// sees them, resolves the zone and `exec(...)` into immediates, emits `Ct`, and for
    /// `table=T` freezes the translation and emits `Recirc`. Translation then goes on with the
    /// actions that follow (the fork: the datapath recirculates a copy when anything follows)
    /// with the `ct_*` fields cleared, as they exist only in the recirculated pipeline.
    fn ct(&mut self, ct: &crate::action::Ct) {
        if ct.alg != 0 {
            return self.fail(DropReason::Unsupported(Unsupported::Ct));
        }
        self.commit();
        let zone = match ct.zone {
            crate::action::CtZone::Imm(z) => z,
            crate::action::CtZone::Field(sf) => {
                self.unwild(&loc_bits(sf.field.info().loc, sf.mask()));
                read_sub(&sf, &self.flow) as u16
            }
        };
        let mut mark: Option<(u32, u32)> = None;
        let mut label: Option<(u128, u128)> = None;
        for a in &ct.exec {
            let (field, value, mask) = match a {
                Action::SetField { field, value, mask } => (*field, *value, *mask),
                Action::Move { src, dst } => {
                    let v = read_sub(src, &self.flow);
                    self.unwild(&loc_bits(src.field.info().loc, src.mask()));
                    let n = src.n_bits.min(dst.n_bits);
                    let m = ones(n) << dst.ofs;
                    (dst.field, (v << dst.ofs) & m, m)
                }
                // The parser only lets set_field/move/load of ct_mark/ct_label into exec().
                _ => continue,
            };
            if field == FieldId::CT_MARK {
                let (v, m) = mark.unwrap_or((0, 0));
                let (value, mask) = (value as u32, mask as u32);
                mark = Some(((v & !mask) | (value & mask), m | mask));
            } else if field == FieldId::CT_LABEL {
                let (v, m) = label.unwrap_or((0, 0));
                label = Some(((v & !mask) | (value & mask), m | mask));
            }
        }
        self.record(|| TraceEvent::Ct { zone });
        self.push(DpAction::Ct(crate::datapath::DpCt {
            zone,
            commit: ct.commit,
            force: ct.force,
            nat: ct.nat,
            mark,
            label,
        }));
        if let Some(table) = ct.table {
            // Only written metadata is frozen: those bits come from constants or from key bits
            // already un-wildcarded, so the id adds nothing to the megaflow.
            let state = FrozenState::new(table, &self.flow, &self.meta_written);
            match self.recirc.freeze(state) {
                Some(id) => {
                    self.record(|| TraceEvent::Recirc { id, table });
                    self.push(DpAction::Recirc(id));
                }
                None => return self.fail(DropReason::RecircFull),
            }
        }
        clear_ct_fields(&mut self.flow);
    }

    fn is_ip(&self) -> bool {
        matches!(
            self.flow.get(layout::ETH_TYPE) as u16,
            ethertype::IP | ethertype::IPV6
        )
    }

    fn resubmit(&mut self, in_port: Port, table: u8) {
        if self.depth >= MAX_DEPTH {
            self.fail(DropReason::TooDeep);
            return;
        }
        let saved = self.flow.get(layout::IN_PORT);
        if in_port != Port::IN_PORT {
            self.flow
                .set(layout::IN_PORT, u64::from(in_port.to_ofp11()));
        }
        self.depth += 1;
        self.run_table(table);
        self.depth -= 1;
        self.flow.set(layout::IN_PORT, saved);
    }

    /// OVS `mf_are_prereqs_ok` on the working key, un-wildcarding what it reads.
    fn prereq_ok(&mut self, p: Prereq) -> bool {
        let dl = self.flow.get(layout::ETH_TYPE) as u16;
        let ip = dl == ethertype::IP || dl == ethertype::IPV6;
        let proto = |cx: &mut Self, want: u8| {
            cx.unwild_field(layout::NW_PROTO);
            cx.unwild_field(layout::NW_FRAG);
            ip && cx.flow.get(layout::NW_PROTO) as u8 == want
                && cx.flow.get(layout::NW_FRAG) & 2 == 0
        };
        match p {
            Prereq::None | Prereq::Ethernet => true,
            Prereq::Arp => dl == ethertype::ARP || dl == ethertype::RARP,
            Prereq::Ipv4 => dl == ethertype::IP,
            Prereq::Ipv6 => dl == ethertype::IPV6,
            Prereq::IpAny => ip,
            Prereq::Tcp => proto(self, ipproto::TCP),
            Prereq::Udp => proto(self, ipproto::UDP),
            Prereq::Sctp => proto(self, ipproto::SCTP),
            Prereq::Icmpv4 => dl == ethertype::IP && proto(self, ipproto::ICMP),
            Prereq::Icmpv6 | Prereq::Nd | Prereq::NdSolicit | Prereq::NdAdvert => {
                if !(dl == ethertype::IPV6 && proto(self, ipproto::ICMPV6)) {
                    return false;
                }
                if p == Prereq::Icmpv6 {
                    return true;
                }
                self.unwild_field(layout::TP_SRC);
                self.unwild_field(layout::TP_DST);
                let ty = self.flow.get(layout::TP_SRC);
                let code = self.flow.get(layout::TP_DST);
                code == 0
                    && match p {
                        Prereq::NdSolicit => ty == 135,
                        Prereq::NdAdvert => ty == 136,
                        _ => ty == 135 || ty == 136,
                    }
            }
            Prereq::Ct => {
                self.unwild_field(layout::CT_STATE);
                let st = self.flow.get(layout::CT_STATE);
                st & 0x20 != 0 && st & 0x10 == 0
            }
            Prereq::VlanVid => self.flow.get(layout::VLAN_TCI) & 0x1000 != 0,
        }
    }

    /// Records that `bits` of `field` were written (for packet fields).
    fn mark_written(&mut self, field: FieldId, bits: u128) {
        let loc = field.info().loc;
        match loc {
            // Metadata (registers, marks, conntrack, tunnel) never reaches the packet; a freeze
            // keeps what was written of it.
            Loc::Word(kf)
                if !(PACKET_WORD_START..PACKET_WORD_END).contains(&usize::from(kf.word)) =>
            {
                return self.meta_written.union_with(&loc_bits(loc, bits));
            }
            Loc::TunMetadata(_) => {
                return self.meta_written.union_with(&loc_bits(loc, bits));
            }
            Loc::Wide(kf) if usize::from(kf.hi) < PACKET_WORD_START => {
                return self.meta_written.union_with(&loc_bits(loc, bits));
            }
            Loc::CtState | Loc::InPort16 => return,
            _ => {}
        }
        let k = loc_bits(loc, bits);
        for i in PACKET_WORD_START..PACKET_WORD_END {
            self.written.words[i] |= k.words[i];
        }
    }

    fn set_field(&mut self, field: FieldId, value: u128, mask: u128) {
        if !self.prereq_ok(field.info().prereq) {
            return;
        }
        write_masked(field, &mut self.flow, value, mask);
        self.mark_written(field, mask);
    }

    fn move_(&mut self, src: &Subfield, dst: &Subfield) {
        if !self.prereq_ok(src.field.info().prereq) || !self.prereq_ok(dst.field.info().prereq) {
            return;
        }
        let v = read_sub(src, &self.flow);
        self.unwild(&loc_bits(src.field.info().loc, src.mask()));
        let n = src.n_bits.min(dst.n_bits);
        let m = ones(n) << dst.ofs;
        write_masked(dst.field, &mut self.flow, v << dst.ofs, m);
        self.mark_written(dst.field, m);
    }

    fn dec_ttl(&mut self) {
        if !self.is_ip() {
            return;
        }
        self.unwild_field(layout::NW_TTL);
        let ttl = self.flow.get(layout::NW_TTL);
        if ttl <= 1 {
            self.note(DropReason::TtlExpired);
            self.stop = true;
            return;
        }
        self.flow.set(layout::NW_TTL, ttl - 1);
        self.written.set(layout::NW_TTL, 0xff);
    }

    fn output(&mut self, port: Port, max_len: u16, flow: &FlowEntry, table: u8) {
        let in_port = self.flow.get(layout::IN_PORT) as u32;
        let p = match port {
            Port::IN_PORT => in_port,
            Port::CONTROLLER => {
                let c = Controller {
                    reason: PacketInReason::Action,
                    max_len,
                    ..Controller::default()
                };
                self.controller(c, flow, table, None);
                return;
            }
            Port::NORMAL => return self.normal(in_port),
            Port::FLOOD | Port::ALL => return self.flood(in_port),
            Port::TABLE => return self.fail(DropReason::Unsupported(Unsupported::Table)),
            Port::NONE | Port::UNSET => return,
            p => {
                let p = p.to_ofp11();
                if p == in_port {
                    // OpenFlow: never back out of the ingress port unless asked with IN_PORT.
                    return;
                }
                p
            }
        };
        self.commit();
        if self.fatal {
            return;
        }
        self.record(|| TraceEvent::Output(p));
        if self.tunnel_ports.contains(&p) {
            let push = self.tunnel_push(p);
            self.push(DpAction::TunnelPush(push));
        } else {
            self.push(DpAction::Output(p));
        }
    }

    /// The tunnel metadata of an output to tunnel port `port`. Every tunnel field the engine
    /// reads to build the outer header joins the mask, so one megaflow never covers packets
    /// that need different outer headers.
    fn tunnel_push(&mut self, port: u32) -> TunnelPush {
        for f in [
            layout::TUN_ID,
            layout::TUN_SRC,
            layout::TUN_DST,
            layout::TUN_FLAGS,
        ] {
            self.unwild_field(f);
        }
        for f in [layout::TUN_IPV6_SRC, layout::TUN_IPV6_DST] {
            let hi = f.hi as usize;
            self.out.mask.words[hi] = u64::MAX;
            self.out.mask.words[hi + 1] = u64::MAX;
        }
        // The options: which fields are present decides which options go out, and each one
        // emitted is copied whole into the template.
        let tlv = self.snap.tlv();
        if !tlv.is_empty() {
            self.unwild_field(layout::TUN_METADATA_PRESENT);
            let present = self.flow.get(layout::TUN_METADATA_PRESENT);
            for i in 0..layout::N_TUN_METADATA {
                if present & (1 << i) != 0 && tlv.get(i).is_some() {
                    self.unwild_field(layout::tun_metadata(i));
                }
            }
        }
        let options = tlv.write_options(&self.flow);
        let v4 = |a: u64| (a != 0).then(|| std::net::IpAddr::from((a as u32).to_be_bytes()));
        let v6 = |a: u128| (a != 0).then(|| std::net::IpAddr::from(a.to_be_bytes()));
        let f = &self.flow;
        TunnelPush {
            options,
            port,
            tun_id: f.get(layout::TUN_ID),
            dst: v4(f.get(layout::TUN_DST)).or_else(|| v6(f.get128(layout::TUN_IPV6_DST))),
            src: v4(f.get(layout::TUN_SRC)).or_else(|| v6(f.get128(layout::TUN_IPV6_SRC))),
            flags: f.get(layout::TUN_FLAGS) as u16,
        }
    }

    /// Outputs to `p` (a bridge port, not the ingress port).
    fn emit_output(&mut self, p: u32) {
        self.commit();
        if self.fatal {
            return;
        }
        self.record(|| TraceEvent::Output(p));
        self.push(DpAction::Output(p));
    }

    /// `FLOOD`/`ALL`: every bridge port but the ingress port (no port has `no-flood`).
    fn flood(&mut self, in_port: u32) {
        let snap = self.snap;
        for &p in snap.l2().ports() {
            if p != in_port && !self.fatal {
                self.emit_output(p);
            }
        }
    }

    /// `NORMAL`: learn the source MAC on the ingress port, then output to the destination's
    /// learned port, or flood (unknown destination, multicast, broadcast). See [`crate::l2`].
    fn normal(&mut self, in_port: u32) {
        let snap = self.snap;
        let l2 = snap.l2();
        if l2.ports().binary_search(&in_port).is_err() {
            // Not a bridge port (OVS: no input bundle): drop.
            return;
        }
        self.unwild_field(layout::ETH_SRC);
        self.unwild_field(layout::ETH_DST);
        let m = self.out.mask.get(layout::VLAN_TCI);
        self.out.mask.set(layout::VLAN_TCI, m | 0x1fff);
        let tci = self.flow.get(layout::VLAN_TCI);
        let vlan = if tci & 0x1000 != 0 {
            (tci & 0xfff) as u16
        } else {
            0
        };
        let src = self.flow.get(layout::ETH_SRC);
        let dst = self.flow.get(layout::ETH_DST);
        if !crate::l2::is_multicast(src) {
            match l2.lookup(src, vlan) {
                Some(e) if e.port == in_port => self.out.mac_entries.push(Arc::clone(e)),
                _ => self.out.mac_learning.push(crate::l2::MacLearning {
                    mac: src,
                    vlan,
                    port: in_port,
                }),
            }
        }
        if crate::l2::is_multicast(dst) {
            return self.flood(in_port);
        }
        match l2.lookup(dst, vlan) {
            // Learned on the ingress port: the destination is behind it; drop (as OVS).
            Some(e) if e.port == in_port => {}
            Some(e) => {
                let p = e.port;
                self.emit_output(p);
            }
            None => self.flood(in_port),
        }
    }

    fn push(&mut self, a: DpAction) {
        if self.out.actions.len() >= MAX_DP_ACTIONS {
            self.fail(DropReason::TooManyActions);
            return;
        }
        self.out.actions.push(a);
    }

    fn controller(
        &mut self,
        c: Controller,
        flow: &FlowEntry,
        table: u8,
        resume: Option<Vec<Action>>,
    ) {
        // The packet-in carries the packet as modified so far.
        self.commit();
        self.record(|| TraceEvent::Controller);
        let pause = c.pause;
        self.out.controller.push(ControllerRequest {
            controller: c,
            table,
            cookie: flow.cookie,
            key: self.flow,
            after_actions: self.out.actions.len(),
            resume,
        });
        if pause {
            // The translation stops here; NXT_RESUME runs the frozen rest.
            self.stop = true;
        }
    }

    fn group(&mut self, id: u32, flow: &'a FlowEntry, table: u8) {
        let snap = self.snap;
        let Some(g) = snap.group(id) else {
            self.fail(DropReason::MissingGroup(id));
            return;
        };
        if self.depth >= MAX_DEPTH {
            self.fail(DropReason::TooDeep);
            return;
        }
        self.depth += 1;
        match g.group_type {
            GroupType::All => {
                self.record(|| TraceEvent::Group { id, bucket: None });
                if g.buckets.is_empty() {
                    self.out.groups.push((id, None));
                }
                for (i, b) in g.buckets.iter().enumerate() {
                    self.out.groups.push((id, Some(i)));
                    self.bucket(&b.actions, flow, table);
                }
            }
            GroupType::Select => {
                let chosen = self.select_bucket(g);
                self.record(|| TraceEvent::Group { id, bucket: chosen });
                self.out.groups.push((id, chosen));
                if let Some(i) = chosen {
                    if let Some(b) = g.buckets.get(i) {
                        self.bucket(&b.actions, flow, table);
                    }
                }
            }
            GroupType::Indirect | GroupType::FastFailover => {
                self.record(|| TraceEvent::Group {
                    id,
                    bucket: Some(0),
                });
                // Port liveness is not tracked yet: the first bucket is live.
                let first = (!g.buckets.is_empty()).then_some(0);
                self.out.groups.push((id, first));
                if let Some(b) = g.buckets.first() {
                    self.bucket(&b.actions, flow, table);
                }
            }
        }
        self.depth -= 1;
    }

    /// Runs a bucket on a copy of the working key (buckets do not see each other's changes,
    /// and the actions after the group do not see theirs).
    fn bucket(&mut self, actions: &'a [Action], flow: &'a FlowEntry, table: u8) {
        let saved = self.flow;
        let saved_tpid = self.vlan_tpid;
        let saved_meta_written = self.meta_written;
        // A bucket cannot goto; a goto_table there was refused at group add.
        let _ = self.run_actions(actions, flow, table);
        self.stop = false;
        self.flow = saved;
        self.vlan_tpid = saved_tpid;
        self.meta_written = saved_meta_written;
    }

    /// Weighted rendezvous hashing over the connection's 5-tuple (symmetric fields are not
    /// mixed: each direction is its own flow). Stable per connection, and a bucket change only
    /// moves the connections of that bucket.
    fn select_bucket(&mut self, g: &crate::group::Group) -> Option<usize> {
        let dl = self.flow.get(layout::ETH_TYPE) as u16;
        let mut h = fold(0x9e37_79b9_7f4a_7c15, u64::from(dl));
        if dl == ethertype::IP || dl == ethertype::IPV6 {
            if dl == ethertype::IP {
                self.unwild_field(layout::NW_SRC);
                self.unwild_field(layout::NW_DST);
                h = fold(h, self.flow.get(layout::NW_SRC));
                h = fold(h, self.flow.get(layout::NW_DST));
            } else {
                for f in [layout::IPV6_SRC, layout::IPV6_DST] {
                    let m = FlowKey {
                        words: {
                            let mut w = [0; xvs_packet::KEY_WORDS];
                            w[f.hi as usize] = u64::MAX;
                            w[f.hi as usize + 1] = u64::MAX;
                            w
                        },
                    };
                    self.unwild(&m);
                    let v = self.flow.get128(f);
                    h = fold(fold(h, (v >> 64) as u64), v as u64);
                }
            }
            self.unwild_field(layout::NW_PROTO);
            let proto = self.flow.get(layout::NW_PROTO) as u8;
            h = fold(h, u64::from(proto));
            if matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                self.unwild_field(layout::TP_SRC);
                self.unwild_field(layout::TP_DST);
                h = fold(h, self.flow.get(layout::TP_SRC));
                h = fold(h, self.flow.get(layout::TP_DST));
            }
        } else {
            self.unwild_field(layout::ETH_SRC);
            self.unwild_field(layout::ETH_DST);
            h = fold(h, self.flow.get(layout::ETH_SRC));
            h = fold(h, self.flow.get(layout::ETH_DST));
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, b) in g.buckets.iter().enumerate() {
            if b.weight == 0 {
                continue;
            }
            let x = fold(h, u64::from(b.bucket_id));
            // Uniform in (0, 1]: never 0, so ln is finite.
            let u = ((x >> 11) + 1) as f64 / (1u64 << 53) as f64;
            let score = -u.ln() / f64::from(b.weight);
            if best.is_none_or(|(_, s)| score < s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }

    fn learn(&mut self, l: &Learn, flow: &FlowEntry, table: u8) {
        let mut m = Match::catch_all();
        let mut actions = Vec::new();
        let set_match = |m: &mut Match, dst: &Subfield, v: u128| {
            let (ov, om) = m.get(dst.field);
            let bits = dst.mask();
            m.set(dst.field, (ov & !bits) | ((v << dst.ofs) & bits), om | bits);
        };
        for spec in &l.specs {
            match spec {
                LearnSpec::MatchField { dst, src } => {
                    let v = read_sub(src, &self.flow);
                    self.unwild(&loc_bits(src.field.info().loc, src.mask()));
                    set_match(&mut m, dst, v);
                }
                LearnSpec::MatchImm { dst, value } => set_match(&mut m, dst, *value),
                LearnSpec::LoadField { src, dst } => {
                    let v = read_sub(src, &self.flow);
                    self.unwild(&loc_bits(src.field.info().loc, src.mask()));
                    actions.push(Action::SetField {
                        field: dst.field,
                        value: (v << dst.ofs) & dst.mask(),
                        mask: dst.mask(),
                    });
                }
                LearnSpec::LoadImm { dst, value } => actions.push(Action::SetField {
                    field: dst.field,
                    value: (*value << dst.ofs) & dst.mask(),
                    mask: dst.mask(),
                }),
                LearnSpec::Output { src } => {
                    let v = read_sub(src, &self.flow);
                    self.unwild(&loc_bits(src.field.info().loc, src.mask()));
                    actions.push(Action::Output {
                        port: Port(v as u16),
                        max_len: 0,
                    });
                }
            }
        }
        if let Some(r) = l.result_dst {
            // Learning "succeeds" here; the control side applies the mod.
            write_masked(r.field, &mut self.flow, 1u128 << r.ofs, r.mask());
            self.mark_written(r.field, r.mask());
        }
        let mut flags = crate::flow::FlowFlags::default();
        if l.send_flow_rem {
            flags.0 |= crate::flow::FlowFlags::SEND_FLOW_REM;
        }
        let fm = FlowMod {
            command: FlowModCommand::Add,
            flow: Flow {
                table: l.table,
                priority: l.priority,
                cookie: l.cookie,
                idle_timeout: l.idle_timeout,
                hard_timeout: l.hard_timeout,
                flags,
                match_: m,
                actions,
                ..Flow::default()
            },
            table_given: true,
            cookie_mask: 0,
            modify_cookie: true,
            out_port: Port::NONE,
            out_group: u32::MAX,
        };
        self.out.learned.push(LearnRequest {
            flow_mod: fm,
            learner_table: table,
            learner_cookie: flow.cookie,
            delete_learned: l.delete_learned,
            fin_timeouts: (l.fin_idle_timeout, l.fin_hard_timeout),
            now: self.now,
        });
    }

    /// Emits the rewrites that bring the packet (`base`) to the working key (`flow`), and
    /// un-wildcards every written packet field (whether a rewrite is emitted depends on the
    /// original value).
    fn commit(&mut self) {
        let w = self.written;
        if w == FlowKey::ZERO {
            return;
        }
        let written = |f: xvs_packet::KeyField| w.get(f) != 0;
        let changed = |cx: &Self, f: xvs_packet::KeyField| cx.flow.get(f) != cx.base.get(f);
        // L2.
        for (f, is_src) in [(layout::ETH_SRC, true), (layout::ETH_DST, false)] {
            if written(f) {
                self.unwild_field(f);
                if changed(self, f) {
                    let mac = mac_bytes(self.flow.get(f));
                    self.push(if is_src {
                        DpAction::SetEthSrc(mac)
                    } else {
                        DpAction::SetEthDst(mac)
                    });
                }
            }
        }
        if written(layout::VLAN_TCI) {
            self.unwild_field(layout::VLAN_TCI);
            let (old, new) = (
                self.base.get(layout::VLAN_TCI) as u16,
                self.flow.get(layout::VLAN_TCI) as u16,
            );
            match (old & 0x1000 != 0, new & 0x1000 != 0) {
                (false, true) => self.push(DpAction::PushVlan {
                    tpid: self.vlan_tpid,
                    tci: new,
                }),
                (true, false) => self.push(DpAction::PopVlan),
                (true, true) if old != new => self.push(DpAction::SetVlanTci(new)),
                _ => {}
            }
        }
        let dl = self.flow.get(layout::ETH_TYPE) as u16;
        match dl {
            ethertype::IP | ethertype::IPV6 => {
                if dl == ethertype::IP {
                    for (f, src) in [(layout::NW_SRC, true), (layout::NW_DST, false)] {
                        if written(f) {
                            self.unwild_field(f);
                            if changed(self, f) {
                                let a = self.flow.get(f) as u32;
                                self.push(if src {
                                    DpAction::SetIpv4Src(a)
                                } else {
                                    DpAction::SetIpv4Dst(a)
                                });
                            }
                        }
                    }
                } else {
                    for (f, src) in [(layout::IPV6_SRC, true), (layout::IPV6_DST, false)] {
                        let hi = f.hi as usize;
                        if w.words[hi] | w.words[hi + 1] != 0 {
                            self.out.mask.words[hi] = u64::MAX;
                            self.out.mask.words[hi + 1] = u64::MAX;
                            let v = self.flow.get128(f);
                            if v != self.base.get128(f) {
                                self.push(if src {
                                    DpAction::SetIpv6Src(v)
                                } else {
                                    DpAction::SetIpv6Dst(v)
                                });
                            }
                        }
                    }
                    if written(layout::IPV6_LABEL) {
                        return self.fail(DropReason::Unsupported(Unsupported::Rewrite));
                    }
                }
                if written(layout::NW_TOS) {
                    self.unwild_field(layout::NW_TOS);
                    let (o, n) = (
                        self.base.get(layout::NW_TOS) as u8,
                        self.flow.get(layout::NW_TOS) as u8,
                    );
                    if o != n {
                        self.push(DpAction::SetTos {
                            value: n,
                            mask: o ^ n,
                        });
                    }
                }
                if written(layout::NW_TTL) {
                    self.unwild_field(layout::NW_TTL);
                    if changed(self, layout::NW_TTL) {
                        self.push(DpAction::SetTtl(self.flow.get(layout::NW_TTL) as u8));
                    }
                }
                if written(layout::TP_SRC) || written(layout::TP_DST) {
                    self.unwild_field(layout::NW_PROTO);
                    let proto = self.flow.get(layout::NW_PROTO) as u8;
                    if !matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                        return self.fail(DropReason::Unsupported(Unsupported::Rewrite));
                    }
                    for (f, src) in [(layout::TP_SRC, true), (layout::TP_DST, false)] {
                        if written(f) {
                            self.unwild_field(f);
                            if changed(self, f) {
                                let p = self.flow.get(f) as u16;
                                self.push(if src {
                                    DpAction::SetTpSrc(p)
                                } else {
                                    DpAction::SetTpDst(p)
                                });
                            }
                        }
                    }
                }
                if written(layout::TCP_FLAGS) || w.get128(layout::ND_TARGET) != 0 {
                    return self.fail(DropReason::Unsupported(Unsupported::Rewrite));
                }
            }
            ethertype::ARP | ethertype::RARP => {
                if written(layout::NW_PROTO) {
                    self.unwild_field(layout::NW_PROTO);
                    if changed(self, layout::NW_PROTO) {
                        self.push(DpAction::SetArpOp(self.flow.get(layout::NW_PROTO) as u16));
                    }
                }
                for (f, which) in [(layout::NW_SRC, 0), (layout::NW_DST, 1)] {
                    if written(f) {
                        self.unwild_field(f);
                        if changed(self, f) {
                            let a = self.flow.get(f) as u32;
                            self.push(if which == 0 {
                                DpAction::SetArpSpa(a)
                            } else {
                                DpAction::SetArpTpa(a)
                            });
                        }
                    }
                }
                for (f, which) in [(layout::ARP_SHA, 0), (layout::ARP_THA, 1)] {
                    if written(f) {
                        self.unwild_field(f);
                        if changed(self, f) {
                            let mac = mac_bytes(self.flow.get(f));
                            self.push(if which == 0 {
                                DpAction::SetArpSha(mac)
                            } else {
                                DpAction::SetArpTha(mac)
                            });
                        }
                    }
                }
            }
            _ => {}
        }
        // The packet now carries the working key's packet fields.
        self.base = self.flow;
    }
}

/// Zeroes every `ct_*` field (ct_state, zone, mark, label, original tuple).
fn clear_ct_fields(k: &mut FlowKey) {
    for w in &mut k.words[10..19] {
        *w = 0;
    }
}

fn mac_bytes(v: u64) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// One round of a 64-bit multiply-xorshift mix (deterministic across runs and platforms).
#[inline]
fn fold(h: u64, v: u64) -> u64 {
    let mut x = (h ^ v).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}
