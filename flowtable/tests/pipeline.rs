//! Flow-mod, group-mod and meter-mod semantics of the pipeline, bundles and versions.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use xvs_flowtable::group::{parse_group_mod, GroupCommand};
use xvs_flowtable::meter::parse_meter;
use xvs_flowtable::parse::{parse_flow_mod, parse_flow_mod_line};
use xvs_flowtable::pipeline::{
    load_flows, LoadError, MeterCommand, MeterMod, Pipeline, PipelineError, PipelineMod,
};
use xvs_flowtable::NameMap;

fn fm(s: &str) -> PipelineMod {
    PipelineMod::Flow(parse_flow_mod_line(s, &NameMap::new()).unwrap())
}

fn fm_cmd(s: &str, c: xvs_flowtable::flow::FlowModCommand) -> PipelineMod {
    PipelineMod::Flow(parse_flow_mod(s, c, &NameMap::new()).unwrap())
}

/// A flow mod parsed from `s` whose actions are then replaced (the parser already refuses
/// what the pipeline must refuse for mods that arrive over OpenFlow).
fn fm_with(s: &str, actions: Vec<xvs_flowtable::Action>) -> PipelineMod {
    let mut f = parse_flow_mod_line(s, &NameMap::new()).unwrap();
    f.flow.actions = actions;
    PipelineMod::Flow(f)
}

fn gm(s: &str, c: GroupCommand) -> PipelineMod {
    PipelineMod::Group(parse_group_mod(s, c, &NameMap::new()).unwrap())
}

fn n(p: &Pipeline, table: u8) -> usize {
    p.snapshot().table(table).unwrap().len()
}

fn out_of(p: &Pipeline, in_port: u32) -> Vec<u32> {
    outputs(&xlate(p.snapshot(), &tcp_key(in_port, 1, 2, 3, 4)).actions)
}

#[test]
fn goto_backwards_or_same_table_is_refused() {
    let mut p = Pipeline::new();
    let goto = |t| vec![xvs_flowtable::Action::GotoTable(t)];
    let e = p
        .apply(fm_with("table=5,actions=drop", goto(3)), 0)
        .unwrap_err();
    assert_eq!(e.error, PipelineError::BadGotoTable { from: 5, to: 3 });
    let e = p
        .apply(fm_with("table=5,actions=drop", goto(5)), 0)
        .unwrap_err();
    assert_eq!(e.error, PipelineError::BadGotoTable { from: 5, to: 5 });
    assert_eq!(p.version(), 0, "refused bundles publish nothing");
    p.apply(fm("table=5,actions=goto_table:6"), 0).unwrap();
    assert_eq!(p.version(), 1);
}

#[test]
fn missing_group_or_meter_is_refused_and_deleting_them_deletes_flows() {
    let mut p = Pipeline::new();
    let e = p.apply(fm("actions=group:4"), 0).unwrap_err();
    assert_eq!(e.error, PipelineError::BadOutGroup(4));
    let e = p.apply(fm("actions=meter:4"), 0).unwrap_err();
    assert_eq!(e.error, PipelineError::InvalidMeter(4));
    let meter = parse_meter("meter=4,pktps,bands=type=drop,rate=10").unwrap();
    p.commit(
        &[
            gm(
                "group_id=4,type=all,bucket=actions=output:1",
                GroupCommand::Add,
            ),
            PipelineMod::Meter(MeterMod {
                command: MeterCommand::Add,
                meter: meter.clone(),
            }),
            fm("priority=5,actions=group:4"),
            fm("priority=6,actions=meter:4,output:2"),
            fm("priority=7,actions=output:3"),
        ],
        0,
    )
    .unwrap();
    assert_eq!(n(&p, 0), 3);
    let r = p.apply(gm("group_id=4", GroupCommand::Delete), 0).unwrap();
    assert_eq!(r.removed.len(), 1);
    assert_eq!(n(&p, 0), 2);
    let r = p
        .apply(
            PipelineMod::Meter(MeterMod {
                command: MeterCommand::Delete,
                meter,
            }),
            0,
        )
        .unwrap();
    assert_eq!(r.removed.len(), 1);
    assert_eq!(n(&p, 0), 1);
    let e = p
        .apply(gm("group_id=9,type=all", GroupCommand::Modify), 0)
        .unwrap_err();
    assert_eq!(e.error, PipelineError::UnknownGroup(9));
}

