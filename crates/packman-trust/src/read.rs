//! Reading the trust ring's signed simple pages and files: the one implementation behind the
//! proxy's `/simple/` answers and `packman search`, `info`, `download` and `verify`.
//!
//! The rules, stated once:
//!
//! - **Routing.** A project is read from the repository [`Ring::route`] gives it, and only
//!   from that one: if the owner does not sign the project's page or one of its files, that
//!   is [`ReadError::NotListed`], never another repository's copy (dependency confusion). The
//!   project list names, for each repository, only the projects it owns by routing.
//! - **Verified bytes only.** A page or file is looked up in the owner's signed metadata,
//!   downloaded through the owner's updater into a temp file, checked against the signed
//!   length and hashes, and only then used, and renamed to `<cache>/files/<sha256>` once
//!   durable ([`VerifiedCache`]).
//!   A cached file is used again when its name is the signed sha256 and its size the signed
//!   length (it got that name only after a full check).
//! - **Fresh metadata.** An updater is opened at the time given, after the repository's
//!   trusted root is checked, and refreshed before anything is looked up ([`open_fresh`]).
//!   While another process (a proxy) holds the metadata directory, it is read without the
//!   lock and nothing is written ([`Updater::open_read_only`]): no wait, no error.
//! - **Offline only when unreachable.** When the repository cannot be reached at all
//!   (connection refused, DNS, timeout: [`packman_client::Error::is_unreachable`]), the
//!   metadata verified earlier is used from the metadata directory, checked again by the
//!   trust core, expiry included, and the run says so ([`Freshness`]). Anything the
//!   repository *answered* that was refused (tampered, rolled back, frozen metadata) stays a
//!   refusal: never a quiet fall back to the cache.
//! - **Expired metadata** is refused unless the caller's [`Config::expiry`] allows it (the
//!   user's `--allow-expired`, one run only); then [`Freshness::expired`] names each role.
//!
//! [`project_list`] and [`project_page`] take the "read this signed target of this
//! repository" step as a function, so the proxy (one long-lived updater per repository,
//! refreshed on a schedule) and the commands ([`Reader`]: one updater per repository for one
//! run) use the same routing and parsing.
//!
//! - **Mirrors.** Every door fetches a repository through [`repo_transport`]: its URLs, then
//!   the mirrors the ring configures for it, then (after a verified refresh, when a fetch
//!   failed: [`add_signed_mirrors`]) those of its signed list. Each attempt is verified on
//!   its own ([`packman_client::failover`]); a mirror that serves bad bytes is skipped and
//!   reported, never believed.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use packman_client::{Config, DefaultTransport, FailoverTransport, TargetFetcher, Transport, Updater, VerifiedTarget};
use packman_index::ProjectPage;
use packman_tuf::{layout, OffsetDateTime, TargetFile};

use crate::{Home, RepoEntry, Ring, TrustError, TrustedRepo};

/// Why a page or file of the ring could not be read. Each variant names the repository, the
/// project or target, and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// (The large variants are boxed: every page read returns this.)
    #[error(transparent)]
    Trust(Box<TrustError>),

    #[error("the trust ring ({config}) lists no repository: add one with `packman trust add NAME URL --root FILE`")]
    EmptyRing { config: PathBuf },

    /// The repository's metadata or one of its files was refused, or could not be fetched.
    #[error("repository {repo:?}: {source}")]
    Repository { repo: String, source: Box<packman_client::Error> },

    /// No repository of the ring is configured for the project.
    #[error(
        "no trusted repository is configured for project {project:?}: its name matches none of the project \
         patterns in {config}. packman never looks a project up in a repository not configured for it"
    )]
    NotRouted { project: String, config: PathBuf },

    /// The repository configured for the project does not sign it (or the file).
    #[error(
        "project {project:?} belongs to repository {repo:?} (patterns {patterns:?}), whose signed metadata has no \
         {target}. packman never takes a project from a repository other than the one configured for it"
    )]
    NotListed { project: String, repo: String, patterns: Vec<String>, target: String },

    /// A signed target without a SHA-256 hash, which the cache names files by.
    #[error("repository {repo:?}: target {target} is signed without a sha256 hash; packman needs one")]
    NoSha256 { repo: String, target: String },

    /// A signed simple page that is not the PEP 691 JSON the publisher writes.
    #[error("repository {repo:?}: signed {target} is not a PEP 691 page: {reason}")]
    BadPage { repo: String, target: String, reason: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The repository could not be reached and its cached metadata could not be used
    /// either (none, or expired without `--allow-expired`).
    /// Offline, something the cache does not hold (never fetched while the repository
    /// could be reached).
    #[error(
        "offline: repository {repo:?} cannot be reached ({network}), and {target} was never fetched while it could be; \
         nothing cached can stand in for it"
    )]
    NotCached { repo: String, target: String, network: String },

    #[error("repository {repo:?} cannot be reached ({network}), and its cached metadata cannot be used offline: {cached}{}", offline_hint(.cached))]
    Unreachable { repo: String, network: String, cached: Box<packman_client::Error> },
}

