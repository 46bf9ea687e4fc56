//! OpenFlow rule statistics, timeouts and meters for traffic served from the caches: the real
//! pipeline and translator over in-memory ports, with a virtual clock. The control side's part (expiry,
//! applying learned flows) is done by the test between worker iterations, as the daemon's
//! control thread does between its periods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use xvs_engine::{CacheConfig, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::l2::MacLearning;
use xvs_flowtable::metering::MeterState;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::pipeline::{load_flows, Pipeline, TABLE_ALL};
use xvs_flowtable::stats::Attribution;
use xvs_flowtable::translate::{LearnRequest, WorkerTranslator};
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::FlowKey;

/// The flowtable translator with a virtual clock (nanoseconds) and a learn queue.
struct Virtual {
    inner: WorkerTranslator,
    clock: Arc<AtomicU64>,
    learned: Arc<Mutex<Vec<LearnRequest>>>,
    macs: Arc<Mutex<Vec<MacLearning>>>,
}

impl Translator for Virtual {
    fn refresh(&mut self) -> u64 {
        self.inner.refresh()
    }

    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        let now = self.clock.load(Ordering::Relaxed) / 1_000_000;
        if self.inner.translate_into(key, now, actions, mask).is_err() {
            return Verdict::Drop;
        }
        let t = self.inner.last();
        if let Ok(mut q) = self.macs.lock() {
            q.extend(t.mac_learning.iter().copied());
        }
        if t.slow_path() {
            if let Ok(mut q) = self.learned.lock() {
                q.extend(t.learned.iter().cloned());
            }
            return Verdict::Uncached;
        }
        Verdict::Cache
    }

    fn attribution(&mut self) -> Option<Attribution> {
        Some(self.inner.attribution())
    }

    fn now_ns(&mut self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    fn meter(&mut self, id: u32) -> Option<Arc<MeterState>> {
        self.inner.snapshot().meter_state(id).cloned()
    }
}

struct Bench {
    pipeline: Pipeline,
    worker: Worker,
    a: MemoryPeer,
    b: MemoryPeer,
    c: MemoryPeer,
    clock: Arc<AtomicU64>,
    learned: Arc<Mutex<Vec<LearnRequest>>>,
    macs: Arc<Mutex<Vec<MacLearning>>>,
}

impl Bench {
    fn new(flows: &str) -> Self {
        let mut pipeline = Pipeline::new();
        load_flows(&mut pipeline, flows, &NameMap::new(), 0).expect("flows");
        let clock = Arc::new(AtomicU64::new(0));
        let learned = Arc::new(Mutex::new(Vec::new()));
        let macs = Arc::new(Mutex::new(Vec::new()));
        pipeline.set_ports(&[1, 2, 3], 0);
        let t = Virtual {
            inner: WorkerTranslator::new(pipeline.reader()),
            clock: clock.clone(),
            learned: learned.clone(),
            macs: macs.clone(),
        };
        let stage = OpenFlowStage::new(Box::new(t), CacheConfig::default());
        let pool = FramePool::new(1024, 2048, 128).expect("pool");
        let (pa, a) = MemoryPort::pair("a", 1024);
        let (pb, b) = MemoryPort::pair("b", 1024);
        let (pc, c) = MemoryPort::pair("c", 1024);
        let worker = Worker::new(
            0,
            None,
            pool,
            vec![
                EnginePort::new(1, Box::new(pa)),
                EnginePort::new(2, Box::new(pb)),
                EnginePort::new(3, Box::new(pc)),
            ],
            Forwarding::OpenFlow(Box::new(stage)),
            Default::default(),
        )
        .expect("worker");
        Bench {
            pipeline,
            worker,
            a,
            b,
            c,
            clock,
            learned,
            macs,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::Relaxed) / 1_000_000
    }

    fn set_ms(&self, ms: u64) {
        self.clock.store(ms * 1_000_000, Ordering::Relaxed);
    }

