//! Two DPDK queues on one worker share the worker's mempool: a replaying `net_pcap` and a
//! `net_null` sink on one pool, as `xvs-bench pipeline` runs them. The frames `net_null` frees
//! after transmit are the ones `net_pcap` receives into next, so in steady state not one frame
//! moves between the worker's pool and the mempool; the worker's frame accounting stays exact
//! (one queue reports the DPDK side, the other 0); removing one queue while the other keeps
//! working loses nothing, and closing the last gives every frame back.
//!
//! EAL starts once per process, so this file is one test.
#![cfg(feature = "dpdk")]

mod common;

use common::{frame, pcap_and_null, NULL_DEVARGS};
use xvs_dpdk::{DpdkDevice, DpdkPortConfig, Eal};
use xvs_io::{Desc, FramePool, PortIo};

const PCAP_FRAMES: u32 = 500;
const FRAMES: u32 = 16384;

/// Forwards `packets` frames from `rx` to `tx` as a worker does (receive, transmit, flush
/// both), checking every frame's bytes and the worker's frame accounting after each
/// iteration. Returns the pool's free count after every iteration.
fn forward(
    rx: &mut dyn PortIo,
    tx: &mut dyn PortIo,
    pool: &mut FramePool,
    first: usize,
    packets: usize,
) -> Vec<usize> {
    let mut got = 0usize;
    let mut descs = [Desc::default(); 32];
    let mut spins = 0u64;
    let mut free_counts = Vec::new();
    while got < packets && spins < 10_000_000 {
        spins += 1;
        let n = rx.rx_burst(pool, &mut descs[..(packets - got).min(32)]);
        for (k, d) in descs[..n].iter().enumerate() {
            let expect = ((first + got + k) % PCAP_FRAMES as usize) as u32;
            assert_eq!(pool.region().data(*d), &frame(expect)[..]);
        }
        let mut sent = 0;
        while sent < n {
            sent += tx.tx_burst(pool, &descs[sent..n]);
        }
        got += n;
        rx.flush(pool);
        tx.flush(pool);
        let (held_rx, held_tx) = (rx.frames_held(), tx.frames_held());
        assert!(
            held_rx == 0 || held_tx == 0,
            "one queue reports the worker's DPDK frames ({held_rx}, {held_tx})"
        );
        assert_eq!(
            pool.free_count() + held_rx + held_tx,
            FRAMES as usize,
            "every frame is accounted for"
        );
        free_counts.push(pool.free_count());
    }
    assert_eq!(got, packets, "received");
    free_counts
}

#[test]
fn queues_of_one_worker_share_its_mempool() {
    let (dir, pcap_devargs, eal) = pcap_and_null("xvs-dpdk-shared", PCAP_FRAMES);
    let null_devargs = NULL_DEVARGS;
    let src = DpdkDevice::open(eal, &DpdkPortConfig::new("pcap0", &pcap_devargs)).expect("pcap");
    let sink = DpdkDevice::open(eal, &DpdkPortConfig::new("null0", null_devargs)).expect("null");

    let mut pool = FramePool::new(FRAMES, 4096, 256).expect("pool");
    let mut rx: Box<dyn PortIo> = Box::new(src.queue(0, &mut pool).expect("pcap queue"));
    let mut tx: Box<dyn PortIo> = Box::new(sink.queue(0, &mut pool).expect("null queue"));
    src.start().expect("start pcap");
    sink.start().expect("start null");
    assert_eq!(
        pool.free_count() + rx.frames_held() + tx.frames_held(),
        FRAMES as usize
    );

    // Warm up: the first flushes give the surplus of the queues' start-up reserves back.
    forward(&mut *rx, &mut *tx, &mut pool, 0, 1000);
    // Steady state: 20,000 frames (40 passes over the pcap) through the shared mempool, and
    // the worker's pool never gives or takes one: no refill, no reclaim.
    let free = forward(&mut *rx, &mut *tx, &mut pool, 1000, 20_000);
    let (lo, hi) = (
        free.iter().min().copied().unwrap_or(0),
        free.iter().max().copied().unwrap_or(0),
    );
    assert_eq!(
        lo, hi,
        "no frame moved between the pool and the mempool in steady state"
    );
    assert_eq!(tx.stats().tx_packets, 21_000);
    assert_eq!(rx.stats().rx_dropped, 0);

    // Frames that never were mbufs (built in the pool, as AF_XDP or a tap would deliver them)
    // go out through the sink and end up in the shared mempool.
    let own: Vec<Desc> = (0..64)
        .map(|i| pool.alloc_copy(&frame(i)).expect("frame"))
        .collect();
    assert_eq!(tx.tx_burst(&mut pool, &own), 64);
    tx.flush(&mut pool);
    assert_eq!(
        pool.free_count() + rx.frames_held() + tx.frames_held(),
        FRAMES as usize
    );

    // Port removal at run time: the pcap queue goes (its device closes; net_pcap frees its
    // stored copies into the worker's mempool), the sink stays and now reports the worker's
    // DPDK frames. Nothing is lost.
    let lost = rx.close(&mut pool);
    assert_eq!(lost, 0, "removing one queue of the worker loses nothing");
    assert_eq!(pool.free_count() + tx.frames_held(), FRAMES as usize);
    assert!(
        tx.frames_held() > 0,
        "the remaining queue took over the report"
    );
    // The sink keeps working on the shared mempool.
    let more: Vec<Desc> = (0..32)
        .map(|i| pool.alloc_copy(&frame(i)).expect("frame"))
        .collect();
    assert_eq!(tx.tx_burst(&mut pool, &more), 32);
    tx.flush(&mut pool);
    assert_eq!(pool.free_count() + tx.frames_held(), FRAMES as usize);

    // The worker's last DPDK queue gives every frame back.
    assert_eq!(tx.close(&mut pool), 0, "frames kept by a closed driver");
    assert_eq!(pool.free_count(), FRAMES as usize);
    drop((src, sink));
    Eal::cleanup().expect("EAL cleanup");
    std::fs::remove_dir_all(&dir).expect("remove dir");
}
