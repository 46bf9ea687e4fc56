//! xvs-agent library: Kubernetes manifests and a live API server's objects → Antrea-pipeline
//! flows and groups, diffed against what is installed, synced to xvsd as OpenFlow 1.5 bundles,
//! and queried per object ([`query`]). Everything but [`ofconn`], [`apiwatch`], the socket
//! ends of [`query`], the file reading of [`manifest_dir`] and [`model::load_dir`], and the
//! np.log file of [`np_log`] is sans-IO.
#![forbid(unsafe_code)]

pub mod anp;
pub mod apiserver;
pub mod apiwatch;
pub mod diff;
pub mod interfaces;
pub mod manifest_dir;
pub mod model;
pub mod np_log;
pub mod ofconn;
pub mod pipeline;
pub mod query;
pub mod sync;
