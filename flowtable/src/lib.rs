//! OpenFlow tables for xvs: the flow model and the `ovs-ofctl` text syntax.
//!
//! Layers, bottom up:
//! - [`field`]: the registry of match/set fields (names, widths, key locations, prerequisites,
//!   NXM/OXM code points, text forms), and subfields such as `NXM_NX_REG0[0..3]`.
//! - [`flow`]: [`flow::Match`] (a value [`FlowKey`](xvs_packet::FlowKey) and a mask key, so a
//!   tuple-space classifier consumes it directly), [`flow::Flow`] and flow mods.
//! - [`action`]: actions and instructions (output, set_field, move, ct, learn, ...).
//! - [`group`] and [`meter`]: group and meter mods.
//! - [`parse`] and [`print`]: the `ovs-ofctl` text syntax in both directions; the printer produces
//!   exactly what Open vSwitch 3.1's `ovs-ofctl -O OpenFlow15 dump-flows` prints.
//! - [`pipeline`] and [`translate`] (with [`datapath`] and [`recirc`]): the versioned tables, and a
//!   packet key through them into datapath actions, a megaflow mask, and the frozen states of
//!   `ct(table=T)` recirculation; [`l2`] (NORMAL's MAC table and the bridge's ports), [`metering`]
//!   (meters' rate limiters), [`stats`] (crediting cached hits to rules, groups and MACs).
//!
//! Nothing here panics on any input; parse errors use `ovs-ofctl`'s wording.
#![forbid(unsafe_code)]

pub mod action;
pub mod datapath;
pub mod error;
pub mod field;
pub mod flow;
pub mod group;
pub mod l2;
pub mod meter;
pub mod metering;
pub mod names;
pub mod parse;
pub mod pipeline;
pub mod print;
pub mod recirc;
pub mod stats;
pub mod tlv;
pub mod translate;
mod value;

pub use action::Action;
pub use error::ParseError;
pub use field::{FieldId, Subfield};
pub use flow::{Flow, FlowMod, Match};
pub use names::{NameMap, Port};
