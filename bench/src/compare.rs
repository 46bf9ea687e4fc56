//! `xvs-bench compare`: xvsd and its peers side by side on one topology, with the same flows
//! (the scenario's flow file, loaded into both OpenFlow switches) and the same traffic, in one
//! run. The offered load is measured alone first; then, per scenario and repetition, every
//! peer runs every traffic kind. Output: a table on stdout, and in `--out` a markdown report, a
//! CSV and a plot (SVG and PNG).

use crate::bpf;
use crate::generator::CONN_TUPLES;
use crate::io_bench::{measure_on, sleep_checked, start_peer, Run, Sample, Window, WorkDir};
use crate::measure::{fmt_opt, median_of, ratio, summarize, CpuTimes, NetDev, Summary};
use crate::peers::{log_tail, Peer, PeerEnv, Running};
use crate::plot;
use crate::process::{Guarded, Reniced};
use crate::scenarios::{Scenario, IPERF_PORT};
use crate::sys;
use crate::topology::{self, Endpoint, Topology};
use crate::tunnel_bench::{TunnelPeer, TunnelPlan};
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

/// Arguments of `xvs-bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Repetitions per peer, scenario and traffic (interleaved across peers).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Measurement window, seconds (UDP window after the warm-up; iperf3 duration).
    #[arg(long)]
    pub secs: Option<u32>,
    /// Warm-up before the window, seconds (iperf3: omitted seconds).
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Scenarios: l2, antrea, antrea-10k (flow files for xvsd and OVS on one node), tunnel
    /// (two nodes over Geneve and VXLAN: xvsd-geneve, xvsd-vxlan, ovs-geneve and kernel-vxlan
    /// for the peers xvsd, ovs and bridge; written to tunnel.{md,csv,svg,png}) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Option<Vec<CompareScenario>>,
    /// Peers, in this order within a repetition: xvsd, ovs, bridge, xdp, testpmd.
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<Peer>>,
    /// Traffic kinds: udp<N> (64-byte UDP over N flows), tcp (iperf3, one connection), cps
    /// (64-byte UDP, every frame a new connection).
    #[arg(long, value_delimiter = ',')]
    pub traffic: Option<Vec<Traffic>>,
    /// The connection tracker's limit in both OpenFlow switches (xvsd's `max_connections`,
    /// OVS's `dpctl/ct-set-maxconns`); room for a cps run's warm-up and window at the AF_XDP
    /// ceiling of this topology (about 0.7 M/s).
    #[arg(long, default_value_t = 4_000_000)]
    pub ct_max: u32,
    /// The peer every other one is compared with (its `l2` figure for the same traffic).
    #[arg(long, default_value = "testpmd")]
    pub reference: Peer,
    /// A short run that CI can afford (< 60 s): 1 repetition of 1 s, scenario l2, traffic
    /// udp1 and tcp, peers xvsd and bridge; explicit options still override.
    #[arg(long)]
    pub quick: bool,
    /// Directory for compare.md, compare.csv, compare.svg, compare.png and the flow files.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// The xvsd binary [default: `xvsd` next to this program, else
    /// `<workspace>/target/release/xvsd`].
    #[arg(long)]
    pub xvsd: Option<PathBuf>,
    /// Core for the dataplane under test (every peer, one worker).
    #[arg(long, default_value_t = 0)]
    pub dp_cpu: usize,
    /// Core for the generator, iperf3 and the harness.
    #[arg(long, default_value_t = 1)]
    pub gen_cpu: usize,
    /// Keep the working directory (configs, logs, OVS run directories).
    #[arg(long)]
    pub keep_logs: bool,
}

/// A scenario of `compare`: a flow file on the one-node topology, or the two-node tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareScenario {
    Flows(Scenario),
    Tunnel,
}

impl FromStr for CompareScenario {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "tunnel" {
            return Ok(CompareScenario::Tunnel);
        }
        s.parse::<Scenario>()
            .map(CompareScenario::Flows)
            .map_err(|_| anyhow::anyhow!("unknown scenario {s:?} (l2, antrea, antrea-10k, tunnel)"))
    }
}

/// The resolved plan of a compare run (defaults, `--quick`, explicit options).
#[derive(Debug, Clone)]
struct Plan {
    reps: usize,
    window: Window,
    /// The flow-file scenarios, on the one-node topology.
    scenarios: Vec<Scenario>,
    /// The two-node tunnel scenario ([`crate::tunnel_bench`]).
    tunnel: bool,
    peers: Vec<Peer>,
    traffic: Vec<Traffic>,
    reference: Peer,
    ct_max: u32,
}

impl CompareArgs {
    fn plan(&self) -> Plan {
        let q = self.quick;
        let chosen = self.scenarios.clone().unwrap_or_else(|| {
            if q {
                vec![CompareScenario::Flows(Scenario::L2)]
            } else {
                let mut all: Vec<CompareScenario> =
                    Scenario::ALL.map(CompareScenario::Flows).to_vec();
                all.push(CompareScenario::Tunnel);
                all
            }
        });
        Plan {
            reps: self.reps.unwrap_or(if q { 1 } else { 3 }),
            window: Window {
                warmup: self.warmup,
                secs: self.secs.unwrap_or(if q { 1 } else { 5 }),
                dp_cpu: self.dp_cpu,
                gen_cpu: self.gen_cpu,
            },
            scenarios: chosen
                .iter()
                .filter_map(|c| match c {
                    CompareScenario::Flows(s) => Some(*s),
                    CompareScenario::Tunnel => None,
                })
                .collect(),
            tunnel: chosen.contains(&CompareScenario::Tunnel),
            peers: self.peers.clone().unwrap_or_else(|| {
                if q {
                    vec![Peer::Xvsd, Peer::Bridge]
                } else {
                    vec![
                        Peer::Xvsd,
                        Peer::Ovs,
                        Peer::Bridge,
                        Peer::Xdp,
                        Peer::Testpmd,
                    ]
                }
            }),
            traffic: self.traffic.clone().unwrap_or_else(|| {
                if q {
                    vec![Traffic::Udp(1), Traffic::Tcp]
                } else {
                    vec![
                        Traffic::Udp(1),
                        Traffic::Udp(1000),
                        Traffic::Tcp,
                        Traffic::Cps,
                    ]
                }
            }),
            reference: self.reference,
            ct_max: self.ct_max,
        }
    }
}

