//! AF_XDP backend (in progress).
#![deny(unsafe_code)]
