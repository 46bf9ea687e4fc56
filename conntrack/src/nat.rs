//! NAT specifications and the search for a unique reply tuple.

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::tuple::{addr_bits, has_ports, proto, ConnKey};
use crate::CtError;

/// Which side of the original direction a NAT rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Source NAT (`nat(src=...)`).
    Src,
    /// Destination NAT (`nat(dst=...)`).
    Dst,
}

impl NatKind {
    /// The translation a packet of the other direction gets.
    pub fn reverse(self) -> NatKind {
        match self {
            NatKind::Src => NatKind::Dst,
            NatKind::Dst => NatKind::Src,
        }
    }
}

/// `nat(src=IP[-IP][:port[-port]])` or `nat(dst=...)`, with OVS's `random` and `persistent`
/// flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatRange {
    kind: NatKind,
    addr: Option<(IpAddr, IpAddr)>,
    ports: Option<(u16, u16)>,
    random: bool,
    persistent: bool,
}

impl NatRange {
    /// A translation of `kind` to an address in `addr` (inclusive range; `None` keeps the
    /// address and only translates the port) and a port in `ports` (inclusive; `None` keeps the
    /// port when the resulting tuple is unique, and otherwise picks a source port in the
    /// ephemeral class of the original one, as OVS does).
    pub fn new(
        kind: NatKind,
        addr: Option<(IpAddr, IpAddr)>,
        ports: Option<(u16, u16)>,
    ) -> Result<NatRange, CtError> {
        if let Some((lo, hi)) = addr {
            if lo.is_ipv6() != hi.is_ipv6() {
                return Err(CtError::NatRangeFamily);
            }
            if addr_bits(lo) > addr_bits(hi) {
                return Err(CtError::NatRangeOrder);
            }
        }
        if let Some((lo, hi)) = ports {
            if lo > hi || lo == 0 {
                return Err(CtError::NatRangeOrder);
            }
        }
        Ok(NatRange {
            kind,
            addr,
            ports,
            random: false,
            persistent: false,
        })
    }

    /// `nat(src=addr)`.
    pub fn src(addr: IpAddr) -> NatRange {
        NatRange {
            kind: NatKind::Src,
            addr: Some((addr, addr)),
            ports: None,
            random: false,
            persistent: false,
        }
    }

    /// `nat(dst=addr[:port])`.
    pub fn dst(addr: IpAddr, port: Option<u16>) -> NatRange {
        NatRange {
            kind: NatKind::Dst,
            addr: Some((addr, addr)),
            ports: port.filter(|p| *p != 0).map(|p| (p, p)),
            random: false,
            persistent: false,
        }
    }

    /// OVS `random`: the port search starts from a second, independent hash instead of the
    /// tuple hash (the tracker has no random number generator; it is sans-IO and deterministic
    /// for a given seed).
    pub fn with_random(mut self) -> NatRange {
        self.random = true;
        self
    }

    /// OVS `persistent`: the address is chosen from the client address only, so a client keeps
    /// its translated address across connections.
    pub fn with_persistent(mut self) -> NatRange {
        self.persistent = true;
        self
    }

    /// The side it rewrites.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// The address range.
    pub fn addr(&self) -> Option<(IpAddr, IpAddr)> {
        self.addr
    }

    /// The port range.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.ports
    }
}

/// The `nat` part of a `ct()` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatAction {
    /// Bare `nat`: apply the translation the connection already has (none for a new one).
    Existing,
    /// `nat(src=...)`/`nat(dst=...)`: on commit of a new connection set up this translation; on
    /// an existing connection apply its translation (the range is then ignored, as in OVS).
    Translate(NatRange),
}

/// Maximum ports tried in the first round of a port search (OVS: 128).
pub const NAT_FIRST_ROUND: u32 = 128;
/// The search halves the round size until it would go below this (OVS: 16).
pub const NAT_MIN_ROUND: u32 = 16;

/// The outcome of offering one candidate reply key.
pub(crate) enum Claim<T> {
    /// Claimed: stop searching.
    Done(T),
    /// Taken: try another candidate.
    Next,
    /// Stop searching without a result (e.g. the forward key turned out to exist already).
    Stop(T),
}

fn ephemeral_class(port: u16) -> (u16, u16) {
    if port < 512 {
        (1, 511)
    } else if port < 1024 {
        (600, 1023)
    } else {
        (1024, 65535)
    }
}

