//! Files written together and made durable together, so that the timestamp leading to them
//! is put in place only once they are.
//!
//! New files (new metadata versions, content-addressed targets) are written straight to
//! their final names: nothing refers to them until the timestamp is replaced, and a crash
//! before then leaves a file the next publish of the same version overwrites (targets are
//! checked by hash before being reused). The commit makes them durable with one `syncfs` per
//! filesystem, renames the timestamp (written to a temp file: it replaces the one clients
//! read) and the plain-name links, and makes those renames durable with a second `syncfs`.
//! Files nothing leads to any more are rewritten as the batch's new ones rather than
//! deleted (see [`Batch::recycle`]): freeing a file's blocks waits for the disk (for a
//! discard, with the `discard` mount option). Files the commit replaces are first linked
//! into a graveyard directory for the next publish to rewrite (see [`Batch::graveyard`]);
//! what is left over is deleted on a thread of its own (see [`Batch::remove`]).
//!
//! Why `syncfs` and not an `fsync` per file: on ext4 each `fsync` writes the file, then its
//! inode block, then flushes the disk's cache, one after the other, and a one-wheel add has
//! a dozen files and half a dozen directories. `syncfs` writes them all and flushes twice
//! per publish, which is faster than fsyncs even run concurrently, for a one-wheel add and
//! far more so for a publish of every bin (measurements: benches/README.md, "Why the publish path is shaped this way"). The cost: `syncfs` also writes what
//! other processes left dirty on the same filesystem, so a repository on a filesystem
//! others write heavily to waits for their data too (and errors in their data fail the
//! publish). Kernels before 5.8 do not report write errors through `syncfs`.
//!
//! Where `syncfs` is not to be had (other platforms, or `PACKMAN_PORTABLE_FS=1`: see
//! [`packman_fs::Durability`]) the commit fsyncs each file written and each directory that
//! gained or lost an entry instead, then the directories of the renames: the same guarantee,
//! at the cost of one fsync each.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use packman_fs::Durability;

use crate::{io, Error};

/// Above this many files a publish uses bulk mode.
pub(crate) const BULK_FILES: usize = 512;

/// Where a publish's content comes from.
pub(crate) enum Source {
    /// A file to copy.
    File(PathBuf),
    /// Bytes made in memory (pages, core metadata).
    Bytes(Vec<u8>),
}

pub(crate) struct Batch {
    bulk: bool,
    /// How the commit makes the batch durable (see [`Durability`]).
    durability: Durability,
    /// In [`Durability::PerFile`] mode, every file written, for the commit to fsync.
    files: Vec<PathBuf>,
    /// Renamed into place once the batch is durable: hard links to its files (or published
    /// ones) under their plain names, and replacements of files TUF clients do not read.
    links: Vec<(tempfile::TempPath, PathBuf)>,
    /// Directories that gained or lost entries.
    dirs: BTreeSet<PathBuf>,
    /// Made durable with the files, renamed into place once all of them are (the rename then
    /// made durable too): the timestamp, which names the rest.
    last: Option<(tempfile::NamedTempFile, PathBuf)>,
    /// Files to delete after the commit (the commit counts those deleted).
    remove: Vec<PathBuf>,
    /// Files being deleted now, on a thread of their own.
    removing: Option<std::thread::JoinHandle<Result<usize, Error>>>,
    /// Where files the commit replaces are linked first, so the renames replacing them free
    /// no blocks (see [`Batch::graveyard`]).
    graveyard: Option<PathBuf>,
    /// Links earlier commits left in the graveyard: deleted with this batch's old versions
    /// (not counted: they were never published files of their own).
    buried: Vec<PathBuf>,
    /// Old versions to rewrite as new ones, by new path (see [`Batch::recycle`]).
    recycle: std::collections::HashMap<PathBuf, PathBuf>,
    /// How many old versions were rewritten as new ones (counted as removed).
    recycled: usize,
}

