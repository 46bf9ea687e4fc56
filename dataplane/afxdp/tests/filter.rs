//! The XDP program's filter modes and transmission of frames built in userspace. Needs root.
//!
//! ```text
//!  ns0: a0 10.78.0.1 fd00:78::1 ──veth── ns1: xa 10.78.0.2 fd00:78::2 [XDP + AF_XDP port]
//!                                                     + kernel UDP sockets
//! ```
//! ns0 sends UDP datagrams to xa; depending on the filter each must reach either the AF_XDP
//! socket or the kernel stack of ns1, never both.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::time::{Duration, Instant};

use common::Netns;
use xvs_afxdp::{AfXdpConfig, AfXdpPort, UmemShare, XdpFilter, XdpMode, XdpProgram};
use xvs_io::{Desc, FramePool, PortIo};

const MAC_A0: &str = "02:00:00:00:0c:01";
const MAC_XA: &str = "02:00:00:00:0c:02";
const TUNNEL_PORT: u16 = 6081;
const OTHER_PORT: u16 = 7000;

/// Where a probe datagram ended up.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Userspace,
    Kernel,
    Nowhere,
}

struct Rig {
    prog: XdpProgram,
    port: AfXdpPort,
    pool: FramePool,
    total: usize,
    /// Kernel sockets on xa's addresses (both families, both ports).
    kernel: Vec<UdpSocket>,
}

/// The UDP payload of an IPv4/UDP or IPv6/UDP frame, if it is one.
fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let l4 = match frame.get(12..14)? {
        [0x08, 0x00] if *frame.get(23)? == 17 => 14 + usize::from(frame.get(14)? & 0x0f) * 4,
        [0x86, 0xdd] if *frame.get(20)? == 17 => 14 + 40,
        _ => return None,
    };
    frame.get(l4 + 8..)
}

