//! Object → flows, diff minimality and manifest validation.

use xvs_agent::diff::{diff, messages, Mod};
use xvs_agent::model::{load_dir, parse_file, Cidr, Model};
use xvs_agent::pipeline::{cookie, desired, port_masks, t, Category, Desired, Ids};

const BASE: &str = r#"
kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: geneve
  tunnelOfport: 32768
  gateway: {name: antrea-gw0, ip: 10.10.0.1, mac: "aa:bb:cc:dd:ee:01"}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.10.0.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-2}
spec: {podCIDR: 10.10.1.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {team: a}}
"#;

fn pod(name: &str, ip: &str, port: u32, app: &str) -> String {
    format!(
        r#"
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels: {{app: {app}}}
  annotations: {{xvs.io/mac: "02:0a:0a:00:00:{port:02x}", xvs.io/interface: veth-{name}, xvs.io/ofport: "{port}"}}
spec: {{nodeName: node-1}}
status: {{podIP: {ip}}}
"#
    )
}

/// Service web (10.96.0.10:80 -> pods b and c on 8080), shared with the integration tests.
const SVC: &str = concat!("\n", include_str!("data/web-service.yaml"));

const NP: &str = r#"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    - ipBlock: {cidr: 172.16.0.0/16, except: [172.16.1.0/24]}
    ports: [{protocol: TCP, port: 8080}]
"#;

fn model(text: &str) -> Model {
    let mut m = Model::default();
    for o in parse_file("test.yaml", text).expect("valid manifests") {
        m.insert(o);
    }
    m
}

fn three_pods() -> String {
    format!(
        "{BASE}{}{}{}",
        pod("a", "10.10.0.2", 1, "client"),
        pod("b", "10.10.0.3", 2, "server"),
        pod("c", "10.10.0.4", 3, "server")
    )
}

fn has(d: &Desired, table: u8, prio: u16, m: &str) -> String {
    d.flows
        .iter()
        .find(|(k, _)| k.table == table && k.priority == prio && k.matches == m)
        .map(|(_, b)| b.actions.clone())
        .unwrap_or_else(|| panic!("no flow table={table} priority={prio} {m}"))
}

#[test]
fn every_generated_flow_and_group_encodes() {
    let m = model(&format!("{}{SVC}{NP}", three_pods()));
    let d = desired(&m, &mut Ids::default());
    let c = diff(&Desired::default(), &d);
    let msgs = messages(&c, 7).expect("all flows parse");
    assert_eq!(msgs.len(), d.flows.len() + d.groups.len());
    // groups come first
    assert!(matches!(msgs[0], Mod::Group(_)));
    for m in &msgs {
        if let Mod::Flow(f) = m {
            assert_eq!(f.flow.cookie >> 48, 7, "round in every cookie");
        }
    }
}

