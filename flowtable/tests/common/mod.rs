//! Helpers shared by the pipeline and translation tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod antrea;

use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::group::{parse_group_mod, GroupCommand};
use xvs_flowtable::meter::parse_meter;
use xvs_flowtable::pipeline::{
    load_flows, MeterCommand, MeterMod, Pipeline, PipelineMod, PipelineSnapshot,
};
use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
use xvs_flowtable::NameMap;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

/// A pipeline loaded from `add-flows` text (after `groups` and `meters`).
pub fn pipeline(groups: &[&str], meters: &[&str], flows: &str) -> Pipeline {
    let names = NameMap::new();
    let mut p = Pipeline::new();
    let mut mods = Vec::new();
    for m in meters {
        mods.push(PipelineMod::Meter(MeterMod {
            command: MeterCommand::Add,
            meter: parse_meter(m).unwrap(),
        }));
    }
    for g in groups {
        mods.push(PipelineMod::Group(
            parse_group_mod(g, GroupCommand::Add, &names).unwrap(),
        ));
    }
    if !mods.is_empty() {
        p.commit(&mods, 0).unwrap();
    }
    load_flows(&mut p, flows, &names, 0).unwrap();
    p
}

/// Translates `key` against `snap`.
pub fn xlate(snap: &PipelineSnapshot, key: &FlowKey) -> Translation {
    let mut out = Translation::new();
    translate(snap, key, 0, &mut TranslateScratch::new(), &mut out);
    out
}

/// An IPv4 TCP key.
pub fn tcp_key(in_port: u32, src: u32, dst: u32, sport: u16, dport: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set(layout::IN_PORT, u64::from(in_port));
    k.set(layout::ETH_TYPE, 0x0800);
    k.set(layout::ETH_SRC, 0x0200_0000_0001);
    k.set(layout::ETH_DST, 0x0200_0000_0002);
    k.set(layout::NW_SRC, u64::from(src));
    k.set(layout::NW_DST, u64::from(dst));
    k.set(layout::NW_PROTO, 6);
    k.set(layout::NW_TTL, 64);
    k.set(layout::TP_SRC, u64::from(sport));
    k.set(layout::TP_DST, u64::from(dport));
    k
}

/// The output ports of `actions`, in order.
pub fn outputs(actions: &[DpAction]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            DpAction::Output(p) => Some(*p),
            _ => None,
        })
        .collect()
}

/// An IPv4 address from dotted parts.
pub fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}
