//! The cache of verified files: a miss is handed back open as soon as it is verified and
//! reaches its final name (the signed sha256) only through the writer, durable; a second
//! request meanwhile is a hit on the same bytes, never a second fetch; bytes that fail
//! verification never enter it.

use std::io::Read;

use packman_client::Config;
use packman_repo::RepoBuilder;
use packman_trust::{read::Cached, Home, RepoEntry, VerifiedCache};
use packman_tuf::OffsetDateTime;

struct Fixture {
    tmp: tempfile::TempDir,
    repo_dir: std::path::PathBuf,
    home: Home,
    entry: RepoEntry,
}

const TARGET: &str = "packages/demo/demo-1.0-py3-none-any.whl";
const BYTES: &[u8] = b"PK\x03\x04 the demo wheel";

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("srv");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_target(TARGET, BYTES).unwrap();
    repo.publish(&repo_dir).unwrap();
    let root_file = tmp.path().join("root.json");
    std::fs::write(&root_file, &repo.signed_roots[0]).unwrap();
    let home = Home::at(tmp.path().join("home"));
    let url = format!("file://{}", repo_dir.display());
    home.repo_by_url(&format!("{url}/metadata"), None).ensure_trust(Some(&root_file)).unwrap();
    let entry = RepoEntry {
        name: "main".into(),
        url,
        projects: vec!["*".into()],
        metadata_url: None,
        targets_url: None,
        added: None,
        mirrors: vec![],
    };
    Fixture { tmp, repo_dir, home, entry }
}

fn bytes_of(mut c: Cached) -> Vec<u8> {
    let mut v = Vec::new();
    c.file.read_to_end(&mut v).unwrap();
    v
}

/// The names in the cache directory (temp files included).
fn names(cache: &VerifiedCache) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_miss_is_served_open_then_kept_under_its_signed_sha256() {
    let f = fixture();
    let mut up = f.home.repo_by_url(&format!("{}/metadata", f.entry.url), None).open(Config::default()).unwrap();
    let info = up.get_target_info(TARGET).unwrap().expect("signed");
    let sha256 = info.hashes.get("sha256").unwrap().to_string();
    let cache = VerifiedCache::at(f.tmp.path().join("cache")).unwrap();

    let first = cache.get(&f.entry, &up.target_fetcher(), TARGET, &info).unwrap();
    assert!(!first.hit);
    assert_eq!(first.sha256, sha256);
    // The file the repository served is gone: a second request can only be a hit.
    std::fs::remove_dir_all(f.repo_dir.join("targets")).unwrap();
    let second = cache.get(&f.entry, &up.target_fetcher(), TARGET, &info).unwrap();
    assert!(second.hit, "a file on its way into the cache is a hit");
    assert!(cache.holds(&f.entry, TARGET, &info));
    assert_eq!(bytes_of(first), BYTES);
    assert_eq!(bytes_of(second), BYTES);

    cache.flush().unwrap();
    assert_eq!(names(&cache), vec![sha256.clone()], "only the final name, no temp file left");
    assert_eq!(std::fs::read(cache.dir().join(&sha256)).unwrap(), BYTES);
    assert_eq!(cache.cached(&f.entry, TARGET, &info), Some(cache.dir().join(&sha256)));
}

#[test]
fn dropping_the_cache_finishes_writing_what_it_served() {
    let f = fixture();
    let mut up = f.home.repo_by_url(&format!("{}/metadata", f.entry.url), None).open(Config::default()).unwrap();
    let info = up.get_target_info(TARGET).unwrap().expect("signed");
    let dir = f.tmp.path().join("cache");
    let cache = VerifiedCache::at(dir.clone()).unwrap();
    let clone = cache.clone();
    let got = cache.get(&f.entry, &up.target_fetcher(), TARGET, &info).unwrap();
    drop(cache);
    drop(clone);
    assert_eq!(std::fs::read(dir.join(&got.sha256)).unwrap(), BYTES);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
}

#[test]
fn tampered_bytes_are_refused_and_never_enter_the_cache() {
    let f = fixture();
    let mut up = f.home.repo_by_url(&format!("{}/metadata", f.entry.url), None).open(Config::default()).unwrap();
    let info = up.get_target_info(TARGET).unwrap().expect("signed");
    // The host swaps every copy of the file (same length, other bytes).
    for e in std::fs::read_dir(f.repo_dir.join("targets/packages/demo")).unwrap() {
        let e = e.unwrap().path();
        if e.file_name().unwrap().to_string_lossy().ends_with("demo-1.0-py3-none-any.whl") {
            let mut evil = BYTES.to_vec();
            evil[5] ^= 1;
            std::fs::write(&e, evil).unwrap();
        }
    }
    let cache = VerifiedCache::at(f.tmp.path().join("cache")).unwrap();
    let err = cache.get(&f.entry, &up.target_fetcher(), TARGET, &info).unwrap_err();
    assert!(err.to_string().contains(TARGET), "{err}");
    cache.flush().unwrap();
    assert!(names(&cache).is_empty(), "{:?}", names(&cache));
    assert!(!cache.holds(&f.entry, TARGET, &info));
}
