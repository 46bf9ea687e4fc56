//! Connection entries for `dpctl/dump-conntrack`, in OVS's text format.

use std::fmt;
use std::time::Duration;

use crate::tcp::TcpState;
use crate::tuple::{is_icmp, proto, Tuple};

/// A snapshot of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEntry {
    /// Original-direction tuple.
    pub orig: Tuple,
    /// Reply-direction tuple (after NAT: what replies look like on the wire).
    pub reply: Tuple,
    /// Zone.
    pub zone: u16,
    /// `ct_mark`.
    pub mark: u32,
    /// `ct_label`.
    pub label: u128,
    /// TCP peer states (original sender, reply sender); `None` for other protocols.
    pub tcp: Option<(TcpState, TcpState)>,
    /// Time left before the connection expires.
    pub expires_in: Duration,
}

fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        proto::ICMP => "icmp",
        proto::ICMPV6 => "icmpv6",
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::SCTP => "sctp",
        proto::UDPLITE => "udplite",
        proto::DCCP => "dccp",
        proto::IGMP => "igmp",
        _ => return None,
    })
}

struct TupleFmt<'a>(&'a Tuple);

impl fmt::Display for TupleFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(f, "src={},dst={}", t.src, t.dst)?;
        if t.proto == proto::ICMP || t.proto == proto::ICMPV6 {
            write!(
                f,
                ",id={},type={},code={}",
                t.icmp_id, t.icmp_type, t.icmp_code
            )
        } else {
            write!(f, ",sport={},dport={}", t.src_port, t.dst_port)
        }
    }
}

/// The line `ovs-appctl dpctl/dump-conntrack` prints (without `-m` or `-s`), e.g.
/// `tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1234),zone=65520,mark=16,protoinfo=(state=ESTABLISHED)`.
/// As in OVS, a zero zone, mark or label is omitted, and the label is printed in hex without
/// leading zeros.
impl fmt::Display for CtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match proto_name(self.orig.proto) {
            Some(n) => f.write_str(n)?,
            None => write!(f, "{}", self.orig.proto)?,
        }
        write!(
            f,
            ",orig=({}),reply=({})",
            TupleFmt(&self.orig),
            TupleFmt(&self.reply)
        )?;
        if self.zone != 0 {
            write!(f, ",zone={}", self.zone)?;
        }
        if self.mark != 0 {
            write!(f, ",mark={}", self.mark)?;
        }
        if self.label != 0 {
            write!(f, ",labels={:#x}", self.label)?;
        }
        if let Some((a, b)) = self.tcp {
            write!(f, ",protoinfo=(state={})", TcpState::summary(a, b).name())?;
        }
        Ok(())
    }
}

impl CtEntry {
    /// True for ICMP/ICMPv6 entries.
    pub fn is_icmp(&self) -> bool {
        is_icmp(self.orig.proto, self.orig.is_ipv6())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn tcp_line() {
        let e = CtEntry {
            orig: Tuple::ports(ip("10.0.0.1"), ip("10.0.0.2"), proto::TCP, 1234, 80),
            reply: Tuple::ports(ip("10.0.0.2"), ip("10.0.0.1"), proto::TCP, 80, 1234),
            zone: 65520,
            mark: 16,
            label: 0x2_0000_0000,
            tcp: Some((TcpState::Established, TcpState::Established)),
            expires_in: Duration::ZERO,
        };
        assert_eq!(
            e.to_string(),
            "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1234),zone=65520,mark=16,labels=0x200000000,protoinfo=(state=ESTABLISHED)"
        );
    }

    #[test]
    fn icmp6_and_unknown_proto_lines() {
        let e = CtEntry {
            orig: Tuple::icmp(ip("fd00::1"), ip("fd00::2"), proto::ICMPV6, 128, 0, 7),
            reply: Tuple::icmp(ip("fd00::2"), ip("fd00::1"), proto::ICMPV6, 129, 0, 7),
            zone: 0,
            mark: 0,
            label: 0,
            tcp: None,
            expires_in: Duration::ZERO,
        };
        assert_eq!(
            e.to_string(),
            "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=7,type=128,code=0),reply=(src=fd00::2,dst=fd00::1,id=7,type=129,code=0)"
        );
        let gre = CtEntry {
            orig: Tuple::other(ip("1.1.1.1"), ip("2.2.2.2"), 47),
            reply: Tuple::other(ip("2.2.2.2"), ip("1.1.1.1"), 47),
            zone: 3,
            ..e
        };
        assert_eq!(
            gre.to_string(),
            "47,orig=(src=1.1.1.1,dst=2.2.2.2,sport=0,dport=0),reply=(src=2.2.2.2,dst=1.1.1.1,sport=0,dport=0),zone=3"
        );
    }
}
