//! The `io` benchmark: builds the topology, runs every peer `--reps` times per flow count
//! (repetitions interleaved across peers, since the VM is noisy), prints a table, writes a CSV.

use crate::bpf;
use crate::generator::{self, GenSpec};
use crate::measure::{fmt_opt, median_of, summarize, CpuTimes, IfCounters, NetDev};
use crate::peers::{log_tail, CtSnapshot, Peer, PeerEnv, Running};
use crate::process::Reniced;
use crate::sys;
use crate::topology::{self, Topology, NODE_PORTS};
use anyhow::{bail, Context, Result};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `xvs-bench io`.
#[derive(Debug, clap::Args)]
pub struct IoArgs {
    /// Repetitions per peer and flow count (interleaved across peers).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Measurement window, seconds (after the warm-up).
    #[arg(long, default_value_t = 5)]
    pub secs: u32,
    /// Warm-up before the window, seconds.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Flow counts (UDP source ports rotated per frame).
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
    pub flows: Vec<u32>,
    /// Peers to run, in this order within each repetition.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "offered,xvsd,xvsd-dpdk,testpmd,xdp"
    )]
    pub peers: Vec<Peer>,
    /// The xvsd binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/xvsd"))]
    pub xvsd: PathBuf,
    /// Also write every run as a CSV row to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Core for the dataplane under test.
    #[arg(long, default_value_t = 0)]
    pub dp_cpu: usize,
    /// Core for the generator (and the harness).
    #[arg(long, default_value_t = 1)]
    pub gen_cpu: usize,
    /// Keep the working directory (configs and logs) instead of deleting it.
    #[arg(long)]
    pub keep_logs: bool,
}

/// What one UDP measurement needs from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: u32,
    pub secs: u32,
    pub dp_cpu: usize,
    pub gen_cpu: usize,
}

impl IoArgs {
    fn window(&self) -> Window {
        Window {
            warmup: self.warmup,
            secs: self.secs,
            dp_cpu: self.dp_cpu,
            gen_cpu: self.gen_cpu,
        }
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub rep: usize,
    pub peer: Peer,
    pub flows: u32,
    pub window_s: f64,
    /// Forwarded rate at pod-b (rx_packets), Mpps.
    pub fwd_mpps: f64,
    /// Offered rate at pod-a (tx_packets + tx_dropped), Mpps.
    pub offered_mpps: f64,
    /// Frames the switch port pa0 dropped on receive (veth/XSK ring full), Mpps.
    pub pa0_rx_dropped_mpps: f64,
    pub dp_busy: Option<f64>,
    pub gen_busy: Option<f64>,
    /// The dataplane core's user / system / softirq percentages.
    pub dp_split: Option<[f64; 3]>,
    /// The generator was still sending at the end of the window.
    pub gen_ok: bool,
    /// The peer was still up at the end of the window.
    pub peer_ok: bool,
    /// Frames offered from the generator's start to the window's end.
    pub offered_frames: u64,
    /// New-connection runs on a peer with a connection tracker: the tracker over the window.
    pub ct: Option<CtWindow>,
}

/// A connection tracker read at both ends of a measurement window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtWindow {
    pub start: CtSnapshot,
    pub end: CtSnapshot,
    /// Seconds between the midpoints of the two reads.
    pub secs: f64,
}

impl CtWindow {
    /// Connections created per second over the window, millions: xvsd's `created` counter
    /// where both reads have it, else the growth of the table (no UDP connection expires
    /// within a window: both trackers keep a first packet's connection for 30 s or more).
    pub fn created_mps(&self) -> f64 {
        let d = match (self.start.created, self.end.created) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.end.connections.saturating_sub(self.start.connections),
        };
        if self.secs > 0.0 {
            d as f64 / self.secs / 1e6
        } else {
            0.0
        }
    }

    /// Commits refused in the window because the table was full (xvsd only).
    pub fn refused(&self) -> Option<u64> {
        Some(self.end.full?.saturating_sub(self.start.full?))
    }
}