fn offline_hint(e: &packman_client::Error) -> &'static str {
    match e.tuf() {
        Some(packman_tuf::Error::Expired { .. }) => {
            ". To use the expired metadata anyway for this one command, pass --allow-expired"
        }
        _ => "",
    }
}

/// How a repository's metadata was made current for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub repo: String,
    /// Set when the repository could not be reached and the metadata verified earlier was used.
    pub offline: Option<Offline>,
    /// Roles accepted although expired (only when the caller allowed expired metadata).
    pub expired: Vec<packman_tuf::ExpiredRole>,
}

/// Metadata used offline: why, and how old it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offline {
    /// The network error.
    pub reason: String,
    /// When the repository's metadata was last verified online (its `state.json`, else
    /// when its timestamp was written), if known.
    pub verified_at: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
    pub timestamp_version: u64,
    pub timestamp_expires: String,
    /// The bundle that metadata was imported from (`packman update --bundle`), if it was.
    pub bundle: Option<String>,
}

/// "40 s", "12 min", "3 h", "2 days".
pub fn age(from: OffsetDateTime, to: OffsetDateTime) -> String {
    let s = (to - from).whole_seconds().max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

impl Freshness {
    /// What a person must be told about this run, one line each (none when it was online
    /// and nothing had expired).
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(o) = &self.offline {
            let when = match o.verified_at {
                Some(t) => format!("verified {} ago", age(t, o.now)),
                None => "verified earlier (when is not recorded)".into(),
            };
            let from = o.bundle.as_ref().map(|b| format!(", from bundle {b}")).unwrap_or_default();
            out.push(format!(
                "offline: repository {:?} cannot be reached ({}); using metadata {when} (timestamp v{}, expires {}{from})",
                self.repo, o.reason, o.timestamp_version, o.timestamp_expires
            ));
        }
        if !self.expired.is_empty() {
            let roles: Vec<String> =
                self.expired.iter().map(|e| format!("{} v{} expired {}", e.role, e.version, e.expires)).collect();
            out.push(format!(
                "EXPIRED metadata of repository {:?} used because of --allow-expired: {}. It may be a freeze \
                 attack or a stale repository: what you see may be outdated",
                self.repo,
                roles.join(", ")
            ));
        }
        out
    }
}

impl From<TrustError> for ReadError {
    fn from(e: TrustError) -> Self {
        ReadError::Trust(Box::new(e))
    }
}

impl ReadError {
    pub fn repository(entry: &RepoEntry, source: packman_client::Error) -> ReadError {
        ReadError::Repository { repo: entry.name.clone(), source: Box::new(source) }
    }

    fn not_listed(entry: &RepoEntry, project: &str, target: &str) -> ReadError {
        ReadError::NotListed {
            project: project.into(),
            repo: entry.name.clone(),
            patterns: entry.projects.clone(),
            target: target.into(),
        }
    }
}

