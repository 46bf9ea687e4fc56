//! Antrea-native flows: the conjunction encoding, dispositions, tables and priorities, and a
//! property test: the generated flows, translated by xvs-flowtable through the whole agent
//! pipeline, give the reference evaluator's verdict for random tiers, policies, Pods and
//! packets.

mod anp_common;

use anp_common::*;
use proptest::prelude::*;
use xvs_agent::anp::eval::{verdict, Conn, Verdict, L4};
use xvs_agent::anp::flows::{
    packet_in_meter, AGENT_CONTROLLER_ID, CONJ_BASE, DEFAULT_PACKET_IN_RATE, PACKET_IN_GROUP_BASE,
    PACKET_IN_METER,
};
use xvs_agent::diff::{diff, messages};
use xvs_agent::model::{Model, Proto};
use xvs_agent::pipeline::{desired, t, Desired, Ids};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::group::{parse_group_mod, GroupCommand};
use xvs_flowtable::pipeline::{load_flows, MeterCommand, MeterMod, Pipeline, PipelineMod};
use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
use xvs_flowtable::NameMap;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

/// The conjunction id and actions of the action flow at `prio`.
fn conj_at(d: &Desired, table: u8, prio: u16) -> (u32, String) {
    d.flows
        .iter()
        .find(|(k, _)| k.table == table && k.priority == prio && k.matches.starts_with("conj_id="))
        .and_then(|(k, b)| {
            let id = k.matches.trim_start_matches("conj_id=").split(',').next()?;
            Some((id.parse().ok()?, b.actions.clone()))
        })
        .unwrap_or_else(|| panic!("no action flow at table={table} priority={prio}"))
}

fn flow(d: &Desired, table: u8, prio: u16, m: &str) -> String {
    d.flows
        .iter()
        .find(|(k, _)| k.table == table && k.priority == prio && k.matches == m)
        .map(|(_, b)| b.actions.clone())
        .unwrap_or_else(|| {
            let near: Vec<_> = d.flows.keys().filter(|k| k.table == table).collect();
            panic!("no flow table={table} priority={prio} {m}; table has {near:#?}")
        })
}

const WEB_DB: &str = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: web-app-db-network-policy}
spec:
  priority: 5
  tier: application
  appliedTo: [{podSelector: {matchLabels: {app: db}}}]
  ingress:
  - {action: Allow, from: [{podSelector: {matchLabels: {app: web}}}], ports: [{protocol: TCP, port: 3306}], name: AllowFromWeb}
  - {action: Drop, name: DropOthers}
"#;

fn web_db() -> Fx {
    Fx::new()
        .ns("default", "")
        .pod("default", "web", "app=web")
        .pod("default", "db", "app=db")
}

#[test]
fn doc_pipeline_example_conjunction_shape() {
    let m = web_db().with(WEB_DB).model();
    let d = desired(&m, &mut Ids::default());
    let (web, db) = (addr(&m, "default/web"), addr(&m, "default/db"));
    let allow = CONJ_BASE;
    let drop = CONJ_BASE + 1;
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14500, &format!("ip,nw_src={web}")),
        format!("conjunction({allow},1/3)")
    );
    // db is ofport 11 in the fixture.
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14500, "ip,reg1=0xb"),
        format!("conjunction({allow},2/3)")
    );
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14500, "tcp,tp_dst=3306"),
        format!("conjunction({allow},3/3)")
    );
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14500, &format!("conj_id={allow},ip")),
        format!("set_field:{allow:#x}->reg6,ct(commit,table=26,zone=65520,exec(set_field:{allow:#x}/0xffffffff->ct_label))")
    );
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14499, "ip,nw_src=0.0.0.0/0"),
        format!("conjunction({drop},1/2)")
    );
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14499, "ip,reg1=0xb"),
        format!("conjunction({drop},2/2)")
    );
    assert_eq!(
        flow(&d, t::AP_INGRESS, 14499, &format!("conj_id={drop},ip")),
        format!("set_field:{drop:#x}->reg3,set_field:0x400/0x400->reg0,goto_table:26")
    );
    assert_eq!(
        flow(
            &d,
            t::INGRESS_METRIC,
            200,
            &format!("reg0=0x400/0x400,reg3={drop:#x}")
        ),
        "drop"
    );
    assert!(
        !d.flows
            .keys()
            .any(|k| k.table == t::AP_EGRESS && k.priority < 64990 && k.priority > 0),
        "no egress flows"
    );
    assert!(d.flows.keys().any(|k| k.matches.contains(&db.to_string())));
    messages(&diff(&Desired::default(), &d), 1).expect("every flow encodes");
}

