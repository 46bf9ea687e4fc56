//! The Open vSwitch peer: Debian's `ovsdb-server` and `ovs-vswitchd` with the userspace datapath
//! (`datapath_type=netdev`), started by the harness in the node namespace with a private run
//! directory (database, sockets, pid and log files all inside it), and stopped by PID.
//!
//! Ports are `afxdp` (native XDP mode, one queue) when the build lists that interface type, as
//! Debian 12's 3.1 does; otherwise `system` ports (AF_PACKET), and the harness says so. The
//! scenario's flow file is loaded with the real `ovs-ofctl -O OpenFlow15 add-flows`.

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
use std::time::Duration;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const BRIDGE: &str = "ovsbr0";

/// A running OVS: vswitchd is declared first so that it is stopped before its database.
#[derive(Debug)]
pub struct OvsGuard {
    vswitchd: Guarded,
    ovsdb: Guarded,
    /// `afxdp` or `system`.
    pub port_type: &'static str,
    run_dir: PathBuf,
    /// The node ports' GRO was switched on for `system` ports and must go off again.
    gro: Option<String>,
    /// The node namespace, where the bridge's internal port (a persistent tap) stays behind.
    node: String,
}

impl OvsGuard {
    pub fn is_alive(&mut self) -> bool {
        self.vswitchd.is_running() && self.ovsdb.is_running()
    }

