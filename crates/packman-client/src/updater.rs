//! [`Updater`]: the client workflow of spec section 5 around a `TrustedSet`. It fetches,
//! hands bytes to the trust core, and persists only what the core accepted.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use packman_tuf::trusted::SearchStep;
use packman_tuf::{layout, Limits, OffsetDateTime, TargetFile, TargetSearch, TrustedSet, Verifier};
use tracing::debug;

use crate::failover::failover;
use crate::fetch::FetcherConfig;
use crate::store::MetadataStore;
use crate::transport::{DefaultTransport, Transport};
use crate::{Error, FetchError};

mod plain;
pub use plain::PlainCopy;

/// Delegated roles whose metadata [`Updater::load_all_targets`] fetches ahead at once: the
/// most held in memory before their check (each within its signed length).
const FETCH_AHEAD_BATCH: usize = 64;
/// Fetches running at once for those (as many as `mirror sync`'s default download jobs).
const FETCH_AHEAD_JOBS: usize = 8;

/// Defaults follow python-tuf's `UpdaterConfig`.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_root_rotations: u64,
    pub max_delegations: usize,
    pub root_max_length: u64,
    pub timestamp_max_length: u64,
    pub snapshot_max_length: u64,
    pub targets_max_length: u64,
    /// Fetch `dir/HASH.name` for targets when the root enables consistent snapshots.
    pub prefix_targets_with_hash: bool,
    /// Timeouts and minimum speed of the [`DefaultTransport`] that [`Updater::new`] builds
    /// (a transport given to [`Updater::with_transport`] brings its own).
    pub fetcher: FetcherConfig,
    /// Whether expired metadata is refused (default) or accepted and reported
    /// ([`TrustedSet::expired`]): the user's `--allow-expired`, for one run only.
    pub expiry: packman_tuf::Expiry,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            prefix_targets_with_hash: true,
            fetcher: FetcherConfig::default(),
            expiry: packman_tuf::Expiry::Enforce,
        }
    }
}

/// One repository's client: its trusted metadata directory, its URLs, and the [`Transport`]
/// every byte comes through.
pub struct Updater {
    config: Config,
    transport: Arc<dyn Transport>,
    store: MetadataStore,
    metadata_url: String,
    targets_url: Option<String>,
    trusted: TrustedSet,
    refreshed: bool,
    /// Metadata accepted so far, kept when [`Updater::record_verified`] is on.
    recorded: Option<Vec<VerifiedFile>>,
}

/// One metadata file the updater accepted: the exact bytes it verified (fetched, or read back
/// from its trusted metadata directory), its role and its signed version. What a mirror
/// writes (see [`Updater::record_verified`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFile {
    pub role: String,
    pub version: u64,
    pub bytes: Vec<u8>,
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

impl Updater {
    /// Writes `root` as the trusted root of a new metadata directory, after checking that it
    /// parses and carries its own threshold of signatures.
    pub fn bootstrap(metadata_dir: &Path, root: &[u8]) -> Result<(), Error> {
        let store = MetadataStore::open(metadata_dir)?;
        TrustedSet::new(root, OffsetDateTime::now_utc())
            .map_err(|e| Error::TrustedRoot { path: store.path_of("root"), reason: e.to_string() })?;
        store.write("root", root)
    }

    /// Opens the metadata directory (which must hold a trusted `root.json`) and locks it.
    pub fn new(
        metadata_dir: &Path,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
    ) -> Result<Self, Error> {
        Self::with_time(metadata_dir, metadata_url, targets_url, config, OffsetDateTime::now_utc())
    }

    /// As [`Updater::new`], with the update start time given (tests).
    pub fn with_time(
        metadata_dir: &Path,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let transport = Arc::new(DefaultTransport::new(config.fetcher.clone()));
        Self::open(metadata_dir, metadata_url, targets_url, config, transport, now)
    }

