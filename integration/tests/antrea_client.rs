//! A scripted OpenFlow 1.5 client doing what Antrea's agent (ofnet) does when it connects to
//! the bridge (`/work/shared/reference/antrea-pipeline.md` §1), against xvsd's server:
//! HELLO → FEATURES → SET_CONFIG → SET_CONTROLLER_ID → packet-in format → TABLE_FEATURES
//! get/set with names → cookie-masked delete → group/meter delete-all → an ATOMIC bundle of
//! 1,000 flows with one bad flow (nothing applied, the error reported before the CLOSE reply)
//! → the same bundle without the bad flow (applied) → an ORDERED group+flow bundle.

use anyhow::{bail, Result};
use xvs_flowtable::flow::FlowModCommand;
use xvs_flowtable::group::{GroupCommand, GroupMod};
use xvs_flowtable::names::NameMap;
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::{Action, Match, Port};
use xvs_integration::ofclient::OfClient;
use xvs_integration::{is_root, unique_tag, Netns, Xvsd};
use xvs_openflow::multipart::FlowStatsRequest;
use xvs_openflow::{
    bundle, stats, Body, BundleControl, FlowModMsg, Message, OfpError, SwitchConfig, NO_BUFFER,
    OFP15_VERSION,
};

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"

[[port]]
name = "gw0"
type = "tap"
ofport = 2
"#;

fn flow_mod(text: &str, command: FlowModCommand) -> Body {
    // Parsed as an add (so a cookie may be given), sent with `command`, as ofnet builds them.
    let mut fm = parse_flow_mod(text, FlowModCommand::Add, &NameMap::new()).expect("flow parses");
    fm.command = command;
    fm.modify_cookie = false;
    Body::FlowMod(Box::new(FlowModMsg {
        fm,
        buffer_id: NO_BUFFER,
    }))
}

