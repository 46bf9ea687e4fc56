//! External processes started by the harness: each one is owned by a guard that stops it by its
//! own PID (signal, bounded wait, then SIGKILL) and reaps it, also when the harness bails out.

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// A child process that is stopped and reaped on drop.
#[derive(Debug)]
pub struct Guarded {
    name: String,
    child: Option<Child>,
    /// Signal that asks the process to stop cleanly.
    stop_signal: Signal,
}

impl Guarded {
    pub fn new(name: impl Into<String>, child: Child, stop_signal: Signal) -> Self {
        Self {
            name: name.into(),
            child: Some(child),
            stop_signal,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `None` while running, the exit status once it ended.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c
                .try_wait()
                .with_context(|| format!("wait for {}", self.name)),
            None => Ok(None),
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.try_status(), Ok(None)) && self.child.is_some()
    }

    /// Like [`Guarded::stop`] with another signal than the guard's own.
    pub fn stop_with(&mut self, signal: Signal, grace: Duration) -> Result<Option<ExitStatus>> {
        self.stop_signal = signal;
        self.stop(grace)
    }

    /// Sends the stop signal, waits up to `grace`, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        // The child is not reaped yet (try_wait said so), so the PID is still ours.
        let _ = kill(pid, self.stop_signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait()? {
                return Ok(Some(st));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "xvs-bench: {} (pid {}) ignored {:?} for {:?}; sending SIGKILL",
            self.name,
            child.id(),
            self.stop_signal,
            grace
        );
        child.kill().ok();
        Ok(Some(child.wait()?))
    }
}

/// A directory that a started process leaves behind (e.g. DPDK's `/var/run/dpdk/<prefix>`),
/// removed on drop. Declare it before the process guard so that it is dropped after it.
#[derive(Debug)]
pub struct RemoveDirOnDrop(pub PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                eprintln!("xvs-bench: cleanup of {}: {e}", self.0.display());
            }
        }
    }
}

/// Kernel threads whose nice value was changed for the run, restored on drop.
///
/// The receive softirq of every peer runs partly in `ksoftirqd/N`; at nice 0 a compiler running
/// next to the benchmark would take its time, so the harness raises them to -20 for the run, as
/// peer-baselines.md did.
#[derive(Debug, Default)]
pub struct Reniced(Vec<(u32, i32)>);

impl Reniced {
    /// Sets every thread whose `comm` starts with `prefix` to `nice`, remembering the old values.
    pub fn threads(prefix: &str, nice: i32) -> Self {
        let mut done = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Self(done);
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: nice is field 19; comm may hold spaces, so split at ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            if !head
                .split_once('(')
                .is_some_and(|(_, comm)| comm.starts_with(prefix))
            {
                continue;
            }
            let Some(old) = tail
                .split_whitespace()
                .nth(16)
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            match crate::sys::set_nice(pid, nice) {
                Ok(()) => done.push((pid, old)),
                Err(e) => eprintln!("xvs-bench: warning: renice {prefix}* pid {pid}: {e}"),
            }
        }
        Self(done)
    }
}

impl Drop for Reniced {
    fn drop(&mut self) {
        for &(pid, old) in &self.0 {
            if let Err(e) = crate::sys::set_nice(pid, old) {
                eprintln!("xvs-bench: restoring nice {old} of pid {pid}: {e}");
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Err(e) = self.stop(Duration::from_secs(5)) {
            eprintln!("xvs-bench: cleanup of {}: {e:#}", self.name);
        }
    }
}
