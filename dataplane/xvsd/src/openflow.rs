//! The daemon's OpenFlow side: the pipeline (tables, groups, meters) owned by the control
//! thread, the initial flow file, and the translator each worker gets.

use crate::config::Plan;
use anyhow::{anyhow, Context, Result};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use xvs_engine::packet_in::{
    PacketInConsumer, PacketInProducer, PacketInRecord, MAX_DATA, MAX_RESUME, MAX_USERDATA,
};
use xvs_engine::Verdict;
use xvs_flowtable::action::PacketInReason;
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::l2::MacLearning;
use xvs_flowtable::names::{NameMap, Port};
use xvs_flowtable::pipeline::{classifier_match, load_flows, LoadError, Pipeline};
use xvs_flowtable::translate::{ControllerRequest, DropReason, LearnRequest, Unsupported};
use xvs_packet::FlowKey;

/// Port names of the configuration, so flows may say `in_port=pa0` as with `ovs-ofctl --names`.
pub fn name_map(plan: &Plan) -> NameMap {
    let mut names = NameMap::new();
    for p in &plan.ports {
        if let Ok(n) = u16::try_from(p.config.ofport) {
            names.add_port(&p.config.name, Port(n));
        }
    }
    names
}

/// The flow file named in the configuration, relative paths taken from the configuration's
/// directory.
pub fn flows_path(config_path: &Path, flows: &Path) -> PathBuf {
    if flows.is_absolute() {
        flows.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(flows)
    }
}

/// The group and meter mods of the configured files (`path:line: message` on error).
fn group_and_meter_mods(
    plan: &Plan,
    config_path: &Path,
) -> Result<Vec<xvs_flowtable::pipeline::PipelineMod>> {
    use xvs_flowtable::pipeline::{MeterCommand, MeterMod, PipelineMod};
    let names = name_map(plan);
    let mut mods = Vec::new();
    let files = [(&plan.config.groups, true), (&plan.config.meters, false)];
    for (file, is_group) in files {
        let Some(file) = file else { continue };
        let path = flows_path(config_path, file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let m = if is_group {
                xvs_flowtable::group::parse_group_mod(
                    line,
                    xvs_flowtable::group::GroupCommand::Add,
                    &names,
                )
                .map(PipelineMod::Group)
            } else {
                xvs_flowtable::meter::parse_meter(line).map(|meter| {
                    PipelineMod::Meter(MeterMod {
                        command: MeterCommand::Add,
                        meter,
                    })
                })
            };
            mods.push(m.map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?);
        }
    }
    Ok(mods)
}

/// Builds the pipeline: the group and meter files as one bundle, then the flow file as one
/// bundle.
pub fn build_pipeline(plan: &Plan, config_path: &Path) -> Result<Pipeline> {
    let mut pipeline = Pipeline::new();
    let mods = group_and_meter_mods(plan, config_path)?;
    if !mods.is_empty() {
        pipeline
            .commit(&mods, 0)
            .map_err(|e| anyhow!("groups/meters: mod {}: {}", e.index + 1, e.error))?;
    }
    if let Some(flows) = &plan.config.flows {
        let path = flows_path(config_path, flows);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading flows {}", path.display()))?;
        let report = load_flows(&mut pipeline, &text, &name_map(plan), 0).map_err(|e| match e {
            LoadError::Parse { line, message } => anyhow!("{}:{line}: {message}", path.display()),
            LoadError::Refused { line, error } => anyhow!("{}:{line}: {error}", path.display()),
        })?;
        eprintln!(
            "xvsd: loaded {} flows from {} (version {})",
            pipeline.snapshot().n_flows(),
            path.display(),
            pipeline.version()
        );
        drop(report);
    }
    Ok(pipeline)
}

/// The tracker every worker shares, from the `[conntrack]` table.
pub fn build_conntrack(c: &crate::config::ConntrackConfig) -> xvs_conntrack::Conntrack {
    use std::hash::{BuildHasher, Hasher};
    // A per-process random seed (the std hasher's keys), so table hashes and NAT port choices
    // cannot be predicted from outside.
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    xvs_conntrack::Conntrack::new(xvs_conntrack::CtConfig {
        max_conns: c.max_connections,
        default_zone_limit: c.default_zone_limit,
        tcp_seq_check: c.tcp_seq_check,
        hash_seed: seed,
        ..xvs_conntrack::CtConfig::default()
    })
}

