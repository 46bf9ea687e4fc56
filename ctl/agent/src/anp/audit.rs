//! np.log lines in Antrea's audit format (sans-IO): the 14-field message of a logged packet,
//! the Go-style timestamp prefix, and the 1 s deduplication of Drop/Reject/Pass messages
//! (`[N packets in D]`). Time is an argument everywhere.

use super::flows::{LoggedRule, OP_LOG};
use super::reject::CATEGORY_NETWORK_POLICY;
use super::types::{Action, Direction};
use crate::model::Model;
use crate::pipeline::{t, TABLES};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use xvs_flowtable::field::FieldId;
use xvs_openflow::PacketIn;
use xvs_packet::wire::{ethernet, ethertype, ip_proto, ipv4};

/// What a logged packet hit and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// OVS table name where the decision was made (`AntreaPolicyIngressRule`, ...).
    pub table: String,
    /// `AntreaClusterNetworkPolicy:<name>`, `AntreaNetworkPolicy:<ns>/<name>`, ...
    pub policy_ref: String,
    /// Rule name; empty → `<nil>`.
    pub rule_name: String,
    /// `Ingress` or `Egress`.
    pub direction: &'static str,
    /// `Allow`, `Drop`, `Reject` or `Pass`.
    pub action: &'static str,
    /// OpenFlow priority of the action flow (`None` → `<nil>`).
    pub of_priority: Option<u16>,
    /// `ns/name` of the local Pod the rule applies to (`None` → `<nil>`).
    pub applied_to: Option<String>,
    /// Source address.
    pub src_ip: Ipv4Addr,
    /// Source port (TCP/UDP only).
    pub src_port: Option<u16>,
    /// Destination address.
    pub dst_ip: Ipv4Addr,
    /// Destination port (TCP/UDP only).
    pub dst_port: Option<u16>,
    /// IP protocol number.
    pub protocol: u8,
    /// The IP total length field.
    pub ip_length: u16,
    /// Log label; empty → `<nil>`.
    pub log_label: String,
}

/// Antrea's name of an IP protocol in np.log.
pub fn protocol_name(p: u8) -> &'static str {
    match p {
        1 => "ICMP",
        2 => "IGMP",
        6 => "TCP",
        17 => "UDP",
        58 => "IPv6-ICMP",
        132 => "SCTP",
        _ => "UnknownProtocol",
    }
}

fn or_nil<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "<nil>".to_string(), |v| v.to_string())
}

fn nil_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "<nil>"
    } else {
        s
    }
}

impl LogRecord {
    /// The 14 space-separated fields (no timestamp).
    pub fn message(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            self.table,
            self.policy_ref,
            nil_if_empty(&self.rule_name),
            self.direction,
            self.action,
            or_nil(self.of_priority),
            or_nil(self.applied_to.as_deref()),
            self.src_ip,
            or_nil(self.src_port),
            self.dst_ip,
            or_nil(self.dst_port),
            protocol_name(self.protocol),
            self.ip_length,
            nil_if_empty(&self.log_label),
        )
    }
}

