//! AF_XDP sockets on the worker's shared UMEM, and their [`PortIo`] implementation.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use xvs_io::{Desc, FramePool, PortIo, PortStats};

use crate::error::AfXdpError;
use crate::program::{XdpProgram, MAX_QUEUES};
use crate::ring::{ConsRing, ProdRing};
use crate::sys::{self, RingKind, RingMap};

/// The headroom the kernel always leaves in front of received data (`XDP_PACKET_HEADROOM`).
pub const KERNEL_HEADROOM: u32 = 256;

/// Descriptors moved per fill-ring refill at most; also the smallest refill worth a ring update.
const REFILL_BATCH: u32 = 64;
/// Completion entries reclaimed per pass.
const RECLAIM_BATCH: u32 = 256;
/// Descriptors the kernel transmits per copy-mode `sendto` (`TX_BATCH_SIZE` in net/xdp/xsk.c).
const COPY_TX_PER_KICK: u32 = 32;
/// Bind retries on EBUSY (the previous socket on the queue is still being torn down) and the
/// pause between them: one second in all.
const BIND_RETRIES: u32 = 50;
const BIND_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How long [`AfXdpPort::close`] waits for queued transmissions to complete.
pub const CLOSE_TX_TIMEOUT: Duration = Duration::from_millis(500);

/// How the socket moves frames between the device and the UMEM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BindMode {
    /// Zero-copy when the driver supports it, copy otherwise (veth: always copy).
    #[default]
    Auto,
    /// Zero-copy only; fails with [`AfXdpError::ZeroCopyUnsupported`] where unavailable.
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

impl BindMode {
    fn name(self) -> &'static str {
        match self {
            BindMode::Auto => "auto",
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        }
    }
}

/// One AF_XDP socket's configuration. Ring sizes must be powers of two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Interface name, resolved in the calling thread's network namespace.
    pub ifname: String,
    /// Hardware queue (a veth has one active queue, 0, unless `ethtool -L` raised it).
    pub queue: u32,
    /// RX ring entries.
    pub rx_size: u32,
    /// TX ring entries.
    pub tx_size: u32,
    /// Fill ring entries; the port keeps it topped up from the pool.
    pub fill_size: u32,
    /// Completion ring entries.
    pub comp_size: u32,
    /// Copy or zero-copy. Ignored for every socket after the first of a worker's UMEM, which
    /// inherit its mode; a conflicting explicit request is an error.
    pub bind: BindMode,
    /// Use the kernel's need-wakeup protocol (skip syscalls the kernel does not need).
    /// Inherited from the first socket of the UMEM, like `bind`.
    pub need_wakeup: bool,
    /// Times a bind refused with `EBUSY` (the queue's previous socket still being torn down
    /// by the kernel) is retried, 20 ms apart, before `open` fails. A polling thread opening
    /// a port sets 0 and lets a thread that may sleep retry the whole open.
    pub bind_retries: u32,
}

impl AfXdpConfig {
    /// Defaults for `ifname` queue `queue`: 2048-entry fill and completion rings, 1024-entry RX
    /// and TX rings, auto bind mode, need-wakeup on.
    pub fn new(ifname: &str, queue: u32) -> Self {
        Self {
            ifname: ifname.to_string(),
            queue,
            rx_size: 1024,
            tx_size: 1024,
            fill_size: 2048,
            comp_size: 2048,
            bind: BindMode::Auto,
            need_wakeup: true,
            bind_retries: BIND_RETRIES,
        }
    }

    /// The most frames this port can hold at once: fill ring + RX ring (received but not yet
    /// polled) + TX ring + completion ring. A worker's pool needs the sum of this over its ports,
    /// plus the frames its own pipeline holds (one burst per port, packets queued for
    /// recirculation or upcall); with fewer, nothing breaks, but the kernel finds the fill ring
    /// short under load and drops (`rx_fill_ring_empty_descs`).
    pub fn frames_needed(&self) -> usize {
        [self.fill_size, self.rx_size, self.tx_size, self.comp_size]
            .iter()
            .map(|&n| n as usize)
            .sum()
    }