/// Every translation drop reason, for naming the counters.
const REASONS: [DropReason; DropReason::N] = [
    DropReason::TooDeep,
    DropReason::TooManyLookups,
    DropReason::TooManyActions,
    DropReason::TtlExpired,
    DropReason::MissingGroup(0),
    DropReason::MissingMeter(0),
    DropReason::Unsupported(Unsupported::Ct),
    DropReason::Unsupported(Unsupported::Normal),
    DropReason::Unsupported(Unsupported::Flood),
    DropReason::Unsupported(Unsupported::Table),
    DropReason::Unsupported(Unsupported::DoubleVlan),
    DropReason::Unsupported(Unsupported::Rewrite),
    DropReason::RecircFull,
    DropReason::UnknownRecirc(0),
];

/// Translation outcomes of all workers, by reason: incremented on the miss path only (one
/// relaxed atomic add per abnormal translation), read by the control thread.
#[derive(Debug, Default)]
pub struct TranslationCounters {
    reasons: [AtomicU64; DropReason::N],
    /// Learn requests lost because the queue to the control thread was full.
    pub learn_dropped: AtomicU64,
    /// Packet-ins requested by translations.
    pub controller: AtomicU64,
    /// Packet-ins lost before the OpenFlow server: its ring was full, or the userdata did not
    /// fit a record.
    pub packet_in_dropped: AtomicU64,
    /// MAC learnings lost because the queue to the control thread was full.
    pub mac_learning_dropped: AtomicU64,
}

impl TranslationCounters {
    /// `(name, count)` for every reason that occurred.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .filter_map(|r| {
                let n = self.reasons.get(r.index())?.load(Ordering::Relaxed);
                (n > 0).then(|| (r.name(), n))
            })
            .collect()
    }
}

/// Learn requests in flight from one worker to the control thread.
const LEARN_QUEUE: usize = 4096;

/// A worker's translator: the flowtable translator over the worker's pipeline reader.
pub struct WorkerTranslator {
    inner: xvs_flowtable::translate::WorkerTranslator,
    epoch: Instant,
    counters: Arc<TranslationCounters>,
    learn: rtrb::Producer<LearnRequest>,
    macs: rtrb::Producer<MacLearning>,
    packet_ins: PacketInProducer,
    /// The controller requests of the uncached translations of the current batch, each
    /// under its translation's token (the stage translates a whole burst before it hands
    /// any packet to [`packet_in`](xvs_engine::Translator::packet_in)); emptied when the
    /// next batch starts.
    pending: VecDeque<(u32, ControllerRequest)>,
    /// The token of the last translation (0: it asked for no packet-in).
    pending_token: u32,
    next_token: u32,
    /// Encoding buffer for paused packet-ins' continuations.
    resume_buf: Vec<u8>,
}

impl std::fmt::Debug for WorkerTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerTranslator").finish_non_exhaustive()
    }
}

impl WorkerTranslator {
    /// A translator for worker `worker` (which owns its recirculation ids), and the control
    /// side's ends of its learn and MAC-learning queues.
    pub fn new(
        pipeline: &mut Pipeline,
        counters: Arc<TranslationCounters>,
        epoch: Instant,
        worker: u8,
    ) -> (
        Self,
        rtrb::Consumer<LearnRequest>,
        rtrb::Consumer<MacLearning>,
        PacketInConsumer,
    ) {
        let (packet_ins, pin_rx) = xvs_engine::packet_in::ring();
        let (learn, rx) = rtrb::RingBuffer::new(LEARN_QUEUE);
        let (macs, mac_rx) = rtrb::RingBuffer::new(LEARN_QUEUE);
        let t = Self {
            inner: xvs_flowtable::translate::WorkerTranslator::for_worker(
                pipeline.reader(),
                worker,
            ),
            epoch,
            counters,
            learn,
            macs,
            packet_ins,
            pending: VecDeque::with_capacity(256),
            pending_token: 0,
            next_token: 0,
            resume_buf: Vec::new(),
        };
        (t, rx, mac_rx, pin_rx)
    }
}

