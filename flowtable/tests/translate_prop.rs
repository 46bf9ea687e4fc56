//! Property tests of translation over random pipelines:
//! (a) the megaflow is correct: every key that agrees with a translated key on the returned mask
//!     translates to the same actions, outcome and matched flows;
//! (b) bundles of random flow mods (add, strict and loose modify and delete, cookie masks),
//!     applied incrementally, give the same translations as the
//!     resulting flow set loaded from scratch, and a reader's old snapshot keeps the old
//!     behaviour.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use xvs_flowtable::action::{Action, Ct, CtZone};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::field::{FieldId, Subfield};
use xvs_flowtable::flow::{Flow, FlowMod, FlowModCommand, Match};
use xvs_flowtable::group::{parse_group_mod, GroupCommand};
use xvs_flowtable::l2::MacLearning;
use xvs_flowtable::meter::parse_meter;
use xvs_flowtable::pipeline::{MeterCommand, MeterMod, Pipeline, PipelineMod, PipelineSnapshot};
use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
use xvs_flowtable::{NameMap, Port};
use xvs_packet::key::layout;
use xvs_packet::{FlowKey, KEY_WORDS};

const N_TABLES: u8 = 5;

/// xorshift64*: the generator is seeded by proptest, so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn f(name: &str) -> FieldId {
    FieldId::from_any_name(name).unwrap()
}

fn sub(name: &str, ofs: u16, n_bits: u16) -> Subfield {
    Subfield {
        field: f(name),
        ofs,
        n_bits,
    }
}

fn random_match(rng: &mut Rng) -> Match {
    let mut m = Match::catch_all();
    m.set_exact(f("eth_type"), 0x0800);
    m.set_exact(f("nw_proto"), 6);
    if rng.chance(40) {
        m.set_exact(f("in_port"), u128::from(1 + rng.below(4)));
    }
    if rng.chance(40) {
        let mask = rng.pick(&[0x1u128, 0x3, 0xf]);
        m.set(f("reg0"), u128::from(rng.below(16)), mask);
    }
    if rng.chance(40) {
        let mask = rng.pick(&[0xffff_ffffu128, 0xffff_fffe, 0xffff_ff00]);
        m.set(
            f("nw_src"),
            u128::from(ip(10, 0, 0, rng.below(6) as u8)),
            mask,
        );
    }
    if rng.chance(40) {
        let mask = rng.pick(&[0xffffu128, 0xfff0]);
        m.set(f("tp_dst"), rng.pick(&[80u128, 81, 443]), mask);
    }
    if rng.chance(20) {
        m.set(f("reg1"), u128::from(rng.below(6)), 0xf);
    }
    if rng.chance(20) {
        m.set(f("ct_state"), rng.pick(&[0x21u128, 0x22]), 0x23);
    }
    // Geneve options (mapped: tun_metadata0 4 bytes, tun_metadata1 8 bytes), with masks.
    if rng.chance(25) {
        let mask = rng.pick(&[0x3u128, 0xff, 0xffff_ffff]);
        m.set(f("tun_metadata0"), u128::from(rng.below(4)), mask);
    }
    if rng.chance(15) {
        m.set_exact(f("tun_metadata1"), u128::from(rng.below(3)));
    }
    m
}

/// Output to this port is a tunnel output (options from the tun_metadata fields).
const TUNNEL_PORT: u32 = 6;

