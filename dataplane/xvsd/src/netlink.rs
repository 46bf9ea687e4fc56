//! A small rtnetlink client: dumps of links, addresses, routes and neighbours, a subscription
//! to their changes, and the request that makes the kernel resolve a neighbour.
//!
//! Messages are built and parsed at byte offsets (native-endian netlink headers, the kernel's
//! `ifinfomsg`/`ifaddrmsg`/`rtmsg`/`ndmsg` and `rtattr` TLVs); the sockets come from `nix`, so
//! no `unsafe` is needed here.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const IFLA_ADDRESS: u16 = 1;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
/// Neighbour states with a usable link-layer address (REACHABLE, STALE, DELAY, PROBE, NOARP,
/// PERMANENT): STALE still forwards in the kernel too.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// `ndm_flags`: "use" the entry, i.e. start resolving it (`neigh_event_send`).
const NTF_USE: u8 = 0x01;

/// Multicast groups: links, neighbours, IPv4/IPv6 addresses and routes.
const MONITOR_GROUPS: u32 = 0x1 | 0x4 | 0x10 | 0x40 | 0x100 | 0x400;

/// A link's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// MTU.
    pub mtu: u32,
    /// MAC.
    pub mac: [u8; 6],
}

/// A unicast route of the main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination prefix.
    pub dst: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: u32,
    /// Preferred source.
    pub pref_src: Option<IpAddr>,
    /// Metric.
    pub metric: u32,
}

/// One rtnetlink socket.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_ne_bytes());
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_ne_bytes());
}

fn ne16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

fn ne32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Iterates `(type, payload)` of the rtattrs in `b`.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(ne16(b, 0));
        if len < 4 || len > b.len() {
            return None;
        }
        let (ty, data) = (ne16(b, 2) & 0x3fff, &b[4..len]);
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some((ty, data))
    })
}

fn ip_of(data: &[u8]) -> Option<IpAddr> {
    match data.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(data).ok()?)),
        _ => None,
    }
}

