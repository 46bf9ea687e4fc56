//! Datapath actions: what translation of a packet through the OpenFlow tables produces, and what
//! the engine executes on every packet that hits the resulting megaflow.
//!
//! Translation tracks the packet's key as the OpenFlow actions change it and, before each
//! output, emits the `Set*` actions that bring the packet's header fields to that key (as OVS's
//! `commit_odp_actions`); metadata (registers, marks) never reaches the packet. Actions are
//! executed in order on the frame bytes, with checksums updated incrementally.

use std::net::IpAddr;

/// One datapath action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DpAction {
    /// Transmit a copy of the packet, as it is now, on this OpenFlow port.
    Output(u32),
    /// Ethernet source address.
    SetEthSrc([u8; 6]),
    /// Ethernet destination address.
    SetEthDst([u8; 6]),
    /// IPv4 source address (IP and L4 checksums updated).
    SetIpv4Src(u32),
    /// IPv4 destination address (IP and L4 checksums updated).
    SetIpv4Dst(u32),
    /// IPv6 source address (L4 checksum updated).
    SetIpv6Src(u128),
    /// IPv6 destination address (L4 checksum updated).
    SetIpv6Dst(u128),
    /// The bits of `mask` in the IPv4 TOS / IPv6 traffic-class byte.
    SetTos {
        /// New bits.
        value: u8,
        /// Bits to change (0xfc: DSCP).
        mask: u8,
    },
    /// IPv4 TTL / IPv6 hop limit (also what `dec_ttl` becomes, the TTL being known).
    SetTtl(u8),
    /// TCP/UDP/SCTP source port.
    SetTpSrc(u16),
    /// TCP/UDP/SCTP destination port.
    SetTpDst(u16),
    /// ARP opcode.
    SetArpOp(u16),
    /// ARP sender hardware address.
    SetArpSha([u8; 6]),
    /// ARP target hardware address.
    SetArpTha([u8; 6]),
    /// ARP sender protocol address.
    SetArpSpa(u32),
    /// ARP target protocol address.
    SetArpTpa(u32),
    /// Push an 802.1Q tag with this TPID and TCI.
    PushVlan {
        /// Tag protocol identifier (0x8100 or 0x88a8).
        tpid: u16,
        /// TCI; the CFI/present bit (0x1000) is cleared on the wire.
        tci: u16,
    },
    /// Remove the outer 802.1Q tag.
    PopVlan,
    /// Rewrite the outer tag's TCI.
    SetVlanTci(u16),
    /// Run the packet through meter N's rate limiter (`PipelineSnapshot::meter_state`): a
    /// packet over a drop band is dropped here; the actions before it have been done.
    Meter(u32),
    // --- connection tracking and recirculation (kept together) ---
    /// Run the packet through the connection tracker (NAT rewrites the packet; the packet's
    /// `ct_*` metadata is updated for a later recirculation).
    Ct(DpCt),
    /// `ct_clear`: forget the packet's connection-tracking metadata.
    CtClear,
    /// Look the packet up again with this `recirc_id` (the frozen translation state it
    /// resumes from) and its current `ct_*` metadata. When other actions follow, a copy
    /// recirculates and the packet itself continues with them (the `ct(table=T)` fork).
    Recirc(u32),
    // ---- Tunnels (Geneve/VXLAN) ----
    /// Encapsulate the packet with the tunnel metadata below and transmit it through tunnel
    /// port `port` (what OVS writes as `tnl_push(...),output(uplink)`). The engine resolves the
    /// outer addressing (route, neighbour) once per megaflow and builds the outer header then.
    TunnelPush(TunnelPush),
}

/// The tunnel metadata an output to a tunnel port carries: the flow's `tun_*` fields at the
/// moment of the output. What the port's own options (`remote_ip`, `key`, `local_ip`, ...)
/// make of them is the engine's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelPush {
    /// The tunnel's OpenFlow port.
    pub port: u32,
    /// `tun_id` (the VNI when the port has `key=flow`).
    pub tun_id: u64,
    /// `tun_dst` / `tun_ipv6_dst`, `None` when unset (zero).
    pub dst: Option<IpAddr>,
    /// `tun_src` / `tun_ipv6_src`, `None` when unset (zero).
    pub src: Option<IpAddr>,
    /// `tun_flags` (OVS bits: 1 OAM, 2 DF, 4 CSUM, 8 KEY).
    pub flags: u16,
    /// Geneve options from the present, mapped `tun_metadata<n>` fields (empty for none).
    pub options: crate::tlv::GeneveOptions,
}

/// The arguments of a datapath `ct` action: what the engine hands the connection tracker.
/// Registers and `exec(...)` moves were resolved by translation into immediates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DpCt {
    /// Conntrack zone.
    pub zone: u16,
    /// `commit`: create the connection if it does not exist.
    pub commit: bool,
    /// `force`: a committed reply-direction packet ends the old connection and starts anew.
    pub force: bool,
    /// `nat` (bare: apply the existing translation) or `nat(src|dst=...)`.
    pub nat: Option<crate::action::Nat>,
    /// `ct_mark` bits to set on commit: (value, mask).
    pub mark: Option<(u32, u32)>,
    /// `ct_label` bits to set on commit: (value, mask).
    pub label: Option<(u128, u128)>,
}

