//! Generated Antrea-native policies against real traffic: for each seed, random Namespace and
//! Pod labels, custom tiers, ClusterGroups (selectors, ipBlocks with except, childGroups),
//! ACNPs/ANNPs (Allow/Drop/Reject/Pass; pod, namespace, Self, sameLabels, group,
//! ipBlock-with-except and selects-nothing peers; group and per-rule appliedTo; ports,
//! ranges, ICMP) and K8s NetworkPolicies over 6 Pods in 3 namespaces. The verdict of every
//! (src, dst, protocol/port) is computed by the agent's reference evaluator of the documented
//! semantics (`xvs_agent::anp::eval`) on the model read from the same manifest directory, and
//! compared with fresh connections through xvs.
//!
//! Seeds: `SEEDS` below, or `XVS_ANP_SEED=<n>[,<n>...]` to replay (printed on failure).

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvs_agent::anp::eval::{verdict, Conn, Verdict as Expected, L4};
use xvs_agent::anp::AnpObjects;
use xvs_agent::model::{Object, Proto as ModelProto};
use xvs_integration::agent::{connect, echo, echo_server};
use xvs_integration::anp_fixture::{yaml_labels, Cluster, PodDef, Proto, Verdict, EXTERNAL};
use xvs_integration::is_root;

const SEEDS: [u64; 5] = [42, 89, 144, 377, 1234];
/// The port of the long connections (echo servers), not one the generator names.
const LONG_PORT: u16 = 7000;
const NAMESPACES: [&str; 3] = ["g1", "g2", "g3"];
/// Probed services: (protocol, port).
const SERVICES: [(Proto, u16); 4] = [
    (Proto::Tcp, 80),
    (Proto::Tcp, 8080),
    (Proto::Udp, 53),
    (Proto::Icmp, 0),
];

/// splitmix64: a small deterministic generator (no dependency, stable across versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn ns_labels(rng: &mut Rng) -> String {
    let mut l = Vec::new();
    if rng.chance(80) {
        l.push(format!("team={}", rng.pick(&["red", "blue"])));
    }
    if rng.chance(60) {
        l.push(format!("env={}", rng.pick(&["dev", "prod"])));
    }
    l.join(",")
}

fn pod_labels(rng: &mut Rng) -> String {
    let mut l = vec![format!("app={}", rng.pick(&["a", "b", "c"]))];
    if rng.chance(50) {
        l.push(format!("tier={}", rng.pick(&["fe", "be"])));
    }
    l.join(",")
}

fn selector(rng: &mut Rng, keys: &[(&str, &[&str])]) -> String {
    let (k, vals) = rng.pick(keys);
    match rng.below(5) {
        0 => "{}".to_string(),
        1 => format!(
            "{{matchExpressions: [{{key: {k}, operator: In, values: [{}]}}]}}",
            rng.pick(vals)
        ),
        2 => format!("{{matchExpressions: [{{key: {k}, operator: Exists}}]}}"),
        _ => format!("{{matchLabels: {{{k}: {}}}}}", rng.pick(vals)),
    }
}

const POD_KEYS: &[(&str, &[&str])] = &[("app", &["a", "b", "c"]), ("tier", &["fe", "be"])];
const NS_KEYS: &[(&str, &[&str])] = &[("team", &["red", "blue"]), ("env", &["dev", "prod"])];

/// The ClusterGroups every seed redefines (ACNP peers and appliedTo).
const CLUSTER_GROUPS: [&str; 4] = ["gcg-sel", "gcg-ns", "gcg-ip", "gcg-parent"];

