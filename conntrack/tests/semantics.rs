//! ct_state semantics, per protocol, on a virtual clock.

mod common;

use common::*;
use std::time::Duration;
use xvs_conntrack::tcp::flags::{ACK, FIN, PSH, RST, SYN};
use xvs_conntrack::tuple::proto;
use xvs_conntrack::{
    Conntrack, CtAction, CtConfig, CtInput, CtState, CtStats, TcpState, Timeouts, Tuple,
};

const Z: u16 = 65520;

fn commit() -> CtAction {
    CtAction::commit(Z)
}
fn lookup() -> CtAction {
    CtAction::lookup(Z)
}

/// Client 10.0.0.1:40000 -> server 10.0.0.2:80, ISNs 1000 / 5000, through the handshake.
fn handshake(ct: &Conntrack, t: u64) {
    let mut syn = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, SYN, 1000, 0, 0);
    syn.ct(ct, t, commit());
    assert_eq!(syn.state(), st(&[NEW, TRK]));
    let mut synack = Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, SYN | ACK, 5000, 1001, 0);
    synack.ct(ct, t, lookup());
    assert_eq!(synack.state(), st(&[EST, RPL, TRK]));
    let mut ack = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 1001, 5001, 0);
    ack.ct(ct, t, lookup());
    assert_eq!(ack.state(), st(&[EST, TRK]));
}

fn tcp_state(ct: &Conntrack, now: u64) -> String {
    let d = ct.dump(Some(Z), now);
    assert_eq!(d.len(), 1, "{d:?}");
    d[0].to_string()
}

#[test]
fn uncommitted_new_flow_creates_nothing() {
    let ct = ct();
    let mut p = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    let mut stats = CtStats::default();
    p.ct_stats(&ct, 0, lookup(), &mut stats);
    assert_eq!(p.state(), st(&[NEW, TRK]));
    assert_eq!(p.meta.zone, Z);
    assert_eq!(p.meta.orig, Some(p.tuple()));
    assert!(p.meta.conn.is_none());
    assert_eq!(ct.conn_count(), 0);
    assert_eq!(
        (stats.lookups, stats.hits, stats.new, stats.created),
        (1, 0, 1, 0)
    );
    // The reply of an untracked flow is just another new flow.
    let mut r = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r.ct(&ct, 0, lookup());
    assert_eq!(r.state(), st(&[NEW, TRK]));
}

#[test]
fn tcp_handshake_data_fin() {
    let ct = ct();
    handshake(&ct, 0);
    assert!(tcp_state(&ct, 0).ends_with("protoinfo=(state=ESTABLISHED)"));
    // Data both ways.
    let mut d = Packet::tcp(
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
        ACK | PSH,
        1001,
        5001,
        500,
    );
    d.ct(&ct, SEC, lookup());
    assert_eq!(d.state(), st(&[EST, TRK]));
    let mut r = Packet::tcp(
        "10.0.0.2",
        80,
        "10.0.0.1",
        40000,
        ACK | PSH,
        5001,
        1501,
        1000,
    );
    r.ct(&ct, SEC, lookup());
    assert_eq!(r.state(), st(&[EST, RPL, TRK]));
    // Established: 24 h idle timeout.
    let e = &ct.dump(None, SEC)[0];
    assert_eq!(e.expires_in, Duration::from_secs(24 * 3600));
    // Close: FIN, FIN, ACK.
    let mut f1 = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, FIN | ACK, 1501, 6001, 0);
    f1.ct(&ct, 2 * SEC, lookup());
    assert_eq!(f1.state(), st(&[EST, TRK]));
    assert_eq!(
        ct.dump(None, 2 * SEC)[0].expires_in,
        Duration::from_secs(15 * 60)
    );
    assert!(tcp_state(&ct, 2 * SEC).ends_with("(state=CLOSING)"));
    let mut f2 = Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, FIN | ACK, 6001, 1502, 0);
    f2.ct(&ct, 2 * SEC, lookup());
    assert_eq!(f2.state(), st(&[EST, RPL, TRK]));
    assert_eq!(
        ct.dump(None, 2 * SEC)[0].expires_in,
        Duration::from_secs(45)
    );
    let mut a = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 1502, 6002, 0);
    a.ct(&ct, 2 * SEC, lookup());
    assert_eq!(a.state(), st(&[EST, TRK]));
    let e = &ct.dump(None, 2 * SEC)[0];
    assert_eq!(e.tcp, Some((TcpState::FinWait2, TcpState::FinWait2)));
    assert_eq!(e.expires_in, Duration::from_secs(30));
    assert!(e.to_string().ends_with("(state=TIME_WAIT)"));
    // Closed connections expire after 30 s.
    let mut late = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 1502, 6002, 0);
    late.ct(&ct, 33 * SEC, lookup());
    assert_eq!(late.state(), st(&[NEW, TRK]));
}

