//! Queries: realized objects with counters, antctl's policy order, the socket protocol.

use xvs_agent::model::{parse_file, Model};
use xvs_agent::pipeline::{allow_metric_keys, deny_metric_key, desired, Desired, Direction, Ids};
use xvs_agent::query::{answer, format, Counters, Kind, Query, Realized, Response};
use xvs_flowtable::flow::{FlowModCommand, FlowStats};
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::NameMap;

const CLUSTER: &str = r#"
kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: geneve
  gateway: {ip: 10.10.0.1, mac: "aa:bb:cc:dd:ee:01"}
---
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.10.0.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
---
kind: Pod
metadata:
  name: client
  namespace: default
  labels: {app: client}
  annotations: {xvs.io/mac: "02:00:00:00:00:02", xvs.io/interface: p1, xvs.io/ofport: "1"}
spec: {nodeName: node-1}
status: {podIP: 10.10.0.2}
---
kind: Pod
metadata:
  name: server
  namespace: default
  labels: {app: server}
  annotations: {xvs.io/mac: "02:00:00:00:00:03", xvs.io/interface: p2, xvs.io/ofport: "2"}
spec:
  nodeName: node-1
  containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]
status: {podIP: 10.10.0.3}
---
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, protocol: TCP, port: 80}]
---
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [{addresses: [10.10.0.3]}]
---
kind: NetworkPolicy
metadata: {name: zz-allow-web, namespace: default}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
  - from: [{ipBlock: {cidr: 172.16.0.0/16}}]
---
kind: NetworkPolicy
metadata: {name: aa-isolate, namespace: default}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
"#;

fn realized() -> Realized {
    let mut model = Model::default();
    for o in parse_file("c.yaml", CLUSTER).expect("valid") {
        model.insert(o);
    }
    let installed = desired(&model, &mut Ids::default());
    Realized {
        model,
        installed,
        round: 3,
    }
}

/// Counters as a switch would report them: every installed flow, `hits` for chosen ones.
fn counters(d: &Desired, hits: &[(xvs_agent::pipeline::FlowKey, u64, u64)]) -> Counters {
    let mut flows = Vec::new();
    for (k, b) in &d.flows {
        let line = Desired::flow_line(k, b, 3);
        let mut f = parse_flow_mod(&line, FlowModCommand::Add, &NameMap::new())
            .expect("parses")
            .flow;
        let (p, by) = hits
            .iter()
            .find(|(h, _, _)| h == k)
            .map_or((0, 0), |(_, p, b)| (*p, *b));
        f.stats = Some(FlowStats {
            n_packets: Some(p),
            n_bytes: Some(by),
            ..FlowStats::default()
        });
        flows.push(f);
    }
    Counters::from_flows(&flows)
}

fn q(kind: Kind) -> Query {
    Query {
        kind,
        name: None,
        namespace: None,
        sort_by: None,
    }
}

#[test]
fn pods_with_their_flows_and_counts() {
    let r = realized();
    let none = answer(&q(Kind::Pods), &r, &Counters::default());
    assert_eq!(none.objects.len(), 2);
    let client = &none.objects[0];
    assert_eq!(client.name, "client");
    assert_eq!(client.info["ip"], "10.10.0.2");
    assert_eq!(client.flows.len(), 5);
    assert!(
        client.flows.iter().all(|f| f.packets.is_none()),
        "not in a switch"
    );
    let spoof = client
        .flows
        .iter()
        .find(|f| f.table == "SpoofGuard")
        .expect("spoofguard flow")
        .clone();
    let key = xvs_agent::pipeline::FlowKey {
        table: spoof.table_id,
        priority: spoof.priority,
        matches: spoof.matches.clone(),
    };
    let c = counters(&r.installed, &[(key, 7, 700)]);
    let mut one = q(Kind::Pods);
    one.name = Some("client".into());
    one.namespace = Some("default".into());
    let got = answer(&one, &r, &c);
    assert_eq!(got.objects.len(), 1);
    let f = got.objects[0]
        .flows
        .iter()
        .find(|f| f.table == "SpoofGuard")
        .expect("flow");
    assert_eq!((f.packets, f.bytes), (Some(7), Some(700)));
    assert_eq!(f.cookie >> 48, 3);
    let text = format(&got);
    assert!(text.contains("n_packets=7, n_bytes=700, priority=200,ip,in_port=1,dl_src=02:00:00:00:00:02,nw_src=10.10.0.2 actions=goto_table:5"), "{text}");
    let mut missing = one.clone();
    missing.name = Some("nope".into());
    assert!(answer(&missing, &r, &c).error.is_some());
}

