//! What a mirror needs from the updater: the exact bytes of every metadata file it accepted
//! (`record_verified` / `take_verified`), every targets role reachable through the
//! delegations (`load_all_targets`), and every target as a client's search resolves it
//! (`all_targets`).

mod common;

use std::path::Path;

use common::mem_updater;
use packman_client::{Updater, VerifiedFile};
use packman_repo::RepoBuilder;
use packman_tuf::{layout, OffsetDateTime};

/// Each recorded file is byte for byte the published `N.ROLE.json` (or `timestamp.json`).
#[track_caller]
fn assert_published(repo_dir: &Path, files: &[VerifiedFile]) {
    for f in files {
        let name = if f.role == "timestamp" {
            layout::TIMESTAMP_FILE.into()
        } else {
            layout::metadata_file(&f.role, Some(f.version))
        };
        let published = std::fs::read(repo_dir.join("metadata").join(&name)).unwrap();
        assert!(published == f.bytes, "{name}: recorded bytes differ from the published file");
    }
}

fn names(files: &[VerifiedFile]) -> Vec<String> {
    files.iter().map(|f| format!("{}.{}", f.version, f.role)).collect()
}

#[test]
fn classic_delegations_load_all_roles_and_resolve_targets_as_the_search_does() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_target_to("targets", "top.txt", b"top").unwrap();
    repo.add_delegation("targets", "a", vec!["a/*".into()], false).unwrap();
    repo.add_delegation("a", "ab", vec!["a/b*".into()], false).unwrap();
    repo.add_delegation("targets", "c", vec!["c/*".into()], true).unwrap();
    repo.add_target_to("a", "a/x.txt", b"ax").unwrap();
    repo.add_target_to("ab", "a/b.txt", b"ab").unwrap();
    repo.add_target_to("c", "c/y.txt", b"cy").unwrap();
    // Listed by "a" but outside the paths delegated to it: no client finds it there.
    repo.add_target_to("a", "z/outside.txt", b"zz").unwrap();
    repo.publish(&repo_dir).unwrap();
    repo.bump_root().unwrap();
    repo.publish(&repo_dir).unwrap();

    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let (mut up, _) = mem_updater(&meta, &repo_dir);
    up.record_verified(true);
    assert_eq!(up.load_all_targets().unwrap(), ["targets", "a", "c", "ab"]);
    let all: Vec<String> = up.all_targets().unwrap().into_iter().map(|(p, _)| p).collect();
    assert_eq!(all, ["a/b.txt", "a/x.txt", "c/y.txt", "top.txt"]);
    let files = up.take_verified();
    assert_eq!(names(&files), ["2.root", "2.timestamp", "2.snapshot", "1.targets", "1.a", "1.c", "1.ab"]);
    assert_published(&repo_dir, &files);
    assert!(up.take_verified().is_empty(), "taken once");

    // A second updater on the same state accepts the same files from its trusted copies
    // (nothing new upstream) and records those too.
    drop(up);
    let (mut up, t) = mem_updater(&meta, &repo_dir);
    up.record_verified(true);
    up.load_all_targets().unwrap();
    let files = up.take_verified();
    assert_eq!(names(&files), ["2.timestamp", "2.snapshot", "1.targets", "1.a", "1.c", "1.ab"]);
    assert_published(&repo_dir, &files);
    assert_eq!(t.log(), ["mem://repo/metadata/3.root.json", "mem://repo/metadata/timestamp.json"]);
}

#[test]
fn succinct_bins_are_all_loaded_and_recording_is_off_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
    for i in 0..8 {
        repo.add_target(&format!("p/{i}.txt"), format!("data {i}").as_bytes()).unwrap();
    }
    repo.publish(&repo_dir).unwrap();
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let (mut up, _) = mem_updater(&meta, &repo_dir);
    let roles = up.load_all_targets().unwrap();
    assert_eq!(roles.len(), 5, "{roles:?}");
    assert_eq!(up.all_targets().unwrap().len(), 8);
    assert!(up.take_verified().is_empty(), "recording is opt-in");
    // Every bin is in the trusted metadata directory now.
    for r in &roles {
        assert!(meta.join(layout::metadata_file(r, None)).exists(), "{r}");
    }
}

/// A repository of 64 succinct bins (one batch fetched ahead in parallel), published, and a
/// fresh metadata directory trusting it.
fn bins_repo(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let repo_dir = tmp.join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(6).unwrap();
    for i in 0..200 {
        repo.add_target(&format!("p/{i}.txt"), format!("data {i}").as_bytes()).unwrap();
    }
    repo.publish(&repo_dir).unwrap();
    let meta = tmp.join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    (repo_dir, meta)
}

#[test]
fn bins_fetched_ahead_are_each_fetched_once_and_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, meta) = bins_repo(tmp.path());
    let (mut up, t) = mem_updater(&meta, &repo_dir);
    let roles = up.load_all_targets().unwrap();
    assert_eq!(roles.len(), 65, "targets and 64 bins");
    assert_eq!(up.all_targets().unwrap().len(), 200);
    let log = t.log();
    for r in &roles[1..] {
        let asked = log.iter().filter(|u| u.ends_with(&format!(".{r}.json"))).count();
        assert_eq!(asked, 1, "{r} fetched {asked} times: {log:?}");
    }
}

#[test]
fn a_tampered_bin_fetched_ahead_is_refused_as_without_fetching_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, meta) = bins_repo(tmp.path());
    let mut t = common::MemTransport::of_dir(&repo_dir);
    let bin = t.files.keys().find(|k| k.contains("metadata/") && k.ends_with(".bins-1f.json")).cloned();
    let bin = bin.unwrap_or_else(|| panic!("no bins-1f in {:?}", t.files.keys().collect::<Vec<_>>()));
    t.tamper.push(bin.rsplit('/').next().unwrap().to_string());
    let t = std::sync::Arc::new(t);
    let mut up = Updater::with_transport(
        &meta,
        "mem://repo/metadata",
        Some("mem://repo/targets"),
        packman_client::Config::default(),
        t.clone(),
    )
    .unwrap();
    let err = up.load_all_targets().unwrap_err().to_string();
    assert!(err.contains("bins-1f") && err.contains(&bin), "{err}");
    // Fetched ahead, refused, fetched again through the failover loop, refused again.
    assert_eq!(t.log().iter().filter(|u| **u == bin).count(), 2, "{:?}", t.log());
    drop(up);
    // Nothing of the tampered bin was kept.
    assert!(!meta.join("bins-1f.json").exists());
}
