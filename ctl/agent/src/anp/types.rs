//! The Antrea-native policy objects (`crd.antrea.io/v1beta1`): Tier, ClusterNetworkPolicy,
//! NetworkPolicy, ClusterGroup and Group, as parsed and mutated (before resolution).

use crate::model::{Proto, Selector};

/// A policy priority (`spec.priority`, a float); compared by value, equal by bits so that the
/// model stays `Eq`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyPriority(pub f64);

impl PartialEq for PolicyPriority {
    fn eq(&self, o: &Self) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}
impl Eq for PolicyPriority {}

/// A Tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// metadata.name.
    pub name: String,
    /// spec.priority (0..=255).
    pub priority: i32,
    /// spec.description.
    pub description: String,
    /// The manifest file it came from (empty for the static tiers).
    pub file: String,
}

/// The static tiers Antrea creates at start: (name, priority).
pub const STATIC_TIERS: [(&str, i32); 6] = [
    ("emergency", 50),
    ("securityops", 100),
    ("networkops", 150),
    ("platform", 200),
    ("application", 250),
    ("baseline", 253),
];

/// The default tier of a policy without one.
pub const DEFAULT_TIER: &str = "application";
/// The baseline tier (evaluated after K8s NetworkPolicies).
pub const BASELINE_TIER: &str = "baseline";
/// Baseline tier priority.
pub const BASELINE_PRIORITY: i32 = 253;

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Allow (skips K8s NetworkPolicies and baseline).
    Allow,
    /// Drop.
    Drop,
    /// Drop and answer (TCP RST or ICMP administratively prohibited).
    Reject,
    /// Skip the remaining non-baseline tiers.
    Pass,
}

impl Action {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "Allow",
            Action::Drop => "Drop",
            Action::Reject => "Reject",
            Action::Pass => "Pass",
        }
    }
}

/// Rule direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// `ingress` (peers in `from`).
    Ingress,
    /// `egress` (peers in `to`).
    Egress,
}

impl Direction {
    /// Lowercase manifest key (`ingress`/`egress`).
    pub fn key(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// A port number or a named port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortValue {
    /// A number (schema: int32; validated to 0..=65535 at parse).
    Number(i64),
    /// A container port name.
    Named(String),
}

/// One `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnpPort {
    /// protocol (schema default TCP).
    pub protocol: Proto,
    /// port.
    pub port: Option<PortValue>,
    /// endPort.
    pub end_port: Option<i64>,
    /// sourcePort.
    pub source_port: Option<i64>,
    /// sourceEndPort.
    pub source_end_port: Option<i64>,
}

/// One `protocols` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Protocol {
    /// ICMP with optional type and code.
    Icmp {
        /// icmpType.
        icmp_type: Option<u8>,
        /// icmpCode.
        icmp_code: Option<u8>,
    },
    /// IGMP.
    Igmp {
        /// igmpType.
        igmp_type: Option<u8>,
        /// groupAddress.
        group_address: Option<String>,
    },
}

/// A namespace reference (`serviceAccount`, `service`, `toServices`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamespacedName {
    /// name.
    pub name: String,
    /// namespace.
    pub namespace: String,
}

/// `ipBlock` / `ipBlocks[]`, kept as written so that refusals quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBlock {
    /// cidr.
    pub cidr: String,
    /// except.
    pub except: Vec<String>,
}

/// `namespaces` of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// `match: Self`: the appliedTo Pod's own namespace.
    SelfNs,
    /// `sameLabels`: namespaces with the same values for these keys.
    SameLabels(Vec<String>),
    /// Both set or neither (refused at validation with Antrea's message).
    Invalid {
        /// match was set.
        has_match: bool,
        /// sameLabels was set.
        has_same_labels: bool,
    },
}

/// A rule peer (`from`/`to` entry).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnpPeer {
    /// ipBlock.
    pub ip_block: Option<IpBlock>,
    /// podSelector.
    pub pod_selector: Option<Selector>,
    /// namespaceSelector.
    pub namespace_selector: Option<Selector>,
    /// namespaces.
    pub namespaces: Option<Namespaces>,
    /// externalEntitySelector (no ExternalEntities in xvs: selects nothing).
    pub external_entity_selector: Option<Selector>,
    /// group (ClusterGroup for ACNP, Group in the policy namespace for ANNP).
    pub group: Option<String>,
    /// fqdn (egress `to` only).
    pub fqdn: Option<String>,
    /// serviceAccount.
    pub service_account: Option<NamespacedName>,
    /// nodeSelector.
    pub node_selector: Option<Selector>,
    /// scope (`Cluster`/`ClusterSet`).
    pub scope: Option<String>,
}