/// Creates (or truncates) a published file: readable by everyone, as static hosts serve it
/// as another user.
fn create_published(path: &Path) -> Result<File, Error> {
    Ok(packman_fs::create_public(path)?)
}

impl Batch {
    pub(crate) fn new(bulk: bool, durability: Durability) -> Batch {
        Batch {
            bulk,
            durability,
            files: Vec::new(),
            links: Vec::new(),
            dirs: BTreeSet::new(),
            last: None,
            remove: Vec::new(),
            removing: None,
            graveyard: None,
            buried: Vec::new(),
            recycle: std::collections::HashMap::new(),
            recycled: 0,
        }
    }

    pub(crate) fn is_bulk(&self) -> bool {
        self.bulk
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    /// A batch for another thread to write some of this batch's files in: it takes over
    /// the old files to rewrite as `paths` (see [`Batch::recycle`]). [`Batch::absorb`] takes
    /// it back before the commit.
    pub(crate) fn split_off(&mut self, paths: &[PathBuf]) -> Batch {
        let mut other = Batch::new(self.bulk, self.durability);
        other.graveyard = self.graveyard.clone();
        for p in paths {
            if let Some(old) = self.recycle.remove(p) {
                other.recycle.insert(p.clone(), old);
            }
        }
        other
    }

    /// Takes over what a batch written on another thread holds (see [`Batch::split_off`];
    /// bulk batches are only files written and the directories they are in).
    pub(crate) fn absorb(&mut self, other: Batch) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.links.extend(other.links);
        if other.last.is_some() {
            debug_assert!(self.last.is_none(), "one file goes last");
            self.last = other.last;
        }
        self.remove.extend(other.remove);
        self.buried.extend(other.buried);
        self.recycle.extend(other.recycle);
        self.recycled += other.recycled;
    }

