//! xvsd + xvs-agent in a node namespace, three pod namespaces on AF_XDP veths: the agent turns
//! a manifests directory into the Antrea pipeline over the OpenFlow socket. Pod-to-Pod and
//! Pod-to-Service TCP (balanced over two endpoints), a NetworkPolicy isolating one pod (new
//! connections fail, an established one stays up), its deletion (traffic resumes), and a bad
//! manifest that is reported and changes nothing else.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvs_flowtable::flow::Match;
use xvs_flowtable::names::Port;
use xvs_integration::agent::{
    connect, echo, echo_server, hello, node_manifests, Agent, NODE_CONFIG, NODE_PODS,
};
use xvs_integration::ofclient::OfClient;
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};
use xvs_openflow::Body;

fn manifests() -> String {
    let mut s = node_manifests();
    // The Service the agent's pipeline tests use too (web: 10.96.0.10:80 -> b, c on 8080).
    s.push_str(include_str!("../../ctl/agent/tests/data/web-service.yaml"));
    s
}

const ISOLATE_B: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-b, namespace: default}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress]
"#;

const ALLOW_A_TO_B: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-b, namespace: default}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{protocol: TCP, port: 8080}]
"#;

const EGRESS_A: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-a, namespace: default}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.10.0.0/24, except: [10.10.0.3/32]}}]
    ports: [{protocol: TCP, port: 8000, endPort: 8100}]
"#;