#[test]
fn add_replaces_same_match_and_priority_keeping_counters_unless_reset() {
    let mut p = pipeline(&[], &[], "priority=10,in_port=1,actions=output:2");
    xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4)).credit(5, 500, 1);
    p.apply(fm("priority=10,in_port=1,actions=output:3"), 2)
        .unwrap();
    assert_eq!(n(&p, 0), 1);
    assert_eq!(out_of(&p, 1), vec![3]);
    let r = p.snapshot().flows().next().unwrap().clone();
    assert_eq!(r.stats().packets(), 5, "OpenFlow 1.2+: counters carry over");
    p.apply(fm("priority=10,in_port=1,reset_counts,actions=output:4"), 3)
        .unwrap();
    let r = p.snapshot().flows().next().unwrap().clone();
    assert_eq!(r.stats().packets(), 0);
    assert_eq!(out_of(&p, 1), vec![4]);
    // Different priority: a second flow.
    p.apply(fm("priority=11,in_port=1,actions=output:5"), 3)
        .unwrap();
    assert_eq!(n(&p, 0), 2);
    assert_eq!(out_of(&p, 1), vec![5]);
}

#[test]
fn check_overlap() {
    let mut p = pipeline(
        &[],
        &[],
        "priority=10,ip,nw_src=10.0.0.0/8,actions=output:2",
    );
    let e = p
        .apply(
            fm("priority=10,ip,nw_src=10.1.0.0/16,check_overlap,actions=output:3"),
            0,
        )
        .unwrap_err();
    assert_eq!(e.error, PipelineError::Overlap);
    p.apply(
        fm("priority=11,ip,nw_src=10.1.0.0/16,check_overlap,actions=output:3"),
        0,
    )
    .unwrap();
    p.apply(
        fm("priority=10,ip,nw_src=11.1.0.0/16,check_overlap,actions=output:3"),
        0,
    )
    .unwrap();
}

#[test]
fn modify_loose_and_strict_keep_counters() {
    use xvs_flowtable::flow::FlowModCommand::*;
    let mut p = pipeline(
        &[],
        &[],
        "priority=10,in_port=1,actions=output:2\npriority=20,in_port=1,tcp,actions=output:3\npriority=10,in_port=2,actions=output:4",
    );
    xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4)).credit(1, 10, 1);
    // Loose: both in_port=1 flows (any priority).
    p.apply(fm_cmd("in_port=1,actions=output:9", Modify), 1)
        .unwrap();
    let acts: Vec<_> = p
        .snapshot()
        .flows()
        .filter(|r| out_of_actions(r) == vec![9])
        .collect();
    assert_eq!(acts.len(), 2);
    assert_eq!(out_of(&p, 1), vec![9]);
    assert!(p.snapshot().flows().any(|r| r.stats().packets() == 1));
    // Strict: only the exact match+priority.
    p.apply(
        fm_cmd("priority=10,in_port=2,actions=output:8", ModifyStrict),
        1,
    )
    .unwrap();
    assert_eq!(out_of(&p, 2), vec![8]);
    // A modify that selects nothing does not add (OpenFlow 1.2+).
    p.apply(fm_cmd("in_port=7,actions=output:8", Modify), 1)
        .unwrap();
    assert_eq!(n(&p, 0), 3);
}

fn out_of_actions(r: &xvs_flowtable::pipeline::FlowRule) -> Vec<u16> {
    r.payload()
        .actions
        .iter()
        .filter_map(|a| match a {
            xvs_flowtable::Action::Output { port, .. } => Some(port.0),
            _ => None,
        })
        .collect()
}

