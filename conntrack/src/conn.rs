//! One tracked connection and its concurrently updated state.

use std::fmt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::nat::NatKind;
use crate::tcp::{TcpConn, TcpSegment, TcpState, Update};
use crate::timeout::Tm;
use crate::tuple::ConnKey;

pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        // A writer was preempted inside its short critical section: let it run.
        std::thread::yield_now();
    }
}

/// UDP/SCTP/other states (OVS `other_state`).
pub(crate) const OTHER_FIRST: u8 = 0;
pub(crate) const OTHER_MULTIPLE: u8 = 1;
pub(crate) const OTHER_BIDIR: u8 = 2;
/// ICMP states (OVS `icmp_state`).
pub(crate) const ICMP_FIRST: u8 = 0;
pub(crate) const ICMP_REPLY: u8 = 1;

/// Words of a packed key in a record (`ConnKey` minus `proto`/`v6`, which both keys share and
/// which live in the record's `info` word).
pub(crate) const KW: usize = 5;

/// `info` bits.
/// The record holds a connection that has not been removed.
pub(crate) const I_LIVE: u32 = 1;
/// Both keys are in the index (set by the creator under the index locks); walks (sweep, flush,
/// dump) only consider published records.
pub(crate) const I_PUB: u32 = 1 << 1;
const I_NAT_SHIFT: u32 = 2; // 2 bits: 0 none, 1 src, 2 dst
const I_KIND_SHIFT: u32 = 4; // 2 bits: 0 other, 1 ICMP, 2 TCP
const I_V6: u32 = 1 << 6;
const I_STATE_SHIFT: u32 = 8; // 8 bits: OTHER_* / ICMP_*
const I_PROTO_SHIFT: u32 = 16; // 8 bits
const I_SHARD_SHIFT: u32 = 24; // 8 bits: free list / event ring

pub(crate) const KIND_OTHER: u32 = 0;
pub(crate) const KIND_ICMP: u32 = 1;
pub(crate) const KIND_TCP: u32 = 2;

/// Packs the key words stored in a record.
#[inline]
pub(crate) fn pack(k: &ConnKey) -> [u64; KW] {
    [
        (k.src >> 64) as u64,
        k.src as u64,
        (k.dst >> 64) as u64,
        k.dst as u64,
        u64::from(k.sport)
            | u64::from(k.dport) << 16
            | u64::from(k.zone) << 32
            | u64::from(k.stype) << 48
            | u64::from(k.dtype) << 56,
    ]
}

#[inline]
fn unpack(w: &[u64; KW], info: u32) -> ConnKey {
    ConnKey {
        src: u128::from(w[0]) << 64 | u128::from(w[1]),
        dst: u128::from(w[2]) << 64 | u128::from(w[3]),
        sport: w[4] as u16,
        dport: (w[4] >> 16) as u16,
        zone: (w[4] >> 32) as u16,
        stype: (w[4] >> 48) as u8,
        dtype: (w[4] >> 56) as u8,
        proto: (info >> I_PROTO_SHIFT) as u8,
        v6: info & I_V6 != 0,
    }
}

/// The `info` bits a key fixes (protocol and family).
#[inline]
pub(crate) fn key_info(k: &ConnKey) -> u32 {
    u32::from(k.proto) << I_PROTO_SHIFT | if k.v6 { I_V6 } else { 0 }
}

const KEY_INFO_MASK: u32 = 0xff << I_PROTO_SHIFT | I_V6;

/// One connection record of the preallocated slab: 128 bytes, one aligned pair of cache
/// lines, holding everything an established packet reads (header, flags and UDP/ICMP state,
/// expiry, mark, label, both keys). TCP state lives in a parallel array (`Store`).
///
/// # Thread safety
/// Every field is an atomic. `hdr` is a generation (high 32 bits, bumped each time the record
/// is reused for a new connection) and a sequence lock (low 32 bits, odd inside a write
/// section). A reader loads `hdr` (`Acquire`), the fields (`Relaxed`), issues an `Acquire`
/// fence and re-loads `hdr`; it retries when the sequence was odd or moved, and gives up when
/// the generation is not the one it expects, so it never returns a mix of two writes nor a
/// field of another connection that reused the record. A writer enters with a compare-exchange
/// from (its generation, even) to odd (`Acquire`, then a `Release` fence), stores, and leaves
/// with a `Release` store of the next even value: writers exclude each other, and a writer
/// holding a stale generation fails instead of touching the new connection. Writes happen on
/// commit (mark/label), on state transitions and when the expiry moves by >= 1 ms.
#[repr(C, align(128))]
#[derive(Default)]
pub(crate) struct Rec {
    hdr: AtomicU64,
    info: AtomicU32,
    mark: AtomicU32,
    exp: AtomicU64,
    label: [AtomicU64; 2],
    key: [[AtomicU64; KW]; 2],
    /// Next free record + 1 (free-list link; only meaningful while the record is free).
    pub next_free: AtomicU32,
}

