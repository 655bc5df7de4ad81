//! The updater's target search looks a path up only in roles delegated for it (spec 5.7.3):
//! a delegated role that lists a path outside its delegated paths, or a hashed bin that lists
//! a path hashing to another bin, does not get it installed, and the updater does not even
//! fetch that role for such a path.

mod common;

use std::path::Path;

use common::{dir_state, mem_updater, MemTransport};
use packman_client::{Error, Updater};
use packman_repo::{BinStyle, RepoBuilder};
use packman_tuf::OffsetDateTime;

/// The metadata file names fetched.
fn fetched(t: &MemTransport) -> Vec<String> {
    t.log().iter().filter_map(|u| u.strip_prefix("mem://repo/metadata/")).map(str::to_string).collect()
}

/// Asks for `path`, which only a role not delegated for it lists: not found, nothing
/// downloaded, and `role` never fetched.
#[track_caller]
fn not_found_anywhere(meta: &Path, repo_dir: &Path, dl: &Path, path: &str, role: &str) {
    let (mut up, t) = mem_updater(meta, repo_dir);
    up.refresh().unwrap();
    let before = dir_state(meta);
    assert_eq!(up.get_target_info(path).unwrap(), None, "{path}");
    match up.download_verified(dl, path) {
        Err(Error::TargetNotFound(p)) => assert_eq!(p, path),
        other => panic!("{path}: expected TargetNotFound, got {other:?}"),
    }
    assert!(!Updater::local_path(dl, path).exists());
    let got = fetched(&t);
    assert!(!got.iter().any(|f| f.ends_with(&format!(".{role}.json"))), "{path}: fetched {role}: {got:?}");
    drop(up);
    // Only roles the search legitimately passed through may have been added.
    let after = dir_state(meta);
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "{name} changed");
    }
    assert!(!after.contains_key(&format!("{role}.json")), "{role} stored: {:?}", after.keys());
}

#[test]
fn a_path_outside_a_roles_delegated_paths_is_not_looked_up_there() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap();
    repo.add_target_to("a", "x/ok", b"ok").unwrap();
    // "a" signs for y/evil too, but is delegated x/* only.
    repo.add_target_to("a", "y/evil", b"evil").unwrap();
    repo.publish(&repo_dir).unwrap();

    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let dl = tmp.path().join("dl");
    not_found_anywhere(&meta, &repo_dir, &dl, "y/evil", "a");

    // The same role is consulted for a path it is delegated.
    let (mut up, t) = mem_updater(&meta, &repo_dir);
    let got = up.download_verified(&dl, "x/ok").unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), b"ok");
    assert!(fetched(&t).iter().any(|f| f.ends_with(".a.json")));
    assert!(meta.join("a.json").exists(), "the name not_found_anywhere looks for");
    // ... and y/evil is still not found with "a" loaded.
    assert_eq!(up.get_target_info("y/evil").unwrap(), None);
}

#[test]
fn a_path_listed_in_the_wrong_hashed_bin_is_not_found() {
    for style in [BinStyle::Succinct, BinStyle::Prefixes] {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_hashed_bins(2, style).unwrap();
        let path = "pkg/evil";
        let right = repo.role_for(path);
        let wrong = if right == "bins-0" { "bins-1" } else { "bins-0" };
        repo.add_target_to(wrong, path, b"evil").unwrap();
        repo.publish(&repo_dir).unwrap();

        let meta = tmp.path().join("meta");
        Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
        not_found_anywhere(&meta, &repo_dir, &tmp.path().join("dl"), path, wrong);
    }
}
