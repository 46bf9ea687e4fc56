//! TCP tracking: per-peer state and the sequence/window checks of pf (Guido van Rooij's
//! algorithm) as Open vSwitch's userspace tracker applies them (`lib/conntrack-tcp.c`).
//!
//! Each side ("peer") keeps the lowest sequence number it may send next (`seqlo`), the highest
//! sequence number the other side's window allows it (`seqhi`), the largest window it advertised
//! (`max_win`) and its window scale. A segment is accepted when its last byte fits in the window
//! the receiver advertised, it is not more than one window back, and its ACK is within about one
//! window of what the receiver sent. Accepted segments advance the windows and the states.

use crate::timeout::Tm;

/// TCP flag bits (the low 12 bits of the TCP flags field).
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
}

/// What the tracker needs from a TCP segment; the caller parses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSegment {
    /// TCP flags (see [`flags`]).
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Window field, unscaled, as on the wire.
    pub window: u16,
    /// The window-scale option's shift count when the option is present (SYN segments); see
    /// [`parse_wscale`].
    pub wscale: Option<u8>,
    /// Length of the payload in bytes.
    pub payload_len: u32,
}

/// Finds the window-scale option in the TCP options bytes (everything after the 20-byte fixed
/// header, up to the data offset). Returns the shift count, or `None` when absent or when the
/// options are truncated before it.
pub fn parse_wscale(options: &[u8]) -> Option<u8> {
    let mut i = 0usize;
    while i < options.len() {
        match options[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*options.get(i + 1)?);
                if kind == 3 && len == 3 {
                    return options.get(i + 2).copied();
                }
                i += len.max(2);
            }
        }
    }
    None
}

/// Per-peer TCP state, numbered as OVS's `CT_DPIF_TCPS_*` (and printed with those names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// CLOSED.
    Closed = 0,
    /// LISTEN (never entered by the tracker; kept for numbering).
    Listen,
    /// SYN_SENT: this side sent its first segment.
    SynSent,
    /// SYN_RECV (never entered; kept for numbering).
    SynRecv,
    /// ESTABLISHED: the other side acknowledged this side's first segment.
    Established,
    /// CLOSE_WAIT (never entered; kept for numbering).
    CloseWait,
    /// FIN_WAIT_1 (never entered; kept for numbering).
    FinWait1,
    /// CLOSING: this side sent a FIN.
    Closing,
    /// LAST_ACK (never entered; kept for numbering).
    LastAck,
    /// FIN_WAIT_2: this side's FIN was acknowledged.
    FinWait2,
    /// TIME_WAIT: reset seen.
    TimeWait,
}

impl TcpState {
    /// Every state, in OVS's numbering order.
    pub const ALL: [TcpState; 11] = [
        TcpState::Closed,
        TcpState::Listen,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::CloseWait,
        TcpState::FinWait1,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::FinWait2,
        TcpState::TimeWait,
    ];

    /// OVS's name (`ct_dpif_tcp_state_string`).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::TimeWait => "TIME_WAIT",
        }
    }

    /// The state `dpctl/dump-conntrack` prints for a connection whose peers are in `a` and `b`
    /// (OVS prints the larger, with FIN_WAIT_2 shown as TIME_WAIT and SYN_RECV as ESTABLISHED).
    pub fn summary(a: TcpState, b: TcpState) -> TcpState {
        match a.max(b) {
            TcpState::FinWait2 => TcpState::TimeWait,
            TcpState::SynRecv => TcpState::Established,
            s => s,
        }
    }
}

const WSCALE_FLAG: u8 = 0x80;
const WSCALE_UNKNOWN: u8 = 0x40;
const WSCALE_MASK: u8 = 0x0f;
const MAX_WSCALE: u8 = 14;
/// One window plus a fudge factor for a reassembled fragment (pf's MAXACKWINDOW).
const MAX_ACK_WINDOW: i64 = 0xffff + 1500;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Peer {
    seqlo: u32,
    seqhi: u32,
    max_win: u32,
    wscale: u8,
    state: u8,
}

