//! xvsd: the xvs daemon.
//!
//! Threads: the main thread validates the configuration, opens every port, starts one pinned
//! worker thread per configured core, then becomes the control thread: it serves the unixctl
//! socket (`ovs-appctl -t <run_dir>/xvsd.ctl ...`) and waits for SIGTERM/SIGINT or `exit`.
//! Workers never block on it: they publish counters through atomics and stop when asked.
#![forbid(unsafe_code)]

mod capture;
mod config;
mod control;
mod coverage;
mod dpflows;
mod dynports;
mod netlink;
mod ofserver;
mod openflow;
mod ports;
mod underlay;
mod unixctl;
mod vlog;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xvs_engine::tunnel::{TunnelPort, TunnelSetup, TunnelStage};
use xvs_engine::{CacheConfig, Forwarding, OpenFlowStage, Worker, WorkerConfig};
use xvs_io::{FramePool, DEFAULT_FRAME_SIZE, DEFAULT_HEADROOM};

/// Milliseconds between two walks of the tables for expired flows (timeouts are in seconds).
const EXPIRY_INTERVAL_MS: u64 = 1000;

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

fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
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

/// After `xvs/add-port` / `xvs/del-port`: the bridge's port list is part of the table version
/// (FLOOD, NORMAL, outputs to missing ports), so publish it; rename for flow text; and have
/// the OpenFlow server send PORT_STATUS.
fn ports_changed(
    pipeline: &Mutex<xvs_flowtable::pipeline::Pipeline>,
    dynamic: &dynports::DynamicPorts,
    names: &mut xvs_flowtable::names::NameMap,
    of_server: Option<&ofserver::OfServer>,
    epoch: std::time::Instant,
) {
    ofserver::switch::lock(pipeline).set_ports(&dynamic.ofports(), openflow::now_ms(epoch));
    *names = dynamic.name_map();
    if let Some(s) = of_server {
        s.ports_changed();
    }
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

    // Tunnels: the kernel's view of the underlay, published to the workers.
    let tunnel_ofports = openflow::tunnel_ofports(&plan);
    let uplink = plan.ports.iter().find(|p| p.config.uplink);
    let mut underlay = match (tunnel_ofports.is_empty(), uplink) {
        (false, Some(up)) => Some(underlay::UnderlayControl::new(&up.config.name)?),
        _ => None,
    };
    let uplink_filter = uplink.map(|up| ports::uplink_filter(&plan, up));

    let translation_counters = Arc::new(openflow::TranslationCounters::default());
    // The tracker's clock: nanoseconds since `epoch`, for the workers and the sweeper alike.
    let epoch = std::time::Instant::now();
    let conntrack = Arc::new(openflow::build_conntrack(&cfg.conntrack));
    let mut learn_queues = Vec::new();
    let mut packet_in_queues = Vec::new();
    let mut mac_queues = Vec::new();
    // The bridge's ports, for FLOOD, ALL and NORMAL.
    if let Some(p) = pipeline.as_mut() {
        let ofports: Vec<u32> = plan.ports.iter().map(|p| p.config.ofport).collect();
        p.set_ports(&ofports, 0);
    }

    // Open every port before starting any worker: a failure here drops what was opened
    // (detaching XDP programs, removing taps, closing DPDK devices) and exits. EAL (when there
    // are DPDK ports) starts first and is cleaned up last.
    let eal = ports::dpdk::start_eal(&plan)?;
    let mut attachments = ports::Attachments::default();
    let mut workers = Vec::new();
    let mut injectors = Vec::new();
    let mut port_controls = Vec::new();
    for (w, &core) in cfg.workers.iter().enumerate() {
        let mine: Vec<usize> = (0..plan.ports.len())
            .filter(|&i| plan.ports[i].worker == w && !plan.ports[i].config.kind.is_tunnel())
            .collect();
        let needed = ports::frames_needed(mine.iter().map(|&i| &plan.ports[i]))
            + cfg.runtime_ports as usize * ports::runtime_port_frames();
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
            let filter = uplink_filter.as_ref().filter(|_| p.config.uplink);
            let port = ports::open(p, &mut pool, &mut attachments, w, filter)
                .with_context(|| format!("port {}", p.config.name))?;
            engine_ports.push(port);
        }
        let forwarding = match pipeline.as_mut() {
            Some(p) => {
                let (mut translator, learned, macs, pins) = openflow::WorkerTranslator::new(
                    p,
                    translation_counters.clone(),
                    epoch,
                    u8::try_from(w).context("at most 256 workers")?,
                );
                learn_queues.push(learned);
                packet_in_queues.push(pins);
                mac_queues.push(macs);
                translator.set_tunnel_ports(&tunnel_ofports);
                let mut stage = OpenFlowStage::new(Box::new(translator), CacheConfig::default())
                    .with_conntrack(Arc::clone(&conntrack), epoch);
                if let (Some(u), Some(up)) = (underlay.as_mut(), uplink) {
                    let (reader, solicit) = u.worker();
                    stage = stage.with_tunnels(TunnelStage::new(TunnelSetup {
                        ports: plan
                            .ports
                            .iter()
                            .filter_map(|p| {
                                p.config.tunnel_config().map(|config| TunnelPort {
                                    ofport: p.config.ofport,
                                    config,
                                })
                            })
                            .collect(),
                        uplink_ofport: up.config.ofport,
                        underlay: reader,
                        solicit,
                        neigh: underlay::neigh_config(),
                    }));
                }
                Forwarding::OpenFlow(Box::new(stage))
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
        let mut worker = Worker::new(
            w,
            Some(core),
            pool,
            engine_ports,
            forwarding,
            WorkerConfig {
                sleep_max: Duration::from_micros(cfg.pmd_sleep_max_us),
            },
        )?;
        // PACKET_OUT path from the OpenFlow server to this worker.
        let (injector, injections) = xvs_engine::inject::inject_queue();
        worker.set_injections(injections);
        injectors.push(injector);
        // xvs/add-port and xvs/del-port from the control thread to this worker.
        let (control, commands) = xvs_engine::portctl::port_queue();
        worker.set_port_commands(commands);
        port_controls.push(control);
        workers.push((core, worker));
    }
    if workers.len() > 1 {
        // Outputs to a port another worker polls are handed to that worker.
        let rings = xvs_engine::handoff::mesh(workers.iter().map(|(_, w)| w.shared()).collect());
        for ((_, worker), handoff) in workers.iter_mut().zip(rings) {
            worker.set_handoff(handoff);
        }
    }
    ports::dpdk::start_all(&attachments)?;
    // From here on, runtime ports share the attachments with the workers opening them.
    let attachments = Arc::new(Mutex::new(attachments));

    // From here on the pipeline is shared by the control threads (main, OpenFlow server).
    let pipeline = pipeline.map(|p| Arc::new(Mutex::new(p)));

    let mut handles = Vec::new();
    let mut shared = Vec::new();
    let mut capture_rings = Vec::new();
    for (core, mut worker) in workers {
        shared.push(worker.shared());
        capture_rings.extend(worker.take_capture_consumer());
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

    let of_server = match &pipeline {
        Some(p) => Some(ofserver::start(
            cfg,
            Arc::clone(p),
            epoch,
            &shared,
            injectors,
            packet_in_queues,
            &tunnel_ofports,
        )?),
        None => None,
    };

    std::fs::write(&pid_path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pid_path.display()))?;
    eprintln!(
        "xvsd: running bridge {} with {} worker(s) and {} port(s); control: {}",
        cfg.bridge,
        shared.len(),
        plan.ports.len(),
        cfg.run_dir.join("xvsd.ctl").display()
    );

    let mut names = openflow::name_map(&plan);
    let mut dynamic = dynports::DynamicPorts::new(
        &plan,
        port_controls,
        shared.clone(),
        Arc::clone(&attachments),
    );
    let mut control = control::Control::new(
        &plan,
        shared.clone(),
        translation_counters.clone(),
        Arc::clone(&conntrack),
        epoch,
    );
    control.set_capture_rings(capture_rings);
    if let Some(s) = &of_server {
        control.set_of_stats(Arc::clone(&s.stats));
    }
    let mut failure = None;
    let mut next_expiry = 0;
    while !stop.load(Ordering::Relaxed) && !control.exit_requested() {
        ctl.poll(&mut |m, p| match (m, pipeline.as_ref()) {
            ("xvs/ofserver-show", _) => match &of_server {
                Some(s) => Ok(s.stats.text()),
                None => Err("no OpenFlow server (forwarding = \"io-fwd\")".to_string()),
            },
            ("ofproto/trace", Some(pl)) => openflow::trace(
                &ofserver::switch::lock(pl),
                &names,
                &cfg.bridge,
                &tunnel_ofports,
                p,
            ),
            ("xvs/meter-stats", Some(pl)) => Ok(openflow::meter_stats(&ofserver::switch::lock(pl))),
            ("xvs/dump-group-stats", Some(pl)) => {
                Ok(openflow::group_stats(&ofserver::switch::lock(pl)))
            }
            ("xvs/fdb-show", Some(pl)) => Ok(openflow::fdb_show(
                &ofserver::switch::lock(pl),
                openflow::now_ms(epoch),
            )),
            ("xvs/dump-flows", Some(pl)) => openflow::dump_flows(
                &ofserver::switch::lock(pl),
                &names,
                p,
                openflow::now_ms(epoch),
            ),
            ("xvs/show", _) => control.handle(m, p).map(|mut s| {
                if let Some(u) = underlay.as_ref() {
                    s.push_str(&u.describe());
                }
                s.push_str(&dynamic.describe());
                s
            }),
            ("dpdk/show", _) => Ok(ports::dpdk::show(
                &attachments.lock().unwrap_or_else(|e| e.into_inner()),
            )),
            ("xvs/replay-start" | "xvs/replay-stop", _) => ports::replay_command(
                &attachments.lock().unwrap_or_else(|e| e.into_inner()),
                m == "xvs/replay-start",
                p,
            ),
            ("xvs/add-port" | "xvs/del-port", None) => {
                Err(format!("{m} needs forwarding = \"openflow\""))
            }
            ("xvs/add-port", Some(pl)) => dynamic.add(p, interface_index).map(|ofport| {
                ports_changed(pl, &dynamic, &mut names, of_server.as_ref(), epoch);
                format!("ofport={ofport}\n")
            }),
            ("xvs/del-port", Some(pl)) => dynamic.delete(p).map(|()| {
                ports_changed(pl, &dynamic, &mut names, of_server.as_ref(), epoch);
                String::new()
            }),
            _ => control.handle(m, p),
        });
        control.tick();
        if let Some(u) = underlay.as_mut() {
            u.poll();
        }
        if let Some(p) = pipeline.as_ref() {
            let mut p = ofserver::switch::lock(p);
            let (installed, refused) =
                openflow::apply_learned(&mut p, &mut learn_queues, openflow::now_ms(epoch));
            control.count_learned(installed, refused);
            openflow::apply_mac_learning(&mut p, &mut mac_queues, openflow::now_ms(epoch));
            // Timeouts, once a second (a walk over every flow); idle ages come from the hits
            // the workers credit every 100 ms. Expired flows leave as one new version, so the
            // workers' caches drop every megaflow built from them.
            let now = openflow::now_ms(epoch);
            if now >= next_expiry {
                next_expiry = now + EXPIRY_INTERVAL_MS;
                let report = p.expire(now);
                control.count_expired(report.removed.len());
                p.age_macs(now, xvs_flowtable::l2::MAC_AGING_MS);
            }
            p.reclaim();
        }
        // Expiry in bounded slices, so the control thread stays responsive with millions of
        // connections; successive calls continue where the last stopped.
        let now_ns = epoch.elapsed().as_nanos() as u64;
        conntrack.sweep(now_ns, cfg.conntrack.sweep_budget as usize);
        if let Some(dead) = handles.iter().position(|h| h.is_finished()) {
            failure = Some(format!("worker {dead} stopped unexpectedly"));
            break;
        }
        // A capture ring (1 MiB per worker, ~10,000 small frames) fills in tens of ms at
        // line rate: drain it every 2 ms while a capture runs.
        std::thread::sleep(Duration::from_millis(if control.capturing() {
            2
        } else {
            20
        }));
    }

    if let Some(s) = of_server {
        s.stop();
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
    drop(dynamic);
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
