//! Membership: appliedTo, peers and groups resolved against the Model's Pods, Namespaces,
//! Nodes and Services, and the expansion of policies into internal rules (one per YAML rule,
//! or one per appliedTo namespace when a peer uses `namespaces: Self / sameLabels`).

use super::types::*;
use crate::model::{Cidr, Model, Pod, Selector};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

fn ns_labels<'m>(model: &'m Model, ns: &str) -> &'m BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    model
        .namespaces
        .get(ns)
        .map(|n| &n.labels)
        .unwrap_or(&EMPTY)
}

fn host(ip: Ipv4Addr) -> Cidr {
    Cidr { addr: ip, len: 32 }
}

/// Pods selected by a pod and/or namespace selector; `default_ns` limits a lone podSelector
/// (ANNP: the policy namespace; ACNP: `None`, every namespace).
pub fn select_pods<'m>(
    model: &'m Model,
    pod: Option<&Selector>,
    ns: Option<&Selector>,
    default_ns: Option<&str>,
) -> Vec<&'m Pod> {
    model
        .pods
        .values()
        .filter(|p| match ns {
            Some(s) => s.matches(ns_labels(model, &p.namespace)),
            None => default_ns.is_none_or(|d| d == p.namespace),
        })
        .filter(|p| pod.is_none_or(|s| s.matches(&p.labels)))
        .collect()
}

/// The addresses of a Node: its IP, its Antrea gateway (the local one from the agent config,
/// a peer's the first address of its Pod CIDR) and its transport IP (the Node IP here).
pub fn node_addresses(model: &Model, node: &crate::model::Node) -> Vec<Ipv4Addr> {
    let gw = match &model.config {
        Some(c) if c.node_name == node.name => c.gateway_ip,
        _ => Ipv4Addr::from(u32::from(node.pod_cidr.addr).wrapping_add(1)),
    };
    vec![node.ip, gw]
}

fn service_endpoints(model: &Model, svc: &NamespacedName) -> BTreeSet<Ipv4Addr> {
    model
        .slices
        .values()
        .filter(|s| s.namespace == svc.namespace && s.service == svc.name)
        .flat_map(|s| s.addresses.iter().copied())
        .collect()
}

/// What a ClusterGroup / Group stands for.
#[derive(Debug, Default, Clone)]
pub struct Members<'m> {
    /// Member Pods.
    pub pods: Vec<&'m Pod>,
    /// Member addresses that are not Pods (ipBlocks, Node addresses).
    pub cidrs: BTreeSet<Cidr>,
    /// A Group whose Pods may be in other namespaces (namespaceSelector): refused as an
    /// ANNP appliedTo.
    pub cross_namespace: bool,
}

/// The members of group `name` (a ClusterGroup when `ns` is `None`, else a Group of `ns`);
/// a missing group or one nested deeper than one level has none.
pub fn group_members<'m>(model: &'m Model, ns: Option<&str>, name: &str) -> Members<'m> {
    group_members_depth(model, ns, name, 0)
}

fn group_members_depth<'m>(
    model: &'m Model,
    ns: Option<&str>,
    name: &str,
    depth: u8,
) -> Members<'m> {
    let mut m = Members::default();
    let Some(g) = model
        .anp
        .groups
        .get(&(ns.map(str::to_string), name.to_string()))
    else {
        return m;
    };
    if g.pod_selector.is_some() || g.namespace_selector.is_some() {
        m.pods = select_pods(
            model,
            g.pod_selector.as_ref(),
            g.namespace_selector.as_ref(),
            ns,
        );
        m.cross_namespace = g.namespace_selector.is_some();
    }
    if let Some(sel) = &g.node_selector {
        for n in model.nodes.values().filter(|n| sel.matches(&n.labels)) {
            m.cidrs
                .extend(node_addresses(model, n).into_iter().map(host));
        }
    }
    for b in &g.ip_blocks {
        m.cidrs.extend(ip_block_cidrs(b));
    }
    if let Some(r) = &g.service_reference {
        let eps = service_endpoints(model, r);
        m.pods = model
            .pods
            .values()
            .filter(|p| eps.contains(&p.ip))
            .collect();
    }
    if !g.child_groups.is_empty() {
        if depth > 0 {
            // ChildGroupsNestingExceeded: realises to nothing.
            return Members::default();
        }
        for c in &g.child_groups {
            let cm = group_members_depth(model, ns, c, depth + 1);
            m.pods.extend(cm.pods);
            m.cidrs.extend(cm.cidrs);
            m.cross_namespace |= cm.cross_namespace;
        }
    }
    m
}

