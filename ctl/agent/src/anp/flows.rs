//! Antrea-native rules → flows: conjunctions in AntreaPolicy{Egress,Ingress}Rule (baseline tier:
//! {Egress,Ingress}DefaultRule), action flows per disposition, deny counters in the Metric
//! tables, and the packet-in path (groups and Output flows) that Reject uses.
//!
//! Registers (Antrea's): reg0 bit 10 = denied by an Antrea-native rule, reg0[11..12] =
//! disposition, reg0[21..22] = 2 output to controller, reg0[25..31] = packet-in operations
//! (1 log, 2 reject); reg2[0..7] = rule table; reg3 = deny conj id; reg5 / reg6 = egress /
//! ingress conj id of Allow and Pass; ct_label[0..31] ingress, [32..63] egress rule id.

use super::priority::{PriorityAssigner, PriorityKey};
use super::resolve::policy_internal_rules;
use super::types::*;
use crate::model::{Cidr, Model, Pod};
use crate::pipeline::{port_masks, t, Category, Desired, FlowKey, IdAllocator, Ids, CT_ZONE};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Conjunction ids of Antrea-native rules start here, clear of the K8s NetworkPolicy ones.
pub const CONJ_BASE: u32 = 0x0010_0000;
/// Group ids of the packet-in fork groups: this + the table the first bucket resubmits to.
pub const PACKET_IN_GROUP_BASE: u32 = 0x7fff_ff00;
/// Packet-in operation bit: reject.
pub const OP_REJECT: u32 = 2;
/// The controller id the agent's sync connection claims (NXT_SET_CONTROLLER_ID) and its
/// `controller(id=...)` actions name, as Antrea does, so that packet-ins reach that one
/// connection and not the query thread's or a monitoring tool's (id 0).
pub const AGENT_CONTROLLER_ID: u16 = 0x7873;

/// Antrea-native state that must survive recomputation: conjunction ids and one priority
/// assigner per rule table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnpState {
    /// Internal rule → conjunction id.
    pub conj: IdAllocator,
    /// Rule table → its assigner.
    pub priorities: BTreeMap<u8, PriorityAssigner>,
    /// The priorities that moved in the last recomputation (old → new) per table (the
    /// re-pack goes out in the same bundle as the rest).
    pub last_moves: BTreeMap<u8, BTreeMap<u16, u16>>,
    /// Rules that could not get a priority (table full), by internal rule name.
    pub unrealised: BTreeSet<String>,
    /// Realised rules with `enableLogging`, by conjunction id (what np.log lines name):
    /// the Antrea-native ones, then [`Self::k8s_logged`] merged in after every recomputation.
    pub logged: BTreeMap<u32, LoggedRule>,
    /// The logged K8s NetworkPolicy rules of the last recomputation (their conjunction ids are
    /// clear of the Antrea-native ones, [`CONJ_BASE`]).
    pub k8s_logged: BTreeMap<u32, LoggedRule>,
}

/// What an np.log line says about the rule a logged packet hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRule {
    /// `AntreaClusterNetworkPolicy:<name>` or `AntreaNetworkPolicy:<ns>/<name>`.
    pub policy_ref: String,
    /// The rule's name (generated when the manifest had none).
    pub rule_name: String,
    /// The rule's `logLabel`.
    pub log_label: String,
    /// The rule table.
    pub table: u8,
    /// The action flow's OpenFlow priority.
    pub priority: Option<u16>,
    /// Direction.
    pub direction: Direction,
    /// Action.
    pub action: Action,
}

/// The meter every NetworkPolicy packet-in goes through (Antrea's id); the agent installs it
/// at connect with `packet_in_rate` (see [`packet_in_meter`]).
pub const PACKET_IN_METER: u32 = 256;

/// Default packet-in rate (packets/s) for logging and Reject, as the issue asks (500/s,
/// burst 1000; Antrea's own default went from 500 to 5000 in v2.4): `--packet-in-rate`
/// changes it. The burst is twice the rate.
pub const DEFAULT_PACKET_IN_RATE: u32 = 500;

