//! The interface store: one JSON record per Pod sandbox, written by `xvs-cni` when it attaches
//! the Pod's veth to xvsd, read by the agent to complete Pods whose manifests do not carry the
//! interface annotations. Files survive agent restarts (like Antrea's interface store in OVSDB).
//!
//! Invariant: a record file is complete or absent: writers write a temp file and rename it.

use crate::model::{Mac, Model, Pod};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// One attached Pod interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceRecord {
    /// The sandbox (infra container) id the runtime gave the CNI.
    pub container_id: String,
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: String,
    /// `K8S_POD_NAME`.
    pub pod_name: String,
    /// The host end of the veth, attached to xvsd.
    pub host_interface: String,
    /// The Pod end's name inside the sandbox (`CNI_IFNAME`).
    pub container_interface: String,
    /// The sandbox network namespace path (`CNI_NETNS`).
    pub netns: String,
    /// xvsd's OpenFlow port of the host end.
    pub ofport: u32,
    /// The Pod's address.
    pub ip: Ipv4Addr,
    /// The Pod's prefix length.
    pub prefix_len: u8,
    /// The gateway the Pod routes through.
    pub gateway: Ipv4Addr,
    /// The Pod end's MAC (`aa:bb:cc:dd:ee:ff`).
    pub mac: String,
}

/// Why the interface store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or a file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A record file is not a valid record.
    #[error("{path}: invalid interface record: {msg}")]
    Invalid {
        /// The path.
        path: String,
        /// What is wrong.
        msg: String,
    },
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The record file of `container_id` in `dir`.
pub fn record_path(dir: &Path, container_id: &str) -> PathBuf {
    dir.join(format!("{container_id}.json"))
}

/// Writes `rec` atomically (temp file, fsync, rename).
pub fn write_record(dir: &Path, rec: &InterfaceRecord) -> Result<PathBuf, StoreError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let path = record_path(dir, &rec.container_id);
    // The temp name does not end in `.json`, so readers never see a partial record.
    let tmp = dir.join(format!(".{}.json.tmp", rec.container_id));
    let text = serde_json::to_vec_pretty(rec).map_err(|e| StoreError::Invalid {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(&path, e)
    })?;
    Ok(path)
}

