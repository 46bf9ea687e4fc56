//! `OFPT_PORT_MOD` (`ovs-ofctl mod-port <bridge> <port> up|down|no-flood|...`), in the
//! OpenFlow 1.5 layout (`ofp14_port_mod` with an optional Ethernet property) and the
//! OpenFlow 1.0 layout (`ofp10_port_mod`, 16-bit port numbers).

use crate::error::OfpError;
use crate::ofp10::{port_from_ofp10, port_to_ofp10};
use crate::wire::{put_u16, put_u32, Reader};

/// `OFPPC_PORT_DOWN`: the port is administratively down.
pub const PC_PORT_DOWN: u32 = 1 << 0;
/// `OFPPC10_NO_STP` (OpenFlow 1.0 only).
pub const PC_NO_STP: u32 = 1 << 1;
/// `OFPPC_NO_RECV`: drop what the port receives.
pub const PC_NO_RECV: u32 = 1 << 2;
/// `OFPPC10_NO_RECV_STP` (OpenFlow 1.0 only).
pub const PC_NO_RECV_STP: u32 = 1 << 3;
/// `OFPPC10_NO_FLOOD` (OpenFlow 1.0 only).
pub const PC_NO_FLOOD: u32 = 1 << 4;
/// `OFPPC_NO_FWD`: drop what is output to the port.
pub const PC_NO_FWD: u32 = 1 << 5;
/// `OFPPC_NO_PACKET_IN`: no packet-ins for table misses on the port.
pub const PC_NO_PACKET_IN: u32 = 1 << 6;
/// The config bits OpenFlow 1.1+ defines.
pub const PC11_ALL: u32 = PC_PORT_DOWN | PC_NO_RECV | PC_NO_FWD | PC_NO_PACKET_IN;
/// The config bits OpenFlow 1.0 defines.
pub const PC10_ALL: u32 = PC11_ALL | PC_NO_STP | PC_NO_RECV_STP | PC_NO_FLOOD;

/// `OFPPMPT14_ETHERNET`.
const PROP_ETHERNET: u16 = 0;
/// `OFPPMPT_EXPERIMENTER`.
const PROP_EXPERIMENTER: u16 = 0xffff;

/// A port modification: set the `config` bits selected by `mask`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMod {
    /// The port (OpenFlow 1.1+ numbering: LOCAL = 0xfffffffe; 1.0 numbers are widened).
    pub port_no: u32,
    /// The port's hardware address, as the sender believes it (a check against races).
    pub hw_addr: [u8; 6],
    /// New values of the bits in `mask` (`OFPPC_*`).
    pub config: u32,
    /// The bits to change.
    pub mask: u32,
    /// Features to advertise (`OFPPF_*`), when given.
    pub advertise: Option<u32>,
}

fn mac(r: &mut Reader<'_>) -> Result<[u8; 6], OfpError> {
    let mut m = [0u8; 6];
    for b in &mut m {
        *b = r.u8()?;
    }
    Ok(m)
}

/// Decodes the body (after the header) of an OpenFlow 1.5 PORT_MOD.
pub(crate) fn pull_port_mod15(r: &mut Reader<'_>) -> Result<PortMod, OfpError> {
    let port_no = r.u32()?;
    r.skip(4)?;
    let hw_addr = mac(r)?;
    r.skip(2)?;
    let config = r.u32()?;
    let mask = r.u32()?;
    let mut advertise = None;
    while r.remaining() > 0 {
        let ty = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 4 || len - 4 > r.remaining() {
            return Err(OfpError::BAD_LEN);
        }
        match ty {
            PROP_ETHERNET if len == 8 => advertise = Some(r.u32()?),
            PROP_ETHERNET => return Err(OfpError::BAD_LEN),
            PROP_EXPERIMENTER => r.skip(len - 4)?,
            // OVS: an unknown property of a PORT_MOD is an error (OFPBPC_BAD_TYPE).
            _ => return Err(OfpError::BAD_PROP_TYPE),
        }
        // Properties are padded to 8 bytes.
        let pad = (8 - len % 8) % 8;
        r.skip(pad.min(r.remaining()))?;
    }
    Ok(PortMod {
        port_no,
        hw_addr,
        config: config & mask,
        mask,
        advertise,
    })
}

