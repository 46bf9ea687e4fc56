//! xvs-agent library: Kubernetes manifests and a live API server's objects → Antrea-pipeline
//! flows and groups, diffed against what is installed, synced to xvsd as OpenFlow 1.5 bundles.
//! Everything but [`ofconn`] and [`apiwatch`] is sans-IO.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod apiwatch;
pub mod diff;
pub mod model;
pub mod ofconn;
pub mod pipeline;
pub mod sync;
