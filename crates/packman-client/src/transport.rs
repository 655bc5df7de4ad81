//! The one seam through which the [`Updater`](crate::Updater) reads bytes from anywhere.
//!
//! Everything a transport returns is untrusted: it only moves bytes and enforces the bounds
//! the caller asks for. Whether those bytes are believed is decided by the trust core after
//! they arrive (metadata) or by the updater's hashing while they stream (targets), never by
//! the transport. So a new way to reach a repository (a mirror list with failover, a bundle
//! file carried offline, a proxy's async runtime) is a new `Transport`, and the verification
//! is the same for all of them.

use std::io::Write;

use crate::failover::{Candidate, MirrorFailure};
use crate::fetch::{copy_bounded, FetchError, FetcherConfig, HttpTransport};

/// Fetches a file by URL, bounded.
///
/// The contract every implementation keeps, and that the updater relies on:
///
/// - **URLs are the updater's full URLs**: the metadata base joined with a role file
///   (`…/metadata/2.root.json`, `…/metadata/timestamp.json`) or the targets base joined with
///   a target path (`…/targets/<sha256>.pkg-1.0.tar.gz`). An implementation that serves the
///   same repository from elsewhere maps them by prefix: a mirror list replaces the
///   configured base with each mirror's (in [`Transport::candidates`]: failover is the
///   updater's loop, [`failover`](crate::failover), so that an attempt that fails
///   verification moves on too); a bundle looks up the part after the base in its index.
/// - **Not found is [`FetchError::NotFound`]** (HTTP 403/404, a missing file or entry). The
///   updater ends its root rotation walk on it; any other error ends the update. A mirror
///   list should answer `NotFound` only when every mirror it tried said so.
/// - **At most `max_len` bytes reach `sink`.** Past that the fetch fails with
///   [`FetchError::TooLarge`]; an implementation may refuse earlier (a declared
///   `Content-Length` above the cap). Network transports also enforce a minimum speed and a
///   stall timeout ([`FetcherConfig`]) and fail with `TooSlow` or `Transport`.
/// - **On error the sink's content is garbage**: the updater discards it (a temp file is
///   removed, a buffer dropped). An implementation that retries elsewhere after some bytes
///   were already written must not append the second attempt to the first: it either fails
///   over only before the first byte, or fetches each attempt into its own buffer or temp
///   file and copies the complete one into `sink`.
/// - **`Send + Sync`**: one transport (one connection pool) is shared, as an
///   `Arc<dyn Transport>`, by every updater of a process and by threads such as the
///   blocking tasks an async server runs the updater on.
pub trait Transport: Send + Sync {
    /// Streams the file at `url` into `sink`, refusing more than `max_len` bytes; returns the
    /// number of bytes written.
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError>;

    /// Where `url` can be fetched from, in the order to try (each a full URL for
    /// [`Transport::fetch_to`]). By default `url` alone; a mirror list maps it to each
    /// mirror ([`FailoverTransport`](crate::FailoverTransport)). The updater tries them with
    /// [`failover`](crate::failover), each attempt into its own sink and verified before it
    /// counts.
    fn candidates(&self, url: &str) -> Vec<Candidate> {
        vec![Candidate { mirror: String::new(), url: url.into() }]
    }

    /// Told by [`failover`](crate::failover) that a candidate failed (a fetch error, or bytes
    /// that then failed verification). By default ignored; a mirror list keeps it for its
    /// report and tries that mirror last from then on.
    fn report(&self, failure: &MirrorFailure) {
        let _ = failure;
    }

    /// Fetches the file at `url` into memory, refusing more than `max_len` bytes.
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut buf = Vec::new();
        self.fetch_to(url, max_len, &mut buf)?;
        Ok(buf)
    }
}

/// `file://` URLs: the path is percent-decoded and read with the same byte cap (and the same
/// minimum speed, which matters for network filesystems) as HTTP.
pub struct FileTransport {
    config: FetcherConfig,
}

impl FileTransport {
    pub fn new(config: FetcherConfig) -> Self {
        FileTransport { config }
    }
}

impl Default for FileTransport {
    fn default() -> Self {
        FileTransport::new(FetcherConfig::default())
    }
}

