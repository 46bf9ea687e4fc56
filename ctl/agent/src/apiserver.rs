//! The Kubernetes API server as a second input (sans-IO part): watch updates in, the set of
//! objects the model merges out.
//!
//! [`crate::apiwatch`] runs kube-rs watchers and turns their events into [`WatchUpdate`]s;
//! [`ApiObjects`] folds them. An object's JSON goes through the same [`parse_object`] as a
//! manifest, so a Pod from the API server and the same Pod in a YAML file give the same model.
//!
//! Invariant: a re-list (initial, after a 410 Gone, or a periodic resync) is buffered and
//! replaces the kind's objects only when it is complete, so the model never loses objects
//! while a list is in flight; objects absent from the new list are removed then.
//!
//! Invariant: an object that fails to parse is reported (kind, namespace/name, field) and keeps
//! its last good version, as a broken manifest edit does; deleting it removes it.

use crate::model::{parse_object, ManifestError, Model, Object};
use std::collections::{BTreeMap, BTreeSet};

/// The kinds the agent watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiKind {
    /// v1 Node.
    Node,
    /// v1 Namespace.
    Namespace,
    /// v1 Pod (every node's: remote Pods are policy peers).
    Pod,
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
}

impl ApiKind {
    /// Every watched kind.
    pub const ALL: [ApiKind; 6] = [
        ApiKind::Node,
        ApiKind::Namespace,
        ApiKind::Pod,
        ApiKind::Service,
        ApiKind::EndpointSlice,
        ApiKind::NetworkPolicy,
    ];

    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        match self {
            ApiKind::Node => "Node",
            ApiKind::Namespace => "Namespace",
            ApiKind::Pod => "Pod",
            ApiKind::Service => "Service",
            ApiKind::EndpointSlice => "EndpointSlice",
            ApiKind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// API group ("" for core).
    pub fn group(self) -> &'static str {
        match self {
            ApiKind::EndpointSlice => "discovery.k8s.io",
            ApiKind::NetworkPolicy => "networking.k8s.io",
            _ => "",
        }
    }

    /// API version within the group.
    pub fn version(self) -> &'static str {
        "v1"
    }

    /// The resource name in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            ApiKind::Node => "nodes",
            ApiKind::Namespace => "namespaces",
            ApiKind::Pod => "pods",
            ApiKind::Service => "services",
            ApiKind::EndpointSlice => "endpointslices",
            ApiKind::NetworkPolicy => "networkpolicies",
        }
    }

    /// The collection path for all namespaces (`/api/v1/pods`, `/apis/<group>/v1/...`).
    pub fn path(self) -> String {
        match self.group() {
            "" => format!("/api/{}/{}", self.version(), self.plural()),
            g => format!("/apis/{g}/{}/{}", self.version(), self.plural()),
        }
    }
}

/// What a watcher reports, with objects as the API server's JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchUpdate {
    /// A list of `kind` starts (first start, after 410 Gone, or a resync).
    ListStarted(ApiKind),
    /// One object of the list in progress.
    Listed(ApiKind, serde_json::Value),
    /// The list is complete.
    ListDone(ApiKind),
    /// ADDED or MODIFIED.
    Applied(ApiKind, serde_json::Value),
    /// DELETED.
    Deleted(ApiKind, serde_json::Value),
    /// The watch failed (a 410 Gone, a refused request, a broken connection); the watcher
    /// retries with backoff, re-listing when needed.
    Failed(ApiKind, String),
}

/// Identity of an API object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its kind.
    pub kind: ApiKind,
    /// Namespace ("" for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind.kind(), self.name)
        } else {
            write!(f, "{} {}/{}", self.kind.kind(), self.namespace, self.name)
        }
    }
}

/// The key of `obj` (`None` when it has no name).
pub fn object_key(kind: ApiKind, obj: &serde_json::Value) -> Option<ObjectKey> {
    let meta = obj.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let namespace = meta
        .get("namespace")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    Some(ObjectKey {
        kind,
        namespace,
        name,
    })
}

/// What an object from the API server means for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A usable object (boxed: objects are large, `Ignored` is nothing).
    Object(Box<Object>),
    /// Not for the datapath (yet): a Pod without an IP (still pending) or on the host network.
    Ignored,
}

