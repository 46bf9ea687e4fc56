//! xvsd: the xvs daemon.
//!
//! Threads: the main thread validates the configuration, opens every port, starts one pinned
//! worker thread per configured core, then becomes the control thread: it serves the unixctl
//! socket (`ovs-appctl -t <run_dir>/xvsd.ctl ...`) and waits for SIGTERM/SIGINT or `exit`.
//! Workers never block on it: they publish counters through atomics and stop when asked.
#![forbid(unsafe_code)]

mod config;
mod control;
mod openflow;
mod ports;
mod unixctl;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvs_engine::{CacheConfig, Forwarding, OpenFlowStage, Worker, WorkerConfig};
use xvs_io::{FramePool, DEFAULT_FRAME_SIZE, DEFAULT_HEADROOM};

/// The xvs dataplane daemon.
#[derive(Debug, Parser)]
#[command(name = "xvsd", version, about)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Validate the configuration and exit without touching any interface.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvsd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Cores this process may run on.
fn allowed_cores() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

fn pin_to(core: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(core).with_context(|| format!("core {core}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("pinning a worker to core {core}"))?;
    Ok(())
}

/// Creates the run directory 0750 (tightening an existing one).
fn prepare_run_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating run_dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
        .with_context(|| format!("setting mode 0750 on {}", dir.display()))?;
    Ok(())
}

/// Refuses to start when another live xvsd owns the run directory.
fn check_pid_file(path: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    if let Ok(pid) = text.trim().parse::<i32>() {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if alive && pid != std::process::id() as i32 {
            bail!(
                "another xvsd (pid {pid}) is running with {}",
                path.display()
            );
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let config = config::Config::load(&args.config)?;
    let plan = config::plan(config, &allowed_cores(), interface_exists)?;
    if args.check {
        println!("{}: configuration is valid", args.config.display());
        return Ok(());
    }
    let cfg = &plan.config;
    prepare_run_dir(&cfg.run_dir)?;
    let pid_path = cfg.run_dir.join("xvsd.pid");
    check_pid_file(&pid_path)?;
    let ctl = unixctl::UnixctlServer::bind(&cfg.run_dir.join("xvsd.ctl"))
        .with_context(|| format!("binding {}", cfg.run_dir.join("xvsd.ctl").display()))?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    // The OpenFlow pipeline (kept by the control thread; workers read published versions).
    let mut pipeline = match cfg.forwarding {
        config::ForwardingMode::Openflow => Some(openflow::build_pipeline(&plan, &args.config)?),
        config::ForwardingMode::IoFwd => None,
    };

    let translation_counters = Arc::new(openflow::TranslationCounters::default());
    let epoch = std::time::Instant::now();
    let mut learn_queues = Vec::new();

    // Open every port before starting any worker: a failure here drops what was opened
    // (detaching XDP programs, removing taps, closing DPDK devices) and exits. EAL (when there
    // are DPDK ports) starts first and is cleaned up last.
    let eal = ports::dpdk::start_eal(&plan)?;
    let mut attachments = ports::Attachments::default();
    let mut workers = Vec::new();
    for (w, &core) in cfg.workers.iter().enumerate() {
        let mine: Vec<usize> = (0..plan.ports.len())
            .filter(|&i| plan.ports[i].worker == w)
            .collect();
        let needed = ports::frames_needed(mine.iter().map(|&i| &plan.ports[i]));
        let frames = match cfg.frames_per_worker {
            Some(n) if (n as usize) < needed => bail!(
                "frames_per_worker = {n} is too small for worker {w} (core {core}): its ports can \
                 hold {needed} frames; raise it or leave it unset"
            ),
            Some(n) => n,
            None => u32::try_from(needed).context("frame count")?.max(1024),
        };
        let mut pool = FramePool::new(frames, DEFAULT_FRAME_SIZE, DEFAULT_HEADROOM)
            .with_context(|| format!("worker {w}: frame pool of {frames} frames"))?;
        let mut engine_ports = Vec::with_capacity(mine.len());
        for &i in &mine {
            let p = &plan.ports[i];
            let port = ports::open(p, &mut pool, &mut attachments, w)
                .with_context(|| format!("port {}", p.config.name))?;
            engine_ports.push(port);
        }
        let forwarding = match pipeline.as_mut() {
            Some(p) => {
                let (translator, learned) =
                    openflow::WorkerTranslator::new(p, translation_counters.clone(), epoch);
                learn_queues.push(learned);
                Forwarding::OpenFlow(Box::new(OpenFlowStage::new(
                    Box::new(translator),
                    CacheConfig::default(),
                )))
            }
            None => Forwarding::IoFwd {
                peers: mine
                    .iter()
                    .map(|&i| {
                        plan.ports[i]
                            .peer
                            .and_then(|peer| mine.iter().position(|&j| j == peer))
                    })
                    .collect(),
            },
        };
        let worker = Worker::new(
            w,
            Some(core),
            pool,
            engine_ports,
            forwarding,
            WorkerConfig {
                sleep_max: Duration::from_micros(cfg.pmd_sleep_max_us),
            },
        )?;
        workers.push((core, worker));
    }
    ports::dpdk::start_all(&attachments)?;

    let mut handles = Vec::new();
    let mut shared = Vec::new();
    for (core, mut worker) in workers {
        shared.push(worker.shared());
        let handle = std::thread::Builder::new()
            .name(format!("pmd-c{core:02}"))
            .spawn(move || -> Result<Worker> {
                pin_to(core)?;
                worker.run();
                Ok(worker)
            })
            .context("spawning a worker thread")?;
        handles.push(handle);
    }

    std::fs::write(&pid_path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pid_path.display()))?;
    eprintln!(
        "xvsd: running bridge {} with {} worker(s) and {} port(s); control: {}",
        cfg.bridge,
        shared.len(),
        plan.ports.len(),
        cfg.run_dir.join("xvsd.ctl").display()
    );

    let names = openflow::name_map(&plan);
    let mut control = control::Control::new(&plan, shared.clone(), translation_counters.clone());
    let mut failure = None;
    while !stop.load(Ordering::Relaxed) && !control.exit_requested() {
        ctl.poll(&mut |m, p| match (m, pipeline.as_ref()) {
            ("ofproto/trace", Some(pl)) => openflow::trace(pl, &names, &cfg.bridge, p),
            ("dpdk/show", _) => Ok(ports::dpdk::show(&attachments)),
            _ => control.handle(m, p),
        });
        if let Some(p) = pipeline.as_mut() {
            let (installed, refused) =
                openflow::apply_learned(p, &mut learn_queues, openflow::now_ms(epoch));
            control.count_learned(installed, refused);
            p.reclaim();
        }
        if let Some(dead) = handles.iter().position(|h| h.is_finished()) {
            failure = Some(format!("worker {dead} stopped unexpectedly"));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    for s in &shared {
        s.request_stop();
    }
    let mut finished = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(worker)) => finished.push(worker),
            Ok(Err(e)) => failure = Some(format!("worker {i}: {e:#}")),
            Err(_) => failure = Some(format!("worker {i} panicked")),
        }
    }
    // Close sockets, taps and DPDK devices (every worker has stopped), then detach XDP
    // programs, then clean EAL up.
    drop(finished);
    drop(attachments);
    drop(eal);
    drop(pipeline);
    let _ = std::fs::remove_file(&pid_path);
    drop(ctl);
    eprintln!("xvsd: stopped");
    match failure {
        Some(f) => bail!(f),
        None => Ok(()),
    }
}
