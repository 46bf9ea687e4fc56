//! Wire layer of xvs: typed zero-copy views over packet bytes, checksums, the flow key and its
//! extraction, and small builders.
//!
//! Layers, bottom up:
//! - [`wire`]: one module per header. Each has a `Packet<T: AsRef<[u8]>>` view whose
//!   `new_checked` validates the buffer once; getters read big-endian fields at fixed offsets
//!   and never panic; setters exist for writable buffers; a `Repr` parses and emits where headers
//!   are built from values.
//!   - L2: [`wire::ethernet`], [`wire::vlan`] (802.1Q and the 802.1ad outer tag), [`wire::arp`].
//!   - L3: [`wire::ipv4`] (options, fragments), [`wire::ipv6`] (the extension-header walk:
//!     hop-by-hop, routing, fragment, destination options, AH).
//!   - L4: [`wire::tcp`], [`wire::udp`], [`wire::sctp`], [`wire::icmpv4`], [`wire::icmpv6`]
//!     (neighbour discovery with its link-layer address options), [`wire::igmp`] (v1/v2/v3).
//!   - Tunnels: [`wire::vxlan`] (RFC 7348) and [`wire::geneve`] (RFC 8926, TLV options walked
//!     in place).
//! - [`checksum`]: the Internet checksum summed 8 bytes at a time, IPv4/IPv6 pseudo-headers, and
//!   RFC 1624 incremental updates for NAT and TTL rewrites.
//! - [`key`]: the flow key, a fixed array of 64-bit words with a named layout of every field the
//!   OpenFlow tables can match. Masks use the same layout, so matching is word-wise AND/compare.
//! - [`extract()`]: one pass from a frame to a [`FlowKey`] with Open vSwitch's `flow_extract`
//!   semantics, returning the L3/L4 offsets ([`ExtractInfo`]) so later stages need not re-parse.
//! - [`build`]: allocation-free frame builders (UDP, TCP, ICMP echo, ARP, ND, VLAN push, VXLAN
//!   and Geneve encapsulation) with valid checksums, for tests, generators and generated
//!   replies.
//!
//! Nothing here allocates, uses `unsafe`, or panics on any input.
//!
//! Testing: unit tests per module; `tests/fixtures.rs` checks extraction and the views against
//! packets made by scapy (`tests/fixtures/gen.py` writes the committed `.bin` files and the
//! expected keys); `tests/etherparse_crosscheck.rs` compares extraction with etherparse on random
//! packets; `fuzz/` holds a cargo-fuzz target (`cargo +nightly fuzz run extract` from
//! `dataplane/packet/fuzz`) seeded with the fixtures; `benches/extract.rs` times extraction.
#![forbid(unsafe_code)]

mod bytes;

pub mod build;
pub mod checksum;
pub mod error;
pub mod extract;
pub mod key;
pub mod wire;

pub use error::{Error, Result};
pub use extract::{extract, extract_into, ExtractInfo, Layer, Status};
pub use key::{FlowKey, KeyField, KEY_WORDS};
