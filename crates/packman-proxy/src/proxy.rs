//! [`Proxy`]: the trust ring's repositories behind one simple API, every answer made of bytes
//! an [`Updater`] verified.
//!
//! Routing, verification before the first byte and the cache of verified files are the
//! rules of [`packman_trust::read`], which the read commands share; the proxy adds:
//!
//! - **Fresh metadata.** Each repository is refreshed at start and, when one of its pages is
//!   asked for, again once `refresh_every` has passed; a file request uses the metadata of
//!   the last refresh. Each refresh opens the updater anew at the clock's time
//!   ([`packman_trust::read::open_fresh`]), so expiry is judged at the time of the refresh,
//!   not the time the proxy started.
//! - **Nothing unverified is streamed**: a reply is a file of the verified cache.
//! - **Mirrors.** Each repository is fetched through [`read::repo_transport`]: its URLs,
//!   the mirrors the ring configures for it, and, once a fetch failed after a verified
//!   refresh, the mirrors of its signed list ([`read::add_signed_mirrors`]; then the request
//!   is tried once more). A mirror that is down or serves bytes that fail verification is
//!   skipped for the next; what each did is logged to stderr and kept
//!   ([`Proxy::mirror_failures`]).
//! - **Loud failures.** A refused refresh or file is an error response (502) whose body is
//!   packman's message; it is logged to stderr and kept ([`Proxy::refusals`]). A repository
//!   whose refresh failed is refreshed again on its next request.
//!
//! One [`Updater`] per repository, behind a mutex: an updater locks its metadata directory
//! for its lifetime, so there is never a second one. Refreshes and target lookups hold the
//! mutex; downloads go through the updater's [`TargetFetcher`](packman_client::TargetFetcher)
//! without it, side by side. The calls block (network, disk): the HTTP layer makes them from
//! `spawn_blocking`.
//!
//! **Cold-cache latency** ([`Options::speculate`], on by default). With hashed bins a file's
//! URL (`dir/HASH.name`) is known only once its bin is loaded, which would cost two round
//! trips per page or file where a plain index costs one. So, when a target's bin is neither
//! in memory nor in the metadata directory:
//!
//! - the bin is fetched without the mutex ([`crate::prefetch`]: the updater then takes those
//!   bytes and verifies them as any it fetches), and, at the same time, the target by its
//!   plain name (which packman's repositories and mirrors also serve for `packages/` and
//!   `simple/` targets, [`layout::plain_copy_wanted`]) into a temp file, unverified. Once
//!   the bin is loaded, those bytes are checked against the signed description
//!   ([`packman_client::PlainCopy::verify`]) and only then renamed into the cache. If they
//!   are missing or do not match, the target is downloaded by its hashed name as always, and
//!   only what that path finds is reported: a plain copy is a guess, not the origin's
//!   answer. A plain fetch that stalls is waited for within the transport's own limits
//!   (stall timeout, minimum speed) before the hashed name is tried; its byte cap drops to
//!   the signed length as soon as that is known;
//! - a served JSON project page hints the bins of its newest version's files (and their
//!   PEP 658 `.metadata`), at most [`HINTED_TARGETS`] per page, fetched in the background
//!   (bounded: see [`crate::prefetch`]) so that the installer's next request finds its bin
//!   at hand. A failed hint only means the request fetches the bin itself.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use packman_client::{
    DefaultTransport, FailoverTransport, MirrorFailure, PlainCopy, TargetFetcher, Transport, Updater,
};
use packman_server::{page_format, resolve, PageFormat, Resolved, ACCEPTABLE};
use packman_trust::read::{self, Page, VerifiedCache};
use packman_trust::{Home, ReadError, RepoEntry, Ring, TrustedRepo};
use packman_tuf::trusted::SearchStep;
use packman_tuf::{layout, Limits, OffsetDateTime, TargetFile, TargetSearch};

use crate::prefetch::{Prefetching, Start};
use crate::ProxyError;

