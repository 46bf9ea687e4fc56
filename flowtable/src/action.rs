//! Actions and instructions, in the form Open vSwitch holds them after an OpenFlow 1.5 round
//! trip. Forms that OpenFlow 1.5 cannot carry are normalised when parsed, exactly as a switch
//! would hand them back: `load:` becomes a (masked) [`Action::SetField`], `mod_vlan_vid:` becomes
//! `push_vlan` + `set_field:..->vlan_vid`, `mod_dl_src:` etc. become `set_field`, `controller`
//! without options becomes `output:CONTROLLER`, `note:` is zero-padded to its wire length.

use crate::field::{FieldId, Subfield};
use crate::names::Port;

/// One action or instruction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:P`, `IN_PORT`, `NORMAL`, `LOCAL`, `CONTROLLER:max_len`, ...
    Output {
        /// Port.
        port: Port,
        /// Bytes to send to the controller (meaningful for `CONTROLLER`; 65535 = whole packet).
        max_len: u16,
    },
    /// `output:NXM_NX_REG1[]`: output to the port held in a subfield.
    OutputReg {
        /// Where the port number is read from.
        src: Subfield,
        /// Bytes to send if the port is the controller.
        max_len: u16,
    },
    /// `controller(...)` with options (NXAST_CONTROLLER2).
    Controller(Controller),
    /// `group:N`.
    Group(u32),
    /// `meter:N`.
    Meter(u32),
    /// `resubmit(port,table[,ct])`, `resubmit:port`.
    Resubmit {
        /// In-port to pretend; [`Port::IN_PORT`] keeps the packet's own.
        in_port: Port,
        /// Table to search; `None` (255) means the current table.
        table: Option<u8>,
        /// Use the conntrack original-direction tuple (`,ct`).
        with_ct_orig: bool,
    },
    /// `set_field:value[/mask]->field` (also what `load:` and `mod_*` become).
    SetField {
        /// Destination field.
        field: FieldId,
        /// Value, limited to the mask.
        value: u128,
        /// Mask of bits written; the field's exact mask for an unmasked set.
        mask: u128,
    },
    /// `move:src->dst`.
    Move {
        /// Source bits.
        src: Subfield,
        /// Destination bits (same width).
        dst: Subfield,
    },
    /// `dec_ttl`.
    DecTtl,
    /// `mod_nw_ttl:N` (OpenFlow 1.1+ `OFPAT_SET_NW_TTL`; a switch keeps this form).
    SetNwTtl(u8),
    /// `push_vlan:ethertype`.
    PushVlan(u16),
    /// `pop_vlan`.
    PopVlan,
    /// `conjunction(id,k/n)`; `clause` is 1-based as written.
    Conjunction {
        /// Conjunction id.
        id: u32,
        /// Clause number k, 1..=n.
        clause: u8,
        /// Number of clauses n, 2..=64.
        n_clauses: u8,
    },
    /// `learn(...)`.
    Learn(Box<Learn>),
    /// `note:hex`.
    Note(Vec<u8>),
    /// `ct(...)`.
    Ct(Box<Ct>),
    /// `ct_clear`.
    CtClear,
    /// `goto_table:T` (instruction; only last).
    GotoTable(u8),
}

/// Packet-in reasons for `controller(reason=...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketInReason {
    /// `no_match` (0).
    NoMatch,
    /// `action` (1), the default.
    Action,
    /// `invalid_ttl` (2).
    InvalidTtl,
    /// `action_set` (3).
    ActionSet,
    /// `group` (4).
    Group,
    /// `packet_out` (5).
    PacketOut,
}

impl PacketInReason {
    /// Text name.
    pub fn name(self) -> &'static str {
        match self {
            PacketInReason::NoMatch => "no_match",
            PacketInReason::Action => "action",
            PacketInReason::InvalidTtl => "invalid_ttl",
            PacketInReason::ActionSet => "action_set",
            PacketInReason::Group => "group",
            PacketInReason::PacketOut => "packet_out",
        }
    }

    /// Parses a reason name.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            PacketInReason::NoMatch,
            PacketInReason::Action,
            PacketInReason::InvalidTtl,
            PacketInReason::ActionSet,
            PacketInReason::Group,
            PacketInReason::PacketOut,
        ]
        .into_iter()
        .find(|r| r.name() == s)
    }
}

/// `controller(reason=..,max_len=..,id=..,userdata=..,pause,meter_id=..)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Controller {
    /// Packet-in reason.
    pub reason: PacketInReason,
    /// Bytes of packet to send (65535 = all).
    pub max_len: u16,
    /// Controller connection id (0 = all).
    pub controller_id: u16,
    /// Opaque bytes echoed in the packet-in.
    pub userdata: Vec<u8>,
    /// Pause the pipeline (continuation).
    pub pause: bool,
    /// Meter for packet-ins; `None` = the switch default.
    pub meter_id: Option<u32>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            reason: PacketInReason::Action,
            max_len: u16::MAX,
            controller_id: 0,
            userdata: Vec::new(),
            pause: false,
            meter_id: None,
        }
    }
}

