//! The xvsd side: `xvs/add-port` and `xvs/del-port` over xvsd's unixctl socket (JSON-RPC 1.0,
//! the protocol `ovs-appctl -t` speaks), matched on the error words of the contract.

use crate::error::{CniError, CniResult, Code};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xvs_agent::ofconn::OfConn;

/// Attaching an AF_XDP port can take a while (XDP program load, UMEM setup).
const TIMEOUT: Duration = Duration::from_secs(30);

/// A reply of xvsd: the result text, or the error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The command succeeded with this output.
    Ok(String),
    /// xvsd refused it with this text.
    Refused(String),
}

/// The control socket of the xvsd running in `run_dir`.
#[derive(Debug, Clone)]
pub struct Xvsd {
    socket: PathBuf,
}

impl Xvsd {
    /// The xvsd whose run directory is `run_dir` (socket `xvsd.ctl`).
    pub fn new(run_dir: &Path) -> Self {
        Self {
            socket: run_dir.join("xvsd.ctl"),
        }
    }

    /// Sends one command; a socket that cannot be reached is [`Code::TryAgainLater`].
    pub fn call(&self, method: &str, params: &[&str]) -> CniResult<Reply> {
        let unreachable = |e: std::io::Error| {
            CniError::new(
                Code::TryAgainLater,
                format!("xvsd is not reachable at {}", self.socket.display()),
            )
            .details(e)
        };
        let mut s = UnixStream::connect(&self.socket).map_err(unreachable)?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
        let req = json!({"id": 0, "method": method, "params": params});
        s.write_all(req.to_string().as_bytes())
            .map_err(unreachable)?;
        let reply: Value = serde_json::Deserializer::from_reader(&s)
            .into_iter::<Value>()
            .next()
            .ok_or_else(|| {
                CniError::new(Code::Io, format!("xvsd closed {method} without a reply"))
            })?
            .map_err(|e| CniError::new(Code::Io, format!("xvsd's reply to {method}")).details(e))?;
        match (reply.get("error"), reply.get("result")) {
            (Some(Value::String(e)), _) => Ok(Reply::Refused(e.clone())),
            (_, Some(Value::String(r))) => Ok(Reply::Ok(r.clone())),
            _ => Err(
                CniError::new(Code::Io, format!("xvsd's reply to {method} is malformed"))
                    .details(reply),
            ),
        }
    }

    /// Attaches `ifname` (optionally at `ofport`); returns its OpenFlow port.
    pub fn add_port(&self, ifname: &str, ofport: Option<u32>) -> CniResult<u32> {
        let want = ofport.map(|p| format!("ofport={p}"));
        let mut params = vec![ifname];
        if let Some(w) = &want {
            params.push(w);
        }
        match self.call("xvs/add-port", &params)? {
            Reply::Ok(text) => parse_ofport(&text).ok_or_else(|| {
                CniError::new(Code::Io, "xvs/add-port answered without ofport=N").details(text)
            }),
            Reply::Refused(e) => Err(CniError::new(
                Code::XvsdRefused,
                format!("xvsd refused to attach {ifname}"),
            )
            .details(e.trim())),
        }
    }

    /// Attaches the veth end `ifname` that was just created. A port of that name left over
    /// from an earlier interface (a DEL that could not reach xvsd) points at a deleted
    /// interface: it is detached and the new one attached in its place. xvsd calls it a
    /// "stale port" when it noticed the interface changed, "already a port" otherwise.
    pub fn attach(&self, ifname: &str) -> CniResult<u32> {
        match self.add_port(ifname, None) {
            Err(e)
                if e.code == Code::XvsdRefused
                    && (e.details.contains("already a port")
                        || e.details.contains("stale port")) =>
            {
                self.del_port(ifname)?;
                self.add_port(ifname, None)
            }
            r => r,
        }
    }

