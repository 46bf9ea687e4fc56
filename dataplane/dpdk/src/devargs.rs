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

/// Frames a driver keeps for itself from the receive queue's mempool for as long as the queue
/// exists, beyond its descriptors: `net_pcap` with `infinite_rx=1` copies every frame of its
/// `rx_pcap` file into mbufs at queue setup and replays them from there. Returns the number of
/// records in that pcap (0 for other devices, or when the file cannot be read: queue setup then
/// reports the shortage).
pub fn frames_kept_by_driver(devargs: &str) -> u32 {
    let mut parts = devargs.split(',');
    if !parts.next().is_some_and(|h| h.starts_with("net_pcap")) {
        return 0;
    }
    let (mut infinite, mut file) = (false, None);
    for kv in parts {
        match kv.split_once('=') {
            Some(("infinite_rx", v)) => infinite = v == "1",
            Some(("rx_pcap", v)) => file = Some(v),
            _ => {}
        }
    }
    match (infinite, file) {
        (true, Some(f)) => std::fs::read(f).map_or(0, |b| pcap_records(&b)),
        _ => 0,
    }
}

/// Records in a classic pcap file (either byte order, micro- or nanosecond magic); 0 for
/// anything else.
fn pcap_records(b: &[u8]) -> u32 {
    let Some(magic) = b.get(..4) else { return 0 };
    let big = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
        _ => return 0,
    };
    let (mut off, mut n) = (24usize, 0u32);
    while let Some(h) = b.get(off..off + 16) {
        let cap = [h[8], h[9], h[10], h[11]];
        let cap = if big {
            u32::from_be_bytes(cap)
        } else {
            u32::from_le_bytes(cap)
        };
        off = off.saturating_add(16).saturating_add(cap as usize);
        if off > b.len() {
            break;
        }
        n += 1;
    }
    n
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
    #[allow(clippy::unwrap_used)]
    fn pcap_replay_keeps_every_frame() {
        let dir = std::env::temp_dir().join(format!("xvs-devargs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("three.pcap");
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.resize(24, 0);
        for len in [60u32, 64, 1500] {
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.resize(b.len() + len as usize, 0xab);
        }
        // A truncated last record is not counted.
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&100u32.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let p = path.display();
        assert_eq!(
            frames_kept_by_driver(&format!("net_pcap0,rx_pcap={p},infinite_rx=1")),
            3
        );
        assert_eq!(frames_kept_by_driver(&format!("net_pcap0,rx_pcap={p}")), 0);
        assert_eq!(
            frames_kept_by_driver("net_pcap0,rx_pcap=/nonexistent,infinite_rx=1"),
            0
        );
        assert_eq!(frames_kept_by_driver("net_null0,no-rx=1"), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
