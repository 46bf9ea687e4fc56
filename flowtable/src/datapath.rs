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
}
