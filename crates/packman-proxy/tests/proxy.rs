//! The proxy against real repositories: built and signed with [`RepoBuilder`], served on
//! 127.0.0.1 by packman-testkit's [`TestServer`] (which can be told to misbehave), with a
//! trust ring written through [`Ring`] and roots pinned with `ensure_trust_bytes`. Requests
//! go over TCP to a [`Running`] proxy, as pip's would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use packman_index::FileEntry;
use packman_proxy::{Options, Proxy, Running};
use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_trust::{Home, RepoEntry, Ring, RingMirror};
use packman_tuf::{layout, OffsetDateTime};
use tempfile::TempDir;

const JSON: &str = "application/vnd.pypi.simple.v1+json";
/// What pip sends.
const PIP_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

fn sha256(b: &[u8]) -> String {
    packman_tuf::target::describe(b).hashes.get("sha256").unwrap().to_string()
}

fn wheel_name(project: &str, version: &str) -> String {
    format!("{}-{version}-py3-none-any.whl", project.replace('-', "_"))
}

/// A signed repository on 127.0.0.1 whose projects each have one "wheel" (any bytes: the
/// proxy never looks inside) and their simple pages, as `packman repo add` lays them out.
struct Upstream {
    repo: RepoBuilder,
    dir: TempDir,
    server: TestServer,
}

impl Upstream {
    fn new(projects: &[(&str, &[u8])]) -> Upstream {
        Self::build(RepoBuilder::new(OffsetDateTime::now_utc()).unwrap(), projects)
    }

    /// As [`Upstream::new`], every target in one of 8 succinct hashed bins.
    fn with_bins(projects: &[(&str, &[u8])]) -> Upstream {
        Self::build(RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(3).unwrap(), projects)
    }

