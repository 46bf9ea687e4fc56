//! Incremental recomputation of the Antrea-native flows: a random sequence of changes
//! (policies added, edited, removed; Pods added, relabelled, removed; Namespace labels,
//! Groups, Tiers and Services changed) planned and committed by [`SyncState`] gives, after
//! every step, exactly the flows, groups and id / priority state of the full recomputation
//! (`desired()` with its own ids after the same history), and each kind of change takes
//! the path meant for it.

mod anp_common;

use anp_common::NODE;
use proptest::prelude::*;
use std::collections::BTreeMap;
use xvs_agent::anp::admission::admit;
use xvs_agent::anp::incr::UpdatePath;
use xvs_agent::anp::AnpObjects;
use xvs_agent::model::{parse_file, Model};
use xvs_agent::pipeline::{desired, Ids};
use xvs_agent::sync::SyncState;

/// A small deterministic generator (the proptest input is its seed).
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const NSS: [&str; 3] = ["n0", "n1", "n2"];

/// The cluster as named manifests (a change replaces or removes one).
#[derive(Clone, Default)]
struct Cluster {
    docs: BTreeMap<String, String>,
}

impl Cluster {
    fn model(&self) -> Model {
        let mut text = NODE.to_string();
        for d in self.docs.values() {
            text.push_str("\n---\n");
            text.push_str(d);
            text.push('\n');
        }
        let mut m = Model::default();
        for o in parse_file("c.yaml", &text).expect("generated manifests parse") {
            m.insert(o);
        }
        // Refused objects are left out, as the agent does.
        let _ = admit(&mut m, &AnpObjects::default());
        m
    }
}

fn namespace(g: &mut Gen, ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{kubernetes.io/metadata.name: {ns}, env: {}}}}}\n",
        g.pick(&["prod", "dev"])
    )
}

fn pod(g: &mut Gen, i: usize) -> String {
    let ns = NSS[i % NSS.len()];
    let n = i + 10;
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: {ns}\n  labels: {{app: {}}}\n  annotations: {{xvs.io/mac: \"02:00:00:00:00:{n:02x}\", xvs.io/interface: p{n}, xvs.io/ofport: \"{n}\"}}\nspec: {{nodeName: node-1, serviceAccountName: {}}}\nstatus: {{podIP: 10.10.0.{n}}}\n",
        g.pick(&["a", "b", "c"]),
        g.pick(&["sa1", "sa2"])
    )
}

fn selector(g: &mut Gen) -> String {
    match g.below(3) {
        0 => "{}".to_string(),
        _ => format!("{{matchLabels: {{app: {}}}}}", g.pick(&["a", "b", "c"])),
    }
}

fn group(g: &mut Gen) -> String {
    match g.below(3) {
        0 => format!(
            "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: cg0}}\nspec: {{podSelector: {}}}\n",
            selector(g)
        ),
        1 => "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: cg0}\nspec: {ipBlocks: [{cidr: 10.0.10.0/24}]}\n".to_string(),
        _ => "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: cg0}\nspec: {serviceReference: {name: s, namespace: n0}}\n".to_string(),
    }
}

fn service(g: &mut Gen) -> String {
    let port = g.pick(&["80", "8080"]);
    let ep = 10 + g.below(6);
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: n0}}\nspec: {{clusterIP: 10.96.0.50, ports: [{{name: http, protocol: TCP, port: {port}}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s-1, namespace: n0, labels: {{kubernetes.io/service-name: s}}}}\naddressType: IPv4\nports: [{{name: http, protocol: TCP, port: 80}}]\nendpoints: [{{addresses: [10.10.0.{ep}], conditions: {{ready: true}}}}]\n"
    )
}

