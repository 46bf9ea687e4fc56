//! Cost of a recomputation: every manifest change recomputes the desired flows of the whole
//! model and diffs them against what is installed. A node with 1,000 local Pods (10 apps, each
//! with a named container port), 10 Services and 100 NetworkPolicies whose rules use named and
//! numeric ports; measured: the full `desired()`, and `desired()` + `diff()` + messages after
//! one Pod changed its address.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use xvs_agent::diff::{diff, messages};
use xvs_agent::model::{parse_file, Model};
use xvs_agent::pipeline::{desired, Ids};

const PODS: usize = 1000;
const APPS: usize = 10;
const POLICIES: usize = 100;

fn cluster(changed_pod: Option<usize>) -> String {
    let mut s = String::from(
        "kind: AgentConfig\nspec: {nodeName: n1, tunnelType: geneve, gateway: {ip: 10.1.0.1, mac: \"aa:bb:cc:dd:ee:01\"}}\n---\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.1.0.0/16}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n---\nkind: Node\nmetadata: {name: n2}\nspec: {podCIDR: 10.2.0.0/16}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.2}]}\n",
    );
    for i in 0..PODS {
        let app = i % APPS;
        let host = if changed_pod == Some(i) { 60000 } else { i + 2 };
        s.push_str(&format!(
            "---\nkind: Pod\nmetadata: {{name: p{i}, namespace: default, labels: {{app: a{app}}}, annotations: {{xvs.io/mac: \"02:00:00:00:{:02x}:{:02x}\", xvs.io/interface: v{i}, xvs.io/ofport: \"{}\"}}}}\nspec: {{nodeName: n1, containers: [{{name: c, ports: [{{name: http, containerPort: {}}}]}}]}}\nstatus: {{podIP: 10.1.{}.{}}}\n",
            i / 256,
            i % 256,
            i + 1,
            8000 + app,
            host / 256,
            host % 256
        ));
    }
    for a in 0..APPS {
        s.push_str(&format!(
            "---\nkind: Service\nmetadata: {{name: s{a}, namespace: default}}\nspec: {{clusterIP: 10.96.0.{}, ports: [{{name: http, port: 80}}]}}\n---\nkind: EndpointSlice\nmetadata: {{name: s{a}-1, namespace: default, labels: {{kubernetes.io/service-name: s{a}}}}}\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [10.1.0.{}, 10.1.0.{}]}}]\n",
            a + 10,
            8000 + a,
            a + 2,
            a + 12
        ));
    }
    for p in 0..POLICIES {
        s.push_str(&format!(
            "---\nkind: NetworkPolicy\nmetadata: {{name: np{p}, namespace: default}}\nspec:\n  podSelector: {{matchLabels: {{app: a{}}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}]\n    ports: [{{port: http}}, {{port: {}}}]\n",
            p % APPS,
            (p + 1) % APPS,
            9000 + p
        ));
    }
    s
}

fn model(text: &str) -> Model {
    let mut m = Model::default();
    for o in parse_file("bench.yaml", text).expect("valid") {
        m.insert(o);
    }
    m
}

fn bench(c: &mut Criterion) {
    let before = model(&cluster(None));
    let after = model(&cluster(Some(500)));
    let mut ids = Ids::default();
    let installed = desired(&before, &mut ids);
    eprintln!(
        "model: {PODS} pods, {POLICIES} policies -> {} flows, {} groups",
        installed.flows.len(),
        installed.groups.len()
    );
    c.bench_function("agent/desired_1000_pods_100_policies", |b| {
        b.iter(|| black_box(desired(black_box(&before), &mut ids)))
    });
    c.bench_function("agent/one_pod_changed_desired_diff_messages", |b| {
        b.iter(|| {
            let target = desired(black_box(&after), &mut ids);
            let changes = diff(&installed, &target);
            black_box(messages(&changes, 2).expect("encodes"))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
