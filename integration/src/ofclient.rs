//! A small blocking OpenFlow 1.5 client over a unix socket, for tests and benchmarks that
//! script what a controller (Antrea's agent) does. It answers the switch's echo requests.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use xvs_openflow::{decode, encode, Body, DecodeError, Message, OFP15_VERSION};

/// A connected, version-negotiated OpenFlow 1.5 client.
#[derive(Debug)]
pub struct OfClient {
    stream: UnixStream,
    rx: Vec<u8>,
    next_xid: u32,
}

impl OfClient {
    /// Connects to `path` and exchanges HELLOs (OpenFlow 1.5 only, as Antrea's ofnet).
    pub fn connect(path: &Path) -> Result<Self> {
        let stream =
            UnixStream::connect(path).with_context(|| format!("connecting {}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut c = OfClient {
            stream,
            rx: Vec::new(),
            next_xid: 1,
        };
        c.send(Body::Hello {
            versions: 1 << OFP15_VERSION,
        })?;
        let hello = c.recv()?;
        match hello.body {
            Body::Hello { versions } if versions & (1 << OFP15_VERSION) != 0 => {}
            other => bail!("expected HELLO with OpenFlow 1.5, got {other:?}"),
        }
        if hello.version != OFP15_VERSION {
            bail!("switch answered version {}", hello.version);
        }
        Ok(c)
    }

    /// Sends `body` with a fresh xid; returns the xid.
    pub fn send(&mut self, body: Body) -> Result<u32> {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_msg(&Message {
            version: OFP15_VERSION,
            xid,
            body,
        })?;
        Ok(xid)
    }

    /// Sends `msg` as is.
    pub fn send_msg(&mut self, msg: &Message) -> Result<()> {
        let mut out = Vec::new();
        encode(msg, &mut out);
        self.send_raw(&out)
    }

    /// Sends raw bytes (several messages, or malformed ones).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).context("sending")
    }

    /// A fresh xid (for messages built by the caller).
    pub fn xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    /// The next message from the switch (echo requests are answered and skipped).
    pub fn recv(&mut self) -> Result<Message> {
        loop {
            match decode(&self.rx) {
                Ok((msg, n)) => {
                    self.rx.drain(..n);
                    if let Body::EchoRequest(d) = &msg.body {
                        let reply = Message {
                            version: OFP15_VERSION,
                            xid: msg.xid,
                            body: Body::EchoReply(d.clone()),
                        };
                        self.send_msg(&reply)?;
                        continue;
                    }
                    return Ok(msg);
                }
                Err(DecodeError::Incomplete { .. }) => {}
                Err(e) => bail!("undecodable message from the switch: {e}"),
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf).context("receiving")?;
            if n == 0 {
                bail!("the switch closed the connection");
            }
            self.rx.extend_from_slice(&buf[..n]);
        }
    }

    /// The bytes of the next message, undecoded (for replies in another version).
    pub fn recv_raw(&mut self) -> Result<Vec<u8>> {
        loop {
            if self.rx.len() >= 8 {
                let len = usize::from(u16::from_be_bytes([self.rx[2], self.rx[3]]));
                if len >= 8 && self.rx.len() >= len {
                    return Ok(self.rx.drain(..len).collect());
                }
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf).context("receiving")?;
            if n == 0 {
                bail!("the switch closed the connection");
            }
            self.rx.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends a BARRIER_REQUEST and returns every message received before its reply.
    pub fn barrier(&mut self) -> Result<Vec<Message>> {
        let xid = self.send(Body::BarrierRequest)?;
        let mut seen = Vec::new();
        loop {
            let m = self.recv()?;
            if m.xid == xid && m.body == Body::BarrierReply {
                return Ok(seen);
            }
            seen.push(m);
        }
    }

    /// Sends a request and collects the messages with its xid up to a reply that is not a
    /// multipart reply flagged "more" (an error also ends it).
    pub fn transact(&mut self, body: Body) -> Result<Vec<Message>> {
        let xid = self.send(body)?;
        let mut replies = Vec::new();
        loop {
            let m = self.recv()?;
            if m.xid != xid {
                continue;
            }
            let more = match &m.body {
                Body::MultipartReply { flags, .. } | Body::FlowStatsReply { flags, .. } => {
                    flags & xvs_openflow::multipart::MORE != 0
                }
                _ => false,
            };
            replies.push(m);
            if !more {
                return Ok(replies);
            }
        }
    }

    /// A multipart request of `mp_type` with `body`; the concatenated reply bodies.
    pub fn multipart(&mut self, mp_type: u16, body: Vec<u8>) -> Result<Vec<u8>> {
        let replies = self.transact(Body::MultipartRequest {
            mp_type,
            flags: 0,
            body,
        })?;
        let mut all = Vec::new();
        for r in replies {
            match r.body {
                Body::MultipartReply {
                    mp_type: t, body, ..
                } if t == mp_type => all.extend_from_slice(&body),
                other => bail!("unexpected reply to multipart {mp_type}: {other:?}"),
            }
        }
        Ok(all)
    }
}
