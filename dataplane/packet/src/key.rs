//! The flow key: every packet and metadata field the OpenFlow pipeline can match, packed into
//! [`KEY_WORDS`] 64-bit words.
//!
//! Why words: the megaflow classifier and the caches mask, hash and compare keys; with a fixed word
//! layout all three are loops over `u64`s, and a wildcard mask is simply another `FlowKey`.
//!
//! Conventions (the same as Open vSwitch's `struct flow`, so translation semantics carry over):
//! - ARP: `nw_src`/`nw_dst` hold SPA/TPA, `nw_proto` holds the opcode when it fits 8 bits
//!   (0 otherwise, as OVS does), `arp_sha`/`arp_tha` the hardware addresses.
//! - ICMP/ICMPv6: `tp_src` holds the type and `tp_dst` the code.
//! - Neighbour discovery: `nd_target`, and `arp_sha`/`arp_tha` hold the source/target link-layer
//!   address options.
//! - `vlan_tci` holds the outer 802.1Q TCI with the CFI bit (0x1000) set when a tag is present;
//!   `eth_type` is the type after the tag.
//! - `nw_frag`: bit 0 = any fragment, bit 1 = a later (non-first) fragment.
//! - 128-bit fields take two consecutive words, the most significant first.
//! - Registers: `xreg{N}` = (`reg{2N}` << 32) | `reg{2N+1}`, and `xxreg{N}` = `reg{4N}..reg{4N+3}`
//!   with `reg{4N}` most significant, exactly as OVS defines them.

/// Number of 64-bit words in a [`FlowKey`].
pub const KEY_WORDS: usize = 45;

/// Words `PACKET_WORDS_START..PACKET_WORDS_END` hold packet (L2 to L4) fields, written whole by
/// `extract`; every other word is metadata.
pub const PACKET_WORDS_START: usize = 26;
/// End (exclusive) of the packet words; the Geneve option words follow them.
pub const PACKET_WORDS_END: usize = 40;

/// Where a field of at most 64 bits lives in the key: `width` bits starting at bit `shift` of word
/// `word` (bit 0 is the least significant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyField {
    /// Index of the word.
    pub word: u8,
    /// Position of the least significant bit inside the word.
    pub shift: u8,
    /// Width in bits, 1..=64.
    pub width: u8,
}

impl KeyField {
    /// A field of `width` bits at bit `shift` of word `word`.
    pub const fn new(word: usize, shift: u32, width: u32) -> Self {
        Self {
            word: word as u8,
            shift: shift as u8,
            width: width as u8,
        }
    }

    /// The mask of this field's bits inside its word.
    pub const fn word_mask(self) -> u64 {
        if self.width >= 64 {
            u64::MAX
        } else {
            ((1u64 << self.width) - 1) << self.shift
        }
    }

    /// The largest value the field holds.
    pub const fn max_value(self) -> u64 {
        if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }
    }
}

/// A 128-bit field: two consecutive words, `hi` first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyField128 {
    /// Index of the most significant word; the least significant one follows it.
    pub hi: u8,
}

/// Word indices and field positions. Keep in sync with the module documentation.
pub mod layout {
    use super::{KeyField, KeyField128};

    // --- metadata ---
    /// Ingress OpenFlow port (32 bits, OpenFlow 1.1+ numbering).
    pub const IN_PORT: KeyField = KeyField::new(0, 0, 32);
    /// Recirculation id: 0 for a packet fresh from a port.
    pub const RECIRC_ID: KeyField = KeyField::new(0, 32, 32);
    /// `pkt_mark` (skb mark in the kernel datapath).
    pub const PKT_MARK: KeyField = KeyField::new(1, 0, 32);
    /// `conj_id`, set by the classifier when a conjunctive match completes.
    pub const CONJ_ID: KeyField = KeyField::new(1, 32, 32);
    /// First word of the registers: `xreg0` (reg0:reg1).
    pub const XREG_BASE: usize = 2;
    /// Number of 32-bit registers (reg0..reg15).
    pub const N_REGS: usize = 16;