/// One kind of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// 64-byte UDP frames at the highest rate the generator reaches, over N flows (source ports).
    Udp(u32),
    /// One iperf3 TCP connection pod-a -> pod-b.
    Tcp,
    /// New connections per second: 64-byte UDP frames at the highest rate, each with a 5-tuple
    /// not sent before. With a conntrack scenario in xvsd and OVS the figure is connections the
    /// tracker created that also reached pod-b; elsewhere it is distinct 5-tuples forwarded.
    Cps,
}

impl Traffic {
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Traffic::Udp(_) => "Mpps",
            Traffic::Tcp => "Gbit/s",
            Traffic::Cps => "Mconn/s",
        }
    }

    /// Measured by the XDP generator and sink (not iperf3).
    fn is_frames(self) -> bool {
        matches!(self, Traffic::Udp(_) | Traffic::Cps)
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Traffic::Udp(n) => f.pad(&format!("udp{n}")),
            Traffic::Tcp => f.pad("tcp"),
            Traffic::Cps => f.pad("cps"),
        }
    }
}

impl FromStr for Traffic {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "tcp" {
            return Ok(Traffic::Tcp);
        }
        if s == "cps" {
            return Ok(Traffic::Cps);
        }
        match s.strip_prefix("udp").map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 => Ok(Traffic::Udp(n)),
            _ => bail!("unknown traffic {s:?} (udp<N> with N >= 1, tcp, cps)"),
        }
    }
}

/// The label of the scenario a row belongs to: the offered load has none, and the peers without
/// OpenFlow tables forward as the `l2` scenario does whatever the scenario.
fn row_scenario(peer: Peer, scenario: Scenario) -> &'static str {
    match peer {
        Peer::Offered => "-",
        p if p.is_openflow() => scenario.name(),
        _ => Scenario::L2.name(),
    }
}

/// One measured run of `compare`.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub traffic: Traffic,
    pub peer: Peer,
    pub rep: usize,
    /// Mpps (UDP, forwarded at pod-b) or Gbit/s (TCP, received by iperf3).
    pub value: f64,
    /// UDP: offered Mpps at pod-a.
    pub offered_mpps: Option<f64>,
    pub dp_busy: Option<f64>,
    pub gen_busy: Option<f64>,
    /// Where the dataplane core's time went: user / system / softirq, %.
    pub dp_split: Option<[f64; 3]>,
    /// cps: Mpps that reached pod-b (each a distinct 5-tuple).
    pub delivered_mpps: Option<f64>,
    /// cps through a conntrack scenario: connections the tracker created, millions per second.
    pub ct_new_mps: Option<f64>,
    /// Empty, or why the run's figure is doubtful or missing.
    pub note: String,
    /// The run failed: `value` is 0 and `note` holds the error.
    pub failed: bool,
}

/// A peer/scenario that this build cannot run.
#[derive(Debug, Clone)]
struct Unsupported {
    peer: Peer,
    scenario: Scenario,
    why: String,
}

/// Rough seconds one start of a peer with all its traffic kinds takes, for the progress display.
fn expected_secs(plan: &Plan, peer: Peer, scenario: Scenario) -> f64 {
    let start = match peer {
        Peer::Offered => 0.0,
        Peer::Xdp | Peer::Bridge => 0.5,
        Peer::Xvsd => 1.0,
        Peer::Testpmd | Peer::XvsdDpdk => 6.0,
        Peer::Ovs => 3.0,
    } + match (peer, scenario) {
        (Peer::Ovs, Scenario::Antrea10k) => 30.0,
        (Peer::Xvsd, Scenario::Antrea10k) => 3.0,
        _ => 0.0,
    };
    let runs: f64 = plan
        .traffic
        .iter()
        .map(|t| {
            f64::from(plan.window.warmup + plan.window.secs)
                + match t {
                    Traffic::Udp(_) => 0.5,
                    Traffic::Tcp => 1.0,
                    Traffic::Cps => 1.0,
                }
        })
        .sum();
    start + runs + 0.5
}

fn fmt_dur(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// What the machine and the peers are, for the report.
pub(crate) fn machine_info(dp_cpu: usize, gen_cpu: usize, xvsd: &Path) -> Vec<(String, String)> {
    let cmd_out = |prog: &str, args: &[&str]| -> String {
        Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| "-".to_string())
    };
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    // Not available_parallelism(): the harness is pinned to one core by now.
    let ncpu = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let dpkg = |pkg: &str| cmd_out("dpkg-query", &["-W", "-f", "${Version}", pkg]);
    let xvs_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut info = vec![
        ("cpu".to_string(), format!("{cpu} ({ncpu} cpus)")),
        ("kernel".to_string(), cmd_out("uname", &["-r"])),
        (
            "xvsd".to_string(),
            format!(
                "{} (git {})",
                xvsd.display(),
                cmd_out(
                    "git",
                    &[
                        "-C",
                        &xvs_dir.display().to_string(),
                        "describe",
                        "--always",
                        "--dirty"
                    ]
                )
            ),
        ),
        ("openvswitch-switch".to_string(), dpkg("openvswitch-switch")),
        ("dpdk-dev (testpmd)".to_string(), dpkg("dpdk-dev")),
        (
            "librte-net-af-xdp23".to_string(),
            dpkg("librte-net-af-xdp23"),
        ),
        ("iperf3".to_string(), dpkg("iperf3")),
        ("iproute2 (bridge)".to_string(), dpkg("iproute2")),
        (
            "pinning".to_string(),
            format!(
                "dataplane cpu{dp_cpu} (one worker / PMD / lcore / RPS), generator + iperf3 cpu{gen_cpu}"
            ),
        ),
    ];
    info.push((
        "load average at start".to_string(),
        fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    ));
    info
}

