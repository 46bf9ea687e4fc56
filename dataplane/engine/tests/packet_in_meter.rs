//! A datapath meter ahead of a controller action polices the packet-ins (Antrea's
//! `meter:256,controller(...)`): the real pipeline and translator over in-memory ports, with a
//! virtual clock; the test's translator records the packet-ins the stage hands it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use xvs_engine::{CacheConfig, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::metering::MeterState;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::pipeline::{load_flows, MeterCommand, MeterMod, Pipeline, PipelineMod};
use xvs_flowtable::translate::{ControllerRequest, WorkerTranslator};
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::FlowKey;

/// The flowtable translator with a virtual clock, keeping the packet-in requests of a burst's
/// translations under their tokens, as the daemon's translator does.
struct Recording {
    inner: WorkerTranslator,
    clock: Arc<AtomicU64>,
    pending: Vec<(u32, ControllerRequest)>,
    /// The last translation's token (0: no packet-in).
    token: u32,
    next_token: u32,
    /// The userdata of every packet-in sent.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Translator for Recording {
    fn refresh(&mut self) -> u64 {
        self.pending.clear();
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
        self.token = 0;
        if !t.slow_path() {
            return Verdict::Cache;
        }
        if !t.controller.is_empty() {
            self.next_token += 1;
            self.token = self.next_token;
            let token = self.token;
            self.pending
                .extend(t.controller.iter().map(|r| (token, r.clone())));
        }
        Verdict::Uncached
    }

    fn now_ns(&mut self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    fn meter(&mut self, id: u32) -> Option<Arc<MeterState>> {
        self.inner.snapshot().meter_state(id).cloned()
    }

    fn controller_token(&mut self) -> u32 {
        self.token
    }

    fn packet_in(&mut self, token: u32, _frame: &[u8], survived: usize) {
        let mut sent = self.sent.lock().expect("sent");
        for (_, req) in self.pending.iter().filter(|(t, _)| *t == token) {
            if req.after_actions <= survived {
                sent.push(req.controller.userdata.clone());
            }
        }
    }
}

struct Bench {
    pipeline: Pipeline,
    worker: Worker,
    a: MemoryPeer,
    b: MemoryPeer,
    clock: Arc<AtomicU64>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Bench {
    /// Meter 1 (100 pps, burst 10, drop band) and `flows`.
    fn new(flows: &str) -> Self {
        let mut pipeline = Pipeline::new();
        pipeline.set_ports(&[1, 2], 0);
        pipeline
            .apply(
                PipelineMod::Meter(MeterMod {
                    command: MeterCommand::Add,
                    meter: xvs_flowtable::meter::parse_meter(
                        "meter=1,pktps,burst,stats,bands=type=drop,rate=100,burst_size=10",
                    )
                    .expect("meter"),
                }),
                0,
            )
            .expect("meter add");
        load_flows(&mut pipeline, flows, &NameMap::new(), 0).expect("flows");
        let clock = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let t = Recording {
            inner: WorkerTranslator::new(pipeline.reader()),
            clock: clock.clone(),
            pending: Vec::new(),
            token: 0,
            next_token: 0,
            sent: sent.clone(),
        };
        let stage = OpenFlowStage::new(Box::new(t), CacheConfig::default());
        let pool = FramePool::new(1024, 2048, 128).expect("pool");
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
            Default::default(),
        )
        .expect("worker");
        Bench {
            pipeline,
            worker,
            a,
            b,
            clock,
            sent,
        }
    }

    /// 1000 packets per second for 2 s, in bursts of 10 every 10 ms; returns how many
    /// reached port 2.
    fn flood(&mut self) -> usize {
        let mut passed = 0;
        for step in 0..200u64 {
            self.clock
                .store((1_000 + step * 10) * 1_000_000, Ordering::Relaxed);
            for i in 0..10u16 {
                assert!(self.a.send(&udp_frame(1000 + i)));
            }
            self.worker.poll_once();
            passed += self.b.recv_all().len();
        }
        passed
    }

