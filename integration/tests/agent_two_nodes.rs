//! Two nodes, each a namespace with xvsd + xvs-agent, joined by Geneve over an underlay veth;
//! each agent reads a manifests directory with both Nodes (IPs and Pod CIDRs), all four Pods,
//! a Service and a NetworkPolicy, and programs the Antrea pipeline (remote Pod CIDRs through
//! the tunnel with tun_dst, decapsulated traffic classified by the tunnel port).
//!
//! Checked with real traffic: a cross-node Pod TCP connection allowed by a NetworkPolicy
//! whose port is a named container port of the server Pod, the same connection from another
//! Pod denied; a ClusterIP Service on node A reached from a Pod on A and balanced over an
//! endpoint on A and one on B; then the agents' query sockets (`xvs-agent get`) report the
//! realized flows with packet counts, and the policy's metric counters (allowed sessions and
//! packets by rule, denied packets by isolated Pod); b1's container port changes and the
//! named port follows it; finally `xvsctl get netpol|pods` gives the agents' own answers.
//!
//! ```text
//!  a1 10.244.1.2 -- pa1 ┐                         ┌ pb1 -- b1 10.244.2.2 (echo: 7778)
//!  a2 10.244.1.3 -- pa2 ┤ xvsd A   ul0 ==== ul0   │ xvsd B
//!                       gnv0 (32768) .88.1  .88.2  gnv0 (32768) ┘ pb2 -- b2 10.244.2.3
//!  Service web 10.96.0.10:80 -> a2:8080, b2:8080
//! ```

mod tunnel_common;

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tunnel_common::{counter, no_ipv6, wait_running};
use xvs_agent::query::{request, Kind, Query, Response};
use xvs_integration::agent::{agent_binary, connect, echo_server, Agent};
use xvs_integration::{is_root, unique_tag, veth, Netns, Xvsd};

const GW_MAC: [&str; 2] = ["02:00:00:00:01:01", "02:00:00:00:02:01"];
const UNDERLAY: [&str; 2] = ["192.168.88.1", "192.168.88.2"];
const TUNNEL_OFPORT: u32 = 32768;

/// (node index, name, address, MAC, node-side port, ofport)
const PODS: [(usize, &str, &str, &str, &str, u32); 4] = [
    (0, "a1", "10.244.1.2", "02:00:00:00:01:02", "pa1", 1),
    (0, "a2", "10.244.1.3", "02:00:00:00:01:03", "pa2", 2),
    (1, "b1", "10.244.2.2", "02:00:00:00:02:02", "pb1", 1),
    (1, "b2", "10.244.2.3", "02:00:00:00:02:03", "pb2", 2),
];

fn config(node: usize) -> String {
    let (p1, p2) = if node == 0 {
        ("pa1", "pa2")
    } else {
        ("pb1", "pb2")
    };
    // The second node's worker on the other core (when there is one), as on two machines.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker = if node == 1 && cores > 1 { 1 } else { 0 };
    format!(
        r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [{worker}]
forwarding = "openflow"
pmd_sleep_max_us = 100

[conntrack]
max_connections = 100000

[[port]]
name = "{p1}"
type = "afxdp"
ofport = 1

[[port]]
name = "{p2}"
type = "afxdp"
ofport = 2

[[port]]
name = "ul0"
type = "afxdp"
ofport = 3
uplink = true

[[port]]
name = "gnv0"
type = "geneve"
ofport = {TUNNEL_OFPORT}
"#
    )
}

const NODE_NAMES: [&str; 2] = ["node-a", "node-b"];

