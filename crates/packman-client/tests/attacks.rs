//! The attacks the TUF specification names (section 1.5.2), each performed by a malicious
//! server on 127.0.0.1 (a [`TestServer`] serving a repository built with [`RepoBuilder`],
//! with some responses replaced). For each, the client must refuse with the specific error
//! and leave its trusted metadata directory byte-for-byte as it was.
//!
//! Some attacks can only reach the check they target through a newer, validly signed
//! timestamp (and snapshot): the attacker holds those keys, or replays a repository's genuine
//! newer files next to forged ones. The client rightly persists such a timestamp/snapshot as
//! soon as it verifies (spec 5.4.5, 5.5.7); those tests assert that exactly those files, and
//! nothing else, changed, and that they hold exactly the bytes served.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use packman_client::{Config, Error, FetchError, Updater};
use packman_repo::{sign_metadata, RepoBuilder};
use packman_testkit::{Behavior, TestServer};
use packman_tuf::crypto::Signer;
use packman_tuf::{Error as TufError, Expires, MetaFile, OffsetDateTime, Signature};
use tempfile::TempDir;

mod common;
use common::{assert_changed_only as changed_only, assert_unchanged, dir_state, meta_file, DirState};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const TARGET: &str = "pkg/hello.txt";
const CONTENT: &[u8] = b"hello from the packman repository\n";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The directory equals `before` except for `changes`, which hold exactly the given bytes.
#[track_caller]
fn assert_changed_only(before: &DirState, dir: &Path, changes: &[(&str, &[u8])]) {
    changed_only(before, dir, changes, "after the refusal");
}

/// Files (recursively) under `dir`; used to prove no target or temp file was left.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The trust-core refusal behind a failed refresh.
#[track_caller]
fn refused(r: Result<(), Error>) -> (String, TufError) {
    match r {
        Err(Error::Metadata { url, source }) => (url, source),
        other => panic!("expected the repository's metadata to be refused, got {other:?}"),
    }
}

fn expires(t: OffsetDateTime) -> Expires {
    Expires(t.replace_nanosecond(0).unwrap())
}

/// A test config: default limits, with waits bounded well under the test's patience.
fn config() -> Config {
    let mut c = Config::default();
    c.fetcher.read_timeout = Duration::from_secs(5);
    c.fetcher.connect_timeout = Duration::from_secs(5);
    c
}

/// A published repository served on loopback, and a client metadata directory bootstrapped
/// with its first root.
struct Env {
    now: OffsetDateTime,
    repo: RepoBuilder,
    server: TestServer,
    repo_dir: TempDir,
    client_dir: TempDir,
}

impl Env {
    fn new() -> Env {
        Self::build(None)
    }

    fn with_bins(bits: u32) -> Env {
        Self::build(Some(bits))
    }

    fn build(bins: Option<u32>) -> Env {
        let now = OffsetDateTime::now_utc();
        let mut repo = RepoBuilder::new(now).unwrap();
        if let Some(bits) = bins {
            repo = repo.with_succinct_bins(bits).unwrap();
        }
        repo.add_target(TARGET, CONTENT).unwrap();
        let repo_dir = tempfile::tempdir().unwrap();
        repo.publish(repo_dir.path()).unwrap();
        let server = TestServer::serve_dir(repo_dir.path()).unwrap();
        let client_dir = tempfile::tempdir().unwrap();
        let env = Env { now, repo, server, repo_dir, client_dir };
        Updater::bootstrap(&env.meta_dir(), &env.repo.signed_roots[0]).unwrap();
        env
    }

    fn meta_dir(&self) -> PathBuf {
        self.client_dir.path().join("metadata")
    }

    fn targets_dir(&self) -> PathBuf {
        self.client_dir.path().join("targets")
    }

    fn updater_with(&self, config: Config, now: OffsetDateTime) -> Updater {
        let base = self.server.url();
        Updater::with_time(&self.meta_dir(), &format!("{base}/metadata"), Some(&format!("{base}/targets")), config, now)
            .unwrap_or_else(|e| panic!("opening the metadata directory: {e}"))
    }

    fn updater(&self) -> Updater {
        self.updater_with(config(), self.now)
    }

