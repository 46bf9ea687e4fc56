//! Opening configured ports on their worker's frame pool.

use crate::config::{parse_cidr4, Plan, PlannedPort, PortType, XdpModeConfig};
use anyhow::{Context, Result};
use std::collections::HashMap;
use xvs_afxdp::{AfXdpConfig, AfXdpError, AfXdpPort, UmemShare, XdpFilter, XdpMode, XdpProgram};
use xvs_engine::{EnginePort, BATCH};
use xvs_io::{FramePool, NullPort, ReplayGate, ReplayPort, TapPort};

/// Kernel attachments that must outlive the ports using them: one XDP program per interface and
/// one UMEM registration per worker. Dropped after the workers' ports, which detaches the programs.
#[derive(Debug, Default)]
pub struct Attachments {
    programs: HashMap<String, XdpProgram>,
    umems: HashMap<usize, UmemShare>,
    /// Replay ports' start/stop gates by port name (`xvs/replay-start`, `xvs/replay-stop`).
    replay_gates: Vec<(String, ReplayGate)>,
    /// DPDK devices by port name, opened at their first queue, started by `start_dpdk`.
    #[cfg(feature = "dpdk")]
    dpdk: HashMap<String, xvs_dpdk::DpdkDevice>,
}

fn afxdp_config(p: &PlannedPort) -> AfXdpConfig {
    AfXdpConfig::new(&p.config.name, p.config.queue.unwrap_or(0))
}

impl Attachments {
    /// Attaches the XDP program to `ifname` (auto mode: native, else generic), as for an
    /// `afxdp` port of the configuration. Fails if one is attached already.
    pub fn attach_program(&mut self, ifname: &str) -> Result<()> {
        if self.programs.contains_key(ifname) {
            anyhow::bail!("{ifname}: an XDP program of xvsd is attached already");
        }
        let prog = XdpProgram::attach(ifname, XdpMode::Auto)?;
        self.programs.insert(ifname.to_string(), prog);
        Ok(())
    }

    /// Opens an AF_XDP socket on `ifname` queue 0, on worker `worker`'s UMEM (its pool is
    /// `pool`), with the configuration's defaults; the program must be attached. Runs on the
    /// worker's thread, so a bind refused because the queue's last socket is still going
    /// away is not retried here (that would sleep in the worker): it fails with
    /// [`AfXdpError::is_queue_busy`] and the caller retries.
    pub fn open_afxdp(
        &mut self,
        ifname: &str,
        worker: usize,
        pool: &mut FramePool,
    ) -> std::result::Result<AfXdpPort, Box<AfXdpError>> {
        let prog = self
            .programs
            .get_mut(ifname)
            .ok_or_else(|| AfXdpError::Config(format!("{ifname}: no XDP program attached")))
            .map_err(Box::new)?;
        let umem = self.umems.entry(worker).or_default();
        let mut cfg = AfXdpConfig::new(ifname, 0);
        cfg.bind_retries = 0;
        AfXdpPort::open(prog, &cfg, pool, umem).map_err(Box::new)
    }

    /// Detaches `ifname`'s XDP program (after its sockets are closed), if xvsd attached one.
    pub fn detach_program(&mut self, ifname: &str) {
        self.programs.remove(ifname);
    }
}

/// Frames a worker's pool needs for an AF_XDP port added at run time.
pub fn runtime_port_frames() -> usize {
    AfXdpConfig::new("runtime", 0).frames_needed() + BATCH
}

/// Frames a worker's pool needs for `ports`: what every AF_XDP socket can hold, plus a burst per
/// port in flight through the engine.
pub fn frames_needed<'a>(ports: impl Iterator<Item = &'a PlannedPort>) -> usize {
    ports
        .map(|p| match p.config.kind {
            PortType::Afxdp if p.config.uplink => {
                afxdp_config(p).frames_needed() + BATCH + crate::underlay::PARKED_FRAMES_MAX
            }
            PortType::Afxdp => afxdp_config(p).frames_needed() + BATCH,
            PortType::Tap => 2 * BATCH,
            // Tunnel ports have no queues: their packets use the uplink's frames.
            PortType::Geneve | PortType::Vxlan => 0,
            PortType::Dpdk => dpdk::port_config(p).frames_needed_per_queue() + BATCH,
            // A replayed burst is in the engine until the end of the iteration.
            PortType::Replay => 2 * BATCH,
            PortType::Null => 0,
        })
        .sum()
}

/// The uplink's XDP filter: the tunnels' UDP ports and the Pod CIDR go to xvs, the rest of the
/// node's traffic to the kernel.
pub fn uplink_filter(plan: &Plan, uplink: &PlannedPort) -> XdpFilter {
    let mut udp: Vec<u16> = plan
        .ports
        .iter()
        .filter_map(|p| p.config.tunnel_config().map(|c| c.dst_port))
        .collect();
    udp.sort_unstable();
    udp.dedup();
    XdpFilter::Select {
        tunnel_port: udp.first().copied(),
        tunnel_port2: udp.get(1).copied(),
        pod_cidr4: uplink.config.pod_cidr.as_deref().and_then(parse_cidr4),
    }
}

