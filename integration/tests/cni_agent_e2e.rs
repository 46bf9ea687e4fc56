//! The issue's end to end: one node namespace with xvsd (only its gateway tap configured) and
//! xvs-agent, three Pod namespaces attached at run time by xvs-cni invoked as a runtime would,
//! Pods known to the agent only from manifests without interface annotations plus the CNI's
//! interface records. Pod-to-Pod and Pod-to-Service TCP balanced over two endpoints, the
//! gateway reaching the Pods, a NetworkPolicy isolating one Pod (an established connection
//! stays up) and its deletion, an agent restart rebuilding the Pods from the records, then DEL
//! of every Pod leaving nothing behind.

mod cni_common;

use anyhow::{Context, Result};
use cni_common::{allocated, host_links, invoke, netconf, records, Sandbox};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvs_integration::agent::{connect, echo, echo_server, hello, hello_within, Agent};
use xvs_integration::{is_root, unique_tag, Netns, Xvsd};

const GW_MAC: &str = "aa:bb:cc:dd:ee:01";

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100
# Frames for the Pods that come at run time.
runtime_ports = 8

[conntrack]
max_connections = 100000

[[port]]
name = "antrea-gw0"
type = "tap"
ofport = 100
mac = "aa:bb:cc:dd:ee:01"
"#;

/// The cluster as the API server would list it: Pods without IP, MAC or port (the CNI and the
/// interface records provide them).
fn cluster() -> String {
    let mut s = format!(
        r#"kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: noEncap
  gateway: {{name: antrea-gw0, ip: 10.10.0.1, mac: "{GW_MAC}", ofport: 100}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-1}}
spec: {{podCIDR: 10.10.0.0/24}}
status: {{addresses: [{{type: InternalIP, address: 192.168.0.1}}]}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: default}}
"#
    );
    for name in ["a", "b", "c"] {
        s.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: pod-{name}, namespace: default, labels: {{app: {name}}}}}
spec: {{nodeName: node-1}}
"#
        ));
    }
    s
}

fn service(endpoints: &[&str]) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  clusterIP: 10.96.0.10
  ports: [{{name: http, protocol: TCP, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, protocol: TCP, port: 8080}}]
endpoints:
- addresses: [{}]
- addresses: [{}]
"#,
        endpoints[0], endpoints[1]
    )
}

const ISOLATE_B: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-b, namespace: default}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress]
"#;

