//! `xvs-bench tunnel` (also `xvs-bench compare --scenarios tunnel`): two nodes joined by an
//! underlay veth, a Pod on each, traffic from pod-a to pod-b across the tunnel. Peers, on the
//! same topology and in one run, repetitions interleaved:
//! - `xvsd-geneve`, `xvsd-vxlan`: one xvsd per node, both on the dataplane core;
//! - `ovs-geneve`: one `ovs-vswitchd` (netdev datapath) per node with its own ovsdb-server and
//!   run directory, both PMDs on the dataplane core, set up as OVS's userspace tunnelling wants
//!   it: an integration bridge `br-int` (Pod port, Geneve port with `remote_ip=flow`,
//!   `key=flow`, as Antrea's `antrea-tun0`) and an underlay bridge `br-phy` (the underlay port)
//!   whose internal port carries the node's underlay address, a route to the other node
//!   through it (`ovs/route/add`) and its MAC (`tnl/neigh/set`);
//! - `kernel-vxlan`: the Linux kernel's own `vxlan` devices bridged to the Pod ports (the
//!   nodes' receive processing steered to the dataplane core with RPS).
//!
//! xvsd and OVS load the same integration flows (set_field tun_dst and tun_id, output to the
//! tunnel; tunnel with the VNI to the Pod port), OVS with the real `ovs-ofctl`. Traffic: 64-byte
//! UDP over 1 or N flows from the live-frames XDP generator (forwarded Mpps counted at pod-b,
//! where an XDP sink drops them), and one iperf3 TCP connection (Gbit/s received). Output, as
//! `compare`'s: a table on stdout, `tunnel.md`, `tunnel.csv` (compare's columns), `tunnel.svg`
//! and `tunnel.png`.
//!
//! ```text
//! pod-a eth0 10.10.0.2 -- pa0 [node-a: xvsd | ovs br-int+br-phy | br0+vx0] ul0 192.168.77.1
//!                                                                   ||  underlay veth
//! pod-b eth0 10.10.0.3 -- pb0 [node-b: xvsd | ovs br-int+br-phy | br0+vx0] ul0 192.168.77.2
//! ```
//!
//! Pods have MTU 1450 (the tunnels take 50 bytes, as Antrea sets it). Namespaces are
//! `xvsb<pid>-{a,x,y,b}`, removed on exit.

use crate::bpf;
use crate::compare::{machine_info, Traffic, CSV_HEADER};
use crate::generator::{self, format_mac, GenSpec};
use crate::io_bench::{sleep_checked, WorkDir};
use crate::measure::{fmt_opt, median_of, ratio, summarize, CpuTimes, NetDev, Summary};
use crate::ovs::{OvsDaemons, AFXDP_PORT};
use crate::peers::{log_tail, Peer};
use crate::plot;
use crate::process::{Guarded, Reniced};
use crate::sys;
use crate::topology::{self, run, Netns, POD_A, POD_B};
use anyhow::{bail, Context, Result};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Command line of `xvs-bench tunnel`.
#[derive(Debug, clap::Args)]
pub struct TunnelArgs {
    /// Repetitions per peer and traffic kind.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Measured seconds per run (UDP window, iperf3 duration).
    #[arg(long, default_value_t = 3)]
    pub secs: u32,
    /// UDP warm-up and iperf3 omitted seconds.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Peers, in this order within a repetition: xvsd-geneve, xvsd-vxlan, ovs-geneve,
    /// kernel-vxlan.
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<TunnelPeer>>,
    /// Traffic kinds: udp<N> (64-byte UDP over N flows), tcp (iperf3, one connection).
    #[arg(long, value_delimiter = ',', default_value = "udp1,udp1000,tcp")]
    pub traffic: Vec<Traffic>,
    /// The dataplane core (both xvsd workers, both OVS PMDs, the kernel nodes' RPS).
    #[arg(long, default_value_t = 0)]
    pub dp_cpu: usize,
    /// Upper bound of the sleep an idle xvsd worker (`pmd_sleep_max_us`) and an idle OVS PMD
    /// (`other_config:pmd-maxsleep`) take, µs; 0: both poll without sleeping, their default.
    #[arg(long, default_value_t = 0)]
    pub pmd_sleep_us: u64,
    /// Generator, iperf3 and harness core.
    #[arg(long, default_value_t = 1)]
    pub gen_cpu: usize,
    /// The xvsd binary (default: next to xvs-bench, else target/release/xvsd).
    #[arg(long)]
    pub xvsd: Option<PathBuf>,
    /// Where `tunnel.md`, `tunnel.csv`, `tunnel.svg`, `tunnel.png` and the flow files go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Keep the configuration and logs in /tmp/xvsb<pid>.
    #[arg(long)]
    pub keep_logs: bool,
}

/// What one tunnel run does, from `xvs-bench tunnel` or from `compare`.
#[derive(Debug, Clone)]
pub struct TunnelPlan {
    pub reps: usize,
    pub secs: u32,
    pub warmup: u32,
    pub peers: Vec<TunnelPeer>,
    pub traffic: Vec<Traffic>,
    pub dp_cpu: usize,
    pub gen_cpu: usize,
    /// Idle sleep bound of xvsd's workers and OVS's PMDs, µs (0: poll).
    pub pmd_sleep_us: u64,
    pub xvsd: PathBuf,
    pub out: PathBuf,
    pub keep_logs: bool,
    /// Notes for the report from the caller (e.g. compare peers without a tunnel form).
    pub notes: Vec<String>,
}

/// One system under test on the two-node topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelPeer {
    XvsdGeneve,
    XvsdVxlan,
    OvsGeneve,
    KernelVxlan,
}

impl TunnelPeer {
    pub const ALL: [TunnelPeer; 4] = [
        TunnelPeer::XvsdGeneve,
        TunnelPeer::XvsdVxlan,
        TunnelPeer::OvsGeneve,
        TunnelPeer::KernelVxlan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TunnelPeer::XvsdGeneve => "xvsd-geneve",
            TunnelPeer::XvsdVxlan => "xvsd-vxlan",
            TunnelPeer::OvsGeneve => "ovs-geneve",
            TunnelPeer::KernelVxlan => "kernel-vxlan",
        }
    }

    /// The tunnel forms of a `compare` peer: xvsd runs both encapsulations, OVS Geneve (as
    /// Antrea), and the Linux bridge's counterpart is the kernel's vxlan device on a bridge.
    pub fn of_compare_peer(p: Peer) -> &'static [TunnelPeer] {
        match p {
            Peer::Xvsd => &[TunnelPeer::XvsdGeneve, TunnelPeer::XvsdVxlan],
            Peer::Ovs => &[TunnelPeer::OvsGeneve],
            Peer::Bridge => &[TunnelPeer::KernelVxlan],
            _ => &[],
        }
    }

    /// Rough seconds to start (both nodes), for the progress display.
    fn start_secs(self) -> f64 {
        match self {
            TunnelPeer::XvsdGeneve | TunnelPeer::XvsdVxlan => 1.5,
            TunnelPeer::OvsGeneve => 4.0,
            TunnelPeer::KernelVxlan => 0.5,
        }
    }
}

