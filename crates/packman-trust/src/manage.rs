//! Changing the trust ring and keeping it fresh: [`add_repo`], [`remove_repo`],
//! [`update_repo`], and [`repo_status`] for reading what is trusted.
//!
//! The rules, stated once:
//!
//! - **A root comes from the user.** [`RootSource`] is a file from a trusted place, the
//!   sha256 fingerprint of the repository's `1.root.json` obtained from a trusted place, or,
//!   only when asked for by name, trust on first use. Extra places serving the same root
//!   (`--root-from`) must agree byte for byte. The root must carry its own threshold of
//!   root signatures ([`crate::ensure_trust_bytes`]).
//! - **An add is all or nothing.** The root is pinned and the first update runs in a staging
//!   directory (`<data>/ring/.adding-NAME`, a name no repository can have); only when both
//!   succeed is it renamed to `<data>/ring/NAME` and the ring saved. Any refusal leaves the
//!   config and the repository's directory as they were.
//! - **The root changes only through signed rotations**, which the updater follows. When an
//!   update fails and the repository serves a root that is not the trusted one (the next
//!   version not signed by the trusted root keys, or the trusted version or `root.json`
//!   replaced), the error is [`TrustError::RootChanged`] with both fingerprints, and the
//!   trusted state is untouched: the updater persists only what the trust core accepted,
//!   and the state file is written only after a successful update.
//!
//! Each repository's directory holds `metadata/` (trusted metadata) and `state.json`
//! ([`RepoState`]: when it was last updated and to which versions), replaced atomically.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use packman_client::{Config, Transport};
use packman_tuf::{Envelope, Expires, OffsetDateTime, Root};
use serde::{Deserialize, Serialize};

use crate::{ensure_trust_bytes, ring_dir, Home, RepoEntry, Ring, TrustError};

/// The state file's name in a repository's ring directory.
pub const STATE_FILE: &str = "state.json";

/// The repository's signed mirror list as the last verified update read it (a verified
/// target's bytes), in its ring directory: where else to fetch from when its URL is down.
/// Only a hint of where to look: everything fetched from a mirror is verified.
pub const SIGNED_MIRRORS_FILE: &str = "mirrors.json";

/// Where the root to trust comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// A root.json obtained from a trusted place.
    File(PathBuf),
    /// The sha256 (hex) of the repository's `1.root.json`, obtained from a trusted place.
    Sha256(String),
    /// Whatever `1.root.json` the repository serves now (trust on first use).
    Tofu,
}

/// What [`add_repo`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub status: RepoStatus,
    /// The root was trusted on first use.
    pub tofu: bool,
    /// The URLs the root was fetched from or compared with.
    pub sources: Vec<String>,
    /// Each failed attempt on the repository's URL or a mirror (the data then came from
    /// another one): which, and how.
    pub mirror_failures: Vec<String>,
}

/// A mirror of a trusted repository, as `trust list` and `trust show` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorStatus {
    /// The name the signed list gives it, or its metadata URL.
    pub name: String,
    pub metadata_url: String,
    pub targets_url: String,
    /// "configured" (the ring's config) or "signed" (the repository's signed list, as last
    /// verified).
    pub source: String,
}

/// What a repository's `state.json` records after each successful update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoState {
    /// RFC 3339, UTC.
    pub last_update: String,
    pub root_version: u64,
    pub timestamp_version: Option<u64>,
    pub snapshot_version: Option<u64>,
    pub targets_version: Option<u64>,
    /// The bundle this update was read from (`update --bundle`), none when from the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// One top-level role as the trusted metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleStatus {
    pub role: String,
    pub keyids: Vec<String>,
    pub threshold: u64,
    /// The trusted version and expiry of the role's own metadata (none before the first
    /// update of that role).
    pub version: Option<u64>,
    pub expires: Option<String>,
}

