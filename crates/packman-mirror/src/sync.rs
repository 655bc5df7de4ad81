//! [`sync`]: one mirror update (see the crate docs for the steps and guarantees).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use packman_client::{
    failover, Config, DefaultTransport, FailoverTransport, MirrorFailure, TargetFetcher, Transport, Updater,
    VerifiedFile,
};
use packman_tuf::layout::{self, RepoPaths};
use packman_tuf::mirrors::MirrorEntry;
use packman_tuf::{OffsetDateTime, TargetFile, TrustedSet};

use crate::commit::{move_into_place, remove_unlisted, replace_state, write_metadata};
use crate::{Filter, MirrorError};

/// Where a mirror keeps what it serves, what it trusts, and its work in progress.
#[derive(Debug, Clone)]
pub struct MirrorPaths {
    repo: RepoPaths,
    state: PathBuf,
}

impl MirrorPaths {
    /// The state directory under DEST when none is given (never served), and where every
    /// mirror kept its state before `--state`.
    pub const STATE_DIR: &'static str = ".packman-mirror";
    /// Staging and the next metadata directory, under DEST (never served): they must be on
    /// DEST's filesystem, as verified files are renamed into place and `metadata/` is
    /// swapped with the next one. Exists only while a sync runs (or after a crash, until the
    /// next sync), and never after a refusal.
    pub const WORK_DIR: &'static str = ".packman-mirror-work";

    /// The state in `DEST/.packman-mirror`.
    pub fn new(dest: &Path) -> Self {
        Self::with_state(dest, None)
    }
    /// The state in `state` [default: `DEST/.packman-mirror`].
    pub fn with_state(dest: &Path, state: Option<&Path>) -> Self {
        let state = state.map_or_else(|| dest.join(Self::STATE_DIR), Path::to_path_buf);
        MirrorPaths { repo: RepoPaths::new(dest), state }
    }
    /// `DEST/metadata` and `DEST/targets`, as `packman serve` serves them.
    pub fn repo(&self) -> &RepoPaths {
        &self.repo
    }
    /// The trusted metadata, the kept filter and the lock.
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }
    /// `DEST/.packman-mirror`, where state was kept before it could live elsewhere.
    pub fn legacy_state_dir(&self) -> PathBuf {
        self.repo.base().join(Self::STATE_DIR)
    }
    /// Whether the next sync moves the state from [`MirrorPaths::legacy_state_dir`] to
    /// [`MirrorPaths::state_dir`]: the state is elsewhere, holds no trusted root yet, and
    /// the legacy one does.
    pub fn migrating(&self) -> bool {
        let root = |d: PathBuf| d.join("metadata").join(layout::ROOT_FILE).exists();
        self.state != self.legacy_state_dir() && !root(self.state_dir()) && root(self.legacy_state_dir())
    }
    /// The filter the mirror's syncs keep (see [`Filter`]), from the legacy state while
    /// that is the one in use.
    pub fn kept_filter(&self) -> Result<Filter, MirrorError> {
        Filter::load(&if self.migrating() { self.legacy_state_dir() } else { self.state_dir() })
    }
    pub fn work_dir(&self) -> PathBuf {
        self.repo.base().join(Self::WORK_DIR)
    }
    /// The updater's trusted metadata.
    pub fn trusted_dir(&self) -> PathBuf {
        self.state_dir().join("metadata")
    }
    pub fn lock(&self) -> PathBuf {
        self.state_dir().join("lock")
    }
    pub fn staging_dir(&self) -> PathBuf {
        self.work_dir().join("staging")
    }
    /// The next `metadata/`, built whole when a sync brings a new root and swapped in for
    /// the served one (see the crate docs); holds the old one just after the swap.
    pub fn next_metadata_dir(&self) -> PathBuf {
        self.work_dir().join("metadata-next")
    }
    /// The resume journal: targets downloaded and verified by a sync, under their hashed
    /// names, until its commit moves them into `targets/`. Kept when a sync is killed (the
    /// next one checks each file again and does not fetch it); removed with the rest of the
    /// work directory when a sync ends, refused or not.
    pub fn verified_dir(&self) -> PathBuf {
        self.work_dir().join("verified")
    }
}