#[test]
fn reject_pass_and_baseline_land_where_antrea_puts_them() {
    let pols = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: mix}
spec:
  priority: 1
  tier: securityops
  appliedTo: [{podSelector: {matchLabels: {app: db}}}]
  egress:
  - {action: Pass, to: [{ipBlock: {cidr: 10.0.10.0/24}}], name: p}
  - {action: Reject, protocols: [{icmp: {icmpType: 8}}], name: r}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: base}
spec:
  priority: 1
  tier: baseline
  appliedTo: [{podSelector: {matchLabels: {app: db}}}]
  egress: [{action: Drop, to: [{podSelector: {matchLabels: {app: web}}}], ports: [{protocol: TCP, port: 8000, endPort: 8015}]}]
"#;
    let m = web_db().with(pols).model();
    let d = desired(&m, &mut Ids::default());
    let db = addr(&m, "default/db");
    let web = addr(&m, "default/web");
    // securityops p1: 65000 - (200*100 + 20) = 44980, rule 1 at 44979.
    let (pass_id, pass) = conj_at(&d, t::AP_EGRESS, 44980);
    assert_eq!(pass, format!("set_field:{pass_id:#x}->reg5,goto_table:13"));
    flow(&d, t::AP_EGRESS, 44980, &format!("ip,nw_src={db}"));
    flow(&d, t::AP_EGRESS, 44980, "ip,nw_dst=10.0.10.0/24");
    let (rej, a) = conj_at(&d, t::AP_EGRESS, 44979);
    assert_eq!(
        flow(&d, t::AP_EGRESS, 44979, "icmp,icmp_type=8"),
        format!("conjunction({rej},3/3)")
    );
    assert!(
        a.ends_with(&format!(
            "group:{}",
            PACKET_IN_GROUP_BASE + u32::from(t::EGRESS_METRIC)
        )),
        "{a}"
    );
    assert!(
        a.contains("set_field:0x4000000/0xfe000000->reg0"),
        "reject op: {a}"
    );
    let g = &d.groups[&(PACKET_IN_GROUP_BASE + u32::from(t::EGRESS_METRIC))];
    assert!(
        g.starts_with("type=all,bucket=bucket_id:0,actions=resubmit(,15)"),
        "{g}"
    );
    assert_eq!(
        flow(&d, t::OUTPUT, 200, "reg0=0x4400000/0xfe600000"),
        format!(
            "meter:{PACKET_IN_METER},controller(reason=no_match,id={AGENT_CONTROLLER_ID},userdata=01.02,max_len=65535)"
        )
    );
    // The meter the agent installs for it parses as Antrea's: pktps, burst 2x, one drop band.
    let m = xvs_flowtable::meter::parse_meter(&packet_in_meter(500)).expect("meter parses");
    assert_eq!(m.meter_id, PACKET_IN_METER);
    assert_eq!(m.bands.len(), 1);
    assert_eq!((m.bands[0].rate, m.bands[0].burst_size), (500, 1000));
    // Baseline p1 rule 0: 180 - 10 = 170 in EgressDefaultRule, port range as masks.
    let (base, _) = conj_at(&d, t::EGRESS_DEFAULT, 170);
    flow(&d, t::EGRESS_DEFAULT, 170, &format!("ip,nw_dst={web}"));
    assert_eq!(
        flow(&d, t::EGRESS_DEFAULT, 170, "tcp,tp_dst=0x1f40/0xfff0"),
        format!("conjunction({base},3/3)")
    );
    messages(&diff(&Desired::default(), &d), 1).expect("every flow and group encodes");
    // The same Pass with enableLogging: Antrea's conjunctionActionPassFlow, disposition Pass
    // (3 << 11), op log, the rule table in reg2, and the fork group continuing in EgressRule.
    let logged = pols.replace("name: p}", "name: p, enableLogging: true}");
    let m = web_db().with(&logged).model();
    let mut ids = Ids::default();
    let d = desired(&m, &mut ids);
    let (pass_id, pass) = conj_at(&d, t::AP_EGRESS, 44980);
    assert_eq!(
        pass,
        format!(
            "set_field:{pass_id:#x}->reg5,set_field:0x1800/0x1800->reg0,set_field:0x2000000/0xfe000000->reg0,set_field:{:#x}/0xff->reg2,group:{}",
            t::AP_EGRESS,
            PACKET_IN_GROUP_BASE + u32::from(t::EGRESS_RULE)
        )
    );
    let g = &d.groups[&(PACKET_IN_GROUP_BASE + u32::from(t::EGRESS_RULE))];
    assert!(
        g.starts_with("type=all,bucket=bucket_id:0,actions=resubmit(,13)"),
        "{g}"
    );
    assert_eq!(
        ids.anp.logged.get(&pass_id).map(|r| r.action),
        Some(xvs_agent::anp::types::Action::Pass)
    );
    messages(&diff(&Desired::default(), &d), 1).expect("every flow and group encodes");
}

