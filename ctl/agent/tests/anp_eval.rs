//! The documented examples of Antrea's antrea-network-policy.md (issue 9 spec §6) through the
//! reference evaluator: expected allow / drop / reject per connection.

mod anp_common;

use anp_common::*;
use xvs_agent::anp::eval::{verdict, Conn, Verdict};
use xvs_agent::anp::types::NamespacedName;
use Verdict::{Allow as A, Drop as D, Reject as R};

const STAND_ALONE: &str = include_str!("data/antrea_doc/acnp-with-stand-alone-selectors.yaml");

const ISOLATE_ALL: &str = include_str!("data/antrea_doc/isolate-all-pods-in-namespace.yaml");
const DROP_TO_SERVICES: &str = include_str!("data/antrea_doc/acnp-drop-to-services.yaml");
const REJECT_PING: &str = include_str!("data/antrea_doc/acnp-reject-ping-request.yaml");
const APPLIED_TO_PER_RULE: &str = include_str!("data/antrea_doc/acnp-appliedto-per-rule.yaml");
const SERVICE_ACCOUNT: &str = include_str!("data/antrea_doc/acnp-service-account.yaml");
const ORG_AND_ENV: &str = include_str!("data/antrea_doc/isolation-based-on-org-and-env.yaml");
const EGRESS_CONTROL_PLANE: &str = include_str!("data/antrea_doc/egress-control-plane.yaml");

/// A companion ACNP dropping all ingress of the same Pods, so that an Allow is observable.
fn companion(tier: &str, prio: u32, applied: &str) -> String {
    format!(
        "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: companion}}\nspec:\n  priority: {prio}\n  tier: {tier}\n  appliedTo: {applied}\n  ingress: [{{action: Drop}}]\n"
    )
}

#[test]
fn ex02_stand_alone_selectors() {
    let m = roles().with(STAND_ALONE).model();
    expect(
        &m,
        &[
            ("default/fe", "default/db2", tcp(9001), A),
            ("default/other", "default/db2", tcp(80), A),
            ("default/db2", X1, tcp(5978), D),
            ("default/db2", X1, tcp(5979), A),
            ("default/db2", X2, tcp(5978), A),
            ("default/other", X1, tcp(5978), A),
        ],
    );
    let m = roles()
        .with(STAND_ALONE)
        .with(&companion(
            "securityops",
            10,
            "[{podSelector: {matchLabels: {role: db}}}, {namespaceSelector: {matchLabels: {env: prod}}}]",
        ))
        .model();
    expect(
        &m,
        &[
            ("default/fe", "default/db2", tcp(8080), A),
            ("default/fe", "default/db2", tcp(9000), A),
            ("default/fe", "default/db2", tcp(9001), D),
            ("default/fe", "prod/db1", tcp(6379), A),
            ("dbns/nondb1", "prod/db1", tcp(6379), A),
            ("default/nondb2", "prod/db1", tcp(6379), D),
            ("default/other", "prod/web", tcp(8080), D),
        ],
    );
}

const CLUSTER_GROUPS: &str = include_str!("data/antrea_doc/cluster-groups.yaml");
const ACNP_WITH_CLUSTER_GROUPS: &str =
    include_str!("data/antrea_doc/acnp-with-cluster-groups.yaml");

#[test]
fn ex03_cluster_groups_and_membership_change() {
    let d = companion("securityops", 10, "[{group: test-cg-with-db-selector}]");
    let m = roles()
        .with(CLUSTER_GROUPS)
        .with(ACNP_WITH_CLUSTER_GROUPS)
        .with(&d)
        .model();
    expect(
        &m,
        &[
            ("default/fe", "default/db2", tcp(8080), A),
            ("dbns/nondb1", "prod/db1", tcp(6379), D),
            ("default/db2", X1, tcp(5978), D),
            ("default/other", "prod/web", tcp(8080), A),
        ],
    );
    // The CG now selects role=web: enforcement moves without touching the ACNP.
    let moved = CLUSTER_GROUPS.replacen("role: db", "role: web", 1);
    let m = roles()
        .with(&moved)
        .with(ACNP_WITH_CLUSTER_GROUPS)
        .with(&d)
        .model();
    expect(
        &m,
        &[
            ("default/other", "prod/web", tcp(8080), D),
            ("default/fe", "prod/web", tcp(8080), A),
            ("default/other", "default/db2", tcp(8080), A),
            ("default/db2", X1, tcp(5978), A),
            ("prod/web", X1, tcp(5978), D),
        ],
    );
}