fn policy(g: &mut Gen, i: usize) -> String {
    // Priorities sharing Antrea's initial guess, inserted between each other: re-packing.
    let prio = format!("2.{:04}", g.below(100));
    let tier = g.pick(&[
        "application",
        "application",
        "application",
        "securityops",
        "baseline",
        "t1",
    ]);
    let mut body = String::new();
    for dir in ["ingress", "egress"] {
        let n = g.below(3);
        if n == 0 {
            continue;
        }
        body.push_str(&format!("  {dir}:\n"));
        for r in 0..n {
            let actions: &[&str] = if tier == "baseline" {
                &["Allow", "Drop", "Reject"]
            } else {
                &["Allow", "Drop", "Reject", "Pass"]
            };
            let action = g.pick(actions);
            let key = if dir == "ingress" { "from" } else { "to" };
            let peer = match g.below(7) {
                0 => format!("{key}: [{{podSelector: {}}}]", selector(g)),
                1 => format!(
                    "{key}: [{{namespaceSelector: {{matchLabels: {{env: {}}}}}}}]",
                    g.pick(&["prod", "dev"])
                ),
                2 => format!("{key}: [{{group: cg0}}]"),
                3 => format!("{key}: [{{namespaces: {{match: Self}}}}]"),
                4 => format!("{key}: [{{ipBlock: {{cidr: 10.0.10.0/24}}}}]"),
                5 if dir == "egress" => "toServices: [{name: s, namespace: n0}]".to_string(),
                _ => format!("{key}: [{{serviceAccount: {{name: sa1, namespace: n1}}}}]"),
            };
            let ports = match g.below(3) {
                _ if peer.starts_with("toServices") => "",
                0 => ", ports: [{protocol: TCP, port: 80}]",
                1 => ", ports: [{protocol: TCP, port: 8000, endPort: 8003}]",
                _ => "",
            };
            let log = if g.below(4) == 0 {
                ", enableLogging: true"
            } else {
                ""
            };
            body.push_str(&format!(
                "  - {{action: {action}, name: {dir}{r}, {peer}{ports}{log}}}\n"
            ));
        }
    }
    if body.is_empty() {
        body.push_str("  ingress:\n  - {action: Drop, name: only, from: [{podSelector: {}}]}\n");
    }
    let applied = match g.below(3) {
        0 => "[{group: cg0}]".to_string(),
        _ => format!("[{{podSelector: {}}}]", selector(g)),
    };
    format!(
        "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: pol{i}}}\nspec:\n  priority: {prio}\n  tier: {tier}\n  appliedTo: {applied}\n{body}"
    )
}

fn tier(g: &mut Gen) -> String {
    format!(
        "apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {{name: t1}}\nspec: {{priority: {}}}\n",
        g.pick(&["5", "120", "240"])
    )
}

/// One random change; returns the path it should take.
fn change(g: &mut Gen, c: &mut Cluster) -> UpdatePath {
    match g.below(10) {
        0..=4 => {
            let i = g.below(12);
            if g.below(4) == 0 {
                c.docs.remove(&format!("pol{i}"));
            } else {
                c.docs.insert(format!("pol{i}"), policy(g, i));
            }
            UpdatePath::Policies
        }
        5 => {
            let i = g.below(9);
            if g.below(3) == 0 {
                c.docs.remove(&format!("pod{i}"));
            } else {
                c.docs.insert(format!("pod{i}"), pod(g, i));
            }
            UpdatePath::Membership
        }
        6 => {
            let ns = NSS[g.below(NSS.len())];
            c.docs.insert(format!("ns-{ns}"), namespace(g, ns));
            UpdatePath::Membership
        }
        7 => {
            c.docs.insert("group".into(), group(g));
            UpdatePath::Membership
        }
        8 => {
            c.docs.insert("tier".into(), tier(g));
            UpdatePath::Membership
        }
        _ => {
            c.docs.insert("service".into(), service(g));
            UpdatePath::Membership
        }
    }
}

