//! The np.log file with rotation as Antrea's agent does it (its audit logger writes through
//! lumberjack): a write that would take the file past `max_bytes` first renames it to
//! `np-<UTC time, 2006-01-02T15-04-05.000>.log` and starts a new one; then backups beyond
//! `max_backups` (newest kept) and older than `max_age` are removed and the rest gzipped
//! (`.log.gz`), on a thread of its own so a large compression never holds up the agent.
//! Antrea's defaults (`auditLogging` in its agent config): 500 MB, 3 backups, 28 days, compress.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When np.log is rotated and what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Size limit of the live file, in bytes (Antrea: `maxSize` MB).
    pub max_bytes: u64,
    /// Rotated files kept, newest first; 0 keeps all (as lumberjack).
    pub max_backups: usize,
    /// Rotated files older than this (by the time in their name) are removed; None keeps all.
    pub max_age: Option<Duration>,
    /// Whether rotated files are gzipped.
    pub compress: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 500 * 1024 * 1024,
            max_backups: 3,
            max_age: Some(Duration::from_secs(28 * 86_400)),
            compress: true,
        }
    }
}

/// What can go wrong writing np.log.
#[derive(Debug, thiserror::Error)]
pub enum NpLogError {
    /// One line larger than the whole file may be (lumberjack refuses it too).
    #[error("write length {len} exceeds maximum file size {max}")]
    TooLong {
        /// The line's length.
        len: usize,
        /// The limit.
        max: u64,
    },
    /// The file system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NpLogError + '_ {
    move |source| NpLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// np.log, appended to and rotated.
#[derive(Debug)]
pub struct NpLog {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    size: u64,
    /// The backup clean-up of the last rotation, if still running.
    mill: Option<JoinHandle<()>>,
}

impl NpLog {
    /// np.log at `path` (its directory is created; an existing file is appended to).
    pub fn open(path: &Path, rotation: Rotation) -> Result<NpLog, NpLogError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut log = NpLog {
            path: path.to_path_buf(),
            rotation,
            file: None,
            size: 0,
            mill: None,
        };
        log.open_append()?;
        Ok(log)
    }

    fn open_append(&mut self) -> Result<(), NpLogError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.size = f.metadata().map_err(io(&self.path))?.len();
        self.file = Some(f);
        Ok(())
    }

    /// Appends `bytes` (whole lines), rotating first if they would not fit.
    pub fn write(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), NpLogError> {
        let len = bytes.len() as u64;
        if len > self.rotation.max_bytes {
            return Err(NpLogError::TooLong {
                len: bytes.len(),
                max: self.rotation.max_bytes,
            });
        }
        if self.file.is_none() {
            self.open_append()?;
        }
        if self.size + len > self.rotation.max_bytes {
            self.rotate(now)?;
        }
        let f = match &mut self.file {
            Some(f) => f,
            None => return Ok(()),
        };
        f.write_all(bytes).map_err(io(&self.path))?;
        self.size += len;
        Ok(())
    }

    /// Renames the live file to its backup name, starts a new one and cleans up the backups.
    fn rotate(&mut self, now: SystemTime) -> Result<(), NpLogError> {
        self.file = None;
        let mut at = now;
        let mut backup = backup_name(&self.path, at);
        // Two rotations within one millisecond: the later backup takes the next free one.
        while backup.exists() || gz(&backup).exists() {
            at += Duration::from_millis(1);
            backup = backup_name(&self.path, at);
        }
        std::fs::rename(&self.path, &backup).map_err(io(&self.path))?;
        self.open_append()?;
        // One clean-up at a time, as lumberjack's single mill goroutine.
        if let Some(h) = self.mill.take() {
            let _ = h.join();
        }
        let (path, rotation) = (self.path.clone(), self.rotation);
        self.mill = Some(std::thread::spawn(move || mill(&path, rotation, now)));
        Ok(())
    }

    /// Waits for the backup clean-up of the last rotation.
    pub fn settle(&mut self) {
        if let Some(h) = self.mill.take() {
            let _ = h.join();
        }
    }
}

fn gz(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(".gz");
    PathBuf::from(s)
}

/// `dir/np.log` → (`np-`, `.log`).
fn prefix_ext(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(i) => (format!("{}-", &name[..i]), name[i..].to_string()),
        None => (format!("{name}-"), String::new()),
    }
}

/// Lumberjack's backup time format `2006-01-02T15-04-05.000`, UTC.
fn backup_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // "YYYY/MM/DD HH:MM:SS.uuuuuu " → "YYYY-MM-DDTHH-MM-SS.mmm".
    let go = crate::anp::audit::timestamp(since);
    let go = go.trim_end();
    let (date, time) = go.split_once(' ').unwrap_or((go, ""));
    let time = time.get(..12).unwrap_or(time);
    format!("{}T{}", date.replace('/', "-"), time.replace(':', "-"))
}

fn backup_name(path: &Path, t: SystemTime) -> PathBuf {
    let (prefix, ext) = prefix_ext(path);
    path.with_file_name(format!("{prefix}{}{ext}", backup_time(t)))
}

/// The time in a backup's name, as sortable text (the format sorts chronologically).
fn backup_stamp<'n>(name: &'n str, prefix: &str, ext: &str) -> Option<&'n str> {
    let rest = name.strip_prefix(prefix)?;
    let stamp = rest
        .strip_suffix(&format!("{ext}.gz"))
        .or_else(|| rest.strip_suffix(ext))?;
    // 2006-01-02T15-04-05.000
    let ok = stamp.len() == 23
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 13 | 16 => b == b'-',
            10 => b == b'T',
            19 => b == b'.',
            _ => b.is_ascii_digit(),
        });
    ok.then_some(stamp)
}

