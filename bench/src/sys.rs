//! The only module with `unsafe` code: three system calls that the safe crates do not wrap.
//!
//! - `bpf(BPF_PROG_TEST_RUN)` with `BPF_F_TEST_XDP_LIVE_FRAMES` (the generator's transmit loop);
//! - `alarm(2)` (the generator's time bound);
//! - `setpriority(2)` (nice -20 for the harness and everything it starts).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `enum bpf_cmd` value of `BPF_PROG_TEST_RUN` (linux/bpf.h).
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `BPF_F_TEST_XDP_LIVE_FRAMES` (linux/bpf.h): frames really leave through the redirect target.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The `test` member of `union bpf_attr` (linux/bpf.h), up to `batch_size`.
///
/// The kernel accepts an attribute shorter than its own union and treats the rest as zero.
#[repr(C)]
#[derive(Debug, Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Runs an XDP program `repeat` times over `frame` in live-frames mode, `batch` frames per
/// kernel batch (0 = kernel default, 64). `ctx` is a `struct xdp_md` image (it names the
/// ingress device). Blocks until all frames were run or a signal arrives (then `EINTR`).
pub fn xdp_live_frames(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ctx: &[u8],
    repeat: u32,
    batch: u32,
) -> io::Result<()> {
    let fd = u32::try_from(prog.as_raw_fd())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len =
        |b: &[u8]| u32::try_from(b.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let mut attr = TestRunAttr {
        prog_fd: fd,
        data_size_in: len(frame)?,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: len(ctx)?,
        ctx_in: ctx.as_ptr() as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a properly initialised, correctly laid out prefix of `union bpf_attr`
    // and its size is passed along; `data_in` and `ctx_in` point at live slices whose lengths
    // are given in `data_size_in`/`ctx_size_in` and which outlive the call (the kernel only
    // reads them, and only during the call). No output buffers are given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Arms `SIGALRM` for the calling process in `secs` seconds (0 cancels).
pub fn alarm(secs: u32) {
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe {
        libc::alarm(secs);
    }
}

/// Sets the nice value of process `pid` (0 = the calling process, whose children inherit it).
pub fn set_nice(pid: u32, value: i32) -> io::Result<()> {
    // SAFETY: setpriority(2) only takes integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, pid as libc::id_t, value) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
