//! Printing flows, matches and actions exactly as Open vSwitch 3.1's `ovs-ofctl` does
//! (`match_format`, `ofpacts_format`, `ofputil_flow_stats_format`).

use crate::action::{Action, Ct, CtZone, Learn, LearnSpec, Nat, NatAddrs, NatKind};
use crate::field::{
    format_field_value, format_flags, format_flags_masked, FieldId, CT_STATE_NAMES, TCP_FLAG_NAMES,
    TUN_FLAG_NAMES,
};
use crate::flow::{ethertype, ipproto, Flow, FlowFlags, Match, DEFAULT_PRIORITY};
use crate::names::{format_port, format_table, NameMap, Port};
use crate::value::{
    put_eth_masked, put_hex, put_hex_bytes, put_ipv4, put_ipv4_masked, put_ipv6, put_ipv6_masked,
};
use std::fmt::Write as _;
use xvs_packet::key::{layout, KeyField, KeyField128};

/// How to print: names (for `--names`) and whether to include statistics (`--no-stats` off).
#[derive(Clone, Copy, Debug)]
pub struct FormatOptions<'a> {
    /// Port and table names; an empty map prints numbers (`--no-names`).
    pub names: &'a NameMap,
    /// Print cookie, duration, table, counters and ages even when zero (default `dump-flows`).
    pub show_stats: bool,
}

fn fmt_u32_masked(out: &mut String, name: &str, v: u64, m: u64) {
    if m != 0 {
        let _ = write!(out, "{name}=");
        if v == 0 {
            out.push('0');
        } else {
            let _ = write!(out, "{v:#x}");
        }
        if m != 0xffff_ffff {
            let _ = write!(out, "/{m:#x}");
        }
        out.push(',');
    }
}

fn fmt_be64_masked(out: &mut String, name: &str, v: u64, m: u64) {
    if m != 0 {
        let _ = write!(out, "{name}=");
        if v == 0 {
            out.push('0');
        } else {
            let _ = write!(out, "{v:#x}");
        }
        if m != u64::MAX {
            let _ = write!(out, "/{m:#x}");
        }
        out.push(',');
    }
}

/// `tun_metadata<n>` as OVS's `tun_metadata_match_format` prints it: the value in hex without
/// leading zeros, the mask only when it is not all ones over the option (xvs maps options of
/// 4 or 8 bytes, so 32 or 64 one bits), and the bare name for a presence-only match.
fn fmt_tun_metadata(out: &mut String, m: &Match) {
    let present_mask = m.mask().get(layout::TUN_METADATA_PRESENT);
    for n in 0..layout::N_TUN_METADATA {
        if present_mask & (1 << n) == 0 {
            continue;
        }
        let v = m.value().get(layout::tun_metadata(n));
        let k = m.mask().get(layout::tun_metadata(n));
        let _ = write!(out, "tun_metadata{n}");
        if k != 0 {
            let _ = write!(out, "={v:#x}");
            if k != u64::MAX && k != u64::from(u32::MAX) {
                let _ = write!(out, "/{k:#x}");
            }
        }
        out.push(',');
    }
}

fn fmt_u16_masked(out: &mut String, name: &str, v: u64, m: u64) {
    if m != 0 {
        if m == 0xffff {
            let _ = write!(out, "{name}={v},");
        } else {
            let _ = write!(out, "{name}={v:#x}/{m:#x},");
        }
    }
}

fn fmt_ip(out: &mut String, name: &str, v: u64, m: u64) {
    if m != 0 {
        let _ = write!(out, "{name}=");
        put_ipv4_masked(out, v as u32, m as u32);
        out.push(',');
    }
}

fn fmt_ipv6(out: &mut String, name: &str, v: u128, m: u128) {
    if m != 0 {
        let _ = write!(out, "{name}=");
        put_ipv6_masked(out, v, m);
        out.push(',');
    }
}

fn fmt_eth(out: &mut String, name: &str, v: u64, m: u64) {
    if m != 0 {
        let _ = write!(out, "{name}=");
        put_eth_masked(out, v, m);
        out.push(',');
    }
}

