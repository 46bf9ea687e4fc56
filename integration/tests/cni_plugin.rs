//! `xvs-cni` run as a runtime runs it (CNI_* variables, netconf on stdin) against namespaces
//! made here: errors with the spec's codes, ADD/CHECK/DEL against a running xvsd, and the
//! rollback of a failed ADD (no veth, address, port or record left).

mod cni_common;

use anyhow::{Context, Result};
use cni_common::{allocated, host_links, invoke, netconf, records, with_prev, Sandbox};
use serde_json::json;
use xvs_integration::{is_root, unique_tag, Netns, Xvsd};

/// xvsd with only the gateway tap: every Pod port comes from xvs-cni at run time.
const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100
# Frames for the Pods that come at run time.
runtime_ports = 8

[[port]]
name = "antrea-gw0"
type = "tap"
ofport = 100
mac = "aa:bb:cc:dd:ee:01"
"#;

#[test]
fn cni_errors_carry_spec_codes_and_a_failed_add_leaves_nothing() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("ce");
    let node = Netns::new(&format!("{tag}n"))?;
    let pod = Netns::new(&format!("{tag}p"))?;
    let dir = tempfile::tempdir()?;
    // No xvsd runs in this run directory.
    let conf = netconf(&dir.path().join("run"), dir.path(), "10.66.0.0/24");
    let sb = Sandbox::new(&pod, &format!("{tag}ctr"), "default", "web-1");

    let v = invoke(&node, "VERSION", &sb, &conf)?;
    assert!(v.ok, "{v:?}");
    assert_eq!(
        v.out["supportedVersions"],
        json!(["0.3.1", "0.4.0", "1.0.0"])
    );

    let mut bad = conf.clone();
    bad["ipam"]["subnet"] = json!("10.66.0.0");
    let o = invoke(&node, "ADD", &sb, &bad)?;
    assert_eq!(o.code(), Some(7), "{o:?}");
    assert!(o.out["msg"].as_str().unwrap_or("").contains("ipam.subnet"));

    let mut old = conf.clone();
    old["cniVersion"] = json!("0.1.0");
    assert_eq!(invoke(&node, "ADD", &sb, &old)?.code(), Some(1));

    let mut no_pod = sb.clone();
    no_pod.args = "IgnoreUnknown=1".to_string();
    let o = invoke(&node, "ADD", &no_pod, &conf)?;
    assert_eq!(o.code(), Some(4), "{o:?}");
    assert!(o.out["msg"].as_str().unwrap_or("").contains("CNI_ARGS"));

    let mut gone = sb.clone();
    gone.netns = "/run/netns/no-such-namespace-here".to_string();
    assert_eq!(invoke(&node, "ADD", &gone, &conf)?.code(), Some(3));

    // xvsd is not running: the veth and the address were done and are undone.
    let o = invoke(&node, "ADD", &sb, &conf)?;
    assert_eq!(o.code(), Some(11), "{o:?}");
    assert!(o.out["msg"]
        .as_str()
        .unwrap_or("")
        .contains("not reachable"));
    assert_eq!(host_links(&node)?, Vec::<String>::new(), "no veth left");
    assert!(!pod.has_link("eth0"), "no Pod end left");
    assert_eq!(
        allocated(dir.path()),
        Vec::<String>::new(),
        "no address left"
    );
    assert_eq!(records(dir.path()), Vec::<String>::new(), "no record left");
    // A retry gets the same first address (nothing leaked).
    let o = invoke(&node, "ADD", &sb, &conf)?;
    assert_eq!(o.code(), Some(11));
    assert_eq!(allocated(dir.path()), Vec::<String>::new());

    // DEL of something that was never added, and CHECK without prevResult.
    let o = invoke(&node, "DEL", &sb, &conf)?;
    assert!(o.ok, "DEL is idempotent: {o:?}");
    assert_eq!(invoke(&node, "CHECK", &sb, &conf)?.code(), Some(7));
    Ok(())
}

