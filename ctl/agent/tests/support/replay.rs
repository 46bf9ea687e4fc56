//! A stand-in Kubernetes API server for tests: plain HTTP/1.1 on 127.0.0.1 that serves
//! recorded LIST responses and WATCH streams (chunked, newline-delimited events), since no real
//! API server runs here. Shared by `ctl/agent/tests` and the namespace test in `integration`.
//!
//! A scenario directory holds, per resource (`pods`, `nodes`, ...), `list-N.json` (the body of
//! the N-th LIST) and `watch-N.jsonl` (the events of the N-th WATCH). The last list is served
//! again to later LISTs; a watch past the recorded ones stays open and carries only the events
//! the test [`Replay::publish`]es. A recorded watch that ends with an ERROR event is closed
//! after it, as the API server does; one that does not stays open for published events.
//! Every request is recorded for assertions; a bearer token is required when one is set. A
//! `fieldSelector=spec.nodeName=<node>` filters lists and watches as the API server would.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The resources the agent watches: (resource, collection path).
pub const RESOURCES: [(&str, &str); 6] = [
    ("nodes", "/api/v1/nodes"),
    ("namespaces", "/api/v1/namespaces"),
    ("pods", "/api/v1/pods"),
    ("services", "/api/v1/services"),
    ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices"),
    (
        "networkpolicies",
        "/apis/networking.k8s.io/v1/networkpolicies",
    ),
];

#[derive(Default)]
struct Resource {
    lists: Vec<String>,
    watches: Vec<Vec<String>>,
    lists_served: usize,
    watches_served: usize,
    /// Published events not yet written to a watch stream.
    pending: Vec<String>,
}

#[derive(Default)]
struct State {
    resources: BTreeMap<String, Resource>,
    requests: Vec<String>,
    token: Option<String>,
}

/// The replay server; stops (closing its streams) on drop.
pub struct Replay {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    ca_pem: Option<String>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Replay {
    /// Loads `scenario` and listens on an ephemeral loopback port. With `token`, requests
    /// without `Authorization: Bearer <token>` get 401.
    pub fn start(scenario: &Path, token: Option<&str>) -> std::io::Result<Replay> {
        Self::start_on(TcpListener::bind("127.0.0.1:0")?, scenario, token)
    }

    /// Like [`Replay::start`] on a listener the caller bound (e.g. inside a test namespace).
    pub fn start_on(
        listener: TcpListener,
        scenario: &Path,
        token: Option<&str>,
    ) -> std::io::Result<Replay> {
        Self::start_with(listener, scenario, token, None)
    }

    /// Like [`Replay::start_on`], serving HTTPS with a certificate for 127.0.0.1 signed by a
    /// CA generated here ([`Replay::ca_pem`]).
    pub fn start_tls(
        listener: TcpListener,
        scenario: &Path,
        token: Option<&str>,
    ) -> std::io::Result<Replay> {
        Self::start_with(listener, scenario, token, Some(tls::generate()?))
    }

