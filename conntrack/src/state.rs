//! `ct_state` bits, with Open vSwitch's values.

use std::fmt;

/// The `ct_state` of a packet: the bits OpenFlow matches after a `ct()` action.
///
/// The values are Open vSwitch's (`CS_*` in `lib/packets.h`), which are also the values of the
/// `ct_state` field in the flow key (`xvs_packet::key::layout::CT_STATE`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtState(u8);

impl CtState {
    /// No bit set (the packet was never tracked, or `ct_clear`).
    pub const EMPTY: CtState = CtState(0);
    /// `new` (0x01): the start of a new connection, or a connection not yet seen in both
    /// directions (UDP/ICMP/other), or a TCP connection that has not completed its handshake
    /// from this side.
    pub const NEW: CtState = CtState(0x01);
    /// `est` (0x02): part of an existing connection that has seen traffic in both directions
    /// (for TCP: a segment accepted by the sequence tracking).
    pub const ESTABLISHED: CtState = CtState(0x02);
    /// `rel` (0x04): related to an existing connection (an ICMP error about it).
    pub const RELATED: CtState = CtState(0x04);
    /// `rpl` (0x08): the packet travels in the reply direction.
    pub const REPLY_DIR: CtState = CtState(0x08);
    /// `inv` (0x10): invalid: malformed, out of window, bad flags, or impossible to track.
    pub const INVALID: CtState = CtState(0x10);
    /// `trk` (0x20): the packet went through the tracker.
    pub const TRACKED: CtState = CtState(0x20);
    /// `snat` (0x40): source NAT (or un-DNAT of a reply) was applied.
    pub const SRC_NAT: CtState = CtState(0x40);
    /// `dnat` (0x80): destination NAT (or un-SNAT of a reply) was applied.
    pub const DST_NAT: CtState = CtState(0x80);

    /// From raw bits.
    pub const fn from_bits(bits: u8) -> CtState {
        CtState(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: CtState) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any bit of `other` is set.
    pub const fn intersects(self, other: CtState) -> bool {
        self.0 & other.0 != 0
    }

    /// True when no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: CtState) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: CtState) {
        self.0 &= !other.0;
    }
}

impl std::ops::BitOr for CtState {
    type Output = CtState;
    fn bitor(self, rhs: CtState) -> CtState {
        CtState(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for CtState {
    fn bitor_assign(&mut self, rhs: CtState) {
        self.0 |= rhs.0;
    }
}

const NAMES: [(u8, &str); 8] = [
    (0x01, "new"),
    (0x02, "est"),
    (0x04, "rel"),
    (0x08, "rpl"),
    (0x10, "inv"),
    (0x20, "trk"),
    (0x40, "snat"),
    (0x80, "dnat"),
];

/// Formats as the set bits in OpenFlow match syntax, e.g. `+new+trk`, or `0` when empty.
impl fmt::Display for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                write!(f, "+{name}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CtState({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_ovs() {
        assert_eq!(CtState::NEW.bits(), 0x01);
        assert_eq!(CtState::ESTABLISHED.bits(), 0x02);
        assert_eq!(CtState::RELATED.bits(), 0x04);
        assert_eq!(CtState::REPLY_DIR.bits(), 0x08);
        assert_eq!(CtState::INVALID.bits(), 0x10);
        assert_eq!(CtState::TRACKED.bits(), 0x20);
        assert_eq!(CtState::SRC_NAT.bits(), 0x40);
        assert_eq!(CtState::DST_NAT.bits(), 0x80);
    }

    #[test]
    fn display() {
        assert_eq!((CtState::NEW | CtState::TRACKED).to_string(), "+new+trk");
        assert_eq!(CtState::EMPTY.to_string(), "0");
        let mut s = CtState::ESTABLISHED | CtState::REPLY_DIR | CtState::TRACKED;
        s.remove(CtState::REPLY_DIR);
        assert_eq!(s.to_string(), "+est+trk");
        assert!(s.contains(CtState::TRACKED));
        assert!(!s.intersects(CtState::NEW | CtState::INVALID));
    }
}