    // --- connection tracking ---
    /// `ct_state` bits (OVS values: new=0x01 est=0x02 rel=0x04 rpl=0x08 inv=0x10 trk=0x20
    /// snat=0x40 dnat=0x80).
    pub const CT_STATE: KeyField = KeyField::new(10, 0, 32);
    /// `ct_zone`.
    pub const CT_ZONE: KeyField = KeyField::new(10, 32, 16);
    /// `ct_nw_proto`.
    pub const CT_NW_PROTO: KeyField = KeyField::new(10, 48, 8);
    /// `ct_mark`.
    pub const CT_MARK: KeyField = KeyField::new(11, 0, 32);
    /// `ct_tp_src`.
    pub const CT_TP_SRC: KeyField = KeyField::new(11, 32, 16);
    /// `ct_tp_dst`.
    pub const CT_TP_DST: KeyField = KeyField::new(11, 48, 16);
    /// `ct_label` (128 bits).
    pub const CT_LABEL: KeyField128 = KeyField128 { hi: 12 };
    /// `ct_nw_src` (IPv4 original-direction source).
    pub const CT_NW_SRC: KeyField = KeyField::new(14, 32, 32);
    /// `ct_nw_dst`.
    pub const CT_NW_DST: KeyField = KeyField::new(14, 0, 32);
    /// `ct_ipv6_src`.
    pub const CT_IPV6_SRC: KeyField128 = KeyField128 { hi: 15 };
    /// `ct_ipv6_dst`.
    pub const CT_IPV6_DST: KeyField128 = KeyField128 { hi: 17 };

    // --- tunnel metadata (filled on decapsulation, set for encapsulation) ---
    /// `tun_id` (VNI for VXLAN/Geneve, 64 bits as in OVS).
    pub const TUN_ID: KeyField = KeyField::new(19, 0, 64);
    /// `tun_src` (IPv4 outer source).
    pub const TUN_SRC: KeyField = KeyField::new(20, 32, 32);
    /// `tun_dst` (IPv4 outer destination).
    pub const TUN_DST: KeyField = KeyField::new(20, 0, 32);
    /// `tun_ipv6_src`.
    pub const TUN_IPV6_SRC: KeyField128 = KeyField128 { hi: 21 };
    /// `tun_ipv6_dst`.
    pub const TUN_IPV6_DST: KeyField128 = KeyField128 { hi: 23 };
    /// `tun_flags` (OVS: 1 = oam, plus internal "key present" / "csum" bits).
    pub const TUN_FLAGS: KeyField = KeyField::new(25, 0, 16);
    /// Outer IP TOS of a received tunnel packet.
    pub const TUN_TOS: KeyField = KeyField::new(25, 16, 8);
    /// Outer IP TTL of a received tunnel packet.
    pub const TUN_TTL: KeyField = KeyField::new(25, 24, 8);
    /// Outer UDP source port.
    pub const TUN_TP_SRC: KeyField = KeyField::new(25, 32, 16);
    /// Outer UDP destination port.
    pub const TUN_TP_DST: KeyField = KeyField::new(25, 48, 16);

    /// Number of `tun_metadata<n>` fields xvs keeps in the key (OVS has 64 over 256 bytes; we
    /// keep 4 of up to 8 bytes each so the key grows by 5 words, not 33).
    pub const N_TUN_METADATA: usize = 4;
    /// Largest Geneve option payload, in bytes, a `tun_metadata<n>` field can be mapped to.
    pub const TUN_METADATA_MAX_LEN: usize = 8;
    /// Bit `n` set: `tun_metadata<n>` is present (its option was received or set). Matching a
    /// `tun_metadata<n>` field always matches this bit too, so an absent option never matches.
    pub const TUN_METADATA_PRESENT: KeyField = KeyField::new(44, 0, N_TUN_METADATA as u32);

    /// `tun_metadata<n>` (n < [`N_TUN_METADATA`]): the option data as a big-endian number,
    /// right-aligned in its word.
    pub const fn tun_metadata(n: usize) -> KeyField {
        KeyField::new(40 + n, 0, 64)
    }

    // --- L2 ---
    /// Ethernet source address (48 bits).
    pub const ETH_SRC: KeyField = KeyField::new(26, 16, 48);
    /// Ethertype after any VLAN tag.
    pub const ETH_TYPE: KeyField = KeyField::new(26, 0, 16);
    /// Ethernet destination address.
    pub const ETH_DST: KeyField = KeyField::new(27, 16, 48);
    /// Outer VLAN TCI, with 0x1000 (CFI) set when a tag is present.
    pub const VLAN_TCI: KeyField = KeyField::new(27, 0, 16);

    // --- L3 ---
    /// IPv4 source (or ARP SPA).
    pub const NW_SRC: KeyField = KeyField::new(28, 32, 32);
    /// IPv4 destination (or ARP TPA).
    pub const NW_DST: KeyField = KeyField::new(28, 0, 32);
    /// IPv6 source.
    pub const IPV6_SRC: KeyField128 = KeyField128 { hi: 29 };
    /// IPv6 destination.
    pub const IPV6_DST: KeyField128 = KeyField128 { hi: 31 };
    /// IPv6 flow label (20 bits).
    pub const IPV6_LABEL: KeyField = KeyField::new(33, 0, 20);
    /// IP protocol / IPv6 upper-layer protocol (ARP: the opcode when it fits 8 bits).
    pub const NW_PROTO: KeyField = KeyField::new(33, 32, 8);
    /// The whole TOS / traffic class byte (DSCP in the upper 6 bits, ECN in the lower 2).
    pub const NW_TOS: KeyField = KeyField::new(33, 40, 8);
    /// IP TTL / hop limit.
    pub const NW_TTL: KeyField = KeyField::new(33, 48, 8);
    /// Fragment bits: 1 = any fragment, 2 = later fragment.
    pub const NW_FRAG: KeyField = KeyField::new(33, 56, 2);

