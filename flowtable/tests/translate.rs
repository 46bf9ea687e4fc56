//! Translation, action by action.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::pipeline::PipelineMod;
use xvs_flowtable::translate::{DropReason, Unsupported, MAX_DEPTH};
use xvs_flowtable::NameMap;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

fn full(f: xvs_packet::KeyField) -> u64 {
    f.max_value()
}

#[test]
fn output_and_set_field_commit_before_output() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,in_port=1,actions=set_field:02:00:00:00:00:99->eth_dst,output:2,output:3",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthDst([2, 0, 0, 0, 0, 0x99]),
            DpAction::Output(2),
            DpAction::Output(3)
        ]
    );
    assert_eq!(t.reason, None);
    // in_port matched, eth_dst written (the rewrite depends on its original value).
    assert_eq!(t.mask.get(layout::IN_PORT), full(layout::IN_PORT));
    assert_eq!(t.mask.get(layout::ETH_DST), full(layout::ETH_DST));
    assert_eq!(t.mask.get(layout::ETH_TYPE), 0xffff);
    // Nothing read nw_src.
    assert_eq!(t.mask.get(layout::NW_SRC), 0);
    assert_eq!(t.rules.len(), 1);
    assert!(!t.is_drop());
}

#[test]
fn set_to_the_same_value_emits_nothing_but_is_exact() {
    let p = pipeline(
        &[],
        &[],
        "priority=10,actions=set_field:02:00:00:00:00:02->eth_dst,output:2",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.actions, vec![DpAction::Output(2)]);
    assert_eq!(t.mask.get(layout::ETH_DST), full(layout::ETH_DST));
}

#[test]
fn goto_table_miss_and_explicit_drop() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,actions=goto_table:5\n\
         table=5,priority=10,tcp,tp_dst=80,actions=output:7\n\
         table=5,priority=10,tcp,tp_dst=22,actions=drop\n",
    );
    let s = p.snapshot();
    assert_eq!(
        xlate(s, &tcp_key(1, 1, 2, 3, 80)).actions,
        vec![DpAction::Output(7)]
    );
    let t = xlate(s, &tcp_key(1, 1, 2, 3, 22));
    assert!(t.actions.is_empty() && t.is_drop() && t.reason.is_none());
    // Table miss in table 5: drop.
    let t = xlate(s, &tcp_key(1, 1, 2, 3, 443));
    assert!(t.is_drop());
    assert_eq!(t.mask.get(layout::TP_DST), 0xffff);
    // Table 0 miss (UDP).
    let mut k = tcp_key(1, 1, 2, 3, 80);
    k.set(layout::NW_PROTO, 17);
    assert!(xlate(s, &k).is_drop());
}

#[test]
fn resubmit_returns_and_continues() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,actions=resubmit(,3),resubmit(,4),output:9\n\
         table=3,priority=10,actions=set_field:0x5->reg0\n\
         table=4,priority=10,reg0=5,actions=output:5\n",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(outputs(&t.actions), vec![5, 9]);
    assert_eq!(t.rules.len(), 3);
}

#[test]
fn resubmit_with_in_port_changes_lookup_and_is_restored() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,in_port=1,actions=resubmit(7,2),output:IN_PORT\n\
         table=2,priority=10,in_port=7,actions=output:4\n",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(outputs(&t.actions), vec![4, 1]);
}

#[test]
fn resubmit_loop_hits_depth_limit() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,actions=output:3,resubmit(,0)",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.reason, Some(DropReason::TooDeep));
    assert!(t.actions.is_empty(), "a fatal error discards every action");
    assert_eq!(t.rules.len(), MAX_DEPTH + 1);
}

#[test]
fn wide_resubmit_fanout_hits_lookup_limit() {
    // Each level resubmits twice: depth stays small but lookups explode.
    let mut text = String::new();
    for t in 0..20 {
        text.push_str(&format!(
            "table={t},priority=1,actions=resubmit(,{n}),resubmit(,{n})\n",
            n = t + 1
        ));
    }
    let p = pipeline(&[], &[], &text);
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.reason, Some(DropReason::TooManyLookups));
}

#[test]
fn output_reg_and_in_port_rules() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,actions=set_field:0x8000->reg1,output:NXM_NX_REG1[],output:1,output:IN_PORT\n",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    // output:1 is the ingress port and skipped; IN_PORT is honoured.
    assert_eq!(outputs(&t.actions), vec![0x8000, 1]);
}

