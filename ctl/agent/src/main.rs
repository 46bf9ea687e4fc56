//! `xvs-agent`: turns a directory of Kubernetes manifests into Antrea-pipeline flows and keeps
//! them in sync with xvsd over its OpenFlow 1.5 management socket.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xvs_agent::interfaces::{attach, load_records};
use xvs_agent::model::{dir_fingerprint, load_dir, load_dir_keeping, ManifestError, Model};
use xvs_agent::ofconn::{next_round, ConnError, OfConn};
use xvs_agent::pipeline::{desired, Desired, Ids};
use xvs_agent::query;
use xvs_agent::sync::SyncState;

#[derive(Parser, Debug)]
#[command(name = "xvs-agent", about = "Antrea-style agent for xvsd")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Prints the flows and groups the manifests produce (ovs-ofctl syntax), without a switch.
    Flows {
        /// Directory of YAML manifests (the agent config included).
        #[arg(long)]
        manifests: PathBuf,
        /// Round number for the cookies.
        #[arg(long, default_value_t = 1)]
        round: u16,
        /// Directory of interface records written by xvs-cni.
        #[arg(long)]
        interfaces: Option<PathBuf>,
    },
    /// Connects to the switch, installs the flows and keeps them in sync with the directory.
    Run {
        /// Directory of YAML manifests (the agent config included).
        #[arg(long)]
        manifests: PathBuf,
        /// Directory of interface records written by xvs-cni (watched like the manifests).
        #[arg(long)]
        interfaces: Option<PathBuf>,
        /// The switch's management socket (`<run_dir>/<bridge>.mgmt`).
        #[arg(long)]
        socket: PathBuf,
        /// Directory polling interval in milliseconds.
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
        /// Quiet time after a change before it is applied, in milliseconds.
        #[arg(long, default_value_t = 300)]
        debounce_ms: u64,
        /// Exit after the initial sync.
        #[arg(long)]
        once: bool,
        /// Where to answer queries (`xvs-agent get`); default: `xvs-agent.sock` next to the
        /// switch's socket (the run directory).
        #[arg(long)]
        query_socket: Option<PathBuf>,
    },
    /// Lists Pods, Services or NetworkPolicies a running agent realized, each with its flows
    /// and the switch's current packet counts.
    Get {
        /// `pods`, `services` or `netpol`.
        kind: String,
        /// Only this object.
        name: Option<String>,
        /// Only this namespace (default: all namespaces).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// `name` (default) or `effectivePriority` (the order policies are evaluated in).
        #[arg(long)]
        sort_by: Option<String>,
        /// `text` or `json`.
        #[arg(short = 'o', long, default_value = "text")]
        output: String,
        /// The agent's query socket.
        #[arg(long, default_value = "/run/xvs/xvs-agent.sock")]
        query_socket: PathBuf,
    },
}

fn report(errors: &[ManifestError]) {
    for e in errors {
        eprintln!("xvs-agent: bad manifest: {e}");
    }
}

/// Reports the errors not reported last time (a bad file is reported once per bad version).
fn report_new(errors: &[ManifestError], last: &mut Vec<ManifestError>) {
    let fresh: Vec<ManifestError> = errors
        .iter()
        .filter(|e| !last.contains(e))
        .cloned()
        .collect();
    report(&fresh);
    *last = errors.to_vec();
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Flows {
            manifests,
            round,
            interfaces,
        } => {
            let (mut model, errors) =
                load_dir(&manifests).with_context(|| format!("reading {}", manifests.display()))?;
            report(&errors);
            if let Some(dir) = &interfaces {
                attach_interfaces(&mut model, dir);
            }
            let d = desired(&model, &mut Ids::default());
            for (id, g) in &d.groups {
                println!("group_id={id},{g}");
            }
            for (k, b) in &d.flows {
                println!("{}", Desired::flow_line(k, b, round));
            }
            Ok(())
        }
        Cmd::Run {
            manifests,
            interfaces,
            socket,
            poll_ms,
            debounce_ms,
            once,
            query_socket,
        } => {
            let shared = query::Shared::default();
            let qpath = query_socket.unwrap_or_else(|| {
                socket
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(query::SOCKET_NAME)
            });
            if !once {
                let listener =
                    query::bind(&qpath).with_context(|| format!("binding {}", qpath.display()))?;
                let (shared, switch) = (shared.clone(), socket.clone());
                std::thread::spawn(move || query::serve(listener, shared, switch));
            }
            run(
                &manifests,
                interfaces.as_deref(),
                &socket,
                Duration::from_millis(poll_ms.max(10)),
                Duration::from_millis(debounce_ms),
                once,
                &shared,
            )
        }
        Cmd::Get {
            kind,
            name,
            namespace,
            sort_by,
            output,
            query_socket,
        } => {
            let kind = query::Kind::parse(&kind)
                .with_context(|| format!("unknown kind {kind:?} (pods, services, netpol)"))?;
            let q = query::Query {
                kind,
                name,
                namespace,
                sort_by,
            };
            let r = query::request(&query_socket, &q)?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&r)?),
                "text" => print!("{}", query::format(&r)),
                o => anyhow::bail!("unknown output format {o:?} (text, json)"),
            }
            Ok(())
        }
    }
}