    // --- L4 ---
    /// TCP/UDP/SCTP source port; ICMP type.
    pub const TP_SRC: KeyField = KeyField::new(34, 48, 16);
    /// TCP/UDP/SCTP destination port; ICMP code.
    pub const TP_DST: KeyField = KeyField::new(34, 32, 16);
    /// TCP flags (12 bits).
    pub const TCP_FLAGS: KeyField = KeyField::new(34, 16, 12);
    /// ARP SHA, or the ND source link-layer address option.
    pub const ARP_SHA: KeyField = KeyField::new(35, 16, 48);
    /// ARP THA, or the ND target link-layer address option.
    pub const ARP_THA: KeyField = KeyField::new(36, 16, 48);
    /// ND target address.
    pub const ND_TARGET: KeyField128 = KeyField128 { hi: 37 };
    /// IGMP group address (IPv4).
    pub const IGMP_GROUP: KeyField = KeyField::new(39, 0, 32);

    /// The 32-bit register `reg{n}` (n < 16).
    pub const fn reg(n: usize) -> KeyField {
        KeyField::new(XREG_BASE + n / 2, if n % 2 == 0 { 32 } else { 0 }, 32)
    }

    /// The 64-bit register `xreg{n}` (n < 8).
    pub const fn xreg(n: usize) -> KeyField {
        KeyField::new(XREG_BASE + n, 0, 64)
    }

    /// The 128-bit register `xxreg{n}` (n < 4).
    pub const fn xxreg(n: usize) -> KeyField128 {
        KeyField128 {
            hi: (XREG_BASE + 2 * n) as u8,
        }
    }
}

/// A flow key (or, with the same layout, a wildcard mask: 1-bits are examined).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The words; see [`layout`] for what lives where.
    pub words: [u64; KEY_WORDS],
}

impl Default for FlowKey {
    fn default() -> Self {
        Self::ZERO
    }
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut m = f.debug_map();
        for (i, w) in self.words.iter().enumerate() {
            if *w != 0 {
                m.entry(&i, &format_args!("{w:#018x}"));
            }
        }
        m.finish()
    }
}

impl FlowKey {
    /// All zeros: the empty key, or the mask that examines nothing.
    pub const ZERO: Self = Self {
        words: [0; KEY_WORDS],
    };
    /// All ones: the exact-match mask.
    pub const ALL_ONES: Self = Self {
        words: [u64::MAX; KEY_WORDS],
    };

    /// Reads a field of at most 64 bits.
    #[inline]
    pub fn get(&self, f: KeyField) -> u64 {
        (self.words[f.word as usize] & f.word_mask()) >> f.shift
    }

    /// Writes a field of at most 64 bits; bits of `v` above the field width are ignored.
    #[inline]
    pub fn set(&mut self, f: KeyField, v: u64) {
        let m = f.word_mask();
        let w = &mut self.words[f.word as usize];
        *w = (*w & !m) | ((v << f.shift) & m);
    }

    /// Reads a 128-bit field.
    #[inline]
    pub fn get128(&self, f: KeyField128) -> u128 {
        let hi = f.hi as usize;
        (u128::from(self.words[hi]) << 64) | u128::from(self.words[hi + 1])
    }

