//! The OpenFlow pipeline: 255 tables, groups and meters, changed by flow/group/meter mods in
//! atomic bundles and published to the workers as one immutable [`PipelineSnapshot`].
//!
//! # Model
//! - Each table is an [`xvs_classifier::Classifier`] whose rules carry a [`FlowEntry`] (the
//!   [`Flow`] with its actions, cookie, timeouts and flags). Rule counters are the classifier's
//!   [`RuleStats`](xvs_classifier::RuleStats) atomics, kept across snapshots.
//! - Groups and meters are immutable maps shared between snapshots (`Arc`), copied when a bundle
//!   changes them.
//! - A [`PipelineSnapshot`] holds one snapshot of every table plus the group and meter maps: one
//!   pipeline-level version. Translation reads nothing else.
//!
//! # Flow-mod semantics (as Open vSwitch's `ofproto.c` for OpenFlow 1.2+)
//! - `add`: a flow with the same match and priority in the table is replaced. The counters (and
//!   the rule's place among equal-priority ties) carry over unless the new flow has
//!   `reset_counts`. `check_overlap` refuses a flow that overlaps another of the same priority.
//! - `modify` / `modify_strict`: the actions of every selected flow are replaced (the cookie
//!   too when the mod sets one); counters, timeouts, flags and creation time are kept unless
//!   `reset_counts`. A modify that selects nothing does nothing (OpenFlow 1.2+).
//! - `delete` / `delete_strict`: `table` omitted means every table; `cookie=V/M`, `out_port=`
//!   and `out_group=` filter the victims.
//! - Loose selection (`modify`, `delete`) takes every flow at least as specific as the mod's
//!   match, whatever its priority; strict selection takes the flow with exactly the match and
//!   priority.
//! - Validation at add/modify: `goto_table` must go forward (OVS `OFPBIC_BAD_TABLE_ID`);
//!   `group:N` needs group N to exist (`OFPBAC_BAD_OUT_GROUP`); `meter:N` needs meter N
//!   (`OFPMMFC_INVALID_METER`); `conjunction` may only be mixed with `note`
//!   (`NXBAC_BAD_CONJUNCTION`). Deleting a group or meter deletes the flows that use it.
//! - Groups: add (exists: `OFPGMFC_GROUP_EXISTS`), modify (missing: `OFPGMFC_UNKNOWN_GROUP`),
//!   delete (id or all; a missing id is not an error), insert_bucket (first, last or after a
//!   bucket id) and remove_bucket (first, last, all or an id). Meters: add, modify, delete.
//!
//! # Timeouts, learned flows, statistics
//! [`Pipeline::expire`] deletes flows past their hard or idle timeout (idle counts from the
//! last hit credited with [`Translation::credit`](crate::translate::Translation::credit)).
//! Deleting a flow whose `learn` has `delete_learned` deletes the flows of the learn's table
//! with the learn's cookie. [`PipelineSnapshot::dump_flows`] gives `dump-flows` entries with
//! counters and ages. Flows are stored without their match (the classifier rule holds it):
//! about 500 bytes per flow in the 100k-flow benchmark.
//!
//! # Bundles and versions
//! [`Pipeline::commit`] applies a list of mods in order to private forks of the tables (copy on
//! write, see `xvs-classifier`) and of the group/meter maps. If any mod fails, nothing changes
//! and the error names the mod. Otherwise every changed table is sealed and a new
//! `PipelineSnapshot` with the next version is published: first into an `ArcSwap`, then its
//! version into an `AtomicU64` with `Release`.
//!
//! # Thread safety
//! Single writer ([`Pipeline`], owned by the control thread), any number of lock-free readers
//! ([`PipelineReader`], one per worker). A reader loads the version with `Acquire` once per
//! batch and, only if it moved, the new `Arc<PipelineSnapshot>`; it keeps that `Arc` for the
//! whole batch, so a batch sees one version of every table, group and meter. Replaced snapshots
//! are kept by the writer until every live reader reports a newer version (then dropped on the
//! control thread), and [`Pipeline::readers_reached`] answers barriers.

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;
use xvs_classifier::publish::{Publisher, Reader, Versioned};
use xvs_classifier::{
    Bundle, Classifier, ClassifierError, Conjunction, Match as ClsMatch, Rule, Snapshot,
};

use crate::action::Action;
use crate::flow::{Flow, FlowFlags, FlowMod, FlowModCommand, FlowStats, Match};
use crate::group::{
    Bucket, Group, GroupCommand, GroupMod, BUCKET_FIRST, BUCKET_LAST, BUCKET_UNSET, GROUP_ALL,
    GROUP_MAX,
};
use crate::l2::L2State;
use crate::meter::Meter;
use crate::metering::MeterState;
use crate::names::{NameMap, Port};
use crate::stats::GroupStats;
use crate::tlv::{TlvCommand, TlvError, TlvMap, TlvMapping};

/// Number of OpenFlow tables (0..=254; 255 means "all tables" in mods).
pub const N_TABLES: usize = 255;
/// Table id meaning every table (`OFPTT_ALL`).
pub const TABLE_ALL: u8 = 255;
/// Largest bucket id (`OFPG15_BUCKET_MAX`).
pub const BUCKET_MAX: u32 = 0xffff_ff00;
/// Largest meter id (`OFPM13_MAX`).
pub const METER_MAX: u32 = 0xffff_0000;
/// Meter id meaning every meter (`OFPM13_ALL`).
pub const METER_ALL: u32 = 0xffff_ffff;

/// What a classifier rule of the pipeline carries: everything of the flow but its match and
/// priority (the rule holds those, once: a [`Match`] is 640 bytes), and its ages. The whole
/// flow is [`rule_flow`]; counters are the rule's `RuleStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEntry {
    /// Table id.
    pub table: u8,
    /// Cookie.
    pub cookie: u64,
    /// Idle timeout in seconds, 0 = none.
    pub idle_timeout: u16,
    /// Hard timeout in seconds, 0 = none.
    pub hard_timeout: u16,
    /// Importance.
    pub importance: u16,
    /// Flow-mod flags.
    pub flags: FlowFlags,
    /// Actions and instructions; empty = drop.
    pub actions: Vec<Action>,
    /// `now` of the mod that created the flow (kept by modifies, as OVS keeps `created`).
    pub created: u64,
    /// `now` of the last add or modify of the flow.
    pub modified: u64,
}