#[test]
fn ex04_isolate_all_pods_in_namespace() {
    let m = roles()
        .ns("iso", "app=no-network-access-required")
        .pod("iso", "p", "")
        .with(ISOLATE_ALL)
        .model();
    expect(
        &m,
        &[
            ("default/fe", "iso/p", tcp(80), D),
            ("default/fe", "iso/p", PING, D),
            ("iso/p", "default/fe", tcp(80), D),
            ("iso/p", X2, tcp(80), D),
            ("default/fe", "default/db2", tcp(80), A),
        ],
    );
}

const STRICT_NS: &str = include_str!("data/antrea_doc/strict-ns-isolation.yaml");

const K8S_A_FROM_B: &str = include_str!("data/antrea_doc/k8s-x-a-from-b.yaml");

#[test]
fn ex05_strict_namespace_isolation_then_k8s() {
    let m = xyz().with(STRICT_NS).model();
    expect(
        &m,
        &[
            ("x/a", "x/b", tcp(80), A),
            ("x/a", "y/a", tcp(80), D),
            ("x/a", "kube-system/dns", udp(53), D),
            ("kube-system/dns", "x/a", tcp(80), D),
            ("x/a", X2, tcp(80), A),
        ],
    );
    let m = xyz().with(STRICT_NS).with(K8S_A_FROM_B).model();
    expect(
        &m,
        &[
            ("x/b", "x/a", tcp(80), A),
            ("x/c", "x/a", tcp(80), D),
            ("y/b", "x/a", tcp(80), D),
        ],
    );
}

const DEFAULT_DENY: &str = include_str!("data/antrea_doc/default-cluster-deny.yaml");

#[test]
fn ex06_default_cluster_deny_with_k8s_and_application_allow() {
    let m = xyz().with(DEFAULT_DENY).model();
    expect(
        &m,
        &[
            ("x/a", "x/b", tcp(80), D),
            ("x/a", "y/a", PING, D),
            ("x/a", X2, tcp(80), D),
            (X2, "x/a", tcp(80), D),
        ],
    );
    let k8s = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x-all, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]\n  egress: [{to: [{podSelector: {matchLabels: {app: a}}}]}]\n";
    let self_y = "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: p1}\nspec:\n  priority: 1\n  appliedTo: [{namespaceSelector: {matchLabels: {ns: y}}}]\n  ingress: [{action: Allow, from: [{namespaces: {match: Self}}]}]\n  egress: [{action: Allow, to: [{namespaces: {match: Self}}]}]\n";
    let m = xyz().with(DEFAULT_DENY).with(k8s).model();
    expect(
        &m,
        &[
            ("x/b", "x/a", tcp(80), A),
            ("x/a", "x/b", tcp(80), D),
            ("y/a", "y/b", tcp(80), D),
        ],
    );
    let m = xyz().with(DEFAULT_DENY).with(k8s).with(self_y).model();
    expect(
        &m,
        &[("y/a", "y/b", tcp(80), A), ("y/a", "z/b", tcp(80), D)],
    );
}

#[test]
fn ex07_to_services_matches_the_service_not_the_endpoint() {
    let m = roles()
        .ns("svcns", "")
        .pod("svcns", "be", "app=be")
        .pod("default", "client2", "role=client")
        .with(DROP_TO_SERVICES)
        .model();
    let be = addr(&m, "svcns/be");
    let via = |src: &str, svc: &str| Conn {
        service: Some(NamespacedName {
            name: svc.to_string(),
            namespace: "svcns".to_string(),
        }),
        dst: be,
        ..conn(&m, src, "svcns/be", tcp(8080))
    };
    assert_eq!(verdict(&m, &via("prod/client", "svc1")), D);
    assert_eq!(
        verdict(&m, &conn(&m, "prod/client", "svcns/be", tcp(8080))),
        A
    );
    assert_eq!(verdict(&m, &via("prod/client", "svc2")), A);
    assert_eq!(verdict(&m, &via("default/client2", "svc1")), A);
}

