//! The answer to a packet a Reject rule stopped (sans-IO): a TCP RST for TCP, an ICMP
//! "host administratively prohibited" (type 3 code 10) for everything else, built from the
//! packet-in's frame, and the PACKET_OUT that delivers it straight to the port the original
//! came in on.
//!
//! Addresses are swapped as Antrea does (the answer comes from the original destination, MAC
//! and IP), IP TTL 128. Why output straight to the original in_port rather than through the
//! pipeline: xvsd's packet-in carries the frame as received (before DNAT), so the swapped
//! addresses are already the ones the client talked to (a Service's ClusterIP included), and
//! the answer needs neither routing nor un-DNAT.

use super::flows::OP_REJECT;
use crate::model::Model;
use xvs_flowtable::field::FieldId;
use xvs_flowtable::names::Port;
use xvs_flowtable::{Action, Match};
use xvs_openflow::{PacketIn, PacketOut, NO_BUFFER};
use xvs_packet::checksum::{checksum, update_udp16, update_udp32};
use xvs_packet::wire::{ethernet, ethertype, icmpv4, ip_proto, ipv4, tcp};

/// Packet-in category of NetworkPolicy packet-ins (userdata byte 0), as Antrea's.
pub const CATEGORY_NETWORK_POLICY: u8 = 1;
/// IP TTL of generated answers (Antrea's).
pub const ANSWER_TTL: u8 = 128;
/// ICMPv4 destination unreachable.
const ICMP_UNREACHABLE: u8 = 3;
/// Code 10: communication with the destination host administratively prohibited.
const ICMP_HOST_PROHIBITED: u8 = 10;
/// ct_state bits (OVS's): tracked, destination-NATed.
const CT_TRACKED: u128 = 0x20;
const CT_DNAT: u128 = 0x80;
/// `OFPP_CONTROLLER` in OpenFlow 1.1+ port numbering.
const OFPP11_CONTROLLER: u32 = 0xffff_fffd;

/// Why no answer is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectError {
    /// Not Ethernet + IPv4 (IPv6 answers are not built yet).
    #[error("not an IPv4 frame")]
    NotIpv4,
    /// Headers cut short or inconsistent.
    #[error("truncated or malformed packet")]
    Malformed,
    /// A later fragment: its transport header is elsewhere (no answer, as a host would).
    #[error("later IP fragment")]
    LaterFragment,
    /// An ICMP error is never answered with an ICMP error (RFC 1122 3.2.2).
    #[error("ICMP error message")]
    IcmpError,
    /// A RST is never answered (RFC 793).
    #[error("TCP RST")]
    TcpReset,
    /// The packet-in has no usable in_port to answer to.
    #[error("packet-in without an in_port")]
    NoInPort,
}

/// True when the packet-in asks for a reject answer: a NetworkPolicy packet-in whose
/// operation bits include reject (`userdata=01.<op>`).
pub fn wants_reject(pi: &PacketIn) -> bool {
    matches!(pi.userdata.as_slice(), [CATEGORY_NETWORK_POLICY, op, ..] if u32::from(*op) & OP_REJECT != 0)
}

/// The Ethernet frame answering `original` (an Ethernet + IPv4 frame).
pub fn answer_frame(original: &[u8]) -> Result<Vec<u8>, RejectError> {
    answer_frame_as(original, None)
}

