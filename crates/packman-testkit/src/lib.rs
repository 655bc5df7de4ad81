//! [`TestServer`]: an HTTP/1.1 server on 127.0.0.1 that serves a directory and can be told
//! to misbehave for a path (or every path): serve other bytes, endless data, a slow drip, a
//! stall, an HTML page, an error status. Every request is logged so tests can assert what
//! a client asked for. Threads end with the server; misbehaviour is bounded in time.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server answers a path.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// These bytes instead of the file.
    Body(Vec<u8>),
    /// This status with an empty body.
    Status(u16),
    /// An endless body (no Content-Length), until the client hangs up or `MAX_MISBEHAVE`.
    Endless,
    /// The file's bytes, one byte every `interval` (404 for a file that is not there).
    Drip(Duration),
    /// Headers, then nothing.
    Stall,
    /// 200 with an HTML page, whatever was asked (a captive portal, a misconfigured host).
    Html,
}

/// Upper bound on how long any misbehaving response may last.
pub const MAX_MISBEHAVE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    overrides: HashMap<String, Behavior>,
    all: Option<Behavior>,
    log: Vec<String>,
}

pub struct TestServer {
    addr: SocketAddr,
    root: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `root` on an ephemeral port of 127.0.0.1.
    pub fn serve_dir(root: &Path) -> std::io::Result<TestServer> {
        Self::bind(root, "127.0.0.1:0")
    }

    pub fn bind(root: &Path, addr: &str) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, rt) = (state.clone(), stop.clone(), root.to_path_buf());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, sp, rt) = (st.clone(), sp.clone(), rt.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &rt, &st, &sp);
                });
            }
        });
        Ok(TestServer { addr, root: root.to_path_buf(), state, stop, accept: Some(accept) })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Misbehave for one URL path (e.g. "/metadata/timestamp.json").
    pub fn set(&self, path: &str, b: Behavior) {
        self.state.lock().unwrap().overrides.insert(path.to_string(), b);
    }

    /// Misbehave for every path.
    pub fn set_all(&self, b: Behavior) {
        self.state.lock().unwrap().all = Some(b);
    }

    /// Back to serving the directory faithfully.
    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap();
        s.overrides.clear();
        s.all = None;
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn handle(conn: TcpStream, root: &Path, state: &Mutex<State>, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.by_ref().take(8192).read_line(&mut line)? == 0 || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/").to_string());
        let mut close = false;
        let mut header_bytes = 0;
        loop {
            let mut h = String::new();
            let n = reader.by_ref().take(8192).read_line(&mut h)?;
            header_bytes += n;
            if n == 0 || header_bytes > 64 * 1024 {
                return Ok(());
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let path = target.split('?').next().unwrap_or("/").to_string();
        let behavior = {
            let mut s = state.lock().unwrap();
            s.log.push(path.clone());
            s.overrides.get(&path).cloned().or_else(|| s.all.clone())
        };
        if method != "GET" && method != "HEAD" {
            respond(&mut out, 405, b"", close)?;
        } else {
            match behavior {
                None => match read_file(root, &path) {
                    Some(body) => respond(&mut out, 200, &body, close)?,
                    None => respond(&mut out, 404, b"not found", close)?,
                },
                Some(Behavior::Body(b)) => respond(&mut out, 200, &b, close)?,
                Some(Behavior::Status(code)) => respond(&mut out, code, b"", close)?,
                Some(Behavior::Html) => {
                    respond(&mut out, 200, b"<!DOCTYPE html><html><body><h1>Welcome!</h1></body></html>", close)?
                }
                Some(Behavior::Endless) => {
                    out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
                    let chunk = vec![b'A'; 64 * 1024];
                    let start = Instant::now();
                    while start.elapsed() < MAX_MISBEHAVE && !stop.load(Ordering::SeqCst) {
                        out.write_all(&chunk)?;
                    }
                    return Ok(());
                }
                Some(Behavior::Drip(every)) => {
                    // A slow host still knows which files it does not have.
                    let Some(body) = read_file(root, &path) else {
                        respond(&mut out, 404, b"not found", close)?;
                        continue;
                    };
                    write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
                    let start = Instant::now();
                    for b in body {
                        if start.elapsed() > MAX_MISBEHAVE || stop.load(Ordering::SeqCst) {
                            break;
                        }
                        out.write_all(&[b])?;
                        out.flush()?;
                        std::thread::sleep(every);
                    }
                    return Ok(());
                }
                Some(Behavior::Stall) => {
                    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")?;
                    let start = Instant::now();
                    while start.elapsed() < MAX_MISBEHAVE && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return Ok(());
                }
            }
        }
        if close {
            return Ok(());
        }
    }
}

fn respond(out: &mut TcpStream, code: u16, body: &[u8], close: bool) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    };
    let conn = if close { "close" } else { "keep-alive" };
    write!(out, "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n", body.len())?;
    out.write_all(body)?;
    out.flush()
}

