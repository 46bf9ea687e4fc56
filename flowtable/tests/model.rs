//! The flow model as the rest of xvs uses it: matches as (value, mask) keys, flow mods for
//! `del-flows`/`mod-flows`, and the field registry's wire code points.

use xvs_flowtable::field::FieldId;
use xvs_flowtable::flow::FlowModCommand;
use xvs_flowtable::names::{NameMap, Port};
use xvs_flowtable::parse::{parse_flow, parse_flow_mod};
use xvs_flowtable::{Action, Subfield};
use xvs_packet::key::{layout, FlowKey};

#[test]
fn a_match_is_a_value_and_mask_key_pair() {
    let f = parse_flow(
        "table=10,priority=200,tcp,reg4=0x10000/0x70000,nw_dst=10.96.0.1,tp_dst=443 actions=group:1",
        &NameMap::new(),
    )
    .expect("flow");
    let mut pkt = FlowKey::ZERO;
    pkt.set(layout::ETH_TYPE, 0x0800);
    pkt.set(layout::NW_PROTO, 6);
    pkt.set(layout::NW_SRC, 0x0a0a_000a);
    pkt.set(layout::NW_DST, 0x0a60_0001);
    pkt.set(layout::TP_SRC, 40000);
    pkt.set(layout::TP_DST, 443);
    pkt.set_reg(4, 0x0001_0050);
    assert!(f.match_.matches(&pkt));
    // The classifier's view: masked packet equals the value key.
    assert_eq!(pkt.masked(f.match_.mask()), *f.match_.value());
    pkt.set(layout::TP_DST, 80);
    assert!(!f.match_.matches(&pkt));
    pkt.set(layout::TP_DST, 443);
    pkt.set_reg(4, 0x0002_0050);
    assert!(!f.match_.matches(&pkt));
    assert_eq!(f.match_.get(FieldId::REG4), (0x10000, 0x70000));
    assert_eq!(f.match_.get(FieldId::TCP_DST), (443, 0xffff));
}

#[test]
fn field_transforms_land_in_the_right_key_bits() {
    let n = NameMap::new();
    let m = |s: &str| {
        parse_flow(&format!("{s} actions=drop"), &n)
            .expect(s)
            .match_
    };
    // ip_dscp is the upper six bits of the TOS byte.
    let a = m("ip,ip_dscp=5");
    assert_eq!(a.value().get(layout::NW_TOS), 20);
    assert_eq!(a.mask().get(layout::NW_TOS), 0xfc);
    // dl_vlan is the VID plus "a tag is present".
    let b = m("dl_vlan=10");
    assert_eq!(b.value().get(layout::VLAN_TCI), 0x100a);
    assert_eq!(b.mask().get(layout::VLAN_TCI), 0x1fff);
    // in_port uses the OpenFlow 1.1 numbering in the key.
    let c = m("in_port=LOCAL");
    assert_eq!(c.value().get(layout::IN_PORT), 0xffff_fffe);
    // xxreg3 spans reg12..reg15.
    let d = m("xxreg3=0xfec00000000000000000000000000001");
    assert_eq!(d.value().reg(12), 0xfec0_0000);
    assert_eq!(d.value().reg(15), 1);
    // ARP addresses share the IPv4 words; icmp_type lives in tp_src with a full mask.
    let e = m("arp,arp_spa=10.0.0.1,arp_op=1");
    assert_eq!(e.value().get(layout::NW_SRC), 0x0a00_0001);
    assert_eq!(e.value().get(layout::NW_PROTO), 1);
    let g = m("icmp,icmp_type=8");
    assert_eq!(g.value().get(layout::TP_SRC), 8);
    assert_eq!(g.mask().get(layout::TP_SRC), 0xffff);
    // ct_label: 128 bits, most significant word first.
    let h = m("ct_label=0x10000000000000001/0x10000000000000001");
    assert_eq!(h.value().get128(layout::CT_LABEL), 0x1_0000_0000_0000_0001);
}

