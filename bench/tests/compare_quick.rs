//! `xvs-bench compare --quick` end to end, as CI runs it (root, real namespaces): xvsd and the
//! Linux bridge on scenario `l2`, UDP and TCP. Checks that every run produced a figure, and that
//! the CSV, the markdown report, the SVG and the PNG exist and parse.
//!
//! xvsd is taken from `$XVSD`, else from next to the xvs-bench binary under test (CI builds every
//! binary of the workspace first), else from `target/release/xvsd`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn xvsd() -> PathBuf {
    if let Some(p) = std::env::var_os("XVSD") {
        return PathBuf::from(p);
    }
    let bench = Path::new(env!("CARGO_BIN_EXE_xvs-bench"));
    let sibling = bench.with_file_name("xvsd");
    if sibling.exists() {
        return sibling;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/xvsd")
}

#[test]
fn compare_quick_xvsd_and_bridge() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let xvsd = xvsd();
    assert!(
        xvsd.exists(),
        "xvsd not found at {} (cargo build -p xvsd, or set XVSD)",
        xvsd.display()
    );
    let out_dir = std::env::temp_dir().join(format!("xvs-bench-compare-{}", std::process::id()));
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xvs-bench"))
        .args([
            "compare",
            "--quick",
            "--peers",
            "xvsd,bridge",
            "--scenarios",
            "l2",
        ])
        .arg("--xvsd")
        .arg(&xvsd)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run xvs-bench");
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "compare failed:\n{stderr}");
    assert!(
        took < Duration::from_secs(60),
        "--quick took {took:?}, more than CI's budget of 60 s"
    );

    // CSV: one ok row with a positive figure per (peer, traffic).
    let csv = std::fs::read_to_string(out_dir.join("compare.csv")).expect("compare.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let (c_scn, c_traffic, c_peer, c_value, c_status) = (
        col("scenario"),
        col("traffic"),
        col("peer"),
        col("value"),
        col("status"),
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (peer, scenario) in [("offered", "-"), ("xvsd", "l2"), ("bridge", "l2")] {
        for traffic in ["udp1", "tcp"] {
            let row = rows
                .iter()
                .find(|r| r[c_peer] == peer && r[c_traffic] == traffic)
                .unwrap_or_else(|| panic!("no CSV row for {peer} {traffic}:\n{csv}\n{stderr}"));
            assert_eq!(row[c_scn], scenario, "{row:?}");
            assert_eq!(row[c_status], "ok", "{row:?}\n{stderr}");
            let v: f64 = row[c_value].parse().expect("value is a number");
            assert!(
                v > 0.001,
                "{peer} {traffic} forwarded nothing: {row:?}\n{stderr}"
            );
        }
    }

    // Markdown: the table with a row per peer, and the machine it ran on.
    let md = std::fs::read_to_string(out_dir.join("compare.md")).expect("compare.md");
    assert!(md.contains("| scenario | traffic | peer |"), "{md}");
    assert!(md.contains("| l2 | udp1 | xvsd |"), "{md}");
    assert!(md.contains("| l2 | tcp | bridge |"), "{md}");
    assert!(md.contains("| kernel |"), "{md}");
    assert!(
        stdout.contains("xvsd") && stdout.contains("bridge"),
        "{stdout}"
    );

    // SVG: a complete document naming the systems; PNG: decodes to the plot's size.
    let svg = std::fs::read_to_string(out_dir.join("compare.svg")).expect("compare.svg");
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
    for name in ["xvsd", "bridge", "Mpps"] {
        assert!(svg.contains(name), "{name} not in the SVG");
    }
    let png = image::open(out_dir.join("compare.png")).expect("compare.png decodes");
    assert_eq!((png.width(), png.height()), (1200, 600));

    // The flow file that was loaded is kept with the results.
    let flows = std::fs::read_to_string(out_dir.join("flows/l2.flows")).expect("l2.flows");
    assert!(flows.contains("in_port=1 actions=output:2"));

    // Everything the run created in the system is gone.
    let tag = stderr
        .split_whitespace()
        .find_map(|w| w.strip_suffix("-a,").map(str::to_string))
        .expect("namespace names in the log");
    for suffix in ["a", "n", "b"] {
        assert!(
            !Path::new("/run/netns")
                .join(format!("{tag}-{suffix}"))
                .exists(),
            "namespace {tag}-{suffix} left behind"
        );
    }
    assert!(!std::env::temp_dir().join(&tag).exists());
    let _ = std::fs::remove_dir_all(&out_dir);
}