/// The transport of the ring repository `entry`, over `inner` (which moves the bytes): the
/// repository's metadata and targets URLs first (named by its metadata URL), then each
/// mirror the ring configures for it, in order. The one place a ring repository's transport
/// is built: the proxy (so `packman install` and `open`) and the read commands use it.
/// Without mirrors it fetches exactly the URLs the updater asks for.
pub fn repo_transport(entry: &RepoEntry, inner: Arc<dyn Transport>) -> Result<Arc<FailoverTransport>, ReadError> {
    let metadata_url = entry.metadata_url();
    let primary = packman_tuf::mirrors::MirrorEntry {
        name: metadata_url.clone(),
        metadata_url,
        targets_url: entry.targets_url(),
    };
    let mirrors = crate::RingMirror::entries(&entry.mirrors)
        .map_err(|reason| TrustError::BadMirror { name: entry.name.clone(), reason })?;
    let t = FailoverTransport::new(inner, primary);
    t.add_mirrors(&mirrors);
    Ok(Arc::new(t))
}

/// [`repo_transport`], then the mirrors of the signed list a verified refresh last saved in
/// the repository's ring directory ([`crate::SIGNED_MIRRORS_FILE`]): so a repository whose
/// URL is down is still reached through the mirrors it signed, before any refresh.
pub fn ring_transport(
    home: &Home,
    entry: &RepoEntry,
    inner: Arc<dyn Transport>,
) -> Result<Arc<FailoverTransport>, ReadError> {
    let t = repo_transport(entry, inner)?;
    if let Some(list) = crate::manage::saved_signed_mirrors(&crate::ring_dir(home, &entry.name)) {
        t.add_mirrors(&list.mirrors);
    }
    Ok(t)
}

/// Adds the mirrors of the repository's signed list to `transport`, after a verified
/// refresh of `up` (the list is a verified target, downloaded through `temp_dir`). Returns
/// the names of the mirrors added (none when it signs no list).
pub fn add_signed_mirrors(
    up: &mut Updater,
    transport: &FailoverTransport,
    temp_dir: &Path,
) -> Result<Vec<String>, packman_client::Error> {
    let Some(list) = up.signed_mirrors(temp_dir)? else { return Ok(Vec::new()) };
    let known: Vec<String> = transport.mirrors().into_iter().map(|m| m.name).collect();
    transport.add_mirrors(&list.mirrors);
    let now = transport.mirrors();
    Ok(now.into_iter().map(|m| m.name).filter(|n| !known.contains(n)).collect())
}

/// Opens the updater of a ring repository at time `now` and refreshes it: the trusted root
/// checked first; read only when another process holds the metadata directory.
/// When the repository cannot be reached, its cached metadata is used instead, checked by
/// the trust core as fetched metadata is; the [`Freshness`] says so. A successful online
/// refresh is recorded in the repository's `state.json` (how old offline data is).
pub fn open_fresh(
    entry: &RepoEntry,
    trusted: &TrustedRepo,
    config: Config,
    transport: Arc<dyn Transport>,
    now: OffsetDateTime,
) -> Result<(Updater, Freshness), ReadError> {
    let dir = &trusted.metadata_dir;
    crate::ensure_trust(dir, None, now)?;
    // Another process (a proxy) may hold the directory, perhaps for hours: waiting would
    // hang. Then it is read without the lock (each file is replaced atomically) and nothing
    // is written.
    let open = |t: Arc<dyn Transport>| {
        let (md, tg) = (&trusted.metadata_url, trusted.targets_url.as_deref());
        let up = Updater::open_or_read_only(dir, md, tg, config.clone(), t, now)
            .map_err(|e| ReadError::repository(entry, e))?;
        if up.is_read_only() {
            tracing::debug!(
                "repository {:?}: {} is in use by another packman process: read only",
                entry.name,
                dir.display()
            );
        }
        Ok::<_, ReadError>(up)
    };
    let mut up = open(transport.clone())?;
    let shared = up.is_read_only();
    let ring_dir = packman_fs::parent(dir).to_path_buf();
    let offline = match up.refresh() {
        Ok(()) => {
            if !shared {
                crate::manage::record_refresh(&ring_dir, up.trusted(), now)?;
            }
            None
        }
        Err(network) if network.is_unreachable() => {
            // A fresh updater: the failed refresh may have loaded part of what it fetched.
            drop(up);
            up = open(transport)?;
            up.refresh_local().map_err(|cached| ReadError::Unreachable {
                repo: entry.name.clone(),
                network: network.to_string(),
                cached: Box::new(cached),
            })?;
            let ts = &up.trusted().timestamp().expect("loaded by refresh_local").signed;
            Some(Offline {
                reason: network.to_string(),
                verified_at: crate::manage::verified_at(&ring_dir, dir),
                now,
                timestamp_version: ts.version,
                timestamp_expires: ts.expires.to_string(),
                bundle: crate::read_state(&ring_dir).and_then(|s| s.bundle),
            })
        }
        Err(e) => return Err(ReadError::repository(entry, e)),
    };
    let expired = up.trusted().expired();
    Ok((up, Freshness { repo: entry.name.clone(), offline, expired }))
}

