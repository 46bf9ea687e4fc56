//! Flow-key extraction: one pass over the headers of a frame fills every packet field of the
//! [`FlowKey`] and reports where the L3 and L4 headers start.
//!
//! Semantics follow Open vSwitch's `miniflow_extract` so that OpenFlow matches behave the same:
//! - A frame shorter than an Ethernet header sets only `in_port`.
//! - Up to two VLAN tags (0x8100 / 0x88a8) are skipped; the outer TCI is stored with 0x1000
//!   set. A tag without room for the inner type leaves `eth_type` = the TPID.
//! - 802.3 frames: LLC/SNAP with OUI 0 yields the SNAP type; otherwise `eth_type` = 0x05ff.
//! - IPv4: a header with IHL < 5, or a total length below the header length or beyond the
//!   frame, leaves every L3/L4 field zero (the frame is malformed). Bytes beyond the total length
//!   are L2 padding and ignored. The version nibble is not checked (as in OVS).
//! - IPv6: a payload length beyond the frame leaves every L3 field zero; an extension-header
//!   chain that runs past the payload leaves only the addresses set.
//! - Fragments: `nw_frag` bit 0 for any fragment, bit 1 for a later one. Later fragments carry no
//!   L4 fields, and for IPv6 their `nw_proto` is 44 (fragment), as in OVS.
//! - An L4 header too short for its fixed part leaves the ports zero (and is reported as
//!   truncated); the L3 fields stay set.
//! - ICMP/ICMPv6: type in `tp_src`, code in `tp_dst`. IGMP: type, max-response code, and the
//!   group (bytes 4..8). Neighbour solicitation/advertisement: target and the source/target
//!   link-layer options; a zero-length or overrunning option, or a repeated link-layer option,
//!   clears all three (the message is malformed).
//! - ARP/RARP for Ethernet/IPv4 only: SPA/TPA in `nw_src`/`nw_dst`, the opcode in `nw_proto`
//!   when it fits 8 bits (otherwise 0), SHA/THA in `arp_sha`/`arp_tha`.
//!
//! Metadata words (registers, conntrack, tunnel, recirculation) are left alone apart from
//! `in_port`. The packet words (Ethernet to L4, words 26 to 39 of the layout) are all written,
//! fields absent from the frame as zero, so a reused key needs only its metadata reset.

use crate::bytes::{arr, be16, be32, slice};
use crate::key::{layout, FlowKey, KeyField, KeyField128};
use crate::wire::{arp, ethertype, icmpv6, ip_proto, ipv6, vlan};

/// The header in which extraction stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet header.
    Ethernet,
    /// A VLAN tag.
    Vlan,
    /// ARP.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// IPv6 extension headers.
    Ipv6Ext,
    /// The transport header (TCP, UDP, SCTP, ICMP, ICMPv6, IGMP).
    L4,
    /// Neighbour-discovery target or options.
    Nd,
}

/// Whether extraction saw the whole of every header it parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Status {
    /// Every header present was complete and consistent.
    #[default]
    Ok,
    /// The frame ended inside this header; fields from it on are zero.
    Truncated(Layer),
    /// A length or option field of this header is inconsistent; fields from it on are zero.
    Malformed(Layer),
}

/// What [`extract`] found besides the key: header offsets so later stages need not re-parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExtractInfo {
    /// Offset of the L3 header (after the Ethernet header, VLAN tags and any LLC/SNAP header);
    /// 0 when the frame has no complete Ethernet header.
    pub l3_offset: u32,
    /// Offset of the L4 header (after IPv4 options or IPv6 extension headers); 0 when there is
    /// none (not IP, a malformed IP header, or a later fragment). The header itself may be
    /// truncated: see `status`.
    pub l4_offset: u32,
    /// End of the IP packet (L3 offset plus total length); bytes after it are L2 padding. 0 when
    /// not IP or the IP header is malformed.
    pub l3_end: u32,
    /// Whether everything parsed was complete.
    pub status: Status,
}

impl ExtractInfo {
    /// The L3 offset, when there is an L3 header.
    #[inline]
    pub fn l3(&self) -> Option<usize> {
        (self.l3_offset != 0).then_some(self.l3_offset as usize)
    }

    /// The L4 offset, when there is an L4 header.
    #[inline]
    pub fn l4(&self) -> Option<usize> {
        (self.l4_offset != 0).then_some(self.l4_offset as usize)
    }