#[test]
fn delete_and_modify_flow_mods() {
    let n = NameMap::new();
    let d = parse_flow_mod(
        "table=5,cookie=0x1030000000000/0xffff000000000000,ip",
        FlowModCommand::Delete,
        &n,
    )
    .expect("delete");
    assert!(d.table_given);
    assert_eq!(d.flow.table, 5);
    assert_eq!(
        (d.flow.cookie, d.cookie_mask),
        (0x1_0300_0000_0000, 0xffff_0000_0000_0000)
    );
    assert!(!d.modify_cookie);
    // Antrea's statistics poll: cookie=<c>/-1.
    let s = parse_flow_mod("table=3,cookie=0x5/-1", FlowModCommand::Delete, &n).expect("filter");
    assert_eq!(s.cookie_mask, u64::MAX);
    let o = parse_flow_mod("out_port=7", FlowModCommand::Delete, &n).expect("out_port");
    assert_eq!(o.out_port, Port(7));
    assert!(!o.table_given);
    // Non-strict deletes take no priority; strict ones do.
    let e = parse_flow_mod("priority=5", FlowModCommand::Delete, &n).expect_err("priority");
    assert_eq!(e.to_string(), "unknown keyword priority");
    let st = parse_flow_mod("priority=5,ip", FlowModCommand::DeleteStrict, &n).expect("strict");
    assert_eq!(st.flow.priority, 5);
    let e = parse_flow_mod("cookie=1", FlowModCommand::Delete, &n).expect_err("cookie");
    assert!(e.to_string().starts_with("cannot set cookie"));
    let m = parse_flow_mod("table=5,ip actions=drop", FlowModCommand::ModifyStrict, &n)
        .expect("modify");
    assert!(m.flow.actions.is_empty());
    let l = xvs_flowtable::parse::parse_flow_mod_line("delete_strict table=1,priority=7,ip", &n)
        .expect("line");
    assert_eq!(l.command, FlowModCommand::DeleteStrict);
    let l =
        xvs_flowtable::parse::parse_flow_mod_line("mod table=1 actions=drop", &n).expect("line");
    assert_eq!(l.command, FlowModCommand::Modify);
}

#[test]
fn actions_are_normalised_as_a_switch_returns_them() {
    let n = NameMap::new();
    let f = parse_flow(
        "ip actions=load:0x2->NXM_NX_REG0[0..3],mod_vlan_vid:5,controller,note:01",
        &n,
    )
    .expect("flow");
    assert_eq!(
        f.actions,
        vec![
            Action::SetField {
                field: FieldId::REG0,
                value: 2,
                mask: 0xf
            },
            Action::PushVlan(0x8100),
            Action::SetField {
                field: FieldId::VLAN_VID,
                value: 0x1005,
                mask: 0xffff
            },
            Action::Output {
                port: Port::CONTROLLER,
                max_len: 65535
            },
            Action::Note(vec![1, 0, 0, 0, 0, 0]),
        ]
    );
    let g = parse_flow("actions=move:NXM_NX_REG0[0..3]->NXM_NX_REG1[28..31]", &n).expect("move");
    assert_eq!(
        g.actions,
        vec![Action::Move {
            src: Subfield {
                field: FieldId::REG0,
                ofs: 0,
                n_bits: 4
            },
            dst: Subfield {
                field: FieldId::REG1,
                ofs: 28,
                n_bits: 4
            },
        }]
    );
}

#[test]
fn registry_code_points_for_the_wire_codec() {
    let h = |f: FieldId| {
        let i = f.info();
        (
            i.nxm.map(|h| (h.class, h.field)),
            i.oxm.map(|h| (h.class, h.field)),
        )
    };
    assert_eq!(h(FieldId::IN_PORT_OXM), (None, Some((0x8000, 0))));
    assert_eq!(h(FieldId::ETH_DST), (Some((0x0000, 1)), Some((0x8000, 3))));
    assert_eq!(h(FieldId::VLAN_VID), (None, Some((0x8000, 6))));
    assert_eq!(h(FieldId::IP_DSCP_SHIFTED), (None, Some((0x8000, 8))));
    assert_eq!(
        h(FieldId::IPV4_SRC),
        (Some((0x0000, 7)), Some((0x8000, 11)))
    );
    assert_eq!(
        h(FieldId::TCP_DST),
        (Some((0x0000, 10)), Some((0x8000, 14)))
    );
    assert_eq!(h(FieldId::TUN_ID), (Some((0x0001, 16)), Some((0x8000, 38))));
    assert_eq!(h(FieldId::REG0), (Some((0x0001, 0)), None));
    assert_eq!(h(FieldId::XREG0), (None, Some((0x8001, 0))));
    assert_eq!(h(FieldId::XXREG3), (Some((0x0001, 114)), None));
    assert_eq!(h(FieldId::CT_STATE), (Some((0x0001, 105)), None));
    assert_eq!(h(FieldId::CT_LABEL), (Some((0x0001, 108)), None));
    assert_eq!(h(FieldId::TUN_DST), (Some((0x0001, 32)), None));
    assert_eq!(h(FieldId::PKT_MARK), (Some((0x0001, 33)), None));
    assert_eq!(h(FieldId::CONJ_ID), (Some((0x0001, 37)), None));
    let tcp_flags = FieldId::TCP_FLAGS.info().oxm.expect("oxm");
    assert_eq!(
        (tcp_flags.class, tcp_flags.field, tcp_flags.experimenter),
        (0xffff, 42, Some(0x4f4e_4600))
    );
    assert!(FieldId::TCP_DST.info().maskable);
    assert!(!FieldId::IP_DSCP_SHIFTED.info().maskable);
    assert!(!FieldId::CT_STATE.info().writable);
    assert_eq!(FieldId::from_name("tp_dst"), Some(FieldId::TCP_DST));
    assert_eq!(FieldId::from_name("udp_dst"), Some(FieldId::UDP_DST));
}