    /// Uses `dir` (beside the published tree, on its filesystem) as the graveyard: a file
    /// the commit replaces (the timestamp, the retired list) is hard-linked there first, so
    /// the rename replacing it only drops a link. Freeing the blocks waits for the disk
    /// (with the `discard` mount option a rename over a small file costs several times one
    /// that frees nothing), and the commit's renames are on the publish's critical path.
    /// The links are deleted by the next
    /// publish's removal thread, which runs while the disk is idle, or rewritten as the
    /// next file of the same name `homes` lists (see [`Batch::recycle`]). Only an
    /// optimisation: where links cannot be made the renames free the blocks themselves.
    pub(crate) fn graveyard(&mut self, dir: PathBuf, homes: &[PathBuf]) {
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for buried in entries.filter_map(|e| Some(e.ok()?.path())) {
                    let name = buried.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default();
                    let home = homes.iter().find(|h| {
                        let home = h.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default();
                        name.strip_suffix(home).is_some_and(|stamp| stamp.ends_with(b"."))
                    });
                    match home {
                        Some(home) if !self.recycle.contains_key(home) => self.recycle(buried, home.clone()),
                        _ => self.buried.push(buried),
                    }
                }
            }
            Err(_) => {
                if std::fs::create_dir(&dir).is_err() {
                    return;
                }
            }
        }
        self.graveyard = Some(dir);
    }

    /// Links `path`, about to be replaced, into the graveyard (see [`Batch::graveyard`]).
    fn bury(&mut self, path: &Path) {
        let (Some(dir), Some(name)) = (&self.graveyard, path.file_name()) else { return };
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut link = std::ffi::OsString::from(format!("{}.", stamp.as_nanos()));
        link.push(name);
        // Not there yet (nothing to free) or no link to be had: the rename frees it.
        if std::fs::hard_link(path, dir.join(link)).is_ok() {
            self.dirs.insert(dir.clone());
        }
    }

    /// Deletes `files`: at once on a thread of its own if `unreferenced` (not led to by the
    /// timestamp being replaced either), else once the new timestamp is in place. Deleting
    /// waits for the disk too (more so with the `discard` mount option), and a publish's
    /// first milliseconds are signing, which leaves the disk idle: deleting then costs the
    /// publish nothing. The graveyard's links go on that thread too.
    pub(crate) fn remove(&mut self, files: Vec<PathBuf>, unreferenced: bool) {
        let (now, later) = if unreferenced { (files, Vec::new()) } else { (Vec::new(), files) };
        self.remove.extend(later);
        if (now.is_empty() && self.buried.is_empty()) || self.removing.is_some() {
            self.remove.extend(now);
            return;
        }
        let buried = std::mem::take(&mut self.buried);
        let mine = now.clone();
        let spawned = std::thread::Builder::new().spawn(move || {
            let removed = remove_all(&mine);
            forget_buried(&buried);
            removed
        });
        match spawned {
            Ok(handle) => self.removing = Some(handle),
            // No thread to be had: deleted after the commit.
            Err(_) => self.remove.extend(now),
        }
    }

    /// Writes `new` by rewriting `old`, a file no timestamp kept leads to any more (an old
    /// version of the same role), instead of deleting one file and creating another: the
    /// old version is renamed to the new name, rewritten in its blocks and cut to length.
    /// Deleting waits for the disk to free the blocks (a discard with the `discard` mount
    /// option), and on ext4 without a journal each new inode is found by scanning past
    /// every inode freed in the last few seconds, which back-to-back publishes pay for in
    /// CPU time. If `new` is never written, `old` is deleted after the commit.
    pub(crate) fn recycle(&mut self, old: PathBuf, new: PathBuf) {
        hint_tail(self.durability, &old);
        self.recycle.insert(new, old);
    }

    /// `old` (see [`Batch::recycle`]) renamed to `new` and opened for rewriting, with its
    /// length (see [`trim`]), or `None` to create `new` afresh (no `old`, or not a plain file
    /// of its own).
    fn reuse(&mut self, old: PathBuf, new: &Path) -> Option<(File, u64)> {
        let dead = self.open_dead(&old)?;
        if std::fs::rename(&old, new).is_err() {
            self.remove.push(old);
            return None;
        }
        // Its directory lost an entry (the new name's gains one: see `written`).
        self.dirs.insert(packman_fs::parent(&old).to_path_buf());
        self.recycled += 1;
        Some(dead)
    }

    /// `old` opened for writing, with its length, if it is a plain file with no other link
    /// (else it is to be deleted, if there).
    fn open_dead(&mut self, old: &Path) -> Option<(File, u64)> {
        let f = std::fs::OpenOptions::new().write(true).open(old).ok()?;
        // Where link counts are unknown, no file is known to be only this one.
        let own = f
            .metadata()
            .ok()
            .filter(|m| m.is_file() && packman_fs::platform::link_count(m) == Some(1))
            .map(|m| m.len());
        if own.is_none() {
            self.remove.push(old.to_path_buf());
        }
        Some((f, own?))
    }

    /// Writes a new versioned metadata file (a name no published metadata refers to yet).
    pub(crate) fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        self.write_parts(path, &[bytes])
    }

    /// [`Batch::write`] of the concatenation of `parts`.
    pub(crate) fn write_parts<B: AsRef<[u8]>>(&mut self, path: &Path, parts: &[B]) -> Result<(), Error> {
        use std::io::Write;
        let reused = self.recycle.remove(path).and_then(|old| self.reuse(old, path));
        let (mut f, old_len) = match reused {
            Some(r) => r,
            None => (create_published(path)?, 0),
        };
        parts.iter().try_for_each(|p| f.write_all(p.as_ref())).map_err(|e| io(path, e))?;
        trim(&f, path, old_len, parts.iter().map(|p| p.as_ref().len() as u64).sum())?;
        self.start_writeback(&f);
        self.written(path, path);
        Ok(())
    }

    /// Writes `src` to `path`, a content-addressed name not yet published (or holding
    /// something else: it is replaced, not edited, so hard links to it keep their bytes).
    /// `len` and `sha256` (hex) are the content's, as listed: a source file that no longer
    /// has them (changed since it was hashed) fails the publish.
    pub(crate) fn put(&mut self, src: &Source, path: &Path, len: u64, sha256: &str) -> Result<(), Error> {
        use std::io::Write;
        let reused = self.recycle.remove(path).and_then(|old| self.reuse(old, path));
        let (mut to, old_len) = match reused {
            Some(r) => r,
            None => {
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path, e)),
                    _ => {}
                }
                (create_published(path)?, 0)
            }
        };
        self.written(path, path);
        let copied = match src {
            Source::File(f) => copy_verified(f, &mut to, path, len, sha256),
            Source::Bytes(b) => to.write_all(b).map_err(|e| io(path, e)),
        };
        let done = copied.and_then(|()| trim(&to, path, old_len, len));
        match done {
            Ok(()) => self.start_writeback(&to),
            Err(_) => {
                // Bytes other than those listed never stay under the name that lists them.
                drop(to);
                let _ = std::fs::remove_file(path);
            }
        }
        done
    }

    /// Starts writing a file of the batch to disk now, without waiting for it (bulk batches
    /// leave it all to the commit): the commit's first sync then finds the data on its way
    /// or written, and waits only for what is left (a head start that beat dropping the
    /// pages or an fdatasync on a thread of its own: see benches/README.md).
    fn start_writeback(&self, f: &File) {
        if self.bulk {
            return;
        }
        packman_fs::platform::start_writeback(self.durability, f);
    }

    /// A file of the batch is written, as `file` (`path` or the temp file that becomes it):
    /// the commit makes it and `path`'s directory durable.
    fn written(&mut self, path: &Path, file: &Path) {
        self.dirs.insert(packman_fs::parent(path).to_path_buf());
        if self.durability == Durability::PerFile {
            self.files.push(file.to_path_buf());
        }
    }

    /// `std::fs::create_dir_all`, with the directories that gained a new one made durable
    /// by the commit.
    pub(crate) fn create_dir_all(&mut self, dir: &Path) -> Result<(), Error> {
        // syncfs writes every directory of the filesystem: nothing to note.
        if self.durability == Durability::Syncfs {
            return std::fs::create_dir_all(dir).map_err(|e| io(dir, e));
        }
        let missing: Vec<PathBuf> = dir.ancestors().take_while(|a| !a.exists()).map(Path::to_path_buf).collect();
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for created in missing {
            self.dirs.insert(packman_fs::parent(&created).to_path_buf());
        }
        Ok(())
    }

    /// Publishes the file at `existing` (same directory) under `path` too, as a hard link
    /// put in place atomically once the batch's files are durable.
    pub(crate) fn link(&mut self, existing: &Path, path: &Path) -> Result<(), Error> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .make_in(dir, |p| std::fs::hard_link(existing, p))
            .map_err(|e| io(path, e))?
            .into_temp_path();
        if self.bulk {
            self.dirs.insert(dir.to_path_buf());
            return tmp.persist(path).map_err(|e| io(path, e.error));
        }
        self.links.push((tmp, path.to_path_buf()));
        Ok(())
    }

    /// Replaces `path`, a file TUF clients do not read, with `bytes` once the batch is durable.
    pub(crate) fn replace(&mut self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let tmp = self.stage(path, bytes)?;
        self.bury(path);
        self.links.push((tmp.into_temp_path(), path.to_path_buf()));
        Ok(())
    }

    /// Like [`Batch::write`], for the file to put in place last (see `last`): it replaces a
    /// published file, so it goes to a temp file first.
    pub(crate) fn write_last(&mut self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        self.last = Some((self.stage(path, bytes)?, path.to_path_buf()));
        self.bury(path);
        Ok(())
    }

    /// A temp file beside `path` holding `bytes` (made durable by the commit): the file
    /// `path` was before the last publish replaced it, if the graveyard has it.
    fn stage(&mut self, path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, Error> {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut reused = None;
        if let Some(old) = self.recycle.remove(path) {
            if let Some((f, old_len)) = self.open_dead(&old) {
                // A fresh temp name, taken by renaming the old file to it (never over another).
                let mode = self.durability;
                let named = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .make_in(dir, |p| packman_fs::platform::rename_noreplace(mode, &old, p));
                match named {
                    Ok(named) => {
                        self.dirs.insert(packman_fs::parent(&old).to_path_buf());
                        reused = Some((tempfile::NamedTempFile::from_parts(f, named.into_temp_path()), old_len))
                    }
                    Err(_) => self.remove.push(old),
                }
            }
        }
        let (mut tmp, old_len) = match reused {
            Some(r) => r,
            None => (crate::published_tempfile(dir)?, 0),
        };
        tmp.write_all(bytes).map_err(|e| io(path, e))?;
        trim(tmp.as_file(), path, old_len, bytes.len() as u64)?;
        self.start_writeback(tmp.as_file());
        self.written(path, tmp.path());
        Ok(tmp)
    }

    /// Everything written is durable under its final name when this returns, the `last`
    /// file put in place after the others were, and the old files are deleted. Returns how
    /// many of those it deleted.
    pub(crate) fn commit(mut self) -> Result<usize, Error> {
        let durable = self.make_durable();
        let early = match self.removing.take() {
            Some(h) => h.join().unwrap_or(Err(Error::WorkerPanicked { task: "deleting old files" })),
            None => Ok(0),
        };
        durable?;
        forget_buried(&std::mem::take(&mut self.buried));
        // Old files no new one was written over after all.
        self.remove.extend(std::mem::take(&mut self.recycle).into_values());
        Ok(early? + self.recycled + remove_all(&self.remove)?)
    }

    fn make_durable(&mut self) -> Result<(), Error> {
        // Round one: every file written, and the directories that gained or lost entries.
        let dirs: Vec<PathBuf> = std::mem::take(&mut self.dirs).into_iter().collect();
        packman_fs::make_durable(self.durability, &std::mem::take(&mut self.files), &dirs)?;
        // Round two: the timestamp, then the plain-name links (not part of what TUF clients
        // read), renamed into place, and made durable.
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        if let Some((tmp, path)) = self.last.take() {
            tmp.persist(&path).map_err(|e| io(&path, e.error))?;
            dirs.insert(path.parent().unwrap_or(Path::new(".")).to_path_buf());
        }
        for (tmp, path) in std::mem::take(&mut self.links) {
            tmp.persist(&path).map_err(|e| io(&path, e.error))?;
            dirs.insert(path.parent().unwrap_or(Path::new(".")).to_path_buf());
        }
        packman_fs::make_durable(self.durability, &[], &dirs.into_iter().collect::<Vec<_>>())?;
        Ok(())
    }
}

