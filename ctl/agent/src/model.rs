//! Typed model of the Kubernetes objects the agent consumes, loaded from YAML manifests
//! (`kubectl apply` style, multi-document), with validation errors naming file and field.

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// A manifest that could not be used: the file, the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {msg}")]
pub struct ManifestError {
    /// The manifest file.
    pub file: String,
    /// The field (`doc[N].spec.ports[0].port`).
    pub field: String,
    /// What is wrong.
    pub msg: String,
}

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// Prefix length 0..=32.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/len` (or a bare address, /32).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().ok()?),
            None => (s, 32),
        };
        if l > 32 {
            return None;
        }
        let addr: Ipv4Addr = a.parse().ok()?;
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask_of(l)),
            len: l,
        })
    }
    fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }
    /// The netmask.
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.len)
    }
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
    /// Whether `o` is inside (or equal).
    pub fn covers(&self, o: &Cidr) -> bool {
        o.len >= self.len && self.contains(o.addr)
    }
    /// ovs-ofctl form (`10.0.0.0/24`, or the bare address for /32).
    pub fn to_ofctl(&self) -> String {
        if self.len == 32 {
            self.addr.to_string()
        } else {
            format!("{}/{}", self.addr, self.len)
        }
    }
    /// `self` minus `holes`, as a list of disjoint prefixes.
    pub fn minus(&self, holes: &[Cidr]) -> Vec<Cidr> {
        let mut out = Vec::new();
        self.minus_into(holes, &mut out);
        out
    }
    fn minus_into(&self, holes: &[Cidr], out: &mut Vec<Cidr>) {
        if holes.iter().any(|h| h.covers(self)) {
            return;
        }
        if !holes.iter().any(|h| self.covers(h)) || self.len >= 32 {
            out.push(*self);
            return;
        }
        let len = self.len + 1;
        let lo = Cidr {
            addr: self.addr,
            len,
        };
        let hi = Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) | (1u32 << (32 - u32::from(len)))),
            len,
        };
        lo.minus_into(holes, out);
        hi.minus_into(holes, out);
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff`.
    pub fn parse(s: &str) -> Option<Mac> {
        let mut m = [0u8; 6];
        let mut n = 0;
        for part in s.split(':') {
            if n >= 6 || part.len() != 2 {
                return None;
            }
            m[n] = u8::from_str_radix(part, 16).ok()?;
            n += 1;
        }
        (n == 6).then_some(Mac(m))
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The agent's own configuration (kind `AgentConfig`, or a separate file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// This node's name.
    pub node_name: String,
    /// Gateway interface name.
    pub gateway_name: String,
    /// Gateway IP (answered by the ARP responder when the gateway has no port).
    pub gateway_ip: Ipv4Addr,
    /// Gateway MAC.
    pub gateway_mac: Mac,
    /// Gateway OpenFlow port, if it is a real port of the bridge.
    pub gateway_ofport: Option<u32>,
    /// Tunnel OpenFlow port, `None` for noEncap.
    pub tunnel_ofport: Option<u32>,
    /// Uplink interface name, informational.
    pub uplink: Option<String>,
    /// AntreaProxy `proxyAll`: the pipeline also serves NodePort Services (NodePortMark,
    /// ServiceLB NodePort flows), as kube-proxy would on the host otherwise.
    pub proxy_all: bool,
}

/// A Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Name.
    pub name: String,
    /// InternalIP.
    pub ip: Ipv4Addr,
    /// Every InternalIP and ExternalIP of status.addresses, in order (the addresses a
    /// NodePort Service answers on).
    pub addresses: Vec<Ipv4Addr>,
    /// spec.podCIDR.
    pub pod_cidr: Cidr,
    /// Labels (Antrea-native nodeSelector).
    pub labels: BTreeMap<String, String>,
}

/// A Namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotation `networkpolicy.antrea.io/enable-logging` (Go `strconv.ParseBool`; anything
    /// else is off, as in Antrea): the K8s NetworkPolicies of this namespace log to np.log.
    pub enable_logging: bool,
}

/// The Namespace annotation that turns on np.log lines for its K8s NetworkPolicies.
pub const ENABLE_LOGGING_ANNOTATION: &str = "networkpolicy.antrea.io/enable-logging";

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A Pod; MAC, interface and ofport come from annotations `xvs.io/mac`, `xvs.io/interface`,
/// `xvs.io/ofport`, or from the interface record `xvs-cni` wrote ([`crate::interfaces`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// spec.nodeName.
    pub node: String,
    /// status.podIP.
    pub ip: Ipv4Addr,
    /// Interface MAC.
    pub mac: Mac,
    /// Interface name.
    pub interface: String,
    /// OpenFlow port of the interface.
    pub ofport: u32,
    /// spec.serviceAccountName (Antrea-native serviceAccount peers).
    pub service_account: String,
    /// `spec.containers[].ports[]` (what named ports in NetworkPolicies resolve through).
    pub ports: Vec<ContainerPort>,
}

/// A port a Pod's container declares (`spec.containers[].ports[]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    /// `name` (empty when unnamed: such a port is never the target of a named port).
    pub name: String,
    /// `protocol` (default TCP).
    pub proto: Proto,
    /// `containerPort`.
    pub port: u16,
}