impl FlowEntry {
    /// The entry for `flow` added to `table` at `now`.
    pub fn new(flow: &Flow, table: u8, now: u64) -> Self {
        FlowEntry {
            table,
            cookie: flow.cookie,
            idle_timeout: flow.idle_timeout,
            hard_timeout: flow.hard_timeout,
            importance: flow.importance,
            flags: flow.flags,
            actions: flow.actions.clone(),
            created: now,
            modified: now,
        }
    }
}

/// The whole flow a rule holds (match and priority from the rule; no statistics).
pub fn rule_flow(rule: &FlowRule) -> Flow {
    let e = rule.payload();
    let m = rule.to_match();
    Flow {
        table: e.table,
        priority: u16::try_from(rule.priority()).unwrap_or(u16::MAX),
        cookie: e.cookie,
        idle_timeout: e.idle_timeout,
        hard_timeout: e.hard_timeout,
        importance: e.importance,
        flags: e.flags,
        match_: Match::from_keys(*m.value(), *m.mask()),
        actions: e.actions.clone(),
        stats: None,
    }
}

/// A rule of a pipeline table.
pub type FlowRule = Rule<FlowEntry>;

/// Meter-mod commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterCommand {
    /// `add-meter`.
    Add,
    /// `mod-meter`.
    Modify,
    /// `del-meters` / `del-meter`.
    Delete,
}

/// A meter mod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterMod {
    /// The command.
    pub command: MeterCommand,
    /// The meter (for deletes only `meter_id` matters; [`METER_ALL`] deletes every meter).
    pub meter: Meter,
}

/// One change in a bundle.
// Flow mods are nearly every element of a bundle; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineMod {
    /// A flow mod.
    Flow(FlowMod),
    /// A group mod.
    Group(GroupMod),
    /// A meter mod.
    Meter(MeterMod),
}

/// Why a mod was refused. Variants name the OpenFlow error OVS would send.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    /// The mod names table 255 (or more) where one table is required (`OFPFMFC_BAD_TABLE_ID`).
    #[error("table {0} does not exist")]
    BadTable(u8),
    /// `goto_table` to a table that is not after the flow's own (`OFPBIC_BAD_TABLE_ID`).
    #[error("goto_table:{to} in table {from}: goto_table must go to a later table")]
    BadGotoTable {
        /// The flow's table.
        from: u8,
        /// The goto target.
        to: u8,
    },
    /// `goto_table` that is not the last action (`OFPBIC_UNSUP_INST`).
    #[error("goto_table must be the last instruction")]
    GotoNotLast,
    /// A group bucket with `goto_table` (only `resubmit` can leave a bucket).
    #[error("group {0}: goto_table is not allowed in a bucket")]
    GotoInBucket(u32),
    /// A `group:N` action naming a group that does not exist (`OFPBAC_BAD_OUT_GROUP`).
    #[error("group {0} does not exist")]
    BadOutGroup(u32),
    /// A `meter:N` action naming a meter that does not exist (`OFPMMFC_INVALID_METER`).
    #[error("meter {0} does not exist")]
    InvalidMeter(u32),
    /// `conjunction` mixed with actions other than `note` (`NXBAC_BAD_CONJUNCTION`).
    #[error(
        "\"conjunction\" actions may be used along with \"note\" but not any other kind of action"
    )]
    BadConjunction,
    /// `check_overlap` was given and the flow overlaps another of the same priority
    /// (`OFPFMFC_OVERLAP`).
    #[error("flow overlaps an existing flow of the same priority")]
    Overlap,
    /// The classifier refused the rule (bad conjunction clause numbers and the like).
    #[error("classifier: {0}")]
    Classifier(#[from] ClassifierError),
    /// A group add for an id that exists (`OFPGMFC_GROUP_EXISTS`).
    #[error("group {0} already exists")]
    GroupExists(u32),
    /// A group modify or bucket command for an id that does not exist
    /// (`OFPGMFC_UNKNOWN_GROUP`).
    #[error("group {0} does not exist")]
    UnknownGroup(u32),
    /// A group id above the maximum (`OFPGMFC_INVALID_GROUP`).
    #[error("invalid group id {0}")]
    InvalidGroup(u32),
    /// Two buckets of a group with one id (`OFPGMFC_BUCKET_EXISTS`).
    #[error("group {group}: duplicate bucket id {bucket}")]
    BucketExists {
        /// The group.
        group: u32,
        /// The repeated bucket id.
        bucket: u32,
    },
    /// A bucket command naming a bucket the group does not have (`OFPGMFC_UNKNOWN_BUCKET`).
    #[error("group {group}: no bucket {bucket}")]
    UnknownBucket {
        /// The group.
        group: u32,
        /// The bucket id.
        bucket: u32,
    },
    /// A meter add for an id that exists (`OFPMMFC_METER_EXISTS`).
    #[error("meter {0} already exists")]
    MeterExists(u32),
    /// A meter modify for an id that does not exist (`OFPMMFC_UNKNOWN_METER`).
    #[error("meter {0} does not exist")]
    UnknownMeter(u32),
    /// A meter id of 0 or above the maximum (`OFPMMFC_INVALID_METER`).
    #[error("invalid meter id {0}")]
    BadMeterId(u32),
}

/// A refused bundle: which mod (0-based position) failed and why. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("mod {index}: {error}")]
pub struct BundleError {
    /// Position of the failing mod in the bundle.
    pub index: usize,
    /// The reason.
    pub error: PipelineError,
}

/// An error of [`load_flows`]: the line (1-based) and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    /// A line did not parse; `message` is the parser's (ovs-ofctl wording).
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A line parsed but the pipeline refused it; nothing was committed.
    #[error("line {line}: {error}")]
    Refused {
        /// 1-based line number.
        line: usize,
        /// The reason.
        error: PipelineError,
    },
}

