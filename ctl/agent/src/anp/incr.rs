//! Incremental recomputation of the Antrea-native flows: a change recomputes only what it
//! touches and yields the flow keys whose value may have changed, with exactly the flows and
//! the id / priority state of the full recomputation ([`super::flows::append`]).
//!
//! - Only policies changed: only those policies are resolved again; the others' realised
//!   rules are reused.
//! - Pods, Namespaces, Nodes, Services, EndpointSlices, Groups or Tiers changed: every policy
//!   is resolved again (membership), but only the rules whose members, priority or
//!   conjunction id changed get new flows.
//! - Priorities are registered per table as the full path does; the rules the re-packing
//!   moved get new flows.
//! - The agent config changed, or nothing was built yet: everything is rebuilt (the full
//!   path), still through the same code.

use super::flows::{
    local_ports, packet_in_path, register_priorities, resolve_policy, rule_flows, wanted_keys,
    ResolvedRule, RuleFlows,
};
use super::priority::PriorityKey;
use super::types::{AnpGroup, AntreaPolicy, PolicyKey, Tier};
use crate::model::{AgentConfig, EndpointSlice, Model, Namespace, Node, Pod, Service};
use crate::pipeline::Category;
use crate::pipeline::{FlowBody, FlowKey, Ids};
use std::collections::{BTreeMap, BTreeSet};

/// Which path the last [`AnpCache::update`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatePath {
    /// Everything rebuilt (first build, agent config changed).
    Full,
    /// Only changed policies resolved again.
    Policies,
    /// Every policy resolved again, only changed rules regenerated.
    Membership,
    /// Nothing Antrea-native depends on changed (or there is no agent config).
    Unchanged,
}

/// How often each path ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathCounts {
    /// [`UpdatePath::Full`].
    pub full: u64,
    /// [`UpdatePath::Policies`].
    pub policies: u64,
    /// [`UpdatePath::Membership`].
    pub membership: u64,
    /// [`UpdatePath::Unchanged`].
    pub unchanged: u64,
}

/// What the Antrea-native flows were last computed from, besides the policies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct MembershipInputs {
    config: Option<AgentConfig>,
    nodes: BTreeMap<String, Node>,
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<(String, String), Pod>,
    services: BTreeMap<(String, String), Service>,
    slices: BTreeMap<(String, String), EndpointSlice>,
    tiers: BTreeMap<String, Tier>,
    groups: BTreeMap<PolicyKey, AnpGroup>,
    /// Addresses learned for FQDN peers (they are rule peers like any member).
    fqdn_learned: BTreeMap<String, BTreeSet<std::net::Ipv4Addr>>,
}

