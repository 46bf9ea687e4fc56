//! The only unsafe code of this crate: the bindgen binding to DPDK (generated at build time from
//! the installed headers, see build.rs) and safe wrappers over it.
//!
//! The wrappers keep two promises the rest of the crate relies on:
//! - every pointer handed to DPDK either comes from DPDK (a port id, a mempool) or is a live
//!   Rust buffer of the length the call is told;
//! - every frame offset handed to the C shim has been checked against the worker's
//!   [`FrameRegion`]: it lies inside one frame, after the mbuf header the shim writes there.

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

mod raw {
    include!(concat!(env!("OUT_DIR"), "/dpdk_bindings.rs"));
}

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;
use xvs_io::{Desc, FrameRegion};

pub(crate) use raw::XVS_MAX_BURST;

/// `rte_errno` of the calling thread.
pub(crate) fn errno() -> i32 {
    // SAFETY: reads a thread-local integer; no arguments.
    unsafe { raw::xvs_errno() }
}

/// DPDK's message for an error number (DPDK's own codes and errno values).
pub(crate) fn strerror(e: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string,
    // which is copied before any other DPDK call on this thread.
    unsafe {
        let p = raw::rte_strerror(e);
        if p.is_null() {
            return format!("error {e}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Runs `rte_eal_init` with `args` (argv[0] included). The caller guarantees it is called at
/// most once per process. The calling thread's CPU affinity is restored afterwards: EAL pins
/// its caller to the main lcore, and xvsd's control thread must not stay pinned there.
pub(crate) fn eal_init(args: &[String]) -> Result<(), i32> {
    let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
    for a in args {
        let c = CString::new(a.as_str()).map_err(|_| libc::EINVAL)?;
        // EAL keeps pointers into argv (getopt permutes it, some strings are kept): the strings
        // live as long as the process.
        argv.push(c.into_raw());
    }
    argv.push(std::ptr::null_mut());
    let argv = argv.leak();
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let saved =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    // SAFETY: argv is a NULL-terminated array of `args.len()` valid C strings that are never
    // freed; argc matches.
    let ret = unsafe { raw::rte_eal_init(args.len() as c_int, argv.as_mut_ptr()) };
    if saved {
        // SAFETY: restores the set read above for the calling thread.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
    if ret < 0 {
        return Err(errno());
    }
    Ok(())
}

/// `rte_eal_cleanup`: releases EAL's memory and runtime files. Only after every port is closed.
pub(crate) fn eal_cleanup() -> i32 {
    // SAFETY: called once, after every device and mempool of the process is gone.
    unsafe { raw::rte_eal_cleanup() }
}

/// The port id of an ethdev by its name (a vdev's name, or a PCI address).
pub(crate) fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id: u16 = 0;
    // SAFETY: `c` is a valid C string and `id` a valid out-pointer for the call.
    let r = unsafe { raw::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (r == 0).then_some(id)
}

/// What a device can do.
#[derive(Debug, Clone, Default)]
pub(crate) struct DevInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub rx_desc_max: u16,
    pub tx_desc_max: u16,
}

pub(crate) fn dev_info(port: u16) -> Result<DevInfo, i32> {
    let mut info = raw::rte_eth_dev_info::default();
    // SAFETY: `info` is a valid, writable rte_eth_dev_info.
    let r = unsafe { raw::rte_eth_dev_info_get(port, &mut info) };
    if r != 0 {
        return Err(-r);
    }
    let driver = if info.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: driver_name points at the driver's static name string.
        unsafe { CStr::from_ptr(info.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(DevInfo {
        driver,
        max_rx_queues: info.max_rx_queues,
        max_tx_queues: info.max_tx_queues,
        rss_offloads: info.flow_type_rss_offloads,
        rx_desc_max: info.rx_desc_lim.nb_max,
        tx_desc_max: info.tx_desc_lim.nb_max,
    })
}

/// The RSS hash functions xvs asks for on multi-queue ports.
pub(crate) fn rss_hf_default() -> u64 {
    // SAFETY: returns a constant.
    unsafe { raw::xvs_rss_hf_default() }
}

/// `rte_eth_dev_configure` with `rss_hf` hashing (0: no RSS).
pub(crate) fn configure(port: u16, nrx: u16, ntx: u16, rss_hf: u64) -> Result<(), i32> {
    let mut conf = raw::rte_eth_conf::default();
    if rss_hf != 0 {
        conf.rxmode.mq_mode = raw::RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    }
    // SAFETY: `conf` is a valid configuration that DPDK copies.
    let r = unsafe { raw::rte_eth_dev_configure(port, nrx, ntx, &conf) };
    if r != 0 {
        return Err(-r);
    }
    Ok(())
}

pub(crate) fn rx_queue_setup(
    port: u16,
    queue: u16,
    nb_desc: u16,
    socket: u32,
    pool: &Mempool,
) -> Result<(), i32> {
    // SAFETY: a NULL rxconf selects the driver's defaults; the mempool is live and outlives the
    // queue (the device is closed before the mempool is freed, see `Device`).
    let r = unsafe {
        raw::rte_eth_rx_queue_setup(
            port,
            queue,
            nb_desc,
            socket,
            std::ptr::null(),
            pool.ptr.as_ptr(),
        )
    };
    if r != 0 {
        return Err(-r);
    }
    Ok(())
}

pub(crate) fn tx_queue_setup(port: u16, queue: u16, nb_desc: u16, socket: u32) -> Result<(), i32> {
    // SAFETY: a NULL txconf selects the driver's defaults.
    let r = unsafe { raw::rte_eth_tx_queue_setup(port, queue, nb_desc, socket, std::ptr::null()) };
    if r != 0 {
        return Err(-r);
    }
    Ok(())
}

pub(crate) fn start(port: u16) -> Result<(), i32> {
    // SAFETY: plain call on a configured port id.
    let r = unsafe { raw::rte_eth_dev_start(port) };
    if r != 0 {
        return Err(-r);
    }
    Ok(())
}

pub(crate) fn stop(port: u16) -> i32 {
    // SAFETY: plain call on a port id; no worker polls the port any more (see `Device`).
    unsafe { raw::rte_eth_dev_stop(port) }
}

pub(crate) fn close(port: u16) -> i32 {
    // SAFETY: plain call on a stopped port id; the port id is not used afterwards.
    unsafe { raw::rte_eth_dev_close(port) }
}

pub(crate) fn promiscuous_enable(port: u16) -> i32 {
    // SAFETY: plain call on a port id.
    unsafe { raw::rte_eth_promiscuous_enable(port) }
}

/// The NUMA socket of a port (-1 when unknown).
pub(crate) fn socket_id(port: u16) -> i32 {
    // SAFETY: plain call on a port id.
    unsafe { raw::rte_eth_dev_socket_id(port) }
}

/// Queues whose counters `rte_eth_stats` carries.
pub(crate) const QUEUE_STAT_COUNTERS: usize = raw::RTE_ETHDEV_QUEUE_STAT_CNTRS as usize;

/// `rte_eth_stats`, copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EthStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets transmitted.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes transmitted.
    pub obytes: u64,
    /// Packets dropped by the device because no receive buffer was free.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Per-queue received packets (first queues only).
    pub q_ipackets: [u64; QUEUE_STAT_COUNTERS],
    /// Per-queue transmitted packets.
    pub q_opackets: [u64; QUEUE_STAT_COUNTERS],
    /// Per-queue receive errors (drops).
    pub q_errors: [u64; QUEUE_STAT_COUNTERS],
}

pub(crate) fn stats(port: u16) -> Result<EthStats, i32> {
    let mut s = raw::rte_eth_stats::default();
    // SAFETY: `s` is a valid, writable rte_eth_stats.
    let r = unsafe { raw::rte_eth_stats_get(port, &mut s) };
    if r != 0 {
        return Err(-r);
    }
    Ok(EthStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        q_ipackets: s.q_ipackets,
        q_opackets: s.q_opackets,
        q_errors: s.q_errors,
    })
}

/// The names of a port's extended statistics, in id order.
pub(crate) fn xstat_names(port: u16) -> Result<Vec<String>, i32> {
    // SAFETY: a NULL array with size 0 asks for the count only.
    let n = unsafe { raw::rte_eth_xstats_get_names(port, std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(-n);
    }
    let mut names = vec![raw::rte_eth_xstat_name::default(); n as usize];
    // SAFETY: `names` holds `n` writable entries.
    let m = unsafe { raw::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32) };
    if m < 0 || m > n {
        return Err(if m < 0 { -m } else { libc::EAGAIN });
    }
    Ok(names[..m as usize]
        .iter()
        .map(|e| {
            // SAFETY: rte_eth_xstat_name.name is a fixed array DPDK NUL-terminates.
            let bytes: &[u8] =
                unsafe { std::slice::from_raw_parts(e.name.as_ptr().cast(), e.name.len()) };
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        })
        .collect())
}

/// Reads the values of a port's extended statistics into `out` (id order); returns how many
/// the device has (which may exceed `out.len()`: then only a prefix was written).
pub(crate) fn xstat_values(port: u16, scratch: &mut [[u64; 2]], out: &mut [u64]) -> usize {
    let n = scratch.len().min(out.len());
    // SAFETY: rte_eth_xstat is two u64s ({id, value}); `scratch` has room for `n` of them.
    let r = unsafe {
        raw::rte_eth_xstats_get(
            port,
            scratch.as_mut_ptr().cast::<raw::rte_eth_xstat>(),
            n as u32,
        )
    };
    if r < 0 {
        return 0;
    }
    let got = (r as usize).min(n);
    for (o, s) in out.iter_mut().zip(&scratch[..got]) {
        *o = s[1];
    }
    r as usize
}

/// A packet-mbuf mempool whose objects are the frames of a worker's [`FrameRegion`]
/// (`xvs_pool_create`). Freed on drop.
///
/// # Thread safety
/// The pool is created single-producer/single-consumer: only the thread that owns the worker
/// (and, after the worker stopped, the thread closing the device) may put or get.
#[derive(Debug)]
pub(crate) struct Mempool {
    ptr: NonNull<raw::rte_mempool>,
    /// Offset of the rte_mbuf from its frame's start.
    pub hdr: u32,
    /// sizeof(struct rte_mbuf).
    pub mbuf_size: u32,
}

// SAFETY: the mempool is plain DPDK memory used by one thread at a time (see Thread safety):
// built on the control thread, then moved with its worker.
unsafe impl Send for Mempool {}
// SAFETY: shared (through `mempool::WorkerMempool`) only by the queues of one worker, which put
// and get only in calls holding that worker's `&mut FramePool` for the mempool's region (checked
// there), or while the worker is stopped: never from two threads at once.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Lays a mempool over every frame of `region`. The pool starts empty.
    pub(crate) fn over_region(
        name: &str,
        region: &mut FrameRegion,
        socket: i32,
    ) -> Result<Self, i32> {
        let c = CString::new(name).map_err(|_| libc::EINVAL)?;
        let (base, len) = region.raw_parts();
        let mut hdr = 0u32;
        // SAFETY: [base, base + len) is the region's mapping, alive as long as the region, which
        // outlives this mempool (the device using it is closed first); `&mut region` means no
        // Rust view of it is alive while DPDK writes the mempool headers at every frame's start.
        let p = unsafe {
            raw::xvs_pool_create(
                c.as_ptr(),
                base.as_ptr().cast(),
                len,
                region.frame_size(),
                socket,
                &mut hdr,
            )
        };
        let ptr = NonNull::new(p).ok_or_else(errno)?;
        // SAFETY: returns a constant.
        let mbuf_size = unsafe { raw::xvs_mbuf_size() };
        Ok(Self {
            ptr,
            hdr,
            mbuf_size,
        })
    }

    /// Mbufs in the pool.
    pub(crate) fn avail(&self) -> u32 {
        // SAFETY: reads the live pool's counters.
        unsafe { raw::xvs_pool_avail(self.ptr.as_ptr()) }
    }

    /// Puts the frames at offsets `frames` (frame bases of `region`, checked by the caller)
    /// into the pool.
    pub(crate) fn put(&self, region: &mut FrameRegion, frames: &[u64]) {
        let (base, len) = region.raw_parts();
        let fs = u64::from(region.frame_size());
        debug_assert!(frames.iter().all(|&f| f % fs == 0 && f < len as u64));
        for chunk in frames.chunks(XVS_MAX_BURST as usize) {
            // SAFETY: every offset is a frame base inside the region (checked by the callers,
            // asserted above in debug builds); the shim writes only that frame's mbuf header.
            unsafe {
                raw::xvs_pool_put(
                    self.ptr.as_ptr(),
                    base.as_ptr() as usize,
                    self.hdr,
                    chunk.as_ptr(),
                    chunk.len() as u32,
                )
            }
        }
    }

    /// Takes up to `out.len()` mbufs out of the pool; writes their frame bases; returns how many.
    pub(crate) fn get(&self, region: &FrameRegion, out: &mut [u64]) -> usize {
        let (base, _) = region.raw_parts();
        let n = out.len().min(XVS_MAX_BURST as usize);
        // SAFETY: `out` has room for `n` entries; the pool's objects are frames of the region.
        unsafe {
            raw::xvs_pool_get(
                self.ptr.as_ptr(),
                base.as_ptr() as usize,
                self.hdr,
                out.as_mut_ptr(),
                n as u32,
            ) as usize
        }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the device that used this pool is closed (see `Device`), so nothing refers to
        // it; rte_mempool_free does not touch the objects (the frames' memory).
        unsafe { raw::rte_mempool_free(self.ptr.as_ptr()) }
    }
}

// `xvs_io::Desc` and the shim's `struct xvs_desc` are the same {u64 addr; u32 len; u32 options}.
const _: () = assert!(std::mem::size_of::<Desc>() == std::mem::size_of::<raw::xvs_desc>());
const _: () = assert!(std::mem::align_of::<Desc>() == std::mem::align_of::<raw::xvs_desc>());

/// Receives a burst from (port, queue) straight into `out` (offsets in `region`). Returns
/// (received, dropped, bytes received): dropped packets (chained, or not in the region) were
/// freed.
pub(crate) fn rx(
    port: u16,
    queue: u16,
    region: &mut FrameRegion,
    hdr: u32,
    out: &mut [Desc],
) -> (usize, usize, u64) {
    let n = out.len().min(XVS_MAX_BURST as usize);
    let (base, len) = region.raw_parts();
    let mut counts = raw::xvs_rx_counts::default();
    // SAFETY: `out` has room for `n` descriptors, whose layout is the shim's `struct xvs_desc`
    // (asserted above); the device writes packet data only into mbufs it owns (frames handed to
    // the mempool, not visible to Rust); `&mut region` keeps Rust views away while it does.
    let got = unsafe {
        raw::xvs_rx(
            port,
            queue,
            base.as_ptr() as usize,
            len as u64,
            region.frame_size(),
            hdr,
            out.as_mut_ptr().cast::<raw::xvs_desc>(),
            n as u16,
            &mut counts,
        )
    };
    (usize::from(got), usize::from(counts.dropped), counts.bytes)
}

/// Transmits the packets `descs` (offsets in `region`, each checked by the caller to lie in one
/// frame after its mbuf header) as mbufs of `pool`. Returns how many (a prefix) the device took.
pub(crate) fn tx(
    port: u16,
    queue: u16,
    pool: &Mempool,
    region: &mut FrameRegion,
    descs: &[Desc],
) -> usize {
    let n = descs.len().min(XVS_MAX_BURST as usize);
    let (base, _) = region.raw_parts();
    // SAFETY: the caller checked every descriptor (see above), whose layout is the shim's
    // `struct xvs_desc`; the shim writes only those frames' mbuf headers, and the device reads
    // their data; `&mut region` keeps Rust views away.
    let sent = unsafe {
        raw::xvs_tx(
            port,
            queue,
            pool.ptr.as_ptr(),
            base.as_ptr() as usize,
            region.frame_size(),
            pool.hdr,
            descs.as_ptr().cast::<raw::xvs_desc>(),
            n as u16,
        )
    };
    usize::from(sent)
}

/// EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root).
pub(crate) fn runtime_dir() -> Option<std::path::PathBuf> {
    // SAFETY: returns a pointer to EAL's static NUL-terminated path (EAL is initialised).
    let p = unsafe { raw::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, static.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (!s.is_empty()).then(|| std::path::PathBuf::from(s))
}

/// Makes the region's memory usable for DMA by a bus (PCI) device: external-memory registration
/// and an IOMMU mapping with IOVA = VA (`xvs_dma_map`). Not needed for virtual devices.
pub(crate) fn dma_map(port: u16, region: &FrameRegion) -> Result<(), i32> {
    let (base, len) = region.raw_parts();
    // SAFETY: [base, base + len) is the region's live mapping; DPDK records it and programs the
    // IOMMU, it does not write to it. `dma_unmap` undoes this before the region goes away.
    let r = unsafe { raw::xvs_dma_map(port, base.as_ptr().cast(), len, 4096) };
    if r < 0 {
        return Err(-r);
    }
    Ok(())
}

/// Undoes [`dma_map`] for a region starting at `base` of `len` bytes (errors ignored).
pub(crate) fn dma_unmap(port: u16, base: usize, len: usize) {
    // SAFETY: removes the registration `dma_map` made for exactly this range; the device is
    // closed, so it no longer accesses the memory.
    unsafe { raw::xvs_dma_unmap(port, base as *mut std::ffi::c_void, len) }
}