#[test]
fn tcp_syn_retransmit_is_new_and_syn_timeout() {
    let ct = ct();
    let mut syn = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, SYN, 1000, 0, 0);
    syn.ct(&ct, 0, commit());
    let mut again_syn = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, SYN, 1000, 0, 0);
    again_syn.ct(&ct, 3 * SEC, lookup());
    assert_eq!(again_syn.state(), st(&[NEW, TRK]));
    assert_eq!(ct.conn_count(), 1);
    assert!(tcp_state(&ct, 3 * SEC).ends_with("(state=SYN_SENT)"));
    // 30 s after the last SYN the half-open connection is gone for lookups...
    let mut late = Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, SYN | ACK, 5000, 1001, 0);
    late.ct(&ct, 33 * SEC + 1, lookup());
    // ...and a SYN+ACK may not start a connection.
    assert_eq!(late.state(), st(&[INV, TRK]));
    // ...and the sweep reclaims it.
    assert_eq!(ct.sweep(33 * SEC + 1, 100).expired, 1);
    assert_eq!(ct.conn_count(), 0);
}

#[test]
fn tcp_out_of_window_and_bad_flags_are_invalid() {
    let ct = ct();
    handshake(&ct, 0);
    // Far beyond the receiver's window.
    let mut far = Packet::tcp(
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
        ACK,
        1001u32.wrapping_add(1 << 30),
        5001,
        100,
    );
    far.ct(&ct, SEC, lookup());
    assert_eq!(far.state(), st(&[INV, TRK]));
    // Acknowledging data never sent.
    let mut ack_future = Packet::tcp(
        "10.0.0.2",
        80,
        "10.0.0.1",
        40000,
        ACK,
        5001,
        1001 + 50_000_000,
        0,
    );
    ack_future.ct(&ct, SEC, lookup());
    assert_eq!(ack_future.state(), st(&[INV, TRK]));
    // More than one window back.
    let mut old = Packet::tcp(
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
        ACK,
        1001u32.wrapping_sub(20_000_000),
        5001,
        100,
    );
    old.ct(&ct, SEC, lookup());
    assert_eq!(old.state(), st(&[INV, TRK]));
    // Invalid flag combinations, on the connection and as a new flow.
    for fl in [SYN | FIN, SYN | RST, 0, FIN, PSH] {
        let mut p = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, fl, 1001, 5001, 0);
        p.ct(&ct, SEC, lookup());
        assert_eq!(p.state(), st(&[INV, TRK]), "flags {fl:#x}");
        let mut n = Packet::tcp("10.0.0.9", 40000, "10.0.0.2", 80, fl, 1, 0, 0);
        n.ct(&ct, SEC, commit());
        assert_eq!(n.state(), st(&[INV, TRK]), "flags {fl:#x} new");
    }
    assert_eq!(ct.conn_count(), 1);
    // A RST whose sequence is not exact is invalid; the exact one closes.
    let mut rst_bad = Packet::tcp(
        "10.0.0.2",
        80,
        "10.0.0.1",
        40000,
        RST | ACK,
        5001 + 30_000,
        1001,
        0,
    );
    rst_bad.ct(&ct, SEC, lookup());
    assert_eq!(rst_bad.state(), st(&[INV, TRK]));
    let mut rst = Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, RST | ACK, 5001, 1001, 0);
    rst.ct(&ct, SEC, lookup());
    assert_eq!(rst.state(), st(&[EST, RPL, TRK]));
    let e = &ct.dump(None, SEC)[0];
    assert_eq!(e.tcp, Some((TcpState::TimeWait, TcpState::TimeWait)));
    assert_eq!(e.expires_in, Duration::from_secs(30));
}

