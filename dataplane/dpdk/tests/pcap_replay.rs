//! A replaying `net_pcap` (`infinite_rx=1`) into `net_null`, as `xvs-bench pipeline` runs it:
//! the pcap PMD copies every frame of its file into mbufs of the receive queue's mempool at
//! setup and keeps them, so the queue must put more than its descriptors' worth of frames in
//! (`DpdkPortConfig::driver_held_frames`, found from the devargs). Here the pcap holds 5,000
//! frames, more than the 2,304 a queue puts in otherwise.
//!
//! EAL starts once per process, so this file is one test.
#![cfg(feature = "dpdk")]

mod common;

use common::{frame, pcap_and_null, NULL_DEVARGS};
use xvs_dpdk::{DpdkDevice, DpdkPortConfig, Eal};
use xvs_io::{Desc, FramePool, PortIo};

const PCAP_FRAMES: u32 = 5000;
const FRAMES: u32 = 16384;

#[test]
fn replayed_pcap_is_forwarded_into_net_null() {
    let (dir, pcap_devargs, eal) = pcap_and_null("xvs-dpdk-pcap", PCAP_FRAMES);
    let null_devargs = NULL_DEVARGS;
    let src_cfg = DpdkPortConfig::new("pcap0", &pcap_devargs);
    assert_eq!(src_cfg.driver_held_frames, PCAP_FRAMES);
    let sink_cfg = DpdkPortConfig::new("null0", null_devargs);
    assert_eq!(sink_cfg.driver_held_frames, 0);
    let src = DpdkDevice::open(eal, &src_cfg).expect("open net_pcap0");
    let sink = DpdkDevice::open(eal, &sink_cfg).expect("open net_null0");
    assert_eq!((src.driver(), sink.driver()), ("net_pcap", "net_null"));

    let mut pool = FramePool::new(FRAMES, 4096, 256).expect("pool");
    let mut rx = src
        .queue(0, &mut pool)
        .expect("pcap queue with its stored frames");
    let mut tx = sink.queue(0, &mut pool).expect("null queue");
    src.start().expect("start pcap");
    sink.start().expect("start null");

    // Three passes over the pcap: frames arrive in file order, wrapping around, and every one
    // is handed to net_null, which frees it back into the sink queue's mempool.
    let want = 3 * PCAP_FRAMES as usize;
    let mut got = 0usize;
    let mut descs = [Desc::default(); 32];
    let mut spins = 0u64;
    while got < want && spins < 50_000_000 {
        spins += 1;
        let n = rx.rx_burst(&mut pool, &mut descs);
        for (k, d) in descs[..n].iter().enumerate() {
            let expect = ((got + k) % PCAP_FRAMES as usize) as u32;
            assert_eq!(
                pool.region().data(*d),
                &frame(expect)[..],
                "frame {}",
                got + k
            );
        }
        let mut sent = 0;
        while sent < n {
            sent += tx.tx_burst(&mut pool, &descs[sent..n]);
        }
        got += n;
        rx.flush(&mut pool);
        tx.flush(&mut pool);
        assert_eq!(
            pool.free_count() + rx.frames_held() + tx.frames_held(),
            FRAMES as usize,
            "every frame is accounted for"
        );
    }
    assert!(got >= want, "received {got} of {want}");
    assert_eq!(tx.stats().tx_packets, got as u64);
    assert_eq!(rx.stats().rx_dropped, 0);

    // On close the drivers give back what they held (the pcap's stored copies included).
    let lost = rx.close(&mut pool) + tx.close(&mut pool);
    assert_eq!(lost, 0, "frames kept by a closed driver");
    assert_eq!(pool.free_count(), FRAMES as usize);
    drop((src, sink));
    Eal::cleanup().expect("EAL cleanup");
    std::fs::remove_dir_all(&dir).expect("remove dir");
}
