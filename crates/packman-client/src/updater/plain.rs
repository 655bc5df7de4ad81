//! A target fetched by its plain name before its signed description is known, and checked
//! against that description once it is: what lets a reader (the proxy) overlap looking a
//! target up in its delegated bin with fetching it. Repositories written by packman keep a
//! plain-name copy of `packages/` and `simple/` targets ([`layout::plain_copy_wanted`]).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use packman_tuf::{layout, TargetFile, Verifier};

use super::{TargetFetcher, VerifiedTarget};
use crate::Error;

/// The bytes a repository serves under a target's plain name (`targets/PATH`), in a temp
/// file, **not verified**: the only way to use them is [`PlainCopy::verify`], which hands
/// back a [`VerifiedTarget`] only when the signed length and every signed hash match.
/// Dropping it removes the file.
#[derive(Debug)]
pub struct PlainCopy {
    tmp: tempfile::NamedTempFile,
    target: String,
    url: String,
}

impl TargetFetcher {
    /// Fetches `target` by its plain name into a new temp file in `temp_dir`, at most
    /// `max_len` bytes: a cap the caller may lower while the fetch runs (to the signed length,
    /// once it is known), which stops it as soon as it is passed. Only the first place the transport names for the URL is asked (the
    /// repository, or the mirror in front): a guess is not worth a failover, and a failure
    /// here is not reported to the transport as a mirror's fault (the caller falls back to
    /// [`TargetFetcher::download_target_temp`], which reports what it finds).
    pub fn fetch_plain(&self, temp_dir: &Path, target: &str, max_len: &AtomicU64) -> Result<PlainCopy, Error> {
        let base = self.targets_url.as_deref().ok_or(Error::NoTargetsUrl)?;
        let url = layout::target_url(base, target, None)
            .map_err(|source| Error::TargetPath { target: target.into(), source })?;
        let url = self.transport.candidates(&url).into_iter().next().map_or(url, |c| c.url);
        std::fs::create_dir_all(temp_dir).map_err(|e| Error::io(temp_dir, e))?;
        let mut tmp = packman_fs::public_tempfile(temp_dir)?;
        let mut sink = Capped { inner: tmp.as_file_mut(), cap: max_len, written: 0 };
        self.transport.fetch_to(&url, max_len.load(Ordering::Relaxed), &mut sink)?;
        Ok(PlainCopy { tmp, target: target.into(), url })
    }
}

/// A file that refuses to grow past a cap that may be lowered while it is written.
struct Capped<'a> {
    inner: &'a mut std::fs::File,
    cap: &'a AtomicU64,
    written: u64,
}

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.cap.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("longer than the cap"));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl PlainCopy {
    /// Where the bytes were fetched from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks the bytes against `info`, the target's signed description, with the trust
    /// core's verifier (length and every hash); [`Error::TargetMismatch`] (and the file
    /// removed) when they differ.
    pub fn verify(mut self, info: &TargetFile) -> Result<VerifiedTarget, Error> {
        let (target, url) = (self.target.clone(), self.url.clone());
        let mismatch = |reason: String| Error::TargetMismatch { target: target.clone(), url: url.clone(), reason };
        let mut verifier = Verifier::for_target(info).map_err(|m| mismatch(m.to_string()))?;
        let path = self.tmp.path().to_path_buf();
        let file = self.tmp.as_file_mut();
        file.flush().map_err(|e| Error::io(&path, e))?;
        let mut reader = self.tmp.reopen().map_err(|e| Error::io(&path, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&path, e)),
            };
            verifier.update(&buf[..n]).map_err(|m| mismatch(m.to_string()))?;
        }
        verifier.finish().map_err(|m| mismatch(m.to_string()))?;
        // Not fsynced here: [`VerifiedTarget::persist`] does it before any rename, so a
        // caller that serves the bytes first need not wait for the disk.
        Ok(VerifiedTarget { tmp: self.tmp, target: self.target, info: info.clone(), synced: false })
    }
}
