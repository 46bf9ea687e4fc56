//! `xvsd.toml`: parsing and validation.
//!
//! Everything that can be checked without touching an interface is checked here, so a bad file
//! makes the daemon exit before it attaches anything.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use xvs_tunnel::{Key, Remote, TunnelConfig, TunnelKind};

/// Highest OpenFlow port number a physical/tap port may take (as OVS: 16-bit port numbers
/// below the reserved range, OFPP_MAX = 0xff00).
pub const OFPP_MAX: u32 = 0xfeff;

/// The daemon configuration, as written in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bridge name; the OpenFlow socket is `<run_dir>/<bridge>.mgmt`.
    pub bridge: String,
    /// Directory for sockets and the pid file; created 0750.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
    /// Cores, one pinned worker each.
    #[serde(default = "default_workers")]
    pub workers: Vec<usize>,
    /// Flow file in `ovs-ofctl add-flows` syntax, loaded at start.
    #[serde(default)]
    pub flows: Option<PathBuf>,
    /// Group file (`ovs-ofctl add-groups` syntax, one group per line), loaded before the flows.
    #[serde(default)]
    pub groups: Option<PathBuf>,
    /// Meter file (`ovs-ofctl add-meter` syntax, one meter per line), loaded before the flows.
    #[serde(default)]
    pub meters: Option<PathBuf>,
    /// How packets are forwarded.
    #[serde(default)]
    pub forwarding: ForwardingMode,
    /// Upper bound, in microseconds, of the sleep a worker takes when its ports are idle
    /// (0 = poll at 100 % CPU, the default, as OVS PMD threads do).
    #[serde(default)]
    pub pmd_sleep_max_us: u64,
    /// Frames in each worker's pool (4 KiB each); default: what the worker's ports can hold,
    /// plus room for `runtime_ports`.
    #[serde(default)]
    pub frames_per_worker: Option<u32>,
    /// AF_XDP ports (Pods' veths) each worker's pool has room for besides its configured
    /// ports, for `xvs/add-port` at run time (default 2; more can be added, with fewer frames
    /// to spare). Ignored when `frames_per_worker` is set.
    #[serde(default = "default_runtime_ports")]
    pub runtime_ports: u32,
    /// The ports.
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    /// The connection tracker shared by every worker (`ct()` actions).
    #[serde(default)]
    pub conntrack: ConntrackConfig,
    /// DPDK's EAL, for ports of type `dpdk` (see [`DpdkEalConfig`]).
    #[serde(default)]
    pub dpdk: Option<DpdkEalConfig>,
}

/// The `[conntrack]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackConfig {
    /// Most connections tracked at once (OVS `ct-set-maxconns`); a commit beyond it fails
    /// and is counted (`ct_full`).
    pub max_connections: u32,
    /// Per-zone limit for zones without their own (0 = unlimited).
    pub default_zone_limit: u32,
    /// TCP sequence-window checking (OVS `ct-enable-tcp-seq-chk`).
    pub tcp_seq_check: bool,
    /// Connections the control thread examines for expiry per 20 ms period.
    pub sweep_budget: u32,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_connections: 3_000_000,
            default_zone_limit: 0,
            tcp_seq_check: true,
            sweep_budget: 4096,
        }
    }
}

/// Forwarding modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardingMode {
    /// Ports paired in configuration order (1st <-> 2nd, 3rd <-> 4th, ...), packets passed
    /// untouched: the I/O ceiling, as DPDK testpmd's io mode.
    IoFwd,
    /// The OpenFlow pipeline: caches in front of the tables, misses translated.
    #[default]
    Openflow,
}

/// Port types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// An existing interface driven through AF_XDP.
    Afxdp,
    /// A tap device created by xvsd (host-facing, e.g. the gateway).
    Tap,
    /// A Geneve tunnel port: no interface; output encapsulates and leaves by the uplink.
    Geneve,
    /// A VXLAN tunnel port.
    Vxlan,
    /// A DPDK poll-mode driver port (xvsd built with the `dpdk` feature): a PCI NIC or a vdev.
    Dpdk,
    /// A pcap file loaded into memory at start and received in a loop (`loops` times or
    /// forever), pktgen-style load without a NIC; what it is given to send it counts and frees.
    Replay,
    /// A sink: counts and frees what it is given to send, never receives (DPDK's `net_null`).
    Null,
}

impl PortType {
    /// True for Geneve and VXLAN ports.
    pub fn is_tunnel(self) -> bool {
        matches!(self, PortType::Geneve | PortType::Vxlan)
    }

    /// The name `dpif/show` and the configuration use.
    pub fn name(self) -> &'static str {
        match self {
            PortType::Afxdp => "afxdp",
            PortType::Tap => "tap",
            PortType::Geneve => "geneve",
            PortType::Vxlan => "vxlan",
            PortType::Dpdk => "dpdk",
            PortType::Replay => "replay",
            PortType::Null => "null",
        }
    }
}

/// `remote_ip = "flow" | "<ip>"` and `key = "flow" | <n>`, as OVS's tunnel options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FlowOr<T> {
    /// A fixed value.
    Fixed(T),
    /// `"flow"` (or any other string, refused at validation).
    Word(String),
}

