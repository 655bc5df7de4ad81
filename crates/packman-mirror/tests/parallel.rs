//! `SyncOptions::jobs` runs target downloads side by side (measured by a transport that
//! counts fetches in flight), and `SyncOptions::progress` is told every file and byte; with
//! or without syncs in the background (`SyncOptions::writeback_every`), the mirror gets the
//! upstream's bytes.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use packman_client::{file_url, FetchError, FileTransport, Transport};
use packman_mirror::{sync, SyncOptions, SyncProgress};
use packman_repo::RepoBuilder;
use packman_tuf::OffsetDateTime;

/// file://, each target fetch taking 100 ms, counting how many run at once.
struct Slow {
    inner: FileTransport,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Transport for Slow {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        if !url.contains("/targets/") {
            return self.inner.fetch_to(url, max_len, sink);
        }
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        let r = self.inner.fetch_to(url, max_len, sink);
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

#[derive(Default)]
struct Counts {
    files: AtomicUsize,
    total: AtomicU64,
    bytes: AtomicU64,
    done: AtomicUsize,
}

impl SyncProgress for Counts {
    fn start(&self, files: usize, bytes: u64) {
        self.files.store(files, Ordering::SeqCst);
        self.total.store(bytes, Ordering::SeqCst);
    }
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
    fn file_done(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn downloads_run_side_by_side_up_to_jobs_and_progress_sees_every_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
    let mut total = 0;
    let mut files = Vec::new();
    for i in 0..8 {
        let data = format!("target {i} ").repeat(10 + i);
        total += data.len() as u64;
        repo.add_target(&format!("docs/t{i}.txt"), data.as_bytes()).unwrap();
        files.push((format!("docs/t{i}.txt"), data));
    }
    repo.publish(&up).unwrap();
    // Jobs 4 also syncs in the background after every file (the threshold is one byte).
    for (jobs, want_max, every) in [(1, 1, packman_fs::DEFAULT_EVERY), (4, 4, 1)] {
        let slow = Arc::new(Slow { inner: FileTransport::new(Default::default()), now: 0.into(), max: 0.into() });
        let counts = Arc::new(Counts::default());
        let mut o = SyncOptions::from_base(&file_url(&up, true));
        o.root = Some(repo.signed_roots[0].clone());
        o.transport = Some(slow.clone());
        o.jobs = jobs;
        o.progress = Some(counts.clone());
        o.writeback_every = every;
        let dest = tmp.path().join(format!("mirror-{jobs}"));
        let r = sync(&dest, &o).unwrap();
        assert_eq!(r.targets_fetched.len(), 8);
        // The most fetches in flight at once, counted by the transport (not timed: a busy
        // machine made a wall-clock bound fail).
        assert_eq!(slow.max.load(Ordering::SeqCst), want_max, "jobs {jobs}");
        assert_eq!(counts.files.load(Ordering::SeqCst), 8);
        assert_eq!(counts.done.load(Ordering::SeqCst), 8);
        assert_eq!((counts.total.load(Ordering::SeqCst), counts.bytes.load(Ordering::SeqCst)), (total, total));
        for (path, data) in &files {
            let sha256 = packman_tuf::target::describe(data.as_bytes()).hashes.get("sha256").unwrap().to_string();
            let hashed = packman_tuf::layout::hashed_target(path, &sha256);
            assert_eq!(std::fs::read(dest.join("targets").join(hashed)).unwrap(), data.as_bytes(), "jobs {jobs}");
        }
    }
}
