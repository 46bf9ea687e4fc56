//! Transmitting more frames than the TX and completion rings hold: `tx_burst` accepts a ring's
//! worth, kicks the kernel when the ring is full, completions are reclaimed on the way, and every
//! frame arrives exactly once. Needs root.
//!
//! ```text
//!  ns0: a0 10.80.0.1 (UDP sink) ──veth── ns1: xa [AF_XDP port, TX ring 256, completion ring 256]
//! ```

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::Netns;
use nix::sys::socket::{setsockopt, sockopt};
use xvs_afxdp::{AfXdpConfig, AfXdpPort, UmemShare, XdpMode, XdpProgram};
use xvs_io::{Desc, FramePool, PortIo};

const FRAMES: u32 = 1000;
const RING: u32 = 256;

#[test]
fn tx_beyond_ring_capacity() {
    let ns = Netns::new(2);
    let (mac_a0, mac_xa) = ([2, 0, 0, 0, 0x0f, 1], [2, 0, 0, 0, 0x0f, 2]);
    ns.veth(0, "a0", "02:00:00:00:0f:01", 1, "xa", "02:00:00:00:0f:02");
    ns.ip(0, &["addr", "add", "10.80.0.1/24", "dev", "a0"]);

    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let sink = s.spawn(|| {
            ns.enter(0);
            let sock = UdpSocket::bind("10.80.0.1:5555").expect("bind sink");
            setsockopt(&sock, sockopt::RcvBufForce, &(16 << 20)).expect("rcvbuf");
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            ready_tx.send(()).expect("ready");
            let mut seen = vec![false; FRAMES as usize];
            let mut got = 0u32;
            let mut buf = [0u8; 256];
            let mut last = Instant::now();
            while got < FRAMES && last.elapsed() < Duration::from_secs(5) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                last = Instant::now();
                if n == 4 {
                    let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    if seq < FRAMES && !seen[seq as usize] {
                        seen[seq as usize] = true;
                        got += 1;
                    }
                }
            }
            got
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sink up");

        ns.enter_scoped(1, || {
            let mut prog = XdpProgram::attach("xa", XdpMode::Auto).expect("attach");
            let mut pool = FramePool::new(2048, 4096, 256).expect("pool");
            let total = pool.free_count();
            let mut umem = UmemShare::new();
            let mut cfg = AfXdpConfig::new("xa", 0);
            cfg.fill_size = RING;
            cfg.comp_size = RING;
            cfg.rx_size = RING;
            cfg.tx_size = RING;
            let mut port = AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("open");
            let descs: Vec<Desc> = (0..FRAMES)
                .map(|seq| {
                    let f = common::udp_frame(
                        mac_xa,
                        mac_a0,
                        ([10, 80, 0, 2], 7000),
                        ([10, 80, 0, 1], 5555),
                        &seq.to_be_bytes(),
                    );
                    pool.alloc_copy(&f).expect("frame")
                })
                .collect();

            // No flush between calls: each call finds the ring full and must kick to make room.
            let first = port.tx_burst(&mut pool, &descs);
            assert_eq!(first, RING as usize, "one ring's worth accepted");
            let mut sent = first;
            let mut calls = 1;
            while sent < descs.len() && calls < 100 {
                sent += port.tx_burst(&mut pool, &descs[sent..]);
                calls += 1;
            }
            assert_eq!(sent, descs.len(), "all accepted within {calls} calls");
            let deadline = Instant::now() + Duration::from_secs(5);
            while port.counters().tx_completed < u64::from(FRAMES) && Instant::now() < deadline {
                port.flush(&mut pool);
            }
            let c = port.counters();
            eprintln!("tx_burst calls {calls}, counters {c:?}");
            assert_eq!(c.tx_completed, u64::from(FRAMES), "every frame completed");
            assert_eq!(port.stats().tx_packets, u64::from(FRAMES));
            assert_eq!(pool.free_count() + port.frames_held(), total);
            assert_eq!(port.close(&mut pool), 0);
            assert_eq!(pool.free_count(), total);
            drop(prog);
        });
        let got = sink.join().expect("sink");
        assert_eq!(got, FRAMES, "every frame arrived exactly once");
    });
}
