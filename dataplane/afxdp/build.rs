//! Compiles the XDP program (`bpf/xvs_redirect.c`) with clang into `$OUT_DIR/xvs_redirect.o`.
//!
//! clang is the only build dependency of this crate beyond Rust (`apt-get install clang`); the C
//! source is header-free. `$CLANG` overrides the compiler.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/xvs_redirect.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = match std::env::var_os("OUT_DIR") {
        Some(d) => PathBuf::from(d),
        None => fail("OUT_DIR is not set (build.rs must run under cargo)"),
    };
    let obj = out_dir.join("xvs_redirect.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let output = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", src, "-o",
        ])
        .arg(&obj)
        .output();
    match output {
        Ok(o) if o.status.success() => {}
        Ok(o) => fail(&format!(
            "{clang} failed to compile {src} ({}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "`{clang}` not found: the XDP program is compiled with clang. \
             Install it with `apt-get install clang` (or set $CLANG to a clang binary)."
        )),
        Err(e) => fail(&format!("running {clang}: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: xvs-afxdp build: {msg}");
    std::process::exit(1);
}
