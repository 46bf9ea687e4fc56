//! Differential tests against Open vSwitch 3.1's `ovs-ofctl`.
//!
//! `tests/fixtures/*.hex` hold the messages `ovs-ofctl -O OpenFlow15 add-flows` really sent
//! (captured by `tests/capture/capture.py`, see `tests/capture/regen.sh`) for the flows in the
//! matching `*.txt` (the flowtable corpus, as OVS prints it). For every FLOW_MOD:
//! - our decode, printed by xvs-flowtable's printer, equals the input line exactly;
//! - our encode of the decoded message gives the captured bytes back;
//! - our encode of the flow parsed from the text gives the captured bytes.

use xvs_flowtable::flow::FlowModCommand;
use xvs_flowtable::names::NameMap;
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::print::{dump_flow_line, FormatOptions};
use xvs_openflow::{decode, encode, msg_type, Body, FlowModMsg, Message, NO_BUFFER};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks one captured add-flows session; returns the number of FLOW_MODs checked.
fn check_flows(set: &str) -> usize {
    let empty = NameMap::new();
    let opts = FormatOptions {
        names: &empty,
        show_stats: false,
    };
    let msgs: Vec<Vec<u8>> = fixture(&format!("{set}.hex")).lines().map(unhex).collect();
    let text = fixture(&format!("{set}.txt"));
    let lines: Vec<&str> = text.lines().collect();
    let flow_mods: Vec<&Vec<u8>> = msgs.iter().filter(|m| m[1] == msg_type::FLOW_MOD).collect();
    assert_eq!(flow_mods.len(), lines.len(), "{set}: one FLOW_MOD per flow");
    let mut failures = Vec::new();
    for (i, (bytes, line)) in flow_mods.iter().zip(&lines).enumerate() {
        let ctx = format!("{set}.txt:{}: {line}", i + 1);
        let (msg, used) = match decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{ctx}\n  decode: {e}"));
                continue;
            }
        };
        assert_eq!(used, bytes.len());
        let Body::FlowMod(fm) = &msg.body else {
            panic!("{ctx}: not a flow mod");
        };
        let printed = dump_flow_line(&fm.fm.flow, &opts);
        if printed.trim_start() != *line {
            failures.push(format!("{ctx}\n  ours: {printed}"));
        }
        let mut again = Vec::new();
        encode(&msg, &mut again);
        if again != **bytes {
            failures.push(format!(
                "{ctx}\n  re-encode:\n  ovs : {}\n  ours: {}",
                hex(bytes),
                hex(&again)
            ));
        }
        match parse_flow_mod(line, FlowModCommand::Add, &empty) {
            Ok(parsed) => {
                let ours = Message {
                    version: msg.version,
                    xid: msg.xid,
                    body: Body::FlowMod(Box::new(FlowModMsg {
                        fm: parsed,
                        buffer_id: NO_BUFFER,
                    })),
                };
                let mut out = Vec::new();
                encode(&ours, &mut out);
                if out != **bytes {
                    failures.push(format!(
                        "{ctx}\n  encode from text:\n  ovs : {}\n  ours: {}",
                        hex(bytes),
                        hex(&out)
                    ));
                }
            }
            Err(e) => failures.push(format!("{ctx}\n  parse: {e}")),
        }
    }
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(25);
        panic!("{set}: {n} failures\n{}", failures.join("\n"));
    }
    flow_mods.len()
}

#[test]
fn antrea_corpus_flow_mods_match_ovs_ofctl() {
    assert_eq!(check_flows("flows"), 626);
}

#[test]
fn random_corpus_flow_mods_match_ovs_ofctl() {
    assert_eq!(check_flows("random"), 724);
}

#[test]
fn other_captured_messages_decode_and_reencode() {
    for set in ["flows", "random"] {
        for line in fixture(&format!("{set}.hex")).lines() {
            let bytes = unhex(line);
            if bytes[1] == msg_type::FLOW_MOD {
                continue;
            }
            let (msg, used) = decode(&bytes).expect("decode");
            assert_eq!(used, bytes.len());
            assert!(matches!(msg.body, Body::MultipartRequest { .. }));
            let mut out = Vec::new();
            encode(&msg, &mut out);
            assert_eq!(out, bytes);
        }
    }
}

