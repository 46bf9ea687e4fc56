//! The incremental manifest directory ([`ManifestDir`]) against reading everything again
//! ([`load_dir_admitted`]): random sequences of file writes, removals, touches and same-size
//! in-place edits give the same admitted model, the same errors and the same flows, while
//! parsing only the file that changed.

use std::collections::BTreeMap;
use std::path::Path;
use xvs_agent::anp::{load_dir_admitted, AnpObjects};
use xvs_agent::manifest_dir::ManifestDir;
use xvs_agent::pipeline::{desired, Ids};

/// Documents the files are made of: nodes, namespaces, Pods, tiers (one changing priority,
/// one overlapping), groups (one nested), policies using them, and broken documents.
const DOCS: &[&str] = &[
    "kind: AgentConfig\nspec:\n  nodeName: node-1\n  tunnelType: geneve\n  gateway: {name: antrea-gw0, ip: 10.10.0.1, mac: \"aa:bb:cc:dd:ee:01\", ofport: 2}\n",
    "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nspec: {podCIDR: 10.10.0.0/24}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n",
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {ns: x}}\n",
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {ns: y}}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}, annotations: {xvs.io/mac: \"02:00:00:00:00:0a\", xvs.io/interface: p10, xvs.io/ofport: \"10\"}}\nspec: {nodeName: node-1}\nstatus: {podIP: 10.10.0.10}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {app: b}, annotations: {xvs.io/mac: \"02:00:00:00:00:0b\", xvs.io/interface: p11, xvs.io/ofport: \"11\"}}\nspec: {nodeName: node-1}\nstatus: {podIP: 10.10.0.11}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: y, labels: {app: a}, annotations: {xvs.io/mac: \"02:00:00:00:00:0c\", xvs.io/interface: p12, xvs.io/ofport: \"12\"}}\nspec: {nodeName: node-1}\nstatus: {podIP: 10.10.0.12}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: t1}\nspec: {priority: 10}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {name: t2}\nspec: {priority: 10}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: g1}\nspec: {podSelector: {matchLabels: {app: a}}}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: g2}\nspec: {childGroups: [g1]}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {name: g3}\nspec: {childGroups: [g2]}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: p1}\nspec:\n  tier: t1\n  priority: 1\n  appliedTo: [{podSelector: {matchLabels: {app: b}}}]\n  ingress:\n  - {action: Drop, from: [{group: g1}], ports: [{protocol: TCP, port: 80}]}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: p2}\nspec:\n  priority: 5\n  appliedTo: [{podSelector: {matchLabels: {app: a}}}]\n  ingress:\n  - {action: Allow, from: [{podSelector: {matchLabels: {app: b}}}]}\n  - {action: Drop}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p3, namespace: x}\nspec:\n  tier: t2\n  priority: 2\n  appliedTo: [{podSelector: {}}]\n  egress:\n  - {action: Reject, to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.10.0.0/16]}}]}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: p4}\nspec:\n  tier: baseline\n  priority: 1\n  appliedTo: [{namespaceSelector: {matchLabels: {ns: y}}}]\n  egress:\n  - {action: Drop, to: [{group: g2}]}\n",
    "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: p5}\nspec: {priority: 0, appliedTo: [{podSelector: {}}]}\n",
    "kind: [broken\n",
];

