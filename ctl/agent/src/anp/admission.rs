//! Antrea's mutating and validating admission webhooks, run on every manifest object:
//! [`admit_object`] (mutation, then the object's own checks, first failure wins, Antrea's
//! wording) and [`admit`] (checks across objects: tiers exist, tier priorities, tier deletion,
//! groups exist, group nesting). A refused object is not applied; where a previously admitted
//! version exists, that version stays.

use super::sha1::sha1_hex;
use super::types::*;
use crate::model::{Cidr, ManifestError, Model, SelOp, Selector};
use std::collections::BTreeMap;

/// A refusal: (field path relative to the object, webhook name, Antrea's message).
pub type Refusal = (String, &'static str, String);

const TIER_HOOK: &str = "tiervalidator.antrea.io";
const ACNP_HOOK: &str = "acnpvalidator.antrea.io";
const ANNP_HOOK: &str = "annpvalidator.antrea.io";
const CG_HOOK: &str = "clustergroupvalidator.antrea.io";
const GROUP_HOOK: &str = "groupvalidator.antrea.io";

/// Tier priorities reserved for Antrea (the upstream ClusterNetworkPolicy gate is off, so 220
/// is free).
pub const RESERVED_TIER_PRIORITIES: [i32; 4] = [251, 252, 254, 255];
/// At most this many tiers, static ones included.
pub const MAX_TIERS: usize = 20;

// ---------------------------------------------------------------- canonical JSON (mutation)

/// A Go `encoding/json` string literal (HTML-safe escaping, as Go does by default).
pub fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                o.push_str(&format!("\\u{:04x}", ch as u32))
            }
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// An object builder keeping Go struct field order and omitempty.
struct Obj(Vec<String>);
impl Obj {
    fn new() -> Self {
        Obj(Vec::new())
    }
    fn raw(&mut self, k: &str, v: String) -> &mut Self {
        self.0.push(format!("{}:{v}", json_string(k)));
        self
    }
    fn str_opt(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.raw(k, json_string(v));
        }
        self
    }
    fn list(&mut self, k: &str, v: Vec<String>) -> &mut Self {
        if !v.is_empty() {
            self.raw(k, format!("[{}]", v.join(",")));
        }
        self
    }
    fn sel(&mut self, k: &str, v: &Option<Selector>) -> &mut Self {
        if let Some(s) = v {
            self.raw(k, selector_json(s));
        }
        self
    }
    fn done(&self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

fn selector_json(s: &Selector) -> String {
    let mut o = Obj::new();
    if !s.labels.is_empty() {
        let kv: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
            .collect();
        o.raw("matchLabels", format!("{{{}}}", kv.join(",")));
    }
    let exprs = s
        .exprs
        .iter()
        .map(|(k, op, vals)| {
            let op = match op {
                SelOp::In => "In",
                SelOp::NotIn => "NotIn",
                SelOp::Exists => "Exists",
                SelOp::DoesNotExist => "DoesNotExist",
            };
            let mut e = Obj::new();
            e.raw("key", json_string(k))
                .raw("operator", json_string(op));
            e.list("values", vals.iter().map(|v| json_string(v)).collect());
            e.done()
        })
        .collect();
    o.list("matchExpressions", exprs);
    o.done()
}

fn nsname_json(n: &NamespacedName) -> String {
    let mut o = Obj::new();
    o.str_opt("name", Some(&n.name))
        .str_opt("namespace", Some(&n.namespace));
    o.done()
}

fn ip_block_json(b: &IpBlock) -> String {
    let mut o = Obj::new();
    o.raw("cidr", json_string(&b.cidr));
    o.list("except", b.except.iter().map(|e| json_string(e)).collect());
    o.done()
}

fn applied_to_json(a: &AppliedTo) -> String {
    let mut o = Obj::new();
    o.sel("podSelector", &a.pod_selector)
        .sel("namespaceSelector", &a.namespace_selector)
        .sel("externalEntitySelector", &a.external_entity_selector)
        .str_opt("group", a.group.as_deref());
    if let Some(s) = &a.service_account {
        o.raw("serviceAccount", nsname_json(s));
    }
    if let Some(s) = &a.service {
        o.raw("service", nsname_json(s));
    }
    o.sel("nodeSelector", &a.node_selector);
    o.done()
}

fn peer_json(p: &AnpPeer) -> String {
    let mut o = Obj::new();
    if let Some(b) = &p.ip_block {
        o.raw("ipBlock", ip_block_json(b));
    }
    o.sel("podSelector", &p.pod_selector)
        .sel("namespaceSelector", &p.namespace_selector);
    if let Some(n) = &p.namespaces {
        let mut no = Obj::new();
        match n {
            Namespaces::SelfNs => {
                no.raw("match", json_string("Self"));
            }
            Namespaces::SameLabels(k) => {
                no.list("sameLabels", k.iter().map(|x| json_string(x)).collect());
            }
            Namespaces::Invalid { .. } => {}
        }
        o.raw("namespaces", no.done());
    }
    o.sel("externalEntitySelector", &p.external_entity_selector)
        .str_opt("group", p.group.as_deref())
        .str_opt("fqdn", p.fqdn.as_deref());
    if let Some(s) = &p.service_account {
        o.raw("serviceAccount", nsname_json(s));
    }
    o.sel("nodeSelector", &p.node_selector)
        .str_opt("scope", p.scope.as_deref());
    o.done()
}

/// The rule's canonical JSON (Go's encoding of Antrea's `Rule` struct), `name` as given.
pub fn rule_json(r: &AnpRule, dir: Direction) -> String {
    let mut o = Obj::new();
    o.raw("action", json_string(r.action.as_str()));
    let ports = r
        .ports
        .iter()
        .map(|p| {
            let mut po = Obj::new();
            po.raw(
                "protocol",
                json_string(match p.protocol {
                    crate::model::Proto::Tcp => "TCP",
                    crate::model::Proto::Udp => "UDP",
                    crate::model::Proto::Sctp => "SCTP",
                }),
            );
            match &p.port {
                Some(PortValue::Number(n)) => {
                    po.raw("port", n.to_string());
                }
                Some(PortValue::Named(s)) => {
                    po.raw("port", json_string(s));
                }
                None => {}
            }
            for (k, v) in [
                ("endPort", p.end_port),
                ("sourcePort", p.source_port),
                ("sourceEndPort", p.source_end_port),
            ] {
                if let Some(v) = v {
                    po.raw(k, v.to_string());
                }
            }
            po.done()
        })
        .collect();
    o.list("ports", ports);
    let protocols = r
        .protocols
        .iter()
        .map(|p| {
            let mut po = Obj::new();
            match p {
                L4Protocol::Icmp {
                    icmp_type,
                    icmp_code,
                } => {
                    let mut i = Obj::new();
                    if let Some(t) = icmp_type {
                        i.raw("icmpType", t.to_string());
                    }
                    if let Some(c) = icmp_code {
                        i.raw("icmpCode", c.to_string());
                    }
                    po.raw("icmp", i.done());
                }
                L4Protocol::Igmp {
                    igmp_type,
                    group_address,
                } => {
                    let mut i = Obj::new();
                    if let Some(t) = igmp_type {
                        i.raw("igmpType", t.to_string());
                    }
                    i.str_opt("groupAddress", group_address.as_deref());
                    po.raw("igmp", i.done());
                }
            }
            po.done()
        })
        .collect();
    o.list("protocols", protocols);
    o.list("l7Protocols", r.l7_protocols.clone());
    let peers = r.peers.iter().map(peer_json).collect();
    o.list(
        match dir {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        },
        peers,
    );
    o.list(
        "toServices",
        r.to_services.iter().map(nsname_json).collect(),
    );
    o.str_opt("name", Some(&r.name));
    o.raw("enableLogging", r.enable_logging.to_string());
    o.str_opt("logLabel", Some(&r.log_label));
    o.list(
        "appliedTo",
        r.applied_to.iter().map(applied_to_json).collect(),
    );
    o.done()
}

/// Antrea's generated name for an unnamed rule: `<dir>-<action>-<first 7 hex of SHA-1 of the
/// rule's JSON>`.
pub fn generated_rule_name(r: &AnpRule, dir: Direction) -> String {
    let mut unnamed = r.clone();
    unnamed.name.clear();
    let h = sha1_hex(rule_json(&unnamed, dir).as_bytes());
    format!(
        "{}-{}-{}",
        dir.key(),
        r.action.as_str().to_lowercase(),
        &h[..7]
    )
}

/// The mutating webhook: default tier, generated rule names.
pub fn mutate(p: &mut AntreaPolicy) {
    p.tier = super::parse::normalise_tier(&p.tier);
    for (dir, rules) in [
        (Direction::Ingress, &mut p.ingress),
        (Direction::Egress, &mut p.egress),
    ] {
        for r in rules.iter_mut() {
            if r.name.is_empty() {
                r.name = generated_rule_name(r, dir);
            }
        }
    }
}

// ---------------------------------------------------------------- label syntax (k8s wording)

const NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_MSG: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn name_chars_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Kubernetes' qualified-name errors for a label key (empty when valid).
pub fn label_key_errors(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if k.matches('/').count() > 1 {
        return vec![
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
        ];
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            if p.len() > 253 {
                errs.push("prefix part must be no more than 253 characters".to_string());
            }
            let ok = p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            });
            if !ok {
                errs.push(PREFIX_MSG.to_string());
            }
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        if !name_chars_ok(name) {
            errs.push(NAME_MSG.to_string());
        }
    }
    errs
}

