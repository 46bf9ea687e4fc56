//! Membership resolution per selector kind: appliedTo Pods and peer address sets.

mod anp_common;

use anp_common::*;
use std::collections::BTreeSet;
use xvs_agent::anp::resolve::{applied_pods, group_members, internal_rules, peer_cidrs};
use xvs_agent::anp::types::{AnpPeer, Direction};
use xvs_agent::model::{Cidr, Model};

fn cluster() -> Fx {
    Fx::new()
        .ns("x", "env=prod,org=o1")
        .ns("y", "env=dev,org=o1")
        .ns("z", "env=prod")
        .pod_sa("x", "a", "app=a", "sa1")
        .pod_sa("x", "b", "app=b", "sa2")
        .pod_sa("y", "a", "app=a", "sa1")
        .pod_sa("z", "a", "app=a", "sa1")
        .pod("z", "c", "app=c")
}

fn names(m: &Model, cidrs: &BTreeSet<Cidr>) -> Vec<String> {
    let mut v: Vec<String> = cidrs
        .iter()
        .map(|c| {
            m.pods
                .values()
                .find(|p| c.len == 32 && p.ip == c.addr)
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .unwrap_or_else(|| c.to_ofctl())
        })
        .collect();
    v.sort();
    v
}

/// The peers of the first ingress rule of the only policy, for appliedTo namespace `ns`.
fn peers(extra: &str, peer: &str, ns: &str) -> Vec<String> {
    let acnp = format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: p}}\nspec:\n  priority: 1\n  appliedTo: [{{namespaceSelector: {{}}}}]\n  ingress: [{{action: Drop, from: [{peer}]}}]\n");
    let m = cluster().with(extra).with(&acnp).model();
    let pol = m.anp.policies.values().next().expect("policy");
    let p: &AnpPeer = &pol.ingress[0].peers[0];
    names(&m, &peer_cidrs(&m, pol, p, ns))
}

#[test]
fn pod_and_namespace_selectors() {
    assert_eq!(
        peers("", "{podSelector: {matchLabels: {app: a}}}", ""),
        ["x/a", "y/a", "z/a"]
    );
    assert_eq!(
        peers("", "{namespaceSelector: {matchLabels: {env: prod}}}", ""),
        ["x/a", "x/b", "z/a", "z/c"]
    );
    assert_eq!(
        peers(
            "",
            "{podSelector: {matchLabels: {app: a}}, namespaceSelector: {matchLabels: {env: prod}}}",
            ""
        ),
        ["x/a", "z/a"]
    );
    assert_eq!(
        peers(
            "",
            "{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [a]}]}}",
            ""
        ),
        ["x/b", "z/c"]
    );
}

#[test]
fn namespaces_self_and_same_labels_depend_on_the_applied_namespace() {
    assert_eq!(
        peers("", "{namespaces: {match: Self}}", "x"),
        ["x/a", "x/b"]
    );
    assert_eq!(
        peers(
            "",
            "{namespaces: {match: Self}, podSelector: {matchLabels: {app: a}}}",
            "z"
        ),
        ["z/a"]
    );
    assert_eq!(
        peers("", "{namespaces: {sameLabels: [org]}}", "x"),
        ["x/a", "x/b", "y/a"]
    );
    assert_eq!(
        peers("", "{namespaces: {sameLabels: [org, env]}}", "x"),
        ["x/a", "x/b"]
    );
    assert!(
        peers("", "{namespaces: {sameLabels: [org]}}", "z").is_empty(),
        "z lacks org"
    );
}

#[test]
fn ip_blocks_service_accounts_nodes_and_groups() {
    assert_eq!(
        peers(
            "",
            "{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/9]}}",
            ""
        ),
        ["10.128.0.0/9"]
    );
    assert_eq!(
        peers("", "{serviceAccount: {name: sa1, namespace: x}}", ""),
        ["x/a"]
    );
    assert_eq!(
        peers(
            "",
            "{nodeSelector: {matchLabels: {node-role.kubernetes.io/control-plane: \"\"}}}",
            ""
        ),
        ["10.10.0.1", "192.168.0.1"]
    );
    let cgs = "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: pods}\nspec: {podSelector: {matchLabels: {app: b}}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: ips}\nspec: {ipBlocks: [{cidr: 10.0.10.0/24}]}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: both}\nspec: {childGroups: [pods, ips, missing]}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: svc}\nspec: {serviceReference: {name: s, namespace: z}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s-1, namespace: z, labels: {kubernetes.io/service-name: s}}\nports: [{name: http, protocol: TCP, port: 80}]\nendpoints: [{addresses: [10.10.0.14]}]\n";
    assert_eq!(peers(cgs, "{group: both}", ""), ["10.0.10.0/24", "x/b"]);
    assert_eq!(peers(cgs, "{group: svc}", ""), ["z/c"]);
    let m = cluster().with(cgs).model();
    assert!(group_members(&m, None, "nothere").pods.is_empty());
}

#[test]
fn applied_to_kinds_and_annp_scoping() {
    let m = cluster()
        .with("apiVersion: crd.antrea.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: n, namespace: x}\nspec:\n  priority: 1\n  appliedTo: [{podSelector: {matchLabels: {app: a}}}]\n  ingress: [{action: Drop, from: [{podSelector: {}}]}]\n")
        .with("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec:\n  priority: 1\n  appliedTo: [{serviceAccount: {name: sa1, namespace: y}}, {podSelector: {matchLabels: {app: c}}}]\n  ingress: [{action: Drop}]\n")
        .model();
    let key = |ns: Option<&str>, n: &str| (ns.map(str::to_string), n.to_string());
    let annp = &m.anp.policies[&key(Some("x"), "n")];
    let pods: Vec<String> = applied_pods(&m, annp, &annp.applied_to)
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert_eq!(pods, ["x/a"], "ANNP podSelector stays in its namespace");
    let p = &annp.ingress[0].peers[0];
    assert_eq!(names(&m, &peer_cidrs(&m, annp, p, "x")), ["x/a", "x/b"]);
    let acnp = &m.anp.policies[&key(None, "c")];
    let pods: Vec<String> = applied_pods(&m, acnp, &acnp.applied_to)
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert_eq!(pods, ["y/a", "z/c"]);
    // Empty from = any address; a peer list selecting nothing = nothing (not any).
    let rules = internal_rules(&m);
    let r = rules.iter().find(|r| r.policy.name == "c").expect("rule");
    assert_eq!(r.dir, Direction::Ingress);
    assert!(r.peers.is_none());
}

#[test]
fn self_peers_split_a_rule_per_namespace() {
    let m = cluster()
        .with("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: s}\nspec:\n  priority: 1\n  appliedTo: [{namespaceSelector: {}}]\n  ingress: [{action: Allow, from: [{namespaces: {match: Self}}, {ipBlock: {cidr: 10.0.10.0/24}}]}]\n")
        .model();
    let rules = internal_rules(&m);
    let splits: Vec<(Option<String>, Vec<String>)> = rules
        .iter()
        .map(|r| (r.split.clone(), names(&m, r.peers.as_ref().expect("set"))))
        .collect();
    assert_eq!(
        splits,
        vec![
            (
                Some("x".into()),
                vec!["10.0.10.0/24".into(), "x/a".into(), "x/b".into()]
            ),
            (Some("y".into()), vec!["10.0.10.0/24".into(), "y/a".into()]),
            (
                Some("z".into()),
                vec!["10.0.10.0/24".into(), "z/a".into(), "z/c".into()]
            ),
        ]
    );
}
