//! ADD, DEL and CHECK, composed from the layers; ADD undoes its finished steps in reverse when a
//! later one fails, so a failed ADD leaves no veth, address, port or record behind.

use crate::conf::{Env, NetConf};
use crate::error::{CniError, CniResult, Code};
use crate::ipam::Ipam;
use crate::netlink::{
    in_netns, mac_string, open_netns, Ethtool, LinkInfo, Netlink, AF_XDP_UNSAFE_TX_OFFLOADS,
};
use crate::result::{expected, PodNetwork};
use crate::xvsd::Xvsd;
use nix::errno::Errno;
use serde_json::Value;
use std::net::Ipv4Addr;
use xvs_agent::interfaces::{read_record, remove_record, write_record, InterfaceRecord};

/// The host end's name: `xvs` + 12 hex digits of a hash of (container id, ifname), so DEL finds
/// it even without the record, and it fits the 15-byte limit.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain([b'/']).chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("xvs{:012x}", h >> 16)
}

/// The Pod's MAC: locally administered `0a:58` + the IPv4 address, so it is unique per address
/// and readable in dumps.
pub fn pod_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

fn kernel(what: String, e: Errno) -> CniError {
    CniError::new(Code::Kernel, what).details(e.desc())
}

fn link_or(nl: &mut Netlink, name: &str, ns: &str) -> CniResult<LinkInfo> {
    nl.link(name)
        .map_err(|e| kernel(format!("looking up {name} in {ns}"), e))?
        .ok_or_else(|| CniError::new(Code::Kernel, format!("{name} disappeared from {ns}")))
}

/// What ADD has finished, for the rollback.
#[derive(Debug, Default)]
struct Done {
    address: bool,
    veth: bool,
    port: bool,
    record: bool,
}

/// ADD: returns the CNI result.
pub fn add(env: &Env, conf: &NetConf) -> CniResult<Value> {
    let mut done = Done::default();
    let host = host_ifname(&env.container_id, &env.ifname);
    let ipam = Ipam::new(&conf.ipam, &conf.name);
    let xvsd = Xvsd::new(&conf.xvsd_run_dir);
    match add_steps(env, conf, &host, &ipam, &xvsd, &mut done) {
        Ok(net) => Ok(net.to_result(&conf.cni_version)),
        Err(e) => {
            rollback(env, conf, &host, &ipam, &xvsd, &done);
            Err(e)
        }
    }
}

fn add_steps(
    env: &Env,
    conf: &NetConf,
    host: &str,
    ipam: &Ipam,
    xvsd: &Xvsd,
    done: &mut Done,
) -> CniResult<PodNetwork> {
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::new(Code::InvalidEnvironment, "CNI_NETNS: missing"))?;
    let netns = open_netns(netns_path).map_err(|e| {
        CniError::new(
            Code::UnknownContainer,
            format!("network namespace {}", netns_path.display()),
        )
        .details(e)
    })?;
    let sandbox = netns_path.display().to_string();
    if let Some(ip) = ipam.lookup(&env.container_id, &env.ifname)? {
        // Not ours to undo: a previous ADD holds it; the runtime must DEL first.
        return Err(CniError::new(
            Code::InvalidEnvironment,
            format!(
                "container {} already has {ip} on {}",
                env.container_id, env.ifname
            ),
        ));
    }
    let ip = ipam.allocate(&env.container_id, &env.ifname)?;
    done.address = true;
    let mac = pod_mac(ip);
    let prefix_len = ipam.subnet().len;
    let gateway = ipam.gateway();

    let mut nl = Netlink::open().map_err(|e| kernel("opening rtnetlink".into(), e))?;
    nl.create_veth(host, &env.ifname, mac, &netns, conf.mtu)
        .map_err(|e| kernel(format!("creating veth {host} / {}", env.ifname), e))?;
    done.veth = true;

    let ifname = env.ifname.as_str();
    in_netns(&netns, || -> CniResult<()> {
        let mut pnl = Netlink::open().map_err(|e| kernel("opening rtnetlink".into(), e))?;
        let link = link_or(&mut pnl, ifname, &sandbox)?;
        pnl.set_up(link.index)
            .map_err(|e| kernel(format!("setting {ifname} up"), e))?;
        if let Some(lo) = pnl.link("lo").ok().flatten() {
            // The runtime usually does this; a Pod without loopback breaks too many programs.
            let _ = pnl.set_up(lo.index);
        }
        Ethtool::open()
            .and_then(|mut e| e.features_off(link.index, &AF_XDP_UNSAFE_TX_OFFLOADS))
            .map_err(|e| kernel(format!("turning transmit offloads off on {ifname}"), e))?;
        pnl.add_address(link.index, ip, prefix_len)
            .map_err(|e| kernel(format!("adding {ip}/{prefix_len} to {ifname}"), e))?;
        pnl.add_default_route(link.index, gateway)
            .map_err(|e| kernel(format!("adding the default route via {gateway}"), e))?;
        Ok(())
    })
    .map_err(|e| kernel(format!("entering {sandbox}"), e))??;

    let host_link = link_or(&mut nl, host, "the host")?;
    nl.set_up(host_link.index)
        .map_err(|e| kernel(format!("setting {host} up"), e))?;

    let ofport = xvsd.attach(host)?;
    done.port = true;

    let rec = InterfaceRecord {
        container_id: env.container_id.clone(),
        pod_namespace: env.args.namespace.clone().unwrap_or_default(),
        pod_name: env.args.name.clone().unwrap_or_default(),
        host_interface: host.to_string(),
        container_interface: env.ifname.clone(),
        netns: sandbox.clone(),
        ofport,
        ip,
        prefix_len,
        gateway,
        mac: mac_string(mac),
    };
    write_record(&conf.interfaces_dir, &rec)
        .map_err(|e| CniError::new(Code::Io, "writing the interface record").details(e))?;
    done.record = true;

    Ok(PodNetwork {
        host_ifname: host.to_string(),
        host_mac: mac_string(host_link.mac),
        ifname: env.ifname.clone(),
        mac: mac_string(mac),
        sandbox,
        ip,
        prefix_len,
        gateway,
    })
}

