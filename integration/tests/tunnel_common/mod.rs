//! Helpers shared by the tunnel tests: traffic checks between namespaces.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;
use xvs_integration::Netns;

/// `ping -c count` from `ns` to `dst`; fails unless every reply came back.
pub fn ping(ns: &Netns, dst: &str, count: u32) -> Result<()> {
    let c = count.to_string();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "ping",
            "-c",
            &c,
            "-i",
            "0.2",
            "-W",
            "5",
            dst,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains(&format!("{count} received")) {
        bail!("ping {dst} from {}: {text}", ns.name());
    }
    Ok(())
}

/// Sends `count` numbered UDP datagrams from `from_ns` to `dst_ip:port` (bound in `to_ns`) and
/// checks that every one arrives intact.
pub fn udp(from_ns: &Netns, to_ns: &Netns, dst_ip: &str, count: u32) -> Result<()> {
    let dst = format!("{dst_ip}:7777");
    let bind = dst.clone();
    let rx = to_ns.run(move || -> Result<UdpSocket> {
        let s = UdpSocket::bind(&bind)?;
        // Generous: the machine may be shared with other busy pollers.
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(s)
    })??;
    let tx = from_ns.run(|| UdpSocket::bind("0.0.0.0:0"))??;
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for seq in 0..count {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend(std::iter::repeat_n(seq as u8, 200 + (seq as usize % 900)));
        tx.send_to(&payload, &dst)?;
        let n = rx
            .recv(&mut buf)
            .with_context(|| format!("datagram {seq}"))?;
        if buf[..n] != payload[..] {
            bail!("datagram {seq} changed on the way");
        }
        got += 1;
    }
    if got != count {
        bail!("{got} of {count} datagrams arrived");
    }
    Ok(())
}

/// Opens a TCP connection from `from_ns` to `dst_ip:port` (listening in `to_ns`), sends
/// `bytes` and checks they come back echoed intact.
pub fn tcp_echo(from_ns: &Netns, to_ns: &Netns, dst_ip: &str, bytes: usize) -> Result<()> {
    let addr = if dst_ip.contains(':') {
        format!("[{dst_ip}]:7778")
    } else {
        format!("{dst_ip}:7778")
    };
    let bind = addr.clone();
    let listener = to_ns.run(move || TcpListener::bind(&bind))??;
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])?;
        }
    });
    let sa = addr.parse()?;
    let mut c = from_ns.run(move || TcpStream::connect_timeout(&sa, Duration::from_secs(5)))??;
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    c.set_write_timeout(Some(Duration::from_secs(30)))?;
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
    let writer = {
        let mut w = c.try_clone()?;
        let data = data.clone();
        std::thread::spawn(move || -> Result<()> {
            w.write_all(&data)?;
            w.shutdown(std::net::Shutdown::Write)?;
            Ok(())
        })
    };
    let mut back = Vec::with_capacity(bytes);
    c.read_to_end(&mut back)?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    if back != data {
        bail!(
            "TCP echo: {} of {} bytes came back equal",
            back.len(),
            bytes
        );
    }
    Ok(())
}

/// Turns IPv6 off in `ns` (before interfaces are made), so no router solicitation or MLD
/// report makes the kernels learn each other's MACs behind the test's back.
pub fn no_ipv6(ns: &Netns) -> Result<()> {
    for k in ["all", "default"] {
        ns.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
        ])?;
    }
    Ok(())
}

/// The number after `label` in `text` (0 when absent).
pub fn counter(text: &str, label: &str) -> u64 {
    text.split(label)
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until xvsd's workers have published counters (they run), up to 20 s: the pid file
/// appears when the worker threads are spawned, which on a loaded machine can be well before
/// they first get a CPU.
pub fn wait_running(x: &xvs_integration::Xvsd) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let show = x.appctl(&["xvs/show"])?;
        if counter(&show, "iterations ") > 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("xvsd's worker did not run within 20 s: {show}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `workers = [0]` rewritten to the last core (other users of a shared machine pin to core 0
/// by default).
pub fn on_last_core(config: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    config.replace("workers = [0]", &format!("workers = [{}]", cores - 1))
}
