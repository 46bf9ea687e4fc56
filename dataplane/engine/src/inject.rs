//! Packets the control side hands to a worker to transmit (OpenFlow PACKET_OUT): one
//! single-producer single-consumer ring per worker, filled by the OpenFlow server, drained by
//! the worker at the start of each iteration.
//!
//! # Thread safety
//! `rtrb` rings are wait-free for one producer and one consumer. An [`Injection`] is plain
//! data carried by value in the ring's preallocated slots, so the worker neither allocates
//! nor frees memory to take one.

use xvs_flowtable::datapath::DpAction;

/// Largest packet an injection carries.
pub const INJECT_MAX_LEN: usize = 3072;
/// Most datapath actions an injection carries.
pub const INJECT_MAX_ACTIONS: usize = 32;
/// Injections a worker takes per iteration.
pub const INJECT_BURST: usize = 32;
/// Slots of a worker's ring.
pub const INJECT_QUEUE: usize = 128;

/// A packet and the datapath actions to execute on it (outputs name OpenFlow ports; the
/// worker transmits only on its own ports).
#[derive(Clone, Copy)]
pub struct Injection {
    /// OpenFlow port the packet comes from (for header parsing and `in_port` semantics).
    pub in_port: u32,
    len: u16,
    n_actions: u8,
    data: [u8; INJECT_MAX_LEN],
    actions: [DpAction; INJECT_MAX_ACTIONS],
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection")
            .field("in_port", &self.in_port)
            .field("len", &self.len)
            .field("actions", &self.actions())
            .finish()
    }
}

impl Injection {
    /// An injection of `data` with `actions`; `None` when either is too long.
    pub fn new(in_port: u32, data: &[u8], actions: &[DpAction]) -> Option<Self> {
        if data.len() > INJECT_MAX_LEN || actions.len() > INJECT_MAX_ACTIONS {
            return None;
        }
        let mut i = Injection {
            in_port,
            len: data.len() as u16,
            n_actions: actions.len() as u8,
            data: [0; INJECT_MAX_LEN],
            actions: [DpAction::PopVlan; INJECT_MAX_ACTIONS],
        };
        i.data[..data.len()].copy_from_slice(data);
        i.actions[..actions.len()].copy_from_slice(actions);
        Some(i)
    }

    /// The packet.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len).min(INJECT_MAX_LEN)]
    }

    /// The actions.
    pub fn actions(&self) -> &[DpAction] {
        &self.actions[..usize::from(self.n_actions).min(INJECT_MAX_ACTIONS)]
    }
}

/// The control side's end of a worker's injection ring.
pub type InjectProducer = rtrb::Producer<Injection>;
/// The worker's end.
pub type InjectConsumer = rtrb::Consumer<Injection>;

/// A new injection ring for one worker.
pub fn inject_queue() -> (InjectProducer, InjectConsumer) {
    rtrb::RingBuffer::new(INJECT_QUEUE)
}
