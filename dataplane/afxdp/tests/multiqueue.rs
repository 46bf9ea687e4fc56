//! Two AF_XDP sockets on two queues of one interface, sharing one UMEM (each with its own fill
//! and completion rings). Needs root.
//!
//! ```text
//!  ns0: a0 (2 TX queues) 10.79.0.1 ──veth── ns1: xa (2 RX queues) [XDP native, port q0 + port q1]
//! ```
//! 32 UDP flows from ns0 spread over a0's TX queues, which a veth maps 1:1 onto xa's RX queues;
//! every datagram must arrive exactly once, on one of the two sockets.

mod common;

use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::Netns;
use xvs_afxdp::{AfXdpConfig, AfXdpPort, UmemShare, XdpMode, XdpProgram};
use xvs_io::{Desc, FramePool, PortIo};

const FLOWS: u16 = 32;
const PER_FLOW: u32 = 50;
const MAC_A0: &str = "02:00:00:00:0d:01";
const MAC_XA: &str = "02:00:00:00:0d:02";

#[test]
fn two_queues_share_one_umem() {
    let ns = Netns::new(2);
    ns.veth(0, "a0", MAC_A0, 1, "xa", MAC_XA);
    common::sh(&[
        "ip",
        "netns",
        "exec",
        ns.name(0),
        "ethtool",
        "-L",
        "a0",
        "rx",
        "2",
        "tx",
        "2",
    ]);
    common::sh(&[
        "ip",
        "netns",
        "exec",
        ns.name(1),
        "ethtool",
        "-L",
        "xa",
        "rx",
        "2",
        "tx",
        "2",
    ]);
    ns.ip(0, &["addr", "add", "10.79.0.1/24", "dev", "a0"]);
    ns.ip(
        0,
        &[
            "neigh",
            "replace",
            "10.79.0.2",
            "lladdr",
            MAC_XA,
            "dev",
            "a0",
            "nud",
            "permanent",
        ],
    );

    let total = u32::from(FLOWS) * PER_FLOW;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    // Build everything in a thread inside ns1 ...
    let (prog, mut pool, mut ports, frames) = ns.enter_scoped(1, || {
        let mut prog = XdpProgram::attach("xa", XdpMode::Native).expect("attach");
        let mut pool = FramePool::new(4096, 4096, 256).expect("pool");
        let frames = pool.free_count();
        let mut umem = UmemShare::new();
        let mut ports = Vec::new();
        for q in 0..2 {
            let mut cfg = AfXdpConfig::new("xa", q);
            cfg.fill_size = 1024;
            cfg.comp_size = 256;
            cfg.rx_size = 1024;
            cfg.tx_size = 256;
            ports.push(AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("open"));
        }
        (prog, pool, ports, frames)
    });
    // ... and poll it from a thread that never entered ns1 (spawned from the test's thread, in
    // the root namespace): a bound socket does not care which thread or namespace polls it.
    let ns1_inode = std::fs::metadata(format!("/run/netns/{}", ns.name(1)))
        .expect("ns1")
        .ino();
    std::thread::scope(|s| {
        let sw = s.spawn(move || {
            let here = std::fs::metadata("/proc/thread-self/ns/net")
                .expect("own netns")
                .ino();
            assert_ne!(here, ns1_inode, "the poller runs outside ns1");
            ready_tx.send(()).expect("ready");
            let mut per_queue = [0u32; 2];
            let mut seen = vec![false; total as usize];
            let mut burst = [Desc::default(); 64];
            let deadline = Instant::now() + Duration::from_secs(20);
            while per_queue.iter().sum::<u32>() < total && Instant::now() < deadline {
                for (q, port) in ports.iter_mut().enumerate() {
                    let n = port.rx_burst(&mut pool, &mut burst);
                    for d in &burst[..n] {
                        let f = pool.region().data(*d);
                        // Ethernet(14) + IPv4(20) + UDP(8), then flow (2) and seq (4).
                        if f.len() >= 48 && f[12..14] == [0x08, 0x00] {
                            let flow = u16::from_be_bytes([f[42], f[43]]);
                            let seq = u32::from_be_bytes([f[44], f[45], f[46], f[47]]);
                            let i = u32::from(flow) * PER_FLOW + seq;
                            if flow < FLOWS && seq < PER_FLOW && !seen[i as usize] {
                                seen[i as usize] = true;
                                per_queue[q] += 1;
                            }
                        }
                    }
                    pool.free_all(&burst[..n]);
                }
            }
            let mut drops = 0;
            for p in &mut ports {
                p.flush(&mut pool);
                let k = p.kernel_stats().expect("stats");
                drops += k.rx_dropped + k.rx_ring_full;
            }
            let held: usize = ports.iter().map(|p| p.frames_held()).sum();
            assert_eq!(pool.free_count() + held, frames, "no frame leaked");
            for p in ports {
                assert_eq!(p.close(&mut pool), 0);
            }
            assert_eq!(pool.free_count(), frames, "pool whole after close");
            (per_queue, drops)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("switch up");

        s.spawn(|| {
            ns.enter(0);
            let socks: Vec<UdpSocket> = (0..FLOWS)
                .map(|f| UdpSocket::bind(("10.79.0.1", 20000 + f)).expect("bind"))
                .collect();
            for seq in 0..PER_FLOW {
                for (f, sock) in socks.iter().enumerate() {
                    let mut p = [0u8; 64];
                    p[0..2].copy_from_slice(&(f as u16).to_be_bytes());
                    p[2..6].copy_from_slice(&seq.to_be_bytes());
                    sock.send_to(&p, ("10.79.0.2", 30000 + f as u16))
                        .expect("send");
                }
                // A short pause per round keeps this a functional test, not a load test.
                std::thread::sleep(Duration::from_micros(200));
            }
        })
        .join()
        .expect("sender");
        let (per_queue, drops) = sw.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        drop(prog);
        eprintln!("per queue {per_queue:?}, kernel drops {drops}");
        assert_eq!(
            per_queue.iter().sum::<u32>(),
            total,
            "every datagram exactly once"
        );
        assert!(
            per_queue.iter().all(|&n| n > 0),
            "both queues used: {per_queue:?}"
        );
        assert_eq!(drops, 0);
    });
}