#[test]
fn to_services_match_the_service_group_in_reg7() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\nspec: {clusterIP: 10.96.0.50, ports: [{name: http, protocol: TCP, port: 80}]}\n";
    let acnp = "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: ts}\nspec:\n  priority: 5\n  tier: securityops\n  appliedTo: [{podSelector: {matchLabels: {app: web}}}]\n  egress: [{action: Drop, toServices: [{name: s, namespace: default}]}]\n";
    let m = web_db().with(svc).with(acnp).model();
    let d = desired(&m, &mut Ids::default());
    // The Service's group (the only one: id 1) is what ServiceLB loads into reg7.
    assert!(flow(
        &d,
        t::SERVICE_LB,
        200,
        "tcp,reg4=0x10000/0x70000,nw_dst=10.96.0.50,tp_dst=80"
    )
    .contains("set_field:0x1->reg7"));
    assert_eq!(
        flow(&d, t::AP_EGRESS, 44900, "ip,reg7=0x1"),
        format!("conjunction({CONJ_BASE},2/2)")
    );
}

#[test]
fn recomputation_is_stable_and_a_collision_repacks_in_one_change_set() {
    let mut ids = Ids::default();
    let m = web_db().with(WEB_DB).model();
    let d1 = desired(&m, &mut ids);
    assert_eq!(desired(&m, &mut ids), d1, "same model, same flows");
    assert!(diff(&d1, &desired(&m, &mut ids)).is_empty());
    // A policy at 5.001 has the same guesses; it goes below without moving the first one.
    let second = WEB_DB
        .replace("web-app-db-network-policy", "second")
        .replace("priority: 5", "priority: 5.001");
    let m2 = web_db().with(WEB_DB).with(&second).model();
    let d2 = desired(&m2, &mut ids);
    let c = diff(&d1, &d2);
    assert!(
        c.flow_del.is_empty(),
        "nothing of the first policy moves: {:?}",
        c.flow_del
    );
    let prios: std::collections::BTreeSet<u16> = d2
        .flows
        .keys()
        .filter(|k| k.table == t::AP_INGRESS && k.matches.starts_with("conj_id"))
        .map(|k| k.priority)
        .collect();
    assert_eq!(prios.len(), 4, "four rules, four priorities: {prios:?}");
    // Deleting everything removes every Antrea-native flow and frees the state.
    let d3 = desired(&web_db().model(), &mut ids);
    assert!(!d3
        .flows
        .keys()
        .any(|k| k.table == t::AP_INGRESS && k.priority != 64990 && k.priority != 0));
    assert!(ids.anp.priorities.is_empty());
}

