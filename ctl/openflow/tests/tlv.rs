//! Geneve option mappings and `tun_metadata` fields against bytes Open vSwitch 3.1's
//! `ovs-ofctl` really sent (captured with `tests/capture/capture.py`; the same messages are in
//! `fixtures/tlv.hex`, so `fuzz/seed.sh` puts them in the decode corpus):
//!
//! ```sh
//! capture.py out.hex -- ovs-ofctl -O OpenFlow15 add-tlv-map 'unix:{sock}' \
//!     '{class=0xffff,type=0,len=4}->tun_metadata0,{class=0x0102,type=0x80,len=8}->tun_metadata3'
//! capture.py out.hex -- ovs-ofctl -O OpenFlow15 del-tlv-map 'unix:{sock}' \
//!     '{class=0xffff,type=0,len=4}->tun_metadata0'
//! capture.py out.hex -- ovs-ofctl -O OpenFlow15 del-tlv-map 'unix:{sock}'
//! capture.py out.hex -- ovs-ofctl -O OpenFlow15 add-flow 'unix:{sock}' 'in_port=1,\
//!     tun_metadata0=0x1234/0xffff,tun_metadata1=0x5,actions=set_field:0x5->tun_metadata0,\
//!     move:NXM_NX_REG0[0..15]->NXM_NX_TUN_METADATA2[0..15],output:2'
//! ```
#![allow(clippy::unwrap_used)]

use xvs_flowtable::flow::FlowModCommand;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::print::{dump_flow_line, FormatOptions};
use xvs_flowtable::tlv::{TlvCommand, TlvMapping};
use xvs_openflow::{decode, encode, Body, FlowModMsg, Message, OfpError, NO_BUFFER};

const ADD: &str =
    "060400280000000200002320000000180000000000000000ffff0004000000000102800800030000";
const DEL: &str = "060400200000000200002320000000180001000000000000ffff000400000000";
const CLEAR: &str = "060400180000000200002320000000180002000000000000";
const FLOW: &str = "060e009000000006000000000000000000000000000000000000000000008000ffffffffffffffffffffffff00000000000100198000000400000001000151041234ffff000152010500000000000000000400400000000000190010000150010500000000000000001c00180010000000000000000100040001547c0000000000000010000000020000000000000000";
// As a switch with 4- or 8-byte mappings prints it: tunnel fields before in_port, as OVS's
// match_format. (`ovs-ofctl ofp-print`, without a map, takes the 2-byte wire length as the
// option length and drops the all-ones `/0xffff`.)
const TUN_FLAGS_FLOW: &str = "060e004800000006000000000000000000000000000000000000000000008000ffffffffffffffffffffffff00000000000100110001d10400010001000150010100000000000000";
// As a switch with 4- or 8-byte mappings prints it (see FLOW_TEXT below).
const TUN_FLAGS_TEXT: &str = "tun_flags=+oam,tun_metadata0=0x1 actions=drop";
const FLOW_TEXT: &str = "tun_metadata0=0x1234/0xffff,tun_metadata1=0x5,in_port=1 actions=set_field:0x5->tun_metadata0,move:NXM_NX_REG0[0..15]->NXM_NX_TUN_METADATA2[0..15],output:2";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn round_trip(hex: &str) -> Message {
    let bytes = unhex(hex);
    let (m, used) = decode(&bytes).unwrap();
    assert_eq!(used, bytes.len());
    let mut again = Vec::new();
    encode(&m, &mut again);
    assert_eq!(again, bytes, "re-encoded bytes differ");
    m
}

fn map(class: u16, kind: u8, len: u8, index: u16) -> TlvMapping {
    TlvMapping {
        class,
        kind,
        len,
        index,
    }
}

#[test]
fn tlv_table_mods_from_ovs_ofctl() {
    assert_eq!(
        round_trip(ADD).body,
        Body::TlvTableMod {
            command: TlvCommand::Add,
            maps: vec![map(0xffff, 0, 4, 0), map(0x0102, 0x80, 8, 3)],
        }
    );
    assert_eq!(
        round_trip(DEL).body,
        Body::TlvTableMod {
            command: TlvCommand::Delete,
            maps: vec![map(0xffff, 0, 4, 0)],
        }
    );
    assert_eq!(
        round_trip(CLEAR).body,
        Body::TlvTableMod {
            command: TlvCommand::Clear,
            maps: vec![],
        }
    );
}

