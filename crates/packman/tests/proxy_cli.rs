//! `packman proxy` as a process: a trust ring in PACKMAN_HOME (written through the Ring API,
//! roots pinned), repositories signed with RepoBuilder and served by packman-testkit on
//! 127.0.0.1. The proxy refreshes them itself, serves verified pages and files, answers a
//! tampering host with 502 and packman's message (also on stderr), routes each project to
//! one repository only, and stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use packman_index::FileEntry;
use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_trust::{Home, RepoEntry, Ring};
use packman_tuf::{layout, OffsetDateTime};

fn sha256(b: &[u8]) -> String {
    packman_tuf::target::describe(b).hashes.get("sha256").unwrap().to_string()
}

/// A signed repository with one wheel per project, its pages and the project list.
fn publish(dir: &Path, projects: &[(&str, &[u8])]) -> RepoBuilder {
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    let mut names = Vec::new();
    for (project, wheel) in projects {
        let file = format!("{}-1.0-py3-none-any.whl", project.replace('-', "_"));
        let entry = FileEntry {
            filename: file.clone(),
            url: layout::page_link_to_package(project, &file),
            sha256: sha256(wheel),
            size: wheel.len() as u64,
            upload_time: None,
            requires_python: None,
            yanked: None,
            core_metadata_sha256: None,
        };
        repo.add_target(&layout::package_target(project, &file), wheel).unwrap();
        let json = packman_index::project_json(project, &[entry]);
        repo.add_target(&layout::simple_page(Some(project), true), &json).unwrap();
        names.push(project.to_string());
    }
    repo.add_target(&layout::simple_page(None, true), &packman_index::index_json(&names)).unwrap();
    repo.publish(dir).unwrap();
    repo
}

fn trust(home: &Home, name: &str, server: &TestServer, repo: &RepoBuilder, projects: &[&str]) {
    let mut ring = Ring::load(home).unwrap();
    let mut e = RepoEntry::new(name, &server.url());
    e.projects = projects.iter().map(|p| p.to_string()).collect();
    packman_trust::ensure_trust_bytes(
        &e.trusted(home).metadata_dir,
        Some(&repo.signed_roots[0]),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    ring.add(e).unwrap();
    ring.save().unwrap();
}

fn get(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.pypi.simple.v1+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(home: &Path) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_packman"))
            .args(["proxy", "--listen", "127.0.0.1:0", "--refresh-every", "0"])
            .env("PACKMAN_HOME", home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let addr = first.trim().strip_prefix("packman proxy on http://").and_then(|r| r.strip_suffix("/simple/"));
        let addr = addr.unwrap_or_else(|| panic!("first line: {first:?}")).to_string();
        Proxy { child, addr }
    }

    /// SIGTERM, then everything it wrote to stderr.
    fn stop(mut self) -> String {
        let kill = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "proxy exited with {status}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "proxy did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        err
    }
}

#[test]
fn the_proxy_serves_verified_bytes_routes_projects_and_refuses_a_tampering_host() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = publish(&a_dir, &[("acme-widgets", b"real widgets")]);
    let b = publish(&b_dir, &[("acme-widgets", b"squatted"), ("acme-tools", b"squatted"), ("six", b"six wheel")]);
    let (a_srv, b_srv) = (TestServer::serve_dir(&a_dir).unwrap(), TestServer::serve_dir(&b_dir).unwrap());
    let home = Home::at(tmp.path().join("home"));
    trust(&home, "internal", &a_srv, &a, &["acme-*"]);
    trust(&home, "public", &b_srv, &b, &["*"]);

    let proxy = Proxy::start(home.data_dir());
    let (status, head, body) = get(&proxy.addr, "/simple/acme-widgets/");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_lowercase().contains("content-type: application/vnd.pypi.simple.v1+json"), "{head}");
    assert_eq!(body, a.target_data["simple/acme-widgets/index.json"]);
    let (status, _, body) = get(&proxy.addr, "/packages/acme-widgets/acme_widgets-1.0-py3-none-any.whl");
    assert_eq!((status, body.as_slice()), (200, &b"real widgets"[..]));
    assert_eq!(get(&proxy.addr, "/packages/six/six-1.0-py3-none-any.whl").2, b"six wheel");
    // Owned by internal, which lacks it: never taken from public.
    let (status, _, body) = get(&proxy.addr, "/simple/acme-tools/");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("belongs to repository \"internal\""));
    // Verified files are cached by sha256 (written behind the answer: waited for).
    let kept = home.cache_dir().join("files").join(sha256(b"real widgets"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !kept.is_file() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(std::fs::read(&kept).unwrap(), b"real widgets");

    // public's host swaps six's page for one it made up.
    let page = &b.target_data["simple/six/index.json"];
    b_srv.set(&format!("/targets/simple/six/{}.index.json", sha256(page)), Behavior::Body(b"{\"files\":[]}".to_vec()));
    let (status, _, body) = get(&proxy.addr, "/simple/six/");
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 502, "{body}");
    assert!(
        body.starts_with("packman: /simple/six/: repository \"public\": target \"simple/six/index.json\""),
        "{body}"
    );
    let stderr = proxy.stop();
    assert!(stderr.contains(body.trim()), "the refusal is logged: {stderr}");
}