/// A trusted repository as `trust list` and `trust show` describe it, read from local state
/// only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoStatus {
    pub name: String,
    pub url: String,
    pub metadata_url: String,
    pub targets_url: String,
    pub projects: Vec<String>,
    pub added: Option<String>,
    /// sha256 (hex) of the trusted root.json bytes.
    pub root_fingerprint: String,
    pub root_version: u64,
    pub root_expires: String,
    /// root, timestamp, snapshot, targets.
    pub roles: Vec<RoleStatus>,
    pub last_update: Option<String>,
    /// Configured mirrors first, then those of the signed list (in the order tried).
    pub mirrors: Vec<MirrorStatus>,
}

impl RepoStatus {
    pub fn role(&self, role: &str) -> Option<&RoleStatus> {
        self.roles.iter().find(|r| r.role == role)
    }
}

/// A root rotation an update followed: keys as `ROLE:KEYID` (every top-level role's keys the
/// root names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    pub from: u64,
    pub to: u64,
    pub keys_added: Vec<String>,
    pub keys_removed: Vec<String>,
}

/// What [`update_repo`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Updated {
    pub name: String,
    pub state: RepoState,
    /// Set when the trusted root moved (signed rotations followed).
    pub rotation: Option<Rotation>,
    /// Each failed attempt on the repository's URL or a mirror: which, and how.
    pub mirror_failures: Vec<String>,
    /// Roles accepted although expired (only when the config allowed it), as
    /// `ROLE vVERSION expired TIME`.
    pub expired: Vec<String>,
}

/// A root the repository serves that does not follow from the trusted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootChange {
    pub name: String,
    pub url: String,
    pub trusted_version: u64,
    pub trusted_fingerprint: String,
    /// The trusted root's root-role keyids.
    pub trusted_keys: Vec<String>,
    /// Where the offending root was found.
    pub offending_url: String,
    /// sha256 of the offending root's bytes, when they could be fetched again.
    pub offered_fingerprint: Option<String>,
    pub offered_version: Option<u64>,
    /// The offending root's root-role keyids, when it parses as a root.
    pub offered_keys: Vec<String>,
    /// sha256 of the `1.root.json` the repository serves now: what `trust add --root-sha256`
    /// checks, should the user accept the change.
    pub first_root_fingerprint: Option<String>,
    /// What the updater reported.
    pub reason: String,
}

/// sha256 of `bytes`, lowercase hex: the fingerprint of a root file.
pub fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(::ring::digest::digest(&::ring::digest::SHA256, bytes))
}

fn now_text(now: OffsetDateTime) -> String {
    Expires(now).to_string()
}

/// A root file, from the first of the transport's places (URL, mirrors) that has it; what it
/// is worth is decided by the caller (fingerprint, agreement, signatures).
fn fetch_root(transport: &dyn Transport, url: &str, config: &Config) -> Result<Vec<u8>, TrustError> {
    packman_client::failover(transport, url, |u| Ok(transport.fetch(u, config.root_max_length)?)).map_err(|e| match e {
        packman_client::Error::Fetch(f) => TrustError::FetchRoot(f),
        other => {
            TrustError::FetchRoot(packman_client::FetchError::Transport { url: url.into(), message: other.to_string() })
        }
    })
}

fn read_to_trust(e: crate::ReadError) -> TrustError {
    match e {
        crate::ReadError::Trust(t) => *t,
        other => TrustError::Config { path: PathBuf::new(), reason: other.to_string() },
    }
}

/// Saves the repository's signed mirror list (verified by `up`, just refreshed) in
/// `ring_dir`, or removes the saved one when it signs none. A list that cannot be read is
/// left as it was: the next update tries again.
pub(crate) fn save_signed_mirrors(up: &mut packman_client::Updater, ring_dir: &Path) {
    let path = ring_dir.join(SIGNED_MIRRORS_FILE);
    match up.signed_mirrors(ring_dir) {
        Ok(Some(list)) => {
            let _ = packman_fs::write_atomic(&path, &serde_json::to_vec_pretty(&list).expect("a list serialises"));
        }
        Ok(None) => {
            let _ = std::fs::remove_file(&path);
        }
        Err(_) => {}
    }
}