/// Where to sync from, and how.
#[derive(Clone)]
pub struct SyncOptions {
    /// Base URL of the upstream's metadata (`…/metadata/`).
    pub metadata_url: String,
    /// Base URL of the upstream's targets (`…/targets/`).
    pub targets_url: String,
    /// The trusted root for a first sync. Once DEST has trusted state the root changes only
    /// through rotations the upstream signs; a root given then must be the trusted one or an
    /// older or newer one linked to it through those rotations, or the sync is refused
    /// ([`MirrorError::Root`]).
    pub root: Option<Vec<u8>>,
    /// What `root` is called in refusals (its file) [default: "the root given"].
    pub root_name: Option<String>,
    pub config: Config,
    /// Fetch through this transport [default: HTTP and file:// per `config.fetcher`].
    pub transport: Option<Arc<dyn Transport>>,
    /// Mirrors of the upstream to fail over to, in order, after the upstream itself (and
    /// before those of the upstream's signed list).
    pub mirrors: Vec<MirrorEntry>,
    /// Also fail over to the mirrors the upstream's signed list names (read after the
    /// verified refresh) [default: on].
    pub signed_mirrors: bool,
    /// The update start time [default: now] (tests).
    pub now: Option<OffsetDateTime>,
    /// Which targets to mirror (see [`Filter`]); kept with the trusted state when the sync
    /// commits [default: the one kept, or everything].
    pub filter: Option<Filter>,
    /// Where the mirror keeps its trusted state, filter and lock [default:
    /// `DEST/.packman-mirror`; the packman command defaults to the user's data directory].
    /// A mirror whose state is in `DEST/.packman-mirror` moves it here on its next
    /// successful sync.
    pub state: Option<PathBuf>,
    /// Target downloads at once [default: 8].
    pub jobs: usize,
    /// Bytes downloaded between two background syncs ([`packman_fs::BackgroundSync`]); a
    /// batch of downloads smaller than this is made durable by the commit's sync alone
    /// [default: [`packman_fs::DEFAULT_EVERY`], 64 MiB].
    pub writeback_every: u64,
    /// Told how the downloads go (a progress bar).
    pub progress: Option<Arc<dyn SyncProgress>>,
    /// Walk every role and check every target in DEST (by name and length) even when
    /// nothing is new upstream, fetching what DEST lost. Without it such a sync stops after
    /// the timestamp ([`SyncReport::unchanged`]).
    pub full: bool,
    /// Files under `targets/` known to be wrong (from [`verify`](crate::verify)'s missing
    /// and corrupt lists; hashed or plain names): fetched again, verified, even where DEST
    /// holds a file of the signed length, and renamed over the wrong one. See [`repair`].
    pub refetch: BTreeSet<String>,
}

/// How a sync's downloads go, for a progress bar. Called from the download threads.
pub trait SyncProgress: Send + Sync {
    /// Before the first download: the files and bytes to fetch.
    fn start(&self, files: usize, bytes: u64);
    /// More bytes received (a retry from another mirror counts them again).
    fn bytes(&self, n: u64);
    /// One more file downloaded and verified.
    fn file_done(&self);
}

