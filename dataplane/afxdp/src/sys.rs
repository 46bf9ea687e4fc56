//! The only unsafe code of this crate: AF_XDP socket system calls and the shared ring mappings.
//!
//! Everything here is a thin, checked wrapper; the ring protocol (cached indices, batching) lives
//! in the safe `ring` module on top of [`RingMap`].

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use xvs_io::Desc;

// The kernel's `struct xdp_desc` is {u64 addr; u32 len; u32 options}; `Desc` mirrors it.
const _: () = assert!(size_of::<Desc>() == 16);
const _: () = assert!(size_of::<libc::xdp_desc>() == 16);

/// Index of `name` in the calling thread's network namespace; `None` when there is no such
/// interface (or the name cannot be a C string).
pub(crate) fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the function only
    // reads it.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Best effort: raise the soft RLIMIT_MEMLOCK to the hard limit (or infinity when allowed).
/// Failure is ignored on purpose: recent kernels account BPF memory to the memory cgroup and
/// root's UMEM pinning is exempt, so the limit rarely matters.
pub(crate) fn raise_memlock_best_effort() {
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } == 0 {
        return;
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } == 0
        && cur.rlim_cur < cur.rlim_max
    {
        cur.rlim_cur = cur.rlim_max;
        // SAFETY: as above; raising the soft limit up to the hard limit is always permitted.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur) };
    }
}

/// The system page size (the largest UMEM chunk in aligned mode).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// A new AF_XDP socket (close-on-exec).
pub(crate) fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points at a live, initialised `T` of exactly the length we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads a SOL_XDP option of type `T`; fails unless the kernel fills it completely.
fn getsockopt<T: Copy>(fd: BorrowedFd<'_>, opt: libc::c_int, val: T) -> io::Result<T> {
    getsockopt_min(fd, opt, val, size_of::<T>())
}

/// Reads a SOL_XDP option of type `T`, accepting an older kernel's shorter version of it (at
/// least `min` bytes; the rest keeps the value passed in).
fn getsockopt_min<T: Copy>(
    fd: BorrowedFd<'_>,
    opt: libc::c_int,
    mut val: T,
    min: usize,
) -> io::Result<T> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `val`, which we own; `len` is updated
    // with the number written.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < min || len as usize > size_of::<T>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "SOL_XDP option {opt}: kernel returned {len} bytes, expected {}",
                size_of::<T>()
            ),
        ));
    }
    Ok(val)
}

/// Registers `len` bytes at `addr` as the socket's UMEM, cut into `chunk_size` chunks, with
/// `headroom` bytes left free in front of received data (on top of the kernel's own 256).
///
/// The kernel pins the pages; it never touches memory outside the region, and userspace views of
/// the region are governed by the frame pool's ownership rules, not by this call.
pub(crate) fn umem_register(
    fd: BorrowedFd<'_>,
    addr: NonNull<u8>,
    len: usize,
    chunk_size: u32,
    headroom: u32,
) -> io::Result<()> {
    let reg = libc::xdp_umem_reg {
        addr: addr.as_ptr() as u64,
        len: len as u64,
        chunk_size,
        headroom,
        flags: 0,
        tx_metadata_len: 0,
    };
    setsockopt(fd, libc::XDP_UMEM_REG, &reg)
}

/// Which ring a size or mapping refers to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RingKind {
    Rx,
    Tx,
    Fill,
    Completion,
}

impl RingKind {
    fn sockopt(self) -> libc::c_int {
        match self {
            RingKind::Rx => libc::XDP_RX_RING,
            RingKind::Tx => libc::XDP_TX_RING,
            RingKind::Fill => libc::XDP_UMEM_FILL_RING,
            RingKind::Completion => libc::XDP_UMEM_COMPLETION_RING,
        }
    }

    fn pgoff(self) -> libc::off_t {
        match self {
            RingKind::Rx => libc::XDP_PGOFF_RX_RING,
            RingKind::Tx => libc::XDP_PGOFF_TX_RING,
            RingKind::Fill => libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            RingKind::Completion => libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        }
    }

    fn offsets(self, o: &libc::xdp_mmap_offsets) -> libc::xdp_ring_offset {
        match self {
            RingKind::Rx => o.rx,
            RingKind::Tx => o.tx,
            RingKind::Fill => o.fr,
            RingKind::Completion => o.cr,
        }
    }
}

/// Asks the kernel to create ring `kind` with `entries` slots.
pub(crate) fn set_ring_size(fd: BorrowedFd<'_>, kind: RingKind, entries: u32) -> io::Result<()> {
    setsockopt(fd, kind.sockopt(), &entries)
}

/// Where the producer, consumer, flags and descriptors of each ring sit in its mapping.
pub(crate) fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_mmap_offsets> {
    let zero = libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    getsockopt(
        fd,
        libc::XDP_MMAP_OFFSETS,
        libc::xdp_mmap_offsets {
            rx: zero,
            tx: zero,
            fr: zero,
            cr: zero,
        },
    )
}

/// Binds the socket to (`ifindex`, `queue`). With `shared`, the socket uses the UMEM of that
/// (already bound) socket; `flags` must then contain only `XDP_SHARED_UMEM`.
pub(crate) fn bind(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as libc::sa_family_t,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared.map_or(0, |s| s.as_raw_fd() as u32),
    };
    // SAFETY: `sa` is a complete sockaddr_xdp and the length matches it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_xdp).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The socket's XDP_OPTIONS flags (`XDP_OPTIONS_ZEROCOPY`).
pub(crate) fn options(fd: BorrowedFd<'_>) -> io::Result<u32> {
    getsockopt(fd, libc::XDP_OPTIONS, libc::xdp_options { flags: 0 }).map(|o| o.flags)
}

