//! Agent-side cost of Antrea-native policies at scale (ignored by default; a measurement, run
//! in release): 10k rules, then one policy added at a colliding priority.
//! `cargo test -p xvs-agent --release --test anp_scale -- --ignored --nocapture`

mod anp_common;

use anp_common::*;
use std::time::Instant;
use xvs_agent::anp::incr::UpdatePath;
use xvs_agent::diff::{diff, messages};
use xvs_agent::pipeline::{desired, Ids};
use xvs_agent::sync::SyncState;

fn policy(i: usize, prio: &str) -> String {
    let mut rules = String::new();
    for r in 0..10 {
        rules.push_str(&format!(
            "  - {{action: {}, name: r{r}, from: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}], ports: [{{protocol: TCP, port: {}}}]}}\n",
            if r % 3 == 0 { "Drop" } else { "Allow" },
            (i + r) % 10,
            8000 + r
        ));
    }
    format!("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: pol{i}}}\nspec:\n  priority: {prio}\n  appliedTo: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}]\n  ingress:\n{rules}", i % 10)
}

#[test]
#[ignore]
fn ten_thousand_rules() {
    let mut f = Fx::new();
    for n in 0..10 {
        f = f.ns(&format!("n{n}"), "");
        for p in 0..10 {
            f = f.pod(&format!("n{n}"), &format!("p{p}"), &format!("app=a{p}"));
        }
    }
    let mut base = f.clone();
    for i in 0..1000 {
        // Priorities 1.000 .. 10.99: many collide on Antrea's initial guess.
        base = base.with(&policy(i, &format!("{}.{:03}", 1 + i / 100, i % 100)));
    }
    let t0 = Instant::now();
    let m = base.model();
    let parse = t0.elapsed();
    let mut ids = Ids::default();
    let t1 = Instant::now();
    let d1 = desired(&m, &mut ids);
    let first = t1.elapsed();
    let changed = base.with(&policy(1000, "5.0005")).model();
    let t2 = Instant::now();
    let d2 = desired(&changed, &mut ids);
    let c = diff(&d1, &d2);
    let msgs = messages(&c, 2).expect("encodes");
    let change = t2.elapsed();
    println!(
        "10k rules: parse+admit {parse:?}, first desired {first:?} ({} flows); one more policy: desired+diff+encode {change:?}, {} messages, {} moved priorities",
        d1.flows.len(),
        msgs.len(),
        ids.anp.last_moves.values().map(|m| m.len()).sum::<usize>()
    );
    assert!(msgs.len() >= 10);

    // The same change through the agent's sync state (incremental Antrea-native flows).
    let mut state = SyncState::new(1);
    let t3 = Instant::now();
    let p = state.plan(&m).expect("encodes");
    let first_sync = t3.elapsed();
    assert_eq!(p.path, UpdatePath::Full);
    state.committed(p);
    let t4 = Instant::now();
    let p = state.plan(&changed).expect("encodes");
    let incremental = t4.elapsed();
    assert_eq!(p.path, UpdatePath::Policies);
    println!(
        "sync state: first plan {first_sync:?}; one more policy: plan (incremental) {incremental:?}, {} messages",
        p.mods.len()
    );
    assert_eq!(p.mods.len(), msgs.len());
    state.committed(p);
    assert_eq!(state.installed.flows, d2.flows);
}
