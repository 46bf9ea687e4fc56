//! PACKET_OUT: the control side translates the packet-out's actions against the current
//! tables (so `output:TABLE`, `resubmit` and `set_field` work as for any packet) and pushes
//! the packet with the resulting datapath actions onto the injection ring of every worker
//! that owns one of its output ports. Workers take them between bursts, without locks or
//! allocation (`xvs_engine::inject`).

use std::collections::HashMap;
use xvs_engine::inject::{InjectProducer, Injection};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::pipeline::PipelineSnapshot;
use xvs_flowtable::translate::{translate_packet_out, TranslateScratch, Translation};
use xvs_flowtable::FieldId;
use xvs_openflow::{OfpError, PacketOut};
use xvs_packet::FlowKey;

use super::switch::PortInfo;

/// Key words before the packet fields: metadata a packet-out's match may set (registers,
/// metadata, tunnel fields), overlaid on the parsed packet.
const METADATA_WORDS: usize = 26;

/// The OpenFlow server's side of the workers' injection rings.
pub struct PacketOutSender {
    injectors: Vec<InjectProducer>,
    worker_of_port: HashMap<u32, usize>,
    scratch: TranslateScratch,
    out: Translation,
    /// Packet-outs lost because a worker's ring was full.
    pub dropped: u64,
}

impl std::fmt::Debug for PacketOutSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketOutSender")
            .field("workers", &self.injectors.len())
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl PacketOutSender {
    /// A sender over one ring per worker (in worker order).
    pub fn new(injectors: Vec<InjectProducer>, ports: &[PortInfo]) -> Self {
        PacketOutSender {
            injectors,
            worker_of_port: ports.iter().map(|p| (p.ofport, p.worker)).collect(),
            scratch: TranslateScratch::new(),
            out: Translation::new(),
            dropped: 0,
        }
    }

    /// Declares the tunnel ports: an output to one (e.g. a packet-out routed to a remote
    /// Node) translates to an encapsulation, as in the workers.
    pub fn set_tunnel_ports(&mut self, ports: &[u32]) {
        self.scratch.set_tunnel_ports(ports);
    }

    /// Follows the ports after one was added or removed.
    pub fn set_ports(&mut self, ports: &[PortInfo]) {
        self.worker_of_port = ports.iter().map(|p| (p.ofport, p.worker)).collect();
    }

    /// Executes `po` on the tables of `snap`.
    pub fn send(
        &mut self,
        snap: &PipelineSnapshot,
        po: &PacketOut,
        now: u64,
    ) -> Result<(), OfpError> {
        let (in_port, _) = po.match_.get(FieldId::IN_PORT_OXM);
        let in_port = in_port as u32;
        let mut key = FlowKey::ZERO;
        xvs_packet::extract(&po.data, in_port, &mut key);
        let (value, mask) = (po.match_.value(), po.match_.mask());
        for w in 0..METADATA_WORDS.min(key.words.len()) {
            key.words[w] = (key.words[w] & !mask.words[w]) | (value.words[w] & mask.words[w]);
        }
        translate_packet_out(
            snap,
            &key,
            &po.actions,
            now,
            &mut self.scratch,
            &mut self.out,
        );
        let mut targets: Vec<usize> = self
            .out
            .actions
            .iter()
            .flat_map(|a| match a {
                DpAction::Output(p) => self.worker_of_port.get(p).copied().into_iter().collect(),
                // Encapsulated by whichever worker holds the uplink (the others skip it).
                DpAction::TunnelPush(_) => (0..self.injectors.len()).collect(),
                _ => Vec::new(),
            })
            .collect();
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            // Dropped by the actions (or output only to unknown ports), as OVS would.
            return Ok(());
        }
        let inj =
            Injection::new(in_port, &po.data, &self.out.actions).ok_or(OfpError::BAD_PACKET)?;
        for w in targets {
            let pushed = self
                .injectors
                .get_mut(w)
                .is_some_and(|q| q.push(inj).is_ok());
            if !pushed {
                self.dropped += 1;
            }
        }
        Ok(())
    }
}