/// The np.log record of a logging packet-in (`userdata=01.<op>` with op bit 1): the rule from
/// the conjunction id the flows left in reg3 (Drop/Reject) or reg5/reg6 (Allow, egress /
/// ingress), the packet's addresses from its frame. `None` when it is not one, or names a
/// rule no longer logged.
pub fn record(
    pi: &PacketIn,
    rules: &BTreeMap<u32, LoggedRule>,
    model: &Model,
) -> Option<LogRecord> {
    match pi.userdata.as_slice() {
        [CATEGORY_NETWORK_POLICY, op, ..] if u32::from(*op) & OP_LOG != 0 => {}
        _ => return None,
    }
    let reg = |f: FieldId| pi.metadata.get(f).0 as u32;
    let reg0 = reg(FieldId::REG0);
    let table = reg(FieldId::REG2) as u8;
    let denied = reg0 & 0x400 != 0;
    let id = if denied {
        reg(FieldId::REG3)
    } else if table == t::AP_EGRESS || table == t::EGRESS_DEFAULT || table == t::EGRESS_RULE {
        reg(FieldId::REG5)
    } else {
        reg(FieldId::REG6)
    };
    let rule = rules.get(&id)?;
    let eth = ethernet::Packet::new_checked(&pi.data[..]).ok()?;
    if eth.ethertype() != ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let (src_port, dst_port) = match ip.protocol() {
        ip_proto::TCP | ip_proto::UDP if !ip.is_later_fragment() => {
            let l4 = ip.payload();
            match l4.get(..4) {
                Some(p) => (
                    Some(u16::from_be_bytes([p[0], p[1]])),
                    Some(u16::from_be_bytes([p[2], p[3]])),
                ),
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    let (src_ip, dst_ip) = (Ipv4Addr::from(ip.src()), Ipv4Addr::from(ip.dst()));
    // The Pod the rule applies to: ingress the destination, egress the source.
    let pod_ip = match rule.direction {
        Direction::Ingress => dst_ip,
        Direction::Egress => src_ip,
    };
    let node = model.config.as_ref().map(|c| c.node_name.as_str());
    let applied_to = model
        .pods
        .values()
        .find(|p| p.ip == pod_ip && node.is_none_or(|n| p.node == n))
        .map(|p| format!("{}/{}", p.namespace, p.name));
    Some(LogRecord {
        table: TABLES
            .get(usize::from(rule.table))
            .copied()
            .unwrap_or("Unknown")
            .to_string(),
        policy_ref: rule.policy_ref.clone(),
        rule_name: rule.rule_name.clone(),
        direction: match rule.direction {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        },
        action: rule.action.as_str(),
        of_priority: rule.priority,
        applied_to,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol: ip.protocol(),
        ip_length: ip.total_len(),
        log_label: rule.log_label.clone(),
    })
}

/// Whether an action's lines are deduplicated.
fn deduplicated(action: &str) -> bool {
    action != Action::Allow.as_str()
}

/// Go's `log` prefix for `since_epoch` (UTC): `YYYY/MM/DD HH:MM:SS.uuuuuu `.
pub fn timestamp(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}.{:06} ",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.Duration.String()` for durations below one hour.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128| -> String {
        let (whole, rest) = (v / unit, v % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", frac(ns, 1_000))
    } else if ns < 1_000_000_000 {
        format!("{}ms", frac(ns, 1_000_000))
    } else if ns < 60_000_000_000 {
        format!("{}s", frac(ns, 1_000_000_000))
    } else {
        let mins = ns / 60_000_000_000;
        format!("{mins}m{}s", frac(ns % 60_000_000_000, 1_000_000_000))
    }
}

/// How long repeats of a Drop/Reject/Pass message are merged.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(1);
/// Messages waiting in the window at most; beyond, a message is written at once.
const MAX_PENDING: usize = 10_000;

/// Antrea's deduplication: Allow messages go out at once; others start a 1 s window keyed
/// by the whole message, repeats inside it only count, and at its end one line is written
/// (suffixed `[N packets in D]` when N > 1, D measured from the first packet to the flush).
#[derive(Debug, Default)]
pub struct Deduper {
    /// Message → (first seen, count).
    pending: BTreeMap<String, (Duration, u64)>,
}

impl Deduper {
    /// Takes one logged packet at `now` (any monotonic clock); returns a message to write
    /// now, if any.
    pub fn push(&mut self, rec: &LogRecord, now: Duration) -> Option<String> {
        let msg = rec.message();
        if !deduplicated(rec.action) {
            return Some(msg);
        }
        if let Some((_, count)) = self.pending.get_mut(&msg) {
            *count += 1;
            return None;
        }
        if self.pending.len() >= MAX_PENDING {
            return Some(msg);
        }
        self.pending.insert(msg, (now, 1));
        None
    }

    /// The messages whose window ended by `now`.
    pub fn poll(&mut self, now: Duration) -> Vec<String> {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (first, _))| now.saturating_sub(*first) >= DEDUP_WINDOW)
            .map(|(m, _)| m.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for m in due {
            if let Some((first, count)) = self.pending.remove(&m) {
                if count > 1 {
                    let took = go_duration(now.saturating_sub(first));
                    out.push(format!("{m} [{count} packets in {took}]"));
                } else {
                    out.push(m);
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The doc's np.log examples (spec §5), timestamps and all.
    const DOC: [&str; 5] = [
        "2023/07/04 12:45:21.804416 IngressDefaultRule AntreaNetworkPolicy:default/reject-tcp-policy RejectTCPRequest Ingress Reject 16 default/nettoolv3 10.10.1.7 53646 10.10.1.14 80 TCP 60 tcp-log-label",
        "2023/07/03 23:24:36.422233 AntreaPolicyEgressRule AntreaNetworkPolicy:default/reject-icmp-policy RejectICMPRequest Egress Reject 14500 default/nettool 10.10.1.7 <nil> 10.10.2.3 <nil> ICMP 84 icmp-log-label",
        "2023/07/03 23:24:37.424024 AntreaPolicyEgressRule AntreaNetworkPolicy:default/reject-icmp-policy RejectICMPRequest Egress Reject 14500 default/nettool 10.10.1.7 <nil> 10.10.2.3 <nil> ICMP 84 icmp-log-label [2 packets in 1.000855539s]",
        "2023/07/04 12:31:02.801442 IngressRule K8sNetworkPolicy:default/allow-tcp-80 <nil> Ingress Allow 190 default/nettool 10.10.1.13 57050 10.10.1.7 80 TCP 60 <nil>",
        "2023/07/04 12:33:26.221413 IngressDefaultRule K8sNetworkPolicy <nil> Ingress Drop <nil> default/nettool 10.10.1.13 <nil> 10.10.1.7 <nil> ICMP 84 <nil>",
    ];

    #[allow(clippy::too_many_arguments)]
    fn rec(
        table: &str,
        policy: &str,
        rule: &str,
        direction: &'static str,
        action: &'static str,
        prio: Option<u16>,
        applied: &str,
        src: (&str, Option<u16>),
        dst: (&str, Option<u16>),
        protocol: u8,
        len: u16,
        label: &str,
    ) -> LogRecord {
        LogRecord {
            table: table.into(),
            policy_ref: policy.into(),
            rule_name: rule.into(),
            direction,
            action,
            of_priority: prio,
            applied_to: Some(applied.into()),
            src_ip: src.0.parse().unwrap(),
            src_port: src.1,
            dst_ip: dst.0.parse().unwrap(),
            dst_port: dst.1,
            protocol,
            ip_length: len,
            log_label: label.into(),
        }
    }

    fn reject_tcp() -> LogRecord {
        rec(
            "IngressDefaultRule",
            "AntreaNetworkPolicy:default/reject-tcp-policy",
            "RejectTCPRequest",
            "Ingress",
            "Reject",
            Some(16),
            "default/nettoolv3",
            ("10.10.1.7", Some(53646)),
            ("10.10.1.14", Some(80)),
            6,
            60,
            "tcp-log-label",
        )
    }

    fn reject_icmp() -> LogRecord {
        rec(
            "AntreaPolicyEgressRule",
            "AntreaNetworkPolicy:default/reject-icmp-policy",
            "RejectICMPRequest",
            "Egress",
            "Reject",
            Some(14500),
            "default/nettool",
            ("10.10.1.7", None),
            ("10.10.2.3", None),
            1,
            84,
            "icmp-log-label",
        )
    }

    /// A line as the spec's regex sees it: prefix, 14 fields, optional dedup suffix.
    fn well_formed(line: &str) -> bool {
        let (date, rest) = line.split_at(27.min(line.len()));
        let b = date.as_bytes();
        let prefix_ok = b.len() == 27
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'/',
                10 | 26 => *c == b' ',
                13 | 16 => *c == b':',
                19 => *c == b'.',
                _ => c.is_ascii_digit(),
            });
        let (fields, suffix) = match rest.find(" [") {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let suffix_ok = suffix.is_none_or(|s| {
            let s = s.trim_start_matches(" [").trim_end_matches(']');
            let parts: Vec<&str> = s.split(' ').collect();
            parts.len() == 4
                && parts[0].parse::<u64>().is_ok()
                && parts[1..3] == ["packets", "in"]
                && parts[3]
                    .trim_end_matches(char::is_alphabetic)
                    .trim_end_matches('µ')
                    .parse::<f64>()
                    .is_ok()
        });
        prefix_ok && suffix_ok && fields.split(' ').count() == 14 && !fields.contains("  ")
    }

    #[test]
    fn messages_equal_the_doc_examples() {
        let k8s_allow = LogRecord {
            rule_name: String::new(),
            log_label: String::new(),
            ..rec(
                "IngressRule",
                "K8sNetworkPolicy:default/allow-tcp-80",
                "",
                "Ingress",
                "Allow",
                Some(190),
                "default/nettool",
                ("10.10.1.13", Some(57050)),
                ("10.10.1.7", Some(80)),
                6,
                60,
                "",
            )
        };
        let k8s_drop = rec(
            "IngressDefaultRule",
            "K8sNetworkPolicy",
            "",
            "Ingress",
            "Drop",
            None,
            "default/nettool",
            ("10.10.1.13", None),
            ("10.10.1.7", None),
            1,
            84,
            "",
        );
        let want: Vec<&str> = DOC.iter().map(|l| &l[27..]).collect();
        assert_eq!(reject_tcp().message(), want[0]);
        assert_eq!(reject_icmp().message(), want[1]);
        assert_eq!(k8s_allow.message(), want[3]);
        assert_eq!(k8s_drop.message(), want[4]);
        for l in DOC {
            assert!(well_formed(l), "{l}");
        }
    }

    #[test]
    fn timestamp_is_gos_log_prefix() {
        // 2023-07-04 12:45:21.804416 UTC.
        let t = Duration::new(1_688_474_721, 804_416_000);
        assert_eq!(timestamp(t), "2023/07/04 12:45:21.804416 ");
        assert_eq!(timestamp(Duration::ZERO), "1970/01/01 00:00:00.000000 ");
        assert_eq!(
            timestamp(Duration::from_secs(951_782_400)),
            "2000/02/29 00:00:00.000000 "
        );
        let line = format!("{}{}", timestamp(t), reject_tcp().message());
        assert_eq!(line, DOC[0]);
        assert!(well_formed(&line));
    }

    fn packet_in(regs: &[(FieldId, u128)], op: u8) -> PacketIn {
        use xvs_packet::build::{self, Macs, TcpParams};
        let mut buf = [0u8; 128];
        let n = build::tcp4(
            &mut buf,
            Macs {
                src: [2, 0, 0, 0, 0, 1],
                dst: [2, 0, 0, 0, 0, 2],
            },
            [10, 10, 1, 7],
            [10, 10, 1, 14],
            TcpParams {
                sport: 53646,
                dport: 80,
                seq: 1,
                ack: 0,
                flags: 2,
                window: 100,
            },
            &[0; 20],
        )
        .unwrap();
        let mut metadata = xvs_flowtable::Match::catch_all();
        for (f, v) in regs {
            metadata.set_exact(*f, *v);
        }
        PacketIn {
            buffer_id: xvs_openflow::NO_BUFFER,
            total_len: n as u32,
            reason: 0,
            table_id: 28,
            cookie: 0,
            metadata,
            data: buf[..n].to_vec(),
            userdata: vec![1, op],
            continuation: Vec::new(),
        }
    }

    #[test]
    fn packet_ins_name_their_rule_by_the_conj_id_register() {
        let rule = |action, table, priority| LoggedRule {
            policy_ref: "AntreaNetworkPolicy:default/reject-tcp-policy".into(),
            rule_name: "RejectTCPRequest".into(),
            log_label: "tcp-log-label".into(),
            table,
            priority: Some(priority),
            direction: Direction::Ingress,
            action,
        };
        let rules: BTreeMap<u32, LoggedRule> = [
            (0x100001, rule(Action::Reject, t::INGRESS_DEFAULT, 16)),
            (0x100002, rule(Action::Allow, t::AP_INGRESS, 14500)),
        ]
        .into();
        let model = Model::default();
        // Reject: denied bit, conj id in reg3; the doc's line but for appliedTo (no Pod here).
        let pi = packet_in(
            &[
                (FieldId::REG0, 0x4401400),
                (FieldId::REG2, u128::from(t::INGRESS_DEFAULT)),
                (FieldId::REG3, 0x100001),
            ],
            3,
        );
        let want = reject_tcp().message().replace("default/nettoolv3", "<nil>");
        assert_eq!(record(&pi, &rules, &model).unwrap().message(), want);
        // Allow in an ingress table: conj id in reg6.
        let pi = packet_in(
            &[
                (FieldId::REG0, 0x2400000),
                (FieldId::REG2, u128::from(t::AP_INGRESS)),
                (FieldId::REG6, 0x100002),
            ],
            1,
        );
        let r = record(&pi, &rules, &model).unwrap();
        assert_eq!(
            (r.action, r.of_priority, r.table.as_str()),
            ("Allow", Some(14500), "AntreaPolicyIngressRule")
        );
        // Reject-only packet-ins (op 2) and unknown ids log nothing.
        let mut pi2 = pi.clone();
        pi2.userdata = vec![1, 2];
        assert_eq!(record(&pi2, &rules, &model), None);
        let pi3 = packet_in(
            &[
                (FieldId::REG2, u128::from(t::AP_INGRESS)),
                (FieldId::REG6, 7),
            ],
            1,
        );
        assert_eq!(record(&pi3, &rules, &model), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            go_duration(Duration::from_nanos(1_000_855_539)),
            "1.000855539s"
        );
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(15)), "15ns");
        assert_eq!(go_duration(Duration::from_secs(61)), "1m1s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn drop_and_reject_are_merged_for_one_second_allow_is_not() {
        let mut d = Deduper::default();
        let t0 = Duration::from_secs(100);
        // Ping once a second, phase as in the doc: one alone, then pairs.
        assert_eq!(d.push(&reject_icmp(), t0), None);
        assert!(d.poll(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(
            d.poll(t0 + Duration::from_secs(1)),
            vec![reject_icmp().message()]
        );
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(d.push(&reject_icmp(), t1), None);
        assert_eq!(
            d.push(&reject_icmp(), t1 + Duration::from_millis(500)),
            None
        );
        let flushed = d.poll(t1 + Duration::from_nanos(1_000_855_539));
        assert_eq!(flushed.len(), 1);
        assert_eq!(format!("2023/07/03 23:24:37.424024 {}", flushed[0]), DOC[2]);
        // Distinct TCP connections (source ports) never merge.
        let mut other = reject_tcp();
        other.src_port = Some(53647);
        assert_eq!(d.push(&reject_tcp(), t1), None);
        assert_eq!(d.push(&other, t1), None);
        assert_eq!(d.poll(t1 + DEDUP_WINDOW).len(), 2);
        // Allow: written at once, every time.
        let mut allow = reject_tcp();
        allow.action = "Allow";
        assert_eq!(d.push(&allow, t1), Some(allow.message()));
        assert_eq!(d.push(&allow, t1), Some(allow.message()));
        assert!(d.poll(t1 + Duration::from_secs(5)).is_empty());
    }
}
