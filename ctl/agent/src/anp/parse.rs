//! YAML → Antrea-native objects, with the apiserver's schema checks (enums, ranges, required
//! fields, formats) worded as the apiserver words them. Webhook checks are in
//! [`admission`](super::admission).

use super::types::*;
use crate::model::{ManifestError, Proto, SelOp, Selector};
use serde_yaml::Value;

type R<T> = Result<T, ManifestError>;

/// Who is being parsed, for error messages: file, YAML document prefix, object name.
struct Ctx<'a> {
    file: &'a str,
    doc: String,
    object: String,
}

impl Ctx<'_> {
    /// An error at `path` (relative to the object, e.g. `spec.ingress[0].action`).
    fn err(&self, path: &str, msg: impl std::fmt::Display) -> ManifestError {
        ManifestError {
            file: self.file.to_string(),
            field: format!("{}.{path}", self.doc),
            msg: format!("{}: {path}: {msg}", self.object),
        }
    }
}

fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn string(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Option<String>> {
    match get(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(x) => Err(c.err(
            &format!("{path}.{key}"),
            format!("Invalid value: {}: must be a string", show(x)),
        )),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "object".to_string(),
    }
}

fn int(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Option<i64>> {
    match get(v, key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(x) => Err(c.err(
            &format!("{path}.{key}"),
            format!("Invalid value: {}: must be an integer", show(x)),
        )),
    }
}

fn ranged(c: &Ctx<'_>, v: &Value, path: &str, key: &str, lo: i64, hi: i64) -> R<Option<i64>> {
    let n = int(c, v, path, key)?;
    if let Some(n) = n {
        let p = format!("{path}.{key}");
        if n < lo {
            return Err(c.err(
                &p,
                format!("Invalid value: {n}: {p} in body should be greater than or equal to {lo}"),
            ));
        }
        if n > hi {
            return Err(c.err(
                &p,
                format!("Invalid value: {n}: {p} in body should be less than or equal to {hi}"),
            ));
        }
    }
    Ok(n)
}

fn list<'v>(c: &Ctx<'_>, v: &'v Value, path: &str, key: &str) -> R<&'v [Value]> {
    match get(v, key) {
        None => Ok(&[]),
        Some(Value::Sequence(s)) => Ok(s),
        Some(x) => Err(c.err(
            &format!("{path}.{key}"),
            format!("Invalid value: {}: must be an array", show(x)),
        )),
    }
}

fn enum_value<T: Copy>(c: &Ctx<'_>, path: &str, given: &str, allowed: &[(&str, T)]) -> R<T> {
    allowed
        .iter()
        .find(|(n, _)| *n == given)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("{n:?}")).collect();
            c.err(
                path,
                format!(
                    "Unsupported value: {given:?}: supported values: {}",
                    names.join(", ")
                ),
            )
        })
}

