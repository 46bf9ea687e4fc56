//! Antrea-native objects: parsing, mutation and admission (Antrea's webhook messages).

use xvs_agent::anp::admission::{admit, generated_rule_name, rule_json};
use xvs_agent::anp::types::{Action, AnpObject, Direction};
use xvs_agent::anp::AnpObjects;
use xvs_agent::model::{parse_file, ManifestError, Model, Object};

fn load(text: &str) -> Result<Model, ManifestError> {
    let mut m = Model::default();
    for o in parse_file("p.yaml", text)? {
        m.insert(o);
    }
    Ok(m)
}

fn refused(text: &str) -> String {
    load(text).expect_err("refused").msg
}

fn acnp(spec: &str) -> String {
    format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: p}}\nspec:\n{spec}")
}

fn annp(spec: &str) -> String {
    format!("apiVersion: crd.antrea.io/v1beta1\nkind: NetworkPolicy\nmetadata: {{name: n, namespace: prod}}\nspec:\n{spec}")
}

const APPLIED: &str = "  priority: 5\n  appliedTo: [{podSelector: {}}]\n";

#[test]
fn default_cluster_deny_gets_antrea_names_and_the_application_tier() {
    let m = load(&acnp(
        "  priority: 1\n  tier: Baseline\n  appliedTo: [{namespaceSelector: {}}]\n  ingress: [{action: Drop}]\n  egress: [{action: Drop}]\n",
    ))
    .expect("valid");
    let p = m.anp.policies.values().next().expect("policy");
    assert_eq!(p.tier, "baseline");
    assert_eq!(p.ingress[0].name, "ingress-drop-742ade5");
    assert_eq!(p.egress[0].name, "egress-drop-742ade5");
    let m = load(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, from: [{{namespaces: {{match: Self}}}}]}}]\n"
    )))
    .expect("valid");
    let p = m.anp.policies.values().next().expect("policy");
    assert_eq!(p.tier, "application");
    assert_eq!(
        rule_json(&p.ingress[0], Direction::Ingress),
        format!(
            "{{\"action\":\"Allow\",\"from\":[{{\"namespaces\":{{\"match\":\"Self\"}}}}],\"name\":\"{}\",\"enableLogging\":false}}",
            p.ingress[0].name
        )
    );
    assert_eq!(p.ingress[0].name, "ingress-allow-c0b63f7");
    assert_eq!(
        generated_rule_name(&p.ingress[0], Direction::Ingress),
        "ingress-allow-c0b63f7"
    );
}

#[test]
fn doc_samples_with_deny_are_refused_by_the_schema() {
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow}}, {{action: Deny, from: [{{namespaces: {{match: Self}}}}]}}]\n"
    )));
    assert_eq!(
        m,
        "ClusterNetworkPolicy p: spec.ingress[1].action: Unsupported value: \"Deny\": supported values: \"Allow\", \"Drop\", \"Reject\", \"Pass\""
    );
    let e = load(&acnp(&format!("{APPLIED}  ingress: [{{action: Deny}}]\n"))).expect_err("x");
    assert_eq!(e.file, "p.yaml");
    assert_eq!(e.field, "doc[0].spec.ingress[0].action");
}

#[test]
fn schema_ranges_and_formats() {
    let m = refused(&acnp("  priority: 0\n  appliedTo: [{podSelector: {}}]\n"));
    assert!(
        m.ends_with("spec.priority in body should be greater than or equal to 1"),
        "{m}"
    );
    let m = refused(&acnp(
        "  priority: 10000.5\n  appliedTo: [{podSelector: {}}]\n",
    ));
    assert!(m.ends_with("should be less than or equal to 10000"), "{m}");
    let m = refused(&acnp("  appliedTo: [{podSelector: {}}]\n"));
    assert!(m.ends_with("spec.priority: Required value"), "{m}");
    let m = refused("apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: t}\nspec: {priority: 256}\n");
    assert!(m.ends_with("should be less than or equal to 255"), "{m}");
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, ports: [{{protocol: ICMP}}]}}]\n"
    )));
    assert!(
        m.contains("Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\""),
        "{m}"
    );
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, protocols: [{{icmp: {{icmpType: 300}}}}]}}]\n"
    )));
    assert!(
        m.contains("icmpType in body should be less than or equal to 255"),
        "{m}"
    );
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, protocols: [{{igmp: {{igmpType: 0x12}}}}]}}]\n"
    )));
    assert!(
        m.contains("Unsupported value: 18: supported values: 17"),
        "{m}"
    );
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, from: [{{namespaces: {{match: Other}}}}]}}]\n"
    )));
    assert!(
        m.contains("Unsupported value: \"Other\": supported values: \"Self\""),
        "{m}"
    );
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, logLabel: \"-bad\"}}]\n"
    )));
    assert!(m.contains("logLabel in body should match"), "{m}");
    let m = refused(&acnp(&format!(
        "{APPLIED}  ingress: [{{action: Allow, from: [{{serviceAccount: {{name: sa}}}}]}}]\n"
    )));
    assert!(
        m.ends_with("spec.ingress[0].from[0].serviceAccount.namespace: Required value"),
        "{m}"
    );
}

