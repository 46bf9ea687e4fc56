//! NodePort Services with proxyAll: the model learns `type: NodePort` and node ports, the
//! pipeline marks Node addresses in NodePortMark, selects Endpoints in ServiceLB for the node
//! port (same group and `reg7` as the ClusterIP), and sends NodePort connections through the
//! Antrea-native ingress rules (IngressSecurityClassifier p201).

use xvs_agent::diff::{diff, messages};
use xvs_agent::model::{parse_file, Model, ServiceType};
use xvs_agent::pipeline::{desired, t, Desired, Ids};

fn base(proxy_all: bool) -> String {
    format!(
        r#"
kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: noEncap
  proxyAll: {proxy_all}
  gateway: {{name: antrea-gw0, ip: 10.10.0.1, mac: "aa:bb:cc:dd:ee:01", ofport: 100}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-1}}
spec: {{podCIDR: 10.10.0.0/24}}
status:
  addresses:
  - {{type: InternalIP, address: 192.168.0.1}}
  - {{type: ExternalIP, address: 192.168.1.1}}
  - {{type: InternalIP, address: "fd00::1"}}
  - {{type: Hostname, address: node-1}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-2}}
spec: {{podCIDR: 10.10.1.0/24}}
status: {{addresses: [{{type: InternalIP, address: 192.168.0.2}}]}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations: {{xvs.io/mac: "02:0a:0a:00:00:03", xvs.io/interface: p0, xvs.io/ofport: "1"}}
spec: {{nodeName: node-1}}
status: {{podIP: 10.10.0.3}}
---
apiVersion: v1
kind: Service
metadata: {{name: svc-1, namespace: ns-1}}
spec:
  type: NodePort
  clusterIP: 10.96.0.60
  ports:
  - {{name: http, protocol: TCP, port: 80, nodePort: 30080}}
  - {{name: dns, protocol: UDP, port: 53, nodePort: 30053}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-1-a, namespace: ns-1, labels: {{kubernetes.io/service-name: svc-1}}}}
addressType: IPv4
ports: [{{name: http, protocol: TCP, port: 8080}}, {{name: dns, protocol: UDP, port: 53}}]
endpoints:
- addresses: [10.10.0.3]
"#
    )
}

fn model(text: &str) -> Model {
    let mut m = Model::default();
    for o in parse_file("test.yaml", text).expect("valid manifests") {
        m.insert(o);
    }
    m
}

fn flow(d: &Desired, table: u8, prio: u16, m: &str) -> Option<String> {
    d.flows
        .iter()
        .find(|(k, _)| k.table == table && k.priority == prio && k.matches == m)
        .map(|(_, b)| b.actions.clone())
}

#[test]
fn the_model_learns_node_ports_and_node_addresses() {
    let m = model(&base(true));
    let cfg = m.config.as_ref().expect("config");
    assert!(cfg.proxy_all);
    let svc = &m.services[&("ns-1".to_string(), "svc-1".to_string())];
    assert_eq!(svc.service_type, ServiceType::NodePort);
    let np: Vec<Option<u16>> = svc.ports.iter().map(|p| p.node_port).collect();
    assert_eq!(np, [Some(30080), Some(30053)]);
    let n = &m.nodes["node-1"];
    assert_eq!(n.ip.to_string(), "192.168.0.1");
    let addrs: Vec<String> = n.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        addrs,
        ["192.168.0.1", "192.168.1.1"],
        "IPv4 Internal/ExternalIPs only"
    );
}

#[test]
fn a_cluster_ip_service_keeps_no_node_port_and_a_node_port_service_needs_one() {
    let text = base(true).replace("type: NodePort", "type: ClusterIP");
    let m = model(&text);
    let svc = &m.services[&("ns-1".to_string(), "svc-1".to_string())];
    assert_eq!(svc.service_type, ServiceType::ClusterIP);
    assert!(svc.ports.iter().all(|p| p.node_port.is_none()));
    let text = base(true).replace(", nodePort: 30080", "");
    let e = parse_file("svc.yaml", &text).expect_err("a NodePort port without nodePort");
    assert!(e.to_string().contains("nodePort"), "{e}");
    let text = base(true).replace("type: NodePort", "type: ExternalName");
    let e = parse_file("svc.yaml", &text).expect_err("unsupported type");
    assert!(e.to_string().contains("spec.type"), "{e}");
}

