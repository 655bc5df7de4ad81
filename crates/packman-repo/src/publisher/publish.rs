//! The publish pipeline: signing keys loaded first, target files planned and written, changed bins and targets signed, then the snapshot job and the batch commit.

use super::*;
use packman_tuf::layout;

use layout::plain_copy_wanted;

/// A target file a publish writes (see `Repository::plan_targets`).
pub(super) struct TargetWrite {
    pub(super) src: Source,
    pub(super) dest: PathBuf,
    pub(super) len: u64,
    pub(super) sha: String,
    /// Whether `dest` needs writing (it may hold these bytes already).
    pub(super) write: bool,
    /// The plain name to link to `dest`.
    pub(super) plain: Option<PathBuf>,
}

/// Writes the target files `plan` lists into `batch`.
pub(super) fn write_targets(batch: &mut Batch, plan: Vec<TargetWrite>) -> Result<(), Error> {
    for t in plan {
        if t.write {
            batch.put(&t.src, &t.dest, t.len, &t.sha)?;
        }
        if let Some(plain) = &t.plain {
            batch.link(&t.dest, plain)?;
        }
    }
    Ok(())
}

/// Where signed files go: a path and its bytes.
pub(super) type FileSink<'a> = dyn FnMut(PathBuf, &[u8]) -> Result<(), Error> + 'a;

/// Whether the file at `path` is `length` bytes with this SHA-256 (hex).
pub(super) fn holds(path: &Path, length: u64, sha256: &str) -> bool {
    // A cheap length check first: most files are new.
    std::fs::metadata(path).is_ok_and(|m| m.len() == length)
        && crate::file_matches(path, Some(length), sha256).unwrap_or(false)
}

/// Writes a new versioned metadata file. Versions are always one past what the current
/// snapshot names, so a file already there is a leftover of a publish that crashed before
/// its snapshot was written: no client was ever sent there, and it is replaced.
pub(super) fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes)
}

impl Repository {
    /// Whether anything is waiting to be published.
    pub fn has_changes(&self) -> bool {
        self.targets_dirty || !self.new_targets.is_empty() || self.bins.values().any(|b| b.changed)
    }