#[test]
fn ex08_reject_ping_request_on_egress() {
    let m = roles().with(REJECT_PING).model();
    expect(
        &m,
        &[
            ("prod/server", X2, PING, R),
            ("prod/server", "default/fe", PING, R),
            ("default/fe", "prod/server", PING, A),
            ("prod/server", "default/fe", tcp(80), A),
        ],
    );
}

#[test]
fn ex14_applied_to_per_rule() {
    let m = Fx::new()
        .ns("x", "ns=x")
        .ns("y", "ns=y")
        .pod("x", "a", "app=client-east")
        .pod("x", "b", "app=client-west")
        .pod("y", "a", "app=db-restricted-west")
        .pod("y", "b", "app=db-restricted-east")
        .with(APPLIED_TO_PER_RULE)
        .model();
    expect(
        &m,
        &[
            ("x/a", "y/a", tcp(80), D),
            ("x/b", "y/b", tcp(80), D),
            ("x/a", "y/b", tcp(80), A),
            ("x/b", "y/a", tcp(80), A),
        ],
    );
    let p = m.anp.policies.values().next().expect("policy");
    assert_eq!(p.ingress[0].name, "ingress-drop-b33cc2f");
    assert_eq!(p.ingress[1].name, "ingress-drop-aa9f0e4");
}

const TEST_ANNP: &str = include_str!("data/antrea_doc/test-annp.yaml");

#[test]
fn ex15_antrea_network_policy_is_namespaced() {
    let m = roles().with(TEST_ANNP).model();
    expect(
        &m,
        &[
            ("default/db2", X1, tcp(5978), D),
            ("prod/db1", X1, tcp(5978), A),
        ],
    );
    let d = "apiVersion: crd.antrea.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: d, namespace: default}\nspec:\n  priority: 10\n  tier: securityops\n  appliedTo: [{podSelector: {matchLabels: {role: db}}}]\n  ingress: [{action: Drop}]\n";
    let m = roles().with(TEST_ANNP).with(d).model();
    expect(
        &m,
        &[
            ("default/fe", "default/db2", tcp(8080), A),
            ("dbns/fe3", "default/db2", tcp(8080), D),
            ("dbns/nondb1", "default/db2", tcp(8080), A),
            ("default/nondb2", "default/db2", tcp(8080), D),
            ("default/fe", "prod/db1", tcp(8080), A),
        ],
    );
}

#[test]
fn ex16_annp_with_groups_and_cross_namespace_group_is_not_realised() {
    let groups = "apiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {name: db, namespace: default}\nspec: {podSelector: {matchLabels: {role: db}}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {name: frontend, namespace: default}\nspec: {podSelector: {matchLabels: {role: frontend}}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {name: ip, namespace: default}\nspec: {ipBlocks: [{cidr: 10.0.10.0/24}]}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {name: wide, namespace: default}\nspec: {namespaceSelector: {}}\n";
    let annp = "apiVersion: crd.antrea.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: annp-with-groups, namespace: default}\nspec:\n  priority: 5\n  tier: securityops\n  appliedTo: [{group: db}]\n  ingress: [{action: Allow, from: [{group: frontend}], ports: [{protocol: TCP, port: 8080, endPort: 9000}]}, {action: Drop}]\n  egress: [{action: Drop, to: [{group: ip}], ports: [{protocol: TCP, port: 5978}]}]\n";
    let m = roles().with(groups).with(annp).model();
    expect(
        &m,
        &[
            ("default/fe", "default/db2", tcp(8080), A),
            ("dbns/nondb1", "default/db2", tcp(8080), D),
            ("default/db2", X1, tcp(5978), D),
            ("prod/db1", X1, tcp(5978), A),
        ],
    );
    let wide = annp.replace("appliedTo: [{group: db}]", "appliedTo: [{group: wide}]");
    let m = roles().with(groups).with(&wide).model();
    expect(&m, &[("default/db2", X1, tcp(5978), A)]);
}

