//! Statistics of cached traffic: what a megaflow's hits are credited to.
//!
//! A translation walks several OpenFlow rules; every packet that later hits the megaflow built
//! from it went (virtually) through the same rules, so each of them must count it, as OVS's
//! revalidators push a datapath flow's statistics to the rules of its translation (its
//! `xlate_cache`). The engine keeps plain per-megaflow packet/byte counters on the hot path and
//! hands the deltas to the megaflow's [`Attribution`] periodically, off the per-packet path.

use std::sync::Arc;

use crate::l2::MacEntry;
use crate::pipeline::FlowRule;
use crate::translate::Translation;

/// TCP FIN flag.
pub const TCP_FIN: u16 = 0x01;
/// TCP RST flag.
pub const TCP_RST: u16 = 0x04;

/// The rules one translation went through, each once.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    rules: Box<[Arc<FlowRule>]>,
    /// Source MACs NORMAL found learned: their hits keep them from aging out.
    macs: Box<[Arc<MacEntry>]>,
}

impl Attribution {
    /// The distinct rules of `t` (a rule matched twice, e.g. by two resubmits, counts once per
    /// packet, as in OVS).
    pub fn of(t: &Translation) -> Self {
        let mut rules: Vec<Arc<FlowRule>> = Vec::with_capacity(t.rules.len());
        for r in &t.rules {
            if !rules.iter().any(|o| Arc::ptr_eq(o, r)) {
                rules.push(Arc::clone(r));
            }
        }
        Attribution {
            rules: rules.into_boxed_slice(),
            macs: t.mac_entries.clone().into_boxed_slice(),
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
    }
}