/// The packet-in meter in ovs-ofctl syntax: one drop band at `rate` packets/s, burst 2×.
pub fn packet_in_meter(rate: u32) -> String {
    format!(
        "meter={PACKET_IN_METER},pktps,burst,band=type=drop,rate={rate},burst_size={}",
        rate.saturating_mul(2)
    )
}

/// Packet-in operation bit: log.
pub const OP_LOG: u32 = 1;

impl Default for AnpState {
    fn default() -> Self {
        AnpState {
            conj: IdAllocator::starting_at(CONJ_BASE),
            priorities: BTreeMap::new(),
            last_moves: BTreeMap::new(),
            unrealised: BTreeSet::new(),
            logged: BTreeMap::new(),
            k8s_logged: BTreeMap::new(),
        }
    }
}

/// The rule table of an internal rule.
pub fn rule_table(pol: &AntreaPolicy, dir: Direction) -> u8 {
    match (pol.tier == BASELINE_TIER, dir) {
        (false, Direction::Ingress) => t::AP_INGRESS,
        (false, Direction::Egress) => t::AP_EGRESS,
        (true, Direction::Ingress) => t::INGRESS_DEFAULT,
        (true, Direction::Egress) => t::EGRESS_DEFAULT,
    }
}

fn metric_table(dir: Direction) -> u8 {
    match dir {
        Direction::Ingress => t::INGRESS_METRIC,
        Direction::Egress => t::EGRESS_METRIC,
    }
}

fn assigner_for(table: u8) -> PriorityAssigner {
    if table == t::AP_INGRESS || table == t::AP_EGRESS {
        PriorityAssigner::policy_tables()
    } else {
        PriorityAssigner::baseline_tables()
    }
}

fn key_of(model: &Model, pol: &AntreaPolicy, rule: u32) -> PriorityKey {
    PriorityKey {
        tier: model
            .anp
            .tier_priority(&pol.tier)
            .unwrap_or(DEFAULT_TIER_PRIORITY),
        policy: pol.priority.0,
        rule,
    }
}

const DEFAULT_TIER_PRIORITY: i32 = 250;

/// The service clause matches of a rule on `dst` (named ports: not resolved yet, they match
/// nothing). Empty = any service.
fn service_matches(rule: &AnpRule) -> Vec<String> {
    let mut out = Vec::new();
    for p in &rule.ports {
        let proto = p.protocol.ofctl();
        let dst: Vec<String> = match (&p.port, p.end_port) {
            (None, _) => vec![String::new()],
            (Some(PortValue::Named(_)), _) => continue,
            (Some(PortValue::Number(n)), end) => {
                let lo = *n as u16;
                let hi = end.map_or(lo, |e| e as u16);
                ranges("tp_dst", lo, hi)
            }
        };
        let src: Vec<String> = match p.source_port {
            None => vec![String::new()],
            Some(s) => ranges(
                "tp_src",
                s as u16,
                p.source_end_port.map_or(s as u16, |e| e as u16),
            ),
        };
        for d in &dst {
            for s in &src {
                out.push(format!("{proto}{d}{s}"));
            }
        }
    }
    for q in &rule.protocols {
        if let L4Protocol::Icmp {
            icmp_type,
            icmp_code,
        } = q
        {
            let mut m = "icmp".to_string();
            if let Some(t) = icmp_type {
                m.push_str(&format!(",icmp_type={t}"));
            }
            if let Some(c) = icmp_code {
                m.push_str(&format!(",icmp_code={c}"));
            }
            out.push(m);
        }
        // IGMP rules need the multicast pipeline, which xvs does not have: they match nothing.
    }
    out
}

fn ranges(field: &str, lo: u16, hi: u16) -> Vec<String> {
    port_masks(lo, hi)
        .into_iter()
        .map(|(v, m)| {
            if m == 0xffff {
                format!(",{field}={v}")
            } else {
                format!(",{field}={v:#x}/{m:#x}")
            }
        })
        .collect()
}