/// Appends a match (with `priority=` first when it is not the default), as `match_format`.
pub fn format_match(out: &mut String, m: &Match, priority: u16, names: &NameMap) {
    let start = out.len();
    let (v, k) = (m.value(), m.mask());
    let g = |f: KeyField| (v.get(f), k.get(f));
    let g128 = |f: KeyField128| (v.get128(f), k.get128(f));
    if priority != DEFAULT_PRIORITY {
        let _ = write!(out, "priority={priority},");
    }
    let (pv, pm) = g(layout::PKT_MARK);
    fmt_u32_masked(out, "pkt_mark", pv, pm);
    let (rv, rm) = g(layout::RECIRC_ID);
    fmt_u32_masked(out, "recirc_id", rv, rm);
    let (cv, cm) = g(layout::CONJ_ID);
    if cm != 0 {
        let _ = write!(out, "conj_id={cv},");
    }
    let (sv, sm) = (
        v.get(layout::CT_STATE) & 0xff,
        k.get(layout::CT_STATE) & 0xff,
    );
    if sm != 0 {
        out.push_str("ct_state=");
        if sm == 0xff {
            format_flags(out, &CT_STATE_NAMES, sv as u32, '|');
        } else {
            format_flags_masked(out, &CT_STATE_NAMES, sv as u32, sm as u32, 0xff);
        }
        out.push(',');
    }
    let (zv, zm) = g(layout::CT_ZONE);
    fmt_u16_masked(out, "ct_zone", zv, zm);
    let (mv, mm) = g(layout::CT_MARK);
    fmt_u32_masked(out, "ct_mark", mv, mm);
    let (lv, lm) = g128(layout::CT_LABEL);
    if lm != 0 {
        out.push_str("ct_label=");
        put_hex(out, lv, 16);
        if lm != u128::MAX {
            out.push('/');
            put_hex(out, lm, 16);
        }
        out.push(',');
    }
    let (a, b) = g(layout::CT_NW_SRC);
    fmt_ip(out, "ct_nw_src", a, b);
    let (a, b) = g128(layout::CT_IPV6_SRC);
    fmt_ipv6(out, "ct_ipv6_src", a, b);
    let (a, b) = g(layout::CT_NW_DST);
    fmt_ip(out, "ct_nw_dst", a, b);
    let (a, b) = g128(layout::CT_IPV6_DST);
    fmt_ipv6(out, "ct_ipv6_dst", a, b);
    let (pv, pm) = g(layout::CT_NW_PROTO);
    if pm != 0 {
        let _ = write!(out, "ct_nw_proto={pv},");
        let (a, b) = g(layout::CT_TP_SRC);
        fmt_u16_masked(out, "ct_tp_src", a, b);
        let (a, b) = g(layout::CT_TP_DST);
        fmt_u16_masked(out, "ct_tp_dst", a, b);
    }

    let (dl_type, dl_mask) = g(layout::ETH_TYPE);
    let dl_type = dl_type as u16;
    let (nw_proto, proto_mask) = g(layout::NW_PROTO);
    let nw_proto = nw_proto as u8;
    let mut skip_type = false;
    let mut skip_proto = false;
    if dl_mask != 0 {
        skip_type = true;
        let shorthand = match dl_type {
            ethertype::IP => {
                if proto_mask != 0 {
                    skip_proto = true;
                    match nw_proto {
                        ipproto::ICMP => "icmp",
                        ipproto::TCP => "tcp",
                        ipproto::UDP => "udp",
                        ipproto::SCTP => "sctp",
                        _ => {
                            skip_proto = false;
                            "ip"
                        }
                    }
                } else {
                    "ip"
                }
            }
            ethertype::IPV6 => {
                if proto_mask != 0 {
                    skip_proto = true;
                    match nw_proto {
                        ipproto::ICMPV6 => "icmp6",
                        ipproto::TCP => "tcp6",
                        ipproto::UDP => "udp6",
                        ipproto::SCTP => "sctp6",
                        _ => {
                            skip_proto = false;
                            "ipv6"
                        }
                    }
                } else {
                    "ipv6"
                }
            }
            ethertype::ARP => "arp",
            ethertype::RARP => "rarp",
            ethertype::MPLS => "mpls",
            ethertype::MPLS_MCAST => "mplsm",
            _ => {
                skip_type = false;
                ""
            }
        };
        if skip_type {
            out.push_str(shorthand);
            out.push(',');
        }
    }
    for i in 0..layout::N_REGS {
        let (a, b) = g(layout::reg(i));
        fmt_u32_masked(out, &format!("reg{i}"), a, b);
    }
    let (a, b) = g(layout::TUN_ID);
    fmt_be64_masked(out, "tun_id", a, b);
    let (a, b) = g(layout::TUN_SRC);
    fmt_ip(out, "tun_src", a, b);
    let (a, b) = g(layout::TUN_DST);
    fmt_ip(out, "tun_dst", a, b);
    let (a, b) = g128(layout::TUN_IPV6_SRC);
    fmt_ipv6(out, "tun_ipv6_src", a, b);
    let (a, b) = g128(layout::TUN_IPV6_DST);
    fmt_ipv6(out, "tun_ipv6_dst", a, b);
    // OVS prints the four flags it knows (oam, df, csum, key), not only the public one, so a
    // megaflow shows the tunnel flags it was built for.
    let (a, b) = g(layout::TUN_FLAGS);
    if b & 0xf != 0 {
        out.push_str("tun_flags=");
        format_flags_masked(
            out,
            &TUN_FLAG_NAMES,
            (a & 0xf) as u32,
            (b & 0xf) as u32,
            0xf,
        );
        out.push(',');
    }
    fmt_tun_metadata(out, m);

    let (pv, pm) = g(layout::IN_PORT);
    if pm != 0 {
        out.push_str("in_port=");
        let p = Port::from_ofp11(pv as u32).unwrap_or(Port(pv as u16));
        format_port(out, p, names);
        out.push(',');
    }
    let (tci, tci_m) = g(layout::VLAN_TCI);
    if tci_m != 0 {
        let vid_mask = tci_m & 0x0fff;
        let pcp_mask = tci_m & 0xe000;
        let cfi = tci_m & 0x1000;
        if cfi != 0
            && tci & 0x1000 != 0
            && (vid_mask == 0 || vid_mask == 0x0fff)
            && (pcp_mask == 0 || pcp_mask == 0xe000)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                let _ = write!(out, "dl_vlan={},", tci & 0x0fff);
            }
            if pcp_mask != 0 {
                let _ = write!(out, "dl_vlan_pcp={},", tci >> 13);
            }
        } else if tci_m == 0xffff {
            let _ = write!(out, "vlan_tci=0x{tci:04x},");
        } else {
            let _ = write!(out, "vlan_tci=0x{tci:04x}/0x{tci_m:04x},");
        }
    }
    let (a, b) = g(layout::ETH_SRC);
    fmt_eth(out, "dl_src", a, b);
    let (a, b) = g(layout::ETH_DST);
    fmt_eth(out, "dl_dst", a, b);
    if !skip_type && dl_mask != 0 {
        let _ = write!(out, "dl_type=0x{dl_type:04x},");
    }
    let is_arp = dl_type == ethertype::ARP || dl_type == ethertype::RARP;
    if dl_type == ethertype::IPV6 {
        let (a, b) = g128(layout::IPV6_SRC);
        fmt_ipv6(out, "ipv6_src", a, b);
        let (a, b) = g128(layout::IPV6_DST);
        fmt_ipv6(out, "ipv6_dst", a, b);
        let (lv, lm) = g(layout::IPV6_LABEL);
        if lm != 0 {
            if lm == 0xfffff {
                let _ = write!(out, "ipv6_label=0x{lv:05x},");
            } else {
                let _ = write!(out, "ipv6_label=0x{lv:05x}/0x{lm:05x},");
            }
        }
    } else if is_arp {
        let (a, b) = g(layout::NW_SRC);
        fmt_ip(out, "arp_spa", a, b);
        let (a, b) = g(layout::NW_DST);
        fmt_ip(out, "arp_tpa", a, b);
    } else {
        let (a, b) = g(layout::NW_SRC);
        fmt_ip(out, "nw_src", a, b);
        let (a, b) = g(layout::NW_DST);
        fmt_ip(out, "nw_dst", a, b);
    }
    if !skip_proto && proto_mask != 0 {
        if is_arp {
            let _ = write!(out, "arp_op={nw_proto},");
        } else {
            let _ = write!(out, "nw_proto={nw_proto},");
        }
    }
    if is_arp {
        let (a, b) = g(layout::ARP_SHA);
        fmt_eth(out, "arp_sha", a, b);
        let (a, b) = g(layout::ARP_THA);
        fmt_eth(out, "arp_tha", a, b);
    }
    let (tos, tos_m) = g(layout::NW_TOS);
    if tos_m & 0xfc != 0 {
        let _ = write!(out, "nw_tos={},", tos & 0xfc);
    }
    if tos_m & 0x03 != 0 {
        let _ = write!(out, "nw_ecn={},", tos & 0x03);
    }
    let (ttl, ttl_m) = g(layout::NW_TTL);
    if ttl_m != 0 {
        let _ = write!(out, "nw_ttl={ttl},");
    }
    let (frag, frag_m) = g(layout::NW_FRAG);
    match frag_m & 3 {
        3 => {
            let s = match frag & 3 {
                0 => "no",
                1 => "first",
                3 => "later",
                _ => "<error>",
            };
            let _ = write!(out, "nw_frag={s},");
        }
        1 => {
            let _ = write!(out, "nw_frag={},", if frag & 1 != 0 { "yes" } else { "no" });
        }
        2 => {
            let _ = write!(
                out,
                "nw_frag={},",
                if frag & 2 != 0 { "later" } else { "not_later" }
            );
        }
        _ => {}
    }
    let (a, b) = g(layout::TP_SRC);
    let (c, d) = g(layout::TP_DST);
    if dl_type == ethertype::IP && nw_proto == ipproto::ICMP {
        fmt_u16_masked(out, "icmp_type", a, b);
        fmt_u16_masked(out, "icmp_code", c, d);
    } else if dl_type == ethertype::IPV6 && nw_proto == ipproto::ICMPV6 {
        fmt_u16_masked(out, "icmp_type", a, b);
        fmt_u16_masked(out, "icmp_code", c, d);
        let (e, f) = g128(layout::ND_TARGET);
        fmt_ipv6(out, "nd_target", e, f);
        let (e, f) = g(layout::ARP_SHA);
        fmt_eth(out, "nd_sll", e, f);
        let (e, f) = g(layout::ARP_THA);
        fmt_eth(out, "nd_tll", e, f);
    } else {
        fmt_u16_masked(out, "tp_src", a, b);
        fmt_u16_masked(out, "tp_dst", c, d);
    }
    let (fv, fm) = g(layout::TCP_FLAGS);
    if (dl_type == ethertype::IP || dl_type == ethertype::IPV6)
        && nw_proto == ipproto::TCP
        && fm != 0
    {
        out.push_str("tcp_flags=");
        format_flags_masked(out, &TCP_FLAG_NAMES, fv as u32, fm as u32 & 0xfff, 0xfff);
        out.push(',');
    }
    if out.len() > start && out.ends_with(',') {
        out.pop();
    }
}

