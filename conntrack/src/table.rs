//! The tracker: the connection table, `process` (the `ct()` action), limits, sweep, flush, dump.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use foldhash::fast::FixedState;
use papaya::Guard;

use crate::conn::{Conn, ConnHandle, ConnUpdate, MarkLabel, ProtoState, ICMP_FIRST, OTHER_FIRST};
use crate::ctl::{CtMatch, FlushArgs};
use crate::dump::CtEntry;
use crate::event::{CtEvent, CtEventKind, DestroyReason, EventRings};
use crate::nat::{find_reply, Claim, NatAction, NatFail, NatKind, NatRange};
use crate::state::CtState;
use crate::tcp::{self, TcpConn, TcpSegment};
use crate::timeout::{TimeoutTable, Timeouts, Tm};
use crate::tuple::{
    bits_addr, has_ports, icmp_valid_new, key_packet, proto, ConnKey, Keyed, Tuple,
};
use crate::CtError;

/// Tracker configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtConfig {
    /// Maximum number of connections (OVS `ct-set-maxconns`; default 3,000,000).
    pub max_conns: u32,
    /// Limit for zones without their own limit; 0 = unlimited (OVS default zone limit).
    pub default_zone_limit: u32,
    /// Global timeout policy.
    pub timeouts: Timeouts,
    /// TCP sequence/window checking (OVS `ct-enable-tcp-seq-chk`, default on).
    pub tcp_seq_check: bool,
    /// Table capacity reserved up front, in keys (two per connection); 0 = grow on demand.
    /// Both the hash table and the sweep lists are sized for `initial_capacity / 2`
    /// connections at creation (the pages are touched as connections arrive).
    pub initial_capacity: usize,
    /// Seed of the table hash and of NAT port selection. Pick a random one in the daemon; tests
    /// pick a fixed one for determinism.
    pub hash_seed: u64,
}

impl Default for CtConfig {
    fn default() -> Self {
        CtConfig {
            max_conns: 3_000_000,
            default_zone_limit: 0,
            timeouts: Timeouts::default(),
            tcp_seq_check: true,
            initial_capacity: 0,
            hash_seed: 0x7876_735f_6374_0001,
        }
    }
}

/// The packet, as parsed by the caller (reassembled, headers validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtInput {
    /// The packet's tuple (for an ICMP error: the error's own addresses, type and code).
    pub tuple: Tuple,
    /// The TCP segment; required when `tuple.proto` is TCP.
    pub tcp: Option<TcpSegment>,
    /// For an ICMP/ICMPv6 error: the tuple of the embedded (offending) packet as it appears in
    /// the error (addresses and ports of the first 8 bytes of its transport header).
    pub icmp_error_inner: Option<Tuple>,
    /// The packet is an IP fragment. The tracker does not reassemble (OVS reassembles in `ipf`
    /// before conntrack); a fragment handed in is tracked as `+trk+inv`. Reassemble first.
    pub fragment: bool,
    /// The caller found the packet malformed (truncated header, bad L3/L4 checksum): tracked as
    /// `+trk+inv`, as OVS does.
    pub malformed: bool,
}

impl CtInput {
    /// A packet with this tuple and nothing else.
    pub fn new(tuple: Tuple) -> CtInput {
        CtInput {
            tuple,
            tcp: None,
            icmp_error_inner: None,
            fragment: false,
            malformed: false,
        }
    }

    /// A TCP packet.
    pub fn tcp(tuple: Tuple, seg: TcpSegment) -> CtInput {
        CtInput {
            tcp: Some(seg),
            ..CtInput::new(tuple)
        }
    }

    /// An ICMP error carrying `inner`.
    pub fn icmp_error(tuple: Tuple, inner: Tuple) -> CtInput {
        CtInput {
            icmp_error_inner: Some(inner),
            ..CtInput::new(tuple)
        }
    }
}

/// The `ct()` action's arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtAction {
    /// `zone=`.
    pub zone: u16,
    /// `commit`: create the connection when there is none, apply `mark`/`label`.
    pub commit: bool,
    /// `force`: a committed packet in the reply direction ends the old connection and starts a
    /// new one in its direction.
    pub force: bool,
    /// `nat` / `nat(src=...)` / `nat(dst=...)`.
    pub nat: Option<NatAction>,
    /// `exec(set_field:value/mask->ct_mark)`; applied only with `commit`.
    pub mark: Option<(u32, u32)>,
    /// `exec(set_field:value/mask->ct_label)`; applied only with `commit`.
    pub label: Option<(u128, u128)>,
}

impl CtAction {
    /// `ct(zone=zone)`.
    pub fn lookup(zone: u16) -> CtAction {
        CtAction {
            zone,
            ..CtAction::default()
        }
    }

    /// `ct(commit,zone=zone)`.
    pub fn commit(zone: u16) -> CtAction {
        CtAction {
            zone,
            commit: true,
            ..CtAction::default()
        }
    }

    /// Adds bare `nat`.
    pub fn with_nat(mut self) -> CtAction {
        self.nat = Some(NatAction::Existing);
        self
    }

    /// Adds `nat(src=...)`/`nat(dst=...)`.
    pub fn with_nat_range(mut self, r: NatRange) -> CtAction {
        self.nat = Some(NatAction::Translate(r));
        self
    }

    /// Adds `set_field:value/mask->ct_mark`.
    pub fn with_mark(mut self, value: u32, mask: u32) -> CtAction {
        self.mark = Some((value, mask));
        self
    }

    /// Adds `set_field:value/mask->ct_label`.
    pub fn with_label(mut self, value: u128, mask: u128) -> CtAction {
        self.label = Some((value, mask));
        self
    }
}

