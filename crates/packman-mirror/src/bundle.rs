//! Air-gapped transfer: [`export`] writes a mirror's repository (or what changed in it since a
//! snapshot version) into one file; [`import`] applies such a file to another mirror through
//! [`sync`](crate::sync) itself, the bundle standing in for the upstream as a
//! [`Transport`], so every file is verified by the same updater and committed in the same
//! order, and a refused bundle changes nothing. [`BundleSource`] is that upstream for any
//! updater: a user's `packman update --bundle` reads bundles through it too.
//!
//! # Format
//! A tar archive (as the `tar` crate writes it: ustar headers, GNU long names), so
//! `tar tvf` lists it. Entries, in order:
//! 1. `packman-bundle.json`, the index: `{"format": "packman-mirror-bundle", "version": 1,
//!    "since": S or null, "root_version", "timestamp_version", "snapshot_version",
//!    "files": [{"path", "length"}, …]}` listing every entry that follows, in order.
//! 2. `metadata/N.root.json` for every root version the exporting mirror holds (the chain),
//!    `metadata/timestamp.json`, and the `metadata/N.ROLE.json` of the snapshot and every
//!    targets role its timestamp leads to (current versions only).
//! 3. `targets/DIR/HASH.NAME` for every signed target (hashed names only; the importing
//!    sync makes the plain names), or with `since` only those not listed by the targets
//!    roles of snapshot version S; of a partial mirror, only those its [`Filter`] keeps.
//!
//! Opening a bundle checks it is whole before DEST is looked at: the index must come first,
//! every entry must be listed in it with its length, and every entry the index lists must be
//! present and end within the file. A truncated or padded bundle fails there
//! ([`MirrorError::Bundle`]). Everything else (a tampered file, a rolled-back or expired
//! bundle, a target the bundle lacks and DEST does not have) is refused by the updater during
//! the verification phase of the sync ([`MirrorError::BundleRefused`]). Nothing in the bundle
//! is ever used as a file system path: entry names are only keys for the updater's URLs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use packman_client::{file_url, Config, FetchError, FileTransport, Transport, Updater};
use packman_tuf::{layout, Envelope, OffsetDateTime, Snapshot, Targets};

use crate::sync::{hashed_rel, sync, SyncOptions, SyncReport};
use crate::{Filter, MirrorError, MirrorPaths};

/// The first entry of every bundle.
pub const INDEX_NAME: &str = "packman-bundle.json";
const FORMAT: &str = "packman-mirror-bundle";
const FORMAT_VERSION: u64 = 1;
/// The index of a 50,000-file bundle is a few MB; anything far larger is not an index.
const INDEX_MAX: u64 = 256 << 20;

/// What [`export`] writes.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Only the targets not listed by the targets roles of this snapshot version (which DEST
    /// must still hold as `metadata/S.snapshot.json`, with the role versions it names).
    pub since: Option<u64>,
    /// The time DEST's metadata must not have expired by [default: now].
    pub now: Option<OffsetDateTime>,
    /// DEST's state directory, for the filter it keeps (see [`SyncOptions::state`]).
    pub state: Option<PathBuf>,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    pub root_version: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    /// Metadata files in the bundle (roots included).
    pub metadata: usize,
    /// Target files in the bundle, and the targets the metadata signs.
    pub targets: usize,
    pub targets_signed: usize,
    /// Bytes of file content in the bundle.
    pub bytes: u64,
}

/// How [`import`] applies a bundle.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// The trusted root for an empty DEST; once DEST has trusted state, checked against it
    /// (see [`SyncOptions::root`]).
    pub root: Option<Vec<u8>>,
    /// What `root` is called in refusals (see [`SyncOptions::root_name`]).
    pub root_name: Option<String>,
    pub config: Config,
    /// The update start time [default: now] (tests).
    pub now: Option<OffsetDateTime>,
    /// Which targets DEST holds (see [`SyncOptions::filter`]).
    pub filter: Option<Filter>,
    /// DEST's state directory (see [`SyncOptions::state`]).
    pub state: Option<PathBuf>,
    /// Told how the targets go in (see [`SyncOptions::progress`]).
    pub progress: Option<std::sync::Arc<dyn crate::SyncProgress>>,
}

