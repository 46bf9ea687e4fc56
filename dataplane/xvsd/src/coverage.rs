//! `coverage/show`: event counters with OVS's rates over the last 5 seconds, minute and hour.
//!
//! The events are the counters xvsd already keeps (worker counters, drop reasons, tracker,
//! OpenFlow server); the control thread samples their totals every 5 seconds (OVS's
//! `COVERAGE_RUN_INTERVAL`), so rates lag by at most one interval, as in OVS.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Seconds per sample.
const INTERVAL: Duration = Duration::from_secs(5);
/// Samples per minute.
const PER_MINUTE: usize = 12;
/// Minutes kept.
const MINUTES: usize = 60;

/// The rate history of a set of named totals.
#[derive(Debug)]
pub struct Coverage {
    n_events: usize,
    /// Totals at the last sample.
    last: Vec<u64>,
    /// Per-interval deltas, newest last (at most a minute's worth).
    intervals: VecDeque<Vec<u64>>,
    /// Per-minute deltas, newest last (at most an hour's worth).
    minutes: VecDeque<Vec<u64>>,
    /// Deltas of the minute being filled.
    minute: Vec<u64>,
    in_minute: usize,
    next: Instant,
}

impl Coverage {
    /// A history starting at `now` from `totals`.
    pub fn new(now: Instant, totals: &[(&'static str, u64)]) -> Self {
        Self {
            n_events: totals.len(),
            last: totals.iter().map(|t| t.1).collect(),
            intervals: VecDeque::new(),
            minutes: VecDeque::new(),
            minute: vec![0; totals.len()],
            in_minute: 0,
            next: now + INTERVAL,
        }
    }

    /// Samples `totals` (same names, same order as at creation) when an interval has passed.
    pub fn tick(&mut self, now: Instant, totals: &[(&'static str, u64)]) {
        while now >= self.next {
            self.next += INTERVAL;
            let delta: Vec<u64> = totals
                .iter()
                .zip(&self.last)
                .map(|(t, l)| t.1.saturating_sub(*l))
                .collect();
            self.last = totals.iter().map(|t| t.1).collect();
            for (m, d) in self.minute.iter_mut().zip(&delta) {
                *m += d;
            }
            self.intervals.push_back(delta);
            if self.intervals.len() > PER_MINUTE {
                self.intervals.pop_front();
            }
            self.in_minute += 1;
            if self.in_minute == PER_MINUTE {
                self.in_minute = 0;
                let full = std::mem::replace(&mut self.minute, vec![0; self.n_events]);
                self.minutes.push_back(full);
                if self.minutes.len() > MINUTES {
                    self.minutes.pop_front();
                }
            }
            // Only the newest sample matters for totals; skip idle intervals in one step.
            if now >= self.next + INTERVAL * (PER_MINUTE * MINUTES) as u32 {
                self.next = now + INTERVAL;
            }
        }
    }

    /// The `coverage/show` text for `totals` (current values; events never hit are counted,
    /// not listed).
    pub fn show(&self, totals: &[(&'static str, u64)]) -> String {
        let mut body = String::new();
        let mut never = 0;
        let mut hash: u32 = 0x811c_9dc5;
        for (i, (name, total)) in totals.iter().enumerate() {
            if *total == 0 {
                never += 1;
                continue;
            }
            let last5 = self.intervals.back().and_then(|v| v.get(i)).copied();
            let minute: u64 = self.intervals.iter().filter_map(|v| v.get(i)).sum();
            let hour: u64 = self.minutes.iter().filter_map(|v| v.get(i)).sum::<u64>()
                + self.minute.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                body,
                "{name:<24} {:5.1}/sec {:9.3}/sec {:13.4}/sec   total: {total}",
                last5.unwrap_or(0) as f64 / INTERVAL.as_secs_f64(),
                minute as f64 / 60.0,
                hour as f64 / 3600.0,
            );
            for b in name.bytes() {
                hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
        }
        let mut s = format!(
            "Event coverage, avg rate over last: 5 seconds, last minute, last hour,  \
             hash={hash:08x}:\n"
        );
        s.push_str(&body);
        let _ = writeln!(s, "{never} events never hit");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_layout_follow_ovs() {
        let t0 = Instant::now();
        let mut c = Coverage::new(t0, &[("a", 0), ("b", 0)]);
        let s = c.show(&[("a", 0), ("b", 0)]);
        assert_eq!(s.lines().last(), Some("2 events never hit"));
        // 50 events in the first 5 s: 10/s over 5 s, 50/60 over the minute, 50/3600 an hour.
        c.tick(t0 + INTERVAL, &[("a", 50), ("b", 0)]);
        let s = c.show(&[("bridge_reconfigure", 50), ("b", 0)]);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with(
            "Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash="
        ));
        assert_eq!(
            lines[1],
            "bridge_reconfigure        10.0/sec     0.833/sec        0.0139/sec   total: 50"
        );
        assert_eq!(lines[2], "1 events never hit");
        // A quiet interval: the 5 s rate falls to 0, the minute keeps it.
        c.tick(t0 + INTERVAL * 2, &[("a", 50), ("b", 0)]);
        let s = c.show(&[("a", 50), ("b", 0)]);
        assert!(
            s.contains("a                          0.0/sec     0.833/sec"),
            "{s}"
        );
    }

    #[test]
    fn a_long_pause_does_not_loop_forever() {
        let t0 = Instant::now();
        let mut c = Coverage::new(t0, &[("a", 0)]);
        c.tick(t0 + Duration::from_secs(10 * 24 * 3600), &[("a", 7)]);
        assert!(c.show(&[("a", 7)]).contains("total: 7"));
    }
}
