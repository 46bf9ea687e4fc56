//! Ethdev ports ([`DpdkDevice`]) and their queues ([`DpdkQueue`], a [`PortIo`]).

use crate::config::{
    DpdkPortConfig, DRIVER_RX_RESERVE, MAX_BURST, POOL_HIGH, POOL_LOW, POOL_TARGET,
};
use crate::devargs;
use crate::eal::{Eal, OPEN_DEVICES};
use crate::error::DpdkError;
use crate::ffi::{self, EthStats, Mempool, QUEUE_STAT_COUNTERS, XVS_MAX_BURST};
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
/// frees the mbufs it held into the queues' mempools, whose frames are still mapped) before any
/// queue's mempool is freed and before any worker's pool is unmapped.
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

    /// Sets up queue pair `queue` for a worker whose pool is `pool`: lays a mempool over the
    /// pool's frames and moves the frames the driver needs to start into it.
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
        let mp_name = format!("xvs_p{}_q{}", d.port_id, queue);
        let mempool = Mempool::over_region(&mp_name, pool.region_mut(), d.socket).map_err(|e| {
            DpdkError::Mempool {
                name: d.name.clone(),
                reason: ffi::strerror(e),
            }
        })?;
        if mempool.hdr + mempool.mbuf_size != MBUF_AREA {
            return Err(DpdkError::Mempool {
                name: d.name.clone(),
                reason: format!(
                    "mbuf header of {} + {} bytes, xvs expects {MBUF_AREA}",
                    mempool.hdr, mempool.mbuf_size
                ),
            });
        }
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
        let mut q = DpdkQueue {
            dev: Arc::clone(&self.inner),
            name: if d.config.rx_queues > 1 {
                format!("{}/q{queue}", d.name)
            } else {
                d.name.clone()
            },
            port_id: d.port_id,
            queue,
            mempool,
            dma,
            stats: PortStats::default(),
            bad_rx: 0,
            given: 0,
            taken: 0,
            received: 0,
            sent: 0,
            addrs: [0; MAX_BURST],
            lens: [0; MAX_BURST],
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
        // frames for itself (a replaying net_pcap).
        let initial = u32::from(d.config.rx_descriptors).max(DRIVER_RX_RESERVE)
            + POOL_TARGET
            + d.config.driver_held_frames;
        if q.refill(pool, initial) < initial {
            return Err(DpdkError::Mempool {
                name: d.name.clone(),
                reason: format!(
                    "the worker's pool has {} free frames, the queue needs {initial} to start",
                    pool.free_count()
                ),
            });
        }
        let sock = if d.socket < 0 {
            u32::MAX
        } else {
            d.socket as u32
        };
        let setup =
            ffi::rx_queue_setup(d.port_id, queue, d.config.rx_descriptors, sock, &q.mempool)
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
/// mbufs laid over the worker's [`FramePool`].
///
/// # Thread safety
/// Owned by one worker thread. Dropping a queue closes its device (if still open) first, which
/// is only safe once no worker polls any queue of the device: xvsd joins every worker before
/// dropping any.
pub struct DpdkQueue {
    dev: Arc<Device>,
    name: String,
    port_id: u16,
    queue: u16,
    mempool: Mempool,
    /// The region (base, length) mapped for a PCI device's DMA, unmapped on drop.
    dma: Option<(usize, usize)>,
    stats: PortStats,
    bad_rx: u64,
    /// Frames moved into the mempool / taken out of it, received, and accepted for transmit:
    /// the queue holds `given + sent - taken - received` frames.
    given: u64,
    taken: u64,
    received: u64,
    sent: u64,
    addrs: [u64; MAX_BURST],
    lens: [u32; MAX_BURST],
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

    /// Mbufs waiting in the queue's mempool for the driver.
    pub fn mempool_avail(&self) -> u32 {
        self.mempool.avail()
    }

    /// Moves up to `n` free frames of `pool` into the mempool; returns how many.
    fn refill(&mut self, pool: &mut FramePool, n: u32) -> u32 {
        let mut moved = 0;
        let mut frames = [0u64; MAX_BURST];
        while moved < n {
            let want = ((n - moved) as usize).min(MAX_BURST);
            let mut k = 0;
            while k < want {
                match pool.alloc() {
                    Some(f) => {
                        frames[k] = f;
                        k += 1;
                    }
                    None => break,
                }
            }
            if k == 0 {
                break;
            }
            self.mempool.put(pool.region_mut(), &frames[..k]);
            moved += k as u32;
            self.given += k as u64;
            if k < want {
                break;
            }
        }
        moved
    }

    /// Takes up to `n` mbufs out of the mempool back into `pool`; returns how many.
    fn reclaim(&mut self, pool: &mut FramePool, n: u32) -> u32 {
        let mut moved = 0;
        let mut frames = [0u64; MAX_BURST];
        let len = pool.region().raw_parts().1 as u64;
        let fs = u64::from(pool.region().frame_size());
        while moved < n {
            let want = ((n - moved) as usize).min(MAX_BURST);
            let k = self.mempool.get(pool.region(), &mut frames[..want]);
            if k == 0 {
                break;
            }
            for &f in &frames[..k] {
                // Every object of the mempool is a frame of the region; anything else would be
                // a bug, and is kept out of the pool rather than corrupting it.
                if f < len && f % fs == 0 {
                    pool.free(f);
                }
            }
            moved += k as u32;
            self.taken += k as u64;
        }
        moved
    }

    /// Closes the device (if still open: only when no queue of it is being polled) and gives
    /// every frame the queue's mempool holds back to `pool`. Returns the frames lost: those the
    /// driver kept (e.g. mbufs left in a `net_ring`), which a closed device never returns.
    pub fn close(mut self, pool: &mut FramePool) -> usize {
        self.dev.close();
        self.reclaim(pool, u32::MAX);
        self.frames_held()
    }
}

impl Drop for DpdkQueue {
    fn drop(&mut self) {
        // The driver may free mbufs into this queue's mempool until the device is closed.
        self.dev.close();
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
        if n == 0 {
            return 0;
        }
        let (got, dropped) = ffi::rx(
            self.port_id,
            self.queue,
            pool.region_mut(),
            self.mempool.hdr,
            &mut self.addrs[..n],
            &mut self.lens[..n],
        );
        let mut bytes = 0u64;
        for (o, (&addr, &len)) in out
            .iter_mut()
            .zip(self.addrs.iter().zip(&self.lens))
            .take(got)
        {
            *o = Desc {
                addr,
                len,
                options: 0,
            };
            bytes += u64::from(len);
        }
        self.received += got as u64;
        self.bad_rx += dropped as u64;
        self.stats.rx_packets += got as u64;
        self.stats.rx_bytes += bytes;
        self.stats.rx_dropped += dropped as u64;
        got
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Desc]) -> usize {
        let n = pkts.len().min(MAX_BURST);
        let region = pool.region();
        let mut valid = 0;
        for (i, d) in pkts[..n].iter().enumerate() {
            let off = d.addr.wrapping_sub(region.frame_base(d.addr));
            if d.len == 0 || !region.contains(*d) || off < u64::from(MBUF_AREA) {
                continue;
            }
            self.addrs[valid] = d.addr;
            self.lens[valid] = d.len;
            self.index[valid] = i as u16;
            valid += 1;
        }
        let sent = ffi::tx(
            self.port_id,
            self.queue,
            &self.mempool,
            pool.region_mut(),
            &self.addrs[..valid],
            &self.lens[..valid],
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
        self.sent += sent as u64;
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes;
        cutoff
    }

    fn flush(&mut self, pool: &mut FramePool) {
        let avail = self.mempool.avail();
        if avail < POOL_LOW {
            self.refill(pool, POOL_TARGET - avail);
        } else if avail > POOL_HIGH {
            self.reclaim(pool, avail - POOL_TARGET);
        }
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
        (self.given + self.sent).saturating_sub(self.taken + self.received) as usize
    }
}