/// Appends the Antrea-native flows of `model` for the Pods of this node to `d`.
/// A realised rule's inputs besides the policy rule itself, owned: its flows are a function
/// of these, its priority and its conjunction id, so an unchanged one can be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    /// The internal rule name (conjunction ids are allocated by it).
    pub name: String,
    /// Direction.
    pub dir: Direction,
    /// Index in the policy's rules of that direction.
    pub index: usize,
    /// The rule table.
    pub table: u8,
    /// Its precedence key.
    pub key: PriorityKey,
    /// The local appliedTo Pods: (ofport, IP).
    pub applied: Vec<(u32, Ipv4Addr)>,
    /// The group ids of the ports of the NodePort Services the rule is applied to (ingress,
    /// proxyAll): the rule matches `reg7` and the connection's original source
    /// (`ct_nw_src`), as the client's address may be translated on the way.
    pub applied_services: Vec<u32>,
    /// Peer addresses; `None` = any address.
    pub peers: Option<BTreeSet<Cidr>>,
    /// The group ids of the toServices Services' ports.
    pub service_groups: Vec<u32>,
}

/// The rules of `pol` realised on this node (some local appliedTo Pod, a peer set that can
/// match, a known tier), in the order [`policy_internal_rules`] gives them.
pub fn resolve_policy(
    model: &Model,
    pol: &AntreaPolicy,
    local_ports: &BTreeSet<(&str, &str)>,
    groups: &IdAllocator,
) -> Vec<ResolvedRule> {
    // A policy whose tier is missing was refused at admission; never guess its tier.
    if model.anp.tier_priority(&pol.tier).is_none() {
        return Vec::new();
    }
    let mut rules = Vec::new();
    policy_internal_rules(model, pol, &mut rules);
    rules
        .into_iter()
        .filter_map(|r| {
            let applied: Vec<(u32, Ipv4Addr)> = r
                .applied
                .iter()
                .filter(|p| local_ports.contains(&(p.namespace.as_str(), p.name.as_str())))
                .map(|p| (p.ofport, p.ip))
                .collect();
            let can_match = match &r.peers {
                None => true,
                Some(s) => !s.is_empty() || !r.rule.to_services.is_empty(),
            };
            let applied_services = applied_node_port_groups(model, pol, &r, groups);
            if (applied.is_empty() && applied_services.is_empty()) || !can_match {
                return None;
            }
            let service_groups = r
                .rule
                .to_services
                .iter()
                .flat_map(|s| groups.ids_with_prefix(&format!("{}/{}:", s.namespace, s.name)))
                .collect();
            Some(ResolvedRule {
                name: r.id_name(),
                dir: r.dir,
                index: r.index,
                table: rule_table(r.policy, r.dir),
                key: key_of(model, r.policy, r.index as u32),
                applied,
                applied_services,
                peers: r.peers,
                service_groups,
            })
        })
        .collect()
}

/// The Service group ids an ingress rule applied to NodePort Services matches: every port of
/// each such Service that has node ports, when proxyAll serves them (a ClusterIP Service or
/// no proxyAll: nothing, so the rule is not realised; Antrea documents the field for NodePort
/// Services only).
fn applied_node_port_groups(
    model: &Model,
    pol: &AntreaPolicy,
    r: &super::resolve::InternalRule<'_>,
    groups: &IdAllocator,
) -> Vec<u32> {
    let proxy_all = model.config.as_ref().is_some_and(|c| c.proxy_all);
    if !proxy_all || r.dir != Direction::Ingress {
        return Vec::new();
    }
    let at = if r.rule.applied_to.is_empty() {
        &pol.applied_to
    } else {
        &r.rule.applied_to
    };
    let mut out: Vec<u32> = at
        .iter()
        .filter_map(|a| a.service.as_ref())
        .filter(|s| {
            model
                .services
                .get(&(s.namespace.clone(), s.name.clone()))
                .is_some_and(|svc| svc.service_type.has_node_ports())
        })
        .flat_map(|s| groups.ids_with_prefix(&format!("{}/{}:", s.namespace, s.name)))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The priority keys a policy with realised `rules` registers: every rule index of the
/// policy in each table it has a realised rule in.
pub fn wanted_keys(
    model: &Model,
    pol: &AntreaPolicy,
    rules: &[ResolvedRule],
) -> Vec<(u8, PriorityKey)> {
    let tables: BTreeSet<u8> = rules.iter().map(|r| r.table).collect();
    let max = pol.ingress.len().max(pol.egress.len()) as u32;
    tables
        .into_iter()
        .flat_map(|t| (0..max).map(move |i| (t, key_of(model, pol, i))))
        .collect()
}

/// Registers the wanted keys of every table at once (dropping the keys no longer wanted),
/// recording the re-packed priorities in `last_moves`.
pub fn register_priorities(state: &mut AnpState, wanted: &BTreeMap<u8, BTreeSet<PriorityKey>>) {
    state.priorities.retain(|t, _| wanted.contains_key(t));
    state.last_moves.clear();
    state.unrealised.clear();
    for (table, keys) in wanted {
        let a = state
            .priorities
            .entry(*table)
            .or_insert_with(|| assigner_for(*table));
        a.retain(|k| keys.contains(k));
        let keys: Vec<PriorityKey> = keys.iter().copied().collect();
        match a.register(&keys) {
            Ok(moves) => {
                if !moves.is_empty() {
                    state.last_moves.insert(*table, moves);
                }
            }
            Err(_) => {
                // Leave the table as it was; the rules that found no room stay unrealised.
            }
        }
    }
}

/// Flows as (key, actions).
pub type FlowActions = Vec<(FlowKey, String)>;

/// What one realised rule contributes to the flows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleFlows {
    /// Conjunction clause flows, shared with the other rules at the same priority: the key
    /// and this rule's `conjunction(...)` action.
    pub shared: FlowActions,
    /// Flows of this rule alone (action flow, deny counter).
    pub own: FlowActions,
    /// The np.log description when the rule logs.
    pub logged: Option<LoggedRule>,
    /// Whether it sends packets to the agent (logging, Reject).
    pub packet_in: bool,
}

