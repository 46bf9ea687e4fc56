//! xvsctl: the control commands of `xvsd` for people without the OVS tools.
//!
//! It speaks the same JSON-RPC as `ovs-appctl -t <run_dir>/xvsd.ctl` ([`rpc`]); most verbs
//! map one-to-one to a unixctl command (`show` = `dpif/show`, `dump-flows` =
//! `dpctl/dump-flows`, ...). Two are its own: `capture` ([`capture`] turns the frames xvsd
//! mirrors from a port into a standard pcap file, since tcpdump cannot see AF_XDP traffic) and
//! `stats` ([`stats`]: a live per-port, per-worker table). `get` asks xvs-agent's query
//! socket instead (through `xvs-agent-query`, the agent's protocol without its dependencies).
#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod pcap;
pub mod rpc;
pub mod stats;
