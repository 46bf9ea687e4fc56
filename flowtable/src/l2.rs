//! `output:NORMAL`: the L2 learning switch of a bridge without VLAN configuration (every port
//! a trunk; MACs learned per VLAN), and the port set `FLOOD`/`ALL` send to.
//!
//! # Where the state lives, and why caches stay right
//! The MAC table is part of the pipeline snapshot ([`L2State`]), so translation reads it like
//! a table and the megaflow mask records what NORMAL looked at (`eth_src`, `eth_dst`, the
//! VLAN id). Learning is a side effect of translation ([`MacLearning`] in
//! [`Translation::mac_learning`](crate::translate::Translation::mac_learning)), applied by the
//! control thread with [`Pipeline::learn_macs`](crate::pipeline::Pipeline::learn_macs): a new
//! or moved MAC publishes a new version, and every worker flushes its caches before its next
//! batch, so no megaflow derived from the old table (a flood for a now-known MAC, an output to
//! the old port of a moved MAC) is used afterwards. OVS instead revalidates every datapath
//! flow when its MAC table changes (eventually).
//!
//! Entries age out after [`MAC_AGING_MS`] without use. Use is the translations that see the
//! MAC as a source *and* the cached hits of the megaflows they built (the entry's `used`
//! atomic is in the megaflow's [`Attribution`](crate::stats::Attribution), credited like rule
//! statistics), so a MAC that only talks through the caches does not age out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Idle time after which a learned MAC is forgotten (OVS's default `mac-aging-time`, 300 s).
pub const MAC_AGING_MS: u64 = 300_000;

/// Most MACs a bridge learns (OVS's default `mac-table-size`); beyond it new MACs are not
/// learned (their traffic floods).
pub const MAC_TABLE_SIZE: usize = 8192;

/// A learned MAC: its port and when it was last used.
#[derive(Debug)]
pub struct MacEntry {
    /// OpenFlow port the MAC was last seen on.
    pub port: u32,
    /// Last use, in the pipeline's milliseconds.
    used: AtomicU64,
}

impl MacEntry {
    /// The last use (ms).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Marks the entry used at `now` (ms).
    pub fn touch(&self, now: u64) {
        // Relaxed: a monotonic maximum, read only for aging.
        self.used.fetch_max(now, Ordering::Relaxed);
    }
}

/// A MAC seen as a source on a port (a side effect of translating NORMAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacLearning {
    /// The MAC (48 bits).
    pub mac: u64,
    /// VLAN id (0: untagged).
    pub vlan: u16,
    /// The port it was seen on.
    pub port: u32,
}

/// The bridge's ports and its MAC table, as one snapshot.
#[derive(Debug, Default)]
pub struct L2State {
    ports: Box<[u32]>,
    macs: HashMap<(u64, u16), Arc<MacEntry>>,
}

impl L2State {
    /// The bridge's ports (what FLOOD/ALL/NORMAL flood to, but the ingress port), ascending.
    pub fn ports(&self) -> &[u32] {
        &self.ports
    }

    /// The entry of `mac` on `vlan`.
    pub fn lookup(&self, mac: u64, vlan: u16) -> Option<&Arc<MacEntry>> {
        self.macs.get(&(mac, vlan))
    }

    /// Number of learned MACs.
    pub fn len(&self) -> usize {
        self.macs.len()
    }

    /// True when no MAC is learned.
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
    }

    /// Every entry as (mac, vlan, entry), ordered by port, VLAN, MAC (as `fdb/show`).
    pub fn entries(&self) -> Vec<(u64, u16, &Arc<MacEntry>)> {
        let mut v: Vec<_> = self.macs.iter().map(|(k, e)| (k.0, k.1, e)).collect();
        v.sort_by_key(|(mac, vlan, e)| (e.port, *vlan, *mac));
        v
    }

    /// A copy with `ports` as the port set.
    pub(crate) fn with_ports(&self, ports: &[u32]) -> L2State {
        let mut ports = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        L2State {
            ports: ports.into_boxed_slice(),
            macs: self.macs.clone(),
        }
    }

    /// Applies `learned` at `now`; `None` when nothing changed (every MAC already on its port:
    /// only their use times move, which needs no new version).
    pub(crate) fn learn(&self, learned: &[MacLearning], now: u64) -> Option<L2State> {
        let mut next: Option<L2State> = None;
        for l in learned {
            let cur = next.as_ref().unwrap_or(self);
            match cur.macs.get(&(l.mac, l.vlan)) {
                Some(e) if e.port == l.port => e.touch(now),
                found => {
                    if found.is_none() && cur.macs.len() >= MAC_TABLE_SIZE {
                        continue;
                    }
                    let n = next.get_or_insert_with(|| L2State {
                        ports: self.ports.clone(),
                        macs: self.macs.clone(),
                    });
                    n.macs.insert(
                        (l.mac, l.vlan),
                        Arc::new(MacEntry {
                            port: l.port,
                            used: AtomicU64::new(now),
                        }),
                    );
                }
            }
        }
        next
    }

    /// A copy without the entries unused for `max_idle` ms at `now`, and without entries on
    /// ports no longer in the bridge; `None` when nothing goes.
    pub(crate) fn aged(&self, now: u64, max_idle: u64) -> Option<L2State> {
        let stale = |e: &MacEntry| {
            e.used().saturating_add(max_idle) <= now || self.ports.binary_search(&e.port).is_err()
        };
        if !self.macs.values().any(|e| stale(e)) {
            return None;
        }
        Some(L2State {
            ports: self.ports.clone(),
            macs: self
                .macs
                .iter()
                .filter(|(_, e)| !stale(e))
                .map(|(k, e)| (*k, Arc::clone(e)))
                .collect(),
        })
    }
}

/// True for a group (multicast or broadcast) MAC.
pub fn is_multicast(mac: u64) -> bool {
    mac & (1 << 40) != 0
}
