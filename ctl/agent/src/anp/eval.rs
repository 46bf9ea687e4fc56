//! A reference evaluator of the documented semantics (Antrea's docs: tiers, policy and rule
//! order, Pass, K8s NetworkPolicy, baseline; egress then ingress), written per packet and per
//! address, independent of [`resolve`](super::resolve) and the flows, so that tests can compare
//! the two.
//!
//! Not covered (as in the flows): named ports (no container ports in the model), Node
//! policies, IGMP, ExternalEntities. A rule applied to a NodePort Service (proxyAll) matches
//! the connections addressed to that Service, through its ClusterIP or a node port, by their
//! original client address. FQDN peers match the addresses in
//! `Model::fqdn_learned` of the names the selector matches.

use super::types::*;
use crate::model::{Cidr, Model, NetworkPolicy, Peer, Pod, Proto, Selector};
use std::net::Ipv4Addr;

/// The outcome for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Delivered.
    Allow,
    /// Dropped silently.
    Drop,
    /// Dropped and answered (TCP RST / ICMP administratively prohibited).
    Reject,
}

/// Layer 4 of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// TCP, UDP or SCTP with ports.
    Ports {
        /// Protocol.
        proto: Proto,
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP with type and code.
    Icmp {
        /// Type.
        icmp_type: u8,
        /// Code.
        icmp_code: u8,
    },
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address (after Service DNAT).
    pub dst: Ipv4Addr,
    /// L4.
    pub l4: L4,
    /// The Service the client addressed, if it went through its ClusterIP or a node port.
    pub service: Option<NamespacedName>,
}

fn pod_by_ip(model: &Model, ip: Ipv4Addr) -> Option<&Pod> {
    model.pods.values().find(|p| p.ip == ip)
}

fn node_addrs(model: &Model) -> Vec<(&crate::model::Node, Vec<Ipv4Addr>)> {
    model
        .nodes
        .values()
        .map(|n| {
            let gw = match &model.config {
                Some(c) if c.node_name == n.name => c.gateway_ip,
                _ => Ipv4Addr::from(u32::from(n.pod_cidr.addr).wrapping_add(1)),
            };
            (n, vec![n.ip, gw])
        })
        .collect()
}

fn ns_matches(model: &Model, sel: &Selector, ns: &str) -> bool {
    match model.namespaces.get(ns) {
        Some(n) => sel.matches(&n.labels),
        None => sel.matches(&Default::default()),
    }
}

fn in_block(b: &IpBlock, addr: Ipv4Addr) -> bool {
    let Some(c) = Cidr::parse(&b.cidr) else {
        return false;
    };
    c.contains(addr)
        && !b
            .except
            .iter()
            .filter_map(|e| Cidr::parse(e))
            .any(|e| e.contains(addr))
}

/// Whether `pod` is selected by pod/namespace selectors; a lone podSelector looks in
/// `default_ns` when given.
fn selects(
    model: &Model,
    pod_sel: Option<&Selector>,
    ns_sel: Option<&Selector>,
    default_ns: Option<&str>,
    pod: &Pod,
) -> bool {
    let ns_ok = match ns_sel {
        Some(s) => ns_matches(model, s, &pod.namespace),
        None => default_ns.is_none_or(|d| d == pod.namespace),
    };
    ns_ok && pod_sel.is_none_or(|s| s.matches(&pod.labels))
}

fn group<'m>(model: &'m Model, ns: Option<&str>, name: &str) -> Option<&'m AnpGroup> {
    model
        .anp
        .groups
        .get(&(ns.map(str::to_string), name.to_string()))
}

fn endpoints_contain(model: &Model, svc: &NamespacedName, addr: Ipv4Addr) -> bool {
    model.slices.values().any(|s| {
        s.namespace == svc.namespace && s.service == svc.name && s.addresses.contains(&addr)
    })
}

