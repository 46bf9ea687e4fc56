//! Fixtures for the Antrea-native policy tests: namespaces and Pods on one node, manifests
//! parsed and admitted as the agent does, and connection helpers.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use xvs_agent::anp::admission::admit;
use xvs_agent::anp::eval::{verdict, Conn, Verdict, L4};
use xvs_agent::anp::AnpObjects;
use xvs_agent::model::{parse_file, Model, Proto};

/// X1, an external host.
pub const X1: &str = "10.0.10.7";
/// X2, another external host.
pub const X2: &str = "10.0.11.7";

pub const NODE: &str = r#"
kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: geneve
  gateway: {name: antrea-gw0, ip: 10.10.0.1, mac: "aa:bb:cc:dd:ee:01", ofport: 2}
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {node-role.kubernetes.io/control-plane: ""}}
spec: {podCIDR: 10.10.0.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
"#;

/// A cluster under construction.
#[derive(Default, Clone)]
pub struct Fx {
    pub text: String,
    pods: u32,
}

fn labels(l: &str) -> String {
    l.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            format!("{k}: \"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Fx {
    pub fn new() -> Fx {
        Fx {
            text: NODE.to_string(),
            pods: 0,
        }
    }
    /// A namespace with labels `k=v,...` (plus kubernetes.io/metadata.name, as the apiserver).
    pub fn ns(mut self, name: &str, l: &str) -> Fx {
        let l = if l.is_empty() {
            format!("kubernetes.io/metadata.name={name}")
        } else {
            format!("kubernetes.io/metadata.name={name},{l}")
        };
        self.text.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{}}}}}\n",
            labels(&l)
        ));
        self
    }
    /// A Pod `ns/name` with labels and a service account.
    pub fn pod_sa(mut self, ns: &str, name: &str, l: &str, sa: &str) -> Fx {
        self.pods += 1;
        let n = self.pods + 9;
        self.text.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{}}}\n  annotations: {{xvs.io/mac: \"02:00:00:00:{:02x}:{:02x}\", xvs.io/interface: p{n}, xvs.io/ofport: \"{n}\"}}\nspec: {{nodeName: node-1, serviceAccountName: {sa}}}\nstatus: {{podIP: 10.10.0.{n}}}\n",
            labels(l),
            n >> 8,
            n & 0xff
        ));
        self
    }
    pub fn pod(self, ns: &str, name: &str, l: &str) -> Fx {
        self.pod_sa(ns, name, l, "default")
    }
    /// Extra manifests.
    pub fn with(mut self, yaml: &str) -> Fx {
        self.text.push_str("\n---\n");
        self.text.push_str(yaml);
        self.text.push('\n');
        self
    }
    /// The model, as the agent admits it (panics on a refused manifest: fixtures are valid).
    pub fn model(&self) -> Model {
        let mut m = Model::default();
        for o in parse_file("fx.yaml", &self.text).unwrap_or_else(|e| panic!("{e}")) {
            m.insert(o);
        }
        let errs = admit(&mut m, &AnpObjects::default());
        assert!(errs.is_empty(), "{errs:?}");
        m
    }
}

/// XYZ: namespaces x, y, z {ns=<name>} with Pods a, b, c {app=...}, and kube-system/dns.
pub fn xyz() -> Fx {
    let mut f = Fx::new().ns("kube-system", "");
    for n in ["x", "y", "z"] {
        f = f.ns(n, &format!("ns={n}"));
        for p in ["a", "b", "c"] {
            f = f.pod(n, p, &format!("app={p}"));
        }
    }
    f.pod("kube-system", "dns", "k8s-app=kube-dns")
}

/// R: the doc's roles fixture.
pub fn roles() -> Fx {
    Fx::new()
        .ns("prod", "env=prod")
        .ns("dbns", "role=db")
        .ns("default", "")
        .ns("kube-system", "")
        .pod("prod", "db1", "role=db")
        .pod("default", "db2", "role=db")
        .pod("prod", "web", "role=web")
        .pod("prod", "client", "role=client")
        .pod("prod", "server", "role=server")
        .pod("default", "fe", "role=frontend")
        .pod("dbns", "fe3", "role=frontend")
        .pod("dbns", "nondb1", "role=nondb")
        .pod("default", "nondb2", "role=nondb")
        .pod("default", "other", "")
        .pod("kube-system", "dns", "k8s-app=kube-dns")
}

/// ORG: the doc's sameLabels fixture.
pub fn org() -> Fx {
    let mut f = Fx::new().ns("kube-system", "");
    for (n, l) in [
        ("accounting1", "org=accounting,region=us-west"),
        ("accounting2", "org=accounting,region=us-east"),
        ("sales1", "org=sales,region=us-west"),
        ("sales2", "org=sales,region=us-east"),
    ] {
        f = f.ns(n, l);
    }
    for n in [
        "kube-system",
        "accounting1",
        "accounting2",
        "sales1",
        "sales2",
    ] {
        f = f.pod(n, "p", "").pod(n, "q", "");
    }
    f
}

/// The address of `ns/pod`, or a literal address.
pub fn addr(m: &Model, who: &str) -> Ipv4Addr {
    if let Ok(a) = who.parse() {
        return a;
    }
    let (ns, name) = who.split_once('/').expect("ns/name");
    m.pods
        .get(&(ns.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no pod {who}"))
        .ip
}

pub fn tcp(port: u16) -> L4 {
    L4::Ports {
        proto: Proto::Tcp,
        sport: 40000,
        dport: port,
    }
}
pub fn udp(port: u16) -> L4 {
    L4::Ports {
        proto: Proto::Udp,
        sport: 40000,
        dport: port,
    }
}
pub const PING: L4 = L4::Icmp {
    icmp_type: 8,
    icmp_code: 0,
};

/// A connection `src → dst` (names or addresses).
pub fn conn(m: &Model, src: &str, dst: &str, l4: L4) -> Conn {
    Conn {
        src: addr(m, src),
        dst: addr(m, dst),
        l4,
        service: None,
    }
}

/// Asserts the reference verdict of each (src, dst, l4, expected).
pub fn expect(m: &Model, cases: &[(&str, &str, L4, Verdict)]) {
    for (src, dst, l4, want) in cases {
        let got = verdict(m, &conn(m, src, dst, *l4));
        assert_eq!(got, *want, "{src} -> {dst} {l4:?}");
    }
}