/// [`answer_frame`] for a packet whose destination was rewritten (Service DNAT) from
/// `addressed` (the IP and port the client sent to, conntrack's original tuple): the answer
/// comes from there and quotes the packet as the client sent it, so the client's socket
/// recognises it.
pub fn answer_frame_as(
    original: &[u8],
    addressed: Option<([u8; 4], u16)>,
) -> Result<Vec<u8>, RejectError> {
    let eth = ethernet::Packet::new_checked(original).map_err(|_| RejectError::Malformed)?;
    if eth.ethertype() != ethertype::IPV4 {
        return Err(RejectError::NotIpv4);
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| RejectError::Malformed)?;
    if ip.is_later_fragment() {
        return Err(RejectError::LaterFragment);
    }
    // The IP datagram as far as the frame holds it (the packet-in may be truncated).
    let datagram_len = usize::from(ip.total_len()).min(eth.payload().len());
    let datagram = &eth.payload()[..datagram_len];
    let l4 = datagram
        .get(ip.header_len()..)
        .ok_or(RejectError::Malformed)?;
    let (src_mac, dst_mac) = (eth.dst(), eth.src());
    let (src_ip, dst_ip) = (addressed.map_or(ip.dst(), |a| a.0), ip.src());
    let mut frame = Vec::with_capacity(14 + 20 + 28 + 20);
    frame.extend_from_slice(&[0; 14]);
    ethernet::Repr {
        src: src_mac,
        dst: dst_mac,
        ethertype: ethertype::IPV4,
    }
    .emit(&mut frame)
    .map_err(|_| RejectError::Malformed)?;
    let (proto, l4_answer) = if ip.protocol() == ip_proto::TCP {
        (
            ip_proto::TCP,
            tcp_reset(l4, src_ip, dst_ip, addressed.map(|a| a.1))?,
        )
    } else {
        if ip.protocol() == ip_proto::ICMP && is_icmp_error(l4) {
            return Err(RejectError::IcmpError);
        }
        (
            ip_proto::ICMP,
            icmp_prohibited(datagram, ip.header_len(), addressed),
        )
    };
    let mut ip_header = [0u8; ipv4::HEADER_LEN];
    ipv4::Repr {
        src: src_ip,
        dst: dst_ip,
        protocol: proto,
        payload_len: u16::try_from(l4_answer.len()).map_err(|_| RejectError::Malformed)?,
        ttl: ANSWER_TTL,
        tos: 0,
        ident: 0,
        flags_frag: 0,
    }
    .emit(&mut ip_header)
    .map_err(|_| RejectError::Malformed)?;
    frame.extend_from_slice(&ip_header);
    frame.extend_from_slice(&l4_answer);
    Ok(frame)
}

/// ICMP types that are errors (destination unreachable, source quench, redirect, time
/// exceeded, parameter problem).
fn is_icmp_error(l4: &[u8]) -> bool {
    matches!(l4.first(), Some(3 | 4 | 5 | 11 | 12))
}

/// RST answering the segment `seg` (RFC 793 "reset generation"): a segment carrying an ACK
/// gets `seq = its ack` (the only number the peer is sure to accept); otherwise (a SYN) `seq
/// 0` and `ack = its seq + its length`, SYN and FIN counting one each. Always RST+ACK, as
/// Antrea sends, window 0, no payload.
fn tcp_reset(
    seg: &[u8],
    src: [u8; 4],
    dst: [u8; 4],
    src_port: Option<u16>,
) -> Result<Vec<u8>, RejectError> {
    let t = tcp::Packet::new_checked(seg).map_err(|_| RejectError::Malformed)?;
    let flags = t.flags();
    if flags & tcp::flags::RST != 0 {
        return Err(RejectError::TcpReset);
    }
    let payload = seg.len().saturating_sub(t.header_len()) as u32;
    let consumed =
        payload + u32::from(flags & tcp::flags::SYN != 0) + u32::from(flags & tcp::flags::FIN != 0);
    let ack = t.seq().wrapping_add(consumed);
    let seq = if t.ack() { t.ack_number() } else { 0 };
    let mut out = vec![0u8; tcp::HEADER_LEN];
    tcp::Repr {
        src_port: src_port.unwrap_or(t.dst_port()),
        dst_port: t.src_port(),
        seq,
        ack,
        flags: tcp::flags::RST | tcp::flags::ACK,
        window: 0,
    }
    .emit(&mut out)
    .map_err(|_| RejectError::Malformed)?;
    tcp::Packet::new_unchecked(&mut out[..]).fill_checksum_v4(src, dst);
    Ok(out)
}

