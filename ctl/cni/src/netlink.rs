//! The rtnetlink requests the plugin needs (veth pairs across namespaces, link state,
//! addresses, routes), built and parsed at byte offsets; sockets and `setns` come from `nix`,
//! so no `unsafe` is needed. Namespaces are entered on a scoped thread: `setns` of a network
//! namespace changes only the calling thread, so the plugin's main thread never moves.

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_XDP: u16 = 43;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFF_UP: u32 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// An XDP program is attached (xvsd attaches one to every AF_XDP port).
    pub xdp_attached: bool,
}

/// A route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub dst: Ipv4Addr,
    /// Prefix length.
    pub dst_len: u8,
    /// Next hop.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface.
    pub oif: u32,
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_ne_bytes());
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_ne_bytes());
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends an rtattr.
fn attr(b: &mut Vec<u8>, ty: u16, data: &[u8]) {
    put_u16(b, (4 + data.len()) as u16);
    put_u16(b, ty);
    b.extend_from_slice(data);
    b.resize(align4(b.len()), 0);
}

/// Opens a nested rtattr; [`nest_end`] writes its length.
fn nest_start(b: &mut Vec<u8>, ty: u16) -> usize {
    let at = b.len();
    put_u16(b, 0);
    // Strictly validating families (ethtool) insist on the flag; the others ignore it.
    put_u16(b, ty | NLA_F_NESTED);
    at
}

fn nest_end(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u16;
    b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

fn name_attr(b: &mut Vec<u8>, name: &str) {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    attr(b, IFLA_IFNAME, &n);
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![AF_UNSPEC, 0];
    put_u16(&mut b, 0);
    put_u32(&mut b, index);
    put_u32(&mut b, flags);
    put_u32(&mut b, change);
    b
}

fn ne16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

fn ne32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Iterates `(type, payload)` of the rtattrs in `b`, stopping at anything malformed.
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

fn ipv4(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from)
}

fn parse_link(p: &[u8]) -> LinkInfo {
    let mut l = LinkInfo {
        index: ne32(p, 4),
        name: String::new(),
        mac: [0; 6],
        mtu: 0,
        up: ne32(p, 8) & IFF_UP != 0,
        xdp_attached: false,
    };
    for (ty, data) in attrs(p.get(16..).unwrap_or(&[])) {
        match ty {
            IFLA_IFNAME => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                l.name = String::from_utf8_lossy(&data[..end]).into_owned();
            }
            IFLA_ADDRESS if data.len() == 6 => l.mac.copy_from_slice(data),
            IFLA_MTU => l.mtu = ne32(data, 0),
            IFLA_XDP => {
                l.xdp_attached = attrs(data)
                    .any(|(t, d)| t == IFLA_XDP_ATTACHED && d.first().is_some_and(|m| *m != 0));
            }
            _ => {}
        }
    }
    l
}

