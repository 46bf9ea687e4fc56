//! The tunnel-option (TLV) map: which Geneve option (class, type, length) each
//! `tun_metadata<n>` field stands for, as OVS's `NXT_TLV_TABLE_MOD` configures it
//! (`ovs-ofctl add-tlv-map br0 "{class=0xffff,type=0,len=4}->tun_metadata0"`).
//!
//! The map is part of the pipeline snapshot, so a change publishes a new version and every
//! cached megaflow built with the old map is gone before the next batch.
//!
//! - Decapsulation ([`TlvMap::read_options`]): a mapped option fills its `tun_metadata<n>` word
//!   and present bit; a mapped option of another length, or an unmapped *critical* option
//!   (type bit 0x80), refuses the packet; other unmapped options are ignored. These are the
//!   rules of OVS's `tun_metadata_from_geneve_udpif`.
//! - Encapsulation ([`TlvMap::write_options`]): every present, mapped field becomes an option,
//!   in field order (OVS `tun_metadata_to_geneve_header`).
//!
//! xvs keeps [`N_TUN_METADATA`] fields of at most [`TUN_METADATA_MAX_LEN`] bytes in the flow
//! key (OVS: 64 fields over 256 bytes); the reply to a table request says so
//! (`max_option_space`, `max_fields`), and mappings beyond it are refused with OVS's errors.

use xvs_packet::key::layout::{self, N_TUN_METADATA, TUN_METADATA_MAX_LEN};
use xvs_packet::FlowKey;

/// One mapping: option (class, type, length in bytes) <-> `tun_metadata<index>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlvMapping {
    /// Option class.
    pub class: u16,
    /// Option type (bit 0x80 = critical).
    pub kind: u8,
    /// Option data length in bytes (a multiple of 4).
    pub len: u8,
    /// The `tun_metadata<index>` field.
    pub index: u16,
}

/// `NXT_TLV_TABLE_MOD` commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlvCommand {
    /// Add mappings (fails if a field or an option is already mapped).
    Add,
    /// Delete the mappings of the given field indices (others ignored).
    Delete,
    /// Remove every mapping.
    Clear,
}

/// Why a TLV table mod is refused (OVS's `NXTTMFC_*` errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// The option length is not a multiple of 4 or above 124 (`NXTTMFC_BAD_OPT_LEN`).
    #[error("bad option length {0}")]
    BadOptLen(u8),
    /// The field index is beyond the fields xvs supports (`NXTTMFC_BAD_FIELD_IDX`).
    #[error("tun_metadata{0} is not supported (xvs has tun_metadata0..{max})", max = N_TUN_METADATA - 1)]
    BadFieldIdx(u16),
    /// The option is longer than a field holds (`NXTTMFC_TABLE_FULL`).
    #[error("option length {0} exceeds the {max} bytes a field holds", max = TUN_METADATA_MAX_LEN)]
    TableFull(u8),
    /// The field is already mapped (`NXTTMFC_ALREADY_MAPPED`).
    #[error("tun_metadata{0} is already mapped")]
    AlreadyMapped(u16),
    /// The option is already mapped to another field (`NXTTMFC_DUP_ENTRY`).
    #[error("option class {0:#x} type {1:#x} is already mapped")]
    DupEntry(u16, u8),
}

/// Why received Geneve options are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The options do not tile the option area.
    #[error("malformed options")]
    Malformed,
    /// A mapped option came with a length other than its mapping's.
    #[error("mapped option with a different length")]
    LengthMismatch,
    /// An unmapped option had the critical bit.
    #[error("unknown critical option")]
    UnknownCritical,
}

/// Encoded Geneve options for one outer header: at most one 4-byte option header plus
/// [`TUN_METADATA_MAX_LEN`] bytes per field. Plain data, so it can live in a cached action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GeneveOptions {
    bytes: [u8; Self::CAPACITY],
    len: u8,
}

impl Default for GeneveOptions {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl GeneveOptions {
    /// Most option bytes xvs emits.
    pub const CAPACITY: usize = N_TUN_METADATA * (4 + TUN_METADATA_MAX_LEN);
    /// No options.
    pub const EMPTY: Self = Self {
        bytes: [0; Self::CAPACITY],
        len: 0,
    };

    /// The encoded options.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(Self::CAPACITY)]
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one option; false when it does not fit or `data` is not a multiple of 4.
    pub fn push(&mut self, class: u16, kind: u8, data: &[u8]) -> bool {
        let at = usize::from(self.len);
        let n = 4 + data.len();
        if data.len() % 4 != 0 || data.len() > 124 || at + n > Self::CAPACITY {
            return false;
        }
        self.bytes[at..at + 2].copy_from_slice(&class.to_be_bytes());
        self.bytes[at + 2] = kind;
        self.bytes[at + 3] = (data.len() / 4) as u8;
        self.bytes[at + 4..at + n].copy_from_slice(data);
        self.len = (at + n) as u8;
        true
    }
}

/// The map, indexed by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlvMap {
    entries: [Option<(u16, u8, u8)>; N_TUN_METADATA],
}

