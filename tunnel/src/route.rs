//! The outer route table: longest-prefix match over IPv4 and IPv6 routes.
//!
//! Filled by the control plane (a netlink reader mirroring the kernel's main table, or static
//! configuration) through [`RouteTable::add`] / [`RouteTable::remove`]; consulted when a tunnel
//! template is built, never per packet. Each change bumps [`RouteTable::generation`], so
//! templates built from an older generation can be found and rebuilt.
//!
//! Routes are kept sorted by prefix length (longest first), then metric; a lookup is a linear
//! scan that stops at the first match. Underlay tables of a Kubernetes node hold a handful of
//! routes, so this beats a trie on both code size and speed; swap in a trie if that changes.

use std::net::IpAddr;

use crate::error::TableError;

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix (host bits are ignored).
    pub prefix: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Next-hop gateway; `None` for a directly connected destination.
    pub gateway: Option<IpAddr>,
    /// Output interface (kernel ifindex or xvs port number, as the filler chooses).
    pub oif: u32,
    /// Preferred source address (`src` of the kernel route).
    pub pref_src: Option<IpAddr>,
    /// Metric: among equal prefixes the lowest wins.
    pub metric: u32,
}

/// The result of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// The address to resolve with ARP/ND: the gateway, or the destination itself.
    pub ip: IpAddr,
    /// Output interface.
    pub oif: u32,
    /// Preferred source address.
    pub pref_src: Option<IpAddr>,
    /// True when the destination is on-link.
    pub direct: bool,
}

/// A longest-prefix-match table for IPv4 and IPv6.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    v4: Vec<(u32, u32, Route)>,
    v6: Vec<(u128, u128, Route)>,
    generation: u64,
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

fn same_family(a: IpAddr, b: Option<IpAddr>) -> bool {
    b.is_none_or(|b| a.is_ipv4() == b.is_ipv4())
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Incremented on every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `r`, replacing a route with the same prefix, length and metric (as `ip route
    /// replace` does).
    pub fn add(&mut self, r: Route) -> Result<(), TableError> {
        if !same_family(r.prefix, r.gateway) || !same_family(r.prefix, r.pref_src) {
            return Err(TableError::FamilyMismatch);
        }
        let key = (r.prefix_len, r.metric);
        match r.prefix {
            IpAddr::V4(a) => {
                if r.prefix_len > 32 {
                    return Err(TableError::BadPrefix);
                }
                let m = mask4(r.prefix_len);
                let net = u32::from(a) & m;
                self.v4
                    .retain(|(n, _, x)| !(*n == net && (x.prefix_len, x.metric) == key));
                let pos = self.v4.partition_point(|(_, _, x)| {
                    (std::cmp::Reverse(x.prefix_len), x.metric)
                        <= (std::cmp::Reverse(r.prefix_len), r.metric)
                });
                self.v4.insert(pos, (net, m, r));
            }
            IpAddr::V6(a) => {
                if r.prefix_len > 128 {
                    return Err(TableError::BadPrefix);
                }
                let m = mask6(r.prefix_len);
                let net = u128::from(a) & m;
                self.v6
                    .retain(|(n, _, x)| !(*n == net && (x.prefix_len, x.metric) == key));
                let pos = self.v6.partition_point(|(_, _, x)| {
                    (std::cmp::Reverse(x.prefix_len), x.metric)
                        <= (std::cmp::Reverse(r.prefix_len), r.metric)
                });
                self.v6.insert(pos, (net, m, r));
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// Removes the route with this prefix, length and metric; true when one was removed.
    pub fn remove(&mut self, prefix: IpAddr, prefix_len: u8, metric: u32) -> bool {
        let before = self.len();
        match prefix {
            IpAddr::V4(a) => {
                let net = u32::from(a) & mask4(prefix_len.min(32));
                self.v4.retain(|(n, _, x)| {
                    !(*n == net && x.prefix_len == prefix_len && x.metric == metric)
                });
            }
            IpAddr::V6(a) => {
                let net = u128::from(a) & mask6(prefix_len.min(128));
                self.v6.retain(|(n, _, x)| {
                    !(*n == net && x.prefix_len == prefix_len && x.metric == metric)
                });
            }
        }
        let removed = self.len() != before;
        if removed {
            self.generation += 1;
        }
        removed
    }

    /// Removes every route (before a full resync from the kernel).
    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
        self.generation += 1;
    }

    /// Every route, IPv4 first, each family most specific first.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.v4
            .iter()
            .map(|(_, _, r)| r)
            .chain(self.v6.iter().map(|(_, _, r)| r))
    }

    /// The most specific route to `dst` (lowest metric among equals).
    pub fn lookup_route(&self, dst: IpAddr) -> Option<&Route> {
        match dst {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find(|(n, m, _)| a & m == *n)
                    .map(|(_, _, r)| r)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find(|(n, m, _)| a & m == *n)
                    .map(|(_, _, r)| r)
            }
        }
    }

    /// The next hop towards `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        self.lookup_route(dst).map(|r| NextHop {
            ip: r.gateway.unwrap_or(dst),
            oif: r.oif,
            pref_src: r.pref_src,
            direct: r.gateway.is_none(),
        })
    }
}