/// A run that produced no sample.
#[derive(Debug, Clone)]
struct Failure {
    rep: usize,
    peer: Peer,
    flows: u32,
    error: String,
}

/// Deletes the working directory on drop unless asked to keep it.
#[derive(Debug)]
pub struct WorkDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("xvs-bench: logs kept in {}", self.path.display());
        } else if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("xvs-bench: cleanup of {}: {e}", self.path.display());
        }
    }
}

/// Sleeps in small steps so that SIGINT/SIGTERM interrupt the run promptly.
pub fn sleep_checked(stop: &AtomicBool, d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        // Relaxed: the flag carries no data, it is only polled.
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    Ok(())
}

pub fn run(args: &IoArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (namespaces, XDP and BPF_PROG_TEST_RUN need it)");
    }
    if args.reps == 0 || args.secs == 0 || args.flows.is_empty() || args.peers.is_empty() {
        bail!("--reps, --secs, --flows and --peers must be non-empty / positive");
    }
    if args.flows.contains(&0) {
        bail!("--flows: each flow count must be at least 1");
    }
    if args.dp_cpu == args.gen_cpu {
        bail!("--dp-cpu and --gen-cpu must differ");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    // nice -20 for the harness and, by inheritance, everything it starts.
    if let Err(e) = sys::set_nice(0, -20) {
        eprintln!("xvs-bench: warning: nice -20 failed: {e}");
    }
    let _softirq_nice = Reniced::threads("ksoftirqd/", -20);
    let mut cpus = CpuSet::new();
    cpus.set(args.gen_cpu).context("--gen-cpu")?;
    sched_setaffinity(Pid::from_raw(0), &cpus)
        .with_context(|| format!("pin harness to cpu{}", args.gen_cpu))?;

    let stale = topology::stale_namespaces();
    if !stale.is_empty() {
        eprintln!(
            "xvs-bench: note: namespaces of dead runs exist ({}); `xvs-bench cleanup` removes them",
            stale.join(", ")
        );
    }
    let tag = format!("{}{}", topology::PREFIX, std::process::id());
    let work = WorkDir {
        path: std::env::temp_dir().join(&tag),
        keep: args.keep_logs,
    };
    fs::create_dir_all(&work.path).with_context(|| format!("create {}", work.path.display()))?;

    eprintln!("xvs-bench: building namespaces {tag}-a, {tag}-n, {tag}-b");
    let topo = Topology::build(&tag)?;
    let _sink = topo
        .pod_b
        .enter(|| bpf::attach_sink(&["eth0", "d0"]))
        .context("attach the sink to pod-b")?;
    let mut dev_a = NetDev::open(&topo.pod_a)?;
    let mut dev_b = NetDev::open(&topo.pod_b)?;
    let mut dev_n = NetDev::open(&topo.node)?;

    let env = PeerEnv {
        topo: &topo,
        dp_cpu: args.dp_cpu,
        work: &work.path,
        xvsd: &args.xvsd,
        tag: &tag,
        stop: &stop,
        flows: None,
        ct_max: None,
    };
    let mut peers = Vec::new();
    for &p in &args.peers {
        match p.unavailable(&env) {
            Some(why) => eprintln!("xvs-bench: skipping peer {p}: {why}"),
            None if !peers.contains(&p) => peers.push(p),
            None => {}
        }
    }

    let mut samples = Vec::new();
    let mut failures = Vec::new();
    let mut run_no = 0;
    for rep in 1..=args.reps {
        for &flows in &args.flows {
            for &peer in &peers {
                run_no += 1;
                let run = Run {
                    rep,
                    run_no,
                    peer,
                    flows,
                    new_conns: false,
                };
                let res = measure_one(
                    &args.window(),
                    &env,
                    [&mut dev_a, &mut dev_b, &mut dev_n],
                    &run,
                );
                // Relaxed: the flag carries no data, it is only polled.
                if stop.load(Ordering::Relaxed) {
                    print!("{}", table(args, &peers, &samples, &failures));
                    bail!("interrupted; partial results above; cleaning up");
                }
                match res {
                    Ok(s) => {
                        eprintln!(
                            "rep {rep}/{} {peer:>8} {flows:>5} flows: {:.3} Mpps fwd, {:.3} Mpps offered, cpu{} {:.0}% cpu{} {:.0}%{}{}",
                            args.reps,
                            s.fwd_mpps,
                            s.offered_mpps,
                            args.dp_cpu,
                            s.dp_busy.unwrap_or(f64::NAN),
                            args.gen_cpu,
                            s.gen_busy.unwrap_or(f64::NAN),
                            if s.gen_ok { "" } else { " [generator ended early]" },
                            if s.peer_ok { "" } else { " [peer died]" },
                        );
                        samples.push(s);
                    }
                    Err(e) => {
                        eprintln!(
                            "rep {rep}/{} {peer:>8} {flows:>5} flows: FAILED: {e:#}",
                            args.reps
                        );
                        failures.push(Failure {
                            rep,
                            peer,
                            flows,
                            error: format!("{e:#}"),
                        });
                    }
                }
            }
        }
    }

    print!("{}", table(args, &peers, &samples, &failures));
    if let Some(path) = &args.csv {
        write_csv(path, &samples, &failures)?;
        eprintln!("xvs-bench: wrote {}", path.display());
    }
    Ok(())
}