    /// Writes the plain-name copies `packman serve` keeps of `packages/` and `simple/`
    /// targets (`targets/PATH`).
    fn write_plain_copies(&self) {
        for (path, bytes) in &self.repo.target_data {
            if layout::plain_copy_wanted(path) {
                let p = self.dir.path().join("targets").join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
        }
    }

    fn build(mut repo: RepoBuilder, projects: &[(&str, &[u8])]) -> Upstream {
        let mut names = Vec::new();
        for (project, wheel) in projects {
            let file = wheel_name(project, "1.0");
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
            let json = packman_index::project_json(project, std::slice::from_ref(&entry));
            let html = packman_index::project_html(project, &[entry]);
            repo.add_target(&layout::simple_page(Some(project), true), &json).unwrap();
            repo.add_target(&layout::simple_page(Some(project), false), &html).unwrap();
            names.push(project.to_string());
        }
        repo.add_target(&layout::simple_page(None, true), &packman_index::index_json(&names)).unwrap();
        repo.add_target(&layout::simple_page(None, false), &packman_index::index_html(&names)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        repo.publish(dir.path()).unwrap();
        let server = TestServer::serve_dir(dir.path()).unwrap();
        Upstream { repo, dir, server }
    }

    /// The bytes of a target as signed.
    fn target(&self, path: &str) -> Vec<u8> {
        self.repo.target_data[path].clone()
    }

    /// The URL path the updater fetches `target` from (consistent snapshots: hash-prefixed).
    fn target_url_path(&self, target: &str) -> String {
        let (dir, file) = target.rsplit_once('/').unwrap();
        format!("/targets/{dir}/{}.{file}", sha256(&self.target(target)))
    }

    fn publish(&mut self) {
        self.repo.publish(self.dir.path()).unwrap();
    }

    fn metadata(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("metadata").join(name)).unwrap()
    }
}

/// A packman home whose ring lists `repos` (name, upstream, project patterns) in order.
fn home_with(repos: &[(&str, &Upstream, &[&str])]) -> (TempDir, Home) {
    let d = tempfile::tempdir().unwrap();
    let home = Home::at(d.path());
    let mut ring = Ring::load(&home).unwrap();
    for (name, up, projects) in repos {
        let mut e = RepoEntry::new(name, &up.server.url());
        e.projects = projects.iter().map(|p| p.to_string()).collect();
        let dir = e.trusted(&home).metadata_dir;
        packman_trust::ensure_trust_bytes(&dir, Some(&up.repo.signed_roots[0]), OffsetDateTime::now_utc()).unwrap();
        ring.add(e).unwrap();
    }
    ring.save().unwrap();
    (d, home)
}

fn options() -> Options {
    let mut o = Options::default();
    o.client.fetcher.read_timeout = Duration::from_secs(5);
    o.client.fetcher.connect_timeout = Duration::from_secs(5);
    o.log_to_stderr = false;
    o
}

fn start(home: &Home, options: Options) -> Running {
    let proxy = Proxy::open(home, options).unwrap();
    for (name, r) in proxy.refresh_all() {
        r.unwrap_or_else(|e| panic!("refreshing {name}: {e}"));
    }
    Running::start(Arc::new(proxy), std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap()
}

struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One GET over a fresh connection, as plain HTTP/1.1.
fn get(p: &Running, path: &str, accept: Option<&str>) -> Got {
    get_at(p.addr(), path, accept)
}

fn get_at(addr: std::net::SocketAddr, path: &str, accept: Option<&str>) -> Got {
    request(addr, "GET", path, accept)
}

fn request(addr: std::net::SocketAddr, method: &str, path: &str, accept: Option<&str>) -> Got {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Got { status, headers, body: raw[split + 4..].to_vec() }
}

/// Files in the proxy's cache: (name, bytes).
fn cached(p: &Running) -> Vec<(String, Vec<u8>)> {
    // Files are written to the cache behind the answers.
    p.proxy().flush_cache().unwrap();
    let dir: PathBuf = p.proxy().cache_dir().into();
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

const WHEEL: &[u8] = b"PK\x03\x04 the demo wheel's bytes";

#[test]
fn pages_and_wheels_are_served_as_signed_with_their_content_types() {
    let up = Upstream::new(&[("demo", WHEEL), ("other-thing", b"other")]);
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let p = start(&home, options());

    let page = get(&p, "/simple/demo/", Some(PIP_ACCEPT));
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("content-type"), Some(JSON));
    assert_eq!(page.body, up.target("simple/demo/index.json"));
    // Links stay relative: they lead back to the proxy, no upstream host leaks.
    let upstream_host = up.server.url().trim_start_matches("http://").to_string();
    assert!(!page.text().contains(&upstream_host) && page.text().contains("../../packages/demo/"), "{}", page.text());

    let html = get(&p, "/simple/demo/", Some("text/html"));
    assert_eq!((html.status, html.header("content-type")), (200, Some("text/html; charset=utf-8")));
    assert_eq!(html.body, up.target("simple/demo/index.html"));
    let html = get(&p, "/simple/demo/", Some("application/vnd.pypi.simple.v1+html"));
    assert_eq!(html.header("content-type"), Some("application/vnd.pypi.simple.v1+html"));
    assert_eq!(get(&p, "/simple/demo/", Some("application/json")).status, 406);

    let file = wheel_name("demo", "1.0");
    let whl = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!(whl.status, 200, "{}", whl.text());
    assert_eq!(whl.body, WHEEL);
    assert_eq!(whl.header("content-type"), Some("application/octet-stream"));
    assert_eq!(whl.header("content-length"), Some(WHEEL.len().to_string().as_str()));
    // Verified bytes are kept by their sha256, nothing else.
    let c = cached(&p);
    assert!(c.contains(&(sha256(WHEEL), WHEEL.to_vec())), "{:?}", c.iter().map(|x| &x.0).collect::<Vec<_>>());
    assert!(c.iter().all(|(name, bytes)| *name == sha256(bytes)));

    // HEAD: the headers of GET, no body; other methods are refused.
    let head = request(p.addr(), "HEAD", &format!("/packages/demo/{file}"), None);
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some(WHEEL.len().to_string().as_str()), 0)
    );
    assert_eq!(request(p.addr(), "POST", &format!("/packages/demo/{file}"), None).status, 405);
    // Again: from the cache, same bytes.
    let again = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!(again.body, WHEEL);
    let served = p.proxy().served();
    let whl_served: Vec<_> = served.iter().filter(|s| s.target == format!("packages/demo/{file}")).collect();
    assert_eq!(
        whl_served.iter().map(|s| (s.repo.as_str(), s.cached)).collect::<Vec<_>>(),
        [("main", false), ("main", true), ("main", true)]
    );

