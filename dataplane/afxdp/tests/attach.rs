//! XDP program attach/detach behaviour and socket open errors, on veth in private namespaces.
//! Needs root.

mod common;

use common::Netns;
use xvs_afxdp::{AfXdpConfig, AfXdpError, AfXdpPort, BindMode, UmemShare, XdpMode, XdpProgram};
use xvs_io::FramePool;

fn xdp_shown(ns: &Netns, dev: &str) -> bool {
    ns.ip(0, &["-d", "link", "show", "dev", dev])
        .contains("xdp")
}

/// Runs `f` on a thread inside namespace 0 of `ns`, propagating panics.
fn in_ns<R: Send>(ns: &Netns, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter(0);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

#[test]
fn attach_errors_and_detach_on_drop() {
    let ns = Netns::new(2);
    ns.veth(0, "xt0", "02:00:00:00:01:01", 1, "pt0", "02:00:00:00:01:02");

    in_ns(&ns, || {
        match XdpProgram::attach("nosuchif0", XdpMode::Auto) {
            Err(AfXdpError::NoSuchInterface { ifname }) => assert_eq!(ifname, "nosuchif0"),
            other => panic!("expected NoSuchInterface, got {other:?}"),
        }

        let prog = XdpProgram::attach("xt0", XdpMode::Auto).expect("first attach");
        assert_eq!(prog.mode(), XdpMode::Native, "veth supports native XDP");
        assert!(
            xdp_shown(&ns, "xt0"),
            "ip link shows the program while attached"
        );

        for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Generic] {
            match XdpProgram::attach("xt0", mode) {
                Err(e @ AfXdpError::AlreadyAttached { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains("xt0"), "{msg}");
                    assert!(msg.contains("ip link set dev xt0 xdp off"), "{msg}");
                }
                other => panic!("second attach ({mode}): expected AlreadyAttached, got {other:?}"),
            }
        }
        drop(prog);
        assert!(!xdp_shown(&ns, "xt0"), "no XDP program after drop");

        // Generic mode, then the same checks.
        let prog = XdpProgram::attach("xt0", XdpMode::Generic).expect("generic attach");
        assert_eq!(prog.mode(), XdpMode::Generic);
        assert!(xdp_shown(&ns, "xt0"));
        assert!(matches!(
            XdpProgram::attach("xt0", XdpMode::Native),
            Err(AfXdpError::AlreadyAttached { .. })
        ));
        drop(prog);
        assert!(
            !xdp_shown(&ns, "xt0"),
            "no XDP program after drop (generic)"
        );

        // A program left behind by someone else over netlink (no bpf_link; e.g. a crashed
        // libxdp user): the same clear error, whatever the mode.
        let obj = concat!(env!("OUT_DIR"), "/xvs_redirect.o");
        ns.ip(
            0,
            &[
                "link",
                "set",
                "dev",
                "xt0",
                "xdpgeneric",
                "obj",
                obj,
                "sec",
                "xdp",
            ],
        );
        assert!(xdp_shown(&ns, "xt0"));
        for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Generic] {
            assert!(
                matches!(
                    XdpProgram::attach("xt0", mode),
                    Err(AfXdpError::AlreadyAttached { .. })
                ),
                "netlink leftover, {mode}"
            );
        }
        ns.ip(0, &["link", "set", "dev", "xt0", "xdpgeneric", "off"]);
        assert!(!xdp_shown(&ns, "xt0"));

        // A veth whose peer's MTU is above 3506 refuses native XDP: forced native fails with
        // the kernel's reason, auto falls back to generic.
        ns.ip(1, &["link", "set", "dev", "pt0", "mtu", "9000"]);
        match XdpProgram::attach("xt0", XdpMode::Native) {
            Err(e @ AfXdpError::Attach { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("xt0") && msg.contains("native"), "{msg}");
                assert!(msg.contains("MTU at most 3506"), "{msg}");
            }
            other => panic!("native with a jumbo peer: expected Attach, got {other:?}"),
        }
        let prog = XdpProgram::attach("xt0", XdpMode::Auto).expect("auto attach");
        assert_eq!(prog.mode(), XdpMode::Generic, "auto fell back to generic");
        drop(prog);
        assert!(!xdp_shown(&ns, "xt0"));
    });
}

