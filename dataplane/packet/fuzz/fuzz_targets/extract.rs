//! Runs flow-key extraction and every view's `new_checked` plus all of its getters on arbitrary
//! bytes, at every plausible header offset. Any panic is a bug: no input may make the wire layer
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::hint::black_box;
use xvs_packet::wire::{
    arp, ethernet, geneve, icmpv4, icmpv6, igmp, ipv4, ipv6, sctp, tcp, udp, vlan, vxlan,
};
use xvs_packet::{checksum, extract, FlowKey};

fn views(d: &[u8]) {
    if let Ok(p) = ethernet::Packet::new_checked(d) {
        black_box((p.src(), p.dst(), p.ethertype(), p.payload().len()));
        black_box(ethernet::Repr::parse(&p));
    }
    if let Ok(p) = vlan::Packet::new_checked(d) {
        black_box((
            p.tci(),
            p.pcp(),
            p.dei(),
            p.vid(),
            p.ethertype(),
            p.payload().len(),
        ));
    }
    if let Ok(p) = arp::Packet::new_checked(d) {
        black_box(arp::Repr::parse(&p));
        black_box((p.htype(), p.ptype(), p.hlen(), p.plen()));
    }
    if let Ok(p) = ipv4::Packet::new_checked(d) {
        black_box(ipv4::Repr::parse(&p));
        black_box((p.options().len(), p.payload().len(), p.verify_checksum()));
        black_box((
            p.frag_offset(),
            p.is_fragment(),
            p.is_later_fragment(),
            p.dscp(),
            p.ecn(),
        ));
        assert!(p.header_len() <= usize::from(p.total_len()));
        assert!(usize::from(p.total_len()) <= d.len());
        views_l4(p.protocol(), p.payload(), &p.src(), &p.dst());
    }
    if let Ok(p) = ipv6::Packet::new_checked(d) {
        black_box(ipv6::Repr::parse(&p));
        if let Ok(w) = p.walk() {
            assert!(w.offset <= p.payload().len());
            black_box(w.is_later_fragment());
            if !w.is_later_fragment() {
                let l4 = p.payload().get(w.offset..).unwrap_or(&[]);
                views_l4(w.protocol, l4, &p.src(), &p.dst());
            }
        }
    }
    views_l4(6, d, &[0; 4], &[0; 4]);
    views_l4(17, d, &[0; 16], &[0; 16]);
    views_l4(1, d, &[0; 4], &[0; 4]);
    views_l4(2, d, &[0; 4], &[0; 4]);
    views_l4(58, d, &[0; 16], &[0; 16]);
    views_l4(132, d, &[0; 4], &[0; 4]);
    if let Ok(p) = vxlan::Packet::new_checked(d) {
        black_box((vxlan::Repr::parse(&p), p.first_word(), p.payload().len()));
    }
    if let Ok(p) = geneve::Packet::new_checked(d) {
        black_box(geneve::Repr::parse(&p));
        let mut total = 0;
        let mut it = p.options();
        for o in &mut it {
            total += 4 + o.data.len();
            black_box((o.class, o.kind, o.is_critical()));
        }
        assert!(!it.malformed());
        assert_eq!(total, p.options_len());
        black_box(p.payload().len());
    }
}