    /// Sends `n` packets (distinct source ports: one megaflow) from port 1, runs the worker,
    /// returns how many reached port 2.
    fn send(&mut self, n: u16, dport: u16) -> usize {
        for i in 0..n {
            assert!(self.a.send(&udp_frame(1000 + i, dport)));
            if i % 16 == 15 {
                self.worker.poll_once();
            }
        }
        self.worker.poll_once();
        self.b.recv_all().len()
    }

    /// What the control thread does every period: apply learned flows, expire.
    fn control(&mut self) -> usize {
        let now = self.now_ms();
        let learned: Vec<LearnRequest> = std::mem::take(&mut *self.learned.lock().expect("q"));
        if !learned.is_empty() {
            self.pipeline.apply_learned(&learned, now);
        }
        let macs: Vec<MacLearning> = std::mem::take(&mut *self.macs.lock().expect("q"));
        self.pipeline.learn_macs(&macs, now);
        self.pipeline.expire(now).removed.len()
    }

    /// (n_packets, n_bytes, idle_age, duration) of the flow of `table` whose text contains
    /// `needle`, or `None` when absent.
    fn stats(&self, table: u8, needle: &str) -> Option<(u64, u64, u32, u32)> {
        let names = NameMap::new();
        self.pipeline
            .snapshot()
            .dump_flows(TABLE_ALL, self.now_ms())
            .into_iter()
            .filter(|f| f.table == table)
            .find(|f| xvs_flowtable::print::flow_to_string(f, &names).contains(needle))
            .map(|f| {
                let s = f.stats.expect("stats");
                (
                    s.n_packets.unwrap_or(0),
                    s.n_bytes.unwrap_or(0),
                    s.idle_age.unwrap_or(0),
                    s.duration_sec,
                )
            })
    }
}

fn udp_frame(sport: u16, dport: u16) -> Vec<u8> {
    l2_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], sport, dport)
}

fn l2_frame(src: [u8; 6], dst: [u8; 6], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let macs = xvs_packet::build::Macs { src, dst };
    let n = xvs_packet::build::udp4(
        &mut f,
        macs,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        sport,
        dport,
        b"payload!",
    )
    .expect("frame");
    f.truncate(n);
    f
}

const PATH: &str = "\
table=0,priority=10,in_port=1,actions=resubmit(,1),goto_table:2
table=0,priority=10,in_port=2,actions=drop
table=1,priority=5,udp,actions=load:0x7->NXM_NX_REG0[]
table=2,priority=5,reg0=7,actions=output:2
table=2,priority=1,actions=drop
";

#[test]
fn every_rule_on_a_cached_path_counts_every_packet() {
    let mut s = Bench::new(PATH);
    let len = udp_frame(1, 80).len() as u64;
    s.set_ms(1_000);
    assert_eq!(s.send(300, 80), 300);
    s.set_ms(2_500);
    s.worker.publish_counters();
    let c = s.worker.shared().counters.load();
    assert_eq!(c.upcalls_ok, 1, "one translation, then cache hits");
    assert_eq!(c.exact_hits + c.megaflow_hits, 299);
    for (table, needle) in [(0, "in_port=1"), (1, "udp"), (2, "reg0=0x7")] {
        let (p, b, _, _) = s.stats(table, needle).expect(needle);
        assert_eq!((p, b), (300, 300 * len), "table {table} {needle}");
    }
    assert_eq!(s.stats(0, "in_port=2").map(|x| x.0), Some(0));
    assert_eq!(s.stats(2, "priority=1").map(|x| x.0), Some(0));
    // Ages: last hit credited at 2.5 s; dumped at 7.2 s.
    s.set_ms(7_200);
    let (_, _, idle, duration) = s.stats(2, "reg0=0x7").expect("flow");
    assert_eq!((idle, duration), (4, 7));
    // More traffic, from a second megaflow (another destination port hits the same rules).
    assert_eq!(s.send(50, 81), 50);
    s.worker.publish_counters();
    assert_eq!(s.stats(1, "udp").map(|x| (x.0, x.2)), Some((350, 0)));
    // A table change flushes the caches; hits counted before it are not lost.
    assert_eq!(s.send(10, 80), 10);
    s.pipeline
        .apply(
            xvs_flowtable::pipeline::PipelineMod::Flow(
                xvs_flowtable::parse::parse_flow_mod(
                    "table=3,actions=drop",
                    xvs_flowtable::flow::FlowModCommand::Add,
                    &NameMap::new(),
                )
                .expect("mod"),
            ),
            s.now_ms(),
        )
        .expect("apply");
    assert_eq!(s.send(5, 80), 5);
    s.worker.publish_counters();
    assert_eq!(s.stats(0, "in_port=1").map(|x| x.0), Some(365));
}