#[test]
fn cni_add_check_del_against_xvsd() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let tag = unique_tag("ca");
    let node = Netns::new(&format!("{tag}n"))?;
    let pod = Netns::new(&format!("{tag}p"))?;
    let x = Xvsd::start(&node, CONFIG)?;
    let dir = tempfile::tempdir()?;
    let conf = netconf(&x.run_dir(), dir.path(), "10.66.0.0/24");
    let sb = Sandbox::new(&pod, &format!("{tag}ctr"), "default", "web-1");

    let add = invoke(&node, "ADD", &sb, &conf)?;
    assert!(add.ok, "ADD failed: {add:?}\nxvsd: {}", x.stderr());
    let r = &add.out;
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["ips"][0]["address"], "10.66.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.66.0.1");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["interfaces"][1]["mac"], "0a:58:0a:42:00:02");
    assert_eq!(r["interfaces"][1]["sandbox"], sb.netns.as_str());
    assert_eq!(
        r["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "10.66.0.1"})
    );
    let host = r["interfaces"][0]["name"]
        .as_str()
        .context("host name")?
        .to_string();

    // The kernel state ADD claims.
    assert_eq!(host_links(&node)?, vec![host.clone()]);
    let addr = pod.ip(&["-o", "addr", "show", "dev", "eth0"])?;
    assert!(addr.contains("10.66.0.2/24"), "{addr}");
    let route = pod.ip(&["route", "show", "default"])?;
    assert!(route.contains("via 10.66.0.1 dev eth0"), "{route}");
    let link = pod.ip(&["link", "show", "eth0"])?;
    assert!(
        link.contains("0a:58:0a:42:00:02") && link.contains("UP"),
        "{link}"
    );
    // AF_XDP carries no checksum offload metadata: the Pod must send full checksums.
    let features = pod.exec(&["ethtool", "-k", "eth0"])?;
    assert!(
        features.contains("tx-checksum-ip-generic: off"),
        "{features}"
    );
    // The host end is an xvsd port (ovs-appctl and OpenFlow see it) with its XDP program.
    let ports = node.exec(&[
        "ovs-ofctl",
        "-O",
        "OpenFlow15",
        "dump-ports-desc",
        &format!("unix:{}", x.run_dir().join("br-int.mgmt").display()),
    ])?;
    assert!(ports.contains(&host), "{ports}");
    assert!(node.ip(&["link", "show", &host])?.contains("xdp"));
    // The record the agent reads.
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(
        dir.path()
            .join("interfaces")
            .join(format!("{}.json", sb.container_id)),
    )?)?;
    assert_eq!(rec["podNamespace"], "default");
    assert_eq!(rec["podName"], "web-1");
    assert_eq!(rec["hostInterface"], host.as_str());
    assert_eq!(rec["ip"], "10.66.0.2");
    assert!(rec["ofport"].as_u64().is_some_and(|p| p > 0 && p != 100));
    assert_eq!(allocated(dir.path()), vec!["10.66.0.2".to_string()]);

    // CHECK passes, then notices a missing route.
    let check = with_prev(&conf, &add.out);
    let o = invoke(&node, "CHECK", &sb, &check)?;
    assert!(o.ok, "CHECK failed: {o:?}");
    pod.ip(&["route", "del", "default"])?;
    let o = invoke(&node, "CHECK", &sb, &check)?;
    assert_eq!(o.code(), Some(103), "{o:?}");
    pod.ip(&["route", "add", "default", "via", "10.66.0.1"])?;
    assert!(invoke(&node, "CHECK", &sb, &check)?.ok);
    // CHECK asks xvsd itself: a port detached behind the plugin's back is noticed.
    x.appctl(&["xvs/del-port", &host])?;
    let o = invoke(&node, "CHECK", &sb, &check)?;
    assert_eq!(o.code(), Some(103), "{o:?}");
    let ofport = rec["ofport"].as_u64().context("ofport")?.to_string();
    x.appctl(&["xvs/add-port", &host, &format!("ofport={ofport}")])?;
    let o = invoke(&node, "CHECK", &sb, &check)?;
    assert!(o.ok, "re-attached at the same ofport: {o:?}");

    // A second sandbox gets the next address.
    let pod2 = Netns::new(&format!("{tag}q"))?;
    let sb2 = Sandbox::new(&pod2, &format!("{tag}ctr2"), "default", "web-2");
    let add2 = invoke(&node, "ADD", &sb2, &conf)?;
    assert!(add2.ok, "{add2:?}");
    assert_eq!(add2.out["ips"][0]["address"], "10.66.0.3/24");

    // DEL undoes everything, twice is fine.
    for _ in 0..2 {
        let o = invoke(&node, "DEL", &sb, &check)?;
        assert!(o.ok, "DEL failed: {o:?}");
    }
    assert!(!pod.has_link("eth0"));
    assert_eq!(allocated(dir.path()), vec!["10.66.0.3".to_string()]);
    assert_eq!(
        records(dir.path()),
        vec![format!("{}.json", sb2.container_id)]
    );
    let ports = node.exec(&[
        "ovs-ofctl",
        "-O",
        "OpenFlow15",
        "dump-ports-desc",
        &format!("unix:{}", x.run_dir().join("br-int.mgmt").display()),
    ])?;
    assert!(!ports.contains(&host), "detached: {ports}");
    assert_eq!(invoke(&node, "CHECK", &sb, &check)?.code(), Some(103));

    // A port left over under a new sandbox's host-end name (its interface deleted while xvsd
    // kept the port, as after a DEL that could not reach xvsd) is replaced, not an error.
    let pod3 = Netns::new(&format!("{tag}r"))?;
    let sb3 = Sandbox::new(&pod3, &format!("{tag}ctr3"), "default", "web-3");
    let stale = xvs_cni_host_name(&sb3);
    let peer = format!("{tag}s");
    node.ip(&["link", "add", &stale, "type", "veth", "peer", "name", &peer])?;
    node.ip(&["link", "set", &stale, "up"])?;
    node.ip(&["link", "set", &peer, "up"])?;
    x.appctl(&["xvs/add-port", &stale])?;
    node.ip(&["link", "del", &peer])?;
    assert!(!node.has_link(&stale));
    let ports = node.exec(&[
        "ovs-ofctl",
        "-O",
        "OpenFlow15",
        "dump-ports-desc",
        &format!("unix:{}", x.run_dir().join("br-int.mgmt").display()),
    ])?;
    assert!(ports.contains(&stale), "xvsd kept the stale port: {ports}");
    let add3 = invoke(&node, "ADD", &sb3, &conf)?;
    assert!(
        add3.ok,
        "ADD over a stale port: {add3:?}\nxvsd: {}",
        x.stderr()
    );
    let check3 = with_prev(&conf, &add3.out);
    let o = invoke(&node, "CHECK", &sb3, &check3)?;
    assert!(o.ok, "{o:?}");
    assert!(invoke(&node, "DEL", &sb3, &check3)?.ok);

    // A failure after the port was attached (the record cannot be written: the interfaces
    // directory is a file) rolls back the port, the veth and the address.
    let mut broken = conf.clone();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x")?;
    broken["interfacesDir"] = json!(file.display().to_string());
    let o = invoke(&node, "ADD", &sb, &broken)?;
    assert_eq!(o.code(), Some(5), "{o:?}");
    assert_eq!(allocated(dir.path()), vec!["10.66.0.3".to_string()]);
    assert!(!pod.has_link("eth0"));
    let host1 = xvs_cni_host_name(&sb);
    assert!(!node.has_link(&host1), "veth rolled back");
    let ports = node.exec(&[
        "ovs-ofctl",
        "-O",
        "OpenFlow15",
        "dump-ports-desc",
        &format!("unix:{}", x.run_dir().join("br-int.mgmt").display()),
    ])?;
    assert!(!ports.contains(&host1), "port rolled back: {ports}");
    // And the same ADD works once the directory is right.
    let o = invoke(&node, "ADD", &sb, &conf)?;
    assert!(o.ok, "{o:?}");
    assert!(invoke(&node, "DEL", &sb, &conf)?.ok);
    assert!(invoke(&node, "DEL", &sb2, &with_prev(&conf, &add2.out))?.ok);
    assert_eq!(host_links(&node)?, Vec::<String>::new());
    assert_eq!(allocated(dir.path()), Vec::<String>::new());
    drop(x);
    Ok(())
}

