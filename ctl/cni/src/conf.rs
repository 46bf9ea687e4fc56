//! What the runtime hands the plugin: `CNI_*` environment variables and the network
//! configuration (netconf) JSON on stdin. Every problem names the variable or field.

use crate::error::{CniError, CniResult, Code};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use xvs_agent::model::Cidr;

/// The CNI versions this plugin speaks (ADD results use the 1.0.0 layout; 0.4.0 and 0.3.1
/// add the `version` field of IP entries).
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.3.1", "0.4.0", "1.0.0"];

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container.
    Del,
    /// Verify an attachment.
    Check,
    /// Report the supported versions.
    Version,
}

/// Pod identity from `CNI_ARGS` (`K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;...`), as kubelet passes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodArgs {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub name: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub infra_container_id: Option<String>,
}

/// The environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (may be empty for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: PodArgs,
}

fn env_err(var: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(Code::InvalidEnvironment, format!("{var}: {msg}"))
}

/// Parses `CNI_COMMAND` alone (VERSION needs nothing else).
pub fn command(get: &dyn Fn(&str) -> Option<String>) -> CniResult<Command> {
    match get("CNI_COMMAND").as_deref() {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("VERSION") => Ok(Command::Version),
        Some(c) => Err(env_err("CNI_COMMAND", format!("unknown command {c:?}"))),
        None => Err(env_err("CNI_COMMAND", "missing")),
    }
}

/// Whether `id` is a valid container id (the spec: alphanumerics, `_`, `.`, `-`, starting
/// with an alphanumeric).
fn valid_container_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `n` is a valid Linux interface name.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// Parses `CNI_ARGS`: `;`-separated `KEY=VALUE` pairs; unknown keys are ignored (kubelet always
/// passes `IgnoreUnknown=1` as well).
pub fn parse_args(s: &str) -> CniResult<PodArgs> {
    let mut a = PodArgs::default();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(env_err("CNI_ARGS", format!("{pair:?} is not KEY=VALUE")));
        };
        match k {
            "K8S_POD_NAMESPACE" => a.namespace = Some(v.to_string()),
            "K8S_POD_NAME" => a.name = Some(v.to_string()),
            "K8S_POD_INFRA_CONTAINER_ID" => a.infra_container_id = Some(v.to_string()),
            _ => {}
        }
    }
    Ok(a)
}

/// Reads the environment of an ADD, DEL or CHECK through `get`.
pub fn env(get: &dyn Fn(&str) -> Option<String>) -> CniResult<Env> {
    let command = command(get)?;
    let container_id =
        get("CNI_CONTAINERID").ok_or_else(|| env_err("CNI_CONTAINERID", "missing"))?;
    if !valid_container_id(&container_id) {
        return Err(env_err(
            "CNI_CONTAINERID",
            format!("{container_id:?} is not a valid container id"),
        ));
    }
    let netns = get("CNI_NETNS")
        .filter(|n| !n.is_empty())
        .map(PathBuf::from);
    if netns.is_none() && command != Command::Del {
        return Err(env_err("CNI_NETNS", "missing"));
    }
    let ifname = get("CNI_IFNAME").ok_or_else(|| env_err("CNI_IFNAME", "missing"))?;
    if !valid_ifname(&ifname) {
        return Err(env_err(
            "CNI_IFNAME",
            format!("{ifname:?} is not a valid interface name"),
        ));
    }
    let args = parse_args(&get("CNI_ARGS").unwrap_or_default())?;
    if command == Command::Add && (args.namespace.is_none() || args.name.is_none()) {
        return Err(env_err(
            "CNI_ARGS",
            "K8S_POD_NAMESPACE and K8S_POD_NAME are needed to tell the agent",
        ));
    }
    Ok(Env {
        command,
        container_id,
        netns,
        ifname,
        args,
    })
}

/// `ipam` of the netconf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    /// The node's Pod CIDR.
    pub subnet: Cidr,
    /// The gateway (default: the subnet's first address).
    pub gateway: Ipv4Addr,
    /// Where the allocation files live.
    pub data_dir: PathBuf,
}

/// The network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub cni_version: String,
    /// `name`.
    pub name: String,
    /// Directory of xvsd's control socket `xvsd.ctl`.
    pub xvsd_run_dir: PathBuf,
    /// xvsd's bridge (its OpenFlow socket is `<xvsdRunDir>/<bridge>.mgmt`); default `br-int`.
    pub bridge: String,
    /// Where interface records go.
    pub interfaces_dir: PathBuf,
    /// IPAM.
    pub ipam: IpamConf,
    /// MTU of both veth ends, if given.
    pub mtu: Option<u32>,
    /// `prevResult` (CHECK and DEL), as given.
    pub prev_result: Option<Value>,
}

fn conf_err(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(Code::InvalidNetworkConfig, format!("{field}: {msg}"))
}

