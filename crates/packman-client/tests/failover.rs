//! The updater failing over between mirrors on *metadata* the trust core refuses: a stale
//! mirror offers a timestamp older than the one trusted (rollback), another serves a
//! timestamp whose signature does not verify; the refresh takes the good mirror's, and the
//! transport names each bad mirror and what it did.

use std::sync::Arc;

use packman_client::{Config, DefaultTransport, FailoverTransport, FailureKind, Updater};
use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_tuf::mirrors::MirrorEntry;
use packman_tuf::OffsetDateTime;

fn entry(name: &str, base: &str) -> MirrorEntry {
    MirrorEntry {
        name: name.into(),
        metadata_url: format!("{base}/metadata/"),
        targets_url: format!("{base}/targets/"),
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn refused_metadata_from_one_mirror_moves_on_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (good_dir, stale_dir) = (tmp.path().join("good"), tmp.path().join("stale"));
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    repo.add_target("a.txt", b"a").unwrap();
    repo.publish(&good_dir).unwrap();
    copy_dir(&good_dir, &stale_dir);
    repo.add_target("b.txt", b"b, added in v2").unwrap();
    repo.publish(&good_dir).unwrap();
    let (good, stale, forged) = (
        TestServer::serve_dir(&good_dir).unwrap(),
        TestServer::serve_dir(&stale_dir).unwrap(),
        TestServer::serve_dir(&good_dir).unwrap(),
    );
    forged.set("/metadata/timestamp.json", Behavior::Body(repo.signed_timestamp().unwrap().replace_first_sig()));

    // The client already trusts v2.
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let g = entry("good", &good.url());
    Updater::new(&meta, &g.metadata_url, Some(&g.targets_url), Config::default()).unwrap().refresh().unwrap();

    let t = Arc::new(FailoverTransport::new(Arc::new(DefaultTransport::default()), entry("stale", &stale.url())));
    t.add_mirrors(&[entry("forged", &forged.url()), g]);
    let s = entry("stale", &stale.url());
    let mut up =
        Updater::with_transport(&meta, &s.metadata_url, Some(&s.targets_url), Config::default(), t.clone()).unwrap();
    up.refresh().unwrap();
    assert_eq!(up.trusted().timestamp().unwrap().signed.version, 2);
    let d = up.download_verified(&tmp.path().join("dl"), "b.txt").unwrap();
    assert_eq!(std::fs::read(d.path).unwrap(), b"b, added in v2");

    let f = t.failures();
    let of = |m: &str| f.iter().filter(|x| x.mirror == m).map(|x| (x.kind, x.detail.clone())).collect::<Vec<_>>();
    let stale_f = of("stale");
    assert_eq!(stale_f[0].0, FailureKind::Refused, "{f:#?}");
    assert!(stale_f[0].1.contains("timestamp"), "{f:#?}");
    let forged_f = of("forged");
    assert_eq!(forged_f.len(), 1, "{f:#?}");
    assert_eq!(forged_f[0].0, FailureKind::Refused, "{f:#?}");
    assert!(of("good").is_empty(), "{f:#?}");
}

trait ForgeSig {
    fn replace_first_sig(self) -> Vec<u8>;
}

impl ForgeSig for Vec<u8> {
    /// The same metadata with its first signature's first hex digit changed.
    fn replace_first_sig(mut self) -> Vec<u8> {
        let at = self.windows(7).position(|w| w == b"\"sig\":\"").expect("a signature") + 7;
        self[at] = if self[at] == b'0' { b'1' } else { b'0' };
        self
    }
}