impl Pod {
    /// The number of the port named `name` with protocol `proto`, if a container declares it.
    pub fn named_port(&self, name: &str, proto: Proto) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.proto == proto)
            .map(|p| p.port)
    }
}

/// A Pod whose manifest has none of the interface annotations: the CNI's interface record
/// (see [`crate::interfaces`]) completes it into a [`Pod`] of [`Model::pods`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnattachedPod {
    /// The Pod as far as its manifest tells: `mac`, `interface` and `ofport` are zero and
    /// empty (no interface on this node), `ip` is unspecified (`0.0.0.0`) without
    /// `status.podIP`.
    pub pod: Pod,
}

impl UnattachedPod {
    /// Whether the manifest gave the Pod's address.
    pub fn has_ip(&self) -> bool {
        !self.pod.ip.is_unspecified()
    }
}

/// L4 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    fn parse(s: &str) -> Option<Proto> {
        match s {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }
    /// ovs-ofctl keyword.
    pub fn ofctl(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Name (matches EndpointSlice ports).
    pub name: String,
    /// Protocol.
    pub proto: Proto,
    /// Port on the ClusterIP.
    pub port: u16,
    /// spec.ports[].nodePort, kept only for `NodePort` and `LoadBalancer` Services.
    pub node_port: Option<u16>,
}

/// spec.type of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// `ClusterIP` (the default).
    #[default]
    ClusterIP,
    /// `NodePort`: also reachable on every Node address at each port's nodePort.
    NodePort,
    /// `LoadBalancer`: a NodePort Service with a load balancer in front.
    LoadBalancer,
}

impl ServiceType {
    /// Whether the Service has node ports.
    pub fn has_node_ports(self) -> bool {
        matches!(self, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

/// A Service (ClusterIP, and node ports for `NodePort` / `LoadBalancer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// spec.clusterIP.
    pub cluster_ip: Ipv4Addr,
    /// spec.type.
    pub service_type: ServiceType,
    /// spec.ports.
    pub ports: Vec<ServicePort>,
}

/// An EndpointSlice (label `kubernetes.io/service-name` ties it to a Service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The Service.
    pub service: String,
    /// (name, protocol, port).
    pub ports: Vec<(String, Proto, u16)>,
    /// Ready endpoint addresses.
    pub addresses: Vec<Ipv4Addr>,
}

/// A label selector (matchLabels + matchExpressions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// matchLabels.
    pub labels: BTreeMap<String, String>,
    /// matchExpressions: (key, operator, values).
    pub exprs: Vec<(String, SelOp, Vec<String>)>,
}

/// matchExpressions operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelOp {
    /// In.
    In,
    /// NotIn.
    NotIn,
    /// Exists.
    Exists,
    /// DoesNotExist.
    DoesNotExist,
}

impl Selector {
    /// Whether `labels` match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|(k, op, vals)| {
                let v = labels.get(k);
                match op {
                    SelOp::In => v.is_some_and(|v| vals.contains(v)),
                    SelOp::NotIn => v.is_none_or(|v| !vals.contains(v)),
                    SelOp::Exists => v.is_some(),
                    SelOp::DoesNotExist => v.is_none(),
                }
            })
    }
}

/// A NetworkPolicy peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// podSelector and/or namespaceSelector (`None` = the policy's namespace / all pods).
    Pods {
        /// podSelector.
        pod: Option<Selector>,
        /// namespaceSelector.
        ns: Option<Selector>,
    },
    /// ipBlock with excepts.
    IpBlock {
        /// cidr.
        cidr: Cidr,
        /// except.
        except: Vec<Cidr>,
    },
}

