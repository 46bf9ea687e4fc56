//! Compiles the XDP programs in `bpf/` with clang (`-O2 -g -target bpf`) into `$OUT_DIR`.
//! `$CLANG` overrides the compiler. clang is the only build dependency (`apt-get install clang`).

use std::env;
use std::error::Error;
use std::path::PathBuf;
use std::process::Command;

const PROGRAMS: &[&str] = &["gen", "sink", "redirect"];

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=bpf/common.h");
    for name in PROGRAMS {
        let src = format!("bpf/{name}.c");
        let obj = out_dir.join(format!("{name}.o"));
        println!("cargo:rerun-if-changed={src}");
        let status = Command::new(&clang)
            .args([
                "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-c", &src, "-o",
            ])
            .arg(&obj)
            .status()
            .map_err(|e| {
                format!("cannot run `{clang}` to build {src}: {e} (apt-get install clang)")
            })?;
        if !status.success() {
            return Err(format!("`{clang}` failed on {src}: {status}").into());
        }
    }
    Ok(())
}
