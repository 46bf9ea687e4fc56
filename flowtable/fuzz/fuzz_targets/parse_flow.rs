//! Fuzzes the ovs-ofctl text parsers (flows, flow-mod lines, dump lines, groups, meters).
//!
//! Oracle: no panic on any input, and every flow the parser accepts prints to text that parses
//! back to the same flow and prints identically (with and without names, with and without
//! statistics).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_flowtable::names::{NameMap, Port};
use xvs_flowtable::parse::{parse_dump_flow_line, parse_flow, parse_flow_mod_line};
use xvs_flowtable::print::{dump_flow_line, FormatOptions};

fn names() -> NameMap {
    let mut m = NameMap::new();
    for (i, t) in ["PipelineRootClassifier", "ARPSpoofGuard", "ARPResponder", "Classifier", "SpoofGuard"]
        .iter()
        .enumerate()
    {
        m.add_table(t, i as u8);
    }
    m.add_table("Output", 35);
    m.add_port("antrea-tun0", Port(32768));
    m.add_port("antrea-gw0", Port(32769));
    m.add_port("eth0", Port(32770));
    m.add_port("pod0-aaa", Port(5));
    m
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let names = names();
    let empty = NameMap::new();
    let _ = parse_flow_mod_line(s, &names);
    let _ = parse_dump_flow_line(s, &names);
    let _ = xvs_flowtable::group::parse_group(s, &names);
    let _ = xvs_flowtable::meter::parse_meter(s);
    if let Ok(f) = parse_flow(s, &names) {
        for n in [&names, &empty] {
            for show_stats in [false, true] {
                let opts = FormatOptions { names: n, show_stats };
                let text = dump_flow_line(&f, &opts);
                let g = match parse_dump_flow_line(&text, n) {
                    Ok(g) => g,
                    Err(e) => panic!("printed flow does not parse: {e}\n{text}"),
                };
                if !show_stats {
                    assert_eq!(g, f, "{text}");
                }
                assert_eq!(dump_flow_line(&g, &opts), text);
            }
        }
    }
});
