//! Model → desired flows and groups (pure): Antrea's table layout, priorities, registers,
//! ct zones and cookies (see the reference `antrea-pipeline.md`), the NetworkPolicy metric
//! flows, named ports resolved through Pods' container ports, and which object each flow was
//! generated for (what queries show).

use crate::anp::flows::LoggedRule;
use crate::model::{Cidr, Model, NpRule, Peer, Pod, Proto};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Antrea's table names in declaration order for the default IPv4 Linux layout; the index is
/// the table id. NodePortMark (proxyAll) comes last instead of after PreRoutingClassifier, so
/// that turning proxyAll on renumbers no table: it is only ever reached by `resubmit`.
pub const TABLES: [&str; 30] = [
    "PipelineRootClassifier",
    "ARPSpoofGuard",
    "ARPResponder",
    "Classifier",
    "SpoofGuard",
    "UnSNAT",
    "ConntrackZone",
    "ConntrackState",
    "PreRoutingClassifier",
    "SessionAffinity",
    "ServiceLB",
    "EndpointDNAT",
    "AntreaPolicyEgressRule",
    "EgressRule",
    "EgressDefaultRule",
    "EgressMetric",
    "L3Forwarding",
    "EgressMark",
    "L3DecTTL",
    "SNATMark",
    "SNAT",
    "L2ForwardingCalc",
    "IngressSecurityClassifier",
    "AntreaPolicyIngressRule",
    "IngressRule",
    "IngressDefaultRule",
    "IngressMetric",
    "ConntrackCommit",
    "Output",
    "NodePortMark",
];

/// Table ids.
#[allow(missing_docs)]
pub mod t {
    pub const ROOT: u8 = 0;
    pub const ARP_SPOOF: u8 = 1;
    pub const ARP_RESP: u8 = 2;
    pub const CLASSIFIER: u8 = 3;
    pub const SPOOF: u8 = 4;
    pub const UNSNAT: u8 = 5;
    pub const CT_ZONE: u8 = 6;
    pub const CT_STATE: u8 = 7;
    pub const PRE_ROUTING: u8 = 8;
    pub const SESSION_AFF: u8 = 9;
    pub const SERVICE_LB: u8 = 10;
    pub const EP_DNAT: u8 = 11;
    pub const AP_EGRESS: u8 = 12;
    pub const EGRESS_RULE: u8 = 13;
    pub const EGRESS_DEFAULT: u8 = 14;
    pub const EGRESS_METRIC: u8 = 15;
    pub const L3_FWD: u8 = 16;
    pub const EGRESS_MARK: u8 = 17;
    pub const L3_DEC_TTL: u8 = 18;
    pub const SNAT_MARK: u8 = 19;
    pub const SNAT: u8 = 20;
    pub const L2_FWD: u8 = 21;
    pub const INGRESS_CLASS: u8 = 22;
    pub const AP_INGRESS: u8 = 23;
    pub const INGRESS_RULE: u8 = 24;
    pub const INGRESS_DEFAULT: u8 = 25;
    pub const INGRESS_METRIC: u8 = 26;
    pub const CT_COMMIT: u8 = 27;
    pub const OUTPUT: u8 = 28;
    pub const NODEPORT_MARK: u8 = 29;
}

/// Antrea's virtual NodePort DNAT IP: where the host sends NodePort traffic it DNATs into the
/// pipeline (marked like a Node address by NodePortMark).
pub const VIRTUAL_NODEPORT_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 252);
/// reg4 bit 19 (ToNodePortAddress): the destination is a Node address or the virtual NodePort IP.
pub const NODEPORT_REG_MARK: u32 = 0x8_0000;

/// Main conntrack zone.
pub const CT_ZONE: u16 = 65520;
/// SNAT conntrack zone.
pub const SNAT_CT_ZONE: u16 = 65521;
/// Antrea's global virtual MAC (tunnel destination MAC).
pub const GLOBAL_VMAC: &str = "aa:bb:cc:dd:ee:ff";

/// Cookie categories (bits 47..40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Category {
    /// Pipeline skeleton (miss flows).
    #[default]
    Default = 0,
    /// Pod connectivity.
    PodConnectivity = 1,
    /// NetworkPolicy.
    NetworkPolicy = 2,
    /// Service.
    Service = 3,
}

/// The cookie of a flow of `cat` installed in `round`.
pub fn cookie(round: u16, cat: Category) -> u64 {
    (u64::from(round) << 48) | ((cat as u64) << 40)
}

/// The mask selecting a round in a cookie.
pub const ROUND_MASK: u64 = 0xffff_0000_0000_0000;

/// A flow's identity: what OpenFlow's strict match keys on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    /// Table id.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Match, ovs-ofctl syntax (possibly empty).
    pub matches: String,
}

/// What a flow does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowBody {
    /// Category (cookie bits 47..40).
    pub category: Category,
    /// Actions, ovs-ofctl syntax (`drop` for none).
    pub actions: String,
}

/// The Kubernetes object a flow or group was generated for (what `xvs-agent get` shows).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// A Node (the local one: gateway and tunnel flows; a peer: its Pod CIDR route).
    Node(String),
    /// A local Pod (namespace, name).
    Pod(String, String),
    /// A Service (namespace, name).
    Service(String, String),
    /// A NetworkPolicy (namespace, name).
    Policy(String, String),
}

/// Direction of a NetworkPolicy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// `ingress` rules (IngressRule / IngressMetric, ct_label bits 0..31).
    Ingress,
    /// `egress` rules (EgressRule / EgressMetric, ct_label bits 32..63).
    Egress,
}

impl Direction {
    /// `Ingress` / `Egress`, as Kubernetes spells the policy type.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
    /// The metric table of the direction.
    pub fn metric_table(self) -> u8 {
        match self {
            Direction::Ingress => t::INGRESS_METRIC,
            Direction::Egress => t::EGRESS_METRIC,
        }
    }
    /// The `ct_label` value/mask carrying rule id `id` in this direction.
    pub fn ct_label(self, id: u32) -> String {
        match self {
            Direction::Ingress => format!("{id:#x}/0xffffffff"),
            Direction::Egress => format!("{:#x}/0xffffffff00000000", u64::from(id) << 32),
        }
    }
}