/// What a committed bundle did.
#[derive(Debug, Default)]
pub struct CommitReport {
    /// The published pipeline version.
    pub version: u64,
    /// Flows added (new match/priority).
    pub added: usize,
    /// Flows replaced by an add or changed by a modify.
    pub modified: usize,
    /// Flows deleted (by flow deletes, or with a deleted group or meter), with their final
    /// counters (for flow-removed messages).
    pub removed: Vec<Arc<FlowRule>>,
}

/// One immutable version of the whole pipeline: what a worker translates against.
pub struct PipelineSnapshot {
    version: u64,
    tables: Box<[Arc<Snapshot<FlowEntry>>]>,
    groups: Arc<HashMap<u32, Arc<Group>>>,
    meters: Arc<HashMap<u32, Arc<Meter>>>,
    /// The meters' rate limiters, shared with the snapshots before and after as long as the
    /// meter is unchanged.
    meter_states: Arc<HashMap<u32, Arc<MeterState>>>,
    /// The bridge's ports and MAC table (NORMAL, FLOOD, ALL).
    l2: Arc<L2State>,
    /// Group and bucket counters, shared with other snapshots while the group is unchanged.
    group_stats: Arc<HashMap<u32, Arc<GroupStats>>>,
    /// Geneve option <-> `tun_metadata<n>` mappings (`NXT_TLV_TABLE_MOD`).
    tlv: TlvMap,
}

impl std::fmt::Debug for PipelineSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSnapshot")
            .field("version", &self.version)
            .field("flows", &self.n_flows())
            .field("groups", &self.groups.len())
            .field("meters", &self.meters.len())
            .finish()
    }
}

impl PipelineSnapshot {
    /// The pipeline version (0 = the initial empty pipeline).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Table `t`, or `None` for 255.
    #[inline]
    pub fn table(&self, t: u8) -> Option<&Snapshot<FlowEntry>> {
        self.tables.get(usize::from(t)).map(|s| &**s)
    }

    /// Group `id`.
    #[inline]
    pub fn group(&self, id: u32) -> Option<&Group> {
        self.groups.get(&id).map(|g| &**g)
    }

    /// Meter `id`.
    #[inline]
    pub fn meter(&self, id: u32) -> Option<&Meter> {
        self.meters.get(&id).map(|m| &**m)
    }

    /// The rate limiter of meter `id` (what the datapath's meter action runs).
    #[inline]
    pub fn meter_state(&self, id: u32) -> Option<&Arc<MeterState>> {
        self.meter_states.get(&id)
    }

    /// The counters of group `id`.
    #[inline]
    pub fn group_stats(&self, id: u32) -> Option<&Arc<GroupStats>> {
        self.group_stats.get(&id)
    }

    /// The bridge's ports and MAC table.
    #[inline]
    pub fn l2(&self) -> &L2State {
        &self.l2
    }

    /// The tunnel-option map of this version.
    #[inline]
    pub fn tlv(&self) -> &TlvMap {
        &self.tlv
    }

    /// Every group.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values().map(|g| &**g)
    }

    /// Every meter.
    pub fn meters(&self) -> impl Iterator<Item = &Meter> {
        self.meters.values().map(|m| &**m)
    }

    /// Number of flows in all tables.
    pub fn n_flows(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    /// Every flow of every table, table by table (unordered within a table).
    pub fn flows(&self) -> impl Iterator<Item = &Arc<FlowRule>> {
        self.tables.iter().flat_map(|t| t.iter())
    }

    /// The flows of `table` ([`TABLE_ALL`]: every table) as `dump-flows` reports them, with
    /// their statistics at `now` (milliseconds, the clock of [`Pipeline::commit`] and
    /// [`Translation::credit`](crate::translate::Translation::credit)): counters from the
    /// rules' `RuleStats`, `duration` since the add, `idle_age` since the last hit (or the add),
    /// `hard_age` since the last add/modify. Ordered by table, then priority (highest first).
    pub fn dump_flows(&self, table: u8, now: u64) -> Vec<Flow> {
        let mut rules: Vec<&Arc<FlowRule>> = if table == TABLE_ALL {
            self.flows().collect()
        } else {
            self.table(table)
                .map(|t| t.iter().collect())
                .unwrap_or_default()
        };
        rules.sort_by_key(|r| (r.payload().table, std::cmp::Reverse(r.priority()), r.seq()));
        rules.into_iter().map(|r| dumped_flow(r, now)).collect()
    }
}

/// One rule as `dump-flows` reports it at `now` (see [`PipelineSnapshot::dump_flows`]).
pub fn dumped_flow(rule: &FlowRule, now: u64) -> Flow {
    let e = rule.payload();
    let mut f = rule_flow(rule);
    let age = now.saturating_sub(e.created);
    let secs = |ms: u64| u32::try_from(ms / 1000).unwrap_or(u32::MAX);
    let used = rule.stats().last_used().max(e.created);
    f.stats = Some(FlowStats {
        duration_sec: secs(age),
        duration_nsec: ((age % 1000) * 1_000_000) as u32,
        n_packets: Some(rule.stats().packets()),
        n_bytes: Some(rule.stats().bytes()),
        idle_age: Some(secs(now.saturating_sub(used))),
        hard_age: Some(secs(now.saturating_sub(e.modified))),
    });
    f
}

/// The control side of the pipeline (single writer). See the module documentation.
pub struct Pipeline {
    tables: Vec<Classifier<FlowEntry>>,
    groups: Arc<HashMap<u32, Arc<Group>>>,
    meters: Arc<HashMap<u32, Arc<Meter>>>,
    meter_states: Arc<HashMap<u32, Arc<MeterState>>>,
    l2: Arc<L2State>,
    group_stats: Arc<HashMap<u32, Arc<GroupStats>>>,
    tlv: TlvMap,
    /// `fin_idle_timeout`/`fin_hard_timeout` of learned flows, by (table, priority, match):
    /// applied by [`expire`](Self::expire) once a TCP FIN or RST went through the flow.
    fin_timeouts: HashMap<(u8, u32, ClsMatch), (u16, u16)>,
    publisher: Publisher<PipelineSnapshot>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("current", self.publisher.current())
            .field("retired", &self.publisher.retired())
            .field("readers", &self.publisher.readers())
            .finish()
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    /// An empty pipeline at version 0.
    pub fn new() -> Self {
        let tables: Vec<Classifier<FlowEntry>> = (0..N_TABLES).map(|_| Classifier::new()).collect();
        let groups = Arc::new(HashMap::new());
        let meters = Arc::new(HashMap::new());
        let snap = Arc::new(PipelineSnapshot {
            version: 0,
            tables: tables.iter().map(|c| Arc::clone(c.snapshot())).collect(),
            groups: Arc::clone(&groups),
            meters: Arc::clone(&meters),
            meter_states: Arc::default(),
            l2: Arc::default(),
            group_stats: Arc::default(),
            tlv: TlvMap::default(),
        });
        Pipeline {
            tables,
            groups,
            meters,
            meter_states: Arc::default(),
            l2: Arc::default(),
            group_stats: Arc::default(),
            tlv: TlvMap::default(),
            fin_timeouts: HashMap::new(),
            publisher: Publisher::new(snap),
        }
    }