    fn refresh_at(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.updater_with(config(), now).refresh()
    }

    fn refresh(&self) -> Result<(), Error> {
        self.refresh_at(self.now)
    }

    fn publish(&mut self) {
        self.repo.publish(self.repo_dir.path()).unwrap();
    }

    /// A metadata file as the honest repository published it.
    fn published(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.repo_dir.path().join("metadata").join(name)).unwrap()
    }

    /// The malicious server answers `/metadata/{name}` with `bytes`.
    fn serve(&self, name: &str, bytes: &[u8]) {
        self.server.set(&format!("/metadata/{name}"), Behavior::Body(bytes.to_vec()));
    }

    fn url(&self, name: &str) -> String {
        format!("{}/metadata/{name}", self.server.url())
    }

    fn target_url_path(&self) -> String {
        let sha = packman_tuf::target::describe(CONTENT).hashes.get("sha256").unwrap().to_string();
        let (dir, file) = TARGET.rsplit_once('/').unwrap();
        format!("/targets/{dir}/{sha}.{file}")
    }

    /// Signs `repo.snapshot` as it stands (version bumped by the caller) and serves it.
    fn serve_snapshot(&self) -> Vec<u8> {
        let bytes = self.repo.signed_snapshot().unwrap();
        self.serve(&format!("{}.snapshot.json", self.repo.snapshot.version), &bytes);
        bytes
    }

    /// Signs and serves a timestamp one version up that names `snapshot` by length and hash.
    fn serve_timestamp_for(&mut self, snapshot: &[u8], expires_at: Option<OffsetDateTime>) -> Vec<u8> {
        let meta = meta_file(self.repo.snapshot.version, snapshot);
        self.repo.timestamp.meta.insert("snapshot.json".into(), meta);
        self.repo.timestamp.version += 1;
        if let Some(t) = expires_at {
            self.repo.timestamp.expires = expires(t);
        }
        let bytes = self.repo.signed_timestamp().unwrap();
        self.serve("timestamp.json", &bytes);
        bytes
    }
}

// ---------------------------------------------------------------------------------------
// Arbitrary software installation
// ---------------------------------------------------------------------------------------

#[test]
fn arbitrary_target_is_refused_and_nothing_is_left_behind() {
    let env = Env::new();
    let mut up = env.updater();
    up.refresh().unwrap();
    let info = up.get_target_info(TARGET).unwrap().expect("target is signed");
    let before = dir_state(&env.meta_dir());

    let mut same_length = CONTENT.to_vec();
    same_length[0] ^= 0x20;
    let shorter = CONTENT[..CONTENT.len() - 1].to_vec();
    for (what, body) in [("same length, other bytes", same_length), ("shorter", shorter)] {
        env.server.set(&env.target_url_path(), Behavior::Body(body));
        match up.download_target(&env.targets_dir(), TARGET, &info) {
            Err(Error::TargetMismatch { target, url, .. }) => {
                assert_eq!(target, TARGET, "{what}");
                assert!(url.ends_with(&env.target_url_path()), "{what}: {url}");
            }
            other => panic!("{what}: expected TargetMismatch, got {other:?}"),
        }
        assert!(!Updater::local_path(&env.targets_dir(), TARGET).exists(), "{what}: file left under the final name");
        let left = files_under(&env.targets_dir());
        assert!(left.is_empty(), "{what}: files left behind (temp files?): {left:?}");
    }
    assert_eq!(env.server.requests().iter().filter(|p| **p == env.target_url_path()).count(), 2);
    drop(up);
    assert_unchanged(&before, &env.meta_dir());

    // The honest file still downloads (the refusals were about the bytes, not the setup).
    env.server.reset();
    let up = env.updater();
    let path = up.download_target(&env.targets_dir(), TARGET, &info).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), CONTENT);
}

// ---------------------------------------------------------------------------------------
// Rollback attacks
// ---------------------------------------------------------------------------------------