/// Ends a rewritten file (see [`Batch::recycle`]) at `len`, its new content's length, if it
/// was `old_len` long before. Rewriting in place and cutting off only what is left beyond the
/// new end frees no block unless the file shrank by one: freeing waits for the disk (a
/// discard with the `discard` mount option), so cutting each file to whole pages first, or
/// deleting and creating it, is slower.
fn trim(f: &File, path: &Path, old_len: u64, len: u64) -> Result<(), Error> {
    if old_len > len {
        f.set_len(len).map_err(|e| io(path, e))?;
    }
    Ok(())
}

/// Asks the kernel to read the last two pages of `path` into the page cache now. A file
/// rewritten in place (see [`trim`]) whose new end falls inside a page of the old content
/// (the new content is about as long: see [`Batch::recycle`]) needs that page read first,
/// and a read from disk then would wait; hinted a few milliseconds ahead, the reads overlap
/// the publish's signing. Errors are left for the rewrite to report.
fn hint_tail(mode: Durability, path: &Path) {
    if mode != Durability::Syncfs {
        return;
    }
    if let Ok(f) = File::open(path) {
        if let Ok(m) = f.metadata() {
            let from = m.len().saturating_sub(8192) & !4095;
            packman_fs::platform::read_ahead(mode, &f, from, std::num::NonZeroU64::new(m.len() - from));
        }
    }
}