/// The cookies of every flow installed in the switch (a separate OpenFlow connection).
fn dump_cookies(socket: &Path) -> Result<Vec<u64>> {
    use xvs_openflow::multipart::FlowStatsRequest;
    let mut c = OfClient::connect(socket)?;
    let replies = c.transact(Body::FlowStatsRequest(Box::new(FlowStatsRequest {
        table: 0xff,
        out_port: Port::NONE,
        out_group: 0xffff_ffff,
        cookie: 0,
        cookie_mask: 0,
        match_: Match::catch_all(),
    })))?;
    let mut out = Vec::new();
    for r in replies {
        match r.body {
            Body::FlowStatsReply { flows, .. } => out.extend(flows.iter().map(|f| f.cookie)),
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok(out)
}

#[test]
fn agent_pod_service_and_network_policy() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("ag");
    let node = Netns::new(&format!("{tag}n"))?;
    let mut pods = Vec::new();
    for (name, ip, mac, port, _) in NODE_PODS {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        veth(&ns, "eth0", mac, &node, port)?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.offloads_off("eth0")?;
        for (_, qip, qmac, _, _) in NODE_PODS.iter().filter(|p| p.1 != ip) {
            ns.ip(&[
                "neigh",
                "replace",
                qip,
                "lladdr",
                qmac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
        }
        ns.ip(&["route", "add", "10.96.0.0/16", "via", "10.10.0.1"])?;
        pods.push(ns);
    }
    let x = Xvsd::start(&node, NODE_CONFIG)?;
    let dir = x.run_dir().join("manifests");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("00-cluster.yaml"), manifests())?;
    let socket = x.run_dir().join("br-int.mgmt");
    let agent = Agent::start(&dir, &socket, &x.run_dir().join("agent.log"), &[])?;
    agent.wait_log("in sync", 1)?;
    let (a, b, c) = (&pods[0], &pods[1], &pods[2]);
    // The agent named the tables through TABLE_FEATURES.
    let mut q = OfClient::connect(&socket)?;
    let tf = q.multipart(xvs_openflow::stats::MP_TABLE_FEATURES, Vec::new())?;
    let tf = xvs_openflow::stats::pull_table_features(&tf).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(tf[3].name, "Classifier");
    assert_eq!(tf[11].name, "EndpointDNAT");
    assert_eq!(tf[28].name, "Output");
    drop(q);

    let stop = Arc::new(AtomicBool::new(false));
    echo_server(b, "10.10.0.3", 8080, "pod-b", stop.clone())?;
    echo_server(c, "10.10.0.4", 8080, "pod-c", stop.clone())?;

    // Pod-to-Pod (ARP answered by the agent's responder for the gateway is not needed: static
    // neighbours) and Pod-to-Service, balanced over both endpoints.
    assert_eq!(hello(a, "10.10.0.3:8080").context("a -> b")?, "pod-b");
    assert_eq!(hello(a, "10.10.0.4:8080").context("a -> c")?, "pod-c");
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..20 {
        *served
            .entry(hello(a, "10.96.0.10:80").context("a -> Service")?)
            .or_default() += 1;
    }
    assert!(
        served.get("pod-b").copied().unwrap_or(0) >= 2
            && served.get("pod-c").copied().unwrap_or(0) >= 2,
        "both endpoints serve: {served:?}"
    );

    // An established connection a -> b, then a policy isolating b.
    let mut est = connect(a, "10.10.0.3:8080", Duration::from_secs(2))?;
    let mut greet = [0u8; 5];
    est.read_exact(&mut greet)?;
    echo(&mut est, b"before")?;
    std::fs::write(dir.join("20-isolate-b.yaml"), ISOLATE_B)?;
    agent.wait_log("committed", 2)?;
    assert!(
        hello(a, "10.10.0.3:8080").is_err(),
        "new connections to isolated b fail"
    );
    assert_eq!(hello(a, "10.10.0.4:8080")?, "pod-c", "c is not isolated");
    echo(&mut est, b"during").context("the established connection stays up")?;

    // A bad manifest is reported with file and field, and changes nothing.
    std::fs::write(
        dir.join("30-bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, annotations: {xvs.io/mac: \"02:00:00:00:00:09\", xvs.io/interface: x, xvs.io/ofport: \"9\"}}\nspec: {nodeName: node-1}\nstatus: {podIP: 10.10.0.300}\n",
    )?;
    agent.wait_log("30-bad.yaml: doc[0].status.podIP", 1)?;
    assert_eq!(hello(a, "10.10.0.4:8080")?, "pod-c");
    assert!(hello(a, "10.10.0.3:8080").is_err(), "b still isolated");

    // An allow rule (conjunction of applied-to, peer and port): a may connect to b, c may not.
    std::fs::write(dir.join("20-isolate-b.yaml"), ALLOW_A_TO_B)?;
    agent.wait_log("committed", 3)?;
    assert_eq!(
        hello(a, "10.10.0.3:8080").context("a allowed to b")?,
        "pod-b"
    );
    assert!(hello(c, "10.10.0.3:8080").is_err(), "c not allowed to b");
    assert_eq!(
        hello(b, "10.10.0.4:8080")?,
        "pod-c",
        "b is not egress-isolated"
    );

    // Egress: a may only open connections to c (ipBlock) on 8080; b's ingress rule stays.
    std::fs::write(dir.join("21-egress-a.yaml"), EGRESS_A)?;
    agent.wait_log("committed", 4)?;
    assert_eq!(
        hello(a, "10.10.0.4:8080").context("a -> c allowed by egress")?,
        "pod-c"
    );
    assert!(
        hello(a, "10.10.0.3:8080").is_err(),
        "a -> b not in a's egress rules"
    );
    std::fs::remove_file(dir.join("21-egress-a.yaml"))?;
    agent.wait_log("committed", 5)?;
    assert_eq!(hello(a, "10.10.0.3:8080").context("a -> b again")?, "pod-b");

    // Deleting the policy: new connections to b work again.
    std::fs::remove_file(dir.join("20-isolate-b.yaml"))?;
    agent.wait_log("committed", 6)?;
    assert_eq!(
        hello(c, "10.10.0.3:8080").context("c reachable to b again")?,
        "pod-b"
    );
    assert_eq!(
        hello(a, "10.10.0.3:8080").context("b reachable again")?,
        "pod-b"
    );
    echo(&mut est, b"after")?;
    assert_eq!(
        agent.log().matches("bad manifest").count(),
        1,
        "reported once"
    );
    assert!(
        agent.log().matches("committed").count() == 6,
        "the bad manifest committed nothing:\n{}",
        agent.log()
    );
    eprintln!("agent log:\n{}", agent.log());
    drop(agent);

    // Restart: the new agent replays with the next round and deletes the previous one; the
    // flows are the same, traffic keeps working, and only round-2 cookies remain.
    let before = dump_cookies(&socket)?;
    assert!(before.iter().all(|c| c >> 48 == 1), "round 1 installed");
    let agent2 = Agent::start(&dir, &socket, &x.run_dir().join("agent2.log"), &[])?;
    agent2.wait_log("in sync, round 2", 1)?;
    let after = dump_cookies(&socket)?;
    assert_eq!(after.len(), before.len(), "same flows after the replay");
    assert!(
        after.iter().all(|c| c >> 48 == 2),
        "previous round deleted: {after:x?}"
    );
    assert_eq!(hello(a, "10.10.0.3:8080")?, "pod-b");
    let mut served2: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..10 {
        *served2
            .entry(hello(a, "10.96.0.10:80").context("Service after the restart")?)
            .or_default() += 1;
    }
    assert_eq!(served2.values().sum::<u32>(), 10);
    stop.store(true, Ordering::Relaxed);
    drop(agent2);

    // A change set the switch refuses (a flow to a missing group) is not half-applied: the
    // bundle is discarded, the valid flow in it is not installed.
    let mut conn = xvs_agent::ofconn::OfConn::connect(&socket)?;
    let mut bad = xvs_agent::pipeline::Desired::default();
    bad.groups.clear();
    let good_key = xvs_agent::pipeline::FlowKey {
        table: 13,
        priority: 7,
        matches: "ip,nw_src=10.99.0.1".into(),
    };
    let body = |a: &str| xvs_agent::pipeline::FlowBody {
        category: xvs_agent::pipeline::Category::Default,
        actions: a.into(),
    };
    let mut want = bad.clone();
    want.flows.insert(good_key, body("drop"));
    want.flows.insert(
        xvs_agent::pipeline::FlowKey {
            table: 13,
            priority: 7,
            matches: "ip,nw_src=10.99.0.2".into(),
        },
        body("group:999"),
    );
    let mods = xvs_agent::diff::messages(&xvs_agent::diff::diff(&bad, &want), 9)?;
    assert_eq!(mods.len(), 2);
    let n_before = dump_cookies(&socket)?.len();
    assert!(conn.apply(&mods).is_err(), "the switch refuses group:999");
    let cookies = dump_cookies(&socket)?;
    assert_eq!(
        cookies.len(),
        n_before,
        "nothing of the refused bundle applied"
    );
    assert!(cookies.iter().all(|c| c >> 48 == 2));
    // The valid flow alone is accepted, and a cookie-masked delete of its round removes it.
    conn.apply(&mods[..1])?;
    assert_eq!(dump_cookies(&socket)?.len(), n_before + 1);
    conn.delete_round(9)?;
    assert_eq!(dump_cookies(&socket)?.len(), n_before);
    drop(conn);
    drop(x);
    Ok(())
}