/// Reads the record of `container_id`, `None` when there is none.
pub fn read_record(dir: &Path, container_id: &str) -> Result<Option<InterfaceRecord>, StoreError> {
    let path = record_path(dir, container_id);
    match std::fs::read(&path) {
        Ok(b) => parse_record(&path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

/// Removes the record of `container_id`; a missing record is fine.
pub fn remove_record(dir: &Path, container_id: &str) -> Result<(), StoreError> {
    let path = record_path(dir, container_id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path, e)),
        _ => Ok(()),
    }
}

fn parse_record(path: &Path, b: &[u8]) -> Result<InterfaceRecord, StoreError> {
    let rec: InterfaceRecord = serde_json::from_slice(b).map_err(|e| StoreError::Invalid {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    if Mac::parse(&rec.mac).is_none() {
        return Err(StoreError::Invalid {
            path: path.display().to_string(),
            msg: format!("mac {:?} is not a MAC", rec.mac),
        });
    }
    if rec.ofport == 0 || rec.ofport >= 0xffff_ff00 {
        return Err(StoreError::Invalid {
            path: path.display().to_string(),
            msg: format!("ofport {} is not a port number", rec.ofport),
        });
    }
    Ok(rec)
}

/// Reads every `*.json` record of `dir` (sorted by file name): the good records and the errors
/// of the bad files. A missing directory holds no records.
pub fn load_records(dir: &Path) -> (Vec<InterfaceRecord>, Vec<StoreError>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (records, errors),
        Err(e) => return (records, vec![io_err(dir, e)]),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    for f in files {
        match std::fs::read(&f) {
            Ok(b) => match parse_record(&f, &b) {
                Ok(r) => records.push(r),
                Err(e) => errors.push(e),
            },
            // Removed between the listing and the read: a DEL raced us, nothing to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(io_err(&f, e)),
        }
    }
    (records, errors)
}

/// What [`attach`] could not complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachReport {
    /// Pods of this node that have neither annotations nor a record yet: waiting for the CNI.
    pub waiting: Vec<(String, String)>,
    /// Records whose Pod object has not appeared (yet); kept for when it does.
    pub unclaimed: Vec<String>,
}

/// Completes the model's unattached Pods from `records`: MAC, interface and ofport from the
/// record, the IP too when the manifest has no `status.podIP`. Several records for one Pod (a
/// sandbox recreated before the old one was deleted): the last in `records` wins.
pub fn attach(model: &mut Model, records: &[InterfaceRecord]) -> AttachReport {
    let mut report = AttachReport::default();
    let local = model.config.as_ref().map(|c| c.node_name.clone());
    let mut claimed = vec![false; records.len()];
    let keys: Vec<(String, String)> = model.unattached_pods.keys().cloned().collect();
    for key in keys {
        let found = records
            .iter()
            .enumerate()
            .rev()
            .find(|(_, r)| r.pod_namespace == key.0 && r.pod_name == key.1);
        let Some(u) = model.unattached_pods.get(&key) else {
            continue;
        };
        // A Pod of another node (the API source lists every node's) is a peer only: a record
        // here under its name is a stale one, left unclaimed.
        if local.as_deref().is_some_and(|l| l != u.pod.node) {
            continue;
        }
        match found {
            Some((i, r)) => {
                claimed[i] = true;
                let Some(mac) = Mac::parse(&r.mac) else {
                    continue;
                };
                let pod = Pod {
                    ip: if u.has_ip() { u.pod.ip } else { r.ip },
                    mac,
                    interface: r.host_interface.clone(),
                    ofport: r.ofport,
                    ..u.pod.clone()
                };
                model.unattached_pods.remove(&key);
                model.pods.insert(key, pod);
            }
            None if local.as_deref() == Some(u.pod.node.as_str()) => report.waiting.push(key),
            None => {}
        }
    }
    for (i, r) in records.iter().enumerate() {
        let pod_key = (r.pod_namespace.clone(), r.pod_name.clone());
        if !claimed[i] && !model.pods.contains_key(&pod_key) {
            report.unclaimed.push(r.container_id.clone());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_dir;

    fn rec(id: &str, ns: &str, name: &str, ip: [u8; 4], ofport: u32) -> InterfaceRecord {
        InterfaceRecord {
            container_id: id.to_string(),
            pod_namespace: ns.to_string(),
            pod_name: name.to_string(),
            host_interface: format!("xvs{id}"),
            container_interface: "eth0".to_string(),
            netns: "/var/run/netns/x".to_string(),
            ofport,
            ip: Ipv4Addr::from(ip),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            mac: format!(
                "0a:58:{:02x}:{:02x}:{:02x}:{:02x}",
                ip[0], ip[1], ip[2], ip[3]
            ),
        }
    }

    const MANIFESTS: &str = r#"kind: AgentConfig
spec:
  nodeName: n1
  tunnelType: noEncap
  gateway: {ip: 10.0.0.1, mac: "aa:bb:cc:dd:ee:01"}
---
kind: Pod
metadata: {name: p1, namespace: default, labels: {app: a}}
spec: {nodeName: n1}
status: {podIP: 10.0.0.5}
---
kind: Pod
metadata: {name: p2, namespace: default}
spec: {nodeName: n1}
---
kind: Pod
metadata: {name: p3, namespace: default}
spec: {nodeName: n1}
---
kind: Pod
metadata: {name: kube-proxy, namespace: default}
spec: {nodeName: n1, hostNetwork: true}
status: {podIP: 192.168.0.1}
---
kind: Pod
metadata: {name: remote, namespace: default}
spec: {nodeName: n2}
status: {podIP: 10.0.1.5}
---
kind: Pod
metadata:
  name: annotated
  namespace: default
  annotations: {xvs.io/mac: "02:00:00:00:00:09", xvs.io/interface: p9, xvs.io/ofport: "9"}
spec: {nodeName: n1}
status: {podIP: 10.0.0.9}
"#;

    fn model() -> Model {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("m.yaml"), MANIFESTS).expect("write");
        let (m, errors) = load_dir(dir.path()).expect("load");
        assert!(errors.is_empty(), "{errors:?}");
        m
    }

    #[test]
    fn pods_without_annotations_wait_until_their_record_appears() {
        let mut m = model();
        assert_eq!(m.pods.len(), 1, "only the annotated pod is complete");
        assert_eq!(m.unattached_pods.len(), 4);
        let r = attach(&mut m, &[]);
        let key = |n: &str| ("default".to_string(), n.to_string());
        assert_eq!(r.waiting, vec![key("p1"), key("p2"), key("p3")]);
        assert!(r.unclaimed.is_empty());
        assert_eq!(m.pods.len(), 1);

        let mut m = model();
        let records = [
            rec("c1", "default", "p1", [10, 0, 0, 7], 5),
            rec("c2", "default", "p2", [10, 0, 0, 8], 6),
            rec("c9", "default", "gone", [10, 0, 0, 10], 7),
        ];
        let r = attach(&mut m, &records);
        assert_eq!(r.waiting, vec![key("p3")]);
        assert_eq!(r.unclaimed, vec!["c9".to_string()]);
        let p1 = &m.pods[&key("p1")];
        // The manifest's podIP wins over the record's.
        assert_eq!(p1.ip, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(p1.ofport, 5);
        assert_eq!(p1.interface, "xvsc1");
        assert_eq!(p1.mac.to_string(), "0a:58:0a:00:00:07");
        assert_eq!(p1.labels.get("app").map(String::as_str), Some("a"));
        let p2 = &m.pods[&key("p2")];
        assert_eq!(
            p2.ip,
            Ipv4Addr::new(10, 0, 0, 8),
            "the record's IP fills in"
        );
        assert!(m.pods.contains_key(&key("annotated")));
        assert!(!m.unattached_pods.contains_key(&key("p1")));
    }

    #[test]
    fn pods_without_interfaces_are_still_policy_peers() {
        use crate::pipeline::{desired, Ids};
        let mut m = model();
        let policy = r#"kind: NetworkPolicy
metadata: {name: from-a, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]
"#;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("p.yaml"), policy).expect("write");
        let (p, errors) = load_dir(dir.path()).expect("load");
        assert!(errors.is_empty(), "{errors:?}");
        m.policies = p.policies;
        m.unattached_pods
            .get_mut(&("default".to_string(), "remote".to_string()))
            .expect("remote")
            .pod
            .labels
            .insert("app".to_string(), "a".to_string());
        attach(&mut m, &[]);
        let flows: Vec<String> = desired(&m, &mut Ids::default())
            .flows
            .keys()
            .map(|k| k.matches.clone())
            .collect();
        // p1 (no interface yet, podIP known) and the remote Pod are peers by their addresses.
        for ip in ["10.0.0.5", "10.0.1.5"] {
            assert!(
                flows.iter().any(|f| f.contains(&format!("nw_src={ip}"))),
                "{ip} is a peer: {flows:#?}"
            );
        }
    }

    #[test]
    fn a_pod_of_another_node_never_takes_a_record_here() {
        let mut m = model();
        let r = attach(
            &mut m,
            &[rec("stale", "default", "remote", [10, 0, 0, 12], 8)],
        );
        let key = ("default".to_string(), "remote".to_string());
        assert!(m.unattached_pods.contains_key(&key));
        assert!(!m.pods.contains_key(&key));
        assert_eq!(r.unclaimed, vec!["stale".to_string()]);
    }

    #[test]
    fn the_latest_record_of_a_pod_wins() {
        let mut m = model();
        let records = [
            rec("old", "default", "p2", [10, 0, 0, 8], 6),
            rec("new", "default", "p2", [10, 0, 0, 11], 12),
        ];
        let r = attach(&mut m, &records);
        let p2 = &m.pods[&("default".to_string(), "p2".to_string())];
        assert_eq!((p2.ofport, p2.ip), (12, Ipv4Addr::new(10, 0, 0, 11)));
        assert!(r.unclaimed.is_empty());
    }

    #[test]
    fn records_round_trip_atomically_and_bad_files_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = rec("aaa", "default", "p1", [10, 0, 0, 7], 5);
        write_record(dir.path(), &a).expect("write");
        assert_eq!(
            read_record(dir.path(), "aaa").expect("read"),
            Some(a.clone())
        );
        assert_eq!(read_record(dir.path(), "zzz").expect("read"), None);
        std::fs::write(dir.path().join("bad.json"), b"{\"containerId\": 1}").expect("write");
        std::fs::write(dir.path().join(".x.json.tmp"), b"partial").expect("write");
        let mut b = rec("bbb", "default", "p2", [10, 0, 0, 8], 6);
        b.mac = "nope".to_string();
        std::fs::write(
            dir.path().join("bbb.json"),
            serde_json::to_vec(&b).expect("json"),
        )
        .expect("write");
        let (records, errors) = load_records(dir.path());
        assert_eq!(records, vec![a]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.to_string().contains("bad.json")));
        assert!(errors.iter().any(|e| e.to_string().contains("not a MAC")));
        remove_record(dir.path(), "aaa").expect("remove");
        remove_record(dir.path(), "aaa").expect("removing twice is fine");
        assert_eq!(read_record(dir.path(), "aaa").expect("read"), None);
        let (none, errors) = load_records(&dir.path().join("missing"));
        assert!(none.is_empty() && errors.is_empty());
    }
}