    // PEP 503 names: redirected to the normal form.
    let moved = get(&p, "/simple/Other_Thing/", None);
    assert_eq!((moved.status, moved.header("location")), (301, Some("/simple/other-thing/")));
    // The project list, from the signed one.
    let list = get(&p, "/simple/", Some(JSON));
    assert_eq!(list.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let names: Vec<&str> = v["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["demo", "other-thing"]);
    // Outside the simple API, or a file nobody signed: 404.
    assert_eq!(get(&p, "/metadata/timestamp.json", None).status, 404);
    let missing = get(&p, "/packages/demo/demo-9.9-py3-none-any.whl", None);
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.text().contains("packages/demo/demo-9.9-py3-none-any.whl"), "{}", missing.text());
    assert!(p.proxy().refusals().iter().all(|r| r.status == 404 || r.status == 406 || r.status == 301));
}

#[test]
fn a_swapped_wheel_with_a_rewritten_page_is_refused_and_nothing_is_cached() {
    let up = Upstream::new(&[("demo", WHEEL)]);
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let p = start(&home, options());
    // The host swaps the wheel and rewrites the page to name the new file's hash, at the
    // URLs the signed metadata points to.
    let evil = b"PK\x03\x04 an attacker's wheel".to_vec();
    let file = wheel_name("demo", "1.0");
    let mut page: serde_json::Value = serde_json::from_slice(&up.target("simple/demo/index.json")).unwrap();
    page["files"][0]["hashes"]["sha256"] = sha256(&evil).into();
    page["files"][0]["size"] = evil.len().into();
    let evil_page = serde_json::to_vec(&page).unwrap();
    up.server.set(&up.target_url_path(&format!("packages/demo/{file}")), Behavior::Body(evil.clone()));
    up.server.set(&up.target_url_path("simple/demo/index.json"), Behavior::Body(evil_page.clone()));

    let got = get(&p, "/simple/demo/", Some(PIP_ACCEPT));
    assert_eq!(got.status, 502, "{}", got.text());
    let msg = got.text();
    assert!(msg.starts_with("packman: /simple/demo/: repository \"main\": target \"simple/demo/index.json\""), "{msg}");
    assert!(msg.contains(&up.server.url()) && msg.contains("sha256"), "{msg}");
    let got = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!(got.status, 502, "{}", got.text());
    assert!(got.text().contains(&format!("target \"packages/demo/{file}\"")), "{}", got.text());
    // Nothing of the attacker's is kept, not even under a temp name.
    assert!(cached(&p).is_empty(), "{:?}", cached(&p).iter().map(|x| &x.0).collect::<Vec<_>>());
    let refusals = p.proxy().refusals();
    assert_eq!(refusals.iter().map(|r| r.status).collect::<Vec<_>>(), [502, 502]);
    // The host behaves again: served, verified.
    up.server.reset();
    assert_eq!(get(&p, &format!("/packages/demo/{file}"), None).body, WHEEL);
}

#[test]
fn rolled_back_timestamp_or_snapshot_is_refused() {
    let mut up = Upstream::new(&[("demo", WHEEL)]);
    let old_timestamp = up.metadata("timestamp.json");
    let old_snapshot = up.metadata("1.snapshot.json");
    up.publish(); // timestamp 2, snapshot 2
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let mut o = options();
    o.refresh_every = Duration::ZERO;
    let p = start(&home, o);
    assert_eq!(get(&p, "/simple/demo/", None).status, 200);

    // The host replays the older timestamp.
    up.server.set("/metadata/timestamp.json", Behavior::Body(old_timestamp));
    let got = get(&p, "/simple/demo/", None);
    assert_eq!(got.status, 502, "{}", got.text());
    assert!(got.text().contains("/metadata/timestamp.json"), "{}", got.text());
    assert!(got.text().to_lowercase().contains("version"), "{}", got.text());
    // A file request after the refused refresh is refused too.
    let file = get(&p, &format!("/packages/demo/{}", wheel_name("demo", "1.0")), None);
    assert_eq!(file.status, 502, "{}", file.text());

    // A newer timestamp (the attacker holds its key) naming the older snapshot.
    up.server.reset();
    up.repo.timestamp.meta.insert("snapshot.json".into(), packman_tuf::target::describe_meta(1, [&old_snapshot[..]]));
    up.repo.timestamp.version += 1;
    up.server.set("/metadata/timestamp.json", Behavior::Body(up.repo.signed_timestamp().unwrap()));
    let got = get(&p, "/simple/demo/", None);
    assert_eq!(got.status, 502, "{}", got.text());
    assert!(got.text().contains("snapshot"), "{}", got.text());
}

#[test]
fn a_frozen_timestamp_is_refused_once_it_expires() {
    let up = Upstream::new(&[("demo", WHEEL)]);
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let start_time = OffsetDateTime::now_utc();
    let offset = Arc::new(AtomicI64::new(0));
    let mut o = options();
    o.refresh_every = Duration::ZERO;
    let o2 = offset.clone();
    o.clock = Arc::new(move || start_time + Duration::from_secs(o2.load(Ordering::SeqCst) as u64));
    let p = start(&home, o);
    assert_eq!(get(&p, "/simple/demo/", None).status, 200);
    // Two days on, the host still serves the same timestamp (it expires after one).
    offset.store(2 * 86_400, Ordering::SeqCst);
    let got = get(&p, "/simple/demo/", None);
    assert_eq!(got.status, 502, "{}", got.text());
    assert!(got.text().contains("timestamp") && got.text().contains("expired"), "{}", got.text());
    let file = get(&p, &format!("/packages/demo/{}", wheel_name("demo", "1.0")), None);
    assert_eq!(file.status, 502, "{}", file.text());
}

#[test]
fn a_project_comes_only_from_the_repository_configured_for_it() {
    let internal = Upstream::new(&[("acme-widgets", b"the real widgets")]);
    let public = Upstream::new(&[
        ("acme-widgets", b"squatted widgets"),
        ("acme-tools", b"squatted tools"),
        ("requests", b"requests"),
    ]);
    let (_d, home) = home_with(&[("internal", &internal, &["acme-*"]), ("public", &public, &["*"])]);
    let p = start(&home, options());

    let page = get(&p, "/simple/acme-widgets/", Some(PIP_ACCEPT));
    assert_eq!(page.body, internal.target("simple/acme-widgets/index.json"));
    let file = wheel_name("acme-widgets", "1.0");
    assert_eq!(get(&p, &format!("/packages/acme-widgets/{file}"), None).body, b"the real widgets");
    assert_eq!(get(&p, "/simple/requests/", Some(PIP_ACCEPT)).body, public.target("simple/requests/index.json"));

    // acme-tools belongs to internal, which lacks it: 404, even though public has it.
    let tools = get(&p, "/simple/acme-tools/", Some(PIP_ACCEPT));
    assert_eq!(tools.status, 404, "{}", tools.text());
    assert!(
        tools.text().contains("project \"acme-tools\" belongs to repository \"internal\"")
            && tools.text().contains("never takes a project from a repository other than"),
        "{}",
        tools.text()
    );
    let f = get(&p, &format!("/packages/acme-tools/{}", wheel_name("acme-tools", "1.0")), None);
    assert_eq!(f.status, 404, "{}", f.text());
    assert!(!p.proxy().served().iter().any(|s| s.target.contains("acme-tools")));
    assert!(p.proxy().served().iter().filter(|s| s.target.contains("acme-widgets")).all(|s| s.repo == "internal"));

    // The list names each project once, from its owner; acme-tools from nobody.
    let list = get(&p, "/simple/", Some(JSON));
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let names: Vec<&str> = v["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme-widgets", "requests"]);

