//! OpenFlow port and table numbers and their names, as `ovs-ofctl` reads and prints them.
//!
//! Ports use Open vSwitch's internal 16-bit numbering (OpenFlow 1.0 style: reserved ports at
//! 0xfff8..=0xffff); [`Port::to_ofp11`] gives the 32-bit form the flow key and OpenFlow 1.1+ use.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// An OpenFlow port number in the 16-bit (OpenFlow 1.0) numbering Open vSwitch uses internally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl Port {
    /// First reserved port of the 16-bit space; physical ports are below it.
    pub const MAX: Port = Port(0xff00);
    /// `UNSET` (OVS internal).
    pub const UNSET: Port = Port(0xfff7);
    /// `IN_PORT`: the packet's ingress port.
    pub const IN_PORT: Port = Port(0xfff8);
    /// `TABLE`: submit to the first table (packet-out only).
    pub const TABLE: Port = Port(0xfff9);
    /// `NORMAL`: L2 switching.
    pub const NORMAL: Port = Port(0xfffa);
    /// `FLOOD`: all ports except the ingress and no-flood ports.
    pub const FLOOD: Port = Port(0xfffb);
    /// `ALL`: all ports except the ingress port.
    pub const ALL: Port = Port(0xfffc);
    /// `CONTROLLER`.
    pub const CONTROLLER: Port = Port(0xfffd);
    /// `LOCAL`: the bridge's own port.
    pub const LOCAL: Port = Port(0xfffe);
    /// `ANY` / `NONE`: no port.
    pub const NONE: Port = Port(0xffff);

    /// The 32-bit OpenFlow 1.1+ number of this port (reserved ports move to 0xffffff00 and up).
    pub const fn to_ofp11(self) -> u32 {
        if self.0 >= Self::MAX.0 {
            self.0 as u32 + 0xffff_0000
        } else {
            self.0 as u32
        }
    }

    /// The port with 32-bit OpenFlow 1.1+ number `p`, if it has a 16-bit equivalent.
    pub const fn from_ofp11(p: u32) -> Option<Port> {
        if p < Self::MAX.0 as u32 {
            Some(Port(p as u16))
        } else if p >= 0xffff_ff00 {
            Some(Port((p - 0xffff_0000) as u16))
        } else {
            None
        }
    }

    /// The name of a reserved port (`LOCAL`, `IN_PORT`, ...), if this is one.
    pub fn reserved_name(self) -> Option<&'static str> {
        RESERVED.iter().find(|(_, p)| *p == self).map(|(n, _)| *n)
    }
}

/// Reserved port names in the order OVS prefers them for printing (`ANY` before `NONE`).
const RESERVED: [(&str, Port); 10] = [
    ("IN_PORT", Port::IN_PORT),
    ("TABLE", Port::TABLE),
    ("NORMAL", Port::NORMAL),
    ("FLOOD", Port::FLOOD),
    ("ALL", Port::ALL),
    ("CONTROLLER", Port::CONTROLLER),
    ("LOCAL", Port::LOCAL),
    ("ANY", Port::NONE),
    ("UNSET", Port::UNSET),
    ("NONE", Port::NONE),
];

/// Port and table names, as `ovs-ofctl --names` learns them from the switch.
///
/// An empty map makes parsing accept numbers only and printing print numbers only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameMap {
    ports_by_name: BTreeMap<String, Port>,
    ports_by_number: BTreeMap<Port, String>,
    tables_by_name: BTreeMap<String, u8>,
    tables_by_number: BTreeMap<u8, String>,
}

impl NameMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a port name. A later name for the same number replaces the earlier one.
    pub fn add_port(&mut self, name: &str, port: Port) {
        self.ports_by_name.insert(name.to_owned(), port);
        self.ports_by_number.insert(port, name.to_owned());
    }

    /// Adds a table name.
    pub fn add_table(&mut self, name: &str, table: u8) {
        self.tables_by_name.insert(name.to_owned(), table);
        self.tables_by_number.insert(table, name.to_owned());
    }

    /// The number of the port called `name`.
    pub fn port_number(&self, name: &str) -> Option<Port> {
        self.ports_by_name.get(name).copied()
    }

    /// The name of port `p`.
    pub fn port_name(&self, p: Port) -> Option<&str> {
        self.ports_by_number.get(&p).map(String::as_str)
    }

    /// The number of the table called `name`.
    pub fn table_number(&self, name: &str) -> Option<u8> {
        self.tables_by_name.get(name).copied()
    }

    /// The name of table `t`.
    pub fn table_name(&self, t: u8) -> Option<&str> {
        self.tables_by_number.get(&t).map(String::as_str)
    }

    /// True when the map has no names at all.
    pub fn is_empty(&self) -> bool {
        self.ports_by_name.is_empty() && self.tables_by_name.is_empty()
    }
}

