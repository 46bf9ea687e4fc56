//! Helpers shared by the integration tests: a virtual clock, tuple builders, and a `Packet`
//! that applies the tracker's rewrites to its own tuple, as the engine will do to bytes.
#![allow(dead_code)]

use std::net::IpAddr;

use xvs_conntrack::tcp::flags;
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{
    Conntrack, CtAction, CtConfig, CtInput, CtMeta, CtState, CtStats, Rewrite, TcpSegment, Tuple,
};

pub const SEC: u64 = 1_000_000_000;

pub fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad address {s}: {e}"),
    }
}

pub fn ct() -> Conntrack {
    Conntrack::new(CtConfig {
        hash_seed: 42,
        ..CtConfig::default()
    })
}

pub fn st(bits: &[CtState]) -> CtState {
    bits.iter().fold(CtState::EMPTY, |a, b| a | *b)
}

pub const NEW: CtState = CtState::NEW;
pub const EST: CtState = CtState::ESTABLISHED;
pub const REL: CtState = CtState::RELATED;
pub const RPL: CtState = CtState::REPLY_DIR;
pub const INV: CtState = CtState::INVALID;
pub const TRK: CtState = CtState::TRACKED;
pub const SNAT: CtState = CtState::SRC_NAT;
pub const DNAT: CtState = CtState::DST_NAT;

/// A packet in flight: its tuple, TCP fields and ct metadata.
#[derive(Clone, Debug)]
pub struct Packet {
    pub input: CtInput,
    pub meta: CtMeta,
}

impl Packet {
    pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Packet {
        Packet::from(CtInput::new(Tuple::ports(
            ip(src),
            ip(dst),
            proto::UDP,
            sport,
            dport,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        fl: u16,
        seq: u32,
        ack: u32,
        len: u32,
    ) -> Packet {
        let seg = TcpSegment {
            flags: fl,
            seq,
            ack,
            window: 65535,
            wscale: if fl & flags::SYN != 0 { Some(7) } else { None },
            payload_len: len,
        };
        Packet::from(CtInput::tcp(
            Tuple::ports(ip(src), ip(dst), proto::TCP, sport, dport),
            seg,
        ))
    }

    pub fn icmp(src: &str, dst: &str, icmp_type: u8, id: u16) -> Packet {
        let p = if ip(src).is_ipv6() {
            proto::ICMPV6
        } else {
            proto::ICMP
        };
        Packet::from(CtInput::new(Tuple::icmp(
            ip(src),
            ip(dst),
            p,
            icmp_type,
            0,
            id,
        )))
    }

    pub fn icmp_error(src: &str, dst: &str, icmp_type: u8, code: u8, inner: Tuple) -> Packet {
        let p = if ip(src).is_ipv6() {
            proto::ICMPV6
        } else {
            proto::ICMP
        };
        Packet::from(CtInput::icmp_error(
            Tuple::icmp(ip(src), ip(dst), p, icmp_type, code, 0),
            inner,
        ))
    }

    pub fn from(input: CtInput) -> Packet {
        Packet {
            input,
            meta: CtMeta::default(),
        }
    }

    /// Runs `ct(act)` and applies the rewrite to the packet's tuple.
    pub fn ct(&mut self, ct: &Conntrack, now: u64, act: CtAction) -> Option<Rewrite> {
        let mut stats = CtStats::default();
        self.ct_stats(ct, now, act, &mut stats)
    }

    pub fn ct_stats(
        &mut self,
        ct: &Conntrack,
        now: u64,
        act: CtAction,
        stats: &mut CtStats,
    ) -> Option<Rewrite> {
        let rw = ct.process(now, &self.input, &act, &mut self.meta, stats);
        if let Some(rw) = rw {
            let t = &mut self.input.tuple;
            if let Some(a) = rw.src {
                t.src = a;
            }
            if let Some(a) = rw.dst {
                t.dst = a;
            }
            if let Some(p) = rw.src_port {
                t.src_port = p;
            }
            if let Some(p) = rw.dst_port {
                t.dst_port = p;
            }
            if let Some(id) = rw.icmp_id {
                t.icmp_id = id;
            }
            if let Some(inner) = rw.inner {
                self.input.icmp_error_inner = Some(inner);
            }
        }
        rw
    }

    pub fn state(&self) -> CtState {
        self.meta.state
    }

    pub fn tuple(&self) -> Tuple {
        self.input.tuple
    }
}

/// A fresh packet (metadata reset) with the same tuple, e.g. the next packet of a flow.
pub fn again(p: &Packet) -> Packet {
    Packet::from(p.input)
}