/// Whether Pod `pod` is a member of the group (for appliedTo).
fn pod_in_group(model: &Model, ns: Option<&str>, name: &str, pod: &Pod, nested: bool) -> bool {
    let Some(g) = group(model, ns, name) else {
        return false;
    };
    if !g.child_groups.is_empty() {
        return !nested
            && g.child_groups
                .iter()
                .any(|c| pod_in_group(model, ns, c, pod, true));
    }
    if g.pod_selector.is_some() || g.namespace_selector.is_some() {
        return selects(
            model,
            g.pod_selector.as_ref(),
            g.namespace_selector.as_ref(),
            ns,
            pod,
        );
    }
    match &g.service_reference {
        Some(r) => endpoints_contain(model, r, pod.ip),
        None => false,
    }
}

/// Whether address `addr` is a member of the group (for peers).
fn addr_in_group(
    model: &Model,
    ns: Option<&str>,
    name: &str,
    addr: Ipv4Addr,
    nested: bool,
) -> bool {
    let Some(g) = group(model, ns, name) else {
        return false;
    };
    if !g.child_groups.is_empty() {
        return !nested
            && g.child_groups
                .iter()
                .any(|c| addr_in_group(model, ns, c, addr, true));
    }
    if g.ip_blocks.iter().any(|b| in_block(b, addr)) {
        return true;
    }
    if let Some(sel) = &g.node_selector {
        if node_addrs(model)
            .iter()
            .any(|(n, a)| sel.matches(&n.labels) && a.contains(&addr))
        {
            return true;
        }
    }
    pod_by_ip(model, addr).is_some_and(|p| pod_in_group(model, ns, name, p, nested))
}

/// Whether `svc` is a NodePort (or LoadBalancer) Service that proxyAll serves.
fn served_node_port(model: &Model, svc: &NamespacedName) -> bool {
    model.config.as_ref().is_some_and(|c| c.proxy_all)
        && model
            .services
            .get(&(svc.namespace.clone(), svc.name.clone()))
            .is_some_and(|s| s.service_type.has_node_ports())
}

fn pod_applied(
    model: &Model,
    pol: &AntreaPolicy,
    set: &[AppliedTo],
    pod: &Pod,
    conn: &Conn,
    dir: Direction,
) -> bool {
    let ns = pol.namespace.as_deref();
    if set.iter().any(|a| a.service.is_some()) {
        // Applied to Services (admission: nothing else in the set): the connection must be
        // addressed to one of them, and only ingress rules apply.
        return dir == Direction::Ingress
            && conn.service.as_ref().is_some_and(|c| {
                served_node_port(model, c) && set.iter().any(|a| a.service.as_ref() == Some(c))
            });
    }
    if ns.is_some_and(|n| n != pod.namespace) {
        return false;
    }
    set.iter().any(|a| {
        if let Some(g) = &a.group {
            let cross =
                ns.is_some() && group(model, ns, g).is_some_and(|g| g.namespace_selector.is_some());
            !cross && pod_in_group(model, ns, g, pod, false)
        } else if let Some(sa) = &a.service_account {
            pod.namespace == sa.namespace && pod.service_account == sa.name
        } else if a.service.is_some() || a.node_selector.is_some() {
            false
        } else if a.pod_selector.is_some() || a.namespace_selector.is_some() {
            selects(
                model,
                a.pod_selector.as_ref(),
                a.namespace_selector.as_ref(),
                ns,
                pod,
            )
        } else {
            false
        }
    })
}

