//! Running `xvs-cni` as a container runtime does: `CNI_*` variables, the netconf on stdin,
//! inside the node namespace (where xvsd runs and the host ends of the veths live).

#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use xvs_integration::Netns;

/// Finds the `xvs-cni` binary: `$XVS_CNI_BIN`, else in the test executable's target directory.
pub fn cni_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("XVS_CNI_BIN") {
        return Ok(PathBuf::from(p));
    }
    let bin = target_dir()?.join("xvs-cni");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p xvs-cni`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `target/<profile>` of the running test (`target/<profile>/deps/<test>`).
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("locating the target directory")
}

/// What one invocation printed.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status 0.
    pub ok: bool,
    /// stdout as JSON (`Null` when empty).
    pub out: Value,
    /// stderr.
    pub err: String,
}

impl Outcome {
    /// The error code, when the plugin failed with the error JSON.
    pub fn code(&self) -> Option<u64> {
        (!self.ok).then(|| self.out["code"].as_u64()).flatten()
    }
}

/// One Pod sandbox as the runtime knows it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
}

impl Sandbox {
    /// The sandbox of Pod `namespace/name` in namespace `ns`, interface `eth0`.
    pub fn new(ns: &Netns, container_id: &str, namespace: &str, name: &str) -> Self {
        Self {
            container_id: container_id.to_string(),
            netns: format!("/run/netns/{}", ns.name()),
            ifname: "eth0".to_string(),
            args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={container_id}"
            ),
        }
    }
}

/// The netconf the tests use; `dir` holds the interface records and the IPAM files.
pub fn netconf(run_dir: &Path, dir: &Path, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "xvs-test",
        "type": "xvs-cni",
        "xvsdRunDir": run_dir.display().to_string(),
        "interfacesDir": dir.join("interfaces").display().to_string(),
        "ipam": {"subnet": subnet, "dataDir": dir.join("ipam").display().to_string()},
    })
}

/// Runs `xvs-cni` in `node` with `command` for `sb` and `conf` on stdin.
pub fn invoke(node: &Netns, command: &str, sb: &Sandbox, conf: &Value) -> Result<Outcome> {
    let mut child = node
        .command(&cni_binary()?)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &sb.container_id)
        .env("CNI_NETNS", &sb.netns)
        .env("CNI_IFNAME", &sb.ifname)
        .env("CNI_PATH", "/opt/cni/bin")
        .env("CNI_ARGS", &sb.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting xvs-cni")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("xvs-cni printed {text:?}"))?
    };
    Ok(Outcome {
        ok: out.status.success(),
        out: json,
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `conf` with the ADD result as `prevResult` (what the runtime sends to CHECK and DEL).
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The `xvs*` links of `node` (host ends of Pod veths).
pub fn host_links(node: &Netns) -> Result<Vec<String>> {
    let out = node.ip(&["-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("xvs"))
        .collect())
}

/// The allocated addresses in the IPAM directory of [`netconf`].
pub fn allocated(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("ipam/xvs-test"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The interface record files.
pub fn records(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("interfaces"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