/// An `appliedTo` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppliedTo {
    /// podSelector.
    pub pod_selector: Option<Selector>,
    /// namespaceSelector.
    pub namespace_selector: Option<Selector>,
    /// externalEntitySelector.
    pub external_entity_selector: Option<Selector>,
    /// group.
    pub group: Option<String>,
    /// serviceAccount.
    pub service_account: Option<NamespacedName>,
    /// service (NodePort).
    pub service: Option<NamespacedName>,
    /// nodeSelector.
    pub node_selector: Option<Selector>,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnpRule {
    /// action.
    pub action: Action,
    /// ports.
    pub ports: Vec<AnpPort>,
    /// protocols.
    pub protocols: Vec<L4Protocol>,
    /// l7Protocols, as canonical JSON (only validated: the L7 gate is off).
    pub l7_protocols: Vec<String>,
    /// `from` (ingress) or `to` (egress).
    pub peers: Vec<AnpPeer>,
    /// toServices (egress).
    pub to_services: Vec<NamespacedName>,
    /// name (generated by the mutation when empty).
    pub name: String,
    /// enableLogging.
    pub enable_logging: bool,
    /// logLabel.
    pub log_label: String,
    /// Per-rule appliedTo.
    pub applied_to: Vec<AppliedTo>,
}

/// A ClusterNetworkPolicy (`namespace` None) or an Antrea NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AntreaPolicy {
    /// metadata.namespace: `None` for a ClusterNetworkPolicy.
    pub namespace: Option<String>,
    /// metadata.name.
    pub name: String,
    /// The manifest file.
    pub file: String,
    /// spec.tier (lowercased legacy names; `application` when empty).
    pub tier: String,
    /// spec.priority.
    pub priority: PolicyPriority,
    /// spec.appliedTo.
    pub applied_to: Vec<AppliedTo>,
    /// spec.ingress.
    pub ingress: Vec<AnpRule>,
    /// spec.egress.
    pub egress: Vec<AnpRule>,
}

impl AntreaPolicy {
    /// `ClusterNetworkPolicy` or `NetworkPolicy`.
    pub fn kind(&self) -> &'static str {
        if self.namespace.is_some() {
            "NetworkPolicy"
        } else {
            "ClusterNetworkPolicy"
        }
    }
    /// Log reference: `AntreaClusterNetworkPolicy:<name>` / `AntreaNetworkPolicy:<ns>/<name>`.
    pub fn reference(&self) -> String {
        match &self.namespace {
            None => format!("AntreaClusterNetworkPolicy:{}", self.name),
            Some(ns) => format!("AntreaNetworkPolicy:{ns}/{}", self.name),
        }
    }
    /// The key in [`AnpObjects::policies`].
    pub fn key(&self) -> PolicyKey {
        (self.namespace.clone(), self.name.clone())
    }
    /// The rules of `dir`.
    pub fn rules(&self, dir: Direction) -> &[AnpRule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A ClusterGroup (`namespace` None) or a Group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnpGroup {
    /// metadata.namespace: `None` for a ClusterGroup.
    pub namespace: Option<String>,
    /// metadata.name.
    pub name: String,
    /// The manifest file.
    pub file: String,
    /// podSelector.
    pub pod_selector: Option<Selector>,
    /// namespaceSelector.
    pub namespace_selector: Option<Selector>,
    /// nodeSelector (ClusterGroup only).
    pub node_selector: Option<Selector>,
    /// externalEntitySelector.
    pub external_entity_selector: Option<Selector>,
    /// ipBlocks.
    pub ip_blocks: Vec<IpBlock>,
    /// serviceReference.
    pub service_reference: Option<NamespacedName>,
    /// childGroups.
    pub child_groups: Vec<String>,
}

impl AnpGroup {
    /// `ClusterGroup` or `Group`.
    pub fn kind(&self) -> &'static str {
        if self.namespace.is_some() {
            "Group"
        } else {
            "ClusterGroup"
        }
    }
}

/// (namespace, name); namespace `None` for cluster-scoped objects.
pub type PolicyKey = (Option<String>, String);

/// The Antrea-native objects of a [`Model`](crate::model::Model). Static tiers are implied
/// (see [`AnpObjects::tier_priority`]), not stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnpObjects {
    /// User tiers by name.
    pub tiers: std::collections::BTreeMap<String, Tier>,
    /// ACNPs and ANNPs.
    pub policies: std::collections::BTreeMap<PolicyKey, AntreaPolicy>,
    /// ClusterGroups and Groups.
    pub groups: std::collections::BTreeMap<PolicyKey, AnpGroup>,
}

impl AnpObjects {
    /// Whether nothing Antrea-native is present.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty() && self.policies.is_empty() && self.groups.is_empty()
    }
    /// The priority of tier `name` (static or user).
    pub fn tier_priority(&self, name: &str) -> Option<i32> {
        STATIC_TIERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .or_else(|| self.tiers.get(name).map(|t| t.priority))
    }
}

/// A parsed Antrea-native object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnpObject {
    /// Tier.
    Tier(Tier),
    /// ClusterNetworkPolicy or NetworkPolicy.
    Policy(AntreaPolicy),
    /// ClusterGroup or Group.
    Group(AnpGroup),
}

impl AnpObjects {
    /// Adds (or replaces) an object.
    pub fn insert(&mut self, o: AnpObject) {
        match o {
            AnpObject::Tier(t) => {
                self.tiers.insert(t.name.clone(), t);
            }
            AnpObject::Policy(p) => {
                self.policies.insert(p.key(), p);
            }
            AnpObject::Group(g) => {
                self.groups.insert((g.namespace.clone(), g.name.clone()), g);
            }
        }
    }
}
