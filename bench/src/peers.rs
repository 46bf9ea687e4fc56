//! The dataplanes compared by the `io` benchmark. Each one is started on the node's two ports
//! (`pa0`, `pb0`) for a single measurement and stopped afterwards, so repetitions of different
//! peers can be interleaved.

use crate::bpf::{self, Attached};
use crate::process::{Guarded, RemoveDirOnDrop};
use crate::topology::{Endpoint, Topology, DIRECT_A, DIRECT_B, NODE_PORTS, POD_A, POD_B};
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::fmt;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One dataplane under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// No switch: the generator into the direct veth pod-a `d0` -> pod-b `d0` (generator ceiling).
    Offered,
    /// xvs's daemon, io-fwd mode, AF_XDP ports pa0 <-> pb0.
    Xvsd,
    /// xvs's daemon, io-fwd mode, DPDK ports: `net_af_xdp` vdevs on pa0/pb0 (the same vdevs as
    /// testpmd); needs an xvsd built with `--features dpdk`.
    XvsdDpdk,
    /// `dpdk-testpmd` io forwarding over `net_af_xdp` vdevs on pa0/pb0.
    Testpmd,
    /// An XDP program redirecting pa0 <-> pb0 in the kernel (the kernel's limit).
    Xdp,
    /// Open vSwitch's userspace datapath (`datapath_type=netdev`), `afxdp` ports where the
    /// build has them, else `system` (AF_PACKET) ports; see [`crate::ovs`].
    Ovs,
    /// The Linux bridge in the node namespace (RPS of the node ports on the dataplane core).
    Bridge,
}

impl Peer {
    pub const ALL: [Peer; 7] = [
        Peer::Offered,
        Peer::Xvsd,
        Peer::XvsdDpdk,
        Peer::Testpmd,
        Peer::Xdp,
        Peer::Ovs,
        Peer::Bridge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Offered => "offered",
            Peer::Xvsd => "xvsd",
            Peer::XvsdDpdk => "xvsd-dpdk",
            Peer::Testpmd => "testpmd",
            Peer::Xdp => "xdp",
            Peer::Ovs => "ovs",
            Peer::Bridge => "bridge",
        }
    }

    /// The generator's source and the counted receiver for this peer.
    pub fn endpoints(self) -> (&'static Endpoint, &'static Endpoint) {
        match self {
            Peer::Offered => (&DIRECT_A, &DIRECT_B),
            _ => (&POD_A, &POD_B),
        }
    }

    /// Whether the peer runs OpenFlow tables (and so the scenario's flow file).
    pub fn is_openflow(self) -> bool {
        matches!(self, Peer::Xvsd | Peer::Ovs)
    }

    /// Why this peer cannot run on this machine, if it cannot.
    pub fn unavailable(self, env: &PeerEnv<'_>) -> Option<String> {
        match self {
            Peer::Offered | Peer::Xdp | Peer::Bridge => None,
            Peer::Ovs => ["ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl"]
                .into_iter()
                .find(|p| which(p).is_none())
                .map(|p| format!("{p} not found (apt-get install openvswitch-switch)")),
            Peer::Xvsd => (!is_executable(env.xvsd)).then(|| {
                format!(
                    "xvsd binary {} not found (build it with `cargo build --release -p xvsd` or pass --xvsd PATH)",
                    env.xvsd.display()
                )
            }),
            Peer::XvsdDpdk => xvsd_dpdk_unavailable(env),
            Peer::Testpmd => which("dpdk-testpmd").is_none().then(|| {
                "dpdk-testpmd not found (apt-get install dpdk-dev librte-net-af-xdp23)".to_string()
            }),
        }
    }

    /// Starts the peer and waits until it forwards (or fails).
    pub fn start(self, env: &PeerEnv<'_>, run: usize) -> Result<Running> {
        match self {
            Peer::Offered => Ok(Running::Nothing),
            Peer::Xdp => {
                let (a, b) = (NODE_PORTS[0].0, NODE_PORTS[1].0);
                let progs = env.topo.node.enter(|| bpf::attach_redirect_pair(a, b))?;
                Ok(Running::Programs(progs))
            }
            Peer::Xvsd => start_xvsd(env, run, false),
            Peer::XvsdDpdk => start_xvsd(env, run, true),
            Peer::Testpmd => start_testpmd(env, run),
            Peer::Ovs => crate::ovs::start(env, run),
            Peer::Bridge => start_bridge(env),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Peer {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Peer::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .with_context(|| {
                format!("unknown peer {s:?} (offered, xvsd, xvsd-dpdk, testpmd, xdp, ovs, bridge)")
            })
    }
}

/// What the peers need from the harness.
#[derive(Debug)]
pub struct PeerEnv<'a> {
    pub topo: &'a Topology,
    /// Core for the dataplane.
    pub dp_cpu: usize,
    /// Private working directory (configs, logs, run dirs).
    pub work: &'a Path,
    pub xvsd: &'a Path,
    /// Unique tag (`xvsb<pid>`) for names outside the namespaces (DPDK file prefix).
    pub tag: &'a str,
    /// Set by SIGINT/SIGTERM: stop waiting.
    pub stop: &'a AtomicBool,
    /// The OpenFlow flow file for xvsd and OVS; `None`: xvsd forwards in io-fwd mode and OVS
    /// gets the two output flows of the `l2` scenario.
    pub flows: Option<&'a Path>,
    /// The connection tracker's limit, the same in both OpenFlow switches (xvsd's
    /// `[conntrack] max_connections`, OVS's `dpctl/ct-set-maxconns`); `None`: their defaults.
    pub ct_max: Option<u32>,
}

