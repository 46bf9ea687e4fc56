//! Antrea-native policies about Nodes and NodePort Services (spec §6 #12, #26): an ACNP
//! applied to a NodePort Service (proxyAll) matches the Service's group id (`reg7`) and the
//! client's original address (`ct_nw_src`) in AntreaPolicyIngressRule; the reference evaluator
//! agrees; Node NetworkPolicies are accepted, realise nothing, are reported unrealised and warn
//! about long log labels as Antrea's webhook does.

mod anp_common;

use anp_common::*;
use xvs_agent::anp::admission::{is_node_policy, policy_warnings};
use xvs_agent::anp::eval::{verdict, Conn, Verdict};
use xvs_agent::anp::types::NamespacedName;
use xvs_agent::diff::{diff, messages};
use xvs_agent::model::Model;
use xvs_agent::pipeline::{desired, t, Category, Desired, Ids};
use xvs_agent::query::{answer, Counters, Kind, Query, Realized, Response};

const SVC: &str = include_str!("data/antrea_doc/svc-1-node-port.yaml");

/// The doc's example #26, verbatim.
const ACNP26: &str =
    include_str!("data/antrea_doc/acnp-deny-external-client-nodeport-svc-access.yaml");

/// ns-1/web (10.10.0.10, the Endpoint) and default/client (10.10.0.11), with svc-1 and #26.
fn fixture(proxy_all: bool, svc: &str) -> Model {
    let mut f = Fx::new()
        .ns("ns-1", "")
        .ns("default", "")
        .pod("ns-1", "web", "app=web")
        .pod("default", "client", "app=client")
        .with(svc)
        .with(ACNP26);
    if proxy_all {
        f.text = f.text.replacen(
            "tunnelType: geneve",
            "tunnelType: geneve\n  proxyAll: true",
            1,
        );
    }
    f.model()
}

fn flows_in(d: &Desired, table: u8) -> Vec<(String, u16, String)> {
    d.flows
        .iter()
        .filter(|(k, b)| k.table == table && b.category == Category::NetworkPolicy)
        .map(|(k, b)| (k.matches.clone(), k.priority, b.actions.clone()))
        .collect()
}

#[test]
fn ex26_rule_on_a_node_port_service_matches_reg7_and_the_original_client() {
    let m = fixture(true, SVC);
    let mut ids = Ids::default();
    let d = desired(&m, &mut ids);
    // The Service's groups: the ones its ServiceLB flows load into reg7.
    let mut gids: Vec<u32> = d
        .flows
        .iter()
        .filter(|(k, _)| k.table == t::SERVICE_LB && k.matches.contains("nw_dst=10.96.0.60"))
        .filter_map(|(_, b)| b.actions.rsplit("group:").next()?.parse().ok())
        .collect();
    gids.sort_unstable();
    assert_eq!(gids.len(), 2, "one group per Service port");
    let rules = flows_in(&d, t::AP_INGRESS);
    let prio = 44900; // securityops p5, rule 0
    let peer = rules
        .iter()
        .find(|(m, _, _)| m == "ct_state=+new,ct_nw_src=1.1.1.0/24,ip")
        .unwrap_or_else(|| panic!("no ct_nw_src clause in {rules:#?}"));
    assert_eq!(peer.1, prio);
    let id: u32 = peer
        .2
        .strip_prefix("conjunction(")
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("a conjunction action");
    assert_eq!(peer.2, format!("conjunction({id},1/2)"));
    for g in &gids {
        let m = format!("ip,reg7={g:#x}");
        assert!(
            rules
                .iter()
                .any(|r| r.0 == m && r.1 == prio && r.2 == format!("conjunction({id},2/2)")),
            "no {m} clause in {rules:#?}"
        );
    }
    assert!(rules.iter().any(|r| r.0 == format!("conj_id={id},ip")
        && r.1 == prio
        && r.2.contains("set_field:0x400/0x400->reg0,goto_table:26")));
    // No Pod is in the appliedTo: no reg1 clause.
    assert!(rules.iter().all(|r| !r.0.contains("reg1=")), "{rules:#?}");
    // The switch takes them (ct_nw_src's tracked-state prerequisite is met).
    messages(&diff(&Desired::default(), &d), 1).expect("all flows encode");
}

