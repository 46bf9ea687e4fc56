//! Groups: the `add-group`/`mod-group`/`del-groups` syntax and the `dump-groups` text.

use crate::action::Action;
use crate::error::{ParseError, Result};
use crate::names::{format_port, parse_port, NameMap, Port};
use crate::parse::{parse_bucket_actions, KeyValues};
use crate::print::format_actions;
use std::fmt::Write as _;

/// Group types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// `all`: every bucket gets a copy.
    All,
    /// `select`: one bucket per packet (by hash of the connection).
    Select,
    /// `indirect`: the single bucket.
    Indirect,
    /// `ff` / `fast_failover`: the first live bucket.
    FastFailover,
}

impl GroupType {
    /// Text name as `dump-groups` prints it.
    pub fn name(self) -> &'static str {
        match self {
            GroupType::All => "all",
            GroupType::Select => "select",
            GroupType::Indirect => "indirect",
            GroupType::FastFailover => "ff",
        }
    }
}

/// Bucket id meaning "not given" (OVS `OFPG15_BUCKET_ALL`).
pub const BUCKET_UNSET: u32 = 0xffff_ffff;
/// Largest group id (OVS `OFPG_MAX`).
pub const GROUP_MAX: u32 = 0xffff_ff00;
/// Largest bucket id (OVS `OFPG15_BUCKET_MAX`).
pub const BUCKET_MAX: u32 = 0xffff_ff00;
/// Group id meaning all groups (`group_id=all`, `del-groups` without arguments).
pub const GROUP_ALL: u32 = 0xffff_fffc;

/// One bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Bucket id; [`BUCKET_UNSET`] until assigned.
    pub bucket_id: u32,
    /// Weight (select groups; default 1 for select, 0 otherwise).
    pub weight: u16,
    /// Liveness port ([`Port::NONE`] = none).
    pub watch_port: Port,
    /// Liveness group (0xffffffff = none).
    pub watch_group: u32,
    /// The bucket's actions.
    pub actions: Vec<Action>,
}

/// A group as `dump-groups` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Group {
    /// Group id.
    pub group_id: u32,
    /// Type.
    pub group_type: GroupType,
    /// `selection_method=` (e.g. `hash`, `dp_hash`), empty = switch default.
    pub selection_method: String,
    /// `selection_method_param=`.
    pub selection_method_param: u64,
    /// Buckets in order.
    pub buckets: Vec<Bucket>,
}

/// Group-mod commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupCommand {
    /// `add-group`.
    Add,
    /// `mod-group`.
    Modify,
    /// `del-groups`.
    Delete,
    /// `insert-buckets`.
    InsertBucket,
    /// `remove-buckets`.
    RemoveBucket,
}

fn str_to_u32(s: &str) -> Result<u32> {
    if s.is_empty() {
        return Err(ParseError::invalid("missing required numeric argument"));
    }
    match crate::value::parse_int_prefix(s, 4) {
        Ok((v, "")) if !s.starts_with('-') => Ok(v as u32),
        _ => Err(ParseError::invalid(format!("invalid numeric format {s}"))),
    }
}

fn parse_bucket(s: &str, group_type: GroupType, names: &NameMap) -> Result<Bucket> {
    let mut b = Bucket {
        bucket_id: BUCKET_UNSET,
        weight: u16::from(group_type == GroupType::Select),
        watch_port: Port::NONE,
        watch_group: u32::MAX,
        actions: Vec::new(),
    };
    let mut actions = String::new();
    for (key, value) in KeyValues::new(s) {
        match key.to_ascii_lowercase().as_str() {
            "weight" => {
                b.weight = match crate::value::parse_int_prefix(value, 2) {
                    Ok((v, "")) if !value.is_empty() => v as u16,
                    _ => return Err(ParseError::invalid(format!("invalid weight \"{value}\""))),
                }
            }
            "watch_port" => {
                b.watch_port = parse_port(value, names)
                    .filter(|p| p.0 < Port::MAX.0 || *p == Port::NONE || *p == Port::CONTROLLER)
                    .ok_or_else(|| ParseError::invalid(format!("{value}: invalid watch_port")))?;
            }
            "watch_group" => {
                b.watch_group = str_to_u32(value)?;
                if b.watch_group > GROUP_MAX {
                    return Err(ParseError::invalid(format!(
                        "invalid watch_group id {}",
                        b.watch_group
                    )));
                }
            }
            "bucket_id" => {
                b.bucket_id = str_to_u32(value)?;
                if b.bucket_id > BUCKET_MAX {
                    return Err(ParseError::invalid(format!(
                        "invalid bucket_id id {}",
                        b.bucket_id
                    )));
                }
            }
            "action" | "actions" => {
                actions.push_str(value);
                actions.push(',');
            }
            _ => {
                let _ = write!(actions, "{key}({value}),");
            }
        }
    }
    if actions.is_empty() {
        return Err(ParseError::invalid("bucket must specify actions"));
    }
    if group_type == GroupType::FastFailover
        && b.watch_port == Port::NONE
        && b.watch_group == u32::MAX
    {
        return Err(ParseError::invalid(
            "fast failover bucket requires watch_port or watch_group",
        ));
    }
    actions.pop();
    b.actions = parse_bucket_actions(&actions, names)?;
    Ok(b)
}