    /// Signs and writes every change: target files, changed bins, targets, snapshot and
    /// timestamp. Clients see none of it until the new timestamp is put in place, last, once
    /// everything it leads to is durable. All signing keys are loaded before anything is
    /// written, so a missing key or wrong passphrase leaves the published tree untouched.
    pub fn publish(&mut self, pass: Passphrase) -> Result<PublishReport, Error> {
        let mut report = PublishReport::default();
        let mut bins_dirty: Vec<u64> = self.bins.iter().filter(|(_, b)| b.changed).map(|(n, _)| *n).collect();
        bins_dirty.sort_unstable();
        let targets_dirty = self.targets_dirty;
        // Every key this publish needs, from one reading of the key directories.
        let mut needed: Vec<&str> = vec!["snapshot", "timestamp"];
        needed.extend(targets_dirty.then_some("targets"));
        needed.extend((!bins_dirty.is_empty()).then_some("bins"));
        let mut ids = Vec::new();
        for role in needed {
            ids.extend(self.role_keys(role)?.0);
        }
        self.preload_signers(&ids, pass)?;
        let bin_signers = if bins_dirty.is_empty() { Vec::new() } else { self.role_signers("bins", pass)? };
        let targets_signers = if targets_dirty { self.role_signers("targets", pass)? } else { Vec::new() };
        let snapshot_signers = self.role_signers("snapshot", pass)?;
        let timestamp_signers = self.role_signers("timestamp", pass)?;

        let md = self.dir.join(layout::METADATA_DIR);
        // 0. A new root, if one is ready (all other keys were loaded above, under it).
        if let Some(bytes) = self.pending_root.take() {
            let v = self.root.version;
            write_new(&md.join(layout::metadata_file("root", Some(v))), &bytes)?;
            write_atomic(&md.join(layout::ROOT_FILE), &bytes)?;
            sync_dir(&md)?;
            report.metadata_written.push(layout::metadata_file("root", Some(v)));
            let _ = std::fs::remove_file(self.dir.join("staged/root.json"));
        }
        // 1. New versions of the changed bins and targets, listed in the snapshot.
        let files = self.new_targets.len() * 2 + bins_dirty.len() + 1;
        let mut batch = Batch::new(files > BULK_FILES, self.durability);
        batch.graveyard(self.dir.join(GRAVEYARD_DIR), &[md.join(layout::TIMESTAMP_FILE), self.dir.join(RETIRED_FILE)]);
        let mut written = Vec::new();
        let expires_bins = expiry(self.now, self.settings.expiry_days.bins);
        for b in &bins_dirty {
            let bin = self.bins.get_mut(b).expect("dirty bins are loaded");
            bin.settle();
            bin.bump(expires_bins);
        }
        for b in &bins_dirty {
            let (v, name) = (self.bins[b].version(), self.bin_name(*b));
            self.snapshot.set_meta_version(layout::meta_key(&name), v);
            written.push(layout::metadata_file(&name, Some(v)));
        }
        if targets_dirty {
            self.targets.version += 1;
            self.targets.expires = expiry(self.now, self.settings.expiry_days.targets);
            let v = self.targets.version;
            self.snapshot.set_meta_version(layout::meta_key("targets"), v);
            written.push(layout::metadata_file("targets", Some(v)));
        }
        // 2. Snapshot and timestamp (nothing leads to them yet: the timestamp goes to a temp
        //    file, put in place by the commit once everything it leads to is durable).
        for r in self.retired.iter_mut().filter(|r| r.last_snapshot.is_none()) {
            r.last_snapshot = Some(self.snapshot.version());
        }
        let sv = self.snapshot.version() + 1;
        let snapshot_expires = expiry(self.now, self.settings.expiry_days.snapshot);
        self.snapshot.set_head(sv, snapshot_expires);
        // Versions older than the newest `keep_versions` of each role, and the target files
        // only those led to: deleted from now on while this publish goes on, as neither the
        // new timestamp nor (with `keep_versions` 2 or more) the one it replaces leads there.
        // Deleting and creating files both cost more than rewriting one (see Batch::recycle):
        // with no timestamp left leading to them, old versions become the new ones.
        let unreferenced = self.settings.keep_versions >= 2;
        let rewrite = unreferenced && !batch.is_bulk();
        let mut old = Vec::new();
        for (old_version, new_version) in self.old_versions(&bins_dirty, targets_dirty) {
            if rewrite {
                batch.recycle(old_version, new_version);
            } else {
                old.push(old_version);
            }
        }
        let plan = self.plan_targets(&mut batch, &mut report)?;
        let mut dead = self.collect_retired_targets(&mut batch)?;
        if rewrite {
            dead = rewrite_dead_targets(&mut batch, dead, &plan);
        }
        old.append(&mut dead);
        batch.remove(old, unreferenced);
        // The snapshot and timestamp are signed and written on a thread of their own while
        // this one writes the target files and signs the bins: neither needs the other's
        // output (the snapshot names bin versions, set above), and each half takes about a
        // millisecond of a one-file publish. Bulk publishes sign bins on two threads instead.
        let job = SnapshotJob {
            snapshot: std::mem::replace(
                &mut self.snapshot,
                Snap::Published { canonical: Vec::new(), version: sv, expires: snapshot_expires },
            ),
            timestamp: self.timestamp.clone(),
            version: sv,
            expires: snapshot_expires,
            timestamp_expires: expiry(self.now, self.settings.expiry_days.timestamp),
            root_version: self.root.version,
            md: md.clone(),
        };
        let snapshot_refs: Vec<&Signer> = snapshot_signers.iter().map(|s| &**s).collect();
        let timestamp_refs: Vec<&Signer> = timestamp_signers.iter().map(|s| &**s).collect();
        let done = if batch.is_bulk() {
            let done = job.run(&mut batch, &snapshot_refs, &timestamp_refs)?;
            write_targets(&mut batch, plan)?;
            self.write_bins(&mut batch, &bins_dirty, &bin_signers, &targets_signers)?;
            done
        } else {
            // The target files are written here after the bins: with the rewrites no longer
            // freeing blocks, the bins and target files together take about as long as the
            // snapshot and timestamp, which balances the two threads better than writing the
            // target files on the side thread.
            let paths = vec![md.join(layout::metadata_file("snapshot", Some(sv))), md.join(layout::TIMESTAMP_FILE)];
            let mut side = batch.split_off(&paths);
            let (done, side) = std::thread::scope(|s| {
                let (snapshot_refs, timestamp_refs) = (&snapshot_refs, &timestamp_refs);
                let handle = s.spawn(move || {
                    let done = job.run(&mut side, snapshot_refs, timestamp_refs);
                    (done, side)
                });
                let mine = self
                    .write_bins(&mut batch, &bins_dirty, &bin_signers, &targets_signers)
                    .and_then(|()| write_targets(&mut batch, plan));
                let (done, side) =
                    handle.join().map_err(|_| Error::WorkerPanicked { task: "signing the snapshot and timestamp" })?;
                mine?;
                Ok::<_, Error>((done?, side))
            })?;
            batch.absorb(side);
            done
        };
        (self.snapshot, self.timestamp) = done;
        written.push(layout::metadata_file("snapshot", Some(sv)));
        report.removed = batch.commit()?;
        // Earlier versions staged generated targets here; only a crash left it behind.
        let _ = std::fs::remove_dir_all(self.dir.join(".staging"));
        written.push(layout::TIMESTAMP_FILE.into());
        for b in &bins_dirty {
            self.bins.get_mut(b).expect("loaded").changed = false;
        }
        self.targets_dirty = false;
        report.metadata_written.extend(written);
        Ok(report)
    }