/// Verified files, each named by its signed sha256: `<cache dir>/files/<sha256>`.
///
/// A file is handed to its reader (an open handle) as soon as it is verified; making it
/// durable and renaming it to its final name happen on a background thread, so a request
/// never waits for the disk (two fsyncs a file, most of a cold pip install's added time
/// through the proxy: benches/README, proxy benchmark). The final name still appears only
/// once the bytes are durable ([`VerifiedTarget::persist`]), so a crash never leaves a torn
/// file under a name a later hit would trust by its size. Dropping the last clone waits for
/// the files queued; [`VerifiedCache::flush`] waits without dropping.
#[derive(Debug, Clone)]
pub struct VerifiedCache {
    dir: PathBuf,
    writer: Arc<Writer>,
}

/// A verified file of the cache, open for reading from its start.
#[derive(Debug)]
pub struct Cached {
    pub file: File,
    pub sha256: String,
    /// It was there already (or on its way there): nothing was fetched.
    pub hit: bool,
}

/// The background thread that renames verified files into the cache.
#[derive(Debug, Default)]
struct Writer {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Queue {
    todo: std::collections::VecDeque<(VerifiedTarget, PathBuf)>,
    /// Final name -> temp name, for every file queued and not yet renamed: a second request
    /// for it reads the temp file (or the final one, once renamed) instead of fetching again.
    pending: HashMap<PathBuf, PathBuf>,
    /// Files queued and not yet written (or failed).
    in_flight: usize,
    /// The first failure since the last [`VerifiedCache::flush`].
    failed: Option<ReadError>,
    closing: bool,
}

fn lock_queue(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // The queue's state stays consistent between statements: go on after a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writer {
    fn push(&self, verified: VerifiedTarget, dest: PathBuf) {
        let (m, cv) = &*self.shared;
        {
            let mut q = lock_queue(m);
            q.pending.insert(dest.clone(), verified.path().to_path_buf());
            q.todo.push_back((verified, dest));
            q.in_flight += 1;
        }
        cv.notify_all();
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new().name("packman-cache".into()).spawn(move || write_queued(&shared));
            match spawned {
                Ok(t) => *thread = Some(t),
                // Without a thread, this file is written here and now.
                Err(_) => write_queued_now(&self.shared),
            }
        }
    }