/// XDP attach modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeConfig {
    /// Native (driver) mode, falling back to generic.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// One `[[port]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Interface name in xvsd's network namespace (replay and null ports: only the port's
    /// name, no interface behind it).
    pub name: String,
    /// Backend.
    #[serde(rename = "type")]
    pub kind: PortType,
    /// OpenFlow port number.
    pub ofport: u32,
    /// The worker (by core number) that polls the port; default: assigned by xvsd.
    #[serde(default)]
    pub worker: Option<usize>,
    /// AF_XDP: XDP attach mode.
    #[serde(default)]
    pub xdp_mode: Option<XdpModeConfig>,
    /// AF_XDP: the queue to bind (default 0).
    #[serde(default)]
    pub queue: Option<u32>,
    /// Tap: MAC address to set, `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub mac: Option<String>,
    /// Tap: MTU to set.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// AF_XDP: this port is the uplink tunnels send and receive through; its XDP program
    /// hands only tunnel traffic (and `pod_cidr`) to xvs and the rest to the kernel.
    #[serde(default)]
    pub uplink: bool,
    /// Uplink: the node's IPv4 Pod CIDR, also handed to xvs by the uplink's XDP program.
    #[serde(default)]
    pub pod_cidr: Option<String>,
    /// Tunnel: `"flow"` (from `tun_dst`) or a fixed address. Default `"flow"`.
    #[serde(default)]
    pub remote_ip: Option<FlowOr<IpAddr>>,
    /// Tunnel: `"flow"` (from `tun_id`) or a fixed VNI. Default `"flow"`.
    #[serde(default)]
    pub key: Option<FlowOr<u32>>,
    /// Tunnel: the local endpoint address (default: the route's preferred source).
    #[serde(default)]
    pub local_ip: Option<IpAddr>,
    /// Tunnel: UDP destination port (default 6081 Geneve, 4789 VXLAN).
    #[serde(default)]
    pub dst_port: Option<u16>,
    /// Tunnel: set DF on the outer IPv4 header (default true, as OVS `df_default`).
    #[serde(default)]
    pub df: Option<bool>,
    /// Tunnel: outer TTL / hop limit (default 64).
    #[serde(default)]
    pub ttl: Option<u8>,
    /// Tunnel: fill the outer UDP checksum over IPv4 (always done over IPv6; default false).
    #[serde(default)]
    pub csum: Option<bool>,
    // --- DPDK ports (type = "dpdk"); checked by `check_dpdk_port` ---
    /// DPDK: the device, a PCI address or a vdev (`net_af_xdp0,iface=X`, `net_af_packet0,iface=X`,
    /// `net_ring0`, ...).
    #[serde(default)]
    pub devargs: Option<String>,
    /// DPDK: receive queues (default 1); several are spread by RSS where the device can.
    #[serde(default)]
    pub rx_queues: Option<u16>,
    /// DPDK: transmit queues (default: `rx_queues`; at least that).
    #[serde(default)]
    pub tx_queues: Option<u16>,
    /// DPDK: the worker (core) polling each receive queue, in queue order; default: every queue
    /// on the port's `worker`.
    #[serde(default)]
    pub queue_workers: Option<Vec<usize>>,
    /// DPDK: receive descriptors per queue (default 1024).
    #[serde(default)]
    pub rx_descriptors: Option<u16>,
    /// DPDK: transmit descriptors per queue (default 1024).
    #[serde(default)]
    pub tx_descriptors: Option<u16>,
    /// DPDK: NUMA socket for the queues' memory (default: the device's).
    #[serde(default)]
    pub socket_id: Option<i32>,
    // --- replay ports (type = "replay") ---
    /// Replay: the classic pcap file (not pcapng) to receive, relative to the configuration
    /// file; read into memory at start.
    #[serde(default)]
    pub pcap: Option<PathBuf>,
    /// Replay: how many times the whole capture is received (default: forever).
    #[serde(default)]
    pub loops: Option<u64>,
    /// Replay: wait for `ovs-appctl xvs/replay-start` before receiving anything (so a finite
    /// replay meets the flows loaded after start-up). Default false: start at once.
    #[serde(default)]
    pub paused: bool,
}

impl PortConfig {
    /// The tunnel options of a Geneve/VXLAN port (validated by [`plan`]).
    pub fn tunnel_config(&self) -> Option<TunnelConfig> {
        let kind = match self.kind {
            PortType::Geneve => TunnelKind::Geneve,
            PortType::Vxlan => TunnelKind::Vxlan,
            PortType::Afxdp
            | PortType::Tap
            | PortType::Dpdk
            | PortType::Replay
            | PortType::Null => return None,
        };
        let mut c = TunnelConfig::flow_based(kind);
        c.remote = match &self.remote_ip {
            Some(FlowOr::Fixed(ip)) => Remote::Ip(*ip),
            _ => Remote::Flow,
        };
        c.key = match &self.key {
            Some(FlowOr::Fixed(k)) => Key::Fixed(*k),
            _ => Key::Flow,
        };
        c.local_ip = self.local_ip;
        if let Some(p) = self.dst_port {
            c.dst_port = p;
        }
        if let Some(df) = self.df {
            c.df = df;
        }
        if let Some(ttl) = self.ttl {
            c.ttl = ttl;
        }
        if let Some(csum) = self.csum {
            c.csum = csum;
        }
        Some(c)
    }
}

/// Parses `a.b.c.d/len` (host bits allowed, as `ip route` does).
pub fn parse_cidr4(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let len: u8 = l.parse().ok()?;
    (1..=32).contains(&len).then_some(())?;
    Some((a.parse().ok()?, len))
}

/// The `[dpdk]` table: how DPDK's EAL starts (once per process, before any DPDK port opens).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkEalConfig {
    /// EAL's lcore list (`-l`), e.g. "0"; default: the first worker's core. xvsd's workers are
    /// its own threads; EAL needs only its main lcore.
    #[serde(default)]
    pub cores: Option<String>,
    /// EAL memory in MiB (`-m`, default 256): queue and ring state; packet frames are the
    /// workers' pools.
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Run without hugepages (`--no-huge`).
    #[serde(default)]
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub no_huge: bool,
    /// Further EAL arguments, appended last.
    #[serde(default)]
    pub extra_args: Vec<String>,
}

fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/xvs")
}

fn default_workers() -> Vec<usize> {
    vec![0]
}

/// A configuration problem, named precisely.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown/missing/mistyped key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with line and column.
        message: String,
    },
    /// Any semantic problem.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// A port after validation: where it runs and what it forwards to.