    /// As [`Updater::new`], fetching every file through `transport` (`config.fetcher` is not
    /// used). One transport may be shared by many updaters.
    pub fn with_transport(
        metadata_dir: &Path,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, Error> {
        Self::open(metadata_dir, metadata_url, targets_url, config, transport, OffsetDateTime::now_utc())
    }

    /// The constructor the others call: the transport and the update start time given.
    pub fn open(
        metadata_dir: &Path,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
        transport: Arc<dyn Transport>,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let store = MetadataStore::open(metadata_dir)?;
        Self::with_store(store, metadata_url, targets_url, config, transport, now)
    }

    /// As [`Updater::open`], for a reader while another process holds the metadata
    /// directory ([`MetadataStore::open_read_only`]): it verifies as always, starting from
    /// the trusted files there, and changes nothing on disk.
    pub fn open_read_only(
        metadata_dir: &Path,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
        transport: Arc<dyn Transport>,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let store = MetadataStore::open_read_only(metadata_dir);
        Self::with_store(store, metadata_url, targets_url, config, transport, now)
    }

    /// As [`Updater::open`] when the metadata directory is free, else as
    /// [`Updater::open_read_only`]: for a reader that must neither wait for nor fail because
    /// of another process. [`Updater::is_read_only`] says which.
    pub fn open_or_read_only(
        metadata_dir: &Path,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
        transport: Arc<dyn Transport>,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let store = MetadataStore::open_or_read_only(metadata_dir)?;
        Self::with_store(store, metadata_url, targets_url, config, transport, now)
    }

    /// Whether this updater writes nothing (another process holds its directory).
    pub fn is_read_only(&self) -> bool {
        self.store.is_read_only()
    }

    fn with_store(
        store: MetadataStore,
        metadata_url: &str,
        targets_url: Option<&str>,
        config: Config,
        transport: Arc<dyn Transport>,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let root_path = store.path_of("root");
        let root =
            store.read("root").map_err(|e| Error::TrustedRoot { path: root_path.clone(), reason: e.to_string() })?;
        let trusted = TrustedSet::new(&root, now)
            .map_err(|e| Error::TrustedRoot { path: root_path, reason: e.to_string() })?
            .with_expiry(config.expiry);
        Ok(Updater {
            transport,
            config,
            store,
            metadata_url: with_slash(metadata_url),
            targets_url: targets_url.map(with_slash),
            trusted,
            refreshed: false,
            recorded: None,
        })
    }

    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    pub fn metadata_dir(&self) -> &Path {
        self.store.dir()
    }

    /// The trusted metadata directory is scratch (a mirror's staging copy, which it writes
    /// durably elsewhere once verified): its writes skip fsync
    /// ([`MetadataStore::set_scratch`]). Never for a directory a later run trusts as is.
    pub fn scratch_metadata(&mut self) {
        self.store.set_scratch();
    }

    /// The transport this updater fetches through (to share with another updater).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Starts (or stops and forgets) keeping the exact bytes of every metadata file this
    /// updater accepts from now on: each root of the rotation walk, the timestamp, snapshot,
    /// targets and delegated roles, whether fetched or read back from the trusted metadata
    /// directory. Off by default; [`Updater::take_verified`] hands them over.
    pub fn record_verified(&mut self, on: bool) {
        self.recorded = on.then(Vec::new);
    }

    /// The metadata files accepted since recording started (or since the last call), in the
    /// order they were accepted. Empty when recording is off.
    pub fn take_verified(&mut self) -> Vec<VerifiedFile> {
        self.recorded.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Records `bytes` just accepted for `role` (a no-op unless recording).
    fn record(&mut self, role: &str, bytes: &[u8]) {
        let Some(recorded) = self.recorded.as_mut() else { return };
        let t = &self.trusted;
        let version = match role {
            "root" => Some(t.root().signed.version),
            "timestamp" => t.timestamp().map(|m| m.signed.version),
            "snapshot" => t.snapshot().map(|m| m.signed.version),
            _ => t.targets(role).map(|m| m.signed.version),
        };
        if let Some(version) = version {
            recorded.push(VerifiedFile { role: role.into(), version, bytes: bytes.to_vec() });
        }
    }

    /// Spec 5.3-5.6: updates root, timestamp, snapshot and top-level targets.
    pub fn refresh(&mut self) -> Result<(), Error> {
        self.load_root()?;
        self.load_timestamp()?;
        self.load_snapshot()?;
        self.load_targets("targets", "root")?;
        self.refreshed = true;
        self.store.flush()
    }

    /// As [`Updater::refresh`] from the trusted metadata directory alone, nothing fetched:
    /// for when the repository cannot be reached. The files there were verified when they
    /// were fetched, and the trust core checks them again as it would fetched ones
    /// (signatures by the trusted root's keys, versions, consistency, and expiry under
    /// `config.expiry`); no root rotation can be looked for. A role missing from the
    /// directory is an [`Error::Io`] naming its file.
    pub fn refresh_local(&mut self) -> Result<(), Error> {
        for role in ["timestamp", "snapshot", "targets"] {
            let path = self.store.path_of(role);
            let bytes = self.store.read(role).map_err(|e| Error::io(&path, e))?;
            let t = &mut self.trusted;
            let checked = match role {
                "timestamp" => t.update_timestamp(&bytes).map(drop),
                "snapshot" => t.update_snapshot(&bytes, true).map(drop),
                _ => t.update_delegated_targets(&bytes, role, "root").map(drop),
            };
            checked.map_err(|source| Error::Metadata { url: path.display().to_string(), source })?;
            self.record(role, &bytes);
        }
        self.refreshed = true;
        Ok(())
    }

    fn metadata_url_for(&self, role: &str, version: Option<u64>) -> String {
        match version {
            Some(v) => layout::metadata_url(&self.metadata_url, role, Some(v)),
            None => layout::metadata_url(&self.metadata_url, role, None),
        }
    }

    fn load_root(&mut self) -> Result<(), Error> {
        let first = self.trusted.root().signed.version + 1;
        for version in first..first.saturating_add(self.config.max_root_rotations) {
            let url = self.metadata_url_for("root", Some(version));
            let keys_before = timestamp_snapshot_keys(&self.trusted.root().signed);
            let (transport, trusted, max_len) =
                (self.transport.clone(), &mut self.trusted, self.config.root_max_length);
            let bytes = match failover(transport.as_ref(), &url, |u| {
                let bytes = transport.fetch(u, max_len)?;
                trusted.update_root(&bytes).map_err(|source| Error::Metadata { url: u.into(), source })?;
                Ok(bytes)
            }) {
                Ok(b) => b,
                Err(Error::Fetch(e)) if e.is_not_found() => break,
                Err(e) => return Err(e),
            };
            // Spec 5.3.11: new timestamp or snapshot keys end trust in the local timestamp and
            // snapshot (fast-forward attack recovery). Removed before the root is persisted,
            // so a crash in between cannot skip it.
            if timestamp_snapshot_keys(&self.trusted.root().signed) != keys_before {
                self.store.remove("timestamp")?;
                self.store.remove("snapshot")?;
            }
            self.store.write("root", &bytes)?;
            self.record("root", &bytes);
            debug!(version, "trusted new root");
        }
        Ok(())
    }

    fn load_timestamp(&mut self) -> Result<(), Error> {
        if let Ok(local) = self.store.read("timestamp") {
            // An invalid or expired local copy is no reason to stop: a valid one still
            // guards the new timestamp against rollback.
            match self.trusted.update_timestamp(&local) {
                Ok(_) => self.record("timestamp", &local),
                Err(e) => debug!("local timestamp not usable: {e}"),
            }
        }
        let url = self.metadata_url_for("timestamp", None);
        let (transport, trusted, max_len) =
            (self.transport.clone(), &mut self.trusted, self.config.timestamp_max_length);
        let got = failover(transport.as_ref(), &url, |u| {
            let bytes = transport.fetch(u, max_len)?;
            match trusted.update_timestamp(&bytes) {
                Ok(_) => Ok(Some(bytes)),
                Err(packman_tuf::Error::EqualVersion { .. }) => Ok(None),
                Err(source) => Err(Error::Metadata { url: u.into(), source }),
            }
        })?;
        match got {
            Some(bytes) => {
                self.record("timestamp", &bytes);
                self.store.write("timestamp", &bytes)
            }
            None => {
                // The trusted timestamp stays; if it has expired, stop here (spec 5.4.4).
                self.trusted.check_final_timestamp().map_err(|source| Error::Metadata { url, source })
            }
        }
    }

    fn load_snapshot(&mut self) -> Result<(), Error> {
        if let Ok(local) = self.store.read("snapshot") {
            match self.trusted.update_snapshot(&local, true) {
                Ok(_) => {
                    self.record("snapshot", &local);
                    return Ok(());
                }
                Err(e) => debug!("local snapshot not usable: {e}"),
            }
        }
        let meta = self.trusted.timestamp().expect("loaded").signed.snapshot_meta();
        let max_len = meta.length.unwrap_or(self.config.snapshot_max_length);
        let version = self.trusted.root().signed.consistent_snapshot().then_some(meta.version);
        let url = self.metadata_url_for("snapshot", version);
        let (transport, trusted) = (self.transport.clone(), &mut self.trusted);
        let bytes = failover(transport.as_ref(), &url, |u| {
            let bytes = transport.fetch(u, max_len)?;
            trusted.update_snapshot(&bytes, false).map_err(|source| Error::Metadata { url: u.into(), source })?;
            Ok(bytes)
        })?;
        self.record("snapshot", &bytes);
        self.store.write("snapshot", &bytes)
    }

    fn load_targets(&mut self, role: &str, delegator: &str) -> Result<(), Error> {
        self.load_targets_with(role, delegator, None)
    }

    /// [`Updater::load_targets`], trying `fetched` first when given: bytes of `role`'s
    /// metadata fetched ahead ([`Updater::fetch_ahead`]), verified here like any others. If
    /// the trust core refuses them, the role is fetched again through the failover loop,
    /// which reports the mirror and tries the next one.
    fn load_targets_with(&mut self, role: &str, delegator: &str, fetched: Option<Vec<u8>>) -> Result<(), Error> {
        if self.trusted.is_trusted_via(role, delegator) {
            return Ok(());
        }
        if self.trusted.targets(role).is_some() {
            let local = self.store.path_of(role).display().to_string();
            return self
                .trusted
                .verify_loaded_via(role, delegator)
                .map_err(|source| Error::Metadata { url: local, source });
        }
        if let Ok(local) = self.store.read(role) {
            match self.trusted.update_delegated_targets(&local, role, delegator) {
                Ok(_) => {
                    self.record(role, &local);
                    return Ok(());
                }
                Err(e) => debug!(role, "local metadata not usable: {e}"),
            }
        }
        let meta = self.trusted.meta_for(role).ok_or_else(|| Error::Metadata {
            url: self.metadata_url_for("snapshot", None),
            source: packman_tuf::Error::Inconsistent {
                role: role.into(),
                reason: format!("delegated by {delegator} but the snapshot does not list {role}.json"),
            },
        })?;
        let max_len = meta.length.unwrap_or(self.config.targets_max_length);
        let version = self.trusted.root().signed.consistent_snapshot().then_some(meta.version);
        let url = self.metadata_url_for(role, version);
        if let Some(bytes) = fetched {
            match self.trusted.update_delegated_targets(&bytes, role, delegator) {
                Ok(_) => {
                    self.record(role, &bytes);
                    return self.store.write(role, &bytes);
                }
                Err(e) => debug!(role, "metadata fetched ahead refused, fetching it again: {e}"),
            }
        }
        let (transport, trusted) = (self.transport.clone(), &mut self.trusted);
        let bytes = failover(transport.as_ref(), &url, |u| {
            let bytes = transport.fetch(u, max_len)?;
            trusted
                .update_delegated_targets(&bytes, role, delegator)
                .map_err(|source| Error::Metadata { url: u.into(), source })?;
            Ok(bytes)
        })?;
        self.record(role, &bytes);
        self.store.write(role, &bytes)
    }

    /// The metadata of those of `roles` that neither the trusted set nor the metadata
    /// directory holds, fetched in parallel ([`FETCH_AHEAD_JOBS`] at a time) from the first
    /// place the transport names, each within its signed length: **unverified** bytes, only
    /// ever handed to [`Updater::load_targets_with`]. A role that fails to arrive is left out,
    /// and so are those not started by then (their sequential fetch fails over and reports the
    /// mirror, so a stalled one costs one timeout here, not one per role). Without this a full mirror of
    /// 16,384 bins was 16,384 round trips one after another (benches/README, mirror benchmark).
    fn fetch_ahead(&self, roles: &[String]) -> HashMap<String, Vec<u8>> {
        let consistent = self.trusted.root().signed.consistent_snapshot();
        let wanted: Vec<(String, String, u64)> = roles
            .iter()
            .filter(|r| self.trusted.targets(r).is_none() && !self.store.path_of(r).is_file())
            .filter_map(|r| {
                let meta = self.trusted.meta_for(r)?;
                let url = self.metadata_url_for(r, consistent.then_some(meta.version));
                let url = self.transport.candidates(&url).into_iter().next().map_or(url, |c| c.url);
                Some((r.clone(), url, meta.length.unwrap_or(self.config.targets_max_length)))
            })
            .collect();
        if wanted.len() < 2 {
            return HashMap::new();
        }
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (next, failed, transport) = (AtomicUsize::new(0), AtomicBool::new(false), self.transport.as_ref());
        let got = std::sync::Mutex::new(HashMap::new());
        std::thread::scope(|s| {
            for _ in 0..FETCH_AHEAD_JOBS.min(wanted.len()) {
                s.spawn(|| {
                    // After a failure (a mirror down or stalling) no new fetch starts here: the
                    // sequential failover finds out once and moves that mirror last.
                    while !failed.load(Ordering::Relaxed) {
                        let Some((role, url, max_len)) = wanted.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        match transport.fetch(url, *max_len) {
                            Ok(bytes) => {
                                got.lock().unwrap_or_else(|e| e.into_inner()).insert(role.clone(), bytes);
                            }
                            Err(_) => failed.store(true, Ordering::Relaxed),
                        }
                    }
                });
            }
        });
        got.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads every targets role reachable through the delegation graph from top-level
    /// `targets`: each classic delegation and every bin of a succinct (TAP 15) one, each
    /// verified as [`Updater::get_target_info`] verifies the roles it passes through
    /// (snapshot entry, length, hashes, version, expiry, and the keys of *every* delegator
    /// that names it). Refreshes first if needed. Returns the roles in the order loaded
    /// (breadth first, `targets` first). Roles the snapshot lists that no delegation reaches
    /// are not loaded (nothing could verify their signatures).
    pub fn load_all_targets(&mut self) -> Result<Vec<String>, Error> {
        if !self.refreshed {
            self.refresh()?;
        }
        // Every role loaded must be listed by the snapshot, so its size bounds the walk.
        let cap = self.trusted.snapshot().map_or(0, |s| s.signed.meta.len());
        let mut order = vec!["targets".to_string()];
        let mut seen: std::collections::HashSet<String> = order.iter().cloned().collect();
        let mut next = 0;
        while next < order.len() {
            let delegator = order[next].clone();
            next += 1;
            let children: Vec<String> =
                match self.trusted.targets(&delegator).and_then(|t| t.signed.delegations.as_ref()) {
                    None => Vec::new(),
                    Some(d) => match (&d.roles, &d.succinct_roles) {
                        (Some(roles), _) => roles.iter().map(|r| r.name.clone()).collect(),
                        (None, Some(s)) => (0..s.bin_count()).map(|b| s.bin_name(b)).collect(),
                        (None, None) => Vec::new(),
                    },
                };
            for batch in children.chunks(FETCH_AHEAD_BATCH) {
                let mut ahead = self.fetch_ahead(batch);
                for child in batch {
                    if seen.len() >= cap && !seen.contains(child) {
                        return Err(Error::Metadata {
                            url: self.metadata_url_for("snapshot", None),
                            source: packman_tuf::Error::Inconsistent {
                                role: child.clone(),
                                reason: format!("more delegated roles than the {cap} the snapshot lists"),
                            },
                        });
                    }
                    let fetched = ahead.remove(child);
                    self.load_targets_with(child, &delegator, fetched)?;
                    if seen.insert(child.clone()) {
                        order.push(child.clone());
                    }
                }
            }
        }
        self.store.flush()?;
        Ok(order)
    }

    /// Every target the repository signs, as a client would resolve it: the paths listed by
    /// any role [`Updater::load_all_targets`] loads, each looked up through the delegation
    /// search of [`Updater::get_target_info`] (so delegated paths, terminating delegations
    /// and precedence apply as for a client; a path that a client's search would not find
    /// in any role is left out). Sorted by path.
    pub fn all_targets(&mut self) -> Result<Vec<(String, TargetFile)>, Error> {
        let roles = self.load_all_targets()?;
        let mut paths = std::collections::BTreeSet::new();
        for role in &roles {
            if let Some(t) = self.trusted.targets(role) {
                paths.extend(t.signed.targets.keys().cloned());
            }
        }
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            if let Some(info) = self.get_target_info(&path)? {
                out.push((path, info));
            }
        }
        Ok(out)
    }

    /// Spec 5.7: finds the signed description of `target`, loading only the delegated roles
    /// the search passes through. Refreshes first if this updater has not yet.
    pub fn get_target_info(&mut self, target: &str) -> Result<Option<TargetFile>, Error> {
        if !self.refreshed {
            self.refresh()?;
        }
        let mut search = TargetSearch::new(target, Limits { max_delegations: self.config.max_delegations });
        loop {
            match search.step(&self.trusted) {
                SearchStep::Load { role, delegator } => self.load_targets(&role, &delegator)?,
                SearchStep::Found(t) => {
                    self.store.flush()?;
                    return Ok(Some(t));
                }
                SearchStep::NotFound => {
                    self.store.flush()?;
                    return Ok(None);
                }
            }
        }
    }

    /// Where [`Updater::download_target`] and [`Updater::download_verified`] put `target`
    /// inside `dir`.
    pub fn local_path(dir: &Path, target: &str) -> PathBuf {
        layout::cache_path(dir, target)
    }

    /// The local copy of `target` in `dir`, if one exists with the signed length and hashes.
    pub fn find_cached_target(&self, dir: &Path, target: &str, info: &TargetFile) -> Option<PathBuf> {
        let path = Self::local_path(dir, target);
        is_cached(&path, info).then_some(path)
    }

    /// Looks `target` up in the signed metadata (refreshing first if needed) and makes sure a
    /// verified copy is in `dir`, at [`Updater::local_path`]: a copy already there with the
    /// signed length and hashes is kept, otherwise the target is downloaded as
    /// [`Updater::download_target`] does. [`Error::TargetNotFound`] if no role lists it.
    pub fn download_verified(&mut self, dir: &Path, target: &str) -> Result<Downloaded, Error> {
        self.download_verified_to(&Self::local_path(dir, target), target)
    }

    /// As [`Updater::download_verified`], to a file path of the caller's choosing.
    pub fn download_verified_to(&mut self, dest: &Path, target: &str) -> Result<Downloaded, Error> {
        let info = self.get_target_info(target)?.ok_or_else(|| Error::TargetNotFound(target.into()))?;
        let cached = is_cached(dest, &info);
        if !cached {
            self.download_target_to(dest, target, &info)?;
        }
        Ok(Downloaded { path: dest.to_path_buf(), info, cached })
    }

    /// Downloads `target` into `dir`: streamed to a temp file while hashing, refused beyond
    /// the signed length, and renamed into place only when length and every hash match.
    pub fn download_target(&self, dir: &Path, target: &str, info: &TargetFile) -> Result<PathBuf, Error> {
        let dest = Self::local_path(dir, target);
        self.download_target_to(&dest, target, info)?;
        Ok(dest)
    }

    /// As [`Updater::download_target`], to a file path of the caller's choosing.
    pub fn download_target_to(&self, dest: &Path, target: &str, info: &TargetFile) -> Result<(), Error> {
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        self.download_target_temp(dir, target, info)?.persist(dest)
    }

    /// Streams `target` into a new temp file in `temp_dir` (created if needed), hashing as it
    /// goes and refusing more than the signed length. The file is handed back only once its
    /// length and every signed hash match; on any error it is removed. The caller reads it
    /// ([`VerifiedTarget::reopen`]), moves it into place ([`VerifiedTarget::persist`], on
    /// the same filesystem) or drops it (which removes it).
    pub fn download_target_temp(
        &self,
        temp_dir: &Path,
        target: &str,
        info: &TargetFile,
    ) -> Result<VerifiedTarget, Error> {
        self.target_fetcher().download_target_temp(temp_dir, target, info)
    }

    /// The repository's signed mirror list ([`layout::MIRRORS_TARGET`]), if it signs one:
    /// looked up (refreshing first if needed) and downloaded as any target, verified, through
    /// `temp_dir`. [`Error::MirrorList`] if its signed bytes are not a valid list.
    pub fn signed_mirrors(&mut self, temp_dir: &Path) -> Result<Option<packman_tuf::mirrors::MirrorList>, Error> {
        let Some(info) = self.get_target_info(layout::MIRRORS_TARGET)? else { return Ok(None) };
        let file = self.download_target_temp(temp_dir, layout::MIRRORS_TARGET, &info)?;
        let bytes = std::fs::read(file.path()).map_err(|e| Error::io(file.path(), e))?;
        packman_tuf::mirrors::MirrorList::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::MirrorList { reason: e.to_string() })
    }

    /// What downloading a target needs (transport, targets URL, hash-prefixed names or not),
    /// apart from the updater: a server looks targets up with the updater and downloads
    /// through this without holding it, so downloads run side by side.
    pub fn target_fetcher(&self) -> TargetFetcher {
        TargetFetcher {
            transport: self.transport.clone(),
            targets_url: self.targets_url.clone(),
            prefixed: self.trusted.root().signed.consistent_snapshot() && self.config.prefix_targets_with_hash,
            sync_each: true,
        }
    }
}

/// Downloads targets as [`Updater::download_target_temp`] does, for a target whose signed
/// description the caller got from [`Updater::get_target_info`]. Made by
/// [`Updater::target_fetcher`].
#[derive(Clone)]
pub struct TargetFetcher {
    transport: Arc<dyn Transport>,
    targets_url: Option<String>,
    prefixed: bool,
    /// fsync each verified file before handing it back (see [`TargetFetcher::batch_durability`]).
    sync_each: bool,
}

impl TargetFetcher {
    /// A fetcher for many files that the caller makes durable together: verified files are
    /// handed back without their own fsync (only a writeback head start), and the caller
    /// must make them durable ([`packman_fs::make_durable`], one `syncfs` on Linux) before
    /// anything names them (a rename to a final name, metadata listing them). An fsync per
    /// file is the cost of a mirror's full sync otherwise (benches/README, mirror benchmark).
    /// Until then a crash can leave such a file torn, so whoever finds one again must
    /// verify it again, as the mirror's resume journal does.
    pub fn batch_durability(mut self) -> Self {
        self.sync_each = false;
        self
    }