    /// Waits until every file queued so far is under its final name (or failed).
    fn flush(&self) -> Result<(), ReadError> {
        let (m, cv) = &*self.shared;
        let mut q = lock_queue(m);
        while q.in_flight > 0 {
            q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.failed.take().map_or(Ok(()), Err)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock_queue(&self.shared.0).closing = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        // Files queued after the thread failed to start, if any.
        write_queued_now(&self.shared);
    }
}

/// The writer thread: each queued file made durable and renamed, until closed.
fn write_queued(shared: &(Mutex<Queue>, Condvar)) {
    let (m, cv) = shared;
    loop {
        let mut q = lock_queue(m);
        while q.todo.is_empty() && !q.closing {
            q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        let Some((verified, dest)) = q.todo.pop_front() else { return };
        drop(q);
        write_one(shared, verified, dest);
    }
}

fn write_queued_now(shared: &(Mutex<Queue>, Condvar)) {
    loop {
        let Some((verified, dest)) = lock_queue(&shared.0).todo.pop_front() else { return };
        write_one(shared, verified, dest);
    }
}

fn write_one(shared: &(Mutex<Queue>, Condvar), verified: VerifiedTarget, dest: PathBuf) {
    let (target, temp) = (verified.target().to_string(), verified.path().to_path_buf());
    // fsync, rename, fsync of the directory; on failure the temp file is removed.
    let r = verified.persist(&dest);
    let mut q = lock_queue(&shared.0);
    // Unless the same file was queued again meanwhile (two requests fetched it).
    if q.pending.get(&dest) == Some(&temp) {
        q.pending.remove(&dest);
    }
    q.in_flight -= 1;
    if let Err(e) = r {
        tracing::warn!("the cache could not keep {target}: {e}");
        q.failed.get_or_insert(ReadError::Io { path: dest, source: std::io::Error::other(e.to_string()) });
    }
    drop(q);
    shared.1.notify_all();
}

/// A temp file untouched this long is left by a killed process (a download or a write in
/// progress touches its file far more often).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temp files in `dir` not modified for `age`: what killed processes left.
/// Best effort: a file that cannot be removed stays (it is never read as a cached file).
fn remove_stale_temps(dir: &Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(packman_fs::TEMP_PREFIX) {
            continue;
        }
        let stale = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a >= age));
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl VerifiedCache {
    /// The cache of `home` (`<cache dir>/files`), created if needed.
    pub fn of(home: &Home) -> Result<VerifiedCache, ReadError> {
        Self::at(home.cache_dir().join("files"))
    }

    pub fn at(dir: PathBuf) -> Result<VerifiedCache, ReadError> {
        std::fs::create_dir_all(&dir).map_err(|source| ReadError::Io { path: dir.clone(), source })?;
        remove_stale_temps(&dir, STALE_TEMP);
        Ok(VerifiedCache { dir, writer: Arc::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache's copy of `target` as `entry` signs it (`info`), if it holds one under its
    /// final name: nothing is fetched. Named by the signed sha256 with the signed length, as
    /// [`VerifiedCache::get`] finds a hit; a caller copying it elsewhere checks the bytes again.
    pub fn cached(&self, entry: &RepoEntry, target: &str, info: &TargetFile) -> Option<PathBuf> {
        let path = self.dir.join(signed_sha256(entry, target, info).ok()?);
        std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == info.length).then_some(path)
    }

    /// The verified copy of `target` (signed as `info` by `entry`): the cached one, or one
    /// downloaded through `fetcher` and checked (then kept: see the type's docs).
    pub fn get(
        &self,
        entry: &RepoEntry,
        fetcher: &TargetFetcher,
        target: &str,
        info: &TargetFile,
    ) -> Result<Cached, ReadError> {
        let sha256 = signed_sha256(entry, target, info)?;
        let path = self.dir.join(&sha256);
        if let Some(file) = self.open(&path, info.length) {
            return Ok(Cached { file, sha256, hit: true });
        }
        // Durable on the writer thread, before its rename.
        let verified = fetcher
            .clone()
            .batch_durability()
            .download_target_temp(&self.dir, target, info)
            .map_err(|e| ReadError::repository(entry, e))?;
        self.keep(entry, verified)
    }

    /// Keeps `verified` (checked against the signed description of `entry`'s target) under
    /// its signed sha256, and returns it open. For a file verified by its caller (the
    /// proxy's plain-name copy); it must have been made in [`VerifiedCache::dir`].
    pub fn keep(&self, entry: &RepoEntry, verified: VerifiedTarget) -> Result<Cached, ReadError> {
        let sha256 = signed_sha256(entry, verified.target(), verified.info())?;
        let file = verified.reopen().map_err(|e| ReadError::repository(entry, e))?;
        self.writer.push(verified, self.dir.join(&sha256));
        Ok(Cached { file, sha256, hit: false })
    }

    /// Waits until every file handed out so far is under its final name; the first failure
    /// to keep one since the last call, if any (the files were served verified all the same).
    pub fn flush(&self) -> Result<(), ReadError> {
        self.writer.flush()
    }

    /// Whether the cache holds `target` as `entry` signs it (`info`), under its final name
    /// or on its way there: a fetch of it would be a hit.
    pub fn holds(&self, entry: &RepoEntry, target: &str, info: &TargetFile) -> bool {
        signed_sha256(entry, target, info).is_ok_and(|h| self.open(&self.dir.join(h), info.length).is_some())
    }

    /// The file named `path` with `length` bytes, open: under its final name, or still
    /// queued under its temp name.
    fn open(&self, path: &Path, length: u64) -> Option<File> {
        let with_length = |f: File| f.metadata().is_ok_and(|m| m.is_file() && m.len() == length).then_some(f);
        let temp = lock_queue(&self.writer.shared.0).pending.get(path).cloned();
        // The temp name is gone once renamed: then the final one is there.
        temp.and_then(|t| File::open(t).ok()).or_else(|| File::open(path).ok()).and_then(with_length)
    }
}

/// The whole of `file` (read from where it is), named `path` in an error.
pub fn read_all(file: &mut File, path: &Path) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(file, &mut bytes).map_err(|source| ReadError::Io { path: path.into(), source })?;
    Ok(bytes)
}

/// The signed sha256 of `target`, in the lower-case hex that names cached files.
pub fn signed_sha256(entry: &RepoEntry, target: &str, info: &TargetFile) -> Result<String, ReadError> {
    info.hashes
        .get("sha256")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .map(str::to_string)
        .ok_or_else(|| ReadError::NoSha256 { repo: entry.name.clone(), target: target.into() })
}

/// A project of the ring's project list and the repository that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// As the owner's signed list spells it.
    pub project: String,
    pub repo: String,
}

/// Every project of the ring, each from the repository that owns it by routing, in routing
/// order of the repositories and the lists' order within each. `read` gives the verified
/// bytes of a target of a repository, or `None` if it signs no such target (a repository
/// without a project list lists nothing).
pub fn project_list(
    ring: &Ring,
    mut read: impl FnMut(&RepoEntry, &str) -> Result<Option<Vec<u8>>, ReadError>,
) -> Result<Vec<Listed>, ReadError> {
    let target = layout::simple_page(None, true);
    let mut out = Vec::new();
    for entry in &ring.repos {
        let Some(bytes) = read(entry, &target)? else { continue };
        let names = packman_index::parse_index_json(&target, &bytes).map_err(|e| ReadError::BadPage {
            repo: entry.name.clone(),
            target: target.clone(),
            reason: e.to_string(),
        })?;
        let owned = names.into_iter().filter(|n| ring.route(n).is_some_and(|r| r.name == entry.name));
        out.extend(owned.map(|project| Listed { project, repo: entry.name.clone() }));
    }
    Ok(out)
}

/// A project's signed page, from the repository that owns it.
#[derive(Debug, Clone)]
pub struct Page<'r> {
    pub repo: &'r RepoEntry,
    /// `simple/PROJECT/index.json` (or `index.html`).
    pub target: String,
    /// As signed.
    pub bytes: Vec<u8>,
}