#[test]
fn drop_flows_count_their_cached_drops() {
    let mut s = Bench::new(PATH);
    for i in 0..40u16 {
        assert!(s.b.send(&udp_frame(i, 80)));
    }
    s.worker.poll_once();
    s.worker.poll_once();
    s.worker.publish_counters();
    assert_eq!(s.stats(0, "in_port=2").map(|x| x.0), Some(40));
    assert_eq!(s.stats(0, "in_port=1").map(|x| x.0), Some(0));
}

#[test]
fn idle_timeout_follows_cached_hits_and_hard_timeout_does_not() {
    let mut s = Bench::new(
        "table=0,priority=10,idle_timeout=2,in_port=1,udp,tp_dst=80,actions=output:2\n\
         table=0,priority=10,hard_timeout=3,in_port=1,udp,tp_dst=81,actions=output:2\n",
    );
    // Traffic every 500 ms for 6 s, all of it from the caches after the first packet.
    let mut t = 0;
    while t <= 6_000 {
        s.set_ms(t);
        assert_eq!(s.send(4, 80), 4, "idle flow alive at {t} ms");
        let hard = s.send(4, 81);
        s.worker.credit_flow_stats();
        s.control();
        assert_eq!(hard, if t < 3_500 { 4 } else { 0 }, "hard flow at {t} ms");
        t += 500;
    }
    assert!(s.stats(0, "tp_dst=80").is_some());
    assert!(
        s.stats(0, "tp_dst=81").is_none(),
        "hard timeout despite traffic"
    );
    let translations = s.worker.shared().counters.load().upcalls_ok;
    // Silence: idle for 2 s removes it, and the caches forget it at once.
    s.set_ms(7_500);
    assert_eq!(s.control(), 0, "1.5 s idle is not enough");
    s.set_ms(8_000);
    assert_eq!(s.control(), 1);
    assert_eq!(
        s.send(4, 80),
        0,
        "expired: the megaflow must not be used any more"
    );
    s.worker.publish_counters();
    assert!(s.worker.shared().counters.load().upcalls_ok >= translations);
}

#[test]
fn learned_flows_expire_by_their_timeouts() {
    // Packets to port 80 learn a flow for their source address with idle_timeout=1.
    let mut s = Bench::new(
        "table=0,priority=10,in_port=1,udp,tp_dst=80,actions=learn(table=1,idle_timeout=1,priority=5,eth_type=0x800,NXM_OF_IP_SRC[],output:NXM_OF_IN_PORT[]),output:2\n\
         table=0,priority=10,in_port=2,udp,tp_dst=90,actions=resubmit(,1)\n",
    );
    s.set_ms(0);
    assert_eq!(s.send(1, 80), 1);
    s.control();
    assert!(s.stats(1, "nw_src=10.0.0.1").is_some(), "learned");
    // Hits on the learned flow (packets from b to port 90 resubmit to table 1, whose learned
    // flow outputs to port 1, a), served from the caches, keep it alive.
    for t in (250..=3_000).step_by(250) {
        s.set_ms(t);
        for i in 0..4 {
            assert!(s.b.send(&udp_frame(i, 90)));
        }
        s.worker.poll_once();
        assert_eq!(s.a.recv_all().len(), 4);
        s.worker.credit_flow_stats();
        assert_eq!(s.control(), 0, "alive at {t} ms");
    }
    assert_eq!(s.stats(1, "nw_src=10.0.0.1").map(|x| x.0), Some(48));
    s.set_ms(4_000);
    assert_eq!(s.control(), 1, "idle for 1 s");
    assert!(s.stats(1, "nw_src=10.0.0.1").is_none());
}

