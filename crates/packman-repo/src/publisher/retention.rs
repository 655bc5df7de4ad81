//! What publishes stop publishing: old metadata versions, retired target files, and the dead files rewritten as new ones.

use super::*;
use packman_tuf::layout::{self, RepoPaths};

/// A target file replaced by new content or removed: `targets/<dir>/<sha256>.<name>`
/// stays published while a snapshot that may lead a client to it is kept, then goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Retired {
    pub(super) path: String,
    pub(super) sha256: String,
    /// The newest snapshot version that still (possibly) listed it; `None` until the
    /// publish that unlists it.
    pub(super) last_snapshot: Option<u64>,
}

/// Dead target files (see [`Repository::collect_retired_targets`]) to rewrite as the new
/// target files `plan` writes (see [`Batch::recycle`]), each matched to a new file at least
/// as many 4 KiB blocks long, the longest such: rewriting a longer file would free blocks
/// when it is cut to length, and freeing waits for the disk (longer than creating a new
/// file takes). A wheel add's
/// dead files are its project's pages of three publishes ago, and they become its new
/// pages. Returns the dead files left over, to delete.
pub(super) fn rewrite_dead_targets(batch: &mut Batch, dead: Vec<PathBuf>, plan: &[TargetWrite]) -> Vec<PathBuf> {
    let blocks = |len: u64| len.div_ceil(4096);
    let mut sized: Vec<(u64, PathBuf)> =
        dead.into_iter().map(|p| (std::fs::symlink_metadata(&p).map_or(u64::MAX, |m| m.len()), p)).collect();
    for t in plan.iter().filter(|t| t.write) {
        let fits = sized.iter().enumerate().filter(|(_, (len, _))| blocks(*len) <= blocks(t.len));
        if let Some((i, _)) = fits.max_by_key(|(_, (len, _))| *len) {
            batch.recycle(sized.swap_remove(i).1, t.dest.clone());
        }
    }
    sized.into_iter().map(|(_, p)| p).collect()
}

impl Repository {
    pub(super) fn retire(&mut self, path: &str, sha256: String) {
        self.retired.push(Retired { path: path.to_string(), sha256, last_snapshot: None });
        self.retired_changed = true;
    }

    /// Retired target files that no kept snapshot can lead to any more (snapshots older than
    /// the newest `keep_versions` go in this publish), unless the same content is listed
    /// again: returned, to go with the batch's old versions. The list that remains replaces
    /// the stored one with the batch (losing it in a crash only leaves files behind).
    pub(super) fn collect_retired_targets(&mut self, batch: &mut Batch) -> Result<Vec<PathBuf>, Error> {
        let mut remove = Vec::new();
        let keep = self.settings.keep_versions.max(1);
        let current = self.snapshot.version();
        let mut kept = Vec::with_capacity(self.retired.len());
        for r in std::mem::take(&mut self.retired) {
            let due = r.last_snapshot.is_some_and(|last| last + keep <= current);
            if !due {
                kept.push(r);
                continue;
            }
            self.retired_changed = true;
            let listed_again = self.target(&r.path)?.is_some_and(|t| t.hashes.get("sha256") == Some(&r.sha256));
            if listed_again {
                continue;
            }
            remove.push(RepoPaths::new(&self.dir).hashed_target(&r.path, &r.sha256));
        }
        self.retired = kept;
        if self.retired_changed {
            batch.replace(
                &self.dir.join(RETIRED_FILE),
                &serde_json::to_vec_pretty(&self.retired).expect("serialisable"),
            )?;
            self.retired_changed = false;
        }
        Ok(remove)
    }

