//! Model-based test: random sequences of UDP packets (both directions, two zones, commits with
//! marks, clock jumps) and sweeps, checked packet by packet against a small model of OVS's
//! "other" tracker semantics (FIRST -> MULTIPLE -> BIDIR, 60/60/30 s, +new until a reply).

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::HashMap;
use xvs_conntrack::{CtAction, CtState};

const FLOWS: u16 = 4;
const ZONES: [u16; 2] = [65520, 65521];

#[derive(Clone, Debug)]
enum Op {
    Packet {
        flow: u16,
        reply: bool,
        zone: usize,
        commit: bool,
        mark_bit: Option<u32>,
        advance_s: u64,
    },
    Sweep {
        budget: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..FLOWS, any::<bool>(), 0..2usize, any::<bool>(), proptest::option::of(0..32u32), 0..40u64).prop_map(
            |(flow, reply, zone, commit, mark_bit, advance_s)| Op::Packet { flow, reply, zone, commit, mark_bit, advance_s }
        ),
        1 => (1..20usize).prop_map(|budget| Op::Sweep { budget }),
    ]
}

#[derive(Clone, Debug)]
struct ModelConn {
    /// Direction of the packet that created it (false = the "client" tuple).
    orig_is_reply: bool,
    /// 0 FIRST, 1 MULTIPLE, 2 BIDIR.
    state: u8,
    expires: u64,
    mark: u32,
}

fn timeout(state: u8) -> u64 {
    match state {
        2 => 30 * SEC,
        _ => 60 * SEC,
    }
}

fn packet(flow: u16, reply: bool) -> Packet {
    let client = format!("10.0.0.{}", flow + 1);
    if reply {
        Packet::udp("10.9.9.9", 53, &client, 40000 + flow)
    } else {
        Packet::udp(&client, 40000 + flow, "10.9.9.9", 53)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn udp_tracking_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let ct = ct();
        let mut model: HashMap<(u16, u16), ModelConn> = HashMap::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Sweep { budget } => {
                    let s = ct.sweep(now, budget);
                    prop_assert!(s.examined <= budget);
                }
                Op::Packet { flow, reply, zone, commit, mark_bit, advance_s } => {
                    now += advance_s * SEC;
                    let zone = ZONES[zone];
                    let mut act = if commit { CtAction::commit(zone) } else { CtAction::lookup(zone) };
                    if let Some(b) = mark_bit {
                        act = act.with_mark(1 << b, 1 << b);
                    }
                    let mut p = packet(flow, reply);
                    p.ct(&ct, now, act);

                    let live = model.get(&(zone, flow)).filter(|c| c.expires > now).cloned();
                    let (want_state, want_mark) = match live {
                        Some(mut c) => {
                            let dir_reply = reply != c.orig_is_reply;
                            if dir_reply {
                                c.state = 2;
                            } else if c.state == 0 {
                                c.state = 1;
                            }
                            c.expires = now + timeout(c.state);
                            if commit {
                                if let Some(b) = mark_bit {
                                    c.mark |= 1 << b;
                                }
                            }
                            let mut s = CtState::TRACKED;
                            if c.state == 2 {
                                s.insert(CtState::ESTABLISHED);
                                if dir_reply {
                                    s.insert(CtState::REPLY_DIR);
                                }
                            } else {
                                s.insert(CtState::NEW);
                            }
                            let m = c.mark;
                            model.insert((zone, flow), c);
                            (s, m)
                        }
                        None => {
                            let mut m = 0;
                            if commit {
                                m = mark_bit.map_or(0, |b| 1 << b);
                                model.insert((zone, flow), ModelConn {
                                    orig_is_reply: reply,
                                    state: 0,
                                    expires: now + timeout(0),
                                    mark: m,
                                });
                            } else {
                                model.remove(&(zone, flow));
                            }
                            (CtState::NEW | CtState::TRACKED, m)
                        }
                    };
                    prop_assert_eq!(p.state(), want_state);
                    prop_assert_eq!(p.meta.mark, want_mark);
                    prop_assert_eq!(p.meta.zone, zone);
                }
            }
        }
        // The dump shows exactly the live model connections, with their marks and timers.
        let mut dumped: Vec<(u16, u32, u64)> = ct
            .dump(None, now)
            .iter()
            .map(|e| (e.zone, e.mark, e.expires_in.as_nanos() as u64))
            .collect();
        dumped.sort_unstable();
        let mut want: Vec<(u16, u32, u64)> = model
            .iter()
            .filter(|(_, c)| c.expires > now)
            .map(|((z, _), c)| (*z, c.mark, c.expires - now))
            .collect();
        want.sort_unstable();
        prop_assert_eq!(dumped, want);
        // Sweeping everything leaves only the live ones. `pass_complete` reports the cursor
        // wrapping around, which may finish a pass that earlier, smaller sweeps started (lists
        // examined before the clock moved): a second wrap guarantees one whole pass at `now`.
        let mut wraps = 0;
        while wraps < 2 {
            if ct.sweep(now, 1000).pass_complete {
                wraps += 1;
            }
        }
        prop_assert_eq!(ct.conn_count() as usize, model.values().filter(|c| c.expires > now).count());
    }
}
