//! Error and drop-reason types of every stage.

/// Why a packet could not be encapsulated, or a template not built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncapError {
    /// The tunnel uses `remote_ip=flow` but the packet metadata carries no `tun_dst`.
    #[error("no tunnel destination (remote_ip=flow and tun_dst unset)")]
    NoDestination,
    /// Neither the metadata, the configuration nor the route gave a source address.
    #[error("no tunnel source address")]
    NoSource,
    /// The source and destination addresses are of different IP versions.
    #[error("tunnel source and destination are of different IP versions")]
    MixedFamilies,
    /// The key (VNI) does not fit in 24 bits.
    #[error("tunnel key does not fit in 24 bits")]
    KeyTooLarge,
    /// Geneve options are not a multiple of 4 bytes, exceed 252 bytes, are malformed TLVs, or
    /// were given for VXLAN.
    #[error("invalid Geneve options")]
    BadOptions,
    /// The configured UDP source-port range is empty.
    #[error("empty UDP source port range")]
    BadPortRange,
    /// There is not enough headroom before the frame for the outer headers.
    #[error("not enough headroom for the outer headers")]
    NoHeadroom,
    /// `start + len` lies outside the buffer, or the frame is shorter than an Ethernet header.
    #[error("frame range outside the buffer")]
    BadRange,
    /// The encapsulated packet would exceed 65535 bytes of IP.
    #[error("encapsulated packet too large")]
    TooLarge,
}

/// Why a received frame was not decapsulated: each variant is a drop reason for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecapError {
    /// Shorter than the outer Ethernet header.
    #[error("frame shorter than Ethernet")]
    ShortFrame,
    /// The outer ethertype is neither IPv4 nor IPv6.
    #[error("outer frame is not IP")]
    NotIp,
    /// The outer IP header is truncated or its length fields are inconsistent.
    #[error("bad outer IP header")]
    BadIp,
    /// The outer IPv4 header checksum is wrong.
    #[error("bad outer IPv4 checksum")]
    BadIpChecksum,
    /// The outer IPv4 packet is a fragment (reassembly is not done here).
    #[error("outer packet is a fragment")]
    Fragment,
    /// The outer IP payload is not UDP (IPv6 extension headers included).
    #[error("outer packet is not UDP")]
    NotUdp,
    /// The UDP destination port is not this tunnel's port.
    #[error("UDP destination port is not the tunnel port")]
    WrongPort,
    /// The outer destination address is not this tunnel's local address.
    #[error("outer destination is not the local tunnel address")]
    WrongDestination,
    /// The UDP length field disagrees with the IP payload.
    #[error("bad UDP length")]
    BadUdpLength,
    /// The UDP checksum is present and wrong, or zero over IPv6 when not allowed.
    #[error("bad UDP checksum")]
    BadUdpChecksum,
    /// VXLAN: the flags word is not exactly the I flag, or the reserved byte after the VNI
    /// is not zero (the checks OVS and Linux make).
    #[error("bad VXLAN header")]
    BadVxlan,
    /// Geneve: the version is not 0.
    #[error("bad Geneve version")]
    BadGeneveVersion,
    /// Geneve: the options run past the header or the packet.
    #[error("bad Geneve options")]
    BadGeneveOptions,
    /// Geneve: the protocol is not transparent Ethernet bridging (0x6558).
    #[error("Geneve protocol is not Ethernet")]
    NotEthernet,
    /// The inner frame is shorter than an Ethernet header.
    #[error("inner frame too short")]
    ShortInner,
    /// Geneve: an option mapped to a `tun_metadata` field came with another length (OVS
    /// refuses such a packet too).
    #[error("Geneve option length differs from its TLV mapping")]
    OptionLength,
    /// Geneve: an option with the critical bit that no TLV mapping knows.
    #[error("unknown critical Geneve option")]
    UnknownCriticalOption,
}

impl DecapError {
    /// Every reason, in counter order ([`index`](Self::index)).
    pub const ALL: [DecapError; 17] = [
        Self::ShortFrame,
        Self::NotIp,
        Self::BadIp,
        Self::BadIpChecksum,
        Self::Fragment,
        Self::NotUdp,
        Self::WrongPort,
        Self::WrongDestination,
        Self::BadUdpLength,
        Self::BadUdpChecksum,
        Self::BadVxlan,
        Self::BadGeneveVersion,
        Self::BadGeneveOptions,
        Self::NotEthernet,
        Self::ShortInner,
        Self::OptionLength,
        Self::UnknownCriticalOption,
    ];

    /// A dense index into per-reason counters (the position in [`ALL`](Self::ALL)).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name, for drop counters.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ShortFrame => "short_frame",
            Self::NotIp => "not_ip",
            Self::BadIp => "bad_ip",
            Self::BadIpChecksum => "bad_ip_csum",
            Self::Fragment => "fragment",
            Self::NotUdp => "not_udp",
            Self::WrongPort => "wrong_port",
            Self::WrongDestination => "wrong_dst",
            Self::BadUdpLength => "bad_udp_len",
            Self::BadUdpChecksum => "bad_udp_csum",
            Self::BadVxlan => "bad_vxlan",
            Self::BadGeneveVersion => "bad_geneve_version",
            Self::BadGeneveOptions => "bad_geneve_options",
            Self::NotEthernet => "geneve_not_ethernet",
            Self::ShortInner => "short_inner",
            Self::OptionLength => "geneve_option_len",
            Self::UnknownCriticalOption => "geneve_unknown_critical",
        }
    }
}

/// Errors of the route and neighbour tables and of the generated-packet builders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TableError {
    /// The prefix length exceeds 32 (IPv4) or 128 (IPv6).
    #[error("prefix length too long")]
    BadPrefix,
    /// A gateway or source address is of another IP version than the prefix.
    #[error("address family mismatch")]
    FamilyMismatch,
    /// The table holds its configured maximum of entries.
    #[error("table full")]
    Full,
    /// The output buffer is too small for the packet to build.
    #[error("buffer too small")]
    Truncated,
    /// The packet to answer is not one this builder answers (not IP, too short, an ICMP
    /// error itself, or a non-first fragment).
    #[error("packet cannot be answered")]
    NotAnswerable,
}