fn random_action(rng: &mut Rng, table: u8) -> Action {
    match rng.below(18) {
        15 => Action::SetField {
            field: f("tun_metadata0"),
            value: u128::from(rng.below(4)),
            mask: 0xffff_ffff,
        },
        16 => Action::Output {
            port: Port(TUNNEL_PORT as u16),
            max_len: 0,
        },
        17 => Action::Move {
            src: sub("NXM_NX_REG0", 0, 4),
            dst: sub("NXM_NX_TUN_METADATA1", 0, 4),
        },
        0 => Action::SetField {
            field: f("reg0"),
            value: u128::from(rng.below(16)),
            mask: rng.pick(&[0xfu128, 0x3]),
        },
        1 => Action::SetField {
            field: f("reg1"),
            value: u128::from(1 + rng.below(5)),
            mask: 0xffff_ffff,
        },
        2 => Action::Move {
            src: sub("NXM_OF_IP_SRC", 0, 4),
            dst: sub("NXM_NX_REG0", 0, 4),
        },
        3 => Action::Move {
            src: sub("NXM_OF_TCP_DST", 0, 2),
            dst: sub("NXM_NX_REG1", 0, 2),
        },
        4 => Action::Output {
            port: Port(1 + rng.below(5) as u16),
            max_len: 0,
        },
        5 => Action::OutputReg {
            src: sub("NXM_NX_REG1", 0, 4),
            max_len: 0,
        },
        6 => Action::Resubmit {
            in_port: if rng.chance(20) {
                Port(2)
            } else {
                Port::IN_PORT
            },
            table: Some(rng.below(u64::from(N_TABLES)) as u8),
            with_ct_orig: false,
        },
        7 => Action::SetField {
            field: f("eth_dst"),
            value: rng.pick(&[0x0200_0000_0002u128, 0x0200_0000_00ee]),
            mask: 0xffff_ffff_ffff,
        },
        8 => Action::DecTtl,
        9 => Action::Group(1 + rng.below(2) as u32),
        10 => Action::Meter(1 + rng.below(2) as u32),
        11 => Action::Output {
            port: Port::NORMAL,
            max_len: 0,
        },
        12 => Action::Output {
            port: rng.pick(&[Port::FLOOD, Port::ALL]),
            max_len: 0,
        },
        // ct with recirculation: zone from reg0 or immediate, ct_mark from reg1 on commit.
        13 => {
            let commit = rng.chance(50);
            Action::Ct(Box::new(Ct {
                commit,
                table: Some(rng.below(u64::from(N_TABLES)) as u8),
                zone: if rng.chance(50) {
                    CtZone::Field(sub("NXM_NX_REG0", 0, 4))
                } else {
                    CtZone::Imm(7)
                },
                exec: if commit && rng.chance(50) {
                    vec![Action::Move {
                        src: sub("NXM_NX_REG1", 0, 4),
                        dst: sub("NXM_NX_CT_MARK", 0, 4),
                    }]
                } else {
                    Vec::new()
                },
                ..Ct::default()
            }))
        }
        _ => {
            if table + 1 < N_TABLES {
                Action::Resubmit {
                    in_port: Port::IN_PORT,
                    table: Some(table + 1),
                    with_ct_orig: false,
                }
            } else {
                Action::Output {
                    port: Port::IN_PORT,
                    max_len: 0,
                }
            }
        }
    }
}

fn random_flow(rng: &mut Rng) -> Flow {
    let table = rng.below(u64::from(N_TABLES)) as u8;
    let priority = (rng.below(4) * 10) as u16;
    let mut match_ = random_match(rng);
    let mut actions = Vec::new();
    if rng.chance(20) {
        // A clause flow of conjunction 1 or 2 (two clauses each).
        let id = 1 + rng.below(2) as u32;
        actions.push(Action::Conjunction {
            id,
            clause: 1 + rng.below(2) as u8,
            n_clauses: 2,
        });
    } else {
        if rng.chance(15) {
            match_.set_exact(f("conj_id"), u128::from(1 + rng.below(2)));
        }
        for _ in 0..rng.below(4) {
            actions.push(random_action(rng, table));
        }
        if table + 1 < N_TABLES && rng.chance(40) {
            let to = table + 1 + rng.below(u64::from(N_TABLES - table - 1)) as u8;
            actions.push(Action::GotoTable(to));
        }
    }
    Flow {
        table,
        priority,
        cookie: rng.below(4),
        match_,
        actions,
        ..Flow::default()
    }
}

fn add(flow: Flow) -> FlowMod {
    FlowMod {
        command: FlowModCommand::Add,
        flow,
        table_given: true,
        cookie_mask: 0,
        modify_cookie: true,
        out_port: Port::NONE,
        out_group: u32::MAX,
    }
}

fn groups() -> Vec<PipelineMod> {
    let names = NameMap::new();
    [
        "group_id=1,type=select,bucket=bucket_id=0,actions=output:7,bucket=bucket_id=1,weight=3,actions=set_field:02:00:00:00:00:77->eth_src,output:8,bucket=bucket_id=2,actions=resubmit(,3)",
        "group_id=2,type=all,bucket=actions=set_field:0x9->reg1,output:NXM_NX_REG1[],bucket=actions=resubmit(,4)",
    ]
    .iter()
    .map(|g| PipelineMod::Group(parse_group_mod(g, GroupCommand::Add, &names).unwrap()))
    .chain(
        [
            "meter=1,pktps,burst,bands=type=drop,rate=10,burst_size=5",
            "meter=2,kbps,bands=type=drop,rate=1000",
        ]
        .iter()
        .map(|m| {
            PipelineMod::Meter(MeterMod {
                command: MeterCommand::Add,
                meter: parse_meter(m).unwrap(),
            })
        }),
    )
    .collect()
}

/// A flow set as a model: OpenFlow add semantics (same table, match and priority replaces in
/// place), in insertion order.
#[derive(Clone, Default)]
struct Model(Vec<Flow>, Vec<MacLearning>);