    /// Writes a 128-bit field.
    #[inline]
    pub fn set128(&mut self, f: KeyField128, v: u128) {
        let hi = f.hi as usize;
        self.words[hi] = (v >> 64) as u64;
        self.words[hi + 1] = v as u64;
    }

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            out.words[i] = self.words[i] & mask.words[i];
        }
        out
    }

    /// `self |= other`, word by word (how wildcard masks accumulate during translation).
    #[inline]
    pub fn union_with(&mut self, other: &FlowKey) {
        for i in 0..KEY_WORDS {
            self.words[i] |= other.words[i];
        }
    }

    /// True when `self & mask == value & mask` for every word.
    #[inline]
    pub fn matches(&self, value: &FlowKey, mask: &FlowKey) -> bool {
        let mut diff = 0u64;
        for i in 0..KEY_WORDS {
            diff |= (self.words[i] ^ value.words[i]) & mask.words[i];
        }
        diff == 0
    }

    /// Register `reg{n}`.
    #[inline]
    pub fn reg(&self, n: usize) -> u32 {
        self.get(layout::reg(n)) as u32
    }

    /// Sets register `reg{n}`.
    #[inline]
    pub fn set_reg(&mut self, n: usize, v: u32) {
        self.set(layout::reg(n), u64::from(v));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::layout::*;
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        // Set every field to all ones in its own key and check no two keys share a bit.
        let mut fields: Vec<(&str, FlowKey)> = Vec::new();
        let narrow = [
            ("in_port", IN_PORT),
            ("recirc_id", RECIRC_ID),
            ("pkt_mark", PKT_MARK),
            ("conj_id", CONJ_ID),
            ("ct_state", CT_STATE),
            ("ct_zone", CT_ZONE),
            ("ct_nw_proto", CT_NW_PROTO),
            ("ct_mark", CT_MARK),
            ("ct_tp_src", CT_TP_SRC),
            ("ct_tp_dst", CT_TP_DST),
            ("ct_nw_src", CT_NW_SRC),
            ("ct_nw_dst", CT_NW_DST),
            ("tun_id", TUN_ID),
            ("tun_src", TUN_SRC),
            ("tun_dst", TUN_DST),
            ("tun_flags", TUN_FLAGS),
            ("tun_tos", TUN_TOS),
            ("tun_ttl", TUN_TTL),
            ("tun_tp_src", TUN_TP_SRC),
            ("tun_tp_dst", TUN_TP_DST),
            ("eth_src", ETH_SRC),
            ("eth_type", ETH_TYPE),
            ("eth_dst", ETH_DST),
            ("vlan_tci", VLAN_TCI),
            ("nw_src", NW_SRC),
            ("nw_dst", NW_DST),
            ("ipv6_label", IPV6_LABEL),
            ("nw_proto", NW_PROTO),
            ("nw_tos", NW_TOS),
            ("nw_ttl", NW_TTL),
            ("nw_frag", NW_FRAG),
            ("tp_src", TP_SRC),
            ("tp_dst", TP_DST),
            ("tcp_flags", TCP_FLAGS),
            ("arp_sha", ARP_SHA),
            ("arp_tha", ARP_THA),
            ("igmp_group", IGMP_GROUP),
        ];
        for (name, f) in narrow {
            let mut k = FlowKey::ZERO;
            k.set(f, u64::MAX);
            assert_eq!(k.get(f), f.max_value(), "{name}");
            fields.push((name, k));
        }
        for n in 0..N_REGS {
            let mut k = FlowKey::ZERO;
            k.set(reg(n), u64::MAX);
            fields.push(("reg", k));
        }
        for n in 0..N_TUN_METADATA {
            let mut k = FlowKey::ZERO;
            k.set(tun_metadata(n), u64::MAX);
            fields.push(("tun_metadata", k));
        }
        let mut k = FlowKey::ZERO;
        k.set(TUN_METADATA_PRESENT, u64::MAX);
        fields.push(("tun_metadata_present", k));
        let wide = [
            ("ct_label", CT_LABEL),
            ("ct_ipv6_src", CT_IPV6_SRC),
            ("ct_ipv6_dst", CT_IPV6_DST),
            ("tun_ipv6_src", TUN_IPV6_SRC),
            ("tun_ipv6_dst", TUN_IPV6_DST),
            ("ipv6_src", IPV6_SRC),
            ("ipv6_dst", IPV6_DST),
            ("nd_target", ND_TARGET),
        ];
        for (name, f) in wide {
            let mut k = FlowKey::ZERO;
            k.set128(f, u128::MAX);
            assert_eq!(k.get128(f), u128::MAX, "{name}");
            fields.push((name, k));
        }
        for (i, (a, ka)) in fields.iter().enumerate() {
            for (b, kb) in &fields[i + 1..] {
                let overlap = ka.masked(kb);
                assert_eq!(overlap, FlowKey::ZERO, "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn registers_compose_like_ovs() {
        let mut k = FlowKey::ZERO;
        k.set_reg(0, 0x1111_1111);
        k.set_reg(1, 0x2222_2222);
        k.set_reg(2, 0x3333_3333);
        k.set_reg(3, 0x4444_4444);
        assert_eq!(k.get(xreg(0)), 0x1111_1111_2222_2222);
        assert_eq!(
            k.get128(xxreg(0)),
            0x1111_1111_2222_2222_3333_3333_4444_4444
        );
        k.set_reg(15, 7);
        assert_eq!(k.reg(15), 7);
        assert_eq!(k.get(xreg(7)), 7);
    }

    #[test]
    fn masked_match() {
        let mut pkt = FlowKey::ZERO;
        pkt.set(NW_DST, 0x0a0a_0005);
        let mut val = FlowKey::ZERO;
        val.set(NW_DST, 0x0a0a_0000);
        let mut mask = FlowKey::ZERO;
        mask.set(NW_DST, 0xffff_ff00);
        assert!(pkt.matches(&val, &mask));
        mask.set(NW_DST, 0xffff_ffff);
        assert!(!pkt.matches(&val, &mask));
    }
}
