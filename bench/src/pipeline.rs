//! `xvs-bench pipeline`: the userspace pipeline alone, no kernel I/O
//! (`/work/shared/reference/ovs-dpdk-pipeline.md`). Packets come from DPDK's `net_pcap` vdev
//! replaying a pcap held in memory (`infinite_rx=1`) and leave through `net_null` (`no-rx=1`),
//! which frees them; one core runs feed, switch and sink. Peers, each a fresh process per
//! measured window: `dpdk-testpmd` io forwarding (the feed ceiling), OVS-DPDK
//! (`ovs-vswitchd-dpdk`, private ovsdb-server and run directory), xvsd built with
//! `--features dpdk` (one worker, the two vdevs as `type = "dpdk"` ports), and `xvsd-mem`:
//! xvsd on its own in-memory ports (`type = "replay"` loading the same pcap at start, copying
//! each frame into a pool frame as net_pcap copies into an mbuf, and `type = "null"` freeing
//! as net_null does), with no DPDK in the path; its ceiling is the same xvsd with one
//! `in_port=1,actions=output:2` flow (`xvsd-mem-ioflow`). The OpenFlow peers get the same flow
//! file through the real `ovs-ofctl`; rates come from port counters (`ovs-ofctl dump-ports`
//! port 2 tx; testpmd's null port through DPDK telemetry).

use crate::measure::{summarize, Summary};
use crate::pcaps::Pcap;
use crate::pipeline_flows::PipeScenario;
use crate::plot::{self, Bar, Chart, Group};
use crate::process::{Guarded, RemoveDirOnDrop};
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OVS_DPDK: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const BRIDGE: &str = "br-int";
const NULL_DEVARGS: &str = "net_null0,no-rx=1";
/// 2 MiB hugepages reserved for the run (OVS's 1536 MiB socket memory, testpmd's 262,144
/// mbufs for the 100k-frame pcaps).
const HUGEPAGES: u64 = 1024;

/// Arguments of `xvs-bench pipeline`.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Repetitions (rounds over every cell, interleaved).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Measured window per run, seconds.
    #[arg(long)]
    pub secs: Option<f64>,
    /// Warm-up after the pcap port is up, seconds.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Scenarios: l2, l3-1k, ct, antrea-like.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Option<Vec<PipeScenario>>,
    /// Only these pcaps (of each scenario's): udp-1flow, udp-1kflow, udp-100kflow, tcp-1kconn,
    /// tcp-1kconn-nofin.
    #[arg(long, value_delimiter = ',')]
    pub pcaps: Option<Vec<Pcap>>,
    /// Peers: testpmd, ovs, xvsd, xvsd-mem (run in this order within a round). xvsd-mem also
    /// runs its io-flow ceiling once per pcap.
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<PeerKind>>,
    /// OVS cache configurations: emc (OVS defaults), smc (EMC off, SMC on), dpcls (both off).
    /// smc is the reference's best (or within noise of it) in every target cell, and one
    /// configuration keeps the matrix under 15 minutes.
    #[arg(long, value_delimiter = ',', default_value = "smc")]
    pub ovs_caches: Vec<OvsCache>,
    /// One repetition, short windows, l2 on udp-1flow only, testpmd, xvsd and xvsd-mem.
    #[arg(long)]
    pub quick: bool,
    /// Run every peer without hugepages (`--no-huge`); OVS-DPDK is then skipped.
    #[arg(long)]
    pub no_huge: bool,
    /// Output directory: pipeline.md, pipeline.csv, pipeline.svg, pipeline.png.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Where the pcaps are written (and reused).
    #[arg(long, default_value = "/tmp/xvs-pipeline-pcaps")]
    pub pcap_dir: PathBuf,
    /// The xvsd binary (built with `--features dpdk` for the `xvsd` peer; any build serves
    /// `xvsd-mem`).
    #[arg(long)]
    pub xvsd: Option<PathBuf>,
    /// Core of the dataplane (testpmd's forwarding lcore, OVS's PMD, xvsd's worker); the
    /// other processes run on `--ctl-cpu`.
    #[arg(long, default_value_t = 1)]
    pub dp_cpu: usize,
    #[arg(long, default_value_t = 0)]
    pub ctl_cpu: usize,
    /// Keep the working directory (configs and logs).
    #[arg(long)]
    pub keep_logs: bool,
    /// Write the flow files to this directory and exit.
    #[arg(long)]
    pub write_flows: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum PeerKind {
    Testpmd,
    Ovs,
    /// xvsd on DPDK's net_pcap and net_null.
    Xvsd,
    /// xvsd on its replay and null ports.
    XvsdMem,
}

impl PeerKind {
    /// Peers that run DPDK (and want hugepages).
    fn uses_dpdk(self) -> bool {
        self != PeerKind::XvsdMem
    }
}

/// The io-forward flow of xvsd-mem's ceiling cells.
const IO_FLOW: &str = "in_port=1,actions=output:2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum OvsCache {
    Emc,
    Smc,
    Dpcls,
}

impl OvsCache {
    fn name(self) -> &'static str {
        match self {
            OvsCache::Emc => "emc",
            OvsCache::Smc => "smc",
            OvsCache::Dpcls => "dpcls",
        }
    }

    fn other_config(self) -> &'static [&'static str] {
        match self {
            OvsCache::Emc => &[],
            OvsCache::Smc => &[
                "other_config:emc-insert-inv-prob=0",
                "other_config:smc-enable=true",
            ],
            OvsCache::Dpcls => &[
                "other_config:emc-insert-inv-prob=0",
                "other_config:smc-enable=false",
            ],
        }
    }
}

/// One process to measure: a peer on one scenario (none for testpmd) and pcap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    scenario: Option<PipeScenario>,
    pcap: Pcap,
    peer: PeerKind,
    cache: Option<OvsCache>,
}

impl Cell {
    fn peer_name(&self) -> String {
        match (self.peer, self.cache) {
            (PeerKind::Testpmd, _) => "testpmd".into(),
            (PeerKind::Ovs, Some(c)) => format!("ovs-{}", c.name()),
            (PeerKind::Ovs, None) => "ovs".into(),
            (PeerKind::Xvsd, _) => "xvsd".into(),
            (PeerKind::XvsdMem, _) if self.scenario.is_some() => "xvsd-mem".into(),
            (PeerKind::XvsdMem, _) => "xvsd-mem-ioflow".into(),
        }
    }
}

/// One measured window.
#[derive(Debug, Clone)]
struct Sample {
    cell: Cell,
    rep: usize,
    /// Forwarded (port 2 tx) and received (port 1 rx) Mpps.
    fwd_mpps: f64,
    rx_mpps: f64,
    status: &'static str,
    note: String,
}