    fn sent_with(&self, userdata: &[u8]) -> usize {
        let sent = self.sent.lock().expect("sent");
        sent.iter().filter(|u| u.as_slice() == userdata).count()
    }

    fn meter_drops(&mut self) -> u64 {
        self.worker.publish_counters();
        self.worker.shared().counters.load().drops[xvs_engine::DropReason::MeterDrop as usize]
    }
}

fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let macs = xvs_packet::build::Macs {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };
    let n = xvs_packet::build::udp4(
        &mut f,
        macs,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        sport,
        80,
        b"payload!",
    )
    .expect("frame");
    f.truncate(n);
    f
}

#[test]
fn antrea_form_meter_then_controller_sends_packet_ins_at_the_meter_rate() {
    // Antrea's Output-table flow: the meter, then the controller action, nothing else.
    let mut s =
        Bench::new("table=0,priority=10,in_port=1,actions=meter:1,controller(userdata=01.01)\n");
    assert_eq!(s.flood(), 0);
    let sent = s.sent_with(&[1, 1]);
    // 100 pps over 2 s plus the burst of 10 (the existing cached-flood test's bounds).
    assert!((205..=215).contains(&sent), "packet-ins {sent}");
    let dropped = s.meter_drops();
    assert_eq!(
        dropped as usize,
        2000 - sent,
        "every policed packet counted"
    );
    let m = s.pipeline.snapshot().meter_state(1).expect("state").clone();
    assert_eq!(m.packets(), 2000, "the meter ran once per packet");
    assert_eq!(m.bands()[0].packets(), dropped);
}

#[test]
fn only_packet_ins_after_the_meter_are_policed_and_outputs_before_it_still_happen() {
    let mut s = Bench::new(
        "table=0,priority=10,in_port=1,actions=controller(userdata=aa),output:2,resubmit(,1)\n\
         table=1,priority=10,actions=meter:1,controller(userdata=bb)\n",
    );
    assert_eq!(
        s.flood(),
        2000,
        "the output ahead of the meter takes every packet"
    );
    assert_eq!(
        s.sent_with(&[0xaa]),
        2000,
        "ahead of the meter: never policed"
    );
    let after = s.sent_with(&[0xbb]);
    assert!(
        (205..=215).contains(&after),
        "packet-ins after the meter {after}"
    );
    let m = s.pipeline.snapshot().meter_state(1).expect("state").clone();
    assert_eq!(m.packets(), 2000, "the meter ran once per packet");
    assert_eq!(m.bands()[0].packets() as usize, 2000 - after);
}

#[test]
fn a_packet_the_meter_passes_goes_on_to_its_outputs_once_metered() {
    // Meter, packet-in, output: both limited together, and the meter runs once per packet
    // (ahead, for the packet-in), not a second time when the actions execute.
    let mut s = Bench::new(
        "table=0,priority=10,in_port=1,actions=meter:1,controller(userdata=cc),output:2\n",
    );
    let out = s.flood();
    let sent = s.sent_with(&[0xcc]);
    assert_eq!(
        out, sent,
        "the same packets pass to the controller and to port 2"
    );
    assert!((205..=215).contains(&sent), "packet-ins {sent}");
    let m = s.pipeline.snapshot().meter_state(1).expect("state").clone();
    assert_eq!(m.packets(), 2000);
    assert_eq!(s.meter_drops() as usize, 2000 - out);
}

#[test]
fn a_flow_whose_only_action_is_controller_is_a_translation_not_a_failure() {
    let mut s = Bench::new("table=0,priority=10,in_port=1,actions=controller(userdata=02)\n");
    assert_eq!(s.flood(), 0);
    assert_eq!(s.sent_with(&[2]), 2000, "one packet-in per packet");
    s.worker.publish_counters();
    let c = s.worker.shared().counters.load();
    assert_eq!(c.upcalls_failed, 0, "{c:?}");
    assert_eq!(c.upcalls_ok, 2000);
    assert_eq!(
        c.drops[xvs_engine::DropReason::TranslationFailed as usize],
        0
    );
    assert_eq!(c.drops[xvs_engine::DropReason::ActionDrop as usize], 2000);
}