#[test]
fn tcp_seq_check_can_be_disabled() {
    let ct = Conntrack::new(CtConfig {
        tcp_seq_check: false,
        ..CtConfig::default()
    });
    handshake(&ct, 0);
    let mut far = Packet::tcp(
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
        ACK,
        1001u32.wrapping_add(1 << 30),
        5001,
        100,
    );
    far.ct(&ct, SEC, lookup());
    assert_eq!(far.state(), st(&[EST, TRK]));
    // Flag checks stay on.
    let mut bad = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, SYN | FIN, 1, 0, 0);
    bad.ct(&ct, SEC, lookup());
    assert_eq!(bad.state(), st(&[INV, TRK]));
}

#[test]
fn tcp_reopen_after_close() {
    let ct = ct();
    handshake(&ct, 0);
    for (src, sp, dst, dp, fl, seq, ack) in [
        ("10.0.0.1", 40000, "10.0.0.2", 80, FIN | ACK, 1001, 5001),
        ("10.0.0.2", 80, "10.0.0.1", 40000, FIN | ACK, 5001, 1002),
        ("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 1002, 5002),
    ] {
        Packet::tcp(src, sp, dst, dp, fl, seq, ack, 0).ct(&ct, SEC, lookup());
    }
    let mut syn = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, SYN, 90_000, 0, 0);
    syn.ct(&ct, 2 * SEC, commit());
    assert_eq!(syn.state(), st(&[NEW, TRK]));
    assert_eq!(ct.conn_count(), 1);
    assert_eq!(ct.counters().reopened, 1);
    assert!(tcp_state(&ct, 2 * SEC).ends_with("(state=SYN_SENT)"));
}

#[test]
fn tcp_midstream_pickup() {
    // OVS accepts a mid-stream ACK as a new connection (liberal window until both sides seen).
    let ct = ct();
    let mut a = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 777_777, 999, 100);
    a.ct(&ct, 0, commit());
    assert_eq!(a.state(), st(&[NEW, TRK]));
    let mut b = Packet::tcp("10.0.0.2", 80, "10.0.0.1", 40000, ACK, 999, 777_877, 0);
    b.ct(&ct, 0, lookup());
    assert_eq!(b.state(), st(&[EST, RPL, TRK]));
    let mut c = Packet::tcp("10.0.0.1", 40000, "10.0.0.2", 80, ACK, 777_877, 999, 100);
    c.ct(&ct, 0, lookup());
    assert_eq!(c.state(), st(&[EST, TRK]));
}

#[test]
fn udp_first_multiple_bidir() {
    let ct = ct();
    let mut p1 = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    p1.ct(&ct, 0, commit());
    assert_eq!(p1.state(), st(&[NEW, TRK]));
    assert_eq!(ct.dump(None, 0)[0].expires_in, Duration::from_secs(60));
    // More packets one way: still new (OVS: FIRST -> MULTIPLE, +new until a reply).
    let mut p2 = again(&p1);
    p2.ct(&ct, SEC, lookup());
    assert_eq!(p2.state(), st(&[NEW, TRK]));
    let mut p3 = again(&p1);
    p3.ct(&ct, 2 * SEC, lookup());
    assert_eq!(p3.state(), st(&[NEW, TRK]));
    assert_eq!(
        ct.dump(None, 2 * SEC)[0].expires_in,
        Duration::from_secs(60)
    );
    // Reply: established, reply direction, 30 s.
    let mut r = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r.ct(&ct, 3 * SEC, lookup());
    assert_eq!(r.state(), st(&[EST, RPL, TRK]));
    assert_eq!(r.meta.orig, Some(p1.tuple()));
    assert_eq!(
        ct.dump(None, 3 * SEC)[0].expires_in,
        Duration::from_secs(30)
    );
    let mut p4 = again(&p1);
    p4.ct(&ct, 4 * SEC, lookup());
    assert_eq!(p4.state(), st(&[EST, TRK]));
    // Idle past 30 s: gone.
    let mut p5 = again(&p1);
    p5.ct(&ct, 35 * SEC, lookup());
    assert_eq!(p5.state(), st(&[NEW, TRK]));
    // Dump format.
    let ct2 = ct_with_one_udp();
    assert_eq!(
        ct2.dump(None, 0)[0].to_string(),
        "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=65520"
    );
}

