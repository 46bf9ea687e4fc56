//! Packet engine (in progress).
#![forbid(unsafe_code)]