#[inline]
fn seq_next(h: u64) -> u64 {
    (h & !0xffff_ffff) | u64::from((h as u32).wrapping_add(1))
}

/// What a probe reads from a record in one consistent snapshot.
#[derive(Clone, Copy)]
pub(crate) struct Probe {
    pub gen: u32,
    pub info: u32,
    pub exp: u64,
    pub matches: bool,
}

impl Rec {
    /// A consistent read of the record by `f`, for generation `gen` (any when `None`); `None`
    /// when the record holds another generation.
    #[inline]
    fn read<T>(&self, gen: Option<u32>, f: impl Fn(&Rec) -> T) -> Option<(u32, T)> {
        let mut spins = 0;
        loop {
            let h1 = self.hdr.load(Ordering::Acquire);
            let g = (h1 >> 32) as u32;
            if gen.is_some_and(|w| w != g) {
                return None;
            }
            if h1 & 1 == 0 {
                let v = f(self);
                fence(Ordering::Acquire);
                if self.hdr.load(Ordering::Relaxed) == h1 {
                    return Some((g, v));
                }
            }
            backoff(&mut spins);
        }
    }

    /// Runs `f` inside a write section of generation `gen`; `None` when the record holds
    /// another generation (the connection is gone).
    #[inline]
    fn write<T>(&self, gen: u32, f: impl FnOnce(&Rec) -> T) -> Option<T> {
        let mut spins = 0;
        let h = loop {
            let h = self.hdr.load(Ordering::Relaxed);
            if (h >> 32) as u32 != gen {
                return None;
            }
            if h & 1 == 0
                && self
                    .hdr
                    .compare_exchange_weak(h, seq_next(h), Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break h;
            }
            backoff(&mut spins);
        };
        fence(Ordering::Release);
        let v = f(self);
        self.hdr.store(seq_next(seq_next(h)), Ordering::Release);
        Some(v)
    }

    /// Loads a word of each of the record's two cache lines (batch lookups).
    #[inline]
    pub fn touch(&self) -> u64 {
        self.hdr.load(Ordering::Relaxed) ^ self.key[1][KW - 1].load(Ordering::Relaxed)
    }

    /// The record's current generation (for tests and the free list).
    #[inline]
    pub fn gen(&self) -> u32 {
        (self.hdr.load(Ordering::Acquire) >> 32) as u32
    }

    /// Compares key `dir` with the packed probe key and reads liveness, in one snapshot.
    #[inline]
    pub fn probe(&self, dir: usize, kw: &[u64; KW], kinfo: u32) -> Probe {
        let r = self.read(None, |r| {
            let info = r.info.load(Ordering::Relaxed);
            let k = &r.key[dir & 1];
            let matches = info & KEY_INFO_MASK == kinfo
                && k[0].load(Ordering::Relaxed) == kw[0]
                && k[1].load(Ordering::Relaxed) == kw[1]
                && k[2].load(Ordering::Relaxed) == kw[2]
                && k[3].load(Ordering::Relaxed) == kw[3]
                && k[4].load(Ordering::Relaxed) == kw[4];
            (info, r.exp.load(Ordering::Relaxed), matches)
        });
        match r {
            Some((gen, (info, exp, matches))) => Probe {
                gen,
                info,
                exp,
                matches,
            },
            None => Probe {
                gen: 0,
                info: 0,
                exp: 0,
                matches: false,
            },
        }
    }

