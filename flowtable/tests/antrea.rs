//! The Antrea-style pipeline (tests/common/antrea.rs) with real frames built by xvs-packet and
//! extracted into flow keys.
#![allow(clippy::unwrap_used)]

mod common;

use common::antrea::*;
use common::*;
use xvs_flowtable::datapath::DpAction;
use xvs_flowtable::pipeline::{load_flows, Pipeline, PipelineSnapshot};
use xvs_flowtable::translate::{DropReason, Translation};
use xvs_flowtable::NameMap;
use xvs_packet::build::{self, Macs, TcpParams};
use xvs_packet::{extract, FlowKey};

fn antrea(extra: usize) -> Pipeline {
    let mut p = Pipeline::new();
    load_flows(&mut p, &antrea_flows(extra), &NameMap::new(), 0).unwrap();
    p
}

fn tcp_frame(
    in_port: u32,
    src: ([u8; 6], [u8; 4]),
    dst: ([u8; 6], [u8; 4]),
    dport: u16,
) -> FlowKey {
    let mut buf = [0u8; 128];
    let t = TcpParams {
        sport: 40000,
        dport,
        seq: 1,
        ack: 0,
        flags: 0x02,
        window: 1000,
    };
    let n = build::tcp4(
        &mut buf,
        Macs {
            src: src.0,
            dst: dst.0,
        },
        src.1,
        dst.1,
        t,
        &[],
    )
    .unwrap();
    let mut k = FlowKey::ZERO;
    assert!(extract(&buf[..n], in_port, &mut k).is_ok());
    k
}

fn run(s: &PipelineSnapshot, k: &FlowKey) -> Translation {
    let t = xlate(s, k);
    // Whatever the outcome, the megaflow must be right for this key's neighbours.
    assert!(k.matches(&k.masked(&t.mask), &t.mask));
    t
}

const REMOTE_POD_IP: [u8; 4] = [10, 10, 1, 5];

#[test]
fn allowed_intra_node_traffic_is_switched_without_rewrites() {
    let p = antrea(0);
    let k = tcp_frame(POD_A_PORT, (POD_A_MAC, POD_A_IP), (POD_B_MAC, POD_B_IP), 80);
    let t = run(p.snapshot(), &k);
    assert_eq!(t.actions, vec![DpAction::Output(POD_B_PORT)]);
    assert_eq!(t.reason, None);
}

#[test]
fn egress_policy_denies_other_ports() {
    let p = antrea(0);
    let k = tcp_frame(POD_A_PORT, (POD_A_MAC, POD_A_IP), (POD_B_MAC, POD_B_IP), 22);
    let t = run(p.snapshot(), &k);
    assert!(t.is_drop() && t.actions.is_empty());
    // The conjunction's port clause decided it: tp_dst is in the megaflow.
    assert_eq!(t.mask.get(xvs_packet::key::layout::TP_DST), 0xffff);
}

#[test]
fn ingress_policy_denies_other_sources() {
    let p = antrea(0);
    // From the gateway (not isolated for egress) to Pod B: Pod B only accepts Pod A.
    let k = tcp_frame(GW_PORT, (GW_MAC, GW_IP), (POD_B_MAC, POD_B_IP), 80);
    assert!(run(p.snapshot(), &k).is_drop());
    // From the gateway to Pod A (not isolated for ingress): delivered.
    let k = tcp_frame(GW_PORT, (GW_MAC, GW_IP), (POD_A_MAC, POD_A_IP), 80);
    assert_eq!(
        run(p.snapshot(), &k).actions,
        vec![DpAction::Output(POD_A_PORT)]
    );
}

#[test]
fn to_remote_pod_goes_through_the_tunnel_with_l3_rewrites() {
    let p = antrea(0);
    let k = tcp_frame(
        POD_A_PORT,
        (POD_A_MAC, POD_A_IP),
        (GW_MAC, REMOTE_POD_IP),
        80,
    );
    let t = run(p.snapshot(), &k);
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthSrc(GW_MAC),
            DpAction::SetEthDst(GVMAC),
            DpAction::SetTtl(63),
            DpAction::Output(TUN_PORT)
        ]
    );
}

