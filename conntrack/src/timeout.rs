//! Timeout policies: per-state idle timeouts, global or per zone.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::CtError;

/// Idle timeouts by connection state, named as OVS's `CT_Timeout_Policy` attributes.
///
/// The defaults are OVS's userspace defaults (`lib/conntrack-tp.c`). As in OVS, UDP, SCTP and
/// every other non-TCP, non-ICMP protocol use the `udp_*` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP after the first packet (SYN sent). Default 30 s.
    pub tcp_syn_sent: Duration,
    /// TCP while either side has not yet established. Default 30 s.
    pub tcp_syn_recv: Duration,
    /// TCP established. Default 24 h.
    pub tcp_established: Duration,
    /// TCP after one side started closing. Default 15 min.
    pub tcp_fin_wait: Duration,
    /// TCP after both sides sent FIN. Default 45 s.
    pub tcp_time_wait: Duration,
    /// TCP closed (both sides done, or reset). Default 30 s.
    pub tcp_close: Duration,
    /// UDP/other after the first packet. Default 60 s.
    pub udp_first: Duration,
    /// UDP/other after more packets in the original direction only. Default 60 s.
    pub udp_single: Duration,
    /// UDP/other after traffic in both directions. Default 30 s.
    pub udp_multiple: Duration,
    /// ICMP query before a reply. Default 60 s.
    pub icmp_first: Duration,
    /// ICMP query after a reply. Default 30 s.
    pub icmp_reply: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: Duration::from_secs(30),
            tcp_syn_recv: Duration::from_secs(30),
            tcp_established: Duration::from_secs(24 * 60 * 60),
            tcp_fin_wait: Duration::from_secs(15 * 60),
            tcp_time_wait: Duration::from_secs(45),
            tcp_close: Duration::from_secs(30),
            udp_first: Duration::from_secs(60),
            udp_single: Duration::from_secs(60),
            udp_multiple: Duration::from_secs(30),
            icmp_first: Duration::from_secs(60),
            icmp_reply: Duration::from_secs(30),
        }
    }
}

/// The timeout a state transition asks for (OVS `enum ct_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tm {
    TcpFirstPacket = 0,
    TcpOpening,
    TcpEstablished,
    TcpClosing,
    TcpFinWait,
    TcpClosed,
    OtherFirst,
    OtherMultiple,
    OtherBidir,
    IcmpFirst,
    IcmpReply,
}

const N_TM: usize = 11;

impl Timeouts {
    fn to_array(self) -> [u64; N_TM] {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Index = Tm; the mapping is OVS's `tm_to_ct_dpif_tp`.
        [
            ns(self.tcp_syn_sent),
            ns(self.tcp_syn_recv),
            ns(self.tcp_established),
            ns(self.tcp_fin_wait),
            ns(self.tcp_time_wait),
            ns(self.tcp_close),
            ns(self.udp_first),
            ns(self.udp_single),
            ns(self.udp_multiple),
            ns(self.icmp_first),
            ns(self.icmp_reply),
        ]
    }

    fn from_array(a: [u64; N_TM]) -> Timeouts {
        let d = Duration::from_nanos;
        Timeouts {
            tcp_syn_sent: d(a[0]),
            tcp_syn_recv: d(a[1]),
            tcp_established: d(a[2]),
            tcp_fin_wait: d(a[3]),
            tcp_time_wait: d(a[4]),
            tcp_close: d(a[5]),
            udp_first: d(a[6]),
            udp_single: d(a[7]),
            udp_multiple: d(a[8]),
            icmp_first: d(a[9]),
            icmp_reply: d(a[10]),
        }
    }
}

/// Maximum number of zones with their own policy.
pub const MAX_ZONE_POLICIES: usize = 255;

/// Lock-free readable timeout table.
///
/// # Thread safety
/// Readers (the packet path) load a zone's slot index and then the slot's values with
/// `Relaxed` loads: each value is an independent number and a reader that races with a policy
/// change sees either the old or the new value of each state, which is harmless. Writers (the
/// control path) serialize on `alloc`. A slot freed by `clear_zone` may be reused for another
/// zone while a reader that loaded the old index is still reading it; that reader then uses the
/// new zone's value once, also harmless.
pub(crate) struct TimeoutTable {
    /// Slot per zone; 0 = the global policy.
    zone_slot: Box<[AtomicU8]>,
    /// Slot 0 is the global policy, 1..=255 per-zone policies; values in nanoseconds.
    slots: Box<[[AtomicU64; N_TM]]>,
    /// Which slots are in use (index 0 always).
    alloc: Mutex<Vec<bool>>,
}

