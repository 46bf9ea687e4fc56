//! Translation of `ct(...)`, `ct_clear` and recirculation: datapath actions, masks, frozen
//! state and the `ct(table=T)` fork.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use xvs_flowtable::action::{Nat, NatAddrs, NatKind};
use xvs_flowtable::datapath::{format_dp_actions, DpAction, DpCt};
use xvs_flowtable::translate::{translate, DropReason, TranslateScratch, Translation};
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

fn xlate_with(
    p: &xvs_flowtable::pipeline::Pipeline,
    key: &FlowKey,
    scratch: &mut TranslateScratch,
) -> Translation {
    let mut out = Translation::new();
    translate(p.snapshot(), key, 0, scratch, &mut out);
    out
}

fn ct(zone: u16) -> DpCt {
    DpCt {
        zone,
        commit: false,
        force: false,
        nat: None,
        mark: None,
        label: None,
    }
}

fn recirc_id(actions: &[DpAction]) -> u32 {
    actions
        .iter()
        .find_map(|a| match a {
            DpAction::Recirc(id) => Some(*id),
            _ => None,
        })
        .expect("a recirc action")
}

#[test]
fn plain_ct_then_output_clears_ct_fields_for_the_rest() {
    // After ct() without table the ct_* fields are unknown to this pass (OVS clears them):
    // table 1 must not see the ct_state the packet came in with.
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=ct(zone=5),resubmit(,1)\n\
         table=1,priority=20,ct_state=+trk,ip,actions=output:7\n\
         table=1,priority=10,ip,actions=output:3\n",
    );
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set(layout::CT_STATE, 0x22);
    let t = xlate(p.snapshot(), &k);
    assert_eq!(t.reason, None);
    assert_eq!(t.actions, vec![DpAction::Ct(ct(5)), DpAction::Output(3)]);
    assert_eq!(format_dp_actions(&t.actions), "ct(zone=5),3");
    assert_eq!(format_dp_actions(&[DpAction::Ct(ct(0))]), "ct");
    assert_eq!(format_dp_actions(&[]), "drop");
}

#[test]
fn zone_from_a_register_is_resolved_and_unwildcarded() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=ct(zone=NXM_NX_REG8[0..15]),output:2",
    );
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set_reg(8, 0xabcd_1234);
    let t = xlate(p.snapshot(), &k);
    assert_eq!(
        t.actions,
        vec![DpAction::Ct(ct(0x1234)), DpAction::Output(2)]
    );
    assert_eq!(t.mask.get(layout::reg(8)), 0xffff, "exactly the zone bits");
}

#[test]
fn commit_with_exec_mark_label_and_move() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=ct(commit,zone=65520,\
         exec(set_field:0x10/0x10->ct_mark,move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3],\
         set_field:0x5000000000000000000/0xffff000000000000000->ct_label))",
    );
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set_reg(0, 0x0000_00a6);
    let t = xlate(p.snapshot(), &k);
    let DpAction::Ct(c) = t.actions[0] else {
        panic!("{:?}", t.actions)
    };
    assert!(c.commit && !c.force);
    assert_eq!(c.zone, 65520);
    assert_eq!(c.mark, Some((0x16, 0x1f)));
    assert_eq!(
        c.label,
        Some((0x5000000000000000000, 0xffff000000000000000))
    );
    // The moved register bits are part of the megaflow, the others are not (without
    // table=: a recirculation freezes, and so matches, every register).
    assert_eq!(t.mask.get(layout::reg(0)), 0xf);
    assert_eq!(
        format_dp_actions(&t.actions[..1]),
        "ct(commit,zone=65520,mark=0x16/0x1f,label=0x5000000000000000000/0xffff000000000000000)"
    );
}

