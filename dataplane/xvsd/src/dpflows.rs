//! `dpctl/dump-flows`: the workers' megaflows in OVS's datapath-flow syntax
//! (`recirc_id(0),in_port(1),eth(...),eth_type(0x0800),ipv4(...), packets:N, bytes:N,
//! used:0.123s, actions:...`), one section per worker as OVS prints one per PMD thread.
//!
//! Without `-m` a field whose mask is zero is left out, a fully masked field prints its value
//! and a partly masked one `value/mask`; `-m` prints every field of the packet's protocols,
//! masked ones as `value/mask`, and the flow's id (`ufid`). Port numbers are the datapath
//! numbers `Datapath actions:` prints (xvs uses the OpenFlow numbers); `--names` (or `-m`)
//! prints port names.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use xvs_engine::MegaflowDump;
use xvs_flowtable::datapath::{format_dp_actions, DpAction};
use xvs_packet::key::layout;
use xvs_packet::key::{KeyField, KeyField128};
use xvs_packet::FlowKey;

/// How to print.
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpOptions {
    /// `-m`: every field, with masks, and the ufid.
    pub verbose: bool,
    /// `--names`: port names instead of numbers.
    pub names: bool,
}

/// Parses `[-m|--more] [--names|--no-names] [dp]` (OVS's `dpctl/dump-flows` arguments; a
/// datapath name and `filter=` are not supported beyond being a datapath name).
pub fn parse_args(params: &[String]) -> Result<DumpOptions, String> {
    let mut o = DumpOptions::default();
    let mut names = None;
    for p in params {
        match p.as_str() {
            "-m" | "--more" => o.verbose = true,
            "--names" => names = Some(true),
            "--no-names" => names = Some(false),
            p if p.contains('@') || p == "ovs-system" => {}
            p if p.starts_with('-') => return Err(format!("{p}: unknown option")),
            p => return Err(format!("invalid datapath name \"{p}\"")),
        }
    }
    // OVS: names follow verbosity unless asked for.
    o.names = names.unwrap_or(o.verbose);
    Ok(o)
}

/// One worker's flows, as OVS prints a PMD thread's.
pub fn format_worker(
    out: &mut String,
    core: usize,
    flows: &[MegaflowDump],
    now_ns: u64,
    opts: DumpOptions,
    port_name: &dyn Fn(u32) -> Option<String>,
) {
    // As OVS: the title line comes with the thread's first flow.
    if !flows.is_empty() {
        let _ = writeln!(out, "flow-dump from pmd on cpu core: {core}");
    }
    for f in flows {
        format_flow(out, f, now_ns, opts, port_name);
        out.push('\n');
    }
}

/// One flow line (without the newline).
pub fn format_flow(
    out: &mut String,
    f: &MegaflowDump,
    now_ns: u64,
    opts: DumpOptions,
    port_name: &dyn Fn(u32) -> Option<String>,
) {
    if opts.verbose {
        let _ = write!(out, "ufid:{}, ", ufid(&f.key, &f.mask));
    }
    format_key(out, &f.key, &f.mask, opts, port_name);
    let _ = write!(out, ", packets:{}, bytes:{}, used:", f.packets, f.bytes);
    match f.used_ns {
        Some(u) => {
            let _ = write!(out, "{:.3}s", now_ns.saturating_sub(u) as f64 / 1e9);
        }
        None => out.push_str("never"),
    }
    if opts.verbose {
        out.push_str(", dp:ovs");
    }
    out.push_str(", actions:");
    out.push_str(&format_actions(&f.actions, opts.names, port_name));
}

/// The actions, with output ports by name when asked.
pub fn format_actions(
    actions: &[DpAction],
    names: bool,
    port_name: &dyn Fn(u32) -> Option<String>,
) -> String {
    if !names {
        return format_dp_actions(actions);
    }
    if actions.is_empty() {
        return "drop".to_string();
    }
    let parts: Vec<String> = actions
        .iter()
        .map(|a| match *a {
            DpAction::Output(p) => port_name(p).unwrap_or_else(|| p.to_string()),
            other => format_dp_actions(&[other]),
        })
        .collect();
    parts.join(",")
}

/// A stable flow id from the key and mask (OVS hashes the key into its ufid).
fn ufid(key: &FlowKey, mask: &FlowKey) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in key.words.iter().chain(mask.words.iter()) {
        a = (a ^ w).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ w.rotate_left(17)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    let h = (u128::from(a) << 64) | u128::from(b);
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Collects `name=value[/mask]` parts of one attribute.
struct Attr<'a> {
    verbose: bool,
    parts: Vec<String>,
    _key: &'a FlowKey,
}