/// Appends an action list as `ofpacts_format` (`drop` when empty).
pub fn format_actions(out: &mut String, actions: &[Action], names: &NameMap) {
    if actions.is_empty() {
        out.push_str("drop");
        return;
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        format_action(out, a, names);
    }
}

/// Appends one action.
pub fn format_action(out: &mut String, a: &Action, names: &NameMap) {
    match a {
        Action::Output { port, max_len } => {
            if port.0 < Port::MAX.0 {
                out.push_str("output:");
            }
            format_port(out, *port, names);
            if *port == Port::CONTROLLER {
                let _ = write!(out, ":{max_len}");
            }
        }
        Action::OutputReg { src, .. } => {
            out.push_str("output:");
            src.format(out);
        }
        Action::Controller(c) => {
            out.push_str("controller(");
            if c.reason != crate::action::PacketInReason::Action {
                let _ = write!(out, "reason={},", c.reason.name());
            }
            if c.max_len != u16::MAX {
                let _ = write!(out, "max_len={},", c.max_len);
            }
            if c.controller_id != 0 {
                let _ = write!(out, "id={},", c.controller_id);
            }
            if !c.userdata.is_empty() {
                out.push_str("userdata=");
                put_hex_bytes(out, &c.userdata);
                out.push(',');
            }
            if c.pause {
                out.push_str("pause,");
            }
            if let Some(m) = c.meter_id {
                let _ = write!(out, "meter_id={m},");
            }
            if out.ends_with(',') {
                out.pop();
            }
            out.push(')');
        }
        Action::Group(g) => {
            let _ = write!(out, "group:{g}");
        }
        Action::Meter(m) => {
            let _ = write!(out, "meter:{m}");
        }
        Action::Resubmit {
            in_port,
            table,
            with_ct_orig,
        } => {
            if *in_port != Port::IN_PORT && table.is_none() {
                out.push_str("resubmit:");
                format_port(out, *in_port, names);
            } else {
                out.push_str("resubmit(");
                if *in_port != Port::IN_PORT {
                    format_port(out, *in_port, names);
                }
                out.push(',');
                if let Some(t) = table {
                    format_table(out, *t, names);
                }
                if *with_ct_orig {
                    out.push_str(",ct");
                }
                out.push(')');
            }
        }
        Action::SetField { field, value, mask } => {
            out.push_str("set_field:");
            format_field_value(out, *field, *value, Some(*mask), names);
            out.push_str("->");
            out.push_str(field.name());
        }
        Action::Move { src, dst } => {
            out.push_str("move:");
            src.format(out);
            out.push_str("->");
            dst.format(out);
        }
        Action::DecTtl => out.push_str("dec_ttl"),
        Action::SetNwTtl(t) => {
            let _ = write!(out, "mod_nw_ttl:{t}");
        }
        Action::PushVlan(et) => {
            let _ = write!(out, "push_vlan:{et:#x}");
        }
        Action::PopVlan => out.push_str("pop_vlan"),
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            let _ = write!(out, "conjunction({id},{clause}/{n_clauses})");
        }
        Action::Learn(l) => format_learn(out, l, names),
        Action::Note(data) => {
            out.push_str("note:");
            put_hex_bytes(out, data);
        }
        Action::Ct(ct) => format_ct(out, ct, names),
        Action::CtClear => out.push_str("ct_clear"),
        Action::GotoTable(t) => {
            out.push_str("goto_table:");
            format_table(out, *t, names);
        }
    }
}

