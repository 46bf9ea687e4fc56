//! Root-only smoke test of the `io` benchmark: a one-second run of the peers that need nothing
//! but the kernel (`offered`, `xdp`). Run with `cargo test -p xvs-bench -- --ignored` as root.

use std::process::Command;

#[test]
#[ignore = "needs root, network namespaces and XDP; run with --ignored"]
fn io_offered_and_xdp_forward_traffic() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let csv = std::env::temp_dir().join(format!("xvs-bench-smoke-{}.csv", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_xvs-bench"))
        .args([
            "io",
            "--reps",
            "1",
            "--secs",
            "1",
            "--flows",
            "1,16",
            "--peers",
            "offered,xdp",
        ])
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("run xvs-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xvs-bench failed: {stderr}");
    let text = std::fs::read_to_string(&csv).expect("read csv");
    let _ = std::fs::remove_file(&csv);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4, "one row per peer and flow count:\n{text}");
    for row in rows {
        let fwd: f64 = row[4].parse().expect("fwd_mpps");
        assert!(fwd > 0.01, "no traffic forwarded: {row:?}\n{stderr}");
        assert_eq!(row[11], "", "run failed: {row:?}");
    }
    // Everything the run created is gone.
    let tag = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .find_map(|w| w.strip_suffix("-a,").map(str::to_string))
        .expect("namespace names in the log");
    assert!(!std::path::Path::new("/run/netns")
        .join(format!("{tag}-a"))
        .exists());
}