/// `--xvsd`, else `xvsd` beside this program (the same cargo target directory), else the
/// workspace's `target/release/xvsd`.
pub(crate) fn xvsd_path(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("xvsd"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/xvsd"))
}

pub fn run(args: &CompareArgs) -> Result<()> {
    let plan = args.plan();
    let xvsd = xvsd_path(args.xvsd.as_deref());
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (namespaces, XDP and BPF_PROG_TEST_RUN need it)");
    }
    if plan.reps == 0 || plan.window.secs == 0 || (plan.scenarios.is_empty() && !plan.tunnel) {
        bail!("--reps, --secs and --scenarios must be positive / non-empty");
    }
    if plan.window.dp_cpu == plan.window.gen_cpu {
        bail!("--dp-cpu and --gen-cpu must differ");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    if let Err(e) = sys::set_nice(0, -20) {
        eprintln!("xvs-bench: warning: nice -20 failed: {e}");
    }
    let _softirq_nice = Reniced::threads("ksoftirqd/", -20);
    let mut cpus = CpuSet::new();
    cpus.set(plan.window.gen_cpu).context("--gen-cpu")?;
    sched_setaffinity(Pid::from_raw(0), &cpus)
        .with_context(|| format!("pin harness to cpu{}", plan.window.gen_cpu))?;
    if !plan.scenarios.is_empty() {
        run_flow_scenarios(args, &plan, &xvsd, &stop)?;
    }
    if plan.tunnel {
        run_tunnel_scenario(args, &plan, &xvsd, &stop)?;
    }
    Ok(())
}

/// The `tunnel` scenario: the compare peers' tunnel forms on the two-node topology, with the
/// plan's repetitions, window and traffic (`cps` has no tunnel form).
fn run_tunnel_scenario(
    args: &CompareArgs,
    plan: &Plan,
    xvsd: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    let mut notes = Vec::new();
    let mut peers = Vec::new();
    for &p in &plan.peers {
        let forms = TunnelPeer::of_compare_peer(p);
        if forms.is_empty() && p != Peer::Offered {
            notes.push(format!(
                "{p} has no tunnel form: not run in the tunnel scenario"
            ));
        }
        for &f in forms {
            if !peers.contains(&f) {
                peers.push(f);
            }
        }
    }
    if peers.is_empty() {
        bail!("--peers has none of xvsd, ovs, bridge: nothing to run in the tunnel scenario");
    }
    let tunnel = TunnelPlan {
        reps: plan.reps,
        secs: plan.window.secs,
        warmup: plan.window.warmup,
        peers,
        traffic: plan.traffic.clone(),
        dp_cpu: plan.window.dp_cpu,
        gen_cpu: plan.window.gen_cpu,
        pmd_sleep_us: 0,
        xvsd: xvsd.to_path_buf(),
        out: args.out.clone(),
        keep_logs: args.keep_logs,
        notes,
    };
    crate::tunnel_bench::run_plan(&tunnel, stop)
}

/// The flow-file scenarios on the one-node topology; writes compare.{md,csv,svg,png}.
fn run_flow_scenarios(
    args: &CompareArgs,
    plan: &Plan,
    xvsd: &Path,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let plan = plan.clone();
    let xvsd = xvsd.to_path_buf();
    let stop = Arc::clone(stop);
    fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let tag = format!("{}{}", topology::PREFIX, std::process::id());
    let work = WorkDir {
        path: std::env::temp_dir().join(&tag),
        keep: args.keep_logs,
    };
    fs::create_dir_all(&work.path).with_context(|| format!("create {}", work.path.display()))?;
    // The flow files, kept with the results so that the report names exactly what was loaded.
    let flows_dir = out.join("flows");
    fs::create_dir_all(&flows_dir)?;
    let mut flow_files = Vec::new();
    for &s in &plan.scenarios {
        let path = flows_dir.join(format!("{}.flows", s.name()));
        fs::write(&path, s.flows()).with_context(|| format!("write {}", path.display()))?;
        flow_files.push((s, path));
    }
    let info = machine_info(plan.window.dp_cpu, plan.window.gen_cpu, &xvsd);

    eprintln!("xvs-bench: building namespaces {tag}-a, {tag}-n, {tag}-b");
    let topo = Topology::build(&tag)?;
    // The UDP sink on pod-b (dropping the generator's frames spares pod-b's stack); detached
    // for TCP, where it would only make veth copy every segment into an XDP buffer.
    let attach_sink = || {
        topo.pod_b
            .enter(|| bpf::attach_sink(&["eth0", "d0"]))
            .context("attach the sink to pod-b")
    };
    let mut sink = Some(attach_sink()?);
    let mut devs = [
        NetDev::open(&topo.pod_a)?,
        NetDev::open(&topo.pod_b)?,
        NetDev::open(&topo.node)?,
    ];
    fn env_for<'a>(
        topo: &'a Topology,
        plan: &Plan,
        work: &'a Path,
        xvsd: &'a Path,
        tag: &'a str,
        stop: &'a AtomicBool,
        flows: Option<&'a Path>,
    ) -> PeerEnv<'a> {
        PeerEnv {
            topo,
            dp_cpu: plan.window.dp_cpu,
            work,
            xvsd,
            tag,
            stop,
            flows,
            ct_max: Some(plan.ct_max),
        }
    }
    let env_for = |flows| env_for(&topo, &plan, &work.path, &xvsd, &tag, &stop, flows);

    let mut notes: Vec<String> = Vec::new();
    let mut peers = Vec::new();
    for &p in &plan.peers {
        if p == Peer::Offered || peers.contains(&p) {
            continue;
        }
        match p.unavailable(&env_for(None)) {
            Some(why) => {
                eprintln!("xvs-bench: skipping peer {p}: {why}");
                notes.push(format!("{p} skipped: {why}"));
            }
            None => peers.push(p),
        }
    }

    // The schedule: offered alone first, then scenario by scenario, repetitions interleaved
    // across peers. A peer is started once per slot and measured with every traffic kind.
    let mut schedule: Vec<(Scenario, usize, Peer)> = Vec::new();
    for rep in 1..=plan.reps {
        schedule.push((plan.scenarios[0], rep, Peer::Offered));
    }
    for (i, &s) in plan.scenarios.iter().enumerate() {
        for rep in 1..=plan.reps {
            for &p in &peers {
                // Peers without tables run once, with the first scenario.
                if p.is_openflow() || i == 0 {
                    schedule.push((s, rep, p));
                }
            }
        }
    }
    let total = schedule.len() * plan.traffic.len();
    let t0 = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut unsupported: Vec<Unsupported> = Vec::new();
    let mut ovs_ports: Option<&'static str> = None;
    let mut m = 0;
    for (k, &(scenario, rep, peer)) in schedule.iter().enumerate() {
        let remaining: f64 = schedule[k..]
            .iter()
            .map(|&(s, _, p)| expected_secs(&plan, p, s))
            .sum();
        let expected_end = t0.elapsed().as_secs_f64() + remaining;
        if unsupported
            .iter()
            .any(|u| u.peer == peer && u.scenario == scenario)
        {
            m += plan.traffic.len();
            continue;
        }
        let flows = flow_files
            .iter()
            .find(|(s, _)| *s == scenario)
            .map(|(_, p)| p.as_path());
        let env = env_for(flows);
        let label = row_scenario(peer, scenario);
        eprintln!(
            "[{} elapsed / {} expected]  starting {peer} ({label})",
            fmt_dur(t0.elapsed().as_secs_f64()),
            fmt_dur(expected_end),
        );
        let mut running = match start_peer(&env, peer, m + 1) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{e:#}");
                if peer == Peer::Xvsd && refuses_flows(&msg) {
                    let why = msg
                        .lines()
                        .rev()
                        .find(|l| refuses_flows(l))
                        .unwrap_or("refused the flow file")
                        .trim()
                        .to_string();
                    eprintln!("xvs-bench: xvsd {scenario}: unsupported by this build: {why}");
                    unsupported.push(Unsupported {
                        peer,
                        scenario,
                        why,
                    });
                } else {
                    eprintln!("      -> FAILED: {msg}");
                    for &traffic in &plan.traffic {
                        rows.push(failed_row(label, traffic, peer, rep, &msg));
                    }
                }
                m += plan.traffic.len();
                // Relaxed: the flag carries no data, it is only polled.
                if stop.load(Ordering::Relaxed) {
                    print!("{}", table(&plan, &rows, &unsupported));
                    bail!("interrupted; partial results above; cleaning up");
                }
                continue;
            }
        };
        if let Running::Ovs(g) = &running {
            if ovs_ports.is_none() {
                let t = g.port_type;
                let why = if t == "afxdp" {
                    "this build lists the afxdp interface type"
                } else {
                    "this build has no afxdp interface type"
                };
                eprintln!("xvs-bench: ovs runs on {t} ports ({why})");
                notes.push(format!("ovs ran on `{t}` ports ({why})"));
                ovs_ports = Some(t);
            }
        }
        let mut slot_rows = Vec::new();
        for &traffic in &plan.traffic {
            m += 1;
            eprintln!(
                "[{:>3}/{total}  {} elapsed / {} expected]  {peer} {label} {traffic} rep {rep}/{}",
                m,
                fmt_dur(t0.elapsed().as_secs_f64()),
                fmt_dur(expected_end),
                plan.reps
            );
            let run = Run {
                rep,
                run_no: m,
                peer,
                flows: match traffic {
                    Traffic::Udp(n) => n,
                    Traffic::Tcp | Traffic::Cps => 1,
                },
                new_conns: traffic == Traffic::Cps,
            };
            match traffic {
                t if t.is_frames() && sink.is_none() => sink = Some(attach_sink()?),
                Traffic::Tcp => sink = None,
                _ => {}
            }
            let res = match traffic {
                Traffic::Udp(_) => {
                    let [a, b, n] = &mut devs;
                    measure_on(&plan.window, &env, [a, b, n], &run, &mut running)
                        .map(|s| udp_row(&s, scenario, traffic))
                }
                Traffic::Cps => {
                    let [a, b, n] = &mut devs;
                    measure_on(&plan.window, &env, [a, b, n], &run, &mut running)
                        .and_then(|s| cps_row(&s, scenario, plan.ct_max))
                }
                Traffic::Tcp => measure_tcp(&plan.window, &env, &run, scenario, &mut running),
            };
            // Relaxed: the flag carries no data, it is only polled.
            if stop.load(Ordering::Relaxed) {
                drop(running);
                print!("{}", table(&plan, &rows, &unsupported));
                bail!("interrupted; partial results above; cleaning up");
            }
            match res {
                Ok(row) => {
                    eprintln!(
                        "      -> {:.3} {}{}{}",
                        row.value,
                        traffic.unit(),
                        row.offered_mpps
                            .map(|o| format!(", offered {o:.3} Mpps"))
                            .unwrap_or_default(),
                        if row.note.is_empty() {
                            String::new()
                        } else {
                            format!(" [{}]", row.note)
                        }
                    );
                    slot_rows.push(row);
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    eprintln!("      -> FAILED: {msg}");
                    slot_rows.push(failed_row(label, traffic, peer, rep, &msg));
                }
            }
        }
        let stop_note = running.stop().unwrap_or_else(|e| format!("stop: {e:#}"));
        // xvsd counts flows it loaded but cannot execute as `unsupported_*` translation drops:
        // report the scenario as unsupported by this build rather than as a zero.
        if let Some(why) = stop_note
            .split("; ")
            .find(|n| n.starts_with("translation drops unsupported_"))
            .filter(|_| peer == Peer::Xvsd)
        {
            eprintln!("xvs-bench: xvsd {scenario}: unsupported by this build: {why}");
            unsupported.push(Unsupported {
                peer,
                scenario,
                why: why.to_string(),
            });
            continue;
        }
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
    let mut info = info;
    info.push((
        "load average at end".to_string(),
        fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    ));
    info.push(("wall time".to_string(), fmt_dur(t0.elapsed().as_secs_f64())));

    let text = table(&plan, &rows, &unsupported);
    print!("{text}");
    let csv = out.join("compare.csv");
    fs::write(&csv, csv_text(&rows, &unsupported))?;
    let md = out.join("compare.md");
    fs::write(&md, markdown(&plan, &rows, &unsupported, &info, &notes))?;
    let series = plot_series(&plan, &rows);
    plot::write_svg(&out.join("compare.svg"), &series)?;
    plot::write_png(&out.join("compare.png"), &series)?;
    eprintln!(
        "xvs-bench: wrote {}, {}, compare.svg, compare.png in {}",
        md.display(),
        csv.display(),
        out.display()
    );
    Ok(())
}