/// The signed mirror list saved by the last verified update, if any.
pub(crate) fn saved_signed_mirrors(ring_dir: &Path) -> Option<packman_tuf::mirrors::MirrorList> {
    packman_tuf::mirrors::MirrorList::from_slice(&std::fs::read(ring_dir.join(SIGNED_MIRRORS_FILE)).ok()?).ok()
}

/// Adds `entry` to the ring of `home`, trusting the root `source` names, and updates it once.
/// All or nothing (see the module docs). `entry.added` is set to `now`.
pub fn add_repo(
    home: &Home,
    entry: RepoEntry,
    source: &RootSource,
    root_from: &[String],
    transport: Arc<dyn Transport>,
    config: Config,
    now: OffsetDateTime,
) -> Result<Added, TrustError> {
    // Name, URL and patterns are checked before anything is fetched or written.
    Ring::load(home)?.add(entry.clone())?;
    // The repository's URL, then the mirrors given, each answer verified as from the URL.
    let failover = crate::read::repo_transport(&entry, transport).map_err(read_to_trust)?;
    let transport: Arc<dyn Transport> = failover.clone();
    let first_url = format!("{}1.root.json", entry.metadata_url());
    let name = entry.name.clone();
    let mut added = add_with(home, entry, source, root_from, &*transport, &first_url, &config, now, |staged, dir| {
        let update = |source| TrustError::Update { name: name.clone(), source };
        let mut up = staged.open_with(config.clone(), transport.clone()).map_err(update)?;
        up.refresh().map_err(update)?;
        save_signed_mirrors(&mut up, dir);
        write_state(dir, &state_of(up.trusted(), now))
    })?;
    added.mirror_failures = failover.failures().iter().map(ToString::to_string).collect();
    Ok(added)
}

/// As [`add_repo`], with the first update from a bundle instead of the network (see
/// [`crate::bundle`]): a `--root-sha256` or `--tofu` root is the bundle's
/// `metadata/1.root.json`, and the targets the bundle carries go into the cache, verified.
/// All or nothing, as an add is.
pub fn add_repo_from_bundle(
    home: &Home,
    entry: RepoEntry,
    source: &RootSource,
    bundle: &crate::BundleInput,
    config: Config,
    now: OffsetDateTime,
) -> Result<(Added, crate::Imported), TrustError> {
    Ring::load(home)?.add(entry.clone())?;
    let first_url = format!("{}1.root.json", bundle.metadata_url);
    let mut imported = None;
    let added =
        add_with(home, entry.clone(), source, &[], &*bundle.transport, &first_url, &config, now, |staged, dir| {
            imported = Some(crate::bundle::import_into(home, &entry, &staged.metadata_dir, dir, bundle, &config, now)?);
            Ok(())
        })?;
    Ok((added, imported.expect("set by a successful first update")))
}