#[test]
fn ex26_is_not_realised_without_proxy_all_or_on_a_cluster_ip_service() {
    for (proxy_all, svc) in [
        (false, SVC.to_string()),
        (
            true,
            SVC.replace("type: NodePort", "type: ClusterIP")
                .replace(", nodePort: 30080", "")
                .replace(", nodePort: 30053", ""),
        ),
    ] {
        let m = fixture(proxy_all, &svc);
        let d = desired(&m, &mut Ids::default());
        let rules = flows_in(&d, t::AP_INGRESS);
        assert!(
            rules.iter().all(|r| !r.0.contains("ct_nw_src")),
            "proxyAll={proxy_all}: {rules:#?}"
        );
    }
}

#[test]
fn ex26_reference_evaluator() {
    let m = fixture(true, SVC);
    let svc = Some(NamespacedName {
        namespace: "ns-1".into(),
        name: "svc-1".into(),
    });
    let via = |src: &str, service: &Option<NamespacedName>| Conn {
        src: addr(&m, src),
        dst: addr(&m, "ns-1/web"),
        l4: tcp(8080),
        service: service.clone(),
    };
    assert_eq!(verdict(&m, &via("1.1.1.5", &svc)), Verdict::Drop);
    assert_eq!(verdict(&m, &via("1.1.2.5", &svc)), Verdict::Allow);
    assert_eq!(verdict(&m, &via("default/client", &svc)), Verdict::Allow);
    // Straight to the Endpoint, not through the Service: not the Service's traffic.
    assert_eq!(verdict(&m, &via("1.1.1.5", &None)), Verdict::Allow);
    // Without proxyAll the node port is not ours: nothing applies.
    let m = fixture(false, SVC);
    let c = Conn {
        src: "1.1.1.5".parse().expect("addr"),
        dst: addr(&m, "ns-1/web"),
        l4: tcp(8080),
        service: svc,
    };
    assert_eq!(verdict(&m, &c), Verdict::Allow);
}

/// The doc's two Node NetworkPolicies of #12, with logging and a 13-character label.
const ACNP12: &str = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: acnp-node-egress-traffic-drop
spec:
  priority: 5
  tier: securityops
  appliedTo:
    - nodeSelector:
        matchLabels:
          kubernetes.io/os: linux
  egress:
    - action: Drop
      to:
        - ipBlock:
            cidr: 192.168.1.0/24
      ports:
        - protocol: TCP
          port: 80
      name: dropHTTPTrafficToCIDR
      enableLogging: true
      logLabel: thirteen-char
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: acnp-node-ingress-traffic-drop
spec:
  priority: 5
  tier: securityops
  appliedTo:
    - nodeSelector:
        matchLabels:
          kubernetes.io/os: linux
  ingress:
    - action: Drop
      from:
        - ipBlock:
            cidr: 192.168.1.0/24
      ports:
        - protocol: TCP
          port: 22
      name: dropSSHTrafficFromCIDR
      enableLogging: true
      logLabel: twelve-chars
"#;

/// What `xvsctl get netpol` answers once the agent has installed `installed` for `m`.
fn get_netpol(m: &Model, installed: Desired) -> Response {
    let r = Realized {
        model: m.clone(),
        installed,
        round: 1,
    };
    let q = Query {
        kind: Kind::Netpol,
        name: None,
        namespace: None,
        sort_by: None,
    };
    answer(&q, &r, &Counters::default())
}

