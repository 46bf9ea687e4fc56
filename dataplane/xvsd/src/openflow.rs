//! The daemon's OpenFlow side: the pipeline (tables, groups, meters) owned by the control
//! thread, the initial flow file, and the translator each worker gets.

use crate::config::Plan;
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::names::{NameMap, Port};
use xvs_flowtable::pipeline::{load_flows, LoadError, Pipeline};
use xvs_flowtable::translate::{DropReason, Unsupported};
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

/// A worker's translator: the flowtable translator over the worker's pipeline reader.
#[derive(Debug)]
pub struct WorkerTranslator {
    inner: xvs_flowtable::translate::WorkerTranslator,
    epoch: Instant,
    counters: Arc<TranslationCounters>,
}

impl WorkerTranslator {
    pub fn new(pipeline: &mut Pipeline, counters: Arc<TranslationCounters>) -> Self {
        Self {
            inner: xvs_flowtable::translate::WorkerTranslator::new(pipeline.reader()),
            epoch: Instant::now(),
            counters,
        }
    }
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
    ) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let ok = self.inner.translate_into(key, now, actions, mask).is_ok();
        if let Some(r) = self.inner.last().reason {
            if let Some(c) = self.counters.reasons.get(r.index()) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        ok
    }
}