fn selector(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Option<Selector>> {
    let Some(s) = get(v, key) else {
        return Ok(None);
    };
    let p = format!("{path}.{key}");
    if !s.is_mapping() {
        return Err(c.err(&p, "Invalid value: must be an object"));
    }
    let mut sel = Selector::default();
    if let Some(m) = get(s, "matchLabels") {
        let m = m.as_mapping().ok_or_else(|| {
            c.err(
                &format!("{p}.matchLabels"),
                "Invalid value: must be an object",
            )
        })?;
        for (k, val) in m {
            let (Some(k), Some(val)) = (k.as_str(), val.as_str()) else {
                return Err(c.err(
                    &format!("{p}.matchLabels"),
                    "Invalid value: keys and values must be strings",
                ));
            };
            sel.labels.insert(k.to_string(), val.to_string());
        }
    }
    for (i, e) in list(c, s, &p, "matchExpressions")?.iter().enumerate() {
        let ep = format!("{p}.matchExpressions[{i}]");
        let key = string(c, e, &ep, "key")?
            .ok_or_else(|| c.err(&format!("{ep}.key"), "Required value"))?;
        let op = string(c, e, &ep, "operator")?
            .ok_or_else(|| c.err(&format!("{ep}.operator"), "Required value"))?;
        let op = enum_value(
            c,
            &format!("{ep}.operator"),
            &op,
            &[
                ("In", SelOp::In),
                ("NotIn", SelOp::NotIn),
                ("Exists", SelOp::Exists),
                ("DoesNotExist", SelOp::DoesNotExist),
            ],
        )?;
        let mut vals = Vec::new();
        for (j, x) in list(c, e, &ep, "values")?.iter().enumerate() {
            vals.push(
                x.as_str()
                    .ok_or_else(|| {
                        c.err(
                            &format!("{ep}.values[{j}]"),
                            "Invalid value: must be a string",
                        )
                    })?
                    .to_string(),
            );
        }
        sel.exprs.push((key, op, vals));
    }
    Ok(Some(sel))
}

fn nsname(
    c: &Ctx<'_>,
    v: &Value,
    path: &str,
    key: &str,
    default_ns: Option<&str>,
) -> R<Option<NamespacedName>> {
    let Some(x) = get(v, key) else {
        return Ok(None);
    };
    let p = format!("{path}.{key}");
    let name =
        string(c, x, &p, "name")?.ok_or_else(|| c.err(&format!("{p}.name"), "Required value"))?;
    let namespace = match (string(c, x, &p, "namespace")?, default_ns) {
        (Some(n), _) => n,
        (None, Some(d)) => d.to_string(),
        (None, None) => return Err(c.err(&format!("{p}.namespace"), "Required value")),
    };
    Ok(Some(NamespacedName { name, namespace }))
}

fn ip_block(c: &Ctx<'_>, b: &Value, p: &str) -> R<IpBlock> {
    // A missing cidr is left empty: the webhook refuses it with Antrea's own message.
    let cidr = string(c, b, p, "cidr")?.unwrap_or_default();
    let mut except = Vec::new();
    for (j, e) in list(c, b, p, "except")?.iter().enumerate() {
        except.push(
            e.as_str()
                .ok_or_else(|| {
                    c.err(
                        &format!("{p}.except[{j}]"),
                        "Invalid value: must be a string",
                    )
                })?
                .to_string(),
        );
    }
    Ok(IpBlock { cidr, except })
}

/// Refuses fields the ANNP schema does not have (Antrea's apiserver would prune them and
/// silently widen the policy; xvs refuses instead).
fn refuse_unknown(c: &Ctx<'_>, v: &Value, path: &str, keys: &[&str]) -> R<()> {
    for k in keys {
        if get(v, k).is_some() {
            return Err(c.err(
                &format!("{path}.{k}"),
                format!("unknown field \"{path}.{k}\""),
            ));
        }
    }
    Ok(())
}

fn applied_to(c: &Ctx<'_>, v: &Value, path: &str, namespaced: Option<&str>) -> R<Vec<AppliedTo>> {
    let mut out = Vec::new();
    for (i, a) in list(c, v, path, "appliedTo")?.iter().enumerate() {
        let p = format!("{path}.appliedTo[{i}]");
        // Not in the AppliedTo schema (the apiserver would prune it, leaving an entry that
        // selects nothing): refused, as the spec decides for pruned ANNP fields.
        refuse_unknown(c, a, &p, &["ipBlock"])?;
        if namespaced.is_some() {
            refuse_unknown(
                c,
                a,
                &p,
                &[
                    "namespaceSelector",
                    "serviceAccount",
                    "service",
                    "nodeSelector",
                ],
            )?;
        }
        out.push(AppliedTo {
            pod_selector: selector(c, a, &p, "podSelector")?,
            namespace_selector: selector(c, a, &p, "namespaceSelector")?,
            external_entity_selector: selector(c, a, &p, "externalEntitySelector")?,
            group: string(c, a, &p, "group")?,
            service_account: nsname(c, a, &p, "serviceAccount", None)?,
            service: nsname(c, a, &p, "service", None)?,
            node_selector: selector(c, a, &p, "nodeSelector")?,
        });
    }
    Ok(out)
}

fn peer(c: &Ctx<'_>, v: &Value, p: &str, namespaced: Option<&str>) -> R<AnpPeer> {
    if namespaced.is_some() {
        refuse_unknown(c, v, p, &["namespaces", "serviceAccount"])?;
    }
    let namespaces = match get(v, "namespaces") {
        None => None,
        Some(n) => {
            let np = format!("{p}.namespaces");
            let m = string(c, n, &np, "match")?;
            let same = get(n, "sameLabels").is_some();
            Some(match (m, same) {
                (Some(m), false) => {
                    enum_value(c, &format!("{np}.match"), &m, &[("Self", ())])?;
                    Namespaces::SelfNs
                }
                (None, true) => {
                    let mut keys = Vec::new();
                    for (j, k) in list(c, n, &np, "sameLabels")?.iter().enumerate() {
                        keys.push(
                            k.as_str()
                                .ok_or_else(|| {
                                    c.err(
                                        &format!("{np}.sameLabels[{j}]"),
                                        "Invalid value: must be a string",
                                    )
                                })?
                                .to_string(),
                        );
                    }
                    Namespaces::SameLabels(keys)
                }
                (m, same) => Namespaces::Invalid {
                    has_match: m.is_some(),
                    has_same_labels: same,
                },
            })
        }
    };
    let scope = string(c, v, p, "scope")?;
    if let Some(s) = &scope {
        enum_value(
            c,
            &format!("{p}.scope"),
            s,
            &[("Cluster", ()), ("ClusterSet", ())],
        )?;
    }
    Ok(AnpPeer {
        ip_block: get(v, "ipBlock")
            .map(|b| ip_block(c, b, &format!("{p}.ipBlock")))
            .transpose()?,
        pod_selector: selector(c, v, p, "podSelector")?,
        namespace_selector: selector(c, v, p, "namespaceSelector")?,
        namespaces,
        external_entity_selector: selector(c, v, p, "externalEntitySelector")?,
        group: string(c, v, p, "group")?,
        fqdn: string(c, v, p, "fqdn")?,
        service_account: nsname(c, v, p, "serviceAccount", None)?,
        node_selector: selector(c, v, p, "nodeSelector")?,
        scope,
    })
}

const LOG_LABEL_MAX: usize = 63;

fn log_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return true;
    }
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    b.len() <= LOG_LABEL_MAX
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|c| alnum(*c) || matches!(c, b'-' | b'_' | b'.'))
}

