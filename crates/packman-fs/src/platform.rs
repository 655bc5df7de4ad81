//! The only platform-specific calls in packman: each Linux-only one is behind
//! `cfg(target_os = "linux")` with a portable fallback, and [`Durability`] picks between
//! them at run time, so the fallbacks run (and are tested) on Linux too.

use std::fs::File;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use crate::Error;

/// How a batch of written files is made durable, and whether the Linux-only hints and
/// renames are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One `syncfs` per filesystem (Linux): writes every dirty file and directory of the
    /// filesystem at once, flushing the disk's cache twice instead of once per file. Read-ahead
    /// and writeback hints and `renameat2(RENAME_NOREPLACE)` are used too.
    Syncfs,
    /// Portable: an fsync of each file written and of each directory that changed; hints
    /// do nothing, and renames that must not replace go through a hard link.
    PerFile,
}

/// The environment variable that makes [`Durability::detect`] choose the portable calls
/// on Linux too (`PACKMAN_PORTABLE_FS=1`), so tests and CI exercise them.
pub const PORTABLE_ENV: &str = "PACKMAN_PORTABLE_FS";

impl Durability {
    /// [`Durability::Syncfs`] on Linux unless `PACKMAN_PORTABLE_FS=1`; elsewhere
    /// [`Durability::PerFile`].
    pub fn detect() -> Durability {
        let portable = std::env::var_os(PORTABLE_ENV).is_some_and(|v| v == "1");
        if cfg!(target_os = "linux") && !portable {
            Durability::Syncfs
        } else {
            Durability::PerFile
        }
    }
}

/// One `syncfs` for each filesystem `dirs` are on (normally one). Only
/// [`Durability::Syncfs`] mode calls this; elsewhere than Linux it fails as unsupported.
#[cfg(target_os = "linux")]
pub(crate) fn syncfs_all(dirs: &[PathBuf]) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let mut done = Vec::new();
    for d in dirs {
        let f = File::open(d).map_err(|e| Error::new(d, e))?;
        let dev = f.metadata().map_err(|e| Error::new(d, e))?.dev();
        if !done.contains(&dev) {
            rustix::fs::syncfs(&f).map_err(|e| Error::new(d, e.into()))?;
            done.push(dev);
        }
    }
    Ok(())
}

/// `syncfs` through an open descriptor of a directory on the filesystem: reports writeback
/// errors of the filesystem since `fd` was opened. Linux only; elsewhere unsupported.
pub(crate) fn syncfs_fd(fd: &File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    return rustix::fs::syncfs(fd).map_err(Into::into);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "syncfs is Linux-only: use Durability::PerFile"))
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn syncfs_all(dirs: &[PathBuf]) -> Result<(), Error> {
    let at = dirs.first().map_or(Path::new("."), |d| d.as_path());
    Err(Error::new(
        at,
        std::io::Error::new(std::io::ErrorKind::Unsupported, "syncfs is Linux-only: use Durability::PerFile"),
    ))
}

