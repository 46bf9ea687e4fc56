//! The tracker: the connection table, `process` (the `ct()` action), limits, sweep, flush, dump.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::conn::{
    Conn, ConnHandle, ConnUpdate, ICMP_FIRST, I_LIVE, I_PUB, KIND_ICMP, KIND_OTHER, KIND_TCP,
    OTHER_FIRST,
};
use crate::ctl::{CtMatch, FlushArgs};
use crate::dump::CtEntry;
use crate::event::{CtEvent, CtEventKind, DestroyReason, EventRings};
use crate::nat::{find_reply, Claim, NatAction, NatFail, NatKind, NatRange};
use crate::state::CtState;
use crate::store::{Hashed, Store, MAX_CAPACITY};
use crate::tcp::{self, TcpConn, TcpSegment};
use crate::timeout::{TimeoutTable, Timeouts, Tm};
use crate::tuple::{
    bits_addr, has_ports, icmp_valid_new, key_packet, proto, ConnKey, Keyed, Tuple,
};
use crate::CtError;
use foldhash::fast::FixedState;

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
    /// Capacity of the table, in keys (two per connection): the connection slab and its index
    /// hold `initial_capacity / 2` connections, all allocated at creation; a full slab refuses
    /// new connections (counted in `full`) while established ones keep working. 0 = capacity
    /// `max_conns` (at most 4,194,304), the index sized for it (zeroed pages, touched as
    /// connections arrive) and the slab allocated on demand in segments of 4096 connections.
    /// `max_conns` still applies below the capacity. An explicit capacity is capped at 2^30
    /// connections and allocated at once (128 bytes per connection plus the TCP state and
    /// the index, ~200 bytes in all).
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

/// A packet's own connection key and its hash, derived once by
/// [`Conntrack::prefetch_probed`] and used by [`Conntrack::process_probed`] for the same
/// packet. Empty by default (then `process_probed` derives them itself).
#[derive(Clone, Copy, Default)]
pub struct CtProbe(Option<(ConnKey, Hashed)>);

impl std::fmt::Debug for CtProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some((k, _)) => write!(f, "CtProbe({:?}, zone={})", k.to_tuple(), k.zone),
            None => f.write_str("CtProbe(none)"),
        }
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

/// Capacity when `initial_capacity` is 0: `max_conns`, at most this many connections (the
/// index for it is 256 MiB of address space, touched as connections arrive).
const IMPLICIT_CAPACITY: usize = 1 << 22;
const ZONE_LIMIT_UNSET: u32 = u32::MAX;

