//! A manifest directory re-read incrementally: only files whose stat stamp (size, mtime,
//! ctime, inode) or content changed are read and parsed again; a removed file's objects
//! leave the model. The result is the same as [`load_dir_admitted`](crate::anp::load_dir_admitted)
//! given the same history: files in name order, a later object with the same key replacing an
//! earlier one, a bad file keeping what it held when last good, and the cross-object admission
//! run against the whole admitted state (so a tier still in use stays, a policy may not name a
//! missing tier or group).
//!
//! Timestamps are coarse (a kernel tick), so a file rewritten with the same size within the
//! tick of the previous scan has an unchanged stamp. As git does for its index, such
//! "racily clean" files are not trusted: they are re-read and hashed on every scan until
//! their mtime is safely older than the scan, and [`ManifestDir::racy`] tells the poller to
//! keep scanning until then.

use crate::anp::types::PolicyKey;
use crate::anp::{admission, AnpObject, AnpObjects};
use crate::model::{parse_file, ManifestError, Model, Object};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long after a scan a file's mtime must be older than that scan for its stamp to be
/// trusted (covers coarse timestamp granularity with a wide margin).
const RACY_WINDOW: Duration = Duration::from_secs(1);

/// What `stat` says about a file: any write changes at least one of these, except a
/// same-size rewrite within one timestamp tick (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: u64,
    device: u64,
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp {
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            inode: md.ino(),
            device: md.dev(),
        }
    }
    fn modified(&self) -> SystemTime {
        let (s, ns) = self.mtime;
        let secs = Duration::new(s.unsigned_abs(), ns.clamp(0, 999_999_999) as u32);
        if s >= 0 {
            SystemTime::UNIX_EPOCH + secs
        } else {
            SystemTime::UNIX_EPOCH
        }
    }
}

/// One file's last scan.
#[derive(Debug, Clone)]
struct FileEntry {
    stamp: Stamp,
    /// Hash of the content last read (None: unreadable).
    content: Option<u64>,
    /// What the file held when it last parsed (kept while it is bad).
    last_good: Option<Vec<Object>>,
    /// The current content's error, if it does not parse.
    error: Option<ManifestError>,
}

/// The key under which [`Model::insert`] stores an object (Pods with and without interface
/// annotations share one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ObjectKey {
    Config,
    Node(String),
    Namespace(String),
    Pod(String, String),
    Service(String, String),
    Slice(String, String),
    Policy(String, String),
    Tier(String),
    AnpPolicy(PolicyKey),
    AnpGroup(PolicyKey),
}

fn key_of(o: &Object) -> ObjectKey {
    match o {
        Object::Config(_) => ObjectKey::Config,
        Object::Node(n) => ObjectKey::Node(n.name.clone()),
        Object::Namespace(n) => ObjectKey::Namespace(n.name.clone()),
        Object::Pod(p) => ObjectKey::Pod(p.namespace.clone(), p.name.clone()),
        Object::UnattachedPod(u) => ObjectKey::Pod(u.pod.namespace.clone(), u.pod.name.clone()),
        Object::Service(s) => ObjectKey::Service(s.namespace.clone(), s.name.clone()),
        Object::Slice(s) => ObjectKey::Slice(s.namespace.clone(), s.name.clone()),
        Object::Policy(p) => ObjectKey::Policy(p.namespace.clone(), p.name.clone()),
        Object::Anp(AnpObject::Tier(t)) => ObjectKey::Tier(t.name.clone()),
        Object::Anp(AnpObject::Policy(p)) => ObjectKey::AnpPolicy(p.key()),
        Object::Anp(AnpObject::Group(g)) => {
            ObjectKey::AnpGroup((g.namespace.clone(), g.name.clone()))
        }
    }
}