/// The metric flows counting allow rule `id` (new connections' first packets, then the
/// rest of the connection), in this order.
pub fn allow_metric_keys(dir: Direction, id: u32) -> [FlowKey; 2] {
    let label = dir.ct_label(id);
    [
        FlowKey {
            table: dir.metric_table(),
            priority: 200,
            matches: format!("ct_state=+new,ct_label={label},ip"),
        },
        FlowKey {
            table: dir.metric_table(),
            priority: 200,
            matches: format!("ct_state=-new,ct_label={label},ip"),
        },
    ]
}

/// The metric flow counting (and dropping) what deny id `id` denied.
pub fn deny_metric_key(dir: Direction, id: u32) -> FlowKey {
    FlowKey {
        table: dir.metric_table(),
        priority: 200,
        matches: format!("reg0=0x400/0x400,reg3={id:#x}"),
    }
}

/// How one NetworkPolicy rule was realized: the conjunctions it became (several when named
/// ports resolve to different numbers on different Pods), in the order of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealizedRule {
    /// Ingress or egress.
    pub direction: Direction,
    /// Index of the rule in its direction's list.
    pub index: usize,
    /// Conjunction ids (also the ct_label rule ids); empty when the rule selects nothing.
    pub conj_ids: Vec<u32>,
}

/// How one NetworkPolicy was realized on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RealizedPolicy {
    /// The local Pods it applies to (namespace, name).
    pub applied_to: Vec<(String, String)>,
    /// Its rules, ingress first, each direction in policy order.
    pub rules: Vec<RealizedRule>,
    /// Isolation drops it causes: (direction, deny id, Pod); an isolated Pod's drop is shared
    /// by every policy isolating it.
    pub isolation: Vec<(Direction, u32, (String, String))>,
}

/// A conjunction clause flow being accumulated: its actions kept sorted (so that the result
/// does not depend on order) and its owners in arrival order, deduplicated at the end.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct SharedFlow {
    category: Category,
    actions: BTreeSet<String>,
    owners: Vec<Owner>,
}

/// Desired flows and groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// Flows by identity.
    pub flows: BTreeMap<FlowKey, FlowBody>,
    /// Groups by id: the `ovs-ofctl add-group` text (without `group_id`).
    pub groups: BTreeMap<u32, String>,
    /// The objects each flow was generated for (a shared flow has several).
    pub owners: BTreeMap<FlowKey, BTreeSet<Owner>>,
    /// The Service each group belongs to.
    pub group_owners: BTreeMap<u32, Owner>,
    /// The policies that apply to a local Pod, and how.
    pub policies: BTreeMap<(String, String), RealizedPolicy>,
    shared: BTreeMap<FlowKey, SharedFlow>,
    current: Option<Owner>,
}

impl Desired {
    /// The flows and groups generated next belong to `owner` (`None`: the pipeline itself).
    fn owned_by(&mut self, owner: Option<Owner>) {
        self.current = owner;
    }
    fn claim(&mut self, key: &FlowKey, owner: Owner) {
        match self.owners.get_mut(key) {
            Some(set) => {
                set.insert(owner);
            }
            None => {
                self.owners.insert(key.clone(), BTreeSet::from([owner]));
            }
        }
    }
    pub(crate) fn add(
        &mut self,
        table: u8,
        priority: u16,
        matches: impl Into<String>,
        cat: Category,
        actions: impl Into<String>,
    ) {
        let key = FlowKey {
            table,
            priority,
            matches: matches.into(),
        };
        if let Some(o) = self.current.clone() {
            self.claim(&key, o);
        }
        self.flows.insert(
            key,
            FlowBody {
                category: cat,
                actions: actions.into(),
            },
        );
    }
    /// The flows generated for `owner`, in key order.
    pub fn flows_of<'a>(
        &'a self,
        owner: &'a Owner,
    ) -> impl Iterator<Item = (&'a FlowKey, &'a FlowBody)> {
        self.flows
            .iter()
            .filter(move |(k, _)| self.owners.get(*k).is_some_and(|o| o.contains(owner)))
    }
    /// Appends `action` to a shared (conjunction clause) flow, creating it if needed; the
    /// actions of a shared flow are kept sorted so that the result does not depend on order.
    pub(crate) fn add_shared(
        &mut self,
        table: u8,
        priority: u16,
        matches: String,
        cat: Category,
        action: String,
    ) {
        let key = FlowKey {
            table,
            priority,
            matches,
        };
        let entry = self.shared.entry(key).or_default();
        entry.category = cat;
        entry.actions.insert(action);
        // Consecutive clauses mostly come from the same owner: compare before cloning.
        if let Some(o) = &self.current {
            if entry.owners.last() != Some(o) {
                entry.owners.push(o.clone());
            }
        }
    }
    fn finish(mut self) -> Desired {
        for (k, sf) in std::mem::take(&mut self.shared) {
            let actions = sf.actions.into_iter().collect::<Vec<_>>().join(",");
            if !sf.owners.is_empty() {
                self.owners.entry(k.clone()).or_default().extend(sf.owners);
            }
            self.flows.insert(
                k,
                FlowBody {
                    category: sf.category,
                    actions,
                },
            );
        }
        self
    }
    /// The flow as an `ovs-ofctl add-flow` line with the cookie of `round`.
    pub fn flow_line(key: &FlowKey, body: &FlowBody, round: u16) -> String {
        let m = if key.matches.is_empty() {
            String::new()
        } else {
            format!(",{}", key.matches)
        };
        format!(
            "cookie={:#x},table={},priority={}{} actions={}",
            cookie(round, body.category),
            key.table,
            key.priority,
            m,
            body.actions
        )
    }
}

