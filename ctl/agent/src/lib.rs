//! xvs-agent library: Kubernetes manifests → Antrea-pipeline flows and groups, diffed against
//! what is installed, synced to xvsd as OpenFlow 1.5 bundles. Everything but [`ofconn`] is
//! sans-IO.
#![forbid(unsafe_code)]

pub mod anp;
pub mod diff;
pub mod model;
pub mod ofconn;
pub mod pipeline;
pub mod sync;