/// Decodes the body of an OpenFlow 1.0 PORT_MOD.
pub(crate) fn pull_port_mod10(r: &mut Reader<'_>) -> Result<PortMod, OfpError> {
    if r.remaining() != 24 {
        return Err(OfpError::BAD_LEN);
    }
    let port_no = port_from_ofp10(r.u16()?);
    let hw_addr = mac(r)?;
    let config = r.u32()?;
    let mask = r.u32()?;
    let advertise = r.u32()?;
    r.skip(4)?;
    Ok(PortMod {
        port_no,
        hw_addr,
        config: config & mask,
        mask,
        advertise: (advertise != 0).then_some(advertise),
    })
}

/// Appends the body of a PORT_MOD in the layout of wire `version`.
pub fn put_port_mod(out: &mut Vec<u8>, version: u8, pm: &PortMod) {
    if version == crate::OFP10_VERSION {
        put_u16(out, port_to_ofp10(pm.port_no));
        out.extend_from_slice(&pm.hw_addr);
        put_u32(out, pm.config & PC10_ALL);
        put_u32(out, pm.mask & PC10_ALL);
        put_u32(out, pm.advertise.unwrap_or(0));
        put_u32(out, 0);
        return;
    }
    put_u32(out, pm.port_no);
    put_u32(out, 0);
    out.extend_from_slice(&pm.hw_addr);
    put_u16(out, 0);
    put_u32(out, pm.config & PC11_ALL);
    put_u32(out, pm.mask & PC11_ALL);
    if let Some(a) = pm.advertise {
        put_u16(out, PROP_ETHERNET);
        put_u16(out, 8);
        put_u32(out, a);
    }
}

#[cfg(test)]
mod tests {
    use crate::{decode, encode, Body, Message, OFP10_VERSION, OFP15_VERSION};

    use super::*;

    /// `ovs-ofctl -O OpenFlow15 mod-port br pa0 down` (port 1, MAC ee:06:40:97:fa:1e), as
    /// OVS 3.1 encodes it.
    const OF15_DOWN: [u8; 32] = [
        0x06, 0x10, 0x00, 0x20, 0x00, 0x00, 0x00, 0x03, // header
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // port_no, pad
        0xee, 0x06, 0x40, 0x97, 0xfa, 0x1e, 0x00, 0x00, // hw_addr, pad
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, // config, mask
    ];

    /// `ovs-ofctl mod-port br pa0 no-flood` over OpenFlow 1.0.
    const OF10_NO_FLOOD: [u8; 32] = [
        0x01, 0x0f, 0x00, 0x20, 0x00, 0x00, 0x00, 0x03, // header
        0x00, 0x01, 0xee, 0x06, 0x40, 0x97, 0xfa, 0x1e, // port_no, hw_addr
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, // config, mask
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // advertise, pad
    ];