impl Page<'_> {
    /// The page's files (a JSON page only).
    pub fn parse(&self) -> Result<ProjectPage, ReadError> {
        packman_index::parse_project_json(&self.target, &self.bytes).map_err(|e| ReadError::BadPage {
            repo: self.repo.name.clone(),
            target: self.target.clone(),
            reason: e.to_string(),
        })
    }
}

/// The signed page of `project` (JSON, or the HTML one when `json` is false), read from the
/// repository that owns it by routing and only from that one.
pub fn project_page<'r>(
    ring: &'r Ring,
    project: &str,
    json: bool,
    read: impl FnOnce(&RepoEntry, &str) -> Result<Option<Vec<u8>>, ReadError>,
) -> Result<Page<'r>, ReadError> {
    let repo = ring
        .route(project)
        .ok_or_else(|| ReadError::NotRouted { project: project.into(), config: ring.path().into() })?;
    let target = layout::simple_page(Some(&packman_index::normalize_name(project)), json);
    let bytes = read(repo, &target)?.ok_or_else(|| ReadError::not_listed(repo, project, &target))?;
    Ok(Page { repo, target, bytes })
}

/// A project's page, parsed, and the repository it was read from.
#[derive(Debug, Clone)]
pub struct ProjectInfo {
    pub repo: RepoEntry,
    pub target: String,
    pub page: ProjectPage,
}

