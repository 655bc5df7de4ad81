//! [`Repository`]: a published TUF repository on disk, changed incrementally.
//!
//! The published metadata is the database: opening a repository reads the newest root,
//! timestamp, snapshot and top-level targets; bins are read only when a change touches them.
//! A change publishes in the order the client reads in reverse: target files, then new
//! versions of the changed bins, then targets (if changed), then snapshot, then timestamp,
//! each file written atomically, so a client mid-update always finds every file the metadata
//! it holds names. Old versions are kept for `keep_versions` publishes, then removed.
//!
//! Layout of `DIR`: `metadata/` and `targets/` (the published tree, servable as static
//! files), `keys/` (private keys, never published; `--keys` moves them elsewhere) and
//! `packman-repo.json` (settings). Mutations hold `DIR/.packman-repo.lock`; `DIR/.replaced/`
//! holds links to files the last publish replaced, until the next one deletes them.
//!
//! This module holds [`Repository`] itself: opening and loading, bins and listing targets,
//! and small shared helpers. The jobs on it each have a module: `init` (creation),
//! `publish` (the publish pipeline), `signing` (signer cache and role keys), `roles` (key
//! changes and root rotation), `retention` (old versions, retired targets, graveyard),
//! `status` (status, bins summary, refresh) and `snapshot` (the snapshot as held, the
//! snapshot and timestamp job).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;

use packman_fs::{Durability, LockFile};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use packman_tuf::crypto::Signer;
use packman_tuf::layout;
use packman_tuf::metadata::{Extra, SPEC_VERSION};
use packman_tuf::{
    Envelope, Expires, MetaFile, OffsetDateTime, RoleKeys, Root, Snapshot, SuccinctRoles, TargetFile, Targets,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::batch::{Batch, Source, BULK_FILES};
use crate::bin::{Bin, PreparedTarget};
use crate::bin_style::{self, BinStyle};
use crate::keys::{KeyDir, KeyFile};
use crate::snapshot_text::SnapshotText;
use crate::{io, sign_metadata, sync_dir, write_atomic, Error};

mod init;
mod mirrors;
mod publish;
mod retention;
mod roles;
mod signing;
mod snapshot;
mod status;
#[cfg(test)]
mod testkit;

pub use roles::KeyChange;
pub use status::RoleStatus;

use publish::*;
use retention::*;
use signing::*;
use snapshot::*;

/// The signed field by which a timestamp names the current root version. packman's client
/// refuses a timestamp naming a root newer than the one it could fetch (a "hidden" root,
/// theupdateframework/specification#225); other clients ignore unknown fields.
pub use packman_tuf::metadata::ROOT_VERSION_FIELD;

/// Settings kept in `DIR/packman-repo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Number of published metadata versions kept for clients mid-update.
    pub keep_versions: u64,
    /// Lifetimes in days.
    pub expiry_days: ExpiryDays,
    /// Key directory, relative to DIR unless absolute.
    pub keys: PathBuf,
    /// The shape of the delegation to the bins, as last published (the published targets
    /// decides on open: a crash can fall between a publish and this file's rewrite).
    #[serde(default)]
    pub bin_style: BinStyle,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpiryDays {
    pub root: i64,
    pub targets: i64,
    pub bins: i64,
    pub snapshot: i64,
    pub timestamp: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keep_versions: 3,
            expiry_days: ExpiryDays { root: 365, targets: 365, bins: 90, snapshot: 30, timestamp: 1 },
            keys: PathBuf::from("keys"),
            bin_style: BinStyle::Succinct,
        }
    }
}

pub struct InitOptions {
    pub root_keys: usize,
    pub root_threshold: u64,
    /// Number of hashed bins: a power of two.
    pub bins: u64,
    /// How targets delegates to them.
    pub bin_style: BinStyle,
    pub keys: Option<PathBuf>,
    /// Passphrase to encrypt new private keys with (None: plain text).
    pub passphrase: Option<String>,
    /// How publishes make files durable (default: [`Durability::detect`]).
    pub durability: Durability,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            root_keys: 1,
            root_threshold: 1,
            bins: 256,
            bin_style: BinStyle::Succinct,
            keys: None,
            passphrase: None,
            durability: Durability::detect(),
        }
    }
}