impl fmt::Display for TunnelPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for TunnelPeer {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        TunnelPeer::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown tunnel peer {s:?} (xvsd-geneve, xvsd-vxlan, ovs-geneve, kernel-vxlan)"
                )
            })
    }
}

/// One measured run.
#[derive(Debug, Clone)]
struct Row {
    peer: TunnelPeer,
    traffic: Traffic,
    rep: usize,
    /// Mpps forwarded at pod-b (UDP) or Gbit/s received (TCP); 0 when `failed`.
    value: f64,
    offered_mpps: Option<f64>,
    dp_busy: Option<f64>,
    /// The dataplane core's user / system / softirq %.
    dp_split: Option<[f64; 3]>,
    gen_busy: Option<f64>,
    note: String,
    failed: bool,
}

const UNDERLAY: [&str; 2] = ["192.168.77.1", "192.168.77.2"];
const UNDERLAY_MAC: [&str; 2] = ["02:0a:0a:77:00:01", "02:0a:0a:77:00:02"];
const VNI: u32 = 42;

/// The four namespaces; dropping this deletes them.
struct Nodes {
    pod_a: Netns,
    node_a: Netns,
    node_b: Netns,
    pod_b: Netns,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for ns in [&self.pod_a, &self.node_a, &self.node_b, &self.pod_b] {
            if let Err(e) = run(Command::new("ip").args(["netns", "del", ns.name()])) {
                eprintln!("xvs-bench: cleanup: {e:#}");
            }
        }
    }
}

const OFFLOADS_OFF: &[&str] = &[
    "tx", "off", "tso", "off", "gso", "off", "sg", "off", "txvlan", "off", "rxvlan", "off",
];

impl Nodes {
    fn build(tag: &str) -> Result<Self> {
        let n = Nodes {
            pod_a: Netns::create(&format!("{tag}-a"))?,
            node_a: Netns::create(&format!("{tag}-x"))?,
            node_b: Netns::create(&format!("{tag}-y"))?,
            pod_b: Netns::create(&format!("{tag}-b"))?,
        };
        for ns in [&n.pod_a, &n.node_a, &n.node_b, &n.pod_b] {
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            ns.ip(&["link", "set", "lo", "up"])?;
        }
        let veth = |a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str, b_mac: &str| {
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
                "address",
                b_mac,
                "netns",
                b.name(),
            ])
        };
        veth(
            &n.pod_a,
            "eth0",
            &format_mac(&POD_A.mac),
            &n.node_a,
            "pa0",
            "02:0a:0a:00:aa:02",
        )?;
        veth(
            &n.pod_b,
            "eth0",
            &format_mac(&POD_B.mac),
            &n.node_b,
            "pb0",
            "02:0a:0a:00:bb:03",
        )?;
        veth(
            &n.node_a,
            "ul0",
            UNDERLAY_MAC[0],
            &n.node_b,
            "ul0",
            UNDERLAY_MAC[1],
        )?;
        for (ns, me, peer) in [(&n.pod_a, &POD_A, &POD_B), (&n.pod_b, &POD_B, &POD_A)] {
            ns.ip(&["addr", "add", &format!("{}/24", me.ip), "dev", "eth0"])?;
            ns.ip(&["link", "set", "eth0", "mtu", "1450"])?;
            ns.ip(&[
                "neigh",
                "add",
                &peer.ip.to_string(),
                "lladdr",
                &format_mac(&peer.mac),
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
            ns.ip(&["link", "set", "eth0", "up"])?;
        }
        for (i, ns) in [&n.node_a, &n.node_b].into_iter().enumerate() {
            ns.ip(&["addr", "add", &format!("{}/24", UNDERLAY[i]), "dev", "ul0"])?;
            ns.ip(&[
                "neigh",
                "add",
                UNDERLAY[1 - i],
                "lladdr",
                UNDERLAY_MAC[1 - i],
                "dev",
                "ul0",
                "nud",
                "permanent",
            ])?;
            let pod_port = if i == 0 { "pa0" } else { "pb0" };
            for dev in ["ul0", pod_port] {
                ns.ip(&["link", "set", dev, "up"])?;
                let mut args = vec!["-K", dev];
                args.extend_from_slice(OFFLOADS_OFF);
                args.extend_from_slice(&["gro", "off"]);
                ns.exec("ethtool", &args)?;
            }
        }
        // As in topology.rs: the pods' GRO toggled so that veth accepts XDP-redirected frames.
        for ns in [&n.pod_a, &n.pod_b] {
            let mut args = vec!["-K", "eth0"];
            args.extend_from_slice(OFFLOADS_OFF);
            args.extend_from_slice(&["gro", "off"]);
            ns.exec("ethtool", &args)?;
            ns.exec("ethtool", &["-K", "eth0", "gro", "on"])?;
        }
        Ok(n)
    }

    fn node(&self, i: usize) -> &Netns {
        if i == 0 {
            &self.node_a
        } else {
            &self.node_b
        }
    }
}

fn pod_port(i: usize) -> &'static str {
    if i == 0 {
        "pa0"
    } else {
        "pb0"
    }
}

/// A running peer; dropping it stops it and undoes its setup.
enum Running {
    Xvsd(Vec<Guarded>),
    Ovs(Vec<OvsNode>),
    Kernel(KernelGuard),
}

impl Running {
    fn is_alive(&mut self) -> bool {
        match self {
            Running::Xvsd(procs) => procs.iter_mut().all(Guarded::is_running),
            Running::Ovs(nodes) => nodes.iter_mut().all(|n| n.daemons.is_alive()),
            Running::Kernel(_) => true,
        }
    }
}

struct KernelGuard {
    nodes: [String; 2],
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        for (i, ns) in self.nodes.iter().enumerate() {
            for dev in ["br0", "vx0"] {
                let _ = run(Command::new("ip").args(["-n", ns, "link", "del", dev]));
            }
            for dev in [pod_port(i), "ul0"] {
                let _ = run(Command::new("ip")
                    .args(["netns", "exec", ns, "ethtool", "-K", dev, "gro", "off"]));
            }
        }
    }
}

fn xvsd_config(
    run_dir: &Path,
    flows: &Path,
    i: usize,
    kind: &str,
    dp_cpu: usize,
    sleep_us: u64,
) -> String {
    format!(
        "bridge = \"br-bench\"\nrun_dir = \"{}\"\nworkers = [{dp_cpu}]\nforwarding = \"openflow\"\n\
         pmd_sleep_max_us = {sleep_us}\n\
         flows = \"{}\"\n\n[[port]]\nname = \"{}\"\ntype = \"afxdp\"\nofport = 1\nxdp_mode = \"native\"\n\n\
         [[port]]\nname = \"ul0\"\ntype = \"afxdp\"\nofport = 2\nuplink = true\nxdp_mode = \"native\"\n\n\
         [[port]]\nname = \"tun0\"\ntype = \"{kind}\"\nofport = 100\n",
        run_dir.display(),
        flows.display(),
        pod_port(i),
    )
}