// ---------------------------------------------------------------- flows vs reference evaluator

/// Translates the first packet of `conn` through `p`, following recirculations as a
/// conntrack that sees only new connections would; the verdict is read from the outputs and
/// the packet-ins.
fn run(p: &Pipeline, m: &Model, c: &Conn) -> Verdict {
    let pod = |ip| m.pods.values().find(|q| q.ip == ip);
    let gw_mac = 0xaabb_ccdd_ee01u64;
    let mac =
        |p: &xvs_agent::model::Pod| p.mac.0.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    let mut k = FlowKey::ZERO;
    let (in_port, src_mac) = match pod(c.src) {
        Some(q) => (q.ofport, mac(q)),
        None => (2, gw_mac),
    };
    let (want_port, dst_mac) = match pod(c.dst) {
        Some(q) => (q.ofport, mac(q)),
        None => (2, gw_mac),
    };
    k.set(layout::IN_PORT, u64::from(in_port));
    k.set(layout::ETH_TYPE, 0x0800);
    k.set(layout::ETH_SRC, src_mac);
    k.set(layout::ETH_DST, dst_mac);
    k.set(layout::NW_SRC, u64::from(u32::from(c.src)));
    k.set(layout::NW_DST, u64::from(u32::from(c.dst)));
    k.set(layout::NW_TTL, 64);
    match c.l4 {
        L4::Ports {
            proto,
            sport,
            dport,
        } => {
            k.set(
                layout::NW_PROTO,
                match proto {
                    Proto::Tcp => 6,
                    Proto::Udp => 17,
                    Proto::Sctp => 132,
                },
            );
            k.set(layout::TP_SRC, u64::from(sport));
            k.set(layout::TP_DST, u64::from(dport));
        }
        L4::Icmp {
            icmp_type,
            icmp_code,
        } => {
            k.set(layout::NW_PROTO, 1);
            k.set(layout::TP_SRC, u64::from(icmp_type));
            k.set(layout::TP_DST, u64::from(icmp_code));
        }
    }
    let mut scratch = TranslateScratch::new();
    let mut out = Translation::new();
    let mut outputs = Vec::new();
    let mut rejects = 0;
    for _ in 0..8 {
        translate(p.snapshot(), &k, 0, &mut scratch, &mut out);
        assert_eq!(out.reason, None, "translation of {c:?} failed");
        for r in &out.controller {
            if r.controller.userdata.get(1).is_some_and(|op| op & 2 != 0) {
                rejects += 1;
            }
        }
        let mut next = None;
        for a in &out.actions {
            match a {
                DpAction::Output(p) => outputs.push(*p),
                DpAction::Recirc(id) => next = Some(*id),
                _ => {}
            }
        }
        match next {
            Some(id) => {
                k.set(layout::RECIRC_ID, u64::from(id));
                k.set(layout::CT_STATE, 0x21); // +new+trk
            }
            None => break,
        }
    }
    if outputs.contains(&want_port) {
        assert!(rejects == 0, "{c:?} both delivered and rejected");
        Verdict::Allow
    } else if rejects > 0 {
        Verdict::Reject
    } else {
        assert!(outputs.is_empty(), "{c:?} went to {outputs:?}");
        Verdict::Drop
    }
}

/// Loads `d` into a fresh xvs-flowtable pipeline (groups, then flows, as the agent sends).
fn load(d: &Desired) -> Pipeline {
    let names = NameMap::new();
    let mut p = Pipeline::new();
    // The agent installs the packet-in meter at connect, before any flow.
    let meter = xvs_flowtable::meter::parse_meter(&packet_in_meter(DEFAULT_PACKET_IN_RATE))
        .expect("meter parses");
    p.commit(
        &[PipelineMod::Meter(MeterMod {
            command: MeterCommand::Add,
            meter,
        })],
        0,
    )
    .expect("meter");
    let groups: Vec<PipelineMod> = d
        .groups
        .iter()
        .map(|(id, g)| {
            PipelineMod::Group(
                parse_group_mod(&format!("group_id={id},{g}"), GroupCommand::Add, &names)
                    .unwrap_or_else(|e| panic!("group {id} {g}: {e}")),
            )
        })
        .collect();
    if !groups.is_empty() {
        p.commit(&groups, 0).expect("groups");
    }
    let text: String = d
        .flows
        .iter()
        .map(|(k, b)| Desired::flow_line(k, b, 1) + "\n")
        .collect();
    load_flows(&mut p, &text, &names, 0).expect("flows load");
    p
}

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
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
}

