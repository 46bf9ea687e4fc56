//! Ethdev ports ([`DpdkDevice`]) and their queues ([`DpdkQueue`], a [`PortIo`]).

use crate::config::{DpdkPortConfig, DRIVER_RX_RESERVE, MAX_BURST, POOL_TARGET};
use crate::devargs;
use crate::eal::{Eal, OPEN_DEVICES};
use crate::error::DpdkError;
use crate::ffi::{self, EthStats, QUEUE_STAT_COUNTERS, XVS_MAX_BURST};
use crate::mempool::WorkerMempool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use xvs_io::{Desc, FramePool, PortIo, PortStats};

/// Bytes at the start of every frame that hold the mempool header and the `rte_mbuf` (64 + 128
/// with DPDK 22.11). Packet data must start after them for a frame to be transmitted by DPDK.
pub const MBUF_AREA: u32 = 192;

/// Extended statistics published per device at most.
const MAX_XSTATS: usize = 512;
const _: () = assert!(XVS_MAX_BURST as usize == MAX_BURST);

impl DpdkPortConfig {
    fn validate(&self) -> Result<(), DpdkError> {
        let bad = |m: String| Err(DpdkError::Config(format!("DPDK port {}: {m}", self.name)));
        if self.rx_queues == 0 || self.tx_queues < self.rx_queues {
            return bad(format!(
                "rx_queues = {}, tx_queues = {}: need 1 <= rx_queues <= tx_queues",
                self.rx_queues, self.tx_queues
            ));
        }
        for (what, n) in [
            ("rx_descriptors", self.rx_descriptors),
            ("tx_descriptors", self.tx_descriptors),
        ] {
            if !(64..=16384).contains(&n) {
                return bad(format!("{what} = {n} is out of range (64 to 16384)"));
            }
        }
        devargs::parse(&self.devargs)
            .map_err(|m| DpdkError::Config(format!("DPDK port {}: {m}", self.name)))?;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct DevState {
    queues_ready: Vec<bool>,
    started: bool,
    closed: bool,
}

/// Counters of a device, written by the worker owning queue 0 and read by anyone.
///
/// # Thread safety
/// One writer (the worker polling queue 0, from `refresh_stats`), relaxed stores; readers get
/// each counter atomically but not a consistent snapshot of all of them.
#[derive(Debug)]
struct DeviceCounters {
    eth: [AtomicU64; 8 + 3 * QUEUE_STAT_COUNTERS],
    xstat_names: Mutex<Vec<String>>,
    xstat_values: Box<[AtomicU64]>,
}

#[derive(Debug)]
struct Device {
    name: String,
    port_id: u16,
    socket: i32,
    config: DpdkPortConfig,
    driver: String,
    /// A PCI device (its queues map the workers' frames for DMA).
    pci: bool,
    rss_hf: u64,
    state: Mutex<DevState>,
    counters: DeviceCounters,
}

impl Device {
    /// Stops and closes the device once. Callers guarantee no queue of it is being polled (the
    /// workers stopped, or never started).
    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return;
        }
        if st.started {
            ffi::stop(self.port_id);
        }
        ffi::close(self.port_id);
        st.closed = true;
        OPEN_DEVICES.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.close();
    }
}

/// One ethdev: configured at open, started once every receive queue has its worker, closed
/// when the last handle or queue goes (or by [`DpdkDevice::close`]).
///
/// Shutdown order, which the handles enforce: the device is stopped and closed (the driver
/// frees the mbufs it held into the workers' mempools, whose frames are still mapped) before
/// any worker's mempool is freed and before any worker's pool is unmapped.
#[derive(Debug, Clone)]
pub struct DpdkDevice {
    inner: Arc<Device>,
}