/// The connection-tracking metadata of a packet, read and written by every `ct()` (OVS
/// `pkt->md.ct_*`). Starts as `CtMeta::default()` for a packet fresh from a port; the caller
/// keeps it across recirculation and copies it into the flow key (`ct_state`, `ct_zone`,
/// `ct_mark`, `ct_label`, `ct_nw_*`/`ct_ipv6_*`/`ct_tp_*`/`ct_nw_proto` from `orig`).
#[derive(Clone, Debug, Default)]
pub struct CtMeta {
    /// `ct_state`.
    pub state: CtState,
    /// `ct_zone`.
    pub zone: u16,
    /// `ct_mark`.
    pub mark: u32,
    /// `ct_label`.
    pub label: u128,
    /// Original-direction tuple of the connection (of the packet itself when there is no
    /// connection); `None` when the packet could not be keyed.
    pub orig: Option<Tuple>,
    /// The connection, cached for the next `ct()` in the same zone (not set after a `ct()` with
    /// `nat`, as in OVS).
    pub conn: Option<ConnHandle>,
    related: bool,
}

impl CtMeta {
    /// `ct_clear`.
    pub fn clear(&mut self) {
        *self = CtMeta::default();
    }
}

/// How the packet must be rewritten after NAT. Fields that do not change are `None`.
///
/// For a TCP/UDP/SCTP packet the ports are transport ports; for an ICMP query the identifier
/// changes through `icmp_id`. For an ICMP error related to a NATed connection, `src`/`dst`
/// apply to the outer IP header and `inner` is the complete tuple the embedded header must carry
/// (addresses and ports); the caller fixes the ICMP checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// New source address.
    pub src: Option<IpAddr>,
    /// New destination address.
    pub dst: Option<IpAddr>,
    /// New transport source port.
    pub src_port: Option<u16>,
    /// New transport destination port.
    pub dst_port: Option<u16>,
    /// New ICMP query identifier.
    pub icmp_id: Option<u16>,
    /// New embedded tuple of an ICMP error.
    pub inner: Option<Tuple>,
}

/// Per-worker packet counters: the caller owns one per worker thread and sums them for display,
/// so the packet path never writes a shared cache line for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Packets handed to `process`.
    pub packets: u64,
    /// Packets that reused the cached connection (no table lookup).
    pub fast_path: u64,
    /// Table lookups.
    pub lookups: u64,
    /// Lookups that found a live connection.
    pub hits: u64,
    /// Packets given `+new`.
    pub new: u64,
    /// Packets given `+est`.
    pub established: u64,
    /// Packets given `+rel`.
    pub related: u64,
    /// Packets given `+inv`.
    pub invalid: u64,
    /// Fragments handed in (also counted in `invalid`).
    pub fragments: u64,
    /// Commits that created a connection.
    pub created: u64,
    /// Commits that could not create a connection (full, zone full, NAT exhausted, collision).
    pub commit_failed: u64,
}

impl CtStats {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &CtStats) {
        self.packets += o.packets;
        self.fast_path += o.fast_path;
        self.lookups += o.lookups;
        self.hits += o.hits;
        self.new += o.new;
        self.established += o.established;
        self.related += o.related;
        self.invalid += o.invalid;
        self.fragments += o.fragments;
        self.created += o.created;
        self.commit_failed += o.commit_failed;
    }
}

/// Tracker-wide event counters (rare events; shared atomics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtCounters {
    /// Connections created.
    pub created: u64,
    /// Connections removed by `sweep` after expiring.
    pub expired: u64,
    /// Connections removed by `flush`/`flush_tuple`.
    pub flushed: u64,
    /// Commits refused because the table held `max_conns` connections.
    pub full: u64,
    /// Commits refused because the zone reached its limit.
    pub zone_full: u64,
    /// Commits refused because NAT found no free tuple.
    pub nat_exhausted: u64,
    /// Commits refused because the NAT range is of the other address family.
    pub nat_family: u64,
    /// Commits refused because the reply tuple belongs to another connection (no NAT).
    pub collisions: u64,
    /// TCP connections ended by a new SYN after both sides closed.
    pub reopened: u64,
}

#[derive(Default)]
struct AtomicCounters {
    created: AtomicU64,
    expired: AtomicU64,
    flushed: AtomicU64,
    full: AtomicU64,
    zone_full: AtomicU64,
    nat_exhausted: AtomicU64,
    nat_family: AtomicU64,
    collisions: AtomicU64,
    reopened: AtomicU64,
}

fn bump(c: &AtomicU64) {
    // Relaxed: statistics only.
    c.fetch_add(1, Ordering::Relaxed);
}

/// Result of one `sweep` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Entries looked at (at most the budget).
    pub examined: usize,
    /// Connections removed because they expired.
    pub expired: usize,
    /// The sweep cursor wrapped around all lists during this call.
    pub pass_complete: bool,
}

/// A value in the map: the connection and which of its keys this is.
struct Entry {
    conn: Arc<Conn>,
    reply: bool,
}

struct Shard {
    conns: Vec<Arc<Conn>>,
    /// Where `sweep` resumes.
    pos: usize,
    /// Where the next creation looks for removed entries to drop (see `reap_removed`).
    reap: usize,
}

/// Entries a creation checks for removed connections in its own list, when the list is longer
/// than twice its share of the live connections plus `REAP_SLACK`. Below that nothing is
/// checked, so a commit touches no other connection's memory in the normal case.
const REAP_PER_CREATE: usize = 2;
const REAP_SLACK: usize = 16;

impl Shard {
    /// Drops up to `n` entries of connections already removed from the table (by a packet:
    /// reopen, force, an expired key reused; by `flush_tuple`), so that churn without sweeps
    /// cannot grow the list (and keep dead connections allocated) without bound: past the
    /// threshold each creation adds one entry and looks at two, which brings the list back.
    fn reap_removed(&mut self, n: usize) {
        for _ in 0..n {
            let len = self.conns.len();
            if len == 0 {
                return;
            }
            let i = self.reap % len;
            if self.conns[i].removed.load(Ordering::Acquire) {
                // The last entry moves to `i`; if `i` is behind the sweep cursor, that entry is
                // skipped by this sweep pass and seen by the next (lookups ignore expired
                // connections meanwhile).
                self.conns.swap_remove(i);
                self.reap = i;
            } else {
                self.reap = i + 1;
            }
        }
    }
}

const N_SHARDS: usize = 64;
const ZONE_LIMIT_UNSET: u32 = u32::MAX;

enum Created {
    New(Arc<Conn>),
    Existing(Arc<Conn>, bool),
    Failed,
}