/// Writes DEST's current repository into BUNDLE (see the module docs), replacing BUNDLE
/// atomically. DEST's metadata is read through the updater (over `file://`, bootstrapped from
/// DEST's own newest root): the export checks that the metadata is whole and current, and
/// the importer decides trust. Each target's size is checked against its signed length; run
/// `mirror verify` first for hashes. Run it while no sync of DEST runs (a sync that commits
/// meanwhile can make it fail, never produce a bundle the importer accepts wrongly).
pub fn export(dest: &Path, bundle: &Path, opts: &ExportOptions) -> Result<ExportReport, MirrorError> {
    let paths = MirrorPaths::with_state(dest, opts.state.as_deref());
    let metadata_dir = paths.repo().metadata_dir();
    let targets_dir = paths.repo().targets_dir();
    let newest_root = std::fs::read(metadata_dir.join(layout::ROOT_FILE))
        .map_err(|e| MirrorError::io(metadata_dir.join(layout::ROOT_FILE), e))?;
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);

    // The current metadata, as the updater accepts it.
    let scratch = tempfile::tempdir().map_err(|e| MirrorError::io(std::env::temp_dir(), e))?;
    let state = scratch.path().join("metadata");
    Updater::bootstrap(&state, &newest_root)?;
    let config = Config::default();
    let transport = Arc::new(FileTransport::new(config.fetcher.clone()));
    let mut up = Updater::open(
        &state,
        &file_url(&metadata_dir, true),
        Some(&file_url(&targets_dir, true)),
        config,
        transport,
        now,
    )?;
    up.record_verified(true);
    up.refresh()?;
    up.load_all_targets()?;
    let targets = up.all_targets()?;
    let verified = up.take_verified();
    let mut report = ExportReport {
        root_version: up.trusted().root().signed.version,
        timestamp_version: up.trusted().timestamp().map_or(0, |t| t.signed.version),
        snapshot_version: up.trusted().snapshot().map_or(0, |s| s.signed.version),
        targets_signed: targets.len(),
        ..ExportReport::default()
    };
    drop(up);

    // Entries: (name in the bundle, where to read it, length).
    let mut entries: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut roots: Vec<(u64, String)> = Vec::new();
    for e in std::fs::read_dir(&metadata_dir).map_err(|e| MirrorError::io(&metadata_dir, e))? {
        let e = e.map_err(|e| MirrorError::io(&metadata_dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((v, "root")) = layout::parse_versioned_metadata(&name) {
            roots.push((v, name));
        }
    }
    roots.sort();
    let mut metadata_names: Vec<String> = roots.into_iter().map(|(_, n)| n).collect();
    for f in &verified {
        let name = match f.role.as_str() {
            "root" => continue,
            "timestamp" => layout::TIMESTAMP_FILE.to_string(),
            role => layout::metadata_file(role, Some(f.version)),
        };
        if !metadata_names.contains(&name) {
            metadata_names.push(name);
        }
    }
    metadata_names.sort_by_key(|n| layout::write_rank(&format!("{}/{n}", layout::METADATA_DIR)));
    for name in metadata_names {
        let path = metadata_dir.join(&name);
        let len = std::fs::metadata(&path).map_err(|e| MirrorError::io(&path, e))?.len();
        entries.push((format!("{}/{name}", layout::METADATA_DIR), path, len));
    }
    report.metadata = entries.len();

    let old = match opts.since {
        Some(s) => listed_at(&metadata_dir, s, report.snapshot_version)?,
        None => BTreeSet::new(),
    };
    // A partial mirror exports what it holds: the filter its syncs keep.
    let filter = paths.kept_filter()?;
    let mut seen = BTreeSet::new();
    for (path, info) in &targets {
        if !filter.wants(path) {
            continue;
        }
        let rel = hashed_rel(path, info)?;
        if old.contains(&rel) || !seen.insert(rel.clone()) {
            continue;
        }
        let file = targets_dir.join(&rel);
        let len = std::fs::metadata(&file).map_err(|e| MirrorError::io(&file, e))?.len();
        if len != info.length {
            return Err(MirrorError::Export {
                dest: dest.into(),
                reason: format!(
                    "{}: {len} bytes where {} are signed (run `packman mirror verify` and --repair it)",
                    file.display(),
                    info.length
                ),
            });
        }
        entries.push((format!("{}/{rel}", layout::TARGETS_DIR), file, len));
        report.targets += 1;
    }
    report.bytes = entries.iter().map(|e| e.2).sum();

    let index = serde_json::json!({
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "since": opts.since,
        "root_version": report.root_version,
        "timestamp_version": report.timestamp_version,
        "snapshot_version": report.snapshot_version,
        "files": entries.iter().map(|(n, _, l)| serde_json::json!({"path": n, "length": l})).collect::<Vec<_>>(),
    });
    let index = serde_json::to_vec_pretty(&index).expect("a JSON value serialises");
    write_bundle(bundle, &index, &entries)?;
    Ok(report)
}

/// The hashed names (under `targets/`) of the targets listed at snapshot version `s`. Read
/// without verification: it only decides what to leave out, and the importer verifies
/// everything it is given and refuses a bundle that lacks a file it needs.
fn listed_at(metadata_dir: &Path, s: u64, current: u64) -> Result<BTreeSet<String>, MirrorError> {
    let since_err = |reason: String| MirrorError::Export { dest: packman_fs::parent(metadata_dir).into(), reason };
    if s > current {
        return Err(since_err(format!("--since {s}: the mirror's snapshot is version {current}")));
    }
    let read = |name: String| -> Result<Vec<u8>, MirrorError> {
        std::fs::read(metadata_dir.join(&name)).map_err(|e| {
            since_err(format!(
                "--since {s}: metadata/{name}: {e} (the mirror keeps every version it accepted since its first sync: pick one it holds)"
            ))
        })
    };
    let snap: Envelope<Snapshot> = serde_json::from_slice(&read(layout::metadata_file("snapshot", Some(s)))?)
        .map_err(|e| since_err(format!("--since {s}: snapshot: {e}")))?;
    let mut out = BTreeSet::new();
    for (key, v) in snap.signed.meta.versions() {
        let Some(role) = key.strip_suffix(".json") else { continue };
        let t: Envelope<Targets> = serde_json::from_slice(&read(layout::metadata_file(role, Some(v)))?)
            .map_err(|e| since_err(format!("--since {s}: {role} v{v}: {e}")))?;
        for (path, info) in &t.signed.targets {
            if let Ok(rel) = hashed_rel(path, info) {
                out.insert(rel);
            }
        }
    }
    Ok(out)
}

fn write_bundle(bundle: &Path, index: &[u8], entries: &[(String, PathBuf, u64)]) -> Result<(), MirrorError> {
    let dir = match packman_fs::parent(bundle) {
        d if d.as_os_str().is_empty() => Path::new("."),
        d => d,
    };
    let tmp = packman_fs::public_tempfile(dir)?;
    let io = |e| MirrorError::io(bundle, e);
    let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
    let header = |len: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    b.append_data(&mut header(index.len() as u64), INDEX_NAME, index).map_err(io)?;
    for (name, path, len) in entries {
        let f = std::fs::File::open(path).map_err(|e| MirrorError::io(path, e))?;
        // The length announced is the one read: a file that changed meanwhile fails here.
        let mut r = f.take(*len);
        b.append_data(&mut header(*len), name, &mut r).map_err(|e| MirrorError::io(path, e))?;
    }
    let mut w = b.into_inner().map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(bundle).map_err(|e| io(e.error))?;
    packman_fs::sync_dir(dir)?;
    Ok(())
}

/// An opened bundle: its index, checked against its entries.
pub(crate) struct Bundle {
    path: PathBuf,
    /// Entry name -> (offset of its data in the file, length).
    entries: HashMap<String, (u64, u64)>,
    since: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Index {
    format: String,
    version: u64,
    since: Option<u64>,
    files: Vec<IndexFile>,
}

#[derive(serde::Deserialize)]
struct IndexFile {
    path: String,
    length: u64,
}

impl Bundle {
    /// Opens `path` and checks it is whole (see the module docs).
    pub(crate) fn open(path: &Path) -> Result<Bundle, MirrorError> {
        let bad = |reason: String| MirrorError::Bundle { bundle: path.into(), reason };
        let file = std::fs::File::open(path).map_err(|e| MirrorError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| MirrorError::io(path, e))?.len();
        let mut archive = tar::Archive::new(file);
        let mut iter = archive
            .entries_with_seek()
            .map_err(|e| bad(format!("not a readable tar archive ({e}): truncated or not a bundle")))?;
        let mut first = match iter.next() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(bad(format!("not a readable tar archive ({e}): truncated or not a bundle"))),
            None => return Err(bad("empty: truncated or not a bundle".into())),
        };
        let first_name = first.path_bytes().into_owned();
        if first_name != INDEX_NAME.as_bytes() {
            return Err(bad(format!("its first entry is not {INDEX_NAME}: not a packman mirror bundle")));
        }
        if first.size() > INDEX_MAX {
            return Err(bad(format!("{INDEX_NAME} is larger than {INDEX_MAX} bytes")));
        }
        let mut raw = Vec::new();
        first
            .read_to_end(&mut raw)
            .map_err(|e| bad(format!("{INDEX_NAME} cannot be read whole ({e}): the bundle is truncated")))?;
        let index: Index = serde_json::from_slice(&raw).map_err(|e| bad(format!("{INDEX_NAME}: {e}")))?;
        if index.format != FORMAT || index.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format {:?} version {}: this packman reads {FORMAT:?} version {FORMAT_VERSION}",
                index.format, index.version
            )));
        }
        let index_end = first.raw_file_position() + first.size().div_ceil(512) * 512;
        drop(first);
        let mut entries = HashMap::new();
        for e in iter {
            let e = e.map_err(|e| bad(format!("an entry cannot be read ({e}): the bundle is truncated")))?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let (pos, len) = (e.raw_file_position(), e.size());
            if pos.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(bad(format!(
                    "{name}: {len} bytes at offset {pos}, past the end of the file ({file_len} bytes): the bundle is truncated"
                )));
            }
            if entries.insert(name.clone(), (pos, len)).is_some() {
                return Err(bad(format!("{name} appears twice")));
            }
        }
        // The end-of-archive marker (two zero blocks) must be there whole: a file cut in the
        // last entry's padding still holds every byte listed, but is not what was written.
        let end = entries.values().map(|&(pos, len)| pos + len.div_ceil(512) * 512).fold(index_end, u64::max);
        let mut tail = Vec::new();
        let mut f = std::fs::File::open(path).map_err(|e| MirrorError::io(path, e))?;
        f.seek(SeekFrom::Start(end)).map_err(|e| MirrorError::io(path, e))?;
        f.take(1024).read_to_end(&mut tail).map_err(|e| MirrorError::io(path, e))?;
        if tail.len() < 1024 || tail.iter().any(|&b| b != 0) {
            return Err(bad(format!(
                "its end-of-archive marker is missing after offset {end} ({file_len} bytes in all): the bundle is truncated"
            )));
        }
        let listed: BTreeMap<&str, u64> = index.files.iter().map(|f| (f.path.as_str(), f.length)).collect();
        for (name, (_, len)) in &entries {
            match listed.get(name.as_str()) {
                None => return Err(bad(format!("{name} is not in the bundle's index"))),
                Some(l) if l != len => {
                    return Err(bad(format!("{name}: {len} bytes where the index lists {l}")));
                }
                Some(_) => {}
            }
        }
        if let Some(f) = index.files.iter().find(|f| !entries.contains_key(&f.path)) {
            return Err(bad(format!(
                "{} ({} bytes) is listed in the index but missing: the bundle is truncated",
                f.path, f.length
            )));
        }
        Ok(Bundle { path: path.into(), entries, since: index.since })
    }
}

