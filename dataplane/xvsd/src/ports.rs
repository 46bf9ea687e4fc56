//! Opening configured ports on their worker's frame pool.

use crate::config::{parse_cidr4, Plan, PlannedPort, PortType, XdpModeConfig};
use anyhow::{Context, Result};
use std::collections::HashMap;
use xvs_afxdp::{AfXdpConfig, AfXdpPort, UmemShare, XdpFilter, XdpMode, XdpProgram};
use xvs_engine::{EnginePort, BATCH};
use xvs_io::{FramePool, TapPort};

/// Kernel attachments that must outlive the ports using them: one XDP program per interface and
/// one UMEM registration per worker. Dropped after the workers' ports, which detaches the programs.
#[derive(Debug, Default)]
pub struct Attachments {
    programs: HashMap<String, XdpProgram>,
    umems: HashMap<usize, UmemShare>,
}

fn afxdp_config(p: &PlannedPort) -> AfXdpConfig {
    AfXdpConfig::new(&p.config.name, p.config.queue.unwrap_or(0))
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
    };
    Ok(EnginePort::new(c.ofport, io))
}
