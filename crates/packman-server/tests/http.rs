//! The server over real sockets on 127.0.0.1: what clients rely on (negotiation, caching
//! headers, ranges, conditionals) and what hostile clients try (traversal, huge headers,
//! slowloris, readers that stop, connection floods). Requests are written by hand so nothing
//! normalises them on the way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use packman_server::{AccessLog, Background, Config};

const SECRET: &[u8] = b"PRIVATE KEY MATERIAL";

struct Server {
    addr: SocketAddr,
    background: Option<Background>,
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

/// A served tree: TUF metadata, targets (small, 1 MiB, a 24 MiB one too big to cache), simple
/// pages, and secrets next to and above it that must never be served.
fn start(tune: impl FnOnce(&mut Config)) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("outside.txt"), SECRET).unwrap();
    let root = tmp.path().join("repo");
    let w = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    w("keys/root-1.key", SECRET);
    w("staged/root.json", SECRET);
    w("metadata/.lock", SECRET);
    w("metadata/timestamp.json", &json_bytes(400));
    w("metadata/3.snapshot.json", &json_bytes(20_000));
    w("targets/small.txt", b"hello\n");
    w("targets/mid.bin", &pattern(1 << 20));
    w("targets/big.bin", &pattern(24 << 20));
    w("targets/simple/index.html", b"<html>projects</html>");
    w("targets/simple/index.json", b"{\"meta\":{\"api-version\":\"1.1\"},\"projects\":[]}");
    w("targets/simple/foo-bar/index.html", b"<html>foo-bar</html>");
    w("targets/simple/foo-bar/index.json", b"{\"meta\":{\"api-version\":\"1.1\"},\"name\":\"foo-bar\"}");
    w("targets/packages/foo-bar/foo_bar-1.0-py3-none-any.whl", b"wheel bytes");

    let mut config = Config::new(&root);
    config.max_cached_file = 2 << 20;
    tune(&mut config);
    let background =
        Background::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), config, AccessLog::off()).unwrap();
    Server { addr: background.addr(), background: Some(background), root, _tmp: tmp }
}

fn json_bytes(n: usize) -> Vec<u8> {
    let mut s = String::from("{\"signed\":\"");
    while s.len() < n - 2 {
        s.push_str("abcdefgh");
    }
    s.push_str("\"}");
    s.into_bytes()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `head` (request line and headers, without the final blank line), adding
/// `Connection: close`, and reads the whole reply.
fn request(addr: SocketAddr, head: &str) -> Reply {
    let mut s = connect(addr);
    s.write_all(format!("{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw, head.starts_with("HEAD"))
}

fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Reply {
    let mut head = format!("GET {path} HTTP/1.1");
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    request(addr, &head)
}

fn parse(raw: &[u8], head: bool) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no complete response head in {:?}", String::from_utf8_lossy(raw));
    });
    let text = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let body = raw[split + 4..].to_vec();
    let reply = Reply { status, headers, body };
    if !head {
        if let Some(len) = reply.header("content-length") {
            assert_eq!(reply.body.len(), len.parse::<usize>().unwrap(), "body length matches Content-Length");
        }
    }
    reply
}

fn read_file(root: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(root.join(rel)).unwrap()
}

