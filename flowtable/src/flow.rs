//! The flow model: [`Match`], [`Flow`] and [`FlowMod`].
//!
//! A [`Match`] is a value key and a mask key with [`FlowKey`]'s layout, nothing else: a
//! classifier uses `(value, mask)` as is, and the printer derives OVS's text from the two keys
//! alone (as OVS's `match_format` does from `struct match`).
//!
//! Invariant: `value & mask == value` (wildcarded bits of the value are zero).

use crate::action::Action;
use crate::field::{read_loc, write_loc, FieldId, Loc, Prereq};
use xvs_packet::key::{layout, FlowKey, KeyField};

/// Emits one field into the match being decoded: skipped when its mask is zero, rejected when
/// the match decoded so far does not meet its prerequisites.
fn put(out: &mut Match, f: FieldId, value: u128, mask: u128) -> Result<(), FieldId> {
    if mask == 0 {
        return Ok(());
    }
    if !out.prereqs_ok(f.info().prereq) {
        return Err(f);
    }
    out.set(f, value, mask);
    Ok(())
}

/// Emits a non-maskable field exactly when the original mask `k` examines its key bits.
fn exact(
    out: &mut Match,
    k: &FlowKey,
    f: FieldId,
    kf: KeyField,
    value: u128,
) -> Result<(), FieldId> {
    if k.get(kf) != 0 {
        put(out, f, value, f.exact_mask())
    } else {
        Ok(())
    }
}