impl DpdkDevice {
    /// Finds the device EAL created for `config.devargs` and configures its queues (RSS over
    /// the receive queues when there are several and the device supports it).
    pub fn open(_eal: Eal, config: &DpdkPortConfig) -> Result<Self, DpdkError> {
        config.validate()?;
        let (kind, ethdev) = devargs::parse(&config.devargs).map_err(DpdkError::Config)?;
        let port_id = ffi::port_by_name(&ethdev).ok_or_else(|| DpdkError::NoSuchPort {
            name: ethdev.clone(),
            devargs: config.devargs.clone(),
        })?;
        let perr = |what: &'static str, e: i32| DpdkError::Port {
            name: config.name.clone(),
            what,
            reason: ffi::strerror(e),
        };
        let info = ffi::dev_info(port_id).map_err(|e| perr("rte_eth_dev_info_get", e))?;
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Config(format!(
                "DPDK port {}: {} rx / {} tx queues requested, the {} driver allows {} / {}",
                config.name,
                config.rx_queues,
                config.tx_queues,
                info.driver,
                info.max_rx_queues,
                info.max_tx_queues
            )));
        }
        let rss_hf = if config.rx_queues > 1 {
            ffi::rss_hf_default() & info.rss_offloads
        } else {
            0
        };
        ffi::configure(port_id, config.rx_queues, config.tx_queues, rss_hf)
            .map_err(|e| perr("rte_eth_dev_configure", e))?;
        OPEN_DEVICES.fetch_add(1, Ordering::AcqRel);
        let socket = config.socket_id.unwrap_or_else(|| ffi::socket_id(port_id));
        let dev = Device {
            name: config.name.clone(),
            port_id,
            socket,
            config: config.clone(),
            driver: info.driver,
            pci: kind == devargs::DeviceKind::Pci,
            rss_hf,
            state: Mutex::new(DevState {
                queues_ready: vec![false; usize::from(config.rx_queues)],
                started: false,
                closed: false,
            }),
            counters: DeviceCounters {
                eth: std::array::from_fn(|_| AtomicU64::new(0)),
                xstat_names: Mutex::new(Vec::new()),
                xstat_values: (0..MAX_XSTATS).map(|_| AtomicU64::new(0)).collect(),
            },
        };
        Ok(Self {
            inner: Arc::new(dev),
        })
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.inner.port_id
    }

    /// The driver's name (`net_af_xdp`, `net_ring`, `net_ice`, ...).
    pub fn driver(&self) -> &str {
        &self.inner.driver
    }

    /// Receive queues (each with the transmit queue of the same number).
    pub fn queues(&self) -> u16 {
        self.inner.config.rx_queues
    }

    /// True when the receive queues are spread by RSS.
    pub fn rss(&self) -> bool {
        self.inner.rss_hf != 0
    }

    /// Sets up queue pair `queue` for a worker whose pool is `pool`: joins the worker's mempool
    /// (laid over the pool's frames by the worker's first DPDK queue, shared by all of them)
    /// and moves the frames the driver needs to start into it.
    pub fn queue(&self, queue: u16, pool: &mut FramePool) -> Result<DpdkQueue, DpdkError> {
        let d = &self.inner;
        let mut st = d.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.started || st.closed {
            return Err(DpdkError::Config(format!(
                "DPDK port {}: queues are set up before the port starts",
                d.name
            )));
        }
        match st.queues_ready.get(usize::from(queue)) {
            Some(false) => {}
            Some(true) => {
                return Err(DpdkError::Config(format!(
                    "DPDK port {}: queue {queue} is already set up",
                    d.name
                )))
            }
            None => {
                return Err(DpdkError::Config(format!(
                    "DPDK port {}: queue {queue} does not exist ({} rx queues)",
                    d.name, d.config.rx_queues
                )))
            }
        }
        if pool.headroom() < MBUF_AREA + 64 {
            return Err(DpdkError::Config(format!(
                "DPDK port {}: the worker's pool headroom {} leaves no room for mbuf headers \
                 (needs {})",
                d.name,
                pool.headroom(),
                MBUF_AREA + 64
            )));
        }
        let perr = |what: &'static str, e: i32| DpdkError::Port {
            name: d.name.clone(),
            what,
            reason: ffi::strerror(e),
        };
        // A PCI NIC writes received packets into the frames by DMA: map the region for it.
        let dma = if d.pci {
            ffi::dma_map(d.port_id, pool.region()).map_err(|e| DpdkError::Mempool {
                name: d.name.clone(),
                reason: format!(
                    "mapping the worker's frames for the device's DMA: {} (PCI ports need \
                     vfio-pci and EAL's IOVA-as-VA mode)",
                    ffi::strerror(e)
                ),
            })?;
            let (base, len) = pool.region().raw_parts();
            Some((base.as_ptr() as usize, len))
        } else {
            None
        };
        let (shared, member) = match WorkerMempool::join(pool, d.socket) {
            Ok(joined) => joined,
            Err(e) => {
                if let Some((base, len)) = dma {
                    ffi::dma_unmap(d.port_id, base, len);
                }
                return Err(DpdkError::Mempool {
                    name: d.name.clone(),
                    reason: ffi::strerror(e),
                });
            }
        };
        let mempool = &shared.mempool;
        if mempool.hdr + mempool.mbuf_size != MBUF_AREA {
            let reason = format!(
                "mbuf header of {} + {} bytes, xvs expects {MBUF_AREA}",
                mempool.hdr, mempool.mbuf_size
            );
            shared.leave(member);
            if let Some((base, len)) = dma {
                ffi::dma_unmap(d.port_id, base, len);
            }
            return Err(DpdkError::Mempool {
                name: d.name.clone(),
                reason,
            });
        }
        let hdr = shared.mempool.hdr;
        let q = DpdkQueue {
            dev: Arc::clone(&self.inner),
            name: if d.config.rx_queues > 1 {
                format!("{}/q{queue}", d.name)
            } else {
                d.name.clone()
            },
            port_id: d.port_id,
            queue,
            shared,
            member,
            left: false,
            hdr,
            dma,
            stats: PortStats::default(),
            bad_rx: 0,
            scratch: [Desc::default(); MAX_BURST],
            index: [0; MAX_BURST],
            xstat_scratch: if queue == 0 {
                vec![[0; 2]; MAX_XSTATS]
            } else {
                Vec::new()
            },
            xstat_values: if queue == 0 {
                vec![0; MAX_XSTATS]
            } else {
                Vec::new()
            },
        };
        // The driver may post a whole ring of receive buffers at setup or start, and keep some
        // frames for itself (a replaying net_pcap): each queue adds that to the shared mempool.
        let initial = u32::from(d.config.rx_descriptors).max(DRIVER_RX_RESERVE)
            + POOL_TARGET
            + d.config.driver_held_frames;
        if q.shared.refill(pool, initial) < initial {
            let reason = format!(
                "the worker's pool has {} free frames, the queue needs {initial} to start",
                pool.free_count()
            );
            drop(st);
            // Gives the frames just moved back (or leaves them to the worker's other queues).
            q.close(pool);
            return Err(DpdkError::Mempool {
                name: d.name.clone(),
                reason,
            });
        }
        let sock = if d.socket < 0 {
            u32::MAX
        } else {
            d.socket as u32
        };
        let setup = ffi::rx_queue_setup(
            d.port_id,
            queue,
            d.config.rx_descriptors,
            sock,
            &q.shared.mempool,
        )
        .map_err(|e| perr("rte_eth_rx_queue_setup", e))
        .and_then(|()| {
            ffi::tx_queue_setup(d.port_id, queue, d.config.tx_descriptors, sock)
                .map_err(|e| perr("rte_eth_tx_queue_setup", e))
        });
        if let Err(e) = setup {
            drop(st);
            q.close(pool);
            return Err(e);
        }
        st.queues_ready[usize::from(queue)] = true;
        Ok(q)
    }

    /// Starts the device (every receive queue must be set up) and enables promiscuous mode.
    pub fn start(&self) -> Result<(), DpdkError> {
        let d = &self.inner;
        let mut st = d.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return Err(DpdkError::Config(format!("DPDK port {} is closed", d.name)));
        }
        if st.started {
            return Ok(());
        }
        if let Some(q) = st.queues_ready.iter().position(|r| !r) {
            return Err(DpdkError::Config(format!(
                "DPDK port {}: rx queue {q} has no worker; every queue must be polled",
                d.name
            )));
        }
        // Transmit queues beyond the receive queues are unused but must exist to start.
        for q in d.config.rx_queues..d.config.tx_queues {
            let sock = if d.socket < 0 {
                u32::MAX
            } else {
                d.socket as u32
            };
            ffi::tx_queue_setup(d.port_id, q, d.config.tx_descriptors, sock).map_err(|e| {
                DpdkError::Port {
                    name: d.name.clone(),
                    what: "rte_eth_tx_queue_setup",
                    reason: ffi::strerror(e),
                }
            })?;
        }
        ffi::start(d.port_id).map_err(|e| DpdkError::Port {
            name: d.name.clone(),
            what: "rte_eth_dev_start",
            reason: ffi::strerror(e),
        })?;
        st.started = true;
        // Not every driver has a promiscuous mode (net_ring does not); a refusal is not fatal.
        let _ = ffi::promiscuous_enable(d.port_id);
        if let Ok(names) = ffi::xstat_names(d.port_id) {
            *d.counters
                .xstat_names
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = names;
        }
        Ok(())
    }

    /// Stops and closes the device. Only when none of its queues is being polled (the workers
    /// stopped or never started). Idempotent; dropping the last handle and queue also closes.
    pub fn close(&self) {
        self.inner.close();
    }

    /// The device counters (`rte_eth_stats`) as last published by the worker polling queue 0.
    pub fn stats(&self) -> EthStats {
        let e = &self.inner.counters.eth;
        let g = |i: usize| e[i].load(Ordering::Relaxed);
        let q = |base: usize| std::array::from_fn(|i| g(base + i));
        EthStats {
            ipackets: g(0),
            opackets: g(1),
            ibytes: g(2),
            obytes: g(3),
            imissed: g(4),
            ierrors: g(5),
            oerrors: g(6),
            rx_nombuf: g(7),
            q_ipackets: q(8),
            q_opackets: q(8 + QUEUE_STAT_COUNTERS),
            q_errors: q(8 + 2 * QUEUE_STAT_COUNTERS),
        }
    }

    /// The driver's extended statistics (name, value) as last published by the worker polling
    /// queue 0.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        let c = &self.inner.counters;
        let names = c.xstat_names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .zip(c.xstat_values.iter())
            .map(|(n, v)| (n.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One rx/tx queue pair of a [`DpdkDevice`], polled by one worker: a [`PortIo`] whose frames are
/// mbufs of its worker's mempool, laid over the worker's [`FramePool`] and shared by all of the
/// worker's DPDK queues.
///
/// Frame accounting is per worker (see the `mempool` module): one queue of the worker reports
/// every frame on the worker's DPDK side as its [`PortIo::frames_held`], the others 0.
///
/// # Thread safety
/// Owned by one worker thread, like every other queue sharing its mempool. Dropping a queue
/// closes its device (if still open) first, which is only safe once no worker polls any queue
/// of the device: xvsd joins every worker before dropping any.
pub struct DpdkQueue {
    dev: Arc<Device>,
    name: String,
    port_id: u16,
    queue: u16,
    /// The worker's mempool, shared with its other DPDK queues.
    shared: Arc<WorkerMempool>,
    /// This queue's id among the mempool's members.
    member: u64,
    /// True once the queue left the mempool's members (closed).
    left: bool,
    /// Offset of the rte_mbuf from its frame's start.
    hdr: u32,
    /// The region (base, length) mapped for a PCI device's DMA, unmapped on drop.
    dma: Option<(usize, usize)>,
    stats: PortStats,
    bad_rx: u64,
    /// The valid packets of a transmit burst that had invalid ones, and their positions.
    scratch: [Desc; MAX_BURST],
    index: [u16; MAX_BURST],
    xstat_scratch: Vec<[u64; 2]>,
    xstat_values: Vec<u64>,
}

impl std::fmt::Debug for DpdkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkQueue")
            .field("name", &self.name)
            .field("port_id", &self.port_id)
            .field("queue", &self.queue)
            .field("held", &self.frames_held())
            .finish()
    }
}