/// Which run this is.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Repetition, from 1.
    pub rep: usize,
    /// Run number over the whole session, from 1 (names logs and configs).
    pub run_no: usize,
    pub peer: Peer,
    pub flows: u32,
    /// Every frame opens a new connection (the generator's `--new-conns`); the peer's
    /// connection tracker is flushed first and read at both ends of the window.
    pub new_conns: bool,
}

/// Starts a peer on the node ports, after clearing any XDP program a previous peer left there.
pub fn start_peer(env: &PeerEnv<'_>, peer: Peer, run_no: usize) -> Result<Running> {
    if peer != Peer::Offered {
        env.topo.clear_node_xdp();
    }
    peer.start(env, run_no)
        .with_context(|| format!("start {peer}"))
}

/// One run: start the peer, measure (see [`measure_on`]), stop it.
fn measure_one(
    args: &Window,
    env: &PeerEnv<'_>,
    devs: [&mut NetDev; 3],
    run: &Run,
) -> Result<Sample> {
    let mut running = start_peer(env, run.peer, run.run_no)?;
    let sample = measure_on(args, env, devs, run, &mut running)?;
    let note = running.stop()?;
    if !note.is_empty() {
        eprintln!("xvs-bench: {}: {note}", run.peer);
    }
    Ok(sample)
}

