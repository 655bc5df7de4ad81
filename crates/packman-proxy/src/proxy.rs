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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use packman_client::{DefaultTransport, FailoverTransport, MirrorFailure, Transport, Updater};
use packman_server::{page_format, resolve, PageFormat, Resolved, ACCEPTABLE};
use packman_trust::read::{self, Page, VerifiedCache};
use packman_trust::{Home, ReadError, RepoEntry, Ring, TrustedRepo};
use packman_tuf::{layout, OffsetDateTime, TargetFile};

use crate::ProxyError;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            refresh_every: Duration::from_secs(60),
            client: packman_client::Config::default(),
            clock: Arc::new(OffsetDateTime::now_utc),
            log_to_stderr: true,
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
}

/// A verified file in the cache.
struct Fetched {
    path: PathBuf,
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
                Ok(Slot {
                    entry: entry.clone(),
                    trusted: entry.trusted(home),
                    transport: read::ring_transport(home, entry, inner.clone())?,
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
        let Some(got) = self.fetch(self.slot(entry), target, true)? else { return Ok(None) };
        std::fs::read(&got.path).map(Some).map_err(|source| ReadError::Io { path: got.path, source })
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
        let Page { bytes, .. } = read::project_page(&self.ring, project, json, |e, t| self.read(e, t))?;
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
        let file = File::open(&got.path).map_err(|e| ProxyError::io(&got.path, e))?;
        Ok(Reply {
            status: 200,
            content_type: packman_server::content_type(Path::new(target)).0,
            body: ReplyBody::File(file, got.info.length),
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
        let now = (self.options.clock)();
        let opened =
            read::open_fresh(&slot.entry, &slot.trusted, self.options.client.clone(), slot.transport.clone(), now);
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

    /// The verified file of `target` in the cache, fetched through the owner's updater if
    /// needed; `None` if the repository does not sign it. A page request (`page`) refreshes
    /// the repository first when its metadata is older than `refresh_every`.
    fn fetch_once(&self, slot: &Slot, target: &str, page: bool) -> Result<Option<Fetched>, ReadError> {
        let mut state = lock(&slot.state);
        let stale = match state.refreshed {
            None => true,
            Some(at) => page && at.elapsed() >= self.options.refresh_every,
        };
        if stale || state.updater.is_none() {
            self.refresh(slot, &mut state)?;
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
        let got = self.cache.get(&slot.entry, &fetcher, target, &info)?;
        lock(&self.record).served.push(Served {
            repo: slot.entry.name.clone(),
            target: target.into(),
            sha256: got.sha256,
            length: info.length,
            cached: got.hit,
        });
        Ok(Some(Fetched { path: got.path, info }))
    }
}
