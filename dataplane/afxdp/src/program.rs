//! The XDP program (`bpf/xvs_redirect.c`, compiled by build.rs) and its loader.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use aya::maps::{Array, MapData, XskMap};
use aya::programs::{ProgramError, Xdp};
use aya::Ebpf;

use crate::error::AfXdpError;
use crate::sys;

/// The compiled program, embedded at build time (8-byte aligned, as ELF parsing wants).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvs_redirect.o"));

/// Name of the program section's function in the C source.
const PROGRAM_NAME: &str = "xvs_redirect";
/// Number of XSKMAP slots, i.e. the highest queue index plus one (`XVS_MAX_QUEUES` in C).
pub const MAX_QUEUES: u32 = 256;

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Native (driver) mode when the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only: fastest; on veth, the peer's MTU must be at most 3506.
    Native,
    /// Generic (SKB) mode only: works on every interface, slower.
    Generic,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

impl std::str::FromStr for XdpMode {
    type Err = AfXdpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" | "drv" | "driver" => Ok(XdpMode::Native),
            "generic" | "skb" => Ok(XdpMode::Generic),
            other => Err(AfXdpError::Config(format!(
                "XDP mode {other:?}: expected auto, native or generic"
            ))),
        }
    }
}

/// Which frames the program hands to userspace; the rest go to the kernel stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpFilter {
    /// Every frame (the state after attach).
    #[default]
    RedirectAll,
    /// No frame: the sockets stay bound but idle, the kernel stack sees everything.
    PassAll,
    /// Only UDP to the tunnel port (IPv4, and IPv6 without extension headers) and IPv4 frames
    /// whose destination lies in the Pod CIDR; everything else goes to the stack.
    Select {
        /// The overlay's UDP destination port (Geneve 6081, VXLAN 4789), if any.
        tunnel_port: Option<u16>,
        /// A second overlay port (a node with both Geneve and VXLAN tunnels), if any.
        tunnel_port2: Option<u16>,
        /// The node's IPv4 Pod CIDR (network, prefix length), if any.
        pod_cidr4: Option<(Ipv4Addr, u8)>,
    },
}

impl XdpFilter {
    /// The program's `struct xvs_config`, byte for byte (mode in host order, the rest in
    /// network order).
    fn encode(&self) -> Result<[u8; 16], AfXdpError> {
        let mut b = [0u8; 16];
        let (mode, port, port2, net, mask) = match *self {
            XdpFilter::RedirectAll => (0u32, 0u16, 0u16, 0u32, 0u32),
            XdpFilter::PassAll => (1, 0, 0, 0, 0),
            XdpFilter::Select {
                tunnel_port,
                tunnel_port2,
                pod_cidr4,
            } => {
                let (net, mask) = match pod_cidr4 {
                    None => (0, 0),
                    Some((_, len)) if len > 32 => {
                        return Err(AfXdpError::Config(format!(
                            "Pod CIDR prefix length {len} is above 32"
                        )))
                    }
                    Some((_, 0)) => {
                        return Err(AfXdpError::Config(
                            "a /0 Pod CIDR would select everything; use RedirectAll".into(),
                        ))
                    }
                    Some((addr, len)) => {
                        let mask = u32::MAX << (32 - u32::from(len));
                        (u32::from(addr) & mask, mask)
                    }
                };
                (
                    2,
                    tunnel_port.unwrap_or(0),
                    tunnel_port2.unwrap_or(0),
                    net,
                    mask,
                )
            }
        };
        b[0..4].copy_from_slice(&mode.to_ne_bytes());
        b[4..6].copy_from_slice(&port.to_be_bytes());
        b[6..8].copy_from_slice(&port2.to_be_bytes());
        b[8..12].copy_from_slice(&net.to_be_bytes());
        b[12..16].copy_from_slice(&mask.to_be_bytes());
        Ok(b)
    }
}

/// The xvs XDP program attached to one interface, with its maps. Dropping it detaches the
/// program (it is attached through a bpf_link, which also dies with the process).
///
/// # Thread safety
/// `Send`: it can be built on one thread and moved to the worker that owns the interface's
/// queues. The interface name is resolved in the network namespace of the thread calling
/// [`XdpProgram::attach`]; after that only the ifindex is used.
pub struct XdpProgram {
    /// Owns the loaded program and its bpf_link: dropping it detaches XDP. Never read.
    _ebpf: Ebpf,
    xsks: XskMap<MapData>,
    config: Array<MapData, [u8; 16]>,
    ifname: String,
    ifindex: u32,
    mode: XdpMode,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn errno_of(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

/// A likely explanation for an attach failure's errno.
fn attach_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::ERANGE) => {
            " (veth: native XDP needs the peer's MTU at most 3506; use generic mode or a \
             smaller MTU)"
        }
        Some(libc::EOPNOTSUPP) => " (the driver has no native XDP; use generic or auto mode)",
        Some(libc::EPERM) => " (needs CAP_NET_ADMIN and CAP_BPF, or root)",
        _ => "",
    }
}

/// EBUSY: a bpf_link holds the hook; EEXIST: a program is attached in the other mode, or by
/// netlink without a link.
fn is_already_attached(e: &ProgramError) -> bool {
    matches!(errno_of(e), Some(libc::EBUSY) | Some(libc::EEXIST))
        || matches!(e, ProgramError::AlreadyAttached)
}