#[test]
fn a_meter_limits_a_cached_flood_to_its_rate() {
    let mut s = Bench::new("");
    s.pipeline
        .apply(
            xvs_flowtable::pipeline::PipelineMod::Meter(xvs_flowtable::pipeline::MeterMod {
                command: xvs_flowtable::pipeline::MeterCommand::Add,
                meter: xvs_flowtable::meter::parse_meter(
                    "meter=1,pktps,burst,stats,bands=type=drop,rate=100,burst_size=10",
                )
                .expect("meter"),
            }),
            0,
        )
        .expect("meter add");
    // The meter must exist before the flow that uses it.
    load_flows(
        &mut s.pipeline,
        "table=0,priority=10,in_port=1,actions=meter:1,output:2\n",
        &NameMap::new(),
        0,
    )
    .expect("flow");
    // 1000 packets per second for 2 s, in bursts of 10 every 10 ms.
    let mut passed = 0;
    for step in 0..200u64 {
        s.set_ms(1_000 + step * 10);
        passed += s.send(10, 80);
    }
    assert!((205..=215).contains(&passed), "passed {passed}");
    s.worker.publish_counters();
    let c = s.worker.shared().counters.load();
    assert_eq!(c.upcalls_ok, 1, "the metered megaflow is cached");
    let dropped = c.drops[xvs_engine::DropReason::MeterDrop as usize];
    assert_eq!(dropped as usize, 2000 - passed);
    let m = s.pipeline.snapshot().meter_state(1).expect("state").clone();
    assert_eq!(m.packets(), 2000);
    assert_eq!(m.bands()[0].packets(), dropped);
    // The rule counts every packet that matched it, metered or not (as OVS).
    assert_eq!(s.stats(0, "meter:1").map(|x| x.0), Some(2000));
    // Under the rate, nothing is dropped; an unrelated table change keeps the limiter.
    s.pipeline
        .apply(
            xvs_flowtable::pipeline::PipelineMod::Flow(
                xvs_flowtable::parse::parse_flow_mod(
                    "table=5,actions=drop",
                    xvs_flowtable::flow::FlowModCommand::Add,
                    &NameMap::new(),
                )
                .expect("mod"),
            ),
            0,
        )
        .expect("apply");
    assert!(Arc::ptr_eq(
        &m,
        s.pipeline.snapshot().meter_state(1).expect("state")
    ));
    let mut slow = 0;
    for step in 0..100u64 {
        s.set_ms(10_000 + step * 20);
        slow += s.send(1, 80);
    }
    assert_eq!(slow, 100, "50 pps under a 100 pps meter");
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

#[test]
fn normal_learns_floods_and_revalidates_on_moves() {
    let mut s = Bench::new("table=0,priority=0,actions=NORMAL\n");
    let counts = |s: &mut Bench| {
        (
            s.a.recv_all().len(),
            s.b.recv_all().len(),
            s.c.recv_all().len(),
        )
    };
    // A (port 1) to B, unknown: flooded to 2 and 3.
    for i in 0..5 {
        assert!(s.a.send(&l2_frame(MAC_A, MAC_B, i, 80)));
    }
    s.worker.poll_once();
    assert_eq!(counts(&mut s), (0, 5, 5));
    s.control();
    assert_eq!(
        s.pipeline
            .snapshot()
            .l2()
            .lookup(0x0200_0000_000a, 0)
            .map(|e| e.port),
        Some(1)
    );
    // B (port 2) replies: A is known, only port 1 gets it.
    for i in 0..5 {
        assert!(s.b.send(&l2_frame(MAC_B, MAC_A, i, 80)));
    }
    s.worker.poll_once();
    assert_eq!(counts(&mut s), (5, 0, 0));
    s.control();
    // A to B again: the flooding megaflow of the old MAC table must not be used.
    s.worker.publish_counters();
    let before = s.worker.shared().counters.load().upcalls_ok;
    for i in 0..100 {
        assert!(s.a.send(&l2_frame(MAC_A, MAC_B, i, 80)));
        if i % 20 == 19 {
            s.worker.poll_once();
        }
    }
    s.worker.poll_once();
    assert_eq!(counts(&mut s), (0, 100, 0));
    s.worker.publish_counters();
    assert_eq!(
        s.worker.shared().counters.load().upcalls_ok - before,
        1,
        "one translation, then cached"
    );
    // Broadcast floods.
    assert!(s.b.send(&l2_frame(MAC_B, [0xff; 6], 1, 80)));
    s.worker.poll_once();
    assert_eq!(counts(&mut s), (1, 0, 1));
    // A moves to port 3: once learned, B's traffic to A follows it at once.
    assert!(s.c.send(&l2_frame(MAC_A, MAC_B, 1, 80)));
    s.worker.poll_once();
    assert_eq!(counts(&mut s), (0, 1, 0));
    s.control();
    for i in 0..10 {
        assert!(s.b.send(&l2_frame(MAC_B, MAC_A, i, 80)));
    }
    s.worker.poll_once();
    assert_eq!(counts(&mut s), (0, 0, 10), "the moved MAC's new port only");
    // The NORMAL flow counts every packet, cached or not.
    s.worker.publish_counters();
    assert_eq!(
        s.stats(0, "NORMAL").map(|x| x.0),
        Some(5 + 5 + 100 + 1 + 1 + 10)
    );
    assert_eq!(s.worker.pool().free_count(), 1024);
}

#[test]
fn cached_hits_keep_a_mac_from_aging_out() {
    let mut s = Bench::new("table=0,priority=0,actions=NORMAL\n");
    assert!(s.a.send(&l2_frame(MAC_A, MAC_B, 1, 80)));
    assert!(s.b.send(&l2_frame(MAC_B, MAC_A, 1, 80)));
    s.worker.poll_once();
    s.control();
    s.worker.poll_once();
    let _ = (s.a.recv_all(), s.b.recv_all(), s.c.recv_all());
    // A keeps sending through the caches for 400 s; B is silent.
    for step in 1..=8u64 {
        s.set_ms(step * 50_000);
        assert!(s.a.send(&l2_frame(MAC_A, MAC_B, step as u16, 80)));
        s.worker.poll_once();
        s.worker.credit_flow_stats();
        s.control();
        s.pipeline
            .age_macs(s.now_ms(), xvs_flowtable::l2::MAC_AGING_MS);
    }
    let l2 = s.pipeline.snapshot().l2();
    assert!(l2.lookup(0x0200_0000_000a, 0).is_some(), "A is in use");
    assert!(l2.lookup(0x0200_0000_000b, 0).is_none(), "B aged out");
}

fn tcp_frame(sport: u16, flags: u16) -> Vec<u8> {
    let mut f = vec![0u8; 80];
    let macs = xvs_packet::build::Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };
    let t = xvs_packet::build::TcpParams {
        sport,
        dport: 443,
        seq: 1,
        ack: 1,
        flags,
        window: 1000,
    };
    let n = xvs_packet::build::tcp4(&mut f, macs, [10, 0, 0, 1], [10, 0, 0, 2], t, b"x")
        .expect("frame");
    f.truncate(n);
    f
}

