//! Recirculation ids and the frozen translation state they stand for (OVS `ofproto-dpif-rid`).
//!
//! `ct(table=T)` ends a translation pass: the datapath runs the tracker, then looks the packet
//! up again with a recirculation id. The id names the *frozen state*: the table to resume at and
//! the metadata the actions had written at that point (registers, pkt_mark, tunnel fields), plus
//! in_port, none of which the datapath key carries. Metadata no action wrote is not frozen: it
//! passes through from the recirculated packet's datapath key (zero for registers; the packet's
//! own tunnel metadata), so the id depends only on constants and on key bits the translation
//! already matched, and freezing adds nothing to the megaflow. A miss with `recirc_id != 0`
//! resumes translation from it ([`translate`](crate::translate::translate) thaws it).
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
    /// The frozen metadata bits: those of `written` (other bits zero).
    pub meta: [u64; META_WORDS],
    /// Which metadata bits are frozen: in_port and every bit an action wrote; never
    /// `recirc_id`, `conj_id` or the `ct_*` words.
    pub written: [u64; META_WORDS],
}

impl FrozenState {
    /// Freezes the `written` metadata bits of `flow` (and in_port), to resume at `table`.
    pub fn new(table: u8, flow: &FlowKey, written: &FlowKey) -> Self {
        let mut mask = FlowKey::ZERO;
        mask.words[..META_WORDS].copy_from_slice(&written.words[..META_WORDS]);
        mask.set(layout::IN_PORT, layout::IN_PORT.max_value());
        mask.set(layout::RECIRC_ID, 0);
        mask.set(layout::CONJ_ID, 0);
        for w in CT_WORDS {
            mask.words[w] = 0;
        }
        let mut meta = [0u64; META_WORDS];
        let mut bits = [0u64; META_WORDS];
        for (w, (v, b)) in meta.iter_mut().zip(bits.iter_mut()).enumerate() {
            *b = mask.words[w];
            *v = flow.words[w] & mask.words[w];
        }
        FrozenState {
            table,
            meta,
            written: bits,
        }
    }

    /// Writes the frozen metadata into `flow` (the datapath key of the recirculated packet,
    /// whose packet, `recirc_id`, `ct_*` and unwritten metadata bits are kept).
    pub fn thaw_into(&self, flow: &mut FlowKey) {
        for (w, (v, m)) in self.meta.iter().zip(&self.written).enumerate() {
            flow.words[w] = (flow.words[w] & !m) | v;
        }
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
        let mut written = FlowKey::ZERO;
        written.set(layout::reg(0), 0xffff_ffff);
        written.set(layout::CT_STATE, 0xff);
        written.set(layout::RECIRC_ID, 0xffff_ffff);
        let mut t = RecircTable::new(2, 2);
        let a = t.freeze(FrozenState::new(10, &k, &written)).expect("id");
        assert_eq!(a, (2 << 24) | 1);
        // ct fields, recirc_id and unwritten metadata are not part of the state.
        let mut k2 = k;
        k2.set(layout::CT_STATE, 0x22);
        k2.set(layout::RECIRC_ID, 1);
        k2.set_reg(1, 99);
        assert_eq!(t.freeze(FrozenState::new(10, &k2, &written)), Some(a));
        let b = t.freeze(FrozenState::new(11, &k, &written)).expect("id");
        assert_ne!(a, b);
        k.set_reg(0, 8);
        assert_eq!(t.freeze(FrozenState::new(10, &k, &written)), None, "full");
        assert!(t.overflowed());
        assert_eq!(t.thaw(a).map(|s| s.table), Some(10));
        assert!(
            RecircTable::new(3, 4).thaw(a).is_none(),
            "another worker's id"
        );
        let mut thawed = FlowKey::ZERO;
        thawed.set(layout::RECIRC_ID, u64::from(a));
        thawed.set(layout::CT_STATE, 0x22);
        thawed.set(layout::IN_PORT, 5);
        thawed.set(layout::TUN_ID, 77);
        t.thaw(a).expect("state").thaw_into(&mut thawed);
        assert_eq!(thawed.reg(0), 7);
        assert_eq!(thawed.reg(1), 0, "unwritten: the datapath key's");
        assert_eq!(
            thawed.get(layout::TUN_ID),
            77,
            "unwritten: the datapath key's"
        );
        assert_eq!(thawed.get(layout::IN_PORT), 3);
        assert_eq!(thawed.get(layout::CT_STATE), 0x22);
        assert_eq!(thawed.get(layout::RECIRC_ID), u64::from(a));
        t.clear();
        assert!(t.is_empty() && t.thaw(a).is_none() && !t.overflowed());
    }
}