    /// True when nothing was truncated or malformed.
    #[inline]
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// First key word holding packet (L2 to L4) fields; every word from here to `PACKET_WORDS_END` is written
/// by [`extract`].
const FIRST_PACKET_WORD: usize = crate::key::PACKET_WORDS_START;
const PACKET_WORDS: usize = crate::key::PACKET_WORDS_END - FIRST_PACKET_WORD;

/// The packet words of the key, built in registers and stored once: setting fields in place
/// would chain read-modify-writes through memory on the shared words.
struct Words([u64; PACKET_WORDS]);

impl Words {
    #[inline(always)]
    fn set(&mut self, f: KeyField, v: u64) {
        if let Some(w) = (f.word as usize)
            .checked_sub(FIRST_PACKET_WORD)
            .and_then(|i| self.0.get_mut(i))
        {
            *w |= (v << f.shift) & f.word_mask();
        }
    }

    #[inline(always)]
    fn set128(&mut self, f: KeyField128, v: u128) {
        self.set(KeyField::new(f.hi as usize, 0, 64), (v >> 64) as u64);
        self.set(KeyField::new(f.hi as usize + 1, 0, 64), v as u64);
    }
}

// Fields that sit side by side on the wire and in the key are copied as one load.
const _: () = assert!(
    layout::NW_SRC.word == layout::NW_DST.word
        && layout::NW_SRC.shift == 32
        && layout::NW_DST.shift == 0
        && layout::TP_SRC.word == layout::TP_DST.word
        && layout::TP_SRC.shift == 48
        && layout::TP_DST.shift == 32
);

#[inline(always)]
fn be64(d: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(arr(d, off))
}

#[inline(always)]
fn mac(m: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

/// Fills `key` from `frame` received on `in_port`; see the module documentation for the rules.
/// Never panics, never allocates; each header is bounds-checked once.
#[inline]
pub fn extract(frame: &[u8], in_port: u32, key: &mut FlowKey) -> ExtractInfo {
    let mut info = ExtractInfo::default();
    extract_into(frame, in_port, key, &mut info);
    info
}

/// [`extract`], writing what it found besides the key into `info` (every field). For loops
/// that keep an array of infos: returning the info by value makes the caller copy it right
/// after its fields were stored one by one, a load the CPU cannot forward from those stores.
#[inline]
pub fn extract_into(frame: &[u8], in_port: u32, key: &mut FlowKey, info: &mut ExtractInfo) {
    *info = ExtractInfo::default();
    let mut w = Words([0; PACKET_WORDS]);
    key.set(layout::IN_PORT, u64::from(in_port));
    parse(frame, &mut w, info);
    if let Some(dst) = key
        .words
        .get_mut(FIRST_PACKET_WORD..crate::key::PACKET_WORDS_END)
    {
        dst.copy_from_slice(&w.0);
    }
}

#[inline(always)]
fn parse(frame: &[u8], key: &mut Words, info: &mut ExtractInfo) {
    if frame.len() < 14 {
        info.status = Status::Truncated(Layer::Ethernet);
        return;
    }
    key.set(layout::ETH_DST, be64(frame, 0) >> 16);
    key.set(layout::ETH_SRC, be64(frame, 6) >> 16);
    let mut ty = be16(frame, 12);
    let mut off = 14usize;

    if vlan::is_tpid(ty) {
        if frame.len() >= off + 4 {
            key.set(layout::VLAN_TCI, u64::from(be16(frame, off) | 0x1000));
            ty = be16(frame, off + 2);
            off += 4;
            if vlan::is_tpid(ty) {
                if frame.len() >= off + 4 {
                    ty = be16(frame, off + 2);
                    off += 4;
                } else {
                    info.status = Status::Truncated(Layer::Vlan);
                }
            }
        } else {
            info.status = Status::Truncated(Layer::Vlan);
        }
    }
    if ty < ethertype::MIN {
        ty = ethertype::NONE;
        let llc = slice(frame, off, off + 8);
        if llc.len() == 8 && llc[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] {
            let snap = be16(llc, 6);
            if snap >= ethertype::MIN {
                ty = snap;
                off += 8;
            }
        }
    }
    key.set(layout::ETH_TYPE, u64::from(ty));
    info.l3_offset = off as u32;
    if info.status != Status::Ok {
        return;
    }

    match ty {
        ethertype::IPV4 => ipv4(frame, off, key, info),
        ethertype::IPV6 => ipv6(frame, off, key, info),
        ethertype::ARP | ethertype::RARP => arp(frame, off, key, info),
        _ => {}
    }
}

#[inline(always)]
fn arp(frame: &[u8], off: usize, key: &mut Words, info: &mut ExtractInfo) {
    let a = slice(frame, off, off + arp::HEADER_LEN);
    if a.len() < arp::HEADER_LEN {
        info.status = Status::Truncated(Layer::Arp);
        return;
    }
    let p = arp::Packet::new_unchecked(a);
    if !p.is_ethernet_ipv4() {
        return;
    }
    let op = p.oper();
    if op <= 0xff {
        key.set(layout::NW_PROTO, u64::from(op));
    }
    key.set(layout::NW_SRC, u64::from(u32::from_be_bytes(p.spa())));
    key.set(layout::NW_DST, u64::from(u32::from_be_bytes(p.tpa())));
    key.set(layout::ARP_SHA, mac(p.sha()));
    key.set(layout::ARP_THA, mac(p.tha()));
}

#[inline(always)]
fn ipv4(frame: &[u8], off: usize, key: &mut Words, info: &mut ExtractInfo) {
    let ip = slice(frame, off, usize::MAX);
    if ip.len() < 20 {
        info.status = Status::Truncated(Layer::Ipv4);
        return;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let tot = usize::from(be16(ip, 2));
    // The same order of checks as `ipv4::Packet::new_checked`, so both report alike.
    let bad = if hl < 20 {
        Some(Status::Malformed(Layer::Ipv4))
    } else if hl > ip.len() {
        Some(Status::Truncated(Layer::Ipv4))
    } else if tot < hl {
        Some(Status::Malformed(Layer::Ipv4))
    } else if tot > ip.len() {
        Some(Status::Truncated(Layer::Ipv4))
    } else {
        None
    };
    if let Some(st) = bad {
        info.status = st;
        return;
    }
    info.l3_end = (off + tot) as u32;
    let frag = be16(ip, 6);
    let mut nw_frag = 0u64;
    if frag & 0x3fff != 0 {
        nw_frag = 1;
        if frag & 0x1fff != 0 {
            nw_frag |= 2;
        }
    }
    let proto = ip[9];
    // nw_src and nw_dst: one 8-byte load.
    key.set(
        KeyField::new(layout::NW_SRC.word as usize, 0, 64),
        be64(ip, 12),
    );
    key.set(layout::NW_TOS, u64::from(ip[1]));
    key.set(layout::NW_TTL, u64::from(ip[8]));
    key.set(layout::NW_PROTO, u64::from(proto));
    key.set(layout::NW_FRAG, nw_frag);
    if nw_frag & 2 != 0 {
        return;
    }
    info.l4_offset = (off + hl) as u32;
    let l4 = slice(ip, hl, tot);
    match proto {
        ip_proto::ICMP => {
            if l4.len() < 8 {
                info.status = Status::Truncated(Layer::L4);
                return;
            }
            key.set(layout::TP_SRC, u64::from(l4[0]));
            key.set(layout::TP_DST, u64::from(l4[1]));
        }
        ip_proto::IGMP => {
            if l4.len() < 8 {
                info.status = Status::Truncated(Layer::L4);
                return;
            }
            key.set(layout::TP_SRC, u64::from(l4[0]));
            key.set(layout::TP_DST, u64::from(l4[1]));
            key.set(layout::IGMP_GROUP, u64::from(be32(l4, 4)));
        }
        p => ports(p, l4, key, info),
    }
}

/// TCP, UDP and SCTP, common to both IP versions.
#[inline(always)]
fn ports(proto: u8, l4: &[u8], key: &mut Words, info: &mut ExtractInfo) {
    let need = match proto {
        ip_proto::TCP => 20,
        ip_proto::UDP => 8,
        ip_proto::SCTP => 12,
        _ => return,
    };
    if l4.len() < need {
        info.status = Status::Truncated(Layer::L4);
        return;
    }
    // tp_src and tp_dst: one 4-byte load.
    key.set(
        KeyField::new(layout::TP_SRC.word as usize, 32, 32),
        u64::from(be32(l4, 0)),
    );
    if proto == ip_proto::TCP {
        key.set(layout::TCP_FLAGS, u64::from(be16(l4, 12) & 0x0fff));
    }
}

#[inline(always)]
fn ipv6(frame: &[u8], off: usize, key: &mut Words, info: &mut ExtractInfo) {
    let ip = slice(frame, off, usize::MAX);
    if ip.len() < ipv6::HEADER_LEN {
        info.status = Status::Truncated(Layer::Ipv6);
        return;
    }
    let plen = usize::from(be16(ip, 4));
    if ipv6::HEADER_LEN + plen > ip.len() {
        info.status = Status::Truncated(Layer::Ipv6);
        return;
    }
    info.l3_end = (off + ipv6::HEADER_LEN + plen) as u32;
    key.set128(layout::IPV6_SRC, u128::from_be_bytes(arr(ip, 8)));
    key.set128(layout::IPV6_DST, u128::from_be_bytes(arr(ip, 24)));
    let payload = slice(ip, ipv6::HEADER_LEN, ipv6::HEADER_LEN + plen);
    let first = ip[6];
    let (proto, l4_at, nw_frag) = if ipv6::is_ext_header(first) {
        let Ok(w) = ipv6::walk_ext_headers(payload, first) else {
            info.status = Status::Truncated(Layer::Ipv6Ext);
            return;
        };
        match w.fragment {
            Some(f) if f.offset != 0 => (ip_proto::FRAGMENT, w.offset, 3u64),
            Some(f) if f.more => (w.protocol, w.offset, 1),
            _ => (w.protocol, w.offset, 0),
        }
    } else {
        (first, 0, 0)
    };
    let vtf = be32(ip, 0);
    key.set(layout::IPV6_LABEL, u64::from(vtf & 0x000f_ffff));
    key.set(layout::NW_TOS, u64::from((vtf >> 20) as u8));
    key.set(layout::NW_TTL, u64::from(ip[7]));
    key.set(layout::NW_PROTO, u64::from(proto));
    key.set(layout::NW_FRAG, nw_frag);
    if nw_frag & 2 != 0 {
        return;
    }
    info.l4_offset = (off + ipv6::HEADER_LEN + l4_at) as u32;
    let l4 = slice(payload, l4_at, usize::MAX);
    if proto == ip_proto::ICMPV6 {
        icmp6(l4, key, info);
    } else {
        ports(proto, l4, key, info);
    }
}

#[inline(always)]
fn icmp6(l4: &[u8], key: &mut Words, info: &mut ExtractInfo) {
    if l4.len() < icmpv6::HEADER_LEN {
        info.status = Status::Truncated(Layer::L4);
        return;
    }
    let (ty, code) = (l4[0], l4[1]);
    key.set(layout::TP_SRC, u64::from(ty));
    key.set(layout::TP_DST, u64::from(code));
    if code != 0 || !(ty == icmpv6::TYPE_NEIGHBOR_SOLICIT || ty == icmpv6::TYPE_NEIGHBOR_ADVERT) {
        return;
    }
    if l4.len() < icmpv6::ND_LEN {
        info.status = Status::Truncated(Layer::Nd);
        return;
    }
    let target: [u8; 16] = arr(l4, 8);
    let mut sll = 0u64;
    let mut tll = 0u64;
    let mut opts = slice(l4, icmpv6::ND_LEN, usize::MAX);
    // Only whole 8-byte units are examined; a shorter tail is ignored (as OVS does).
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            info.status = Status::Malformed(Layer::Nd);
            return;
        }
        if len == 8 {
            let addr = mac(arr(opts, 2));
            match opts[0] {
                icmpv6::OPT_SOURCE_LL if sll == 0 => sll = addr,
                icmpv6::OPT_TARGET_LL if tll == 0 => tll = addr,
                icmpv6::OPT_SOURCE_LL | icmpv6::OPT_TARGET_LL => {
                    info.status = Status::Malformed(Layer::Nd);
                    return;
                }
                _ => {}
            }
        }
        opts = slice(opts, len, usize::MAX);
    }
    key.set128(layout::ND_TARGET, u128::from_be_bytes(target));
    key.set(layout::ARP_SHA, sll);
    key.set(layout::ARP_THA, tll);
}