    /// The OpenFlow port number xvsd's bridge gives `ifname` (PORT_DESC over
    /// `<run_dir>/<bridge>.mgmt`), `None` when it is no port.
    pub fn ofport_of(&self, bridge: &str, ifname: &str) -> CniResult<Option<u32>> {
        let socket = self.socket.with_file_name(format!("{bridge}.mgmt"));
        let mut conn = OfConn::connect(&socket).map_err(|e| {
            CniError::new(
                Code::TryAgainLater,
                format!(
                    "xvsd's OpenFlow socket {} is not reachable",
                    socket.display()
                ),
            )
            .details(e)
        })?;
        let ports = conn
            .port_descs()
            .map_err(|e| CniError::new(Code::Io, "listing xvsd's ports").details(e))?;
        Ok(ports.iter().find(|p| p.name == ifname).map(|p| p.port_no))
    }

    /// Detaches `ifname`; true when it was a port, false when xvsd had no such port.
    pub fn del_port(&self, ifname: &str) -> CniResult<bool> {
        match self.call("xvs/del-port", &[ifname])? {
            Reply::Ok(_) => Ok(true),
            Reply::Refused(e) if e.contains("no such port") => Ok(false),
            Reply::Refused(e) => Err(CniError::new(
                Code::XvsdRefused,
                format!("xvsd refused to detach {ifname}"),
            )
            .details(e.trim())),
        }
    }
}

/// Reads `ofport=<N>` from add-port's output.
pub fn parse_ofport(text: &str) -> Option<u32> {
    text.trim()
        .strip_prefix("ofport=")?
        .parse()
        .ok()
        .filter(|p| *p > 0 && *p < 0xffff_ff00)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn ofport_text() {
        assert_eq!(parse_ofport("ofport=7\n"), Some(7));
        assert_eq!(parse_ofport("ofport=0\n"), None);
        assert_eq!(parse_ofport("port 7"), None);
    }

    /// Serves one connection with `reply` after checking the request's framing.
    fn serve_once(dir: &Path, reply: Value, want: Value) -> std::thread::JoinHandle<()> {
        let l = UnixListener::bind(dir.join("xvsd.ctl")).expect("bind");
        std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let req: Value = serde_json::Deserializer::from_reader(&s)
                .into_iter::<Value>()
                .next()
                .expect("a request")
                .expect("json");
            assert_eq!(req["method"], want["method"]);
            assert_eq!(req["params"], want["params"]);
            (&s).write_all(reply.to_string().as_bytes()).expect("write");
        })
    }

    #[test]
    fn add_and_del_follow_the_contract() {
        let d = tempfile::tempdir().expect("tempdir");
        let x = Xvsd::new(d.path());
        let e = x.add_port("p1", None).expect_err("nobody listens");
        assert_eq!(e.code, Code::TryAgainLater);

        let t = serve_once(
            d.path(),
            json!({"id": 0, "result": "ofport=12\n", "error": null}),
            json!({"method": "xvs/add-port", "params": ["p1", "ofport=12"]}),
        );
        assert_eq!(x.add_port("p1", Some(12)).expect("added"), 12);
        t.join().expect("server");
        std::fs::remove_file(d.path().join("xvsd.ctl")).expect("rm");

        let t = serve_once(
            d.path(),
            json!({"id": 0, "result": null, "error": "p1 is already a port"}),
            json!({"method": "xvs/add-port", "params": ["p1"]}),
        );
        let e = x.add_port("p1", None).expect_err("refused");
        assert_eq!(e.code, Code::XvsdRefused);
        assert!(e.to_string().contains("already a port"));
        t.join().expect("server");
        std::fs::remove_file(d.path().join("xvsd.ctl")).expect("rm");

        let t = serve_once(
            d.path(),
            json!({"id": 0, "result": null, "error": "no such port p1"}),
            json!({"method": "xvs/del-port", "params": ["p1"]}),
        );
        assert!(!x.del_port("p1").expect("missing is fine"));
        t.join().expect("server");
    }
}