/// The field `xreg{i}` (i < 8).
fn xreg_field(i: usize) -> FieldId {
    [
        FieldId::XREG0,
        FieldId::XREG1,
        FieldId::XREG2,
        FieldId::XREG3,
        FieldId::XREG4,
        FieldId::XREG5,
        FieldId::XREG6,
        FieldId::XREG7,
    ][i & 7]
}

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

    /// Reduces the match to what a switch stores after an OpenFlow 1.5 round trip: the fields
    /// OVS's `nx_put_match` sends for this match (for example `tp_dst` only with a transport
    /// protocol, L3 fields only with their Ethertype, `ct_tp_*` only with a non-zero
    /// `ct_nw_proto`, ICMP type/code as exact 8-bit values, the VLAN TCI as `vlan_vid` plus an
    /// exact `vlan_pcp`), decoded in order as the switch decodes them.
    ///
    /// Fails with the field whose prerequisites the decoded match does not meet (the switch's
    /// `OFPBMC_BAD_PREREQ`), e.g. `ipv6_label` on an IPv4 match or `ct_nw_src` without a
    /// tracked connection state.
    pub fn normalize(&mut self) -> Result<(), FieldId> {
        let (v, k) = (self.value, self.mask);
        let mut out = Match::catch_all();
        let w = |f: KeyField| (u128::from(v.get(f)), u128::from(k.get(f)));
        let w128 = |f: xvs_packet::key::KeyField128| (v.get128(f), k.get128(f));
        exact(
            &mut out,
            &k,
            FieldId::CONJ_ID,
            layout::CONJ_ID,
            w(layout::CONJ_ID).0,
        )?;
        exact(
            &mut out,
            &k,
            FieldId::RECIRC_ID,
            layout::RECIRC_ID,
            w(layout::RECIRC_ID).0,
        )?;
        exact(
            &mut out,
            &k,
            FieldId::IN_PORT_OXM,
            layout::IN_PORT,
            w(layout::IN_PORT).0,
        )?;
        let (a, b) = w(layout::ETH_SRC);
        put(&mut out, FieldId::ETH_SRC, a, b)?;
        let (a, b) = w(layout::ETH_DST);
        put(&mut out, FieldId::ETH_DST, a, b)?;
        exact(
            &mut out,
            &k,
            FieldId::ETH_TYPE,
            layout::ETH_TYPE,
            w(layout::ETH_TYPE).0,
        )?;

        // VLAN: vlan_vid (VID and present bit) as given, and an exact vlan_pcp only when the
        // VID/present value is non-zero.
        let (tci, tci_m) = w(layout::VLAN_TCI);
        put(&mut out, FieldId::VLAN_VID, tci & 0x1fff, tci_m & 0x1fff)?;
        if tci & 0x1fff != 0 && tci_m & 0xe000 != 0 {
            put(&mut out, FieldId::VLAN_PCP, (tci >> 13) & 7, 0xff)?;
        }

        let dl = v.get(layout::ETH_TYPE) as u16;
        let (proto, proto_m) = w(layout::NW_PROTO);
        let proto8 = proto as u8;
        if dl == ethertype::IP || dl == ethertype::IPV6 {
            if dl == ethertype::IP {
                let (a, b) = w(layout::NW_SRC);
                put(&mut out, FieldId::IPV4_SRC, a, b)?;
                let (a, b) = w(layout::NW_DST);
                put(&mut out, FieldId::IPV4_DST, a, b)?;
            } else {
                let (a, b) = w128(layout::IPV6_SRC);
                put(&mut out, FieldId::IPV6_SRC, a, b)?;
                let (a, b) = w128(layout::IPV6_DST);
                put(&mut out, FieldId::IPV6_DST, a, b)?;
            }
            let (fv, fm) = w(layout::NW_FRAG);
            put(
                &mut out,
                FieldId::IP_FRAG,
                fv & 3,
                if fm & 3 == 3 { 0xff } else { fm & 3 },
            )?;
            let (tos, tos_m) = w(layout::NW_TOS);
            if tos_m & 0xfc != 0 {
                put(&mut out, FieldId::IP_DSCP_SHIFTED, (tos >> 2) & 0x3f, 0xff)?;
            }
            if tos_m & 0x03 != 0 {
                put(&mut out, FieldId::IP_ECN, tos & 3, 0xff)?;
            }
            exact(
                &mut out,
                &k,
                FieldId::IP_TTL,
                layout::NW_TTL,
                w(layout::NW_TTL).0,
            )?;
            let (a, b) = w(layout::IPV6_LABEL);
            put(&mut out, FieldId::IPV6_LABEL, a, b)?;
            if proto_m != 0 {
                put(&mut out, FieldId::IP_PROTO, proto, 0xff)?;
                let (sv, sm) = w(layout::TP_SRC);
                let (dv, dm) = w(layout::TP_DST);
                match proto8 {
                    ipproto::TCP => {
                        put(&mut out, FieldId::TCP_SRC, sv, sm)?;
                        put(&mut out, FieldId::TCP_DST, dv, dm)?;
                        let (a, b) = w(layout::TCP_FLAGS);
                        put(&mut out, FieldId::TCP_FLAGS, a, b)?;
                    }
                    ipproto::UDP => {
                        put(&mut out, FieldId::UDP_SRC, sv, sm)?;
                        put(&mut out, FieldId::UDP_DST, dv, dm)?;
                    }
                    ipproto::SCTP => {
                        put(&mut out, FieldId::SCTP_SRC, sv, sm)?;
                        put(&mut out, FieldId::SCTP_DST, dv, dm)?;
                    }
                    ipproto::ICMP if dl == ethertype::IP => {
                        put(
                            &mut out,
                            FieldId::ICMPV4_TYPE,
                            sv & 0xff,
                            if sm != 0 { 0xff } else { 0 },
                        )?;
                        put(
                            &mut out,
                            FieldId::ICMPV4_CODE,
                            dv & 0xff,
                            if dm != 0 { 0xff } else { 0 },
                        )?;
                    }
                    ipproto::ICMPV6 if dl == ethertype::IPV6 => {
                        put(
                            &mut out,
                            FieldId::ICMPV6_TYPE,
                            sv & 0xff,
                            if sm != 0 { 0xff } else { 0 },
                        )?;
                        put(
                            &mut out,
                            FieldId::ICMPV6_CODE,
                            dv & 0xff,
                            if dm != 0 { 0xff } else { 0 },
                        )?;
                        if dv == 0 && (sv == 135 || sv == 136) {
                            let (a, b) = w128(layout::ND_TARGET);
                            put(&mut out, FieldId::ND_TARGET, a, b)?;
                            if sv == 135 {
                                let (a, b) = w(layout::ARP_SHA);
                                put(&mut out, FieldId::ND_SLL, a, b)?;
                            } else {
                                let (a, b) = w(layout::ARP_THA);
                                put(&mut out, FieldId::ND_TLL, a, b)?;
                            }
                        }
                    }
                    _ => {}
                }
            }
        } else if dl == ethertype::ARP || dl == ethertype::RARP {
            if proto_m != 0 {
                put(&mut out, FieldId::ARP_OP, proto, 0xffff)?;
            }
            let (a, b) = w(layout::NW_SRC);
            put(&mut out, FieldId::ARP_SPA, a, b)?;
            let (a, b) = w(layout::NW_DST);
            put(&mut out, FieldId::ARP_TPA, a, b)?;
            let (a, b) = w(layout::ARP_SHA);
            put(&mut out, FieldId::ARP_SHA, a, b)?;
            let (a, b) = w(layout::ARP_THA);
            put(&mut out, FieldId::ARP_THA, a, b)?;
        }

        let (a, b) = w(layout::TUN_ID);
        put(&mut out, FieldId::TUN_ID, a, b)?;
        let (a, b) = w(layout::TUN_SRC);
        put(&mut out, FieldId::TUN_SRC, a, b)?;
        let (a, b) = w(layout::TUN_DST);
        put(&mut out, FieldId::TUN_DST, a, b)?;
        let (a, b) = w128(layout::TUN_IPV6_SRC);
        put(&mut out, FieldId::TUN_IPV6_SRC, a, b)?;
        let (a, b) = w128(layout::TUN_IPV6_DST);
        put(&mut out, FieldId::TUN_IPV6_DST, a, b)?;
        let (a, b) = (v.get(layout::TUN_FLAGS) & 1, k.get(layout::TUN_FLAGS) & 1);
        put(&mut out, FieldId::TUN_FLAGS, u128::from(a), u128::from(b))?;
        let present = k.get(layout::TUN_METADATA_PRESENT);
        for (n, f) in FieldId::TUN_METADATA.into_iter().enumerate() {
            if present & (1 << n) != 0 {
                let (a, b) = w(layout::tun_metadata(n));
                // A presence-only match has a zero mask; keep it (set() marks presence).
                out.set(f, a, b);
            }
        }
        for i in 0..8 {
            let (a, b) = w(layout::xreg(i));
            put(&mut out, xreg_field(i), a, b)?;
        }
        let (a, b) = w(layout::PKT_MARK);
        put(&mut out, FieldId::PKT_MARK, a, b)?;
        let (a, b) = (
            v.get(layout::CT_STATE) & 0xff,
            k.get(layout::CT_STATE) & 0xff,
        );
        put(&mut out, FieldId::CT_STATE, u128::from(a), u128::from(b))?;
        exact(
            &mut out,
            &k,
            FieldId::CT_ZONE,
            layout::CT_ZONE,
            w(layout::CT_ZONE).0,
        )?;
        let (a, b) = w(layout::CT_MARK);
        put(&mut out, FieldId::CT_MARK, a, b)?;
        let (a, b) = w128(layout::CT_LABEL);
        put(&mut out, FieldId::CT_LABEL, a, b)?;
        let (a, b) = w(layout::CT_NW_SRC);
        put(&mut out, FieldId::CT_NW_SRC, a, b)?;
        let (a, b) = w128(layout::CT_IPV6_SRC);
        put(&mut out, FieldId::CT_IPV6_SRC, a, b)?;
        let (a, b) = w(layout::CT_NW_DST);
        put(&mut out, FieldId::CT_NW_DST, a, b)?;
        let (a, b) = w128(layout::CT_IPV6_DST);
        put(&mut out, FieldId::CT_IPV6_DST, a, b)?;
        let (ctp, ctp_m) = w(layout::CT_NW_PROTO);
        if ctp != 0 {
            put(&mut out, FieldId::CT_NW_PROTO, ctp, ctp_m)?;
            let (a, b) = w(layout::CT_TP_SRC);
            put(&mut out, FieldId::CT_TP_SRC, a, b)?;
            let (a, b) = w(layout::CT_TP_DST);
            put(&mut out, FieldId::CT_TP_DST, a, b)?;
        }
        *self = out;
        Ok(())
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