/// Node `me`'s manifests: its AgentConfig, then the same cluster objects on both nodes.
fn manifests(me: usize) -> String {
    let mut s = format!(
        r#"kind: AgentConfig
spec:
  nodeName: {}
  tunnelType: geneve
  tunnelOfport: {TUNNEL_OFPORT}
  uplink: ul0
  gateway: {{name: antrea-gw0, ip: 10.244.{}.1, mac: "{}"}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: default}}
"#,
        NODE_NAMES[me],
        me + 1,
        GW_MAC[me]
    );
    for n in 0..2 {
        s.push_str(&format!(
            r#"---
apiVersion: v1
kind: Node
metadata: {{name: {}}}
spec: {{podCIDR: 10.244.{}.0/24}}
status: {{addresses: [{{type: InternalIP, address: {}}}]}}
"#,
            NODE_NAMES[n],
            n + 1,
            UNDERLAY[n]
        ));
    }
    for (node, name, ip, mac, port, ofport) in PODS {
        let containers = match name {
            "b1" => "[{name: echo, ports: [{name: echo, containerPort: 7778}]}]",
            _ => "[{name: web, ports: [{name: http, containerPort: 8080}]}]",
        };
        s.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels: {{app: {name}}}
  annotations: {{xvs.io/mac: "{mac}", xvs.io/interface: {port}, xvs.io/ofport: "{ofport}"}}
spec: {{nodeName: {}, containers: {containers}}}
status: {{podIP: {ip}}}
"#,
            NODE_NAMES[node]
        ));
    }
    s.push_str(
        r#"---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
- addresses: [10.244.1.3]
- addresses: [10.244.2.3]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: echo-from-a1, namespace: default}
spec:
  podSelector: {matchLabels: {app: b1}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a1}}}]
    ports: [{port: echo}]
"#,
    );
    s
}

/// Node `me`'s agent on its manifests, once it reports being in sync.
fn start_agent(x: &Xvsd, me: usize) -> Result<Agent> {
    let dir = x.run_dir().join("manifests");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("00-cluster.yaml"), manifests(me))?;
    let a = Agent::start(
        &dir,
        &x.run_dir().join("br-int.mgmt"),
        &x.run_dir().join("agent.log"),
        &[],
    )?;
    a.wait_log("in sync", 1)
        .with_context(|| format!("agent {me}"))?;
    Ok(a)
}

struct Pod {
    ns: Netns,
    ip: &'static str,
}

fn pods(tag: &str, nodes: &[Netns; 2]) -> Result<Vec<Pod>> {
    let mut out = Vec::new();
    for (node, name, ip, mac, port, _) in PODS {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        no_ipv6(&ns)?;
        veth(&ns, "eth0", mac, &nodes[node], port)?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        // Geneve takes 50 bytes: the Pod MTU leaves room, as Antrea sets it.
        ns.ip(&["link", "set", "eth0", "mtu", "1450"])?;
        let gw = format!("10.244.{}.1", node + 1);
        // The gateway's MAC comes from the agent's ARP responder.
        ns.ip(&["route", "add", "10.244.0.0/16", "via", &gw])?;
        ns.ip(&["route", "add", "10.96.0.0/16", "via", &gw])?;
        ns.offloads_off("eth0")?;
        // Same-node Pods know each other (pod-to-pod ARP is switched by NORMAL, which would
        // also flood the uplink).
        for (_, _, qip, qmac, _, _) in PODS.iter().filter(|q| q.0 == node && q.2 != ip) {
            ns.static_neigh(qip, qmac)?;
        }
        out.push(Pod { ns, ip });
    }
    Ok(out)
}

/// Connects, reads the server's name, and has `bytes` echoed back intact.
fn exchange(ns: &Netns, to: &str, bytes: usize) -> Result<String> {
    let mut s = connect(ns, to, Duration::from_millis(2000))?;
    let mut name = [0u8; 6];
    s.read_exact(&mut name)?;
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
    for chunk in data.chunks(1024) {
        s.write_all(chunk)?;
        let mut back = vec![0u8; chunk.len()];
        s.read_exact(&mut back)?;
        if back != chunk {
            bail!("echo from {to} changed the data");
        }
    }
    Ok(String::from_utf8_lossy(&name).to_string())
}

fn query(x: &Xvsd, kind: Kind, name: Option<&str>) -> Result<Response> {
    let q = Query {
        kind,
        name: name.map(str::to_string),
        namespace: Some("default".into()),
        sort_by: Some("effectivePriority".into()),
    };
    Ok(request(&x.run_dir().join("xvs-agent.sock"), &q)?)
}

