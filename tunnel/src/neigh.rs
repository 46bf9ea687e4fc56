//! The neighbour table: next-hop IP -> MAC, with a bounded queue of packets waiting for
//! resolution (sans-IO).
//!
//! OVS's native tunnels drop the packet that misses the neighbour cache and send an ARP request
//! (Antrea issue 467: the first packet of every new peer is lost). Here a miss creates an
//! *incomplete* entry that holds up to [`NeighConfig::queue_len`] packet handles (any type the
//! engine chooses: a buffer index, a packet) and asks for one ARP request / neighbour
//! solicitation. When the reply is learnt ([`NeighTable::learn`]) the handles are given back to
//! be encapsulated and sent. Retries are bounded; when they run out the queued handles come
//! back as [`NeighEvent::Failed`] to be freed and counted.
//!
//! Time is the `now` argument (any monotonic clock in milliseconds). The owner calls
//! [`NeighTable::handle_timeout`] when [`NeighTable::poll_timeout`] says, and drains
//! [`NeighTable::poll_event`] to send requests and free failed packets. A netlink reader can
//! feed kernel neighbours through [`NeighTable::learn`] too.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use xvs_packet::build;
use xvs_packet::wire::MacAddr;

use crate::error::TableError;

/// Limits and timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighConfig {
    /// Maximum number of entries (resolved and incomplete).
    pub max_entries: usize,
    /// Packets held per incomplete entry; more are dropped.
    pub queue_len: usize,
    /// Requests sent for one resolution before giving up (the first included).
    pub max_requests: u32,
    /// Time between requests, ms.
    pub retry_ms: u64,
    /// Lifetime of a resolved entry since it was last learnt, ms (OVS: 15 min idle).
    pub reachable_ms: u64,
}

impl Default for NeighConfig {
    fn default() -> Self {
        Self {
            max_entries: 4096,
            queue_len: 16,
            max_requests: 3,
            retry_ms: 1000,
            reachable_ms: 15 * 60 * 1000,
        }
    }
}

/// The state of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NeighState<H> {
    /// The MAC is known until `expires`.
    Resolved {
        /// The next hop's MAC.
        mac: MacAddr,
        /// When the entry goes away unless learnt again.
        expires: u64,
    },
    /// A request is outstanding; packets wait.
    Incomplete {
        /// Waiting packets, oldest first.
        queue: VecDeque<H>,
        /// Requests sent so far.
        requests: u32,
        /// When to send the next request, or give up.
        next: u64,
    },
}

#[derive(Clone, Debug)]
struct Entry<H> {
    oif: u32,
    state: NeighState<H>,
}

/// The answer to [`NeighTable::resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution<H> {
    /// Send now with this MAC; the handle is given back.
    Ready(MacAddr, H),
    /// The handle is queued until the neighbour answers.
    Queued,
    /// The handle could not be queued; drop it and count `reason`.
    Dropped(H, NeighDrop),
}

/// Why a packet waiting for a neighbour was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NeighDrop {
    /// The entry's queue was full.
    QueueFull,
    /// The table was full and no entry could be created.
    TableFull,
    /// The neighbour never answered.
    Unreachable,
}

/// Something for the owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NeighEvent<H> {
    /// Send an ARP request (IPv4) or neighbour solicitation (IPv6) for `ip` on `oif`;
    /// [`build_solicit`] writes it.
    Solicit {
        /// The address to resolve.
        ip: IpAddr,
        /// The interface to send on.
        oif: u32,
    },
    /// Resolution of `ip` failed; drop `handle` ([`NeighDrop::Unreachable`]).
    Failed {
        /// The address that did not answer.
        ip: IpAddr,
        /// A packet that waited for it.
        handle: H,
    },
}

/// The neighbour table. Single owner (the control thread, or one worker); not shared.
#[derive(Clone, Debug)]
pub struct NeighTable<H> {
    cfg: NeighConfig,
    entries: HashMap<IpAddr, Entry<H>>,
    events: VecDeque<NeighEvent<H>>,
}