/// The bridge ports of the model (NORMAL, FLOOD, ALL).
const PORTS: [u32; 5] = [1, 2, 3, 4, 5];
/// MACs of the random keys (the last is broadcast).
const MACS: [u64; 4] = [
    0x0200_0000_0001,
    0x0200_0000_0002,
    0x0200_0000_0003,
    0xffff_ffff_ffff,
];

fn random_mac_learning(rng: &mut Rng) -> MacLearning {
    MacLearning {
        mac: MACS[rng.below(3) as usize],
        vlan: 0,
        port: 1 + rng.below(5) as u32,
    }
}

impl Model {
    fn same(a: &Flow, b: &Flow) -> bool {
        a.table == b.table && a.priority == b.priority && a.match_ == b.match_
    }
    fn add(&mut self, fl: Flow) {
        match self.0.iter_mut().find(|o| Self::same(o, &fl)) {
            Some(o) => *o = fl,
            None => self.0.push(fl),
        }
    }
    fn build(&self) -> Pipeline {
        let mut p = Pipeline::new();
        let mut mods = groups();
        mods.extend(self.0.iter().cloned().map(|fl| PipelineMod::Flow(add(fl))));
        p.commit(&mods, 0).unwrap();
        p.tlv_table_mod(
            xvs_flowtable::tlv::TlvCommand::Add,
            &[
                xvs_flowtable::tlv::TlvMapping {
                    class: 0xffff,
                    kind: 1,
                    len: 4,
                    index: 0,
                },
                xvs_flowtable::tlv::TlvMapping {
                    class: 0xffff,
                    kind: 2,
                    len: 8,
                    index: 1,
                },
            ],
            0,
        )
        .unwrap();
        p.set_ports(&PORTS, 0);
        p.learn_macs(&self.1, 0);
        p
    }
}

fn random_key(rng: &mut Rng) -> FlowKey {
    let mut k = tcp_key(
        1 + rng.below(4) as u32,
        ip(10, 0, 0, rng.below(6) as u8),
        ip(10, 0, 1, 1),
        1000 + rng.below(3) as u16,
        rng.pick(&[80u16, 81, 443, 82, 90]),
    );
    k.set(layout::NW_TTL, rng.pick(&[1u64, 2, 64]));
    k.set(layout::ETH_SRC, MACS[rng.below(3) as usize]);
    k.set(layout::ETH_DST, rng.pick(&MACS));
    // Options as decap leaves them: present or not, small values so matches hit.
    let present = rng.below(4);
    k.set(layout::TUN_METADATA_PRESENT, present);
    for i in 0..2 {
        if present & (1 << i) != 0 {
            k.set(layout::tun_metadata(i), rng.below(5));
        }
    }
    k
}