/// The steps of an add: the root from `source` (fetched through `transport` at `first_url`
/// when it is not a file), pinned in a staging directory, `first_update` run on it, then
/// the staging directory renamed into the ring and the ring saved.
#[allow(clippy::too_many_arguments)]
fn add_with(
    home: &Home,
    mut entry: RepoEntry,
    source: &RootSource,
    root_from: &[String],
    transport: &dyn Transport,
    first_url: &str,
    config: &Config,
    now: OffsetDateTime,
    first_update: impl FnOnce(&crate::TrustedRepo, &Path) -> Result<(), TrustError>,
) -> Result<Added, TrustError> {
    let mut ring = Ring::load(home)?;
    entry.added = Some(now_text(now));
    let (root, label) = match source {
        RootSource::File(path) => {
            (std::fs::read(path).map_err(|e| TrustError::io(path, e))?, path.display().to_string())
        }
        RootSource::Sha256(want) => {
            let want = want.to_ascii_lowercase();
            if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TrustError::BadFingerprint { given: want });
            }
            let bytes = fetch_root(transport, first_url, config)?;
            let got = fingerprint(&bytes);
            if got != want {
                return Err(TrustError::FingerprintMismatch { url: first_url.into(), expected: want, got });
            }
            (bytes, first_url.to_string())
        }
        RootSource::Tofu => (fetch_root(transport, first_url, config)?, first_url.to_string()),
    };
    let mut sources = vec![label.clone()];
    for url in root_from {
        let other = fetch_root(transport, url, config)?;
        if other != root {
            return Err(TrustError::RootSourcesDisagree {
                first: label,
                first_fingerprint: fingerprint(&root),
                other: url.clone(),
                other_fingerprint: fingerprint(&other),
            });
        }
        sources.push(url.clone());
    }

    let ring_root = home.data_dir().join("ring");
    let (data_existed, ring_root_existed) = (home.data_dir().exists(), ring_root.exists());
    let staging = ring_root.join(format!(".adding-{}", entry.name));
    let undo = |e: TrustError| {
        let _ = std::fs::remove_dir_all(&staging);
        // Directories this add created go too (remove_dir removes only empty ones).
        if !ring_root_existed {
            let _ = std::fs::remove_dir(&ring_root);
        }
        if !data_existed {
            let _ = std::fs::remove_dir(home.data_dir());
        }
        e
    };
    // A staging directory left by a crashed add is ours to replace.
    match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(TrustError::io(&staging, e)),
        _ => {}
    }
    let mut staged = entry.trusted(home);
    staged.metadata_dir = staging.join("metadata");
    ensure_trust_bytes(&staged.metadata_dir, Some(&root), now).map_err(|e| match e {
        TrustError::InvalidRoot { source, .. } => undo(TrustError::InvalidRoot { given: label.clone(), source }),
        e => undo(e),
    })?;
    first_update(&staged, &staging).map_err(undo)?;

    let dest = ring_dir(home, &entry.name);
    // A directory no ring entry names is left from a remove or add that did not finish.
    match std::fs::remove_dir_all(&dest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(undo(TrustError::io(&dest, e))),
        _ => {}
    }
    std::fs::rename(&staging, &dest).map_err(|e| undo(TrustError::io(&dest, e)))?;
    ring.add(entry.clone())?;
    if let Err(e) = ring.save() {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e);
    }
    let status = repo_status(home, &entry)?;
    Ok(Added { status, tofu: *source == RootSource::Tofu, sources, mirror_failures: Vec::new() })
}

/// Removes `name` from the ring (saved first) and then deletes its directory.
pub fn remove_repo(home: &Home, name: &str) -> Result<RepoEntry, TrustError> {
    let mut ring = Ring::load(home)?;
    let entry = ring.remove(name).ok_or_else(|| TrustError::NotTrusted { name: name.into() })?;
    ring.save()?;
    let dir = ring_dir(home, name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TrustError::io(&dir, e)),
        _ => Ok(entry),
    }
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, TrustError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrustError::io(path, e)),
    }
}

fn parse_root(bytes: &[u8]) -> Option<Root> {
    serde_json::from_slice::<Envelope<Root>>(bytes).ok().map(|e| e.signed)
}

/// Version and expiry of a stored (already verified) role file.
fn version_expires(path: &Path) -> Result<(Option<u64>, Option<String>), TrustError> {
    #[derive(Deserialize)]
    struct Common {
        version: u64,
        expires: String,
    }
    #[derive(Deserialize)]
    struct Env {
        signed: Common,
    }
    Ok(match read_opt(path)? {
        Some(b) => match serde_json::from_slice::<Env>(&b) {
            Ok(e) => (Some(e.signed.version), Some(e.signed.expires)),
            Err(_) => (None, None),
        },
        None => (None, None),
    })
}

