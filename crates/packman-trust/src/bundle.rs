//! A ring repository refreshed from an air-gapped bundle instead of the network:
//! [`import_bundle`] (`packman update --bundle FILE NAME`), and the first update of
//! [`add_repo_from_bundle`] (`packman trust add … --bundle FILE`).
//!
//! The bundle is only a [`Transport`] (packman-mirror's `BundleSource` opens one): the
//! repository's own [`Updater`] reads it as it reads a server, so every rule is the usual
//! one (root rotations, rollback, expiry, thresholds, consistency), enforced by the trust
//! core. No rule is restated here.
//!
//! All or nothing:
//! 1. **Verify, changing nothing.** The trusted metadata directory is locked (held to the
//!    end) and copied to `<data>/ring/.importing-NAME/metadata`; an updater refreshes that
//!    copy from the bundle and loads every targets role. Each target the bundle carries is
//!    downloaded through that updater's fetcher (streamed, checked against the signed length
//!    and hashes) into `<cache>/files/.importing-NAME/`. Any refusal stops here: both staging
//!    directories (and cache directories this run created) are removed, and everything under
//!    the home is as it was.
//! 2. **Commit.** The verified targets are renamed to their cache names
//!    (`<cache>/files/<sha256>`, as [`crate::VerifiedCache`] names them); then the locked
//!    trusted directory is refreshed from the bundle by its own updater — the same bytes
//!    from the same trusted start at the same time, so the same outcome — which replaces
//!    each file atomically, as any update does; then `state.json` records the refresh.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use packman_client::{Config, Transport, Updater};
use packman_tuf::{OffsetDateTime, TargetFile};
use serde::Serialize;

use crate::manage::{open_waiting, rotation, save_signed_mirrors, state_of, write_state};
use crate::{ring_dir, Home, RepoEntry, RepoState, Rotation, TrustError, TrustedRepo};

/// A bundle as an upstream: where its metadata and targets are for `transport`, and which
/// targets it holds.
pub struct BundleInput<'a> {
    /// The bundle's file, for messages.
    pub path: &'a Path,
    pub metadata_url: String,
    pub targets_url: String,
    pub transport: Arc<dyn Transport>,
    /// Whether the bundle holds the file of a target as signed (only those are read).
    pub carries: &'a dyn Fn(&str, &TargetFile) -> bool,
}

/// What [`import_bundle`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub name: String,
    pub bundle: PathBuf,
    pub state: RepoState,
    /// Set when the trusted root moved (signed rotations in the bundle followed).
    pub rotation: Option<Rotation>,
    /// Roles accepted although expired (only under `--allow-expired`).
    pub expired: Vec<String>,
    /// Targets the metadata signs.
    pub targets_signed: usize,
    /// Targets of the bundle verified and added to the cache, and their bytes.
    pub targets_cached: usize,
    pub bytes: u64,
    /// Targets of the bundle the cache already held with the signed bytes.
    pub targets_present: usize,
}

/// Refreshes the trusted metadata of `entry` from a bundle and puts the targets it carries,
/// verified, into the user's cache; all or nothing (see the module docs). A refusal is
/// [`TrustError::BundleRefused`], naming the bundle and the rule (from the trust core).
pub fn import_bundle(
    home: &Home,
    entry: &RepoEntry,
    bundle: &BundleInput,
    config: Config,
    now: OffsetDateTime,
) -> Result<Imported, TrustError> {
    let metadata_dir = entry.trusted(home).metadata_dir;
    if !metadata_dir.join("root.json").is_file() {
        return Err(TrustError::NoRoot { dir: metadata_dir });
    }
    import_into(home, entry, &metadata_dir, &ring_dir(home, &entry.name), bundle, &config, now)
}