impl Netlink {
    /// A socket for requests (`groups` = 0) or one subscribed to changes (non-blocking).
    fn open(groups: u32) -> Result<Self> {
        let flags = if groups != 0 {
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK
        } else {
            SockFlag::SOCK_CLOEXEC
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            flags,
            SockProtocol::NetlinkRoute,
        )
        .context("opening an rtnetlink socket")?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).context("binding rtnetlink")?;
        Ok(Self {
            fd,
            seq: 1,
            buf: vec![0; 1 << 16],
        })
    }

    /// A request socket.
    pub fn requests() -> Result<Self> {
        Self::open(0)
    }

    /// A socket that receives link, address, route and neighbour changes.
    pub fn monitor() -> Result<Self> {
        Self::open(MONITOR_GROUPS)
    }

    /// Drains pending change notifications; true when there was at least one.
    pub fn changed(&mut self) -> bool {
        let mut any = false;
        loop {
            match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return any,
                Ok(_) => any = true,
                // ENOBUFS: notifications were lost; a resync covers them.
                Err(Errno::ENOBUFS) => any = true,
                Err(_) => return any,
            }
        }
    }

    fn request(&mut self, ty: u16, flags: u16, body: &[u8]) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut m = Vec::with_capacity(16 + body.len());
        put_u32(&mut m, (16 + body.len()) as u32);
        put_u16(&mut m, ty);
        put_u16(&mut m, flags);
        put_u32(&mut m, self.seq);
        put_u32(&mut m, 0);
        m.extend_from_slice(body);
        send(self.fd.as_raw_fd(), &m, MsgFlags::empty()).context("netlink send")?;
        Ok(self.seq)
    }

    /// Sends a dump request and calls `f(type, payload)` for every answer message.
    fn dump(&mut self, ty: u16, body: &[u8], mut f: impl FnMut(u16, &[u8])) -> Result<()> {
        let seq = self.request(ty, NLM_F_REQUEST | NLM_F_DUMP, body)?;
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())
                .context("netlink recv")?;
            let mut off = 0;
            while off + 16 <= n {
                let b = &self.buf[off..n];
                let len = ne32(b, 0) as usize;
                if len < 16 || len > b.len() {
                    break;
                }
                let (mty, mseq) = (ne16(b, 4), ne32(b, 8));
                if mseq == seq {
                    match mty {
                        NLMSG_DONE => return Ok(()),
                        NLMSG_ERROR => {
                            let e = ne32(b, 16) as i32;
                            if e != 0 {
                                bail!("netlink dump {ty}: error {}", -e);
                            }
                        }
                        _ => f(mty, &b[16..len]),
                    }
                }
                off += align4(len);
            }
        }
    }

    /// MTU and MAC of interface `ifindex`.
    pub fn link(&mut self, ifindex: u32) -> Result<Link> {
        let mut body = vec![AF_UNSPEC, 0];
        put_u16(&mut body, 0);
        body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        put_u32(&mut body, 0);
        put_u32(&mut body, 0);
        let mut found = None;
        self.dump(RTM_GETLINK, &body, |ty, p| {
            if ty != RTM_NEWLINK || ne32(p, 4) != ifindex {
                return;
            }
            let mut l = Link {
                mtu: 0,
                mac: [0; 6],
            };
            for (at, data) in attrs(p.get(16..).unwrap_or(&[])) {
                match at {
                    IFLA_MTU => l.mtu = ne32(data, 0),
                    IFLA_ADDRESS if data.len() == 6 => l.mac.copy_from_slice(data),
                    _ => {}
                }
            }
            found = Some(l);
        })?;
        found.with_context(|| format!("interface {ifindex} not found"))
    }

    /// The addresses of interface `ifindex`.
    pub fn addresses(&mut self, ifindex: u32) -> Result<Vec<IpAddr>> {
        let body = [AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0];
        let mut out = Vec::new();
        self.dump(RTM_GETADDR, &body, |ty, p| {
            if ty != RTM_NEWADDR || ne32(p, 4) != ifindex {
                return;
            }
            let mut local = None;
            let mut addr = None;
            for (at, data) in attrs(p.get(8..).unwrap_or(&[])) {
                match at {
                    IFA_LOCAL => local = ip_of(data),
                    IFA_ADDRESS => addr = ip_of(data),
                    _ => {}
                }
            }
            if let Some(a) = local.or(addr) {
                // Link-local IPv6 cannot be a tunnel endpoint.
                let link_local = matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80);
                if !link_local {
                    out.push(a);
                }
            }
        })?;
        Ok(out)
    }

    /// Unicast routes of the main table (IPv4 and IPv6).
    pub fn routes(&mut self) -> Result<Vec<KernelRoute>> {
        let body = [AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut out = Vec::new();
        self.dump(RTM_GETROUTE, &body, |ty, p| {
            if ty != RTM_NEWROUTE || p.len() < 12 {
                return;
            }
            let (family, dst_len, mut table, rtype) = (p[0], p[1], u32::from(p[4]), p[7]);
            if rtype != RTN_UNICAST {
                return;
            }
            let mut r = KernelRoute {
                dst: if family == AF_INET6 {
                    IpAddr::from([0u8; 16])
                } else {
                    IpAddr::from([0u8; 4])
                },
                len: dst_len,
                gateway: None,
                oif: 0,
                pref_src: None,
                metric: 0,
            };
            if family != AF_INET && family != AF_INET6 {
                return;
            }
            for (at, data) in attrs(&p[12..]) {
                match at {
                    RTA_DST => r.dst = ip_of(data).unwrap_or(r.dst),
                    RTA_GATEWAY => r.gateway = ip_of(data),
                    RTA_OIF => r.oif = ne32(data, 0),
                    RTA_PREFSRC => r.pref_src = ip_of(data),
                    RTA_PRIORITY => r.metric = ne32(data, 0),
                    RTA_TABLE => table = ne32(data, 0),
                    _ => {}
                }
            }
            if table == RT_TABLE_MAIN && r.oif != 0 {
                out.push(r);
            }
        })?;
        Ok(out)
    }

    /// Neighbours with a usable MAC on `ifindex`.
    pub fn neighbours(&mut self, ifindex: u32) -> Result<Vec<(IpAddr, [u8; 6])>> {
        let body = [AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut out = Vec::new();
        self.dump(RTM_GETNEIGH, &body, |ty, p| {
            if ty != RTM_NEWNEIGH || p.len() < 12 || ne32(p, 4) != ifindex {
                return;
            }
            if ne16(p, 8) & NUD_VALID == 0 {
                return;
            }
            let mut ip = None;
            let mut mac = None;
            for (at, data) in attrs(&p[12..]) {
                match at {
                    NDA_DST => ip = ip_of(data),
                    NDA_LLADDR if data.len() == 6 => {
                        let mut m = [0u8; 6];
                        m.copy_from_slice(data);
                        mac = Some(m);
                    }
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                out.push((ip, mac));
            }
        })?;
        Ok(out)
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (an ARP request / neighbour solicitation
    /// from the kernel's own neighbour machinery), creating the entry if needed. The answer
    /// arrives as a neighbour change.
    pub fn resolve(&mut self, ip: IpAddr, ifindex: u32) -> Result<()> {
        let (family, addr): (u8, Vec<u8>) = match ip {
            IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
            IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
        };
        let mut body = vec![family, 0];
        put_u16(&mut body, 0);
        body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        put_u16(&mut body, 0); // NUD_NONE: the kernel starts from nothing
        body.push(NTF_USE);
        body.push(0);
        put_u16(&mut body, (4 + addr.len()) as u16);
        put_u16(&mut body, NDA_DST);
        body.extend_from_slice(&addr);
        let seq = self.request(
            RTM_NEWNEIGH,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &body,
        )?;
        // Read the acknowledgement so the socket does not accumulate them.
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())
                .context("netlink recv")?;
            let b = &self.buf[..n];
            if n >= 20 && ne16(b, 4) == NLMSG_ERROR && ne32(b, 8) == seq {
                let e = ne32(b, 16) as i32;
                if e != 0 {
                    bail!("resolving {ip}: netlink error {}", -e);
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_and_stop_at_garbage() {
        let mut b = Vec::new();
        put_u16(&mut b, 8);
        put_u16(&mut b, RTA_OIF);
        put_u32(&mut b, 7);
        put_u16(&mut b, 8);
        put_u16(&mut b, RTA_GATEWAY);
        b.extend_from_slice(&[10, 0, 0, 1]);
        put_u16(&mut b, 200); // longer than what is left
        put_u16(&mut b, 1);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, d)| (t, d.to_vec())).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (RTA_OIF, 7u32.to_ne_bytes().to_vec()));
        assert_eq!(ip_of(&got[1].1), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(attrs(&[1, 0]).count(), 0);
    }
}
