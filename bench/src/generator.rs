//! The traffic generator: one `BPF_PROG_TEST_RUN` call in live-frames mode that transmits a
//! 60-byte Ethernet/IPv4/UDP frame (to UDP port 9) out of a pod's veth via `ndo_xdp_xmit`, so the
//! frames land directly in the peer port's ring with no skb and no socket. Runs as the hidden
//! `gen` subcommand in its own process (pinned, in the pod's namespace), bounded by a frame count
//! and by `alarm(2)`; SIGALRM/SIGINT/SIGTERM end the syscall with EINTR.

use crate::bpf;
use crate::process::Guarded;
use crate::sys;
use crate::topology::Endpoint;
use anyhow::{bail, Context, Result};
use nix::sched::{sched_setaffinity, setns, CloneFlags, CpuSet};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Frame length without FCS (64 bytes on the wire).
pub const FRAME_LEN: usize = 60;
/// UDP source port of flow 0; flow i uses `SPORT_BASE + i`.
pub const SPORT_BASE: u16 = 1024;
/// UDP destination port (discard); the sink drops exactly this.
pub const DPORT: u16 = 9;
/// Distinct 5-tuples of the new-connections mode before its sequence wraps: every source port
/// from `SPORT_BASE` up, times destination hosts .1 to .254 of the receiver's /24.
pub const CONN_TUPLES: u64 = (65536 - SPORT_BASE as u64) * 254;

/// Arguments of the `gen` subcommand.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Network namespace (name under /run/netns) to transmit in.
    #[arg(long)]
    pub netns: String,
    /// Interface to transmit out of.
    #[arg(long)]
    pub ifname: String,
    /// CPU to pin to.
    #[arg(long, default_value_t = 1)]
    pub cpu: usize,
    /// Number of flows (UDP source ports rotated per frame).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Every frame opens a new connection: a 5-tuple not sent before (source port and the
    /// destination's last octet walk `CONN_TUPLES` combinations); overrides `--flows`.
    #[arg(long)]
    pub new_conns: bool,
    /// Upper bound on frames sent.
    #[arg(long, default_value_t = 200_000_000)]
    pub count: u32,
    /// Upper bound on run time, seconds.
    #[arg(long, default_value_t = 10)]
    pub secs: u32,
    /// Frames per kernel batch (1..=256; 0 = kernel default 64).
    #[arg(long, default_value_t = 0)]
    pub batch: u32,
    #[arg(long)]
    pub src_mac: String,
    #[arg(long)]
    pub dst_mac: String,
    #[arg(long)]
    pub src_ip: Ipv4Addr,
    #[arg(long)]
    pub dst_ip: Ipv4Addr,
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("bad MAC {s}");
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {s}"))?;
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds the 60-byte frame: Ethernet, IPv4 (no options, DF clear, TTL 64, header checksum
/// set), UDP `SPORT_BASE -> DPORT` with checksum 0, zero payload.
pub fn build_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (FRAME_LEN - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = ip
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&SPORT_BASE.to_be_bytes());
    udp[2..4].copy_from_slice(&DPORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// `struct xdp_md` for the test run: data at 0, data_end at the frame length, the ingress
/// device (XDP_TX leaves through it), queue 0.
fn xdp_md(ifindex: u32) -> [u8; 24] {
    let fields = [0u32, FRAME_LEN as u32, 0, ifindex, 0, 0];
    let mut out = [0u8; 24];
    for (chunk, v) in out.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    out
}

/// Body of the `gen` subcommand.
pub fn run_gen(args: &GenArgs) -> Result<()> {
    let mut cpus = CpuSet::new();
    cpus.set(args.cpu).context("cpu index")?;
    sched_setaffinity(Pid::from_raw(0), &cpus)
        .with_context(|| format!("pin to cpu{}", args.cpu))?;
    let ns = File::open(Path::new("/run/netns").join(&args.netns))
        .with_context(|| format!("open netns {}", args.netns))?;
    // Single-threaded here, so the whole process moves into the namespace.
    setns(&ns, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {}", args.netns))?;
    let ifindex = nix::net::if_::if_nametoindex(args.ifname.as_str())
        .with_context(|| format!("ifindex of {}", args.ifname))?;

    let frame = build_frame(
        parse_mac(&args.src_mac)?,
        parse_mac(&args.dst_mac)?,
        args.src_ip,
        args.dst_ip,
    );
    let prog = bpf::Generator::load(args.flows.max(1), u32::from(SPORT_BASE), args.new_conns)?;

    // With a handler installed (instead of the default action, which kills the process) these
    // signals make the test run return EINTR, and the generator reports and exits 0.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGALRM, libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    let start = Instant::now();
    sys::alarm(args.secs.max(1));
    let res = sys::xdp_live_frames(prog.fd()?, &frame, &xdp_md(ifindex), args.count, args.batch);
    sys::alarm(0);
    let secs = start.elapsed().as_secs_f64();
    match res {
        Ok(()) => println!("gen: sent {} frames in {secs:.3} s", args.count),
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
            println!("gen: stopped by a signal after {secs:.3} s")
        }
        Err(e) => return Err(e).context("BPF_PROG_TEST_RUN (XDP live frames)"),
    }
    Ok(())
}

/// What the harness asks the generator to do.
#[derive(Debug, Clone)]
pub struct GenSpec<'a> {
    pub netns: &'a str,
    pub src: &'a Endpoint,
    pub dst: &'a Endpoint,
    pub cpu: usize,
    pub flows: u32,
    /// Every frame a new 5-tuple (`--new-conns`).
    pub new_conns: bool,
    pub secs: u32,
}

/// Starts the generator process (this same binary, `gen` subcommand) with its output in `log`.
pub fn spawn(spec: &GenSpec<'_>, log: &Path) -> Result<Guarded> {
    let exe = std::env::current_exe().context("own executable")?;
    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    // Bound the frame count too: 12 Mpps is about twice what this VM can generate.
    let count = u32::try_from(u64::from(spec.secs) * 12_000_000).unwrap_or(u32::MAX);
    let child = Command::new(exe)
        .arg("gen")
        .args(["--netns", spec.netns, "--ifname", spec.src.ifname])
        .args([
            "--cpu",
            &spec.cpu.to_string(),
            "--flows",
            &spec.flows.to_string(),
        ])
        .args(spec.new_conns.then_some("--new-conns"))
        .args([
            "--count",
            &count.to_string(),
            "--secs",
            &spec.secs.to_string(),
        ])
        .args([
            "--src-mac",
            &format_mac(&spec.src.mac),
            "--dst-mac",
            &format_mac(&spec.dst.mac),
        ])
        .args([
            "--src-ip",
            &spec.src.ip.to_string(),
            "--dst-ip",
            &spec.dst.ip.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("spawn generator")?;
    Ok(Guarded::new("generator", child, Signal::SIGTERM))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_and_ip_checksum() {
        let f = build_frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(10, 10, 0, 2),
            Ipv4Addr::new(10, 10, 0, 3),
        );
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
        // A correct header sums to 0xffff.
        let mut sum: u32 = f[14..34]
            .chunks_exact(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), SPORT_BASE);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), DPORT);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 26);
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:0a:0a:00:aa:02").unwrap();
        assert_eq!(format_mac(&m), "02:0a:0a:00:aa:02");
        assert!(parse_mac("02:0a").is_err());
    }
}
