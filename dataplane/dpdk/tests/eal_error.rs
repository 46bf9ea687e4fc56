//! EAL failures are reported, and EAL does not pretend to start afterwards.
#![cfg(feature = "dpdk")]

use xvs_dpdk::{DpdkError, Eal, EalConfig};

#[test]
fn bad_devargs_fail_eal_clearly() {
    let err = Eal::init(&EalConfig {
        cores: "0".into(),
        memory_mb: 64,
        no_huge: true,
        devices: vec!["net_nosuchdriver0,iface=x".into()],
        extra_args: vec![],
    })
    .expect_err("no driver for this vdev");
    let msg = err.to_string();
    assert!(matches!(err, DpdkError::Eal { .. }), "{msg}");
    assert!(msg.contains("net_nosuchdriver0"), "{msg}");
    assert!(matches!(
        Eal::init(&EalConfig::default()),
        Err(DpdkError::EalUnavailable(_))
    ));
    let dir = std::path::PathBuf::from(format!("/var/run/dpdk/xvs-{}", std::process::id()));
    assert!(!dir.exists(), "{} left behind", dir.display());
}
