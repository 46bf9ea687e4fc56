//! The bench's XDP programs (C sources in `bench/bpf/`, compiled by `build.rs`), loaded with aya.

use anyhow::{Context, Result};
use aya::programs::{Xdp, XdpMode};
use aya::{include_bytes_aligned, Ebpf, EbpfLoader};
use std::os::fd::{AsFd, BorrowedFd};

static GEN_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen.o"));
static SINK_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sink.o"));
static REDIRECT_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/redirect.o"));

fn xdp_program<'a>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = bpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()
        .with_context(|| format!("program {name} is not XDP"))?;
    Ok(prog)
}

/// Attaches `name` from `bpf` to each interface in native (driver) mode, in the caller's netns.
fn load_and_attach(bpf: &mut Ebpf, name: &str, ifaces: &[&str]) -> Result<()> {
    let prog = xdp_program(bpf, name)?;
    prog.load().with_context(|| format!("load {name}"))?;
    for ifname in ifaces {
        prog.attach(ifname, XdpMode::Driver)
            .with_context(|| format!("attach {name} to {ifname} (native)"))?;
    }
    Ok(())
}

/// An attached program set; dropping it detaches and unloads everything.
#[derive(Debug)]
pub struct Attached(#[allow(dead_code)] Vec<Ebpf>);

/// Loads the sink (drop UDP to port 9, pass the rest) and attaches it to `ifaces`.
/// Must run on a thread inside the target namespace.
pub fn attach_sink(ifaces: &[&str]) -> Result<Attached> {
    let mut bpf = Ebpf::load(SINK_OBJ).context("load sink object")?;
    load_and_attach(&mut bpf, "xdp_sink", ifaces)?;
    Ok(Attached(vec![bpf]))
}

/// Loads one redirect program per direction: frames arriving on `a` leave by `b` and vice versa.
/// Must run on a thread inside the namespace of `a` and `b`.
pub fn attach_redirect_pair(a: &str, b: &str) -> Result<Attached> {
    let mut out = Vec::with_capacity(2);
    for (from, to) in [(a, b), (b, a)] {
        let to_index =
            nix::net::if_::if_nametoindex(to).with_context(|| format!("ifindex of {to}"))?;
        let mut bpf = EbpfLoader::new()
            .override_global("OUT_IFINDEX", &to_index, true)
            .load(REDIRECT_OBJ)
            .context("load redirect object")?;
        load_and_attach(&mut bpf, "xdp_redirect", &[from])?;
        out.push(bpf);
    }
    Ok(Attached(out))
}

/// The generator program, loaded but not attached (it is run with `BPF_PROG_TEST_RUN`).
#[derive(Debug)]
pub struct Generator {
    bpf: Ebpf,
}

impl Generator {
    /// Loads the generator; with `flows > 1` it rotates the UDP source port over
    /// `sport_base .. sport_base + flows`; with `new_conns` every frame gets a 5-tuple not
    /// sent before (see `bpf/gen.c` and [`crate::generator::CONN_TUPLES`]).
    pub fn load(flows: u32, sport_base: u32, new_conns: bool) -> Result<Self> {
        let new_conns = u32::from(new_conns);
        let mut bpf = EbpfLoader::new()
            .override_global("NFLOWS", &flows, true)
            .override_global("SPORT_BASE", &sport_base, true)
            .override_global("NEW_CONNS", &new_conns, true)
            .load(GEN_OBJ)
            .context("load generator object")?;
        xdp_program(&mut bpf, "xdp_gen")?
            .load()
            .context("load xdp_gen")?;
        Ok(Self { bpf })
    }

    /// The program fd, for `BPF_PROG_TEST_RUN`.
    pub fn fd(&self) -> Result<BorrowedFd<'_>> {
        let prog: &Xdp = self
            .bpf
            .program("xdp_gen")
            .context("program xdp_gen missing")?
            .try_into()
            .context("xdp_gen is not XDP")?;
        Ok(prog.fd().context("xdp_gen not loaded")?.as_fd())
    }
}