fn dump(c: &mut OfClient) -> Result<Vec<xvs_flowtable::Flow>> {
    let replies = c.transact(Body::FlowStatsRequest(Box::new(FlowStatsRequest {
        table: 0xff,
        out_port: Port::NONE,
        out_group: 0xffff_ffff,
        cookie: 0,
        cookie_mask: 0,
        match_: Match::catch_all(),
    })))?;
    let mut flows = Vec::new();
    for r in replies {
        match r.body {
            Body::FlowStatsReply { flows: f, .. } => flows.extend(f),
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok(flows)
}

fn bundle_ctrl(c: &mut OfClient, id: u32, ctrl_type: u16, flags: u16) -> Result<u32> {
    c.send(Body::BundleControl(BundleControl {
        bundle_id: id,
        ctrl_type,
        flags,
        properties: Vec::new(),
    }))
}

fn bundle_add(c: &mut OfClient, id: u32, flags: u16, body: Body) -> Result<u32> {
    let xid = c.xid();
    c.send_msg(&Message {
        version: OFP15_VERSION,
        xid,
        body: Body::BundleAdd {
            bundle_id: id,
            flags,
            message: Box::new(Message {
                version: OFP15_VERSION,
                xid,
                body,
            }),
        },
    })?;
    Ok(xid)
}

/// Waits for the reply with `xid`, returning it and the messages seen before it.
fn wait_for(c: &mut OfClient, xid: u32) -> Result<(Message, Vec<Message>)> {
    let mut before = Vec::new();
    loop {
        let m = c.recv()?;
        if m.xid == xid && matches!(m.body, Body::Error { .. } | Body::BundleControl(_)) {
            return Ok((m, before));
        }
        before.push(m);
    }
}

fn policy_flow(i: u32, cookie: u64) -> String {
    format!(
        "cookie=0x{cookie:x},table={},priority={},ip,nw_src=10.{}.{}.{},nw_dst=10.200.0.{},actions=set_field:0x{:x}->reg3,goto_table:{}",
        12 + i % 4,
        14000 + i % 100,
        i / 250 + 1,
        (i / 10) % 25,
        i % 250 + 1,
        i % 200 + 1,
        i,
        20
    )
}

#[test]
fn antrea_connect_sequence() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("oa");
    let node = Netns::new(&format!("{tag}n"))?;
    let xvsd = Xvsd::start(&node, CONFIG)?;
    let mgmt = xvsd.run_dir().join("br-int.mgmt");

    // The socket is 0660 in a 0750 directory.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&mgmt)?.permissions().mode() & 0o777,
        0o660
    );
    assert_eq!(
        std::fs::metadata(xvsd.run_dir())?.permissions().mode() & 0o777,
        0o750
    );

    let mut c = OfClient::connect(&mgmt)?;
    let features = c.transact(Body::FeaturesRequest)?;
    let Body::FeaturesReply(f) = &features[0].body else {
        bail!("no FEATURES_REPLY: {features:?}");
    };
    assert_eq!(f.n_tables, 254);
    assert_ne!(f.datapath_id, 0);

    c.send(Body::SetConfig(SwitchConfig {
        flags: 0,
        miss_send_len: 128,
    }))?;
    c.send(Body::SetControllerId(0x5a5a))?;
    c.send(Body::SetPacketInFormat(2))?;
    let config = c.transact(Body::GetConfigRequest)?;
    assert_eq!(
        config[0].body,
        Body::GetConfigReply(SwitchConfig {
            flags: 0,
            miss_send_len: 128
        })
    );
    // OpenFlow 1.0-era Nicira session options are accepted too.
    c.send(Body::SetFlowFormat(2))?;
    c.send(Body::FlowModTableId(true))?;
    assert!(c.barrier()?.is_empty(), "no errors for the session setup");
    let role = c.transact(Body::RoleRequest(xvs_openflow::Role {
        role: 2,
        generation_id: 5,
    }))?;
    assert_eq!(
        role[0].body,
        Body::RoleReply(xvs_openflow::Role {
            role: 2,
            generation_id: 5
        })
    );

    // ECHO both ways: ours is answered with the same payload.
    let echo = c.transact(Body::EchoRequest(b"keepalive".to_vec()))?;
    assert_eq!(echo[0].body, Body::EchoReply(b"keepalive".to_vec()));

    // TABLE_FEATURES get, then set with Antrea's table names.
    let reply = c.multipart(stats::MP_TABLE_FEATURES, Vec::new())?;
    let mut tables = stats::pull_table_features(&reply).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(tables.len(), 254);
    let names = [
        "PipelineRootClassifier",
        "ARPSpoofGuard",
        "ARPResponder",
        "Classifier",
    ];
    for (t, n) in tables.iter_mut().zip(names) {
        t.name = n.to_string();
    }
    let mut body = Vec::new();
    for t in &tables {
        stats::put_table_features(&mut body, t);
    }
    let back = c.multipart(stats::MP_TABLE_FEATURES, body)?;
    let back = stats::pull_table_features(&back).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(back[3].name, "Classifier");

    // Flows of an earlier agent round (cookie round 1) and of another owner (round 2).
    for i in 0..20 {
        c.send(flow_mod(
            &policy_flow(i, 0x0001_0000_0000_0000 | 0x10),
            FlowModCommand::Add,
        ))?;
        c.send(flow_mod(
            &policy_flow(i + 20, 0x0002_0000_0000_0000 | 0x10),
            FlowModCommand::Add,
        ))?;
    }
    assert!(c.barrier()?.is_empty());
    assert_eq!(dump(&mut c)?.len(), 40);

    // First connect: delete round 1 by cookie mask, in every table.
    let mut del = parse_flow_mod(
        "cookie=0x0001000000000000/0xffff000000000000",
        FlowModCommand::Delete,
        &NameMap::new(),
    )
    .expect("parses");
    del.table_given = false;
    c.send(Body::FlowMod(Box::new(FlowModMsg {
        fm: del,
        buffer_id: NO_BUFFER,
    })))?;
    // Every (re)connect: all groups and meters go.
    c.send(Body::GroupMod(Box::new(GroupMod {
        command: GroupCommand::Delete,
        group: xvs_flowtable::group::Group {
            group_id: 0xffff_fffc,
            group_type: xvs_flowtable::group::GroupType::All,
            selection_method: String::new(),
            selection_method_param: 0,
            buckets: Vec::new(),
        },
        command_bucket_id: 0xffff_ffff,
    })))?;
    c.send(Body::MeterMod {
        command: xvs_openflow::MeterCommand::Delete,
        meter: xvs_flowtable::meter::Meter {
            meter_id: 0xffff_ffff,
            flags: 0,
            bands: Vec::new(),
        },
    })?;
    assert!(c.barrier()?.is_empty());
    let left = dump(&mut c)?;
    assert_eq!(left.len(), 20);
    assert!(left.iter().all(|f| f.cookie >> 48 == 2));

    // ATOMIC bundle of 1,000 flows, one of which outputs to a group that does not exist.
    let round3 = 0x0003_0000_0000_0000u64;
    let id = 7;
    let open = bundle_ctrl(&mut c, id, bundle::OPEN_REQUEST, bundle::ATOMIC)?;
    let (reply, _) = wait_for(&mut c, open)?;
    assert!(matches!(
        reply.body,
        Body::BundleControl(BundleControl {
            ctrl_type: bundle::OPEN_REPLY,
            ..
        })
    ));
    let mut bad_xid = 0;
    for i in 0..1000 {
        let text = if i == 500 {
            format!("cookie=0x{round3:x},table=20,priority=5,ip,actions=group:77")
        } else {
            policy_flow(i + 100, round3)
        };
        let xid = bundle_add(
            &mut c,
            id,
            bundle::ATOMIC,
            flow_mod(&text, FlowModCommand::Add),
        )?;
        if i == 500 {
            bad_xid = xid;
        }
    }
    let close = bundle_ctrl(&mut c, id, bundle::CLOSE_REQUEST, bundle::ATOMIC)?;
    let (reply, before) = wait_for(&mut c, close)?;
    assert!(
        matches!(
            reply.body,
            Body::BundleControl(BundleControl {
                ctrl_type: bundle::CLOSE_REPLY,
                ..
            })
        ),
        "{reply:?}"
    );
    // The failing BUNDLE_ADD is reported before the CLOSE reply, echoing that message.
    let errors: Vec<&Message> = before
        .iter()
        .filter(|m| matches!(m.body, Body::Error { .. }))
        .collect();
    assert_eq!(errors.len(), 1, "{before:?}");
    assert_eq!(errors[0].xid, bad_xid);
    let Body::Error { error, data } = &errors[0].body else {
        unreachable!()
    };
    assert_eq!(*error, OfpError::BAD_OUT_GROUP);
    assert_eq!(data[1], xvs_openflow::msg_type::BUNDLE_ADD_MESSAGE);
    let commit = bundle_ctrl(&mut c, id, bundle::COMMIT_REQUEST, bundle::ATOMIC)?;
    let (reply, _) = wait_for(&mut c, commit)?;
    assert!(
        matches!(
            reply.body,
            Body::Error {
                error: OfpError::BUNDLE_MSG_FAILED,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_eq!(
        dump(&mut c)?.len(),
        20,
        "nothing of the failed bundle applied"
    );

    // The same bundle without the bad flow commits: 1,000 new flows at once.
    let id = 8;
    let open = bundle_ctrl(&mut c, id, bundle::OPEN_REQUEST, bundle::ATOMIC)?;
    wait_for(&mut c, open)?;
    for i in 0..1000 {
        bundle_add(
            &mut c,
            id,
            bundle::ATOMIC,
            flow_mod(&policy_flow(i + 100, round3), FlowModCommand::Add),
        )?;
    }
    let close = bundle_ctrl(&mut c, id, bundle::CLOSE_REQUEST, bundle::ATOMIC)?;
    let (_, before) = wait_for(&mut c, close)?;
    assert!(before.is_empty(), "{before:?}");
    let commit = bundle_ctrl(&mut c, id, bundle::COMMIT_REQUEST, bundle::ATOMIC)?;
    let (reply, _) = wait_for(&mut c, commit)?;
    assert!(
        matches!(
            reply.body,
            Body::BundleControl(BundleControl {
                ctrl_type: bundle::COMMIT_REPLY,
                ..
            })
        ),
        "{reply:?}"
    );
    let flows = dump(&mut c)?;
    assert_eq!(flows.len(), 1020);
    assert_eq!(flows.iter().filter(|f| f.cookie == round3).count(), 1000);

    // ORDERED: a group first, then a flow using it, in one bundle.
    let id = 9;
    let group = xvs_flowtable::group::parse_group_mod(
        "group_id=77,type=select,bucket=bucket_id:0,weight:100,actions=output:2",
        GroupCommand::Add,
        &NameMap::new(),
    )
    .expect("group parses");
    bundle_add(&mut c, id, bundle::ORDERED, Body::GroupMod(Box::new(group)))?;
    bundle_add(
        &mut c,
        id,
        bundle::ORDERED,
        flow_mod(
            &format!("cookie=0x{round3:x},table=20,priority=5,ip,actions=group:77"),
            FlowModCommand::Add,
        ),
    )?;
    let commit = bundle_ctrl(&mut c, id, bundle::COMMIT_REQUEST, bundle::ORDERED)?;
    let (reply, before) = wait_for(&mut c, commit)?;
    assert!(before.is_empty(), "{before:?}");
    assert!(
        matches!(
            reply.body,
            Body::BundleControl(BundleControl {
                ctrl_type: bundle::COMMIT_REPLY,
                ..
            })
        ),
        "{reply:?}"
    );
    assert_eq!(dump(&mut c)?.len(), 1021);

    // Modify-strict and delete-strict inside a bundle, as Antrea sends changes and removals.
    let id = 10;
    let first = policy_flow(100, round3);
    bundle_add(
        &mut c,
        id,
        bundle::ATOMIC,
        flow_mod(
            &first.replace("goto_table:20", "goto_table:21"),
            FlowModCommand::ModifyStrict,
        ),
    )?;
    bundle_add(
        &mut c,
        id,
        bundle::ATOMIC,
        flow_mod(&policy_flow(101, round3), FlowModCommand::DeleteStrict),
    )?;
    let commit = bundle_ctrl(&mut c, id, bundle::COMMIT_REQUEST, bundle::ATOMIC)?;
    let (reply, _) = wait_for(&mut c, commit)?;
    assert!(matches!(reply.body, Body::BundleControl(_)), "{reply:?}");
    let flows = dump(&mut c)?;
    assert_eq!(flows.len(), 1020);
    let moved = flows
        .iter()
        .filter(|f| f.actions.last() == Some(&Action::GotoTable(21)))
        .count();
    assert_eq!(moved, 1, "modify_strict changed exactly one flow");

    // Malformed and unknown messages: OVS's errors, and the connection stays up.
    c.send_raw(&[6, 99, 0, 8, 0, 0, 0, 42])?;
    let e = c.recv()?;
    assert_eq!(e.xid, 42);
    assert!(
        matches!(
            e.body,
            Body::Error {
                error: OfpError::BAD_TYPE,
                ..
            }
        ),
        "{e:?}"
    );
    c.send_raw(&[6, 5, 0, 12, 0, 0, 0, 43, 1, 2, 3, 4])?;
    let e = c.recv()?;
    assert!(
        matches!(
            e.body,
            Body::Error {
                error: OfpError::BAD_LEN,
                ..
            }
        ),
        "{e:?}"
    );
    // A message in another version: OBPBRC_BAD_VERSION in the request's version, as OVS.
    c.send_raw(&[4, 5, 0, 8, 0, 0, 0, 44])?;
    let e = c.recv_raw()?;
    assert_eq!(&e[..12], &[4, 1, 0, 20, 0, 0, 0, 44, 0, 1, 0, 0], "{e:?}");
    assert!(c.barrier()?.is_empty());

    // A client with neither OpenFlow 1.5 nor 1.0 (a version bitmap of 1.3 only) gets
    // OFPHFC_INCOMPATIBLE and is disconnected.
    {
        use std::io::{Read, Write};
        let mut raw = std::os::unix::net::UnixStream::connect(&mgmt)?;
        raw.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        raw.write_all(&[4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x10])?;
        let mut all = Vec::new();
        raw.read_to_end(&mut all)?;
        let hello_len = usize::from(u16::from_be_bytes([all[2], all[3]]));
        let err = &all[hello_len..];
        assert_eq!(err[1], 1, "an ERROR follows our HELLO: {all:?}");
        assert_eq!(
            &err[8..12],
            &[0, 0, 0, 0],
            "OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE"
        );
    }

    // Keepalive: an idle connection is probed with an ECHO_REQUEST after 5 s; answering it
    // keeps the connection.
    let mut idle = OfClient::connect(&mgmt)?;
    let t = std::time::Instant::now();
    let probe = idle.recv_raw()?;
    assert_eq!(probe[1], 2, "ECHO_REQUEST expected, got {probe:?}");
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
    let mut reply = probe.clone();
    reply[1] = 3;
    idle.send_raw(&reply)?;
    assert!(idle.barrier()?.is_empty());

    // Many clients at once: each gets its own session.
    let mut others: Vec<OfClient> = (0..8)
        .map(|_| OfClient::connect(&mgmt))
        .collect::<Result<_>>()?;
    for o in others.iter_mut() {
        assert_eq!(dump(o)?.len(), 1020);
    }
    Ok(())
}