impl TlvMap {
    /// `max_option_space` of a table reply: bytes of option data the key holds.
    pub const MAX_OPTION_SPACE: u32 = (N_TUN_METADATA * TUN_METADATA_MAX_LEN) as u32;
    /// `max_fields` of a table reply.
    pub const MAX_FIELDS: u16 = N_TUN_METADATA as u16;

    /// True when nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(Option::is_none)
    }

    /// The mapping of `tun_metadata<index>`: (class, type, length).
    pub fn get(&self, index: usize) -> Option<(u16, u8, u8)> {
        self.entries.get(index).copied().flatten()
    }

    /// The field and length an option (class, type) is mapped to.
    #[inline]
    pub fn lookup(&self, class: u16, kind: u8) -> Option<(usize, u8)> {
        self.entries.iter().enumerate().find_map(|(i, e)| match e {
            Some((c, t, l)) if *c == class && *t == kind => Some((i, *l)),
            _ => None,
        })
    }

    /// Every mapping, by field index.
    pub fn mappings(&self) -> Vec<TlvMapping> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.map(|(class, kind, len)| TlvMapping {
                    class,
                    kind,
                    len,
                    index: i as u16,
                })
            })
            .collect()
    }

    /// The map after `command` with `maps`; all or nothing, as OVS.
    pub fn apply(&self, command: TlvCommand, maps: &[TlvMapping]) -> Result<TlvMap, TlvError> {
        let mut next = *self;
        match command {
            TlvCommand::Clear => next = TlvMap::default(),
            TlvCommand::Delete => {
                for m in maps {
                    if let Some(e) = next.entries.get_mut(usize::from(m.index)) {
                        *e = None;
                    }
                }
            }
            TlvCommand::Add => {
                for m in maps {
                    if m.len % 4 != 0 || m.len > 124 {
                        return Err(TlvError::BadOptLen(m.len));
                    }
                    let Some(slot) = next.entries.get(usize::from(m.index)) else {
                        return Err(TlvError::BadFieldIdx(m.index));
                    };
                    if usize::from(m.len) > TUN_METADATA_MAX_LEN {
                        return Err(TlvError::TableFull(m.len));
                    }
                    if slot.is_some() {
                        return Err(TlvError::AlreadyMapped(m.index));
                    }
                    if next.lookup(m.class, m.kind).is_some() {
                        return Err(TlvError::DupEntry(m.class, m.kind));
                    }
                    next.entries[usize::from(m.index)] = Some((m.class, m.kind, m.len));
                }
            }
        }
        Ok(next)
    }

    /// Fills the `tun_metadata` words and present bits of `key` from received Geneve options
    /// (the bytes after the 8-byte Geneve header). On error the words may be partly written;
    /// the packet is dropped anyway.
    pub fn read_options(&self, opts: &[u8], key: &mut FlowKey) -> Result<(), OptionError> {
        let mut present = 0u64;
        let mut rest = opts;
        while !rest.is_empty() {
            let (Some(hdr), Some(&l)) = (rest.get(..4), rest.get(3)) else {
                return Err(OptionError::Malformed);
            };
            let data_len = usize::from(l & 0x1f) * 4;
            let data = rest.get(4..4 + data_len).ok_or(OptionError::Malformed)?;
            let class = u16::from_be_bytes([hdr[0], hdr[1]]);
            let kind = hdr[2];
            match self.lookup(class, kind) {
                Some((i, len)) if usize::from(len) == data_len => {
                    let mut v = 0u64;
                    for &b in data {
                        v = (v << 8) | u64::from(b);
                    }
                    key.set(layout::tun_metadata(i), v);
                    present |= 1 << i;
                }
                Some(_) => return Err(OptionError::LengthMismatch),
                None if kind & 0x80 != 0 => return Err(OptionError::UnknownCritical),
                None => {}
            }
            rest = &rest[4 + data_len..];
        }
        for i in 0..N_TUN_METADATA {
            if present & (1 << i) == 0 {
                key.set(layout::tun_metadata(i), 0);
            }
        }
        key.set(layout::TUN_METADATA_PRESENT, present);
        Ok(())
    }

    /// Clears the option words of `key` (a frame without Geneve options).
    pub fn clear_options(key: &mut FlowKey) {
        for i in 0..N_TUN_METADATA {
            key.set(layout::tun_metadata(i), 0);
        }
        key.set(layout::TUN_METADATA_PRESENT, 0);
    }

    /// The options an encapsulation of `key` carries: each present, mapped field, in field
    /// order, its value truncated to the mapped length (big-endian).
    pub fn write_options(&self, key: &FlowKey) -> GeneveOptions {
        let mut out = GeneveOptions::EMPTY;
        let present = key.get(layout::TUN_METADATA_PRESENT);
        for (i, e) in self.entries.iter().enumerate() {
            let Some((class, kind, len)) = *e else {
                continue;
            };
            if present & (1 << i) == 0 {
                continue;
            }
            let v = key.get(layout::tun_metadata(i)).to_be_bytes();
            let len = usize::from(len).min(TUN_METADATA_MAX_LEN);
            out.push(class, kind, &v[TUN_METADATA_MAX_LEN - len..]);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(class: u16, kind: u8, len: u8, index: u16) -> TlvMapping {
        TlvMapping {
            class,
            kind,
            len,
            index,
        }
    }

    #[test]
    fn add_delete_clear_like_ovs() {
        let m = TlvMap::default()
            .apply(
                TlvCommand::Add,
                &[map(0xffff, 0, 4, 0), map(0x0102, 0x80, 8, 3)],
            )
            .unwrap();
        assert_eq!(m.lookup(0xffff, 0), Some((0, 4)));
        assert_eq!(m.lookup(0x0102, 0x80), Some((3, 8)));
        assert_eq!(m.mappings().len(), 2);
        assert_eq!(
            m.apply(TlvCommand::Add, &[map(1, 1, 4, 0)]),
            Err(TlvError::AlreadyMapped(0))
        );
        assert_eq!(
            m.apply(TlvCommand::Add, &[map(0xffff, 0, 4, 1)]),
            Err(TlvError::DupEntry(0xffff, 0))
        );
        assert_eq!(
            m.apply(TlvCommand::Add, &[map(1, 1, 6, 1)]),
            Err(TlvError::BadOptLen(6))
        );
        assert_eq!(
            m.apply(TlvCommand::Add, &[map(1, 1, 128, 1)]),
            Err(TlvError::BadOptLen(128))
        );
        assert_eq!(
            m.apply(TlvCommand::Add, &[map(1, 1, 12, 1)]),
            Err(TlvError::TableFull(12))
        );
        assert_eq!(
            m.apply(TlvCommand::Add, &[map(1, 1, 4, 4)]),
            Err(TlvError::BadFieldIdx(4))
        );
        // All or nothing: a bad second mapping leaves the first one out too.
        assert!(m
            .apply(TlvCommand::Add, &[map(1, 1, 4, 1), map(1, 2, 5, 2)])
            .is_err());
        let d = m.apply(TlvCommand::Delete, &[map(0, 0, 0, 3)]).unwrap();
        assert_eq!(d.lookup(0x0102, 0x80), None);
        assert_eq!(d.lookup(0xffff, 0), Some((0, 4)));
        assert!(m.apply(TlvCommand::Clear, &[]).unwrap().is_empty());
    }

    #[test]
    fn options_round_trip_through_the_key() {
        let m = TlvMap::default()
            .apply(
                TlvCommand::Add,
                &[map(0xffff, 0, 4, 0), map(0x0102, 0x80, 8, 2)],
            )
            .unwrap();
        let mut opts = GeneveOptions::EMPTY;
        assert!(opts.push(0xffff, 0, &[0, 0, 0x12, 0x34]));
        assert!(opts.push(0x0200, 0x01, &[9; 12])); // unmapped, not critical: ignored
        assert!(opts.push(0x0102, 0x80, &[1, 2, 3, 4, 5, 6, 7, 8]));
        let mut key = FlowKey::ZERO;
        key.set(layout::tun_metadata(1), 77); // stale value from an earlier packet
        m.read_options(opts.as_bytes(), &mut key).unwrap();
        assert_eq!(key.get(layout::tun_metadata(0)), 0x1234);
        assert_eq!(key.get(layout::tun_metadata(1)), 0);
        assert_eq!(key.get(layout::tun_metadata(2)), 0x0102_0304_0506_0708);
        assert_eq!(key.get(layout::TUN_METADATA_PRESENT), 0b101);
        let out = m.write_options(&key);
        let mut expect = GeneveOptions::EMPTY;
        expect.push(0xffff, 0, &[0, 0, 0x12, 0x34]);
        expect.push(0x0102, 0x80, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(out, expect);
    }

    #[test]
    fn bad_options_are_refused() {
        let m = TlvMap::default()
            .apply(TlvCommand::Add, &[map(0xffff, 0, 4, 0)])
            .unwrap();
        let mut key = FlowKey::ZERO;
        let mut wrong_len = GeneveOptions::EMPTY;
        wrong_len.push(0xffff, 0, &[0; 8]);
        assert_eq!(
            m.read_options(wrong_len.as_bytes(), &mut key),
            Err(OptionError::LengthMismatch)
        );
        let mut critical = GeneveOptions::EMPTY;
        critical.push(0x0001, 0x81, &[0; 4]);
        assert_eq!(
            m.read_options(critical.as_bytes(), &mut key),
            Err(OptionError::UnknownCritical)
        );
        // Length field running past the end, and a truncated option header.
        assert_eq!(
            m.read_options(&[0xff, 0xff, 0, 2, 0, 0, 0, 0], &mut key),
            Err(OptionError::Malformed)
        );
        assert_eq!(
            m.read_options(&[0xff, 0xff], &mut key),
            Err(OptionError::Malformed)
        );
        for n in 0..64 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = m.read_options(&bytes, &mut key);
        }
    }
}
