//! The daemon's OpenFlow side: the pipeline (tables, groups, meters) owned by the control
//! thread, the initial flow file, and the translator each worker gets.

use crate::config::Plan;
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use xvs_engine::Verdict;
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::names::{NameMap, Port};
use xvs_flowtable::pipeline::{classifier_match, load_flows, LoadError, Pipeline};
use xvs_flowtable::translate::{DropReason, LearnRequest, Unsupported};
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

/// Builds the pipeline and loads the flow file into it as one bundle.
pub fn build_pipeline(plan: &Plan, config_path: &Path) -> Result<Pipeline> {
    let mut pipeline = Pipeline::new();
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

/// Every translation drop reason, for naming the counters.
const REASONS: [DropReason; 12] = [
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
];

/// Translation outcomes of all workers, by reason: incremented on the miss path only (one
/// relaxed atomic add per abnormal translation), read by the control thread.
#[derive(Debug, Default)]
pub struct TranslationCounters {
    reasons: [AtomicU64; DropReason::N],
    /// Learn requests lost because the queue to the control thread was full.
    pub learn_dropped: AtomicU64,
    /// Packet-ins requested (not delivered yet: no OpenFlow connection).
    pub controller: AtomicU64,
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
}

impl std::fmt::Debug for WorkerTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerTranslator").finish_non_exhaustive()
    }
}

impl WorkerTranslator {
    /// A translator for one worker, and the control side's end of its learn queue.
    pub fn new(
        pipeline: &mut Pipeline,
        counters: Arc<TranslationCounters>,
        epoch: Instant,
    ) -> (Self, rtrb::Consumer<LearnRequest>) {
        let (learn, rx) = rtrb::RingBuffer::new(LEARN_QUEUE);
        let t = Self {
            inner: xvs_flowtable::translate::WorkerTranslator::new(pipeline.reader()),
            epoch,
            counters,
            learn,
        };
        (t, rx)
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

impl xvs_engine::Translator for WorkerTranslator {
    fn refresh(&mut self) -> u64 {
        self.inner.refresh()
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
        if !t.controller.is_empty() {
            self.counters
                .controller
                .fetch_add(t.controller.len() as u64, Ordering::Relaxed);
        }
        Verdict::Uncached
    }
}

/// `ofproto/trace [bridge] FLOW`: translates the packet described by `FLOW` (ovs-ofctl match
/// syntax; fields not given are zero) through the current tables and prints every lookup, the
/// datapath actions and the megaflow mask, as OVS's command does. Runs on the control thread
/// against the published snapshot; the workers are not involved.
pub fn trace(
    pipeline: &Pipeline,
    names: &NameMap,
    bridge: &str,
    tunnel_ports: &[u32],
    params: &[String],
) -> Result<String, String> {
    let flow = match params {
        [f] => f,
        [b, f] if b == bridge => f,
        [b, _] => return Err(format!("{b}: unknown bridge")),
        _ => return Err("usage: ofproto/trace [BRIDGE] FLOW".to_string()),
    };
    let fm = xvs_flowtable::parse::parse_flow_mod(
        flow,
        xvs_flowtable::flow::FlowModCommand::Delete,
        names,
    )
    .map_err(|e| format!("{flow}: {e}"))?;
    let key = *fm.flow.match_.value();
    let mut scratch = xvs_flowtable::translate::TranslateScratch::new();
    scratch.set_trace(true);
    scratch.set_tunnel_ports(tunnel_ports);
    let mut out = xvs_flowtable::translate::Translation::new();
    xvs_flowtable::translate::translate(pipeline.snapshot(), &key, 0, &mut scratch, &mut out);
    let mut text = format!("Flow: {flow}\n\nbridge(\"{bridge}\")\n-------------\n");
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
    Ok(text)
}