fn str_field<'v>(v: &'v Value, path: &str, key: &str) -> CniResult<&'v str> {
    let field = if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    };
    match v.get(key) {
        None | Some(Value::Null) => Err(conf_err(&field, "missing")),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(conf_err(&field, "empty")),
        Some(_) => Err(conf_err(&field, "not a string")),
    }
}

/// The version the runtime asked for, as far as `stdin` tells (for the error JSON even when
/// the rest is bad).
pub fn requested_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

/// Parses the netconf JSON.
pub fn netconf(stdin: &[u8]) -> CniResult<NetConf> {
    let v: Value = serde_json::from_slice(stdin)
        .map_err(|e| CniError::new(Code::Decode, "netconf is not JSON").details(e))?;
    if !v.is_object() {
        return Err(CniError::new(Code::Decode, "netconf is not a JSON object"));
    }
    let cni_version = str_field(&v, "", "cniVersion")?.to_string();
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!("cniVersion {cni_version:?} is not supported"),
        )
        .details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
    }
    let name = str_field(&v, "", "name")?.to_string();
    // The name is a directory of the IPAM data dir.
    if name == "." || name == ".." || name.contains('/') {
        return Err(conf_err(
            "name",
            format!("{name:?} is not a valid network name"),
        ));
    }
    str_field(&v, "", "type")?;
    let xvsd_run_dir = PathBuf::from(str_field(&v, "", "xvsdRunDir")?);
    let interfaces_dir = PathBuf::from(str_field(&v, "", "interfacesDir")?);
    let bridge = match v.get("bridge") {
        None | Some(Value::Null) => "br-int".to_string(),
        Some(_) => str_field(&v, "", "bridge")?.to_string(),
    };
    if bridge.contains('/') {
        return Err(conf_err(
            "bridge",
            format!("{bridge:?} is not a bridge name"),
        ));
    }
    let ipam = v
        .get("ipam")
        .filter(|i| !i.is_null())
        .ok_or_else(|| conf_err("ipam", "missing"))?;
    if !ipam.is_object() {
        return Err(conf_err("ipam", "not an object"));
    }
    let subnet_text = str_field(ipam, "ipam", "subnet")?;
    let subnet = Cidr::parse(subnet_text)
        .filter(|c| subnet_text.contains('/') && c.len <= 30)
        .ok_or_else(|| {
            conf_err(
                "ipam.subnet",
                format!("{subnet_text:?} is not an IPv4 CIDR with room for Pods (/30 or wider)"),
            )
        })?;
    let gateway = match ipam.get("gateway") {
        None | Some(Value::Null) => Ipv4Addr::from(u32::from(subnet.addr) + 1),
        Some(_) => {
            let g = str_field(ipam, "ipam", "gateway")?;
            let g: Ipv4Addr = g
                .parse()
                .map_err(|_| conf_err("ipam.gateway", format!("{g:?} is not an IPv4 address")))?;
            if !subnet.contains(g) {
                return Err(conf_err(
                    "ipam.gateway",
                    format!("{g} is outside {subnet_text}"),
                ));
            }
            g
        }
    };
    let data_dir = PathBuf::from(str_field(ipam, "ipam", "dataDir")?);
    let mtu = match v.get("mtu") {
        None | Some(Value::Null) => None,
        Some(m) => Some(
            m.as_u64()
                .filter(|m| (68..=65535).contains(m))
                .map(|m| m as u32)
                .ok_or_else(|| conf_err("mtu", "not a number in 68..=65535"))?,
        ),
    };
    Ok(NetConf {
        cni_version,
        name,
        xvsd_run_dir,
        bridge,
        interfaces_dir,
        ipam: IpamConf {
            subnet,
            gateway,
            data_dir,
        },
        mtu,
        prev_result: v.get("prevResult").filter(|p| !p.is_null()).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const CONF: &str = r#"{
        "cniVersion": "1.0.0", "name": "xvs", "type": "xvs-cni",
        "xvsdRunDir": "/run/xvs", "interfacesDir": "/var/lib/xvs/interfaces",
        "ipam": {"subnet": "10.10.0.0/24", "dataDir": "/var/lib/xvs/ipam"}
    }"#;

    fn with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(CONF).expect("json");
        f(&mut v);
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn a_good_netconf_parses_with_defaults() {
        let c = netconf(CONF.as_bytes()).expect("parses");
        assert_eq!(c.name, "xvs");
        assert_eq!(c.bridge, "br-int");
        assert_eq!(c.ipam.subnet, Cidr::parse("10.10.0.0/24").expect("cidr"));
        assert_eq!(c.ipam.gateway, Ipv4Addr::new(10, 10, 0, 1));
        assert_eq!(c.mtu, None);
        assert_eq!(c.prev_result, None);
        let c = netconf(&with(|v| {
            v["ipam"]["gateway"] = "10.10.0.254".into();
            v["mtu"] = 1450.into();
            v["prevResult"] = serde_json::json!({"cniVersion": "1.0.0"});
        }))
        .expect("parses");
        assert_eq!(c.ipam.gateway, Ipv4Addr::new(10, 10, 0, 254));
        assert_eq!(c.mtu, Some(1450));
        assert!(c.prev_result.is_some());
    }

    #[test]
    fn bad_netconf_names_the_field() {
        let cases: Vec<(Vec<u8>, Code, &str)> = vec![
            (b"{".to_vec(), Code::Decode, "not JSON"),
            (b"[]".to_vec(), Code::Decode, "not a JSON object"),
            (
                with(|v| v["cniVersion"] = "0.2.0".into()),
                Code::IncompatibleVersion,
                "cniVersion",
            ),
            (
                with(|v| v["name"] = Value::Null),
                Code::InvalidNetworkConfig,
                "name: missing",
            ),
            (
                with(|v| v["name"] = "../etc".into()),
                Code::InvalidNetworkConfig,
                "name: \"../etc\"",
            ),
            (
                with(|v| v["type"] = 3.into()),
                Code::InvalidNetworkConfig,
                "type: not a string",
            ),
            (
                with(|v| v["xvsdRunDir"] = "".into()),
                Code::InvalidNetworkConfig,
                "xvsdRunDir: empty",
            ),
            (
                with(|v| v["interfacesDir"] = Value::Null),
                Code::InvalidNetworkConfig,
                "interfacesDir",
            ),
            (
                with(|v| v["ipam"] = Value::Null),
                Code::InvalidNetworkConfig,
                "ipam: missing",
            ),
            (
                with(|v| v["ipam"]["subnet"] = "10.0.0.1".into()),
                Code::InvalidNetworkConfig,
                "ipam.subnet",
            ),
            (
                with(|v| v["ipam"]["subnet"] = "10.0.0.0/31".into()),
                Code::InvalidNetworkConfig,
                "ipam.subnet",
            ),
            (
                with(|v| v["ipam"]["gateway"] = "10.11.0.1".into()),
                Code::InvalidNetworkConfig,
                "ipam.gateway: 10.11.0.1 is outside",
            ),
            (
                with(|v| v["ipam"]["gateway"] = "x".into()),
                Code::InvalidNetworkConfig,
                "ipam.gateway",
            ),
            (
                with(|v| v["ipam"]["dataDir"] = Value::Null),
                Code::InvalidNetworkConfig,
                "ipam.dataDir: missing",
            ),
            (
                with(|v| v["mtu"] = 20.into()),
                Code::InvalidNetworkConfig,
                "mtu",
            ),
            (
                with(|v| v["mtu"] = "1500".into()),
                Code::InvalidNetworkConfig,
                "mtu",
            ),
        ];
        for (input, code, text) in cases {
            let e = netconf(&input).expect_err("must fail");
            assert_eq!(e.code, code, "{e}");
            assert!(e.to_string().contains(text), "{e} should mention {text}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/p1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=abc123",
        ),
    ];

    #[test]
    fn the_kubelet_environment_parses() {
        let e = env(&vars(&ADD)).expect("parses");
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "abc123");
        assert_eq!(e.netns, Some(PathBuf::from("/var/run/netns/p1")));
        assert_eq!(e.ifname, "eth0");
        assert_eq!(e.args.namespace.as_deref(), Some("default"));
        assert_eq!(e.args.name.as_deref(), Some("web-1"));
        assert_eq!(e.args.infra_container_id.as_deref(), Some("abc123"));
        // DEL may come without a netns and without pod args.
        let mut del: Vec<(&str, &str)> = ADD.to_vec();
        del[0].1 = "DEL";
        del[2].1 = "";
        del[4].1 = "";
        let e = env(&vars(&del)).expect("parses");
        assert_eq!((e.command, e.netns), (Command::Del, None));
    }

    #[test]
    fn a_bad_environment_names_the_variable() {
        let cases: Vec<(usize, &str, &str)> = vec![
            (0, "PUT", "CNI_COMMAND: unknown"),
            (1, "", "CNI_CONTAINERID"),
            (1, "a/b", "CNI_CONTAINERID"),
            (2, "", "CNI_NETNS: missing"),
            (3, "averyveryverylongname", "CNI_IFNAME"),
            (3, "a:b", "CNI_IFNAME"),
            (4, "K8S_POD_NAME=x", "CNI_ARGS: K8S_POD_NAMESPACE"),
            (4, "garbage", "CNI_ARGS: \"garbage\""),
        ];
        for (i, value, text) in cases {
            let mut v: Vec<(&str, &str)> = ADD.to_vec();
            v[i].1 = value;
            let e = env(&vars(&v)).expect_err("must fail");
            assert_eq!(e.code, Code::InvalidEnvironment);
            assert!(e.to_string().contains(text), "{e} should mention {text}");
        }
        let e = env(&vars(&ADD[1..])).expect_err("no command");
        assert!(e.to_string().contains("CNI_COMMAND: missing"));
    }
}
