//! The OpenFlow 1.5 server on `<run_dir>/<bridge>.mgmt`, what `ovs-ofctl` and Antrea's agent
//! connect to.
//!
//! One thread, event-driven with `mio`: a listener, any number of connections, and a waker
//! for shutdown. Each connection is a sans-IO [`session::Session`] fed with the bytes read
//! and drained into the socket as it accepts them; protocol logic never blocks on I/O. Mods
//! are applied to the shared pipeline under the control threads' mutex and published to
//! the workers as a new version (`xvs_flowtable::pipeline`); workers never wait on this
//! thread.

pub mod packet_out;
pub mod session;
pub mod switch;

use crate::vlog::{vlog, Level, Module};

use anyhow::{Context, Result};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use session::Session;
use switch::Switch;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Idle time after which we probe a connection with an ECHO_REQUEST (OVS: 5 s).
const PROBE_AFTER: Duration = Duration::from_secs(5);
/// Idle time after a probe before the connection is dropped.
const DEAD_AFTER: Duration = Duration::from_secs(15);
/// Unsent output above which we stop reading from a connection until it drains.
const OUT_HIGH_WATER: usize = 8 << 20;
/// Poll interval while waiting for workers to adopt a committed version.
const ADOPTION_POLL: Duration = Duration::from_micros(20);
/// How often the workers' packet-in rings are drained (workers never wake the server: that
/// would be a syscall on their loop).
const PACKET_IN_POLL: Duration = Duration::from_millis(2);

struct Conn {
    stream: UnixStream,
    session: Session,
    rx: Vec<u8>,
    /// Bytes of `session.out` already written.
    sent: usize,
    last_rx: Instant,
    probed: bool,
    writable_interest: bool,
}

/// Why the waker woke the server thread (one `Waker` per `Poll`, so flags tell).
#[derive(Debug, Default)]
struct Signals {
    stop: AtomicBool,
    /// Port changes announced by the control thread, and those the server has applied.
    ports_requested: AtomicU64,
    ports_applied: AtomicU64,
}

/// How long [`OfServer::ports_changed`] waits for the server to take a port change in.
const PORTS_CHANGED_WAIT: Duration = Duration::from_secs(2);

/// The running server: stop it with [`OfServer::stop`] (or drop).
pub struct OfServer {
    /// The server's counters.
    pub stats: Arc<switch::OfStats>,
    signals: Arc<Signals>,
    waker: Arc<Waker>,
    handle: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl std::fmt::Debug for OfServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfServer")
            .field("path", &self.path)
            .finish()
    }
}