fn start_xvsd(
    nodes: &Nodes,
    xvsd: &Path,
    work: &Path,
    kind: &str,
    dp_cpu: usize,
    sleep_us: u64,
    run_no: usize,
) -> Result<Running> {
    // Both nodes start at once, then both are waited for (start-up is mostly program loads).
    let mut procs = Vec::new();
    let mut waits = Vec::new();
    for i in 0..2 {
        let dir = work.join(format!("xvsd-{run_no}-{i}"));
        fs::create_dir_all(&dir)?;
        let flows = dir.join("tunnel.flows");
        fs::write(&flows, integration_flows(i))?;
        let run_dir = dir.join("run");
        let cfg = dir.join("xvsd.toml");
        fs::write(
            &cfg,
            xvsd_config(&run_dir, &flows, i, kind, dp_cpu, sleep_us),
        )?;
        let log = dir.join("xvsd.log");
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new("ip")
            .args(["netns", "exec", nodes.node(i).name(), "taskset", "-c"])
            .arg(dp_cpu.to_string())
            .arg(xvsd)
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawn xvsd")?;
        procs.push(Guarded::new(format!("xvsd-{i}"), child, Signal::SIGTERM));
        waits.push((run_dir.join("xvsd.pid"), log));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (g, (pid_file, log)) in procs.iter_mut().zip(&waits) {
        while !pid_file.exists() {
            if let Some(st) = g.try_status()? {
                bail!(
                    "{} exited during start-up ({st}):\n{}",
                    g.name(),
                    log_tail(log, 15)
                );
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 30 s:\n{}", g.name(), log_tail(log, 15));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(Running::Xvsd(procs))
}

fn start_kernel(nodes: &Nodes, dp_cpu: usize) -> Result<Running> {
    let guard = KernelGuard {
        nodes: [
            nodes.node_a.name().to_string(),
            nodes.node_b.name().to_string(),
        ],
    };
    let mask = format!("{:x}", 1u64 << dp_cpu);
    for i in 0..2 {
        let ns = nodes.node(i);
        for key in ["iptables", "ip6tables", "arptables"] {
            let _ = ns.sysctl(&format!("net.bridge.bridge-nf-call-{key}"), "0");
        }
        ns.ip(&[
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            &VNI.to_string(),
            "remote",
            UNDERLAY[1 - i],
            "local",
            UNDERLAY[i],
            "dstport",
            "4789",
            "dev",
            "ul0",
            "nolearning",
        ])?;
        ns.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "ageing_time",
            "360000",
        ])?;
        for dev in [pod_port(i), "vx0"] {
            ns.ip(&["link", "set", dev, "master", "br0"])?;
        }
        for dev in ["vx0", "br0"] {
            ns.ip(&["link", "set", dev, "up"])?;
        }
        // The Pods' MACs: local port, or the tunnel.
        let (local, remote) = if i == 0 {
            (&POD_A, &POD_B)
        } else {
            (&POD_B, &POD_A)
        };
        for (mac, dev) in [(local.mac, pod_port(i)), (remote.mac, "vx0")] {
            run(Command::new("bridge").args([
                "-n",
                ns.name(),
                "fdb",
                "replace",
                &format_mac(&mac),
                "dev",
                dev,
                "master",
                "static",
            ]))?;
        }
        for dev in [pod_port(i), "ul0"] {
            let path = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
            run(Command::new("ip").args([
                "netns",
                "exec",
                ns.name(),
                "sh",
                "-c",
                &format!("echo {mask} > {path}"),
            ]))?;
            // veth accepts the generator's redirected frames only with XDP or GRO on the peer.
            ns.exec("ethtool", &["-K", dev, "gro", "on"])?;
        }
    }
    Ok(Running::Kernel(guard))
}

/// OVS on one node. Fields drop in order: the daemons stop (and their taps go), then the
/// underlay address returns to `ul0`.
struct OvsNode {
    daemons: OvsDaemons,
    _underlay: UnderlayOnBridge,
}

/// While OVS runs, the node's underlay address sits on `br-phy`'s internal port, where OVS's
/// tunnel code looks for it (routes, the source address, the decap match on the destination);
/// on drop it returns to `ul0` with the static neighbour the other peers use, and any XDP
/// program OVS left on the node's ports is detached.
struct UnderlayOnBridge {
    netns: String,
    node: usize,
}

impl UnderlayOnBridge {
    fn move_to_bridge(ns: &Netns, node: usize) -> Result<Self> {
        let addr = format!("{}/24", UNDERLAY[node]);
        ns.ip(&["addr", "del", &addr, "dev", "ul0"])?;
        let guard = UnderlayOnBridge {
            netns: ns.name().to_string(),
            node,
        };
        ns.ip(&["addr", "add", &addr, "dev", OVS_UNDERLAY_BRIDGE])?;
        ns.ip(&["link", "set", OVS_UNDERLAY_BRIDGE, "up"])?;
        Ok(guard)
    }
}

impl Drop for UnderlayOnBridge {
    fn drop(&mut self) {
        let i = self.node;
        let ns = self.netns.as_str();
        let addr = format!("{}/24", UNDERLAY[i]);
        for args in [
            vec!["-n", ns, "addr", "add", &addr, "dev", "ul0"],
            vec![
                "-n",
                ns,
                "neigh",
                "replace",
                UNDERLAY[1 - i],
                "lladdr",
                UNDERLAY_MAC[1 - i],
                "dev",
                "ul0",
                "nud",
                "permanent",
            ],
            vec!["-n", ns, "link", "set", "dev", "ul0", "xdp", "off"],
            vec!["-n", ns, "link", "set", "dev", pod_port(i), "xdp", "off"],
            vec![
                "netns",
                "exec",
                ns,
                "ethtool",
                "-K",
                pod_port(i),
                "gro",
                "off",
            ],
        ] {
            if let Err(e) = run(Command::new("ip").args(&args)) {
                eprintln!("xvs-bench: restoring node {i} after ovs: {e:#}");
            }
        }
    }
}

/// OVS's bridges on each node.
const OVS_INTEGRATION_BRIDGE: &str = "br-int";
const OVS_UNDERLAY_BRIDGE: &str = "br-phy";

/// The underlay bridge: everything from the wire to the internal port, where OVS pops the
/// tunnel header of packets for the node's address; everything from the internal port (the
/// pushed tunnel packets, ARP) to the wire.
const OVS_UNDERLAY_FLOWS: &str = "table=0,priority=10,in_port=1,actions=LOCAL\n\
                                  table=0,priority=10,in_port=LOCAL,actions=output:1\n";

/// Starts OVS on both nodes (at once, on two threads: start-up is mostly waiting for the
/// daemons); returns it and the Pod/underlay port type (`afxdp` or `system`).
fn start_ovs(
    nodes: &Nodes,
    work: &Path,
    dp_cpu: usize,
    sleep_us: u64,
    run_no: usize,
    stop: &AtomicBool,
) -> Result<(Running, &'static str)> {
    let results: Vec<Result<(OvsNode, bool)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                scope.spawn(move || {
                    start_ovs_node(nodes.node(i), i, work, dp_cpu, sleep_us, run_no, stop)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("ovs start-up thread panicked")))
            })
            .collect()
    });
    let mut started = Vec::new();
    let mut port_type = "afxdp";
    for r in results {
        let (node, afxdp) = r?;
        if !afxdp {
            port_type = "system";
        }
        started.push(node);
    }
    Ok((Running::Ovs(started), port_type))
}