/// Two node namespaces joined by an underlay veth, their Pods, and a running xvsd on each.
fn two_nodes(tag: &str) -> Result<([Netns; 2], Vec<Pod>, Xvsd, Xvsd)> {
    let nodes = [
        Netns::new(&format!("{tag}a"))?,
        Netns::new(&format!("{tag}b"))?,
    ];
    for n in &nodes {
        no_ipv6(n)?;
    }
    veth(&nodes[0], "ul0", "02:00:00:00:88:01", &nodes[1], "ul0")?;
    nodes[1].ip(&["link", "set", "ul0", "address", "02:00:00:00:88:02"])?;
    for (n, ip) in nodes.iter().zip(UNDERLAY) {
        n.ip(&["addr", "add", &format!("{ip}/24"), "dev", "ul0"])?;
        n.offloads_off("ul0")?;
    }
    let pods = pods(tag, &nodes)?;
    let xa = Xvsd::start(&nodes[0], &config(0))?;
    let xb = Xvsd::start(&nodes[1], &config(1))?;
    wait_running(&xa)?;
    wait_running(&xb)?;
    Ok((nodes, pods, xa, xb))
}

/// After the xvsds have stopped: neither node keeps an XDP program.
fn no_xdp_left(nodes: &[Netns; 2]) -> Result<()> {
    for n in nodes {
        if n.any_xdp()? {
            bail!("XDP program left behind in {}", n.name());
        }
    }
    Ok(())
}

#[test]
fn two_agents_cross_node_pods_service_and_policy_metrics() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("a2n");
    let (nodes, pods, xa, xb) = two_nodes(&tag)?;
    let agent_a = start_agent(&xa, 0)?;
    let agent_b = start_agent(&xb, 1)?;

    let stop = Arc::new(AtomicBool::new(false));
    let result = traffic_and_queries(&xa, &xb, &agent_b, &pods, &stop);
    stop.store(true, Ordering::Relaxed);
    for (x, a) in [(&xa, &agent_a), (&xb, &agent_b)] {
        if result.is_err() {
            eprintln!("agent log:\n{}", a.log());
            eprintln!("{}", x.appctl(&["xvs/show"]).unwrap_or_default());
        }
    }
    result?;
    drop(agent_a);
    drop(agent_b);
    drop(xa);
    drop(xb);
    no_xdp_left(&nodes)
}