    // A ring with no repository for a project: 404 naming the config file.
    let (_d2, only) = home_with(&[("internal", &internal, &["acme-*"])]);
    let p2 = start(&only, options());
    let r = get(&p2, "/simple/requests/", None);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no trusted repository is configured for project \"requests\""), "{}", r.text());
    assert!(r.text().contains(&only.config_dir().join("config.toml").display().to_string()), "{}", r.text());
}

#[test]
fn an_empty_ring_or_an_unpinned_repository_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let home = Home::at(d.path());
    let err = Proxy::open(&home, options()).err().expect("no ring").to_string();
    assert!(err.contains("lists no repository"), "{err}");
    let up = Upstream::new(&[("demo", WHEEL)]);
    let mut ring = Ring::load(&home).unwrap();
    ring.add(RepoEntry::new("main", &up.server.url())).unwrap();
    ring.save().unwrap();
    let proxy = Proxy::open(&home, options()).unwrap();
    let results = proxy.refresh_all();
    let err = results[0].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("no trusted root"), "{err}");
}

#[test]
fn a_slow_download_holds_up_no_other_request() {
    let slow_wheel = [b'x'; 30];
    let up = Upstream::new(&[("slow", &slow_wheel), ("fast", b"fast wheel")]);
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let p = start(&home, options());
    // 30 bytes, one every 100 ms: three seconds (within the fetcher's grace period).
    let slow_file = wheel_name("slow", "1.0");
    let slow_target = layout::package_target("slow", &slow_file);
    up.server.set(&up.target_url_path(&slow_target), Behavior::Drip(Duration::from_millis(100)));
    let addr = p.addr();
    let slow = std::thread::spawn(move || get_at(addr, &format!("/packages/slow/{slow_file}"), None));
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let fast = get(&p, &format!("/packages/fast/{}", wheel_name("fast", "1.0")), None);
    assert_eq!((fast.status, fast.body.as_slice()), (200, &b"fast wheel"[..]));
    assert_eq!(get(&p, "/simple/fast/", None).status, 200);
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(!slow.is_finished(), "the slow download should still be running");
    let slow = slow.join().unwrap();
    assert_eq!((slow.status, slow.body.as_slice()), (200, &slow_wheel[..]));
}