fn rule(c: &Ctx<'_>, v: &Value, p: &str, dir: Direction, namespaced: Option<&str>) -> R<AnpRule> {
    let action = string(c, v, p, "action")?
        .ok_or_else(|| c.err(&format!("{p}.action"), "Required value"))?;
    let action = enum_value(
        c,
        &format!("{p}.action"),
        &action,
        &[
            ("Allow", Action::Allow),
            ("Drop", Action::Drop),
            ("Reject", Action::Reject),
            ("Pass", Action::Pass),
        ],
    )?;
    let mut ports = Vec::new();
    for (i, x) in list(c, v, p, "ports")?.iter().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        let protocol = match string(c, x, &pp, "protocol")? {
            None => Proto::Tcp,
            Some(s) => enum_value(
                c,
                &format!("{pp}.protocol"),
                &s,
                &[
                    ("TCP", Proto::Tcp),
                    ("UDP", Proto::Udp),
                    ("SCTP", Proto::Sctp),
                ],
            )?,
        };
        let port = match get(x, "port") {
            None => None,
            Some(Value::String(s)) => match s.parse::<i64>() {
                Ok(n) => Some(PortValue::Number(n)),
                Err(_) => Some(PortValue::Named(s.clone())),
            },
            Some(_) => ranged(c, x, &pp, "port", 0, 65535)?.map(PortValue::Number),
        };
        if let Some(PortValue::Number(n)) = port {
            if !(0..=65535).contains(&n) {
                return Err(c.err(
                    &format!("{pp}.port"),
                    format!("Invalid value: {n}: must be between 0 and 65535, inclusive"),
                ));
            }
        }
        ports.push(AnpPort {
            protocol,
            port,
            end_port: ranged(c, x, &pp, "endPort", 0, 65535)?,
            source_port: ranged(c, x, &pp, "sourcePort", 0, 65535)?,
            source_end_port: ranged(c, x, &pp, "sourceEndPort", 0, 65535)?,
        });
    }
    let mut protocols = Vec::new();
    for (i, x) in list(c, v, p, "protocols")?.iter().enumerate() {
        let pp = format!("{p}.protocols[{i}]");
        let icmp = get(x, "icmp");
        let igmp = get(x, "igmp");
        protocols.push(match (icmp, igmp) {
            (Some(ic), None) => {
                let ip = format!("{pp}.icmp");
                L4Protocol::Icmp {
                    icmp_type: ranged(c, ic, &ip, "icmpType", 0, 255)?.map(|n| n as u8),
                    icmp_code: ranged(c, ic, &ip, "icmpCode", 0, 255)?.map(|n| n as u8),
                }
            }
            (None, Some(ig)) => {
                let ip = format!("{pp}.igmp");
                let t = int(c, ig, &ip, "igmpType")?;
                if let Some(t) = t {
                    let allowed: &[i64] = match dir {
                        Direction::Ingress => &[0x11],
                        Direction::Egress => &[0x12, 0x16, 0x22],
                    };
                    if !allowed.contains(&t) {
                        let names: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                        return Err(c.err(
                            &format!("{ip}.igmpType"),
                            format!(
                                "Unsupported value: {t}: supported values: {}",
                                names.join(", ")
                            ),
                        ));
                    }
                }
                L4Protocol::Igmp {
                    igmp_type: t.map(|n| n as u8),
                    group_address: string(c, ig, &ip, "groupAddress")?,
                }
            }
            _ => {
                return Err(c.err(
                    &pp,
                    "Invalid value: \"object\": must validate one and only one schema (oneOf)",
                ))
            }
        });
    }
    let mut l7_protocols = Vec::new();
    for x in list(c, v, p, "l7Protocols")? {
        l7_protocols.push(serde_json_like(x));
    }
    let peers_key = match dir {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let mut peers = Vec::new();
    for (i, x) in list(c, v, p, peers_key)?.iter().enumerate() {
        peers.push(peer(c, x, &format!("{p}.{peers_key}[{i}]"), namespaced)?);
    }
    let mut to_services = Vec::new();
    if dir == Direction::Ingress {
        refuse_unknown(c, v, p, &["toServices"])?;
    }
    for (i, x) in list(c, v, p, "toServices")?.iter().enumerate() {
        let sp = format!("{p}.toServices[{i}]");
        let name = string(c, x, &sp, "name")?
            .ok_or_else(|| c.err(&format!("{sp}.name"), "Required value"))?;
        let namespace = match (string(c, x, &sp, "namespace")?, namespaced) {
            (Some(n), _) => n,
            (None, Some(d)) => d.to_string(),
            (None, None) => return Err(c.err(&format!("{sp}.namespace"), "Required value")),
        };
        to_services.push(NamespacedName { name, namespace });
    }
    let log_label = string(c, v, p, "logLabel")?.unwrap_or_default();
    if !log_label_ok(&log_label) {
        return Err(c.err(
            &format!("{p}.logLabel"),
            format!(
                "Invalid value: {log_label:?}: {p}.logLabel in body should match '^(([A-Za-z0-9][-A-Za-z0-9_.]{{0,61}})?[A-Za-z0-9])?$'"
            ),
        ));
    }
    let enable_logging = match get(v, "enableLogging") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(x) => {
            return Err(c.err(
                &format!("{p}.enableLogging"),
                format!("Invalid value: {}: must be a boolean", show(x)),
            ))
        }
    };
    Ok(AnpRule {
        action,
        ports,
        protocols,
        l7_protocols,
        peers,
        to_services,
        name: string(c, v, p, "name")?.unwrap_or_default(),
        enable_logging,
        log_label,
        applied_to: applied_to(c, v, p, namespaced)?,
    })
}

