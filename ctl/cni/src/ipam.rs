//! Host-local style IPAM: one file per allocated address, named by the address and holding
//! its owner (`<container id>\n<ifname>`), under `<dataDir>/<network name>/`, plus the last
//! address handed out so allocation goes round the range before reusing a released address.
//!
//! Invariant: every read-modify-write of the directory happens under an exclusive `flock` of
//! its `lock` file, so concurrent plugin runs (kubelet starts several Pods at once) never hand
//! out one address twice.

use crate::conf::IpamConf;
use crate::error::{CniError, CniResult, Code};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use xvs_agent::model::Cidr;

const LOCK_FILE: &str = "lock";
const LAST_RESERVED: &str = "last_reserved_ip.0";

/// The allocator of one network's Pod CIDR.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    subnet: Cidr,
    gateway: Ipv4Addr,
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> CniError {
    CniError::new(Code::Io, format!("ipam: {what} {}", path.display())).details(e)
}

impl Ipam {
    /// The allocator for network `network` (a file name; the netconf checked it).
    pub fn new(conf: &IpamConf, network: &str) -> Self {
        Self {
            dir: conf.data_dir.join(network),
            subnet: conf.subnet,
            gateway: conf.gateway,
        }
    }

    /// The directory holding the allocation files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The gateway address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The subnet.
    pub fn subnet(&self) -> Cidr {
        self.subnet
    }

    /// The addresses Pods may get: the subnet without its network and broadcast addresses and
    /// without the gateway, in order; `None` for a /31 or /32, which has no room.
    fn range(&self) -> Option<(u32, u32)> {
        let net = u32::from(self.subnet.addr);
        let broadcast = net | !self.subnet.mask();
        let (first, last) = (net.checked_add(1)?, broadcast.checked_sub(1)?);
        (first <= last).then_some((first, last))
    }