/// Asks the kernel to read `len` bytes of `f` from `offset` (to the end if `None`) into the
/// page cache now, for a read or partial-page rewrite soon after. Only a hint: errors are
/// ignored, and it does nothing in [`Durability::PerFile`] mode or off Linux.
pub fn read_ahead(mode: Durability, f: &File, offset: u64, len: Option<NonZeroU64>) {
    if mode != Durability::Syncfs {
        return;
    }
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(f, offset, len, rustix::fs::Advice::WillNeed);
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

/// Starts writing `f`'s dirty pages to disk without waiting (`sync_file_range(WRITE)`), so
/// a later sync finds them on their way. Only a head start: errors leave the pages dirty
/// for the sync, which reports them. Does nothing in [`Durability::PerFile`] mode or off
/// Linux. Why an FFI call (rustix does not wrap it) is worth its `unsafe`: measured, it cut
/// the publish's first `syncfs` to about a third, ahead of the alternatives tried (figures:
/// benches/README, "Starting writeback as each file is written").
pub fn start_writeback(mode: Durability, f: &File) {
    if mode != Durability::Syncfs {
        return;
    }
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range reads no memory of this process (no pointers), and `f`
        // is an open descriptor for the whole call. It is only a head start: an error
        // (ENOSYS, EIO, ...) leaves the pages dirty for the commit's sync, which writes
        // them and reports any error.
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Renames `from` to `to`, failing with `AlreadyExists` rather than replacing a file at
/// `to`. Linux ([`Durability::Syncfs`] mode): `renameat2(RENAME_NOREPLACE)`, atomic.
/// Portable: a hard link of `from` at `to` (which fails if `to` exists, atomically: no
/// check-then-rename race with another process creating `to`), then `from` removed. Not
/// one step: a crash in between leaves the file under both names (a leftover, never a lost
/// or replaced file), and during it the file has two links. Both need `from` and `to` on one
/// filesystem, as any rename does; filesystems without hard links fail the portable way.
pub fn rename_noreplace(mode: Durability, from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if mode == Durability::Syncfs {
        return rustix::fs::renameat_with(
            rustix::fs::CWD,
            from,
            rustix::fs::CWD,
            to,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(std::io::Error::from);
    }
    let _ = mode;
    std::fs::hard_link(from, to)?;
    if let Err(e) = std::fs::remove_file(from) {
        // Undo: `to` was not there before.
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    Ok(())
}

/// The name [`exchange`]'s portable fallback parks `b` under while it swaps (`B.exchanging`
/// next to `b`). Only a crash during the fallback leaves it; then `b` is missing and this
/// holds its old content ([`recover_exchange`] puts it back).
pub fn exchange_aside(b: &Path) -> PathBuf {
    let mut name = b.file_name().unwrap_or_default().to_os_string();
    name.push(".exchanging");
    b.with_file_name(name)
}

/// Swaps the names of `a` and `b` (files or directories on one filesystem): afterwards `b`
/// names what `a` named and `a` what `b` named. Returns whether the swap was atomic.
///
/// Linux ([`Durability::Syncfs`] mode): `renameat2(RENAME_EXCHANGE)`, one atomic step: a
/// reader opening a path under `b` finds the old tree or the new one, never neither nor a
/// mix. Portable (and Linux filesystems without `RENAME_EXCHANGE`): three renames, `b` to
/// [`exchange_aside`], `a` to `b`, the aside to `a`. Window: between the first two renames
/// (two syscalls, microseconds) `b` does not exist, so readers get "not found" there; they
/// never see a mix of old and new. A crash in that window leaves `b` missing and its old
/// content at the aside name: [`recover_exchange`] undoes it.
pub fn exchange(mode: Durability, a: &Path, b: &Path) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    if mode == Durability::Syncfs {
        match rustix::fs::renameat_with(rustix::fs::CWD, a, rustix::fs::CWD, b, rustix::fs::RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(true),
            // Not supported by this filesystem (or kernel): the portable way.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = mode;
    let aside = exchange_aside(b);
    std::fs::rename(b, &aside)?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(e);
    }
    std::fs::rename(&aside, a)?;
    Ok(false)
}

/// After a crash inside [`exchange`]'s portable fallback: if `b` is missing and its aside
/// name exists, renames it back (the state before the exchange). Returns whether it did.
pub fn recover_exchange(b: &Path) -> std::io::Result<bool> {
    let aside = exchange_aside(b);
    if std::fs::symlink_metadata(b).is_err() && std::fs::symlink_metadata(&aside).is_ok() {
        std::fs::rename(&aside, b)?;
        return Ok(true);
    }
    Ok(false)
}

/// Whether two metadata describe the same file (one inode under two names), where the
/// platform tells (unix: device and inode).
#[cfg(unix)]
pub fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    Some(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(not(unix))]
pub fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> Option<bool> {
    None
}

/// The number of hard links to the file `m` describes, where the platform tells (unix).
#[cfg(unix)]
pub fn link_count(m: &std::fs::Metadata) -> Option<u64> {
    Some(std::os::unix::fs::MetadataExt::nlink(m))
}

#[cfg(not(unix))]
pub fn link_count(_: &std::fs::Metadata) -> Option<u64> {
    None
}

/// fsync a directory. Unix: through an open handle of it. Elsewhere (Windows cannot open a
/// directory as a file to flush it; NTFS journals its directory changes) nothing.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // Still report a directory that is not there, as on unix.
    std::fs::metadata(dir).map(drop)
}

pub(crate) fn public_permissions(b: &mut tempfile::Builder) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = b;
}

pub(crate) fn public_mode(o: &mut std::fs::OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, 0o644);
    #[cfg(not(unix))]
    let _ = o;
}

#[cfg(unix)]
pub(crate) fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
pub(crate) fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::metadata(dir).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [Durability; 2] = [Durability::Syncfs, Durability::PerFile];

    fn linux_or_portable() -> Vec<Durability> {
        MODES.into_iter().filter(|m| cfg!(target_os = "linux") || *m == Durability::PerFile).collect()
    }

    #[test]
    fn detect_follows_the_platform_and_the_variable() {
        let expected = if cfg!(target_os = "linux") && std::env::var_os(PORTABLE_ENV).is_none_or(|v| v != "1") {
            Durability::Syncfs
        } else {
            Durability::PerFile
        };
        assert_eq!(Durability::detect(), expected);
    }

    #[test]
    fn rename_noreplace_renames_but_never_replaces() {
        for mode in linux_or_portable() {
            let d = tempfile::tempdir().unwrap();
            let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
            std::fs::write(&a, b"A").unwrap();
            std::fs::write(&b, b"B").unwrap();
            let err = rename_noreplace(mode, &a, &b).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{mode:?}");
            assert_eq!(std::fs::read(&a).unwrap(), b"A", "{mode:?}");
            assert_eq!(std::fs::read(&b).unwrap(), b"B", "{mode:?}");
            rename_noreplace(mode, &a, &c).unwrap();
            assert!(!a.exists(), "{mode:?}");
            assert_eq!(std::fs::read(&c).unwrap(), b"A", "{mode:?}");
            #[cfg(unix)]
            assert_eq!(link_count(&std::fs::metadata(&c).unwrap()), Some(1), "{mode:?}");
            let err = rename_noreplace(mode, &a, &d.path().join("d")).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{mode:?}");
        }
    }

    /// The hints change nothing a reader sees, in either mode.
    #[test]
    fn hints_leave_content_alone() {
        use std::io::Write;
        for mode in linux_or_portable() {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("f");
            let mut f = crate::create_public(&p).unwrap();
            f.write_all(&[7u8; 20_000]).unwrap();
            start_writeback(mode, &f);
            read_ahead(mode, &f, 4096, NonZeroU64::new(8192));
            read_ahead(mode, &f, 0, None);
            drop(f);
            assert_eq!(std::fs::read(&p).unwrap(), vec![7u8; 20_000]);
        }
    }

    #[test]
    fn exchange_swaps_two_directories_in_either_mode() {
        for mode in linux_or_portable() {
            let d = tempfile::tempdir().unwrap();
            let (a, b) = (d.path().join("new"), d.path().join("metadata"));
            std::fs::create_dir(&a).unwrap();
            std::fs::create_dir(&b).unwrap();
            std::fs::write(a.join("f"), b"new").unwrap();
            std::fs::write(b.join("f"), b"old").unwrap();
            let atomic = exchange(mode, &a, &b).unwrap();
            assert_eq!(atomic, mode == Durability::Syncfs && cfg!(target_os = "linux"), "{mode:?}");
            assert_eq!(std::fs::read(b.join("f")).unwrap(), b"new", "{mode:?}");
            assert_eq!(std::fs::read(a.join("f")).unwrap(), b"old", "{mode:?}");
            assert!(!exchange_aside(&b).exists());
            // A crash in the portable window: b missing, its old content aside.
            std::fs::rename(&b, exchange_aside(&b)).unwrap();
            assert!(recover_exchange(&b).unwrap());
            assert_eq!(std::fs::read(b.join("f")).unwrap(), b"new");
            assert!(!recover_exchange(&b).unwrap());
        }
    }

    #[test]
    fn syncfs_all_is_linux_only() {
        let d = tempfile::tempdir().unwrap();
        let r = syncfs_all(&[d.path().to_path_buf()]);
        assert_eq!(r.is_ok(), cfg!(target_os = "linux"));
    }

    #[cfg(unix)]
    #[test]
    fn link_count_counts_links() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        assert_eq!(link_count(&std::fs::metadata(&a).unwrap()), Some(1));
        std::fs::hard_link(&a, d.path().join("b")).unwrap();
        assert_eq!(link_count(&std::fs::metadata(&a).unwrap()), Some(2));
    }
}