#[test]
fn move_unwildcards_its_source() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ip,actions=move:NXM_OF_IP_SRC[0..7]->NXM_NX_REG0[0..7],resubmit(,1)\n\
         table=1,priority=10,reg0=0x5/0xff,actions=output:5\n\
         table=1,priority=5,actions=output:6\n",
    );
    let s = p.snapshot();
    let t = xlate(s, &tcp_key(1, ip(10, 0, 0, 5), 2, 3, 4));
    assert_eq!(outputs(&t.actions), vec![5]);
    assert_eq!(t.mask.get(layout::NW_SRC) & 0xff, 0xff);
    let t = xlate(s, &tcp_key(1, ip(10, 0, 0, 6), 2, 3, 4));
    assert_eq!(outputs(&t.actions), vec![6]);
}

#[test]
fn dec_ttl_rewrites_and_expires() {
    let p = pipeline(&[], &[], "table=0,priority=10,ip,actions=dec_ttl,output:2");
    let s = p.snapshot();
    let t = xlate(s, &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.actions, vec![DpAction::SetTtl(63), DpAction::Output(2)]);
    assert_eq!(t.mask.get(layout::NW_TTL), 0xff);
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set(layout::NW_TTL, 1);
    let t = xlate(s, &k);
    assert!(t.actions.is_empty());
    assert_eq!(t.reason, Some(DropReason::TtlExpired));
    assert_eq!(t.mask.get(layout::NW_TTL), 0xff);
}

#[test]
fn vlan_push_set_and_pop() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,in_port=1,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:2\n\
         table=0,priority=10,in_port=3,vlan_tci=0x1000/0x1000,actions=pop_vlan,output:2\n",
    );
    let s = p.snapshot();
    let t = xlate(s, &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(
        t.actions,
        vec![
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 0x1000 | 100
            },
            DpAction::Output(2)
        ]
    );
    let mut k = tcp_key(3, 1, 2, 3, 4);
    k.set(layout::VLAN_TCI, 0x1000 | 7);
    assert_eq!(
        xlate(s, &k).actions,
        vec![DpAction::PopVlan, DpAction::Output(2)]
    );
    // A second tag is not supported.
    let mut k = tcp_key(1, 1, 2, 3, 4);
    k.set(layout::VLAN_TCI, 0x1000 | 7);
    let t = xlate(s, &k);
    assert_eq!(
        t.reason,
        Some(DropReason::Unsupported(Unsupported::DoubleVlan))
    );
    assert!(t.actions.is_empty());
}

#[test]
fn l3_rewrites() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,actions=set_field:10.0.0.9->ip_dst,set_field:8080->tcp_dst,mod_nw_tos:0x20,output:2",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 80));
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetIpv4Dst(ip(10, 0, 0, 9)),
            DpAction::SetTos {
                value: 0x20,
                mask: 0x20
            },
            DpAction::SetTpDst(8080),
            DpAction::Output(2)
        ]
    );
}

#[test]
fn group_all_runs_every_bucket_on_its_own_copy() {
    let p = pipeline(
        &["group_id=1,type=all,bucket=actions=set_field:02:00:00:00:00:aa->eth_dst,output:2,bucket=actions=output:3"],
        &[],
        "table=0,priority=10,actions=group:1,output:4",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthDst([2, 0, 0, 0, 0, 0xaa]),
            DpAction::Output(2),
            DpAction::SetEthDst([2, 0, 0, 0, 0, 2]),
            DpAction::Output(3),
            DpAction::Output(4),
        ]
    );
}

#[test]
fn group_select_is_stable_weighted_and_unwildcards_the_tuple() {
    let p = pipeline(
        &["group_id=7,type=select,bucket=bucket_id=0,weight=100,actions=output:10,bucket=bucket_id=1,weight=300,actions=output:11"],
        &[],
        "table=0,priority=10,tcp,actions=group:7",
    );
    let s = p.snapshot();
    let mut counts = [0u32; 2];
    for sport in 0..4000u16 {
        let k = tcp_key(1, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1024 + sport, 80);
        let a = xlate(s, &k);
        let b = xlate(s, &k);
        assert_eq!(a.actions, b.actions, "stable per connection");
        let port = outputs(&a.actions)[0];
        counts[(port - 10) as usize] += 1;
        assert_eq!(a.mask.get(layout::TP_SRC), 0xffff);
        assert_eq!(a.mask.get(layout::NW_SRC), 0xffff_ffff);
    }
    // 1:3 weights: expect ~1000 / ~3000.
    assert!((800..1200).contains(&counts[0]), "{counts:?}");
}