/// Opens `p` for worker `worker`, whose pool is `pool`; an uplink gets `filter`.
pub fn open(
    p: &PlannedPort,
    pool: &mut FramePool,
    att: &mut Attachments,
    worker: usize,
    filter: Option<&XdpFilter>,
) -> Result<EnginePort> {
    let c = &p.config;
    let io: Box<dyn xvs_io::PortIo> = match c.kind {
        PortType::Afxdp => {
            let mode = match c.xdp_mode.unwrap_or_default() {
                XdpModeConfig::Auto => XdpMode::Auto,
                XdpModeConfig::Native => XdpMode::Native,
                XdpModeConfig::Generic => XdpMode::Generic,
            };
            if !att.programs.contains_key(&c.name) {
                let mut prog = XdpProgram::attach(&c.name, mode)?;
                if let Some(f) = filter {
                    prog.set_filter(f)?;
                }
                att.programs.insert(c.name.clone(), prog);
            }
            let prog = att
                .programs
                .get_mut(&c.name)
                .context("XDP program vanished")?;
            let umem = att.umems.entry(worker).or_default();
            Box::new(AfXdpPort::open(prog, &afxdp_config(p), pool, umem)?)
        }
        PortType::Tap => Box::new(TapPort::create(&c.name, p.mac, c.mtu)?),
        PortType::Geneve | PortType::Vxlan => {
            anyhow::bail!("port {}: tunnel ports have no queues to open", c.name)
        }
        PortType::Dpdk => dpdk::open_queue(p, pool, att)?,
        PortType::Replay => {
            let path = c
                .pcap
                .as_deref()
                .context("a replay port needs a pcap file")?;
            // Flattened to one line: the io errors already carry their causes in their text.
            let bad = |e: xvs_io::ReplayError| anyhow::anyhow!("pcap {}: {e}", path.display());
            let mut port = ReplayPort::from_pcap_loops(&c.name, path, c.loops).map_err(bad)?;
            port.check_fits(pool).map_err(bad)?;
            let gate = port.gate();
            if !c.paused {
                gate.start();
            }
            att.replay_gates.push((c.name.clone(), gate));
            Box::new(port)
        }
        PortType::Null => Box::new(NullPort::new(&c.name)),
    };
    Ok(EnginePort::new(c.ofport, io))
}

/// DPDK ports: EAL once per process, one device per port, one queue per (port, queue) entry.
pub mod dpdk {
    use super::Attachments;
    use crate::config::{Plan, PlannedPort, PortType};
    #[cfg(not(feature = "dpdk"))]
    use anyhow::bail;
    use anyhow::Result;
    use xvs_dpdk::DpdkPortConfig;
    use xvs_io::FramePool;

    /// The backend's view of a configured port.
    pub fn port_config(p: &PlannedPort) -> DpdkPortConfig {
        let c = &p.config;
        let mut d = DpdkPortConfig::new(&c.name, c.devargs.as_deref().unwrap_or_default());
        d.rx_queues = c.rx_queues.unwrap_or(1);
        d.tx_queues = c.tx_queues.unwrap_or(d.rx_queues);
        d.rx_descriptors = c.rx_descriptors.unwrap_or(d.rx_descriptors);
        d.tx_descriptors = c.tx_descriptors.unwrap_or(d.tx_descriptors);
        d.socket_id = c.socket_id;
        d
    }

    /// Cleans EAL up when dropped (after every DPDK device is closed).
    #[derive(Debug)]
    pub struct EalGuard {
        #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
        started: bool,
    }

    impl Drop for EalGuard {
        fn drop(&mut self) {
            #[cfg(feature = "dpdk")]
            if self.started {
                if let Err(e) = xvs_dpdk::Eal::cleanup() {
                    eprintln!("xvsd: {e}");
                }
            }
        }
    }

    /// Starts EAL when the configuration has DPDK ports, with every port's device.
    pub fn start_eal(plan: &Plan) -> Result<EalGuard> {
        let devices: Vec<String> = plan
            .config
            .ports
            .iter()
            .filter(|p| p.kind == PortType::Dpdk)
            .filter_map(|p| p.devargs.clone())
            .collect();
        if devices.is_empty() {
            return Ok(EalGuard { started: false });
        }
        #[cfg(feature = "dpdk")]
        {
            let d = plan.config.dpdk.clone().unwrap_or_default();
            let cfg = xvs_dpdk::EalConfig {
                cores: d
                    .cores
                    .unwrap_or_else(|| plan.config.workers[0].to_string()),
                memory_mb: d.memory_mb.unwrap_or(256),
                no_huge: d.no_huge,
                devices,
                extra_args: d.extra_args,
            };
            xvs_dpdk::Eal::init(&cfg)?;
            Ok(EalGuard { started: true })
        }
        #[cfg(not(feature = "dpdk"))]
        bail!("this xvsd was built without DPDK support (cargo build -p xvsd --features dpdk)")
    }

