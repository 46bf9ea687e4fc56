//! Sans-IO tests of the OpenFlow session against a pipeline without workers.

use super::session::Session;
use super::switch::Switch;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use xvs_flowtable::flow::FlowModCommand;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::pipeline::Pipeline;
use xvs_openflow::{
    bundle, decode, encode, Body, BundleControl, FlowModMsg, Message, OfpError, NO_BUFFER,
    OFP15_VERSION,
};

fn switch() -> (Switch, Arc<Mutex<Pipeline>>) {
    let p = Arc::new(Mutex::new(Pipeline::new()));
    let sw = Switch::new(
        "br-int",
        Arc::clone(&p),
        Instant::now(),
        Vec::new(),
        Vec::new(),
        None,
    );
    (sw, p)
}

fn bytes(xid: u32, body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        &Message {
            version: OFP15_VERSION,
            xid,
            body,
        },
        &mut out,
    );
    out
}

fn replies(out: &[u8]) -> Vec<Message> {
    let mut v = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let (m, n) = decode(rest).expect("our replies decode");
        v.push(m);
        rest = &rest[n..];
    }
    v
}

fn add(i: u32) -> Body {
    let text = format!(
        "table=1,priority=10,ip,nw_src=10.{}.{}.{},actions=output:2",
        i >> 16,
        (i >> 8) & 255,
        i & 255
    );
    let fm = parse_flow_mod(&text, FlowModCommand::Add, &NameMap::new()).expect("parses");
    Body::FlowMod(Box::new(FlowModMsg {
        fm,
        buffer_id: NO_BUFFER,
    }))
}

fn ctrl(xid: u32, id: u32, t: u16) -> Vec<u8> {
    bytes(
        xid,
        Body::BundleControl(BundleControl {
            bundle_id: id,
            ctrl_type: t,
            flags: bundle::ATOMIC,
            properties: Vec::new(),
        }),
    )
}

fn bundle_add(xid: u32, id: u32, body: Body) -> Vec<u8> {
    bytes(
        xid,
        Body::BundleAdd {
            bundle_id: id,
            flags: bundle::ATOMIC,
            message: Box::new(Message {
                version: OFP15_VERSION,
                xid,
                body,
            }),
        },
    )
}

#[test]
fn hello_then_errors_keep_the_session() {
    let (mut sw, _) = switch();
    let mut s = Session::new();
    let ours = replies(&std::mem::take(&mut s.out));
    assert!(matches!(ours[0].body, Body::Hello { versions } if versions == (1 << 6) | (1 << 1)));
    let mut input = bytes(1, Body::Hello { versions: 1 << 6 });
    input.extend_from_slice(&[6, 77, 0, 8, 0, 0, 0, 2]);
    input.extend_from_slice(&bytes(3, Body::EchoRequest(vec![9, 9])));
    // Half a message stays for the next read.
    let partial = bytes(4, Body::BarrierRequest);
    input.extend_from_slice(&partial[..5]);
    let used = s.receive(&input, &mut sw).expect("session stays up");
    assert_eq!(used, input.len() - 5);
    let r = replies(&std::mem::take(&mut s.out));
    assert_eq!(r.len(), 2);
    assert!(
        matches!(&r[0].body, Body::Error { error, data } if *error == OfpError::BAD_TYPE && data.len() == 8)
    );
    assert_eq!(r[1].body, Body::EchoReply(vec![9, 9]));
    s.receive(&partial, &mut sw).expect("ok");
    assert_eq!(replies(&s.out)[0].body, Body::BarrierReply);
}

#[test]
fn standalone_mods_batch_into_one_commit_and_report_each_failure() {
    let (mut sw, p) = switch();
    let mut s = Session::new();
    s.out.clear();
    let mut input = Vec::new();
    for i in 0..10 {
        input.extend_from_slice(&bytes(10 + i, add(i)));
    }
    let bad = parse_flow_mod(
        "table=1,priority=5,actions=group:9",
        FlowModCommand::Add,
        &NameMap::new(),
    )
    .expect("parses");
    input.extend_from_slice(&bytes(
        99,
        Body::FlowMod(Box::new(FlowModMsg {
            fm: bad,
            buffer_id: NO_BUFFER,
        })),
    ));
    input.extend_from_slice(&bytes(100, add(100)));
    input.extend_from_slice(&bytes(101, Body::BarrierRequest));
    s.receive(&input, &mut sw).expect("ok");
    let r = replies(&s.out);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].xid, 99);
    assert!(matches!(
        r[0].body,
        Body::Error {
            error: OfpError::BAD_OUT_GROUP,
            ..
        }
    ));
    assert_eq!(r[1].body, Body::BarrierReply);
    let p = p.lock().expect("lock");
    assert_eq!(p.snapshot().n_flows(), 11);
    assert_eq!(p.version(), 1, "one commit for the whole read");
}

