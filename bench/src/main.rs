//! xvs-bench: end-to-end benchmarks of xvs against its peers.
//!
//! `xvs-bench compare` runs xvsd, OVS (userspace datapath), the Linux bridge, an XDP redirect
//! and testpmd on one topology with the same flows ([`scenarios`]) and traffic, and writes a
//! table, a CSV, a markdown report and a plot ([`compare`], [`ovs`], [`plot`]).
//!
//! `xvs-bench io` measures the I/O ceiling of each dataplane on the veth namespace topology of
//! `peer-baselines.md`: a live-frames XDP generator in pod-a, the dataplane in the node namespace
//! on cpu0, an XDP sink in pod-b, forwarded Mpps counted at pod-b. Layers:
//! - [`topology`]: namespaces, veths, offloads; removed on drop;
//! - [`bpf`] + `bench/bpf/*.c`: the generator, sink and redirect XDP programs (aya);
//! - [`generator`]: the `gen` subcommand (one `BPF_PROG_TEST_RUN` in live-frames mode);
//! - [`peers`]: the dataplanes under test, one enum;
//! - [`measure`]: counters from `/proc/.../net/dev` and `/proc/stat`, summaries;
//! - [`io_bench`]: the run loop, the table and the CSV;
//! - [`process`]: guards that stop every started process by its PID;
//! - `sys`: the only unsafe code (raw syscalls).
//!
//! `xvs-bench tunnel` ([`tunnel_bench`], also `compare --scenarios tunnel`): two nodes over
//! Geneve and VXLAN, xvsd against OVS's userspace datapath and the kernel's own vxlan devices
//! on the same four-namespace topology.
#![deny(unsafe_code)]

mod bpf;
mod compare;
mod generator;
mod io_bench;
mod measure;
mod ovs;
mod pcaps;
mod peers;
mod pipeline;
mod pipeline_flows;
mod plot;
mod process;
mod scenarios;
#[allow(unsafe_code)]
mod sys;
mod topology;
mod tunnel_bench;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "xvs-bench",
    about = "Benchmarks of xvs against its peers (run as root)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// I/O ceiling: forwarded Mpps of xvsd, testpmd and XDP redirect on the veth topology.
    Io(io_bench::IoArgs),
    /// xvsd and its peers (OVS, Linux bridge, XDP, testpmd) side by side: scenarios, traffic
    /// kinds, a table, a CSV and a plot.
    Compare(compare::CompareArgs),
    /// The userspace pipeline alone: net_pcap -> switch -> net_null on one core; xvsd (DPDK
    /// ports) against OVS-DPDK and testpmd, same pcaps and flow files.
    Pipeline(pipeline::PipelineArgs),
    /// Two nodes over Geneve and VXLAN: xvsd against OVS (userspace datapath) and the kernel's
    /// vxlan devices (Mpps, TCP).
    Tunnel(tunnel_bench::TunnelArgs),
    /// Removes namespaces and directories left by runs that were killed with SIGKILL.
    Cleanup,
    /// Internal: the traffic generator process started by `io`.
    #[command(hide = true)]
    Gen(generator::GenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res: Result<()> = match &cli.cmd {
        Cmd::Io(args) => io_bench::run(args),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Tunnel(args) => tunnel_bench::run_tunnel(args),
        Cmd::Pipeline(args) => pipeline::run(args),
        Cmd::Gen(args) => generator::run_gen(args),
        Cmd::Cleanup => topology::cleanup_stale(),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvs-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