/// OVS on node `i`: daemons, bridges, ports, flows, route and neighbour, checked with
/// `ofproto/trace`. Returns it and whether its ports are `afxdp`.
fn start_ovs_node(
    ns: &Netns,
    i: usize,
    work: &Path,
    dp_cpu: usize,
    sleep_us: u64,
    run_no: usize,
    stop: &AtomicBool,
) -> Result<(OvsNode, bool)> {
    let dir = work.join(format!("ovs-{run_no}-{i}"));
    let mut d = OvsDaemons::start(ns.name(), dp_cpu, &dir.join("run"), stop)?;
    if sleep_us > 0 {
        let max = format!("other_config:pmd-maxsleep={sleep_us}");
        d.vsctl(&["set", "Open_vSwitch", ".", &max])?;
    }
    let afxdp = d.has_afxdp()?;
    let settings: &[&str] = if afxdp { &AFXDP_PORT } else { &[] };
    d.add_bridge(OVS_INTEGRATION_BRIDGE, &[])?;
    // The internal port's MAC is the node's underlay MAC: the other node's tunnel header
    // carries it (tnl/neigh/set below), and OVS pops only packets sent to it.
    let hwaddr = format!("other_config:hwaddr={}", UNDERLAY_MAC[i]);
    d.add_bridge(OVS_UNDERLAY_BRIDGE, &[&hwaddr])?;
    d.add_port(OVS_UNDERLAY_BRIDGE, "ul0", 1, settings)?;
    d.add_port(OVS_INTEGRATION_BRIDGE, pod_port(i), 1, settings)?;
    d.add_port(
        OVS_INTEGRATION_BRIDGE,
        "tun0",
        100,
        &["type=geneve", "options:remote_ip=flow", "options:key=flow"],
    )?;
    if !afxdp {
        // AF_PACKET ports attach no XDP program: the generator's redirect into pod-a's
        // veth needs GRO on its peer (off again when the underlay address returns).
        ns.exec("ethtool", &["-K", pod_port(i), "gro", "on"])?;
    }
    let underlay = UnderlayOnBridge::move_to_bridge(ns, i)?;
    let phy_flows = dir.join("br-phy.flows");
    fs::write(&phy_flows, OVS_UNDERLAY_FLOWS)?;
    d.load_flows(OVS_UNDERLAY_BRIDGE, &phy_flows)?;
    let int_flows = dir.join("br-int.flows");
    fs::write(&int_flows, integration_flows(i))?;
    d.load_flows(OVS_INTEGRATION_BRIDGE, &int_flows)?;
    let peer = UNDERLAY[1 - i];
    d.appctl(&["ovs/route/add", &format!("{peer}/32"), OVS_UNDERLAY_BRIDGE])?;
    d.appctl(&[
        "tnl/neigh/set",
        OVS_UNDERLAY_BRIDGE,
        peer,
        UNDERLAY_MAC[1 - i],
    ])?;
    // The Pod's traffic must translate to one tnl_push out of the underlay port; a missing
    // route or neighbour would show here as a drop, not later as a zero.
    let (me, other) = if i == 0 {
        (&POD_A, &POD_B)
    } else {
        (&POD_B, &POD_A)
    };
    let probe = format!(
        "in_port=1,udp,dl_src={},dl_dst={},nw_src={},nw_dst={},nw_ttl=64,udp_src=1024,udp_dst=9",
        format_mac(&me.mac),
        format_mac(&other.mac),
        me.ip,
        other.ip
    );
    let trace = d.appctl(&["ofproto/trace", OVS_INTEGRATION_BRIDGE, &probe])?;
    let actions = trace
        .lines()
        .find(|l| l.starts_with("Datapath actions:"))
        .unwrap_or("");
    if !actions.contains("tnl_push") {
        bail!("ovs on node {i} does not encapsulate the Pod's traffic:\n{trace}");
    }
    let _ = d.appctl(&["dpif-netdev/pmd-stats-clear"]);
    Ok((
        OvsNode {
            daemons: d,
            _underlay: underlay,
        },
        afxdp,
    ))
}

/// The integration flows of node `i`, the same text in xvsd and OVS: the Pod's traffic to the
/// tunnel (VNI 42 to the other node), the tunnel's traffic with VNI 42 to the Pod.
fn integration_flows(i: usize) -> String {
    format!(
        "table=0,priority=10,in_port=1,actions=set_field:{}->tun_dst,set_field:{VNI}->tun_id,output:100\n\
         table=0,priority=10,in_port=100,tun_id={VNI},actions=output:1\n",
        UNDERLAY[1 - i]
    )
}

fn stop_peer(r: Running) -> Result<String> {
    let mut notes = Vec::new();
    match r {
        Running::Xvsd(mut procs) => {
            for p in &mut procs {
                if let Some(st) = p.stop(Duration::from_secs(10))? {
                    if !st.success() {
                        notes.push(format!("{} exited with {st}", p.name()));
                    }
                }
            }
        }
        Running::Ovs(nodes) => {
            for OvsNode { daemons, _underlay } in nodes {
                let n = daemons.stop()?;
                drop(_underlay);
                if !n.is_empty() {
                    notes.push(n);
                }
            }
        }
        Running::Kernel(g) => drop(g),
    }
    Ok(notes.join("; "))
}

/// What one traffic run measured.
struct Measured {
    value: f64,
    offered_mpps: Option<f64>,
    cpu0: CpuTimes,
    cpu1: CpuTimes,
}

