//! Two clients sharing one metadata directory must not corrupt it: the store's lock
//! serialises them, and every write is atomic.

use std::sync::{Arc, Barrier};

use packman_client::{Config, MetadataStore, Updater};
use packman_repo::RepoBuilder;
use packman_testkit::TestServer;
use packman_tuf::OffsetDateTime;

#[test]
fn concurrent_updaters_on_one_metadata_dir_all_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(4).unwrap();
    for i in 0..8 {
        repo.add_target(&format!("p/{i}.txt"), format!("file {i}").as_bytes()).unwrap();
    }
    repo.publish(&repo_dir).unwrap();
    let server = TestServer::serve_dir(&repo_dir).unwrap();
    let meta = tmp.path().join("meta");
    Updater::bootstrap(&meta, &repo.signed_roots[0]).unwrap();
    let (murl, turl) = (format!("{}/metadata", server.url()), format!("{}/targets", server.url()));

    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (meta, murl, turl, barrier) = (meta.clone(), murl.clone(), turl.clone(), barrier.clone());
            let dl = tmp.path().join(format!("dl{t}"));
            std::thread::spawn(move || {
                barrier.wait();
                for round in 0..3 {
                    let mut up = Updater::new(&meta, &murl, Some(&turl), Config::default()).unwrap();
                    let name = format!("p/{}.txt", (t + round) % 8);
                    let info = up.get_target_info(&name).unwrap().unwrap();
                    up.download_target(&dl, &name, &info).unwrap();
                }
            })
        })
        .collect();
    // Publish new versions while the clients run.
    for i in 8..11 {
        repo.add_target(&format!("p/{i}.txt"), b"new").unwrap();
        repo.publish(&repo_dir).unwrap();
    }
    for h in handles {
        h.join().expect("client thread failed");
    }
    let mut up = Updater::new(&meta, &murl, Some(&turl), Config::default()).unwrap();
    up.refresh().unwrap();
    assert_eq!(up.trusted().timestamp().unwrap().signed.version, 4);
    let leftovers: Vec<_> = std::fs::read_dir(&meta)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_store_lock_excludes_a_second_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let first = MetadataStore::open(tmp.path()).unwrap();
    let lock = std::fs::File::options().write(true).open(tmp.path().join(".lock")).unwrap();
    assert!(matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
    drop(first);
    lock.try_lock().unwrap();
}
