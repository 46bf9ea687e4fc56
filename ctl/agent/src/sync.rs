//! The agent's sync state (sans-IO): what is installed, the ids, the round; plans the next
//! change set. The Antrea-native flows (most of them at scale) are kept by an
//! [`AnpCache`] that recomputes only what a change touches, so a plan diffs the rest of the
//! pipeline plus the touched keys instead of every flow.

use crate::anp::incr::{AnpCache, PathCounts, UpdatePath};
use crate::diff::{messages, ChangeSet, EncodeError, Mod};
use crate::model::Model;
use crate::pipeline::{desired_without_anp, Desired, FlowBody, FlowKey, Ids};
use std::collections::BTreeSet;

/// What the agent believes is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// Installed flows and groups (as last committed).
    pub installed: Desired,
    /// Stable ids.
    pub ids: Ids,
    /// The current round (cookie bits 63..48).
    pub round: u16,
    /// The Antrea-native flows as last computed.
    anp: AnpCache,
    /// The flow keys of the rest of the pipeline as last committed.
    base_keys: BTreeSet<FlowKey>,
}

/// A planned change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The changes.
    pub changes: ChangeSet,
    /// Its messages, in order.
    pub mods: Vec<Mod>,
    /// How the Antrea-native flows were recomputed.
    pub path: UpdatePath,
    /// The pipeline without the Antrea-native flows (owners, realized policies).
    base: Desired,
}

impl SyncState {
    /// A fresh state for `round`, nothing installed.
    pub fn new(round: u16) -> Self {
        SyncState {
            installed: Desired::default(),
            ids: Ids::default(),
            round,
            anp: AnpCache::default(),
            base_keys: BTreeSet::new(),
        }
    }
    /// How often each path of the Antrea-native recomputation ran.
    pub fn path_counts(&self) -> PathCounts {
        self.anp.counts
    }
    /// Plans the change from what is installed to what `model` wants (the same flows as
    /// [`desired`](crate::pipeline::desired) after the same history).
    pub fn plan(&mut self, model: &Model) -> Result<Plan, EncodeError> {
        let base = desired_without_anp(model, &mut self.ids);
        let path = self.anp.update(model, &mut self.ids);
        // The incremental update rebuilt the Antrea-native entries only.
        let k8s = self.ids.anp.k8s_logged.clone();
        self.ids.anp.logged.extend(k8s);
        let changes = self.changes(&base);
        if changes.is_empty() {
            // Everything touched is installed as it should be.
            self.anp.clear_touched();
        }
        let mods = messages(&changes, self.round)?;
        Ok(Plan {
            changes,
            mods,
            path,
            base,
        })
    }

    fn want(&self, base: &Desired, k: &FlowKey) -> Option<FlowBody> {
        // The Antrea-native flows are added last in the full path: they win a shared key.
        self.anp.flow(k).or_else(|| base.flows.get(k).cloned())
    }

    fn changes(&self, base: &Desired) -> ChangeSet {
        let mut c = ChangeSet::default();
        let installed = &self.installed;
        let mut groups = base.groups.clone();
        groups.extend(self.anp.groups().iter().map(|(k, v)| (*k, v.clone())));
        for (id, g) in &groups {
            match installed.groups.get(id) {
                None => c.group_add.push((*id, g.clone())),
                Some(old) if old != g => c.group_mod.push((*id, g.clone())),
                _ => {}
            }
        }
        c.group_del = installed
            .groups
            .keys()
            .filter(|id| !groups.contains_key(id))
            .copied()
            .collect();
        let mut check = |k: &FlowKey, want: Option<FlowBody>| match (installed.flows.get(k), want) {
            (None, Some(b)) => c.flow_add.push((k.clone(), b)),
            (Some(old), Some(b)) if *old != b => c.flow_mod.push((k.clone(), b)),
            (Some(_), None) => c.flow_del.push(k.clone()),
            _ => {}
        };
        let touched = self.anp.touched();
        for (k, b) in &base.flows {
            if !self.anp.has(k) && !touched.contains(k) {
                check(k, Some(b.clone()));
            }
        }
        for k in touched {
            check(k, self.want(base, k));
        }
        for k in &self.base_keys {
            if !base.flows.contains_key(k) && !touched.contains(k) && !self.anp.has(k) {
                check(k, None);
            }
        }
        c
    }

    /// Records a committed plan.
    pub fn committed(&mut self, plan: Plan) {
        let c = plan.changes;
        let i = &mut self.installed;
        for (id, g) in c.group_add.into_iter().chain(c.group_mod) {
            i.groups.insert(id, g);
        }
        for id in c.group_del {
            i.groups.remove(&id);
        }
        for k in c.flow_del {
            i.flows.remove(&k);
        }
        for (k, b) in c.flow_add.into_iter().chain(c.flow_mod) {
            i.flows.insert(k, b);
        }
        self.base_keys = plan.base.flows.keys().cloned().collect();
        i.owners = plan.base.owners;
        i.group_owners = plan.base.group_owners;
        i.policies = plan.base.policies;
        self.anp.clear_touched();
    }
}
