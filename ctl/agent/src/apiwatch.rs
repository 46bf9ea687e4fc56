//! The API server source (I/O part): kube-rs watchers on a small tokio runtime in a thread of
//! their own, feeding [`WatchUpdate`]s to the sync loop through a channel.
//!
//! Per kind, a `kube::runtime::watcher` lists (with `resourceVersion`, paged), then watches
//! from the list's version with bookmarks; a 410 Gone / "too old resource version" makes it
//! list again; failures are retried with kube's default exponential backoff. Every `resync`
//! the watcher is dropped and started afresh, which lists again (a periodic resync; the
//! watcher alone never re-lists while the watch stays healthy). Pods of every node are watched
//! (no field selector): the model attaches and programs only this node's Pods, and the others
//! (`UnattachedPod`s, no interface here) are NetworkPolicy peers, whose addresses Antrea's
//! agent would get from its controller's AddressGroups. The cost is memory and watch traffic
//! in proportion to the cluster's Pods instead of the node's.
//!
//! Objects are [`DynamicObject`]s with resources named without discovery, and reach the model
//! as JSON through [`crate::apiserver::parse_api_object`].

use crate::apiserver::{ApiKind, ApiObjects, WatchUpdate};
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Config};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAccess {
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// An explicit URL, with an optional bearer token file and CA bundle (PEM).
    Url {
        /// `https://host:port` (or `http://` for tests).
        url: String,
        /// File holding the bearer token (re-read by kube as it rotates).
        token_file: Option<PathBuf>,
        /// CA bundle that signs the server's certificate.
        ca_file: Option<PathBuf>,
    },
    /// The Pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA), as a
    /// DaemonSet runs.
    InCluster,
}

/// What the source watches and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiOptions {
    /// How to reach the API server.
    pub access: ApiAccess,
    /// Periodic re-list; `None` never re-lists while watches stay healthy.
    pub resync: Option<Duration>,
}

/// Error starting the source.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The kubeconfig could not be read or used.
    #[error("reading the kubeconfig")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The in-cluster service account could not be used.
    #[error("the in-cluster service account")]
    InCluster(#[from] kube::config::InClusterError),
    /// The API server URL does not parse.
    #[error("API server URL {0:?}: {1}")]
    Url(String, String),
    /// The HTTP client could not be built (TLS settings, CA bundle).
    #[error("building the client")]
    Client(#[from] kube::Error),
    /// The runtime or its thread could not start.
    #[error("starting the watcher thread")]
    Thread(#[from] std::io::Error),
    /// The watcher thread ended before it reported.
    #[error("the watcher thread ended early")]
    Ended,
}

/// The running source: the receiving end of the watchers' updates.
#[derive(Debug)]
pub struct ApiFeed {
    rx: mpsc::Receiver<WatchUpdate>,
    thread: std::thread::JoinHandle<()>,
}

impl ApiFeed {
    /// Folds every update that arrived into `objects`; true when the objects changed.
    pub fn drain(&self, objects: &mut ApiObjects) -> bool {
        let mut changed = false;
        while let Ok(u) = self.rx.try_recv() {
            changed |= objects.handle(u);
        }
        changed
    }

    /// Waits up to `timeout` for one update and folds it (and any that follow) in; true when
    /// the objects changed.
    pub fn wait(&self, objects: &mut ApiObjects, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(u) => objects.handle(u) | self.drain(objects),
            Err(_) => false,
        }
    }

    /// The next update, waiting up to `timeout` (for callers that fold updates one by one).
    pub fn recv(&self, timeout: Duration) -> Option<WatchUpdate> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Whether the watcher thread is still running.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }
}

async fn client_config(access: &ApiAccess) -> Result<Config, ApiError> {
    Ok(match access {
        ApiAccess::Kubeconfig(path) => {
            let kc = Kubeconfig::read_from(path)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        ApiAccess::Url {
            url,
            token_file,
            ca_file,
        } => {
            let uri = url
                .parse::<http::Uri>()
                .map_err(|e| ApiError::Url(url.clone(), e.to_string()))?;
            let mut c = Config::new(uri);
            c.auth_info.token_file = token_file.as_ref().map(|p| p.display().to_string());
            c.root_cert_file = ca_file.clone();
            c
        }
        ApiAccess::InCluster => Config::incluster()?,
    })
}

/// Starts the watchers on their own thread; returns once the client is built (a bad
/// kubeconfig or URL is an error here), the first updates follow through the feed.
pub fn spawn(opts: ApiOptions) -> Result<ApiFeed, ApiError> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), ApiError>>();
    let thread = std::thread::Builder::new()
        .name("xvs-agent-api".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let client = match client_config(&opts.access)
                    .await
                    .and_then(|c| Client::try_from(c).map_err(ApiError::from))
                {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let tasks = ApiKind::ALL
                    .map(|kind| watch_kind(client.clone(), kind, opts.resync, tx.clone()));
                futures_util::future::join_all(tasks).await;
            });
        })?;
    ready_rx.recv().map_err(|_| ApiError::Ended)??;
    Ok(ApiFeed { rx, thread })
}

/// The watcher configuration of every kind: everything, with bookmarks. Pods are not limited
/// to this node's (`spec.nodeName`): other nodes' Pods are policy peers.
pub fn watcher_config() -> watcher::Config {
    watcher::Config::default()
}

fn to_json(kind: ApiKind, o: DynamicObject) -> Result<serde_json::Value, WatchUpdate> {
    serde_json::to_value(o).map_err(|e| WatchUpdate::Failed(kind, format!("re-encoding: {e}")))
}

/// Watches `kind` until the receiver is gone.
async fn watch_kind(
    client: Client,
    kind: ApiKind,
    resync: Option<Duration>,
    tx: mpsc::Sender<WatchUpdate>,
) {
    let gvk = GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind());
    let ar = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let cfg = watcher_config();
    loop {
        let mut stream = Box::pin(watcher(api.clone(), cfg.clone()).default_backoff());
        let until = resync.map(|r| tokio::time::Instant::now() + r);
        // A resync never cuts a list short (a list slower than the period would never end).
        let mut listing = false;
        loop {
            let next = match until.filter(|_| !listing) {
                Some(t) => match tokio::time::timeout_at(t, stream.next()).await {
                    Ok(n) => n,
                    // Resync: a fresh watcher lists again.
                    Err(_) => break,
                },
                None => stream.next().await,
            };
            match &next {
                Some(Ok(watcher::Event::Init)) => listing = true,
                Some(Ok(watcher::Event::InitDone)) => listing = false,
                _ => {}
            }
            let update = match next {
                None => break,
                Some(Err(e)) => WatchUpdate::Failed(kind, e.to_string()),
                Some(Ok(ev)) => {
                    let r = match ev {
                        watcher::Event::Init => Ok(WatchUpdate::ListStarted(kind)),
                        watcher::Event::InitDone => Ok(WatchUpdate::ListDone(kind)),
                        watcher::Event::InitApply(o) => {
                            to_json(kind, o).map(|v| WatchUpdate::Listed(kind, v))
                        }
                        watcher::Event::Apply(o) => {
                            to_json(kind, o).map(|v| WatchUpdate::Applied(kind, v))
                        }
                        watcher::Event::Delete(o) => {
                            to_json(kind, o).map(|v| WatchUpdate::Deleted(kind, v))
                        }
                    };
                    r.unwrap_or_else(|failed| failed)
                }
            };
            if tx.send(update).is_err() {
                return;
            }
        }
    }
}
