//! Test topology helpers: uniquely named network namespaces joined by veth pairs, removed by a
//! Drop guard (also when a test panics), and threads that run inside one of them.
#![allow(dead_code)]

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A set of namespaces owned by one test; every one is deleted on drop, with its interfaces.
#[derive(Debug)]
pub struct Netns {
    names: Vec<String>,
}

impl Netns {
    /// Creates `count` namespaces named `xafx<pid>n<counter>_<i>`.
    pub fn new(count: usize) -> Self {
        let id = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let mut ns = Self { names: Vec::new() };
        for i in 0..count {
            let name = format!("xafx{pid}n{id}_{i}");
            sh(&["ip", "netns", "add", &name]);
            ns.names.push(name.clone());
            // No IPv6 autoconfiguration noise on the test links.
            sh(&[
                "ip",
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
            sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// Name of namespace `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Creates a veth pair `a` in namespace `na` and `b` in namespace `nb`, with fixed MACs,
    /// TX checksum offload off on both ends, both up.
    pub fn veth(&self, na: usize, a: &str, mac_a: &str, nb: usize, b: &str, mac_b: &str) {
        let (sa, sb) = (self.name(na), self.name(nb));
        sh(&[
            "ip", "link", "add", a, "netns", sa, "type", "veth", "peer", "name", b, "netns", sb,
        ]);
        for (ns, dev, mac) in [(sa, a, mac_a), (sb, b, mac_b)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "address", mac]);
            sh(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, i: usize, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", self.name(i)];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Runs `f` on a new thread inside namespace `i`, propagating its panic.
    pub fn enter_scoped<R: Send>(&self, i: usize, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter(i);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Moves the calling thread into namespace `i` (network namespace only; per thread).
    pub fn enter(&self, i: usize) {
        enter(self.name(i));
    }
}

/// Moves the calling thread into the named network namespace.
pub fn enter(name: &str) {
    let f = File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("opening netns {name}: {e}"));
    setns(&f, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {name}: {e}"));
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            // Deleting a namespace destroys its veth ends (and their peers).
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// An Ethernet/IPv4/UDP frame with valid IPv4 and UDP checksums.
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&src.0);
    ip.extend_from_slice(&dst.0);
    let c = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&src.1.to_be_bytes());
    udp.extend_from_slice(&dst.1.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.0);
    pseudo.extend_from_slice(&dst.0);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let c = checksum(&udp, sum(&pseudo));
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn checksum(b: &[u8], init: u32) -> u16 {
    let mut s = init + sum(b);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}