/// The host end's name for a sandbox (the plugin's naming rule).
fn xvs_cni_host_name(sb: &Sandbox) -> String {
    xvs_cni::plugin::host_ifname(&sb.container_id, &sb.ifname)
}

#[test]
fn cni_parallel_adds_get_distinct_addresses_and_ports() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    // Kubelet starts several sandboxes at once: separate plugin processes race on the IPAM
    // files (flock) and on xvsd's control socket.
    let tag = unique_tag("cp");
    let node = Netns::new(&format!("{tag}n"))?;
    let x = Xvsd::start(&node, CONFIG)?;
    let dir = tempfile::tempdir()?;
    let conf = netconf(&x.run_dir(), dir.path(), "10.67.0.0/24");
    let mut pods = Vec::new();
    for i in 0..4 {
        let ns = Netns::new(&format!("{tag}{i}"))?;
        let sb = Sandbox::new(&ns, &format!("{tag}c{i}"), "default", &format!("p{i}"));
        pods.push((ns, sb));
    }
    let outcomes: Vec<Result<cni_common::Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(_, sb)| s.spawn(|| invoke(&node, "ADD", sb, &conf)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
            })
            .collect()
    });
    let mut addresses = std::collections::BTreeSet::new();
    let mut ofports = std::collections::BTreeSet::new();
    for (o, (_, sb)) in outcomes.into_iter().zip(&pods) {
        let o = o?;
        assert!(o.ok, "ADD {}: {o:?}\nxvsd: {}", sb.container_id, x.stderr());
        addresses.insert(
            o.out["ips"][0]["address"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(
            dir.path()
                .join("interfaces")
                .join(format!("{}.json", sb.container_id)),
        )?)?;
        ofports.insert(rec["ofport"].as_u64().context("ofport")?);
    }
    assert_eq!(addresses.len(), 4, "{addresses:?}");
    assert_eq!(ofports.len(), 4, "{ofports:?}");
    assert_eq!(allocated(dir.path()).len(), 4);
    for (_, sb) in &pods {
        assert!(invoke(&node, "DEL", sb, &conf)?.ok);
    }
    assert_eq!(host_links(&node)?, Vec::<String>::new());
    assert_eq!(allocated(dir.path()), Vec::<String>::new());
    drop(x);
    Ok(())
}