fn cluster_groups(rng: &mut Rng) -> String {
    let cg = |name: &str, spec: String| {
        format!("---\napiVersion: crd.antrea.io/v1beta1\nkind: ClusterGroup\nmetadata: {{name: {name}}}\nspec: {spec}\n")
    };
    let mut out = cg(
        "gcg-sel",
        format!("{{podSelector: {}}}", selector(rng, POD_KEYS)),
    );
    let ns = if rng.chance(50) {
        format!("{{namespaceSelector: {}}}", selector(rng, NS_KEYS))
    } else {
        format!(
            "{{namespaceSelector: {}, podSelector: {}}}",
            selector(rng, NS_KEYS),
            selector(rng, POD_KEYS)
        )
    };
    out.push_str(&cg("gcg-ns", ns));
    out.push_str(&cg(
        "gcg-ip",
        "{ipBlocks: [{cidr: 10.10.0.0/29, except: [10.10.0.6/31]}]}".into(),
    ));
    out.push_str(&cg(
        "gcg-parent",
        format!(
            "{{childGroups: [gcg-ip, {}]}}",
            rng.pick(&["gcg-sel", "gcg-ns"])
        ),
    ));
    out
}

fn peer(rng: &mut Rng, cluster_scoped: bool) -> String {
    if cluster_scoped && rng.chance(15) {
        return format!("{{group: {}}}", rng.pick(&CLUSTER_GROUPS));
    }
    let n = if cluster_scoped { 8 } else { 5 };
    match rng.below(n) {
        0 => format!("{{podSelector: {}}}", selector(rng, POD_KEYS)),
        1 => "{ipBlock: {cidr: 10.10.0.0/29, except: [10.10.0.4/30]}}".to_string(),
        2 => format!(
            "{{ipBlock: {{cidr: {}}}}}",
            rng.pick(&["10.10.0.4/30", "10.0.10.0/24", "10.10.0.0/24"])
        ),
        3 => "{podSelector: {matchLabels: {app: nothing}}}".to_string(),
        4 => format!(
            "{{namespaceSelector: {}, podSelector: {}}}",
            selector(rng, NS_KEYS),
            selector(rng, POD_KEYS)
        ),
        5 => format!("{{namespaceSelector: {}}}", selector(rng, NS_KEYS)),
        6 => "{namespaces: {match: Self}}".to_string(),
        _ => "{namespaces: {sameLabels: [team]}}".to_string(),
    }
}

fn l4(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => ", ports: [{protocol: TCP, port: 80}]".into(),
        1 => ", ports: [{protocol: TCP, port: 80, endPort: 8080}]".into(),
        2 => ", ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 8080}]".into(),
        3 => ", protocols: [{icmp: {icmpType: 8, icmpCode: 0}}]".into(),
        _ => String::new(),
    }
}

fn applied_to(rng: &mut Rng, cluster_scoped: bool) -> String {
    if cluster_scoped && rng.chance(15) {
        return format!("[{{group: {}}}]", rng.pick(&CLUSTER_GROUPS));
    }
    let n = if cluster_scoped { 4 } else { 2 };
    match rng.below(n) {
        0 => format!("[{{podSelector: {}}}]", selector(rng, POD_KEYS)),
        1 => "[{podSelector: {}}]".into(),
        2 => format!("[{{namespaceSelector: {}}}]", selector(rng, NS_KEYS)),
        _ => format!(
            "[{{namespaceSelector: {}, podSelector: {}}}]",
            selector(rng, NS_KEYS),
            selector(rng, POD_KEYS)
        ),
    }
}

