//! Queries of what the agent realized: per Pod, Service and NetworkPolicy, its flows (and
//! groups) with the switch's current counters, per-rule metrics, and the policies in the order
//! antctl's `get netpol --sort-by effectivePriority` prints them.
//!
//! Protocol: the agent listens on a unix socket (`<run_dir>/xvs-agent.sock`, mode 0660); a
//! client connects, writes one [`Query`] as a JSON line, and reads one [`Response`] as a JSON
//! line, then the agent closes the connection:
//!
//! ```text
//! -> {"kind":"netpol","name":"allow-web","namespace":"default","sort_by":"effectivePriority"}
//! <- {"objects":[{"kind":"netpol","namespace":"default","name":"allow-web",...}],"error":null}
//! ```
//!
//! [`request`] is the client, [`format()`] prints a response as `xvs-agent get` does, [`serve`]
//! is the agent's side. [`answer`] (the content) is pure: realized state and counters in.
//!
//! The protocol types, the client and the printer live in the `xvs-agent-query` crate (so
//! clients such as `xvsctl` need none of the agent's dependencies) and are re-exported here.

pub use xvs_agent_query::*;

use crate::model::{Model, Pod};
use crate::pipeline::{
    allow_metric_keys, deny_metric_key, Desired, FlowBody, FlowKey, Owner, RealizedPolicy, TABLES,
};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use xvs_flowtable::flow::{Flow, FlowModCommand, Match};
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::NameMap;

/// What the agent realized: the model it computed from and what it committed.
#[derive(Debug, Clone, Default)]
pub struct Realized {
    /// The model of the last commit.
    pub model: Model,
    /// The flows and groups committed.
    pub installed: Desired,
    /// The round of their cookies.
    pub round: u16,
}

/// The shared handle the sync loop updates after each commit and the query thread reads.
pub type Shared = Arc<Mutex<Option<Realized>>>;

/// Counters by flow identity as the switch reports them.
#[derive(Debug, Clone, Default)]
pub struct Counters(HashMap<(u8, u16, Match), (u64, u64)>);

impl Counters {
    /// From a flow-stats dump.
    pub fn from_flows(flows: &[Flow]) -> Counters {
        let mut m = HashMap::new();
        for f in flows {
            let st = f.stats.unwrap_or_default();
            m.insert(
                (f.table, f.priority, f.match_),
                (st.n_packets.unwrap_or(0), st.n_bytes.unwrap_or(0)),
            );
        }
        Counters(m)
    }
    /// The (packets, bytes) of the installed flow `key`, if the switch has it.
    pub fn of(&self, key: &FlowKey) -> Option<(u64, u64)> {
        let text = if key.matches.is_empty() {
            format!("table={},priority={}", key.table, key.priority)
        } else {
            format!(
                "table={},priority={},{}",
                key.table, key.priority, key.matches
            )
        };
        let fm = parse_flow_mod(&text, FlowModCommand::DeleteStrict, &NameMap::new()).ok()?;
        self.0
            .get(&(key.table, key.priority, fm.flow.match_))
            .copied()
    }
}

fn flow_view(key: &FlowKey, body: &FlowBody, round: u16, c: &Counters) -> FlowView {
    let counts = c.of(key);
    FlowView {
        table: TABLES
            .get(usize::from(key.table))
            .map_or_else(|| key.table.to_string(), |n| (*n).to_string()),
        table_id: key.table,
        priority: key.priority,
        matches: key.matches.clone(),
        actions: body.actions.clone(),
        cookie: crate::pipeline::cookie(round, body.category),
        packets: counts.map(|c| c.0),
        bytes: counts.map(|c| c.1),
    }
}

fn flows_of(r: &Realized, owner: &Owner, c: &Counters) -> Vec<FlowView> {
    r.installed
        .flows_of(owner)
        .map(|(k, b)| flow_view(k, b, r.round, c))
        .collect()
}

fn wanted(q: &Query, ns: &str, name: &str) -> bool {
    q.namespace.as_deref().is_none_or(|n| n == ns) && q.name.as_deref().is_none_or(|n| n == name)
}

fn pod_view(r: &Realized, p: &Pod, c: &Counters) -> ObjectView {
    let mut info = BTreeMap::new();
    info.insert("ip".into(), p.ip.to_string());
    info.insert("mac".into(), p.mac.to_string());
    info.insert("node".into(), p.node.clone());
    info.insert("ofport".into(), p.ofport.to_string());
    info.insert("interface".into(), p.interface.clone());
    ObjectView {
        kind: Kind::Pods,
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        info,
        flows: flows_of(r, &Owner::Pod(p.namespace.clone(), p.name.clone()), c),
        groups: Vec::new(),
        rules: Vec::new(),
        isolation: Vec::new(),
        tier_priority: None,
        priority: None,
    }
}

