//! The unixctl server: JSON-RPC 1.0 over a unix socket, the protocol `ovs-appctl` speaks.
//!
//! A request is `{"id": <any>, "method": "<command>", "params": ["arg", ...]}`; the reply is
//! `{"id": <same>, "result": "<text>", "error": null}` or, on failure,
//! `{"id": <same>, "result": null, "error": "<text>"}`, which ovs-appctl prints to stderr and
//! answers with exit status 2.

use serde_json::{json, Value};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A command handler: `(method, params)` to the reply text or an error text.
pub type Handler<'a> = dyn FnMut(&str, &[String]) -> Result<String, String> + 'a;

/// A bound, non-blocking unixctl listener; the socket file is removed on drop.
#[derive(Debug)]
pub struct UnixctlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl UnixctlServer {
    /// Binds `path` (replacing a stale socket file) with mode 0660.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if path.exists() {
            // A live daemon answers a connect; only a stale socket may be replaced.
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running daemon", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves every pending connection with `handle(method, params)`; returns when none is left.
    pub fn poll(&self, handle: &mut Handler<'_>) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // A client that misbehaves only costs itself: errors end its connection.
                    let _ = serve(stream, handle);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}

impl Drop for UnixctlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(stream: UnixStream, handle: &mut Handler<'_>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut writer = stream.try_clone()?;
    let requests = serde_json::Deserializer::from_reader(stream).into_iter::<Value>();
    for req in requests {
        let req = match req {
            Ok(v) => v,
            Err(e) if e.is_eof() => return Ok(()),
            Err(e) => {
                let reply = json!({"id": null, "result": null, "error": format!("invalid JSON-RPC request: {e}")});
                writer.write_all(reply.to_string().as_bytes())?;
                return Ok(());
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let reply = match parse_request(&req) {
            Ok((method, params)) => {
                log_request(&method, &params, &id);
                match handle(&method, &params) {
                    Ok(text) => json!({"id": id, "result": with_newline(text), "error": null}),
                    Err(text) => json!({"id": id, "result": null, "error": with_newline(text)}),
                }
            }
            Err(text) => json!({"id": id, "result": null, "error": text}),
        };
        writer.write_all(reply.to_string().as_bytes())?;
    }
    Ok(())
}

fn log_request(method: &str, params: &[String], id: &Value) {
    crate::vlog::vlog!(
        crate::vlog::Module::Unixctl,
        crate::vlog::Level::Dbg,
        "received request {method}{params:?}, id={id}"
    );
}

/// OVS's unixctl ends every non-empty reply, result or error, with a newline.
fn with_newline(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn parse_request(req: &Value) -> Result<(String, Vec<String>), String> {
    let method = req
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| "request has no \"method\" string".to_string())?;
    let params = match req.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "\"params\" must be strings".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("\"params\" must be an array".to_string()),
    };
    Ok((method.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn answers_requests_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.ctl");
        let server = UnixctlServer::bind(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let mut client = UnixStream::connect(&path).expect("connect");
        client
            .write_all(br#"{"id":0,"method":"echo","params":["a","b"]}{"id":1,"method":"nope","params":[]}"#)
            .expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        server.poll(&mut |m, p| match m {
            "echo" => Ok(p.join(" ")),
            _ => Err(format!("\"{m}\" is not a valid command")),
        });
        let mut out = String::new();
        client.read_to_string(&mut out).expect("read");
        let replies: Vec<Value> = serde_json::Deserializer::from_str(&out)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .expect("json");
        assert_eq!(
            replies[0],
            json!({"id": 0, "result": "a b\n", "error": null})
        );
        assert_eq!(
            replies[1]["error"],
            json!("\"nope\" is not a valid command\n")
        );
        drop(server);
        assert!(!path.exists());
    }

    #[test]
    fn refuses_a_live_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.ctl");
        let _first = UnixctlServer::bind(&path).expect("bind");
        let e = UnixctlServer::bind(&path).expect_err("second bind must fail");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
