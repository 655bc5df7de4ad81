//! Durable file operations: atomic replace, directory sync, lock files, and the platform
//! calls behind them.
//!
//! Everything here works on every platform std supports. The faster Linux-only calls
//! (`syncfs`, read-ahead and writeback hints, `renameat2(RENAME_NOREPLACE)`) live in
//! [`platform`], each with a portable fallback chosen at run time through [`Durability`], so
//! the fallbacks are tested on Linux too (`PACKMAN_PORTABLE_FS=1`).
// One audited exception: platform::start_writeback (an FFI call rustix does not wrap).
#![deny(unsafe_code)]

pub mod platform;
mod writeback;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use platform::Durability;
pub use writeback::{BackgroundSync, DEFAULT_EVERY};

/// A file operation that failed: the path it was about and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct Error {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Error {
    pub fn new(path: &Path, source: std::io::Error) -> Error {
        Error { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who may read a file written here (on unix; elsewhere the platform's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// 0644: published files, which static hosts serve as another user.
    Public,
    /// 0600 from the moment the file exists: private keys.
    Private,
}

/// Whether [`write_atomic_with`] also makes the rename durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSync {
    /// fsync the directory after the rename: the new content is durable under its name.
    Now,
    /// Leave it to the caller, who syncs the directory once after several writes (the
    /// content is durable, the rename not yet).
    Caller,
}

/// Replaces `path` with `bytes` atomically and durably: a temp file in the same directory
/// (readable by everyone on unix), fsync, rename over `path`, fsync the directory. Readers
/// see the old file or the new one, never a mix; after a crash, one of the two.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, Access::Public, DirSync::Now)
}

/// [`write_atomic`] with a choice of who may read the file and of who syncs the directory.
pub fn write_atomic_with(path: &Path, bytes: &[u8], access: Access, dir_sync: DirSync) -> Result<()> {
    let dir = parent(path);
    let mut tmp = match access {
        Access::Public => public_tempfile(dir)?,
        // tempfile creates its files 0600.
        Access::Private => {
            tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir).map_err(|e| Error::new(dir, e))?
        }
    };
    tmp.write_all(bytes).map_err(|e| Error::new(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::new(path, e))?;
    tmp.persist(path).map_err(|e| Error::new(path, e.error))?;
    match dir_sync {
        DirSync::Now => sync_dir(dir),
        DirSync::Caller => Ok(()),
    }
}

/// Replaces `path` with `bytes` atomically (temp file, rename) without making anything
/// durable: only the writeback is started ([`platform::start_writeback`]). For a batch the
/// caller makes durable at once ([`make_durable`], one `syncfs` on Linux) before anything
/// relies on it, or for scratch files nothing relies on after a crash. Until then a crash can
/// leave the new name with torn content, so only for files whose reader verifies them or
/// which a crash makes irrelevant.
pub fn write_atomic_batch(path: &Path, bytes: &[u8], mode: Durability) -> Result<()> {
    let dir = parent(path);
    let mut tmp = public_tempfile(dir)?;
    tmp.write_all(bytes).map_err(|e| Error::new(path, e))?;
    platform::start_writeback(mode, tmp.as_file());
    tmp.persist(path).map_err(|e| Error::new(path, e.error))?;
    Ok(())
}

/// Puts a hard link to `existing` at `path` atomically, replacing whatever `path` was: a
/// link under a temp name in `path`'s directory, renamed over `path`. Readers see the old
/// file or the new one. The rename is not made durable (sync the directory after a batch).
/// Both must be on one filesystem.
pub fn link_atomic(existing: &Path, path: &Path) -> Result<()> {
    let dir = parent(path);
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .make_in(dir, |p| std::fs::hard_link(existing, p))
        .map_err(|e| Error::new(path, e))?
        .into_temp_path();
    let tmp_name = tmp.to_path_buf();
    tmp.persist(path).map_err(|e| Error::new(path, e.error))?;
    // rename(2) does nothing when both names are links to one file already: the temp name
    // stays, so remove it.
    match std::fs::remove_file(&tmp_name) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::new(&tmp_name, e)),
        _ => Ok(()),
    }
}

/// The prefix of every temp file made here (a crash can leave one behind).
pub const TEMP_PREFIX: &str = ".tmp-";

/// The directory `path` is in (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync a directory, making the renames, creations and deletions inside it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    platform::sync_dir(dir).map_err(|e| Error::new(dir, e))
}

/// A temp file in `dir` (named `.tmp-…`, deleted unless persisted) for the published tree:
/// readable by everyone (static hosts serve it as another user), unlike tempfile's private
/// default.
pub fn public_tempfile(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(TEMP_PREFIX);
    platform::public_permissions(&mut b);
    b.tempfile_in(dir).map_err(|e| Error::new(dir, e))
}

/// Creates `path` for writing, readable by everyone; fails if something is there already.
pub fn create_new_public(path: &Path) -> Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    platform::public_mode(&mut o);
    o.open(path).map_err(|e| Error::new(path, e))
}

/// Creates (or truncates) `path` for writing, readable by everyone.
pub fn create_public(path: &Path) -> Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    platform::public_mode(&mut o);
    o.open(path).map_err(|e| Error::new(path, e))
}

