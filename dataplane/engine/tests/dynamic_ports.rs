//! Ports added and removed while the worker runs: traffic on the other ports goes on, outputs
//! to a port reach it as soon as it is added and stop (counted `no_such_port`) once it is
//! removed, the removed port's frames come back to the pool, and the command queue completes
//! synchronously against a worker running on its own thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xvs_engine::portctl::{port_queue, PortCommand, PortReply};
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig, WorkerError,
};
use xvs_flowtable::datapath::DpAction;
use xvs_io::{Desc, FramePool, MemoryPeer, MemoryPort, PortIo, PortStats};
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

const POOL: u32 = 1024;

/// Outputs to the port numbered by the last byte of the destination MAC; the bridge's ports
/// are a shared list, as the daemon's pipeline keeps them.
struct ByDstMac {
    bridge: Arc<Mutex<Vec<u32>>>,
    version: Arc<AtomicU64>,
}

impl Translator for ByDstMac {
    fn refresh(&mut self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        mask.set(layout::ETH_DST, layout::ETH_DST.max_value());
        actions.push(DpAction::Output((key.get(layout::ETH_DST) & 0xff) as u32));
        Verdict::Cache
    }

    fn port_exists(&mut self, ofport: u32) -> bool {
        self.bridge.lock().expect("bridge").contains(&ofport)
    }
}

/// A port that keeps frames as an AF_XDP socket does: `FILL` frames posted for receive from
/// its first use, and transmitted frames in flight until the flush after next. Its close is
/// deferred like a socket's release: the frames may only be taken back once the release
/// handed out by `begin_close` was dropped (checked: `close` before that panics the test).
struct HoldingPort {
    inner: MemoryPort,
    fill: Vec<u64>,
    in_flight: VecDeque<Desc>,
    released: Option<Arc<AtomicBool>>,
}

/// Sets its flag when dropped, as a socket release says it is done.
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

const FILL: usize = 64;

impl HoldingPort {
    fn new(name: &str) -> (Self, MemoryPeer) {
        let (inner, peer) = MemoryPort::pair(name, 1024);
        (
            Self {
                inner,
                fill: Vec::with_capacity(FILL),
                in_flight: VecDeque::new(),
                released: None,
            },
            peer,
        )
    }

    fn post(&mut self, pool: &mut FramePool) {
        while self.fill.len() < FILL {
            match pool.alloc() {
                Some(a) => self.fill.push(a),
                None => break,
            }
        }
    }
}

impl PortIo for HoldingPort {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        self.post(pool);
        self.inner.rx_burst(pool, out)
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        // The wire sees the frames now; the frames stay with the port until completion.
        let mut sent = 0;
        for d in pkts {
            let copy = pool.alloc_copy(pool.region().data(*d).to_vec().as_slice());
            let Some(c) = copy else { break };
            if self.inner.tx_burst(pool, &[c]) != 1 {
                pool.free(c.addr);
                break;
            }
            self.in_flight.push_back(*d);
            sent += 1;
        }
        sent
    }

    fn flush(&mut self, pool: &mut FramePool) {
        // Half the frames in flight complete per flush: some are always held.
        for _ in 0..self.in_flight.len().div_ceil(2) {
            if let Some(d) = self.in_flight.pop_front() {
                pool.free(d.addr);
            }
        }
        self.post(pool);
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }

    fn frames_held(&self) -> usize {
        self.fill.len() + self.in_flight.len()
    }

    fn begin_close(&mut self, _pool: &mut FramePool) -> Option<xvs_io::DeferredRelease> {
        let done = Arc::new(AtomicBool::new(false));
        self.released = Some(done.clone());
        Some(Box::new(Release(done)))
    }

    fn released(&self) -> bool {
        self.released
            .as_ref()
            .is_none_or(|d| d.load(Ordering::Acquire))
    }

    fn close(self: Box<Self>, pool: &mut FramePool) -> usize {
        assert!(
            self.released(),
            "frames taken back before the release was done"
        );
        for a in &self.fill {
            pool.free(*a);
        }
        for d in &self.in_flight {
            pool.free(d.addr);
        }
        0
    }
}

fn frame(dst_port: u8, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let macs = xvs_packet::build::Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, dst_port],
    };
    let n = xvs_packet::build::udp4(&mut f, macs, [10, 0, 0, 1], [10, 0, 0, 2], sport, 80, b"x")
        .expect("frame");
    f.truncate(n);
    f
}

struct Setup {
    worker: Worker,
    a: MemoryPeer,
    b: MemoryPeer,
    bridge: Arc<Mutex<Vec<u32>>>,
    version: Arc<AtomicU64>,
}