fn measure_udp(
    p: &TunnelPlan,
    nodes: &Nodes,
    work: &Path,
    stop_flag: &AtomicBool,
    run_no: usize,
    flows: u32,
    devs: &mut [NetDev; 2],
) -> Result<Measured> {
    let log = work.join(format!("gen-{run_no}.log"));
    let spec = GenSpec {
        netns: nodes.pod_a.name(),
        src: &POD_A,
        dst: &POD_B,
        cpu: p.gen_cpu,
        flows,
        new_conns: false,
        secs: p.warmup + p.secs + 3,
    };
    let [dev_a, dev_b] = devs;
    let offered = |c: &crate::measure::IfCounters| c.tx_packets + c.tx_dropped;
    let (_, before) = dev_a.read("eth0")?;
    let mut gen = generator::spawn(&spec, &log)?;
    // The warm-up starts once frames leave pod-a: on a loaded machine the generator can take
    // seconds to load its program, which would otherwise eat the window.
    let deadline = Instant::now() + Duration::from_secs(10);
    while offered(&dev_a.read("eth0")?.1) == offered(&before) {
        if !gen.is_running() {
            bail!("generator ended before sending:\n{}", log_tail(&log, 10));
        }
        if Instant::now() > deadline {
            bail!("generator sent nothing in 10 s:\n{}", log_tail(&log, 10));
        }
        sleep_checked(stop_flag, Duration::from_millis(20))?;
    }
    sleep_checked(stop_flag, Duration::from_secs(u64::from(p.warmup)))?;
    if !gen.is_running() {
        bail!("generator ended during warm-up:\n{}", log_tail(&log, 10));
    }
    let (ta0, a0) = dev_a.read("eth0")?;
    let (tb0, b0) = dev_b.read("eth0")?;
    let cpu0 = CpuTimes::read()?;
    sleep_checked(stop_flag, Duration::from_secs(u64::from(p.secs)))?;
    let (ta1, a1) = dev_a.read("eth0")?;
    let (tb1, b1) = dev_b.read("eth0")?;
    let cpu1 = CpuTimes::read()?;
    let gen_ok = gen.is_running();
    gen.stop(Duration::from_secs(3))?;
    if !gen_ok {
        bail!("generator ended during the window:\n{}", log_tail(&log, 10));
    }
    let rate =
        |d: u64, t0: Instant, t1: Instant| d as f64 / t1.duration_since(t0).as_secs_f64() / 1e6;
    Ok(Measured {
        value: rate(b1.rx_packets.saturating_sub(b0.rx_packets), tb0, tb1),
        offered_mpps: Some(rate(offered(&a1).saturating_sub(offered(&a0)), ta0, ta1)),
        cpu0,
        cpu1,
    })
}

fn iperf(ns: &str, cpu: usize, args: &[&str], log: &Path) -> Result<Guarded> {
    let out = fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "taskset", "-c"])
        .arg(cpu.to_string())
        .arg("iperf3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("spawn iperf3")?;
    Ok(Guarded::new("iperf3", child, Signal::SIGINT))
}

fn measure_tcp(
    p: &TunnelPlan,
    nodes: &Nodes,
    work: &Path,
    stop_flag: &AtomicBool,
    run_no: usize,
) -> Result<Measured> {
    let srv_log = work.join(format!("iperf3-s-{run_no}.log"));
    let cli_log = work.join(format!("iperf3-c-{run_no}.json"));
    let b_ip = POD_B.ip.to_string();
    let _server = iperf(
        nodes.pod_b.name(),
        p.gen_cpu,
        &["-s", "-1", "-B", &b_ip, "-p", "5201"],
        &srv_log,
    )?;
    sleep_checked(stop_flag, Duration::from_millis(300))?;
    let cpu0 = CpuTimes::read()?;
    let (t, o) = (p.secs.to_string(), p.warmup.to_string());
    let mut client = iperf(
        nodes.pod_a.name(),
        p.gen_cpu,
        &[
            "-c",
            &b_ip,
            "-p",
            "5201",
            "-t",
            &t,
            "-O",
            &o,
            "--connect-timeout",
            "3000",
            "-J",
        ],
        &cli_log,
    )?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(p.warmup + p.secs) + 15);
    let st = loop {
        if let Some(st) = client.try_status()? {
            break st;
        }
        if Instant::now() > deadline {
            bail!("iperf3 client did not finish in time");
        }
        sleep_checked(stop_flag, Duration::from_millis(50))?;
    };
    let cpu1 = CpuTimes::read()?;
    let text = fs::read_to_string(&cli_log).unwrap_or_default();
    if !st.success() {
        bail!("iperf3 client failed ({st}): {}", log_tail(&cli_log, 5));
    }
    let bps = crate::compare::iperf_received_bps(&text).context("no sum_received")?;
    Ok(Measured {
        value: bps / 1e9,
        offered_mpps: None,
        cpu0,
        cpu1,
    })
}

/// Runs the tunnel comparison; see the module documentation.
pub fn run_tunnel(a: &TunnelArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (namespaces, XDP and BPF_PROG_TEST_RUN need it)");
    }
    let stop_flag = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop_flag)).context("signal handler")?;
    }
    // As compare: the harness and the kernel's softirq threads ahead of other work.
    if let Err(e) = sys::set_nice(0, -20) {
        eprintln!("xvs-bench: warning: nice -20 failed: {e}");
    }
    let _softirq_nice = Reniced::threads("ksoftirqd/", -20);
    let plan = TunnelPlan {
        reps: a.reps,
        secs: a.secs,
        warmup: a.warmup,
        peers: a.peers.clone().unwrap_or_else(|| TunnelPeer::ALL.to_vec()),
        traffic: a.traffic.clone(),
        dp_cpu: a.dp_cpu,
        gen_cpu: a.gen_cpu,
        pmd_sleep_us: a.pmd_sleep_us,
        xvsd: crate::compare::xvsd_path(a.xvsd.as_deref()),
        out: a.out.clone(),
        keep_logs: a.keep_logs,
        notes: Vec::new(),
    };
    run_plan(&plan, &stop_flag)
}

/// Rough seconds of one peer start with all traffic kinds, for the progress display.
fn expected_secs(p: &TunnelPlan, peer: TunnelPeer) -> f64 {
    let runs: f64 = p
        .traffic
        .iter()
        .map(|t| {
            f64::from(p.warmup + p.secs)
                + match t {
                    Traffic::Tcp => 1.5,
                    _ => 0.5,
                }
        })
        .sum();
    peer.start_secs() + 0.5 + runs
}