#[test]
fn nat_forms() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,tp_dst=1,actions=ct(table=1,zone=65521,nat)\n\
         table=0,priority=10,tcp,tp_dst=2,actions=ct(commit,table=1,zone=65521,nat(src=10.0.0.1-10.0.0.9:1024-2047))\n\
         table=0,priority=10,tcp,tp_dst=3,actions=ct(commit,table=1,zone=65520,nat(dst=10.96.0.10:80))\n\
         table=0,priority=10,tcp,tp_dst=4,actions=ct(commit,force,zone=7)\n",
    );
    let nat_of = |dport: u16| {
        let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, dport));
        match t.actions.first() {
            Some(DpAction::Ct(c)) => (*c, format_dp_actions(&t.actions)),
            other => panic!("{other:?}"),
        }
    };
    let (c, s) = nat_of(1);
    assert_eq!(c.nat, Some(Nat::default()));
    assert_eq!(s, "ct(zone=65521,nat),recirc(0x1)");
    let (c, s) = nat_of(2);
    assert_eq!(
        c.nat,
        Some(Nat {
            kind: Some(NatKind::Src),
            addrs: Some(NatAddrs::V4 {
                min: ip(10, 0, 0, 1),
                max: ip(10, 0, 0, 9)
            }),
            ports: (1024, 2047),
            ..Nat::default()
        })
    );
    assert_eq!(
        s,
        "ct(commit,zone=65521,nat(src=10.0.0.1-10.0.0.9:1024-2047)),recirc(0x1)"
    );
    let (_, s) = nat_of(3);
    assert_eq!(
        s,
        "ct(commit,zone=65520,nat(dst=10.96.0.10:80)),recirc(0x1)"
    );
    let (c, s) = nat_of(4);
    assert!(c.force && c.commit && c.nat.is_none());
    assert_eq!(s, "ct(force_commit,zone=7)");
}

#[test]
fn recirculation_resumes_at_the_table_with_frozen_registers() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,in_port=1,actions=load:0x2a->NXM_NX_REG1[],ct(table=5,zone=9)\n\
         table=5,priority=30,ct_state=+new+trk,ip,reg1=0x2a,actions=output:2\n\
         table=5,priority=20,ct_state=+est+trk,ip,reg1=0x2a,actions=output:3\n\
         table=5,priority=10,ip,actions=drop\n",
    );
    let mut scratch = TranslateScratch::new();
    let first = xlate_with(&p, &tcp_key(1, 1, 2, 3, 4), &mut scratch);
    assert_eq!(first.reason, None);
    let id = recirc_id(&first.actions);
    assert_eq!(first.actions.last(), Some(&DpAction::Recirc(id)));
    assert_eq!(first.mask.get(layout::RECIRC_ID), u64::from(u32::MAX));
    // The datapath key after the tracker: registers are not in it; ct_state is.
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set(layout::RECIRC_ID, u64::from(id));
    k.set(layout::CT_STATE, 0x21);
    let t = xlate_with(&p, &k, &mut scratch);
    assert_eq!(t.actions, vec![DpAction::Output(2)]);
    assert_eq!(t.mask.get(layout::RECIRC_ID), u64::from(u32::MAX));
    assert_ne!(t.mask.get(layout::CT_STATE) & 0x21, 0, "ct_state examined");
    k.set(layout::CT_STATE, 0x22);
    assert_eq!(
        xlate_with(&p, &k, &mut scratch).actions,
        vec![DpAction::Output(3)]
    );
    // Another translator (another worker, or after a flush) does not know the id.
    let t = xlate(p.snapshot(), &{
        let mut k2 = k;
        k2.set(layout::RECIRC_ID, 0x7777);
        k2
    });
    assert_eq!(t.reason, Some(DropReason::UnknownRecirc(0x7777)));
    assert!(t.actions.is_empty());
}

