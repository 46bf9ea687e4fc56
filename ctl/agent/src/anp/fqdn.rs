//! FQDN egress rules (sans-IO; time is an argument): the DNS interception flows, the cache
//! of addresses learned from intercepted DNS responses, and the packet-in handling that feeds
//! it.
//!
//! Antrea's scheme: DNS responses to Pods selected by a rule with an `fqdn` peer are paused
//! in the switch (`controller(pause)`); the agent learns the answer's addresses, installs the
//! rules' `nw_dst=<ip>` flows, and only then resumes the response, so the Pod's first
//! connection after its lookup already meets the rule. Addresses stay until their own TTL
//! runs out (a newer answer without them does not remove them early); xvs does not re-query
//! names on expiry as Antrea does, it drops the expired addresses.

use super::dns::{parse_response, parse_tcp_response, DnsError, DnsResponse};
use super::flows::{AGENT_CONTROLLER_ID, CONJ_BASE};
use super::resolve::InternalRule;
use super::types::Direction;
use crate::model::{Model, Pod};
use crate::pipeline::{t, Category, Desired};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;
use xvs_openflow::PacketIn;
use xvs_packet::wire::{ethernet, ethertype, ip_proto, ipv4, tcp, udp};

/// Packet-in category of DNS responses (userdata byte 0), as Antrea's.
pub const CATEGORY_DNS: u8 = 2;
/// The meter DNS packet-ins go through (Antrea's id).
pub const DNS_METER: u32 = 258;
/// The DNS interception conjunction (Antrea uses 1; xvs keeps it clear of the K8s
/// NetworkPolicy ids, which start at 1, and of the Antrea-native ones).
pub const DNS_CONJ_ID: u32 = CONJ_BASE - 1;
/// Its priority in AntreaPolicyIngressRule: above the established bypass (64990), since the
/// responses are replies of established flows.
pub const DNS_INTERCEPT_PRIORITY: u16 = 64991;
/// DNS port.
pub const DNS_PORT: u16 = 53;

/// The DNS packet-in meter in ovs-ofctl syntax (same rate as the NetworkPolicy one).
pub fn dns_meter(rate: u32) -> String {
    format!(
        "meter={DNS_METER},pktps,burst,band=type=drop,rate={rate},burst_size={}",
        rate.saturating_mul(2)
    )
}

/// True when `name` (lowercase) matches the `fqdn` selector as Antrea defines it: exact
/// names compare case-insensitively; `*` matches any run of characters (dots included), so
/// `*foobar.com` matches `foobar.com`, `www.foobar.com` and `a.b.foobar.com`.
pub fn selector_matches(selector: &str, name: &str) -> bool {
    let sel = selector.to_ascii_lowercase();
    let sel = sel.strip_suffix('.').unwrap_or(&sel);
    glob(sel.as_bytes(), name.as_bytes())
}

/// `*`-only glob, iterative with one backtrack point (linear in practice, no recursion).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Every `fqdn` selector of every admitted policy's egress rules.
pub fn selectors(model: &Model) -> BTreeSet<String> {
    model
        .anp
        .policies
        .values()
        .flat_map(|p| p.egress.iter())
        .flat_map(|r| r.peers.iter())
        .filter_map(|peer| peer.fqdn.as_ref())
        .map(|f| f.to_ascii_lowercase())
        .collect()
}

/// The addresses an `fqdn` peer stands for now: those learned for every matching name.
pub fn peer_addresses(model: &Model, selector: &str) -> BTreeSet<Ipv4Addr> {
    model
        .fqdn_learned
        .iter()
        .filter(|(name, _)| selector_matches(selector, name))
        .flat_map(|(_, ips)| ips.iter().copied())
        .collect()
}

