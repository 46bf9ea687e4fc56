//! Meter enforcement on the datapath: one lock-free rate limiter per band, shared by every
//! worker.
//!
//! # Why one shared limiter, not per-worker buckets
//! Splitting a meter's rate between workers (each enforcing rate/n) needs no shared state, but
//! is wrong whenever the metered traffic is not spread evenly: one flow lands on one worker
//! (RSS), which would then get 1/n of the configured rate. A meter is also rarely on the
//! fast path of bulk traffic (Antrea meters packet-ins and denied-connection logging). So each
//! band is one `AtomicU64`, updated with a compare-and-swap per metered packet: the exact rate
//! whatever the spread, contention only between workers metering the same band at once.
//!
//! # The algorithm
//! Each band is a GCRA (the virtual-scheduling form of a token bucket): the atomic holds the
//! band's *theoretical arrival time* `tat` in nanoseconds of the caller's clock. A packet of
//! cost `c` (`1e9 / rate` ns per packet for `pktps`, `bits * 1e6 / rate` ns for `kbps`)
//! arriving at `now` conforms when `max(tat, now) + c - now <= tau`, where the burst tolerance
//! `tau = burst_size * 1e9 / rate` (burst in packets or kilobits; without the `burst` flag the
//! burst is one second of rate, as OVS's userspace datapath does); a conforming packet moves
//! `tat` to `max(tat, now) + c`. Equivalent to a bucket of `burst_size` tokens refilled at
//! `rate`, without a separate refill timestamp, hence one word and one CAS.
//!
//! As OpenFlow specifies, a packet over the rate of several bands is handled by the band with
//! the highest rate it exceeds; a `drop` band drops it. `dscp_remark` bands are counted but do
//! not remark (OVS's userspace datapath does not either). Counters per meter and per band are
//! relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::meter::{flags, BandType, Meter};