#[test]
fn select_group_change_moves_only_the_removed_buckets_connections() {
    let names = NameMap::new();
    let mut p = pipeline(
        &["group_id=7,type=select,bucket=bucket_id=0,actions=output:10,bucket=bucket_id=1,actions=output:11,bucket=bucket_id=2,actions=output:12"],
        &[],
        "table=0,priority=10,tcp,actions=group:7",
    );
    let before: Vec<u32> = (0..500u16)
        .map(|i| outputs(&xlate(p.snapshot(), &tcp_key(1, 1, 2, 1000 + i, 80)).actions)[0])
        .collect();
    let gm = xvs_flowtable::group::parse_group_mod(
        "group_id=7,command_bucket_id=2",
        xvs_flowtable::group::GroupCommand::RemoveBucket,
        &names,
    )
    .unwrap();
    p.apply(PipelineMod::Group(gm), 1).unwrap();
    for (i, old) in before.iter().enumerate() {
        let now = outputs(&xlate(p.snapshot(), &tcp_key(1, 1, 2, 1000 + i as u16, 80)).actions)[0];
        if *old != 12 {
            assert_eq!(now, *old);
        } else {
            assert_ne!(now, 12);
        }
    }
}

#[test]
fn meter_is_recorded_controller_and_learn_are_side_effects() {
    let p = pipeline(
        &[],
        &["meter=3,pktps,bands=type=drop,rate=100"],
        "table=0,priority=10,tcp,actions=meter:3,controller(userdata=01.02),learn(table=9,priority=200,hard_timeout=30,eth_type=0x800,NXM_OF_IP_SRC[],load:NXM_OF_TCP_DST[]->NXM_NX_REG4[0..15]),output:2",
    );
    let k = tcp_key(1, ip(10, 1, 1, 1), 2, 3, 443);
    let t = xlate(p.snapshot(), &k);
    assert_eq!(t.meters, vec![3]);
    assert_eq!(t.controller.len(), 1);
    assert_eq!(t.controller[0].controller.userdata, vec![1, 2]);
    assert!(t.slow_path());
    assert_eq!(outputs(&t.actions), vec![2]);
    assert_eq!(t.learned.len(), 1);
    let fm = &t.learned[0].flow_mod;
    assert_eq!(
        (fm.flow.table, fm.flow.priority, fm.flow.hard_timeout),
        (9, 200, 30)
    );
    let mut probe = k;
    probe.set(layout::TP_DST, 1);
    assert!(fm.flow.match_.matches(&probe));
    probe.set(layout::NW_SRC, 7);
    assert!(!fm.flow.match_.matches(&probe));
    // learn read nw_src and tp_dst: both exact in the mask.
    assert_eq!(t.mask.get(layout::NW_SRC), 0xffff_ffff);
    assert_eq!(t.mask.get(layout::TP_DST), 0xffff);

    // The learned flow applies to the pipeline and loads reg4.
    let mut p = p;
    p.apply(PipelineMod::Flow(fm.clone()), 1).unwrap();
    let r = p
        .snapshot()
        .table(9)
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        r.payload().actions,
        vec![xvs_flowtable::Action::SetField {
            field: xvs_flowtable::FieldId::from_name("reg4").unwrap(),
            value: 443,
            mask: 0xffff
        }]
    );
}

#[test]
fn ct_alg_is_unsupported_and_drops() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,actions=output:3,ct(commit,table=1,zone=5,alg=ftp)",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.reason, Some(DropReason::Unsupported(Unsupported::Ct)));
    assert!(t.actions.is_empty());
}

fn l2_key(in_port: u32, src: u64, dst: u64) -> FlowKey {
    let mut k = tcp_key(in_port, 1, 2, 3, 4);
    k.set(layout::ETH_SRC, src);
    k.set(layout::ETH_DST, dst);
    k
}