/// Stable small ids for named objects (conjunction ids, group ids), kept across recomputations
/// so that an unrelated change does not renumber everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdAllocator {
    ids: BTreeMap<String, u32>,
    next: u32,
}

impl IdAllocator {
    /// An allocator starting at `first`.
    pub fn starting_at(first: u32) -> Self {
        IdAllocator {
            ids: BTreeMap::new(),
            next: first,
        }
    }
    /// The id of `name`, allocating one if new.
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(i) = self.ids.get(name) {
            return *i;
        }
        let i = self.next.max(1);
        self.next = i.saturating_add(1);
        self.ids.insert(name.to_string(), i);
        i
    }
    /// Forgets names not in `live`.
    pub fn retain(&mut self, live: &BTreeSet<String>) {
        self.ids.retain(|k, _| live.contains(k));
    }
    /// The ids of the names starting with `prefix`.
    pub fn ids_with_prefix(&self, prefix: &str) -> Vec<u32> {
        self.ids
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// Ids allocated by [`desired`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Service port → group id.
    pub groups: IdAllocator,
    /// Policy rule → conjunction id.
    pub conj: IdAllocator,
    /// Antrea-native policies: conjunction ids and priority assigners.
    pub anp: crate::anp::flows::AnpState,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            groups: IdAllocator::starting_at(1),
            conj: IdAllocator::starting_at(1),
            anp: Default::default(),
        }
    }
}

fn goto(t: u8) -> String {
    format!("goto_table:{t}")
}

/// Computes the desired flows and groups for `model` (nothing without an agent config).
pub fn desired(model: &Model, ids: &mut Ids) -> Desired {
    desired_parts(model, ids, true)
}

/// [`desired`] without the Antrea-native flows, which
/// [`AnpCache`](crate::anp::incr::AnpCache) keeps up to date incrementally.
pub fn desired_without_anp(model: &Model, ids: &mut Ids) -> Desired {
    desired_parts(model, ids, false)
}

