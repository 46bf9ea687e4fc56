//! Tunnel throughput of one worker, pipeline only (no kernel I/O): encapsulation (a replay
//! port of 60-byte UDP frames -> `set_field:...->tun_dst,set_field:42->tun_id,output:<tunnel>`
//! -> the uplink sink) and decapsulation (a replay port of VXLAN/Geneve frames carrying
//! 60-byte inner frames, zero outer UDP checksum as Linux sends -> `in_port=<tunnel>,tun_id=42`
//! -> a Pod sink). Prints Mpps per core for 1 and 1,000 flows, median of 3 runs.
//!
//! Run: `cargo bench -p xvs-engine --bench tunnel` (release profile, one core).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;
use xvs_classifier::publish::Publisher;
use xvs_engine::tunnel::{TunnelPort, TunnelSetup, TunnelStage, Underlay};
use xvs_engine::{
    CacheConfig, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker, WorkerConfig,
};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::pipeline::{load_flows, Pipeline};
use xvs_io::{FramePool, ReplayPort};
use xvs_packet::build::{geneve4, udp4, vxlan4, Macs, Outer4};
use xvs_packet::FlowKey;
use xvs_tunnel::{NeighConfig, Route, RouteTable, TunnelConfig, TunnelKind};

const POD: u32 = 1;
const SINK: u32 = 2;
const UPLINK: u32 = 10;
const VXLAN: u32 = 100;
const GENEVE: u32 = 101;
const LOCAL: [u8; 4] = [192, 168, 50, 1];
const PEER: [u8; 4] = [192, 168, 50, 2];
const UPLINK_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];

const FLOWS: &str = "\
table=0,priority=10,in_port=1,udp,tp_dst=5000,actions=set_field:192.168.50.2->tun_dst,set_field:42->tun_id,output:100
table=0,priority=10,in_port=1,udp,tp_dst=6000,actions=set_field:192.168.50.2->tun_dst,set_field:42->tun_id,output:101
table=0,priority=10,in_port=100,tun_id=42,actions=output:2
table=0,priority=10,in_port=101,tun_id=42,actions=output:2
";

struct Adapter(xvs_flowtable::translate::WorkerTranslator);