#[derive(Debug)]
struct Env {
    work: PathBuf,
    huge_dir: Option<PathBuf>,
    netns: String,
    xvsd: PathBuf,
    dp_cpu: usize,
    ctl_cpu: usize,
    warmup: Duration,
    window: Duration,
    tag: String,
}

pub fn run(args: &PipelineArgs) -> Result<()> {
    if let Some(dir) = &args.write_flows {
        fs::create_dir_all(dir)?;
        for sc in PipeScenario::ALL {
            fs::write(dir.join(format!("{}.flows", sc.name())), sc.flows())?;
        }
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (DPDK, hugepages and a private network namespace need it)");
    }
    let q = args.quick;
    let reps = args.reps.unwrap_or(if q { 1 } else { 3 });
    let secs = args.secs.unwrap_or(if q { 1.0 } else { 3.0 });
    let warmup = args.warmup.unwrap_or(if q { 1.0 } else { 2.0 });
    let scenarios = args.scenarios.clone().unwrap_or_else(|| {
        if q {
            vec![PipeScenario::L2]
        } else {
            PipeScenario::ALL.to_vec()
        }
    });
    let pcap_filter = args
        .pcaps
        .clone()
        .or_else(|| q.then(|| vec![Pcap::Udp1Flow]));
    let mut peers = args.peers.clone().unwrap_or_else(|| {
        if q {
            vec![PeerKind::Testpmd, PeerKind::Xvsd, PeerKind::XvsdMem]
        } else {
            vec![
                PeerKind::Testpmd,
                PeerKind::Ovs,
                PeerKind::Xvsd,
                PeerKind::XvsdMem,
            ]
        }
    });
    let xvsd = args
        .xvsd
        .clone()
        .unwrap_or_else(|| crate::compare::xvsd_path(None));
    check_tools(&peers, &xvsd)?;

    let tag = format!("xvsp{}", std::process::id());
    let work = std::env::temp_dir().join(&tag);
    fs::create_dir_all(&work)?;
    let _work_guard = (!args.keep_logs).then(|| RemoveDirOnDrop(work.clone()));
    fs::create_dir_all(&args.pcap_dir)?;
    fs::create_dir_all(&args.out)?;

    let mut hugepages = None;
    let mut memory_note = String::from("--no-huge (requested)");
    if !peers.iter().any(|p| p.uses_dpdk()) {
        memory_note = "no DPDK peer: no hugepages reserved".into();
    } else if !args.no_huge {
        match Hugepages::reserve(&work.join("huge"), HUGEPAGES) {
            Ok(h) => {
                memory_note = format!(
                    "{} x 2 MiB hugepages, private hugetlbfs mount (vm.nr_hugepages restored to {} at exit)",
                    h.pages, h.old
                );
                hugepages = Some(h);
            }
            Err(e) => {
                memory_note = format!("--no-huge (hugepages unavailable: {e:#})");
                eprintln!("xvs-bench pipeline: {memory_note}");
            }
        }
    }
    if hugepages.is_none() && peers.contains(&PeerKind::Ovs) {
        eprintln!("xvs-bench pipeline: OVS-DPDK needs hugepages here; skipping it");
        peers.retain(|p| *p != PeerKind::Ovs);
    }
    let netns = Netns::create(&tag)?;
    let env = Env {
        work: work.clone(),
        huge_dir: hugepages.as_ref().map(|h| h.dir.clone()),
        netns: netns.0.clone(),
        xvsd: xvsd.clone(),
        dp_cpu: args.dp_cpu,
        ctl_cpu: args.ctl_cpu,
        warmup: Duration::from_secs_f64(warmup),
        window: Duration::from_secs_f64(secs),
        tag,
    };

    // Cells: testpmd once per pcap in use, the OpenFlow peers per scenario x pcap.
    let mut cells = Vec::new();
    let mut pcaps_used = Vec::new();
    for &sc in &scenarios {
        for &p in sc.pcaps() {
            if pcap_filter.as_ref().is_some_and(|f| !f.contains(&p)) {
                continue;
            }
            if !pcaps_used.contains(&p) {
                pcaps_used.push(p);
            }
            for &peer in &peers {
                match peer {
                    PeerKind::Testpmd => {}
                    PeerKind::Ovs => {
                        for &c in &args.ovs_caches {
                            cells.push(Cell {
                                scenario: Some(sc),
                                pcap: p,
                                peer,
                                cache: Some(c),
                            });
                        }
                    }
                    PeerKind::Xvsd | PeerKind::XvsdMem => cells.push(Cell {
                        scenario: Some(sc),
                        pcap: p,
                        peer,
                        cache: None,
                    }),
                }
            }
        }
    }
    if peers.contains(&PeerKind::Testpmd) {
        let tp: Vec<Cell> = pcaps_used
            .iter()
            .map(|&p| Cell {
                scenario: None,
                pcap: p,
                peer: PeerKind::Testpmd,
                cache: None,
            })
            .collect();
        cells.splice(0..0, tp);
    }
    if peers.contains(&PeerKind::XvsdMem) {
        // xvsd-mem's own ceiling: the same ports and pcap, one output flow.
        let at = cells
            .iter()
            .position(|c| c.scenario.is_some())
            .unwrap_or(cells.len());
        let ceiling: Vec<Cell> = pcaps_used
            .iter()
            .map(|&p| Cell {
                scenario: None,
                pcap: p,
                peer: PeerKind::XvsdMem,
                cache: None,
            })
            .collect();
        cells.splice(at..at, ceiling);
    }
    if cells.is_empty() {
        bail!("nothing to run: no scenario x pcap x peer left");
    }
    let mut pcap_paths = BTreeMap::new();
    for &p in &pcaps_used {
        pcap_paths.insert(p, p.write_into(&args.pcap_dir)?);
    }
    let flow_dir = work.join("flows");
    fs::create_dir_all(&flow_dir)?;
    let mut flow_paths = BTreeMap::new();
    for &sc in &scenarios {
        let f = flow_dir.join(format!("{}.flows", sc.name()));
        fs::write(&f, sc.flows())?;
        flow_paths.insert(sc, f);
    }

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let load_start = loadavg();
    let started = Instant::now();
    // Start and stop: OVS-DPDK about 12 s, testpmd and xvsd about 3 s (measured here).
    let expected: f64 = reps as f64
        * cells
            .iter()
            .map(|c| warmup + secs + if c.peer == PeerKind::Ovs { 12.0 } else { 3.0 })
            .sum::<f64>();
    let total = cells.len() * reps;
    let mut samples = Vec::new();
    for rep in 0..reps {
        for (i, cell) in cells.iter().enumerate() {
            let n = rep * cells.len() + i;
            eprintln!(
                "[{}/{}] rep {} {} / {} / {}  (elapsed {:.0} s, expected about {:.0} s)",
                n + 1,
                total,
                rep + 1,
                cell.peer_name(),
                cell.scenario.map_or("io-fwd", |s| s.name()),
                cell.pcap,
                started.elapsed().as_secs_f64(),
                expected
            );
            let pcap = &pcap_paths[&cell.pcap];
            let flows = cell.scenario.map(|s| flow_paths[&s].as_path());
            let res = match cell.peer {
                PeerKind::Testpmd => run_testpmd(&env, pcap, n),
                PeerKind::Ovs => run_ovs(&env, pcap, flows, cell.cache, n),
                PeerKind::Xvsd => run_xvsd(&env, pcap, flows, n),
                PeerKind::XvsdMem => run_xvsd_mem(&env, pcap, flows, n),
            };
            let s = match res {
                Ok(w) => Sample {
                    cell: *cell,
                    rep,
                    fwd_mpps: w.fwd_mpps,
                    rx_mpps: w.rx_mpps,
                    status: if w.fwd_mpps > 0.0 { "ok" } else { "failed" },
                    note: if w.fwd_mpps > 0.0 {
                        w.note
                    } else {
                        format!("nothing forwarded; {}", w.note)
                    },
                },
                Err(e) => Sample {
                    cell: *cell,
                    rep,
                    fwd_mpps: 0.0,
                    rx_mpps: 0.0,
                    status: "failed",
                    note: format!("{e:#}").replace(['\n', ','], " "),
                },
            };
            eprintln!(
                "    {} Mpps forwarded ({} rx) {} {}",
                fmt2(s.fwd_mpps),
                fmt2(s.rx_mpps),
                s.status,
                s.note
            );
            samples.push(s);
        }
    }
    drop(netns);
    drop(hugepages);
    let info = Info {
        command,
        memory: memory_note,
        load_start,
        load_end: loadavg(),
        xvsd,
        secs,
        warmup,
        reps,
        dp_cpu: args.dp_cpu,
        ctl_cpu: args.ctl_cpu,
    };
    write_outputs(&args.out, &samples, &info)?;
    eprintln!(
        "xvs-bench pipeline: {} in {:.0} s",
        args.out.join("pipeline.md").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn check_tools(peers: &[PeerKind], xvsd: &Path) -> Result<()> {
    let need = |p: &str, why: &str| -> Result<()> {
        if !Path::new(p).exists() && which(p).is_none() {
            bail!("{p} not found ({why})");
        }
        Ok(())
    };
    for p in peers {
        match p {
            PeerKind::Testpmd => need("dpdk-testpmd", "apt-get install dpdk")?,
            PeerKind::Ovs => {
                need(OVS_DPDK, "apt-get install openvswitch-switch-dpdk")?;
                need("ovs-ofctl", "apt-get install openvswitch-switch")?;
            }
            PeerKind::Xvsd | PeerKind::XvsdMem => {
                if !xvsd.exists() {
                    bail!(
                        "{} not found (cargo build --release -p xvsd --features dpdk)",
                        xvsd.display()
                    );
                }
                need("ovs-ofctl", "apt-get install openvswitch-common")?;
                need("ovs-appctl", "apt-get install openvswitch-common")?;
            }
        }
    }
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|f| f.exists())
    })
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn fmt2(v: f64) -> String {
    format!("{v:.2}")
}

