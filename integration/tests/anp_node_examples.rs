//! NodePort Services (proxyAll) and the Node-related examples of Antrea's
//! antrea-network-policy.md with real traffic: external hosts reaching a Pod through the
//! Node's address and a node port, #26 (an ACNP applied to a NodePort Service drops one
//! external client by its original address) and #24 (egress to the control-plane Node's
//! API server port by nodeSelector). Same fixture as `anp_doc_examples`.

use anyhow::{bail, Context, Result};
use xvs_integration::anp_fixture::{
    edit_manifest, Cases, Cluster, PodDef, Proto, Row, Verdict, EXTERNAL, GW_IP, NODE_EXTERNAL_IP,
    NODE_IP,
};
use xvs_integration::is_root;

const T: Proto = Proto::Tcp;
const U: Proto = Proto::Udp;
const A: Verdict = Verdict::Allow;
const D: Verdict = Verdict::Drop;

/// svc-1 in ns-1: NodePort 30080 → ns-1/web:8080, UDP 30053 → web:53; ClusterIP 10.96.0.60.
const SVC: &str = include_str!("../../ctl/agent/tests/data/antrea_doc/svc-1-node-port.yaml");
/// #26 as the doc writes it (the test swaps in an external host's network for 1.1.1.0/24).
const ACNP26: &str = include_str!(
    "../../ctl/agent/tests/data/antrea_doc/acnp-deny-external-client-nodeport-svc-access.yaml"
);
/// #24 as the doc writes it: the fixture's Node carries node-role.kubernetes.io/control-plane.
const EGRESS_CONTROL_PLANE: &str =
    include_str!("../../ctl/agent/tests/data/antrea_doc/egress-control-plane.yaml");

fn cluster() -> Result<Cluster> {
    Cluster::start(
        "dn",
        &[("ns-1", "")],
        &[
            PodDef::new("ns-1", "web", "app=web"),
            PodDef::new("default", "client", "app=client"),
            PodDef::new("default", "app", "app=antrea-test-app"),
        ],
        // The shared manifest names the agent tests' endpoint; here ns-1/web is 10.10.0.2.
        &edit_manifest(SVC, "addresses: [10.10.0.10]", "addresses: [10.10.0.2]"),
    )
}

fn dump(c: &Cluster, table: u8) -> Result<String> {
    c.xvsd
        .ofctl(&[], "dump-flows", &[&format!("table={table}")])
}

fn expect_flow(dump: &str, want: &str) -> Result<()> {
    if !dump.lines().any(|l| l.contains(want)) {
        bail!("no flow with {want:?} in:\n{dump}");
    }
    Ok(())
}

