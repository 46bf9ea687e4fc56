//! The `ovs-ofctl` flow syntax: `add-flow(s)`, `mod-flows` and `del-flows` lines, and action
//! lists. Behaviour (defaults, normalisation, error wording) follows Open vSwitch 3.1 with
//! `-O OpenFlow15`.

use crate::action::{
    Action, Controller, Ct, CtZone, Learn, LearnSpec, Nat, NatAddrs, NatKind, PacketInReason,
};
use crate::error::{ParseError, Result};
use crate::field::{ones, parse_field_value, FieldId, Subfield};
use crate::flow::{ethertype, ipproto, Flow, FlowFlags, FlowMod, FlowModCommand, Match};
use crate::names::{parse_port, parse_table, NameMap, Port};
use crate::value::{parse_hex_bytes, parse_int_prefix, parse_ipv6};

/// Splits `key[=:]value` / `key(value)` / `key` items separated by commas or white space, as
/// OVS's `ofputil_parse_key_value`.
#[derive(Debug, Clone)]
pub(crate) struct KeyValues<'a> {
    rest: &'a str,
}

impl<'a> KeyValues<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        KeyValues { rest: s }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Length of the value starting at `s`, up to one of `delims`, skipping balanced parentheses.
fn value_len(s: &str, delims: &[u8]) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    while n < b.len() && !delims.contains(&b[n]) {
        if b[n] == b'(' {
            let mut level = 0i32;
            loop {
                match b.get(n) {
                    None => return n,
                    Some(b'(') => level += 1,
                    Some(b')') => level -= 1,
                    Some(_) => {}
                }
                n += 1;
                if level <= 0 {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

impl<'a> Iterator for KeyValues<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self
            .rest
            .trim_start_matches(|c: char| c == ',' || is_space(c as u8) && c.is_ascii());
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let key_len = s
            .bytes()
            .position(|b| matches!(b, b':' | b'=' | b'(' | b',') || is_space(b))
            .unwrap_or(s.len());
        let key = &s[..key_len];
        let delim = s.as_bytes().get(key_len).copied();
        let after = if delim.is_some() {
            &s[key_len + 1..]
        } else {
            ""
        };
        let delims: &[u8] = match delim {
            Some(b':') | Some(b'=') => b", \t\r\n",
            Some(b'(') => b")",
            _ => {
                self.rest = after;
                return Some((key, ""));
            }
        };
        let mut len = value_len(after, delims);
        if delim == Some(b'(') && after[len..].starts_with(")->") {
            len += value_len(&after[len..], b", \t\r\n");
        }
        let value = &after[..len];
        self.rest = if len < after.len() {
            &after[len + 1..]
        } else {
            ""
        };
        Some((key, value))
    }
}

/// `str_to_u16`-style parse: C integer (decimal, 0x hex, 0 octal) that must be 0..=max.
fn c_uint(s: &str, max: u64) -> Option<u64> {
    match parse_int_prefix(s, 8) {
        Ok((v, "")) if !s.is_empty() && (v as u64) <= max && !s.starts_with('-') => Some(v as u64),
        _ => None,
    }
}

fn str_to_u16(s: &str, name: &str) -> Result<u16> {
    c_uint(s, 0xffff)
        .map(|v| v as u16)
        .ok_or_else(|| ParseError::invalid(format!("invalid {name} \"{s}\"")))
}

fn str_to_u32(s: &str) -> Result<u32> {
    if s.is_empty() {
        return Err(ParseError::invalid("missing required numeric argument"));
    }
    c_uint(s, 0xffff_ffff)
        .map(|v| v as u32)
        .ok_or_else(|| ParseError::invalid(format!("invalid numeric format {s}")))
}

fn str_to_u64(s: &str) -> Result<u64> {
    if s.is_empty() {
        return Err(ParseError::invalid("missing required numeric argument"));
    }
    match parse_int_prefix(s, 8) {
        Ok((v, "")) => Ok(v as u64),
        _ => Err(ParseError::invalid(format!("invalid numeric format {s}"))),
    }
}

/// C `atoi`: leading white space, optional sign, decimal digits; garbage yields what was read.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in t.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

/// The shorthand protocols (`ip`, `tcp6`, ...): (name, ethertype, ip protocol).
const PROTOCOLS: [(&str, u16, u8); 17] = [
    ("ip", ethertype::IP, 0),
    ("ipv4", ethertype::IP, 0),
    ("ip4", ethertype::IP, 0),
    ("arp", ethertype::ARP, 0),
    ("icmp", ethertype::IP, ipproto::ICMP),
    ("tcp", ethertype::IP, ipproto::TCP),
    ("udp", ethertype::IP, ipproto::UDP),
    ("sctp", ethertype::IP, ipproto::SCTP),
    ("ipv6", ethertype::IPV6, 0),
    ("ip6", ethertype::IPV6, 0),
    ("icmp6", ethertype::IPV6, ipproto::ICMPV6),
    ("tcp6", ethertype::IPV6, ipproto::TCP),
    ("udp6", ethertype::IPV6, ipproto::UDP),
    ("sctp6", ethertype::IPV6, ipproto::SCTP),
    ("rarp", ethertype::RARP, 0),
    ("mpls", ethertype::MPLS, 0),
    ("mplsm", ethertype::MPLS_MCAST, 0),
];

/// Parses an `add-flow` line (`table=..,priority=..,<match> actions=...`).
pub fn parse_flow(s: &str, names: &NameMap) -> Result<Flow> {
    parse_flow_mod(s, FlowModCommand::Add, names).map(|fm| fm.flow)
}

/// Parses one line of `ovs-ofctl dump-flows` output, statistics included (`duration=`,
/// `n_packets=`, `n_bytes=`, `idle_age=`, `hard_age=` go to [`Flow::stats`]). This is how a
/// consumer such as Antrea's NetworkPolicy statistics reads counters back.
pub fn parse_dump_flow_line(s: &str, names: &NameMap) -> Result<Flow> {
    let head = s.find("actions=").map_or(s, |i| &s[..i]);
    let mut stats = crate::flow::FlowStats::default();
    let mut any = false;
    for (k, v) in KeyValues::new(head) {
        let num = |v: &str| -> Result<Option<u64>> {
            if v == "?" {
                return Ok(None);
            }
            v.parse::<u64>()
                .map(Some)
                .map_err(|_| ParseError::invalid(format!("invalid {k} \"{v}\"")))
        };
        match k {
            "duration" => {
                let d = v.strip_suffix('s').unwrap_or(v);
                let (sec, frac) = d.split_once('.').unwrap_or((d, ""));
                stats.duration_sec = sec
                    .parse()
                    .map_err(|_| ParseError::invalid(format!("invalid duration \"{v}\"")))?;
                if !frac.is_empty() {
                    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ParseError::invalid(format!("invalid duration \"{v}\"")));
                    }
                    let mut ns: u32 = frac.parse().unwrap_or(0);
                    for _ in frac.len()..9 {
                        ns *= 10;
                    }
                    stats.duration_nsec = ns;
                }
                any = true;
            }
            "n_packets" => {
                stats.n_packets = num(v)?;
                any = true;
            }
            "n_bytes" => {
                stats.n_bytes = num(v)?;
                any = true;
            }
            "idle_age" => {
                stats.idle_age = num(v)?.map(|x| x.min(u64::from(u32::MAX)) as u32);
                any = true;
            }
            "hard_age" => {
                stats.hard_age = num(v)?.map(|x| x.min(u64::from(u32::MAX)) as u32);
                any = true;
            }
            _ => {}
        }
    }
    let mut f = parse_flow(s, names)?;
    if any {
        if stats.hard_age.is_none() {
            // OVS omits hard_age when it equals the duration.
            stats.hard_age = Some(stats.duration_sec);
        }
        f.stats = Some(stats);
    }
    Ok(f)
}

