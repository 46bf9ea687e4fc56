//! unixctl commands of the daemon.

use crate::capture::Captures;
use crate::config::{FlowOr, Plan, PortConfig};
use crate::coverage::Coverage;
use crate::ofserver::switch::OfStats;
use crate::openflow::TranslationCounters;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_conntrack::Conntrack;
use xvs_engine::capture::CaptureConsumer;
use xvs_engine::{DropReason, WorkerShared, WorkerSnapshot};
use xvs_io::PortStats;

const COMMANDS: &[(&str, &str)] = &[
    ("coverage/show", ""),
    ("dpctl/dump-flows", "[-m] [--names | --no-names] [dp]"),
    ("dpif/show", ""),
    ("dpctl/ct-get-maxconns", "[dp]"),
    ("dpctl/ct-set-maxconns", "[dp] maxconns"),
    ("dpctl/ct-stats-show", "[dp] [zone=N] [verbose]"),
    ("dpctl/dump-conntrack", "[-m] [-s] [dp] [zone=N]"),
    (
        "dpctl/flush-conntrack",
        "[dp] [zone=N] [ct-orig-tuple [ct-reply-tuple]]",
    ),
    ("dpif/show-dp-features", "bridge"),
    ("dpif-netdev/pmd-stats-clear", ""),
    ("dpif-netdev/pmd-stats-show", ""),
    ("dpdk/show", ""),
    ("exit", ""),
    ("list-commands", ""),
    ("ofproto/trace", "[bridge] flow [--ct-next flags]"),
    ("version", ""),
    ("vlog/list", ""),
    ("vlog/set", "{spec}"),
    ("xvs/add-port", "IFNAME [ofport=N]"),
    ("xvs/capture-read", "id"),
    ("xvs/capture-start", "port"),
    ("xvs/capture-stop", "id"),
    ("xvs/del-port", "IFNAME"),
    ("xvs/dump-flows", "[table]"),
    ("xvs/dump-group-stats", ""),
    ("xvs/fdb-show", ""),
    ("xvs/meter-stats", ""),
    ("xvs/ofserver-show", ""),
    ("xvs/replay-start", "[port...]"),
    ("xvs/replay-stop", "[port...]"),
    ("xvs/show", ""),
    ("xvs/stats", ""),
];

/// State of the control side: the workers' shared handles and the baselines that
/// `pmd-stats-clear` resets to.
#[derive(Debug)]
pub struct Control {
    bridge: String,
    workers: Vec<Arc<WorkerShared>>,
    baselines: Vec<WorkerSnapshot>,
    translation: Arc<TranslationCounters>,
    learned_installed: u64,
    learned_refused: u64,
    expired: u64,
    exit: bool,
    conntrack: Arc<Conntrack>,
    /// Origin of the tracker's clock.
    epoch: Instant,
    /// The bridge's ports as `dpif/show` lists them: (name, ofport, type and options).
    dpif_ports: Vec<(String, u32, String)>,
    /// `coverage/show` history.
    coverage: Option<Coverage>,
    /// The OpenFlow server's counters, for `coverage/show`.
    of_stats: Option<Arc<OfStats>>,
    /// The last megaflow dump generation requested.
    flow_dump_generation: u64,
    /// Port captures in progress.
    captures: Captures,
}

/// Megaflow dumps wait this long for a worker's answer (2,048 megaflows per 10 ms: a full
/// 65,536-entry cache takes ~0.3 s).
const FLOW_DUMP_WAIT: Duration = Duration::from_secs(5);

impl Control {
    pub fn new(
        plan: &Plan,
        workers: Vec<Arc<WorkerShared>>,
        translation: Arc<TranslationCounters>,
        conntrack: Arc<Conntrack>,
        epoch: Instant,
    ) -> Self {
        let baselines = vec![WorkerSnapshot::default(); workers.len()];
        Self {
            bridge: plan.config.bridge.clone(),
            workers,
            baselines,
            translation,
            learned_installed: 0,
            learned_refused: 0,
            expired: 0,
            exit: false,
            conntrack,
            epoch,
            dpif_ports: plan
                .ports
                .iter()
                .map(|p| {
                    (
                        p.config.name.clone(),
                        p.config.ofport,
                        dpif_port_type(&p.config),
                    )
                })
                .collect(),
            coverage: None,
            of_stats: None,
            flow_dump_generation: 0,
            captures: Captures::default(),
        }
    }