/// True when OVS would quote `name` when printing it: it must start with a letter and contain only
/// letters and digits to go unquoted.
fn needs_quotes(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return true,
    }
    !chars.all(|c| c.is_ascii_alphanumeric())
}

/// Appends `name`, quoted and JSON-escaped when needed, as OVS prints port and table names.
pub(crate) fn put_name(out: &mut String, name: &str) {
    if !needs_quotes(name) {
        out.push_str(name);
        return;
    }
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Undoes [`put_name`]'s quoting: `"a\"b"` -> `a"b`. Returns `None` for a malformed string.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let v = u32::from_str_radix(&hex, 16).ok()?;
                out.push(char::from_u32(v)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Appends port `p` as OVS prints it: reserved name, else its name from `names`, else the number.
pub fn format_port(out: &mut String, p: Port, names: &NameMap) {
    if let Some(n) = p.reserved_name() {
        out.push_str(n);
    } else if let Some(n) = names.port_name(p) {
        put_name(out, n);
    } else {
        let _ = write!(out, "{}", p.0);
    }
}

/// Parses a port as `ofputil_port_from_string` does: a decimal number (16-bit, or a 32-bit
/// reserved number), a reserved name (any case), or a (possibly quoted) name from `names`.
pub fn parse_port(s: &str, names: &NameMap) -> Option<Port> {
    if s.starts_with('-') {
        return None;
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let v: u64 = s.parse().ok()?;
        if v <= 0xffff {
            return Some(Port(v as u16));
        }
        if (0xffff_ff00..=0xffff_ffff).contains(&v) {
            return Some(Port((v - 0xffff_0000) as u16));
        }
        return None;
    }
    for (name, p) in RESERVED {
        if s.eq_ignore_ascii_case(name) {
            return Some(p);
        }
    }
    if s.starts_with('"') {
        let name = unquote(s)?;
        return names.port_number(&name);
    }
    names.port_number(s)
}

/// Appends table `t`: its name if `names` has one, else the number.
pub fn format_table(out: &mut String, t: u8, names: &NameMap) {
    if let Some(n) = names.table_name(t) {
        put_name(out, n);
    } else {
        let _ = write!(out, "{t}");
    }
}

/// Parses a table as `ofputil_table_from_string` does: a number 0..=255 or a (possibly quoted)
/// name from `names`.
pub fn parse_table(s: &str, names: &NameMap) -> Option<u8> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u8>().ok();
    }
    if s.starts_with('"') {
        let name = unquote(s)?;
        return names.table_number(&name);
    }
    names.table_number(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip() {
        let mut m = NameMap::new();
        m.add_port("antrea-gw0", Port(32769));
        m.add_port("pod1", Port(5));
        let mut s = String::new();
        format_port(&mut s, Port(32769), &m);
        assert_eq!(s, "\"antrea-gw0\"");
        assert_eq!(parse_port(&s, &m), Some(Port(32769)));
        assert_eq!(parse_port("antrea-gw0", &m), Some(Port(32769)));
        assert_eq!(parse_port("pod1", &m), Some(Port(5)));
        assert_eq!(parse_port("local", &m), Some(Port::LOCAL));
        assert_eq!(parse_port("4294967294", &m), Some(Port::LOCAL));
        assert_eq!(parse_port("70000", &m), None);
        assert_eq!(parse_port("-1", &m), None);
        assert_eq!(parse_port("\"unterminated", &m), None);
        assert_eq!(Port::LOCAL.to_ofp11(), 0xffff_fffe);
        assert_eq!(Port::from_ofp11(0xffff_fffe), Some(Port::LOCAL));
        assert_eq!(Port::from_ofp11(0x1_0000), None);
    }

    #[test]
    fn tables() {
        let mut m = NameMap::new();
        m.add_table("SpoofGuard", 4);
        assert_eq!(parse_table("SpoofGuard", &m), Some(4));
        assert_eq!(parse_table("255", &m), Some(255));
        assert_eq!(parse_table("256", &m), None);
        let mut s = String::new();
        format_table(&mut s, 4, &m);
        format_table(&mut s, 5, &m);
        assert_eq!(s, "SpoofGuard5");
    }
}
