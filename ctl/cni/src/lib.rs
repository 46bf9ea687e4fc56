//! `xvs-cni`: the CNI 1.0 plugin that puts a Pod on xvsd.
//!
//! ADD walks these layers, each undone in reverse when a later one fails:
//! [`conf`] reads the runtime's environment and netconf; [`ipam`] takes an address from the
//! node's Pod CIDR (host-local style files under a flock); [`netlink`] creates the veth with its
//! Pod end in the sandbox namespace, addresses it and routes it via the gateway; [`xvsd`]
//! attaches the host end to the running xvsd over unixctl; the interface record
//! ([`xvs_agent::interfaces`]) tells the agent; [`result`] prints the CNI result.
//! [`plugin`] composes them for ADD, DEL and CHECK.
#![forbid(unsafe_code)]

pub mod conf;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod plugin;
pub mod result;
pub mod xvsd;
