//! Multipart bodies: our encoders read back by our decoders and, where `ovs-ofctl` is
//! installed, by Open vSwitch's own decoder (`ovs-ofctl ofp-print`), which must print what
//! OVS prints for the same statistics.

use std::process::Command;
use xvs_flowtable::group::{GroupCommand, GroupType};
use xvs_flowtable::meter::parse_meter;
use xvs_flowtable::names::NameMap;
use xvs_openflow::stats::{self, ReplyWriter};
use xvs_openflow::{decode, Body, OFP15_VERSION};

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

/// One reply message of `mp_type` with the entries `put` writes; returns its bytes and body.
fn reply(mp_type: u16, put: impl FnOnce(&mut ReplyWriter<'_>)) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let mut w = ReplyWriter::new(&mut out, OFP15_VERSION, 7, mp_type);
    put(&mut w);
    w.finish();
    let (m, n) = decode(&out).expect("decodes");
    assert_eq!(n, out.len());
    let Body::MultipartReply {
        body,
        mp_type: t,
        flags,
    } = m.body
    else {
        panic!("not a multipart reply: {:?}", m.body)
    };
    assert_eq!((t, flags), (mp_type, 0));
    (out, body)
}

fn check_print(bytes: &[u8], want: &str) {
    if let Some(text) = ofp_print(bytes) {
        assert_eq!(text.trim_end(), want.trim_end(), "ovs-ofctl ofp-print");
    }
}

#[test]
fn table_stats() {
    let t = [
        stats::TableStats {
            table_id: 0,
            active: 3,
            lookup: 10,
            matched: 9,
        },
        stats::TableStats {
            table_id: 1,
            active: 0,
            lookup: 0,
            matched: 0,
        },
    ];
    let (b, body) = reply(stats::MP_TABLE, |w| {
        for x in &t {
            w.entry(|o| stats::put_table_stats(o, x));
        }
    });
    assert_eq!(stats::pull_table_stats(&body).expect("pull"), t);
    check_print(&b, "OFPST_TABLE reply (OF1.5) (xid=0x7):\n  table 0:\n    active=3, lookup=10, matched=9\n\n  table 1:\n    active=0, lookup=0, matched=0");
}

#[test]
fn port_stats_and_desc() {
    let p = stats::PortStats {
        port_no: 2,
        duration_sec: 5,
        duration_nsec: 1000,
        rx_packets: 11,
        tx_packets: 12,
        rx_bytes: 1300,
        tx_bytes: 1400,
        rx_dropped: 1,
        tx_dropped: 2,
        rx_errors: 3,
        tx_errors: 0,
    };
    let (b, body) = reply(stats::MP_PORT_STATS, |w| {
        w.entry(|o| stats::put_port_stats(o, &p))
    });
    assert_eq!(stats::pull_port_stats(&body).expect("pull"), vec![p]);
    check_print(&b, "OFPST_PORT reply (OF1.5) (xid=0x7): 1 ports\n  port  2: rx pkts=11, bytes=1300, drop=1, errs=3, frame=0, over=0, crc=0\n           tx pkts=12, bytes=1400, drop=2, errs=0, coll=0\n           duration=5.000001s");
    let d = stats::PortDesc {
        port_no: 1,
        hw_addr: [2, 0x0a, 0x0a, 0, 0, 2],
        name: "pa0".to_string(),
        config: 0,
        state: 4,
        ..Default::default()
    };
    let (b, body) = reply(stats::MP_PORT_DESC, |w| {
        w.entry(|o| stats::put_port_desc(o, &d))
    });
    assert_eq!(stats::pull_port_descs(&body).expect("pull"), vec![d]);
    check_print(&b, "OFPST_PORT_DESC reply (OF1.5) (xid=0x7):\n 1(pa0): addr:02:0a:0a:00:00:02\n     config:     0\n     state:      LIVE\n     speed: 0 Mbps now, 0 Mbps max");
}

#[test]
fn groups() {
    let gm = xvs_flowtable::group::parse_group_mod(
        "group_id=7,type=select,selection_method=hash,bucket=bucket_id:0,weight:100,actions=output:1,bucket=bucket_id:1,weight:50,actions=output:2",
        GroupCommand::Add,
        &NameMap::new(),
    )
    .expect("parses");
    let (b, body) = reply(stats::MP_GROUP_DESC, |w| {
        w.entry(|o| stats::put_group_desc(o, &gm.group))
    });
    assert_eq!(
        stats::pull_group_descs(&body).expect("pull"),
        vec![gm.group.clone()]
    );
    check_print(&b, "OFPST_GROUP_DESC reply (OF1.5) (xid=0x7):\n group_id=7,type=select,selection_method=hash,bucket=bucket_id:0,weight:100,actions=output:1,bucket=bucket_id:1,weight:50,actions=output:2");
    let gs = stats::GroupStats {
        group_id: 7,
        ref_count: 2,
        packets: 5,
        bytes: 500,
        duration_sec: 1,
        duration_nsec: 500_000_000,
        buckets: vec![(3, 300), (2, 200)],
    };
    let (b, body) = reply(stats::MP_GROUP_STATS, |w| {
        w.entry(|o| stats::put_group_stats(o, &gs))
    });
    assert_eq!(stats::pull_group_stats(&body).expect("pull"), vec![gs]);
    check_print(&b, "OFPST_GROUP reply (OF1.5) (xid=0x7):\n group_id=7,duration=1.500s,ref_count=2,packet_count=5,byte_count=500,bucket0:packet_count=3,byte_count=300,bucket1:packet_count=2,byte_count=200");
    let f = stats::GroupFeatures {
        types: stats::all_group_types(),
        capabilities: 7,
        max_groups: [0xffff_ff00; 4],
        actions: [1; 4],
    };
    let (_, body) = reply(stats::MP_GROUP_FEATURES, |w| {
        w.entry(|o| stats::put_group_features(o, &f))
    });
    assert_eq!(stats::pull_group_features(&body).expect("pull"), f);
    assert_eq!(GroupType::All.name(), "all");
}

#[test]
fn meters() {
    let m = parse_meter("meter=3,kbps,burst,stats,bands=type=drop,rate=1000,burst_size=2000")
        .expect("parses");
    let (b, body) = reply(stats::MP_METER_DESC, |w| {
        w.entry(|o| stats::put_meter_desc(o, &m))
    });
    assert_eq!(stats::pull_meter_descs(&body).expect("pull"), vec![m]);
    check_print(&b, "OFPST_METER_CONFIG reply (OF1.5) (xid=0x7):\nmeter=3 kbps burst stats bands=\ntype=drop rate=1000 burst_size=2000");
    let s = stats::MeterStats {
        meter_id: 3,
        flow_count: 1,
        packets_in: 10,
        bytes_in: 1000,
        duration_sec: 2,
        duration_nsec: 0,
        bands: vec![(1, 100)],
    };
    let (b, body) = reply(stats::MP_METER_STATS, |w| {
        w.entry(|o| stats::put_meter_stats(o, &s))
    });
    assert_eq!(stats::pull_meter_stats(&body).expect("pull"), vec![s]);
    check_print(&b, "OFPST_METER reply (OF1.5) (xid=0x7):\nmeter:3 flow_count:1 packet_in_count:10 byte_in_count:1000 duration:2s bands:\n0: packet_count:1 byte_count:100");
    let f = stats::MeterFeatures {
        max_meter: 100,
        band_types: 6,
        capabilities: 0xf,
        max_bands: 16,
        max_color: 0,
    };
    let (_, body) = reply(stats::MP_METER_FEATURES, |w| {
        w.entry(|o| stats::put_meter_features(o, &f))
    });
    assert_eq!(stats::pull_meter_features(&body).expect("pull"), f);
}

#[test]
fn aggregate_and_table_features() {
    let a = stats::Aggregate {
        packets: 7,
        bytes: 700,
        flows: 3,
    };
    let (b, body) = reply(stats::MP_AGGREGATE, |w| {
        w.entry(|o| stats::put_aggregate(o, &a))
    });
    assert_eq!(stats::pull_aggregate(&body).expect("pull"), a);
    check_print(
        &b,
        "OFPST_AGGREGATE reply (OF1.5) (xid=0x7): packet_count=7 byte_count=700 flow_count=3",
    );
    let t = stats::TableFeatures {
        table_id: 3,
        name: "Classifier".to_string(),
        metadata_match: u64::MAX,
        metadata_write: u64::MAX,
        max_entries: 1_000_000,
        ..Default::default()
    };
    let (_, body) = reply(stats::MP_TABLE_FEATURES, |w| {
        w.entry(|o| stats::put_table_features(o, &t))
    });
    assert_eq!(stats::pull_table_features(&body).expect("pull"), vec![t]);
}

/// A reply too long for one message is split, every part but the last flagged "more".
#[test]
fn long_replies_split() {
    let mut out = Vec::new();
    let mut w = ReplyWriter::new(&mut out, OFP15_VERSION, 9, stats::MP_TABLE);
    for i in 0..10_000u32 {
        w.entry(|o| {
            stats::put_table_stats(
                o,
                &stats::TableStats {
                    table_id: (i % 254) as u8,
                    active: i,
                    lookup: 0,
                    matched: 0,
                },
            )
        });
    }
    w.finish();
    let mut rest = &out[..];
    let mut n_entries = 0;
    let mut msgs = Vec::new();
    while !rest.is_empty() {
        let (m, n) = decode(rest).expect("decodes");
        assert!(n <= 65535);
        let Body::MultipartReply { flags, body, .. } = m.body else {
            panic!()
        };
        n_entries += stats::pull_table_stats(&body).expect("pull").len();
        msgs.push(flags);
        rest = &rest[n..];
    }
    assert_eq!(n_entries, 10_000);
    assert!(msgs.len() > 1);
    assert!(msgs[..msgs.len() - 1].iter().all(|f| *f == 1));
    assert_eq!(*msgs.last().expect("one"), 0);
}