#[test]
fn delete_filters() {
    use xvs_flowtable::flow::FlowModCommand::*;
    let text = "table=0,priority=10,cookie=0x1,in_port=1,actions=output:2\n\
                table=0,priority=11,cookie=0x2,in_port=1,actions=output:3\n\
                table=3,priority=10,cookie=0x11,in_port=1,actions=output:2\n\
                table=4,priority=10,cookie=0x21,ip,actions=output:5\n";
    // table omitted = all tables; cookie mask.
    let mut p = pipeline(&[], &[], text);
    p.apply(fm_cmd("cookie=0x1/0xf", Delete), 0).unwrap();
    assert_eq!(p.snapshot().n_flows(), 1);
    // out_port filter.
    let mut p = pipeline(&[], &[], text);
    p.apply(fm_cmd("out_port=2", Delete), 0).unwrap();
    assert_eq!(p.snapshot().n_flows(), 2);
    // Strict: exact match and priority only.
    let mut p = pipeline(&[], &[], text);
    p.apply(fm_cmd("table=0,priority=11,in_port=1", DeleteStrict), 0)
        .unwrap();
    assert_eq!(n(&p, 0), 1);
    p.apply(fm_cmd("table=0,priority=12,in_port=1", DeleteStrict), 0)
        .unwrap();
    assert_eq!(n(&p, 0), 1);
    // Loose delete with a match: flows at least as specific.
    let mut p = pipeline(&[], &[], text);
    let r = p.apply(fm_cmd("in_port=1", Delete), 0).unwrap();
    assert_eq!(r.removed.len(), 3);
    assert_eq!(p.snapshot().n_flows(), 1);
}

#[test]
fn bundle_is_atomic() {
    let mut p = pipeline(&[], &[], "priority=1,actions=output:1");
    let v = p.version();
    let e = p
        .commit(
            &[
                fm("priority=2,actions=output:2"),
                fm("table=2,actions=group:1"),
            ],
            0,
        )
        .unwrap_err();
    assert_eq!(e.index, 1);
    assert_eq!(p.version(), v);
    assert_eq!(p.snapshot().n_flows(), 1);
    assert_eq!(out_of(&p, 9), vec![1]);
}

#[test]
fn readers_see_whole_versions() {
    let mut p = pipeline(&[], &[], "priority=1,actions=output:1");
    let mut r = p.reader();
    let before = r.refresh().clone();
    p.commit(
        &[
            fm("table=0,priority=5,actions=goto_table:1"),
            fm("table=1,priority=5,actions=output:2"),
        ],
        1,
    )
    .unwrap();
    // The old snapshot is unchanged and consistent.
    assert_eq!(
        outputs(&xlate(&before, &tcp_key(9, 1, 2, 3, 4)).actions),
        vec![1]
    );
    assert!(!p.readers_reached(p.version()));
    let now = r.refresh().clone();
    assert_eq!(now.version(), p.version());
    assert_eq!(
        outputs(&xlate(&now, &tcp_key(9, 1, 2, 3, 4)).actions),
        vec![2]
    );
    assert!(p.readers_reached(p.version()));
}