    fn validate(&self) -> Result<(), AfXdpError> {
        for (what, n) in [
            ("rx_size", self.rx_size),
            ("tx_size", self.tx_size),
            ("fill_size", self.fill_size),
            ("comp_size", self.comp_size),
        ] {
            if !n.is_power_of_two() || !(64..=65536).contains(&n) {
                return Err(AfXdpError::Config(format!(
                    "{what} = {n}: ring sizes must be powers of two between 64 and 65536"
                )));
            }
        }
        if self.queue >= MAX_QUEUES {
            return Err(AfXdpError::Config(format!(
                "queue {} is above the program's limit of {MAX_QUEUES} queues",
                self.queue
            )));
        }
        Ok(())
    }
}

/// A worker's UMEM registration: the first port opened with it registers the pool's region with
/// the kernel; later ports bind with `XDP_SHARED_UMEM` to any live port of the set, each with its
/// own fill and completion rings. Create one per worker (per [`FramePool`]) and pass it to every
/// [`AfXdpPort::open`] of that worker.
///
/// It holds only weak references: a port's socket closes when the port is dropped. When every
/// port of the set is gone, the next open registers the region again.
///
/// # Thread safety
/// `Send`, not meant to be shared: the worker's builder owns it.
#[derive(Debug, Default)]
pub struct UmemShare {
    region: Option<(usize, usize)>,
    members: Vec<Weak<OwnedFd>>,
    zero_copy: bool,
    need_wakeup: bool,
}

impl UmemShare {
    /// An empty set: the next port opened registers the UMEM.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when at least one port of the set is alive (the UMEM is registered).
    pub fn is_registered(&mut self) -> bool {
        self.members.retain(|w| w.strong_count() > 0);
        !self.members.is_empty()
    }

    /// Whether the registered UMEM runs in zero-copy mode (meaningful once registered).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    fn live_member(&mut self) -> Option<Arc<OwnedFd>> {
        self.members.retain(|w| w.strong_count() > 0);
        self.members.iter().find_map(Weak::upgrade)
    }
}

/// Kernel counters of one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpSocketStats {
    /// Frames dropped for reasons other than invalid descriptors (e.g. no socket memory).
    pub rx_dropped: u64,
    /// Invalid descriptors found on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors found on the TX ring (their frames are lost to the kernel).
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full (userspace too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (pool too small or refill too slow).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when asked to transmit.
    pub tx_ring_empty_descs: u64,
}

/// Counters of our own side of the socket, beyond [`PortStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfXdpCounters {
    /// RX wakeup syscalls made (need-wakeup set on the fill ring).
    pub rx_kicks: u64,
    /// TX wakeup syscalls made.
    pub tx_kicks: u64,
    /// Transmissions the kernel completed (frames back in the pool).
    pub tx_completed: u64,
    /// TX kicks that reported a transient condition (EAGAIN, EBUSY, ENOBUFS).
    pub tx_kick_busy: u64,
    /// Refills that found the pool empty before the fill ring was full.
    pub fill_pool_empty: u64,
    /// Descriptors refused by `tx_burst` because they do not lie in one frame of the pool
    /// (their frames were returned to the pool, counted in `tx_dropped` too).
    pub tx_invalid: u64,
}

/// One AF_XDP socket bound to (interface, queue), polled by one worker.
///
/// # Frame ownership
/// Frames move between the pool and the kernel only through this port: the fill ring is topped
/// up from the pool, received descriptors are handed to the caller (who now owns the frames),
/// transmitted frames belong to the port until their completion, when they go back to the pool.
/// [`PortIo::frames_held`] is exact: frames posted on the fill ring and not yet received, plus
/// frames submitted for TX and not yet completed. Frames posted to the kernel return to the pool
/// only through the rings: [`AfXdpPort::close`] takes them back; merely dropping a port loses
/// them to the pool (fine when the whole worker goes away).
///
/// # Thread safety
/// `Send`, not `Sync`: build it on any thread (in the right network namespace) and move it to the
/// worker thread that polls it. The rings are single-producer/single-consumer with the kernel.
#[derive(Debug)]
pub struct AfXdpPort {
    ifname: String,
    queue: u32,
    fd: Arc<OwnedFd>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: ConsRing<Desc>,
    tx: ProdRing<Desc>,
    fill_size: u32,
    tx_size: u32,
    zero_copy: bool,
    need_wakeup: bool,
    fill_held: usize,
    tx_held: usize,
    stats: PortStats,
    counters: AfXdpCounters,
    /// Set by [`PortIo::begin_close`]: becomes true once the socket was released elsewhere.
    released: Option<Arc<AtomicBool>>,
}