/// [`import_bundle`] into `metadata_dir` (holding a trusted root), its `state.json` and signed
/// mirror list written in `state_dir`: the ring's directory, or an add's staging one.
pub(crate) fn import_into(
    home: &Home,
    entry: &RepoEntry,
    metadata_dir: &Path,
    state_dir: &Path,
    b: &BundleInput,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Imported, TrustError> {
    let name = entry.name.clone();
    let refused = |source: packman_client::Error| TrustError::BundleRefused {
        name: name.clone(),
        bundle: b.path.into(),
        source: Box::new(source),
    };
    let update = |source: packman_client::Error| TrustError::Update { name: name.clone(), source };
    // Held until the commit ends: what phase 1 verified is what phase 2 starts from.
    let repo = TrustedRepo::new(&b.metadata_url, Some(&b.targets_url), metadata_dir);
    let mut real = open_waiting(&repo, config, &b.transport, now)
        .map_err(update)?
        .ok_or_else(|| TrustError::Busy { name: name.clone(), dir: metadata_dir.into() })?;
    let before = real.trusted().root().signed.clone();

    let staging = home.data_dir().join("ring").join(format!(".importing-{name}"));
    let files = home.cache_dir().join("files");
    let target_staging = files.join(format!(".importing-{name}"));
    let created: Vec<PathBuf> =
        [home.cache_dir().to_path_buf(), files.clone()].into_iter().filter(|d| !d.exists()).collect();
    let undo = |e: TrustError| {
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_dir_all(&target_staging);
        // Only directories this run made, and only if empty.
        for d in created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        e
    };
    // Staging left by a crashed import is ours to replace.
    for d in [&staging, &target_staging] {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(TrustError::io(d, e)),
            _ => {}
        }
    }

    // 1. Verify on a copy; the home stays as it was on any refusal.
    let verified = (|| {
        let staged_md = staging.join("metadata");
        copy_trusted(metadata_dir, &staged_md)?;
        std::fs::create_dir_all(&target_staging).map_err(|e| TrustError::io(&target_staging, e))?;
        let mut up =
            Updater::open(&staged_md, &b.metadata_url, Some(&b.targets_url), config.clone(), b.transport.clone(), now)
                .map_err(update)?;
        up.refresh().map_err(refused)?;
        let targets = up.all_targets().map_err(refused)?;
        let fetcher = up.target_fetcher();
        let (mut staged, mut present, mut bytes, mut seen) = (Vec::new(), 0, 0, HashSet::new());
        for (path, info) in &targets {
            // The cache names files by sha256: a target signed without one cannot be kept.
            let Ok(sha) = crate::read::signed_sha256(entry, path, info) else { continue };
            if !(b.carries)(path, info) || !seen.insert(sha.clone()) {
                continue;
            }
            let dest = files.join(&sha);
            if packman_client::is_cached(&dest, info) {
                present += 1;
                continue;
            }
            let tmp = target_staging.join(&sha);
            fetcher.download_target_temp(&target_staging, path, info).and_then(|v| v.persist(&tmp)).map_err(refused)?;
            bytes += info.length;
            staged.push((tmp, dest));
        }
        Ok::<_, TrustError>((targets.len(), staged, present, bytes))
    })();
    let (targets_signed, staged, targets_present, bytes) = verified.map_err(undo)?;

    // 2. Commit: verified targets first, so the metadata that signs them never lacks them.
    let targets_cached = staged.len();
    for (tmp, dest) in &staged {
        std::fs::rename(tmp, dest).map_err(|e| TrustError::io(dest, e))?;
    }
    if targets_cached > 0 {
        packman_fs::sync_dir(&files).map_err(|e| TrustError::Io { path: e.path, source: e.source })?;
    }
    let _ = std::fs::remove_dir_all(&target_staging);
    let _ = std::fs::remove_dir_all(&staging);
    // Verified above from this very state: an error here is I/O, not a refusal.
    real.refresh().map_err(update)?;
    real.load_all_targets().map_err(update)?;
    save_signed_mirrors(&mut real, state_dir);
    let state = RepoState { bundle: Some(b.path.display().to_string()), ..state_of(real.trusted(), now) };
    write_state(state_dir, &state)?;
    let expired =
        real.trusted().expired().iter().map(|e| format!("{} v{} expired {}", e.role, e.version, e.expires)).collect();
    Ok(Imported {
        rotation: rotation(&before, &real.trusted().root().signed),
        name,
        bundle: b.path.into(),
        state,
        expired,
        targets_signed,
        targets_cached,
        bytes,
        targets_present,
    })
}