fn setup() -> Setup {
    let bridge = Arc::new(Mutex::new(vec![1, 2]));
    let version = Arc::new(AtomicU64::new(1));
    let t = ByDstMac {
        bridge: bridge.clone(),
        version: version.clone(),
    };
    let stage = OpenFlowStage::new(Box::new(t), CacheConfig::default());
    let pool = FramePool::new(POOL, 2048, 128).expect("pool");
    let (pa, a) = MemoryPort::pair("a", 1024);
    let (pb, b) = MemoryPort::pair("b", 1024);
    let worker = Worker::new(
        0,
        None,
        pool,
        vec![
            EnginePort::new(1, Box::new(pa)),
            EnginePort::new(2, Box::new(pb)),
        ],
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker");
    Setup {
        worker,
        a,
        b,
        bridge,
        version,
    }
}

/// Every frame is free or held by a port while the worker is between iterations.
fn assert_no_leak(w: &Worker) {
    assert_eq!(
        w.pool().free_count() + w.frames_held_by_ports(),
        POOL as usize,
        "free {} + held by ports {}",
        w.pool().free_count(),
        w.frames_held_by_ports()
    );
}

/// Sends `n` frames a -> b and one a -> port 3, polls, returns (frames at b).
fn round(s: &mut Setup, n: u16, base: u16) -> usize {
    for i in 0..n {
        assert!(s.a.send(&frame(2, base + i)));
    }
    assert!(s.a.send(&frame(3, base)));
    s.worker.poll_once();
    s.worker.poll_once();
    s.b.recv_all().len()
}

#[test]
fn add_and_remove_while_traffic_flows_without_leaking_frames() {
    let mut s = setup();
    let shared = s.worker.shared();
    // Port 3 does not exist yet: its packets are dropped as such; a -> b flows.
    assert_eq!(round(&mut s, 20, 0), 20);
    s.worker.publish_counters();
    assert_eq!(
        shared.counters.load().drops[DropReason::NoSuchPort as usize],
        1
    );
    assert_no_leak(&s.worker);

    // Add port 3. The megaflow "dst 3 -> no such port" was cached; the add flushes it.
    let (pc, mut c) = HoldingPort::new("c");
    let idx = s
        .worker
        .add_port(EnginePort::new(3, Box::new(pc)))
        .map_err(|(e, _)| e)
        .expect("add");
    assert_eq!(idx, 2);
    s.bridge.lock().expect("bridge").push(3);
    assert_eq!(round(&mut s, 20, 100), 20, "a -> b goes on");
    assert_eq!(
        c.recv_all().len(),
        1,
        "port 3 receives as soon as it is added"
    );
    let names: Vec<(String, u32)> = shared
        .ports
        .load()
        .iter()
        .map(|p| (p.name.clone(), p.ofport))
        .collect();
    assert_eq!(names, [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    // Port 3 now holds frames (posted for receive, in flight): still no leak.
    assert!(s.worker.frames_held_by_ports() >= FILL);
    assert_no_leak(&s.worker);
    // Traffic from the new port too.
    assert!(c.send(&frame(2, 7)));
    s.worker.poll_once();
    assert_eq!(s.b.recv_all().len(), 1);

    // Same number again: refused, handed back.
    let (dup, _) = HoldingPort::new("dup");
    match s.worker.add_port(EnginePort::new(3, Box::new(dup))) {
        Err((WorkerError::DuplicatePort { ofport: 3, name }, _)) => assert_eq!(name, "c"),
        other => panic!("duplicate accepted: {:?}", other.map_err(|(e, _)| e)),
    }

    // Remove port 3 (with frames in flight): everything comes back to the pool.
    assert!(s.a.send(&frame(3, 1)));
    s.worker.poll_once();
    let removal = s.worker.remove_port(3).expect("remove");
    s.bridge.lock().expect("bridge").retain(|&p| p != 3);
    // Deferred: the port is not polled any more but keeps its frames until the release
    // (another thread's job in the daemon) is done.
    assert_eq!(removal.frames_lost, 0);
    assert_eq!(s.worker.ports_closing(), 1);
    assert!(s.worker.frames_held_by_ports() >= FILL);
    assert_no_leak(&s.worker);
    assert_eq!(round(&mut s, 5, 150), 5, "a -> b while port 3 is closing");
    assert_eq!(s.worker.ports_closing(), 1);
    drop(removal.release);
    s.worker.poll_once();
    assert_eq!(s.worker.ports_closing(), 0);
    assert_eq!(s.worker.frames_held_by_ports(), 0);
    assert_eq!(s.worker.pool().free_count(), POOL as usize);
    assert_eq!(
        shared.ports.load().len(),
        2,
        "counters kept out of later dumps"
    );
    c.recv_all();
    // Its megaflow went with it: dropped again as a missing port, a -> b unaffected.
    assert_eq!(round(&mut s, 20, 200), 20);
    assert!(c.recv_all().is_empty());
    s.worker.publish_counters();
    // One before the add, one per round since the removal.
    assert_eq!(
        shared.counters.load().drops[DropReason::NoSuchPort as usize],
        3
    );
    assert!(matches!(
        s.worker.remove_port(3),
        Err(WorkerError::NoSuchPort { ofport: 3 })
    ));

    // Re-added with the same number: works.
    let (pc, mut c) = HoldingPort::new("c");
    s.worker
        .add_port(EnginePort::new(3, Box::new(pc)))
        .map_err(|(e, _)| e)
        .expect("re-add");
    s.bridge.lock().expect("bridge").push(3);
    s.version.fetch_add(1, Ordering::Release);
    assert_eq!(round(&mut s, 5, 300), 5);
    assert_eq!(c.recv_all().len(), 1);
    assert_no_leak(&s.worker);
}

#[test]
fn removing_a_port_in_the_middle_keeps_outputs_to_the_others_right() {
    // Cached outputs are port indices: after removing port 2 (index 1), port 3 moves to index
    // 1, and a stale cache would send port 3's traffic elsewhere.
    let mut s = setup();
    let (pc, mut c) = HoldingPort::new("c");
    s.worker
        .add_port(EnginePort::new(3, Box::new(pc)))
        .map_err(|(e, _)| e)
        .expect("add");
    s.bridge.lock().expect("bridge").push(3);
    assert_eq!(round(&mut s, 3, 0), 3);
    assert_eq!(c.recv_all().len(), 1);
    s.worker.remove_port(2).expect("remove b");
    s.bridge.lock().expect("bridge").retain(|&p| p != 2);
    assert_eq!(round(&mut s, 3, 10), 0);
    assert_eq!(c.recv_all().len(), 1, "port 3 still gets its packets");
    let shared = s.worker.shared();
    s.worker.publish_counters();
    assert_eq!(
        shared.counters.load().drops[DropReason::NoSuchPort as usize],
        3
    );
    assert_no_leak(&s.worker);
}

#[test]
fn commands_complete_synchronously_against_a_running_worker() {
    let mut s = setup();
    let (mut control, commands) = port_queue();
    s.worker.set_port_commands(commands);
    let shared = s.worker.shared();
    let mut a = s.a;
    let mut b = s.b;
    let bridge = s.bridge.clone();
    let mut worker = s.worker;
    let handle = std::thread::spawn(move || {
        worker.run();
        worker
    });
    let timeout = Duration::from_secs(5);
    let (pc, mut c) = HoldingPort::new("c");
    let slot = Arc::new(Mutex::new(Some(pc)));
    let opener_slot = slot.clone();
    let reply = control
        .call(
            PortCommand::Add(Box::new(move |_pool: &mut FramePool| {
                let port = opener_slot.lock().expect("slot").take().ok_or("gone")?;
                Ok(EnginePort::new(3, Box::new(port)))
            })),
            timeout,
        )
        .expect("reply");
    assert_eq!(
        reply,
        PortReply::Added {
            ofport: 3,
            index: 2
        }
    );
    bridge.lock().expect("bridge").push(3);
    // The reply means the worker polls the port: traffic to it arrives.
    assert!(a.send(&frame(3, 1)));
    let deadline = std::time::Instant::now() + timeout;
    let mut got = 0;
    while got == 0 && std::time::Instant::now() < deadline {
        got += c.recv_all().len();
        std::thread::yield_now();
    }
    assert_eq!(got, 1);
    // A failing opener changes nothing.
    let reply = control
        .call(
            PortCommand::Add(Box::new(|_pool: &mut FramePool| {
                Err("no such device".into())
            })),
            timeout,
        )
        .expect("reply");
    assert_eq!(reply, PortReply::Failed("no such device".into()));
    assert_eq!(shared.ports.load().len(), 3);
    let reply = control
        .call(PortCommand::Remove(3), timeout)
        .expect("reply");
    assert_eq!(
        reply,
        PortReply::Removed {
            ofport: 3,
            frames_lost: 0
        }
    );
    let reply = control
        .call(PortCommand::Remove(3), timeout)
        .expect("reply");
    assert!(matches!(reply, PortReply::Failed(ref m) if m.contains("no such port")));
    // Traffic between the remaining ports still flows.
    assert!(a.send(&frame(2, 1)));
    let mut got = 0;
    while got == 0 && std::time::Instant::now() < deadline {
        got += b.recv_all().len();
        std::thread::yield_now();
    }
    assert_eq!(got, 1);
    shared.request_stop();
    let worker = handle.join().expect("worker");
    assert_eq!(worker.frames_held_by_ports(), 0);
    assert_eq!(worker.pool().free_count(), POOL as usize);
}