    fn lock(&self) -> CniResult<Flock<File>> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating", &self.dir, e))?;
        let path = self.dir.join(LOCK_FILE);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("opening", &path, e))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| io("locking", &path, e))
    }

    fn owner_text(container_id: &str, ifname: &str) -> String {
        format!("{container_id}\n{ifname}")
    }

    /// All allocations: (address, owner text).
    fn allocations(&self) -> CniResult<Vec<(Ipv4Addr, String)>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io("listing", &self.dir, e))?;
        for e in entries {
            let e = e.map_err(|e| io("listing", &self.dir, e))?;
            let Some(ip) = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let owner =
                std::fs::read_to_string(e.path()).map_err(|err| io("reading", &e.path(), err))?;
            out.push((ip, owner.trim().to_string()));
        }
        Ok(out)
    }

    /// The address of (`container_id`, `ifname`), if it has one.
    pub fn lookup(&self, container_id: &str, ifname: &str) -> CniResult<Option<Ipv4Addr>> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let _lock = self.lock()?;
        let owner = Self::owner_text(container_id, ifname);
        Ok(self
            .allocations()?
            .into_iter()
            .find_map(|(ip, o)| (o == owner).then_some(ip)))
    }

    /// Allocates an address for (`container_id`, `ifname`); the same one again when it already
    /// has one (a retried ADD). Fails with [`Code::AddressesExhausted`] when the range is full.
    pub fn allocate(&self, container_id: &str, ifname: &str) -> CniResult<Ipv4Addr> {
        let _lock = self.lock()?;
        let owner = Self::owner_text(container_id, ifname);
        let taken = self.allocations()?;
        if let Some((ip, _)) = taken.iter().find(|(_, o)| *o == owner) {
            return Ok(*ip);
        }
        let exhausted = || {
            CniError::new(
                Code::AddressesExhausted,
                format!("ipam: no free address in {}", self.subnet.to_ofctl()),
            )
        };
        let (first, last) = self.range().ok_or_else(exhausted)?;
        let last_path = self.dir.join(LAST_RESERVED);
        let start = std::fs::read_to_string(&last_path)
            .ok()
            .and_then(|t| t.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|l| (first..=last).contains(l))
            .map_or(first, |l| if l >= last { first } else { l + 1 });
        let span = last - first + 1;
        let is_taken = |ip: Ipv4Addr| ip == self.gateway || taken.iter().any(|(t, _)| *t == ip);
        let free = (0..span)
            .map(|i| Ipv4Addr::from(first + (start - first + i) % span))
            .find(|ip| !is_taken(*ip))
            .ok_or_else(exhausted)?;
        let path = self.dir.join(free.to_string());
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io("reserving", &path, e))?;
        if let Err(e) = f.write_all(owner.as_bytes()).and_then(|()| f.sync_all()) {
            let _ = std::fs::remove_file(&path);
            return Err(io("writing", &path, e));
        }
        // Only a hint for the next search: losing it costs nothing but round-robin order.
        let _ = std::fs::write(&last_path, free.to_string());
        Ok(free)
    }

    /// Releases the address of (`container_id`, `ifname`); returns it, `None` when it had none.
    pub fn release(&self, container_id: &str, ifname: &str) -> CniResult<Option<Ipv4Addr>> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let _lock = self.lock()?;
        let owner = Self::owner_text(container_id, ifname);
        let Some((ip, _)) = self.allocations()?.into_iter().find(|(_, o)| *o == owner) else {
            return Ok(None);
        };
        let path = self.dir.join(ip.to_string());
        std::fs::remove_file(&path).map_err(|e| io("releasing", &path, e))?;
        Ok(Some(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ipam(dir: &Path, subnet: &str, gateway: Option<&str>) -> Ipam {
        let subnet = Cidr::parse(subnet).expect("cidr");
        let conf = IpamConf {
            subnet,
            gateway: gateway.map_or_else(
                || Ipv4Addr::from(u32::from(subnet.addr).wrapping_add(1)),
                |g| g.parse().expect("ip"),
            ),
            data_dir: dir.to_path_buf(),
        };
        Ipam::new(&conf, "xvs")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn allocates_in_order_skipping_the_gateway_and_is_idempotent() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = ipam(d.path(), "10.0.0.0/29", None);
        assert_eq!(a.allocate("c1", "eth0").expect("alloc"), ip("10.0.0.2"));
        assert_eq!(a.allocate("c2", "eth0").expect("alloc"), ip("10.0.0.3"));
        // A retried ADD gets its address again.
        assert_eq!(a.allocate("c1", "eth0").expect("alloc"), ip("10.0.0.2"));
        // Another interface of the same container is another owner.
        assert_eq!(a.allocate("c1", "net1").expect("alloc"), ip("10.0.0.4"));
        assert_eq!(
            a.lookup("c2", "eth0").expect("lookup"),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(a.lookup("c9", "eth0").expect("lookup"), None);
        let owner = std::fs::read_to_string(d.path().join("xvs/10.0.0.3")).expect("file");
        assert_eq!(owner, "c2\neth0");

        let b = ipam(
            d.path().join("other").as_path(),
            "10.0.0.0/29",
            Some("10.0.0.6"),
        );
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| b.allocate(&format!("c{i}"), "eth0").expect("alloc"))
            .collect();
        assert_eq!(
            got,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"].map(ip)
        );
    }

    #[test]
    fn exhaustion_release_and_reuse_persist_across_instances() {
        let d = tempfile::tempdir().expect("tempdir");
        // /29: .1 gateway, .2 to .6 for Pods, .7 broadcast.
        let a = ipam(d.path(), "10.0.0.0/29", None);
        for i in 0..5 {
            a.allocate(&format!("c{i}"), "eth0").expect("alloc");
        }
        let e = a.allocate("c5", "eth0").expect_err("full");
        assert_eq!(e.code, Code::AddressesExhausted);
        assert!(e.to_string().contains("10.0.0.0/29"));
        // Another run of the plugin (a new instance) sees the same state.
        let b = ipam(d.path(), "10.0.0.0/29", None);
        assert_eq!(
            b.release("c1", "eth0").expect("release"),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(b.release("c1", "eth0").expect("release twice"), None);
        assert_eq!(b.release("never", "eth0").expect("release unknown"), None);
        assert_eq!(b.allocate("c5", "eth0").expect("reuse"), ip("10.0.0.3"));
        assert_eq!(
            b.allocate("c6", "eth0").expect_err("full").code,
            Code::AddressesExhausted
        );
        // Round robin: after .3 was handed out again, a release of .2 is next in line.
        b.release("c0", "eth0").expect("release");
        b.release("c4", "eth0").expect("release");
        assert_eq!(b.allocate("c7", "eth0").expect("alloc"), ip("10.0.0.6"));
        assert_eq!(b.allocate("c8", "eth0").expect("alloc"), ip("10.0.0.2"));
    }

    #[test]
    fn subnets_without_room_are_exhausted_not_a_panic() {
        let d = tempfile::tempdir().expect("tempdir");
        for subnet in [
            "10.0.0.0/31",
            "10.0.0.4/32",
            "255.255.255.255/32",
            "0.0.0.0/32",
        ] {
            let a = ipam(d.path(), subnet, Some("10.0.0.1"));
            let e = a.allocate("c", "eth0").expect_err("no room");
            assert_eq!(e.code, Code::AddressesExhausted, "{subnet}");
        }
    }

    #[test]
    fn releasing_in_a_missing_directory_is_fine() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = ipam(&d.path().join("nothing"), "10.0.0.0/24", None);
        assert_eq!(a.release("c", "eth0").expect("release"), None);
        assert_eq!(a.lookup("c", "eth0").expect("lookup"), None);
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    // Each thread opens its own lock file description, as separate processes do.
                    let a = ipam(&dir, "10.1.0.0/24", None);
                    (0..20)
                        .map(|i| a.allocate(&format!("t{t}c{i}"), "eth0").expect("alloc"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = BTreeSet::new();
        let mut n = 0;
        for t in threads {
            for ip in t.join().expect("thread") {
                all.insert(ip);
                n += 1;
            }
        }
        assert_eq!(n, 160);
        assert_eq!(all.len(), 160, "an address was handed out twice");
        let files = std::fs::read_dir(dir.join("xvs"))
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .ok()
                    .and_then(|e| {
                        e.file_name()
                            .to_str()
                            .map(|n| n.parse::<Ipv4Addr>().is_ok())
                    })
                    .unwrap_or(false)
            })
            .count();
        assert_eq!(files, 160);
    }
}