/// Parses a line of an `add-flows` file: an optional leading command word (`add`, `modify`,
/// `modify_strict`, `delete`, `delete_strict`, or an unambiguous prefix) then the flow.
pub fn parse_flow_mod_line(s: &str, names: &NameMap) -> Result<FlowMod> {
    let t = s.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let len = t
        .bytes()
        .position(|b| b == b',' || is_space(b))
        .unwrap_or(t.len());
    let word = &t[..len];
    let cmds = [
        ("add", FlowModCommand::Add),
        ("delete", FlowModCommand::Delete),
        ("delete_strict", FlowModCommand::DeleteStrict),
        ("modify", FlowModCommand::Modify),
        ("modify_strict", FlowModCommand::ModifyStrict),
    ];
    // OVS compares the first token as a prefix of each command in this order.
    if len > 0 {
        for (name, cmd) in cmds {
            if name.starts_with(word) {
                return parse_flow_mod(&t[len..], cmd, names);
            }
        }
    }
    parse_flow_mod(t, FlowModCommand::Add, names)
}

/// Parses a flow-mod string for `command` (the match syntax of `del-flows` and `mod-flows`
/// included). The match is normalised the way Open vSwitch stores it.
pub fn parse_flow_mod(s: &str, command: FlowModCommand, names: &NameMap) -> Result<FlowMod> {
    let (f_out_port, f_actions, f_timeout, f_priority, f_flags, f_importance) = match command {
        FlowModCommand::Add => (false, true, true, true, true, true),
        FlowModCommand::Delete => (true, false, false, false, false, false),
        FlowModCommand::DeleteStrict => (true, false, false, true, false, false),
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
            (false, true, true, true, true, false)
        }
    };
    let mut fm = FlowMod {
        command,
        flow: Flow::default(),
        table_given: false,
        cookie_mask: 0,
        modify_cookie: false,
        out_port: Port::NONE,
        out_group: u32::MAX,
    };
    let (match_str, act_str) = if f_actions {
        match s.find("action") {
            Some(i) => match s[i..].find('=') {
                Some(j) => (&s[..i], Some(&s[i + j + 1..])),
                None => return Err(ParseError::NoActions),
            },
            None => return Err(ParseError::NoActions),
        }
    } else {
        (s, None)
    };

    let mut m = Match::catch_all();
    for (name, value) in KeyValues::new(match_str) {
        if let Some((_, dl, proto)) = PROTOCOLS.iter().find(|(n, _, _)| *n == name) {
            m.set_exact(FieldId::ETH_TYPE, u128::from(*dl));
            if *proto != 0 {
                m.set_exact(FieldId::IP_PROTO, u128::from(*proto));
            }
            continue;
        }
        if f_flags {
            if let Some((bit, _)) = FlowFlags::NAMES.iter().find(|(_, n)| *n == name) {
                fm.flow.flags.0 |= bit;
                continue;
            }
        }
        if name == "no_readonly_table" || name == "allow_hidden_fields" {
            continue;
        }
        if let Some(field) = FieldId::from_name(name) {
            let v = if value.is_empty() { "0/0" } else { value };
            let (val, mask) = parse_field_value(field, v, names)?;
            m.set(field, val, mask);
            continue;
        }
        if name.contains('[') {
            parse_subfield_match(name, value, &mut m)?;
            continue;
        }
        if value.is_empty() {
            return Err(ParseError::MissingValue(name.to_owned()));
        }
        match name {
            "table" => {
                let t = parse_table(value, names)
                    .ok_or_else(|| ParseError::UnknownTable(value.to_owned()))?;
                fm.flow.table = t;
                fm.table_given = t != 0xff;
            }
            "out_port" if f_out_port => {
                fm.out_port = parse_port(value, names).ok_or_else(|| {
                    ParseError::BadPort(format!("{value} is not a valid OpenFlow port"))
                })?;
            }
            "out_group" if f_out_port => {
                fm.out_group = match value {
                    "ALL" | "all" => 0xffff_fffc,
                    "ANY" | "any" => 0xffff_ffff,
                    _ => c_uint(value, 0xffff_ff00)
                        .map(|v| v as u32)
                        .ok_or_else(|| {
                            ParseError::invalid(format!("{value} is not a valid OpenFlow group"))
                        })?,
                };
            }
            "priority" if f_priority => fm.flow.priority = str_to_u16(value, name)?,
            "idle_timeout" if f_timeout => fm.flow.idle_timeout = str_to_u16(value, name)?,
            "hard_timeout" if f_timeout => fm.flow.hard_timeout = str_to_u16(value, name)?,
            "importance" if f_importance => fm.flow.importance = str_to_u16(value, name)?,
            "cookie" => {
                if let Some((v, mask)) = value.split_once('/') {
                    if command == FlowModCommand::Add {
                        return Err(ParseError::invalid(
                            "flow additions cannot use a cookie mask",
                        ));
                    }
                    fm.flow.cookie = str_to_u64(v)?;
                    fm.cookie_mask = str_to_u64(mask)?;
                } else {
                    if !matches!(
                        command,
                        FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
                    ) {
                        return Err(ParseError::invalid(format!(
                            "cannot set cookie (to match on a cookie, specify a mask, e.g. cookie={value}/-1)"
                        )));
                    }
                    fm.flow.cookie = str_to_u64(value)?;
                    fm.modify_cookie = true;
                }
            }
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {}
            _ => return Err(ParseError::UnknownKeyword(name.to_owned())),
        }
    }

    if let Some(act) = act_str {
        let mut ctx = CheckCtx::new(m);
        ctx.table = if fm.table_given { fm.flow.table } else { 255 };
        let actions = parse_action_list(act, names, Outer::Top, &mut ctx)?;
        ctx.finish()?;
        fm.flow.actions = actions;
    }
    m.normalize().map_err(|f| {
        ParseError::invalid(format!(
            "{}: prerequisites not met (OFPBMC_BAD_PREREQ)",
            f.name()
        ))
    })?;
    // A switch also insists that conntrack tuple addresses match the IP version.
    let dl = m.dl_type();
    let v4 = m.get(FieldId::CT_NW_SRC).1 != 0 || m.get(FieldId::CT_NW_DST).1 != 0;
    let v6 = m.get(FieldId::CT_IPV6_SRC).1 != 0 || m.get(FieldId::CT_IPV6_DST).1 != 0;
    if (v4 && dl != ethertype::IP) || (v6 && dl != ethertype::IPV6) {
        return Err(ParseError::invalid(
            "conntrack tuple addresses do not match the IP version of the match (OFPBAC_MATCH_INCONSISTENT)",
        ));
    }
    // A switch checks the actions again against the match it decoded.
    let mut ctx = CheckCtx::new(m);
    ctx.table = if fm.table_given { fm.flow.table } else { 255 };
    for a in &fm.flow.actions {
        check_action(a, &mut ctx)?;
    }
    fm.flow.match_ = m;
    Ok(fm)
}

/// True when `v` has no bits at or above `bits` (safe for `bits` >= 128).
fn fits(v: u128, bits: u16) -> bool {
    bits >= 128 || v >> bits == 0
}