/// 2 MiB hugepages reserved through `vm.nr_hugepages` and a private hugetlbfs mount; both
/// undone on drop.
#[derive(Debug)]
struct Hugepages {
    dir: PathBuf,
    old: u64,
    pages: u64,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

impl Hugepages {
    fn reserve(dir: &Path, pages: u64) -> Result<Self> {
        let old: u64 = fs::read_to_string(NR_HUGEPAGES)
            .context("read vm.nr_hugepages")?
            .trim()
            .parse()
            .context("vm.nr_hugepages")?;
        let want = old.max(pages);
        // Most memory here is page cache, fragmented: each attempt compacts and reclaims a
        // little more, so a few attempts usually get every page.
        let mut got = 0;
        for _ in 0..10 {
            let _ = fs::write("/proc/sys/vm/compact_memory", "1");
            fs::write(NR_HUGEPAGES, want.to_string()).context("write vm.nr_hugepages")?;
            got = fs::read_to_string(NR_HUGEPAGES)?.trim().parse()?;
            if got >= want {
                break;
            }
        }
        let restore = |e: anyhow::Error| -> anyhow::Error {
            let _ = fs::write(NR_HUGEPAGES, old.to_string());
            e
        };
        if got < pages {
            return Err(restore(anyhow::anyhow!(
                "only {got} of {pages} 2 MiB hugepages could be reserved"
            )));
        }
        fs::create_dir_all(dir)?;
        let st = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev"])
            .arg(dir)
            .status()
            .context("mount")?;
        if !st.success() {
            return Err(restore(anyhow::anyhow!(
                "mount hugetlbfs on {}: {st}",
                dir.display()
            )));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            old,
            pages,
        })
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        if let Err(e) = fs::write(NR_HUGEPAGES, self.old.to_string()) {
            eprintln!(
                "xvs-bench pipeline: restoring vm.nr_hugepages to {}: {e}",
                self.old
            );
        }
    }
}