    /// The newest published snapshot.
    pub fn snapshot(&self) -> &Arc<PipelineSnapshot> {
        self.publisher.current()
    }

    /// The newest published version.
    pub fn version(&self) -> u64 {
        self.publisher.version()
    }

    /// A reader for one worker.
    pub fn reader(&mut self) -> PipelineReader {
        self.publisher.reader()
    }

    /// The oldest version a live reader still uses (the current one without readers).
    pub fn min_reader_version(&mut self) -> u64 {
        self.publisher.min_reader_version()
    }

    /// True when every live reader runs `version` or newer (an OpenFlow barrier can be
    /// answered for a commit that returned `version`).
    pub fn readers_reached(&mut self, version: u64) -> bool {
        self.publisher.readers_reached(version)
    }

    /// Drops replaced snapshots no reader can still hold (also done on every commit).
    pub fn reclaim(&mut self) {
        self.publisher.reclaim();
    }

    /// Deletes, as one bundle, every flow whose hard timeout has passed
    /// (`created + hard_timeout` ≤ `now`) or that has been idle for its idle timeout (last hit,
    /// or last add/modify if later, + `idle_timeout` ≤ `now`). Timeouts are in seconds and
    /// `now` in milliseconds of the clock given to [`commit`](Self::commit) and to
    /// [`Translation::credit`](crate::translate::Translation::credit). Publishes a version only
    /// if something expired; the report lists the removed flows (flow-removed messages).
    pub fn expire(&mut self, now: u64) -> CommitReport {
        let mut mods = Vec::new();
        if !self.fin_timeouts.is_empty() {
            // Forget the fin timeouts of learned flows that went another way.
            let snap = Arc::clone(self.publisher.current());
            self.fin_timeouts.retain(|(t, prio, m), _| {
                snap.table(*t)
                    .and_then(|tb| tb.find_strict(m, *prio))
                    .is_some()
            });
        }
        for r in self.publisher.current().flows() {
            let e = r.payload();
            let (mut idle_timeout, mut hard_timeout) = (e.idle_timeout, e.hard_timeout);
            let mut hard_from = e.created;
            if let Some(fin_at) = r.stats().fin_at() {
                let key = (e.table, r.priority(), r.to_match());
                if let Some(&(fin_idle, fin_hard)) = self.fin_timeouts.get(&key) {
                    // As OVS's fin_timeout: the smaller timeout wins; a fin hard timeout
                    // counts from the FIN.
                    let reduce = |max: u16, t: &mut u16| {
                        if max != 0 && (*t == 0 || *t > max) {
                            *t = max;
                        }
                    };
                    reduce(fin_idle, &mut idle_timeout);
                    if fin_hard != 0 && (hard_timeout == 0 || fin_hard < hard_timeout) {
                        hard_timeout = fin_hard;
                        hard_from = fin_at;
                    }
                }
            }
            let hard = hard_timeout != 0
                && hard_from.saturating_add(u64::from(hard_timeout) * 1000) <= now;
            let last = r.stats().last_used().max(e.modified);
            let idle =
                idle_timeout != 0 && last.saturating_add(u64::from(idle_timeout) * 1000) <= now;
            if hard || idle {
                mods.push(PipelineMod::Flow(FlowMod {
                    command: FlowModCommand::DeleteStrict,
                    flow: rule_flow(r),
                    table_given: true,
                    cookie_mask: 0,
                    modify_cookie: false,
                    out_port: Port::NONE,
                    out_group: u32::MAX,
                }));
            }
        }
        if mods.is_empty() {
            return CommitReport {
                version: self.publisher.version(),
                ..CommitReport::default()
            };
        }
        // Strict deletes of existing flows cannot fail.
        self.commit(&mods, now).unwrap_or_else(|_| CommitReport {
            version: self.publisher.version(),
            ..CommitReport::default()
        })
    }

    /// Installs the flows `learn` actions produced (the
    /// [`learned`](crate::translate::Translation::learned) requests of translations, collected
    /// over a batch of packets) in one bundle. A refused learned flow does not hold back the others: it is dropped from the
    /// bundle and returned with its position and reason (OVS logs and ignores such failures).
    pub fn apply_learned(
        &mut self,
        learned: &[crate::translate::LearnRequest],
        now: u64,
    ) -> (CommitReport, Vec<(usize, PipelineError)>) {
        for l in learned {
            let f = &l.flow_mod.flow;
            if l.fin_timeouts != (0, 0) {
                let key = (f.table, u32::from(f.priority), classifier_match(&f.match_));
                self.fin_timeouts.insert(key, l.fin_timeouts);
            }
        }
        let mut mods: Vec<(usize, PipelineMod)> = learned
            .iter()
            .enumerate()
            .map(|(i, l)| (i, PipelineMod::Flow(l.flow_mod.clone())))
            .collect();
        let mut refused = Vec::new();
        loop {
            let batch: Vec<PipelineMod> = mods.iter().map(|(_, m)| m.clone()).collect();
            match self.commit(&batch, now) {
                Ok(report) => return (report, refused),
                Err(e) if e.index < mods.len() => {
                    let (i, _) = mods.remove(e.index);
                    refused.push((i, e.error));
                }
                Err(e) => {
                    refused.push((e.index, e.error));
                    return (
                        CommitReport {
                            version: self.publisher.version(),
                            ..CommitReport::default()
                        },
                        refused,
                    );
                }
            }
        }
    }