/// A parsed group mod (`add-group`, `mod-group`, `del-groups`, `insert-buckets`,
/// `remove-buckets`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupMod {
    /// The command.
    pub command: GroupCommand,
    /// The group (for deletes only `group_id` is meaningful; [`GROUP_ALL`] = all groups).
    pub group: Group,
    /// `command_bucket_id` for insert/remove: a bucket id, or [`BUCKET_FIRST`],
    /// [`BUCKET_LAST`], [`BUCKET_UNSET`] (= all).
    pub command_bucket_id: u32,
}

/// `command_bucket_id=first`.
pub const BUCKET_FIRST: u32 = 0xffff_fffd;
/// `command_bucket_id=last`.
pub const BUCKET_LAST: u32 = 0xffff_fffe;

/// Parses a group mod for `command`, as `ovs-ofctl` reads the argument of the corresponding
/// command (OVS `parse_ofp_group_mod_str`).
pub fn parse_group_mod(s: &str, command: GroupCommand, names: &NameMap) -> Result<GroupMod> {
    match command {
        GroupCommand::Add | GroupCommand::Modify => Ok(GroupMod {
            command,
            group: parse_group(s, names)?,
            command_bucket_id: BUCKET_UNSET,
        }),
        GroupCommand::Delete | GroupCommand::RemoveBucket | GroupCommand::InsertBucket => {
            let mut gm = GroupMod {
                command,
                group: Group {
                    group_id: if command == GroupCommand::Delete && s.trim().is_empty() {
                        GROUP_ALL
                    } else {
                        u32::MAX
                    },
                    group_type: GroupType::All,
                    selection_method: String::new(),
                    selection_method_param: 0,
                    buckets: Vec::new(),
                },
                command_bucket_id: BUCKET_UNSET,
            };
            if gm.group.group_id == GROUP_ALL {
                return Ok(gm);
            }
            let (head, buckets_str) = match s.find("bucket=") {
                Some(_) if command != GroupCommand::InsertBucket => {
                    return Err(ParseError::invalid("bucket is not needed"))
                }
                Some(i) => (&s[..i], Some(&s[i..])),
                None => (s, None),
            };
            let mut had_cbi = false;
            for (name, value) in KeyValues::new(head) {
                match name {
                    "group_id" => {
                        gm.group.group_id = if value == "all" {
                            GROUP_ALL
                        } else {
                            str_to_u32(value)?
                        };
                        if gm.group.group_id != GROUP_ALL && gm.group.group_id > GROUP_MAX {
                            return Err(ParseError::invalid(format!(
                                "invalid group id {}",
                                gm.group.group_id
                            )));
                        }
                    }
                    "command_bucket_id" if command != GroupCommand::Delete => {
                        gm.command_bucket_id = match value {
                            "all" => BUCKET_UNSET,
                            "first" => BUCKET_FIRST,
                            "last" => BUCKET_LAST,
                            _ => {
                                let id = str_to_u32(value)?;
                                if id > BUCKET_MAX {
                                    return Err(ParseError::invalid(format!(
                                        "invalid command bucket id {id}"
                                    )));
                                }
                                id
                            }
                        };
                        if gm.command_bucket_id == BUCKET_UNSET
                            && command == GroupCommand::InsertBucket
                        {
                            return Err(ParseError::invalid(
                                "command_bucket_id=all is not permitted",
                            ));
                        }
                        had_cbi = true;
                    }
                    "command_bucket_id" => {
                        return Err(ParseError::invalid("command bucket id is not needed"))
                    }
                    "type" => return Err(ParseError::invalid("type is not needed")),
                    _ => return Err(ParseError::UnknownKeyword(name.to_owned())),
                }
            }
            if gm.group.group_id == u32::MAX {
                return Err(ParseError::invalid("must specify a group_id"));
            }
            if command == GroupCommand::InsertBucket && !had_cbi {
                return Err(ParseError::invalid("must specify a command bucket id"));
            }
            let mut rest = buckets_str;
            while let Some(r) = rest {
                let body = match r.find('=') {
                    Some(i) => &r[i + 1..],
                    None => return Err(ParseError::invalid("must specify bucket content")),
                };
                let (this, next) = match body.find("bucket=") {
                    Some(i) => (&body[..i], Some(&body[i..])),
                    None => (body, None),
                };
                gm.group
                    .buckets
                    .push(parse_bucket(this, gm.group.group_type, names)?);
                rest = next;
            }
            assign_bucket_ids(&mut gm.group.buckets)?;
            Ok(gm)
        }
    }
}