const NAMES: &[&str] = &[
    "10-a.yaml",
    "20-b.yaml",
    "30-c.yml",
    "40-d.yaml",
    "50-e.yaml",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_file(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    (0..n)
        .map(|_| DOCS[rng.below(DOCS.len())])
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Same-size edits that change meaning: a tier's priority, a Pod's label, a rule's action.
const SWAPS: &[(&str, &str)] = &[
    ("priority: 10}", "priority: 11}"),
    ("app: a}, annotations", "app: b}, annotations"),
    ("action: Drop}", "action: Pass}"),
];

/// One random change; returns how many files it may make the incremental reader parse.
fn step(rng: &mut Rng, dir: &Path) -> usize {
    let path = dir.join(NAMES[rng.below(NAMES.len())]);
    match rng.below(10) {
        0..=3 => {
            std::fs::write(&path, random_file(rng)).expect("writing the test directory");
            1
        }
        4 => {
            // Replaced by rename, as editors and `kubectl`-style tools do.
            let tmp = dir.join("incoming.tmp");
            std::fs::write(&tmp, random_file(rng)).expect("writing the test directory");
            std::fs::rename(&tmp, &path).expect("writing the test directory");
            1
        }
        5 | 6 => {
            let _ = std::fs::remove_file(&path);
            0
        }
        7 => {
            // Rewritten unchanged: read again, not parsed.
            if let Ok(t) = std::fs::read_to_string(&path) {
                std::fs::write(&path, t).expect("writing the test directory");
            }
            0
        }
        _ => {
            // In place, same size, within the same timestamp tick as the last scan.
            let Ok(t) = std::fs::read_to_string(&path) else {
                return 0;
            };
            let (from, to) = SWAPS[rng.below(SWAPS.len())];
            let edited = if t.contains(from) {
                t.replacen(from, to, 1)
            } else {
                t.replacen(to, from, 1)
            };
            assert_eq!(edited.len(), t.len());
            std::fs::write(&path, edited).expect("writing the test directory");
            1
        }
    }
}

#[test]
fn random_edits_give_the_same_model_errors_and_flows_as_a_full_reload() {
    for seed in 1..=12u64 {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut incremental = ManifestDir::new();
        let mut everything = ManifestDir::new();
        everything.set_full_reload(true);
        let mut last_good = BTreeMap::new();
        let mut admitted = AnpObjects::default();
        let mut refusals = 0;
        for i in 0..60 {
            let may_parse = step(&mut rng, dir);
            let stats = incremental.reload(dir).expect("reload");
            everything.reload(dir).expect("reload");
            let (full, full_errors) =
                load_dir_admitted(dir, &mut last_good, &mut admitted).expect("full reload");
            let ctx = format!("seed {seed} step {i}");
            assert!(stats.parsed <= may_parse, "{ctx}: {stats:?}");
            assert_eq!(incremental.model(), &full, "{ctx}");
            assert_eq!(incremental.errors(), &full_errors[..], "{ctx}");
            assert_eq!(incremental.admitted(), &admitted, "{ctx}");
            assert_eq!(everything.model(), &full, "{ctx}");
            assert_eq!(everything.errors(), &full_errors[..], "{ctx}");
            assert_eq!(
                desired(incremental.model(), &mut Ids::default()),
                desired(&full, &mut Ids::default()),
                "{ctx}"
            );
            refusals += full_errors.len();
        }
        // The sequences do exercise the refusals and keep-last-good paths.
        assert!(refusals > 0, "seed {seed}");
    }
}

#[test]
fn an_unchanged_directory_is_not_read_again_once_its_stamps_are_old() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    for (i, name) in NAMES.iter().enumerate() {
        std::fs::write(dir.join(name), DOCS[i + 2]).expect("writing the test directory");
    }
    let mut d = ManifestDir::new();
    let first = d.reload(dir).expect("reload");
    assert_eq!((first.files, first.read, first.parsed), (5, 5, 5));
    // Just written: too fresh to trust, so read (not parsed) again.
    assert!(d.racy());
    let again = d.reload(dir).expect("reload");
    assert_eq!((again.read, again.parsed, again.changed), (5, 0, false));
    // Once the files are older than the racy window before the last scan, only stat.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.reload(dir).expect("reload");
    let settled = d.reload(dir).expect("reload");
    assert!(!d.racy());
    assert_eq!(
        (settled.read, settled.parsed, settled.changed),
        (0, 0, false)
    );
    // One changed file is the only one read and parsed; a removed one leaves the model.
    std::fs::write(dir.join(NAMES[0]), DOCS[7]).expect("writing the test directory");
    std::fs::remove_file(dir.join(NAMES[1])).expect("writing the test directory");
    let one = d.reload(dir).expect("reload");
    assert_eq!((one.read, one.parsed, one.removed), (1, 1, 1));
    assert!(d.model().anp.tiers.contains_key("t1"));
    assert!(!d.model().namespaces.contains_key("x"));
    assert!(!d.model().namespaces.contains_key("y"));
}