impl WorkerTranslator {
    /// Declares the tunnel ports: outputs to them become tunnel pushes.
    pub fn set_tunnel_ports(&mut self, ports: &[u32]) {
        self.inner.set_tunnel_ports(ports);
    }
}

/// The OpenFlow numbers of the configuration's tunnel ports.
pub fn tunnel_ofports(plan: &Plan) -> Vec<u32> {
    plan.ports
        .iter()
        .filter(|p| p.config.kind.is_tunnel())
        .map(|p| p.config.ofport)
        .collect()
}

/// Milliseconds since `epoch`: the pipeline's clock for flow ages and learned flows.
pub fn now_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// The control side of learning: drains every worker's learn queue and installs the learned
/// flows that are new (an identical flow already in place is left alone, so a steady stream of
/// the same learn does not publish new table versions). Returns (installed, refused).
pub fn apply_learned(
    pipeline: &mut Pipeline,
    queues: &mut [rtrb::Consumer<LearnRequest>],
    now: u64,
) -> (usize, usize) {
    let mut fresh: Vec<LearnRequest> = Vec::new();
    for q in queues.iter_mut() {
        while let Ok(req) = q.pop() {
            let f = &req.flow_mod.flow;
            let existing = pipeline
                .snapshot()
                .table(f.table)
                .and_then(|t| t.find_strict(&classifier_match(&f.match_), u32::from(f.priority)))
                .is_some_and(|r| r.payload().actions == f.actions);
            let queued = fresh.iter().any(|o| {
                let g = &o.flow_mod.flow;
                g.table == f.table && g.priority == f.priority && g.match_ == f.match_
            });
            if !existing && !queued {
                fresh.push(req);
            }
        }
    }
    if fresh.is_empty() {
        return (0, 0);
    }
    let (_, refused) = pipeline.apply_learned(&fresh, now);
    (fresh.len() - refused.len(), refused.len())
}

/// The control side of NORMAL: drains every worker's MAC-learning queue into the MAC table (a
/// new or moved MAC publishes a new version). Returns true if the table changed.
pub fn apply_mac_learning(
    pipeline: &mut Pipeline,
    queues: &mut [rtrb::Consumer<MacLearning>],
    now: u64,
) -> bool {
    let mut seen: Vec<MacLearning> = Vec::new();
    for q in queues.iter_mut() {
        while let Ok(l) = q.pop() {
            seen.push(l);
        }
    }
    !seen.is_empty() && pipeline.learn_macs(&seen, now)
}

/// `xvs/fdb-show`: the MAC table, as `ovs-appctl fdb/show` prints it.
pub fn fdb_show(pipeline: &Pipeline, now: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(" port  VLAN  MAC                Age\n");
    for (mac, vlan, e) in pipeline.snapshot().l2().entries() {
        let b = mac.to_be_bytes();
        let port = e.port;
        let _ = writeln!(
            out,
            "{port:>5}  {vlan:>4}  {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}  {:>3}",
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
            now.saturating_sub(e.used()) / 1000
        );
    }
    out
}

impl xvs_engine::Translator for WorkerTranslator {
    fn refresh(&mut self) -> u64 {
        // A new batch: requests of packets that never reached `packet_in` (parked, dropped)
        // are dropped with it.
        self.pending.clear();
        self.inner.refresh()
    }

    fn attribution(&mut self) -> Option<xvs_flowtable::stats::Attribution> {
        Some(self.inner.attribution())
    }