fn fmt_dur(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Runs `p` (the caller has registered `stop_flag` for SIGINT/SIGTERM) and writes its report.
pub fn run_plan(p: &TunnelPlan, stop_flag: &AtomicBool) -> Result<()> {
    if p.reps == 0 || p.secs == 0 || p.dp_cpu == p.gen_cpu {
        bail!("--reps and --secs must be positive, --dp-cpu and --gen-cpu different");
    }
    if p.peers.is_empty() {
        bail!("no tunnel peer to run");
    }
    let mut notes = p.notes.clone();
    let traffic: Vec<Traffic> = p
        .traffic
        .iter()
        .copied()
        .filter(|t| {
            let ok = matches!(t, Traffic::Udp(_) | Traffic::Tcp);
            if !ok {
                notes.push(format!("traffic {t} has no tunnel form: not run"));
            }
            ok
        })
        .collect();
    if traffic.is_empty() {
        bail!("no tunnel traffic to run (udp<N>, tcp)");
    }
    let p = &TunnelPlan {
        traffic,
        ..p.clone()
    };
    let mut cpus = CpuSet::new();
    cpus.set(p.gen_cpu).context("--gen-cpu")?;
    sched_setaffinity(Pid::from_raw(0), &cpus).context("pin the harness")?;
    fs::create_dir_all(&p.out).with_context(|| format!("create {}", p.out.display()))?;
    let out = p.out.canonicalize()?;
    let tag = format!("{}{}", topology::PREFIX, std::process::id());
    let work = WorkDir {
        path: std::env::temp_dir().join(&tag),
        keep: p.keep_logs,
    };
    fs::create_dir_all(&work.path)?;
    // The integration flows both OpenFlow switches load, kept with the results.
    let flows_dir = out.join("flows");
    fs::create_dir_all(&flows_dir)?;
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        fs::write(
            flows_dir.join(format!("tunnel-node-{name}.flows")),
            integration_flows(i),
        )?;
    }
    fs::write(
        flows_dir.join("tunnel-ovs-br-phy.flows"),
        OVS_UNDERLAY_FLOWS,
    )?;
    let mut info = machine_info(p.dp_cpu, p.gen_cpu, &p.xvsd);
    info.push((
        "idle sleep".to_string(),
        if p.pmd_sleep_us == 0 {
            "none: xvsd workers and OVS PMDs poll (both defaults), two per core".to_string()
        } else {
            format!(
                "up to {} µs (xvsd pmd_sleep_max_us, OVS pmd-maxsleep)",
                p.pmd_sleep_us
            )
        },
    ));
    eprintln!("xvs-bench: building namespaces {tag}-a, {tag}-x, {tag}-y, {tag}-b");
    let nodes = Nodes::build(&tag)?;
    let mut devs = [NetDev::open(&nodes.pod_a)?, NetDev::open(&nodes.pod_b)?];
    let t0 = Instant::now();
    let total = p.reps * p.peers.len() * p.traffic.len();
    let mut rows: Vec<Row> = Vec::new();
    // Every port type OVS ran on (one unless a start found no afxdp).
    let mut ovs_ports: Vec<&'static str> = Vec::new();
    let mut run_no = 0;
    let mut m = 0;
    let slots: Vec<(usize, TunnelPeer)> = (1..=p.reps)
        .flat_map(|rep| p.peers.iter().map(move |&peer| (rep, peer)))
        .collect();
    for (k, &(rep, peer)) in slots.iter().enumerate() {
        run_no += 1;
        let remaining: f64 = slots[k..].iter().map(|&(_, q)| expected_secs(p, q)).sum();
        let expected_end = t0.elapsed().as_secs_f64() + remaining;
        eprintln!(
            "[{} elapsed / {} expected]  starting {peer} (tunnel)",
            fmt_dur(t0.elapsed().as_secs_f64()),
            fmt_dur(expected_end),
        );
        let mut port_note: Option<String> = None;
        let started = match peer {
            TunnelPeer::XvsdGeneve => start_xvsd(
                &nodes,
                &p.xvsd,
                &work.path,
                "geneve",
                p.dp_cpu,
                p.pmd_sleep_us,
                run_no,
            ),
            TunnelPeer::XvsdVxlan => start_xvsd(
                &nodes,
                &p.xvsd,
                &work.path,
                "vxlan",
                p.dp_cpu,
                p.pmd_sleep_us,
                run_no,
            ),
            TunnelPeer::OvsGeneve => start_ovs(
                &nodes,
                &work.path,
                p.dp_cpu,
                p.pmd_sleep_us,
                run_no,
                stop_flag,
            )
            .map(|(r, ports)| {
                if !ovs_ports.contains(&ports) {
                    eprintln!("xvs-bench: ovs runs on {ports} ports");
                    ovs_ports.push(ports);
                }
                if ports != "afxdp" {
                    port_note = Some(format!("ovs on {ports} ports"));
                }
                r
            }),
            TunnelPeer::KernelVxlan => start_kernel(&nodes, p.dp_cpu),
        };
        let mut running = match started {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("      -> {peer} FAILED to start: {msg}");
                for &traffic in &p.traffic {
                    rows.push(failed_row(peer, traffic, rep, &msg));
                }
                m += p.traffic.len();
                // Relaxed: the flag carries no data, it is only polled.
                if stop_flag.load(Ordering::Relaxed) {
                    bail!("interrupted; cleaning up");
                }
                continue;
            }
        };
        // Let the peers settle (xvsd's underlay read, first megaflows).
        sleep_checked(stop_flag, Duration::from_millis(500))?;
        let mut slot_rows = Vec::new();
        for &traffic in &p.traffic {
            m += 1;
            eprintln!(
                "[{m:>3}/{total}  {} elapsed / {} expected]  {peer} tunnel {traffic} rep {rep}/{}",
                fmt_dur(t0.elapsed().as_secs_f64()),
                fmt_dur(expected_end),
                p.reps
            );
            let res = match traffic {
                Traffic::Udp(flows) => {
                    let sink = nodes
                        .pod_b
                        .enter(|| bpf::attach_sink(&["eth0"]))
                        .context("attach the sink to pod-b")?;
                    let r = measure_udp(p, &nodes, &work.path, stop_flag, run_no, flows, &mut devs);
                    drop(sink);
                    r
                }
                _ => measure_tcp(p, &nodes, &work.path, stop_flag, run_no),
            };
            // Relaxed: the flag carries no data, it is only polled.
            if stop_flag.load(Ordering::Relaxed) {
                drop(running);
                bail!("interrupted; cleaning up");
            }
            let alive = running.is_alive();
            match res {
                Ok(ms) => {
                    let mut note = Vec::new();
                    if !alive {
                        note.push("peer died".to_string());
                    }
                    if ms.offered_mpps.is_some_and(|o| o < 0.001) {
                        note.push("no offered load".to_string());
                    }
                    note.extend(port_note.clone());
                    eprintln!(
                        "      -> {:.3} {}{}",
                        ms.value,
                        traffic.unit(),
                        ms.offered_mpps
                            .map(|o| format!(", offered {o:.3} Mpps"))
                            .unwrap_or_default()
                    );
                    slot_rows.push(Row {
                        peer,
                        traffic,
                        rep,
                        value: ms.value,
                        offered_mpps: ms.offered_mpps,
                        dp_busy: ms.cpu0.busy_pct(&ms.cpu1, p.dp_cpu),
                        dp_split: ms.cpu0.split_pct(&ms.cpu1, p.dp_cpu),
                        gen_busy: ms.cpu0.busy_pct(&ms.cpu1, p.gen_cpu),
                        note: note.join("; "),
                        failed: false,
                    });
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    eprintln!("      -> FAILED: {msg}");
                    slot_rows.push(failed_row(peer, traffic, rep, &msg));
                }
            }
        }
        let stop_note = stop_peer(running).unwrap_or_else(|e| format!("stop: {e:#}"));
        if !stop_note.is_empty() {
            eprintln!("xvs-bench: {peer}: {stop_note}");
            for r in &mut slot_rows {
                if !r.note.is_empty() {
                    r.note.push_str("; ");
                }
                r.note.push_str(&stop_note);
            }
        }
        rows.extend(slot_rows);
    }
    drop(nodes);
    if !ovs_ports.is_empty() {
        let t = ovs_ports.join("` and `");
        let why = if ovs_ports == ["afxdp"] {
            "this build lists the afxdp interface type"
        } else {
            "this build has no afxdp interface type"
        };
        notes.push(format!(
            "ovs-geneve ran on `{t}` Pod and underlay ports ({why}); Geneve port on br-int \
             (remote_ip=flow, key=flow), underlay address on br-phy's internal port, \
             ovs/route/add and tnl/neigh/set to the other node"
        ));
    }
    info.push((
        "load average at end".to_string(),
        fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    ));
    info.push(("wall time".to_string(), fmt_dur(t0.elapsed().as_secs_f64())));
    print!("{}", table(p, &rows));
    fs::write(out.join("tunnel.csv"), csv_text(&rows))?;
    let md = out.join("tunnel.md");
    fs::write(&md, markdown(p, &rows, &info, &notes))?;
    let chart = chart(p, &rows);
    plot::write_svg(&out.join("tunnel.svg"), &chart)?;
    plot::write_png(&out.join("tunnel.png"), &chart)?;
    eprintln!(
        "xvs-bench: wrote {}, tunnel.csv, tunnel.svg, tunnel.png in {}",
        md.display(),
        out.display()
    );
    Ok(())
}

