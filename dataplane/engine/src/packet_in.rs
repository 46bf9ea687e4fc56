//! Packet-ins from a worker to the OpenFlow server: fixed-size records on a bounded
//! single-producer single-consumer ring per worker (`rtrb`, preallocated: pushing neither
//! locks nor allocates; a full ring is a counted drop, never a wait).

use xvs_packet::FlowKey;

/// Bytes of packet a record carries; longer packets are truncated (the record keeps the full
/// length, as a packet-in with `max_len` does).
pub const MAX_DATA: usize = 2048;
/// Bytes of `controller(userdata=...)` a record carries; longer userdata is not delivered
/// (counted as dropped).
pub const MAX_USERDATA: usize = 256;
/// Bytes of encoded actions a paused packet-in's continuation carries.
pub const MAX_RESUME: usize = 1024;
/// Records in flight per worker.
pub const QUEUE: usize = 256;

/// One packet-in, as the worker saw it.
#[derive(Clone, Debug)]
pub struct PacketInRecord {
    /// The packet's length on the wire.
    pub total_len: u32,
    /// Bytes of `data` in use (at most the controller action's `max_len`).
    pub len: u16,
    /// The packet (its first `len` bytes).
    pub data: [u8; MAX_DATA],
    /// Table of the flow with the controller action.
    pub table: u8,
    /// Cookie of that flow.
    pub cookie: u64,
    /// `OFPR_*` reason code.
    pub reason: u8,
    /// `controller(id=N)`: the connections with this controller id (0: the default).
    pub controller_id: u16,
    /// `controller(meter_id=N)`, 0 for none.
    pub meter_id: u32,
    /// The working key at the controller action (registers, metadata, ct fields, in_port).
    pub key: FlowKey,
    /// Bytes of `userdata` in use.
    pub userdata_len: u16,
    /// `controller(userdata=...)`.
    pub userdata: [u8; MAX_USERDATA],
    /// `controller(pause)` with a continuation: the actions after the pause are in `resume`.
    pub paused: bool,
    /// Bytes of `resume` in use.
    pub resume_len: u16,
    /// The paused flow's remaining actions, encoded as OpenFlow actions.
    pub resume: [u8; MAX_RESUME],
    /// The paused flow's `goto_table`, if it had one.
    pub resume_goto: Option<u8>,
}

impl PacketInRecord {
    /// The packet bytes.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len).min(MAX_DATA)]
    }

    /// The encoded actions of the continuation.
    pub fn resume(&self) -> &[u8] {
        &self.resume[..usize::from(self.resume_len).min(MAX_RESUME)]
    }

    /// The userdata bytes.
    pub fn userdata(&self) -> &[u8] {
        &self.userdata[..usize::from(self.userdata_len).min(MAX_USERDATA)]
    }
}

/// The worker's end of its packet-in ring.
pub type PacketInProducer = rtrb::Producer<PacketInRecord>;
/// The OpenFlow server's end of a worker's packet-in ring.
pub type PacketInConsumer = rtrb::Consumer<PacketInRecord>;

/// A packet-in ring of [`QUEUE`] records.
pub fn ring() -> (PacketInProducer, PacketInConsumer) {
    rtrb::RingBuffer::new(QUEUE)
}
