//! TUN/TAP and interface ioctls for the tap backend.
//!
//! Interface names resolve, and tap devices are created, in the network namespace of the calling
//! thread at the time of the call.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A zeroed `ifreq` naming `name`; the name must be shorter than `IFNAMSIZ` (checked by callers,
/// truncated here otherwise).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain C data (byte arrays, integers, a raw pointer); all-zero bytes are
    // a valid value of every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// The name stored in an `ifreq`, up to its NUL.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `TUNSETIFF` on an open `/dev/net/tun` descriptor: creates or attaches interface `name` with
/// `flags` (`IFF_TAP`, `IFF_NO_PI`, ...). Returns the name the kernel reports.
pub(crate) fn tun_set_iff(
    fd: BorrowedFd<'_>,
    name: &str,
    flags: libc::c_int,
) -> io::Result<String> {
    let mut req = ifreq(name);
    // The kernel reads the flags as a short; IFF_TUN_EXCL (0x8000) is its sign bit.
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is, for the duration of
    // the call; the descriptor is borrowed, so it is open.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut req as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ifreq_name(&req))
}

/// The index of interface `name`, if it exists.
pub(crate) fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the function only
    // reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// A datagram socket used only as a handle for interface ioctls, in the caller's namespace.
#[derive(Debug)]
pub(crate) struct CtlSocket(OwnedFd);

impl CtlSocket {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain socket creation; the result is checked before it is wrapped.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Runs interface ioctl `request` on `req`.
    fn ioctl(&self, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: every request used in this module (SIOC[GS]IF{FLAGS,MTU,HWADDR}) reads or
        // writes exactly one `struct ifreq`, which `req` points at for the duration of the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), request as _, req as *mut libc::ifreq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sets the Ethernet address of `name`.
    pub(crate) fn set_mac(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let mut req = ifreq(name);
        // SAFETY: all-zero bytes are a valid `sockaddr`.
        let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
        sa.sa_family = libc::ARPHRD_ETHER;
        for (dst, src) in sa.sa_data.iter_mut().zip(mac) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_hwaddr = sa;
        self.ioctl(libc::SIOCSIFHWADDR, &mut req)
    }

    /// The Ethernet address of `name`.
    pub(crate) fn mac(&self, name: &str) -> io::Result<[u8; 6]> {
        let mut req = ifreq(name);
        self.ioctl(libc::SIOCGIFHWADDR, &mut req)?;
        // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (dst, src) in mac.iter_mut().zip(sa.sa_data) {
            *dst = src as u8;
        }
        Ok(mac)
    }

    /// Sets the MTU of `name`.
    pub(crate) fn set_mtu(&self, name: &str, mtu: u32) -> io::Result<()> {
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.ioctl(libc::SIOCSIFMTU, &mut req)
    }

    /// The MTU of `name`.
    pub(crate) fn mtu(&self, name: &str) -> io::Result<u32> {
        let mut req = ifreq(name);
        self.ioctl(libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        Ok(u32::try_from(mtu).unwrap_or(0))
    }

    /// Sets `IFF_UP` on `name`, keeping its other flags.
    pub(crate) fn set_up(&self, name: &str) -> io::Result<()> {
        let mut req = ifreq(name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut req)
    }
}
