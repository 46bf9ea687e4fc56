//! Output to a port that another worker polls: the packet is copied into a single-producer
//! single-consumer ring from the sending worker to the polling one, which copies it into a
//! frame of its own pool at the start of its next iteration and transmits it.
//!
//! Each worker has its own frame pool (an AF_XDP socket can only transmit frames of its own
//! UMEM), so a frame cannot change hands: the bytes are copied twice (into the ring and out
//! of it). The ring is a preallocated byte ring (`rtrb`) of records (port, length, packet),
//! written and read in place through its chunk API, so neither side allocates, locks or
//! makes a syscall; a full ring drops the packet,
//! counted by the sender as [`DropReason::RemotePort`](crate::DropReason::RemotePort).
//!
//! Which worker polls a port is looked up on the slow path (when a cache miss is
//! translated) in the [`PortDirectory`]; a worker that adds or removes a port bumps the
//! directory's generation, and every worker flushes its caches when it sees it move, so
//! cached outputs never name a port's old owner for longer than one iteration.

use crate::counters::WorkerShared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest packet handed over (a frame of the default pool).
pub const HANDOFF_MAX_LEN: usize = xvs_io::DEFAULT_FRAME_SIZE as usize;
/// Bytes of the ring from one worker to another (about 7,000 small packets, 340 of 1,500
/// bytes).
pub const HANDOFF_BYTES: usize = 512 * 1024;
/// Packets a worker takes from one peer's ring per iteration.
pub const HANDOFF_BURST: usize = 64;
/// A record's header: the OpenFlow port (4 bytes) and the packet's length (2), big-endian.
const RECORD_HEADER: usize = 6;

/// Which worker polls which port, for every worker of the daemon.
#[derive(Debug)]
pub struct PortDirectory {
    workers: Vec<Arc<WorkerShared>>,
    /// Bumped (Release) by a worker after it published a changed port list.
    generation: AtomicU64,
}

impl PortDirectory {
    /// The index of the worker polling `ofport` (slow path: reads every worker's published
    /// port list).
    pub fn owner(&self, ofport: u32) -> Option<usize> {
        self.workers
            .iter()
            .position(|w| w.ports.load().iter().any(|p| p.ofport == ofport))
    }

    /// The current generation (Acquire: a worker that sees it move also sees the port lists
    /// published before it).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// One worker's ends of the handoff rings: a producer to every other worker, a consumer from
/// every other worker, and the directory.
#[derive(Debug)]
pub struct Handoff {
    /// Index = destination worker; `None` for the worker itself.
    outgoing: Vec<Option<rtrb::Producer<u8>>>,
    incoming: Vec<rtrb::Consumer<u8>>,
    directory: Arc<PortDirectory>,
    /// Where a packet that wraps around a ring's end is put together.
    scratch: Box<[u8; HANDOFF_MAX_LEN]>,
    /// The directory generation the worker's caches were built with.
    pub(crate) seen: u64,
}

impl Handoff {
    /// The directory shared by every worker.
    pub fn directory(&self) -> &Arc<PortDirectory> {
        &self.directory
    }

    /// Copies `data` into the ring towards `worker`, for its port `ofport`. False when the
    /// ring is full, the packet longer than [`HANDOFF_MAX_LEN`], or `worker` unknown.
    pub fn send(&mut self, worker: usize, ofport: u32, data: &[u8]) -> bool {
        let Some(Some(tx)) = self.outgoing.get_mut(worker) else {
            return false;
        };
        if data.len() > HANDOFF_MAX_LEN {
            return false;
        }
        // One chunk per record, committed whole: the reader never sees half a packet.
        let Ok(mut chunk) = tx.write_chunk(RECORD_HEADER + data.len()) else {
            return false;
        };
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&ofport.to_be_bytes());
        header[4..].copy_from_slice(&(data.len() as u16).to_be_bytes());
        let (a, b) = chunk.as_mut_slices();
        write_split(a, b, 0, &header);
        write_split(a, b, RECORD_HEADER, data);
        chunk.commit_all();
        true
    }