/// A packman home whose ring lists one repository "main" (every project) of `up`'s root,
/// fetched from `primary` (a base URL) with `mirrors` (base URLs) configured in order.
fn home_with_mirrors(up: &Upstream, primary: &str, mirrors: &[String]) -> (TempDir, Home) {
    let d = tempfile::tempdir().unwrap();
    let home = Home::at(d.path());
    let mut ring = Ring::load(&home).unwrap();
    let mut e = RepoEntry::new("main", primary);
    e.mirrors = mirrors
        .iter()
        .map(|m| RingMirror { metadata_url: format!("{m}/metadata/"), targets_url: format!("{m}/targets/") })
        .collect();
    let dir = e.trusted(&home).metadata_dir;
    packman_trust::ensure_trust_bytes(&dir, Some(&up.repo.signed_roots[0]), OffsetDateTime::now_utc()).unwrap();
    ring.add(e).unwrap();
    ring.save().unwrap();
    // Read back from the file: the mirrors are part of the config.
    assert_eq!(Ring::load(&home).unwrap().repos[0].mirrors.len(), mirrors.len());
    (d, home)
}

/// A base URL nothing listens on.
fn down_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[test]
fn a_wheel_tampered_with_on_the_primary_is_served_from_a_good_mirror() {
    let up = Upstream::new(&[("demo", WHEEL)]);
    let mirror = TestServer::serve_dir(up.dir.path()).unwrap();
    let file = wheel_name("demo", "1.0");
    let target = format!("packages/demo/{file}");
    let evil = b"PK\x03\x04 an attacker's wheel".to_vec();
    up.server.set(&up.target_url_path(&target), Behavior::Body(evil.clone()));
    let (_d, home) = home_with_mirrors(&up, &up.server.url(), &[mirror.url()]);
    let p = start(&home, options());

    let got = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, up.target(&target));
    assert_eq!(got.body, WHEEL);
    // The mirror served it, after the primary's bytes were refused.
    assert!(mirror.requests().iter().any(|r| r.contains(&up.target_url_path(&target))), "{:?}", mirror.requests());
    let failures = p.proxy().mirror_failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let f = &failures[0];
    assert_eq!(f.repo, "main");
    assert_eq!(f.failure.mirror, format!("{}/metadata/", up.server.url()));
    assert_eq!(f.failure.kind, packman_client::FailureKind::Refused);
    assert!(f.to_string().contains("served bytes that failed verification"), "{f}");
    assert!(p.proxy().refusals().is_empty(), "{:?}", p.proxy().refusals());
    // Only the verified bytes are cached.
    assert!(cached(&p).iter().all(|(_, b)| b != &evil));
}

