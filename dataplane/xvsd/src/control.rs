//! unixctl commands of the daemon.

use crate::config::Plan;
use crate::openflow::TranslationCounters;
use std::fmt::Write;
use std::sync::Arc;
use xvs_engine::{DropReason, WorkerShared, WorkerSnapshot};
use xvs_io::PortStats;

const COMMANDS: &[(&str, &str)] = &[
    ("dpif-netdev/pmd-stats-clear", ""),
    ("dpif-netdev/pmd-stats-show", ""),
    ("dpdk/show", ""),
    ("exit", ""),
    ("list-commands", ""),
    ("ofproto/trace", "[bridge] flow"),
    ("version", ""),
    ("xvs/show", ""),
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
    exit: bool,
}

impl Control {
    pub fn new(
        plan: &Plan,
        workers: Vec<Arc<WorkerShared>>,
        translation: Arc<TranslationCounters>,
    ) -> Self {
        let baselines = vec![WorkerSnapshot::default(); workers.len()];
        Self {
            bridge: plan.config.bridge.clone(),
            workers,
            baselines,
            translation,
            learned_installed: 0,
            learned_refused: 0,
            exit: false,
        }
    }

    /// Counts learned flows the control thread installed or the pipeline refused.
    pub fn count_learned(&mut self, installed: usize, refused: usize) {
        self.learned_installed += installed as u64;
        self.learned_refused += refused as u64;
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
                for (c, a) in COMMANDS {
                    let _ = writeln!(s, "  {c:<32}{a}");
                }
                Ok(s)
            }
            "version" => {
                no_args(method)?;
                Ok(format!("xvsd (xvs) {}\n", env!("CARGO_PKG_VERSION")))
            }
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
            let passes = if rx == 0 { 0.0 } else { 1.0 };
            let _ = writeln!(s, "  packets received: {rx}");
            let _ = writeln!(s, "  packet recirculations: 0");
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
        let t = &self.translation;
        let lost = t.learn_dropped.load(std::sync::atomic::Ordering::Relaxed);
        let pins = t.controller.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            s,
            "  learned flows: installed {}, refused {}, lost {lost}; packet-ins requested (not delivered): {pins}",
            self.learned_installed, self.learned_refused
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
            for r in DropReason::ALL {
                let d = c.drops[r as usize];
                if d > 0 {
                    let _ = writeln!(s, "    drop {}: {d}", r.name());
                }
            }
            for (name, ofport, pc) in &w.ports {
                let p: PortStats = pc.load();
                let _ = writeln!(s, "    port {ofport}: {name}");
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