/// Appends the DNS interception conjunction for the local Pods that a rule with an `fqdn`
/// peer applies to (whether or not it has learned addresses yet).
pub fn append_interception(
    model: &Model,
    rules: &[InternalRule<'_>],
    local: &BTreeSet<(&str, &str)>,
    d: &mut Desired,
) {
    let ports: BTreeSet<u32> = rules
        .iter()
        .filter(|r| r.dir == Direction::Egress && r.rule.peers.iter().any(|p| p.fqdn.is_some()))
        .filter(|r| model.anp.tier_priority(&r.policy.tier).is_some())
        .flat_map(|r| r.applied.iter())
        .filter(|p: &&&Pod| local.contains(&(p.namespace.as_str(), p.name.as_str())))
        .map(|p| p.ofport)
        .collect();
    if ports.is_empty() {
        return;
    }
    let (table, prio, cat, id) = (
        t::AP_INGRESS,
        DNS_INTERCEPT_PRIORITY,
        Category::NetworkPolicy,
        DNS_CONJ_ID,
    );
    for proto in ["udp", "tcp"] {
        d.add_shared(
            table,
            prio,
            format!("ct_state=+rpl+trk,{proto},tp_src={DNS_PORT}"),
            cat,
            format!("conjunction({id},1/2)"),
        );
    }
    for port in ports {
        d.add_shared(
            table,
            prio,
            format!("ip,reg1={port:#x}"),
            cat,
            format!("conjunction({id},2/2)"),
        );
    }
    d.add(
        table,
        prio,
        format!("conj_id={id},ip"),
        cat,
        format!(
            "controller(reason=no_match,id={AGENT_CONTROLLER_ID},userdata={CATEGORY_DNS:02x},pause,max_len=65535,meter_id={DNS_METER}),goto_table:{}",
            t::INGRESS_METRIC
        ),
    );
}

/// The DNS response in an intercepted frame (Ethernet + IPv4 + UDP or TCP from port 53).
pub fn response_in_frame(frame: &[u8]) -> Result<DnsResponse, FqdnError> {
    let eth = ethernet::Packet::new_checked(frame).map_err(|_| FqdnError::NotDns)?;
    if eth.ethertype() != ethertype::IPV4 {
        return Err(FqdnError::NotDns);
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| FqdnError::NotDns)?;
    if ip.is_later_fragment() {
        return Err(FqdnError::NotDns);
    }
    let l4 = ip.payload();
    match ip.protocol() {
        ip_proto::UDP => {
            let u = udp::Packet::new_checked(l4).map_err(|_| FqdnError::NotDns)?;
            if u.src_port() != DNS_PORT {
                return Err(FqdnError::NotDns);
            }
            Ok(parse_response(u.payload())?)
        }
        ip_proto::TCP => {
            let s = tcp::Packet::new_checked(l4).map_err(|_| FqdnError::NotDns)?;
            if s.src_port() != DNS_PORT || s.payload().is_empty() {
                // Handshake and bare ACKs of a DNS-over-TCP exchange.
                return Err(FqdnError::NotDns);
            }
            Ok(parse_tcp_response(s.payload())?)
        }
        _ => Err(FqdnError::NotDns),
    }
}

/// Why an intercepted packet teaches nothing (it is resumed at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FqdnError {
    /// Not a DNS response segment (or one without payload).
    #[error("not a DNS response")]
    NotDns,
    /// A DNS payload that does not parse.
    #[error("bad DNS response: {0}")]
    Parse(#[from] DnsError),
}

/// Names the cache holds at most (Antrea's total for wildcard-matched names); answers for
/// further names are not learned until some expire (Antrea evicts the least recently
/// resolved instead).
pub const MAX_LEARNED_NAMES: usize = 10_000;

/// Learned addresses by name, each with its own expiry (time since an arbitrary origin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FqdnCache {
    names: BTreeMap<String, BTreeMap<Ipv4Addr, Duration>>,
    /// Answers not learned because the cache was full.
    pub refused: u64,
}

