//! `xvs-agent`: turns a directory of Kubernetes manifests and/or a live API server's objects
//! into Antrea-pipeline flows and keeps them in sync with xvsd over its OpenFlow 1.5
//! management socket.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xvs_agent::anp::audit::{record, timestamp, Deduper};
use xvs_agent::anp::flows::{packet_in_meter, AGENT_CONTROLLER_ID, DEFAULT_PACKET_IN_RATE};
use xvs_agent::anp::fqdn::{dns_meter, Fqdn, Verdict, CATEGORY_DNS};
use xvs_agent::anp::reject::RejectCounters;
use xvs_agent::anp::AnpObjects;
use xvs_agent::apiserver::ApiObjects;
use xvs_agent::apiwatch::{ApiAccess, ApiFeed, ApiOptions};
use xvs_agent::interfaces::{attach, load_records};
use xvs_agent::manifest_dir::ManifestDir;
use xvs_agent::model::{dir_fingerprint, load_dir, ManifestError, Model};
use xvs_agent::np_log::{NpLog, Rotation};
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
    /// Connects to the switch, installs the flows and keeps them in sync with the directory
    /// and/or the API server.
    Run {
        /// Directory of YAML manifests (the agent config included); with an API server, the
        /// agent config and anything extra.
        #[arg(long, required_unless_present_any = ["kubeconfig", "apiserver", "in_cluster"])]
        manifests: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
        /// Directory of interface records written by xvs-cni (watched like the manifests).
        #[arg(long)]
        interfaces: Option<PathBuf>,
        /// The switch's management socket (`<run_dir>/<bridge>.mgmt`).
        #[arg(long)]
        socket: PathBuf,
        /// Polling interval (directory, API updates) in milliseconds.
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
        /// Where rules with `enableLogging` write their lines (Antrea's np.log format);
        /// default: not written.
        #[arg(long)]
        np_log: Option<PathBuf>,
        /// Packet-ins per second the switch sends for logging and Reject (meter 256, burst
        /// twice the rate); beyond it, lines and reject answers are dropped.
        #[arg(long, default_value_t = DEFAULT_PACKET_IN_RATE)]
        packet_in_rate: u32,
        /// np.log is rotated before it would grow past this many megabytes (Antrea's
        /// `auditLogging.maxSize`).
        #[arg(long, default_value_t = 500)]
        np_log_max_size: u64,
        /// Rotated np.log files kept, newest first; 0 keeps all (`auditLogging.maxBackups`).
        #[arg(long, default_value_t = 3)]
        np_log_max_backups: usize,
        /// Rotated np.log files older than this many days are removed; 0 keeps them
        /// (`auditLogging.maxAge`).
        #[arg(long, default_value_t = 28)]
        np_log_max_age: u64,
        /// Whether rotated np.log files are gzipped (`auditLogging.compress`).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        np_log_compress: bool,
        /// Re-read and parse every manifest file on each change instead of only the changed
        /// ones (the behaviour before the incremental reader; kept for benchmarks).
        #[arg(long)]
        full_reload: bool,
        /// Seconds every DNS TTL learned for FQDN rules is raised to (Antrea's
        /// `fqdnCacheMinTTL`), for applications that cache answers longer than their TTL.
        #[arg(long, default_value_t = 0)]
        fqdn_min_ttl: u32,
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

/// The live API server source (watched alongside, or instead of, the manifest directory).
#[derive(Args, Debug)]
struct ApiArgs {
    /// Watch the API server of this kubeconfig's current context.
    #[arg(long, conflicts_with_all = ["apiserver", "in_cluster"])]
    kubeconfig: Option<PathBuf>,
    /// Watch the API server at this URL.
    #[arg(long, conflicts_with = "in_cluster")]
    apiserver: Option<String>,
    /// Bearer token file for --apiserver.
    #[arg(long, requires = "apiserver")]
    token_file: Option<PathBuf>,
    /// CA bundle (PEM) for --apiserver.
    #[arg(long, requires = "apiserver")]
    ca_file: Option<PathBuf>,
    /// Use the Pod's service account (when running as a DaemonSet).
    #[arg(long)]
    in_cluster: bool,
    /// Re-list everything from the API server this often, in seconds (0: never).
    #[arg(long, default_value_t = 600)]
    resync_s: u64,
}

impl ApiArgs {
    fn access(&self) -> Option<ApiAccess> {
        if let Some(k) = &self.kubeconfig {
            Some(ApiAccess::Kubeconfig(k.clone()))
        } else if let Some(url) = &self.apiserver {
            Some(ApiAccess::Url {
                url: url.clone(),
                token_file: self.token_file.clone(),
                ca_file: self.ca_file.clone(),
            })
        } else {
            self.in_cluster.then_some(ApiAccess::InCluster)
        }
    }
}

fn report(errors: &[ManifestError], what: &str) {
    for e in errors {
        eprintln!("xvs-agent: bad {what}: {e}");
    }
}

/// Reports the errors not reported last time (a bad file is reported once per bad version).
fn report_new(errors: &[ManifestError], last: &mut Vec<ManifestError>, what: &str) {
    let fresh: Vec<ManifestError> = errors
        .iter()
        .filter(|e| !last.contains(e))
        .cloned()
        .collect();
    report(&fresh, what);
    *last = errors.to_vec();
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Flows {
            manifests,
            round,
            interfaces,
        } => {
            let (mut model, mut errors) =
                load_dir(&manifests).with_context(|| format!("reading {}", manifests.display()))?;
            errors.extend(xvs_agent::anp::admission::admit(
                &mut model,
                &AnpObjects::default(),
            ));
            report(&errors, "manifest");
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
            api,
            interfaces,
            socket,
            poll_ms,
            debounce_ms,
            once,
            query_socket,
            np_log,
            packet_in_rate,
            np_log_max_size,
            np_log_max_backups,
            np_log_max_age,
            np_log_compress,
            full_reload,
            fqdn_min_ttl,
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
            let mut inputs = Inputs::new(manifests, interfaces, &api)?;
            inputs.manifests.set_full_reload(full_reload);
            run(
                &mut inputs,
                &socket,
                Duration::from_millis(poll_ms.max(10)),
                Duration::from_millis(debounce_ms),
                once,
                &shared,
                &mut PacketIns::new(
                    np_log.as_deref(),
                    Rotation {
                        max_bytes: np_log_max_size.saturating_mul(1024 * 1024),
                        max_backups: np_log_max_backups,
                        max_age: (np_log_max_age > 0)
                            .then(|| Duration::from_secs(np_log_max_age.saturating_mul(86_400))),
                        compress: np_log_compress,
                    },
                    packet_in_rate,
                    fqdn_min_ttl,
                )?,
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

/// The agent's inputs, merged into one model: the manifest directory (polled) and the API
/// server (watched on its own thread, drained here).
struct Inputs {
    dir: Option<PathBuf>,
    /// The directory's files as last read, and the admitted model they make (only changed
    /// files are read again).
    manifests: ManifestDir,
    dir_seen: Option<Vec<(PathBuf, u64, std::time::SystemTime)>>,
    dir_dirty: bool,
    dir_reported: Vec<ManifestError>,
    api: Option<(ApiFeed, ApiObjects)>,
    api_reported: Vec<ManifestError>,
    /// xvs-cni's interface records, which complete the Pods.
    interfaces: Option<PathBuf>,
    interfaces_seen: Option<Vec<(PathBuf, u64, std::time::SystemTime)>>,
}

impl Inputs {
    fn new(dir: Option<PathBuf>, interfaces: Option<PathBuf>, args: &ApiArgs) -> Result<Self> {
        let mut inputs = Inputs {
            dir,
            manifests: ManifestDir::new(),
            dir_seen: None,
            dir_dirty: true,
            dir_reported: Vec::new(),
            api: None,
            api_reported: Vec::new(),
            interfaces,
            interfaces_seen: None,
        };
        let Some(access) = args.access() else {
            return Ok(inputs);
        };
        let feed = xvs_agent::apiwatch::spawn(ApiOptions {
            access,
            resync: (args.resync_s > 0).then(|| Duration::from_secs(args.resync_s)),
        })
        .context("starting the API server source")?;
        inputs.api = Some((feed, ApiObjects::default()));
        Ok(inputs)
    }

    /// Blocks until every watched kind has been listed once, so the first sync installs a
    /// whole model (no Pods without their policies).
    fn wait_listed(&mut self) -> Result<()> {
        let Some((feed, objects)) = &mut self.api else {
            return Ok(());
        };
        let mut waited = Duration::ZERO;
        while !objects.all_listed() {
            if !feed.is_running() {
                bail!("the API server source stopped");
            }
            let step = Duration::from_millis(100);
            feed.wait(objects, step);
            waited += step;
            log_failures(objects);
            if waited.as_secs() >= 10 {
                eprintln!("xvs-agent: waiting for the API server's lists");
                waited = Duration::ZERO;
            }
        }
        Ok(())
    }

    /// False when the API server source is configured but its thread has ended (it only ends
    /// on a bug); the agent then exits rather than keep a model that no longer follows.
    fn api_alive(&self) -> bool {
        self.api.as_ref().is_none_or(|(feed, _)| feed.is_running())
    }

    /// Takes in what changed since the last call; true when something did.
    fn changed(&mut self) -> bool {
        let mut changed = false;
        if let Some(dir) = &self.dir {
            let now = dir_fingerprint(dir).ok();
            if now != self.dir_seen {
                self.dir_seen = now;
                self.dir_dirty = true;
                changed = true;
            } else if self.manifests.racy() && !self.dir_dirty {
                // A same-size rewrite within one timestamp tick leaves the fingerprint as
                // it was: re-read the recently modified files until they are old enough.
                match self.manifests.reload(dir) {
                    Ok(stats) if stats.changed => {
                        report_new(self.manifests.errors(), &mut self.dir_reported, "manifest");
                        changed = true;
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("xvs-agent: reading {}: {e}", dir.display()),
                }
            }
        }
        if let Some(dir) = &self.interfaces {
            let now = dir_fingerprint(dir).ok();
            if now != self.interfaces_seen {
                self.interfaces_seen = now;
                changed = true;
            }
        }
        if let Some((feed, objects)) = &mut self.api {
            changed |= feed.drain(objects);
            log_failures(objects);
            report_new(&objects.errors(), &mut self.api_reported, "object");
        }
        changed
    }

    /// The merged model: the directory (re-read when it changed), then the API's objects.
    fn model(&mut self) -> Result<Model> {
        if let (Some(dir), true) = (&self.dir, self.dir_dirty) {
            let started = std::time::Instant::now();
            match self.manifests.reload(dir) {
                Ok(stats) => {
                    report_new(self.manifests.errors(), &mut self.dir_reported, "manifest");
                    self.dir_dirty = false;
                    // Read by the change-to-enforcement benchmark.
                    eprintln!(
                        "xvs-agent: manifests reloaded in {} us (read {}, parsed {}, removed {} of {} files)",
                        started.elapsed().as_micros(),
                        stats.read,
                        stats.parsed,
                        stats.removed,
                        stats.files
                    );
                }
                // Unreadable at the start is fatal; later, the last good model stays.
                Err(e) if !self.manifests.loaded() => {
                    return Err(e).with_context(|| format!("reading {}", dir.display()))
                }
                Err(e) => eprintln!("xvs-agent: reading {}: {e}", dir.display()),
            }
        }
        let mut model = self.manifests.model().clone();
        if let Some((_, objects)) = &self.api {
            objects.merge_into(&mut model);
        }
        if let Some(dir) = &self.interfaces {
            attach_interfaces(&mut model, dir);
        }
        Ok(model)
    }
}

fn log_failures(objects: &mut ApiObjects) {
    for (kind, msg) in objects.take_failures() {
        eprintln!("xvs-agent: watching {}: {msg}", kind.plural());
    }
}

fn sync(
    conn: &mut OfConn,
    state: &mut SyncState,
    model: &Model,
    shared: &query::Shared,
) -> Result<()> {
    let started = std::time::Instant::now();
    let plan = state.plan(model)?;
    let planned = started.elapsed();
    if plan.mods.is_empty() {
        publish(shared, state, model);
        return Ok(());
    }
    let (n, path) = (plan.changes.len(), plan.path);
    conn.apply(&plan.mods)
        .context("bundle refused; nothing of it was applied")?;
    let applied = started.elapsed() - planned;
    // The timings are what the change-to-enforcement benchmark reads: `at` is when the
    // COMMIT reply was read (before the bookkeeping below).
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    state.committed(plan);
    publish(shared, state, model);
    eprintln!(
        "xvs-agent: committed {n} changes (round {}): plan {} us ({path:?}), bundle {} us, at {} us",
        state.round,
        planned.as_micros(),
        applied.as_micros(),
        at.as_micros()
    );
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
    inputs: &mut Inputs,
    socket: &Path,
    poll: Duration,
    debounce: Duration,
    once: bool,
    shared: &query::Shared,
    packet_ins: &mut PacketIns,
) -> Result<()> {
    inputs.wait_listed()?;
    loop {
        match session(inputs, socket, poll, debounce, once, shared, packet_ins) {
            Ok(()) => return Ok(()),
            Err(e) if once || !inputs.api_alive() => return Err(e),
            Err(e) => {
                eprintln!("xvs-agent: {e:#}; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// What the agent does with packet-ins: Reject answers and np.log lines.
struct PacketIns {
    rejects: RejectCounters,
    dedup: Deduper,
    /// np.log, appended to and rotated (`--np-log`).
    np_log: Option<NpLog>,
    /// The dedup clock's origin.
    start: std::time::Instant,
    /// The packet-in meter's rate.
    rate: u32,
    /// FQDN rules: learned addresses and the DNS responses paused until their flows are in.
    fqdn: Fqdn,
    /// The agent's own DNS queries (re-queries of tracked names), bound on first use.
    requery: Option<std::net::UdpSocket>,
}

impl PacketIns {
    /// Opens (appends to) the np.log file, creating its directory.
    fn new(
        np_log: Option<&Path>,
        rotation: Rotation,
        rate: u32,
        fqdn_min_ttl: u32,
    ) -> Result<Self> {
        let np_log = match np_log {
            Some(path) => Some(
                NpLog::open(path, rotation)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => None,
        };
        Ok(PacketIns {
            rejects: RejectCounters::default(),
            dedup: Deduper::default(),
            np_log,
            start: std::time::Instant::now(),
            rate,
            fqdn: Fqdn::new(fqdn_min_ttl),
            requery: None,
        })
    }

    fn write(&mut self, msgs: &[String]) {
        let Some(f) = &mut self.np_log else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for m in msgs {
            let line = format!("{}{m}\n", timestamp(now));
            if let Err(e) = f.write(line.as_bytes(), std::time::SystemTime::now()) {
                eprintln!("xvs-agent: writing np.log: {e}");
            }
        }
    }
}

/// Keeps the switch connection served for `d`, answering Reject rules' packet-ins and
/// logging as they come (on this connection, so that nothing else needs a thread or a lock;
/// a bundle in flight only delays them until it is answered).
fn serve(
    conn: &mut OfConn,
    d: Duration,
    model: &Model,
    state: &SyncState,
    p: &mut PacketIns,
) -> Result<()> {
    let deadline = std::time::Instant::now() + d;
    // The model is fixed for this call: its FQDN selectors are computed once, not per
    // packet-in.
    let selectors = xvs_agent::anp::fqdn::selectors(model);
    p.fqdn.set_selectors(&selectors);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let now = p.start.elapsed();
        let due = p.dedup.poll(now);
        p.write(&due);
        fqdn_requeries(p, now);
        if left.is_zero() || p.fqdn.needs_sync() {
            return Ok(());
        }
        // Wake up for the dedup windows too.
        conn.idle(left.min(Duration::from_millis(100)))
            .context("switch connection")?;
        let pending = conn.take_packet_ins();
        for pi in pending {
            if pi.userdata.first() == Some(&CATEGORY_DNS) {
                dns_packet_in(conn, p, pi, &selectors)?;
                continue;
            }
            if let Some(rec) = record(&pi, &state.ids.anp.logged, model) {
                if let Some(m) = p.dedup.push(&rec, now) {
                    p.write(&[m]);
                }
            }
            let before = p.rejects.unanswered.clone();
            if let Some(po) = p.rejects.handle(&pi, model) {
                conn.packet_out(po).context("switch connection")?;
            } else if p.rejects.unanswered != before {
                eprintln!(
                    "xvs-agent: reject packet-ins left unanswered: {:?}",
                    p.rejects.unanswered
                );
            }
        }
    }
}

/// FQDN upkeep between packet-ins: sends the re-queries that are due (non-blocking UDP to
/// the server that answered the Pod, as Antrea's agent queries the cluster DNS) and applies
/// the answers that arrived. A send error is logged; the query then times out and is
/// retried with backoff.
fn fqdn_requeries(p: &mut PacketIns, now: Duration) {
    let due = p.fqdn.requeries(now);
    if p.requery.is_none() && (!due.is_empty() || !p.fqdn.cache.is_empty()) {
        match std::net::UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(s) => p.requery = Some(s),
            Err(e) => eprintln!("xvs-agent: fqdn: re-query socket: {e}"),
        }
    }
    let Some(sock) = &p.requery else { return };
    let mut msg = Vec::with_capacity(64);
    for q in due {
        let sent = xvs_agent::anp::dns::build_query(q.id, &q.name, &mut msg)
            .map_err(|e| e.to_string())
            .and_then(|()| sock.send_to(&msg, q.server).map_err(|e| e.to_string()));
        match sent {
            Ok(_) => eprintln!("xvs-agent: fqdn: re-query {} at {}", q.name, q.server),
            Err(e) => eprintln!("xvs-agent: fqdn: re-query {} at {}: {e}", q.name, q.server),
        }
    }
    let mut buf = [0u8; 4096];
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        let before = p.fqdn.cache.learned();
        match p.fqdn.requery_answer(&buf[..n], now) {
            Ok(()) if p.fqdn.needs_sync() => {
                let after = p.fqdn.cache.learned();
                let name = after
                    .iter()
                    .find(|(k, v)| before.get(*k) != Some(v))
                    .map(|(k, v)| format!("{k} -> {v:?}"))
                    .unwrap_or_else(|| "a name's addresses expired".into());
                eprintln!("xvs-agent: fqdn: re-query answer from {from}: {name}");
            }
            Ok(()) => {}
            Err(e) => eprintln!("xvs-agent: fqdn: re-query answer from {from}: {e}"),
        }
    }
}

/// One intercepted DNS response: resumed at once when it teaches nothing new, else kept
/// until [`fqdn_sync`] has committed the flows for what it taught.
fn dns_packet_in(
    conn: &mut OfConn,
    p: &mut PacketIns,
    pi: xvs_openflow::PacketIn,
    selectors: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let now = p.start.elapsed();
    let verdict = match p.fqdn.handle(&pi, selectors, now) {
        Ok((v, Some(r))) => {
            if v == Verdict::ResumeAfterSync {
                eprintln!("xvs-agent: fqdn: learned {} -> {:?}", r.name, r.addrs);
            }
            v
        }
        Ok((v, None)) => v,
        Err(e) => {
            eprintln!(
                "xvs-agent: fqdn: {e}; resumed as is (parse failures {})",
                p.fqdn.counters.parse_failures
            );
            Verdict::ResumeNow
        }
    };
    // While a sync is pending, even a response that teaches nothing new waits: it may
    // repeat an answer whose flows are not installed yet.
    if verdict == Verdict::ResumeAfterSync || p.fqdn.needs_sync() {
        p.fqdn.waiting.push((pi, now));
    } else {
        conn.resume(pi).context("switch connection")?;
        p.fqdn.counters.resumes += 1;
    }
    Ok(())
}

/// Installs the flows for the learned (or expired) FQDN addresses, then resumes the DNS
/// responses that waited for them; if the bundle is refused they are dropped (as Antrea
/// drops a response whose rules could not be realised), a broken socket ends the session.
fn fqdn_sync(
    conn: &mut OfConn,
    state: &mut SyncState,
    current: &mut Model,
    shared: &query::Shared,
    p: &mut PacketIns,
) -> Result<()> {
    if !p.fqdn.needs_sync() {
        return Ok(());
    }
    p.fqdn.dirty = false;
    current.fqdn_learned = p.fqdn.cache.learned();
    let waiting = std::mem::take(&mut p.fqdn.waiting);
    if let Err(e) = sync(conn, state, current, shared) {
        if broken(&e) {
            return Err(e);
        }
        eprintln!(
            "xvs-agent: fqdn: {e:#}; {} DNS responses dropped",
            waiting.len()
        );
        return Ok(());
    }
    let n = waiting.len();
    let mut slowest = Duration::ZERO;
    for (pi, at) in waiting {
        conn.resume(pi).context("switch connection")?;
        slowest = slowest.max(p.start.elapsed().saturating_sub(at));
    }
    let c = &mut p.fqdn.counters;
    c.resumes += n as u64;
    let cc = p.fqdn.cache.counters;
    eprintln!(
        "xvs-agent: fqdn: flows in, resumed {n} after {}us (packet-ins {}, resumes {}, parse failures {}, re-queries {}, re-query answers {}, re-query timeouts {}, evicted per selector {}, evicted total {}, IPv6 addresses not installed {})",
        slowest.as_micros(),
        c.packet_ins,
        c.resumes,
        c.parse_failures,
        cc.requeries,
        cc.requery_answers,
        cc.requery_timeouts,
        cc.evicted_per_selector,
        cc.evicted_total,
        cc.ipv6_ignored
    );
    Ok(())
}

/// True for the errors that end the session (a broken socket); a refused bundle left nothing
/// applied and the session goes on.
fn broken(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ConnError>().is_some_and(|c| {
        matches!(
            c,
            ConnError::Io(_) | ConnError::Closed | ConnError::Decode(_)
        )
    })
}

fn session(
    inputs: &mut Inputs,
    socket: &Path,
    poll: Duration,
    debounce: Duration,
    once: bool,
    shared: &query::Shared,
    packet_ins: &mut PacketIns,
) -> Result<()> {
    inputs.changed();
    inputs.dir_dirty = true;
    let mut model = inputs.model()?;
    model.fqdn_learned = packet_ins.fqdn.cache.learned();
    let mut conn =
        OfConn::connect(socket).with_context(|| format!("connecting {}", socket.display()))?;
    conn.name_tables().context("naming tables")?;
    conn.set_controller_id(AGENT_CONTROLLER_ID)
        .context("claiming packet-ins")?;
    conn.set_meter(&packet_in_meter(packet_ins.rate))
        .context("installing the packet-in meter")?;
    conn.set_meter(&dns_meter(packet_ins.rate))
        .context("installing the DNS packet-in meter")?;
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
    let mut current = model;
    loop {
        serve(&mut conn, poll, &current, &state, packet_ins)?;
        fqdn_sync(&mut conn, &mut state, &mut current, shared, packet_ins)?;
        if !inputs.api_alive() {
            bail!("the API server source stopped");
        }
        if !inputs.changed() {
            continue;
        }
        // Debounce: wait until the inputs are quiet.
        loop {
            serve(&mut conn, debounce, &current, &state, packet_ins)?;
            fqdn_sync(&mut conn, &mut state, &mut current, shared, packet_ins)?;
            if !inputs.changed() {
                break;
            }
        }
        current = inputs.model()?;
        current.fqdn_learned = packet_ins.fqdn.cache.learned();
        if let Err(e) = sync(&mut conn, &mut state, &current, shared) {
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