fn selector(g: &mut Gen, keys: &[(&str, &[&str])]) -> String {
    let (k, vals) = keys[g.below(keys.len())];
    match g.below(5) {
        0 => "{}".to_string(),
        1 => format!("{{matchExpressions: [{{key: {k}, operator: Exists}}]}}"),
        2 => format!(
            "{{matchExpressions: [{{key: {k}, operator: NotIn, values: [{}]}}]}}",
            g.pick(vals)
        ),
        _ => format!("{{matchLabels: {{{k}: {}}}}}", g.pick(vals)),
    }
}

const POD_KEYS: &[(&str, &[&str])] = &[("app", &["a", "b", "c"]), ("role", &["db", "web"])];
const NS_KEYS: &[(&str, &[&str])] = &[("env", &["prod", "dev"]), ("org", &["o1", "o2"])];

/// A random cluster: namespaces, Pods, tiers, groups, Antrea-native and K8s policies.
fn scenario(seed: u64) -> (Fx, Vec<String>) {
    scenario_without(seed, None)
}

/// [`scenario`] without its `skip`-th policy (the random draws stay the same).
fn scenario_without(seed: u64, skip: Option<usize>) -> (Fx, Vec<String>) {
    let mut g = Gen(seed | 1);
    let mut f = Fx::new();
    let n_ns = 2 + g.below(3);
    let nss: Vec<String> = (0..n_ns).map(|i| format!("n{i}")).collect();
    for ns in &nss {
        let mut l = Vec::new();
        if g.chance(70) {
            l.push(format!("env={}", g.pick(&["prod", "dev"])));
        }
        if g.chance(70) {
            l.push(format!("org={}", g.pick(&["o1", "o2"])));
        }
        f = f.ns(ns, &l.join(","));
    }
    let mut pods = Vec::new();
    for ns in &nss {
        for i in 0..(2 + g.below(3)) {
            let mut l = vec![format!("app={}", g.pick(&["a", "b", "c"]))];
            if g.chance(50) {
                l.push(format!("role={}", g.pick(&["db", "web"])));
            }
            let sa = g.pick(&["sa1", "sa2"]);
            f = f.pod_sa(ns, &format!("p{i}"), &l.join(","), sa);
            pods.push(format!("{ns}/p{i}"));
        }
    }
    // Tiers, groups.
    let mut tiers: Vec<&str> = vec!["emergency", "securityops", "application", "platform"];
    for (name, prio) in [("t1", 5), ("t2", 240)] {
        if g.chance(50) {
            f = f.with(&format!("apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {{name: {name}}}\nspec: {{priority: {prio}}}\n"));
            tiers.push(name);
        }
    }
    let pod_ip = |fx: &Fx, who: &str| addr(&fx.model_unchecked(), who);
    let victim = pods[g.below(pods.len())].clone();
    let victim_ip = pod_ip(&f, &victim);
    f = f.with(&format!(
        "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: cg0}}\nspec: {{podSelector: {}}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: cg1}}\nspec: {{ipBlocks: [{{cidr: 10.0.10.0/24}}, {{cidr: 10.10.0.0/24, except: [{victim_ip}/32]}}]}}\n---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: cg2}}\nspec: {{childGroups: [cg0, cg1]}}\n",
        selector(&mut g, POD_KEYS)
    ));
    for ns in &nss {
        f = f.with(&format!(
            "apiVersion: crd.antrea.io/v1beta1\nkind: Group\nmetadata: {{name: g0, namespace: {ns}}}\nspec: {{podSelector: {}}}\n",
            selector(&mut g, POD_KEYS)
        ));
    }
    // Policies with unique (tier, priority).
    let n_pol = 3 + g.below(10);
    for i in 0..n_pol {
        let annp = g.chance(35);
        let ns = nss[g.below(nss.len())].clone();
        let tier = if g.chance(20) {
            "baseline"
        } else {
            g.pick(&tiers)
        };
        let prio = format!("{}.{}", 1 + i * 3, g.below(10));
        let applied = match (annp, g.below(5)) {
            (true, 0) => "[{group: g0}]".to_string(),
            (true, _) => format!("[{{podSelector: {}}}]", selector(&mut g, POD_KEYS)),
            (false, 0) => format!("[{{namespaceSelector: {}}}]", selector(&mut g, NS_KEYS)),
            (false, 1) => format!(
                "[{{podSelector: {}, namespaceSelector: {}}}]",
                selector(&mut g, POD_KEYS),
                selector(&mut g, NS_KEYS)
            ),
            (false, 2) => "[{group: cg0}]".to_string(),
            (false, 3) => format!(
                "[{{serviceAccount: {{name: {}, namespace: {ns}}}}}]",
                g.pick(&["sa1", "sa2"])
            ),
            (false, _) => format!("[{{podSelector: {}}}]", selector(&mut g, POD_KEYS)),
        };
        let mut body = String::new();
        for dir in ["ingress", "egress"] {
            let n_rules = g.below(4);
            if n_rules == 0 {
                continue;
            }
            body.push_str(&format!("  {dir}:\n"));
            for r in 0..n_rules {
                let actions: &[&str] = if tier == "baseline" {
                    &["Allow", "Drop", "Reject"]
                } else {
                    &["Allow", "Drop", "Reject", "Pass"]
                };
                let action = g.pick(actions);
                let peers_key = if dir == "ingress" { "from" } else { "to" };
                let mut peers = Vec::new();
                for _ in 0..g.below(3) {
                    let kinds = if annp { 6 } else { 10 };
                    peers.push(match g.below(kinds) {
                        0 => format!("{{podSelector: {}}}", selector(&mut g, POD_KEYS)),
                        1 => format!("{{podSelector: {}, namespaceSelector: {}}}", selector(&mut g, POD_KEYS), selector(&mut g, NS_KEYS)),
                        2 => format!("{{ipBlock: {{cidr: 10.10.0.0/24, except: [{victim_ip}/32]}}}}"),
                        3 => "{ipBlock: {cidr: 10.0.10.0/24}}".to_string(),
                        4 => "{podSelector: {matchLabels: {app: nobody}}}".to_string(),
                        5 => if annp { "{group: g0}".to_string() } else { format!("{{namespaceSelector: {}}}", selector(&mut g, NS_KEYS)) },
                        6 => "{namespaces: {match: Self}}".to_string(),
                        7 => "{namespaces: {sameLabels: [org]}}".to_string(),
                        8 => format!("{{group: {}}}", g.pick(&["cg0", "cg1", "cg2"])),
                        _ => match g.below(2) {
                            0 => format!("{{serviceAccount: {{name: {}, namespace: {}}}}}", g.pick(&["sa1", "sa2"]), nss[g.below(nss.len())]),
                            _ => "{nodeSelector: {matchLabels: {node-role.kubernetes.io/control-plane: \"\"}}}".to_string(),
                        },
                    });
                }
                let services = match g.below(6) {
                    0 => ", ports: [{protocol: TCP, port: 80}]",
                    1 => ", ports: [{protocol: TCP, port: 8000, endPort: 8100}, {protocol: UDP, port: 53}]",
                    2 => ", protocols: [{icmp: {icmpType: 8, icmpCode: 0}}]",
                    3 => ", ports: [{protocol: UDP}]",
                    _ => "",
                };
                body.push_str(&format!(
                    "  - {{action: {action}, name: {dir}{r}, {peers_key}: [{}]{services}}}\n",
                    peers.join(", ")
                ));
            }
        }
        if body.is_empty() || skip == Some(i) {
            continue;
        }
        let (kind, meta) = if annp {
            (
                "NetworkPolicy",
                format!("{{name: pol{i}, namespace: {ns}}}"),
            )
        } else {
            ("ClusterNetworkPolicy", format!("{{name: pol{i}}}"))
        };
        f = f.with(&format!(
            "apiVersion: crd.antrea.io/v1beta1\nkind: {kind}\nmetadata: {meta}\nspec:\n  priority: {prio}\n  tier: {tier}\n  appliedTo: {applied}\n{body}"
        ));
    }
    for i in 0..g.below(3) {
        let ns = &nss[g.below(nss.len())];
        f = f.with(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: k{i}, namespace: {ns}}}\nspec:\n  podSelector: {{matchLabels: {{app: {}}}}}\n  policyTypes: [{}]\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: {}}}}}}}]}}]\n  egress: [{{to: [{{podSelector: {{}}}}], ports: [{{protocol: TCP, port: 80}}]}}]\n",
            g.pick(&["a", "b"]),
            g.pick(&["Ingress", "Egress", "Ingress, Egress"]),
            g.pick(&["a", "b", "c"])
        ));
    }
    let mut hosts = pods;
    hosts.extend([
        X1.to_string(),
        X2.to_string(),
        "10.0.12.9".to_string(),
        "192.168.0.1".to_string(),
    ]);
    (f, hosts)
}

