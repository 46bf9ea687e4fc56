//! `xvsctl`: see the library documentation.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvsctl::capture::{self, Limits};
use xvsctl::cli::{Cli, Output, Verb};
use xvsctl::rpc::{Client, RpcError};
use xvsctl::stats;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // xvsd's own error text is printed as ovs-appctl prints it; exit status 2 as well.
            if let Some(RpcError::Server(text)) = e.downcast_ref::<RpcError>() {
                eprint!("{text}");
                return ExitCode::from(2);
            }
            eprintln!("xvsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

fn run(cli: &Cli) -> Result<()> {
    if let Some((socket, q, output)) = cli.verb.agent_query(&cli.run_dir) {
        let r = xvs_agent_query::request(&socket, &q)?;
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&r)?),
            Output::Text => print!("{}", xvs_agent_query::format(&r)),
        }
        return Ok(());
    }
    let client = Client::new(&cli.run_dir);
    if let Some((method, params)) = cli.verb.unixctl() {
        let text = client.call(&method, &params)?;
        print!("{text}");
        return Ok(());
    }
    match &cli.verb {
        Verb::Capture {
            port,
            file,
            count,
            timeout,
        } => {
            let limits = Limits {
                count: *count,
                timeout: timeout.map(Duration::from_secs_f64),
                poll: Duration::from_millis(20),
            };
            let stop = interrupt_flag()?;
            let out: Box<dyn Write> = if file.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(file)
                        .with_context(|| format!("creating {}", file.display()))?,
                ))
            };
            // As tcpdump says "listening on": the capture is on from here.
            let o = capture::run(&client, port, out, limits, &stop, &mut || {
                eprintln!("xvsctl: capturing on {port}");
            })?;
            eprintln!(
                "{} packets captured on {port}, {} written, {} dropped",
                o.captured, o.written, o.dropped
            );
            Ok(())
        }
        Verb::Stats { interval, count } => {
            if !(interval.is_finite() && *interval > 0.0) {
                bail!("--interval must be a positive number of seconds");
            }
            let stop = interrupt_flag()?;
            let tty = std::io::stdout().is_terminal();
            let mut prev = None;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sample =
                    stats::parse(&client.call("xvs/stats", &[])?).context("parsing xvs/stats")?;
                let table = stats::render(&sample, prev.as_ref());
                let mut out = std::io::stdout().lock();
                if tty {
                    // Home and clear: a refreshing table on a terminal.
                    write!(out, "\x1b[H\x1b[2J{table}")?;
                } else {
                    writeln!(out, "{table}")?;
                }
                out.flush()?;
                prev = Some(sample);
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    break;
                }
                std::thread::sleep(Duration::from_secs_f64(*interval));
            }
            Ok(())
        }
        _ => bail!("unhandled verb"),
    }
}