impl XdpProgram {
    /// Loads the program and attaches it to `ifname` in `mode` (`Auto`: native, falling back to
    /// generic when the driver refuses native mode).
    ///
    /// Errors: [`AfXdpError::NoSuchInterface`] when the interface does not exist in this thread's
    /// network namespace, [`AfXdpError::AlreadyAttached`] when any XDP program already sits on it.
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<Self, AfXdpError> {
        sys::raise_memlock_best_effort();
        let ifindex = sys::if_index(ifname).ok_or_else(|| AfXdpError::NoSuchInterface {
            ifname: ifname.to_string(),
        })?;
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| AfXdpError::Load(e.to_string()))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| AfXdpError::Load(format!("no program {PROGRAM_NAME} in the object")))?
            .try_into()
            .map_err(|e: ProgramError| AfXdpError::Load(e.to_string()))?;
        prog.load()
            .map_err(|e| AfXdpError::Load(format!("verifier: {e}")))?;

        let attached = |prog: &mut Xdp, m: XdpMode| -> Result<(), AfXdpError> {
            let aya_mode = match m {
                XdpMode::Generic => aya::programs::XdpMode::Skb,
                XdpMode::Native | XdpMode::Auto => aya::programs::XdpMode::Driver,
            };
            match prog.attach_to_if_index(ifindex, aya_mode) {
                Ok(_link) => Ok(()),
                Err(e) if is_already_attached(&e) => Err(AfXdpError::AlreadyAttached {
                    ifname: ifname.to_string(),
                }),
                Err(source) => Err(AfXdpError::Attach {
                    ifname: ifname.to_string(),
                    mode: m,
                    hint: attach_hint(errno_of(&source)),
                    source,
                }),
            }
        };
        let mode = match mode {
            XdpMode::Native => attached(prog, XdpMode::Native).map(|()| XdpMode::Native)?,
            XdpMode::Generic => attached(prog, XdpMode::Generic).map(|()| XdpMode::Generic)?,
            XdpMode::Auto => match attached(prog, XdpMode::Native) {
                Ok(()) => XdpMode::Native,
                Err(e @ AfXdpError::AlreadyAttached { .. }) => return Err(e),
                // Native refused (no driver support, veth peer MTU above 3506, ...): generic.
                Err(_) => attached(prog, XdpMode::Generic).map(|()| XdpMode::Generic)?,
            },
        };

        let map_err = |map: &'static str, source| AfXdpError::Map {
            ifname: ifname.to_string(),
            map,
            source,
        };
        let xsks = ebpf
            .take_map("xsks")
            .ok_or_else(|| AfXdpError::Load("no map xsks in the object".into()))?;
        let xsks = XskMap::try_from(xsks).map_err(|e| map_err("xsks", e))?;
        let config = ebpf
            .take_map("xvs_config")
            .ok_or_else(|| AfXdpError::Load("no map xvs_config in the object".into()))?;
        let config = Array::try_from(config).map_err(|e| map_err("xvs_config", e))?;
        Ok(Self {
            _ebpf: ebpf,
            xsks,
            config,
            ifname: ifname.to_string(),
            ifindex,
            mode,
        })
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface's index (in the namespace it was attached in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode the program actually runs in (`Native` or `Generic`, never `Auto`).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Changes which frames go to userspace; takes effect for the next frame, no reload.
    pub fn set_filter(&mut self, filter: &XdpFilter) -> Result<(), AfXdpError> {
        let bytes = filter.encode()?;
        self.config
            .set(0, bytes, 0)
            .map_err(|source| AfXdpError::Map {
                ifname: self.ifname.clone(),
                map: "xvs_config",
                source,
            })
    }

    /// Points queue `queue`'s XSKMAP slot at socket `fd`.
    pub(crate) fn register(&mut self, queue: u32, fd: &impl AsRawFd) -> Result<(), AfXdpError> {
        self.xsks
            .set(queue, fd.as_raw_fd(), 0)
            .map_err(|source| AfXdpError::Map {
                ifname: self.ifname.clone(),
                map: "xsks",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_encoding_matches_the_c_struct() {
        assert_eq!(XdpFilter::RedirectAll.encode().ok(), Some([0u8; 16]));
        let pass = XdpFilter::PassAll.encode().expect("pass");
        assert_eq!(&pass[0..4], &1u32.to_ne_bytes());
        let sel = XdpFilter::Select {
            tunnel_port: Some(6081),
            tunnel_port2: Some(4789),
            pod_cidr4: Some((Ipv4Addr::new(10, 244, 1, 77), 24)),
        }
        .encode()
        .expect("select");
        assert_eq!(&sel[0..4], &2u32.to_ne_bytes());
        assert_eq!(&sel[4..6], &[0x17, 0xc1]);
        assert_eq!(&sel[6..8], &[0x12, 0xb5]);
        assert_eq!(&sel[8..12], &[10, 244, 1, 0]);
        assert_eq!(&sel[12..16], &[255, 255, 255, 0]);
        assert!(XdpFilter::Select {
            tunnel_port: None,
            tunnel_port2: None,
            pod_cidr4: Some((Ipv4Addr::UNSPECIFIED, 33))
        }
        .encode()
        .is_err());
    }

    #[test]
    fn modes_parse() {
        assert_eq!("auto".parse::<XdpMode>().ok(), Some(XdpMode::Auto));
        assert_eq!("skb".parse::<XdpMode>().ok(), Some(XdpMode::Generic));
        assert_eq!("drv".parse::<XdpMode>().ok(), Some(XdpMode::Native));
        assert!("hw".parse::<XdpMode>().is_err());
    }
}