fn remove_key(model: &mut Model, k: &ObjectKey) {
    match k {
        ObjectKey::Config => model.config = None,
        ObjectKey::Node(n) => {
            model.nodes.remove(n);
        }
        ObjectKey::Namespace(n) => {
            model.namespaces.remove(n);
        }
        ObjectKey::Pod(ns, n) => {
            let key = (ns.clone(), n.clone());
            model.pods.remove(&key);
            model.unattached_pods.remove(&key);
        }
        ObjectKey::Service(ns, n) => {
            model.services.remove(&(ns.clone(), n.clone()));
        }
        ObjectKey::Slice(ns, n) => {
            model.slices.remove(&(ns.clone(), n.clone()));
        }
        ObjectKey::Policy(ns, n) => {
            model.policies.remove(&(ns.clone(), n.clone()));
        }
        ObjectKey::Tier(n) => {
            model.anp.tiers.remove(n);
        }
        ObjectKey::AnpPolicy(k) => {
            model.anp.policies.remove(k);
        }
        ObjectKey::AnpGroup(k) => {
            model.anp.groups.remove(k);
        }
    }
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// How much of the directory the last [`ManifestDir::reload`] read and parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Manifest files present.
    pub files: usize,
    /// Files read (stamp changed, new, or racily clean).
    pub read: usize,
    /// Files parsed (content changed or new).
    pub parsed: usize,
    /// Files gone since the last scan.
    pub removed: usize,
    /// Whether the model or the errors were recomputed (something was parsed or removed).
    pub changed: bool,
}

/// A manifest directory and what its files held at the last scan.
#[derive(Debug, Default)]
pub struct ManifestDir {
    files: BTreeMap<PathBuf, FileEntry>,
    /// Which files define each key (the model holds the object of the last one, by name).
    owners: BTreeMap<ObjectKey, BTreeSet<PathBuf>>,
    /// Every good file's objects merged, before the cross-object admission.
    merged: Model,
    /// When the last scan started.
    scanned_at: Option<SystemTime>,
    /// Whether a file's stamp was too fresh to trust at the last scan.
    racy: bool,
    /// Forget everything before each reload (read and parse every file).
    full: bool,
    /// The admitted model and the current errors, as of the last change.
    model: Model,
    errors: Vec<ManifestError>,
    loaded: bool,
}

impl ManifestDir {
    /// Nothing read yet.
    pub fn new() -> Self {
        ManifestDir::default()
    }

    /// Whether some file was modified too recently to trust its stamp: the caller should
    /// reload again (cheap: only such files are re-read) even if the directory looks the same.
    pub fn racy(&self) -> bool {
        self.racy
    }

    /// The Antrea-native objects admitted last (a refused change keeps them).
    pub fn admitted(&self) -> &AnpObjects {
        &self.model.anp
    }

    /// The admitted model as of the last reload.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Every current error as of the last reload: unparsable files in name order, then
    /// admission refusals.
    pub fn errors(&self) -> &[ManifestError] {
        &self.errors
    }

    /// With `true`, every reload reads and parses every file again and rebuilds the model
    /// from them (what the agent did before; for comparisons). The admission history stays.
    pub fn set_full_reload(&mut self, full: bool) {
        self.full = full;
    }

