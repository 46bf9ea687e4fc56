//! Runtime log levels per module and destination, as OVS's `vlog/set` and `vlog/list` expose
//! them.
//!
//! xvsd writes log lines to stderr (the `console` destination) in OVS's layout
//! (`2026-01-01T00:00:00Z|00001|ofserver|INFO|text`). `syslog` and `file` levels are kept and
//! listed so that OVS-style specs work, but xvsd has no syslog or log-file writer, so they
//! print nothing. Levels live in relaxed atomics: workers never log, and a control thread
//! that reads a level a moment late logs one line more or less.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// Modules that log (OVS: `VLOG_DEFINE_THIS_MODULE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Module {
    /// Start-up, shutdown, the control loop.
    Xvsd = 0,
    /// The OpenFlow server: connections, messages, port mods.
    Ofserver = 1,
    /// The unixctl server: commands received.
    Unixctl = 2,
    /// Ports: opening, XDP attachment, admin state.
    Ports = 3,
    /// The underlay (routes, neighbours) for tunnels.
    Underlay = 4,
}

/// Every module, in the order `vlog/list` prints them (by name).
pub const MODULES: [Module; 5] = [
    Module::Ofserver,
    Module::Ports,
    Module::Underlay,
    Module::Unixctl,
    Module::Xvsd,
];

impl Module {
    /// The module's name.
    pub fn name(self) -> &'static str {
        match self {
            Module::Xvsd => "xvsd",
            Module::Ofserver => "ofserver",
            Module::Unixctl => "unixctl",
            Module::Ports => "ports",
            Module::Underlay => "underlay",
        }
    }
}

/// Log levels, least verbose first (OVS's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Nothing.
    Off = 0,
    /// Emergencies.
    Emer = 1,
    /// Errors.
    Err = 2,
    /// Warnings.
    Warn = 3,
    /// Information.
    Info = 4,
    /// Debugging.
    Dbg = 5,
}

const LEVELS: [Level; 6] = [
    Level::Off,
    Level::Emer,
    Level::Err,
    Level::Warn,
    Level::Info,
    Level::Dbg,
];

impl Level {
    /// The name `vlog/list` prints.
    pub fn upper(self) -> &'static str {
        ["OFF", "EMER", "ERR", "WARN", "INFO", "DBG"][self as usize]
    }

    fn parse(s: &str) -> Option<Level> {
        LEVELS
            .into_iter()
            .find(|l| l.upper().eq_ignore_ascii_case(s))
    }
}

/// Log destinations (OVS's facilities).
const DESTINATIONS: [&str; 3] = ["console", "syslog", "file"];

/// Levels: `[module][destination]`. Defaults: console INFO (xvsd runs in the foreground and
/// its stderr is its log), syslog and file INFO (as OVS).
static LEVELS_BY_MODULE: [[AtomicU8; 3]; 5] = {
    // Array-repeat of a constant initialiser (each element is its own atomic).
    #[allow(clippy::declare_interior_mutable_const)]
    const INFO: AtomicU8 = AtomicU8::new(Level::Info as u8);
    #[allow(clippy::declare_interior_mutable_const)]
    const ROW: [AtomicU8; 3] = [INFO, INFO, INFO];
    [ROW, ROW, ROW, ROW, ROW]
};

/// Sequence number of the next line (OVS numbers its log lines).
static SEQ: AtomicU32 = AtomicU32::new(1);

fn level(m: Module, dest: usize) -> Level {
    let v = LEVELS_BY_MODULE[m as usize][dest].load(Ordering::Relaxed);
    LEVELS.get(usize::from(v)).copied().unwrap_or(Level::Off)
}

/// True when a line of `level` from `m` would be printed.
pub fn enabled(m: Module, l: Level) -> bool {
    l != Level::Off && level(m, 0) >= l
}

/// Writes `text` for `m` at `l` to the console if its level allows it.
pub fn log(m: Module, l: Level, text: std::fmt::Arguments<'_>) {
    if !enabled(m, l) {
        return;
    }
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    eprintln!("{}|{seq:05}|{}|{}|{text}", utc_now(), m.name(), l.upper());
}

/// `vlog!(Module::Ofserver, Level::Dbg, "format", args...)`.
macro_rules! vlog {
    ($m:expr, $l:expr, $($arg:tt)*) => {
        if $crate::vlog::enabled($m, $l) {
            $crate::vlog::log($m, $l, format_args!($($arg)*));
        }
    };
}
pub(crate) use vlog;

