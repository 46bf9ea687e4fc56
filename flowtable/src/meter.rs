//! Meters: the `add-meter` syntax and the `dump-meters` text.

use crate::error::{ParseError, Result};
use std::fmt::Write as _;

/// Meter flags.
pub mod flags {
    /// Rates in kilobits per second.
    pub const KBPS: u16 = 1 << 0;
    /// Rates in packets per second.
    pub const PKTPS: u16 = 1 << 1;
    /// Bands have burst sizes.
    pub const BURST: u16 = 1 << 2;
    /// Collect statistics.
    pub const STATS: u16 = 1 << 3;
}

/// Band types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BandType {
    /// Drop packets above the rate.
    Drop,
    /// Lower the drop precedence of the DSCP by `prec_level`.
    DscpRemark,
}

/// One band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Band {
    /// Type.
    pub band_type: BandType,
    /// Rate (kbps or pktps per the meter flags).
    pub rate: u32,
    /// Burst size (only with the `burst` flag).
    pub burst_size: u32,
    /// Precedence level (DSCP remark only).
    pub prec_level: u8,
}

/// A meter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Meter {
    /// Meter id (1..=0xffff0000).
    pub meter_id: u32,
    /// Flags, see [`flags`].
    pub flags: u16,
    /// Bands.
    pub bands: Vec<Band>,
}

fn str_to_u32(s: &str) -> Result<u32> {
    match crate::value::parse_int_prefix(s, 4) {
        Ok((v, "")) if !s.is_empty() && !s.starts_with('-') => Ok(v as u32),
        _ => Err(ParseError::invalid(format!("invalid numeric format {s}"))),
    }
}

/// Splits like `strtok_r` over `delims`.
fn tokens<'a>(s: &'a str, delims: &'a [char]) -> impl Iterator<Item = &'a str> {
    s.split(move |c| delims.contains(&c))
        .filter(|t| !t.is_empty())
}

/// Parses an `add-meter` string (`meter=N,pktps,burst,stats,bands=type=drop,rate=R,burst_size=B`).
pub fn parse_meter(s: &str) -> Result<Meter> {
    let Some(band_pos) = s.find("band") else {
        return Err(ParseError::invalid("must specify bands"));
    };
    let head = &s[..band_pos];
    let Some(eq) = s[band_pos + 1..].find('=') else {
        return Err(ParseError::invalid("must specify bands"));
    };
    let band_str = &s[band_pos + 1 + eq + 1..];
    let mut m = Meter {
        meter_id: 0,
        flags: 0,
        bands: Vec::new(),
    };
    let delims = ['=', ',', ' ', '\t', '\r', '\n'];
    let mut it = tokens(head, &delims);
    while let Some(name) = it.next() {
        match name {
            "kbps" => m.flags |= flags::KBPS,
            "pktps" => m.flags |= flags::PKTPS,
            "burst" => m.flags |= flags::BURST,
            "stats" => m.flags |= flags::STATS,
            _ => {
                let Some(value) = it.next() else {
                    return Err(ParseError::MissingValue(name.to_owned()));
                };
                if name != "meter" {
                    return Err(ParseError::UnknownKeyword(name.to_owned()));
                }
                m.meter_id = match value {
                    "all" => 0xffff_ffff,
                    "controller" => 0xffff_fffe,
                    "slowpath" => 0xffff_fffd,
                    _ => {
                        let id = str_to_u32(value)?;
                        if id == 0 || id > 0xffff_0000 {
                            return Err(ParseError::invalid("invalid value for meter"));
                        }
                        id
                    }
                };
            }
        }
    }
    if m.meter_id == 0 {
        return Err(ParseError::invalid("must specify 'meter'"));
    }
    if m.flags == 0 {
        return Err(ParseError::invalid(
            "meter must specify either 'kbps' or 'pktps'",
        ));
    }
    let mut it = tokens(band_str, &delims);
    while let Some(name) = it.next() {
        let Some(value) = it.next() else {
            return Err(ParseError::MissingValue(name.to_owned()));
        };
        if name == "type" {
            let band_type = match value {
                "drop" => BandType::Drop,
                "dscp_remark" => BandType::DscpRemark,
                _ => {
                    return Err(ParseError::invalid(format!(
                        "field {name} unknown value {value}"
                    )))
                }
            };
            m.bands.push(Band {
                band_type,
                rate: 0,
                burst_size: 0,
                prec_level: 0,
            });
            continue;
        }
        let Some(band) = m.bands.last_mut() else {
            return Err(ParseError::invalid(
                "band must start with the 'type' keyword",
            ));
        };
        match name {
            "rate" => band.rate = str_to_u32(value)?,
            "burst_size" => band.burst_size = str_to_u32(value)?,
            "prec_level" => {
                band.prec_level = match crate::value::parse_int_prefix(value, 1) {
                    Ok((v, "")) => v as u8,
                    _ => {
                        return Err(ParseError::invalid(format!(
                            "invalid prec_level \"{value}\""
                        )))
                    }
                }
            }
            _ => return Err(ParseError::UnknownKeyword(name.to_owned())),
        }
    }
    if m.bands.is_empty() {
        return Err(ParseError::invalid("meter must have bands"));
    }
    for b in &m.bands {
        if b.band_type == BandType::DscpRemark && b.prec_level == 0 {
            return Err(ParseError::invalid(
                "'dscp_remark' band must have 'prec_level'",
            ));
        }
        if b.band_type != BandType::DscpRemark && b.prec_level != 0 {
            return Err(ParseError::invalid(
                "Only 'dscp_remark' band may have 'prec_level'",
            ));
        }
        if b.rate == 0 {
            return Err(ParseError::invalid("band must have 'rate'"));
        }
        if m.flags & flags::BURST != 0 && b.burst_size == 0 {
            return Err(ParseError::invalid(
                "band must have 'burst_size' when 'burst' flag is set",
            ));
        }
        if m.flags & flags::BURST == 0 && b.burst_size != 0 {
            return Err(ParseError::invalid(
                "band may have 'burst_size' only when 'burst' flag is set",
            ));
        }
    }
    Ok(m)
}