    /// See [`Updater::download_target_temp`].
    pub fn download_target_temp(
        &self,
        temp_dir: &Path,
        target: &str,
        info: &TargetFile,
    ) -> Result<VerifiedTarget, Error> {
        self.download_target_temp_with(temp_dir, target, info, &mut |_| {})
    }

    /// As [`TargetFetcher::download_target_temp`], telling `progress` the number of bytes
    /// received so far after each chunk (for a progress bar; the check is the same).
    pub fn download_target_temp_with(
        &self,
        temp_dir: &Path,
        target: &str,
        info: &TargetFile,
        progress: &mut dyn FnMut(u64),
    ) -> Result<VerifiedTarget, Error> {
        let url = self.target_url(target, info)?;
        // Each candidate (mirror) into its own temp file, verified before it counts.
        failover(self.transport.as_ref(), &url, |u| self.attempt(temp_dir, target, info, u, &mut *progress))
    }

    /// Downloads `target` into exactly `path` (in an existing directory), verified, with
    /// no temp file and no rename; on any failure nothing is left at `path`. For a batch
    /// whose names nothing trusts for being there (the mirror's resume journal, checked
    /// again whenever it is found), moved to final names only after the caller made the
    /// whole batch durable: nothing here is synced, or even started towards the disk
    /// ([`packman_fs::BackgroundSync`] writes such a batch back). Whatever was at `path`
    /// before is removed first.
    pub fn download_target_into(
        &self,
        path: &Path,
        target: &str,
        info: &TargetFile,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let url = self.target_url(target, info)?;
        let r = failover(self.transport.as_ref(), &url, |u| {
            // Created new (not truncated: another name may link to what is there), and
            // removed first only when there (a failing unlink costs a directory lookup
            // under the directory's lock, which the other downloads into it wait for).
            let mut file = match packman_fs::create_new_public(path) {
                Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                    packman_fs::create_new_public(path)?
                }
                r => r?,
            };
            self.fetch_verified(&mut file, target, info, u, &mut *progress)
        });
        if r.is_err() {
            let _ = std::fs::remove_file(path);
        }
        r
    }

