//! Geneve options as `tun_metadata<n>`: the TLV map, matches with masks, set_field, the
//! options a tunnel output carries, and the flow-string forms.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::field::FieldId;
use xvs_flowtable::parse::parse_flow;
use xvs_flowtable::print::format_match;
use xvs_flowtable::tlv::{GeneveOptions, TlvCommand, TlvMapping};
use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
use xvs_flowtable::{Match, NameMap};
use xvs_packet::key::layout;

const FLOWS: &str = "\
table=0,priority=20,in_port=9,tun_metadata0=0x1234/0xffff,actions=output:1
table=0,priority=10,in_port=9,actions=drop
table=0,priority=10,in_port=1,actions=set_field:192.168.77.2->tun_dst,set_field:0x5->tun_metadata0,set_field:0xa0b0c0d0e0f0102->tun_metadata1,output:9
table=0,priority=10,in_port=2,actions=set_field:192.168.77.2->tun_dst,output:9
";

fn mapped_pipeline() -> xvs_flowtable::pipeline::Pipeline {
    let mut p = pipeline(&[], &[], FLOWS);
    p.tlv_table_mod(
        TlvCommand::Add,
        &[
            TlvMapping {
                class: 0xffff,
                kind: 0,
                len: 4,
                index: 0,
            },
            TlvMapping {
                class: 0x0102,
                kind: 0x80,
                len: 8,
                index: 1,
            },
        ],
        0,
    )
    .unwrap();
    p
}

fn run(p: &xvs_flowtable::pipeline::Pipeline, key: &xvs_packet::FlowKey) -> Translation {
    let mut scratch = TranslateScratch::new();
    scratch.set_tunnel_ports(&[9]);
    let mut t = Translation::new();
    translate(p.snapshot(), key, 0, &mut scratch, &mut t);
    t
}

#[test]
fn match_with_mask_requires_presence() {
    let p = mapped_pipeline();
    let mut k = tcp_key(9, 1, 2, 3, 4);
    k.set(layout::tun_metadata(0), 0xab_1234);
    k.set(layout::TUN_METADATA_PRESENT, 1);
    let t = run(&p, &k);
    assert_eq!(t.actions, vec![DpAction::Output(1)]);
    // The megaflow examines the masked bits and the present bit, nothing more of the option.
    assert_eq!(t.mask.get(layout::tun_metadata(0)), 0xffff);
    assert_eq!(t.mask.get(layout::TUN_METADATA_PRESENT) & 1, 1);
    // Other value under the mask: no match.
    k.set(layout::tun_metadata(0), 0x1235);
    assert!(run(&p, &k).actions.is_empty());
    // The right value but the option absent (a packet without it has zeros there): no match.
    k.set(layout::tun_metadata(0), 0x1234);
    k.set(layout::TUN_METADATA_PRESENT, 0);
    assert!(run(&p, &k).actions.is_empty());
}

#[test]
fn set_field_makes_the_tunnel_output_carry_options() {
    let p = mapped_pipeline();
    let t = run(&p, &tcp_key(1, 1, 2, 3, 4));
    let [DpAction::TunnelPush(push)] = t.actions.as_slice() else {
        panic!("{:?}", t.actions);
    };
    let mut expect = GeneveOptions::EMPTY;
    expect.push(0xffff, 0, &[0, 0, 0, 5]);
    expect.push(
        0x0102,
        0x80,
        &[0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x01, 0x02],
    );
    assert_eq!(push.options, expect);
    // Without set_field the options come from the packet's own metadata, which therefore
    // joins the megaflow.
    let mut k = tcp_key(2, 1, 2, 3, 4);
    k.set(layout::tun_metadata(1), 0x77);
    k.set(layout::TUN_METADATA_PRESENT, 0b10);
    let t = run(&p, &k);
    let [DpAction::TunnelPush(push)] = t.actions.as_slice() else {
        panic!("{:?}", t.actions);
    };
    let mut expect = GeneveOptions::EMPTY;
    expect.push(0x0102, 0x80, &[0, 0, 0, 0, 0, 0, 0, 0x77]);
    assert_eq!(push.options, expect);
    assert_eq!(t.mask.get(layout::TUN_METADATA_PRESENT), 0b1111);
    assert_eq!(t.mask.get(layout::tun_metadata(1)), u64::MAX);
    assert_eq!(
        t.mask.get(layout::tun_metadata(0)),
        0,
        "absent: not examined"
    );
    // An unmapped field is not emitted.
    let mut k = tcp_key(2, 1, 2, 3, 4);
    k.set(layout::tun_metadata(3), 0x99);
    k.set(layout::TUN_METADATA_PRESENT, 0b1000);
    let t = run(&p, &k);
    let [DpAction::TunnelPush(push)] = t.actions.as_slice() else {
        panic!("{:?}", t.actions);
    };
    assert!(push.options.is_empty());
}