fn webhook(m: &str, hook: &str, obj: &str, msg: &str) {
    assert_eq!(
        m,
        format!("admission webhook \"{hook}\" denied the request: {obj}: {msg}")
    );
}

fn acnp_refusal(spec: &str, msg: &str) {
    webhook(
        &refused(&acnp(spec)),
        "acnpvalidator.antrea.io",
        "ClusterNetworkPolicy p",
        msg,
    );
}

#[test]
fn every_policy_webhook_rule_has_antrea_message() {
    acnp_refusal(
        "  priority: 1\n  tier: baseline\n  appliedTo: [{podSelector: {}}]\n  egress: [{action: Pass}]\n",
        "`Pass` action should not be set for Baseline Tier policy rules",
    );
    acnp_refusal(
        &format!("{APPLIED}  ingress: [{{action: Drop}}, {{action: Drop}}]\n"),
        "rules names must be unique within the policy",
    );
    acnp_refusal(
        &format!("{APPLIED}  ingress: [{{action: Drop, name: egress-drop-742ade5}}]\n  egress: [{{action: Drop}}]\n"),
        "rules names must be unique within the policy",
    );
    acnp_refusal(
        &format!("{APPLIED}  ingress: [{{action: Drop, appliedTo: [{{podSelector: {{}}}}]}}]\n"),
        "appliedTo should not be set in both spec and rules",
    );
    acnp_refusal(
        "  priority: 1\n  ingress: [{action: Drop}]\n",
        "appliedTo needs to be set in either spec or rules",
    );
    acnp_refusal(
        "  priority: 1\n  ingress: [{action: Drop, appliedTo: [{podSelector: {}}]}, {action: Allow}]\n",
        "appliedTo field should either be set in all rules or in none of them",
    );
    for (f, n) in [
        ("group: g", "group"),
        ("nodeSelector: {}", "nodeSelector"),
        ("serviceAccount: {name: a, namespace: b}", "serviceAccount"),
        ("service: {name: a, namespace: b}", "service"),
    ] {
        acnp_refusal(
            &format!("  priority: 1\n  appliedTo: [{{podSelector: {{}}, {f}}}]\n"),
            &format!("{n} cannot be set with other peers in appliedTo"),
        );
    }
    acnp_refusal(
        "  priority: 1\n  appliedTo: [{service: {name: a, namespace: b}}]\n  egress: [{action: Drop}]\n",
        "egress rule cannot be applied to Services",
    );
    acnp_refusal(
        "  priority: 1\n  appliedTo: [{service: {name: a, namespace: b}}, {podSelector: {}}]\n",
        "a rule/policy cannot be applied to Services and other peers at the same time",
    );
    acnp_refusal(
        "  priority: 1\n  appliedTo: [{podSelector: {matchLabels: {\"a/b/c\": x}}}]\n",
        "Invalid label key: a/b/c: a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    );
    acnp_refusal(
        "  priority: 1\n  appliedTo: [{podSelector: {matchLabels: {app: \"-x\"}}}]\n",
        "Invalid label value: -x: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    );
    let rule = |r: &str| format!("{APPLIED}  ingress: [{r}]\n");
    let erule = |r: &str| format!("{APPLIED}  egress: [{r}]\n");
    acnp_refusal(
        &rule("{action: Drop, from: [{namespaces: {match: Self}, namespaceSelector: {}}]}"),
        "namespaces and namespaceSelector cannot be set at the same time for a single NetworkPolicyPeer",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{namespaces: {match: Self, sameLabels: [a]}}]}"),
        "only one matching criteria can be specified in a single peer namespaces field",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{namespaces: {sameLabels: [\"-a\"]}}]}"),
        "Invalid label key in sameLabels rule: -a",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{ipBlock: {except: [10.0.0.0/8]}}]}"),
        "field 'cidr' is required in an ipBlock",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{ipBlock: {cidr: 10.0.0.300/8}}]}"),
        "invalid CIDR address: 10.0.0.300/8",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{ipBlock: {cidr: 10.0.0.0/8, except: [x]}}]}"),
        "invalid except CIDR value: invalid CIDR address: x",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}"),
        "except CIDR 10.1.0.0/24 is not a strict subset of CIDR 10.0.0.0/16",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}"),
        "except CIDR 10.0.0.0/16 is not a strict subset of CIDR 10.0.0.0/16",
    );
    for (f, n) in [
        ("group: g", "group"),
        ("serviceAccount: {name: a, namespace: b}", "serviceAccount"),
        ("nodeSelector: {}", "nodeSelector"),
    ] {
        acnp_refusal(
            &rule(&format!(
                "{{action: Drop, from: [{{podSelector: {{}}, {f}}}]}}"
            )),
            &format!("{n} cannot be set with other peers in rules"),
        );
    }
    acnp_refusal(
        &erule("{action: Drop, toServices: [{name: s, namespace: n}], ports: [{port: 80}]}"),
        "`toServices` cannot be used with `to`, `ports` or `protocols`",
    );
    acnp_refusal(
        "  priority: 1\n  appliedTo: [{service: {name: a, namespace: b}}]\n  ingress: [{action: Drop, from: [{podSelector: {}}]}]\n",
        "a rule/policy that is applied to Services can only use ipBlock to select workloads",
    );
    acnp_refusal(
        &erule("{action: Drop, to: [{fqdn: \"bad_name.com\"}]}"),
        "invalid characters in egress rule fqdn field: bad_name.com",
    );
    acnp_refusal(
        &erule("{action: Reject, to: [{ipBlock: {cidr: 224.0.0.1/32}}]}"),
        "multicast does not support action Pass or Reject",
    );
    acnp_refusal(
        &erule(
            "{action: Drop, to: [{ipBlock: {cidr: 224.0.0.1/32}}, {ipBlock: {cidr: 10.0.0.1/32}}]}",
        ),
        "can not set multicast groupAddress and unicast ip address at the same time",
    );
    acnp_refusal(
        &erule("{action: Drop, to: [{ipBlock: {cidr: 224.0.0.1/32}}, {podSelector: {}}]}"),
        "can not set multicast groupAddress and selectors at the same time",
    );
    acnp_refusal(
        &erule("{action: Drop, protocols: [{igmp: {igmpType: 0x12, groupAddress: 10.0.0.1}}]}"),
        "groupAddress 10.0.0.1 is not multicast address",
    );
    acnp_refusal(
        &rule("{action: Reject, protocols: [{igmp: {igmpType: 0x11}}]}"),
        "protocol IGMP does not support Pass or Reject",
    );
    acnp_refusal(
        &rule("{action: Drop, from: [{podSelector: {}}], protocols: [{igmp: {igmpType: 0x11}}]}"),
        "protocol IGMP can not be used with other protocols or other properties like from, to",
    );
    acnp_refusal(
        &rule("{action: Allow, l7Protocols: [{http: {path: /api}}]}"),
        "layer 7 protocols can only be used when L7NetworkPolicy is enabled",
    );
    acnp_refusal(
        &rule("{action: Allow, ports: [{endPort: 90}]}"),
        "if `endPort` is specified `port` must be specified",
    );
    acnp_refusal(
        &rule("{action: Allow, ports: [{port: http, endPort: 90}]}"),
        "if `port` is a string `endPort` cannot be specified",
    );
    acnp_refusal(
        &rule("{action: Allow, ports: [{port: 100, endPort: 90}]}"),
        "`endPort` should be greater than or equal to `port`",
    );
    acnp_refusal(
        &rule("{action: Allow, ports: [{sourceEndPort: 90}]}"),
        "if `sourceEndPort` is specified `sourcePort` must be specified",
    );
    acnp_refusal(
        &rule("{action: Allow, ports: [{sourcePort: 100, sourceEndPort: 90}]}"),
        "`sourceEndPort` should be greater than or equal to `sourcePort`",
    );
}