fn ct_with_one_udp() -> Conntrack {
    let ct = ct();
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, commit());
    ct
}

#[test]
fn sctp_and_other_protocols_use_the_other_tracker() {
    let ct = ct();
    let mut s = Packet::from(CtInput::new(Tuple::ports(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        proto::SCTP,
        5000,
        38412,
    )));
    s.ct(&ct, 0, commit());
    assert_eq!(s.state(), st(&[NEW, TRK]));
    let mut sr = Packet::from(CtInput::new(Tuple::ports(
        ip("10.0.0.2"),
        ip("10.0.0.1"),
        proto::SCTP,
        38412,
        5000,
    )));
    sr.ct(&ct, 0, lookup());
    assert_eq!(sr.state(), st(&[EST, RPL, TRK]));
    let mut g = Packet::from(CtInput::new(Tuple::other(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        47,
    )));
    g.ct(&ct, 0, commit());
    assert_eq!(g.state(), st(&[NEW, TRK]));
    let mut gr = Packet::from(CtInput::new(Tuple::other(
        ip("10.0.0.2"),
        ip("10.0.0.1"),
        47,
    )));
    gr.ct(&ct, 0, lookup());
    assert_eq!(gr.state(), st(&[EST, RPL, TRK]));
    let mut lines: Vec<String> = ct.dump(None, 0).iter().map(|e| e.to_string()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "47,orig=(src=10.0.0.1,dst=10.0.0.2,sport=0,dport=0),reply=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=0),zone=65520",
            "sctp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=38412),reply=(src=10.0.0.2,dst=10.0.0.1,sport=38412,dport=5000),zone=65520",
        ]
    );
}

#[test]
fn icmp_echo_v4_and_v6() {
    for (a, b) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
        let v6 = a.contains(':');
        let (req, rep) = if v6 { (128, 129) } else { (8, 0) };
        let ct = ct();
        let mut p = Packet::icmp(a, b, req, 7);
        p.ct(&ct, 0, commit());
        assert_eq!(p.state(), st(&[NEW, TRK]));
        let mut p2 = Packet::icmp(a, b, req, 7);
        p2.ct(&ct, SEC, lookup());
        assert_eq!(p2.state(), st(&[NEW, TRK]));
        assert_eq!(ct.dump(None, SEC)[0].expires_in, Duration::from_secs(60));
        let mut r = Packet::icmp(b, a, rep, 7);
        r.ct(&ct, SEC, lookup());
        assert_eq!(r.state(), st(&[EST, RPL, TRK]));
        assert_eq!(ct.dump(None, SEC)[0].expires_in, Duration::from_secs(30));
        // Another identifier is another connection; a reply can not start one.
        let mut other = Packet::icmp(b, a, rep, 8);
        other.ct(&ct, SEC, commit());
        assert_eq!(other.state(), st(&[INV, TRK]));
        let line = ct.dump(None, SEC)[0].to_string();
        let name = if v6 { "icmpv6" } else { "icmp" };
        assert_eq!(
            line,
            format!("{name},orig=(src={a},dst={b},id=7,type={req},code=0),reply=(src={b},dst={a},id=7,type={rep},code=0),zone=65520")
        );
    }
}

#[test]
fn icmp_untracked_types_are_invalid() {
    let ct = ct();
    // Router advertisement, and an IPv4 redirect without its embedded header.
    let mut ra = Packet::icmp("fe80::1", "ff02::1", 134, 0);
    ra.ct(&ct, 0, commit());
    assert_eq!(ra.state(), st(&[INV, TRK]));
    let mut redirect = Packet::from(CtInput::new(Tuple::icmp(
        ip("10.0.0.254"),
        ip("10.0.0.1"),
        proto::ICMP,
        5,
        0,
        0,
    )));
    redirect.ct(&ct, 0, commit());
    assert_eq!(redirect.state(), st(&[INV, TRK]));
    assert_eq!(ct.conn_count(), 0);
}

