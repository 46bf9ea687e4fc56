//! A one-node cluster for policy tests with real traffic: xvsd with one AF_XDP veth port per
//! Pod and a tap gateway, the agent reading a manifest directory, Pods in named Kubernetes
//! namespaces (labels, service accounts) each in its own network namespace, listening on the
//! spec's TCP ports and UDP 53 and answering ping, and two "external" hosts behind the
//! gateway (addresses of the node namespace). [`Cluster::probe_all`] opens real connections
//! concurrently and classifies each as allowed, dropped (timeout) or rejected (RST / ICMP
//! administratively prohibited).
//!
//! The Node (proxyAll on) has two addresses: its InternalIP [`NODE_IP`], local to the node
//! namespace (the host: it answers on [`TCP_PORTS`] and [`NODE_TCP_PORTS`], as does the
//! gateway IP), and an ExternalIP
//! [`NODE_EXTERNAL_IP`] that the node namespace routes through the gateway, so that the
//! external hosts reach NodePort Services through xvs as clients outside the Node would
//! ([`Cluster::probe_from_node`]); a real Node gets there by host DNAT to Antrea's virtual
//! NodePort IP instead.

use crate::agent::Agent;
use crate::{unique_tag, veth, Netns, Xvsd};
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TCP ports every Pod and external host listens on.
pub const TCP_PORTS: [u16; 7] = [53, 80, 5978, 6379, 8080, 9000, 9001];
/// The UDP port every Pod and external host echoes on.
pub const UDP_PORT: u16 = 53;
/// External hosts behind the gateway (addresses in the node namespace): X1, X2.
pub const EXTERNAL: [&str; 2] = ["10.0.10.7", "10.0.11.7"];
/// The Node's InternalIP: an address of the node namespace.
pub const NODE_IP: &str = "192.168.0.1";
/// The Node's ExternalIP: routed from the node namespace into the gateway (NodePort clients).
pub const NODE_EXTERNAL_IP: &str = "192.168.1.1";
/// TCP ports only the node namespace listens on, on all its addresses (API server, ssh).
pub const NODE_TCP_PORTS: [u16; 2] = [22, 6443];
/// The gateway: address, MAC, ofport.
pub const GW_IP: &str = "10.10.0.1";
const GW_MAC: &str = "aa:bb:cc:dd:ee:01";
const GW_OFPORT: u32 = 100;
/// How long a connection attempt may take before it counts as dropped.
const DROP_TIMEOUT: Duration = Duration::from_millis(1500);
/// Probes running at once (threads; pings are processes).
const PARALLEL: usize = 48;

/// The fate of a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Connected / answered.
    Allow,
    /// No answer within the timeout.
    Drop,
    /// Refused: TCP RST, or ICMP destination unreachable.
    Reject,
}

/// What a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A TCP connect to the port.
    Tcp,
    /// A UDP datagram to the port, echoed back.
    Udp,
    /// An ICMP echo request (the port is ignored).
    Icmp,
}

/// One expected connection: (from, to, protocol, port, verdict); `from` and `to` name a Pod
/// (`ns/name`), an external host or an address.
pub type Row<'a> = (&'a str, &'a str, Proto, u16, Verdict);

/// A Pod of the fixture: Kubernetes namespace, name, labels (`k=v,k2=v2`), service account.
#[derive(Debug, Clone)]
pub struct PodDef {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Labels as `k=v` pairs separated by commas.
    pub labels: String,
    /// spec.serviceAccountName.
    pub service_account: String,
}

impl PodDef {
    /// A Pod with the `default` service account.
    pub fn new(namespace: &str, name: &str, labels: &str) -> PodDef {
        PodDef {
            namespace: namespace.into(),
            name: name.into(),
            labels: labels.into(),
            service_account: "default".into(),
        }
    }

    /// The same Pod with service account `sa`.
    pub fn sa(mut self, sa: &str) -> PodDef {
        self.service_account = sa.into();
        self
    }
}

/// `yaml` with `from` replaced by `to`; panics when `from` is absent, so a test adapting a
/// shared manifest fails loudly instead of silently running against the unedited data.
pub fn edit_manifest(yaml: &str, from: &str, to: &str) -> String {
    assert!(
        yaml.contains(from),
        "shared manifest no longer contains {from:?}; update the test's edit"
    );
    yaml.replace(from, to)
}