fn peer_matches(model: &Model, pol: &AntreaPolicy, p: &AnpPeer, pod: &Pod, addr: Ipv4Addr) -> bool {
    let ns = pol.namespace.as_deref();
    if let Some(b) = &p.ip_block {
        return in_block(b, addr);
    }
    if let Some(g) = &p.group {
        return addr_in_group(model, ns, g, addr, false);
    }
    if let Some(sa) = &p.service_account {
        return pod_by_ip(model, addr)
            .is_some_and(|q| q.namespace == sa.namespace && q.service_account == sa.name);
    }
    if let Some(sel) = &p.node_selector {
        return node_addrs(model)
            .iter()
            .any(|(n, a)| sel.matches(&n.labels) && a.contains(&addr));
    }
    if let Some(f) = &p.fqdn {
        return model
            .fqdn_learned
            .iter()
            .any(|(name, ips)| ips.contains(&addr) && super::fqdn::selector_matches(f, name));
    }
    if p.external_entity_selector.is_some() {
        return false;
    }
    let Some(q) = pod_by_ip(model, addr) else {
        return false;
    };
    let pod_ok = p.pod_selector.as_ref().is_none_or(|s| s.matches(&q.labels));
    match &p.namespaces {
        Some(Namespaces::SelfNs) => q.namespace == pod.namespace && pod_ok,
        Some(Namespaces::SameLabels(keys)) => {
            let mine = model.namespaces.get(&pod.namespace).map(|n| &n.labels);
            let theirs = model.namespaces.get(&q.namespace).map(|n| &n.labels);
            keys.iter().all(|k| {
                let v = mine.and_then(|l| l.get(k));
                v.is_some() && theirs.and_then(|l| l.get(k)) == v
            }) && pod_ok
        }
        Some(Namespaces::Invalid { .. }) => false,
        None => selects(
            model,
            p.pod_selector.as_ref(),
            p.namespace_selector.as_ref(),
            ns,
            q,
        ),
    }
}

fn services_match(rule: &AnpRule, conn: &Conn) -> bool {
    if rule.ports.is_empty() && rule.protocols.is_empty() {
        return true;
    }
    let ports = rule.ports.iter().any(|p| {
        let L4::Ports {
            proto,
            sport,
            dport,
        } = conn.l4
        else {
            return false;
        };
        let dst_ok = match &p.port {
            None => true,
            Some(PortValue::Named(_)) => false,
            Some(PortValue::Number(n)) => {
                let hi = p.end_port.unwrap_or(*n);
                (*n..=hi).contains(&i64::from(dport))
            }
        };
        let src_ok = p
            .source_port
            .is_none_or(|s| (s..=p.source_end_port.unwrap_or(s)).contains(&i64::from(sport)));
        proto == p.protocol && dst_ok && src_ok
    });
    let protos = rule.protocols.iter().any(|q| match (q, conn.l4) {
        (
            L4Protocol::Icmp {
                icmp_type,
                icmp_code,
            },
            L4::Icmp {
                icmp_type: t,
                icmp_code: c,
            },
        ) => icmp_type.is_none_or(|x| x == t) && icmp_code.is_none_or(|x| x == c),
        _ => false,
    });
    ports || protos
}

fn rule_matches(
    model: &Model,
    pol: &AntreaPolicy,
    rule: &AnpRule,
    dir: Direction,
    pod: &Pod,
    peer: Ipv4Addr,
    conn: &Conn,
) -> bool {
    let at = if rule.applied_to.is_empty() {
        &pol.applied_to
    } else {
        &rule.applied_to
    };
    if !pod_applied(model, pol, at, pod, conn, dir) || !services_match(rule, conn) {
        return false;
    }
    if dir == Direction::Egress && !rule.to_services.is_empty() {
        return conn
            .service
            .as_ref()
            .is_some_and(|s| rule.to_services.contains(s));
    }
    rule.peers.is_empty()
        || rule
            .peers
            .iter()
            .any(|p| peer_matches(model, pol, p, pod, peer))
}

fn k8s_peer(model: &Model, np: &NetworkPolicy, p: &Peer, addr: Ipv4Addr) -> bool {
    match p {
        Peer::IpBlock { cidr, except } => {
            cidr.contains(addr) && !except.iter().any(|e| e.contains(addr))
        }
        Peer::Pods { pod, ns } => pod_by_ip(model, addr)
            .is_some_and(|q| selects(model, pod.as_ref(), ns.as_ref(), Some(&np.namespace), q)),
    }
}

