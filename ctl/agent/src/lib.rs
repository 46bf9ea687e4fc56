//! xvs-agent library: Kubernetes manifests and a live API server's objects → Antrea-pipeline
//! flows and groups, diffed against what is installed, synced to xvsd as OpenFlow 1.5 bundles,
//! and queried per object ([`query`]). Everything but [`ofconn`], [`apiwatch`] and the socket
//! ends of [`query`] is sans-IO.
#![forbid(unsafe_code)]

pub mod anp;
pub mod apiserver;
pub mod apiwatch;
pub mod diff;
pub mod interfaces;
pub mod manifest_dir;
pub mod model;
pub mod ofconn;
pub mod pipeline;
pub mod query;
pub mod sync;