    /// Sets the bridge's ports (what `FLOOD`, `ALL` and `NORMAL` send to) and publishes a new
    /// version. MACs learned on ports that left are forgotten at the next
    /// [`age_macs`](Self::age_macs).
    pub fn set_ports(&mut self, ports: &[u32], now: u64) -> u64 {
        self.l2 = Arc::new(self.l2.with_ports(ports));
        self.publish_unchanged_tables(now)
    }

    /// Applies MACs learned by NORMAL translations. A new or moved MAC publishes a new version
    /// (the workers' caches flush, so nothing derived from the old MAC table is used after
    /// this returns); MACs already on their port only have their use time refreshed. Returns
    /// whether a version was published.
    pub fn learn_macs(&mut self, learned: &[crate::l2::MacLearning], now: u64) -> bool {
        match self.l2.learn(learned, now) {
            Some(next) => {
                self.l2 = Arc::new(next);
                self.publish_unchanged_tables(now);
                true
            }
            None => false,
        }
    }

    /// Forgets MACs unused for `max_idle` ms at `now` (or on ports that left the bridge),
    /// publishing a new version if any went. Returns how many went.
    pub fn age_macs(&mut self, now: u64, max_idle: u64) -> usize {
        let Some(next) = self.l2.aged(now, max_idle) else {
            return 0;
        };
        let gone = self.l2.len() - next.len();
        self.l2 = Arc::new(next);
        self.publish_unchanged_tables(now);
        gone
    }

    /// The tunnel-option map.
    pub fn tlv(&self) -> &TlvMap {
        &self.tlv
    }

    /// Applies an `NXT_TLV_TABLE_MOD` (all or nothing) and publishes it as a new version, so
    /// no megaflow decoded or encapsulated with the old map survives. As in OVS, flows that
    /// use a changed mapping are not checked (OVS: "undefined").
    pub fn tlv_table_mod(
        &mut self,
        command: TlvCommand,
        maps: &[TlvMapping],
        now: u64,
    ) -> Result<u64, TlvError> {
        self.tlv = self.tlv.apply(command, maps)?;
        Ok(self.publish_unchanged_tables(now))
    }

    /// Publishes the next version with the tables as they are (after an L2 change).
    fn publish_unchanged_tables(&mut self, now: u64) -> u64 {
        // An empty bundle cannot fail.
        self.commit(&[], now)
            .map_or_else(|_| self.publisher.version(), |r| r.version)
    }

    /// Applies one mod as its own bundle.
    pub fn apply(&mut self, m: PipelineMod, now: u64) -> Result<CommitReport, BundleError> {
        self.commit(std::slice::from_ref(&m), now)
    }

    /// Applies `mods` in order as one atomic bundle and publishes the result as the next
    /// version. On error nothing changes and the failing mod is named. `now` stamps the flows'
    /// creation and modification times (any monotonic clock, e.g. milliseconds).
    pub fn commit(&mut self, mods: &[PipelineMod], now: u64) -> Result<CommitReport, BundleError> {
        let mut report = CommitReport::default();
        let (groups, meters) = {
            let mut st = Staging {
                slots: self.tables.iter_mut().map(Slot::Idle).collect(),
                groups: Arc::clone(&self.groups),
                meters: Arc::clone(&self.meters),
                now,
            };
            for (index, m) in mods.iter().enumerate() {
                st.apply(m, &mut report)
                    .map_err(|error| BundleError { index, error })?;
            }
            for slot in st.slots {
                if let Slot::Open(b) = slot {
                    b.commit();
                }
            }
            (st.groups, st.meters)
        };
        if !Arc::ptr_eq(&groups, &self.groups) {
            let stats = groups
                .iter()
                .map(|(&id, g)| {
                    let s = match self.group_stats.get(&id) {
                        Some(old) if Arc::ptr_eq(old.group(), g) => Arc::clone(old),
                        _ => Arc::new(GroupStats::new(Arc::clone(g))),
                    };
                    (id, s)
                })
                .collect();
            self.group_stats = Arc::new(stats);
        }
        self.groups = groups;
        if !Arc::ptr_eq(&meters, &self.meters) {
            // A meter keeps its limiter while its configuration is the same `Arc`; an added or
            // modified meter starts with a full burst.
            let states = meters
                .iter()
                .map(|(&id, m)| {
                    let state = match self.meter_states.get(&id) {
                        Some(old) if Arc::ptr_eq(old.config(), m) => Arc::clone(old),
                        _ => Arc::new(MeterState::new(Arc::clone(m))),
                    };
                    (id, state)
                })
                .collect();
            self.meter_states = Arc::new(states);
        }
        self.meters = meters;
        let version = self.publisher.version() + 1;
        let snap = Arc::new(PipelineSnapshot {
            version,
            tables: self
                .tables
                .iter()
                .map(|c| Arc::clone(c.snapshot()))
                .collect(),
            groups: Arc::clone(&self.groups),
            meters: Arc::clone(&self.meters),
            meter_states: Arc::clone(&self.meter_states),
            l2: Arc::clone(&self.l2),
            group_stats: Arc::clone(&self.group_stats),
            tlv: self.tlv,
        });
        self.publisher.publish(snap);
        report.version = version;
        Ok(report)
    }
}

/// A worker's handle on the pipeline: lock-free; allocation-free except when adopting a new
/// version (an `Arc` clone). Call [`Reader::refresh`] once per batch.
pub type PipelineReader = Reader<PipelineSnapshot>;

impl Versioned for PipelineSnapshot {
    fn version(&self) -> u64 {
        self.version
    }
}

enum Slot<'a> {
    Idle(&'a mut Classifier<FlowEntry>),
    Open(Bundle<'a, FlowEntry>),
    /// Only while switching from idle to open.
    Switching,
}

struct Staging<'a> {
    slots: Vec<Slot<'a>>,
    groups: Arc<HashMap<u32, Arc<Group>>>,
    meters: Arc<HashMap<u32, Arc<Meter>>>,
    now: u64,
}