/// Completes the model's Pods from xvs-cni's interface records and says what is still missing.
fn attach_interfaces(model: &mut Model, dir: &Path) {
    let (records, errors) = load_records(dir);
    for e in errors {
        eprintln!("xvs-agent: bad interface record: {e}");
    }
    let r = attach(model, &records);
    for (ns, name) in r.waiting {
        eprintln!("xvs-agent: pod {ns}/{name} is waiting for its interface");
    }
    for id in r.unclaimed {
        eprintln!("xvs-agent: interface record {id} has no Pod object yet; kept");
    }
}

/// The manifests' model completed from the interface records (when a directory is given).
fn load_model(
    dir: &Path,
    interfaces: Option<&Path>,
    last_good: &mut BTreeMap<PathBuf, Vec<xvs_agent::model::Object>>,
) -> std::io::Result<(Model, Vec<ManifestError>)> {
    let (mut model, errors) = load_dir_keeping(dir, last_good)?;
    if let Some(i) = interfaces {
        attach_interfaces(&mut model, i);
    }
    Ok((model, errors))
}

type Fingerprint = (
    Option<Vec<(PathBuf, u64, std::time::SystemTime)>>,
    Option<Vec<(PathBuf, u64, std::time::SystemTime)>>,
);

/// Both watched directories' fingerprints: a change of either triggers a sync.
fn fingerprint(dir: &Path, interfaces: Option<&Path>) -> Fingerprint {
    (
        dir_fingerprint(dir).ok(),
        interfaces.and_then(|i| dir_fingerprint(i).ok()),
    )
}

fn sync(
    conn: &mut OfConn,
    state: &mut SyncState,
    model: &Model,
    shared: &query::Shared,
) -> Result<()> {
    let plan = state.plan(model)?;
    if plan.mods.is_empty() {
        publish(shared, state, model);
        return Ok(());
    }
    let n = plan.changes.len();
    conn.apply(&plan.mods)
        .context("bundle refused; nothing of it was applied")?;
    state.committed(plan);
    publish(shared, state, model);
    eprintln!("xvs-agent: committed {n} changes (round {})", state.round);
    Ok(())
}

/// Makes what is installed now visible to queries.
fn publish(shared: &query::Shared, state: &SyncState, model: &Model) {
    let r = query::Realized {
        model: model.clone(),
        installed: state.installed.clone(),
        round: state.round,
    };
    *shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
}

/// Runs sessions until one ends for good: a broken connection is retried (replaying with the
/// next round, as on a restart) after a second.
fn run(
    dir: &Path,
    interfaces: Option<&Path>,
    socket: &Path,
    poll: Duration,
    debounce: Duration,
    once: bool,
    shared: &query::Shared,
) -> Result<()> {
    let mut last_good = BTreeMap::new();
    loop {
        match session(
            dir,
            interfaces,
            socket,
            poll,
            debounce,
            once,
            &mut last_good,
            shared,
        ) {
            Ok(()) => return Ok(()),
            Err(e) if once => return Err(e),
            Err(e) => {
                eprintln!("xvs-agent: {e:#}; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn session(
    dir: &Path,
    interfaces: Option<&Path>,
    socket: &Path,
    poll: Duration,
    debounce: Duration,
    once: bool,
    last_good: &mut BTreeMap<PathBuf, Vec<xvs_agent::model::Object>>,
    shared: &query::Shared,
) -> Result<()> {
    let (model, errors) = load_model(dir, interfaces, last_good)
        .with_context(|| format!("reading {}", dir.display()))?;
    report(&errors);
    let mut reported = errors;
    let mut conn =
        OfConn::connect(socket).with_context(|| format!("connecting {}", socket.display()))?;
    conn.name_tables().context("naming tables")?;
    // Replay: next round, groups wiped (flows are overwritten by ADD), then the previous
    // round's leftovers deleted by cookie.
    let cookies = conn.installed_cookies().context("dumping flows")?;
    let round = next_round(&cookies);
    // The previous round is the highest one found (round 0 is never ours).
    let previous = round.wrapping_sub(1);
    conn.delete_all_groups().context("deleting groups")?;
    let mut state = SyncState::new(round);
    sync(&mut conn, &mut state, &model, shared)?;
    if previous != 0 && previous != round {
        conn.delete_round(previous)
            .with_context(|| format!("deleting round {previous}"))?;
    }
    eprintln!("xvs-agent: in sync, round {round}");
    if once {
        return Ok(());
    }
    let mut seen = fingerprint(dir, interfaces);
    loop {
        conn.idle(poll).context("switch connection")?;
        let now = fingerprint(dir, interfaces);
        if now == seen {
            continue;
        }
        // Debounce: wait until the directory is quiet.
        let mut cur = now;
        loop {
            conn.idle(debounce).context("switch connection")?;
            let again = fingerprint(dir, interfaces);
            if again == cur {
                break;
            }
            cur = again;
        }
        seen = cur;
        match load_model(dir, interfaces, last_good) {
            Err(e) => eprintln!("xvs-agent: reading {}: {e}", dir.display()),
            Ok((model, errors)) => {
                report_new(&errors, &mut reported);
                if let Err(e) = sync(&mut conn, &mut state, &model, shared) {
                    // A refused bundle left nothing applied; a broken socket ends the session.
                    if e.downcast_ref::<ConnError>().is_some_and(|c| {
                        matches!(
                            c,
                            ConnError::Io(_) | ConnError::Closed | ConnError::Decode(_)
                        )
                    }) {
                        return Err(e);
                    }
                    eprintln!("xvs-agent: {e:#}");
                }
            }
        }
    }
}