enum Created<'a> {
    New(Conn<'a>),
    Existing(Conn<'a>, bool),
    Failed,
}

/// The connection tracker. Share it between workers with `Arc<Conntrack>`.
///
/// # Thread safety
/// - Connections live in a preallocated slab of records whose fields are atomics, indexed by
///   a fixed open-addressed table holding both keys of every connection (see `store`). Lookups
///   take no lock: one bucket, then the record, validated by its generation and sequence lock.
/// - Creation locks the index regions of its two keys (64 regions, taken in order), checks
///   that neither key is held by a live connection and inserts both: two workers creating the
///   same connection (from either direction) cannot both succeed, the loser finds the winner;
///   a NAT candidate tuple is claimed atomically by the insert itself.
/// - Per-connection state: see `Conn` (a seqlock over atomics, a mutex for TCP).
/// - Removal (`sweep`, `flush`, dead entries met on the packet path) clears the record's live
///   flag once; the thread that clears it removes both keys, gives back the limits and returns
///   the record to a free list. A handle kept across the reuse fails its generation check.
/// - `sweep`, `flush` and `dump` walk the slab; they take no lock besides the index regions
///   for the removals (and `sweep` its cursor).
pub struct Conntrack {
    store: Store,
    sweep_cursor: Mutex<u32>,
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
        let cap = if config.initial_capacity > 0 {
            (config.initial_capacity / 2).max(1)
        } else {
            (config.max_conns as usize).min(IMPLICIT_CAPACITY)
        }
        .min(MAX_CAPACITY);
        let store = Store::new(cap, config.initial_capacity / 2, config.hash_seed);
        Conntrack {
            store,
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
        self.process_probed(now, pkt, act, meta, None, stats)
    }

    /// [`Conntrack::process`] with the packet's key and hash already computed by
    /// [`Conntrack::prefetch_probed`] for this very packet, action and metadata (`probe`), so
    /// that they are not derived a second time. A probe of another zone is ignored.
    pub fn process_probed(
        &self,
        now: u64,
        pkt: &CtInput,
        act: &CtAction,
        meta: &mut CtMeta,
        probe: Option<&CtProbe>,
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

        // Recirculated packet whose connection was matched by the previous ct() in this zone:
        // reuse the match without updating the connection again (OVS process_one_fast).
        if let Some(h) = meta.conn.take() {
            if h.key.zone == zone && !act.force {
                if let Some(c) = self.by_handle(&h, now) {
                    stats.fast_path += 1;
                    let mut rw = None;
                    if act.nat.is_some() {
                        let related = meta.related;
                        rw = self.handle_nat(&c, meta, pkt, h.reply, related);
                    }
                    meta.zone = zone;
                    let (m, l) = if act.commit && (act.mark.is_some() || act.label.is_some()) {
                        c.ml_update(act.mark, act.label)
                    } else {
                        c.ml_read()
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

        let probe = probe.and_then(|p| p.0).filter(|(k, _)| k.zone == zone);
        let (mut key, related) = match probe {
            Some((k, _)) => (k, false),
            None => match key_packet(zone, &pkt.tuple, pkt.icmp_error_inner.as_ref()) {
                Ok(Keyed::Own(k)) => (k, false),
                Ok(Keyed::Related(k)) => (k, true),
                Err(_) => return self.write_untracked_invalid(meta, zone, stats),
            },
        };
        debug_assert!(
            probe.is_none()
                || matches!(key_packet(zone, &pkt.tuple, pkt.icmp_error_inner.as_ref()),
                            Ok(Keyed::Own(k)) if k == key),
            "a probe of another packet"
        );
        if !related && key.proto == proto::TCP && pkt.tcp.is_none() {
            return self.write_untracked_invalid(meta, zone, stats);
        }

        let natted = meta.state.intersects(CtState::SRC_NAT | CtState::DST_NAT);
        stats.lookups += 1;
        // The packet's own key, hashed once: a creation below reuses the hash and knows
        // whether a dead connection still holds the key (it goes first, giving back limits).
        let mut probed: Option<(Hashed, Option<Conn<'_>>)> = None;
        let mut found: Option<(Conn<'_>, bool)> = if natted {
            // Already translated in this zone: find it by the reverse of its new tuple.
            match self.lookup(&key.reverse(), now) {
                Some((c, r)) => {
                    let reply = !r;
                    c.key(usize::from(reply)).map(|k| {
                        key = k;
                        (c, reply)
                    })
                }
                None => None,
            }
        } else {
            let h = match probe {
                Some((_, h)) => h,
                None => self.store.hashed(&key),
            };
            match self.store.find(&key, &h, now) {
                Some(f) if f.live => Some((f.conn, f.reply)),
                f => {
                    probed = Some((h, f.map(|f| f.conn)));
                    None
                }
            }
        };

        if act.force {
            if let Some((c, true)) = found {
                self.kill(c, DestroyReason::Forced, now);
                found = None;
            }
        }

        let mut conn: Option<Conn<'_>> = None;
        let mut reply = false;
        let mut rw = None;
        let mut create = false;
        // `key` is `conn.key[reply]` on every path but the lookup by original tuple.
        let mut key_is_conn_key = true;
        match found {
            Some((c, r)) => {
                stats.hits += 1;
                reply = r;
                create = self.update_state(meta, c, r, related, pkt, now, stats);
                if !create {
                    conn = Some(c);
                    if act.nat.is_some() {
                        rw = self.handle_nat(&c, meta, pkt, r, related);
                    }
                }
            }
            None => {
                let by_orig = if natted && act.nat.is_none() {
                    self.lookup_orig(meta, now)
                } else {
                    None
                };
                if let Some(c) = by_orig {
                    stats.hits += 1;
                    key_is_conn_key = false;
                    create = self.update_state(meta, c, false, related, pkt, now, stats);
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
                    match self.create(now, &key, probed, pkt, range.as_ref()) {
                        Created::New(c) => {
                            stats.created += 1;
                            if c.nat().is_some() {
                                rw = self.nat_packet(&c, meta, pkt, false, false);
                            }
                            conn = Some(c);
                        }
                        Created::Existing(c, r) => {
                            // Another worker created it first: behave as if it had been found.
                            reply = r;
                            meta.state = incoming;
                            if !self.update_state(meta, c, r, false, pkt, now, stats) {
                                if act.nat.is_some() {
                                    rw = self.handle_nat(&c, meta, pkt, r, false);
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
                    c.ml_update(act.mark, act.label)
                } else {
                    c.ml_read()
                };
                meta.mark = m;
                meta.label = l;
                // The original key without reading the connection's key line when it is known:
                // the packet's own key in the original direction, its reverse for a reply of a
                // connection without NAT.
                let orig = if !reply && key_is_conn_key {
                    key
                } else if reply && key_is_conn_key && c.nat().is_none() {
                    key.reverse()
                } else {
                    c.key(0).unwrap_or(key)
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
            (None, Some(c)) => {
                let key = if key_is_conn_key {
                    Some(key)
                } else {
                    c.key(usize::from(reply))
                };
                key.map(|key| ConnHandle {
                    key,
                    reply,
                    idx: c.idx,
                    gen: c.gen,
                })
            }
            _ => None,
        };
        meta.related = related;
        rw
    }

    /// Runs `ct(act)` on a batch of packets: the same as calling [`Conntrack::process`] for
    /// `pkts[i]`, `metas[i]`, storing the result in `out[i]`, in order, for the length of the
    /// shortest slice (returned). Before processing a group of 16 it loads the index bucket,
    /// then the connection record, of every packet of the group, so that their cache misses
    /// overlap instead of being paid one after the other (the safe-code form of a prefetch).
    pub fn process_batch(
        &self,
        now: u64,
        pkts: &[CtInput],
        act: &CtAction,
        metas: &mut [CtMeta],
        stats: &mut CtStats,
        out: &mut [Option<Rewrite>],
    ) -> usize {
        const GROUP: usize = 16;
        let n = pkts.len().min(metas.len()).min(out.len());
        for ((p, m), o) in pkts[..n]
            .chunks(GROUP)
            .zip(metas[..n].chunks_mut(GROUP))
            .zip(out[..n].chunks_mut(GROUP))
        {
            self.prefetch(
                p.iter()
                    .zip(m.iter())
                    .map(|(pkt, meta)| (act, pkt, Some(meta))),
            );
            for ((pkt, meta), o) in p.iter().zip(m.iter_mut()).zip(o.iter_mut()) {
                *o = self.process(now, pkt, act, meta, stats);
            }
        }
        n
    }

    /// Loads the index bucket, then the connection record, that [`Conntrack::process`] will
    /// read first for each `(act, pkt, meta)` (`meta: None` for a packet whose metadata is
    /// empty), 16 packets at a time, so that their cache misses overlap instead of being paid
    /// one after the other (the safe-code form of a prefetch). Read-only: changes nothing a
    /// later `process` sees.
    pub fn prefetch<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a CtAction, &'a CtInput, Option<&'a CtMeta>)>,
    ) {
        let items = items
            .into_iter()
            .map(|(act, pkt, meta)| (usize::MAX, act, pkt, meta));
        self.prefetch_probed(items, &mut []);
    }

    /// [`Conntrack::prefetch`] for items `(i, act, pkt, meta)` that also keeps, in
    /// `probes[i]`, the key and hash of each packet that [`Conntrack::process_probed`] will
    /// look up by its own key (no connection handle to read, not translated in this zone, not
    /// an ICMP error), so that it does not derive them again. Every other `probes[i]` of an
    /// item is cleared; indexes beyond `probes` are prefetched only.
    pub fn prefetch_probed<'a>(
        &self,
        items: impl IntoIterator<Item = (usize, &'a CtAction, &'a CtInput, Option<&'a CtMeta>)>,
        probes: &mut [CtProbe],
    ) {
        const GROUP: usize = 16;
        let mut items = items.into_iter();
        loop {
            // Three passes, so that the loads of each pass are close together (a load miss
            // holds the reorder window; a pass with other work between its loads would
            // overlap only a few): hash, then load the buckets, then the records.
            let mut hs: [Option<Hashed>; GROUP] = [None; GROUP];
            let mut n = 0;
            let mut sink = 0u64;
            for (i, act, pkt, meta) in items.by_ref() {
                let probe = probes.get_mut(i);
                if let Some(h) = Self::handle_of(act, pkt, meta) {
                    if let Some((rec, _)) = self.store.rec(h.idx) {
                        sink ^= rec.touch();
                    }
                    if let Some(p) = probe {
                        *p = CtProbe::default();
                    }
                    continue;
                }
                let Some((k, own)) = Self::first_key(act, pkt, meta) else {
                    if let Some(p) = probe {
                        *p = CtProbe::default();
                    }
                    continue;
                };
                let h = self.store.hashed(&k);
                if let Some(p) = probe {
                    *p = CtProbe(own.then_some((k, h)));
                }
                hs[n] = Some(h);
                n += 1;
                if n == GROUP {
                    break;
                }
            }
            if n == 0 {
                std::hint::black_box(sink);
                return;
            }
            for h in hs.iter().flatten() {
                sink ^= self.store.touch(h);
            }
            for h in hs.iter().flatten() {
                sink ^= self.store.touch_rec(h);
            }
            std::hint::black_box(sink);
            if n < GROUP {
                return;
            }
        }
    }

    /// The handle `process` reads through first, if any.
    fn handle_of<'a>(
        act: &CtAction,
        pkt: &CtInput,
        meta: Option<&'a CtMeta>,
    ) -> Option<&'a ConnHandle> {
        if pkt.fragment || pkt.malformed || act.force {
            return None;
        }
        let meta = meta.filter(|m| !m.state.is_empty() && m.zone == act.zone)?;
        meta.conn.as_ref().filter(|h| h.key.zone == act.zone)
    }

    /// The key `process` looks up first (the remembered connection of a recirculated packet,
    /// the reverse of an already translated tuple, or the packet's own), if any; with it,
    /// whether it is the packet's own key as `process` derives it before its lookup
    /// (not a handle's, not the reverse of a translated tuple).
    fn first_key(act: &CtAction, pkt: &CtInput, meta: Option<&CtMeta>) -> Option<(ConnKey, bool)> {
        if pkt.fragment || pkt.malformed {
            return None;
        }
        let meta = meta.filter(|m| !m.state.is_empty() && m.zone == act.zone);
        if let Some(h) = meta.and_then(|m| m.conn.as_ref()) {
            if h.key.zone == act.zone && !act.force {
                return Some((h.key, false));
            }
        }
        match key_packet(act.zone, &pkt.tuple, pkt.icmp_error_inner.as_ref()) {
            Ok(Keyed::Own(k)) => {
                let natted =
                    meta.is_some_and(|m| m.state.intersects(CtState::SRC_NAT | CtState::DST_NAT));
                Some(if natted {
                    (k.reverse(), false)
                } else {
                    (k, true)
                })
            }
            _ => None,
        }
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

    /// The live connection a handle points to: its record read directly; a full lookup of its
    /// key when the record moved on (removed, reused), which finds a re-created connection.
    #[inline]
    fn by_handle(&self, h: &ConnHandle, now: u64) -> Option<Conn<'_>> {
        match self.store.at(h.idx, h.gen, &h.key, h.reply, now) {
            Some(f) => f.live.then_some(f.conn),
            None => self.lookup(&h.key, now).map(|(c, _)| c),
        }
    }

    #[inline]
    fn lookup(&self, key: &ConnKey, now: u64) -> Option<(Conn<'_>, bool)> {
        let h = self.store.hashed(key);
        let f = self.store.find(key, &h, now)?;
        f.live.then_some((f.conn, f.reply))
    }

    /// OVS `check_orig_tuple`: a translated packet whose reverse lookup missed is looked up by
    /// the original tuple recorded in its metadata.
    fn lookup_orig(&self, meta: &CtMeta, now: u64) -> Option<Conn<'_>> {
        let orig = meta.orig.as_ref()?;
        match key_packet(meta.zone, orig, None) {
            Ok(Keyed::Own(k)) => self.lookup(&k, now).map(|(c, _)| c),
            _ => None,
        }
    }

    /// OVS `conn_update_state`: returns true when the packet must start a new connection.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn update_state(
        &self,
        meta: &mut CtMeta,
        c: Conn<'_>,
        reply: bool,
        related: bool,
        pkt: &CtInput,
        now: u64,
        stats: &mut CtStats,
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
                if self.kill(c, DestroyReason::Reopened, now) {
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
        c: &Conn<'_>,
        meta: &mut CtMeta,
        pkt: &CtInput,
        reply: bool,
        related: bool,
    ) -> Option<Rewrite> {
        if c.nat().is_none() || meta.state.intersects(CtState::SRC_NAT | CtState::DST_NAT) {
            return None;
        }
        self.nat_packet(c, meta, pkt, reply, related)
    }

    /// OVS `nat_packet`: the packet takes the tuple that the other direction's key expects.
    fn nat_packet(
        &self,
        c: &Conn<'_>,
        meta: &mut CtMeta,
        pkt: &CtInput,
        reply: bool,
        related: bool,
    ) -> Option<Rewrite> {
        let kind = c.nat()?;
        let eff = if reply { kind.reverse() } else { kind };
        meta.state.insert(match eff {
            NatKind::Src => CtState::SRC_NAT,
            NatKind::Dst => CtState::DST_NAT,
        });
        let other = c.key(usize::from(!reply))?;
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
    fn kill(&self, c: Conn<'_>, why: DestroyReason, now: u64) -> bool {
        // Exactly one remover clears the live flag; readers that see it cleared ignore the
        // connection. Until the record is freed below nobody else reuses it.
        if !c.mark_removed() {
            return false;
        }
        if let Some(keys) = c.keys() {
            for (d, k) in keys.iter().enumerate() {
                let h = self.store.hashed(k);
                self.store.remove(&h, c.idx, d == 1);
            }
            self.release(c.zone());
            self.emit(&c, &keys, CtEventKind::Destroy(why), now);
        }
        self.store.free(c.idx, c.shard());
        true
    }

    /// Queues a change event when the stream is enabled (never blocks, never allocates).
    #[inline]
    fn emit(&self, c: &Conn<'_>, keys: &[ConnKey; 2], kind: CtEventKind, now: u64) {
        if let Some(ev) = self.events.get() {
            let (mark, label) = c.ml_read();
            ev.push(
                c.shard(),
                CtEvent {
                    kind,
                    at: now,
                    zone: c.zone(),
                    orig: keys[0].to_tuple(),
                    reply: keys[1].to_tuple(),
                    mark,
                    label,
                },
            );
        }
    }

    /// Takes a record for a new connection and fills it; `None` when the slab is full.
    fn new_conn(
        &self,
        now: u64,
        fwd: &ConnKey,
        shard: usize,
        rev: &ConnKey,
        nat: Option<NatKind>,
        pkt: &CtInput,
    ) -> Option<Conn<'_>> {
        let idx = self.store.alloc(shard)?;
        let Some((rec, tcp)) = self.store.rec(idx) else {
            self.store.free(idx, shard);
            return None;
        };
        let (kind, state, tm, tcp_state) = if fwd.proto == proto::TCP {
            // `process` checked that TCP packets carry a segment; a default one is never used.
            let seg = pkt.tcp.unwrap_or_default();
            let (t, tm) = TcpConn::new(&seg);
            (KIND_TCP, 0, tm, Some(t))
        } else if fwd.is_icmp() {
            (KIND_ICMP, ICMP_FIRST, Tm::IcmpFirst, None)
        } else {
            (KIND_OTHER, OTHER_FIRST, Tm::OtherFirst, None)
        };
        let exp = now.saturating_add(self.timeouts.get(fwd.zone, tm));
        let (gen, info) = rec.init(fwd, rev, nat, kind, state, shard as u8, exp);
        if let Some(t) = tcp_state {
            // After the generation moved: a stale TCP update checks it under this lock.
            *lock(tcp) = t;
        }
        Some(Conn {
            rec,
            tcp,
            idx,
            gen,
            info,
            zone: fwd.zone,
        })
    }

    /// Gives back a record that never got into the index.
    fn discard(&self, c: Conn<'_>) {
        if c.mark_removed() {
            self.store.free(c.idx, c.shard());
        }
    }

    /// The live connection `x`, met on `rev`, is the very connection this packet belongs to
    /// (created meanwhile by another worker from the other direction).
    fn same_conn<'a>(x: Conn<'a>, fwd: &ConnKey) -> Option<Created<'a>> {
        let k = x.keys()?;
        if k[0] == *fwd {
            Some(Created::Existing(x, false))
        } else if k[1] == *fwd {
            Some(Created::Existing(x, true))
        } else {
            None
        }
    }

    /// Offers `rev` as the reply key of a new connection: inserts both keys or says why not.
    ///
    /// Both keys are checked and inserted with the index regions of both held, so two workers
    /// creating the same connection (from the same or from opposite directions) are
    /// serialized: exactly one inserts, the other finds the winner and uses its connection.
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        now: u64,
        fwd: &ConnKey,
        hf: &Hashed,
        rev: &ConnKey,
        nat: Option<NatKind>,
        pkt: &CtInput,
    ) -> Claim<Created<'_>> {
        let own = rev == fwd;
        let hr = self.store.hashed(rev);
        // Cheap test of a NAT candidate before taking a record or a lock (the search moves on
        // to the next one when it is taken). Without NAT the one candidate is checked under
        // the lock only.
        if !own && nat.is_some() {
            if let Some(f) = self.store.find(rev, &hr, now) {
                if f.live {
                    return match Self::same_conn(f.conn, fwd) {
                        Some(c) => Claim::Stop(c),
                        None => Claim::Next,
                    };
                }
                // Expired but still indexed: remove it whole (gives back its limits).
                self.kill(f.conn, DestroyReason::Expired, now);
            }
        }
        let Some(conn) = self.new_conn(now, fwd, hf.region, rev, nat, pkt) else {
            bump(&self.counters.full);
            return Claim::Stop(Created::Failed);
        };
        // Each key is checked and indexed in one walk of its chain, under the locks. A dead
        // occupant (being removed, or expired) gives up its slot; the rest of it goes with
        // its remover or the sweep.
        let guards = self.store.lock2(hf.region, hr.region);
        let fwd_in = match self
            .store
            .find_or_insert_locked(fwd, hf, conn.idx, false, now)
        {
            Err(f) => {
                drop(guards);
                self.discard(conn);
                return Claim::Stop(Created::Existing(f.conn, f.reply));
            }
            Ok(fwd_in) => fwd_in,
        };
        let rev_in = own
            || !fwd_in
            || match self
                .store
                .find_or_insert_locked(rev, &hr, conn.idx, true, now)
            {
                Err(f) => {
                    self.store.remove_locked(hf, conn.idx, false);
                    drop(guards);
                    self.discard(conn);
                    return match Self::same_conn(f.conn, fwd) {
                        Some(c) => Claim::Stop(c),
                        None => Claim::Next,
                    };
                }
                Ok(rev_in) => rev_in,
            };
        if !(fwd_in && rev_in) {
            if fwd_in {
                self.store.remove_locked(hf, conn.idx, false);
            }
            drop(guards);
            self.discard(conn);
            bump(&self.counters.full);
            return Claim::Stop(Created::Failed);
        }
        conn.publish();
        drop(guards);
        Claim::Done(Created::New(conn))
    }

    /// Creates the connection of `fwd`. `probed` is the packet's lookup of `fwd` when it
    /// missed: the key's hash and the dead connection it met, if any (`None`: not looked up
    /// by that key, e.g. a translated packet looked up by its reverse).
    fn create<'a>(
        &'a self,
        now: u64,
        fwd: &ConnKey,
        probed: Option<(Hashed, Option<Conn<'a>>)>,
        pkt: &CtInput,
        nat: Option<&NatRange>,
    ) -> Created<'a> {
        if !self.reserve(fwd.zone) {
            return Created::Failed;
        }
        let (hf, dead) = match probed {
            Some(p) => p,
            None => {
                let hf = self.store.hashed(fwd);
                let dead = self
                    .store
                    .find(fwd, &hf, now)
                    .filter(|f| !f.live)
                    .map(|f| f.conn);
                (hf, dead)
            }
        };
        // A dead connection still holding our key goes first (no lock held here), so that its
        // limits are given back.
        if let Some(c) = dead {
            self.kill(c, DestroyReason::Expired, now);
        }
        let outcome = match nat {
            None => match self.claim(now, fwd, &hf, &fwd.reverse(), None, pkt) {
                Claim::Done(c) | Claim::Stop(c) => c,
                Claim::Next => {
                    bump(&self.counters.collisions);
                    Created::Failed
                }
            },
            Some(r) => {
                let kind = r.kind();
                match find_reply(fwd, r, &self.nat_hasher, |rev| {
                    self.claim(now, fwd, &hf, rev, Some(kind), pkt)
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
                if self.events.get().is_some() {
                    if let Some(keys) = c.keys() {
                        self.emit(c, &keys, CtEventKind::New, now);
                    }
                }
            }
            Created::Existing(..) | Created::Failed => self.release(fwd.zone),
        }
        outcome
    }

    // ----- maintenance -----

    /// Removes expired connections, looking at no more than `budget` entries; call it
    /// periodically from a control thread (OVS sweeps every 20 s, at most `max_conns / 64`
    /// entries per wake). Successive calls continue where the last one stopped. An entry is a
    /// slot of the connection slab (up to the most slots ever used).
    pub fn sweep(&self, now: u64, budget: usize) -> SweepStats {
        let mut cursor = lock(&self.sweep_cursor);
        let mut st = SweepStats::default();
        let hw = self.store.high_water();
        let mut visited = 0u32;
        while st.examined < budget && visited < hw {
            if *cursor >= hw {
                *cursor = 0;
            }
            st.examined += 1;
            visited += 1;
            let idx = *cursor;
            *cursor += 1;
            if *cursor >= hw {
                *cursor = 0;
                st.pass_complete = true;
            }
            let Some((c, exp)) = self.store.conn_at(idx) else {
                continue;
            };
            if c.info & (I_LIVE | I_PUB) == I_LIVE | I_PUB
                && exp <= now
                && self.kill(c, DestroyReason::Expired, now)
            {
                st.expired += 1;
                bump(&self.counters.expired);
            }
        }
        if hw == 0 {
            st.pass_complete = true;
        }
        st
    }

    /// Removes the connections that `pick` selects (walking the slab); returns how many this
    /// call removed.
    fn flush_where(&self, pick: impl Fn(&Conn<'_>) -> bool) -> usize {
        let mut n = 0;
        for idx in 0..self.store.high_water() {
            let Some((c, _)) = self.store.conn_at(idx) else {
                continue;
            };
            if c.info & (I_LIVE | I_PUB) == I_LIVE | I_PUB
                && pick(&c)
                && self.kill(c, DestroyReason::Flushed, 0)
            {
                n += 1;
            }
        }
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
        let h = self.store.hashed(&k);
        let Some(f) = self.store.find(&k, &h, 0) else {
            return false;
        };
        let removed = self.kill(f.conn, DestroyReason::Flushed, 0);
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
        self.flush_where(|c| {
            zone.is_none_or(|z| z == c.zone()) && Self::entry(c, 0).is_some_and(|e| m.matches(&e))
        })
    }

    /// Like [`Conntrack::dump`], keeping only the connections `m` matches (a dump by tuple
    /// filter, with the same rules as `flush-conntrack`'s tuples).
    pub fn dump_match(&self, zone: Option<u16>, m: &CtMatch, now: u64) -> Vec<CtEntry> {
        let mut v = self.dump(zone, now);
        v.retain(|e| m.matches(e));
        v
    }

    /// Connection records in use, including connections being removed right now (memory
    /// diagnostics: stays within a small factor of `conn_count`). The records are preallocated
    /// slab slots (the former per-shard sweep lists are gone: `sweep` walks the slab).
    pub fn sweep_list_len(&self) -> usize {
        self.store.used() as usize
    }

    /// Connections the preallocated table can hold (`CtConfig::initial_capacity / 2`, or
    /// `max_conns` when no capacity was given).
    pub fn capacity(&self) -> u32 {
        self.store.capacity()
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

    fn entry(c: &Conn<'_>, now: u64) -> Option<CtEntry> {
        let keys = c.keys()?;
        let (mark, label) = c.ml_read();
        Some(CtEntry {
            orig: keys[0].to_tuple(),
            reply: keys[1].to_tuple(),
            zone: c.zone(),
            mark,
            label,
            tcp: c.tcp_states(),
            expires_in: Duration::from_nanos(c.expiration().saturating_sub(now)),
        })
    }

    /// A snapshot of the live connections of `zone` (or all); format each with `Display` for
    /// `dpctl/dump-conntrack`. Walks all connections: a control-path operation.
    pub fn dump(&self, zone: Option<u16>, now: u64) -> Vec<CtEntry> {
        let mut v = Vec::new();
        for idx in 0..self.store.high_water() {
            let Some((c, exp)) = self.store.conn_at(idx) else {
                continue;
            };
            if c.info & (I_LIVE | I_PUB) == I_LIVE | I_PUB
                && exp > now
                && zone.is_none_or(|z| z == c.zone())
            {
                v.extend(Self::entry(&c, now));
            }
        }
        v
    }
}