/// Appends a meter as `dump-meters` prints it (OpenFlow 1.5): `meter=N flags bands=` then one
/// `\ntype=... rate=...` per band (no trailing newline).
pub fn format_meter(out: &mut String, m: &Meter) {
    match m.meter_id {
        0xffff_ffff => out.push_str("meter=all"),
        0xffff_fffe => out.push_str("meter=controller"),
        0xffff_fffd => out.push_str("meter=slowpath"),
        id => {
            let _ = write!(out, "meter={id}");
        }
    }
    out.push(' ');
    for (bit, name) in [
        (flags::KBPS, "kbps"),
        (flags::PKTPS, "pktps"),
        (flags::BURST, "burst"),
        (flags::STATS, "stats"),
    ] {
        if m.flags & bit != 0 {
            out.push_str(name);
            out.push(' ');
        }
    }
    let unknown = m.flags & !0x0f;
    if unknown != 0 {
        let _ = write!(out, "flags:0x{unknown:x} ");
    }
    out.push_str("bands=");
    for b in &m.bands {
        out.push_str("\ntype=");
        out.push_str(match b.band_type {
            BandType::Drop => "drop",
            BandType::DscpRemark => "dscp_remark",
        });
        let _ = write!(out, " rate={}", b.rate);
        if m.flags & flags::BURST != 0 {
            let _ = write!(out, " burst_size={}", b.burst_size);
        }
        if b.band_type == BandType::DscpRemark {
            let _ = write!(out, " prec_level={}", b.prec_level);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antrea_meter() {
        let m =
            parse_meter("meter=256,pktps,burst,stats,bands=type=drop,rate=5000,burst_size=10000");
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        let mut s = String::new();
        format_meter(&mut s, &m);
        assert_eq!(
            s,
            "meter=256 pktps burst stats bands=\ntype=drop rate=5000 burst_size=10000"
        );
        assert!(parse_meter("meter=0,pktps,bands=type=drop,rate=1").is_err());
        assert!(parse_meter("meter=1,pktps").is_err());
        assert!(parse_meter("meter=1,bands=type=drop,rate=1").is_err());
    }
}