impl<H> NeighTable<H> {
    /// An empty table.
    pub fn new(cfg: NeighConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting in incomplete entries.
    pub fn queued(&self) -> usize {
        self.entries
            .values()
            .map(|e| match &e.state {
                NeighState::Incomplete { queue, .. } => queue.len(),
                NeighState::Resolved { .. } => 0,
            })
            .sum()
    }

    /// The state of `ip`'s entry.
    pub fn state(&self, ip: IpAddr) -> Option<&NeighState<H>> {
        self.entries.get(&ip).map(|e| &e.state)
    }

    /// The MAC of `ip` if resolved and not expired at `now`.
    pub fn lookup(&self, ip: IpAddr, now: u64) -> Option<MacAddr> {
        match self.entries.get(&ip).map(|e| &e.state) {
            Some(NeighState::Resolved { mac, expires }) if *expires > now => Some(*mac),
            _ => None,
        }
    }

    /// Resolves `ip` for packet `handle` leaving by `oif`: gives it back with the MAC, or
    /// queues it (starting a resolution with a [`NeighEvent::Solicit`] on a new miss), or
    /// gives it back to drop.
    pub fn resolve(&mut self, ip: IpAddr, oif: u32, handle: H, now: u64) -> Resolution<H> {
        let cfg = self.cfg;
        if let Some(e) = self.entries.get_mut(&ip) {
            match &mut e.state {
                NeighState::Resolved { mac, expires } if *expires > now => {
                    return Resolution::Ready(*mac, handle)
                }
                NeighState::Incomplete { queue, .. } => {
                    if queue.len() >= cfg.queue_len {
                        return Resolution::Dropped(handle, NeighDrop::QueueFull);
                    }
                    queue.push_back(handle);
                    return Resolution::Queued;
                }
                NeighState::Resolved { .. } => {}
            }
        } else if self.entries.len() >= cfg.max_entries {
            return Resolution::Dropped(handle, NeighDrop::TableFull);
        }
        // New or expired entry: start a resolution.
        if cfg.queue_len == 0 {
            self.start(ip, oif, VecDeque::new(), now);
            return Resolution::Dropped(handle, NeighDrop::QueueFull);
        }
        let mut queue = VecDeque::with_capacity(cfg.queue_len);
        queue.push_back(handle);
        self.start(ip, oif, queue, now);
        Resolution::Queued
    }

    fn start(&mut self, ip: IpAddr, oif: u32, queue: VecDeque<H>, now: u64) {
        self.entries.insert(
            ip,
            Entry {
                oif,
                state: NeighState::Incomplete {
                    queue,
                    requests: 1,
                    next: now.saturating_add(self.cfg.retry_ms),
                },
            },
        );
        self.events.push_back(NeighEvent::Solicit { ip, oif });
    }

    /// Records that `ip` is at `mac` (from an ARP reply/request, a neighbour advertisement, or
    /// the kernel's table) on `oif`, and returns the packets that waited for it, oldest first.
    /// An unknown address is added when there is room.
    pub fn learn(&mut self, ip: IpAddr, mac: MacAddr, oif: u32, now: u64) -> VecDeque<H> {
        let expires = now.saturating_add(self.cfg.reachable_ms);
        let resolved = NeighState::Resolved { mac, expires };
        match self.entries.get_mut(&ip) {
            Some(e) => {
                e.oif = oif;
                match core::mem::replace(&mut e.state, resolved) {
                    NeighState::Incomplete { queue, .. } => queue,
                    NeighState::Resolved { .. } => VecDeque::new(),
                }
            }
            None => {
                if self.entries.len() < self.cfg.max_entries {
                    self.entries.insert(
                        ip,
                        Entry {
                            oif,
                            state: resolved,
                        },
                    );
                }
                VecDeque::new()
            }
        }
    }

    /// Forgets `ip` (e.g. the kernel deleted it); queued packets come back as failures.
    pub fn remove(&mut self, ip: IpAddr) {
        if let Some(Entry {
            state: NeighState::Incomplete { queue, .. },
            ..
        }) = self.entries.remove(&ip)
        {
            self.events.extend(
                queue
                    .into_iter()
                    .map(|handle| NeighEvent::Failed { ip, handle }),
            );
        }
    }

    /// The earliest time at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.entries
            .values()
            .map(|e| match &e.state {
                NeighState::Resolved { expires, .. } => *expires,
                NeighState::Incomplete { next, .. } => *next,
            })
            .min()
    }

