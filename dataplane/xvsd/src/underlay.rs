//! The control side of tunnels: mirrors the kernel's routes, neighbours and the uplink's
//! MTU/MAC/addresses (rtnetlink) into an [`Underlay`] published to the workers, and turns the
//! workers' resolution requests into kernel neighbour resolutions.
//!
//! The kernel stays the owner of the node's addressing: the uplink's XDP program passes ARP,
//! ND and every non-tunnel frame to it, so its neighbour table learns the replies; a change
//! notification makes the control thread re-read the tables, and a new underlay is published
//! only when the addressing a worker uses actually changed (neighbour state churn such as
//! REACHABLE -> STALE does not flush the workers' caches).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xvs_classifier::publish::{Publisher, Reader};
use xvs_engine::tunnel::{SolicitRequest, Underlay};
use xvs_tunnel::{NeighConfig, Route, RouteTable};

use crate::netlink::Netlink;

/// Neighbour entries a worker keeps packets for, and packets per entry.
pub const NEIGH_ENTRIES: usize = 32;
/// Packets parked per next hop.
pub const NEIGH_QUEUE: usize = 8;
/// Most frames a worker's parked packets can hold (added to the uplink's pool share).
pub const PARKED_FRAMES_MAX: usize = NEIGH_ENTRIES * NEIGH_QUEUE;

/// Full re-read of the kernel tables at least this often, in case a notification was lost.
const RESYNC: Duration = Duration::from_secs(5);

/// The workers' neighbour-parking limits.
pub fn neigh_config() -> NeighConfig {
    NeighConfig {
        max_entries: NEIGH_ENTRIES,
        queue_len: NEIGH_QUEUE,
        max_requests: 3,
        retry_ms: 1000,
        reachable_ms: u64::MAX / 2,
    }
}

/// Kernel mirror and publisher.
pub struct UnderlayControl {
    requests: Netlink,
    monitor: Netlink,
    ifindex: u32,
    publisher: Publisher<Underlay>,
    solicits: Vec<rtrb::Consumer<SolicitRequest>>,
    last_sync: Instant,
    /// Resolutions asked of the kernel, and failures to ask.
    pub resolutions: u64,
    /// Failed netlink requests (the last error is kept for `xvs/show`).
    pub errors: u64,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for UnderlayControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnderlayControl")
            .field("ifindex", &self.ifindex)
            .field("version", &self.publisher.version())
            .finish_non_exhaustive()
    }
}

impl UnderlayControl {
    /// Reads the kernel's state for uplink `ifname` and publishes it as version 1.
    pub fn new(ifname: &str) -> Result<Self> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .with_context(|| format!("uplink {ifname}: no such interface"))?;
        let mut requests = Netlink::requests()?;
        // Subscribe before the first read, so no change falls between the two.
        let monitor = Netlink::monitor()?;
        let mut first = read(&mut requests, ifindex)?;
        first.version = 1;
        Ok(Self {
            requests,
            monitor,
            ifindex,
            publisher: Publisher::new(Arc::new(first)),
            solicits: Vec::new(),
            last_sync: Instant::now(),
            resolutions: 0,
            errors: 0,
            last_error: None,
        })
    }

    /// A worker's reader and the control end of its resolution-request queue.
    pub fn worker(&mut self) -> (Reader<Underlay>, rtrb::Producer<SolicitRequest>) {
        let (tx, rx) = rtrb::RingBuffer::new(xvs_engine::tunnel::SOLICIT_QUEUE);
        self.solicits.push(rx);
        (self.publisher.reader(), tx)
    }

    /// One control-loop step: forwards resolution requests to the kernel and re-reads the
    /// tables after a change notification (or every few seconds).
    pub fn poll(&mut self) {
        let mut asked = HashSet::new();
        for q in &mut self.solicits {
            while let Ok(r) = q.pop() {
                if asked.insert(r.ip) {
                    match self.requests.resolve(r.ip, r.oif) {
                        Ok(()) => self.resolutions += 1,
                        Err(e) => {
                            self.errors += 1;
                            self.last_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
        }
        if self.monitor.changed() || self.last_sync.elapsed() >= RESYNC {
            self.sync();
        }
        self.publisher.reclaim();
    }

    fn sync(&mut self) {
        self.last_sync = Instant::now();
        match read(&mut self.requests, self.ifindex) {
            Ok(mut next) => {
                if !next.same_addressing(self.publisher.current()) {
                    next.version = self.publisher.version() + 1;
                    self.publisher.publish(Arc::new(next));
                }
            }
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(format!("{e:#}"));
            }
        }
    }

    /// A description for `xvs/show`.
    pub fn describe(&self) -> String {
        let u = self.publisher.current();
        let mut s = format!(
            "  underlay (version {}): uplink ifindex {} mtu {} mac {}, {} routes, {} neighbours, \
             resolutions asked {}, netlink errors {}\n",
            u.version,
            u.uplink_ifindex,
            u.uplink_mtu,
            mac_str(&u.uplink_mac),
            u.routes.len(),
            u.neighbours.len(),
            self.resolutions,
            self.errors
        );
        let mut n: Vec<_> = u.neighbours.iter().collect();
        n.sort();
        for (ip, mac) in n {
            s.push_str(&format!("    neighbour {ip} -> {}\n", mac_str(mac)));
        }
        if let Some(e) = &self.last_error {
            s.push_str(&format!("    last netlink error: {e}\n"));
        }
        s
    }
}

fn mac_str(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Reads the uplink's link, addresses, the main table's routes and the uplink's neighbours.
fn read(nl: &mut Netlink, ifindex: u32) -> Result<Underlay> {
    let link = nl.link(ifindex)?;
    let addrs = nl.addresses(ifindex)?;
    let mut routes = RouteTable::new();
    for r in nl.routes()? {
        // A route table refusal (bad prefix) only loses that route.
        let _ = routes.add(Route {
            prefix: r.dst,
            prefix_len: r.len,
            gateway: r.gateway,
            oif: r.oif,
            pref_src: r.pref_src,
            metric: r.metric,
        });
    }
    let neighbours: HashMap<_, _> = nl.neighbours(ifindex)?.into_iter().collect();
    Ok(Underlay {
        version: 0,
        routes,
        neighbours,
        uplink_ifindex: ifindex,
        uplink_mac: link.mac,
        uplink_mtu: link.mtu,
        uplink_addrs: addrs,
    })
}
