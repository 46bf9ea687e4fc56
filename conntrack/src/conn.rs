//! One tracked connection and its concurrently updated state.

use std::fmt;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
#[cfg(test)]
use std::sync::Arc;
use std::sync::Mutex;

use crate::nat::NatKind;
use crate::tcp::{TcpConn, TcpSegment, TcpState, Update};
use crate::timeout::Tm;
use crate::tuple::ConnKey;

/// Mark and label of a connection, readable without a lock.
///
/// # Thread safety
/// A sequence lock built from atomics only. A writer makes `seq` odd with a compare-exchange
/// (`Acquire`, so its data stores cannot move before it, together with the `Release` fence
/// that follows), stores the data (`Relaxed`), then publishes an even `seq` with `Release`.
/// A reader loads `seq` (`Acquire`), loads the data (`Relaxed`), issues an `Acquire` fence and
/// re-loads `seq`; it retries when `seq` was odd or changed, so it never returns a mix of two
/// writes. Writers exclude each other through the odd `seq`, so masked read-modify-write
/// updates (`set_field:v/m->ct_mark`) from two workers are never lost. Writes happen only on
/// commit, so readers almost never retry.
#[derive(Default)]
pub(crate) struct MarkLabel {
    seq: AtomicU32,
    mark: AtomicU32,
    label_hi: AtomicU64,
    label_lo: AtomicU64,
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        // The writer was preempted inside its short critical section: let it run.
        std::thread::yield_now();
    }
}

impl MarkLabel {
    #[inline]
    pub fn read(&self) -> (u32, u128) {
        let mut spins = 0;
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let mark = self.mark.load(Ordering::Relaxed);
                let hi = self.label_hi.load(Ordering::Relaxed);
                let lo = self.label_lo.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return (mark, (u128::from(hi) << 64) | u128::from(lo));
                }
            }
            backoff(&mut spins);
        }
    }

    /// Applies the masked writes atomically with respect to other writers and readers; returns
    /// the new values.
    pub fn update(&self, mark: Option<(u32, u32)>, label: Option<(u128, u128)>) -> (u32, u128) {
        let mut spins = 0;
        let s = loop {
            let s = self.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(
                        s,
                        s.wrapping_add(1),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                break s;
            }
            backoff(&mut spins);
        };
        fence(Ordering::Release);
        // Inside the write section: only this thread writes the data.
        let mut m = self.mark.load(Ordering::Relaxed);
        let mut l = (u128::from(self.label_hi.load(Ordering::Relaxed)) << 64)
            | u128::from(self.label_lo.load(Ordering::Relaxed));
        if let Some((v, mask)) = mark {
            m = (v & mask) | (m & !mask);
            self.mark.store(m, Ordering::Relaxed);
        }
        if let Some((v, mask)) = label {
            l = (v & mask) | (l & !mask);
            self.label_hi.store((l >> 64) as u64, Ordering::Relaxed);
            self.label_lo.store(l as u64, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
        (m, l)
    }
}

/// UDP/SCTP/other states (OVS `other_state`).
pub(crate) const OTHER_FIRST: u8 = 0;
pub(crate) const OTHER_MULTIPLE: u8 = 1;
pub(crate) const OTHER_BIDIR: u8 = 2;
/// ICMP states (OVS `icmp_state`).
pub(crate) const ICMP_FIRST: u8 = 0;
pub(crate) const ICMP_REPLY: u8 = 1;

/// Protocol state.
///
/// # Thread safety
/// TCP: a per-connection mutex, as in OVS, because one segment updates several fields of both
/// peers together; it is uncontended unless both directions of the same connection are
/// processed at the same instant. Others: a single atomic byte advanced with compare-exchange.
pub(crate) enum ProtoState {
    /// Boxed so that the enum stays 16 bytes and the hot part of `Conn` fits one cache line
    /// for UDP/ICMP/other (TCP pays one more line, behind its lock anyway).
    Tcp(Box<Mutex<TcpConn>>),
    Other(AtomicU8),
    Icmp(AtomicU8),
}

/// Verdict of a packet on an existing connection (OVS `ct_update_res`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnUpdate {
    Valid,
    ValidNew,
    Invalid,
    Reopen,
}

