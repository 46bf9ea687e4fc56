//! The OpenFlow 1.0 messages `ovs-ofctl mod-port` needs (its default protocol is 1.0): the
//! numbering of BARRIER and PORT_MOD, and FEATURES_REPLY with its `ofp_phy_port` list (1.0
//! lists ports there; 1.3+ in PORT_DESC). Everything else of 1.0 is refused with
//! `OFPBRC_BAD_VERSION`.

use crate::error::OfpError;
use crate::stats::PortDesc;
use crate::wire::{put_u16, put_u32, put_u64, Reader};
use crate::Body;

/// `OFPT10_FEATURES_REPLY`.
pub const FEATURES_REPLY: u8 = 6;
/// `OFPT10_PORT_MOD`.
pub const PORT_MOD: u8 = 15;
/// `OFPT10_BARRIER_REQUEST`.
pub const BARRIER_REQUEST: u8 = 18;
/// `OFPT10_BARRIER_REPLY`.
pub const BARRIER_REPLY: u8 = 19;
/// Bytes of an `ofp_phy_port`.
const PHY_PORT_LEN: usize = 48;

/// An OpenFlow 1.0 FEATURES_REPLY: the switch and its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeaturesReply10 {
    /// Datapath id.
    pub datapath_id: u64,
    /// Packets the switch can buffer.
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// `OFPC_*` capability bits (1.0 meanings).
    pub capabilities: u32,
    /// `OFPAT10_*` bitmap of supported actions.
    pub actions: u32,
    /// The ports (1.1+ numbering; narrowed to 16 bits on the wire).
    pub ports: Vec<PortDesc>,
}

/// Narrows a port number for OpenFlow 1.0 (reserved ports 0xffffff00.. to 0xff00..).
pub fn port_to_ofp10(p: u32) -> u16 {
    if p >= 0xffff_ff00 {
        (p & 0xffff) as u16
    } else {
        u16::try_from(p).unwrap_or(0)
    }
}

/// Widens an OpenFlow 1.0 port number.
pub fn port_from_ofp10(p: u16) -> u32 {
    if p >= 0xff00 {
        u32::from(p) | 0xffff_0000
    } else {
        u32::from(p)
    }
}

/// Decodes the body of an OpenFlow 1.0 message of type `ty`, for the types this module
/// handles (`None`: not one of them).
pub(crate) fn decode(ty: u8, r: &mut Reader<'_>) -> Option<Result<Body, OfpError>> {
    let empty = |r: &Reader<'_>, b: Body| {
        if r.remaining() == 0 {
            Ok(b)
        } else {
            Err(OfpError::BAD_LEN)
        }
    };
    Some(match ty {
        PORT_MOD => crate::port_mod::pull_port_mod10(r).map(Body::PortMod),
        BARRIER_REQUEST => empty(r, Body::BarrierRequest),
        BARRIER_REPLY => empty(r, Body::BarrierReply),
        FEATURES_REPLY => pull_features(r).map(|f| Body::FeaturesReply10(Box::new(f))),
        _ => return None,
    })
}

fn pull_features(r: &mut Reader<'_>) -> Result<FeaturesReply10, OfpError> {
    let datapath_id = r.u64()?;
    let n_buffers = r.u32()?;
    let n_tables = r.u8()?;
    r.skip(3)?;
    let capabilities = r.u32()?;
    let actions = r.u32()?;
    if r.remaining() % PHY_PORT_LEN != 0 {
        return Err(OfpError::BAD_LEN);
    }
    let mut ports = Vec::new();
    while r.remaining() > 0 {
        let port_no = port_from_ofp10(r.u16()?);
        let mut hw_addr = [0u8; 6];
        hw_addr.copy_from_slice(r.bytes(6)?);
        let name = r.bytes(16)?;
        let end = name.iter().position(|&c| c == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&name[..end]).into_owned();
        let config = r.u32()?;
        let state = r.u32()?;
        let curr = r.u32()?;
        r.skip(12)?;
        ports.push(PortDesc {
            port_no,
            hw_addr,
            name,
            config,
            state,
            curr,
            curr_speed: 0,
            max_speed: 0,
        });
    }
    Ok(FeaturesReply10 {
        datapath_id,
        n_buffers,
        n_tables,
        capabilities,
        actions,
        ports,
    })
}

