//! The flow model: [`Match`], [`Flow`] and [`FlowMod`].
//!
//! A [`Match`] is a value key and a mask key with [`FlowKey`]'s layout, nothing else: a
//! classifier uses `(value, mask)` as is, and the printer derives OVS's text from the two keys
//! alone (as OVS's `match_format` does from `struct match`).
//!
//! Invariant: `value & mask == value` (wildcarded bits of the value are zero).

use crate::action::Action;
use crate::field::{read_loc, write_loc, FieldId, Loc, Prereq};
use xvs_packet::key::{layout, FlowKey};

/// Ethertypes used by the shorthand protocols.
pub mod ethertype {
    /// IPv4.
    pub const IP: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// RARP.
    pub const RARP: u16 = 0x8035;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// MPLS unicast.
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MCAST: u16 = 0x8848;
}

/// IP protocol numbers used by the shorthand protocols.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// A flow match: field values and bit masks over the [`FlowKey`] layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    value: FlowKey,
    mask: FlowKey,
}

impl Match {
    /// The catch-all match (matches every packet).
    pub const fn catch_all() -> Self {
        Match {
            value: FlowKey::ZERO,
            mask: FlowKey::ZERO,
        }
    }

    /// Builds a match from a value and a mask key; the value is masked.
    pub fn from_keys(value: FlowKey, mask: FlowKey) -> Self {
        Match {
            value: value.masked(&mask),
            mask,
        }
    }

    /// The value key (wildcarded bits are zero).
    pub fn value(&self) -> &FlowKey {
        &self.value
    }

    /// The mask key (1-bits are examined).
    pub fn mask(&self) -> &FlowKey {
        &self.mask
    }

    /// True when the match examines nothing.
    pub fn is_catch_all(&self) -> bool {
        self.mask == FlowKey::ZERO
    }

    /// True when `pkt` matches.
    pub fn matches(&self, pkt: &FlowKey) -> bool {
        pkt.matches(&self.value, &self.mask)
    }

    /// The value and mask of `field`.
    pub fn get(&self, field: FieldId) -> (u128, u128) {
        let loc = field.info().loc;
        let full = field.exact_mask();
        (
            read_loc(loc, &self.value) & full,
            read_loc(loc, &self.mask) & full,
        )
    }

    /// Sets `field` to match `value` under `mask` (replacing what the match had for the field),
    /// with OVS's side effects: `dl_vlan`/`dl_vlan_pcp` also require a VLAN tag, `nw_tos`,
    /// `ip_dscp` and `nw_ecn` touch only their bits of the TOS byte.
    pub fn set(&mut self, field: FieldId, value: u128, mask: u128) {
        let info = field.info();
        let loc = info.loc;
        let value = value & mask;
        match loc {
            Loc::DlVlan | Loc::VlanPcp => {
                write_loc(loc, &mut self.value, value);
                write_loc(loc, &mut self.mask, mask);
                let tci = self.value.get(layout::VLAN_TCI) | 0x1000;
                self.value.set(layout::VLAN_TCI, tci);
                let m = self.mask.get(layout::VLAN_TCI) | 0x1000;
                self.mask.set(layout::VLAN_TCI, m);
            }
            Loc::Word(kf) if !info.maskable && mask != 0 => {
                // A non-maskable field narrower than its key slot (icmp_type in tp_src) matches
                // the whole slot, as OVS's match_set_icmp_type() does.
                write_loc(loc, &mut self.value, value);
                self.mask.set(kf, kf.max_value());
            }
            _ => {
                write_loc(loc, &mut self.value, value);
                write_loc(loc, &mut self.mask, mask);
            }
        }
        // Keep the invariant for transforms that share key bits.
        self.value = self.value.masked(&self.mask);
    }

    /// Sets `field` to an exact value.
    pub fn set_exact(&mut self, field: FieldId, value: u128) {
        self.set(field, value, field.exact_mask());
    }

    /// The matched Ethertype (0 when wildcarded).
    pub fn dl_type(&self) -> u16 {
        self.value.get(layout::ETH_TYPE) as u16
    }

    /// The matched IP protocol (0 when wildcarded).
    pub fn nw_proto(&self) -> u8 {
        self.value.get(layout::NW_PROTO) as u8
    }

    fn is_ip_any(&self) -> bool {
        matches!(self.dl_type(), ethertype::IP | ethertype::IPV6)
    }