    /// Opens queue `p.queue` of `p`'s device on the worker whose pool is `pool`.
    #[cfg(feature = "dpdk")]
    pub fn open_queue(
        p: &PlannedPort,
        pool: &mut FramePool,
        att: &mut Attachments,
    ) -> Result<Box<dyn xvs_io::PortIo>> {
        use anyhow::Context;
        let name = &p.config.name;
        if !att.dpdk.contains_key(name) {
            let eal = xvs_dpdk::Eal::get().context("DPDK EAL is not running")?;
            let dev = xvs_dpdk::DpdkDevice::open(eal, &port_config(p))?;
            if p.config.rx_queues.unwrap_or(1) > 1 && !dev.rss() {
                eprintln!(
                    "xvsd: port {name}: the {} driver has no RSS; its queues receive \
                     whatever the device puts on them",
                    dev.driver()
                );
            }
            att.dpdk.insert(name.clone(), dev);
        }
        let dev = att.dpdk.get(name).context("DPDK device vanished")?;
        Ok(Box::new(dev.queue(p.queue, pool)?))
    }

    #[cfg(not(feature = "dpdk"))]
    pub fn open_queue(
        p: &PlannedPort,
        _pool: &mut FramePool,
        _att: &mut Attachments,
    ) -> Result<Box<dyn xvs_io::PortIo>> {
        bail!(
            "port {}: this xvsd was built without DPDK support (cargo build -p xvsd --features dpdk)",
            p.config.name
        )
    }

    /// `dpdk/show`: every DPDK device's `rte_eth_stats` (device and per queue) and its non-zero
    /// xstats, as the worker polling queue 0 last published them.
    pub fn show(att: &Attachments) -> String {
        #[cfg(feature = "dpdk")]
        {
            use std::fmt::Write;
            let mut s = String::new();
            let mut devs: Vec<_> = att.dpdk.iter().collect();
            devs.sort_by(|a, b| a.0.cmp(b.0));
            for (name, dev) in devs {
                let e = dev.stats();
                let _ = writeln!(
                    s,
                    "{name}: port {} driver {} rss {}",
                    dev.port_id(),
                    dev.driver(),
                    if dev.rss() { "on" } else { "off" }
                );
                let _ = writeln!(
                    s,
                    "  rx packets:{} bytes:{} missed:{} errors:{} nombuf:{}",
                    e.ipackets, e.ibytes, e.imissed, e.ierrors, e.rx_nombuf
                );
                let _ = writeln!(
                    s,
                    "  tx packets:{} bytes:{} errors:{}",
                    e.opackets, e.obytes, e.oerrors
                );
                for q in 0..usize::from(dev.queues()).min(e.q_ipackets.len()) {
                    let _ = writeln!(
                        s,
                        "  queue {q}: rx packets:{} tx packets:{} rx errors:{}",
                        e.q_ipackets[q], e.q_opackets[q], e.q_errors[q]
                    );
                }
                for (n, v) in dev.xstats() {
                    if v != 0 {
                        let _ = writeln!(s, "  {n}: {v}");
                    }
                }
            }
            if s.is_empty() {
                s.push_str("no DPDK ports\n");
            }
            s
        }
        #[cfg(not(feature = "dpdk"))]
        {
            let _ = att;
            "this xvsd was built without DPDK support\n".to_string()
        }
    }

    /// Starts every DPDK device (all their queues are set up by now).
    pub fn start_all(att: &Attachments) -> Result<()> {
        #[cfg(feature = "dpdk")]
        for dev in att.dpdk.values() {
            dev.start()?;
        }
        #[cfg(not(feature = "dpdk"))]
        let _ = att;
        Ok(())
    }
}

/// `xvs/replay-start [port...]` and `xvs/replay-stop [port...]`: starts or holds the named
/// replay ports (all of them without names); a stopped port resumes where it stopped.
pub fn replay_command(att: &Attachments, start: bool, names: &[String]) -> Result<String, String> {
    if att.replay_gates.is_empty() {
        return Err("no replay ports".to_string());
    }
    if let Some(n) = names
        .iter()
        .find(|n| !att.replay_gates.iter().any(|(name, _)| name == *n))
    {
        return Err(format!("{n}: no such replay port"));
    }
    let mut out = String::new();
    for (name, gate) in &att.replay_gates {
        if names.is_empty() || names.contains(name) {
            if start {
                gate.start();
            } else {
                gate.stop();
            }
            out.push_str(&format!(
                "{name}: {}\n",
                if start { "started" } else { "stopped" }
            ));
        }
    }
    Ok(out)
}
