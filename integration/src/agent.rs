//! An `xvs-agent` process under test: started with `run`, its stderr in a log file that tests
//! wait on; killed on drop.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `xvs-agent`: `$XVS_AGENT_BIN`, else in the test executable's target directory.
pub fn agent_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("XVS_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?
        .join("xvs-agent");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p xvs-agent`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts `xvs-agent run --manifests <manifests> --socket <socket> <extra...>` with short
    /// poll and debounce times, logging to `log`.
    pub fn start(manifests: &Path, socket: &Path, log: &Path, extra: &[&str]) -> Result<Self> {
        let f = std::fs::File::create(log)?;
        let child = Command::new(agent_binary()?)
            .args([
                "run",
                "--poll-ms",
                "50",
                "--debounce-ms",
                "100",
                "--manifests",
            ])
            .arg(manifests)
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
        })
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (15 s at most) until the log contains `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
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
