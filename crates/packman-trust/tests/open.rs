//! A trusted repository opens its updater: first use with a root, then later runs with
//! none, reading and downloading through the pinned trust.

use packman_client::Config;
use packman_repo::RepoBuilder;
use packman_trust::{Home, TrustError, TrustOutcome};
use packman_tuf::OffsetDateTime;

#[test]
fn first_use_then_pinned_then_a_verified_download() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("srv");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_target("pkgs/a-1.0.tar.gz", b"the bytes of a").unwrap();
    repo.publish(&repo_dir).unwrap();
    let root_file = tmp.path().join("root.json");
    std::fs::write(&root_file, &repo.signed_roots[0]).unwrap();

    let home = Home::at(tmp.path().join("home"));
    let trusted = home.repo_by_url(&format!("file://{}/metadata", repo_dir.display()), None);
    assert!(matches!(trusted.ensure_trust(None), Err(TrustError::NoRoot { .. })));
    assert_eq!(trusted.ensure_trust(Some(&root_file)).unwrap(), TrustOutcome::FirstUse { version: 1 });
    assert!(trusted.metadata_dir.starts_with(home.repos_dir()));
    assert_eq!(trusted.ensure_trust(None).unwrap(), TrustOutcome::AlreadyTrusted);

    let mut up = trusted.open(Config::default()).unwrap();
    let got = up.download_verified(&tmp.path().join("dl"), "pkgs/a-1.0.tar.gz").unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), b"the bytes of a");
    assert_eq!(up.trusted().timestamp().unwrap().signed.version, 1);
    assert_eq!(up.metadata_dir(), trusted.metadata_dir);
}