/// A private network namespace the daemons run in (OVS creates its bridge's tap there, not in
/// the root namespace); deleted on drop.
#[derive(Debug)]
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Result<Self> {
        let st = Command::new("ip").args(["netns", "add", name]).status()?;
        if !st.success() {
            bail!("ip netns add {name}: {st}");
        }
        Ok(Self(name.to_string()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `ip netns exec NS nice -n -20 taskset -c CPUS PROG ARGS`: the PID is the program's.
fn spawn_in(
    env: &Env,
    cpus: &str,
    prog: &str,
    args: &[String],
    vars: &[(&str, &Path)],
    log: &Path,
) -> Result<Guarded> {
    let out = fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = Command::new("ip")
        .args([
            "netns", "exec", &env.netns, "nice", "-n", "-20", "taskset", "-c", cpus, prog,
        ])
        .args(args)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {prog}"))?;
    Ok(Guarded::new(prog, child, Signal::SIGTERM))
}

fn log_tail(path: &Path, n: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// The result of one window.
#[derive(Debug)]
struct Window {
    fwd_mpps: f64,
    rx_mpps: f64,
    note: String,
}

/// Samples `read` (returning (port 1 rx, port 2 tx)) at both ends of the window, each taken at
/// the midpoint of its call.
fn measure(env: &Env, mut read: impl FnMut() -> Result<(u64, u64)>) -> Result<Window> {
    std::thread::sleep(env.warmup);
    let sample = |read: &mut dyn FnMut() -> Result<(u64, u64)>| -> Result<(Instant, u64, u64)> {
        let a = Instant::now();
        let (rx, tx) = read()?;
        let b = Instant::now();
        Ok((a + (b - a) / 2, rx, tx))
    };
    let (t0, rx0, tx0) = sample(&mut read)?;
    std::thread::sleep(env.window);
    let (t1, rx1, tx1) = sample(&mut read)?;
    let dt = (t1 - t0).as_secs_f64();
    Ok(Window {
        fwd_mpps: tx1.saturating_sub(tx0) as f64 / dt / 1e6,
        rx_mpps: rx1.saturating_sub(rx0) as f64 / dt / 1e6,
        note: String::new(),
    })
}

fn eal_memory_args(env: &Env) -> Vec<String> {
    match &env.huge_dir {
        Some(d) => vec!["--huge-dir".into(), d.display().to_string()],
        None => vec!["--no-huge".into(), "-m".into(), "1024".into()],
    }
}

// ---------------------------------------------------------------- testpmd

fn run_testpmd(env: &Env, pcap: &Path, n: usize) -> Result<Window> {
    let prefix = format!("{}tp{n}", env.tag);
    let runtime = PathBuf::from("/var/run/dpdk").join(&prefix);
    let _runtime_guard = RemoveDirOnDrop(runtime.clone());
    let mut args = vec![
        "-l".to_string(),
        format!("{},{}", env.ctl_cpu, env.dp_cpu),
        "--main-lcore".into(),
        env.ctl_cpu.to_string(),
        "--no-pci".into(),
        "--file-prefix".into(),
        prefix,
        "--log-level=lib.eal:error".into(),
    ];
    args.extend(eal_memory_args(env));
    args.extend([
        "--vdev".into(),
        format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()),
        "--vdev".into(),
        NULL_DEVARGS.into(),
        "--".into(),
        "--forward-mode=io".into(),
        "--nb-cores=1".into(),
        "--rxq=1".into(),
        "--txq=1".into(),
        "--total-num-mbufs=262144".into(),
        "--auto-start".into(),
    ]);
    let log = env.work.join(format!("testpmd-{n}.log"));
    let cpus = format!("{},{}", env.ctl_cpu, env.dp_cpu);
    let mut tp = spawn_in(env, &cpus, "dpdk-testpmd", &args, &[], &log)?;
    let sock = runtime.join("dpdk_telemetry.v2");
    // testpmd's stdout is a file, so block-buffered: readiness is read from telemetry (the
    // null port transmitting), not from its messages.
    let mut tel = None;
    let started = wait_for("testpmd to forward", Duration::from_secs(30), || {
        if tel.is_none() && sock.exists() {
            tel = Telemetry::connect(&sock).ok();
        }
        tel.as_mut()
            .is_some_and(|t| t.stat(1, "opackets").is_ok_and(|n| n > 0))
            || !tp.is_running()
    });
    let Some(mut tel) = tel.filter(|_| started.is_ok() && tp.is_running()) else {
        bail!("testpmd did not start forwarding: {}", log_tail(&log, 8));
    };
    // Port 0 is net_pcap0, port 1 net_null0 (their --vdev order).
    let w = measure(env, || {
        Ok((tel.stat(0, "ipackets")?, tel.stat(1, "opackets")?))
    })?;
    if !tp.is_running() {
        bail!("testpmd exited: {}", log_tail(&log, 8));
    }
    // SIGINT: testpmd stops its ports and cleans up.
    drop(tel);
    let child_stop = tp.stop_with(Signal::SIGINT, Duration::from_secs(10));
    if let Err(e) = child_stop {
        eprintln!("xvs-bench pipeline: stopping testpmd: {e:#}");
    }
    Ok(w)
}

/// DPDK's telemetry socket (`SOCK_SEQPACKET`, JSON replies).
struct Telemetry(std::os::fd::OwnedFd);

impl Telemetry {
    fn connect(path: &Path) -> Result<Self> {
        use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(path)?)
            .with_context(|| format!("connect {}", path.display()))?;
        let t = Self(fd);
        t.recv()?; // the greeting
        Ok(t)
    }

    fn recv(&self) -> Result<serde_json::Value> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = nix::unistd::read(&self.0, &mut buf)?;
        serde_json::from_slice(&buf[..n]).context("telemetry reply")
    }

    fn stat(&mut self, port: u16, name: &str) -> Result<u64> {
        let cmd = format!("/ethdev/stats,{port}");
        nix::unistd::write(&self.0, cmd.as_bytes())?;
        let v = self.recv()?;
        v.get("/ethdev/stats")
            .and_then(|s| s.get(name))
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("telemetry {cmd}: no {name} in {v}"))
    }
}

// ---------------------------------------------------------------- OpenFlow switches