/// What a publish wrote.
#[derive(Debug, Default, Clone)]
pub struct PublishReport {
    pub metadata_written: Vec<String>,
    pub targets_written: usize,
    pub removed: usize,
}

/// Supplies passphrases for encrypted keys.
pub type Passphrase<'a> = &'a mut dyn FnMut(&KeyFile) -> Result<String, Error>;

pub struct Repository {
    dir: PathBuf,
    settings: Settings,
    /// A key directory given for this command (offline keys), searched first.
    extra_keys: Option<PathBuf>,
    /// Signers loaded so far in this command, by keyid (each key file read and decrypted once).
    signer_cache: BTreeMap<String, Rc<Signer>>,
    _lock: LockFile,
    /// How publishes make files durable.
    durability: Durability,
    pub root: Root,
    pub timestamp: Timestamp,
    /// Read with [`Repository::snapshot`]: a one-file publish edits it as text.
    snapshot: Snap,
    pub targets: Targets,
    /// The bins' addressing, keys and threshold, in TAP 15 form whatever the published shape
    /// (`bin_style`): read from targets on open, and written back into it by
    /// [`Repository::set_bins_delegation`].
    bins_layout: SuccinctRoles,
    bin_style: BinStyle,
    /// Loaded bins by number. Hash maps: a bulk add looks a bin up per target, and at 16384
    /// bins a tree's cache misses cost microseconds each time.
    bins: HashMap<u64, Bin, BinHash>,
    targets_dirty: bool,
    /// Target files to publish, with where their bytes are.
    new_targets: Vec<(String, Source)>,
    /// A new root version ready to publish (bytes signed by both thresholds).
    pending_root: Option<Vec<u8>>,
    /// Consistent-snapshot target files no longer listed, awaiting removal (persisted in
    /// `DIR/retired-targets.json`).
    retired: Vec<Retired>,
    retired_changed: bool,
    now: OffsetDateTime,
}

const RETIRED_FILE: &str = "retired-targets.json";
/// Links to files publishes replaced, deleted by the next publish (see `Batch::graveyard`).
const GRAVEYARD_DIR: &str = ".replaced";

fn expiry(now: OffsetDateTime, days: i64) -> Expires {
    crate::new_expiry(now, days)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt { path: path.into(), reason: e.to_string() })
}

fn lock(dir: &Path) -> Result<LockFile, Error> {
    Ok(packman_fs::lock_exclusive(&dir.join(".packman-repo.lock"))?)
}

impl Repository {
    /// Opens an existing repository and takes its lock (waiting for a running command).
    pub fn open(dir: &Path, keys: Option<&Path>, now: OffsetDateTime) -> Result<Repository, Error> {
        let settings_path = dir.join("packman-repo.json");
        if !settings_path.exists() {
            return Err(Error::NotARepository { dir: dir.to_path_buf() });
        }
        let lock = lock(dir)?;
        let settings: Settings = read_json(&settings_path)?;
        let extra_keys = keys.map(|k| std::path::absolute(k).map_err(|e| io(k, e))).transpose()?;
        // The online roles' plaintext keys are loaded on a thread of their own while the
        // metadata is read (decoding them is a visible part of a one-file publish); encrypted ones wait
        // for the publish, which asks for their passphrase.
        let key_dir = Repository::key_dir_of(dir, &settings, extra_keys.as_deref());
        std::thread::scope(|s| {
            let preloading = std::thread::Builder::new().spawn_scoped(s, || plaintext_online_signers(&key_dir));
            let repo = Repository::read_metadata(dir, settings, extra_keys, lock, now)?;
            let preloaded = preloading.ok().and_then(|h| h.join().ok()).unwrap_or_default();
            Ok(repo.with_signers(preloaded))
        })
    }

