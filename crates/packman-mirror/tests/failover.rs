//! `sync` failing over from the upstream to its mirrors: one down, one stuck (headers, then
//! nothing), one dripping too slowly, one malicious (a tampered target), one good. The sync
//! succeeds with the upstream's bytes and names each bad mirror and what it did; with every
//! source bad it is refused and DEST stays byte-identical.

use std::collections::BTreeMap;

use packman_testkit::tree_state as tree;
use std::path::{Path, PathBuf};
use std::time::Duration;

use packman_client::FailureKind;
use packman_mirror::{sync, sync_with, SyncOptions};
use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_tuf::mirrors::MirrorEntry;
use packman_tuf::{layout, OffsetDateTime};

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

fn entry(name: &str, base: &str) -> MirrorEntry {
    MirrorEntry {
        name: name.into(),
        metadata_url: format!("{base}/metadata/"),
        targets_url: format!("{base}/targets/"),
    }
}

/// A URL where nothing listens.
fn down_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: RepoBuilder,
    stalled: TestServer,
    stuck: TestServer,
    malicious: TestServer,
    good: TestServer,
}

const README: &[u8] = b"read me";

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("upstream");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
    repo.add_target("docs/readme.txt", README).unwrap();
    repo.add_target("packages/p/p-1.0.tar.gz", b"sdist of p 1.0").unwrap();
    repo.publish(&dir).unwrap();
    let evil_dir = tmp.path().join("evil");
    copy_tree(&dir, &evil_dir);
    let stalled = TestServer::serve_dir(&dir).unwrap();
    stalled.set_all(Behavior::Drip(Duration::from_millis(40)));
    let stuck = TestServer::serve_dir(&dir).unwrap();
    stuck.set_all(Behavior::Stall);
    let malicious = TestServer::serve_dir(&evil_dir).unwrap();
    let good = TestServer::serve_dir(&dir).unwrap();
    let s = Setup { _tmp: tmp, dir, repo, stalled, stuck, malicious, good };
    s.tamper(README);
    s
}

impl Setup {
    /// The malicious mirror serves other bytes of the same length for `data`'s file.
    fn tamper(&self, data: &[u8]) {
        let sha = packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
        let path = format!("/targets/{}", layout::hashed_target("docs/readme.txt", &sha));
        self.malicious.set(&path, Behavior::Body(vec![b'X'; data.len()]));
    }

    /// Upstream down; then the stuck (headers, then nothing), stalled (slow drip), malicious
    /// and good mirrors, in that order.
    fn opts(&self, down: &str) -> SyncOptions {
        let mut o = SyncOptions::from_base(down);
        o.root = Some(self.repo.signed_roots[0].clone());
        o.config.fetcher.grace = Duration::from_millis(200);
        o.config.fetcher.read_timeout = Duration::from_secs(2);
        o.mirrors = vec![
            entry("stuck", &self.stuck.url()),
            entry("stalled", &self.stalled.url()),
            entry("malicious", &self.malicious.url()),
            entry("good", &self.good.url()),
        ];
        o
    }
}

#[test]
fn a_sync_fails_over_past_down_stuck_dripping_and_malicious_mirrors_and_names_each() {
    let s = setup();
    let down = down_url();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");
    let r = sync(&dest, &s.opts(&down)).unwrap();
    assert_eq!(r.targets, 2);
    let served: BTreeMap<_, _> =
        tree(&dest).into_iter().filter(|(k, _)| k.starts_with("metadata/") || k.starts_with("targets/")).collect();
    let mut want = tree(&s.dir);
    // The plain name pip uses (the builder writes only hashed names).
    want.insert("targets/packages/p/p-1.0.tar.gz".into(), b"sdist of p 1.0".to_vec());
    assert_eq!(served, want, "the mirror holds the upstream's exact bytes");

    let kinds = |name: &str| r.mirror_failures.iter().filter(|f| f.mirror == name).map(|f| f.kind).collect::<Vec<_>>();
    let upstream = format!("{down}/metadata/");
    assert!(kinds(&upstream).contains(&FailureKind::Unreachable), "{:#?}", r.mirror_failures);
    assert!(kinds("stalled").contains(&FailureKind::TooSlow), "{:#?}", r.mirror_failures);
    assert_eq!(kinds("stuck"), [FailureKind::TooSlow], "{:#?}", r.mirror_failures);
    assert_eq!(kinds("malicious"), [FailureKind::Refused], "{:#?}", r.mirror_failures);
    assert!(kinds("good").is_empty(), "{:#?}", r.mirror_failures);
    let bad = r.mirror_failures.iter().find(|f| f.mirror == "malicious").unwrap();
    assert!(bad.url.ends_with(".readme.txt") && bad.to_string().contains("failed verification"), "{bad}");
    // A failed mirror is tried last from then on: each bad one failed once per kind of
    // fault, not once per file.
    assert!(r.mirror_failures.len() <= 5, "{:#?}", r.mirror_failures);
}

#[test]
fn with_every_source_bad_the_sync_is_refused_and_dest_stays_byte_identical() {
    let mut s = setup();
    let down = down_url();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");
    sync(&dest, &s.opts(&down)).unwrap();
    let before = tree(&dest);

    // A new file upstream; the good mirror goes down too, and the malicious one tampers
    // with the new file.
    let new = b"read me, version 2";
    s.repo.add_target("docs/readme.txt", new).unwrap();
    s.repo.publish(&s.dir).unwrap();
    copy_tree(&s.dir, s.malicious.root());
    s.tamper(new);
    s.good.set_all(Behavior::Status(503));
    let (r, failures) = sync_with(&dest, &s.opts(&down));
    let e = r.unwrap_err();
    assert!(matches!(e, packman_mirror::MirrorError::Upstream(_)), "{e}");
    assert_eq!(tree(&dest), before, "a refused sync changes nothing, trusted state included");
    let kinds: Vec<_> = failures.iter().map(|f| (f.mirror.as_str(), f.kind)).collect();
    assert!(kinds.contains(&("good", FailureKind::Status(503))), "{kinds:?}");
    assert!(kinds.contains(&("malicious", FailureKind::Refused)), "{kinds:?}");
}