#[test]
fn pod_connectivity_flows() {
    let d = desired(&model(&three_pods()), &mut Ids::default());
    assert_eq!(has(&d, t::ROOT, 200, "arp"), "goto_table:1");
    assert_eq!(
        has(
            &d,
            t::ARP_SPOOF,
            200,
            "arp,in_port=2,arp_spa=10.10.0.3,arp_sha=02:0a:0a:00:00:02"
        ),
        "goto_table:2"
    );
    assert!(has(&d, t::CLASSIFIER, 190, "in_port=1").starts_with("set_field:0x3/0xf->reg0"));
    assert_eq!(
        has(
            &d,
            t::SPOOF,
            200,
            "ip,in_port=1,dl_src=02:0a:0a:00:00:01,nw_src=10.10.0.2"
        ),
        "goto_table:5"
    );
    assert_eq!(has(&d, t::CT_ZONE, 200, "ip"), "ct(table=7,zone=65520,nat)");
    assert_eq!(
        has(&d, t::UNSNAT, 200, "ip,nw_dst=10.10.0.1"),
        "ct(table=6,zone=65521,nat)"
    );
    // remote pod CIDR through the tunnel to the peer node
    let remote = has(&d, t::L3_FWD, 200, "ip,nw_dst=10.10.1.0/24");
    assert!(
        remote.contains("set_field:192.168.0.2->tun_dst"),
        "{remote}"
    );
    // Exactly the reference's forms: remote Pod CIDR -> GW MAC / global virtual MAC / tun_dst,
    // ToTunnel, L3DecTTL; decapsulated packets: PktSource tunnel + RewriteMAC -> UnSNAT;
    // intra-node (no RewriteMAC) -> L2ForwardingCalc; the global virtual MAC -> tunnel port.
    assert_eq!(
        remote,
        "set_field:aa:bb:cc:dd:ee:01->eth_src,set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:192.168.0.2->tun_dst,set_field:0x10/0xf0->reg0,goto_table:18"
    );
    assert_eq!(
        has(&d, t::CLASSIFIER, 200, "in_port=32768"),
        "set_field:0x1/0xf->reg0,set_field:0x200/0x200->reg0,goto_table:5"
    );
    assert_eq!(
        has(&d, t::L3_FWD, 200, "ip,reg0=0/0x200,nw_dst=10.10.0.0/24"),
        "goto_table:21"
    );
    assert_eq!(
        has(&d, t::L3_FWD, 200, "ip,reg0=0x200/0x200,nw_dst=10.10.0.3"),
        "set_field:aa:bb:cc:dd:ee:01->eth_src,set_field:02:0a:0a:00:00:02->eth_dst,set_field:0x30/0xf0->reg0,goto_table:18"
    );
    assert_eq!(
        has(&d, t::L2_FWD, 200, "dl_dst=aa:bb:cc:dd:ee:ff"),
        "set_field:0x8000->reg1,set_field:0x200000/0x600000->reg0,goto_table:22"
    );
    // ARP responder for the peer gateway
    has(&d, t::ARP_RESP, 200, "arp,arp_tpa=10.10.1.1,arp_op=1");
    assert!(has(&d, t::L2_FWD, 200, "dl_dst=02:0a:0a:00:00:03").starts_with("set_field:0x3->reg1"));
    assert_eq!(
        has(&d, t::OUTPUT, 200, "reg0=0x200000/0x600000"),
        "output:NXM_NX_REG1[]"
    );
    let pc = d
        .flows
        .values()
        .filter(|b| b.category == Category::PodConnectivity)
        .count();
    assert!(pc >= 3 * 5, "{pc}");
}

#[test]
fn service_select_group_and_dnat() {
    let mut ids = Ids::default();
    let d = desired(&model(&format!("{}{SVC}", three_pods())), &mut ids);
    assert_eq!(d.groups.len(), 1);
    let (gid, g) = d.groups.iter().next().expect("group");
    assert!(g.starts_with("type=select,"));
    assert!(g.contains("set_field:0xa0a0003->reg3,set_field:0x1f90/0xffff->reg4,resubmit(,11)"));
    assert!(g.contains("set_field:0xa0a0004->reg3"));
    let lb = has(
        &d,
        t::SERVICE_LB,
        200,
        "tcp,reg4=0x10000/0x70000,nw_dst=10.96.0.10,tp_dst=80",
    );
    assert!(lb.ends_with(&format!("group:{gid}")));
    assert_eq!(
        has(
            &d,
            t::EP_DNAT,
            200,
            "tcp,reg3=0xa0a0003,reg4=0x21f90/0x7ffff"
        ),
        "ct(commit,table=12,zone=65520,nat(dst=10.10.0.3:8080),exec(set_field:0x10/0x10->ct_mark))"
    );
}