fn k8s_rule(
    model: &Model,
    np: &NetworkPolicy,
    r: &crate::model::NpRule,
    peer: Ipv4Addr,
    conn: &Conn,
) -> bool {
    let ports = r.ports.is_empty()
        || r.ports.iter().any(|p| match conn.l4 {
            L4::Ports { proto, dport, .. } => {
                proto == p.proto
                    && p.port
                        .is_none_or(|lo| (lo..=p.end_port.unwrap_or(lo)).contains(&dport))
            }
            L4::Icmp { .. } => false,
        });
    ports && (r.peers.is_empty() || r.peers.iter().any(|p| k8s_peer(model, np, p, peer)))
}

fn from_action(a: Action) -> Option<Verdict> {
    match a {
        Action::Allow => Some(Verdict::Allow),
        Action::Drop => Some(Verdict::Drop),
        Action::Reject => Some(Verdict::Reject),
        Action::Pass => None,
    }
}

/// Policies of the non-baseline tiers (or of the baseline tier) in evaluation order.
fn ordered(model: &Model, baseline: bool) -> Vec<&AntreaPolicy> {
    let mut v: Vec<(i32, f64, &AntreaPolicy)> = model
        .anp
        .policies
        .values()
        .filter(|p| (p.tier == BASELINE_TIER) == baseline)
        .filter_map(|p| {
            model
                .anp
                .tier_priority(&p.tier)
                .map(|t| (t, p.priority.0, p))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    v.into_iter().map(|(_, _, p)| p).collect()
}

/// One direction's verdict for `pod` talking with `peer`.
pub fn eval_direction(
    model: &Model,
    dir: Direction,
    pod: &Pod,
    peer: Ipv4Addr,
    conn: &Conn,
) -> Verdict {
    'tiers: {
        for pol in ordered(model, false) {
            for rule in pol.rules(dir) {
                if rule_matches(model, pol, rule, dir, pod, peer, conn) {
                    match from_action(rule.action) {
                        Some(v) => return v,
                        None => break 'tiers,
                    }
                }
            }
        }
    }
    let selecting: Vec<&NetworkPolicy> = model
        .policies
        .values()
        .filter(|np| np.namespace == pod.namespace && np.pod_selector.matches(&pod.labels))
        .filter(|np| match dir {
            Direction::Ingress => np.ingress_isolation,
            Direction::Egress => np.egress_isolation,
        })
        .collect();
    if !selecting.is_empty() {
        let allowed = selecting.iter().any(|np| {
            let rules = match dir {
                Direction::Ingress => &np.ingress,
                Direction::Egress => &np.egress,
            };
            rules.iter().any(|r| k8s_rule(model, np, r, peer, conn))
        });
        return if allowed {
            Verdict::Allow
        } else {
            Verdict::Drop
        };
    }
    for pol in ordered(model, true) {
        for rule in pol.rules(dir) {
            if rule_matches(model, pol, rule, dir, pod, peer, conn) {
                return from_action(rule.action).unwrap_or(Verdict::Allow);
            }
        }
    }
    Verdict::Allow
}

/// Whether a source is exempt from ingress rules: the local Node's own addresses, its gateway
/// IP and its InternalIPs / ExternalIPs (kubelet probes; other Nodes' traffic is not).
fn exempt(model: &Model, src: Ipv4Addr) -> bool {
    let Some(cfg) = &model.config else {
        return false;
    };
    cfg.gateway_ip == src
        || model
            .nodes
            .get(&cfg.node_name)
            .is_some_and(|n| n.ip == src || n.addresses.contains(&src))
}

/// The verdict for a new connection: egress of the source Pod, then ingress of the
/// destination Pod.
pub fn verdict(model: &Model, conn: &Conn) -> Verdict {
    if let Some(src) = pod_by_ip(model, conn.src) {
        let e = eval_direction(model, Direction::Egress, src, conn.dst, conn);
        if e != Verdict::Allow {
            return e;
        }
    }
    if let Some(dst) = pod_by_ip(model, conn.dst) {
        if !exempt(model, conn.src) {
            return eval_direction(model, Direction::Ingress, dst, conn.src, conn);
        }
    }
    Verdict::Allow
}
