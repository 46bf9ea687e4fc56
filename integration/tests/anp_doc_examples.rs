//! The example policies of Antrea's antrea-network-policy.md as test cases with real traffic
//! (spec §6): one xvsd node, Pods in labelled namespaces on AF_XDP veths, external hosts
//! behind the gateway, the agent reading the manifests; each case applies the doc's YAML and
//! checks a table of connections (allowed / dropped / rejected), then removes it. Each test
//! runs all its cases and reports every failing one.

use anyhow::{bail, Context, Result};
use xvs_integration::anp_fixture::{Cases, Cluster, PodDef, Proto, Row, Verdict};
use xvs_integration::is_root;

const T: Proto = Proto::Tcp;
const U: Proto = Proto::Udp;
const I: Proto = Proto::Icmp;
const A: Verdict = Verdict::Allow;
const D: Verdict = Verdict::Drop;
const R: Verdict = Verdict::Reject;

fn check(c: &Cluster, what: &str, rows: &[Row]) -> Result<()> {
    c.check(what, rows)
}

/// Checks `alone` under the case's manifests, then `with` after adding a companion Drop (which
/// makes the case's Allow rules observable), and removes the companion again.
fn check_alone_then_with_companion(
    c: &Cluster,
    what: &str,
    alone: &[Row],
    (companion, yaml): (&str, &str),
    with: &[Row],
) -> Result<()> {
    check(c, &format!("{what} alone"), alone)?;
    c.apply(companion, yaml)?;
    let r = check(c, &format!("{what} + companion Drop"), with);
    c.remove(companion)?;
    r
}

// ---------------------------------------------------------------- XYZ fixture

fn xyz() -> Result<Cluster> {
    let mut pods = Vec::new();
    for ns in ["x", "y", "z"] {
        for p in ["a", "b", "c"] {
            pods.push(PodDef::new(ns, p, &format!("app={p}")));
        }
    }
    pods.push(PodDef::new("kube-system", "dns", "k8s-app=kube-dns"));
    Cluster::start(
        "dx",
        &[
            ("x", "ns=x"),
            ("y", "ns=y"),
            ("z", "ns=z"),
            ("kube-system", ""),
        ],
        &pods,
        "",
    )
}

const STRICT_NS_ISOLATION: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/strict-ns-isolation.yaml");

const K8S_X_A_FROM_B: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/k8s-x-a-from-b.yaml");

const DEFAULT_CLUSTER_DENY: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/default-cluster-deny.yaml");

const K8S_X_ALL_B_TO_A: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-to-a, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}}]
  egress:
  - to: [{podSelector: {matchLabels: {app: a}}}]
"#;

const Y_ALLOW_SELF: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: y-allow-self}
spec:
  priority: 1
  tier: application
  appliedTo: [{namespaceSelector: {matchLabels: {ns: y}}}]
  ingress: [{action: Allow, from: [{namespaces: {match: Self}}]}]
  egress: [{action: Allow, to: [{namespaces: {match: Self}}]}]
"#;

const APPLIED_TO_PER_RULE: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/acnp-appliedto-per-rule.yaml");

const ALLOW_SELF_NS: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/allow-self-ns.yaml");

const DENY_SELF_NS_A_TO_B: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: deny-self-ns-a-to-b
spec:
  priority: 1
  tier: securityops
  appliedTo:
    - namespaceSelector: {}
  egress:
    - action: Deny
      to:
        - namespaces:
            match: Self
          podSelector:
            matchLabels:
              app: b
"#;

/// The doc's samples with `action: Deny` are refused by the schema; the cases run them with
/// `Drop` (spec §2.1).
fn deny_to_drop(yaml: &str) -> String {
    yaml.replace("action: Deny", "action: Drop")
}

const PASS_SELF_X: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: pass-self-x}
spec:
  priority: 1
  tier: securityops
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  ingress: [{action: Pass, from: [{namespaces: {match: Self}}], name: PassSelf}]
"#;

const DROP_ALL_X: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: drop-all-x}
spec:
  priority: 1
  tier: application
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  ingress: [{action: Drop, name: DropAll}]
"#;

const BASELINE_DROP_X: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: baseline-drop-x}
spec:
  priority: 1
  tier: baseline
  appliedTo: [{namespaceSelector: {matchLabels: {ns: x}}}]
  ingress: [{action: Drop, name: BaselineDrop}]
"#;