/// Converts a flow match into a classifier match.
pub fn classifier_match(m: &Match) -> ClsMatch {
    ClsMatch::new(*m.value(), *m.mask())
}

/// The conjunction clauses a flow's actions declare.
pub fn conjunctions_of(actions: &[Action]) -> Vec<Conjunction> {
    actions
        .iter()
        .filter_map(|a| match *a {
            Action::Conjunction {
                id,
                clause,
                n_clauses,
            } => Some(Conjunction {
                id,
                clause,
                n_clauses,
            }),
            _ => None,
        })
        .collect()
}

/// True when `actions` (or a nested `ct(exec(...))`) output to `port` (OVS
/// `ofpacts_output_to_port`). `output:REG` counts for any port, as the port is unknown.
fn outputs_to_port(actions: &[Action], port: Port) -> bool {
    actions.iter().any(|a| match a {
        Action::Output { port: p, .. } => *p == port,
        Action::OutputReg { .. } => true,
        Action::Controller(_) => port == Port::CONTROLLER,
        _ => false,
    })
}

fn uses_group(actions: &[Action], group: u32) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Group(g) if *g == group || group == GROUP_ALL))
}

fn uses_meter(actions: &[Action], meter: u32) -> bool {
    actions.iter().any(|a| match a {
        Action::Meter(m) => *m == meter || meter == METER_ALL,
        Action::Controller(c) => c.meter_id.is_some_and(|m| m == meter || meter == METER_ALL),
        _ => false,
    })
}

impl<'a> Staging<'a> {
    fn view(&self, t: usize) -> Option<&Snapshot<FlowEntry>> {
        match self.slots.get(t)? {
            Slot::Idle(c) => Some(c.snapshot()),
            Slot::Open(b) => Some(b.pending()),
            Slot::Switching => None,
        }
    }