#[test]
fn icmp_errors_are_related_v4_and_v6() {
    for (a, b, r, unreach) in [
        ("10.0.0.1", "10.0.0.2", "10.0.0.254", 3u8),
        ("fd00::1", "fd00::2", "fd00::fe", 1u8),
    ] {
        let ct = ct();
        let mut syn = Packet::tcp(a, 40000, b, 80, SYN, 1000, 0, 0);
        syn.ct(&ct, 0, commit().with_mark(5, 0xff));
        // A router tells the client its SYN did not make it: reply direction.
        let inner = syn.tuple();
        let mut e = Packet::icmp_error(r, a, unreach, 1, inner);
        e.ct(&ct, SEC, lookup());
        assert_eq!(e.state(), st(&[REL, RPL, TRK]));
        assert_eq!(e.meta.mark, 5);
        assert_eq!(e.meta.orig, Some(inner));
        // A router tells the server its reply did not make it: original direction.
        let reply = Tuple::ports(ip(b), ip(a), proto::TCP, 80, 40000);
        let mut e2 = Packet::icmp_error(r, b, unreach, 1, reply);
        e2.ct(&ct, SEC, lookup());
        assert_eq!(e2.state(), st(&[REL, TRK]));
        // About an unknown connection: invalid.
        let unknown = Tuple::ports(ip(a), ip(b), proto::TCP, 40001, 80);
        let mut e3 = Packet::icmp_error(r, a, unreach, 1, unknown);
        e3.ct(&ct, SEC, commit());
        assert_eq!(e3.state(), st(&[INV, TRK]));
        // The embedded source must be the error's destination.
        let mut e4 = Packet::icmp_error(r, b, unreach, 1, inner);
        e4.ct(&ct, SEC, lookup());
        assert_eq!(e4.state(), st(&[INV, TRK]));
        // Errors do not refresh or change the TCP state.
        assert!(tcp_state(&ct, SEC).ends_with("(state=SYN_SENT)"));
        assert_eq!(ct.conn_count(), 1);
    }
}

#[test]
fn ipv6_tcp_and_udp() {
    let ct = ct();
    let mut syn = Packet::tcp("fd00::1", 40000, "fd00::2", 443, SYN, 1, 0, 0);
    syn.ct(&ct, 0, commit());
    assert_eq!(syn.state(), st(&[NEW, TRK]));
    let mut sa = Packet::tcp("fd00::2", 443, "fd00::1", 40000, SYN | ACK, 9, 2, 0);
    sa.ct(&ct, 0, lookup());
    assert_eq!(sa.state(), st(&[EST, RPL, TRK]));
    let mut u = Packet::udp("fd00::1", 5353, "fd00::2", 53);
    u.ct(&ct, 0, commit());
    let mut ur = Packet::udp("fd00::2", 53, "fd00::1", 5353);
    ur.ct(&ct, 0, lookup());
    assert_eq!(ur.state(), st(&[EST, RPL, TRK]));
    let mut lines: Vec<String> = ct.dump(None, 0).iter().map(|e| e.to_string()).collect();
    lines.sort();
    assert_eq!(lines[0], "tcp,orig=(src=fd00::1,dst=fd00::2,sport=40000,dport=443),reply=(src=fd00::2,dst=fd00::1,sport=443,dport=40000),zone=65520,protoinfo=(state=ESTABLISHED)");
    assert_eq!(lines[1], "udp,orig=(src=fd00::1,dst=fd00::2,sport=5353,dport=53),reply=(src=fd00::2,dst=fd00::1,sport=53,dport=5353),zone=65520");
}

#[test]
fn fragments_and_malformed_are_invalid() {
    let ct = ct();
    let mut stats = CtStats::default();
    let mut f = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    f.input.fragment = true;
    f.ct_stats(&ct, 0, commit(), &mut stats);
    assert_eq!(f.state(), st(&[INV, TRK]));
    assert_eq!(f.meta.orig, None);
    let mut m = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    m.input.malformed = true;
    m.ct_stats(&ct, 0, commit(), &mut stats);
    assert_eq!(m.state(), st(&[INV, TRK]));
    // TCP without its segment, port 0, mixed families.
    let mut t = Packet::from(CtInput::new(Tuple::ports(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        proto::TCP,
        1,
        2,
    )));
    t.ct_stats(&ct, 0, commit(), &mut stats);
    assert_eq!(t.state(), st(&[INV, TRK]));
    let mut p0 = Packet::udp("10.0.0.1", 0, "10.0.0.2", 53);
    p0.ct_stats(&ct, 0, commit(), &mut stats);
    assert_eq!(p0.state(), st(&[INV, TRK]));
    let mut mixed = Packet::from(CtInput::new(Tuple::ports(
        ip("10.0.0.1"),
        ip("fd00::2"),
        proto::UDP,
        1,
        2,
    )));
    mixed.ct_stats(&ct, 0, commit(), &mut stats);
    assert_eq!(mixed.state(), st(&[INV, TRK]));
    assert_eq!((stats.invalid, stats.fragments, stats.created), (5, 1, 0));
    assert_eq!(ct.conn_count(), 0);
}

