//! ct() end to end in the engine over in-memory ports, with the real OpenFlow translation:
//! a stateful policy, Service DNAT through a select group with un-DNATed replies, Antrea's
//! two-zone SNAT chain, the ct(table=T) fork, the recirculation bound and malformed packets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use xvs_conntrack::{Conntrack, CtConfig};
use xvs_engine::{
    CacheConfig, DropReason, EnginePort, Forwarding, OpenFlowStage, Translator, Verdict, Worker,
    WorkerConfig, WorkerSnapshot, MAX_RECIRC_DEPTH,
};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::group::{parse_group_mod, GroupCommand};
use xvs_flowtable::pipeline::{load_flows, Pipeline, PipelineMod};
use xvs_flowtable::translate::WorkerTranslator;
use xvs_flowtable::NameMap;
use xvs_io::{FramePool, MemoryPeer, MemoryPort};
use xvs_packet::build::{self, Macs, TcpParams};
use xvs_packet::checksum::{checksum, pseudo_header_v4};
use xvs_packet::wire::tcp::flags;
use xvs_packet::FlowKey;

/// The engine's translator over real OpenFlow tables.
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
            Ok(()) if self.0.last().slow_path() => Verdict::Uncached,
            Ok(()) => Verdict::Cache,
            Err(_) => Verdict::Drop,
        }
    }
}

struct Setup {
    worker: Worker,
    peers: Vec<MemoryPeer>,
    _pipeline: Pipeline,
    frames: usize,
}

const POOL: usize = 512;

/// A worker with ports 1..=n over the given groups and flows.
fn setup(n: u32, groups: &[&str], flows: &str) -> Setup {
    setup_with_pool(n, groups, flows, POOL)
}

fn setup_with_pool(n: u32, groups: &[&str], flows: &str, frames: usize) -> Setup {
    setup_full(n, groups, flows, frames, None)
}

fn setup_full(
    n: u32,
    groups: &[&str],
    flows: &str,
    frames: usize,
    tracker: Option<Arc<Conntrack>>,
) -> Setup {
    let names = NameMap::new();
    let mut p = Pipeline::new();
    let mods: Vec<PipelineMod> = groups
        .iter()
        .map(|g| PipelineMod::Group(parse_group_mod(g, GroupCommand::Add, &names).unwrap()))
        .collect();
    if !mods.is_empty() {
        p.commit(&mods, 0).unwrap();
    }
    load_flows(&mut p, flows, &names, 0).unwrap();
    let mut stage = OpenFlowStage::new(
        Box::new(Tables(WorkerTranslator::new(p.reader()))),
        CacheConfig::default(),
    );
    if let Some(t) = tracker {
        stage = stage.with_conntrack(t, std::time::Instant::now());
    }
    let pool = FramePool::new(frames as u32, 2048, 128).expect("pool");
    let mut ports = Vec::new();
    let mut peers = Vec::new();
    for i in 1..=n {
        let (port, peer) = MemoryPort::pair(&format!("p{i}"), 256);
        ports.push(EnginePort::new(i, Box::new(port)));
        peers.push(peer);
    }
    let worker = Worker::new(
        0,
        None,
        pool,
        ports,
        Forwarding::OpenFlow(Box::new(stage)),
        WorkerConfig::default(),
    )
    .expect("worker");
    Setup {
        worker,
        peers,
        _pipeline: p,
        frames,
    }
}

impl Setup {
    /// Sends `frame` on port `port` and runs the worker until it is idle.
    fn send(&mut self, port: u32, frame: &[u8]) {
        assert!(self.peers[port as usize - 1].send(frame));
        while self.worker.poll_once() > 0 {}
    }

    fn recv(&mut self, port: u32) -> Vec<Vec<u8>> {
        self.peers[port as usize - 1].recv_all()
    }

    fn counters(&mut self) -> WorkerSnapshot {
        self.worker.publish_counters();
        self.worker.shared().counters.load()
    }

    /// Every frame is back in the pool or held by a port (none leaked by forks or drops).
    fn assert_no_leak(&self) {
        assert_eq!(
            self.worker.pool().free_count() + self.worker.frames_held_by_ports(),
            self.frames
        );
    }
}

