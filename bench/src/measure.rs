//! Counting: interface counters read from `/proc/<thread in netns>/net/dev` through a file that
//! is opened once inside the namespace and re-read in place (no fork and no `ip netns exec`
//! between the timestamp and the read), and per-CPU busy time from `/proc/stat`.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

use crate::topology::Netns;

/// The counters of one interface that the harness uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct IfCounters {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// `/proc/net/dev` of one namespace, held open.
#[derive(Debug)]
pub struct NetDev {
    file: File,
    buf: String,
}

impl NetDev {
    /// Opens `/proc/thread-self/net/dev` from a thread inside `ns`; the open file keeps
    /// reporting that namespace's devices whoever reads it.
    pub fn open(ns: &Netns) -> Result<Self> {
        let file = ns.enter(|| File::open("/proc/thread-self/net/dev").context("open net/dev"))?;
        Ok(Self {
            file,
            buf: String::with_capacity(4096),
        })
    }

    /// Reads the counters of `ifname`, returning them with the time taken just before the read.
    pub fn read(&mut self, ifname: &str) -> Result<(Instant, IfCounters)> {
        self.buf.clear();
        let t = Instant::now();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_string(&mut self.buf)?;
        let c = parse_net_dev(&self.buf, ifname)?;
        Ok((t, c))
    }
}

/// Parses one interface's line of `/proc/net/dev`.
pub fn parse_net_dev(text: &str, ifname: &str) -> Result<IfCounters> {
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != ifname {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("parse net/dev line {line:?}"))?;
        if v.len() < 12 {
            bail!("short net/dev line {line:?}");
        }
        return Ok(IfCounters {
            rx_packets: v[1],
            rx_dropped: v[3],
            tx_packets: v[9],
            tx_dropped: v[11],
        });
    }
    bail!("interface {ifname} not in net/dev")
}

/// Busy and total jiffies of each CPU from `/proc/stat`, and the user / system / softirq parts.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes(Vec<(u64, u64)>, Vec<[u64; 3]>);

impl CpuTimes {
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
        Ok(Self(parse_proc_stat(&text), parse_split(&text)))
    }

    /// Percentages of `cpu` spent in user (incl. nice), system and softirq between `self`
    /// (earlier) and `later`.
    pub fn split_pct(&self, later: &CpuTimes, cpu: usize) -> Option<[f64; 3]> {
        let (_, t0) = *self.0.get(cpu)?;
        let (_, t1) = *later.0.get(cpu)?;
        let dt = t1.checked_sub(t0).filter(|d| *d > 0)? as f64;
        let (a, b) = (self.1.get(cpu)?, later.1.get(cpu)?);
        Some([0, 1, 2].map(|i| 100.0 * b[i].saturating_sub(a[i]) as f64 / dt))
    }

    /// Busy percentage of `cpu` between `self` (earlier) and `later`.
    pub fn busy_pct(&self, later: &CpuTimes, cpu: usize) -> Option<f64> {
        let (b0, t0) = *self.0.get(cpu)?;
        let (b1, t1) = *later.0.get(cpu)?;
        let dt = t1.checked_sub(t0)?;
        (dt > 0).then(|| 100.0 * b1.saturating_sub(b0) as f64 / dt as f64)
    }
}

/// Per-CPU `[user + nice, system, softirq]` jiffies.
fn parse_split(text: &str) -> Vec<[u64; 3]> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(idx) = it
            .next()
            .and_then(|n| n.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = it.take(7).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 7 {
            continue;
        }
        if out.len() <= idx {
            out.resize(idx + 1, [0; 3]);
        }
        out[idx] = [v[0] + v[1], v[2], v[6]];
    }
    out
}

/// Per-CPU `(busy, total)`; busy is everything but idle and iowait.
fn parse_proc_stat(text: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next() else { continue };
        let Some(idx) = name
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let v: Vec<u64> = it.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 5 {
            continue;
        }
        let total: u64 = v.iter().sum();
        let busy = total - v[3] - v[4];
        if out.len() <= idx {
            out.resize(idx + 1, (0, 0));
        }
        out[idx] = (busy, total);
    }
    out
}

/// min / median / max of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        min: v[0],
        median,
        max: v[n - 1],
    })
}

/// `a / b` when both are known and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// `v` with `prec` decimals, or `-` when unknown (the reports' empty cell).
pub fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

/// The median of `v`, when it has any value.
pub fn median_of(v: impl Iterator<Item = f64>) -> Option<f64> {
    summarize(&v.collect::<Vec<_>>()).map(|s| s.median)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 6000 100    0    7    0     0          0         0     1200      20    0    3    0     0       0          0
";

    #[test]
    fn net_dev_line() {
        let c = parse_net_dev(NET_DEV, "eth0").unwrap();
        assert_eq!(c.rx_packets, 100);
        assert_eq!(c.rx_dropped, 7);
        assert_eq!(c.tx_packets, 20);
        assert_eq!(c.tx_dropped, 3);
        assert!(parse_net_dev(NET_DEV, "d0").is_err());
    }

    #[test]
    fn proc_stat_busy() {
        let ta =
            "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 10 0 10 80 0 0 0 0 0 0\ncpu1 0 0 0 100 0 0 0 0 0 0\n";
        let tb = "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 60 0 20 130 0 0 40 0 0 0\ncpu1 0 0 0 200 0 0 0 0 0 0\n";
        let a = CpuTimes(parse_proc_stat(ta), parse_split(ta));
        let b = CpuTimes(parse_proc_stat(tb), parse_split(tb));
        assert_eq!(a.busy_pct(&b, 0), Some(100.0 * 100.0 / 150.0));
        let s = a.split_pct(&b, 0).unwrap();
        assert_eq!(s.map(|x| (x * 150.0 / 100.0).round()), [50.0, 10.0, 40.0]);
        assert_eq!(a.busy_pct(&b, 1), Some(0.0));
        assert_eq!(a.busy_pct(&b, 2), None);
    }

    #[test]
    fn summary_median() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = summarize(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(summarize(&[]).is_none());
    }
}