#[test]
fn open_errors() {
    let ns = Netns::new(2);
    ns.veth(0, "xo0", "02:00:00:00:02:01", 1, "po0", "02:00:00:00:02:02");
    ns.veth(0, "xo1", "02:00:00:00:02:03", 1, "po1", "02:00:00:00:02:04");

    in_ns(&ns, || {
        let mut prog = XdpProgram::attach("xo0", XdpMode::Auto).expect("attach");
        let mut pool = FramePool::new(1024, 4096, 256).expect("pool");
        let total = pool.free_count();
        let mut umem = UmemShare::new();

        // veth has no zero-copy support.
        let mut cfg = AfXdpConfig::new("xo0", 0);
        cfg.fill_size = 256;
        cfg.comp_size = 256;
        cfg.rx_size = 256;
        cfg.tx_size = 256;
        cfg.bind = BindMode::ZeroCopy;
        match AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem) {
            Err(AfXdpError::ZeroCopyUnsupported { ifname, queue: 0 }) => assert_eq!(ifname, "xo0"),
            other => panic!("expected ZeroCopyUnsupported, got {other:?}"),
        }
        assert_eq!(pool.free_count(), total, "failed open must not take frames");

        // The program belongs to another interface.
        let other = AfXdpConfig {
            ifname: "xo1".into(),
            ..cfg.clone()
        };
        assert!(matches!(
            AfXdpPort::open(&mut prog, &other, &mut pool, &mut umem),
            Err(AfXdpError::ProgramMismatch { .. })
        ));

        // Auto falls back to copy mode; the port fills its fill ring.
        cfg.bind = BindMode::Auto;
        let port = AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("open");
        assert!(!port.zero_copy());
        assert!(umem.is_registered());
        use xvs_io::PortIo;
        assert_eq!(port.frames_held(), 256);
        assert_eq!(pool.free_count() + port.frames_held(), total);
        let ks = port.kernel_stats().expect("stats");
        assert_eq!(ks.rx_invalid_descs, 0);

        // A second port on the same (interface, queue) is refused by the kernel.
        assert!(matches!(
            AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem),
            Err(AfXdpError::Socket { op: "bind", .. })
        ));

        // The UMEM share is tied to its pool.
        let mut pool2 = FramePool::new(64, 4096, 256).expect("pool2");
        let mut prog1 = XdpProgram::attach("xo1", XdpMode::Generic).expect("attach xo1");
        let cfg1 = AfXdpConfig {
            ifname: "xo1".into(),
            ..cfg.clone()
        };
        assert!(matches!(
            AfXdpPort::open(&mut prog1, &cfg1, &mut pool2, &mut umem),
            Err(AfXdpError::UmemMismatch)
        ));
        // ... and shared ports inherit copy mode: asking for zero-copy is a clear error.
        let zc = AfXdpConfig {
            bind: BindMode::ZeroCopy,
            ..cfg1.clone()
        };
        assert!(matches!(
            AfXdpPort::open(&mut prog1, &zc, &mut pool, &mut umem),
            Err(AfXdpError::BindModeMismatch { .. })
        ));
        let port1 = AfXdpPort::open(&mut prog1, &cfg1, &mut pool, &mut umem).expect("shared open");
        assert_eq!(
            pool.free_count() + port.frames_held() + port1.frames_held(),
            total
        );

        // Close both (the UMEM owner first): every frame comes back, and the set empties.
        assert_eq!(port.close(&mut pool), 0);
        assert!(umem.is_registered(), "port1 still holds the UMEM");
        assert_eq!(port1.close(&mut pool), 0);
        assert!(!umem.is_registered());
        assert_eq!(pool.free_count(), total);

        // Reopen at once on the same queues: the kernel may still be tearing the old sockets
        // down (EBUSY, retried), and the region is registered again as a new UMEM.
        for round in 0..3 {
            let p0 = AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem)
                .unwrap_or_else(|e| panic!("reopen xo0 round {round}: {e}"));
            let p1 = AfXdpPort::open(&mut prog1, &cfg1, &mut pool, &mut umem)
                .unwrap_or_else(|e| panic!("reopen xo1 round {round}: {e}"));
            assert_eq!(p0.close(&mut pool) + p1.close(&mut pool), 0);
            assert_eq!(pool.free_count(), total);
        }
    });
}

/// A port closed in two steps, as a worker removing a Pod's port does: `begin_close` hands the
/// socket's release to another thread, `released` says when it is done, and only then does
/// `close` take the frames back (every one of them: fill ring and the transmission queued).
#[test]
fn deferred_close_releases_the_socket_elsewhere_and_gives_every_frame_back() {
    use xvs_io::{Desc, PortIo};
    let ns = Netns::new(2);
    ns.veth(0, "xd0", "02:00:00:00:03:01", 1, "pd0", "02:00:00:00:03:02");
    in_ns(&ns, || {
        let mut prog = XdpProgram::attach("xd0", XdpMode::Auto).expect("attach");
        let mut pool = FramePool::new(1024, 4096, 256).expect("pool");
        let total = pool.free_count();
        let mut umem = UmemShare::new();
        let mut cfg = AfXdpConfig::new("xd0", 0);
        cfg.fill_size = 256;
        cfg.comp_size = 256;
        cfg.rx_size = 256;
        cfg.tx_size = 256;
        let mut port: Box<dyn PortIo> =
            Box::new(AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("open"));
        // Something in flight on TX when the close starts.
        let frame = common::udp_frame(
            [2, 0, 0, 0, 3, 1],
            [2, 0, 0, 0, 3, 2],
            ([10, 9, 0, 1], 9),
            ([10, 9, 0, 2], 9),
            b"bye",
        );
        let d: Desc = pool.alloc_copy(&frame).expect("frame");
        assert_eq!(port.tx_burst(&mut pool, &[d]), 1);
        assert!(port.released(), "nothing deferred yet");

        let release = port.begin_close(&mut pool).expect("deferred");
        assert!(!port.released(), "the socket is still open");
        assert_eq!(pool.free_count() + port.frames_held(), total);
        // Another thread pays for the kernel's unbind.
        std::thread::spawn(move || drop(release))
            .join()
            .expect("release thread");
        assert!(port.released());
        assert_eq!(port.close(&mut pool), 0);
        assert_eq!(pool.free_count(), total, "every frame back");
        assert!(!umem.is_registered(), "the socket is gone");
        // The queue is free again for a new socket.
        let again = AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("reopen");
        assert_eq!(again.close(&mut pool), 0);
    });
}
