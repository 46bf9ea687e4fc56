//! Ports attached and detached while the daemon runs: `xvs/add-port IFNAME [ofport=N]` and
//! `xvs/del-port IFNAME`, what a CNI plugin calls for each Pod's host-side veth.
//!
//! The control thread checks the request, attaches the XDP program, and hands the chosen
//! worker (the one polling the fewest ports) an opener through its port command queue
//! (`xvs_engine::portctl`); the worker opens the AF_XDP socket on its own pool between two
//! iterations and answers, so the command returns once the port is polled. Deletion is the
//! reverse: the worker drains and closes the socket, then the control thread detaches the
//! program. On any failure, what was done is undone before the error is returned.
//!
//! The error texts are a contract with the CNI plugin, which treats "already a port" on add
//! and "no such port" on delete as success (idempotent retries): keep those words.

use crate::config::{valid_ifname, Plan, PortType, OFPP_MAX};
use crate::ports::Attachments;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use xvs_engine::portctl::{PortCommand, PortControl, PortOpener, PortReply};
use xvs_engine::{EnginePort, WorkerShared};
use xvs_flowtable::names::{NameMap, Port};

/// How long a worker may take to apply a port command (a socket setup is milliseconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of an add whose queue is still held by a socket the kernel is tearing down, and
/// the pause between them (on the control thread; about a second in all).
const BUSY_RETRIES: u32 = 50;
const BUSY_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The control thread's side of runtime ports.
pub struct DynamicPorts {
    controls: Vec<PortControl>,
    workers: Vec<Arc<WorkerShared>>,
    attachments: Arc<Mutex<Attachments>>,
    /// Ports no worker polls (tunnels): their names and numbers stay taken.
    queueless: Vec<(String, u32)>,
    /// Configured ports that cannot be deleted, and why.
    protected: HashMap<String, &'static str>,
    /// The interface index each runtime port was added with: a Pod's veth deleted (or
    /// replaced by a new one of the same name) without `del-port` leaves a stale port.
    ifindexes: HashMap<String, u32>,
    stats: ChangeStats,
}

/// What `xvs/show` tells about runtime port changes.
#[derive(Debug, Default)]
struct ChangeStats {
    added: u64,
    deleted: u64,
    refused: u64,
    /// Time a worker stopped polling its ports to apply an add (last, longest), and a delete.
    add_pause: (Duration, Duration),
    del_pause: (Duration, Duration),
}

impl std::fmt::Debug for DynamicPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicPorts")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

fn lock(a: &Mutex<Attachments>) -> MutexGuard<'_, Attachments> {
    a.lock().unwrap_or_else(|e| e.into_inner())
}

impl DynamicPorts {
    /// Runtime ports over the workers (`controls[i]` drives `workers[i]`).
    pub fn new(
        plan: &Plan,
        controls: Vec<PortControl>,
        workers: Vec<Arc<WorkerShared>>,
        attachments: Arc<Mutex<Attachments>>,
    ) -> Self {
        let queueless = plan
            .ports
            .iter()
            .filter(|p| p.config.kind.is_tunnel())
            .map(|p| (p.config.name.clone(), p.config.ofport))
            .collect();
        let mut protected = HashMap::new();
        for p in &plan.ports {
            if p.config.uplink {
                protected.insert(p.config.name.clone(), "the tunnels' uplink");
            } else if p.config.kind == PortType::Dpdk {
                protected.insert(p.config.name.clone(), "a DPDK port");
            } else if p.config.kind.is_tunnel() {
                protected.insert(p.config.name.clone(), "a tunnel port");
            }
        }
        Self {
            controls,
            workers,
            attachments,
            queueless,
            protected,
            ifindexes: HashMap::new(),
            stats: ChangeStats::default(),
        }
    }

    /// The `xvs/show` line about runtime port changes.
    pub fn describe(&self) -> String {
        let s = &self.stats;
        format!(
            "  runtime ports: added {}, deleted {}, refused {}; worker pause per add: last {} us, \
             max {} us; per delete: last {} us, max {} us\n",
            s.added,
            s.deleted,
            s.refused,
            s.add_pause.0.as_micros(),
            s.add_pause.1.as_micros(),
            s.del_pause.0.as_micros(),
            s.del_pause.1.as_micros()
        )
    }