impl DpdkQueue {
    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Mbufs waiting in the worker's mempool for the drivers.
    pub fn mempool_avail(&self) -> u32 {
        self.shared.mempool.avail()
    }

    /// Leaves the worker's mempool (once); true when this was its last queue.
    fn leave(&mut self) -> bool {
        if self.left {
            return false;
        }
        self.left = true;
        self.shared.leave(self.member)
    }

    /// Closes the device (if still open: only when no queue of it is being polled) and leaves
    /// the worker's mempool. The last queue of a worker gives every frame the mempool holds
    /// back to `pool` and returns the frames lost: those the closed drivers kept (e.g. mbufs
    /// left in a `net_ring`), which they never return. Otherwise the mempool keeps serving the
    /// worker's other DPDK queues, which account for its frames, and 0 is returned.
    pub fn close(mut self, pool: &mut FramePool) -> usize {
        self.dev.close();
        if self.leave() {
            self.shared.reclaim_all(pool)
        } else {
            // What the closed driver gave back may be more than the others need.
            self.shared.trim(pool);
            0
        }
    }
}

impl Drop for DpdkQueue {
    fn drop(&mut self) {
        // The driver may free mbufs into the worker's mempool until the device is closed.
        self.dev.close();
        self.leave();
        if let Some((base, len)) = self.dma.take() {
            ffi::dma_unmap(self.port_id, base, len);
        }
    }
}