#[test]
fn doc_examples_xyz() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let c = xyz()?;
    let mut cases = Cases::new(&c);
    cases.table(
        "before any policy",
        &[],
        "open",
        &[
            ("x/a", "y/a", T, 80, A),
            ("x/a", "x/b", U, 53, A),
            ("x/a", "kube-system/dns", I, 0, A),
            ("x/a", "X2", T, 80, A),
            ("x/a", "X1", U, 53, A),
        ],
    );
    cases.run(
        "#5 strict-ns-isolation",
        &[("10-strict", STRICT_NS_ISOLATION)],
        |c| {
            check(
                c,
                "#5",
                &[
                    ("x/a", "x/b", T, 80, A),
                    ("x/a", "x/b", U, 53, A),
                    ("x/a", "x/c", I, 0, A),
                    ("x/a", "y/a", T, 80, D),
                    ("x/a", "y/a", U, 53, D),
                    ("y/b", "z/c", I, 0, D),
                    ("x/a", "kube-system/dns", U, 53, D),
                    ("kube-system/dns", "x/a", T, 80, D),
                    ("x/a", "X2", T, 80, A),
                ],
            )?;
            c.apply("20-k8s", K8S_X_A_FROM_B)?;
            let r = check(
                c,
                "#5 + K8s NP in x",
                &[
                    ("x/b", "x/a", T, 80, A),
                    ("x/c", "x/a", T, 80, D),
                    ("y/b", "x/a", T, 80, D),
                    ("x/a", "x/c", T, 80, A),
                ],
            );
            c.remove("20-k8s")?;
            r
        },
    );
    cases.run(
        "#6 default-cluster-deny",
        &[("10-deny", DEFAULT_CLUSTER_DENY)],
        |c| {
            check(
                c,
                "#6",
                &[
                    ("x/a", "x/b", T, 80, D),
                    ("x/a", "y/a", U, 53, D),
                    ("y/c", "z/a", I, 0, D),
                    ("kube-system/dns", "x/a", T, 80, D),
                    ("x/a", "X2", T, 80, D),
                ],
            )?;
            c.apply("20-k8s", K8S_X_ALL_B_TO_A)?;
            let r = check(
                c,
                "#6 + K8s NP in x",
                &[
                    ("x/b", "x/a", T, 80, A),
                    ("x/a", "x/b", T, 80, D),
                    ("y/a", "y/b", T, 80, D),
                ],
            )
            .and_then(|_| {
                c.apply("30-y-self", Y_ALLOW_SELF)?;
                check(
                    c,
                    "#6 + Allow Self in y",
                    &[
                        ("y/a", "y/b", T, 80, A),
                        ("y/a", "x/b", T, 80, D),
                        ("x/b", "x/a", T, 80, A),
                    ],
                )
            });
            let _ = c.remove("30-y-self");
            c.remove("20-k8s")?;
            r
        },
    );
    cases.run("Pass -> K8s NP -> baseline", &[], |c| {
        c.apply("10-pass", PASS_SELF_X)?;
        c.apply("11-drop", DROP_ALL_X)?;
        c.apply("12-k8s", K8S_X_A_FROM_B)?;
        c.apply("13-baseline", BASELINE_DROP_X)?;
        let r = check(
            c,
            "pass",
            &[
                ("x/b", "x/a", T, 80, A),
                ("x/c", "x/a", T, 80, D),
                ("x/a", "x/b", T, 80, D),
                ("y/a", "x/b", T, 80, D),
            ],
        )
        .and_then(|_| {
            c.remove("13-baseline")?;
            check(
                c,
                "pass, baseline removed",
                &[
                    ("x/a", "x/b", T, 80, A),
                    ("x/c", "x/a", T, 80, D),
                    ("y/a", "x/b", T, 80, D),
                ],
            )
        });
        let _ = c.remove("13-baseline");
        for f in ["12-k8s", "11-drop", "10-pass"] {
            c.remove(f)?;
        }
        r
    });
    cases.run("#18/#19 allow-self-ns, deny-self-ns-a-to-b", &[], |c| {
        let refused = c.apply_refused("10-literal", ALLOW_SELF_NS)?;
        c.remove_quietly("10-literal")?;
        if !refused.contains("spec.ingress[1].action: Unsupported value: \"Deny\"") {
            bail!("literal doc YAML refused with an unexpected message: {refused}");
        }
        c.apply("11-deny-a-to-b", &deny_to_drop(DENY_SELF_NS_A_TO_B))?;
        let r = check(
            c,
            "#19 alone",
            &[
                ("x/a", "x/b", T, 80, D),
                ("y/a", "y/b", T, 80, D),
                ("x/a", "x/c", T, 80, A),
                ("y/a", "x/b", T, 80, A),
            ],
        )
        .and_then(|_| {
            c.apply("12-allow-self", &deny_to_drop(ALLOW_SELF_NS))?;
            check(
                c,
                "#18 + #19",
                &[
                    ("x/a", "x/c", T, 80, A),
                    ("x/a", "x/b", T, 80, D),
                    ("x/b", "x/a", T, 80, A),
                    ("x/a", "y/a", T, 80, D),
                    ("x/a", "X2", T, 80, D),
                ],
            )
        });
        let _ = c.remove("12-allow-self");
        c.remove("11-deny-a-to-b")?;
        r
    });
    cases.run("#14 acnp-appliedto-per-rule", &[], |c| {
        c.set_pod_labels("x/a", "app=client-east")?;
        c.set_pod_labels("x/b", "app=client-west")?;
        c.set_pod_labels("y/a", "app=db-restricted-west")?;
        c.set_pod_labels("y/b", "app=db-restricted-east")?;
        c.apply("10-per-rule", APPLIED_TO_PER_RULE)?;
        let r = check(
            c,
            "#14",
            &[
                ("x/a", "y/a", T, 80, D),
                ("x/b", "y/b", T, 80, D),
                ("x/a", "y/b", T, 80, A),
                ("x/b", "y/a", T, 80, A),
                ("x/c", "y/a", T, 80, A),
            ],
        );
        c.remove("10-per-rule")?;
        r
    });
    cases.finish()
}

// ---------------------------------------------------------------- ORG fixture

const ISOLATION_BASED_ON_ORG: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/isolation-based-on-org.yaml");