    /// Step 3 of [`Repository::publish`], planned: the new target files, under their
    /// consistent-snapshot names (dir/SHA256.name), and for Python clients reading a static
    /// host, under their plain names too (file names of distributions are immutable, as on
    /// PyPI). [`write_targets`] writes them.
    pub(super) fn plan_targets(
        &mut self,
        batch: &mut Batch,
        report: &mut PublishReport,
    ) -> Result<Vec<TargetWrite>, Error> {
        let td = self.dir.join(layout::TARGETS_DIR);
        let mut plan = Vec::new();
        for (path, src) in std::mem::take(&mut self.new_targets) {
            let bin = self.bin_index(&path);
            let Some(tf) = self.bins.get_mut(&bin).and_then(|b| b.get(&path)) else { continue };
            let sha = tf.hashes.get("sha256").unwrap_or_default().to_string();
            let (d, f) = split_path(&path);
            let dest_dir = td.join(d);
            batch.create_dir_all(&dest_dir)?;
            let dest = td.join(layout::hashed_target(&path, &sha));
            // Content-addressed: a file already there is reused if it holds these bytes
            // (the same content added again), and rewritten if not (a crash mid-write).
            let write = !holds(&dest, tf.length, &sha);
            report.targets_written += usize::from(write);
            // The same bytes under the plain name: a hard link, not a second copy to write
            // and sync.
            let plain = plain_copy_wanted(&path).then(|| dest_dir.join(f));
            plan.push(TargetWrite { src, len: tf.length, sha, dest, write, plain });
        }
        Ok(plan)
    }