/// The run-time state of one band.
#[derive(Debug)]
pub struct BandState {
    band_type: BandType,
    rate: u32,
    /// Burst tolerance in ns.
    tau: u64,
    /// Theoretical arrival time, ns.
    tat: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl BandState {
    /// Packets this band handled (exceeded it and were given to it).
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes this band handled.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The band's rate (kbps or pktps).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The band's type.
    pub fn band_type(&self) -> BandType {
        self.band_type
    }

    /// Takes a packet costing `cost` ns at `now`; false when it exceeds the band.
    fn conform(&self, now: u64, cost: u64) -> bool {
        // Relaxed: the word is the whole state; no other memory is published through it.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            let next = start.saturating_add(cost);
            if next - now > self.tau {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

/// A meter as the datapath runs it. Shared (`Arc`) by every worker and kept across table
/// versions until the meter is modified or deleted.
#[derive(Debug)]
pub struct MeterState {
    config: Arc<Meter>,
    kbps: bool,
    bands: Box<[BandState]>,
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl MeterState {
    /// Fresh state for `config` (every band's burst available).
    pub fn new(config: Arc<Meter>) -> Self {
        let kbps = config.flags & flags::KBPS != 0 && config.flags & flags::PKTPS == 0;
        let burst_flag = config.flags & flags::BURST != 0;
        let bands = config
            .bands
            .iter()
            .map(|b| {
                let rate = u64::from(b.rate.max(1));
                let burst = if burst_flag && b.burst_size != 0 {
                    u64::from(b.burst_size)
                } else {
                    rate
                };
                BandState {
                    band_type: b.band_type,
                    rate: b.rate,
                    tau: burst.saturating_mul(1_000_000_000) / rate,
                    tat: AtomicU64::new(0),
                    packets: AtomicU64::new(0),
                    bytes: AtomicU64::new(0),
                }
            })
            .collect();
        MeterState {
            config,
            kbps,
            bands,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The meter's configuration.
    pub fn config(&self) -> &Arc<Meter> {
        &self.config
    }

    /// The bands' states, in configuration order.
    pub fn bands(&self) -> &[BandState] {
        &self.bands
    }

    /// Packets that entered the meter.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes that entered the meter.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Meters one packet of `bytes` at `now` (ns, any monotonic clock shared by the callers).
    /// Returns false when the packet must be dropped. Lock-free; never allocates.
    pub fn pass(&self, now: u64, bytes: u32) -> bool {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(u64::from(bytes), Ordering::Relaxed);
        let mut exceeded: Option<&BandState> = None;
        for b in self.bands.iter() {
            let rate = u64::from(b.rate.max(1));
            let cost = if self.kbps {
                u64::from(bytes) * 8 * 1_000_000 / rate
            } else {
                1_000_000_000 / rate
            };
            if !b.conform(now, cost) && exceeded.is_none_or(|e| b.rate > e.rate) {
                exceeded = Some(b);
            }
        }
        let Some(b) = exceeded else {
            return true;
        };
        b.packets.fetch_add(1, Ordering::Relaxed);
        b.bytes.fetch_add(u64::from(bytes), Ordering::Relaxed);
        b.band_type != BandType::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::parse_meter;

    fn state(s: &str) -> MeterState {
        MeterState::new(Arc::new(parse_meter(s).expect("meter")))
    }

    /// Offers `pps` packets per second of `len` bytes for `secs` seconds, evenly spaced;
    /// returns how many passed.
    fn offer(m: &MeterState, start: u64, pps: u64, secs: u64, len: u32) -> u64 {
        let gap = 1_000_000_000 / pps;
        (0..pps * secs)
            .filter(|i| m.pass(start + i * gap, len))
            .count() as u64
    }

    #[test]
    fn pktps_limits_to_the_rate_after_the_burst() {
        let m = state("meter=1,pktps,burst,stats,bands=type=drop,rate=100,burst_size=10");
        // 1000 pps for 2 s: the burst (10) plus 100 per second.
        let passed = offer(&m, 1_000_000_000, 1000, 2, 64);
        assert!((200..=211).contains(&passed), "{passed}");
        assert_eq!(m.packets(), 2000);
        assert_eq!(m.bands()[0].packets(), 2000 - passed);
        // Under the rate nothing is dropped.
        let under = offer(&m, 10_000_000_000, 50, 2, 64);
        assert_eq!(under, 100);
    }

    #[test]
    fn kbps_limits_bits() {
        // 800 kbps = 100 kB/s; 1000-byte packets -> 100 per second.
        let m = state("meter=2,kbps,bands=type=drop,rate=800");
        let passed = offer(&m, 5_000_000_000, 1000, 3, 1000);
        // Default burst: one second of rate (100 packets) + 100 per second.
        assert!((395..=401).contains(&passed), "{passed}");
        assert_eq!(m.bands()[0].bytes(), (3000 - passed) * 1000);
    }

    #[test]
    fn the_highest_exceeded_band_decides() {
        let m = state(
            "meter=3,pktps,burst,bands=type=dscp_remark,rate=200,burst_size=10,prec_level=1 type=drop,rate=100,burst_size=10",
        );
        // 150 pps exceeds only the 100 pps drop band, which drops the excess.
        let a = offer(&m, 1_000_000_000, 150, 2, 64);
        assert!((200..=211).contains(&a), "{a}");
        assert_eq!(m.bands()[0].packets(), 0);
        // 400 pps exceeds both: the remark band (higher rate) takes the excess and the packet
        // passes unless only the drop band is exceeded.
        let m2 = state(
            "meter=4,pktps,burst,bands=type=dscp_remark,rate=200,burst_size=1,prec_level=1 type=drop,rate=100,burst_size=1",
        );
        let b = offer(&m2, 1_000_000_000, 400, 1, 64);
        assert!(m2.bands()[0].packets() > 0);
        assert!(b > 100, "{b}");
    }

    #[test]
    fn workers_share_one_rate() {
        let m = Arc::new(state(
            "meter=5,pktps,burst,bands=type=drop,rate=1000,burst_size=1",
        ));
        // Two threads offer 2000 pps each over the same virtual second.
        let passed: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let m = Arc::clone(&m);
                    s.spawn(move || offer(&m, 1_000_000_000, 2000, 1, 64))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert!((990..=1010).contains(&passed), "{passed}");
    }
}
