//! Wire layer of xvs: typed zero-copy views over packet bytes, checksums, and the flow key.
//!
//! Layers, bottom up:
//! - [`key`]: the flow key, a fixed array of 64-bit words with a named layout of every field the
//!   OpenFlow tables can match. Masks use the same layout, so matching is word-wise AND/compare.
//!
//! Nothing here allocates or panics on any input.
#![forbid(unsafe_code)]

pub mod key;

pub use key::{FlowKey, KeyField, KEY_WORDS};