/// Undoes what ADD finished, newest first; failures are reported on stderr (the ADD's own
/// error is what the runtime gets).
fn rollback(env: &Env, conf: &NetConf, host: &str, ipam: &Ipam, xvsd: &Xvsd, done: &Done) {
    if done.record {
        if let Err(e) = remove_record(&conf.interfaces_dir, &env.container_id) {
            eprintln!("xvs-cni: rollback: {e}");
        }
    }
    if done.port {
        if let Err(e) = xvsd.del_port(host) {
            eprintln!("xvs-cni: rollback: {e}");
        }
    }
    if done.veth {
        if let Err(e) = delete_host_veth(host) {
            eprintln!("xvs-cni: rollback: {e}");
        }
    }
    if done.address {
        if let Err(e) = ipam.release(&env.container_id, &env.ifname) {
            eprintln!("xvs-cni: rollback: {e}");
        }
    }
}

/// Deletes the host end (and so the Pod end); a missing link is fine.
fn delete_host_veth(host: &str) -> CniResult<()> {
    let mut nl = Netlink::open().map_err(|e| kernel("opening rtnetlink".into(), e))?;
    match nl.link(host) {
        Ok(Some(l)) => match nl.delete(l.index) {
            Ok(()) | Err(Errno::ENODEV) => Ok(()),
            Err(e) => Err(kernel(format!("deleting {host}"), e)),
        },
        Ok(None) => Ok(()),
        Err(e) => Err(kernel(format!("looking up {host}"), e)),
    }
}

/// DEL: detaches, deletes the veth, releases the address, removes the record; whatever is
/// already gone is skipped.
pub fn del(env: &Env, conf: &NetConf) -> CniResult<()> {
    let record = read_record(&conf.interfaces_dir, &env.container_id)
        .map_err(|e| CniError::new(Code::Io, "reading the interface record").details(e))?;
    let host = record
        .as_ref()
        .filter(|r| r.container_interface == env.ifname)
        .map_or_else(
            || host_ifname(&env.container_id, &env.ifname),
            |r| r.host_interface.clone(),
        );
    let xvsd = Xvsd::new(&conf.xvsd_run_dir);
    match xvsd.del_port(&host) {
        Ok(_) => {}
        // No xvsd, no port: its ports went with it. The rest must still be cleaned.
        Err(e) if e.code == Code::TryAgainLater => eprintln!("xvs-cni: DEL: {e}"),
        Err(e) => return Err(e),
    }
    delete_host_veth(&host)?;
    Ipam::new(&conf.ipam, &conf.name).release(&env.container_id, &env.ifname)?;
    if record.is_some_and(|r| r.container_interface == env.ifname) {
        remove_record(&conf.interfaces_dir, &env.container_id)
            .map_err(|e| CniError::new(Code::Io, "removing the interface record").details(e))?;
    }
    Ok(())
}

fn check_failed(msg: impl Into<String>) -> CniError {
    CniError::new(Code::CheckFailed, msg)
}