/// Whether an error message is xvsd refusing a flow it cannot execute.
fn refuses_flows(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    (m.contains("unsupported") || m.contains("not supported")) && m.contains(".flows")
        || m.contains("conntrack") && m.contains("not")
}

fn failed_row(scenario: &'static str, traffic: Traffic, peer: Peer, rep: usize, msg: &str) -> Row {
    Row {
        scenario,
        traffic,
        peer,
        rep,
        value: 0.0,
        offered_mpps: None,
        dp_busy: None,
        gen_busy: None,
        dp_split: None,
        delivered_mpps: None,
        ct_new_mps: None,
        note: msg.replace('\n', " "),
        failed: true,
    }
}

fn udp_row(s: &Sample, scenario: Scenario, traffic: Traffic) -> Row {
    let mut note = Vec::new();
    if !s.gen_ok {
        note.push("generator ended early".to_string());
    }
    if !s.peer_ok {
        note.push("peer died".to_string());
    }
    if s.offered_mpps < 0.001 {
        note.push("no offered load".to_string());
    }
    Row {
        scenario: row_scenario(s.peer, scenario),
        traffic,
        peer: s.peer,
        rep: s.rep,
        value: s.fwd_mpps,
        offered_mpps: Some(s.offered_mpps),
        dp_busy: s.dp_busy,
        gen_busy: s.gen_busy,
        dp_split: s.dp_split,
        delivered_mpps: None,
        ct_new_mps: None,
        note: note.join("; "),
        failed: false,
    }
}