    /// [`Repository::open`] after the settings are read: the metadata.
    fn read_metadata(
        dir: &Path,
        settings: Settings,
        extra_keys: Option<PathBuf>,
        lock: LockFile,
        now: OffsetDateTime,
    ) -> Result<Repository, Error> {
        let md = dir.join(layout::METADATA_DIR);
        let root: Envelope<Root> = read_json(&md.join(layout::ROOT_FILE))?;
        let timestamp: Envelope<Timestamp> = read_json(&md.join(layout::TIMESTAMP_FILE))?;
        let sv = timestamp.signed.snapshot_meta().version;
        let snapshot_path = md.join(layout::metadata_file("snapshot", Some(sv)));
        let snapshot_bytes = std::fs::read(&snapshot_path).map_err(|e| io(&snapshot_path, e))?;
        // Our own snapshot, in the layout we write: kept as text (see SnapshotText).
        let mut snapshot = match SnapshotText::parse(snapshot_bytes) {
            Ok(t) => Snap::Text(t),
            Err(bytes) => Snap::Parsed(
                serde_json::from_slice::<Envelope<Snapshot>>(&bytes)
                    .map_err(|e| Error::Corrupt { path: snapshot_path.clone(), reason: e.to_string() })?
                    .signed,
            ),
        };
        let tv = snapshot.meta_version(&layout::meta_key("targets")).ok_or_else(|| Error::Corrupt {
            path: md.join(layout::metadata_file("snapshot", Some(sv))),
            reason: "snapshot does not list targets.json".into(),
        })?;
        let targets_path = md.join(layout::metadata_file("targets", Some(tv)));
        let targets: Envelope<Targets> = read_json(&targets_path)?;
        let (bins_layout, bin_style) =
            targets.signed.delegations.as_ref().and_then(bin_style::read_delegation).ok_or_else(|| Error::Corrupt {
                path: targets_path,
                reason: "targets does not delegate to hashed bins in a shape packman writes (succinct_roles, or one \
                         role per bin with its path_hash_prefixes)"
                    .into(),
            })?;
        let mut settings = settings;
        settings.bin_style = bin_style;
        let retired_path = dir.join(RETIRED_FILE);
        let retired = if retired_path.exists() { read_json(&retired_path)? } else { Vec::new() };
        Ok(Repository {
            dir: dir.to_path_buf(),
            settings,
            extra_keys,
            signer_cache: BTreeMap::new(),
            _lock: lock,
            durability: Durability::detect(),
            root: root.signed,
            timestamp: timestamp.signed,
            snapshot,
            targets: targets.signed,
            bins_layout,
            bin_style,
            bins: HashMap::default(),
            targets_dirty: false,
            new_targets: Vec::new(),
            pending_root: None,
            retired,
            retired_changed: false,
            now,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How publishes make files durable ([`Durability::detect`] unless set).
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Makes the following publishes use `durability` (tests run both modes on Linux).
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where keys are found: the directory given for this command (new keys go there),
    /// then the repository's key directory.
    pub fn key_dir(&self) -> KeyDir {
        Repository::key_dir_of(&self.dir, &self.settings, self.extra_keys.as_deref())
    }

    fn key_dir_of(dir: &Path, settings: &Settings, extra_keys: Option<&Path>) -> KeyDir {
        let configured = resolve(dir, &settings.keys);
        match extra_keys {
            Some(k) => KeyDir::new(k.to_path_buf()).also(configured),
            None => KeyDir::new(configured),
        }
    }

    /// The bins' addressing, keys and threshold (in TAP 15 form, whatever the shape).
    fn succinct(&self) -> &SuccinctRoles {
        &self.bins_layout
    }

    /// The keyids that sign the bins.
    pub fn bins_keyids(&self) -> Vec<String> {
        self.bins_layout.keyids.clone()
    }

    /// How targets delegates to the bins.
    pub fn bin_style(&self) -> BinStyle {
        self.bin_style
    }

    /// Writes `packman-repo.json` from the settings held.
    fn write_settings(&self) -> Result<(), Error> {
        let path = self.dir.join("packman-repo.json");
        let bytes = serde_json::to_vec_pretty(&self.settings)
            .map_err(|e| Error::Settings { path: path.clone(), reason: e.to_string() })?;
        write_atomic(&path, &bytes)
    }

    /// Rewrites targets' delegation to the bins from `bins` in `style`, keeping the public
    /// keys of `bins.keyids` (from `new_keys`, else as delegated now); targets is then
    /// re-signed by the next publish. Refused, changing nothing, when clients would not fetch
    /// the result ([`bin_style::checked_delegation`]).
    fn set_bins_delegation(
        &mut self,
        bins: SuccinctRoles,
        style: BinStyle,
        new_keys: BTreeMap<String, packman_tuf::Key>,
    ) -> Result<(), Error> {
        let mut keys = self.targets.delegations.as_ref().map(|d| d.keys.clone()).unwrap_or_default();
        keys.extend(new_keys);
        keys.retain(|k, _| bins.keyids.contains(k));
        self.targets.delegations = Some(bin_style::checked_delegation(&bins, keys, style)?);
        self.bins_layout = bins;
        self.bin_style = style;
        self.settings.bin_style = style;
        self.targets_dirty = true;
        Ok(())
    }

    fn empty_bin(&self, version: u64) -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version,
            expires: expiry(self.now, self.settings.expiry_days.bins),
            targets: BTreeMap::new(),
            delegations: None,
            extra: Extra::new(),
        }
    }

    /// The name of the bin that lists `path`.
    pub fn bin_for(&self, path: &str) -> String {
        self.succinct().role_for_target(path)
    }

    /// The number of the bin that lists `path`.
    pub fn bin_index(&self, path: &str) -> u64 {
        self.succinct().bin_for_target(path)
    }

    pub fn bin_count(&self) -> u64 {
        self.succinct().bin_count()
    }

    pub fn bin_name(&self, bin: u64) -> String {
        self.succinct().bin_name(bin)
    }

    /// Loads (once) and returns bin number `bin` for reading.
    pub fn bin(&mut self, bin: u64) -> Result<&Bin, Error> {
        let b = self.loaded(bin)?;
        b.settle();
        Ok(b)
    }

    /// Loads (once) a bin, for reading through its `&mut` lookups (not marked changed).
    fn loaded(&mut self, bin: u64) -> Result<&mut Bin, Error> {
        self.load_bin(bin)?;
        Ok(self.bins.get_mut(&bin).expect("loaded"))
    }

    fn load_bin(&mut self, bin: u64) -> Result<(), Error> {
        if self.bins.contains_key(&bin) {
            return Ok(());
        }
        let name = self.bin_name(bin);
        let v = self.snapshot.meta_version(&layout::meta_key(&name)).ok_or_else(|| Error::NoRole(name.clone()))?;
        let env: Envelope<Targets> =
            read_json(&self.dir.join(layout::METADATA_DIR).join(layout::metadata_file(&name, Some(v))))?;
        self.bins.insert(bin, Bin::from_targets(env.signed));
        Ok(())
    }

    fn bin_mut(&mut self, bin: u64) -> Result<&mut Bin, Error> {
        let b = self.loaded(bin)?;
        b.changed = true;
        Ok(b)
    }

    /// Reads ahead what listing `paths` will read: their bins, loaded on two threads (a
    /// wheel add reads four, and parsing each takes a while), after telling the kernel they
    /// and `files` will be read soon (a bin read from a cold page cache waits for the disk;
    /// hinted, those reads overlap). Errors are left for the reads that need the files to
    /// report.
    pub fn prefetch(&mut self, paths: &[String], files: &[PathBuf]) {
        let md = self.dir.join(layout::METADATA_DIR);
        let mode = self.durability;
        let hint = |p: &Path| {
            if mode == Durability::Syncfs {
                if let Ok(f) = File::open(p) {
                    packman_fs::platform::read_ahead(mode, &f, 0, None);
                }
            }
        };
        let mut wanted: Vec<(u64, PathBuf)> = Vec::new();
        for path in paths {
            let bin = self.bin_index(path);
            if self.bins.contains_key(&bin) || wanted.iter().any(|(b, _)| *b == bin) {
                continue;
            }
            let name = self.bin_name(bin);
            if let Some(v) = self.snapshot.meta_version(&layout::meta_key(&name)) {
                let file = md.join(layout::metadata_file(&name, Some(v)));
                hint(&file);
                wanted.push((bin, file));
            }
        }
        files.iter().for_each(|f| hint(f));
        let read = |chunk: &[(u64, PathBuf)]| -> Vec<(u64, Bin)> {
            let parse =
                |(b, f): &(u64, PathBuf)| Some((*b, Bin::from_targets(read_json::<Envelope<Targets>>(f).ok()?.signed)));
            chunk.iter().filter_map(parse).collect()
        };
        let (mine, theirs) = wanted.split_at(wanted.len() / 2);
        let loaded = std::thread::scope(|s| {
            let other = match mine.is_empty() {
                true => None,
                false => std::thread::Builder::new().spawn_scoped(s, || read(theirs)).ok(),
            };
            let mut all = read(if other.is_some() { mine } else { &wanted });
            all.extend(other.and_then(|h| h.join().ok()).unwrap_or_default());
            all
        });
        self.bins.extend(loaded);
    }

    /// The signed description of `path`, if listed.
    pub fn target(&mut self, path: &str) -> Result<Option<TargetFile>, Error> {
        let bin = self.bin_index(path);
        Ok(self.loaded(bin)?.get(path))
    }

    /// Lists `path` with the content of `file` (copied into the published tree on publish).
    /// Returns its bin. `custom` becomes the target's custom data.
    pub fn add_target(&mut self, path: &str, file: &Path, custom: Option<serde_json::Value>) -> Result<String, Error> {
        let mut tf = describe_file(file)?;
        tf.custom = custom;
        self.add_described_target(path, file, tf)
    }

    /// As [`Repository::add_target`], with the file already hashed by [`describe_file`].
    pub fn add_described_target(&mut self, path: &str, file: &Path, tf: TargetFile) -> Result<String, Error> {
        self.add_read_target(path, file, tf, None)
    }

    /// As [`Repository::add_described_target`], with what [`read_described`] gave: the
    /// bytes, if kept, are published as they are (else `file` is copied, and checked).
    pub fn add_read_target(
        &mut self,
        path: &str,
        file: &Path,
        tf: TargetFile,
        bytes: Option<Vec<u8>>,
    ) -> Result<String, Error> {
        let source = match bytes {
            Some(b) => Source::Bytes(b),
            None => Source::File(file.to_path_buf()),
        };
        self.list_target(path, tf, source)
    }

    fn list_target(&mut self, path: &str, mut tf: TargetFile, source: Source) -> Result<String, Error> {
        check_target_path(path)?;
        let b = self.bin_index(path);
        let bin = self.bin_mut(b)?;
        let mut replaced = None;
        if let Some(old) = bin.get(path) {
            if old.custom.is_some() && tf.custom.is_none() {
                tf.custom = old.custom.clone();
            }
            replaced = old.hashes.get("sha256").filter(|h| Some(*h) != tf.hashes.get("sha256")).map(str::to_string);
        }
        bin.insert(path, tf);
        if let Some(sha256) = replaced {
            self.retire(path, sha256);
        }
        self.new_targets.push((path.to_string(), source));
        Ok(self.bin_name(b))
    }

    /// Lists `path` with a known description and no file to copy: for bulk imports where
    /// the files are already hosted (and for benchmarks). Returns the bin's number.
    pub fn add_target_info(&mut self, path: &str, info: TargetFile) -> Result<u64, Error> {
        self.add_prepared(Repository::prepare_target(path, info)?)
    }

    /// The part of [`Repository::add_target_info`] that needs no repository: checking the
    /// path, hashing it and converting the description. A bulk import runs it on other
    /// threads and lists the results with [`Repository::add_prepared`].
    pub fn prepare_target(path: &str, info: TargetFile) -> Result<PreparedTarget, Error> {
        check_target_path(path)?;
        Ok(PreparedTarget::new(path, info))
    }

    /// Lists a prepared target; returns its bin's number.
    pub fn add_prepared(&mut self, t: PreparedTarget) -> Result<u64, Error> {
        let b = self.succinct().bin_for_prefix(t.hash_prefix);
        self.bin_mut(b)?.push(t.path, t.entry);
        Ok(b)
    }

    /// Lists `path` with in-memory content, written straight to the target's name on publish.
    pub fn add_target_bytes(
        &mut self,
        path: &str,
        data: impl Into<Vec<u8>>,
        custom: Option<serde_json::Value>,
    ) -> Result<String, Error> {
        let data = data.into();
        let mut tf = packman_tuf::target::describe(&data);
        tf.custom = custom;
        self.list_target(path, tf, Source::Bytes(data))
    }

    /// Removes `path` from its bin. Returns whether it was listed.
    pub fn remove_target(&mut self, path: &str) -> Result<bool, Error> {
        let b = self.bin_index(path);
        if !self.loaded(b)?.contains(path) {
            return Ok(false);
        }
        let old = self.bin_mut(b)?.remove(path);
        if let Some(sha256) = old.as_ref().and_then(|t| t.hashes.get("sha256")) {
            self.retire(path, sha256.to_string());
        }
        Ok(true)
    }

    /// Changes the custom data of a listed target.
    pub fn set_custom(&mut self, path: &str, f: impl FnOnce(&mut serde_json::Value)) -> Result<bool, Error> {
        let b = self.bin_index(path);
        let Some(mut t) = self.loaded(b)?.get(path) else { return Ok(false) };
        f(t.custom.get_or_insert_with(|| serde_json::json!({})));
        self.bin_mut(b)?.insert(path, t);
        Ok(true)
    }

    /// The current snapshot (read in full on first use: a one-file publish does not need to).
    pub fn snapshot(&mut self) -> &Snapshot {
        self.snapshot.parsed()
    }

    pub fn now(&self) -> OffsetDateTime {
        self.now
    }
}

fn resolve(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Target paths become file paths: refuse anything that could leave `targets/`.
pub fn check_target_path(path: &str) -> Result<(), Error> {
    let bad = |reason: &'static str| Err(Error::TargetPath { path: path.to_string(), reason });
    if path.is_empty() || path.len() > 1024 {
        return bad("must be 1 to 1024 bytes");
    }
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return bad("must be relative, with '/' separators");
    }
    if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return bad("has an empty, '.' or '..' segment");
    }
    Ok(())
}

/// [`describe_file`], keeping the bytes when the file is at most `keep_up_to` bytes long: a
/// publish then writes exactly what was hashed, without reading the file again.
pub fn read_described(path: &Path, keep_up_to: u64) -> Result<(TargetFile, Option<Vec<u8>>), Error> {
    let len = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    if len > keep_up_to {
        return Ok((describe_file(path)?, None));
    }
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    Ok((packman_tuf::target::describe(&bytes), Some(bytes)))
}

/// Length, sha256 and sha512 of a file, read once: its TUF target description (by the
/// trust core's describer).
pub fn describe_file(path: &Path) -> Result<TargetFile, Error> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    packman_tuf::target::describe_reader(file).map_err(|e| io(path, e))
}

/// `f` over each half of `items`, each half on a thread of its own (the machines have two
/// cores); the results in order.
fn on_two_threads<T: Sync, R: Send>(
    task: &'static str,
    items: &[T],
    f: impl Fn(&[T]) -> Result<R, Error> + Sync,
) -> Result<Vec<R>, Error> {
    let per = items.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| f(c))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::WorkerPanicked { task }))).collect()
    })
}