#[test]
fn annp_fields_outside_its_schema_are_refused_not_pruned() {
    let m = refused(&annp(
        "  priority: 1\n  appliedTo: [{namespaceSelector: {}}]\n",
    ));
    assert_eq!(
        m,
        "NetworkPolicy prod/n: spec.appliedTo[0].namespaceSelector: unknown field \"spec.appliedTo[0].namespaceSelector\""
    );
    let m = refused(&annp(
        "  priority: 1\n  appliedTo: [{podSelector: {}}]\n  ingress: [{action: Drop, from: [{namespaces: {match: Self}}]}]\n",
    ));
    assert!(
        m.contains("unknown field \"spec.ingress[0].from[0].namespaces\""),
        "{m}"
    );
    let m = refused(&annp(
        "  priority: 1\n  appliedTo: [{podSelector: {}}]\n  ingress: [{action: Drop, from: [{podSelector: {}}, {podSelector: {}}]}, {action: Drop}]\n  egress: [{action: Drop, name: ingress-drop-742ade5}]\n",
    ));
    webhook(
        &m,
        "annpvalidator.antrea.io",
        "NetworkPolicy prod/n",
        "rules names must be unique within the policy",
    );
}

fn cross(text: &str, previous: &AnpObjects) -> (Model, Vec<String>) {
    let mut m = load(text).expect("each object valid on its own");
    let errs = admit(&mut m, previous);
    (m, errs.into_iter().map(|e| e.msg).collect())
}