/// A new-connections run. Through a conntrack scenario on xvsd or OVS, a connection counts
/// if the tracker created it and its packet reached pod-b: the figure is the smaller of the
/// tracker's creation rate and the delivered rate (each delivered frame is a distinct 5-tuple).
/// Peers and scenarios without a tracker report the delivered rate, the I/O ceiling for the
/// same frames.
fn cps_row(s: &Sample, scenario: Scenario, ct_max: u32) -> Result<Row> {
    let mut row = udp_row(s, scenario, Traffic::Cps);
    let mut note = Vec::new();
    row.delivered_mpps = Some(s.fwd_mpps);
    if s.peer.is_openflow() && scenario.has_conntrack() {
        let ct =
            s.ct.context("the peer reported no connection tracker counters")?;
        let created = ct.created_mps();
        row.ct_new_mps = Some(created);
        row.value = created.min(s.fwd_mpps);
        if created < 0.95 * s.fwd_mpps {
            note.push(format!(
                "only {created:.3} M/s new connections for {:.3} Mpps delivered",
                s.fwd_mpps
            ));
        }
        // OVS does not count refused commits over unixctl: a table at its limit says it.
        let refused = ct.refused();
        if refused.is_some_and(|n| n > 0) || ct.end.connections >= ct.end.max {
            let counted = refused
                .map(|n| format!(", {n} commits refused"))
                .unwrap_or_default();
            note.push(format!(
                "conntrack table full ({} of max {}{counted}): a lower bound",
                ct.end.connections, ct.end.max
            ));
        }
        if ct.end.max != u64::from(ct_max) {
            note.push(format!(
                "tracker limit {} instead of --ct-max {ct_max}",
                ct.end.max
            ));
        }
    } else {
        note.push("no conntrack: distinct 5-tuples forwarded".to_string());
    }
    if s.offered_frames > CONN_TUPLES {
        note.push(format!(
            "5-tuples reused after {CONN_TUPLES} frames ({} offered)",
            s.offered_frames
        ));
    }
    if !note.is_empty() {
        if !row.note.is_empty() {
            row.note.push_str("; ");
        }
        row.note.push_str(&note.join("; "));
    }
    Ok(row)
}

/// `ip netns exec <ns> taskset -c <cpu> iperf3 ...`, owned by a guard.
fn spawn_iperf(ns: &str, cpu: usize, args: &[String], log: &Path) -> Result<Guarded> {
    let out = fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
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

/// One iperf3 TCP transfer pod-a -> pod-b through the peer (through the direct veth for
/// `offered`), `warmup` s omitted and `secs` s measured; the figure is iperf3's received rate.
fn measure_tcp(
    w: &Window,
    env: &PeerEnv<'_>,
    run: &Run,
    scenario: Scenario,
    running: &mut Running,
) -> Result<Row> {
    let peer = run.peer;
    let (src, dst): (&Endpoint, &Endpoint) = peer.endpoints();
    let server_log = env.work.join(format!("iperf3-server-{}.log", run.run_no));
    let client_log = env.work.join(format!("iperf3-client-{}.json", run.run_no));
    let _server = spawn_iperf(
        env.topo.pod_b.name(),
        w.gen_cpu,
        &[
            "-s".into(),
            "-1".into(),
            "-B".into(),
            dst.ip.to_string(),
            "-p".into(),
            IPERF_PORT.to_string(),
        ],
        &server_log,
    )?;
    sleep_checked(env.stop, Duration::from_millis(300))?;
    let cpu0 = CpuTimes::read()?;
    let mut client = spawn_iperf(
        env.topo.pod_a.name(),
        w.gen_cpu,
        &[
            "-c".into(),
            dst.ip.to_string(),
            "-B".into(),
            src.ip.to_string(),
            "-p".into(),
            IPERF_PORT.to_string(),
            "-t".into(),
            w.secs.to_string(),
            "-O".into(),
            w.warmup.to_string(),
            "--connect-timeout".into(),
            "3000".into(),
            "-J".into(),
        ],
        &client_log,
    )?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(w.warmup + w.secs) + 10);
    let status = loop {
        if let Some(st) = client.try_status()? {
            break st;
        }
        if Instant::now() > deadline {
            bail!("iperf3 client did not finish in time");
        }
        sleep_checked(env.stop, Duration::from_millis(50))?;
    };
    let cpu1 = CpuTimes::read()?;
    let peer_ok = running.is_alive();
    let text = fs::read_to_string(&client_log).unwrap_or_default();
    if !status.success() {
        bail!(
            "iperf3 client failed ({status}): {}",
            iperf_error(&text).unwrap_or_else(|| log_tail(&server_log, 5))
        );
    }
    let bps = iperf_received_bps(&text).context("no sum_received in iperf3's JSON")?;
    let mut note = Vec::new();
    if !peer_ok {
        note.push("peer died".to_string());
    }
    Ok(Row {
        scenario: row_scenario(peer, scenario),
        traffic: Traffic::Tcp,
        peer,
        rep: run.rep,
        value: bps / 1e9,
        offered_mpps: None,
        dp_busy: cpu0.busy_pct(&cpu1, w.dp_cpu),
        gen_busy: cpu0.busy_pct(&cpu1, w.gen_cpu),
        dp_split: cpu0.split_pct(&cpu1, w.dp_cpu),
        delivered_mpps: None,
        ct_new_mps: None,
        note: note.join("; "),
        failed: false,
    })
}

