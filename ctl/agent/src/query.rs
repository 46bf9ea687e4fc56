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

use crate::model::{Model, Pod};
use crate::pipeline::{
    allow_metric_keys, deny_metric_key, Desired, FlowBody, FlowKey, Owner, RealizedPolicy, TABLES,
};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xvs_flowtable::flow::{Flow, FlowModCommand, Match};
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::NameMap;

/// The query socket's file name in the agent's run directory.
pub const SOCKET_NAME: &str = "xvs-agent.sock";

/// The tier priority antctl gives K8s NetworkPolicies when sorting by effective priority:
/// between the Application tier (250) and the Baseline tier (253).
pub const K8S_NP_TIER_PRIORITY: i32 = 251;

/// The `--sort-by` value antctl uses for policy evaluation order.
pub const SORT_BY_EFFECTIVE_PRIORITY: &str = "effectivePriority";

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Pods.
    Pods,
    /// Services.
    Services,
    /// NetworkPolicies.
    Netpol,
}

impl Kind {
    /// Parses a kubectl-style resource name (`pods`, `po`, `svc`, `netpol`, ...).
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "pod" | "pods" | "po" => Some(Kind::Pods),
            "service" | "services" | "svc" => Some(Kind::Services),
            "netpol" | "netpols" | "networkpolicy" | "networkpolicies" | "np" => Some(Kind::Netpol),
            _ => None,
        }
    }
}

/// A query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// What to list.
    pub kind: Kind,
    /// Only the object with this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only this namespace (`None`: all namespaces).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Order: by namespace/name (default) or `effectivePriority` (NetworkPolicies).
    #[serde(default)]
    pub sort_by: Option<String>,
}

/// A realized flow with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    /// Table name.
    pub table: String,
    /// Table id.
    pub table_id: u8,
    /// Priority.
    pub priority: u16,
    /// Match (ovs-ofctl syntax).
    #[serde(rename = "match")]
    pub matches: String,
    /// Actions (ovs-ofctl syntax).
    pub actions: String,
    /// Cookie.
    pub cookie: u64,
    /// Packets, `None` when the switch does not have the flow (or was not reachable).
    pub packets: Option<u64>,
    /// Bytes.
    pub bytes: Option<u64>,
}

/// A realized group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// Group id.
    pub id: u32,
    /// Its `ovs-ofctl add-group` text without the id.
    pub desc: String,
}

/// A NetworkPolicy rule with its metric counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    /// `Ingress` or `Egress`.
    pub direction: String,
    /// Index in its direction's rule list.
    pub index: usize,
    /// Conjunction (= ct_label rule) ids; empty when the rule selects nothing here.
    pub conj_ids: Vec<u32>,
    /// Connections the rule allowed (first packets counted in the metric table).
    pub sessions: u64,
    /// Packets of those connections through the metric table.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A Pod a policy isolates, with the packets dropped for it (counted in the metric table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationView {
    /// `Ingress` or `Egress`.
    pub direction: String,
    /// The Pod, `namespace/name`.
    pub pod: String,
    /// The deny id (reg3) of its drop.
    pub deny_id: u32,
    /// Dropped packets.
    pub packets: u64,
    /// Dropped bytes.
    pub bytes: u64,
}

/// One object and what was realized for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectView {
    /// Its kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Summary fields (`ip`, `node`, `clusterIP`, `appliedTo`, `source`...).
    pub info: BTreeMap<String, String>,
    /// Its flows, in (table, priority, match) order.
    pub flows: Vec<FlowView>,
    /// Its groups (Services).
    #[serde(default)]
    pub groups: Vec<GroupView>,
    /// Its rules in policy order, ingress first (NetworkPolicies).
    #[serde(default)]
    pub rules: Vec<RuleView>,
    /// The Pods it isolates (NetworkPolicies).
    #[serde(default)]
    pub isolation: Vec<IsolationView>,
    /// Tier priority (`None` for K8s NetworkPolicies).
    #[serde(default)]
    pub tier_priority: Option<i32>,
    /// Policy priority (`None` for K8s NetworkPolicies).
    #[serde(default)]
    pub priority: Option<f64>,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// The objects, in the requested order.
    pub objects: Vec<ObjectView>,
    /// Why the query failed (then `objects` is empty).
    #[serde(default)]
    pub error: Option<String>,
    /// Something the client should know (the switch's counters were not available).
    #[serde(default)]
    pub warning: Option<String>,
}

/// Query errors on the client side.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The socket could not be reached or broke.
    #[error("query socket {path}: {err}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The agent answered something that is not a response.
    #[error("bad answer from the agent: {0}")]
    Json(#[from] serde_json::Error),
    /// The agent refused the query.
    #[error("{0}")]
    Agent(String),
}

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