fn format_ct(out: &mut String, ct: &Ct, names: &NameMap) {
    out.push_str("ct(");
    if ct.commit {
        out.push_str("commit,");
    }
    if ct.force {
        out.push_str("force,");
    }
    if let Some(t) = ct.table {
        out.push_str("table=");
        format_table(out, t, names);
        out.push(',');
    }
    match ct.zone {
        CtZone::Field(sf) => {
            out.push_str("zone=");
            sf.format(out);
            out.push(',');
        }
        CtZone::Imm(0) => {}
        CtZone::Imm(z) => {
            let _ = write!(out, "zone={z},");
        }
    }
    if let Some(nat) = &ct.nat {
        format_nat(out, nat);
        out.push(',');
    }
    if !ct.exec.is_empty() {
        out.push_str("exec(");
        format_actions(out, &ct.exec, names);
        out.push_str("),");
    }
    match ct.alg {
        0 => {}
        21 => out.push_str("alg=ftp,"),
        69 => out.push_str("alg=tftp,"),
        p => {
            let _ = write!(out, "alg={p},");
        }
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push(')');
}

fn put_ipv6_bracket(out: &mut String, a: u128, bracket: bool) {
    if bracket {
        out.push('[');
    }
    put_ipv6(out, a);
    if bracket {
        out.push(']');
    }
}

pub(crate) fn format_nat(out: &mut String, nat: &Nat) {
    out.push_str("nat");
    let Some(kind) = nat.kind else {
        return;
    };
    out.push('(');
    out.push_str(match kind {
        NatKind::Src => "src",
        NatKind::Dst => "dst",
    });
    if let Some(addrs) = nat.addrs {
        out.push('=');
        match addrs {
            NatAddrs::V4 { min, max } => {
                put_ipv4(out, min);
                if max != 0 && max != min {
                    out.push('-');
                    put_ipv4(out, max);
                }
            }
            NatAddrs::V6 { min, max } => {
                let bracket = nat.ports.0 != 0;
                put_ipv6_bracket(out, min, bracket);
                if max != 0 && max != min {
                    out.push('-');
                    put_ipv6_bracket(out, max, bracket);
                }
            }
        }
        if nat.ports.0 != 0 {
            let _ = write!(out, ":{}", nat.ports.0);
            if nat.ports.1 != 0 && nat.ports.1 != nat.ports.0 {
                let _ = write!(out, "-{}", nat.ports.1);
            }
        }
        out.push(',');
        if nat.persistent {
            out.push_str("persistent,");
        }
        if nat.hash {
            out.push_str("hash,");
        }
        if nat.random {
            out.push_str("random,");
        }
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push(')');
}

fn format_learn(out: &mut String, l: &Learn, names: &NameMap) {
    out.push_str("learn(table=");
    format_table(out, l.table, names);
    if l.idle_timeout != 0 {
        let _ = write!(out, ",idle_timeout={}", l.idle_timeout);
    }
    if l.hard_timeout != 0 {
        let _ = write!(out, ",hard_timeout={}", l.hard_timeout);
    }
    if l.fin_idle_timeout != 0 {
        let _ = write!(out, ",fin_idle_timeout={}", l.fin_idle_timeout);
    }
    if l.fin_hard_timeout != 0 {
        let _ = write!(out, ",fin_hard_timeout={}", l.fin_hard_timeout);
    }
    if l.priority != DEFAULT_PRIORITY {
        let _ = write!(out, ",priority={}", l.priority);
    }
    if l.send_flow_rem {
        out.push_str(",send_flow_rem");
    }
    if l.delete_learned {
        out.push_str(",delete_learned");
    }
    if l.cookie != 0 {
        let _ = write!(out, ",cookie={:#x}", l.cookie);
    }
    if l.limit != 0 {
        let _ = write!(out, ",limit={}", l.limit);
    }
    if let Some(r) = l.result_dst {
        out.push_str(",result_dst=");
        r.format(out);
    }
    for spec in &l.specs {
        out.push(',');
        match spec {
            LearnSpec::MatchImm { dst, value } => {
                if dst.is_whole() {
                    let _ = write!(out, "{}=", dst.field.name());
                    format_field_value(out, dst.field, *value, None, names);
                } else {
                    dst.format(out);
                    out.push('=');
                    put_hex(out, *value, dst.n_bits.div_ceil(8) as u8);
                }
            }
            LearnSpec::MatchField { dst, src } => {
                dst.format(out);
                if src.field != dst.field || src.ofs != dst.ofs {
                    out.push('=');
                    src.format(out);
                }
            }
            LearnSpec::LoadImm { dst, value } => {
                out.push_str("load:");
                put_hex(out, *value, dst.n_bits.div_ceil(8) as u8);
                out.push_str("->");
                dst.format(out);
            }
            LearnSpec::LoadField { src, dst } => {
                out.push_str("load:");
                src.format(out);
                out.push_str("->");
                dst.format(out);
            }
            LearnSpec::Output { src } => {
                out.push_str("output:");
                src.format(out);
            }
        }
    }
    out.push(')');
}

/// `ofp_print_duration`.
fn put_duration(out: &mut String, sec: u32, nsec: u32) {
    let _ = write!(out, "{sec}");
    if nsec > 0 {
        let msec = nsec / 1_000_000;
        if msec * 1_000_000 == nsec {
            let _ = write!(out, ".{msec:03}");
        } else {
            let mut s = format!(".{nsec:09}");
            while s.ends_with('0') {
                s.pop();
            }
            out.push_str(&s);
        }
    }
    out.push('s');
}

/// Appends a flow as `ofputil_flow_stats_format` (one `dump-flows` entry without its leading
/// space). With `show_stats`, a flow without statistics prints zero counters and no ages.
pub fn format_flow(out: &mut String, f: &Flow, opts: &FormatOptions<'_>) {
    let names = opts.names;
    let stats = f.stats.unwrap_or(crate::flow::FlowStats {
        n_packets: Some(0),
        n_bytes: Some(0),
        ..Default::default()
    });
    if opts.show_stats || f.cookie != 0 {
        let _ = write!(out, "cookie=0x{:x}, ", f.cookie);
    }
    if opts.show_stats {
        out.push_str("duration=");
        put_duration(out, stats.duration_sec, stats.duration_nsec);
        out.push_str(", ");
    }
    if opts.show_stats || f.table != 0 || names.table_name(f.table).is_some() {
        out.push_str("table=");
        format_table(out, f.table, names);
        out.push_str(", ");
    }
    if opts.show_stats {
        for (label, v) in [("n_packets", stats.n_packets), ("n_bytes", stats.n_bytes)] {
            match v {
                Some(n) => {
                    let _ = write!(out, "{label}={n}, ");
                }
                None => {
                    let _ = write!(out, "{label}=?, ");
                }
            }
        }
    }
    if f.idle_timeout != 0 {
        let _ = write!(out, "idle_timeout={}, ", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        let _ = write!(out, "hard_timeout={}, ", f.hard_timeout);
    }
    for (bit, name) in FlowFlags::NAMES {
        if f.flags.0 & bit != 0 {
            out.push_str(name);
            out.push(' ');
        }
    }
    if f.importance != 0 {
        let _ = write!(out, "importance={}, ", f.importance);
    }
    if opts.show_stats {
        if let Some(a) = stats.idle_age {
            let _ = write!(out, "idle_age={a}, ");
        }
        if let Some(h) = stats.hard_age {
            if h != stats.duration_sec {
                let _ = write!(out, "hard_age={h}, ");
            }
        }
    }
    let len = out.len();
    format_match(out, &f.match_, f.priority, names);
    if out.len() != len {
        out.push(' ');
    }
    out.push_str("actions=");
    format_actions(out, &f.actions, names);
}

/// One line of `ovs-ofctl dump-flows` output (with its leading space, without the newline).
pub fn dump_flow_line(f: &Flow, opts: &FormatOptions<'_>) -> String {
    let mut s = String::from(" ");
    format_flow(&mut s, f, opts);
    s
}

/// The text of a flow without statistics (as `--no-stats` prints it, no leading space).
pub fn flow_to_string(f: &Flow, names: &NameMap) -> String {
    let mut s = String::new();
    format_flow(
        &mut s,
        f,
        &FormatOptions {
            names,
            show_stats: false,
        },
    );
    s
}

/// Field value printing for callers outside the crate (e.g. packet-in metadata).
pub fn field_value_to_string(field: FieldId, value: u128, names: &NameMap) -> String {
    let mut s = String::new();
    format_field_value(&mut s, field, value, None, names);
    s
}

/// `--no-stats --no-names` text of the flow (as [`flow_to_string`] with no names).
impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&flow_to_string(self, &NameMap::new()))
    }
}