fn desired_parts(model: &Model, ids: &mut Ids, with_anp: bool) -> Desired {
    use Category::*;
    let mut d = Desired::default();
    let Some(cfg) = &model.config else {
        return d;
    };
    let local_node = model.nodes.get(&cfg.node_name);
    let local_pods: Vec<&Pod> = model
        .pods
        .values()
        .filter(|p| p.node == cfg.node_name)
        .collect();

    // Skeleton: miss flows.
    for (i, _) in TABLES.iter().enumerate() {
        let i = i as u8;
        let miss = match i {
            // NodePortMark is a resubmit target: its miss ends only that resubmit.
            t::ROOT
            | t::ARP_SPOOF
            | t::ARP_RESP
            | t::CLASSIFIER
            | t::SPOOF
            | t::OUTPUT
            | t::NODEPORT_MARK => "drop".to_string(),
            t::SESSION_AFF => "set_field:0x10000/0x70000->reg4".to_string(),
            t::L3_FWD => format!("set_field:0x20/0xf0->reg0,{}", goto(t::L2_FWD)),
            _ => goto(i + 1),
        };
        d.add(i, 0, "", Default, miss);
    }
    d.add(t::ROOT, 200, "arp", Default, goto(t::ARP_SPOOF));
    d.add(t::ROOT, 200, "ip", Default, goto(t::CLASSIFIER));
    d.add(t::ARP_RESP, 190, "arp", Default, "NORMAL");
    let zone = CT_ZONE;
    d.add(
        t::CT_ZONE,
        200,
        "ip",
        Default,
        format!("ct(table={},zone={zone},nat)", t::CT_STATE),
    );
    d.add(t::CT_STATE, 200, "ct_state=+inv+trk,ip", Default, "drop");
    d.add(
        t::CT_STATE,
        190,
        "ct_state=-new+trk,ct_mark=0/0x10,ip",
        Default,
        goto(t::AP_EGRESS),
    );
    d.add(
        t::CT_STATE,
        190,
        "ct_state=-new+trk,ct_mark=0x10/0x10,ip",
        Default,
        format!("set_field:0x200/0x200->reg0,{}", goto(t::AP_EGRESS)),
    );
    let node_port_mark = if cfg.proxy_all {
        format!("resubmit(,{}),", t::NODEPORT_MARK)
    } else {
        String::new()
    };
    d.add(
        t::PRE_ROUTING,
        200,
        "ip",
        Default,
        format!(
            "{node_port_mark}resubmit(,{}),resubmit(,{})",
            t::SESSION_AFF,
            t::SERVICE_LB
        ),
    );
    for (tab, next) in [
        (t::AP_EGRESS, t::EGRESS_METRIC),
        (t::AP_INGRESS, t::INGRESS_METRIC),
    ] {
        d.add(tab, 64990, "ct_state=-new+est,ip", Default, goto(next));
        d.add(tab, 64990, "ct_state=-new+rel,ip", Default, goto(next));
    }
    d.add(
        t::L3_DEC_TTL,
        210,
        "ip,reg0=0x2/0xf",
        Default,
        goto(t::SNAT_MARK),
    );
    d.add(
        t::L3_DEC_TTL,
        200,
        "ip",
        Default,
        format!("dec_ttl,{}", goto(t::SNAT_MARK)),
    );
    if cfg.proxy_all {
        // NodePort connections meet the Antrea-native rules applied to their Service even
        // when the Endpoint is not a local Pod (the to-gateway/tunnel bypasses below).
        d.add(
            t::INGRESS_CLASS,
            201,
            format!("reg4={NODEPORT_REG_MARK:#x}/{NODEPORT_REG_MARK:#x}"),
            Default,
            goto(t::AP_INGRESS),
        );
    }
    d.add(
        t::INGRESS_CLASS,
        200,
        "reg0=0x20/0xf0",
        Default,
        goto(t::INGRESS_METRIC),
    );
    d.add(
        t::INGRESS_CLASS,
        200,
        "reg0=0x10/0xf0",
        Default,
        goto(t::INGRESS_METRIC),
    );
    d.add(
        t::CT_COMMIT,
        200,
        "ct_state=+new+trk,ct_mark=0/0x20,ip",
        Default,
        format!(
            "ct(commit,table={},zone={zone},exec(move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))",
            t::OUTPUT
        ),
    );
    d.add(
        t::OUTPUT,
        200,
        "reg0=0x200000/0x600000",
        Default,
        "output:NXM_NX_REG1[]",
    );

    // Gateway.
    d.owned_by(Some(Owner::Node(cfg.node_name.clone())));
    let gw_ip = cfg.gateway_ip;
    let gw_mac = cfg.gateway_mac;
    match cfg.gateway_ofport {
        Some(gp) => {
            d.add(
                t::ARP_SPOOF,
                200,
                format!("arp,in_port={gp},arp_spa={gw_ip},arp_sha={gw_mac}"),
                PodConnectivity,
                goto(t::ARP_RESP),
            );
            d.add(
                t::CLASSIFIER,
                210,
                format!("ip,in_port={gp},nw_src={gw_ip}"),
                PodConnectivity,
                format!(
                    "set_field:0x2/0xf->reg0,set_field:0x10000000/0x10000000->reg4,{}",
                    goto(t::SPOOF)
                ),
            );
            d.add(
                t::CLASSIFIER,
                200,
                format!("in_port={gp}"),
                PodConnectivity,
                format!(
                    "set_field:0x2/0xf->reg0,set_field:0x8000000/0x8000000->reg4,{}",
                    goto(t::SPOOF)
                ),
            );
            d.add(
                t::SPOOF,
                200,
                format!("ip,in_port={gp}"),
                PodConnectivity,
                goto(t::UNSNAT),
            );
            d.add(
                t::L2_FWD,
                200,
                format!("dl_dst={gw_mac}"),
                PodConnectivity,
                format!(
                    "set_field:{gp:#x}->reg1,set_field:0x200000/0x600000->reg0,{}",
                    goto(t::INGRESS_CLASS)
                ),
            );
        }
        None => {
            // Virtual gateway: the ARP responder answers for it.
            d.add(
                t::ARP_RESP,
                200,
                format!("arp,arp_tpa={gw_ip},arp_op=1"),
                PodConnectivity,
                arp_reply(&gw_mac.to_string(), gw_ip),
            );
        }
    }
    d.add(
        t::UNSNAT,
        200,
        format!("ip,nw_dst={gw_ip}"),
        PodConnectivity,
        format!("ct(table={},zone={},nat)", t::CT_ZONE, SNAT_CT_ZONE),
    );
    d.add(
        t::L3_FWD,
        210,
        format!("ip,nw_dst={gw_ip}"),
        PodConnectivity,
        format!(
            "set_field:{gw_mac}->eth_dst,set_field:0x20/0xf0->reg0,{}",
            goto(t::L3_DEC_TTL)
        ),
    );

    // Tunnel and peers.
    if let Some(tp) = cfg.tunnel_ofport {
        d.add(
            t::CLASSIFIER,
            200,
            format!("in_port={tp}"),
            PodConnectivity,
            format!(
                "set_field:0x1/0xf->reg0,set_field:0x200/0x200->reg0,{}",
                goto(t::UNSNAT)
            ),
        );
        d.add(
            t::L2_FWD,
            200,
            format!("dl_dst={GLOBAL_VMAC}"),
            PodConnectivity,
            format!(
                "set_field:{tp:#x}->reg1,set_field:0x200000/0x600000->reg0,{}",
                goto(t::INGRESS_CLASS)
            ),
        );
    }
    for peer in model.nodes.values().filter(|n| n.name != cfg.node_name) {
        d.owned_by(Some(Owner::Node(peer.name.clone())));
        let peer_gw = Ipv4Addr::from(u32::from(peer.pod_cidr.addr).wrapping_add(1));
        d.add(
            t::ARP_RESP,
            200,
            format!("arp,arp_tpa={peer_gw},arp_op=1"),
            PodConnectivity,
            arp_reply(GLOBAL_VMAC, peer_gw),
        );
        let acts = if cfg.tunnel_ofport.is_some() {
            format!(
                "set_field:{gw_mac}->eth_src,set_field:{GLOBAL_VMAC}->eth_dst,set_field:{}->tun_dst,set_field:0x10/0xf0->reg0,{}",
                peer.ip,
                goto(t::L3_DEC_TTL)
            )
        } else {
            format!(
                "set_field:{gw_mac}->eth_dst,set_field:0x20/0xf0->reg0,{}",
                goto(t::L3_DEC_TTL)
            )
        };
        d.add(
            t::L3_FWD,
            200,
            format!("ip,nw_dst={}", peer.pod_cidr.to_ofctl()),
            PodConnectivity,
            acts,
        );
    }
    if let Some(n) = local_node {
        d.owned_by(Some(Owner::Node(n.name.clone())));
        // Kubelet probes: the Node's own connections to its Pods bypass ingress rules.
        // Antrea matches a pkt_mark host iptables sets, which a userspace switch never sees;
        // xvs matches what enters from the gateway with the Node's own source addresses (as
        // Antrea does on Windows with the gateway IP).
        for a in [&gw_ip].into_iter().chain(&n.addresses) {
            d.add(
                t::INGRESS_CLASS,
                210,
                format!("ct_state=-rpl+trk,ip,reg0=0x2/0xf,nw_src={a}"),
                PodConnectivity,
                goto(t::CT_COMMIT),
            );
        }
        if cfg.proxy_all {
            for a in n.addresses.iter().chain([&VIRTUAL_NODEPORT_IP]) {
                d.add(
                    t::NODEPORT_MARK,
                    200,
                    format!("ip,nw_dst={a}"),
                    Service,
                    format!("set_field:{NODEPORT_REG_MARK:#x}/{NODEPORT_REG_MARK:#x}->reg4"),
                );
            }
        }
        d.add(
            t::L3_FWD,
            200,
            format!("ip,reg0=0/0x200,nw_dst={}", n.pod_cidr.to_ofctl()),
            PodConnectivity,
            goto(t::L2_FWD),
        );
    }

    // Local pods.
    for p in &local_pods {
        d.owned_by(Some(Owner::Pod(p.namespace.clone(), p.name.clone())));
        let (port, ip, mac) = (p.ofport, p.ip, p.mac);
        d.add(
            t::ARP_SPOOF,
            200,
            format!("arp,in_port={port},arp_spa={ip},arp_sha={mac}"),
            PodConnectivity,
            goto(t::ARP_RESP),
        );
        d.add(
            t::CLASSIFIER,
            190,
            format!("in_port={port}"),
            PodConnectivity,
            format!(
                "set_field:0x3/0xf->reg0,set_field:0x10000000/0x10000000->reg4,{}",
                goto(t::SPOOF)
            ),
        );
        d.add(
            t::SPOOF,
            200,
            format!("ip,in_port={port},dl_src={mac},nw_src={ip}"),
            PodConnectivity,
            goto(t::UNSNAT),
        );
        d.add(
            t::L3_FWD,
            200,
            format!("ip,reg0=0x200/0x200,nw_dst={ip}"),
            PodConnectivity,
            format!(
                "set_field:{gw_mac}->eth_src,set_field:{mac}->eth_dst,set_field:0x30/0xf0->reg0,{}",
                goto(t::L3_DEC_TTL)
            ),
        );
        d.add(
            t::L2_FWD,
            200,
            format!("dl_dst={mac}"),
            PodConnectivity,
            format!(
                "set_field:{port:#x}->reg1,set_field:0x200000/0x600000->reg0,{}",
                goto(t::INGRESS_CLASS)
            ),
        );
    }

    d.owned_by(None);
    services(model, cfg.proxy_all, ids, &mut d);
    d.owned_by(None);
    let k8s_logged = policies(model, &local_pods, ids, &mut d);
    d.owned_by(None);
    // DNS interception for FQDN rules: a function of every policy and the local Pods, so
    // both recomputation paths rebuild it with the base.
    if model.anp.policies.values().any(|p| {
        p.rules(crate::anp::types::Direction::Egress)
            .iter()
            .any(|r| r.peers.iter().any(|peer| peer.fqdn.is_some()))
    }) {
        let rules = crate::anp::resolve::internal_rules(model);
        let local = crate::anp::flows::local_ports(&local_pods);
        crate::anp::fqdn::append_interception(model, &rules, &local, &mut d);
    }
    if with_anp {
        crate::anp::flows::append(model, &local_pods, ids, &mut d);
    }
    ids.anp.k8s_logged = k8s_logged;
    if with_anp {
        let k8s = ids.anp.k8s_logged.clone();
        ids.anp.logged.extend(k8s);
    }
    d.finish()
}