/// The socket of a port being closed: dropping it closes the socket (the kernel unbinds it,
/// removes it from the XSKMAP and waits for receive paths in flight), then says so.
struct SocketRelease {
    fd: Option<Arc<OwnedFd>>,
    done: Arc<AtomicBool>,
}

impl Drop for SocketRelease {
    fn drop(&mut self) {
        drop(self.fd.take());
        // Release: the worker's Acquire load sees the socket closed before it touches the
        // rings again.
        self.done.store(true, Ordering::Release);
    }
}

fn is_transient(errno: i32) -> bool {
    errno == libc::EAGAIN || errno == libc::EBUSY || errno == libc::ENOBUFS
}

impl AfXdpPort {
    /// Opens an AF_XDP socket on `cfg.ifname` queue `cfg.queue`, on the UMEM of `pool` (shared
    /// with the worker's other ports through `umem`), fills its fill ring from `pool`, and points
    /// the queue's slot of `prog`'s XSKMAP at it. `prog` must be attached to `cfg.ifname`.
    ///
    /// Call it in the network namespace of the interface (a thread that has `setns`-ed into it).
    pub fn open(
        prog: &mut XdpProgram,
        cfg: &AfXdpConfig,
        pool: &mut FramePool,
        umem: &mut UmemShare,
    ) -> Result<Self, AfXdpError> {
        cfg.validate()?;
        let ifindex = sys::if_index(&cfg.ifname).ok_or_else(|| AfXdpError::NoSuchInterface {
            ifname: cfg.ifname.clone(),
        })?;
        if prog.ifname() != cfg.ifname || prog.ifindex() != ifindex {
            return Err(AfXdpError::ProgramMismatch {
                port: format!("{} (ifindex {ifindex})", cfg.ifname),
                program: format!("{} (ifindex {})", prog.ifname(), prog.ifindex()),
            });
        }
        let sock_err = |op: &'static str| {
            let ifname = cfg.ifname.clone();
            let queue = cfg.queue;
            move |source| AfXdpError::Socket {
                op,
                ifname,
                queue,
                source,
            }
        };

        let (base, len) = pool.region().raw_parts();
        let region = (base.as_ptr() as usize, len);
        let owner = umem.live_member();
        if let Some(_o) = &owner {
            if umem.region != Some(region) {
                return Err(AfXdpError::UmemMismatch);
            }
            let actual = if umem.zero_copy { "zero-copy" } else { "copy" };
            let conflict = match cfg.bind {
                BindMode::Auto => false,
                BindMode::ZeroCopy => !umem.zero_copy,
                BindMode::Copy => umem.zero_copy,
            };
            if conflict {
                return Err(AfXdpError::BindModeMismatch {
                    ifname: cfg.ifname.clone(),
                    asked: cfg.bind.name(),
                    actual,
                });
            }
        }