/// Orders policies as antctl's `--sort-by effectivePriority`: tier priority (K8s
/// NetworkPolicies at [`K8S_NP_TIER_PRIORITY`]), then policy priority when both have one, then
/// name.
pub fn effective_priority_order(a: &ObjectView, b: &ObjectView) -> Ordering {
    let ta = a.tier_priority.unwrap_or(K8S_NP_TIER_PRIORITY);
    let tb = b.tier_priority.unwrap_or(K8S_NP_TIER_PRIORITY);
    if ta != tb {
        return ta.cmp(&tb);
    }
    if let (Some(pa), Some(pb)) = (a.priority, b.priority) {
        if pa != pb {
            return pa.partial_cmp(&pb).unwrap_or(Ordering::Equal);
        }
    }
    (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
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
                        .map(|p| format!("{}/{}", p.port, p.proto.ofctl().to_uppercase()))
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

fn count(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |n| n.to_string())
}

fn table_of(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn none_if_empty(s: Option<&String>) -> String {
    match s {
        Some(v) if !v.is_empty() => v.clone(),
        _ => "<NONE>".to_string(),
    }
}

/// Prints a response as `xvs-agent get` does: a summary table (for NetworkPolicies antctl's
/// columns), then per object its rules and flows in `ovs-ofctl dump-flows` form (a `?`
/// count: the switch does not have the flow).
pub fn format(r: &Response) -> String {
    if let Some(e) = &r.error {
        return format!("error: {e}\n");
    }
    let mut out = String::new();
    let Some(first) = r.objects.first() else {
        return "No resources found.\n".to_string();
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    match first.kind {
        Kind::Pods => {
            rows.push(
                ["NAMESPACE", "NAME", "IP", "NODE", "OFPORT", "FLOWS"]
                    .map(String::from)
                    .to_vec(),
            );
            for o in &r.objects {
                rows.push(vec![
                    o.namespace.clone(),
                    o.name.clone(),
                    none_if_empty(o.info.get("ip")),
                    none_if_empty(o.info.get("node")),
                    none_if_empty(o.info.get("ofport")),
                    o.flows.len().to_string(),
                ]);
            }
        }
        Kind::Services => {
            rows.push(
                [
                    "NAMESPACE",
                    "NAME",
                    "CLUSTER-IP",
                    "PORTS",
                    "GROUPS",
                    "FLOWS",
                ]
                .map(String::from)
                .to_vec(),
            );
            for o in &r.objects {
                rows.push(vec![
                    o.namespace.clone(),
                    o.name.clone(),
                    none_if_empty(o.info.get("clusterIP")),
                    none_if_empty(o.info.get("ports")),
                    o.groups
                        .iter()
                        .map(|g| g.id.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    o.flows.len().to_string(),
                ]);
            }
        }
        Kind::Netpol => {
            rows.push(
                [
                    "NAMESPACE",
                    "NAME",
                    "APPLIED-TO",
                    "RULES",
                    "SOURCE",
                    "TIER-PRIORITY",
                    "PRIORITY",
                ]
                .map(String::from)
                .to_vec(),
            );
            for o in &r.objects {
                rows.push(vec![
                    o.namespace.clone(),
                    o.name.clone(),
                    none_if_empty(o.info.get("appliedTo")),
                    none_if_empty(o.info.get("rules")),
                    none_if_empty(o.info.get("source")),
                    o.tier_priority
                        .map_or_else(|| "<NONE>".to_string(), |p| p.to_string()),
                    o.priority
                        .map_or_else(|| "<NONE>".to_string(), |p| p.to_string()),
                ]);
            }
        }
    }
    out.push_str(&table_of(&rows));
    for o in &r.objects {
        out.push_str(&format!("\n{}/{}", o.namespace, o.name));
        for (k, v) in &o.info {
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
        for rule in &o.rules {
            out.push_str(&format!(
                "  rule {}[{}] conj_ids={:?} sessions={} packets={} bytes={}\n",
                rule.direction, rule.index, rule.conj_ids, rule.sessions, rule.packets, rule.bytes
            ));
        }
        for i in &o.isolation {
            out.push_str(&format!(
                "  isolates {} {} deny_id={} dropped packets={} bytes={}\n",
                i.direction, i.pod, i.deny_id, i.packets, i.bytes
            ));
        }
        for g in &o.groups {
            out.push_str(&format!("  group_id={},{}\n", g.id, g.desc));
        }
        for f in &o.flows {
            let m = if f.matches.is_empty() {
                String::new()
            } else {
                format!(",{}", f.matches)
            };
            out.push_str(&format!(
                "  cookie={:#x}, table={}, n_packets={}, n_bytes={}, priority={}{m} actions={}\n",
                f.cookie,
                f.table,
                count(f.packets),
                count(f.bytes),
                f.priority,
                f.actions
            ));
        }
    }
    if let Some(w) = &r.warning {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `q` to the agent listening on `socket` and returns its answer (an agent-side error
/// is [`QueryError::Agent`]).
pub fn request(socket: &Path, q: &Query) -> Result<Response, QueryError> {
    let io = |err| QueryError::Io {
        path: socket.to_path_buf(),
        err,
    };
    let mut s = UnixStream::connect(socket).map_err(io)?;
    s.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(QUERY_TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_vec(q)?;
    line.push(b'\n');
    s.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(io)?;
    let r: Response = serde_json::from_str(&answer)?;
    match r.error {
        Some(e) => Err(QueryError::Agent(e)),
        None => Ok(r),
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