fn arp_reply(mac: &str, ip: Ipv4Addr) -> String {
    format!(
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:{mac}->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:{ip}->arp_spa,IN_PORT"
    )
}

/// ClusterIP Services, and with `proxy_all` the node ports of NodePort / LoadBalancer ones: one
/// select group per Service port (shared by its ClusterIP and node port flows, so `reg7`
/// names the Service port either way).
fn services(model: &Model, proxy_all: bool, ids: &mut Ids, d: &mut Desired) {
    let mut live = BTreeSet::new();
    let mut dnat: BTreeMap<(Proto, Ipv4Addr, u16), BTreeSet<Owner>> = BTreeMap::new();
    for ((ns, name), svc) in &model.services {
        let owner = Owner::Service(ns.clone(), name.clone());
        d.owned_by(Some(owner.clone()));
        for sp in &svc.ports {
            let key = format!("{ns}/{name}:{}/{}", sp.proto.ofctl(), sp.port);
            // Endpoints: every slice of the Service with a port of the same name and protocol.
            let mut eps: BTreeSet<(Ipv4Addr, u16)> = BTreeSet::new();
            for sl in model
                .slices
                .values()
                .filter(|s| &s.namespace == ns && &s.service == name)
            {
                for (pn, pp, port) in &sl.ports {
                    if pn == &sp.name && *pp == sp.proto {
                        eps.extend(sl.addresses.iter().map(|a| (*a, *port)));
                    }
                }
            }
            live.insert(key.clone());
            let gid = ids.groups.id(&key);
            let buckets: Vec<String> = if eps.is_empty() {
                vec![format!(
                    "bucket=bucket_id:0,weight:100,actions=set_field:0x4000/0x4000->reg0,resubmit(,{})",
                    t::EP_DNAT
                )]
            } else {
                eps.iter()
                    .enumerate()
                    .map(|(i, (a, p))| {
                        format!(
                            "bucket=bucket_id:{i},weight:100,actions=set_field:{:#x}->reg3,set_field:{:#x}/0xffff->reg4,resubmit(,{})",
                            u32::from(*a),
                            p,
                            t::EP_DNAT
                        )
                    })
                    .collect()
            };
            d.groups
                .insert(gid, format!("type=select,{}", buckets.join(",")));
            d.group_owners.insert(gid, owner.clone());
            d.add(
                t::SERVICE_LB,
                200,
                format!(
                    "{},reg4=0x10000/0x70000,nw_dst={},tp_dst={}",
                    sp.proto.ofctl(),
                    svc.cluster_ip,
                    sp.port
                ),
                Category::Service,
                format!(
                    "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:{gid:#x}->reg7,group:{gid}"
                ),
            );
            if let (true, Some(np)) = (proxy_all, sp.node_port) {
                // Any destination NodePortMark marked (a Node address or the virtual
                // NodePort IP); ToExternalAddress as Antrea sets it for node ports.
                d.add(
                    t::SERVICE_LB,
                    200,
                    format!(
                        "{},reg4={:#x}/0xf0000,tp_dst={np}",
                        sp.proto.ofctl(),
                        0x10000 | NODEPORT_REG_MARK
                    ),
                    Category::Service,
                    format!(
                        "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x200000/0x200000->reg4,set_field:{gid:#x}->reg7,group:{gid}"
                    ),
                );
            }
            for (a, p) in eps {
                dnat.entry((sp.proto, a, p))
                    .or_default()
                    .insert(owner.clone());
            }
        }
    }
    d.owned_by(None);
    for ((proto, a, p), owners) in dnat {
        let key = FlowKey {
            table: t::EP_DNAT,
            priority: 200,
            matches: format!(
                "{},reg3={:#x},reg4={:#x}/0x7ffff",
                proto.ofctl(),
                u32::from(a),
                0x20000 | u32::from(p)
            ),
        };
        for o in owners {
            d.claim(&key, o);
        }
        d.add(
            t::EP_DNAT,
            200,
            format!(
                "{},reg3={:#x},reg4={:#x}/0x7ffff",
                proto.ofctl(),
                u32::from(a),
                0x20000 | u32::from(p)
            ),
            Category::Service,
            format!(
                "ct(commit,table={},zone={CT_ZONE},nat(dst={a}:{p}),exec(set_field:0x10/0x10->ct_mark))",
                t::AP_EGRESS
            ),
        );
    }
    d.add(
        t::EP_DNAT,
        200,
        "reg0=0x4000/0x4000",
        Category::Service,
        "drop",
    );
    ids.groups.retain(&live);
}