#[test]
fn network_policy_conjunction_and_isolation() {
    let d = desired(
        &model(&format!("{}{NP}", three_pods())),
        &mut Ids::default(),
    );
    // applied-to clause per selected pod (b, c), peers (pod a + ipBlock minus except), port
    assert_eq!(
        has(&d, t::INGRESS_RULE, 200, "ip,reg1=0x2"),
        "conjunction(1,1/3)"
    );
    assert_eq!(
        has(&d, t::INGRESS_RULE, 200, "ip,reg1=0x3"),
        "conjunction(1,1/3)"
    );
    assert_eq!(
        has(&d, t::INGRESS_RULE, 200, "ip,nw_src=10.10.0.2"),
        "conjunction(1,2/3)"
    );
    has(&d, t::INGRESS_RULE, 200, "ip,nw_src=172.16.0.0/24");
    has(&d, t::INGRESS_RULE, 200, "ip,nw_src=172.16.128.0/17");
    assert!(!d.flows.keys().any(|k| k.matches.contains("172.16.1.0")));
    assert_eq!(
        has(&d, t::INGRESS_RULE, 200, "tcp,tp_dst=8080"),
        "conjunction(1,3/3)"
    );
    assert!(has(&d, t::INGRESS_RULE, 190, "conj_id=1,ip").contains("ct(commit,table=26,zone=65520"));
    // Isolation drops go through the metric table with a deny id per isolated Pod.
    let deny_b = has(&d, t::INGRESS_DEFAULT, 200, "ip,reg1=0x2");
    let deny_c = has(&d, t::INGRESS_DEFAULT, 200, "ip,reg1=0x3");
    assert_eq!(
        deny_b,
        "set_field:0x2->reg3,set_field:0x400/0x400->reg0,goto_table:26"
    );
    assert_eq!(
        deny_c,
        "set_field:0x3->reg3,set_field:0x400/0x400->reg0,goto_table:26"
    );
    assert_eq!(
        has(&d, t::INGRESS_METRIC, 200, "reg0=0x400/0x400,reg3=0x2"),
        "drop"
    );
    assert_eq!(
        has(&d, t::INGRESS_METRIC, 200, "reg0=0x400/0x400,reg3=0x3"),
        "drop"
    );
    assert!(!d
        .flows
        .keys()
        .any(|k| k.table == t::INGRESS_DEFAULT && k.matches == "ip,reg1=0x1"));
}

#[test]
fn shared_clause_flow_accumulates_conjunctions() {
    let np2 = NP.replace("only-client", "second").replace("8080", "9090");
    let d = desired(
        &model(&format!("{}{NP}{np2}", three_pods())),
        &mut Ids::default(),
    );
    let a = has(&d, t::INGRESS_RULE, 200, "ip,reg1=0x2");
    assert!(
        a.contains("conjunction(1,1/3)") && a.contains("conjunction(2,1/3)"),
        "{a}"
    );
    messages(&diff(&Desired::default(), &d), 1).expect("encodes");
}

#[test]
fn changing_one_pod_touches_only_its_flows() {
    let mut ids = Ids::default();
    let before = desired(&model(&format!("{}{SVC}", three_pods())), &mut ids);
    let changed = three_pods().replace("10.10.0.2", "10.10.0.9");
    let after = desired(&model(&format!("{changed}{SVC}")), &mut ids);
    let c = diff(&before, &after);
    assert!(c.group_add.is_empty() && c.group_mod.is_empty() && c.group_del.is_empty());
    let touched: Vec<_> = c
        .flow_add
        .iter()
        .map(|(k, _)| k)
        .chain(c.flow_mod.iter().map(|(k, _)| k))
        .chain(c.flow_del.iter())
        .collect();
    assert!(!touched.is_empty());
    for k in &touched {
        let b = after
            .flows
            .get(k)
            .or_else(|| before.flows.get(k))
            .expect("flow");
        assert!(
            k.matches.contains("10.10.0.2")
                || k.matches.contains("10.10.0.9")
                || k.matches == "in_port=1",
            "unrelated flow touched: {k:?} {b:?}"
        );
    }
    // ARP spoof, spoofguard, L3 pod IP: removed and added
    assert_eq!(c.flow_add.len(), 3);
    assert_eq!(c.flow_del.len(), 3);
    assert!(diff(&after, &after).is_empty());
}

#[test]
fn removing_an_endpoint_modifies_only_the_group_and_its_dnat_flow() {
    let mut ids = Ids::default();
    let before = desired(&model(&format!("{}{SVC}", three_pods())), &mut ids);
    let svc1 = SVC.replace("- addresses: [10.10.0.4]\n", "");
    let after = desired(&model(&format!("{}{svc1}", three_pods())), &mut ids);
    let c = diff(&before, &after);
    assert_eq!(c.group_mod.len(), 1);
    assert_eq!(c.flow_del.len(), 1);
    assert_eq!(c.len(), 2);
    let msgs = messages(&c, 1).expect("encodes");
    assert!(matches!(msgs[0], Mod::Group(_)), "groups first");
}