    /// Liveness and expiry of any generation (walks: sweep, flush, dump).
    #[inline]
    pub fn peek(&self) -> (u32, u32, u64) {
        self.read(None, |r| {
            (
                r.info.load(Ordering::Relaxed),
                r.exp.load(Ordering::Relaxed),
            )
        })
        .map_or((0, 0, 0), |(g, (i, e))| (g, i, e))
    }

    /// Reuses the record for a new connection; returns its generation. The caller owns the
    /// record (it came off the free list), but stale readers and writers of the previous
    /// generation may still touch it: the generation moves first, inside a write section.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        &self,
        fwd: &ConnKey,
        rev: &ConnKey,
        nat: Option<NatKind>,
        kind: u32,
        state: u8,
        shard: u8,
        exp: u64,
    ) -> (u32, u32) {
        let mut spins = 0;
        let h = loop {
            let h = self.hdr.load(Ordering::Relaxed);
            let next = (h & 0xffff_ffff_0000_0000).wrapping_add(1 << 32)
                | u64::from((h as u32).wrapping_add(1));
            if h & 1 == 0
                && self
                    .hdr
                    .compare_exchange_weak(h, next, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break next;
            }
            backoff(&mut spins);
        };
        fence(Ordering::Release);
        let nat_bits = match nat {
            None => 0,
            Some(NatKind::Src) => 1,
            Some(NatKind::Dst) => 2,
        };
        let info = I_LIVE
            | nat_bits << I_NAT_SHIFT
            | kind << I_KIND_SHIFT
            | u32::from(state) << I_STATE_SHIFT
            | u32::from(shard) << I_SHARD_SHIFT
            | key_info(fwd);
        self.info.store(info, Ordering::Relaxed);
        self.mark.store(0, Ordering::Relaxed);
        self.exp.store(exp, Ordering::Relaxed);
        self.label[0].store(0, Ordering::Relaxed);
        self.label[1].store(0, Ordering::Relaxed);
        for (slot, k) in self.key.iter().zip([fwd, rev]) {
            for (a, w) in slot.iter().zip(pack(k)) {
                a.store(w, Ordering::Relaxed);
            }
        }
        self.hdr.store(seq_next(h), Ordering::Release);
        ((h >> 32) as u32, info)
    }
}

/// Verdict of a packet on an existing connection (OVS `ct_update_res`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnUpdate {
    Valid,
    ValidNew,
    Invalid,
    Reopen,
}

/// Refreshing the expiry is skipped when it would move it forward by less than this, so a
/// connection carrying millions of packets per second is written about once per millisecond
/// instead of once per packet (both directions on two cores would otherwise bounce its cache
/// line). The cost: a connection may expire up to this much before its nominal timeout.
pub(crate) const EXPIRY_SLACK_NS: u64 = 1_000_000;

/// A connection as found by a lookup: its record, TCP state, slab index and generation, and
/// the immutable `info` bits read in the lookup's snapshot. Every access re-validates the
/// generation, so a handle on a connection that was removed and whose record was reused for
/// another one reads and writes nothing of the newcomer.
#[derive(Clone, Copy)]
pub(crate) struct Conn<'a> {
    pub rec: &'a Rec,
    pub tcp: &'a Mutex<TcpConn>,
    pub idx: u32,
    pub gen: u32,
    pub info: u32,
    pub zone: u16,
}