/// A rule's peers: ipBlock prefixes (excepts removed) and the selected Pods.
struct Peers<'m> {
    blocks: BTreeSet<Cidr>,
    pods: Vec<&'m Pod>,
}

/// The peers of `rule` of a policy in `ns` (`None` = any address).
fn rule_peers<'m>(model: &'m Model, ns: &str, rule: &NpRule) -> Option<Peers<'m>> {
    if rule.peers.is_empty() {
        return None;
    }
    let mut out = Peers {
        blocks: BTreeSet::new(),
        pods: Vec::new(),
    };
    let no_labels = BTreeMap::new();
    for p in &rule.peers {
        match p {
            Peer::IpBlock { cidr, except } => out.blocks.extend(cidr.minus(except)),
            Peer::Pods { pod, ns: nsel } => {
                for q in model.peer_pods() {
                    let ns_ok = match nsel {
                        None => q.namespace == ns,
                        Some(sel) => sel.matches(
                            model
                                .namespaces
                                .get(&q.namespace)
                                .map(|n| &n.labels)
                                .unwrap_or(&no_labels),
                        ),
                    };
                    let pod_ok = pod.as_ref().is_none_or(|s| s.matches(&q.labels));
                    if ns_ok && pod_ok && !out.pods.iter().any(|x| std::ptr::eq(*x, q)) {
                        out.pods.push(q);
                    }
                }
            }
        }
    }
    Some(out)
}

fn host(ip: Ipv4Addr) -> Cidr {
    Cidr { addr: ip, len: 32 }
}

/// A port clause value: protocol and an inclusive port range (`None` = every port).
type PortRange = (Proto, Option<(u16, u16)>);

/// One conjunction a rule becomes.
struct Conj<'m> {
    /// Its name in the id allocator.
    key: String,
    applied: Vec<&'m Pod>,
    /// `None` = any address.
    peers: Option<BTreeSet<Cidr>>,
    /// Empty = any port (no port clause).
    ports: Vec<PortRange>,
}

fn describe_ports(ports: &BTreeSet<PortRange>) -> String {
    ports
        .iter()
        .map(|(proto, r)| match r {
            None => proto.ofctl().to_string(),
            Some((lo, hi)) if lo == hi => format!("{}/{lo}", proto.ofctl()),
            Some((lo, hi)) => format!("{}/{lo}-{hi}", proto.ofctl()),
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// Splits a rule into conjunctions. Without named ports: one. With named ports: one for its
/// numeric ports (if any), plus one per distinct set of numbers the names resolve to, through
/// the applied-to Pods' container ports (ingress) or the peer Pods' (egress; every Pod when
/// the rule has no peers). A name no Pod defines resolves to nothing and matches nothing.
/// A group is named by its port set, so a Pod joining or leaving it keeps the group's id.
fn rule_conjs<'m>(
    model: &'m Model,
    ns: &str,
    applied: &[&'m Pod],
    rule: &NpRule,
    dir: Direction,
    base: &str,
) -> Vec<Conj<'m>> {
    let peers = rule_peers(model, ns, rule);
    let all_peers: Option<BTreeSet<Cidr>> = peers.as_ref().map(|p| {
        let mut set = p.blocks.clone();
        set.extend(p.pods.iter().map(|q| host(q.ip)));
        set
    });
    let numeric: Vec<PortRange> = rule
        .ports
        .iter()
        .filter(|p| p.name.is_none())
        .map(|p| (p.proto, p.port.map(|lo| (lo, p.end_port.unwrap_or(lo)))))
        .collect();
    let named: Vec<(&str, Proto)> = rule
        .ports
        .iter()
        .filter_map(|p| p.name.as_deref().map(|n| (n, p.proto)))
        .collect();
    if named.is_empty() {
        return vec![Conj {
            key: base.to_string(),
            applied: applied.to_vec(),
            peers: all_peers,
            ports: numeric,
        }];
    }
    let mut out = Vec::new();
    if !numeric.is_empty() {
        out.push(Conj {
            key: format!("{base}/ports"),
            applied: applied.to_vec(),
            peers: all_peers.clone(),
            ports: numeric,
        });
    }
    let resolve = |p: &Pod| -> BTreeSet<PortRange> {
        named
            .iter()
            .filter_map(|(n, proto)| p.named_port(n, *proto).map(|x| (*proto, Some((x, x)))))
            .collect()
    };
    match dir {
        Direction::Ingress => {
            let mut groups: BTreeMap<BTreeSet<PortRange>, Vec<&'m Pod>> = BTreeMap::new();
            for p in applied {
                let r = resolve(p);
                if !r.is_empty() {
                    groups.entry(r).or_default().push(p);
                }
            }
            for (ports, pods) in groups {
                out.push(Conj {
                    key: format!("{base}/named:{}", describe_ports(&ports)),
                    applied: pods,
                    peers: all_peers.clone(),
                    ports: ports.into_iter().collect(),
                });
            }
        }
        Direction::Egress => {
            let candidates: Vec<&'m Pod> = match &peers {
                Some(p) => p.pods.clone(),
                None => model.peer_pods().collect(),
            };
            let mut groups: BTreeMap<BTreeSet<PortRange>, BTreeSet<Cidr>> = BTreeMap::new();
            for q in candidates {
                let r = resolve(q);
                if !r.is_empty() {
                    groups.entry(r).or_default().insert(host(q.ip));
                }
            }
            for (ports, cidrs) in groups {
                out.push(Conj {
                    key: format!("{base}/named:{}", describe_ports(&ports)),
                    applied: applied.to_vec(),
                    peers: Some(cidrs),
                    ports: ports.into_iter().collect(),
                });
            }
        }
    }
    out
}

/// `[lo, hi]` as (value, mask) bit ranges.
pub fn port_masks(lo: u16, hi: u16) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    while lo <= hi {
        let mut size = 1u32;
        while lo % (size * 2) == 0 && lo + size * 2 - 1 <= hi && size < 0x10000 {
            size *= 2;
        }
        out.push((lo as u16, (0x10000 - size) as u16));
        lo += size;
    }
    out
}