/// The connection tracker. Share it between workers with `Arc<Conntrack>`.
///
/// # Thread safety
/// - The table is a `papaya` concurrent hash map holding both keys of every connection.
///   Lookups take no lock (epoch-based reclamation keeps an entry readable while a reader holds
///   its guard). Creation inserts the original key and then the reply key with `try_insert`, so
///   two workers creating the same connection cannot both succeed: the loser sees the winner's
///   entry and uses it; a NAT candidate tuple is claimed atomically by the insert itself.
/// - Per-connection state: see `Conn` (atomics, a seqlock for mark/label, a mutex for TCP).
/// - Removal (`sweep`, `flush`, expired entries met on the packet path) flips the connection's
///   `removed` flag once; the thread that flips it removes both keys and gives back the limits.
/// - Each connection is also on one of 64 sweep lists (a `Mutex` per list); creation locks one
///   list to append, `sweep` locks one list at a time, so creation never takes a global lock.
pub struct Conntrack {
    map: papaya::HashMap<ConnKey, Entry, FixedState>,
    shards: Box<[Mutex<Shard>]>,
    sweep_cursor: Mutex<usize>,
    n_conns: AtomicU32,
    max_conns: AtomicU32,
    zone_count: Box<[AtomicU32]>,
    zone_limit: Box<[AtomicU32]>,
    default_zone_limit: AtomicU32,
    timeouts: TimeoutTable,
    seq_check: AtomicBool,
    nat_hasher: FixedState,
    counters: AtomicCounters,
    events: OnceLock<EventRings>,
}