        let frame_size = pool.region().frame_size();
        if frame_size as usize > sys::page_size() {
            return Err(AfXdpError::Config(format!(
                "pool frame size {frame_size} exceeds the page size {}: AF_XDP aligned mode needs \
                 frames of at most one page",
                sys::page_size()
            )));
        }
        let fd = sys::xsk_socket().map_err(sock_err("socket"))?;
        if owner.is_none() {
            // The kernel puts received data KERNEL_HEADROOM (+ this) into the frame; ask for the
            // rest of the pool's headroom so received data starts where the pool expects it.
            let headroom = pool.headroom().saturating_sub(KERNEL_HEADROOM);
            sys::umem_register(fd.as_fd(), base, len, frame_size, headroom)
                .map_err(sock_err("UMEM registration"))?;
        }
        for (kind, n) in [
            (RingKind::Fill, cfg.fill_size),
            (RingKind::Completion, cfg.comp_size),
            (RingKind::Rx, cfg.rx_size),
            (RingKind::Tx, cfg.tx_size),
        ] {
            sys::set_ring_size(fd.as_fd(), kind, n).map_err(sock_err("ring setup"))?;
        }
        let off = sys::mmap_offsets(fd.as_fd()).map_err(sock_err("mmap offsets"))?;
        let fill = RingMap::map(fd.as_fd(), RingKind::Fill, &off, cfg.fill_size)
            .map_err(sock_err("fill ring mmap"))?;
        let comp = RingMap::map(fd.as_fd(), RingKind::Completion, &off, cfg.comp_size)
            .map_err(sock_err("completion ring mmap"))?;
        let rx = RingMap::map(fd.as_fd(), RingKind::Rx, &off, cfg.rx_size)
            .map_err(sock_err("rx ring mmap"))?;
        let tx = RingMap::map(fd.as_fd(), RingKind::Tx, &off, cfg.tx_size)
            .map_err(sock_err("tx ring mmap"))?;