#[test]
fn timestamp_rollback_is_refused() {
    let mut env = Env::new();
    let old_timestamp = env.published("timestamp.json");
    env.publish();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    env.serve("timestamp.json", &old_timestamp);
    let (url, err) = refused(env.refresh());
    match err {
        TufError::Rollback { role, trusted, offered } => {
            assert_eq!((role.as_str(), trusted, offered), ("timestamp", 2, 1));
        }
        other => panic!("expected Rollback, got {other:?}"),
    }
    assert_eq!(url, env.url("timestamp.json"));
    assert_unchanged(&before, &env.meta_dir());
}

#[test]
fn snapshot_rollback_via_timestamp_naming_older_snapshot_is_refused() {
    let mut env = Env::new();
    let old_snapshot = env.published("1.snapshot.json");
    env.publish();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    // Validly signed, newer timestamp (version 3) naming snapshot version 1.
    env.repo.timestamp.version += 1;
    env.repo.timestamp.meta.insert("snapshot.json".into(), meta_file(1, &old_snapshot));
    let ts = env.repo.signed_timestamp().unwrap();
    env.serve("timestamp.json", &ts);

    let (url, err) = refused(env.refresh());
    match err {
        TufError::Rollback { role, trusted, offered } => {
            assert_eq!((role.as_str(), trusted, offered), ("snapshot", 2, 1));
        }
        other => panic!("expected Rollback of snapshot, got {other:?}"),
    }
    assert_eq!(url, env.url("timestamp.json"));
    assert_unchanged(&before, &env.meta_dir());
}

#[test]
fn targets_rollback_via_snapshot_listing_lower_version_is_refused() {
    let mut env = Env::new();
    env.repo.add_target("pkg/other.txt", b"other").unwrap();
    env.publish(); // targets version 2, snapshot 2, timestamp 2
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    env.repo.snapshot.version += 1;
    env.repo.snapshot.meta.insert("targets.json".into(), MetaFile::new(1));
    let snap = env.serve_snapshot();
    let ts = env.serve_timestamp_for(&snap, None);

    let (url, err) = refused(env.refresh());
    match err {
        TufError::Rollback { role, trusted, offered } => {
            assert_eq!((role.as_str(), trusted, offered), ("targets", 2, 1));
        }
        other => panic!("expected Rollback of targets, got {other:?}"),
    }
    assert_eq!(url, env.url("3.snapshot.json"));
    assert_changed_only(&before, &env.meta_dir(), &[("timestamp.json", &ts)]);
}

#[test]
fn hashed_bin_rollback_via_snapshot_listing_lower_version_is_refused() {
    let mut env = Env::with_bins(3);
    let bin = env.repo.role_for(TARGET);
    env.repo.targets_mut(&bin).unwrap(); // marks the bin changed: version 2 on publish
    env.publish();
    {
        let mut up = env.updater();
        up.refresh().unwrap();
        assert!(up.get_target_info(TARGET).unwrap().is_some());
        assert_eq!(up.trusted().targets(&bin).unwrap().signed.version, 2);
    }
    let before = dir_state(&env.meta_dir());
    assert!(before.contains_key(&format!("{bin}.json")));

    env.repo.snapshot.version += 1;
    env.repo.snapshot.meta.insert(format!("{bin}.json"), MetaFile::new(1));
    let snap = env.serve_snapshot();
    let ts = env.serve_timestamp_for(&snap, None);

    let (_, err) = refused(env.refresh());
    match err {
        TufError::Rollback { role, trusted, offered } => {
            assert_eq!((role.as_str(), trusted, offered), (bin.as_str(), 2, 1));
        }
        other => panic!("expected Rollback of {bin}, got {other:?}"),
    }
    assert_changed_only(&before, &env.meta_dir(), &[("timestamp.json", &ts)]);
}

#[test]
fn root_rollback_offering_older_root_as_next_version_is_refused() {
    let mut env = Env::new();
    env.repo.bump_root().unwrap();
    env.publish();
    env.refresh().unwrap();
    assert_eq!(dir_state(&env.meta_dir())["root.json"], env.repo.signed_roots[1]);
    let before = dir_state(&env.meta_dir());

    // Root version 1 is signed by the same root key, so only the version gives it away.
    env.serve("3.root.json", &env.repo.signed_roots[0].clone());
    let (url, err) = refused(env.refresh());
    match err {
        TufError::BadVersion { role, expected, offered } => {
            assert_eq!((role.as_str(), expected, offered), ("root", 3, 1));
        }
        other => panic!("expected BadVersion of root, got {other:?}"),
    }
    assert_eq!(url, env.url("3.root.json"));
    assert_unchanged(&before, &env.meta_dir());
}