#[test]
fn group_mods_match_ovs_ofctl() {
    use xvs_flowtable::group::{dump_group_line, parse_group_mod, GroupCommand};
    let empty = NameMap::new();
    let text = fixture("groups.txt");
    let lines: Vec<&str> = text.lines().collect();
    let msgs: Vec<Vec<u8>> = fixture("groups.hex")
        .lines()
        .map(unhex)
        .filter(|m| m[1] == msg_type::GROUP_MOD)
        .collect();
    assert_eq!(msgs.len(), lines.len());
    assert_eq!(msgs.len(), 45);
    for (bytes, line) in msgs.iter().zip(&lines) {
        let (msg, used) = decode(bytes).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(used, bytes.len());
        let Body::GroupMod(gm) = &msg.body else {
            panic!("{line}: not a group mod");
        };
        assert_eq!(dump_group_line(&gm.group, &empty).trim_start(), *line);
        let mut again = Vec::new();
        encode(&msg, &mut again);
        assert_eq!(hex(&again), hex(bytes), "{line}: re-encode");
        let parsed = parse_group_mod(line, GroupCommand::Add, &empty).expect("parse");
        let ours = Message {
            version: msg.version,
            xid: msg.xid,
            body: Body::GroupMod(Box::new(parsed)),
        };
        let mut out = Vec::new();
        encode(&ours, &mut out);
        assert_eq!(hex(&out), hex(bytes), "{line}: encode from text");
    }
}

#[test]
fn meter_mods_match_ovs_ofctl() {
    use xvs_flowtable::meter::parse_meter;
    use xvs_openflow::MeterCommand;
    let text = fixture("meters.txt");
    let lines: Vec<&str> = text.lines().collect();
    let msgs: Vec<Vec<u8>> = fixture("meters.hex").lines().map(unhex).collect();
    assert_eq!(msgs.len(), lines.len());
    for (bytes, line) in msgs.iter().zip(&lines) {
        let (msg, _) = decode(bytes).unwrap_or_else(|e| panic!("{line}: {e}"));
        let parsed = parse_meter(line).expect("parse");
        assert_eq!(
            msg.body,
            Body::MeterMod {
                command: MeterCommand::Add,
                meter: parsed
            },
            "{line}"
        );
        let mut again = Vec::new();
        encode(&msg, &mut again);
        assert_eq!(hex(&again), hex(bytes), "{line}: re-encode");
    }
}

