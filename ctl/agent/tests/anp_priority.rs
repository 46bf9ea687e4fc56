//! Antrea's OpenFlow priority assignment: golden initial values, ordering across tiers and
//! policies, and re-packing on collision.

use proptest::prelude::*;
use xvs_agent::anp::priority::{PriorityAssigner, PriorityKey};

fn k(tier: i32, policy: f64, rule: u32) -> PriorityKey {
    PriorityKey { tier, policy, rule }
}

#[test]
fn golden_initial_priorities() {
    let a = PriorityAssigner::policy_tables();
    assert_eq!(a.initial(&k(250, 5.0, 0)), 14500);
    assert_eq!(a.initial(&k(250, 5.0, 1)), 14499);
    assert_eq!(a.initial(&k(100, 5.0, 0)), 44900);
    assert_eq!(a.initial(&k(100, 1.0, 0)), 44980);
    assert_eq!(a.initial(&k(50, 20.0, 0)), 54600);
    assert_eq!(a.initial(&k(200, 1.0, 0)), 24980);
    assert_eq!(a.initial(&k(10, 1.0, 0)), 62980);
    let b = PriorityAssigner::baseline_tables();
    assert_eq!(b.initial(&k(253, 1.0, 0)), 170);
    assert_eq!(b.initial(&k(253, 16.4, 0)), 16);
    // Beyond the range: the bottom.
    assert_eq!(b.initial(&k(253, 10000.0, 0)), 10);
}

#[test]
fn doc_ordering_example_registers_at_the_guesses() {
    // ACNP1 application p10, ANNP1 application p15, ACNP3 emergency p20, two rules each.
    let mut a = PriorityAssigner::policy_tables();
    let keys = [
        k(250, 10.0, 0),
        k(250, 10.0, 1),
        k(250, 15.0, 0),
        k(250, 15.0, 1),
        k(50, 20.0, 0),
        k(50, 20.0, 1),
    ];
    let moved = a.register(&keys).expect("fits");
    assert!(moved.is_empty());
    let got: Vec<u16> = keys.iter().map(|x| a.get(x).expect("assigned")).collect();
    assert_eq!(got, vec![14000, 13999, 13500, 13499, 54600, 54599]);
    // Registering again changes nothing.
    assert!(a.register(&keys).expect("fits").is_empty());
    assert_eq!(a.get(&keys[0]), Some(14000));
}

#[test]
fn colliding_guesses_are_placed_between_neighbours() {
    let mut a = PriorityAssigner::policy_tables();
    a.register(&[k(250, 5.0, 0), k(250, 5.0, 1), k(250, 5.0, 2)])
        .expect("fits");
    // p5.001: the same guesses (trunc(500.1) = 500) but lower precedence.
    a.register(&[k(250, 5.001, 0), k(250, 5.001, 1)])
        .expect("fits");
    let p = |x| a.get(&x).expect("assigned");
    assert!(p(k(250, 5.0, 2)) > p(k(250, 5.001, 0)));
    assert!(p(k(250, 5.001, 0)) > p(k(250, 5.001, 1)));
    assert_eq!(
        p(k(250, 5.0, 0)),
        14500,
        "the first policy keeps its priorities"
    );
}

#[test]
fn repack_moves_neighbours_and_reports_them() {
    // A range of 11 priorities, filled densely around the middle.
    let mut a = PriorityAssigner::with_range(20, 10, false);
    // The guesses of tier 0 policy p/20 rule r: 20 - trunc(20 p) - r.
    a.register(&[k(0, 0.05, 0), k(0, 0.1, 0)]).expect("fits"); // 19, 18
                                                               // Between 19 and 18 there is no room: one neighbour moves (the fewest possible).
    let moved = a.register(&[k(0, 0.06, 0)]).expect("fits");
    assert_eq!(moved.len(), 1, "{moved:?}");
    let order = [k(0, 0.05, 0), k(0, 0.06, 0), k(0, 0.1, 0)];
    let ps: Vec<u16> = order.iter().map(|x| a.get(x).expect("assigned")).collect();
    assert!(ps[0] > ps[1] && ps[1] > ps[2], "{ps:?}");
    assert!(ps.iter().all(|p| (10..=20).contains(p)));
    // Fill the rest, then one more is refused with Antrea's message.
    let more: Vec<PriorityKey> = (0..8).map(|i| k(1, f64::from(i), 0)).collect();
    a.register(&more).expect("fits exactly");
    let e = a.register(&[k(2, 1.0, 0)]).expect_err("full");
    assert_eq!(
        e.to_string(),
        "number of priorities to be registered (12) is greater than available openflow priorities (11)"
    );
}

fn check(a: &PriorityAssigner, top: u16, bottom: u16) {
    let v: Vec<(PriorityKey, u16)> = a.iter().map(|(k, p)| (*k, *p)).collect();
    for w in v.windows(2) {
        assert!(w[0].1 > w[1].1, "order broken: {w:?}");
    }
    assert!(v.iter().all(|(_, p)| (bottom..=top).contains(p)));
}

proptest! {
    #[test]
    fn any_registration_order_keeps_strict_order_in_range(
        batches in proptest::collection::vec(
            proptest::collection::vec((0i32..4, 1u32..40, 0u32..4), 1..6), 1..12),
        removals in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let (top, bottom) = (200u16, 100u16);
        let mut a = PriorityAssigner::with_range(top, bottom, false);
        for (i, b) in batches.iter().enumerate() {
            let keys: Vec<PriorityKey> = b
                .iter()
                .map(|(t, p, r)| k(*t * 10, f64::from(*p) / 4.0, *r))
                .collect();
            let before: Vec<(PriorityKey, u16)> = a.iter().map(|(k, p)| (*k, *p)).collect();
            match a.register(&keys) {
                Ok(moved) => {
                    for key in &keys {
                        prop_assert!(a.get(key).is_some());
                    }
                    // Every registered key that changed priority is reported.
                    for (key, old) in before {
                        let new = a.get(&key).expect("still registered");
                        if new != old {
                            prop_assert_eq!(moved.get(&old), Some(&new));
                        }
                    }
                }
                Err(_) => prop_assert!(a.iter().count() + keys.len() > 101),
            }
            check(&a, top, bottom);
            if removals[i] {
                // Release the keys of every other tier.
                a.retain(|k| k.tier % 20 == 0);
                check(&a, top, bottom);
            }
        }
    }
}