#[test]
fn group_buckets_insert_and_remove() {
    let mut p = pipeline(
        &["group_id=1,type=all,bucket=bucket_id=1,actions=output:1,bucket=bucket_id=2,actions=output:2"],
        &[],
        "priority=1,actions=group:1",
    );
    p.apply(
        gm(
            "group_id=1,command_bucket_id=1,bucket=bucket_id=5,actions=output:5",
            GroupCommand::InsertBucket,
        ),
        0,
    )
    .unwrap();
    assert_eq!(out_of(&p, 9), vec![1, 5, 2]);
    p.apply(
        gm(
            "group_id=1,command_bucket_id=first,bucket=bucket_id=6,actions=output:6",
            GroupCommand::InsertBucket,
        ),
        0,
    )
    .unwrap();
    assert_eq!(out_of(&p, 9), vec![6, 1, 5, 2]);
    let e = p
        .apply(
            gm(
                "group_id=1,command_bucket_id=last,bucket=bucket_id=6,actions=output:7",
                GroupCommand::InsertBucket,
            ),
            0,
        )
        .unwrap_err();
    assert!(matches!(
        e.error,
        PipelineError::BucketExists { bucket: 6, .. }
    ));
    p.apply(
        gm("group_id=1,command_bucket_id=5", GroupCommand::RemoveBucket),
        0,
    )
    .unwrap();
    assert_eq!(out_of(&p, 9), vec![6, 1, 2]);
    let e = p
        .apply(
            gm("group_id=1,command_bucket_id=5", GroupCommand::RemoveBucket),
            0,
        )
        .unwrap_err();
    assert!(matches!(
        e.error,
        PipelineError::UnknownBucket { bucket: 5, .. }
    ));
    p.apply(gm("group_id=1", GroupCommand::RemoveBucket), 0)
        .unwrap();
    assert!(out_of(&p, 9).is_empty());
    let e = p
        .apply(gm("group_id=1,type=all", GroupCommand::Add), 0)
        .unwrap_err();
    assert_eq!(e.error, PipelineError::GroupExists(1));
}

#[test]
fn conjunction_mixed_with_other_actions_is_refused() {
    let mut p = Pipeline::new();
    let mixed = vec![
        xvs_flowtable::Action::Conjunction {
            id: 1,
            clause: 1,
            n_clauses: 2,
        },
        xvs_flowtable::Action::Output {
            port: xvs_flowtable::Port(3),
            max_len: 0,
        },
    ];
    let e = p
        .apply(fm_with("priority=5,ip,actions=drop", mixed), 0)
        .unwrap_err();
    assert_eq!(e.error, PipelineError::BadConjunction);
    p.apply(fm("priority=5,ip,actions=conjunction(1,1/2),note:01"), 0)
        .unwrap();
}