impl OfServer {
    /// Binds `path` (mode 0660; a stale socket file is replaced, a live one refused) and
    /// starts the server thread.
    pub fn start(path: &Path, switch: Switch) -> Result<Self> {
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!("{} is in use by a running daemon", path.display());
            }
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("setting mode 0660 on {}", path.display()))?;
        let poll = Poll::new().context("creating the OpenFlow poller")?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).context("creating a waker")?);
        let stop_waker = Arc::clone(&waker);
        let stats = Arc::clone(&switch.stats);
        let signals = Arc::new(Signals::default());
        let thread_signals = Arc::clone(&signals);
        let handle = std::thread::Builder::new()
            .name("ofserver".to_string())
            .spawn(move || serve(poll, listener, switch, &thread_signals))
            .context("spawning the OpenFlow server thread")?;
        Ok(OfServer {
            stats,
            signals,
            waker: stop_waker,
            handle: Some(handle),
            path: path.to_path_buf(),
        })
    }

    /// Stops the thread, closes every connection and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Tells the server that ports were added or removed (the workers' port lists changed):
    /// it re-reads them and sends PORT_STATUS to every connected controller. Returns once it
    /// has (so a `dump-ports-desc` after `xvs/add-port` returned sees the port), or after
    /// two seconds.
    pub fn ports_changed(&self) {
        // AcqRel/Acquire: the server's load of `ports_requested` happens after the worker's
        // port list was published; our load of `ports_applied` sees its refresh.
        let want = self.signals.ports_requested.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self.waker.wake();
        let deadline = Instant::now() + PORTS_CHANGED_WAIT;
        while self.signals.ports_applied.load(Ordering::Acquire) < want && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            self.signals.stop.store(true, Ordering::Release);
            let _ = self.waker.wake();
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for OfServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(mut poll: Poll, mut listener: UnixListener, mut switch: Switch, signals: &Signals) {
    if poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .is_err()
    {
        vlog!(Module::Ofserver, Level::Err, "cannot poll the listener");
        return;
    }
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_token = FIRST_CONN;
    let mut pins = Vec::new();
    loop {
        // While a commit is not adopted by every worker yet, look again soon to time it.
        let timeout = if switch.adoption_pending() {
            ADOPTION_POLL
        } else if switch.has_packet_ins() {
            PACKET_IN_POLL
        } else {
            Duration::from_secs(1)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            vlog!(Module::Ofserver, Level::Err, "poll: {e}");
            return;
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => {
                    if signals.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let requested = signals.ports_requested.load(Ordering::Acquire);
                    if requested != signals.ports_applied.load(Ordering::Relaxed) {
                        announce_ports(&mut switch, &mut conns, &poll);
                        signals.ports_applied.store(requested, Ordering::Release);
                    }
                }
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let token = next_token;
                            next_token += 1;
                            if poll
                                .registry()
                                .register(&mut stream, Token(token), Interest::READABLE)
                                .is_ok()
                            {
                                let mut c = Conn {
                                    stream,
                                    session: Session::new(),
                                    rx: Vec::new(),
                                    sent: 0,
                                    last_rx: Instant::now(),
                                    probed: false,
                                    writable_interest: false,
                                };
                                vlog!(
                                    Module::Ofserver,
                                    Level::Info,
                                    "connection {token}: accepted"
                                );
                                if pump(&mut c, &mut switch, &poll, token).is_ok() {
                                    conns.insert(token, c);
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                },
                Token(t) => {
                    let Some(c) = conns.get_mut(&t) else { continue };
                    if pump(c, &mut switch, &poll, t).is_err() {
                        vlog!(Module::Ofserver, Level::Info, "connection {t}: closed");
                        if let Some(mut c) = conns.remove(&t) {
                            let _ = poll.registry().deregister(&mut c.stream);
                        }
                    }
                }
            }
        }
        deliver_packet_ins(&mut switch, &mut conns, &poll, &mut pins);
        switch.check_adoption();
        // Replies are written: now free committed bundles.
        switch.collect_garbage();
        switch.check_adoption();
        // Keepalive: probe idle connections, drop the dead.
        let now = Instant::now();
        let mut dead = Vec::new();
        for (&t, c) in conns.iter_mut() {
            let idle = now.duration_since(c.last_rx);
            if idle > DEAD_AFTER {
                dead.push(t);
            } else if idle > PROBE_AFTER && !c.probed {
                c.probed = true;
                c.session.send_echo();
                if pump(c, &mut switch, &poll, t).is_err() {
                    dead.push(t);
                }
            }
        }
        for t in dead {
            if let Some(mut c) = conns.remove(&t) {
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

/// Re-reads the ports and sends a PORT_STATUS for each change to every negotiated
/// connection.
fn announce_ports(switch: &mut Switch, conns: &mut HashMap<usize, Conn>, poll: &Poll) {
    let changes = switch.refresh_ports();
    if changes.is_empty() {
        return;
    }
    let mut dead = Vec::new();
    for (&t, c) in conns.iter_mut() {
        for ps in &changes {
            c.session.port_status(ps);
        }
        if pump(c, switch, poll, t).is_err() {
            dead.push(t);
        }
    }
    for t in dead {
        if let Some(mut c) = conns.remove(&t) {
            let _ = poll.registry().deregister(&mut c.stream);
        }
    }
}

/// Sends the workers' packet-ins to the connections that take them.
fn deliver_packet_ins(
    switch: &mut Switch,
    conns: &mut HashMap<usize, Conn>,
    poll: &Poll,
    pins: &mut Vec<(xvs_openflow::PacketIn, u16)>,
) {
    if !switch.has_packet_ins() {
        return;
    }
    pins.clear();
    switch.drain_packet_ins(pins);
    if pins.is_empty() {
        return;
    }
    let stats = Arc::clone(&switch.stats);
    for (pin, id) in pins.iter() {
        let mut claimed = false;
        for c in conns.values_mut() {
            if c.session.out.len() - c.sent >= OUT_HIGH_WATER {
                stats.packet_in_backlog.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if c.session.packet_in(pin, *id) {
                claimed = true;
                stats.packet_in_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !claimed {
            stats.packet_in_unclaimed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut dead = Vec::new();
    for (&t, c) in conns.iter_mut() {
        if c.sent < c.session.out.len() && pump(c, switch, poll, t).is_err() {
            dead.push(t);
        }
    }
    for t in dead {
        if let Some(mut c) = conns.remove(&t) {
            let _ = poll.registry().deregister(&mut c.stream);
        }
    }
}

/// Reads what is available, runs the session, writes what the socket takes. `Err` closes.
fn pump(c: &mut Conn, sw: &mut Switch, poll: &Poll, token: usize) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    let mut eof = false;
    // Stop reading while the peer does not read our replies (back-pressure).
    while c.session.out.len() - c.sent < OUT_HIGH_WATER {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                c.rx.extend_from_slice(&buf[..n]);
                c.last_rx = Instant::now();
                c.probed = false;
                let used = c.session.receive(&c.rx, sw);
                match used {
                    Ok(u) => {
                        c.rx.drain(..u);
                    }
                    Err(_) => {
                        let _ = flush(c);
                        return Err(io::Error::other("session closed"));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    flush(c)?;
    if eof {
        return Err(io::Error::other("peer closed"));
    }
    let pending = c.sent < c.session.out.len();
    if pending != c.writable_interest {
        let interest = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry()
            .reregister(&mut c.stream, Token(token), interest)?;
        c.writable_interest = pending;
    }
    Ok(())
}

fn flush(c: &mut Conn) -> io::Result<()> {
    while c.sent < c.session.out.len() {
        match c.stream.write(&c.session.out[c.sent..]) {
            Ok(0) => return Err(io::Error::other("write returned 0")),
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if c.sent == c.session.out.len() {
        c.session.out.clear();
        c.sent = 0;
    } else if c.sent > (1 << 20) {
        c.session.out.drain(..c.sent);
        c.sent = 0;
    }
    Ok(())
}

/// The ports of every worker, with their MAC addresses, in the order of the workers' port
/// lists (so counters can be found again).
pub fn ports_of(workers: &[Arc<xvs_engine::WorkerShared>]) -> Vec<switch::PortInfo> {
    let mut v = Vec::new();
    for (w, s) in workers.iter().enumerate() {
        for p in s.ports.load().iter() {
            v.push(port_info(p, w));
        }
    }
    v
}

/// What the OpenFlow side knows of worker `worker`'s port `p`.
pub fn port_info(p: &xvs_engine::PortEntry, worker: usize) -> switch::PortInfo {
    switch::PortInfo {
        name: p.name.clone(),
        ofport: p.ofport,
        mac: read_mac(&p.name),
        worker,
        counters: Arc::clone(&p.counters),
    }
}

/// The interface's MAC address from sysfs (zeros when it cannot be read).
fn read_mac(ifname: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    if let Ok(text) = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")) {
        for (d, part) in mac.iter_mut().zip(text.trim().split(':')) {
            *d = u8::from_str_radix(part, 16).unwrap_or(0);
        }
    }
    mac
}

/// Starts the OpenFlow server of the daemon on `<run_dir>/<bridge>.mgmt`.
pub fn start(
    cfg: &crate::config::Config,
    pipeline: Arc<std::sync::Mutex<xvs_flowtable::pipeline::Pipeline>>,
    epoch: Instant,
    workers: &[Arc<xvs_engine::WorkerShared>],
    injectors: Vec<xvs_engine::inject::InjectProducer>,
    packet_ins: Vec<xvs_engine::packet_in::PacketInConsumer>,
    tunnel_ofports: &[u32],
) -> Result<OfServer> {
    let path = cfg.run_dir.join(format!("{}.mgmt", cfg.bridge));
    let ports = ports_of(workers);
    let mut packet_out = packet_out::PacketOutSender::new(injectors, &ports);
    packet_out.set_tunnel_ports(tunnel_ofports);
    let mut sw = Switch::new(
        &cfg.bridge,
        pipeline,
        epoch,
        ports,
        workers.to_vec(),
        Some(packet_out),
    );
    sw.set_packet_ins(packet_ins);
    OfServer::start(&path, sw)
}
#[cfg(test)]
mod tests;