fn sum(c: &Counters, keys: &[FlowKey]) -> (u64, u64) {
    keys.iter()
        .filter_map(|k| c.of(k))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn policy_details(rp: &RealizedPolicy, c: &Counters) -> (Vec<RuleView>, Vec<IsolationView>) {
    let rules = rp
        .rules
        .iter()
        .map(|rule| {
            let mut v = RuleView {
                direction: rule.direction.name().to_string(),
                index: rule.index,
                conj_ids: rule.conj_ids.clone(),
                sessions: 0,
                packets: 0,
                bytes: 0,
            };
            for id in &rule.conj_ids {
                let [new, est] = allow_metric_keys(rule.direction, *id);
                v.sessions += c.of(&new).map_or(0, |x| x.0);
                let (p, b) = sum(c, &[new, est]);
                v.packets += p;
                v.bytes += b;
            }
            v
        })
        .collect();
    let isolation = rp
        .isolation
        .iter()
        .map(|(dir, id, (ns, name))| {
            let (packets, bytes) = sum(c, &[deny_metric_key(*dir, *id)]);
            IsolationView {
                direction: dir.name().to_string(),
                pod: format!("{ns}/{name}"),
                deny_id: *id,
                packets,
                bytes,
            }
        })
        .collect();
    (rules, isolation)
}

/// The Antrea-native policies (ACNP, ANNP) as antctl lists them: source, tier priority and
/// priority (what `--sort-by effectivePriority` orders by), and the local Pods they apply to.
/// Their flows are not attributed to them yet (`Desired` records no owner for them), so
/// `flows` and `rules` stay empty.
fn antrea_policies(q: &Query, r: &Realized, objects: &mut Vec<ObjectView>) {
    let local = r.model.config.as_ref().map(|c| c.node_name.as_str());
    for p in r.model.anp.policies.values() {
        let ns = p.namespace.clone().unwrap_or_default();
        if !wanted(q, &ns, &p.name) {
            continue;
        }
        let mut sets = vec![p.applied_to.as_slice()];
        if p.applied_to.is_empty() {
            sets.extend(
                p.ingress
                    .iter()
                    .chain(&p.egress)
                    .map(|x| x.applied_to.as_slice()),
            );
        }
        let services: Vec<String> = sets
            .iter()
            .flat_map(|set| set.iter())
            .filter_map(|a| a.service.as_ref())
            .map(|s| format!("Service:{}/{}", s.namespace, s.name))
            .collect();
        let mut applied: Vec<String> = sets
            .into_iter()
            .flat_map(|set| crate::anp::resolve::applied_pods(&r.model, p, set))
            .filter(|pod| local == Some(pod.node.as_str()))
            .map(|pod| format!("{}/{}", pod.namespace, pod.name))
            .chain(services)
            .collect();
        applied.sort();
        applied.dedup();
        let source = match &p.namespace {
            Some(ns) => format!("AntreaNetworkPolicy:{ns}/{}", p.name),
            None => format!("AntreaClusterNetworkPolicy:{}", p.name),
        };
        let mut info = BTreeMap::new();
        info.insert("source".into(), source);
        info.insert("appliedTo".into(), applied.join(","));
        info.insert(
            "rules".into(),
            (p.ingress.len() + p.egress.len()).to_string(),
        );
        info.insert("tier".into(), p.tier.clone());
        if crate::anp::admission::is_node_policy(p) {
            info.insert("realized".into(), "false".into());
            info.insert(
                "reason".into(),
                "Node NetworkPolicy: enforced on the host's own traffic (iptables in Antrea), which xvs does not filter".into(),
            );
        }
        let warnings = crate::anp::admission::policy_warnings(p);
        if !warnings.is_empty() {
            info.insert("warnings".into(), warnings.join("; "));
        }
        objects.push(ObjectView {
            kind: Kind::Netpol,
            namespace: ns,
            name: p.name.clone(),
            info,
            flows: Vec::new(),
            groups: Vec::new(),
            rules: Vec::new(),
            isolation: Vec::new(),
            tier_priority: r.model.anp.tier_priority(&p.tier),
            priority: Some(p.priority.0),
        });
    }
}

/// Answers `q` from the realized state `r` and the switch's counters `c`.
pub fn answer(q: &Query, r: &Realized, c: &Counters) -> Response {
    let mut objects = Vec::new();
    match q.kind {
        Kind::Pods => {
            for p in r.model.pods.values() {
                if wanted(q, &p.namespace, &p.name) {
                    objects.push(pod_view(r, p, c));
                }
            }
        }
        Kind::Services => {
            for ((ns, name), svc) in &r.model.services {
                if !wanted(q, ns, name) {
                    continue;
                }
                let owner = Owner::Service(ns.clone(), name.clone());
                let mut info = BTreeMap::new();
                info.insert("clusterIP".into(), svc.cluster_ip.to_string());
                info.insert(
                    "ports".into(),
                    svc.ports
                        .iter()
                        .map(|p| match p.node_port {
                            // kubectl's form for node ports.
                            Some(np) => {
                                format!("{}:{np}/{}", p.port, p.proto.ofctl().to_uppercase())
                            }
                            None => format!("{}/{}", p.port, p.proto.ofctl().to_uppercase()),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                );
                let groups = r
                    .installed
                    .group_owners
                    .iter()
                    .filter(|(_, o)| **o == owner)
                    .filter_map(|(id, _)| {
                        r.installed.groups.get(id).map(|g| GroupView {
                            id: *id,
                            desc: g.clone(),
                        })
                    })
                    .collect();
                objects.push(ObjectView {
                    kind: Kind::Services,
                    namespace: ns.clone(),
                    name: name.clone(),
                    info,
                    flows: flows_of(r, &owner, c),
                    groups,
                    rules: Vec::new(),
                    isolation: Vec::new(),
                    tier_priority: None,
                    priority: None,
                });
            }
        }
        Kind::Netpol => {
            for ((ns, name), np) in &r.model.policies {
                if !wanted(q, ns, name) {
                    continue;
                }
                let mut info = BTreeMap::new();
                info.insert("source".into(), format!("K8sNetworkPolicy:{ns}/{name}"));
                let realized = r.installed.policies.get(&(ns.clone(), name.clone()));
                info.insert(
                    "appliedTo".into(),
                    realized.map_or_else(String::new, |rp| {
                        rp.applied_to
                            .iter()
                            .map(|(n, p)| format!("{n}/{p}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    }),
                );
                info.insert(
                    "rules".into(),
                    (np.ingress.len() * usize::from(np.ingress_isolation)
                        + np.egress.len() * usize::from(np.egress_isolation))
                    .to_string(),
                );
                let (rules, isolation) =
                    realized.map_or_else(Default::default, |rp| policy_details(rp, c));
                objects.push(ObjectView {
                    kind: Kind::Netpol,
                    namespace: ns.clone(),
                    name: name.clone(),
                    info,
                    flows: flows_of(r, &Owner::Policy(ns.clone(), name.clone()), c),
                    groups: Vec::new(),
                    rules,
                    isolation,
                    tier_priority: None,
                    priority: None,
                });
            }
        }
    }
    if q.kind == Kind::Netpol {
        antrea_policies(q, r, &mut objects);
    }
    match q.sort_by.as_deref() {
        None | Some("name") => {}
        Some(SORT_BY_EFFECTIVE_PRIORITY) => objects.sort_by(effective_priority_order),
        Some(other) => {
            return Response {
                error: Some(format!(
                    "cannot sort by {other:?} (name or {SORT_BY_EFFECTIVE_PRIORITY})"
                )),
                ..Response::default()
            }
        }
    }
    if objects.is_empty() {
        if let Some(n) = &q.name {
            return Response {
                error: Some(format!("{:?} {n:?} not found", q.kind).to_lowercase()),
                ..Response::default()
            };
        }
    }
    Response {
        objects,
        ..Response::default()
    }
}

/// Binds the query socket at `path` (a stale socket file is replaced) with mode 0660.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(md) = std::fs::symlink_metadata(path) {
        // Only a socket nobody answers on is ours to replace.
        if md.file_type().is_socket() && UnixStream::connect(path).is_err() {
            std::fs::remove_file(path)?;
        }
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serves queries on `listener` forever, one connection at a time: counters come from a flow
/// dump over a separate OpenFlow connection to `switch`, the flows from `shared`.
pub fn serve(listener: UnixListener, shared: Shared, switch: PathBuf) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        // A client that misbehaves only loses its own answer.
        let _ = serve_one(conn, &shared, &switch);
    }
}

fn serve_one(conn: UnixStream, shared: &Shared, switch: &Path) -> std::io::Result<()> {
    conn.set_read_timeout(Some(QUERY_TIMEOUT))?;
    conn.set_write_timeout(Some(QUERY_TIMEOUT))?;
    let mut line = String::new();
    // A query is a few hundred bytes: reading stops after 64 KiB.
    BufReader::new(std::io::Read::take(&conn, 64 << 10)).read_line(&mut line)?;
    let resp = match serde_json::from_str::<Query>(&line) {
        Err(e) => Response {
            error: Some(format!("bad query: {e}")),
            ..Response::default()
        },
        Ok(q) => {
            let (counters, warning) =
                match crate::ofconn::OfConn::connect(switch).and_then(|mut c| c.flow_stats()) {
                    Ok(flows) => (Counters::from_flows(&flows), None),
                    Err(e) => (
                        Counters::default(),
                        Some(format!("no counters from the switch: {e}")),
                    ),
                };
            let realized = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            match realized {
                None => Response {
                    error: Some("the agent has not synced yet".into()),
                    ..Response::default()
                },
                Some(r) => Response {
                    warning,
                    ..answer(&q, &r, &counters)
                },
            }
        }
    };
    let mut out = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&conn).write_all(&out)
}
