//! Hand-built test frames (Ethernet / IPv4 / UDP with valid checksums).

/// The Internet checksum (RFC 1071) of `data`, folded, not inverted.
pub(crate) fn ones_sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Fields of a UDP-in-IPv4 Ethernet frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Udp4 {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub ip_id: u16,
    pub dont_fragment: bool,
    pub ttl: u8,
}

impl Udp4 {
    /// The whole frame, with correct IPv4 header and UDP checksums.
    pub(crate) fn build(&self, payload: &[u8]) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let mut f = Vec::with_capacity(14 + ip_len);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let ip_start = f.len();
        f.extend_from_slice(&[0x45, 0x00]);
        f.extend_from_slice(&(ip_len as u16).to_be_bytes());
        f.extend_from_slice(&self.ip_id.to_be_bytes());
        f.extend_from_slice(if self.dont_fragment {
            &[0x40, 0x00]
        } else {
            &[0x00, 0x00]
        });
        f.extend_from_slice(&[self.ttl, 17, 0, 0]);
        f.extend_from_slice(&self.src_ip);
        f.extend_from_slice(&self.dst_ip);
        let ip_csum = !(ones_sum(&f[ip_start..], 0) as u16);
        f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_csum.to_be_bytes());
        let udp_start = f.len();
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&self.src_ip);
        pseudo.extend_from_slice(&self.dst_ip);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
        let sum = ones_sum(&f[udp_start..], ones_sum(&pseudo, 0));
        let mut udp_csum = !(sum as u16);
        if udp_csum == 0 {
            udp_csum = 0xffff;
        }
        f[udp_start + 6..udp_start + 8].copy_from_slice(&udp_csum.to_be_bytes());
        f
    }
}

/// A small valid UDP frame whose addresses depend on `i`.
pub(crate) fn udp_frame(i: u8, payload: &[u8]) -> Vec<u8> {
    Udp4 {
        src_mac: [0x02, 0, 0, 0, 0, i],
        dst_mac: [0x02, 0, 0, 0, 1, i],
        src_ip: [10, 0, 0, i],
        dst_ip: [10, 0, 1, i],
        src_port: 1000 + u16::from(i),
        dst_port: 2000,
        ip_id: u16::from(i),
        dont_fragment: false,
        ttl: 64,
    }
    .build(payload)
}

#[test]
fn checksums_verify() {
    let f = udp_frame(3, b"hello");
    assert_eq!(ones_sum(&f[14..34], 0), 0xffff);
}

/// A network namespace made for one test, deleted on drop (also when the test fails).
#[derive(Debug)]
pub(crate) struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `xvsio-<pid>-<n>-<tag>`, unique in this machine.
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "xvsio-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(st.success(), "ip netns add {name} failed");
        Self { name }
    }

    /// Runs `ip -n <ns> args...`; panics (failing the test) when it fails.
    pub(crate) fn ip(&self, args: &[&str]) {
        let out = std::process::Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {:?}: {}",
            self.name,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// True when `ip -n <ns> args...` succeeds.
    pub(crate) fn ip_ok(&self, args: &[&str]) -> bool {
        std::process::Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Runs `f` on a new thread that has entered the namespace; re-raises its panic.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open netns");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            });
            match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
