//! Statistics of cached traffic: what a megaflow's hits are credited to.
//!
//! A translation walks several OpenFlow rules; every packet that later hits the megaflow built
//! from it went (virtually) through the same rules, so each of them must count it, as OVS's
//! revalidators push a datapath flow's statistics to the rules of its translation (its
//! `xlate_cache`). The engine keeps plain per-megaflow packet/byte counters on the hot path and
//! hands the deltas to the megaflow's [`Attribution`] periodically, off the per-packet path.

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::group::Group;
use crate::l2::MacEntry;
use crate::pipeline::{FlowRule, PipelineSnapshot};
use crate::translate::Translation;

/// TCP FIN flag.
pub const TCP_FIN: u16 = 0x01;
/// TCP RST flag.
pub const TCP_RST: u16 = 0x04;

/// Counters of one group and its buckets (`dump-group-stats`), shared by the snapshots that
/// hold the same group; a modified group starts from zero.
#[derive(Debug)]
pub struct GroupStats {
    group: Arc<Group>,
    packets: AtomicU64,
    bytes: AtomicU64,
    buckets: Box<[(AtomicU64, AtomicU64)]>,
}

impl GroupStats {
    /// Zero counters for `group`.
    pub fn new(group: Arc<Group>) -> Self {
        let buckets = group
            .buckets
            .iter()
            .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
            .collect();
        GroupStats {
            group,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            buckets,
        }
    }

    /// The group counted.
    pub fn group(&self) -> &Arc<Group> {
        &self.group
    }

    /// (packets, bytes) through the group.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// (packets, bytes) of each bucket, in bucket order.
    pub fn bucket_counts(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .map(|(p, b)| (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
            .collect()
    }
}

/// A group a translation went through: its counters, the bucket taken (`None`: no bucket),
/// and whether this is the group's first appearance in the list (the group counts once per
/// packet).
#[derive(Debug, Clone)]
struct GroupHit {
    stats: Arc<GroupStats>,
    bucket: Option<usize>,
    first: bool,
}

/// The rules one translation went through, each once, and the group buckets it took.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    rules: Box<[Arc<FlowRule>]>,
    groups: Box<[GroupHit]>,
    /// Source MACs NORMAL found learned: their hits keep them from aging out.
    macs: Box<[Arc<MacEntry>]>,
}

impl Attribution {
    /// The distinct rules of `t` (a rule matched twice, e.g. by two resubmits, counts once per
    /// packet, as in OVS) and the group buckets it took, resolved in `snap` (the snapshot `t`
    /// was translated from).
    pub fn of(t: &Translation, snap: &PipelineSnapshot) -> Self {
        let mut groups: Vec<GroupHit> = Vec::new();
        for &(id, bucket) in &t.groups {
            let Some(stats) = snap.group_stats(id) else {
                continue;
            };
            let same = |g: &GroupHit| Arc::ptr_eq(&g.stats, stats);
            if groups.iter().any(|g| same(g) && g.bucket == bucket) {
                continue;
            }
            let first = !groups.iter().any(same);
            groups.push(GroupHit {
                stats: Arc::clone(stats),
                bucket,
                first,
            });
        }
        let mut rules: Vec<Arc<FlowRule>> = Vec::with_capacity(t.rules.len());
        for r in &t.rules {
            if !rules.iter().any(|o| Arc::ptr_eq(o, r)) {
                rules.push(Arc::clone(r));
            }
        }
        Attribution {
            rules: rules.into_boxed_slice(),
            macs: t.mac_entries.clone().into_boxed_slice(),
            groups: groups.into_boxed_slice(),
        }
    }

    /// The rules credited.
    pub fn rules(&self) -> &[Arc<FlowRule>] {
        &self.rules
    }

    /// True when no rule is credited (a table-miss drop).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Records that packets with TCP flags `tcp_flags` (accumulated over the credited hits)
    /// went through the rules: a FIN or RST starts the rules' `fin_idle_timeout` /
    /// `fin_hard_timeout` (learned flows), as OVS's `fin_timeout` does.
    pub fn credit_tcp_flags(&self, tcp_flags: u16, now: u64) {
        if tcp_flags & (TCP_FIN | TCP_RST) == 0 {
            return;
        }
        for r in self.rules.iter() {
            r.stats().record_fin(now);
        }
    }

    /// Adds `packets`/`bytes` to every rule and raises their last-used time to `now`
    /// (milliseconds, the pipeline's clock). The counters are `RuleStats` atomics that outlive
    /// replaced snapshots when a modify keeps them, so crediting a rule of an older version
    /// still reaches the flow `dump-flows` shows.
    pub fn credit(&self, packets: u64, bytes: u64, now: u64) {
        if packets == 0 {
            return;
        }
        for r in self.rules.iter() {
            r.stats().record(packets, bytes, now);
        }
        for m in self.macs.iter() {
            m.touch(now);
        }
        // Relaxed: independent counters, as the rules' (see `RuleStats`).
        for g in self.groups.iter() {
            if g.first {
                g.stats.packets.fetch_add(packets, Ordering::Relaxed);
                g.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            if let Some((p, b)) = g.bucket.and_then(|i| g.stats.buckets.get(i)) {
                p.fetch_add(packets, Ordering::Relaxed);
                b.fetch_add(bytes, Ordering::Relaxed);
            }
        }
    }
}
