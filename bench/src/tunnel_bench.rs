//! `xvs-bench tunnel`: two nodes joined by an underlay veth, a Pod on each, traffic from
//! pod-a to pod-b across the tunnel. Peers, on the same topology and in one run, repetitions
//! interleaved: xvsd over Geneve, xvsd over VXLAN (one xvsd per node, both on the dataplane
//! core), and the Linux kernel's own `vxlan` devices bridged to the Pod ports (the nodes'
//! receive processing steered to the dataplane core with RPS). Traffic: 64-byte UDP from the
//! live-frames XDP generator (forwarded Mpps counted at pod-b, where an XDP sink drops them),
//! and one iperf3 TCP connection (Gbit/s received).
//!
//! ```text
//! pod-a eth0 10.10.0.2 -- pa0 [node-a: xvsd | br0+vx0] ul0 192.168.77.1
//!                                                       ||  underlay veth
//! pod-b eth0 10.10.0.3 -- pb0 [node-b: xvsd | br0+vx0] ul0 192.168.77.2
//! ```
//!
//! Pods have MTU 1450 (the tunnels take 50 bytes, as Antrea sets it). Namespaces are
//! `xvsb<pid>-{a,x,y,b}`, removed on exit.

use crate::bpf;
use crate::generator::{self, format_mac, GenSpec};
use crate::io_bench::{sleep_checked, WorkDir};
use crate::measure::{summarize, CpuTimes, NetDev};
use crate::peers::log_tail;
use crate::process::Guarded;
use crate::topology::{self, run, Netns, POD_A, POD_B};
use anyhow::{bail, Context, Result};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
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
    /// The dataplane core (both xvsd workers, the kernel nodes' RPS).
    #[arg(long, default_value_t = 0)]
    pub dp_cpu: usize,
    /// Generator, iperf3 and harness core.
    #[arg(long, default_value_t = 1)]
    pub gen_cpu: usize,
    /// The xvsd binary (default: next to xvs-bench, else target/release/xvsd).
    #[arg(long)]
    pub xvsd: Option<PathBuf>,
    /// Where `tunnel.md` and `tunnel.csv` go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Keep the configuration and logs in /tmp/xvsb<pid>.
    #[arg(long)]
    pub keep_logs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    XvsdGeneve,
    XvsdVxlan,
    KernelVxlan,
}

impl Peer {
    const ALL: [Peer; 3] = [Peer::XvsdGeneve, Peer::XvsdVxlan, Peer::KernelVxlan];

    fn name(self) -> &'static str {
        match self {
            Peer::XvsdGeneve => "xvsd-geneve",
            Peer::XvsdVxlan => "xvsd-vxlan",
            Peer::KernelVxlan => "kernel-vxlan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    Udp,
    Tcp,
}

impl Traffic {
    fn name(self) -> &'static str {
        match self {
            Traffic::Udp => "udp1",
            Traffic::Tcp => "tcp",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Traffic::Udp => "Mpps",
            Traffic::Tcp => "Gbit/s",
        }
    }
}