        let flags: u16 = match &owner {
            Some(_) => libc::XDP_SHARED_UMEM,
            None => {
                let mode = match cfg.bind {
                    // No mode flag: the kernel tries zero-copy and falls back to copy.
                    BindMode::Auto => 0,
                    BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
                    BindMode::Copy => libc::XDP_COPY,
                };
                let wake = if cfg.need_wakeup {
                    libc::XDP_USE_NEED_WAKEUP
                } else {
                    0
                };
                mode | wake
            }
        };
        let shared = owner.as_ref().map(|o| o.as_fd());
        bind_with_retry(
            fd.as_fd(),
            ifindex,
            cfg.queue,
            flags,
            shared,
            cfg.bind_retries,
        )
        .map_err(|e| {
            if cfg.bind == BindMode::ZeroCopy && e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                AfXdpError::ZeroCopyUnsupported {
                    ifname: cfg.ifname.clone(),
                    queue: cfg.queue,
                }
            } else {
                sock_err("bind")(e)
            }
        })?;
        let opts = sys::options(fd.as_fd()).map_err(sock_err("XDP_OPTIONS"))?;
        let zero_copy = opts & libc::XDP_OPTIONS_ZEROCOPY != 0;
        let need_wakeup = match &owner {
            Some(_) => umem.need_wakeup,
            None => cfg.need_wakeup,
        };

        let fd = Arc::new(fd);
        let mut port = Self {
            ifname: cfg.ifname.clone(),
            queue: cfg.queue,
            fd: Arc::clone(&fd),
            fill: ProdRing::new(fill, cfg.fill_size),
            comp: ConsRing::new(comp, cfg.comp_size),
            rx: ConsRing::new(rx, cfg.rx_size),
            tx: ProdRing::new(tx, cfg.tx_size),
            fill_size: cfg.fill_size,
            tx_size: cfg.tx_size,
            zero_copy,
            need_wakeup,
            fill_held: 0,
            tx_held: 0,
            stats: PortStats::default(),
            counters: AfXdpCounters::default(),
            released: None,
        };
        port.refill(pool);
        if port.fill_held == 0 {
            return Err(AfXdpError::PoolEmpty {
                ifname: cfg.ifname.clone(),
            });
        }
        // Only now may the program redirect to us: the fill ring has frames.
        if let Err(e) = prog.register(cfg.queue, &*fd) {
            // Nothing can have been redirected to the socket yet, so the kernel has not touched
            // the fill ring: take the posted frames back.
            for back in 1..=port.fill_held as u32 {
                pool.free(port.fill.read_back(back));
            }
            port.fill_held = 0;
            return Err(e);
        }
        if owner.is_none() {
            umem.region = Some(region);
            umem.zero_copy = zero_copy;
            umem.need_wakeup = cfg.need_wakeup;
        }
        umem.members.push(Arc::downgrade(&fd));
        Ok(port)
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// True when the socket runs in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The socket, for readiness polling (epoll/mio) in interrupt mode.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Our own counters beyond [`PortStats`].
    pub fn counters(&self) -> AfXdpCounters {
        self.counters
    }

    /// Reads the kernel's counters (one syscall) and folds its receive drops (`rx_dropped` +
    /// `rx_ring_full`) into [`PortStats::rx_dropped`]. Call it from the worker's slow tick
    /// (e.g. when it publishes counters), not per batch.
    pub fn refresh_kernel_stats(&mut self) -> Result<XdpSocketStats, AfXdpError> {
        let k = self.kernel_stats()?;
        self.stats.rx_dropped = k.rx_dropped + k.rx_ring_full;
        Ok(k)
    }

    /// The kernel's counters for this socket (one getsockopt; control path only).
    pub fn kernel_stats(&self) -> Result<XdpSocketStats, AfXdpError> {
        let s = sys::statistics(self.fd.as_fd()).map_err(|source| AfXdpError::Socket {
            op: "XDP_STATISTICS",
            ifname: self.ifname.clone(),
            queue: self.queue,
            source,
        })?;
        Ok(XdpSocketStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// Shuts the port down and gives its frames back to `pool`: waits (up to
    /// [`CLOSE_TX_TIMEOUT`]) for queued transmissions to complete, closes the socket (the kernel
    /// removes it from the XSKMAP and stops using its rings), then takes back the frames still
    /// on the RX, completion, fill and TX rings. Works as well after the interface was deleted
    /// under the port (a Pod's veth removed first).
    ///
    /// Returns the number of frames that could not be recovered: normally 0; frames the kernel
    /// was holding internally (copy mode keeps a frame when the RX ring was full) or whose
    /// transmission did not complete in time stay lost to this pool. Use it when a port goes
    /// away at run time (a Pod deleted); simply dropping a port loses all its frames.
    pub fn close(self, pool: &mut FramePool) -> usize {
        let mut port = self;
        if port.released.is_none() {
            port.drain_tx(pool);
        }
        let AfXdpPort {
            fd,
            mut fill,
            comp,
            rx,
            tx,
            mut fill_held,
            tx_held,
            ..
        } = port;
        // Closing the last reference releases the socket: the kernel unbinds it, deletes it
        // from the XSKMAP and waits for in-flight receive paths (synchronize_net) before
        // returning. Our ring mappings stay valid until we drop them.
        drop(fd);
        let mut rx = rx;
        loop {
            let n = rx.peek(u32::MAX);
            if n == 0 {
                break;
            }
            for i in 0..n {
                pool.free(rx.read(i).addr);
            }
            rx.release(n);
            fill_held = fill_held.saturating_sub(n as usize);
        }
        let n = fill.drain_unconsumed(|addr| pool.free(addr));
        fill_held = fill_held.saturating_sub(n as usize);
        let mut comp = comp;
        let mut tx_held = tx_held;
        loop {
            let n = comp.peek(u32::MAX);
            if n == 0 {
                break;
            }
            for i in 0..n {
                pool.free(comp.read(i));
            }
            comp.release(n);
            tx_held = tx_held.saturating_sub(n as usize);
        }
        // Transmissions the kernel never picked up (e.g. the interface vanished) are ours again.
        let mut tx = tx;
        let n = tx.drain_unconsumed(|d| pool.free(d.addr));
        tx_held = tx_held.saturating_sub(n as usize);
        fill_held + tx_held
    }

    /// Waits (up to [`CLOSE_TX_TIMEOUT`]) for queued transmissions to complete.
    fn drain_tx(&mut self, pool: &mut FramePool) {
        let deadline = std::time::Instant::now() + CLOSE_TX_TIMEOUT;
        while self.tx_held > 0 && std::time::Instant::now() < deadline {
            if !self.kick_tx(pool) {
                // The socket cannot send any more (interface gone or down).
                break;
            }
            self.reclaim(pool);
            if self.tx_held > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Tops the fill ring up from the pool, in batches of at least [`REFILL_BATCH`] (or all the
    /// free slots when the ring is nearly empty).
    #[inline]
    fn refill(&mut self, pool: &mut FramePool) {
        let free = self.fill.free(REFILL_BATCH);
        // Wait for a worthwhile batch, unless the kernel is running short.
        if free == 0 || (free < REFILL_BATCH && self.fill_held >= (self.fill_size / 2) as usize) {
            return;
        }
        let mut n = 0;
        while n < free {
            match pool.alloc() {
                Some(base) => {
                    self.fill.write(n, base);
                    n += 1;
                }
                None => {
                    self.counters.fill_pool_empty += 1;
                    break;
                }
            }
        }
        self.fill.submit(n);
        self.fill_held += n as usize;
    }

    /// Moves finished transmissions from the completion ring back to the pool.
    #[inline]
    fn reclaim(&mut self, pool: &mut FramePool) {
        loop {
            let n = self.comp.peek(RECLAIM_BATCH);
            if n == 0 {
                return;
            }
            for i in 0..n {
                pool.free(self.comp.read(i));
            }
            self.comp.release(n);
            self.tx_held = self.tx_held.saturating_sub(n as usize);
            self.counters.tx_completed += u64::from(n);
        }
    }

    /// Asks the kernel to transmit what is on the TX ring. In copy mode the kernel sends at
    /// most 32 frames per syscall, so it kicks until the ring is drained (bounded by the ring
    /// size); completions are reclaimed in between so the completion ring never stalls it.
    /// Returns false when the kernel reported a hard error (the interface went away or down).
    fn kick_tx(&mut self, pool: &mut FramePool) -> bool {
        let max_kicks = if self.zero_copy {
            1
        } else {
            self.tx_size / COPY_TX_PER_KICK + 1
        };
        for _ in 0..max_kicks {
            if self.tx.pending() == 0 {
                return true;
            }
            // With need-wakeup a zero-copy driver says whether it needs the syscall. Copy
            // mode always does: only sendto transmits there (the kernel sets the flag at bind
            // and never clears it), so no flag is read for it.
            if self.zero_copy && self.need_wakeup && !self.tx.needs_wakeup() {
                return true;
            }
            self.counters.tx_kicks += 1;
            let res = sys::kick_tx(self.fd.as_fd());
            self.reclaim(pool);
            match res {
                Ok(()) => {}
                Err(e) if e == libc::EAGAIN => self.counters.tx_kick_busy += 1,
                Err(e) if is_transient(e) => {
                    self.counters.tx_kick_busy += 1;
                    return true;
                }
                Err(_) => {
                    self.stats.errors += 1;
                    return false;
                }
            }
        }
        true
    }
}

fn bind_with_retry(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared: Option<BorrowedFd<'_>>,
    retries: u32,
) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match sys::bind(fd, ifindex, queue, flags, shared) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < retries => {
                // The previous socket on this queue is still being torn down (deferred in the
                // kernel); it goes away within milliseconds.
                tries += 1;
                std::thread::sleep(BIND_RETRY_PAUSE);
            }
            other => return other,
        }
    }
}

impl PortIo for AfXdpPort {
    fn name(&self) -> &str {
        &self.ifname
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let n = self.rx.peek(want);
        let mut bytes = 0u64;
        // The kernel wrote these frames on another CPU: ask for every frame's first line now,
        // before the engine parses any, so the misses overlap. (An address outside the region
        // is harmless to a prefetch, and the engine checks every descriptor anyway.)
        let base = pool.region().raw_parts().0.as_ptr().cast_const();
        for (i, slot) in (0..n).zip(out.iter_mut()) {
            let d = self.rx.read(i);
            sys::prefetch(base.wrapping_add(d.addr as usize));
            bytes += u64::from(d.len);
            *slot = d;
        }
        self.rx.release(n);
        self.fill_held = self.fill_held.saturating_sub(n as usize);
        self.stats.rx_packets += u64::from(n);
        self.stats.rx_bytes += bytes;
        self.refill(pool);
        if self.need_wakeup && self.fill.needs_wakeup() {
            self.counters.rx_kicks += 1;
            match sys::kick_rx(self.fd.as_fd()) {
                Ok(()) => {}
                Err(e) if is_transient(e) => {}
                Err(_) => self.stats.errors += 1,
            }
        }
        n as usize
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        let want = u32::try_from(pkts.len()).unwrap_or(u32::MAX);
        if want == 0 {
            return 0;
        }
        let mut free = self.tx.free(want);
        if free < want {
            // Ring full: let the kernel drain it (copy mode only sends inside the syscall).
            let _ = self.kick_tx(pool);
            free = self.tx.free(want);
        }
        let accepted = want.min(free);
        let mut queued = 0u32;
        let mut bytes = 0u64;
        for d in &pkts[..accepted as usize] {
            if d.len == 0 || !pool.region().contains(*d) {
                // The kernel would skip it and never complete it: the frame would leak.
                pool.free(d.addr);
                self.counters.tx_invalid += 1;
                self.stats.tx_dropped += 1;
                continue;
            }
            self.tx.write(
                queued,
                Desc {
                    addr: d.addr,
                    len: d.len,
                    options: 0,
                },
            );
            queued += 1;
            bytes += u64::from(d.len);
        }
        self.tx.submit(queued);
        self.tx_held += queued as usize;
        self.stats.tx_packets += u64::from(queued);
        self.stats.tx_bytes += bytes;
        accepted as usize
    }

    fn flush(&mut self, pool: &mut FramePool) {
        let _ = self.kick_tx(pool);
        self.reclaim(pool);
        self.refill(pool);
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn refresh_stats(&mut self) {
        if self.refresh_kernel_stats().is_err() {
            self.stats.errors += 1;
        }
    }

    fn frames_held(&self) -> usize {
        self.fill_held + self.tx_held
    }

    fn close(self: Box<Self>, pool: &mut FramePool) -> usize {
        AfXdpPort::close(*self, pool)
    }

    /// Drains TX, then hands the socket over: whoever drops the release pays for the
    /// kernel's unbind (an RCU grace period, milliseconds), not the polling worker. The
    /// port keeps a `/dev/null` descriptor in its place until `close`, which then only takes
    /// the frames back from the rings. Without `/dev/null`, nothing is deferred.
    fn begin_close(&mut self, pool: &mut FramePool) -> Option<xvs_io::DeferredRelease> {
        self.drain_tx(pool);
        let placeholder = OwnedFd::from(std::fs::File::open("/dev/null").ok()?);
        let fd = std::mem::replace(&mut self.fd, Arc::new(placeholder));
        let done = Arc::new(AtomicBool::new(false));
        self.released = Some(Arc::clone(&done));
        Some(Box::new(SocketRelease { fd: Some(fd), done }))
    }

    fn released(&self) -> bool {
        self.released
            .as_ref()
            .is_none_or(|d| d.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let ok = AfXdpConfig::new("eth0", 0);
        assert!(ok.validate().is_ok());
        assert_eq!(ok.frames_needed(), 2048 + 2048 + 1024 + 1024);
        let mut bad = ok.clone();
        bad.rx_size = 1000;
        assert!(matches!(bad.validate(), Err(AfXdpError::Config(_))));
        let mut bad = ok.clone();
        bad.fill_size = 32;
        assert!(matches!(bad.validate(), Err(AfXdpError::Config(_))));
        let mut bad = ok;
        bad.queue = MAX_QUEUES;
        assert!(matches!(bad.validate(), Err(AfXdpError::Config(_))));
    }

    #[test]
    fn port_and_program_are_send() {
        fn send<T: Send>() {}
        send::<AfXdpPort>();
        send::<UmemShare>();
        send::<XdpProgram>();
    }
}