impl std::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conntrack")
            .field("conns", &self.conn_count())
            .field("max_conns", &self.max_conns.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic cannot happen while these locks are held (no panicking code inside), but never
    // propagate poisoning as a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Conntrack {
    /// A tracker with `config`.
    pub fn new(config: CtConfig) -> Conntrack {
        let map = papaya::HashMap::builder()
            .hasher(FixedState::with_seed(config.hash_seed))
            .capacity(config.initial_capacity)
            .build();
        Conntrack {
            map,
            shards: (0..N_SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        // Room for this list's share of the preallocated connections, so the
                        // lists do not reallocate (and copy) while the table fills.
                        conns: Vec::with_capacity(config.initial_capacity / 2 / N_SHARDS),
                        pos: 0,
                        reap: 0,
                    })
                })
                .collect(),
            sweep_cursor: Mutex::new(0),
            n_conns: AtomicU32::new(0),
            max_conns: AtomicU32::new(config.max_conns),
            zone_count: (0..=u16::MAX as usize).map(|_| AtomicU32::new(0)).collect(),
            zone_limit: (0..=u16::MAX as usize)
                .map(|_| AtomicU32::new(ZONE_LIMIT_UNSET))
                .collect(),
            default_zone_limit: AtomicU32::new(config.default_zone_limit),
            timeouts: TimeoutTable::new(config.timeouts),
            seq_check: AtomicBool::new(config.tcp_seq_check),
            nat_hasher: FixedState::with_seed(config.hash_seed ^ 0x6e61_745f_6861_7368),
            counters: AtomicCounters::default(),
            events: OnceLock::new(),
        }
    }

    // ----- configuration -----

    /// Sets the maximum number of connections (existing ones above it stay until they expire).
    pub fn set_max_conns(&self, n: u32) {
        self.max_conns.store(n, Ordering::Relaxed);
    }

    /// The maximum number of connections.
    pub fn max_conns(&self) -> u32 {
        self.max_conns.load(Ordering::Relaxed)
    }

    /// Sets `zone`'s limit (`Some(0)` = unlimited; `None` = use the default zone limit).
    pub fn set_zone_limit(&self, zone: u16, limit: Option<u32>) {
        let v = limit.map_or(ZONE_LIMIT_UNSET, |l| l.min(ZONE_LIMIT_UNSET - 1));
        self.zone_limit[usize::from(zone)].store(v, Ordering::Relaxed);
    }

    /// Sets the limit of zones without their own (0 = unlimited).
    pub fn set_default_zone_limit(&self, limit: u32) {
        self.default_zone_limit.store(limit, Ordering::Relaxed);
    }

    /// The limit in force for `zone` (0 = unlimited).
    pub fn zone_limit(&self, zone: u16) -> u32 {
        match self.zone_limit[usize::from(zone)].load(Ordering::Relaxed) {
            ZONE_LIMIT_UNSET => self.default_zone_limit.load(Ordering::Relaxed),
            l => l,
        }
    }

    /// Sets the global timeout policy (applies to existing connections at their next packet).
    pub fn set_timeouts(&self, t: Timeouts) {
        self.timeouts.set_global(t);
    }

    /// The global timeout policy.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts.global()
    }

    /// Gives `zone` its own timeout policy (OVS `CT_Timeout_Policy` on a zone).
    pub fn set_zone_timeouts(&self, zone: u16, t: Timeouts) -> Result<(), CtError> {
        self.timeouts.set_zone(zone, t)
    }

    /// Returns `zone` to the global policy.
    pub fn clear_zone_timeouts(&self, zone: u16) {
        self.timeouts.clear_zone(zone);
    }

    /// `zone`'s own policy, if any.
    pub fn zone_timeouts(&self, zone: u16) -> Option<Timeouts> {
        self.timeouts.zone(zone)
    }

    /// Turns TCP sequence checking on or off.
    pub fn set_tcp_seq_check(&self, on: bool) {
        self.seq_check.store(on, Ordering::Relaxed);
    }

    // ----- change events -----

    /// Turns on the change-event stream (connection new/destroy) with room for `capacity`
    /// events between two drains (preallocated, split over 64 rings). Returns false when the
    /// stream was already on (its capacity does not change). Events are dropped and counted
    /// ([`Conntrack::event_drops`]) when a ring is full or busy: the packet path never waits.
    pub fn enable_events(&self, capacity: usize) -> bool {
        let mut fresh = false;
        self.events.get_or_init(|| {
            fresh = true;
            EventRings::new(capacity)
        });
        fresh
    }

    /// Moves at most `max` queued events into `out`; returns how many. Events of one ring keep
    /// their order; across rings, order by [`CtEvent::at`].
    pub fn drain_events(&self, out: &mut Vec<CtEvent>, max: usize) -> usize {
        self.events.get().map_or(0, |e| e.drain(out, max))
    }

    /// Events dropped because their ring was full or busy.
    pub fn event_drops(&self) -> u64 {
        self.events.get().map_or(0, EventRings::dropped)
    }

    // ----- inspection -----

    /// Number of connections in the table (including expired ones not yet swept).
    pub fn conn_count(&self) -> u32 {
        self.n_conns.load(Ordering::Relaxed)
    }

    /// Number of connections of `zone`.
    pub fn zone_conn_count(&self, zone: u16) -> u32 {
        self.zone_count[usize::from(zone)].load(Ordering::Relaxed)
    }

    /// Tracker-wide counters.
    pub fn counters(&self) -> CtCounters {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CtCounters {
            created: l(&c.created),
            expired: l(&c.expired),
            flushed: l(&c.flushed),
            full: l(&c.full),
            zone_full: l(&c.zone_full),
            nat_exhausted: l(&c.nat_exhausted),
            nat_family: l(&c.nat_family),
            collisions: l(&c.collisions),
            reopened: l(&c.reopened),
        }
    }

    // ----- the ct() action -----

    /// Runs one packet through `ct(act)`: looks the connection up (one probe, either
    /// direction), updates its state, creates it on `commit`, applies or sets up NAT and writes
    /// the packet's `meta`. Returns how to rewrite the packet when NAT applies.
    ///
    /// `now` is the caller's clock in nanoseconds (any epoch, the same for every call).
    pub fn process(
        &self,
        now: u64,
        pkt: &CtInput,
        act: &CtAction,
        meta: &mut CtMeta,
        stats: &mut CtStats,
    ) -> Option<Rewrite> {
        stats.packets += 1;
        let zone = act.zone;
        // A ct() in another zone starts from a clean state (OVS process_one).
        if !meta.state.is_empty() && meta.zone != zone {
            meta.state = CtState::EMPTY;
        }
        if pkt.fragment || pkt.malformed {
            if pkt.fragment {
                stats.fragments += 1;
            }
            return self.write_untracked_invalid(meta, zone, stats);
        }

        let guard = self.map.guard();
        // Recirculated packet whose connection was matched by the previous ct() in this zone:
        // reuse the match without updating the connection again (OVS process_one_fast).
        if let Some(h) = meta.conn.take() {
            if h.key.zone == zone && !act.force {
                if let Some((c, _)) = self.lookup(&h.key, now, &guard) {
                    stats.fast_path += 1;
                    let mut rw = None;
                    if act.nat.is_some() {
                        let related = meta.related;
                        rw = self.handle_nat(c, meta, pkt, h.reply, related);
                    }
                    meta.zone = zone;
                    let (m, l) = if act.commit && (act.mark.is_some() || act.label.is_some()) {
                        c.ml.update(act.mark, act.label)
                    } else {
                        c.ml.read()
                    };
                    meta.mark = m;
                    meta.label = l;
                    if act.nat.is_none() {
                        meta.conn = Some(h);
                    }
                    return rw;
                }
            }
        }

        let (mut key, related) = match key_packet(zone, &pkt.tuple, pkt.icmp_error_inner.as_ref()) {
            Ok(Keyed::Own(k)) => (k, false),
            Ok(Keyed::Related(k)) => (k, true),
            Err(_) => return self.write_untracked_invalid(meta, zone, stats),
        };
        if !related && key.proto == proto::TCP && pkt.tcp.is_none() {
            return self.write_untracked_invalid(meta, zone, stats);
        }

        let natted = meta.state.intersects(CtState::SRC_NAT | CtState::DST_NAT);
        stats.lookups += 1;
        let mut found: Option<(&Arc<Conn>, bool)> = if natted {
            // Already translated in this zone: find it by the reverse of its new tuple.
            match self.lookup(&key.reverse(), now, &guard) {
                Some((c, r)) => {
                    let reply = !r;
                    key = c.key[usize::from(reply)];
                    Some((c, reply))
                }
                None => None,
            }
        } else {
            self.lookup(&key, now, &guard)
        };

        if act.force {
            if let Some((c, true)) = found {
                self.kill(c, &guard, DestroyReason::Forced, now);
                found = None;
            }
        }

        let mut holder: Option<Arc<Conn>> = None;
        let mut conn: Option<&Arc<Conn>> = None;
        let mut reply = false;
        let mut rw = None;
        let mut create = false;
        // `key` is `conn.key[reply]` on every path but the lookup by original tuple.
        let mut key_is_conn_key = true;
        match found {
            Some((c, r)) => {
                stats.hits += 1;
                reply = r;
                create = self.update_state(meta, c, r, related, pkt, now, stats, &guard);
                if !create {
                    conn = Some(c);
                    if act.nat.is_some() {
                        rw = self.handle_nat(c, meta, pkt, r, related);
                    }
                }
            }
            None => {
                let by_orig = if natted && act.nat.is_none() {
                    self.lookup_orig(meta, now, &guard)
                } else {
                    None
                };
                if let Some(c) = by_orig {
                    stats.hits += 1;
                    key_is_conn_key = false;
                    create = self.update_state(meta, c, false, related, pkt, now, stats, &guard);
                    if !create {
                        conn = Some(c);
                    }
                } else if related {
                    // An ICMP error about nothing we track.
                    meta.state = CtState::INVALID;
                    stats.invalid += 1;
                } else {
                    create = true;
                }
            }
        }

        if create {
            reply = false;
            let incoming = meta.state;
            let valid = match key.proto {
                proto::TCP => pkt.tcp.as_ref().is_some_and(tcp::valid_new),
                p if crate::tuple::is_icmp(p, key.v6) => icmp_valid_new(key.stype, key.v6),
                _ => true,
            };
            if !valid {
                meta.state = CtState::INVALID;
                stats.invalid += 1;
            } else {
                meta.state = CtState::NEW;
                stats.new += 1;
                if act.commit {
                    let range = match act.nat {
                        Some(NatAction::Translate(r)) => Some(r),
                        _ => None,
                    };
                    match self.create(now, &key, pkt, range.as_ref(), &guard) {
                        Created::New(c) => {
                            stats.created += 1;
                            let c = holder.insert(c);
                            if c.nat.is_some() {
                                rw = self.nat_packet(c, meta, pkt, false, false);
                            }
                            conn = Some(c);
                        }
                        Created::Existing(c, r) => {
                            // Another worker created it first: behave as if it had been found.
                            let c = holder.insert(c);
                            reply = r;
                            meta.state = incoming;
                            if !self.update_state(meta, c, r, false, pkt, now, stats, &guard) {
                                if act.nat.is_some() {
                                    rw = self.handle_nat(c, meta, pkt, r, false);
                                }
                                conn = Some(c);
                            }
                        }
                        Created::Failed => stats.commit_failed += 1,
                    }
                }
            }
        }

        // write_ct_md
        meta.state.insert(CtState::TRACKED);
        meta.zone = zone;
        match conn {
            Some(c) => {
                let (m, l) = if act.commit && (act.mark.is_some() || act.label.is_some()) {
                    c.ml.update(act.mark, act.label)
                } else {
                    c.ml.read()
                };
                meta.mark = m;
                meta.label = l;
                // The original key without reading the connection's key line when it is known:
                // the packet's own key in the original direction, its reverse for a reply of a
                // connection without NAT.
                let orig = if !reply && key_is_conn_key {
                    key
                } else if reply && key_is_conn_key && c.nat.is_none() {
                    key.reverse()
                } else {
                    c.key[0]
                };
                meta.orig = Some(orig.to_tuple());
            }
            None => {
                meta.mark = 0;
                meta.label = 0;
                meta.orig = Some(key.to_tuple());
            }
        }
        meta.conn = match (act.nat, conn) {
            (None, Some(c)) => Some(ConnHandle {
                key: c.key[usize::from(reply)],
                reply,
            }),
            _ => None,
        };
        meta.related = related;
        rw
    }

    fn write_untracked_invalid(
        &self,
        meta: &mut CtMeta,
        zone: u16,
        stats: &mut CtStats,
    ) -> Option<Rewrite> {
        stats.invalid += 1;
        meta.state = CtState::INVALID | CtState::TRACKED;
        meta.zone = zone;
        meta.mark = 0;
        meta.label = 0;
        meta.orig = None;
        meta.conn = None;
        meta.related = false;
        None
    }

    #[inline]
    fn lookup<'g>(
        &self,
        key: &ConnKey,
        now: u64,
        guard: &'g impl Guard,
    ) -> Option<(&'g Arc<Conn>, bool)> {
        let e = self.map.get(key, guard)?;
        e.conn.is_live(now).then_some((&e.conn, e.reply))
    }

    /// OVS `check_orig_tuple`: a translated packet whose reverse lookup missed is looked up by
    /// the original tuple recorded in its metadata.
    fn lookup_orig<'g>(
        &self,
        meta: &CtMeta,
        now: u64,
        guard: &'g impl Guard,
    ) -> Option<&'g Arc<Conn>> {
        let orig = meta.orig.as_ref()?;
        match key_packet(meta.zone, orig, None) {
            Ok(Keyed::Own(k)) => self.lookup(&k, now, guard).map(|(c, _)| c),
            _ => None,
        }
    }

    /// OVS `conn_update_state`: returns true when the packet must start a new connection.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn update_state(
        &self,
        meta: &mut CtMeta,
        c: &Arc<Conn>,
        reply: bool,
        related: bool,
        pkt: &CtInput,
        now: u64,
        stats: &mut CtStats,
        guard: &impl Guard,
    ) -> bool {
        if related {
            meta.state.insert(CtState::RELATED);
            if reply {
                meta.state.insert(CtState::REPLY_DIR);
            }
            stats.related += 1;
            return false;
        }
        let (u, tm) = c.update(
            reply,
            pkt.tcp.as_ref(),
            self.seq_check.load(Ordering::Relaxed),
        );
        if let Some(tm) = tm {
            c.set_expiration(now, self.timeouts.get(c.zone(), tm));
        }
        match u {
            ConnUpdate::Valid => {
                meta.state.insert(CtState::ESTABLISHED);
                meta.state.remove(CtState::NEW);
                if reply {
                    meta.state.insert(CtState::REPLY_DIR);
                }
                stats.established += 1;
            }
            ConnUpdate::ValidNew => {
                meta.state.insert(CtState::NEW);
                stats.new += 1;
            }
            ConnUpdate::Invalid => {
                meta.state = CtState::INVALID;
                stats.invalid += 1;
            }
            ConnUpdate::Reopen => {
                if self.kill(c, guard, DestroyReason::Reopened, now) {
                    bump(&self.counters.reopened);
                }
                return true;
            }
        }
        false
    }

    /// OVS `handle_nat`: applies the connection's translation unless the packet was already
    /// translated in this zone.
    #[inline]
    fn handle_nat(
        &self,
        c: &Conn,
        meta: &mut CtMeta,
        pkt: &CtInput,
        reply: bool,
        related: bool,
    ) -> Option<Rewrite> {
        if c.nat.is_none() || meta.state.intersects(CtState::SRC_NAT | CtState::DST_NAT) {
            return None;
        }
        self.nat_packet(c, meta, pkt, reply, related)
    }

    /// OVS `nat_packet`: the packet takes the tuple that the other direction's key expects.
    fn nat_packet(
        &self,
        c: &Conn,
        meta: &mut CtMeta,
        pkt: &CtInput,
        reply: bool,
        related: bool,
    ) -> Option<Rewrite> {
        let kind = c.nat?;
        let eff = if reply { kind.reverse() } else { kind };
        meta.state.insert(match eff {
            NatKind::Src => CtState::SRC_NAT,
            NatKind::Dst => CtState::DST_NAT,
        });
        let other = c.key[usize::from(!reply)];
        let target = other.reverse();
        let t = &pkt.tuple;
        let mut rw = Rewrite::default();
        let new_src = bits_addr(target.src, target.v6);
        let new_dst = bits_addr(target.dst, target.v6);
        if related {
            match eff {
                NatKind::Src if new_src != t.src => rw.src = Some(new_src),
                NatKind::Dst if new_dst != t.dst => rw.dst = Some(new_dst),
                _ => {}
            }
            rw.inner = Some(other.to_tuple());
            return Some(rw);
        }
        if new_src != t.src {
            rw.src = Some(new_src);
        }
        if new_dst != t.dst {
            rw.dst = Some(new_dst);
        }
        if target.is_icmp() {
            if target.sport != t.icmp_id {
                rw.icmp_id = Some(target.sport);
            }
        } else if has_ports(target.proto) {
            if target.sport != t.src_port {
                rw.src_port = Some(target.sport);
            }
            if target.dport != t.dst_port {
                rw.dst_port = Some(target.dport);
            }
        }
        (rw != Rewrite::default()).then_some(rw)
    }

    // ----- creation and removal -----

    fn reserve(&self, zone: u16) -> bool {
        // Relaxed: the counters are limits, not synchronization; a transient overshoot of one
        // per concurrent creator is corrected immediately by the fetch_sub below.
        let max = self.max_conns.load(Ordering::Relaxed);
        if self.n_conns.fetch_add(1, Ordering::Relaxed) >= max {
            self.n_conns.fetch_sub(1, Ordering::Relaxed);
            bump(&self.counters.full);
            return false;
        }
        let limit = self.zone_limit(zone);
        let prev = self.zone_count[usize::from(zone)].fetch_add(1, Ordering::Relaxed);
        if limit != 0 && prev >= limit {
            self.zone_count[usize::from(zone)].fetch_sub(1, Ordering::Relaxed);
            self.n_conns.fetch_sub(1, Ordering::Relaxed);
            bump(&self.counters.zone_full);
            return false;
        }
        true
    }

    fn release(&self, zone: u16) {
        self.zone_count[usize::from(zone)].fetch_sub(1, Ordering::Relaxed);
        self.n_conns.fetch_sub(1, Ordering::Relaxed);
    }

    /// Removes `c` from the table; true when this call removed it (it was still there).
    fn kill(&self, c: &Arc<Conn>, guard: &impl Guard, why: DestroyReason, now: u64) -> bool {
        // AcqRel: exactly one remover wins; readers that see `removed` (Acquire) ignore it.
        if c.removed.swap(true, Ordering::AcqRel) {
            return false;
        }
        for k in &c.key {
            let _ = self.map.remove_if(k, |_, e| Arc::ptr_eq(&e.conn, c), guard);
        }
        self.release(c.zone());
        self.emit(c, CtEventKind::Destroy(why), now);
        true
    }

    /// Queues a change event when the stream is enabled (never blocks, never allocates).
    #[inline]
    fn emit(&self, c: &Conn, kind: CtEventKind, now: u64) {
        if let Some(ev) = self.events.get() {
            let (mark, label) = c.ml.read();
            ev.push(
                usize::from(c.shard),
                CtEvent {
                    kind,
                    at: now,
                    zone: c.zone(),
                    orig: c.key[0].to_tuple(),
                    reply: c.key[1].to_tuple(),
                    mark,
                    label,
                },
            );
        }
    }

    fn new_conn(
        &self,
        now: u64,
        fwd: &ConnKey,
        rev: ConnKey,
        nat: Option<NatKind>,
        pkt: &CtInput,
    ) -> Arc<Conn> {
        let (proto, tm) = if fwd.proto == proto::TCP {
            // `process` checked that TCP packets carry a segment; a default one is never used.
            let seg = pkt.tcp.unwrap_or_default();
            let (t, tm) = TcpConn::new(&seg);
            (ProtoState::Tcp(Box::new(Mutex::new(t))), tm)
        } else if fwd.is_icmp() {
            (ProtoState::Icmp(ICMP_FIRST.into()), Tm::IcmpFirst)
        } else {
            (ProtoState::Other(OTHER_FIRST.into()), Tm::OtherFirst)
        };
        let shard = (self.nat_hasher.hash_one(fwd) as usize % N_SHARDS) as u16;
        Arc::new(Conn {
            key: [*fwd, rev],
            nat,
            proto,
            expiration: AtomicU64::new(now.saturating_add(self.timeouts.get(fwd.zone, tm))),
            ml: MarkLabel::default(),
            removed: AtomicBool::new(false),
            shard,
        })
    }

    /// The live connection `x`, met on one of our keys, is the very connection this packet
    /// belongs to (created meanwhile by another worker, maybe from the other direction).
    fn same_conn(x: &Arc<Conn>, fwd: &ConnKey) -> Option<Created> {
        if x.key[0] == *fwd {
            Some(Created::Existing(Arc::clone(x), false))
        } else if x.key[1] == *fwd {
            Some(Created::Existing(Arc::clone(x), true))
        } else {
            None
        }
    }

    /// Inserts `key -> conn`, reclaiming dead occupants. `Err(Some(x))`: held by the live `x`;
    /// `Err(None)`: kept meeting entries another thread is removing.
    fn insert_key(
        &self,
        now: u64,
        key: &ConnKey,
        conn: &Arc<Conn>,
        reply: bool,
        guard: &impl Guard,
    ) -> Result<(), Option<Arc<Conn>>> {
        for _ in 0..3 {
            let entry = Entry {
                conn: Arc::clone(conn),
                reply,
            };
            match self.map.try_insert(*key, entry, guard) {
                Ok(_) => return Ok(()),
                Err(occ) => {
                    let cur = Arc::clone(&occ.current.conn);
                    if cur.is_live(now) {
                        return Err(Some(cur));
                    }
                    self.kill(&cur, guard, DestroyReason::Expired, now);
                }
            }
        }
        Err(None)
    }

    /// Offers `rev` as the reply key of a new connection: inserts both keys or says why not.
    ///
    /// Both keys are inserted in key order, so two workers creating the same connection (from
    /// the same or from opposite directions) race for the same first key: exactly one wins, the
    /// other finds the winner there and uses its connection; nothing is ever inserted by both.
    fn claim(
        &self,
        now: u64,
        fwd: &ConnKey,
        rev: &ConnKey,
        nat: Option<NatKind>,
        pkt: &CtInput,
        guard: &impl Guard,
    ) -> Claim<Created> {
        // Cheap test of the candidate before allocating anything.
        if let Some(e) = self.map.get(rev, guard) {
            if e.conn.is_live(now) {
                return match Self::same_conn(&e.conn, fwd) {
                    Some(c) => Claim::Stop(c),
                    None => Claim::Next,
                };
            }
        }
        let conn = self.new_conn(now, fwd, *rev, nat, pkt);
        let order = if fwd <= rev {
            [(fwd, false), (rev, true)]
        } else {
            [(rev, true), (fwd, false)]
        };
        for (i, (key, reply)) in order.into_iter().enumerate() {
            if i == 1 && rev == fwd {
                // A packet addressed to its own source: one key serves both directions.
                break;
            }
            if let Err(occupant) = self.insert_key(now, key, &conn, reply, guard) {
                conn.removed.store(true, Ordering::Release);
                if i == 1 {
                    let first = order[0].0;
                    let _ = self
                        .map
                        .remove_if(first, |_, e| Arc::ptr_eq(&e.conn, &conn), guard);
                }
                return match (occupant.and_then(|x| Self::same_conn(&x, fwd)), reply) {
                    (Some(c), _) => Claim::Stop(c),
                    // Our original key is held by something else: give up this packet.
                    (None, false) => Claim::Stop(Created::Failed),
                    // The candidate reply key is taken: try another.
                    (None, true) => Claim::Next,
                };
            }
        }
        Claim::Done(Created::New(conn))
    }

    fn create(
        &self,
        now: u64,
        fwd: &ConnKey,
        pkt: &CtInput,
        nat: Option<&NatRange>,
        guard: &impl Guard,
    ) -> Created {
        if !self.reserve(fwd.zone) {
            return Created::Failed;
        }
        let outcome = match nat {
            None => match self.claim(now, fwd, &fwd.reverse(), None, pkt, guard) {
                Claim::Done(c) | Claim::Stop(c) => c,
                Claim::Next => {
                    bump(&self.counters.collisions);
                    Created::Failed
                }
            },
            Some(r) => {
                let kind = r.kind();
                match find_reply(fwd, r, &self.nat_hasher, |rev| {
                    self.claim(now, fwd, rev, Some(kind), pkt, guard)
                }) {
                    Ok(c) => c,
                    Err(NatFail::Stopped(c)) => c,
                    Err(NatFail::Exhausted) => {
                        bump(&self.counters.nat_exhausted);
                        Created::Failed
                    }
                    Err(NatFail::Family) => {
                        bump(&self.counters.nat_family);
                        Created::Failed
                    }
                }
            }
        };
        match &outcome {
            Created::New(c) => {
                bump(&self.counters.created);
                self.emit(c, CtEventKind::New, now);
                let mut sh = lock(&self.shards[usize::from(c.shard)]);
                sh.conns.push(Arc::clone(c));
                let share = self.n_conns.load(Ordering::Relaxed) as usize / N_SHARDS;
                if sh.conns.len() > 2 * share + REAP_SLACK {
                    sh.reap_removed(REAP_PER_CREATE);
                }
            }
            Created::Existing(..) | Created::Failed => self.release(fwd.zone),
        }
        outcome
    }

    // ----- maintenance -----

    /// Removes expired connections, looking at no more than `budget` entries; call it
    /// periodically from a control thread (OVS sweeps every 20 s, at most `max_conns / 64`
    /// entries per wake). Successive calls continue where the last one stopped.
    pub fn sweep(&self, now: u64, budget: usize) -> SweepStats {
        let mut cursor = lock(&self.sweep_cursor);
        let mut st = SweepStats::default();
        let mut lists_done = 0;
        // Expired connections are taken off their list under the list's lock and removed from
        // the table after it is released: creations in that shard wait only for the scan.
        let mut expired = Vec::new();
        while st.examined < budget && lists_done < N_SHARDS {
            let mut sh = lock(&self.shards[*cursor]);
            while st.examined < budget && sh.pos < sh.conns.len() {
                st.examined += 1;
                let pos = sh.pos;
                let c = &sh.conns[pos];
                if c.removed.load(Ordering::Acquire) {
                    sh.conns.swap_remove(pos);
                } else if c.expiration.load(Ordering::Relaxed) <= now {
                    expired.push(sh.conns.swap_remove(pos));
                } else {
                    sh.pos += 1;
                }
            }
            if sh.pos < sh.conns.len() {
                break;
            }
            sh.pos = 0;
            *cursor = (*cursor + 1) % N_SHARDS;
            lists_done += 1;
            if *cursor == 0 {
                st.pass_complete = true;
            }
        }
        drop(cursor);
        let guard = self.map.guard();
        for c in expired {
            if c.expiration.load(Ordering::Relaxed) > now {
                // A packet refreshed it since the scan: it stays, back on its list.
                lock(&self.shards[usize::from(c.shard)]).conns.push(c);
            } else if self.kill(&c, &guard, DestroyReason::Expired, now) {
                st.expired += 1;
                bump(&self.counters.expired);
            }
        }
        st
    }

    /// Takes the live connections that `pick` selects off every sweep list (one list lock at
    /// a time, dropping already-removed entries on the way), then removes them from the table
    /// with no list lock held; returns how many this call removed.
    fn flush_where(&self, pick: impl Fn(&Conn) -> bool) -> usize {
        let mut victims = Vec::new();
        for shard in self.shards.iter() {
            let mut sh = lock(shard);
            let before = sh.conns.len();
            sh.conns.retain(|c| {
                if c.removed.load(Ordering::Acquire) {
                    return false;
                }
                if pick(c) {
                    victims.push(Arc::clone(c));
                    return false;
                }
                true
            });
            if sh.conns.len() != before {
                sh.pos = 0;
                sh.reap = 0;
            }
        }
        let guard = self.map.guard();
        let n = victims
            .iter()
            .filter(|c| self.kill(c, &guard, DestroyReason::Flushed, 0))
            .count();
        self.counters.flushed.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Removes every connection of `zone`, or all connections (`None`); returns how many.
    /// Walks all connections: a control-path operation.
    pub fn flush(&self, zone: Option<u16>) -> usize {
        self.flush_where(|c| zone.is_none_or(|z| z == c.zone()))
    }

    /// Removes the connection that `tuple` (either direction) belongs to in `zone`
    /// (`dpctl/flush-conntrack zone tuple`); true when one was removed.
    pub fn flush_tuple(&self, zone: u16, tuple: &Tuple) -> bool {
        let Ok(Keyed::Own(k)) = key_packet(zone, tuple, None) else {
            return false;
        };
        let guard = self.map.guard();
        let Some(e) = self.map.get(&k, &guard) else {
            return false;
        };
        let c = Arc::clone(&e.conn);
        let removed = self.kill(&c, &guard, DestroyReason::Flushed, 0);
        if removed {
            bump(&self.counters.flushed);
        }
        removed
    }

    /// `dpctl/flush-conntrack [zone=N] [ct-tuple [ct-tuple]]` with parsed arguments (see
    /// [`crate::ctl::parse_flush_conntrack`]); returns how many connections were removed.
    ///
    /// As in OVS: no tuple flushes the zone (or everything); a complete original tuple with no
    /// reply tuple is one lookup in the zone (zone 0 when none is given); any other filter walks
    /// the connections of the zone (or of all zones) and removes those that match.
    pub fn flush_args(&self, args: &FlushArgs) -> usize {
        let m = &args.filter;
        if m.is_zero() {
            return self.flush(args.zone);
        }
        if let Some(t) = m.exact_orig() {
            return usize::from(self.flush_tuple(args.zone.unwrap_or(0), &t));
        }
        self.flush_match(args.zone, m)
    }

    /// Removes the connections of `zone` (or of every zone) that `m` matches; returns how many.
    /// Walks all connections: a control-path operation.
    pub fn flush_match(&self, zone: Option<u16>, m: &CtMatch) -> usize {
        self.flush_where(|c| zone.is_none_or(|z| z == c.zone()) && m.matches(&Self::entry(c, 0)))
    }

    /// Like [`Conntrack::dump`], keeping only the connections `m` matches (a dump by tuple
    /// filter, with the same rules as `flush-conntrack`'s tuples).
    pub fn dump_match(&self, zone: Option<u16>, m: &CtMatch, now: u64) -> Vec<CtEntry> {
        let mut v = self.dump(zone, now);
        v.retain(|e| m.matches(e));
        v
    }

    /// Entries held by the sweep lists, including connections already removed from the table
    /// but not yet dropped from their list (memory diagnostics: stays within a small factor of
    /// `conn_count`).
    pub fn sweep_list_len(&self) -> usize {
        self.shards.iter().map(|sh| lock(sh).conns.len()).sum()
    }

    /// `dpctl/ct-get-limits`: `(zone, limit, count)` for every zone with its own limit, in zone
    /// order, or for the `query` zones in query order. As OVS 3.1 answers, a queried zone
    /// without its own limit shows the default limit and, when a default limit is set, the
    /// connections of all zones without their own limit (they share the default's count).
    pub fn zone_limits(&self, query: Option<&[u16]>) -> Vec<(u16, u32, u32)> {
        let own = |z: u16| match self.zone_limit[usize::from(z)].load(Ordering::Relaxed) {
            ZONE_LIMIT_UNSET => None,
            l => Some(l),
        };
        let count = |z: u16| self.zone_count[usize::from(z)].load(Ordering::Relaxed);
        match query {
            None => (0..=u16::MAX)
                .filter_map(|z| own(z).map(|l| (z, l, count(z))))
                .collect(),
            Some(zones) => {
                let default = self.default_zone_limit.load(Ordering::Relaxed);
                let shared = if default == 0 {
                    0
                } else {
                    (0..=u16::MAX)
                        .filter(|z| own(*z).is_none())
                        .map(count)
                        .sum()
                };
                zones
                    .iter()
                    .map(|&z| match own(z) {
                        Some(l) => (z, l, count(z)),
                        None => (z, default, shared),
                    })
                    .collect()
            }
        }
    }

    /// The default zone limit (0 = unlimited).
    pub fn default_zone_limit(&self) -> u32 {
        self.default_zone_limit.load(Ordering::Relaxed)
    }

    /// TCP sequence checking on or off (`dpctl/ct-get-tcp-seq-chk`).
    pub fn tcp_seq_check(&self) -> bool {
        self.seq_check.load(Ordering::Relaxed)
    }

    /// The zones that hold connections, with their counts, in zone order.
    pub fn zone_counts(&self) -> Vec<(u16, u32)> {
        (0..=u16::MAX)
            .zip(self.zone_count.iter())
            .filter_map(|(z, c)| {
                let n = c.load(Ordering::Relaxed);
                (n != 0).then_some((z, n))
            })
            .collect()
    }

    fn entry(c: &Conn, now: u64) -> CtEntry {
        let (mark, label) = c.ml.read();
        CtEntry {
            orig: c.key[0].to_tuple(),
            reply: c.key[1].to_tuple(),
            zone: c.zone(),
            mark,
            label,
            tcp: c.tcp_states(),
            expires_in: Duration::from_nanos(
                c.expiration.load(Ordering::Relaxed).saturating_sub(now),
            ),
        }
    }

    /// A snapshot of the live connections of `zone` (or all); format each with `Display` for
    /// `dpctl/dump-conntrack`. Walks all connections: a control-path operation.
    pub fn dump(&self, zone: Option<u16>, now: u64) -> Vec<CtEntry> {
        let mut conns = Vec::new();
        for shard in self.shards.iter() {
            let sh = lock(shard);
            conns.extend(
                sh.conns
                    .iter()
                    .filter(|c| c.is_live(now) && zone.is_none_or(|z| z == c.zone()))
                    .cloned(),
            );
        }
        conns.iter().map(|c| Self::entry(c, now)).collect()
    }
}