/// Tiers, Antrea-native policies and K8s NetworkPolicies for `seed`.
fn policies(seed: u64, rng: &mut Rng) -> String {
    let mut out = cluster_groups(rng);
    let mut tiers: Vec<String> = ["emergency", "securityops", "application", "baseline"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut tier_prios = vec![5, 20, 120, 180, 240];
    for i in 0..rng.below(3) {
        let p = tier_prios.remove(rng.below(tier_prios.len()));
        let name = format!("gen{seed}t{i}");
        let _ = write!(
            out,
            "---\napiVersion: crd.antrea.io/v1beta1\nkind: Tier\nmetadata: {{name: {name}}}\nspec: {{priority: {p}}}\n"
        );
        tiers.push(name);
    }
    // Distinct policy priorities: no two policies tie, whatever their tiers.
    let mut prios: Vec<u32> = (1..=60).collect();
    for i in 0..3 + rng.below(6) {
        let cluster_scoped = rng.chance(60);
        let tier = rng.pick(&tiers).clone();
        let prio = prios.remove(rng.below(prios.len()));
        let prio = if rng.chance(30) {
            format!("{prio}.5")
        } else {
            prio.to_string()
        };
        let per_rule = rng.chance(20);
        let (kind, meta) = if cluster_scoped {
            ("ClusterNetworkPolicy", format!("{{name: gen-{i}}}"))
        } else {
            let ns = rng.pick(&NAMESPACES);
            (
                "NetworkPolicy",
                format!("{{name: gen-{i}, namespace: {ns}}}"),
            )
        };
        let _ = write!(
            out,
            "---\napiVersion: crd.antrea.io/v1beta1\nkind: {kind}\nmetadata: {meta}\nspec:\n  priority: {prio}\n  tier: {tier}\n"
        );
        if !per_rule {
            let _ = writeln!(out, "  appliedTo: {}", applied_to(rng, cluster_scoped));
        }
        // At least one direction: a policy without rules (per-rule appliedTo) is refused,
        // and a refusal takes the whole file.
        let dirs = *rng.pick(&[(true, false), (false, true), (true, true), (true, true)]);
        for (dir, on) in [("ingress", dirs.0), ("egress", dirs.1)] {
            if !on {
                continue;
            }
            let _ = writeln!(out, "  {dir}:");
            for k in 0..1 + rng.below(3) {
                // Allow and Pass weigh more: denials dominate otherwise.
                let actions: &[&str] = if tier == "baseline" {
                    &["Allow", "Allow", "Drop", "Reject"]
                } else {
                    &["Allow", "Allow", "Drop", "Reject", "Pass", "Pass"]
                };
                let action = rng.pick(actions);
                let key = if dir == "ingress" { "from" } else { "to" };
                let peers: Vec<String> = (0..rng.below(3))
                    .map(|_| peer(rng, cluster_scoped))
                    .collect();
                let peers = if peers.is_empty() {
                    String::new()
                } else {
                    format!(", {key}: [{}]", peers.join(", "))
                };
                let at = if per_rule {
                    format!(", appliedTo: {}", applied_to(rng, cluster_scoped))
                } else {
                    String::new()
                };
                // Named: identical unnamed rules would get the same generated name (refused).
                let _ = writeln!(
                    out,
                    "  - {{action: {action}{peers}{}{at}, name: {dir}-{k}}}",
                    l4(rng)
                );
            }
        }
    }
    for i in 0..rng.below(3) {
        let ns = rng.pick(&NAMESPACES);
        let types = rng.pick(&["[Ingress]", "[Egress]", "[Ingress, Egress]"]);
        let _ = write!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: k8s-{i}, namespace: {ns}}}\nspec:\n  podSelector: {}\n  policyTypes: {types}\n",
            selector(rng, POD_KEYS)
        );
        for (dir, key) in [("ingress", "from"), ("egress", "to")] {
            if !types.contains(if dir == "ingress" {
                "Ingress"
            } else {
                "Egress"
            }) {
                continue;
            }
            let n = rng.below(3);
            if n == 0 {
                // Isolated for this direction, nothing allowed.
                let _ = writeln!(out, "  {dir}: []");
            } else {
                let _ = writeln!(out, "  {dir}:");
            }
            for _ in 0..n {
                let p = match rng.below(3) {
                    0 => format!("podSelector: {}", selector(rng, POD_KEYS)),
                    1 => format!("namespaceSelector: {}", selector(rng, NS_KEYS)),
                    _ => "ipBlock: {cidr: 10.10.0.0/29}".into(),
                };
                let ports = match rng.below(3) {
                    0 => ", ports: [{protocol: TCP, port: 80}]",
                    1 => ", ports: [{protocol: UDP, port: 53}]",
                    _ => "",
                };
                let _ = writeln!(out, "  - {{{key}: [{{{p}}}]{ports}}}");
            }
        }
    }
    out
}