impl SyncOptions {
    /// `UPSTREAM/metadata/` and `UPSTREAM/targets/` of a repository base URL.
    pub fn from_base(upstream: &str) -> Self {
        let base = upstream.trim_end_matches('/');
        SyncOptions {
            metadata_url: format!("{base}/{}/", layout::METADATA_DIR),
            targets_url: format!("{base}/{}/", layout::TARGETS_DIR),
            root: None,
            root_name: None,
            config: Config::default(),
            transport: None,
            mirrors: Vec::new(),
            signed_mirrors: true,
            now: None,
            filter: None,
            state: None,
            jobs: 8,
            writeback_every: packman_fs::DEFAULT_EVERY,
            progress: None,
            full: false,
            refetch: BTreeSet::new(),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Nothing new upstream and DEST already served it: the sync stopped after the
    /// timestamp (roles, targets and the counts below are not computed).
    pub unchanged: bool,
    pub root_version: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    /// Targets roles loaded (top-level and delegated).
    pub roles: usize,
    /// Targets the metadata signs, and those of them the filter leaves out.
    pub targets: usize,
    pub targets_filtered_out: usize,
    /// Metadata files written under `metadata/` (names), in write order.
    pub metadata_written: Vec<String>,
    /// Targets downloaded (paths), and their bytes.
    pub targets_fetched: Vec<String>,
    /// Targets DEST already held (by hashed name and signed length), not downloaded.
    pub targets_reused: usize,
    /// Targets a killed sync had downloaded and verified (found in its journal and checked
    /// again), not downloaded.
    pub targets_resumed: usize,
    pub bytes_fetched: u64,
    /// Files removed under `targets/` (paths relative to it).
    pub targets_removed: Vec<String>,
    /// Why root versions before the first trusted one are missing, if they are.
    pub root_chain_gap: Option<String>,
    /// Signed entries the mirror ignored, and why (a role listing a path outside its
    /// delegation). The sync went on without them.
    pub warnings: Vec<String>,
    /// The legacy state directory this sync moved the mirror's state from.
    pub migrated_state_from: Option<PathBuf>,
    /// The mirrors that were available, in the order they were last tried.
    pub mirrors: Vec<MirrorEntry>,
    /// Which mirror failed (was down, too slow, answered an error, or served bytes that
    /// failed verification) on which file, in order. Set on success and on failure (see
    /// [`sync`]).
    pub mirror_failures: Vec<MirrorFailure>,
}

/// What DEST serves now, for telling how stale it is when a sync is refused.
#[derive(Debug, Clone)]
pub struct Served {
    pub timestamp_version: u64,
    /// When DEST's timestamp expires (clients refuse the mirror from then on).
    pub expires: packman_tuf::Expires,
    /// How long ago the mirror put this timestamp in place (the file's modification time).
    pub age: std::time::Duration,
}

/// DEST's `metadata/timestamp.json`, read without verification (only to describe it);
/// `None` if DEST serves none.
pub fn served(dest: &Path) -> Option<Served> {
    let path = RepoPaths::new(dest).metadata_dir().join(layout::TIMESTAMP_FILE);
    let bytes = std::fs::read(&path).ok()?;
    let ts: packman_tuf::Envelope<packman_tuf::Timestamp> = serde_json::from_slice(&bytes).ok()?;
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    Some(Served {
        timestamp_version: ts.signed.version,
        expires: ts.signed.expires,
        age: modified.elapsed().unwrap_or_default(),
    })
}

/// Brings DEST up to the upstream's newest verified state (see the crate docs). Fetches fail
/// over from the upstream to each mirror (see [`SyncOptions::mirrors`]); on a refusal the
/// mirrors' failures are in [`MirrorError::Upstream`]'s message only: use [`sync_with`] to
/// get them either way.
pub fn sync(dest: &Path, opts: &SyncOptions) -> Result<SyncReport, MirrorError> {
    sync_with(dest, opts).0
}

/// [`sync`], and the mirrors' failures, whatever the outcome.
pub fn sync_with(dest: &Path, opts: &SyncOptions) -> (Result<SyncReport, MirrorError>, Vec<MirrorFailure>) {
    let inner: Arc<dyn Transport> = match &opts.transport {
        Some(t) => t.clone(),
        None => Arc::new(DefaultTransport::new(opts.config.fetcher.clone())),
    };
    let primary = MirrorEntry {
        name: opts.metadata_url.clone(),
        metadata_url: opts.metadata_url.clone(),
        targets_url: opts.targets_url.clone(),
    };
    let transport = Arc::new(FailoverTransport::new(inner, primary));
    transport.add_mirrors(&opts.mirrors);
    let r = sync_through(dest, opts, &transport).map(|mut r| {
        r.mirrors = transport.mirrors();
        r.mirror_failures = transport.failures();
        r
    });
    (r, transport.failures())
}

fn sync_through(
    dest: &Path,
    opts: &SyncOptions,
    transport: &Arc<FailoverTransport>,
) -> Result<SyncReport, MirrorError> {
    let paths = MirrorPaths::with_state(dest, opts.state.as_deref());
    let dest_created = !dest.exists();
    let state_created = !paths.state_dir().exists();
    std::fs::create_dir_all(paths.state_dir()).map_err(|e| MirrorError::io(paths.state_dir(), e))?;
    let result = match packman_fs::try_lock_exclusive(&paths.lock()) {
        Ok(Some(lock)) => {
            // Syncs into one DEST with different state directories share DEST's work
            // directory: one at a time there too (its lock goes with the directory).
            let work = paths.work_dir();
            let work_lock = std::fs::create_dir_all(&work)
                .map_err(|e| MirrorError::io(&work, e))
                .and_then(|()| Ok(packman_fs::try_lock_exclusive(&work.join("lock"))?));
            let r = match work_lock {
                Ok(Some(work_lock)) => {
                    let r = sync_locked(&paths, opts, transport);
                    // Staging and the next metadata: gone after every sync, refused or not.
                    let _ = std::fs::remove_dir_all(&work);
                    drop(work_lock);
                    r
                }
                Ok(None) => Err(MirrorError::Busy { lock: work.join("lock") }),
                Err(e) => Err(e),
            };
            drop(lock);
            r
        }
        Ok(None) => return Err(MirrorError::Busy { lock: paths.lock() }),
        Err(e) => Err(e.into()),
    };
    if result.is_err() {
        // A first sync that failed leaves DEST, and where its state would be, as it found them.
        if state_created && !paths.trusted_dir().join(layout::ROOT_FILE).exists() {
            let _ = std::fs::remove_dir_all(paths.state_dir());
        }
        if dest_created {
            let _ = std::fs::remove_dir(dest);
        }
    }
    result
}

fn sync_locked(
    paths: &MirrorPaths,
    opts: &SyncOptions,
    mirrors: &Arc<FailoverTransport>,
) -> Result<SyncReport, MirrorError> {
    // A crash inside a metadata swap: the served metadata back in place, the other gone.
    let served = paths.repo().metadata_dir();
    packman_fs::platform::recover_exchange(&served).map_err(|e| MirrorError::io(&served, e))?;
    remove_dir_if_there(&paths.next_metadata_dir())?;
    let staging = paths.staging_dir();
    match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(MirrorError::io(&staging, e)),
        _ => {}
    }
    if paths.state_dir() == paths.legacy_state_dir() {
        // Where earlier packman staged, if it crashed there.
        remove_dir_if_there(&paths.state_dir().join("staging"))?;
        remove_dir_if_there(&paths.state_dir().join("metadata-next"))?;
    }
    let staged_state = staging.join("metadata");
    let trusted = paths.trusted_dir();
    // State kept in DEST by earlier packman: read from there, written to the new place on
    // commit, and the old directory removed last.
    let migrating = paths.migrating();
    let source_state = if migrating { paths.legacy_state_dir().join("metadata") } else { trusted.clone() };
    let first_sync = !source_state.join(layout::ROOT_FILE).exists();
    if first_sync {
        let root = opts.root.as_deref().ok_or_else(|| MirrorError::NoRoot { dest: paths.repo().base().into() })?;
        TrustedSet::new(root, OffsetDateTime::now_utc()).map_err(MirrorError::InvalidRoot)?;
        Updater::bootstrap(&staged_state, root)?;
    } else {
        if let Some(root) = opts.root.as_deref() {
            check_given_root(paths, &source_state, root, opts, mirrors)?;
        }
        std::fs::create_dir_all(&staged_state).map_err(|e| MirrorError::io(&staged_state, e))?;
        stage_state(&source_state, &staged_state)?;
    }
    let initial_root = std::fs::read(staged_state.join(layout::ROOT_FILE))
        .map_err(|e| MirrorError::io(staged_state.join(layout::ROOT_FILE), e))?;
    let initial_timestamp = std::fs::read(staged_state.join(layout::TIMESTAMP_FILE)).ok();

    // 1. Verify everything; nothing served changes.
    let transport: Arc<dyn Transport> = mirrors.clone();
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    let mut up = Updater::open(
        &staged_state,
        &opts.metadata_url,
        Some(&opts.targets_url),
        opts.config.clone(),
        transport.clone(),
        now,
    )?;
    // Staging is scratch: what it verifies is written durably into DEST and the state below.
    up.scratch_metadata();
    up.record_verified(true);
    up.refresh()?;
    if opts.signed_mirrors {
        match up.signed_mirrors(&staging.join("targets")) {
            Ok(Some(list)) => {
                mirrors.add_mirrors(&list.mirrors);
            }
            // A list the upstream signed but clients cannot read is mirrored as it is.
            Ok(None) | Err(packman_client::Error::MirrorList { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !up.trusted().root().signed.consistent_snapshot() {
        return Err(MirrorError::NotConsistent { url: opts.metadata_url.clone() });
    }
    // Nothing new upstream (the updater kept the trusted root and timestamp: the timestamp
    // it fetched had the same version), DEST serves that timestamp, no filter change and no
    // journal to resume: DEST is already what a full pass would make it, so stop here (the
    // no-change sync a cron job runs costs the root probe and the timestamp, not a walk of
    // every role and target). Files lost from DEST meanwhile: `mirror verify` finds them,
    // [`SyncOptions::full`] fetches them.
    if !opts.full && !first_sync && !migrating && initial_timestamp.is_some() && !paths.verified_dir().exists() {
        let read = |p: PathBuf| std::fs::read(p).ok();
        let filter_same = match &opts.filter {
            Some(f) => *f == paths.kept_filter()?,
            None => true,
        };
        if filter_same
            && read(staged_state.join(layout::ROOT_FILE)).as_deref() == Some(initial_root.as_slice())
            && read(staged_state.join(layout::TIMESTAMP_FILE)) == initial_timestamp
            && read(paths.repo().metadata_dir().join(layout::TIMESTAMP_FILE)) == initial_timestamp
        {
            return Ok(SyncReport {
                unchanged: true,
                root_version: up.trusted().root().signed.version,
                timestamp_version: up.trusted().timestamp().map_or(0, |t| t.signed.version),
                snapshot_version: up.trusted().snapshot().map_or(0, |s| s.signed.version),
                ..SyncReport::default()
            });
        }
    }
    let roles = up.load_all_targets()?;
    let targets = up.all_targets()?;
    // Entries a role lists outside its delegation: clients ignore them, and so does the
    // mirror (the set fetched is the clients' resolution above); the signed metadata is
    // still mirrored whole. Named, so a compromised bin key is noticed without freezing
    // the mirror.
    let mut warnings = Vec::new();
    for role in &roles {
        let Some(t) = up.trusted().targets(role) else { continue };
        for path in t.signed.targets.keys() {
            if !delegated(up.trusted(), &roles, role, path) {
                warnings.push(format!(
                    "role {role} lists {path:?}, which is not delegated to it: ignored (not fetched or kept), as clients ignore it"
                ));
            }
        }
    }
    let mut files = up.take_verified();
    let mut report = SyncReport {
        root_version: up.trusted().root().signed.version,
        timestamp_version: up.trusted().timestamp().map_or(0, |t| t.signed.version),
        snapshot_version: up.trusted().snapshot().map_or(0, |s| s.signed.version),
        roles: roles.len(),
        targets: targets.len(),
        warnings,
        ..SyncReport::default()
    };
    // A mirror that lost its trusted state (or got a new --state) starts again from the root
    // given; what it already serves must not be rolled back by it.
    if first_sync {
        let served = paths.repo().metadata_dir().join(layout::TIMESTAMP_FILE);
        let served_version = std::fs::read(&served)
            .ok()
            .and_then(|b| serde_json::from_slice::<packman_tuf::Envelope<packman_tuf::Timestamp>>(&b).ok())
            .map(|t| t.signed.version);
        if let Some(v) = served_version.filter(|v| *v > report.timestamp_version) {
            return Err(MirrorError::OlderThanDest { path: served, served: v, offered: report.timestamp_version });
        }
    }
    // The root the walk started from is not "accepted" by it, but belongs in the chain.
    let v0 = TrustedSet::new(&initial_root, now).map_err(MirrorError::InvalidRoot)?.root().signed.version;
    files.insert(0, VerifiedFile { role: "root".into(), version: v0, bytes: initial_root.clone() });
    if first_sync && v0 > 1 {
        match earlier_roots(transport.as_ref(), opts, &initial_root, v0, now) {
            Ok(earlier) => {
                for (i, f) in earlier.into_iter().enumerate() {
                    files.insert(i, f);
                }
            }
            Err(gap) => report.root_chain_gap = Some(gap),
        }
    }

    let targets_dir = paths.repo().targets_dir();
    let mut wanted_hashed = BTreeSet::new();
    let mut wanted_plain = BTreeMap::new();
    let mut unwanted_plain = BTreeSet::new();
    let mut todo: Vec<(String, TargetFile, PathBuf, PathBuf)> = Vec::new();
    let mut resumed: Vec<(PathBuf, PathBuf)> = Vec::new();
    let verified_dir = paths.verified_dir();
    let mut reused = 0;
    let filter = match &opts.filter {
        Some(f) => f.clone(),
        None => paths.kept_filter()?,
    };
    let (mut in_dest, mut in_journal) = (Present::default(), Present::default());
    for (path, info) in &targets {
        if !filter.wants(path) {
            report.targets_filtered_out += 1;
            if layout::plain_copy_wanted(path) {
                unwanted_plain.insert(target_rel(path, path)?);
            }
            continue;
        }
        let hashed_rel = hashed_rel(path, info)?;
        let hashed = targets_dir.join(&hashed_rel);
        let mut suspect = opts.refetch.contains(&hashed_rel);
        if layout::plain_copy_wanted(path) {
            let plain_rel = target_rel(path, path)?;
            suspect |= opts.refetch.contains(&plain_rel);
            wanted_plain.insert(plain_rel, hashed.clone());
        }
        wanted_hashed.insert(hashed_rel.clone());
        if !suspect && in_dest.metadata(&hashed).is_some_and(|m| m.is_file() && m.len() == info.length) {
            reused += 1;
            continue;
        }
        // Verified by an earlier sync that was killed before its commit: checked again
        // against the metadata just verified (length and hashes, by the trust core), never
        // trusted for having been there.
        let journal = verified_dir.join(&hashed_rel);
        if in_journal.metadata(&journal).is_some_and(|m| m.is_file()) {
            let ok = std::fs::File::open(&journal).is_ok_and(|f| info.verify_reader(f).is_ok());
            if ok {
                resumed.push((journal, hashed));
                continue;
            }
            std::fs::remove_file(&journal).map_err(|e| MirrorError::io(&journal, e))?;
        }
        todo.push((path.clone(), info.clone(), hashed, journal));
    }
    report.targets_reused = reused;
    report.targets_resumed = resumed.len();
    // No fsync per file: the batch is written back in the background as it arrives, and
    // made durable at once before the commit below.
    let durability = packman_fs::Durability::detect();
    let fetcher = up.target_fetcher();
    drop(up);
    // A batch smaller than one background sync's worth is left to the commit's sync.
    let bytes: u64 = todo.iter().map(|t| t.1.length).sum();
    let writeback = if bytes >= opts.writeback_every {
        std::fs::create_dir_all(&verified_dir).map_err(|e| MirrorError::io(&verified_dir, e))?;
        Some(packman_fs::BackgroundSync::start(durability, &verified_dir, opts.writeback_every)?)
    } else {
        None
    };
    let fetched = download_all(&fetcher, &todo, opts, writeback.as_ref())?;
    if let Some(w) = writeback {
        w.finish()?;
    }
    for (path, info, _, _) in &todo {
        report.bytes_fetched += info.length;
        report.targets_fetched.push(path.clone());
    }

    // 2. Commit, in write order: targets, versioned metadata, root.json, snapshots, timestamp.
    // The verified bytes are durable before a final name points at them: downloads and
    // resumed journal entries alike (one syncfs on Linux, else an fsync each), so a crash
    // never leaves a torn file under a hashed name that a later sync would reuse by length.
    let staged: Vec<(PathBuf, PathBuf)> = fetched.into_iter().chain(resumed).collect();
    let journal_files: Vec<PathBuf> = staged.iter().map(|(j, _)| j.clone()).collect();
    let journal_dirs: Vec<PathBuf> =
        staged.iter().map(|(j, _)| packman_fs::parent(j).to_path_buf()).collect::<BTreeSet<_>>().into_iter().collect();
    packman_fs::make_durable(durability, &journal_files, &journal_dirs)?;
    let dirs = move_into_place(staged)?;
    packman_fs::make_durable(durability, &[], &dirs.into_iter().collect::<Vec<_>>())?;
    let mut dirs = BTreeSet::new();
    for (plain_rel, hashed) in &wanted_plain {
        let plain = targets_dir.join(plain_rel);
        let same = match (std::fs::symlink_metadata(&plain), std::fs::metadata(hashed)) {
            (Ok(p), Ok(h)) => packman_fs::platform::same_file(&p, &h).unwrap_or(false),
            _ => false,
        };
        if !same {
            packman_fs::link_atomic(hashed, &plain)?;
            dirs.insert(packman_fs::parent(&plain).to_path_buf());
        }
    }
    for d in &dirs {
        packman_fs::sync_dir(d)?;
    }
    report.metadata_written = write_metadata(paths, files)?;
    replace_state(&staged_state, &trusted)?;
    if opts.filter.is_some() || migrating {
        filter.store(&paths.state_dir())?;
    }
    report.targets_removed = remove_unlisted(&targets_dir, &wanted_hashed, &unwanted_plain)?;
    if migrating {
        let legacy = paths.legacy_state_dir();
        remove_dir_if_there(&legacy)?;
        packman_fs::sync_dir(paths.repo().base())?;
        report.migrated_state_from = Some(legacy);
    }
    Ok(report)
}

/// Mends DEST after an audit: a full sync (every role walked, whatever is new upstream
/// brought in too) that fetches again, verified, every file `audit` found missing or
/// corrupt, replacing each wrong file by rename (readers see the wrong bytes or the signed
/// ones, never a mix; a plain name sharing a wrong file is linked again to the new one),
/// rewrites metadata files that differ from the verified ones, and removes hashed files no
/// role lists. Other extra files (not packman's naming) are left for the operator. Only
/// what was wrong is fetched; a refusal leaves DEST as it was, as any sync's does.
pub fn repair(dest: &Path, audit: &crate::VerifyReport, opts: &SyncOptions) -> Result<SyncReport, MirrorError> {
    let mut opts = opts.clone();
    opts.full = true;
    opts.refetch.extend(audit.missing.iter().cloned());
    opts.refetch.extend(audit.corrupt.iter().map(|c| c.path.clone()));
    sync(dest, &opts)
}

/// Whether some loaded role that delegates to `role` delegates `path` to it, by the trust
/// core's rules ([`DelegatedRole::is_delegated_path`](packman_tuf::DelegatedRole::is_delegated_path),
/// [`SuccinctRoles::role_for_target`](packman_tuf::SuccinctRoles::role_for_target)).
/// Top-level `targets` may list anything.
fn delegated(trusted: &TrustedSet, roles: &[String], role: &str, path: &str) -> bool {
    if role == "targets" {
        return true;
    }
    roles.iter().filter_map(|d| trusted.targets(d)?.signed.delegations.as_ref()).any(|d| {
        match (&d.roles, &d.succinct_roles) {
            (Some(rs), _) => rs.iter().any(|r| r.name == role && r.is_delegated_path(path)),
            (None, Some(s)) => s.is_delegated_role(role) && s.role_for_target(path) == role,
            (None, None) => false,
        }
    })
}

/// Downloads `todo` (target, signed description, final name, journal name), verified, into
/// the journal names, on [`SyncOptions::jobs`] threads each taking the next file as it
/// finishes one (a sync killed later checks each file there again and does not fetch it if
/// it matches), telling `writeback` of each verified file's bytes. After the first failure no
/// new download starts; the error of the first failed file (in `todo` order) is returned.
/// Returns (journal name, final name) pairs.
fn download_all(
    fetcher: &TargetFetcher,
    todo: &[(String, TargetFile, PathBuf, PathBuf)],
    opts: &SyncOptions,
    writeback: Option<&packman_fs::BackgroundSync>,
) -> Result<Vec<(PathBuf, PathBuf)>, MirrorError> {
    if let Some(p) = &opts.progress {
        p.start(todo.len(), todo.iter().map(|t| t.1.length).sum());
    }
    for dir in todo.iter().map(|t| packman_fs::parent(&t.3)).collect::<BTreeSet<_>>() {
        std::fs::create_dir_all(dir).map_err(|e| MirrorError::io(dir, e))?;
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done = Mutex::new(Vec::with_capacity(todo.len()));
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1).min(todo.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, info, _, journal)) = todo.get(i) else { break };
                // The fetcher reports bytes so far in this attempt (a failover restarts at 0).
                let mut last = 0;
                let mut tick = |n: u64| {
                    if let Some(p) = &opts.progress {
                        p.bytes(n.saturating_sub(last));
                        last = n;
                    }
                };
                // Straight into the journal name, no temp file and rename: a journal entry
                // is checked again whenever a sync finds it, so it need not mean "verified".
                let r = fetcher.download_target_into(journal, path, info, &mut tick).map_err(|e| match e {
                    packman_client::Error::Io { path, source } => MirrorError::Io { path, source },
                    e => MirrorError::from(e),
                });
                match (&r, &opts.progress) {
                    (Err(_), _) => failed.store(true, Ordering::Relaxed),
                    (Ok(_), Some(p)) => p.file_done(),
                    _ => {}
                }
                if let (Ok(_), Some(w)) = (&r, writeback) {
                    w.wrote(info.length);
                }
                done.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|d| d.0);
    let mut out = Vec::with_capacity(done.len());
    for (i, r) in done {
        r?;
        out.push((todo[i].3.clone(), todo[i].2.clone()));
    }
    Ok(out)
}

/// Which files are there in one tree, for the walk over every signed target: a directory
/// found missing answers for every file in it (a directory's targets come together, sorted
/// by path), so a first sync makes a failing `stat` per directory, not one per target.
/// Nothing may create directories in the tree while it is in use.
#[derive(Default)]
struct Present {
    missing: Option<PathBuf>,
}

impl Present {
    /// `path`'s metadata (following links), or `None` if nothing is there or it cannot be read.
    fn metadata(&mut self, path: &Path) -> Option<std::fs::Metadata> {
        let dir = packman_fs::parent(path);
        if self.missing.as_deref() == Some(dir) {
            return None;
        }
        let m = std::fs::metadata(path).ok();
        if m.is_none() && !dir.exists() {
            self.missing = Some(dir.to_path_buf());
        }
        m
    }
}

/// Puts the trusted state's files into `staged`: hard links (the updater and
/// [`replace_state`] only ever replace files whole, by rename, so a link never lets the
/// staged copy change the trusted one), copies where links cannot be made (another file
/// system). Linking saves copying every bin on each sync.
fn stage_state(trusted: &Path, staged: &Path) -> Result<(), MirrorError> {
    let entries = match std::fs::read_dir(trusted) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(MirrorError::io(trusted, e)),
    };
    for e in entries {
        let e = e.map_err(|e| MirrorError::io(trusted, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().map_err(|err| MirrorError::io(e.path(), err))?.is_file();
        if !is_file || name.ends_with(".lock") || name.starts_with(packman_fs::TEMP_PREFIX) {
            continue;
        }
        let to = staged.join(&name);
        if std::fs::hard_link(e.path(), &to).is_err() {
            std::fs::copy(e.path(), &to).map_err(|err| MirrorError::io(&to, err))?;
        }
    }
    Ok(())
}

/// A signed target path as a path under `targets/`, refused if a segment cannot be a
/// plain file name there (climbs out, is empty, holds a separator).
pub(crate) fn target_rel(target: &str, rel: &str) -> Result<String, MirrorError> {
    let bad = |source| MirrorError::TargetPath { target: target.into(), source };
    let resolved = layout::resolve_target_path(rel).map_err(bad)?;
    for seg in resolved.split('/') {
        if layout::file_name(seg).map_err(bad)? != seg {
            return Err(bad(layout::LayoutError::UnsafeFileName { path: target.into(), segment: seg.into() }));
        }
    }
    Ok(resolved)
}

/// `DIR/HASH.NAME` of a target (the name consistent snapshots fetch it by).
pub(crate) fn hashed_rel(path: &str, info: &TargetFile) -> Result<String, MirrorError> {
    let hash = info.name_hash().ok_or_else(|| MirrorError::TargetPath {
        target: path.into(),
        source: layout::LayoutError::NoFileName { path: path.into() },
    })?;
    target_rel(path, &layout::hashed_target(path, hash))
}

/// A root given for a mirror that already trusts one: refused unless it is the trusted root
/// or an older one leading to it through signed rotations (packman_trust's rule, the one
/// `packman download --root` applies). The roots in between come from DEST's served
/// `N.root.json` (a mirror keeps every version) or else from the upstream; each is verified
/// against the one before, so where they come from does not matter. Reads only.
fn check_given_root(
    paths: &MirrorPaths,
    trusted: &Path,
    root: &[u8],
    opts: &SyncOptions,
    transport: &Arc<FailoverTransport>,
) -> Result<(), MirrorError> {
    let served = paths.repo().metadata_dir();
    let mut fetch = |v: u64| {
        let name = format!("{v}.root.json");
        if let Ok(bytes) = std::fs::read(served.join(&name)) {
            return Ok(bytes);
        }
        let url = layout::metadata_url(&opts.metadata_url, "root", Some(v));
        let mut buf = Vec::new();
        transport.fetch_to(&url, opts.config.root_max_length, &mut buf).map_err(|e| format!("{url}: {e}"))?;
        Ok(buf)
    };
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    let name = opts.root_name.as_deref().unwrap_or("the root given");
    packman_trust::ensure_trust_bytes_fetching(trusted, name, root, now, &mut fetch)
        .map_err(|e| MirrorError::Root(Box::new(e)))?;
    Ok(())
}

/// Root versions `1 .. v0-1`, kept only if they verify (by the trust core) as a chain whose
/// next step is the trusted root `v0`.
fn earlier_roots(
    transport: &dyn Transport,
    opts: &SyncOptions,
    trusted_root: &[u8],
    v0: u64,
    now: OffsetDateTime,
) -> Result<Vec<VerifiedFile>, String> {
    let fetch = |v: u64| {
        let url = layout::metadata_url(&opts.metadata_url, "root", Some(v));
        failover(transport, &url, |u| Ok(transport.fetch(u, opts.config.root_max_length)?)).map_err(|e| e.to_string())
    };
    let first = fetch(1)?;
    let mut chain = TrustedSet::new(&first, now).map_err(|e| format!("1.root.json: {e}"))?;
    let mut out = vec![VerifiedFile { role: "root".into(), version: 1, bytes: first }];
    for v in 2..v0 {
        let bytes = fetch(v)?;
        chain.update_root(&bytes).map_err(|e| format!("{v}.root.json: {e}"))?;
        out.push(VerifiedFile { role: "root".into(), version: v, bytes });
    }
    chain.update_root(trusted_root).map_err(|e| format!("the trusted root does not follow {}: {e}", v0 - 1))?;
    Ok(out)
}

pub(crate) fn remove_dir_if_there(dir: &Path) -> Result<(), MirrorError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(MirrorError::io(dir, e)),
        _ => Ok(()),
    }
}
