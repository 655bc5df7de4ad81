//! The updater reads every byte through its [`Transport`]: an in-memory transport that
//! serves a published repository under a scheme no built-in transport knows (`mem://`) is
//! enough for a full refresh and a verified download, and what it served is still checked.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::MemTransport;
use packman_client::{Config, Error, FetchError, Transport, Updater};
use packman_repo::RepoBuilder;
use packman_tuf::OffsetDateTime;

pub fn published(tmp: &Path) -> (RepoBuilder, std::path::PathBuf) {
    let repo_dir = tmp.join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_target("pkgs/a-1.0.tar.gz", b"the bytes of a").unwrap();
    repo.publish(&repo_dir).unwrap();
    (repo, repo_dir)
}

#[test]
fn refresh_and_download_go_only_through_the_given_transport() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, repo_dir) = published(tmp.path());
    let transport = Arc::new(MemTransport::of_dir(&repo_dir));
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();

    let mut up = Updater::with_transport(
        &meta,
        "mem://repo/metadata",
        Some("mem://repo/targets"),
        Config::default(),
        transport.clone(),
    )
    .unwrap();
    let info = up.get_target_info("pkgs/a-1.0.tar.gz").unwrap().unwrap();
    let dl = tmp.path().join("dl");
    let path = up.download_target(&dl, "pkgs/a-1.0.tar.gz", &info).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"the bytes of a");

    let log = transport.log();
    assert!(log.iter().all(|u| u.starts_with("mem://repo/")), "{log:?}");
    for wanted in ["mem://repo/metadata/2.root.json", "mem://repo/metadata/timestamp.json"] {
        assert!(log.iter().any(|u| u == wanted), "{wanted} not fetched: {log:?}");
    }
    assert!(log.last().unwrap().starts_with("mem://repo/targets/pkgs/"), "{log:?}");
    assert!(log.last().unwrap().ends_with(".a-1.0.tar.gz"), "hash-prefixed target name expected: {log:?}");
    // The updater hands out the very transport it was given, so others can share it.
    let shared: Arc<dyn Transport> = transport.clone();
    assert!(Arc::ptr_eq(up.transport(), &shared));
}

#[test]
fn bytes_from_a_custom_transport_are_still_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, repo_dir) = published(tmp.path());
    let mut transport = MemTransport::of_dir(&repo_dir);
    transport.tamper.push(".a-1.0.tar.gz".into());
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let mut up = Updater::with_transport(
        &meta,
        "mem://repo/metadata",
        Some("mem://repo/targets"),
        Config::default(),
        Arc::new(transport),
    )
    .unwrap();
    let info = up.get_target_info("pkgs/a-1.0.tar.gz").unwrap().unwrap();
    let dl = tmp.path().join("dl");
    match up.download_target(&dl, "pkgs/a-1.0.tar.gz", &info) {
        Err(Error::TargetMismatch { reason, .. }) => assert!(reason.contains("sha256"), "{reason}"),
        other => panic!("expected TargetMismatch, got {other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(&dl).unwrap().collect();
    assert!(left.is_empty(), "nothing may be saved from a tampered download: {left:?}");
}

#[test]
fn the_default_transport_knows_no_custom_scheme() {
    // The counterpart of the tests above: without the custom transport the same URLs fail,
    // so their success came from the transport and from nowhere else.
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = published(tmp.path());
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let mut up = Updater::new(&meta, "mem://repo/metadata", Some("mem://repo/targets"), Config::default()).unwrap();
    match up.refresh() {
        Err(Error::Fetch(FetchError::UnsupportedScheme { url })) => assert!(url.starts_with("mem://"), "{url}"),
        other => panic!("expected UnsupportedScheme, got {other:?}"),
    }
}
