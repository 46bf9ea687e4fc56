//! An `xvs-agent` process under test, and TCP helpers for the traffic the agent tests check
//! (a named echo server and connections opened from inside a Pod namespace).

use crate::{xvsd_binary, Netns};
use anyhow::{bail, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `xvs-agent` binary: `$XVS_AGENT_BIN`, or next to xvsd in the target directory.
pub fn agent_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("XVS_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let bin = xvsd_binary()?.with_file_name("xvs-agent");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p xvs-agent`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// An `xvs-agent run` process polling fast (50 ms, 100 ms debounce), its stderr in a log
/// file; killed on drop.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts `xvs-agent run --manifests DIR --socket SOCKET [extra...]`, logging to `log`.
    pub fn start(manifests: &Path, socket: &Path, log: &Path, extra: &[&str]) -> Result<Agent> {
        let child = Command::new(agent_binary()?)
            .args(["run", "--poll-ms", "50", "--debounce-ms", "100"])
            .arg("--manifests")
            .arg(manifests)
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        Ok(Agent {
            child,
            log: log.to_path_buf(),
        })
    }

    /// What the agent has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (15 s at most) until the log holds `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.log().matches(needle).count() < count {
            if Instant::now() > deadline {
                bail!("agent log lacks {count}x {needle:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server on `ip:port` inside `ns` answering `name` to each connection, then echoing
/// until EOF; it stops accepting when `stop` is set.
pub fn echo_server(
    ns: &Netns,
    ip: &str,
    port: u16,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let addr = format!("{ip}:{port}");
    let l = ns.run(move || -> Result<TcpListener> { Ok(TcpListener::bind(&addr)?) })??;
    l.set_nonblocking(true)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                        let _ = s.write_all(name.as_bytes());
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = s.read(&mut buf) {
                            if n == 0 || s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Ok(())
}

/// A TCP connection to `to` opened from inside `ns` (5 s read and write timeouts).
pub fn connect(ns: &Netns, to: &str, timeout: Duration) -> Result<TcpStream> {
    let to: SocketAddr = to.parse()?;
    ns.run(move || -> Result<TcpStream> {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(s)
    })?
}

/// Connects to an [`echo_server`] and returns the first 5 bytes of its name.
pub fn hello(ns: &Netns, to: &str) -> Result<String> {
    let mut s = connect(ns, to, Duration::from_millis(1500))?;
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).to_string())
}

/// [`hello`], retried until it succeeds or `within` has passed.
pub fn hello_within(ns: &Netns, to: &str, within: Duration) -> Result<String> {
    let deadline = Instant::now() + within;
    loop {
        match hello(ns, to) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sends `msg` on an [`echo_server`] connection and checks it comes back intact.
pub fn echo(s: &mut TcpStream, msg: &[u8]) -> Result<()> {
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    if back != msg {
        bail!("echo mismatch");
    }
    Ok(())
}