impl Translator for Adapter {
    fn refresh(&mut self) -> u64 {
        self.0.refresh()
    }
    fn translate(
        &mut self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        mask: &mut FlowKey,
    ) -> Verdict {
        match self.0.translate_into(key, 0, actions, mask) {
            Ok(()) => Verdict::Cache,
            Err(_) => Verdict::Drop,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Encap(TunnelKind),
    Decap(TunnelKind),
}

fn inner(i: usize, dport: u16) -> Vec<u8> {
    let macs = Macs {
        src: [2, 0x0a, 0x0a, 0, 0, 2],
        dst: [2, 0x0a, 0x0a, 0, 0, 3],
    };
    let mut f = vec![0u8; 60];
    let sport = 1024 + (i % 50_000) as u16;
    let len = udp4(
        &mut f,
        macs,
        [10, 10, 0, 2],
        [10, 10, 1, 3],
        sport,
        dport,
        &[0u8; 18],
    )
    .unwrap_or(0);
    f.truncate(len);
    f
}

fn frames(mode: Mode, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match mode {
            Mode::Encap(TunnelKind::Vxlan) => inner(i, 5000),
            Mode::Encap(TunnelKind::Geneve) => inner(i, 6000),
            Mode::Decap(kind) => {
                let inner = inner(i, 7000);
                let outer = Outer4 {
                    macs: Macs {
                        src: PEER_MAC,
                        dst: UPLINK_MAC,
                    },
                    src_ip: PEER,
                    dst_ip: LOCAL,
                    sport: 40000 + (i % 1000) as u16,
                };
                let mut f = vec![0u8; 200];
                let n = match kind {
                    TunnelKind::Vxlan => vxlan4(&mut f, outer, 42, &inner),
                    TunnelKind::Geneve => geneve4(&mut f, outer, 42, &[], &inner),
                }
                .unwrap_or(0);
                f.truncate(n);
                // No outer UDP checksum, as Linux and OVS send over IPv4 by default.
                if f.len() > 42 {
                    f[40] = 0;
                    f[41] = 0;
                }
                f
            }
        })
        .collect()
}

fn underlay() -> Underlay {
    let mut routes = RouteTable::new();
    let _ = routes.add(Route {
        prefix: IpAddr::V4(Ipv4Addr::new(192, 168, 50, 0)),
        prefix_len: 24,
        gateway: None,
        oif: 7,
        pref_src: Some(IpAddr::from(LOCAL)),
        metric: 0,
    });
    let mut neighbours = HashMap::new();
    neighbours.insert(IpAddr::from(PEER), PEER_MAC);
    Underlay {
        version: 1,
        routes,
        neighbours,
        uplink_ifindex: 7,
        uplink_mac: UPLINK_MAC,
        uplink_mtu: 1500,
        uplink_addrs: vec![IpAddr::from(LOCAL)],
    }
}

struct Run {
    mpps: f64,
    rx: u64,
    tx: u64,
}

fn run(mode: Mode, flows: usize, packets: u64) -> Run {
    let mut pipeline = Pipeline::new();
    load_flows(&mut pipeline, FLOWS, &NameMap::new(), 0).expect("flows");
    let mut t = xvs_flowtable::translate::WorkerTranslator::new(pipeline.reader());
    t.set_tunnel_ports(&[VXLAN, GENEVE]);
    let mut publisher = Publisher::new(Arc::new(underlay()));
    let (solicit, _requests) = rtrb::RingBuffer::new(16);
    let stage = TunnelStage::new(TunnelSetup {
        ports: vec![
            TunnelPort {
                ofport: VXLAN,
                config: TunnelConfig::flow_based(TunnelKind::Vxlan),
            },
            TunnelPort {
                ofport: GENEVE,
                config: TunnelConfig::flow_based(TunnelKind::Geneve),
            },
        ],
        uplink_ofport: UPLINK,
        underlay: publisher.reader(),
        solicit,
        neigh: NeighConfig::default(),
    });
    let of = OpenFlowStage::new(Box::new(Adapter(t)), CacheConfig::default()).with_tunnels(stage);
    let set = frames(mode, flows);
    let warm = flows as u64;
    let source = ReplayPort::new("src", &set, Some(warm + packets)).expect("replay");
    let sink = ReplayPort::new("sink", &set[..1], Some(0)).expect("sink");
    let (src_ofport, sink_ofport) = match mode {
        Mode::Encap(_) => (POD, UPLINK),
        Mode::Decap(_) => (UPLINK, SINK),
    };
    let pool = FramePool::new(4096, 2048, 256).expect("pool");
    let ports = vec![
        EnginePort::new(src_ofport, Box::new(source)),
        EnginePort::new(sink_ofport, Box::new(sink)),
    ];
    let mut w = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(of)),
        WorkerConfig::default(),
    )
    .expect("worker");
    let shared = w.shared();
    loop {
        w.poll_once();
        w.publish_counters();
        if shared.counters.load().rx_packets >= warm {
            break;
        }
    }
    let before = shared.counters.load();
    let t0 = Instant::now();
    while w.poll_once() > 0 {}
    let secs = t0.elapsed().as_secs_f64();
    w.publish_counters();
    let after = shared.counters.load();
    let rx = after.rx_packets - before.rx_packets;
    drop(pipeline);
    drop(publisher.reader());
    Run {
        mpps: rx as f64 / secs / 1e6,
        rx,
        tx: after.tx_packets - before.tx_packets,
    }
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let packets: u64 = if quick { 20_000 } else { 10_000_000 };
    println!("tunnel pipeline-only, 60-byte inner UDP frames, one worker, median of 3");
    println!(
        "{:>16} {:>8} {:>10} {:>10}",
        "mode", "flows", "Mpps", "ns/pkt"
    );
    for mode in [
        Mode::Encap(TunnelKind::Vxlan),
        Mode::Encap(TunnelKind::Geneve),
        Mode::Decap(TunnelKind::Vxlan),
        Mode::Decap(TunnelKind::Geneve),
    ] {
        for flows in [1usize, 1_000] {
            let mut runs: Vec<Run> = (0..3).map(|_| run(mode, flows, packets)).collect();
            runs.sort_by(|a, b| a.mpps.total_cmp(&b.mpps));
            let m = &runs[1];
            assert_eq!(m.tx, m.rx, "{mode:?}: every packet must be forwarded");
            let name = match mode {
                Mode::Encap(k) => format!("encap {k:?}"),
                Mode::Decap(k) => format!("decap {k:?}"),
            };
            println!(
                "{:>16} {:>8} {:>10.2} {:>10.1}",
                name,
                flows,
                m.mpps,
                1e3 / m.mpps
            );
        }
    }
}