#[test]
fn cookies_carry_round_and_category() {
    assert_eq!(cookie(3, Category::Service), 0x0003_0300_0000_0000);
    assert_eq!(cookie(0xffff, Category::NetworkPolicy) >> 40, 0xff_ff02);
}

#[test]
fn cidr_except_and_port_ranges() {
    let c = Cidr::parse("10.0.0.0/8").expect("cidr");
    let holes = [Cidr::parse("10.1.0.0/16").expect("cidr")];
    let parts = c.minus(&holes);
    assert_eq!(parts.len(), 8);
    assert!(parts
        .iter()
        .all(|p| !p.covers(&holes[0]) && !holes[0].covers(p)));
    assert_eq!(port_masks(80, 80), vec![(80, 0xffff)]);
    assert_eq!(port_masks(0x8000, 0x800f), vec![(0x8000, 0xfff0)]);
    let r = port_masks(1000, 2000);
    let covered: u32 = r.iter().map(|(_, m)| 0x10000 - u32::from(*m)).sum();
    assert_eq!(covered, 1001);
    assert_eq!(port_masks(0, 65535), vec![(0, 0)]);
}

#[test]
fn bad_manifests_name_file_and_field() {
    let e = parse_file("x.yaml", &pod("a", "10.10.0.300", 1, "x")).expect_err("bad IP");
    assert_eq!(e.file, "x.yaml");
    assert_eq!(e.field, "doc[0].status.podIP");
    let e = parse_file(
        "y.yaml",
        "kind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 99999}]}\n",
    )
    .expect_err("bad port");
    assert_eq!(e.field, "doc[0].spec.ports[0].port");
    let e = parse_file("z.yaml", "kind: Pod\n  - : [").expect_err("bad yaml");
    assert_eq!(e.file, "z.yaml");
    let e = parse_file("w.yaml", "kind: Gadget\nmetadata: {name: g}\n").expect_err("kind");
    assert_eq!(e.field, "doc[0].kind");
}

