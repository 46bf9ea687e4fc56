//! Control messages, errors and malformed input; where `ovs-ofctl` is installed, OVS's own
//! decoder (`ovs-ofctl ofp-print`) must read our bytes as the message we meant.

use std::process::Command;
use xvs_openflow::{
    decode, encode, error_reply, negotiate, Body, DecodeError, Features, Message, OfpError, Role,
    SwitchConfig, OFP10_VERSION, OFP15_VERSION,
};

fn bytes_of(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

fn msg(body: Body) -> Message {
    Message {
        version: OFP15_VERSION,
        xid: 0x1234,
        body,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `ovs-ofctl ofp-print` of `b`, or `None` when ovs-ofctl is not installed.
fn ofp_print(b: &[u8]) -> Option<String> {
    let out = Command::new("ovs-ofctl")
        .arg("ofp-print")
        .arg(hex(b))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn roundtrip(m: &Message) -> Vec<u8> {
    let b = bytes_of(m);
    let (back, used) = decode(&b).expect("decode");
    assert_eq!(used, b.len());
    assert_eq!(&back, m);
    b
}

#[test]
fn control_messages_roundtrip_and_ovs_reads_them() {
    let cases: Vec<(Message, &str)> = vec![
        (
            msg(Body::Hello {
                versions: (1 << 6) | (1 << 1),
            }),
            "OFPT_HELLO (OF1.5) (xid=0x1234):\n version bitmap: 0x01, 0x06",
        ),
        (
            msg(Body::EchoRequest(vec![1, 2, 3])),
            "OFPT_ECHO_REQUEST (OF1.5) (xid=0x1234): 3 bytes of payload",
        ),
        (
            msg(Body::EchoReply(vec![])),
            "OFPT_ECHO_REPLY (OF1.5) (xid=0x1234): 0 bytes of payload",
        ),
        (
            msg(Body::FeaturesRequest),
            "OFPT_FEATURES_REQUEST (OF1.5) (xid=0x1234):",
        ),
        (
            msg(Body::FeaturesReply(Features {
                datapath_id: 0xabcdef,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0x4f,
            })),
            "OFPT_FEATURES_REPLY (OF1.5) (xid=0x1234): dpid:0000000000abcdef\nn_tables:254, n_buffers:0\ncapabilities: FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS",
        ),
        (
            msg(Body::GetConfigRequest),
            "OFPT_GET_CONFIG_REQUEST (OF1.5) (xid=0x1234):",
        ),
        (
            msg(Body::GetConfigReply(SwitchConfig {
                flags: 0,
                miss_send_len: 0,
            })),
            "OFPT_GET_CONFIG_REPLY (OF1.5) (xid=0x1234): frags=normal miss_send_len=0",
        ),
        (
            msg(Body::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            })),
            "OFPT_SET_CONFIG (OF1.5) (xid=0x1234): frags=normal miss_send_len=128",
        ),
        (
            msg(Body::BarrierRequest),
            "OFPT_BARRIER_REQUEST (OF1.5) (xid=0x1234):",
        ),
        (
            msg(Body::BarrierReply),
            "OFPT_BARRIER_REPLY (OF1.5) (xid=0x1234):",
        ),
        (
            msg(Body::RoleRequest(Role {
                role: 2,
                generation_id: 7,
            })),
            "OFPT_ROLE_REQUEST (OF1.5) (xid=0x1234): role=primary generation_id=7",
        ),
        (
            msg(Body::RoleReply(Role {
                role: 3,
                generation_id: 7,
            })),
            "OFPT_ROLE_REPLY (OF1.5) (xid=0x1234): role=secondary generation_id=7",
        ),
    ];
    for (m, want) in &cases {
        let b = roundtrip(m);
        if let Some(text) = ofp_print(&b) {
            assert!(
                text.starts_with(want),
                "ofp-print of {}:\n{text}\nwant:\n{want}",
                hex(&b)
            );
        }
    }
}

#[test]
fn hello_negotiation() {
    // A HELLO without a bitmap element means "this version and all below it".
    let plain = [OFP15_VERSION, 0, 0, 8, 0, 0, 0, 1];
    let (m, _) = decode(&plain).expect("hello");
    assert_eq!(m.body, Body::Hello { versions: 0x7e });
    let ours = (1 << OFP15_VERSION) | (1 << OFP10_VERSION);
    assert_eq!(negotiate(ours, 0x7e), Some(OFP15_VERSION));
    assert_eq!(negotiate(ours, 1 << 4), None);
    // OVS's HELLO as ovs-ofctl -O OpenFlow15 sends it.
    let ovs = [6, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x40];
    let (m, used) = decode(&ovs).expect("hello");
    assert_eq!(used, 16);
    assert_eq!(m.body, Body::Hello { versions: 0x40 });
    assert_eq!(bytes_of(&m), ovs);
    // OpenFlow 1.0 HELLO and ECHO decode too (for the later PORT_MOD connection).
    let (m, _) = decode(&[1, 2, 0, 8, 0, 0, 0, 9]).expect("echo 1.0");
    assert_eq!(m.version, OFP10_VERSION);
    assert_eq!(m.body, Body::EchoRequest(vec![]));
}

#[test]
fn framing() {
    assert_eq!(
        decode(&[6, 0, 0]),
        Err(DecodeError::Incomplete { needed: 8 })
    );
    assert_eq!(
        decode(&[6, 20, 0, 16, 0, 0, 0, 1]),
        Err(DecodeError::Incomplete { needed: 16 })
    );
    assert_eq!(
        decode(&[6, 20, 0, 4, 0, 0, 0, 1]),
        Err(DecodeError::BadFraming(4))
    );
    // Two messages back to back.
    let mut two = bytes_of(&msg(Body::BarrierRequest));
    two.extend(bytes_of(&msg(Body::EchoRequest(vec![9]))));
    let (a, n) = decode(&two).expect("first");
    assert_eq!(a.body, Body::BarrierRequest);
    let (b, _) = decode(&two[n..]).expect("second");
    assert_eq!(b.body, Body::EchoRequest(vec![9]));
    // Unknown type and wrong version give OVS's errors, with the length to skip.
    assert_eq!(
        decode(&[6, 99, 0, 8, 0, 0, 0, 1]),
        Err(DecodeError::Invalid {
            error: OfpError::BAD_TYPE,
            len: 8
        })
    );
    assert_eq!(
        decode(&[4, 20, 0, 8, 0, 0, 0, 1]),
        Err(DecodeError::Invalid {
            error: OfpError::BAD_VERSION,
            len: 8
        })
    );
    assert_eq!(
        decode(&[6, 20, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0]),
        Err(DecodeError::Invalid {
            error: OfpError::BAD_LEN,
            len: 12
        })
    );
}

/// A FLOW_MOD (add, table 0) with the given OXM entries and instructions.
fn flow_mod(oxm: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut b = vec![6, 14, 0, 0, 0, 0, 0, 0x42];
    b.extend([0; 16]); // cookie, cookie mask
    b.extend([0, 0, 0, 0, 0, 0, 0x80, 0]); // table, command, timeouts, priority
    b.extend([0xff; 12]); // buffer, out_port, out_group
    b.extend([0; 4]); // flags, importance
    let mlen = 4 + oxm.len();
    b.extend([0, 1, (mlen >> 8) as u8, mlen as u8]);
    b.extend(oxm);
    while b.len() % 8 != 0 {
        b.push(0);
    }
    b.extend(instructions);
    let len = b.len();
    b[2] = (len >> 8) as u8;
    b[3] = len as u8;
    b
}

fn decode_err(b: &[u8]) -> OfpError {
    match decode(b) {
        Err(DecodeError::Invalid { error, len }) => {
            assert_eq!(len, b.len());
            error
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

const ETH_TYPE_IP: [u8; 6] = [0x80, 0, 0x0a, 2, 0x08, 0x00];
const IP_PROTO_TCP: [u8; 5] = [0x80, 0, 0x14, 1, 6];
const TCP_DST_80: [u8; 6] = [0x80, 0, 0x1c, 2, 0, 80];

#[test]
fn match_errors_are_ovs_errors() {
    let ok: Vec<u8> = [&ETH_TYPE_IP[..], &IP_PROTO_TCP, &TCP_DST_80].concat();
    assert!(decode(&flow_mod(&ok, &[])).is_ok());
    // tcp_dst before its prerequisites.
    let bad: Vec<u8> = [&ETH_TYPE_IP[..], &TCP_DST_80].concat();
    assert_eq!(decode_err(&flow_mod(&bad, &[])), OfpError::BAD_PREREQ);
    // The same field twice.
    let dup: Vec<u8> = [&ETH_TYPE_IP[..], &ETH_TYPE_IP].concat();
    assert_eq!(decode_err(&flow_mod(&dup, &[])), OfpError::DUP_FIELD);
    // A mask on eth_type, which takes none.
    let masked = [0x80, 0, 0x0b, 4, 0x08, 0, 0xff, 0xff];
    assert_eq!(decode_err(&flow_mod(&masked, &[])), OfpError::BAD_MASK);
    // An unknown basic field.
    let unknown = [0x80, 0, 0x7e, 2, 0, 0];
    assert_eq!(decode_err(&flow_mod(&unknown, &[])), OfpError::BAD_FIELD);
    // A wrong payload length.
    let short = [0x80, 0, 0x0a, 1, 0x08];
    assert_eq!(decode_err(&flow_mod(&short, &[])), OfpError::BAD_MATCH_LEN);
    // vlan_vid above 0x1fff.
    let vid = [0x80, 0, 0x0c, 2, 0x20, 0];
    assert_eq!(decode_err(&flow_mod(&vid, &[])), OfpError::BAD_VALUE);
}

fn apply(actions: &[u8]) -> Vec<u8> {
    let len = 8 + actions.len();
    let mut b = vec![0, 4, (len >> 8) as u8, len as u8, 0, 0, 0, 0];
    b.extend(actions);
    b
}

#[test]
fn action_errors_are_ovs_errors() {
    // OFPAT_SET_QUEUE (21) is not supported.
    let set_queue = [0, 21, 0, 8, 0, 0, 0, 1];
    assert_eq!(
        decode_err(&flow_mod(&[], &apply(&set_queue))),
        OfpError::BAD_ACTION_TYPE
    );
    // Nicira NXAST_MULTIPATH (10) is not supported.
    let multipath = [0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 10, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_err(&flow_mod(&[], &apply(&multipath))),
        OfpError::BAD_ACTION_EXP_TYPE
    );
    // An unknown experimenter.
    let exp = [0xff, 0xff, 0, 16, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_err(&flow_mod(&[], &apply(&exp))),
        OfpError::BAD_ACTION_EXPERIMENTER
    );
    // An action length that is not a multiple of 8.
    let odd = [0, 22, 0, 6, 0, 0, 0, 1];
    assert_eq!(
        decode_err(&flow_mod(&[], &apply(&odd))),
        OfpError::BAD_ACTION_LEN
    );
    // set_field of a read-only field (ct_state).
    let ro = [0, 25, 0, 16, 0, 1, 0xd2, 4, 0, 0, 0, 0x20, 0, 0, 0, 0];
    assert_eq!(
        decode_err(&flow_mod(&[], &apply(&ro))),
        OfpError::BAD_SET_TYPE
    );
    // WRITE_ACTIONS is not supported; an unknown instruction is unknown.
    assert_eq!(
        decode_err(&flow_mod(&[], &[0, 3, 0, 8, 0, 0, 0, 0])),
        OfpError::UNSUP_INST
    );
    assert_eq!(
        decode_err(&flow_mod(&[], &[0, 9, 0, 8, 0, 0, 0, 0])),
        OfpError::UNKNOWN_INST
    );
}

#[test]
fn error_reply_echoes_64_bytes() {
    let output = [0, 0, 0, 16, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    let req = flow_mod(
        &[&ETH_TYPE_IP[..], &TCP_DST_80].concat(),
        &apply(&[output, output].concat()),
    );
    assert!(req.len() > 64);
    let err = decode_err(&req);
    let reply = error_reply(&req, err);
    assert_eq!(reply.xid, 0x42);
    let b = bytes_of(&reply);
    assert_eq!(b.len(), 8 + 4 + 64);
    assert_eq!(&b[12..], &req[..64]);
    let (back, _) = decode(&b).expect("error");
    assert_eq!(back, reply);
    if let Some(text) = ofp_print(&b) {
        assert!(
            text.starts_with("OFPT_ERROR (OF1.5) (xid=0x42): OFPBMC_BAD_PREREQ"),
            "{text}"
        );
    }
}

#[test]
fn nicira_messages_roundtrip_and_ovs_reads_them() {
    let cases = [
        (
            msg(Body::SetControllerId(62373)),
            "NXT_SET_CONTROLLER_ID (OF1.5) (xid=0x1234): id=62373",
        ),
        (
            msg(Body::SetPacketInFormat(2)),
            "NXT_SET_PACKET_IN_FORMAT (OF1.5) (xid=0x1234): format=nxt_packet_in2",
        ),
    ];
    for (m, want) in &cases {
        let b = roundtrip(m);
        if let Some(text) = ofp_print(&b) {
            assert!(text.starts_with(want), "{text}");
        }
    }
    let bad = [
        6, 4, 0, 20, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0, 16, 0, 0, 0, 9,
    ];
    assert_eq!(
        decode(&bad),
        Err(DecodeError::Invalid {
            error: OfpError::BAD_PACKET_IN_FORMAT,
            len: 20
        })
    );
}

#[test]
fn group_selection_method_must_be_known() {
    // ovs-ofctl's GROUP_MOD for group 3003 (selection_method=hash, param 7), then with the
    // method name blanked: OVS knows only hash and dp_hash.
    let hex = "060f0060000000220000010000000bbb00200000ffffffff0020001000000000000000100000000100000000000000000000000800010000ffff00280000154d0000000100000000686173680000000000000000000000000000000000000007";
    let mut b: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let (m, _) = decode(&b).expect("hash");
    let Body::GroupMod(gm) = &m.body else {
        panic!("not a group mod");
    };
    assert_eq!(gm.group.selection_method, "hash");
    assert_eq!(gm.group.selection_method_param, 7);
    let at = b.len() - 24;
    b[at..at + 4].fill(0);
    assert_eq!(
        decode(&b),
        Err(DecodeError::Invalid {
            error: OfpError::BAD_GROUP_TYPE,
            len: b.len()
        })
    );
}

#[test]
fn nicira_reg_load_and_move_are_rejected_in_openflow15_as_ovs_does() {
    // OVS 3.1 has no OpenFlow 1.5 mapping for NXAST_REG_LOAD/REG_MOVE (it sends set_field
    // and copy_field) and answers OFPBAC_BAD_VENDOR_TYPE (= OFPBAC_BAD_EXP_TYPE).
    let load = [
        0xff, 0xff, 0, 24, 0, 0, 0x23, 0x20, 0, 7, 0x01, 0x03, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5,
    ];
    let mv = [
        0xff, 0xff, 0, 24, 0, 0, 0x23, 0x20, 0, 6, 0, 16, 0, 0, 0, 16, 0, 1, 2, 4, 0, 1, 4, 4,
    ];
    for a in [&load[..], &mv[..]] {
        let req = flow_mod(&[], &apply(a));
        assert_eq!(decode_err(&req), OfpError::BAD_ACTION_EXP_TYPE);
        if let Some(text) = ofp_print(&req) {
            assert!(text.is_empty() || !text.contains("actions=load"), "{text}");
        }
    }
}
