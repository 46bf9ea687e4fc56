//! xvs-agent fed by a Kubernetes API server instead of manifests: a replay of recorded watch
//! streams (`ctl/agent/tests/data/apiserver/node`, served by the agent tests' replay server)
//! inside the node namespace, the agent reading it through a kubeconfig with a bearer token
//! and programming a real xvsd whose three pod namespaces sit on AF_XDP veths. Pods ping each
//! other; a policy that does not parse is reported and changes nothing; a NetworkPolicy ADDED
//! event on the watch isolates one pod; its DELETED event lifts it.

#[path = "../../ctl/agent/tests/support/replay.rs"]
mod replay;

use anyhow::{bail, Context, Result};
use replay::Replay;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xvs_integration::{example_pods, is_root, xvsd_binary, Netns, Xvsd};

const TOKEN: &str = "replay-token-node-1";

const CONFIG: &str = r#"
bridge = "br-int"
run_dir = "@RUN@"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100

[conntrack]
max_connections = 100000

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2

[[port]]
name = "pc0"
type = "afxdp"
ofport = 3
"#;

/// The only manifest: the agent's own config; the cluster comes from the API server.
const AGENT_CONFIG: &str = r#"kind: AgentConfig
spec:
  nodeName: node-1
  tunnelType: noEncap
  gateway: {name: antrea-gw0, ip: 10.10.0.1, mac: "aa:bb:cc:dd:ee:01"}
"#;

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ctl/agent/tests/data/apiserver/node")
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Waits until the log contains `needle` `count` times.
    fn wait_log(&self, needle: &str, count: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log().matches(needle).count() >= count {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("agent log lacks {count}x {needle:?}:\n{}", self.log())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One echo request answered within a second (three tries, the first may meet a cold cache).
fn pings(from: &Netns, to: &str) -> bool {
    (0..3).any(|_| from.exec(&["ping", "-c", "1", "-W", "1", to]).is_ok())
}

#[test]
fn agent_fed_by_an_api_server_replay_programs_xvsd() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let agent_bin = xvsd_binary()?.with_file_name("xvs-agent");
    if !agent_bin.exists() {
        bail!(
            "{} not found: `cargo build -p xvs-agent`",
            agent_bin.display()
        );
    }
    let (node, pods) = example_pods("ka")?;
    let x = Xvsd::start(&node, CONFIG)?;
    let dir = x.run_dir().join("manifests");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("00-agent.yaml"), AGENT_CONFIG)?;

    // The API server listens on the node namespace's loopback; the agent runs there too.
    let listener = node.run(|| TcpListener::bind("127.0.0.1:0"))??;
    let server = Replay::start_on(listener, &scenario(), Some(TOKEN))?;
    let kubeconfig = x.run_dir().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let log = x.run_dir().join("agent.log");
    let child = node
        .command(&agent_bin)
        .args([
            "run",
            "--poll-ms",
            "50",
            "--debounce-ms",
            "100",
            "--manifests",
        ])
        .arg(&dir)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--socket")
        .arg(x.run_dir().join("br-int.mgmt"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting xvs-agent")?;
    let agent = Agent { child, log };
    agent.wait_log("in sync, round 1", 1)?;
    let (a, b, c) = (&pods[0].ns, pods[1].ip, pods[2].ip);

    assert!(pings(a, b), "a -> b before any policy:\n{}", agent.log());
    assert!(pings(a, c), "a -> c before any policy");

    // A policy that does not parse is reported by kind, name and field; nothing changes.
    let events = scenario().join("events");
    server.publish_file(
        "networkpolicies",
        &events.join("networkpolicies-add-broken.jsonl"),
    )?;
    agent.wait_log(
        "bad object: NetworkPolicy default/broken: spec.ingress[0].from[0].ipBlock.cidr",
        1,
    )?;
    assert!(pings(a, b), "a -> b despite the broken policy");

    // A NetworkPolicy ADDED on the watch: b is isolated for ingress, c is not.
    server.publish_file(
        "networkpolicies",
        &events.join("networkpolicies-add-isolate-b.jsonl"),
    )?;
    agent.wait_log("committed", 2)?;
    assert!(
        !pings(a, b),
        "a -> b blocked by isolate-b:\n{}",
        agent.log()
    );
    assert!(pings(a, c), "a -> c unaffected");

    // Its DELETED event lifts the isolation.
    server.publish_file(
        "networkpolicies",
        &events.join("networkpolicies-delete-isolate-b.jsonl"),
    )?;
    agent.wait_log("committed", 3)?;
    assert!(pings(a, b), "a -> b after the policy's deletion");
    assert!(server.published_all());

    // The agent listed and watched every kind, this node's Pods only, with the token.
    let req = server.requests();
    for (resource, path) in replay::RESOURCES {
        assert!(
            req.iter().any(|r| r.starts_with(&format!("GET {path}?"))),
            "{resource} not requested: {req:?}"
        );
    }
    assert!(req
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?"))
        .all(|r| r.contains("fieldSelector=spec.nodeName=node-1")));
    let log = agent.log();
    assert_eq!(log.matches("bad object").count(), 1, "{log}");
    assert_eq!(
        log.matches("committed").count(),
        3,
        "the broken policy committed nothing"
    );
    assert!(!log.contains("watching"), "no watch failed: {log}");
    eprintln!("agent log:\n{log}");
    drop(agent);
    drop(server);
    drop(x);
    Ok(())
}