impl Conn<'_> {
    #[inline]
    pub fn zone(&self) -> u16 {
        self.zone
    }

    #[inline]
    pub fn nat(&self) -> Option<NatKind> {
        match (self.info >> I_NAT_SHIFT) & 3 {
            1 => Some(NatKind::Src),
            2 => Some(NatKind::Dst),
            _ => None,
        }
    }

    #[inline]
    pub fn shard(&self) -> usize {
        (self.info >> I_SHARD_SHIFT) as usize
    }

    /// Both keys (`[original, reply]`); `None` when the connection's record was reused.
    #[inline]
    pub fn keys(&self) -> Option<[ConnKey; 2]> {
        self.rec
            .read(Some(self.gen), |r| {
                let info = r.info.load(Ordering::Relaxed);
                let k = |d: usize| {
                    let a = &r.key[d];
                    [
                        a[0].load(Ordering::Relaxed),
                        a[1].load(Ordering::Relaxed),
                        a[2].load(Ordering::Relaxed),
                        a[3].load(Ordering::Relaxed),
                        a[4].load(Ordering::Relaxed),
                    ]
                };
                [unpack(&k(0), info), unpack(&k(1), info)]
            })
            .map(|(_, k)| k)
    }

    /// Key `dir` (0 original, 1 reply).
    #[inline]
    pub fn key(&self, dir: usize) -> Option<ConnKey> {
        self.keys().map(|k| k[dir & 1])
    }

    #[cfg(test)]
    pub fn is_live(&self, now: u64) -> bool {
        self.rec
            .read(Some(self.gen), |r| {
                r.info.load(Ordering::Relaxed) & I_LIVE != 0 && r.exp.load(Ordering::Relaxed) > now
            })
            .is_some_and(|(_, l)| l)
    }

    /// The expiry (0 when the record was reused).
    pub fn expiration(&self) -> u64 {
        self.rec
            .read(Some(self.gen), |r| r.exp.load(Ordering::Relaxed))
            .map_or(0, |(_, e)| e)
    }

    #[inline]
    pub fn set_expiration(&self, now: u64, ns: u64) {
        let new = now.saturating_add(ns);
        // A stale read only decides whether to write; the write re-checks the generation.
        let cur = self.rec.exp.load(Ordering::Relaxed);
        // Shorter timeouts (e.g. after a FIN) always apply; longer ones only when they move the
        // expiry by at least the slack.
        if new < cur || new - cur >= EXPIRY_SLACK_NS {
            let _ = self
                .rec
                .write(self.gen, |r| r.exp.store(new, Ordering::Relaxed));
        }
    }

    /// Takes the connection out of service; true for the one caller that did it.
    pub fn mark_removed(&self) -> bool {
        self.rec
            .write(self.gen, |r| {
                let i = r.info.load(Ordering::Relaxed);
                r.info.store(i & !I_LIVE, Ordering::Relaxed);
                i & I_LIVE != 0
            })
            .unwrap_or(false)
    }

    /// Marks the connection as indexed (both keys inserted).
    pub fn publish(&self) {
        let _ = self.rec.write(self.gen, |r| {
            let i = r.info.load(Ordering::Relaxed);
            r.info.store(i | I_PUB, Ordering::Relaxed);
        });
    }

    /// Mark and label; zeros when the connection's record was reused meanwhile.
    #[inline]
    pub fn ml_read(&self) -> (u32, u128) {
        self.rec
            .read(Some(self.gen), |r| {
                (
                    r.mark.load(Ordering::Relaxed),
                    u128::from(r.label[0].load(Ordering::Relaxed)) << 64
                        | u128::from(r.label[1].load(Ordering::Relaxed)),
                )
            })
            .map_or((0, 0), |(_, v)| v)
    }

    /// Applies the masked writes atomically with respect to other writers and readers; returns
    /// the new values (zeros when the connection's record was reused meanwhile).
    pub fn ml_update(&self, mark: Option<(u32, u32)>, label: Option<(u128, u128)>) -> (u32, u128) {
        self.rec
            .write(self.gen, |r| {
                // Inside the write section: only this thread writes the data.
                let mut m = r.mark.load(Ordering::Relaxed);
                let mut l = u128::from(r.label[0].load(Ordering::Relaxed)) << 64
                    | u128::from(r.label[1].load(Ordering::Relaxed));
                if let Some((v, mask)) = mark {
                    m = (v & mask) | (m & !mask);
                    r.mark.store(m, Ordering::Relaxed);
                }
                if let Some((v, mask)) = label {
                    l = (v & mask) | (l & !mask);
                    r.label[0].store((l >> 64) as u64, Ordering::Relaxed);
                    r.label[1].store(l as u64, Ordering::Relaxed);
                }
                (m, l)
            })
            .unwrap_or((0, 0))
    }

    /// Updates the protocol state for a packet in direction `reply`; returns the verdict and the
    /// timeout to apply, if any. A connection whose record was reused meanwhile answers
    /// `Reopen` (it is gone: the packet starts from scratch, as after a removal).
    #[inline]
    pub fn update(
        &self,
        reply: bool,
        tcp: Option<&TcpSegment>,
        seq_check: bool,
    ) -> (ConnUpdate, Option<Tm>) {
        match (self.info >> I_KIND_SHIFT) & 3 {
            KIND_TCP => {
                let Some(seg) = tcp else {
                    return (ConnUpdate::Invalid, None);
                };
                let mut c = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
                // The creator initialises the TCP state under this lock after moving the
                // generation: checked under the lock, the state is this connection's.
                if self.rec.gen() != self.gen {
                    return (ConnUpdate::Reopen, None);
                }
                let (u, tm) = c.update(seg, reply, seq_check);
                let u = match u {
                    Update::Valid => ConnUpdate::Valid,
                    Update::ValidNew => ConnUpdate::ValidNew,
                    Update::Invalid(_) => ConnUpdate::Invalid,
                    Update::Reopen => ConnUpdate::Reopen,
                };
                (u, tm)
            }
            kind => {
                let icmp = kind == KIND_ICMP;
                let Some((_, info)) = self
                    .rec
                    .read(Some(self.gen), |r| r.info.load(Ordering::Relaxed))
                else {
                    return (ConnUpdate::Reopen, None);
                };
                let cur = (info >> I_STATE_SHIFT) as u8;
                let step = |s: u8| -> u8 {
                    if icmp {
                        if reply {
                            ICMP_REPLY
                        } else {
                            s
                        }
                    } else if reply {
                        OTHER_BIDIR
                    } else if s == OTHER_FIRST {
                        OTHER_MULTIPLE
                    } else {
                        s
                    }
                };
                let mut st = cur;
                if step(cur) != cur {
                    // Transitions are monotone; redo the step on the value inside the section.
                    match self.rec.write(self.gen, |r| {
                        let i = r.info.load(Ordering::Relaxed);
                        let s = step((i >> I_STATE_SHIFT) as u8);
                        r.info.store(
                            (i & !(0xff << I_STATE_SHIFT)) | u32::from(s) << I_STATE_SHIFT,
                            Ordering::Relaxed,
                        );
                        s
                    }) {
                        Some(s) => st = s,
                        None => return (ConnUpdate::Reopen, None),
                    }
                }
                if icmp {
                    let (u, tm) = if st == ICMP_REPLY {
                        (ConnUpdate::Valid, Tm::IcmpReply)
                    } else {
                        (ConnUpdate::ValidNew, Tm::IcmpFirst)
                    };
                    (u, Some(tm))
                } else {
                    let tm = match st {
                        OTHER_FIRST => Tm::OtherFirst,
                        OTHER_MULTIPLE => Tm::OtherMultiple,
                        _ => Tm::OtherBidir,
                    };
                    let u = if st == OTHER_BIDIR {
                        ConnUpdate::Valid
                    } else {
                        ConnUpdate::ValidNew
                    };
                    (u, Some(tm))
                }
            }
        }
    }

    /// Protocol details for dumps.
    pub fn tcp_states(&self) -> Option<(TcpState, TcpState)> {
        if (self.info >> I_KIND_SHIFT) & 3 != KIND_TCP {
            return None;
        }
        let c = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
        (self.rec.gen() == self.gen).then(|| c.states())
    }
}