impl MembershipInputs {
    fn same_as(&self, m: &Model) -> bool {
        self.config == m.config
            && self.nodes == m.nodes
            && self.namespaces == m.namespaces
            && self.pods == m.pods
            && self.services == m.services
            && self.slices == m.slices
            && self.tiers == m.anp.tiers
            && self.groups == m.anp.groups
            && self.fqdn_learned == m.fqdn_learned
    }
    fn of(m: &Model) -> Self {
        MembershipInputs {
            config: m.config.clone(),
            nodes: m.nodes.clone(),
            namespaces: m.namespaces.clone(),
            pods: m.pods.clone(),
            services: m.services.clone(),
            slices: m.slices.clone(),
            tiers: m.anp.tiers.clone(),
            groups: m.anp.groups.clone(),
            fqdn_learned: m.fqdn_learned.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PolicyEntry {
    policy: AntreaPolicy,
    rules: Vec<ResolvedRule>,
    wanted: Vec<(u8, PriorityKey)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedRule {
    resolved: ResolvedRule,
    prio: u16,
    id: u32,
    out: RuleFlows,
}

/// One flow of the Antrea-native layer: the conjunction actions of the rules sharing it
/// (with how many contribute each) and the values of the rules owning it alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct LayerFlow {
    shared: BTreeMap<String, u32>,
    own: Vec<String>,
}

/// The Antrea-native flows as last computed, with what they were computed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnpCache {
    built: bool,
    inputs: MembershipInputs,
    policies: BTreeMap<PolicyKey, PolicyEntry>,
    rules: BTreeMap<String, CachedRule>,
    flows: BTreeMap<FlowKey, LayerFlow>,
    groups: BTreeMap<u32, String>,
    packet_in_rules: usize,
    /// Keys whose value may differ from what was last taken (see [`AnpCache::take_touched`]).
    touched: BTreeSet<FlowKey>,
    /// How often each path ran.
    pub counts: PathCounts,
}

impl AnpCache {
    /// The flow of the layer at `key`, if any.
    pub fn flow(&self, key: &FlowKey) -> Option<FlowBody> {
        let f = self.flows.get(key)?;
        let actions = if !f.shared.is_empty() {
            f.shared.keys().cloned().collect::<Vec<_>>().join(",")
        } else {
            f.own.last()?.clone()
        };
        Some(FlowBody {
            category: Category::NetworkPolicy,
            actions,
        })
    }
    /// Whether the layer has a flow at `key`.
    pub fn has(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }
    /// Every flow key of the layer.
    pub fn keys(&self) -> impl Iterator<Item = &FlowKey> {
        self.flows.keys()
    }
    /// The groups of the layer.
    pub fn groups(&self) -> &BTreeMap<u32, String> {
        &self.groups
    }
    /// The keys touched since the last [`AnpCache::clear_touched`].
    pub fn touched(&self) -> &BTreeSet<FlowKey> {
        &self.touched
    }
    /// Forgets the touched keys (their values were installed).
    pub fn clear_touched(&mut self) {
        self.touched.clear();
    }
    /// Drops everything: the next update rebuilds (every key of the old layer is touched).
    pub fn invalidate(&mut self) {
        let keys: Vec<FlowKey> = self.flows.keys().cloned().collect();
        self.touched.extend(keys);
        let (touched, counts) = (std::mem::take(&mut self.touched), self.counts);
        *self = AnpCache {
            touched,
            counts,
            ..AnpCache::default()
        };
    }

    fn add_flows(&mut self, out: &RuleFlows) {
        for (k, a) in &out.shared {
            *self
                .flows
                .entry(k.clone())
                .or_default()
                .shared
                .entry(a.clone())
                .or_default() += 1;
            self.touched.insert(k.clone());
        }
        for (k, a) in &out.own {
            self.flows.entry(k.clone()).or_default().own.push(a.clone());
            self.touched.insert(k.clone());
        }
        self.packet_in_rules += usize::from(out.packet_in);
    }

    fn remove_flows(&mut self, out: &RuleFlows) {
        for (k, a) in &out.shared {
            if let Some(f) = self.flows.get_mut(k) {
                if let Some(n) = f.shared.get_mut(a) {
                    *n -= 1;
                    if *n == 0 {
                        f.shared.remove(a);
                    }
                }
                if f.shared.is_empty() && f.own.is_empty() {
                    self.flows.remove(k);
                }
            }
            self.touched.insert(k.clone());
        }
        for (k, a) in &out.own {
            if let Some(f) = self.flows.get_mut(k) {
                if let Some(i) = f.own.iter().rposition(|x| x == a) {
                    f.own.remove(i);
                }
                if f.shared.is_empty() && f.own.is_empty() {
                    self.flows.remove(k);
                }
            }
            self.touched.insert(k.clone());
        }
        self.packet_in_rules -= usize::from(out.packet_in);
    }

    /// Brings the layer and `ids.anp` to what [`super::flows::append`] would produce for
    /// `model` after the same history, recomputing only what changed.
    pub fn update(&mut self, model: &Model, ids: &mut Ids) -> UpdatePath {
        let Some(cfg) = &model.config else {
            // Without a config the full path computes nothing and keeps its ids.
            if self.built {
                self.invalidate();
            }
            self.counts.unchanged += 1;
            return UpdatePath::Unchanged;
        };
        let path = if !self.built || self.inputs.config != model.config {
            self.invalidate();
            self.built = true;
            self.inputs = MembershipInputs::of(model);
            UpdatePath::Full
        } else if !self.inputs.same_as(model) {
            self.inputs = MembershipInputs::of(model);
            UpdatePath::Membership
        } else {
            UpdatePath::Policies
        };
        let groups = &ids.groups;
        let state = &mut ids.anp;
        state.logged.clear();
        if model.anp.policies.is_empty() {
            state.conj.retain(&BTreeSet::new());
            state.priorities.clear();
            state.last_moves.clear();
            state.unrealised.clear();
            let old: Vec<RuleFlows> = std::mem::take(&mut self.rules)
                .into_values()
                .map(|c| c.out)
                .collect();
            for out in &old {
                self.remove_flows(out);
            }
            self.policies.clear();
            self.sync_packet_in();
            self.count(path);
            return path;
        }
        let local: Vec<&Pod> = model
            .pods
            .values()
            .filter(|p| p.node == cfg.node_name)
            .collect();
        let local_ports = local_ports(&local);
        // Resolve what changed; remember which policies' rules must be regenerated whatever
        // their members (their text changed).
        self.policies
            .retain(|k, _| model.anp.policies.contains_key(k));
        let mut rewritten: BTreeSet<&PolicyKey> = BTreeSet::new();
        for (k, pol) in &model.anp.policies {
            let same_text = self.policies.get(k).is_some_and(|e| e.policy == *pol);
            if same_text && path == UpdatePath::Policies {
                continue;
            }
            if !same_text {
                rewritten.insert(k);
            }
            let rules = resolve_policy(model, pol, &local_ports, groups);
            let wanted = wanted_keys(model, pol, &rules);
            self.policies.insert(
                k.clone(),
                PolicyEntry {
                    policy: pol.clone(),
                    rules,
                    wanted,
                },
            );
        }
        let mut wanted: BTreeMap<u8, BTreeSet<PriorityKey>> = BTreeMap::new();
        for e in self.policies.values() {
            for (t, k) in &e.wanted {
                wanted.entry(*t).or_default().insert(*k);
            }
        }
        register_priorities(state, &wanted);
        // Walk every realised rule in the full path's order (conjunction ids are allocated
        // in it), regenerating only the changed ones.
        let mut live: BTreeSet<String> = BTreeSet::new();
        let mut stale: Vec<RuleFlows> = Vec::new();
        let mut fresh: Vec<RuleFlows> = Vec::new();
        for (k, e) in &self.policies {
            let text_changed = rewritten.contains(k);
            for r in &e.rules {
                let Some(prio) = state.priorities.get(&r.table).and_then(|a| a.get(&r.key)) else {
                    state.unrealised.insert(r.name.clone());
                    if let Some(c) = self.rules.remove(&r.name) {
                        stale.push(c.out);
                    }
                    continue;
                };
                let id = state.conj.id(&r.name);
                live.insert(r.name.clone());
                let reusable = !text_changed
                    && self
                        .rules
                        .get(&r.name)
                        .is_some_and(|c| c.prio == prio && c.id == id && c.resolved == *r);
                if !reusable {
                    let out = match e.policy.rules(r.dir).get(r.index) {
                        Some(rule) => rule_flows(&e.policy, rule, r, prio, id),
                        None => RuleFlows::default(),
                    };
                    fresh.push(out.clone());
                    let old = self.rules.insert(
                        r.name.clone(),
                        CachedRule {
                            resolved: r.clone(),
                            prio,
                            id,
                            out,
                        },
                    );
                    if let Some(c) = old {
                        stale.push(c.out);
                    }
                }
                if let Some(l) = self.rules.get(&r.name).and_then(|c| c.out.logged.clone()) {
                    state.logged.insert(id, l);
                }
            }
        }
        // Rules of removed policies, or no longer realised.
        let gone: Vec<String> = self
            .rules
            .keys()
            .filter(|n| !live.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            if let Some(c) = self.rules.remove(&n) {
                stale.push(c.out);
            }
        }
        for out in &stale {
            self.remove_flows(out);
        }
        for out in &fresh {
            self.add_flows(out);
        }
        state.conj.retain(&live);
        self.sync_packet_in();
        self.count(path);
        path
    }

    fn count(&mut self, path: UpdatePath) {
        let c = &mut self.counts;
        match path {
            UpdatePath::Full => c.full += 1,
            UpdatePath::Policies => c.policies += 1,
            UpdatePath::Membership => c.membership += 1,
            UpdatePath::Unchanged => c.unchanged += 1,
        }
    }

    /// The packet-in groups and Output flows are there while some rule uses them.
    fn sync_packet_in(&mut self) {
        let want = self.packet_in_rules > 0;
        let (groups, flows) = packet_in_path();
        let present = groups
            .first()
            .is_some_and(|(id, _)| self.groups.contains_key(id));
        if want == present {
            return;
        }
        let out = RuleFlows {
            own: flows,
            ..RuleFlows::default()
        };
        if want {
            self.groups.extend(groups);
            self.add_flows(&out);
        } else {
            self.groups.clear();
            self.remove_flows(&out);
        }
    }
}
