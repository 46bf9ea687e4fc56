//! PORT_STATUS against Open vSwitch 3.1's own decoder: `tests/fixtures/port-status.hex` holds
//! our encoding of an ADD, a DELETE and a MODIFY for one port, and `port-status.txt` what
//! `ovs-ofctl ofp-print` printed for those bytes. The test re-encodes the messages and has
//! `ovs-ofctl` print them again, so a layout change shows up as OVS reading something else.
//! (OVS sends PORT_STATUS only from a running switch; these bytes are ours, checked by OVS.)

use xvs_openflow::stats::PortDesc;
use xvs_openflow::{decode, encode, Body, Message, PortReason, PortStatus, OFP15_VERSION};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn ovs_ofctl_reads_our_port_status_as_we_mean_it() {
    let lines: Vec<String> = fixture("port-status.hex")
        .lines()
        .map(str::to_string)
        .collect();
    let reasons = [PortReason::Add, PortReason::Delete, PortReason::Modify];
    assert_eq!(lines.len(), reasons.len());
    let mut printed = String::new();
    for (line, reason) in lines.iter().zip(reasons) {
        let msg = Message {
            version: OFP15_VERSION,
            xid: 0,
            body: Body::PortStatus(Box::new(PortStatus {
                reason,
                desc: PortDesc {
                    port_no: 3,
                    hw_addr: [2, 0, 0, 0, 0, 3],
                    name: "pc0".into(),
                    state: 4,
                    ..PortDesc::default()
                },
            })),
        };
        let mut out = Vec::new();
        encode(&msg, &mut out);
        assert_eq!(&hex(&out), line, "{reason:?}: bytes changed");
        let (back, _) = decode(&out).expect("decode");
        assert_eq!(back, msg);
        let o = std::process::Command::new("ovs-ofctl")
            .args(["ofp-print", line])
            .output()
            .expect("ovs-ofctl (Debian openvswitch-common) must be installed");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        printed.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    assert_eq!(printed, fixture("port-status.txt"));
}