    fn count_pause(&mut self, worker: usize, add: bool) {
        if let Some(c) = self.controls.get(worker) {
            let p = if add {
                &mut self.stats.add_pause
            } else {
                &mut self.stats.del_pause
            };
            p.0 = c.last_pause();
            p.1 = p.1.max(c.last_pause());
        }
    }

    /// Every port of the bridge: (name, ofport, worker), queueless ports without a worker.
    fn ports(&self) -> Vec<(String, u32, Option<usize>)> {
        let mut v: Vec<(String, u32, Option<usize>)> = self
            .queueless
            .iter()
            .map(|(n, o)| (n.clone(), *o, None))
            .collect();
        for (w, shared) in self.workers.iter().enumerate() {
            for p in shared.ports.load().iter() {
                v.push((p.name.clone(), p.ofport, Some(w)));
            }
        }
        v
    }

    /// The bridge's OpenFlow port numbers (for FLOOD/ALL/NORMAL and output checks).
    pub fn ofports(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.ports().into_iter().map(|(_, o, _)| o).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Port names for `--names`-style flow text (`in_port=pa0`).
    pub fn name_map(&self) -> NameMap {
        let mut names = NameMap::new();
        for (name, ofport, _) in self.ports() {
            if let Ok(n) = u16::try_from(ofport) {
                names.add_port(&name, Port(n));
            }
        }
        names
    }

    /// `xvs/add-port IFNAME [ofport=N]`: returns the port's OpenFlow number.
    /// `ifindex` resolves an interface name in xvsd's network namespace.
    pub fn add(
        &mut self,
        params: &[String],
        ifindex: impl Fn(&str) -> Option<u32>,
    ) -> Result<u32, String> {
        let r = self.try_add(params, ifindex);
        match r {
            Ok(_) => self.stats.added += 1,
            Err(_) => self.stats.refused += 1,
        }
        r
    }

    /// `xvs/del-port IFNAME`.
    pub fn delete(&mut self, params: &[String]) -> Result<(), String> {
        let r = self.try_delete(params);
        match r {
            Ok(()) => self.stats.deleted += 1,
            Err(_) => self.stats.refused += 1,
        }
        r
    }

    fn try_add(
        &mut self,
        params: &[String],
        ifindex: impl Fn(&str) -> Option<u32>,
    ) -> Result<u32, String> {
        let (name, wanted) = match params {
            [name] => (name.as_str(), None),
            [name, opt] => {
                let n = opt
                    .strip_prefix("ofport=")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| (1..=OFPP_MAX).contains(n))
                    .ok_or_else(|| {
                        format!("{opt}: expected ofport=N with N from 1 to {OFPP_MAX}")
                    })?;
                (name.as_str(), Some(n))
            }
            _ => return Err("usage: xvs/add-port IFNAME [ofport=N]".to_string()),
        };
        if !valid_ifname(name) {
            return Err(format!("{name:?}: not a valid interface name"));
        }
        let ports = self.ports();
        if let Some((_, ofport, _)) = ports.iter().find(|(n, _, _)| n == name) {
            // Not "already a port": the caller must not take a dead port for its new veth.
            if let Some(&old) = self.ifindexes.get(name) {
                if ifindex(name) != Some(old) {
                    return Err(format!(
                        "{name}: stale port (ofport {ofport}): its interface was deleted or \
                         replaced since it was added; xvs/del-port it first"
                    ));
                }
            }
            return Err(format!("{name}: already a port (ofport {ofport})"));
        }
        let ofport = match wanted {
            Some(n) => {
                if let Some((other, _, _)) = ports.iter().find(|(_, o, _)| *o == n) {
                    return Err(format!("ofport {n}: already used by port {other}"));
                }
                n
            }
            None => (1..=OFPP_MAX)
                .find(|n| !ports.iter().any(|(_, o, _)| o == n))
                .ok_or("no free ofport")?,
        };
        let Some(index) = ifindex(name) else {
            return Err(format!("{name}: no such interface"));
        };
        let worker = (0..self.workers.len())
            .min_by_key(|&w| self.workers[w].ports.load().len())
            .ok_or("no worker")?;
        lock(&self.attachments)
            .attach_program(name)
            .map_err(|e| format!("{name}: {e:#}"))?;
        // The queue's previous socket (the same veth deleted a moment ago) may still be going
        // away in the kernel: the worker does not wait for it, this thread retries.
        let mut tries = 0;
        let reply = loop {
            let busy = Arc::new(AtomicBool::new(false));
            let open = self.opener(name, worker, ofport, &busy);
            let reply = self
                .controls
                .get_mut(worker)
                .ok_or("no worker")?
                .call(PortCommand::Add(open), COMMAND_TIMEOUT);
            if !busy.load(Ordering::Relaxed) || tries >= BUSY_RETRIES {
                break reply;
            }
            tries += 1;
            std::thread::sleep(BUSY_RETRY_PAUSE);
        };
        if reply.is_ok() {
            self.count_pause(worker, true);
        }
        match reply {
            Ok(PortReply::Added { .. }) => {
                self.ifindexes.insert(name.to_string(), index);
                Ok(ofport)
            }
            Ok(PortReply::Failed(e)) => {
                lock(&self.attachments).detach_program(name);
                Err(e)
            }
            Ok(other) => {
                lock(&self.attachments).detach_program(name);
                Err(format!("{name}: unexpected worker reply {other:?}"))
            }
            // The worker may still open it later: leave the program for it (a retry then
            // says "already a port" once it is polled).
            Err(e) => Err(format!("{name}: worker {worker}: {e}")),
        }
    }