    /// Whether a reload has succeeded once.
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Re-reads what changed in `dir`; [`model`](Self::model) and [`errors`](Self::errors)
    /// are recomputed when a file was parsed or removed.
    pub fn reload(&mut self, dir: &Path) -> std::io::Result<ReloadStats> {
        let started = SystemTime::now();
        if self.full {
            // Every file read and parsed again (a bad one still keeps its last good objects).
            for e in self.files.values_mut() {
                e.content = None;
                e.stamp.len = u64::MAX;
            }
        }
        let trust_before = self
            .scanned_at
            .and_then(|t| t.checked_sub(RACY_WINDOW))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // Files modified since then cannot be trusted at the next scan.
        let racy_from = started
            .checked_sub(RACY_WINDOW)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut present: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e == "yaml" || e == "yml")
            })
            .collect();
        present.sort();
        let mut stats = ReloadStats {
            files: present.len(),
            ..ReloadStats::default()
        };
        let mut racy = false;
        // Files whose contributed objects changed: (path, old objects, new objects).
        let mut changed: Vec<(PathBuf, Vec<Object>, Vec<Object>)> = Vec::new();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| present.binary_search(p).is_err())
            .cloned()
            .collect();
        for p in gone {
            stats.removed += 1;
            if let Some(e) = self.files.remove(&p) {
                changed.push((p, e.last_good.unwrap_or_default(), Vec::new()));
            }
        }
        for p in present {
            let stamp = std::fs::metadata(&p).map(|md| Stamp::of(&md)).ok();
            let old = self.files.get(&p);
            let fresh = stamp.is_some_and(|s| s.modified() >= trust_before);
            racy |= stamp.is_some_and(|s| s.modified() >= racy_from);
            if let (Some(s), Some(e)) = (stamp, old) {
                if e.stamp == s && !fresh {
                    continue;
                }
            }
            stats.read += 1;
            let name = p.display().to_string();
            let read = std::fs::read(&p);
            let content = read.as_ref().ok().map(|b| hash_bytes(b));
            if let (Some(e), Some(h)) = (old, content) {
                if e.content == Some(h) {
                    if let (Some(s), Some(e)) = (stamp, self.files.get_mut(&p)) {
                        e.stamp = s;
                    }
                    continue;
                }
            }
            stats.parsed += 1;
            let parsed = read
                .map_err(|e| ManifestError {
                    file: name.clone(),
                    field: String::new(),
                    msg: e.to_string(),
                })
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| ManifestError {
                        file: name.clone(),
                        field: String::new(),
                        msg: "stream did not contain valid UTF-8".into(),
                    })
                })
                .and_then(|text| parse_file(&name, &text));
            let prev_good = old.and_then(|e| e.last_good.clone());
            let (last_good, error) = match parsed {
                Ok(objs) => (Some(objs), None),
                Err(e) => (prev_good.clone(), Some(e)),
            };
            if last_good != prev_good {
                changed.push((
                    p.clone(),
                    prev_good.unwrap_or_default(),
                    last_good.clone().unwrap_or_default(),
                ));
            }
            let stamp = stamp.unwrap_or(Stamp {
                len: u64::MAX,
                mtime: (0, 0),
                ctime: (0, 0),
                inode: 0,
                device: 0,
            });
            self.files.insert(
                p,
                FileEntry {
                    stamp,
                    content,
                    last_good,
                    error,
                },
            );
        }
        self.scanned_at = Some(started);
        self.racy = racy;
        if self.loaded && stats.parsed == 0 && stats.removed == 0 {
            return Ok(stats);
        }
        if self.full {
            self.owners.clear();
            self.merged = Model::default();
            changed = self
                .files
                .iter()
                .map(|(p, e)| {
                    (
                        p.clone(),
                        Vec::new(),
                        e.last_good.clone().unwrap_or_default(),
                    )
                })
                .collect();
        }
        self.apply(changed);
        let mut model = self.merged.clone();
        let mut errors: Vec<ManifestError> = self
            .files
            .values()
            .filter_map(|e| e.error.clone())
            .collect();
        // Against what was admitted last: the previous model's objects.
        errors.extend(admission::admit(&mut model, &self.model.anp));
        self.model = model;
        self.errors = errors;
        self.loaded = true;
        stats.changed = true;
        Ok(stats)
    }

    /// Updates the merged model for files whose objects changed.
    fn apply(&mut self, changed: Vec<(PathBuf, Vec<Object>, Vec<Object>)>) {
        let mut affected = BTreeSet::new();
        for (path, old, new) in changed {
            for o in &old {
                let k = key_of(o);
                if let Some(set) = self.owners.get_mut(&k) {
                    set.remove(&path);
                    if set.is_empty() {
                        self.owners.remove(&k);
                    }
                }
                affected.insert(k);
            }
            for o in &new {
                let k = key_of(o);
                self.owners
                    .entry(k.clone())
                    .or_default()
                    .insert(path.clone());
                affected.insert(k);
            }
        }
        for k in affected {
            remove_key(&mut self.merged, &k);
            // The last file (by name) defining the key wins, and in it the last document.
            let winner = self
                .owners
                .get(&k)
                .and_then(|set| set.iter().next_back())
                .and_then(|p| self.files.get(p))
                .and_then(|e| e.last_good.as_ref())
                .and_then(|objs| objs.iter().rev().find(|o| key_of(o) == k));
            if let Some(o) = winner {
                self.merged.insert(o.clone());
            }
        }
    }
}