#[test]
fn load_dir_skips_bad_files_only() {
    let dir = std::env::temp_dir().join(format!("xvs-agent-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("00-base.yaml"), three_pods()).expect("write");
    std::fs::write(dir.join("10-bad.yaml"), NP.replace("TCP", "TCPX")).expect("write");
    std::fs::write(dir.join("notes.txt"), "ignored").expect("write");
    let (m, errs) = load_dir(&dir).expect("load");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(m.pods.len(), 3);
    assert!(m.policies.is_empty());
    assert_eq!(errs.len(), 1);
    assert!(errs[0].file.ends_with("10-bad.yaml"));
    assert_eq!(errs[0].field, "doc[0].spec.ingress[0].ports[0].protocol");
}

#[test]
fn next_round_skips_zero_and_follows_the_highest() {
    use xvs_agent::ofconn::next_round;
    assert_eq!(next_round(&[]), 1);
    assert_eq!(next_round(&[0, 3 << 48, 1 << 48]), 4);
    assert_eq!(next_round(&[0xffff << 48]), 1);
}

#[test]
fn sync_state_plans_nothing_after_commit() {
    use xvs_agent::sync::SyncState;
    let m = model(&format!("{}{SVC}{NP}", three_pods()));
    let mut s = SyncState::new(9);
    let p = s.plan(&m).expect("plan");
    assert!(!p.mods.is_empty());
    s.committed(p);
    let again = s.plan(&m).expect("plan");
    assert!(again.mods.is_empty());
    // Deleting the policy removes exactly its flows.
    let m2 = model(&format!("{}{SVC}", three_pods()));
    let p2 = s.plan(&m2).expect("plan");
    assert!(p2.changes.flow_add.is_empty() && p2.changes.flow_mod.is_empty());
    assert!(p2.changes.flow_del.iter().all(|k| [
        t::INGRESS_RULE,
        t::INGRESS_DEFAULT,
        t::INGRESS_METRIC
    ]
    .contains(&k.table)));
}

#[test]
fn a_file_that_turns_bad_keeps_its_last_good_objects() {
    use std::collections::BTreeMap;
    use xvs_agent::model::load_dir_keeping;
    let dir = std::env::temp_dir().join(format!("xvs-agent-keep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("00-base.yaml"), three_pods()).expect("write");
    std::fs::write(dir.join("10-np.yaml"), NP).expect("write");
    let mut cache = BTreeMap::new();
    let (m1, e1) = load_dir_keeping(&dir, &mut cache).expect("load");
    assert!(e1.is_empty());
    assert_eq!(m1.policies.len(), 1);
    std::fs::write(dir.join("10-np.yaml"), NP.replace("8080", "Not_A_Port")).expect("write");
    let (m2, e2) = load_dir_keeping(&dir, &mut cache).expect("load");
    assert_eq!(e2.len(), 1);
    assert_eq!(m2, m1, "a broken edit changes nothing");
    std::fs::remove_file(dir.join("10-np.yaml")).expect("rm");
    let (m3, _) = load_dir_keeping(&dir, &mut cache).expect("load");
    std::fs::remove_dir_all(&dir).ok();
    assert!(m3.policies.is_empty(), "a deleted file's objects go");
}

#[test]
fn garbage_manifests_are_errors_not_panics() {
    let docs = [
        "",
        "---\n---\n",
        "[1, 2, 3]",
        "kind: 7",
        "kind: Pod",
        "kind: Pod\nmetadata: []\n",
        "kind: Pod\nmetadata: {name: p, annotations: {xvs.io/ofport: \"-1\"}}\nspec: {}\nstatus: {}\n",
        "kind: Node\nmetadata: {name: n}\nspec: {podCIDR: 10.0.0.0/33}\nstatus: {addresses: x}\n",
        "kind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 80, protocol: ICMP}]}\n",
        "kind: EndpointSlice\nmetadata: {name: e, labels: {kubernetes.io/service-name: s}}\nendpoints: [{addresses: [1]}]\n",
        "kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {matchExpressions: [{key: a, operator: Near}]}}\n",
        "kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, ingress: [{from: [{}]}]}\n",
        "kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}\n",
        "kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 1.2.3.4/40}}]}]}\n",
        "kind: AgentConfig\nspec: {nodeName: x, gateway: {ip: 1.2.3.4, mac: zz}}\n",
    ];
    for (i, d) in docs.iter().enumerate() {
        match parse_file("g.yaml", d) {
            Ok(objs) => assert!(i < 2 && objs.is_empty(), "doc {i} accepted: {objs:?}"),
            Err(e) => assert_eq!(e.file, "g.yaml"),
        }
    }
}

#[test]
fn an_empty_ingress_rule_allows_everyone_with_an_any_clause() {
    let np = "---\nkind: NetworkPolicy\nmetadata: {name: all, namespace: default}\nspec: {podSelector: {matchLabels: {app: server}}, ingress: [{}]}\n";
    let d = desired(
        &model(&format!("{}{np}", three_pods())),
        &mut Ids::default(),
    );
    assert_eq!(
        has(&d, t::INGRESS_RULE, 200, "ip,nw_src=0.0.0.0/0"),
        "conjunction(1,2/2)"
    );
    assert_eq!(
        has(&d, t::INGRESS_RULE, 200, "ip,reg1=0x2"),
        "conjunction(1,1/2)"
    );
    messages(&diff(&Desired::default(), &d), 1).expect("encodes");
}

/// A pod whose container declares `ports` (YAML flow list of container ports).
fn pod_with_ports(name: &str, ip: &str, port: u32, app: &str, ports: &str) -> String {
    pod(name, ip, port, app).replace(
        "spec: {nodeName: node-1}",
        &format!("spec: {{nodeName: node-1, containers: [{{name: main, ports: {ports}}}]}}"),
    )
}

/// b serves `http` on 8080, c on `c_http`; a defines no ports.
fn named_pods(c_http: u16) -> String {
    format!(
        "{BASE}{}{}{}",
        pod("a", "10.10.0.2", 1, "client"),
        pod_with_ports(
            "b",
            "10.10.0.3",
            2,
            "server",
            "[{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]"
        ),
        pod_with_ports(
            "c",
            "10.10.0.4",
            3,
            "server",
            &format!("[{{name: http, containerPort: {c_http}}}]")
        )
    )
}

const NP_NAMED_IN: &str = r#"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: default}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
"#;

const NP_NAMED_OUT: &str = r#"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{port: http}, {port: 443}]
"#;

/// The conjunction id in `actions` for clause `k`.
fn conj_of(actions: &str, clause: &str) -> u32 {
    actions
        .split("conjunction(")
        .skip(1)
        .find_map(|a| {
            let (id, rest) = a.split_once(',')?;
            rest.starts_with(clause).then(|| id.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no conjunction clause {clause} in {actions}"))
}

#[test]
fn metric_flows_count_allow_rules_by_ct_label() {
    use xvs_agent::pipeline::{allow_metric_keys, Direction, Owner};
    let egress = NP
        .replace("only-client", "egress-a")
        .replace("app: server", "app: client")
        .replace("policyTypes: [Ingress]", "policyTypes: [Egress]")
        .replace("ingress:", "egress:")
        .replace("- from:", "- to:");
    let d = desired(
        &model(&format!("{}{NP}{egress}", three_pods())),
        &mut Ids::default(),
    );
    let owner = Owner::Policy("default".into(), "only-client".into());
    let rp = &d.policies[&("default".to_string(), "only-client".to_string())];
    assert_eq!(rp.rules.len(), 1);
    let id = rp.rules[0].conj_ids[0];
    // The action flow commits the rule id into ct_label bits 0..31 and recirculates into
    // IngressMetric, where new and established packets of the rule are counted.
    assert_eq!(
        has(&d, t::INGRESS_RULE, 190, &format!("conj_id={id},ip")),
        format!("set_field:{id:#x}->reg6,ct(commit,table=26,zone=65520,exec(set_field:{id:#x}/0xffffffff->ct_label))")
    );
    let [new, est] = allow_metric_keys(Direction::Ingress, id);
    assert_eq!(
        new.matches,
        format!("ct_state=+new,ct_label={id:#x}/0xffffffff,ip")
    );
    assert_eq!(
        est.matches,
        format!("ct_state=-new,ct_label={id:#x}/0xffffffff,ip")
    );
    for k in [&new, &est] {
        assert_eq!(d.flows[k].actions, "goto_table:27");
        assert!(d.owners[k].contains(&owner));
    }
    // Egress: ct_label bits 32..63, EgressMetric, then L3Forwarding.
    let re = &d.policies[&("default".to_string(), "egress-a".to_string())];
    let eid = re.rules[0].conj_ids[0];
    assert_ne!(eid, id);
    let [enew, eest] = allow_metric_keys(Direction::Egress, eid);
    assert_eq!(enew.table, t::EGRESS_METRIC);
    assert_eq!(
        enew.matches,
        format!(
            "ct_state=+new,ct_label={:#x}/0xffffffff00000000,ip",
            u64::from(eid) << 32
        )
    );
    assert_eq!(d.flows[&enew].actions, "goto_table:16");
    assert_eq!(d.flows[&eest].actions, "goto_table:16");
    assert!(has(&d, t::EGRESS_RULE, 190, &format!("conj_id={eid},ip")).contains(&format!(
        "set_field:{eid:#x}->reg5,ct(commit,table=15,zone=65520,exec(set_field:{:#x}/0xffffffff00000000->ct_label))",
        u64::from(eid) << 32
    )));
    // Egress isolation of a is counted in EgressMetric with its own deny id.
    let (dir, deny, pod) = &re.isolation[0];
    assert_eq!(*dir, Direction::Egress);
    assert_eq!(pod, &("default".to_string(), "a".to_string()));
    assert_eq!(
        has(&d, t::EGRESS_DEFAULT, 200, "ip,nw_src=10.10.0.2"),
        format!("set_field:{deny:#x}->reg3,set_field:0x400/0x400->reg0,goto_table:15")
    );
    assert_eq!(
        has(
            &d,
            t::EGRESS_METRIC,
            200,
            &format!("reg0=0x400/0x400,reg3={deny:#x}")
        ),
        "drop"
    );
    messages(&diff(&Desired::default(), &d), 1).expect("encodes");
}

#[test]
fn flows_are_attributed_to_their_objects() {
    use xvs_agent::pipeline::Owner;
    let d = desired(
        &model(&format!("{}{SVC}{NP}", three_pods())),
        &mut Ids::default(),
    );
    let a = Owner::Pod("default".into(), "a".into());
    let tables: Vec<u8> = d.flows_of(&a).map(|(k, _)| k.table).collect();
    assert_eq!(
        tables,
        vec![t::ARP_SPOOF, t::CLASSIFIER, t::SPOOF, t::L3_FWD, t::L2_FWD]
    );
    let web = Owner::Service("default".into(), "web".into());
    let svc: Vec<u8> = d.flows_of(&web).map(|(k, _)| k.table).collect();
    assert_eq!(svc, vec![t::SERVICE_LB, t::EP_DNAT, t::EP_DNAT]);
    assert_eq!(d.group_owners.values().collect::<Vec<_>>(), vec![&web]);
    let np = Owner::Policy("default".into(), "only-client".into());
    assert!(d.flows_of(&np).any(|(k, _)| k.table == t::INGRESS_METRIC));
    assert!(d.flows_of(&np).any(|(k, _)| k.table == t::INGRESS_DEFAULT));
    // Pipeline skeleton flows belong to nobody.
    assert!(!d.owners.contains_key(&xvs_agent::pipeline::FlowKey {
        table: t::ROOT,
        priority: 0,
        matches: String::new()
    }));
}

#[test]
fn ingress_named_ports_resolve_per_applied_pod() {
    let d = desired(
        &model(&format!("{}{NP_NAMED_IN}", named_pods(9090))),
        &mut Ids::default(),
    );
    let b = conj_of(&has(&d, t::INGRESS_RULE, 200, "ip,reg1=0x2"), "1/3");
    let c = conj_of(&has(&d, t::INGRESS_RULE, 200, "ip,reg1=0x3"), "1/3");
    assert_ne!(b, c, "different numbers, different conjunctions");
    assert_eq!(
        conj_of(&has(&d, t::INGRESS_RULE, 200, "tcp,tp_dst=8080"), "3/3"),
        b
    );
    assert_eq!(
        conj_of(&has(&d, t::INGRESS_RULE, 200, "tcp,tp_dst=9090"), "3/3"),
        c
    );
    // The peer clause is shared by both.
    let peers = has(&d, t::INGRESS_RULE, 200, "ip,nw_src=10.10.0.2");
    assert!(
        peers.contains(&format!("conjunction({b},2/3)"))
            && peers.contains(&format!("conjunction({c},2/3)"))
    );
    // `dns` is UDP: a TCP `http` rule never resolves to it.
    assert!(!d.flows.keys().any(|k| k.matches.contains("tp_dst=53")));
    let rp = &d.policies[&("default".to_string(), "web-in".to_string())];
    assert_eq!(rp.rules[0].conj_ids.len(), 2);
    messages(&diff(&Desired::default(), &d), 1).expect("encodes");
}

#[test]
fn a_named_port_no_pod_defines_matches_nothing() {
    let np = NP_NAMED_IN.replace("port: http", "port: nope");
    let d = desired(
        &model(&format!("{}{np}", named_pods(9090))),
        &mut Ids::default(),
    );
    assert!(!d
        .flows
        .keys()
        .any(|k| k.table == t::INGRESS_RULE && k.priority > 0));
    // The Pods are still isolated.
    has(&d, t::INGRESS_DEFAULT, 200, "ip,reg1=0x2");
    has(&d, t::INGRESS_DEFAULT, 200, "ip,reg1=0x3");
    let rp = &d.policies[&("default".to_string(), "web-in".to_string())];
    assert!(rp.rules[0].conj_ids.is_empty());
    // A named port with endPort, or a bad name, is a manifest error naming the field.
    let bad = NP_NAMED_IN.replace("port: http", "port: http, endPort: 90");
    let e = parse_file("np.yaml", &bad).expect_err("endPort with a name");
    assert!(
        e.to_string().contains("spec.ingress[0].ports[0].endPort"),
        "{e}"
    );
    let bad = NP_NAMED_IN.replace("port: http", "port: Bad_Name");
    let e = parse_file("np.yaml", &bad).expect_err("bad name");
    assert!(
        e.to_string().contains("spec.ingress[0].ports[0].port"),
        "{e}"
    );
}

#[test]
fn egress_named_ports_resolve_through_peer_pods() {
    let d = desired(
        &model(&format!("{}{NP_NAMED_OUT}", named_pods(9090))),
        &mut Ids::default(),
    );
    // Numeric port 443: one conjunction over both peers.
    let num = conj_of(&has(&d, t::EGRESS_RULE, 200, "tcp,tp_dst=443"), "3/3");
    let to_b = has(&d, t::EGRESS_RULE, 200, "ip,nw_dst=10.10.0.3");
    let to_c = has(&d, t::EGRESS_RULE, 200, "ip,nw_dst=10.10.0.4");
    assert!(to_b.contains(&format!("conjunction({num},2/3)")));
    assert!(to_c.contains(&format!("conjunction({num},2/3)")));
    // Named: b's 8080 and c's 9090, each with its own peer.
    let n8080 = conj_of(&has(&d, t::EGRESS_RULE, 200, "tcp,tp_dst=8080"), "3/3");
    let n9090 = conj_of(&has(&d, t::EGRESS_RULE, 200, "tcp,tp_dst=9090"), "3/3");
    assert!(
        to_b.contains(&format!("conjunction({n8080},2/3)"))
            && !to_b.contains(&format!("conjunction({n9090},"))
    );
    assert!(
        to_c.contains(&format!("conjunction({n9090},2/3)"))
            && !to_c.contains(&format!("conjunction({n8080},"))
    );
    let from_a = has(&d, t::EGRESS_RULE, 200, "ip,nw_src=10.10.0.2");
    for id in [num, n8080, n9090] {
        assert!(
            from_a.contains(&format!("conjunction({id},1/3)")),
            "{from_a}"
        );
    }
    messages(&diff(&Desired::default(), &d), 1).expect("encodes");
}

#[test]
fn changing_one_pods_named_port_touches_only_its_flows() {
    let mut ids = Ids::default();
    let before = desired(
        &model(&format!("{}{NP_NAMED_IN}", named_pods(9090))),
        &mut ids,
    );
    let b = conj_of(&has(&before, t::INGRESS_RULE, 200, "ip,reg1=0x2"), "1/3");
    let c = conj_of(&has(&before, t::INGRESS_RULE, 200, "ip,reg1=0x3"), "1/3");
    // c now serves http on 8080 too: it joins b's conjunction; c's old one goes.
    let after = desired(
        &model(&format!("{}{NP_NAMED_IN}", named_pods(8080))),
        &mut ids,
    );
    assert_eq!(
        conj_of(&has(&after, t::INGRESS_RULE, 200, "ip,reg1=0x3"), "1/3"),
        b
    );
    let ch = diff(&before, &after);
    assert!(ch.flow_add.is_empty(), "{:?}", ch.flow_add);
    let modified: Vec<&str> = ch
        .flow_mod
        .iter()
        .map(|(k, _)| k.matches.as_str())
        .collect();
    assert_eq!(modified, vec!["ip,nw_src=10.10.0.2", "ip,reg1=0x3"]);
    for k in &ch.flow_del {
        let gone = &before.flows[k].actions;
        assert!(
            k.matches.contains("9090")
                || k.matches.contains(&format!("conj_id={c},"))
                || k.matches.contains(&format!("ct_label={c:#x}/")),
            "unrelated flow deleted: {k:?} {gone}"
        );
    }
    assert_eq!(
        ch.flow_del.len(),
        4,
        "clause, action and two metric flows of c's conjunction"
    );
    // Changing c's address touches only c's own flows (the rule's clauses key on ofport).
    let moved = named_pods(8080).replace("10.10.0.4", "10.10.0.9");
    let again = desired(&model(&format!("{moved}{NP_NAMED_IN}")), &mut ids);
    let ch = diff(&after, &again);
    for k in ch
        .flow_add
        .iter()
        .map(|(k, _)| k)
        .chain(&ch.flow_del)
        .chain(ch.flow_mod.iter().map(|(k, _)| k))
    {
        assert!(
            k.matches.contains("10.10.0.4") || k.matches.contains("10.10.0.9"),
            "unrelated flow touched: {k:?}"
        );
    }
}