impl Attr<'_> {
    /// Adds a field printed with `fmt`; left out when its mask is zero (unless verbose), the
    /// mask printed when partial (or zero, verbose).
    fn field(&mut self, name: &str, v: u64, m: u64, full: u64, fmt: &dyn Fn(u64) -> String) {
        if m == 0 && !self.verbose {
            return;
        }
        if m == full {
            self.parts.push(format!("{name}={}", fmt(v)));
        } else {
            self.parts.push(format!("{name}={}/{}", fmt(v & m), fmt(m)));
        }
    }

    fn field128(&mut self, name: &str, v: u128, m: u128, fmt: &dyn Fn(u128) -> String) {
        if m == 0 && !self.verbose {
            return;
        }
        if m == u128::MAX {
            self.parts.push(format!("{name}={}", fmt(v)));
        } else {
            self.parts.push(format!("{name}={}/{}", fmt(v & m), fmt(m)));
        }
    }

    fn flush(self, out: &mut Vec<String>, attr: &str) {
        if !self.parts.is_empty() {
            out.push(format!("{attr}({})", self.parts.join(",")));
        }
    }
}

fn mac(v: u64) -> String {
    let b = v.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

fn dec(v: u64) -> String {
    v.to_string()
}

/// C's `%#x`: `0` for zero (OVS prints with it).
fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

fn v4(v: u64) -> String {
    Ipv4Addr::from(v as u32).to_string()
}

fn v6(v: u128) -> String {
    Ipv6Addr::from(v).to_string()
}

/// OVS's `ct_state` flag names, in bit order.
const CT_FLAGS: [&str; 8] = ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];

