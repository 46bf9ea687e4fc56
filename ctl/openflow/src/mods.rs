//! GROUP_MOD and METER_MOD (OpenFlow 1.5 layouts), mapped to and from xvs-flowtable's
//! [`GroupMod`] and [`Meter`].

use crate::actions::{pull_actions, put_actions};
use crate::error::OfpError;
use crate::wire::{pad8, patch_u16, put_u16, put_u32, Reader};
use xvs_flowtable::group::{Bucket, Group, GroupCommand, GroupMod, GroupType};
use xvs_flowtable::meter::{Band, BandType, Meter};
use xvs_flowtable::Port;

/// `OFPG_ANY`.
const GROUP_ANY: u32 = 0xffff_ffff;

pub(crate) fn group_type_code(t: GroupType) -> u8 {
    match t {
        GroupType::All => 0,
        GroupType::Select => 1,
        GroupType::Indirect => 2,
        GroupType::FastFailover => 3,
    }
}

pub(crate) fn group_type_from(code: u8) -> Result<GroupType, OfpError> {
    Ok(match code {
        0 => GroupType::All,
        1 => GroupType::Select,
        2 => GroupType::Indirect,
        3 => GroupType::FastFailover,
        _ => return Err(OfpError::BAD_GROUP_TYPE),
    })
}

fn group_command_code(c: GroupCommand) -> u16 {
    match c {
        GroupCommand::Add => 0,
        GroupCommand::Modify => 1,
        GroupCommand::Delete => 2,
        GroupCommand::InsertBucket => 3,
        GroupCommand::RemoveBucket => 5,
    }
}

/// Appends the body of an OpenFlow 1.5 GROUP_MOD.
pub(crate) fn put_group_mod(out: &mut Vec<u8>, gm: &GroupMod) {
    let g = &gm.group;
    put_u16(out, group_command_code(gm.command));
    out.push(group_type_code(g.group_type));
    out.push(0);
    put_u32(out, g.group_id);
    let len_at = out.len();
    put_u16(out, 0);
    put_u16(out, 0);
    put_u32(out, gm.command_bucket_id);
    let start = out.len();
    put_buckets(out, g);
    let blen = out.len() - start;
    patch_u16(out, len_at, blen);
    put_selection_method(out, g);
}

/// Appends the buckets of `g` (OpenFlow 1.5 `ofp_bucket`s with their properties).
pub(crate) fn put_buckets(out: &mut Vec<u8>, g: &Group) {
    for b in &g.buckets {
        let bs = out.len();
        put_u16(out, 0);
        put_u16(out, 0);
        put_u32(out, b.bucket_id);
        put_actions(out, &b.actions);
        let alen = out.len() - bs - 8;
        patch_u16(out, bs + 2, alen);
        // OVS sends the weight for select groups; other groups only carry one if a peer
        // sent it (so that decoding and encoding agree).
        if g.group_type == GroupType::Select || b.weight != 0 {
            put_u16(out, 0);
            put_u16(out, 8);
            put_u16(out, b.weight);
            put_u16(out, 0);
        }
        if b.watch_port != Port::NONE {
            put_u16(out, 1);
            put_u16(out, 8);
            put_u32(out, b.watch_port.to_ofp11());
        }
        if b.watch_group != GROUP_ANY {
            put_u16(out, 2);
            put_u16(out, 8);
            put_u32(out, b.watch_group);
        }
        let blen = out.len() - bs;
        patch_u16(out, bs, blen);
    }
}

/// Appends the selection-method group property of `g`, if it has one.
pub(crate) fn put_selection_method(out: &mut Vec<u8>, g: &Group) {
    if !g.selection_method.is_empty() {
        // Netronome's selection-method group property (no hash fields).
        put_u16(out, 0xffff);
        put_u16(out, 40);
        put_u32(out, NTR_VENDOR_ID);
        put_u32(out, NTRT_SELECTION_METHOD);
        put_u32(out, 0);
        let mut name = [0u8; 16];
        for (d, s) in name.iter_mut().zip(g.selection_method.bytes().take(15)) {
            *d = s;
        }
        out.extend_from_slice(&name);
        out.extend_from_slice(&g.selection_method_param.to_be_bytes());
    }
}

/// Netronome's experimenter id (group selection method property).
const NTR_VENDOR_ID: u32 = 0x0000_154d;
/// `NTRT_SELECTION_METHOD`.
const NTRT_SELECTION_METHOD: u32 = 1;

/// Decodes the body of an OpenFlow 1.5 GROUP_MOD.
pub(crate) fn pull_group_mod(r: &mut Reader<'_>) -> Result<GroupMod, OfpError> {
    let command = match r.u16()? {
        0 => GroupCommand::Add,
        1 => GroupCommand::Modify,
        2 => GroupCommand::Delete,
        3 => GroupCommand::InsertBucket,
        5 => GroupCommand::RemoveBucket,
        _ => return Err(OfpError::BAD_GROUP_COMMAND),
    };
    let group_type = group_type_from(r.u8()?)?;
    r.skip(1)?;
    let group_id = r.u32()?;
    let blen = usize::from(r.u16()?);
    r.skip(2)?;
    let command_bucket_id = r.u32()?;
    let buckets = pull_buckets(
        &mut Reader::new(r.bytes(blen)?, OfpError::BAD_LEN),
        group_type,
    )?;
    let mut group = Group {
        group_id,
        group_type,
        selection_method: String::new(),
        selection_method_param: 0,
        buckets,
    };
    pull_selection_method(r, &mut group)?;
    Ok(GroupMod {
        command,
        group,
        command_bucket_id,
    })
}