#[test]
fn from_tunnel_to_local_pod_rewrites_macs() {
    let p = antrea(0);
    let k = tcp_frame(TUN_PORT, (GVMAC, REMOTE_POD_IP), (GW_MAC, POD_A_IP), 80);
    let t = run(p.snapshot(), &k);
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthSrc(GW_MAC),
            DpAction::SetEthDst(POD_A_MAC),
            DpAction::SetTtl(63),
            DpAction::Output(POD_A_PORT)
        ]
    );
}

#[test]
fn spoofed_source_is_dropped() {
    let p = antrea(0);
    let k = tcp_frame(
        POD_A_PORT,
        (POD_A_MAC, [10, 10, 0, 99]),
        (POD_B_MAC, POD_B_IP),
        80,
    );
    let t = run(p.snapshot(), &k);
    assert!(t.is_drop());
    // Spoofed MAC too.
    let k = tcp_frame(POD_A_PORT, (POD_B_MAC, POD_A_IP), (POD_B_MAC, POD_B_IP), 80);
    assert!(run(p.snapshot(), &k).is_drop());
}

#[test]
fn arp_responder_replies_through_in_port() {
    let p = antrea(0);
    let mut buf = [0u8; 64];
    let n = build::arp_request(&mut buf, POD_A_MAC, POD_A_IP, PEER_GW_IP).unwrap();
    let mut k = FlowKey::ZERO;
    assert!(extract(&buf[..n], POD_A_PORT, &mut k).is_ok());
    let t = run(p.snapshot(), &k);
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthSrc(GVMAC),
            DpAction::SetEthDst(POD_A_MAC),
            DpAction::SetArpOp(2),
            DpAction::SetArpSpa(u32::from_be_bytes(PEER_GW_IP)),
            DpAction::SetArpTpa(u32::from_be_bytes(POD_A_IP)),
            DpAction::SetArpSha(GVMAC),
            DpAction::SetArpTha(POD_A_MAC),
            DpAction::Output(POD_A_PORT),
        ]
    );
    // Spoofed ARP (sender IP of Pod B from Pod A's port): dropped by ARPSpoofGuard.
    let n = build::arp_request(&mut buf, POD_A_MAC, POD_B_IP, PEER_GW_IP).unwrap();
    let mut k = FlowKey::ZERO;
    assert!(extract(&buf[..n], POD_A_PORT, &mut k).is_ok());
    assert!(run(p.snapshot(), &k).is_drop());
}

#[test]
fn ttl_expiry_on_the_routed_path() {
    let p = antrea(0);
    let mut k = tcp_frame(TUN_PORT, (GVMAC, REMOTE_POD_IP), (GW_MAC, POD_A_IP), 80);
    k.set(xvs_packet::key::layout::NW_TTL, 1);
    let t = run(p.snapshot(), &k);
    assert_eq!(t.reason, Some(DropReason::TtlExpired));
    assert!(t.is_drop());
}

#[test]
fn many_policy_rules_still_decide_correctly() {
    let p = antrea(2000);
    let s = p.snapshot();
    // Rule 1000+i: 10.20.(i/250).(i%250+1) -> 10.30.(i%100).0/24 tcp (1000 + i%500).
    for i in [0usize, 1, 499, 1234, 1999] {
        let src = [10, 20, ((i / 250) % 250) as u8, (i % 250 + 1) as u8];
        let dst = [10, 30, (i % 100) as u8, 9];
        // These addresses are not local Pods: the gateway sends them (no spoof check there).
        let k = tcp_frame(
            GW_PORT,
            (GW_MAC, src),
            (GW_MAC, dst),
            1000 + (i % 500) as u16,
        );
        let t = run(s, &k);
        assert_eq!(t.reason, None);
        // Allowed by EgressRule (reg5 = rule id), then routed to the gateway (L3Forwarding miss).
        assert!(
            t.rules
                .iter()
                .any(|r| r.payload().table == 13 && r.priority() == 190),
            "rule {i} not hit"
        );
    }
}
