//! `xvsd.toml`: parsing and validation.
//!
//! Everything that can be checked without touching an interface is checked here, so a bad file
//! makes the daemon exit before it attaches anything.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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
    /// How packets are forwarded.
    #[serde(default)]
    pub forwarding: ForwardingMode,
    /// Upper bound, in microseconds, of the sleep a worker takes when its ports are idle
    /// (0 = poll at 100 % CPU, the default, as OVS PMD threads do).
    #[serde(default)]
    pub pmd_sleep_max_us: u64,
    /// Frames in each worker's pool (4 KiB each); default: what the worker's ports can hold.
    #[serde(default)]
    pub frames_per_worker: Option<u32>,
    /// The ports.
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    /// DPDK's EAL, for ports of type `dpdk` (see [`DpdkEalConfig`]).
    #[serde(default)]
    pub dpdk: Option<DpdkEalConfig>,
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
    /// A DPDK poll-mode driver port (xvsd built with the `dpdk` feature): a PCI NIC or a vdev.
    Dpdk,
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
    /// Interface name in xvsd's network namespace.
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

    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
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
fn valid_ifname(name: &str) -> bool {
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
    if config.ports.is_empty() {
        return Err(invalid("no [[port]] configured"));
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
        if p.kind != PortType::Dpdk && has_dpdk_keys(p) {
            return Err(invalid(format!(
                "port {}: devargs, rx_queues, tx_queues, queue_workers, rx_descriptors, \
                 tx_descriptors and socket_id apply to dpdk ports only",
                p.name
            )));
        }
        match p.kind {
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
    fn unknown_key_is_named() {
        let e = parse("bridge = \"b\"\nbogus = 1\n").expect_err("must fail");
        let msg = e.to_string();
        assert!(msg.contains("unknown field `bogus`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
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