#[test]
fn equal_frozen_states_share_ids_and_register_sources_are_in_the_mask() {
    // reg2 takes nw_src: the frozen state depends on it, so the first pass's megaflow must
    // match nw_src exactly; two sources give two ids, the same source the same id.
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=move:NXM_OF_IP_SRC[]->NXM_NX_REG2[],ct(table=1,zone=1)\n\
         table=1,priority=10,ip,actions=output:2\n",
    );
    let mut scratch = TranslateScratch::new();
    let a = xlate_with(&p, &tcp_key(1, 1, 2, 3, 4), &mut scratch);
    let a2 = xlate_with(&p, &tcp_key(1, 1, 2, 99, 4), &mut scratch);
    let b = xlate_with(&p, &tcp_key(1, 5, 2, 3, 4), &mut scratch);
    assert_eq!(recirc_id(&a.actions), recirc_id(&a2.actions));
    assert_ne!(recirc_id(&a.actions), recirc_id(&b.actions));
    assert_eq!(a.mask.get(layout::NW_SRC), u64::from(u32::MAX));
    assert_eq!(a.mask.get(layout::TP_SRC), 0);
    // Freezing adds nothing to the megaflow: untouched metadata is not frozen.
    assert_eq!(a.mask.get(layout::reg(15)), 0);
    assert_eq!(a.mask.get(layout::PKT_MARK), 0);
    assert_eq!(a.mask.get(layout::TUN_ID), 0);
    assert_eq!(a.mask.get(layout::CT_MARK), 0);
    // Unwritten registers are not frozen: a packet differing only there shares the id.
    let mut other = tcp_key(1, 1, 2, 3, 4);
    other.set_reg(7, 1234);
    let c = xlate_with(&p, &other, &mut scratch);
    assert_eq!(recirc_id(&c.actions), recirc_id(&a.actions));
    assert_eq!(scratch.recirc().len(), 2);
}

#[test]
fn ct_table_followed_by_actions_forks() {
    // Antrea's allow-and-log style: the tracked copy continues at table 3 while the original
    // goes on with the rest of the list (here: an output and a goto).
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=ct(commit,table=3,zone=65520),output:4,goto_table:1\n\
         table=1,priority=10,ip,actions=set_field:02:00:00:00:00:77->eth_dst,output:5\n\
         table=3,priority=10,ip,actions=output:6\n",
    );
    let mut scratch = TranslateScratch::new();
    let t = xlate_with(&p, &tcp_key(1, 1, 2, 3, 4), &mut scratch);
    let id = recirc_id(&t.actions);
    let mut commit = ct(65520);
    commit.commit = true;
    assert_eq!(
        t.actions,
        vec![
            DpAction::Ct(commit),
            DpAction::Recirc(id),
            DpAction::Output(4),
            DpAction::SetEthDst([2, 0, 0, 0, 0, 0x77]),
            DpAction::Output(5),
        ]
    );
    assert_eq!(
        format_dp_actions(&t.actions),
        "ct(commit,zone=65520),recirc(0x1),4,set(eth(dst=02:00:00:00:00:77)),5"
    );
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set(layout::RECIRC_ID, u64::from(id));
    k.set(layout::CT_STATE, 0x21);
    assert_eq!(
        xlate_with(&p, &k, &mut scratch).actions,
        vec![DpAction::Output(6)]
    );
}

#[test]
fn rewrites_before_ct_reach_the_packet_first_and_ct_clear_is_emitted() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=set_field:10.0.0.77->ip_dst,ct(zone=3),ct_clear,output:2",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetIpv4Dst(ip(10, 0, 0, 77)),
            DpAction::Ct(ct(3)),
            DpAction::CtClear,
            DpAction::Output(2)
        ]
    );
}

#[test]
fn two_zone_chain_allocates_one_id_per_stage() {
    // UnSNAT (65521) -> ConntrackZone (65520) -> ... -> SNAT commit back into 65521.
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=ct(table=1,zone=65521,nat)\n\
         table=1,priority=10,ip,actions=ct(table=2,zone=65520,nat)\n\
         table=2,priority=10,ct_state=+new+trk,ip,actions=ct(commit,table=3,zone=65521,nat(src=192.168.0.1))\n\
         table=3,priority=10,ip,actions=output:2\n",
    );
    let mut scratch = TranslateScratch::new();
    let mut k = tcp_key(1, 1, 2, 3, 4);
    let mut formatted = Vec::new();
    for _ in 0..4 {
        let t = xlate_with(&p, &k, &mut scratch);
        formatted.push(format_dp_actions(&t.actions));
        if let Some(DpAction::Recirc(id)) = t.actions.last() {
            k.set(layout::RECIRC_ID, u64::from(*id));
            k.set(layout::CT_STATE, 0x21);
        }
    }
    assert_eq!(
        formatted,
        vec![
            "ct(zone=65521,nat),recirc(0x1)",
            "ct(zone=65520,nat),recirc(0x2)",
            "ct(commit,zone=65521,nat(src=192.168.0.1)),recirc(0x3)",
            "2"
        ]
    );
}