/// Kubernetes' label-value errors (empty when valid).
pub fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !name_chars_ok(v) {
        errs.push(VALUE_MSG.to_string());
    }
    errs
}

fn check_selector(s: &Option<Selector>) -> Result<(), String> {
    let Some(s) = s else { return Ok(()) };
    let keys = s.labels.keys().chain(s.exprs.iter().map(|(k, _, _)| k));
    for k in keys {
        let e = label_key_errors(k);
        if !e.is_empty() {
            return Err(format!("Invalid label key: {k}: {}", e.join("; ")));
        }
    }
    let vals = s
        .labels
        .values()
        .chain(s.exprs.iter().flat_map(|(_, _, v)| v.iter()));
    for v in vals {
        let e = label_value_errors(v);
        if !e.is_empty() {
            return Err(format!("Invalid label value: {v}: {}", e.join("; ")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- per-object checks

/// Go's `net.ParseCIDR` error text for a bad CIDR.
fn parse_cidr(s: &str) -> Result<Cidr, String> {
    if !s.contains('/') {
        return Err(format!("invalid CIDR address: {s}"));
    }
    Cidr::parse(s).ok_or_else(|| format!("invalid CIDR address: {s}"))
}

fn check_ip_block(b: &IpBlock) -> Result<(), String> {
    if b.cidr.is_empty() {
        return Err("field 'cidr' is required in an ipBlock".to_string());
    }
    let cidr = parse_cidr(&b.cidr)?;
    for e in &b.except {
        let ex = parse_cidr(e).map_err(|err| format!("invalid except CIDR value: {err}"))?;
        if !(cidr.covers(&ex) && ex.len > cidr.len) {
            return Err(format!(
                "except CIDR {e} is not a strict subset of CIDR {}",
                b.cidr
            ));
        }
    }
    Ok(())
}

fn is_multicast(c: &Cidr) -> bool {
    c.addr.is_multicast() && c.len >= 4
}

fn check_applied_to(a: &AppliedTo, path: &str) -> Result<(), (String, String)> {
    let others = |skip: usize| {
        [
            a.pod_selector.is_some(),
            a.namespace_selector.is_some(),
            a.external_entity_selector.is_some(),
            a.group.is_some(),
            a.service_account.is_some(),
            a.service.is_some(),
            a.node_selector.is_some(),
        ]
        .iter()
        .enumerate()
        .any(|(i, set)| i != skip && *set)
    };
    let single = [
        (3, a.group.is_some(), "group"),
        (6, a.node_selector.is_some(), "nodeSelector"),
        (4, a.service_account.is_some(), "serviceAccount"),
        (5, a.service.is_some(), "service"),
    ];
    for (i, set, name) in single {
        if set && others(i) {
            return Err((
                format!("{path}.{name}"),
                format!("{name} cannot be set with other peers in appliedTo"),
            ));
        }
    }
    for (n, s) in [
        ("podSelector", &a.pod_selector),
        ("namespaceSelector", &a.namespace_selector),
        ("externalEntitySelector", &a.external_entity_selector),
        ("nodeSelector", &a.node_selector),
    ] {
        check_selector(s).map_err(|m| (format!("{path}.{n}"), m))?;
    }
    Ok(())
}

/// The webhook checks of one policy (after mutation), in Antrea's order, except the tier and
/// group existence checks that need the other objects ([`admit`]).
fn validate_policy(p: &AntreaPolicy) -> Result<(), (String, String)> {
    // 2. Pass in baseline.
    if p.tier.to_lowercase() == BASELINE_TIER {
        for dir in [Direction::Ingress, Direction::Egress] {
            if let Some(i) = p.rules(dir).iter().position(|r| r.action == Action::Pass) {
                return Err((
                    format!("spec.{}[{i}].action", dir.key()),
                    "`Pass` action should not be set for Baseline Tier policy rules".to_string(),
                ));
            }
        }
    }
    // 3. Unique rule names.
    let mut seen = std::collections::BTreeSet::new();
    for dir in [Direction::Ingress, Direction::Egress] {
        for (i, r) in p.rules(dir).iter().enumerate() {
            if !seen.insert(r.name.as_str()) {
                return Err((
                    format!("spec.{}[{i}].name", dir.key()),
                    "rules names must be unique within the policy".to_string(),
                ));
            }
        }
    }
    // 4. appliedTo placement.
    let rules_with = p
        .ingress
        .iter()
        .chain(&p.egress)
        .filter(|r| !r.applied_to.is_empty())
        .count();
    let n_rules = p.ingress.len() + p.egress.len();
    if !p.applied_to.is_empty() && rules_with > 0 {
        return Err((
            "spec.appliedTo".into(),
            "appliedTo should not be set in both spec and rules".into(),
        ));
    }
    if p.applied_to.is_empty() && rules_with == 0 {
        return Err((
            "spec.appliedTo".into(),
            "appliedTo needs to be set in either spec or rules".into(),
        ));
    }
    if rules_with > 0 && rules_with != n_rules {
        return Err((
            "spec".into(),
            "appliedTo field should either be set in all rules or in none of them".into(),
        ));
    }
    let check_set = |set: &[AppliedTo], path: &str, egress: bool| -> Result<(), (String, String)> {
        for (i, a) in set.iter().enumerate() {
            check_applied_to(a, &format!("{path}.appliedTo[{i}]"))?;
        }
        let svc = set.iter().any(|a| a.service.is_some());
        if svc && egress {
            return Err((
                format!("{path}.appliedTo"),
                "egress rule cannot be applied to Services".into(),
            ));
        }
        if svc && set.iter().any(|a| a.service.is_none()) {
            return Err((
                format!("{path}.appliedTo"),
                "a rule/policy cannot be applied to Services and other peers at the same time"
                    .into(),
            ));
        }
        Ok(())
    };
    check_set(&p.applied_to, "spec", !p.egress.is_empty())?;
    for dir in [Direction::Ingress, Direction::Egress] {
        for (i, r) in p.rules(dir).iter().enumerate() {
            check_set(
                &r.applied_to,
                &format!("spec.{}[{i}]", dir.key()),
                dir == Direction::Egress,
            )?;
        }
    }
    // 5.–11. per rule.
    for dir in [Direction::Ingress, Direction::Egress] {
        for (i, r) in p.rules(dir).iter().enumerate() {
            let rp = format!("spec.{}[{i}]", dir.key());
            check_rule(p, r, dir, &rp)?;
        }
    }
    Ok(())
}

fn check_rule(
    p: &AntreaPolicy,
    r: &AnpRule,
    dir: Direction,
    rp: &str,
) -> Result<(), (String, String)> {
    let peers_key = if dir == Direction::Ingress {
        "from"
    } else {
        "to"
    };
    // 5. peers.
    for (j, peer) in r.peers.iter().enumerate() {
        let pp = format!("{rp}.{peers_key}[{j}]");
        if let Some(ns) = &peer.namespaces {
            if peer.namespace_selector.is_some() {
                return Err((
                    pp.clone(),
                    "namespaces and namespaceSelector cannot be set at the same time for a single NetworkPolicyPeer".into(),
                ));
            }
            match ns {
                Namespaces::Invalid { .. } => return Err((
                    format!("{pp}.namespaces"),
                    "only one matching criteria can be specified in a single peer namespaces field"
                        .into(),
                )),
                Namespaces::SameLabels(keys) => {
                    for k in keys {
                        if !label_key_errors(k).is_empty() {
                            return Err((
                                format!("{pp}.namespaces.sameLabels"),
                                format!("Invalid label key in sameLabels rule: {k}"),
                            ));
                        }
                    }
                }
                Namespaces::SelfNs => {}
            }
        }
        if let Some(b) = &peer.ip_block {
            check_ip_block(b).map_err(|m| (format!("{pp}.ipBlock"), m))?;
        }
        let n_set = [
            peer.ip_block.is_some(),
            peer.pod_selector.is_some(),
            peer.namespace_selector.is_some(),
            peer.namespaces.is_some(),
            peer.external_entity_selector.is_some(),
            peer.group.is_some(),
            peer.fqdn.is_some(),
            peer.service_account.is_some(),
            peer.node_selector.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        for (set, name) in [
            (peer.group.is_some(), "group"),
            (peer.service_account.is_some(), "serviceAccount"),
            (peer.node_selector.is_some(), "nodeSelector"),
        ] {
            if set && n_set > 1 {
                return Err((
                    format!("{pp}.{name}"),
                    format!("{name} cannot be set with other peers in rules"),
                ));
            }
        }
        for (n, s) in [
            ("podSelector", &peer.pod_selector),
            ("namespaceSelector", &peer.namespace_selector),
            ("externalEntitySelector", &peer.external_entity_selector),
            ("nodeSelector", &peer.node_selector),
        ] {
            check_selector(s).map_err(|m| (format!("{pp}.{n}"), m))?;
        }
    }
    if !r.to_services.is_empty()
        && (!r.peers.is_empty() || !r.ports.is_empty() || !r.protocols.is_empty())
    {
        return Err((
            format!("{rp}.toServices"),
            "`toServices` cannot be used with `to`, `ports` or `protocols`".into(),
        ));
    }
    // 6. Service appliedTo: ingress peers must be lone ipBlocks.
    let svc_applied = p
        .applied_to
        .iter()
        .chain(&r.applied_to)
        .any(|a| a.service.is_some());
    if svc_applied && dir == Direction::Ingress {
        for (j, peer) in r.peers.iter().enumerate() {
            let lone_ip = peer.ip_block.is_some()
                && AnpPeer {
                    ip_block: None,
                    ..peer.clone()
                } == AnpPeer::default();
            if !lone_ip {
                return Err((
                    format!("{rp}.from[{j}]"),
                    "a rule/policy that is applied to Services can only use ipBlock to select workloads".into(),
                ));
            }
        }
    }
    // 7. FQDN charset.
    for (j, peer) in r.peers.iter().enumerate() {
        if let Some(f) = &peer.fqdn {
            let ok = !f.is_empty()
                && f.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'*'));
            if !ok || dir == Direction::Ingress {
                return Err((
                    format!("{rp}.{peers_key}[{j}].fqdn"),
                    format!("invalid characters in egress rule fqdn field: {f}"),
                ));
            }
        }
    }
    // 8. Multicast egress ipBlocks.
    if dir == Direction::Egress {
        let mut multicast = false;
        let mut unicast = false;
        let mut selectors = false;
        for peer in &r.peers {
            match peer.ip_block.as_ref().and_then(|b| Cidr::parse(&b.cidr)) {
                Some(c) if is_multicast(&c) => multicast = true,
                Some(_) => unicast = true,
                None => selectors = true,
            }
        }
        if multicast {
            if matches!(r.action, Action::Pass | Action::Reject) {
                return Err((
                    format!("{rp}.action"),
                    "multicast does not support action Pass or Reject".into(),
                ));
            }
            if unicast {
                return Err((
                    format!("{rp}.to"),
                    "can not set multicast groupAddress and unicast ip address at the same time"
                        .into(),
                ));
            }
            if selectors {
                return Err((
                    format!("{rp}.to"),
                    "can not set multicast groupAddress and selectors at the same time".into(),
                ));
            }
        }
    }
    // 9. IGMP.
    for (j, q) in r.protocols.iter().enumerate() {
        if let L4Protocol::Igmp { group_address, .. } = q {
            let qp = format!("{rp}.protocols[{j}].igmp");
            if let Some(g) = group_address {
                let mc = g
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_multicast());
                if !mc {
                    return Err((
                        format!("{qp}.groupAddress"),
                        format!("groupAddress {g} is not multicast address"),
                    ));
                }
            }
            if matches!(r.action, Action::Pass | Action::Reject) {
                return Err((
                    format!("{rp}.action"),
                    "protocol IGMP does not support Pass or Reject".into(),
                ));
            }
            if r.protocols.len() > 1 || !r.peers.is_empty() || !r.ports.is_empty() {
                return Err((
                    qp,
                    "protocol IGMP can not be used with other protocols or other properties like from, to".into(),
                ));
            }
        }
    }
    // 10. L7 (the L7NetworkPolicy gate is off in xvs).
    if !r.l7_protocols.is_empty() {
        return Err((
            format!("{rp}.l7Protocols"),
            "layer 7 protocols can only be used when L7NetworkPolicy is enabled".into(),
        ));
    }
    // 11. Ports.
    for (j, port) in r.ports.iter().enumerate() {
        let pp = format!("{rp}.ports[{j}]");
        if let Some(end) = port.end_port {
            match &port.port {
                None => {
                    return Err((
                        format!("{pp}.endPort"),
                        "if `endPort` is specified `port` must be specified".into(),
                    ))
                }
                Some(PortValue::Named(_)) => {
                    return Err((
                        format!("{pp}.endPort"),
                        "if `port` is a string `endPort` cannot be specified".into(),
                    ))
                }
                Some(PortValue::Number(n)) if end < *n => {
                    return Err((
                        format!("{pp}.endPort"),
                        "`endPort` should be greater than or equal to `port`".into(),
                    ))
                }
                _ => {}
            }
        }
        if let Some(end) = port.source_end_port {
            match port.source_port {
                None => {
                    return Err((
                        format!("{pp}.sourceEndPort"),
                        "if `sourceEndPort` is specified `sourcePort` must be specified".into(),
                    ))
                }
                Some(s) if end < s => {
                    return Err((
                        format!("{pp}.sourceEndPort"),
                        "`sourceEndPort` should be greater than or equal to `sourcePort`".into(),
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn validate_group(g: &AnpGroup) -> Result<(), (String, String)> {
    let ee = g.external_entity_selector.is_some();
    let families = [
        g.pod_selector.is_some() || (g.namespace_selector.is_some() && !ee),
        g.node_selector.is_some(),
        ee,
        g.service_reference.is_some(),
        !g.ip_blocks.is_empty(),
        !g.child_groups.is_empty(),
    ];
    if families.iter().filter(|x| **x).count() > 1 {
        let msg = if g.namespace.is_some() {
            "At most one of podSelector, externalEntitySelector, serviceReference, ipBlocks or childGroups can be set for a Group"
        } else {
            "At most one of podSelector, nodeSelector, externalEntitySelector, serviceReference, ipBlock, ipBlocks or childGroups can be set for a ClusterGroup"
        };
        return Err(("spec".into(), msg.into()));
    }
    for (n, s) in [
        ("podSelector", &g.pod_selector),
        ("namespaceSelector", &g.namespace_selector),
        ("nodeSelector", &g.node_selector),
        ("externalEntitySelector", &g.external_entity_selector),
    ] {
        check_selector(s).map_err(|m| (format!("spec.{n}"), m))?;
    }
    let mut multicast = false;
    let mut unicast = false;
    for (i, b) in g.ip_blocks.iter().enumerate() {
        check_ip_block(b).map_err(|m| (format!("spec.ipBlocks[{i}]"), m))?;
        match Cidr::parse(&b.cidr) {
            Some(c) if is_multicast(&c) => multicast = true,
            _ => unicast = true,
        }
    }
    if multicast && unicast {
        return Err((
            "spec.ipBlocks".into(),
            "can not set multicast groupAddress together with unicast ip address".into(),
        ));
    }
    if g.child_groups.contains(&g.name) {
        let msg = match &g.namespace {
            None => format!("cannot set ClusterGroup {} as its own childGroup", g.name),
            Some(ns) => format!("cannot set Group {ns}/{} as its own childGroup", g.name),
        };
        return Err(("spec.childGroups".into(), msg));
    }
    Ok(())
}

/// The warnings (not refusals) Antrea's webhook returns for a policy, after [`mutate`]: a Node
/// NetworkPolicy (spec appliedTo by nodeSelector) whose logged rules carry a logLabel longer
/// than the 12 characters an iptables log prefix keeps.
pub fn policy_warnings(p: &AntreaPolicy) -> Vec<String> {
    if !p.applied_to.iter().any(|a| a.node_selector.is_some()) {
        return Vec::new();
    }
    p.ingress
        .iter()
        .chain(&p.egress)
        .filter(|r| r.enable_logging && r.log_label.len() > 12)
        .map(|r| {
            format!(
                "LogLabels for Node NetworkPolicies are limited to 12 characters, but the label {} for policy rule {} exceeds the limit and will be truncated in kernel logs",
                json_string(&r.log_label),
                json_string(&r.name)
            )
        })
        .collect()
}

/// Whether a policy is a Node NetworkPolicy (appliedTo by nodeSelector, in the spec or a
/// rule): Antrea enforces those with host iptables, outside OVS; xvs accepts them and reports
/// them unrealised.
pub fn is_node_policy(p: &AntreaPolicy) -> bool {
    p.applied_to
        .iter()
        .chain(
            p.ingress
                .iter()
                .chain(&p.egress)
                .flat_map(|r| &r.applied_to),
        )
        .any(|a| a.node_selector.is_some())
}

/// Mutates and validates one object on its own (the checks that need no other object).
pub fn admit_object(o: AnpObject) -> Result<AnpObject, Refusal> {
    match o {
        AnpObject::Tier(t) => {
            if STATIC_TIERS.iter().any(|(n, _)| *n == t.name) {
                return Err((
                    "metadata.name".into(),
                    TIER_HOOK,
                    format!("cannot update reserved tier {}", t.name),
                ));
            }
            if RESERVED_TIER_PRIORITIES.contains(&t.priority) {
                return Err((
                    "spec.priority".into(),
                    TIER_HOOK,
                    format!("tier {} priority {} is reserved", t.name, t.priority),
                ));
            }
            Ok(AnpObject::Tier(t))
        }
        AnpObject::Policy(mut p) => {
            mutate(&mut p);
            let hook = if p.namespace.is_some() {
                ANNP_HOOK
            } else {
                ACNP_HOOK
            };
            validate_policy(&p).map_err(|(path, m)| (path, hook, m))?;
            Ok(AnpObject::Policy(p))
        }
        AnpObject::Group(g) => {
            let hook = if g.namespace.is_some() {
                GROUP_HOOK
            } else {
                CG_HOOK
            };
            validate_group(&g).map_err(|(path, m)| (path, hook, m))?;
            Ok(AnpObject::Group(g))
        }
    }
}

// ---------------------------------------------------------------- checks across objects

fn refusal(file: &str, object: String, path: &str, hook: &str, msg: String) -> ManifestError {
    ManifestError {
        file: file.to_string(),
        field: path.to_string(),
        msg: format!("admission webhook \"{hook}\" denied the request: {object}: {msg}"),
    }
}

fn policy_object(p: &AntreaPolicy) -> String {
    match &p.namespace {
        Some(ns) => format!("{} {ns}/{}", p.kind(), p.name),
        None => format!("{} {}", p.kind(), p.name),
    }
}

fn group_refs(p: &AntreaPolicy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ats = p
        .applied_to
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("spec.appliedTo[{i}].group"), a.group.clone()));
    out.extend(ats.filter_map(|(p, g)| g.map(|g| (p, g))));
    for dir in [Direction::Ingress, Direction::Egress] {
        let pk = if dir == Direction::Ingress {
            "from"
        } else {
            "to"
        };
        for (i, r) in p.rules(dir).iter().enumerate() {
            for (j, a) in r.applied_to.iter().enumerate() {
                if let Some(g) = &a.group {
                    out.push((
                        format!("spec.{}[{i}].appliedTo[{j}].group", dir.key()),
                        g.clone(),
                    ));
                }
            }
            for (j, peer) in r.peers.iter().enumerate() {
                if let Some(g) = &peer.group {
                    out.push((
                        format!("spec.{}[{i}].{pk}[{j}].group", dir.key()),
                        g.clone(),
                    ));
                }
            }
        }
    }
    out
}

/// The cross-object admission of `model`'s Antrea-native objects against `previous` (what was
/// admitted last time): refused objects are removed from `model` (or put back to their
/// previous version); returns the refusals.
pub fn admit(model: &mut Model, previous: &AnpObjects) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let anp = &mut model.anp;
    // Tiers: an update may not change the priority; priorities are unique; at most 20.
    let names: Vec<String> = anp.tiers.keys().cloned().collect();
    let mut taken: BTreeMap<i32, String> = STATIC_TIERS
        .iter()
        .map(|(n, p)| (*p, n.to_string()))
        .collect();
    // Tiers already admitted keep their priority first, so a newcomer is the one refused.
    let mut order = names.clone();
    order.sort_by_key(|n| !previous.tiers.contains_key(n));
    for name in order {
        let Some(t) = anp.tiers.get(&name).cloned() else {
            continue;
        };
        let obj = format!("Tier {}", t.name);
        let mut refuse = |anp: &mut AnpObjects, path: &str, msg: String| {
            errors.push(refusal(&t.file, obj.clone(), path, TIER_HOOK, msg));
            match previous.tiers.get(&name) {
                Some(old) => {
                    anp.tiers.insert(name.clone(), old.clone());
                }
                None => {
                    anp.tiers.remove(&name);
                }
            }
        };
        if let Some(old) = previous.tiers.get(&name) {
            if old.priority != t.priority {
                refuse(
                    anp,
                    "spec.priority",
                    "update to Tier priority is not allowed".into(),
                );
                taken.insert(old.priority, name.clone());
                continue;
            }
        }
        if taken.contains_key(&t.priority) {
            refuse(
                anp,
                "spec.priority",
                format!(
                    "tier {} priority {} overlaps with existing Tier",
                    t.name, t.priority
                ),
            );
            continue;
        }
        if taken.len() >= MAX_TIERS {
            refuse(
                anp,
                "metadata.name",
                format!("maximum number of Tiers supported: {MAX_TIERS}"),
            );
            continue;
        }
        taken.insert(t.priority, name.clone());
    }
    // Group nesting: a child that has children of its own is refused in its parent.
    let group_keys: Vec<PolicyKey> = anp.groups.keys().cloned().collect();
    for key in &group_keys {
        let Some(g) = anp.groups.get(key).cloned() else {
            continue;
        };
        for c in &g.child_groups {
            let child = anp.groups.get(&(g.namespace.clone(), c.clone()));
            if let Some(child) = child.filter(|ch| !ch.child_groups.is_empty()) {
                let (obj, msg, hook) = match &g.namespace {
                    None => (
                        format!("ClusterGroup {}", g.name),
                        format!(
                            "cannot set ClusterGroup {c} as childGroup, who has {} childGroups itself",
                            child.child_groups.len()
                        ),
                        CG_HOOK,
                    ),
                    Some(ns) => (
                        format!("Group {ns}/{}", g.name),
                        format!(
                            "cannot set Group {ns}/{c} as childGroup, who has {} childGroups itself",
                            child.child_groups.len()
                        ),
                        GROUP_HOOK,
                    ),
                };
                errors.push(refusal(&g.file, obj, "spec.childGroups", hook, msg));
                match previous.groups.get(key) {
                    Some(old) => {
                        anp.groups.insert(key.clone(), old.clone());
                    }
                    None => {
                        anp.groups.remove(key);
                    }
                }
                break;
            }
        }
    }
    // Tier deletion: a tier that policies still use stays.
    for (name, old) in &previous.tiers {
        if anp.tiers.contains_key(name) {
            continue;
        }
        let users = |cluster: bool| {
            anp.policies
                .values()
                .filter(|p| p.tier == *name && p.namespace.is_none() == cluster)
                .count()
        };
        let (acnp, annp) = (users(true), users(false));
        if acnp + annp > 0 {
            let msg = if acnp > 0 {
                format!("tier {name} is referenced by {acnp} Antrea ClusterNetworkPolicies")
            } else {
                format!("tier {name} is referenced by {annp} Antrea NetworkPolicies")
            };
            errors.push(refusal(
                &old.file,
                format!("Tier {name}"),
                "metadata.name",
                TIER_HOOK,
                msg,
            ));
            anp.tiers.insert(name.clone(), old.clone());
        }
    }
    // Policies: the tier must exist; new or changed policies must name existing groups.
    let keys: Vec<PolicyKey> = anp.policies.keys().cloned().collect();
    for key in keys {
        // Borrowed, not cloned: at 1000s of policies a clone each is most of a reload.
        let Some(p) = anp.policies.get(&key) else {
            continue;
        };
        let hook = if p.namespace.is_some() {
            ANNP_HOOK
        } else {
            ACNP_HOOK
        };
        let mut problem = None;
        if anp.tier_priority(&p.tier).is_none() {
            problem = Some((
                "spec.tier".to_string(),
                format!("tier {} does not exist", p.tier),
            ));
        } else if previous.policies.get(&key) != Some(p) {
            for (path, g) in group_refs(p) {
                if !anp.groups.contains_key(&(p.namespace.clone(), g.clone())) {
                    problem = Some((path, format!("group {g} does not exist")));
                    break;
                }
            }
        }
        if let Some((path, msg)) = problem {
            errors.push(refusal(&p.file, policy_object(p), &path, hook, msg));
            let restore = previous
                .policies
                .get(&key)
                .filter(|old| anp.tier_priority(&old.tier).is_some())
                .cloned();
            match restore {
                Some(old) => {
                    anp.policies.insert(key.clone(), old);
                }
                None => {
                    anp.policies.remove(&key);
                }
            }
        }
    }
    errors
}
