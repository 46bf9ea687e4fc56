//! An `xvs-agent` process under test, and TCP helpers for the traffic the agent tests check
//! (a named echo server and connections opened from inside a Pod namespace).

use crate::{xvsd_binary, Netns};
use anyhow::{bail, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `xvs-agent` binary: `$XVS_AGENT_BIN`, or next to xvsd in the target directory.
pub fn agent_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("XVS_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let bin = xvsd_binary()?.with_file_name("xvs-agent");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p xvs-agent`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// An `xvs-agent run` process polling fast (50 ms, 100 ms debounce), its stderr in a log
/// file; killed on drop.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts `xvs-agent run --manifests DIR --socket SOCKET [extra...]`, logging to `log`.
    pub fn start(manifests: &Path, socket: &Path, log: &Path, extra: &[&str]) -> Result<Agent> {
        Self::spawn(Command::new(agent_binary()?), manifests, socket, log, extra)
    }

    /// [`Agent::start`] inside the network namespace `ns` (as Antrea's agent runs in the
    /// node's host network: its own DNS queries leave from there).
    pub fn start_in(
        ns: &crate::Netns,
        manifests: &Path,
        socket: &Path,
        log: &Path,
        extra: &[&str],
    ) -> Result<Agent> {
        Self::spawn(ns.command(&agent_binary()?), manifests, socket, log, extra)
    }

    /// Runs `agent` (the agent binary, possibly wrapped) with the test defaults.
    fn spawn(
        mut agent: Command,
        manifests: &Path,
        socket: &Path,
        log: &Path,
        extra: &[&str],
    ) -> Result<Agent> {
        let child = agent
            .args(["run", "--poll-ms", "50", "--debounce-ms", "100"])
            .arg("--manifests")
            .arg(manifests)
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        Ok(Agent {
            child,
            log: log.to_path_buf(),
        })
    }

    /// Writes `files` (name, YAML) into `<run dir>/manifests`, starts the agent there on the
    /// daemon's `br-int.mgmt` with `extra` arguments (log: `<run dir>/agent.log`) and waits
    /// until it first reports "in sync": the set-up every single-node agent test repeats.
    pub fn start_synced(x: &crate::Xvsd, files: &[(&str, &str)], extra: &[&str]) -> Result<Agent> {
        let dir = manifests_dir(x);
        std::fs::create_dir_all(&dir)?;
        for (name, yaml) in files {
            std::fs::write(dir.join(name), yaml)?;
        }
        let socket = x.run_dir().join("br-int.mgmt");
        let agent = Agent::start(&dir, &socket, &x.run_dir().join("agent.log"), extra)?;
        agent.wait_log("in sync", 1)?;
        Ok(agent)
    }

    /// What the agent has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (15 s at most) until the log holds `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.log().matches(needle).count() < count {
            if Instant::now() > deadline {
                bail!("agent log lacks {count}x {needle:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where [`Agent::start_synced`] keeps the manifests it reads: tests add or remove files there
/// to change policy while the agent runs.
pub fn manifests_dir(x: &crate::Xvsd) -> PathBuf {
    x.run_dir().join("manifests")
}

/// Where the tests point the agent's `--np-log` (Antrea's `/var/log/antrea/networkpolicy/np.log`).
pub fn np_log_path(x: &crate::Xvsd) -> PathBuf {
    x.run_dir().join("networkpolicy").join("np.log")
}

/// A TCP server on `ip:port` inside `ns` answering `name` to each connection, then echoing
/// until EOF; it stops accepting when `stop` is set.
pub fn echo_server(
    ns: &Netns,
    ip: &str,
    port: u16,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let addr = format!("{ip}:{port}");
    let l = ns.run(move || -> Result<TcpListener> { Ok(TcpListener::bind(&addr)?) })??;
    l.set_nonblocking(true)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                        let _ = s.write_all(name.as_bytes());
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = s.read(&mut buf) {
                            if n == 0 || s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Ok(())
}

/// A TCP connection to `to` opened from inside `ns` (5 s read and write timeouts).
pub fn connect(ns: &Netns, to: &str, timeout: Duration) -> Result<TcpStream> {
    let to: SocketAddr = to.parse()?;
    ns.run(move || -> Result<TcpStream> {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(s)
    })?
}

/// Connects to an [`echo_server`] and returns the first 5 bytes of its name.
pub fn hello(ns: &Netns, to: &str) -> Result<String> {
    let mut s = connect(ns, to, Duration::from_millis(1500))?;
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).to_string())
}

/// [`hello`], retried until it succeeds or `within` has passed.
pub fn hello_within(ns: &Netns, to: &str, within: Duration) -> Result<String> {
    let deadline = Instant::now() + within;
    loop {
        match hello(ns, to) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sends `msg` on an [`echo_server`] connection and checks it comes back intact.
pub fn echo(s: &mut TcpStream, msg: &[u8]) -> Result<()> {
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    if back != msg {
        bail!("echo mismatch");
    }
    Ok(())
}

/// The one-node agent tests' gateway MAC.
pub const NODE_GW_MAC: &str = "aa:bb:cc:dd:ee:01";

/// The one-node agent tests' Pods: (name, address, MAC, node-side port, ofport).
pub const NODE_PODS: [(&str, &str, &str, &str, u32); 3] = [
    ("a", "10.10.0.2", "02:0a:0a:00:00:02", "pa0", 1),
    ("b", "10.10.0.3", "02:0a:0a:00:00:03", "pb0", 2),
    ("c", "10.10.0.4", "02:0a:0a:00:00:04", "pc0", 3),
];

/// xvsd's config for them: AF_XDP ports pa0, pb0, pc0 on ofports 1-3, OpenFlow forwarding
/// (the agent programs it), conntrack on (`@RUN@`: the run directory).
pub const NODE_CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100

[conntrack]
max_connections = 100000

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2

[[port]]
name = "pc0"
type = "afxdp"
ofport = 3
"#;

/// The manifests they share: the AgentConfig (node-1, noEncap, the gateway), the Node, the
/// default Namespace and the three Pods (labelled `app: <name>`, interface annotations).
pub fn node_manifests() -> String {
    let mut s = format!(
        r#"kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: noEncap
  gateway: {{name: antrea-gw0, ip: 10.10.0.1, mac: "{NODE_GW_MAC}"}}
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
    for (name, ip, mac, port, ofport) in NODE_PODS {
        s.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: pod-{name}
  namespace: default
  labels: {{app: {name}}}
  annotations: {{xvs.io/mac: "{mac}", xvs.io/interface: {port}, xvs.io/ofport: "{ofport}"}}
spec: {{nodeName: node-1}}
status: {{podIP: {ip}}}
"#
        ));
    }
    s
}

/// The node namespace running xvsd with [`NODE_CONFIG`] and the [`NODE_PODS`] namespaces on
/// its veths: each Pod knows the others' MACs and the gateway's (static neighbours: the tests
/// need no ARP), and routes the Service range 10.96.0.0/16 through the gateway.
pub fn node_with_pods(prefix: &str) -> Result<(Netns, Vec<Netns>, crate::Xvsd)> {
    let tag = crate::unique_tag(prefix);
    let node = Netns::new(&format!("{tag}n"))?;
    let mut pods = Vec::new();
    for (name, ip, mac, port, _) in NODE_PODS {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        crate::veth(&ns, "eth0", mac, &node, port)?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.offloads_off("eth0")?;
        for (_, qip, qmac, _, _) in NODE_PODS.iter().filter(|p| p.1 != ip) {
            ns.static_neigh(qip, qmac)?;
        }
        ns.ip(&["route", "add", "10.96.0.0/16", "via", "10.10.0.1"])?;
        ns.static_neigh("10.10.0.1", NODE_GW_MAC)?;
        pods.push(ns);
    }
    let x = crate::Xvsd::start(&node, NODE_CONFIG)?;
    Ok((node, pods, x))
}