#[test]
fn doc_examples_org() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let namespaces = [
        ("kube-system", ""),
        ("accounting1", "org=accounting,region=us-west"),
        ("accounting2", "org=accounting,region=us-east"),
        ("sales1", "org=sales,region=us-west"),
        ("sales2", "org=sales,region=us-east"),
    ];
    let mut pods: Vec<PodDef> = namespaces
        .iter()
        .map(|(ns, _)| PodDef::new(ns, "p", "app=p"))
        .collect();
    pods.push(PodDef::new("kube-system", "q", "app=q"));
    pods.push(PodDef::new("accounting1", "q", "app=q"));
    let c = Cluster::start("do", &namespaces, &pods, "")?;
    let mut cases = Cases::new(&c);
    cases.run("#20 isolation-based-on-org", &[], |c| {
        let refused = c.apply_refused("10-literal", ISOLATION_BASED_ON_ORG)?;
        c.remove_quietly("10-literal")?;
        if !refused.contains("spec.ingress[1].action: Unsupported value: \"Deny\"") {
            bail!("literal doc YAML refused with an unexpected message: {refused}");
        }
        c.apply("11-org", &deny_to_drop(ISOLATION_BASED_ON_ORG))?;
        let r = (|| -> Result<()> {
            check(
                c,
                "#20",
                &[
                    ("accounting1/p", "accounting2/p", T, 80, A),
                    ("accounting2/p", "accounting1/p", U, 53, A),
                    ("accounting1/p", "accounting1/q", I, 0, A),
                    ("sales1/p", "sales2/p", T, 80, A),
                    ("sales2/p", "sales1/p", I, 0, A),
                    ("accounting1/p", "sales1/p", T, 80, D),
                    ("sales2/p", "accounting2/p", U, 53, D),
                    ("kube-system/p", "accounting1/p", T, 80, D),
                    ("accounting1/p", "kube-system/p", T, 80, D),
                    ("accounting1/p", "X2", T, 80, D),
                    ("kube-system/p", "kube-system/q", T, 80, A),
                    ("kube-system/p", "X2", T, 80, A),
                ],
            )?;
            // A Namespace moving to another org follows it without touching the policy.
            c.set_namespace_labels("sales2", "org=hr,region=us-east")?;
            check(
                c,
                "#20, sales2 now org=hr",
                &[
                    ("sales1/p", "sales2/p", T, 80, D),
                    ("sales2/p", "accounting1/p", T, 80, D),
                    ("sales2/p", "sales1/p", T, 80, D),
                    ("sales1/p", "sales1/p", T, 80, A),
                ],
            )?;
            c.set_namespace_labels("sales2", "org=accounting,region=us-east")?;
            check(
                c,
                "#20, sales2 now org=accounting",
                &[
                    ("accounting1/p", "sales2/p", T, 80, A),
                    ("sales2/p", "accounting2/p", T, 80, A),
                    ("sales1/p", "sales2/p", T, 80, D),
                ],
            )?;
            c.set_namespace_labels("sales2", "org=sales,region=us-east")?;
            c.apply(
                "11-org",
                &deny_to_drop(ISOLATION_BASED_ON_ORG).replace("[org]", "[org, region]"),
            )?;
            check(
                c,
                "#20 with sameLabels [org, region]",
                &[
                    ("accounting1/p", "accounting2/p", T, 80, D),
                    ("accounting1/p", "accounting1/q", T, 80, A),
                    ("sales1/p", "sales2/p", T, 80, D),
                ],
            )
        })();
        c.remove("11-org")?;
        r
    });
    cases.run("#21 isolation-based-on-org-and-env", &[], |c| {
        let refused = c.apply_refused("10-literal", ORG_AND_ENV)?;
        c.remove_quietly("10-literal")?;
        expect_msg(
            &refused,
            "spec.ingress[1].action: Unsupported value: \"Deny\"",
        )?;
        c.apply("11-org-env", &deny_to_drop(ORG_AND_ENV))?;
        // Spec DECISION (Antrea's code and e2e, not the doc's "no effect"): the catch-all
        // Drop applies to every appliedTo Namespace; only sameLabels yields nothing where the
        // keys are missing.
        let r = check(
            c,
            "#21 alone",
            &[
                ("accounting1/p", "accounting1/q", T, 80, D),
                ("accounting1/p", "accounting2/p", T, 80, D),
                ("kube-system/p", "kube-system/q", T, 80, D),
                ("accounting1/p", "X2", T, 80, A),
            ],
        )
        .and_then(|_| {
            c.set_namespace_labels("accounting1", "org=dev,env=test")?;
            check(
                c,
                "#21 with accounting1 as org=dev,env=test",
                &[
                    ("accounting1/p", "accounting1/q", T, 80, A),
                    ("accounting1/q", "accounting1/p", I, 0, A),
                    ("sales1/p", "accounting1/p", T, 80, D),
                    ("accounting1/p", "sales1/p", T, 80, D),
                ],
            )
        });
        c.set_namespace_labels("accounting1", "org=accounting,region=us-west")?;
        c.remove("11-org-env")?;
        r
    });
    cases.run(
        "#1 Tier mytier (admission and OpenFlow priority)",
        &[],
        |c| {
            c.stage("10-tier", MYTIER)?;
            c.apply("11-acnp", IN_MYTIER)?;
            let r = (|| -> Result<()> {
                // Custom tier 10, policy priority 1, rule 0: 65000 - (200*10 + 20*1) = 62980.
                let table = xvs_agent::pipeline::t::AP_INGRESS.to_string();
                let flows = c
                    .xvsd
                    .ofctl(&[], "dump-flows", &[&format!("table={table}")])?;
                if !flows
                    .lines()
                    .any(|l| l.contains("priority=62980") && l.contains("conj_id="))
                {
                    bail!("no action flow at 62980:\n{flows}");
                }
                let enforced = [
                    ("accounting1/p", "sales1/p", T, 80, D),
                    ("sales1/p", "sales2/p", T, 80, A),
                ];
                check(c, "#1 mytier", &enforced)?;
                let msg = c.apply_refused("12-tier", &MYTIER.replace("mytier", "other"))?;
                c.remove_quietly("12-tier")?;
                expect_msg(&msg, "tier other priority 10 overlaps with existing Tier")?;
                let msg = c.apply_refused(
                    "13-tier",
                    &MYTIER.replace("mytier", "high").replace("10", "251"),
                )?;
                c.remove_quietly("13-tier")?;
                expect_msg(&msg, "tier high priority 251 is reserved")?;
                let msg = c.apply_refused("10-tier", &MYTIER.replace("10", "11"))?;
                expect_msg(&msg, "update to Tier priority is not allowed")?;
                c.stage("10-tier", MYTIER)?;
                // Deleting the tier while the ACNP uses it is refused; the policy stays.
                c.remove_quietly("10-tier")?;
                c.agent.wait_log(
                    "tier mytier is referenced by 1 Antrea ClusterNetworkPolicies",
                    1,
                )?;
                check(c, "#1 after the refused deletion", &enforced)
            })();
            c.remove("11-acnp")?;
            let _ = c.remove_quietly("10-tier");
            r
        },
    );
    cases.run("#27 ClusterGroups: nesting, missing child, refusals", &[], |c| {
        c.stage("10-cgs", CG_NESTED)?;
        c.apply("11-acnp", USES_NESTED)?;
        let r = (|| -> Result<()> {
            check(
                c,
                "#27 child cg-missing absent",
                &[
                    ("accounting1/p", "accounting1/q", T, 80, D),
                    ("kube-system/p", "kube-system/q", T, 80, D),
                    ("accounting1/q", "accounting1/p", T, 80, A),
                    ("accounting1/p", "sales1/p", T, 80, A),
                ],
            )?;
            c.apply("12-child", CG_MISSING_CHILD)?;
            check(
                c,
                "#27 child cg-missing created",
                &[
                    ("accounting1/p", "sales1/p", T, 80, D),
                    ("accounting1/p", "accounting1/q", T, 80, D),
                    ("accounting1/q", "accounting1/p", T, 80, A),
                ],
            )?;
            let msg = c.apply_refused("13-bad", CG_TWO_SELECTORS)?;
            c.remove_quietly("13-bad")?;
            expect_msg(
                &msg,
                "At most one of podSelector, nodeSelector, externalEntitySelector, serviceReference, ipBlock, ipBlocks or childGroups can be set for a ClusterGroup",
            )?;
            let msg = c.apply_refused("14-deep", CG_TOO_DEEP)?;
            c.remove_quietly("14-deep")?;
            expect_msg(
                &msg,
                "cannot set ClusterGroup cg-nested as childGroup, who has 2 childGroups itself",
            )
        })();
        c.remove("11-acnp")?;
        let _ = c.remove_quietly("12-child");
        let _ = c.remove_quietly("10-cgs");
        r
    });
    cases.finish()
}