#[test]
fn load_errors_carry_line_numbers() {
    let mut p = Pipeline::new();
    let text = "# comment\n\npriority=1,actions=output:1\ntable=3,actions=goto_table:2\n";
    match load_flows(&mut p, text, &NameMap::new(), 0) {
        Err(LoadError::Parse { line, message }) => {
            assert_eq!(line, 4);
            assert!(message.contains("OFPBIC_BAD_TABLE_ID"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let text = "priority=1,actions=output:1\n\n# x\ntable=3,actions=group:2\n";
    match load_flows(&mut p, text, &NameMap::new(), 0) {
        Err(LoadError::Refused { line, error }) => {
            assert_eq!(line, 4);
            assert_eq!(error, PipelineError::BadOutGroup(2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.version(), 0);
}

#[test]
fn timeouts_expire_flows() {
    let mut p = Pipeline::new();
    p.apply(fm("priority=1,hard_timeout=10,actions=output:1"), 1000)
        .unwrap();
    p.apply(
        fm("priority=2,in_port=5,idle_timeout=5,actions=output:2"),
        1000,
    )
    .unwrap();
    assert!(p.expire(5999).removed.is_empty());
    let v = p.version();
    // A hit at 5000 ms keeps the idle flow alive until 10000 ms.
    xlate(p.snapshot(), &tcp_key(5, 1, 2, 3, 4)).credit(1, 60, 5000);
    assert!(p.expire(9999).removed.is_empty());
    assert_eq!(p.version(), v, "nothing expired: no new version");
    let r = p.expire(10_000);
    assert_eq!(r.removed.len(), 1);
    assert_eq!(r.removed[0].priority(), 2);
    let r = p.expire(11_000);
    assert_eq!(r.removed.len(), 1);
    assert_eq!(p.snapshot().n_flows(), 0);
}

#[test]
fn deleting_a_learner_deletes_what_it_learned() {
    use xvs_flowtable::flow::FlowModCommand::*;
    let mut p = pipeline(
        &[],
        &[],
        "table=0,priority=10,cookie=0x5,tcp,actions=learn(table=9,cookie=0x77,delete_learned,priority=1,eth_type=0x800,NXM_OF_IP_SRC[]),output:2\n\
         table=9,priority=1,cookie=0x1,actions=output:3\n",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, ip(10, 0, 0, 1), 2, 3, 4));
    assert_eq!(t.learned.len(), 1);
    assert!(t.learned[0].delete_learned);
    p.apply(PipelineMod::Flow(t.learned[0].flow_mod.clone()), 1)
        .unwrap();
    assert_eq!(n(&p, 9), 2);
    let r = p.apply(fm_cmd("table=0,cookie=0x5/-1", Delete), 2).unwrap();
    assert_eq!(r.removed.len(), 2, "the learner and its learned flow");
    assert_eq!(n(&p, 9), 1);
    assert_eq!(n(&p, 0), 0);
}

#[test]
fn worker_translator_counts_and_follows_versions() {
    use xvs_flowtable::translate::{DropReason, WorkerTranslator};
    let mut p = pipeline(&[], &[], "priority=1,actions=output:2");
    let mut w = WorkerTranslator::new(p.reader());
    assert_eq!(w.refresh(), p.version());
    let mut acts = Vec::new();
    let mut mask = xvs_packet::FlowKey::ZERO;
    w.translate_into(&tcp_key(1, 1, 2, 3, 4), 0, &mut acts, &mut mask)
        .unwrap();
    assert_eq!(outputs(&acts), vec![2]);
    p.apply(fm("priority=2,actions=output:3,resubmit(,0)"), 1)
        .unwrap();
    // Not visible until the worker refreshes.
    acts.clear();
    w.translate_into(&tcp_key(1, 1, 2, 3, 4), 0, &mut acts, &mut mask)
        .unwrap();
    assert_eq!(outputs(&acts), vec![2]);
    assert_eq!(w.refresh(), p.version());
    acts.clear();
    let e = w
        .translate_into(&tcp_key(1, 1, 2, 3, 4), 0, &mut acts, &mut mask)
        .unwrap_err();
    assert_eq!(e, DropReason::TooDeep);
    assert!(acts.is_empty());
    let c = w.counters();
    assert_eq!((c.translations, c.drops), (3, 1));
    assert_eq!(c.reasons[DropReason::TooDeep.index()], 1);
}

#[test]
fn replaced_snapshots_are_freed_once_readers_move_on() {
    let mut p = pipeline(&[], &[], "priority=1,actions=output:1");
    let mut r = p.reader();
    let old = std::sync::Arc::downgrade(r.refresh());
    p.apply(fm("priority=2,actions=output:2"), 1).unwrap();
    p.reclaim();
    assert!(
        old.upgrade().is_some(),
        "a reader still runs the old version"
    );
    r.refresh();
    p.reclaim();
    assert!(old.upgrade().is_none(), "retired and dropped by the writer");
    // A dropped reader no longer holds anything back.
    let v = p.version();
    drop(r);
    p.apply(fm("priority=3,actions=output:3"), 2).unwrap();
    assert!(p.readers_reached(v + 1));
}

#[test]
fn dump_flows_reports_counters_and_ages_in_ovs_format() {
    use xvs_flowtable::print::{dump_flow_line, FormatOptions};
    let mut p = Pipeline::new();
    p.apply(fm("table=2,priority=5,cookie=0x7,ip,actions=drop"), 0)
        .unwrap();
    p.apply(fm("table=1,priority=9,actions=output:2"), 1_000)
        .unwrap();
    p.apply(fm("table=1,priority=10,ip,actions=resubmit(,2)"), 2_000)
        .unwrap();
    p.apply(fm("priority=1,actions=goto_table:1"), 2_000)
        .unwrap();
    xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4)).credit(3, 180, 4_000);
    let all = p
        .snapshot()
        .dump_flows(xvs_flowtable::pipeline::TABLE_ALL, 5_500);
    let order: Vec<(u8, u16)> = all.iter().map(|f| (f.table, f.priority)).collect();
    assert_eq!(order, vec![(0, 1), (1, 10), (1, 9), (2, 5)]);
    let t2 = &p.snapshot().dump_flows(2, 5_500)[0];
    let st = t2.stats.unwrap();
    assert_eq!((st.n_packets, st.n_bytes), (Some(3), Some(180)));
    assert_eq!((st.duration_sec, st.duration_nsec), (5, 500_000_000));
    assert_eq!(st.idle_age, Some(1));
    let names = NameMap::new();
    let opts = FormatOptions {
        names: &names,
        show_stats: true,
    };
    let line = dump_flow_line(t2, &opts);
    assert!(
        line.starts_with(" cookie=0x7, duration=5.500s, table=2, n_packets=3, n_bytes=180, idle_age=1, priority=5,ip actions=drop"),
        "{line}"
    );
    // The flow never hit: zero counters, idle since its add.
    let t1 = &p.snapshot().dump_flows(1, 5_500)[1];
    assert_eq!(t1.stats.unwrap().n_packets, Some(0));
    assert_eq!(t1.stats.unwrap().idle_age, Some(4));
}

#[test]
fn modify_with_cookie_mask_and_delete_by_out_group() {
    use xvs_flowtable::flow::FlowModCommand::*;
    let mut p = pipeline(
        &["group_id=8,type=all,bucket=actions=output:8"],
        &[],
        "priority=10,cookie=0x10,in_port=1,actions=output:2\n\
         priority=10,cookie=0x20,in_port=2,actions=output:2\n\
         priority=10,cookie=0x30,in_port=3,actions=group:8\n",
    );
    p.apply(fm_cmd("cookie=0x20/0xff,actions=output:9", Modify), 1)
        .unwrap();
    assert_eq!(out_of(&p, 1), vec![2]);
    assert_eq!(out_of(&p, 2), vec![9]);
    let r = p.apply(fm_cmd("out_group=8", Delete), 1).unwrap();
    assert_eq!(r.removed.len(), 1);
    assert!(out_of(&p, 3).is_empty());
    assert_eq!(p.snapshot().n_flows(), 2);
}

#[test]
fn learned_flows_are_installed_in_one_bundle_skipping_refused_ones() {
    let mut p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,actions=learn(table=9,priority=7,hard_timeout=5,eth_type=0x800,NXM_OF_IP_SRC[],load:NXM_OF_TCP_DST[]->NXM_NX_REG4[0..15]),output:2\n",
    );
    let mut reqs = Vec::new();
    for src in 1..=3 {
        reqs.extend(xlate(p.snapshot(), &tcp_key(1, src, 2, 3, 80)).learned);
    }
    // A refused one in the middle (a learned flow naming a group that does not exist).
    let mut bad = reqs[0].clone();
    bad.flow_mod.flow.actions = vec![xvs_flowtable::Action::Group(77)];
    reqs.insert(1, bad);
    let v = p.version();
    let (report, refused) = p.apply_learned(&reqs, 10);
    assert_eq!(refused, vec![(1, PipelineError::BadOutGroup(77))]);
    assert_eq!(report.added, 3);
    assert_eq!(p.version(), v + 1, "one version for the whole batch");
    assert_eq!(n(&p, 9), 3);
    // The learned flows expire with their hard timeout (5 s after the commit at 10 ms).
    assert_eq!(p.expire(5_010).removed.len(), 3);
}

#[test]
fn attribution_credits_each_rule_of_a_translation_once() {
    use xvs_flowtable::stats::Attribution;
    let p = pipeline(
        &[],
        &[],
        "table=0,priority=10,in_port=1,actions=resubmit(,1),resubmit(,1),goto_table:2\n\
         table=1,priority=1,actions=load:0x1->NXM_NX_REG0[]\n\
         table=2,priority=1,actions=output:2\n\
         table=2,priority=9,in_port=3,actions=output:1\n",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    assert_eq!(t.rules.len(), 4, "table 1 matched twice");
    let a = Attribution::of(&t, p.snapshot());
    assert_eq!(a.rules().len(), 3);
    a.credit(7, 700, 1_500);
    a.credit(0, 0, 9_000);
    for r in a.rules() {
        assert_eq!((r.stats().packets(), r.stats().bytes()), (7, 700));
        assert_eq!(
            r.stats().last_used(),
            1_500,
            "an empty credit does not touch ages"
        );
    }
    let untouched = p
        .snapshot()
        .flows()
        .filter(|r| r.stats().packets() == 0)
        .count();
    assert_eq!(untouched, 1);
}

#[test]
fn learned_fin_timeouts_apply_once_a_fin_went_through() {
    let mut p = pipeline(
        &[],
        &[],
        "table=0,priority=10,tcp,actions=learn(table=9,priority=7,idle_timeout=100,hard_timeout=200,fin_idle_timeout=2,fin_hard_timeout=5,eth_type=0x800,NXM_OF_IP_SRC[]),output:2\n",
    );
    let mut reqs = Vec::new();
    for src in 1..=2 {
        reqs.extend(xlate(p.snapshot(), &tcp_key(1, src, 2, 3, 80)).learned);
    }
    assert_eq!(reqs[0].fin_timeouts, (2, 5));
    p.apply_learned(&reqs, 0);
    assert_eq!(n(&p, 9), 2);
    let learned: Vec<_> = p
        .snapshot()
        .table(9)
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    // Both used at 10 s; a FIN went through the first at 11 s.
    for r in &learned {
        r.stats().record(1, 60, 10_000);
    }
    learned[0].stats().record_fin(11_000);
    assert!(p.expire(11_500).removed.is_empty());
    // fin_idle_timeout=2: idle since 10 s, gone at 12 s; the other keeps its 100 s.
    let report = p.expire(12_000);
    assert_eq!(report.removed.len(), 1);
    assert!(std::sync::Arc::ptr_eq(&report.removed[0], &learned[0]));
    assert_eq!(n(&p, 9), 1);
    // fin_hard_timeout counts from the FIN, even for a flow in use.
    learned[1].stats().record_fin(20_000);
    learned[1].stats().record(1, 60, 24_900);
    assert!(p.expire(24_999).removed.is_empty());
    assert_eq!(p.expire(25_000).removed.len(), 1);
}

#[test]
fn attribution_counts_groups_once_and_each_bucket_taken() {
    use xvs_flowtable::stats::Attribution;
    let mut p = pipeline(
        &[
            "group_id=1,type=all,bucket=actions=output:2,bucket=actions=output:3",
            "group_id=2,type=select,bucket=bucket_id=0,actions=output:4,bucket=bucket_id=1,actions=output:5",
        ],
        &[],
        "table=0,priority=10,in_port=1,actions=group:1,group:2,group:1\n",
    );
    let t = xlate(p.snapshot(), &tcp_key(1, 1, 2, 3, 4));
    let a = Attribution::of(&t, p.snapshot());
    a.credit(10, 1000, 5);
    let g1 = p.snapshot().group_stats(1).expect("g1").clone();
    assert_eq!(g1.counts(), (10, 1000), "once per packet, though run twice");
    assert_eq!(g1.bucket_counts(), vec![(10, 1000), (10, 1000)]);
    let g2 = p.snapshot().group_stats(2).expect("g2").clone();
    assert_eq!(g2.counts(), (10, 1000));
    let buckets = g2.bucket_counts();
    assert_eq!(
        buckets.iter().map(|b| b.0).sum::<u64>(),
        10,
        "one bucket taken"
    );
    // An unrelated change keeps the counters; modifying the group resets them.
    p.apply(fm("table=3,actions=drop"), 6).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &g1,
        p.snapshot().group_stats(1).unwrap()
    ));
    p.apply(
        gm(
            "group_id=1,type=all,bucket=actions=output:2",
            GroupCommand::Modify,
        ),
        7,
    )
    .unwrap();
    assert_eq!(p.snapshot().group_stats(1).unwrap().counts(), (0, 0));
    assert_eq!(p.snapshot().group_stats(2).unwrap().counts(), (10, 1000));
}
