//! Host-facing ports on Linux tap devices (`/dev/net/tun` with `IFF_TAP | IFF_NO_PI`).
//!
//! A frame the port transmits is received by the host's network stack on the tap interface; a
//! frame the host sends out of the tap interface is received by the port. This is what a bridge's
//! LOCAL port or Antrea's gateway interface becomes.
//!
//! The descriptor is non-blocking: [`PortIo::rx_burst`] reads until the kernel queue is empty or
//! the batch is full, one `read` per frame, straight into pool frames after the pool's headroom;
//! [`PortIo::tx_burst`] writes one frame per `write`. A tap created by [`TapPort::create`] is not
//! persistent, so the interface disappears when the port is dropped.
//!
//! Namespaces: the interface is created, and its name resolved, in the network namespace of the
//! calling thread.

use crate::pool::FramePool;
use crate::port::{Desc, PortIo, PortStats};
use crate::sys::tun::{self, CtlSocket};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The clone device for tun/tap interfaces.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// Errors creating or attaching a tap port.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The interface name is not valid for Linux (empty, 16 bytes or more, or containing '/',
    /// ':', '%' or whitespace, or "." / "..").
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The tun clone device does not exist (no `tun` module, or a container without the device).
    #[error("{path} is missing: load the tun module or expose the device")]
    TunMissing {
        /// The device path.
        path: PathBuf,
    },
    /// The tun clone device exists but cannot be opened (usually missing CAP_NET_ADMIN).
    #[error("opening {path}: {source}")]
    Open {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// An interface of that name already exists ([`TapPort::create`]), or exists and is not a
    /// tap ([`TapPort::attach`]).
    #[error("interface {name} already exists and cannot be used as a new tap")]
    NameTaken {
        /// The interface name.
        name: String,
    },
    /// The tap exists but another process has it open.
    #[error("tap {name} is in use by another process")]
    Busy {
        /// The interface name.
        name: String,
    },
    /// [`TapPort::attach`] found no interface of that name.
    #[error("no interface named {name}")]
    NotFound {
        /// The interface name.
        name: String,
    },
    /// `TUNSETIFF` failed for another reason.
    #[error("creating tap {name}: {source}")]
    Create {
        /// The interface name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// Setting the address, MTU or link state failed.
    #[error("configuring {what} of {name}: {source}")]
    Configure {
        /// The interface name.
        name: String,
        /// What was being set ("MAC address", "MTU", "link up", ...).
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Checks `name` the way the kernel's `dev_valid_name` does, and refuses `%` (which would make
/// the kernel pick a name).
fn validate_name(name: &str) -> Result<(), TapError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() >= libc::IFNAMSIZ {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved name")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == b'%' || b.is_ascii_whitespace() || b == 0)
    {
        Some("contains '/', ':', '%', NUL or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TapError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A port on a tap interface.
///
/// # Thread safety
/// Owned by one worker. The interface lives in the network namespace the creating thread was
/// in; the port itself may move to any thread.
#[derive(Debug)]
pub struct TapPort {
    name: String,
    file: File,
    ifindex: u32,
    mac: [u8; 6],
    mtu: u32,
    stats: PortStats,
}

impl TapPort {
    /// Creates a new, non-persistent tap interface `name` in the calling thread's network
    /// namespace, sets its MAC address and MTU when given, and brings it up.
    pub fn create(name: &str, mac: Option<[u8; 6]>, mtu: Option<u32>) -> Result<Self, TapError> {
        Self::create_at(Path::new(TUN_DEVICE), name, mac, mtu)
    }

    /// Attaches to an existing persistent tap interface (made with `ip tuntap add mode tap`),
    /// sets its MAC address and MTU when given, and brings it up. The interface stays after the
    /// port is dropped.
    pub fn attach(name: &str, mac: Option<[u8; 6]>, mtu: Option<u32>) -> Result<Self, TapError> {
        validate_name(name)?;
        if tun::if_index(name).is_none() {
            return Err(TapError::NotFound {
                name: name.to_owned(),
            });
        }
        let file = open_clone_device(Path::new(TUN_DEVICE))?;
        tun::tun_set_iff(file.as_fd(), name, libc::IFF_TAP | libc::IFF_NO_PI).map_err(
            |source| match source.raw_os_error() {
                Some(libc::EBUSY) => TapError::Busy {
                    name: name.to_owned(),
                },
                Some(libc::EINVAL) => TapError::NameTaken {
                    name: name.to_owned(),
                },
                _ => TapError::Create {
                    name: name.to_owned(),
                    source,
                },
            },
        )?;
        Self::configure(file, name, mac, mtu)
    }

    /// [`TapPort::create`] with another clone device path (tests).
    pub(crate) fn create_at(
        device: &Path,
        name: &str,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<Self, TapError> {
        validate_name(name)?;
        let file = open_clone_device(device)?;
        // IFF_TUN_EXCL makes the kernel refuse (EBUSY) any existing interface of that name, tap
        // or not, instead of attaching to it.
        tun::tun_set_iff(
            file.as_fd(),
            name,
            libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL,
        )
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EBUSY) | Some(libc::EEXIST) => TapError::NameTaken {
                name: name.to_owned(),
            },
            _ => TapError::Create {
                name: name.to_owned(),
                source,
            },
        })?;
        Self::configure(file, name, mac, mtu)
    }

    fn configure(
        file: File,
        name: &str,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<Self, TapError> {
        let fail = |what: &'static str| {
            move |source| TapError::Configure {
                name: name.to_owned(),
                what,
                source,
            }
        };
        let ctl = CtlSocket::new().map_err(fail("control socket"))?;
        if let Some(mac) = mac {
            ctl.set_mac(name, mac).map_err(fail("MAC address"))?;
        }
        if let Some(mtu) = mtu {
            ctl.set_mtu(name, mtu).map_err(fail("MTU"))?;
        }
        ctl.set_up(name).map_err(fail("link up"))?;
        let mac = ctl.mac(name).map_err(fail("MAC address (read)"))?;
        let mtu = ctl.mtu(name).map_err(fail("MTU (read)"))?;
        let ifindex = tun::if_index(name).ok_or_else(|| TapError::Configure {
            name: name.to_owned(),
            what: "interface index",
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        Ok(Self {
            name: name.to_owned(),
            file,
            ifindex,
            mac,
            mtu,
            stats: PortStats::default(),
        })
    }

    /// The interface index (in the namespace the port was created in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's Ethernet address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface's MTU when the port was opened.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }
}

fn open_clone_device(path: &Path) -> Result<File, TapError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TapError::TunMissing {
                    path: path.to_owned(),
                }
            } else {
                TapError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })
}

/// The descriptor, for readiness polling (epoll) in interrupt mode.
impl AsFd for TapPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl PortIo for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let headroom = pool.headroom();
        let mut n = 0;
        let mut frame = None;
        // Reads that deliver nothing (cut frames) also spend the budget, so a flood of oversized
        // frames cannot hold the worker here.
        let mut reads = 0;
        while n < out.len() && reads < 2 * out.len() {
            reads += 1;
            // An empty pool leaves frames queued in the kernel (which drops on overflow).
            let Some(base) = frame.or_else(|| pool.alloc()) else {
                break;
            };
            frame = Some(base);
            let buf = pool.region_mut().frame_mut(base);
            let buf = buf.get_mut(headroom as usize..).unwrap_or(&mut []);
            let room = buf.len();
            match (&self.file).read(buf) {
                // The kernel truncates a frame longer than the buffer and returns the buffer
                // length: a full buffer may be a cut frame, so it is dropped.
                Ok(0) => break,
                Ok(len) if len >= room => self.stats.rx_dropped += 1,
                Ok(len) => {
                    if let Some(slot) = out.get_mut(n) {
                        *slot = Desc {
                            addr: base + u64::from(headroom),
                            len: len as u32,
                            options: 0,
                        };
                    }
                    frame = None;
                    n += 1;
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += len as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.stats.errors += 1;
                    break;
                }
            }
        }
        if let Some(base) = frame {
            pool.free(base);
        }
        n
    }

    /// One `write` per frame. When the kernel pushes back (`EAGAIN`), the port stops and
    /// returns the frames written so far: the caller frees and counts the rest. A frame the
    /// kernel rejects (too short, device down) is taken, freed and counted in `tx_dropped`.
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        for (i, d) in pkts.iter().enumerate() {
            let data = pool.region().data(*d);
            if data.len() != d.len as usize || data.is_empty() {
                self.stats.tx_dropped += 1;
                self.stats.errors += 1;
                pool.free(d.addr);
                continue;
            }
            let mut result = (&self.file).write(data);
            if matches!(&result, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
                result = (&self.file).write(data);
            }
            match result {
                Ok(len) if len == data.len() => {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += len as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return i,
                Ok(_) | Err(_) => {
                    self.stats.tx_dropped += 1;
                    self.stats.errors += 1;
                }
            }
            pool.free(d.addr);
        }
        pkts.len()
    }

    fn flush(&mut self, _pool: &mut FramePool) {}

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ones_sum, Netns, Udp4};
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];
    const TAP_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];

    /// Polls `rx_burst` until `want` matches a frame or `limit` passes; frees every frame.
    fn receive_matching(
        port: &mut TapPort,
        pool: &mut FramePool,
        limit: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut descs = [Desc::default(); 32];
        while Instant::now() < deadline {
            let n = port.rx_burst(pool, &mut descs);
            let mut found = None;
            for d in &descs[..n] {
                let data = pool.region().data(*d);
                if found.is_none() && want(data) {
                    found = Some(data.to_vec());
                }
            }
            pool.free_all(&descs[..n]);
            if found.is_some() {
                return found;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        None
    }

    #[test]
    fn frames_cross_between_port_and_kernel() {
        let ns = Netns::new("tap");
        ns.run(|| {
            let mut pool = FramePool::new(64, 4096, 256).expect("pool");
            let mut tap = TapPort::create("xvtap0", Some(TAP_MAC), Some(1400)).expect("tap");
            assert_eq!(tap.mac(), TAP_MAC);
            assert_eq!(tap.mtu(), 1400);
            assert!(tap.ifindex() > 0);
            ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "xvtap0"]);
            ns.ip(&[
                "neigh",
                "add",
                "10.77.0.2",
                "lladdr",
                "02:00:5e:10:00:02",
                "dev",
                "xvtap0",
                "nud",
                "permanent",
            ]);
            let sock = UdpSocket::bind("10.77.0.1:5555").expect("bind");
            sock.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");

            // (a) A frame the port transmits reaches a socket of the host stack.
            let payload = b"xvs tap tx test payload";
            let frame = Udp4 {
                src_mac: PEER_MAC,
                dst_mac: TAP_MAC,
                src_ip: [10, 77, 0, 2],
                dst_ip: [10, 77, 0, 1],
                src_port: 4444,
                dst_port: 5555,
                ip_id: 0x1234,
                dont_fragment: true,
                ttl: 64,
            }
            .build(payload);
            let d = pool.alloc_copy(&frame).expect("frame");
            assert_eq!(tap.tx_burst(&mut pool, &[d]), 1);
            assert_eq!(tap.stats().tx_packets, 1);
            assert_eq!(tap.stats().tx_bytes, frame.len() as u64);
            let mut buf = [0u8; 2048];
            let (len, from) = sock.recv_from(&mut buf).expect("kernel received the frame");
            assert_eq!(&buf[..len], payload);
            assert_eq!(from.to_string(), "10.77.0.2:4444");

            // (b) A datagram the host sends out of the tap is received by the port, exactly.
            let reply = b"xvs tap rx test payload, a little longer";
            sock.send_to(reply, "10.77.0.2:4444").expect("send");
            let got = receive_matching(&mut tap, &mut pool, Duration::from_secs(5), |f| {
                f.len() > 42
                    && f[12..14] == [0x08, 0x00]
                    && f[23] == 17
                    && f[36..38] == [0x11, 0x5c]
            })
            .expect("port received the host's datagram");
            // The kernel picks the IP identification and DF bit; everything else is fixed.
            let ip_id = u16::from_be_bytes([got[18], got[19]]);
            let expected = Udp4 {
                src_mac: TAP_MAC,
                dst_mac: PEER_MAC,
                src_ip: [10, 77, 0, 1],
                dst_ip: [10, 77, 0, 2],
                src_port: 5555,
                dst_port: 4444,
                ip_id,
                dont_fragment: got[20] & 0x40 != 0,
                ttl: 64,
            }
            .build(reply);
            assert_eq!(got, expected);
            assert_eq!(ones_sum(&got[14..34], 0), 0xffff, "IPv4 header checksum");
            let s = tap.stats();
            assert!(s.rx_packets >= 1);
            assert_eq!(s.rx_dropped + s.tx_dropped + s.errors, 0);
            assert_eq!(pool.free_count(), 64);

            // The interface goes away with the port.
            drop(tap);
            let deadline = Instant::now() + Duration::from_secs(5);
            while tun::if_index("xvtap0").is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                tun::if_index("xvtap0").is_none(),
                "tap still present after drop"
            );
        });
    }

    #[test]
    fn oversized_and_invalid_frames_are_counted() {
        let ns = Netns::new("tapbig");
        ns.run(|| {
            // 2048-byte frames with 256 bytes of headroom hold at most 1791 bytes of packet.
            let mut pool = FramePool::new(16, 2048, 256).expect("pool");
            let mut tap = TapPort::create("xvtap2", Some(TAP_MAC), Some(3000)).expect("tap");
            ns.ip(&["addr", "add", "10.78.0.1/24", "dev", "xvtap2"]);
            ns.ip(&[
                "neigh",
                "add",
                "10.78.0.2",
                "lladdr",
                "02:00:5e:10:00:02",
                "dev",
                "xvtap2",
                "nud",
                "permanent",
            ]);
            let sock = UdpSocket::bind("10.78.0.1:5556").expect("bind");
            sock.send_to(&[0xab; 2500], "10.78.0.2:4444")
                .expect("send big");
            sock.send_to(b"small one", "10.78.0.2:4444")
                .expect("send small");
            let small = receive_matching(&mut tap, &mut pool, Duration::from_secs(5), |f| {
                f.len() == 42 + 9 && f.ends_with(b"small one")
            });
            assert!(small.is_some(), "the frame after the oversized one arrives");
            let s = tap.stats();
            assert_eq!(s.rx_dropped, 1, "the 2542-byte frame is a counted drop");
            assert_eq!(s.errors, 0);

            // A frame shorter than an Ethernet header is refused by the kernel: taken, freed,
            // counted.
            let runt = pool.alloc_copy(&[0u8; 10]).expect("frame");
            let ok = pool
                .alloc_copy(&crate::testutil::udp_frame(9, b"ok"))
                .expect("frame");
            assert_eq!(tap.tx_burst(&mut pool, &[runt, ok]), 2);
            let s = tap.stats();
            assert_eq!((s.tx_packets, s.tx_dropped, s.errors), (1, 1, 1));
            assert_eq!(pool.free_count(), 16);

            // With the pool empty, received frames wait in the kernel queue, uncounted.
            let held: Vec<u64> = std::iter::from_fn(|| pool.alloc()).collect();
            sock.send_to(b"waits in the kernel", "10.78.0.2:4444")
                .expect("send");
            std::thread::sleep(Duration::from_millis(50));
            let mut descs = [Desc::default(); 8];
            assert_eq!(tap.rx_burst(&mut pool, &mut descs), 0);
            for a in held {
                pool.free(a);
            }
            let waited = receive_matching(&mut tap, &mut pool, Duration::from_secs(5), |f| {
                f.ends_with(b"waits in the kernel")
            });
            assert!(waited.is_some());
            assert_eq!(tap.stats().rx_dropped, 1);
            assert_eq!(pool.free_count(), 16);
        });
    }

    #[test]
    fn creation_errors_are_clear() {
        assert!(matches!(
            TapPort::create("a-name-that-is-too-long", None, None),
            Err(TapError::InvalidName { .. })
        ));
        for bad in ["", "a/b", "a b", "a:b", "tap%d", ".."] {
            assert!(
                matches!(
                    TapPort::create(bad, None, None),
                    Err(TapError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            TapPort::create_at(Path::new("/nonexistent/net/tun"), "xvtap0", None, None),
            Err(TapError::TunMissing { .. })
        ));

        let ns = Netns::new("taperr");
        ns.ip(&[
            "link", "add", "xvveth0", "type", "veth", "peer", "name", "xvveth1",
        ]);
        ns.ip(&["tuntap", "add", "dev", "xvpers0", "mode", "tap"]);
        ns.run(|| {
            assert!(matches!(
                TapPort::create("xvveth0", None, None),
                Err(TapError::NameTaken { .. })
            ));
            assert!(matches!(
                TapPort::attach("xvveth0", None, None),
                Err(TapError::NameTaken { .. })
            ));
            assert!(matches!(
                TapPort::attach("xvnothere0", None, None),
                Err(TapError::NotFound { .. })
            ));
            let first = TapPort::create("xvtap1", None, None).expect("tap");
            assert!(matches!(
                TapPort::create("xvtap1", None, None),
                Err(TapError::NameTaken { .. })
            ));
            assert!(matches!(
                TapPort::attach("xvtap1", None, None),
                Err(TapError::Busy { .. })
            ));
            drop(first);

            // A persistent tap made by iproute2 can be attached, and outlives the port.
            let pers = TapPort::attach("xvpers0", Some(PEER_MAC), Some(9000)).expect("attach");
            assert_eq!(pers.mac(), PEER_MAC);
            assert_eq!(pers.mtu(), 9000);
            drop(pers);
            assert!(tun::if_index("xvpers0").is_some());
        });
        assert!(ns.ip_ok(&["link", "show", "xvpers0"]));
    }
}