fn expect_msg(got: &str, want: &str) -> Result<()> {
    if !got.contains(want) {
        bail!("refusal {got:?} lacks {want:?}");
    }
    Ok(())
}

const ORG_AND_ENV: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/isolation-based-on-org-and-env.yaml");

const MYTIER: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: Tier
metadata:
  name: mytier
spec:
  priority: 10
  description: "my custom tier"
"#;

const IN_MYTIER: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: in-mytier}
spec:
  priority: 1
  tier: mytier
  appliedTo: [{namespaceSelector: {matchLabels: {org: sales}}}]
  ingress: [{action: Drop, from: [{namespaceSelector: {matchLabels: {org: accounting}}}], name: DropAccounting}]
"#;

const CG_NESTED: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: cg-sel}
spec:
  podSelector: {matchLabels: {app: q}}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: cg-nested}
spec:
  childGroups: [cg-sel, cg-missing]
"#;

const CG_MISSING_CHILD: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: cg-missing}
spec:
  namespaceSelector: {matchLabels: {org: sales}}
"#;

const USES_NESTED: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: uses-nested}
spec:
  priority: 1
  tier: securityops
  appliedTo: [{group: cg-nested}]
  ingress: [{action: Drop, from: [{namespaceSelector: {}}], name: DropAll}]
"#;

const CG_TWO_SELECTORS: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: cg-two}
spec:
  podSelector: {matchLabels: {app: p}}
  ipBlocks: [{cidr: 10.0.10.0/24}]
"#;

const CG_TOO_DEEP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterGroup
metadata: {name: cg-deep}
spec:
  childGroups: [cg-nested]
"#;

// ---------------------------------------------------------------- R fixture

fn r_fixture() -> Result<Cluster> {
    let pods = [
        PodDef::new("prod", "db1", "role=db"),
        PodDef::new("default", "db2", "role=db"),
        PodDef::new("prod", "web", "role=web"),
        PodDef::new("prod", "client", "role=client"),
        PodDef::new("prod", "server", "role=server"),
        PodDef::new("default", "fe", "role=frontend"),
        PodDef::new("dbns", "fe3", "role=frontend"),
        PodDef::new("dbns", "nondb1", "role=nondb"),
        PodDef::new("default", "nondb2", "role=nondb"),
        PodDef::new("default", "other", ""),
        PodDef::new("kube-system", "dns", "k8s-app=kube-dns"),
        PodDef::new("svcns", "be", "app=be"),
        PodDef::new("default", "client2", "role=client"),
        PodDef::new("iso", "p", "app=p"),
        PodDef::new("ns-1", "s1", "app=s").sa("sa-1"),
        PodDef::new("ns-2", "s2", "app=s").sa("sa-2"),
        PodDef::new("ns-2", "s3", "app=s").sa("sa-3"),
    ];
    let namespaces = [
        ("prod", "env=prod"),
        ("dbns", "role=db"),
        ("default", ""),
        ("kube-system", ""),
        ("svcns", ""),
        ("iso", "app=no-network-access-required"),
        ("ns-1", ""),
        ("ns-2", ""),
    ];
    Cluster::start("dr", &namespaces, &pods, SERVICES)
}