#[test]
fn proxy_all_marks_node_addresses_and_selects_endpoints_by_node_port() {
    let m = model(&base(true));
    let mut ids = Ids::default();
    let d = desired(&m, &mut ids);
    assert_eq!(
        flow(&d, t::PRE_ROUTING, 200, "ip").as_deref(),
        Some("resubmit(,29),resubmit(,9),resubmit(,10)")
    );
    for a in ["192.168.0.1", "192.168.1.1", "169.254.0.252"] {
        assert_eq!(
            flow(&d, t::NODEPORT_MARK, 200, &format!("ip,nw_dst={a}")).as_deref(),
            Some("set_field:0x80000/0x80000->reg4"),
            "{a}"
        );
    }
    // The peer Node's address is not ours to serve.
    assert!(flow(&d, t::NODEPORT_MARK, 200, "ip,nw_dst=192.168.0.2").is_none());
    assert_eq!(flow(&d, t::NODEPORT_MARK, 0, "").as_deref(), Some("drop"));
    let cluster = flow(
        &d,
        t::SERVICE_LB,
        200,
        "tcp,reg4=0x10000/0x70000,nw_dst=10.96.0.60,tp_dst=80",
    )
    .expect("ClusterIP flow");
    let gid = cluster.rsplit("group:").next().expect("group").to_string();
    assert_eq!(
        flow(&d, t::SERVICE_LB, 200, "tcp,reg4=0x90000/0xf0000,tp_dst=30080").as_deref(),
        Some(
            format!(
                "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x200000/0x200000->reg4,set_field:{:#x}->reg7,group:{gid}",
                gid.parse::<u32>().expect("numeric group")
            )
            .as_str()
        ),
        "same group and reg7 as the ClusterIP"
    );
    assert!(flow(
        &d,
        t::SERVICE_LB,
        200,
        "udp,reg4=0x90000/0xf0000,tp_dst=30053"
    )
    .is_some());
    assert_eq!(
        flow(&d, t::INGRESS_CLASS, 201, "reg4=0x80000/0x80000").as_deref(),
        Some("goto_table:23")
    );
    // Everything encodes as OpenFlow.
    let c = diff(&Desired::default(), &d);
    messages(&c, 1).expect("all flows parse");
}

#[test]
fn without_proxy_all_node_ports_are_left_to_the_host() {
    let m = model(&base(false));
    let d = desired(&m, &mut Ids::default());
    assert_eq!(
        flow(&d, t::PRE_ROUTING, 200, "ip").as_deref(),
        Some("resubmit(,9),resubmit(,10)")
    );
    assert!(d
        .flows
        .keys()
        .all(|k| k.table != t::NODEPORT_MARK || k.priority == 0));
    assert!(flow(
        &d,
        t::SERVICE_LB,
        200,
        "tcp,reg4=0x90000/0xf0000,tp_dst=30080"
    )
    .is_none());
    assert!(flow(&d, t::INGRESS_CLASS, 201, "reg4=0x80000/0x80000").is_none());
    // The ClusterIP still works.
    assert!(flow(
        &d,
        t::SERVICE_LB,
        200,
        "tcp,reg4=0x10000/0x70000,nw_dst=10.96.0.60,tp_dst=80"
    )
    .is_some());
}

#[test]
fn the_nodes_own_connections_to_its_pods_bypass_ingress_rules() {
    for proxy_all in [true, false] {
        let m = model(&base(proxy_all));
        let d = desired(&m, &mut Ids::default());
        // From the gateway with the gateway IP or a local Node address: to ConntrackCommit.
        for a in ["10.10.0.1", "192.168.0.1", "192.168.1.1"] {
            assert_eq!(
                flow(
                    &d,
                    t::INGRESS_CLASS,
                    210,
                    &format!("ct_state=-rpl+trk,ip,reg0=0x2/0xf,nw_src={a}")
                )
                .as_deref(),
                Some("goto_table:27"),
                "{a}"
            );
        }
        // Not the peer Node's address.
        assert!(flow(
            &d,
            t::INGRESS_CLASS,
            210,
            "ct_state=-rpl+trk,ip,reg0=0x2/0xf,nw_src=192.168.0.2"
        )
        .is_none());
    }
}

#[test]
fn the_api_watch_path_learns_node_ports_too() {
    use xvs_agent::apiserver::{parse_api_object, ApiKind, ObjectKey, Parsed};
    use xvs_agent::model::Object;
    // A NodePort Service as the API server serves it (allocated nodePort, targetPort, ...).
    let json = serde_json::json!({
        "apiVersion": "v1",
        "metadata": {"name": "svc-1", "namespace": "ns-1", "resourceVersion": "7"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.60",
            "clusterIPs": ["10.96.0.60"],
            "externalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 31234}]
        },
        "status": {"loadBalancer": {}}
    });
    let key = ObjectKey {
        kind: ApiKind::Service,
        namespace: "ns-1".into(),
        name: "svc-1".into(),
    };
    let Parsed::Object(o) = parse_api_object(ApiKind::Service, &key, &json).expect("parses") else {
        panic!("ignored");
    };
    let Object::Service(s) = *o else {
        panic!("not a Service: {o:?}");
    };
    assert_eq!(s.service_type, ServiceType::NodePort);
    assert_eq!(s.ports[0].node_port, Some(31234));
}
