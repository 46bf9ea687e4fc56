//! `xvs-bench pipeline --quick` end to end (root, real DPDK): testpmd and xvsd (built with
//! `--features dpdk`) each replay the same pcap from `net_pcap` into `net_null`, and xvsd-mem
//! replays it from xvsd's own `replay` port into its `null` port (with its io-flow ceiling);
//! the test checks that every peer forwarded packets (not how fast), that the CSV, markdown,
//! SVG and PNG are written, and that nothing is left behind (network namespace, hugetlbfs
//! mount, vm.nr_hugepages).
//!
//! Skipped, saying why, when not root, when DPDK's testpmd is not installed, when the xvsd
//! binary was built without DPDK, or when hugepages cannot be reserved. The xvsd-mem-only
//! test needs neither DPDK nor hugepages, only root and an xvsd of any build.
//! xvsd is taken from `$XVSD`, else from next to the xvs-bench binary under test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests run one at a time: each checks that no harness namespace, hugetlbfs mount or
/// hugepage reservation is left after its run, which another harness run in progress would
/// break.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn xvsd() -> PathBuf {
    if let Some(p) = std::env::var_os("XVSD") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_BIN_EXE_xvs-bench")).with_file_name("xvsd")
}

/// Why the test cannot run here, if it cannot.
fn unavailable(xvsd: &Path) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    if !Path::new("/usr/bin/dpdk-testpmd").exists() {
        return Some("dpdk-testpmd not installed (apt-get install dpdk)".into());
    }
    if !xvsd.exists() {
        return Some(format!(
            "{} not found (cargo build -p xvsd --features dpdk, or set XVSD)",
            xvsd.display()
        ));
    }
    // xvsd says whether it can drive DPDK ports when it checks such a configuration.
    let dir = std::env::temp_dir().join(format!("xvs-pipeline-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let cfg = dir.join("probe.toml");
    std::fs::write(
        &cfg,
        format!(
            "bridge = \"br-int\"\nrun_dir = \"{}\"\nworkers = [0]\n[[port]]\nname = \"n\"\n\
             type = \"dpdk\"\nofport = 1\ndevargs = \"net_null0,no-rx=1\"\n",
            dir.display()
        ),
    )
    .ok()?;
    let out = Command::new(xvsd)
        .arg("--config")
        .arg(&cfg)
        .arg("--check")
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("built with DPDK support") {
        return Some(format!(
            "{} was built without --features dpdk",
            xvsd.display()
        ));
    }
    let nr = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").ok()?;
    if nr.trim().parse::<u64>().is_err()
        || std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/vm/nr_hugepages")
            .is_err()
    {
        return Some("hugepages cannot be reserved (vm.nr_hugepages not writable)".into());
    }
    None
}

#[test]
fn pipeline_quick_testpmd_and_xvsd_forward() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let xvsd = xvsd();
    if let Some(why) = unavailable(&xvsd) {
        eprintln!("skipped: {why}");
        return;
    }
    let hugepages_before = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();
    let before = leftovers();
    let out_dir = std::env::temp_dir().join(format!("xvs-bench-pipeline-{}", std::process::id()));
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xvs-bench"))
        .args(["pipeline", "--quick"])
        .arg("--xvsd")
        .arg(&xvsd)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run xvs-bench");
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "pipeline --quick failed:\n{stderr}");
    if stderr.contains("hugepages unavailable") && stderr.contains("failed") {
        eprintln!("skipped: hugepages could not be reserved on this host:\n{stderr}");
        return;
    }
    assert!(
        took < Duration::from_secs(120),
        "--quick took {took:?}\n{stderr}"
    );

    let csv = std::fs::read_to_string(out_dir.join("pipeline.csv")).expect("pipeline.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("scenario,pcap,peer,rep,fwd_mpps,rx_mpps,status,note")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for peer in ["testpmd", "xvsd", "xvsd-mem", "xvsd-mem-ioflow"] {
        let row = rows
            .iter()
            .find(|r| r[2] == peer)
            .unwrap_or_else(|| panic!("no {peer} row in\n{csv}\n{stderr}"));
        let fwd: f64 = row[4].parse().expect("fwd_mpps");
        assert_eq!(row[6], "ok", "{peer}: {row:?}\n{stderr}");
        assert!(fwd > 0.0, "{peer} forwarded nothing: {row:?}\n{stderr}");
        assert_eq!(row[1], "udp-1flow");
    }
    let md = std::fs::read_to_string(out_dir.join("pipeline.md")).expect("pipeline.md");
    assert!(md.contains("| l2 | udp-1flow | xvsd |"), "{md}");
    assert!(md.contains("| io-fwd | udp-1flow | testpmd |"), "{md}");
    assert!(md.contains("| l2 | udp-1flow | xvsd-mem |"), "{md}");
    assert!(
        md.contains("| io-fwd | udp-1flow | xvsd-mem-ioflow |"),
        "{md}"
    );
    let svg = std::fs::read_to_string(out_dir.join("pipeline.svg")).expect("pipeline.svg");
    assert!(svg.contains("<svg"));
    let png = std::fs::read(out_dir.join("pipeline.png")).expect("pipeline.png");
    assert!(png.starts_with(b"\x89PNG"));

    // Nothing left behind: no new namespace or hugetlbfs mount of the harness, the sysctl
    // restored.
    assert_eq!(
        leftovers(),
        before,
        "the harness left a namespace or a mount behind"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default(),
        hugepages_before,
        "vm.nr_hugepages was not restored"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn pipeline_quick_xvsd_mem_forwards_without_dpdk() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let xvsd = xvsd();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    if !xvsd.exists() {
        eprintln!(
            "skipped: {} not found (cargo build -p xvsd, or set XVSD)",
            xvsd.display()
        );
        return;
    }
    let hugepages_before = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();
    let before = leftovers();
    let out_dir =
        std::env::temp_dir().join(format!("xvs-bench-pipeline-mem-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_xvs-bench"))
        .args(["pipeline", "--quick", "--peers", "xvsd-mem"])
        .arg("--xvsd")
        .arg(&xvsd)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run xvs-bench");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "pipeline --quick --peers xvsd-mem failed:\n{stderr}"
    );
    let csv = std::fs::read_to_string(out_dir.join("pipeline.csv")).expect("pipeline.csv");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for (scenario, peer) in [("l2", "xvsd-mem"), ("io-fwd", "xvsd-mem-ioflow")] {
        let row = rows
            .iter()
            .find(|r| r[0] == scenario && r[2] == peer)
            .unwrap_or_else(|| panic!("no {scenario}/{peer} row in\n{csv}\n{stderr}"));
        let fwd: f64 = row[4].parse().expect("fwd_mpps");
        assert_eq!(row[6], "ok", "{peer}: {row:?}\n{stderr}");
        assert!(fwd > 0.0, "{peer} forwarded nothing: {row:?}\n{stderr}");
    }
    assert!(!stderr.contains("hugepages unavailable"), "{stderr}");
    assert_eq!(
        leftovers(),
        before,
        "the harness left a namespace or a mount behind"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default(),
        hugepages_before,
        "vm.nr_hugepages changed"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The harness's namespaces (`xvsp<pid>`) and hugetlbfs mounts (under `/tmp/xvsp<pid>/`).
fn leftovers() -> Vec<String> {
    let ns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut v: Vec<String> = ns
        .lines()
        .filter(|l| l.starts_with("xvsp"))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .chain(
            mounts
                .lines()
                .filter(|l| l.contains("hugetlbfs") && l.contains("/xvsp"))
                .map(str::to_string),
        )
        .collect();
    v.sort();
    v
}