/// A NetworkPolicy port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpPort {
    /// Protocol (default TCP).
    pub proto: Proto,
    /// Port, `None` = all ports of the protocol (or a named port, see `name`).
    pub port: Option<u16>,
    /// endPort.
    pub end_port: Option<u16>,
    /// A named port (`port: "http"`), resolved through each selected Pod's container ports;
    /// `port` is then `None`.
    pub name: Option<String>,
}

/// One ingress/egress rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NpRule {
    /// Peers (empty = everything).
    pub peers: Vec<Peer>,
    /// Ports (empty = all).
    pub ports: Vec<NpPort>,
}

/// A networking.k8s.io/v1 NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// spec.podSelector.
    pub pod_selector: Selector,
    /// Whether it isolates ingress (policyTypes).
    pub ingress_isolation: bool,
    /// Whether it isolates egress.
    pub egress_isolation: bool,
    /// Ingress rules.
    pub ingress: Vec<NpRule>,
    /// Egress rules.
    pub egress: Vec<NpRule>,
}

/// Everything the agent knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    /// The agent's config (from an `AgentConfig` document), if any.
    pub config: Option<AgentConfig>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Pods by (namespace, name).
    pub pods: BTreeMap<(String, String), Pod>,
    /// Pods still without MAC/interface/ofport, by (namespace, name).
    pub unattached_pods: BTreeMap<(String, String), UnattachedPod>,
    /// Services by (namespace, name).
    pub services: BTreeMap<(String, String), Service>,
    /// EndpointSlices by (namespace, name).
    pub slices: BTreeMap<(String, String), EndpointSlice>,
    /// NetworkPolicies by (namespace, name).
    pub policies: BTreeMap<(String, String), NetworkPolicy>,
    /// Antrea-native objects (tiers, ACNP/ANNP, ClusterGroups/Groups).
    pub anp: crate::anp::AnpObjects,
    /// Addresses learned from intercepted DNS responses, by name (lowercase), for `fqdn`
    /// peers (kept by the agent's [`crate::anp::fqdn::FqdnCache`], not by manifests).
    pub fqdn_learned: BTreeMap<String, std::collections::BTreeSet<Ipv4Addr>>,
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.to_string(),
            field: field.to_string(),
            msg: msg.into(),
        }
    }
}

type R<T> = Result<T, ManifestError>;

fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn req<'v>(c: &Ctx<'_>, v: &'v Value, path: &str, key: &str) -> R<&'v Value> {
    get(v, key).ok_or_else(|| c.err(&format!("{path}.{key}"), "missing"))
}

fn s<'v>(c: &Ctx<'_>, v: &'v Value, path: &str, key: &str) -> R<&'v str> {
    req(c, v, path, key)?
        .as_str()
        .ok_or_else(|| c.err(&format!("{path}.{key}"), "not a string"))
}

fn opt_s<'v>(c: &Ctx<'_>, v: &'v Value, path: &str, key: &str) -> R<Option<&'v str>> {
    match get(v, key) {
        None => Ok(None),
        Some(x) => x
            .as_str()
            .map(Some)
            .ok_or_else(|| c.err(&format!("{path}.{key}"), "not a string")),
    }
}