/// Two Services on the same backend svcns/be (spec §6 #7, names made valid).
const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: svcns}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc1-1, namespace: svcns, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
- addresses: [10.10.0.13]
---
apiVersion: v1
kind: Service
metadata: {name: svc2, namespace: svcns}
spec:
  clusterIP: 10.96.0.51
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc2-1, namespace: svcns, labels: {kubernetes.io/service-name: svc2}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
- addresses: [10.10.0.13]
"#;

const STAND_ALONE_SELECTORS: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/acnp-with-stand-alone-selectors.yaml");

/// The companion Drop that makes #2's Allow observable (Antrea rules do not isolate).
const STAND_ALONE_DROP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: companion-drop}
spec:
  priority: 10
  tier: securityops
  appliedTo:
    - podSelector: {matchLabels: {role: db}}
    - namespaceSelector: {matchLabels: {env: prod}}
  ingress: [{action: Drop, name: DropRest}]
"#;

const CLUSTER_GROUPS: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/cluster-groups.yaml");

const ACNP_WITH_CLUSTER_GROUPS: &str = concat!(
    include_str!("../../ctl/agent/tests/data/antrea_doc/acnp-with-cluster-groups.yaml"),
    r#"---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: companion-drop}
spec:
  priority: 10
  tier: securityops
  appliedTo: [{group: test-cg-with-db-selector}]
  ingress: [{action: Drop, name: DropRest}]
"#
);

const ISOLATE_ALL: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/isolate-all-pods-in-namespace.yaml");

const DROP_TO_SERVICES: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/acnp-drop-to-services.yaml");

const REJECT_PING: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/acnp-reject-ping-request.yaml");

const TEST_ANNP: &str = include_str!("../../ctl/agent/tests/data/antrea_doc/test-annp.yaml");

/// #15/#16's companion: an ANNP in default dropping the rest of db's ingress.
const ANNP_DROP_DB: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: companion-drop, namespace: default}
spec:
  priority: 10
  tier: securityops
  appliedTo: [{podSelector: {matchLabels: {role: db}}}]
  ingress: [{action: Drop, name: DropRest}]
"#;

const ANNP_WITH_GROUPS: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: Group
metadata: {name: test-grp-with-db-selector, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
---
apiVersion: crd.antrea.io/v1beta1
kind: Group
metadata: {name: test-grp-with-frontend-selector, namespace: default}
spec:
  podSelector: {matchLabels: {role: frontend}}
---
apiVersion: crd.antrea.io/v1beta1
kind: Group
metadata: {name: test-grp-with-ip-block, namespace: default}
spec:
  ipBlocks: [{cidr: 10.0.10.0/24}]
---
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata:
  name: annp-with-groups
  namespace: default
spec:
  priority: 5
  tier: securityops
  appliedTo:
    - group: "test-grp-with-db-selector"
  ingress:
    - action: Allow
      from:
        - group: "test-grp-with-frontend-selector"
      ports:
        - protocol: TCP
          port: 8080
          endPort: 9000
      name: AllowFromFrontend
  egress:
    - action: Drop
      to:
        - group: "test-grp-with-ip-block"
      ports:
        - protocol: TCP
          port: 5978
      name: DropToThirdParty
"#;

const ANNP_BY_NAME: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata:
  name: test-annp-by-name
  namespace: default
spec:
  priority: 5
  tier: application
  appliedTo:
    - podSelector: {}
  egress:
    - action: Allow
      to:
        - podSelector:
            matchLabels:
              k8s-app: kube-dns
          namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
      ports:
        - protocol: TCP
          port: 53
        - protocol: UDP
          port: 53
      name: AllowToCoreDNS
---
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: companion-drop, namespace: default}
spec:
  priority: 10
  tier: application
  appliedTo: [{podSelector: {}}]
  egress: [{action: Drop, name: DropRest}]
"#;

const ANNP_REJECT_TCP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: reject-tcp-policy, namespace: default}
spec:
  priority: 5
  tier: application
  appliedTo: [{podSelector: {matchLabels: {role: db}}}]
  ingress: [{action: Reject, ports: [{protocol: TCP, port: 80}], name: RejectTCPRequest}]
"#;

const SERVICE_ACCOUNT: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/acnp-service-account.yaml");

/// The doc's ordering example: ACNP1 (application, 10), ANNP1 (application, 15) and ACNP3
/// (emergency, 20), two ingress rules each.
const ORDERING: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp1}
spec:
  priority: 10
  tier: application
  appliedTo: [{podSelector: {matchLabels: {role: web}}}]
  ingress:
  - {action: Allow, from: [{podSelector: {matchLabels: {role: frontend}}}], name: ir1-1}
  - {action: Drop, name: ir1-2}
---
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: annp1, namespace: prod}
spec:
  priority: 15
  tier: application
  appliedTo: [{podSelector: {matchLabels: {role: web}}}]
  ingress:
  - {action: Allow, from: [{podSelector: {matchLabels: {role: client}}}], name: ir2-1}
  - {action: Drop, name: ir2-2}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp3}
spec:
  priority: 20
  tier: emergency
  appliedTo: [{podSelector: {matchLabels: {role: web}}}]
  ingress:
  - {action: Allow, from: [{podSelector: {matchLabels: {role: nondb}}}], name: ir3-1}
  - {action: Drop, from: [{podSelector: {matchLabels: {role: client}}}], name: ir3-2}
"#;