#[test]
fn without_a_ring_the_proxy_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_packman"))
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .env("PACKMAN_HOME", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lists no repository") && err.contains("packman trust add"), "{err}");
}

fn packman(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_packman")).args(args).env("PACKMAN_HOME", home).output().unwrap()
}

/// While a proxy holds a repository's metadata directory, `search` and `info` still work:
/// they read the trusted files without the lock, verify what is new (a project published
/// since the proxy's refresh) and write nothing there. `update` says why it cannot run
/// instead of waiting for the proxy to stop.
#[test]
fn read_commands_work_while_a_proxy_holds_the_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let mut repo = publish(&dir, &[("six", b"six wheel")]);
    let srv = TestServer::serve_dir(&dir).unwrap();
    let home = Home::at(tmp.path().join("home"));
    trust(&home, "a", &srv, &repo, &["*"]);
    let proxy = Proxy::start(home.data_dir());
    let metadata = home.data_dir().join("ring/a/metadata");
    let before = packman_testkit::dir_state(&metadata);

    // Published after the proxy refreshed: a reader sees it, verified.
    let wheel = b"newer wheel";
    let file = "newer-1.0-py3-none-any.whl";
    repo.add_target(&layout::package_target("newer", file), wheel).unwrap();
    let entry = FileEntry {
        filename: file.into(),
        url: layout::page_link_to_package("newer", file),
        sha256: sha256(wheel),
        size: wheel.len() as u64,
        upload_time: None,
        requires_python: None,
        yanked: None,
        core_metadata_sha256: None,
    };
    repo.add_target(&layout::simple_page(Some("newer"), true), &packman_index::project_json("newer", &[entry]))
        .unwrap();
    repo.add_target(&layout::simple_page(None, true), &packman_index::index_json(&["six".into(), "newer".into()]))
        .unwrap();
    repo.publish(&dir).unwrap();

    let started = Instant::now();
    let o = packman(home.data_dir(), &["search", "e"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["newer  a"], "{out}");
    let o = packman(home.data_dir(), &["info", "newer"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&sha256(wheel)));
    assert!(started.elapsed() < Duration::from_secs(10), "the readers waited for the proxy");
    assert_eq!(packman_testkit::dir_state(&metadata), before, "a reader wrote to the proxy's metadata directory");

    let started = Instant::now();
    let o = packman(home.data_dir(), &["update", "a"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("in use by another packman process"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "update waited for the proxy");
    assert_eq!(packman_testkit::dir_state(&metadata), before);
    proxy.stop();
}