fn ip(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Ipv4Addr> {
    let t = s(c, v, path, key)?;
    t.parse().map_err(|_| {
        c.err(
            &format!("{path}.{key}"),
            format!("{t:?} is not an IPv4 address"),
        )
    })
}

fn cidr(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Cidr> {
    let t = s(c, v, path, key)?;
    Cidr::parse(t).ok_or_else(|| {
        c.err(
            &format!("{path}.{key}"),
            format!("{t:?} is not an IPv4 CIDR"),
        )
    })
}

fn mac(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Mac> {
    let t = s(c, v, path, key)?;
    Mac::parse(t).ok_or_else(|| c.err(&format!("{path}.{key}"), format!("{t:?} is not a MAC")))
}

fn uint<T: TryFrom<u64>>(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<Option<T>> {
    match get(v, key) {
        None => Ok(None),
        Some(x) => {
            let n = match x {
                Value::Number(n) => n.as_u64(),
                Value::String(t) => t.parse::<u64>().ok(),
                _ => None,
            };
            n.and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| c.err(&format!("{path}.{key}"), "not a valid number"))
        }
    }
}

fn labels(c: &Ctx<'_>, v: &Value, path: &str, key: &str) -> R<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if let Some(m) = get(v, key) {
        let m = m
            .as_mapping()
            .ok_or_else(|| c.err(&format!("{path}.{key}"), "not a map"))?;
        for (k, val) in m {
            let (Some(k), Some(val)) = (k.as_str(), val.as_str()) else {
                return Err(c.err(&format!("{path}.{key}"), "keys and values must be strings"));
            };
            out.insert(k.to_string(), val.to_string());
        }
    }
    Ok(out)
}

fn seq<'v>(c: &Ctx<'_>, v: &'v Value, path: &str, key: &str) -> R<&'v [Value]> {
    match get(v, key) {
        None => Ok(&[]),
        Some(Value::Sequence(s)) => Ok(s),
        Some(_) => Err(c.err(&format!("{path}.{key}"), "not a list")),
    }
}

fn selector(c: &Ctx<'_>, v: &Value, path: &str) -> R<Selector> {
    let mut sel = Selector {
        labels: labels(c, v, path, "matchLabels")?,
        exprs: Vec::new(),
    };
    for (i, e) in seq(c, v, path, "matchExpressions")?.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let key = s(c, e, &p, "key")?.to_string();
        let op = match s(c, e, &p, "operator")? {
            "In" => SelOp::In,
            "NotIn" => SelOp::NotIn,
            "Exists" => SelOp::Exists,
            "DoesNotExist" => SelOp::DoesNotExist,
            o => return Err(c.err(&format!("{p}.operator"), format!("unknown operator {o:?}"))),
        };
        let mut vals = Vec::new();
        for (j, x) in seq(c, e, &p, "values")?.iter().enumerate() {
            vals.push(
                x.as_str()
                    .ok_or_else(|| c.err(&format!("{p}.values[{j}]"), "not a string"))?
                    .to_string(),
            );
        }
        sel.exprs.push((key, op, vals));
    }
    Ok(sel)
}

fn proto(c: &Ctx<'_>, v: &Value, path: &str) -> R<Proto> {
    match opt_s(c, v, path, "protocol")? {
        None => Ok(Proto::Tcp),
        Some(t) => Proto::parse(t).ok_or_else(|| {
            c.err(
                &format!("{path}.protocol"),
                format!("unknown protocol {t:?}"),
            )
        }),
    }
}

/// One parsed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// AgentConfig.
    Config(AgentConfig),
    /// Node.
    Node(Node),
    /// Namespace.
    Namespace(Namespace),
    /// Pod.
    Pod(Pod),
    /// Pod without interface annotations.
    UnattachedPod(UnattachedPod),
    /// Service.
    Service(Service),
    /// EndpointSlice.
    Slice(EndpointSlice),
    /// NetworkPolicy.
    Policy(NetworkPolicy),
    /// An Antrea-native object (crd.antrea.io).
    Anp(crate::anp::AnpObject),
}

fn container_ports(c: &Ctx<'_>, spec: &Value, path: &str) -> R<Vec<ContainerPort>> {
    let mut out = Vec::new();
    for (i, ctr) in seq(c, spec, path, "containers")?.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        for (j, p) in seq(c, ctr, &cp, "ports")?.iter().enumerate() {
            let pp = format!("{cp}.ports[{j}]");
            out.push(ContainerPort {
                name: opt_s(c, p, &pp, "name")?.unwrap_or("").to_string(),
                proto: proto(c, p, &pp)?,
                port: uint::<u16>(c, p, &pp, "containerPort")?
                    .filter(|n| *n > 0)
                    .ok_or_else(|| c.err(&format!("{pp}.containerPort"), "missing or invalid"))?,
            });
        }
    }
    Ok(out)
}