#[test]
fn a_fin_through_the_caches_starts_learned_fin_timeouts() {
    // TCP to 443 learns a flow per source port (idle 60 s, fin_idle 1 s) and resubmits to it.
    let mut s = Bench::new(
        "table=0,priority=10,in_port=1,tcp,tp_dst=443,actions=learn(table=1,idle_timeout=60,fin_idle_timeout=1,priority=5,eth_type=0x800,nw_proto=6,NXM_OF_TCP_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)\n\
         table=0,priority=10,in_port=2,tcp,actions=resubmit(,1)\n",
    );
    const ACK: u16 = 0x10;
    const FIN: u16 = 0x01;
    s.set_ms(0);
    assert!(s.a.send(&tcp_frame(5000, ACK)));
    assert!(s.a.send(&tcp_frame(6000, ACK)));
    s.worker.poll_once();
    s.control();
    assert!(s.stats(1, "tp_src=5000").is_some() && s.stats(1, "tp_src=6000").is_some());
    // Return traffic (b -> a) hits each learned flow through table 1: ACKs for both, then a
    // FIN on 5000's, all from the caches after their first packet.
    let mut t = 0;
    for round in 0..6u64 {
        t += 500;
        s.set_ms(t);
        for sport in [5000u16, 6000] {
            // The learned flows match the *source* port of packets from a; the return
            // traffic uses the same port as its source too (a symmetric test, not TCP).
            let flags = if sport == 5000 && round == 2 {
                FIN | ACK
            } else {
                ACK
            };
            assert!(s.b.send(&tcp_frame(sport, flags)));
        }
        s.worker.poll_once();
        assert_eq!(s.a.recv_all().len(), 2, "through the learned flows");
        s.worker.credit_flow_stats();
        s.control();
    }
    // Both flows were hit every 500 ms: 6000's (idle 60 s) stays; 5000's saw a FIN, so its
    // idle timeout is 1 s... but it was hit every 500 ms, so it also stays until silence.
    assert!(s.stats(1, "tp_src=5000").is_some());
    s.set_ms(t + 1_000);
    s.control();
    assert!(
        s.stats(1, "tp_src=5000").is_none(),
        "fin_idle_timeout=1 after the FIN"
    );
    assert!(
        s.stats(1, "tp_src=6000").is_some(),
        "no FIN: idle_timeout=60 still"
    );
}