/// `k=v,k2=v2` as a YAML flow mapping.
pub fn yaml_labels(labels: &str) -> String {
    let items: Vec<String> = labels
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            format!("{}: \"{}\"", k.trim(), v.trim())
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The Namespaces (name, labels) and Pods the base manifest declares.
type Declared = (Vec<(String, String)>, Vec<PodDef>);

/// A running Pod.
#[derive(Debug)]
pub struct RunningPod {
    /// Its definition.
    pub def: PodDef,
    /// Its address.
    pub ip: String,
    /// Its network namespace.
    pub netns: Netns,
}

/// The node, its Pods, xvsd and the agent; everything is removed on drop.
#[derive(Debug)]
pub struct Cluster {
    /// The agent (declared first: stopped before xvsd).
    pub agent: Agent,
    /// xvsd.
    pub xvsd: Xvsd,
    /// The Pods, in definition order (ofport = index + 1).
    pub pods: Vec<RunningPod>,
    node: Netns,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    /// The Namespaces and Pods as the base manifest currently declares them.
    declared: RefCell<Declared>,
}

fn pod_mac(i: usize) -> String {
    format!("02:0a:0a:00:{:02x}:{:02x}", (i + 2) >> 8, (i + 2) & 0xff)
}

fn pod_ip(i: usize) -> String {
    format!("10.10.0.{}", i + 2)
}

fn xvsd_config(n: usize) -> String {
    let mut s = String::from(
        r#"bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100

[conntrack]
max_connections = 100000
"#,
    );
    for i in 0..n {
        let _ = write!(
            s,
            "\n[[port]]\nname = \"p{i}\"\ntype = \"afxdp\"\nofport = {}\n",
            i + 1
        );
    }
    let _ = write!(
        s,
        "\n[[port]]\nname = \"antrea-gw0\"\ntype = \"tap\"\nofport = {GW_OFPORT}\nmac = \"{GW_MAC}\"\n"
    );
    s
}

fn base_manifests(namespaces: &[(String, String)], pods: &[PodDef]) -> String {
    let mut s = format!(
        r#"kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: noEncap
  proxyAll: true
  gateway: {{name: antrea-gw0, ip: {GW_IP}, mac: "{GW_MAC}", ofport: {GW_OFPORT}}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-1, labels: {{kubernetes.io/hostname: node-1, node-role.kubernetes.io/control-plane: ""}}}}
spec: {{podCIDR: 10.10.0.0/24}}
status: {{addresses: [{{type: InternalIP, address: {NODE_IP}}}, {{type: ExternalIP, address: {NODE_EXTERNAL_IP}}}]}}
"#
    );
    let mut names: Vec<&str> = namespaces.iter().map(|n| n.0.as_str()).collect();
    for (name, labels) in namespaces {
        s.push_str(&namespace_manifest(name, labels));
    }
    for p in pods {
        if !names.contains(&p.namespace.as_str()) {
            names.push(&p.namespace);
            s.push_str(&namespace_manifest(&p.namespace, ""));
        }
    }
    for (i, p) in pods.iter().enumerate() {
        let _ = write!(
            s,
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {}
  namespace: {}
  labels: {}
  annotations: {{xvs.io/mac: "{}", xvs.io/interface: p{i}, xvs.io/ofport: "{}"}}
spec: {{nodeName: node-1, serviceAccountName: {}}}
status: {{podIP: {}}}
"#,
            p.name,
            p.namespace,
            yaml_labels(&p.labels),
            pod_mac(i),
            i + 1,
            p.service_account,
            pod_ip(i)
        );
    }
    s
}

/// A Namespace object with labels `k=v,...` plus `kubernetes.io/metadata.name`, which the
/// API server adds to every Namespace.
pub fn namespace_manifest(name: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {}}}\n",
        yaml_labels(&format!("kubernetes.io/metadata.name={name},{labels}"))
    )
}