/// Removes the backups beyond the count and age limits, then compresses the rest. Errors are
/// reported, not fatal (the log itself goes on).
fn mill(path: &Path, rotation: Rotation, now: SystemTime) {
    let (prefix, ext) = prefix_ext(path);
    let Some(dir) = path.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut backups: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = backup_stamp(&name, &prefix, &ext)?.to_string();
            Some((stamp, e.path()))
        })
        .collect();
    // Newest first; a backup and its .gz (a compression cut short) count once.
    backups.sort_by(|a, b| b.cmp(a));
    let mut stamps: Vec<&String> = backups.iter().map(|(s, _)| s).collect();
    stamps.dedup();
    let count = if rotation.max_backups > 0 {
        rotation.max_backups
    } else {
        stamps.len()
    };
    let cutoff = rotation
        .max_age
        .map(|age| backup_time(now.checked_sub(age).unwrap_or(UNIX_EPOCH)));
    let keep: std::collections::BTreeSet<String> = stamps
        .into_iter()
        .take(count)
        .filter(|s| cutoff.as_ref().is_none_or(|c| *s >= c))
        .cloned()
        .collect();
    let (kept, remove): (Vec<_>, Vec<_>) = backups.into_iter().partition(|(s, _)| keep.contains(s));
    let remove: Vec<PathBuf> = remove.into_iter().map(|(_, p)| p).collect();
    for p in remove {
        if let Err(e) = std::fs::remove_file(&p) {
            eprintln!("xvs-agent: removing old np.log backup {}: {e}", p.display());
        }
    }
    if rotation.compress {
        for (_, p) in kept {
            if p.extension().is_some_and(|e| e == "gz") {
                continue;
            }
            if let Err(e) = compress(&p) {
                eprintln!("xvs-agent: compressing {}: {e}", p.display());
            }
        }
    }
}

/// `p` → `p.gz` (written whole, then `p` removed).
fn compress(p: &Path) -> std::io::Result<()> {
    let target = gz(p);
    let mut input = File::open(p)?;
    let out = File::create(&target)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut input, &mut enc)?;
    enc.finish()?.sync_all()?;
    std::fs::remove_file(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn backup_names_are_lumberjacks() {
        let t = UNIX_EPOCH + Duration::from_millis(1_782_519_135_123);
        let name = backup_name(Path::new("/var/log/antrea/networkpolicy/np.log"), t);
        assert_eq!(
            name,
            Path::new("/var/log/antrea/networkpolicy/np-2026-06-27T00-12-15.123.log")
        );
        assert_eq!(
            backup_stamp("np-2026-06-27T00-12-15.123.log.gz", "np-", ".log"),
            Some("2026-06-27T00-12-15.123")
        );
        assert_eq!(backup_stamp("np.log", "np-", ".log"), None);
        assert_eq!(backup_stamp("np-other.log", "np-", ".log"), None);
    }

    fn gunzip(p: &Path) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(p).expect("backup opens"))
            .read_to_string(&mut s)
            .expect("backup is gzip");
        s
    }

    #[test]
    fn filling_past_the_limit_rotates_keeps_three_compressed_backups_and_drops_old_ones() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("networkpolicy").join("np.log");
        let rotation = Rotation {
            max_bytes: 1000,
            max_backups: 3,
            max_age: Some(Duration::from_secs(28 * 86_400)),
            compress: true,
        };
        // A backup from 40 days ago: past the age limit, removed at the first rotation.
        std::fs::create_dir_all(tmp.path().join("networkpolicy")).expect("dir");
        let start = UNIX_EPOCH + Duration::from_secs(1_782_519_135);
        let ancient = backup_name(&path, start - Duration::from_secs(40 * 86_400));
        std::fs::write(&ancient, "old\n").expect("old backup");
        let mut log = NpLog::open(&path, rotation).expect("opens");
        let line = |i: usize| format!("line {i:05} {}\n", "x".repeat(88)); // 100 bytes
                                                                           // 10 lines per file: 75 lines = 7 full files + 5 lines, one rotation per 10 lines,
                                                                           // each a second apart.
        for i in 0..75 {
            let now = start + Duration::from_secs(i as u64 / 10);
            log.write(line(i).as_bytes(), now).expect("writes");
            assert!(std::fs::metadata(&path).expect("np.log").len() <= 1000);
        }
        log.settle();
        let live = std::fs::read_to_string(&path).expect("np.log");
        assert_eq!(live, (70..75).map(line).collect::<String>());
        let mut names: Vec<String> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(!ancient.exists(), "{names:?}");
        // The three newest backups, gzipped, hold the 30 lines before the live ones.
        assert_eq!(names.len(), 4, "{names:?}");
        let backups: Vec<&String> = names.iter().filter(|n| n.ends_with(".log.gz")).collect();
        assert_eq!(backups.len(), 3, "{names:?}");
        let text: String = backups
            .iter()
            .map(|n| gunzip(&path.with_file_name(n)))
            .collect();
        assert_eq!(text, (40..70).map(line).collect::<String>());
        // A line longer than the limit is refused, as lumberjack does.
        assert!(matches!(
            log.write(&[b'x'; 1001], start),
            Err(NpLogError::TooLong { .. })
        ));
    }
}