#[test]
fn cni_pods_services_and_policy_end_to_end() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("ce2");
    let node = Netns::new(&format!("{tag}n"))?;
    let x = Xvsd::start(&node, CONFIG)?;
    // The node's side of the gateway: its address routes the Pod CIDR into the bridge.
    node.ip(&["addr", "add", "10.10.0.1/24", "dev", "antrea-gw0"])?;
    node.ip(&["link", "set", "antrea-gw0", "up"])?;

    let manifests = x.run_dir().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("00-cluster.yaml"), cluster())?;
    let state = tempfile::tempdir()?;
    let conf = netconf(&x.run_dir(), state.path(), "10.10.0.0/24");
    let interfaces = state.path().join("interfaces");
    let socket = x.run_dir().join("br-int.mgmt");
    let agent = Agent::start(
        &manifests,
        &socket,
        &x.run_dir().join("agent.log"),
        &["--interfaces", &interfaces.display().to_string()],
    )?;
    agent.wait_log("in sync", 1)?;
    agent.wait_log("pod default/pod-a is waiting for its interface", 1)?;

    // The runtime starts the three sandboxes.
    let mut pods = Vec::new();
    let mut ips = Vec::new();
    for name in ["a", "b", "c"] {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        let sb = Sandbox::new(
            &ns,
            &format!("{tag}{name}ctr"),
            "default",
            &format!("pod-{name}"),
        );
        let o = invoke(&node, "ADD", &sb, &conf)?;
        anyhow::ensure!(o.ok, "ADD pod-{name}: {o:?}\nxvsd: {}", x.stderr());
        let cidr = o.out["ips"][0]["address"].as_str().context("address")?;
        ips.push(cidr.split('/').next().unwrap_or_default().to_string());
        pods.push((ns, sb, o.out));
    }
    assert_eq!(ips, ["10.10.0.2", "10.10.0.3", "10.10.0.4"]);
    assert_eq!(records(state.path()).len(), 3);
    std::fs::write(manifests.join("10-web.yaml"), service(&[&ips[1], &ips[2]]))?;
    let (a, b, c) = (&pods[0].0, &pods[1].0, &pods[2].0);

    let stop = Arc::new(AtomicBool::new(false));
    echo_server(b, &ips[1], 8080, "pod-b", stop.clone())?;
    echo_server(c, &ips[2], 8080, "pod-c", stop.clone())?;
    let within = Duration::from_secs(10);
    let b_at = format!("{}:8080", ips[1]);
    let c_at = format!("{}:8080", ips[2]);

    // Pod-to-Pod, once the agent has read the records.
    assert_eq!(hello_within(a, &b_at, within).context("a -> b")?, "pod-b");
    assert_eq!(hello_within(a, &c_at, within).context("a -> c")?, "pod-c");
    // Pod-to-Service, balanced over both endpoints.
    hello_within(a, "10.96.0.10:80", within).context("a -> Service")?;
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
    // The gateway (the node itself) reaches the Pods.
    assert_eq!(
        hello_within(&node, &b_at, within).context("gateway -> b")?,
        "pod-b"
    );
    assert_eq!(hello(&node, &c_at).context("gateway -> c")?, "pod-c");

    // A policy isolating b: new connections fail, an established one stays up.
    let mut est = connect(a, &b_at, Duration::from_secs(2))?;
    let mut greet = [0u8; 5];
    est.read_exact(&mut greet)?;
    echo(&mut est, b"before")?;
    let commits = agent.log().matches("committed").count();
    std::fs::write(manifests.join("20-isolate-b.yaml"), ISOLATE_B)?;
    agent.wait_log("committed", commits + 1)?;
    assert!(
        hello(a, &b_at).is_err(),
        "new connections to isolated b fail"
    );
    assert_eq!(hello(a, &c_at)?, "pod-c", "c is not isolated");
    echo(&mut est, b"during").context("the established connection stays up")?;
    // Lifted when deleted.
    std::fs::remove_file(manifests.join("20-isolate-b.yaml"))?;
    agent.wait_log("committed", commits + 2)?;
    assert_eq!(hello(a, &b_at).context("b reachable again")?, "pod-b");
    echo(&mut est, b"after")?;
    drop(est);

    // The interface store outlives the agent: a restarted agent rebuilds the same Pods from
    // the records (round 2) and traffic keeps flowing.
    drop(agent);
    let agent = Agent::start(
        &manifests,
        &socket,
        &x.run_dir().join("agent2.log"),
        &["--interfaces", &interfaces.display().to_string()],
    )?;
    agent.wait_log("in sync, round 2", 1)?;
    assert!(!agent.log().contains("waiting for its interface"));
    assert_eq!(
        hello(a, &b_at).context("a -> b after the restart")?,
        "pod-b"
    );
    assert_eq!(
        hello(&node, &c_at).context("gateway -> c after the restart")?,
        "pod-c"
    );
    stop.store(true, Ordering::Relaxed);

    // The runtime deletes the sandboxes: nothing is left, and the agent sees the Pods waiting
    // again.
    for (_, sb, prev) in &pods {
        let o = invoke(&node, "DEL", sb, &cni_common::with_prev(&conf, prev))?;
        anyhow::ensure!(o.ok, "DEL: {o:?}");
    }
    assert_eq!(host_links(&node)?, Vec::<String>::new());
    assert_eq!(allocated(state.path()), Vec::<String>::new());
    assert_eq!(records(state.path()), Vec::<String>::new());
    agent.wait_log("pod default/pod-a is waiting for its interface", 1)?;
    eprintln!("agent log:\n{}", agent.log());
    drop(agent);
    drop(x);
    Ok(())
}
