//! The namespace topology of `peer-baselines.md`, built with `ip` and `ethtool` and removed on drop.
//!
//! ```text
//! pod-a (netns)                 node (netns)                 pod-b (netns)
//! eth0 10.10.0.2/24 <--veth--> pa0          pb0 <--veth--> eth0 10.10.0.3/24
//! d0   10.10.1.2/24 <------------ direct veth (ceiling only) ----------> d0 10.10.1.3/24
//! ```
//!
//! The namespaces are named `<prefix><pid>-{a,n,b}` so parallel runs never collide. Every veth is
//! created inside the namespaces (nothing appears in the root namespace), so deleting the three
//! namespaces removes everything.

use crate::generator::format_mac;
use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Prefix of every name the harness creates outside its namespaces' insides: namespaces
/// `xvsb<pid>-{a,n,b}`, `/tmp/xvsb<pid>`, DPDK's `/var/run/dpdk/xvsb<pid>`.
pub const PREFIX: &str = "xvsb";

/// Namespaces `xvsb<pid>-{a,n,b,x,y}` whose harness process no longer exists (it was SIGKILLed).
pub fn stale_namespaces() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            let Some((pid, suffix)) = name.strip_prefix(PREFIX).and_then(|r| r.split_once('-'))
            else {
                return false;
            };
            // x and y: the two nodes of `tunnel`.
            matches!(suffix, "a" | "n" | "b" | "x" | "y")
                && pid.parse::<u32>().is_ok()
                && !Path::new("/proc").join(pid).exists()
        })
        .collect();
    out.sort();
    out
}

/// Deletes the namespaces of dead runs, and their `/tmp` and DPDK leftovers.
pub fn cleanup_stale() -> Result<()> {
    let stale = stale_namespaces();
    if stale.is_empty() {
        println!("nothing to clean up");
    }
    for name in stale {
        run(Command::new("ip").args(["netns", "del", &name]))?;
        println!("deleted netns {name}");
        if let Some((tag, _)) = name.rsplit_once('-') {
            for dir in [
                std::env::temp_dir().join(tag),
                Path::new("/var/run/dpdk").join(tag),
            ] {
                if dir.exists() && std::fs::remove_dir_all(&dir).is_ok() {
                    println!("deleted {}", dir.display());
                }
            }
        }
    }
    Ok(())
}

/// One end of a link as the generator and the counters need it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ifname: &'static str,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
}

/// A named network namespace (`/run/netns/<name>`), held open by fd.
#[derive(Debug)]
pub struct Netns {
    name: String,
    fd: File,
}

impl Netns {
    /// `ip netns add <name>`.
    pub(crate) fn create(name: &str) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let fd = File::open(Path::new("/run/netns").join(name))
            .with_context(|| format!("open /run/netns/{name}"))?;
        Ok(Self {
            name: name.to_string(),
            fd,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a fresh thread that entered this namespace. Sockets, `/proc/thread-self/net`
    /// files and processes spawned from that thread belong to the namespace.
    pub fn enter<R: Send, F: FnOnce() -> Result<R> + Send>(&self, f: F) -> Result<R> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&self.fd, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {}", self.name))?;
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in netns {} panicked", self.name))?
        })
    }

    /// `ip -n <name> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs a short command inside the namespace (spawned from a thread that entered it, which is
    /// much faster than `ip netns exec`; the command sees the caller's `/sys`, so use it only for
    /// tools that talk to the kernel through sockets, such as `ethtool`).
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<()> {
        self.enter(|| run(Command::new(prog).args(args)))
    }

    /// Writes a sysctl of this namespace (`/proc/sys/net/...` resolves per namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.enter(|| std::fs::write(&path, value).with_context(|| format!("write {path}")))
    }
}

/// Runs a command to completion; fails with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The three namespaces and their links. Dropping it deletes the namespaces.
#[derive(Debug)]
pub struct Topology {
    pub pod_a: Netns,
    pub node: Netns,
    pub pod_b: Netns,
}

/// pod-a `eth0` (towards the switch port `pa0`).
pub const POD_A: Endpoint = Endpoint {
    ifname: "eth0",
    mac: [0x02, 0x0a, 0x0a, 0x00, 0x00, 0x02],
    ip: Ipv4Addr::new(10, 10, 0, 2),
};
/// pod-b `eth0` (towards the switch port `pb0`).
pub const POD_B: Endpoint = Endpoint {
    ifname: "eth0",
    mac: [0x02, 0x0a, 0x0a, 0x00, 0x00, 0x03],
    ip: Ipv4Addr::new(10, 10, 0, 3),
};
/// pod-a `d0` (direct veth to pod-b, the generator ceiling).
pub const DIRECT_A: Endpoint = Endpoint {
    ifname: "d0",
    mac: [0x02, 0x0a, 0x0a, 0x01, 0x00, 0x02],
    ip: Ipv4Addr::new(10, 10, 1, 2),
};
/// pod-b `d0`.
pub const DIRECT_B: Endpoint = Endpoint {
    ifname: "d0",
    mac: [0x02, 0x0a, 0x0a, 0x01, 0x00, 0x03],
    ip: Ipv4Addr::new(10, 10, 1, 3),
};
/// The switch ports in the node namespace.
pub const NODE_PORTS: [(&str, &str); 2] =
    [("pa0", "02:0a:0a:00:aa:02"), ("pb0", "02:0a:0a:00:bb:03")];

