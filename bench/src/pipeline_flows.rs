//! The OpenFlow scenarios of `pipeline` (the shapes of `ovs-dpdk-pipeline.md`): flow files in
//! `ovs-ofctl add-flows` syntax, loaded with the real `ovs-ofctl` into OVS-DPDK and into xvsd.
//! Port 1 is the pcap port (every packet enters there), port 2 the null sink. The generated
//! files are also committed under `bench/scenarios/pipeline/` (a test keeps them equal).

use crate::pcaps::{Pcap, MAC_A, MAC_B, TCP_CLIENTS, TCP_PORTS};
use std::fmt::{self, Write as _};
use std::str::FromStr;

const CT_ZONE: u32 = 65520;
/// Antrea's gateway MAC and the global virtual MAC of remote Nodes.
const GW_MAC: &str = "02:00:00:00:01:fe";
const GLOBAL_VIRTUAL_MAC: &str = "aa:bb:cc:dd:ee:ff";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipeScenario {
    /// `in_port=1 -> output:2` (and back).
    L2,
    /// 1,000 routes and 5-tuple rules over three tables, with MAC rewrite and `dec_ttl`.
    L3_1k,
    /// `ct(table=1)`, then commit new and forward established connections.
    Ct,
    /// An Antrea-style pipeline (29 tables' worth of stages, about 2,100 rules).
    AntreaLike,
}

impl PipeScenario {
    pub const ALL: [PipeScenario; 4] = [
        PipeScenario::L2,
        PipeScenario::L3_1k,
        PipeScenario::Ct,
        PipeScenario::AntreaLike,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PipeScenario::L2 => "l2",
            PipeScenario::L3_1k => "l3-1k",
            PipeScenario::Ct => "ct",
            PipeScenario::AntreaLike => "antrea-like",
        }
    }

    /// The pcaps the scenario is measured with (the reference's matrix; its `ct` on one-way
    /// UDP is left out: OVS marks every such packet `+new`, which measures OVS's quirk).
    pub fn pcaps(self) -> &'static [Pcap] {
        match self {
            PipeScenario::L2 | PipeScenario::L3_1k => {
                &[Pcap::Udp1Flow, Pcap::Udp1kFlow, Pcap::Udp100kFlow]
            }
            PipeScenario::Ct | PipeScenario::AntreaLike => &[Pcap::Tcp1kConn, Pcap::Tcp1kConnNoFin],
        }
    }

    pub fn flows(self) -> String {
        match self {
            PipeScenario::L2 => l2(),
            PipeScenario::L3_1k => l3_1k(),
            PipeScenario::Ct => ct(),
            PipeScenario::AntreaLike => antrea_like(),
        }
    }
}