/// Makes `dir` readable by its owner only (0700 on unix; nothing elsewhere).
pub fn restrict_dir(dir: &Path) -> Result<()> {
    platform::restrict_dir(dir).map_err(|e| Error::new(dir, e))
}

/// An exclusive lock on a lock file, held until this is dropped.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `path` if needed and takes an exclusive lock on it, waiting for another holder
/// (another process, or another handle in this one) to let go.
pub fn lock_exclusive(path: &Path) -> Result<LockFile> {
    let f = File::options().create(true).truncate(false).write(true).open(path).map_err(|e| Error::new(path, e))?;
    f.lock().map_err(|e| Error::new(path, e))?;
    Ok(LockFile { _file: f, path: path.to_path_buf() })
}

/// [`lock_exclusive`] without waiting: `Ok(None)` if someone else holds the lock.
pub fn try_lock_exclusive(path: &Path) -> Result<Option<LockFile>> {
    let f = File::options().create(true).truncate(false).write(true).open(path).map_err(|e| Error::new(path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(LockFile { _file: f, path: path.to_path_buf() })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::new(path, e)),
    }
}

/// Makes `files` and the entries of `dirs` durable: in [`Durability::Syncfs`] mode with one
/// `syncfs` per filesystem `dirs` are on (which writes `files` too, as long as they are on
/// those filesystems), in [`Durability::PerFile`] mode with an fsync of each file, then of
/// each directory. `dirs` must name every directory that gained or lost an entry.
pub fn make_durable(mode: Durability, files: &[PathBuf], dirs: &[PathBuf]) -> Result<()> {
    match mode {
        Durability::Syncfs => platform::syncfs_all(dirs),
        Durability::PerFile => {
            on_threads(files, |p| {
                let f = File::options().write(true).open(p).map_err(|e| Error::new(p, e))?;
                f.sync_all().map_err(|e| Error::new(p, e))
            })?;
            on_threads(dirs, |d| sync_dir(d))
        }
    }
}

/// `f` over `items`, on up to 8 threads when there are many (an fsync mostly waits for the
/// disk, which takes several at once); the first error wins.
fn on_threads<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    if items.len() <= 16 {
        return items.iter().try_for_each(&f);
    }
    let per = items.len().div_ceil(8);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| c.iter().try_for_each(&f))).collect();
        let mut result = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            result = result.and(r);
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        for (i, dir_sync) in [DirSync::Now, DirSync::Caller].into_iter().enumerate() {
            write_atomic_with(&p, format!("v{i}").as_bytes(), Access::Public, dir_sync).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), format!("v{i}").as_bytes());
        }
        write_atomic(&p, b"last").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"last");
        assert_eq!(names(d.path()), ["a.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn access_sets_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        write_atomic(&d.path().join("pub"), b"x").unwrap();
        write_atomic_with(&d.path().join("key"), b"x", Access::Private, DirSync::Now).unwrap();
        assert_eq!(mode(&d.path().join("pub")), 0o644);
        assert_eq!(mode(&d.path().join("key")), 0o600);
        let t = public_tempfile(d.path()).unwrap();
        assert_eq!(mode(t.path()), 0o644);
        assert!(t.path().file_name().unwrap().to_str().unwrap().starts_with(TEMP_PREFIX));
        drop(create_public(&d.path().join("created")).unwrap());
        assert_eq!(mode(&d.path().join("created")), 0o644);
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        restrict_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
    }

    #[test]
    fn link_atomic_replaces_the_name_with_a_link() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        link_atomic(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
        link_atomic(&a, &b).unwrap();
        assert_eq!(names(d.path()), ["a", "b"]);
        #[cfg(unix)]
        assert_eq!(platform::link_count(&std::fs::metadata(&a).unwrap()), Some(2));
        assert!(link_atomic(&d.path().join("missing"), &b).is_err());
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
    }

    #[test]
    fn write_atomic_fails_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("missing/a.json");
        let err = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(err.path, d.path().join("missing"));
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let held = lock_exclusive(&p).unwrap();
        assert_eq!(held.path(), p);
        assert!(try_lock_exclusive(&p).unwrap().is_none(), "a second lock was granted");
        drop(held);
        let again = try_lock_exclusive(&p).unwrap();
        assert!(again.is_some());
    }

    #[test]
    fn make_durable_in_both_modes() {
        for mode in [Durability::detect(), Durability::PerFile] {
            let d = tempfile::tempdir().unwrap();
            let mut files = Vec::new();
            for i in 0..40 {
                let p = d.path().join(format!("{i}"));
                create_public(&p).unwrap().write_all(b"data").unwrap();
                files.push(p);
            }
            make_durable(mode, &files, &[d.path().to_path_buf()]).unwrap();
            // A file that is not there is an error in per-file mode (syncfs names no files).
            let gone = [d.path().join("gone")];
            let r = make_durable(mode, &gone, &[d.path().to_path_buf()]);
            assert_eq!(r.is_err(), mode == Durability::PerFile, "{mode:?}");
            // A directory that is not there is an error in both.
            let err = make_durable(mode, &[], &[d.path().join("nodir")]).unwrap_err();
            assert_eq!(err.path, d.path().join("nodir"));
        }
    }
}