fn key(table: u8, priority: u16, matches: String) -> FlowKey {
    FlowKey {
        table,
        priority,
        matches,
    }
}

/// The flows of rule `rule` of `pol`, realised as `r` at `prio` with conjunction `id`.
pub fn rule_flows(
    pol: &AntreaPolicy,
    rule: &AnpRule,
    r: &ResolvedRule,
    prio: u16,
    id: u32,
) -> RuleFlows {
    let mut out = RuleFlows::default();
    let table = r.table;
    let services = service_matches(rule);
    let has_services = !rule.ports.is_empty() || !rule.protocols.is_empty();
    if has_services && services.is_empty() {
        return out; // only named ports / IGMP: nothing this pipeline can match yet
    }
    let n = if has_services { 3 } else { 2 };
    // Clause of the appliedTo Pods and clause of the peers, numbered from (1) to (2).
    let mut applied_matches: Vec<String> = r
        .applied
        .iter()
        .map(|(ofport, ip)| match r.dir {
            Direction::Ingress => format!("ip,reg1={ofport:#x}"),
            Direction::Egress => format!("ip,nw_src={ip}"),
        })
        .collect();
    applied_matches.extend(r.applied_services.iter().map(|g| format!("ip,reg7={g:#x}")));
    // Rules applied to NodePort Services see the client before any translation (admission
    // allows only ipBlock peers there, as Antrea's ct_nw_src matches).
    let on_services = !r.applied_services.is_empty();
    let peer_field = match r.dir {
        Direction::Ingress if on_services => "ct_nw_src",
        Direction::Ingress => "nw_src",
        Direction::Egress => "nw_dst",
    };
    let peer_matches: Vec<String> = if !rule.to_services.is_empty() {
        r.service_groups
            .iter()
            .map(|g| format!("ip,reg7={g:#x}"))
            .collect()
    } else {
        // ct_nw_src needs a tracked state: the first packet's (+new), as Antrea matches it.
        let state = if on_services { "ct_state=+new," } else { "" };
        let ip = |c: &str| {
            if on_services {
                format!("{state}{peer_field}={c},ip")
            } else {
                format!("ip,{peer_field}={c}")
            }
        };
        match &r.peers {
            None => vec![ip("0.0.0.0/0")],
            Some(s) => s.iter().map(|c| ip(&c.to_ofctl())).collect(),
        }
    };
    if peer_matches.is_empty() {
        return out;
    }
    let (from, to) = match r.dir {
        Direction::Ingress => (peer_matches, applied_matches),
        Direction::Egress => (applied_matches, peer_matches),
    };
    for m in from {
        out.shared
            .push((key(table, prio, m), format!("conjunction({id},1/{n})")));
    }
    for m in to {
        out.shared
            .push((key(table, prio, m), format!("conjunction({id},2/{n})")));
    }
    for m in services {
        out.shared
            .push((key(table, prio, m), format!("conjunction({id},3/3)")));
    }
    let metric = metric_table(r.dir);
    let (conj_reg, label) = match r.dir {
        Direction::Ingress => ("reg6", format!("{id:#x}/0xffffffff")),
        Direction::Egress => (
            "reg5",
            format!("{:#x}/0xffffffff00000000", u64::from(id) << 32),
        ),
    };
    let log = rule.enable_logging;
    if log {
        out.logged = Some(LoggedRule {
            policy_ref: match &pol.namespace {
                Some(ns) => format!("AntreaNetworkPolicy:{ns}/{}", pol.name),
                None => format!("AntreaClusterNetworkPolicy:{}", pol.name),
            },
            rule_name: rule.name.clone(),
            log_label: rule.log_label.clone(),
            table,
            priority: Some(prio),
            direction: r.dir,
            action: rule.action,
        });
    }
    let marks = |disposition: u32, op: u32| packet_in_marks(table, disposition, op);
    let actions = match rule.action {
        Action::Allow if log => {
            out.packet_in = true;
            // ct(table=) forks: the tracked copy goes on to the Metric table, this one
            // goes to Output marked for the controller.
            format!(
                "set_field:{id:#x}->{conj_reg},ct(commit,table={metric},zone={CT_ZONE},exec(set_field:{label}->ct_label)),{},set_field:0x400000/0x600000->reg0,goto_table:{}",
                marks(0, OP_LOG),
                t::OUTPUT
            )
        }
        Action::Allow => format!(
            "set_field:{id:#x}->{conj_reg},ct(commit,table={metric},zone={CT_ZONE},exec(set_field:{label}->ct_label))"
        ),
        Action::Drop if log => {
            out.packet_in = true;
            format!(
                "set_field:{id:#x}->reg3,set_field:0x400/0x400->reg0,{},group:{}",
                marks(1, OP_LOG),
                PACKET_IN_GROUP_BASE + u32::from(metric)
            )
        }
        Action::Drop => format!(
            "set_field:{id:#x}->reg3,set_field:0x400/0x400->reg0,goto_table:{metric}"
        ),
        Action::Reject => {
            out.packet_in = true;
            let op = if log { OP_REJECT | OP_LOG } else { OP_REJECT };
            format!(
                "set_field:{id:#x}->reg3,set_field:0x400/0x400->reg0,{},group:{}",
                marks(2, op),
                PACKET_IN_GROUP_BASE + u32::from(metric)
            )
        }
        Action::Pass => {
            let k8s = match r.dir {
                Direction::Ingress => t::INGRESS_RULE,
                Direction::Egress => t::EGRESS_RULE,
            };
            if log {
                // As Antrea's conjunctionActionPassFlow: the fork group continues in the
                // K8s NP table and sends a copy marked Pass to the controller.
                out.packet_in = true;
                format!(
                    "set_field:{id:#x}->{conj_reg},{},group:{}",
                    marks(3, OP_LOG),
                    PACKET_IN_GROUP_BASE + u32::from(k8s)
                )
            } else {
                format!("set_field:{id:#x}->{conj_reg},goto_table:{k8s}")
            }
        }
    };
    out.own
        .push((key(table, prio, format!("conj_id={id},ip")), actions));
    if matches!(rule.action, Action::Drop | Action::Reject) {
        out.own.push((
            key(metric, 200, format!("reg0=0x400/0x400,reg3={id:#x}")),
            "drop".to_string(),
        ));
    }
    out
}