#[derive(Debug, Clone)]
pub struct PlannedPort {
    /// The configuration.
    pub config: PortConfig,
    /// Index into `Config::workers`.
    pub worker: usize,
    /// io-fwd: the index (in `Config::ports`) of the peer port.
    pub peer: Option<usize>,
    /// Parsed MAC for taps.
    pub mac: Option<[u8; 6]>,
    /// DPDK: the queue this entry polls (a port with several receive queues is planned once per
    /// queue, each on its queue's worker); 0 for other port types.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub queue: u16,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The parsed file.
    pub config: Config,
    /// The ports, in file order.
    pub ports: Vec<PlannedPort>,
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` names the file in messages, and relative `pcap` paths of
    /// replay ports are taken relative to its directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for p in &mut config.ports {
            if let Some(pcap) = p.pcap.as_mut() {
                if pcap.is_relative() {
                    *pcap = dir.join(&*pcap);
                }
            }
        }
        Ok(config)
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Checks a Linux interface name: 1..=15 bytes, no '/', ':' or whitespace.
fn default_runtime_ports() -> u32 {
    2
}

/// True for a name Linux accepts for an interface.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

/// Validates `config` against itself and the cores this process may run on. Interface checks
/// that need the kernel are the daemon's (`exists` answers whether an interface exists).
pub fn plan(
    config: Config,
    online_cores: &[usize],
    exists: impl Fn(&str) -> bool,
) -> Result<Plan, ConfigError> {
    if !valid_ifname(&config.bridge) {
        return Err(invalid(format!(
            "bridge name {:?} is not a valid name",
            config.bridge
        )));
    }
    if config.workers.is_empty() {
        return Err(invalid("workers: at least one core is needed"));
    }
    let mut seen_cores = HashSet::new();
    for &c in &config.workers {
        if !seen_cores.insert(c) {
            return Err(invalid(format!("workers: core {c} is listed twice")));
        }
        if !online_cores.contains(&c) {
            return Err(invalid(format!(
                "workers: core {c} is not available to this process (available: {online_cores:?})"
            )));
        }
    }
    if config
        .frames_per_worker
        .is_some_and(|n| !(256..=1 << 22).contains(&n))
    {
        return Err(invalid("frames_per_worker must be between 256 and 4194304"));
    }
    // In openflow mode every port may come at run time (`xvs/add-port`, a CNI plugin).
    if config.ports.is_empty() && config.forwarding == ForwardingMode::IoFwd {
        return Err(invalid("no [[port]] configured"));
    }
    if config.runtime_ports > 256 {
        return Err(invalid("runtime_ports must be at most 256"));
    }
    if config.conntrack.max_connections == 0 {
        return Err(invalid("conntrack.max_connections must be at least 1"));
    }
    if config.conntrack.sweep_budget == 0 {
        return Err(invalid(
            "conntrack.sweep_budget must be at least 1 (expired connections would never go)",
        ));
    }
    check_dpdk_eal(&config)?;
    if config.forwarding == ForwardingMode::Openflow && config.workers.len() > 1 {
        let unassigned = config
            .ports
            .iter()
            .filter(|p| p.worker.is_none() && p.queue_workers.is_none())
            .count();
        if unassigned > 0 {
            return Err(invalid(
                "forwarding openflow with several workers: set `worker` on every port \
                 (a worker transmits only on the ports it polls; cross-worker output is not \
                 supported yet)",
            ));
        }
    }
    if (config.groups.is_some() || config.meters.is_some())
        && config.forwarding == ForwardingMode::IoFwd
    {
        return Err(invalid(
            "groups/meters need the OpenFlow pipeline, but forwarding is \"io-fwd\"",
        ));
    }
    if config.flows.is_some() && config.forwarding == ForwardingMode::IoFwd {
        return Err(invalid(
            "flows: a flow file needs the OpenFlow pipeline, but forwarding is \"io-fwd\", \
             which forwards without tables; remove `flows` or change `forwarding`",
        ));
    }
    let mut names = HashSet::new();
    let mut ofports = HashMap::new();
    for p in &config.ports {
        if !valid_ifname(&p.name) {
            return Err(invalid(format!(
                "port {:?}: not a valid interface name (1 to 15 characters, no '/', ':' or spaces)",
                p.name
            )));
        }
        if !names.insert(p.name.clone()) {
            return Err(invalid(format!(
                "port {}: the name is used by two ports",
                p.name
            )));
        }
        if p.ofport == 0 || p.ofport > OFPP_MAX {
            return Err(invalid(format!(
                "port {}: ofport {} is out of range (1 to {OFPP_MAX})",
                p.name, p.ofport
            )));
        }
        if let Some(other) = ofports.insert(p.ofport, p.name.clone()) {
            return Err(invalid(format!(
                "port {}: ofport {} is already used by port {other}",
                p.name, p.ofport
            )));
        }
        if let Some(w) = p.worker {
            if !config.workers.contains(&w) {
                return Err(invalid(format!(
                    "port {}: worker {w} is not one of workers {:?}",
                    p.name, config.workers
                )));
            }
        }
        let tunnel_opts = p.remote_ip.is_some()
            || p.key.is_some()
            || p.local_ip.is_some()
            || p.dst_port.is_some()
            || p.df.is_some()
            || p.ttl.is_some()
            || p.csum.is_some();
        if tunnel_opts && !p.kind.is_tunnel() {
            return Err(invalid(format!(
                "port {}: remote_ip, key, local_ip, dst_port, df, ttl and csum apply to geneve \
                 and vxlan ports only",
                p.name
            )));
        }
        if (p.uplink || p.pod_cidr.is_some()) && p.kind != PortType::Afxdp {
            return Err(invalid(format!(
                "port {}: uplink and pod_cidr apply to afxdp ports only",
                p.name
            )));
        }
        if let Some(c) = &p.pod_cidr {
            if !p.uplink {
                return Err(invalid(format!(
                    "port {}: pod_cidr is set but the port is not the uplink",
                    p.name
                )));
            }
            if parse_cidr4(c).is_none() {
                return Err(invalid(format!(
                    "port {}: pod_cidr {c:?} is not of the form a.b.c.d/len",
                    p.name
                )));
            }
        }
        if p.kind != PortType::Replay && (p.pcap.is_some() || p.loops.is_some() || p.paused) {
            return Err(invalid(format!(
                "port {}: pcap, loops and paused apply to replay ports only",
                p.name
            )));
        }
        if p.kind != PortType::Dpdk && has_dpdk_keys(p) {
            return Err(invalid(format!(
                "port {}: devargs, rx_queues, tx_queues, queue_workers, rx_descriptors, \
                 tx_descriptors and socket_id apply to dpdk ports only",
                p.name
            )));
        }
        match p.kind {
            PortType::Geneve | PortType::Vxlan => {
                if p.xdp_mode.is_some() || p.queue.is_some() || p.mac.is_some() || p.mtu.is_some() {
                    return Err(invalid(format!(
                        "port {}: xdp_mode, queue, mac and mtu do not apply to tunnel ports",
                        p.name
                    )));
                }
                if let Some(FlowOr::Word(w)) = &p.remote_ip {
                    if w != "flow" {
                        return Err(invalid(format!(
                            "port {}: remote_ip {w:?} is neither \"flow\" nor an IP address",
                            p.name
                        )));
                    }
                }
                match &p.key {
                    Some(FlowOr::Word(w)) if w != "flow" => {
                        return Err(invalid(format!(
                            "port {}: key {w:?} is neither \"flow\" nor a number",
                            p.name
                        )))
                    }
                    Some(FlowOr::Fixed(k)) if *k > 0x00ff_ffff => {
                        return Err(invalid(format!(
                            "port {}: key {k} does not fit in 24 bits",
                            p.name
                        )))
                    }
                    _ => {}
                }
                if let (Some(FlowOr::Fixed(r)), Some(l)) = (&p.remote_ip, p.local_ip) {
                    if r.is_ipv4() != l.is_ipv4() {
                        return Err(invalid(format!(
                            "port {}: remote_ip and local_ip are of different IP versions",
                            p.name
                        )));
                    }
                }
                if p.dst_port == Some(0) || p.ttl == Some(0) {
                    return Err(invalid(format!(
                        "port {}: dst_port and ttl must not be 0",
                        p.name
                    )));
                }
            }
            PortType::Afxdp => {
                if p.mac.is_some() || p.mtu.is_some() {
                    return Err(invalid(format!(
                        "port {}: mac and mtu apply to tap ports only; set them on the interface",
                        p.name
                    )));
                }
                if !exists(&p.name) {
                    return Err(invalid(format!(
                        "port {}: no such interface in this network namespace",
                        p.name
                    )));
                }
            }
            PortType::Dpdk => check_dpdk_port(&config, p)?,
            PortType::Replay | PortType::Null => check_in_memory_port(p)?,
            PortType::Tap => {
                if p.xdp_mode.is_some() || p.queue.is_some() {
                    return Err(invalid(format!(
                        "port {}: xdp_mode and queue apply to afxdp ports only",
                        p.name
                    )));
                }
                if exists(&p.name) {
                    return Err(invalid(format!(
                        "port {}: an interface with this name already exists; xvsd creates its tap ports",
                        p.name
                    )));
                }
                if let Some(m) = &p.mac {
                    match parse_mac(m) {
                        Some(mac) if mac[0] & 1 == 0 => {}
                        Some(_) => {
                            return Err(invalid(format!(
                                "port {}: mac {m} is a multicast address",
                                p.name
                            )))
                        }
                        None => {
                            return Err(invalid(format!(
                                "port {}: mac {m:?} is not of the form aa:bb:cc:dd:ee:ff",
                                p.name
                            )))
                        }
                    }
                }
                if let Some(mtu) = p.mtu {
                    if !(68..=65535).contains(&mtu) {
                        return Err(invalid(format!(
                            "port {}: mtu {mtu} is out of range (68 to 65535)",
                            p.name
                        )));
                    }
                }
            }
        }
    }

    let tunnels = config.ports.iter().filter(|p| p.kind.is_tunnel()).count();
    let uplinks: Vec<&PortConfig> = config.ports.iter().filter(|p| p.uplink).collect();
    if uplinks.len() > 1 {
        return Err(invalid(format!(
            "ports {} and {} are both marked uplink; one uplink is supported",
            uplinks[0].name, uplinks[1].name
        )));
    }
    if tunnels > 0 {
        if config.forwarding != ForwardingMode::Openflow {
            return Err(invalid(
                "tunnel ports need forwarding = \"openflow\"".to_string(),
            ));
        }
        let Some(up) = uplinks.first() else {
            return Err(invalid(
                "tunnel ports need an uplink: set `uplink = true` on the afxdp port that \
                 reaches the other nodes"
                    .to_string(),
            ));
        };
        let ports: HashSet<u16> = config
            .ports
            .iter()
            .filter_map(|p| p.tunnel_config().map(|c| c.dst_port))
            .collect();
        if ports.len() > 2 {
            return Err(invalid(format!(
                "tunnel ports use {} UDP destination ports; the uplink's XDP filter takes 2 at most",
                ports.len()
            )));
        }
        if config.workers.len() > 1 {
            let uw = up.worker;
            if config
                .ports
                .iter()
                .any(|p| !p.kind.is_tunnel() && p.worker != uw)
            {
                return Err(invalid(
                    "with tunnel ports and several workers, every port must run on the uplink's \
                     worker (cross-worker output is not supported yet)"
                        .to_string(),
                ));
            }
        }
    }

    let n = config.ports.len();
    if config.forwarding == ForwardingMode::IoFwd {
        if let Some(p) = config
            .ports
            .iter()
            .find(|p| p.rx_queues.is_some_and(|q| q > 1))
        {
            return Err(invalid(format!(
                "port {}: forwarding io-fwd pairs ports one queue each; several rx_queues need \
                 forwarding openflow",
                p.name
            )));
        }
    }
    if let Some(p) = config.ports.iter().find(|p| p.kind == PortType::Dpdk) {
        if !DPDK_ENABLED {
            return Err(invalid(format!(
                "port {}: type \"dpdk\" needs xvsd built with DPDK support \
                 (cargo build -p xvsd --features dpdk, with libdpdk-dev installed)",
                p.name
            )));
        }
    }
    if config.forwarding == ForwardingMode::Openflow {
        let mut planned = Vec::with_capacity(n);
        for p in &config.ports {
            let core = p.worker.unwrap_or(config.workers[0]);
            for (queue, core) in dpdk_queue_cores(p, core).into_iter().enumerate() {
                let worker = config.workers.iter().position(|&c| c == core).unwrap_or(0);
                planned.push(PlannedPort {
                    config: p.clone(),
                    worker,
                    peer: None,
                    mac: p.mac.as_deref().and_then(parse_mac),
                    queue: u16::try_from(queue).unwrap_or(0),
                });
            }
        }
        return Ok(Plan {
            config,
            ports: planned,
        });
    }

    // io-fwd: pair ports in file order; a pair runs on one worker (it shares the frame pool).
    if n % 2 != 0 {
        return Err(invalid(format!(
            "forwarding io-fwd pairs ports in file order, but {n} ports are configured; \
             add or remove one"
        )));
    }
    let mut planned = Vec::with_capacity(n);
    for (pair, chunk) in config.ports.chunks(2).enumerate() {
        let (a, b) = (&chunk[0], &chunk[1]);
        let core = match (a.worker, b.worker) {
            (Some(x), Some(y)) if x != y => {
                return Err(invalid(format!(
                    "ports {} and {} are an io-fwd pair and must run on one worker, \
                     but are set to workers {x} and {y}",
                    a.name, b.name
                )))
            }
            (Some(x), _) | (_, Some(x)) => x,
            (None, None) => config.workers[pair % config.workers.len()],
        };
        let worker = config.workers.iter().position(|&c| c == core).unwrap_or(0);
        for (i, p) in chunk.iter().enumerate() {
            let idx = pair * 2 + i;
            planned.push(PlannedPort {
                config: p.clone(),
                worker,
                peer: Some(idx ^ 1),
                mac: p.mac.as_deref().and_then(parse_mac),
                queue: 0,
            });
        }
    }
    Ok(Plan {
        config,
        ports: planned,
    })
}

// --- replay and null ports ---

/// Replay and null ports: no interface options; a replay port names a readable file and a
/// positive loop count. The capture itself is read (and its frames checked against the pool)
/// when the port opens.
fn check_in_memory_port(p: &PortConfig) -> Result<(), ConfigError> {
    let name = &p.name;
    if p.xdp_mode.is_some() || p.queue.is_some() || p.mac.is_some() || p.mtu.is_some() {
        return Err(invalid(format!(
            "port {name}: xdp_mode, queue, mac and mtu do not apply to {} ports",
            p.kind.name()
        )));
    }
    if p.kind == PortType::Null {
        return Ok(());
    }
    let Some(pcap) = &p.pcap else {
        return Err(invalid(format!(
            "port {name}: a replay port needs pcap = \"<file>\" (a classic pcap capture)"
        )));
    };
    if let Err(e) = std::fs::File::open(pcap) {
        return Err(invalid(format!(
            "port {name}: pcap {}: {e}",
            pcap.display()
        )));
    }
    if p.loops == Some(0) {
        return Err(invalid(format!(
            "port {name}: loops = 0 would receive nothing; leave it out to loop forever"
        )));
    }
    Ok(())
}

// --- DPDK ---

/// True when the binary can drive DPDK ports (built with the `dpdk` feature).
pub const DPDK_ENABLED: bool = cfg!(feature = "dpdk");

fn has_dpdk_keys(p: &PortConfig) -> bool {
    p.devargs.is_some()
        || p.rx_queues.is_some()
        || p.tx_queues.is_some()
        || p.queue_workers.is_some()
        || p.rx_descriptors.is_some()
        || p.tx_descriptors.is_some()
        || p.socket_id.is_some()
}

/// The cores polling each receive queue of `p` (one entry for non-DPDK ports).
fn dpdk_queue_cores(p: &PortConfig, default_core: usize) -> Vec<usize> {
    if p.kind != PortType::Dpdk {
        return vec![default_core];
    }
    let n = usize::from(p.rx_queues.unwrap_or(1).max(1));
    match &p.queue_workers {
        Some(w) if w.len() == n => w.clone(),
        _ => vec![default_core; n],
    }
}

fn check_dpdk_eal(config: &Config) -> Result<(), ConfigError> {
    let any = config.ports.iter().any(|p| p.kind == PortType::Dpdk);
    if let Some(d) = &config.dpdk {
        if !any {
            return Err(invalid("[dpdk] is set but no port has type \"dpdk\""));
        }
        if d.memory_mb.is_some_and(|m| !(16..=1 << 20).contains(&m)) {
            return Err(invalid("[dpdk] memory_mb must be between 16 and 1048576"));
        }
        if let Some(c) = &d.cores {
            if c.is_empty() || !c.chars().all(|c| c.is_ascii_digit() || ",-@()".contains(c)) {
                return Err(invalid(format!(
                    "[dpdk] cores {c:?} is not an EAL core list"
                )));
            }
        }
        if let Some(a) = d.extra_args.iter().find(|a| {
            [
                "--file-prefix",
                "--no-shconf",
                "--in-memory",
                "--vdev",
                "-a",
                "--allow",
                "-b",
            ]
            .iter()
            .any(|x| a.as_str() == *x || a.starts_with(&format!("{x}=")))
        }) {
            return Err(invalid(format!(
                "[dpdk] extra_args: {a:?} is set by xvsd (private runtime directory; devices \
                 come from each port's devargs)"
            )));
        }
    }
    Ok(())
}

fn check_dpdk_port(config: &Config, p: &PortConfig) -> Result<(), ConfigError> {
    let name = &p.name;
    if p.xdp_mode.is_some() || p.queue.is_some() || p.mac.is_some() || p.mtu.is_some() {
        return Err(invalid(format!(
            "port {name}: xdp_mode, queue, mac and mtu do not apply to dpdk ports"
        )));
    }
    let Some(devargs) = &p.devargs else {
        return Err(invalid(format!(
            "port {name}: a dpdk port needs devargs (a PCI address, or a vdev such as \
             \"net_af_xdp0,iface=eth0\")"
        )));
    };
    let (_, ethdev) =
        xvs_dpdk::devargs::parse(devargs).map_err(|m| invalid(format!("port {name}: {m}")))?;
    if let Some(other) = config.ports.iter().find(|o| {
        !std::ptr::eq(*o, p)
            && o.devargs
                .as_deref()
                .and_then(|d| xvs_dpdk::devargs::parse(d).ok())
                .is_some_and(|(_, e)| e == ethdev)
    }) {
        return Err(invalid(format!(
            "port {name}: device {ethdev} is also used by port {}",
            other.name
        )));
    }
    let rxq = p.rx_queues.unwrap_or(1);
    let txq = p.tx_queues.unwrap_or(rxq);
    if rxq == 0 || rxq > 64 || txq < rxq || txq > 64 {
        return Err(invalid(format!(
            "port {name}: rx_queues = {rxq}, tx_queues = {txq}: need 1 <= rx_queues <= \
             tx_queues <= 64"
        )));
    }
    for (what, n) in [
        ("rx_descriptors", p.rx_descriptors),
        ("tx_descriptors", p.tx_descriptors),
    ] {
        if let Some(n) = n {
            if !(64..=16384).contains(&n) {
                return Err(invalid(format!(
                    "port {name}: {what} = {n} is out of range (64 to 16384)"
                )));
            }
        }
    }
    if let Some(w) = &p.queue_workers {
        if w.len() != usize::from(rxq) {
            return Err(invalid(format!(
                "port {name}: queue_workers lists {} cores for {rxq} rx queues",
                w.len()
            )));
        }
        if let Some(c) = w.iter().find(|c| !config.workers.contains(c)) {
            return Err(invalid(format!(
                "port {name}: queue_workers: core {c} is not one of workers {:?}",
                config.workers
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    fn plan_str(s: &str) -> Result<Plan, ConfigError> {
        plan(parse(s)?, &[0, 1], |n| n.starts_with("veth"))
    }

    const GOOD: &str = r#"
        bridge = "br-int"
        run_dir = "/tmp/x"
        workers = [0]
        forwarding = "io-fwd"
        [[port]]
        name = "veth0"
        type = "afxdp"
        ofport = 1
        [[port]]
        name = "gw0"
        type = "tap"
        ofport = 2
        mac = "02:00:00:00:00:01"
    "#;

    #[test]
    fn good_config_plans_pairs() {
        let p = plan_str(GOOD).expect("plan");
        assert_eq!(p.ports.len(), 2);
        assert_eq!(p.ports[0].peer, Some(1));
        assert_eq!(p.ports[1].peer, Some(0));
        assert_eq!(p.ports[1].mac, Some([2, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn openflow_bridge_may_start_without_ports() {
        // Every Pod comes at run time (xvs/add-port); room for two runtime ports by default.
        let p = plan_str("bridge = \"br-int\"\nworkers = [0]\n").expect("plan");
        assert!(p.ports.is_empty());
        assert_eq!(p.config.runtime_ports, 2);
        let p = plan_str("bridge = \"br-int\"\nworkers = [0]\nruntime_ports = 16\n").expect("plan");
        assert_eq!(p.config.runtime_ports, 16);
        let e = plan_str("bridge = \"b\"\nworkers = [0]\nforwarding = \"io-fwd\"\n")
            .expect_err("io-fwd pairs configured ports");
        assert!(e.to_string().contains("no [[port]] configured"), "{e}");
        let e = plan_str("bridge = \"b\"\nworkers = [0]\nruntime_ports = 1000\n")
            .expect_err("too many");
        assert!(e.to_string().contains("runtime_ports"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("bridge = \"b\"\nbogus = 1\n").expect_err("must fail");
        let msg = e.to_string();
        assert!(msg.contains("unknown field `bogus`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn conntrack_table_is_read_and_checked() {
        let p = plan_str(&format!(
            "{GOOD}\n[conntrack]\nmax_connections = 1000\ntcp_seq_check = false\n"
        ))
        .expect("plan");
        assert_eq!(p.config.conntrack.max_connections, 1000);
        assert!(!p.config.conntrack.tcp_seq_check);
        assert_eq!(p.config.conntrack.sweep_budget, 4096);
        assert_eq!(
            plan_str(GOOD).expect("plan").config.conntrack,
            ConntrackConfig::default()
        );
        let e = parse(&format!("{GOOD}\n[conntrack]\nmax_conns = 5\n")).expect_err("unknown");
        assert!(e.to_string().contains("unknown field `max_conns`"), "{e}");
        let e = plan_str(&format!("{GOOD}\n[conntrack]\nmax_connections = 0\n")).expect_err("zero");
        assert!(e.to_string().contains("max_connections"), "{e}");
    }

    #[test]
    fn unknown_port_key_is_named() {
        let e = parse(
            "bridge = \"b\"\n[[port]]\nname = \"a\"\ntype = \"afxdp\"\nofport = 1\nspeed = 3\n",
        )
        .expect_err("must fail");
        assert!(e.to_string().contains("unknown field `speed`"), "{e}");
    }

    #[test]
    fn duplicate_ofport_is_named() {
        let s = GOOD.replace("ofport = 2", "ofport = 1");
        let e = plan_str(&s).expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "port gw0: ofport 1 is already used by port veth0"
        );
    }

    #[test]
    fn missing_interface_is_named() {
        let s = GOOD.replace("\"veth0\"", "\"nosuch0\"");
        let e = plan_str(&s).expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "port nosuch0: no such interface in this network namespace"
        );
    }

    #[test]
    fn tap_name_taken_is_named() {
        let s = GOOD.replace("\"gw0\"", "\"veth9\"");
        let e = plan_str(&s).expect_err("must fail");
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (from, to, needle) in [
            ("ofport = 1", "ofport = 0", "out of range"),
            ("workers = [0]", "workers = [7]", "core 7 is not available"),
            ("workers = [0]", "workers = [0, 0]", "listed twice"),
            ("02:00:00:00:00:01", "zz", "not of the form"),
            ("02:00:00:00:00:01", "01:00:00:00:00:01", "multicast"),
            ("\"afxdp\"", "\"vhost\"", "unknown variant `vhost`"),
        ] {
            let s = GOOD.replace(from, to);
            let e = plan_str(&s).expect_err(to);
            assert!(e.to_string().contains(needle), "{to}: {e}");
        }
    }

    #[test]
    fn meters_and_groups_need_the_openflow_pipeline() {
        let s = GOOD.replace(
            "forwarding = \"io-fwd\"",
            "forwarding = \"io-fwd\"\nmeters = \"m.txt\"",
        );
        let e = plan_str(&s).expect_err("io-fwd has no tables");
        assert!(e.to_string().contains("groups/meters"), "{e}");
        let ok = s.replace("forwarding = \"io-fwd\"", "forwarding = \"openflow\"");
        assert!(plan_str(&ok).is_ok());
    }

    #[test]
    fn odd_port_count_is_refused_for_io_fwd() {
        let s = GOOD
            .split("[[port]]\n        name = \"gw0\"")
            .next()
            .unwrap_or_default()
            .to_string();
        let e = plan_str(&s).expect_err("must fail");
        assert!(e.to_string().contains("pairs ports"), "{e}");
    }

    #[test]
    fn openflow_mode_takes_any_number_of_ports() {
        let s = GOOD.replace("forwarding = \"io-fwd\"", "forwarding = \"openflow\"");
        let s = s
            .split("[[port]]\n        name = \"gw0\"")
            .next()
            .unwrap_or_default()
            .to_string();
        let p = plan_str(&s).expect("plan");
        assert_eq!(p.ports.len(), 1);
        assert_eq!(p.ports[0].peer, None);
        let two = s.replace("workers = [0]", "workers = [0, 1]");
        let e = plan_str(&two).expect_err("must fail");
        assert!(e.to_string().contains("set `worker` on every port"), "{e}");
    }

    const TUNNELS: &str = r#"
        bridge = "br-int"
        run_dir = "/tmp/x"
        [[port]]
        name = "veth0"
        type = "afxdp"
        ofport = 1
        uplink = true
        pod_cidr = "10.244.1.0/24"
        [[port]]
        name = "tun0"
        type = "vxlan"
        ofport = 100
        remote_ip = "flow"
        key = "flow"
        [[port]]
        name = "gnv0"
        type = "geneve"
        ofport = 101
        remote_ip = "192.168.1.2"
        key = 77
        local_ip = "192.168.1.1"
        dst_port = 6082
        df = false
        ttl = 32
        csum = true
    "#;

    #[test]
    fn tunnel_ports_plan_with_their_options() {
        let p = plan_str(TUNNELS).expect("plan");
        let vx = p.ports[1].config.tunnel_config().expect("vxlan");
        assert_eq!(vx, TunnelConfig::flow_based(TunnelKind::Vxlan));
        let g = p.ports[2].config.tunnel_config().expect("geneve");
        assert_eq!(g.kind, TunnelKind::Geneve);
        assert_eq!(g.remote, Remote::Ip("192.168.1.2".parse().expect("ip")));
        assert_eq!(g.key, Key::Fixed(77));
        assert_eq!(g.local_ip, Some("192.168.1.1".parse().expect("ip")));
        assert_eq!((g.dst_port, g.df, g.ttl, g.csum), (6082, false, 32, true));
        assert!(p.ports[0].config.tunnel_config().is_none());
        assert_eq!(
            parse_cidr4("10.244.1.0/24"),
            Some((Ipv4Addr::new(10, 244, 1, 0), 24))
        );
    }

    #[test]
    fn bad_tunnel_configurations_are_named() {
        for (from, to, needle) in [
            ("uplink = true\n", "\n", "not the uplink"),
            (
                "uplink = true\n        pod_cidr = \"10.244.1.0/24\"\n",
                "\n",
                "need an uplink",
            ),
            ("key = 77", "key = 16777216", "does not fit in 24 bits"),
            (
                "key = \"flow\"",
                "key = \"flw\"",
                "neither \"flow\" nor a number",
            ),
            (
                "remote_ip = \"flow\"",
                "remote_ip = \"here\"",
                "neither \"flow\" nor an IP",
            ),
            ("ttl = 32", "ttl = 0", "must not be 0"),
            (
                "local_ip = \"192.168.1.1\"",
                "local_ip = \"fd00::1\"",
                "different IP versions",
            ),
            (
                "pod_cidr = \"10.244.1.0/24\"",
                "pod_cidr = \"10.244.1.0\"",
                "a.b.c.d/len",
            ),
            (
                "type = \"geneve\"",
                "type = \"gre\"",
                "unknown variant `gre`",
            ),
            (
                "uplink = true\n",
                "uplink = true\n        dst_port = 1\n",
                "apply to geneve and vxlan ports only",
            ),
        ] {
            let s = TUNNELS.replacen(from, to, 1);
            assert_ne!(s, TUNNELS, "{from}");
            let e = plan_str(&s).expect_err(to);
            assert!(e.to_string().contains(needle), "{to}: {e}");
        }
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("aa:bb:cc:dd:ee:ff"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:ff:00"), None);
        assert_eq!(parse_mac("aaa:bb:cc:dd:ee:ff"), None);
    }

    const REPLAY: &str = r#"
        bridge = "br-int"
        workers = [0]
        [[port]]
        name = "gen0"
        type = "replay"
        ofport = 1
        pcap = "traffic.pcap"
        loops = 5
        paused = true
        [[port]]
        name = "sink0"
        type = "null"
        ofport = 2
    "#;

    #[test]
    fn replay_and_null_ports_plan_with_their_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("traffic.pcap"), b"x").expect("write");
        let cfg = dir.path().join("xvsd.toml");
        let c = Config::parse(REPLAY, &cfg).expect("parse");
        // Relative to the configuration file.
        assert_eq!(c.ports[0].pcap, Some(dir.path().join("traffic.pcap")));
        let p = plan(c, &[0], |_| false).expect("plan");
        assert_eq!(p.ports.len(), 2);
        assert_eq!(p.ports[0].config.kind, PortType::Replay);
        assert_eq!(
            (p.ports[0].config.loops, p.ports[0].config.paused),
            (Some(5), true)
        );
        assert_eq!(p.ports[1].config.kind, PortType::Null);
        assert!(p.ports[0].config.tunnel_config().is_none());
        // Absolute paths stay; defaults: forever, not paused.
        let abs = dir.path().join("traffic.pcap").display().to_string();
        let s = REPLAY
            .replace("\"traffic.pcap\"", &format!("{abs:?}"))
            .replace("loops = 5\n", "")
            .replace("paused = true\n", "");
        let c = Config::parse(&s, Path::new("/elsewhere/xvsd.toml")).expect("parse");
        assert_eq!(c.ports[0].pcap.as_deref(), Some(Path::new(&abs)));
        let p = plan(c, &[0], |_| false).expect("plan");
        assert_eq!(
            (p.ports[0].config.loops, p.ports[0].config.paused),
            (None, false)
        );
    }

    #[test]
    fn bad_replay_and_null_settings_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("traffic.pcap"), b"x").expect("write");
        let cfg = dir.path().join("xvsd.toml");
        let try_plan = |s: &str| Config::parse(s, &cfg).and_then(|c| plan(c, &[0], |_| false));
        for (from, to, needle) in [
            ("pcap = \"traffic.pcap\"\n", "", "needs pcap = \"<file>\""),
            (
                "\"traffic.pcap\"",
                "\"missing.pcap\"",
                "missing.pcap: No such file",
            ),
            ("loops = 5", "loops = 0", "loops = 0 would receive nothing"),
            ("loops = 5", "loops = -1", "invalid value"),
            (
                "paused = true",
                "paused = true\n mtu = 1500",
                "do not apply to replay ports",
            ),
            (
                "type = \"null\"",
                "type = \"null\"\n loops = 2",
                "apply to replay ports only",
            ),
            (
                "type = \"null\"",
                "type = \"null\"\n queue = 1",
                "do not apply to null ports",
            ),
            (
                "type = \"null\"",
                "type = \"null\"\n devargs = \"net_null0\"",
                "apply to dpdk ports only",
            ),
            (
                "type = \"replay\"",
                "type = \"replay\"\n speed = 3",
                "unknown field `speed`",
            ),
        ] {
            let s = REPLAY.replace(from, to);
            assert_ne!(s, REPLAY, "{from}");
            let e = try_plan(&s).expect_err(to);
            assert!(e.to_string().contains(needle), "{to}: {e}");
        }
    }

    const DPDK: &str = r#"
        bridge = "br-int"
        workers = [0, 1]
        [dpdk]
        no_huge = true
        memory_mb = 128
        [[port]]
        name = "dp0"
        type = "dpdk"
        ofport = 1
        devargs = "net_af_packet0,iface=veth1"
        rx_queues = 2
        queue_workers = [1, 0]
        [[port]]
        name = "veth0"
        type = "afxdp"
        ofport = 2
        worker = 0
    "#;

    #[test]
    fn dpdk_ports_plan_one_entry_per_queue_or_say_what_is_missing() {
        match plan_str(DPDK) {
            Ok(p) => {
                assert_eq!((DPDK_ENABLED, xvs_dpdk::ENABLED), (true, true));
                let q: Vec<(u16, usize)> = p.ports.iter().map(|p| (p.queue, p.worker)).collect();
                assert_eq!(q, vec![(0, 1), (1, 0), (0, 0)]);
            }
            Err(e) => {
                assert_eq!((DPDK_ENABLED, xvs_dpdk::ENABLED), (false, false), "{e}");
                assert!(e.to_string().contains("needs xvsd built with DPDK"), "{e}");
            }
        }
    }

    #[test]
    fn bad_dpdk_settings_are_named() {
        for (from, to, needle) in [
            (
                "devargs = \"net_af_packet0,iface=veth1\"",
                "",
                "needs devargs",
            ),
            (
                "iface=veth1\"",
                "iface=veth1\"\n mtu = 1500",
                "do not apply to dpdk",
            ),
            (
                "\"net_af_packet0,iface=veth1\"",
                "\"eth0\"",
                "expected a PCI address",
            ),
            (
                "queue_workers = [1, 0]",
                "queue_workers = [1]",
                "lists 1 cores for 2",
            ),
            (
                "queue_workers = [1, 0]",
                "queue_workers = [1, 5]",
                "core 5 is not one",
            ),
            (
                "rx_queues = 2",
                "rx_queues = 2\n tx_queues = 1",
                "rx_queues <= tx_queues",
            ),
            ("memory_mb = 128", "memory_mb = 1", "memory_mb must be"),
            (
                "memory_mb = 128",
                "extra_args = [\"--file-prefix=x\"]",
                "is set by xvsd",
            ),
            (
                "worker = 0",
                "worker = 0\n devargs = \"net_ring0\"",
                "apply to dpdk ports only",
            ),
        ] {
            let s = DPDK.replace(from, to);
            let e = plan_str(&s).expect_err(to);
            assert!(e.to_string().contains(needle), "{to}: {e}");
        }
        let two = DPDK.replace(
            "name = \"veth0\"\n        type = \"afxdp\"",
            "name = \"dp1\"\n        type = \"dpdk\"\n        devargs = \"net_af_packet0,iface=x\"",
        );
        let e = plan_str(&two).expect_err("same device twice");
        assert!(e.to_string().contains("also used by port"), "{e}");
        let iofwd = DPDK.replace(
            "workers = [0, 1]",
            "workers = [0, 1]\nforwarding = \"io-fwd\"",
        );
        let e = plan_str(&iofwd).expect_err("io-fwd multi-queue");
        assert!(e.to_string().contains("one queue each"), "{e}");
        let no_port = format!("{GOOD}\n[dpdk]\nno_huge = true\n");
        let e = plan_str(&no_port).expect_err("[dpdk] without ports");
        assert!(e.to_string().contains("no port has type"), "{e}");
    }
}