fn rule(c: &Ctx<'_>, v: &Value, path: &str, peers_key: &str) -> R<NpRule> {
    let mut r = NpRule::default();
    for (i, p) in seq(c, v, path, peers_key)?.iter().enumerate() {
        let pp = format!("{path}.{peers_key}[{i}]");
        if let Some(b) = get(p, "ipBlock") {
            let bp = format!("{pp}.ipBlock");
            let mut except = Vec::new();
            for (j, e) in seq(c, b, &bp, "except")?.iter().enumerate() {
                let t = e
                    .as_str()
                    .ok_or_else(|| c.err(&format!("{bp}.except[{j}]"), "not a string"))?;
                except.push(Cidr::parse(t).ok_or_else(|| {
                    c.err(
                        &format!("{bp}.except[{j}]"),
                        format!("{t:?} is not an IPv4 CIDR"),
                    )
                })?);
            }
            r.peers.push(Peer::IpBlock {
                cidr: cidr(c, b, &bp, "cidr")?,
                except,
            });
        } else {
            let pod = get(p, "podSelector")
                .map(|x| selector(c, x, &format!("{pp}.podSelector")))
                .transpose()?;
            let ns = get(p, "namespaceSelector")
                .map(|x| selector(c, x, &format!("{pp}.namespaceSelector")))
                .transpose()?;
            if pod.is_none() && ns.is_none() {
                return Err(c.err(
                    &pp,
                    "a peer needs podSelector, namespaceSelector or ipBlock",
                ));
            }
            r.peers.push(Peer::Pods { pod, ns });
        }
    }
    for (i, p) in seq(c, v, path, "ports")?.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        // A string that is not a number is a named port (an IANA_SVC_NAME).
        let name = match get(p, "port") {
            Some(Value::String(t)) if t.parse::<u64>().is_err() => {
                if t.is_empty()
                    || t.len() > 15
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(c.err(&format!("{pp}.port"), format!("{t:?} is not a port name")));
                }
                Some(t.clone())
            }
            _ => None,
        };
        let port = if name.is_some() {
            None
        } else {
            uint::<u16>(c, p, &pp, "port")?
        };
        let end_port = uint::<u16>(c, p, &pp, "endPort")?;
        if name.is_some() && end_port.is_some() {
            return Err(c.err(&format!("{pp}.endPort"), "endPort needs a numeric port"));
        }
        if let (Some(a), Some(b)) = (port, end_port) {
            if b < a {
                return Err(c.err(&format!("{pp}.endPort"), "smaller than port"));
            }
        }
        if port.is_none() && end_port.is_some() {
            return Err(c.err(&format!("{pp}.endPort"), "endPort needs port"));
        }
        r.ports.push(NpPort {
            proto: proto(c, p, &pp)?,
            port,
            end_port,
            name,
        });
    }
    Ok(r)
}