/// Every file of a trusted metadata directory but its lock, copied to `to` (new).
fn copy_trusted(from: &Path, to: &Path) -> Result<(), TrustError> {
    std::fs::create_dir_all(to).map_err(|e| TrustError::io(to, e))?;
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(from).map_err(|e| TrustError::io(from, e))? {
        let e = e.map_err(|e| TrustError::io(from, e))?;
        let n = e.file_name();
        if n != ".lock" && e.file_type().map_err(|err| TrustError::io(e.path(), err))?.is_file() {
            names.insert(n);
        }
    }
    for n in names {
        let (src, dst) = (from.join(&n), to.join(&n));
        std::fs::copy(&src, &dst).map_err(|e| TrustError::io(&src, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{add_repo_from_bundle, fingerprint, read_state, Ring, RootSource};
    use packman_client::{file_url, FileTransport};
    use packman_repo::RepoBuilder;

    /// A published repository directory read as a bundle: the import's rules do not depend
    /// on the bundle's format (packman-mirror's tests cover that), only on the transport.
    fn input<'a>(dir: &'a Path, carries: &'a dyn Fn(&str, &TargetFile) -> bool) -> BundleInput<'a> {
        BundleInput {
            path: dir,
            metadata_url: file_url(&dir.join("metadata"), true),
            targets_url: file_url(&dir.join("targets"), true),
            transport: Arc::new(FileTransport::default()),
            carries,
        }
    }

    /// Every file under `dir` with its bytes, lock files included.
    fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn all(_: &str, _: &TargetFile) -> bool {
        true
    }

    fn refused_by(r: Result<Imported, TrustError>) -> packman_client::Error {
        match r {
            Err(TrustError::BundleRefused { name, source, .. }) => {
                assert_eq!(name, "r");
                *source
            }
            other => panic!("expected a refused bundle, got {other:?}"),
        }
    }

    #[test]
    fn imports_follow_the_updaters_rules_and_a_refusal_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut repo = RepoBuilder::new(now).unwrap();
        repo.add_target("packages/a/a-1.0.tar.gz", b"a 1.0").unwrap();
        let (v1, v2, v3) = (d.path().join("v1"), d.path().join("v2"), d.path().join("v3"));
        repo.publish(&v1).unwrap();
        repo.add_target("packages/b/b-2.0.tar.gz", b"b 2.0").unwrap();
        repo.publish(&v2).unwrap();
        let old_key = repo.root.roles["timestamp"].keyids[0].clone();
        repo.rotate_key("timestamp").unwrap();
        repo.add_target("packages/c/c-3.0.tar.gz", b"c 3.0").unwrap();
        repo.publish(&v3).unwrap();

        let home = Home::at(d.path().join("home"));
        let entry = RepoEntry::new("r", "http://127.0.0.1:9/");
        let only_a = |t: &str, _: &TargetFile| t.starts_with("packages/a/");
        let source = RootSource::Sha256(fingerprint(&repo.signed_roots[0]));
        let (added, got) =
            add_repo_from_bundle(&home, entry, &source, &input(&v1, &only_a), Config::default(), now).unwrap();
        assert_eq!(added.status.root_version, 1);
        assert_eq!((got.targets_cached, got.targets_present, got.targets_signed), (1, 0, 1));
        let sha = |data: &[u8]| packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
        let files = home.cache_dir().join("files");
        assert_eq!(std::fs::read(files.join(sha(b"a 1.0"))).unwrap(), b"a 1.0");
        let entry = Ring::load(&home).unwrap().get("r").unwrap().clone();
        let import =
            |dir: &Path, at: OffsetDateTime| import_bundle(&home, &entry, &input(dir, &all), Config::default(), at);

        let got = import(&v2, now).unwrap();
        assert_eq!((got.targets_cached, got.targets_present, got.targets_signed), (1, 1, 2));
        assert_eq!(got.rotation, None);
        assert_eq!(read_state(&ring_dir(&home, "r")).unwrap(), got.state);
        assert_eq!(got.state.timestamp_version, Some(2));

        // Older than the trusted state: the trust core's rollback rule.
        let before = tree(home.data_dir());
        let e = refused_by(import(&v1, now));
        assert!(matches!(e.tuf(), Some(packman_tuf::Error::Rollback { .. })), "{e}");
        assert_eq!(tree(home.data_dir()), before);

        // One byte of a new target changed: its metadata verifies, the file does not.
        let bad = d.path().join("bad");
        copy_dir(&v3, &bad);
        let c = bad.join(format!("targets/packages/c/{}.c-3.0.tar.gz", sha(b"c 3.0")));
        std::fs::write(&c, b"c 3.1").unwrap();
        let e = refused_by(import(&bad, now));
        assert!(matches!(e, packman_client::Error::TargetMismatch { .. }), "{e}");
        assert_eq!(tree(home.data_dir()), before, "a refused bundle changed the home");

        // Expired (the same bundle, read two days later): refused, unless allowed.
        let later = now + std::time::Duration::from_secs(2 * 86_400);
        let e = refused_by(import(&v3, later));
        assert!(matches!(e.tuf(), Some(packman_tuf::Error::Expired { .. })), "{e}");
        assert_eq!(tree(home.data_dir()), before);

        // The rotation of the timestamp key, signed by the root: followed and reported.
        let got = import(&v3, now).unwrap();
        let rot = got.rotation.unwrap();
        assert_eq!((rot.from, rot.to), (1, 2));
        assert_eq!(rot.keys_removed, [format!("timestamp:{old_key}")]);
        assert_eq!(std::fs::read(files.join(sha(b"c 3.0"))).unwrap(), b"c 3.0");
        assert_eq!(std::fs::read(entry.trusted(&home).metadata_dir.join("root.json")).unwrap(), repo.signed_roots[1]);
        // No staging left anywhere.
        assert!(!tree(home.data_dir()).iter().any(|(p, _)| p.to_string_lossy().contains(".importing-")));
        // And the same bundle again: nothing new, nothing refused.
        let again = import(&v3, now).unwrap();
        assert_eq!((again.targets_cached, again.targets_present), (0, 3));
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
}