impl TimeoutTable {
    pub fn new(global: Timeouts) -> TimeoutTable {
        let slots: Box<[[AtomicU64; N_TM]]> = (0..=MAX_ZONE_POLICIES)
            .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            .collect();
        let t = TimeoutTable {
            zone_slot: (0..=u16::MAX as usize).map(|_| AtomicU8::new(0)).collect(),
            slots,
            alloc: Mutex::new(vec![false; MAX_ZONE_POLICIES + 1]),
        };
        t.store(0, global);
        t
    }

    fn store(&self, slot: usize, t: Timeouts) {
        if let Some(s) = self.slots.get(slot) {
            for (cell, v) in s.iter().zip(t.to_array()) {
                // Relaxed: see the type's thread-safety note.
                cell.store(v, Ordering::Relaxed);
            }
        }
    }

    fn load(&self, slot: usize) -> Timeouts {
        let mut a = [0u64; N_TM];
        if let Some(s) = self.slots.get(slot) {
            for (v, cell) in a.iter_mut().zip(s.iter()) {
                *v = cell.load(Ordering::Relaxed);
            }
        }
        Timeouts::from_array(a)
    }

    /// Nanoseconds of `tm` in `zone`.
    #[inline]
    pub fn get(&self, zone: u16, tm: Tm) -> u64 {
        let slot = self.zone_slot[usize::from(zone)].load(Ordering::Relaxed);
        self.slots[usize::from(slot)][tm as usize].load(Ordering::Relaxed)
    }

    pub fn set_global(&self, t: Timeouts) {
        let _g = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        self.store(0, t);
    }

    pub fn global(&self) -> Timeouts {
        self.load(0)
    }

    pub fn set_zone(&self, zone: u16, t: Timeouts) -> Result<(), CtError> {
        let mut alloc = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let cur = usize::from(self.zone_slot[usize::from(zone)].load(Ordering::Relaxed));
        let slot = if cur != 0 {
            cur
        } else {
            let free = alloc
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, used)| !**used)
                .map(|(i, _)| i)
                .ok_or(CtError::TooManyTimeoutPolicies)?;
            alloc[free] = true;
            free
        };
        self.store(slot, t);
        // Release: a reader that sees the new slot index... reads values with Relaxed loads, so
        // this only orders for tidiness; see the type's note on why stale values are harmless.
        self.zone_slot[usize::from(zone)].store(slot as u8, Ordering::Release);
        Ok(())
    }

    pub fn clear_zone(&self, zone: u16) {
        let mut alloc = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let cur = usize::from(self.zone_slot[usize::from(zone)].swap(0, Ordering::AcqRel));
        if cur != 0 {
            alloc[cur] = false;
        }
    }

    pub fn zone(&self, zone: u16) -> Option<Timeouts> {
        let cur = usize::from(self.zone_slot[usize::from(zone)].load(Ordering::Acquire));
        (cur != 0).then(|| self.load(cur))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ovs() {
        let t = TimeoutTable::new(Timeouts::default());
        assert_eq!(t.get(7, Tm::TcpEstablished), 86_400_000_000_000);
        assert_eq!(t.get(7, Tm::TcpFirstPacket), 30_000_000_000);
        assert_eq!(t.get(7, Tm::TcpFinWait), 45_000_000_000);
        assert_eq!(t.get(7, Tm::TcpClosing), 900_000_000_000);
        assert_eq!(t.get(7, Tm::OtherMultiple), 60_000_000_000);
        assert_eq!(t.get(7, Tm::OtherBidir), 30_000_000_000);
        assert_eq!(t.get(7, Tm::IcmpReply), 30_000_000_000);
    }

    #[test]
    fn zone_policy_overrides_and_clears() {
        let t = TimeoutTable::new(Timeouts::default());
        let custom = Timeouts {
            udp_first: Duration::from_secs(5),
            ..Timeouts::default()
        };
        assert!(t.set_zone(9, custom).is_ok());
        assert_eq!(t.get(9, Tm::OtherFirst), 5_000_000_000);
        assert_eq!(t.get(8, Tm::OtherFirst), 60_000_000_000);
        assert_eq!(t.zone(9), Some(custom));
        t.clear_zone(9);
        assert_eq!(t.get(9, Tm::OtherFirst), 60_000_000_000);
        assert_eq!(t.zone(9), None);
        for z in 0..MAX_ZONE_POLICIES as u16 {
            assert!(t.set_zone(z, custom).is_ok());
        }
        assert!(matches!(
            t.set_zone(1000, custom),
            Err(CtError::TooManyTimeoutPolicies)
        ));
    }
}