/// An ipBlock's addresses: cidr minus the excepts (empty if the block does not parse, which
/// admission refuses anyway).
pub fn ip_block_cidrs(b: &IpBlock) -> Vec<Cidr> {
    let Some(c) = Cidr::parse(&b.cidr) else {
        return Vec::new();
    };
    let ex: Vec<Cidr> = b.except.iter().filter_map(|e| Cidr::parse(e)).collect();
    c.minus(&ex)
}

/// The Pods of an appliedTo list of `pol`.
pub fn applied_pods<'m>(model: &'m Model, pol: &AntreaPolicy, set: &[AppliedTo]) -> Vec<&'m Pod> {
    let mut out: BTreeMap<(&str, &str), &Pod> = BTreeMap::new();
    let ns = pol.namespace.as_deref();
    for a in set {
        let pods: Vec<&Pod> = if let Some(g) = &a.group {
            let m = group_members(model, ns, g);
            if ns.is_some() && m.cross_namespace {
                // NetworkPolicyAppliedToUnsupportedGroup: not realised.
                Vec::new()
            } else {
                m.pods
            }
        } else if let Some(sa) = &a.service_account {
            model
                .pods
                .values()
                .filter(|p| p.namespace == sa.namespace && p.service_account == sa.name)
                .collect()
        } else if a.service.is_some() || a.node_selector.is_some() {
            // No Pods: a NodePort Service is matched by its group id (flows.rs, proxyAll);
            // a Node policy (host iptables in Antrea) is reported unrealised.
            Vec::new()
        } else if a.pod_selector.is_some() || a.namespace_selector.is_some() {
            select_pods(
                model,
                a.pod_selector.as_ref(),
                a.namespace_selector.as_ref(),
                ns,
            )
        } else {
            Vec::new()
        };
        for p in pods {
            if ns.is_none_or(|n| n == p.namespace) {
                out.insert((&p.namespace, &p.name), p);
            }
        }
    }
    out.into_values().collect()
}

/// The addresses of one peer for Pods of namespace `applied_ns` (used by the per-namespace
/// kinds); `None` for a `namespaces` peer that gives nothing to that namespace.
pub fn peer_cidrs(
    model: &Model,
    pol: &AntreaPolicy,
    peer: &AnpPeer,
    applied_ns: &str,
) -> BTreeSet<Cidr> {
    let ns = pol.namespace.as_deref();
    let pods_to_cidrs = |pods: Vec<&Pod>| pods.into_iter().map(|p| host(p.ip)).collect();
    if let Some(b) = &peer.ip_block {
        return ip_block_cidrs(b).into_iter().collect();
    }
    if let Some(g) = &peer.group {
        let m = group_members(model, ns, g);
        let mut out: BTreeSet<Cidr> = pods_to_cidrs(m.pods);
        out.extend(m.cidrs);
        return out;
    }
    if let Some(sa) = &peer.service_account {
        return model
            .pods
            .values()
            .filter(|p| p.namespace == sa.namespace && p.service_account == sa.name)
            .map(|p| host(p.ip))
            .collect();
    }
    if let Some(sel) = &peer.node_selector {
        return model
            .nodes
            .values()
            .filter(|n| sel.matches(&n.labels))
            .flat_map(|n| node_addresses(model, n))
            .map(host)
            .collect();
    }
    if let Some(f) = &peer.fqdn {
        // Learned from intercepted DNS answers (super::fqdn).
        return super::fqdn::peer_addresses(model, f)
            .into_iter()
            .map(host)
            .collect();
    }
    if peer.external_entity_selector.is_some() {
        return BTreeSet::new();
    }
    match &peer.namespaces {
        Some(Namespaces::SelfNs) => pods_to_cidrs(
            model
                .pods
                .values()
                .filter(|p| p.namespace == applied_ns)
                .filter(|p| {
                    peer.pod_selector
                        .as_ref()
                        .is_none_or(|s| s.matches(&p.labels))
                })
                .collect(),
        ),
        Some(Namespaces::SameLabels(keys)) => {
            let mine = ns_labels(model, applied_ns);
            let Some(values): Option<Vec<&String>> = keys.iter().map(|k| mine.get(k)).collect()
            else {
                return BTreeSet::new();
            };
            pods_to_cidrs(
                model
                    .pods
                    .values()
                    .filter(|p| {
                        let l = ns_labels(model, &p.namespace);
                        keys.iter().zip(&values).all(|(k, v)| l.get(k) == Some(*v))
                    })
                    .filter(|p| {
                        peer.pod_selector
                            .as_ref()
                            .is_none_or(|s| s.matches(&p.labels))
                    })
                    .collect(),
            )
        }
        Some(Namespaces::Invalid { .. }) => BTreeSet::new(),
        None => pods_to_cidrs(select_pods(
            model,
            peer.pod_selector.as_ref(),
            peer.namespace_selector.as_ref(),
            ns,
        )),
    }
}