/// The local Pods as (namespace, name).
pub fn local_ports<'p>(local: &[&'p Pod]) -> BTreeSet<(&'p str, &'p str)> {
    local
        .iter()
        .map(|p| (p.namespace.as_str(), p.name.as_str()))
        .collect()
}

/// Appends the Antrea-native flows of `model` for the Pods of this node to `d` (the full
/// recomputation; [`super::incr`] keeps the same flows up to date change by change).
pub fn append(model: &Model, local: &[&Pod], ids: &mut Ids, d: &mut Desired) {
    let groups = &ids.groups;
    let state = &mut ids.anp;
    state.logged.clear();
    if model.anp.policies.is_empty() {
        state.conj.retain(&BTreeSet::new());
        state.priorities.clear();
        state.last_moves.clear();
        state.unrealised.clear();
        return;
    }
    let local_ports = local_ports(local);
    let resolved: Vec<(&AntreaPolicy, Vec<ResolvedRule>)> = model
        .anp
        .policies
        .values()
        .map(|p| (p, resolve_policy(model, p, &local_ports, groups)))
        .collect();
    let mut wanted: BTreeMap<u8, BTreeSet<PriorityKey>> = BTreeMap::new();
    for (pol, rules) in &resolved {
        for (table, k) in wanted_keys(model, pol, rules) {
            wanted.entry(table).or_default().insert(k);
        }
    }
    register_priorities(state, &wanted);
    let mut live = BTreeSet::new();
    let mut packet_in_used = false;
    let cat = Category::NetworkPolicy;
    for (pol, rules) in &resolved {
        for r in rules {
            let Some(prio) = state.priorities.get(&r.table).and_then(|a| a.get(&r.key)) else {
                state.unrealised.insert(r.name.clone());
                continue;
            };
            let id = state.conj.id(&r.name);
            live.insert(r.name.clone());
            let Some(rule) = pol.rules(r.dir).get(r.index) else {
                continue;
            };
            let out = rule_flows(pol, rule, r, prio, id);
            for (k, a) in out.shared {
                d.add_shared(k.table, k.priority, k.matches, cat, a);
            }
            for (k, a) in out.own {
                d.add(k.table, k.priority, k.matches, cat, a);
            }
            if let Some(l) = out.logged {
                state.logged.insert(id, l);
            }
            packet_in_used |= out.packet_in;
        }
    }
    state.conj.retain(&live);
    if packet_in_used {
        let (groups, flows) = packet_in_path();
        d.groups.extend(groups);
        for (k, a) in flows {
            d.add(k.table, k.priority, k.matches, cat, a);
        }
    }
}

