//! The OpenFlow classifier and the datapath caches of xvs, both over [`FlowKey`].
//!
//! TODO(doc): filled in below.
#![forbid(unsafe_code)]

mod cache;
mod classifier;
mod error;
mod exact;
mod hash;
mod megaflow;
mod rule;
mod subtable;

pub use cache::{CacheConfig, CacheStats, DatapathCache};
pub use classifier::{Bundle, Classifier, ClassifierReader, LookupScratch, Snapshot};
pub use error::{ClassifierError, InsertError};
pub use exact::{ExactCache, Insertion};
pub use megaflow::{MegaflowCache, MegaflowConfig, MegaflowId, MegaflowRef, MegaflowStats};
pub use rule::{Conjunction, Match, Rule, RuleStats};
pub use xvs_packet::FlowKey;