/// Offloads turned off on every veth: a CHECKSUM_PARTIAL or GSO packet would arrive broken after
/// an XDP/AF_XDP hop, which loses the skb metadata.
const TX_OFFLOADS_OFF: &[&str] = &[
    "tx", "off", "tso", "off", "gso", "off", "sg", "off", "txvlan", "off", "rxvlan", "off",
];

impl Topology {
    /// Creates `<prefix>-a`, `<prefix>-n`, `<prefix>-b` and the links. On error, whatever was
    /// created is removed again.
    pub fn build(prefix: &str) -> Result<Self> {
        let mut created = Vec::new();
        let mut make = |suffix: &str| -> Result<Netns> {
            let ns = Netns::create(&format!("{prefix}-{suffix}"))?;
            created.push(ns.name.clone());
            Ok(ns)
        };
        let result = (|| {
            let topo = Topology {
                pod_a: make("a")?,
                node: make("n")?,
                pod_b: make("b")?,
            };
            topo.configure()?;
            Ok(topo)
        })();
        if result.is_err() {
            for name in &created {
                let _ = run(Command::new("ip").args(["netns", "del", name]));
            }
        }
        result
    }

    fn configure(&self) -> Result<()> {
        for ns in [&self.pod_a, &self.node, &self.pod_b] {
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            ns.sysctl("net.ipv4.ip_forward", "0")?;
            ns.ip(&["link", "set", "lo", "up"])?;
        }
        let (a, n, b) = (&self.pod_a, &self.node, &self.pod_b);
        let (pa, pa_mac) = NODE_PORTS[0];
        let (pb, pb_mac) = NODE_PORTS[1];
        let veth = |ns: &Netns, local: &Endpoint, peer: &str, peer_mac: &str, peer_ns: &Netns| {
            ns.ip(&[
                "link",
                "add",
                local.ifname,
                "address",
                &format_mac(&local.mac),
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "address",
                peer_mac,
                "netns",
                peer_ns.name(),
            ])
        };
        veth(a, &POD_A, pa, pa_mac, n)?;
        veth(b, &POD_B, pb, pb_mac, n)?;
        veth(a, &DIRECT_A, DIRECT_B.ifname, &format_mac(&DIRECT_B.mac), b)?;
        for (ns, local, peer) in [
            (a, &POD_A, &POD_B),
            (b, &POD_B, &POD_A),
            (a, &DIRECT_A, &DIRECT_B),
            (b, &DIRECT_B, &DIRECT_A),
        ] {
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", local.ip),
                "dev",
                local.ifname,
            ])?;
            ns.ip(&[
                "neigh",
                "add",
                &peer.ip.to_string(),
                "lladdr",
                &format_mac(&peer.mac),
                "dev",
                local.ifname,
                "nud",
                "permanent",
            ])?;
        }
        for (ns, dev) in [
            (a, "eth0"),
            (a, "d0"),
            (b, "eth0"),
            (b, "d0"),
            (n, pa),
            (n, pb),
        ] {
            ns.ip(&["link", "set", dev, "up"])?;
        }
        // Offloads after link up. GRO is toggled off -> on on the pod side while running: on
        // kernel 6.18 a veth is an XDP redirect target (ndo_xdp_xmit) only if its peer has XDP
        // or GRO, and that feature is recomputed only when GRO changes on a running device.
        for (ns, dev) in [(a, "eth0"), (a, "d0"), (b, "eth0"), (b, "d0")] {
            let mut args = vec!["-K", dev];
            args.extend_from_slice(TX_OFFLOADS_OFF);
            args.extend_from_slice(&["gro", "off"]);
            ns.exec("ethtool", &args)?;
            ns.exec("ethtool", &["-K", dev, "gro", "on"])?;
        }
        for dev in [pa, pb] {
            let mut args = vec!["-K", dev];
            args.extend_from_slice(TX_OFFLOADS_OFF);
            args.extend_from_slice(&["gro", "off"]);
            n.exec("ethtool", &args)?;
        }
        Ok(())
    }

    /// Removes any XDP program left attached over netlink on the node ports (a peer that died
    /// without cleaning up). Programs attached through a bpf_link go away with their owner.
    pub fn clear_node_xdp(&self) {
        for (dev, _) in NODE_PORTS {
            for mode in ["xdpdrv", "xdpgeneric"] {
                let _ = self.node.ip(&["link", "set", "dev", dev, mode, "off"]);
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.pod_a, &self.node, &self.pod_b] {
            if let Err(e) = run(Command::new("ip").args(["netns", "del", ns.name()])) {
                eprintln!("xvs-bench: cleanup: {e:#}");
            }
        }
    }
}