/// Parses one YAML document (already split) of `file`; `idx` names it in errors.
pub fn parse_object(file: &str, idx: usize, doc: &Value) -> R<Option<Object>> {
    let c = Ctx { file };
    let d = format!("doc[{idx}]");
    if doc.is_null() {
        return Ok(None);
    }
    let kind = s(&c, doc, &d, "kind")?;
    if let Some(o) = crate::anp::parse::object(file, idx, kind, doc) {
        return o.map(|o| Some(Object::Anp(o)));
    }
    let meta = req(&c, doc, &d, "metadata");
    let mp = format!("{d}.metadata");
    let name = |m: &Value| s(&c, m, &mp, "name").map(str::to_string);
    let ns = |m: &Value| opt_s(&c, m, &mp, "namespace").map(|n| n.unwrap_or("default").to_string());
    let spec_p = format!("{d}.spec");
    Ok(Some(match kind {
        "AgentConfig" => {
            let sp = spec_p;
            let spec = req(&c, doc, &d, "spec")?;
            let gw = req(&c, spec, &sp, "gateway")?;
            let gp = format!("{sp}.gateway");
            let tunnel_ofport = match opt_s(&c, spec, &sp, "tunnelType")? {
                Some("noEncap") => None,
                Some("geneve") | Some("vxlan") | None => {
                    Some(uint::<u32>(&c, spec, &sp, "tunnelOfport")?.unwrap_or(32768))
                }
                Some(t) => {
                    return Err(c.err(&format!("{sp}.tunnelType"), format!("unknown tunnel {t:?}")))
                }
            };
            Object::Config(AgentConfig {
                node_name: s(&c, spec, &sp, "nodeName")?.to_string(),
                gateway_name: opt_s(&c, gw, &gp, "name")?
                    .unwrap_or("antrea-gw0")
                    .to_string(),
                gateway_ip: ip(&c, gw, &gp, "ip")?,
                gateway_mac: mac(&c, gw, &gp, "mac")?,
                gateway_ofport: uint::<u32>(&c, gw, &gp, "ofport")?,
                tunnel_ofport,
                uplink: opt_s(&c, spec, &sp, "uplink")?.map(str::to_string),
                proxy_all: match get(spec, "proxyAll") {
                    None => false,
                    Some(v) => v
                        .as_bool()
                        .ok_or_else(|| c.err(&format!("{sp}.proxyAll"), "not a bool"))?,
                },
            })
        }
        "Node" => {
            let m = meta?;
            let spec = req(&c, doc, &d, "spec")?;
            let st = req(&c, doc, &d, "status")?;
            let mut node_ip = None;
            let mut addresses = Vec::new();
            for (i, a) in seq(&c, st, &format!("{d}.status"), "addresses")?
                .iter()
                .enumerate()
            {
                let ap = format!("{d}.status.addresses[{i}]");
                let kind = s(&c, a, &ap, "type")?;
                if kind == "InternalIP" || kind == "ExternalIP" {
                    // IPv6 addresses (dual-stack Nodes) are not served by this IPv4 pipeline.
                    let Ok(addr) = s(&c, a, &ap, "address")?.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    if kind == "InternalIP" && node_ip.is_none() {
                        node_ip = Some(addr);
                    }
                    if !addresses.contains(&addr) {
                        addresses.push(addr);
                    }
                }
            }
            Object::Node(Node {
                name: name(m)?,
                ip: node_ip
                    .ok_or_else(|| c.err(&format!("{d}.status.addresses"), "no InternalIP"))?,
                addresses,
                pod_cidr: cidr(&c, spec, &spec_p, "podCIDR")?,
                labels: labels(&c, m, &mp, "labels")?,
            })
        }
        "Namespace" => {
            let m = meta?;
            let enable_logging = match get(m, "annotations")
                .and_then(|a| get(a, ENABLE_LOGGING_ANNOTATION))
                .and_then(Value::as_str)
            {
                None => false,
                Some(v) => go_parse_bool(v).unwrap_or_else(|| {
                    eprintln!(
                        "xvs-agent: {d}: annotation {ENABLE_LOGGING_ANNOTATION}={v:?} is not a bool; logging stays off"
                    );
                    false
                }),
            };
            Object::Namespace(Namespace {
                name: name(m)?,
                labels: labels(&c, m, &mp, "labels")?,
                enable_logging,
            })
        }
        "Pod" => {
            let m = meta?;
            let spec = req(&c, doc, &d, "spec")?;
            // A hostNetwork Pod uses the node's interfaces: no CNI, no flows, no peer.
            if get(spec, "hostNetwork").and_then(Value::as_bool) == Some(true) {
                return Ok(None);
            }
            let ap = format!("{mp}.annotations");
            let interface_keys = ["xvs.io/mac", "xvs.io/interface", "xvs.io/ofport"];
            let ann = get(m, "annotations");
            if !ann.is_some_and(|a| interface_keys.iter().any(|k| get(a, k).is_some())) {
                let sp = format!("{d}.status");
                let ip = match get(doc, "status") {
                    Some(st) if get(st, "podIP").is_some() => Some(ip(&c, st, &sp, "podIP")?),
                    _ => None,
                };
                return Ok(Some(Object::UnattachedPod(UnattachedPod {
                    pod: Pod {
                        namespace: ns(m)?,
                        name: name(m)?,
                        labels: labels(&c, m, &mp, "labels")?,
                        node: s(&c, spec, &spec_p, "nodeName")?.to_string(),
                        ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        mac: Mac([0; 6]),
                        interface: String::new(),
                        ofport: 0,
                        ports: container_ports(&c, spec, &spec_p)?,
                        service_account: opt_s(&c, spec, &spec_p, "serviceAccountName")?
                            .unwrap_or("default")
                            .to_string(),
                    },
                })));
            }
            let st = req(&c, doc, &d, "status")?;
            let ann = req(&c, m, &mp, "annotations")?;
            Object::Pod(Pod {
                namespace: ns(m)?,
                name: name(m)?,
                labels: labels(&c, m, &mp, "labels")?,
                node: s(&c, spec, &spec_p, "nodeName")?.to_string(),
                ip: ip(&c, st, &format!("{d}.status"), "podIP")?,
                mac: mac(&c, ann, &ap, "xvs.io/mac")?,
                interface: s(&c, ann, &ap, "xvs.io/interface")?.to_string(),
                ofport: uint::<u32>(&c, ann, &ap, "xvs.io/ofport")?
                    .filter(|p| *p > 0 && *p < 0xffff_ff00)
                    .ok_or_else(|| c.err(&format!("{ap}.xvs.io/ofport"), "missing or invalid"))?,
                ports: container_ports(&c, spec, &spec_p)?,
                service_account: opt_s(&c, spec, &spec_p, "serviceAccountName")?
                    .unwrap_or("default")
                    .to_string(),
            })
        }
        "Service" => {
            let m = meta?;
            let spec = req(&c, doc, &d, "spec")?;
            // A headless Service has no ClusterIP to balance (AntreaProxy skips it too); its
            // name resolves to its Pods' addresses, which FQDN rules learn from DNS.
            if spec.get("clusterIP").and_then(Value::as_str) == Some("None") {
                return Ok(None);
            }
            let service_type = match opt_s(&c, spec, &spec_p, "type")? {
                None | Some("ClusterIP") => ServiceType::ClusterIP,
                Some("NodePort") => ServiceType::NodePort,
                Some("LoadBalancer") => ServiceType::LoadBalancer,
                Some(t) => {
                    return Err(c.err(&format!("{spec_p}.type"), format!("unsupported type {t:?}")))
                }
            };
            let mut ports = Vec::new();
            for (i, p) in seq(&c, spec, &spec_p, "ports")?.iter().enumerate() {
                let pp = format!("{spec_p}.ports[{i}]");
                let node_port = uint::<u16>(&c, p, &pp, "nodePort")?.filter(|n| *n > 0);
                if service_type.has_node_ports() && node_port.is_none() {
                    // The API server allocates one; a manifest must say which.
                    return Err(c.err(&format!("{pp}.nodePort"), "missing"));
                }
                ports.push(ServicePort {
                    name: opt_s(&c, p, &pp, "name")?.unwrap_or("").to_string(),
                    proto: proto(&c, p, &pp)?,
                    port: uint::<u16>(&c, p, &pp, "port")?
                        .ok_or_else(|| c.err(&format!("{pp}.port"), "missing"))?,
                    node_port: node_port.filter(|_| service_type.has_node_ports()),
                });
            }
            Object::Service(Service {
                namespace: ns(m)?,
                name: name(m)?,
                cluster_ip: ip(&c, spec, &spec_p, "clusterIP")?,
                service_type,
                ports,
            })
        }
        "EndpointSlice" => {
            let m = meta?;
            let l = labels(&c, m, &mp, "labels")?;
            let service = l
                .get("kubernetes.io/service-name")
                .cloned()
                .ok_or_else(|| {
                    c.err(
                        &format!("{mp}.labels.kubernetes.io/service-name"),
                        "missing",
                    )
                })?;
            let mut ports = Vec::new();
            for (i, p) in seq(&c, doc, &d, "ports")?.iter().enumerate() {
                let pp = format!("{d}.ports[{i}]");
                ports.push((
                    opt_s(&c, p, &pp, "name")?.unwrap_or("").to_string(),
                    proto(&c, p, &pp)?,
                    uint::<u16>(&c, p, &pp, "port")?
                        .ok_or_else(|| c.err(&format!("{pp}.port"), "missing"))?,
                ));
            }
            let mut addresses = Vec::new();
            for (i, e) in seq(&c, doc, &d, "endpoints")?.iter().enumerate() {
                let ep = format!("{d}.endpoints[{i}]");
                let ready = get(e, "conditions")
                    .and_then(|x| get(x, "ready"))
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                for (j, a) in seq(&c, e, &ep, "addresses")?.iter().enumerate() {
                    let t = a
                        .as_str()
                        .ok_or_else(|| c.err(&format!("{ep}.addresses[{j}]"), "not a string"))?;
                    let addr: Ipv4Addr = t.parse().map_err(|_| {
                        c.err(
                            &format!("{ep}.addresses[{j}]"),
                            format!("{t:?} is not IPv4"),
                        )
                    })?;
                    if ready {
                        addresses.push(addr);
                    }
                }
            }
            Object::Slice(EndpointSlice {
                namespace: ns(m)?,
                name: name(m)?,
                service,
                ports,
                addresses,
            })
        }
        "NetworkPolicy" => {
            let m = meta?;
            let spec = req(&c, doc, &d, "spec")?;
            let pod_selector = selector(
                &c,
                req(&c, spec, &spec_p, "podSelector")?,
                &format!("{spec_p}.podSelector"),
            )?;
            let mut ingress = Vec::new();
            for (i, r) in seq(&c, spec, &spec_p, "ingress")?.iter().enumerate() {
                ingress.push(rule(&c, r, &format!("{spec_p}.ingress[{i}]"), "from")?);
            }
            let mut egress = Vec::new();
            for (i, r) in seq(&c, spec, &spec_p, "egress")?.iter().enumerate() {
                egress.push(rule(&c, r, &format!("{spec_p}.egress[{i}]"), "to")?);
            }
            let types = seq(&c, spec, &spec_p, "policyTypes")?;
            let (ing, eg) = if types.is_empty() {
                (true, !egress.is_empty())
            } else {
                let mut ing = false;
                let mut eg = false;
                for (i, t) in types.iter().enumerate() {
                    match t.as_str() {
                        Some("Ingress") => ing = true,
                        Some("Egress") => eg = true,
                        _ => {
                            return Err(c.err(
                                &format!("{spec_p}.policyTypes[{i}]"),
                                "must be Ingress or Egress",
                            ))
                        }
                    }
                }
                (ing, eg)
            };
            Object::Policy(NetworkPolicy {
                namespace: ns(m)?,
                name: name(m)?,
                pod_selector,
                ingress_isolation: ing,
                egress_isolation: eg,
                ingress,
                egress,
            })
        }
        other => return Err(c.err(&format!("{d}.kind"), format!("unsupported kind {other:?}"))),
    }))
}