/// A handle on the connection a packet matched, carried in its metadata across recirculation
/// so that the next `ct()` in the same zone reuses the match without updating the connection
/// again (OVS `pkt->md.conn`, `process_one_fast`). It is a plain copy of the matched key and
/// of where the connection's record is (slab index and generation; no reference count to bump
/// per packet): the tracker re-reads that record directly, without hashing the key or reading
/// the index, and checks that it still holds this key, live, in the same generation; failing
/// that it falls back to a full lookup.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConnHandle {
    pub(crate) key: ConnKey,
    pub(crate) reply: bool,
    pub(crate) idx: u32,
    pub(crate) gen: u32,
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
    use std::sync::Arc;

    fn key(i: u16) -> ConnKey {
        ConnKey {
            src: 0x0a00_0001,
            dst: 0x0a00_0002,
            sport: 1000 + i,
            dport: 80,
            zone: 7,
            proto: 17,
            v6: false,
            stype: 0,
            dtype: 0,
        }
    }

    fn conn<'a>(rec: &'a Rec, tcp: &'a Mutex<TcpConn>, i: u16) -> Conn<'a> {
        let k = key(i);
        let (gen, info) = rec.init(&k, &k.reverse(), None, KIND_OTHER, OTHER_FIRST, 0, 100);
        Conn {
            rec,
            tcp,
            idx: 0,
            gen,
            info,
            zone: 7,
        }
    }

    #[test]
    fn keys_round_trip() {
        let rec = Rec::default();
        let tcp = Mutex::new(TcpConn::new(&TcpSegment::default()).0);
        let c = conn(&rec, &tcp, 5);
        assert_eq!(c.keys(), Some([key(5), key(5).reverse()]));
        let p = rec.probe(1, &pack(&key(5).reverse()), key_info(&key(5)));
        assert!(p.matches && p.gen == c.gen);
        assert!(!rec.probe(0, &pack(&key(6)), key_info(&key(6))).matches);
    }

    #[test]
    fn masked_updates() {
        let rec = Rec::default();
        let tcp = Mutex::new(TcpConn::new(&TcpSegment::default()).0);
        let ml = conn(&rec, &tcp, 1);
        assert_eq!(ml.ml_update(Some((0x10, 0x10)), None), (0x10, 0));
        assert_eq!(ml.ml_update(Some((0x3, 0xf)), None), (0x13, 0));
        // Value bits outside the mask are ignored.
        assert_eq!(ml.ml_update(Some((0xff, 0x100)), None), (0x13, 0));
        let l = 0x2_0000_0000_0000_0000u128;
        assert_eq!(
            ml.ml_update(None, Some((l, 0xfff_0000_0000_0000_0000))),
            (0x13, l)
        );
        assert_eq!(ml.ml_read(), (0x13, l));
    }

    #[test]
    fn a_reused_record_is_never_mistaken() {
        let rec = Rec::default();
        let tcp = Mutex::new(TcpConn::new(&TcpSegment::default()).0);
        let old = conn(&rec, &tcp, 1);
        old.ml_update(Some((1, 1)), None);
        assert!(old.mark_removed());
        let new = conn(&rec, &tcp, 2);
        // The stale handle reads and writes nothing of the newcomer.
        assert_eq!(old.keys(), None);
        assert!(!old.is_live(0));
        assert_eq!(old.ml_read(), (0, 0));
        assert_eq!(old.ml_update(Some((0xff, 0xff)), None), (0, 0));
        old.set_expiration(0, 1 << 40);
        assert_eq!(old.update(true, None, true).0, ConnUpdate::Reopen);
        assert!(!old.mark_removed());
        assert_eq!(new.ml_read(), (0, 0));
        assert_eq!(new.expiration(), 100);
        assert!(new.is_live(99));
        assert_eq!(new.update(false, None, true).0, ConnUpdate::ValidNew);
        assert_eq!(new.keys().map(|k| k[0]), Some(key(2)));
    }

    #[test]
    fn concurrent_masked_updates_lose_nothing() {
        let rec = Arc::new(Rec::default());
        let tcp = Mutex::new(TcpConn::new(&TcpSegment::default()).0);
        let gen = conn(&rec, &tcp, 1).gen;
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let rec = Arc::clone(&rec);
                std::thread::spawn(move || {
                    let tcp = Mutex::new(TcpConn::new(&TcpSegment::default()).0);
                    let ml = Conn {
                        rec: &rec,
                        tcp: &tcp,
                        idx: 0,
                        gen,
                        info: 0,
                        zone: 7,
                    };
                    for i in 0..16u32 {
                        let bit = 1u32 << (t * 16 + i);
                        for _ in 0..200 {
                            ml.ml_update(
                                Some((bit, bit)),
                                Some((
                                    u128::from(bit) << 64 | u128::from(bit),
                                    u128::from(bit) << 64 | u128::from(bit),
                                )),
                            );
                            let (m, l) = ml.ml_read();
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
        let c = Conn {
            rec: &rec,
            tcp: &tcp,
            idx: 0,
            gen,
            info: 0,
            zone: 7,
        };
        let (m, l) = c.ml_read();
        assert_eq!(m, u32::MAX);
        assert_eq!(l, (u128::from(u32::MAX) << 64) | u128::from(u32::MAX));
    }
}