/// Only "not found" ends the walk for newer roots (spec 5.3.3): any other failure to fetch
/// the next root stops the update, so a server cannot hide a rotation by failing the request.
#[test]
fn a_failed_fetch_of_the_next_root_stops_the_update() {
    let env = Env::new();
    let before = dir_state(&env.meta_dir());
    env.server.set("/metadata/2.root.json", Behavior::Status(500));
    match env.refresh() {
        Err(Error::Fetch(FetchError::Status { url, status: 500 })) => assert_eq!(url, env.url("2.root.json")),
        other => panic!("expected the root fetch's status error, got {other:?}"),
    }
    assert_unchanged(&before, &env.meta_dir());
    // A 404 is the end of the walk.
    env.server.set("/metadata/2.root.json", Behavior::Status(404));
    env.refresh().unwrap();
}

// ---------------------------------------------------------------------------------------
// Freeze attacks (expired metadata); the client's clock is moved forward, nothing sleeps
// ---------------------------------------------------------------------------------------

#[test]
fn freeze_with_expired_timestamp_is_refused() {
    let env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    // The server keeps serving what it served yesterday; the timestamp expires after 1 day.
    let later = env.now + 2 * DAY;
    env.server.clear_log();
    let (url, err) = refused(env.refresh_at(later));
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "timestamp"), "{err:?}");
    // Refused at the timestamp: nothing more is asked of the server.
    assert_eq!(url, env.url("timestamp.json"));
    assert_eq!(env.server.requests(), ["/metadata/2.root.json", "/metadata/timestamp.json"]);
    assert_unchanged(&before, &env.meta_dir());

    // A client that never saw that timestamp refuses it too, and does not persist it.
    let fresh = Env::new();
    let before = dir_state(&fresh.meta_dir());
    let (url, err) = refused(fresh.refresh_at(fresh.now + 2 * DAY));
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "timestamp"), "{err:?}");
    assert_eq!(url, fresh.url("timestamp.json"));
    assert_unchanged(&before, &fresh.meta_dir());
}

#[test]
fn freeze_with_expired_snapshot_is_refused() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    // Fresh timestamp, frozen snapshot (snapshot expires after 7 days).
    let later = env.now + 8 * DAY;
    let snap = env.published("1.snapshot.json");
    let ts = env.serve_timestamp_for(&snap, Some(later + DAY));

    let (url, err) = refused(env.refresh_at(later));
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "snapshot"), "{err:?}");
    assert_eq!(url, env.url("1.snapshot.json"));
    assert_changed_only(&before, &env.meta_dir(), &[("timestamp.json", &ts)]);
}

#[test]
fn freeze_with_expired_targets_is_refused() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    // Fresh timestamp and snapshot, frozen targets (targets expire after 90 days).
    let later = env.now + 91 * DAY;
    env.repo.snapshot.version += 1;
    env.repo.snapshot.expires = expires(later + DAY);
    let snap = env.serve_snapshot();
    let ts = env.serve_timestamp_for(&snap, Some(later + DAY));

    let (url, err) = refused(env.refresh_at(later));
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "targets"), "{err:?}");
    assert_eq!(url, env.url("1.targets.json"));
    assert_changed_only(&before, &env.meta_dir(), &[("timestamp.json", &ts), ("snapshot.json", &snap)]);
}

#[test]
fn freeze_with_expired_root_is_refused() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    // No newer root is offered; everything else is freshly signed, yet root expired (1 year).
    let later = env.now + 366 * DAY;
    env.repo.snapshot.version += 1;
    env.repo.snapshot.expires = expires(later + DAY);
    let snap = env.serve_snapshot();
    env.serve_timestamp_for(&snap, Some(later + DAY));

    let (url, err) = refused(env.refresh_at(later));
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "root"), "{err:?}");
    assert_eq!(url, env.url("timestamp.json"));
    assert!(env.server.requests().contains(&"/metadata/2.root.json".to_string()));
    assert_unchanged(&before, &env.meta_dir());
}

