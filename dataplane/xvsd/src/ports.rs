//! Opening configured ports on their worker's frame pool.

use crate::config::{PlannedPort, PortType};
use anyhow::Result;
use xvs_engine::EnginePort;
use xvs_io::FramePool;

/// Kernel attachments that outlive the ports using them (XDP programs, one per interface).
#[derive(Debug, Default)]
pub struct Attachments {}

/// Opens `p` for worker `worker`.
pub fn open(
    p: &PlannedPort,
    _pool: &mut FramePool,
    _att: &mut Attachments,
    _worker: usize,
) -> Result<EnginePort> {
    match p.config.kind {
        PortType::Afxdp => anyhow::bail!("afxdp ports: backend not wired yet"),
        PortType::Tap => anyhow::bail!("tap ports: backend not wired yet"),
    }
}