/// One measurement on a running peer: start the generator, warm up, measure the window, stop
/// the generator.
pub fn measure_on(
    args: &Window,
    env: &PeerEnv<'_>,
    [dev_a, dev_b, dev_n]: [&mut NetDev; 3],
    run: &Run,
    running: &mut Running,
) -> Result<Sample> {
    let Run {
        rep,
        run_no,
        peer,
        flows,
        new_conns,
    } = *run;
    let (src, dst) = peer.endpoints();
    let gen_log = env.work.join(format!("gen-{run_no}.log"));
    if new_conns {
        // Every connection of the window must be new to the tracker, and the table start empty.
        running.ct_flush().context("flush the connection tracker")?;
    }
    let (_, a_start) = dev_a.read(src.ifname)?;
    // The generator's own bound: warm-up + window + 3 s; it is stopped right after the window.
    let spec = GenSpec {
        netns: env.topo.pod_a.name(),
        src,
        dst,
        cpu: args.gen_cpu,
        flows,
        new_conns,
        secs: args.warmup + args.secs + 3,
    };
    let mut gen = generator::spawn(&spec, &gen_log)?;
    sleep_checked(env.stop, Duration::from_secs(u64::from(args.warmup)))?;
    if !gen.is_running() {
        bail!(
            "generator ended during warm-up:\n{}",
            log_tail(&gen_log, 10)
        );
    }

    let pa0 = NODE_PORTS[0].0;
    let mut read = || -> Result<_> {
        let a = dev_a.read(src.ifname)?;
        let b = dev_b.read(dst.ifname)?;
        let n = dev_n.read(pa0)?;
        Ok((a, b, n, CpuTimes::read()?))
    };
    // The tracker's counters come from a control socket (a few ms per read): each read is
    // timed at its midpoint.
    let read_ct = |running: &Running| -> Result<Option<(Instant, CtSnapshot)>> {
        if !new_conns {
            return Ok(None);
        }
        let t0 = Instant::now();
        let snap = running.ct_snapshot()?;
        let t1 = Instant::now();
        Ok(snap.map(|s| (t0 + t1.duration_since(t0) / 2, s)))
    };
    let ((ta0, a0), (tb0, b0), (tn0, n0), cpu0) = read()?;
    let ct0 = read_ct(running)?;
    sleep_checked(env.stop, Duration::from_secs(u64::from(args.secs)))?;
    let ((ta1, a1), (tb1, b1), (tn1, n1), cpu1) = read()?;
    let ct1 = read_ct(running)?;
    let gen_ok = gen.is_running();
    let peer_ok = running.is_alive();

    if let Some(st) = gen.stop(Duration::from_secs(3))? {
        // The generator exits 0 when stopped by a signal; anything else is an error.
        if !st.success() {
            bail!("generator failed ({st}):\n{}", log_tail(&gen_log, 10));
        }
    }
    let offered = |c: &IfCounters| c.tx_packets + c.tx_dropped;
    let mpps =
        |d: u64, t0: Instant, t1: Instant| d as f64 / t1.duration_since(t0).as_secs_f64() / 1e6;
    let sample = Sample {
        rep,
        peer,
        flows,
        window_s: tb1.duration_since(tb0).as_secs_f64(),
        fwd_mpps: mpps(b1.rx_packets.saturating_sub(b0.rx_packets), tb0, tb1),
        offered_mpps: mpps(offered(&a1).saturating_sub(offered(&a0)), ta0, ta1),
        pa0_rx_dropped_mpps: mpps(n1.rx_dropped.saturating_sub(n0.rx_dropped), tn0, tn1),
        dp_busy: cpu0.busy_pct(&cpu1, args.dp_cpu),
        gen_busy: cpu0.busy_pct(&cpu1, args.gen_cpu),
        dp_split: cpu0.split_pct(&cpu1, args.dp_cpu),
        gen_ok,
        peer_ok,
        offered_frames: offered(&a1).saturating_sub(offered(&a_start)),
        ct: match (ct0, ct1) {
            (Some((t0, start)), Some((t1, end))) => Some(CtWindow {
                start,
                end,
                secs: t1.duration_since(t0).as_secs_f64(),
            }),
            _ => None,
        },
    };
    Ok(sample)
}