// ---------------------------------------------------------------------------------------
// Mix-and-match attacks
// ---------------------------------------------------------------------------------------

#[test]
fn mix_and_match_snapshot_not_matching_timestamp_is_refused() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());
    let old_snapshot = env.published("1.snapshot.json");
    env.publish(); // honest timestamp 2 naming snapshot 2 by length and hash
    let ts = env.published("timestamp.json");

    // (a) another validly signed snapshot (version 1) where version 2 is named;
    // (b) snapshot 2 re-signed with other content of the same length.
    let mut other = env.repo.snapshot.clone();
    other.expires = Expires(other.expires.0 + Duration::from_secs(1));
    let same_length = sign_metadata(&other, &[&env.repo.signers["snapshot"][0]]).unwrap();
    assert_eq!(same_length.len(), env.published("2.snapshot.json").len());

    for (what, bytes, reason) in
        [("older snapshot", old_snapshot, ""), ("same length", same_length, "the signed hash is")]
    {
        env.serve("2.snapshot.json", &bytes);
        let (url, err) = refused(env.refresh());
        match &err {
            TufError::LengthOrHashMismatch { role, reason: r } => {
                assert_eq!(role, "snapshot", "{what}");
                assert!(r.contains(reason), "{what}: {r}");
            }
            other => panic!("{what}: expected LengthOrHashMismatch, got {other:?}"),
        }
        assert_eq!(url, env.url("2.snapshot.json"));
        assert_changed_only(&before, &env.meta_dir(), &[("timestamp.json", &ts)]);
    }
}

#[test]
fn mix_and_match_targets_version_differs_from_snapshot_is_refused() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());
    let old_targets = env.published("1.targets.json");
    env.repo.add_target("pkg/other.txt", b"other").unwrap();
    env.publish(); // snapshot 2 names targets 2

    env.serve("2.targets.json", &old_targets);
    let (url, err) = refused(env.refresh());
    match err {
        TufError::BadVersion { role, expected, offered } => {
            assert_eq!((role.as_str(), expected, offered), ("targets", 2, 1));
        }
        other => panic!("expected BadVersion of targets, got {other:?}"),
    }
    assert_eq!(url, env.url("2.targets.json"));
    let (ts, snap) = (env.published("timestamp.json"), env.published("2.snapshot.json"));
    assert_changed_only(&before, &env.meta_dir(), &[("timestamp.json", &ts), ("snapshot.json", &snap)]);
}

// ---------------------------------------------------------------------------------------
// Endless data and slow retrieval
// ---------------------------------------------------------------------------------------