const ALLOW_SELF_NS: &str = include_str!("data/antrea_doc/allow-self-ns.yaml");

const DENY_A_TO_B: &str = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: deny-self-ns-a-to-b
spec:
  priority: 1
  tier: securityops
  appliedTo:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          app: b
  ingress:
    - action: Deny
      from:
        - namespaces:
            match: Self
          podSelector:
            matchLabels:
              app: a
"#;

#[test]
fn ex18_19_self_namespace_examples() {
    // The literal doc YAML uses `Deny`, which the schema refuses.
    let lit = xvs_agent::model::parse_file("doc.yaml", ALLOW_SELF_NS).expect_err("Deny");
    assert!(
        lit.msg
            .contains("spec.ingress[1].action: Unsupported value: \"Deny\""),
        "{lit}"
    );
    let allow_self = ALLOW_SELF_NS.replace("Deny", "Drop");
    let a_to_b = DENY_A_TO_B.replace("Deny", "Drop");
    let m = xyz().with(&allow_self).model();
    expect(
        &m,
        &[
            ("x/a", "x/b", tcp(80), A),
            ("x/b", "x/a", tcp(80), A),
            ("x/a", "y/a", tcp(80), D),
            ("x/a", X2, tcp(80), D),
        ],
    );
    let m = xyz().with(&a_to_b).model();
    expect(
        &m,
        &[
            ("x/a", "x/b", tcp(80), D),
            ("y/a", "y/b", tcp(80), D),
            ("x/a", "x/c", tcp(80), A),
            ("y/a", "x/b", tcp(80), A),
        ],
    );
    let m = xyz().with(&allow_self).with(&a_to_b).model();
    expect(
        &m,
        &[
            ("x/a", "x/b", tcp(80), D),
            ("x/a", "x/c", tcp(80), A),
            ("x/a", "y/c", tcp(80), D),
            ("x/b", "x/a", tcp(80), A),
        ],
    );
}

const ISOLATION_BASED_ON_ORG: &str = include_str!("data/antrea_doc/isolation-based-on-org.yaml");

/// The doc writes `action: Deny`, which the schema refuses; the evaluator runs it as `Drop`.
fn org_isolation() -> String {
    ISOLATION_BASED_ON_ORG.replace("action: Deny", "action: Drop")
}

#[test]
fn ex20_isolation_based_on_org() {
    let m = org().with(&org_isolation()).model();
    let base = [
        ("accounting1/p", "accounting2/p", tcp(80), A),
        ("accounting2/q", "accounting1/p", tcp(80), A),
        ("sales1/p", "sales2/q", tcp(80), A),
        ("accounting1/p", "sales1/p", tcp(80), D),
        ("kube-system/p", "accounting1/p", tcp(80), D),
        ("accounting1/p", "kube-system/p", tcp(80), D),
        ("accounting1/p", X2, tcp(80), D),
        ("kube-system/p", "kube-system/q", tcp(80), A),
    ];
    expect(&m, &base);
    let hr = org()
        .ns("hr1", "org=hr")
        .pod("hr1", "p", "")
        .with(&org_isolation());
    let m = hr.model();
    expect(
        &m,
        &[
            ("hr1/p", "sales1/p", tcp(80), D),
            ("sales1/p", "hr1/p", tcp(80), D),
            ("accounting1/p", "hr1/p", tcp(80), D),
        ],
    );
    let m = org()
        .ns("hr1", "org=sales")
        .pod("hr1", "p", "")
        .with(&org_isolation())
        .model();
    expect(
        &m,
        &[
            ("hr1/p", "sales1/p", tcp(80), A),
            ("sales2/q", "hr1/p", tcp(80), A),
            ("accounting1/p", "hr1/p", tcp(80), D),
        ],
    );
    let m = org()
        .with(&org_isolation().replace("[org]", "[org, region]"))
        .model();
    expect(
        &m,
        &[
            ("accounting1/p", "accounting2/p", tcp(80), D),
            ("accounting1/p", "accounting1/q", tcp(80), A),
        ],
    );
}