/// The summary table: per peer and flow count min / median / max forwarded Mpps, offered Mpps
/// and CPU (medians), then xvsd's median relative to testpmd and xdp.
fn table(args: &IoArgs, peers: &[Peer], samples: &[Sample], failures: &[Failure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nI/O ceiling, {}-byte frames, forwarded Mpps at pod-b ({} x {} s windows per cell)",
        generator::FRAME_LEN + 4,
        args.reps,
        args.secs
    );
    let _ = writeln!(
        out,
        "{:<9} {:>6} {:>5} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6}  notes",
        "peer",
        "flows",
        "runs",
        "min",
        "median",
        "max",
        "offered",
        format!("cpu{}%", args.dp_cpu),
        format!("cpu{}%", args.gen_cpu),
    );
    for &flows in &args.flows {
        for &peer in peers {
            let cell: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.peer == peer && s.flows == flows)
                .collect();
            let failed = failures
                .iter()
                .filter(|f| f.peer == peer && f.flows == flows)
                .count();
            let fwd: Vec<f64> = cell.iter().map(|s| s.fwd_mpps).collect();
            let sum = summarize(&fwd);
            let mut notes = Vec::new();
            if failed > 0 {
                notes.push(format!("{failed} failed"));
            }
            let early = cell.iter().filter(|s| !s.gen_ok).count();
            if early > 0 {
                notes.push(format!("{early} generator ended early"));
            }
            // ndo_xdp_xmit into pod-a's veth fails unless the switch port has an XDP program (or
            // GRO): a peer that never attached one gets no load at all.
            let idle = cell.iter().filter(|s| s.offered_mpps < 0.001).count();
            if idle > 0 {
                notes.push(format!("{idle} without offered load (no XDP on pa0?)"));
            }
            let died = cell.iter().filter(|s| !s.peer_ok).count();
            if died > 0 {
                notes.push(format!("{died} peer died"));
            }
            let _ = writeln!(
                out,
                "{:<9} {:>6} {:>5} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6}  {}",
                peer.name(),
                flows,
                cell.len(),
                fmt_opt(sum.map(|s| s.min), 3),
                fmt_opt(sum.map(|s| s.median), 3),
                fmt_opt(sum.map(|s| s.max), 3),
                fmt_opt(median_of(cell.iter().map(|s| s.offered_mpps)), 3),
                fmt_opt(median_of(cell.iter().filter_map(|s| s.dp_busy)), 0),
                fmt_opt(median_of(cell.iter().filter_map(|s| s.gen_busy)), 0),
                notes.join(", "),
            );
        }
    }
    let med = |peer: Peer, flows: u32| {
        median_of(
            samples
                .iter()
                .filter(|s| s.peer == peer && s.flows == flows)
                .map(|s| s.fwd_mpps),
        )
    };
    let _ = writeln!(out, "\nxvsd median relative to:");
    for &flows in &args.flows {
        let x = med(Peer::Xvsd, flows);
        let ratio = |other: Peer| match (x, med(other, flows)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(
            out,
            "  {flows:>5} flows: testpmd {}   xdp {}",
            ratio(Peer::Testpmd),
            ratio(Peer::Xdp)
        );
        let d = med(Peer::XvsdDpdk, flows);
        let dratio = |other: Peer| match (d, med(other, flows)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(
            out,
            "  {flows:>5} flows: xvsd-dpdk / testpmd {}   xvsd-dpdk / xvsd {}",
            dratio(Peer::Testpmd),
            dratio(Peer::Xvsd)
        );
    }
    out
}

fn write_csv(path: &Path, samples: &[Sample], failures: &[Failure]) -> Result<()> {
    let mut out = String::from(
        "rep,peer,flows,window_s,fwd_mpps,offered_mpps,pa0_rx_dropped_mpps,dp_cpu_busy_pct,gen_cpu_busy_pct,gen_ran_through,peer_ran_through,error\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{},{},{},{:.3},{:.4},{:.4},{:.4},{},{},{},{},",
            s.rep,
            s.peer,
            s.flows,
            s.window_s,
            s.fwd_mpps,
            s.offered_mpps,
            s.pa0_rx_dropped_mpps,
            fmt_opt(s.dp_busy, 1),
            fmt_opt(s.gen_busy, 1),
            s.gen_ok,
            s.peer_ok
        );
    }
    for f in failures {
        let err = f.error.replace(['\n', '"'], " ");
        let _ = writeln!(out, "{},{},{},,,,,,,,,\"{err}\"", f.rep, f.peer, f.flows);
    }
    fs::write(path, out).with_context(|| format!("write {}", path.display()))
}