/// `ovs-ofctl -O OpenFlow15 ARGS unix:<run>/<bridge>.mgmt ...`.
fn ofctl(run: &Path, cmd: &str, args: &[&str]) -> Result<String> {
    let target = format!("unix:{}", run.join(format!("{BRIDGE}.mgmt")).display());
    let out = Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow15", cmd, &target])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("ovs-ofctl")?;
    if !out.status.success() {
        bail!(
            "ovs-ofctl {cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Port 1's rx and port 2's tx packets from `ovs-ofctl dump-ports`.
fn port_counters(run: &Path) -> Result<(u64, u64)> {
    let text = ofctl(run, "dump-ports", &[])?;
    parse_dump_ports(&text).with_context(|| format!("dump-ports: {text}"))
}

/// `port  1: rx pkts=N, ...` / `tx pkts=M, ...` lines; returns (rx of port 1, tx of port 2).
fn parse_dump_ports(text: &str) -> Option<(u64, u64)> {
    let mut cur = None;
    let (mut rx1, mut tx2) = (None, None);
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("port") {
            cur = rest
                .split(':')
                .next()
                .and_then(|p| p.trim().parse::<u32>().ok());
        }
        let pkts = |key: &str| -> Option<u64> {
            let i = t.find(key)?;
            t[i + key.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        if let Some(r) = t.contains("rx pkts=").then(|| pkts("rx pkts=")).flatten() {
            if cur == Some(1) {
                rx1 = Some(r);
            }
        }
        if let Some(x) = t.contains("tx pkts=").then(|| pkts("tx pkts=")).flatten() {
            if cur == Some(2) {
                tx2 = Some(x);
            }
        }
    }
    Some((rx1?, tx2?))
}

fn vsctl(db: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{}", db.display()))
        .arg("--timeout=60")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("ovs-vsctl")?;
    if !out.status.success() {
        bail!(
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run_ovs(
    env: &Env,
    pcap: &Path,
    flows: Option<&Path>,
    cache: Option<OvsCache>,
    n: usize,
) -> Result<Window> {
    let flows = flows.context("OVS needs a scenario")?;
    let run = env.work.join(format!("ovs-{n}"));
    fs::create_dir_all(&run)?;
    let prefix = format!("{}ovs{n}", env.tag);
    let _runtime_guard = RemoveDirOnDrop(PathBuf::from("/var/run/dpdk").join(&prefix));
    let ovs_env = |c: &mut Command| {
        for k in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(k, &run);
        }
    };
    let db = run.join("conf.db");
    let mut c = Command::new("ovsdb-tool");
    ovs_env(&mut c);
    if !c.arg("create").arg(&db).arg(SCHEMA).status()?.success() {
        bail!("ovsdb-tool create failed");
    }
    let r = run.display();
    let ctl = env.ctl_cpu.to_string();
    // The daemons find their run directory (bridge sockets) through OVS_*.
    let ovs_vars: Vec<(&str, &Path)> = ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"]
        .into_iter()
        .map(|k| (k, run.as_path()))
        .collect();
    let sock = run.join("db.sock");
    let ovsdb = spawn_in(
        env,
        &ctl,
        "ovsdb-server",
        &[
            db.display().to_string(),
            format!("--remote=punix:{r}/db.sock"),
            format!("--pidfile={r}/ovsdb-server.pid"),
            format!("--unixctl={r}/ovsdb-server.ctl"),
            format!("--log-file={r}/ovsdb-server.log"),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ],
        &ovs_vars,
        &run.join("ovsdb-server.out"),
    )?;
    wait_for("ovsdb-server's socket", Duration::from_secs(20), || {
        sock.exists()
    })?;
    vsctl(&sock, &["--no-wait", "init"])?;
    let huge = env.huge_dir.as_ref().context("OVS-DPDK needs hugepages")?;
    let extra = format!(
        "other_config:dpdk-extra=--no-pci --file-prefix={prefix} --huge-dir {} --log-level=lib.eal:error",
        huge.display()
    );
    let mut set = vec![
        "--no-wait".to_string(),
        "set".into(),
        "Open_vSwitch".into(),
        ".".into(),
        "other_config:dpdk-init=true".into(),
        format!("other_config:dpdk-lcore-mask={:#x}", 1u64 << env.ctl_cpu),
        format!("other_config:pmd-cpu-mask={:#x}", 1u64 << env.dp_cpu),
        "other_config:dpdk-socket-mem=1536".into(),
        extra,
    ];
    set.extend(
        cache
            .unwrap_or(OvsCache::Emc)
            .other_config()
            .iter()
            .map(|s| s.to_string()),
    );
    let set_refs: Vec<&str> = set.iter().map(String::as_str).collect();
    vsctl(&sock, &set_refs)?;
    let vswitchd = spawn_in(
        env,
        &ctl,
        OVS_DPDK,
        &[
            format!("unix:{r}/db.sock"),
            format!("--pidfile={r}/ovs-vswitchd.pid"),
            format!("--unixctl={r}/ovs-vswitchd.ctl"),
            format!("--log-file={r}/ovs-vswitchd.log"),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ],
        &ovs_vars,
        &run.join("ovs-vswitchd.out"),
    )?;
    let mut guard = OvsRun {
        vswitchd: Some(vswitchd),
        ovsdb: Some(ovsdb),
        run: run.clone(),
    };
    let log = run.join("ovs-vswitchd.log");
    let ready = wait_for(
        "ovs-vswitchd-dpdk's DPDK init",
        Duration::from_secs(60),
        || {
            vsctl(&sock, &["get", "Open_vSwitch", ".", "dpdk_initialized"])
                .is_ok_and(|v| v == "true")
        },
    );
    if let Err(e) = ready {
        bail!("{e}: {}", log_tail(&log, 10));
    }
    vsctl(
        &sock,
        &[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "protocols=OpenFlow10,OpenFlow13,OpenFlow15",
            "fail_mode=secure",
        ],
    )?;
    let add_port = |name: &str, devargs: &str, ofport: u32| -> Result<()> {
        vsctl(
            &sock,
            &[
                "add-port",
                BRIDGE,
                name,
                "--",
                "set",
                "interface",
                name,
                "type=dpdk",
                &format!("options:dpdk-devargs={devargs}"),
                &format!("ofport_request={ofport}"),
            ],
        )?;
        let err = vsctl(&sock, &["get", "interface", name, "error"])?;
        let of = vsctl(&sock, &["get", "interface", name, "ofport"])?;
        if of != ofport.to_string() || !(err.is_empty() || err == "[]") {
            bail!(
                "OVS port {name}: ofport {of}, error {err}\n{}",
                log_tail(&log, 10)
            );
        }
        Ok(())
    };
    add_port("null0", NULL_DEVARGS, 2)?;
    // Flows before the pcap port: no datapath flow is ever built under other rules.
    ofctl(&run, "del-flows", &[])?;
    ofctl(&run, "add-flows", &[&flows.display().to_string()])
        .with_context(|| format!("load {}", flows.display()))?;
    add_port(
        "pcap0",
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()),
        1,
    )?;
    let _ = appctl(&run, &["dpif-netdev/pmd-stats-clear"]);
    let mut w = measure(env, || port_counters(&run))?;
    if let Ok(stats) = appctl(&run, &["dpif-netdev/pmd-stats-show"]) {
        fs::write(run.join("pmd-stats.txt"), &stats)?;
        w.note = pmd_summary(&stats);
    }
    guard.stop();
    Ok(w)
}

fn appctl(run: &Path, args: &[&str]) -> Result<String> {
    appctl_at(&run.join("ovs-vswitchd.ctl"), args)
}

/// `ovs-appctl -t <ctl socket> ARGS` (OVS's and xvsd's unixctl servers alike).
fn appctl_at(ctl: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("ovs-appctl")
        .arg("-t")
        .arg(ctl)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "ovs-appctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The PMD's cache hit split, passes per packet and cycles per packet from `pmd-stats-show`
/// (the PMD thread's block; hits count datapath passes).
fn pmd_summary(stats: &str) -> String {
    let block = stats.split("main thread").next().unwrap_or("");
    let value = |key: &str| -> Option<f64> {
        let l = block.lines().find(|l| l.trim().starts_with(key))?;
        l.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
    };
    let keys = [
        ("simple", "simple match hits"),
        ("emc", "emc hits"),
        ("smc", "smc hits"),
        ("megaflow", "megaflow hits"),
        ("upcall", "miss with success upcall"),
    ];
    let hits: Vec<(&str, f64)> = keys
        .iter()
        .filter_map(|(n, k)| value(k).map(|v| (*n, v)))
        .collect();
    let total: f64 = hits.iter().map(|h| h.1).sum();
    let mut out: Vec<String> = Vec::new();
    if total > 0.0 {
        out.push(format!(
            "hits {}",
            hits.iter()
                .map(|(n, v)| format!("{n} {:.1}%", 100.0 * v / total))
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    if let Some(p) = value("avg. datapath passes per packet") {
        out.push(format!("{p:.2} passes"));
    }
    if let Some(c) = value("avg processing cycles per packet") {
        out.push(format!("{c:.0} cyc/pkt"));
    }
    if let Some(l) = value("miss with failed upcall").filter(|l| *l > 0.0) {
        out.push(format!("{l} lost upcalls"));
    }
    out.join(" ")
}

/// A running OVS: `exit --cleanup`, waited for, before any signal (see the reference's
/// gotchas), then ovsdb-server.
struct OvsRun {
    vswitchd: Option<Guarded>,
    ovsdb: Option<Guarded>,
    run: PathBuf,
}

impl OvsRun {
    fn stop(&mut self) {
        if let Some(mut v) = self.vswitchd.take() {
            let _ = appctl(&self.run, &["exit", "--cleanup"]);
            let deadline = Instant::now() + Duration::from_secs(15);
            while v.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(v);
        }
        drop(self.ovsdb.take());
    }
}

impl Drop for OvsRun {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_xvsd(env: &Env, pcap: &Path, flows: Option<&Path>, n: usize) -> Result<Window> {
    let flows = flows.context("xvsd needs a scenario")?;
    let run = env.work.join(format!("xvsd-{n}"));
    fs::create_dir_all(&run)?;
    let memory = match &env.huge_dir {
        Some(d) => format!(
            "memory_mb = 512\nextra_args = [\"--huge-dir\", \"{}\", \"--log-level=lib.eal:error\"]",
            d.display()
        ),
        None => {
            "no_huge = true\nmemory_mb = 512\nextra_args = [\"--log-level=lib.eal:error\"]".into()
        }
    };
    let config = format!(
        "bridge = \"{BRIDGE}\"\nrun_dir = \"{}\"\nworkers = [{}]\nforwarding = \"openflow\"\n\n\
         [dpdk]\ncores = \"{}\"\n{memory}\n\n\
         [[port]]\nname = \"pcap0\"\ntype = \"dpdk\"\nofport = 1\ndevargs = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\n\
         [[port]]\nname = \"null0\"\ntype = \"dpdk\"\nofport = 2\ndevargs = \"{NULL_DEVARGS}\"\n",
        run.display(),
        env.dp_cpu,
        env.ctl_cpu,
        pcap.display()
    );
    measure_xvsd(env, &run, &config, Some(flows), false)
}

/// xvsd on its in-memory ports: `replay` loads `pcap` at start and waits (paused) until the
/// flows are in, then loops over it forever; `null` frees. `flows` = None: the io-flow ceiling.
fn run_xvsd_mem(env: &Env, pcap: &Path, flows: Option<&Path>, n: usize) -> Result<Window> {
    let run = env.work.join(format!("xvsd-mem-{n}"));
    fs::create_dir_all(&run)?;
    let config = format!(
        "bridge = \"{BRIDGE}\"\nrun_dir = \"{}\"\nworkers = [{}]\nforwarding = \"openflow\"\n\
         runtime_ports = 0\n\n\
         [[port]]\nname = \"pcap0\"\ntype = \"replay\"\nofport = 1\npcap = \"{}\"\npaused = true\n\n\
         [[port]]\nname = \"null0\"\ntype = \"null\"\nofport = 2\n",
        run.display(),
        env.dp_cpu,
        pcap.display()
    );
    measure_xvsd(env, &run, &config, flows, true)
}

/// Starts xvsd with `config` in `run`, loads `flows` (None: the io flow), starts the replay
/// ports when asked (flows first, then traffic, as OVS gets its pcap port after its flows),
/// measures one window from port 2's counters and stops it.
fn measure_xvsd(
    env: &Env,
    run: &Path,
    config: &str,
    flows: Option<&Path>,
    start_replay: bool,
) -> Result<Window> {
    let cfg = run.join("xvsd.toml");
    fs::write(&cfg, config)?;
    let log = run.join("xvsd.log");
    // xvsd pins its worker itself and refuses a core outside its affinity mask, so it gets
    // both cores; its other threads are idle in a steady state.
    let mut x = spawn_in(
        env,
        &format!("{},{}", env.ctl_cpu, env.dp_cpu),
        &env.xvsd.display().to_string(),
        &["--config".into(), cfg.display().to_string()],
        &[],
        &log,
    )?;
    let mgmt = run.join(format!("{BRIDGE}.mgmt"));
    let up = wait_for("xvsd's OpenFlow socket", Duration::from_secs(60), || {
        mgmt.exists() || !x.is_running()
    });
    if up.is_err() || !x.is_running() {
        bail!("xvsd did not start: {}", log_tail(&log, 10));
    }
    ofctl(run, "del-flows", &[])?;
    match flows {
        Some(f) => ofctl(run, "add-flows", &[&f.display().to_string()])
            .with_context(|| format!("load {} into xvsd", f.display()))?,
        None => ofctl(run, "add-flow", &[IO_FLOW])?,
    };
    let ctl = run.join("xvsd.ctl");
    if start_replay {
        appctl_at(&ctl, &["xvs/replay-start"])?;
    }
    let _ = appctl_at(&ctl, &["dpif-netdev/pmd-stats-clear"]);
    let mut w = measure(env, || port_counters(run))?;
    if !x.is_running() {
        bail!("xvsd exited: {}", log_tail(&log, 10));
    }
    // xvsd answers OVS's pmd-stats-show in OVS's format (exact-match tier as "emc").
    if let Ok(stats) = appctl_at(&ctl, &["dpif-netdev/pmd-stats-show"]) {
        fs::write(run.join("pmd-stats.txt"), &stats)?;
        w.note = pmd_summary(&stats);
    }
    if let Ok(text) = appctl_at(&ctl, &["xvs/show"]) {
        fs::write(run.join("xvs-show.txt"), &text)?;
        let unsupported: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("unsupported") && !l.trim_end().ends_with(" 0"))
            .collect();
        if !unsupported.is_empty() {
            w.note = format!("{} unsupported: {}", w.note, unsupported.join("; "));
        }
    }
    x.stop(Duration::from_secs(15))?;
    Ok(w)
}

// ---------------------------------------------------------------- report

#[derive(Debug)]
struct Info {
    command: String,
    memory: String,
    load_start: String,
    load_end: String,
    xvsd: PathBuf,
    secs: f64,
    warmup: f64,
    reps: usize,
    dp_cpu: usize,
    ctl_cpu: usize,
}

fn dpkg(pkg: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", pkg])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "-".into())
}

type Key = (Option<PipeScenario>, Pcap, String);

fn write_outputs(out: &Path, samples: &[Sample], info: &Info) -> Result<()> {
    let mut csv = String::from("scenario,pcap,peer,rep,fwd_mpps,rx_mpps,status,note\n");
    for s in samples {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.4},{:.4},{},{}",
            s.cell.scenario.map_or("io-fwd", |x| x.name()),
            s.cell.pcap,
            s.cell.peer_name(),
            s.rep + 1,
            s.fwd_mpps,
            s.rx_mpps,
            s.status,
            s.note.replace(',', ";")
        );
    }
    fs::write(out.join("pipeline.csv"), csv)?;

    let mut groups: BTreeMap<Key, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups
            .entry((s.cell.scenario, s.cell.pcap, s.cell.peer_name()))
            .or_default()
            .push(s);
    }
    let summary = |k: &Key| -> Option<(Summary, usize, usize)> {
        let v = groups.get(k)?;
        let ok: Vec<f64> = v
            .iter()
            .filter(|s| s.status == "ok")
            .map(|s| s.fwd_mpps)
            .collect();
        summarize(&ok).map(|s| (s, ok.len(), v.len()))
    };
    let testpmd = |p: Pcap| summary(&(None, p, "testpmd".into())).map(|x| x.0.median);
    let best_ovs = |sc: PipeScenario, p: Pcap| -> Option<(f64, String)> {
        groups
            .keys()
            .filter(|k| k.0 == Some(sc) && k.1 == p && k.2.starts_with("ovs"))
            .filter_map(|k| summary(k).map(|s| (s.0.median, k.2.clone())))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };

    let mut md = String::from(
        "# xvs-bench pipeline: the userspace pipeline alone (net_pcap -> switch -> net_null)\n\n",
    );
    let has_mem = samples.iter().any(|s| s.cell.peer == PeerKind::XvsdMem);
    let _ = writeln!(md, "Command: `{}`\n", info.command);
    let _ = writeln!(
        md,
        "64-byte frames, one dataplane core (cpu{}), everything else on cpu{}; {} repetition(s), \
         interleaved; each window a fresh process: {:.0} s warm-up, {:.0} s measured. Mpps = \
         port 2 (null) tx over the window.\n",
        info.dp_cpu, info.ctl_cpu, info.reps, info.warmup, info.secs
    );
    if has_mem {
        let _ = writeln!(
            md,
            "`xvsd` is xvsd on DPDK's net_pcap and net_null; `xvsd-mem` is xvsd on its own \
             in-memory ports (a `replay` port holding the same pcap, one copy into a pool frame \
             per packet, and a `null` sink; no DPDK); `xvsd-mem-ioflow` (scenario io-fwd) is \
             xvsd-mem with the single flow `{IO_FLOW}`, its ceiling, as testpmd is the DPDK \
             peers'.\n"
        );
    }
    md.push_str("| scenario | pcap | peer | Mpps min / **median** / max | n | vs best OVS | vs testpmd | notes |\n|---|---|---|---|---|---|---|---|\n");
    let mut chart_groups: BTreeMap<(Option<PipeScenario>, Pcap), Vec<Bar>> = BTreeMap::new();
    let mut series: Vec<String> = Vec::new();
    for (k, v) in &groups {
        let (sc, p, peer) = k;
        let notes: Vec<String> = v
            .iter()
            .filter(|s| !s.note.is_empty())
            .map(|s| format!("rep {}: {}", s.rep + 1, s.note))
            .collect();
        let notes = notes.join("; ").replace('|', "/");
        let Some((s, n, total)) = summary(k) else {
            let _ = writeln!(
                md,
                "| {} | {p} | {peer} | failed | 0/{} | | | {notes} |",
                sc.map_or("io-fwd", |x| x.name()),
                v.len()
            );
            continue;
        };
        let vs_ovs = sc
            .and_then(|sc| best_ovs(sc, *p))
            .map(|(m, which)| format!("{:.2}x ({which})", s.median / m))
            .unwrap_or_default();
        let vs_tp = testpmd(*p)
            .map(|m| format!("{:.2}", s.median / m))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {p} | {peer} | {:.2} / **{:.2}** / {:.2} | {n}/{total} | {vs_ovs} | {vs_tp} | {notes} |",
            sc.map_or("io-fwd", |x| x.name()),
            s.min,
            s.median,
            s.max
        );
        if !series.contains(peer) {
            series.push(peer.clone());
        }
        chart_groups.entry((*sc, *p)).or_default().push(Bar {
            series: peer.clone(),
            min: s.min,
            median: s.median,
            max: s.max,
        });
    }
    md.push_str(
        "\n## Against the targets of issue 7 (best xvsd backend median / best OVS median)\n\n",
    );
    md.push_str(
        "| target | cell | xvsd (backend) | best OVS | ratio | goal | met |\n|---|---|---|---|---|---|---|\n",
    );
    // The better of xvsd on DPDK and xvsd on its in-memory ports, named.
    let best_xvsd = |sc: PipeScenario, p: Pcap| -> Option<(f64, String)> {
        ["xvsd", "xvsd-mem"]
            .iter()
            .filter_map(|peer| {
                summary(&(Some(sc), p, peer.to_string())).map(|s| (s.0.median, peer.to_string()))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let targets = [
        ("l2", PipeScenario::L2, Pcap::Udp100kFlow, 1.5),
        (
            "l3 1k rules, 100k flows",
            PipeScenario::L3_1k,
            Pcap::Udp100kFlow,
            2.0,
        ),
        (
            "conntrack, established TCP",
            PipeScenario::Ct,
            Pcap::Tcp1kConnNoFin,
            3.0,
        ),
        (
            "antrea-like, 1 % new",
            PipeScenario::AntreaLike,
            Pcap::Tcp1kConn,
            3.0,
        ),
    ];
    for (name, sc, p, goal) in targets {
        let x = best_xvsd(sc, p);
        let o = best_ovs(sc, p);
        match (x.clone(), o.clone()) {
            (Some((x, backend)), Some((o, which))) => {
                let r = x / o;
                let _ = writeln!(
                    md,
                    "| {name} | {sc} / {p} | {x:.2} ({backend}) | {o:.2} ({which}) | {r:.2}x | {goal}x | {} |",
                    if r >= goal { "yes" } else { "no" }
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "| {name} | {sc} / {p} | {} | {} | - | {goal}x | not measured |",
                    x.map_or("-".into(), |v| format!("{:.2} ({})", v.0, v.1)),
                    o.map_or("-".into(), |v| format!("{:.2}", v.0))
                );
            }
        }
    }
    md.push_str("\n## Machine and versions\n\n");
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let git = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    for (k, v) in [
        ("cpu", cpu),
        ("kernel", kernel.trim().to_string()),
        ("xvsd", format!("{} (git {git})", info.xvsd.display())),
        ("openvswitch-switch-dpdk", dpkg("openvswitch-switch-dpdk")),
        ("openvswitch-common (ovs-ofctl)", dpkg("openvswitch-common")),
        (
            "dpdk (testpmd), librte-net-pcap23",
            format!("{}, {}", dpkg("dpdk"), dpkg("librte-net-pcap23")),
        ),
        ("memory", info.memory.clone()),
        (
            "load average start / end",
            format!("{} / {}", info.load_start, info.load_end),
        ),
    ] {
        let _ = writeln!(md, "- {k}: {v}");
    }
    fs::write(out.join("pipeline.md"), &md)?;
    print!("{md}");
    let _ = std::io::stdout().flush();

    let chart = Chart {
        title: "pipeline only: pcap in memory -> switch -> null sink, one core (Mpps)".into(),
        y_label: "Mpps".into(),
        series,
        groups: chart_groups
            .into_iter()
            .map(|((sc, p), bars)| Group {
                name: format!("{}/{p}", sc.map_or("io", |s| s.name())),
                bars,
            })
            .collect(),
    };
    if !chart.groups.is_empty() {
        if let Err(e) = plot::write_svg(&out.join("pipeline.svg"), &chart)
            .and_then(|()| plot::write_png(&out.join("pipeline.png"), &chart))
        {
            eprintln!("xvs-bench pipeline: plot: {e:#}");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dump_ports_counters() {
        let text = "OFPST_PORT reply (OF1.5) (xid=0x2): 2 ports\n  port  1: rx pkts=1234, bytes=74040, drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=0, bytes=0, drop=0, errs=0, coll=0\n           duration=3.2s\n  port  2: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=1200, bytes=72000, drop=0, errs=0, coll=0\n";
        assert_eq!(parse_dump_ports(text), Some((1234, 1200)));
        assert_eq!(parse_dump_ports("port  1: rx pkts=5"), None);
    }

    #[test]
    fn report_names_xvsd_mem_rows_and_takes_the_best_xvsd_backend() {
        let cell = |scenario, peer, cache| Cell {
            scenario,
            pcap: Pcap::Udp100kFlow,
            peer,
            cache,
        };
        let sample = |cell, rep, fwd_mpps| Sample {
            cell,
            rep,
            fwd_mpps,
            rx_mpps: fwd_mpps,
            status: "ok",
            note: String::new(),
        };
        let l2 = Some(PipeScenario::L2);
        let mut samples = Vec::new();
        for rep in 0..3 {
            let r = rep as f64 * 0.1;
            samples.push(sample(cell(l2, PeerKind::Xvsd, None), rep, 4.0 + r));
            samples.push(sample(cell(l2, PeerKind::XvsdMem, None), rep, 6.0 + r));
            samples.push(sample(
                cell(l2, PeerKind::Ovs, Some(OvsCache::Smc)),
                rep,
                10.0 + r,
            ));
            samples.push(sample(cell(None, PeerKind::XvsdMem, None), rep, 20.0 + r));
        }
        let out = std::env::temp_dir().join(format!("xvs-pipeline-report-{}", std::process::id()));
        fs::create_dir_all(&out).unwrap();
        let info = Info {
            command: "test".into(),
            memory: "-".into(),
            load_start: "0".into(),
            load_end: "0".into(),
            xvsd: PathBuf::from("xvsd"),
            secs: 1.0,
            warmup: 1.0,
            reps: 3,
            dp_cpu: 1,
            ctl_cpu: 0,
        };
        write_outputs(&out, &samples, &info).unwrap();
        let md = fs::read_to_string(out.join("pipeline.md")).unwrap();
        let csv = fs::read_to_string(out.join("pipeline.csv")).unwrap();
        fs::remove_dir_all(&out).unwrap();
        assert!(
            md.contains("| l2 | udp-100kflow | xvsd | 4.00 / **4.10** / 4.20 |"),
            "{md}"
        );
        assert!(
            md.contains("| l2 | udp-100kflow | xvsd-mem | 6.00 / **6.10** / 6.20 |"),
            "{md}"
        );
        assert!(
            md.contains("| io-fwd | udp-100kflow | xvsd-mem-ioflow | 20.00 / **20.10** / 20.20 |"),
            "{md}"
        );
        assert!(
            md.contains("| l2 | l2 / udp-100kflow | 6.10 (xvsd-mem) | 10.10 (ovs-smc) | 0.60x | 1.5x | no |"),
            "{md}"
        );
        assert!(
            csv.contains("\nio-fwd,udp-100kflow,xvsd-mem-ioflow,1,20.0000,"),
            "{csv}"
        );
        assert!(csv.contains("\nl2,udp-100kflow,xvsd,2,4.1000,"), "{csv}");
    }

    #[test]
    fn pmd_stats_split() {
        let s = "pmd thread numa_id 0 core_id 1:\n  packets received: 100\n  avg. datapath passes per packet: 2.00\n  simple match hits: 0\n  emc hits: 150\n  smc hits: 0\n  megaflow hits: 50\n  miss with success upcall: 0\n  miss with failed upcall: 0\n  avg processing cycles per packet: 611.44 (6788285437/11102176)\nmain thread:\n  emc hits: 7\n";
        assert_eq!(
            pmd_summary(s),
            "hits simple 0.0% / emc 75.0% / smc 0.0% / megaflow 25.0% / upcall 0.0% 2.00 passes 611 cyc/pkt"
        );
    }
}