/// The key in OVS's datapath-flow syntax.
pub fn format_key(
    out: &mut String,
    key: &FlowKey,
    mask: &FlowKey,
    opts: DumpOptions,
    port_name: &dyn Fn(u32) -> Option<String>,
) {
    let verbose = opts.verbose;
    let g = |f: KeyField| (key.get(f), mask.get(f), f.max_value());
    let g128 = |f: KeyField128| (key.get128(f), mask.get128(f));
    let mut attrs: Vec<String> = Vec::new();
    // Metadata attributes: printed when matched (verbose: always, with masks).
    let single = |attrs: &mut Vec<String>,
                  name: &str,
                  (v, m, full): (u64, u64, u64),
                  f: &dyn Fn(u64) -> String| {
        if m == 0 && !verbose {
            return;
        }
        if m == full {
            attrs.push(format!("{name}({})", f(v)));
        } else {
            attrs.push(format!("{name}({}/{})", f(v & m), f(m)));
        }
    };
    if verbose {
        attrs.push("skb_priority(0/0)".to_string());
    }
    single(&mut attrs, "skb_mark", g(layout::PKT_MARK), &hex);
    let (cs, csm, _) = g(layout::CT_STATE);
    if csm != 0 {
        let mut s = String::new();
        for (bit, name) in CT_FLAGS.iter().enumerate() {
            if csm & (1 << bit) != 0 {
                s.push(if cs & (1 << bit) != 0 { '+' } else { '-' });
                s.push_str(name);
            }
        }
        attrs.push(format!("ct_state({s})"));
    } else if verbose {
        attrs.push("ct_state(0/0)".to_string());
    }
    single(&mut attrs, "ct_zone", g(layout::CT_ZONE), &hex);
    single(&mut attrs, "ct_mark", g(layout::CT_MARK), &hex);
    let (l, lm) = g128(layout::CT_LABEL);
    let hex128 = |v: u128| {
        if v == 0 {
            "0".to_string()
        } else {
            format!("{v:#x}")
        }
    };
    if lm != 0 || verbose {
        if lm == u128::MAX {
            attrs.push(format!("ct_label({})", hex128(l)));
        } else {
            attrs.push(format!("ct_label({}/{})", hex128(l & lm), hex128(lm)));
        }
    }
    let (r, _, _) = g(layout::RECIRC_ID);
    attrs.push(format!("recirc_id({})", hex(r)));
    if verbose {
        attrs.push("dp_hash(0/0)".to_string());
    }
    // Tunnel metadata (decapsulated packets).
    let mut t = Attr {
        verbose: false,
        parts: Vec::new(),
        _key: key,
    };
    let (id, idm, idf) = g(layout::TUN_ID);
    t.field("tun_id", id, idm, idf, &hex);
    let (s, sm, sf) = g(layout::TUN_SRC);
    t.field("src", s, sm, sf, &v4);
    let (d, dm, df) = g(layout::TUN_DST);
    t.field("dst", d, dm, df, &v4);
    let (s6, s6m) = g128(layout::TUN_IPV6_SRC);
    t.field128("ipv6_src", s6, s6m, &v6);
    let (d6, d6m) = g128(layout::TUN_IPV6_DST);
    t.field128("ipv6_dst", d6, d6m, &v6);
    let (tp, tpm, tpf) = g(layout::TUN_TP_DST);
    t.field("tp_dst", tp, tpm, tpf, &dec);
    let (fl, flm, flf) = g(layout::TUN_FLAGS);
    t.field("flags", fl, flm, flf, &hex);
    t.flush(&mut attrs, "tunnel");
    let (port, _, _) = g(layout::IN_PORT);
    let port = port as u32;
    let port_text = if opts.names {
        port_name(port).unwrap_or_else(|| port.to_string())
    } else {
        port.to_string()
    };
    attrs.push(format!("in_port({port_text})"));
    attrs.push("packet_type(ns=0,id=0)".to_string());
    let mut eth = Attr {
        verbose,
        parts: Vec::new(),
        _key: key,
    };
    let (v, m, f) = g(layout::ETH_SRC);
    eth.field("src", v, m, f, &mac);
    let (v, m, f) = g(layout::ETH_DST);
    eth.field("dst", v, m, f, &mac);
    eth.flush(&mut attrs, "eth");
    let (tci, tcim, _) = g(layout::VLAN_TCI);
    if tcim != 0 && tci & 0x1000 != 0 {
        attrs.push(format!("vlan(vid={},pcp={})", tci & 0xfff, (tci >> 13) & 7));
    }
    let (et, _, _) = g(layout::ETH_TYPE);
    attrs.push(format!("eth_type({et:#06x})"));
    let (proto, _, _) = g(layout::NW_PROTO);
    let frag = |attr: &mut Attr<'_>| {
        let (fr, frm, _) = g(layout::NW_FRAG);
        if frm != 0 || verbose {
            let text = match (fr & frm, frm) {
                (_, 0) => "no/0".to_string(),
                (0, _) => "no".to_string(),
                (1, 1) => "first".to_string(),
                (3, _) => "later".to_string(),
                (1, _) => "first".to_string(),
                (v, m) => format!("{v:#x}/{m:#x}"),
            };
            attr.parts.push(format!("frag={text}"));
        }
    };
    let l4 = |attrs: &mut Vec<String>, name: &str| {
        let mut a = Attr {
            verbose,
            parts: Vec::new(),
            _key: key,
        };
        let (v, m, f) = g(layout::TP_SRC);
        a.field(
            if name.starts_with("icmp") {
                "type"
            } else {
                "src"
            },
            v,
            m,
            f,
            &dec,
        );
        let (v, m, f) = g(layout::TP_DST);
        a.field(
            if name.starts_with("icmp") {
                "code"
            } else {
                "dst"
            },
            v,
            m,
            f,
            &dec,
        );
        a.flush(attrs, name);
    };
    match et {
        0x0800 => {
            let mut a = Attr {
                verbose,
                parts: Vec::new(),
                _key: key,
            };
            let (v, m, f) = g(layout::NW_SRC);
            a.field("src", v, m, f, &v4);
            let (v, m, f) = g(layout::NW_DST);
            a.field("dst", v, m, f, &v4);
            let (v, m, f) = g(layout::NW_PROTO);
            a.field("proto", v, m, f, &dec);
            let (v, m, f) = g(layout::NW_TOS);
            a.field("tos", v, m, f, &hex);
            let (v, m, f) = g(layout::NW_TTL);
            a.field("ttl", v, m, f, &dec);
            frag(&mut a);
            a.flush(&mut attrs, "ipv4");
            match proto {
                1 => l4(&mut attrs, "icmp"),
                6 => l4(&mut attrs, "tcp"),
                17 => l4(&mut attrs, "udp"),
                132 => l4(&mut attrs, "sctp"),
                _ => {}
            }
        }
        0x86dd => {
            let mut a = Attr {
                verbose,
                parts: Vec::new(),
                _key: key,
            };
            let (v, m) = g128(layout::IPV6_SRC);
            a.field128("src", v, m, &v6);
            let (v, m) = g128(layout::IPV6_DST);
            a.field128("dst", v, m, &v6);
            let (v, m, f) = g(layout::IPV6_LABEL);
            a.field("label", v, m, f, &hex);
            let (v, m, f) = g(layout::NW_PROTO);
            a.field("proto", v, m, f, &dec);
            let (v, m, f) = g(layout::NW_TOS);
            a.field("tclass", v, m, f, &hex);
            let (v, m, f) = g(layout::NW_TTL);
            a.field("hlimit", v, m, f, &dec);
            frag(&mut a);
            a.flush(&mut attrs, "ipv6");
            match proto {
                58 => l4(&mut attrs, "icmpv6"),
                6 => l4(&mut attrs, "tcp"),
                17 => l4(&mut attrs, "udp"),
                132 => l4(&mut attrs, "sctp"),
                _ => {}
            }
        }
        0x0806 => {
            let mut a = Attr {
                verbose,
                parts: Vec::new(),
                _key: key,
            };
            let (v, m, f) = g(layout::NW_SRC);
            a.field("sip", v, m, f, &v4);
            let (v, m, f) = g(layout::NW_DST);
            a.field("tip", v, m, f, &v4);
            let (v, m, f) = g(layout::NW_PROTO);
            a.field("op", v, m, f, &dec);
            let (v, m, f) = g(layout::ARP_SHA);
            a.field("sha", v, m, f, &mac);
            let (v, m, f) = g(layout::ARP_THA);
            a.field("tha", v, m, f, &mac);
            a.flush(&mut attrs, "arp");
        }
        _ => {}
    }
    out.push_str(&attrs.join(","));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icmp_flow() -> MegaflowDump {
        let mut key = FlowKey::ZERO;
        let mut mask = FlowKey::ZERO;
        key.set(layout::IN_PORT, 2);
        mask.set(layout::IN_PORT, layout::IN_PORT.max_value());
        mask.set(layout::RECIRC_ID, layout::RECIRC_ID.max_value());
        key.set(layout::ETH_TYPE, 0x0800);
        mask.set(layout::ETH_TYPE, 0xffff);
        key.set(layout::ETH_DST, 0x7afe_3f13_ae10);
        mask.set(layout::ETH_DST, layout::ETH_DST.max_value());
        key.set(
            layout::NW_SRC,
            u64::from(u32::from(Ipv4Addr::new(10, 0, 0, 0))),
        );
        mask.set(layout::NW_SRC, 0xffff_ff00);
        key.set(layout::NW_PROTO, 1);
        mask.set(layout::NW_PROTO, 0xff);
        mask.set(layout::NW_FRAG, 3);
        MegaflowDump {
            key,
            mask,
            actions: vec![DpAction::Output(3)].into(),
            packets: 2,
            bytes: 196,
            used_ns: Some(1_000_000_000),
        }
    }

    #[test]
    fn prints_like_ovs() {
        let names = |p: u32| Some(format!("p{p}"));
        let mut s = String::new();
        let f = icmp_flow();
        format_flow(&mut s, &f, 1_331_000_000, DumpOptions::default(), &names);
        assert_eq!(
            s,
            "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(dst=7a:fe:3f:13:ae:10),\
             eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,proto=1,frag=no), packets:2, \
             bytes:196, used:0.331s, actions:3"
        );
        let mut s = String::new();
        let mut never = icmp_flow();
        never.used_ns = None;
        let opts = parse_args(&["--names".to_string()]).expect("args");
        format_flow(&mut s, &never, 0, opts, &names);
        assert!(s.contains("in_port(p2)"), "{s}");
        assert!(s.ends_with("used:never, actions:p3"), "{s}");
    }

    #[test]
    fn verbose_prints_every_field_and_an_id() {
        let names = |p: u32| Some(format!("p{p}"));
        let opts = parse_args(&["-m".to_string()]).expect("args");
        assert!(opts.names);
        let mut s = String::new();
        format_flow(&mut s, &icmp_flow(), 1_331_000_000, opts, &names);
        assert!(s.starts_with("ufid:"), "{s}");
        assert!(s.contains("skb_priority(0/0),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),ct_label(0/0),recirc_id(0),dp_hash(0/0),in_port(p2)"), "{s}");
        assert!(
            s.contains("eth(src=00:00:00:00:00:00/00:00:00:00:00:00,dst=7a:fe:3f:13:ae:10)"),
            "{s}"
        );
        assert!(s.contains("icmp(type=0/0,code=0/0)"), "{s}");
        assert!(s.contains(", dp:ovs, actions:p3"), "{s}");
    }

    #[test]
    fn ct_state_and_bad_arguments() {
        let mut f = icmp_flow();
        f.key.set(layout::CT_STATE, 0x22);
        f.mask.set(layout::CT_STATE, 0x23);
        f.key.set(layout::RECIRC_ID, 1);
        let mut s = String::new();
        format_flow(&mut s, &f, 0, DumpOptions::default(), &|_| None);
        assert!(
            s.starts_with("ct_state(-new+est+trk),recirc_id(0x1),"),
            "{s}"
        );
        assert!(parse_args(&["-x".to_string()]).is_err());
        assert!(parse_args(&["netdev@ovs-netdev".to_string()]).is_ok());
    }
}