    /// True when the match meets `prereq` (OVS `mf_are_match_prereqs_ok`).
    pub fn prereqs_ok(&self, prereq: Prereq) -> bool {
        let dl = self.dl_type();
        let proto = self.nw_proto();
        let later_frag = self.value.get(layout::NW_FRAG) & 2 != 0;
        let icmpv6 = dl == ethertype::IPV6 && proto == ipproto::ICMPV6;
        let nd = icmpv6
            && matches!(self.value.get(layout::TP_SRC), 135 | 136)
            && self.value.get(layout::TP_DST) == 0;
        match prereq {
            Prereq::None | Prereq::Ethernet => true,
            Prereq::Arp => matches!(dl, ethertype::ARP | ethertype::RARP),
            Prereq::Ipv4 => dl == ethertype::IP,
            Prereq::Ipv6 => dl == ethertype::IPV6,
            Prereq::IpAny => self.is_ip_any(),
            Prereq::Tcp => self.is_ip_any() && proto == ipproto::TCP && !later_frag,
            Prereq::Udp => self.is_ip_any() && proto == ipproto::UDP && !later_frag,
            Prereq::Sctp => self.is_ip_any() && proto == ipproto::SCTP && !later_frag,
            Prereq::Icmpv4 => dl == ethertype::IP && proto == ipproto::ICMP,
            Prereq::Icmpv6 => icmpv6,
            Prereq::Nd => nd,
            Prereq::NdSolicit => nd && self.value.get(layout::TP_SRC) == 135,
            Prereq::NdAdvert => nd && self.value.get(layout::TP_SRC) == 136,
            Prereq::Ct => {
                // OVS is_ct_valid() with a mask: a state bit that implies a valid entry is
                // required, or an explicit +trk-inv.
                let st = self.value.get(layout::CT_STATE);
                let m = self.mask.get(layout::CT_STATE);
                st & 0xcf != 0 || (st & 0x20 != 0 && m & 0x10 != 0 && st & 0x10 == 0)
            }
            Prereq::VlanVid => self.value.get(layout::VLAN_TCI) & 0x1000 != 0,
        }
    }

    /// Clears fields whose prerequisites the match does not meet, as OVS's
    /// `ofputil_normalize_match` does (e.g. `tp_dst` without `tcp`/`udp`/`sctp`), and reduces
    /// the VLAN TCI match to what OpenFlow 1.5 can express (see the body). The result is what a
    /// switch stores and dumps.
    pub fn normalize(&mut self) {
        let dl = self.dl_type();
        let proto = self.nw_proto();
        let (mut nw_addr, mut tp_addr, mut nw_proto, mut ipvx) = (false, false, false, false);
        let (mut arp_sha, mut arp_tha, mut ipv6, mut nd_target) = (false, false, false, false);
        match dl {
            ethertype::IP => {
                nw_proto = true;
                ipvx = true;
                nw_addr = true;
                tp_addr = matches!(
                    proto,
                    ipproto::TCP | ipproto::UDP | ipproto::SCTP | ipproto::ICMP
                );
            }
            ethertype::IPV6 => {
                nw_proto = true;
                ipvx = true;
                ipv6 = true;
                if matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                    tp_addr = true;
                } else if proto == ipproto::ICMPV6 {
                    tp_addr = true;
                    // OpenFlow 1.5 carries the ND fields only for code 0.
                    let code = self.value.get(layout::TP_DST);
                    match if code == 0 {
                        self.value.get(layout::TP_SRC)
                    } else {
                        0
                    } {
                        135 => {
                            nd_target = true;
                            arp_sha = true;
                        }
                        136 => {
                            nd_target = true;
                            arp_tha = true;
                        }
                        _ => {}
                    }
                }
            }
            ethertype::ARP | ethertype::RARP => {
                nw_proto = true;
                nw_addr = true;
                arp_sha = true;
                arp_tha = true;
            }
            _ => {}
        }
        let m = &mut self.mask;
        if !nw_addr {
            m.set(layout::NW_SRC, 0);
            m.set(layout::NW_DST, 0);
        }
        if !tp_addr {
            m.set(layout::TP_SRC, 0);
            m.set(layout::TP_DST, 0);
        }
        if !nw_proto {
            m.set(layout::NW_PROTO, 0);
        }
        if !ipvx {
            m.set(layout::NW_TOS, 0);
            m.set(layout::NW_TTL, 0);
            // Not in OVS's normalisation, but OpenFlow 1.5 carries nw_frag only for IP.
            m.set(layout::NW_FRAG, 0);
        }
        if !(ipvx && proto == ipproto::TCP) {
            // Likewise tcp_flags only for TCP.
            m.set(layout::TCP_FLAGS, 0);
        }
        if !arp_sha {
            m.set(layout::ARP_SHA, 0);
        }
        if !arp_tha {
            m.set(layout::ARP_THA, 0);
        }
        if !ipv6 {
            m.set128(layout::IPV6_SRC, 0);
            m.set128(layout::IPV6_DST, 0);
            m.set(layout::IPV6_LABEL, 0);
        }
        if !nd_target {
            m.set128(layout::ND_TARGET, 0);
        }
        // ICMP type and code travel as exact 8-bit fields: a partial tp_src/tp_dst mask comes
        // back exact, and only the low 8 bits of the value survive.
        let icmp = (dl == ethertype::IP && proto == ipproto::ICMP)
            || (dl == ethertype::IPV6 && proto == ipproto::ICMPV6);
        if icmp {
            for f in [layout::TP_SRC, layout::TP_DST] {
                if m.get(f) != 0 {
                    m.set(f, 0xffff);
                    let v = self.value.get(f) & 0xff;
                    self.value.set(f, v);
                }
            }
        }
        // VLAN: OpenFlow 1.2+ carries the TCI as vlan_vid (VID and present bit, maskable) plus
        // an exact vlan_pcp that is only sent when a tag is matched; a switch hands back
        // exactly that.
        let tci = self.value.get(layout::VLAN_TCI);
        let tci_m = m.get(layout::VLAN_TCI);
        let vid = tci & 0x1fff;
        let (mut new_v, mut new_m) = (vid & tci_m, tci_m & 0x1fff);
        if vid != 0 && tci_m & 0xe000 != 0 {
            new_v |= (tci & 0xe000) | 0x1000;
            new_m |= 0xf000;
        }
        self.value.set(layout::VLAN_TCI, new_v);
        m.set(layout::VLAN_TCI, new_m);
        self.value = self.value.masked(&self.mask);
    }
}

