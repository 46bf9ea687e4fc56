//! FQDN egress rules (sans-IO; time is an argument): the DNS interception flows, the cache
//! of addresses learned from intercepted DNS responses, and the packet-in handling that feeds
//! it.
//!
//! Antrea's scheme: DNS responses to Pods selected by a rule with an `fqdn` peer are paused
//! in the switch (`controller(pause)`); the agent learns the answer's addresses, installs the
//! rules' `nw_dst=<ip>` flows, and only then resumes the response, so the Pod's first
//! connection after its lookup already meets the rule. Addresses stay until their own TTL
//! runs out (a newer answer without them does not remove them early); then the agent
//! re-queries the name itself and drops only the expired addresses the answer no longer
//! lists ([`FqdnCache`] has the rules).

use super::dns::{parse_response, parse_tcp_response, DnsError, DnsResponse};
use super::flows::{AGENT_CONTROLLER_ID, CONJ_BASE};
use super::resolve::InternalRule;
use super::types::Direction;
use crate::model::{Model, Pod};
use crate::pipeline::{t, Category, Desired};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
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

/// The DNS response in an intercepted frame (Ethernet + IPv4 + UDP or TCP from port 53),
/// and the server that sent it.
pub fn response_in_frame(frame: &[u8]) -> Result<(DnsResponse, SocketAddrV4), FqdnError> {
    let eth = ethernet::Packet::new_checked(frame).map_err(|_| FqdnError::NotDns)?;
    if eth.ethertype() != ethertype::IPV4 {
        return Err(FqdnError::NotDns);
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| FqdnError::NotDns)?;
    if ip.is_later_fragment() {
        return Err(FqdnError::NotDns);
    }
    let l4 = ip.payload();
    let src = Ipv4Addr::from(ip.src());
    let server = |port| SocketAddrV4::new(src, port);
    match ip.protocol() {
        ip_proto::UDP => {
            let u = udp::Packet::new_checked(l4).map_err(|_| FqdnError::NotDns)?;
            if u.src_port() != DNS_PORT {
                return Err(FqdnError::NotDns);
            }
            Ok((parse_response(u.payload())?, server(u.src_port())))
        }
        ip_proto::TCP => {
            let s = tcp::Packet::new_checked(l4).map_err(|_| FqdnError::NotDns)?;
            if s.src_port() != DNS_PORT || s.payload().is_empty() {
                // Handshake and bare ACKs of a DNS-over-TCP exchange.
                return Err(FqdnError::NotDns);
            }
            // Re-queries go over UDP to the same address and port.
            Ok((parse_tcp_response(s.payload())?, server(s.src_port())))
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

/// Names one wildcard selector tracks at most (Antrea's per-selector limit): past it the
/// selector forgets its least recently resolved name.
pub const MAX_NAMES_PER_SELECTOR: usize = 1024;
/// Names tracked at most among those no exact selector names (Antrea's total limit): past
/// it the least recently resolved one is forgotten. Names an exact selector lists are
/// never evicted (their number is bounded by the policies).
pub const MAX_WILDCARD_NAMES: usize = 10_000;
/// How long a re-query waits for its answer before it counts as failed.
pub const REQUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between failed re-queries (1 s, doubling, up to this).
pub const REQUERY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The shortest time between two re-queries of a name (an answer with TTL 0 would
/// otherwise be asked again at once, forever).
pub const MIN_REQUERY_INTERVAL: Duration = Duration::from_secs(1);

/// One tracked name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Learned addresses with their expiry.
    addrs: BTreeMap<Ipv4Addr, Duration>,
    /// The selectors tracking the name (lowercase).
    selectors: BTreeSet<String>,
    /// Recency stamp: the last resolution a Pod made (re-queries do not refresh it, so a
    /// name no Pod uses any more ages out).
    used: u64,
    /// The DNS server that last answered a Pod for it: where re-queries go.
    server: SocketAddrV4,
    /// When the next re-query is due (the earliest expiry, or a retry).
    requery_at: Duration,
    /// The re-query in flight: message id and when it was sent.
    in_flight: Option<(u16, Duration)>,
    /// Consecutive failed re-queries (drives the backoff).
    failures: u32,
}

impl Entry {
    fn exact(&self) -> bool {
        self.selectors.iter().any(|s| !s.contains('*'))
    }

    /// Merges an answer at `now`: new addresses are added, known ones keep the later
    /// expiry, absent ones stay until their own expiry and go once it has passed (as
    /// Antrea). True when the set of addresses changed.
    fn merge(&mut self, addrs: &[(Ipv4Addr, u32)], min_ttl: u32, now: Duration) -> bool {
        let mut changed = false;
        for &(ip, ttl) in addrs {
            let until = now + Duration::from_secs(u64::from(ttl.max(min_ttl)));
            match self.addrs.get_mut(&ip) {
                Some(e) => *e = (*e).max(until),
                None => {
                    self.addrs.insert(ip, until);
                    changed = true;
                }
            }
        }
        let before = self.addrs.len();
        self.addrs
            .retain(|ip, until| *until > now || addrs.iter().any(|(a, _)| a == ip));
        changed |= self.addrs.len() != before;
        self.schedule(now);
        changed
    }

    /// The next re-query: at the earliest expiry, not sooner than the minimum interval.
    fn schedule(&mut self, now: Duration) {
        let earliest = self.addrs.values().min().copied().unwrap_or(now);
        self.requery_at = earliest.max(now + MIN_REQUERY_INTERVAL);
    }
}

/// A re-query the agent must send: an A query for `name` with message id `id` to `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requery {
    /// The name.
    pub name: String,
    /// The DNS server that answered the Pod.
    pub server: SocketAddrV4,
    /// The message id its answer must carry.
    pub id: u16,
}

/// Counters of the cache (logged by the agent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Names a wildcard selector forgot because it tracked more than
    /// [`MAX_NAMES_PER_SELECTOR`].
    pub evicted_per_selector: u64,
    /// Names forgotten because more than [`MAX_WILDCARD_NAMES`] were tracked.
    pub evicted_total: u64,
    /// Re-queries handed out.
    pub requeries: u64,
    /// Re-queries without an answer within [`REQUERY_TIMEOUT`].
    pub requery_timeouts: u64,
    /// Re-query answers applied.
    pub requery_answers: u64,
    /// Answers that matched no re-query in flight (late, or not ours).
    pub stray_answers: u64,
    /// AAAA records seen in learned answers and not installed (the pipeline is IPv4-only).
    pub ipv6_ignored: u64,
}

/// The names FQDN selectors track, with their learned addresses (time is an argument:
/// since an arbitrary origin).
///
/// Rules, after Antrea's FQDN controller:
/// * an address expires at answer time + max(TTL, the minimum TTL); a newer answer without
///   it leaves it until then, an answer with it keeps the later expiry;
/// * addresses are not dropped by the clock alone: at the earliest expiry the agent
///   re-queries the name ([`FqdnCache::due`]) at the server that answered the Pod, and the
///   answer ([`FqdnCache::answer`]) drops the expired addresses it no longer lists, so a
///   long connection keeps its allow while the name still resolves to its address; a
///   re-query without answer is retried (1 s doubling to 60 s) and keeps the addresses;
/// * eviction, by least recent Pod-initiated resolution: a wildcard selector tracks at most
///   [`MAX_NAMES_PER_SELECTOR`] names, and at most [`MAX_WILDCARD_NAMES`] names are tracked
///   that no exact selector names; a name no selector tracks any more is forgotten.
#[derive(Debug, Clone)]
pub struct FqdnCache {
    names: BTreeMap<String, Entry>,
    /// Per wildcard selector, its names by recency stamp (oldest first).
    by_selector: BTreeMap<String, BTreeMap<u64, String>>,
    /// Names without an exact selector, by recency stamp (oldest first).
    wildcard_order: BTreeMap<u64, String>,
    /// The selectors of the policies, as last given to [`FqdnCache::set_selectors`].
    known: BTreeSet<String>,
    /// Seconds every TTL is raised to (Antrea's `fqdnCacheMinTTL`, default 0).
    pub min_ttl: u32,
    max_per_selector: usize,
    max_wildcard: usize,
    stamp: u64,
    next_id: u16,
    /// No re-query is due and no re-query times out before this: [`FqdnCache::due`] skips
    /// its scan until then (the agent calls it between packet-ins).
    next_check: Duration,
    /// Counters.
    pub counters: CacheCounters,
}

impl Default for FqdnCache {
    fn default() -> Self {
        Self::new(0)
    }
}

impl FqdnCache {
    /// An empty cache with Antrea's limits and minimum TTL `min_ttl` seconds.
    pub fn new(min_ttl: u32) -> Self {
        Self::with_limits(min_ttl, MAX_NAMES_PER_SELECTOR, MAX_WILDCARD_NAMES)
    }

    /// An empty cache with other limits (tests).
    pub fn with_limits(min_ttl: u32, per_selector: usize, total: usize) -> Self {
        FqdnCache {
            names: BTreeMap::new(),
            by_selector: BTreeMap::new(),
            wildcard_order: BTreeMap::new(),
            known: BTreeSet::new(),
            min_ttl,
            max_per_selector: per_selector,
            max_wildcard: total,
            stamp: 0,
            next_id: 0,
            next_check: Duration::ZERO,
            counters: CacheCounters::default(),
        }
    }

    fn unindex(&mut self, name: &str) {
        let Some(e) = self.names.get(name) else {
            return;
        };
        for s in &e.selectors {
            if let Some(order) = self.by_selector.get_mut(s) {
                order.remove(&e.used);
                if order.is_empty() {
                    self.by_selector.remove(s);
                }
            }
        }
        self.wildcard_order.remove(&e.used);
    }

    fn index(&mut self, name: &str) {
        let Some(e) = self.names.get(name) else {
            return;
        };
        for s in e.selectors.iter().filter(|s| s.contains('*')) {
            self.by_selector
                .entry(s.clone())
                .or_default()
                .insert(e.used, name.to_string());
        }
        if !e.exact() {
            self.wildcard_order.insert(e.used, name.to_string());
        }
    }

    /// `selector` stops tracking `name`; the name goes when nothing tracks it.
    fn untrack(&mut self, name: &str, selector: &str) {
        self.unindex(name);
        let Some(e) = self.names.get_mut(name) else {
            return;
        };
        e.selectors.remove(selector);
        if e.selectors.is_empty() {
            self.names.remove(name);
        } else {
            self.index(name);
        }
    }

    fn remove(&mut self, name: &str) {
        self.unindex(name);
        self.names.remove(name);
    }

    /// Evicts past the limits; true when a name went.
    fn enforce_limits(&mut self, touched: &BTreeSet<String>) -> bool {
        let mut changed = false;
        for s in touched.iter().filter(|s| s.contains('*')) {
            while let Some(victim) = self
                .by_selector
                .get(s)
                .filter(|o| o.len() > self.max_per_selector)
                .and_then(|o| o.values().next().cloned())
            {
                self.untrack(&victim, s);
                self.counters.evicted_per_selector += 1;
                changed = true;
            }
        }
        while self.wildcard_order.len() > self.max_wildcard {
            let Some(victim) = self.wildcard_order.values().next().cloned() else {
                break;
            };
            self.remove(&victim);
            self.counters.evicted_total += 1;
            changed = true;
        }
        changed
    }

    /// Follows the policies' selectors (lowercase): a selector gone stops tracking its
    /// names, a new wildcard selector tracks the names it matches already known (up to its
    /// limit, without refreshing their recency: adding a policy is not a use). True when
    /// the learned addresses changed.
    pub fn set_selectors(&mut self, selectors: &BTreeSet<String>) -> bool {
        if *selectors == self.known {
            return false;
        }
        let before = self.learned();
        let gone: Vec<String> = self.known.difference(selectors).cloned().collect();
        let added: Vec<String> = selectors.difference(&self.known).cloned().collect();
        self.known = selectors.clone();
        for s in &gone {
            let names: Vec<String> = self
                .names
                .iter()
                .filter(|(_, e)| e.selectors.contains(s))
                .map(|(n, _)| n.clone())
                .collect();
            for n in names {
                self.untrack(&n, s);
            }
        }
        for s in &added {
            let names: Vec<String> = self
                .names
                .keys()
                .filter(|n| selector_matches(s, n))
                .cloned()
                .collect();
            for n in names {
                if s.contains('*')
                    && self.by_selector.get(s).map_or(0, |o| o.len()) >= self.max_per_selector
                {
                    break;
                }
                self.unindex(&n);
                if let Some(e) = self.names.get_mut(&n) {
                    e.selectors.insert(s.clone());
                }
                self.index(&n);
            }
        }
        self.learned() != before
    }

    /// A Pod's lookup of `name`, answered by `server` with `addrs` at `now`, for the
    /// selectors (lowercase) that match the name. The name becomes the most recently used
    /// one and is re-queried at its earliest expiry; past the limits the least recently
    /// used names are evicted. True when the learned addresses changed (the flows must
    /// follow). An answer without addresses teaches nothing (as Antrea).
    pub fn learn(
        &mut self,
        name: &str,
        selectors: &BTreeSet<String>,
        addrs: &[(Ipv4Addr, u32)],
        server: SocketAddrV4,
        now: Duration,
    ) -> bool {
        if addrs.is_empty() || selectors.is_empty() {
            return false;
        }
        self.stamp += 1;
        let stamp = self.stamp;
        self.unindex(name);
        let min_ttl = self.min_ttl;
        let e = self.names.entry(name.to_string()).or_insert_with(|| Entry {
            addrs: BTreeMap::new(),
            selectors: BTreeSet::new(),
            used: stamp,
            server,
            requery_at: now,
            in_flight: None,
            failures: 0,
        });
        e.selectors.extend(selectors.iter().cloned());
        e.used = stamp;
        e.server = server;
        let mut changed = e.merge(addrs, min_ttl, now);
        self.next_check = self.next_check.min(e.requery_at);
        self.index(name);
        changed |= self.enforce_limits(selectors);
        changed
    }

    /// The re-queries due at `now` (each name at most one in flight); re-queries
    /// unanswered for [`REQUERY_TIMEOUT`] count as failed and are retried after a backoff.
    pub fn due(&mut self, now: Duration) -> Vec<Requery> {
        let mut out = Vec::new();
        if now < self.next_check {
            return out;
        }
        let mut next_check = Duration::MAX;
        for (name, e) in &mut self.names {
            if let Some((_, sent)) = e.in_flight {
                if now < sent + REQUERY_TIMEOUT {
                    next_check = next_check.min(sent + REQUERY_TIMEOUT);
                    continue;
                }
                e.in_flight = None;
                e.failures = e.failures.saturating_add(1);
                let backoff = Duration::from_secs(1u64 << e.failures.min(7).saturating_sub(1));
                e.requery_at = now + backoff.min(REQUERY_BACKOFF_MAX);
                self.counters.requery_timeouts += 1;
                next_check = next_check.min(e.requery_at);
                continue;
            }
            if e.requery_at <= now {
                self.next_id = self.next_id.wrapping_add(1);
                e.in_flight = Some((self.next_id, now));
                self.counters.requeries += 1;
                next_check = next_check.min(now + REQUERY_TIMEOUT);
                out.push(Requery {
                    name: name.clone(),
                    server: e.server,
                    id: self.next_id,
                });
            } else {
                next_check = next_check.min(e.requery_at);
            }
        }
        self.next_check = next_check;
        out
    }

    /// The answer to a re-query at `now`: merged like a Pod's answer but without refreshing
    /// the name's recency; an answer without addresses (the name stopped resolving) drops
    /// the expired ones, and a name left without addresses is forgotten. True when the
    /// learned addresses changed.
    pub fn answer(&mut self, r: &DnsResponse, now: Duration) -> bool {
        let min_ttl = self.min_ttl;
        let Some(e) = self
            .names
            .get_mut(&r.name)
            .filter(|e| e.in_flight.is_some_and(|(id, _)| id == r.id))
        else {
            self.counters.stray_answers += 1;
            return false;
        };
        e.in_flight = None;
        e.failures = 0;
        self.counters.requery_answers += 1;
        let changed = e.merge(&r.addrs, min_ttl, now);
        self.next_check = self.next_check.min(e.requery_at);
        if e.addrs.is_empty() {
            let name = r.name.clone();
            self.remove(&name);
        }
        changed
    }

    /// The earliest re-query due, if anything is tracked.
    pub fn next_requery(&self) -> Option<Duration> {
        self.names.values().map(|e| e.requery_at).min()
    }

    /// True when `selector` tracks `name`.
    pub fn tracks(&self, selector: &str, name: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|e| e.selectors.contains(selector))
    }

    /// Number of tracked names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no name is tracked.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The current addresses by name (what [`Model::fqdn_learned`] holds).
    pub fn learned(&self) -> BTreeMap<String, BTreeSet<Ipv4Addr>> {
        self.names
            .iter()
            .filter(|(_, e)| !e.addrs.is_empty())
            .map(|(n, e)| (n.clone(), e.addrs.keys().copied().collect()))
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
    /// Re-query answers (or selector changes) that changed the learned addresses.
    pub refreshed: u64,
    /// Re-query answers that did not parse.
    pub requery_parse_failures: u64,
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
    /// Empty state with Antrea's limits and minimum TTL `min_ttl` seconds.
    pub fn new(min_ttl: u32) -> Self {
        Fqdn {
            cache: FqdnCache::new(min_ttl),
            ..Default::default()
        }
    }

    /// Follows the policies' selectors (see [`FqdnCache::set_selectors`]).
    pub fn set_selectors(&mut self, selectors: &BTreeSet<String>) {
        if self.cache.set_selectors(selectors) {
            self.counters.refreshed += 1;
            self.dirty = true;
        }
    }

    /// Handles one DNS packet-in at `now`. `Err` carries the parse error (resume at once).
    pub fn handle(
        &mut self,
        pi: &PacketIn,
        selectors: &BTreeSet<String>,
        now: Duration,
    ) -> Result<(Verdict, Option<DnsResponse>), FqdnError> {
        self.counters.packet_ins += 1;
        self.set_selectors(selectors);
        let (r, server) = match response_in_frame(&pi.data) {
            Ok(r) => r,
            Err(FqdnError::NotDns) => return Ok((Verdict::ResumeNow, None)),
            Err(e) => {
                self.counters.parse_failures += 1;
                return Err(e);
            }
        };
        let matched: BTreeSet<String> = selectors
            .iter()
            .filter(|s| selector_matches(s, &r.name))
            .cloned()
            .collect();
        if !matched.is_empty() {
            self.cache.counters.ipv6_ignored += r.addrs6.len() as u64;
        }
        if self.cache.learn(&r.name, &matched, &r.addrs, server, now) {
            self.counters.learned += 1;
            self.dirty = true;
            return Ok((Verdict::ResumeAfterSync, Some(r)));
        }
        // Nothing new, but a sync may be pending (an eviction, an earlier answer): the
        // caller keeps the packet until it is in.
        Ok((Verdict::ResumeNow, Some(r)))
    }

    /// The re-queries to send at `now` (see [`FqdnCache::due`]).
    pub fn requeries(&mut self, now: Duration) -> Vec<Requery> {
        self.cache.due(now)
    }

    /// A datagram received on the re-query socket at `now`; marks the state dirty when the
    /// learned addresses changed.
    pub fn requery_answer(&mut self, payload: &[u8], now: Duration) -> Result<(), FqdnError> {
        let r = parse_response(payload).inspect_err(|_| {
            self.counters.requery_parse_failures += 1;
        })?;
        if self.cache.answer(&r, now) {
            self.counters.refreshed += 1;
            self.dirty = true;
        }
        Ok(())
    }

    /// True when the flows must be recomputed (new or dropped addresses).
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

    const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 10, 0, 4), 53);

    fn sels(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn reply(id: u16, name: &str, addrs: &[(Ipv4Addr, u32)]) -> DnsResponse {
        DnsResponse {
            id,
            name: name.into(),
            addrs: addrs.to_vec(),
            addrs6: vec![],
            partial: false,
        }
    }

    fn addrs_of(c: &FqdnCache, name: &str) -> Vec<Ipv4Addr> {
        c.learned()
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    #[test]
    fn pod_answers_merge_per_address_expiry() {
        let sel = sels(&["x.com"]);
        let mut c = FqdnCache::new(0);
        assert!(c.learn("x.com", &sel, &[(ip(1), 5)], SERVER, s(100)));
        // Same address again, shorter TTL: no change, the later expiry stays.
        assert!(!c.learn("x.com", &sel, &[(ip(1), 1)], SERVER, s(101)));
        // The answer changed to .2: .1 stays until its own expiry (105).
        assert!(c.learn("x.com", &sel, &[(ip(2), 30)], SERVER, s(102)));
        assert_eq!(addrs_of(&c, "x.com"), [ip(1), ip(2)]);
        assert_eq!(c.next_requery(), Some(s(105)));
        // A Pod answer after .1 expired, without it, drops it.
        assert!(c.learn("x.com", &sel, &[(ip(2), 30)], SERVER, s(106)));
        assert_eq!(addrs_of(&c, "x.com"), [ip(2)]);
        // Without addresses, or for no selector, an answer teaches nothing.
        assert!(!c.learn("x.com", &sel, &[], SERVER, s(107)));
        assert!(!c.learn("y.com", &sels(&[]), &[(ip(3), 5)], SERVER, s(107)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_clock_alone_drops_nothing_the_requery_answer_does() {
        let sel = sels(&["*foobar.com"]);
        let mut c = FqdnCache::new(0);
        c.learn(
            "www.foobar.com",
            &sel,
            &[(ip(1), 5), (ip(2), 50)],
            SERVER,
            s(0),
        );
        assert!(c.due(s(4)).is_empty());
        // At the earliest expiry the name is re-queried at the server the Pod used.
        let q = c.due(s(5));
        assert_eq!(q.len(), 1);
        assert_eq!(
            (q[0].name.as_str(), q[0].server),
            ("www.foobar.com", SERVER)
        );
        // While it is in flight the addresses stay, and it is not asked twice.
        assert!(c.due(s(6)).is_empty());
        assert_eq!(addrs_of(&c, "www.foobar.com"), [ip(1), ip(2)]);
        // An answer with a wrong id is not ours.
        assert!(!c.answer(&reply(q[0].id.wrapping_add(1), "www.foobar.com", &[]), s(6)));
        assert_eq!(c.counters.stray_answers, 1);
        // The answer lists .1 again (kept, new expiry) and .3 (added); .2 is unexpired.
        assert!(c.answer(
            &reply(q[0].id, "www.foobar.com", &[(ip(1), 5), (ip(3), 5)]),
            s(6)
        ));
        assert_eq!(addrs_of(&c, "www.foobar.com"), [ip(1), ip(2), ip(3)]);
        assert_eq!(c.next_requery(), Some(s(11)));
        // Next answer lists only .3: .1 (expired at 11) goes, .2 (until 50) stays.
        let q = c.due(s(11));
        assert!(c.answer(&reply(q[0].id, "www.foobar.com", &[(ip(3), 60)]), s(11)));
        assert_eq!(addrs_of(&c, "www.foobar.com"), [ip(2), ip(3)]);
        // A re-query does not refresh recency (only Pods' lookups do).
        assert_eq!(c.counters.requery_answers, 2);
    }

    #[test]
    fn an_empty_requery_answer_drops_expired_addresses_and_then_the_name() {
        let sel = sels(&["x.com"]);
        let mut c = FqdnCache::new(0);
        c.learn("x.com", &sel, &[(ip(1), 5), (ip(2), 9)], SERVER, s(0));
        let q = c.due(s(5));
        assert!(c.answer(&reply(q[0].id, "x.com", &[]), s(5)));
        assert_eq!(addrs_of(&c, "x.com"), [ip(2)]);
        let q = c.due(s(9));
        assert!(c.answer(&reply(q[0].id, "x.com", &[]), s(9)));
        assert!(c.is_empty());
        assert_eq!(c.next_requery(), None);
    }

    #[test]
    fn unanswered_requeries_back_off_and_keep_the_addresses() {
        let sel = sels(&["x.com"]);
        let mut c = FqdnCache::new(0);
        c.learn("x.com", &sel, &[(ip(1), 5)], SERVER, s(0));
        assert_eq!(c.due(s(5)).len(), 1);
        // Timed out at 7: retried 1 s later, then 2 s, 4 s... up to 60 s.
        assert!(c.due(s(7)).is_empty());
        assert_eq!(c.counters.requery_timeouts, 1);
        assert_eq!(c.next_requery(), Some(s(8)));
        let mut t = s(8);
        let mut waits = Vec::new();
        for _ in 0..9 {
            assert_eq!(c.due(t).len(), 1, "at {t:?}");
            c.due(t + REQUERY_TIMEOUT);
            let next = c.next_requery().unwrap();
            waits.push((next - (t + REQUERY_TIMEOUT)).as_secs());
            t = next;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert!(waits
            .iter()
            .all(|&w| Duration::from_secs(w) <= REQUERY_BACKOFF_MAX));
        assert_eq!(addrs_of(&c, "x.com"), [ip(1)]);
        // An answer resets the backoff.
        let q = c.due(t);
        c.answer(&reply(q[0].id, "x.com", &[(ip(1), 5)]), t);
        assert_eq!(c.next_requery(), Some(t + s(5)));
    }

    #[test]
    fn the_due_scan_is_skipped_until_something_can_be_due() {
        let sel = sels(&["*.com"]);
        let mut c = FqdnCache::new(0);
        c.learn("late.com", &sel, &[(ip(1), 100)], SERVER, s(0));
        assert!(c.due(s(1)).is_empty());
        // Learned after the scan, due before what the scan saw: still asked in time.
        c.learn("soon.com", &sel, &[(ip(2), 10)], SERVER, s(2));
        assert!(c.due(s(11)).is_empty());
        let q = c.due(s(12));
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].name, "soon.com");
        // Its answer (TTL 3) schedules the next one at 15, before late.com's 100.
        c.answer(&reply(q[0].id, "soon.com", &[(ip(2), 3)]), s(12));
        assert!(c.due(s(14)).is_empty());
        assert_eq!(c.due(s(15)).len(), 1);
        // An unanswered query is timed out on time too.
        assert!(c.due(s(16)).is_empty());
        c.due(s(17));
        assert_eq!(c.counters.requery_timeouts, 1);
        assert_eq!(c.due(s(100)).len(), 2);
    }

    #[test]
    fn min_ttl_raises_short_ttls_and_ttl_zero_is_not_asked_in_a_loop() {
        let sel = sels(&["x.com"]);
        let mut c = FqdnCache::new(30);
        c.learn("x.com", &sel, &[(ip(1), 5), (ip(2), 60)], SERVER, s(0));
        assert_eq!(c.next_requery(), Some(s(30)));
        let mut c = FqdnCache::new(0);
        c.learn("x.com", &sel, &[(ip(1), 0)], SERVER, s(0));
        assert_eq!(c.next_requery(), Some(MIN_REQUERY_INTERVAL));
        assert!(c.due(s(0)).is_empty());
    }

    #[test]
    fn a_wildcard_selector_evicts_its_least_recently_resolved_name() {
        let w = sels(&["*.x.com"]);
        let mut c = FqdnCache::with_limits(0, 3, 100);
        for (i, n) in ["a.x.com", "b.x.com", "c.x.com"].iter().enumerate() {
            c.learn(n, &w, &[(ip(i as u8 + 1), 60)], SERVER, s(i as u64));
        }
        // a is resolved again by a Pod: b is now the least recently used.
        assert!(!c.learn("a.x.com", &w, &[(ip(1), 60)], SERVER, s(3)));
        // A re-query answer does not count as a use.
        let q = c.due(s(61));
        for r in &q {
            c.answer(&reply(r.id, &r.name, &[(ip(9), 60)]), s(61));
        }
        assert!(c.learn("d.x.com", &w, &[(ip(4), 60)], SERVER, s(62)));
        assert!(!c.tracks("*.x.com", "b.x.com"));
        assert!(c.tracks("*.x.com", "a.x.com"));
        assert_eq!(c.counters.evicted_per_selector, 1);
        assert!(!c.learned().contains_key("b.x.com"));
        // A name another selector also tracks stays, for that selector.
        let both = sels(&["*.x.com", "*x.com"]);
        c.learn("e.x.com", &both, &[(ip(5), 60)], SERVER, s(63));
        assert!(!c.tracks("*.x.com", "c.x.com"));
        c.learn("f.x.com", &w, &[(ip(6), 60)], SERVER, s(64));
        c.learn("g.x.com", &w, &[(ip(7), 60)], SERVER, s(65));
        c.learn("h.x.com", &w, &[(ip(8), 60)], SERVER, s(66));
        assert!(!c.tracks("*.x.com", "e.x.com"));
        assert!(c.tracks("*x.com", "e.x.com"));
        assert!(c.learned().contains_key("e.x.com"));
    }

    #[test]
    fn the_total_limit_evicts_the_least_recently_resolved_and_spares_exact_names() {
        let w = sels(&["*"]);
        let mut c = FqdnCache::with_limits(0, 1000, 2);
        let exact = sels(&["keep.com", "*"]);
        c.learn("keep.com", &exact, &[(ip(1), 60)], SERVER, s(0));
        c.learn("a.com", &w, &[(ip(2), 60)], SERVER, s(1));
        c.learn("b.com", &w, &[(ip(3), 60)], SERVER, s(2));
        c.learn("a.com", &w, &[(ip(2), 60)], SERVER, s(3));
        assert!(c.learn("c.com", &w, &[(ip(4), 60)], SERVER, s(4)));
        let names: Vec<String> = c.learned().into_keys().collect();
        assert_eq!(names, ["a.com", "c.com", "keep.com"]);
        assert_eq!(c.counters.evicted_total, 1);
    }

    #[test]
    fn antreas_limits_hold_at_full_size() {
        let w = sels(&["*.big.com"]);
        let mut c = FqdnCache::new(0);
        for i in 0..MAX_NAMES_PER_SELECTOR + 10 {
            c.learn(
                &format!("n{i}.big.com"),
                &w,
                &[(Ipv4Addr::from(i as u32), 60)],
                SERVER,
                s(0),
            );
        }
        assert_eq!(c.len(), MAX_NAMES_PER_SELECTOR);
        assert!(!c.tracks("*.big.com", "n9.big.com"));
        assert!(c.tracks("*.big.com", "n10.big.com"));
        let mut c = FqdnCache::new(0);
        for i in 0..MAX_WILDCARD_NAMES + 5 {
            let sel = sels(&[&format!("*.s{}.com", i / 1000)]);
            c.learn(
                &format!("n{i}.s{}.com", i / 1000),
                &sel,
                &[(Ipv4Addr::from(i as u32), 60)],
                SERVER,
                s(0),
            );
        }
        assert_eq!(c.len(), MAX_WILDCARD_NAMES);
        assert_eq!(c.counters.evicted_total, 5);
        assert!(!c.learned().contains_key("n4.s0.com"));
        assert!(c.learned().contains_key("n5.s0.com"));
    }

    #[test]
    fn selectors_follow_the_policies() {
        let mut c = FqdnCache::new(0);
        assert!(!c.set_selectors(&sels(&["*.x.com", "a.x.com"])));
        c.learn(
            "a.x.com",
            &sels(&["*.x.com", "a.x.com"]),
            &[(ip(1), 60)],
            SERVER,
            s(0),
        );
        c.learn("b.x.com", &sels(&["*.x.com"]), &[(ip(2), 60)], SERVER, s(0));
        // The wildcard goes: b is forgotten, a stays for its exact selector.
        assert!(c.set_selectors(&sels(&["a.x.com"])));
        assert_eq!(c.learned().into_keys().collect::<Vec<_>>(), ["a.x.com"]);
        // A new wildcard picks up the known names it matches.
        assert!(!c.set_selectors(&sels(&["a.x.com", "*x.com"])));
        assert!(c.tracks("*x.com", "a.x.com"));
        // Nothing left: everything goes.
        assert!(c.set_selectors(&sels(&[])));
        assert!(c.is_empty());
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
        // Expiry at 2 + 5 for www (refreshed at 2), 3 + 5 for foobar.com: www is re-queried
        // at the server that answered the Pod (the frame's source, 10.10.0.4:53).
        f.dirty = false;
        let q = f.requeries(s(7));
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].server, SERVER);
        assert!(!f.needs_sync());
        // The name no longer resolves: its expired address goes.
        let mut nx = Vec::new();
        crate::anp::dns::build_query(q[0].id, &q[0].name, &mut nx).unwrap();
        nx[2] |= 0x80;
        f.requery_answer(&nx, s(7)).unwrap();
        assert!(f.needs_sync());
        assert_eq!(f.cache.learned().keys().collect::<Vec<_>>(), ["foobar.com"]);
        assert!(f.requery_answer(&[1, 2, 3], s(7)).is_err());
        assert_eq!(f.counters.requery_parse_failures, 1);
        // AAAA records of a matching answer are counted, not installed.
        let mut v6 = answer(b"\x02v6\x06foobar\x03com\x00", [10, 10, 0, 9], 5);
        v6[7] = 2;
        v6.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16]);
        v6.extend_from_slice(&[0xfd; 16]);
        f.handle(&pin(frame(ip_proto::UDP, 53, &v6)), &sel, s(8))
            .unwrap();
        assert_eq!(f.cache.counters.ipv6_ignored, 1);
        assert_eq!(
            f.cache.learned()["v6.foobar.com"],
            BTreeSet::from([Ipv4Addr::new(10, 10, 0, 9)])
        );
        // The policy goes: its names are forgotten.
        f.dirty = false;
        f.set_selectors(&BTreeSet::new());
        assert!(f.needs_sync());
        assert!(f.cache.learned().is_empty());
    }
}