fn traffic_and_queries(
    xa: &Xvsd,
    xb: &Xvsd,
    agent_b: &Agent,
    pods: &[Pod],
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let (a1, a2, b1, b2) = (&pods[0], &pods[1], &pods[2], &pods[3]);
    echo_server(&b1.ns, b1.ip, 7778, "pod-b1", stop.clone())?;
    echo_server(&a2.ns, a2.ip, 8080, "pod-a2", stop.clone())?;
    echo_server(&b2.ns, b2.ip, 8080, "pod-b2", stop.clone())?;

    // Cross-node Pod TCP, allowed by the policy on b1's named port `echo`.
    let b1_echo = format!("{}:7778", b1.ip);
    for _ in 0..3 {
        assert_eq!(
            exchange(&a1.ns, &b1_echo, 64 << 10).context("a1 -> b1 over Geneve")?,
            "pod-b1"
        );
    }
    // a2 is not in the rule: isolated b1 drops its SYNs.
    assert!(
        connect(&a2.ns, &b1_echo, Duration::from_millis(1500)).is_err(),
        "a2 -> b1 denied by the policy"
    );
    // Node A's Service balanced over a2 (local) and b2 (through the tunnel).
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..20 {
        *served
            .entry(exchange(&a1.ns, "10.96.0.10:80", 100).context("a1 -> Service")?)
            .or_default() += 1;
    }
    eprintln!("Service endpoints: {served:?}");
    if served.get("pod-a2").copied().unwrap_or(0) < 2
        || served.get("pod-b2").copied().unwrap_or(0) < 2
    {
        bail!("the Service is not balanced over both nodes' endpoints: {served:?}");
    }
    // And from B to A directly.
    assert_eq!(
        exchange(&b2.ns, &format!("{}:8080", a2.ip), 1000)?,
        "pod-a2"
    );

    // Both directions went through the tunnels.
    for x in [xa, xb] {
        let show = x.appctl(&["xvs/show"])?;
        if counter(&show, "decapsulated ") == 0 || counter(&show, "encapsulated ") == 0 {
            bail!("no tunnel traffic counted: {show}");
        }
    }
    // The workers credit flow counters every 100 ms.
    std::thread::sleep(Duration::from_millis(400));

    // Queries: the policy on B, its rule counted by the metric table (allowed sessions and
    // packets), and the denied SYNs by the isolated Pod's deny flow.
    let np = query(xb, Kind::Netpol, None)?;
    assert_eq!(np.objects.len(), 1, "{np:?}");
    let p = &np.objects[0];
    assert_eq!(p.info["appliedTo"], "default/b1");
    assert_eq!(p.rules.len(), 1);
    let rule = &p.rules[0];
    assert_eq!(
        rule.conj_ids.len(),
        1,
        "the named port resolved on b1: {rule:?}"
    );
    assert!(rule.sessions >= 3, "three allowed connections: {rule:?}");
    assert!(
        rule.packets > 3 * 64 && rule.bytes > 3 * 64 * 1024,
        "{rule:?}"
    );
    assert_eq!(p.isolation.len(), 1);
    assert!(
        p.isolation[0].packets >= 1,
        "a2's SYNs dropped: {:?}",
        p.isolation
    );
    assert!(
        p.flows.iter().any(|f| f.matches == "tcp,tp_dst=7778"),
        "the named port's clause: {:?}",
        p.flows
    );
    // On A the policy applies to nothing local: no flows, no rules.
    let np_a = query(xa, Kind::Netpol, Some("echo-from-a1"))?;
    assert!(np_a.objects[0].flows.is_empty() && np_a.objects[0].rules.is_empty());

    // Pods: a1's flows on A, with counts from the switch.
    let a1_view = query(xa, Kind::Pods, Some("a1"))?;
    let flows = &a1_view.objects[0].flows;
    assert_eq!(flows.len(), 5, "{flows:?}");
    let spoof = flows
        .iter()
        .find(|f| f.table == "SpoofGuard")
        .context("a1's SpoofGuard flow")?;
    assert!(spoof.packets.unwrap_or(0) > 20, "{spoof:?}");
    // b1 lives on B: A has no flows for it.
    assert!(query(xa, Kind::Pods, Some("b1"))?.objects[0]
        .flows
        .is_empty());
    // The Service on A: its group and flows, the ServiceLB flow hit by every connection.
    let svc = query(xa, Kind::Services, Some("web"))?;
    let web = &svc.objects[0];
    assert_eq!(web.groups.len(), 1);
    let lb = web
        .flows
        .iter()
        .find(|f| f.table == "ServiceLB")
        .context("ServiceLB flow")?;
    assert!(lb.packets.unwrap_or(0) >= 20, "{lb:?}");
    let dnat_b2 = web
        .flows
        .iter()
        .find(|f| f.table == "EndpointDNAT" && f.matches.contains("reg3=0xaf40203"))
        .context("EndpointDNAT flow of b2")?;
    assert!(dnat_b2.packets.unwrap_or(0) >= 2, "{dnat_b2:?}");

    // The real switch holds what the reference prescribes for the peer node and the tunnel.
    let mgmt = format!("unix:{}", xa.run_dir().join("br-int.mgmt").display());
    let dump = xvs_integration::sh(&["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", &mgmt])?;
    for want in [
        "priority=200,ip,nw_dst=10.244.2.0/24 actions=set_field:02:00:00:00:01:01->eth_src,set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:192.168.88.2->tun_dst,set_field:0x10/0xf0->reg0,goto_table:18",
        "priority=200,in_port=32768 actions=set_field:0x1/0xf->reg0,set_field:0x200/0x200->reg0,goto_table:5",
        "priority=200,dl_dst=aa:bb:cc:dd:ee:ff actions=set_field:0x8000->reg1,set_field:0x200000/0x600000->reg0,goto_table:22",
    ] {
        if !dump.contains(want) {
            bail!("switch lacks {want:?}:\n{dump}");
        }
    }

    // A Pod change re-resolves the named port: b1 now declares `echo` on 7779, and only
    // that port is allowed from a1 (the server on 7778 still listens).
    let commits = agent_b.log().matches("committed").count();
    std::fs::write(
        xb.run_dir().join("manifests").join("00-cluster.yaml"),
        manifests(1).replace("containerPort: 7778", "containerPort: 7779"),
    )?;
    agent_b.wait_log("committed", commits + 1)?;
    echo_server(&b1.ns, b1.ip, 7779, "pod-b1", stop.clone())?;
    assert_eq!(
        exchange(&a1.ns, &format!("{}:7779", b1.ip), 1000).context("a1 -> b1:7779")?,
        "pod-b1"
    );
    assert!(
        connect(&a1.ns, &b1_echo, Duration::from_millis(1500)).is_err(),
        "7778 is no longer b1's echo port"
    );
    let np = query(xb, Kind::Netpol, Some("echo-from-a1"))?;
    let clauses: Vec<&str> = np.objects[0]
        .flows
        .iter()
        .filter(|f| f.matches.starts_with("tcp,"))
        .map(|f| f.matches.as_str())
        .collect();
    assert_eq!(clauses, vec!["tcp,tp_dst=7779"]);

    // The CLI prints the same through the socket, policies in antctl's order.
    let out = Command::new(agent_binary()?)
        .args([
            "get",
            "netpol",
            "--sort-by",
            "effectivePriority",
            "--query-socket",
        ])
        .arg(xb.run_dir().join("xvs-agent.sock"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("xvs-agent get netpol (node B):\n{text}");
    if !out.status.success()
        || !text.contains("K8sNetworkPolicy:default/echo-from-a1")
        || !text.contains("rule Ingress[0]")
    {
        bail!(
            "xvs-agent get netpol: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // xvsctl asks the same socket (found through its --run-dir) and gets the agent's answer:
    // policies in antctl's order, Pods with their flows (counts aside: the switch's counters
    // are read at each query).
    let netpol = Query {
        kind: Kind::Netpol,
        name: None,
        namespace: None,
        sort_by: Some("effectivePriority".into()),
    };
    let by_xvsctl = xvsctl_get(xb, &["netpol", "--sort-by", "effectivePriority"])?;
    let by_agent = request(&xb.run_dir().join("xvs-agent.sock"), &netpol)?;
    assert!(!by_agent.objects.is_empty());
    assert_eq!(without_counts(by_xvsctl), without_counts(by_agent));
    let pods = Query {
        kind: Kind::Pods,
        name: None,
        namespace: None,
        sort_by: None,
    };
    let by_xvsctl = xvsctl_get(xa, &["pods"])?;
    let by_agent = request(&xa.run_dir().join("xvs-agent.sock"), &pods)?;
    assert!(by_agent
        .objects
        .iter()
        .any(|o| o.name == "a1" && !o.flows.is_empty()));
    assert_eq!(without_counts(by_xvsctl), without_counts(by_agent));
    // Without an agent behind the socket, xvsctl says so.
    let none = tempfile::tempdir()?;
    let out = Command::new(xvsctl_binary()?)
        .arg("--run-dir")
        .arg(none.path())
        .args(["get", "pods"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("the agent is not running"),
        "{err}"
    );
    Ok(())
}

/// The `xvsctl` binary next to xvsd (`cargo build -p xvsctl`).
fn xvsctl_binary() -> Result<std::path::PathBuf> {
    let bin = xvs_integration::xvsd_binary()?.with_file_name("xvsctl");
    if !bin.exists() {
        bail!("{} not found: `cargo build -p xvsctl`", bin.display());
    }
    Ok(bin)
}

/// `xvsctl --run-dir <x's run dir> get ARGS -o json`, parsed.
fn xvsctl_get(x: &Xvsd, args: &[&str]) -> Result<Response> {
    let out = Command::new(xvsctl_binary()?)
        .arg("--run-dir")
        .arg(x.run_dir())
        .arg("get")
        .args(args)
        .args(["-o", "json"])
        .output()?;
    if !out.status.success() {
        bail!(
            "xvsctl get {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A response with its packet and byte counts cleared.
fn without_counts(mut r: Response) -> Response {
    r.warning = None;
    for o in &mut r.objects {
        for f in &mut o.flows {
            (f.packets, f.bytes) = (None, None);
        }
        for rule in &mut o.rules {
            (rule.sessions, rule.packets, rule.bytes) = (0, 0, 0);
        }
        for i in &mut o.isolation {
            (i.packets, i.bytes) = (0, 0);
        }
    }
    r
}

/// An ingress Reject on a1 for b1's TCP 9000 and UDP 9001 (both agents read it; it applies
/// where a1 lives, node A).
const REJECT_FROM_B1: &str = r#"apiVersion: crd.antrea.io/v1beta1
kind: NetworkPolicy
metadata: {name: reject-from-b1, namespace: default}
spec:
  priority: 5
  appliedTo: [{podSelector: {matchLabels: {app: a1}}}]
  ingress:
  - action: Reject
    name: RejectB1
    from: [{podSelector: {matchLabels: {app: b1}}}]
    ports: [{protocol: TCP, port: 9000}, {protocol: UDP, port: 9001}]
"#;

/// One datagram from `ns` to `to` on a connected socket; the error the socket then reports
/// (an ICMP error for it), or `None` if nothing came back within 2 s.
fn udp_error(ns: &Netns, to: &'static str) -> Result<Option<std::io::Error>> {
    ns.run(move || -> Result<Option<std::io::Error>> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send(b"hello")?;
        let mut buf = [0u8; 64];
        Ok(match s.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
            Err(e) => Some(e),
            Ok(_) => None,
        })
    })?
}

#[test]
fn reject_of_a_remote_pod_answers_through_the_tunnel() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("rjt");
    let (nodes, pods, xa, xb) = two_nodes(&tag)?;
    for x in [&xa, &xb] {
        let dir = x.run_dir().join("manifests");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("10-reject.yaml"), REJECT_FROM_B1)?;
    }
    let agent_a = start_agent(&xa, 0)?;
    let agent_b = start_agent(&xb, 1)?;
    let (a1, b1, b2) = (&pods[0], &pods[2], &pods[3]);
    let stop = Arc::new(AtomicBool::new(false));
    let result = (|| -> Result<()> {
        // a1 listens on both ports, so any refusal can only be the Reject's answer.
        echo_server(&a1.ns, a1.ip, 9000, "a1-tcp", stop.clone())?;
        let udp = a1
            .ns
            .run(|| std::net::UdpSocket::bind("10.244.1.2:9001"))??;
        udp.set_read_timeout(Some(Duration::from_secs(3)))?;
        // b2 (not selected) reaches a1 across the tunnel on both.
        let mut s = connect(&b2.ns, "10.244.1.2:9000", Duration::from_secs(3))
            .context("b2 -> a1:9000 (allowed)")?;
        let mut name = [0u8; 6];
        s.read_exact(&mut name)?;
        anyhow::ensure!(&name == b"a1-tcp", "a1's echo server answers");
        drop(s);
        anyhow::ensure!(
            udp_error(&b2.ns, "10.244.1.2:9001")?.is_none(),
            "b2 -> a1:9001 gets no error"
        );
        let mut buf = [0u8; 16];
        let (n, from) = udp
            .recv_from(&mut buf)
            .context("a1 receives b2's datagram")?;
        anyhow::ensure!(
            &buf[..n] == b"hello" && from.ip().to_string() == "10.244.2.3",
            "a1 got {:?} from {from}",
            &buf[..n]
        );
        // b1: TCP refused at once (the RST came back through the tunnel, not a retry
        // timeout), UDP answered by ICMP host administratively prohibited (EHOSTUNREACH).
        let t0 = std::time::Instant::now();
        let r = connect(&b1.ns, "10.244.1.2:9000", Duration::from_secs(3));
        let took = t0.elapsed();
        let kind = r
            .err()
            .and_then(|e| e.downcast_ref::<std::io::Error>().map(|e| e.kind()));
        anyhow::ensure!(
            kind == Some(std::io::ErrorKind::ConnectionRefused),
            "b1 -> a1:9000: {kind:?} after {took:?}; expected ConnectionRefused"
        );
        anyhow::ensure!(took < Duration::from_millis(900), "refused after {took:?}");
        let e = udp_error(&b1.ns, "10.244.1.2:9001")?;
        anyhow::ensure!(
            e.as_ref().and_then(std::io::Error::raw_os_error) == Some(113),
            "b1 -> a1:9001: EHOSTUNREACH from ICMP 3/10, got {e:?}"
        );
        // Nothing of b1's reached a1's UDP socket.
        udp.set_read_timeout(Some(Duration::from_millis(300)))?;
        anyhow::ensure!(
            udp.recv_from(&mut buf).is_err(),
            "b1's datagram was dropped"
        );
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    if result.is_err() {
        for (x, a) in [(&xa, &agent_a), (&xb, &agent_b)] {
            eprintln!("agent log:\n{}", a.log());
            eprintln!("{}", x.appctl(&["xvs/show"]).unwrap_or_default());
        }
    }
    result?;
    drop(agent_a);
    drop(agent_b);
    drop(xa);
    drop(xb);
    no_xdp_left(&nodes)
}