#[test]
fn a_repository_whose_primary_is_down_is_read_from_its_mirror() {
    let up = Upstream::new(&[("demo", WHEEL)]);
    let mirror = TestServer::serve_dir(up.dir.path()).unwrap();
    let primary = down_url();
    let (_d, home) = home_with_mirrors(&up, &primary, &[mirror.url()]);
    let p = start(&home, options());
    let got = get(&p, "/simple/demo/", Some(JSON));
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, up.target("simple/demo/index.json"));
    let file = wheel_name("demo", "1.0");
    let got = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!((got.status, got.body.as_slice()), (200, WHEEL));
    let failures = p.proxy().mirror_failures();
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|f| f.failure.mirror == format!("{primary}/metadata/")
            && f.failure.kind == packman_client::FailureKind::Unreachable),
        "{failures:?}"
    );
}

#[test]
fn a_wheel_bad_on_every_mirror_is_refused_and_nothing_is_cached() {
    let up = Upstream::new(&[("demo", WHEEL)]);
    let mirror = TestServer::serve_dir(up.dir.path()).unwrap();
    let file = wheel_name("demo", "1.0");
    let target = format!("packages/demo/{file}");
    let evil = b"PK\x03\x04 an attacker's wheel".to_vec();
    up.server.set(&up.target_url_path(&target), Behavior::Body(evil.clone()));
    mirror.set(&up.target_url_path(&target), Behavior::Body(evil));
    let down = down_url();
    let (_d, home) = home_with_mirrors(&up, &up.server.url(), &[mirror.url(), down.clone()]);
    let p = start(&home, options());
    let before = cached(&p);

    let got = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!(got.status, 502, "{}", got.text());
    let msg = got.text();
    assert!(msg.starts_with(&format!("packman: /packages/demo/{file}: repository \"main\"")), "{msg}");
    assert_eq!(cached(&p), before, "nothing new is cached");
    // The wheel's three attempts, after the refresh's (the down mirror asked for the next
    // root, which the others answered "not found").
    let failures = p.proxy().mirror_failures();
    let wheel: Vec<_> = failures.iter().filter(|f| f.failure.url.ends_with(&file)).collect();
    let got: Vec<_> = wheel.iter().map(|f| (f.failure.mirror.clone(), f.failure.kind)).collect();
    use packman_client::FailureKind::{Refused, Unreachable};
    assert_eq!(
        got,
        [
            (format!("{}/metadata/", up.server.url()), Refused),
            (format!("{}/metadata/", mirror.url()), Refused),
            (format!("{down}/metadata/"), Unreachable)
        ],
        "{failures:?}"
    );
    assert_eq!(p.proxy().refusals().len(), 1);
}

// The overlapped path (Options::speculate): a repository with hashed bins and plain-name
// copies of its `packages/` and `simple/` targets, as `packman serve` and mirrors have.

/// The URL path of `target`'s plain-name copy.
fn plain_path(target: &str) -> String {
    format!("/targets/{target}")
}

/// Requests of the upstream's log: (metadata, plain-name targets, hashed-name targets).
fn split_log(log: &[String]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut md, mut plain, mut hashed) = (Vec::new(), Vec::new(), Vec::new());
    for p in log {
        if p.starts_with("/metadata/") {
            md.push(p.clone());
        } else if p.rsplit('/').next().is_some_and(|f| layout::is_immutable(f, false)) {
            hashed.push(p.clone());
        } else {
            plain.push(p.clone());
        }
    }
    (md, plain, hashed)
}

