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
    _lock: packman_fs::LockFile,
    /// Files were renamed into the directory since it was last fsynced.
    unsynced: std::cell::Cell<bool>,
}

impl MetadataStore {
    /// Opens (creating if needed) `dir` and waits for its lock.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = packman_fs::lock_exclusive(&dir.join(".lock"))?;
        Ok(MetadataStore { dir: dir.to_path_buf(), _lock: lock, unsynced: std::cell::Cell::new(false) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, role: &str) -> PathBuf {
        self.dir.join(layout::metadata_file(role, None))
    }

    pub fn read(&self, role: &str) -> std::io::Result<Vec<u8>> {
        fs::read(self.path_of(role))
    }

    /// Replaces a role's file atomically (its content fsynced before the rename). The
    /// directory itself is fsynced once per batch by [`MetadataStore::flush`]: until then a
    /// crash may keep the previous file, which is itself a complete, verified file.
    pub fn write(&self, role: &str, bytes: &[u8]) -> Result<(), Error> {
        use packman_fs::{Access, DirSync};
        packman_fs::write_atomic_with(&self.path_of(role), bytes, Access::Public, DirSync::Caller)?;
        self.unsynced.set(true);
        Ok(())
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