fn expected(
    model: &xvs_agent::model::Model,
    src: &str,
    dst: &str,
    proto: Proto,
    port: u16,
) -> Verdict {
    let (Ok(src), Ok(dst)) = (src.parse::<Ipv4Addr>(), dst.parse::<Ipv4Addr>()) else {
        return Verdict::Drop;
    };
    let l4 = match proto {
        Proto::Tcp => L4::Ports {
            proto: ModelProto::Tcp,
            sport: 40000,
            dport: port,
        },
        Proto::Udp => L4::Ports {
            proto: ModelProto::Udp,
            sport: 40000,
            dport: port,
        },
        Proto::Icmp => L4::Icmp {
            icmp_type: 8,
            icmp_code: 0,
        },
    };
    match verdict(
        model,
        &Conn {
            src,
            dst,
            l4,
            service: None,
        },
    ) {
        Expected::Allow => Verdict::Allow,
        Expected::Drop => Verdict::Drop,
        Expected::Reject => Verdict::Reject,
    }
}

/// Established connections (opened under the previous seed's policies) must survive the
/// change to the next ones: only new connections are evaluated.
fn check_established(long: &mut [(String, TcpStream)], when: &str) -> Result<()> {
    for (what, s) in long.iter_mut() {
        echo(s, b"still established")
            .with_context(|| format!("{what}: established connection broken {when}"))?;
    }
    Ok(())
}

/// Opens long connections (to the echo servers on `LONG_PORT`) for up to 8 pairs the
/// evaluator allows.
fn open_long(c: &Cluster, model: &xvs_agent::model::Model) -> Result<Vec<(String, TcpStream)>> {
    let mut out = Vec::new();
    for (i, src) in c.pods.iter().enumerate() {
        for (j, dst) in c.pods.iter().enumerate() {
            if i == j || out.len() >= 8 || (i + j) % 3 != 0 {
                continue;
            }
            if expected(model, &src.ip, &dst.ip, Proto::Tcp, LONG_PORT) != Verdict::Allow {
                continue;
            }
            let what = format!(
                "{}/{} -> {}/{}:{LONG_PORT}",
                src.def.namespace, src.def.name, dst.def.namespace, dst.def.name
            );
            let mut s = connect(
                &src.netns,
                &format!("{}:{LONG_PORT}", dst.ip),
                Duration::from_secs(2),
            )
            .with_context(|| format!("{what}: allowed by the evaluator"))?;
            let mut hello = [0u8; 4];
            s.read_exact(&mut hello)?;
            echo(&mut s, b"hello")?;
            out.push((what, s));
        }
    }
    Ok(out)
}

/// What the agent remembers between reads of its directory: the last good version of each
/// file and the admitted Antrea-native objects.
type Memory = (BTreeMap<PathBuf, Vec<Object>>, AnpObjects);

