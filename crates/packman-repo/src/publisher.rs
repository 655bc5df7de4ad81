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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;

use packman_fs::{Durability, LockFile};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use packman_tuf::crypto::Signer;
use packman_tuf::metadata::{Extra, SPEC_VERSION};
use packman_tuf::{
    Delegations, Envelope, Expires, Hashes, MetaFile, OffsetDateTime, RoleKeys, Root, Snapshot, SuccinctRoles,
    TargetFile, Targets, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::batch::{Batch, Source, BULK_FILES};
use crate::bin::{Bin, PreparedTarget};
use crate::keys::{KeyDir, KeyFile};
use crate::snapshot_text::SnapshotText;
use crate::{io, sign_metadata, sync_dir, write_atomic, Error};

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
        }
    }
}

pub struct InitOptions {
    pub root_keys: usize,
    pub root_threshold: u64,
    /// Number of hashed bins: a power of two.
    pub bins: u64,
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

/// A target file replaced by new content or removed: `targets/<dir>/<sha256>.<name>`
/// stays published while a snapshot that may lead a client to it is kept, then goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Retired {
    path: String,
    sha256: String,
    /// The newest snapshot version that still (possibly) listed it; `None` until the
    /// publish that unlists it.
    last_snapshot: Option<u64>,
}

const RETIRED_FILE: &str = "retired-targets.json";
/// Links to files publishes replaced, deleted by the next publish (see `Batch::graveyard`).
const GRAVEYARD_DIR: &str = ".replaced";

/// The current snapshot: as the text of our own file (see [`SnapshotText`]), parsed (new
/// repositories, other layouts, or once a publish lists a new role), or the canonical text
/// just published, read again only if needed (the signed part: `[head, canonical, tail]`
/// was written).
enum Snap {
    Text(SnapshotText),
    Parsed(Snapshot),
    Published { canonical: Vec<u8>, version: u64, expires: Expires },
}

impl Snap {
    fn version(&self) -> u64 {
        match self {
            Snap::Text(t) => t.version,
            Snap::Parsed(s) => s.version,
            Snap::Published { version, .. } => *version,
        }
    }

    fn expires(&self) -> Expires {
        match self {
            Snap::Text(t) => t.expires,
            Snap::Parsed(s) => s.expires,
            Snap::Published { expires, .. } => *expires,
        }
    }

    /// Reads a just-published snapshot again.
    fn reread(&mut self) {
        if let Snap::Published { canonical, .. } = self {
            *self = match SnapshotText::parse(std::mem::take(canonical)) {
                Ok(t) => Snap::Text(t),
                Err(bytes) => {
                    Snap::Parsed(serde_json::from_slice(&bytes).expect("a snapshot this process serialised reads back"))
                }
            };
        }
    }

    fn meta_version(&mut self, name: &str) -> Option<u64> {
        self.reread();
        match self {
            Snap::Text(t) => t.meta_version(name),
            Snap::Parsed(s) => s.meta.version(name),
            Snap::Published { .. } => unreachable!("reread"),
        }
    }

    fn set_meta_version(&mut self, name: String, version: u64) {
        self.reread();
        if let Snap::Text(t) = self {
            if t.set_meta_version(&name, version) {
                return;
            }
        }
        self.parsed().meta.insert(name, MetaFile::new(version));
    }

    fn set_head(&mut self, version: u64, expires: Expires) {
        self.reread();
        match self {
            Snap::Text(t) => (t.version, t.expires) = (version, expires),
            Snap::Parsed(s) => (s.version, s.expires) = (version, expires),
            Snap::Published { .. } => unreachable!("reread"),
        }
    }

    fn parsed(&mut self) -> &mut Snapshot {
        self.reread();
        if let Snap::Text(t) = self {
            *self = Snap::Parsed(t.to_snapshot());
        }
        match self {
            Snap::Parsed(s) => s,
            _ => unreachable!("converted above"),
        }
    }
}

/// Hashes bin numbers with one multiplication (Fibonacci hashing): the default SipHash was
/// a visible share of a million-target bulk add, and bin numbers come from a public hash
/// anyway (no flooding to defend against).
#[derive(Default, Clone, Copy)]
struct BinHasher(u64);

impl std::hash::Hasher for BinHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type BinHash = std::hash::BuildHasherDefault<BinHasher>;

/// What `bins_summary` reads of a bin: its expiry and how many targets it lists.
#[derive(Deserialize)]
struct BinHead {
    signed: BinHeadSigned,
}

#[derive(Deserialize)]
struct BinHeadSigned {
    expires: Expires,
    targets: EntryCount,
}

/// The number of entries of a JSON object, read without building them.
struct EntryCount(usize);

impl<'de> Deserialize<'de> for EntryCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EntryCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<EntryCount, A::Error> {
                let mut n = 0;
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(EntryCount(n))
            }
        }
        d.deserialize_map(V)
    }
}

fn expiry(now: OffsetDateTime, days: i64) -> Expires {
    crate::new_expiry(now, days)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt { path: path.into(), reason: e.to_string() })
}

/// Signers for the plaintext key files of the online roles in `key_dir` (in its search
/// order). Errors are left for the publish, which loads what it still needs and reports
/// what it cannot.
fn plaintext_online_signers(key_dir: &KeyDir) -> Vec<Signer> {
    let online = ["targets", "bins", "snapshot", "timestamp"];
    let files = key_dir.list().unwrap_or_default();
    let wanted = files.iter().filter(|k| !k.encrypted && online.contains(&k.role.as_str()));
    wanted.filter_map(|k| k.signer(&mut |_| Err(Error::Invalid("not encrypted".into()))).ok()).collect()
}

fn lock(dir: &Path) -> Result<LockFile, Error> {
    Ok(packman_fs::lock_exclusive(&dir.join(".packman-repo.lock"))?)
}

impl Repository {
    /// Creates a new repository in `dir` (which must not already hold one): keys for every
    /// role, root v1 signed by all root keys, targets delegating everything to `bins`
    /// succinct hashed bins, and the first snapshot and timestamp.
    pub fn init(dir: &Path, opts: &InitOptions, now: OffsetDateTime) -> Result<Repository, Error> {
        Repository::init_with(dir, opts, now, |_| Ok(()))
    }