/// Parses a multi-document YAML text; all objects, or the first error (a file is used whole
/// or not at all).
pub fn parse_file(file: &str, text: &str) -> R<Vec<Object>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).map_err(|e| ManifestError {
            file: file.to_string(),
            field: format!("doc[{i}]"),
            msg: format!("invalid YAML: {e}"),
        })?;
        if let Some(o) = parse_object(file, i, &v)? {
            out.push(o);
        }
    }
    Ok(out)
}

impl Model {
    /// Every Pod that has an address, with or without an interface here: the Pods policy
    /// peers select from. A remote Pod never has a record on this node and needs none.
    pub fn peer_pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values().chain(
            self.unattached_pods
                .values()
                .filter(|u| u.has_ip())
                .map(|u| &u.pod),
        )
    }

    /// Adds an object (a later one with the same key replaces the earlier).
    pub fn insert(&mut self, o: Object) {
        match o {
            Object::Config(c) => self.config = Some(c),
            Object::Node(n) => {
                self.nodes.insert(n.name.clone(), n);
            }
            Object::Namespace(n) => {
                self.namespaces.insert(n.name.clone(), n);
            }
            Object::Pod(p) => {
                let key = (p.namespace.clone(), p.name.clone());
                self.unattached_pods.remove(&key);
                self.pods.insert(key, p);
            }
            Object::UnattachedPod(p) => {
                let key = (p.pod.namespace.clone(), p.pod.name.clone());
                self.pods.remove(&key);
                self.unattached_pods.insert(key, p);
            }
            Object::Service(s) => {
                self.services
                    .insert((s.namespace.clone(), s.name.clone()), s);
            }
            Object::Slice(s) => {
                self.slices.insert((s.namespace.clone(), s.name.clone()), s);
            }
            Object::Policy(p) => {
                self.policies
                    .insert((p.namespace.clone(), p.name.clone()), p);
            }
            Object::Anp(o) => self.anp.insert(o),
        }
    }
}

