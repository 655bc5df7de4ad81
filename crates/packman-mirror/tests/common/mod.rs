//! The upstream several mirror tests sync from: a RepoBuilder repository (4 succinct bins,
//! an sdist and a plain file) published into a temp directory and read over file://.
#![allow(dead_code)]

use std::path::PathBuf;

use packman_client::file_url;
use packman_mirror::SyncOptions;
use packman_repo::RepoBuilder;
use packman_tuf::OffsetDateTime;

pub struct Upstream {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub repo: RepoBuilder,
}

impl Upstream {
    pub fn new() -> Upstream {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("upstream");
        let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
        repo.add_target("packages/p/p-1.0.tar.gz", b"sdist of p 1.0").unwrap();
        repo.add_target("docs/readme.txt", b"read me").unwrap();
        repo.publish(&dir).unwrap();
        Upstream { tmp, dir, repo }
    }

    /// Adds (or replaces) a target and publishes.
    pub fn add(&mut self, path: &str, data: &[u8]) {
        self.repo.add_target(path, data).unwrap();
        self.repo.publish(&self.dir).unwrap();
    }

    /// Sync options for this upstream, trusting its first root.
    pub fn opts(&self) -> SyncOptions {
        let mut o = SyncOptions::from_base(&file_url(&self.dir, true));
        o.root = Some(self.repo.signed_roots[0].clone());
        o
    }
}