/// A started peer; dropping it stops it.
#[derive(Debug)]
pub enum Running {
    Nothing,
    /// The Linux bridge; removed (and the node ports' GRO switched off again) on drop.
    Bridge(#[allow(dead_code)] BridgeGuard),
    /// OVS: ovsdb-server and ovs-vswitchd, stopped by PID on drop (vswitchd first).
    Ovs(crate::ovs::OvsGuard),
    /// Held for its `Drop`, which detaches the programs.
    Programs(#[allow(dead_code)] Attached),
    Process {
        proc: Guarded,
        log: PathBuf,
        grace: Duration,
        /// Removed after the process ended (fields drop in order: `proc` first).
        leftovers: Vec<RemoveDirOnDrop>,
        /// xvsd's unixctl socket: its counters are saved (and checked) before it stops.
        ctl: Option<PathBuf>,
    },
}

impl Running {
    /// Whether the peer is still up (a process peer may have died during the window).
    pub fn is_alive(&mut self) -> bool {
        match self {
            Running::Process { proc, .. } => proc.is_running(),
            Running::Ovs(g) => g.is_alive(),
            _ => true,
        }
    }

    /// The peer's connection tracker now, if it has one (xvsd: `xvs/show`; OVS:
    /// `dpctl/ct-get-nconns`, O(1) in both, unlike a dump).
    pub fn ct_snapshot(&self) -> Result<Option<CtSnapshot>> {
        match self {
            Running::Process { ctl: Some(ctl), .. } => {
                let text = appctl(ctl, "xvs/show");
                parse_xvsd_conntrack(&text)
                    .map(Some)
                    .with_context(|| format!("no conntrack line in xvsd's xvs/show: {text:?}"))
            }
            Running::Ovs(g) => g.ct_snapshot().map(Some),
            _ => Ok(None),
        }
    }

    /// Empties the peer's connection tracker (`dpctl/flush-conntrack`), so that a measurement
    /// starts from an empty table; a no-op for peers without one.
    pub fn ct_flush(&self) -> Result<()> {
        match self {
            Running::Process { ctl: Some(ctl), .. } => {
                let out = Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(ctl)
                    .arg("dpctl/flush-conntrack")
                    .stdin(Stdio::null())
                    .output()
                    .context("spawn ovs-appctl")?;
                if !out.status.success() {
                    bail!(
                        "xvsd dpctl/flush-conntrack: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(())
            }
            Running::Ovs(g) => g.ct_flush(),
            _ => Ok(()),
        }
    }

    /// Stops the peer; reports a process peer's exit status.
    pub fn stop(self) -> Result<String> {
        match self {
            Running::Nothing | Running::Programs(_) | Running::Bridge(_) => Ok(String::new()),
            Running::Ovs(g) => g.stop(),
            Running::Process {
                mut proc,
                log,
                grace,
                leftovers,
                ctl,
            } => {
                // xvsd: its counters before it stops, next to its log; translation drops for
                // actions this build cannot execute are reported.
                let mut unsupported = String::new();
                if let Some(ctl) = ctl {
                    let mut stats = String::new();
                    for cmd in ["xvs/show", "dpif-netdev/pmd-stats-show"] {
                        stats.push_str(&appctl(&ctl, cmd));
                    }
                    unsupported = unsupported_drops(&stats);
                    let _ = fs::write(log.with_extension("stats"), stats);
                }
                let st = proc.stop(grace)?;
                drop(leftovers);
                let exit = match st {
                    Some(st) if !st.success() => {
                        format!("{} exited with {st}; log: {}", proc.name(), log.display())
                    }
                    _ => String::new(),
                };
                Ok([exit, unsupported]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        }
    }
}

/// A connection tracker's state between two measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtSnapshot {
    /// Connections in the table.
    pub connections: u64,
    /// The table's limit.
    pub max: u64,
    /// Connections created since the daemon started (xvsd counts them; OVS does not say).
    pub created: Option<u64>,
    /// Commits refused because the table was full (xvsd's `ct_full`).
    pub full: Option<u64>,
}

/// The conntrack line of xvsd's `xvs/show`:
/// `conntrack: connections N (max M), created C, expired E, flushed F, ct_full X, ...`.
pub fn parse_xvsd_conntrack(show: &str) -> Option<CtSnapshot> {
    let line = show
        .lines()
        .find_map(|l| l.trim().strip_prefix("conntrack: connections "))?;
    let number_after = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let connections = line
        .split_whitespace()
        .next()?
        .trim_end_matches(',')
        .parse()
        .ok()?;
    Some(CtSnapshot {
        connections,
        max: number_after("(max ")?,
        created: Some(number_after("created ")?),
        full: number_after("ct_full "),
    })
}

/// `ovs-appctl -t <socket> <cmd>`'s output (empty if it fails).
fn appctl(ctl: &Path, cmd: &str) -> String {
    Command::new("ovs-appctl")
        .arg("-t")
        .arg(ctl)
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The non-zero `unsupported_*` translation drop counters in xvsd's `xvs/show` text, as
/// "unsupported_ct: 123" (empty if none).
pub fn unsupported_drops(stats: &str) -> String {
    let mut seen = Vec::new();
    for line in stats.lines() {
        let Some((name, n)) = line.trim().split_once(": ") else {
            continue;
        };
        if name.starts_with("unsupported_")
            && n.trim().parse::<u64>().is_ok_and(|n| n > 0)
            && !seen.iter().any(|s: &String| s.starts_with(name))
        {
            seen.push(format!("{name}: {}", n.trim()));
        }
    }
    if seen.is_empty() {
        String::new()
    } else {
        format!("translation drops {}", seen.join(", "))
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| is_executable(p))
}

/// The last lines of a log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `ip netns exec <node> taskset -c <dp_cpu> <argv...>`: both exec in place, so the returned PID
/// is the dataplane's own. `ip netns exec` also remounts /sys for the namespace, which AF_XDP
/// and DPDK need to see the node's devices.
pub fn spawn_in_node(
    env: &PeerEnv<'_>,
    name: &str,
    argv: &[String],
    log: &Path,
    stop: Signal,
) -> Result<Guarded> {
    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = Command::new("ip")
        .args(["netns", "exec", env.topo.node.name(), "taskset", "-c"])
        .arg(env.dp_cpu.to_string())
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {name}"))?;
    Ok(Guarded::new(name, child, stop))
}

/// Polls `ready` every 50 ms until it holds, the process ends, `timeout` passes or the harness
/// is interrupted.
pub fn wait_ready(
    stop: &AtomicBool,
    proc: &mut Guarded,
    log: &Path,
    timeout: Duration,
    ready: impl Fn() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(st) = proc.try_status()? {
            bail!(
                "{} exited during start-up ({st}):\n{}",
                proc.name(),
                log_tail(log, 15)
            );
        }
        // Relaxed: the flag carries no data, it is only polled.
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!(
                "{} not ready after {timeout:?}:\n{}",
                proc.name(),
                log_tail(log, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The configuration of xvsd for the two node ports: io-fwd without a flow file, else the
/// OpenFlow pipeline loaded from it.
pub fn xvsd_config(
    run_dir: &Path,
    dp_cpu: usize,
    flows: Option<&Path>,
    ct_max: Option<u32>,
) -> String {
    let mut s = format!(
        "bridge = \"br-bench\"\nrun_dir = \"{}\"\nworkers = [{dp_cpu}]\n",
        run_dir.display()
    );
    match flows {
        None => s.push_str("forwarding = \"io-fwd\"\n"),
        Some(f) => s.push_str(&format!(
            "forwarding = \"openflow\"\nflows = \"{}\"\n",
            f.display()
        )),
    }
    if let (Some(n), Some(_)) = (ct_max, flows) {
        s.push_str(&format!("\n[conntrack]\nmax_connections = {n}\n"));
    }
    for (i, (name, _)) in NODE_PORTS.iter().enumerate() {
        s.push_str(&format!(
            "\n[[port]]\nname = \"{name}\"\ntype = \"afxdp\"\nofport = {}\nxdp_mode = \"native\"\n",
            i + 1
        ));
    }
    s
}

/// The io-fwd configuration of xvsd with DPDK ports: `net_af_xdp` vdevs on the node's two ports
/// (as testpmd's), EAL without hugepages.
pub fn xvsd_dpdk_config(run_dir: &Path, dp_cpu: usize) -> String {
    let mut s = format!(
        "bridge = \"br-bench\"\nrun_dir = \"{}\"\nworkers = [{dp_cpu}]\nforwarding = \"io-fwd\"\n\
         \n[dpdk]\ncores = \"{dp_cpu}\"\nno_huge = true\nmemory_mb = 256\n",
        run_dir.display()
    );
    for (i, (name, _)) in NODE_PORTS.iter().enumerate() {
        s.push_str(&format!(
            "\n[[port]]\nname = \"{name}\"\ntype = \"dpdk\"\nofport = {}\n\
             devargs = \"net_af_xdp{i},iface={name},start_queue=0,queue_count=1\"\n",
            i + 1
        ));
    }
    s
}

/// Why the xvsd binary cannot run DPDK ports, if it cannot (asks `xvsd --check`).
fn xvsd_dpdk_unavailable(env: &PeerEnv<'_>) -> Option<String> {
    if !is_executable(env.xvsd) {
        return Peer::Xvsd.unavailable(env);
    }
    let config = env.work.join("xvsd-dpdk-check.toml");
    let text = xvsd_dpdk_config(&env.work.join("xvsd-dpdk-check"), env.dp_cpu);
    if let Err(e) = fs::write(&config, text) {
        return Some(format!("write {}: {e}", config.display()));
    }
    // On the dataplane core, as the real run: the harness itself is pinned to the generator's.
    let out = Command::new("taskset")
        .arg("-c")
        .arg(env.dp_cpu.to_string())
        .arg(env.xvsd)
        .arg("--check")
        .arg("--config")
        .arg(&config)
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{} cannot run DPDK ports (build it with `cargo build --release -p xvsd --features dpdk`): {}",
            env.xvsd.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("run {}: {e}", env.xvsd.display())),
    }
}

fn start_xvsd(env: &PeerEnv<'_>, run: usize, dpdk: bool) -> Result<Running> {
    let run_dir = env.work.join(format!("xvsd-run-{run}"));
    fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o750))?;
    let pid_file = run_dir.join("xvsd.pid");
    let _ = fs::remove_file(&pid_file);
    let config = env.work.join(format!("xvsd-{run}.toml"));
    let config_text = if dpdk {
        xvsd_dpdk_config(&run_dir, env.dp_cpu)
    } else {
        xvsd_config(&run_dir, env.dp_cpu, env.flows, env.ct_max)
    };
    let run_dir = RemoveDirOnDrop(run_dir);
    fs::write(&config, config_text).with_context(|| format!("write {}", config.display()))?;
    let log = env.work.join(format!("xvsd-{run}.log"));
    let argv = [
        env.xvsd.display().to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    let mut proc = spawn_in_node(env, "xvsd", &argv, &log, Signal::SIGTERM)?;
    wait_ready(env.stop, &mut proc, &log, Duration::from_secs(20), || {
        pid_file.exists()
    })?;
    Ok(Running::Process {
        proc,
        log,
        grace: Duration::from_secs(10),
        ctl: Some(run_dir.0.join("xvsd.ctl")),
        leftovers: vec![run_dir],
    })
}

/// The testpmd command line of peer-baselines.md, with `--no-huge -m 1024` instead of hugepages.
pub fn testpmd_argv(tag: &str, dp_cpu: usize) -> Vec<String> {
    let (pa, pb) = (NODE_PORTS[0].0, NODE_PORTS[1].0);
    [
        // testpmd's stdout is a file: line buffering makes the readiness line appear at once.
        "stdbuf".to_string(),
        "-oL".to_string(),
        "dpdk-testpmd".to_string(),
        "--lcores".to_string(),
        format!("0@{dp_cpu},1@{dp_cpu}"),
        "--no-pci".to_string(),
        "--no-huge".to_string(),
        "-m".to_string(),
        "1024".to_string(),
        "--file-prefix".to_string(),
        tag.to_string(),
        "--vdev".to_string(),
        format!("net_af_xdp0,iface={pa},start_queue=0,queue_count=1"),
        "--vdev".to_string(),
        format!("net_af_xdp1,iface={pb},start_queue=0,queue_count=1"),
        "--".to_string(),
        "--forward-mode=io".to_string(),
        "--nb-cores=1".to_string(),
        "--rxq=1".to_string(),
        "--txq=1".to_string(),
        "--auto-start".to_string(),
        // Non-interactive testpmd with a stats period runs until SIGINT (without one it waits for
        // Enter on stdin, which is /dev/null here, and would quit at once).
        "--stats-period".to_string(),
        "5".to_string(),
    ]
    .into()
}

fn start_testpmd(env: &PeerEnv<'_>, run: usize) -> Result<Running> {
    let log = env.work.join(format!("testpmd-{run}.log"));
    let runtime_dir = RemoveDirOnDrop(PathBuf::from("/var/run/dpdk").join(env.tag));
    let mut proc = spawn_in_node(
        env,
        "dpdk-testpmd",
        &testpmd_argv(env.tag, env.dp_cpu),
        &log,
        Signal::SIGINT,
    )?;
    wait_ready(env.stop, &mut proc, &log, Duration::from_secs(30), || {
        fs::read_to_string(&log)
            // Printed by start_packet_forwarding() with the forwarding configuration.
            .map(|t| t.contains("packet forwarding - ports="))
            .unwrap_or(false)
    })?;
    // Give the PMD a moment to enter its loop after the message.
    std::thread::sleep(Duration::from_millis(300));
    Ok(Running::Process {
        proc,
        log,
        grace: Duration::from_secs(10),
        leftovers: vec![runtime_dir],
        ctl: None,
    })
}

/// The node ports' receive path for peers without an XDP program on them: GRO on, so that the
/// generator's `ndo_xdp_xmit` into pod-a's veth is accepted (veth takes redirected frames only
/// when its peer has XDP or GRO; the bit is recomputed when GRO changes on a running device).
pub fn node_ports_gro(topo: &Topology, on: bool) -> Result<()> {
    for (dev, _) in NODE_PORTS {
        topo.node.exec(
            "ethtool",
            &["-K", dev, "gro", if on { "on" } else { "off" }],
        )?;
    }
    Ok(())
}

/// Name of the Linux bridge in the node namespace.
const LINUX_BRIDGE: &str = "lbr0";

/// The Linux bridge `lbr0` in the node namespace; dropping it deletes the bridge and switches the
/// node ports' GRO off again.
#[derive(Debug)]
pub struct BridgeGuard {
    node: String,
}

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        if let Err(e) = crate::topology::run(Command::new("ip").args([
            "-n",
            &self.node,
            "link",
            "del",
            LINUX_BRIDGE,
        ])) {
            eprintln!("xvs-bench: cleanup of the bridge: {e:#}");
        }
        for (dev, _) in NODE_PORTS {
            if let Err(e) = crate::topology::run(Command::new("ip").args([
                "netns", "exec", &self.node, "ethtool", "-K", dev, "gro", "off",
            ])) {
                eprintln!("xvs-bench: cleanup of the bridge: {e:#}");
            }
        }
    }
}

/// The bridge of peer-baselines.md: no STP, no forwarding delay, no netfilter calls, static FDB
/// entries for the two Pods (instead of learning from priming pings), the node ports' receive
/// processing steered (RPS) to the dataplane core.
fn start_bridge(env: &PeerEnv<'_>) -> Result<Running> {
    let node = &env.topo.node;
    let guard = BridgeGuard {
        node: node.name().to_string(),
    };
    // Per namespace since br_netfilter became netns-aware; a missing key means no br_netfilter.
    for key in ["iptables", "ip6tables", "arptables"] {
        let _ = node.sysctl(&format!("net.bridge.bridge-nf-call-{key}"), "0");
    }
    node.ip(&[
        "link",
        "add",
        LINUX_BRIDGE,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "ageing_time",
        "360000",
    ])?;
    for (dev, _) in NODE_PORTS {
        node.ip(&["link", "set", dev, "master", LINUX_BRIDGE])?;
    }
    node.ip(&["link", "set", LINUX_BRIDGE, "up"])?;
    for (dev, ep) in [(NODE_PORTS[0].0, &POD_A), (NODE_PORTS[1].0, &POD_B)] {
        let mac = crate::generator::format_mac(&ep.mac);
        run_bridge_cmd(
            node.name(),
            &["fdb", "replace", &mac, "dev", dev, "master", "static"],
        )?;
    }
    let mask = format!("{:x}", 1u64 << env.dp_cpu);
    for (dev, _) in NODE_PORTS {
        let path = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
        // /sys shows the namespace of the process that mounted it: write from `ip netns exec`.
        crate::topology::run(Command::new("ip").args([
            "netns",
            "exec",
            node.name(),
            "sh",
            "-c",
            &format!("echo {mask} > {path}"),
        ]))?;
    }
    node_ports_gro(env.topo, true)?;
    Ok(Running::Bridge(guard))
}

fn run_bridge_cmd(netns: &str, args: &[&str]) -> Result<()> {
    crate::topology::run(Command::new("bridge").args(["-n", netns]).args(args))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_round_trip() {
        for p in Peer::ALL {
            assert_eq!(p.name().parse::<Peer>().unwrap(), p);
        }
        assert!("vpp".parse::<Peer>().is_err());
    }

    #[test]
    fn unsupported_drops_are_found() {
        let show = "bridge br-bench:\n  translation drops:\n    unsupported_ct: 1234\n    unsupported_normal: 0\n";
        assert_eq!(
            unsupported_drops(show),
            "translation drops unsupported_ct: 1234"
        );
        assert_eq!(
            unsupported_drops("  translation drops:\n    no_match: 5\n"),
            ""
        );
    }

    #[test]
    fn xvsd_config_pairs_ports_in_order() {
        let c = xvsd_config(Path::new("/tmp/x"), 0, None, Some(5));
        assert!(!c.contains("[conntrack]"), "io-fwd has no tracker to size");
        assert!(c.contains("forwarding = \"io-fwd\""));
        assert!(c.contains("workers = [0]"));
        let a = c.find("name = \"pa0\"").unwrap();
        let b = c.find("name = \"pb0\"").unwrap();
        assert!(a < b);
        assert!(c.contains("ofport = 2"));
        let d = xvsd_dpdk_config(Path::new("/tmp/x"), 0);
        assert!(d.contains("devargs = \"net_af_xdp0,iface=pa0,start_queue=0,queue_count=1\""));
        assert!(d.contains("devargs = \"net_af_xdp1,iface=pb0,start_queue=0,queue_count=1\""));
        assert!(d.contains("no_huge = true"));
        let f = xvsd_config(
            Path::new("/tmp/x"),
            0,
            Some(Path::new("/tmp/a.flows")),
            Some(5),
        );
        assert!(f.contains("flows = \"/tmp/a.flows\""));
        assert!(f.contains("\n[conntrack]\nmax_connections = 5\n"));
    }

    #[test]
    fn xvsd_conntrack_line_is_parsed() {
        let show = "bridge br-bench:\n  conntrack: connections 1234 (max 4000000), created 5678, \
                    expired 0, flushed 4444, ct_full 7, zone_full 0, nat_exhausted 0\n    packets 1, new 1\n";
        assert_eq!(
            parse_xvsd_conntrack(show),
            Some(CtSnapshot {
                connections: 1234,
                max: 4_000_000,
                created: Some(5678),
                full: Some(7),
            })
        );
        assert_eq!(parse_xvsd_conntrack("bridge br-bench:\n"), None);
        assert_eq!(parse_xvsd_conntrack(""), None);
    }
}