const MACS: Macs = Macs {
    src: [2, 0, 0, 0, 0, 1],
    dst: [2, 0, 0, 0, 0, 2],
};

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 128];
    let n = build::udp4(&mut f, MACS, src, dst, sport, dport, b"conntrack!").unwrap();
    f.truncate(n);
    f
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, ack: u32, fl: u16) -> Vec<u8> {
    let mut f = vec![0u8; 128];
    let t = TcpParams {
        sport,
        dport,
        seq,
        ack,
        flags: fl,
        window: 65535,
    };
    let n = build::tcp4(&mut f, MACS, src, dst, t, b"").unwrap();
    f.truncate(n);
    f
}

/// (src, dst, sport, dport) of an IPv4 TCP/UDP frame, after checking the IPv4 and transport
/// checksums.
fn tuple(f: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    assert_eq!(checksum(&f[14..34]), 0, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let l4 = &f[34..14 + total];
    let mut sum = pseudo_header_v4(
        f[26..30].try_into().unwrap(),
        f[30..34].try_into().unwrap(),
        f[23],
        l4.len() as u16,
    );
    sum.add_bytes(l4);
    assert_eq!(sum.fold(), 0xffff, "transport checksum");
    let a = |i: usize| Ipv4Addr::new(f[i], f[i + 1], f[i + 2], f[i + 3]);
    let p = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    (a(26), a(30), p(34), p(36))
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

/// Allow new connections from A (port 1) to B (port 2) and their replies; nothing else. Invalid
/// packets go to port 3 so the test sees the `+inv` verdict.
const POLICY: &str = "\
table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=65520)
table=1,priority=300,ct_state=+inv+trk,ip,actions=output:3
table=1,priority=200,ct_state=+est+trk,ip,in_port=1,actions=output:2
table=1,priority=200,ct_state=+est+trk,ip,in_port=2,actions=output:1
table=1,priority=100,ct_state=+new+trk,ip,in_port=1,nw_dst=10.0.0.2,actions=ct(commit,zone=65520),output:2
table=1,priority=0,actions=drop
";

#[test]
fn stateful_policy_allows_new_from_a_and_replies_and_blocks_b_initiated() {
    let mut s = setup(3, &[], POLICY);
    // TCP handshake and data from A.
    s.send(1, &tcp(A, B, 40000, 80, 1000, 0, flags::SYN));
    assert_eq!(s.recv(2).len(), 1, "SYN from A passes");
    s.send(
        2,
        &tcp(B, A, 80, 40000, 5000, 1001, flags::SYN | flags::ACK),
    );
    assert_eq!(s.recv(1).len(), 1, "SYN-ACK reply passes");
    s.send(1, &tcp(A, B, 40000, 80, 1001, 5001, flags::ACK));
    assert_eq!(s.recv(2).len(), 1, "ACK passes (established)");
    // UDP from A and its reply.
    s.send(1, &udp(A, B, 5000, 53));
    s.send(2, &udp(B, A, 53, 5000));
    assert_eq!(s.recv(2).len(), 1);
    assert_eq!(s.recv(1).len(), 1, "UDP reply passes");
    // B-initiated connections are blocked, TCP and UDP, many times over (cached drops).
    for i in 0..10 {
        s.send(2, &tcp(B, A, 6000 + i, 22, 1, 0, flags::SYN));
        s.send(2, &udp(B, A, 7000 + i, 53));
    }
    assert!(s.recv(1).is_empty(), "B-initiated traffic must not reach A");
    assert!(s.recv(3).is_empty(), "and it is new, not invalid");
    let c = s.counters();
    assert_eq!(c.drops[DropReason::ActionDrop as usize], 20);
    // Every packet made exactly one recirculation.
    assert_eq!(c.recirculations, 25);
    assert_eq!(c.ct.created, 2);
    s.assert_no_leak();
}

#[test]
fn malformed_l4_under_ct_is_invalid_not_a_panic() {
    let mut s = setup(3, &[], POLICY);
    // A TCP header cut to 12 bytes, the IP total length matching the cut.
    let mut f = tcp(A, B, 40000, 80, 1, 0, flags::SYN);
    f.truncate(14 + 20 + 12);
    let total = (20u16 + 12).to_be_bytes();
    f[16..18].copy_from_slice(&total);
    f[24] = 0;
    f[25] = 0;
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    s.send(1, &f);
    assert_eq!(s.recv(3).len(), 1, "a truncated TCP header is +trk+inv");
    // A TCP data offset pointing past the packet.
    let mut f = tcp(A, B, 40001, 80, 1, 0, flags::SYN);
    f[34 + 12] = 0xf0;
    s.send(1, &f);
    assert_eq!(s.recv(3).len(), 1, "a data offset past the end is +trk+inv");
    // Invalid TCP flags (SYN+FIN) are the tracker's +inv too.
    s.send(1, &tcp(A, B, 40002, 80, 1, 0, flags::SYN | flags::FIN));
    assert_eq!(s.recv(3).len(), 1);
    // Garbage of every length under ct: no panic, nothing leaked.
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for len in 0..300usize {
        let mut g = udp(A, B, 1, 2);
        g.resize(len.max(14), 0);
        for b in g.iter_mut().skip(14) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        g[12] = 0x08;
        g[13] = 0x00;
        if len > 14 {
            g[14] = 0x45;
        }
        s.send(1, &g);
    }
    s.recv(2);
    s.recv(3);
    s.assert_no_leak();
}

#[test]
fn service_dnat_balances_over_two_endpoints_and_replies_are_undnatted() {
    // Antrea-style: ServiceLB picks a bucket, the bucket loads the endpoint into reg3/reg4,
    // EndpointDNAT commits with nat(dst=...).
    let groups = ["group_id=1,type=select,\
        bucket=bucket_id:0,weight:100,actions=set_field:0x0a000101->reg3,set_field:0x1f90/0xffff->reg4,resubmit(,3),\
        bucket=bucket_id:1,weight:100,actions=set_field:0x0a000102->reg3,set_field:0x1f90/0xffff->reg4,resubmit(,3)"];
    let flows = "\
table=0,priority=100,ip,actions=ct(table=1,zone=65520,nat)
table=1,priority=200,ct_state=+new+trk,udp,nw_dst=10.96.0.10,tp_dst=53,actions=group:1
table=1,priority=100,ct_state=+trk,ip,actions=goto_table:4
table=3,priority=200,udp,reg3=0x0a000101,reg4=0x1f90/0xffff,actions=ct(commit,table=4,zone=65520,nat(dst=10.0.1.1:8080),exec(set_field:0x10/0x10->ct_mark))
table=3,priority=200,udp,reg3=0x0a000102,reg4=0x1f90/0xffff,actions=ct(commit,table=4,zone=65520,nat(dst=10.0.1.2:8080),exec(set_field:0x10/0x10->ct_mark))
table=4,priority=100,ip,nw_dst=10.0.1.1,actions=output:2
table=4,priority=100,ip,nw_dst=10.0.1.2,actions=output:3
table=4,priority=100,ip,nw_dst=10.0.0.1,actions=output:1
";
    let mut s = setup(3, &groups, flows);
    let svc = [10, 96, 0, 10];
    let mut per_endpoint = [0usize; 2];
    for i in 0..64u16 {
        let sport = 20000 + i;
        s.send(1, &udp(A, svc, sport, 53));
        // Find which endpoint got it.
        let (ep, port, got) = match (s.recv(2), s.recv(3)) {
            (g, n) if n.is_empty() && g.len() == 1 => ([10, 0, 1, 1], 2, g),
            (n, g) if n.is_empty() && g.len() == 1 => ([10, 0, 1, 2], 3, g),
            other => panic!("connection {i}: {other:?}"),
        };
        per_endpoint[port as usize - 2] += 1;
        assert_eq!(
            tuple(&got[0]),
            (Ipv4Addr::from(A), Ipv4Addr::from(ep), sport, 8080),
            "DNATed to the endpoint"
        );
        // The same connection sticks to its endpoint.
        s.send(1, &udp(A, svc, sport, 53));
        assert_eq!(s.recv(port).len(), 1);
        // The reply comes back from the Service address.
        s.send(port, &udp(ep, A, 8080, sport));
        let back = s.recv(1);
        assert_eq!(back.len(), 1, "reply of connection {i}");
        assert_eq!(
            tuple(&back[0]),
            (Ipv4Addr::from(svc), Ipv4Addr::from(A), 53, sport),
            "un-DNATed reply"
        );
    }
    assert!(
        per_endpoint[0] >= 10 && per_endpoint[1] >= 10,
        "both endpoints used: {per_endpoint:?}"
    );
    let c = s.counters();
    assert_eq!(c.ct.created, 64);
    s.assert_no_leak();
}

#[test]
fn antrea_two_zone_snat_chain() {
    // Request: ConntrackZone (65520) -> commit with the SNAT mark -> SNAT commit into 65521.
    // Reply: UnSNAT (65521) -> ConntrackZone (65520) -> back to the pod.
    let flows = "\
table=0,priority=200,ip,nw_dst=192.168.1.100,actions=ct(table=1,zone=65521,nat)
table=0,priority=100,ip,actions=goto_table:1
table=1,priority=100,ip,actions=ct(table=2,zone=65520,nat)
table=2,priority=100,ct_state=+new+trk,ip,in_port=1,nw_dst=192.168.1.1,actions=ct(commit,table=3,zone=65520,exec(set_field:0x20/0x20->ct_mark))
table=2,priority=90,ct_state=+est+trk,ip,actions=goto_table:3
table=3,priority=100,ct_state=+new+trk,ct_mark=0x20/0x20,ip,actions=ct(commit,table=4,zone=65521,nat(src=192.168.1.100))
table=3,priority=100,ct_state=+est-rpl+trk,ct_mark=0x20/0x20,ip,actions=ct(table=4,zone=65521,nat)
table=3,priority=90,ip,actions=goto_table:4
table=4,priority=100,ip,nw_dst=192.168.1.1,actions=output:2
table=4,priority=100,ip,nw_dst=10.0.0.1,actions=output:1
";
    let mut s = setup(2, &[], flows);
    let ext = [192, 168, 1, 1];
    let snat = Ipv4Addr::new(192, 168, 1, 100);
    s.send(1, &udp(A, ext, 5555, 53));
    let out = s.recv(2);
    assert_eq!(out.len(), 1);
    let (src, dst, sport, dport) = tuple(&out[0]);
    assert_eq!((src, dst, dport), (snat, Ipv4Addr::from(ext), 53));
    // Three recirculations in one pass: 65520, commit into 65520, SNAT commit into 65521.
    assert_eq!(s.counters().recirculations, 3);
    // The next request of the connection takes the established path, still SNATed.
    s.send(1, &udp(A, ext, 5555, 53));
    let out = s.recv(2);
    assert_eq!(out.len(), 1);
    assert_eq!(tuple(&out[0]), (snat, Ipv4Addr::from(ext), sport, 53));
    // The reply is un-SNATed in 65521, then matched as a reply in 65520.
    s.send(2, &udp(ext, snat.octets(), 53, sport));
    let back = s.recv(1);
    assert_eq!(back.len(), 1);
    assert_eq!(
        tuple(&back[0]),
        (Ipv4Addr::from(ext), Ipv4Addr::from(A), 53, 5555)
    );
    let c = s.counters();
    assert_eq!(c.ct.created, 2, "one connection per zone");
    s.assert_no_leak();
}

#[test]
fn ct_table_forks_a_tracked_copy_and_the_original_goes_on() {
    let flows = "\
table=0,priority=100,ip,ct_state=-trk,actions=ct(commit,table=1,zone=65520),output:3
table=1,priority=100,ct_state=+new+trk,ip,actions=output:2
table=1,priority=100,ct_state=+est+trk,ip,actions=output:4
";
    let mut s = setup(4, &[], flows);
    let f = udp(A, B, 1234, 80);
    s.send(1, &f);
    assert_eq!(
        s.recv(3),
        vec![f.clone()],
        "the original continues untracked"
    );
    assert_eq!(
        s.recv(2),
        vec![f.clone()],
        "the tracked copy resumes at table 1"
    );
    let c = s.counters();
    assert_eq!(c.recirculations, 1);
    s.assert_no_leak();
}

#[test]
fn recirculation_is_bounded() {
    // A table that recirculates into itself forever.
    let mut s = setup(
        2,
        &[],
        "table=0,priority=100,ip,actions=ct(table=0,zone=1)\n",
    );
    s.send(1, &udp(A, B, 1, 2));
    let c = s.counters();
    assert_eq!(c.drops[DropReason::RecircDepth as usize], 1);
    assert_eq!(c.recirculations, u64::from(MAX_RECIRC_DEPTH));
    assert!(s.recv(2).is_empty());
    s.assert_no_leak();
}

/// An ICMP port-unreachable from `from` to `to` about the UDP datagram `inner` (as sent:
/// `inner_src:sport -> inner_dst:dport`).
fn icmp_unreachable(
    from: [u8; 4],
    to: [u8; 4],
    inner_src: [u8; 4],
    inner_dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 20 + 8];
    f[0..6].copy_from_slice(&MACS.dst);
    f[6..12].copy_from_slice(&MACS.src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = |h: &mut [u8], src: [u8; 4], dst: [u8; 4], proto: u8, total: u16| {
        h[0] = 0x45;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[8] = 64;
        h[9] = proto;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let c = checksum(&h[..20]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    };
    ip(&mut f[14..34], from, to, 1, 20 + 8 + 28);
    f[34] = 3; // destination unreachable
    f[35] = 3; // port unreachable
    ip(&mut f[42..62], inner_src, inner_dst, 17, 28 + 10);
    f[62..64].copy_from_slice(&sport.to_be_bytes());
    f[64..66].copy_from_slice(&dport.to_be_bytes());
    f[66..68].copy_from_slice(&18u16.to_be_bytes());
    let c = checksum(&f[34..]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn icmp_error_about_a_dnatted_connection_is_related_and_un_dnatted_inside() {
    let flows = "\
table=0,priority=100,ip,actions=ct(table=1,zone=65520,nat)
table=1,priority=200,ct_state=+new+trk,udp,nw_dst=10.96.0.10,tp_dst=53,actions=ct(commit,table=2,zone=65520,nat(dst=10.0.1.1:8080))
table=1,priority=150,ct_state=+rel+trk,ip,actions=goto_table:2
table=1,priority=100,ct_state=+est+trk,ip,actions=goto_table:2
table=2,priority=100,ip,nw_dst=10.0.1.1,actions=output:2
table=2,priority=100,ip,nw_dst=10.0.0.1,actions=output:1
";
    let mut s = setup(2, &[], flows);
    let (svc, ep) = ([10, 96, 0, 10], [10, 0, 1, 1]);
    s.send(1, &udp(A, svc, 33333, 53));
    assert_eq!(s.recv(2).len(), 1);
    // The endpoint has nothing on 8080: port unreachable about A:33333 -> ep:8080.
    s.send(2, &icmp_unreachable(ep, A, A, ep, 33333, 8080));
    let got = s.recv(1);
    assert_eq!(got.len(), 1, "the related ICMP error reaches the client");
    let f = &got[0];
    assert_eq!(checksum(&f[14..34]), 0, "outer IPv4 checksum");
    assert_eq!(&f[26..30], &svc, "outer source un-DNATed");
    assert_eq!(checksum(&f[34..]), 0, "ICMP checksum");
    assert_eq!(checksum(&f[42..62]), 0, "embedded IPv4 checksum");
    assert_eq!(&f[54..58], &A, "embedded source");
    assert_eq!(&f[58..62], &svc, "embedded destination un-DNATed");
    assert_eq!(
        &f[62..66],
        &[0x82, 0x35, 0, 53],
        "embedded ports 33333 -> 53"
    );
    assert_eq!(s.counters().ct.related, 1);
    s.assert_no_leak();
}

#[test]
fn a_table_change_takes_effect_at_once_for_recirculated_packets() {
    let names = NameMap::new();
    let mut s = setup(3, &[], POLICY);
    s.send(1, &udp(A, B, 5000, 53));
    s.send(2, &udp(B, A, 53, 5000));
    assert_eq!(s.recv(1).len(), 1, "reply passes while allowed");
    // A new version: replies towards A are now dropped. The next reply must not use the
    // megaflows (nor the recirculation ids) of the old version.
    load_flows(
        &mut s._pipeline,
        "table=1,priority=200,ct_state=+est+trk,ip,in_port=2,actions=drop",
        &names,
        0,
    )
    .unwrap();
    s.send(2, &udp(B, A, 53, 5000));
    assert!(
        s.recv(1).is_empty(),
        "the new policy applies to the next packet"
    );
    assert!(s.counters().cache_flushes >= 1);
    s.assert_no_leak();
}

#[test]
fn a_fork_without_a_free_frame_is_counted_and_the_original_goes_on() {
    let flows = "\
table=0,priority=100,ip,ct_state=-trk,actions=ct(commit,table=1,zone=65520),output:3
table=1,priority=100,ct_state=+trk,ip,actions=output:2
";
    // Two frames: a burst of two packets holds them all, so no fork can get a copy.
    let mut s = setup_with_pool(3, &[], flows, 2);
    assert!(s.peers[0].send(&udp(A, B, 1, 80)));
    assert!(s.peers[0].send(&udp(A, B, 2, 80)));
    while s.worker.poll_once() > 0 {}
    assert_eq!(s.recv(3).len(), 2, "the originals go on");
    assert!(s.recv(2).is_empty());
    let c = s.counters();
    assert_eq!(c.drops[DropReason::PoolEmpty as usize], 2);
    assert_eq!(c.recirculations, 0);
    s.assert_no_leak();
}

fn udp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 128];
    let n = build::udp6(&mut f, MACS, src, dst, sport, dport, b"conntrack6").unwrap();
    f.truncate(n);
    f
}

#[test]
fn ipv6_dnat_in_zone_65510_and_the_reply_comes_back_from_the_service() {
    let flows = "\
table=0,priority=100,ipv6,actions=ct(table=1,zone=65510,nat)
table=1,priority=200,ct_state=+new+trk,udp6,ipv6_dst=fd00:96::10,tp_dst=53,actions=ct(commit,table=2,zone=65510,nat(dst=[fd00:1::1]:8080))
table=1,priority=100,ct_state=+est+trk,ipv6,actions=goto_table:2
table=2,priority=100,ipv6,ipv6_dst=fd00:1::1,actions=output:2
table=2,priority=100,ipv6,ipv6_dst=fd00::1,actions=output:1
";
    let mut s = setup(2, &[], flows);
    let a: [u8; 16] = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let svc: [u8; 16] = "fd00:96::10"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let ep: [u8; 16] = "fd00:1::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let v6_ok = |f: &[u8]| {
        let len = u16::from_be_bytes([f[18], f[19]]);
        let mut sum = xvs_packet::checksum::pseudo_header_v6(
            f[22..38].try_into().unwrap(),
            f[38..54].try_into().unwrap(),
            17,
            u32::from(len),
        );
        sum.add_bytes(&f[54..54 + usize::from(len)]);
        sum.fold() == 0xffff
    };
    s.send(1, &udp6(a, svc, 4444, 53));
    let out = s.recv(2);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][38..54], &ep, "DNATed destination");
    assert_eq!(&out[0][56..58], &8080u16.to_be_bytes());
    assert!(v6_ok(&out[0]), "UDP checksum after IPv6 DNAT");
    s.send(2, &udp6(ep, a, 8080, 4444));
    let back = s.recv(1);
    assert_eq!(back.len(), 1);
    assert_eq!(&back[0][22..38], &svc, "reply from the Service address");
    assert_eq!(&back[0][54..56], &53u16.to_be_bytes());
    assert!(v6_ok(&back[0]), "UDP checksum after un-DNAT");
    s.assert_no_leak();
}

#[test]
fn workers_share_one_tracker() {
    // The request goes through one worker, the reply through another: only a shared tracker
    // knows the reply is established (with private ones it would be new from B, and dropped).
    let tracker = Arc::new(Conntrack::new(CtConfig::default()));
    let mut w1 = setup_full(3, &[], POLICY, POOL, Some(tracker.clone()));
    let mut w2 = setup_full(3, &[], POLICY, POOL, Some(tracker.clone()));
    w1.send(1, &udp(A, B, 6000, 53));
    assert_eq!(w1.recv(2).len(), 1);
    w2.send(2, &udp(B, A, 53, 6000));
    assert_eq!(
        w2.recv(1).len(),
        1,
        "the other worker sees the reply as established"
    );
    assert_eq!(tracker.conn_count(), 1);
    // A worker with its own tracker does not.
    let mut lonely = setup(3, &[], POLICY);
    lonely.send(2, &udp(B, A, 53, 6000));
    assert!(lonely.recv(1).is_empty());
}