    fn now_ns(&mut self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn now_ns_at(&mut self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn tlv_map(&mut self) -> xvs_flowtable::tlv::TlvMap {
        *self.inner.snapshot().tlv()
    }

    fn meter(&mut self, id: u32) -> Option<Arc<xvs_flowtable::metering::MeterState>> {
        self.inner.snapshot().meter_state(id).cloned()
    }

    fn port_exists(&mut self, ofport: u32) -> bool {
        // The bridge's ports are part of the version (set by the control thread at start and
        // on every `xvs/add-port` / `xvs/del-port`).
        self.inner.snapshot().l2().ports().contains(&ofport)
    }

    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        let now = now_ms(self.epoch);
        let ok = self.inner.translate_into(key, now, actions, mask).is_ok();
        let t = self.inner.last();
        if let Some(r) = t.reason {
            if let Some(c) = self.counters.reasons.get(r.index()) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !ok {
            return Verdict::Drop;
        }
        // NORMAL's MAC learning: a side effect that does not stop caching (the control thread
        // publishes a new version when the MAC table changes, which flushes the caches).
        for l in &t.mac_learning {
            if self.macs.push(*l).is_err() {
                self.counters
                    .mac_learning_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if !t.slow_path() {
            return Verdict::Cache;
        }
        // Learn and packet-in must happen for every packet: hand the learned flows to the
        // control thread and keep this packet's actions out of the caches.
        for req in &t.learned {
            if self.learn.push(req.clone()).is_err() {
                self.counters.learn_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pending_token = 0;
        if !t.controller.is_empty() {
            self.counters
                .controller
                .fetch_add(t.controller.len() as u64, Ordering::Relaxed);
            self.next_token = self.next_token.wrapping_add(1).max(1);
            self.pending_token = self.next_token;
            let token = self.next_token;
            self.pending
                .extend(t.controller.iter().map(|r| (token, r.clone())));
        }
        Verdict::Uncached
    }

    fn controller_token(&mut self) -> u32 {
        self.pending_token
    }

    fn packet_in(&mut self, token: u32, frame: &[u8], survived: usize) {
        if token == 0 {
            return;
        }
        // Packets reach here in translation order; earlier requests left over belong to
        // packets that were not delivered.
        while self.pending.front().is_some_and(|(t, _)| *t != token) {
            self.pending.pop_front();
        }
        while self.pending.front().is_some_and(|(t, _)| *t == token) {
            let Some((_, req)) = self.pending.pop_front() else {
                break;
            };
            if req.after_actions > survived {
                // A datapath meter ahead of the controller action dropped the packet (the
                // meter's band counts it).
                continue;
            }
            let c = &req.controller;
            if c.userdata.len() > MAX_USERDATA || self.packet_ins.is_full() {
                self.counters
                    .packet_in_dropped
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let len = frame.len().min(usize::from(c.max_len)).min(MAX_DATA);
            let mut rec = PacketInRecord {
                total_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
                len: len as u16,
                data: [0; MAX_DATA],
                table: req.table,
                cookie: req.cookie,
                reason: reason_code(c.reason),
                controller_id: c.controller_id,
                meter_id: c.meter_id.unwrap_or(0),
                key: req.key,
                userdata_len: c.userdata.len() as u16,
                userdata: [0; MAX_USERDATA],
                paused: false,
                resume_len: 0,
                resume: [0; MAX_RESUME],
                resume_goto: None,
            };
            if let Some(rest) = &req.resume {
                self.resume_buf.clear();
                xvs_openflow::actions::put_actions(&mut self.resume_buf, rest);
                if let Some(b) = rec.resume.get_mut(..self.resume_buf.len()) {
                    b.copy_from_slice(&self.resume_buf);
                    rec.resume_len = self.resume_buf.len() as u16;
                    rec.paused = true;
                    rec.resume_goto = rest.iter().find_map(|a| match a {
                        xvs_flowtable::Action::GotoTable(t) => Some(*t),
                        _ => None,
                    });
                }
            }
            rec.data[..len].copy_from_slice(&frame[..len]);
            rec.userdata[..c.userdata.len()].copy_from_slice(&c.userdata);
            if self.packet_ins.push(rec).is_err() {
                self.counters
                    .packet_in_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The `OFPR_*` code of a packet-in reason.
fn reason_code(r: PacketInReason) -> u8 {
    match r {
        PacketInReason::NoMatch => 0,
        PacketInReason::Action => 1,
        PacketInReason::InvalidTtl => 2,
        PacketInReason::ActionSet => 3,
        PacketInReason::Group => 4,
        PacketInReason::PacketOut => 5,
    }
}

/// `ofproto/trace [bridge] FLOW [--ct-next FLAGS]...`: translates the packet described by
/// `FLOW` (ovs-ofctl match syntax; fields not given are zero) through the current tables and
/// prints every lookup, the datapath actions and the megaflow mask, as OVS's command does.
/// A `recirc(id)` is followed, as OVS does: the packet resumes from the frozen state with the
/// `ct_state` of the next `--ct-next` (default `trk,new`; NAT is not simulated). Runs on the
/// control thread against the published snapshot, with its own recirculation ids.
pub fn trace(
    pipeline: &Pipeline,
    names: &NameMap,
    bridge: &str,
    tunnel_ports: &[u32],
    params: &[String],
) -> Result<String, String> {
    let mut positional = Vec::new();
    let mut ct_next = Vec::new();
    let mut it = params.iter();
    while let Some(p) = it.next() {
        if p == "--ct-next" {
            let flags = it.next().ok_or("--ct-next needs ct_state flags")?;
            ct_next.push(parse_ct_flags(flags)?);
        } else {
            positional.push(p);
        }
    }
    let flow = match positional[..] {
        [f] => f,
        [b, f] if b == bridge => f,
        [b, _] => return Err(format!("{b}: unknown bridge")),
        _ => return Err("usage: ofproto/trace [BRIDGE] FLOW [--ct-next FLAGS]".to_string()),
    };
    let fm = xvs_flowtable::parse::parse_flow_mod(
        flow,
        xvs_flowtable::flow::FlowModCommand::Delete,
        names,
    )
    .map_err(|e| format!("{flow}: {e}"))?;
    let mut key = *fm.flow.match_.value();
    let mut scratch = xvs_flowtable::translate::TranslateScratch::new();
    scratch.set_trace(true);
    scratch.set_tunnel_ports(tunnel_ports);
    let mut out = xvs_flowtable::translate::Translation::new();
    let mut text = format!("Flow: {flow}\n");
    let mut ct_next = ct_next.into_iter();
    for pass in 0..=xvs_engine::MAX_RECIRC_DEPTH {
        xvs_flowtable::translate::translate(pipeline.snapshot(), &key, 0, &mut scratch, &mut out);
        text.push_str(&format!("\nbridge(\"{bridge}\")\n-------------\n"));
        let traced = xvs_flowtable::translate::format_trace(scratch.trace(), &out, names);
        // The megaflow as an OpenFlow-style match (ovs-ofctl syntax), as OVS prints it.
        let mut megaflow = String::new();
        let m = xvs_flowtable::flow::Match::from_keys(key, out.mask);
        let prio = xvs_flowtable::flow::DEFAULT_PRIORITY;
        xvs_flowtable::print::format_match(&mut megaflow, &m, prio, names);
        for line in traced.lines() {
            if line.starts_with("Megaflow: ") {
                text.push_str("Megaflow: ");
                text.push_str(&megaflow);
            } else {
                text.push_str(line);
            }
            text.push('\n');
        }
        // Follow the last recirculation (the packet itself; a fork's copy when others follow).
        let Some(at) = out
            .actions
            .iter()
            .rposition(|a| matches!(a, DpAction::Recirc(_)))
        else {
            break;
        };
        let DpAction::Recirc(id) = out.actions[at] else {
            break;
        };
        // The ct() it follows: a NAT with a range is applied to the traced packet as the
        // tracker would for a new connection (its first address and port), as OVS's trace does.
        let nat = match at.checked_sub(1).map(|i| &out.actions[i]) {
            Some(DpAction::Ct(c)) => c.nat,
            _ => None,
        };
        if pass == xvs_engine::MAX_RECIRC_DEPTH {
            text.push_str("\n(recirculation depth exceeded: the datapath drops the packet)\n");
            break;
        }
        let (mut state, given) = match ct_next.next() {
            Some(s) => (s, true),
            None => (0x21, false),
        };
        if let Some(bits) = nat.and_then(|n| simulate_nat(&mut key, &n)) {
            state |= bits;
        }
        key.set(xvs_packet::key::layout::RECIRC_ID, u64::from(id));
        key.set(xvs_packet::key::layout::CT_STATE, u64::from(state));
        let rule = "=".repeat(79);
        text.push_str(&format!(
            "\n{rule}\nrecirc({id:#x}) - resume conntrack with "
        ));
        if given {
            text.push_str(&format!("ct_state={}\n", ct_flags_text(state)));
        } else {
            // OVS's wording for the plain default.
            let shown = match state {
                0x21 => "trk|new".to_string(),
                s => ct_flags_text(s),
            };
            text.push_str(&format!(
                "default ct_state={shown} (use --ct-next to customize)\n"
            ));
        }
        text.push_str(&format!("{rule}\n"));
    }
    Ok(text)
}

/// `xvs/dump-flows [table]`: the flows of the published tables with their statistics (cached
/// hits included, credited by the workers every 100 ms), one per line as
/// `ovs-ofctl dump-flows` prints them.
pub fn dump_flows(
    pipeline: &Pipeline,
    names: &NameMap,
    params: &[String],
    now: u64,
) -> Result<String, String> {
    let table = match params {
        [] => xvs_flowtable::pipeline::TABLE_ALL,
        [t] => t
            .strip_prefix("table=")
            .unwrap_or(t)
            .parse::<u8>()
            .map_err(|_| format!("{t}: not a table number"))?,
        _ => return Err("usage: xvs/dump-flows [TABLE]".to_string()),
    };
    let opts = xvs_flowtable::print::FormatOptions {
        names,
        show_stats: true,
    };
    let mut out = String::new();
    for f in pipeline.snapshot().dump_flows(table, now) {
        out.push_str(&xvs_flowtable::print::dump_flow_line(&f, &opts));
        out.push('\n');
    }
    Ok(out)
}

/// `xvs/meter-stats`: every meter's input counters and each band's counters (packets the band
/// handled), in the spirit of `ovs-ofctl meter-stats` (no duration: meters keep no creation
/// time).
pub fn meter_stats(pipeline: &Pipeline) -> String {
    use std::fmt::Write as _;
    let snap = pipeline.snapshot();
    let mut ids: Vec<u32> = snap.meters().map(|m| m.meter_id).collect();
    ids.sort_unstable();
    let mut out = String::new();
    for id in ids {
        let Some(m) = snap.meter_state(id) else {
            continue;
        };
        let flows = snap
            .flows()
            .filter(|r| {
                r.payload()
                    .actions
                    .iter()
                    .any(|a| matches!(a, xvs_flowtable::action::Action::Meter(x) if *x == id))
            })
            .count();
        let _ = writeln!(
            out,
            "meter:{id} flow_count:{flows} packet_in_count:{} byte_in_count:{} bands:",
            m.packets(),
            m.bytes()
        );
        for (i, b) in m.bands().iter().enumerate() {
            let _ = writeln!(
                out,
                "{i}: packet_count:{} byte_count:{}",
                b.packets(),
                b.bytes()
            );
        }
    }
    out
}

/// `xvs/dump-group-stats`: every group's counters and its buckets', as `ovs-ofctl
/// dump-group-stats` prints them (without `duration`: groups keep no creation time).
pub fn group_stats(pipeline: &Pipeline) -> String {
    use std::fmt::Write as _;
    let snap = pipeline.snapshot();
    let mut ids: Vec<u32> = snap.groups().map(|g| g.group_id).collect();
    ids.sort_unstable();
    let mut out = String::new();
    for id in ids {
        let Some(g) = snap.group_stats(id) else {
            continue;
        };
        let refs = snap
            .flows()
            .filter(|r| {
                r.payload()
                    .actions
                    .iter()
                    .any(|a| matches!(a, xvs_flowtable::action::Action::Group(x) if *x == id))
            })
            .count();
        let (p, b) = g.counts();
        let _ = write!(
            out,
            " group_id={id},ref_count={refs},packet_count={p},byte_count={b}"
        );
        for (i, (p, b)) in g.bucket_counts().into_iter().enumerate() {
            let _ = write!(out, ",bucket{i}:packet_count={p},byte_count={b}");
        }
        out.push('\n');
    }
    out
}

/// Rewrites `key` as `nat(src|dst=range)` would for a new connection (first address, first
/// port) and returns the ct_state bit it sets (snat 0x40 / dnat 0x80); `None` for bare `nat`.
fn simulate_nat(key: &mut FlowKey, n: &xvs_flowtable::action::Nat) -> Option<u8> {
    use xvs_flowtable::action::{NatAddrs, NatKind};
    use xvs_packet::key::layout;
    let kind = n.kind?;
    let src = kind == NatKind::Src;
    match n.addrs {
        Some(NatAddrs::V4 { min, .. }) => {
            key.set(
                if src { layout::NW_SRC } else { layout::NW_DST },
                u64::from(min),
            );
        }
        Some(NatAddrs::V6 { min, .. }) => {
            key.set128(
                if src {
                    layout::IPV6_SRC
                } else {
                    layout::IPV6_DST
                },
                min,
            );
        }
        None => {}
    }
    if n.ports.0 != 0 {
        key.set(
            if src { layout::TP_SRC } else { layout::TP_DST },
            u64::from(n.ports.0),
        );
    }
    Some(if src { 0x40 } else { 0x80 })
}

const CT_FLAGS: [(&str, u8); 8] = [
    ("new", 0x01),
    ("est", 0x02),
    ("rel", 0x04),
    ("rpl", 0x08),
    ("inv", 0x10),
    ("trk", 0x20),
    ("snat", 0x40),
    ("dnat", 0x80),
];

/// `trk,est` / `trk|est` / `+trk+est` -> ct_state bits.
fn parse_ct_flags(s: &str) -> Result<u8, String> {
    let mut bits = 0;
    for name in s.split([',', '|', '+']).filter(|n| !n.is_empty()) {
        let (_, b) = CT_FLAGS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("{name}: unknown ct_state flag"))?;
        bits |= b;
    }
    Ok(bits)
}

fn ct_flags_text(bits: u8) -> String {
    let names: Vec<&str> = CT_FLAGS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect();
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_shows_ct_and_follows_recirculation_with_ct_next() {
        let mut p = Pipeline::new();
        let flows = "table=0,priority=100,tcp,actions=ct(table=1,zone=65520,nat)\n\
             table=1,priority=100,ct_state=+new+trk,tcp,nw_dst=10.96.0.10,tp_dst=80,actions=ct(commit,table=2,zone=65520,nat(dst=10.10.1.7:8080))\n\
             table=1,priority=90,ct_state=+est+trk,tcp,actions=output:2\n\
             table=2,priority=100,tcp,actions=output:3\n";
        load_flows(&mut p, flows, &NameMap::new(), 0).expect("flows");
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let flow = "in_port=1,tcp,nw_src=10.10.0.5,nw_dst=10.96.0.10,tp_src=4000,tp_dst=80";
        let t = trace(&p, &NameMap::new(), "br-int", &[], &args(&["br-int", flow])).expect("trace");
        assert!(
            t.contains("Datapath actions: ct(zone=65520,nat),recirc(0x1)\n"),
            "{t}"
        );
        assert!(t.contains("default ct_state=trk|new"), "{t}");
        assert!(
            t.contains(
                "Datapath actions: ct(commit,zone=65520,nat(dst=10.10.1.7:8080)),recirc(0x2)\n"
            ),
            "{t}"
        );
        assert!(t.ends_with("Datapath actions: 3\n"), "{t}");
        // The DNAT was applied to the traced packet before table 2.
        assert!(t.contains("default ct_state=new|trk|dnat"), "{t}");
        let t = trace(
            &p,
            &NameMap::new(),
            "br-int",
            &[],
            &args(&[flow, "--ct-next", "trk,est"]),
        )
        .expect("trace");
        assert!(t.contains("resume conntrack with ct_state=est|trk"), "{t}");
        assert!(t.ends_with("Datapath actions: 2\n"), "{t}");
        assert!(trace(
            &p,
            &NameMap::new(),
            "br-int",
            &[],
            &args(&[flow, "--ct-next", "bogus"])
        )
        .is_err());
    }
}