impl FqdnCache {
    /// Merges an answer for `name` at `now`: new addresses are added, known ones keep the
    /// later expiry, absent ones stay until their own. True when the set of addresses of
    /// `name` changed (the flows must follow).
    pub fn learn(&mut self, name: &str, addrs: &[(Ipv4Addr, u32)], now: Duration) -> bool {
        if addrs.is_empty() {
            return false;
        }
        if !self.names.contains_key(name) && self.names.len() >= MAX_LEARNED_NAMES {
            self.refused += 1;
            return false;
        }
        let known = self.names.entry(name.to_string()).or_default();
        let mut changed = false;
        for &(ip, ttl) in addrs {
            let until = now + Duration::from_secs(u64::from(ttl));
            match known.get_mut(&ip) {
                Some(e) => *e = (*e).max(until),
                None => {
                    known.insert(ip, until);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Drops the addresses whose expiry is at or before `now`; true when any was dropped.
    pub fn expire(&mut self, now: Duration) -> bool {
        let mut changed = false;
        for ips in self.names.values_mut() {
            let before = ips.len();
            ips.retain(|_, until| *until > now);
            changed |= ips.len() != before;
        }
        self.names.retain(|_, ips| !ips.is_empty());
        changed
    }

    /// The earliest expiry, if anything is cached.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.names
            .values()
            .flat_map(|ips| ips.values())
            .min()
            .copied()
    }

    /// The current addresses by name (what [`Model::fqdn_learned`] holds).
    pub fn learned(&self) -> BTreeMap<String, BTreeSet<Ipv4Addr>> {
        self.names
            .iter()
            .map(|(n, ips)| (n.clone(), ips.keys().copied().collect()))
            .collect()
    }
}

/// Counters of the DNS packet-in path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FqdnCounters {
    /// DNS packet-ins handled.
    pub packet_ins: u64,
    /// Resumes sent.
    pub resumes: u64,
    /// Intercepted packets that were not a parsable DNS response (resumed at once).
    pub parse_failures: u64,
    /// Responses whose name matched a selector and changed the learned addresses.
    pub learned: u64,
    /// Addresses dropped on expiry (counted per expiry pass that changed something).
    pub expiries: u64,
}

/// What to do with an intercepted packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Resume it now: nothing to install.
    ResumeNow,
    /// Install the rules for the newly learned addresses, then resume it.
    ResumeAfterSync,
}

/// The agent's FQDN state: the cache, the paused packets waiting for a sync, the counters.
#[derive(Debug, Default)]
pub struct Fqdn {
    /// Learned addresses.
    pub cache: FqdnCache,
    /// Packet-ins paused until the next committed sync, with when each arrived.
    pub waiting: Vec<(PacketIn, Duration)>,
    /// Set when the learned addresses changed since the last sync.
    pub dirty: bool,
    /// Counters.
    pub counters: FqdnCounters,
}

impl Fqdn {
    /// Handles one DNS packet-in at `now`. `Err` carries the parse error (resume at once).
    pub fn handle(
        &mut self,
        pi: &PacketIn,
        selectors: &BTreeSet<String>,
        now: Duration,
    ) -> Result<(Verdict, Option<DnsResponse>), FqdnError> {
        self.counters.packet_ins += 1;
        let r = match response_in_frame(&pi.data) {
            Ok(r) => r,
            Err(FqdnError::NotDns) => return Ok((Verdict::ResumeNow, None)),
            Err(e) => {
                self.counters.parse_failures += 1;
                return Err(e);
            }
        };
        let matched = selectors.iter().any(|s| selector_matches(s, &r.name));
        if matched && self.cache.learn(&r.name, &r.addrs, now) {
            self.counters.learned += 1;
            self.dirty = true;
            return Ok((Verdict::ResumeAfterSync, Some(r)));
        }
        Ok((Verdict::ResumeNow, Some(r)))
    }

    /// Expires addresses at `now`; marks the state dirty when some went.
    pub fn tick(&mut self, now: Duration) {
        if self.cache.expire(now) {
            self.counters.expiries += 1;
            self.dirty = true;
        }
    }

    /// True when the flows must be recomputed (new or expired addresses).
    pub fn needs_sync(&self) -> bool {
        self.dirty
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn wildcards_as_antrea() {
        for n in [
            "foobar.com",
            "www.foobar.com",
            "a.b.foobar.com",
            "xfoobar.com",
        ] {
            assert!(selector_matches("*foobar.com", n), "{n}");
        }
        for n in ["foobar.co", "foobar.com.evil", "evil.com", "foobarxcom"] {
            assert!(!selector_matches("*foobar.com", n), "{n}");
        }
        assert!(selector_matches("WWW.FooBar.com", "www.foobar.com"));
        assert!(selector_matches("www.foobar.com.", "www.foobar.com"));
        assert!(!selector_matches("www.foobar.com", "a.www.foobar.com"));
        assert!(selector_matches("*", ""));
        assert!(selector_matches("a*b*c", "axxbyyc"));
        assert!(!selector_matches("a*b*c", "axxbyy"));
    }

    #[test]
    fn addresses_expire_on_their_own_ttl() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let mut c = FqdnCache::default();
        assert!(c.learn("x.com", &[(a, 5)], s(100)));
        // Same address again, shorter TTL: no change, the later expiry stays.
        assert!(!c.learn("x.com", &[(a, 1)], s(101)));
        // The answer changed to b: a is kept until its own expiry.
        assert!(c.learn("x.com", &[(b, 30)], s(102)));
        assert_eq!(c.next_expiry(), Some(s(105)));
        assert!(!c.expire(s(104)));
        assert!(c.expire(s(105)));
        assert_eq!(c.learned()["x.com"], BTreeSet::from([b]));
        assert!(c.expire(s(132)));
        assert!(c.learned().is_empty());
        assert_eq!(c.next_expiry(), None);
        // An answer without A records teaches nothing.
        assert!(!c.learn("x.com", &[], s(200)));
    }