impl fmt::Display for PipeScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for PipeScenario {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        PipeScenario::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown scenario {s:?} (l2, l3-1k, ct, antrea-like)"))
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn l2() -> String {
    "# l2: port 1 (pcap) -> port 2 (null)\n\
     table=0,priority=100,in_port=1 actions=output:2\n\
     table=0,priority=100,in_port=2 actions=output:1\n"
        .to_string()
}

/// 400 /32 and 100 /24 routes (MAC rewrite, `dec_ttl`), then 500 `udp,nw_dst,tp_dst` rules
/// (10 destinations x 50 ports). The pcaps' 10.1.0.1:5001 hits the first /32 and rule.
fn l3_1k() -> String {
    let mut s = String::from("# l3-1k: 1,000 rules + 4; routes, then 5-tuple rules\n");
    s.push_str("table=0,priority=100,in_port=1,ip actions=goto_table:1\n");
    s.push_str("table=0,priority=0 actions=drop\n");
    for k in 0..400u32 {
        let _ = writeln!(
            s,
            "table=1,priority=132,ip,nw_dst=10.1.{}.{} actions=mod_dl_src:{GW_MAC},mod_dl_dst:02:00:00:00:02:{:02x},dec_ttl,goto_table:2",
            k / 250,
            k % 250 + 1,
            k % 256
        );
    }
    for k in 0..100u32 {
        let _ = writeln!(
            s,
            "table=1,priority=124,ip,nw_dst=10.2.{k}.0/24 actions=mod_dl_src:{GW_MAC},mod_dl_dst:02:00:00:00:03:{k:02x},dec_ttl,goto_table:2"
        );
    }
    s.push_str("table=1,priority=0 actions=drop\n");
    for d in 1..=10u32 {
        for p in 0..50u32 {
            let _ = writeln!(
                s,
                "table=2,priority=100,udp,nw_dst=10.1.0.{d},tp_dst={} actions=output:2",
                5001 + p
            );
        }
    }
    s.push_str("table=2,priority=0 actions=drop\n");
    s
}

fn ct() -> String {
    let mut s = String::from("# ct: track in one zone, commit new, forward new and established\n");
    let _ = writeln!(
        s,
        "table=0,priority=100,ip actions=ct(table=1,zone={CT_ZONE})"
    );
    s.push_str("table=0,priority=0 actions=drop\n");
    s.push_str("table=1,priority=200,ct_state=+inv+trk,ip actions=drop\n");
    let _ = writeln!(
        s,
        "table=1,priority=110,ct_state=+new+trk,ip actions=ct(commit,zone={CT_ZONE}),output:2"
    );
    s.push_str("table=1,priority=100,ct_state=+est+trk,ip actions=output:2\n");
    s.push_str("table=1,priority=0 actions=drop\n");
    s
}

/// Client Pods 10.10.0.2 .. 10.10.0.101 (MAC A, local), servers behind "the tunnel" (MAC B,
/// 10.10.1.0/24 is a peer Node's Pod CIDR). Port 2 stands in for the tunnel, gateway and Pod
/// ports. Table numbers follow the stages; see `ovs-dpdk-pipeline.md` for the shape.
fn antrea_like() -> String {
    let (mac_a, mac_b) = (mac(MAC_A), mac(MAC_B));
    let pod = |i: u32| format!("10.10.0.{}", 2 + i % u32::from(TCP_CLIENTS));
    let mut s = String::from(
        "# antrea-like: Antrea's Linux pipeline stages; established traffic takes 2 passes, \
         new connections 4\n",
    );
    // 0 PipelineRootClassifier
    s.push_str("table=0,priority=200,arp actions=goto_table:1\n");
    s.push_str("table=0,priority=190,ip actions=goto_table:3\n");
    s.push_str("table=0,priority=0 actions=drop\n");
    // 1 ARPSpoofGuard, 2 ARPResponder
    for i in 0..100 {
        let _ = writeln!(
            s,
            "table=1,priority=200,arp,in_port=1,arp_spa={},arp_sha={mac_a} actions=goto_table:2",
            pod(i)
        );
    }
    s.push_str("table=1,priority=0 actions=drop\n");
    s.push_str("table=2,priority=190,arp actions=output:2\n");
    s.push_str("table=2,priority=0 actions=drop\n");
    // 3 Classifier: local Pod (reg0[0..3]=3) or tunnel (=1, RewriteMAC reg0[9])
    let _ = writeln!(
        s,
        "table=3,priority=190,in_port=1,dl_src={mac_a} actions=set_field:0x3/0xf->reg0,goto_table:4"
    );
    let _ = writeln!(
        s,
        "table=3,priority=200,in_port=1,dl_src={mac_b} actions=set_field:0x1/0xf->reg0,set_field:0x200/0x200->reg0,goto_table:5"
    );
    s.push_str("table=3,priority=0 actions=drop\n");
    // 4 SpoofGuard
    for i in 0..100 {
        let _ = writeln!(
            s,
            "table=4,priority=200,ip,in_port=1,dl_src={mac_a},nw_src={} actions=goto_table:5",
            pod(i)
        );
    }
    s.push_str("table=4,priority=0 actions=drop\n");
    // 5 UnSNAT (virtual IPs not hit)
    let _ = writeln!(
        s,
        "table=5,priority=200,ip,nw_dst=169.254.0.253 actions=ct(table=6,zone=65521,nat)"
    );
    s.push_str("table=5,priority=0 actions=goto_table:6\n");
    // 6 ConntrackZone, 7 ConntrackState
    let _ = writeln!(
        s,
        "table=6,priority=200,ip actions=ct(table=7,zone={CT_ZONE},nat)"
    );
    s.push_str("table=6,priority=0 actions=drop\n");
    s.push_str("table=7,priority=200,ct_state=+inv+trk,ip actions=drop\n");
    s.push_str("table=7,priority=190,ct_state=-new+trk,ip actions=goto_table:8\n");
    s.push_str("table=7,priority=0 actions=goto_table:8\n");
    // 8 PreRoutingClassifier, 9 SessionAffinity, 10 ServiceLB (20 Services), 11 EndpointDNAT
    s.push_str("table=8,priority=0 actions=goto_table:9\n");
    s.push_str("table=9,priority=0 actions=set_field:0x10000/0x70000->reg4,goto_table:10\n");
    for k in 0..20u32 {
        let _ = writeln!(
            s,
            "table=10,priority=200,tcp,reg4=0x10000/0x70000,nw_dst=10.96.0.{},tp_dst=80 actions=set_field:0x20000/0x70000->reg4,set_field:0x{:x}->reg3,goto_table:11",
            k + 1,
            0x0a0a_0200 + k + 2
        );
    }
    s.push_str("table=10,priority=0 actions=goto_table:11\n");
    for k in 0..20u32 {
        let _ = writeln!(
            s,
            "table=11,priority=200,tcp,reg3=0x{:x},reg4=0x20000/0x70000 actions=ct(commit,table=12,zone={CT_ZONE},nat(dst=10.10.2.{}:80),exec(set_field:0x10/0x10->ct_mark))",
            0x0a0a_0200 + k + 2,
            k + 2
        );
    }
    s.push_str("table=11,priority=0 actions=goto_table:12\n");
    // 12 AntreaPolicyEgressRule: established traffic bypasses; 100 rules as conjunctions over
    // source Pods (10 each), destination CIDRs and ports; rules 90..99 drop tcp/22.
    s.push_str("table=12,priority=64990,ct_state=-new+est,ip actions=goto_table:14\n");
    s.push_str("table=12,priority=64990,ct_state=-new+rel,ip actions=goto_table:14\n");
    for r in 0..100u32 {
        let id = 1000 + r;
        let prio = 14000 - r;
        for j in 0..10 {
            let _ = writeln!(
                s,
                "table=12,priority={prio},ip,nw_src={} actions=conjunction({id},1/3)",
                pod(10 * r + j)
            );
        }
        for dst in ["10.10.1.0/24", "10.20.0.0/16"] {
            let _ = writeln!(
                s,
                "table=12,priority={prio},ip,nw_dst={dst} actions=conjunction({id},2/3)"
            );
        }
        let ports: [u32; 2] = if r < 90 {
            [u32::from(TCP_PORTS[(r % 3) as usize]), 9000 + r]
        } else {
            [22, 9000 + r]
        };
        for p in ports {
            let _ = writeln!(
                s,
                "table=12,priority={prio},tcp,tp_dst={p} actions=conjunction({id},3/3)"
            );
        }
        if r < 90 {
            let _ = writeln!(
                s,
                "table=12,priority={prio},conj_id={id},ip actions=set_field:0x{id:x}->reg5,ct(commit,table=14,zone={CT_ZONE},exec(set_field:0x{id:x}/0xffffffff->ct_label))"
            );
        } else {
            let _ = writeln!(
                s,
                "table=12,priority={prio},conj_id={id},ip actions=set_field:0x{id:x}->reg3,goto_table:14"
            );
        }
    }
    s.push_str("table=12,priority=0 actions=goto_table:13\n");
    // 13 EgressDefaultRule
    s.push_str("table=13,priority=0 actions=goto_table:14\n");
    // 14 EgressMetric: per allow rule, new and established counters on ct_label; deny counters
    for r in 0..90u32 {
        let id = 1000 + r;
        for st in ["+new", "-new"] {
            let _ = writeln!(
                s,
                "table=14,priority=200,ct_state={st}+trk,ct_label=0x{id:x}/0xffffffff,ip actions=goto_table:15"
            );
        }
    }
    for r in 90..100u32 {
        let _ = writeln!(
            s,
            "table=14,priority=200,reg3=0x{:x} actions=drop",
            1000 + r
        );
    }
    s.push_str("table=14,priority=0 actions=goto_table:15\n");
    // 15 L3Forwarding: gateway, 50 peer-Node CIDRs (to the global virtual MAC), 100 local Pods
    // reached from the tunnel (RewriteMAC); 16 L3DecTTL
    let _ = writeln!(
        s,
        "table=15,priority=210,ip,nw_dst=10.10.0.1 actions=mod_dl_dst:{GW_MAC},goto_table:19"
    );
    for n in 0..50u32 {
        let _ = writeln!(
            s,
            "table=15,priority=200,ip,nw_dst=10.10.{}.0/24 actions=mod_dl_src:{GW_MAC},mod_dl_dst:{GLOBAL_VIRTUAL_MAC},goto_table:16",
            n + 1
        );
    }
    for i in 0..100 {
        let _ = writeln!(
            s,
            "table=15,priority=200,ip,reg0=0x200/0x200,nw_dst={} actions=mod_dl_src:{GW_MAC},mod_dl_dst:{mac_a},goto_table:16",
            pod(i)
        );
    }
    s.push_str("table=15,priority=0 actions=goto_table:19\n");
    s.push_str("table=16,priority=200,ip actions=dec_ttl,goto_table:17\n");
    s.push_str("table=16,priority=0 actions=goto_table:17\n");
    // 17 SNATMark, 18 SNAT (not hit)
    let _ = writeln!(
        s,
        "table=17,priority=200,ct_state=+new+trk,ip,reg0=0x2/0xf actions=ct(commit,table=18,zone={CT_ZONE},exec(set_field:0x20/0x20->ct_mark))"
    );
    s.push_str("table=17,priority=0 actions=goto_table:18\n");
    s.push_str("table=18,priority=0 actions=goto_table:19\n");
    // 19 L2ForwardingCalc: reg1 = output port, reg0[21..22] = output to port
    for m in [GLOBAL_VIRTUAL_MAC, mac_a.as_str(), GW_MAC, mac_b.as_str()] {
        let _ = writeln!(
            s,
            "table=19,priority=200,dl_dst={m} actions=set_field:0x2->reg1,set_field:0x200000/0x600000->reg0,goto_table:20"
        );
    }
    s.push_str("table=19,priority=0 actions=goto_table:20\n");
    // 20 IngressSecurityClassifier, 21 AntreaPolicyIngressRule, 22 IngressRule,
    // 23 IngressDefaultRule, 24 IngressMetric
    s.push_str("table=20,priority=0 actions=goto_table:21\n");
    s.push_str("table=21,priority=64990,ct_state=-new+est,ip actions=goto_table:24\n");
    s.push_str("table=21,priority=64990,ct_state=-new+rel,ip actions=goto_table:24\n");
    s.push_str("table=21,priority=0 actions=goto_table:22\n");
    for r in 0..10u32 {
        let id = 2000 + r;
        let prio = 200 - r;
        let _ = writeln!(
            s,
            "table=22,priority={prio},ip,nw_src=10.30.0.{} actions=conjunction({id},1/2)",
            r + 1
        );
        let _ = writeln!(
            s,
            "table=22,priority={prio},tcp,tp_dst={} actions=conjunction({id},2/2)",
            7000 + r
        );
        let _ = writeln!(
            s,
            "table=22,priority={prio},conj_id={id},ip actions=set_field:0x{id:x}->reg6,goto_table:24"
        );
    }
    s.push_str("table=22,priority=0 actions=goto_table:23\n");
    s.push_str("table=23,priority=0 actions=goto_table:24\n");
    s.push_str("table=24,priority=0 actions=goto_table:25\n");
    // 25 ConntrackCommit, 26 Output
    let _ = writeln!(
        s,
        "table=25,priority=200,ct_state=+new+trk,ip actions=ct(commit,table=26,zone={CT_ZONE},exec(move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))"
    );
    s.push_str("table=25,priority=0 actions=goto_table:26\n");
    s.push_str("table=26,priority=200,reg0=0x200000/0x600000 actions=output:NXM_NX_REG1[]\n");
    s.push_str("table=26,priority=0 actions=drop\n");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rules(f: &str) -> usize {
        f.lines().filter(|l| !l.starts_with('#')).count()
    }

    #[test]
    fn sizes_match_the_reference_shapes() {
        assert_eq!(rules(&l3_1k()), 1004);
        assert_eq!(rules(&ct()), 6);
        let a = antrea_like();
        let n = rules(&a);
        assert!((1900..2300).contains(&n), "{n} rules");
        assert_eq!(a.matches("conj_id=").count(), 110);
    }

    #[test]
    fn every_flow_is_distinct() {
        for sc in PipeScenario::ALL {
            let f = sc.flows();
            let mut keys: Vec<&str> = f
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split(" actions=").next().unwrap())
                .collect();
            let n = keys.len();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), n, "{sc}");
        }
    }

    #[test]
    fn committed_files_are_the_generated_ones() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/pipeline");
        for sc in PipeScenario::ALL {
            let path = dir.join(format!("{}.flows", sc.name()));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == sc.flows(),
                "{} differs from the generator: run `xvs-bench pipeline --write-flows {}`",
                path.display(),
                dir.display()
            );
        }
    }
}