#[test]
fn the_antrea_ct_example_loads_groups_and_walks_the_service_path() {
    // deploy/examples/antrea-ct.flows: groups in add-groups syntax, then flows.
    let mut p = xvs_flowtable::pipeline::Pipeline::new();
    let text = include_str!("../../deploy/examples/antrea-ct.flows");
    xvs_flowtable::pipeline::load_flows(&mut p, text, &xvs_flowtable::NameMap::new(), 0).unwrap();
    assert!(p.snapshot().group(1).is_some() && p.snapshot().group(2).is_some());
    let mut scratch = TranslateScratch::new();
    let mut k = tcp_key(1, ip(10, 10, 0, 2), ip(10, 96, 0, 10), 40000, 80);
    k.set(layout::ETH_SRC, 0x020a_0a00_0002);
    k.set(layout::ETH_DST, 0xaabb_ccdd_eeff);
    let mut passes = Vec::new();
    for _ in 0..4 {
        let t = xlate_with(&p, &k, &mut scratch);
        assert_eq!(t.reason, None);
        passes.push(format_dp_actions(&t.actions));
        let Some(DpAction::Recirc(id)) = t.actions.last() else {
            break;
        };
        k.set(layout::RECIRC_ID, u64::from(*id));
        // What the datapath would report: new and tracked; DNAT rewrote the destination.
        k.set(layout::CT_STATE, 0x21);
        if passes.len() == 2 {
            k.set(layout::CT_MARK, 0x10);
            k.set(layout::NW_DST, u64::from(ip(10, 10, 0, 3)));
            k.set(layout::TP_DST, 8080);
        }
    }
    assert_eq!(passes[0], "ct(zone=65520,nat),recirc(0x1)");
    assert!(
        passes[1].starts_with("ct(commit,zone=65520,mark=0x10/0x10,nat(dst=10.10.0.")
            && passes[1].ends_with(":8080)),recirc(0x2)"),
        "{passes:?}"
    );
    // Routed from the gateway to the endpoint (RewriteMAC), TTL decremented, then committed
    // by ConntrackCommit and output by the Output table.
    assert!(
        passes[2].starts_with("set(eth(src=aa:bb:cc:dd:ee:ff)),set(eth(dst=02:0a:0a:00:00:03)),set(ip(ttl=63)),ct(commit,zone=65520,mark=0x3/0xf),recirc(0x"),
        "{passes:?}"
    );
    assert_eq!(passes[3], "2", "{passes:?}");
}

#[test]
fn registers_survive_a_chain_of_recirculations() {
    // reg0 is written before the first ct(); the third pass still sees it (a thawed state is
    // carried into the next freeze), while a register nobody wrote comes from the packet.
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=load:0x5->NXM_NX_REG0[],ct(table=1,zone=1)\n\
         table=1,priority=10,ip,actions=ct(table=2,zone=2)\n\
         table=2,priority=20,ip,reg0=0x5,reg1=0,actions=output:2\n\
         table=2,priority=10,ip,actions=output:3\n",
    );
    let mut scratch = TranslateScratch::new();
    let mut k = tcp_key(1, 1, 2, 3, 4);
    let mut last = Vec::new();
    for _ in 0..3 {
        let t = xlate_with(&p, &k, &mut scratch);
        last = t.actions.clone();
        match t.actions.last() {
            Some(DpAction::Recirc(id)) => {
                k.set(layout::RECIRC_ID, u64::from(*id));
                k.set(layout::CT_STATE, 0x21);
            }
            _ => break,
        }
    }
    assert_eq!(last, vec![DpAction::Output(2)]);
}