#[test]
fn a_page_and_a_wheel_come_by_their_plain_names_while_their_bins_load_verified() {
    let up = Upstream::with_bins(&[("demo", WHEEL), ("other-thing", b"other")]);
    up.write_plain_copies();
    let file = wheel_name("demo", "1.0");
    let wheel_target = format!("packages/demo/{file}");
    // A wheel asked for first (no page hinted its bin), then a page, each from a fresh
    // proxy so that neither finds the other's bin loaded.
    for (path, target, want) in [
        (format!("/packages/demo/{file}"), wheel_target.clone(), WHEEL.to_vec()),
        (
            "/simple/other-thing/".to_string(),
            "simple/other-thing/index.json".to_string(),
            up.target("simple/other-thing/index.json"),
        ),
    ] {
        let (_d, home) = home_with(&[("main", &up, &["*"])]);
        let p = start(&home, options());
        up.server.clear_log();
        let got = get(&p, &path, Some(PIP_ACCEPT));
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.body, want);
        let (md, plain, hashed) = split_log(&up.server.requests());
        assert_eq!(plain, [plain_path(&target)], "{md:?} {hashed:?}");
        assert!(hashed.is_empty(), "{hashed:?}");
        // The bin, once; after a page, perhaps also the bin its wheel is in (hinted).
        let hinted = usize::from(target.starts_with("simple/"));
        assert!(!md.is_empty() && md.len() <= 1 + hinted, "{md:?}");
        let s = p.proxy().plain_copies();
        assert_eq!((s.verified, s.refused), (1, 0), "{s:?}");
        // Cached under its sha256 only, nothing else left behind.
        let c = cached(&p);
        assert!(c.contains(&(sha256(&want), want.clone())));
        assert!(
            c.iter().all(|(name, bytes)| *name == sha256(bytes)),
            "{:?}",
            c.iter().map(|x| &x.0).collect::<Vec<_>>()
        );
        assert_eq!(p.proxy().served().iter().filter(|s| s.target == target && !s.cached).count(), 1);
        // Again: from the cache, no file fetched (a hinted bin may still be arriving).
        let files = |log: &[String]| log.iter().filter(|p| p.starts_with("/targets/")).count();
        let before = files(&up.server.requests());
        assert_eq!(get(&p, &path, Some(PIP_ACCEPT)).body, want);
        assert_eq!(files(&up.server.requests()), before);
        if hinted == 1 {
            // The page's wheel: its bin was hinted, so it is not fetched again.
            let got = get(&p, &format!("/packages/other-thing/{}", wheel_name("other-thing", "1.0")), None);
            assert_eq!(got.body, b"other");
            let log = up.server.requests();
            let (md, _, _) = split_log(&log);
            assert!(md.len() <= 2, "{md:?}");
            let mut unique = log.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), log.len(), "{log:?}");
        }
    }
}

#[test]
fn a_tampered_plain_copy_is_not_served_the_hashed_name_is() {
    let up = Upstream::with_bins(&[("demo", WHEEL)]);
    up.write_plain_copies();
    let file = wheel_name("demo", "1.0");
    let target = format!("packages/demo/{file}");
    let evil = b"PK\x03\x04 an attacker's wheel".to_vec();
    up.server.set(&plain_path(&target), Behavior::Body(evil.clone()));

    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let p = start(&home, options());
    let got = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, WHEEL);
    assert_eq!(p.proxy().plain_copies().refused, 1);
    let (_, plain, hashed) = split_log(&up.server.requests());
    assert!(plain.contains(&plain_path(&target)) && hashed == [up.target_url_path(&target)], "{plain:?} {hashed:?}");
    // A wrong guess is no refusal, no mirror's fault, and nothing of it is kept.
    assert!(p.proxy().refusals().is_empty() && p.proxy().mirror_failures().is_empty());
    assert!(cached(&p).iter().all(|(name, bytes)| *name == sha256(bytes) && *bytes != evil));

    // No plain copy at all (a repository without them): the hashed name, quietly.
    let file_path = format!("/packages/demo/{file}");
    up.server.set(&plain_path(&target), Behavior::Status(404));
    let (_d2, home2) = home_with(&[("main", &up, &["*"])]);
    let p2 = start(&home2, options());
    assert_eq!(get(&p2, &file_path, None).body, WHEEL);
    assert_eq!(p2.proxy().plain_copies().unused, 1);
    assert!(p2.proxy().refusals().is_empty() && p2.proxy().mirror_failures().is_empty());

    // Both names tampered with: refused with the hashed name's error, nothing cached.
    up.server.set(&plain_path(&target), Behavior::Body(evil.clone()));
    up.server.set(&up.target_url_path(&target), Behavior::Body(evil.clone()));
    let (_d3, home3) = home_with(&[("main", &up, &["*"])]);
    let p3 = start(&home3, options());
    let got = get(&p3, &file_path, None);
    assert_eq!(got.status, 502, "{}", got.text());
    assert!(
        got.text().contains(&format!("target \"{target}\"")) && got.text().contains(&up.target_url_path(&target)),
        "{}",
        got.text()
    );
    assert!(cached(&p3).iter().all(|(_, bytes)| *bytes != evil));
    assert!(cached(&p3).iter().all(|(name, bytes)| *name == sha256(bytes)));
}