/// A policy rule as realised: for one appliedTo namespace when split.
#[derive(Debug, Clone)]
pub struct InternalRule<'m> {
    /// The policy.
    pub policy: &'m AntreaPolicy,
    /// Direction.
    pub dir: Direction,
    /// Index in the policy's rules of that direction.
    pub index: usize,
    /// The rule.
    pub rule: &'m AnpRule,
    /// The appliedTo namespace of this expansion (`None`: not split).
    pub split: Option<String>,
    /// AppliedTo Pods (every node).
    pub applied: Vec<&'m Pod>,
    /// Peer addresses; `None` = any address (empty peer list, no toServices).
    pub peers: Option<BTreeSet<Cidr>>,
}

impl InternalRule<'_> {
    /// A stable name (conjunction ids are allocated by it).
    pub fn id_name(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.policy.namespace.as_deref().unwrap_or(""),
            self.policy.name,
            self.dir.key(),
            self.index,
            self.split.as_deref().unwrap_or("")
        )
    }
}

/// Every internal rule of every admitted policy.
pub fn internal_rules(model: &Model) -> Vec<InternalRule<'_>> {
    let mut out = Vec::new();
    for pol in model.anp.policies.values() {
        policy_internal_rules(model, pol, &mut out);
    }
    out
}

/// The internal rules of one policy, appended to `out` (ingress then egress, in rule order).
pub fn policy_internal_rules<'m>(
    model: &'m Model,
    pol: &'m AntreaPolicy,
    out: &mut Vec<InternalRule<'m>>,
) {
    for dir in [Direction::Ingress, Direction::Egress] {
        for (index, rule) in pol.rules(dir).iter().enumerate() {
            let at = if rule.applied_to.is_empty() {
                &pol.applied_to
            } else {
                &rule.applied_to
            };
            let applied = applied_pods(model, pol, at);
            let per_ns = rule.peers.iter().any(|p| p.namespaces.is_some());
            let base = InternalRule {
                policy: pol,
                dir,
                index,
                rule,
                split: None,
                applied: Vec::new(),
                peers: None,
            };
            if !per_ns {
                let peers = if rule.peers.is_empty() {
                    // toServices rules match by Service, not by address.
                    (!rule.to_services.is_empty()).then(BTreeSet::new)
                } else {
                    Some(
                        rule.peers
                            .iter()
                            .flat_map(|p| peer_cidrs(model, pol, p, ""))
                            .collect(),
                    )
                };
                out.push(InternalRule {
                    applied,
                    peers,
                    ..base
                });
                continue;
            }
            let mut by_ns: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
            for p in applied {
                by_ns.entry(&p.namespace).or_default().push(p);
            }
            for (ns, pods) in by_ns {
                let peers = rule
                    .peers
                    .iter()
                    .flat_map(|p| peer_cidrs(model, pol, p, ns))
                    .collect();
                out.push(InternalRule {
                    split: Some(ns.to_string()),
                    applied: pods,
                    peers: Some(peers),
                    ..base.clone()
                });
            }
        }
    }
}