/// `end.sum_received.bits_per_second` of `iperf3 -J`.
pub fn iperf_received_bps(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("end")?
        .get("sum_received")?
        .get("bits_per_second")?
        .as_f64()
}

fn iperf_error(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("error")?.as_str().map(str::to_string)
}

/// Rows of one cell (scenario label, traffic, peer) that produced a figure.
fn cell<'a>(rows: &'a [Row], scenario: &str, traffic: Traffic, peer: Peer) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| !r.failed && r.scenario == scenario && r.traffic == traffic && r.peer == peer)
        .collect()
}

fn summary_of(rows: &[&Row]) -> Option<Summary> {
    summarize(&rows.iter().map(|r| r.value).collect::<Vec<_>>())
}

/// The table's cells in display order: (scenario label, peer), offered first.
fn cells(plan: &Plan) -> Vec<(&'static str, Peer)> {
    let mut out = vec![("-", Peer::Offered)];
    let others: Vec<Peer> = plan
        .peers
        .iter()
        .copied()
        .filter(|p| *p != Peer::Offered)
        .collect();
    for (i, &s) in plan.scenarios.iter().enumerate() {
        for &p in &others {
            if p.is_openflow() || i == 0 {
                let c = (row_scenario(p, s), p);
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The reference's median for a traffic kind (its `l2` figure).
fn reference_median(plan: &Plan, rows: &[Row], traffic: Traffic) -> Option<f64> {
    let label = row_scenario(plan.reference, Scenario::L2);
    summary_of(&cell(rows, label, traffic, plan.reference)).map(|s| s.median)
}

/// One line per cell and traffic kind.
struct Line {
    scenario: &'static str,
    peer: Peer,
    traffic: Traffic,
    runs: usize,
    failed: usize,
    sum: Option<Summary>,
    offered: Option<f64>,
    dp_busy: Option<f64>,
    /// Medians of the dataplane core's user / system / softirq %.
    dp_split: [Option<f64>; 3],
    gen_busy: Option<f64>,
    vs_ref: Option<f64>,
    /// cps: medians of the delivered Mpps and of the tracker's new connections per second.
    delivered: Option<f64>,
    ct_new: Option<f64>,
    unsupported: Option<String>,
}

impl Line {
    /// The notes column: unsupported, failed runs, and for cps what the figure is made of.
    fn notes(&self) -> String {
        let mut n = Vec::new();
        match (&self.unsupported, self.failed) {
            (Some(why), _) => n.push(format!("unsupported by this build: {why}")),
            (None, 0) => {}
            (None, f) => n.push(format!("{f} failed")),
        }
        if self.traffic == Traffic::Cps && self.unsupported.is_none() {
            match (self.delivered, self.ct_new) {
                (Some(d), Some(c)) => n.push(format!(
                    "conntrack created {c:.3} M/s, delivered {d:.3} Mpps"
                )),
                (Some(d), None) => n.push(format!("no conntrack, delivered {d:.3} Mpps")),
                _ => {}
            }
        }
        n.join("; ")
    }
}

fn lines(plan: &Plan, rows: &[Row], unsupported: &[Unsupported]) -> Vec<Line> {
    let mut out = Vec::new();
    for &t in &plan.traffic {
        let reference = reference_median(plan, rows, t);
        for (scenario, peer) in cells(plan) {
            let c = cell(rows, scenario, t, peer);
            let sum = summary_of(&c);
            out.push(Line {
                scenario,
                peer,
                traffic: t,
                runs: c.len(),
                failed: rows
                    .iter()
                    .filter(|r| {
                        r.failed && r.scenario == scenario && r.traffic == t && r.peer == peer
                    })
                    .count(),
                sum,
                offered: median_of(c.iter().filter_map(|r| r.offered_mpps)),
                dp_busy: median_of(c.iter().filter_map(|r| r.dp_busy)),
                dp_split: [0, 1, 2]
                    .map(|i| median_of(c.iter().filter_map(|r| r.dp_split.map(|s| s[i])))),
                gen_busy: median_of(c.iter().filter_map(|r| r.gen_busy)),
                delivered: median_of(c.iter().filter_map(|r| r.delivered_mpps)),
                ct_new: median_of(c.iter().filter_map(|r| r.ct_new_mps)),
                vs_ref: if peer == Peer::Offered {
                    None
                } else {
                    ratio(sum.map(|s| s.median), reference)
                },
                unsupported: unsupported
                    .iter()
                    .find(|u| u.peer == peer && u.scenario.name() == scenario)
                    .map(|u| u.why.clone()),
            });
        }
    }
    out
}

/// xvsd's median over OVS's for the same scenario and traffic.
fn xvsd_over_ovs(plan: &Plan, rows: &[Row]) -> Vec<(Scenario, Traffic, Option<f64>)> {
    let mut out = Vec::new();
    for &s in &plan.scenarios {
        for &t in &plan.traffic {
            let x = summary_of(&cell(rows, s.name(), t, Peer::Xvsd)).map(|s| s.median);
            let o = summary_of(&cell(rows, s.name(), t, Peer::Ovs)).map(|s| s.median);
            if x.is_some() || o.is_some() {
                out.push((s, t, ratio(x, o)));
            }
        }
    }
    out
}

fn table(plan: &Plan, rows: &[Row], unsupported: &[Unsupported]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nxvs-bench compare: {} x {} s per cell; UDP: Mpps forwarded at pod-b, TCP: Gbit/s received, cps: new connections/s (M) created and delivered; ratio to {} (l2)",
        plan.reps, plan.window.secs, plan.reference
    );
    let _ = writeln!(
        out,
        "{:<11} {:<8} {:<8} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>5}  notes",
        "scenario",
        "traffic",
        "peer",
        "runs",
        "min",
        "median",
        "max",
        "offered",
        "vs ref",
        "dp%",
        "gen%"
    );
    for l in lines(plan, rows, unsupported) {
        let notes = l.notes();
        let _ = writeln!(
            out,
            "{:<11} {:<8} {:<8} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>5}  {notes}",
            l.scenario,
            l.traffic.to_string(),
            l.peer.name(),
            l.runs,
            fmt_opt(l.sum.map(|s| s.min), 3),
            fmt_opt(l.sum.map(|s| s.median), 3),
            fmt_opt(l.sum.map(|s| s.max), 3),
            fmt_opt(l.offered, 3),
            fmt_opt(l.vs_ref, 3),
            fmt_opt(l.dp_busy, 0),
            fmt_opt(l.gen_busy, 0),
        );
    }
    let r = xvsd_over_ovs(plan, rows);
    if !r.is_empty() {
        let _ = writeln!(out, "\nxvsd / ovs (medians, same scenario and traffic):");
        for (s, t, v) in r {
            let _ = writeln!(
                out,
                "  {:<11} {:<8} {}",
                s.name(),
                t.to_string(),
                fmt_opt(v, 3)
            );
        }
    }
    out
}

pub const CSV_HEADER: &str =
    "scenario,traffic,peer,rep,value,unit,offered_mpps,dp_cpu_busy_pct,dp_cpu_user_pct,dp_cpu_sys_pct,dp_cpu_softirq_pct,gen_cpu_busy_pct,delivered_mpps,ct_new_mps,status,note";

fn csv_text(rows: &[Row], unsupported: &[Unsupported]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "'"));
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.4},{},{},{},{},{},{},{},{},{},{},{}",
            r.scenario,
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
            fmt_opt(r.delivered_mpps, 4),
            fmt_opt(r.ct_new_mps, 4),
            if r.failed { "failed" } else { "ok" },
            quote(&r.note)
        );
    }
    for u in unsupported {
        let _ = writeln!(
            out,
            "{},-,{},-,-,-,-,-,-,-,-,-,-,-,unsupported,{}",
            u.scenario,
            u.peer,
            quote(&u.why)
        );
    }
    out
}

