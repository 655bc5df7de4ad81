//! One request -> one response: resolution, negotiation, caching headers, conditionals, ranges.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use packman_tuf::layout;

use crate::files::{Body, CachedFile, FileCache, Source};
use crate::negotiate::{accepts_gzip, page_format, ACCEPTABLE};
use crate::resolve::{resolve, Resolved};

/// Versioned metadata and hash-prefixed targets never change: a CDN may keep them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The timestamp is what tells clients about everything new: cache it only briefly.
const TIMESTAMP: &str = "public, max-age=10";
/// Plain copies of distribution files: the publisher never reuses a name for other bytes.
const DISTRIBUTION: &str = "public, max-age=86400";
/// Everything else (simple pages, unversioned metadata).
const SHORT: &str = "public, max-age=60";

pub struct Handler {
    root: std::path::PathBuf,
    cache: Arc<FileCache>,
}

impl Handler {
    pub fn new(root: std::path::PathBuf, cache: FileCache) -> Handler {
        Handler { root, cache: Arc::new(cache) }
    }

    pub async fn handle<B>(self: Arc<Self>, req: &Request<B>) -> Response<Body> {
        let head = *req.method() == Method::HEAD;
        if *req.method() != Method::GET && !head {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let browse = crate::resolve::resolve_browse(req.uri().path());
        let mut response = if let Some(b) = browse {
            self.browse(b, req).await
        } else {
            match resolve(req.uri().path()) {
                Resolved::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
                Resolved::BadRequest(rule) => text(StatusCode::BAD_REQUEST, &format!("bad request: {rule}\n")),
                Resolved::Redirect(location) => {
                    let mut r = text(StatusCode::MOVED_PERMANENTLY, "moved\n");
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    r
                }
                Resolved::SimplePage(dir) => {
                    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
                    match page_format(accept) {
                        None => {
                            let mut r = text(StatusCode::NOT_ACCEPTABLE, &format!("acceptable: {ACCEPTABLE}\n"));
                            r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
                            r
                        }
                        Some(format) => {
                            let rel = dir.join(format.file_name());
                            let kind = FileKind {
                                content_type: format.content_type(),
                                cache_control: SHORT,
                                compressible: true,
                                vary: Some("Accept, Accept-Encoding"),
                            };
                            let opened = self.open(&rel).await;
                            self.respond(req.headers(), opened, kind)
                        }
                    }
                }
                Resolved::File(rel) => match self.open(&rel).await {
                    Ok(Source::Memory(c)) if is_plain(req.headers()) => {
                        return self.whole(&c, &rel, req.headers(), head)
                    }
                    opened => self.respond(req.headers(), opened, file_kind(&rel)),
                },
            }
        };
        finish(&mut response);
        if head {
            // Headers as for GET (Content-Length included), no body.
            *response.body_mut() = Body::empty();
        }
        response
    }

    /// The browsable pages, from the signed JSON pages in the served tree (see [`crate::browse`]).
    async fn browse<B>(&self, b: crate::resolve::Browse, req: &Request<B>) -> Response<Body> {
        use crate::browse;
        use crate::resolve::Browse;
        let simple = self.root.join(layout::TARGETS_DIR).join(layout::SIMPLE_DIR);
        let read = |path: std::path::PathBuf| blocking(move || std::fs::read(path));
        let built = match b {
            Browse::NotFound => return text(StatusCode::NOT_FOUND, "not found\n"),
            Browse::Redirect(location) => {
                let mut r = text(StatusCode::MOVED_PERMANENTLY, "moved\n");
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return r;
            }
            Browse::Index => match read(simple.join("index.json")).await {
                Ok(json) => browse::index_page(&json, browse::search_term(req.uri().query()).as_deref()),
                Err(_) => return text(StatusCode::NOT_FOUND, "this repository publishes no simple index\n"),
            },
            Browse::Project(name) => match read(simple.join(&name).join("index.json")).await {
                Ok(json) => {
                    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
                    browse::project_page(&json, &name, &browse::base_url(host))
                }
                Err(_) => return text(StatusCode::NOT_FOUND, "no such project\n"),
            },
        };
        match built {
            Ok(html) => Response::builder()
                .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                .header(header::CONTENT_LENGTH, html.len())
                .header(header::CACHE_CONTROL, SHORT)
                .header("content-security-policy", browse::CSP)
                .header("referrer-policy", "no-referrer")
                .body(Body::bytes(Bytes::from(html)))
                .expect("valid response"),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        }
    }

    async fn open(&self, rel: &Path) -> io::Result<Source> {
        // `root.join(rel)`, for `resolve`'s relative paths, without `join`'s per-call parsing.
        debug_assert!(rel.is_relative());
        let mut path = std::ffi::OsString::with_capacity(self.root.as_os_str().len() + 1 + rel.as_os_str().len());
        path.push(self.root.as_os_str());
        path.push(std::path::MAIN_SEPARATOR_STR);
        path.push(rel.as_os_str());
        let path = std::path::PathBuf::from(path);
        if let Some(hit) = self.cache.lookup(&path)? {
            return Ok(Source::Memory(hit));
        }
        // A miss reads the file: on the blocking pool, off the async workers.
        let cache = self.cache.clone();
        blocking(move || cache.open(&path)).await
    }

    /// A plain GET or HEAD (no conditional, no range) of a cached file by its own name
    /// (`Resolved::File`): its headers depend only on the path and the file's version, so they
    /// are made once per cached version, by the general path ([`Handler::respond`]), and
    /// cloned per request.
    fn whole(&self, c: &Arc<CachedFile>, rel: &Path, headers: &HeaderMap, head: bool) -> Response<Body> {
        let make = |gzip: bool| {
            let mut asked = HeaderMap::new();
            if gzip {
                asked.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let mut r = self.respond(&asked, Ok(Source::Memory(c.clone())), file_kind(rel));
            finish(&mut r);
            std::mem::take(r.headers_mut())
        };
        let reply = |template: &HeaderMap, body: Bytes| {
            let mut r = Response::new(if head { Body::empty() } else { Body::bytes(body) });
            *r.headers_mut() = template.clone();
            r
        };
        if wants_gzip(headers) {
            // Made (and the body compressed) only once a client asks for gzip, as before.
            let gzip =
                c.whole.gzip.get_or_init(|| Some(make(true)).filter(|h| h.contains_key(header::CONTENT_ENCODING)));
            // `c.gzip()` only when the template says it pays (it was made with it): never
            // compressing a file that is not compressible.
            if let Some(template) = gzip {
                if let Some(body) = c.gzip() {
                    return reply(template, body.clone());
                }
            }
        }
        reply(c.whole.plain.get_or_init(|| make(false)), c.body.clone())
    }

    /// The response for an opened file (or the error opening it), as `kind` says to describe it.
    fn respond(&self, headers: &HeaderMap, opened: io::Result<Source>, kind: FileKind) -> Response<Body> {
        let mut r = self.respond_inner(headers, opened, kind);
        if let Some(vary) = kind.vary {
            r.headers_mut().insert(header::VARY, HeaderValue::from_static(vary));
        }
        r
    }

    fn respond_inner(&self, headers: &HeaderMap, opened: io::Result<Source>, kind: FileKind) -> Response<Body> {
        let FileKind { content_type, cache_control, compressible, .. } = kind;
        let source = match opened {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return text(StatusCode::NOT_FOUND, "not found\n");
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return text(StatusCode::FORBIDDEN, "forbidden\n");
            }
            Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n"),
        };
        let key = source.key();
        let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let gzip = match &source {
            Source::Memory(c) if compressible && range_header.is_none() && wants_gzip(headers) => c.gzip().cloned(),
            _ => None,
        };
        let etag = match gzip {
            Some(_) => format!("{}-gzip\"", key.etag().trim_end_matches('"')),
            None => key.etag(),
        };
        let last_modified = key.last_modified();

        let mut builder = Response::builder()
            .header(header::CACHE_CONTROL, cache_control)
            .header(header::ETAG, &etag)
            .header(header::LAST_MODIFIED, httpdate::fmt_http_date(last_modified))
            .header(header::ACCEPT_RANGES, "bytes");

        if not_modified(headers, &etag, last_modified) {
            return builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()).expect("valid response");
        }
        builder = builder.header(header::CONTENT_TYPE, content_type);
        if let Some(gz) = gzip {
            return builder
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::CONTENT_LENGTH, gz.len())
                .body(Body::bytes(gz))
                .expect("valid response");
        }
        let range = match range_header {
            Some(r) if if_range_holds(headers, &etag, last_modified) => parse_range(r, key.len),
            _ => RangeRequest::Whole,
        };
        let (status, start, len) = match range {
            RangeRequest::Whole => (StatusCode::OK, 0, key.len),
            RangeRequest::Part(start, end) => {
                builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", key.len));
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            RangeRequest::Unsatisfiable => {
                return builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", key.len))
                    .header(header::CONTENT_LENGTH, 0)
                    .body(Body::empty())
                    .expect("valid response");
            }
        };
        let body = match source {
            Source::Memory(c) => Body::bytes(c.body.slice(start as usize..(start + len) as usize)),
            Source::Disk(file, _) => Body::stream(file, start, len),
        };
        builder.status(status).header(header::CONTENT_LENGTH, len).body(body).expect("valid response")
    }
}