    /// Hands waiting packets (at most [`HANDOFF_BURST`] per peer) to `deliver`, in order
    /// per peer, with a scratch buffer for a packet that wraps around the ring's end.
    /// Returns how many there were.
    pub fn receive(&mut self, mut deliver: impl FnMut(u32, &[u8])) -> usize {
        let mut n = 0;
        let wrapped = &mut self.scratch;
        for rx in &mut self.incoming {
            let mut taken = 0;
            while taken < HANDOFF_BURST && rx.slots() >= RECORD_HEADER {
                let Ok(head) = rx.read_chunk(RECORD_HEADER) else {
                    break;
                };
                let mut header = [0u8; RECORD_HEADER];
                let (a, b) = head.as_slices();
                for (dst, src) in header.iter_mut().zip(a.iter().chain(b)) {
                    *dst = *src;
                }
                head.commit_all();
                let ofport = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
                // The writer committed header and packet together.
                let Ok(body) = rx.read_chunk(len) else {
                    break;
                };
                let (a, b) = body.as_slices();
                if b.is_empty() {
                    deliver(ofport, a);
                } else {
                    let len = len.min(HANDOFF_MAX_LEN);
                    let (head, tail) = wrapped[..len].split_at_mut(a.len().min(len));
                    head.copy_from_slice(&a[..head.len()]);
                    let rest = tail.len().min(b.len());
                    tail[..rest].copy_from_slice(&b[..rest]);
                    deliver(ofport, &wrapped[..len]);
                }
                body.commit_all();
                taken += 1;
            }
            n += taken;
        }
        n
    }
}

/// Copies `src` into the ring chunk `a` ++ `b` (a record may wrap around the ring's end)
/// starting at byte `at` of the chunk; bytes beyond the chunk are not written.
fn write_split(a: &mut [u8], b: &mut [u8], at: usize, src: &[u8]) {
    let in_a = a.len().saturating_sub(at).min(src.len());
    if let Some(dst) = a.get_mut(at..at + in_a) {
        dst.copy_from_slice(&src[..in_a]);
    }
    let b_at = at.saturating_sub(a.len());
    let rest = &src[in_a..];
    let n = b.len().saturating_sub(b_at).min(rest.len());
    if let Some(dst) = b.get_mut(b_at..b_at + n) {
        dst.copy_from_slice(&rest[..n]);
    }
}

/// Connects `workers` (every worker's [`WorkerShared`], in worker-index order) with a ring
/// from each to each other and a shared directory. Element `i` of the result belongs to
/// worker `i` ([`Worker::set_handoff`](crate::Worker::set_handoff)).
pub fn mesh(workers: Vec<Arc<WorkerShared>>) -> Vec<Handoff> {
    let n = workers.len();
    let directory = Arc::new(PortDirectory {
        workers,
        generation: AtomicU64::new(0),
    });
    let mut outgoing: Vec<Vec<Option<rtrb::Producer<u8>>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut incoming: Vec<Vec<rtrb::Consumer<u8>>> = (0..n).map(|_| Vec::new()).collect();
    for (from, out) in outgoing.iter_mut().enumerate() {
        for (to, slot) in out.iter_mut().enumerate() {
            if from == to {
                continue;
            }
            // The ring's memory is allocated here, once.
            let (tx, rx) = rtrb::RingBuffer::new(HANDOFF_BYTES);
            *slot = Some(tx);
            incoming[to].push(rx);
        }
    }
    outgoing
        .into_iter()
        .zip(incoming)
        .map(|(outgoing, incoming)| Handoff {
            outgoing,
            incoming,
            directory: Arc::clone(&directory),
            scratch: Box::new([0; HANDOFF_MAX_LEN]),
            seen: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of every length around the ring's end, many times its size: each arrives
    /// whole and in order, also when it wraps (header or packet split across the end).
    #[test]
    fn records_that_wrap_around_the_ring_arrive_intact() {
        let mut rings = mesh(vec![
            Arc::new(WorkerShared::new(0, None, Vec::new())),
            Arc::new(WorkerShared::new(1, None, Vec::new())),
        ]);
        let mut rx = rings.pop().expect("worker 1");
        let mut tx = rings.pop().expect("worker 0");
        let mut sent = 0u64;
        let mut got = 0u64;
        let mut bytes = 0usize;
        let mut seq = 0u32;
        while bytes < 4 * HANDOFF_BYTES {
            // Odd lengths walk the write position over every offset of the ring's end.
            let len = 60 + (seq as usize * 37) % 1400;
            let packet: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
            if tx.send(1, seq, &packet) {
                sent += 1;
                bytes += len + RECORD_HEADER;
                seq += 1;
            }
            rx.receive(|ofport, data| {
                let want: Vec<u8> = (0..data.len()).map(|i| (i as u32 ^ ofport) as u8).collect();
                assert_eq!(ofport as u64, got, "in order");
                assert_eq!(data.len(), 60 + (ofport as usize * 37) % 1400);
                assert_eq!(data, &want[..], "record {ofport} damaged");
                got += 1;
            });
        }
        while rx.receive(|_, _| got += 1) > 0 {}
        assert_eq!(got, sent);
        assert!(!tx.send(1, 0, &[0; HANDOFF_MAX_LEN + 1]), "too long");
        assert!(!tx.send(0, 0, b"self"), "no ring to itself");
    }
}