/// A tracked connection. Keys, zone and NAT are immutable after creation.
///
/// `repr(C)` keeps the fields every packet touches (liveness, expiry, mark/label, protocol
/// state) together at the front, right after the `Arc` counters, and the keys behind them.
#[repr(C)]
pub(crate) struct Conn {
    /// Set once, by whoever removes the connection from the table; that thread also gives back
    /// the connection's slot in the limits.
    pub removed: AtomicBool,
    pub nat: Option<NatKind>,
    /// Which sweep list holds it.
    pub shard: u16,
    /// Absolute expiry time in the caller's nanoseconds. `Relaxed`: it only decides when the
    /// entry may be reclaimed; see `set_expiration`.
    pub expiration: AtomicU64,
    pub ml: MarkLabel,
    pub proto: ProtoState,
    /// `[original, reply]` keys (the reply key includes the NAT translation).
    pub key: [ConnKey; 2],
}

/// Refreshing the expiry is skipped when it would move it forward by less than this, so a
/// connection carrying millions of packets per second is written about once per millisecond
/// instead of once per packet (both directions on two cores would otherwise bounce its cache
/// line). The cost: a connection may expire up to this much before its nominal timeout.
pub(crate) const EXPIRY_SLACK_NS: u64 = 1_000_000;

impl Conn {
    #[inline]
    pub fn zone(&self) -> u16 {
        self.key[0].zone
    }

    #[inline]
    pub fn is_live(&self, now: u64) -> bool {
        // Acquire pairs with the Release swap in the table's `kill`.
        !self.removed.load(Ordering::Acquire) && self.expiration.load(Ordering::Relaxed) > now
    }

    #[inline]
    pub fn set_expiration(&self, now: u64, ns: u64) {
        let new = now.saturating_add(ns);
        let cur = self.expiration.load(Ordering::Relaxed);
        // Shorter timeouts (e.g. after a FIN) always apply; longer ones only when they move the
        // expiry by at least the slack. A lost race between two stores leaves one of two
        // near-equal values: harmless.
        if new < cur || new - cur >= EXPIRY_SLACK_NS {
            self.expiration.store(new, Ordering::Relaxed);
        }
    }

    /// Updates the protocol state for a packet in direction `reply`; returns the verdict and the
    /// timeout to apply, if any.
    #[inline]
    pub fn update(
        &self,
        reply: bool,
        tcp: Option<&TcpSegment>,
        seq_check: bool,
    ) -> (ConnUpdate, Option<Tm>) {
        match &self.proto {
            ProtoState::Tcp(m) => {
                let Some(seg) = tcp else {
                    return (ConnUpdate::Invalid, None);
                };
                let mut c = m.lock().unwrap_or_else(|e| e.into_inner());
                let (u, tm) = c.update(seg, reply, seq_check);
                let u = match u {
                    Update::Valid => ConnUpdate::Valid,
                    Update::ValidNew => ConnUpdate::ValidNew,
                    Update::Invalid(_) => ConnUpdate::Invalid,
                    Update::Reopen => ConnUpdate::Reopen,
                };
                (u, tm)
            }
            ProtoState::Other(st) => {
                // Acquire/Release on the state byte: transitions are totally ordered per
                // connection; no other data depends on them.
                let mut cur = st.load(Ordering::Acquire);
                loop {
                    let next = if reply {
                        OTHER_BIDIR
                    } else if cur == OTHER_FIRST {
                        OTHER_MULTIPLE
                    } else {
                        cur
                    };
                    if next == cur {
                        break;
                    }
                    match st.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => {
                            cur = next;
                            break;
                        }
                        Err(actual) => cur = actual,
                    }
                }
                let tm = match cur {
                    OTHER_FIRST => Tm::OtherFirst,
                    OTHER_MULTIPLE => Tm::OtherMultiple,
                    _ => Tm::OtherBidir,
                };
                let u = if cur == OTHER_BIDIR {
                    ConnUpdate::Valid
                } else {
                    ConnUpdate::ValidNew
                };
                (u, Some(tm))
            }
            ProtoState::Icmp(st) => {
                let mut cur = st.load(Ordering::Acquire);
                let mut u = ConnUpdate::Valid;
                if cur == ICMP_FIRST {
                    if reply {
                        if st
                            .compare_exchange(
                                ICMP_FIRST,
                                ICMP_REPLY,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_ok()
                        {
                            cur = ICMP_REPLY;
                        } else {
                            cur = st.load(Ordering::Acquire);
                        }
                    } else {
                        u = ConnUpdate::ValidNew;
                    }
                }
                let tm = if cur == ICMP_REPLY {
                    Tm::IcmpReply
                } else {
                    Tm::IcmpFirst
                };
                (u, Some(tm))
            }
        }
    }