/// Parses one object of `kind` from the API server's JSON (list items carry no `kind`, so it
/// is set here). Errors name the object (`Pod default/web-1`) and the field (`status.podIP`).
pub fn parse_api_object(
    kind: ApiKind,
    key: &ObjectKey,
    obj: &serde_json::Value,
) -> Result<Parsed, ManifestError> {
    let label = key.to_string();
    if kind == ApiKind::Pod {
        let host_network = obj
            .pointer("/spec/hostNetwork")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let pending = obj.pointer("/status/podIP").is_none_or(|v| v.is_null());
        if host_network || pending {
            return Ok(Parsed::Ignored);
        }
    }
    let mut doc: serde_yaml::Value = serde_yaml::to_value(obj).map_err(|e| ManifestError {
        file: label.clone(),
        field: String::new(),
        msg: format!("not representable: {e}"),
    })?;
    if let serde_yaml::Value::Mapping(m) = &mut doc {
        m.insert("kind".into(), kind.kind().into());
    }
    match parse_object(&label, 0, &doc) {
        Ok(Some(o)) => Ok(Parsed::Object(Box::new(o))),
        Ok(None) => Ok(Parsed::Ignored),
        Err(mut e) => {
            // Our own label replaces the document index manifests use.
            e.field = e
                .field
                .strip_prefix("doc[0]")
                .map(|f| f.trim_start_matches('.').to_string())
                .unwrap_or(e.field);
            Err(e)
        }
    }
}

/// A list in progress: the objects and errors seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Listing {
    objects: BTreeMap<ObjectKey, Object>,
    errors: BTreeMap<ObjectKey, ManifestError>,
}

/// The API server's objects as the agent last saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiObjects {
    objects: BTreeMap<ObjectKey, Object>,
    errors: BTreeMap<ObjectKey, ManifestError>,
    listing: BTreeMap<ApiKind, Listing>,
    listed: BTreeSet<ApiKind>,
    relists: BTreeMap<ApiKind, u64>,
    failures: Vec<(ApiKind, String)>,
}