const TIER: &str = "apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: mytier}\nspec: {priority: 10, description: mine}\n---\n";

#[test]
fn tiers_priorities_existence_and_deletion() {
    let tier_msg =
        |m: &str| format!("admission webhook \"tiervalidator.antrea.io\" denied the request: {m}");
    let m = refused("apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: t}\nspec: {priority: 251}\n");
    assert_eq!(m, tier_msg("Tier t: tier t priority 251 is reserved"));
    // Overlap: with a static tier and with another user tier.
    let (m, e) = cross(
        &format!("{TIER}apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {{name: other}}\nspec: {{priority: 10}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {{name: app2}}\nspec: {{priority: 250}}\n"),
        &AnpObjects::default(),
    );
    assert_eq!(m.anp.tiers.len(), 1, "only one of the two p10 tiers stays");
    assert_eq!(e.len(), 2);
    assert!(e.contains(&tier_msg(
        "Tier app2: tier app2 priority 250 overlaps with existing Tier"
    )));
    // A policy in a missing tier.
    let p = acnp("  priority: 1\n  tier: mytier\n  appliedTo: [{podSelector: {}}]\n  ingress: [{action: Drop}]\n");
    let (m, e) = cross(&p, &AnpObjects::default());
    assert!(m.anp.policies.is_empty());
    assert_eq!(
        e,
        vec!["admission webhook \"acnpvalidator.antrea.io\" denied the request: ClusterNetworkPolicy p: tier mytier does not exist".to_string()]
    );
    // With the tier: admitted; then deleting the tier is refused, changing its priority too.
    let (m1, e) = cross(&format!("{TIER}{p}"), &AnpObjects::default());
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(m1.anp.policies.len(), 1);
    let (m2, e) = cross(&p, &m1.anp);
    assert_eq!(
        e,
        vec![tier_msg(
            "Tier mytier: tier mytier is referenced by 1 Antrea ClusterNetworkPolicies"
        )]
    );
    assert_eq!(m2.anp, m1.anp, "the tier stays, and so does the policy");
    let (m3, e) = cross(&format!("{}{p}", TIER.replace("10,", "11,")), &m1.anp);
    assert_eq!(
        e,
        vec![tier_msg(
            "Tier mytier: update to Tier priority is not allowed"
        )]
    );
    assert_eq!(m3.anp.tiers["mytier"].priority, 10);
    // Static tiers exist from the start and cannot be redefined.
    for (n, _) in xvs_agent::anp::types::STATIC_TIERS {
        assert!(m.anp.tier_priority(n).is_some());
    }
    let m = refused("apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: baseline}\nspec: {priority: 7}\n");
    assert_eq!(
        m,
        tier_msg("Tier baseline: cannot update reserved tier baseline")
    );
}

#[test]
fn a_refused_policy_keeps_its_previous_version() {
    let good = acnp("  priority: 1\n  appliedTo: [{group: g}]\n  ingress: [{action: Drop}]\n");
    let cg = "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: g}\nspec: {podSelector: {}}\n---\n";
    let (m1, e) = cross(&format!("{cg}{good}"), &AnpObjects::default());
    assert!(e.is_empty());
    let bad = good.replace("group: g", "group: missing");
    let (m2, e) = cross(&format!("{cg}{bad}"), &m1.anp);
    assert_eq!(e, vec!["admission webhook \"acnpvalidator.antrea.io\" denied the request: ClusterNetworkPolicy p: group missing does not exist".to_string()]);
    assert_eq!(m2.anp.policies, m1.anp.policies);
    // An unchanged policy whose group goes away stays (the group resolves to nothing).
    let (m3, e) = cross(&good, &m1.anp);
    assert!(e.is_empty());
    assert_eq!(m3.anp.policies.len(), 1);
}

