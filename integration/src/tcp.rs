//! Small TCP tools for the pipeline tests: a named echo server inside a namespace, a greeting
//! read ("which endpoint answered"), and an echo round trip on an established connection.

use crate::Netns;
use anyhow::{bail, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connects from inside `ns` to `to` within `timeout`.
pub fn connect(ns: &Netns, to: &str, timeout: Duration) -> Result<TcpStream> {
    let to: SocketAddr = to.parse()?;
    ns.run(move || -> Result<TcpStream> {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(s)
    })?
}

/// A TCP server in `ns` on `ip:port` that greets each connection with `name` (5 bytes), then
/// echoes until EOF; it stops accepting when `stop` is set.
pub fn named_server(
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
                        let mut buf = [0u8; 64];
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

/// Opens a connection from `ns` to `to` and returns the 5-byte greeting.
pub fn hello(ns: &Netns, to: &str) -> Result<String> {
    let mut s = connect(ns, to, Duration::from_millis(1500))?;
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).to_string())
}

/// Retries [`hello`] until it answers or `within` passes (a flow change is on its way).
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

/// Sends `msg` on `s` and expects it back.
pub fn echo(s: &mut TcpStream, msg: &[u8]) -> Result<()> {
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    if back != msg {
        bail!("echo mismatch");
    }
    Ok(())
}
