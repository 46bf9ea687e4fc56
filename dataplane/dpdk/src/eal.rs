//! EAL: started once per process, with a private runtime directory; cleaned up once.

use crate::devargs::{self, DeviceKind};
use crate::error::DpdkError;
use crate::ffi;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// EAL settings (the `[dpdk]` table of xvsd's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// EAL's lcore list (`-l`); EAL's main lcore is the first. xvs's workers are its own threads,
    /// so one core is enough.
    pub cores: String,
    /// Memory EAL reserves for its own structures (rings, queue state), in MiB (`-m`). Packet
    /// frames are the workers' pools, not EAL memory.
    pub memory_mb: u32,
    /// Run without hugepages (`--no-huge`): for test beds and hosts without hugepages.
    pub no_huge: bool,
    /// The devices, as devargs strings; PCI addresses are passed with `-a`, virtual devices with
    /// `--vdev`. Without a PCI device EAL is told `--no-pci` so it probes no other NIC.
    pub devices: Vec<String>,
    /// More EAL arguments, appended last (e.g. `--log-level=pmd.net.af_xdp:debug`).
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        Self {
            cores: "0".into(),
            memory_mb: 256,
            no_huge: false,
            devices: Vec::new(),
            extra_args: Vec::new(),
        }
    }
}

impl EalConfig {
    /// The EAL argument vector (argv[0] included). The runtime directory is private to this
    /// process (`--file-prefix=xvs-<pid>` and `--no-shconf`: no shared files, no IPC socket), so
    /// parallel processes never collide and nothing is left in /var/run/dpdk.
    pub fn args(&self) -> Result<Vec<String>, DpdkError> {
        let mut a = vec!["xvsd".to_string(), "-l".into(), self.cores.clone()];
        if self.no_huge {
            a.push("--no-huge".into());
        }
        a.push("-m".into());
        a.push(self.memory_mb.to_string());
        a.push(format!("--file-prefix=xvs-{}", std::process::id()));
        a.push("--no-shconf".into());
        a.push("--no-telemetry".into());
        if !self.extra_args.iter().any(|x| x.starts_with("--iova-mode")) {
            // Frames are ordinary process memory: with IOVA = VA the mempool over a worker's
            // region is one contiguous chunk (which net_af_xdp needs to use it as its UMEM).
            a.push("--iova-mode=va".into());
        }
        let mut pci = false;
        for d in &self.devices {
            let (kind, _) = devargs::parse(d).map_err(DpdkError::Config)?;
            match kind {
                DeviceKind::Pci => {
                    pci = true;
                    a.push("-a".into());
                }
                DeviceKind::Vdev => a.push("--vdev".into()),
            }
            a.push(d.clone());
        }
        if !pci {
            a.push("--no-pci".into());
        }
        a.extend(self.extra_args.iter().cloned());
        Ok(a)
    }
}

/// EAL's runtime directory, if it is this process's private one (never anything else).
fn own_runtime_dir() -> Option<PathBuf> {
    let own = format!("xvs-{}", std::process::id());
    ffi::runtime_dir().filter(|d| d.file_name().is_some_and(|n| n == own.as_str()))
}

enum State {
    Uninit,
    Up { runtime_dir: Option<PathBuf> },
    Failed(String),
    Down,
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);
/// Devices opened and not yet closed; EAL is cleaned up only when none is left.
pub(crate) static OPEN_DEVICES: AtomicUsize = AtomicUsize::new(0);

/// Proof that EAL runs in this process; needed to open devices.
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Starts EAL with `config`, or returns the running instance (EAL starts once per process;
    /// a later call's configuration is ignored). After a failure, or after [`Eal::cleanup`],
    /// every call fails: DPDK cannot start EAL twice in one process.
    pub fn init(config: &EalConfig) -> Result<Eal, DpdkError> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            State::Up { .. } => return Ok(Eal { _private: () }),
            State::Failed(why) => return Err(DpdkError::EalUnavailable(why.clone())),
            State::Down => {
                return Err(DpdkError::EalUnavailable(
                    "it was cleaned up; EAL starts once per process".into(),
                ))
            }
            State::Uninit => {}
        }
        let args = config.args()?;
        match ffi::eal_init(&args) {
            Ok(()) => {
                let runtime_dir = own_runtime_dir();
                // With --no-shconf EAL puts nothing in its runtime directory; remove it now so a
                // crash leaves nothing behind either (a non-empty directory stays until cleanup).
                if let Some(d) = &runtime_dir {
                    let _ = std::fs::remove_dir(d);
                }
                *st = State::Up { runtime_dir };
                Ok(Eal { _private: () })
            }
            Err(e) => {
                // EAL made its runtime directory before failing.
                if let Some(d) = own_runtime_dir() {
                    let _ = std::fs::remove_dir_all(d);
                }
                let reason = format!(
                    "{} (check hugepages or set no_huge, run as root, and check the devargs; \
                     EAL's own messages are above)",
                    ffi::strerror(e)
                );
                *st = State::Failed(reason.clone());
                Err(DpdkError::Eal {
                    args: args[1..].join(" "),
                    reason,
                })
            }
        }
    }

    /// The running instance, if EAL was started and not cleaned up.
    pub fn get() -> Option<Eal> {
        let st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        matches!(*st, State::Up { .. }).then_some(Eal { _private: () })
    }

    /// Releases EAL (memory, runtime directory). Every device must be closed first; EAL cannot
    /// start again in this process afterwards. Does nothing when EAL never started.
    pub fn cleanup() -> Result<(), DpdkError> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        let State::Up { runtime_dir } = &*st else {
            return Ok(());
        };
        let open = OPEN_DEVICES.load(Ordering::Acquire);
        if open > 0 {
            return Err(DpdkError::Config(format!(
                "EAL cleanup with {open} DPDK device(s) still open"
            )));
        }
        let dir = runtime_dir.clone();
        let r = ffi::eal_cleanup();
        if let Some(d) = dir {
            if d.exists() {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
        *st = State::Down;
        if r != 0 {
            return Err(DpdkError::EalUnavailable(format!(
                "rte_eal_cleanup: {}",
                ffi::strerror(-r)
            )));
        }
        Ok(())
    }
}