fn run_seed(
    c: &Cluster,
    seed: u64,
    long: &mut Vec<(String, TcpStream)>,
    memory: &mut Memory,
) -> Result<()> {
    let mut rng = Rng(seed);
    let ns_l: Vec<String> = NAMESPACES.iter().map(|_| ns_labels(&mut rng)).collect();
    let pod_l: Vec<String> = c.pods.iter().map(|_| pod_labels(&mut rng)).collect();
    let yaml = policies(seed, &mut rng);
    c.stage_labels(&ns_l, &pod_l)?;
    c.stage("10-generated", &yaml)?;
    c.settle();
    check_established(long, &format!("by seed {seed}'s policies"))?;
    long.clear();
    // Read as the agent does, with its memory: a refused object keeps its previous version.
    let (model, errors) =
        xvs_agent::anp::load_dir_admitted(c.manifest_dir(), &mut memory.0, &mut memory.1)?;
    let refused: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    if !refused.is_empty() {
        bail!("seed {seed}: the generator wrote refused objects (the agent keeps the previous file): {refused:#?}\n{yaml}");
    }
    let mut rows = Vec::new();
    let names: Vec<String> = c
        .pods
        .iter()
        .map(|p| format!("{}/{}", p.def.namespace, p.def.name))
        .collect();
    for (i, s) in names.iter().enumerate() {
        for (j, d) in names.iter().enumerate() {
            if i == j {
                continue;
            }
            for (proto, port) in SERVICES {
                let want = expected(&model, &c.pods[i].ip, &c.pods[j].ip, proto, port);
                rows.push((s.clone(), d.clone(), proto, port, want));
            }
        }
        let want = expected(&model, &c.pods[i].ip, EXTERNAL[0], Proto::Tcp, 80);
        rows.push((s.clone(), "X1".to_string(), Proto::Tcp, 80, want));
    }
    let table: Vec<_> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3, r.4))
        .collect();
    let counts = |v: Verdict| table.iter().filter(|r| r.4 == v).count();
    eprintln!(
        "seed {seed}: {} connections expected: {} allowed, {} dropped, {} rejected; {} refused objects",
        table.len(),
        counts(Verdict::Allow),
        counts(Verdict::Drop),
        counts(Verdict::Reject),
        refused.len()
    );
    if let Err(e) = c.check(&format!("seed {seed}"), &table) {
        bail!(
            "seed {seed} (replay with XVS_ANP_SEED={seed}): {e:#}\nlabels: namespaces {:?}, pods {:?}\nrefused: {refused:#?}\nmanifest:\n{yaml}",
            NAMESPACES.iter().zip(&ns_l).map(|(n, l)| format!("{n}: {}", yaml_labels(l))).collect::<Vec<_>>(),
            names.iter().zip(&pod_l).collect::<Vec<_>>(),
        );
    }
    *long = open_long(c, &model)?;
    eprintln!("seed {seed}: {} long connections kept open", long.len());
    Ok(())
}

#[test]
fn generated_policies_match_the_reference_evaluator() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let seeds: Vec<u64> = match std::env::var("XVS_ANP_SEED") {
        Ok(s) => s
            .split(',')
            .map(|v| v.trim().parse())
            .collect::<Result<_, _>>()?,
        Err(_) => SEEDS.to_vec(),
    };
    let mut pods = Vec::new();
    for ns in NAMESPACES {
        for p in ["p", "q"] {
            pods.push(PodDef::new(ns, p, "app=a"));
        }
    }
    let namespaces: Vec<(&str, &str)> = NAMESPACES.iter().map(|n| (*n, "")).collect();
    let c = Cluster::start("gen", &namespaces, &pods, "")?;
    let stop = Arc::new(AtomicBool::new(false));
    for p in &c.pods {
        echo_server(&p.netns, &p.ip, LONG_PORT, "long", stop.clone())?;
    }
    let mut failures = Vec::new();
    let mut long = Vec::new();
    let mut memory = Memory::default();
    for seed in seeds {
        eprintln!("== seed {seed}");
        if let Err(e) = run_seed(&c, seed, &mut long, &mut memory) {
            eprintln!("{e:#}");
            failures.push(format!("{e:#}"));
        }
    }
    // The last seed's connections survive the policies' removal too.
    c.stage("10-generated", "")?;
    c.settle();
    if let Err(e) = check_established(&mut long, "by removing the policies") {
        failures.push(format!("{e:#}"));
    }
    stop.store(true, Ordering::Relaxed);
    if !failures.is_empty() {
        bail!(
            "{} seed(s) failed:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}