fn failed_row(peer: TunnelPeer, traffic: Traffic, rep: usize, msg: &str) -> Row {
    Row {
        peer,
        traffic,
        rep,
        value: 0.0,
        offered_mpps: None,
        dp_busy: None,
        dp_split: None,
        gen_busy: None,
        note: msg.replace('\n', " "),
        failed: true,
    }
}

/// Rows of one cell that produced a figure.
fn cell(rows: &[Row], peer: TunnelPeer, traffic: Traffic) -> Vec<&Row> {
    rows.iter()
        .filter(|r| !r.failed && r.peer == peer && r.traffic == traffic)
        .collect()
}

fn summary(rows: &[Row], peer: TunnelPeer, traffic: Traffic) -> Option<Summary> {
    summarize(
        &cell(rows, peer, traffic)
            .iter()
            .map(|r| r.value)
            .collect::<Vec<_>>(),
    )
}

/// One line of the table: a peer and traffic kind over its repetitions.
struct Line {
    peer: TunnelPeer,
    traffic: Traffic,
    runs: usize,
    failed: usize,
    sum: Option<Summary>,
    offered: Option<f64>,
    dp_busy: Option<f64>,
    dp_split: [Option<f64>; 3],
    gen_busy: Option<f64>,
    vs_kernel: Option<f64>,
}

fn lines(p: &TunnelPlan, rows: &[Row]) -> Vec<Line> {
    let mut out = Vec::new();
    for &t in &p.traffic {
        let kernel = summary(rows, TunnelPeer::KernelVxlan, t).map(|s| s.median);
        for &peer in &p.peers {
            let c = cell(rows, peer, t);
            let sum = summary(rows, peer, t);
            out.push(Line {
                peer,
                traffic: t,
                runs: c.len(),
                failed: rows
                    .iter()
                    .filter(|r| r.failed && r.peer == peer && r.traffic == t)
                    .count(),
                sum,
                offered: median_of(c.iter().filter_map(|r| r.offered_mpps)),
                dp_busy: median_of(c.iter().filter_map(|r| r.dp_busy)),
                dp_split: [0, 1, 2]
                    .map(|i| median_of(c.iter().filter_map(|r| r.dp_split.map(|s| s[i])))),
                gen_busy: median_of(c.iter().filter_map(|r| r.gen_busy)),
                vs_kernel: ratio(sum.map(|s| s.median), kernel),
            });
        }
    }
    out
}

/// xvsd-geneve's median over ovs-geneve's, per traffic kind.
fn geneve_ratios(p: &TunnelPlan, rows: &[Row]) -> Vec<(Traffic, Option<f64>)> {
    if !(p.peers.contains(&TunnelPeer::XvsdGeneve) && p.peers.contains(&TunnelPeer::OvsGeneve)) {
        return Vec::new();
    }
    p.traffic
        .iter()
        .map(|&t| {
            let x = summary(rows, TunnelPeer::XvsdGeneve, t).map(|s| s.median);
            let o = summary(rows, TunnelPeer::OvsGeneve, t).map(|s| s.median);
            (t, ratio(x, o))
        })
        .collect()
}

fn table(p: &TunnelPlan, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nxvs-bench tunnel: {} x {} s per cell; UDP: Mpps forwarded at pod-b, TCP: Gbit/s received; ratio to kernel-vxlan",
        p.reps, p.secs
    );
    let _ = writeln!(
        out,
        "{:<8} {:<8} {:<13} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>5}  notes",
        "scenario",
        "traffic",
        "peer",
        "runs",
        "min",
        "median",
        "max",
        "offered",
        "vs kern",
        "dp%",
        "gen%"
    );
    for l in lines(p, rows) {
        let _ = writeln!(
            out,
            "{:<8} {:<8} {:<13} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>5}  {}",
            "tunnel",
            l.traffic.to_string(),
            l.peer.name(),
            l.runs,
            fmt_opt(l.sum.map(|s| s.min), 3),
            fmt_opt(l.sum.map(|s| s.median), 3),
            fmt_opt(l.sum.map(|s| s.max), 3),
            fmt_opt(l.offered, 3),
            fmt_opt(l.vs_kernel, 3),
            fmt_opt(l.dp_busy, 0),
            fmt_opt(l.gen_busy, 0),
            if l.failed > 0 {
                format!("{} failed", l.failed)
            } else {
                String::new()
            }
        );
    }
    let r = geneve_ratios(p, rows);
    if !r.is_empty() {
        let _ = writeln!(out, "\nxvsd-geneve / ovs-geneve (medians):");
        for (t, v) in r {
            let _ = writeln!(out, "  {:<8} {}", t.to_string(), fmt_opt(v, 3));
        }
    }
    out
}

/// The CSV, in `compare`'s columns (scenario `tunnel`; no delivered / conntrack figures).
fn csv_text(rows: &[Row]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in rows {
        let _ = writeln!(
            out,
            "tunnel,{},{},{},{:.4},{},{},{},{},{},{},{},-,-,{},\"{}\"",
            r.traffic,
            r.peer,
            r.rep,
            r.value,
            r.traffic.unit(),
            fmt_opt(r.offered_mpps, 4),
            fmt_opt(r.dp_busy, 1),
            fmt_opt(r.dp_split.map(|s| s[0]), 1),
            fmt_opt(r.dp_split.map(|s| s[1]), 1),
            fmt_opt(r.dp_split.map(|s| s[2]), 1),
            fmt_opt(r.gen_busy, 1),
            if r.failed { "failed" } else { "ok" },
            r.note.replace('"', "'")
        );
    }
    out
}