#[test]
fn tlv_table_request_and_reply() {
    let req = Message {
        version: 6,
        xid: 9,
        body: Body::TlvTableRequest,
    };
    let mut b = Vec::new();
    encode(&req, &mut b);
    assert_eq!(b, unhex("06040010000000090000232000000019"));
    assert_eq!(decode(&b).unwrap().0, req);
    let reply = Message {
        version: 6,
        xid: 9,
        body: Body::TlvTableReply {
            max_option_space: 32,
            max_fields: 4,
            maps: vec![map(0xffff, 0, 4, 0)],
        },
    };
    let mut b = Vec::new();
    encode(&reply, &mut b);
    assert_eq!(b.len(), 16 + 16 + 8);
    assert_eq!(decode(&b).unwrap().0, reply);
    // OVS's own decoder reads our reply (when ovs-ofctl is installed).
    if let Ok(out) = std::process::Command::new("ovs-ofctl")
        .arg("ofp-print")
        .arg(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("max option space=32 max fields=4"), "{text}");
        assert!(text.contains("0xffff"), "{text}");
        assert!(text.contains("tun_metadata0"), "{text}");
    }
}

#[test]
fn bad_tlv_messages_are_refused() {
    // Unknown command.
    let mut b = unhex(CLEAR);
    b[17] = 3;
    match decode(&b) {
        Err(xvs_openflow::DecodeError::Invalid { error, .. }) => {
            assert_eq!(error, OfpError::TLV_BAD_COMMAND)
        }
        other => panic!("{other:?}"),
    }
    // A mapping cut short.
    let mut b = unhex(ADD);
    b.truncate(b.len() - 4);
    b[3] -= 4;
    assert!(matches!(
        decode(&b),
        Err(xvs_openflow::DecodeError::Invalid { .. })
    ));
    assert_eq!(
        OfpError::from_tlv(xvs_flowtable::tlv::TlvError::AlreadyMapped(0)).name(),
        Some("NXTTMFC_ALREADY_MAPPED")
    );
}

/// `tun_flags=+oam,tun_metadata0=0x1,actions=drop` as ovs-ofctl sent it.
#[test]
fn tun_flags_flow_mod_from_ovs_ofctl() {
    let names = NameMap::new();
    let m = round_trip(TUN_FLAGS_FLOW);
    let Body::FlowMod(fm) = &m.body else {
        panic!("{m:?}");
    };
    let opts = FormatOptions {
        names: &names,
        show_stats: false,
    };
    assert_eq!(dump_flow_line(&fm.fm.flow, &opts).trim(), TUN_FLAGS_TEXT);
    let parsed = parse_flow_mod(
        &TUN_FLAGS_TEXT.replace(" actions", ",actions"),
        FlowModCommand::Add,
        &names,
    )
    .unwrap();
    let mut b = Vec::new();
    encode(
        &Message {
            version: 6,
            xid: m.xid,
            body: Body::FlowMod(Box::new(FlowModMsg {
                fm: parsed,
                buffer_id: NO_BUFFER,
            })),
        },
        &mut b,
    );
    assert_eq!(b, unhex(TUN_FLAGS_FLOW));
}

#[test]
fn tun_metadata_flow_mod_from_ovs_ofctl() {
    let names = NameMap::new();
    let m = round_trip(FLOW);
    let Body::FlowMod(fm) = &m.body else {
        panic!("{m:?}");
    };
    let opts = FormatOptions {
        names: &names,
        show_stats: false,
    };
    assert_eq!(dump_flow_line(&fm.fm.flow, &opts).trim(), FLOW_TEXT);
    // Our encode of the flow parsed from text gives OVS's bytes.
    let parsed = parse_flow_mod(
        &FLOW_TEXT.replace(" actions", ",actions"),
        FlowModCommand::Add,
        &names,
    )
    .unwrap();
    let ours = Message {
        version: 6,
        xid: m.xid,
        body: Body::FlowMod(Box::new(FlowModMsg {
            fm: parsed,
            buffer_id: NO_BUFFER,
        })),
    };
    let mut b = Vec::new();
    encode(&ours, &mut b);
    assert_eq!(b, unhex(FLOW));
}