#[test]
fn mark_and_label_change_only_on_commit_with_masks() {
    let ct = ct();
    let mut p = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    p.ct(
        &ct,
        0,
        commit()
            .with_mark(0x10, 0x10)
            .with_label(0x2 << 64, 0xfff << 64),
    );
    assert_eq!((p.meta.mark, p.meta.label), (0x10, 0x2 << 64));
    // Without commit, exec-style sets are ignored; values are read.
    let mut q = again(&p);
    q.ct(
        &ct,
        0,
        lookup()
            .with_mark(0xffff_ffff, 0xffff_ffff)
            .with_label(1, 1),
    );
    assert_eq!((q.meta.mark, q.meta.label), (0x10, 0x2 << 64));
    // Masked update keeps the other bits, from the reply direction too.
    let mut r = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r.ct(
        &ct,
        0,
        commit()
            .with_mark(0x3, 0xf)
            .with_label(0x7 << 32, 0xffff_ffff << 32),
    );
    assert_eq!(
        (r.meta.mark, r.meta.label),
        (0x13, (0x2 << 64) | (0x7 << 32))
    );
    // Value bits outside the mask are ignored.
    let mut s = again(&p);
    s.ct(&ct, 0, commit().with_mark(0xf00, 0x100));
    assert_eq!(s.meta.mark, 0x113);
    let e = &ct.dump(Some(Z), 0)[0];
    assert_eq!((e.mark, e.label), (0x113, (0x2 << 64) | (0x7 << 32)));
    assert!(e
        .to_string()
        .ends_with(",zone=65520,mark=275,labels=0x20000000700000000"));
    // A packet with no connection reads zeros.
    let mut n = Packet::udp("10.0.0.3", 1, "10.0.0.2", 53);
    n.meta.mark = 99;
    n.ct(&ct, 0, lookup());
    assert_eq!((n.meta.mark, n.meta.label), (0, 0));
}

#[test]
fn zones_isolate_identical_tuples() {
    let ct = ct();
    let mut a = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    a.ct(&ct, 0, CtAction::commit(1).with_mark(1, u32::MAX));
    let mut b = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    b.ct(&ct, 0, CtAction::commit(2).with_mark(2, u32::MAX));
    assert_eq!(b.state(), st(&[NEW, TRK]));
    assert_eq!(ct.conn_count(), 2);
    let mut r1 = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r1.ct(&ct, 0, CtAction::lookup(1));
    assert_eq!(
        (r1.state(), r1.meta.mark, r1.meta.zone),
        (st(&[EST, RPL, TRK]), 1, 1)
    );
    let mut r3 = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r3.ct(&ct, 0, CtAction::lookup(3));
    assert_eq!((r3.state(), r3.meta.mark), (st(&[NEW, TRK]), 0));
    assert_eq!(ct.dump(Some(2), 0).len(), 1);
    assert_eq!(ct.flush(Some(1)), 1);
    assert_eq!(ct.zone_conn_count(1), 0);
    assert_eq!(ct.zone_conn_count(2), 1);
    let mut r2 = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r2.ct(&ct, 0, CtAction::lookup(2));
    assert_eq!(r2.meta.mark, 2);
    // Zone 0 is omitted from the dump line, as in OVS.
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(0));
    assert!(!ct.dump(Some(0), 0)[0].to_string().contains("zone="));
}

