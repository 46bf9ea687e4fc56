//! `xvs-agent`: turns a directory of Kubernetes manifests into Antrea-pipeline flows and keeps
//! them in sync with xvsd over its OpenFlow 1.5 management socket.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xvs_agent::anp::load_dir_admitted;
use xvs_agent::model::{dir_fingerprint, load_dir, ManifestError, Model};
use xvs_agent::ofconn::{next_round, ConnError, OfConn};
use xvs_agent::pipeline::{desired, Desired, Ids};
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
    },
    /// Connects to the switch, installs the flows and keeps them in sync with the directory.
    Run {
        /// Directory of YAML manifests (the agent config included).
        #[arg(long)]
        manifests: PathBuf,
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
        Cmd::Flows { manifests, round } => {
            let (mut model, mut errors) =
                load_dir(&manifests).with_context(|| format!("reading {}", manifests.display()))?;
            errors.extend(xvs_agent::anp::admission::admit(
                &mut model,
                &xvs_agent::anp::AnpObjects::default(),
            ));
            report(&errors);
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
            socket,
            poll_ms,
            debounce_ms,
            once,
        } => run(
            &manifests,
            &socket,
            Duration::from_millis(poll_ms.max(10)),
            Duration::from_millis(debounce_ms),
            once,
        ),
    }
}

fn sync(conn: &mut OfConn, state: &mut SyncState, model: &Model) -> Result<()> {
    let plan = state.plan(model)?;
    if plan.mods.is_empty() {
        return Ok(());
    }
    let n = plan.changes.len();
    conn.apply(&plan.mods)
        .context("bundle refused; nothing of it was applied")?;
    state.committed(plan);
    eprintln!("xvs-agent: committed {n} changes (round {})", state.round);
    Ok(())
}

/// Runs sessions until one ends for good: a broken connection is retried (replaying with the
/// next round, as on a restart) after a second.
fn run(dir: &Path, socket: &Path, poll: Duration, debounce: Duration, once: bool) -> Result<()> {
    let mut last_good = BTreeMap::new();
    let mut admitted = xvs_agent::anp::AnpObjects::default();
    loop {
        match session(
            dir,
            socket,
            poll,
            debounce,
            once,
            &mut last_good,
            &mut admitted,
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

fn session(
    dir: &Path,
    socket: &Path,
    poll: Duration,
    debounce: Duration,
    once: bool,
    last_good: &mut BTreeMap<PathBuf, Vec<xvs_agent::model::Object>>,
    admitted: &mut xvs_agent::anp::AnpObjects,
) -> Result<()> {
    let (model, errors) = load_dir_admitted(dir, last_good, admitted)
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
    sync(&mut conn, &mut state, &model)?;
    if previous != 0 && previous != round {
        conn.delete_round(previous)
            .with_context(|| format!("deleting round {previous}"))?;
    }
    eprintln!("xvs-agent: in sync, round {round}");
    if once {
        return Ok(());
    }
    let mut seen = dir_fingerprint(dir).ok();
    loop {
        conn.idle(poll).context("switch connection")?;
        let now = dir_fingerprint(dir).ok();
        if now == seen {
            continue;
        }
        // Debounce: wait until the directory is quiet.
        let mut cur = now;
        loop {
            conn.idle(debounce).context("switch connection")?;
            let again = dir_fingerprint(dir).ok();
            if again == cur {
                break;
            }
            cur = again;
        }
        seen = cur;
        match load_dir_admitted(dir, last_good, admitted) {
            Err(e) => eprintln!("xvs-agent: reading {}: {e}", dir.display()),
            Ok((model, errors)) => {
                report_new(&errors, &mut reported);
                if let Err(e) = sync(&mut conn, &mut state, &model) {
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