#[test]
fn normal_learns_floods_and_follows_moves() {
    use xvs_flowtable::l2::MacLearning;
    const A: u64 = 0x0200_0000_000a;
    const B: u64 = 0x0200_0000_000b;
    let mut p = pipeline(&[], &[], "table=0,priority=10,actions=NORMAL");
    let v0 = p.version();
    p.set_ports(&[3, 1, 2], 0);
    assert!(p.version() > v0, "a port change is a new version");
    // Unknown destination: flood to every port but the ingress; learn the source.
    let t = xlate(p.snapshot(), &l2_key(1, A, B));
    assert_eq!(t.reason, None);
    assert_eq!(outputs(&t.actions), vec![2, 3]);
    assert_eq!(
        t.mac_learning,
        vec![MacLearning {
            mac: A,
            vlan: 0,
            port: 1
        }]
    );
    assert_eq!(t.mask.get(layout::ETH_SRC), full(layout::ETH_SRC));
    assert_eq!(t.mask.get(layout::ETH_DST), full(layout::ETH_DST));
    assert_eq!(t.mask.get(layout::VLAN_TCI) & 0x1fff, 0x1fff);
    let v1 = p.version();
    assert!(p.learn_macs(&t.mac_learning, 10));
    assert!(p.version() > v1, "a learned MAC is a new version");
    assert!(
        !p.learn_macs(&t.mac_learning, 20),
        "relearning on the same port is not"
    );
    // Known destination: one output; the reply teaches B.
    let t = xlate(p.snapshot(), &l2_key(2, B, A));
    assert_eq!(outputs(&t.actions), vec![1]);
    assert_eq!(t.mac_learning.len(), 1);
    p.learn_macs(&t.mac_learning, 30);
    let t = xlate(p.snapshot(), &l2_key(1, A, B));
    assert_eq!(outputs(&t.actions), vec![2]);
    assert!(t.mac_learning.is_empty());
    assert_eq!(
        t.mac_entries.len(),
        1,
        "the known source is refreshed by hits"
    );
    // Broadcast floods even when everything is known.
    let t = xlate(p.snapshot(), &l2_key(1, A, 0xffff_ffff_ffff));
    assert_eq!(outputs(&t.actions), vec![2, 3]);
    // A destination learned on the ingress port is dropped.
    let t = xlate(p.snapshot(), &l2_key(2, 0x0200_0000_00cc, B));
    assert!(outputs(&t.actions).is_empty());
    // A moves to port 3: learned as a move, and traffic to A follows it.
    let t = xlate(p.snapshot(), &l2_key(3, A, B));
    assert_eq!(t.mac_learning[0].port, 3);
    assert!(p.learn_macs(&t.mac_learning, 40));
    let t = xlate(p.snapshot(), &l2_key(2, B, A));
    assert_eq!(outputs(&t.actions), vec![3]);
    // Not a bridge port: dropped, nothing learned.
    let t = xlate(p.snapshot(), &l2_key(9, 0x0200_0000_00dd, A));
    assert!(t.actions.is_empty() && t.mac_learning.is_empty());
    // Aging: B was last used at 30 ms; A at 40 ms.
    assert_eq!(p.age_macs(300_035, 300_000), 1);
    assert_eq!(p.snapshot().l2().len(), 1);
    let t = xlate(p.snapshot(), &l2_key(3, A, B));
    assert_eq!(outputs(&t.actions), vec![1, 2], "B forgotten: flood again");
}

#[test]
fn flood_and_all_output_to_every_other_port() {
    for port in ["FLOOD", "ALL"] {
        let mut p = pipeline(
            &[],
            &[],
            &format!("table=0,priority=10,actions=mod_dl_dst:02:00:00:00:00:99,output:{port}"),
        );
        p.set_ports(&[1, 2, 3, 4], 0);
        let t = xlate(p.snapshot(), &tcp_key(2, 1, 2, 3, 4));
        assert_eq!(t.reason, None);
        assert_eq!(outputs(&t.actions), vec![1, 3, 4], "{port}");
        assert_eq!(t.actions[0], DpAction::SetEthDst([2, 0, 0, 0, 0, 0x99]));
    }
}

#[test]
fn conjunction_in_translation() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=100,ip,nw_src=10.0.0.1,actions=conjunction(5,1/2)\n\
         table=0,priority=100,tcp,tp_dst=80,actions=conjunction(5,2/2)\n\
         table=0,priority=100,conj_id=5,ip,actions=output:80\n\
         table=0,priority=1,actions=output:1000\n",
    );
    let s = p.snapshot();
    assert_eq!(
        outputs(&xlate(s, &tcp_key(1, ip(10, 0, 0, 1), 2, 3, 80)).actions),
        vec![80]
    );
    assert_eq!(
        outputs(&xlate(s, &tcp_key(1, ip(10, 0, 0, 1), 2, 3, 81)).actions),
        vec![1000]
    );
    assert_eq!(
        outputs(&xlate(s, &tcp_key(1, ip(10, 0, 0, 2), 2, 3, 80)).actions),
        vec![1000]
    );
}