trait Unchecked {
    fn model_unchecked(&self) -> Model;
}
impl Unchecked for Fx {
    fn model_unchecked(&self) -> Model {
        let mut m = Model::default();
        for o in xvs_agent::model::parse_file("fx.yaml", &self.text).expect("valid") {
            m.insert(o);
        }
        m
    }
}

fn compare(seed: u64) -> Result<usize, TestCaseError> {
    let (f, hosts) = scenario(seed);
    let m = f.model();
    let d = desired(&m, &mut Ids::default());
    let p = load(&d);
    check_all(seed, &f, &hosts, &m, &p)
}

/// Every (src, dst, probe) of `hosts`: the translated verdict equals the evaluator's.
fn check_all(
    seed: u64,
    f: &Fx,
    hosts: &[String],
    m: &Model,
    p: &Pipeline,
) -> Result<usize, TestCaseError> {
    let (m, p) = (m, p);
    let mut checked = 0;
    let mut seen = std::collections::BTreeSet::new();
    for src in hosts {
        for dst in hosts {
            let (s, t) = (addr(m, src), addr(m, dst));
            let pod_involved = m.pods.values().any(|q| q.ip == s || q.ip == t);
            if s == t
                || !pod_involved
                || dst == "192.168.0.1" && !m.pods.values().any(|q| q.ip == s)
                || src == "192.168.0.1"
            {
                continue;
            }
            for l4 in [tcp(80), tcp(8080), udp(53), PING] {
                let c = conn(m, src, dst, l4);
                let want = verdict(m, &c);
                let got = run(p, m, &c);
                seen.insert(want as u8);
                prop_assert_eq!(
                    got,
                    want,
                    "seed {} {} -> {} {:?}\n{}",
                    seed,
                    src,
                    dst,
                    l4,
                    f.text
                );
                checked += 1;
            }
        }
    }
    Ok(checked)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn generated_flows_give_the_reference_verdict(seed in any::<u64>()) {
        compare(seed)?;
    }

    /// The same after incremental changes sent as one bundle to the live tables: a policy
    /// removed, then added back (which may re-pack priorities around it).
    #[test]
    fn incremental_bundles_keep_the_reference_verdict(seed in any::<u64>(), which in 0usize..12) {
        let (full, hosts) = scenario(seed);
        let (less, _) = scenario_without(seed, Some(which));
        let (m_full, m_less) = (full.model(), less.model());
        let mut ids = Ids::default();
        let d_full = desired(&m_full, &mut ids);
        let mut p = load(&d_full);
        let d_less = desired(&m_less, &mut ids);
        commit(&mut p, &d_full, &d_less);
        check_all(seed, &less, &hosts, &m_less, &p)?;
        let d_again = desired(&m_full, &mut ids);
        commit(&mut p, &d_less, &d_again);
        check_all(seed, &full, &hosts, &m_full, &p)?;
    }
}