#[test]
fn bundled_flow_mods_match_ovs_ofctl() {
    use xvs_openflow::bundle;
    let empty = NameMap::new();
    let opts = FormatOptions {
        names: &empty,
        show_stats: false,
    };
    let text = fixture("bundle.txt");
    let mut lines = text.lines();
    let mut controls = Vec::new();
    let mut adds = 0;
    for bytes in fixture("bundle.hex").lines().map(unhex) {
        let (msg, used) = decode(&bytes).expect("decode");
        assert_eq!(used, bytes.len());
        let mut again = Vec::new();
        encode(&msg, &mut again);
        assert_eq!(hex(&again), hex(&bytes));
        match &msg.body {
            Body::BundleControl(c) => controls.push((c.ctrl_type, c.flags)),
            Body::BundleAdd { message, flags, .. } => {
                assert_eq!(*flags, bundle::ATOMIC | bundle::ORDERED);
                let Body::FlowMod(fm) = &message.body else {
                    panic!("bundled message is not a flow mod");
                };
                let line = lines.next().expect("a line per flow");
                assert_eq!(dump_flow_line(&fm.fm.flow, &opts).trim_start(), line);
                adds += 1;
            }
            Body::MultipartRequest { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(adds, 40);
    assert_eq!(
        controls,
        [
            (bundle::OPEN_REQUEST, bundle::ATOMIC | bundle::ORDERED),
            (bundle::COMMIT_REQUEST, bundle::ATOMIC | bundle::ORDERED)
        ]
    );
}

#[test]
fn packet_out_matches_ovs_ofctl() {
    use xvs_flowtable::parse::parse_actions;
    use xvs_flowtable::Port;
    let empty = NameMap::new();
    let bytes: Vec<u8> = fixture("packet-out.hex")
        .lines()
        .map(unhex)
        .find(|m| m[1] == msg_type::PACKET_OUT)
        .expect("a PACKET_OUT");
    let (msg, used) = decode(&bytes).expect("decode");
    assert_eq!(used, bytes.len());
    let Body::PacketOut(po) = &msg.body else {
        panic!("not a packet out");
    };
    let text = fixture("packet-out.txt");
    let (_, actions) = text.trim_end().split_once("actions=").expect("actions");
    assert_eq!(po.actions, parse_actions(actions, &empty).expect("parse"));
    assert_eq!(po.buffer_id, NO_BUFFER);
    let in_port = po.match_.get(xvs_flowtable::FieldId::IN_PORT).0;
    assert_eq!(in_port, u128::from(Port::LOCAL.0));
    assert_eq!(po.data.len(), 42);
    let mut again = Vec::new();
    encode(&msg, &mut again);
    assert_eq!(hex(&again), hex(&bytes));
}

#[test]
fn dump_flows_request_matches_ovs_ofctl() {
    use xvs_flowtable::flow::Match;
    use xvs_flowtable::parse::parse_flow;
    use xvs_flowtable::Port;
    let bytes: Vec<u8> = fixture("dump-flows.hex")
        .lines()
        .map(unhex)
        .find(|m| m[1] == msg_type::MULTIPART_REQUEST && m[9] == 1)
        .expect("a FLOW_DESC request");
    let (msg, _) = decode(&bytes).expect("decode");
    let Body::FlowStatsRequest(q) = &msg.body else {
        panic!("not a flow stats request: {:?}", msg.body);
    };
    assert_eq!((q.table, q.cookie, q.cookie_mask), (3, 0x10, 0xff0));
    assert_eq!(q.out_port, Port::NONE);
    let mut want: Match = parse_flow("tcp,tp_dst=80,actions=drop", &NameMap::new())
        .expect("parse")
        .match_;
    want.normalize().expect("normalize");
    assert_eq!(q.match_, want);
    let mut again = Vec::new();
    encode(&msg, &mut again);
    assert_eq!(hex(&again), hex(&bytes));
}

/// Our FLOW_DESC replies, read back by OVS's own decoder (`ovs-ofctl ofp-print`), print
/// exactly like our printer prints the flows with statistics.
#[test]
fn flow_stats_replies_are_read_by_ovs() {
    use xvs_flowtable::flow::FlowStats;
    let Ok(probe) = std::process::Command::new("ovs-ofctl")
        .arg("--version")
        .output()
    else {
        eprintln!("ovs-ofctl not installed; skipped");
        return;
    };
    assert!(probe.status.success());
    let empty = NameMap::new();
    let opts = FormatOptions {
        names: &empty,
        show_stats: true,
    };
    let text = fixture("flows.txt");
    let flows: Vec<_> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut f = parse_flow_mod(l, FlowModCommand::Add, &empty)
                .expect("parse")
                .flow;
            f.stats = Some(FlowStats {
                duration_sec: i as u32,
                duration_nsec: 500_000_000,
                n_packets: Some(i as u64),
                n_bytes: Some(64 * i as u64),
                idle_age: None,
                hard_age: None,
            });
            f
        })
        .collect();
    let mut checked = 0;
    for (n, chunk) in flows.chunks(100).enumerate() {
        let msg = Message {
            version: 6,
            xid: n as u32,
            body: Body::FlowStatsReply {
                flags: 0,
                flows: chunk.to_vec(),
            },
        };
        let mut b = Vec::new();
        encode(&msg, &mut b);
        let (back, _) = decode(&b).expect("decode our reply");
        assert_eq!(back, msg);
        let out = std::process::Command::new("ovs-ofctl")
            .arg("ofp-print")
            .arg(hex(&b))
            .output()
            .expect("ovs-ofctl");
        let printed = String::from_utf8_lossy(&out.stdout);
        let mut lines = printed.lines();
        assert_eq!(
            lines.next(),
            Some(format!("OFPST_FLOW reply (OF1.5) (xid={:#x}):", n).as_str())
        );
        for (f, line) in chunk.iter().zip(lines) {
            assert_eq!(line, dump_flow_line(f, &opts));
            checked += 1;
        }
    }
    assert_eq!(checked, 626);
}