impl Transport for FileTransport {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let Some(path) = url.strip_prefix("file://") else {
            return Err(FetchError::UnsupportedScheme { url: url.into() });
        };
        let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FetchError::NotFound { url: url.into(), status: 404 },
            _ => FetchError::Transport { url: url.into(), message: e.to_string() },
        })?;
        copy_bounded(&self.config, url, file, max_len, sink)
    }
}

/// The `file://` URL of a local path, as [`FileTransport`] reads it back (each byte that is
/// not unreserved in a URL path percent-encoded; a directory gets a trailing `/` if asked).
pub fn file_url(path: &std::path::Path, dir: bool) -> String {
    const PATH: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let p = path.to_string_lossy();
    let slash = if dir && !p.ends_with('/') { "/" } else { "" };
    format!("file://{}{slash}", percent_encoding::utf8_percent_encode(&p, PATH))
}

/// What [`Updater::new`](crate::Updater::new) uses: `file://` to [`FileTransport`],
/// `http://` and `https://` to [`HttpTransport`], anything else refused with
/// [`FetchError::UnsupportedScheme`].
pub struct DefaultTransport {
    http: HttpTransport,
    file: FileTransport,
}

/// The name this transport had before the [`Transport`] trait: `Fetcher::new(config)` still
/// fetches HTTP and `file://` as it always did.
pub type Fetcher = DefaultTransport;

impl DefaultTransport {
    pub fn new(config: FetcherConfig) -> Self {
        DefaultTransport { file: FileTransport::new(config.clone()), http: HttpTransport::new(config) }
    }

    /// Fetches `url` into memory, refusing more than `max_len` bytes (as [`Transport::fetch`],
    /// callable without the trait in scope).
    pub fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        Transport::fetch(self, url, max_len)
    }

    /// Streams `url` into `sink` (as [`Transport::fetch_to`], callable without the trait in
    /// scope).
    pub fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        Transport::fetch_to(self, url, max_len, sink)
    }
}

impl Default for DefaultTransport {
    fn default() -> Self {
        DefaultTransport::new(FetcherConfig::default())
    }
}

impl Transport for DefaultTransport {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        if url.starts_with("file://") {
            self.file.fetch_to(url, max_len, sink)
        } else if url.starts_with("http://") || url.starts_with("https://") {
            self.http.fetch_to(url, max_len, sink)
        } else {
            Err(FetchError::UnsupportedScheme { url: url.into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_url(path: &std::path::Path) -> String {
        let encoded = percent_encoding::utf8_percent_encode(path.to_str().unwrap(), percent_encoding::CONTROLS)
            .to_string()
            .replace(' ', "%20");
        format!("file://{encoded}")
    }

    #[test]
    fn file_transport_reads_within_the_cap_and_refuses_beyond_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a b.json");
        std::fs::write(&path, b"0123456789").unwrap();
        let url = file_url(&path);
        let t = FileTransport::default();
        assert_eq!(t.fetch(&url, 10).unwrap(), b"0123456789");
        match t.fetch(&url, 9) {
            Err(FetchError::TooLarge { limit: 9, .. }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let missing = file_url(&d.path().join("missing.json"));
        assert!(t.fetch(&missing, 10).unwrap_err().is_not_found());
    }

    #[test]
    fn file_url_round_trips_through_the_file_transport() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a b%c?#é.json");
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(FileTransport::default().fetch(&super::file_url(&path, false), 1).unwrap(), b"x");
        assert!(super::file_url(d.path(), true).ends_with('/'));
    }

    #[test]
    fn each_transport_refuses_the_schemes_it_does_not_serve() {
        let file = FileTransport::default();
        let http = HttpTransport::new(FetcherConfig::default());
        let both = DefaultTransport::default();
        for (t, url) in [
            (&file as &dyn Transport, "http://127.0.0.1:1/x"),
            (&http, "file:///etc/hostname"),
            (&both, "ftp://example.org/x"),
            (&both, "/etc/hostname"),
        ] {
            match t.fetch(url, 10) {
                Err(FetchError::UnsupportedScheme { url: u }) => assert_eq!(u, url),
                other => panic!("{url}: expected UnsupportedScheme, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_default_transport_sends_file_urls_to_the_file_transport() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        std::fs::write(&path, b"bytes").unwrap();
        let mut sink = Vec::new();
        let n = DefaultTransport::default().fetch_to(&file_url(&path), 5, &mut sink).unwrap();
        assert_eq!((n, sink.as_slice()), (5, &b"bytes"[..]));
    }
}