/// Parses an `add-group`/`mod-group` string (`group_id=N,type=T,...,bucket=...`). Buckets
/// without `bucket_id` are numbered as a switch numbers them: after the largest id given so far.
pub fn parse_group(s: &str, names: &NameMap) -> Result<Group> {
    let (head, buckets_str) = match s.find("bucket=") {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let mut g = Group {
        group_id: u32::MAX,
        group_type: GroupType::All,
        selection_method: String::new(),
        selection_method_param: 0,
        buckets: Vec::new(),
    };
    let mut had_type = false;
    for (name, value) in KeyValues::new(head) {
        match name {
            "group_id" => {
                g.group_id = if value == "all" {
                    GROUP_ALL
                } else {
                    str_to_u32(value)?
                };
                if g.group_id != GROUP_ALL && g.group_id > GROUP_MAX {
                    return Err(ParseError::invalid(format!(
                        "invalid group id {}",
                        g.group_id
                    )));
                }
            }
            "type" => {
                g.group_type = match value {
                    "all" => GroupType::All,
                    "select" => GroupType::Select,
                    "indirect" => GroupType::Indirect,
                    "ff" | "fast_failover" => GroupType::FastFailover,
                    _ => return Err(ParseError::invalid(format!("invalid group type {value}"))),
                };
                had_type = true;
            }
            "selection_method" => {
                if value.len() >= 16 {
                    return Err(ParseError::invalid(
                        "selection method is longer than 15 bytes long",
                    ));
                }
                g.selection_method = value.to_owned();
            }
            "selection_method_param" => {
                g.selection_method_param = match crate::value::parse_int_prefix(value, 8) {
                    Ok((v, "")) if !value.is_empty() => v as u64,
                    _ => {
                        return Err(ParseError::invalid(format!(
                            "invalid numeric format {value}"
                        )))
                    }
                };
            }
            "fields" => {
                return Err(ParseError::invalid(
                    "selection fields are not supported by xvs",
                ))
            }
            _ => return Err(ParseError::UnknownKeyword(name.to_owned())),
        }
    }
    if g.group_id == u32::MAX {
        return Err(ParseError::invalid("must specify a group_id"));
    }
    if !had_type {
        return Err(ParseError::invalid("must specify a type"));
    }
    if g.selection_method.is_empty() && g.selection_method_param != 0 {
        return Err(ParseError::invalid(
            "selection_method_param is only allowed with \"selection_method\"",
        ));
    }
    let mut rest = buckets_str;
    while let Some(r) = rest {
        let body = match r.find('=') {
            Some(i) => &r[i + 1..],
            None => return Err(ParseError::invalid("must specify bucket content")),
        };
        let (this, next) = match body.find("bucket=") {
            Some(i) => (&body[..i], Some(&body[i..])),
            None => (body, None),
        };
        let b = parse_bucket(this, g.group_type, names)?;
        if g.group_type != GroupType::Select && b.weight != 0 {
            return Err(ParseError::invalid(
                "Only select groups can have bucket weights.",
            ));
        }
        g.buckets.push(b);
        rest = next;
    }
    if g.group_type == GroupType::Indirect && g.buckets.len() > 1 {
        return Err(ParseError::invalid(
            "Indirect groups can have at most one bucket.",
        ));
    }
    assign_bucket_ids(&mut g.buckets)?;
    Ok(g)
}

/// Gives ids to buckets that have none, as `ovs-ofctl` does when it encodes an OpenFlow 1.5
/// group mod: at the first bucket without an id, the ids given to the buckets *after* it are
/// reserved, and each bucket without an id takes the lowest free id. (Ids given before that
/// bucket are not reserved, so they can collide; a switch rejects the duplicate, and so do we.)
fn assign_bucket_ids(buckets: &mut [Bucket]) -> Result<()> {
    let mut used: Option<std::collections::BTreeSet<u32>> = None;
    for i in 0..buckets.len() {
        if buckets[i].bucket_id != BUCKET_UNSET {
            continue;
        }
        let pool = used.get_or_insert_with(|| {
            buckets[i + 1..]
                .iter()
                .map(|b| b.bucket_id)
                .filter(|id| *id <= BUCKET_MAX)
                .collect()
        });
        let mut id = 0u32;
        while pool.contains(&id) {
            id += 1;
        }
        pool.insert(id);
        buckets[i].bucket_id = id;
    }
    let mut seen = std::collections::BTreeSet::new();
    for b in buckets.iter() {
        if !seen.insert(b.bucket_id) {
            return Err(ParseError::invalid(format!(
                "duplicate bucket id {} (OFPGMFC_BAD_BUCKET)",
                b.bucket_id
            )));
        }
    }
    Ok(())
}

/// Appends a group as one `dump-groups` entry (OpenFlow 1.5, without the leading space).
pub fn format_group(out: &mut String, g: &Group, names: &NameMap) {
    let _ = write!(out, "group_id={},type={}", g.group_id, g.group_type.name());
    if !g.selection_method.is_empty() {
        let _ = write!(out, ",selection_method={}", g.selection_method);
        if g.selection_method_param != 0 {
            let _ = write!(out, ",selection_method_param={}", g.selection_method_param);
        }
    }
    out.push(',');
    for b in &g.buckets {
        out.push_str("bucket=");
        match b.bucket_id {
            0xffff_fffd => out.push_str("bucket_id:first,"),
            0xffff_fffe => out.push_str("bucket_id:last,"),
            0xffff_ffff => out.push_str("bucket_id:all,"),
            id => {
                let _ = write!(out, "bucket_id:{id},");
            }
        }
        if b.weight != u16::from(g.group_type == GroupType::Select) {
            let _ = write!(out, "weight:{},", b.weight);
        }
        if b.watch_port != Port::NONE {
            out.push_str("watch_port:");
            format_port(out, b.watch_port, names);
            out.push(',');
        }
        if b.watch_group != u32::MAX {
            let _ = write!(out, "watch_group:{},", b.watch_group);
        }
        out.push_str("actions=");
        format_actions(out, &b.actions, names);
        out.push(',');
    }
    if out.ends_with(',') {
        out.pop();
    }
}

/// A group as its `dump-groups` line (with the leading space).
pub fn dump_group_line(g: &Group, names: &NameMap) -> String {
    let mut s = String::from(" ");
    format_group(&mut s, g, names);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_mods() {
        let n = NameMap::new();
        let d = parse_group_mod("", GroupCommand::Delete, &n).expect("delete all");
        assert_eq!(d.group.group_id, GROUP_ALL);
        let d = parse_group_mod("group_id=5", GroupCommand::Delete, &n).expect("delete one");
        assert_eq!(d.group.group_id, 5);
        let i = parse_group_mod(
            "group_id=5,command_bucket_id=last,bucket=bucket_id:7,actions=output:1",
            GroupCommand::InsertBucket,
            &n,
        )
        .expect("insert");
        assert_eq!(
            (i.command_bucket_id, i.group.buckets.len()),
            (BUCKET_LAST, 1)
        );
        assert!(parse_group_mod(
            "group_id=5,bucket=actions=output:1",
            GroupCommand::InsertBucket,
            &n
        )
        .is_err());
        let r = parse_group_mod(
            "group_id=5,command_bucket_id=3",
            GroupCommand::RemoveBucket,
            &n,
        )
        .expect("remove");
        assert_eq!(r.command_bucket_id, 3);
        assert!(parse_group_mod(
            "group_id=5,bucket=actions=drop",
            GroupCommand::RemoveBucket,
            &n
        )
        .is_err());
        let e = parse_group("group_id=1,type=select,bucket=bucket_id:0,actions=output:1,bucket=actions=output:2,bucket=bucket_id:1,actions=output:3,bucket=actions=output:4", &n);
        assert!(
            e.is_err(),
            "OVS gives the second bucket id 0 again; a switch rejects that"
        );
        assert!(parse_group("group_id=1,bucket=actions=output:1", &n).is_err());
        assert!(parse_group("type=all,bucket=actions=output:1", &n).is_err());
        assert!(parse_group("group_id=1,type=all,bucket=weight:5,actions=output:1", &n).is_err());
        assert!(parse_group("group_id=1,type=ff,bucket=actions=output:1", &n).is_err());
    }
}