#[test]
fn credit_counts_each_rule_once() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,actions=resubmit(,1),resubmit(,1)\ntable=1,priority=1,actions=output:2",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(outputs(&t.actions), vec![2, 2]);
    t.credit(3, 300, 77);
    for r in p.snapshot().flows() {
        assert_eq!((r.stats().packets(), r.stats().bytes()), (3, 300));
        assert_eq!(r.stats().last_used(), 77);
    }
}

#[test]
fn always_exact_fields() {
    let p = pipeline(&[], &[], "table=0,priority=1,actions=output:2");
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    let mut want = FlowKey::ZERO;
    want.set(layout::IN_PORT, u64::MAX);
    want.set(layout::RECIRC_ID, u64::MAX);
    want.set(layout::ETH_TYPE, u64::MAX);
    want.set(layout::VLAN_TCI, 0x1000);
    want.set(layout::NW_FRAG, u64::MAX);
    assert_eq!(t.mask, want);
}

#[test]
fn trace_records_the_walk() {
    use xvs_flowtable::translate::{format_trace, translate, TraceEvent, TranslateScratch};
    let p = pipeline(
        &["group_id=3,type=select,bucket=actions=resubmit(,2)"],
        &[],
        "table=0,priority=10,tcp,actions=goto_table:1\n\
         table=1,priority=10,actions=group:3\n\
         table=2,priority=10,actions=output:5,resubmit(,9)\n",
    );
    let mut sc = TranslateScratch::new();
    let mut out = xvs_flowtable::translate::Translation::new();
    translate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4), 0, &mut sc, &mut out);
    assert!(sc.trace().is_empty(), "off by default");
    sc.set_trace(true);
    translate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4), 0, &mut sc, &mut out);
    let tables: Vec<(u8, usize, bool)> = sc
        .trace()
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Lookup { table, depth, rule } => Some((*table, *depth, rule.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tables,
        vec![(0, 0, true), (1, 0, true), (2, 2, true), (9, 3, false)]
    );
    assert!(sc
        .trace()
        .iter()
        .any(|e| matches!(e, TraceEvent::Output(5))));
    let text = format_trace(sc.trace(), &out, &NameMap::new());
    assert!(text.contains("0. priority=10,tcp, cookie 0x0"), "{text}");
    assert!(text.contains("9. No match."), "{text}");
    assert!(text.contains("Datapath actions: 5"), "{text}");
}

#[test]
fn credit_dedups_long_walks_too() {
    // 100 resubmits into the same two flows.
    let mut acts = String::from("table=0,priority=1,actions=");
    for _ in 0..100 {
        acts.push_str("resubmit(,1),");
    }
    acts.push_str("output:2\ntable=1,priority=1,actions=set_field:0x1->reg0\n");
    let p = pipeline(&[], &[], &acts);
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.rules.len(), 101);
    t.credit(1, 64, 9);
    for r in p.snapshot().flows() {
        assert_eq!(r.stats().packets(), 1);
    }
}

#[test]
fn ipv6_rewrites_and_mask() {
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,ipv6,actions=set_field:fd00::9->ipv6_dst,dec_ttl,output:2",
    );
    let mut k = FlowKey::ZERO;
    k.set(layout::IN_PORT, 1);
    k.set(layout::ETH_TYPE, 0x86dd);
    k.set128(layout::IPV6_SRC, 0xfd00 << 112 | 1);
    k.set128(layout::IPV6_DST, 0xfd00 << 112 | 2);
    k.set(layout::NW_PROTO, 17);
    k.set(layout::NW_TTL, 9);
    let t = xlate(p.snapshot(), &k);
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetIpv6Dst(0xfd00 << 112 | 9),
            DpAction::SetTtl(8),
            DpAction::Output(2)
        ]
    );
    assert_eq!(t.mask.get128(layout::IPV6_DST), u128::MAX);
    assert_eq!(t.mask.get128(layout::IPV6_SRC), 0);
    assert_eq!(t.mask.get(layout::NW_FRAG), full(layout::NW_FRAG));
}