/// One rtnetlink socket, bound to the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, Errno> {
        Self::open_protocol(SockProtocol::NetlinkRoute)
    }

    fn open_protocol(protocol: SockProtocol) -> Result<Self, Errno> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Self {
            fd,
            seq: 1,
            buf: vec![0; 1 << 16],
        })
    }

    /// Sends a request and feeds every answer message of type != error/done to `f`, until the
    /// dump ends (dumps) or the kernel acknowledges (everything else is sent with ACK).
    fn transact(
        &mut self,
        ty: u16,
        flags: u16,
        body: &[u8],
        mut f: impl FnMut(u16, &[u8]),
    ) -> Result<(), Errno> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut m = Vec::with_capacity(16 + body.len());
        put_u32(&mut m, (16 + body.len()) as u32);
        put_u16(&mut m, ty);
        put_u16(&mut m, flags);
        put_u32(&mut m, seq);
        put_u32(&mut m, 0);
        m.extend_from_slice(body);
        send(self.fd.as_raw_fd(), &m, MsgFlags::empty())?;
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())?;
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
                                return Err(Errno::from_raw(-e));
                            }
                            if !dump {
                                return Ok(());
                            }
                        }
                        _ => f(mty, &b[16..len]),
                    }
                }
                off += align4(len);
            }
        }
    }

    /// Creates the veth pair `host` / `peer`, with the peer created directly inside the network
    /// namespace `peer_netns` with MAC `peer_mac`; both ends get `mtu` when given.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_mac: [u8; 6],
        peer_netns: impl AsFd,
        mtu: Option<u32>,
    ) -> Result<(), Errno> {
        let mut b = ifinfomsg(0, 0, 0);
        name_attr(&mut b, host);
        if let Some(m) = mtu {
            attr(&mut b, IFLA_MTU, &m.to_ne_bytes());
        }
        let info = nest_start(&mut b, IFLA_LINKINFO);
        attr(&mut b, IFLA_INFO_KIND, b"veth\0");
        let data = nest_start(&mut b, IFLA_INFO_DATA);
        let p = nest_start(&mut b, VETH_INFO_PEER);
        b.extend_from_slice(&ifinfomsg(0, 0, 0));
        name_attr(&mut b, peer);
        attr(&mut b, IFLA_ADDRESS, &peer_mac);
        if let Some(m) = mtu {
            attr(&mut b, IFLA_MTU, &m.to_ne_bytes());
        }
        let fd = peer_netns.as_fd().as_raw_fd() as u32;
        attr(&mut b, IFLA_NET_NS_FD, &fd.to_ne_bytes());
        nest_end(&mut b, p);
        nest_end(&mut b, data);
        nest_end(&mut b, info);
        self.transact(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &b, |_, _| {})
    }

    /// The link named `name`, `None` when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, Errno> {
        let mut b = ifinfomsg(0, 0, 0);
        name_attr(&mut b, name);
        let mut found = None;
        match self.transact(RTM_GETLINK, 0, &b, |ty, p| {
            if ty == RTM_NEWLINK {
                found = Some(parse_link(p));
            }
        }) {
            Ok(()) => Ok(found),
            Err(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets link `index` administratively up.
    pub fn set_up(&mut self, index: u32) -> Result<(), Errno> {
        self.transact(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP, IFF_UP), |_, _| {})
    }

    /// Deletes link `index` (a veth takes its peer along).
    pub fn delete(&mut self, index: u32) -> Result<(), Errno> {
        self.transact(RTM_DELLINK, 0, &ifinfomsg(index, 0, 0), |_, _| {})
    }

    /// Adds `ip/prefix_len` to link `index`.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> Result<(), Errno> {
        let mut b = vec![AF_INET, prefix_len, 0, 0];
        put_u32(&mut b, index);
        attr(&mut b, IFA_LOCAL, &ip.octets());
        attr(&mut b, IFA_ADDRESS, &ip.octets());
        self.transact(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &b, |_, _| {})
    }

    /// The IPv4 addresses of link `index`, with prefix lengths.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, Errno> {
        let mut b = vec![AF_INET, 0, 0, 0];
        put_u32(&mut b, 0);
        let mut out = Vec::new();
        self.transact(RTM_GETADDR, NLM_F_DUMP, &b, |ty, p| {
            if ty != RTM_NEWADDR || ne32(p, 4) != index {
                return;
            }
            let len = p.get(1).copied().unwrap_or(0);
            let mut local = None;
            let mut address = None;
            for (t, d) in attrs(p.get(8..).unwrap_or(&[])) {
                match t {
                    IFA_LOCAL => local = ipv4(d),
                    IFA_ADDRESS => address = ipv4(d),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                out.push((ip, len));
            }
        })?;
        Ok(out)
    }

    /// Adds the default route via `gateway` out of link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), Errno> {
        let mut b = vec![
            AF_INET,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ];
        put_u32(&mut b, 0);
        attr(&mut b, RTA_GATEWAY, &gateway.octets());
        attr(&mut b, RTA_OIF, &index.to_ne_bytes());
        self.transact(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &b, |_, _| {})
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<Route>, Errno> {
        let mut b = vec![AF_INET, 0, 0, 0, 0, 0, 0, 0];
        put_u32(&mut b, 0);
        let mut out = Vec::new();
        self.transact(RTM_GETROUTE, NLM_F_DUMP, &b, |ty, p| {
            if ty != RTM_NEWROUTE {
                return;
            }
            let mut table = u32::from(p.get(4).copied().unwrap_or(0));
            let mut r = Route {
                dst: Ipv4Addr::UNSPECIFIED,
                dst_len: p.get(1).copied().unwrap_or(0),
                gateway: None,
                oif: 0,
            };
            for (t, d) in attrs(p.get(12..).unwrap_or(&[])) {
                match t {
                    RTA_DST => r.dst = ipv4(d).unwrap_or(Ipv4Addr::UNSPECIFIED),
                    RTA_GATEWAY => r.gateway = ipv4(d),
                    RTA_OIF => r.oif = ne32(d, 0),
                    RTA_TABLE => table = ne32(d, 0),
                    _ => {}
                }
            }
            if table == u32::from(RT_TABLE_MAIN) {
                out.push(r);
            }
        })?;
        Ok(out)
    }
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const ETHTOOL_MSG_FEATURES_SET: u8 = 12;
const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_A_FEATURES_HEADER: u16 = 1;
const ETHTOOL_A_FEATURES_WANTED: u16 = 3;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;
const ETHTOOL_A_BITSET_BITS: u16 = 3;
const ETHTOOL_A_BITSET_BITS_BIT: u16 = 1;
const ETHTOOL_A_BITSET_BIT_NAME: u16 = 2;