/// The packet-in marks of a rule in `table`: disposition (reg0[11..12], 0 Allow, 1 Drop,
/// 2 Reject), operations (reg0[25..31]) and the rule table (reg2[0..7]).
pub(crate) fn packet_in_marks(table: u8, disposition: u32, op: u32) -> String {
    format!(
        "set_field:{:#x}/0x1800->reg0,set_field:{:#x}/0xfe000000->reg0,set_field:{table:#x}/0xff->reg2",
        disposition << 11,
        op << 25
    )
}

/// The fork groups (bucket 0 continues in the next table, bucket 1 goes to Output marked for
/// the controller) and the Output flows sending marked packets to the agent through the
/// packet-in meter (Antrea's `meter:256,controller(...)`: the datapath meter drops what
/// exceeds the rate, so those packets never become packet-ins). The reject answer itself
/// (packet-out) is built by [`super::reject`] in the agent's packet-in handler.
pub fn packet_in_path() -> (Vec<(u32, String)>, FlowActions) {
    let groups = [
        t::EGRESS_RULE,
        t::EGRESS_METRIC,
        t::INGRESS_RULE,
        t::INGRESS_METRIC,
    ]
    .into_iter()
    .map(|next| {
        (
            PACKET_IN_GROUP_BASE + u32::from(next),
            format!(
                "type=all,bucket=bucket_id:0,actions=resubmit(,{next}),bucket=bucket_id:1,actions=set_field:0x400000/0x600000->reg0,resubmit(,{})",
                t::OUTPUT
            ),
        )
    })
    .collect();
    let flows = (1u32..=7)
        .map(|op| {
            (
                key(
                    t::OUTPUT,
                    200,
                    format!("reg0={:#x}/0xfe600000", (op << 25) | 0x40_0000),
                ),
                format!(
                    "meter:{PACKET_IN_METER},controller(reason=no_match,id={AGENT_CONTROLLER_ID},userdata=01.{op:02x},max_len=65535)"
                ),
            )
        })
        .collect();
    (groups, flows)
}