#[test]
fn recirculation_reuses_the_cached_connection() {
    let ct = ct();
    let mut stats = CtStats::default();
    let mut p = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    p.ct_stats(&ct, 0, commit(), &mut stats);
    assert!(p.meta.conn.is_some());
    // Same zone again (e.g. ct(commit, exec(...)) after a lookup): no table lookup.
    p.ct_stats(&ct, 0, commit().with_mark(0x20, 0x20), &mut stats);
    assert_eq!((stats.lookups, stats.fast_path), (1, 1));
    assert_eq!(p.meta.mark, 0x20);
    assert_eq!(p.state(), st(&[NEW, TRK]));
    // Another zone: lookup there.
    p.ct_stats(&ct, 0, CtAction::lookup(9), &mut stats);
    assert_eq!(stats.lookups, 2);
    assert_eq!(p.meta.mark, 0);
    // A flushed connection's handle is ignored.
    let mut q = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    q.ct(&ct, 0, lookup());
    assert!(q.meta.conn.is_some());
    assert_eq!(ct.flush(None), 1);
    q.ct_stats(&ct, 0, lookup(), &mut stats);
    assert_eq!(q.state(), st(&[NEW, TRK]));
    assert!(q.meta.conn.is_none());
    // ct_clear.
    q.meta.clear();
    assert_eq!(q.state(), CtState::EMPTY);
}

/// The handle a recirculated packet carries points at the connection's record; when that
/// record was freed and the same 5-tuple re-created elsewhere meanwhile, the next ct() finds
/// the new connection (not the old record, not nothing); an expired connection is not reused.
#[test]
fn a_handle_follows_a_recreated_connection_and_ignores_an_expired_one() {
    let ct = ct();
    let mut stats = CtStats::default();
    let mut p = Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53);
    p.ct_stats(&ct, 0, commit(), &mut stats);
    assert!(p.meta.conn.is_some());
    assert_eq!(ct.flush(None), 1);
    // Other connections take records (the freed one among them), then the tuple comes back.
    for port in 2000..2010 {
        Packet::udp("10.0.0.1", port, "10.0.0.2", 53).ct(&ct, 0, commit());
    }
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, commit().with_mark(7, 0xff));
    let before = stats;
    p.ct_stats(&ct, 0, lookup(), &mut stats);
    // Found through the fallback lookup: the new connection, with its mark.
    assert_eq!(stats.fast_path, before.fast_path + 1);
    assert_eq!(p.meta.mark, 7);
    assert!(p.state().contains(TRK));
    // Expired: the handle is not used; the packet is +new again.
    let late = Duration::from_secs(3600).as_nanos() as u64;
    let mut q = Packet::udp("10.0.0.1", 3000, "10.0.0.2", 53);
    q.ct_stats(&ct, 0, commit(), &mut stats);
    let before = stats;
    q.ct_stats(&ct, late, lookup(), &mut stats);
    assert_eq!(stats.fast_path, before.fast_path);
    assert_eq!(q.state(), st(&[NEW, TRK]));
}

#[test]
fn force_restarts_a_connection_seen_in_reply_direction() {
    let ct = ct();
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, commit());
    let mut r = Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000);
    r.ct(
        &ct,
        0,
        CtAction {
            force: true,
            ..commit()
        },
    );
    assert_eq!(r.state(), st(&[NEW, TRK]));
    let d = ct.dump(None, 0);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].orig, r.tuple());
}

#[test]
fn connection_and_zone_limits() {
    let ct = Conntrack::new(CtConfig {
        max_conns: 3,
        ..CtConfig::default()
    });
    let mut stats = CtStats::default();
    for i in 0..3u16 {
        Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53).ct_stats(&ct, 0, commit(), &mut stats);
    }
    let mut p = Packet::udp("10.0.0.1", 2000, "10.0.0.2", 53);
    p.ct_stats(&ct, 0, commit(), &mut stats);
    assert_eq!(p.state(), st(&[NEW, TRK]));
    assert!(p.meta.conn.is_none());
    assert_eq!((stats.created, stats.commit_failed), (3, 1));
    assert_eq!(ct.counters().full, 1);
    assert_eq!(ct.conn_count(), 3);
    // Space comes back after expiry and sweep.
    assert_eq!(ct.sweep(61 * SEC, 1000).expired, 3);
    p.ct_stats(&ct, 61 * SEC, commit(), &mut stats);
    assert!(p.meta.conn.is_some());

    // Zone limits: explicit, default, and unlimited.
    let ct = ct_default();
    ct.set_zone_limit(7, Some(2));
    ct.set_default_zone_limit(1);
    ct.set_zone_limit(8, Some(0));
    let mut made = [0; 3];
    for (i, zone) in [7u16, 9, 8].iter().enumerate() {
        for port in 0..5u16 {
            let mut q = Packet::udp("10.0.0.1", 100 + port, "10.0.0.2", 53);
            q.ct(&ct, 0, CtAction::commit(*zone));
            made[i] += usize::from(q.meta.conn.is_some());
        }
    }
    assert_eq!(made, [2, 1, 5]);
    assert_eq!(ct.counters().zone_full, 4 + 3);
    assert_eq!(
        (ct.zone_limit(7), ct.zone_limit(9), ct.zone_limit(8)),
        (2, 1, 0)
    );
    assert_eq!(ct.zone_conn_count(8), 5);
}