#[test]
fn an_install_fetches_each_file_once_and_each_bin_at_most_once() {
    let projects: Vec<(String, Vec<u8>)> =
        (0..12).map(|i| (format!("pkg-{i:02}"), format!("PK\x03\x04 wheel {i}").into_bytes())).collect();
    let refs: Vec<(&str, &[u8])> = projects.iter().map(|(n, w)| (n.as_str(), w.as_slice())).collect();
    let up = Upstream::with_bins(&refs);
    up.write_plain_copies();
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let p = start(&home, options());
    up.server.clear_log();
    // As pip does: each project's page, then its wheel.
    for (name, wheel) in &projects {
        let page = get(&p, &format!("/simple/{name}/"), Some(PIP_ACCEPT));
        assert_eq!(page.status, 200, "{}", page.text());
        let got = get(&p, &format!("/packages/{name}/{}", wheel_name(name, "1.0")), None);
        assert_eq!((got.status, &got.body), (200, wheel), "{}", got.text());
    }
    let log = up.server.requests();
    let (md, plain, hashed) = split_log(&log);
    let mut unique = log.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), log.len(), "a URL fetched twice: {log:?}");
    // Each of the 24 files once, by one name or the other (a hinted bin may already be
    // loaded when its wheel is asked for: then the hashed name); never both.
    assert_eq!(plain.len() + hashed.len(), 2 * projects.len(), "{plain:?} {hashed:?}");
    // The 8 bins at most, each once.
    assert!(md.len() <= 8, "{md:?}");
    assert!(md.iter().all(|m| m.contains(".bins-")), "{md:?}");
    let s = p.proxy().plain_copies();
    assert_eq!(s.refused, 0);
    assert_eq!(s.verified as usize, plain.len());
}

#[test]
fn without_speculation_the_bin_then_the_hashed_name() {
    let up = Upstream::with_bins(&[("demo", WHEEL)]);
    up.write_plain_copies();
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let mut o = options();
    o.speculate = false;
    let p = start(&home, o);
    up.server.clear_log();
    assert_eq!(get(&p, &format!("/packages/demo/{}", wheel_name("demo", "1.0")), None).body, WHEEL);
    let (md, plain, hashed) = split_log(&up.server.requests());
    assert_eq!((md.len(), plain.len(), hashed.len()), (1, 0, 1));
    assert_eq!(p.proxy().plain_copies(), Default::default());
}

#[test]
fn a_stalled_plain_copy_costs_time_not_the_file() {
    let up = Upstream::with_bins(&[("demo", WHEEL)]);
    up.write_plain_copies();
    let file = wheel_name("demo", "1.0");
    let target = format!("packages/demo/{file}");
    up.server.set(&plain_path(&target), Behavior::Stall);
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let mut o = options();
    o.client.fetcher.read_timeout = Duration::from_secs(1);
    let p = start(&home, o);
    let started = std::time::Instant::now();
    let got = get(&p, &format!("/packages/demo/{file}"), None);
    assert_eq!((got.status, got.body.as_slice()), (200, WHEEL), "{}", got.text());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(p.proxy().plain_copies().unused, 1);
    assert!(p.proxy().refusals().is_empty() && p.proxy().mirror_failures().is_empty());
    assert!(cached(&p).iter().all(|(name, bytes)| *name == sha256(bytes)));
}

#[test]
fn a_guess_for_a_file_nobody_signed_leaves_nothing_behind() {
    let up = Upstream::with_bins(&[("demo", WHEEL)]);
    up.write_plain_copies();
    // The host has a file the metadata does not list, and sends it slowly.
    let unsigned = "packages/demo/demo-9.9-py3-none-any.whl";
    up.server.set(&plain_path(unsigned), Behavior::Stall);
    let (_d, home) = home_with(&[("main", &up, &["*"])]);
    let mut o = options();
    o.client.fetcher.read_timeout = Duration::from_secs(1);
    let p = start(&home, o);
    let got = get(&p, &format!("/{unsigned}"), None);
    assert_eq!(got.status, 404, "{}", got.text());
    assert!(up.server.requests().contains(&plain_path(unsigned)), "{:?}", up.server.requests());
    // Answered only once the guess was over: no temp file of it is left in the cache.
    assert!(cached(&p).is_empty(), "{:?}", cached(&p).iter().map(|x| &x.0).collect::<Vec<_>>());
}
