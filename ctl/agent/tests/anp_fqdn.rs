//! FQDN egress rules in flows: the DNS interception conjunction for the Pods a rule with an
//! `fqdn` peer applies to, and the rule's `nw_dst` clauses following the learned addresses.

mod anp_common;

use anp_common::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use xvs_agent::anp::eval::Verdict;
use xvs_agent::anp::fqdn::{DNS_CONJ_ID, DNS_INTERCEPT_PRIORITY, DNS_METER};
use xvs_agent::model::Model;
use xvs_agent::pipeline::{desired, t, Desired, Ids};

/// The doc's acnp-fqdn-all-foobar (application tier, priority 1: rules at 14900 / 14899).
const FQDN_ALL_FOOBAR: &str = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: acnp-fqdn-all-foobar}
spec:
  priority: 1
  appliedTo: [{podSelector: {matchLabels: {app: client}}}]
  egress:
  - action: Allow
    to: [{fqdn: "*foobar.com"}]
    ports: [{protocol: TCP, port: 8080}]
  - action: Drop
"#;

fn fixture() -> Model {
    Fx::new()
        .ns("default", "")
        .pod("default", "client", "app=client")
        .pod("default", "other", "app=other")
        .with(FQDN_ALL_FOOBAR)
        .model()
}

fn clause_flows(d: &Desired, table: u8, prio: u16) -> BTreeSet<String> {
    d.flows
        .iter()
        .filter(|(k, _)| k.table == table && k.priority == prio)
        .map(|(k, b)| format!("{} -> {}", k.matches, b.actions))
        .collect()
}

#[test]
fn dns_responses_to_the_applied_pods_are_paused_to_the_agent() {
    let m = fixture();
    let d = desired(&m, &mut Ids::default());
    let got = clause_flows(&d, t::AP_INGRESS, DNS_INTERCEPT_PRIORITY);
    let id = DNS_CONJ_ID;
    // client is the first fixture Pod: ofport 10.
    let want: BTreeSet<String> = [
        format!("ct_state=+rpl+trk,udp,tp_src=53 -> conjunction({id},1/2)"),
        format!("ct_state=+rpl+trk,tcp,tp_src=53 -> conjunction({id},1/2)"),
        format!("ip,reg1=0xa -> conjunction({id},2/2)"),
        format!(
            "conj_id={id},ip -> controller(reason=no_match,id={},userdata=02,pause,max_len=65535,meter_id={DNS_METER}),goto_table:{}",
            xvs_agent::anp::flows::AGENT_CONTROLLER_ID,
            t::INGRESS_METRIC
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    // Every line parses as an ovs-ofctl flow.
    for (k, b) in &d.flows {
        let line = Desired::flow_line(k, b, 1);
        xvs_flowtable::parse::parse_flow(&line, &xvs_flowtable::NameMap::new())
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

#[test]
fn learned_addresses_of_matching_names_become_nw_dst_clauses() {
    let mut m = fixture();
    let mut ids = Ids::default();
    let before = desired(&m, &mut ids);
    // Nothing learned: the Allow rule has no peer, only the Drop rule is there.
    assert!(!before
        .flows
        .keys()
        .any(|k| k.matches.contains("nw_dst=10.0.10.7")));
    m.fqdn_learned.insert(
        "www.foobar.com".into(),
        BTreeSet::from([X1.parse::<Ipv4Addr>().expect("address")]),
    );
    m.fqdn_learned.insert(
        "evil.com".into(),
        BTreeSet::from([X2.parse::<Ipv4Addr>().expect("address")]),
    );
    let after = desired(&m, &mut ids);
    let allow: Vec<_> = after
        .flows
        .iter()
        .filter(|(k, _)| k.table == t::AP_EGRESS && k.matches == format!("ip,nw_dst={X1}"))
        .map(|(k, b)| (k.priority, b.actions.clone()))
        .collect();
    assert_eq!(allow.len(), 1, "{allow:?}");
    assert_eq!(allow[0].0, 14900);
    assert!(allow[0].1.starts_with("conjunction("), "{allow:?}");
    assert!(
        !after.flows.keys().any(|k| k.matches.contains(X2)),
        "evil.com matches no selector"
    );
    // The interception stays as it was.
    assert_eq!(
        clause_flows(&before, t::AP_INGRESS, DNS_INTERCEPT_PRIORITY),
        clause_flows(&after, t::AP_INGRESS, DNS_INTERCEPT_PRIORITY)
    );
}

#[test]
fn no_fqdn_rule_no_interception() {
    let m = Fx::new()
        .ns("default", "")
        .pod("default", "client", "app=client")
        .model();
    let d = desired(&m, &mut Ids::default());
    assert!(clause_flows(&d, t::AP_INGRESS, DNS_INTERCEPT_PRIORITY).is_empty());
}

#[test]
fn reference_verdicts_follow_the_learned_addresses() {
    let mut m = fixture();
    let cases = |x1: Verdict| {
        [
            ("default/client", X1, tcp(8080), x1),
            ("default/client", X1, tcp(80), Verdict::Drop),
            ("default/client", X2, tcp(8080), Verdict::Drop),
            ("default/other", X1, tcp(80), Verdict::Allow),
        ]
    };
    expect(&m, &cases(Verdict::Drop));
    m.fqdn_learned.insert(
        "a.b.foobar.com".into(),
        BTreeSet::from([X1.parse::<Ipv4Addr>().expect("address")]),
    );
    m.fqdn_learned.insert(
        "evil.com".into(),
        BTreeSet::from([X2.parse::<Ipv4Addr>().expect("address")]),
    );
    expect(&m, &cases(Verdict::Allow));
}