    /// Step 4 of [`Repository::publish`]: the changed bins (and targets) signed, into `batch`.
    pub(super) fn write_bins(
        &mut self,
        batch: &mut Batch,
        bins_dirty: &[u64],
        bin_signers: &[Rc<Signer>],
        targets_signers: &[Rc<Signer>],
    ) -> Result<(), Error> {
        let md = self.dir.join(layout::METADATA_DIR);

        // Signing is most of a big publish: in bulk mode (files written straight to their
        // new names, one filesystem sync at the end) it is split over two threads, each
        // writing its files, which is faster than two signing threads handing their files
        // to one writer.
        let bin_signer_refs: Vec<&Signer> = bin_signers.iter().map(|s| &**s).collect();
        let bins = &self.bins;
        let succinct = self.succinct();
        let sign_each = |numbers: &[u64], out: &mut FileSink| {
            // Bins with identical content (all the empty ones at init) are signed once.
            let mut last: Option<(&Bin, Vec<u8>)> = None;
            for n in numbers {
                let b = &bins[n];
                if !matches!(&last, Some((t, _)) if *t == b) {
                    last = Some((b, b.sign(&bin_signer_refs)?));
                }
                let bytes = &last.as_ref().expect("just set").1;
                out(md.join(layout::metadata_file(&succinct.bin_name(*n), Some(b.version()))), bytes)?;
            }
            Ok::<(), Error>(())
        };
        if batch.is_bulk() && bins_dirty.len() >= 64 {
            let locals = on_two_threads("signing bins", bins_dirty, |numbers| {
                let mut local = Batch::new(true, batch.durability());
                sign_each(numbers, &mut |p, b| local.write(&p, b)).map(|()| local)
            })?;
            for local in locals {
                batch.absorb(local);
            }
        } else {
            sign_each(bins_dirty, &mut |p, b| batch.write(&p, b))?;
        }
        if self.targets_dirty {
            let bytes = sign_metadata(&self.targets, &targets_signers.iter().map(|s| &**s).collect::<Vec<_>>())?;
            batch.write(&md.join(layout::metadata_file("targets", Some(self.targets.version))), &bytes)?;
        }
        Ok(())
    }

    /// The next timestamp version, signed.
    pub(super) fn sign_timestamp(&mut self, signers: &[Rc<Signer>]) -> Result<Vec<u8>, Error> {
        let expires = expiry(self.now, self.settings.expiry_days.timestamp);
        let signers: Vec<&Signer> = signers.iter().map(|s| &**s).collect();
        next_timestamp(&mut self.timestamp, expires, self.root.version, &signers)
    }

