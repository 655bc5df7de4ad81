//! The verified-download API: look up, reuse a verified copy, download to a temp file and
//! hand it over only after the check.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::MemTransport;
use packman_client::{Config, Error, Updater};
use packman_repo::RepoBuilder;
use packman_tuf::OffsetDateTime;

const TARGET: &str = "pkgs/a-1.0.tar.gz";
const BYTES: &[u8] = b"the bytes of a";

struct Fixture {
    tmp: tempfile::TempDir,
    transport: Arc<MemTransport>,
    meta: PathBuf,
}

fn fixture(tamper: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_target(TARGET, BYTES).unwrap();
    repo.publish(&repo_dir).unwrap();
    let mut transport = MemTransport::of_dir(&repo_dir);
    if tamper {
        transport.tamper.push(".a-1.0.tar.gz".into());
    }
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    Fixture { tmp, transport: Arc::new(transport), meta }
}

impl Fixture {
    fn updater(&self) -> Updater {
        let t = self.transport.clone();
        Updater::with_transport(&self.meta, "mem://repo/metadata", Some("mem://repo/targets"), Config::default(), t)
            .unwrap()
    }

    fn target_fetches(&self) -> usize {
        self.transport.log().iter().filter(|u| u.contains("/targets/")).count()
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn download_verified_fetches_once_then_reuses_the_verified_copy() {
    let f = fixture(false);
    let dl = f.tmp.path().join("dl");
    let mut up = f.updater();
    let first = up.download_verified(&dl, TARGET).unwrap();
    assert!(!first.cached);
    assert_eq!(first.path, Updater::local_path(&dl, TARGET));
    assert_eq!(first.info.length, BYTES.len() as u64);
    assert_eq!(std::fs::read(&first.path).unwrap(), BYTES);
    assert_eq!(f.target_fetches(), 1);
    drop(up); // releases the metadata directory's lock for the next updater

    let again = f.updater().download_verified(&dl, TARGET).unwrap();
    assert!(again.cached);
    assert_eq!(again.path, first.path);
    assert_eq!(f.target_fetches(), 1, "a verified copy must not be fetched again");
}

#[test]
fn download_verified_to_replaces_a_copy_that_does_not_match() {
    let f = fixture(false);
    let dest = f.tmp.path().join("out").join("a.tar.gz");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, b"the bytes of b").unwrap();
    let d = f.updater().download_verified_to(&dest, TARGET).unwrap();
    assert!(!d.cached);
    assert_eq!(std::fs::read(&dest).unwrap(), BYTES);
    assert_eq!(names_in(dest.parent().unwrap()), ["a.tar.gz"]);
}

#[test]
fn download_verified_names_a_target_the_metadata_does_not_list() {
    let f = fixture(false);
    match f.updater().download_verified(&f.tmp.path().join("dl"), "pkgs/nope-1.0.tar.gz") {
        Err(Error::TargetNotFound(t)) => assert_eq!(t, "pkgs/nope-1.0.tar.gz"),
        other => panic!("expected TargetNotFound, got {other:?}"),
    }
    assert_eq!(f.target_fetches(), 0);
}

#[test]
fn a_verified_temp_file_is_readable_then_persisted_or_removed() {
    let f = fixture(false);
    let mut up = f.updater();
    let info = up.get_target_info(TARGET).unwrap().unwrap();
    let work = f.tmp.path().join("work");

    let v = up.download_target_temp(&work, TARGET, &info).unwrap();
    assert_eq!((v.target(), v.info().length), (TARGET, BYTES.len() as u64));
    assert!(v.path().starts_with(&work));
    let mut got = Vec::new();
    v.reopen().unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, BYTES);
    drop(v);
    assert!(names_in(&work).is_empty(), "dropping a verified temp file removes it");

    let v = up.download_target_temp(&work, TARGET, &info).unwrap();
    let dest = work.join("a-1.0.tar.gz");
    v.persist(&dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), BYTES);
    assert_eq!(names_in(&work), ["a-1.0.tar.gz"]);
}

#[test]
fn tampered_bytes_never_leave_the_temp_file() {
    let f = fixture(true);
    let mut up = f.updater();
    let info = up.get_target_info(TARGET).unwrap().unwrap();
    let work = f.tmp.path().join("work");
    assert!(matches!(up.download_target_temp(&work, TARGET, &info), Err(Error::TargetMismatch { .. })));
    assert!(names_in(&work).is_empty());
    let dl = f.tmp.path().join("dl");
    assert!(matches!(up.download_verified(&dl, TARGET), Err(Error::TargetMismatch { .. })));
    assert!(names_in(&dl).is_empty());
}

/// `download_target_into` (the mirror's resume journal): the verified bytes at exactly the
/// path given; what was there is replaced, never written through (a name linked to it keeps
/// its bytes); tampered bytes leave nothing at the path, not even what was there.
#[test]
fn a_download_into_a_path_replaces_what_was_there_and_leaves_nothing_when_refused() {
    for tamper in [false, true] {
        let f = fixture(tamper);
        let mut up = f.updater();
        let info = up.get_target_info(TARGET).unwrap().unwrap();
        let work = f.tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let (path, other) = (work.join("journal-name"), work.join("other"));
        std::fs::write(&other, b"another file's bytes").unwrap();
        std::fs::hard_link(&other, &path).unwrap();
        let mut seen = 0;
        let r = up.target_fetcher().download_target_into(&path, TARGET, &info, &mut |n| seen = n);
        assert_eq!(std::fs::read(&other).unwrap(), b"another file's bytes", "tamper {tamper}");
        if tamper {
            match r {
                Err(Error::TargetMismatch { target, .. }) => assert_eq!(target, TARGET),
                other => panic!("expected TargetMismatch, got {other:?}"),
            }
            assert!(!path.exists(), "nothing is left at the path");
            assert_eq!(names_in(&work), ["other"]);
        } else {
            r.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), BYTES);
            assert_eq!(seen, BYTES.len() as u64);
            assert_eq!(names_in(&work), ["journal-name", "other"]);
        }
    }
}