/// `reg0[5]=1` style match on a subfield.
fn parse_subfield_match(name: &str, value: &str, m: &mut Match) -> Result<()> {
    let sf = Subfield::parse(name)?;
    let bytes = sf.field.info().n_bytes;
    let v = match parse_int_prefix(value, bytes) {
        Ok((v, "")) => v,
        _ => {
            return Err(ParseError::invalid(format!(
                "{name}: cannot parse integer value: {value}"
            )))
        }
    };
    if !fits(v, sf.n_bits) {
        let mut s = String::new();
        crate::field::format_field_value(&mut s, sf.field, v, None, &NameMap::new());
        return Err(ParseError::DoesNotFit {
            input: name.to_owned(),
            value: s,
            bits: sf.n_bits,
        });
    }
    let (old_v, old_m) = m.get(sf.field);
    let mask = sf.mask();
    m.set(sf.field, (old_v & !mask) | (v << sf.ofs), old_m | mask);
    Ok(())
}

/// Parses an action list (the text after `actions=`) with no match context (as for
/// `packet-out` or group buckets: prerequisites are checked against a catch-all match).
pub fn parse_actions(s: &str, names: &NameMap) -> Result<Vec<Action>> {
    let mut ctx = CheckCtx::new(Match::catch_all());
    let a = parse_action_list(s, names, Outer::Top, &mut ctx)?;
    ctx.finish()?;
    Ok(a)
}

/// Parses group-bucket actions: like [`parse_actions`] but without instructions.
pub(crate) fn parse_bucket_actions(s: &str, names: &NameMap) -> Result<Vec<Action>> {
    let mut ctx = CheckCtx::new(Match::catch_all());
    let a = parse_action_list(s, names, Outer::Bucket, &mut ctx)?;
    ctx.finish()?;
    Ok(a)
}

/// Where an action list sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outer {
    /// A flow's instructions.
    Top,
    /// A group bucket (actions only).
    Bucket,
    /// Inside `ct(exec(...))`.
    Ct,
}

/// State of the consistency check (OVS `ofpacts_check`): the match as the actions so far
/// have changed it.
#[derive(Debug, Clone)]
struct CheckCtx {
    flow: Match,
    /// The flow's table (255 = not given), for the goto_table direction check.
    table: u8,
    /// Set when an action is valid only in OpenFlow 1.0 with this match (OVS
    /// `inconsistent_match`): the flow is then refused with "no usable protocol" unless another
    /// error comes first.
    needs_of10: bool,
}

impl CheckCtx {
    fn new(flow: Match) -> Self {
        CheckCtx {
            flow,
            table: 255,
            needs_of10: false,
        }
    }

    fn finish(&self) -> Result<()> {
        if self.needs_of10 {
            return Err(ParseError::invalid("no usable protocol"));
        }
        Ok(())
    }
}

fn inconsistent() -> ParseError {
    ParseError::invalid("actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)")
}

fn check_src(sf: &Subfield, m: &Match) -> Result<()> {
    if m.prereqs_ok(sf.field.info().prereq) {
        Ok(())
    } else {
        Err(inconsistent())
    }
}

fn check_dst(sf: &Subfield, m: &Match) -> Result<()> {
    check_src(sf, m)?;
    if !sf.field.info().writable {
        return Err(ParseError::invalid(
            "actions are invalid with specified match (OFPBAC_BAD_SET_ARGUMENT)",
        ));
    }
    Ok(())
}

fn requires_ct(f: FieldId) -> bool {
    f == FieldId::CT_MARK || f == FieldId::CT_LABEL
}

/// Instruction class of an action, in the order OpenFlow requires.
fn instruction_of(a: &Action) -> (u8, &'static str) {
    match a {
        Action::Meter(_) => (0, "meter"),
        Action::GotoTable(_) => (5, "goto_table"),
        _ => (1, "apply_actions"),
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Output { .. } => "output",
        Action::OutputReg { .. } => "output_reg",
        Action::Controller(_) => "controller",
        Action::Group(_) => "group",
        Action::Meter(_) => "meter",
        Action::Resubmit { .. } => "resubmit",
        Action::SetField { .. } => "set_field",
        Action::Move { .. } => "move",
        Action::DecTtl => "dec_ttl",
        Action::SetNwTtl(_) => "mod_nw_ttl",
        Action::PushVlan(_) => "push_vlan",
        Action::PopVlan => "strip_vlan",
        Action::Conjunction { .. } => "conjunction",
        Action::Learn(_) => "learn",
        Action::Note(_) => "note",
        Action::Ct(_) => "ct",
        Action::CtClear => "ct_clear",
        Action::GotoTable(_) => "goto_table",
    }
}

/// The field an action writes, if any (OVS `ofpact_get_mf_dst`).
fn written_field(a: &Action) -> Option<FieldId> {
    match a {
        Action::SetField { field, .. } => Some(*field),
        Action::Move { dst, .. } => Some(dst.field),
        _ => None,
    }
}

