//! The backend end to end without any interface: EAL with `--no-huge` and a `net_ring` vdev,
//! which loops every transmitted mbuf back to the same queue's receive side.
//!
//! EAL starts once per process, so this file is one test.
#![cfg(feature = "dpdk")]

use xvs_dpdk::{DpdkDevice, DpdkPortConfig, Eal, EalConfig, MBUF_AREA};
use xvs_io::{Desc, FramePool, PortIo};

const FRAMES: u32 = 4096;

fn frame(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60 + (i as usize % 40)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&i.to_be_bytes());
    f
}

fn recv_all(q: &mut dyn PortIo, pool: &mut FramePool, want: usize) -> Vec<Desc> {
    let mut got = Vec::new();
    let mut buf = [Desc::default(); 32];
    for _ in 0..1000 {
        let n = q.rx_burst(pool, &mut buf);
        got.extend_from_slice(&buf[..n]);
        q.flush(pool);
        if got.len() >= want {
            break;
        }
    }
    got
}

#[test]
fn ring_loopback_zero_copy_multi_queue_and_clean_exit() {
    let eal = Eal::init(&EalConfig {
        cores: "0".into(),
        memory_mb: 64,
        no_huge: true,
        devices: vec!["net_ring0".into()],
        extra_args: vec!["--log-level=lib.eal:error".into()],
    })
    .expect("EAL with --no-huge");
    let mut cfg = DpdkPortConfig::new("ring", "net_ring0");
    cfg.rx_queues = 2;
    cfg.tx_queues = 2;
    let dev = DpdkDevice::open(eal, &cfg).expect("open net_ring0");
    assert_eq!(dev.driver(), "net_ring");
    assert!(!dev.rss(), "net_ring has no RSS");

    // Two "workers", each with its own pool and queue.
    let mut pools = [
        FramePool::new(FRAMES, 4096, 256).expect("pool 0"),
        FramePool::new(FRAMES, 4096, 256).expect("pool 1"),
    ];
    let mut q0 = dev.queue(0, &mut pools[0]).expect("queue 0");
    let mut q1 = dev.queue(1, &mut pools[1]).expect("queue 1");
    assert!(
        dev.queue(1, &mut pools[1]).is_err(),
        "a queue is set up once"
    );
    dev.start().expect("start");
    for (q, p) in [(&q0, &pools[0]), (&q1, &pools[1])] {
        assert_eq!(p.free_count() + q.frames_held(), FRAMES as usize);
    }

    // 100 packets on queue 0: they come back on queue 0 only, byte-identical, in order, and in
    // the very frames they were sent from (no copy anywhere).
    let sent: Vec<Desc> = (0..100)
        .map(|i| pools[0].alloc_copy(&frame(i)).expect("frame"))
        .collect();
    let mut accepted = 0;
    for chunk in sent.chunks(32) {
        let n = q0.tx_burst(&mut pools[0], chunk);
        assert_eq!(n, chunk.len(), "net_ring takes a whole burst");
        accepted += n;
    }
    q0.flush(&mut pools[0]);
    assert_eq!(accepted, 100);
    let back = recv_all(&mut q0, &mut pools[0], 100);
    assert_eq!(back.len(), 100, "every packet came back");
    for (i, (s, r)) in sent.iter().zip(&back).enumerate() {
        assert_eq!(r.addr, s.addr, "packet {i} came back in its own frame");
        assert_eq!(
            pools[0].region().data(*r),
            &frame(i as u32)[..],
            "packet {i}"
        );
    }
    assert_eq!(
        recv_all(&mut q1, &mut pools[1], 1).len(),
        0,
        "nothing on queue 1"
    );
    for d in &back {
        pools[0].free(d.addr);
    }

    // Queue 1 works on its own pool.
    let d = pools[1].alloc_copy(&frame(7)).expect("frame");
    assert_eq!(q1.tx_burst(&mut pools[1], &[d]), 1);
    let back1 = recv_all(&mut q1, &mut pools[1], 1);
    assert_eq!(back1.len(), 1);
    assert_eq!(pools[1].region().data(back1[0]), &frame(7)[..]);
    pools[1].free(back1[0].addr);

    // A descriptor whose data starts inside the mbuf header area cannot be an mbuf: it is taken,
    // freed and counted; the valid packet after it is sent.
    let good = pools[0].alloc_copy(&frame(1)).expect("frame");
    let base = pools[0].alloc().expect("frame");
    let bad = Desc {
        addr: base + u64::from(MBUF_AREA) - 8,
        len: 60,
        options: 0,
    };
    let before = q0.stats().tx_dropped;
    assert_eq!(q0.tx_burst(&mut pools[0], &[bad, good]), 2);
    assert_eq!(q0.stats().tx_dropped, before + 1);
    let back2 = recv_all(&mut q0, &mut pools[0], 1);
    assert_eq!(back2.len(), 1);
    assert_eq!(pools[0].region().data(back2[0]), &frame(1)[..]);
    pools[0].free(back2[0].addr);

    // Counters: ours, and the device's (rte_eth_stats and xstats, published by queue 0).
    let s = q0.stats();
    assert_eq!((s.tx_packets, s.rx_packets), (101, 101));
    q0.refresh_stats();
    let e = dev.stats();
    assert_eq!(e.opackets, 102, "{e:?}");
    assert_eq!(e.ipackets, 102, "{e:?}");
    assert_eq!((e.q_opackets[0], e.q_opackets[1]), (101, 1));
    let x = dev.xstats();
    assert!(
        x.iter().any(|(n, v)| n == "rx_good_packets" && *v == 102),
        "{x:?}"
    );

    // Every frame is accounted for, then given back on close.
    for (q, p) in [(&q0, &pools[0]), (&q1, &pools[1])] {
        assert_eq!(p.free_count() + q.frames_held(), FRAMES as usize);
    }
    assert_eq!(q0.close(&mut pools[0]), 0);
    assert_eq!(q1.close(&mut pools[1]), 0);
    for p in &pools {
        assert_eq!(p.free_count(), FRAMES as usize);
    }
    drop(dev);
    Eal::cleanup().expect("cleanup");
    let dir = std::path::PathBuf::from(format!("/var/run/dpdk/xvs-{}", std::process::id()));
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(Eal::init(&EalConfig::default()).is_err(), "EAL starts once");
}
