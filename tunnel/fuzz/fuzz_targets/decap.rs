//! Decap must never panic, and what it accepts must be self-consistent: the inner frame lies
//! inside the input, the options iterate to exactly their bytes, and re-encapsulating the
//! inner frame with the decoded metadata decapsulates to the same metadata.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_packet::key::{layout, FlowKey};
use xvs_tunnel::{
    decap, DecapConfig, EncapMeta, OuterL2, Template, TunnelConfig, TunnelKind,
};

fuzz_target!(|data: &[u8]| {
    for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
        let tc = TunnelConfig::flow_based(kind);
        for verify in [true, false] {
            let cfg = DecapConfig {
                verify_udp_csum: verify,
                ..DecapConfig::from_config(&tc)
            };
            let mut key = FlowKey::ZERO;
            let Ok(d) = decap(&cfg, data, &mut key) else {
                assert_eq!(key, FlowKey::ZERO);
                continue;
            };
            let inner = &data[d.inner_offset..d.inner_offset + d.inner_len];
            let opt_len: usize = d.options().map(|o| 4 + o.data.len()).sum();
            assert_eq!(opt_len, d.options_bytes().len());
            // Re-encapsulate towards the sender and decapsulate again.
            let meta = EncapMeta {
                tun_id: u64::from(d.vni),
                tun_dst: Some(d.src),
                tun_src: Some(d.dst),
                geneve_options: d.options_bytes(),
                oam: key.get(layout::TUN_FLAGS) & 1 != 0,
            };
            let ep = xvs_tunnel::endpoints(&tc, &meta, None).unwrap();
            let t = Template::new(&tc, &ep, &meta, OuterL2 { src: [2; 6], dst: [4; 6] }).unwrap();
            let mut buf = vec![0u8; 400 + inner.len()];
            buf[400..].copy_from_slice(inner);
            let Ok((s, l)) = t.apply(&mut buf, 400, inner.len(), 1, 2) else {
                continue; // only TooLarge is possible
            };
            let mut key2 = FlowKey::ZERO;
            let back = decap(&DecapConfig::from_config(&tc), &buf[s..s + l], &mut key2).unwrap();
            assert_eq!(back.vni, d.vni);
            assert_eq!(back.options_bytes(), d.options_bytes());
            assert_eq!(&buf[s + back.inner_offset..s + back.inner_offset + back.inner_len], inner);
        }
    }
});
