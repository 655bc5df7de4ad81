//! `verify`: an offline audit of a synced mirror, one test per kind of finding.

use std::path::{Path, PathBuf};

use packman_mirror::{sync, verify, SyncOptions, VerifyOptions, VerifyReport};
use packman_repo::RepoBuilder;
use packman_tuf::{layout, OffsetDateTime};

struct Mirror {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    root: Vec<u8>,
}

const README: &[u8] = b"read me";
const SDIST: &[u8] = b"sdist of p 1.0";

fn hashed(path: &str, data: &[u8]) -> String {
    let sha = packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
    format!("targets/{}", layout::hashed_target(path, &sha))
}

fn mirror() -> Mirror {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
    repo.add_target("docs/readme.txt", README).unwrap();
    repo.add_target("packages/p/p-1.0.tar.gz", SDIST).unwrap();
    repo.publish(&up).unwrap();
    let dest = tmp.path().join("mirror");
    let mut o = SyncOptions::from_base(&packman_client::file_url(&up, false));
    o.root = Some(repo.signed_roots[0].clone());
    sync(&dest, &o).unwrap();
    Mirror { _tmp: tmp, dest, root: repo.signed_roots[0].clone() }
}

fn audit(m: &Mirror, fast: bool) -> VerifyReport {
    let mut o = VerifyOptions::new(m.root.clone());
    o.fast = fast;
    verify(&m.dest, &o).unwrap()
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

#[test]
fn a_synced_mirror_passes_in_full_and_fast() {
    let m = mirror();
    for fast in [false, true] {
        let r = audit(&m, fast);
        assert_eq!(r.exit_bits(), 0, "{r:#?}");
        // Two targets: two hashed files and the sdist's plain name.
        assert_eq!((r.targets, r.files_checked), (2, 3));
    }
}

#[test]
fn missing_files_are_listed() {
    let m = mirror();
    std::fs::remove_file(m.dest.join(hashed("docs/readme.txt", README))).unwrap();
    std::fs::remove_file(m.dest.join("targets/packages/p/p-1.0.tar.gz")).unwrap();
    let r = audit(&m, false);
    assert_eq!(r.exit_bits(), VerifyReport::MISSING, "{r:#?}");
    let readme = hashed("docs/readme.txt", README);
    assert_eq!(r.missing, [readme.trim_start_matches("targets/"), "packages/p/p-1.0.tar.gz"]);
}

#[test]
fn corrupt_files_are_found_by_hash_and_by_size_when_fast() {
    let m = mirror();
    // Same length, other bytes: only the full audit sees it.
    let readme = m.dest.join(hashed("docs/readme.txt", README));
    std::fs::write(&readme, vec![b'X'; README.len()]).unwrap();
    let r = audit(&m, false);
    assert_eq!(r.exit_bits(), VerifyReport::CORRUPT, "{r:#?}");
    assert_eq!(r.corrupt.len(), 1);
    assert!(r.corrupt[0].path.ends_with(".readme.txt"));
    assert_eq!(audit(&m, true).exit_bits(), 0);
    // Another length: the fast audit sees it too.
    std::fs::write(&readme, b"longer than it was").unwrap();
    let r = audit(&m, true);
    assert_eq!(r.exit_bits(), VerifyReport::CORRUPT, "{r:#?}");
    assert!(r.corrupt[0].reason.contains("bytes where 7 are signed"), "{r:#?}");
}

#[test]
fn extra_files_are_listed_but_kept_plain_names_are_not() {
    let m = mirror();
    write(&m.dest.join("targets/docs/junk.txt"), b"junk");
    write(&m.dest.join(hashed("docs/old.txt", b"old")), b"old");
    write(&m.dest.join("metadata/notes.txt"), b"hi");
    write(&m.dest.join("targets/.tmp-123"), b"");
    // A plain name of a target no longer listed: kept on purpose by sync.
    write(&m.dest.join("targets/packages/p/p-0.9.tar.gz"), b"old sdist");
    let r = audit(&m, false);
    assert_eq!(r.exit_bits(), VerifyReport::EXTRA, "{r:#?}");
    let mut want = vec![
        "metadata/notes.txt".to_string(),
        "targets/.tmp-123".into(),
        "targets/docs/junk.txt".into(),
        hashed("docs/old.txt", b"old"),
    ];
    want.sort();
    assert_eq!(r.extra, want);
    assert_eq!(r.retained, 1);
}

#[test]
fn refused_metadata_stops_the_audit_and_kinds_add_up() {
    let m = mirror();
    // A timestamp with its signed version changed: its signature no longer verifies.
    let ts = m.dest.join("metadata/timestamp.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ts).unwrap()).unwrap();
    v["signed"]["version"] = 7.into();
    std::fs::write(&ts, serde_json::to_vec(&v).unwrap()).unwrap();
    write(&m.dest.join("targets/docs/junk.txt"), b"junk");
    let r = audit(&m, false);
    assert!(r.refused.is_some(), "{r:#?}");
    assert_eq!(r.exit_bits(), VerifyReport::REFUSED, "no target is checked without metadata: {r:#?}");

    // Another repository's root: refused too.
    let other = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    let r = verify(&mirror().dest, &VerifyOptions::new(other.signed_roots[0].clone())).unwrap();
    assert_eq!(r.exit_bits(), VerifyReport::REFUSED, "{r:#?}");

    // Missing and corrupt together: both bits.
    let m = mirror();
    std::fs::remove_file(m.dest.join(hashed("docs/readme.txt", README))).unwrap();
    std::fs::write(m.dest.join(hashed("packages/p/p-1.0.tar.gz", SDIST)), b"x").unwrap();
    let r = audit(&m, false);
    assert_eq!(r.exit_bits(), VerifyReport::MISSING | VerifyReport::CORRUPT, "{r:#?}");
}