    /// What the worker runs to open `name`'s socket on its pool; sets `busy` when the queue
    /// was still taken by a socket being torn down.
    fn opener(&self, name: &str, worker: usize, ofport: u32, busy: &Arc<AtomicBool>) -> PortOpener {
        let attachments = Arc::clone(&self.attachments);
        let ifname = name.to_string();
        let busy = Arc::clone(busy);
        Box::new(
            move |pool: &mut xvs_io::FramePool| -> Result<EnginePort, String> {
                let port = lock(&attachments)
                    .open_afxdp(&ifname, worker, pool)
                    .map_err(|e| {
                        // Relaxed: the reply's ring hand-over orders it before the caller's load.
                        busy.store(e.is_queue_busy(), Ordering::Relaxed);
                        format!("{ifname}: {e}")
                    })?;
                Ok(EnginePort::new(ofport, Box::new(port)))
            },
        )
    }

    fn try_delete(&mut self, params: &[String]) -> Result<(), String> {
        let [name] = params else {
            return Err("usage: xvs/del-port IFNAME".to_string());
        };
        if let Some(why) = self.protected.get(name) {
            return Err(format!("{name}: is {why}, which cannot be deleted"));
        }
        let found = self
            .ports()
            .into_iter()
            .find_map(|(n, o, w)| (n == *name).then_some((o, w)));
        let Some((ofport, Some(worker))) = found else {
            return Err(format!("{name}: no such port"));
        };
        let reply = self
            .controls
            .get_mut(worker)
            .ok_or("no worker")?
            .call(PortCommand::Remove(ofport), COMMAND_TIMEOUT)
            .map_err(|e| format!("{name}: worker {worker}: {e}"))?;
        self.count_pause(worker, false);
        match reply {
            PortReply::Removed { frames_lost, .. } => {
                if frames_lost > 0 {
                    eprintln!(
                        "xvsd: port {name}: {frames_lost} frames stayed with the kernel and are \
                         lost to worker {worker}'s pool"
                    );
                }
                // The socket is closed: the program can go (XDP detached from the veth).
                lock(&self.attachments).detach_program(name);
                self.ifindexes.remove(name);
                Ok(())
            }
            PortReply::Failed(e) => Err(e),
            other => Err(format!("{name}: unexpected worker reply {other:?}")),
        }
    }
}
