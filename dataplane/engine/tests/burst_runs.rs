//! Bursts that mix several megaflows: the worker runs each run of consecutive packets with
//! the same megaflow at once (one action lookup, one statistics update, outputs appended
//! together). Whatever the mix, every port must see its packets in arrival order, rewrites
//! must produce the same bytes as building the rewritten frame from scratch, drops must be
//! counted by reason, and every rule must count exactly its packets and bytes.

use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::pipeline::{load_flows, Pipeline, TABLE_ALL};
use xvs_flowtable::stats::Attribution;
use xvs_flowtable::translate::WorkerTranslator;
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::build::{udp4, Macs};
use xvs_packet::FlowKey;

struct Tables(WorkerTranslator);

impl Translator for Tables {
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

    fn attribution(&mut self) -> Option<Attribution> {
        Some(self.0.attribution())
    }
}

/// One megaflow per destination port, each of another shape: a plain output, a rewrite and
/// output, a drop, two outputs, an address rewrite (checksums) and output.
const FLOWS: &str = "\
table=0,priority=10,in_port=1,udp,tp_dst=80,actions=output:2
table=0,priority=10,in_port=1,udp,tp_dst=81,actions=mod_dl_src:02:00:00:00:00:99,output:3
table=0,priority=10,in_port=1,udp,tp_dst=82,actions=drop
table=0,priority=10,in_port=1,udp,tp_dst=83,actions=output:2,output:3
table=0,priority=10,in_port=1,udp,tp_dst=84,actions=mod_nw_dst:10.9.9.9,dec_ttl,output:2
table=0,priority=0,actions=drop
";

const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// The frame of packet `seq` (its sequence number is the UDP source port) to `dport`, with the
/// given source MAC and destination address, and its TTL lowered by `ttl_down`.
fn frame(seq: u16, dport: u16, src_mac: [u8; 6], dst_ip: [u8; 4], ttl_down: u8) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    let macs = Macs {
        src: src_mac,
        dst: DST_MAC,
    };
    let n = udp4(
        &mut f,
        macs,
        [10, 0, 0, 1],
        dst_ip,
        1000 + seq,
        dport,
        b"payload!",
    )
    .expect("frame");
    f.truncate(n);
    if ttl_down > 0 {
        // TTL at byte 22; the IPv4 header checksum (24..26) computed again from scratch.
        f[22] -= ttl_down;
        f[24..26].fill(0);
        let mut sum = 0u32;
        for w in f[14..34].chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    f
}

fn sent(seq: u16, dport: u16) -> Vec<u8> {
    frame(seq, dport, SRC_MAC, [10, 0, 0, 2], 0)
}

/// What port `port` must receive for packet `seq` to `dport`, if anything.
fn expected(port: u32, seq: u16, dport: u16) -> Option<Vec<u8>> {
    match (port, dport) {
        (2, 80) | (2, 83) | (3, 83) => Some(sent(seq, dport)),
        (3, 81) => Some(frame(seq, dport, [2, 0, 0, 0, 0, 0x99], [10, 0, 0, 2], 0)),
        (2, 84) => Some(frame(seq, dport, SRC_MAC, [10, 9, 9, 9], 1)),
        _ => None,
    }
}

struct Setup {
    pipeline: Pipeline,
    worker: Worker,
    a: MemoryPeer,
    b: MemoryPeer,
    c: MemoryPeer,
}

fn setup() -> Setup {
    let mut pipeline = Pipeline::new();
    load_flows(&mut pipeline, FLOWS, &NameMap::new(), 0).expect("flows");
    pipeline.set_ports(&[1, 2, 3], 0);
    let stage = OpenFlowStage::new(
        Box::new(Tables(WorkerTranslator::new(pipeline.reader()))),
        CacheConfig::default(),
    );
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
    Setup {
        pipeline,
        worker,
        a,
        b,
        c,
    }
}