/// The repository `entry` as its local trusted state describes it (no network).
pub fn repo_status(home: &Home, entry: &RepoEntry) -> Result<RepoStatus, TrustError> {
    let dir = entry.trusted(home).metadata_dir;
    let root_path = dir.join("root.json");
    let bytes = read_opt(&root_path)?.ok_or_else(|| TrustError::NoRoot { dir: dir.clone() })?;
    let root = parse_root(&bytes).ok_or_else(|| TrustError::TrustedRootUnusable {
        path: root_path.clone(),
        source: packman_tuf::Error::Malformed { role: "root".into(), reason: "not a root".into() },
    })?;
    let mut roles = Vec::new();
    for role in packman_tuf::metadata::TOP_LEVEL_ROLES {
        let (keyids, threshold) = root.roles.get(role).map(|r| (r.keyids.clone(), r.threshold)).unwrap_or_default();
        let (version, expires) = if role == "root" {
            (Some(root.version), Some(root.expires.to_string()))
        } else {
            version_expires(&dir.join(format!("{role}.json")))?
        };
        roles.push(RoleStatus { role: role.into(), keyids, threshold, version, expires });
    }
    let state = read_state(&ring_dir(home, &entry.name));
    let mut mirrors: Vec<MirrorStatus> = entry
        .mirrors
        .iter()
        .map(|m| MirrorStatus {
            name: m.metadata_url.clone(),
            metadata_url: m.metadata_url.clone(),
            targets_url: m.targets_url.clone(),
            source: "configured".into(),
        })
        .collect();
    if let Some(list) = saved_signed_mirrors(&ring_dir(home, &entry.name)) {
        mirrors.extend(list.mirrors.into_iter().map(|m| MirrorStatus {
            name: m.name,
            metadata_url: m.metadata_url,
            targets_url: m.targets_url,
            source: "signed".into(),
        }));
    }
    Ok(RepoStatus {
        name: entry.name.clone(),
        url: entry.url.clone(),
        metadata_url: entry.metadata_url(),
        targets_url: entry.targets_url(),
        projects: entry.projects.clone(),
        added: entry.added.clone(),
        root_fingerprint: fingerprint(&bytes),
        root_version: root.version,
        root_expires: root.expires.to_string(),
        roles,
        last_update: state.map(|s| s.last_update),
        mirrors,
    })
}