#[test]
fn files_and_caching_headers() {
    let s = start(|_| {});
    let r = get(s.addr, "/metadata/timestamp.json", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, read_file(&s.root, "metadata/timestamp.json"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=10"));
    assert!(r.header("etag").unwrap().starts_with('"'));
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    let r = get(s.addr, "/metadata/3.snapshot.json", &[]);
    assert_eq!(r.header("cache-control"), Some("public, max-age=31536000, immutable"));
    // The Python layout's aliases for the targets tree.
    let r = get(s.addr, "/packages/foo-bar/foo_bar-1.0-py3-none-any.whl", &[]);
    assert_eq!((r.status, &r.body[..]), (200, &b"wheel bytes"[..]));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = get(s.addr, "/targets/packages/foo-bar/foo_bar-1.0-py3-none-any.whl", &[]);
    assert_eq!(r.body, b"wheel bytes");
    // A file too big for the cache is streamed whole.
    let r = get(s.addr, "/targets/big.bin", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == pattern(24 << 20), "streamed body differs");
    // HEAD: the same headers, no body.
    let r = request(s.addr, "HEAD /targets/big.bin HTTP/1.1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("25165824"));
    assert!(r.body.is_empty());
    // No listings, nothing missing invented.
    for p in ["/metadata/", "/metadata", "/targets/", "/targets/packages/", "/nothing.json", "/metadata/9.root.json"] {
        assert_eq!(get(s.addr, p, &[]).status, 404, "{p}");
    }
    // `/` is the browsable project list, made from the signed targets/simple/index.json,
    // sent with a policy that forbids scripts.
    let r = get(s.addr, "/", &[]);
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/html; charset=utf-8")));
    assert!(r.header("content-security-policy").is_some_and(|c| c.starts_with("default-src 'none'")));
    assert!(String::from_utf8_lossy(&r.body).contains("0 projects."));
    assert_eq!(request(s.addr, "POST /metadata/timestamp.json HTTP/1.1\r\nContent-Length: 0").status, 405);
    assert_eq!(request(s.addr, "DELETE /metadata/timestamp.json HTTP/1.1").status, 405);
}

#[test]
fn conditional_requests_and_replacement() {
    let s = start(|_| {});
    let r = get(s.addr, "/targets/small.txt", &[]);
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();
    let r = get(s.addr, "/targets/small.txt", &[&format!("If-None-Match: \"zzz\", {etag}")]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = get(s.addr, "/targets/small.txt", &[&format!("If-Modified-Since: {lm}")]);
    assert_eq!(r.status, 304);
    // If-None-Match wins over If-Modified-Since.
    let r = get(s.addr, "/targets/small.txt", &["If-None-Match: \"other\"", &format!("If-Modified-Since: {lm}")]);
    assert_eq!(r.status, 200);
    // Replaced the way publishers do (write a temp file, rename): the new bytes, a new ETag.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(s.root.join("targets/tmp-new"), b"changed\n").unwrap();
    std::fs::rename(s.root.join("targets/tmp-new"), s.root.join("targets/small.txt")).unwrap();
    let r = get(s.addr, "/targets/small.txt", &[&format!("If-None-Match: {etag}")]);
    assert_eq!((r.status, &r.body[..]), (200, &b"changed\n"[..]));
    assert_ne!(r.header("etag").unwrap(), etag);
}

#[test]
fn ranges() {
    let s = start(|_| {});
    let mid = pattern(1 << 20);
    let big = pattern(24 << 20);
    let r = get(s.addr, "/targets/mid.bin", &["Range: bytes=10-19"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &mid[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1048576"));
    let r = get(s.addr, "/targets/mid.bin", &["Range: bytes=-5"]);
    assert_eq!(r.body, &mid[mid.len() - 5..]);
    // Streamed files seek.
    let r = get(s.addr, "/targets/big.bin", &["Range: bytes=20000000-"]);
    assert_eq!(r.status, 206);
    assert!(r.body == big[20_000_000..]);
    // Past the end: 416 naming the length.
    let r = get(s.addr, "/targets/mid.bin", &["Range: bytes=1048576-"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1048576"));
    // Abuse: many overlapping ranges get one plain 200, not a multiplied body.
    let many = vec!["0-1048575"; 500].join(",");
    let r = get(s.addr, "/targets/mid.bin", &[&format!("Range: bytes={many}")]);
    assert_eq!((r.status, r.body.len()), (200, 1 << 20));
    for junk in ["bytes=5-1", "bytes=x-y", "bytes=99999999999999999999999-", "lines=1-2", "bytes=--1"] {
        let r = get(s.addr, "/targets/mid.bin", &[&format!("Range: {junk}")]);
        assert_eq!((r.status, r.body.len()), (200, 1 << 20), "{junk}");
    }
    // If-Range with a stale validator: the whole (new) file.
    let r = get(s.addr, "/targets/mid.bin", &["Range: bytes=0-0", "If-Range: \"stale\""]);
    assert_eq!(r.status, 200);
    let etag = r.header("etag").unwrap().to_string();
    let r = get(s.addr, "/targets/mid.bin", &["Range: bytes=0-0", &format!("If-Range: {etag}")]);
    assert_eq!((r.status, r.body.len()), (206, 1));
}

#[test]
fn gzip_for_text_that_accepts_it() {
    let s = start(|_| {});
    let plain = read_file(&s.root, "metadata/3.snapshot.json");
    let r = get(s.addr, "/metadata/3.snapshot.json", &["Accept-Encoding: br, gzip"]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < plain.len() / 10);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, plain);
    let gz_etag = r.header("etag").unwrap().to_string();
    let r = get(s.addr, "/metadata/3.snapshot.json", &[]);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, plain);
    assert_ne!(r.header("etag").unwrap(), gz_etag, "each representation has its own ETag");
    // Not for binaries, not for ranges, not when refused.
    let r = get(s.addr, "/targets/mid.bin", &["Accept-Encoding: gzip"]);
    assert_eq!(r.header("content-encoding"), None);
    let r = get(s.addr, "/metadata/3.snapshot.json", &["Accept-Encoding: gzip", "Range: bytes=0-9"]);
    assert_eq!((r.status, r.header("content-encoding")), (206, None));
    let r = get(s.addr, "/metadata/3.snapshot.json", &["Accept-Encoding: gzip;q=0"]);
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn simple_api_negotiation() {
    let s = start(|_| {});
    let json =
        "Accept: application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
    let r = get(s.addr, "/simple/foo-bar/", &[json]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.pypi.simple.v1+json"));
    assert_eq!(r.body, read_file(&s.root, "targets/simple/foo-bar/index.json"));
    assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
    let r = get(s.addr, "/simple/foo-bar/", &["Accept: application/vnd.pypi.simple.v1+html"]);
    assert_eq!(r.header("content-type"), Some("application/vnd.pypi.simple.v1+html"));
    assert_eq!(r.body, b"<html>foo-bar</html>");
    let r = get(s.addr, "/simple/foo-bar/", &[]);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(s.addr, "/simple/", &["Accept: application/vnd.pypi.simple.latest+json"]);
    assert_eq!(r.body, read_file(&s.root, "targets/simple/index.json"));
    let r = get(s.addr, "/simple/foo-bar/", &["Accept: application/json"]);
    assert_eq!(r.status, 406);
    assert!(String::from_utf8_lossy(&r.body).contains("application/vnd.pypi.simple.v1+json"));
    // Names are normalised by redirect (PEP 503), as is the trailing slash.
    for (from, to) in [
        ("/simple/Foo_Bar/", "/simple/foo-bar/"),
        ("/simple/FOO.bar", "/simple/foo-bar/"),
        ("/simple/foo-bar", "/simple/foo-bar/"),
        ("/simple", "/simple/"),
        ("/targets/simple/Foo-Bar/", "/targets/simple/foo-bar/"),
    ] {
        let r = get(s.addr, from, &[]);
        assert_eq!((r.status, r.header("location")), (301, Some(to)), "{from}");
    }
    assert_eq!(get(s.addr, "/simple/no-such-project/", &[json]).status, 404);
    // The static tree's own page paths work too.
    assert_eq!(
        get(s.addr, "/targets/simple/foo-bar/", &[json]).body,
        read_file(&s.root, "targets/simple/foo-bar/index.json")
    );
}

#[test]
fn traversal_and_private_files_are_refused() {
    let s = start(|_| {});
    let hostile = [
        "/targets/../keys/root-1.key",
        "/targets/../../outside.txt",
        "/metadata/../../outside.txt",
        "/targets/%2e%2e/keys/root-1.key",
        "/targets/%2E%2e/%2e%2E/outside.txt",
        "/targets/..%2fkeys%2froot-1.key",
        "/targets/%2e%2e%2fkeys%2froot-1.key",
        "/targets/..%5ckeys%5croot-1.key",
        "/targets/%252e%252e/keys/root-1.key",
        "/targets/%c0%ae%c0%ae/keys/root-1.key",
        "/targets/..;/keys/root-1.key",
        "/targets/./../keys/root-1.key",
        "/keys/root-1.key",
        "/staged/root.json",
        "/metadata/.lock",
        "/targets//keys/root-1.key",
        "//keys/root-1.key",
        "/targets/small.txt%00.json",
        "/simple/../keys/root-1.key",
        "/packages/../../keys/root-1.key",
        "http://127.0.0.1/targets/../keys/root-1.key",
    ];
    for p in hostile {
        let r = get(s.addr, p, &[]);
        assert!((400..500).contains(&r.status), "{p}: status {}", r.status);
        assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET), "{p} leaked a secret");
    }
    // The server is still fine.
    assert_eq!(get(s.addr, "/targets/small.txt", &[]).status, 200);
}

#[test]
fn oversized_heads_are_refused() {
    let s = start(|_| {});
    let huge = format!("X-Junk: {}", "a".repeat(64 * 1024));
    let mut c = connect(s.addr);
    let _ = c.write_all(format!("GET /targets/small.txt HTTP/1.1\r\nHost: x\r\n{huge}\r\n\r\n").as_bytes());
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(100)])
    );
    let many: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
    let r = get(s.addr, "/targets/small.txt", &many.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.status, 431);
    let long_path = format!("/targets/{}", "a".repeat(20_000));
    let mut c = connect(s.addr);
    let _ = c.write_all(format!("GET {long_path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    assert!(raw.is_empty() || raw.starts_with(b"HTTP/1.1 4"));
    let r = request(s.addr, "GET /targets/small.txt HTTP/1.1\r\nBroken header line");
    assert_eq!(r.status, 400);
    assert_eq!(get(s.addr, "/targets/small.txt", &[]).status, 200);
}

/// Reads until the server closes the connection; returns how long that took.
fn time_until_closed(mut c: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn slowloris_and_idle_connections_are_cut_off() {
    let s = start(|c| c.header_timeout = Duration::from_millis(500));
    // Half a request head, then silence.
    let mut slow = connect(s.addr);
    slow.write_all(b"GET /targets/small.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t = time_until_closed(slow);
    assert!(t < Duration::from_secs(5), "slow head held for {t:?}");
    // Nothing at all.
    let t = time_until_closed(connect(s.addr));
    assert!(t < Duration::from_secs(5), "silent connection held for {t:?}");
    // Kept alive after a request, then idle.
    let mut idle = connect(s.addr);
    idle.write_all(b"GET /targets/small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t = time_until_closed(idle);
    assert!(t < Duration::from_secs(5), "idle keep-alive connection held for {t:?}");
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let s = start(|c| {
        c.write_timeout = Duration::from_millis(500);
        c.max_connections = 1;
    });
    let mut stuck = connect(s.addr);
    stuck.write_all(b"GET /targets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Read nothing for a while: the server gives up on the write and frees the slot…
    std::thread::sleep(Duration::from_secs(3));
    let r = get(s.addr, "/targets/small.txt", &[]);
    assert_eq!(r.status, 200);
    // …and the stuck client never gets the whole file.
    let mut got = 0;
    let mut buf = vec![0; 1 << 16];
    loop {
        match stuck.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 24 << 20, "stuck reader got all {got} bytes");
}

#[test]
fn connections_beyond_the_limit_wait() {
    let s = start(|c| c.max_connections = 2);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = connect(s.addr);
        c.write_all(b"GET /targets/small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0; 512];
        assert!(c.read(&mut buf).unwrap() > 0);
        held.push(c); // kept alive: both slots in use
    }
    let mut waiting = connect(s.addr);
    waiting.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    waiting.write_all(b"GET /targets/small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert!(waiting.read_to_end(&mut buf).is_err() && buf.is_empty(), "third connection served beyond the limit");
    held.clear();
    waiting.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    waiting.read_to_end(&mut buf).unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"));
}

#[test]
fn many_concurrent_clients() {
    let s = start(|_| {});
    let addr = s.addr;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let conns: Vec<TcpStream> = (0..50).map(|_| connect(addr)).collect();
                for mut c in conns {
                    c.write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .unwrap();
                    let mut raw = Vec::new();
                    c.read_to_end(&mut raw).unwrap();
                    assert!(raw.starts_with(b"HTTP/1.1 200"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn shutdown_stops_accepting_and_finishes() {
    let mut s = start(|c| c.shutdown_grace = Duration::from_secs(2));
    assert_eq!(get(s.addr, "/targets/small.txt", &[]).status, 200);
    let started = Instant::now();
    s.background.take().unwrap().stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(TcpStream::connect(s.addr).is_err(), "still accepting after shutdown");
}