/// Runs blocking file work on tokio's blocking pool (any runtime flavour).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(io::Error::other(format!("file task failed: {e}"))))
}

/// How a served file's responses describe it.
#[derive(Debug, Clone, Copy)]
struct FileKind {
    content_type: &'static str,
    cache_control: &'static str,
    compressible: bool,
    vary: Option<&'static str>,
}

/// A file requested by its own name: described by its name and place.
fn file_kind(rel: &Path) -> FileKind {
    let (content_type, compressible) = content_type(rel);
    FileKind {
        content_type,
        cache_control: cache_control(rel),
        compressible,
        vary: compressible.then_some("Accept-Encoding"),
    }
}

/// Headers every response carries.
fn finish(r: &mut Response<Body>) {
    r.headers_mut().insert(header::SERVER, HeaderValue::from_static("packman"));
    r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
}

/// No conditional and no range: the answer is the whole file (or its gzip encoding).
fn is_plain(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::RANGE)
        && !headers.contains_key(header::IF_NONE_MATCH)
        && !headers.contains_key(header::IF_MODIFIED_SINCE)
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::bytes(Bytes::copy_from_slice(body.as_bytes())))
        .expect("valid response")
}

fn wants_gzip(headers: &HeaderMap) -> bool {
    accepts_gzip(headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()))
}