/// Sends the change from `from` to `to` to `p` as one bundle.
fn commit(p: &mut Pipeline, from: &Desired, to: &Desired) {
    let mods: Vec<PipelineMod> = messages(&diff(from, to), 1)
        .expect("encodes")
        .into_iter()
        .map(|m| match m {
            xvs_agent::diff::Mod::Group(g) => PipelineMod::Group(g),
            xvs_agent::diff::Mod::Flow(f) => PipelineMod::Flow(*f),
        })
        .collect();
    if !mods.is_empty() {
        p.commit(&mods, 1).expect("one bundle");
    }
}

#[test]
fn the_generator_exercises_every_verdict() {
    // Guard against a property test that only ever sees Allow.
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 1..40u64 {
        let (f, hosts) = scenario(seed);
        let m = f.model();
        for src in &hosts {
            for dst in &hosts {
                if src != dst && m.pods.values().any(|q| q.ip == addr(&m, src)) {
                    kinds.insert(verdict(&m, &conn(&m, src, dst, tcp(80))) as u8);
                }
            }
        }
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn a_priority_collision_repacks_in_one_bundle_on_the_live_tables() {
    let pol = |name: &str, prio: &str, rule: &str| {
        format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  priority: {prio}\n  tier: baseline\n  appliedTo: [{{podSelector: {{matchLabels: {{app: a}}}}}}]\n  ingress: [{rule}]\n")
    };
    let a = pol(
        "a",
        "1",
        "{action: Allow, from: [{podSelector: {matchLabels: {app: b}}}]}",
    );
    let b = pol("b", "1.05", "{action: Drop}");
    let c = pol("c", "1.1", "{action: Allow}");
    let mut ids = Ids::default();
    let m1 = xyz().with(&a).with(&c).model();
    let d1 = desired(&m1, &mut ids);
    // Baseline guesses: a 180 - 10 = 170, c 180 - 11 = 169, b 180 - 10 = 170 again.
    conj_at(&d1, t::INGRESS_DEFAULT, 170);
    conj_at(&d1, t::INGRESS_DEFAULT, 169);
    let mut p = load(&d1);
    let check = |p: &Pipeline, m: &Model| {
        for (src, dst) in [("x/b", "x/a"), ("x/c", "x/a"), ("y/c", "y/a")] {
            let c = conn(m, src, dst, tcp(80));
            assert_eq!(run(p, m, &c), verdict(m, &c), "{src} -> {dst}");
        }
    };
    check(&p, &m1);
    let m2 = xyz().with(&a).with(&b).with(&c).model();
    let d2 = desired(&m2, &mut ids);
    let moves = &ids.anp.last_moves[&t::INGRESS_DEFAULT];
    assert_eq!(moves.len(), 1, "one neighbour moved: {moves:?}");
    let changes = diff(&d1, &d2);
    assert!(
        !changes.flow_del.is_empty(),
        "the moved rule's flows leave their old priority"
    );
    // All of it as one bundle on the live pipeline: no packet sees a half-moved table.
    let mods: Vec<PipelineMod> = messages(&changes, 1)
        .expect("encodes")
        .into_iter()
        .map(|m| match m {
            xvs_agent::diff::Mod::Group(g) => PipelineMod::Group(g),
            xvs_agent::diff::Mod::Flow(f) => PipelineMod::Flow(*f),
        })
        .collect();
    p.commit(&mods, 1).expect("one bundle");
    check(&p, &m2);
    assert_eq!(
        verdict(&m2, &conn(&m2, "x/c", "x/a", tcp(80))),
        Verdict::Drop
    );
    assert_eq!(
        verdict(&m2, &conn(&m2, "x/b", "x/a", tcp(80))),
        Verdict::Allow
    );
    // And it equals a pipeline loaded from scratch.
    let fresh = load(&d2);
    check(&fresh, &m2);
}