fn markdown(
    plan: &Plan,
    rows: &[Row],
    unsupported: &[Unsupported],
    info: &[(String, String)],
    notes: &[String],
) -> String {
    let mut out = String::from("# xvs-bench compare\n\n");
    let argv: Vec<String> = std::env::args().collect();
    let _ = writeln!(out, "Command: `{}`\n", argv.join(" "));
    let _ = writeln!(
        out,
        "{} repetition(s) of {} s per cell (warm-up {} s), interleaved across peers. UDP: 64-byte \
         frames, Mpps forwarded at pod-b; TCP: one iperf3 connection, Gbit/s received; cps: \
         64-byte UDP frames each with a new 5-tuple, millions of connections per second that the \
         tracker created (flushed before each run, limit {} in both switches) and that reached \
         pod-b, or without a tracker the distinct 5-tuples forwarded. \"vs {}\" is the peer's \
         median over the {} median (`l2`) for the same traffic.\n",
        plan.reps,
        plan.window.secs,
        plan.window.warmup,
        plan.ct_max,
        plan.reference,
        plan.reference
    );
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in info {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(
        out,
        "\n| scenario | traffic | peer | runs | min | **median** | max | unit | offered Mpps | vs {} | dp cpu % (usr/sys/sirq) | gen cpu % | notes |",
        plan.reference
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for l in lines(plan, rows, unsupported) {
        let notes = l.notes().replace('|', "/");
        let dp = format!(
            "{} ({}/{}/{})",
            fmt_opt(l.dp_busy, 0),
            fmt_opt(l.dp_split[0], 0),
            fmt_opt(l.dp_split[1], 0),
            fmt_opt(l.dp_split[2], 0)
        );
        let _ = writeln!(
            out,
            "| {} | {} | {}{} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {} |",
            l.scenario,
            l.traffic,
            l.peer.name(),
            if l.peer == Peer::Offered {
                " (generator alone)"
            } else {
                ""
            },
            l.runs,
            fmt_opt(l.sum.map(|s| s.min), 3),
            fmt_opt(l.sum.map(|s| s.median), 3),
            fmt_opt(l.sum.map(|s| s.max), 3),
            l.traffic.unit(),
            fmt_opt(l.offered, 3),
            fmt_opt(l.vs_ref, 3),
            dp,
            fmt_opt(l.gen_busy, 0),
            notes
        );
    }
    let r = xvsd_over_ovs(plan, rows);
    if !r.is_empty() {
        out.push_str("\n| scenario | traffic | xvsd / ovs |\n|---|---|---|\n");
        for (s, t, v) in r {
            let _ = writeln!(out, "| {} | {} | {} |", s.name(), t, fmt_opt(v, 3));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out.push_str("\n![Mpps per system and scenario](compare.svg)\n");
    out
}

/// The plot's data: one group per (scenario, UDP traffic), one bar per peer. The offered load
/// (several times any AF_XDP peer's rate) is not drawn as a bar, which would flatten the rest;
/// the group labels carry it.
fn plot_series(plan: &Plan, rows: &[Row]) -> plot::Chart {
    let mut groups = Vec::new();
    let peers: Vec<Peer> = plan
        .peers
        .iter()
        .copied()
        .filter(|p| *p != Peer::Offered)
        .collect();
    for &t in &plan.traffic {
        if !matches!(t, Traffic::Udp(_)) {
            continue;
        }
        let offered = summary_of(&cell(rows, "-", t, Peer::Offered)).map(|s| s.median);
        for label in plan.scenarios.iter().map(|s| s.name()) {
            let mut bars = Vec::new();
            for &p in &peers {
                if let Some(s) = summary_of(&cell(rows, label, t, p)) {
                    bars.push(plot::Bar {
                        series: p.name().to_string(),
                        min: s.min,
                        median: s.median,
                        max: s.max,
                    });
                }
            }
            if !bars.is_empty() {
                let name = match offered {
                    Some(o) => format!("{label} {t} (offered {o:.2})"),
                    None => format!("{label} {t}"),
                };
                groups.push(plot::Group { name, bars });
            }
        }
    }
    plot::Chart {
        title: format!(
            "64-byte UDP forwarded, Mpps (bar: median, whiskers: min-max of {} x {} s)",
            plan.reps, plan.window.secs
        ),
        y_label: "Mpps".to_string(),
        series: peers.iter().map(|p| p.name().to_string()).collect(),
        groups,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::peers::CtSnapshot;

    #[test]
    fn traffic_parses() {
        assert_eq!("udp1".parse::<Traffic>().unwrap(), Traffic::Udp(1));
        assert_eq!("udp1000".parse::<Traffic>().unwrap(), Traffic::Udp(1000));
        assert_eq!("tcp".parse::<Traffic>().unwrap(), Traffic::Tcp);
        assert!("udp0".parse::<Traffic>().is_err());
        assert_eq!("cps".parse::<Traffic>().unwrap(), Traffic::Cps);
        assert_eq!(Traffic::Cps.to_string(), "cps");
        assert!("cps2".parse::<Traffic>().is_err());
        assert_eq!(Traffic::Udp(1000).to_string(), "udp1000");
    }

    fn plan_of(args: &[&str]) -> Plan {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            compare: CompareArgs,
        }
        let argv = std::iter::once("compare").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .compare
            .plan()
    }

    #[test]
    fn tunnel_is_a_scenario_of_the_one_command() {
        let all = plan_of(&[]);
        assert!(all.tunnel, "the full run includes the tunnel scenario");
        assert_eq!(all.scenarios, Scenario::ALL.to_vec());
        let quick = plan_of(&["--quick"]);
        assert!(!quick.tunnel);
        let t = plan_of(&["--quick", "--scenarios", "tunnel"]);
        assert!(t.tunnel && t.scenarios.is_empty());
        let both = plan_of(&["--scenarios", "l2,tunnel"]);
        assert!(both.tunnel);
        assert_eq!(both.scenarios, vec![Scenario::L2]);
        assert!("tunel".parse::<CompareScenario>().is_err());
    }

    #[test]
    fn iperf_json() {
        let j = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2e9},"sum_received":{"bits_per_second":1.5e9}}}"#;
        assert_eq!(iperf_received_bps(j), Some(1.5e9));
        assert_eq!(iperf_received_bps(r#"{"error":"x"}"#), None);
        assert_eq!(
            iperf_error(r#"{"error":"unable to connect"}"#).unwrap(),
            "unable to connect"
        );
    }

    fn cps_sample(peer: Peer, fwd: f64, ct: Option<(u64, u64, u64)>) -> Sample {
        // ct: (created at the window's end, table size at the end, commits refused).
        let snap = |created: u64, connections: u64, full: u64| CtSnapshot {
            connections,
            max: 1_000_000,
            created: Some(created),
            full: Some(full),
        };
        Sample {
            rep: 1,
            peer,
            flows: 1,
            window_s: 2.0,
            fwd_mpps: fwd,
            offered_mpps: 2.0,
            pa0_rx_dropped_mpps: 0.0,
            dp_busy: None,
            gen_busy: None,
            dp_split: None,
            gen_ok: true,
            peer_ok: true,
            offered_frames: 4_000_000,
            ct: ct.map(|(created, conns, full)| crate::io_bench::CtWindow {
                start: snap(100_000, 100_000, 0),
                end: snap(created, conns, full),
                secs: 2.0,
            }),
        }
    }

    #[test]
    fn cps_counts_connections_created_and_delivered() {
        // 0.3 M/s created over 2 s, 0.25 Mpps delivered: the smaller one.
        let s = cps_sample(Peer::Xvsd, 0.25, Some((700_000, 700_000, 0)));
        let r = cps_row(&s, Scenario::Antrea, 1_000_000).unwrap();
        assert!((r.value - 0.25).abs() < 1e-9, "{r:?}");
        assert!((r.ct_new_mps.unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(r.delivered_mpps, Some(0.25));
        assert!(r.note.is_empty(), "{}", r.note);
        // Frames that pass without a new connection do not count, and are pointed out.
        let s = cps_sample(Peer::Ovs, 0.5, Some((300_000, 300_000, 0)));
        let r = cps_row(&s, Scenario::Antrea, 1_000_000).unwrap();
        assert!((r.value - 0.1).abs() < 1e-9, "{r:?}");
        assert!(
            r.note.contains("only 0.100 M/s new connections"),
            "{}",
            r.note
        );
        // A full table makes the figure a lower bound.
        let s = cps_sample(Peer::Xvsd, 0.3, Some((700_000, 1_000_000, 42)));
        let r = cps_row(&s, Scenario::Antrea, 1_000_000).unwrap();
        assert!(r.note.contains("conntrack table full"), "{}", r.note);
        assert!(r.note.contains("42 commits refused"), "{}", r.note);
        // OVS's tracker has no refusal counter: the table at its limit is enough.
        let mut ovs = cps_sample(Peer::Ovs, 0.3, Some((700_000, 1_000_000, 0)));
        if let Some(ct) = &mut ovs.ct {
            ct.start.full = None;
            ct.end.full = None;
        }
        let r = cps_row(&ovs, Scenario::Antrea, 1_000_000).unwrap();
        assert!(
            r.note.contains("table full (1000000 of max 1000000)"),
            "{}",
            r.note
        );
        // A limit other than the one asked for is reported.
        let r = cps_row(&s, Scenario::Antrea, 2_000_000).unwrap();
        assert!(r.note.contains("instead of --ct-max 2000000"), "{}", r.note);
        // A tracked scenario without counters is an error, not a packet rate.
        let s = cps_sample(Peer::Xvsd, 0.3, None);
        assert!(cps_row(&s, Scenario::Antrea, 1_000_000).is_err());
    }

    #[test]
    fn cps_without_a_tracker_is_the_delivered_rate() {
        for (peer, scenario) in [(Peer::Testpmd, Scenario::L2), (Peer::Xvsd, Scenario::L2)] {
            let r = cps_row(&cps_sample(peer, 0.6, None), scenario, 1_000_000).unwrap();
            assert_eq!(r.value, 0.6);
            assert_eq!(r.ct_new_mps, None);
            assert!(r.note.contains("no conntrack"), "{}", r.note);
        }
        let mut s = cps_sample(Peer::Offered, 3.0, None);
        s.offered_frames = CONN_TUPLES + 1;
        let r = cps_row(&s, Scenario::L2, 1_000_000).unwrap();
        assert!(r.note.contains("5-tuples reused"), "{}", r.note);
    }

    #[test]
    fn refusal_is_recognised() {
        assert!(refuses_flows(
            "xvsd exited during start-up: /tmp/x/antrea.flows:12: ct: unsupported action"
        ));
        assert!(!refuses_flows("xvsd not ready after 20s"));
    }
}