/// CHECK: the Pod interface, its address and default route, the host end attached to xvsd
/// (its XDP program present, and xvsd's bridge listing it at the record's ofport), the address
/// still allocated and the record in place, all as the `prevResult` says.
pub fn check(env: &Env, conf: &NetConf) -> CniResult<()> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(Code::InvalidNetworkConfig, "prevResult: missing"))?;
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::new(Code::InvalidEnvironment, "CNI_NETNS: missing"))?;
    let sandbox = netns_path.display().to_string();
    let want = expected(prev, &env.ifname, &sandbox)?;
    let netns = open_netns(netns_path).map_err(|e| {
        CniError::new(
            Code::UnknownContainer,
            format!("network namespace {sandbox}"),
        )
        .details(e)
    })?;
    let ifname = env.ifname.as_str();
    in_netns(&netns, || -> CniResult<()> {
        let mut nl = Netlink::open().map_err(|e| kernel("opening rtnetlink".into(), e))?;
        let link = nl
            .link(ifname)
            .map_err(|e| kernel(format!("looking up {ifname}"), e))?
            .ok_or_else(|| check_failed(format!("{ifname} is missing from {sandbox}")))?;
        if !link.up {
            return Err(check_failed(format!("{ifname} is down")));
        }
        if let Some(m) = &want.mac {
            if mac_string(link.mac) != m.to_ascii_lowercase() {
                return Err(check_failed(format!(
                    "{ifname} has MAC {}, not {m}",
                    mac_string(link.mac)
                )));
            }
        }
        let addrs = nl
            .addresses(link.index)
            .map_err(|e| kernel(format!("listing addresses of {ifname}"), e))?;
        if !addrs.contains(&(want.ip, want.prefix_len)) {
            return Err(check_failed(format!(
                "{ifname} lacks {}/{}",
                want.ip, want.prefix_len
            )));
        }
        if let Some(gw) = want.gateway {
            let routes = nl
                .routes()
                .map_err(|e| kernel("listing routes".into(), e))?;
            if !routes
                .iter()
                .any(|r| r.dst_len == 0 && r.gateway == Some(gw) && r.oif == link.index)
            {
                return Err(check_failed(format!(
                    "no default route via {gw} on {ifname}"
                )));
            }
        }
        Ok(())
    })
    .map_err(|e| kernel(format!("entering {sandbox}"), e))??;

    let record = read_record(&conf.interfaces_dir, &env.container_id)
        .map_err(|e| CniError::new(Code::Io, "reading the interface record").details(e))?
        .ok_or_else(|| check_failed("the interface record is missing"))?;
    if record.ip != want.ip || record.container_interface != env.ifname {
        return Err(check_failed(format!(
            "the interface record says {} on {}",
            record.ip, record.container_interface
        )));
    }
    let mut nl = Netlink::open().map_err(|e| kernel("opening rtnetlink".into(), e))?;
    let host = nl
        .link(&record.host_interface)
        .map_err(|e| kernel(format!("looking up {}", record.host_interface), e))?
        .ok_or_else(|| check_failed(format!("host end {} is missing", record.host_interface)))?;
    if !host.up {
        return Err(check_failed(format!("host end {} is down", host.name)));
    }
    if !host.xdp_attached {
        return Err(check_failed(format!(
            "host end {} has no XDP program (xvsd's AF_XDP port is gone)",
            host.name
        )));
    }
    match Xvsd::new(&conf.xvsd_run_dir).ofport_of(&conf.bridge, &host.name)? {
        Some(p) if p == record.ofport => {}
        Some(p) => {
            return Err(check_failed(format!(
                "host end {} is xvsd port {p}, the record says {}",
                host.name, record.ofport
            )))
        }
        None => {
            return Err(check_failed(format!(
                "host end {} is not a port of xvsd's bridge {}",
                host.name, conf.bridge
            )))
        }
    }
    let owned = Ipam::new(&conf.ipam, &conf.name).lookup(&env.container_id, &env.ifname)?;
    if owned != Some(want.ip) {
        return Err(check_failed(format!(
            "{} is not allocated to this container",
            want.ip
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_short_and_distinct() {
        let a = host_ifname("abc123", "eth0");
        assert_eq!(a, host_ifname("abc123", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("xvs"));
        assert_ne!(a, host_ifname("abc124", "eth0"));
        assert_ne!(a, host_ifname("abc123", "eth1"));
    }

    #[test]
    fn pod_macs_embed_the_address() {
        assert_eq!(
            mac_string(pod_mac(Ipv4Addr::new(10, 1, 0, 5))),
            "0a:58:0a:01:00:05"
        );
    }
}