#[test]
fn failed_atomic_bundle_applies_nothing() {
    let (mut sw, p) = switch();
    let mut s = Session::new();
    s.out.clear();
    let mut input = ctrl(1, 5, bundle::OPEN_REQUEST);
    for i in 0..100 {
        input.extend_from_slice(&bundle_add(10 + i, 5, add(i)));
    }
    // Valid on its own, refused at commit: modify of a group that does not exist.
    input.extend_from_slice(&bundle_add(
        500,
        5,
        Body::GroupMod(Box::new(
            xvs_flowtable::group::parse_group_mod(
                "group_id=3,type=all,bucket=actions=output:1",
                xvs_flowtable::group::GroupCommand::Modify,
                &NameMap::new(),
            )
            .expect("parses"),
        )),
    ));
    input.extend_from_slice(&ctrl(600, 5, bundle::COMMIT_REQUEST));
    s.receive(&input, &mut sw).expect("ok");
    let r = replies(&s.out);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(matches!(
        r[1].body,
        Body::Error {
            error: OfpError::UNKNOWN_GROUP,
            ..
        }
    ));
    assert_eq!(r[1].xid, 500, "the error echoes the failing BUNDLE_ADD");
    assert!(matches!(
        r[2].body,
        Body::Error {
            error: OfpError::BUNDLE_MSG_FAILED,
            ..
        }
    ));
    assert_eq!(r[2].xid, 600);
    assert_eq!(p.lock().expect("lock").snapshot().n_flows(), 0);
}

/// CPU time of this thread (the machine is shared: wall time says little).
fn cpu() -> std::time::Duration {
    // The first field of schedstat: nanoseconds on a CPU.
    let ns = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    std::time::Duration::from_nanos(ns)
}