/// A bundle read as an upstream: the updater's URLs are looked up, after the base, in the
/// bundle's entries (see [`Transport`]'s contract).
struct BundleTransport {
    bundle: Bundle,
    base: String,
}

impl Transport for BundleTransport {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let Some(name) = url.strip_prefix(&self.base) else {
            return Err(FetchError::UnsupportedScheme { url: url.into() });
        };
        let Some(&(pos, len)) = self.bundle.entries.get(name) else {
            if name.starts_with(layout::TARGETS_DIR) {
                let since = self.bundle.since.map_or(String::new(), |s| format!(" (it was exported --since {s})"));
                return Err(FetchError::Transport {
                    url: url.into(),
                    message: format!(
                        "not in the bundle{since}, and DEST does not have it: export with an older --since (or none)"
                    ),
                });
            }
            return Err(FetchError::NotFound { url: url.into(), status: 404 });
        };
        if len > max_len {
            return Err(FetchError::TooLarge { url: url.into(), limit: max_len });
        }
        let err = |e: std::io::Error| FetchError::Transport { url: url.into(), message: e.to_string() };
        let mut f = std::fs::File::open(&self.bundle.path).map_err(err)?;
        f.seek(SeekFrom::Start(pos)).map_err(err)?;
        let n = std::io::copy(&mut f.take(len), sink).map_err(err)?;
        if n != len {
            return Err(FetchError::Transport {
                url: url.into(),
                message: format!("{n} of {len} bytes: the bundle was truncated while reading"),
            });
        }
        Ok(n)
    }
}

