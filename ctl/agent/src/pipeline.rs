//! Model → desired flows and groups (pure): Antrea's table layout, priorities, registers,
//! ct zones and cookies (see the reference `antrea-pipeline.md`).

use crate::model::{Cidr, Model, NpRule, Peer, Pod, Proto};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Antrea's table names in declaration order for the default IPv4 Linux layout; the index is
/// the table id.
pub const TABLES: [&str; 29] = [
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
}

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

/// Desired flows and groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// Flows by identity.
    pub flows: BTreeMap<FlowKey, FlowBody>,
    /// Groups by id: the `ovs-ofctl add-group` text (without `group_id`).
    pub groups: BTreeMap<u32, String>,
    shared: BTreeMap<FlowKey, (Category, BTreeSet<String>)>,
}

impl Desired {
    pub(crate) fn add(
        &mut self,
        table: u8,
        priority: u16,
        matches: impl Into<String>,
        cat: Category,
        actions: impl Into<String>,
    ) {
        self.flows.insert(
            FlowKey {
                table,
                priority,
                matches: matches.into(),
            },
            FlowBody {
                category: cat,
                actions: actions.into(),
            },
        );
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
        let set = self.shared.entry(key).or_default();
        set.0 = cat;
        set.1.insert(action);
    }
    fn finish(mut self) -> Desired {
        for (k, (cat, acts)) in std::mem::take(&mut self.shared) {
            let actions = acts.into_iter().collect::<Vec<_>>().join(",");
            self.flows.insert(
                k,
                FlowBody {
                    category: cat,
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
            t::ROOT | t::ARP_SPOOF | t::ARP_RESP | t::CLASSIFIER | t::SPOOF | t::OUTPUT => {
                "drop".to_string()
            }
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
    d.add(
        t::PRE_ROUTING,
        200,
        "ip",
        Default,
        format!("resubmit(,{}),resubmit(,{})", t::SESSION_AFF, t::SERVICE_LB),
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
        d.add(
            t::L3_FWD,
            190,
            format!("ip,reg0=0/0x200,nw_dst={}", n.pod_cidr.to_ofctl()),
            PodConnectivity,
            goto(t::L2_FWD),
        );
    }

    // Local pods.
    for p in &local_pods {
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

    services(model, ids, &mut d);
    policies(model, &local_pods, ids, &mut d);
    crate::anp::flows::append(model, &local_pods, ids, &mut d);
    d.finish()
}

fn arp_reply(mac: &str, ip: Ipv4Addr) -> String {
    format!(
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:{mac}->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:{ip}->arp_spa,IN_PORT"
    )
}

fn services(model: &Model, ids: &mut Ids, d: &mut Desired) {
    let mut live = BTreeSet::new();
    let mut dnat: BTreeSet<(Proto, Ipv4Addr, u16)> = BTreeSet::new();
    for ((ns, name), svc) in &model.services {
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
            for (a, p) in eps {
                dnat.insert((sp.proto, a, p));
            }
        }
    }
    for (proto, a, p) in dnat {
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

/// The address sets of a rule's peers (`None` = any address).
fn peer_cidrs(model: &Model, ns: &str, rule: &NpRule) -> Option<BTreeSet<Cidr>> {
    if rule.peers.is_empty() {
        return None;
    }
    let mut out = BTreeSet::new();
    for p in &rule.peers {
        match p {
            Peer::IpBlock { cidr, except } => out.extend(cidr.minus(except)),
            Peer::Pods { pod, ns: nsel } => {
                for q in model.pods.values() {
                    let ns_ok = match nsel {
                        None => q.namespace == ns,
                        Some(sel) => {
                            let empty = BTreeMap::new();
                            let labels = model
                                .namespaces
                                .get(&q.namespace)
                                .map(|n| &n.labels)
                                .unwrap_or(&empty);
                            sel.matches(labels)
                        }
                    };
                    let pod_ok = pod.as_ref().is_none_or(|s| s.matches(&q.labels));
                    if ns_ok && pod_ok {
                        out.insert(Cidr {
                            addr: q.ip,
                            len: 32,
                        });
                    }
                }
            }
        }
    }
    Some(out)
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

fn policies(model: &Model, local: &[&Pod], ids: &mut Ids, d: &mut Desired) {
    let mut live = BTreeSet::new();
    let mut ingress_isolated = BTreeSet::new();
    let mut egress_isolated = BTreeSet::new();
    for ((ns, name), np) in &model.policies {
        let applied: Vec<&&Pod> = local
            .iter()
            .filter(|p| &p.namespace == ns && np.pod_selector.matches(&p.labels))
            .collect();
        if applied.is_empty() {
            continue;
        }
        if np.ingress_isolation {
            ingress_isolated.extend(applied.iter().map(|p| p.ofport));
        }
        if np.egress_isolation {
            egress_isolated.extend(applied.iter().map(|p| p.ip));
        }
        let dirs: [(bool, &[NpRule], &str); 2] =
            [(true, &np.ingress, "in"), (false, &np.egress, "out")];
        for (ingress, rules, tag) in dirs {
            if (ingress && !np.ingress_isolation) || (!ingress && !np.egress_isolation) {
                continue;
            }
            let table = if ingress {
                t::INGRESS_RULE
            } else {
                t::EGRESS_RULE
            };
            for (ri, rule) in rules.iter().enumerate() {
                let key = format!("{ns}/{name}/{tag}/{ri}");
                live.insert(key.clone());
                let id = ids.conj.id(&key);
                let peers = peer_cidrs(model, ns, rule);
                if peers.as_ref().is_some_and(|p| p.is_empty()) {
                    continue; // selects nothing: the rule allows nothing
                }
                let n = if rule.ports.is_empty() { 2 } else { 3 };
                let cat = Category::NetworkPolicy;
                // Clause 1: applied-to.
                for p in &applied {
                    let m = if ingress {
                        format!("ip,reg1={:#x}", p.ofport)
                    } else {
                        format!("ip,nw_src={}", p.ip)
                    };
                    d.add_shared(table, 200, m, cat, format!("conjunction({id},1/{n})"));
                }
                // Clause 2: peers.
                let field = if ingress { "nw_src" } else { "nw_dst" };
                match &peers {
                    None => d.add_shared(
                        table,
                        200,
                        format!("ip,{field}=0.0.0.0/0"),
                        cat,
                        format!("conjunction({id},2/{n})"),
                    ),
                    Some(set) => {
                        for c in set {
                            d.add_shared(
                                table,
                                200,
                                format!("ip,{field}={}", c.to_ofctl()),
                                cat,
                                format!("conjunction({id},2/{n})"),
                            );
                        }
                    }
                }
                // Clause 3: ports.
                for port in &rule.ports {
                    let proto = port.proto.ofctl();
                    let ms: Vec<String> = match (port.port, port.end_port) {
                        (None, _) => vec![proto.to_string()],
                        (Some(p), None) => vec![format!("{proto},tp_dst={p}")],
                        (Some(lo), Some(hi)) => port_masks(lo, hi)
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
                let (reg, metric, lab) = if ingress {
                    ("reg6", t::INGRESS_METRIC, format!("{id:#x}/0xffffffff"))
                } else {
                    (
                        "reg5",
                        t::EGRESS_METRIC,
                        format!("{:#x}/0xffffffff00000000", u64::from(id) << 32),
                    )
                };
                d.add(
                    table,
                    190,
                    format!("conj_id={id},ip"),
                    cat,
                    format!(
                        "set_field:{id:#x}->{reg},ct(commit,table={metric},zone={CT_ZONE},exec(set_field:{lab}->ct_label))"
                    ),
                );
            }
        }
    }
    for port in ingress_isolated {
        d.add(
            t::INGRESS_DEFAULT,
            200,
            format!("ip,reg1={port:#x}"),
            Category::NetworkPolicy,
            "drop",
        );
    }
    for ip in egress_isolated {
        d.add(
            t::EGRESS_DEFAULT,
            200,
            format!("ip,nw_src={ip}"),
            Category::NetworkPolicy,
            "drop",
        );
    }
    ids.conj.retain(&live);
}