    /// Expires resolved entries, re-sends requests that are due, and fails resolutions that
    /// used up their requests.
    pub fn handle_timeout(&mut self, now: u64) {
        let cfg = self.cfg;
        let events = &mut self.events;
        self.entries.retain(|ip, e| match &mut e.state {
            NeighState::Resolved { expires, .. } => *expires > now,
            NeighState::Incomplete {
                queue,
                requests,
                next,
            } => {
                if *next > now {
                    return true;
                }
                if *requests >= cfg.max_requests {
                    events.extend(
                        queue
                            .drain(..)
                            .map(|handle| NeighEvent::Failed { ip: *ip, handle }),
                    );
                    return false;
                }
                *requests += 1;
                *next = now.saturating_add(cfg.retry_ms);
                events.push_back(NeighEvent::Solicit {
                    ip: *ip,
                    oif: e.oif,
                });
                true
            }
        });
    }

    /// The next thing to do, if any.
    pub fn poll_event(&mut self) -> Option<NeighEvent<H>> {
        self.events.pop_front()
    }
}

/// Writes the request for `target` into `buf`: a broadcast ARP request from `src_mac`/`src_ip`
/// for IPv4, a neighbour solicitation to the solicited-node address for IPv6. Returns its
/// length.
pub fn build_solicit(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: IpAddr,
    target: IpAddr,
) -> Result<usize, TableError> {
    let r = match (src_ip, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => build::arp_request(buf, src_mac, s.octets(), t.octets()),
        (IpAddr::V6(s), IpAddr::V6(t)) => build::nd_ns(buf, src_mac, s.octets(), t.octets()),
        _ => return Err(TableError::FamilyMismatch),
    };
    r.map_err(|_| TableError::Truncated)
}

/// What an ARP packet or neighbour advertisement received on the uplink teaches: the sender's
/// (ARP request or reply: SPA/SHA) or the target's (NA: target and its link-layer option)
/// address and MAC, to give to [`NeighTable::learn`]. This is how OVS fills its tunnel
/// neighbour cache (snooping). Checksums are verified for NA; anything else gives `None`.
pub fn snoop(frame: &[u8]) -> Option<(IpAddr, MacAddr)> {
    use xvs_packet::wire::{arp, ethertype, icmpv6, ip_proto, ipv6};
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let l3 = frame.get(14..)?;
    match et {
        ethertype::ARP => {
            let p = arp::Packet::new_checked(l3).ok()?;
            let spa = p.spa();
            (p.is_ethernet_ipv4() && spa != [0; 4]).then(|| (IpAddr::from(spa), p.sha()))
        }
        ethertype::IPV6 => {
            let ip = ipv6::Packet::new_checked(l3).ok()?;
            if ip.next_header() != ip_proto::ICMPV6 || ip.hop_limit() != 255 {
                return None;
            }
            let ic = icmpv6::Packet::new_checked(ip.payload()).ok()?;
            if ic.msg_type() != icmpv6::TYPE_NEIGHBOR_ADVERT
                || !ic.verify_checksum(&ip.src(), &ip.dst())
            {
                return None;
            }
            Some((IpAddr::from(ic.nd_target()), ic.target_ll_addr()?))
        }
        _ => None,
    }
}