    /// Protocol details for dumps.
    pub fn tcp_states(&self) -> Option<(TcpState, TcpState)> {
        match &self.proto {
            ProtoState::Tcp(m) => Some(m.lock().unwrap_or_else(|e| e.into_inner()).states()),
            _ => None,
        }
    }
}

/// A handle on the connection a packet matched, carried in its metadata across recirculation
/// so that the next `ct()` in the same zone reuses the match without updating the connection
/// again (OVS `pkt->md.conn`, `process_one_fast`). It is a plain copy of the matched key (no
/// reference count to bump per packet); the tracker checks that the connection still exists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConnHandle {
    pub(crate) key: ConnKey,
    pub(crate) reply: bool,
}

impl ConnHandle {
    /// The zone of the connection.
    pub fn zone(&self) -> u16 {
        self.key.zone
    }

    /// True when the packet travelled in the reply direction.
    pub fn is_reply(&self) -> bool {
        self.reply
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConnHandle({:?}, zone={}, reply={})",
            self.key.to_tuple(),
            self.key.zone,
            self.reply
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_updates() {
        let ml = MarkLabel::default();
        assert_eq!(ml.update(Some((0x10, 0x10)), None), (0x10, 0));
        assert_eq!(ml.update(Some((0x3, 0xf)), None), (0x13, 0));
        // Value bits outside the mask are ignored.
        assert_eq!(ml.update(Some((0xff, 0x100)), None), (0x13, 0));
        let l = 0x2_0000_0000_0000_0000u128;
        assert_eq!(
            ml.update(None, Some((l, 0xfff_0000_0000_0000_0000))),
            (0x13, l)
        );
        assert_eq!(ml.read(), (0x13, l));
    }

    #[test]
    fn concurrent_masked_updates_lose_nothing() {
        let ml = Arc::new(MarkLabel::default());
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let ml = Arc::clone(&ml);
                std::thread::spawn(move || {
                    for i in 0..16u32 {
                        let bit = 1u32 << (t * 16 + i);
                        for _ in 0..200 {
                            ml.update(
                                Some((bit, bit)),
                                Some((
                                    u128::from(bit) << 64 | u128::from(bit),
                                    u128::from(bit) << 64 | u128::from(bit),
                                )),
                            );
                            let (m, l) = ml.read();
                            // Readers never see a torn label: both halves come from one write.
                            assert_eq!((l >> 64) as u64, l as u64);
                            assert_ne!(m & bit, 0);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            assert!(h.join().is_ok());
        }
        let (m, l) = ml.read();
        assert_eq!(m, u32::MAX);
        assert_eq!(l, (u128::from(u32::MAX) << 64) | u128::from(u32::MAX));
    }
}