/// What [`Reader::verify_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The file is byte for byte the target `target` that repository `repo` signs.
    Signed { repo: String, target: String, sha256: String, length: u64 },
    /// It is not: why.
    NotSigned { reason: String },
}

/// The ring read for one command: one updater per repository, opened and refreshed the
/// first time the repository is needed, pages and files through [`VerifiedCache`].
pub struct Reader {
    ring: Ring,
    repos: Repos,
}

struct Repos {
    home: Home,
    config: Config,
    transport: Arc<dyn Transport>,
    now: OffsetDateTime,
    cache: VerifiedCache,
    open: HashMap<String, Updater>,
    fresh: Vec<Freshness>,
}

impl Repos {
    fn updater(&mut self, entry: &RepoEntry) -> Result<&mut Updater, ReadError> {
        if !self.open.contains_key(&entry.name) {
            let trusted = entry.trusted(&self.home);
            let transport = ring_transport(&self.home, entry, self.transport.clone())?;
            let (up, fresh) = open_fresh(entry, &trusted, self.config.clone(), transport, self.now)?;
            self.open.insert(entry.name.clone(), up);
            self.fresh.push(fresh);
        }
        Ok(self.open.get_mut(&entry.name).expect("just opened"))
    }

    /// `e`, said as what it is when the repository is offline and `e` is the network again.
    fn offline_err(&self, entry: &RepoEntry, target: &str, e: ReadError) -> ReadError {
        let offline = self.fresh.iter().any(|f| f.repo == entry.name && f.offline.is_some());
        match e {
            ReadError::Repository { source, .. } if offline && source.is_unreachable() => {
                ReadError::NotCached { repo: entry.name.clone(), target: target.into(), network: source.to_string() }
            }
            e => e,
        }
    }

    fn info(&mut self, entry: &RepoEntry, target: &str) -> Result<Option<TargetFile>, ReadError> {
        let r = self.updater(entry)?.get_target_info(target).map_err(|e| ReadError::repository(entry, e));
        r.map_err(|e| self.offline_err(entry, &format!("the metadata that signs {target}"), e))
    }

    fn read(&mut self, entry: &RepoEntry, target: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(info) = self.info(entry, target)? else { return Ok(None) };
        let fetcher = self.updater(entry)?.target_fetcher();
        let mut got = self.cache.get(entry, &fetcher, target, &info).map_err(|e| self.offline_err(entry, target, e))?;
        read_all(&mut got.file, &self.cache.dir().join(&got.sha256)).map(Some)
    }
}