struct Row {
    peer: Peer,
    traffic: Traffic,
    rep: usize,
    value: f64,
    offered_mpps: Option<f64>,
    dp_busy: Option<f64>,
    note: String,
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
    Kernel(KernelGuard),
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

fn xvsd_config(run_dir: &Path, flows: &Path, i: usize, kind: &str, dp_cpu: usize) -> String {
    format!(
        "bridge = \"br-bench\"\nrun_dir = \"{}\"\nworkers = [{dp_cpu}]\nforwarding = \"openflow\"\n\
         flows = \"{}\"\n\n[[port]]\nname = \"{}\"\ntype = \"afxdp\"\nofport = 1\nxdp_mode = \"native\"\n\n\
         [[port]]\nname = \"ul0\"\ntype = \"afxdp\"\nofport = 2\nuplink = true\nxdp_mode = \"native\"\n\n\
         [[port]]\nname = \"tun0\"\ntype = \"{kind}\"\nofport = 100\n",
        run_dir.display(),
        flows.display(),
        pod_port(i),
    )
}

/// Pod traffic to the tunnel (VNI 42 to the other node), tunnel traffic to the Pod.
fn xvsd_flows(i: usize) -> String {
    format!(
        "table=0,priority=10,in_port=1,actions=set_field:{}->tun_dst,set_field:{VNI}->tun_id,output:100\n\
         table=0,priority=10,in_port=100,tun_id={VNI},actions=output:1\n",
        UNDERLAY[1 - i]
    )
}

fn start_xvsd(
    nodes: &Nodes,
    xvsd: &Path,
    work: &Path,
    kind: &str,
    dp_cpu: usize,
    run_no: usize,
) -> Result<Running> {
    let mut procs = Vec::new();
    for i in 0..2 {
        let dir = work.join(format!("xvsd-{run_no}-{i}"));
        fs::create_dir_all(&dir)?;
        let flows = dir.join("tunnel.flows");
        fs::write(&flows, xvsd_flows(i))?;
        let run_dir = dir.join("run");
        let cfg = dir.join("xvsd.toml");
        fs::write(&cfg, xvsd_config(&run_dir, &flows, i, kind, dp_cpu))?;
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
        let mut g = Guarded::new(format!("xvsd-{i}"), child, Signal::SIGTERM);
        let pid_file = run_dir.join("xvsd.pid");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pid_file.exists() {
            if let Some(st) = g.try_status()? {
                bail!(
                    "xvsd exited during start-up ({st}):\n{}",
                    log_tail(&log, 15)
                );
            }
            if Instant::now() > deadline {
                bail!("xvsd not ready after 30 s:\n{}", log_tail(&log, 15));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        procs.push(g);
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

fn stop(r: Running) -> Result<()> {
    match r {
        Running::Xvsd(mut procs) => {
            for p in &mut procs {
                p.stop(Duration::from_secs(10))?;
            }
        }
        Running::Kernel(g) => drop(g),
    }
    Ok(())
}

fn measure_udp(
    a: &TunnelArgs,
    nodes: &Nodes,
    work: &Path,
    stop_flag: &AtomicBool,
    run_no: usize,
    devs: &mut [NetDev; 2],
) -> Result<(f64, f64, Option<f64>)> {
    let log = work.join(format!("gen-{run_no}.log"));
    let spec = GenSpec {
        netns: nodes.pod_a.name(),
        src: &POD_A,
        dst: &POD_B,
        cpu: a.gen_cpu,
        flows: 1,
        new_conns: false,
        secs: a.warmup + a.secs + 3,
    };
    let mut gen = generator::spawn(&spec, &log)?;
    sleep_checked(stop_flag, Duration::from_secs(u64::from(a.warmup)))?;
    if !gen.is_running() {
        bail!("generator ended during warm-up:\n{}", log_tail(&log, 10));
    }
    let [dev_a, dev_b] = devs;
    let (ta0, a0) = dev_a.read("eth0")?;
    let (tb0, b0) = dev_b.read("eth0")?;
    let cpu0 = CpuTimes::read()?;
    sleep_checked(stop_flag, Duration::from_secs(u64::from(a.secs)))?;
    let (ta1, a1) = dev_a.read("eth0")?;
    let (tb1, b1) = dev_b.read("eth0")?;
    let cpu1 = CpuTimes::read()?;
    gen.stop(Duration::from_secs(3))?;
    let rate =
        |d: u64, t0: Instant, t1: Instant| d as f64 / t1.duration_since(t0).as_secs_f64() / 1e6;
    let offered = |c: &crate::measure::IfCounters| c.tx_packets + c.tx_dropped;
    Ok((
        rate(b1.rx_packets.saturating_sub(b0.rx_packets), tb0, tb1),
        rate(offered(&a1).saturating_sub(offered(&a0)), ta0, ta1),
        cpu0.busy_pct(&cpu1, a.dp_cpu),
    ))
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
    a: &TunnelArgs,
    nodes: &Nodes,
    work: &Path,
    stop_flag: &AtomicBool,
    run_no: usize,
) -> Result<(f64, Option<f64>)> {
    let srv_log = work.join(format!("iperf3-s-{run_no}.log"));
    let cli_log = work.join(format!("iperf3-c-{run_no}.json"));
    let b_ip = POD_B.ip.to_string();
    let _server = iperf(
        nodes.pod_b.name(),
        a.gen_cpu,
        &["-s", "-1", "-B", &b_ip, "-p", "5201"],
        &srv_log,
    )?;
    sleep_checked(stop_flag, Duration::from_millis(300))?;
    let cpu0 = CpuTimes::read()?;
    let (t, o) = (a.secs.to_string(), a.warmup.to_string());
    let mut client = iperf(
        nodes.pod_a.name(),
        a.gen_cpu,
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
    let deadline = Instant::now() + Duration::from_secs(u64::from(a.warmup + a.secs) + 15);
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
    Ok((bps / 1e9, cpu0.busy_pct(&cpu1, a.dp_cpu)))
}

fn xvsd_path(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    if let Ok(exe) = std::env::current_exe() {
        let sib = exe.with_file_name("xvsd");
        if sib.exists() {
            return sib;
        }
    }
    PathBuf::from("target/release/xvsd")
}

/// Runs the tunnel comparison; see the module documentation.
pub fn run_tunnel(a: &TunnelArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (namespaces, XDP and BPF_PROG_TEST_RUN need it)");
    }
    if a.reps == 0 || a.secs == 0 || a.dp_cpu == a.gen_cpu {
        bail!("--reps and --secs must be positive, --dp-cpu and --gen-cpu different");
    }
    let xvsd = xvsd_path(a.xvsd.as_deref());
    let stop_flag = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop_flag)).context("signal handler")?;
    }
    let mut cpus = CpuSet::new();
    cpus.set(a.gen_cpu).context("--gen-cpu")?;
    sched_setaffinity(Pid::from_raw(0), &cpus).context("pin the harness")?;
    fs::create_dir_all(&a.out)?;
    let tag = format!("{}{}", topology::PREFIX, std::process::id());
    let work = WorkDir {
        path: std::env::temp_dir().join(&tag),
        keep: a.keep_logs,
    };
    fs::create_dir_all(&work.path)?;
    let load_start = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("xvs-bench: building namespaces {tag}-{{a,x,y,b}}");
    let nodes = Nodes::build(&tag)?;
    let mut devs = [NetDev::open(&nodes.pod_a)?, NetDev::open(&nodes.pod_b)?];
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut run_no = 0;
    for rep in 1..=a.reps {
        for peer in Peer::ALL {
            run_no += 1;
            eprintln!(
                "xvs-bench: [{:>4.0} s] {} rep {rep}/{}",
                t0.elapsed().as_secs_f64(),
                peer.name(),
                a.reps
            );
            let running = match peer {
                Peer::XvsdGeneve => {
                    start_xvsd(&nodes, &xvsd, &work.path, "geneve", a.dp_cpu, run_no)
                }
                Peer::XvsdVxlan => start_xvsd(&nodes, &xvsd, &work.path, "vxlan", a.dp_cpu, run_no),
                Peer::KernelVxlan => start_kernel(&nodes, a.dp_cpu),
            };
            let running = match running {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("xvs-bench: {} failed to start: {e:#}", peer.name());
                    continue;
                }
            };
            // Let the peers settle (xvsd's underlay read, first megaflows).
            sleep_checked(&stop_flag, Duration::from_millis(500))?;
            for traffic in [Traffic::Udp, Traffic::Tcp] {
                let res = match traffic {
                    Traffic::Udp => {
                        let sink = nodes
                            .pod_b
                            .enter(|| bpf::attach_sink(&["eth0"]))
                            .context("attach the sink to pod-b")?;
                        let r = measure_udp(a, &nodes, &work.path, &stop_flag, run_no, &mut devs)
                            .map(|(v, off, cpu)| (v, Some(off), cpu));
                        drop(sink);
                        r
                    }
                    Traffic::Tcp => measure_tcp(a, &nodes, &work.path, &stop_flag, run_no)
                        .map(|(v, cpu)| (v, None, cpu)),
                };
                match res {
                    Ok((value, offered_mpps, dp_busy)) => rows.push(Row {
                        peer,
                        traffic,
                        rep,
                        value,
                        offered_mpps,
                        dp_busy,
                        note: String::new(),
                    }),
                    Err(e) => {
                        eprintln!(
                            "xvs-bench: {} {} failed: {e:#}",
                            peer.name(),
                            traffic.name()
                        );
                        rows.push(Row {
                            peer,
                            traffic,
                            rep,
                            value: f64::NAN,
                            offered_mpps: None,
                            dp_busy: None,
                            note: format!("{e:#}").replace('\n', " "),
                        });
                    }
                }
            }
            stop(running)?;
        }
    }
    let load_end = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let report = report(a, &rows, load_start.trim(), load_end.trim(), &xvsd);
    println!("{report}");
    fs::write(a.out.join("tunnel.md"), &report)?;
    let mut csv = String::from("peer,traffic,rep,value,unit,offered_mpps,dp_cpu_busy_pct,note\n");
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{:.4},{},{},{},\"{}\"",
            r.peer.name(),
            r.traffic.name(),
            r.rep,
            r.value,
            r.traffic.unit(),
            r.offered_mpps.map_or(String::new(), |v| format!("{v:.4}")),
            r.dp_busy.map_or(String::new(), |v| format!("{v:.0}")),
            r.note.replace('"', "'")
        );
    }
    fs::write(a.out.join("tunnel.csv"), csv)?;
    drop(nodes);
    Ok(())
}