impl PortIo for DpdkQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut [Desc]) -> usize {
        let n = out.len().min(MAX_BURST);
        // The driver allocates from the worker's mempool: only with that worker's pool.
        if n == 0 || !self.shared.owns(pool) {
            return 0;
        }
        let (got, dropped, bytes) = ffi::rx(
            self.port_id,
            self.queue,
            pool.region_mut(),
            self.hdr,
            &mut out[..n],
        );
        self.shared.count(-(got as i64));
        self.bad_rx += dropped as u64;
        self.stats.rx_packets += got as u64;
        self.stats.rx_bytes += bytes;
        self.stats.rx_dropped += dropped as u64;
        got
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        let n = pkts.len().min(MAX_BURST);
        if n == 0 || !self.shared.owns(pool) {
            return 0;
        }
        let region = pool.region();
        let ok = |d: &Desc| {
            let off = d.addr.wrapping_sub(region.frame_base(d.addr));
            d.len != 0 && region.contains(*d) && off >= u64::from(MBUF_AREA)
        };
        let mut bytes = 0u64;
        let mut all_valid = true;
        for d in &pkts[..n] {
            all_valid &= ok(d);
            bytes += u64::from(d.len);
        }
        if all_valid {
            // The common case: the burst goes to the device as it is.
            let sent = ffi::tx(
                self.port_id,
                self.queue,
                &self.shared.mempool,
                pool.region_mut(),
                &pkts[..n],
            )
            .min(n);
            if sent < n {
                bytes = pkts[..sent].iter().map(|d| u64::from(d.len)).sum();
            }
            self.shared.count(sent as i64);
            self.stats.tx_packets += sent as u64;
            self.stats.tx_bytes += bytes;
            return sent;
        }
        let mut valid = 0;
        for (i, d) in pkts[..n].iter().enumerate() {
            if !ok(d) {
                continue;
            }
            self.scratch[valid] = *d;
            self.index[valid] = i as u16;
            valid += 1;
        }
        let sent = ffi::tx(
            self.port_id,
            self.queue,
            &self.shared.mempool,
            pool.region_mut(),
            &self.scratch[..valid],
        )
        .min(valid);
        // The accepted prefix ends at the first valid packet the device refused; invalid
        // packets before it are taken (freed here, counted as dropped).
        let cutoff = if sent < valid {
            usize::from(self.index[sent])
        } else {
            n
        };
        let mut v = 0;
        let mut bytes = 0u64;
        for (i, d) in pkts[..cutoff].iter().enumerate() {
            if v < sent && usize::from(self.index[v]) == i {
                bytes += u64::from(d.len);
                v += 1;
            } else {
                pool.free(d.addr);
                self.stats.tx_dropped += 1;
            }
        }
        self.shared.count(sent as i64);
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes;
        cutoff
    }

    fn flush(&mut self, pool: &mut FramePool) {
        self.shared.trim(pool);
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn refresh_stats(&mut self) {
        if self.queue != 0 {
            return;
        }
        let c = &self.dev.counters;
        if let Ok(s) = ffi::stats(self.port_id) {
            let head = [
                s.ipackets,
                s.opackets,
                s.ibytes,
                s.obytes,
                s.imissed,
                s.ierrors,
                s.oerrors,
                s.rx_nombuf,
            ];
            let all = head
                .iter()
                .chain(&s.q_ipackets)
                .chain(&s.q_opackets)
                .chain(&s.q_errors);
            for (a, v) in c.eth.iter().zip(all) {
                a.store(*v, Ordering::Relaxed);
            }
            // Device-wide losses are reported on queue 0's port counters.
            self.stats.rx_dropped = self.bad_rx + s.imissed + s.rx_nombuf;
            self.stats.errors = s.ierrors + s.oerrors;
        }
        let n = ffi::xstat_values(
            self.port_id,
            &mut self.xstat_scratch,
            &mut self.xstat_values,
        );
        for (a, v) in c
            .xstat_values
            .iter()
            .zip(&self.xstat_values[..n.min(MAX_XSTATS)])
        {
            a.store(*v, Ordering::Relaxed);
        }
    }

    fn frames_held(&self) -> usize {
        self.shared.frames_held(self.member)
    }

    fn close(self: Box<Self>, pool: &mut FramePool) -> usize {
        DpdkQueue::close(*self, pool)
    }
}