    /// The userspace tracker's size and limit (`dpctl/ct-get-nconns`, `dpctl/ct-get-maxconns`:
    /// atomic counters in OVS, cheap while traffic runs, unlike `dpctl/dump-conntrack`).
    pub fn ct_snapshot(&self) -> Result<CtSnapshot> {
        let number = |cmd: &str| -> Result<u64> {
            let out = appctl_checked(&self.run_dir, &[cmd])?;
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
        appctl_checked(&self.run_dir, &["dpctl/flush-conntrack"]).map(drop)
    }

    /// Saves the PMD statistics next to the logs, then stops vswitchd and ovsdb-server.
    pub fn stop(mut self) -> Result<String> {
        let stats = appctl(&self.run_dir, &["dpif-netdev/pmd-stats-show"]).unwrap_or_default();
        let _ = fs::write(self.run_dir.join("pmd-stats.txt"), stats);
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

impl Drop for OvsGuard {
    fn drop(&mut self) {
        // The processes must be gone before their tap device is deleted.
        let _ = self.vswitchd.stop(Duration::from_secs(10));
        let _ = self.ovsdb.stop(Duration::from_secs(10));
        let _ = crate::topology::run(
            Command::new("ip").args(["-n", &self.node, "link", "del", BRIDGE]),
        );
        if let Some(node) = &self.gro {
            for (dev, _) in NODE_PORTS {
                let _ = crate::topology::run(
                    Command::new("ip")
                        .args(["netns", "exec", node, "ethtool", "-K", dev, "gro", "off"]),
                );
            }
        }
    }
}

fn ovs_cmd(run_dir: &Path, prog: &str) -> Command {
    let mut c = Command::new(prog);
    for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        c.env(var, run_dir);
    }
    c
}

/// `ovs-vsctl --db=unix:<run>/db.sock --timeout=30 <args>`, returning stdout.
fn vsctl(run_dir: &Path, args: &[&str]) -> Result<String> {
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

fn appctl(run_dir: &Path, args: &[&str]) -> Result<String> {
    let out = ovs_cmd(run_dir, "ovs-appctl")
        .arg("-t")
        .arg(run_dir.join("ovs-vswitchd.ctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("spawn ovs-appctl")?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// `ovs-appctl` to vswitchd, failing on a non-zero exit.
fn appctl_checked(run_dir: &Path, args: &[&str]) -> Result<String> {
    let out = ovs_cmd(run_dir, "ovs-appctl")
        .arg("-t")
        .arg(run_dir.join("ovs-vswitchd.ctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("spawn ovs-appctl")?;
    if !out.status.success() {
        bail!(
            "ovs-appctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// `ovs-ofctl -O OpenFlow15 <cmd> unix:<run>/ovsbr0.mgmt [file]`.
fn ofctl(run_dir: &Path, args: &[&str]) -> Result<()> {
    let mgmt = format!("unix:{}/{BRIDGE}.mgmt", run_dir.display());
    let (cmd, rest) = args.split_first().context("ofctl command")?;
    let out = ovs_cmd(run_dir, "ovs-ofctl")
        .args(["-O", "OpenFlow15", cmd, &mgmt])
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .context("spawn ovs-ofctl")?;
    if !out.status.success() {
        bail!(
            "ovs-ofctl {cmd}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Spawns an OVS daemon in the foreground in the node namespace on the dataplane core.
fn spawn_daemon(env: &PeerEnv<'_>, run_dir: &Path, prog: &str, args: &[String]) -> Result<Guarded> {
    let log = run_dir.join(format!("{prog}.out"));
    let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = ovs_cmd(run_dir, "ip")
        .args(["netns", "exec", env.topo.node.name(), "taskset", "-c"])
        .arg(env.dp_cpu.to_string())
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {prog}"))?;
    Ok(Guarded::new(prog, child, Signal::SIGTERM))
}

pub fn start(env: &PeerEnv<'_>, run: usize) -> Result<Running> {
    let run_dir = env.work.join(format!("ovs-run-{run}"));
    fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o750))?;
    let db = run_dir.join("conf.db");
    let st = ovs_cmd(&run_dir, "ovsdb-tool")
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
        env,
        &run_dir,
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
        env,
        &mut ovsdb,
        &run_dir.join("ovsdb-server.out"),
        Duration::from_secs(20),
        || sock.exists(),
    )?;
    vsctl(&run_dir, &["--no-wait", "init"])?;
    let mask = format!("other_config:pmd-cpu-mask={:#x}", 1u64 << env.dp_cpu);
    vsctl(&run_dir, &["--no-wait", "set", "Open_vSwitch", ".", &mask])?;
    let mut vswitchd = spawn_daemon(
        env,
        &run_dir,
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
        env,
        &mut vswitchd,
        &run_dir.join("ovs-vswitchd.out"),
        Duration::from_secs(20),
        || pid.exists(),
    )?;
    let types = vsctl(&run_dir, &["get", "Open_vSwitch", ".", "iface_types"])?;
    let afxdp = types
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .any(|t| t == "afxdp");
    let mut guard = OvsGuard {
        vswitchd,
        ovsdb,
        port_type: if afxdp { "afxdp" } else { "system" },
        run_dir: run_dir.clone(),
        gro: None,
        node: env.topo.node.name().to_string(),
    };
    if !afxdp {
        // AF_PACKET ports attach no XDP program: the generator needs GRO on pa0 (see peers.rs).
        node_ports_gro(env.topo, true)?;
        guard.gro = Some(env.topo.node.name().to_string());
    }
    vsctl(
        &run_dir,
        &[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "fail_mode=secure",
            "other_config:mac-aging-time=3600",
        ],
    )?;
    for (i, (dev, _)) in NODE_PORTS.iter().enumerate() {
        let ofport = format!("ofport_request={}", i + 1);
        let mut args = vec![
            "add-port",
            BRIDGE,
            dev,
            "--",
            "set",
            "interface",
            dev,
            &ofport,
        ];
        if afxdp {
            args.extend(["type=afxdp", "options:xdp-mode=native", "options:n_rxq=1"]);
        }
        vsctl(&run_dir, &args)?;
    }
    for (i, (dev, _)) in NODE_PORTS.iter().enumerate() {
        let ofport = vsctl(&run_dir, &["get", "interface", dev, "ofport"])?;
        let error = vsctl(&run_dir, &["get", "interface", dev, "error"])?;
        if ofport != (i + 1).to_string() || !(error.is_empty() || error == "[]") {
            bail!(
                "ovs port {dev}: ofport {ofport}, error {error}\n{}",
                log_tail(&run_dir.join("ovs-vswitchd.log"), 10)
            );
        }
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
    ofctl(&run_dir, &["del-flows"])?;
    ofctl(&run_dir, &["add-flows", &flows.display().to_string()])
        .with_context(|| format!("load {} into ovs-vswitchd", flows.display()))?;
    if let Some(n) = env.ct_max {
        // The same limit as xvsd's `[conntrack] max_connections`; per datapath, so it is set
        // once the netdev datapath exists (after add-br).
        appctl_checked(&run_dir, &["dpctl/ct-set-maxconns", &n.to_string()])?;
    }
    let _ = appctl(&run_dir, &["dpif-netdev/pmd-stats-clear"]);
    Ok(Running::Ovs(guard))
}