#[test]
fn node_port_services_and_node_examples() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let c = cluster()?;
    let (x1, x2) = (Some(EXTERNAL[0]), Some(EXTERNAL[1]));
    let mut cases = Cases::new(&c);

    cases.run("NodePort: outside and inside clients",
        &[],
        |c| {
            c.check_from_node(
                "external clients → Node ExternalIP:nodePort",
                &[
                    (x1, NODE_EXTERNAL_IP, T, 30080, A),
                    (x2, NODE_EXTERNAL_IP, T, 30080, A),
                    (x1, NODE_EXTERNAL_IP, U, 30053, A),
                    // The host itself (source: the gateway IP).
                    (None, NODE_EXTERNAL_IP, T, 30080, A),
                    // No such node port: nothing answers on the ExternalIP.
                    (x1, NODE_EXTERNAL_IP, T, 30081, D),
                ],
            )?;
            c.check(
                "Pods → node ports, virtual NodePort IP and ClusterIP",
                &[
                    ("default/client", NODE_IP, T, 30080, A),
                    ("default/client", NODE_EXTERNAL_IP, T, 30080, A),
                    ("default/client", "169.254.0.252", T, 30080, A),
                    ("default/client", "10.96.0.60", T, 80, A),
                    ("default/client", NODE_IP, U, 30053, A),
                    // Not a node port: the Node itself answers (the host's own listener).
                    ("default/client", NODE_IP, T, 22, A),
                ],
            )?;
            // Flow shapes as Antrea's with proxyAll (NodePortMark is table 29 in xvs).
            expect_flow(
                &dump(c, 8)?,
                "priority=200,ip actions=resubmit(,29),resubmit(,9),resubmit(,10)",
            )?;
            let marks = dump(c, 29)?;
            for a in [NODE_IP, NODE_EXTERNAL_IP, "169.254.0.252"] {
                expect_flow(
                    &marks,
                    &format!("priority=200,ip,nw_dst={a} actions=set_field:0x80000/0x80000->reg4"),
                )?;
            }
            let lb = dump(c, 10)?;
            expect_flow(
            &lb,
            "priority=200,tcp,reg4=0x90000/0xf0000,tp_dst=30080 actions=set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x200000/0x200000->reg4,set_field:",
        )?;
            expect_flow(
                &dump(c, 22)?,
                "priority=201,reg4=0x80000/0x80000 actions=goto_table:23",
            )?;
            // The external connections went through the node port flow.
            let used = lb
                .lines()
                .find(|l| l.contains("tp_dst=30080"))
                .context("node port flow")?;
            if used.contains("n_packets=0,") {
                bail!("the node port flow saw no packet: {used}");
            }
            Ok(())
        },
    );

    // #26, with the fixture's external hosts: X1's /24 instead of the doc's 1.1.1.0/24.
    let x1_net = EXTERNAL[0]
        .rsplit_once('.')
        .map_or("", |(net, _)| net)
        .to_string()
        + ".0";
    let acnp26 = edit_manifest(ACNP26, "cidr: 1.1.1.0/24", &format!("cidr: {x1_net}/24"));
    cases.run(
        "#26 acnp-deny-external-client-nodeport-svc-access",
        &[("26-acnp", &acnp26)],
        |c| {
            c.check_from_node(
                "external clients → svc-1's node port",
                &[
                    (x1, NODE_EXTERNAL_IP, T, 30080, D),
                    (x1, NODE_EXTERNAL_IP, U, 30053, D),
                    (x2, NODE_EXTERNAL_IP, T, 30080, A),
                    (x2, NODE_EXTERNAL_IP, U, 30053, A),
                    (None, NODE_EXTERNAL_IP, T, 30080, A),
                ],
            )?;
            c.check(
                "Pods → svc-1",
                &[
                    ("default/client", "10.96.0.60", T, 80, A),
                    ("default/client", NODE_IP, T, 30080, A),
                ],
            )?;
            let rules = dump(c, 23)?;
            expect_flow(
                &rules,
                "ct_state=+new,ct_nw_src=10.0.10.0/24,ip actions=conjunction(",
            )?;
            expect_flow(&rules, ",ip,reg7=0x")?;
            Ok(())
        },
    );
    cases.run("#26 removed: X1 reaches the node port again", &[], |c| {
        c.check_from_node("X1", &[(x1, NODE_EXTERNAL_IP, T, 30080, A)])
    });

    // #24: the fixture's Node carries node-role.kubernetes.io/control-plane.
    let before24: &[Row] = &[
        ("default/app", NODE_IP, T, 6443, A),
        ("default/app", GW_IP, T, 6443, A),
        ("default/app", NODE_IP, T, 22, A),
    ];
    cases.run("#24 before: the API server port answers", &[], |c| {
        c.check("before #24", before24)
    });
    cases.run(
        "#24 egress-control-plane",
        &[("24-acnp", EGRESS_CONTROL_PLANE)],
        |c| {
            c.check(
                "#24",
                &[
                    ("default/app", NODE_IP, T, 6443, D),
                    ("default/app", GW_IP, T, 6443, D),
                    ("default/app", NODE_IP, T, 22, A),
                    ("default/client", NODE_IP, T, 6443, A),
                    ("default/app", "X1", T, 80, A),
                ],
            )?;
            c.check_from_node(
                "Node → Pod (kubelet probes)",
                &[
                    (None, "default/app", T, 80, A),
                    (None, "default/app", T, 6379, A),
                ],
            )
        },
    );

    // The probe exemption on its own: an ingress Drop of everything on the Pod leaves the
    // Node's own connections (source: the gateway IP) through, not an external host's.
    let drop_all = r#"
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: isolate-app
spec:
  priority: 1
  tier: securityops
  appliedTo:
    - podSelector:
        matchLabels:
          app: antrea-test-app
  ingress:
    - action: Drop
"#;
    cases.run(
        "kubelet probe exemption",
        &[("probe-acnp", drop_all)],
        |c| {
            c.check(
                "Pod → isolated Pod",
                &[("default/client", "default/app", T, 80, D)],
            )?;
            c.check_from_node(
                "Node → isolated Pod",
                &[
                    (None, "default/app", T, 80, A),
                    (x1, "default/app", T, 80, D),
                ],
            )
        },
    );
    cases.finish()
}