/// The np.log direction of a K8s NetworkPolicy direction.
fn logged_direction(dir: Direction) -> crate::anp::types::Direction {
    match dir {
        Direction::Ingress => crate::anp::types::Direction::Ingress,
        Direction::Egress => crate::anp::types::Direction::Egress,
    }
}

/// The OpenFlow priority of a K8s NetworkPolicy rule's action flow (Antrea's, as np.log shows).
const K8S_ACTION_PRIORITY: u16 = 190;

/// Installs conjunction `id`: clause flows (applied-to, peers, ports) at p200, the action flow
/// at p190 committing the rule id into ct_label, and the rule's two metric flows. With `log`
/// (the namespace's logging annotation) the action flow also sends the packet to the agent,
/// as an Antrea-native Allow rule with logging does: `ct(table=)` forks, the committed copy
/// goes on, this one goes to Output marked for the controller.
fn install_conj(d: &mut Desired, dir: Direction, id: u32, c: &Conj<'_>, log: bool) {
    let cat = Category::NetworkPolicy;
    let (table, next_of_metric) = match dir {
        Direction::Ingress => (t::INGRESS_RULE, t::CT_COMMIT),
        Direction::Egress => (t::EGRESS_RULE, t::L3_FWD),
    };
    let n = if c.ports.is_empty() { 2 } else { 3 };
    // Clause 1: applied-to.
    for p in &c.applied {
        let m = match dir {
            Direction::Ingress => format!("ip,reg1={:#x}", p.ofport),
            Direction::Egress => format!("ip,nw_src={}", p.ip),
        };
        d.add_shared(table, 200, m, cat, format!("conjunction({id},1/{n})"));
    }
    // Clause 2: peers.
    let field = match dir {
        Direction::Ingress => "nw_src",
        Direction::Egress => "nw_dst",
    };
    let any = [Cidr {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    }];
    let peers: Vec<&Cidr> = match &c.peers {
        None => any.iter().collect(),
        Some(set) => set.iter().collect(),
    };
    for cidr in peers {
        let v = if cidr.len == 0 {
            "0.0.0.0/0".to_string()
        } else {
            cidr.to_ofctl()
        };
        d.add_shared(
            table,
            200,
            format!("ip,{field}={v}"),
            cat,
            format!("conjunction({id},2/{n})"),
        );
    }
    // Clause 3: ports.
    for (proto, range) in &c.ports {
        let proto = proto.ofctl();
        let ms: Vec<String> = match *range {
            None => vec![proto.to_string()],
            Some((lo, hi)) if lo == hi => vec![format!("{proto},tp_dst={lo}")],
            Some((lo, hi)) => port_masks(lo, hi)
                .into_iter()
                .map(|(v, m)| {
                    if m == 0xffff {
                        format!("{proto},tp_dst={v}")
                    } else {
                        format!("{proto},tp_dst={v:#x}/{m:#x}")
                    }
                })
                .collect(),
        };
        for m in ms {
            d.add_shared(table, 200, m, cat, format!("conjunction({id},3/3)"));
        }
    }
    let reg = match dir {
        Direction::Ingress => "reg6",
        Direction::Egress => "reg5",
    };
    let mut actions = format!(
        "set_field:{id:#x}->{reg},ct(commit,table={},zone={CT_ZONE},exec(set_field:{}->ct_label))",
        dir.metric_table(),
        dir.ct_label(id)
    );
    if log {
        use crate::anp::flows::{packet_in_marks, OP_LOG};
        actions.push_str(&format!(
            ",{},set_field:0x400000/0x600000->reg0,{}",
            packet_in_marks(table, 0, OP_LOG),
            goto(t::OUTPUT)
        ));
    }
    d.add(
        table,
        K8S_ACTION_PRIORITY,
        format!("conj_id={id},ip"),
        cat,
        actions,
    );
    for k in allow_metric_keys(dir, id) {
        d.add(k.table, k.priority, k.matches, cat, goto(next_of_metric));
    }
}

