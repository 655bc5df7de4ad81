//! Local trusted metadata: one unversioned file per role (`root.json`, `timestamp.json`,
//! delegated roles percent-encoded), replaced atomically (temp file in the same directory,
//! fsync, rename, fsync of the directory), under an exclusive lock held for the store's
//! lifetime so two clients cannot interleave their updates.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::Error;

/// Python's `urllib.parse.quote(name, safe="")`: the file names python-tuf uses, and the names
/// roles take in URLs. Keeps `/`, `..` and friends out of paths.
pub(crate) const QUOTE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');

pub(crate) fn quote(s: &str) -> String {
    let q = utf8_percent_encode(s, QUOTE).to_string();
    // "." and ".." survive quote(); never let them name a file.
    match q.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => q,
    }
}

pub struct MetadataStore {
    dir: PathBuf,
    _lock: File,
    /// Files were renamed into the directory since it was last fsynced.
    unsynced: std::cell::Cell<bool>,
}

impl MetadataStore {
    /// Opens (creating if needed) `dir` and waits for its lock.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock_path = dir.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        Ok(MetadataStore { dir: dir.to_path_buf(), _lock: lock, unsynced: std::cell::Cell::new(false) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.json", quote(role)))
    }

    pub fn read(&self, role: &str) -> std::io::Result<Vec<u8>> {
        fs::read(self.path_of(role))
    }

    /// Replaces a role's file atomically (its content fsynced before the rename). The
    /// directory itself is fsynced once per batch by [`MetadataStore::flush`]: until then a
    /// crash may keep the previous file, which is itself a complete, verified file.
    pub fn write(&self, role: &str, bytes: &[u8]) -> Result<(), Error> {
        write_file(&self.path_of(role), bytes)?;
        self.unsynced.set(true);
        Ok(())
    }

    /// Makes the renames of earlier writes durable.
    pub fn flush(&self) -> Result<(), Error> {
        if self.unsynced.replace(false) {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Drop for MetadataStore {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Temp file in the same directory, fsync, rename (the directory is not fsynced).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_python_and_keeps_names_inside_the_directory() {
        assert_eq!(quote("targets"), "targets");
        assert_eq!(quote("bins-3f"), "bins-3f");
        assert_eq!(quote("/delegatedrole"), "%2Fdelegatedrole");
        assert_eq!(quote("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(quote("?"), "%3F");
        assert_eq!(quote(".."), "%2E%2E");
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