/// Appends the body of an OpenFlow 1.0 FEATURES_REPLY.
pub fn put_features(out: &mut Vec<u8>, f: &FeaturesReply10) {
    put_u64(out, f.datapath_id);
    put_u32(out, f.n_buffers);
    out.push(f.n_tables);
    out.extend_from_slice(&[0; 3]);
    put_u32(out, f.capabilities);
    put_u32(out, f.actions);
    for p in &f.ports {
        put_u16(out, port_to_ofp10(p.port_no));
        out.extend_from_slice(&p.hw_addr);
        let mut name = [0u8; 16];
        let mut n = p.name.len().min(15);
        while !p.name.is_char_boundary(n) {
            n -= 1;
        }
        name[..n].copy_from_slice(&p.name.as_bytes()[..n]);
        out.extend_from_slice(&name);
        // 1.0 config bits are a superset of 1.1+'s; state: only LINK_DOWN (bit 0) carries
        // over (LIVE does not exist in 1.0).
        put_u32(out, p.config);
        put_u32(out, p.state & 1);
        put_u32(out, p.curr);
        put_u32(out, 0);
        put_u32(out, 0);
        put_u32(out, 0);
    }
}

/// The wire type of `body` in OpenFlow 1.0, when it differs from 1.5's.
pub(crate) fn wire_type(body: &Body) -> Option<u8> {
    match body {
        Body::BarrierRequest => Some(BARRIER_REQUEST),
        Body::BarrierReply => Some(BARRIER_REPLY),
        Body::PortMod(_) => Some(PORT_MOD),
        Body::FeaturesReply10(_) => Some(FEATURES_REPLY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode as decode_msg, encode, Message, OFP10_VERSION};

    #[test]
    fn features_reply_and_barrier_round_trip() {
        let f = FeaturesReply10 {
            datapath_id: 0x1234,
            n_buffers: 0,
            n_tables: 254,
            capabilities: 0xc7,
            actions: 0xfff,
            ports: vec![
                PortDesc {
                    port_no: 1,
                    hw_addr: [2, 0, 0, 0, 0, 1],
                    name: "pa0".to_string(),
                    config: 1,
                    state: 1,
                    curr: 0,
                    curr_speed: 0,
                    max_speed: 0,
                },
                PortDesc {
                    port_no: 0xffff_fffe,
                    hw_addr: [2, 0, 0, 0, 0, 2],
                    name: "br-int".to_string(),
                    config: 0,
                    state: 0,
                    curr: 0,
                    curr_speed: 0,
                    max_speed: 0,
                },
            ],
        };
        let m = Message {
            version: OFP10_VERSION,
            xid: 7,
            body: Body::FeaturesReply10(Box::new(f)),
        };
        let mut out = Vec::new();
        encode(&m, &mut out);
        assert_eq!(out.len(), 32 + 2 * PHY_PORT_LEN);
        assert_eq!(out[1], FEATURES_REPLY);
        assert_eq!(&out[32..34], &[0, 1]);
        assert_eq!(&out[80..82], &[0xff, 0xfe]);
        assert_eq!(decode_msg(&out).expect("decodes").0, m);

        for (body, ty) in [
            (Body::BarrierRequest, BARRIER_REQUEST),
            (Body::BarrierReply, BARRIER_REPLY),
        ] {
            let m = Message {
                version: OFP10_VERSION,
                xid: 1,
                body,
            };
            let mut out = Vec::new();
            encode(&m, &mut out);
            assert_eq!(out, [1, ty, 0, 8, 0, 0, 0, 1]);
            assert_eq!(decode_msg(&out).expect("decodes").0, m);
        }
        // A 1.0 FEATURES_REQUEST is the common layout.
        let (m, _) = decode_msg(&[1, 5, 0, 8, 0, 0, 0, 2]).expect("decodes");
        assert_eq!(m.body, Body::FeaturesRequest);
        // Other 1.0 messages are refused (a 1.0 FLOW_MOD, type 14).
        assert!(decode_msg(&[1, 14, 0, 8, 0, 0, 0, 2]).is_err());
        // A truncated port list.
        let mut bad = out.clone();
        bad.truncate(8);
        bad.extend_from_slice(&[0; 30]);
        bad[1] = FEATURES_REPLY;
        bad[3] = 38;
        assert!(decode_msg(&bad).is_err());
    }
}