/// The kernel's counters for the socket (XDP_STATISTICS). Kernels before 5.9 report only the
/// first three; the others then read as zero.
pub(crate) fn statistics(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_statistics> {
    getsockopt_min(
        fd,
        libc::XDP_STATISTICS,
        libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        },
        size_of::<libc::xdp_statistics_v1>(),
    )
}

/// Starts loading the cache line at `addr` into the CPU's caches without waiting for it: a
/// received frame's first line, which the kernel wrote on another CPU, so that the misses of a
/// whole burst overlap instead of each stalling the parse in turn. Only a hint: it never faults
/// and changes no memory, whatever `addr` is. A no-op on other architectures.
#[inline(always)]
pub(crate) fn prefetch(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults, even for an unmapped or invalid address,
    // and writes nothing; SSE (which provides it) is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Tells the kernel to process the TX ring; returns the errno on failure (no allocation).
#[inline]
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> Result<(), i32> {
    // SAFETY: a zero-length sendto with no buffer and no address reads no user memory.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// Wakes the driver to process the fill ring; returns the errno on failure (no allocation).
#[inline]
pub(crate) fn kick_rx(fd: BorrowedFd<'_>) -> Result<(), i32> {
    // SAFETY: a zero-length recvfrom with no buffer and no address writes no user memory.
    let rc = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// An entry type a ring may carry: `u64` frame addresses (fill, completion) or [`Desc`]
/// (RX, TX). Sealed: only these two layouts match the kernel's.
pub(crate) trait RingEntry: Copy + sealed::Sealed {}
impl RingEntry for u64 {}
impl RingEntry for Desc {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for u64 {}
    impl Sealed for xvs_io::Desc {}
}

/// One ring of an AF_XDP socket, mapped from the kernel: the producer and consumer indices, the
/// flags word and `size` entries of `T`. Unmapped on drop.
///
/// # Thread safety
/// The indices are shared with the kernel, which is the other side of each ring; on our side the
/// ring is owned by one port on one thread at a time, so it is `Send` but not `Sync`.
#[derive(Debug)]
pub(crate) struct RingMap<T: RingEntry> {
    base: NonNull<u8>,
    len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    mask: u32,
    _t: PhantomData<T>,
}

// SAFETY: the mapping is owned by this value alone; moving it to another thread moves the only
// userspace handle to it (the kernel side is unaffected by which thread we run on).
unsafe impl<T: RingEntry> Send for RingMap<T> {}

impl<T: RingEntry> RingMap<T> {
    /// Maps ring `kind` of socket `fd`, created with `size` entries (a power of two).
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        kind: RingKind,
        off: &libc::xdp_mmap_offsets,
        size: u32,
    ) -> io::Result<Self> {
        let ro = kind.offsets(off);
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{kind:?} ring: kernel gave an unusable {what} offset"),
            )
        };
        if !size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring size must be a power of two",
            ));
        }
        let desc_bytes = (size as u64)
            .checked_mul(size_of::<T>() as u64)
            .ok_or_else(|| bad("size"))?;
        let len = ro.desc.checked_add(desc_bytes).ok_or_else(|| bad("desc"))?;
        let len = usize::try_from(len).map_err(|_| bad("desc"))?;
        for (what, o) in [
            ("producer", ro.producer),
            ("consumer", ro.consumer),
            ("flags", ro.flags),
        ] {
            if o % 4 != 0 || o.saturating_add(4) > ro.desc {
                return Err(bad(what));
            }
        }
        if ro.desc % 8 != 0 {
            return Err(bad("desc"));
        }
        // SAFETY: a shared mapping of the socket's ring at the offset the kernel defines for it;
        // no address hint, so no existing memory is touched; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                kind.pgoff(),
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| bad("base"))?;
        // Every offset was checked above to lie inside the `len`-byte mapping and to be aligned
        // (the mapping itself is page-aligned).
        let at = |o: u64| base.map_addr(|a| a.saturating_add(o as usize));
        let ring = Self {
            base,
            len,
            producer: at(ro.producer).cast(),
            consumer: at(ro.consumer).cast(),
            flags: at(ro.flags).cast(),
            desc: at(ro.desc).cast(),
            mask: size - 1,
            _t: PhantomData,
        };
        Ok(ring)
    }

    /// The producer index shared with the kernel.
    #[inline]
    pub(crate) fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping, aligned (checked in `map`); the kernel only
        // accesses it atomically.
        unsafe { self.producer.as_ref() }
    }

    /// The consumer index shared with the kernel.
    #[inline]
    pub(crate) fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// The ring's flags word (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn flags(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// Reads the entry at ring index `idx` (masked into range).
    #[inline]
    pub(crate) fn read(&self, idx: u32) -> T {
        // SAFETY: the masked index is below `size`, so the entry lies inside the mapping; `T` is
        // plain data valid for any bit pattern. The ring protocol (acquire on the producer index)
        // makes the kernel's write visible before we read.
        unsafe { self.desc.as_ptr().add((idx & self.mask) as usize).read() }
    }

    /// Writes the entry at ring index `idx` (masked into range).
    #[inline]
    pub(crate) fn write(&mut self, idx: u32, v: T) {
        // SAFETY: as in `read`; the kernel reads the slot only after our release store of the
        // producer index.
        unsafe { self.desc.as_ptr().add((idx & self.mask) as usize).write(v) }
    }
}

impl<T: RingEntry> Drop for RingMap<T> {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned, and no reference into the mapping
        // outlives `self` (all accessors borrow `self`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}
