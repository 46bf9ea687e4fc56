//! An Antrea-style pipeline in `ovs-ofctl` syntax, after docs/design/ovs-pipeline.md (table ids
//! of the default Linux configuration), without the conntrack tables (`ct` is not translated
//! yet): the packet goes from SpoofGuard straight to the egress policy tables and from
//! IngressMetric straight to Output.
//!
//! Node: Pod A (port 3, 10.10.0.3), Pod B (port 4, 10.10.0.4), gateway antrea-gw0 (port
//! 32769, 10.10.0.1), tunnel antrea-tun0 (port 32768); one peer Node with Pod CIDR
//! 10.10.1.0/24 and gateway 10.10.1.1.
//! Policies: Pod A's egress allows TCP/80 to Pod B and to the peer CIDR (conjunction 1, three
//! clauses), everything else from Pod A is dropped; Pod B's ingress allows TCP/80 from Pod A
//! (conjunction 2), everything else to Pod B is dropped. `extra_rules` adds that many more
//! egress conjunctions (3 clauses each, clause flows shared where values repeat), each with
//! its source isolated (a default-drop flow in EgressDefaultRule), for scale.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const POD_A_PORT: u32 = 3;
pub const POD_B_PORT: u32 = 4;
pub const TUN_PORT: u32 = 32768;
pub const GW_PORT: u32 = 32769;
pub const POD_A_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 3];
pub const POD_B_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 4];
pub const GW_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
pub const GVMAC: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
pub const POD_A_IP: [u8; 4] = [10, 10, 0, 3];
pub const POD_B_IP: [u8; 4] = [10, 10, 0, 4];
pub const GW_IP: [u8; 4] = [10, 10, 0, 1];
pub const PEER_GW_IP: [u8; 4] = [10, 10, 1, 1];

