//! The CNI result of ADD (and the `prevResult` CHECK compares against).

use crate::conf::SUPPORTED_VERSIONS;
use crate::error::{CniError, CniResult, Code};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// What ADD set up for one Pod interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// The host end of the veth.
    pub host_ifname: String,
    /// Its MAC.
    pub host_mac: String,
    /// The Pod end (`CNI_IFNAME`).
    pub ifname: String,
    /// Its MAC.
    pub mac: String,
    /// The sandbox namespace path.
    pub sandbox: String,
    /// The Pod address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The gateway (next hop of the default route).
    pub gateway: Ipv4Addr,
}

impl PodNetwork {
    /// The result JSON in the layout of `cni_version`: the host interface (index 0), the Pod
    /// interface (index 1, with its sandbox), the address on the Pod interface and the default
    /// route via the gateway.
    pub fn to_result(&self, cni_version: &str) -> Value {
        let mut ip = json!({
            "address": format!("{}/{}", self.ip, self.prefix_len),
            "gateway": self.gateway.to_string(),
            "interface": 1,
        });
        // Before 1.0.0, IP entries named their family.
        if cni_version != "1.0.0" {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": cni_version,
            "interfaces": [
                {"name": self.host_ifname, "mac": self.host_mac},
                {"name": self.ifname, "mac": self.mac, "sandbox": self.sandbox},
            ],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": self.gateway.to_string()}],
            "dns": {},
        })
    }
}

/// What CHECK needs from a `prevResult`: the Pod interface (name, MAC, sandbox), its address
/// and prefix, and the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The Pod interface name.
    pub ifname: String,
    /// Its MAC, if the result names one.
    pub mac: Option<String>,
    /// The address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default route's next hop, if any.
    pub gateway: Option<Ipv4Addr>,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::new(
        Code::InvalidNetworkConfig,
        format!("prevResult: {}", msg.into()),
    )
}

/// Reads the parts of a `prevResult` that belong to `ifname` in `sandbox`.
pub fn expected(prev: &Value, ifname: &str, sandbox: &str) -> CniResult<Expected> {
    let interfaces = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("interfaces: missing"))?;
    let idx = interfaces
        .iter()
        .position(|i| {
            i.get("name").and_then(Value::as_str) == Some(ifname)
                && i.get("sandbox").and_then(Value::as_str) == Some(sandbox)
        })
        .ok_or_else(|| bad(format!("no interface {ifname} in sandbox {sandbox}")))?;
    let mac = interfaces[idx]
        .get("mac")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ips = prev
        .get("ips")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("ips: missing"))?;
    let entry = ips
        .iter()
        .find(|e| e.get("interface").and_then(Value::as_u64) == Some(idx as u64))
        .ok_or_else(|| bad(format!("no address for interface {idx}")))?;
    let addr = entry
        .get("address")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("ips[].address: missing"))?;
    let (ip, len) = addr
        .split_once('/')
        .and_then(|(a, l)| Some((a.parse::<Ipv4Addr>().ok()?, l.parse::<u8>().ok()?)))
        .filter(|(_, l)| *l <= 32)
        .ok_or_else(|| bad(format!("ips[].address: {addr:?} is not an IPv4 CIDR")))?;
    let gateway = prev
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| r.get("dst").and_then(Value::as_str) == Some("0.0.0.0/0"))
        .and_then(|r| r.get("gw").and_then(Value::as_str))
        .and_then(|g| g.parse().ok());
    Ok(Expected {
        ifname: ifname.to_string(),
        mac,
        ip,
        prefix_len: len,
        gateway,
    })
}

/// The answer to VERSION.
pub fn version_result(cni_version: &str) -> Value {
    json!({"cniVersion": cni_version, "supportedVersions": SUPPORTED_VERSIONS})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> PodNetwork {
        PodNetwork {
            host_ifname: "xvs0123456789ab".to_string(),
            host_mac: "9a:00:00:00:00:01".to_string(),
            ifname: "eth0".to_string(),
            mac: "0a:58:0a:01:00:05".to_string(),
            sandbox: "/var/run/netns/blue".to_string(),
            ip: Ipv4Addr::new(10, 1, 0, 5),
            prefix_len: 16,
            gateway: Ipv4Addr::new(10, 1, 0, 1),
        }
    }

    /// The 1.0.0 result of the spec's ADD example ("Add: attach a container to the network"),
    /// reduced to one address family.
    const SPEC_EXAMPLE: &str = r#"{
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "xvs0123456789ab", "mac": "9a:00:00:00:00:01"},
            {"name": "eth0", "mac": "0a:58:0a:01:00:05", "sandbox": "/var/run/netns/blue"}
        ],
        "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {}
    }"#;

    #[test]
    fn the_result_has_the_spec_layout() {
        let want: Value = serde_json::from_str(SPEC_EXAMPLE).expect("json");
        assert_eq!(net().to_result("1.0.0"), want);
        let old = net().to_result("0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["cniVersion"], "0.4.0");
    }

    #[test]
    fn check_reads_back_what_add_printed() {
        let prev = net().to_result("1.0.0");
        let e = expected(&prev, "eth0", "/var/run/netns/blue").expect("parses");
        assert_eq!(
            e,
            Expected {
                ifname: "eth0".to_string(),
                mac: Some("0a:58:0a:01:00:05".to_string()),
                ip: Ipv4Addr::new(10, 1, 0, 5),
                prefix_len: 16,
                gateway: Some(Ipv4Addr::new(10, 1, 0, 1)),
            }
        );
        let e = expected(&prev, "eth1", "/var/run/netns/blue").expect_err("no eth1");
        assert!(e.to_string().contains("no interface eth1"));
        let e = expected(&prev, "eth0", "/other").expect_err("other sandbox");
        assert!(e.to_string().contains("sandbox"));
        let mut broken = prev.clone();
        broken["ips"][0]["address"] = json!("10.1.0.5");
        assert!(expected(&broken, "eth0", "/var/run/netns/blue")
            .expect_err("bad address")
            .to_string()
            .contains("not an IPv4 CIDR"));
        assert!(expected(&json!({}), "eth0", "/x").is_err());
    }

    #[test]
    fn version_lists_what_we_speak() {
        let v = version_result("1.0.0");
        assert_eq!(v["supportedVersions"], json!(["0.3.1", "0.4.0", "1.0.0"]));
    }
}
