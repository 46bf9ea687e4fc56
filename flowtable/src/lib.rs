//! OpenFlow tables (in progress).
#![forbid(unsafe_code)]