/// ICMP type 3 code 10: 4 unused bytes, then the original IP header and the first 8 bytes of
/// its payload (as far as the datagram goes), with the destination put back to `addressed`.
fn icmp_prohibited(
    datagram: &[u8],
    header_len: usize,
    addressed: Option<([u8; 4], u16)>,
) -> Vec<u8> {
    let quoted = &datagram[..datagram.len().min(header_len + 8)];
    let mut out = Vec::with_capacity(8 + quoted.len());
    out.extend_from_slice(&[ICMP_UNREACHABLE, ICMP_HOST_PROHIBITED, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(quoted);
    if let Some((addr, port)) = addressed {
        undo_dnat(&mut out[8..], header_len, addr, port);
    }
    let sum = checksum(&out);
    if let Ok(mut p) = icmpv4::Packet::new_checked(&mut out[..]) {
        p.set_checksum(sum);
    }
    out
}

/// Rewrites the quoted datagram's destination to `addr`:`port` (ports of TCP and UDP), with
/// the IP checksum and, when quoted whole, the UDP checksum kept right.
fn undo_dnat(quote: &mut [u8], header_len: usize, addr: [u8; 4], port: u16) {
    // At byte offsets: the quote is cut short, so no checked view of it would accept it.
    if quote.len() < header_len || header_len < ipv4::HEADER_LEN {
        return;
    }
    let mut old_addr = [0u8; 4];
    old_addr.copy_from_slice(&quote[16..20]);
    let proto = quote[9];
    quote[16..20].copy_from_slice(&addr);
    quote[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&quote[..header_len]);
    quote[10..12].copy_from_slice(&sum.to_be_bytes());
    let l4 = &mut quote[header_len..];
    if !matches!(proto, ip_proto::TCP | ip_proto::UDP) || l4.len() < 4 {
        return;
    }
    let old_port = u16::from_be_bytes([l4[2], l4[3]]);
    l4[2..4].copy_from_slice(&port.to_be_bytes());
    if proto == ip_proto::UDP && l4.len() >= 8 {
        let sum = u16::from_be_bytes([l4[6], l4[7]]);
        let sum = update_udp32(sum, u32::from_be_bytes(old_addr), u32::from_be_bytes(addr));
        let sum = update_udp16(sum, old_port, port);
        l4[6..8].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Conntrack's original destination when the packet was destination-NATed (a Service
/// address): the packet-in carries the frame after the NAT, and the ct_* fields of the
/// tracked connection.
fn addressed(metadata: &Match) -> Option<([u8; 4], u16)> {
    let (state, _) = metadata.get(FieldId::CT_STATE);
    if state & (CT_TRACKED | CT_DNAT) != CT_TRACKED | CT_DNAT {
        return None;
    }
    let (ip, ip_mask) = metadata.get(FieldId::CT_NW_DST);
    let (port, _) = metadata.get(FieldId::CT_TP_DST);
    (ip_mask != 0 && ip != 0).then(|| ((ip as u32).to_be_bytes(), port as u16))
}

/// The PACKET_OUT answering a Reject packet-in: the answer frame, with in_port = the port of
/// the local Pod that sent it (the original destination, so the switch sees it come from
/// there), else CONTROLLER, output to the original in_port.
pub fn packet_out(pi: &PacketIn, model: &Model) -> Result<PacketOut, RejectError> {
    let (orig_in_port, _) = pi.metadata.get(FieldId::IN_PORT_OXM);
    let orig_in_port = u32::try_from(orig_in_port).map_err(|_| RejectError::NoInPort)?;
    if orig_in_port == 0 || orig_in_port >= u32::from(Port::MAX.0) {
        return Err(RejectError::NoInPort);
    }
    let frame = answer_frame_as(&pi.data, addressed(&pi.metadata))?;
    // The Pod answering is the one the packet was delivered to (after any DNAT).
    let from_ip = std::net::Ipv4Addr::from(
        ethernet::Packet::new_checked(&pi.data[..])
            .and_then(|e| ipv4::Packet::new_checked(e.payload()).map(|ip| ip.dst()))
            .map_err(|_| RejectError::Malformed)?,
    );
    let node = model.config.as_ref().map(|c| c.node_name.as_str());
    let in_port = model
        .pods
        .values()
        .find(|p| p.ip == from_ip && node.is_none_or(|n| p.node == n))
        .map_or(OFPP11_CONTROLLER, |p| p.ofport);
    let from_tunnel = model
        .config
        .as_ref()
        .and_then(|c| c.tunnel_ofport)
        .is_some_and(|tp| tp == orig_in_port);
    let actions = if from_tunnel && in_port != OFPP11_CONTROLLER {
        // A remote Pod's packet (Antrea's rejectPodLocalToRemote): the tunnel port needs the
        // remote Node as tun_dst, so the answer enters the pipeline at L3Forwarding, which
        // routes it to the peer's Pod CIDR like any packet from the answering Pod.
        vec![Action::Resubmit {
            in_port: Port::IN_PORT,
            table: Some(crate::pipeline::t::L3_FWD),
            with_ct_orig: false,
        }]
    } else {
        let out = if in_port == orig_in_port {
            Port::IN_PORT
        } else {
            Port(u16::try_from(orig_in_port).map_err(|_| RejectError::NoInPort)?)
        };
        vec![Action::Output {
            port: out,
            max_len: 0,
        }]
    };
    let mut match_ = Match::catch_all();
    match_.set_exact(FieldId::IN_PORT_OXM, u128::from(in_port));
    Ok(PacketOut {
        buffer_id: NO_BUFFER,
        match_,
        actions,
        data: frame,
    })
}

/// Reject answers sent and packet-ins left unanswered, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectCounters {
    /// Answers built (and handed to the connection).
    pub answered: u64,
    /// Packet-ins that were not reject requests (logging only, other categories).
    pub not_reject: u64,
    /// Reject packet-ins without an answer, by [`RejectError::name`].
    pub unanswered: std::collections::BTreeMap<&'static str, u64>,
}

impl RejectError {
    /// The counter name of this reason.
    pub fn name(&self) -> &'static str {
        match self {
            RejectError::NotIpv4 => "not_ipv4",
            RejectError::Malformed => "malformed",
            RejectError::LaterFragment => "later_fragment",
            RejectError::IcmpError => "icmp_error",
            RejectError::TcpReset => "tcp_reset",
            RejectError::NoInPort => "no_in_port",
        }
    }
}

impl RejectCounters {
    /// The answer to `pi`, if it is a reject request that can be answered; counts either way.
    pub fn handle(&mut self, pi: &PacketIn, model: &Model) -> Option<PacketOut> {
        if !wants_reject(pi) {
            self.not_reject += 1;
            return None;
        }
        match packet_out(pi, model) {
            Ok(po) => {
                self.answered += 1;
                Some(po)
            }
            Err(e) => {
                *self.unanswered.entry(e.name()).or_default() += 1;
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use xvs_packet::build::{self, Macs, TcpParams};

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const CLIENT: [u8; 4] = [10, 10, 0, 2];
    const SERVER: [u8; 4] = [10, 10, 0, 3];

    fn macs() -> Macs {
        Macs {
            src: CLIENT_MAC,
            dst: SERVER_MAC,
        }
    }

    fn segment(flags: u16, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = build::tcp4(
            &mut buf,
            macs(),
            CLIENT,
            SERVER,
            TcpParams {
                sport: 40000,
                dport: 80,
                seq,
                ack,
                flags,
                window: 1000,
            },
            payload,
        )
        .unwrap();
        buf[..n].to_vec()
    }

    fn check_swapped_ip(frame: &[u8], proto: u8) -> ipv4::Packet<&[u8]> {
        let eth = ethernet::Packet::new_checked(frame).unwrap();
        assert_eq!(eth.src(), SERVER_MAC);
        assert_eq!(eth.dst(), CLIENT_MAC);
        assert_eq!(eth.ethertype(), ethertype::IPV4);
        let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src(), ip.dst()), (SERVER, CLIENT));
        assert_eq!(ip.protocol(), proto);
        assert_eq!(ip.ttl(), ANSWER_TTL);
        assert_eq!(usize::from(ip.total_len()), frame.len() - 14);
        ip
    }

    #[test]
    fn syn_gets_rst_ack_of_seq_plus_one() {
        let f = answer_frame(&segment(tcp::flags::SYN, 1000, 0, &[])).unwrap();
        let ip = check_swapped_ip(&f, ip_proto::TCP);
        let t = tcp::Packet::new_checked(&f[34..]).unwrap();
        assert!(t.verify_checksum_v4(ip.src(), ip.dst()));
        assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
        assert_eq!(t.flags(), tcp::flags::RST | tcp::flags::ACK);
        assert_eq!((t.seq(), t.ack_number()), (0, 1001));
        assert_eq!(f.len(), 14 + 20 + 20);
    }

    #[test]
    fn mid_stream_segment_gets_rst_at_its_ack() {
        let f = answer_frame(&segment(
            tcp::flags::ACK | tcp::flags::PSH,
            5000,
            777,
            b"hello",
        ))
        .unwrap();
        let ip = check_swapped_ip(&f, ip_proto::TCP);
        let t = tcp::Packet::new_checked(&f[34..]).unwrap();
        assert!(t.verify_checksum_v4(ip.src(), ip.dst()));
        assert_eq!((t.seq(), t.ack_number()), (777, 5005));
        assert_eq!(t.flags(), tcp::flags::RST | tcp::flags::ACK);
    }

    #[test]
    fn rst_is_never_answered() {
        let seg = segment(tcp::flags::RST, 1, 0, &[]);
        assert_eq!(answer_frame(&seg), Err(RejectError::TcpReset));
    }

    /// A SYN's RST compared byte for byte with a hand-computed frame. IP checksum: the header
    /// words 4500+0028+8006+0a0a+0003+0a0a+0002 = d947, complement 26b8. TCP: pseudo-header
    /// 0a0a+0003+0a0a+0002+0006+0014 = 1433, segment 0050+9c40+0102+0305+5014 = f0ab, sum
    /// 104de folds to 04df, complement fb20.
    #[test]
    fn rst_bytes_match_hand_computed() {
        let f = answer_frame(&segment(tcp::flags::SYN, 0x0102_0304, 0, &[])).unwrap();
        #[rustfmt::skip]
        let want: [u8; 54] = [
            // Ethernet: dst client, src server, IPv4
            2, 0, 0, 0, 0, 1,  2, 0, 0, 0, 0, 2,  0x08, 0x00,
            // IPv4: 45 00, len 40, id 0, flags 0, ttl 128, tcp, checksum, src, dst
            0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x80, 0x06, 0x26, 0xb8,
            10, 10, 0, 3,  10, 10, 0, 2,
            // TCP: 80 -> 40000, seq 0, ack 0x01020305, off 5, RST|ACK, win 0, checksum, urg 0
            0x00, 0x50, 0x9c, 0x40,  0, 0, 0, 0,  0x01, 0x02, 0x03, 0x05,
            0x50, 0x14, 0x00, 0x00,  0xfb, 0x20, 0x00, 0x00,
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn udp_gets_icmp_prohibited_quoting_header_and_8_bytes() {
        let mut buf = [0u8; 256];
        let n = build::udp4(
            &mut buf,
            macs(),
            CLIENT,
            SERVER,
            5353,
            53,
            b"0123456789abcdef",
        )
        .unwrap();
        let orig = &buf[..n];
        let f = answer_frame(orig).unwrap();
        check_swapped_ip(&f, ip_proto::ICMP);
        let icmp = icmpv4::Packet::new_checked(&f[34..]).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type(), icmp.code()), (3, 10));
        assert_eq!(&f[34 + 4..34 + 8], &[0, 0, 0, 0]);
        assert_eq!(&f[34 + 8..], &orig[14..14 + 20 + 8]);
    }

    #[test]
    fn ping_gets_icmp_prohibited_and_icmp_errors_get_nothing() {
        let mut buf = [0u8; 256];
        let n =
            build::icmp4_echo(&mut buf, macs(), CLIENT, SERVER, true, 7, 1, &[0xab; 56]).unwrap();
        let f = answer_frame(&buf[..n]).unwrap();
        check_swapped_ip(&f, ip_proto::ICMP);
        let icmp = icmpv4::Packet::new_checked(&f[34..]).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type(), icmp.code()), (3, 10));
        // The quoted echo header: type 8, code 0, then ident 7 and seq 1.
        assert_eq!(&f[34 + 8 + 20..34 + 8 + 20 + 8][..2], &[8, 0]);
        assert_eq!(answer_frame(&f), Err(RejectError::IcmpError));
    }

    #[test]
    fn short_or_foreign_frames_are_refused_without_panic() {
        let seg = segment(tcp::flags::SYN, 1, 0, &[]);
        for n in 0..seg.len() {
            let _ = answer_frame(&seg[..n]);
        }
        let mut arp = seg.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(answer_frame(&arp), Err(RejectError::NotIpv4));
        let mut frag = seg;
        frag[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(answer_frame(&frag), Err(RejectError::LaterFragment));
    }

    const CLUSTER_IP: [u8; 4] = [10, 96, 0, 10];

    #[test]
    fn dnat_answers_come_from_the_service_address() {
        // The client sent to 10.96.0.10:80; the switch DNATed it to 10.10.0.3:8080.
        let mut seg = segment(tcp::flags::SYN, 41, 0, &[]);
        let mut t = tcp::Packet::new_checked(&mut seg[34..]).unwrap();
        t.as_bytes_mut()[2..4].copy_from_slice(&8080u16.to_be_bytes());
        t.fill_checksum_v4(CLIENT, SERVER);
        let f = answer_frame_as(&seg, Some((CLUSTER_IP, 80))).unwrap();
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src(), ip.dst()), (CLUSTER_IP, CLIENT));
        let t = tcp::Packet::new_checked(&f[34..]).unwrap();
        assert!(t.verify_checksum_v4(CLUSTER_IP, CLIENT));
        assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
        assert_eq!(t.ack_number(), 42);

        // UDP: the ICMP error quotes the datagram as the client sent it, checksums included.
        let mut sent = [0u8; 128];
        let n = build::udp4(&mut sent, macs(), CLIENT, CLUSTER_IP, 5000, 53, b"query").unwrap();
        let mut natted = [0u8; 128];
        let m = build::udp4(&mut natted, macs(), CLIENT, SERVER, 5000, 5353, b"query").unwrap();
        assert_eq!(n, m);
        let f = answer_frame_as(&natted[..m], Some((CLUSTER_IP, 53))).unwrap();
        let icmp = icmpv4::Packet::new_checked(&f[34..]).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(&f[34 + 8..], &sent[14..14 + 28]);
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.src(), CLUSTER_IP);
    }

    #[test]
    fn packet_in_ct_fields_give_the_addressed_service() {
        let mut md = Match::catch_all();
        md.set_exact(FieldId::CT_STATE, 0x21);
        md.set_exact(
            FieldId::CT_NW_DST,
            u128::from(u32::from_be_bytes(CLUSTER_IP)),
        );
        md.set_exact(FieldId::CT_TP_DST, 80);
        assert_eq!(addressed(&md), None, "not DNATed");
        md.set_exact(FieldId::CT_STATE, 0xa1);
        assert_eq!(addressed(&md), Some((CLUSTER_IP, 80)));
        assert_eq!(addressed(&Match::catch_all()), None);
    }

    #[test]
    fn packet_out_answers_to_the_in_port_from_the_destination_pod() {
        let pi = |userdata: Vec<u8>| {
            let mut metadata = Match::catch_all();
            metadata.set_exact(FieldId::IN_PORT_OXM, 1);
            PacketIn {
                buffer_id: NO_BUFFER,
                total_len: 54,
                reason: 0,
                table_id: 26,
                cookie: 0,
                metadata,
                data: segment(tcp::flags::SYN, 1, 0, &[]),
                userdata,
                continuation: Vec::new(),
            }
        };
        assert!(wants_reject(&pi(vec![1, 2])));
        assert!(wants_reject(&pi(vec![1, 3])));
        assert!(!wants_reject(&pi(vec![1, 1])));
        assert!(!wants_reject(&pi(vec![2])));
        let model = Model::default();
        let po = packet_out(&pi(vec![1, 2]), &model).unwrap();
        assert_eq!(
            po.match_.get(FieldId::IN_PORT_OXM).0,
            u128::from(OFPP11_CONTROLLER)
        );
        assert_eq!(
            po.actions,
            vec![Action::Output {
                port: Port(1),
                max_len: 0
            }]
        );
        assert_eq!(po.data, answer_frame(&pi(vec![1, 2]).data).unwrap());
    }

    #[test]
    fn a_remote_clients_answer_is_routed_from_l3_forwarding() {
        // The server is a local Pod; the client's SYN came in through the tunnel port.
        let yaml = format!(
            "kind: AgentConfig\nspec:\n  nodeName: n1\n  tunnelType: geneve\n  tunnelOfport: 32768\n  gateway: {{name: gw0, ip: 10.10.0.1, mac: \"aa:bb:cc:dd:ee:01\"}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: server, namespace: default, annotations: {{xvs.io/mac: \"02:00:00:00:00:02\", xvs.io/interface: p5, xvs.io/ofport: \"5\"}}}}\nspec: {{nodeName: n1}}\nstatus: {{podIP: {}}}\n",
            std::net::Ipv4Addr::from(SERVER)
        );
        let mut model = Model::default();
        for o in crate::model::parse_file("t.yaml", &yaml).unwrap() {
            model.insert(o);
        }
        let mut metadata = Match::catch_all();
        metadata.set_exact(FieldId::IN_PORT_OXM, 32768);
        let pi = PacketIn {
            buffer_id: NO_BUFFER,
            total_len: 54,
            reason: 0,
            table_id: 26,
            cookie: 0,
            metadata,
            data: segment(tcp::flags::SYN, 1, 0, &[]),
            userdata: vec![1, 2],
            continuation: Vec::new(),
        };
        let po = packet_out(&pi, &model).unwrap();
        assert_eq!(po.match_.get(FieldId::IN_PORT_OXM).0, 5);
        assert_eq!(
            po.actions,
            vec![Action::Resubmit {
                in_port: Port::IN_PORT,
                table: Some(crate::pipeline::t::L3_FWD),
                with_ct_orig: false
            }]
        );
        // From a local Pod's port (not the tunnel) the answer still goes straight back.
        let mut local = pi.clone();
        local.metadata.set_exact(FieldId::IN_PORT_OXM, 7);
        let po = packet_out(&local, &model).unwrap();
        assert_eq!(
            po.actions,
            vec![Action::Output {
                port: Port(7),
                max_len: 0
            }]
        );
    }
}