/// `vlog/set` with OVS's spec syntax: each argument is `module[:destination[:level]]` in any
/// order of words separated by `:`, where `ANY` (or omitting a part) means all; e.g.
/// `ANY:dbg`, `ofserver:file:info`, `console:off`. Errors are OVS's words.
pub fn set(params: &[String]) -> Result<String, String> {
    for spec in params {
        let first = spec.split([':', ' ', ',', '\t']).find(|w| !w.is_empty());
        if first.is_some_and(|w| {
            w.eq_ignore_ascii_case("pattern") || w.eq_ignore_ascii_case("facility")
        }) {
            // xvsd's line layout and destinations are fixed.
            return Err(format!(
                "\"{}\" specs are not supported by xvsd",
                first.unwrap_or_default()
            ));
        }
        let mut module: Option<Module> = None;
        let mut dest: Option<usize> = None;
        let mut lvl: Option<Level> = None;
        for word in spec.split([':', ' ', ',', '\t']).filter(|w| !w.is_empty()) {
            if word.eq_ignore_ascii_case("any") {
                continue;
            }
            if let Some(d) = DESTINATIONS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(word))
            {
                if dest.is_some() {
                    return Err("cannot specify multiple destinations".to_string());
                }
                dest = Some(d);
            } else if let Some(l) = Level::parse(word) {
                if lvl.is_some() {
                    return Err("cannot specify multiple levels".to_string());
                }
                lvl = Some(l);
            } else if let Some(m) = MODULES.iter().find(|m| m.name().eq_ignore_ascii_case(word)) {
                if module.is_some() {
                    return Err("cannot specify multiple modules".to_string());
                }
                module = Some(*m);
            } else {
                return Err(format!("no destination, level, or module \"{word}\""));
            }
        }
        // OVS: a spec without a level sets the most verbose one.
        let lvl = lvl.unwrap_or(Level::Dbg);
        for m in MODULES {
            if module.is_some_and(|x| x != m) {
                continue;
            }
            for (d, slot) in LEVELS_BY_MODULE[m as usize].iter().enumerate() {
                if dest.is_none_or(|x| x == d) {
                    slot.store(lvl as u8, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(String::new())
}

/// `vlog/list` in OVS's layout.
pub fn list() -> String {
    let mut s = String::from(
        "                 console    syslog    file\n                 -------    ------    ------\n",
    );
    for m in MODULES {
        let _ = writeln!(
            s,
            "{:<16}  {:>4}       {:>4}       {:>4}",
            m.name(),
            level(m, 0).upper(),
            level(m, 1).upper(),
            level(m, 2).upper()
        );
    }
    s
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The levels are process-wide; one test changes them, in a fixed order.
    #[test]
    fn set_and_list_follow_ovs() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18T11:06:40Z");
        let l = list();
        assert!(l.starts_with("                 console    syslog    file\n"));
        assert!(
            l.contains("\nofserver          INFO       INFO       INFO\n"),
            "{l}"
        );

        set(&["ofserver:file:dbg".to_string()]).expect("valid spec");
        assert_eq!(level(Module::Ofserver, 2), Level::Dbg);
        assert_eq!(level(Module::Ofserver, 0), Level::Info);
        assert_eq!(level(Module::Xvsd, 2), Level::Info);

        set(&["ANY:console:off".to_string()]).expect("valid spec");
        assert!(!enabled(Module::Xvsd, Level::Err));
        set(&["ANY:dbg".to_string()]).expect("valid spec");
        assert!(enabled(Module::Unixctl, Level::Dbg));
        set(&["console:info".to_string()]).expect("valid spec");
        assert!(!enabled(Module::Unixctl, Level::Dbg));
        assert_eq!(level(Module::Unixctl, 1), Level::Dbg);

        assert_eq!(
            set(&["nosuch:dbg".to_string()]),
            Err("no destination, level, or module \"nosuch\"".to_string())
        );
        assert_eq!(
            set(&["ofserver:file:bogus".to_string()]),
            Err("no destination, level, or module \"bogus\"".to_string())
        );
        assert_eq!(
            set(&["info:dbg".to_string()]),
            Err("cannot specify multiple levels".to_string())
        );
        assert!(set(&["PATTERN:console:%m".to_string()]).is_err());
        assert_eq!(set(&[]), Ok(String::new()));
    }
}