#[test]
fn services_with_group_and_flows() {
    let r = realized();
    let got = answer(&q(Kind::Services), &r, &Counters::default());
    let web = &got.objects[0];
    assert_eq!(web.info["clusterIP"], "10.96.0.10");
    assert_eq!(web.groups.len(), 1);
    assert!(web.groups[0].desc.starts_with("type=select"));
    let tables: Vec<&str> = web.flows.iter().map(|f| f.table.as_str()).collect();
    assert_eq!(tables, vec!["ServiceLB", "EndpointDNAT"]);
}

#[test]
fn netpol_rules_in_order_with_metric_counts() {
    let r = realized();
    let allow = &r.installed.policies[&("default".to_string(), "zz-allow-web".to_string())];
    assert_eq!(allow.rules.len(), 2);
    let http = allow.rules[0].conj_ids[0];
    let block = allow.rules[1].conj_ids[0];
    let [new, est] = allow_metric_keys(Direction::Ingress, http);
    let [bnew, _] = allow_metric_keys(Direction::Ingress, block);
    let iso = &allow.isolation[0];
    let deny = deny_metric_key(Direction::Ingress, iso.1);
    let c = counters(
        &r.installed,
        &[
            (new, 2, 148),
            (est, 20, 2000),
            (bnew, 1, 60),
            (deny, 4, 240),
        ],
    );
    let mut query = q(Kind::Netpol);
    query.sort_by = Some("effectivePriority".into());
    let got = answer(&query, &r, &c);
    // K8s NetworkPolicies share one tier priority and have no priority: name order.
    let names: Vec<&str> = got.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["aa-isolate", "zz-allow-web"]);
    let o = &got.objects[1];
    assert_eq!(o.info["appliedTo"], "default/server");
    assert_eq!(o.info["source"], "K8sNetworkPolicy:default/zz-allow-web");
    assert_eq!(o.rules[0].direction, "Ingress");
    assert_eq!(
        (o.rules[0].sessions, o.rules[0].packets, o.rules[0].bytes),
        (2, 22, 2148)
    );
    assert_eq!((o.rules[1].sessions, o.rules[1].packets), (1, 1));
    // Both policies isolate the server: the same drop, counted for each.
    for p in &got.objects {
        assert_eq!(p.isolation.len(), 1);
        assert_eq!((p.isolation[0].packets, p.isolation[0].bytes), (4, 240));
        assert_eq!(p.isolation[0].pod, "default/server");
    }
    let text = format(&got);
    let header = text.lines().next().expect("header");
    for col in [
        "NAME",
        "APPLIED-TO",
        "RULES",
        "SOURCE",
        "TIER-PRIORITY",
        "PRIORITY",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(text.contains(&format!(
        "rule Ingress[0] conj_ids=[{http}] sessions=2 packets=22 bytes=2148"
    )));
    assert!(text.find("aa-isolate").expect("listed") < text.find("zz-allow-web").expect("listed"));
    let mut bad = q(Kind::Netpol);
    bad.sort_by = Some("age".into());
    assert!(answer(&bad, &r, &c).error.is_some());
}

