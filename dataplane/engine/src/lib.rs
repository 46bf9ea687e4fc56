//! The xvs packet engine: one poll-mode worker per core, each owning its frame pool, its ports'
//! queues and its counters.
//!
//! A worker iteration:
//! 1. for every port it polls, receive a burst (up to [`BATCH`] frames) into the worker's pool;
//! 2. decide each packet's output port (the [`Forwarding`] stage) and append it to that port's
//!    pending-transmit batch; a full batch is pushed to the port at once. In OpenFlow mode a
//!    `ct` action runs the packet through the shared connection tracker, and a `recirc` queues
//!    it (or a copy) for another pass through the caches, at most [`MAX_RECIRC_DEPTH`] times;
//! 3. push every non-empty pending batch, free what a port refused (counted as a drop by
//!    reason), and let every port reclaim finished frames and refill its receive ring;
//! 4. account the iteration as busy or idle and, periodically, publish counters.
//!
//! Nothing in the loop allocates, locks or logs. The control side sees the worker only through
//! [`WorkerShared`]: a stop flag and counters the worker publishes with relaxed atomic stores.
#![forbid(unsafe_code)]

pub mod capture;
mod counters;
mod ct;
pub mod handoff;
pub mod inject;
pub mod packet_in;
pub mod pipeline;
pub mod portctl;
mod rewrite;
pub mod tunnel;
mod worker;

pub use counters::{
    DropReason, FlowDump, FrameGauges, MegaflowDump, PortCounters, PortEntry, WorkerCounters,
    WorkerShared, WorkerSnapshot, DECAP_REASONS, PORT_DOWN, PORT_NO_FWD, PORT_NO_RECV,
};
pub use pipeline::{
    CachedFlow, ExecAction, OpenFlowStage, Translator, Verdict, MISS_BUDGET, MISS_BUDGET_NS,
};
pub use worker::{
    EnginePort, Forwarding, PortRemoval, Worker, WorkerConfig, WorkerError, BATCH, MAX_RECIRC_DEPTH,
};
pub use xvs_classifier::CacheConfig;