    #[test]
    fn decodes_and_encodes_both_versions() {
        let (m, n) = decode(&OF15_DOWN).expect("decodes");
        assert_eq!(n, 32);
        let want = PortMod {
            port_no: 1,
            hw_addr: [0xee, 0x06, 0x40, 0x97, 0xfa, 0x1e],
            config: PC_PORT_DOWN,
            mask: PC_PORT_DOWN,
            advertise: None,
        };
        assert_eq!(m.body, Body::PortMod(want.clone()));
        let mut out = Vec::new();
        encode(&m, &mut out);
        assert_eq!(out, OF15_DOWN);

        let (m, _) = decode(&OF10_NO_FLOOD).expect("decodes");
        assert_eq!(m.version, OFP10_VERSION);
        let Body::PortMod(pm) = &m.body else {
            panic!("not a port mod: {m:?}");
        };
        assert_eq!(
            (pm.port_no, pm.config, pm.mask),
            (1, PC_NO_FLOOD, PC_NO_FLOOD)
        );
        let mut out = Vec::new();
        encode(&m, &mut out);
        assert_eq!(out, OF10_NO_FLOOD);

        // The Ethernet property round-trips; LOCAL keeps its meaning across versions.
        let m = Message {
            version: OFP15_VERSION,
            xid: 9,
            body: Body::PortMod(PortMod {
                port_no: 0xffff_fffe,
                advertise: Some(0x20),
                ..want
            }),
        };
        let mut out = Vec::new();
        encode(&m, &mut out);
        assert_eq!(out.len(), 40);
        assert_eq!(decode(&out).expect("decodes").0, m);
        let m10 = Message {
            version: OFP10_VERSION,
            ..m
        };
        let mut out = Vec::new();
        encode(&m10, &mut out);
        assert_eq!(&out[8..10], &[0xff, 0xfe]);
        assert_eq!(decode(&out).expect("decodes").0, m10);
    }

    /// What `ovs-ofctl -O OpenFlow15 mod-port <br> pa0 <cmd>` sent (tests/capture/regen.sh),
    /// for down, up, no-packet-in, packet-in, no-receive, receive, no-forward, forward.
    #[test]
    fn decodes_what_ovs_ofctl_sends() {
        let want = [
            (PC_PORT_DOWN, PC_PORT_DOWN),
            (0, PC_PORT_DOWN),
            (PC_NO_PACKET_IN, PC_NO_PACKET_IN),
            (0, PC_NO_PACKET_IN),
            (PC_NO_RECV, PC_NO_RECV),
            (0, PC_NO_RECV),
            (PC_NO_FWD, PC_NO_FWD),
            (0, PC_NO_FWD),
        ];
        let lines: Vec<&str> = include_str!("../tests/fixtures/port-mod.hex")
            .lines()
            .collect();
        assert_eq!(lines.len(), want.len());
        for (line, (config, mask)) in lines.iter().zip(want) {
            let bytes: Vec<u8> = (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
                .collect();
            let (m, _) = decode(&bytes).expect("decodes");
            let Body::PortMod(pm) = &m.body else {
                panic!("{line}: {m:?}");
            };
            assert_eq!(
                (pm.port_no, pm.config, pm.mask),
                (1, config, mask),
                "{line}"
            );
            assert_eq!(pm.hw_addr, [0xee, 0x06, 0x40, 0x97, 0xfa, 0x1e]);
            let mut out = Vec::new();
            encode(&m, &mut out);
            assert_eq!(out, bytes, "{line}");
        }
    }

    #[test]
    fn refuses_malformed_port_mods() {
        // Truncated body.
        let mut short = OF15_DOWN[..28].to_vec();
        short[3] = 28;
        assert!(decode(&short).is_err());
        // A property running past the end.
        let mut bad = OF15_DOWN.to_vec();
        bad.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0, 0]);
        bad[3] = 40;
        assert!(decode(&bad).is_err());
        // An unknown property type.
        let mut bad = OF15_DOWN.to_vec();
        bad.extend_from_slice(&[0, 7, 0, 8, 0, 0, 0, 0]);
        bad[3] = 40;
        assert!(decode(&bad).is_err());
        // OpenFlow 1.0 with the wrong length.
        let mut bad = OF10_NO_FLOOD[..28].to_vec();
        bad[3] = 28;
        assert!(decode(&bad).is_err());
        // config bits outside the mask are ignored (OVS: config &= mask).
        let mut extra = OF15_DOWN.to_vec();
        extra[27] = 0x41;
        let (m, _) = decode(&extra).expect("decodes");
        assert!(matches!(m.body, Body::PortMod(PortMod { config: 1, .. })));
    }
}
