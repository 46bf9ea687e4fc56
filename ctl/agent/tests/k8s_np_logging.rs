//! K8s NetworkPolicy logging by the Namespace annotation `networkpolicy.antrea.io/enable-logging`
//! (sans-IO): the agent's flows, translated by xvs-flowtable, send the allowed and the
//! default-dropped packets to the agent through Antrea's `meter:256,controller(...)`, and the
//! packet-ins become the document's np.log messages.

mod anp_common;

use anp_common::*;
use xvs_agent::anp::audit::record;
use xvs_agent::anp::flows::{packet_in_meter, DEFAULT_PACKET_IN_RATE, PACKET_IN_METER};
use xvs_agent::model::Model;
use xvs_agent::pipeline::{desired, Desired, Ids};
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::field::FieldId;
use xvs_flowtable::pipeline::{load_flows, MeterCommand, MeterMod, Pipeline, PipelineMod};
use xvs_flowtable::translate::{translate, TranslateScratch, Translation};
use xvs_flowtable::NameMap;
use xvs_openflow::PacketIn;
use xvs_packet::key::layout;
use xvs_packet::FlowKey;

const ALLOW_TCP_80: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-tcp-80, namespace: default}
spec:
  podSelector: {matchLabels: {app: nettool}}
  policyTypes: [Ingress]
  ingress:
  - ports: [{protocol: TCP, port: 80}]
"#;

/// The default Namespace with `annotation` (or none), Pods nettool and other, allow-tcp-80.
fn cluster(annotation: Option<&str>) -> Model {
    let ns = match annotation {
        Some(v) => format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  annotations: {{networkpolicy.antrea.io/enable-logging: \"{v}\"}}\n"
        ),
        None => "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n".to_string(),
    };
    Fx::new()
        .with(&ns)
        .pod("default", "nettool", "app=nettool")
        .pod("default", "other", "app=other")
        .with(ALLOW_TCP_80)
        .model()
}

fn load(d: &Desired) -> Pipeline {
    let names = NameMap::new();
    let mut p = Pipeline::new();
    let meter = xvs_flowtable::meter::parse_meter(&packet_in_meter(DEFAULT_PACKET_IN_RATE))
        .expect("meter parses");
    p.commit(
        &[PipelineMod::Meter(MeterMod {
            command: MeterCommand::Add,
            meter,
        })],
        0,
    )
    .expect("meter");
    let groups: Vec<PipelineMod> = d
        .groups
        .iter()
        .map(|(id, g)| {
            PipelineMod::Group(
                xvs_flowtable::group::parse_group_mod(
                    &format!("group_id={id},{g}"),
                    xvs_flowtable::group::GroupCommand::Add,
                    &names,
                )
                .expect("group"),
            )
        })
        .collect();
    if !groups.is_empty() {
        p.commit(&groups, 0).expect("groups");
    }
    let text: String = d
        .flows
        .iter()
        .map(|(k, b)| Desired::flow_line(k, b, 1) + "\n")
        .collect();
    load_flows(&mut p, &text, &names, 0).expect("flows load");
    p
}

/// What one packet from `src` to `dst` became: the ports it went out of, and the np.log
/// messages of its packet-ins (each checked to follow the packet-in meter in the datapath
/// actions, so that the meter polices it).
fn send(
    p: &Pipeline,
    m: &Model,
    ids: &Ids,
    src: &str,
    dst: &str,
    tcp_dport: Option<u16>,
) -> (Vec<u32>, Vec<String>) {
    let (s, d) = (
        &m.pods[&("default".into(), src.into())],
        &m.pods[&("default".into(), dst.into())],
    );
    let mac =
        |q: &xvs_agent::model::Pod| q.mac.0.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    let mut k = FlowKey::ZERO;
    k.set(layout::IN_PORT, u64::from(s.ofport));
    k.set(layout::ETH_TYPE, 0x0800);
    k.set(layout::ETH_SRC, mac(s));
    k.set(layout::ETH_DST, mac(d));
    k.set(layout::NW_SRC, u64::from(u32::from(s.ip)));
    k.set(layout::NW_DST, u64::from(u32::from(d.ip)));
    k.set(layout::NW_TTL, 64);
    let mut frame = [0u8; 128];
    let macs = xvs_packet::build::Macs {
        src: s.mac.0,
        dst: d.mac.0,
    };
    let n = match tcp_dport {
        Some(port) => {
            k.set(layout::NW_PROTO, 6);
            k.set(layout::TP_SRC, 40000);
            k.set(layout::TP_DST, u64::from(port));
            xvs_packet::build::tcp4(
                &mut frame,
                macs,
                s.ip.octets(),
                d.ip.octets(),
                xvs_packet::build::TcpParams {
                    sport: 40000,
                    dport: port,
                    seq: 1,
                    ack: 0,
                    flags: 2,
                    window: 100,
                },
                &[0; 20],
            )
        }
        None => {
            k.set(layout::NW_PROTO, 1);
            k.set(layout::TP_SRC, 8);
            xvs_packet::build::icmp4_echo(
                &mut frame,
                macs,
                s.ip.octets(),
                d.ip.octets(),
                true,
                1,
                1,
                &[0; 56],
            )
        }
    }
    .expect("frame");
    let mut scratch = TranslateScratch::new();
    let mut out = Translation::new();
    let (mut outputs, mut lines) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        translate(p.snapshot(), &k, 0, &mut scratch, &mut out);
        assert_eq!(out.reason, None);
        for r in &out.controller {
            assert!(
                out.actions[..r.after_actions].contains(&DpAction::Meter(PACKET_IN_METER)),
                "packet-in not behind the meter: {:?}",
                out.actions
            );
            let mut metadata = xvs_flowtable::Match::catch_all();
            for (f, i) in [
                FieldId::REG0,
                FieldId::REG2,
                FieldId::REG3,
                FieldId::REG5,
                FieldId::REG6,
            ]
            .into_iter()
            .zip([0, 2, 3, 5, 6])
            {
                metadata.set_exact(f, u128::from(r.key.reg(i)));
            }
            let pi = PacketIn {
                buffer_id: xvs_openflow::NO_BUFFER,
                total_len: n as u32,
                reason: 0,
                table_id: r.table,
                cookie: r.cookie,
                metadata,
                data: frame[..n].to_vec(),
                userdata: r.controller.userdata.clone(),
                continuation: Vec::new(),
            };
            let rec = record(&pi, &ids.anp.logged, m).expect("a logged packet-in");
            lines.push(rec.message());
        }
        let mut next = None;
        for a in &out.actions {
            match a {
                DpAction::Output(p) => outputs.push(*p),
                DpAction::Recirc(id) => next = Some(*id),
                _ => {}
            }
        }
        match next {
            Some(id) => {
                k.set(layout::RECIRC_ID, u64::from(id));
                k.set(layout::CT_STATE, 0x21); // +new+trk
            }
            None => break,
        }
    }
    (outputs, lines)
}