/// Maps a URL path to a file under `root`, refusing anything that would leave it.
fn read_file(root: &Path, url_path: &str) -> Option<Vec<u8>> {
    let rel = Path::new(url_path.trim_start_matches('/'));
    if url_path.contains('%') || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let p = root.join(rel);
    if p.is_file() {
        std::fs::read(p).ok()
    } else {
        None
    }
}

/// Every file directly in `dir` (lock files aside) with its bytes: compare two of these to
/// show that trusted state did not change.
pub fn dir_state(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut m = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("readable directory") {
        let e = e.expect("directory entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".lock") && e.path().is_file() {
            m.insert(name, std::fs::read(e.path()).expect("readable file"));
        }
    }
    m
}

/// Every file under `dir`, recursively and lock files included (a refused run must not even
/// create one), by `/`-separated relative path, with its bytes; empty if `dir` is missing.
pub fn tree_state(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read(&p).expect("readable file"));
            }
        }
    }
    out
}

/// Says that a test, or a part of one, could not run here and why: on stderr, and as a line
/// appended to the file `PACKMAN_SKIP_LOG` names, which `scripts/test.sh` prints in its
/// summary. Under CI (`CI` set) nothing may be skipped: it panics with the reason instead.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let exe = std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    // Cargo names test binaries NAME-HASH.
    let bin = exe.as_deref().map(|e| e.rsplit_once('-').map_or(e, |(n, _)| n)).unwrap_or("?").to_string();
    let line = format!("{bin}::{test}: {why}");
    if std::env::var_os("CI").is_some() {
        panic!("not skipped under CI: {line}");
    }
    eprintln!("skipped: {line}");
    if let Some(log) = std::env::var_os("PACKMAN_SKIP_LOG") {
        use std::io::Write;
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log);
        // One write per line, so that tests running in parallel do not interleave.
        if let Err(e) = f.and_then(|mut f| f.write_all(format!("{line}\n").as_bytes())) {
            eprintln!("skipped: could not note it in {}: {e}", std::path::Path::new(&log).display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str, path: &str) -> String {
        let addr = url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    }

    #[test]
    fn serves_files_refuses_traversal_and_misbehaves_on_request() {
        let d = std::env::temp_dir().join(format!("testkit-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("a/f.txt"), b"hi").unwrap();
        let srv = TestServer::serve_dir(&d).unwrap();
        assert!(get(&srv.url(), "/a/f.txt").ends_with("\r\n\r\nhi"));
        assert!(get(&srv.url(), "/a/../a/f.txt").starts_with("HTTP/1.1 404"));
        srv.set("/a/f.txt", Behavior::Status(403));
        assert!(get(&srv.url(), "/a/f.txt").starts_with("HTTP/1.1 403"));
        srv.set_all(Behavior::Html);
        assert!(get(&srv.url(), "/x").contains("<html>"));
        assert_eq!(srv.requests(), ["/a/f.txt", "/a/../a/f.txt", "/a/f.txt", "/x"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
