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
}

impl Peer {
    pub const ALL: [Peer; 5] = [
        Peer::Offered,
        Peer::Xvsd,
        Peer::XvsdDpdk,
        Peer::Testpmd,
        Peer::Xdp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Offered => "offered",
            Peer::Xvsd => "xvsd",
            Peer::XvsdDpdk => "xvsd-dpdk",
            Peer::Testpmd => "testpmd",
            Peer::Xdp => "xdp",
        }
    }

    /// The generator's source and the counted receiver for this peer.
    pub fn endpoints(self) -> (&'static Endpoint, &'static Endpoint) {
        match self {
            Peer::Offered => (&DIRECT_A, &DIRECT_B),
            _ => (&POD_A, &POD_B),
        }
    }

    /// Why this peer cannot run on this machine, if it cannot.
    pub fn unavailable(self, env: &PeerEnv<'_>) -> Option<String> {
        match self {
            Peer::Offered | Peer::Xdp => None,
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
            .with_context(|| format!("unknown peer {s:?} (offered, xvsd, xvsd-dpdk, testpmd, xdp)"))
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
}

/// A started peer; dropping it stops it.
#[derive(Debug)]
pub enum Running {
    Nothing,
    /// Held for its `Drop`, which detaches the programs.
    Programs(#[allow(dead_code)] Attached),
    Process {
        proc: Guarded,
        log: PathBuf,
        grace: Duration,
        /// Removed after the process ended (fields drop in order: `proc` first).
        leftovers: Vec<RemoveDirOnDrop>,
    },
}

impl Running {
    /// Whether the peer is still up (a process peer may have died during the window).
    pub fn is_alive(&mut self) -> bool {
        match self {
            Running::Process { proc, .. } => proc.is_running(),
            _ => true,
        }
    }

    /// Stops the peer; reports a process peer's exit status.
    pub fn stop(self) -> Result<String> {
        match self {
            Running::Nothing | Running::Programs(_) => Ok(String::new()),
            Running::Process {
                mut proc,
                log,
                grace,
                leftovers,
            } => {
                let st = proc.stop(grace)?;
                drop(leftovers);
                Ok(match st {
                    Some(st) if !st.success() => {
                        format!("{} exited with {st}; log: {}", proc.name(), log.display())
                    }
                    _ => String::new(),
                })
            }
        }
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn which(prog: &str) -> Option<PathBuf> {
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
fn spawn_in_node(
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
fn wait_ready(
    env: &PeerEnv<'_>,
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
        if env.stop.load(Ordering::Relaxed) {
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

/// The io-fwd configuration of xvsd for the two node ports.
pub fn xvsd_config(run_dir: &Path, dp_cpu: usize) -> String {
    let mut s = format!(
        "bridge = \"br-bench\"\nrun_dir = \"{}\"\nworkers = [{dp_cpu}]\nforwarding = \"io-fwd\"\n",
        run_dir.display()
    );
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
        xvsd_config(&run_dir, env.dp_cpu)
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
    wait_ready(env, &mut proc, &log, Duration::from_secs(20), || {
        pid_file.exists()
    })?;
    Ok(Running::Process {
        proc,
        log,
        grace: Duration::from_secs(10),
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
    wait_ready(env, &mut proc, &log, Duration::from_secs(30), || {
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
    })
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
        assert!("ovs".parse::<Peer>().is_err());
    }

    #[test]
    fn xvsd_config_pairs_ports_in_order() {
        let c = xvsd_config(Path::new("/tmp/x"), 0);
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
    }
}