#[test]
fn group_checks() {
    let cg = |spec: &str| {
        format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: g}}\nspec: {spec}\n")
    };
    let m = refused(&cg("{podSelector: {}, ipBlocks: [{cidr: 10.0.0.0/8}]}"));
    webhook(&m, "clustergroupvalidator.antrea.io", "ClusterGroup g", "At most one of podSelector, nodeSelector, externalEntitySelector, serviceReference, ipBlock, ipBlocks or childGroups can be set for a ClusterGroup");
    load(&cg("{podSelector: {}, namespaceSelector: {}}")).expect("the legal pair");
    let m = refused(&cg("{childGroups: [g]}"));
    webhook(
        &m,
        "clustergroupvalidator.antrea.io",
        "ClusterGroup g",
        "cannot set ClusterGroup g as its own childGroup",
    );
    let m = refused(&cg(
        "{ipBlocks: [{cidr: 224.0.0.0/24}, {cidr: 10.0.0.0/8}]}",
    ));
    webhook(
        &m,
        "clustergroupvalidator.antrea.io",
        "ClusterGroup g",
        "can not set multicast groupAddress together with unicast ip address",
    );
    let m = refused("apiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {name: g, namespace: x}\nspec: {podSelector: {}, serviceReference: {name: s}}\n");
    webhook(&m, "groupvalidator.antrea.io", "Group x/g", "At most one of podSelector, externalEntitySelector, serviceReference, ipBlocks or childGroups can be set for a Group");
    let nested = format!(
        "{}---\n{}---\n{}",
        cg("{childGroups: [mid]}"),
        cg("{childGroups: [leaf]}").replace("name: g", "name: mid"),
        cg("{podSelector: {}}").replace("name: g", "name: leaf")
    );
    let (m, e) = cross(&nested, &AnpObjects::default());
    assert_eq!(e, vec!["admission webhook \"clustergroupvalidator.antrea.io\" denied the request: ClusterGroup g: cannot set ClusterGroup mid as childGroup, who has 1 childGroups itself".to_string()]);
    assert_eq!(m.anp.groups.len(), 2);
    // A missing child is accepted (it contributes nothing until created).
    let (_, e) = cross(&cg("{childGroups: [later]}"), &AnpObjects::default());
    assert!(e.is_empty());
}

#[test]
fn every_kind_parses_from_the_same_manifests() {
    let text = format!(
        "{TIER}{}---\n{}---\napiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {{name: grp, namespace: prod}}\nspec: {{ipBlocks: [{{cidr: 10.0.10.0/24}}]}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: cg}}\nspec: {{serviceReference: {{name: s, namespace: n}}}}\n",
        acnp("  priority: 2.5\n  tier: mytier\n  appliedTo: [{podSelector: {matchLabels: {a: b}}, namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}}]\n  ingress:\n  - action: Reject\n    name: r1\n    enableLogging: true\n    logLabel: lbl\n    ports: [{protocol: UDP, port: 53, endPort: 60, sourcePort: 1000, sourceEndPort: 2000}, {port: http}]\n    protocols: [{icmp: {icmpType: 8, icmpCode: 0}}]\n    from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}, {namespaces: {sameLabels: [org]}, podSelector: {}}, {serviceAccount: {name: sa, namespace: ns}}, {nodeSelector: {matchLabels: {role: cp}}}, {group: cg}]\n  egress:\n  - action: Pass\n    to: [{fqdn: \"*.foo.com\"}]\n  - action: Allow\n    toServices: [{name: s, namespace: n}]\n"),
        annp("  priority: 3\n  appliedTo: [{group: grp}]\n  egress: [{action: Drop, toServices: [{name: s}]}]\n"),
    );
    let objs = parse_file("all.yaml", &text).expect("valid");
    assert_eq!(objs.len(), 5);
    let mut m = Model::default();
    objs.into_iter().for_each(|o| m.insert(o));
    assert_eq!(m.anp.tiers.len(), 1);
    assert_eq!(m.anp.groups.len(), 2);
    let p = &m.anp.policies[&(None, "p".to_string())];
    assert_eq!(p.priority.0, 2.5);
    assert_eq!(p.ingress[0].action, Action::Reject);
    assert_eq!(p.ingress[0].peers.len(), 5);
    assert_eq!(p.ingress[0].ports.len(), 2);
    assert!(p.egress[0].name.starts_with("egress-pass-"));
    let n = &m.anp.policies[&(Some("prod".to_string()), "n".to_string())];
    assert_eq!(
        n.egress[0].to_services[0].namespace, "prod",
        "defaults to the policy namespace"
    );
    // K8s NetworkPolicy (networking.k8s.io) still goes to the K8s model.
    let k8s = parse_file("k.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k}\nspec: {podSelector: {}}\n").expect("k8s");
    assert!(matches!(k8s[0], Object::Policy(_)));
    assert!(!matches!(k8s[0], Object::Anp(AnpObject::Policy(_))));
}