    /// Gives `coverage/show` the OpenFlow server's counters.
    pub fn set_of_stats(&mut self, stats: Arc<OfStats>) {
        self.of_stats = Some(stats);
    }

    /// Gives the control side the workers' capture rings (in worker order).
    pub fn set_capture_rings(&mut self, rings: Vec<CaptureConsumer>) {
        self.captures.rings = rings;
    }

    /// True while a port capture runs.
    pub fn capturing(&self) -> bool {
        self.captures.active()
    }

    /// Periodic work of the control loop: coverage samples and capture draining.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let totals = self.coverage_totals();
        match self.coverage.as_mut() {
            Some(c) => c.tick(now, &totals),
            None => self.coverage = Some(Coverage::new(now, &totals)),
        }
        self.captures.drain(&self.workers);
    }

    /// The events of `coverage/show` and their totals, from the counters xvsd keeps.
    fn coverage_totals(&self) -> Vec<(&'static str, u64)> {
        let mut w = WorkerSnapshot::default();
        let mut rx_ports = (0, 0);
        for s in &self.workers {
            let c = s.counters.load();
            w.rx_packets += c.rx_packets;
            w.tx_packets += c.tx_packets;
            w.exact_hits += c.exact_hits;
            w.megaflow_hits += c.megaflow_hits;
            w.exact_skipped += c.exact_skipped;
            w.repeat_hits += c.repeat_hits;
            w.upcalls_ok += c.upcalls_ok;
            w.upcalls_failed += c.upcalls_failed;
            w.recirculations += c.recirculations;
            w.cache_flushes += c.cache_flushes;
            w.decapsulated += c.decapsulated;
            w.encapsulated += c.encapsulated;
            w.captured += c.captured;
            w.capture_dropped += c.capture_dropped;
            w.ct.add(&c.ct);
            for (d, n) in w.drops.iter_mut().zip(c.drops) {
                *d += n;
            }
            for e in s.ports.load().iter() {
                let p = e.counters.load();
                rx_ports.0 += p.rx_dropped;
                rx_ports.1 += p.tx_dropped;
            }
        }
        let ct = self.conntrack.counters();
        let t = &self.translation;
        let r = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let of = self.of_stats.as_deref();
        let o = |f: fn(&OfStats) -> u64| of.map_or(0, f);
        let mut v = vec![
            ("netdev_received", w.rx_packets),
            ("netdev_sent", w.tx_packets),
            ("netdev_rx_dropped", rx_ports.0),
            ("netdev_tx_dropped", rx_ports.1),
            ("dpif_exact_hit", w.exact_hits),
            ("dpif_megaflow_hit", w.megaflow_hits),
            ("dpif_exact_skipped", w.exact_skipped),
            ("dpif_megaflow_repeat_hit", w.repeat_hits),
            ("dpif_upcall", w.upcalls_ok),
            ("dpif_upcall_failed", w.upcalls_failed),
            ("dpif_recirc", w.recirculations),
            ("dpif_cache_flush", w.cache_flushes),
            ("tunnel_decap", w.decapsulated),
            ("tunnel_encap", w.encapsulated),
            ("conntrack_packets", w.ct.packets),
            ("conntrack_commit", ct.created),
            ("conntrack_expired", ct.expired),
            ("conntrack_full", ct.full),
            ("conntrack_zone_full", ct.zone_full),
            ("conntrack_nat_exhausted", ct.nat_exhausted),
            ("conntrack_invalid", w.ct.invalid),
            ("xlate_learn_lost", r(&t.learn_dropped)),
            ("xlate_packet_in", r(&t.controller)),
            ("xlate_packet_in_lost", r(&t.packet_in_dropped)),
            ("learned_flow_installed", self.learned_installed),
            ("flow_expired", self.expired),
            (
                "ofproto_commit",
                o(|s| s.commits.load(std::sync::atomic::Ordering::Relaxed)),
            ),
            (
                "ofproto_flow_mod",
                o(|s| s.mods.load(std::sync::atomic::Ordering::Relaxed)),
            ),
            (
                "ofproto_packet_in",
                o(|s| s.packet_in_sent.load(std::sync::atomic::Ordering::Relaxed)),
            ),
            (
                "ofproto_packet_in_drop",
                o(|s| {
                    s.packet_in_metered
                        .load(std::sync::atomic::Ordering::Relaxed)
                        + s.packet_in_backlog
                            .load(std::sync::atomic::Ordering::Relaxed)
                }),
            ),
            (
                "ofproto_resume",
                o(|s| s.resumed.load(std::sync::atomic::Ordering::Relaxed)),
            ),
            ("capture_frame", w.captured),
            ("capture_drop", w.capture_dropped),
        ];
        for reason in DropReason::ALL {
            v.push((drop_event_name(reason), w.drops[reason as usize]));
        }
        v
    }

    /// `dpif/show`: the datapath's lookups, then the bridge's ports with their OpenFlow and
    /// datapath numbers (xvs's datapath numbers are the OpenFlow ones, as `Datapath actions:`
    /// prints them) and types, sorted by name as OVS sorts them.
    fn dpif_show(&self) -> String {
        let (mut hit, mut missed) = (0, 0);
        for w in &self.workers {
            let c = w.counters.load();
            hit += c.exact_hits + c.megaflow_hits;
            missed += c.upcalls_ok + c.upcalls_failed;
        }
        let mut s = format!("xvs@xvs-netdev: hit:{hit} missed:{missed}\n");
        let _ = writeln!(s, "  {}:", self.bridge);
        let mut ports: Vec<&(String, u32, String)> = self.dpif_ports.iter().collect();
        ports.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ofport, kind) in ports {
            let _ = writeln!(s, "    {name} {ofport}/{ofport}: ({kind})");
        }
        s
    }

    /// `dpctl/dump-flows`: asks every worker for a copy of its megaflows (it answers at its
    /// next publication point, without waiting on us) and prints them per worker.
    fn dump_flows(&mut self, params: &[String]) -> Result<String, String> {
        let opts = crate::dpflows::parse_args(params)?;
        self.flow_dump_generation += 1;
        let generation = self.flow_dump_generation;
        for w in &self.workers {
            // Release: the generation is the whole message; the worker's Acquire load pairs.
            w.flow_dump_request
                .store(generation, std::sync::atomic::Ordering::Release);
        }
        let names: std::collections::HashMap<u32, String> = self
            .dpif_ports
            .iter()
            .map(|(n, p, _)| (*p, n.clone()))
            .collect();
        let port_name = |p: u32| names.get(&p).cloned();
        let deadline = Instant::now() + FLOW_DUMP_WAIT;
        let mut out = String::new();
        for w in &self.workers {
            loop {
                let answered = {
                    let slot = w.flow_dump.lock().unwrap_or_else(|e| e.into_inner());
                    if slot.generation >= generation {
                        crate::dpflows::format_worker(
                            &mut out,
                            w.core.unwrap_or(w.id),
                            &slot.flows,
                            slot.now_ns,
                            opts,
                            &port_name,
                        );
                        true
                    } else {
                        false
                    }
                };
                if answered {
                    break;
                }
                if Instant::now() > deadline || w.stopped.load(std::sync::atomic::Ordering::Acquire)
                {
                    return Err(format!("worker {} did not answer the flow dump", w.id));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(out)
    }

    /// `xvs/stats`: counters per worker and port as JSON, for `xvsctl stats`.
    fn stats_json(&self) -> String {
        let workers: Vec<serde_json::Value> = self
            .workers
            .iter()
            .map(|w| {
                let c = w.counters.load();
                let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_string(), c.drops[*r as usize].into()))
                    .collect();
                let ports: Vec<serde_json::Value> = w
                    .ports
                    .load()
                    .iter()
                    .map(|e| {
                        let p = e.counters.load();
                        serde_json::json!({
                            "name": e.name, "ofport": e.ofport,
                            "rx_packets": p.rx_packets, "rx_bytes": p.rx_bytes,
                            "rx_dropped": p.rx_dropped, "tx_packets": p.tx_packets,
                            "tx_bytes": p.tx_bytes, "tx_dropped": p.tx_dropped,
                            "errors": p.errors,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "id": w.id, "core": w.core,
                    "rx_packets": c.rx_packets, "tx_packets": c.tx_packets,
                    "exact_hits": c.exact_hits, "megaflow_hits": c.megaflow_hits,
                    "exact_skipped": c.exact_skipped, "megaflow_repeat_hits": c.repeat_hits,
                    "upcalls": c.upcalls_ok, "upcalls_failed": c.upcalls_failed,
                    "recirculations": c.recirculations,
                    "busy_ns": c.busy_ns, "idle_ns": c.idle_ns,
                    "drops": drops, "ports": ports,
                })
            })
            .collect();
        let v = serde_json::json!({
            "time_ns": self.epoch.elapsed().as_nanos() as u64,
            "workers": workers,
        });
        format!("{v}\n")
    }

    /// Counts learned flows the control thread installed or the pipeline refused.
    pub fn count_learned(&mut self, installed: usize, refused: usize) {
        self.learned_installed += installed as u64;
        self.learned_refused += refused as u64;
    }

    /// Counts flows removed by their idle or hard timeout.
    pub fn count_expired(&mut self, n: usize) {
        self.expired += n as u64;
    }

    /// True once `exit` was received.
    pub fn exit_requested(&self) -> bool {
        self.exit
    }

    /// Runs one command.
    pub fn handle(&mut self, method: &str, params: &[String]) -> Result<String, String> {
        let no_args = |name: &str| -> Result<(), String> {
            if params.is_empty() {
                Ok(())
            } else {
                Err(format!("\"{name}\" command takes at most 0 arguments"))
            }
        };
        match method {
            "list-commands" => {
                no_args(method)?;
                let mut s = String::from("The available commands are:\n");
                // Sorted by name, as OVS lists them.
                let mut commands = COMMANDS.to_vec();
                commands.sort_unstable();
                for (c, a) in commands {
                    let _ = writeln!(s, "  {c:<23} {a}");
                }
                Ok(s)
            }
            "version" => {
                no_args(method)?;
                Ok(format!("xvsd (xvs) {}\n", env!("CARGO_PKG_VERSION")))
            }
            "dpif/show" => {
                no_args(method)?;
                Ok(self.dpif_show())
            }
            "dpctl/dump-flows" => self.dump_flows(params),
            "coverage/show" => {
                no_args(method)?;
                let totals = self.coverage_totals();
                let now = Instant::now();
                let c = self
                    .coverage
                    .get_or_insert_with(|| Coverage::new(now, &totals));
                c.tick(now, &totals);
                Ok(c.show(&totals))
            }
            "vlog/set" => crate::vlog::set(params),
            "vlog/list" => {
                no_args(method)?;
                Ok(crate::vlog::list())
            }
            "xvs/stats" => {
                no_args(method)?;
                Ok(self.stats_json())
            }
            "xvs/capture-start" => match params {
                [port] => self.captures.start(&self.workers, port),
                _ => Err("usage: xvs/capture-start port".to_string()),
            },
            "xvs/capture-read" => match params {
                [id] => {
                    self.captures.drain(&self.workers);
                    self.captures.read(id)
                }
                _ => Err("usage: xvs/capture-read id".to_string()),
            },
            "xvs/capture-stop" => match params {
                [id] => {
                    self.captures.drain(&self.workers);
                    self.captures.stop(&self.workers, id)
                }
                _ => Err("usage: xvs/capture-stop id".to_string()),
            },
            "exit" => {
                self.exit = true;
                Ok(String::new())
            }
            "dpif-netdev/pmd-stats-show" => {
                no_args(method)?;
                Ok(self.pmd_stats())
            }
            "dpif-netdev/pmd-stats-clear" => {
                no_args(method)?;
                for (b, w) in self.baselines.iter_mut().zip(&self.workers) {
                    *b = w.counters.load();
                }
                Ok(String::new())
            }
            "xvs/show" => {
                no_args(method)?;
                Ok(self.show())
            }
            "xvs/dump-group-stats" => Err("xvs/dump-group-stats needs forwarding = \"openflow\"".to_string()),
            "xvs/fdb-show" => Err("xvs/fdb-show needs forwarding = \"openflow\"".to_string()),
            "xvs/meter-stats" => Err("xvs/meter-stats needs forwarding = \"openflow\"".to_string()),
            "xvs/dump-flows" => Err("xvs/dump-flows needs forwarding = \"openflow\"".to_string()),
            "dpif/show-dp-features" => match params {
                [] => Ok(dp_features()),
                [b] if *b == self.bridge => Ok(dp_features()),
                [b] => Err(format!("{b}: unknown bridge")),
                _ => Err("usage: dpif/show-dp-features bridge".to_string()),
            },
            "dpctl/dump-conntrack" => {
                let zone = ct_zone_arg(params, &["-m", "-s"])?;
                let now = self.epoch.elapsed().as_nanos() as u64;
                let mut s = String::new();
                for e in self.conntrack.dump(zone, now) {
                    let _ = writeln!(s, "{e}");
                }
                Ok(s)
            }
            "dpctl/flush-conntrack" => {
                // `[dp] [zone=N] [ct-orig-tuple [ct-reply-tuple]]`, OVS's syntax and errors.
                let args: Vec<&str> = params
                    .iter()
                    .map(String::as_str)
                    .skip_while(|p| is_dp_name(p))
                    .collect();
                let parsed = xvs_conntrack::parse_flush_conntrack(&args)
                    .map_err(|e| format!("ovs-vswitchd: {e} (Invalid argument)"))?;
                self.conntrack.flush_args(&parsed);
                Ok(String::new())
            }
            "dpctl/ct-stats-show" => {
                // `[dp] [zone=N] [verbose]`.
                let mut zone = None;
                let mut verbose = false;
                for p in params.iter().map(String::as_str).skip_while(|p| is_dp_name(p)) {
                    if let Some(z) = p.strip_prefix("zone=") {
                        zone = Some(z.parse::<u16>().map_err(|_| format!("invalid zone: {z}"))?);
                    } else if p == "verbose" || p == "-m" || p == "--more" {
                        verbose = true;
                    } else {
                        return Err(format!("invalid argument: {p}"));
                    }
                }
                let now = self.epoch.elapsed().as_nanos() as u64;
                let entries = self.conntrack.dump(zone, now);
                Ok(xvs_conntrack::format_ct_stats(&entries, verbose))
            }
            "dpctl/ct-get-maxconns" => Ok(format!("{}\n", self.conntrack.max_conns())),
            "dpctl/ct-set-maxconns" => {
                let n = params
                    .last()
                    .and_then(|p| p.parse::<u32>().ok())
                    .ok_or_else(|| "usage: dpctl/ct-set-maxconns [dp] maxconns".to_string())?;
                self.conntrack.set_max_conns(n);
                Ok("setting maxconns successful\n".to_string())
            }
            "ofproto/trace" => Err("ofproto/trace needs forwarding = \"openflow\"".to_string()),
            _ => Err(format!(
                "\"{method}\" is not a valid command (use list-commands to see a list of valid commands)"
            )),
        }
    }

    fn pmd_stats(&self) -> String {
        let mut s = String::new();
        for (w, base) in self.workers.iter().zip(&self.baselines) {
            let now = w.counters.load();
            let rx = now.rx_packets - base.rx_packets;
            let tx = now.tx_packets - base.tx_packets;
            let batches = now.tx_batches - base.tx_batches;
            let busy = now.busy_ns - base.busy_ns;
            let idle = now.idle_ns - base.idle_ns;
            let total = (busy + idle).max(1);
            let _ = writeln!(
                s,
                "pmd thread numa_id 0 core_id {}:",
                w.core.unwrap_or(w.id)
            );
            let d = |f: fn(&WorkerSnapshot) -> u64| f(&now) - f(base);
            let emc = d(|x| x.exact_hits);
            let mf = d(|x| x.megaflow_hits);
            let lookups = d(|x| x.subtable_lookups);
            let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let recirc = now.recirculations - base.recirculations;
            let passes = ratio(rx + recirc, rx);
            let _ = writeln!(s, "  packets received: {rx}");
            let _ = writeln!(s, "  packet recirculations: {recirc}");
            let _ = writeln!(s, "  avg. datapath passes per packet: {passes:.2}");
            let _ = writeln!(s, "  emc hits: {emc}");
            let _ = writeln!(s, "  megaflow hits: {mf}");
            let _ = writeln!(
                s,
                "  avg. subtable lookups per megaflow hit: {:.2}",
                ratio(lookups, mf)
            );
            let _ = writeln!(s, "  miss with success upcall: {}", d(|x| x.upcalls_ok));
            let _ = writeln!(s, "  miss with failed upcall: {}", d(|x| x.upcalls_failed));
            let _ = writeln!(
                s,
                "  avg. packets per output batch: {:.2}",
                ratio(tx, batches)
            );
            let _ = writeln!(s, "  packets sent: {tx}");
            let _ = writeln!(
                s,
                "  cache flushes (table changes): {}",
                d(|x| x.cache_flushes)
            );
            for r in DropReason::ALL {
                let d = now.drops[r as usize] - base.drops[r as usize];
                let _ = writeln!(s, "  dropped ({}): {d}", r.name());
            }
            let _ = writeln!(
                s,
                "  idle time: {idle} ns ({:.2}%)",
                idle as f64 * 100.0 / total as f64
            );
            let _ = writeln!(
                s,
                "  processing time: {busy} ns ({:.2}%)",
                busy as f64 * 100.0 / total as f64
            );
            if rx > 0 {
                let _ = writeln!(
                    s,
                    "  avg processing time per packet: {:.1} ns",
                    busy as f64 / rx as f64
                );
            }
        }
        s
    }

    fn show(&self) -> String {
        let mut s = format!("bridge {}:\n", self.bridge);
        let ct = &self.conntrack;
        let c = ct.counters();
        let mut pkts = xvs_conntrack::CtStats::default();
        for w in &self.workers {
            pkts.add(&w.counters.load().ct);
        }
        let _ = writeln!(
            s,
            "  conntrack: connections {} (max {}), created {}, expired {}, flushed {}, \
             ct_full {}, zone_full {}, nat_exhausted {}",
            ct.conn_count(),
            ct.max_conns(),
            c.created,
            c.expired,
            c.flushed,
            c.full,
            c.zone_full,
            c.nat_exhausted
        );
        let _ = writeln!(
            s,
            "    packets {}, new {}, est {}, rel {}, inv {}, commit_failed {}",
            pkts.packets,
            pkts.new,
            pkts.established,
            pkts.related,
            pkts.invalid,
            pkts.commit_failed
        );
        let t = &self.translation;
        let lost = t.learn_dropped.load(std::sync::atomic::Ordering::Relaxed);
        let pins = t.controller.load(std::sync::atomic::Ordering::Relaxed);
        let pins_lost = t
            .packet_in_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            s,
            "  learned flows: installed {}, refused {}, lost {lost}; packet-ins requested: {pins}, lost before the OpenFlow server: {pins_lost}",
            self.learned_installed, self.learned_refused
        );
        let _ = writeln!(s, "  flows expired (idle/hard timeout): {}", self.expired);
        let _ = writeln!(
            s,
            "  mac learnings lost: {}",
            t.mac_learning_dropped
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        let reasons = self.translation.nonzero();
        if !reasons.is_empty() {
            let _ = writeln!(s, "  translation drops:");
            for (name, n) in reasons {
                let _ = writeln!(s, "    {name}: {n}");
            }
        }
        for w in &self.workers {
            let c = w.counters.load();
            let _ = writeln!(
                s,
                "  worker {} (core {}): iterations {}, rx {}, tx {}",
                w.id,
                w.core.map_or_else(|| "-".to_string(), |c| c.to_string()),
                c.iterations,
                c.rx_packets,
                c.tx_packets
            );
            let f = &w.frames;
            let _ = writeln!(
                s,
                "    frames: pool {}, free {}, held by ports {}, lost {}",
                f.pool_size.load(std::sync::atomic::Ordering::Relaxed),
                f.free.load(std::sync::atomic::Ordering::Relaxed),
                f.held_by_ports.load(std::sync::atomic::Ordering::Relaxed),
                f.lost.load(std::sync::atomic::Ordering::Relaxed)
            );
            for r in DropReason::ALL {
                let d = c.drops[r as usize];
                if d > 0 {
                    let _ = writeln!(s, "    drop {}: {d}", r.name());
                }
            }
            if c.decapsulated + c.encapsulated + c.neigh_parked > 0 {
                let _ = writeln!(
                    s,
                    "    tunnel: decapsulated {}, encapsulated {}, parked for a neighbour {}, \
                     icmp too-big sent {}",
                    c.decapsulated, c.encapsulated, c.neigh_parked, c.icmp_too_big
                );
            }
            for e in xvs_tunnel::DecapError::ALL {
                let d = c.decap_errors[e.index()];
                if d > 0 {
                    let _ = writeln!(s, "    decap drop {}: {d}", e.name());
                }
            }
            for port in w.ports.load().iter() {
                let p: PortStats = port.counters.load();
                let _ = writeln!(s, "    port {}: {}", port.ofport, port.name);
                let _ = writeln!(
                    s,
                    "      RX packets:{} bytes:{} dropped:{} errors:{}",
                    p.rx_packets, p.rx_bytes, p.rx_dropped, p.errors
                );
                let _ = writeln!(
                    s,
                    "      TX packets:{} bytes:{} dropped:{}",
                    p.tx_packets, p.tx_bytes, p.tx_dropped
                );
            }
        }
        s
    }
}

/// The coverage event of a drop reason (OVS names its drop counters `datapath_drop_*`).
fn drop_event_name(r: DropReason) -> &'static str {
    match r {
        DropReason::TxRingFull => "datapath_drop_tx_ring_full",
        DropReason::NoOutput => "datapath_drop_no_output",
        DropReason::BadDescriptor => "datapath_drop_bad_descriptor",
        DropReason::ActionDrop => "datapath_drop_action",
        DropReason::TranslationFailed => "datapath_drop_xlate_failed",
        DropReason::MissBudget => "datapath_drop_miss_budget",
        DropReason::RewriteFailed => "datapath_drop_rewrite_failed",
        DropReason::RemotePort => "datapath_drop_remote_port",
        DropReason::PoolEmpty => "datapath_drop_pool_empty",
        DropReason::MeterDrop => "datapath_drop_meter",
        DropReason::RecircDepth => "datapath_drop_recirc_depth",
        DropReason::RecircQueueFull => "datapath_drop_recirc_queue",
        DropReason::NatFailed => "datapath_drop_nat_failed",
        DropReason::TunnelDecap => "datapath_drop_tunnel_decap",
        DropReason::TunnelUnknown => "datapath_drop_tunnel_unknown",
        DropReason::TunnelWrongVni => "datapath_drop_tunnel_vni",
        DropReason::TunnelNoRoute => "datapath_drop_tunnel_no_route",
        DropReason::TunnelEncap => "datapath_drop_tunnel_encap",
        DropReason::TunnelNeighQueueFull => "datapath_drop_neigh_queue",
        DropReason::TunnelNeighUnreachable => "datapath_drop_neigh_unreach",
        DropReason::TunnelMtu => "datapath_drop_tunnel_mtu",
        DropReason::NoSuchPort => "datapath_drop_no_such_port",
        DropReason::PortDown => "datapath_drop_port_down",
        DropReason::PortNoRecv => "datapath_drop_port_no_recv",
        DropReason::PortNoFwd => "datapath_drop_port_no_fwd",
    }
}

/// A port's type and options as `dpif/show` prints them (`geneve: key=flow, remote_ip=flow`,
/// options sorted by name as OVS keeps them).
fn dpif_port_type(p: &PortConfig) -> String {
    let kind = p.kind.name();
    let mut opts: Vec<(String, String)> = Vec::new();
    let word = |f: &FlowOr<String>| match f {
        FlowOr::Fixed(v) => v.clone(),
        FlowOr::Word(w) => w.clone(),
    };
    if p.kind.is_tunnel() {
        if let Some(k) = &p.key {
            let k = match k {
                FlowOr::Fixed(v) => FlowOr::Fixed(v.to_string()),
                FlowOr::Word(w) => FlowOr::Word(w.clone()),
            };
            opts.push(("key".into(), word(&k)));
        }
        if let Some(r) = &p.remote_ip {
            let r = match r {
                FlowOr::Fixed(v) => FlowOr::Fixed(v.to_string()),
                FlowOr::Word(w) => FlowOr::Word(w.clone()),
            };
            opts.push(("remote_ip".into(), word(&r)));
        }
        if let Some(v) = p.local_ip {
            opts.push(("local_ip".into(), v.to_string()));
        }
        if let Some(v) = p.dst_port {
            opts.push(("dst_port".into(), v.to_string()));
        }
        if let Some(v) = p.csum {
            opts.push(("csum".into(), v.to_string()));
        }
        if let Some(v) = p.df {
            opts.push(("df_default".into(), v.to_string()));
        }
        if let Some(v) = p.ttl {
            opts.push(("ttl".into(), v.to_string()));
        }
    }
    if opts.is_empty() {
        return kind.to_string();
    }
    opts.sort();
    let list: Vec<String> = opts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{kind}: {}", list.join(", "))
}

/// The optional `zone=N` of the `dpctl/*-conntrack` commands; a datapath name (`ovs-system`,
/// `netdev@ovs-netdev`) and the listed flags are accepted and ignored.
/// A datapath name as OVS's dpctl commands accept it first (`netdev@ovs-netdev`, `system@...`).
fn is_dp_name(p: &str) -> bool {
    p.contains('@')
}

fn ct_zone_arg(params: &[String], flags: &[&str]) -> Result<Option<u16>, String> {
    let mut zone = None;
    for p in params {
        if let Some(z) = p.strip_prefix("zone=") {
            zone = Some(z.parse::<u16>().map_err(|_| format!("invalid zone: {z}"))?);
        } else if !flags.contains(&p.as_str()) && p.starts_with('-') {
            return Err(format!("unknown option: {p}"));
        }
    }
    Ok(zone)
}

/// `dpif/show-dp-features`, in OVS's wording: Antrea checks the `CT *` lines (state, zone, mark,
/// label, NAT) before it programs conntrack flows. Only what the engine really does says Yes.
fn dp_features() -> String {
    let features: [(&str, &str); 17] = [
        ("Masked set action", "No"),
        ("Tunnel push pop", "Yes"),
        ("Ufid", "No"),
        ("Truncate action", "No"),
        ("Clone action", "No"),
        ("Conntrack eventmask", "No"),
        ("Conntrack clear", "Yes"),
        ("Max VLAN headers", "1"),
        ("Recirc", "Yes"),
        ("CT state", "Yes"),
        ("CT zone", "Yes"),
        ("CT mark", "Yes"),
        ("CT label", "Yes"),
        ("CT state NAT", "Yes"),
        ("CT orig tuple", "Yes"),
        ("CT orig tuple for IPv6", "Yes"),
        ("IPv6 ND Extension", "No"),
    ];
    let mut s = String::new();
    for (name, v) in features {
        let _ = writeln!(s, "{name}: {v}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn dpif_show_port_types_as_ovs() {
        let text = r#"
bridge = "br-int"
run_dir = "/tmp/x"
workers = [0]
[[port]]
name = "pa0"
type = "afxdp"
ofport = 1
[[port]]
name = "tun0"
type = "geneve"
ofport = 100
remote_ip = "flow"
key = "flow"
[[port]]
name = "vx0"
type = "vxlan"
ofport = 101
remote_ip = "192.168.1.2"
dst_port = 4790
"#;
        let c = crate::config::Config::parse(text, std::path::Path::new("t.toml")).expect("parses");
        let types: Vec<String> = c.ports.iter().map(super::dpif_port_type).collect();
        assert_eq!(
            types,
            [
                "afxdp",
                "geneve: key=flow, remote_ip=flow",
                "vxlan: dst_port=4790, remote_ip=192.168.1.2"
            ]
        );
    }

    #[test]
    fn dp_features_say_what_antrea_checks() {
        let f = super::dp_features();
        for line in [
            "CT state: Yes",
            "CT zone: Yes",
            "CT mark: Yes",
            "CT label: Yes",
            "CT state NAT: Yes",
            "Recirc: Yes",
        ] {
            assert!(f.lines().any(|l| l == line), "{line} missing:\n{f}");
        }
    }
}
