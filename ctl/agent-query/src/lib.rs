//! The query protocol of `xvs-agent`: what a client sends to the agent's socket
//! (`<run_dir>/xvs-agent.sock`) and what it answers, the client ([`request`]) and the text
//! printer ([`format()`]) that `xvs-agent get` and `xvsctl get` share.
//!
//! A crate of its own so that clients (`xvsctl`) get the protocol without the agent's
//! dependencies (kube, tokio, the flow tables); the agent's `query` module re-exports it and
//! adds the answering side.
//!
//! Protocol: a client connects, writes one [`Query`] as a JSON line, and reads one
//! [`Response`] as a JSON line, then the agent closes the connection:
//!
//! ```text
//! -> {"kind":"netpol","name":"allow-web","namespace":"default","sort_by":"effectivePriority"}
//! <- {"objects":[{"kind":"netpol","namespace":"default","name":"allow-web",...}],"error":null}
//! ```
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Nothing listens on the socket: no file there, or a file nobody answers on.
    #[error(
        "the agent is not running: nothing answers on {path} ({err}); start `xvs-agent run`, \
         or give the socket it listens on"
    )]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// What connecting said.
        err: std::io::Error,
    },
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

/// How long either side waits for the other to read or write.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `q` to the agent listening on `socket` and returns its answer (an agent-side error
/// is [`QueryError::Agent`], no agent there [`QueryError::NotRunning`]).
pub fn request(socket: &Path, q: &Query) -> Result<Response, QueryError> {
    let io = |err| QueryError::Io {
        path: socket.to_path_buf(),
        err,
    };
    let mut s = UnixStream::connect(socket).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            QueryError::NotRunning {
                path: socket.to_path_buf(),
                err,
            }
        }
        _ => io(err),
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Query {
        Query {
            kind: Kind::Pods,
            name: None,
            namespace: None,
            sort_by: None,
        }
    }

    #[test]
    fn no_agent_is_reported_as_not_running() {
        let dir = std::env::temp_dir().join(format!("xvs-agent-query-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // No file at all.
        let missing = dir.join("missing.sock");
        let e = request(&missing, &query()).expect_err("nothing there");
        assert!(matches!(e, QueryError::NotRunning { .. }), "{e:?}");
        assert!(e.to_string().contains("the agent is not running"), "{e}");
        assert!(e.to_string().contains("missing.sock"), "{e}");
        // A socket file left by an agent that exited.
        let stale = dir.join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        let e = request(&stale, &query()).expect_err("nobody listens");
        assert!(matches!(e, QueryError::NotRunning { .. }), "{e:?}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn kinds_parse_as_kubectl_names() {
        for (s, k) in [
            ("po", Kind::Pods),
            ("pods", Kind::Pods),
            ("svc", Kind::Services),
            ("netpol", Kind::Netpol),
            ("networkpolicies", Kind::Netpol),
        ] {
            assert_eq!(Kind::parse(s), Some(k), "{s}");
        }
        assert_eq!(Kind::parse("nodes"), None);
    }

    #[test]
    fn empty_and_error_responses_print() {
        assert_eq!(format(&Response::default()), "No resources found.\n");
        let r = Response {
            error: Some("netpol \"x\" not found".into()),
            ..Response::default()
        };
        assert_eq!(format(&r), "error: netpol \"x\" not found\n");
    }
}
