//! Typed zero-copy views over header bytes, one module per protocol.
//!
//! Every view is a `Packet<T: AsRef<[u8]>>` wrapping a buffer that starts at its header. Byte
//! ranges live in a private `field` module. `Packet::new_checked` validates lengths and the
//! fields that bound other reads (header length, total length, TLV lengths) once; after it
//! succeeds every getter reads inside the buffer. Getters are panic-free anyway: they read through
//! range-checked helpers that yield zeros out of range, so even `new_unchecked` on garbage cannot
//! panic. Setters exist only for `T: AsMut<[u8]>`. Where a header is commonly built from values,
//! a `Repr` offers `parse` and `emit`.

/// Generates the view struct and the accessors every view shares.
macro_rules! view {
    ($(#[$m:meta])*) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Packet<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> Packet<T> {
            /// Wraps `buffer` without validating it. Getters never panic, but on a buffer that
            /// [`Packet::new_checked`] would refuse they may read zeros.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Gives the buffer back.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole buffer, starting at this header.
            #[inline]
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
            /// The whole buffer, writable.
            #[inline]
            pub fn as_bytes_mut(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
        }
    };
}

pub mod arp;
pub mod ethernet;
pub mod geneve;
pub mod icmpv4;
pub mod icmpv6;
pub mod igmp;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

/// Ethertype values used in this crate.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// Reverse ARP.
    pub const RARP: u16 = 0x8035;
    /// 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (S-tag, QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// Transparent Ethernet bridging (Geneve protocol type of an inner Ethernet frame).
    pub const TEB: u16 = 0x6558;
    /// Smallest value that is an ethertype rather than an 802.3 length.
    pub const MIN: u16 = 0x0600;
    /// What the flow key holds for an 802.3 frame without an LLC/SNAP ethertype (OVS
    /// `FLOW_DL_TYPE_NONE`).
    pub const NONE: u16 = 0x05ff;
}

/// IP protocol numbers (IPv4 protocol, IPv6 next header) used in this crate.
pub mod ip_proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ESP.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// A 48-bit MAC address as stored on the wire.
pub type MacAddr = [u8; 6];
