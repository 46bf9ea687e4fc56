//! `xvsctl stats`: a live per-worker, per-port view from `xvs/stats` (JSON), with rates
//! computed between two samples.

use serde_json::Value;
use std::fmt::Write as _;

/// One sample of `xvs/stats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// xvsd's clock, ns.
    pub time_ns: u64,
    /// Per worker.
    pub workers: Vec<WorkerSample>,
}

/// One worker's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerSample {
    /// Worker id.
    pub id: u64,
    /// Pinned core, if any.
    pub core: Option<u64>,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Exact-match cache hits.
    pub exact_hits: u64,
    /// Megaflow cache hits.
    pub megaflow_hits: u64,
    /// Misses translated.
    pub upcalls: u64,
    /// Misses not translated.
    pub upcalls_failed: u64,
    /// Drops by reason (non-zero ones, in xvsd's order).
    pub drops: Vec<(String, u64)>,
    /// Per port.
    pub ports: Vec<PortSample>,
}

/// One port's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSample {
    /// Name.
    pub name: String,
    /// OpenFlow number.
    pub ofport: u64,
    /// Received packets.
    pub rx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Receive drops.
    pub rx_dropped: u64,
    /// Transmitted packets.
    pub tx_packets: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Transmit drops.
    pub tx_dropped: u64,
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Parses the JSON text of `xvs/stats`.
pub fn parse(text: &str) -> Result<Sample, serde_json::Error> {
    let v: Value = serde_json::from_str(text)?;
    let workers = v
        .get("workers")
        .and_then(Value::as_array)
        .map(|ws| {
            ws.iter()
                .map(|w| WorkerSample {
                    id: u(w, "id"),
                    core: w.get("core").and_then(Value::as_u64),
                    rx_packets: u(w, "rx_packets"),
                    tx_packets: u(w, "tx_packets"),
                    exact_hits: u(w, "exact_hits"),
                    megaflow_hits: u(w, "megaflow_hits"),
                    upcalls: u(w, "upcalls"),
                    upcalls_failed: u(w, "upcalls_failed"),
                    drops: w
                        .get("drops")
                        .and_then(Value::as_object)
                        .map(|d| {
                            d.iter()
                                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    ports: w
                        .get("ports")
                        .and_then(Value::as_array)
                        .map(|ps| {
                            ps.iter()
                                .map(|p| PortSample {
                                    name: p
                                        .get("name")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_string(),
                                    ofport: u(p, "ofport"),
                                    rx_packets: u(p, "rx_packets"),
                                    rx_bytes: u(p, "rx_bytes"),
                                    rx_dropped: u(p, "rx_dropped"),
                                    tx_packets: u(p, "tx_packets"),
                                    tx_bytes: u(p, "tx_bytes"),
                                    tx_dropped: u(p, "tx_dropped"),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Sample {
        time_ns: u(&v, "time_ns"),
        workers,
    })
}

/// The table for `now`, with per-second rates against `prev` (none on the first sample).
pub fn render(now: &Sample, prev: Option<&Sample>) -> String {
    let secs = prev
        .map(|p| now.time_ns.saturating_sub(p.time_ns) as f64 / 1e9)
        .filter(|s| *s > 0.0);
    let rate = |cur: u64, old: Option<u64>| match (secs, old) {
        (Some(s), Some(o)) => format!("{:.1}", cur.saturating_sub(o) as f64 / s),
        _ => "-".to_string(),
    };
    let mut s = String::new();
    for w in &now.workers {
        let pw = prev.and_then(|p| p.workers.iter().find(|x| x.id == w.id));
        let core = w.core.map_or_else(|| "-".to_string(), |c| c.to_string());
        let _ = writeln!(
            s,
            "worker {} (core {core}): rx {} ({}/s)  tx {} ({}/s)",
            w.id,
            w.rx_packets,
            rate(w.rx_packets, pw.map(|p| p.rx_packets)),
            w.tx_packets,
            rate(w.tx_packets, pw.map(|p| p.tx_packets)),
        );
        let lookups = w.exact_hits + w.megaflow_hits + w.upcalls + w.upcalls_failed;
        let pct = |n: u64| {
            if lookups == 0 {
                0.0
            } else {
                n as f64 * 100.0 / lookups as f64
            }
        };
        let _ = writeln!(
            s,
            "  cache: exact {} ({:.1}%)  megaflow {} ({:.1}%)  upcalls {} ({:.1}%)  failed {}",
            w.exact_hits,
            pct(w.exact_hits),
            w.megaflow_hits,
            pct(w.megaflow_hits),
            w.upcalls,
            pct(w.upcalls),
            w.upcalls_failed
        );
        let drops: Vec<String> = w
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| {
                let old = pw.and_then(|p| p.drops.iter().find(|(pk, _)| pk == k).map(|x| x.1));
                format!("{k} {n} ({}/s)", rate(*n, old.or(pw.map(|_| 0))))
            })
            .collect();
        let _ = writeln!(
            s,
            "  drops: {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(", ")
            }
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>6} {:>12} {:>10} {:>12} {:>10} {:>9} {:>9}",
            "port", "ofport", "rx packets", "rx/s", "tx packets", "tx/s", "rx drop", "tx drop"
        );
        for p in &w.ports {
            let pp = pw.and_then(|x| x.ports.iter().find(|q| q.ofport == p.ofport));
            let _ = writeln!(
                s,
                "  {:<16} {:>6} {:>12} {:>10} {:>12} {:>10} {:>9} {:>9}",
                p.name,
                p.ofport,
                p.rx_packets,
                rate(p.rx_packets, pp.map(|x| x.rx_packets)),
                p.tx_packets,
                rate(p.tx_packets, pp.map(|x| x.tx_packets)),
                p.rx_dropped,
                p.tx_dropped
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"time_ns":1000000000,"workers":[{"id":0,"core":1,"rx_packets":10,
        "tx_packets":8,"exact_hits":6,"megaflow_hits":2,"upcalls":2,"upcalls_failed":0,
        "drops":{"action_drop":2,"port_down":0},
        "ports":[{"name":"pa0","ofport":1,"rx_packets":10,"rx_bytes":980,"rx_dropped":0,
        "tx_packets":0,"tx_bytes":0,"tx_dropped":0,"errors":0}]}]}"#;
    const TWO: &str = r#"{"time_ns":3000000000,"workers":[{"id":0,"core":1,"rx_packets":30,
        "tx_packets":28,"exact_hits":26,"megaflow_hits":2,"upcalls":2,"upcalls_failed":0,
        "drops":{"action_drop":2,"port_down":4},
        "ports":[{"name":"pa0","ofport":1,"rx_packets":30,"rx_bytes":2940,"rx_dropped":0,
        "tx_packets":0,"tx_bytes":0,"tx_dropped":0,"errors":0}]}]}"#;

    #[test]
    fn renders_counters_and_rates() {
        let a = parse(ONE).expect("json");
        assert_eq!(a.workers[0].ports[0].rx_bytes, 980);
        let first = render(&a, None);
        assert!(
            first.starts_with("worker 0 (core 1): rx 10 (-/s)  tx 8 (-/s)\n"),
            "{first}"
        );
        assert!(first.contains("  drops: action_drop 2 (-/s)\n"), "{first}");
        let b = parse(TWO).expect("json");
        let t = render(&b, Some(&a));
        assert!(
            t.starts_with("worker 0 (core 1): rx 30 (10.0/s)  tx 28 (10.0/s)\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "  cache: exact 26 (86.7%)  megaflow 2 (6.7%)  upcalls 2 (6.7%)  failed 0\n"
            ),
            "{t}"
        );
        assert!(t.contains("port_down 4 (2.0/s)"), "{t}");
        let row = t
            .lines()
            .find(|l| l.trim_start().starts_with("pa0"))
            .expect("row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols, ["pa0", "1", "30", "10.0", "0", "0.0", "0", "0"]);
        assert!(parse("not json").is_err());
    }
}