/// The match as `match_format` prints it with the default priority (no `priority=`).
impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        format_match(&mut s, self, DEFAULT_PRIORITY, &NameMap::new());
        f.write_str(&s)
    }
}

/// The action as `ofpacts_format` prints it, without names.
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        format_action(&mut s, self, &NameMap::new());
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_flow;

    #[test]
    fn display() {
        let n = NameMap::new();
        let f = parse_flow(
            "table=3,priority=200,ip,nw_dst=10.0.0.0/8 actions=dec_ttl,goto_table:4",
            &n,
        )
        .expect("flow");
        assert_eq!(
            f.to_string(),
            "table=3, priority=200,ip,nw_dst=10.0.0.0/8 actions=dec_ttl,goto_table:4"
        );
        assert_eq!(f.match_.to_string(), "ip,nw_dst=10.0.0.0/8");
        assert_eq!(f.actions[1].to_string(), "goto_table:4");
        let stats = crate::flow::FlowStats {
            duration_sec: 5,
            duration_nsec: 120_000_000,
            n_packets: Some(7),
            n_bytes: Some(700),
            idle_age: Some(2),
            hard_age: Some(3),
        };
        let g = Flow {
            stats: Some(stats),
            ..f
        };
        assert_eq!(
            dump_flow_line(&g, &FormatOptions { names: &n, show_stats: true }),
            " cookie=0x0, duration=5.120s, table=3, n_packets=7, n_bytes=700, idle_age=2, hard_age=3, priority=200,ip,nw_dst=10.0.0.0/8 actions=dec_ttl,goto_table:4"
        );
    }
}