/// Copies `from` into `to` (the published `path`), checking on the way that it still has the
/// length and SHA-256 it was listed with: the file was hashed when added, and is read again
/// here, so a change in between (another process rewriting it) would publish bytes other
/// than the signed ones.
fn copy_verified(from: &Path, to: &mut File, path: &Path, len: u64, sha256: &str) -> Result<(), Error> {
    use packman_tuf::target::{for_each_chunk, ReadError, Verifier};
    use std::io::Write;
    let changed = || Error::SourceChanged { path: from.to_path_buf(), length: len, sha256: sha256.to_string() };
    let file = File::open(from).map_err(|e| io(from, e))?;
    let hashes = packman_tuf::Hashes(vec![("sha256".into(), sha256.to_string())]);
    let mut verifier = Verifier::new(Some(len), Some(&hashes)).map_err(|_| changed())?;
    let mut write_error = None;
    let read = for_each_chunk(file, |chunk| {
        verifier.update(chunk)?;
        to.write_all(chunk).map_err(|e| {
            write_error = Some(io(path, e));
            ReadError::Io(std::io::ErrorKind::Other.into())
        })
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    match read {
        Ok(_) => verifier.finish().map_err(|_| changed()),
        Err(ReadError::Mismatch(_)) => Err(changed()),
        Err(ReadError::Io(e)) => Err(io(from, e)),
    }
}

/// Deletes `files`; how many were there. Losing a deletion in a crash only leaves a file
/// behind.
fn remove_all(files: &[PathBuf]) -> Result<usize, Error> {
    if files.len() <= 16 {
        return files.iter().try_fold(0, |n, p| Ok(n + remove(p)? as usize));
    }
    // Re-signing every bin retires thousands of files: more hands.
    let removed = std::sync::atomic::AtomicUsize::new(0);
    parallel_try(files, |p| {
        remove(p).map(|gone| {
            removed.fetch_add(gone as usize, std::sync::atomic::Ordering::Relaxed);
        })
    })?;
    Ok(removed.into_inner())
}

/// Deletes the graveyard's links `files` (failures only leave a link behind, deleted next
/// time).
fn forget_buried(files: &[PathBuf]) {
    files.iter().for_each(|p| drop(std::fs::remove_file(p)));
}

/// Deletes `p`; whether it was there.
fn remove(p: &Path) -> Result<bool, Error> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(p, e)),
    }
}

