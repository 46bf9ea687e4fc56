//! Desired vs installed → the minimal change set, and its OpenFlow messages (sans-IO).

use crate::pipeline::{Desired, FlowBody, FlowKey};
use xvs_flowtable::flow::{FlowMod, FlowModCommand};
use xvs_flowtable::group::{parse_group_mod, GroupCommand, GroupMod};
use xvs_flowtable::parse::parse_flow_mod;
use xvs_flowtable::NameMap;

/// A change set: what to send to go from installed to desired.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// Groups to add (id, text).
    pub group_add: Vec<(u32, String)>,
    /// Groups to modify (id, text).
    pub group_mod: Vec<(u32, String)>,
    /// Groups to delete.
    pub group_del: Vec<u32>,
    /// Flows to add.
    pub flow_add: Vec<(FlowKey, FlowBody)>,
    /// Flows whose actions change (MODIFY_STRICT).
    pub flow_mod: Vec<(FlowKey, FlowBody)>,
    /// Flows to delete (DELETE_STRICT).
    pub flow_del: Vec<FlowKey>,
}

impl ChangeSet {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.group_add.is_empty()
            && self.group_mod.is_empty()
            && self.group_del.is_empty()
            && self.flow_add.is_empty()
            && self.flow_mod.is_empty()
            && self.flow_del.is_empty()
    }
    /// Number of changes.
    pub fn len(&self) -> usize {
        self.group_add.len()
            + self.group_mod.len()
            + self.group_del.len()
            + self.flow_add.len()
            + self.flow_mod.len()
            + self.flow_del.len()
    }
}

/// The changes from `installed` to `desired`.
pub fn diff(installed: &Desired, desired: &Desired) -> ChangeSet {
    let mut c = ChangeSet::default();
    for (id, g) in &desired.groups {
        match installed.groups.get(id) {
            None => c.group_add.push((*id, g.clone())),
            Some(old) if old != g => c.group_mod.push((*id, g.clone())),
            _ => {}
        }
    }
    c.group_del = installed
        .groups
        .keys()
        .filter(|id| !desired.groups.contains_key(id))
        .copied()
        .collect();
    for (k, b) in &desired.flows {
        match installed.flows.get(k) {
            None => c.flow_add.push((k.clone(), b.clone())),
            Some(old) if old != b => c.flow_mod.push((k.clone(), b.clone())),
            _ => {}
        }
    }
    c.flow_del = installed
        .flows
        .keys()
        .filter(|k| !desired.flows.contains_key(k))
        .cloned()
        .collect();
    c
}

/// A message of a change set, in the order it must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mod {
    /// GROUP_MOD.
    Group(GroupMod),
    /// FLOW_MOD.
    Flow(Box<FlowMod>),
}

/// Error turning a change into a message (a generated flow the parser rejects: a bug).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {what:?}: {err}")]
pub struct EncodeError {
    /// The text.
    pub what: String,
    /// The parser's complaint.
    pub err: String,
}

fn flow_mod(
    key: &FlowKey,
    body: Option<&FlowBody>,
    cmd: FlowModCommand,
    round: u16,
) -> Result<FlowMod, EncodeError> {
    let names = NameMap::new();
    let text = match (cmd, body) {
        (FlowModCommand::DeleteStrict, _) | (_, None) => {
            let m = if key.matches.is_empty() {
                String::new()
            } else {
                format!(",{}", key.matches)
            };
            format!("table={},priority={}{m}", key.table, key.priority)
        }
        (_, Some(b)) => Desired::flow_line(key, b, round),
    };
    parse_flow_mod(&text, cmd, &names).map_err(|e| EncodeError {
        what: text.clone(),
        err: e.to_string(),
    })
}

/// The messages of `c`: groups added/modified first (flows reference them), then flows
/// (deletes, modifies, adds), then group deletes (after the flows that used them).
pub fn messages(c: &ChangeSet, round: u16) -> Result<Vec<Mod>, EncodeError> {
    let names = NameMap::new();
    let mut out = Vec::new();
    let group = |id: u32, text: &str, cmd: GroupCommand| {
        let t = if text.is_empty() {
            format!("group_id={id}")
        } else {
            format!("group_id={id},{text}")
        };
        parse_group_mod(&t, cmd, &names).map_err(|e| EncodeError {
            what: t.clone(),
            err: e.to_string(),
        })
    };
    for (id, g) in &c.group_add {
        out.push(Mod::Group(group(*id, g, GroupCommand::Add)?));
    }
    for (id, g) in &c.group_mod {
        out.push(Mod::Group(group(*id, g, GroupCommand::Modify)?));
    }
    for k in &c.flow_del {
        out.push(Mod::Flow(Box::new(flow_mod(
            k,
            None,
            FlowModCommand::DeleteStrict,
            round,
        )?)));
    }
    for (k, b) in &c.flow_mod {
        out.push(Mod::Flow(Box::new(flow_mod(
            k,
            Some(b),
            FlowModCommand::ModifyStrict,
            round,
        )?)));
    }
    for (k, b) in &c.flow_add {
        out.push(Mod::Flow(Box::new(flow_mod(
            k,
            Some(b),
            FlowModCommand::Add,
            round,
        )?)));
    }
    for id in &c.group_del {
        out.push(Mod::Group(group(*id, "", GroupCommand::Delete)?));
    }
    Ok(out)
}