#[test]
fn group_and_bucket_counters_follow_cached_hits() {
    let mut s = Bench::new("");
    s.pipeline
        .apply(
            xvs_flowtable::pipeline::PipelineMod::Group(
                xvs_flowtable::group::parse_group_mod(
                    "group_id=7,type=all,bucket=actions=output:2,bucket=actions=output:3",
                    xvs_flowtable::group::GroupCommand::Add,
                    &NameMap::new(),
                )
                .expect("group"),
            ),
            0,
        )
        .expect("group add");
    load_flows(
        &mut s.pipeline,
        "table=0,priority=10,in_port=1,actions=group:7\n",
        &NameMap::new(),
        0,
    )
    .expect("flow");
    let len = udp_frame(1, 80).len() as u64;
    assert_eq!(s.send(64, 80), 64);
    assert_eq!(s.c.recv_all().len(), 64);
    s.worker.publish_counters();
    assert_eq!(s.worker.shared().counters.load().upcalls_ok, 1);
    let g = s.pipeline.snapshot().group_stats(7).expect("stats").clone();
    assert_eq!(g.counts(), (64, 64 * len));
    assert_eq!(g.bucket_counts(), vec![(64, 64 * len), (64, 64 * len)]);
}

#[test]
fn slow_path_packets_are_credited_even_without_output() {
    // A learn-only flow: every packet is translated (uncached) and dropped after learning.
    let mut s = Bench::new(
        "table=0,priority=10,in_port=1,udp,actions=learn(table=1,priority=5,eth_type=0x800,NXM_OF_IP_SRC[],output:NXM_OF_IN_PORT[])\n",
    );
    assert_eq!(s.send(20, 80), 0);
    s.worker.publish_counters();
    assert_eq!(s.stats(0, "learn(").map(|x| x.0), Some(20));
    assert_eq!(s.worker.shared().counters.load().exact_hits, 0);
}