impl Peer {
    fn state(&self) -> TcpState {
        state_from(self.state)
    }
}

fn state_from(v: u8) -> TcpState {
    match v {
        0 => TcpState::Closed,
        1 => TcpState::Listen,
        2 => TcpState::SynSent,
        3 => TcpState::SynRecv,
        4 => TcpState::Established,
        5 => TcpState::CloseWait,
        6 => TcpState::FinWait1,
        7 => TcpState::Closing,
        8 => TcpState::LastAck,
        9 => TcpState::FinWait2,
        _ => TcpState::TimeWait,
    }
}

const CLOSED: u8 = TcpState::Closed as u8;
const SYN_SENT: u8 = TcpState::SynSent as u8;
const ESTABLISHED: u8 = TcpState::Established as u8;
const CLOSING: u8 = TcpState::Closing as u8;
const FIN_WAIT_2: u8 = TcpState::FinWait2 as u8;
const TIME_WAIT: u8 = TcpState::TimeWait as u8;

fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}
fn seq_geq(a: u32, b: u32) -> bool {
    seq_diff(a, b) >= 0
}
fn seq_gt(a: u32, b: u32) -> bool {
    seq_diff(a, b) > 0
}

fn wscale_of(seg: &TcpSegment) -> u8 {
    match seg.wscale {
        Some(s) => s.min(MAX_WSCALE) | WSCALE_FLAG,
        None => 0,
    }
}

/// Flag combinations pf rejects (`pf_normalize_tcp`).
pub(crate) fn invalid_flags(f: u16) -> bool {
    use flags::*;
    if f & SYN != 0 {
        if f & (RST | FIN) != 0 {
            return true;
        }
    } else if f & (ACK | RST) == 0 {
        return true;
    }
    f & ACK == 0 && f & (FIN | PSH | URG) != 0
}

/// May this segment create a connection? (Not SYN+ACK: only a SYN, or a mid-stream segment
/// picked up after the fact.)
pub(crate) fn valid_new(seg: &TcpSegment) -> bool {
    !invalid_flags(seg.flags) && seg.flags & (flags::SYN | flags::ACK) != (flags::SYN | flags::ACK)
}

/// Result of a segment on an existing connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// Accepted; the connection is established from the tracker's point of view.
    Valid,
    /// Accepted, still opening (a SYN, possibly retransmitted).
    ValidNew,
    /// Rejected.
    Invalid(TcpInvalid),
    /// A SYN on a fully closed connection: the old connection is finished and this segment
    /// starts a new one.
    Reopen,
}

/// Why a segment was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpInvalid {
    Flags,
    Window,
}

/// The tracking state of one TCP connection; index 0 is the original direction's sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpConn {
    peer: [Peer; 2],
}

