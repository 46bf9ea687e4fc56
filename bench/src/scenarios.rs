//! The OpenFlow scenarios of `compare`: flow files in `ovs-ofctl add-flows` syntax, loaded
//! unchanged into xvsd (through its configuration) and into ovs-vswitchd (with `ovs-ofctl`).
//!
//! Ports: pod-a's switch port `pa0` is OpenFlow port 1, pod-b's `pb0` is port 2, in both
//! switches. The traffic of every scenario (UDP pod-a -> pod-b port 9 from source ports 1024..,
//! and iperf3 TCP to port 5201 with its replies) is allowed by the policy of the `antrea`
//! scenarios; every other rule of those scenarios matches other addresses, as the rules of the
//! other Pods of a node would.

use crate::generator::DPORT;
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// iperf3's port, allowed by the policy scenarios.
pub const IPERF_PORT: u16 = 5201;

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Two output flows: port 1 -> 2 and 2 -> 1.
    L2,
    /// An Antrea-style pipeline with conntrack and 100 policy rules.
    Antrea,
    /// The same with 10,000 policy rules.
    Antrea10k,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::L2, Scenario::Antrea, Scenario::Antrea10k];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::L2 => "l2",
            Scenario::Antrea => "antrea",
            Scenario::Antrea10k => "antrea-10k",
        }
    }

    /// Whether the scenario's pipeline tracks and commits connections (every new 5-tuple that
    /// the policy admits goes through `ct(commit)`).
    pub fn has_conntrack(self) -> bool {
        matches!(self, Scenario::Antrea | Scenario::Antrea10k)
    }

    /// The flow file.
    pub fn flows(self) -> String {
        match self {
            Scenario::L2 => l2_flows(),
            Scenario::Antrea => antrea_flows(100),
            Scenario::Antrea10k => antrea_flows(10_000),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Scenario {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Scenario::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown scenario {s:?} (l2, antrea, antrea-10k)"))
    }
}

fn l2_flows() -> String {
    "# l2: two output flows between the node's ports\n\
     table=0,priority=100,in_port=1 actions=output:2\n\
     table=0,priority=100,in_port=2 actions=output:1\n"
        .to_string()
}

/// Antrea's conntrack zone for Pod traffic.
const CT_ZONE: u32 = 65520;

/// An Antrea-style pipeline for two local Pods (pod-a 10.10.0.2 on port 1, pod-b 10.10.0.3 on
/// port 2) with `rules` ingress policy rules for pod-b, each a three-clause conjunction
/// (source address, destination Pod, destination port) at its own priority, as Antrea-native
/// policies are. Only the last rule admits pod-a; anything else to pod-b is dropped by the
/// isolation default. Table numbers are Antrea's stage order, compacted.
pub fn antrea_flows(rules: usize) -> String {
    let mut s = String::new();
    let pods = [
        (1, "02:0a:0a:00:00:02", "10.10.0.2"),
        (2, "02:0a:0a:00:00:03", "10.10.0.3"),
    ];
    let _ = writeln!(
        s,
        "# antrea-style pipeline: SpoofGuard, conntrack zone {CT_ZONE}, {rules} ingress policy rules \
         (conjunctions), L3Forwarding, L2ForwardingCalc, ConntrackCommit, Output"
    );
    s.push_str("# PipelineRootClassifier\n");
    s.push_str("table=0,priority=200,ip actions=goto_table:1\n");
    for (port, _, _) in pods {
        // ARP between the two Pods is switched directly (no gateway in this topology).
        let other = 3 - port;
        let _ = writeln!(
            s,
            "table=0,priority=200,arp,in_port={port} actions=output:{other}"
        );
    }
    s.push_str("table=0,priority=0 actions=drop\n");
    s.push_str("# Classifier: PktSource=local Pod\n");
    for (port, _, _) in pods {
        let _ = writeln!(
            s,
            "table=1,priority=190,in_port={port} actions=set_field:0x3/0xf->reg0,goto_table:2"
        );
    }
    s.push_str("table=1,priority=0 actions=drop\n");
    s.push_str("# SpoofGuard\n");
    for (port, mac, ip) in pods {
        let _ = writeln!(
            s,
            "table=2,priority=200,ip,in_port={port},dl_src={mac},nw_src={ip} actions=goto_table:3"
        );
    }
    s.push_str("table=2,priority=0 actions=drop\n");
    s.push_str("# ConntrackZone\n");
    let _ = writeln!(
        s,
        "table=3,priority=200,ip actions=ct(table=4,zone={CT_ZONE})"
    );
    s.push_str("table=3,priority=0 actions=drop\n");
    s.push_str("# ConntrackState: established traffic skips the policy tables\n");
    s.push_str("table=4,priority=200,ct_state=+inv+trk,ip actions=drop\n");
    s.push_str("table=4,priority=190,ct_state=-new+trk,ip actions=goto_table:5\n");
    s.push_str("table=4,priority=0 actions=set_field:0x10/0x10->reg0,goto_table:5\n");
    s.push_str("# L3Forwarding: the Pod subnet is switched\n");
    s.push_str("table=5,priority=200,ip,nw_dst=10.10.0.0/24 actions=goto_table:6\n");
    s.push_str("table=5,priority=0 actions=drop\n");
    s.push_str("# L2ForwardingCalc: reg1 = output port\n");
    for (port, mac, _) in pods {
        let _ = writeln!(
            s,
            "table=6,priority=200,dl_dst={mac} actions=set_field:0x{port:x}->reg1,set_field:0x200000/0x600000->reg0,goto_table:7"
        );
    }
    s.push_str("table=6,priority=0 actions=drop\n");
    s.push_str("# IngressSecurityClassifier: only new connections go through the rules\n");
    s.push_str("table=7,priority=200,reg0=0x10/0x10 actions=goto_table:8\n");
    s.push_str("table=7,priority=0 actions=goto_table:10\n");
    let _ = writeln!(
        s,
        "# IngressRule: {rules} rules for pod-b (reg1=0x2), the last one admits pod-a"
    );
    for i in 0..rules {
        let id = 1000 + i;
        let prio = 30000 - i;
        let last = i + 1 == rules;
        let src = if last {
            "10.10.0.2".to_string()
        } else {
            // Other Pods' addresses: 10.30.0.1 ...
            format!("10.30.{}.{}", (i / 250) % 256, i % 250 + 1)
        };
        let _ = writeln!(
            s,
            "table=8,priority={prio},ip,nw_src={src} actions=conjunction({id},1/3)"
        );
        let _ = writeln!(
            s,
            "table=8,priority={prio},ip,reg1=0x2 actions=conjunction({id},2/3)"
        );
        if last {
            let _ = writeln!(
                s,
                "table=8,priority={prio},udp,tp_dst={DPORT} actions=conjunction({id},3/3)"
            );
            let _ = writeln!(
                s,
                "table=8,priority={prio},tcp,tp_dst={IPERF_PORT} actions=conjunction({id},3/3)"
            );
        } else {
            let port = 8000 + (i % 2000);
            let _ = writeln!(
                s,
                "table=8,priority={prio},tcp,tp_dst={port} actions=conjunction({id},3/3)"
            );
        }
        let _ = writeln!(
            s,
            "table=8,priority={prio},conj_id={id},ip actions=set_field:{id:#x}->reg3,goto_table:10"
        );
    }
    s.push_str("table=8,priority=0 actions=goto_table:9\n");
    s.push_str("# IngressDefaultRule: pod-b is isolated\n");
    s.push_str("table=9,priority=200,ip,reg1=0x2 actions=drop\n");
    s.push_str("table=9,priority=0 actions=goto_table:10\n");
    s.push_str("# ConntrackCommit\n");
    let _ = writeln!(
        s,
        "table=10,priority=200,ct_state=+new+trk,ip actions=ct(commit,table=11,zone={CT_ZONE})"
    );
    s.push_str("table=10,priority=0 actions=goto_table:11\n");
    s.push_str("# Output\n");
    s.push_str("table=11,priority=200,reg0=0x200000/0x600000 actions=output:NXM_NX_REG1[]\n");
    s.push_str("table=11,priority=0 actions=drop\n");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>().unwrap(), s);
        }
    }

    #[test]
    fn antrea_has_the_rules_and_ct() {
        let f = antrea_flows(100);
        assert_eq!(f.matches("conj_id=").count(), 100);
        assert!(f.contains("ct(commit,table=11,zone=65520)"));
        assert!(f.contains("nw_src=10.10.0.2 actions=conjunction(1099,1/3)"));
        let big = antrea_flows(10_000);
        assert_eq!(big.matches("conj_id=").count(), 10_000);
        // Every flow (match + priority) is distinct, so none replaces another on load.
        let mut keys: Vec<&str> = big
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" actions=").next().unwrap())
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
