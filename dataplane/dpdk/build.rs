//! With the `dpdk` feature: finds the installed libdpdk through pkg-config, generates the Rust
//! binding from its headers with bindgen (only the items xvs uses), and compiles the C shim that
//! wraps DPDK's static-inline fast-path functions. Without the feature: nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DPDK").is_some() {
        #[cfg(feature = "dpdk")]
        dpdk::build();
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;

    pub fn build() {
        println!("cargo:rerun-if-changed=csrc/shim.c");
        println!("cargo:rerun-if-changed=csrc/shim.h");
        let lib = match pkg_config::Config::new()
            .atleast_version("22.11")
            .probe("libdpdk")
        {
            Ok(lib) => lib,
            Err(e) => panic!(
                "the `dpdk` feature needs DPDK >= 22.11 development files found by pkg-config \
                 (Debian: apt-get install libdpdk-dev pkg-config): {e}"
            ),
        };
        // pkg-config's cflags carry `-include rte_config.h` and `-march=...`: DPDK's headers
        // need both, and the shim must see the same configuration as the library.
        let cflags = std::process::Command::new("pkg-config")
            .args(["--cflags", "libdpdk"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let flags: Vec<String> = cflags.split_whitespace().map(str::to_string).collect();

        let mut cc = cc::Build::new();
        // rte_dev_dma_map/unmap (PCI DMA mapping of the frame pools) are still experimental.
        cc.file("csrc/shim.c")
            .warnings(true)
            .opt_level(3)
            .define("ALLOW_EXPERIMENTAL_API", None);
        for p in &lib.include_paths {
            cc.include(p);
        }
        let mut i = 0;
        while i < flags.len() {
            let f = &flags[i];
            if f == "-include" {
                if let Some(h) = flags.get(i + 1) {
                    cc.flag("-include").flag(h);
                }
                i += 2;
                continue;
            }
            if f.starts_with("-march") || f.starts_with("-m") || f.starts_with("-D") {
                cc.flag(f);
            }
            i += 1;
        }
        cc.compile("xvs_dpdk_shim");

        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let mut b = bindgen::Builder::default()
            .header("csrc/shim.h")
            .clang_args(flags.iter())
            .clang_arg("-DALLOW_EXPERIMENTAL_API")
            .allowlist_function("rte_eal_init")
            .allowlist_function("rte_eal_cleanup")
            .allowlist_function("rte_eal_get_runtime_dir")
            .allowlist_function("rte_strerror")
            .allowlist_function("rte_eth_dev_get_port_by_name")
            .allowlist_function("rte_eth_dev_info_get")
            .allowlist_function("rte_eth_dev_configure")
            .allowlist_function("rte_eth_rx_queue_setup")
            .allowlist_function("rte_eth_tx_queue_setup")
            .allowlist_function("rte_eth_dev_start")
            .allowlist_function("rte_eth_dev_stop")
            .allowlist_function("rte_eth_dev_close")
            .allowlist_function("rte_eth_dev_socket_id")
            .allowlist_function("rte_eth_promiscuous_enable")
            .allowlist_function("rte_eth_macaddr_get")
            .allowlist_function("rte_eth_stats_get")
            .allowlist_function("rte_eth_xstats_get_names")
            .allowlist_function("rte_eth_xstats_get")
            .allowlist_function("rte_mempool_free")
            .allowlist_function("xvs_.*")
            .allowlist_var("RTE_ETH_MQ_RX_.*")
            .allowlist_var("RTE_ETH_MQ_TX_.*")
            .allowlist_var("RTE_ETH_XSTATS_NAME_SIZE")
            .allowlist_var("RTE_ETHDEV_QUEUE_STAT_CNTRS")
            .allowlist_var("XVS_MAX_BURST")
            .allowlist_type("rte_eth_xstat_name")
            .opaque_type("rte_mempool")
            .opaque_type("rte_mbuf")
            .layout_tests(false)
            .derive_default(true)
            .derive_debug(false)
            .prepend_enum_name(false)
            .default_enum_style(bindgen::EnumVariation::Consts)
            .generate_comments(false);
        for p in &lib.include_paths {
            b = b.clang_arg(format!("-I{}", p.display()));
        }
        let bindings = b
            .generate()
            .unwrap_or_else(|e| panic!("bindgen over DPDK's headers failed: {e}"));
        bindings
            .write_to_file(out.join("dpdk_bindings.rs"))
            .expect("writing the binding");
    }
}