#[test]
fn doc_examples_r() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let c = r_fixture()?;
    let mut cases = Cases::new(&c);
    cases.run(
        "#2 acnp-with-stand-alone-selectors",
        &[("10-acnp", STAND_ALONE_SELECTORS)],
        |c| {
            check_alone_then_with_companion(
                c,
                "#2",
                &[
                    ("default/db2", "X1", T, 5978, D),
                    ("default/db2", "X1", T, 6379, A),
                    ("default/db2", "X2", T, 5978, A),
                    ("default/other", "X1", T, 5978, A),
                    ("prod/web", "X1", T, 5978, D),
                    ("default/other", "default/db2", T, 80, A),
                    ("default/nondb2", "prod/db1", T, 6379, A),
                ],
                ("11-drop", STAND_ALONE_DROP),
                &[
                    ("default/fe", "default/db2", T, 8080, A),
                    ("default/fe", "default/db2", T, 9000, A),
                    ("default/fe", "default/db2", T, 9001, D),
                    ("default/fe", "prod/db1", T, 6379, A),
                    ("dbns/nondb1", "prod/db1", T, 6379, A),
                    ("default/nondb2", "prod/db1", T, 6379, D),
                    ("default/other", "prod/web", T, 8080, D),
                    ("default/other", "default/nondb2", T, 8080, A),
                ],
            )
        },
    );
    cases.run(
        "#3 acnp-with-cluster-groups",
        &[
            ("10-cgs", CLUSTER_GROUPS),
            ("11-acnp", ACNP_WITH_CLUSTER_GROUPS),
        ],
        |c| {
            check(
                c,
                "#3",
                &[
                    ("default/fe", "default/db2", T, 8080, A),
                    ("dbns/fe3", "prod/db1", T, 6379, A),
                    ("dbns/nondb1", "prod/db1", T, 6379, D),
                    ("default/db2", "X1", T, 5978, D),
                    ("prod/web", "X1", T, 5978, A),
                    ("default/other", "prod/web", T, 8080, A),
                ],
            )?;
            // The db group now selects web: enforcement moves without touching the ACNP.
            c.apply(
                "10-cgs",
                &CLUSTER_GROUPS.replacen("role: db", "role: web", 1),
            )?;
            check(
                c,
                "#3 after the ClusterGroup change",
                &[
                    ("default/fe", "prod/web", T, 8080, A),
                    ("default/other", "prod/web", T, 8080, D),
                    ("prod/web", "X1", T, 5978, D),
                    ("default/db2", "X1", T, 5978, A),
                    ("dbns/nondb1", "prod/db1", T, 6379, A),
                ],
            )
        },
    );
    cases.run("#4 isolate-all-pods-in-namespace", &[], |c| {
        // An established connection survives the new Drop (only new connections are checked).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let p = c.pod("iso/p").context("iso/p")?;
        xvs_integration::agent::echo_server(&p.netns, &p.ip, 7000, "iso-p", stop.clone())?;
        let other = c.pod("default/other").context("other")?;
        let mut long = xvs_integration::agent::connect(
            &other.netns,
            &format!("{}:7000", p.ip),
            std::time::Duration::from_secs(2),
        )?;
        let mut hello = [0u8; 5];
        std::io::Read::read_exact(&mut long, &mut hello)?;
        xvs_integration::agent::echo(&mut long, b"before")?;
        c.apply("10-iso", ISOLATE_ALL)?;
        let r = (|| -> Result<()> {
            check(
                c,
                "#4",
                &[
                    ("default/other", "iso/p", T, 80, D),
                    ("default/other", "iso/p", I, 0, D),
                    ("prod/web", "iso/p", U, 53, D),
                    ("iso/p", "default/other", T, 80, D),
                    ("iso/p", "X2", T, 80, D),
                    ("iso/p", "X2", I, 0, D),
                    ("default/other", "prod/web", T, 80, A),
                ],
            )?;
            xvs_integration::agent::echo(&mut long, b"after the isolation")
                .context("established connection after the Drop")?;
            c.remove("10-iso")?;
            check(
                c,
                "#4 removed",
                &[
                    ("default/other", "iso/p", T, 80, A),
                    ("iso/p", "X2", I, 0, A),
                ],
            )
        })();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = c.remove("10-iso");
        r
    });
    cases.table(
        "#7 acnp-drop-to-services",
        &[("10-svc", DROP_TO_SERVICES)],
        "#7",
        &[
            ("prod/client", "10.96.0.50", T, 80, D),
            ("prod/client", "svcns/be", T, 8080, A),
            ("prod/client", "10.96.0.51", T, 80, A),
            ("default/client2", "10.96.0.50", T, 80, A),
        ],
    );
    cases.run(
        "#8 acnp-reject-ping-request",
        &[("10-ping", REJECT_PING)],
        |c| {
            check(
                c,
                "#8",
                &[
                    ("prod/server", "X2", I, 0, R),
                    ("prod/server", "default/fe", I, 0, R),
                    ("default/fe", "prod/server", I, 0, A),
                    ("prod/server", "default/fe", T, 80, A),
                    ("prod/web", "X2", I, 0, A),
                ],
            )?;
            // The answer comes from the pinged address (the egress Reject answers in the
            // name of the destination): ICMP 3/10, "Destination Host Prohibited".
            let server = c.pod("prod/server").context("prod/server")?;
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", server.netns.name()])
                .args(["ping", "-n", "-c", "1", "-W", "2", "10.0.11.7"])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains("From 10.0.11.7") || !text.contains("Destination Host Prohibited") {
                bail!("ping of X2 under the Reject:\n{text}");
            }
            Ok(())
        },
    );
    cases.run("#15 test-annp", &[("10-annp", TEST_ANNP)], |c| {
        check_alone_then_with_companion(
            c,
            "#15",
            &[
                ("default/db2", "X1", T, 5978, D),
                ("prod/db1", "X1", T, 5978, A),
            ],
            ("11-drop", ANNP_DROP_DB),
            &[
                ("default/fe", "default/db2", T, 8080, A),
                ("dbns/fe3", "default/db2", T, 8080, D),
                ("dbns/nondb1", "default/db2", T, 8080, A),
                ("default/nondb2", "default/db2", T, 8080, D),
                ("default/other", "prod/db1", T, 8080, A),
            ],
        )
    });
    cases.table(
        "#16 annp-with-groups",
        &[("10-annp", ANNP_WITH_GROUPS), ("11-drop", ANNP_DROP_DB)],
        "#16",
        &[
            ("default/fe", "default/db2", T, 8080, A),
            ("dbns/fe3", "default/db2", T, 8080, D),
            ("dbns/nondb1", "default/db2", T, 8080, D),
            ("default/db2", "X1", T, 5978, D),
            ("prod/db1", "X1", T, 5978, A),
        ],
    );
    cases.table(
        "#17 test-annp-by-name",
        &[("10-annp", ANNP_BY_NAME)],
        "#17",
        &[
            ("default/fe", "kube-system/dns", U, 53, A),
            ("default/fe", "kube-system/dns", T, 53, A),
            ("default/fe", "kube-system/dns", T, 80, D),
            ("default/fe", "default/db2", T, 80, D),
            ("prod/db1", "kube-system/dns", T, 80, A),
            ("prod/db1", "default/db2", T, 80, A),
        ],
    );
    cases.run(
        "Reject TCP (ANNP ingress)",
        &[("10-reject", ANNP_REJECT_TCP)],
        |c| {
            let t0 = std::time::Instant::now();
            check(
                c,
                "reject tcp",
                &[
                    ("default/fe", "default/db2", T, 80, R),
                    ("prod/web", "default/db2", T, 80, R),
                    ("default/fe", "default/db2", U, 53, A),
                    ("default/fe", "default/db2", T, 8080, A),
                ],
            )?;
            // A refusal is an answer, not a timeout: the whole table takes less than one.
            let took = t0.elapsed();
            if took >= std::time::Duration::from_millis(1500) {
                bail!("the Reject table took {took:?}: a refusal waited for a timeout");
            }
            Ok(())
        },
    );
    cases.table(
        "#25 acnp-service-account",
        &[("10-sa", SERVICE_ACCOUNT)],
        "#25",
        &[
            ("ns-1/s1", "ns-2/s2", T, 80, D),
            ("ns-1/s1", "ns-2/s3", T, 80, A),
            ("ns-2/s2", "ns-1/s1", T, 80, A),
        ],
    );
    cases.run(
        "#30 ordering and OpenFlow priorities",
        &[("10-order", ORDERING)],
        |c| {
            let table = xvs_agent::pipeline::t::AP_INGRESS.to_string();
            let flows = c
                .xvsd
                .ofctl(&[], "dump-flows", &[&format!("table={table}")])?;
            let mut prios: Vec<u32> = flows
                .lines()
                .filter(|l| l.contains("conj_id="))
                .filter_map(|l| {
                    l.split("priority=")
                        .nth(1)?
                        .split([',', ' '])
                        .next()?
                        .parse()
                        .ok()
                })
                .collect();
            prios.sort_unstable_by(|a, b| b.cmp(a));
            prios.dedup();
            if prios != [54600, 54599, 14000, 13999, 13500, 13499] {
                bail!("action flow priorities {prios:?}; flows:\n{flows}");
            }
            // ir3.1 (emergency) lets nondb in although ir1.2 drops everything; ir3.2 drops
            // client although ir2.1 allows it; ir1.1 allows frontend before ir2.2's drop.
            check(
                c,
                "#30",
                &[
                    ("dbns/nondb1", "prod/web", T, 80, A),
                    ("prod/client", "prod/web", T, 80, D),
                    ("default/fe", "prod/web", T, 80, A),
                    ("default/other", "prod/web", T, 80, D),
                ],
            )
        },
    );
    cases.run(
        "#9 acnp-with-igmp-drop, #10 acnp-with-multicast-traffic-drop: admitted",
        &[("10-igmp", IGMP_DROP), ("11-mcast", MULTICAST_DROP)],
        |c| {
            // The agent read both files (the commit of the second one); neither was refused.
            let log = c.agent.log();
            if let Some(l) = log.lines().find(|l| {
                l.contains("bad manifest")
                    && (l.contains("/10-igmp.yaml:") || l.contains("/11-mcast.yaml:"))
            }) {
                bail!("refused: {l}");
            }
            let out = std::process::Command::new(xvs_integration::agent::agent_binary()?)
                .args(["get", "netpol", "--query-socket"])
                .arg(c.xvsd.run_dir().join("xvs-agent.sock"))
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            for name in ["acnp-with-igmp-drop", "acnp-with-multicast-traffic-drop"] {
                if !text.contains(name) {
                    bail!("get netpol lacks {name}:\n{text}");
                }
            }
            // xvs has no multicast pipeline (Antrea's Multicast* tables exist only with its
            // Multicast feature): the IGMP rules realise no flow, and the multicast ipBlock
            // is an ordinary egress nw_dst clause of the securityops p5 rule (OF 44900).
            // Multicast traffic itself is not forwarded by xvs, so not testable here.
            let flows = c.xvsd.ofctl(&[], "dump-flows", &[])?;
            if let Some(l) = flows.lines().find(|l| l.contains("igmp")) {
                bail!("an IGMP flow without a multicast pipeline: {l}");
            }
            let egress = xvs_agent::pipeline::t::AP_EGRESS.to_string();
            let flows = c
                .xvsd
                .ofctl(&[], "dump-flows", &[&format!("table={egress}")])?;
            let clause = flows
                .lines()
                .find(|l| l.contains("priority=44900") && l.contains("nw_dst=225.1.2.3"))
                .with_context(|| format!("no nw_dst=225.1.2.3 clause at 44900:\n{flows}"))?;
            if !clause.contains("conjunction(") {
                bail!("not a conjunction clause: {clause}");
            }
            // Unicast traffic of the applied Pod is unaffected.
            check(c, "#10 unicast", &[("prod/client", "X1", T, 80, A)])
        },
    );
    cases.run("#9, #10, #11 refusals (admission webhook messages)", &[], |c| {
        let refusals = [
            (
                IGMP_DROP.replace("- action: Drop\n      protocols:\n        - igmp:\n            igmpType: 0x11", "- action: Reject\n      protocols:\n        - igmp:\n            igmpType: 0x11"),
                "protocol IGMP does not support Pass or Reject",
            ),
            (
                IGMP_DROP.replace("igmpType: 0x11", "igmpType: 0x12"),
                "Unsupported value: 18: supported values: 17",
            ),
            (
                IGMP_DROP.replace(
                    "  ingress:\n    - action: Drop\n",
                    "  ingress:\n    - action: Drop\n      from: [{podSelector: {}}]\n",
                ),
                "protocol IGMP can not be used with other protocols or other properties like from, to",
            ),
            (
                MULTICAST_DROP.replace("action: Drop", "action: Reject"),
                "multicast does not support action Pass or Reject",
            ),
            (
                MULTICAST_DROP.replace("action: Drop", "action: Pass"),
                "multicast does not support action Pass or Reject",
            ),
            (
                MULTICAST_DROP.replace(
                    "            cidr: 225.1.2.3/32\n",
                    "            cidr: 225.1.2.3/32\n        - ipBlock:\n            cidr: 10.0.10.0/24\n",
                ),
                "can not set multicast groupAddress and unicast ip address at the same time",
            ),
            (
                L7_HTTP_ANNP.to_string(),
                "layer 7 protocols can only be used when L7NetworkPolicy is enabled",
            ),
            (
                L7_INTERNAL_DOMAIN.to_string(),
                "layer 7 protocols can only be used when L7NetworkPolicy is enabled",
            ),
        ];
        for (i, (yaml, want)) in refusals.iter().enumerate() {
            if !yaml.contains("l7Protocols") && (*yaml == IGMP_DROP || *yaml == MULTICAST_DROP) {
                bail!("refusal {i}: the variant did not change the doc YAML");
            }
            let file = format!("20-refused-{i}");
            let msg = c.apply_refused(&file, yaml)?;
            c.remove_quietly(&file)?;
            expect_msg(&msg, want).with_context(|| format!("refusal {i}"))?;
        }
        // Nothing of the refused objects was applied: the policies were never listed.
        let out = std::process::Command::new(xvs_integration::agent::agent_binary()?)
            .args(["get", "netpol", "--query-socket"])
            .arg(c.xvsd.run_dir().join("xvs-agent.sock"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        for name in [
            "acnp-with-igmp-drop",
            "ingress-allow-http-request-to-api-v2",
            "allow-web-access-to-internal-domain",
        ] {
            if text.contains(name) {
                bail!("refused {name} is listed:\n{text}");
            }
        }
        Ok(())
    });
    cases.finish()
}

/// #9, the doc's acnp-with-igmp-drop, applied to prod/client instead of the doc's
/// `app: mcjoin6` (no such Pod in the fixture).
const IGMP_DROP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: acnp-with-igmp-drop
spec:
  priority: 5
  tier: securityops
  appliedTo:
    - podSelector:
        matchLabels:
          role: client
  ingress:
    - action: Drop
      protocols:
        - igmp:
            igmpType: 0x11
            groupAddress: 224.0.0.1
  egress:
    - action: Drop
      protocols:
        - igmp:
            igmpType: 0x12
            groupAddress: 225.1.2.3
"#;

/// #10, the doc's acnp-with-multicast-traffic-drop (applied to prod/client likewise).
const MULTICAST_DROP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: acnp-with-multicast-traffic-drop
spec:
  priority: 5
  tier: securityops
  appliedTo:
    - podSelector:
        matchLabels:
          role: client
  egress:
    - action: Drop
      to:
        - ipBlock:
            cidr: 225.1.2.3/32
"#;

/// #11, the L7 examples: an ANNP allowing HTTP GET to /api/v2 ...
const L7_HTTP_ANNP: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata:
  name: ingress-allow-http-request-to-api-v2
  namespace: default
spec:
  priority: 5
  tier: application
  appliedTo:
    - podSelector:
        matchLabels:
          app: web
  ingress:
    - name: allow-http
      action: Allow
      from:
        - podSelector:
            matchLabels:
              app: client
      l7Protocols:
        - http:
            path: "/api/v2/*"
            host: "foo.bar.com"
            method: "GET"
    - name: drop-other
      action: Drop
"#;

/// ... and an ACNP allowing only HTTP to `*.bar.com`.
const L7_INTERNAL_DOMAIN: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: allow-web-access-to-internal-domain
spec:
  priority: 5
  tier: securityops
  appliedTo:
    - podSelector:
        matchLabels:
          egress-restriction: internal-domain-only
  egress:
    - name: allow-dns
      action: Allow
      ports:
        - protocol: TCP
          port: 53
        - protocol: UDP
          port: 53
    - name: allow-http-only
      action: Allow
      l7Protocols:
        - http:
            host: "*.bar.com"
    - name: drop-other
      action: Drop
"#;
