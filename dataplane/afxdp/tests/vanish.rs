//! The interface disappears under a live port (a Pod's veth deleted before xvs removes the
//! port): polling keeps working without panics and `close` still returns every frame. Needs root.

mod common;

use std::time::Duration;

use common::Netns;
use xvs_afxdp::{AfXdpConfig, AfXdpPort, UmemShare, XdpMode, XdpProgram};
use xvs_io::{Desc, FramePool, PortIo};

#[test]
fn interface_deleted_under_the_port() {
    let ns = Netns::new(2);
    ns.veth(0, "pv0", "02:00:00:00:0e:01", 1, "xv0", "02:00:00:00:0e:02");
    ns.enter_scoped(1, || {
        let mut prog = XdpProgram::attach("xv0", XdpMode::Auto).expect("attach");
        let mut pool = FramePool::new(1024, 4096, 256).expect("pool");
        let total = pool.free_count();
        let mut umem = UmemShare::new();
        let mut cfg = AfXdpConfig::new("xv0", 0);
        cfg.fill_size = 256;
        cfg.comp_size = 256;
        cfg.rx_size = 256;
        cfg.tx_size = 256;
        let mut port = AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("open");

        // The veth goes away (with its peer); nothing is polled meanwhile.
        ns.ip(1, &["link", "del", "xv0"]);
        std::thread::sleep(Duration::from_millis(50));

        // Frames queued for transmission now can never be sent.
        let frames: Vec<Desc> = (0..8)
            .map(|i| pool.alloc_copy(&[i as u8; 60]).expect("frame"))
            .collect();
        assert_eq!(port.tx_burst(&mut pool, &frames), frames.len());
        let mut burst = [Desc::default(); 32];
        for _ in 0..10 {
            assert_eq!(port.rx_burst(&mut pool, &mut burst), 0);
            port.flush(&mut pool);
        }
        assert!(port.stats().errors > 0, "failed kicks are counted");
        assert_eq!(pool.free_count() + port.frames_held(), total);

        let lost = port.close(&mut pool);
        assert_eq!(lost, 0, "every frame recovered");
        assert_eq!(pool.free_count(), total);
        drop(prog);
    });
}
