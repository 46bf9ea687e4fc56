//! `OFPT_PORT_STATUS`: the switch tells its controllers that a port was added, deleted or
//! changed (OpenFlow 1.5 layout: reason, 7 bytes of padding, then one `ofp14_port` with its
//! Ethernet property, as in a PORT_DESC reply).

use crate::error::OfpError;
use crate::stats::{pull_port_descs, put_port_desc, PortDesc};
use crate::wire::Reader;

/// Why a PORT_STATUS was sent (`OFPPR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortReason {
    /// `OFPPR_ADD`: the port joined the switch.
    Add,
    /// `OFPPR_DELETE`: the port left the switch.
    Delete,
    /// `OFPPR_MODIFY`: an attribute of the port changed.
    Modify,
}

impl PortReason {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            PortReason::Add => 0,
            PortReason::Delete => 1,
            PortReason::Modify => 2,
        }
    }

    /// The reason for a wire value (`NXBRC_BAD_REASON` for others, as OVS decodes).
    pub fn from_code(code: u8) -> Result<Self, OfpError> {
        match code {
            0 => Ok(PortReason::Add),
            1 => Ok(PortReason::Delete),
            2 => Ok(PortReason::Modify),
            _ => Err(OfpError::NX_BAD_REASON),
        }
    }
}

/// A PORT_STATUS message's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// What happened to the port.
    pub reason: PortReason,
    /// The port (after the change; for a deletion, as it was).
    pub desc: PortDesc,
}

/// Appends a PORT_STATUS body (after the header).
pub fn put_port_status(out: &mut Vec<u8>, ps: &PortStatus) {
    out.push(ps.reason.code());
    out.extend_from_slice(&[0; 7]);
    put_port_desc(out, &ps.desc);
}

/// Decodes a PORT_STATUS body (after the header): exactly one port.
pub fn pull_port_status(body: &[u8]) -> Result<PortStatus, OfpError> {
    let r = &mut Reader::new(body, OfpError::BAD_LEN);
    let reason = PortReason::from_code(r.u8()?)?;
    r.skip(7)?;
    let mut ports = pull_port_descs(r.rest())?;
    if ports.len() != 1 {
        return Err(OfpError::BAD_LEN);
    }
    let desc = ports.pop().ok_or(OfpError::BAD_LEN)?;
    Ok(PortStatus { reason, desc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, msg_type, Body, Message, OFP15_VERSION};

    fn sample(reason: PortReason) -> Message {
        Message {
            version: OFP15_VERSION,
            xid: 0,
            body: Body::PortStatus(Box::new(PortStatus {
                reason,
                desc: PortDesc {
                    port_no: 3,
                    hw_addr: [0x02, 0x00, 0x00, 0x00, 0x00, 0x03],
                    name: "pc0".to_string(),
                    config: 0,
                    state: 4,
                    ..PortDesc::default()
                },
            })),
        }
    }

    #[test]
    fn layout_is_header_reason_pad_and_one_ofp14_port() {
        let mut out = Vec::new();
        encode(&sample(PortReason::Delete), &mut out);
        // 8 header + 8 reason/pad + 72 port (40 fixed + 32 Ethernet property).
        assert_eq!(out.len(), 88);
        assert_eq!(&out[..4], &[OFP15_VERSION, msg_type::PORT_STATUS, 0, 88]);
        assert_eq!(out[8], 1, "OFPPR_DELETE");
        assert_eq!(&out[9..16], &[0; 7]);
        assert_eq!(&out[16..20], &[0, 0, 0, 3], "port_no");
        assert_eq!(&out[20..22], &[0, 72], "ofp14_port length");
        assert_eq!(&out[24..30], &[2, 0, 0, 0, 0, 3], "hw_addr");
        assert_eq!(&out[32..36], b"pc0\0");
        assert_eq!(&out[48..52], &[0, 0, 0, 0], "config");
        assert_eq!(&out[52..56], &[0, 0, 0, 4], "state: OFPPS_LIVE");
        assert_eq!(&out[56..60], &[0, 0, 0, 32], "OFPPDPT14_ETHERNET, 32 bytes");
    }

    #[test]
    fn round_trips_every_reason() {
        for reason in [PortReason::Add, PortReason::Delete, PortReason::Modify] {
            let msg = sample(reason);
            let mut out = Vec::new();
            encode(&msg, &mut out);
            let (back, used) = decode(&out).expect("decode");
            assert_eq!(used, out.len());
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn bad_reason_and_truncation_are_refused_as_ovs_does() {
        let mut out = Vec::new();
        encode(&sample(PortReason::Add), &mut out);
        let mut bad = out.clone();
        bad[8] = 3;
        match decode(&bad) {
            Err(crate::DecodeError::Invalid { error, len }) => {
                assert_eq!(error, OfpError::NX_BAD_REASON);
                assert_eq!(len, bad.len());
            }
            other => panic!("{other:?}"),
        }
        // Without the port, or with two: a length error.
        let mut short = out[..16].to_vec();
        short[3] = 16;
        assert!(matches!(
            decode(&short),
            Err(crate::DecodeError::Invalid {
                error: OfpError::BAD_LEN,
                ..
            })
        ));
        let mut two = out.clone();
        two.extend_from_slice(&out[16..]);
        let len = two.len() as u16;
        two[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode(&two),
            Err(crate::DecodeError::Invalid {
                error: OfpError::BAD_LEN,
                ..
            })
        ));
    }
}