    /// As [`Repository::init`], with `fill` listing targets before the first publish: a bulk
    /// import writes each bin once instead of an empty version first.
    pub fn init_with(
        dir: &Path,
        opts: &InitOptions,
        now: OffsetDateTime,
        fill: impl FnOnce(&mut Repository) -> Result<(), Error>,
    ) -> Result<Repository, Error> {
        if !opts.bins.is_power_of_two() || opts.bins < 2 || opts.bins > 1 << 32 {
            return Err(Error::Invalid(format!("--bins {} must be a power of two between 2 and 2^32", opts.bins)));
        }
        if opts.root_threshold < 1 || opts.root_threshold as usize > opts.root_keys {
            return Err(Error::Invalid(format!(
                "--root-threshold {} cannot be met by {} root key(s)",
                opts.root_threshold, opts.root_keys
            )));
        }
        if dir.join("packman-repo.json").exists() || dir.join("metadata").exists() {
            return Err(Error::Invalid(format!("{} already holds a repository", dir.display())));
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock = lock(dir)?;
        let mut settings = Settings::default();
        if let Some(k) = &opts.keys {
            settings.keys = std::path::absolute(k).map_err(|e| io(k, e))?;
        }
        let keydir = KeyDir::new(resolve(dir, &settings.keys));
        let pass = opts.passphrase.as_deref();
        let gen = |role: &str, n: usize| -> Result<Vec<Signer>, Error> {
            (0..n).map(|_| keydir.generate(role, pass)).collect()
        };
        let root_signers = gen("root", opts.root_keys)?;
        let mut role_signers = BTreeMap::new();
        for role in ["targets", "snapshot", "timestamp", "bins"] {
            role_signers.insert(role, gen(role, 1)?);
        }
        let mut keys = BTreeMap::new();
        for s in root_signers.iter().chain(role_signers.values().flatten()) {
            keys.insert(s.keyid().to_string(), s.public_key().clone());
        }
        let ids = |v: &[Signer]| v.iter().map(|s| s.keyid().to_string()).collect::<Vec<_>>();
        let mut roles = BTreeMap::new();
        roles.insert(
            "root".into(),
            RoleKeys { keyids: ids(&root_signers), threshold: opts.root_threshold, extra: Extra::new() },
        );
        for role in ["targets", "snapshot", "timestamp"] {
            roles.insert(role.into(), RoleKeys { keyids: ids(&role_signers[role]), threshold: 1, extra: Extra::new() });
        }
        keys.retain(|k, _| !role_signers["bins"].iter().any(|s| s.keyid() == k));
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: expiry(now, settings.expiry_days.root),
            consistent_snapshot: Some(true),
            keys,
            roles,
            extra: Extra::new(),
        };
        let bins_signer = &role_signers["bins"][0];
        let targets = Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: expiry(now, settings.expiry_days.targets),
            targets: BTreeMap::new(),
            delegations: Some(Delegations {
                keys: BTreeMap::from([(bins_signer.keyid().to_string(), bins_signer.public_key().clone())]),
                roles: None,
                succinct_roles: Some(SuccinctRoles {
                    keyids: vec![bins_signer.keyid().to_string()],
                    threshold: 1,
                    bit_length: opts.bins.trailing_zeros(),
                    name_prefix: "bins".into(),
                    extra: Extra::new(),
                }),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        };
        let md = dir.join("metadata");
        std::fs::create_dir_all(&md).map_err(|e| io(&md, e))?;
        std::fs::create_dir_all(dir.join("targets")).map_err(|e| io(dir, e))?;
        if opts.durability == Durability::PerFile {
            // syncfs would make the new directories' entries durable with the first publish.
            sync_dir(dir)?;
        }
        let root_bytes = sign_metadata(&root, &root_signers.iter().collect::<Vec<_>>())?;
        write_atomic(&md.join("1.root.json"), &root_bytes)?;
        write_atomic(&md.join("root.json"), &root_bytes)?;
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: expiry(now, settings.expiry_days.snapshot),
            meta: Default::default(),
            extra: Extra::new(),
        };
        let timestamp = Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: expiry(now, settings.expiry_days.timestamp),
            meta: [("snapshot.json".to_string(), MetaFile::new(1))].into_iter().collect(),
            extra: Extra::new(),
        };
        let settings_bytes = serde_json::to_vec_pretty(&settings).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut repo = Repository {
            dir: dir.to_path_buf(),
            settings,
            extra_keys: None,
            signer_cache: BTreeMap::new(),
            _lock: lock,
            durability: opts.durability,
            root,
            timestamp,
            snapshot: Snap::Parsed(snapshot),
            targets,
            bins: HashMap::default(),
            targets_dirty: false,
            new_targets: Vec::new(),
            pending_root: None,
            retired: Vec::new(),
            retired_changed: false,
            now,
        };
        // Every bin exists from the start (empty), so clients can tell "not here" from
        // "missing".
        let mut empty = Bin::from_targets(repo.empty_bin(0));
        empty.changed = true;
        for b in 0..repo.succinct().bin_count() {
            repo.bins.insert(b, empty.clone());
        }
        repo.targets.version = 0;
        repo.targets_dirty = true;
        fill(&mut repo)?;
        let mut no_pass = |_: &KeyFile| -> Result<String, Error> {
            pass.map(str::to_string).ok_or_else(|| Error::Invalid("no passphrase".into()))
        };
        repo.publish(&mut no_pass)?;
        write_atomic(&dir.join("packman-repo.json"), &settings_bytes)?;
        Ok(repo)
    }

    /// Opens an existing repository and takes its lock (waiting for a running command).
    pub fn open(dir: &Path, keys: Option<&Path>, now: OffsetDateTime) -> Result<Repository, Error> {
        let settings_path = dir.join("packman-repo.json");
        if !settings_path.exists() {
            return Err(Error::Invalid(format!(
                "{} is not a packman repository (no packman-repo.json)",
                dir.display()
            )));
        }
        let lock = lock(dir)?;
        let settings: Settings = read_json(&settings_path)?;
        let extra_keys = keys.map(|k| std::path::absolute(k).map_err(|e| io(k, e))).transpose()?;
        // The online roles' plaintext keys are loaded on a thread of their own while the
        // metadata is read (0.25 ms of a one-file publish, measured); encrypted ones wait
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
        let md = dir.join("metadata");
        let root: Envelope<Root> = read_json(&md.join("root.json"))?;
        let timestamp: Envelope<Timestamp> = read_json(&md.join("timestamp.json"))?;
        let sv = timestamp.signed.snapshot_meta().version;
        let snapshot_path = md.join(format!("{sv}.snapshot.json"));
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
        let tv = snapshot.meta_version("targets.json").ok_or_else(|| Error::Corrupt {
            path: md.join(format!("{sv}.snapshot.json")),
            reason: "snapshot does not list targets.json".into(),
        })?;
        let targets: Envelope<Targets> = read_json(&md.join(format!("{tv}.targets.json")))?;
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

    fn with_signers(mut self, signers: Vec<Signer>) -> Repository {
        for signer in signers {
            self.signer_cache.entry(signer.keyid().to_string()).or_insert_with(|| Rc::new(signer));
        }
        self
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

    fn succinct(&self) -> &SuccinctRoles {
        self.targets
            .delegations
            .as_ref()
            .and_then(|d| d.succinct_roles.as_ref())
            .expect("packman repositories delegate to succinct bins")
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
        let v = self.snapshot.meta_version(&format!("{name}.json")).ok_or_else(|| Error::NoRole(name.clone()))?;
        let env: Envelope<Targets> = read_json(&self.dir.join("metadata").join(format!("{v}.{name}.json")))?;
        self.bins.insert(bin, Bin::from_targets(env.signed));
        Ok(())
    }

    fn bin_mut(&mut self, bin: u64) -> Result<&mut Bin, Error> {
        let b = self.loaded(bin)?;
        b.changed = true;
        Ok(b)
    }

    /// Reads ahead what listing `paths` will read: their bins, loaded on two threads (a
    /// wheel add reads four, 0.1-0.2 ms each to parse), after telling the kernel they and
    /// `files` will be read soon (a bin read from a cold page cache waits for the disk,
    /// 0.6-1.1 ms each measured here; hinted, those reads overlap). Errors are left for the
    /// reads that need the files to report.
    pub fn prefetch(&mut self, paths: &[String], files: &[PathBuf]) {
        let md = self.dir.join("metadata");
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
            if let Some(v) = self.snapshot.meta_version(&format!("{name}.json")) {
                let file = md.join(format!("{v}.{name}.json"));
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
        let mut tf = describe_bytes(&data);
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

    fn retire(&mut self, path: &str, sha256: String) {
        self.retired.push(Retired { path: path.to_string(), sha256, last_snapshot: None });
        self.retired_changed = true;
    }

    /// Changes the custom data of a listed target.
    pub fn set_custom(&mut self, path: &str, f: impl FnOnce(&mut serde_json::Value)) -> Result<bool, Error> {
        let b = self.bin_index(path);
        let Some(mut t) = self.loaded(b)?.get(path) else { return Ok(false) };
        f(t.custom.get_or_insert_with(|| serde_json::json!({})));
        self.bin_mut(b)?.insert(path, t);
        Ok(true)
    }

    fn signers(
        &mut self,
        role: &str,
        keyids: &[String],
        threshold: u64,
        pass: Passphrase,
    ) -> Result<Vec<Rc<Signer>>, Error> {
        let kd = self.key_dir();
        let wanted: Vec<String> = keyids.iter().filter(|k| !self.signer_cache.contains_key(*k)).cloned().collect();
        if !wanted.is_empty() {
            for signer in kd.signers_for(&wanted, pass)? {
                self.signer_cache.insert(signer.keyid().to_string(), Rc::new(signer));
            }
        }
        let s: Vec<Rc<Signer>> = keyids.iter().filter_map(|k| self.signer_cache.get(k).cloned()).collect();
        if (s.len() as u64) < threshold {
            let missing: Vec<String> = keyids
                .iter()
                .filter(|k| !s.iter().any(|x| x.keyid() == k.as_str()))
                .map(|k| k[..k.len().min(12)].to_string())
                .collect();
            return Err(Error::MissingKeys {
                role: role.into(),
                have: s.len(),
                threshold,
                missing: missing.join(", "),
                searched: kd.dirs().iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(s)
    }

    /// Loads the signers for `keyids` that key files exist for (missing ones are reported
    /// by [`Repository::signers`], per role).
    fn preload_signers(&mut self, keyids: &[String], pass: Passphrase) -> Result<(), Error> {
        let wanted: Vec<String> = keyids.iter().filter(|k| !self.signer_cache.contains_key(*k)).cloned().collect();
        if !wanted.is_empty() {
            for signer in self.key_dir().signers_for(&wanted, pass)? {
                self.signer_cache.insert(signer.keyid().to_string(), Rc::new(signer));
            }
        }
        Ok(())
    }

    /// The keyids and threshold of `role` (a top-level role, or "bins").
    fn role_keys(&self, role: &str) -> Result<(Vec<String>, u64), Error> {
        match role {
            "bins" => {
                let s = self.succinct();
                Ok((s.keyids.clone(), s.threshold))
            }
            r => {
                let rk = self.root.roles.get(r).ok_or_else(|| Error::NoRole(r.into()))?;
                Ok((rk.keyids.clone(), rk.threshold))
            }
        }
    }

    fn role_signers(&mut self, role: &str, pass: Passphrase) -> Result<Vec<Rc<Signer>>, Error> {
        let (ids, threshold) = self.role_keys(role)?;
        self.signers(role, &ids, threshold, pass)
    }

    /// Whether anything is waiting to be published.
    pub fn has_changes(&self) -> bool {
        self.targets_dirty || !self.new_targets.is_empty() || self.bins.values().any(|b| b.changed)
    }

    /// Signs and writes every change: target files, changed bins, targets, snapshot and
    /// timestamp. Clients see none of it until the new timestamp is put in place, last, once
    /// everything it leads to is durable. All signing keys are loaded before anything is
    /// written, so a missing key or wrong passphrase leaves the published tree untouched.
    pub fn publish(&mut self, pass: Passphrase) -> Result<PublishReport, Error> {
        let mut report = PublishReport::default();
        let mut bins_dirty: Vec<u64> = self.bins.iter().filter(|(_, b)| b.changed).map(|(n, _)| *n).collect();
        bins_dirty.sort_unstable();
        let targets_dirty = self.targets_dirty;
        // Every key this publish needs, from one reading of the key directories.
        let mut needed: Vec<&str> = vec!["snapshot", "timestamp"];
        needed.extend(targets_dirty.then_some("targets"));
        needed.extend((!bins_dirty.is_empty()).then_some("bins"));
        let mut ids = Vec::new();
        for role in needed {
            ids.extend(self.role_keys(role)?.0);
        }
        self.preload_signers(&ids, pass)?;
        let bin_signers = if bins_dirty.is_empty() { Vec::new() } else { self.role_signers("bins", pass)? };
        let targets_signers = if targets_dirty { self.role_signers("targets", pass)? } else { Vec::new() };
        let snapshot_signers = self.role_signers("snapshot", pass)?;
        let timestamp_signers = self.role_signers("timestamp", pass)?;

        let md = self.dir.join("metadata");
        // 0. A new root, if one is ready (all other keys were loaded above, under it).
        if let Some(bytes) = self.pending_root.take() {
            let v = self.root.version;
            write_new(&md.join(format!("{v}.root.json")), &bytes)?;
            write_atomic(&md.join("root.json"), &bytes)?;
            sync_dir(&md)?;
            report.metadata_written.push(format!("{v}.root.json"));
            let _ = std::fs::remove_file(self.dir.join("staged/root.json"));
        }
        // 1. New versions of the changed bins and targets, listed in the snapshot.
        let files = self.new_targets.len() * 2 + bins_dirty.len() + 1;
        let mut batch = Batch::new(files > BULK_FILES, self.durability);
        batch.graveyard(self.dir.join(GRAVEYARD_DIR), &[md.join("timestamp.json"), self.dir.join(RETIRED_FILE)]);
        let mut written = Vec::new();
        let expires_bins = expiry(self.now, self.settings.expiry_days.bins);
        for b in &bins_dirty {
            let bin = self.bins.get_mut(b).expect("dirty bins are loaded");
            bin.settle();
            bin.bump(expires_bins);
        }
        for b in &bins_dirty {
            let (v, name) = (self.bins[b].version(), self.bin_name(*b));
            self.snapshot.set_meta_version(format!("{name}.json"), v);
            written.push(format!("{v}.{name}.json"));
        }
        if targets_dirty {
            self.targets.version += 1;
            self.targets.expires = expiry(self.now, self.settings.expiry_days.targets);
            let v = self.targets.version;
            self.snapshot.set_meta_version("targets.json".into(), v);
            written.push(format!("{v}.targets.json"));
        }
        // 2. Snapshot and timestamp (nothing leads to them yet: the timestamp goes to a temp
        //    file, put in place by the commit once everything it leads to is durable).
        for r in self.retired.iter_mut().filter(|r| r.last_snapshot.is_none()) {
            r.last_snapshot = Some(self.snapshot.version());
        }
        let sv = self.snapshot.version() + 1;
        let snapshot_expires = expiry(self.now, self.settings.expiry_days.snapshot);
        self.snapshot.set_head(sv, snapshot_expires);
        // Versions older than the newest `keep_versions` of each role, and the target files
        // only those led to: deleted from now on while this publish goes on, as neither the
        // new timestamp nor (with `keep_versions` 2 or more) the one it replaces leads there.
        // Deleting and creating files both cost more than rewriting one (see Batch::recycle):
        // with no timestamp left leading to them, old versions become the new ones.
        let unreferenced = self.settings.keep_versions >= 2;
        let rewrite = unreferenced && !batch.is_bulk();
        let mut old = Vec::new();
        for (old_version, new_version) in self.old_versions(&bins_dirty, targets_dirty) {
            if rewrite {
                batch.recycle(old_version, new_version);
            } else {
                old.push(old_version);
            }
        }
        let plan = self.plan_targets(&mut batch, &mut report)?;
        let mut dead = self.collect_retired_targets(&mut batch)?;
        if rewrite {
            dead = rewrite_dead_targets(&mut batch, dead, &plan);
        }
        old.append(&mut dead);
        batch.remove(old, unreferenced);
        // The snapshot and timestamp are signed and written on a thread of their own while
        // this one writes the target files and signs the bins: neither needs the other's
        // output (the snapshot names bin versions, set above), and each half takes about a
        // millisecond of a one-file publish. Bulk publishes sign bins on two threads instead.
        let job = SnapshotJob {
            snapshot: std::mem::replace(
                &mut self.snapshot,
                Snap::Published { canonical: Vec::new(), version: sv, expires: snapshot_expires },
            ),
            timestamp: self.timestamp.clone(),
            version: sv,
            expires: snapshot_expires,
            timestamp_expires: expiry(self.now, self.settings.expiry_days.timestamp),
            root_version: self.root.version,
            md: md.clone(),
        };
        let snapshot_refs: Vec<&Signer> = snapshot_signers.iter().map(|s| &**s).collect();
        let timestamp_refs: Vec<&Signer> = timestamp_signers.iter().map(|s| &**s).collect();
        let done = if batch.is_bulk() {
            let done = job.run(&mut batch, &snapshot_refs, &timestamp_refs)?;
            write_targets(&mut batch, plan)?;
            self.write_bins(&mut batch, &bins_dirty, &bin_signers, &targets_signers)?;
            done
        } else {
            // The target files are written here after the bins: with the rewrites no longer
            // freeing blocks, the bins and target files together take about as long as the
            // snapshot and timestamp (wheel add 9.9 -> 9.4 and 10.6 -> 10.1 ms against
            // writing the target files on the side thread, interleaved, 40 rounds each).
            let paths = vec![md.join(format!("{sv}.snapshot.json")), md.join("timestamp.json")];
            let mut side = batch.split_off(&paths);
            let (done, side) = std::thread::scope(|s| {
                let (snapshot_refs, timestamp_refs) = (&snapshot_refs, &timestamp_refs);
                let handle = s.spawn(move || {
                    let done = job.run(&mut side, snapshot_refs, timestamp_refs);
                    (done, side)
                });
                let mine = self
                    .write_bins(&mut batch, &bins_dirty, &bin_signers, &targets_signers)
                    .and_then(|()| write_targets(&mut batch, plan));
                let (done, side) = handle.join().map_err(|_| Error::Invalid("worker thread panicked".into()))?;
                mine?;
                Ok::<_, Error>((done?, side))
            })?;
            batch.absorb(side);
            done
        };
        (self.snapshot, self.timestamp) = done;
        written.push(format!("{sv}.snapshot.json"));
        report.removed = batch.commit()?;
        // Earlier versions staged generated targets here; only a crash left it behind.
        let _ = std::fs::remove_dir_all(self.dir.join(".staging"));
        written.push("timestamp.json".into());
        for b in &bins_dirty {
            self.bins.get_mut(b).expect("loaded").changed = false;
        }
        self.targets_dirty = false;
        report.metadata_written.extend(written);
        Ok(report)
    }

    /// Step 3 of [`Repository::publish`], planned: the new target files, under their
    /// consistent-snapshot names (dir/SHA256.name), and for Python clients reading a static
    /// host, under their plain names too (file names of distributions are immutable, as on
    /// PyPI). [`write_targets`] writes them.
    fn plan_targets(&mut self, batch: &mut Batch, report: &mut PublishReport) -> Result<Vec<TargetWrite>, Error> {
        let td = self.dir.join("targets");
        let mut plan = Vec::new();
        for (path, src) in std::mem::take(&mut self.new_targets) {
            let bin = self.bin_index(&path);
            let Some(tf) = self.bins.get_mut(&bin).and_then(|b| b.get(&path)) else { continue };
            let sha = tf.hashes.get("sha256").unwrap_or_default().to_string();
            let (d, f) = split_path(&path);
            let dest_dir = td.join(d);
            batch.create_dir_all(&dest_dir)?;
            let dest = dest_dir.join(format!("{sha}.{f}"));
            // Content-addressed: a file already there is reused if it holds these bytes
            // (the same content added again), and rewritten if not (a crash mid-write).
            let write = !holds(&dest, tf.length, &sha);
            report.targets_written += usize::from(write);
            // The same bytes under the plain name: a hard link, not a second copy to write
            // and sync.
            let plain = plain_copy_wanted(&path).then(|| dest_dir.join(f));
            plan.push(TargetWrite { src, len: tf.length, sha, dest, write, plain });
        }
        Ok(plan)
    }

    /// Step 4 of [`Repository::publish`]: the changed bins (and targets) signed, into `batch`.
    fn write_bins(
        &mut self,
        batch: &mut Batch,
        bins_dirty: &[u64],
        bin_signers: &[Rc<Signer>],
        targets_signers: &[Rc<Signer>],
    ) -> Result<(), Error> {
        let md = self.dir.join("metadata");

        // Signing is most of a big publish: in bulk mode (files written straight to their
        // new names, one filesystem sync at the end) it is split over two threads, each
        // writing its files (measured: 1.1 s for 16384 bins of a 1M-target build, against
        // 1.35 s with two signing threads handing their files to one writer).
        let bin_signer_refs: Vec<&Signer> = bin_signers.iter().map(|s| &**s).collect();
        let bins = &self.bins;
        let succinct = self.succinct();
        let sign_each = |numbers: &[u64], out: &mut FileSink| {
            // Bins with identical content (all the empty ones at init) are signed once.
            let mut last: Option<(&Bin, Vec<u8>)> = None;
            for n in numbers {
                let b = &bins[n];
                if !matches!(&last, Some((t, _)) if *t == b) {
                    last = Some((b, b.sign(&bin_signer_refs)?));
                }
                let bytes = &last.as_ref().expect("just set").1;
                out(md.join(format!("{}.{}.json", b.version(), succinct.bin_name(*n))), bytes)?;
            }
            Ok::<(), Error>(())
        };
        if batch.is_bulk() && bins_dirty.len() >= 64 {
            let locals = on_two_threads(bins_dirty, |numbers| {
                let mut local = Batch::new(true, batch.durability());
                sign_each(numbers, &mut |p, b| local.write(&p, b)).map(|()| local)
            })?;
            for local in locals {
                batch.absorb(local);
            }
        } else {
            sign_each(bins_dirty, &mut |p, b| batch.write(&p, b))?;
        }
        if self.targets_dirty {
            let bytes = sign_metadata(&self.targets, &targets_signers.iter().map(|s| &**s).collect::<Vec<_>>())?;
            batch.write(&md.join(format!("{}.targets.json", self.targets.version)), &bytes)?;
        }
        Ok(())
    }

    /// The next timestamp version, signed.
    fn sign_timestamp(&mut self, signers: &[Rc<Signer>]) -> Result<Vec<u8>, Error> {
        let expires = expiry(self.now, self.settings.expiry_days.timestamp);
        let signers: Vec<&Signer> = signers.iter().map(|s| &**s).collect();
        next_timestamp(&mut self.timestamp, expires, self.root.version, &signers)
    }

    fn write_timestamp(&mut self, signers: &[Rc<Signer>]) -> Result<(), Error> {
        let bytes = self.sign_timestamp(signers)?;
        let md = self.dir.join("metadata");
        write_atomic(&md.join("timestamp.json"), &bytes)?;
        sync_dir(&md)
    }

    /// Retired target files that no kept snapshot can lead to any more (snapshots older than
    /// the newest `keep_versions` go in this publish), unless the same content is listed
    /// again: returned, to go with the batch's old versions. The list that remains replaces
    /// the stored one with the batch (losing it in a crash only leaves files behind).
    fn collect_retired_targets(&mut self, batch: &mut Batch) -> Result<Vec<PathBuf>, Error> {
        let mut remove = Vec::new();
        let keep = self.settings.keep_versions.max(1);
        let current = self.snapshot.version();
        let mut kept = Vec::with_capacity(self.retired.len());
        for r in std::mem::take(&mut self.retired) {
            let due = r.last_snapshot.is_some_and(|last| last + keep <= current);
            if !due {
                kept.push(r);
                continue;
            }
            self.retired_changed = true;
            let listed_again = self.target(&r.path)?.is_some_and(|t| t.hashes.get("sha256") == Some(&r.sha256));
            if listed_again {
                continue;
            }
            let (d, f) = split_path(&r.path);
            remove.push(self.dir.join("targets").join(d).join(format!("{}.{f}", r.sha256)));
        }
        self.retired = kept;
        if self.retired_changed {
            batch.replace(
                &self.dir.join(RETIRED_FILE),
                &serde_json::to_vec_pretty(&self.retired).expect("serialisable"),
            )?;
            self.retired_changed = false;
        }
        Ok(remove)
    }

    /// Metadata versions older than the newest `keep_versions` of each role just rewritten
    /// (clients that started an update with them have had that many publishes), to remove,
    /// each with the new version of its role.
    fn old_versions(&self, bins: &[u64], targets: bool) -> Vec<(PathBuf, PathBuf)> {
        let keep = self.settings.keep_versions.max(1);
        let md = self.dir.join("metadata");
        let mut old = Vec::new();
        let mut drop_old = |role: &str, current: u64| {
            if current > keep {
                let name = |v: u64| md.join(format!("{v}.{role}.json"));
                old.push((name(current - keep), name(current)));
            }
        };
        for b in bins {
            drop_old(&self.bin_name(*b), self.bins[b].version());
        }
        if targets {
            drop_old("targets", self.targets.version);
        }
        drop_old("snapshot", self.snapshot.version());
        old
    }

    /// Re-signs what expires within `margin`: the timestamp (and snapshot, targets and bins
    /// when due). Returns the roles re-signed; nothing is written when nothing is due.
    pub fn refresh(&mut self, margin: time::Duration, pass: Passphrase) -> Result<Vec<String>, Error> {
        let horizon = self.now + margin;
        let due = |e: &Expires| e.0 <= horizon;
        let mut names: Vec<String> = Vec::new();
        // Bins all expire together unless changed since; check each (read lazily).
        for b in 0..self.bin_count() {
            if due(&self.bin(b)?.expires()) {
                self.bin_mut(b)?;
                names.push(self.bin_name(b));
            } else {
                self.bins.remove(&b);
            }
        }
        if due(&self.targets.expires) {
            self.targets_dirty = true;
            names.push("targets".into());
        }
        if self.has_changes() || due(&self.snapshot.expires()) {
            names.push("snapshot".into());
            names.push("timestamp".into());
            self.publish(pass)?;
        } else if due(&self.timestamp.expires) {
            let signers = self.role_signers("timestamp", pass)?;
            self.write_timestamp(&signers)?;
            names.push("timestamp".into());
        }
        Ok(names)
    }

    /// Role status lines: version, expiry, signatures on the published file against threshold.
    pub fn status(&mut self) -> Result<Vec<RoleStatus>, Error> {
        let md = self.dir.join("metadata");
        let mut out = Vec::new();
        let keys = &self.root.keys;
        let check = |file: &Path,
                     role: &str,
                     keyids: &[String],
                     threshold: u64,
                     keys: &BTreeMap<String, packman_tuf::Key>,
                     expires: Expires,
                     version: u64|
         -> Result<RoleStatus, Error> {
            let bytes = std::fs::read(file).map_err(|e| io(file, e))?;
            let canon = packman_tuf::canonical::canonical_signed(&bytes)
                .map_err(|e| Error::Corrupt { path: file.into(), reason: e.to_string() })?;
            let env: Envelope<serde_json::Value> = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt { path: file.into(), reason: e.to_string() })?;
            let valid = keyids
                .iter()
                .filter(|id| {
                    keys.get(*id).is_some_and(|k| {
                        env.signatures.iter().any(|s| &s.keyid == *id && k.verify(&canon, &s.sig).is_ok())
                    })
                })
                .count();
            Ok(RoleStatus { role: role.into(), version, expires, valid_signatures: valid, threshold })
        };
        let roles = [
            ("root", "root.json".to_string(), self.root.expires, self.root.version),
            ("targets", format!("{}.targets.json", self.targets.version), self.targets.expires, self.targets.version),
            (
                "snapshot",
                format!("{}.snapshot.json", self.snapshot.version()),
                self.snapshot.expires(),
                self.snapshot.version(),
            ),
            ("timestamp", "timestamp.json".to_string(), self.timestamp.expires, self.timestamp.version),
        ];
        for (role, file, expires, version) in roles {
            let r = &self.root.roles[role];
            out.push(check(&md.join(file), role, &r.keyids, r.threshold, keys, expires, version)?);
        }
        Ok(out)
    }

    /// A root change waiting for signatures, if any: (version, path).
    pub fn staged_root(&self) -> Option<(u64, PathBuf)> {
        let p = self.dir.join("staged/root.json");
        let env: Envelope<Root> = read_json(&p).ok()?;
        Some((env.signed.version, p))
    }

    /// Bin count, earliest expiry among the bins and number of targets. Reads every bin,
    /// but only its expiry and the number of its targets, on two threads: a full parse of
    /// 16384 bins listing a million targets took 5.5 s.
    pub fn bins_summary(&mut self) -> Result<(u64, Option<Expires>, usize), Error> {
        let succinct = self.succinct().clone();
        let md = self.dir.join("metadata");
        // (earliest expiry, targets) of the bins in memory, then of those read from disk.
        let mut parts = vec![(None, 0)];
        let mut files = Vec::new();
        for b in 0..succinct.bin_count() {
            let name = succinct.bin_name(b);
            if let Some(t) = self.bins.get_mut(&b) {
                t.settle();
                parts[0] = (parts[0].0.into_iter().chain([t.expires()]).min(), parts[0].1 + t.len());
                continue;
            }
            let v = self.snapshot.meta_version(&format!("{name}.json")).ok_or(Error::NoRole(name.clone()))?;
            files.push(md.join(format!("{v}.{name}.json")));
        }
        parts.extend(on_two_threads(&files, |paths| {
            let (mut earliest, mut targets) = (None, 0);
            for p in paths {
                let bytes = std::fs::read(p).map_err(|e| io(p, e))?;
                let head: BinHead = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupt { path: p.clone(), reason: e.to_string() })?;
                targets += head.signed.targets.0;
                earliest = earliest.into_iter().chain([head.signed.expires]).min();
            }
            Ok((earliest, targets))
        })?);
        let earliest = parts.iter().filter_map(|p| p.0).min();
        Ok((succinct.bin_count(), earliest, parts.iter().map(|p| p.1).sum()))
    }

    /// The current snapshot (read in full on first use: a one-file publish does not need to).
    pub fn snapshot(&mut self) -> &Snapshot {
        self.snapshot.parsed()
    }

    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Changes the keys of `role`: `add` fresh keys (written to the key directory, encrypted
    /// with `new_passphrase` if given), remove keys by keyid (or unique keyid prefix), and
    /// optionally set the threshold.
    ///
    /// Top-level roles change through a new root version, which must carry the signatures of
    /// both the current and the new root thresholds: with every needed root key at hand it is
    /// published with a new snapshot and timestamp; otherwise it is staged in
    /// `DIR/staged/root.json` for `packman repo sign`. Bins' keys live in top-level targets:
    /// changing them re-signs targets and every bin.
    pub fn change_keys(
        &mut self,
        role: &str,
        add: usize,
        remove: &[String],
        threshold: Option<u64>,
        new_passphrase: Option<&str>,
        pass: Passphrase,
    ) -> Result<KeyChange, Error> {
        if std::path::Path::new(&self.dir).join("staged/root.json").exists() {
            return Err(Error::Invalid(format!(
                "a root change is already staged in {}: sign it (packman repo sign) or delete it first",
                self.dir.join("staged/root.json").display()
            )));
        }
        let keydir = self.key_dir();
        let current: Vec<String> = match role {
            "bins" => self.succinct().keyids.clone(),
            r if packman_tuf::metadata::TOP_LEVEL_ROLES.contains(&r) => self.root.roles[r].keyids.clone(),
            r => {
                return Err(Error::Invalid(format!(
                    "unknown role {r:?}: use root, targets, snapshot, timestamp or bins"
                )))
            }
        };
        let mut removed = Vec::new();
        for pat in remove {
            let hits: Vec<&String> = current.iter().filter(|k| k.starts_with(pat.as_str())).collect();
            match hits.as_slice() {
                [one] => removed.push((*one).clone()),
                [] => return Err(Error::Invalid(format!("{role} has no key {pat}"))),
                _ => return Err(Error::Invalid(format!("{pat} matches several {role} keys: give more of the keyid"))),
            }
        }
        let kept: Vec<String> = current.iter().filter(|k| !removed.contains(k)).cloned().collect();
        let old_threshold = match role {
            "bins" => self.succinct().threshold,
            r => self.root.roles[r].threshold,
        };
        let new_threshold = threshold.unwrap_or(old_threshold);
        let total = kept.len() + add;
        if new_threshold < 1 || new_threshold as usize > total {
            return Err(Error::Invalid(format!(
                "threshold {new_threshold} cannot be met by the {total} key(s) {role} would have"
            )));
        }
        // Every check passed: only now generate keys (files outside the published tree).
        // New root keys go where --keys points (offline media); online roles' keys go to the
        // repository's own key directory, where unattended refreshes will look for them.
        let gen_dir = if role == "root" { keydir } else { KeyDir::new(resolve(&self.dir, &self.settings.keys)) };
        let mut new_keys = Vec::new();
        for _ in 0..add {
            new_keys.push(gen_dir.generate(role, new_passphrase)?);
        }
        let keyids: Vec<String> = kept.iter().cloned().chain(new_keys.iter().map(|s| s.keyid().to_string())).collect();
        if role == "bins" {
            let targets_signers = self.role_signers("targets", pass)?;
            drop(targets_signers); // loaded to fail early; publish() loads them again
            let d = self.targets.delegations.as_mut().expect("bins are delegated");
            for s in &new_keys {
                d.keys.insert(s.keyid().to_string(), s.public_key().clone());
            }
            d.keys.retain(|k, _| keyids.contains(k));
            let sr = d.succinct_roles.as_mut().expect("succinct");
            sr.keyids = keyids;
            sr.threshold = new_threshold;
            self.targets_dirty = true;
            for b in 0..self.bin_count() {
                self.bin_mut(b)?;
            }
            let report = self.publish(pass)?;
            return Ok(KeyChange::Published { root_version: self.root.version, report });
        }
        let mut new_root = self.root.clone();
        new_root.version += 1;
        new_root.expires = expiry(self.now, self.settings.expiry_days.root);
        for s in &new_keys {
            new_root.keys.insert(s.keyid().to_string(), s.public_key().clone());
        }
        let r = new_root.roles.get_mut(role).expect("top-level role");
        r.keyids = keyids;
        r.threshold = new_threshold;
        let used: BTreeSet<String> = new_root.roles.values().flat_map(|r| r.keyids.iter().cloned()).collect();
        new_root.keys.retain(|k, _| used.contains(k));
        let staged = Envelope { signed: new_root, signatures: Vec::new() };
        self.sign_and_try_root(staged, None, pass)
    }

    /// Adds signatures to the staged root from the key directory (or one key file) and
    /// publishes it once both thresholds are met.
    pub fn sign_staged_root(&mut self, key_file: Option<&Path>, pass: Passphrase) -> Result<KeyChange, Error> {
        let path = self.dir.join("staged/root.json");
        if !path.exists() {
            return Err(Error::Invalid(format!("nothing to sign: {} does not exist", path.display())));
        }
        let staged: Envelope<Root> = read_json(&path)?;
        if staged.signed.version != self.root.version + 1 {
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "stages root v{} but the published root is v{}",
                    staged.signed.version, self.root.version
                ),
            });
        }
        self.sign_and_try_root(staged, key_file, pass)
    }

    fn sign_and_try_root(
        &mut self,
        mut staged: Envelope<Root>,
        key_file: Option<&Path>,
        pass: Passphrase,
    ) -> Result<KeyChange, Error> {
        let old_ids = self.root.roles["root"].keyids.clone();
        let new_ids = staged.signed.roles["root"].keyids.clone();
        let all: Vec<String> =
            old_ids.iter().chain(new_ids.iter()).cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let signers = match key_file {
            Some(f) => {
                let kf = KeyFile::read(f)?;
                if !all.contains(&kf.keyid) {
                    return Err(Error::Key {
                        path: f.into(),
                        reason: format!("key {} is not a key of the current or the new root role", &kf.keyid[..12]),
                    });
                }
                vec![kf.signer(pass)?]
            }
            None => self.key_dir().signers_for(&all, pass)?,
        };
        let canon = packman_tuf::canonical::to_canonical(&staged.signed)
            .map_err(|e| Error::Signing { role: "root".into(), reason: e.to_string() })?;
        for s in &signers {
            let sig = s.sign(&canon).map_err(|e| Error::Signing { role: "root".into(), reason: e.to_string() })?;
            staged.signatures.retain(|x| x.keyid != sig.keyid);
            staged.signatures.push(sig);
        }
        staged.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
        let count = |ids: &[String], keys: &BTreeMap<String, packman_tuf::Key>| {
            ids.iter()
                .filter(|id| {
                    keys.get(*id).is_some_and(|k| {
                        staged.signatures.iter().any(|s| &s.keyid == *id && k.verify(&canon, &s.sig).is_ok())
                    })
                })
                .count()
        };
        let old = (count(&old_ids, &self.root.keys), self.root.roles["root"].threshold);
        let new = (count(&new_ids, &staged.signed.keys), staged.signed.roles["root"].threshold);
        let json = serde_json::to_vec(&staged.signed)
            .map_err(|e| Error::Signing { role: "root".into(), reason: e.to_string() })?;
        let bytes = crate::envelope_bytes(&json, &staged.signatures)?;
        if (old.0 as u64) < old.1 || (new.0 as u64) < new.1 {
            let p = self.dir.join("staged/root.json");
            write_atomic(&p, &bytes)?;
            return Ok(KeyChange::Staged { root_version: staged.signed.version, path: p, old, new });
        }
        // Publish: the new root first, then everything its key changes require.
        let previous = std::mem::replace(&mut self.root, staged.signed);
        if previous.roles["targets"] != self.root.roles["targets"] {
            self.targets_dirty = true;
        }
        self.pending_root = Some(bytes);
        match self.publish(pass) {
            Ok(report) => Ok(KeyChange::Published { root_version: self.root.version, report }),
            Err(e) => {
                // Nothing was written (keys are loaded first): keep the signed root staged.
                if let Some(bytes) = self.pending_root.take() {
                    let _ = write_atomic(&self.dir.join("staged/root.json"), &bytes);
                }
                self.root = previous;
                Err(e)
            }
        }
    }
}

/// The outcome of a key change.
#[derive(Debug)]
pub enum KeyChange {
    Published {
        root_version: u64,
        report: PublishReport,
    },
    /// Waiting for more root signatures: (valid, threshold) for the current and new root role.
    Staged {
        root_version: u64,
        path: PathBuf,
        old: (usize, u64),
        new: (usize, u64),
    },
}

#[derive(Debug, Clone)]
pub struct RoleStatus {
    pub role: String,
    pub version: u64,
    pub expires: Expires,
    pub valid_signatures: usize,
    pub threshold: u64,
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

/// Distribution files and simple pages are also written under their plain names, so pip can
/// use the published tree from any static host.
fn plain_copy_wanted(path: &str) -> bool {
    path.starts_with("packages/") || path.starts_with("simple/")
}

/// Target paths become file paths: refuse anything that could leave `targets/`.
pub fn check_target_path(path: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::Invalid(format!("target path {path:?} {why}")));
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

/// Length, SHA-256 and SHA-512 of `data`.
pub fn describe_bytes(data: &[u8]) -> TargetFile {
    let hash = |alg| hex::encode(ring::digest::digest(alg, data));
    // A project list at PyPI's size is 16 + 33 MB: its two hashes on the two cores.
    let (sha256, sha512) = if data.len() >= 1 << 20 {
        std::thread::scope(|s| {
            let sha512 = s.spawn(|| hash(&ring::digest::SHA512));
            let sha256 = hash(&ring::digest::SHA256);
            (sha256, sha512.join().unwrap_or_else(|_| hash(&ring::digest::SHA512)))
        })
    } else {
        (hash(&ring::digest::SHA256), hash(&ring::digest::SHA512))
    };
    TargetFile {
        length: data.len() as u64,
        hashes: Hashes(vec![("sha256".into(), sha256), ("sha512".into(), sha512)]),
        custom: None,
        extra: Extra::new(),
    }
}

/// [`describe_file`], keeping the bytes when the file is at most `keep_up_to` bytes long: a
/// publish then writes exactly what was hashed, without reading the file again.
pub fn read_described(path: &Path, keep_up_to: u64) -> Result<(TargetFile, Option<Vec<u8>>), Error> {
    let len = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    if len > keep_up_to {
        return Ok((describe_file(path)?, None));
    }
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    Ok((describe_bytes(&bytes), Some(bytes)))
}

/// Length, sha256 and sha512 of a file, read once: its TUF target description.
pub fn describe_file(path: &Path) -> Result<TargetFile, Error> {
    let mut a = ring::digest::Context::new(&ring::digest::SHA256);
    let mut b = ring::digest::Context::new(&ring::digest::SHA512);
    let n_total = crate::for_each_chunk(path, |chunk| {
        a.update(chunk);
        b.update(chunk);
        Ok(())
    })?;
    Ok(TargetFile {
        length: n_total,
        hashes: Hashes(vec![("sha256".into(), hex::encode(a.finish())), ("sha512".into(), hex::encode(b.finish()))]),
        custom: None,
        extra: Extra::new(),
    })
}

/// A target file a publish writes (see `Repository::plan_targets`).
struct TargetWrite {
    src: Source,
    dest: PathBuf,
    len: u64,
    sha: String,
    /// Whether `dest` needs writing (it may hold these bytes already).
    write: bool,
    /// The plain name to link to `dest`.
    plain: Option<PathBuf>,
}

/// Dead target files (see [`Repository::collect_retired_targets`]) to rewrite as the new
/// target files `plan` writes (see [`Batch::recycle`]), each matched to a new file at least
/// as many 4 KiB blocks long, the longest such: rewriting a longer file would free blocks
/// when it is cut to length, and freeing waits for the disk (0.2-0.4 ms for a 16 KB page
/// rewritten as a 1 KB wheel, measured; creating a file instead took 0.1 ms). A wheel add's
/// dead files are its project's pages of three publishes ago, and they become its new
/// pages. Returns the dead files left over, to delete.
fn rewrite_dead_targets(batch: &mut Batch, dead: Vec<PathBuf>, plan: &[TargetWrite]) -> Vec<PathBuf> {
    let blocks = |len: u64| len.div_ceil(4096);
    let mut sized: Vec<(u64, PathBuf)> =
        dead.into_iter().map(|p| (std::fs::symlink_metadata(&p).map_or(u64::MAX, |m| m.len()), p)).collect();
    for t in plan.iter().filter(|t| t.write) {
        let fits = sized.iter().enumerate().filter(|(_, (len, _))| blocks(*len) <= blocks(t.len));
        if let Some((i, _)) = fits.max_by_key(|(_, (len, _))| *len) {
            batch.recycle(sized.swap_remove(i).1, t.dest.clone());
        }
    }
    sized.into_iter().map(|(_, p)| p).collect()
}

/// Writes the target files `plan` lists into `batch`.
fn write_targets(batch: &mut Batch, plan: Vec<TargetWrite>) -> Result<(), Error> {
    for t in plan {
        if t.write {
            batch.put(&t.src, &t.dest, t.len, &t.sha)?;
        }
        if let Some(plain) = &t.plain {
            batch.link(&t.dest, plain)?;
        }
    }
    Ok(())
}

/// Where signed files go: a path and its bytes.
type FileSink<'a> = dyn FnMut(PathBuf, &[u8]) -> Result<(), Error> + 'a;

/// The timestamp after `timestamp`, signed: next version, new expiry, and the current root
/// version in packman's extra field.
fn next_timestamp(
    timestamp: &mut Timestamp,
    expires: Expires,
    root_version: u64,
    signers: &[&Signer],
) -> Result<Vec<u8>, Error> {
    timestamp.version += 1;
    timestamp.expires = expires;
    timestamp.extra.insert(ROOT_VERSION_FIELD.into(), root_version.into());
    sign_metadata(timestamp, signers)
}

/// A publish's snapshot (its head already set to `version`, `expires`) and the timestamp
/// naming it, to sign and write apart from the rest of the publish (see
/// [`Repository::publish`]).
struct SnapshotJob {
    snapshot: Snap,
    timestamp: Timestamp,
    version: u64,
    expires: Expires,
    timestamp_expires: Expires,
    root_version: u64,
    md: PathBuf,
}

impl SnapshotJob {
    /// Writes the snapshot into `batch`, and the timestamp as its last file; gives back the
    /// snapshot (as published) and timestamp to keep.
    fn run(
        self,
        batch: &mut Batch,
        snapshot_signers: &[&Signer],
        timestamp_signers: &[&Signer],
    ) -> Result<(Snap, Timestamp), Error> {
        let SnapshotJob { snapshot, mut timestamp, version: sv, expires, timestamp_expires, root_version, md } = self;
        let mut published = Snap::Published { canonical: Vec::new(), version: sv, expires };
        let canonical = match snapshot {
            // Edited in the buffer the file was read into.
            Snap::Text(t) => Some(t.into_canonical()),
            Snap::Parsed(p) => {
                let fast = p.fast_canonical();
                if fast.is_none() {
                    published = Snap::Parsed(p);
                }
                fast
            }
            Snap::Published { .. } => unreachable!("set_head rereads"),
        };
        let mut snap: Vec<Vec<u8>> = match canonical {
            // The canonical bytes are the file's signed part: written between the envelope's
            // head and tail rather than copied into another half-megabyte buffer.
            Some(canon) => {
                let (head, tail) = crate::envelope_parts(&canon, snapshot_signers, "snapshot")?;
                vec![head, canon, tail.to_vec()]
            }
            None => vec![crate::sign_snapshot(published.parsed(), snapshot_signers)?],
        };
        batch.write_parts(&md.join(format!("{sv}.snapshot.json")), &snap)?;
        // The timestamp, the file clients read first: made durable along with the rest but
        // put in place only once everything it leads to is (Batch::last).
        let mut meta = MetaFile::new(sv);
        let mut sha256 = ring::digest::Context::new(&ring::digest::SHA256);
        snap.iter().for_each(|part| sha256.update(part));
        meta.length = Some(snap.iter().map(|p| p.len() as u64).sum());
        meta.hashes = Some(Hashes(vec![("sha256".into(), hex::encode(sha256.finish()))]));
        // Kept, to be read again if this process needs the snapshot after this publish.
        if let Snap::Published { canonical, .. } = &mut published {
            *canonical = std::mem::take(&mut snap[1]);
        }
        timestamp.meta.insert("snapshot.json".into(), meta);
        let ts = next_timestamp(&mut timestamp, timestamp_expires, root_version, timestamp_signers)?;
        batch.write_last(&md.join("timestamp.json"), &ts)?;
        Ok((published, timestamp))
    }
}

/// Whether the file at `path` is `length` bytes with this SHA-256 (hex).
fn holds(path: &Path, length: u64, sha256: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == length)
        && describe_file(path).is_ok_and(|tf| tf.hashes.get("sha256") == Some(sha256))
}

/// Writes a new versioned metadata file. Versions are always one past what the current
/// snapshot names, so a file already there is a leftover of a publish that crashed before
/// its snapshot was written: no client was ever sent there, and it is replaced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes)
}

/// `f` over each half of `items`, each half on a thread of its own (the machines have two
/// cores); the results in order.
fn on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Result<R, Error> + Sync) -> Result<Vec<R>, Error> {
    let per = items.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| f(c))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Invalid("worker thread panicked".into()))))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use packman_tuf::TrustedSet;

    fn no_pass(_: &KeyFile) -> Result<String, Error> {
        Err(Error::Invalid("unencrypted keys".into()))
    }

    /// Targets of several shapes, some paths given twice (the later description wins).
    fn entries() -> Vec<(String, TargetFile)> {
        let mut v = Vec::new();
        for i in 0..3000u32 {
            let path = format!("packages/p{}/p{i}-1.0.tar.gz", i % 700);
            let mut tf = crate::target_file(path.as_bytes());
            match i % 5 {
                0 => tf.custom = Some(serde_json::json!({"requires-python": ">=3.8", "yanked": i % 2 == 0})),
                1 => {
                    tf.extra.insert("x-unknown".into(), serde_json::json!([i]));
                }
                _ => {}
            }
            v.push((path, tf));
        }
        for i in (0..3000u32).step_by(97) {
            let path = format!("packages/p{}/p{i}-1.0.tar.gz", i % 700);
            v.push((path, crate::target_file(format!("replaced {i}").as_bytes())));
        }
        v
    }

    /// Reads the published repository through the trust core as a client would; returns
    /// every target listed.
    fn verified_targets(dir: &Path, now: OffsetDateTime) -> BTreeMap<String, TargetFile> {
        let md = dir.join("metadata");
        let read = |n: &str| std::fs::read(md.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        let mut set = TrustedSet::new(&read("1.root.json"), now).unwrap();
        let ts = set.update_timestamp(&read("timestamp.json")).unwrap().signed.snapshot_meta().version;
        set.update_snapshot(&read(&format!("{ts}.snapshot.json")), false).unwrap();
        let tv = set.meta_for("targets").unwrap().version;
        set.update_delegated_targets(&read(&format!("{tv}.targets.json")), "targets", "root").unwrap();
        let sr = set.targets("targets").unwrap().signed.delegations.clone().unwrap().succinct_roles.unwrap();
        let mut all = BTreeMap::new();
        for b in 0..sr.bin_count() {
            let name = sr.bin_name(b);
            let v = set.meta_for(&name).unwrap().version;
            set.update_delegated_targets(&read(&format!("{v}.{name}.json")), &name, "targets").unwrap();
            for (p, tf) in &set.targets(&name).unwrap().signed.targets {
                assert_eq!(sr.role_for_target(p), name, "{p} listed by the wrong bin");
                all.insert(p.clone(), tf.clone());
            }
        }
        all
    }

    /// Both ways of making publishes durable: the platform's (syncfs on Linux, unless
    /// PACKMAN_PORTABLE_FS=1) and the portable one.
    fn modes() -> [Durability; 2] {
        [Durability::detect(), Durability::PerFile]
    }

    /// A new repository with 4 bins publishing in `mode`, and a directory for source files.
    fn four_bin_repo(mode: Durability) -> (OffsetDateTime, tempfile::TempDir, tempfile::TempDir, Repository) {
        let now = OffsetDateTime::now_utc();
        let d = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let opts = InitOptions { bins: 4, durability: mode, ..InitOptions::default() };
        let repo = Repository::init(d.path(), &opts, now).unwrap();
        assert_eq!(repo.durability(), mode);
        (now, d, src, repo)
    }

    /// Distribution files are published under their hash-prefixed and plain names (the
    /// latter a hard link): in a batch that syncs in several chunks, in bulk mode, and when
    /// the hash-prefixed file already exists.
    #[test]
    fn plain_names_link_the_published_bytes() {
        for mode in modes() {
            let (_, d, src, mut repo) = four_bin_repo(mode);
            // 200 files: one batch under the bulk threshold. 300 files: bulk mode. Then 10 of the
            // first again, their plain names removed (as if lost): the hash-prefixed files are
            // already there and are linked again.
            let rounds: [(std::ops::Range<u32>, &str); 3] = [(0..200, "a"), (200..500, "b"), (0..10, "a")];
            for (range, tag) in rounds {
                for i in range.clone() {
                    let _ = std::fs::remove_file(d.path().join(format!("targets/packages/p/{tag}{i}.tar.gz")));
                    let f = src.path().join(format!("{tag}{i}.tar.gz"));
                    std::fs::write(&f, format!("content {i}")).unwrap();
                    repo.add_target(&format!("packages/p/{tag}{i}.tar.gz"), &f, None).unwrap();
                }
                repo.publish(&mut no_pass).unwrap();
                for i in range {
                    let path = format!("packages/p/{tag}{i}.tar.gz");
                    let tf = repo.target(&path).unwrap().unwrap();
                    let dir = d.path().join("targets/packages/p");
                    let plain = std::fs::read(dir.join(format!("{tag}{i}.tar.gz"))).unwrap();
                    let hashed =
                        std::fs::read(dir.join(format!("{}.{tag}{i}.tar.gz", tf.hashes.get("sha256").unwrap())));
                    assert_eq!(plain, format!("content {i}").as_bytes());
                    assert_eq!(hashed.unwrap(), plain);
                }
            }
            let leftovers: Vec<_> = std::fs::read_dir(d.path().join("targets/packages/p"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
    }

    /// Old versions are deleted (on a thread, while the publish signs, or after it with
    /// `keep_versions` 1), leaving exactly the newest `keep_versions` of each role and a
    /// repository that verifies from the new timestamp.
    #[test]
    fn publishes_keep_the_newest_versions() {
        for (keep, mode) in [1u64, 3].into_iter().flat_map(|k| modes().map(|m| (k, m))) {
            let (now, d, src, repo) = four_bin_repo(mode);
            drop(repo);
            let settings = d.path().join("packman-repo.json");
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
            v["keep_versions"] = keep.into();
            std::fs::write(&settings, serde_json::to_vec(&v).unwrap()).unwrap();
            let mut repo = Repository::open(d.path(), None, now).unwrap();
            repo.set_durability(mode);
            let f = src.path().join("f");
            for i in 0..5 {
                std::fs::write(&f, format!("content {i}")).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                repo.publish(&mut no_pass).unwrap();
            }
            let names: Vec<String> = std::fs::read_dir(d.path().join("metadata"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let count = |role: &str| names.iter().filter(|n| n.ends_with(&format!(".{role}.json"))).count() as u64;
            let bin = repo.bin_for("packages/p/a.tar.gz");
            assert_eq!(count("snapshot"), keep, "keep {keep}: {names:?}");
            assert_eq!(count(&bin), keep, "keep {keep}: {names:?}");
            // The file versions only old snapshots led to went with them.
            let hashed = std::fs::read_dir(d.path().join("targets/packages/p"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().len() > 64)
                .count() as u64;
            assert_eq!(hashed, keep, "keep {keep}");
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, "content 4".len() as u64);
            // The graveyard holds what the last publish replaced (the timestamp before it),
            // not what earlier ones did.
            let buried: Vec<PathBuf> = std::fs::read_dir(d.path().join(GRAVEYARD_DIR))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(".timestamp.json"))
                .collect();
            let version = |p: &Path| {
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()["signed"]["version"]
                    .as_u64()
                    .unwrap()
            };
            assert_eq!(buried.len(), 1, "keep {keep}: {buried:?}");
            assert_eq!(version(&buried[0]) + 1, version(&d.path().join("metadata/timestamp.json")));
        }
    }

    /// Once there are old versions to drop, a publish writes its new snapshot, bin version,
    /// timestamp and target file over files no kept snapshot leads to any more instead of
    /// deleting those and creating new ones (see `Batch::recycle`): every file it writes is
    /// an inode that was there before, and the repository verifies.
    #[cfg(unix)]
    #[test]
    fn publishes_rewrite_dead_files() {
        for mode in modes() {
            use std::os::unix::fs::MetadataExt;
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let inodes = |dir: &Path| -> BTreeSet<u64> {
                let mut out = BTreeSet::new();
                for sub in ["metadata", "targets/packages/p", GRAVEYARD_DIR] {
                    for e in std::fs::read_dir(dir.join(sub)).into_iter().flatten() {
                        out.insert(e.unwrap().metadata().unwrap().ino());
                    }
                }
                out
            };
            let f = src.path().join("f");
            for i in 0..8 {
                let before = inodes(d.path());
                std::fs::write(&f, format!("content {i}")).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                let report = repo.publish(&mut no_pass).unwrap();
                let sha =
                    repo.target("packages/p/a.tar.gz").unwrap().unwrap().hashes.get("sha256").unwrap().to_string();
                let bin = repo.bin_for("packages/p/a.tar.gz");
                let md = d.path().join("metadata");
                let written = [
                    md.join(format!("{}.snapshot.json", repo.snapshot.version())),
                    md.join(format!("{}.{bin}.json", repo.bins[&repo.bin_index("packages/p/a.tar.gz")].version())),
                    md.join("timestamp.json"),
                    d.path().join(format!("targets/packages/p/{sha}.a.tar.gz")),
                ];
                let reused = written.iter().filter(|p| before.contains(&std::fs::metadata(p).unwrap().ino())).count();
                // From the fifth publish on there are dead files of each kind (keep 3).
                if i >= 4 {
                    assert_eq!(reused, written.len(), "publish {i}: {report:?}");
                }
            }
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, "content 7".len() as u64);
        }
    }

    /// A dead target file becomes a new one only if that frees none of its blocks: a 20 KB
    /// file is not rewritten as a 4-byte one (a new file is created, the old one deleted),
    /// but is as another 20 KB one.
    #[cfg(unix)]
    #[test]
    fn dead_files_are_rewritten_only_as_files_as_long() {
        for mode in modes() {
            use std::os::unix::fs::MetadataExt;
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
            let f = src.path().join("f");
            let mut publish = |content: Vec<u8>| {
                let dir = d.path().join("targets/packages/p");
                // Held open, so a file the publish deletes keeps its inode number (else a new
                // file can get the number of one just deleted and pass for a rewritten one).
                let held: Vec<File> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .map(|e| File::open(e.unwrap().path()).unwrap())
                    .collect();
                let before: BTreeSet<u64> = held.iter().map(|f| f.metadata().unwrap().ino()).collect();
                std::fs::write(&f, &content).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                repo.publish(&mut no_pass).unwrap();
                let sha =
                    repo.target("packages/p/a.tar.gz").unwrap().unwrap().hashes.get("sha256").unwrap().to_string();
                before.contains(&ino(&dir.join(format!("{sha}.a.tar.gz"))))
            };
            // Dead 20 KB files from the fifth publish on (keep 3).
            for i in 0..5u8 {
                publish(vec![b'a' + i; 20_000]);
            }
            assert!(!publish(b"tiny".to_vec()), "{mode:?}: a 20 KB dead file was cut down to 4 bytes");
            assert!(publish(vec![b'z'; 20_100]), "{mode:?}: a 20 KB dead file was not rewritten as a 20 KB file");
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, 20_100);
        }
    }

    /// A source file rewritten between its add and the publish (same length, other bytes)
    /// fails the publish, naming the file: the published timestamp is unchanged and no file
    /// holds the new bytes under the name listing the old ones. Kept bytes are unaffected.
    #[test]
    fn a_source_changed_before_the_publish_is_refused() {
        for mode in modes() {
            let (_, d, src, mut repo) = four_bin_repo(mode);
            let f = src.path().join("a.tar.gz");
            std::fs::write(&f, "the bytes hashed").unwrap();
            repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
            let sha = repo.target("packages/p/a.tar.gz").unwrap().unwrap().hashes.get("sha256").unwrap().to_string();
            std::fs::write(&f, "other bytes, same").unwrap();
            let ts = std::fs::read(d.path().join("metadata/timestamp.json")).unwrap();
            let err = repo.publish(&mut no_pass).unwrap_err().to_string();
            assert!(err.contains("a.tar.gz") && err.contains("changed while being published"), "{err}");
            assert_eq!(std::fs::read(d.path().join("metadata/timestamp.json")).unwrap(), ts);
            assert!(!d.path().join(format!("targets/packages/p/{sha}.a.tar.gz")).exists());
            // Read into memory when added: published as hashed, whatever the file says now.
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let f = src.path().join("b.tar.gz");
            std::fs::write(&f, "the bytes hashed").unwrap();
            let (tf, bytes) = read_described(&f, 1 << 20).unwrap();
            repo.add_read_target("packages/p/b.tar.gz", &f, tf, bytes).unwrap();
            std::fs::write(&f, "other bytes, same").unwrap();
            repo.publish(&mut no_pass).unwrap();
            let verified = verified_targets(d.path(), now);
            let sha = verified["packages/p/b.tar.gz"].hashes.get("sha256").unwrap().to_string();
            let published = std::fs::read(d.path().join(format!("targets/packages/p/{sha}.b.tar.gz"))).unwrap();
            assert_eq!(published, b"the bytes hashed");
        }
    }

    /// New files go straight to their final names, so a crash can leave a wrong file under
    /// a name the next publish wants: a leftover metadata version is overwritten, and a
    /// content-addressed target of the right length but other bytes is rewritten, not
    /// reused. A target already holding the right bytes is reused (no copy).
    #[test]
    fn leftovers_under_final_names_are_replaced() {
        for mode in modes() {
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let f = src.path().join("a.tar.gz");
            std::fs::write(&f, "the real content").unwrap();
            let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, b"the real content"));
            let dir = d.path().join("targets/packages/p");
            std::fs::create_dir_all(&dir).unwrap();
            let hashed = dir.join(format!("{sha}.a.tar.gz"));
            // A crash's leftovers: same length, other bytes; and the next snapshot version.
            std::fs::write(&hashed, "the fake content").unwrap();
            let next_snapshot = d.path().join(format!("metadata/{}.snapshot.json", repo.snapshot().version + 1));
            std::fs::write(&next_snapshot, "half a snapsh").unwrap();
            repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
            let report = repo.publish(&mut no_pass).unwrap();
            assert_eq!(report.targets_written, 1);
            assert_eq!(std::fs::read(&hashed).unwrap(), b"the real content");
            assert_eq!(std::fs::read(dir.join("a.tar.gz")).unwrap(), b"the real content");
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, 16);
            // The same content again: the file is reused, and still right.
            repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
            assert_eq!(repo.publish(&mut no_pass).unwrap().targets_written, 0);
            assert_eq!(std::fs::read(&hashed).unwrap(), b"the real content");
        }
    }

    /// A bulk import (targets listed before the first publish, prepared apart) publishes the
    /// same targets as adding them one by one to an initialised repository, and a client
    /// verifies both; a later one-file publish on the imported repository keeps them all.
    #[test]
    fn bulk_import_lists_what_incremental_adds_list() {
        for mode in modes() {
            bulk_import_in(mode);
        }
    }

    fn bulk_import_in(mode: Durability) {
        let now = OffsetDateTime::now_utc();
        let model: BTreeMap<String, TargetFile> = entries().into_iter().collect();
        let opts = InitOptions { bins: 16, durability: mode, ..InitOptions::default() };

        let bulk = tempfile::tempdir().unwrap();
        Repository::init_with(bulk.path(), &opts, now, |repo| {
            let prepared: Vec<PreparedTarget> =
                entries().into_iter().map(|(p, tf)| Repository::prepare_target(&p, tf)).collect::<Result<_, _>>()?;
            for p in prepared {
                repo.add_prepared(p)?;
            }
            Ok(())
        })
        .unwrap();
        let one_by_one = tempfile::tempdir().unwrap();
        let mut repo = Repository::init(one_by_one.path(), &opts, now).unwrap();
        for (p, tf) in entries() {
            repo.add_target_info(&p, tf).unwrap();
        }
        repo.publish(&mut no_pass).unwrap();
        drop(repo);

        // Hash lists compare in file order; the files list them sorted.
        let canon = |m: &BTreeMap<String, TargetFile>| packman_tuf::canonical::to_canonical(m).unwrap();
        assert_eq!(canon(&verified_targets(bulk.path(), now)), canon(&model));
        assert_eq!(canon(&verified_targets(one_by_one.path(), now)), canon(&model));
        // Bulk: each bin written once (version 1); one by one: empty at init, then version 2.
        assert!(bulk.path().join("metadata/1.bins-0.json").exists());
        assert!(!bulk.path().join("metadata/2.bins-0.json").exists());
        assert!(one_by_one.path().join("metadata/2.bins-0.json").exists());

        let mut repo = Repository::open(bulk.path(), None, now).unwrap();
        repo.set_durability(mode);
        let extra = crate::target_file(b"one more");
        repo.add_target_info("late/one-more.txt", extra.clone()).unwrap();
        let report = repo.publish(&mut no_pass).unwrap();
        assert_eq!(report.metadata_written.len(), 3, "{:?}", report.metadata_written);
        drop(repo);
        let mut expected = model;
        expected.insert("late/one-more.txt".into(), extra);
        assert_eq!(canon(&verified_targets(bulk.path(), now)), canon(&expected));
    }

    /// Every file under `dir`'s published tree (`metadata/`, `targets/`), by relative path.
    fn published_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(root: &Path, at: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(at).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        for sub in ["metadata", "targets"] {
            walk(dir, &dir.join(sub), &mut out);
        }
        out
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_tree(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }

    /// The same publishes from the same repository (keys included) in each durability mode
    /// publish identical trees, byte for byte: one-file publishes (rewriting dead files from
    /// the fifth on), a bulk one, new directories, a removal, a bins key change re-signing
    /// every bin, and a refresh. Both verify.
    #[test]
    fn both_durability_modes_publish_the_same_tree() {
        let now = OffsetDateTime::now_utc();
        let origin = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let opts = InitOptions { bins: 8, ..InitOptions::default() };
        drop(Repository::init(origin.path(), &opts, now).unwrap());
        let publish_in = |mode: Durability| -> tempfile::TempDir {
            let d = tempfile::tempdir().unwrap();
            copy_tree(origin.path(), d.path());
            let mut repo = Repository::open(d.path(), None, now).unwrap();
            repo.set_durability(mode);
            let f = src.path().join(format!("{mode:?}"));
            for i in 0..7 {
                std::fs::write(&f, format!("content {i}")).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                repo.add_target_bytes(&format!("simple/p{i}/index.html"), format!("page {i}"), None).unwrap();
                repo.publish(&mut no_pass).unwrap();
            }
            for i in 0..300 {
                repo.add_target_bytes(&format!("packages/q{}/q{i}.whl", i % 7), format!("wheel {i}"), None).unwrap();
            }
            repo.publish(&mut no_pass).unwrap();
            assert!(repo.remove_target("packages/q0/q0.whl").unwrap());
            repo.publish(&mut no_pass).unwrap();
            // Not compared: new keys differ. Re-signs every bin (bulk) with the old keys.
            repo.settings.expiry_days.bins = 1;
            repo.now = now + time::Duration::days(30);
            assert!(!repo.refresh(time::Duration::days(2), &mut no_pass).unwrap().is_empty());
            drop(repo);
            verified_targets(d.path(), now + time::Duration::days(30));
            d
        };
        let platform = publish_in(Durability::detect());
        let portable = publish_in(Durability::PerFile);
        let (a, b) = (published_tree(platform.path()), published_tree(portable.path()));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        // Signatures by ECDSA keys differ from signing to signing: metadata compares by its
        // signed part and the keys that signed it, everything else byte for byte.
        let comparable = |path: &Path, bytes: &[u8]| -> serde_json::Value {
            if !path.starts_with("metadata") {
                return serde_json::Value::from(bytes.to_vec());
            }
            let mut env: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            for sig in env["signatures"].as_array_mut().unwrap() {
                sig.as_object_mut().unwrap().remove("sig");
            }
            // And so does the snapshot file the timestamp hashes (each tree verified above).
            if let Some(snapshot) = env["signed"]["meta"].get_mut("snapshot.json") {
                let meta = snapshot.as_object_mut().unwrap();
                meta.remove("hashes");
                meta.remove("length");
            }
            env
        };
        for (path, bytes) in &a {
            assert!(
                comparable(path, &b[path]) == comparable(path, bytes),
                "{} differs between the modes",
                path.display()
            );
        }
        assert!(a.len() > 300, "{}", a.len());
    }
}