    fn start_with(
        listener: TcpListener,
        scenario: &Path,
        token: Option<&str>,
        tls: Option<(Arc<rustls::ServerConfig>, String)>,
    ) -> std::io::Result<Replay> {
        let mut state = State {
            token: token.map(str::to_string),
            ..State::default()
        };
        load(&mut state, scenario);
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let server_tls = tls.as_ref().map(|(c, _)| c.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (st, sp, cfg) = (st.clone(), sp.clone(), server_tls.clone());
                        std::thread::spawn(move || {
                            if s.set_nonblocking(false).is_err()
                                || s.set_read_timeout(Some(Duration::from_millis(100)))
                                    .is_err()
                            {
                                return;
                            }
                            match cfg {
                                None => serve(s, &st, &sp),
                                Some(cfg) => {
                                    if let Ok(conn) = rustls::ServerConnection::new(cfg) {
                                        serve(rustls::StreamOwned::new(conn, s), &st, &sp)
                                    }
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Replay {
            addr,
            state,
            stop,
            ca_pem: tls.map(|(_, pem)| pem),
        })
    }

    /// `http://127.0.0.1:<port>`, or `https://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA that signed the server's certificate (PEM), when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes a kubeconfig whose current context points here (with the token, if any, and the
    /// CA, written next to it as `<path>.ca.pem`, when serving TLS).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let user = match &lock(&self.state).token {
            Some(t) => format!("{{token: {t}}}"),
            None => "{}".to_string(),
        };
        let ca = match &self.ca_pem {
            Some(pem) => {
                let ca_path = path.with_extension("ca.pem");
                std::fs::write(&ca_path, pem)?;
                format!(", certificate-authority: \"{}\"", ca_path.display())
            }
            None => String::new(),
        };
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: replay\n  cluster: {{server: \"{}\"{ca}}}\n\
                 users:\n- name: agent\n  user: {user}\ncontexts:\n- name: replay\n  context: {{cluster: replay, user: agent}}\n\
                 current-context: replay\n",
                self.url()
            ),
        )
    }

    /// Queues the events of `file` (one JSON watch event a line) for `resource`'s open watch
    /// (or the next one to open).
    pub fn publish_file(&self, resource: &str, file: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(file)?;
        let mut st = lock(&self.state);
        let r = st.resources.entry(resource.to_string()).or_default();
        r.pending.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
        Ok(())
    }

    /// Every request line served so far (`GET /api/v1/pods?...`), query percent-decoded.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// How many LISTs of `resource` were served.
    pub fn lists_served(&self, resource: &str) -> usize {
        lock(&self.state)
            .resources
            .get(resource)
            .map_or(0, |r| r.lists_served)
    }

    /// Whether every published event was written to a watch stream.
    pub fn published_all(&self) -> bool {
        lock(&self.state)
            .resources
            .values()
            .all(|r| r.pending.is_empty())
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads the recorded lists and watches of every resource of `scenario`.
fn load(state: &mut State, scenario: &Path) {
    for (name, _) in RESOURCES {
        let dir = scenario.join(name);
        let mut r = Resource::default();
        for n in 1.. {
            let Ok(body) = std::fs::read_to_string(dir.join(format!("list-{n}.json"))) else {
                break;
            };
            r.lists.push(body.trim_end().to_string());
        }
        for n in 1.. {
            let Ok(text) = std::fs::read_to_string(dir.join(format!("watch-{n}.jsonl"))) else {
                break;
            };
            r.watches.push(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
        state.resources.insert(name.to_string(), r);
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `obj` passes a `spec.nodeName=<node>` field selector, as the API server applies it
/// (objects without a `spec.nodeName`, such as bookmarks, pass).
fn on_node(obj: &serde_json::Value, node: Option<&str>) -> bool {
    match (node, obj.pointer("/spec/nodeName").and_then(|n| n.as_str())) {
        (Some(want), Some(is)) => want == is,
        _ => true,
    }
}

/// A list body with only the items a `spec.nodeName` selector keeps.
fn select_list(body: &str, node: Option<&str>) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    if let Some(items) = v.get_mut("items").and_then(|i| i.as_array_mut()) {
        items.retain(|o| on_node(o, node));
    }
    v.to_string()
}

/// Whether a watch event line passes a `spec.nodeName` selector.
fn selected(line: &str, node: Option<&str>) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .map_or(true, |v| v.get("object").is_none_or(|o| on_node(o, node)))
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn status(code: u16, reason: &str, msg: &str) -> String {
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{msg}","reason":"{reason}","code":{code}}}"#
    )
}

fn respond(s: &mut impl Write, code: u16, body: &str) -> std::io::Result<()> {
    let text = match code {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    write!(
        s,
        "HTTP/1.1 {code} {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

fn chunk(s: &mut impl Write, line: &str) -> std::io::Result<()> {
    write!(s, "{:x}\r\n{line}\n\r\n", line.len() + 1)?;
    s.flush()
}

/// Serves the requests of one connection (HTTP/1.1 keep-alive) until it closes or the server
/// stops.
fn serve<S: Read + Write>(stream: S, state: &Mutex<State>, stop: &AtomicBool) {
    // Replies are written through the reader's stream (BufReader only buffers reads).
    let mut rd = BufReader::new(stream);
    'requests: while !stop.load(Ordering::Relaxed) {
        // Request line and headers (GET has no body).
        let mut head = Vec::new();
        // Kept across read timeouts: a line may arrive in pieces.
        let mut line = String::new();
        loop {
            match rd.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {
                    let l = std::mem::take(&mut line).trim_end().to_string();
                    if l.is_empty() {
                        if head.is_empty() {
                            continue;
                        }
                        break;
                    }
                    head.push(l);
                }
                Err(e) if timed_out(&e) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
        }
        let mut parts = head[0].split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let auth = head[1..].iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        });
        let resource = RESOURCES
            .iter()
            .find(|(_, p)| *p == path)
            .map(|(name, _)| *name);
        let watch = params.get("watch").is_some_and(|w| w == "true" || w == "1");
        let node_selector = params
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("spec.nodeName="))
            .map(str::to_string);
        let wanted_token = {
            let mut st = lock(state);
            st.requests
                .push(format!("{method} {path}?{}", percent_decode(query)));
            st.token.clone()
        };
        if let Some(t) = wanted_token {
            if auth.as_deref() != Some(&format!("Bearer {t}")) {
                if respond(
                    rd.get_mut(),
                    401,
                    &status(401, "Unauthorized", "Unauthorized"),
                )
                .is_err()
                {
                    return;
                }
                continue;
            }
        }
        let Some(resource) = resource.filter(|_| method == "GET") else {
            let body = status(
                404,
                "NotFound",
                &format!("the server could not find {path}"),
            );
            if respond(rd.get_mut(), 404, &body).is_err() {
                return;
            }
            continue;
        };
        if !watch {
            let body = {
                let mut st = lock(state);
                let r = st.resources.entry(resource.to_string()).or_default();
                let n = r.lists_served.min(r.lists.len().saturating_sub(1));
                r.lists_served += 1;
                r.lists.get(n).cloned()
            };
            let (code, body) = match body {
                Some(b) => (200, select_list(&b, node_selector.as_deref())),
                None => (404, status(404, "NotFound", "no recorded list")),
            };
            if respond(rd.get_mut(), code, &body).is_err() {
                return;
            }
            continue;
        }
        let recorded = {
            let mut st = lock(state);
            let r = st.resources.entry(resource.to_string()).or_default();
            let w = r.watches.get(r.watches_served).cloned().unwrap_or_default();
            r.watches_served += 1;
            w
        };
        if write!(
            rd.get_mut(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .is_err()
        {
            return;
        }
        for line in recorded
            .iter()
            .filter(|l| selected(l, node_selector.as_deref()))
        {
            if chunk(rd.get_mut(), line).is_err() {
                return;
            }
        }
        let ended_by_error = recorded
            .last()
            .is_some_and(|l| l.starts_with(r#"{"type":"ERROR""#));
        if !ended_by_error {
            // Stay open for published events until the server stops or the client leaves.
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let events = std::mem::take(
                    &mut lock(state)
                        .resources
                        .entry(resource.to_string())
                        .or_default()
                        .pending,
                );
                for line in events
                    .iter()
                    .filter(|l| selected(l, node_selector.as_deref()))
                {
                    if chunk(rd.get_mut(), line).is_err() {
                        // Not delivered: back to the queue for the next watch.
                        let mut st = lock(state);
                        let r = st.resources.entry(resource.to_string()).or_default();
                        let rest = std::mem::take(&mut r.pending);
                        r.pending = events.clone();
                        r.pending.extend(rest);
                        return;
                    }
                }
                // Waits up to the read timeout; a client that went away shows up as EOF or
                // an error other than the timeout.
                let mut probe = [0u8; 1];
                match rd.get_mut().read(&mut probe) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if timed_out(&e) => {}
                    Err(_) => return,
                }
            }
        }
        let out = rd.get_mut();
        if write!(out, "0\r\n\r\n").and_then(|_| out.flush()).is_err() {
            return;
        }
        if ended_by_error {
            continue 'requests;
        }
        return;
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 it signs.
mod tls {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::sync::Arc;

    fn err(e: impl std::fmt::Display) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }

    /// The server's TLS config and the CA's PEM.
    pub(super) fn generate() -> std::io::Result<(Arc<rustls::ServerConfig>, String)> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "xvs replay CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?)
            .map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let cert = params.signed_by(&key, &ca).map_err(err)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(err)?;
        Ok((Arc::new(config), ca.pem()))
    }
}