    pub(super) fn write_timestamp(&mut self, signers: &[Rc<Signer>]) -> Result<(), Error> {
        let bytes = self.sign_timestamp(signers)?;
        let md = self.dir.join(layout::METADATA_DIR);
        write_atomic(&md.join(layout::TIMESTAMP_FILE), &bytes)?;
        sync_dir(&md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::testkit::*;

    /// Distribution files are published under their hash-prefixed and plain names (the
    /// latter a hard link): in a batch that syncs in several chunks, in bulk mode, and when
    /// the hash-prefixed file already exists.
    #[test]
    fn plain_names_link_the_published_bytes() {
        for mode in modes() {
            let (_, d, src, mut repo) = four_bin_repo(mode);
            // 200 files: one batch under the bulk threshold. 300 files: bulk mode. Then 10 of the
            // first again, their plain names removed (as if lost): the hash-prefixed files are
            // already there and are linked again.
            let rounds: [(std::ops::Range<u32>, &str); 3] = [(0..200, "a"), (200..500, "b"), (0..10, "a")];
            for (range, tag) in rounds {
                for i in range.clone() {
                    let _ = std::fs::remove_file(d.path().join(format!("targets/packages/p/{tag}{i}.tar.gz")));
                    let f = src.path().join(format!("{tag}{i}.tar.gz"));
                    std::fs::write(&f, format!("content {i}")).unwrap();
                    repo.add_target(&format!("packages/p/{tag}{i}.tar.gz"), &f, None).unwrap();
                }
                repo.publish(&mut no_pass).unwrap();
                for i in range {
                    let path = format!("packages/p/{tag}{i}.tar.gz");
                    let tf = repo.target(&path).unwrap().unwrap();
                    let dir = d.path().join("targets/packages/p");
                    let plain = std::fs::read(dir.join(format!("{tag}{i}.tar.gz"))).unwrap();
                    let hashed =
                        std::fs::read(dir.join(format!("{}.{tag}{i}.tar.gz", tf.hashes.get("sha256").unwrap())));
                    assert_eq!(plain, format!("content {i}").as_bytes());
                    assert_eq!(hashed.unwrap(), plain);
                }
            }
            let leftovers: Vec<_> = std::fs::read_dir(d.path().join("targets/packages/p"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
    }

    /// A source file rewritten between its add and the publish (same length, other bytes)
    /// fails the publish, naming the file: the published timestamp is unchanged and no file
    /// holds the new bytes under the name listing the old ones. Kept bytes are unaffected.
    #[test]
    fn a_source_changed_before_the_publish_is_refused() {
        for mode in modes() {
            let (_, d, src, mut repo) = four_bin_repo(mode);
            let f = src.path().join("a.tar.gz");
            std::fs::write(&f, "the bytes hashed").unwrap();
            repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
            let sha = repo.target("packages/p/a.tar.gz").unwrap().unwrap().hashes.get("sha256").unwrap().to_string();
            std::fs::write(&f, "other bytes, same").unwrap();
            let ts = std::fs::read(d.path().join("metadata/timestamp.json")).unwrap();
            let err = repo.publish(&mut no_pass).unwrap_err().to_string();
            assert!(err.contains("a.tar.gz") && err.contains("changed while being published"), "{err}");
            assert_eq!(std::fs::read(d.path().join("metadata/timestamp.json")).unwrap(), ts);
            assert!(!d.path().join(format!("targets/packages/p/{sha}.a.tar.gz")).exists());
            // Read into memory when added: published as hashed, whatever the file says now.
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let f = src.path().join("b.tar.gz");
            std::fs::write(&f, "the bytes hashed").unwrap();
            let (tf, bytes) = read_described(&f, 1 << 20).unwrap();
            repo.add_read_target("packages/p/b.tar.gz", &f, tf, bytes).unwrap();
            std::fs::write(&f, "other bytes, same").unwrap();
            repo.publish(&mut no_pass).unwrap();
            let verified = verified_targets(d.path(), now);
            let sha = verified["packages/p/b.tar.gz"].hashes.get("sha256").unwrap().to_string();
            let published = std::fs::read(d.path().join(format!("targets/packages/p/{sha}.b.tar.gz"))).unwrap();
            assert_eq!(published, b"the bytes hashed");
        }
    }

    /// New files go straight to their final names, so a crash can leave a wrong file under
    /// a name the next publish wants: a leftover metadata version is overwritten, and a
    /// content-addressed target of the right length but other bytes is rewritten, not
    /// reused. A target already holding the right bytes is reused (no copy).
    #[test]
    fn leftovers_under_final_names_are_replaced() {
        for mode in modes() {
            let (now, d, src, mut repo) = four_bin_repo(mode);
            let f = src.path().join("a.tar.gz");
            std::fs::write(&f, "the real content").unwrap();
            let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, b"the real content"));
            let dir = d.path().join("targets/packages/p");
            std::fs::create_dir_all(&dir).unwrap();
            let hashed = dir.join(format!("{sha}.a.tar.gz"));
            // A crash's leftovers: same length, other bytes; and the next snapshot version.
            std::fs::write(&hashed, "the fake content").unwrap();
            let next_snapshot = d.path().join(format!("metadata/{}.snapshot.json", repo.snapshot().version + 1));
            std::fs::write(&next_snapshot, "half a snapsh").unwrap();
            repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
            let report = repo.publish(&mut no_pass).unwrap();
            assert_eq!(report.targets_written, 1);
            assert_eq!(std::fs::read(&hashed).unwrap(), b"the real content");
            assert_eq!(std::fs::read(dir.join("a.tar.gz")).unwrap(), b"the real content");
            let verified = verified_targets(d.path(), now);
            assert_eq!(verified["packages/p/a.tar.gz"].length, 16);
            // The same content again: the file is reused, and still right.
            repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
            assert_eq!(repo.publish(&mut no_pass).unwrap().targets_written, 0);
            assert_eq!(std::fs::read(&hashed).unwrap(), b"the real content");
        }
    }

    /// The same publishes from the same repository (keys included) in each durability mode
    /// publish identical trees, byte for byte: one-file publishes (rewriting dead files from
    /// the fifth on), a bulk one, new directories, a removal, a bins key change re-signing
    /// every bin, and a refresh. Both verify.
    #[test]
    fn both_durability_modes_publish_the_same_tree() {
        let now = OffsetDateTime::now_utc();
        let origin = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let opts = InitOptions { bins: 8, ..InitOptions::default() };
        drop(Repository::init(origin.path(), &opts, now).unwrap());
        let publish_in = |mode: Durability| -> tempfile::TempDir {
            let d = tempfile::tempdir().unwrap();
            copy_tree(origin.path(), d.path());
            let mut repo = Repository::open(d.path(), None, now).unwrap();
            repo.set_durability(mode);
            let f = src.path().join(format!("{mode:?}"));
            for i in 0..7 {
                std::fs::write(&f, format!("content {i}")).unwrap();
                repo.add_target("packages/p/a.tar.gz", &f, None).unwrap();
                repo.add_target_bytes(&format!("simple/p{i}/index.html"), format!("page {i}"), None).unwrap();
                repo.publish(&mut no_pass).unwrap();
            }
            for i in 0..300 {
                repo.add_target_bytes(&format!("packages/q{}/q{i}.whl", i % 7), format!("wheel {i}"), None).unwrap();
            }
            repo.publish(&mut no_pass).unwrap();
            assert!(repo.remove_target("packages/q0/q0.whl").unwrap());
            repo.publish(&mut no_pass).unwrap();
            // Not compared: new keys differ. Re-signs every bin (bulk) with the old keys.
            repo.settings.expiry_days.bins = 1;
            repo.now = now + time::Duration::days(30);
            assert!(!repo.refresh(time::Duration::days(2), &mut no_pass).unwrap().is_empty());
            drop(repo);
            verified_targets(d.path(), now + time::Duration::days(30));
            d
        };
        let platform = publish_in(Durability::detect());
        let portable = publish_in(Durability::PerFile);
        let (a, b) = (published_tree(platform.path()), published_tree(portable.path()));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        // Signatures by ECDSA keys differ from signing to signing: metadata compares by its
        // signed part and the keys that signed it, everything else byte for byte.
        let comparable = |path: &Path, bytes: &[u8]| -> serde_json::Value {
            if !path.starts_with("metadata") {
                return serde_json::Value::from(bytes.to_vec());
            }
            let mut env: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            for sig in env["signatures"].as_array_mut().unwrap() {
                sig.as_object_mut().unwrap().remove("sig");
            }
            // And so does the snapshot file the timestamp hashes (each tree verified above).
            if let Some(snapshot) = env["signed"]["meta"].get_mut("snapshot.json") {
                let meta = snapshot.as_object_mut().unwrap();
                meta.remove("hashes");
                meta.remove("length");
            }
            env
        };
        for (path, bytes) in &a {
            assert!(
                comparable(path, &b[path]) == comparable(path, bytes),
                "{} differs between the modes",
                path.display()
            );
        }
        assert!(a.len() > 300, "{}", a.len());
    }
}