/// Runs `steps` changes; returns how many steps re-packed priorities.
fn run(seed: u64, steps: usize) -> Result<usize, TestCaseError> {
    let mut g = Gen(seed | 1);
    let mut c = Cluster::default();
    for ns in NSS {
        c.docs.insert(format!("ns-{ns}"), namespace(&mut g, ns));
    }
    for i in 0..6 {
        c.docs.insert(format!("pod{i}"), pod(&mut g, i));
    }
    c.docs.insert("group".into(), group(&mut g));
    c.docs.insert("tier".into(), tier(&mut g));
    c.docs.insert("service".into(), service(&mut g));
    for i in 0..8 {
        c.docs.insert(format!("pol{i}"), policy(&mut g, i));
    }
    let mut state = SyncState::new(1);
    let mut full_ids = Ids::default();
    let mut expected_path = UpdatePath::Full;
    let mut repacked = 0;
    for step in 0..steps {
        let m = c.model();
        let plan = state.plan(&m).expect("encodes");
        let path = plan.path;
        state.committed(plan);
        repacked += usize::from(!state.ids.anp.last_moves.is_empty());
        let full = desired(&m, &mut full_ids);
        prop_assert_eq!(
            &state.installed,
            &full,
            "seed {} step {}: incremental flows differ from the full recomputation",
            seed,
            step
        );
        prop_assert_eq!(&state.ids, &full_ids, "seed {} step {}: ids", seed, step);
        // A change that leaves the model as it was (same text drawn) takes the policy path.
        if !(expected_path == UpdatePath::Membership && path == UpdatePath::Policies) {
            prop_assert_eq!(path, expected_path, "seed {} step {}", seed, step);
        }
        expected_path = change(&mut g, &mut c);
    }
    Ok(repacked)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn incremental_flows_equal_the_full_recomputation(seed in any::<u64>()) {
        run(seed, 20)?;
    }
}

#[test]
fn paths_are_counted() {
    let mut g = Gen(7);
    let mut c = Cluster::default();
    for ns in NSS {
        c.docs.insert(format!("ns-{ns}"), namespace(&mut g, ns));
    }
    c.docs.insert("pod0".into(), pod(&mut g, 0));
    c.docs.insert("pol0".into(), policy(&mut g, 0));
    let mut state = SyncState::new(1);
    let p = state.plan(&c.model()).expect("encodes");
    assert_eq!(p.path, UpdatePath::Full);
    state.committed(p);
    c.docs.insert("pol1".into(), policy(&mut g, 1));
    let p = state.plan(&c.model()).expect("encodes");
    assert_eq!(p.path, UpdatePath::Policies);
    state.committed(p);
    c.docs.insert("pod1".into(), pod(&mut g, 1));
    let p = state.plan(&c.model()).expect("encodes");
    assert_eq!(p.path, UpdatePath::Membership);
    state.committed(p);
    let n = state.path_counts();
    assert_eq!((n.full, n.policies, n.membership), (1, 1, 1));
}

#[test]
fn repacking_moves_are_applied_incrementally() {
    let mut g = Gen(3);
    let mut c = Cluster::default();
    for ns in NSS {
        c.docs.insert(format!("ns-{ns}"), namespace(&mut g, ns));
    }
    for i in 0..6 {
        c.docs.insert(format!("pod{i}"), pod(&mut g, i));
    }
    let mut state = SyncState::new(1);
    let mut full_ids = Ids::default();
    let mut repacked = 0;
    // Priorities sharing Antrea's initial guess, each inserted between the last two: the
    // buffers run out and registered rules move.
    for (i, prio) in [
        "2.0001", "2.0020", "2.0010", "2.0015", "2.0017", "2.0018", "2.0019",
    ]
    .into_iter()
    .enumerate()
    {
        c.docs.insert(
            format!("pol{i}"),
            format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: pol{i}}}\nspec:\n  priority: {prio}\n  appliedTo: [{{podSelector: {{matchLabels: {{app: a}}}}}}]\n  ingress:\n  - {{action: Allow, name: r0, from: [{{podSelector: {{}}}}], ports: [{{protocol: TCP, port: {i}}}]}}\n  - {{action: Drop, name: r1, from: [{{podSelector: {{}}}}]}}\n"),
        );
        let m = c.model();
        let p = state.plan(&m).expect("encodes");
        state.committed(p);
        repacked += state.ids.anp.last_moves.len();
        assert_eq!(state.installed, desired(&m, &mut full_ids), "after {prio}");
    }
    assert!(repacked > 0, "no registered rule moved");
}
