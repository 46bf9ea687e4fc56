//! Recirculation ids and the frozen translation state they stand for (OVS `ofproto-dpif-rid`).
//!
//! `ct(table=T)` ends a translation pass: the datapath runs the tracker, then looks the packet
//! up again with a recirculation id. The id names the *frozen state*: the table to resume at and
//! the metadata the pipeline had at that point (in_port, pkt_mark, registers, tunnel metadata),
//! which the datapath key does not carry. A miss with `recirc_id != 0` resumes translation from
//! it ([`translate`](crate::translate::translate) thaws it).
//!
//! # Ownership and lifetime
//! Each worker owns one table (inside its [`TranslateScratch`](crate::translate::TranslateScratch)),
//! so ids are allocated without any shared lock: worker `w`'s ids are `w << 24 | n` with
//! `n` in `1..2^24`, unique across workers (handy in traces) although a worker only ever
//! resolves its own. Equal frozen states share one id, so every packet of a megaflow, and
//! every megaflow freezing the same state, recirculates under the same id and the
//! post-recirculation megaflows are shared.
//!
//! An id must stay valid while a cached megaflow can emit it. Cached entries only live within
//! one table version (the worker flushes both cache tiers when the version moves), so the table
//! is emptied exactly when the caches are flushed: on a version change, or when it is full (the
//! translator then reports a new cache generation so the worker flushes too). While full, a
//! translation that needs a new id fails with [`DropReason::RecircFull`](crate::translate::DropReason).

use std::collections::HashMap;

use xvs_packet::key::layout;
use xvs_packet::FlowKey;

/// Metadata words of the key: everything before the packet fields.
const META_WORDS: usize = 26;
/// Words of connection-tracking fields (filled by the tracker, not frozen).
const CT_WORDS: std::ops::Range<usize> = 10..19;

/// Ids a worker's table holds at most by default.
pub const DEFAULT_RECIRC_CAPACITY: usize = 65_536;

/// Bits of an id left to the per-worker counter.
const LOCAL_BITS: u32 = 24;

/// What a recirculated packet resumes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrozenState {
    /// The table to resume at.
    pub table: u8,
    /// Metadata words of the working key at the freeze (in_port, pkt_mark, registers, tunnel);
    /// `recirc_id`, `conj_id` and the `ct_*` words are zero.
    pub meta: [u64; META_WORDS],
}

impl FrozenState {
    /// Freezes `flow`'s metadata, to resume at `table`.
    pub fn new(table: u8, flow: &FlowKey) -> Self {
        let mut meta = [0u64; META_WORDS];
        meta.copy_from_slice(&flow.words[..META_WORDS]);
        for w in CT_WORDS {
            meta[w] = 0;
        }
        let mut k = FlowKey::ZERO;
        k.words[0] = meta[0];
        k.words[1] = meta[1];
        k.set(layout::RECIRC_ID, 0);
        k.set(layout::CONJ_ID, 0);
        meta[0] = k.words[0];
        meta[1] = k.words[1];
        FrozenState { table, meta }
    }

    /// The key bits a frozen state is taken from (in_port, pkt_mark, registers, tunnel
    /// metadata): a translation that freezes must match all of them.
    pub fn metadata_mask() -> FlowKey {
        let mut m = FlowKey::ZERO;
        for (w, v) in m.words[..META_WORDS].iter_mut().enumerate() {
            if !CT_WORDS.contains(&w) {
                *v = u64::MAX;
            }
        }
        m.set(layout::CONJ_ID, 0);
        m
    }

    /// Writes the frozen metadata into `flow` (the datapath key of the recirculated packet,
    /// whose packet, `recirc_id` and `ct_*` fields are kept).
    pub fn thaw_into(&self, flow: &mut FlowKey) {
        let recirc = flow.get(layout::RECIRC_ID);
        for (w, v) in self.meta.iter().enumerate() {
            if !CT_WORDS.contains(&w) {
                flow.words[w] = *v;
            }
        }
        flow.set(layout::RECIRC_ID, recirc);
    }
}