/// A bundle opened as an upstream, for any updater: checked whole ([`MirrorError::Bundle`]
/// otherwise), then read through [`BundleSource::transport`] at [`BundleSource::metadata_url`]
/// and [`BundleSource::targets_url`]. Nothing in it is trusted: every byte is verified by the
/// updater that fetches it, as from a server. `packman mirror import` and a user's
/// `packman update --bundle` both read bundles through this.
pub struct BundleSource {
    path: PathBuf,
    base: String,
    transport: Arc<BundleTransport>,
}

impl BundleSource {
    pub fn open(path: &Path) -> Result<BundleSource, MirrorError> {
        let bundle = Bundle::open(path)?;
        let base = format!("bundle:{}!/", path.display());
        Ok(BundleSource {
            path: path.into(),
            base: base.clone(),
            transport: Arc::new(BundleTransport { bundle, base }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The base URL of the bundle's metadata (ends with `/`).
    pub fn metadata_url(&self) -> String {
        format!("{}{}/", self.base, layout::METADATA_DIR)
    }

    /// The base URL of the bundle's targets (ends with `/`), named by hash as with
    /// consistent snapshots.
    pub fn targets_url(&self) -> String {
        format!("{}{}/", self.base, layout::TARGETS_DIR)
    }

    /// What the updater fetches the bundle's entries through.
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    /// Whether the bundle has an entry for `target` as `info` signs it (its hashed name): a
    /// bundle exported `--since` or from a partial mirror holds only some targets. Says
    /// nothing about the bytes, which the updater verifies when it reads them.
    pub fn carries(&self, target: &str, info: &packman_tuf::TargetFile) -> bool {
        hashed_rel(target, info)
            .is_ok_and(|rel| self.transport.bundle.entries.contains_key(&format!("{}/{rel}", layout::TARGETS_DIR)))
    }
}

/// Applies BUNDLE to DEST: a [`sync`] whose upstream is the bundle (see the module docs).
/// The bundle is checked whole first; then everything the updater needs is verified before
/// anything is written, and the commit is the sync's (targets, versioned metadata, timestamp
/// last; a metadata-directory swap on root rotations).
pub fn import(bundle: &Path, dest: &Path, opts: &ImportOptions) -> Result<SyncReport, MirrorError> {
    let b = BundleSource::open(bundle)?;
    let mut s = SyncOptions::from_base(b.base.trim_end_matches('/'));
    s.metadata_url = b.metadata_url();
    s.targets_url = b.targets_url();
    s.root = opts.root.clone();
    s.root_name = opts.root_name.clone();
    s.config = opts.config.clone();
    s.transport = Some(b.transport());
    // The bundle is the only source: no failover to anything a signed list names.
    s.signed_mirrors = false;
    s.now = opts.now;
    s.filter = opts.filter.clone();
    s.state = opts.state.clone();
    s.progress = opts.progress.clone();
    sync(dest, &s).map_err(|e| match e {
        e @ (MirrorError::Upstream(_)
        | MirrorError::NotConsistent { .. }
        | MirrorError::TargetPath { .. }
        | MirrorError::OlderThanDest { .. }) => {
            MirrorError::BundleRefused { bundle: bundle.into(), source: Box::new(e) }
        }
        e => e,
    })
}