/// The transmit offloads whose metadata an AF_XDP port cannot carry: with them on, a Pod
/// sends partial checksums (and super-frames) that arrive broken at the other Pod. Turning off
/// checksumming makes the kernel drop the segmentation offloads that depend on it.
pub const AF_XDP_UNSAFE_TX_OFFLOADS: [&str; 1] = ["tx-checksum-ip-generic"];

/// The ethtool generic netlink family (`ethtool -K` without the ethtool binary).
#[derive(Debug)]
pub struct Ethtool {
    nl: Netlink,
    family: u16,
}

impl Ethtool {
    /// Opens a generic netlink socket in the calling thread's namespace and resolves the
    /// ethtool family.
    pub fn open() -> Result<Self, Errno> {
        let mut nl = Netlink::open_protocol(SockProtocol::NetlinkGeneric)?;
        let mut b = vec![CTRL_CMD_GETFAMILY, 1, 0, 0];
        attr(&mut b, CTRL_ATTR_FAMILY_NAME, b"ethtool\0");
        let mut family = None;
        nl.transact(GENL_ID_CTRL, 0, &b, |_, p| {
            for (t, d) in attrs(p.get(4..).unwrap_or(&[])) {
                if t == CTRL_ATTR_FAMILY_ID {
                    family = Some(ne16(d, 0));
                }
            }
        })?;
        Ok(Self {
            nl,
            family: family.ok_or(Errno::ENOENT)?,
        })
    }

    /// Turns the features `names` off on link `index`.
    pub fn features_off(&mut self, index: u32, names: &[&str]) -> Result<(), Errno> {
        let mut b = vec![ETHTOOL_MSG_FEATURES_SET, ETHTOOL_GENL_VERSION, 0, 0];
        let h = nest_start(&mut b, ETHTOOL_A_FEATURES_HEADER);
        attr(&mut b, ETHTOOL_A_HEADER_DEV_INDEX, &index.to_ne_bytes());
        nest_end(&mut b, h);
        let w = nest_start(&mut b, ETHTOOL_A_FEATURES_WANTED);
        let bits = nest_start(&mut b, ETHTOOL_A_BITSET_BITS);
        for n in names {
            // A listed bit without ETHTOOL_A_BITSET_BIT_VALUE is set to 0.
            let bit = nest_start(&mut b, ETHTOOL_A_BITSET_BITS_BIT);
            let mut z = n.as_bytes().to_vec();
            z.push(0);
            attr(&mut b, ETHTOOL_A_BITSET_BIT_NAME, &z);
            nest_end(&mut b, bit);
        }
        nest_end(&mut b, bits);
        nest_end(&mut b, w);
        let family = self.family;
        self.nl.transact(family, 0, &b, |_, _| {})
    }
}

/// Runs `f` on a thread inside the network namespace `netns` (a file such as
/// `/var/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn in_netns<R: Send>(netns: &std::fs::File, f: impl FnOnce() -> R + Send) -> Result<R, Errno> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(netns, CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        })
        .join()
        .unwrap_or(Err(Errno::EFAULT))
    })
}

/// Opens a network namespace file, checking that it is one.
pub fn open_netns(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::open(path)?;
    // A file that setns refuses is caught when it is used; a directory is caught here.
    if f.metadata()?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a directory is not a network namespace",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_carry_their_lengths() {
        let mut b = Vec::new();
        let outer = nest_start(&mut b, IFLA_LINKINFO);
        attr(&mut b, IFLA_INFO_KIND, b"veth\0");
        nest_end(&mut b, outer);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, d)| (t, d.to_vec())).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, IFLA_LINKINFO);
        let inner: Vec<(u16, &[u8])> = attrs(&got[0].1).collect();
        assert_eq!(inner, vec![(IFLA_INFO_KIND, &b"veth\0"[..])]);
        // Truncated input stops the walk instead of panicking.
        assert_eq!(attrs(&b[..6]).count(), 0);
        assert_eq!(attrs(&[0xff, 0xff, 0, 0]).count(), 0);
    }

    #[test]
    fn links_parse_name_mac_and_xdp() {
        let mut p = ifinfomsg(7, IFF_UP, 0);
        name_attr(&mut p, "eth0");
        attr(&mut p, IFLA_ADDRESS, &[0x0a, 0x58, 1, 2, 3, 4]);
        attr(&mut p, IFLA_MTU, &1450u32.to_ne_bytes());
        let x = nest_start(&mut p, IFLA_XDP);
        attr(&mut p, IFLA_XDP_ATTACHED, &[1]);
        nest_end(&mut p, x);
        let l = parse_link(&p);
        assert_eq!(
            l,
            LinkInfo {
                index: 7,
                name: "eth0".to_string(),
                mac: [0x0a, 0x58, 1, 2, 3, 4],
                mtu: 1450,
                up: true,
                xdp_attached: true,
            }
        );
        assert_eq!(mac_string(l.mac), "0a:58:01:02:03:04");
        assert!(!parse_link(&p[..3]).up);
    }
}