    /// One download of `target` from `url`, verified.
    fn attempt(
        &self,
        temp_dir: &Path,
        target: &str,
        info: &TargetFile,
        url: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<VerifiedTarget, Error> {
        std::fs::create_dir_all(temp_dir).map_err(|e| Error::io(temp_dir, e))?;
        // A downloaded file is an ordinary file for its user (tempfile's default is 0600).
        let mut tmp = packman_fs::public_tempfile(temp_dir)?;
        self.fetch_verified(tmp.as_file_mut(), target, info, url, progress)?;
        if self.sync_each {
            tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
        } else {
            packman_fs::platform::start_writeback(packman_fs::Durability::detect(), tmp.as_file());
        }
        Ok(VerifiedTarget { tmp, target: target.into(), info: info.clone(), synced: self.sync_each })
    }

    /// Fetches `url` into `file` within the signed length, through the trust core's check of
    /// the length and hashes.
    fn fetch_verified(
        &self,
        file: &mut File,
        target: &str,
        info: &TargetFile,
        url: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let mismatch = |reason: String| Error::TargetMismatch { target: target.into(), url: url.into(), reason };
        let mut verifier = Verifier::for_target(info).map_err(|m| mismatch(m.to_string()))?;
        {
            let mut sink = VerifyingWriter { inner: file, verifier: &mut verifier, progress, received: 0 };
            self.transport.fetch_to(url, info.length, &mut sink).map_err(|e| match e {
                FetchError::TooLarge { .. } => mismatch(format!("longer than the signed length {}", info.length)),
                other => Error::Fetch(other),
            })?;
        }
        verifier.finish().map_err(|m| mismatch(m.to_string()))
    }

    /// The URL `target` is fetched from: the targets base, and with consistent snapshots the
    /// file name prefixed by its first signed hash (`dir/HASH.name`).
    fn target_url(&self, target: &str, info: &TargetFile) -> Result<String, Error> {
        let base = self.targets_url.as_deref().ok_or(Error::NoTargetsUrl)?;
        let hash = if self.prefixed { info.name_hash() } else { None };
        layout::target_url(base, target, hash).map_err(|source| Error::TargetPath { target: target.into(), source })
    }
}

/// What [`Updater::download_verified`] did: where the verified file is, its signed
/// description, and whether it was already there.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub path: PathBuf,
    pub info: TargetFile,
    /// A copy with the signed length and hashes was already at `path`: nothing was fetched.
    pub cached: bool,
}