fn same_outcome(a: &Translation, b: &Translation) -> bool {
    a.actions == b.actions
        && a.reason == b.reason
        && a.rules.len() == b.rules.len()
        && a.rules.iter().zip(&b.rules).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// The megaflow property for `k`, then for the packet recirculated by its translation (if
/// any) with a random `ct_state`; one scratch throughout, so equal recirculation ids mean equal
/// frozen states.
fn check_megaflow(s: &PipelineSnapshot, rng: &mut Rng, k: &FlowKey) -> Result<(), TestCaseError> {
    let mut scratch = TranslateScratch::new();
    scratch.set_tunnel_ports(&[TUNNEL_PORT]);
    let mut t = check_megaflow_with(s, rng, k, &mut scratch)?;
    let mut k2 = *k;
    // Follow up to three recirculations (the datapath key keeps the packet fields; registers
    // are zero in it).
    for _ in 0..3 {
        let Some(id) = t.actions.iter().rev().find_map(|a| match a {
            DpAction::Recirc(id) => Some(*id),
            _ => None,
        }) else {
            break;
        };
        for w in 1..10 {
            k2.words[w] = 0;
        }
        k2.set(layout::RECIRC_ID, u64::from(id));
        k2.set(layout::CT_STATE, rng.pick(&[0x21u64, 0x22, 0x30]));
        t = check_megaflow_with(s, rng, &k2, &mut scratch)?;
    }
    Ok(())
}

fn xlate_in(s: &PipelineSnapshot, k: &FlowKey, scratch: &mut TranslateScratch) -> Translation {
    let mut out = Translation::new();
    translate(s, k, 0, scratch, &mut out);
    out
}

fn check_megaflow_with(
    s: &PipelineSnapshot,
    rng: &mut Rng,
    k: &FlowKey,
    scratch: &mut TranslateScratch,
) -> Result<Translation, TestCaseError> {
    let t = xlate_in(s, k, scratch);
    for _ in 0..6 {
        // Any key that agrees on the mask, whatever the other bits (registers included).
        let mut k2 = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            let noise = if rng.chance(50) { rng.next() } else { 0 };
            k2.words[i] = (k.words[i] & t.mask.words[i]) | (noise & !t.mask.words[i]);
        }
        let t2 = xlate_in(s, &k2, scratch);
        prop_assert!(
            same_outcome(&t, &t2),
            "megaflow violated:\nkey  {k:?}\nkey2 {k2:?}\nmask {:?}\n{:?} / {:?}\n{:?} / {:?}",
            t.mask,
            t.actions,
            t2.actions,
            t.reason,
            t2.reason
        );
    }
    Ok(t)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn megaflow_is_correct(seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let mut model = Model::default();
        for _ in 0..(5 + rng.below(40)) {
            model.add(random_flow(&mut rng));
        }
        for _ in 0..rng.below(4) {
            model.1.push(random_mac_learning(&mut rng));
        }
        let p = model.build();
        for _ in 0..24 {
            let k = random_key(&mut rng);
            check_megaflow(p.snapshot(), &mut rng, &k)?;
        }
    }

    #[test]
    fn bundles_match_a_fresh_load(seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let mut model = Model::default();
        for _ in 0..(5 + rng.below(30)) {
            model.add(random_flow(&mut rng));
        }
        let mut p = model.build();
        let mut reader = p.reader();
        for _round in 0..3 {
            let old_model = model.clone();
            let old = Arc::clone(reader.refresh());
            let mut mods = Vec::new();
            for _ in 0..(1 + rng.below(12)) {
                match rng.below(4) {
                    0 | 1 => {
                        let fl = random_flow(&mut rng);
                        model.add(fl.clone());
                        mods.push(PipelineMod::Flow(add(fl)));
                    }
                    2 if !model.0.is_empty() => {
                        // delete_strict an existing flow.
                        let i = rng.below(model.0.len() as u64) as usize;
                        let fl = model.0.remove(i);
                        let mut m = add(fl);
                        m.command = FlowModCommand::DeleteStrict;
                        mods.push(PipelineMod::Flow(m));
                    }
                    3 if rng.chance(30) => {
                        // Loose delete or modify in one table by cookie (catch-all match).
                        let table = rng.below(u64::from(N_TABLES)) as u8;
                        let cookie = rng.below(4);
                        let hit = |fl: &Flow| fl.table == table && fl.cookie & 1 == cookie & 1;
                        let mut m = add(Flow {
                            table,
                            cookie,
                            ..Flow::default()
                        });
                        m.cookie_mask = 1;
                        if rng.chance(50) {
                            m.command = FlowModCommand::Delete;
                            model.0.retain(|fl| !hit(fl));
                        } else {
                            m.command = FlowModCommand::Modify;
                            m.modify_cookie = false;
                            m.flow.actions = vec![random_action(&mut rng, table)];
                            for fl in model.0.iter_mut().filter(|fl| hit(fl)) {
                                fl.actions = m.flow.actions.clone();
                            }
                        }
                        mods.push(PipelineMod::Flow(m));
                    }
                    _ if !model.0.is_empty() => {
                        // modify_strict an existing flow's actions (keeping its kind).
                        let i = rng.below(model.0.len() as u64) as usize;
                        let mut fl = model.0[i].clone();
                        if fl.actions.iter().all(|a| !matches!(a, Action::Conjunction { .. })) {
                            fl.actions = vec![random_action(&mut rng, fl.table)];
                            model.0[i].actions = fl.actions.clone();
                            let mut m = add(fl);
                            m.command = FlowModCommand::ModifyStrict;
                            mods.push(PipelineMod::Flow(m));
                        }
                    }
                    _ => {}
                }
            }
            p.commit(&mods, 1).unwrap();
            // MACs learned or moved between rounds (NORMAL's table is part of the version).
            if rng.chance(60) {
                let l = random_mac_learning(&mut rng);
                model.1.push(l);
                p.learn_macs(&[l], 1);
            }
            let fresh = model.build();
            let fresh_old = old_model.build();
            let new = Arc::clone(reader.refresh());
            prop_assert_eq!(new.version(), p.version());
            for _ in 0..24 {
                let k = random_key(&mut rng);
                let (a, b) = (xlate(&new, &k), xlate(fresh.snapshot(), &k));
                prop_assert_eq!(&a.actions, &b.actions);
                prop_assert_eq!(a.reason, b.reason);
                // The snapshot a worker held before the commit still behaves as before.
                let (a, b) = (xlate(&old, &k), xlate(fresh_old.snapshot(), &k));
                prop_assert_eq!(&a.actions, &b.actions);
                prop_assert_eq!(a.reason, b.reason);
            }
        }
    }
}