    #[test]
    fn a_full_cache_refuses_new_names_but_refreshes_known_ones() {
        let mut c = FqdnCache::default();
        for i in 0..MAX_LEARNED_NAMES {
            assert!(c.learn(
                &format!("n{i}.x.com"),
                &[(Ipv4Addr::from(i as u32), 5)],
                s(0)
            ));
        }
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert!(!c.learn("one.too.many", &[(a, 5)], s(0)));
        assert_eq!(c.refused, 1);
        assert!(c.learn("n0.x.com", &[(a, 5)], s(0)));
        c.expire(s(5));
        assert!(c.learn("one.too.many", &[(a, 5)], s(5)));
    }

    #[test]
    fn refreshing_extends_expiry() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let mut c = FqdnCache::default();
        c.learn("x.com", &[(a, 5)], s(0));
        c.learn("x.com", &[(a, 5)], s(4));
        assert!(!c.expire(s(5)));
        assert!(c.expire(s(9)));
    }

    fn frame(proto: u8, sport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let l4_len = if proto == ip_proto::UDP { 8 } else { 20 };
        let total = 20 + l4_len + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            proto,
        ];
        ip.extend_from_slice(&[0, 0, 10, 10, 0, 4, 10, 10, 0, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0x9c, 0x40]);
        if proto == ip_proto::UDP {
            let ulen = (8 + payload.len()) as u16;
            f.extend_from_slice(&ulen.to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        } else {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        }
        f.extend_from_slice(payload);
        f
    }

    fn answer(name: &[u8], ip: [u8; 4], ttl: u32) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&[0, 4]);
        m.extend_from_slice(&ip);
        m
    }

    fn pin(data: Vec<u8>) -> PacketIn {
        let mut p = xvs_openflow::PacketIn {
            buffer_id: xvs_openflow::NO_BUFFER,
            total_len: data.len() as u32,
            reason: 0,
            table_id: t::AP_INGRESS,
            cookie: 0,
            metadata: Default::default(),
            data,
            userdata: vec![CATEGORY_DNS],
            continuation: vec![1],
        };
        p.total_len = p.data.len() as u32;
        p
    }

    #[test]
    fn packet_ins_learn_matching_names_only() {
        let sel = BTreeSet::from(["*foobar.com".to_string()]);
        let mut f = Fqdn::default();
        let www = answer(b"\x03www\x06foobar\x03com\x00", [10, 10, 0, 3], 5);
        let (v, r) = f
            .handle(&pin(frame(ip_proto::UDP, 53, &www)), &sel, s(1))
            .unwrap();
        assert_eq!(v, Verdict::ResumeAfterSync);
        assert_eq!(r.unwrap().name, "www.foobar.com");
        assert!(f.needs_sync());
        f.dirty = false;
        // Same answer again: nothing new to install.
        let (v, _) = f
            .handle(&pin(frame(ip_proto::UDP, 53, &www)), &sel, s(2))
            .unwrap();
        assert_eq!(v, Verdict::ResumeNow);
        // A name no selector matches.
        let evil = answer(b"\x04evil\x03com\x00", [10, 10, 0, 4], 5);
        let (v, _) = f
            .handle(&pin(frame(ip_proto::UDP, 53, &evil)), &sel, s(2))
            .unwrap();
        assert_eq!(v, Verdict::ResumeNow);
        // Over TCP, with the length prefix.
        let bar = answer(b"\x06foobar\x03com\x00", [10, 10, 0, 4], 5);
        let mut seg = (bar.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(&bar);
        let (v, _) = f
            .handle(&pin(frame(ip_proto::TCP, 53, &seg)), &sel, s(3))
            .unwrap();
        assert_eq!(v, Verdict::ResumeAfterSync);
        // A bare TCP ACK and a non-DNS source port: resumed, not failures.
        let (v, r) = f
            .handle(&pin(frame(ip_proto::TCP, 53, &[])), &sel, s(3))
            .unwrap();
        assert_eq!((v, r), (Verdict::ResumeNow, None));
        let (v, _) = f
            .handle(&pin(frame(ip_proto::UDP, 54, &www)), &sel, s(3))
            .unwrap();
        assert_eq!(v, Verdict::ResumeNow);
        // Garbage from port 53: a parse failure.
        assert!(f
            .handle(&pin(frame(ip_proto::UDP, 53, &[0xff; 5])), &sel, s(3))
            .is_err());
        assert_eq!(f.counters.parse_failures, 1);
        assert_eq!(f.counters.packet_ins, 7);
        assert_eq!(f.counters.learned, 2);
        let learned = f.cache.learned();
        assert_eq!(learned.len(), 2);
        // Expiry at 2 + 5 for www (refreshed at 2), 3 + 5 for foobar.com.
        f.dirty = false;
        f.tick(s(7));
        assert!(f.needs_sync());
        assert_eq!(f.cache.learned().keys().collect::<Vec<_>>(), ["foobar.com"]);
    }
}