/// `f` over `items` on up to 16 threads; the first error wins.
fn parallel_try<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<(), Error> + Sync) -> Result<(), Error> {
    let workers = items.len().clamp(1, 16);
    let per = items.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        // The first share runs here: one thread fewer to start.
        let mut chunks = items.chunks(per);
        let own = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks.map(|c| s.spawn(|| c.iter().try_for_each(&f))).collect();
        let mine = own.iter().try_for_each(&f);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Error::WorkerPanicked { task: "deleting old files" })))
            .fold(mine, |acc, r| acc.and(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An old version rewritten as a new one ends up holding exactly the new bytes, whether
    /// it was longer or shorter (across page boundaries too), and is gone under its old
    /// name; with no old file the new one is created; a file with another link is left
    /// alone under that link and not rewritten.
    #[test]
    fn recycled_files_hold_exactly_the_new_bytes() {
        for mode in [Durability::detect(), Durability::PerFile] {
            recycle_in(mode);
        }
    }

    fn recycle_in(mode: Durability) {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        let cases: [(Option<usize>, usize); 6] = [
            (Some(10_000), 5_000),
            (Some(100), 9_000),
            (Some(8192), 8192),
            (Some(9000), 4096),
            (Some(0), 10),
            (None, 300),
        ];
        let mut batch = Batch::new(false, mode);
        for (i, (old, new)) in cases.iter().enumerate() {
            if let Some(n) = old {
                std::fs::write(p(&format!("{i}.old")), vec![b'o'; *n]).unwrap();
            }
            batch.recycle(p(&format!("{i}.old")), p(&format!("{i}.new")));
            let content: Vec<u8> = (0..*new).map(|k| (k % 251) as u8).collect();
            batch.write_parts(&p(&format!("{i}.new")), &[&content[..new / 3], &content[new / 3..]]).unwrap();
        }
        // Another link to the old file: not rewritten, the old name goes with the commit.
        std::fs::write(p("linked.old"), b"shared bytes").unwrap();
        std::fs::hard_link(p("linked.old"), p("elsewhere")).unwrap();
        batch.recycle(p("linked.old"), p("linked.new"));
        batch.write(&p("linked.new"), b"new bytes").unwrap();
        // Never written: the old file is deleted by the commit.
        std::fs::write(p("unused.old"), b"x").unwrap();
        batch.recycle(p("unused.old"), p("unused.new"));
        let removed = batch.commit().unwrap();
        for (i, (_, new)) in cases.iter().enumerate() {
            let content: Vec<u8> = (0..*new).map(|k| (k % 251) as u8).collect();
            assert_eq!(std::fs::read(p(&format!("{i}.new"))).unwrap(), content, "case {i}");
            assert!(!p(&format!("{i}.old")).exists(), "case {i}");
        }
        assert_eq!(std::fs::read(p("linked.new")).unwrap(), b"new bytes");
        assert_eq!(std::fs::read(p("elsewhere")).unwrap(), b"shared bytes");
        assert!(!p("linked.old").exists() && !p("unused.old").exists() && !p("unused.new").exists());
        // Five rewritten, the linked and the unused ones deleted.
        assert_eq!(removed, 7);
    }

    /// In per-file mode the batch knows every file it wrote (temp files under their temp
    /// names, as synced before the renames) and every directory that gained or lost an entry:
    /// what the commit fsyncs in place of syncfs.
    #[test]
    fn per_file_mode_tracks_what_to_sync() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, grave) = (d.path().join("a"), d.path().join("b"), d.path().join("grave"));
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("1.old"), b"dead").unwrap();
        let mut batch = Batch::new(false, Durability::PerFile);
        batch.create_dir_all(&a.join("x/y")).unwrap();
        batch.recycle(b.join("1.old"), a.join("x/y/1.new"));
        batch.write(&a.join("x/y/1.new"), b"new").unwrap();
        batch.put(&Source::Bytes(b"t".to_vec()), &a.join("x/t"), 1, "unchecked for bytes").unwrap();
        std::fs::create_dir(&grave).unwrap();
        batch.graveyard = Some(grave.clone());
        std::fs::write(a.join("ts"), b"old ts").unwrap();
        batch.write_last(&a.join("ts"), b"new ts").unwrap();
        let staged = batch.last.as_ref().unwrap().0.path().to_path_buf();
        assert_eq!(batch.files, [a.join("x/y/1.new"), a.join("x/t"), staged]);
        let dirs: Vec<&Path> = batch.dirs.iter().map(|p| p.as_path()).collect();
        // a/x/y and a/x gained files, a and a/x new directories; b lost one; the graveyard
        // gained the buried timestamp.
        assert_eq!(dirs, [d.path(), &a, &a.join("x"), &a.join("x/y"), &b, &grave]);
        batch.commit().unwrap();
        assert_eq!(std::fs::read(a.join("ts")).unwrap(), b"new ts");
        assert_eq!(std::fs::read(a.join("x/y/1.new")).unwrap(), b"new");
    }
}