fn ct_default() -> Conntrack {
    Conntrack::new(CtConfig::default())
}

#[test]
fn sweep_is_bounded_and_resumes() {
    let ct = ct();
    for i in 0..200u16 {
        Packet::udp("10.0.0.1", 1000 + i, "10.0.0.2", 53).ct(&ct, 0, commit());
    }
    // Half of them see a reply later, so they live longer.
    for i in (0..200u16).step_by(2) {
        Packet::udp("10.0.0.2", 53, "10.0.0.1", 1000 + i).ct(&ct, 50 * SEC, lookup());
    }
    // Nothing expired yet: a budgeted call looks at no more than its budget.
    let s = ct.sweep(59 * SEC, 64);
    assert_eq!((s.examined, s.expired), (64, 0));
    let mut calls = 0;
    let mut expired = 0;
    let mut complete = false;
    while !complete {
        let s = ct.sweep(61 * SEC, 16);
        assert!(s.examined <= 16);
        expired += s.expired;
        complete = s.pass_complete;
        calls += 1;
        assert!(calls < 1000, "sweep never completes");
    }
    // Entries visited before the cursor wrapped may remain; one more pass finishes.
    loop {
        let s = ct.sweep(61 * SEC, 16);
        expired += s.expired;
        if s.pass_complete {
            break;
        }
    }
    assert_eq!(expired, 100);
    assert!(calls >= 100 / 16);
    assert_eq!(ct.conn_count(), 100);
    assert_eq!(ct.counters().expired, 100);
    assert_eq!(ct.sweep(81 * SEC, 10_000).expired, 100);
    assert_eq!(ct.conn_count(), 0);
}

#[test]
fn zone_timeouts_override_the_global_policy() {
    let ct = ct();
    let short = Timeouts {
        udp_first: Duration::from_secs(5),
        ..Timeouts::default()
    };
    assert!(ct.set_zone_timeouts(7, short).is_ok());
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(7));
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, CtAction::commit(8));
    assert_eq!(ct.dump(Some(7), 0)[0].expires_in, Duration::from_secs(5));
    assert_eq!(ct.dump(Some(8), 0)[0].expires_in, Duration::from_secs(60));
    assert_eq!(ct.sweep(6 * SEC, 100).expired, 1);
    // Global change applies at the next packet of existing connections.
    ct.set_timeouts(Timeouts {
        udp_single: Duration::from_secs(2),
        ..Timeouts::default()
    });
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 6 * SEC, CtAction::lookup(8));
    assert_eq!(
        ct.dump(Some(8), 6 * SEC)[0].expires_in,
        Duration::from_secs(2)
    );
    ct.clear_zone_timeouts(7);
    assert_eq!(ct.zone_timeouts(7), None);
}

#[test]
fn flush_tuple_removes_either_direction() {
    let ct = ct();
    Packet::udp("10.0.0.1", 1000, "10.0.0.2", 53).ct(&ct, 0, commit());
    Packet::udp("10.0.0.1", 1001, "10.0.0.2", 53).ct(&ct, 0, commit());
    let reply = Tuple::ports(ip("10.0.0.2"), ip("10.0.0.1"), proto::UDP, 53, 1001);
    assert!(ct.flush_tuple(Z, &reply));
    assert!(!ct.flush_tuple(Z, &reply));
    assert!(!ct.flush_tuple(
        Z + 1,
        &Tuple::ports(ip("10.0.0.1"), ip("10.0.0.2"), proto::UDP, 1000, 53)
    ));
    assert_eq!(ct.conn_count(), 1);
    assert_eq!(ct.counters().flushed, 1);
}