/// The `Content-Type` of a served file by its name, and whether it is worth compressing.
pub fn content_type(rel: &Path) -> (&'static str, bool) {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".json") {
        ("application/json", true)
    } else if name.ends_with(".html") {
        ("text/html; charset=utf-8", true)
    } else if name.ends_with(".metadata") {
        // PEP 658 core metadata: RFC 822 text, though clients treat it as bytes.
        ("text/plain; charset=utf-8", false)
    } else {
        ("application/octet-stream", false)
    }
}

fn cache_control(rel: &Path) -> &'static str {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_metadata = rel.starts_with(layout::METADATA_DIR);
    if in_metadata && name == layout::TIMESTAMP_FILE {
        TIMESTAMP
    } else if layout::is_immutable(name, in_metadata) {
        IMMUTABLE
    } else if !in_metadata && rel.starts_with(Path::new(layout::TARGETS_DIR).join(layout::PACKAGES_DIR)) {
        DISTRIBUTION
    } else {
        SHORT
    }
}

/// RFC 9110 13.2.2: If-None-Match first (weak comparison), else If-Modified-Since.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        return inm.split(',').take(64).map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag);
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| last_modified <= since)
}

/// If-Range: the range applies only if the validator still matches (strong ETag or exact date).
fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: SystemTime) -> bool {
    let Some(v) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else { return true };
    let v = v.trim();
    if v.starts_with('"') {
        return v == etag;
    }
    httpdate::parse_http_date(v).is_ok_and(|d| d == last_modified)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range. Several ranges, or a header that does not parse, are ignored and the
/// whole file is sent (RFC 9110 14.2 allows that), which also takes the sting out of
/// overlapping-range amplification.
fn parse_range(header: &str, len: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeRequest::Whole };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeRequest::Whole };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match num(suffix) {
            None => RangeRequest::Whole,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part(len.saturating_sub(n), len - 1),
        },
        (first, last) => {
            let Some(start) = num(first) else { return RangeRequest::Whole };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match num(last) {
                    Some(e) if e >= start => e,
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(start, end.min(len - 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=90-1000", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0,5-5", 100), Whole);
        assert_eq!(parse_range("bytes=9-1", 100), Whole);
        assert_eq!(parse_range("bytes=a-b", 100), Whole);
        assert_eq!(parse_range("bytes=99999999999999999999-", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn cache_classes() {
        let cc = |p: &str| cache_control(Path::new(p));
        assert_eq!(cc("metadata/timestamp.json"), TIMESTAMP);
        assert_eq!(cc("metadata/12.snapshot.json"), IMMUTABLE);
        assert_eq!(cc("metadata/3.bins-0a.json"), IMMUTABLE);
        assert_eq!(cc("metadata/root.json"), SHORT);
        let h = "ab".repeat(32);
        assert_eq!(cc(&format!("targets/packages/x/{h}.x-1.0.tar.gz")), IMMUTABLE);
        assert_eq!(cc("targets/packages/x/x-1.0.tar.gz"), DISTRIBUTION);
        assert_eq!(cc("targets/simple/x/index.json"), SHORT);
    }

    /// The headers made once for plain GETs are those the general path gives the same request
    /// (forced here by an If-Modified-Since that does not hold), per encoding and per version.
    #[test]
    fn plain_gets_answer_as_the_general_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        let ts = dir.path().join("metadata/timestamp.json");
        std::fs::write(&ts, format!("{{\"signed\": \"{}\"}}", "a".repeat(2000))).unwrap();
        std::fs::write(dir.path().join("metadata/x.bin"), b"plain bytes").unwrap();
        let handler = Arc::new(Handler::new(dir.path().to_path_buf(), FileCache::new(1 << 20, 1 << 16)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let get = |method: Method, path: &str, headers: &[(header::HeaderName, &str)]| {
            let mut req = Request::builder().method(method).uri(path);
            for (k, v) in headers {
                req = req.header(k, *v);
            }
            let r = rt.block_on(handler.clone().handle(&req.body(()).unwrap()));
            let body = match r.body() {
                Body::Full(b) => b.clone().unwrap_or_default(),
                Body::Stream { .. } => panic!("small file streamed"),
            };
            (r.status(), r.headers().clone(), body)
        };
        // Compression happens when a client asks for gzip of a compressible file, not before.
        let cached = |path: &str| handler.cache.lookup(&dir.path().join(&path[1..])).unwrap().unwrap();
        get(Method::GET, "/metadata/timestamp.json", &[]);
        assert!(!cached("/metadata/timestamp.json").gzip_made());
        get(Method::GET, "/metadata/x.bin", &[(header::ACCEPT_ENCODING, "gzip")]);
        assert!(!cached("/metadata/x.bin").gzip_made());
        let general = || (header::IF_MODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:01 GMT");
        let gzip = || (header::ACCEPT_ENCODING, "gzip");
        for path in ["/metadata/timestamp.json", "/metadata/x.bin"] {
            for _version in 0..2 {
                let plain = get(Method::GET, path, &[]);
                assert_eq!(plain.0, StatusCode::OK);
                assert_eq!(plain, get(Method::GET, path, &[general()]));
                assert_eq!(plain.2, std::fs::read(dir.path().join(&path[1..])).unwrap());
                let gz = get(Method::GET, path, &[gzip()]);
                assert_eq!(gz, get(Method::GET, path, &[gzip(), general()]));
                assert_eq!(gz.1.contains_key(header::CONTENT_ENCODING), path.ends_with(".json"));
                let head = get(Method::HEAD, path, &[]);
                assert_eq!((head.0, &head.1, head.2.len()), (StatusCode::OK, &plain.1, 0));
                // Replaced by rename, as the publisher does: new bytes, new validators.
                let tmp = dir.path().join("metadata/.tmp");
                std::fs::write(&tmp, [&plain.2[..], b" "].concat()).unwrap();
                std::fs::rename(&tmp, dir.path().join(&path[1..])).unwrap();
                let next = get(Method::GET, path, &[]);
                assert_eq!(next.2.len(), plain.2.len() + 1);
                assert_ne!(next.1.get(header::ETAG), plain.1.get(header::ETAG));
            }
        }
    }

    #[test]
    fn conditionals() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"e\""));
        assert!(not_modified(&h, "\"e\"", t));
        assert!(!not_modified(&h, "\"f\"", t));
        let mut h = HeaderMap::new();
        h.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap());
        assert!(not_modified(&h, "\"e\"", t));
        assert!(!not_modified(&h, "\"e\"", t + std::time::Duration::from_secs(1)));
        let mut h = HeaderMap::new();
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"e\""));
        assert!(if_range_holds(&h, "\"e\"", t));
        assert!(!if_range_holds(&h, "\"f\"", t));
    }
}