#[test]
fn rewrite_without_datapath_action_is_refused() {
    // ICMP type has no datapath rewrite: drop with a reason rather than send it unmodified.
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,icmp,actions=set_field:0->icmp_type,output:2",
    );
    let mut k = tcp_key(1, 1, 2, 8, 0);
    k.set(layout::NW_PROTO, 1);
    let t = xlate(p.snapshot(), &k);
    assert_eq!(
        t.reason,
        Some(DropReason::Unsupported(Unsupported::Rewrite))
    );
    assert!(t.actions.is_empty());
}

/// PACKET_OUT actions: set_field + resubmit, and output:TABLE through the pipeline, as
/// Antrea sends them.
#[test]
fn packet_out_actions_run_through_the_tables() {
    use xvs_flowtable::action::Action;
    use xvs_flowtable::names::Port;
    use xvs_flowtable::translate::{translate_packet_out, TranslateScratch, Translation};
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,actions=output:3\n\
         table=10,priority=5,reg0=0x1,actions=set_field:02:00:00:00:00:07->eth_dst,output:2",
    );
    let key = tcp_key(0xfffffffd, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1000, 80);
    let mut scratch = TranslateScratch::new();
    let mut out = Translation::new();
    // output:TABLE looks the packet up from table 0.
    let to_table = [Action::Output {
        port: Port::TABLE,
        max_len: 0,
    }];
    translate_packet_out(p.snapshot(), &key, &to_table, 0, &mut scratch, &mut out);
    assert_eq!(out.actions, vec![DpAction::Output(3)]);
    // set_field:0x1->reg0,resubmit(,10): the register reaches the resubmitted lookup.
    let fm = xvs_flowtable::parse::parse_flow_mod(
        "actions=set_field:0x1->reg0,resubmit(,10)",
        xvs_flowtable::flow::FlowModCommand::Add,
        &NameMap::new(),
    )
    .unwrap();
    translate_packet_out(
        p.snapshot(),
        &key,
        &fm.flow.actions,
        0,
        &mut scratch,
        &mut out,
    );
    assert_eq!(
        out.actions,
        vec![DpAction::SetEthDst([2, 0, 0, 0, 0, 7]), DpAction::Output(2)]
    );
    // A plain output needs no table.
    let direct = [Action::Output {
        port: Port(2),
        max_len: 0,
    }];
    translate_packet_out(p.snapshot(), &key, &direct, 0, &mut scratch, &mut out);
    assert_eq!(out.actions, vec![DpAction::Output(2)]);
}

#[test]
fn output_to_a_tunnel_port_becomes_tunnel_push_with_metadata_in_the_mask() {
    use std::net::{IpAddr, Ipv4Addr};
    use xvs_flowtable::datapath::TunnelPush;
    use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,in_port=1,actions=set_field:192.168.77.2->tun_dst,\
         set_field:42->tun_id,set_field:02:00:00:00:00:99->eth_dst,output:9\n\
         table=0,priority=10,in_port=9,tun_id=42,actions=output:1\n",
    );
    let mut scratch = TranslateScratch::new();
    scratch.set_tunnel_ports(&[9]);
    let mut t = Translation::new();
    translate(
        p.snapshot(),
        &tcp_key(1, 1, 2, 3, 4),
        0,
        &mut scratch,
        &mut t,
    );
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthDst([2, 0, 0, 0, 0, 0x99]),
            DpAction::TunnelPush(TunnelPush {
                port: 9,
                tun_id: 42,
                dst: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 77, 2))),
                src: None,
                flags: 0,
                options: Default::default(),
            })
        ]
    );
    assert!(!t.is_drop());
    // The outer header depends on every tunnel field the engine reads.
    for f in [
        layout::TUN_ID,
        layout::TUN_DST,
        layout::TUN_SRC,
        layout::TUN_FLAGS,
    ] {
        assert_eq!(t.mask.get(f), full(f), "{f:?}");
    }
    assert_eq!(t.mask.get128(layout::TUN_IPV6_DST), u128::MAX);
    // Without the declaration the same flow is a plain output.
    let plain = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(plain.actions[1], DpAction::Output(9));
    assert_eq!(plain.mask.get(layout::TUN_DST), 0);
    // Received from the tunnel: the lookup on tun_id is exact, output is plain.
    let mut k = tcp_key(9, 1, 2, 3, 4);
    k.set(layout::TUN_ID, 42);
    translate(p.snapshot(), &k, 0, &mut scratch, &mut t);
    assert_eq!(t.actions, vec![DpAction::Output(1)]);
    assert_eq!(t.mask.get(layout::TUN_ID), full(layout::TUN_ID));
}
