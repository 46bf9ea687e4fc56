//! Device arguments: which ethdev a devargs string creates, and how EAL is told about it.
//! Pure string handling, available without the `dpdk` feature so configuration checks can use it.

/// How EAL learns about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A PCI device (`-a <devargs>`): a physical NIC bound to vfio-pci or uio.
    Pci,
    /// A virtual device (`--vdev <devargs>`): `net_af_xdp0,iface=X`, `net_af_packet0,iface=X`,
    /// `net_ring0`, ...
    Vdev,
}

/// Checks a devargs string and tells what it names: `(kind, ethdev name)`. The ethdev name is
/// what DPDK calls the port: a vdev's name (the part before the first comma), or the PCI address
/// with its domain (`0000:` added when missing).
pub fn parse(devargs: &str) -> Result<(DeviceKind, String), String> {
    let head = devargs.split(',').next().unwrap_or_default();
    if devargs.is_empty() || head.is_empty() {
        return Err("devargs is empty".into());
    }
    if devargs.chars().any(|c| c.is_whitespace() || c == '\0') {
        return Err(format!("devargs {devargs:?} contains whitespace"));
    }
    if let Some(pci) = pci_address(head) {
        return Ok((DeviceKind::Pci, pci));
    }
    if head.starts_with("net_")
        && head.len() <= 63
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Ok((DeviceKind::Vdev, head.to_string()));
    }
    Err(format!(
        "devargs {devargs:?}: expected a PCI address (0000:01:00.0) or a virtual device \
         (net_af_xdp0,iface=X, net_af_packet0,iface=X, net_ring0, ...)"
    ))
}

/// `[dddd:]bb:dd.f` in hex, returned with its domain.
fn pci_address(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let hex = |x: &str, n: usize| x.len() == n && x.chars().all(|c| c.is_ascii_hexdigit());
    let func_ok = func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7');
    (hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && func_ok).then(|| {
        format!(
            "{}:{}:{}.{}",
            domain.to_ascii_lowercase(),
            bus.to_ascii_lowercase(),
            dev.to_ascii_lowercase(),
            func
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_devices() {
        assert_eq!(
            parse("net_af_xdp0,iface=veth0,start_queue=0"),
            Ok((DeviceKind::Vdev, "net_af_xdp0".into()))
        );
        assert_eq!(
            parse("net_ring0"),
            Ok((DeviceKind::Vdev, "net_ring0".into()))
        );
        assert_eq!(
            parse("01:00.1"),
            Ok((DeviceKind::Pci, "0000:01:00.1".into()))
        );
        assert_eq!(
            parse("0000:AF:00.0,rxq_cqe_comp_en=0"),
            Ok((DeviceKind::Pci, "0000:af:00.0".into()))
        );
        for bad in ["", ",iface=x", "eth0", "01:00.8", "net_ring0 x", "1:00.0"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