impl TcpConn {
    /// A connection opened by `seg` (which passed [`valid_new`]).
    pub fn new(seg: &TcpSegment) -> (TcpConn, Tm) {
        let mut src = Peer {
            seqlo: seg.seq,
            seqhi: seg.seq.wrapping_add(seg.payload_len).wrapping_add(1),
            max_win: u32::from(seg.window).max(1),
            wscale: 0,
            state: SYN_SENT,
        };
        let mut dst = Peer {
            seqhi: 1,
            max_win: 1,
            state: CLOSED,
            ..Peer::default()
        };
        if seg.flags & flags::SYN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
            src.wscale = wscale_of(seg);
        } else {
            // Picked up mid-stream: window scaling unknown on both sides, be liberal.
            src.wscale = WSCALE_UNKNOWN;
            dst.wscale = WSCALE_UNKNOWN;
        }
        if src.wscale & WSCALE_MASK != 0 {
            let sws = u32::from(src.wscale & WSCALE_MASK);
            src.max_win = src.max_win.div_ceil(1 << sws);
        }
        if seg.flags & flags::FIN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
        }
        (TcpConn { peer: [src, dst] }, Tm::TcpFirstPacket)
    }

    /// The (original, reply) peer states.
    pub fn states(&self) -> (TcpState, TcpState) {
        (self.peer[0].state(), self.peer[1].state())
    }

    /// Applies `seg`, sent in the reply direction when `reply`. Returns the verdict and, when the
    /// segment refreshes the connection, the timeout to apply from now.
    pub fn update(
        &mut self,
        seg: &TcpSegment,
        reply: bool,
        seq_check: bool,
    ) -> (Update, Option<Tm>) {
        let f = seg.flags;
        if invalid_flags(f) {
            return (Update::Invalid(TcpInvalid::Flags), None);
        }
        let (si, di) = if reply { (1, 0) } else { (0, 1) };
        let mut src = self.peer[si];
        let mut dst = self.peer[di];

        if f & (flags::SYN | flags::ACK) == flags::SYN {
            if dst.state >= FIN_WAIT_2 && src.state >= FIN_WAIT_2 {
                self.peer[si].state = CLOSED;
                self.peer[di].state = CLOSED;
                return (Update::Reopen, None);
            } else if src.state <= SYN_SENT {
                self.peer[si].state = SYN_SENT;
                return (Update::ValidNew, Some(Tm::TcpFirstPacket));
            }
        }

        let mut sws: u32 = 0;
        let mut dws: u32 = 0;
        if src.wscale & WSCALE_FLAG != 0 && dst.wscale & WSCALE_FLAG != 0 && f & flags::SYN == 0 {
            sws = u32::from(src.wscale & WSCALE_MASK);
            dws = u32::from(dst.wscale & WSCALE_MASK);
        } else if src.wscale & WSCALE_UNKNOWN != 0
            && dst.wscale & WSCALE_UNKNOWN != 0
            && f & flags::SYN == 0
        {
            sws = u32::from(MAX_WSCALE);
            dws = u32::from(MAX_WSCALE);
        }

        let mut win = u32::from(seg.window);
        let orig_seq = seg.seq;
        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let mut end = seq.wrapping_add(seg.payload_len);
        let mut check_ackskew = true;

        if src.state < SYN_SENT {
            // First segment from this side.
            if f & flags::SYN != 0 {
                end = end.wrapping_add(1);
                if dst.wscale & WSCALE_FLAG != 0 {
                    src.wscale = wscale_of(seg);
                    if src.wscale & WSCALE_FLAG != 0 {
                        // Remove the scale factor from the initial window.
                        sws = u32::from(src.wscale & WSCALE_MASK);
                        win = win.div_ceil(1 << sws);
                        dws = u32::from(dst.wscale & WSCALE_MASK);
                    } else {
                        // The other side offered scaling but this one did not: no scaling.
                        dst.max_win = dst
                            .max_win
                            .wrapping_shl(u32::from(dst.wscale & WSCALE_MASK));
                        dst.wscale = 0;
                    }
                }
            }
            if f & flags::FIN != 0 {
                end = end.wrapping_add(1);
            }
            src.seqlo = seq;
            src.state = SYN_SENT;
            // Slide the window when it was only a guess so far.
            let fwd = end.wrapping_add(dst.max_win.wrapping_shl(dws).max(1));
            if src.seqhi == 1 || seq_geq(fwd, src.seqhi) {
                src.seqhi = fwd;
                // Picking up a connection: be lenient on the ACK.
                check_ackskew = false;
            }
            if win > src.max_win {
                src.max_win = win;
            }
        } else {
            if f & flags::SYN != 0 {
                end = end.wrapping_add(1);
            }
            if f & flags::FIN != 0 {
                end = end.wrapping_add(1);
            }
        }

        if f & flags::ACK == 0 {
            // Let it pass the ACK skew check.
            ack = dst.seqlo;
        } else if ack == 0 && f & (flags::ACK | flags::RST) == (flags::ACK | flags::RST) {
            // Broken stacks send RST|ACK with a zero ACK.
            ack = dst.seqlo;
        }

        if seq == end {
            // No data: relax the sequence checks.
            seq = src.seqlo;
            end = seq;
        }

        let ackskew: i64 = if check_ackskew {
            i64::from(seq_diff(dst.seqlo, ack))
        } else {
            0
        };
        let dst_win_back = dst.max_win.wrapping_shl(dws);
        let in_window = seq_geq(src.seqhi, end)
            && seq_geq(seq, src.seqlo.wrapping_sub(dst_win_back))
            && ackskew >= -MAX_ACK_WINDOW
            && ackskew <= (MAX_ACK_WINDOW << sws)
            && (f & flags::RST == 0
                || orig_seq == src.seqlo
                || orig_seq == src.seqlo.wrapping_add(1)
                || orig_seq.wrapping_add(1) == src.seqlo);

        let tm;
        if in_window || !seq_check {
            Self::advance(&mut src, &mut dst, win, sws, end, ack);
            if f & flags::SYN != 0 && src.state < SYN_SENT {
                src.state = SYN_SENT;
            }
            if f & flags::FIN != 0 && src.state < CLOSING {
                src.state = CLOSING;
            }
            if f & flags::ACK != 0 {
                if dst.state == SYN_SENT {
                    dst.state = ESTABLISHED;
                } else if dst.state == CLOSING {
                    dst.state = FIN_WAIT_2;
                }
            }
            if f & flags::RST != 0 {
                src.state = TIME_WAIT;
                dst.state = TIME_WAIT;
            }
            tm = Some(if src.state >= FIN_WAIT_2 && dst.state >= FIN_WAIT_2 {
                Tm::TcpClosed
            } else if src.state >= CLOSING && dst.state >= CLOSING {
                Tm::TcpFinWait
            } else if src.state < ESTABLISHED || dst.state < ESTABLISHED {
                Tm::TcpOpening
            } else if src.state >= CLOSING || dst.state >= CLOSING {
                Tm::TcpClosing
            } else {
                Tm::TcpEstablished
            });
        } else if (dst.state < SYN_SENT || dst.state >= FIN_WAIT_2 || src.state >= FIN_WAIT_2)
            && seq_geq(src.seqhi.wrapping_add(MAX_ACK_WINDOW as u32), end)
            && seq_geq(seq, src.seqlo.wrapping_sub(MAX_ACK_WINDOW as u32))
        {
            // Shotgunned SYNs before the peer answers, a stream picked up late, or stray
            // segments right after a close: accept, but do not refresh the timeout.
            Self::advance(&mut src, &mut dst, win, sws, end, ack);
            if f & flags::FIN != 0 && src.state < CLOSING {
                src.state = CLOSING;
            }
            if f & flags::RST != 0 {
                src.state = TIME_WAIT;
                dst.state = TIME_WAIT;
            }
            tm = None;
        } else {
            return (Update::Invalid(TcpInvalid::Window), None);
        }
        self.peer[si] = src;
        self.peer[di] = dst;
        (Update::Valid, tm)
    }

    fn advance(src: &mut Peer, dst: &mut Peer, win: u32, sws: u32, end: u32, ack: u32) {
        if src.max_win < win {
            src.max_win = win;
        }
        if seq_gt(end, src.seqlo) {
            src.seqlo = end;
        }
        let scaled = win.wrapping_shl(sws);
        if seq_geq(ack.wrapping_add(scaled), dst.seqhi) {
            dst.seqhi = ack.wrapping_add(scaled.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    fn seg(flags: u16, seq: u32, ack: u32, len: u32) -> TcpSegment {
        TcpSegment {
            flags,
            seq,
            ack,
            window: 65535,
            wscale: if flags & SYN != 0 { Some(7) } else { None },
            payload_len: len,
        }
    }

    #[test]
    fn flags_validity() {
        assert!(invalid_flags(SYN | RST));
        assert!(invalid_flags(SYN | FIN));
        assert!(invalid_flags(0));
        assert!(invalid_flags(FIN));
        assert!(invalid_flags(PSH | RST));
        assert!(!invalid_flags(SYN));
        assert!(!invalid_flags(SYN | ACK));
        assert!(!invalid_flags(RST));
        assert!(!invalid_flags(FIN | ACK));
        assert!(valid_new(&seg(SYN, 1, 0, 0)));
        assert!(valid_new(&seg(ACK, 1, 0, 0)));
        assert!(!valid_new(&seg(SYN | ACK, 1, 0, 0)));
    }

    #[test]
    fn wscale_option_parsing() {
        // MSS, NOP, WS=7, SACK-permitted, timestamps.
        let opts = [
            2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(parse_wscale(&opts), Some(7));
        assert_eq!(parse_wscale(&[2, 4, 5, 0xb4]), None);
        assert_eq!(parse_wscale(&[0, 3, 3, 7]), None);
        assert_eq!(parse_wscale(&[3, 3]), None);
        assert_eq!(parse_wscale(&[2]), None);
        assert_eq!(parse_wscale(&[5, 0, 3, 3, 2]), Some(2)); // length 0 treated as 2
    }

    #[test]
    fn handshake_data_close() {
        let (mut c, tm) = TcpConn::new(&seg(SYN, 1000, 0, 0));
        assert_eq!(tm, Tm::TcpFirstPacket);
        assert_eq!(
            c.update(&seg(SYN | ACK, 5000, 1001, 0), true, true),
            (Update::Valid, Some(Tm::TcpOpening))
        );
        assert_eq!(
            c.update(&seg(ACK, 1001, 5001, 0), false, true),
            (Update::Valid, Some(Tm::TcpEstablished))
        );
        assert_eq!(c.states(), (TcpState::Established, TcpState::Established));
        assert_eq!(
            c.update(&seg(ACK | PSH, 1001, 5001, 100), false, true).0,
            Update::Valid
        );
        assert_eq!(
            c.update(&seg(ACK, 5001, 1101, 0), true, true).0,
            Update::Valid
        );
        // Far beyond the window.
        assert_eq!(
            c.update(
                &seg(ACK, 1101u32.wrapping_add(0x4000_0000), 5001, 10),
                false,
                true
            )
            .0,
            Update::Invalid(TcpInvalid::Window)
        );
        // Same with checking off.
        let mut c2 = c;
        assert_eq!(
            c2.update(
                &seg(ACK, 1101u32.wrapping_add(0x4000_0000), 5001, 10),
                false,
                false
            )
            .0,
            Update::Valid
        );
        assert_eq!(
            c.update(&seg(FIN | ACK, 1101, 5001, 0), false, true),
            (Update::Valid, Some(Tm::TcpClosing))
        );
        assert_eq!(
            c.update(&seg(FIN | ACK, 5001, 1102, 0), true, true),
            (Update::Valid, Some(Tm::TcpFinWait))
        );
        assert_eq!(
            c.update(&seg(ACK, 1102, 5002, 0), false, true),
            (Update::Valid, Some(Tm::TcpClosed))
        );
        assert_eq!(c.states(), (TcpState::FinWait2, TcpState::FinWait2));
        assert_eq!(
            c.update(&seg(SYN, 9000, 0, 0), false, true).0,
            Update::Reopen
        );
    }

    #[test]
    fn rst_needs_exact_sequence() {
        let (mut c, _) = TcpConn::new(&seg(SYN, 1000, 0, 0));
        c.update(&seg(SYN | ACK, 5000, 1001, 0), true, true);
        c.update(&seg(ACK, 1001, 5001, 0), false, true);
        assert_eq!(
            c.update(&seg(RST | ACK, 5001 + 40_000, 1001, 0), true, true)
                .0,
            Update::Invalid(TcpInvalid::Window)
        );
        assert_eq!(
            c.update(&seg(RST | ACK, 5001, 1001, 0), true, true),
            (Update::Valid, Some(Tm::TcpClosed))
        );
        assert_eq!(
            TcpState::summary(c.states().0, c.states().1),
            TcpState::TimeWait
        );
    }
}