/// A target's bytes in a temp file, checked against the signed length and hashes. Only
/// [`Updater::download_target_temp`] makes one, after the check; dropping it removes the file.
#[derive(Debug)]
pub struct VerifiedTarget {
    tmp: tempfile::NamedTempFile,
    target: String,
    info: TargetFile,
    /// The bytes were fsynced already (else [`VerifiedTarget::persist`] does it first).
    synced: bool,
}

impl VerifiedTarget {
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The signed description the bytes matched.
    pub fn info(&self) -> &TargetFile {
        &self.info
    }

    /// Where the temp file is now (it moves on [`VerifiedTarget::persist`]).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A new handle on the verified bytes, positioned at the start.
    pub fn reopen(&self) -> Result<File, Error> {
        self.tmp.reopen().map_err(|e| Error::io(self.tmp.path(), e))
    }

    /// Renames the file to `dest` (which must be on the temp file's filesystem) and makes
    /// the rename durable; the bytes are made durable first if they were not yet (a
    /// [`TargetFetcher::batch_durability`] fetch, a [`PlainCopy`](super::PlainCopy)), so a
    /// crash never leaves a torn file under `dest`.
    pub fn persist(self, dest: &Path) -> Result<(), Error> {
        if !self.synced {
            self.tmp.as_file().sync_all().map_err(|e| Error::io(self.tmp.path(), e))?;
        }
        self.tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Ok(packman_fs::sync_dir(dir)?)
    }

