//! The agent's sync state (sans-IO): what is installed, the ids, the round; plans the next
//! change set.

use crate::diff::{diff, messages, ChangeSet, EncodeError, Mod};
use crate::model::Model;
use crate::pipeline::{desired, Desired, Ids};

/// What the agent believes is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// Installed flows and groups (as last committed).
    pub installed: Desired,
    /// Stable ids.
    pub ids: Ids,
    /// The current round (cookie bits 63..48).
    pub round: u16,
}

/// A planned change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The state after it.
    pub target: Desired,
    /// The changes.
    pub changes: ChangeSet,
    /// Its messages, in order.
    pub mods: Vec<Mod>,
}

impl SyncState {
    /// A fresh state for `round`, nothing installed.
    pub fn new(round: u16) -> Self {
        SyncState {
            installed: Desired::default(),
            ids: Ids::default(),
            round,
        }
    }
    /// Plans the change from what is installed to what `model` wants.
    pub fn plan(&mut self, model: &Model) -> Result<Plan, EncodeError> {
        let target = desired(model, &mut self.ids);
        let changes = diff(&self.installed, &target);
        let mods = messages(&changes, self.round)?;
        Ok(Plan {
            target,
            changes,
            mods,
        })
    }
    /// Records a committed plan.
    pub fn committed(&mut self, plan: Plan) {
        self.installed = plan.target;
    }
}
