//! Interop with the Linux vxlan driver: frames it really sent (captured by
//! tests/fixtures/linux_capture.sh on a veth underlay) are decapsulated, then rebuilt from their
//! inner frame with our encap; the result must be identical byte for byte. Only the IPv4 id and
//! the UDP source port are taken from the capture (Linux picks them per packet); everything else
//! (DF, TTL, TOS, UDP checksum, lengths, header checksum) is ours.
#![allow(clippy::unwrap_used, missing_docs)]

use xvs_packet::key::{layout, FlowKey};
use xvs_tunnel::{
    decap, endpoints, DecapConfig, EncapMeta, OuterL2, Template, TunnelConfig, TunnelKind,
    TUN_FLAG_CSUM, TUN_FLAG_DONT_FRAGMENT,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn hash_for(sport: u16, (lo, hi): (u16, u16)) -> u32 {
    let span = u64::from(hi - lo);
    ((u64::from(sport - lo) << 32).div_ceil(span)) as u32
}

#[test]
fn linux_vxlan_frames_decap_and_reencap_identically() {
    let list = std::fs::read_to_string(format!("{DIR}/linux.txt")).unwrap();
    let mut seen = 0;
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap();
        let frame = std::fs::read(format!("{DIR}/{name}.bin")).unwrap();
        let base = TunnelConfig::flow_based(TunnelKind::Vxlan);
        let mut key = FlowKey::ZERO;
        let d = decap(&DecapConfig::from_config(&base), &frame, &mut key).unwrap();
        assert_eq!(d.vni, 5001, "{name}");
        let flags = key.get(layout::TUN_FLAGS) as u16;
        let cfg = TunnelConfig {
            csum: flags & TUN_FLAG_CSUM != 0,
            df: flags & TUN_FLAG_DONT_FRAGMENT != 0,
            ttl: key.get(layout::TUN_TTL) as u8,
            tos: key.get(layout::TUN_TOS) as u8,
            ..base
        };
        let meta = EncapMeta {
            tun_id: key.get(layout::TUN_ID),
            tun_dst: Some(d.dst),
            tun_src: Some(d.src),
            geneve_options: &[],
            oam: false,
        };
        let ep = endpoints(&cfg, &meta, None).unwrap();
        let mut l2 = OuterL2 {
            src: [0; 6],
            dst: [0; 6],
        };
        l2.dst.copy_from_slice(&frame[0..6]);
        l2.src.copy_from_slice(&frame[6..12]);
        let t = Template::new(&cfg, &ep, &meta, l2).unwrap();
        let inner = &frame[d.inner_offset..d.inner_offset + d.inner_len];
        let mut buf = vec![0u8; 256 + inner.len()];
        buf[256..].copy_from_slice(inner);
        let ip_id = u16::from_be_bytes([frame[18], frame[19]]);
        let sport = key.get(layout::TUN_TP_SRC) as u16;
        let (s, l) = t
            .apply(
                &mut buf,
                256,
                inner.len(),
                hash_for(sport, cfg.sport_range),
                ip_id,
            )
            .unwrap();
        assert_eq!(
            &buf[s..s + l],
            &frame[..d.inner_offset + d.inner_len],
            "{name}"
        );
        seen += 1;
    }
    assert_eq!(seen, 2);
}
