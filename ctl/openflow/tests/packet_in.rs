//! Packet-ins and resumes: our bytes read back by our decoder and, where `ovs-ofctl` is
//! installed, printed by Open vSwitch's decoder (`ovs-ofctl ofp-print`) as OVS prints them.

use std::process::Command;
use xvs_flowtable::field::FieldId;
use xvs_flowtable::Match;
use xvs_openflow::{decode, encode, Body, Message, OfpError, PacketIn, NO_BUFFER, OFP15_VERSION};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ofp_print(b: &[u8]) -> Option<String> {
    let out = Command::new("ovs-ofctl")
        .arg("ofp-print")
        .arg(hex(b))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_print(bytes: &[u8], want: &str) {
    if let Some(text) = ofp_print(bytes) {
        assert_eq!(text.trim_end(), want.trim_end(), "ovs-ofctl ofp-print");
    }
}

/// An ICMP echo request from 10.0.0.1 to 10.0.0.2, 98 bytes.
fn frame() -> Vec<u8> {
    let mut f = vec![
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
        0x45, 0, 0, 84, 0, 1, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
        8, 0, 0, 0, 0, 7, 0, 1, // ICMP echo
    ];
    f.resize(98, 0xab);
    f
}

fn packet_in(data_len: usize) -> PacketIn {
    let mut metadata = Match::default();
    metadata.set_exact(FieldId::IN_PORT_OXM, 1);
    metadata.set_exact(FieldId::REG0, 0x10);
    let f = frame();
    PacketIn {
        buffer_id: NO_BUFFER,
        total_len: f.len() as u32,
        reason: 1,
        table_id: 7,
        cookie: 0x1234,
        metadata,
        data: f[..data_len].to_vec(),
        userdata: vec![1, 2, 3, 4, 5],
        continuation: Vec::new(),
    }
}

fn round_trip(body: Body) -> Vec<u8> {
    let msg = Message {
        version: OFP15_VERSION,
        xid: 0,
        body,
    };
    let mut out = Vec::new();
    encode(&msg, &mut out);
    let (back, n) = decode(&out).expect("decodes");
    assert_eq!(n, out.len());
    assert_eq!(back, msg);
    out
}

#[test]
fn packet_in2_prints_as_ovs() {
    let b = round_trip(Body::PacketIn2(Box::new(packet_in(98))));
    check_print(&b, "NXT_PACKET_IN2 (OF1.5) (xid=0x0): table_id=7 cookie=0x1234 total_len=98 reg0=0x10,in_port=1 (via action) data_len=98 (unbuffered)
 userdata=01.02.03.04.05
icmp,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,icmp_type=8,icmp_code=0 icmp_csum:0");
}

#[test]
fn of15_packet_in_prints_as_ovs() {
    let mut p = packet_in(64);
    p.userdata.clear();
    let b = round_trip(Body::PacketIn(Box::new(p)));
    check_print(&b, "OFPT_PACKET_IN (OF1.5) (xid=0x0): table_id=7 cookie=0x1234 total_len=98 reg0=0x10,in_port=1 (via action) data_len=64 (unbuffered) (***total_len != data_len***)
ip,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no");
}

/// A continuation in OVS's form: nested properties; here the bridge (`NXCPT_BRIDGE`, an
/// all-zero uuid) and the table to resume in (`NXCPT_TABLE_ID` 3).
fn continuation() -> Vec<u8> {
    let mut c = vec![0x80, 0x00, 0x00, 0x14, 0, 0, 0, 0];
    c.extend_from_slice(&[0; 16]);
    c.extend_from_slice(&[0x80, 0x04, 0x00, 0x05, 3, 0, 0, 0]);
    c
}

#[test]
fn paused_packet_in2_and_resume() {
    let mut p = packet_in(60);
    p.buffer_id = 5;
    p.continuation = continuation();
    let b = round_trip(Body::PacketIn2(Box::new(p.clone())));
    // OVS decodes the continuation (a bad one is a decode error) but prints it only at
    // higher verbosity.
    check_print(&b, "NXT_PACKET_IN2 (OF1.5) (xid=0x0): table_id=7 cookie=0x1234 total_len=98 reg0=0x10,in_port=1 (via action) data_len=60 buffer=0x00000005
 userdata=01.02.03.04.05
ip,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no");
    p.userdata.clear();
    let b = round_trip(Body::Resume(Box::new(p)));
    check_print(&b, "NXT_RESUME (OF1.5) (xid=0x0): table_id=7 cookie=0x1234 total_len=98 reg0=0x10,in_port=1 (via action) data_len=60 buffer=0x00000005
ip,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no");
}

#[test]
fn bad_properties_are_ovs_errors() {
    let good = round_trip(Body::Resume(Box::new(packet_in(20))));
    let err = |b: &[u8]| match decode(b) {
        Err(xvs_openflow::DecodeError::Invalid { error, .. }) => error,
        other => panic!("decoded: {other:?}"),
    };
    // An unknown property type.
    let mut b = good.clone();
    b[16] = 0x00;
    b[17] = 0x42;
    assert_eq!(err(&b), OfpError::BAD_PROP_TYPE);
    // A property length below its header.
    let mut b = good.clone();
    b[18] = 0;
    b[19] = 3;
    assert_eq!(err(&b), OfpError::BAD_PROP_LEN);
    // A property running past the message.
    let mut b = good.clone();
    b[18] = 0x10;
    assert_eq!(err(&b), OfpError::BAD_PROP_LEN);
    // No packet: only the header.
    let mut b = good[..16].to_vec();
    b[3] = 16;
    assert_eq!(err(&b), OfpError::BAD_LEN);
    // Every truncation decodes to an error or an incomplete message, never a panic.
    for n in 0..good.len() {
        let mut b = good[..n].to_vec();
        if b.len() >= 4 {
            b[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        }
        let _ = decode(&b);
    }
}

#[test]
fn continuation_round_trip_and_errors() {
    use xvs_flowtable::Action;
    use xvs_openflow::packet_in::{pull_continuation, put_continuation, Continuation};
    let actions = vec![Action::Output {
        port: xvs_flowtable::Port(2),
        max_len: 0,
    }];
    let mut enc = Vec::new();
    xvs_openflow::actions::put_actions(&mut enc, &actions);
    let c = Continuation {
        bridge: [7; 16],
        table_id: 4,
        cookie: 0x55,
        actions: enc,
        goto_table: Some(9),
    };
    let mut bytes = Vec::new();
    put_continuation(&mut bytes, &c);
    let (back, got) = pull_continuation(&bytes).expect("decodes");
    assert_eq!(back, c);
    let mut want = actions.clone();
    want.push(Action::GotoTable(9));
    assert_eq!(got, want);

    // Inside a packet-in, Open vSwitch decodes our continuation without error (the
    // goto_table property is ours).
    let mut p = packet_in(98);
    p.continuation = bytes.clone();
    let b = round_trip(Body::PacketIn2(Box::new(p)));
    if let Some(text) = ofp_print(&b) {
        assert!(!text.contains("decode error"), "{text}");
    }

    // No bridge: stale; truncated or unknown properties: property errors; never a panic.
    assert_eq!(pull_continuation(&[]), Err(OfpError::NX_STALE));
    assert_eq!(
        pull_continuation(&[0x80, 0x04, 0, 5, 1, 0, 0, 0]),
        Err(OfpError::NX_STALE)
    );
    assert_eq!(
        pull_continuation(&[0x12, 0x34, 0, 4, 0, 0, 0, 0]),
        Err(OfpError::BAD_PROP_TYPE)
    );
    for n in 0..bytes.len() {
        let _ = pull_continuation(&bytes[..n]);
    }
}