/// One worker's recirculation ids.
#[derive(Debug)]
pub struct RecircTable {
    base: u32,
    capacity: usize,
    states: Vec<FrozenState>,
    ids: HashMap<FrozenState, u32>,
    /// A freeze found the table full since the last clear.
    overflowed: bool,
}

impl Default for RecircTable {
    fn default() -> Self {
        Self::new(0, DEFAULT_RECIRC_CAPACITY)
    }
}

impl RecircTable {
    /// The table of worker `worker` (its ids start at `worker << 24 | 1`), holding at most
    /// `capacity` ids (capped at 2^24 - 1).
    pub fn new(worker: u8, capacity: usize) -> Self {
        RecircTable {
            base: u32::from(worker) << LOCAL_BITS,
            capacity: capacity.min((1 << LOCAL_BITS) - 1),
            states: Vec::new(),
            ids: HashMap::new(),
            overflowed: false,
        }
    }

    /// The id of `state`, allocating one if needed; `None` when the table is full.
    pub fn freeze(&mut self, state: FrozenState) -> Option<u32> {
        if let Some(&id) = self.ids.get(&state) {
            return Some(id);
        }
        if self.states.len() >= self.capacity {
            self.overflowed = true;
            return None;
        }
        self.states.push(state);
        let id = self.base | self.states.len() as u32;
        self.ids.insert(state, id);
        Some(id)
    }

    /// The state `id` stands for, if this table allocated it (since the last clear).
    pub fn thaw(&self, id: u32) -> Option<&FrozenState> {
        if id & !((1 << LOCAL_BITS) - 1) != self.base {
            return None;
        }
        let n = (id & ((1 << LOCAL_BITS) - 1)) as usize;
        self.states.get(n.checked_sub(1)?)
    }

    /// Ids allocated.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True when no id is allocated.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// True when a freeze was refused since the last clear.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Forgets every id (call only when no cached entry can emit one any more).
    pub fn clear(&mut self) {
        self.states.clear();
        self.ids.clear();
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_states_share_an_id_and_ids_are_per_worker() {
        let mut k = FlowKey::ZERO;
        k.set(layout::IN_PORT, 3);
        k.set_reg(0, 7);
        k.set(layout::CT_STATE, 0x21);
        k.set(layout::RECIRC_ID, 9);
        let mut t = RecircTable::new(2, 2);
        let a = t.freeze(FrozenState::new(10, &k)).expect("id");
        assert_eq!(a, (2 << 24) | 1);
        // ct fields and recirc_id are not part of the state.
        let mut k2 = k;
        k2.set(layout::CT_STATE, 0x22);
        k2.set(layout::RECIRC_ID, 1);
        assert_eq!(t.freeze(FrozenState::new(10, &k2)), Some(a));
        let b = t.freeze(FrozenState::new(11, &k)).expect("id");
        assert_ne!(a, b);
        k.set_reg(0, 8);
        assert_eq!(t.freeze(FrozenState::new(10, &k)), None, "full");
        assert!(t.overflowed());
        assert_eq!(t.thaw(a).map(|s| s.table), Some(10));
        assert!(
            RecircTable::new(3, 4).thaw(a).is_none(),
            "another worker's id"
        );
        let mut thawed = FlowKey::ZERO;
        thawed.set(layout::RECIRC_ID, u64::from(a));
        thawed.set(layout::CT_STATE, 0x22);
        t.thaw(a).expect("state").thaw_into(&mut thawed);
        assert_eq!(thawed.reg(0), 7);
        assert_eq!(thawed.get(layout::IN_PORT), 3);
        assert_eq!(thawed.get(layout::CT_STATE), 0x22);
        assert_eq!(thawed.get(layout::RECIRC_ID), u64::from(a));
        t.clear();
        assert!(t.is_empty() && t.thaw(a).is_none() && !t.overflowed());
    }
}