impl Reader {
    /// The ring of `home`, read at time `now`. [`ReadError::EmptyRing`] if it lists no
    /// repository. Opens nothing yet.
    pub fn open(home: &Home, config: Config, now: OffsetDateTime) -> Result<Reader, ReadError> {
        let ring = Ring::load(home)?;
        if ring.repos.is_empty() {
            return Err(ReadError::EmptyRing { config: ring.path().to_path_buf() });
        }
        let transport: Arc<dyn Transport> = Arc::new(DefaultTransport::new(config.fetcher.clone()));
        let repos = Repos {
            home: home.clone(),
            config,
            transport,
            now,
            cache: VerifiedCache::of(home)?,
            open: HashMap::new(),
            fresh: Vec::new(),
        };
        Ok(Reader { ring, repos })
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The verified cache pages and files are read through (and `packman update --bundle`
    /// fills).
    pub fn cache(&self) -> &VerifiedCache {
        &self.repos.cache
    }

    /// How each repository read so far was made current (offline, expired roles allowed).
    pub fn freshness(&self) -> &[Freshness] {
        &self.repos.fresh
    }

    /// Every project of the ring and its owner ([`project_list`]).
    pub fn projects(&mut self) -> Result<Vec<Listed>, ReadError> {
        let repos = &mut self.repos;
        project_list(&self.ring, |e, t| repos.read(e, t))
    }

    /// The signed JSON page of `project` from its owner ([`project_page`]), parsed.
    pub fn project(&mut self, project: &str) -> Result<ProjectInfo, ReadError> {
        let repos = &mut self.repos;
        let page = project_page(&self.ring, project, true, |e, t| repos.read(e, t))?;
        Ok(ProjectInfo { page: page.parse()?, repo: page.repo.clone(), target: page.target })
    }

    /// The signed description of `packages/PROJECT/FILE` in the repository `info` was read
    /// from, and what downloads it. [`ReadError::NotListed`] if the repository's metadata
    /// does not sign it (even when its page lists it).
    pub fn package(
        &mut self,
        info: &ProjectInfo,
        filename: &str,
    ) -> Result<(String, TargetFile, TargetFetcher), ReadError> {
        let target = layout::package_target(&info.page.name, filename);
        let signed = self
            .repos
            .info(&info.repo, &target)?
            .ok_or_else(|| ReadError::not_listed(&info.repo, &info.page.name, &target))?;
        let fetcher = self.repos.updater(&info.repo)?.target_fetcher();
        Ok((target, signed, fetcher))
    }

    /// Whether the file at `path` is byte for byte a distribution some trusted repository
    /// signs: its name read as a wheel or sdist name, its project routed to its owner, the
    /// file looked up on the owner's signed page and in its signed metadata as
    /// `packages/PROJECT/NAME`, and its bytes checked against the signed length and hashes.
    /// A file that is not signed is a [`Verdict`]; an error is a repository that could not
    /// be read.
    pub fn verify_file(&mut self, path: &Path) -> Result<Verdict, ReadError> {
        let not = |reason: String| Ok(Verdict::NotSigned { reason });
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return not("its name is not UTF-8".into());
        };
        let dist = match packman_index::parse_filename(name) {
            Ok(d) => d,
            Err(e) => return not(format!("not a wheel or sdist name: {e}")),
        };
        let info = match self.project(&dist.project) {
            Ok(i) => i,
            Err(e @ (ReadError::NotRouted { .. } | ReadError::NotListed { .. })) => return not(e.to_string()),
            Err(e) => return Err(e),
        };
        if !info.page.files.iter().any(|f| f.filename == name) {
            return not(format!(
                "repository {:?}, which owns project {:?}, lists no file {name} on its signed page",
                info.repo.name, info.page.name
            ));
        }
        let (target, signed, _) = match self.package(&info, name) {
            Ok(p) => p,
            Err(e @ ReadError::NotListed { .. }) => return not(e.to_string()),
            Err(e) => return Err(e),
        };
        let file = std::fs::File::open(path).map_err(|source| ReadError::Io { path: path.into(), source })?;
        match signed.verify_reader(file) {
            Ok(()) => Ok(Verdict::Signed {
                repo: info.repo.name.clone(),
                sha256: signed.hashes.get("sha256").unwrap_or_default().to_string(),
                length: signed.length,
                target,
            }),
            Err(e) => not(format!("its bytes differ from {target} as repository {:?} signs it ({e})", info.repo.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join(format!("{}old", packman_fs::TEMP_PREFIX));
        let fresh = d.path().join(format!("{}fresh", packman_fs::TEMP_PREFIX));
        let cached = d.path().join("0".repeat(64));
        for p in [&old, &fresh, &cached] {
            std::fs::write(p, b"x").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
        for p in [&old, &cached] {
            std::fs::File::options().write(true).open(p).unwrap().set_modified(long_ago).unwrap();
        }
        super::remove_stale_temps(d.path(), super::STALE_TEMP);
        assert!(!old.exists() && fresh.exists() && cached.exists());
    }
}