    fn open(&mut self, t: usize) -> Option<&mut Bundle<'a, FlowEntry>> {
        let slot = self.slots.get_mut(t)?;
        if let Slot::Idle(_) = slot {
            if let Slot::Idle(c) = std::mem::replace(slot, Slot::Switching) {
                *slot = Slot::Open(c.bundle());
            }
        }
        match slot {
            Slot::Open(b) => Some(b),
            _ => None,
        }
    }

    fn apply(&mut self, m: &PipelineMod, report: &mut CommitReport) -> Result<(), PipelineError> {
        match m {
            PipelineMod::Flow(fm) => self.flow_mod(fm, report),
            PipelineMod::Group(gm) => self.group_mod(gm, report),
            PipelineMod::Meter(mm) => self.meter_mod(mm, report),
        }
    }

    /// OVS's action consistency checks for a flow in `table`.
    fn check_actions(&self, table: u8, actions: &[Action]) -> Result<(), PipelineError> {
        let n = actions.len();
        let has_conj = actions
            .iter()
            .any(|a| matches!(a, Action::Conjunction { .. }));
        for (i, a) in actions.iter().enumerate() {
            match a {
                Action::GotoTable(to) => {
                    if i + 1 != n {
                        return Err(PipelineError::GotoNotLast);
                    }
                    if *to <= table || usize::from(*to) >= N_TABLES {
                        return Err(PipelineError::BadGotoTable {
                            from: table,
                            to: *to,
                        });
                    }
                }
                Action::Group(g) if !self.groups.contains_key(g) => {
                    return Err(PipelineError::BadOutGroup(*g));
                }
                Action::Meter(m) if !self.meters.contains_key(m) => {
                    return Err(PipelineError::InvalidMeter(*m));
                }
                Action::Conjunction { .. } | Action::Note(_) => {}
                _ if has_conj => return Err(PipelineError::BadConjunction),
                _ => {}
            }
        }
        Ok(())
    }

    fn tables_of(fm: &FlowMod) -> Result<std::ops::Range<usize>, PipelineError> {
        if !fm.table_given || fm.flow.table == TABLE_ALL {
            Ok(0..N_TABLES)
        } else {
            let t = usize::from(fm.flow.table);
            Ok(t..t + 1)
        }
    }

    fn flow_mod(&mut self, fm: &FlowMod, report: &mut CommitReport) -> Result<(), PipelineError> {
        match fm.command {
            FlowModCommand::Add => self.add_flow(fm, report),
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                self.modify_flows(fm, fm.command == FlowModCommand::ModifyStrict, report)
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let strict = fm.command == FlowModCommand::DeleteStrict;
                let m = classifier_match(&fm.flow.match_);
                let prio = u32::from(fm.flow.priority);
                for t in Self::tables_of(fm)? {
                    let victims = self.select(t, fm, strict, &m, prio, true);
                    self.delete_rules(t, victims, report);
                }
                Ok(())
            }
        }
    }

    /// The (match, priority) of the flows of table `t` a modify/delete selects.
    fn select(
        &self,
        t: usize,
        fm: &FlowMod,
        strict: bool,
        m: &ClsMatch,
        prio: u32,
        filters: bool,
    ) -> Vec<(ClsMatch, u32)> {
        let Some(view) = self.view(t) else {
            return Vec::new();
        };
        let keep = |r: &Arc<FlowRule>| {
            let f = r.payload();
            (f.cookie ^ fm.flow.cookie) & fm.cookie_mask == 0
                && (!filters
                    || fm.out_port == Port::NONE
                    || outputs_to_port(&f.actions, fm.out_port))
                && (!filters || fm.out_group == u32::MAX || uses_group(&f.actions, fm.out_group))
        };
        if strict {
            view.find_strict(m, prio)
                .filter(|r| keep(r))
                .map(|r| vec![(r.to_match(), r.priority())])
                .unwrap_or_default()
        } else if m.mask() == &xvs_packet::FlowKey::ZERO {
            view.iter()
                .filter(|r| keep(r))
                .map(|r| (r.to_match(), r.priority()))
                .collect()
        } else {
            view.iter_loose(m)
                .filter(|r| keep(r))
                .map(|r| (r.to_match(), r.priority()))
                .collect()
        }
    }

    /// Deletes `victims` from table `t`, then (OVS `delete_learned`) the flows that deleted
    /// `learn(..., delete_learned)` actions installed: the flows of the learn's table with the
    /// learn's cookie (learned flows carry it; Antrea makes it unique per learning flow).
    fn delete_rules(&mut self, t: usize, victims: Vec<(ClsMatch, u32)>, report: &mut CommitReport) {
        let mut pending = vec![(t, victims)];
        while let Some((t, victims)) = pending.pop() {
            if victims.is_empty() {
                continue;
            }
            let first_new = report.removed.len();
            if let Some(b) = self.open(t) {
                for (m, p) in victims {
                    if let Some(r) = b.delete_strict(&m, p) {
                        report.removed.push(r);
                    }
                }
            }
            let learned: Vec<(u8, u64)> = report.removed[first_new..]
                .iter()
                .flat_map(|r| r.payload().actions.iter())
                .filter_map(|a| match a {
                    Action::Learn(l) if l.delete_learned => Some((l.table, l.cookie)),
                    _ => None,
                })
                .collect();
            for (table, cookie) in learned {
                let lt = usize::from(table);
                let Some(view) = self.view(lt) else { continue };
                let v: Vec<(ClsMatch, u32)> = view
                    .iter()
                    .filter(|r| r.payload().cookie == cookie)
                    .map(|r| (r.to_match(), r.priority()))
                    .collect();
                pending.push((lt, v));
            }
        }
    }

    fn add_flow(&mut self, fm: &FlowMod, report: &mut CommitReport) -> Result<(), PipelineError> {
        let table = if fm.table_given { fm.flow.table } else { 0 };
        if usize::from(table) >= N_TABLES {
            return Err(PipelineError::BadTable(table));
        }
        self.check_actions(table, &fm.flow.actions)?;
        let m = classifier_match(&fm.flow.match_);
        let prio = u32::from(fm.flow.priority);
        let conj = conjunctions_of(&fm.flow.actions);
        let t = usize::from(table);
        let existing = self
            .view(t)
            .and_then(|v| v.find_strict(&m, prio))
            .map(|r| r.payload().created);
        if fm.flow.flags.0 & FlowFlags::CHECK_OVERLAP != 0 {
            if let Some(view) = self.view(t) {
                let overlaps = view.iter().any(|r| {
                    r.priority() == prio && {
                        let o = r.to_match();
                        let both = o.mask().masked(m.mask());
                        o.value().masked(&both) == m.value().masked(&both)
                    }
                });
                if overlaps {
                    return Err(PipelineError::Overlap);
                }
            }
        }
        let entry = FlowEntry::new(&fm.flow, table, self.now);
        let reset = fm.flow.flags.0 & FlowFlags::RESET_COUNTS != 0;
        let Some(b) = self.open(t) else {
            return Err(PipelineError::BadTable(table));
        };
        match existing {
            Some(_) if !reset => {
                b.modify_strict(&m, prio, entry, &conj)?;
                report.modified += 1;
            }
            Some(_) => {
                b.insert(&m, prio, entry, &conj)?;
                report.modified += 1;
            }
            None => {
                b.insert(&m, prio, entry, &conj)?;
                report.added += 1;
            }
        }
        Ok(())
    }

    fn modify_flows(
        &mut self,
        fm: &FlowMod,
        strict: bool,
        report: &mut CommitReport,
    ) -> Result<(), PipelineError> {
        let m = classifier_match(&fm.flow.match_);
        let prio = u32::from(fm.flow.priority);
        let conj = conjunctions_of(&fm.flow.actions);
        let reset = fm.flow.flags.0 & FlowFlags::RESET_COUNTS != 0;
        let now = self.now;
        for t in Self::tables_of(fm)? {
            let targets = self.select(t, fm, strict, &m, prio, false);
            if targets.is_empty() {
                continue;
            }
            let table = t as u8;
            self.check_actions(table, &fm.flow.actions)?;
            let Some(b) = self.open(t) else { continue };
            for (rm, rp) in targets {
                let Some(old) = b.pending().find_strict(&rm, rp) else {
                    continue;
                };
                let mut entry = old.payload().clone();
                entry.actions = fm.flow.actions.clone();
                if fm.modify_cookie {
                    entry.cookie = fm.flow.cookie;
                }
                entry.modified = now;
                if reset {
                    b.insert(&rm, rp, entry, &conj)?;
                } else {
                    b.modify_strict(&rm, rp, entry, &conj)?;
                }
                report.modified += 1;
            }
        }
        Ok(())
    }

    /// Deletes every flow (all tables) whose actions satisfy `pred`.
    fn delete_flows_where(&mut self, pred: impl Fn(&[Action]) -> bool, report: &mut CommitReport) {
        for t in 0..N_TABLES {
            let victims: Vec<(ClsMatch, u32)> = match self.view(t) {
                Some(v) if !v.is_empty() => v
                    .iter()
                    .filter(|r| pred(&r.payload().actions))
                    .map(|r| (r.to_match(), r.priority()))
                    .collect(),
                _ => continue,
            };
            self.delete_rules(t, victims, report);
        }
    }

    fn check_buckets(&self, g: &Group) -> Result<(), PipelineError> {
        let mut seen = std::collections::HashSet::new();
        for b in &g.buckets {
            if b.bucket_id != BUCKET_UNSET && !seen.insert(b.bucket_id) {
                return Err(PipelineError::BucketExists {
                    group: g.group_id,
                    bucket: b.bucket_id,
                });
            }
            for a in &b.actions {
                match a {
                    Action::Group(id) if !self.groups.contains_key(id) && *id != g.group_id => {
                        return Err(PipelineError::BadOutGroup(*id))
                    }
                    Action::Meter(id) if !self.meters.contains_key(id) => {
                        return Err(PipelineError::InvalidMeter(*id))
                    }
                    Action::GotoTable(_) => return Err(PipelineError::GotoInBucket(g.group_id)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Assigns ids to buckets without one: one more than the largest id in use.
    fn number_buckets(buckets: &mut [Bucket], existing: &[Bucket]) {
        let mut next = existing
            .iter()
            .chain(buckets.iter())
            .filter(|b| b.bucket_id <= BUCKET_MAX)
            .map(|b| b.bucket_id + 1)
            .max()
            .unwrap_or(0);
        for b in buckets.iter_mut() {
            if b.bucket_id == BUCKET_UNSET {
                b.bucket_id = next;
                next = next.saturating_add(1);
            }
        }
    }

    fn group_mod(&mut self, gm: &GroupMod, report: &mut CommitReport) -> Result<(), PipelineError> {
        let id = gm.group.group_id;
        match gm.command {
            GroupCommand::Add | GroupCommand::Modify => {
                if id > GROUP_MAX {
                    return Err(PipelineError::InvalidGroup(id));
                }
                let exists = self.groups.contains_key(&id);
                if gm.command == GroupCommand::Add && exists {
                    return Err(PipelineError::GroupExists(id));
                }
                if gm.command == GroupCommand::Modify && !exists {
                    return Err(PipelineError::UnknownGroup(id));
                }
                self.check_buckets(&gm.group)?;
                let mut g = gm.group.clone();
                Self::number_buckets(&mut g.buckets, &[]);
                Arc::make_mut(&mut self.groups).insert(id, Arc::new(g));
            }
            GroupCommand::Delete => {
                if id == GROUP_ALL {
                    if !self.groups.is_empty() {
                        Arc::make_mut(&mut self.groups).clear();
                    }
                } else if self.groups.contains_key(&id) {
                    Arc::make_mut(&mut self.groups).remove(&id);
                } else {
                    return Ok(());
                }
                self.delete_flows_where(|a| uses_group(a, id), report);
            }
            GroupCommand::InsertBucket | GroupCommand::RemoveBucket => {
                let old = self
                    .groups
                    .get(&id)
                    .cloned()
                    .ok_or(PipelineError::UnknownGroup(id))?;
                let mut g = (*old).clone();
                let pos_of = |bid: u32| g.buckets.iter().position(|b| b.bucket_id == bid);
                if gm.command == GroupCommand::InsertBucket {
                    let at = match gm.command_bucket_id {
                        BUCKET_FIRST => 0,
                        BUCKET_LAST | BUCKET_UNSET => g.buckets.len(),
                        bid => {
                            pos_of(bid).ok_or(PipelineError::UnknownBucket {
                                group: id,
                                bucket: bid,
                            })? + 1
                        }
                    };
                    let mut new = gm.group.buckets.clone();
                    Self::number_buckets(&mut new, &g.buckets);
                    let probe = Group {
                        buckets: g.buckets.iter().chain(new.iter()).cloned().collect(),
                        ..g.clone()
                    };
                    self.check_buckets(&probe)?;
                    g.buckets.splice(at..at, new);
                } else {
                    match gm.command_bucket_id {
                        BUCKET_FIRST => {
                            if !g.buckets.is_empty() {
                                g.buckets.remove(0);
                            }
                        }
                        BUCKET_LAST => {
                            g.buckets.pop();
                        }
                        BUCKET_UNSET => g.buckets.clear(),
                        bid => {
                            let i = pos_of(bid).ok_or(PipelineError::UnknownBucket {
                                group: id,
                                bucket: bid,
                            })?;
                            g.buckets.remove(i);
                        }
                    }
                }
                Arc::make_mut(&mut self.groups).insert(id, Arc::new(g));
            }
        }
        Ok(())
    }

    fn meter_mod(&mut self, mm: &MeterMod, report: &mut CommitReport) -> Result<(), PipelineError> {
        let id = mm.meter.meter_id;
        match mm.command {
            MeterCommand::Add | MeterCommand::Modify => {
                if id == 0 || id > METER_MAX {
                    return Err(PipelineError::BadMeterId(id));
                }
                let exists = self.meters.contains_key(&id);
                if mm.command == MeterCommand::Add && exists {
                    return Err(PipelineError::MeterExists(id));
                }
                if mm.command == MeterCommand::Modify && !exists {
                    return Err(PipelineError::UnknownMeter(id));
                }
                Arc::make_mut(&mut self.meters).insert(id, Arc::new(mm.meter.clone()));
            }
            MeterCommand::Delete => {
                if id == METER_ALL {
                    if !self.meters.is_empty() {
                        Arc::make_mut(&mut self.meters).clear();
                    }
                } else if self.meters.contains_key(&id) {
                    Arc::make_mut(&mut self.meters).remove(&id);
                } else {
                    return Ok(());
                }
                self.delete_flows_where(|a| uses_meter(a, id), report);
            }
        }
        Ok(())
    }
}

/// Parses an `ovs-ofctl add-flows` file into one bundle of flow mods: one flow per line, an
/// optional leading command word (`add`, `modify`, `delete`, ...), blank lines and `#` comments
/// skipped; a line starting with `group_id=` adds a group (`ovs-ofctl add-groups` syntax), so a
/// file can hold the groups its flows use (put them first). Errors carry the 1-based line
/// number and the parser's message.
pub fn parse_flows(text: &str, names: &NameMap) -> Result<Vec<PipelineMod>, LoadError> {
    let mut mods = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A group in `ovs-ofctl add-groups` syntax (until the OpenFlow socket can add them).
        if line.starts_with("group_id=") {
            let gm = crate::group::parse_group_mod(line, crate::group::GroupCommand::Add, names)
                .map_err(|e| LoadError::Parse {
                    line: i + 1,
                    message: e.to_string(),
                })?;
            mods.push(PipelineMod::Group(gm));
            continue;
        }
        let fm = crate::parse::parse_flow_mod_line(line, names).map_err(|e| LoadError::Parse {
            line: i + 1,
            message: e.to_string(),
        })?;
        mods.push(PipelineMod::Flow(fm));
    }
    Ok(mods)
}

/// Parses an `add-flows` file (see [`parse_flows`]) and commits it as one bundle.
pub fn load_flows(
    pipeline: &mut Pipeline,
    text: &str,
    names: &NameMap,
    now: u64,
) -> Result<CommitReport, LoadError> {
    let mods = parse_flows(text, names)?;
    // Line number of each mod, to name a refused one.
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map(|(i, _)| i + 1)
        .collect();
    pipeline.commit(&mods, now).map_err(|e| LoadError::Refused {
        line: lines.get(e.index).copied().unwrap_or(0),
        error: e.error,
    })
}