#[test]
fn endless_timestamp_is_cut_off() {
    let env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    env.server.set("/metadata/timestamp.json", Behavior::Endless);
    let start = Instant::now();
    match env.refresh() {
        Err(Error::Fetch(FetchError::TooLarge { url, limit })) => {
            assert_eq!(url, env.url("timestamp.json"));
            assert_eq!(limit, Config::default().timestamp_max_length);
        }
        other => panic!("expected FetchError::TooLarge, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_unchanged(&before, &env.meta_dir());
}

#[test]
fn target_longer_than_signed_length_is_refused() {
    let env = Env::new();
    let mut up = env.updater();
    let info = up.get_target_info(TARGET).unwrap().unwrap();
    let before = dir_state(&env.meta_dir());

    let mut longer = CONTENT.to_vec();
    longer.extend_from_slice(b"and some malware");
    for (what, b) in [("longer body", Behavior::Body(longer)), ("endless body", Behavior::Endless)] {
        env.server.set(&env.target_url_path(), b);
        let start = Instant::now();
        match up.download_target(&env.targets_dir(), TARGET, &info) {
            Err(Error::TargetMismatch { target, reason, .. }) => {
                assert_eq!(target, TARGET);
                assert!(reason.contains("signed length"), "{what}: {reason}");
            }
            other => panic!("{what}: expected TargetMismatch, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(3), "{what}: took {:?}", start.elapsed());
        let left = files_under(&env.targets_dir());
        assert!(left.is_empty(), "{what}: files left behind: {left:?}");
    }
    drop(up);
    assert_unchanged(&before, &env.meta_dir());
}

#[test]
fn slow_retrieval_of_timestamp_is_cut_off() {
    let env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    env.server.set("/metadata/timestamp.json", Behavior::Drip(Duration::from_millis(50)));
    let mut c = config();
    c.fetcher.grace = Duration::from_millis(300);
    c.fetcher.min_bytes_per_sec = 1000;
    let start = Instant::now();
    match env.updater_with(c, env.now).refresh() {
        Err(Error::Fetch(FetchError::TooSlow { url, received, min_bytes_per_sec, .. })) => {
            assert_eq!(url, env.url("timestamp.json"));
            assert_eq!(min_bytes_per_sec, 1000);
            assert!(received < env.published("timestamp.json").len() as u64);
        }
        other => panic!("expected FetchError::TooSlow, got {other:?}"),
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_unchanged(&before, &env.meta_dir());
}

#[test]
fn stalled_timestamp_times_out() {
    let env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    // Headers, then silence: no byte ever arrives, so only the per-read timeout can fire.
    env.server.set("/metadata/timestamp.json", Behavior::Stall);
    let mut c = config();
    c.fetcher.read_timeout = Duration::from_millis(500);
    c.fetcher.grace = Duration::from_millis(300);
    let start = Instant::now();
    match env.updater_with(c, env.now).refresh() {
        Err(Error::Fetch(FetchError::Transport { url, .. })) => assert_eq!(url, env.url("timestamp.json")),
        other => panic!("expected a FetchError::Transport timeout, got {other:?}"),
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_unchanged(&before, &env.meta_dir());
}

// ---------------------------------------------------------------------------------------
// Threshold of signatures not met
// ---------------------------------------------------------------------------------------

/// A metadata file holding `signed` (in canonical form) with `sigs` attached as they are.
fn with_signatures(signed: &packman_tuf::Timestamp, sigs: &[Signature]) -> Vec<u8> {
    let canonical = String::from_utf8(packman_tuf::canonical::to_canonical(signed).unwrap()).unwrap();
    let list: Vec<String> =
        sigs.iter().map(|s| format!("{{\"keyid\":\"{}\",\"sig\":\"{}\"}}", s.keyid, s.sig)).collect();
    format!("{{\"signed\":{canonical},\"signatures\":[{}]}}", list.join(",")).into_bytes()
}

#[test]
fn timestamp_without_threshold_of_signatures_is_refused() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    env.repo.timestamp.version += 1;
    let ts = env.repo.timestamp.clone();
    let (stranger, _) = Signer::generate_ed25519().unwrap();
    let right_key = &env.repo.signers["timestamp"][0];
    // The right keyid over other bytes, and the right signature under an unknown keyid.
    let misplaced = right_key.sign(b"something else").unwrap();
    let good = right_key.sign(&packman_tuf::canonical::to_canonical(&ts).unwrap()).unwrap();
    let renamed = Signature { keyid: stranger.keyid().to_string(), sig: good.sig.clone() };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("signed by an unknown key", sign_metadata(&ts, &[&stranger]).unwrap()),
        ("signatures removed", sign_metadata(&ts, &[]).unwrap()),
        ("signature over other bytes", with_signatures(&ts, &[misplaced])),
        ("valid signature under an unknown keyid", with_signatures(&ts, &[renamed])),
    ];
    for (what, bytes) in cases {
        env.serve("timestamp.json", &bytes);
        let (url, err) = refused(env.refresh());
        match err {
            TufError::ThresholdNotMet { role, valid, threshold } => {
                assert_eq!((role.as_str(), valid, threshold), ("timestamp", 0, 1), "{what}");
            }
            other => panic!("{what}: expected ThresholdNotMet, got {other:?}"),
        }
        assert_eq!(url, env.url("timestamp.json"));
        assert_unchanged(&before, &env.meta_dir());
    }
    // The splice itself is sound: the good signature under its own keyid is accepted.
    env.serve("timestamp.json", &with_signatures(&ts, &[good]));
    env.refresh().unwrap();
}

#[test]
fn root_with_threshold_two_signed_by_one_is_refused() {
    let env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());

    let (second, _) = Signer::generate_ed25519().unwrap();
    let mut root = env.repo.root.clone();
    root.version = 2;
    root.keys.insert(second.keyid().to_string(), second.public_key().clone());
    let r = root.roles.get_mut("root").unwrap();
    r.keyids.push(second.keyid().to_string());
    r.threshold = 2;
    let old_key = &env.repo.signers["root"][0];

    // Signed by the old root key only: the old root is satisfied, the new one is not.
    env.serve("2.root.json", &sign_metadata(&root, &[old_key]).unwrap());
    let (url, err) = refused(env.refresh());
    match err {
        TufError::ThresholdNotMet { role, valid, threshold } => {
            assert_eq!((role.as_str(), valid, threshold), ("root", 1, 2));
        }
        other => panic!("expected ThresholdNotMet of root, got {other:?}"),
    }
    assert_eq!(url, env.url("2.root.json"));
    assert_unchanged(&before, &env.meta_dir());

    // Signed by the new key only: the trusted root's threshold is not met.
    env.serve("2.root.json", &sign_metadata(&root, &[&second]).unwrap());
    let (_, err) = refused(env.refresh());
    match err {
        TufError::ThresholdNotMet { role, valid, threshold } => {
            assert_eq!((role.as_str(), valid, threshold), ("root", 0, 1));
        }
        other => panic!("expected ThresholdNotMet of root, got {other:?}"),
    }
    assert_unchanged(&before, &env.meta_dir());
}

// ---------------------------------------------------------------------------------------
// Fast-forward attack recovery (spec 5.3.11)
// ---------------------------------------------------------------------------------------

/// A client that trusts timestamp and snapshot version 3.
fn env_at_version_3() -> Env {
    let mut env = Env::new();
    env.publish();
    env.publish();
    env.refresh().unwrap();
    env
}

#[test]
fn fast_forward_recovery_accepts_lower_timestamp_after_timestamp_key_rotation() {
    let mut env = env_at_version_3();
    // The repository recovers from a compromise: new timestamp key, version count restarts.
    env.repo.rotate_key("timestamp").unwrap();
    env.repo.timestamp.version = 0;
    env.publish();
    let ts = env.published("timestamp.json");

    let mut up = env.updater();
    up.refresh().expect("the lower timestamp is accepted under the rotated key");
    assert_eq!(up.trusted().root().signed.version, 2);
    assert_eq!(up.trusted().timestamp().unwrap().signed.version, 1);
    drop(up);
    let after = dir_state(&env.meta_dir());
    assert_eq!(after["timestamp.json"], ts);
    assert_eq!(after["root.json"], env.repo.signed_roots[1]);
}

#[test]
fn lower_timestamp_without_key_rotation_is_rollback() {
    let mut env = env_at_version_3();
    let before = dir_state(&env.meta_dir());
    // The same restart, without a new key: the trusted timestamp still verifies.
    env.repo.timestamp.version = 0;
    env.publish();

    let (_, err) = refused(env.refresh());
    match err {
        TufError::Rollback { role, trusted, offered } => {
            assert_eq!((role.as_str(), trusted, offered), ("timestamp", 3, 1));
        }
        other => panic!("expected Rollback of timestamp, got {other:?}"),
    }
    assert_unchanged(&before, &env.meta_dir());
}

#[test]
fn rotating_another_role_key_keeps_the_trusted_timestamp() {
    let mut env = env_at_version_3();
    let before = dir_state(&env.meta_dir());
    // A new root that rotates only the targets key: the trusted timestamp stays trusted, so
    // a lower timestamp version is still a rollback.
    env.repo.rotate_key("targets").unwrap();
    env.repo.timestamp.version = 0;
    env.publish();

    let (_, err) = refused(env.refresh());
    match err {
        TufError::Rollback { role, trusted, offered } => {
            assert_eq!((role.as_str(), trusted, offered), ("timestamp", 3, 1));
        }
        other => panic!("expected Rollback of timestamp, got {other:?}"),
    }
    // Only the new root was taken.
    assert_changed_only(&before, &env.meta_dir(), &[("root.json", &env.repo.signed_roots[1])]);
}

#[test]
fn fast_forward_recovery_accepts_lower_snapshot_after_snapshot_key_rotation() {
    let mut env = env_at_version_3();
    // Recovery from a fast-forwarded snapshot: new snapshot key, snapshot versions restart.
    // Spec 5.3.11: the client must then delete its trusted timestamp and snapshot, or the
    // trusted timestamp (whose key did not change) keeps refusing the lower snapshot version.
    env.repo.rotate_key("snapshot").unwrap();
    env.repo.snapshot.version = 0;
    env.publish();

    let mut up = env.updater();
    up.refresh().expect("the lower snapshot is accepted under the rotated key (spec 5.3.11)");
    assert_eq!(up.trusted().snapshot().unwrap().signed.version, 1);
    drop(up);
    let after = dir_state(&env.meta_dir());
    assert_eq!(after["timestamp.json"], env.published("timestamp.json"));
    assert_eq!(after["snapshot.json"], env.published("1.snapshot.json"));
}

// ---------------------------------------------------------------------------------------
// Offline (refresh_local), --allow-expired (Config::expiry) and read-only updaters
// ---------------------------------------------------------------------------------------

#[test]
fn refresh_local_re_verifies_the_cache_and_judges_expiry_by_the_config() {
    let env = Env::new();
    env.refresh().unwrap();
    let before = dir_state(&env.meta_dir());
    env.server.clear_log();
    // Nothing fetched; the cached metadata verifies and finds the target.
    let mut up = env.updater();
    up.refresh_local().unwrap();
    assert!(up.get_target_info(TARGET).unwrap().is_some());
    assert!(env.server.requests().is_empty(), "{:?}", env.server.requests());
    drop(up); // it holds the directory's lock
              // Two days on, the cached timestamp has expired: refused, unless allowed (then named).
    let later = env.now + 2 * DAY;
    let err = env.updater_with(config(), later).refresh_local().unwrap_err();
    assert!(matches!(err.tuf(), Some(TufError::Expired { role, .. }) if role == "timestamp"), "{err}");
    let allow = Config { expiry: packman_tuf::Expiry::Allow, ..config() };
    let mut up = env.updater_with(allow, later);
    up.refresh_local().unwrap();
    let expired: Vec<String> = up.trusted().expired().into_iter().map(|e| e.role).collect();
    assert_eq!(expired, ["timestamp"]);
    drop(up);
    assert_unchanged(&before, &env.meta_dir());
    // A tampered cached file is refused, not believed because it is local.
    let ts = env.meta_dir().join("timestamp.json");
    let good = std::fs::read(&ts).unwrap();
    let forged = String::from_utf8(good.clone()).unwrap().replacen("\"version\":", "\"version\":9", 1);
    assert_ne!(forged.as_bytes(), good);
    std::fs::write(&ts, forged).unwrap();
    let err = env.updater().refresh_local().unwrap_err();
    assert!(matches!(err.tuf(), Some(TufError::ThresholdNotMet { .. })), "{err}");
    std::fs::write(&ts, good).unwrap();
}

#[test]
fn a_read_only_updater_verifies_new_metadata_while_another_holds_the_directory_and_writes_nothing() {
    let mut env = Env::new();
    env.refresh().unwrap();
    let holder = env.updater(); // holds the lock, as a proxy does
    env.repo.add_target("pkg/new.txt", b"new").unwrap();
    env.publish();
    let before = dir_state(&env.meta_dir());
    let base = env.server.url();
    let mut reader = Updater::open_read_only(
        &env.meta_dir(),
        &format!("{base}/metadata"),
        Some(&format!("{base}/targets")),
        config(),
        std::sync::Arc::new(packman_client::DefaultTransport::new(config().fetcher)),
        env.now,
    )
    .unwrap();
    reader.refresh().unwrap();
    assert!(reader.get_target_info("pkg/new.txt").unwrap().is_some());
    assert_eq!(reader.trusted().timestamp().unwrap().signed.version, env.repo.timestamp.version);
    assert_unchanged(&before, &env.meta_dir());
    drop(holder);
}