#[test]
fn the_annotation_logs_allowed_and_default_dropped_k8s_np_traffic_as_the_document() {
    let m = cluster(Some("true"));
    let mut ids = Ids::default();
    let d = desired(&m, &mut ids);
    let p = load(&d);
    let (nettool, other) = (addr(&m, "default/nettool"), addr(&m, "default/other"));
    let port = m.pods[&("default".into(), "nettool".into())].ofport;

    let (out, lines) = send(&p, &m, &ids, "other", "nettool", Some(80));
    assert_eq!(out, vec![port], "allowed");
    assert_eq!(
        lines,
        vec![format!("IngressRule K8sNetworkPolicy:default/allow-tcp-80 <nil> Ingress Allow 190 default/nettool {other} 40000 {nettool} 80 TCP 60 <nil>")]
    );
    let (out, lines) = send(&p, &m, &ids, "other", "nettool", None);
    assert!(out.is_empty(), "default drop, went to {out:?}");
    assert_eq!(
        lines,
        vec![format!("IngressDefaultRule K8sNetworkPolicy <nil> Ingress Drop <nil> default/nettool {other} <nil> {nettool} <nil> ICMP 84 <nil>")]
    );
    // Traffic the policy does not select is not logged (other is not isolated).
    let (out, lines) = send(&p, &m, &ids, "nettool", "other", None);
    assert_eq!(out.len(), 1);
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn without_a_true_annotation_nothing_is_logged() {
    for annotation in [None, Some("false"), Some("yes")] {
        let m = cluster(annotation);
        let mut ids = Ids::default();
        let d = desired(&m, &mut ids);
        assert!(ids.anp.logged.is_empty(), "{annotation:?}");
        let p = load(&d);
        let (out, lines) = send(&p, &m, &ids, "other", "nettool", Some(80));
        assert_eq!(out.len(), 1, "{annotation:?}: allowed");
        assert!(lines.is_empty(), "{annotation:?}: {lines:?}");
        let (out, lines) = send(&p, &m, &ids, "other", "nettool", None);
        assert!(
            out.is_empty() && lines.is_empty(),
            "{annotation:?}: dropped silently"
        );
    }
    // Go's ParseBool spellings turn it on.
    for on in ["1", "t", "TRUE", "True"] {
        let mut ids = Ids::default();
        desired(&cluster(Some(on)), &mut ids);
        assert_eq!(ids.anp.logged.len(), 2, "{on}");
    }
}