/// Where `ct` takes the zone from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtZone {
    /// An immediate zone (0 = default zone).
    Imm(u16),
    /// A 16-bit subfield, e.g. `NXM_NX_REG8[0..15]`.
    Field(Subfield),
}

/// `ct(commit,force,table=T,zone=Z,nat(...),exec(...),alg=A)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ct {
    /// `commit`.
    pub commit: bool,
    /// `force`.
    pub force: bool,
    /// Recirculation table; `None` = no recirculation.
    pub table: Option<u8>,
    /// Zone.
    pub zone: CtZone,
    /// `nat` / `nat(...)`.
    pub nat: Option<Nat>,
    /// Actions inside `exec(...)` (set_field/move/load of ct_mark and ct_label).
    pub exec: Vec<Action>,
    /// ALG port (21 = ftp, 69 = tftp), 0 = none.
    pub alg: u16,
}

impl Default for Ct {
    fn default() -> Self {
        Ct {
            commit: false,
            force: false,
            table: None,
            zone: CtZone::Imm(0),
            nat: None,
            exec: Vec::new(),
            alg: 0,
        }
    }
}

/// NAT direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Source NAT.
    Src,
    /// Destination NAT.
    Dst,
}

/// An address range for NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatAddrs {
    /// IPv4 `min[-max]`.
    V4 {
        /// First address.
        min: u32,
        /// Last address; 0 or equal to `min` for a single address.
        max: u32,
    },
    /// IPv6 `min[-max]`.
    V6 {
        /// First address.
        min: u128,
        /// Last address; 0 or equal to `min` for a single address.
        max: u128,
    },
}

/// `nat` (apply the existing translation) or `nat(src|dst[=range][,persistent][,hash][,random])`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Nat {
    /// `src` or `dst`; `None` for bare `nat`.
    pub kind: Option<NatKind>,
    /// Address range, if given.
    pub addrs: Option<NatAddrs>,
    /// Port range `min[-max]`; `(0, 0)` when absent.
    pub ports: (u16, u16),
    /// `persistent`.
    pub persistent: bool,
    /// `hash`.
    pub hash: bool,
    /// `random`.
    pub random: bool,
}

/// One specification of a `learn` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LearnSpec {
    /// Match `dst` in the learned flow against the value of `src` in the current packet
    /// (`NXM_OF_IP_DST[]`, `NXM_OF_IP_SRC[]=NXM_OF_IP_DST[]`).
    MatchField {
        /// Field matched by the learned flow.
        dst: Subfield,
        /// Field of the current packet supplying the value.
        src: Subfield,
    },
    /// Match `dst` against an immediate value (`eth_type=0x800`, `NXM_NX_REG0[0..3]=5`).
    MatchImm {
        /// Field matched by the learned flow.
        dst: Subfield,
        /// The value (of `dst.n_bits` bits).
        value: u128,
    },
    /// `load:src->dst`: the learned flow loads the current packet's `src` into `dst`.
    LoadField {
        /// Source in the current packet.
        src: Subfield,
        /// Destination written by the learned flow.
        dst: Subfield,
    },
    /// `load:value->dst`.
    LoadImm {
        /// Destination written by the learned flow.
        dst: Subfield,
        /// The value (of `dst.n_bits` bits).
        value: u128,
    },
    /// `output:src`: the learned flow outputs to the port held in the current packet's `src`.
    Output {
        /// Source of the port number.
        src: Subfield,
    },
}

/// `learn(...)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Learn {
    /// Table of the learned flow (default 1).
    pub table: u8,
    /// Idle timeout of the learned flow, 0 = none.
    pub idle_timeout: u16,
    /// Hard timeout of the learned flow, 0 = none.
    pub hard_timeout: u16,
    /// `fin_idle_timeout`.
    pub fin_idle_timeout: u16,
    /// `fin_hard_timeout`.
    pub fin_hard_timeout: u16,
    /// Priority of the learned flow (default 32768).
    pub priority: u16,
    /// Cookie of the learned flow.
    pub cookie: u64,
    /// `send_flow_rem`.
    pub send_flow_rem: bool,
    /// `delete_learned`: learned flows go away with the learning flow.
    pub delete_learned: bool,
    /// `limit=N`, 0 = none.
    pub limit: u32,
    /// `result_dst=`: one bit that receives whether learning succeeded.
    pub result_dst: Option<Subfield>,
    /// The specifications, in order.
    pub specs: Vec<LearnSpec>,
}

impl Default for Learn {
    fn default() -> Self {
        Learn {
            table: 1,
            idle_timeout: 0,
            hard_timeout: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            priority: crate::flow::DEFAULT_PRIORITY,
            cookie: 0,
            send_flow_rem: false,
            delete_learned: false,
            limit: 0,
            result_dst: None,
            specs: Vec::new(),
        }
    }
}