fn mix(h: u64, round: u64) -> u64 {
    // splitmix64 step: cheap, well distributed restart points.
    let mut z = h.wrapping_add(round.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Searches ports `min..=max` from `curr` (wrapping), `NAT_FIRST_ROUND` at most, then restarts at
/// hash-derived points with half as many tries while the round has at least `NAT_MIN_ROUND`.
fn search_ports<T>(
    rev: &mut ConnKey,
    curr: u16,
    (min, max): (u16, u16),
    hash: u64,
    set: fn(&mut ConnKey, u16),
    claim: &mut impl FnMut(&ConnKey) -> Claim<T>,
) -> Result<Option<T>, T> {
    let range = u32::from(max - min) + 1;
    let mut attempts = range.min(NAT_FIRST_ROUND);
    let mut start = curr;
    let mut round = 0u64;
    loop {
        let mut p = start;
        for _ in 0..attempts {
            set(rev, p);
            match claim(rev) {
                Claim::Done(t) => return Ok(Some(t)),
                Claim::Stop(t) => return Err(t),
                Claim::Next => {}
            }
            p = if p >= max { min } else { p + 1 };
        }
        if attempts < range && attempts >= NAT_MIN_ROUND {
            attempts /= 2;
            round += 1;
            start = min + (mix(hash, round) % u64::from(range)) as u16;
        } else {
            return Ok(None);
        }
    }
}

/// Why no reply tuple was found.
pub(crate) enum NatFail<T> {
    /// Every candidate was taken.
    Exhausted,
    /// The range's family differs from the packet's.
    Family,
    /// The claim callback stopped the search.
    Stopped(T),
}

/// Finds a reply key for `fwd` translated by `r`, offering candidates to `claim` until one is
/// claimed. Bounded: at most 248 candidates per port search, two searches for DNAT with a port
/// range, one candidate for protocols without ports.
pub(crate) fn find_reply<S: BuildHasher, T>(
    fwd: &ConnKey,
    r: &NatRange,
    hasher: &S,
    mut claim: impl FnMut(&ConnKey) -> Claim<T>,
) -> Result<T, NatFail<T>> {
    if let Some((lo, _)) = r.addr {
        if lo.is_ipv6() != fwd.v6 {
            return Err(NatFail::Family);
        }
    }
    let range_bits = r.addr.map(|(lo, hi)| (addr_bits(lo), addr_bits(hi)));
    let ports = r.ports.unwrap_or((0, 0));
    let hash = if r.persistent {
        hasher.hash_one((fwd.src, range_bits, ports, fwd.v6, fwd.proto, fwd.zone))
    } else {
        hasher.hash_one((
            fwd.src, fwd.sport, fwd.dst, fwd.dport, range_bits, ports, fwd.v6, fwd.proto, fwd.zone,
        ))
    };
    let port_off = if r.random {
        mix(hash, 0x5eed)
    } else if r.persistent {
        hasher.hash_one((
            fwd.src, fwd.sport, fwd.dst, fwd.dport, ports, fwd.proto, fwd.zone,
        ))
    } else {
        hash
    };

    let addr = match range_bits {
        None => match r.kind {
            NatKind::Src => fwd.src,
            NatKind::Dst => fwd.dst,
        },
        Some((lo, hi)) => {
            // IPv6 ranges are limited to 2^32 addresses, as in OVS.
            let span = (hi - lo).min(0xffff_fffe) as u64 + 1;
            lo + u128::from(hash % span)
        }
    };

    let mut rev = fwd.reverse();
    match r.kind {
        NatKind::Src => rev.dst = addr,
        NatKind::Dst => rev.src = addr,
    }

    let pat = has_ports(fwd.proto) || (fwd.proto == proto::ICMP && !fwd.v6);
    if !pat {
        return match claim(&rev) {
            Claim::Done(t) => Ok(t),
            Claim::Stop(t) => Err(NatFail::Stopped(t)),
            Claim::Next => Err(NatFail::Exhausted),
        };
    }

    let in_range = |(lo, hi): (u16, u16)| lo + (port_off % (u64::from(hi - lo) + 1)) as u16;
    let (sport_curr, sport_range) = match (r.kind, r.ports) {
        (NatKind::Src, Some(pr)) => (in_range(pr), pr),
        _ => (fwd.sport, ephemeral_class(fwd.sport)),
    };
    let icmp = fwd.proto == proto::ICMP;

    if let (NatKind::Dst, Some(pr)) = (r.kind, r.ports) {
        match search_ports(
            &mut rev,
            in_range(pr),
            pr,
            hash,
            |k, p| k.sport = p,
            &mut claim,
        ) {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => {}
            Err(t) => return Err(NatFail::Stopped(t)),
        }
        // Fall back to moving the source port, with the first destination port of the range.
        rev.sport = in_range(pr);
    }
    let set_sport: fn(&mut ConnKey, u16) = if icmp {
        |k, p| {
            k.dport = p;
            k.sport = p;
        }
    } else {
        |k, p| k.dport = p
    };
    match search_ports(
        &mut rev,
        sport_curr,
        sport_range,
        hash,
        set_sport,
        &mut claim,
    ) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(NatFail::Exhausted),
        Err(t) => Err(NatFail::Stopped(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    fn key(sport: u16) -> ConnKey {
        ConnKey {
            src: u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 1))),
            dst: u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 2))),
            sport,
            dport: 80,
            zone: 1,
            proto: proto::TCP,
            v6: false,
            stype: 0,
            dtype: 0,
        }
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn snat_keeps_port_when_free() {
        let h = foldhash::fast::FixedState::with_seed(1);
        let r = NatRange::src(v4([192, 168, 0, 1]));
        let got = find_reply(&key(40000), &r, &h, |k| Claim::Done(*k));
        let Ok(rev) = got else { panic!("no tuple") };
        assert_eq!(
            rev.dst,
            u128::from(u32::from(Ipv4Addr::new(192, 168, 0, 1)))
        );
        assert_eq!((rev.sport, rev.dport), (80, 40000));
    }

    #[test]
    fn search_is_bounded_and_counts_rounds() {
        let h = foldhash::fast::FixedState::with_seed(1);
        let r = NatRange::src(v4([192, 168, 0, 1]));
        let mut tried = 0u32;
        let got: Result<(), _> = find_reply(&key(40000), &r, &h, |_| {
            tried += 1;
            Claim::Next
        });
        assert!(matches!(got, Err(NatFail::Exhausted)));
        assert_eq!(tried, 128 + 64 + 32 + 16 + 8);
        // A one-port range: one try.
        let one = NatRange::new(
            NatKind::Src,
            Some((v4([1, 1, 1, 1]), v4([1, 1, 1, 1]))),
            Some((5000, 5000)),
        );
        let Ok(one) = one else { panic!("range") };
        let mut tried = 0u32;
        let got: Result<(), _> = find_reply(&key(40000), &one, &h, |k| {
            assert_eq!(k.dport, 5000);
            tried += 1;
            Claim::Next
        });
        assert!(matches!(got, Err(NatFail::Exhausted)));
        assert_eq!(tried, 1);
    }

    #[test]
    fn port_range_is_respected_and_unique() {
        let h = foldhash::fast::FixedState::with_seed(3);
        let Ok(r) = NatRange::new(
            NatKind::Src,
            Some((v4([1, 1, 1, 1]), v4([1, 1, 1, 4]))),
            Some((2000, 2099)),
        ) else {
            panic!("range")
        };
        let mut taken = HashSet::new();
        for c in 0..300u16 {
            let got = find_reply(&key(1024 + c), &r, &h, |k| {
                if taken.insert(*k) {
                    Claim::Done(*k)
                } else {
                    Claim::Next
                }
            });
            let Ok(k) = got else {
                panic!("exhausted too early at {c}")
            };
            assert!((2000..=2099).contains(&k.dport));
            let a = k.dst as u32;
            assert!(
                (u32::from(Ipv4Addr::new(1, 1, 1, 1))..=u32::from(Ipv4Addr::new(1, 1, 1, 4)))
                    .contains(&a)
            );
        }
    }

    #[test]
    fn family_mismatch_and_bad_ranges() {
        let h = foldhash::fast::FixedState::with_seed(3);
        let r = NatRange::src("2001:db8::1".parse().unwrap_or(v4([0; 4])));
        let got: Result<(), _> = find_reply(&key(1), &r, &h, |_| Claim::Done(()));
        assert!(matches!(got, Err(NatFail::Family)));
        assert!(NatRange::new(
            NatKind::Src,
            Some((v4([2, 0, 0, 0]), v4([1, 0, 0, 0]))),
            None
        )
        .is_err());
        assert!(NatRange::new(NatKind::Src, None, Some((10, 9))).is_err());
        assert!(NatRange::new(
            NatKind::Src,
            Some((v4([1, 0, 0, 0]), "::1".parse().unwrap_or(v4([0; 4])))),
            None
        )
        .is_err());
    }
}