fn markdown(p: &TunnelPlan, rows: &[Row], info: &[(String, String)], notes: &[String]) -> String {
    let mut out = String::from("# xvs-bench tunnel\n\n");
    let argv: Vec<String> = std::env::args().collect();
    let _ = writeln!(out, "Command: `{}`\n", argv.join(" "));
    let _ = writeln!(
        out,
        "Two nodes over a tunnel, pod-a -> pod-b. {} repetition(s) of {} s per cell (warm-up {} s), \
         interleaved across peers. UDP: 64-byte frames from the live-frames XDP generator, Mpps \
         forwarded at pod-b; TCP: one iperf3 connection, Gbit/s received. \"vs kernel-vxlan\" is \
         the peer's median over kernel-vxlan's for the same traffic.\n",
        p.reps, p.secs, p.warmup
    );
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in info {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out.push_str(
        "\n| scenario | traffic | peer | runs | min | **median** | max | unit | offered Mpps | vs kernel-vxlan | dp cpu % (usr/sys/sirq) | gen cpu % | notes |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for l in lines(p, rows) {
        let _ = writeln!(
            out,
            "| tunnel | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} ({}/{}/{}) | {} | {} |",
            l.traffic,
            l.peer,
            l.runs,
            fmt_opt(l.sum.map(|s| s.min), 3),
            fmt_opt(l.sum.map(|s| s.median), 3),
            fmt_opt(l.sum.map(|s| s.max), 3),
            l.traffic.unit(),
            fmt_opt(l.offered, 3),
            fmt_opt(l.vs_kernel, 3),
            fmt_opt(l.dp_busy, 0),
            fmt_opt(l.dp_split[0], 0),
            fmt_opt(l.dp_split[1], 0),
            fmt_opt(l.dp_split[2], 0),
            fmt_opt(l.gen_busy, 0),
            if l.failed > 0 {
                format!("{} failed", l.failed)
            } else {
                String::new()
            }
        );
    }
    let r = geneve_ratios(p, rows);
    if !r.is_empty() {
        out.push_str("\n| traffic | xvsd-geneve / ovs-geneve |\n|---|---|\n");
        for (t, v) in r {
            let _ = writeln!(out, "| {t} | {} |", fmt_opt(v, 3));
        }
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.note.is_empty()).collect();
    if !notes.is_empty() || !failed.is_empty() {
        out.push('\n');
    }
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }
    for r in failed {
        let _ = writeln!(
            out,
            "- {} {} rep {}: {}",
            r.peer,
            r.traffic,
            r.rep,
            r.note.replace('|', "/")
        );
    }
    out.push_str("\n![Mpps per peer over the tunnel](tunnel.svg)\n");
    out
}

/// One group per UDP traffic kind, one bar per peer (TCP is in the table).
fn chart(p: &TunnelPlan, rows: &[Row]) -> plot::Chart {
    let mut groups = Vec::new();
    for &t in &p.traffic {
        if !matches!(t, Traffic::Udp(_)) {
            continue;
        }
        let bars: Vec<plot::Bar> = p
            .peers
            .iter()
            .filter_map(|&peer| {
                summary(rows, peer, t).map(|s| plot::Bar {
                    series: peer.name().to_string(),
                    min: s.min,
                    median: s.median,
                    max: s.max,
                })
            })
            .collect();
        if !bars.is_empty() {
            groups.push(plot::Group {
                name: format!("tunnel {t}"),
                bars,
            });
        }
    }
    plot::Chart {
        title: format!(
            "64-byte UDP pod-a -> pod-b over the tunnel, Mpps (bar: median, whiskers: min-max of {} x {} s)",
            p.reps, p.secs
        ),
        y_label: "Mpps".to_string(),
        series: p.peers.iter().map(|q| q.name().to_string()).collect(),
        groups,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(peer: TunnelPeer, traffic: Traffic, rep: usize, value: f64) -> Row {
        Row {
            peer,
            traffic,
            rep,
            value,
            offered_mpps: Some(2.0),
            dp_busy: Some(100.0),
            dp_split: Some([10.0, 20.0, 70.0]),
            gen_busy: Some(90.0),
            note: String::new(),
            failed: false,
        }
    }

    fn plan() -> TunnelPlan {
        TunnelPlan {
            reps: 3,
            secs: 3,
            warmup: 1,
            peers: TunnelPeer::ALL.to_vec(),
            traffic: vec![Traffic::Udp(1), Traffic::Tcp],
            dp_cpu: 0,
            gen_cpu: 1,
            pmd_sleep_us: 0,
            xvsd: PathBuf::from("xvsd"),
            out: PathBuf::from("out"),
            keep_logs: false,
            notes: Vec::new(),
        }
    }

    #[test]
    fn peer_names_round_trip() {
        for p in TunnelPeer::ALL {
            assert_eq!(p.name().parse::<TunnelPeer>().unwrap(), p);
        }
        assert!("ovs".parse::<TunnelPeer>().is_err());
        assert_eq!(
            TunnelPeer::of_compare_peer(Peer::Xvsd),
            &[TunnelPeer::XvsdGeneve, TunnelPeer::XvsdVxlan]
        );
        assert!(TunnelPeer::of_compare_peer(Peer::Testpmd).is_empty());
    }

    #[test]
    fn report_has_medians_ratios_and_failures() {
        let p = plan();
        let mut rows = Vec::new();
        for rep in 1..=3 {
            let r = rep as f64;
            rows.push(row(
                TunnelPeer::XvsdGeneve,
                Traffic::Udp(1),
                rep,
                0.5 + 0.1 * r,
            ));
            rows.push(row(
                TunnelPeer::OvsGeneve,
                Traffic::Udp(1),
                rep,
                0.3 + 0.1 * r,
            ));
            rows.push(row(TunnelPeer::KernelVxlan, Traffic::Udp(1), rep, 0.2 * r));
            rows.push(row(TunnelPeer::XvsdGeneve, Traffic::Tcp, rep, 2.0));
        }
        rows.push(failed_row(
            TunnelPeer::OvsGeneve,
            Traffic::Tcp,
            1,
            "iperf3\nfailed",
        ));
        // Medians: xvsd 0.7, ovs 0.5, kernel 0.4.
        let r = geneve_ratios(&p, &rows);
        assert_eq!(r.len(), 2);
        assert!((r[0].1.unwrap() - 1.4).abs() < 1e-9, "{r:?}");
        assert_eq!(r[1].1, None, "no ovs tcp figure, no ratio");
        let md = markdown(&p, &rows, &[], &[]);
        assert!(
            md.contains("| tunnel | udp1 | xvsd-geneve | 3 | 0.600 | **0.700** | 0.800 | Mpps |"),
            "{md}"
        );
        assert!(
            md.contains("| 1.750 |"),
            "xvsd-geneve vs kernel-vxlan: {md}"
        );
        assert!(md.contains("| udp1 | 1.400 |"), "{md}");
        assert!(md.contains("- ovs-geneve tcp rep 1: iperf3 failed"), "{md}");
        let csv = csv_text(&rows);
        let mut it = csv.lines();
        let header = it.next().unwrap();
        assert_eq!(header, CSV_HEADER);
        let n = header.split(',').count();
        for l in it {
            assert_eq!(l.split(',').count(), n, "{l}");
        }
        assert!(
            csv.contains("tunnel,tcp,ovs-geneve,1,0.0000,Gbit/s,-,"),
            "{csv}"
        );
        assert!(csv.contains(",failed,\"iperf3 failed\""), "{csv}");
        let c = chart(&p, &rows);
        assert_eq!(c.groups.len(), 1);
        assert_eq!(c.groups[0].bars.len(), 3);
    }

    #[test]
    fn both_switches_get_the_same_flows_towards_the_other_node() {
        let a = integration_flows(0);
        assert!(a.contains("set_field:192.168.77.2->tun_dst,set_field:42->tun_id,output:100"));
        assert!(a.contains("in_port=100,tun_id=42,actions=output:1"));
        assert!(integration_flows(1).contains("192.168.77.1->tun_dst"));
    }
}
