//! Local trusted metadata: one unversioned file per role (`root.json`, `timestamp.json`,
//! delegated roles percent-encoded), replaced atomically (temp file in the same directory,
//! fsync, rename, fsync of the directory), under an exclusive lock held for the store's
//! lifetime so two clients cannot interleave their updates.

use std::fs;
use std::path::{Path, PathBuf};

use packman_tuf::layout;

use crate::Error;

pub struct MetadataStore {
    dir: PathBuf,
    /// `None` for a read-only store, which writes nothing.
    _lock: Option<packman_fs::LockFile>,
    /// Files were renamed into the directory since it was last fsynced.
    unsynced: std::cell::Cell<bool>,
    /// Roles a read-only store no longer reads ([`MetadataStore::remove`]).
    removed: std::cell::RefCell<Vec<String>>,
    /// Writes skip fsync: see [`MetadataStore::set_scratch`].
    scratch: std::cell::Cell<bool>,
}

impl MetadataStore {
    /// Opens (creating if needed) `dir` and waits for its lock.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = packman_fs::lock_exclusive(&dir.join(".lock"))?;
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            _lock: Some(lock),
            unsynced: Default::default(),
            removed: Default::default(),
            scratch: Default::default(),
        })
    }

    /// As [`MetadataStore::open`] if the lock is free now, else [`MetadataStore::open_read_only`]
    /// (never a wait): taking the lock and choosing are one step, so no other process can
    /// take it in between.
    pub fn open_or_read_only(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(match packman_fs::try_lock_exclusive(&dir.join(".lock"))? {
            Some(lock) => MetadataStore {
                dir: dir.to_path_buf(),
                _lock: Some(lock),
                unsynced: Default::default(),
                removed: Default::default(),
                scratch: Default::default(),
            },
            None => Self::open_read_only(dir),
        })
    }

    /// `dir` read without its lock, for a reader while another process (a proxy) holds it:
    /// every file is replaced atomically, so each read sees a whole, verified file. Writes
    /// are skipped: what the reader verifies anew is kept in memory only.
    pub fn open_read_only(dir: &Path) -> Self {
        MetadataStore {
            dir: dir.to_path_buf(),
            _lock: None,
            unsynced: Default::default(),
            removed: Default::default(),
            scratch: Default::default(),
        }
    }

    pub fn is_read_only(&self) -> bool {
        self._lock.is_none()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, role: &str) -> PathBuf {
        self.dir.join(layout::metadata_file(role, None))
    }

    pub fn read(&self, role: &str) -> std::io::Result<Vec<u8>> {
        if self.removed.borrow().iter().any(|r| r == role) {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        fs::read(self.path_of(role))
    }

    /// Stops trusting a role's file: deleted (a missing one is fine), or for a read-only
    /// store, no longer read.
    pub fn remove(&self, role: &str) -> Result<(), Error> {
        if self.is_read_only() {
            self.removed.borrow_mut().push(role.into());
            return Ok(());
        }
        let path = self.path_of(role);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        }
    }

    /// Replaces a role's file atomically (its content fsynced before the rename). The
    /// directory itself is fsynced once per batch by [`MetadataStore::flush`]: until then a
    /// crash may keep the previous file, which is itself a complete, verified file.
    pub fn write(&self, role: &str, bytes: &[u8]) -> Result<(), Error> {
        use packman_fs::{Access, DirSync};
        if self.is_read_only() {
            return Ok(());
        }
        if self.scratch.get() {
            packman_fs::write_atomic_batch(&self.path_of(role), bytes, packman_fs::Durability::detect())?;
            return Ok(());
        }
        packman_fs::write_atomic_with(&self.path_of(role), bytes, Access::Public, DirSync::Caller)?;
        self.unsynced.set(true);
        Ok(())
    }

    /// Marks the directory scratch: nothing relies on it surviving a crash (a mirror's
    /// staging copy, whose verified bytes are written durably elsewhere), so writes stay
    /// atomic but skip their fsyncs.
    pub fn set_scratch(&self) {
        self.scratch.set(true);
    }

    /// Makes the renames of earlier writes durable.
    pub fn flush(&self) -> Result<(), Error> {
        if self.unsynced.replace(false) {
            packman_fs::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Drop for MetadataStore {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_store_reads_without_the_lock_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let writer = MetadataStore::open(d.path()).unwrap();
        writer.write("root", b"one").unwrap();
        // The writer holds the lock: a reader still reads, and cannot change anything.
        let reader = MetadataStore::open_read_only(d.path());
        assert_eq!(reader.read("root").unwrap(), b"one");
        reader.write("root", b"two").unwrap();
        reader.write("timestamp", b"t").unwrap();
        assert_eq!(writer.read("root").unwrap(), b"one");
        assert!(writer.read("timestamp").is_err());
        reader.remove("root").unwrap();
        assert!(reader.read("root").is_err());
        assert_eq!(writer.read("root").unwrap(), b"one");
    }

    #[test]
    fn write_replaces_content_and_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(d.path()).unwrap();
        store.write("root", b"one").unwrap();
        store.write("root", b"two").unwrap();
        assert_eq!(store.read("root").unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}"); // root.json and .lock
    }
}