/// Loads every `*.yaml`/`*.yml` file of `dir` (sorted by name): the model of the good files
/// and the errors of the bad ones (a bad file contributes nothing).
pub fn load_dir(dir: &Path) -> std::io::Result<(Model, Vec<ManifestError>)> {
    load_dir_keeping(dir, &mut BTreeMap::new())
}

/// Like [`load_dir`], but a file that has become bad keeps contributing what it held when it
/// was last good (`last_good`, updated): a broken edit changes nothing.
pub fn load_dir_keeping(
    dir: &Path,
    last_good: &mut BTreeMap<PathBuf, Vec<Object>>,
) -> std::io::Result<(Model, Vec<ManifestError>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml")
        })
        .collect();
    files.sort();
    last_good.retain(|k, _| files.contains(k));
    let mut model = Model::default();
    let mut errors = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let parsed = std::fs::read_to_string(&f)
            .map_err(|e| ManifestError {
                file: name.clone(),
                field: String::new(),
                msg: e.to_string(),
            })
            .and_then(|text| parse_file(&name, &text));
        match parsed {
            Ok(objs) => {
                last_good.insert(f, objs);
            }
            Err(e) => errors.push(e),
        }
    }
    for objs in last_good.values() {
        objs.iter().cloned().for_each(|o| model.insert(o));
    }
    Ok((model, errors))
}

/// A cheap fingerprint of `dir` (names, sizes, mtimes) for polling.
pub fn dir_fingerprint(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, std::time::SystemTime)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let md = e.metadata()?;
        v.push((e.path(), md.len(), md.modified()?));
    }
    v.sort();
    Ok(v)
}