    /// Metadata versions older than the newest `keep_versions` of each role just rewritten
    /// (clients that started an update with them have had that many publishes), to remove,
    /// each with the new version of its role.
    pub(super) fn old_versions(&self, bins: &[u64], targets: bool) -> Vec<(PathBuf, PathBuf)> {
        let keep = self.settings.keep_versions.max(1);
        let md = self.dir.join(layout::METADATA_DIR);
        let mut old = Vec::new();
        let mut drop_old = |role: &str, current: u64| {
            if current > keep {
                let name = |v: u64| md.join(layout::metadata_file(role, Some(v)));
                old.push((name(current - keep), name(current)));
            }
        };
        for b in bins {
            drop_old(&self.bin_name(*b), self.bins[b].version());
        }
        if targets {
            drop_old("targets", self.targets.version);
        }
        drop_old("snapshot", self.snapshot.version());
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::testkit::*;

    /// Old versions are deleted (on a thread, while the publish signs, or after it with
    /// `keep_versions` 1), leaving exactly the newest `keep_versions` of each role and a
    /// repository that verifies from the new timestamp.
    #[test]
    fn publishes_keep_the_newest_versions() {
        for (keep, mode) in [1u64, 3].into_iter().flat_map(|k| modes().map(|m| (k, m))) {
            let (now, d, src, repo) = four_bin_repo(mode);
            drop(repo);
            let settings = d.path().join("packman-repo.json");
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
            v["keep_versions"] = keep.into();
            std::fs::write(&settings, serde_json::to_vec(&v).unwrap()).unwrap();
            let mut repo = Repository::open(d.path(), None, now).unwrap();
            repo.set_durability(mode);
            let f = src.path().join("f");
            for i in 0..5 {
                std::fs::write(&f, format!("content {i}")).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                repo.publish(&mut no_pass).unwrap();
            }
            let names: Vec<String> = std::fs::read_dir(d.path().join("metadata"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let count = |role: &str| names.iter().filter(|n| n.ends_with(&format!(".{role}.json"))).count() as u64;
            let bin = repo.bin_for("packages/p/a.tar.gz");
            assert_eq!(count("snapshot"), keep, "keep {keep}: {names:?}");
            assert_eq!(count(&bin), keep, "keep {keep}: {names:?}");
            // The file versions only old snapshots led to went with them.
            let hashed = std::fs::read_dir(d.path().join("targets/packages/p"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().len() > 64)
                .count() as u64;
            assert_eq!(hashed, keep, "keep {keep}");
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, "content 4".len() as u64);
            // The graveyard holds what the last publish replaced (the timestamp before it),
            // not what earlier ones did.
            let buried: Vec<PathBuf> = std::fs::read_dir(d.path().join(GRAVEYARD_DIR))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(".timestamp.json"))
                .collect();
            let version = |p: &Path| {
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()["signed"]["version"]
                    .as_u64()
                    .unwrap()
            };
            assert_eq!(buried.len(), 1, "keep {keep}: {buried:?}");
            assert_eq!(version(&buried[0]) + 1, version(&d.path().join("metadata/timestamp.json")));
        }
    }

    /// Once there are old versions to drop, a publish writes its new snapshot, bin version,
    /// timestamp and target file over files no kept snapshot leads to any more instead of
    /// deleting those and creating new ones (see `Batch::recycle`): every file it writes is
    /// an inode that was there before, and the repository verifies.
    #[cfg(unix)]
    #[test]
    fn publishes_rewrite_dead_files() {
        for mode in modes() {
            use std::os::unix::fs::MetadataExt;
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let inodes = |dir: &Path| -> BTreeSet<u64> {
                let mut out = BTreeSet::new();
                for sub in ["metadata", "targets/packages/p", GRAVEYARD_DIR] {
                    for e in std::fs::read_dir(dir.join(sub)).into_iter().flatten() {
                        out.insert(e.unwrap().metadata().unwrap().ino());
                    }
                }
                out
            };
            let f = src.path().join("f");
            for i in 0..8 {
                let before = inodes(d.path());
                std::fs::write(&f, format!("content {i}")).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                let report = repo.publish(&mut no_pass).unwrap();
                let sha =
                    repo.target("packages/p/a.tar.gz").unwrap().unwrap().hashes.get("sha256").unwrap().to_string();
                let bin = repo.bin_for("packages/p/a.tar.gz");
                let md = d.path().join("metadata");
                let written = [
                    md.join(format!("{}.snapshot.json", repo.snapshot.version())),
                    md.join(format!("{}.{bin}.json", repo.bins[&repo.bin_index("packages/p/a.tar.gz")].version())),
                    md.join("timestamp.json"),
                    d.path().join(format!("targets/packages/p/{sha}.a.tar.gz")),
                ];
                let reused = written.iter().filter(|p| before.contains(&std::fs::metadata(p).unwrap().ino())).count();
                // From the fifth publish on there are dead files of each kind (keep 3).
                if i >= 4 {
                    assert_eq!(reused, written.len(), "publish {i}: {report:?}");
                }
            }
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, "content 7".len() as u64);
        }
    }

    /// A dead target file becomes a new one only if that frees none of its blocks: a 20 KB
    /// file is not rewritten as a 4-byte one (a new file is created, the old one deleted),
    /// but is as another 20 KB one.
    #[cfg(unix)]
    #[test]
    fn dead_files_are_rewritten_only_as_files_as_long() {
        for mode in modes() {
            use std::os::unix::fs::MetadataExt;
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
            let f = src.path().join("f");
            let mut publish = |content: Vec<u8>| {
                let dir = d.path().join("targets/packages/p");
                // Held open, so a file the publish deletes keeps its inode number (else a new
                // file can get the number of one just deleted and pass for a rewritten one).
                let held: Vec<File> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .map(|e| File::open(e.unwrap().path()).unwrap())
                    .collect();
                let before: BTreeSet<u64> = held.iter().map(|f| f.metadata().unwrap().ino()).collect();
                std::fs::write(&f, &content).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                repo.publish(&mut no_pass).unwrap();
                let sha =
                    repo.target("packages/p/a.tar.gz").unwrap().unwrap().hashes.get("sha256").unwrap().to_string();
                before.contains(&ino(&dir.join(format!("{sha}.a.tar.gz"))))
            };
            // Dead 20 KB files from the fifth publish on (keep 3).
            for i in 0..5u8 {
                publish(vec![b'a' + i; 20_000]);
            }
            assert!(!publish(b"tiny".to_vec()), "{mode:?}: a 20 KB dead file was cut down to 4 bytes");
            assert!(publish(vec![b'z'; 20_100]), "{mode:?}: a 20 KB dead file was not rewritten as a 20 KB file");
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, 20_100);
        }
    }
}
