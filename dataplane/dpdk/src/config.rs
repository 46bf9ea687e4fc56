//! Port configuration, available without the `dpdk` feature (xvsd sizes its pools with it).

/// Burst size of one receive call (the engine asks for its own batch, at most this); equals the
/// C shim's `XVS_MAX_BURST`.
pub(crate) const MAX_BURST: usize = 256;
/// The queue keeps between `POOL_LOW` and `POOL_HIGH` mbufs in its mempool for the driver to
/// receive into, refilling to `POOL_TARGET`.
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub(crate) const POOL_LOW: u32 = 128;
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub(crate) const POOL_TARGET: u32 = 256;
pub(crate) const POOL_HIGH: u32 = 512;
/// Receive buffers a driver may take at queue setup whatever the descriptor count: net_af_xdp
/// fills its AF_XDP fill ring (2048 entries) from the mempool.
pub(crate) const DRIVER_RX_RESERVE: u32 = 2048;

/// One DPDK port's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkPortConfig {
    /// The port's name in xvs (for messages and counters).
    pub name: String,
    /// The devargs string: a PCI address or a vdev (`net_af_xdp0,iface=X`, ...). It must also be
    /// in `EalConfig::devices` (feature `dpdk`), which is how EAL creates the device.
    pub devargs: String,
    /// Receive queues; with more than one, RSS spreads flows over them where the device can.
    pub rx_queues: u16,
    /// Transmit queues; at least `rx_queues` (queue `q` of a worker receives on rx queue `q` and
    /// sends on tx queue `q`: DPDK queues are single-threaded).
    pub tx_queues: u16,
    /// Receive descriptors per queue.
    pub rx_descriptors: u16,
    /// Transmit descriptors per queue.
    pub tx_descriptors: u16,
    /// NUMA socket for queue memory; default: the device's.
    pub socket_id: Option<i32>,
    /// Frames the driver holds per receive queue for the queue's lifetime besides its
    /// descriptors (a replaying `net_pcap` keeps a copy of every frame of its file); by default
    /// what [`crate::devargs::frames_kept_by_driver`] finds.
    pub driver_held_frames: u32,
}

impl DpdkPortConfig {
    /// One queue pair of 1024 descriptors each, on the device's socket.
    pub fn new(name: &str, devargs: &str) -> Self {
        Self {
            name: name.to_string(),
            devargs: devargs.to_string(),
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            socket_id: None,
            driver_held_frames: crate::devargs::frames_kept_by_driver(devargs),
        }
    }

    /// Frames one queue can hold at once (its driver's rings and its mempool reserve); a worker's
    /// pool needs this per queue it polls, plus what the engine keeps in flight.
    pub fn frames_needed_per_queue(&self) -> usize {
        let reserve = DRIVER_RX_RESERVE as usize;
        // Receive side: the descriptors (or net_af_xdp's fill ring) plus as many received but
        // not yet polled; transmit side: the descriptors (or an AF_XDP TX ring).
        2 * usize::from(self.rx_descriptors).max(reserve)
            + usize::from(self.tx_descriptors).max(reserve)
            + POOL_HIGH as usize
            + MAX_BURST
            + self.driver_held_frames as usize
    }
}
