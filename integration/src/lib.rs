//! Support for xvs integration tests: network namespaces that remove themselves, veth pairs,
//! sockets opened inside a namespace, and an `xvsd` process under test.
//!
//! Every name includes the test process id and a counter, so tests can run in parallel with
//! each other and with other users of the machine. Everything is removed on drop, also when a
//! test fails. Traffic only flows between namespaces made here.
#![forbid(unsafe_code)]

pub mod agent;
pub mod anp_fixture;
pub mod ofclient;
pub mod udp;

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A short unique tag: `<prefix><pid36><n>` (kept short so interface names fit in 15 bytes).
pub fn unique_tag(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", radix36(std::process::id()))
}

fn radix36(mut v: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Runs a command to completion; fails with its stderr when it fails.
pub fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when running as root (the namespace tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `xvs-<tag>` with its loopback up.
    pub fn new(tag: &str) -> Result<Self> {
        let name = format!("xvs-{tag}");
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// A permanent neighbour entry `ip` -> `mac` on `eth0`.
    pub fn static_neigh(&self, ip: &str, mac: &str) -> Result<()> {
        self.ip(&[
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .map(drop)
    }

    /// `ip netns exec <ns> <args>`.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// A `Command` that runs `program` inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `f` on a thread that has entered the namespace; sockets it opens stay in it.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::scope(|s| {
            s.spawn(move || -> Result<R> {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the namespace")?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
        })
    }

    /// Turns off transmit offloads that AF_XDP cannot carry (checksum, segmentation).
    pub fn offloads_off(&self, ifname: &str) -> Result<()> {
        self.exec(&[
            "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off",
        ])
        .map(|_| ())
    }

    /// True when `ifname` exists here.
    pub fn has_link(&self, ifname: &str) -> bool {
        self.ip(&["link", "show", "dev", ifname]).is_ok()
    }

    /// True when any interface here carries an XDP program.
    pub fn any_xdp(&self) -> Result<bool> {
        Ok(self.ip(&["-d", "link", "show"])?.contains("prog/xdp"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The three pods the Antrea-style example pipelines (`deploy/examples/antrea-*.flows`) are
/// written for: (name, address, MAC, node-side port), ofports 1, 2, 3 in this order.
pub const EXAMPLE_PODS: [(&str, &str, &str, &str); 3] = [
    ("a", "10.10.0.2", "02:0a:0a:00:00:02", "pa0"),
    ("b", "10.10.0.3", "02:0a:0a:00:00:03", "pb0"),
    ("c", "10.10.0.4", "02:0a:0a:00:00:04", "pc0"),
];

/// A pod of [`example_pods`]: its namespace (interface `eth0`), address and MAC.
#[derive(Debug)]
pub struct Pod {
    /// The pod's namespace.
    pub ns: Netns,
    /// Its IPv4 address (/24 on `eth0`).
    pub ip: &'static str,
    /// Its MAC.
    pub mac: &'static str,
}

/// Builds a node namespace and the [`EXAMPLE_PODS`] behind veths into it (node-side ports
/// `pa0`, `pb0`, `pc0`), checksum offloads off (AF_XDP carries no offload metadata), and every
/// pod knowing the others' MACs as permanent neighbours (the example pipelines do not answer
/// pod-to-pod ARP). Names start with `prefix` and are unique per process.
pub fn example_pods(prefix: &str) -> Result<(Netns, Vec<Pod>)> {
    first_example_pods(prefix, EXAMPLE_PODS.len())
}

/// [`example_pods`] with only the first `n` of them (each knowing the others).
pub fn first_example_pods(prefix: &str, n: usize) -> Result<(Netns, Vec<Pod>)> {
    let tag = unique_tag(prefix);
    let node = Netns::new(&format!("{tag}n"))?;
    let mut pods = Vec::new();
    let chosen = &EXAMPLE_PODS[..n.min(EXAMPLE_PODS.len())];
    for &(name, ip, mac, port) in chosen {
        let ns = Netns::new(&format!("{tag}{name}"))?;
        veth(&ns, "eth0", mac, &node, port)?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.offloads_off("eth0")?;
        for (_, qip, qmac, _) in chosen.iter().filter(|q| q.1 != ip) {
            ns.static_neigh(qip, qmac)?;
        }
        pods.push(Pod { ns, ip, mac });
    }
    Ok((node, pods))
}

/// xvsd in OpenFlow mode with pod-a and pod-b on AF_XDP ports 1 and 2 and no flow file: the
/// tests install their flows over the OpenFlow socket.
pub const TWO_POD_OPENFLOW_CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2
"#;

/// The first two example Pods and xvsd on their node with [`TWO_POD_OPENFLOW_CONFIG`]:
/// (node, Pod namespaces, daemon).
pub fn two_pod_openflow_node(prefix: &str) -> Result<(Netns, Vec<Netns>, Xvsd)> {
    let (node, pods) = first_example_pods(prefix, 2)?;
    let pods = pods.into_iter().map(|p| p.ns).collect();
    let xvsd = Xvsd::start(&node, TWO_POD_OPENFLOW_CONFIG)?;
    Ok((node, pods, xvsd))
}

/// [`example_pods`] plus a routed destination: pod-c also owns 10.20.0.4 and pod-a reaches
/// 10.20.0.0/24 through the gateway 10.10.0.1 (the example pipelines route it to pod-c,
/// rewriting MACs and TTL).
pub fn routed_example_pods(prefix: &str) -> Result<(Netns, Vec<Pod>)> {
    let (node, pods) = example_pods(prefix)?;
    pods[2]
        .ns
        .ip(&["addr", "add", "10.20.0.4/32", "dev", "eth0"])?;
    pods[0].ns.ip(&[
        "route",
        "add",
        "10.20.0.0/24",
        "via",
        "10.10.0.1",
        "dev",
        "eth0",
    ])?;
    Ok((node, pods))
}

/// One iperf3 TCP transfer of `secs` seconds from `client` to a one-shot server on
/// `server_ip`:5201 in `server`; the bytes the server received. The error carries iperf3's
/// JSON when the transfer failed.
pub fn iperf3_tcp_bytes(server: &Netns, server_ip: &str, client: &Netns, secs: u32) -> Result<u64> {
    let iperf = Path::new("/usr/bin/iperf3");
    let mut srv = server
        .command(iperf)
        .args(["-s", "-1", "-B", server_ip, "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let out = client
        .command(iperf)
        .args(["-c", server_ip, "-p", "5201", "-t", &secs.to_string(), "-J"])
        .args(["--connect-timeout", "3000"])
        .output();
    let _ = srv.kill();
    let _ = srv.wait();
    let out = out?;
    let json = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("iperf3 failed: {json}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&json).with_context(|| format!("iperf3 JSON: {json}"))?;
    v["end"]["sum_received"]["bytes"]
        .as_u64()
        .with_context(|| format!("iperf3 JSON has no end.sum_received.bytes: {json}"))
}

/// Creates a veth pair `a_if`@`a` <-> `b_if`@`b`, with the given MAC on the `a` side, both up.
pub fn veth(a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str) -> Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "address",
        a_mac,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Finds the `xvsd` binary: `$XVSD_BIN`, else next to the test executable's target directory.
pub fn xvsd_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("XVSD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/xvsd
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let bin = dir.join("xvsd");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p xvsd`) or set XVSD_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// An `xvsd` process under test, running in a namespace; stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Xvsd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

impl Xvsd {
    /// Writes `config` (in which `@RUN@` stands for the private run directory) and starts xvsd
    /// in `ns`, waiting until its pid file appears.
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        Self::start_with(ns, config, &[])
    }

    /// Like [`Xvsd::start`], also writing `files` (name, content) next to the configuration;
    /// `@DIR@` in the configuration stands for their directory.
    pub fn start_with(ns: &Netns, config: &str, files: &[(&str, &str)]) -> Result<Self> {
        let mut x = Self::spawn_with(ns, config, files)?;
        let pid_file = x.run_dir().join("xvsd.pid");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !pid_file.exists() {
            if let Some(status) = x.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("xvsd exited ({status}) before it was ready: {}", x.stderr());
            }
            if Instant::now() > deadline {
                bail!("xvsd not ready after 20 s: {}", x.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(x)
    }

    /// Starts xvsd without waiting (for tests that expect it to fail).
    pub fn spawn(ns: &Netns, config: &str) -> Result<Self> {
        Self::spawn_with(ns, config, &[])
    }

    /// Like [`Xvsd::spawn`], with extra files (see [`Xvsd::start_with`]).
    pub fn spawn_with(ns: &Netns, config: &str, files: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("xvs-it").tempdir()?;
        let run = dir.path().join("run");
        let cfg_path = dir.path().join("xvsd.toml");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content)?;
        }
        let config = config
            .replace("@RUN@", &run.display().to_string())
            .replace("@DIR@", &dir.path().display().to_string());
        std::fs::write(&cfg_path, config)?;
        let stderr_path = dir.path().join("stderr");
        let child = ns
            .command(&xvsd_binary()?)
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path)?)
            .spawn()
            .context("starting xvsd")?;
        Ok(Self {
            child: Some(child),
            dir,
            stderr_path,
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The private run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// What xvsd wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let mut s = String::new();
        let _ = File::open(&self.stderr_path).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// `ovs-ofctl -O OpenFlow15 [opts] CMD unix:<run_dir>/br-int.mgmt [args]`: (success,
    /// stdout, stderr).
    pub fn ofctl_raw(
        &self,
        opts: &[&str],
        cmd: &str,
        args: &[&str],
    ) -> Result<(bool, String, String)> {
        let target = format!("unix:{}", self.run_dir().join("br-int.mgmt").display());
        let out = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow15"])
            .args(opts)
            .arg(cmd)
            .arg(target)
            .args(args)
            .output()
            .context("running ovs-ofctl")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// [`ofctl_raw`](Self::ofctl_raw) that must succeed: its stdout, or an error with ovs-ofctl's
    /// stderr and xvsd's.
    pub fn ofctl(&self, opts: &[&str], cmd: &str, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.ofctl_raw(opts, cmd, args)?;
        if !ok {
            bail!(
                "ovs-ofctl {opts:?} {cmd} {args:?} failed: {err}\n{}",
                self.stderr()
            );
        }
        Ok(out)
    }

    /// `ovs-ofctl add-flow` of each flow in turn (one message each, as a test writing them
    /// one by one would send).
    pub fn add_flows(&self, flows: &[&str]) -> Result<()> {
        for flow in flows {
            self.ofctl(&[], "add-flow", &[flow])?;
        }
        Ok(())
    }

    /// `ovs-appctl -t <run_dir>/xvsd.ctl <args>`: the real OVS client.
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let ctl = self.run_dir().join("xvsd.ctl");
        let ctl = ctl.display().to_string();
        let mut v = vec!["ovs-appctl", "-t", &ctl];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Waits for xvsd to exit by itself (within `timeout`) and returns its status.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = self.child.as_mut().context("already stopped")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait()? {
                self.child = None;
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("xvsd still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let child = self.child.as_mut().context("already stopped")?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        self.wait(Duration::from_secs(20))
    }
}

impl Drop for Xvsd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