/// The flows, one per line.
pub fn antrea_flows(extra_rules: usize) -> String {
    let mut s = String::from(
        "\
# PipelineRootClassifier
table=0,priority=200,arp,actions=goto_table:1
table=0,priority=200,ip,actions=goto_table:3
table=0,priority=0,actions=drop
# ARPSpoofGuard
table=1,priority=200,arp,in_port=3,arp_spa=10.10.0.3,arp_sha=0a:00:00:00:00:03,actions=goto_table:2
table=1,priority=200,arp,in_port=4,arp_spa=10.10.0.4,arp_sha=0a:00:00:00:00:04,actions=goto_table:2
table=1,priority=200,arp,in_port=32769,arp_spa=10.10.0.1,arp_sha=0a:00:00:00:00:01,actions=goto_table:2
table=1,priority=0,actions=drop
# ARPResponder (peer gateway)
table=2,priority=200,arp,arp_tpa=10.10.1.1,arp_op=1,actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:aa:bb:cc:dd:ee:ff->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:aa:bb:cc:dd:ee:ff->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.10.1.1->arp_spa,IN_PORT
table=2,priority=0,actions=drop
# Classifier
table=3,priority=210,ip,in_port=32769,nw_src=10.10.0.1,actions=set_field:0x2/0xf->reg0,set_field:0x10000000/0x10000000->reg4,goto_table:4
table=3,priority=200,in_port=32769,actions=set_field:0x2/0xf->reg0,set_field:0x8000000/0x8000000->reg4,goto_table:4
table=3,priority=200,in_port=32768,actions=set_field:0x1/0xf->reg0,set_field:0x200/0x200->reg0,goto_table:12
table=3,priority=190,in_port=3,actions=set_field:0x3/0xf->reg0,set_field:0x10000000/0x10000000->reg4,goto_table:4
table=3,priority=190,in_port=4,actions=set_field:0x3/0xf->reg0,set_field:0x10000000/0x10000000->reg4,goto_table:4
table=3,priority=0,actions=drop
# SpoofGuard
table=4,priority=200,ip,in_port=32769,actions=goto_table:12
table=4,priority=200,ip,in_port=3,dl_src=0a:00:00:00:00:03,nw_src=10.10.0.3,actions=goto_table:12
table=4,priority=200,ip,in_port=4,dl_src=0a:00:00:00:00:04,nw_src=10.10.0.4,actions=goto_table:12
table=4,priority=0,actions=drop
# AntreaPolicyEgressRule (empty) -> EgressRule
table=12,priority=0,actions=goto_table:13
# EgressRule: Pod A may reach TCP/80 on Pod B and the peer Pod CIDR
table=13,priority=200,ip,nw_src=10.10.0.3,actions=conjunction(1,1/3)
table=13,priority=200,ip,nw_dst=10.10.0.4,actions=conjunction(1,2/3)
table=13,priority=200,ip,nw_dst=10.10.1.0/24,actions=conjunction(1,2/3)
table=13,priority=200,tcp,tp_dst=80,actions=conjunction(1,3/3)
table=13,priority=190,conj_id=1,ip,actions=set_field:0x1->reg5,goto_table:15
table=13,priority=0,actions=goto_table:14
# EgressDefaultRule: Pod A is isolated for egress
table=14,priority=200,ip,nw_src=10.10.0.3,actions=drop
table=14,priority=0,actions=goto_table:15
# EgressMetric
table=15,priority=0,actions=goto_table:16
# L3Forwarding
table=16,priority=210,ip,nw_dst=10.10.0.1,actions=set_field:0a:00:00:00:00:01->eth_dst,set_field:0x20/0xf0->reg0,goto_table:18
table=16,priority=200,ip,reg0=0/0x200,nw_dst=10.10.0.0/24,actions=goto_table:21
table=16,priority=200,ip,nw_dst=10.10.1.0/24,actions=set_field:0a:00:00:00:00:01->eth_src,set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:192.168.77.101->tun_dst,set_field:0x10/0xf0->reg0,goto_table:18
table=16,priority=200,ip,reg0=0x200/0x200,nw_dst=10.10.0.3,actions=set_field:0a:00:00:00:00:01->eth_src,set_field:0a:00:00:00:00:03->eth_dst,set_field:0x30/0xf0->reg0,goto_table:18
table=16,priority=200,ip,reg0=0x200/0x200,nw_dst=10.10.0.4,actions=set_field:0a:00:00:00:00:01->eth_src,set_field:0a:00:00:00:00:04->eth_dst,set_field:0x30/0xf0->reg0,goto_table:18
table=16,priority=0,actions=set_field:0x20/0xf0->reg0,goto_table:21
# L3DecTTL
table=18,priority=210,ip,reg0=0x2/0xf,actions=goto_table:21
table=18,priority=200,ip,actions=dec_ttl,goto_table:21
table=18,priority=0,actions=goto_table:21
# L2ForwardingCalc
table=21,priority=200,dl_dst=0a:00:00:00:00:03,actions=set_field:0x3->reg1,set_field:0x200000/0x600000->reg0,goto_table:22
table=21,priority=200,dl_dst=0a:00:00:00:00:04,actions=set_field:0x4->reg1,set_field:0x200000/0x600000->reg0,goto_table:22
table=21,priority=200,dl_dst=0a:00:00:00:00:01,actions=set_field:0x8001->reg1,set_field:0x200000/0x600000->reg0,goto_table:22
table=21,priority=200,dl_dst=aa:bb:cc:dd:ee:ff,actions=set_field:0x8000->reg1,set_field:0x200000/0x600000->reg0,goto_table:22
table=21,priority=0,actions=goto_table:22
# IngressSecurityClassifier: to gateway / tunnel skip ingress rules
table=22,priority=200,reg0=0x20/0xf0,actions=goto_table:26
table=22,priority=200,reg0=0x10/0xf0,actions=goto_table:26
table=22,priority=0,actions=goto_table:23
# AntreaPolicyIngressRule (empty) -> IngressRule
table=23,priority=0,actions=goto_table:24
# IngressRule: Pod B accepts TCP/80 from Pod A
table=24,priority=200,ip,nw_src=10.10.0.3,actions=conjunction(2,1/3)
table=24,priority=200,reg1=0x4,actions=conjunction(2,2/3)
table=24,priority=200,tcp,tp_dst=80,actions=conjunction(2,3/3)
table=24,priority=190,conj_id=2,ip,actions=set_field:0x2->reg6,goto_table:26
table=24,priority=0,actions=goto_table:25
# IngressDefaultRule: Pod B is isolated for ingress
table=25,priority=200,ip,reg1=0x4,actions=drop
table=25,priority=0,actions=goto_table:26
# IngressMetric
table=26,priority=0,actions=goto_table:28
# Output
table=28,priority=200,reg0=0x200000/0x600000,actions=output:NXM_NX_REG1[]
table=28,priority=0,actions=drop
",
    );
    if extra_rules > 0 {
        // Clause flows keyed by their match: shared values accumulate conjunction actions.
        let mut clauses: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut sources = std::collections::HashSet::new();
        for i in 0..extra_rules {
            let id = 1000 + i;
            let src = format!("ip,nw_src=10.20.{}.{}", (i / 250) % 250, i % 250 + 1);
            // The rule's appliedTo address is isolated for egress (K8s default drop).
            if sources.insert(src.clone()) {
                let _ = writeln!(s, "table=14,priority=200,{src},actions=drop");
            }
            let dst = format!("ip,nw_dst=10.30.{}.0/24", i % 100);
            let port = format!("tcp,tp_dst={}", 1000 + (i % 500));
            for (k, m) in [src, dst, port].into_iter().enumerate() {
                clauses
                    .entry(m)
                    .or_default()
                    .push(format!("conjunction({id},{}/3)", k + 1));
            }
            let _ = writeln!(
                s,
                "table=13,priority=190,conj_id={id},ip,actions=set_field:{id:#x}->reg5,goto_table:15"
            );
        }
        for (m, conj) in clauses {
            let _ = writeln!(s, "table=13,priority=200,{m},actions={}", conj.join(","));
        }
    }
    s
}
