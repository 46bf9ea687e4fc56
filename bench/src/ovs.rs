//! The Open vSwitch peer: Debian's `ovsdb-server` and `ovs-vswitchd` with the userspace datapath
//! (`datapath_type=netdev`), started by the harness in a node namespace with a private run
//! directory (database, sockets, pid and log files all inside it), and stopped by PID.
//!
//! [`OvsDaemons`] is one such pair with the commands to drive it (`ovs-vsctl`, `ovs-appctl`,
//! `ovs-ofctl`); `compare` builds its one-bridge peer on it ([`start`]), `tunnel` builds two
//! bridges per node on it (integration bridge with a Geneve port, underlay bridge).
//!
//! Ports are `afxdp` (native XDP mode, one queue) when the build lists that interface type, as
//! Debian 12's 3.1 does; otherwise `system` ports (AF_PACKET), and the harness says so. Flow
//! files are loaded with the real `ovs-ofctl -O OpenFlow15 add-flows`.

use crate::peers::{log_tail, node_ports_gro, wait_ready, CtSnapshot, PeerEnv, Running};
use crate::process::Guarded;
use crate::scenarios::Scenario;
use crate::topology::NODE_PORTS;
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const BRIDGE: &str = "ovsbr0";

/// ovsdb-server and ovs-vswitchd in one namespace, pinned to the dataplane core (vswitchd's PMD
/// too, through `pmd-cpu-mask`). Dropping it stops vswitchd, then its database, then deletes
/// the bridges' internal ports (persistent taps in the netdev datapath) from the namespace.
#[derive(Debug)]
pub struct OvsDaemons {
    vswitchd: Guarded,
    ovsdb: Guarded,
    run_dir: PathBuf,
    netns: String,
    /// Bridges created with [`OvsDaemons::add_bridge`], whose taps outlive vswitchd.
    bridges: Vec<String>,
}

impl OvsDaemons {
    /// Creates a database in `run_dir` (made 0750) and starts both daemons in `netns` on
    /// `dp_cpu`; returns once vswitchd has written its pid file.
    pub fn start(netns: &str, dp_cpu: usize, run_dir: &Path, stop: &AtomicBool) -> Result<Self> {
        fs::create_dir_all(run_dir).with_context(|| format!("create {}", run_dir.display()))?;
        fs::set_permissions(run_dir, fs::Permissions::from_mode(0o750))?;
        let db = run_dir.join("conf.db");
        let st = ovs_cmd(run_dir, "ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA)
            .status()
            .context("spawn ovsdb-tool")?;
        if !st.success() {
            bail!("ovsdb-tool create {}: {st}", db.display());
        }
        let d = run_dir.display();
        let mut ovsdb = spawn_daemon(
            netns,
            dp_cpu,
            run_dir,
            "ovsdb-server",
            &[
                db.display().to_string(),
                format!("--remote=punix:{d}/db.sock"),
                format!("--pidfile={d}/ovsdb-server.pid"),
                format!("--unixctl={d}/ovsdb-server.ctl"),
                format!("--log-file={d}/ovsdb-server.log"),
                "--no-chdir".to_string(),
            ],
        )?;
        let sock = run_dir.join("db.sock");
        wait_ready(
            stop,
            &mut ovsdb,
            &run_dir.join("ovsdb-server.out"),
            Duration::from_secs(20),
            || sock.exists(),
        )?;
        vsctl_in(run_dir, &["--no-wait", "init"])?;
        let mask = format!("other_config:pmd-cpu-mask={:#x}", 1u64 << dp_cpu);
        vsctl_in(run_dir, &["--no-wait", "set", "Open_vSwitch", ".", &mask])?;
        let mut vswitchd = spawn_daemon(
            netns,
            dp_cpu,
            run_dir,
            "ovs-vswitchd",
            &[
                format!("unix:{d}/db.sock"),
                format!("--pidfile={d}/ovs-vswitchd.pid"),
                format!("--unixctl={d}/ovs-vswitchd.ctl"),
                format!("--log-file={d}/ovs-vswitchd.log"),
                "--no-chdir".to_string(),
            ],
        )?;
        let pid = run_dir.join("ovs-vswitchd.pid");
        wait_ready(
            stop,
            &mut vswitchd,
            &run_dir.join("ovs-vswitchd.out"),
            Duration::from_secs(20),
            || pid.exists(),
        )?;
        Ok(OvsDaemons {
            vswitchd,
            ovsdb,
            run_dir: run_dir.to_path_buf(),
            netns: netns.to_string(),
            bridges: Vec::new(),
        })
    }

    pub fn is_alive(&mut self) -> bool {
        self.vswitchd.is_running() && self.ovsdb.is_running()
    }

    /// `ovs-vsctl --db=unix:<run>/db.sock --timeout=30 <args>`, returning stdout.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        vsctl_in(&self.run_dir, args)
    }

