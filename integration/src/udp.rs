//! Numbered UDP datagrams between namespaces: what arrived, intact, and what did not.

use crate::Netns;
use anyhow::Result;
use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// A UDP socket bound to `addr` inside `ns`, with a large receive buffer (a burst of
/// datagrams must not be lost in the receiving socket) and a 100 ms read timeout.
pub fn bound_socket(ns: &Netns, addr: String) -> Result<UdpSocket> {
    ns.run(move || -> Result<UdpSocket> {
        let s = UdpSocket::bind(&addr)?;
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(s)
    })?
}

/// A plain UDP socket bound to `addr` inside `ns` whose reads give up after `read_timeout`.
pub fn socket_with_timeout(ns: &Netns, addr: &str, read_timeout: Duration) -> Result<UdpSocket> {
    let addr = addr.to_string();
    ns.run(move || -> Result<UdpSocket> {
        let s = UdpSocket::bind(&addr)?;
        s.set_read_timeout(Some(read_timeout))?;
        Ok(s)
    })?
}

/// Sends `count` numbered datagrams of varying length from `from` to `dst` and returns the
/// numbers that arrived intact at `to` within 3 s. A damaged datagram fails the test.
pub fn exchange(from: &UdpSocket, to: &UdpSocket, dst: &str, count: u32) -> Result<BTreeSet<u32>> {
    for seq in 0..count {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend(std::iter::repeat_n(
            (seq % 251) as u8,
            100 + (seq as usize % 300),
        ));
        from.send_to(&payload, dst)?;
        if seq % 100 == 99 {
            // Paces the burst so the receiving veth's queue never overflows.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut got = BTreeSet::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && (got.len() as u32) < count {
        if let Ok(n) = to.recv(&mut buf) {
            if n < 4 {
                anyhow::bail!("a {n}-byte datagram arrived: not one of ours");
            }
            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let intact = n == 4 + 100 + (seq as usize % 300)
                && buf[4..n].iter().all(|&b| b == (seq % 251) as u8);
            anyhow::ensure!(intact, "datagram {seq} arrived damaged");
            got.insert(seq);
        }
    }
    Ok(got)
}

/// Every one of `count` datagrams must arrive.
pub fn expect_all(
    from: &UdpSocket,
    to: &UdpSocket,
    dst: &str,
    count: u32,
    what: &str,
) -> Result<()> {
    let got = exchange(from, to, dst, count)?;
    anyhow::ensure!(
        got.len() as u32 == count,
        "{what}: {} of {count} arrived",
        got.len()
    );
    Ok(())
}

/// None of `count` datagrams may arrive.
pub fn expect_none(
    from: &UdpSocket,
    to: &UdpSocket,
    dst: &str,
    count: u32,
    what: &str,
) -> Result<()> {
    let got = exchange(from, to, dst, count)?;
    anyhow::ensure!(
        got.is_empty(),
        "{what}: {} of {count} arrived but must be dropped",
        got.len()
    );
    Ok(())
}