/// Most targets of one served page whose bins are prefetched.
pub const HINTED_TARGETS: usize = 16;
/// Most bytes fetched by a plain name before the signed length is known (then the signed
/// length is the cap): a larger file waits for its bin, whose round trip matters little
/// next to its transfer.
pub const PLAIN_MAX: u64 = 8 << 20;

/// The time updaters judge expiry at.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// How the proxy fetches and refreshes.
#[derive(Clone)]
pub struct Options {
    /// A repository is refreshed again, when one of its pages is asked for, once this has
    /// passed since its last refresh.
    pub refresh_every: Duration,
    /// The updaters' limits and timeouts.
    pub client: packman_client::Config,
    pub clock: Clock,
    /// Print each refusal to stderr as it happens.
    pub log_to_stderr: bool,
    /// Overlap a target's bin lookup with fetching it by its plain name, and prefetch the
    /// bins of a served page's files (see the module docs). Off: one step after the other.
    pub speculate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            refresh_every: Duration::from_secs(60),
            client: packman_client::Config::default(),
            clock: Arc::new(OffsetDateTime::now_utc),
            log_to_stderr: true,
            speculate: true,
        }
    }
}

/// A page or file the proxy served, and the repository whose signed metadata it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub repo: String,
    /// The target path (`packages/idna/idna-3.20-py3-none-any.whl`, `simple/idna/index.json`).
    pub target: String,
    pub sha256: String,
    pub length: u64,
    /// Served from the cache, nothing fetched.
    pub cached: bool,
}

/// What became of the files fetched by their plain names while their bins were looked up
/// ([`Options::speculate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainCopies {
    /// Matched the signed description: served and cached.
    pub verified: u64,
    /// Did not match: dropped, the target fetched by its hashed name instead.
    pub refused: u64,
    /// Not had (not found, unreachable, longer than allowed, or the file was cached or not
    /// signed after all): the hashed name used, if needed.
    pub unused: u64,
}

/// A request the proxy refused, with the message it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The request path.
    pub path: String,
    pub status: u16,
    pub message: String,
}

/// A mirror (or a repository's own URLs) that failed a fetch, which was then tried
/// elsewhere (or failed everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorReport {
    /// The ring repository.
    pub repo: String,
    /// Which mirror (named by its metadata URL, or by its name in the signed list), what it
    /// did.
    pub failure: MirrorFailure,
}

impl std::fmt::Display for MirrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "repository {:?}: {}", self.repo, self.failure)
    }
}

/// A response, before it is HTTP.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: ReplyBody,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// A simple page: its representation depends on `Accept`.
    pub negotiated: bool,
}

#[derive(Debug)]
pub enum ReplyBody {
    Bytes(Vec<u8>),
    /// A verified file of the cache, open, and its length.
    File(File, u64),
}

