//! packman's freshness extension: a timestamp that names a root version newer than any the
//! mirror serves is refused (the mirror withholds a root rotation).

use packman_client::{Config, Error, Updater};
use packman_repo::RepoBuilder;
use packman_testkit::TestServer;
use packman_tuf::metadata::ROOT_VERSION_FIELD;
use packman_tuf::OffsetDateTime;

use packman_testkit::dir_state as snapshot_dir;

#[test]
fn withheld_root_rotation_is_refused() {
    let now = OffsetDateTime::now_utc();
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(now).unwrap();
    repo.add_target("a.txt", b"a").unwrap();
    repo.timestamp.extra.insert(ROOT_VERSION_FIELD.into(), 1.into());
    repo.publish(&repo_dir).unwrap();
    let server = TestServer::serve_dir(&repo_dir).unwrap();
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let url = format!("{}/metadata/", server.url());
    Updater::with_time(&meta, &url, None, Config::default(), now).unwrap().refresh().unwrap();

    // The publisher signs root v2 (say, revoking a compromised targets key); the mirror
    // serves the new timestamp but hides 2.root.json. The timestamp key did not change, so
    // only the extension can notice.
    repo.bump_root().unwrap();
    repo.timestamp.extra.insert(ROOT_VERSION_FIELD.into(), 2.into());
    repo.publish(&repo_dir).unwrap();
    std::fs::remove_file(repo_dir.join("metadata/2.root.json")).unwrap();
    let before = snapshot_dir(&meta);
    let err = Updater::with_time(&meta, &url, None, Config::default(), now).unwrap().refresh().unwrap_err();
    assert!(matches!(err.tuf(), Some(packman_tuf::Error::HiddenRoot { named: 2, trusted: 1 })), "{err}");
    assert!(matches!(err, Error::Metadata { ref url, .. } if url.ends_with("/metadata/timestamp.json")), "{err}");
    assert_eq!(snapshot_dir(&meta), before);

    // Once the mirror serves the root, the same timestamp is accepted.
    std::fs::write(repo_dir.join("metadata/2.root.json"), &repo.signed_roots[1]).unwrap();
    Updater::with_time(&meta, &url, None, Config::default(), now).unwrap().refresh().unwrap();
}