#[test]
fn the_agent_loader_remembers_what_it_admitted() {
    use std::collections::BTreeMap;
    use xvs_agent::anp::load_dir_admitted;
    let dir = std::env::temp_dir().join(format!("xvs-anp-admitted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let tier = "apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: mytier}\nspec: {priority: 10}\n";
    let pol = acnp("  priority: 1\n  tier: mytier\n  appliedTo: [{podSelector: {}}]\n  ingress: [{action: Drop}]\n");
    std::fs::write(dir.join("00-tier.yaml"), tier).expect("write");
    std::fs::write(dir.join("10-pol.yaml"), &pol).expect("write");
    let mut last_good = BTreeMap::new();
    let mut admitted = AnpObjects::default();
    let (m1, e1) = load_dir_admitted(&dir, &mut last_good, &mut admitted).expect("load");
    assert!(e1.is_empty(), "{e1:?}");
    assert_eq!(m1.anp.policies.len(), 1);
    // Deleting the tier's file is refused while the policy uses it, on every reload.
    std::fs::remove_file(dir.join("00-tier.yaml")).expect("rm");
    for _ in 0..2 {
        let (m, e) = load_dir_admitted(&dir, &mut last_good, &mut admitted).expect("load");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0]
            .msg
            .ends_with("tier mytier is referenced by 1 Antrea ClusterNetworkPolicies"));
        assert_eq!(m.anp, m1.anp);
    }
    // Once the policy goes, so can the tier.
    std::fs::remove_file(dir.join("10-pol.yaml")).expect("rm");
    let (m, e) = load_dir_admitted(&dir, &mut last_good, &mut admitted).expect("load");
    std::fs::remove_dir_all(&dir).ok();
    assert!(e.is_empty(), "{e:?}");
    assert!(m.anp.is_empty());
}

#[test]
fn garbage_antrea_manifests_are_errors_not_panics() {
    let head = "apiVersion: crd.antrea.io/v1beta1\n";
    let docs = [
        "kind: Tier\nmetadata: {name: t}\nspec: {priority: x}\n",
        "kind: Tier\nmetadata: {name: t}\nspec: []\n",
        "kind: Tier\nmetadata: 7\nspec: {priority: 1}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: .nan, appliedTo: [{podSelector: {}}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: 3}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: []}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {matchLabels: {a: [1]}}}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: 5}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: Allow, ports: [{port: 70000}]}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: Allow, ports: [{port: -1}]}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: Allow, protocols: [{}]}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: Allow, from: [{ipBlock: {cidr: 10.0.0.0/99}}]}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: Allow, from: [{namespaces: {}}]}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{podSelector: {}}], ingress: [{action: Allow, enableLogging: yes please}]}\n",
        "kind: ClusterNetworkPolicy\nmetadata: {name: p}\nspec: {priority: 1, appliedTo: [{}]}\n",
        "kind: ClusterGroup\nmetadata: {name: g}\nspec: {ipBlocks: [{except: [1]}]}\n",
        "kind: ClusterGroup\nmetadata: {name: g}\nspec: {childGroups: [[]]}\n",
        "kind: Group\nmetadata: {name: g}\nspec: {serviceReference: {namespace: x}}\n",
    ];
    for (i, d) in docs.iter().enumerate() {
        match parse_file("g.yaml", &format!("{head}{d}")) {
            // An appliedTo entry with nothing in it is valid and selects nothing.
            Ok(objs) => assert!(i == 14, "doc {i} accepted: {objs:?}"),
            Err(e) => assert_eq!(e.file, "g.yaml", "doc {i}"),
        }
    }
}