fn report(a: &TunnelArgs, rows: &[Row], load_start: &str, load_end: &str, xvsd: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Two nodes over a tunnel, pod-a -> pod-b: {} reps x {} s, dataplane cpu{}, generator/iperf3 cpu{}.",
        a.reps, a.secs, a.dp_cpu, a.gen_cpu
    );
    let _ = writeln!(s, "xvsd: {}", xvsd.display());
    let _ = writeln!(
        s,
        "load average at start: {load_start}; at end: {load_end}\n"
    );
    let _ = writeln!(
        s,
        "| peer | traffic | runs | min | **median** | max | unit | offered Mpps (median) | dp cpu % | vs kernel-vxlan |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let median = |peer: Peer, t: Traffic| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.peer == peer && r.traffic == t && r.value.is_finite())
            .map(|r| r.value)
            .collect();
        summarize(&v)
    };
    for t in [Traffic::Udp, Traffic::Tcp] {
        let base = median(Peer::KernelVxlan, t).map(|s| s.median);
        for p in Peer::ALL {
            let cell: Vec<&Row> = rows
                .iter()
                .filter(|r| r.peer == p && r.traffic == t)
                .collect();
            let sm = median(p, t);
            let off: Vec<f64> = cell.iter().filter_map(|r| r.offered_mpps).collect();
            let cpu: Vec<f64> = cell.iter().filter_map(|r| r.dp_busy).collect();
            let f =
                |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} |",
                p.name(),
                t.name(),
                sm.as_ref()
                    .map_or(0, |_| cell.iter().filter(|r| r.value.is_finite()).count()),
                f(sm.as_ref().map(|x| x.min), 3),
                f(sm.as_ref().map(|x| x.median), 3),
                f(sm.as_ref().map(|x| x.max), 3),
                t.unit(),
                f(summarize(&off).map(|x| x.median), 3),
                f(summarize(&cpu).map(|x| x.median), 0),
                f(
                    sm.as_ref()
                        .and_then(|x| base.filter(|b| *b > 0.0).map(|b| x.median / b)),
                    2
                ),
            );
        }
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.note.is_empty()).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\nFailed runs:");
        for r in failed {
            let _ = writeln!(
                s,
                "- {} {} rep {}: {}",
                r.peer.name(),
                r.traffic.name(),
                r.rep,
                r.note
            );
        }
    }
    s
}