fn parse_action_list(
    s: &str,
    names: &NameMap,
    outer: Outer,
    ctx: &mut CheckCtx,
) -> Result<Vec<Action>> {
    let mut out: Vec<Action> = Vec::new();
    let mut drop = false;
    for (key, value) in KeyValues::new(s) {
        let lower = key.to_ascii_lowercase();
        let before = out.len();
        match lower.as_str() {
            "output" => out.push(parse_output(value, names)?),
            "group" => out.push(Action::Group(str_to_u32(value)?)),
            "controller" => out.push(parse_controller(value)?),
            "set_field" => out.push(parse_set_field(value, names)?),
            "load" => out.push(parse_load(value)?),
            "move" => {
                let (src, dst) = parse_move(value)?;
                out.push(Action::Move { src, dst });
            }
            "push_vlan" => {
                let et = str_to_u16(value, "ethertype")?;
                if et != 0x8100 && et != 0x88a8 {
                    return Err(ParseError::invalid(format!(
                        "{value}: not a valid VLAN ethertype"
                    )));
                }
                out.push(Action::PushVlan(et));
            }
            "pop_vlan" | "strip_vlan" => out.push(Action::PopVlan),
            "mod_vlan_vid" | "set_vlan_vid" => {
                let vid = str_to_u16(value, "VLAN VID")?;
                if vid & !0x0fff != 0 {
                    return Err(ParseError::invalid(format!(
                        "{value}: not a valid VLAN VID"
                    )));
                }
                if lower == "mod_vlan_vid" && !ctx.flow.prereqs_ok(crate::field::Prereq::VlanVid) {
                    out.push(Action::PushVlan(0x8100));
                }
                out.push(Action::SetField {
                    field: FieldId::VLAN_VID,
                    value: 0x1000 | u128::from(vid),
                    mask: FieldId::VLAN_VID.exact_mask(),
                });
            }
            "mod_vlan_pcp" | "set_vlan_pcp" => {
                let pcp = c_uint(value, 255)
                    .ok_or_else(|| ParseError::invalid(format!("invalid VLAN PCP \"{value}\"")))?;
                if pcp > 7 {
                    return Err(ParseError::invalid(format!(
                        "{value}: not a valid VLAN PCP"
                    )));
                }
                if lower == "mod_vlan_pcp" && !ctx.flow.prereqs_ok(crate::field::Prereq::VlanVid) {
                    out.push(Action::PushVlan(0x8100));
                }
                out.push(Action::SetField {
                    field: FieldId::VLAN_PCP,
                    value: u128::from(pcp),
                    mask: FieldId::VLAN_PCP.exact_mask(),
                });
            }
            "mod_nw_ttl" | "set_nw_ttl" => {
                let v = c_uint(value, 255)
                    .ok_or_else(|| ParseError::invalid(format!("invalid TTL \"{value}\"")))?;
                out.push(Action::SetNwTtl(v as u8));
            }
            "mod_dl_src" | "mod_dl_dst" | "mod_nw_src" | "mod_nw_dst" | "mod_nw_ecn"
            | "mod_nw_tos" | "mod_tp_src" | "mod_tp_dst" => {
                let a = parse_mod_alias(&lower, value, &ctx.flow, names)?;
                if let Action::SetField { field, .. } = &a {
                    if !ctx.flow.prereqs_ok(field.info().prereq) {
                        // OVS keeps such an action for OpenFlow 1.0 only.
                        ctx.needs_of10 = true;
                        out.push(a);
                        continue;
                    }
                }
                out.push(a);
            }
            "dec_ttl" => {
                if !value.is_empty() {
                    // dec_ttl(ids...) exists only as an OpenFlow 1.0/NXM action.
                    ctx.needs_of10 = true;
                }
                out.push(Action::DecTtl);
            }
            "resubmit" => out.push(parse_resubmit(value, names)?),
            "conjunction" => out.push(parse_conjunction(value)?),
            "note" => {
                let mut data = parse_hex_bytes(value)
                    .ok_or_else(|| ParseError::invalid("bad hex digit in `note' argument"))?;
                // NXAST_NOTE carries the bytes after a 10-byte header, padded to 8 bytes (at
                // least 16 in all), so a switch hands back zero padding.
                let total = ((10 + data.len()).div_ceil(8) * 8).max(16);
                data.resize(total - 10, 0);
                out.push(Action::Note(data));
            }
            "learn" => out.push(Action::Learn(Box::new(parse_learn(value, names)?))),
            "ct" => out.push(Action::Ct(Box::new(parse_ct(value, names, ctx)?))),
            "ct_clear" => out.push(Action::CtClear),
            "nat" => {
                return Err(ParseError::invalid(
                    "Cannot have NAT action outside of \"ct\" action",
                ))
            }
            "goto_table" => {
                let t = parse_table(value, names)
                    .ok_or_else(|| ParseError::UnknownTable(value.to_owned()))?;
                out.push(Action::GotoTable(t));
            }
            "meter" => out.push(Action::Meter(str_to_u32(value)?)),
            "drop" => drop = true,
            "apply_actions" => {
                return Err(ParseError::invalid(
                    "apply_actions is the default instruction",
                ))
            }
            "enqueue" | "output_reg" | "bundle" | "bundle_load" | "push" | "pop"
            | "set_mpls_label" | "set_mpls_tc" | "set_mpls_ttl" | "dec_mpls_ttl" | "push_mpls"
            | "pop_mpls" | "dec_nsh_ttl" | "delete_field" | "encap" | "decap" | "set_tunnel"
            | "set_tunnel64" | "set_queue" | "pop_queue" | "fin_timeout" | "multipath" | "exit"
            | "sample" | "output_trunc" | "clone" | "check_pkt_larger" | "clear_actions"
            | "write_actions" | "write_metadata" | "debug_recirc" | "debug_slow"
            | "unroll_xlate" => {
                return Err(ParseError::invalid(format!(
                    "action {key} is not supported by xvs"
                )))
            }
            _ => match parse_port(key, names) {
                Some(port) => out.push(Action::Output {
                    port,
                    max_len: if port == Port::CONTROLLER {
                        u16::MAX
                    } else {
                        0
                    },
                }),
                None => return Err(ParseError::UnknownAction(key.to_owned())),
            },
        }
        for a in &out[before..] {
            check_action(a, ctx)?;
        }
    }
    if drop && !out.is_empty() {
        return Err(ParseError::invalid(
            "\"drop\" must not be accompanied by any other action or instruction",
        ));
    }
    verify(&out, outer)?;
    Ok(out)
}

/// OVS `ofpacts_verify`: conjunction exclusivity, nesting rules, instruction order.
fn verify(actions: &[Action], outer: Outer) -> Result<()> {
    if actions
        .iter()
        .any(|a| matches!(a, Action::Conjunction { .. }))
    {
        if let Some(other) = actions
            .iter()
            .find(|a| !matches!(a, Action::Conjunction { .. } | Action::Note(_)))
        {
            return Err(ParseError::invalid(format!(
                "\"conjunction\" actions may be used along with \"note\" but not any other kind of action (such as the \"{}\" action used here)",
                action_name(other)
            )));
        }
        return Ok(());
    }
    let mut inst: (u8, &str) = (0, "meter");
    for (i, a) in actions.iter().enumerate() {
        if let Some(f) = written_field(a) {
            if requires_ct(f) && outer != Outer::Ct {
                return Err(ParseError::invalid(
                    "cannot set CT fields outside of ct action",
                ));
            }
        }
        if outer == Outer::Ct {
            match written_field(a) {
                None => {
                    return Err(ParseError::invalid(format!(
                        "ct action doesn't support nested action {}",
                        action_name(a)
                    )))
                }
                Some(f) if !requires_ct(f) => {
                    return Err(ParseError::invalid(format!(
                        "ct action doesn't support nested modification of {}",
                        f.name()
                    )))
                }
                Some(_) => {}
            }
        }
        let next = instruction_of(a);
        if i > 0
            && (if inst.0 == 1 {
                next.0 < inst.0
            } else {
                next.0 <= inst.0
            })
        {
            if next.0 == inst.0 {
                return Err(ParseError::invalid(format!(
                    "duplicate {} instruction not allowed, for OpenFlow 1.1+ compatibility",
                    inst.1
                )));
            }
            return Err(ParseError::invalid(format!(
                "invalid instruction ordering: {} must appear before {}, for OpenFlow 1.1+ compatibility",
                next.1, inst.1
            )));
        }
        if outer != Outer::Top && next.0 == 5 {
            return Err(ParseError::invalid(
                "goto_table instruction not allowed here",
            ));
        }
        inst = next;
    }
    Ok(())
}