/// Decode + commit of a 100,000-flow bundle without any socket: the server's own cost.
#[test]
fn bundle_decode_and_commit_rate() {
    let (mut sw, p) = switch();
    let mut s = Session::new();
    s.out.clear();
    let n = 100_000u32;
    let mut input = ctrl(1, 5, bundle::OPEN_REQUEST);
    for i in 0..n {
        input.extend_from_slice(&bundle_add(10 + i, 5, add(i)));
    }
    input.extend_from_slice(&ctrl(n + 20, 5, bundle::COMMIT_REQUEST));
    // Decoding alone, for comparison.
    let c = cpu();
    let mut rest = &input[..];
    while let Ok((_, n)) = decode(rest) {
        rest = &rest[n..];
    }
    eprintln!("decode alone: {:.3} s CPU", (cpu() - c).as_secs_f64());
    let c = cpu();
    let t = Instant::now();
    let mut used = 0;
    // In 64 KiB reads, as the socket delivers them.
    let mut rx = Vec::new();
    for chunk in input.chunks(65536) {
        rx.extend_from_slice(chunk);
        let u = s.receive(&rx, &mut sw).expect("ok");
        rx.drain(..u);
        used += u;
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu_secs = (cpu() - c).as_secs_f64();
    assert_eq!(used, input.len());
    assert_eq!(p.lock().expect("lock").snapshot().n_flows(), n as usize);
    eprintln!(
        "{n} flows: {secs:.3} s wall, {cpu_secs:.3} s CPU: {:.0} flows/s of CPU time",
        f64::from(n) / cpu_secs
    );
}

/// Random messages (valid headers of every type, random bodies) never panic the session and
/// each is answered or accepted without closing it.
#[test]
fn random_messages_do_not_break_the_session() {
    let (mut sw, _) = switch();
    let mut s = Session::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let hello = bytes(1, Body::Hello { versions: 1 << 6 });
    s.receive(&hello, &mut sw).expect("hello");
    for i in 0..20_000u32 {
        let ty = (next() % 36) as u8;
        let len = 8 + (next() % 200) as usize;
        let mut m = vec![OFP15_VERSION, ty, (len >> 8) as u8, len as u8];
        m.extend_from_slice(&i.to_be_bytes());
        for _ in 8..len {
            m.push(next() as u8);
        }
        // Sometimes a plausible multipart or bundle header.
        if len >= 16 && i % 3 == 0 {
            m[8] = 0;
            m[9] = (next() % 16) as u8;
        }
        if ty == 0 {
            continue; // A HELLO without a common version closes, as it should.
        }
        match s.receive(&m, &mut sw) {
            Ok(n) => assert_eq!(n, m.len()),
            Err(e) => panic!("message {i} ({m:?}) closed the session: {e:?}"),
        }
        s.out.clear();
    }
}

fn record(controller_id: u16) -> xvs_engine::packet_in::PacketInRecord {
    let mut key = xvs_packet::FlowKey::ZERO;
    key.set(xvs_packet::key::layout::IN_PORT, 3);
    let mut rec = xvs_engine::packet_in::PacketInRecord {
        total_len: 100,
        len: 4,
        data: [0; xvs_engine::packet_in::MAX_DATA],
        table: 5,
        cookie: 0x99,
        reason: 1,
        controller_id,
        meter_id: 0,
        key,
        userdata_len: 2,
        userdata: [0; xvs_engine::packet_in::MAX_USERDATA],
        paused: false,
        resume_len: 0,
        resume: [0; xvs_engine::packet_in::MAX_RESUME],
        resume_goto: None,
    };
    rec.data[..4].copy_from_slice(&[1, 2, 3, 4]);
    rec.userdata[..2].copy_from_slice(&[0xaa, 0xbb]);
    rec
}

/// A negotiated session with `setup` messages applied; its output is cleared.
fn session_with(sw: &mut Switch, setup: Vec<Body>) -> Session {
    let mut s = Session::new();
    let mut input = bytes(1, Body::Hello { versions: 1 << 6 });
    for b in setup {
        input.extend_from_slice(&bytes(2, b));
    }
    s.receive(&input, sw).expect("session stays up");
    s.out.clear();
    s
}

#[test]
fn packet_ins_follow_controller_id_role_and_format() {
    let (mut sw, _) = switch();
    let pin = super::switch::packet_in_of(&record(0), sw.bridge_id());
    assert_eq!(
        pin.metadata
            .get(xvs_flowtable::field::FieldId::IN_PORT_OXM)
            .0,
        3
    );
    assert_eq!((pin.table_id, pin.cookie, pin.total_len), (5, 0x99, 100));

    // Default format: an OpenFlow 1.5 PACKET_IN without the userdata.
    let mut plain = session_with(&mut sw, vec![]);
    assert!(plain.packet_in(&pin, 0));
    let r = replies(&plain.out);
    let Body::PacketIn(p) = &r[0].body else {
        panic!("{r:?}")
    };
    assert!(p.userdata.is_empty());
    assert_eq!(p.data, vec![1, 2, 3, 4]);

    // NXT_PACKET_IN2 keeps the userdata.
    let mut two = session_with(&mut sw, vec![Body::SetPacketInFormat(2)]);
    assert!(two.packet_in(&pin, 0));
    let r = replies(&two.out);
    let Body::PacketIn2(p) = &r[0].body else {
        panic!("{r:?}")
    };
    assert_eq!(p.userdata, vec![0xaa, 0xbb]);

    // Another controller id, or the slave role: nothing.
    let mut other = session_with(&mut sw, vec![Body::SetControllerId(7)]);
    assert!(!other.packet_in(&pin, 0));
    assert!(other.packet_in(&super::switch::packet_in_of(&record(7), sw.bridge_id()), 7));
    let mut slave = session_with(
        &mut sw,
        vec![Body::RoleRequest(xvs_openflow::Role {
            role: 3,
            generation_id: 1,
        })],
    );
    assert!(!slave.packet_in(&pin, 0));
    assert!(slave.out.is_empty());
}

#[test]
fn resume_of_a_foreign_continuation_is_stale() {
    let (mut sw, _) = switch();
    let mut s = session_with(&mut sw, vec![]);
    let mut pin = super::switch::packet_in_of(&record(0), sw.bridge_id());
    pin.continuation = vec![0x80, 0x04, 0, 5, 1, 0, 0, 0];
    s.receive(&bytes(9, Body::Resume(Box::new(pin))), &mut sw)
        .expect("session stays up");
    let r = replies(&s.out);
    assert!(
        matches!(&r[0].body, Body::Error { error, .. } if *error == OfpError::NX_STALE),
        "{r:?}"
    );
}

#[test]
fn controller_meter_limits_packet_ins() {
    let (mut sw, _) = switch();
    // A 1 packet/s meter with a burst of 1: of 20 packet-ins at once, most are metered.
    let meter = xvs_flowtable::meter::parse_meter(
        "meter=1,pktps,burst,bands=type=drop,rate=1,burst_size=1",
    )
    .expect("parses");
    let mut s = session_with(
        &mut sw,
        vec![Body::MeterMod {
            command: xvs_openflow::MeterCommand::Add,
            meter,
        }],
    );
    s.receive(&bytes(3, Body::BarrierRequest), &mut sw)
        .expect("session stays up");
    assert!(replies(&s.out)
        .iter()
        .all(|m| !matches!(m.body, Body::Error { .. })));
    let (mut tx, rx) = xvs_engine::packet_in::ring();
    sw.set_packet_ins(vec![rx]);
    for i in 0..20u16 {
        let mut r = record(0);
        r.meter_id = u32::from(i % 2); // every other one unmetered
        assert!(tx.push(r).is_ok());
    }
    let mut out = Vec::new();
    sw.drain_packet_ins(&mut out);
    let metered = sw
        .stats
        .packet_in_metered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(out.len() as u64 + metered, 20);
    assert!((8..=9).contains(&metered), "metered {metered}");
}

#[test]
fn port_changes_become_port_status_for_negotiated_sessions() {
    use xvs_engine::{EnginePort, Forwarding, Worker, WorkerConfig};
    use xvs_io::{FramePool, MemoryPort};
    use xvs_openflow::PortReason;
    let pool = FramePool::new(256, 2048, 128).expect("pool");
    let (pa, _peer_a) = MemoryPort::pair("a", 16);
    let mut worker = Worker::new(
        0,
        None,
        pool,
        vec![EnginePort::new(1, Box::new(pa))],
        Forwarding::IoFwd { peers: vec![None] },
        WorkerConfig::default(),
    )
    .expect("worker");
    let shared = vec![worker.shared()];
    let p = Arc::new(Mutex::new(Pipeline::new()));
    let mut sw = Switch::new(
        "br-int",
        p,
        Instant::now(),
        super::ports_of(&shared),
        shared,
        None,
    );
    let mut talking = Session::new();
    let hello = bytes(
        1,
        Body::Hello {
            versions: 1 << OFP15_VERSION,
        },
    );
    talking.receive(&hello, &mut sw).expect("hello");
    talking.out.clear();
    let mut silent = Session::new();
    silent.out.clear();

    let (pb, _peer_b) = MemoryPort::pair("b", 16);
    worker
        .add_port(EnginePort::new(2, Box::new(pb)))
        .map_err(|(e, _)| e)
        .expect("add");
    let changes = sw.refresh_ports();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].reason, PortReason::Add);
    assert_eq!(
        (changes[0].desc.port_no, changes[0].desc.name.as_str()),
        (2, "b")
    );
    assert!(sw.port_descs(0xffff_ffff).iter().any(|d| d.port_no == 2));
    assert!(talking.port_status(&changes[0]));
    assert!(!silent.port_status(&changes[0]), "not negotiated yet");
    assert!(silent.out.is_empty());
    match &replies(&talking.out)[..] {
        [Message {
            body: Body::PortStatus(ps),
            ..
        }] => assert_eq!(**ps, changes[0]),
        other => panic!("{other:?}"),
    }

    worker.remove_port(1).expect("remove");
    let changes = sw.refresh_ports();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].reason, PortReason::Delete);
    assert_eq!(changes[0].desc.port_no, 1);
    assert_eq!(sw.port_descs(0xffff_ffff).len(), 1);
    assert!(sw.port_stats(1).is_err(), "a deleted port has no counters");
    assert!(sw.refresh_ports().is_empty(), "nothing changed since");
}