#[test]
fn ex12_node_policies_are_accepted_unrealised_and_warn_about_long_labels() {
    // Admitted (Fx::model panics on any refusal).
    let m = Fx::new()
        .ns("default", "")
        .pod("default", "a", "app=a")
        .with(ACNP12)
        .model();
    assert_eq!(m.anp.policies.len(), 2);
    // Nothing in the pipeline: Antrea enforces them with host iptables.
    let d = desired(&m, &mut Ids::default());
    assert!(
        d.flows
            .values()
            .all(|b| b.category != Category::NetworkPolicy),
        "a Node policy realised flows"
    );
    let by_name = |n: &str| {
        m.anp
            .policies
            .values()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("{n} admitted"))
    };
    let egress = by_name("acnp-node-egress-traffic-drop");
    let ingress = by_name("acnp-node-ingress-traffic-drop");
    assert!(is_node_policy(egress) && is_node_policy(ingress));
    assert_eq!(
        policy_warnings(egress),
        ["LogLabels for Node NetworkPolicies are limited to 12 characters, but the label \"thirteen-char\" for policy rule \"dropHTTPTrafficToCIDR\" exceeds the limit and will be truncated in kernel logs"]
    );
    assert!(policy_warnings(ingress).is_empty(), "12 characters fit");
    // `xvsctl get netpol` says so.
    let resp = get_netpol(&m, d);
    let view = |n: &str| {
        resp.objects
            .iter()
            .find(|o| o.name == n)
            .unwrap_or_else(|| panic!("{n} listed"))
    };
    let e = view("acnp-node-egress-traffic-drop");
    assert_eq!(e.info.get("realized").map(String::as_str), Some("false"));
    assert!(e.info["reason"].contains("Node NetworkPolicy"));
    assert!(e.info["warnings"].contains("\"thirteen-char\""));
    let i = view("acnp-node-ingress-traffic-drop");
    assert_eq!(i.info.get("realized").map(String::as_str), Some("false"));
    assert!(!i.info.contains_key("warnings"));
    let text = xvs_agent::query::format(&resp);
    assert!(text.contains("realized=false"), "{text}");
}

#[test]
fn a_pod_policy_is_not_flagged_and_a_service_policy_lists_its_service() {
    let m = fixture(true, SVC);
    let d = desired(&m, &mut Ids::default());
    let p = m.anp.policies.values().next().expect("#26");
    assert!(!is_node_policy(p));
    let resp = get_netpol(&m, d);
    let o = &resp.objects[0];
    assert_eq!(o.info["appliedTo"], "Service:ns-1/svc-1");
    assert!(!o.info.contains_key("realized"));
}

#[test]
fn policies_on_services_are_refused_as_antrea_refuses_them() {
    let refused = |yaml: &str| -> String {
        let mut m = Model::default();
        let text = format!("{}\n---\n{yaml}", anp_common::NODE);
        match xvs_agent::model::parse_file("p.yaml", &text) {
            Err(e) => return e.to_string(),
            Ok(objs) => {
                for o in objs {
                    m.insert(o);
                }
            }
        }
        let errs = xvs_agent::anp::admission::admit(&mut m, &Default::default());
        assert!(m.anp.policies.is_empty(), "{yaml} was admitted");
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let base = ACNP26.trim_start();
    // No ipBlock in appliedTo (not in the schema).
    let e = refused(&base.replace(
        "    - service:\n        name: svc-1\n        namespace: ns-1",
        "    - ipBlock: {cidr: 10.0.0.0/8}",
    ));
    assert!(
        e.contains("unknown field \"spec.appliedTo[0].ipBlock\""),
        "{e}"
    );
    // Only ipBlock peers.
    let e = refused(&base.replace(
        "        - ipBlock:\n            cidr: 1.1.1.0/24",
        "        - podSelector: {}",
    ));
    assert!(
        e.contains(
            "a rule/policy that is applied to Services can only use ipBlock to select workloads"
        ),
        "{e}"
    );
    // Ingress only.
    let e = refused(&format!("{base}  egress:\n    - action: Drop\n"));
    assert!(
        e.contains("egress rule cannot be applied to Services"),
        "{e}"
    );
    // Nothing else in the appliedTo.
    let e = refused(&base.replace(
        "        namespace: ns-1\n",
        "        namespace: ns-1\n    - podSelector: {}\n",
    ));
    assert!(
        e.contains("a rule/policy cannot be applied to Services and other peers at the same time"),
        "{e}"
    );
}