/// Flow-mod flags (`send_flow_rem`, `check_overlap`, ...), as OVS's `ofputil_flow_mod_flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowFlags(pub u16);

impl FlowFlags {
    /// `send_flow_rem`.
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    /// `check_overlap`.
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    /// `reset_counts`.
    pub const RESET_COUNTS: u16 = 1 << 2;
    /// `no_packet_counts`.
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    /// `no_byte_counts`.
    pub const NO_BYT_COUNTS: u16 = 1 << 4;

    /// Names in OVS's printing order.
    pub(crate) const NAMES: [(u16, &'static str); 5] = [
        (Self::SEND_FLOW_REM, "send_flow_rem"),
        (Self::CHECK_OVERLAP, "check_overlap"),
        (Self::RESET_COUNTS, "reset_counts"),
        (Self::NO_PKT_COUNTS, "no_packet_counts"),
        (Self::NO_BYT_COUNTS, "no_byte_counts"),
    ];
}

/// Counters and ages of an installed flow, as in a flow-stats reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowStats {
    /// Seconds since the flow was added.
    pub duration_sec: u32,
    /// Nanoseconds part of the duration.
    pub duration_nsec: u32,
    /// Packets matched (`None` prints as `?`).
    pub n_packets: Option<u64>,
    /// Bytes matched.
    pub n_bytes: Option<u64>,
    /// Seconds since the last hit, if known.
    pub idle_age: Option<u32>,
    /// Seconds since the last modification, if known.
    pub hard_age: Option<u32>,
}

/// A flow: where it lives, how it matches, what it does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Table id.
    pub table: u8,
    /// Priority (OVS default 32768).
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// Idle timeout in seconds, 0 = none.
    pub idle_timeout: u16,
    /// Hard timeout in seconds, 0 = none.
    pub hard_timeout: u16,
    /// Importance (eviction), 0 = none.
    pub importance: u16,
    /// Flow-mod flags.
    pub flags: FlowFlags,
    /// The match.
    pub match_: Match,
    /// Actions and instructions in order; empty means drop. `goto_table` can only be last.
    pub actions: Vec<Action>,
    /// Statistics, when the flow came from a dump.
    pub stats: Option<FlowStats>,
}

/// OpenFlow's default priority.
pub const DEFAULT_PRIORITY: u16 = 32768;

impl Default for Flow {
    fn default() -> Self {
        Flow {
            table: 0,
            priority: DEFAULT_PRIORITY,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            importance: 0,
            flags: FlowFlags::default(),
            match_: Match::catch_all(),
            actions: Vec::new(),
            stats: None,
        }
    }
}

/// Flow-mod commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    /// `add`.
    Add,
    /// `modify` (non-strict).
    Modify,
    /// `modify_strict`.
    ModifyStrict,
    /// `delete` (non-strict).
    Delete,
    /// `delete_strict`.
    DeleteStrict,
}

/// A parsed `add-flow`/`mod-flows`/`del-flows` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowMod {
    /// The command.
    pub command: FlowModCommand,
    /// Match, priority, actions etc.; `flow.table` is meaningful only when `table_given`.
    pub flow: Flow,
    /// Whether `table=` was given (otherwise OVS means "all tables" for mods/deletes and table 0
    /// for adds).
    pub table_given: bool,
    /// Cookie mask for matching (`cookie=V/M`); 0 = cookie not matched.
    pub cookie_mask: u64,
    /// Whether a new cookie is set (`cookie=V` on add/modify).
    pub modify_cookie: bool,
    /// `out_port=` filter for deletes, [`crate::Port::NONE`] when absent.
    pub out_port: crate::Port,
    /// `out_group=` filter for deletes, `OFPG_ANY` (0xffffffff) when absent.
    pub out_group: u32,
}