#[test]
fn ex21_isolation_based_on_org_and_env_follows_the_code() {
    let acnp = &ORG_AND_ENV.replace("action: Deny", "action: Drop");
    let m = org()
        .ns("dev", "org=dev,env=test")
        .pod("dev", "p", "")
        .pod("dev", "q", "")
        .with(acnp)
        .model();
    expect(
        &m,
        &[
            ("accounting1/p", "accounting1/q", tcp(80), D),
            ("kube-system/p", "sales1/p", tcp(80), D),
            ("accounting1/p", X2, tcp(80), A),
            ("dev/p", "dev/q", tcp(80), A),
            ("sales1/p", "dev/p", tcp(80), D),
        ],
    );
}

#[test]
fn ex24_node_selector_peer_covers_node_and_gateway_addresses() {
    let m = Fx::new()
        .ns("default", "")
        .pod("default", "app", "app=antrea-test-app")
        .with(EGRESS_CONTROL_PLANE)
        .model();
    expect(
        &m,
        &[
            ("default/app", "192.168.0.1", tcp(6443), D),
            ("default/app", "10.10.0.1", tcp(6443), D),
            ("default/app", "192.168.0.1", tcp(22), A),
            ("192.168.0.1", "default/app", tcp(80), A),
        ],
    );
}

#[test]
fn ex25_service_account_peers() {
    let m = Fx::new()
        .ns("ns-1", "")
        .ns("ns-2", "")
        .pod_sa("ns-1", "s1", "", "sa-1")
        .pod_sa("ns-2", "s2", "", "sa-2")
        .pod_sa("ns-2", "s3", "", "sa-3")
        .with(SERVICE_ACCOUNT)
        .model();
    expect(
        &m,
        &[
            ("ns-1/s1", "ns-2/s2", tcp(80), D),
            ("ns-1/s1", "ns-2/s3", tcp(80), A),
            ("ns-2/s2", "ns-1/s1", tcp(80), A),
        ],
    );
}

#[test]
fn pass_then_k8s_then_baseline() {
    let pols = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: pass-self}
spec:
  priority: 1
  tier: securityops
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  ingress: [{action: Pass, from: [{namespaces: {match: Self}}]}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: app-drop}
spec:
  priority: 1
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  ingress: [{action: Drop}]
"#;
    let baseline = "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: base}\nspec:\n  priority: 1\n  tier: baseline\n  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]\n  ingress: [{action: Drop}]\n";
    let m = xyz().with(pols).with(K8S_A_FROM_B).with(baseline).model();
    expect(
        &m,
        &[
            ("x/b", "x/a", tcp(80), A),
            ("x/c", "x/a", tcp(80), D),
            ("x/a", "x/b", tcp(80), D),
            ("y/a", "x/b", tcp(80), D),
        ],
    );
    let m = xyz().with(pols).with(K8S_A_FROM_B).model();
    expect(
        &m,
        &[("x/a", "x/b", tcp(80), A), ("y/a", "x/b", tcp(80), D)],
    );
}

#[test]
fn antrea_allow_overrides_k8s_isolation_and_does_not_isolate() {
    let allow = "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: allow-c}\nspec:\n  priority: 1\n  appliedTo: [{podSelector: {matchLabels: {app: a}}}]\n  ingress: [{action: Allow, from: [{podSelector: {matchLabels: {app: c}}}]}]\n";
    let m = xyz().with(K8S_A_FROM_B).with(allow).model();
    expect(
        &m,
        &[
            ("x/c", "x/a", tcp(80), A),
            ("x/b", "x/a", tcp(80), A),
            ("y/a", "x/a", tcp(80), D),
            ("x/b", "y/a", tcp(80), A),
        ],
    );
}