/// The state file of a ring directory, if there is a readable one.
pub fn read_state(ring_dir: &Path) -> Option<RepoState> {
    let b = std::fs::read(ring_dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

pub(crate) fn write_state(ring_dir: &Path, state: &RepoState) -> Result<(), TrustError> {
    let text = serde_json::to_vec_pretty(state).expect("a state serialises");
    packman_fs::write_atomic(&ring_dir.join(STATE_FILE), &text)
        .map_err(|e| TrustError::Io { path: e.path, source: e.source })
}

/// Records a successful refresh of a ring repository (its state file), so an offline run
/// later can say how old its data is.
pub(crate) fn record_refresh(
    ring_dir: &Path,
    set: &packman_tuf::TrustedSet,
    now: OffsetDateTime,
) -> Result<(), TrustError> {
    write_state(ring_dir, &state_of(set, now))
}

/// When the metadata in `metadata_dir` was last verified online: the state file's time,
/// else when its timestamp file was written.
pub(crate) fn verified_at(ring_dir: &Path, metadata_dir: &Path) -> Option<OffsetDateTime> {
    if let Some(t) = read_state(ring_dir).and_then(|s| packman_tuf::Expires::parse(&s.last_update).ok()) {
        return Some(t.0);
    }
    let modified = std::fs::metadata(metadata_dir.join("timestamp.json")).and_then(|m| m.modified()).ok()?;
    Some(OffsetDateTime::from(modified))
}

pub(crate) fn state_of(set: &packman_tuf::TrustedSet, now: OffsetDateTime) -> RepoState {
    RepoState {
        last_update: now_text(now),
        root_version: set.root().signed.version,
        timestamp_version: set.timestamp().map(|t| t.signed.version),
        snapshot_version: set.snapshot().map(|s| s.signed.version),
        targets_version: set.targets("targets").map(|t| t.signed.version),
        bundle: None,
    }
}

fn role_keys(root: &Root) -> BTreeSet<String> {
    root.roles.iter().flat_map(|(role, r)| r.keyids.iter().map(move |k| format!("{role}:{k}"))).collect()
}

/// Refreshes the top-level metadata of `entry` (root rotations, timestamp, snapshot,
/// targets) and records it in the state file. A root that does not follow from the trusted
/// one is reported as [`TrustError::RootChanged`]; then nothing under the home changed.
pub fn update_repo(
    home: &Home,
    entry: &RepoEntry,
    transport: Arc<dyn Transport>,
    config: Config,
    now: OffsetDateTime,
) -> Result<Updated, TrustError> {
    let repo = entry.trusted(home);
    let root_path = repo.metadata_dir.join("root.json");
    let before_bytes = read_opt(&root_path)?.ok_or_else(|| TrustError::NoRoot { dir: repo.metadata_dir.clone() })?;
    let name = entry.name.clone();
    let failover = crate::read::ring_transport(home, entry, transport).map_err(read_to_trust)?;
    let transport: Arc<dyn Transport> = failover.clone();
    let mut up = open_waiting(&repo, &config, &transport, OffsetDateTime::now_utc())
        .map_err(|source| TrustError::Update { name: name.clone(), source })?
        .ok_or_else(|| TrustError::Busy { name: name.clone(), dir: repo.metadata_dir.clone() })?;
    let before = up.trusted().root().signed.clone();
    if let Err(source) = up.refresh() {
        drop(up);
        if let Some(change) = root_change(entry, &*transport, &config, &before_bytes, &before, &source) {
            return Err(TrustError::RootChanged(Box::new(change)));
        }
        return Err(TrustError::Update { name, source });
    }
    let rotation = rotation(&before, &up.trusted().root().signed);
    let dir = ring_dir(home, &entry.name);
    save_signed_mirrors(&mut up, &dir);
    let state = state_of(up.trusted(), now);
    write_state(&dir, &state)?;
    let mirror_failures = failover.failures().iter().map(ToString::to_string).collect();
    let expired =
        up.trusted().expired().iter().map(|e| format!("{} v{} expired {}", e.role, e.version, e.expires)).collect();
    Ok(Updated { name, state, rotation, mirror_failures, expired })
}

/// The rotation from root `before` to `after`, if the version moved.
pub(crate) fn rotation(before: &Root, after: &Root) -> Option<Rotation> {
    (after.version != before.version).then(|| {
        let (old, new) = (role_keys(before), role_keys(after));
        Rotation {
            from: before.version,
            to: after.version,
            keys_added: new.difference(&old).cloned().collect(),
            keys_removed: old.difference(&new).cloned().collect(),
        }
    })
}

/// How long an update waits for another process to release a metadata directory: a
/// moment's overlap with another command, not a proxy that holds it for hours.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The repository's updater, holding its metadata directory: waits at most [`LOCK_WAIT`]
/// for another process to let go of it (`None` if it does not). Taking the lock is the
/// same step as finding it free, so no process can slip in between.
pub(crate) fn open_waiting(
    repo: &crate::TrustedRepo,
    config: &Config,
    transport: &Arc<dyn Transport>,
    now: OffsetDateTime,
) -> Result<Option<packman_client::Updater>, packman_client::Error> {
    let start = std::time::Instant::now();
    loop {
        let up = packman_client::Updater::open_or_read_only(
            &repo.metadata_dir,
            &repo.metadata_url,
            repo.targets_url.as_deref(),
            config.clone(),
            transport.clone(),
            now,
        )?;
        if !up.is_read_only() {
            return Ok(Some(up));
        }
        drop(up);
        if start.elapsed() >= LOCK_WAIT {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// After a failed update: does the repository serve a root that is not the trusted one and
/// does not follow from it? Looks at the root version the updater refused, else the trusted
/// version and `root.json` as the repository serves them now (each fetch bounded).
fn root_change(
    entry: &RepoEntry,
    transport: &dyn Transport,
    config: &Config,
    trusted_bytes: &[u8],
    trusted: &Root,
    err: &packman_client::Error,
) -> Option<RootChange> {
    let packman_client::Error::Metadata { url, source } = err else { return None };
    let base = entry.metadata_url();
    let fetch = |u: &str| transport.fetch(u, config.root_max_length).ok();
    let unsigned = matches!(source, packman_tuf::Error::ThresholdNotMet { .. } | packman_tuf::Error::BadVersion { .. });
    let (offending_url, bytes) = if unsigned && source.role() == "root" && url.ends_with(".root.json") {
        // The next root version does not verify against the trusted root.
        (url.clone(), fetch(url))
    } else {
        let same_version = format!("{base}{}.root.json", trusted.version);
        let current = format!("{base}root.json");
        match fetch(&same_version) {
            Some(b) if b != trusted_bytes => (same_version, Some(b)),
            _ => match fetch(&current) {
                Some(b) if b != trusted_bytes && parse_root(&b).is_some_and(|r| r.version <= trusted.version) => {
                    (current, Some(b))
                }
                _ => return None,
            },
        }
    };
    let offered = bytes.as_deref().and_then(parse_root);
    let first_root_fingerprint = match (&offered, &bytes) {
        (Some(r), Some(b)) if r.version == 1 => Some(fingerprint(b)),
        _ => fetch(&format!("{base}1.root.json")).map(|b| fingerprint(&b)),
    };
    let root_ids = |r: &Root| r.roles.get("root").map(|r| r.keyids.clone()).unwrap_or_default();
    Some(RootChange {
        name: entry.name.clone(),
        url: entry.url.clone(),
        trusted_version: trusted.version,
        trusted_fingerprint: fingerprint(trusted_bytes),
        trusted_keys: root_ids(trusted),
        offending_url,
        offered_fingerprint: bytes.as_deref().map(fingerprint),
        offered_version: offered.as_ref().map(|r| r.version),
        offered_keys: offered.as_ref().map(root_ids).unwrap_or_default(),
        first_root_fingerprint,
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use packman_client::DefaultTransport;
    use packman_repo::RepoBuilder;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn transport() -> Arc<dyn Transport> {
        Arc::new(DefaultTransport::default())
    }

    /// Every file under `dir` with its bytes (lock files included).
    fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        fn go(p: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            if p.is_dir() {
                out.push((p.into(), b"dir".to_vec()));
                for e in std::fs::read_dir(p).unwrap() {
                    go(&e.unwrap().path(), out);
                }
            } else if p.exists() {
                out.push((p.into(), std::fs::read(p).unwrap()));
            }
        }
        let mut out = Vec::new();
        go(dir, &mut out);
        out.sort();
        out
    }

    struct Fixture {
        _d: tempfile::TempDir,
        home: Home,
        repo: RepoBuilder,
        dir: PathBuf,
        entry: RepoEntry,
    }

    fn fixture() -> Fixture {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("repo");
        let mut repo = RepoBuilder::new(now()).unwrap();
        repo.add_target("a.txt", b"a").unwrap();
        repo.publish(&dir).unwrap();
        let home = Home::at(d.path().join("home"));
        let entry = RepoEntry::new("r", &format!("file://{}", dir.display()));
        Fixture { _d: d, home, repo, dir, entry }
    }

    fn add(f: &Fixture, source: &RootSource) -> Result<Added, TrustError> {
        add_repo(&f.home, f.entry.clone(), source, &[], transport(), Config::default(), now())
    }

    fn update(f: &Fixture) -> Result<Updated, TrustError> {
        update_repo(&f.home, Ring::load(&f.home).unwrap().get("r").unwrap(), transport(), Config::default(), now())
    }

    #[test]
    fn add_pins_updates_and_records_state() {
        let f = fixture();
        let root = f.repo.signed_roots[0].clone();
        let added = add(&f, &RootSource::Sha256(fingerprint(&root))).unwrap();
        assert!(!added.tofu);
        let s = &added.status;
        assert_eq!((s.root_version, s.root_fingerprint.as_str()), (1, fingerprint(&root).as_str()));
        assert_eq!(s.role("timestamp").unwrap().version, Some(1));
        assert!(s.last_update.is_some() && s.added.is_some());
        let state = read_state(&ring_dir(&f.home, "r")).unwrap();
        assert_eq!((state.root_version, state.timestamp_version, state.snapshot_version), (1, Some(1), Some(1)));
        // No staging directory is left behind.
        let names: Vec<_> =
            std::fs::read_dir(f.home.data_dir().join("ring")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["r"]);
    }

    #[test]
    fn refused_adds_write_nothing() {
        let f = fixture();
        let wrong = fingerprint(b"x");
        assert!(matches!(add(&f, &RootSource::Sha256(wrong)), Err(TrustError::FingerprintMismatch { .. })));
        assert!(!f.home.data_dir().exists());
        // A first update that fails: the staging directory and the dirs it made are gone.
        std::fs::remove_file(f.dir.join("metadata/timestamp.json")).unwrap();
        match add(&f, &RootSource::Tofu) {
            Err(TrustError::Update { name, source: packman_client::Error::Fetch(e) }) => {
                assert_eq!(name, "r");
                assert!(e.is_not_found(), "{e}");
            }
            other => panic!("expected a failed update, got {other:?}"),
        }
        assert!(!f.home.data_dir().exists());
        assert!(Ring::load(&f.home).unwrap().repos.is_empty());
    }

    #[test]
    fn rotations_are_reported_with_the_keys_that_changed() {
        let mut f = fixture();
        add(&f, &RootSource::Tofu).unwrap();
        assert_eq!(update(&f).unwrap().rotation, None);
        let old = f.repo.root.roles["timestamp"].keyids[0].clone();
        let new = f.repo.rotate_key("timestamp").unwrap();
        f.repo.publish(&f.dir).unwrap();
        let u = update(&f).unwrap();
        let rot = u.rotation.unwrap();
        assert_eq!((rot.from, rot.to), (1, 2));
        assert_eq!(rot.keys_added, [format!("timestamp:{new}")]);
        assert_eq!(rot.keys_removed, [format!("timestamp:{old}")]);
        assert_eq!(u.state.root_version, 2);
        assert_eq!(read_state(&ring_dir(&f.home, "r")).unwrap(), u.state);
    }

    #[test]
    fn a_root_not_following_from_the_trusted_one_is_root_changed_and_nothing_changes() {
        let f = fixture();
        let trusted = f.repo.signed_roots[0].clone();
        add(&f, &RootSource::Tofu).unwrap();
        // An unrelated repository published over this one.
        let mut other = RepoBuilder::new(now()).unwrap();
        std::fs::remove_dir_all(&f.dir).unwrap();
        other.publish(&f.dir).unwrap();
        let before = tree(f.home.data_dir());
        match update(&f) {
            Err(TrustError::RootChanged(c)) => {
                assert_eq!(c.trusted_fingerprint, fingerprint(&trusted));
                assert_eq!(c.offered_fingerprint, Some(fingerprint(&other.signed_roots[0])));
                assert_eq!(c.first_root_fingerprint, c.offered_fingerprint);
                assert_eq!(c.offered_version, Some(1));
                assert_ne!(c.offered_keys, c.trusted_keys);
            }
            other => panic!("expected RootChanged, got {other:?}"),
        }
        assert_eq!(tree(f.home.data_dir()), before);
    }

    #[test]
    fn other_refusals_are_plain_update_errors() {
        let f = fixture();
        add(&f, &RootSource::Tofu).unwrap();
        // A timestamp that does not verify while the root is the trusted one.
        let ts = f.dir.join("metadata/timestamp.json");
        let mut bytes = std::fs::read(&ts).unwrap();
        let at = bytes.windows(9).position(|w| w == b"\"version\"").unwrap();
        bytes.insert(at + 10, b'1');
        std::fs::write(&ts, bytes).unwrap();
        let before = tree(f.home.data_dir());
        assert!(matches!(update(&f), Err(TrustError::Update { .. })));
        assert_eq!(tree(f.home.data_dir()), before);
    }
}