/// Serves one Pod's (or the node's) ports until `stop`: accepts and closes TCP connections,
/// echoes UDP datagrams. One thread, non-blocking sockets.
fn serve_ports(
    ns: &Netns,
    udp_addrs: &[&str],
    extra_tcp: &[(&'static str, u16)],
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let udp_addrs: Vec<String> = udp_addrs.iter().map(|a| a.to_string()).collect();
    let extra_tcp = extra_tcp.to_vec();
    let (tcp, udp) = ns.run(move || -> Result<(Vec<TcpListener>, Vec<UdpSocket>)> {
        let mut v = Vec::new();
        let every = TCP_PORTS.iter().map(|p| ("0.0.0.0", *p));
        for (a, p) in every.chain(extra_tcp) {
            let l = TcpListener::bind((a, p)).with_context(|| format!("tcp {a}:{p}"))?;
            l.set_nonblocking(true)?;
            v.push(l);
        }
        // One socket per address: an unconnected reply would otherwise leave from the
        // route's preferred source, which the client's connected socket ignores.
        let mut u = Vec::new();
        for a in &udp_addrs {
            let s = UdpSocket::bind((a.as_str(), UDP_PORT))?;
            s.set_nonblocking(true)?;
            u.push(s);
        }
        Ok((v, u))
    })??;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            for l in &tcp {
                while let Ok((s, _)) = l.accept() {
                    busy = true;
                    drop(s);
                }
            }
            for u in &udp {
                while let Ok((n, from)) = u.recv_from(&mut buf) {
                    busy = true;
                    let _ = u.send_to(&buf[..n], from);
                }
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    Ok(())
}

impl Cluster {
    /// Builds the node (xvsd, tap gateway with the external hosts behind it), the Pods and
    /// the agent with the base manifests plus `extra` (Services, Tiers, policies...; may be
    /// empty), and waits until the agent is in sync.
    pub fn start(
        prefix: &str,
        namespaces: &[(&str, &str)],
        pods: &[PodDef],
        extra: &str,
    ) -> Result<Cluster> {
        Self::start_with_agent_args(prefix, namespaces, pods, extra, &[])
    }

    /// [`Cluster::start`] with extra `xvs-agent run` arguments.
    pub fn start_with_agent_args(
        prefix: &str,
        namespaces: &[(&str, &str)],
        pods: &[PodDef],
        extra: &str,
        agent_args: &[&str],
    ) -> Result<Cluster> {
        let tag = unique_tag(prefix);
        let node = Netns::new(&format!("{tag}n"))?;
        let mut running = Vec::new();
        for (i, def) in pods.iter().enumerate() {
            let ns = Netns::new(&format!("{tag}-{i}"))?;
            let mac = pod_mac(i);
            veth(&ns, "eth0", &mac, &node, &format!("p{i}"))?;
            let ip = pod_ip(i);
            ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            ns.offloads_off("eth0")?;
            ns.static_neigh(GW_IP, GW_MAC)?;
            for j in (0..pods.len()).filter(|&j| j != i) {
                ns.static_neigh(&pod_ip(j), &pod_mac(j))?;
            }
            ns.ip(&["route", "add", "default", "via", GW_IP])?;
            running.push(RunningPod {
                def: def.clone(),
                ip,
                netns: ns,
            });
        }
        let xvsd = Xvsd::start(&node, &xvsd_config(pods.len()))?;
        node.ip(&["addr", "add", &format!("{GW_IP}/24"), "dev", "antrea-gw0"])?;
        node.ip(&["link", "set", "antrea-gw0", "up"])?;
        node.offloads_off("antrea-gw0")?;
        for x in EXTERNAL.iter().chain([&NODE_IP]) {
            node.ip(&["addr", "add", &format!("{x}/32"), "dev", "lo"])?;
        }
        // NodePort clients in the node namespace: the ExternalIP lies behind the gateway
        // (any MAC: the pipeline rewrites it for the Endpoint).
        node.ip(&[
            "route",
            "add",
            &format!("{NODE_EXTERNAL_IP}/32"),
            "dev",
            "antrea-gw0",
        ])?;
        node.ip(&[
            "neigh",
            "replace",
            NODE_EXTERNAL_IP,
            "lladdr",
            "aa:bb:cc:dd:ee:ff",
            "dev",
            "antrea-gw0",
            "nud",
            "permanent",
        ])?;
        for (j, p) in running.iter().enumerate() {
            node.ip(&[
                "neigh",
                "replace",
                &p.ip,
                "lladdr",
                &pod_mac(j),
                "dev",
                "antrea-gw0",
                "nud",
                "permanent",
            ])?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let node_tcp: Vec<(&str, u16)> = NODE_TCP_PORTS.iter().map(|p| ("0.0.0.0", *p)).collect();
        serve_ports(&node, &EXTERNAL, &node_tcp, stop.clone())?;
        for p in &running {
            serve_ports(&p.netns, &[p.ip.as_str()], &[], stop.clone())?;
        }
        let dir = xvsd.run_dir().join("manifests");
        std::fs::create_dir_all(&dir)?;
        let namespaces: Vec<(String, String)> = namespaces
            .iter()
            .map(|(n, l)| (n.to_string(), l.to_string()))
            .collect();
        std::fs::write(
            dir.join("00-cluster.yaml"),
            base_manifests(&namespaces, pods),
        )?;
        if !extra.is_empty() {
            std::fs::write(dir.join("05-extra.yaml"), extra)?;
        }
        let socket = xvsd.run_dir().join("br-int.mgmt");
        let agent = Agent::start(&dir, &socket, &xvsd.run_dir().join("agent.log"), agent_args)?;
        agent.wait_log("in sync", 1)?;
        Ok(Cluster {
            agent,
            xvsd,
            pods: running,
            node,
            dir,
            stop,
            declared: RefCell::new((namespaces, pods.to_vec())),
        })
    }

    /// Rewrites the base manifest after `change` and waits for the agent's commit, or 2 s
    /// when the change moves no flow (a label no policy selects): a later [`Cluster::apply`]
    /// waits for its own commit anyway.
    fn redeclare(&self, change: impl FnOnce(&mut Declared)) -> Result<()> {
        let text = {
            let mut d = self.declared.borrow_mut();
            change(&mut d);
            base_manifests(&d.0, &d.1)
        };
        let before = self.commits();
        self.write("00-cluster", &text)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.commits() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(())
    }

    /// Changes the labels (`k=v,...`) of Pod `ns/name` (the Kubernetes object; its network
    /// namespace stays).
    pub fn set_pod_labels(&self, who: &str, labels: &str) -> Result<()> {
        let (ns, name) = who.split_once('/').context("Pod as ns/name")?;
        self.redeclare(|d| {
            for p in
                d.1.iter_mut()
                    .filter(|p| p.namespace == ns && p.name == name)
            {
                p.labels = labels.to_string();
            }
        })
    }

    /// Rewrites every Namespace's and Pod's labels (`k=v,...`, in declaration order) in the
    /// base manifest without waiting; see [`Cluster::settle`].
    pub fn stage_labels(&self, namespace_labels: &[String], pod_labels: &[String]) -> Result<()> {
        let text = {
            let mut d = self.declared.borrow_mut();
            for (n, l) in d.0.iter_mut().zip(namespace_labels) {
                n.1 = l.clone();
            }
            for (p, l) in d.1.iter_mut().zip(pod_labels) {
                p.labels = l.clone();
            }
            base_manifests(&d.0, &d.1)
        };
        self.write("00-cluster", &text)
    }

    /// Waits until the agent has committed nothing for 1.5 s in a row: after staged changes
    /// that may or may not move flows (the agent polls every 50 ms and debounces 100 ms).
    pub fn settle(&self) {
        loop {
            let before = self.commits();
            std::thread::sleep(Duration::from_millis(1500));
            if self.commits() == before {
                return;
            }
        }
    }

    /// The manifest directory the agent reads.
    pub fn manifest_dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Changes the labels (`k=v,...`) of Namespace `ns`.
    pub fn set_namespace_labels(&self, ns: &str, labels: &str) -> Result<()> {
        self.redeclare(|d| {
            for n in d.0.iter_mut().filter(|n| n.0 == ns) {
                n.1 = labels.to_string();
            }
        })
    }

    /// The address of `who`: `ns/name` of a Pod, `X1`/`X2`, or an address as is.
    pub fn ip(&self, who: &str) -> String {
        match who {
            "X1" => EXTERNAL[0].into(),
            "X2" => EXTERNAL[1].into(),
            _ => self
                .pod(who)
                .map(|p| p.ip.clone())
                .unwrap_or_else(|| who.to_string()),
        }
    }

    /// The Pod `ns/name`.
    pub fn pod(&self, who: &str) -> Option<&RunningPod> {
        let (ns, name) = who.split_once('/')?;
        self.pods
            .iter()
            .find(|p| p.def.namespace == ns && p.def.name == name)
    }

    fn commits(&self) -> usize {
        self.agent.log().matches("committed").count()
    }

    /// Waits (15 s at most) until the agent has committed more than `before` bundles.
    fn wait_commit(&self, before: usize, what: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.commits() <= before {
            if Instant::now() > deadline {
                bail!("no commit after {what}; agent log:\n{}", self.agent.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(())
    }

    fn write(&self, name: &str, yaml: &str) -> Result<()> {
        // Written aside then renamed: the agent never reads half a file.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(&tmp, self.dir.join(format!("{name}.yaml")))?;
        Ok(())
    }

    /// Writes manifest file `<name>.yaml` (replacing it) without waiting: for objects that
    /// move no flow by themselves (groups before the policy using them).
    pub fn stage(&self, name: &str, yaml: &str) -> Result<()> {
        self.write(name, yaml)
    }

    /// Writes manifest file `<name>.yaml` (replacing it) and waits until the agent has
    /// committed the resulting flow changes.
    pub fn apply(&self, name: &str, yaml: &str) -> Result<()> {
        let before = self.commits();
        self.write(name, yaml)?;
        self.wait_commit(before, &format!("applying {name}"))
    }

    /// Writes manifest file `<name>.yaml` that the agent must refuse; returns the agent's
    /// report about it (the first new `bad manifest` line naming the file: schema errors and
    /// admission webhook denials alike).
    pub fn apply_refused(&self, name: &str, yaml: &str) -> Result<String> {
        let file = format!("/{name}.yaml:");
        let is_report = |l: &&str| l.contains("bad manifest") && l.contains(&file);
        let seen = self.agent.log().lines().filter(is_report).count();
        self.write(name, yaml)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.agent.log();
            if let Some(line) = log.lines().filter(is_report).nth(seen) {
                return Ok(line.to_string());
            }
            if Instant::now() > deadline {
                bail!("{name} not refused; agent log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Removes manifest file `<name>.yaml` and waits for the commit.
    pub fn remove(&self, name: &str) -> Result<()> {
        let before = self.commits();
        std::fs::remove_file(self.dir.join(format!("{name}.yaml")))?;
        self.wait_commit(before, &format!("removing {name}"))
    }

    /// Removes `<name>.yaml` without waiting (for a file the agent refused).
    pub fn remove_quietly(&self, name: &str) -> Result<()> {
        std::fs::remove_file(self.dir.join(format!("{name}.yaml")))?;
        Ok(())
    }

    /// One probe; see [`Cluster::probe_all`].
    pub fn probe(&self, src: &str, dst: &str, proto: Proto, port: u16) -> Result<Verdict> {
        Ok(self.probe_all(&[(src, dst, proto, port)])?[0])
    }

    /// Probes concurrently: from Pod `src` (`ns/name`) to `dst` (Pod, `X1`/`X2` or address),
    /// a fresh TCP connect, UDP exchange or ping each.
    pub fn probe_all(&self, probes: &[(&str, &str, Proto, u16)]) -> Result<Vec<Verdict>> {
        let mut jobs = Vec::new();
        for (src, dst, proto, port) in probes {
            let pod = self
                .pod(src)
                .with_context(|| format!("no Pod {src} in the fixture"))?;
            jobs.push((pod.netns.name().to_string(), self.ip(dst), *proto, *port));
        }
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(PARALLEL) {
            let handles: Vec<_> = chunk
                .iter()
                .cloned()
                .map(|(ns, dst, proto, port)| {
                    std::thread::spawn(move || probe_one(&ns, &dst, proto, port))
                })
                .collect();
            for h in handles {
                out.push(
                    h.join()
                        .map_err(|_| anyhow::anyhow!("probe thread panicked"))??,
                );
            }
        }
        Ok(out)
    }

    /// Probes every row of `table` (src, dst, proto, port, expected) and fails listing every
    /// row whose verdict differs (with the agent log's tail).
    pub fn check(&self, what: &str, table: &[Row]) -> Result<()> {
        let probes: Vec<_> = table.iter().map(|r| (r.0, r.1, r.2, r.3)).collect();
        let got = self.probe_all(&probes)?;
        let mut bad = String::new();
        for (row, g) in table.iter().zip(&got) {
            if *g != row.4 {
                let _ = writeln!(
                    bad,
                    "  {} -> {} {:?}/{}: expected {:?}, got {:?}",
                    row.0, row.1, row.2, row.3, row.4, g
                );
            }
        }
        if !bad.is_empty() {
            let log = self.agent.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{what}: {} of {} connections differ:\n{bad}agent log tail:\n{}",
                bad.lines().count(),
                table.len(),
                tail.join("\n")
            );
        }
        eprintln!("{what}: {} connections as expected", table.len());
        Ok(())
    }

    /// The node namespace (xvsd and the external hosts).
    pub fn node(&self) -> &Netns {
        &self.node
    }

    /// Probes from the node namespace concurrently: a fresh TCP connect or UDP exchange from
    /// source address `src` (`X1`/`X2`, an address, or `None`: the route's choice, the
    /// gateway IP towards Pods) to `dst` (Pod, `X1`/`X2` or address); ICMP is not offered.
    pub fn probe_from_node(
        &self,
        probes: &[(Option<&str>, &str, Proto, u16)],
    ) -> Result<Vec<Verdict>> {
        let ns = self.node.name().to_string();
        let handles: Vec<_> = probes
            .iter()
            .map(|(src, dst, proto, port)| {
                let (ns, src, dst) = (ns.clone(), src.map(|s| self.ip(s)), self.ip(dst));
                let (proto, port) = (*proto, *port);
                std::thread::spawn(move || probe_bound(&ns, src.as_deref(), &dst, proto, port))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("probe thread panicked"))?
            })
            .collect()
    }

    /// [`Cluster::probe_from_node`] for each row of `table` (src, dst, proto, port, expected);
    /// fails listing every row whose verdict differs.
    pub fn check_from_node(
        &self,
        what: &str,
        table: &[(Option<&str>, &str, Proto, u16, Verdict)],
    ) -> Result<()> {
        let probes: Vec<_> = table.iter().map(|r| (r.0, r.1, r.2, r.3)).collect();
        let got = self.probe_from_node(&probes)?;
        let mut bad = String::new();
        for (row, g) in table.iter().zip(&got) {
            if *g != row.4 {
                let _ = writeln!(
                    bad,
                    "  node({}) -> {} {:?}/{}: expected {:?}, got {:?}",
                    row.0.unwrap_or("-"),
                    row.1,
                    row.2,
                    row.3,
                    row.4,
                    g
                );
            }
        }
        if !bad.is_empty() {
            bail!("{what}: connections from the node differ:\n{bad}");
        }
        eprintln!(
            "{what}: {} connections from the node as expected",
            table.len()
        );
        Ok(())
    }
}

/// Runs a test's cases in order on one [`Cluster`], applying each one's manifests before and
/// removing them after (also when it fails); fails at the end with every failure, so one run
/// reports all the cases that fail.
#[derive(Debug)]
pub struct Cases<'c> {
    c: &'c Cluster,
    failures: Vec<String>,
}

impl<'c> Cases<'c> {
    pub fn new(c: &'c Cluster) -> Self {
        Cases {
            c,
            failures: Vec::new(),
        }
    }

    pub fn run(
        &mut self,
        name: &str,
        files: &[(&str, &str)],
        body: impl FnOnce(&Cluster) -> Result<()>,
    ) {
        eprintln!("== {name}");
        let mut r = (|| -> Result<()> {
            // Only the last file must move flows (groups come before their policy).
            if let Some(((last, y), first)) = files.split_last() {
                for (f, y) in first {
                    self.c.stage(f, y)?;
                }
                self.c
                    .apply(last, y)
                    .with_context(|| format!("applying {last}"))?;
            }
            body(self.c)
        })();
        // The last file's removal moves flows; the others (groups) then go quietly.
        for (i, (f, _)) in files.iter().enumerate().rev() {
            let removed = if i + 1 == files.len() {
                self.c.remove(f)
            } else {
                self.c.remove_quietly(f)
            };
            if let Err(e) = removed {
                if r.is_ok() {
                    r = Err(e).with_context(|| format!("removing {f}"));
                }
            }
        }
        if let Err(e) = r {
            eprintln!("{name} FAILED: {e:#}");
            self.failures.push(format!("{name}: {e:#}"));
        }
    }

    /// A case whose whole body is one table of connections under its manifests.
    pub fn table(&mut self, name: &str, files: &[(&str, &str)], what: &str, rows: &[Row]) {
        self.run(name, files, |c| c.check(what, rows));
    }

    pub fn finish(self) -> Result<()> {
        if !self.failures.is_empty() {
            bail!(
                "{} case(s) failed:\n{}",
                self.failures.len(),
                self.failures.join("\n\n")
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn classify(e: &std::io::Error) -> Option<Verdict> {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Some(Verdict::Drop),
        ErrorKind::ConnectionRefused => Some(Verdict::Reject),
        _ => match e.raw_os_error() {
            // EHOSTUNREACH, ENETUNREACH, EACCES (ICMP prohibited codes), EHOSTDOWN.
            Some(113 | 101 | 13 | 112) => Some(Verdict::Reject),
            _ => None,
        },
    }
}

fn probe_one(ns: &str, dst: &str, proto: Proto, port: u16) -> Result<Verdict> {
    match proto {
        Proto::Icmp => ping(ns, dst),
        Proto::Tcp | Proto::Udp => probe_bound(ns, None, dst, proto, port),
    }
}

/// One probe from network namespace `ns`, bound to source address `src` when given.
fn probe_bound(ns: &str, src: Option<&str>, dst: &str, proto: Proto, port: u16) -> Result<Verdict> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    let to: SocketAddr = format!("{dst}:{port}").parse()?;
    let from: Option<SocketAddr> = src.map(|s| format!("{s}:0").parse()).transpose()?;
    let bound = src.map(|s| format!(" ({s})")).unwrap_or_default();
    let what = format!("{proto:?} {dst}:{port} from {ns}{bound}");
    match proto {
        Proto::Tcp => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            if let Some(f) = from {
                s.bind(&SockAddr::from(f))?;
            }
            match s.connect_timeout(&SockAddr::from(to), DROP_TIMEOUT) {
                Ok(()) => Ok(Verdict::Allow),
                Err(e) => classify(&e).with_context(|| format!("{what}: {e}")),
            }
        }
        Proto::Udp => {
            let s = UdpSocket::bind(from.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))))?;
            s.connect(to)?;
            s.set_read_timeout(Some(DROP_TIMEOUT / 3))?;
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                if let Err(e) = s.send(b"xvs-probe") {
                    return classify(&e).with_context(|| format!("{what}: {e}"));
                }
                match s.recv(&mut buf) {
                    Ok(_) => return Ok(Verdict::Allow),
                    Err(e) => match classify(&e) {
                        Some(Verdict::Drop) => continue,
                        Some(v) => return Ok(v),
                        None => bail!("{what}: {e}"),
                    },
                }
            }
            Ok(Verdict::Drop)
        }
        Proto::Icmp => bail!("{what}: ICMP probes from the node are not offered"),
    }
}

fn ping(ns: &str, dst: &str) -> Result<Verdict> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.3", "-W", "1", dst,
        ])
        .output()
        .context("running ping")?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = out.stderr.as_slice().read_to_string(&mut text);
    if text.contains("bytes from") {
        Ok(Verdict::Allow)
    } else if text.contains("Prohibited") || text.contains("Unreachable") {
        Ok(Verdict::Reject)
    } else {
        Ok(Verdict::Drop)
    }
}
