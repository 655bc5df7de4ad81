//! Files on disk, an in-memory cache of the small ones, and response bodies.
//!
//! Repository files are replaced by rename, never rewritten in place, so a cached copy is valid
//! while the path still names the same (inode, length, mtime); one `stat` per request checks
//! that. The cache is bounded in bytes; files above `max_file` are streamed from disk.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::header::HeaderMap;
use tokio::sync::mpsc;

/// What identifies one version of a file at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub len: u64,
    pub mtime: SystemTime,
    pub ino: u64,
}

impl FileKey {
    fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey { len: meta.len(), mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), ino: meta.ino() }
    }

    /// Strong validator: nanosecond mtime and length (as nginx does, with finer time), so
    /// replicas synced with preserved mtimes agree.
    pub fn etag(&self) -> String {
        let ns = self.mtime.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        format!("\"{ns:x}-{:x}\"", self.len)
    }

    /// Last-Modified has whole seconds.
    pub fn last_modified(&self) -> SystemTime {
        let secs = self.mtime.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }
}

pub struct CachedFile {
    pub key: FileKey,
    pub body: Bytes,
    gzip: OnceLock<Option<Bytes>>,
    /// The response headers of a plain GET of this version of the file, made once by the
    /// handler (see `Handler::whole`): building them per request was most of its cost.
    pub(crate) whole: WholeHeaders,
}

/// Headers of a `200 OK` with the whole file, plain and gzip-encoded (`None` when gzip does
/// not pay or the file is not compressible), each made when first needed.
#[derive(Default)]
pub(crate) struct WholeHeaders {
    pub plain: OnceLock<HeaderMap>,
    pub gzip: OnceLock<Option<HeaderMap>>,
}

impl CachedFile {
    pub fn new(key: FileKey, body: Bytes) -> CachedFile {
        CachedFile { key, body, gzip: OnceLock::new(), whole: WholeHeaders::default() }
    }

    /// Whether the gzip body has been made (compression is done only when asked for).
    #[cfg(test)]
    pub(crate) fn gzip_made(&self) -> bool {
        self.gzip.get().is_some()
    }

    /// The gzip-compressed body, made once; `None` when compression does not pay.
    pub fn gzip(&self) -> Option<&Bytes> {
        self.gzip
            .get_or_init(|| {
                use std::io::Write;
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                enc.write_all(&self.body).ok()?;
                let out = enc.finish().ok()?;
                (out.len() + 64 < self.body.len()).then(|| Bytes::from(out))
            })
            .as_ref()
    }
}

/// An opened file: from the cache, or a handle to stream from.
pub enum Source {
    Memory(Arc<CachedFile>),
    Disk(File, FileKey),
}

impl Source {
    pub fn key(&self) -> FileKey {
        match self {
            Source::Memory(c) => c.key,
            Source::Disk(_, k) => *k,
        }
    }
}

pub struct FileCache {
    max_file: u64,
    budget: u64,
    /// By path as bytes: hashing a `Path` goes component by component, several times slower.
    entries: RwLock<HashMap<OsString, Arc<CachedFile>>>,
    used: Mutex<u64>,
}

impl FileCache {
    pub fn new(budget: u64, max_file: u64) -> FileCache {
        FileCache { max_file: max_file.min(budget), budget, entries: RwLock::default(), used: Mutex::new(0) }
    }