impl Rig {
    /// Waits up to 2 s for `marker` on the AF_XDP socket or a kernel socket.
    fn probe(&mut self, marker: &[u8]) -> Seen {
        let mut burst = [Desc::default(); 32];
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = Seen::Nowhere;
        while Instant::now() < deadline && seen == Seen::Nowhere {
            let n = self.port.rx_burst(&mut self.pool, &mut burst);
            for d in &burst[..n] {
                if udp_payload(self.pool.region().data(*d)) == Some(marker) {
                    seen = Seen::Userspace;
                }
            }
            self.pool.free_all(&burst[..n]);
            for s in &self.kernel {
                if let Ok(len) = s.recv(&mut buf) {
                    if &buf[..len] == marker {
                        assert_eq!(seen, Seen::Nowhere, "datagram seen twice");
                        seen = Seen::Kernel;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    }
}

#[test]
fn filter_modes_and_userspace_tx() {
    let ns = Netns::new(2);
    ns.veth(0, "a0", MAC_A0, 1, "xa", MAC_XA);
    ns.ip(0, &["addr", "add", "10.78.0.1/24", "dev", "a0"]);
    ns.ip(1, &["addr", "add", "10.78.0.2/24", "dev", "xa"]);
    ns.ip(
        0,
        &[
            "neigh",
            "replace",
            "10.78.0.2",
            "lladdr",
            MAC_XA,
            "dev",
            "a0",
            "nud",
            "permanent",
        ],
    );
    ns.ip(
        1,
        &[
            "neigh",
            "replace",
            "10.78.0.1",
            "lladdr",
            MAC_A0,
            "dev",
            "xa",
            "nud",
            "permanent",
        ],
    );
    for (i, dev, addr) in [(0, "a0", "fd00:78::1/64"), (1, "xa", "fd00:78::2/64")] {
        common::sh(&[
            "ip",
            "netns",
            "exec",
            ns.name(i),
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
        ]);
        ns.ip(i, &["addr", "add", addr, "dev", dev, "nodad"]);
    }
    ns.ip(
        0,
        &[
            "neigh",
            "replace",
            "fd00:78::2",
            "lladdr",
            MAC_XA,
            "dev",
            "a0",
            "nud",
            "permanent",
        ],
    );
    // Pod CIDR 10.244.1.0/24 lives behind xa as seen from ns0.
    ns.ip(
        0,
        &[
            "route",
            "add",
            "10.244.1.0/24",
            "via",
            "10.78.0.2",
            "dev",
            "a0",
        ],
    );

    std::thread::scope(|s| {
        // The sender lives in ns0 for the whole test, fed through a channel.
        let (to_send, sends) = std::sync::mpsc::channel::<(IpAddr, u16, Vec<u8>)>();
        let (sent_tx, sent) = std::sync::mpsc::channel::<()>();
        let (a0_tx, a0_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let ns_ref = &ns;
        s.spawn(move || {
            ns_ref.enter(0);
            let sock = UdpSocket::bind("10.78.0.1:5555").expect("bind sender");
            let sock6 = UdpSocket::bind("[fd00:78::1]:5555").expect("bind sender v6");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            for (dst, port, p) in sends {
                if port == 0 {
                    // A receive request: wait for a datagram to 10.78.0.1:5555.
                    let mut buf = [0u8; 2048];
                    let deadline = Instant::now() + Duration::from_secs(2);
                    let mut got = Vec::new();
                    while Instant::now() < deadline {
                        if let Ok(n) = sock.recv(&mut buf) {
                            got = buf[..n].to_vec();
                            break;
                        }
                    }
                    a0_tx.send(got).expect("report");
                    continue;
                }
                let s = if dst.is_ipv6() { &sock6 } else { &sock };
                s.send_to(&p, (dst, port)).expect("send");
                sent_tx.send(()).expect("ack");
            }
        });

        ns.enter_scoped(1, move || {
            let mut prog = XdpProgram::attach("xa", XdpMode::Auto).expect("attach");
            let mut pool = FramePool::new(2048, 4096, 256).expect("pool");
            let total = pool.free_count();
            let mut umem = UmemShare::new();
            let mut cfg = AfXdpConfig::new("xa", 0);
            cfg.fill_size = 512;
            cfg.comp_size = 512;
            cfg.rx_size = 512;
            cfg.tx_size = 512;
            let port = AfXdpPort::open(&mut prog, &cfg, &mut pool, &mut umem).expect("open");
            let mut kernel = Vec::new();
            for ip in ["10.78.0.2", "fd00:78::2"] {
                for port in [TUNNEL_PORT, OTHER_PORT] {
                    let k = UdpSocket::bind((ip, port)).expect("bind kernel socket");
                    k.set_nonblocking(true).expect("nb");
                    kernel.push(k);
                }
            }
            let mut rig = Rig {
                prog,
                port,
                pool,
                total,
                kernel,
            };
            let xa_ip = IpAddr::V4(Ipv4Addr::new(10, 78, 0, 2));
            let xa_ip6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, 0, 2));
            let pod_ip = IpAddr::V4(Ipv4Addr::new(10, 244, 1, 7));
            let mut n = 0u32;
            let mut check = |rig: &mut Rig, dst: IpAddr, port: u16, want: Seen, what: &str| {
                n += 1;
                let marker = format!("probe {n}: {what}").into_bytes();
                to_send.send((dst, port, marker.clone())).expect("send req");
                sent.recv().expect("sent");
                assert_eq!(rig.probe(&marker), want, "{what}");
            };

            // After attach: everything goes to userspace.
            check(
                &mut rig,
                xa_ip,
                OTHER_PORT,
                Seen::Userspace,
                "redirect-all, other port",
            );
            check(
                &mut rig,
                xa_ip,
                TUNNEL_PORT,
                Seen::Userspace,
                "redirect-all, tunnel port",
            );

            rig.prog.set_filter(&XdpFilter::PassAll).expect("pass-all");
            check(
                &mut rig,
                xa_ip,
                TUNNEL_PORT,
                Seen::Kernel,
                "pass-all, tunnel port",
            );
            check(
                &mut rig,
                xa_ip,
                OTHER_PORT,
                Seen::Kernel,
                "pass-all, other port",
            );
            check(
                &mut rig,
                xa_ip6,
                TUNNEL_PORT,
                Seen::Kernel,
                "pass-all, IPv6 tunnel port",
            );

            rig.prog
                .set_filter(&XdpFilter::Select {
                    tunnel_port2: None,
                    tunnel_port: Some(TUNNEL_PORT),
                    pod_cidr4: Some((Ipv4Addr::new(10, 244, 1, 0), 24)),
                })
                .expect("select");
            check(
                &mut rig,
                xa_ip,
                TUNNEL_PORT,
                Seen::Userspace,
                "select, tunnel port",
            );
            check(
                &mut rig,
                xa_ip,
                OTHER_PORT,
                Seen::Kernel,
                "select, other port to the node",
            );
            check(
                &mut rig,
                pod_ip,
                OTHER_PORT,
                Seen::Userspace,
                "select, Pod destination",
            );
            check(
                &mut rig,
                xa_ip6,
                TUNNEL_PORT,
                Seen::Userspace,
                "select, IPv6 tunnel port",
            );
            check(
                &mut rig,
                xa_ip6,
                OTHER_PORT,
                Seen::Kernel,
                "select, IPv6 other port",
            );

            rig.prog
                .set_filter(&XdpFilter::RedirectAll)
                .expect("redirect-all");
            check(
                &mut rig,
                xa_ip,
                OTHER_PORT,
                Seen::Userspace,
                "redirect-all again",
            );

            // Transmit a frame built in userspace: xa -> a0, UDP 10.78.0.2:7000 -> 10.78.0.1:5555.
            let payload = b"built in userspace".to_vec();
            let frame = common::udp_frame(
                [2, 0, 0, 0, 0x0c, 0x02],
                [2, 0, 0, 0, 0x0c, 0x01],
                ([10, 78, 0, 2], OTHER_PORT),
                ([10, 78, 0, 1], 5555),
                &payload,
            );
            let d = rig.pool.alloc_copy(&frame).expect("frame");
            let bogus = Desc {
                addr: 1 << 40,
                len: 60,
                options: 0,
            };
            assert_eq!(rig.port.tx_burst(&mut rig.pool, &[d, bogus]), 2);
            assert_eq!(
                rig.port.counters().tx_invalid,
                1,
                "out-of-pool descriptor refused"
            );
            to_send.send((xa_ip, 0, Vec::new())).expect("recv req");
            let deadline = Instant::now() + Duration::from_secs(2);
            while rig.port.counters().tx_completed < 1 && Instant::now() < deadline {
                rig.port.flush(&mut rig.pool);
            }
            assert_eq!(
                rig.port.counters().tx_completed,
                1,
                "transmission completed"
            );
            assert_eq!(
                a0_rx.recv().expect("a0 report"),
                payload,
                "a0 got our frame"
            );
            let st = rig.port.stats();
            assert_eq!((st.tx_packets, st.tx_dropped), (1, 1));

            // A frame above the interface MTU: the kernel refuses to send it, but must still
            // complete it so the frame comes back to the pool.
            let big = rig.pool.alloc_copy(&vec![0x5a; 3000]).expect("big frame");
            assert_eq!(rig.port.tx_burst(&mut rig.pool, &[big]), 1);
            let deadline = Instant::now() + Duration::from_secs(2);
            while rig.port.counters().tx_completed < 2 && Instant::now() < deadline {
                rig.port.flush(&mut rig.pool);
            }
            eprintln!(
                "oversize: counters {:?} kernel {:?}",
                rig.port.counters(),
                rig.port.kernel_stats()
            );
            assert_eq!(
                rig.port.counters().tx_completed,
                2,
                "oversize frame completed"
            );
            drop(to_send);

            let Rig {
                port,
                mut pool,
                total,
                ..
            } = rig;
            assert_eq!(port.close(&mut pool), 0);
            assert_eq!(pool.free_count(), total);
        });
    });
}