impl ApiObjects {
    /// Folds one update in; true when the objects (and so the model) changed.
    pub fn handle(&mut self, u: WatchUpdate) -> bool {
        match u {
            WatchUpdate::ListStarted(kind) => {
                self.listing.insert(kind, Listing::default());
                false
            }
            WatchUpdate::Listed(kind, obj) => {
                let Some(key) = object_key(kind, &obj) else {
                    return false;
                };
                let parsed = parse_api_object(kind, &key, &obj);
                let l = self.listing.entry(kind).or_default();
                match parsed {
                    Ok(Parsed::Object(o)) => {
                        l.objects.insert(key, *o);
                    }
                    Ok(Parsed::Ignored) => {}
                    Err(e) => {
                        l.errors.insert(key, e);
                    }
                }
                false
            }
            WatchUpdate::ListDone(kind) => {
                let Listing {
                    mut objects,
                    errors,
                } = self.listing.remove(&kind).unwrap_or_default();
                // A bad object keeps its last good version.
                for k in errors.keys() {
                    if let Some(old) = self.objects.get(k) {
                        objects.insert(k.clone(), old.clone());
                    }
                }
                let old: BTreeMap<ObjectKey, Object> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| k.kind == kind)
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                let changed = old != objects;
                self.objects.retain(|k, _| k.kind != kind);
                self.objects.extend(objects);
                self.errors.retain(|k, _| k.kind != kind);
                self.errors.extend(errors);
                if !self.listed.insert(kind) {
                    *self.relists.entry(kind).or_default() += 1;
                }
                changed
            }
            WatchUpdate::Applied(kind, obj) => {
                let Some(key) = object_key(kind, &obj) else {
                    return false;
                };
                match parse_api_object(kind, &key, &obj) {
                    Ok(Parsed::Object(o)) => {
                        self.errors.remove(&key);
                        self.objects.insert(key, (*o).clone()) != Some(*o)
                    }
                    Ok(Parsed::Ignored) => {
                        self.errors.remove(&key);
                        self.objects.remove(&key).is_some()
                    }
                    Err(e) => {
                        self.errors.insert(key, e);
                        false
                    }
                }
            }
            WatchUpdate::Deleted(kind, obj) => {
                let Some(key) = object_key(kind, &obj) else {
                    return false;
                };
                self.errors.remove(&key);
                self.objects.remove(&key).is_some()
            }
            WatchUpdate::Failed(kind, msg) => {
                self.failures.push((kind, msg));
                false
            }
        }
    }

    /// Whether every kind has completed its first list (the model is whole).
    pub fn all_listed(&self) -> bool {
        ApiKind::ALL.iter().all(|k| self.listed.contains(k))
    }

    /// How many times `kind` was listed again after its first list (410 Gone, resync).
    pub fn relists(&self, kind: ApiKind) -> u64 {
        self.relists.get(&kind).copied().unwrap_or(0)
    }

    /// The usable objects.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &Object)> {
        self.objects.iter()
    }

    /// The objects that do not parse, by name and field.
    pub fn errors(&self) -> Vec<ManifestError> {
        self.errors.values().cloned().collect()
    }

    /// Watch failures since the last call (for the log).
    pub fn take_failures(&mut self) -> Vec<(ApiKind, String)> {
        std::mem::take(&mut self.failures)
    }

    /// Inserts the objects into `model`; on the same key they replace what the manifests said
    /// (the API server is the cluster's truth; the directory adds the agent config and extras).
    pub fn merge_into(&self, model: &mut Model) {
        self.objects.values().cloned().for_each(|o| model.insert(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>) -> serde_json::Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                "annotations": {"xvs.io/mac": "02:00:00:00:00:01", "xvs.io/interface": "p0",
                    "xvs.io/ofport": "1"}},
            "spec": {"nodeName": "node-1"},
            "status": {}
        });
        if let Some(ip) = ip {
            p["status"]["podIP"] = json!(ip);
        }
        p
    }

    #[test]
    fn a_relist_is_applied_whole_and_removes_what_vanished() {
        let mut a = ApiObjects::default();
        a.handle(WatchUpdate::ListStarted(ApiKind::Pod));
        a.handle(WatchUpdate::Listed(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2")),
        ));
        a.handle(WatchUpdate::Listed(
            ApiKind::Pod,
            pod("y", Some("10.0.0.3")),
        ));
        assert_eq!(a.objects().count(), 0, "nothing before the list is done");
        assert!(a.handle(WatchUpdate::ListDone(ApiKind::Pod)));
        assert_eq!(a.objects().count(), 2);
        assert!(!a.all_listed());
        // 410 Gone: the re-list keeps x and y visible until it completes.
        a.handle(WatchUpdate::Failed(ApiKind::Pod, "410".into()));
        a.handle(WatchUpdate::ListStarted(ApiKind::Pod));
        a.handle(WatchUpdate::Listed(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2")),
        ));
        assert_eq!(a.objects().count(), 2);
        assert!(a.handle(WatchUpdate::ListDone(ApiKind::Pod)));
        let names: Vec<&str> = a.objects().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["x"]);
        assert_eq!(a.relists(ApiKind::Pod), 1);
        assert_eq!(a.take_failures().len(), 1);
        // The same list again changes nothing.
        a.handle(WatchUpdate::ListStarted(ApiKind::Pod));
        a.handle(WatchUpdate::Listed(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2")),
        ));
        assert!(!a.handle(WatchUpdate::ListDone(ApiKind::Pod)));
    }

    #[test]
    fn events_add_modify_delete() {
        let mut a = ApiObjects::default();
        assert!(a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2"))
        )));
        assert!(!a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2"))
        )));
        assert!(a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.9"))
        )));
        assert!(a.handle(WatchUpdate::Deleted(ApiKind::Pod, pod("x", None))));
        assert!(!a.handle(WatchUpdate::Deleted(ApiKind::Pod, pod("x", None))));
        assert_eq!(a.objects().count(), 0);
    }

    #[test]
    fn a_bad_object_is_named_and_keeps_its_last_good_version() {
        let mut a = ApiObjects::default();
        a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2")),
        ));
        assert!(!a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.300"))
        )));
        let e = a.errors();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].file, "Pod default/x");
        assert_eq!(e[0].field, "status.podIP");
        assert_eq!(a.objects().count(), 1, "the last good version stays");
        // Through a re-list too.
        a.handle(WatchUpdate::ListStarted(ApiKind::Pod));
        a.handle(WatchUpdate::Listed(
            ApiKind::Pod,
            pod("x", Some("10.0.0.300")),
        ));
        assert!(!a.handle(WatchUpdate::ListDone(ApiKind::Pod)));
        assert_eq!(a.objects().count(), 1);
        // Fixed: the error goes.
        assert!(a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.3"))
        )));
        assert!(a.errors().is_empty());
    }

    #[test]
    fn pending_and_host_network_pods_are_not_errors() {
        let mut a = ApiObjects::default();
        a.handle(WatchUpdate::Applied(ApiKind::Pod, pod("x", None)));
        let mut h = pod("h", Some("192.168.0.1"));
        h["spec"]["hostNetwork"] = json!(true);
        a.handle(WatchUpdate::Applied(ApiKind::Pod, h));
        assert!(a.errors().is_empty());
        assert_eq!(a.objects().count(), 0);
        // A Pod that gets its IP appears; one that loses it disappears.
        assert!(a.handle(WatchUpdate::Applied(
            ApiKind::Pod,
            pod("x", Some("10.0.0.2"))
        )));
        assert!(a.handle(WatchUpdate::Applied(ApiKind::Pod, pod("x", None))));
    }

    #[test]
    fn nameless_or_odd_json_does_not_panic() {
        let mut a = ApiObjects::default();
        for v in [
            json!(null),
            json!(3),
            json!({"metadata": 1}),
            json!({"metadata": {"name": 5}}),
            json!({"metadata": {"name": "n"}, "spec": "x", "status": []}),
        ] {
            for k in ApiKind::ALL {
                a.handle(WatchUpdate::Applied(k, v.clone()));
                a.handle(WatchUpdate::Listed(k, v.clone()));
                a.handle(WatchUpdate::Deleted(k, v.clone()));
            }
        }
        assert_eq!(a.objects().count(), 0);
    }
}
