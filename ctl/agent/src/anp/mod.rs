//! Antrea-native policies (`crd.antrea.io/v1beta1`): Tiers, ClusterNetworkPolicies,
//! NetworkPolicies, ClusterGroups and Groups. Sans-IO, in layers:
//! - [`types`]: the objects; [`parse`]: YAML → objects with the apiserver's schema checks;
//!   [`admission`]: Antrea's mutating and validating webhooks (per object and across objects).
//! - [`resolve`]: appliedTo / peers / groups → Pods and address sets against the [`Model`].
//! - [`priority`]: Antrea's OpenFlow priority assignment with re-packing, persistent per table.
//! - [`flows`]: the AntreaPolicy*Rule / *DefaultRule / *Metric flows (conjunctions), appended
//!   to [`pipeline::desired`](crate::pipeline::desired).
//! - [`dns`], [`fqdn`]: DNS response parsing and the FQDN rules' learned addresses and
//!   interception flows.
//! - [`eval`]: a reference evaluator of the documented semantics, independent of the flows.

pub mod admission;
pub mod audit;
pub mod dns;
pub mod eval;
pub mod flows;
pub mod fqdn;
pub mod incr;
pub mod parse;
pub mod priority;
pub mod reject;
pub mod resolve;
mod sha1;
pub mod types;

pub use types::{AnpObject, AnpObjects};

use crate::model::{load_dir_keeping, ManifestError, Model, Object};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// [`load_dir_keeping`] followed by the cross-object admission against `admitted` (what was
/// admitted the last time, updated).
pub fn load_dir_admitted(
    dir: &Path,
    last_good: &mut BTreeMap<PathBuf, Vec<Object>>,
    admitted: &mut AnpObjects,
) -> std::io::Result<(Model, Vec<ManifestError>)> {
    let (mut model, mut errors) = load_dir_keeping(dir, last_good)?;
    errors.extend(admission::admit(&mut model, admitted));
    *admitted = model.anp.clone();
    Ok((model, errors))
}
