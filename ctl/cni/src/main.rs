//! `xvs-cni`: the CNI plugin binary. The runtime sets `CNI_*` variables and writes the netconf
//! on stdin; the result (or the error JSON with its code) goes to stdout.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;
use xvs_cni::conf::{self, Command};
use xvs_cni::error::{CniError, Code};
use xvs_cni::plugin;
use xvs_cni::result::version_result;

fn print(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // Nothing is left to tell anyone when stdout is gone.
    let _ = writeln!(out, "{v}");
}

fn run(stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    let get = |k: &str| std::env::var(k).ok();
    if conf::command(&get)? == Command::Version {
        let v = conf::requested_version(stdin).unwrap_or_else(|| "1.0.0".to_string());
        return Ok(Some(version_result(&v)));
    }
    let env = conf::env(&get)?;
    let netconf = conf::netconf(stdin)?;
    match env.command {
        Command::Add => plugin::add(&env, &netconf).map(Some),
        Command::Del => plugin::del(&env, &netconf).map(|()| None),
        Command::Check => plugin::check(&env, &netconf).map(|()| None),
        Command::Version => Ok(None),
    }
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let outcome = std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|e| CniError::new(Code::Io, "reading stdin").details(e))
        .and_then(|_| run(&stdin));
    match outcome {
        Ok(Some(v)) => {
            print(&v);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let version = conf::requested_version(&stdin)
                .filter(|v| conf::SUPPORTED_VERSIONS.contains(&v.as_str()))
                .unwrap_or_else(|| "1.0.0".to_string());
            print(&e.to_json(&version));
            ExitCode::FAILURE
        }
    }
}
