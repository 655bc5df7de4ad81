//! Both shapes of hashed-bin delegation (TAP 15 succinct bins and classic
//! `path_hash_prefixes` roles, see packman_repo::bin_style): the client fetches exactly the
//! one bin a lookup needs, finds and verifies every target, and says "not listed" for a path
//! no bin lists, without fetching more than that path's bin.

mod common;

use common::mem_updater;
use packman_client::Updater;
use packman_repo::{BinStyle, RepoBuilder};
use packman_tuf::{layout, OffsetDateTime};

/// The bin files (`N.bins-X.json`) among the URLs fetched.
fn bins_fetched(log: &[String]) -> Vec<String> {
    log.iter().filter_map(|u| u.rsplit('/').next()).filter(|f| f.contains(".bins-")).map(str::to_string).collect()
}

#[test]
fn lazy_bin_loading_finds_every_target_in_both_shapes() {
    for style in [BinStyle::Succinct, BinStyle::Prefixes] {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        // 2^5 bins: prefixes of 2 hex digits, 8 to a bin (off a hex-digit boundary).
        let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_hashed_bins(5, style).unwrap();
        let paths: Vec<String> = (0..60).map(|i| format!("pkg/{i}/file-{i}.txt")).collect();
        for p in &paths {
            repo.add_target(p, p.as_bytes()).unwrap();
        }
        repo.publish(&repo_dir).unwrap();
        let d = repo.targets.delegations.as_ref().unwrap();
        assert_eq!(d.roles.is_some(), style == BinStyle::Prefixes, "{style}");

        for (i, p) in paths.iter().enumerate().step_by(7) {
            let meta = tmp.path().join(format!("meta-{i}"));
            Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
            let (mut up, t) = mem_updater(&meta, &repo_dir);
            let got = up.download_verified(&tmp.path().join(format!("dl-{i}")), p).unwrap();
            assert_eq!(std::fs::read(&got.path).unwrap(), p.as_bytes(), "{style}: {p}");
            // One bin fetched, the one the builder listed the path in.
            let bin = repo.role_for(p);
            let fetched = bins_fetched(&t.log());
            assert_eq!(fetched.len(), 1, "{style}: {p}: {fetched:?}");
            assert!(fetched[0].ends_with(&format!(".{bin}.json")), "{style}: {p}: {fetched:?} not {bin}");
            assert!(meta.join(layout::metadata_file(&bin, None)).exists());
        }

        // Every target, by one client; a path nobody lists is "not listed", after its bin only.
        let meta = tmp.path().join("meta-all");
        Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
        let (mut up, t) = mem_updater(&meta, &repo_dir);
        for p in &paths {
            let got = up.download_verified(&tmp.path().join("dl-all"), p).unwrap();
            assert_eq!(std::fs::read(&got.path).unwrap(), p.as_bytes(), "{style}: {p}");
        }
        let before = bins_fetched(&t.log()).len();
        assert_eq!(up.get_target_info("pkg/none/absent.txt").unwrap(), None, "{style}");
        let after = bins_fetched(&t.log());
        assert!(after.len() - before <= 1, "{style}: {after:?}");
        assert_eq!(up.all_targets().unwrap().len(), paths.len(), "{style}");
    }
}

/// A bin listing a path outside its range (a bins key holder, or a publisher bug, putting it
/// there) does not get it trusted, in either shape: the search goes only to the bin the
/// path's hash names, which does not list it, so the path is "not listed" and the wrong
/// bin is never fetched.
#[test]
fn a_path_listed_by_the_wrong_bin_is_not_found_in_both_shapes() {
    for style in [BinStyle::Succinct, BinStyle::Prefixes] {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_hashed_bins(3, style).unwrap();
        let path = "evil/payload.txt";
        let right = repo.role_for(path);
        let wrong = if right == "bins-0" { "bins-1" } else { "bins-0" };
        repo.add_target_to(wrong, path, b"payload").unwrap();
        repo.publish(&repo_dir).unwrap();
        let meta = tmp.path().join("meta");
        Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
        let (mut up, t) = mem_updater(&meta, &repo_dir);
        assert_eq!(up.get_target_info(path).unwrap(), None, "{style}");
        let fetched = bins_fetched(&t.log());
        assert_eq!(fetched.len(), 1, "{style}: {fetched:?}");
        assert!(fetched[0].ends_with(&format!(".{right}.json")), "{style}: {fetched:?}");
        assert!(!meta.join(layout::metadata_file(wrong, None)).exists(), "{style}");
        // Nor in what a mirror takes as the repository's targets, after loading every bin.
        assert!(up.all_targets().unwrap().iter().all(|(p, _)| p != path), "{style}");
        assert!(meta.join(layout::metadata_file(wrong, None)).exists(), "{style}: all bins loaded");
    }
}