    /// Renames the file to `dest` (on the temp file's filesystem) without making anything
    /// durable: for a batch from a [`TargetFetcher::batch_durability`] fetcher, whose caller
    /// makes the files and their directories durable together.
    pub fn persist_in_batch(self, dest: &Path) -> Result<(), Error> {
        self.tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
        Ok(())
    }
}

/// The keys (by keyid) of the timestamp and snapshot roles, for spec 5.3.11.
fn timestamp_snapshot_keys(root: &packman_tuf::Root) -> Vec<Vec<(String, Option<packman_tuf::Key>)>> {
    let keys_of = |role| {
        let ids = root.keys_for(role).map(|(ids, _)| ids).unwrap_or_default();
        let mut keys: Vec<_> = ids.iter().map(|id| (id.clone(), root.keys.get(id).cloned())).collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys
    };
    vec![keys_of(packman_tuf::TopLevelRole::Timestamp), keys_of(packman_tuf::TopLevelRole::Snapshot)]
}

/// Whether `path` holds exactly the bytes `info` describes (checked by the trust core).
pub fn is_cached(path: &Path, info: &TargetFile) -> bool {
    File::open(path).is_ok_and(|f| info.verify_reader(f).is_ok())
}

/// Writes to a file and feeds the trust core's verifier the same bytes.
struct VerifyingWriter<'a> {
    inner: &'a mut File,
    verifier: &'a mut Verifier,
    progress: &'a mut dyn FnMut(u64),
    received: u64,
}

impl Write for VerifyingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.verifier.update(&buf[..n]).map_err(std::io::Error::other)?;
        self.received += n as u64;
        (self.progress)(self.received);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