/// Decodes a bucket list (OpenFlow 1.5 `ofp_bucket`s) of a group of type `group_type`.
pub(crate) fn pull_buckets(
    br: &mut Reader<'_>,
    group_type: GroupType,
) -> Result<Vec<Bucket>, OfpError> {
    let mut buckets = Vec::new();
    while !br.is_empty() {
        let mut peek = br.clone();
        let len = usize::from(peek.u16()?);
        let alen = usize::from(peek.u16()?);
        if len < 8 || len % 8 != 0 || alen > len - 8 {
            return Err(OfpError::BAD_LEN);
        }
        let body = br.bytes(len)?;
        let mut b = Reader::new(&body[4..], OfpError::BAD_LEN);
        let bucket_id = b.u32()?;
        let actions = pull_actions(b.bytes(alen)?)?;
        let mut bucket = Bucket {
            bucket_id,
            weight: u16::from(group_type == GroupType::Select),
            watch_port: Port::NONE,
            watch_group: GROUP_ANY,
            actions,
        };
        while !b.is_empty() {
            let ty = b.u16()?;
            let plen = usize::from(b.u16()?);
            if plen != 8 {
                return Err(OfpError::BAD_LEN);
            }
            match ty {
                0 => {
                    bucket.weight = b.u16()?;
                    b.skip(2)?;
                }
                1 => {
                    bucket.watch_port = Port::from_ofp11(b.u32()?).ok_or(OfpError::BAD_WATCH)?;
                }
                2 => bucket.watch_group = b.u32()?,
                _ => return Err(OfpError::BAD_LEN),
            }
        }
        buckets.push(bucket);
    }
    Ok(buckets)
}

/// Decodes the group properties after the buckets (only the selection method is supported).
pub(crate) fn pull_selection_method(r: &mut Reader<'_>, group: &mut Group) -> Result<(), OfpError> {
    if !r.is_empty() {
        // Only the selection-method property without hash fields is supported.
        let ty = r.u16()?;
        let len = r.u16()?;
        if ty != 0xffff
            || len != 40
            || r.u32()? != NTR_VENDOR_ID
            || r.u32()? != NTRT_SELECTION_METHOD
        {
            return Err(OfpError::BAD_GROUP_TYPE);
        }
        r.skip(4)?;
        let name = r.bytes(16)?;
        let end = name
            .iter()
            .position(|&b| b == 0)
            .ok_or(OfpError::BAD_GROUP_TYPE)?;
        // OVS knows two methods; anything else is rejected as OVS does.
        group.selection_method = match &name[..end] {
            b"hash" => "hash".to_owned(),
            b"dp_hash" => "dp_hash".to_owned(),
            _ => return Err(OfpError::BAD_GROUP_TYPE),
        };
        group.selection_method_param = r.u64()?;
        if !r.is_empty() {
            return Err(OfpError::BAD_GROUP_TYPE);
        }
    }
    Ok(())
}

/// METER_MOD commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterCommand {
    /// `OFPMC_ADD`.
    Add,
    /// `OFPMC_MODIFY`.
    Modify,
    /// `OFPMC_DELETE`.
    Delete,
}

/// Appends the body of a METER_MOD.
pub(crate) fn put_meter_mod(out: &mut Vec<u8>, command: MeterCommand, m: &Meter) {
    put_u16(
        out,
        match command {
            MeterCommand::Add => 0,
            MeterCommand::Modify => 1,
            MeterCommand::Delete => 2,
        },
    );
    put_u16(out, m.flags);
    put_u32(out, m.meter_id);
    put_bands(out, &m.bands);
}

/// Appends meter bands (`ofp_meter_band_*`, 16 bytes each).
pub(crate) fn put_bands(out: &mut Vec<u8>, bands: &[Band]) {
    for b in bands {
        let s = out.len();
        put_u16(
            out,
            match b.band_type {
                BandType::Drop => 1,
                BandType::DscpRemark => 2,
            },
        );
        put_u16(out, 16);
        put_u32(out, b.rate);
        put_u32(out, b.burst_size);
        if b.band_type == BandType::DscpRemark {
            out.push(b.prec_level);
        }
        pad8(out, s);
    }
}

/// Decodes the body of a METER_MOD.
pub(crate) fn pull_meter_mod(r: &mut Reader<'_>) -> Result<(MeterCommand, Meter), OfpError> {
    let command = match r.u16()? {
        0 => MeterCommand::Add,
        1 => MeterCommand::Modify,
        2 => MeterCommand::Delete,
        _ => return Err(OfpError::BAD_METER_COMMAND),
    };
    let flags = r.u16()?;
    let meter_id = r.u32()?;
    let bands = pull_bands(r)?;
    Ok((
        command,
        Meter {
            meter_id,
            flags,
            bands,
        },
    ))
}

/// Decodes meter bands up to the end of `r`.
pub(crate) fn pull_bands(r: &mut Reader<'_>) -> Result<Vec<Band>, OfpError> {
    let mut bands = Vec::new();
    while !r.is_empty() {
        let ty = r.u16()?;
        let len = r.u16()?;
        if len != 16 {
            return Err(OfpError::BAD_LEN);
        }
        let rate = r.u32()?;
        let burst_size = r.u32()?;
        let prec_level = r.u8()?;
        r.skip(3)?;
        let band_type = match ty {
            1 => BandType::Drop,
            2 => BandType::DscpRemark,
            _ => return Err(OfpError::BAD_BAND),
        };
        bands.push(Band {
            band_type,
            rate,
            burst_size,
            prec_level: if band_type == BandType::DscpRemark {
                prec_level
            } else {
                0
            },
        });
    }
    Ok(bands)
}