fn views_l4(proto: u8, d: &[u8], src: &[u8], dst: &[u8]) {
    let (s4, d4) = (
        <[u8; 4]>::try_from(src).unwrap_or_default(),
        <[u8; 4]>::try_from(dst).unwrap_or_default(),
    );
    let (s6, d6) = (
        <[u8; 16]>::try_from(src).unwrap_or_default(),
        <[u8; 16]>::try_from(dst).unwrap_or_default(),
    );
    match proto {
        6 => {
            if let Ok(p) = tcp::Packet::new_checked(d) {
                black_box(tcp::Repr::parse(&p));
                black_box((
                    p.options().len(),
                    p.options_len(),
                    p.payload().len(),
                    p.urgent(),
                ));
                black_box((p.verify_checksum_v4(s4, d4), p.verify_checksum_v6(&s6, &d6)));
            }
        }
        17 => {
            if let Ok(p) = udp::Packet::new_checked(d) {
                black_box((udp::Repr::parse(&p), p.payload().len(), p.is_empty()));
                black_box((p.verify_checksum_v4(s4, d4), p.verify_checksum_v6(&s6, &d6)));
                if let Ok(v) = vxlan::Packet::new_checked(p.payload()) {
                    black_box(v.vni());
                }
                if let Ok(g) = geneve::Packet::new_checked(p.payload()) {
                    black_box(g.options().count());
                }
            }
        }
        1 => {
            if let Ok(p) = icmpv4::Packet::new_checked(d) {
                black_box((p.msg_type(), p.code(), p.echo_ident(), p.echo_seq()));
                black_box((p.payload().len(), p.verify_checksum()));
            }
        }
        2 => {
            if let Ok(p) = igmp::Packet::new_checked(d) {
                black_box((
                    p.message(),
                    p.group(),
                    p.v3_num_records(),
                    p.max_resp_code(),
                ));
                black_box(p.verify_checksum());
            }
        }
        58 => {
            if let Ok(p) = icmpv6::Packet::new_checked(d) {
                black_box((
                    p.msg_type(),
                    p.code(),
                    p.data_word(),
                    p.is_nd(),
                    p.nd_target(),
                ));
                black_box((
                    p.source_ll_addr(),
                    p.target_ll_addr(),
                    p.nd_options().count(),
                ));
                black_box(p.verify_checksum(&s6, &d6));
                if p.is_nd() {
                    assert!(!{
                        let mut it = p.nd_options();
                        for _ in &mut it {}
                        it.malformed()
                    });
                }
            }
        }
        132 => {
            if let Ok(p) = sctp::Packet::new_checked(d) {
                black_box((
                    p.src_port(),
                    p.dst_port(),
                    p.verification_tag(),
                    p.checksum(),
                ));
                black_box(p.chunks().len());
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut key = FlowKey::ZERO;
    let info = extract(data, 1, &mut key);
    assert!(info.l3_offset as usize <= data.len());
    assert!(info.l4_offset as usize <= data.len());
    assert!(info.l3_end as usize <= data.len());
    if let Some(l3) = info.l3() {
        views(&data[l3..]);
    }
    views(data);
    black_box(checksum::checksum(data));
    // Unchecked views must not panic either, whatever the buffer.
    let p = ipv4::Packet::new_unchecked(data);
    black_box((
        p.src(),
        p.options().len(),
        p.payload().len(),
        p.verify_checksum(),
    ));
    let p = tcp::Packet::new_unchecked(data);
    black_box((p.options().len(), p.payload().len()));
    let p = geneve::Packet::new_unchecked(data);
    black_box((p.options().count(), p.payload().len()));
    // Builders on a mutable copy: never panic, whatever the buffer size.
    let mut buf = [0u8; 128];
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    let _ = xvs_packet::build::push_vlan(&mut buf, n, 0x123);
    let macs = xvs_packet::build::Macs {
        src: [1; 6],
        dst: [2; 6],
    };
    let _ = xvs_packet::build::udp4(
        &mut buf[..n],
        macs,
        [1; 4],
        [2; 4],
        1,
        2,
        data.get(..n.saturating_sub(42)).unwrap_or(&[]),
    );
    // Tunnel builders with arbitrary options and inner frames, into a buffer of arbitrary size.
    let mut out = [0u8; 512];
    let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (opts, inner) = data.split_at(cut);
    let room = out.len().min(64 + data.len() / 2);
    let outer = xvs_packet::build::Outer4 {
        macs,
        src_ip: [1; 4],
        dst_ip: [2; 4],
        sport: 3,
    };
    if let Ok(len) = xvs_packet::build::geneve4(&mut out[..room], outer, 5, opts, inner) {
        let mut k = FlowKey::ZERO;
        let info = extract(&out[..len], 1, &mut k);
        assert!(info.is_ok());
    }
    if let Ok(len) = xvs_packet::build::vxlan4(&mut out[..room], outer, 5, inner) {
        let mut k = FlowKey::ZERO;
        assert!(extract(&out[..len], 1, &mut k).is_ok());
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&data.get(..16).unwrap_or(&[0; 16])[..16]);
    let _ = xvs_packet::build::nd_ns(&mut out[..room.min(90)], [1; 6], t, t);
});