/// Formats `actions` in the syntax of OVS's `Datapath actions:` line (`ovs-appctl
/// ofproto/trace`, `dpctl/dump-flows`), e.g.
/// `ct(commit,zone=65520,nat(dst=10.96.0.10:80)),recirc(0x1)`; `drop` when empty.
pub fn format_dp_actions(actions: &[DpAction]) -> String {
    use std::fmt::Write as _;
    if actions.is_empty() {
        return "drop".to_string();
    }
    let mac = |m: [u8; 6]| {
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    };
    let v4 = |a: u32| std::net::Ipv4Addr::from(a).to_string();
    let v6 = |a: u128| std::net::Ipv6Addr::from(a).to_string();
    let mut out = String::new();
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = match *a {
            DpAction::Output(p) => write!(out, "{p}"),
            DpAction::SetEthSrc(m) => write!(out, "set(eth(src={}))", mac(m)),
            DpAction::SetEthDst(m) => write!(out, "set(eth(dst={}))", mac(m)),
            DpAction::SetIpv4Src(x) => write!(out, "set(ipv4(src={}))", v4(x)),
            DpAction::SetIpv4Dst(x) => write!(out, "set(ipv4(dst={}))", v4(x)),
            DpAction::SetIpv6Src(x) => write!(out, "set(ipv6(src={}))", v6(x)),
            DpAction::SetIpv6Dst(x) => write!(out, "set(ipv6(dst={}))", v6(x)),
            DpAction::SetTos { value, mask } => write!(out, "set(ip(tos={value:#x}/{mask:#x}))"),
            DpAction::SetTtl(t) => write!(out, "set(ip(ttl={t}))"),
            DpAction::SetTpSrc(p) => write!(out, "set(l4(src={p}))"),
            DpAction::SetTpDst(p) => write!(out, "set(l4(dst={p}))"),
            DpAction::SetArpOp(op) => write!(out, "set(arp(op={op}))"),
            DpAction::SetArpSha(m) => write!(out, "set(arp(sha={}))", mac(m)),
            DpAction::SetArpTha(m) => write!(out, "set(arp(tha={}))", mac(m)),
            DpAction::SetArpSpa(x) => write!(out, "set(arp(sip={}))", v4(x)),
            DpAction::SetArpTpa(x) => write!(out, "set(arp(tip={}))", v4(x)),
            DpAction::PushVlan { tpid, tci } => {
                write!(
                    out,
                    "push_vlan(tpid={tpid:#x},vid={},pcp={})",
                    tci & 0xfff,
                    tci >> 13
                )
            }
            DpAction::PopVlan => write!(out, "pop_vlan"),
            DpAction::SetVlanTci(tci) => {
                write!(out, "set(vlan(vid={},pcp={}))", tci & 0xfff, tci >> 13)
            }
            DpAction::Ct(ref ct) => {
                format_ct(&mut out, ct);
                Ok(())
            }
            DpAction::CtClear => write!(out, "ct_clear"),
            DpAction::Recirc(id) => write!(out, "recirc({id:#x})"),
            DpAction::Meter(id) => write!(out, "meter({id})"),
            DpAction::TunnelPush(ref t) => {
                let _ = write!(out, "tnl_push(tnl_port({}),tun_id={:#x}", t.port, t.tun_id);
                if let Some(src) = t.src {
                    let _ = write!(out, ",src={src}");
                }
                if let Some(dst) = t.dst {
                    let _ = write!(out, ",dst={dst}");
                }
                let _ = write!(out, ",flags={:#x}", t.flags);
                if !t.options.is_empty() {
                    out.push_str(",geneve(");
                    for (i, b) in t.options.as_bytes().iter().enumerate() {
                        if i > 0 && i % 4 == 0 {
                            out.push(' ');
                        }
                        let _ = write!(out, "{b:02x}");
                    }
                    out.push(')');
                }
                write!(out, ")")
            }
        };
    }
    out
}

/// OVS's order: commit/force_commit, zone, mark, label, nat.
fn format_ct(out: &mut String, ct: &DpCt) {
    use std::fmt::Write as _;
    let mut parts: Vec<String> = Vec::new();
    if ct.commit {
        parts.push(if ct.force { "force_commit" } else { "commit" }.to_string());
    }
    if ct.zone != 0 {
        parts.push(format!("zone={}", ct.zone));
    }
    if let Some((v, m)) = ct.mark {
        parts.push(format!("mark={v:#x}/{m:#x}"));
    }
    if let Some((v, m)) = ct.label {
        parts.push(format!("label={v:#x}/{m:#x}"));
    }
    if let Some(nat) = &ct.nat {
        let mut s = String::new();
        crate::print::format_nat(&mut s, nat);
        parts.push(s);
    }
    // OVS prints a ct() without arguments as plain `ct`.
    if parts.is_empty() {
        out.push_str("ct");
    } else {
        let _ = write!(out, "ct({})", parts.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cached action lists copy `DpAction`s; the inline Geneve options of `TunnelPush` must not
    /// make it larger than the `ct` arguments already do (ARCHITECTURE: 128 bytes).
    #[test]
    fn tunnel_options_do_not_grow_the_action() {
        assert!(std::mem::size_of::<TunnelPush>() <= 128);
        assert!(std::mem::size_of::<DpAction>() <= 128);
    }
}