/// OVS `ofpacts_check` for one action, updating the running match.
fn check_action(a: &Action, ctx: &mut CheckCtx) -> Result<()> {
    let m = &mut ctx.flow;
    match a {
        Action::SetField { field, value, .. } => {
            let info = field.info();
            if !m.prereqs_ok(info.prereq) {
                return Err(inconsistent());
            }
            if *field == FieldId::VLAN_VID && !m.prereqs_ok(crate::field::Prereq::VlanVid) {
                return Err(inconsistent());
            }
            if *field == FieldId::VLAN_TCI {
                let (_, mask) = m.get(FieldId::VLAN_TCI);
                m.set(FieldId::VLAN_TCI, *value, mask | 0xffff);
            }
        }
        Action::Move { src, dst } => {
            check_src(src, m)?;
            check_dst(dst, m)?;
        }
        Action::OutputReg { src, .. } => check_src(src, m)?,
        Action::PushVlan(_) => {
            let (v, mask) = m.get(FieldId::VLAN_TCI);
            m.set(FieldId::VLAN_TCI, v | 0x1000, mask | 0x1000);
        }
        Action::PopVlan => {
            if !m.prereqs_ok(crate::field::Prereq::VlanVid) {
                ctx.needs_of10 = true;
            }
            let m = &mut ctx.flow;
            m.set(FieldId::VLAN_TCI, 0, 0);
        }
        Action::GotoTable(t) if ctx.table != 255 && *t <= ctx.table => {
            // OpenFlow only allows forward jumps (OVS check_GOTO_TABLE).
            return Err(ParseError::invalid(
                "actions are invalid with specified match (OFPBIC_BAD_TABLE_ID)",
            ));
        }
        Action::DecTtl | Action::SetNwTtl(_) if !m.prereqs_ok(crate::field::Prereq::IpAny) => {
            ctx.needs_of10 = true;
        }
        Action::Resubmit {
            with_ct_orig: true, ..
        } if !m.prereqs_ok(crate::field::Prereq::Ct) => {
            return Err(inconsistent());
        }
        Action::Ct(ct) => {
            let dl = m.dl_type();
            if dl != ethertype::IP && dl != ethertype::IPV6 {
                return Err(inconsistent());
            }
            let (state, _) = m.get(FieldId::CT_STATE);
            if state & 0x10 != 0 && ct.commit {
                return Err(inconsistent());
            }
            if (ct.alg == 21 && m.nw_proto() != ipproto::TCP)
                || (ct.alg == 69 && m.nw_proto() != ipproto::UDP)
            {
                return Err(inconsistent());
            }
            if let CtZone::Field(sf) = ct.zone {
                check_src(&sf, m)?;
            }
            if let Some(nat) = &ct.nat {
                match nat.addrs {
                    Some(NatAddrs::V4 { .. }) if dl != ethertype::IP => return Err(inconsistent()),
                    Some(NatAddrs::V6 { .. }) if dl != ethertype::IPV6 => {
                        return Err(inconsistent())
                    }
                    _ => {}
                }
            }
        }
        Action::Learn(l) => {
            let src_match = *m;
            let mut dst_match = Match::catch_all();
            for spec in &l.specs {
                match spec {
                    LearnSpec::MatchField { dst, src } => {
                        check_src(src, &src_match)?;
                        check_src(dst, &dst_match)?;
                    }
                    LearnSpec::MatchImm { dst, value } => {
                        check_src(dst, &dst_match)?;
                        let (ov, om) = dst_match.get(dst.field);
                        let mask = dst.mask();
                        dst_match.set(
                            dst.field,
                            (ov & !mask) | ((value << dst.ofs) & mask),
                            om | mask,
                        );
                    }
                    LearnSpec::LoadField { src, dst } => {
                        check_src(src, &src_match)?;
                        check_dst(dst, &dst_match)?;
                    }
                    LearnSpec::LoadImm { dst, .. } => check_dst(dst, &dst_match)?,
                    LearnSpec::Output { src } => check_src(src, &src_match)?,
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse_output(value: &str, names: &NameMap) -> Result<Action> {
    if let Some(port) = parse_port(value, names) {
        return Ok(Action::Output {
            port,
            max_len: if port == Port::CONTROLLER {
                u16::MAX
            } else {
                0
            },
        });
    }
    match Subfield::parse(value) {
        Ok(src) => Ok(Action::OutputReg {
            src,
            max_len: u16::MAX,
        }),
        Err(_) => Err(ParseError::BadPort(format!(
            "{value}: output to unknown port"
        ))),
    }
}

fn parse_controller(value: &str) -> Result<Action> {
    let mut c = Controller::default();
    if value.is_empty() {
    } else if value.bytes().all(|b| b.is_ascii_digit()) {
        c.max_len = str_to_u16(value, "max_len")?;
    } else {
        for (k, v) in KeyValues::new(value) {
            match k {
                "reason" => {
                    c.reason = PacketInReason::from_name(v)
                        .ok_or_else(|| ParseError::invalid(format!("unknown reason \"{v}\"")))?;
                }
                "max_len" => c.max_len = str_to_u16(v, "max_len")?,
                "id" => c.controller_id = str_to_u16(v, "id")?,
                "userdata" => {
                    c.userdata = parse_hex_bytes(v).ok_or_else(|| {
                        ParseError::invalid("bad hex digit in `controller' userdata")
                    })?;
                }
                "pause" => c.pause = true,
                "meter_id" => c.meter_id = Some(str_to_u32(v)?),
                _ => {
                    return Err(ParseError::invalid(format!(
                        "unknown key \"{k}\" parsing controller action"
                    )))
                }
            }
        }
    }
    if c.reason == PacketInReason::Action
        && c.controller_id == 0
        && c.userdata.is_empty()
        && !c.pause
        && c.meter_id.is_none()
    {
        return Ok(Action::Output {
            port: Port::CONTROLLER,
            max_len: c.max_len,
        });
    }
    Ok(Action::Controller(c))
}

/// Splits `value->dst` for `set_field` and `load` (OVS `set_field_split_str`).
fn split_arrow(arg: &str) -> Result<(&str, &str)> {
    match arg.find("->") {
        Some(i) => {
            let dst = &arg[i + 2..];
            if dst.is_empty() {
                return Err(ParseError::invalid(format!(
                    "{arg}: missing field name following `->'"
                )));
            }
            Ok((&arg[..i], dst))
        }
        None => Err(ParseError::invalid(format!("{arg}: missing `->'"))),
    }
}

/// OVS `mf_is_value_valid` for the fields where it matters.
fn value_valid(field: FieldId, v: u128) -> bool {
    match field.info().loc {
        crate::field::Loc::NwTos => v & !0xfc == 0,
        crate::field::Loc::IpDscp => v & !0x3f == 0,
        crate::field::Loc::IpEcn => v & !0x03 == 0,
        crate::field::Loc::VlanVid => v & !0x1fff == 0,
        crate::field::Loc::DlVlan => v & !0x0fff == 0,
        crate::field::Loc::VlanPcp => v & !0x07 == 0,
        _ => field != FieldId::IPV6_LABEL || v & !0xfffff == 0,
    }
}

fn parse_set_field(arg: &str, names: &NameMap) -> Result<Action> {
    let (value, key) = split_arrow(arg)?;
    let field = FieldId::from_name(key)
        .ok_or_else(|| ParseError::invalid(format!("{key} is not a valid OXM field name")))?;
    let info = field.info();
    if !info.writable {
        return Err(ParseError::invalid(format!("{key} is read-only")));
    }
    let (raw_v, raw_m) = crate::field::parse_field_value_unmasked(field, value, names)?;
    if !value_valid(field, raw_v) {
        return Err(ParseError::invalid(format!(
            "{value} is not a valid value for field {key}"
        )));
    }
    if raw_v & !raw_m != 0 {
        // ovs-ofctl sends this; a switch rejects it when decoding.
        return Err(ParseError::invalid(format!(
            "{value}: value has 1-bits in bits wildcarded by the mask (OFPBMC_BAD_WILDCARDS)"
        )));
    }
    Ok(Action::SetField {
        field,
        value: raw_v & raw_m,
        mask: raw_m,
    })
}

fn parse_load(arg: &str) -> Result<Action> {
    let (_, dst) = split_arrow(arg)?;
    let sf = Subfield::parse(dst)?;
    let bytes = sf.field.info().n_bytes;
    // OVS reads the number from the start of the whole argument and ignores what follows it.
    let v = match parse_int_prefix(arg, bytes) {
        Ok((v, _)) => v,
        Err(_) => {
            return Err(ParseError::invalid(format!(
                "{arg}: cannot parse integer value"
            )))
        }
    };
    if !fits(v, sf.n_bits) {
        let mut s = String::new();
        crate::field::format_field_value(&mut s, sf.field, v, None, &NameMap::new());
        return Err(ParseError::DoesNotFit {
            input: arg.to_owned(),
            value: s,
            bits: sf.n_bits,
        });
    }
    Ok(Action::SetField {
        field: sf.field,
        value: v << sf.ofs,
        mask: sf.mask(),
    })
}

fn parse_move(arg: &str) -> Result<(Subfield, Subfield)> {
    let (src, rest) = Subfield::parse_prefix(arg)?;
    let Some(rest) = rest.strip_prefix("->") else {
        return Err(ParseError::invalid(format!(
            "{arg}: missing `->' following source"
        )));
    };
    let dst = Subfield::parse(rest)?;
    if src.n_bits != dst.n_bits {
        return Err(ParseError::invalid(format!(
            "{arg}: source field is {} bits wide but destination is {} bits wide",
            src.n_bits, dst.n_bits
        )));
    }
    Ok((src, dst))
}

/// `mod_dl_src:` and friends, as the `set_field` a switch hands back over OpenFlow 1.5.
fn parse_mod_alias(key: &str, value: &str, m: &Match, names: &NameMap) -> Result<Action> {
    let l4 = |src: bool| -> FieldId {
        match m.nw_proto() {
            ipproto::UDP => {
                if src {
                    FieldId::UDP_SRC
                } else {
                    FieldId::UDP_DST
                }
            }
            ipproto::SCTP => {
                if src {
                    FieldId::SCTP_SRC
                } else {
                    FieldId::SCTP_DST
                }
            }
            _ => {
                if src {
                    FieldId::TCP_SRC
                } else {
                    FieldId::TCP_DST
                }
            }
        }
    };
    let (field, v) = match key {
        "mod_dl_src" | "mod_dl_dst" => {
            let (v, _) = crate::value::parse_eth_masked(value)
                .map_err(|_| ParseError::invalid(format!("invalid mac address {value}")))?;
            (
                if key == "mod_dl_src" {
                    FieldId::ETH_SRC
                } else {
                    FieldId::ETH_DST
                },
                u128::from(v),
            )
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let (v, mask) = crate::value::parse_ipv4_masked(value).map_err(ParseError::Invalid)?;
            if mask != u32::MAX {
                return Err(ParseError::invalid(format!("{value}: invalid IP address")));
            }
            (
                if key == "mod_nw_src" {
                    FieldId::IPV4_SRC
                } else {
                    FieldId::IPV4_DST
                },
                u128::from(v),
            )
        }
        "mod_nw_tos" => {
            let v = c_uint(value, 255)
                .ok_or_else(|| ParseError::invalid(format!("invalid TOS \"{value}\"")))?;
            if v & !0xfc != 0 {
                return Err(ParseError::invalid(format!("{value}: not a valid TOS")));
            }
            (FieldId::IP_DSCP_SHIFTED, u128::from(v >> 2))
        }
        "mod_nw_ecn" => {
            let v = c_uint(value, 255)
                .ok_or_else(|| ParseError::invalid(format!("invalid ECN \"{value}\"")))?;
            if v > 3 {
                return Err(ParseError::invalid(format!("{value}: not a valid ECN")));
            }
            (FieldId::IP_ECN, u128::from(v))
        }
        _ => {
            let v = str_to_u16(value, key)?;
            (l4(key == "mod_tp_src"), u128::from(v))
        }
    };
    let _ = names;
    Ok(Action::SetField {
        field,
        value: v,
        mask: field.exact_mask(),
    })
}

fn parse_resubmit(arg: &str, names: &NameMap) -> Result<Action> {
    // `resubmit:port` arrives here too, as the value without parentheses.
    let mut parts = arg.splitn(3, ',');
    let port_s = parts.next().unwrap_or("");
    let table_s = parts.next().unwrap_or("");
    let ct_s = parts.next().unwrap_or("");
    let in_port = if port_s.is_empty() {
        Port::IN_PORT
    } else {
        parse_port(port_s, names)
            .ok_or_else(|| ParseError::BadPort(format!("{port_s}: resubmit to unknown port")))?
    };
    let table = if table_s.is_empty() {
        None
    } else {
        let t = parse_table(table_s, names)
            .ok_or_else(|| ParseError::invalid(format!("{table_s}: resubmit to unknown table")))?;
        (t != 255).then_some(t)
    };
    let with_ct_orig = if ct_s.is_empty() {
        false
    } else if ct_s == "ct" {
        true
    } else {
        return Err(ParseError::invalid(format!("{ct_s}: unknown parameter")));
    };
    if in_port == Port::IN_PORT && table.is_none() {
        return Err(ParseError::invalid(
            "at least one \"in_port\" or \"table\" must be specified on resubmit",
        ));
    }
    Ok(Action::Resubmit {
        in_port,
        table,
        with_ct_orig,
    })
}

fn parse_conjunction(arg: &str) -> Result<Action> {
    let syntax = || ParseError::invalid("\"conjunction\" syntax is \"conjunction(id,i/n)\"");
    let (id_s, rest) = arg.split_once(',').ok_or_else(syntax)?;
    let (k_s, n_s) = rest.split_once('/').ok_or_else(syntax)?;
    let id = c_uint(id_s.trim(), 0xffff_ffff).ok_or_else(syntax)? as u32;
    let k = k_s.trim().parse::<u64>().map_err(|_| syntax())?;
    let n = n_s.trim().parse::<u64>().map_err(|_| syntax())?;
    let (k, n) = ((k & 0xff) as u8, (n & 0xff) as u8);
    if n < 2 {
        return Err(ParseError::invalid(
            "conjunction must have at least 2 clauses",
        ));
    } else if n > 64 {
        return Err(ParseError::invalid(
            "conjunction must have at most 64 clauses",
        ));
    } else if k < 1 {
        return Err(ParseError::invalid("clause index must be positive"));
    } else if k > n {
        return Err(ParseError::invalid(
            "clause index must be less than or equal to number of clauses",
        ));
    }
    Ok(Action::Conjunction {
        id,
        clause: k,
        n_clauses: n,
    })
}

fn parse_ct(arg: &str, names: &NameMap, ctx: &CheckCtx) -> Result<Ct> {
    let mut ct = Ct::default();
    for (key, value) in KeyValues::new(arg) {
        match key {
            "commit" => ct.commit = true,
            "force" => ct.force = true,
            "table" => {
                let t = parse_table(value, names)
                    .ok_or_else(|| ParseError::invalid(format!("unknown table {value}")))?;
                if t == 255 {
                    return Err(ParseError::invalid("invalid table 0xff"));
                }
                ct.table = Some(t);
            }
            "zone" => {
                ct.zone = match str_to_u16(value, "zone") {
                    Ok(z) => CtZone::Imm(z),
                    Err(_) => CtZone::Field(Subfield::parse(value)?),
                };
            }
            "alg" => {
                ct.alg = match value {
                    "ftp" => 21,
                    "tftp" => 69,
                    _ => {
                        return Err(ParseError::invalid(format!(
                            "unknown connection helper \"{value}\""
                        )))
                    }
                };
            }
            "nat" => ct.nat = Some(parse_nat(value)?),
            "exec" => {
                let mut sub = ctx.clone();
                ct.exec = parse_action_list(value, names, Outer::Ct, &mut sub)?;
            }
            _ => {
                return Err(ParseError::invalid(format!(
                    "invalid argument to \"ct\" action: `{key}'"
                )))
            }
        }
    }
    if ct.force && !ct.commit {
        return Err(ParseError::invalid(
            "\"force\" flag requires \"commit\" flag.",
        ));
    }
    // OVS accepts this text but a switch rejects the action when decoding it.
    if !ct.commit && (!ct.exec.is_empty() || ct.nat.is_some_and(|n| n.kind.is_some())) {
        return Err(ParseError::invalid(
            "CT action requires commit flag if actions other than NAT without arguments are specified.",
        ));
    }
    Ok(ct)
}

fn parse_nat(arg: &str) -> Result<Nat> {
    let mut nat = Nat::default();
    let (mut src, mut dst) = (false, false);
    for (key, value) in KeyValues::new(arg) {
        match key {
            "src" | "dst" => {
                if key == "src" {
                    src = true;
                    nat.kind = Some(NatKind::Src);
                } else {
                    dst = true;
                    nat.kind = Some(NatKind::Dst);
                }
                parse_nat_range(value, &mut nat)?;
            }
            "persistent" => nat.persistent = true,
            "hash" => nat.hash = true,
            "random" => nat.random = true,
            _ => {
                return Err(ParseError::invalid(format!(
                    "invalid key \"{key}\" in \"nat\" argument"
                )))
            }
        }
    }
    if src && dst {
        return Err(ParseError::invalid(
            "May only specify one of \"src\" or \"dst\".",
        ));
    }
    if !src && !dst {
        if nat.persistent || nat.hash || nat.random {
            return Err(ParseError::invalid(
                "Flags allowed only with \"src\" or \"dst\".",
            ));
        }
        if nat.addrs.is_some() {
            return Err(ParseError::invalid(
                "Range allowed only with \"src\" or \"dst\".",
            ));
        }
    }
    if nat.hash && nat.random {
        return Err(ParseError::invalid(
            "Both \"hash\" and \"random\" are not allowed.",
        ));
    }
    Ok(nat)
}

/// `IP[-IP][:port[-port]]`, IPv6 optionally in brackets.
fn parse_nat_range(s: &str, nat: &mut Nat) -> Result<()> {
    let err = || ParseError::invalid(format!("invalid nat range \"{s}\""));
    nat.addrs = None;
    nat.ports = (0, 0);
    if s.is_empty() {
        return Ok(());
    }
    let v4_prefix = |t: &str| -> Option<(u32, usize)> {
        let len = t
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (ip, mask) = crate::value::parse_ipv4_masked(&t[..len]).ok()?;
        (mask == u32::MAX).then_some((ip, len))
    };
    let v6_prefix = |t: &str| -> Option<(u128, usize)> {
        if let Some(inner) = t.strip_prefix('[') {
            let close = inner.find(']')?;
            return parse_ipv6(&inner[..close]).map(|a| (a, close + 2));
        }
        let len = t
            .bytes()
            .take_while(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
            .count();
        // Without brackets a trailing ":port" is ambiguous; take the longest prefix that parses.
        (1..=len)
            .rev()
            .find_map(|l| parse_ipv6(&t[..l]).map(|a| (a, l)))
    };
    let mut n;
    if let Some((min, len)) = v4_prefix(s) {
        n = len;
        let mut max = 0;
        if s[n..].starts_with('-') {
            let (m, l) = v4_prefix(&s[n + 1..]).ok_or_else(err)?;
            if m < min {
                return Err(err());
            }
            max = m;
            n += 1 + l;
        }
        nat.addrs = Some(NatAddrs::V4 { min, max });
    } else if let Some((min, len)) = v6_prefix(s) {
        n = len;
        let mut max = 0;
        if s[n..].starts_with('-') {
            let (m, l) = v6_prefix(&s[n + 1..]).ok_or_else(err)?;
            if m < min {
                return Err(err());
            }
            max = m;
            n += 1 + l;
        }
        nat.addrs = Some(NatAddrs::V6 { min, max });
    } else {
        n = 0;
    }
    if nat.addrs.is_some() && s[n..].starts_with(':') {
        n += 1;
        let read_u16 = |t: &str| -> Option<(u16, usize)> {
            let l = t.bytes().take_while(u8::is_ascii_digit).count();
            if l == 0 {
                return None;
            }
            t[..l].parse::<u64>().ok().map(|v| ((v & 0xffff) as u16, l))
        };
        let (pmin, l) = read_u16(&s[n..]).ok_or_else(err)?;
        n += l;
        nat.ports.0 = pmin;
        if s[n..].starts_with('-') {
            let (pmax, l) = read_u16(&s[n + 1..]).ok_or_else(err)?;
            if pmax < pmin {
                return Err(err());
            }
            nat.ports.1 = pmax;
            n += 1 + l;
        }
    }
    if n != s.len() {
        return Err(ParseError::invalid(format!(
            "garbage ({}) after nat range \"{s}\" (pos: {n})",
            &s[n..]
        )));
    }
    Ok(())
}

fn parse_learn(arg: &str, names: &NameMap) -> Result<Learn> {
    let orig = arg;
    let mut l = Learn::default();
    for (name, value) in KeyValues::new(arg) {
        match name {
            "table" => {
                let t = parse_table(value, names)
                    .ok_or_else(|| ParseError::UnknownTable(value.to_owned()))?;
                if t == 255 {
                    return Err(ParseError::invalid(format!(
                        "{orig}: table id 255 not valid for `learn' action"
                    )));
                }
                l.table = t;
            }
            "priority" => l.priority = atoi(value) as u16,
            "idle_timeout" => l.idle_timeout = atoi(value) as u16,
            "hard_timeout" => l.hard_timeout = atoi(value) as u16,
            "fin_idle_timeout" => l.fin_idle_timeout = atoi(value) as u16,
            "fin_hard_timeout" => l.fin_hard_timeout = atoi(value) as u16,
            "cookie" => {
                l.cookie = match parse_int_prefix(value, 8) {
                    Ok((v, _)) => v as u64,
                    Err(crate::value::IntError::Range) => u64::MAX,
                    Err(crate::value::IntError::Syntax) => 0,
                }
            }
            "send_flow_rem" => l.send_flow_rem = true,
            "delete_learned" => l.delete_learned = true,
            "limit" => l.limit = atoi(value) as u32,
            "result_dst" => {
                let sf = Subfield::parse(value)?;
                if !sf.field.info().writable {
                    return Err(ParseError::invalid(format!("{value} is read-only")));
                }
                if sf.n_bits != 1 {
                    return Err(ParseError::invalid(
                        "result_dst in 'learn' action must be a single bit",
                    ));
                }
                l.result_dst = Some(sf);
            }
            _ => l.specs.push(parse_learn_spec(orig, name, value, names)?),
        }
    }
    Ok(l)
}

fn no_nxm(orig: &str, name: &str, sf: &Subfield) -> Result<()> {
    if sf.field.info().nxm.is_none() {
        return Err(ParseError::invalid(format!(
            "{orig}: experimenter OXM field '{name}' not supported"
        )));
    }
    Ok(())
}

fn parse_learn_spec(orig: &str, name: &str, value: &str, names: &NameMap) -> Result<LearnSpec> {
    if let Ok(dst) = Subfield::parse(name) {
        if dst.field.info().nxm.is_none() && dst.field.info().oxm.is_none() {
            return Err(ParseError::invalid(format!(
                "{orig}: experimenter OXM field '{name}' not supported"
            )));
        }
        if value.is_empty() {
            return Ok(LearnSpec::MatchField { dst, src: dst });
        }
        match Subfield::parse(value) {
            Ok(src) => {
                if src.n_bits != dst.n_bits {
                    return Err(ParseError::invalid(format!(
                        "{orig}: bit widths of {name} ({}) and {value} ({}) differ",
                        src.n_bits, dst.n_bits
                    )));
                }
                Ok(LearnSpec::MatchField { dst, src })
            }
            Err(sub_err) => {
                let imm = if dst.is_whole() {
                    match parse_field_value(dst.field, value, names) {
                        Ok((v, m)) if m == ones(u16::from(dst.field.info().n_bytes) * 8) => Ok(v),
                        Ok(_) => Err(format!("{value}: wildcards not allowed here")),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    match parse_int_prefix(value, dst.field.info().n_bytes) {
                        Ok((v, "")) if fits(v, dst.n_bits) => Ok(v),
                        Ok((v, "")) => {
                            let mut s = String::new();
                            crate::field::format_field_value(
                                &mut s,
                                dst.field,
                                v,
                                None,
                                &NameMap::new(),
                            );
                            Err(format!(
                                "{orig}: value {s} does not fit into {} bits",
                                dst.n_bits
                            ))
                        }
                        _ => Err(format!("{orig}: cannot parse integer value")),
                    }
                };
                match imm {
                    Ok(v) => Ok(LearnSpec::MatchImm { dst, value: v }),
                    Err(imm_err) => Err(ParseError::invalid(format!(
                        "{orig}: {name} value {value} cannot be parsed as a subfield ({sub_err}) or an immediate value ({imm_err})"
                    ))),
                }
            }
        }
    } else if name == "load" {
        match value.find("->") {
            Some(0) => {
                return Err(ParseError::invalid(format!(
                    "{name}: missing source before `->' in `{value}'"
                )))
            }
            None => {
                return Err(ParseError::invalid(format!(
                    "{name}: missing `->' in `{value}'"
                )))
            }
            Some(_) => {}
        }
        match parse_int_prefix(value, 16) {
            Ok((imm, tail)) if tail.len() != value.len() => {
                let Some(dst_s) = tail.strip_prefix("->") else {
                    return Err(ParseError::invalid(format!(
                        "{name}: garbage before `->' in `{value}'"
                    )));
                };
                let dst = Subfield::parse(dst_s)?;
                no_nxm(orig, dst_s, &dst)?;
                if !fits(imm, dst.n_bits) {
                    return Err(ParseError::invalid(format!(
                        "{value}: value does not fit into {} bits",
                        dst.n_bits
                    )));
                }
                Ok(LearnSpec::LoadImm { dst, value: imm })
            }
            _ => {
                let (src, dst) = parse_move(value)?;
                Ok(LearnSpec::LoadField { src, dst })
            }
        }
    } else if name == "output" {
        Ok(LearnSpec::Output {
            src: Subfield::parse(value)?,
        })
    } else {
        Err(ParseError::invalid(format!(
            "{orig}: unknown keyword {name}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        let kv: Vec<_> = KeyValues::new("a=1, b:2 c(d,e(f)),g").collect();
        assert_eq!(kv, vec![("a", "1"), ("b", "2"), ("c", "d,e(f)"), ("g", "")]);
        let kv: Vec<_> = KeyValues::new("x(unclosed").collect();
        assert_eq!(kv, vec![("x", "unclosed")]);
    }

    #[test]
    fn errors_use_ovs_wording() {
        let n = NameMap::new();
        let e = |s: &str| {
            parse_flow(s, &n)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(e("foo=1,actions=drop"), "unknown keyword foo");
        assert_eq!(
            e("tcp,tp_dst=0x1ffff,actions=drop"),
            "0x1ffff: value too large for 2-byte field tcp_dst"
        );
        assert_eq!(
            e("priority=70000,actions=drop"),
            "invalid priority \"70000\""
        );
        assert_eq!(e("actions=foo"), "unknown action foo");
        assert_eq!(e("table=300,actions=drop"), "unknown table \"300\"");
        assert_eq!(e("igmp,actions=drop"), "field igmp missing value");
        assert_eq!(
            e("actions=load:0x1f->NXM_NX_REG0[0..3]"),
            "0x1f->NXM_NX_REG0[0..3]: value 0x1f does not fit into 4 bits"
        );
        assert_eq!(
            e("actions=drop,output:1"),
            "\"drop\" must not be accompanied by any other action or instruction"
        );
        assert_eq!(e("actions=goto_table:3,output:1"), "invalid instruction ordering: apply_actions must appear before goto_table, for OpenFlow 1.1+ compatibility");
        assert_eq!(
            e("ip actions=set_field:1->tcp_dst"),
            "actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)"
        );
        assert_eq!(
            e("actions=ct(commit)"),
            "actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)"
        );
        assert_eq!(
            e("actions=set_field:0x1/0x1->ct_mark"),
            "cannot set CT fields outside of ct action"
        );
        assert_eq!(
            e("ip,actions=ct(foo)"),
            "invalid argument to \"ct\" action: `foo'"
        );
        assert_eq!(
            e("actions=conjunction(1,3/2)"),
            "clause index must be less than or equal to number of clauses"
        );
        assert_eq!(
            e("cookie=0x1/0x1,actions=drop"),
            "flow additions cannot use a cookie mask"
        );
        assert_eq!(e("priority=1"), "must specify an action");
        assert_eq!(
            e("in_port=foo,actions=drop"),
            "foo: invalid or unknown port for in_port"
        );
        assert_eq!(
            e("actions=resubmit(,300)"),
            "300: resubmit to unknown table"
        );
        assert_eq!(e("actions=output:foo"), "foo: output to unknown port");
        assert_eq!(
            e("actions=set_field:1->foo"),
            "foo is not a valid OXM field name"
        );
    }

    #[test]
    fn full_width_128_bit_loads_do_not_overflow() {
        // Found by cargo-fuzz: a shift by the subfield width overflowed for 128-bit fields.
        // Expected texts are what `ovs-ofctl -O OpenFlow15 parse-flow` prints for the inputs.
        let n = NameMap::new();
        let show = |s: &str| {
            parse_flow(s, &n)
                .map(|f| crate::print::flow_to_string(&f, &n))
                .unwrap_or_else(|e| e.to_string())
        };
        assert_eq!(
            show("ipv6,actions=load:0xfec00000000000000000000000000001->NXM_NX_XXREG3[],load:0x1->NXM_NX_XXREG0[]"),
            "ipv6 actions=set_field:0xfec00000000000000000000000000001->xxreg3,set_field:0x1->xxreg0"
        );
        assert_eq!(
            show("xxreg0[]=0x1,actions=drop"),
            "reg0=0,reg1=0,reg2=0,reg3=0x1 actions=drop"
        );
        assert_eq!(
            show("actions=learn(NXM_NX_XXREG0[]=0x1,load:0x2->NXM_NX_XXREG1[])"),
            "actions=learn(table=1,xxreg0=0x1,load:0x2->NXM_NX_XXREG1[])"
        );
    }

    #[test]
    fn normalisation_drops_fields_without_prerequisites() {
        let f = parse_flow("tp_dst=80,actions=drop", &NameMap::new()).unwrap_or_default();
        assert!(f.match_.is_catch_all());
    }
}
