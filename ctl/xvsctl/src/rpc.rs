//! The unixctl client: one JSON-RPC 1.0 request per call over `<run_dir>/xvsd.ctl`, as
//! `ovs-appctl` sends it (`{"id":N,"method":"...","params":["..."]}`).

use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The socket could not be reached (xvsd not running, wrong run directory, permissions).
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("{path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// The reply was not a JSON-RPC reply.
    #[error("{path}: malformed reply: {detail}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// xvsd answered with an error (its text, as ovs-appctl prints it).
    #[error("{0}")]
    Server(String),
}

/// A client of one xvsd control socket.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of `<run_dir>/xvsd.ctl`.
    pub fn new(run_dir: &Path) -> Self {
        Self {
            path: run_dir.join("xvsd.ctl"),
            timeout: Duration::from_secs(10),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `method` with `params` and returns the reply text.
    pub fn call(&self, method: &str, params: &[String]) -> Result<String, RpcError> {
        let io = |source| RpcError::Io {
            path: self.path.clone(),
            source,
        };
        let mut s = UnixStream::connect(&self.path).map_err(|source| RpcError::Connect {
            path: self.path.clone(),
            source,
        })?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let req = json!({"id": 0, "method": method, "params": params});
        s.write_all(req.to_string().as_bytes()).map_err(io)?;
        let mut replies = serde_json::Deserializer::from_reader(&s).into_iter::<Value>();
        let reply = match replies.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(RpcError::Protocol {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })
            }
            None => {
                return Err(RpcError::Protocol {
                    path: self.path.clone(),
                    detail: "connection closed without a reply".to_string(),
                })
            }
        };
        parse_reply(&reply).map_err(|e| match e {
            ReplyError::Server(t) => RpcError::Server(t),
            ReplyError::Malformed(detail) => RpcError::Protocol {
                path: self.path.clone(),
                detail,
            },
        })
    }
}

enum ReplyError {
    Server(String),
    Malformed(String),
}

fn parse_reply(v: &Value) -> Result<String, ReplyError> {
    match (v.get("error"), v.get("result")) {
        (Some(Value::String(e)), _) => Err(ReplyError::Server(e.clone())),
        (Some(e), _) if !e.is_null() => Err(ReplyError::Server(e.to_string())),
        (_, Some(Value::String(r))) => Ok(r.clone()),
        _ => Err(ReplyError::Malformed(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    #[test]
    fn sends_ovs_appctl_requests_and_reads_replies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = UnixListener::bind(dir.path().join("xvsd.ctl")).expect("bind");
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in [
                r#"{"id":0,"result":"ok\n","error":null}"#,
                r#"{"id":0,"result":null,"error":"no such thing\n"}"#,
            ] {
                let (mut c, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 512];
                let n = c.read(&mut buf).expect("read");
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                c.write_all(reply.as_bytes()).expect("write");
            }
            seen
        });
        let client = Client::new(dir.path());
        assert_eq!(
            client.call("dpif/show", &[]).expect("reply"),
            "ok\n".to_string()
        );
        match client.call("vlog/set", &["x".to_string()]) {
            Err(RpcError::Server(t)) => assert_eq!(t, "no such thing\n"),
            other => panic!("{other:?}"),
        }
        let seen = server.join().expect("server");
        let req: Value = serde_json::from_str(&seen[0]).expect("json");
        assert_eq!(req, json!({"id": 0, "method": "dpif/show", "params": []}));
        let req: Value = serde_json::from_str(&seen[1]).expect("json");
        assert_eq!(req["params"], json!(["x"]));
    }

    #[test]
    fn a_missing_daemon_is_a_connect_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Client::new(dir.path())
            .call("version", &[])
            .expect_err("no socket");
        assert!(matches!(e, RpcError::Connect { .. }), "{e}");
    }
}