    /// The cached file if `path` still names the version cached (one `stat`, no blocking read).
    pub fn lookup(&self, path: &Path) -> io::Result<Option<Arc<CachedFile>>> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let key = FileKey::of(&meta);
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        Ok(entries.get(path.as_os_str()).filter(|c| c.key == key).cloned())
    }

    /// Opens `path` (a regular file, else `NotFound`), reading it into the cache when it is
    /// small enough. Blocking: call off the async workers.
    pub fn open(&self, path: &Path) -> io::Result<Source> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let key = FileKey::of(&meta);
        if key.len > self.max_file {
            return Ok(Source::Disk(file, key));
        }
        let mut body = Vec::with_capacity(key.len as usize);
        (&mut file).take(self.max_file + 1).read_to_end(&mut body)?;
        if body.len() as u64 != key.len {
            // Changed under us (rewritten in place): serve what we read, cache nothing.
            let key = FileKey { len: body.len() as u64, ..key };
            return Ok(Source::Memory(Arc::new(CachedFile::new(key, body.into()))));
        }
        let cached = Arc::new(CachedFile::new(key, body.into()));
        self.insert(path.as_os_str().to_owned(), cached.clone());
        Ok(Source::Memory(cached))
    }

    fn insert(&self, path: OsString, file: Arc<CachedFile>) {
        // What an entry is charged against the budget: contents, name, bookkeeping.
        let cost = |p: &OsStr, f: &CachedFile| f.key.len + p.len() as u64 + 128;
        let size = cost(&path, &file);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = entries.remove(&path) {
            *used -= cost(&path, &old);
        }
        // Evict arbitrary entries until the new one fits: cheap, and good enough for a cache
        // whose hot set (metadata, pages) is far smaller than its budget.
        while *used + size > self.budget {
            let Some(victim) = entries.keys().next().cloned() else { break };
            let old = entries.remove(&victim).expect("key just seen");
            *used -= cost(&victim, &old);
        }
        if *used + size <= self.budget {
            *used += size;
            entries.insert(path, file);
        }
    }
}

/// A response body: nothing, bytes in memory, or chunks read from disk by a blocking task.
pub enum Body {
    Full(Option<Bytes>),
    Stream { rx: mpsc::Receiver<io::Result<Bytes>>, remaining: u64 },
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn bytes(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        Body::Full((!b.is_empty()).then_some(b))
    }

    /// Streams `len` bytes of `file` from `offset`, 256 KiB at a time, at most four chunks
    /// ahead of the socket.
    pub fn stream(mut file: File, offset: u64, len: u64) -> Body {
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let mut buf = vec![0; left.min(256 * 1024) as usize];
                let chunk = match file.read(&mut buf) {
                    Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being served")),
                    Ok(n) => {
                        buf.truncate(n);
                        left -= n as u64;
                        Ok(Bytes::from(buf))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return; // client gone, or error delivered
                }
            }
        });
        Body::Stream { rx, remaining: len }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { rx, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Ok(b))) => {
                        *remaining = remaining.saturating_sub(b.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::Stream { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_follows_renames_and_stays_in_budget() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"one").unwrap();
        let cache = FileCache::new(10_000, 1000);
        assert!(cache.lookup(&p).unwrap().is_none());
        let Source::Memory(first) = cache.open(&p).unwrap() else { panic!("small file not cached") };
        assert_eq!(&first.body[..], b"one");
        assert!(cache.lookup(&p).unwrap().is_some());
        // Replaced by rename, as the publisher does: the cached copy is no longer offered.
        let tmp = dir.path().join(".tmp");
        std::fs::write(&tmp, b"two!").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert!(cache.lookup(&p).unwrap().is_none());
        let Source::Memory(second) = cache.open(&p).unwrap() else { panic!() };
        assert_eq!(&second.body[..], b"two!");
        // Big files are streamed, not cached.
        let big = dir.path().join("big");
        std::fs::write(&big, vec![7; 2000]).unwrap();
        assert!(matches!(cache.open(&big).unwrap(), Source::Disk(_, k) if k.len == 2000));
        // Many small files: the cache never exceeds its budget.
        for i in 0..100 {
            let f = dir.path().join(format!("f{i}"));
            std::fs::write(&f, vec![1; 900]).unwrap();
            cache.open(&f).unwrap();
        }
        assert!(*cache.used.lock().unwrap() <= 10_000);
        // Directories and missing files are not found.
        assert_eq!(cache.open(dir.path()).err().unwrap().kind(), io::ErrorKind::NotFound);
        assert_eq!(cache.lookup(&dir.path().join("nope")).err().unwrap().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn gzip_only_when_it_pays() {
        let c =
            CachedFile::new(FileKey { len: 0, mtime: SystemTime::UNIX_EPOCH, ino: 0 }, Bytes::from(vec![b'a'; 10_000]));
        let gz = c.gzip().unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![b'a'; 10_000]);
        let tiny = CachedFile::new(c.key, Bytes::from_static(b"{}"));
        assert!(tiny.gzip().is_none());
    }
}