/// (n_packets, n_bytes) of the table-0 rule matching `tp_dst=dport`.
fn rule_stats(p: &Pipeline, dport: u16) -> (u64, u64) {
    let needle = format!("tp_dst={dport}");
    let names = NameMap::new();
    p.snapshot()
        .dump_flows(TABLE_ALL, 0)
        .into_iter()
        .find(|f| xvs_flowtable::print::flow_to_string(f, &names).contains(&needle))
        .and_then(|f| f.stats)
        .map(|s| (s.n_packets.unwrap_or(0), s.n_bytes.unwrap_or(0)))
        .expect("rule")
}

/// A deterministic mix of destination ports with runs of every length from 1 to 7.
fn pattern(n: usize) -> Vec<u16> {
    let mut x = 0x2545_f491u32;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let dport = 80 + (x % 5) as u16;
        let run = 1 + (x >> 8) as usize % 7;
        out.extend(std::iter::repeat_n(dport, run));
    }
    out.truncate(n);
    out
}

#[test]
fn mixed_bursts_keep_order_per_port_and_exact_rule_stats() {
    let mut s = setup();
    let dports = pattern(32 * 40);
    let len = sent(0, 80).len() as u64;
    // Bursts of exactly one receive batch each (the first ones translate their misses in
    // the middle of the burst; the later ones are all cache hits).
    for (b, burst) in dports.chunks(32).enumerate() {
        for (j, &dport) in burst.iter().enumerate() {
            let seq = (b * 32 + j) as u16;
            assert!(s.a.send(&sent(seq, dport)));
        }
        s.worker.poll_once();
    }
    s.worker.poll_once();
    s.worker.publish_counters();
    for (port, peer) in [(2u32, &mut s.b), (3, &mut s.c)] {
        let want: Vec<Vec<u8>> = dports
            .iter()
            .enumerate()
            .filter_map(|(seq, &d)| expected(port, seq as u16, d))
            .collect();
        let got = peer.recv_all();
        assert_eq!(got.len(), want.len(), "port {port}: packet count");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g, w,
                "port {port}: packet {k} (in order, bytes as rewritten)"
            );
        }
    }
    let c = s.worker.shared().counters.load();
    let count = |d: u16| dports.iter().filter(|&&x| x == d).count() as u64;
    assert_eq!(c.drops[DropReason::ActionDrop as usize], count(82));
    assert_eq!(
        c.tx_packets,
        count(80) + count(81) + 2 * count(83) + count(84)
    );
    assert_eq!(c.upcalls_ok, 5, "one translation per megaflow");
    for dport in 80..=84 {
        assert_eq!(
            rule_stats(&s.pipeline, dport),
            (count(dport), count(dport) * len),
            "rule tp_dst={dport}"
        );
    }
}

#[test]
fn a_burst_of_one_megaflow_fills_and_flushes_the_output_batch_in_order() {
    let mut s = setup();
    // Warm the megaflow, then bursts that join a pending batch partly filled by a
    // two-output flow (each burst is one receive batch).
    assert!(s.a.send(&sent(0, 80)));
    s.worker.poll_once();
    let mut seqs = vec![0u16];
    let mut seq = 1u16;
    for burst in 0..20 {
        let n = 1 + (burst * 7) % 32;
        for _ in 0..n {
            let dport = if seq % 11 == 0 { 83 } else { 80 };
            assert!(s.a.send(&sent(seq, dport)));
            seqs.push(seq);
            seq += 1;
        }
        s.worker.poll_once();
    }
    let got = s.b.recv_all();
    assert_eq!(got.len(), seqs.len());
    for (g, &q) in got.iter().zip(&seqs) {
        let dport = if q % 11 == 0 && q != 0 { 83 } else { 80 };
        assert_eq!(g, &sent(q, dport), "packet {q}");
    }
    s.worker.publish_counters();
    let n80 = seqs.iter().filter(|&&q| q == 0 || q % 11 != 0).count() as u64;
    assert_eq!(rule_stats(&s.pipeline, 80).0, n80);
    assert_eq!(rule_stats(&s.pipeline, 83).0, seqs.len() as u64 - n80);
}