#[test]
fn no_map_no_options_and_no_mask_cost() {
    let p = pipeline(&[], &[], FLOWS);
    let mut k = tcp_key(2, 1, 2, 3, 4);
    k.set(layout::tun_metadata(0), 0x5);
    k.set(layout::TUN_METADATA_PRESENT, 1);
    let t = run(&p, &k);
    let [DpAction::TunnelPush(push)] = t.actions.as_slice() else {
        panic!("{:?}", t.actions);
    };
    assert!(push.options.is_empty());
    assert_eq!(t.mask.get(layout::TUN_METADATA_PRESENT), 0);
}

#[test]
fn flow_strings_parse_and_print_as_ovs() {
    let names = NameMap::new();
    for (input, printed) in [
        (
            "tun_metadata0=0x1234/0xffff,actions=drop",
            "tun_metadata0=0x1234/0xffff",
        ),
        ("tun_metadata1=0x5,actions=drop", "tun_metadata1=0x5"),
        (
            "tun_id=0x2a,tun_metadata3=0xffffffff,actions=drop",
            "tun_id=0x2a,tun_metadata3=0xffffffff",
        ),
    ] {
        let f = parse_flow(input, &names).unwrap();
        let mut out = String::new();
        format_match(&mut out, &f.match_, 0x8000, &names);
        assert_eq!(out.trim_end_matches(','), printed, "{input}");
    }
    let f = parse_flow(
        "actions=set_field:0x5->tun_metadata2,move:NXM_NX_REG0[0..15]->NXM_NX_TUN_METADATA0[0..15]",
        &names,
    )
    .unwrap();
    let mut out = String::new();
    xvs_flowtable::print::format_actions(&mut out, &f.actions, &names);
    assert_eq!(
        out,
        "set_field:0x5->tun_metadata2,move:NXM_NX_REG0[0..15]->NXM_NX_TUN_METADATA0[0..15]"
    );
    // The field's value and presence round-trip through a Match.
    let mut m = Match::catch_all();
    m.set(FieldId::TUN_METADATA1, 0x12, 0xff);
    assert_eq!(m.get(FieldId::TUN_METADATA1), (0x12, 0xff));
    assert_eq!(m.mask().get(layout::TUN_METADATA_PRESENT), 0b10);
    let mut n = m;
    n.normalize().unwrap();
    assert_eq!(n, m);
}

#[test]
fn tun_flags_matches_the_oam_bit_and_prints_as_ovs() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=20,in_port=9,tun_flags=+oam,actions=output:1\n\
         table=0,priority=10,in_port=9,tun_flags=-oam,actions=output:2\n",
    );
    let mut k = tcp_key(9, 1, 2, 3, 4);
    // Decap sets internal bits too (df, key); only oam is matched.
    k.set(layout::TUN_FLAGS, 0b1011);
    assert_eq!(run(&p, &k).actions, vec![DpAction::Output(1)]);
    k.set(layout::TUN_FLAGS, 0b1010);
    let t = run(&p, &k);
    assert_eq!(t.actions, vec![DpAction::Output(2)]);
    assert_eq!(t.mask.get(layout::TUN_FLAGS) & 1, 1);
    let names = NameMap::new();
    let f = parse_flow("tun_flags=-oam,actions=drop", &names).unwrap();
    let mut out = String::new();
    format_match(&mut out, &f.match_, 0x8000, &names);
    assert_eq!(out.trim_end_matches(','), "tun_flags=-oam");
    // A megaflow that examined every flag prints them as OVS does.
    let m = Match::from_keys(k, xvs_packet::FlowKey::ALL_ONES);
    let mut out = String::new();
    format_match(&mut out, &m, 0x8000, &names);
    assert!(out.contains("tun_flags=df|key,"), "{out}");
}
