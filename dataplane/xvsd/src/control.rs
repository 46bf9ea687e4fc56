//! unixctl commands of the daemon.

use crate::config::Plan;
use crate::openflow::TranslationCounters;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;
use xvs_conntrack::Conntrack;
use xvs_engine::{DropReason, WorkerShared, WorkerSnapshot};
use xvs_io::PortStats;

const COMMANDS: &[(&str, &str)] = &[
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
    ("xvs/add-port", "IFNAME [ofport=N]"),
    ("xvs/del-port", "IFNAME"),
    ("xvs/dump-flows", "[table]"),
    ("xvs/dump-group-stats", ""),
    ("xvs/fdb-show", ""),
    ("xvs/meter-stats", ""),
    ("xvs/ofserver-show", ""),
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
    expired: u64,
    exit: bool,
    conntrack: Arc<Conntrack>,
    /// Origin of the tracker's clock.
    epoch: Instant,
}

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
        }
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
