//! Parses arbitrary `dpctl/flush-conntrack` argument lists and, when they parse, runs the flush
//! and a filtered dump on a small tracker; the same input also goes through the
//! `ct-set-limits` / `ct-get-limits` argument parsers. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{
    parse_flush_conntrack, Conntrack, CtAction, CtConfig, CtInput, CtMeta, CtStats, Tuple,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Arguments are separated by newlines, so that one argument may contain spaces.
    let args: Vec<&str> = text.split('\n').take(8).collect();
    let _ = xvs_conntrack::parse_ct_set_limits(&args);
    for a in &args {
        let _ = xvs_conntrack::parse_ct_limit_zones(a);
    }
    let Ok(parsed) = parse_flush_conntrack(&args) else {
        return;
    };
    let ct = Conntrack::new(CtConfig::default());
    let mut stats = CtStats::default();
    for (i, p) in [proto::TCP, proto::UDP, proto::ICMP]
        .into_iter()
        .enumerate()
    {
        let t = if p == proto::ICMP {
            Tuple::icmp(
                IpAddr::from([10, 0, 0, 1]),
                IpAddr::from([10, 0, 0, 2]),
                p,
                8,
                0,
                7,
            )
        } else {
            Tuple::ports(
                IpAddr::from([10, 0, 0, 1]),
                IpAddr::from([10, 0, 0, 2]),
                p,
                1000,
                80,
            )
        };
        let input = if p == proto::TCP {
            CtInput::tcp(
                t,
                xvs_conntrack::TcpSegment {
                    flags: xvs_conntrack::tcp::flags::SYN,
                    seq: 1,
                    ack: 0,
                    window: 100,
                    wscale: None,
                    payload_len: 0,
                },
            )
        } else {
            CtInput::new(t)
        };
        let zone = [0, 7, 65520][i];
        ct.process(
            0,
            &input,
            &CtAction::commit(zone),
            &mut CtMeta::default(),
            &mut stats,
        );
    }
    let _ = ct.dump_match(parsed.zone, &parsed.filter, 0);
    let before = ct.conn_count() as usize;
    let removed = ct.flush_args(&parsed);
    assert!(removed <= before);
    assert_eq!(ct.conn_count() as usize, before - removed);
});