    /// `ovs-appctl` to vswitchd, failing on a non-zero exit.
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let out = self.appctl_output(args)?;
        if !out.status.success() {
            bail!(
                "ovs-appctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// `ovs-appctl` to vswitchd whose failure does not matter (statistics on the way out).
    fn appctl_lossy(&self, args: &[&str]) -> String {
        self.appctl_output(args)
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }

    fn appctl_output(&self, args: &[&str]) -> Result<std::process::Output> {
        ovs_cmd(&self.run_dir, "ovs-appctl")
            .arg("-t")
            .arg(self.run_dir.join("ovs-vswitchd.ctl"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("spawn ovs-appctl")
    }

    /// `ovs-ofctl -O OpenFlow15 <cmd> unix:<run>/<bridge>.mgmt [args]`.
    pub fn ofctl(&self, bridge: &str, args: &[&str]) -> Result<()> {
        let mgmt = format!("unix:{}/{bridge}.mgmt", self.run_dir.display());
        let (cmd, rest) = args.split_first().context("ofctl command")?;
        let out = ovs_cmd(&self.run_dir, "ovs-ofctl")
            .args(["-O", "OpenFlow15", cmd, &mgmt])
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .context("spawn ovs-ofctl")?;
        if !out.status.success() {
            bail!(
                "ovs-ofctl {cmd} {bridge}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Replaces `bridge`'s flows with the flow file at `flows`.
    pub fn load_flows(&self, bridge: &str, flows: &Path) -> Result<()> {
        self.ofctl(bridge, &["del-flows"])?;
        self.ofctl(bridge, &["add-flows", &flows.display().to_string()])
            .with_context(|| format!("load {} into ovs-vswitchd", flows.display()))
    }

    /// Whether this build lists the `afxdp` interface type. vswitchd fills `iface_types` on its
    /// first pass after connecting to the database, which can come after its pid file: an
    /// empty list is waited out (a loaded machine showed it), not taken for "no afxdp".
    pub fn has_afxdp(&self) -> Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let types = self.vsctl(&["get", "Open_vSwitch", ".", "iface_types"])?;
            let list = types.trim_matches(|c| c == '[' || c == ']').trim();
            if !list.is_empty() {
                return Ok(list.split(", ").any(|t| t == "afxdp"));
            }
            if Instant::now() > deadline {
                bail!("ovs-vswitchd listed no interface types in 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `add-br <name>` on the netdev datapath, `fail_mode=secure` (only the loaded flows
    /// forward), plus `settings` for the bridge row (e.g. `other_config:hwaddr=...`).
    pub fn add_bridge(&mut self, name: &str, settings: &[&str]) -> Result<()> {
        let mut args = vec![
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
            "fail_mode=secure",
        ];
        args.extend_from_slice(settings);
        self.bridges.push(name.to_string());
        self.vsctl(&args).map(drop)
    }

    /// Adds `dev` to `bridge` as OpenFlow port `ofport` with the interface `settings` (e.g.
    /// `type=afxdp`, `options:...`), then checks that OVS gave it that number and no error.
    pub fn add_port(&self, bridge: &str, dev: &str, ofport: u32, settings: &[&str]) -> Result<()> {
        let request = format!("ofport_request={ofport}");
        let mut args = vec![
            "add-port",
            bridge,
            dev,
            "--",
            "set",
            "interface",
            dev,
            &request,
        ];
        args.extend_from_slice(settings);
        self.vsctl(&args)?;
        let got = self.vsctl(&["get", "interface", dev, "ofport"])?;
        let error = self.vsctl(&["get", "interface", dev, "error"])?;
        if got != ofport.to_string() || !(error.is_empty() || error == "[]") {
            bail!(
                "ovs port {dev}: ofport {got}, error {error}\n{}",
                log_tail(&self.run_dir.join("ovs-vswitchd.log"), 10)
            );
        }
        Ok(())
    }

    /// Saves the PMD statistics and the datapath flows next to the logs, then stops vswitchd
    /// and ovsdb-server; returns what went wrong, if anything.
    pub fn stop(mut self) -> Result<String> {
        let stats = self.appctl_lossy(&["dpif-netdev/pmd-stats-show"]);
        let _ = fs::write(self.run_dir.join("pmd-stats.txt"), stats);
        let flows = self.appctl_lossy(&["dpctl/dump-flows", "-m"]);
        let _ = fs::write(self.run_dir.join("dp-flows.txt"), flows);
        let mut notes = Vec::new();
        for p in [&mut self.vswitchd, &mut self.ovsdb] {
            if let Some(st) = p.stop(Duration::from_secs(10))? {
                // SIGTERM ends both with a signal status: only an exit with a code is a failure.
                if st.code().is_some_and(|c| c != 0) {
                    notes.push(format!("{} exited with {st}", p.name()));
                }
            }
        }
        Ok(notes.join("; "))
    }
}

impl Drop for OvsDaemons {
    fn drop(&mut self) {
        // The processes must be gone before their tap devices are deleted.
        let _ = self.vswitchd.stop(Duration::from_secs(10));
        let _ = self.ovsdb.stop(Duration::from_secs(10));
        for br in &self.bridges {
            let _ = crate::topology::run(Command::new("ip").args([
                "-n",
                &self.netns,
                "link",
                "del",
                br,
            ]));
        }
    }
}

/// The `compare` peer: one bridge between the node ports.
#[derive(Debug)]
pub struct OvsGuard {
    daemons: OvsDaemons,
    /// `afxdp` or `system`.
    pub port_type: &'static str,
    /// Declared after `daemons`: the node ports' GRO goes off once OVS has stopped.
    _gro: Option<GroOn>,
}

/// The node ports' GRO, switched on for `system` ports; switched off again on drop.
#[derive(Debug)]
struct GroOn {
    node: String,
}

impl Drop for GroOn {
    fn drop(&mut self) {
        for (dev, _) in NODE_PORTS {
            let _ = crate::topology::run(Command::new("ip").args([
                "netns", "exec", &self.node, "ethtool", "-K", dev, "gro", "off",
            ]));
        }
    }
}

impl OvsGuard {
    pub fn is_alive(&mut self) -> bool {
        self.daemons.is_alive()
    }

    /// The userspace tracker's size and limit (`dpctl/ct-get-nconns`, `dpctl/ct-get-maxconns`:
    /// atomic counters in OVS, cheap while traffic runs, unlike `dpctl/dump-conntrack`).
    pub fn ct_snapshot(&self) -> Result<CtSnapshot> {
        let number = |cmd: &str| -> Result<u64> {
            let out = self.daemons.appctl(&[cmd])?;
            out.trim()
                .parse()
                .with_context(|| format!("ovs-appctl {cmd}: not a number: {out:?}"))
        };
        Ok(CtSnapshot {
            connections: number("dpctl/ct-get-nconns")?,
            max: number("dpctl/ct-get-maxconns")?,
            created: None,
            full: None,
        })
    }

    /// `dpctl/flush-conntrack`: every zone.
    pub fn ct_flush(&self) -> Result<()> {
        self.daemons.appctl(&["dpctl/flush-conntrack"]).map(drop)
    }

    /// Saves the PMD statistics next to the logs, then stops vswitchd and ovsdb-server.
    pub fn stop(self) -> Result<String> {
        let OvsGuard { daemons, _gro, .. } = self;
        let notes = daemons.stop();
        drop(_gro);
        notes
    }
}

fn ovs_cmd(run_dir: &Path, prog: &str) -> Command {
    let mut c = Command::new(prog);
    for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        c.env(var, run_dir);
    }
    c
}

fn vsctl_in(run_dir: &Path, args: &[&str]) -> Result<String> {
    let out = ovs_cmd(run_dir, "ovs-vsctl")
        .arg(format!("--db=unix:{}/db.sock", run_dir.display()))
        .arg("--timeout=30")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("spawn ovs-vsctl")?;
    if !out.status.success() {
        bail!(
            "ovs-vsctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Spawns an OVS daemon in the foreground in `netns` on `cpu`; `ip netns exec` and `taskset`
/// exec in place, so the guard holds the daemon's own PID.
fn spawn_daemon(
    netns: &str,
    cpu: usize,
    run_dir: &Path,
    prog: &str,
    args: &[String],
) -> Result<Guarded> {
    let log = run_dir.join(format!("{prog}.out"));
    let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = ovs_cmd(run_dir, "ip")
        .args(["netns", "exec", netns, "taskset", "-c"])
        .arg(cpu.to_string())
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {prog}"))?;
    Ok(Guarded::new(prog, child, Signal::SIGTERM))
}

/// The `afxdp` interface settings of a port: native XDP mode, one queue.
pub const AFXDP_PORT: [&str; 3] = ["type=afxdp", "options:xdp-mode=native", "options:n_rxq=1"];

pub fn start(env: &PeerEnv<'_>, run: usize) -> Result<Running> {
    let run_dir = env.work.join(format!("ovs-run-{run}"));
    let node = env.topo.node.name();
    let mut daemons = OvsDaemons::start(node, env.dp_cpu, &run_dir, env.stop)?;
    let afxdp = daemons.has_afxdp()?;
    let gro = if afxdp {
        None
    } else {
        // AF_PACKET ports attach no XDP program: the generator needs GRO on pa0 (see peers.rs).
        node_ports_gro(env.topo, true)?;
        Some(GroOn {
            node: node.to_string(),
        })
    };
    daemons.add_bridge(BRIDGE, &["other_config:mac-aging-time=3600"])?;
    for (i, (dev, _)) in NODE_PORTS.iter().enumerate() {
        let settings: &[&str] = if afxdp { &AFXDP_PORT } else { &[] };
        daemons.add_port(BRIDGE, dev, i as u32 + 1, settings)?;
    }
    let flows_file;
    let flows = match env.flows {
        Some(f) => f,
        None => {
            flows_file = run_dir.join("l2.flows");
            fs::write(&flows_file, Scenario::L2.flows())?;
            &flows_file
        }
    };
    daemons.load_flows(BRIDGE, flows)?;
    if let Some(n) = env.ct_max {
        // The same limit as xvsd's `[conntrack] max_connections`; per datapath, so it is set
        // once the netdev datapath exists (after add-br).
        daemons.appctl(&["dpctl/ct-set-maxconns", &n.to_string()])?;
    }
    let _ = daemons.appctl_lossy(&["dpif-netdev/pmd-stats-clear"]);
    Ok(Running::Ovs(OvsGuard {
        daemons,
        port_type: if afxdp { "afxdp" } else { "system" },
        _gro: gro,
    }))
}