/// Realises the K8s NetworkPolicies for the local Pods; returns the logged rules (namespaces
/// with the logging annotation) by conjunction id, for np.log.
fn policies(
    model: &Model,
    local: &[&Pod],
    ids: &mut Ids,
    d: &mut Desired,
) -> BTreeMap<u32, LoggedRule> {
    let logging = |ns: &str| model.namespaces.get(ns).is_some_and(|n| n.enable_logging);
    let mut logged = BTreeMap::new();
    let mut live = BTreeSet::new();
    // An isolated Pod (direction, namespace, name) and the policies isolating it.
    type Isolated<'m> =
        BTreeMap<(Direction, String, String), (&'m Pod, BTreeSet<(String, String)>)>;
    let mut isolated: Isolated<'_> = BTreeMap::new();
    for ((ns, name), np) in &model.policies {
        let applied: Vec<&Pod> = local
            .iter()
            .copied()
            .filter(|p| &p.namespace == ns && np.pod_selector.matches(&p.labels))
            .collect();
        if applied.is_empty() {
            continue;
        }
        d.owned_by(Some(Owner::Policy(ns.clone(), name.clone())));
        let mut realized = RealizedPolicy {
            applied_to: applied
                .iter()
                .map(|p| (p.namespace.clone(), p.name.clone()))
                .collect(),
            ..RealizedPolicy::default()
        };
        let dirs: [(Direction, &[NpRule], bool, &str); 2] = [
            (Direction::Ingress, &np.ingress, np.ingress_isolation, "in"),
            (Direction::Egress, &np.egress, np.egress_isolation, "out"),
        ];
        for (dir, rules, isolates, tag) in dirs {
            if !isolates {
                continue;
            }
            for p in &applied {
                isolated
                    .entry((dir, p.namespace.clone(), p.name.clone()))
                    .or_insert((p, BTreeSet::new()))
                    .1
                    .insert((ns.clone(), name.clone()));
            }
            for (ri, rule) in rules.iter().enumerate() {
                let base = format!("{ns}/{name}/{tag}/{ri}");
                let mut conj_ids = Vec::new();
                for c in rule_conjs(model, ns, &applied, rule, dir, &base) {
                    if c.peers.as_ref().is_some_and(|p| p.is_empty()) || c.applied.is_empty() {
                        continue; // selects nothing: allows nothing
                    }
                    live.insert(c.key.clone());
                    let id = ids.conj.id(&c.key);
                    conj_ids.push(id);
                    let log = logging(ns);
                    install_conj(d, dir, id, &c, log);
                    if log {
                        logged.insert(
                            id,
                            LoggedRule {
                                policy_ref: format!("K8sNetworkPolicy:{ns}/{name}"),
                                rule_name: String::new(),
                                log_label: String::new(),
                                table: match dir {
                                    Direction::Ingress => t::INGRESS_RULE,
                                    Direction::Egress => t::EGRESS_RULE,
                                },
                                priority: Some(K8S_ACTION_PRIORITY),
                                direction: logged_direction(dir),
                                action: crate::anp::types::Action::Allow,
                            },
                        );
                    }
                }
                realized.rules.push(RealizedRule {
                    direction: dir,
                    index: ri,
                    conj_ids,
                });
            }
        }
        d.policies.insert((ns.clone(), name.clone()), realized);
    }
    // Isolation: what no rule allowed is dropped in the Default tables, through the metric
    // table with a deny id (reg3 + APDenyRegMark, as Antrea's deny rules), so that denied
    // packets are counted per isolated Pod and direction.
    d.owned_by(None);
    let cat = Category::NetworkPolicy;
    for ((dir, pns, pname), (pod, by)) in isolated {
        let tag = match dir {
            Direction::Ingress => "in",
            Direction::Egress => "out",
        };
        let deny_key = format!("isolate/{tag}/{pns}/{pname}");
        live.insert(deny_key.clone());
        let id = ids.conj.id(&deny_key);
        let key = match dir {
            Direction::Ingress => FlowKey {
                table: t::INGRESS_DEFAULT,
                priority: 200,
                matches: format!("ip,reg1={:#x}", pod.ofport),
            },
            Direction::Egress => FlowKey {
                table: t::EGRESS_DEFAULT,
                priority: 200,
                matches: format!("ip,nw_src={}", pod.ip),
            },
        };
        let metric = deny_metric_key(dir, id);
        for (ns, name) in &by {
            d.claim(&key, Owner::Policy(ns.clone(), name.clone()));
            d.claim(&metric, Owner::Policy(ns.clone(), name.clone()));
            if let Some(r) = d.policies.get_mut(&(ns.clone(), name.clone())) {
                r.isolation.push((dir, id, (pns.clone(), pname.clone())));
            }
        }
        // Logged (the Pod's namespace has the annotation): the fork group sends a copy to
        // the agent, logged as the bare `K8sNetworkPolicy` default drop.
        let deny = if logging(&pns) {
            logged.insert(
                id,
                LoggedRule {
                    policy_ref: "K8sNetworkPolicy".into(),
                    rule_name: String::new(),
                    log_label: String::new(),
                    table: key.table,
                    priority: None,
                    direction: logged_direction(dir),
                    action: crate::anp::types::Action::Drop,
                },
            );
            format!(
                "{},group:{}",
                crate::anp::flows::packet_in_marks(key.table, 1, crate::anp::flows::OP_LOG),
                crate::anp::flows::PACKET_IN_GROUP_BASE + u32::from(dir.metric_table())
            )
        } else {
            goto(dir.metric_table())
        };
        d.add(
            key.table,
            key.priority,
            key.matches,
            cat,
            format!("set_field:{id:#x}->reg3,set_field:0x400/0x400->reg0,{deny}"),
        );
        d.add(metric.table, metric.priority, metric.matches, cat, "drop");
    }
    ids.conj.retain(&live);
    if !logged.is_empty() {
        let (groups, flows) = crate::anp::flows::packet_in_path();
        d.groups.extend(groups);
        for (k, a) in flows {
            d.add(k.table, k.priority, k.matches, Category::NetworkPolicy, a);
        }
    }
    logged
}