impl Reply {
    fn text(status: u16, text: String) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: ReplyBody::Bytes(text.into_bytes()),
            location: None,
            negotiated: false,
        }
    }

    pub fn len(&self) -> u64 {
        match &self.body {
            ReplyBody::Bytes(b) => b.len() as u64,
            ReplyBody::File(_, n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Slot {
    entry: RepoEntry,
    trusted: TrustedRepo,
    /// The repository's URLs and mirrors; kept across refreshes, so a mirror that failed
    /// stays at the back.
    transport: Arc<FailoverTransport>,
    /// `transport` with the bins fetched ahead of the updater: what the updater fetches
    /// through.
    prefetch: Arc<Prefetching>,
    /// How many of the transport's failures were recorded already.
    reported: Mutex<usize>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    updater: Option<Updater>,
    refreshed: Option<Instant>,
    /// The signed mirror list was read since the last refresh.
    signed_read: bool,
}

#[derive(Default)]
struct Record {
    served: Vec<Served>,
    refusals: Vec<Refusal>,
    mirror_failures: Vec<MirrorReport>,
    /// What a person must be told about how metadata was made current (offline, expired
    /// metadata allowed), each line once.
    notes: Vec<String>,
    plain: PlainCopies,
}

/// A target being fetched by its plain name on another thread.
struct PlainFetch {
    got: mpsc::Receiver<Result<PlainCopy, packman_client::Error>>,
    /// The fetch's byte cap, lowered to the signed length once that is known.
    cap: Arc<AtomicU64>,
}

impl Drop for PlainFetch {
    /// A fetch not taken (the lookup failed, the file was cached) is stopped at its next
    /// bytes and waited for, so that its temp file is gone before the request ends (and
    /// before a shutdown could leave it behind in the cache directory).
    fn drop(&mut self) {
        self.cap.store(0, Ordering::Relaxed);
        // Returns at once when the result was taken already (the sender is gone).
        let _ = self.got.recv();
    }
}

/// A verified file of the cache, open.
struct Fetched {
    file: File,
    info: TargetFile,
}

/// The trust ring's repositories as one simple API. See the module docs for the rules.
pub struct Proxy {
    ring: Ring,
    cache: VerifiedCache,
    options: Options,
    repos: Vec<Slot>,
    record: Mutex<Record>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves an updater whose state is still only what the
    // trust core accepted: keep going with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// The ring of `home` (`config.toml` in its config dir), its cache in
    /// `<cache dir>/files/`. Opens nothing yet: [`Proxy::refresh_all`] does.
    pub fn open(home: &Home, options: Options) -> Result<Proxy, ProxyError> {
        let ring = Ring::load(home)?;
        if ring.repos.is_empty() {
            return Err(ReadError::EmptyRing { config: ring.path().to_path_buf() }.into());
        }
        let cache = VerifiedCache::of(home)?;
        let inner: Arc<dyn Transport> = Arc::new(DefaultTransport::new(options.client.fetcher.clone()));
        let repos = ring
            .repos
            .iter()
            .map(|entry| {
                let transport = read::ring_transport(home, entry, inner.clone())?;
                Ok(Slot {
                    entry: entry.clone(),
                    trusted: entry.trusted(home),
                    prefetch: Prefetching::new(transport.clone()),
                    transport,
                    reported: Mutex::default(),
                    state: Mutex::default(),
                })
            })
            .collect::<Result<_, ReadError>>()?;
        Ok(Proxy { ring, cache, options, repos, record: Mutex::default() })
    }

    /// Where verified files are kept, each named by its sha256.
    pub fn cache_dir(&self) -> &Path {
        self.cache.dir()
    }

    /// Waits until every file served so far is kept under its final name in the cache
    /// (they are served as soon as verified, and written to disk behind: see
    /// [`VerifiedCache`]); the first failure to keep one, if any. Dropping the proxy waits too.
    pub fn flush_cache(&self) -> Result<(), ReadError> {
        self.cache.flush()
    }

    /// The repositories, in routing order.
    pub fn repositories(&self) -> impl Iterator<Item = &RepoEntry> {
        self.repos.iter().map(|s| &s.entry)
    }

    /// Refreshes every repository (in parallel) and says how each went. A repository that
    /// failed is tried again on its next request.
    pub fn refresh_all(&self) -> Vec<(String, Result<(), ProxyError>)> {
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .repos
                .iter()
                .map(|slot| (slot.entry.name.clone(), s.spawn(move || Ok(self.refresh(slot, &mut lock(&slot.state))?))))
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(ProxyError::Io { path: PathBuf::new(), source: std::io::Error::other("refresh panicked") })
                    });
                    (name, r)
                })
                .collect()
        })
    }

    /// Every page and file served so far.
    pub fn served(&self) -> Vec<Served> {
        lock(&self.record).served.clone()
    }

    /// Every failed attempt on a repository's URLs or a mirror so far, in order (the request
    /// may then have been served from another mirror).
    pub fn mirror_failures(&self) -> Vec<MirrorReport> {
        lock(&self.record).mirror_failures.clone()
    }

    /// Each refresh that ran offline or used expired metadata (allowed by the client
    /// config), as [`read::Freshness::notes`] says it, once each.
    pub fn notes(&self) -> Vec<String> {
        lock(&self.record).notes.clone()
    }

    /// What became of the files fetched by their plain names so far.
    pub fn plain_copies(&self) -> PlainCopies {
        lock(&self.record).plain
    }

    /// Every request refused so far, with its message.
    pub fn refusals(&self) -> Vec<Refusal> {
        lock(&self.record).refusals.clone()
    }

    /// The signed PEP 691 JSON page of `project` from the repository the ring routes it to,
    /// verified (and cached) as for a request, with that repository's name: what
    /// `packman open` shows before an install through this same proxy.
    pub fn verified_project_page(&self, project: &str) -> Result<(String, Vec<u8>), ProxyError> {
        let project = packman_index::normalize_name(project);
        if !packman_index::is_valid_name(&project) {
            return Err(ReadError::NotRouted { project, config: self.ring.path().into() }.into());
        }
        let page = read::project_page(&self.ring, &project, true, |e, t| self.read(e, t))?;
        Ok((page.repo.name.clone(), page.bytes))
    }

    /// Answers a `GET` of `path` (the request path, still percent-encoded) with the given
    /// `Accept` header. Blocks.
    pub fn handle(&self, path: &str, accept: Option<&str>) -> Reply {
        match self.answer(path, accept) {
            Ok(reply) => reply,
            Err(e) => {
                let status = e.status();
                let message = format!("packman: {path}: {e}");
                if self.options.log_to_stderr {
                    eprintln!("{message}");
                }
                lock(&self.record).refusals.push(Refusal { path: path.into(), status, message: message.clone() });
                Reply::text(status, message + "\n")
            }
        }
    }

    fn answer(&self, path: &str, accept: Option<&str>) -> Result<Reply, ProxyError> {
        let ours = |p: &str| p.starts_with("/simple") || p.starts_with("/packages/");
        if !ours(path) {
            return Ok(Reply::text(404, "not found: this proxy serves /simple/ and /packages/\n".into()));
        }
        match resolve(path) {
            Resolved::BadRequest(rule) => Ok(Reply::text(400, format!("bad request: {rule}\n"))),
            Resolved::NotFound => Ok(Reply::text(404, "not found\n".into())),
            Resolved::Redirect(location) if ours(&location) => {
                let mut r = Reply::text(301, format!("moved to {location}\n"));
                r.location = Some(location);
                Ok(r)
            }
            Resolved::Redirect(_) => Ok(Reply::text(404, "not found\n".into())),
            Resolved::SimplePage(dir) => {
                let Some(format) = page_format(accept) else {
                    let mut r = Reply::text(406, format!("acceptable: {ACCEPTABLE}\n"));
                    r.negotiated = true;
                    return Ok(r);
                };
                let rel = dir.strip_prefix(layout::TARGETS_DIR).unwrap_or(&dir);
                let mut reply = match rel.strip_prefix(layout::SIMPLE_DIR).ok().and_then(|p| p.to_str()) {
                    Some("") => self.project_list(format)?,
                    Some(project) => self.project_page(project, format)?,
                    None => return Ok(Reply::text(404, "not found\n".into())),
                };
                reply.negotiated = true;
                Ok(reply)
            }
            Resolved::File(rel) => {
                let rel = rel.strip_prefix(layout::TARGETS_DIR).unwrap_or(&rel);
                let segments: Vec<&str> = rel.iter().filter_map(|s| s.to_str()).collect();
                match segments.as_slice() {
                    [kind, project, rest @ ..]
                        if !rest.is_empty() && (*kind == layout::PACKAGES_DIR || *kind == layout::SIMPLE_DIR) =>
                    {
                        self.file(project, &segments.join("/"))
                    }
                    _ => Ok(Reply::text(404, "not found\n".into())),
                }
            }
        }
    }

    fn slot(&self, entry: &RepoEntry) -> &Slot {
        self.repos.iter().find(|s| s.entry.name == entry.name).expect("the ring's repositories have slots")
    }

    /// The verified bytes of `target` of `entry` (a page: refreshed first if stale).
    fn read(&self, entry: &RepoEntry, target: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(mut got) = self.fetch(self.slot(entry), target, true)? else { return Ok(None) };
        read::read_all(&mut got.file, Path::new(target)).map(Some)
    }

    /// `/simple/`: each repository's signed project list, keeping the projects it owns.
    fn project_list(&self, format: PageFormat) -> Result<Reply, ProxyError> {
        let names: Vec<String> =
            read::project_list(&self.ring, |e, t| self.read(e, t))?.into_iter().map(|l| l.project).collect();
        let body = match format {
            PageFormat::Json => packman_index::index_json(&names),
            PageFormat::Html | PageFormat::LegacyHtml => packman_index::index_html(&names),
        };
        Ok(Reply {
            status: 200,
            content_type: format.content_type(),
            body: ReplyBody::Bytes(body),
            location: None,
            negotiated: true,
        })
    }

    /// `/simple/PROJECT/`: the owner's signed page, as signed (its links are relative, so
    /// they lead back to this proxy).
    fn project_page(&self, project: &str, format: PageFormat) -> Result<Reply, ProxyError> {
        let json = format == PageFormat::Json;
        let Page { bytes, repo, .. } = read::project_page(&self.ring, project, json, |e, t| self.read(e, t))?;
        if json && self.options.speculate {
            self.hint_page_files(self.slot(repo), project, &bytes);
        }
        Ok(Reply {
            status: 200,
            content_type: format.content_type(),
            body: ReplyBody::Bytes(bytes),
            location: None,
            negotiated: true,
        })
    }

    /// `/packages/PROJECT/FILE` (and the page files under `/simple/PROJECT/`).
    fn file(&self, project: &str, target: &str) -> Result<Reply, ProxyError> {
        if !packman_index::is_valid_name(project) {
            return Ok(Reply::text(404, "not found\n".into()));
        }
        let owner = self
            .ring
            .route(project)
            .ok_or_else(|| ReadError::NotRouted { project: project.into(), config: self.ring.path().into() })?;
        let got = self.fetch(self.slot(owner), target, false)?.ok_or_else(|| ReadError::NotListed {
            project: project.into(),
            repo: owner.name.clone(),
            patterns: owner.projects.clone(),
            target: target.into(),
        })?;
        Ok(Reply {
            status: 200,
            content_type: packman_server::content_type(Path::new(target)).0,
            body: ReplyBody::File(got.file, got.info.length),
            location: None,
            negotiated: false,
        })
    }

    /// Opens the updater of `slot` anew (after closing the old one, which holds the metadata
    /// directory's lock) and refreshes it.
    fn refresh(&self, slot: &Slot, state: &mut State) -> Result<(), ReadError> {
        state.updater = None;
        state.refreshed = None;
        state.signed_read = false;
        slot.prefetch.clear();
        let now = (self.options.clock)();
        let opened =
            read::open_fresh(&slot.entry, &slot.trusted, self.options.client.clone(), slot.prefetch.clone(), now);
        self.note_failures(slot);
        let (up, fresh) = opened?;
        let mut record = lock(&self.record);
        for note in fresh.notes() {
            if !record.notes.contains(&note) {
                if self.options.log_to_stderr {
                    eprintln!("packman: {note}");
                }
                record.notes.push(note);
            }
        }
        drop(record);
        state.updater = Some(up);
        state.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Records (and logs) the failures of `slot`'s transport not recorded yet.
    fn note_failures(&self, slot: &Slot) {
        let mut seen = lock(&slot.reported);
        let all = slot.transport.failures();
        for failure in all.into_iter().skip(*seen) {
            *seen += 1;
            let report = MirrorReport { repo: slot.entry.name.clone(), failure };
            if self.options.log_to_stderr {
                eprintln!("packman: {report}");
            }
            lock(&self.record).mirror_failures.push(report);
        }
    }

    /// Adds the mirrors of the repository's signed list, once per refresh, after a fetch
    /// failed; whether it added any (then the fetch is worth trying again).
    fn add_signed_mirrors(&self, slot: &Slot) -> bool {
        let mut state = lock(&slot.state);
        if state.signed_read {
            return false;
        }
        state.signed_read = true;
        let Some(up) = state.updater.as_mut() else { return false };
        match read::add_signed_mirrors(up, &slot.transport, self.cache.dir()) {
            Ok(added) => {
                if self.options.log_to_stderr && !added.is_empty() {
                    eprintln!(
                        "packman: repository {:?}: trying the mirrors of its signed list: {}",
                        slot.entry.name,
                        added.join(", ")
                    );
                }
                !added.is_empty()
            }
            Err(e) => {
                if self.options.log_to_stderr {
                    eprintln!("packman: repository {:?}: the signed mirror list is not used: {e}", slot.entry.name);
                }
                false
            }
        }
    }

    /// [`Proxy::fetch_once`]; if that failed on the repository's side (not "not signed",
    /// not local trouble), again with the mirrors of the signed list added.
    fn fetch(&self, slot: &Slot, target: &str, page: bool) -> Result<Option<Fetched>, ReadError> {
        use packman_client::Error as E;
        let mut r = self.fetch_once(slot, target, page);
        let mirror_fault = |r: &Result<_, ReadError>| match r {
            Err(ReadError::Repository { source, .. }) => {
                !matches!(**source, E::TargetNotFound(_) | E::Io { .. } | E::TrustedRoot { .. })
            }
            _ => false,
        };
        if mirror_fault(&r) && self.add_signed_mirrors(slot) {
            r = self.fetch_once(slot, target, page);
        }
        self.note_failures(slot);
        r
    }

    /// Refreshes `slot` if it never was, or failed, or (for a page request, `page`) its
    /// metadata is older than `refresh_every`.
    fn make_current(&self, slot: &Slot, state: &mut State, page: bool) -> Result<(), ReadError> {
        let stale = match state.refreshed {
            None => true,
            Some(at) => page && at.elapsed() >= self.options.refresh_every,
        };
        if stale || state.updater.is_none() {
            self.refresh(slot, state)?;
        }
        Ok(())
    }

    /// The verified file of `target` in the cache, fetched through the owner's updater if
    /// needed; `None` if the repository does not sign it. A page request (`page`) refreshes
    /// the repository first when its metadata is older than `refresh_every`.
    fn fetch_once(&self, slot: &Slot, target: &str, page: bool) -> Result<Option<Fetched>, ReadError> {
        let mut state = lock(&slot.state);
        self.make_current(slot, &mut state, page)?;
        let mut plain = None;
        if self.options.speculate {
            let up = state.updater.as_ref().expect("refreshed");
            if let Some((url, max_len)) = self.bin_to_fetch(slot, up, target) {
                slot.prefetch.start(&url, max_len, true);
                // A bin already fetched (hinted by a page) is loaded at once: nothing to overlap.
                if !slot.prefetch.is_done(&url) && layout::plain_copy_wanted(target) {
                    plain = Some(self.start_plain(up.target_fetcher(), target));
                }
                // The bin comes without the mutex: other requests go on meanwhile.
                drop(state);
                slot.prefetch.wait(&url);
                state = lock(&slot.state);
                self.make_current(slot, &mut state, false)?;
            }
        }
        let up = state.updater.as_mut().expect("refreshed");
        let info = match up.get_target_info(target) {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(None),
            Err(source) => return Err(ReadError::repository(&slot.entry, source)),
        };
        // Downloads go without the lock, so that one slow file holds up nothing else.
        let fetcher = up.target_fetcher();
        drop(state);
        let from_plain = match plain {
            Some(p) => self.take_plain(slot, target, &info, p)?,
            None => None,
        };
        let got = match from_plain {
            Some(got) => got,
            None => self.cache.get(&slot.entry, &fetcher, target, &info)?,
        };
        let (file, sha256, hit) = (got.file, got.sha256, got.hit);
        lock(&self.record).served.push(Served {
            repo: slot.entry.name.clone(),
            target: target.into(),
            sha256,
            length: info.length,
            cached: hit,
        });
        Ok(Some(Fetched { file, info }))
    }

    /// The URL (the first the failover loop tries) and the signed length cap of the bin that
    /// looking `target` up would fetch from the repository, if it would: the bin is not
    /// loaded, not in the metadata directory (then it is read from there), and its URL is a
    /// versioned one (consistent snapshots), whose bytes never change.
    fn bin_to_fetch(&self, slot: &Slot, up: &Updater, target: &str) -> Option<(String, u64)> {
        let trusted = up.trusted();
        if !trusted.root().signed.consistent_snapshot() {
            return None;
        }
        let mut search = TargetSearch::new(target, Limits { max_delegations: self.options.client.max_delegations });
        let SearchStep::Load { role, .. } = search.step(trusted) else { return None };
        if up.metadata_dir().join(layout::metadata_file(&role, None)).is_file() {
            return None;
        }
        let meta = trusted.meta_for(&role)?;
        let url = layout::metadata_url(&slot.trusted.metadata_url, &role, Some(meta.version));
        Some((slot.prefetch.first_candidate(&url), meta.length.unwrap_or(self.options.client.targets_max_length)))
    }

    /// Starts fetching `target` by its plain name into the cache directory (a temp file).
    fn start_plain(&self, fetcher: TargetFetcher, target: &str) -> PlainFetch {
        let (tx, got) = mpsc::sync_channel(1);
        let cap = Arc::new(AtomicU64::new(PLAIN_MAX));
        let (dir, target, c) = (self.cache.dir().to_path_buf(), target.to_string(), cap.clone());
        let spawned = std::thread::Builder::new().name("packman-plain".into()).spawn(move || {
            // The receiver may be gone (the lookup failed): the copy is then dropped, removed.
            let _ = tx.send(fetcher.fetch_plain(&dir, &target, &c));
        });
        if let Err(e) = spawned {
            let (tx, rx) = mpsc::sync_channel(1);
            let _ = tx.send(Err(packman_client::Error::Io { path: PathBuf::new(), source: e }));
            return PlainFetch { got: rx, cap };
        }
        PlainFetch { got, cap }
    }

    /// The plain-name copy of `target`, once verified against `info` and kept in the cache;
    /// `None` when it is not to be used (the file is cached already, or the copy was not had
    /// or did not match: then the caller downloads it by its hashed name).
    fn take_plain(
        &self,
        slot: &Slot,
        target: &str,
        info: &TargetFile,
        plain: PlainFetch,
    ) -> Result<Option<read::Cached>, ReadError> {
        plain.cap.store(info.length.min(PLAIN_MAX), Ordering::Relaxed);
        read::signed_sha256(&slot.entry, target, info)?;
        let cached = self.cache.holds(&slot.entry, target, info);
        let outcome = if cached { None } else { plain.got.recv().ok().and_then(Result::ok) };
        let Some(copy) = outcome else {
            lock(&self.record).plain.unused += 1;
            return Ok(None);
        };
        match copy.verify(info) {
            Ok(verified) => {
                let got = self.cache.keep(&slot.entry, verified)?;
                lock(&self.record).plain.verified += 1;
                Ok(Some(got))
            }
            // Not the repository's answer (the hashed name's is): counted, not reported.
            Err(_) => {
                lock(&self.record).plain.refused += 1;
                Ok(None)
            }
        }
    }

    /// Hints the bins of the newest files of a served JSON project page (see the module
    /// docs); whatever goes wrong here only costs the later request a round trip.
    fn hint_page_files(&self, slot: &Slot, project: &str, page: &[u8]) {
        let Ok(parsed) = packman_index::parse_project_json(project, page) else { return };
        let project = packman_index::normalize_name(project);
        let mut targets = Vec::new();
        if let Some((_, files)) = packman_index::select::by_version(&parsed).into_iter().next() {
            for f in files {
                let t = layout::package_target(&project, &f.filename);
                if f.core_metadata_sha256.is_some() {
                    targets.push(format!("{t}.metadata"));
                }
                targets.push(t);
            }
        }
        targets.truncate(HINTED_TARGETS);
        let state = lock(&slot.state);
        let Some(up) = state.updater.as_ref() else { return };
        let mut bins: Vec<(String, u64)> = Vec::new();
        for t in &targets {
            if let Some(b) = self.bin_to_fetch(slot, up, t) {
                if !bins.contains(&b) {
                    bins.push(b);
                }
            }
        }
        drop(state);
        for (url, max_len) in bins {
            if slot.prefetch.start(&url, max_len, false) == Start::Full {
                break;
            }
        }
    }
}