/// A compact, key-sorted JSON rendering of a YAML value (for the opaque l7Protocols).
fn serde_json_like(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => super::admission::json_string(s),
        Value::Sequence(s) => format!(
            "[{}]",
            s.iter().map(serde_json_like).collect::<Vec<_>>().join(",")
        ),
        Value::Mapping(m) => {
            let mut kv: Vec<(String, String)> = m
                .iter()
                .map(|(k, v)| (serde_json_like(k), serde_json_like(v)))
                .collect();
            kv.sort();
            format!(
                "{{{}}}",
                kv.into_iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        Value::Tagged(t) => serde_json_like(&t.value),
    }
}

fn policy_priority(c: &Ctx<'_>, spec: &Value) -> R<f64> {
    let p = "spec.priority";
    let n = match get(spec, "priority") {
        None => return Err(c.err(p, "Required value")),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(x) => return Err(c.err(p, format!("Invalid value: {}: must be a number", show(x)))),
    };
    if n.is_nan() || n < 1.0 {
        return Err(c.err(
            p,
            format!("Invalid value: {n}: {p} in body should be greater than or equal to 1"),
        ));
    }
    if n > 10000.0 {
        return Err(c.err(
            p,
            format!("Invalid value: {n}: {p} in body should be less than or equal to 10000"),
        ));
    }
    Ok(n)
}

/// The lowercase tier name for a policy's `spec.tier` (legacy capitalised static names map to
/// lowercase; empty = application).
pub fn normalise_tier(t: &str) -> String {
    match t {
        "" => DEFAULT_TIER.to_string(),
        "Emergency" | "SecurityOps" | "NetworkOps" | "Platform" | "Application" | "Baseline" => {
            t.to_lowercase()
        }
        _ => t.to_string(),
    }
}

fn group_spec(c: &Ctx<'_>, spec: &Value, g: &mut AnpGroup) -> R<()> {
    let sp = "spec";
    if g.namespace.is_some() {
        refuse_unknown(c, spec, sp, &["nodeSelector"])?;
    }
    g.pod_selector = selector(c, spec, sp, "podSelector")?;
    g.namespace_selector = selector(c, spec, sp, "namespaceSelector")?;
    g.node_selector = selector(c, spec, sp, "nodeSelector")?;
    g.external_entity_selector = selector(c, spec, sp, "externalEntitySelector")?;
    for (i, b) in list(c, spec, sp, "ipBlocks")?.iter().enumerate() {
        g.ip_blocks
            .push(ip_block(c, b, &format!("{sp}.ipBlocks[{i}]"))?);
    }
    g.service_reference = nsname(
        c,
        spec,
        sp,
        "serviceReference",
        Some(g.namespace.as_deref().unwrap_or("default")),
    )?;
    if let (Some(ns), Some(r)) = (&g.namespace, &mut g.service_reference) {
        // A Group can only reference Services of its own namespace.
        r.namespace = ns.clone();
    }
    for (i, x) in list(c, spec, sp, "childGroups")?.iter().enumerate() {
        g.child_groups.push(
            x.as_str()
                .ok_or_else(|| {
                    c.err(
                        &format!("{sp}.childGroups[{i}]"),
                        "Invalid value: must be a string",
                    )
                })?
                .to_string(),
        );
    }
    Ok(())
}

/// Parses `doc` if it is an Antrea-native kind: `None` for other kinds. Also runs the
/// mutation and the object's own admission checks; a refused object is an error.
pub fn object(file: &str, idx: usize, kind: &str, doc: &Value) -> Option<R<AnpObject>> {
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let antrea_api = api.starts_with("crd.antrea.io/");
    let known = match kind {
        "Tier" | "ClusterNetworkPolicy" | "ClusterGroup" => true,
        "NetworkPolicy" | "Group" => antrea_api,
        _ => false,
    };
    if !known {
        return None;
    }
    Some(parse_known(file, idx, kind, doc))
}

fn parse_known(file: &str, idx: usize, kind: &str, doc: &Value) -> R<AnpObject> {
    let mut c = Ctx {
        file,
        doc: format!("doc[{idx}]"),
        object: kind.to_string(),
    };
    let meta = get(doc, "metadata").ok_or_else(|| c.err("metadata", "Required value"))?;
    let name = string(&c, meta, "metadata", "name")?
        .ok_or_else(|| c.err("metadata.name", "Required value"))?;
    let namespaced = matches!(kind, "NetworkPolicy" | "Group");
    let namespace = if namespaced {
        Some(string(&c, meta, "metadata", "namespace")?.unwrap_or_else(|| "default".to_string()))
    } else {
        None
    };
    c.object = match &namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    let spec = get(doc, "spec").ok_or_else(|| c.err("spec", "Required value"))?;
    let obj = match kind {
        "Tier" => {
            let priority = ranged(&c, spec, "spec", "priority", 0, 255)?
                .ok_or_else(|| c.err("spec.priority", "Required value"))?;
            AnpObject::Tier(Tier {
                name,
                priority: priority as i32,
                description: string(&c, spec, "spec", "description")?.unwrap_or_default(),
                file: file.to_string(),
            })
        }
        "ClusterNetworkPolicy" | "NetworkPolicy" => {
            let priority = policy_priority(&c, spec)?;
            let ns_owned = namespace.clone();
            let ns = ns_owned.as_deref();
            let mut ingress = Vec::new();
            for (i, r) in list(&c, spec, "spec", "ingress")?.iter().enumerate() {
                ingress.push(rule(
                    &c,
                    r,
                    &format!("spec.ingress[{i}]"),
                    Direction::Ingress,
                    ns,
                )?);
            }
            let mut egress = Vec::new();
            for (i, r) in list(&c, spec, "spec", "egress")?.iter().enumerate() {
                egress.push(rule(
                    &c,
                    r,
                    &format!("spec.egress[{i}]"),
                    Direction::Egress,
                    ns,
                )?);
            }
            AnpObject::Policy(AntreaPolicy {
                namespace,
                name,
                file: file.to_string(),
                tier: string(&c, spec, "spec", "tier")?.unwrap_or_default(),
                priority: PolicyPriority(priority),
                applied_to: applied_to(&c, spec, "spec", ns)?,
                ingress,
                egress,
            })
        }
        _ => {
            let mut g = AnpGroup {
                namespace,
                name,
                file: file.to_string(),
                ..AnpGroup::default()
            };
            group_spec(&c, spec, &mut g)?;
            AnpObject::Group(g)
        }
    };
    super::admission::admit_object(obj).map_err(|(path, hook, msg)| ManifestError {
        file: file.to_string(),
        field: if path.is_empty() {
            c.doc.clone()
        } else {
            format!("{}.{path}", c.doc)
        },
        msg: format!(
            "admission webhook \"{hook}\" denied the request: {}: {msg}",
            c.object
        ),
    })
}