#[test]
fn query_and_response_are_json() {
    let r = realized();
    let resp = answer(&q(Kind::Netpol), &r, &Counters::default());
    let text = serde_json::to_string(&resp).expect("serializes");
    let back: Response = serde_json::from_str(&text).expect("parses");
    assert_eq!(back, resp);
    let query: Query =
        serde_json::from_str(r#"{"kind":"pods","namespace":"default"}"#).expect("query");
    assert_eq!(query.kind, Kind::Pods);
    assert_eq!(Kind::parse("svc"), Some(Kind::Services));
    assert_eq!(Kind::parse("netpol"), Some(Kind::Netpol));
    assert_eq!(Kind::parse("nodes"), None);
}

#[test]
fn socket_round_trip_without_a_switch() {
    use std::sync::{Arc, Mutex};
    use xvs_agent::query::{bind, request, serve};
    let dir = std::env::temp_dir().join(format!("xvs-agent-q-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("xvs-agent.sock");
    let shared = Arc::new(Mutex::new(None));
    let listener = bind(&path).expect("bind");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
    }
    let s2 = shared.clone();
    let switch = dir.join("no-switch.mgmt");
    std::thread::spawn(move || serve(listener, s2, switch));
    // Before the first sync the agent says so.
    let e = request(&path, &q(Kind::Pods)).expect_err("not synced");
    assert!(e.to_string().contains("not synced"), "{e}");
    *shared.lock().expect("lock") = Some(realized());
    let r = request(&path, &q(Kind::Pods)).expect("answer");
    assert_eq!(r.objects.len(), 2);
    assert!(r
        .warning
        .as_deref()
        .is_some_and(|w| w.contains("no counters")));
    // A second bind replaces nothing that is alive.
    assert!(bind(&path).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn effective_priority_puts_k8s_policies_between_application_and_baseline_tiers() {
    use xvs_agent::query::effective_priority_order;
    let r = realized();
    let k8s = answer(&q(Kind::Netpol), &r, &Counters::default()).objects;
    let mut antrea_app = k8s[1].clone();
    antrea_app.name = "zzz-app".into();
    antrea_app.tier_priority = Some(250);
    antrea_app.priority = Some(5.0);
    let mut antrea_app_first = antrea_app.clone();
    antrea_app_first.name = "zzzz-app".into();
    antrea_app_first.priority = Some(1.5);
    let mut baseline = k8s[0].clone();
    baseline.name = "aaa-baseline".into();
    baseline.tier_priority = Some(253);
    let mut all = [
        baseline,
        k8s[1].clone(),
        antrea_app,
        k8s[0].clone(),
        antrea_app_first,
    ];
    all.sort_by(effective_priority_order);
    let names: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "zzzz-app",
            "zzz-app",
            "aa-isolate",
            "zz-allow-web",
            "aaa-baseline"
        ]
    );
}

#[test]
fn antrea_native_policies_are_listed_in_tier_order() {
    let extra = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: emergency-drop}
spec:
  tier: Emergency
  priority: 3
  appliedTo: [{podSelector: {matchLabels: {app: server}}}]
  ingress: [{action: Drop, from: [{ipBlock: {cidr: 172.16.0.0/16}}]}]
---
apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: app-allow, namespace: default}
spec:
  priority: 1.5
  appliedTo: [{podSelector: {matchLabels: {app: client}}}]
  egress: [{action: Allow, to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: baseline-drop}
spec:
  tier: Baseline
  priority: 1
  appliedTo: [{namespaceSelector: {}}]
  ingress: [{action: Drop}]
"#;
    let mut r = realized();
    for o in parse_file("anp.yaml", extra).expect("valid") {
        r.model.insert(o);
    }
    let query = Query {
        sort_by: Some("effectivePriority".into()),
        ..q(Kind::Netpol)
    };
    let resp = answer(&query, &r, &Counters::default());
    let order: Vec<(&str, Option<i32>)> = resp
        .objects
        .iter()
        .map(|o| (o.name.as_str(), o.tier_priority))
        .collect();
    assert_eq!(
        order,
        [
            ("emergency-drop", Some(50)),
            ("app-allow", Some(250)),
            ("aa-isolate", None),
            ("zz-allow-web", None),
            ("baseline-drop", Some(253)),
        ]
    );
    let e = &resp.objects[0];
    assert_eq!(e.namespace, "");
    assert_eq!(
        e.info["source"],
        "AntreaClusterNetworkPolicy:emergency-drop"
    );
    assert_eq!(e.info["appliedTo"], "default/server");
    assert_eq!(e.priority, Some(3.0));
    let a = &resp.objects[1];
    assert_eq!(a.info["source"], "AntreaNetworkPolicy:default/app-allow");
    assert_eq!(a.info["appliedTo"], "default/client");
    assert_eq!(
        resp.objects[4].info["appliedTo"],
        "default/client,default/server"
    );
    let text = format(&resp);
    assert!(
        text.contains("AntreaClusterNetworkPolicy:emergency-drop"),
        "{text}"
    );
    // A namespace filter leaves the cluster-scoped ones out.
    let in_default = answer(
        &Query {
            namespace: Some("default".into()),
            ..query
        },
        &r,
        &Counters::default(),
    );
    assert_eq!(in_default.objects.len(), 3);
}
