//! End-to-end tests of the publisher: `packman repo …` run as a real process (stdin is null,
//! so nothing ever prompts) on repositories in temporary directories, read back by the client
//! (`packman download`) over file:// and over HTTP on 127.0.0.1. Wheels and sdists are built
//! here, real-shaped (dist-info with METADATA, WHEEL and RECORD; PKG-INFO in an sdist).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use packman_testkit::TestServer;
use serde_json::Value;

// ---- running packman ---------------------------------------------------------------------

fn command(args: &[&str], passphrase: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_packman"));
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("PACKMAN_PASSPHRASE");
    if let Some(p) = passphrase {
        c.env("PACKMAN_PASSPHRASE", p);
    }
    c
}

fn run(args: &[&str], passphrase: Option<&str>) -> Output {
    command(args, passphrase).output().expect("run packman")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts success; returns stdout.
#[track_caller]
fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "packman failed ({:?})\nstdout:\n{out}\nstderr:\n{err}", o.status);
    out
}

/// Asserts a clean failure (exit 1, one error line, no panic); returns stderr.
#[track_caller]
fn fails(o: Output) -> String {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("packman: error: ") && !err.contains("panicked"), "{err}");
    err
}

#[track_caller]
fn has_all(s: &str, needles: &[&str]) {
    for n in needles {
        assert!(s.contains(n), "{n:?} missing from:\n{s}");
    }
}

fn sha256(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

// ---- building distributions ----------------------------------------------------------------

/// RECORD uses urlsafe base64 without padding.
fn b64_urlsafe(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

struct Built {
    path: PathBuf,
    /// The core metadata inside (METADATA / PKG-INFO).
    metadata: Vec<u8>,
}

impl Built {
    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
    fn name(&self) -> &str {
        self.path.file_name().unwrap().to_str().unwrap()
    }
    fn p(&self) -> &str {
        s(&self.path)
    }
}

/// A pure-Python wheel `{dist}-{version}-py3-none-any.whl` whose METADATA says `Name: {meta_name}`.
fn wheel(
    dir: &Path,
    dist: &str,
    version: &str,
    meta_name: &str,
    requires_python: Option<&str>,
    payload: &str,
) -> Built {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let di = format!("{dist}-{version}.dist-info");
    let mut metadata =
        format!("Metadata-Version: 2.1\nName: {meta_name}\nVersion: {version}\nSummary: a test package\n");
    if let Some(rp) = requires_python {
        metadata.push_str(&format!("Requires-Python: {rp}\n"));
    }
    metadata.push('\n');
    let module = dist.to_lowercase();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("{module}/__init__.py"), payload.as_bytes().to_vec()),
        (format!("{di}/METADATA"), metadata.clone().into_bytes()),
        (
            format!("{di}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: packman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    let mut record = String::new();
    for (n, b) in &files {
        let digest = ring::digest::digest(&ring::digest::SHA256, b);
        record.push_str(&format!("{n},sha256={},{}\n", b64_urlsafe(digest.as_ref()), b.len()));
    }
    record.push_str(&format!("{di}/RECORD,,\n"));
    files.push((format!("{di}/RECORD"), record.into_bytes()));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (n, b) in files {
        z.start_file(n, opts).unwrap();
        z.write_all(&b).unwrap();
    }
    z.finish().unwrap();
    Built { path, metadata: metadata.into_bytes() }
}

/// An sdist `{name}-{version}.tar.gz` with PKG-INFO and pyproject.toml.
fn sdist(dir: &Path, name: &str, version: &str) -> Built {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}-{version}.tar.gz"));
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n").into_bytes();
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    let pyproject = format!("[project]\nname = \"{name}\"\nversion = \"{version}\"\n");
    for (n, b) in [("PKG-INFO", metadata.as_slice()), ("pyproject.toml", pyproject.as_bytes())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(b.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, format!("{name}-{version}/{n}"), b).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
    Built { path, metadata }
}

// ---- a repository under test ---------------------------------------------------------------

struct Repo {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// Every file (and directory) under the given subdirectories of a repository, with the
/// sha256 of each file.
type Tree = BTreeMap<String, String>;

impl Repo {
    fn init(extra: &[&str]) -> Repo {
        Self::init_with(extra, None)
    }

    fn init_with(extra: &[&str], passphrase: Option<&str>) -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let mut args = vec!["repo", "init", s(&dir), "--bins", "16"];
        args.extend_from_slice(extra);
        let o = run(&args, passphrase);
        let err = text(&o).1;
        let out = ok(o);
        assert!(out.contains("created repository"), "{out}");
        if passphrase.is_none() {
            assert!(err.contains("private keys are stored unencrypted"), "{err}");
        }
        Repo { tmp, dir }
    }

    fn d(&self) -> &str {
        s(&self.dir)
    }

    /// A path next to the repository (sources, offline keys, client state).
    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `packman repo SUB DIR ARGS…`
    fn repo(&self, sub: &str, args: &[&str]) -> Output {
        self.repo_with(sub, args, None)
    }

    fn repo_with(&self, sub: &str, args: &[&str], passphrase: Option<&str>) -> Output {
        let mut a = vec!["repo", sub, self.d()];
        a.extend_from_slice(args);
        run(&a, passphrase)
    }

    /// `packman repo key ACTION DIR ROLE ARGS…`
    fn key(&self, action: &str, role: &str, args: &[&str]) -> Output {
        let mut a = vec!["repo", "key", action, self.d(), role];
        a.extend_from_slice(args);
        run(&a, None)
    }

    fn walk(&self, subdirs: &[&str]) -> Tree {
        fn go(base: &Path, p: &Path, out: &mut Tree) {
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"), "dir".into());
                for e in std::fs::read_dir(p).unwrap() {
                    go(base, &e.unwrap().path(), out);
                }
            } else {
                out.insert(rel, sha256(&std::fs::read(p).unwrap()));
            }
        }
        let mut out = Tree::new();
        for sub in subdirs {
            let p = self.dir.join(sub);
            if p.exists() {
                go(&self.dir, &p, &mut out);
            }
        }
        out
    }

    /// What clients see plus the staged root: DIR/metadata, DIR/targets, DIR/staged.
    fn tree(&self) -> Tree {
        self.walk(&["metadata", "targets", "staged"])
    }

    /// The `signed` part of a published metadata file.
    fn signed(&self, file: &str) -> Value {
        read_json(&self.dir.join("metadata").join(file))["signed"].clone()
    }

    fn snapshot(&self) -> Value {
        let v = self.signed("timestamp.json")["meta"]["snapshot.json"]["version"].as_u64().unwrap();
        self.signed(&format!("{v}.snapshot.json"))
    }

    fn version(&self, role: &str) -> u64 {
        match role {
            "timestamp" => self.signed("timestamp.json")["version"].as_u64().unwrap(),
            "root" => self.signed("root.json")["version"].as_u64().unwrap(),
            _ => self.snapshot()["version"].as_u64().unwrap(),
        }
    }

    fn targets(&self) -> Value {
        let v = self.snapshot()["meta"]["targets.json"]["version"].as_u64().unwrap();
        self.signed(&format!("{v}.targets.json"))
    }

    /// The current version of every bin, from the snapshot.
    fn bins(&self) -> BTreeMap<String, u64> {
        let snap = self.snapshot();
        snap["meta"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("bins-"))
            .map(|(k, v)| (k.trim_end_matches(".json").to_string(), v["version"].as_u64().unwrap()))
            .collect()
    }

    /// Every target listed in the current bins.
    fn listed(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (bin, v) in self.bins() {
            let b = self.signed(&format!("{v}.{bin}.json"));
            for (path, info) in b["targets"].as_object().unwrap() {
                out.insert(path.clone(), info.clone());
            }
        }
        out
    }

    fn page(&self, project: &str) -> Value {
        read_json(&self.dir.join("targets/simple").join(project).join("index.json"))
    }

    fn page_entry(&self, project: &str, filename: &str) -> Option<Value> {
        self.page(project)["files"].as_array().unwrap().iter().find(|f| f["filename"] == filename).cloned()
    }

    fn key_files(&self, dir: &Path, role: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{role}-")))
            .collect();
        v.sort();
        v
    }
}

fn keyid(key_file: &Path) -> String {
    read_json(key_file)["keyid"].as_str().unwrap().to_string()
}

/// `packman download` with its own trusted state.
struct Client {
    meta: PathBuf,
    dest: PathBuf,
    root: PathBuf,
    url: String,
}

impl Client {
    /// Trusts the repository's root v1, reads it through file://.
    fn file(r: &Repo) -> Client {
        Self::at(r, format!("file://{}/metadata/", r.d()))
    }

    fn at(r: &Repo, metadata_url: String) -> Client {
        let n = std::fs::read_dir(r.tmp.path()).unwrap().count();
        let base = r.p(&format!("client-{n}"));
        std::fs::create_dir_all(&base).unwrap();
        let root = base.join("trusted-root.json");
        std::fs::copy(r.dir.join("metadata/1.root.json"), &root).unwrap();
        Client { meta: base.join("meta"), dest: base.join("dl"), root, url: metadata_url }
    }

    fn get_to(&self, dest: &Path, targets: &[&str]) -> Output {
        let mut a = vec![
            "download",
            "--root",
            s(&self.root),
            "--metadata-url",
            &self.url,
            "--metadata-dir",
            s(&self.meta),
            "--dest",
            s(dest),
        ];
        a.extend_from_slice(targets);
        run(&a, None)
    }

    fn get(&self, targets: &[&str]) -> Output {
        self.get_to(&self.dest, targets)
    }

    fn saved(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dest.join(name)).unwrap()
    }

    fn trusted_root_version(&self) -> u64 {
        read_json(&self.meta.join("root.json"))["signed"]["version"].as_u64().unwrap()
    }
}

// ---- tests ---------------------------------------------------------------------------------

/// Both shapes of the delegation to the bins (`repo init --bin-style`): the tests that
/// publish, change and read a repository run on each.
const BIN_STYLES: [&str; 2] = ["succinct", "prefixes"];

/// The bins' keyids as targets delegates them, in either shape.
fn bins_keyids(targets: &Value) -> Value {
    let d = &targets["delegations"];
    match d.get("succinct_roles") {
        Some(s) => s["keyids"].clone(),
        None => d["roles"][0]["keyids"].clone(),
    }
}

#[test]
fn wheels_and_sdists_are_published_in_the_python_layout_and_verified_by_the_client() {
    for style in BIN_STYLES {
        wheels_and_sdists_are_published_in_the_python_layout_and_verified_by_the_client_in(style);
    }
}

fn wheels_and_sdists_are_published_in_the_python_layout_and_verified_by_the_client_in(style: &str) {
    let r = Repo::init(&["--bin-style", style]);
    let src = r.p("dist");
    let whl = wheel(&src, "hello", "1.0", "Hello", Some(">=3.8"), "x = 1\n");
    let sd = sdist(&src, "hello", "1.0");
    let foo_bar = wheel(&src, "foo_bar", "2.0", "Foo.Bar", None, "y = 2\n");
    let out = ok(r.repo("add", &[whl.p(), sd.p(), foo_bar.p()]));
    has_all(
        &out,
        &[
            "hello 1.0 -> packages/hello/hello-1.0-py3-none-any.whl (bins-",
            "hello 1.0 -> packages/hello/hello-1.0.tar.gz (bins-",
            "foo-bar 2.0 -> packages/foo-bar/foo_bar-2.0-py3-none-any.whl (bins-",
            "published: ",
        ],
    );
    let notes = r.p("dist/notes.txt");
    std::fs::write(&notes, b"release notes\n").unwrap();
    has_all(&ok(r.repo("add", &["--prefix", "docs/", s(&notes)])), &["docs/notes.txt -> bins-"]);

    // Distributions: plain name (for static hosting) and hash-prefixed (consistent snapshot).
    let t = r.dir.join("targets");
    for (project, d) in [("hello", &whl), ("hello", &sd), ("foo-bar", &foo_bar)] {
        let bytes = d.bytes();
        let dir = t.join("packages").join(project);
        assert_eq!(std::fs::read(dir.join(d.name())).unwrap(), bytes, "{}", d.name());
        assert_eq!(std::fs::read(dir.join(format!("{}.{}", sha256(&bytes), d.name()))).unwrap(), bytes, "{}", d.name());
    }
    // PEP 658 core metadata, for wheels only.
    let md_name = "packages/hello/hello-1.0-py3-none-any.whl.metadata";
    assert_eq!(std::fs::read(t.join(md_name)).unwrap(), whl.metadata);
    let md_hashed = format!("packages/hello/{}.hello-1.0-py3-none-any.whl.metadata", sha256(&whl.metadata));
    assert_eq!(std::fs::read(t.join(&md_hashed)).unwrap(), whl.metadata);
    assert!(!t.join("packages/hello/hello-1.0.tar.gz.metadata").exists());
    assert_eq!(
        std::fs::read(t.join(format!("docs/{}.notes.txt", sha256(b"release notes\n")))).unwrap(),
        b"release notes\n"
    );

    // The project's JSON page (PEP 691/700, PEP 658).
    let page = r.page("hello");
    assert_eq!(page["name"], "hello");
    assert_eq!(page["files"].as_array().unwrap().len(), 2, "{page}");
    let w = r.page_entry("hello", whl.name()).unwrap();
    assert_eq!(w["url"], "../../packages/hello/hello-1.0-py3-none-any.whl");
    assert_eq!(w["hashes"]["sha256"], sha256(&whl.bytes()));
    assert_eq!(w["requires-python"], ">=3.8");
    assert_eq!(w["size"], whl.bytes().len());
    assert_eq!(w["yanked"], false);
    assert_eq!(w["core-metadata"]["sha256"], sha256(&whl.metadata));
    let sde = r.page_entry("hello", sd.name()).unwrap();
    assert_eq!(sde["url"], "../../packages/hello/hello-1.0.tar.gz");
    assert_eq!(sde["core-metadata"], false);
    assert_eq!(
        r.page_entry("foo-bar", foo_bar.name()).unwrap()["url"],
        "../../packages/foo-bar/foo_bar-2.0-py3-none-any.whl"
    );
    // The HTML page (PEP 503) and both pages' hash-prefixed copies.
    let html = std::fs::read_to_string(t.join("simple/hello/index.html")).unwrap();
    has_all(
        &html,
        &[
            &format!("href=\"../../packages/hello/hello-1.0-py3-none-any.whl#sha256={}\"", sha256(&whl.bytes())),
            "data-requires-python=\"&gt;=3.8\"",
            &format!("data-core-metadata=\"sha256={}\"", sha256(&whl.metadata)),
            &format!("href=\"../../packages/hello/hello-1.0.tar.gz#sha256={}\"", sha256(&sd.bytes())),
        ],
    );
    for page in ["simple/hello/index.json", "simple/hello/index.html", "simple/index.json", "simple/index.html"] {
        let bytes = std::fs::read(t.join(page)).unwrap();
        let (d, f) = page.rsplit_once('/').unwrap();
        assert_eq!(std::fs::read(t.join(d).join(format!("{}.{f}", sha256(&bytes)))).unwrap(), bytes, "{page}");
    }
    let index = read_json(&t.join("simple/index.json"));
    let names: Vec<&str> = index["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"hello") && names.contains(&"foo-bar"), "{index}");
    has_all(&std::fs::read_to_string(t.join("simple/index.html")).unwrap(), &["href=\"hello/\"", "href=\"foo-bar/\""]);

    // The bins list every file, with custom data for distributions.
    let listed = r.listed();
    for p in [
        "packages/hello/hello-1.0-py3-none-any.whl",
        "packages/hello/hello-1.0.tar.gz",
        "packages/foo-bar/foo_bar-2.0-py3-none-any.whl",
        md_name,
        "simple/hello/index.json",
        "simple/hello/index.html",
        "simple/foo-bar/index.json",
        "simple/index.json",
        "simple/index.html",
        "docs/notes.txt",
    ] {
        assert!(listed.contains_key(p), "{p} not listed: {:?}", listed.keys());
    }
    let c = &listed["packages/hello/hello-1.0-py3-none-any.whl"];
    assert_eq!(c["length"], whl.bytes().len());
    assert_eq!(c["hashes"]["sha256"], sha256(&whl.bytes()));
    assert_eq!(c["custom"]["project"], "hello");
    assert_eq!(c["custom"]["version"], "1.0");
    assert_eq!(c["custom"]["requires-python"], ">=3.8");
    assert_eq!(c["custom"]["yanked"], false);
    assert!(c["custom"]["upload-time"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!(listed["packages/hello/hello-1.0.tar.gz"]["custom"]["requires-python"], Value::Null);

    // The client, over HTTP, verifies and saves each of them.
    let server = TestServer::serve_dir(&r.dir).unwrap();
    let client = Client::at(&r, format!("{}/metadata/", server.url()));
    let out = ok(client.get(&[
        "packages/hello/hello-1.0-py3-none-any.whl",
        "packages/hello/hello-1.0.tar.gz",
        "packages/foo-bar/foo_bar-2.0-py3-none-any.whl",
        md_name,
        "docs/notes.txt",
    ]));
    assert!(out.contains("root v1"), "{out}");
    for d in [&whl, &sd, &foo_bar] {
        assert_eq!(client.saved(d.name()), d.bytes());
    }
    assert_eq!(client.saved("hello-1.0-py3-none-any.whl.metadata"), whl.metadata);
    assert_eq!(client.saved("notes.txt"), b"release notes\n");
    let pages = r.p("pages");
    ok(client.get_to(&pages, &["simple/hello/index.json"]));
    assert_eq!(
        std::fs::read(pages.join("index.json")).unwrap(),
        std::fs::read(t.join("simple/hello/index.json")).unwrap()
    );
    // It went to the hash-prefixed names.
    let wanted = format!("/targets/packages/hello/{}.hello-1.0-py3-none-any.whl", sha256(&whl.bytes()));
    assert!(server.requests().contains(&wanted), "{:?}", server.requests());

    // Adding the very same file again changes nothing.
    let before = r.tree();
    let out = ok(r.repo("add", &[whl.p()]));
    has_all(&out, &["already published, unchanged", "nothing to publish"]);
    assert_eq!(r.tree(), before);
}

#[test]
fn yank_and_remove_show_in_pages_custom_data_and_the_client() {
    for style in BIN_STYLES {
        yank_and_remove_show_in_pages_custom_data_and_the_client_in(style);
    }
}

fn yank_and_remove_show_in_pages_custom_data_and_the_client_in(style: &str) {
    let r = Repo::init(&["--bin-style", style]);
    let src = r.p("dist");
    let w10 = wheel(&src, "hello", "1.0", "hello", None, "v = 10\n");
    let w11 = wheel(&src, "hello", "1.1", "hello", None, "v = 11\n");
    let sd = sdist(&src, "hello", "1.0");
    ok(r.repo("add", &[w10.p(), w11.p(), sd.p()]));
    let client = Client::file(&r);
    ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl", "packages/hello/hello-1.1-py3-none-any.whl"]));

    ok(r.repo("yank", &[w10.name(), "--reason", "broken build"]));
    ok(r.repo("yank", &[sd.name()]));
    assert_eq!(r.page_entry("hello", w10.name()).unwrap()["yanked"], "broken build");
    assert_eq!(r.page_entry("hello", sd.name()).unwrap()["yanked"], true);
    assert_eq!(r.page_entry("hello", w11.name()).unwrap()["yanked"], false);
    let html = std::fs::read_to_string(r.dir.join("targets/simple/hello/index.html")).unwrap();
    assert!(html.contains("data-yanked=\"broken build\""), "{html}");
    let listed = r.listed();
    assert_eq!(listed["packages/hello/hello-1.0-py3-none-any.whl"]["custom"]["yanked"], "broken build");
    assert_eq!(listed["packages/hello/hello-1.0.tar.gz"]["custom"]["yanked"], true);
    assert_eq!(listed["packages/hello/hello-1.1-py3-none-any.whl"]["custom"]["yanked"], false);
    // Other custom data survives the yank.
    assert_eq!(listed["packages/hello/hello-1.0-py3-none-any.whl"]["custom"]["version"], "1.0");
    // The client gets the new, signed page; yanked files stay downloadable (PEP 592).
    let pages = r.p("pages");
    ok(client.get_to(&pages, &["simple/hello/index.json"]));
    let page: Value = serde_json::from_slice(&std::fs::read(pages.join("index.json")).unwrap()).unwrap();
    assert!(
        page["files"].as_array().unwrap().iter().any(|f| f["filename"] == w10.name() && f["yanked"] == "broken build"),
        "{page}"
    );
    ok(client.get(&["packages/hello/hello-1.0.tar.gz"]));

    ok(r.repo("yank", &[w10.name(), "--undo"]));
    assert_eq!(r.page_entry("hello", w10.name()).unwrap()["yanked"], false);
    assert_eq!(r.listed()["packages/hello/hello-1.0-py3-none-any.whl"]["custom"]["yanked"], false);

    // Remove: the file, its .metadata and its page entry go; the rest stays.
    has_all(&ok(r.repo("remove", &[w11.name()])), &["published: "]);
    assert!(r.page_entry("hello", w11.name()).is_none(), "{}", r.page("hello"));
    assert!(r.page_entry("hello", w10.name()).is_some());
    assert!(!std::fs::read_to_string(r.dir.join("targets/simple/hello/index.html")).unwrap().contains(w11.name()));
    let listed = r.listed();
    assert!(!listed.contains_key("packages/hello/hello-1.1-py3-none-any.whl"));
    assert!(!listed.contains_key("packages/hello/hello-1.1-py3-none-any.whl.metadata"));
    assert!(listed.contains_key("packages/hello/hello-1.0-py3-none-any.whl.metadata"));
    let fresh = Client::file(&r);
    let err = fails(fresh.get(&["packages/hello/hello-1.1-py3-none-any.whl"]));
    assert!(err.contains("is not in the repository's signed metadata"), "{err}");
    ok(fresh.get(&["packages/hello/hello-1.0-py3-none-any.whl", "simple/hello/index.json"]));
    assert_eq!(fresh.saved("index.json"), std::fs::read(r.dir.join("targets/simple/hello/index.json")).unwrap());

    // A project whose last file goes leaves the project list (edited as text, both forms),
    // and the signed list the client gets is that one.
    let other = wheel(&src, "zeta", "1.0", "zeta", None, "z = 1\n");
    let first = wheel(&src, "alpha", "1.0", "alpha", None, "a = 1\n");
    ok(r.repo("add", &[other.p(), first.p()]));
    ok(r.repo("remove", &[w10.name(), sd.name()]));
    let list = r.dir.join("targets/simple");
    let index = read_json(&list.join("index.json"));
    let names: Vec<&str> = index["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "zeta"], "{index}");
    let html = std::fs::read_to_string(list.join("index.html")).unwrap();
    assert!(html.contains("href=\"alpha/\"") && html.contains("href=\"zeta/\"") && !html.contains("hello"), "{html}");
    ok(fresh.get(&["simple/index.json", "simple/index.html"]));
    assert_eq!(fresh.saved("index.json"), std::fs::read(list.join("index.json")).unwrap());
    assert_eq!(fresh.saved("index.html"), html.as_bytes());
}

#[test]
fn offline_threshold_root_keys_rotate_and_the_client_follows() {
    let r = Repo::init(&["--root-keys", "3", "--root-threshold", "2"]);
    let w = wheel(&r.p("dist"), "hello", "1.0", "hello", None, "x = 1\n");
    ok(r.repo("add", &[w.p()]));
    let client = Client::file(&r);
    assert!(ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl"])).contains("root v1"));

    // Root keys go offline.
    let keys = r.dir.join("keys");
    let offline = r.p("offline");
    std::fs::create_dir(&offline).unwrap();
    for k in r.key_files(&keys, "root") {
        std::fs::rename(&k, offline.join(k.file_name().unwrap())).unwrap();
    }
    let roots = r.key_files(&offline, "root");
    assert_eq!(roots.len(), 3);
    let old_ts = r.signed("root.json")["roles"]["timestamp"]["keyids"].clone();

    // Rotating the timestamp key needs a new root: staged, nothing published.
    let published = r.walk(&["metadata", "targets"]);
    let out = ok(r.key("rotate", "timestamp", &[]));
    has_all(&out, &["root v2 staged in", "0 of 2 signatures from the current root keys", "packman repo sign"]);
    let staged = r.dir.join("staged/root.json");
    assert!(staged.exists());
    assert_eq!(r.walk(&["metadata", "targets"]), published);
    // Another rotation cannot start while one is staged.
    let before = r.tree();
    has_all(&fails(r.key("rotate", "snapshot", &[])), &["already staged", "staged/root.json"]);
    assert_eq!(r.tree(), before);

    // One signature: still staged (1 of 2); the same key again counts once.
    for _ in 0..2 {
        let out = ok(r.repo("sign", &["--key", s(&roots[0])]));
        has_all(&out, &["root v2 staged", "1 of 2 signatures from the current root keys, 1 of 2 from the new ones"]);
        assert!(staged.exists() && !r.dir.join("metadata/2.root.json").exists());
        assert_eq!(r.walk(&["metadata", "targets"]), published);
    }
    // Keys that are not root keys are refused by name; the staged root is unchanged.
    let before = r.tree();
    let ts_key = r.key_files(&keys, "timestamp")[0].clone();
    let err = fails(r.repo("sign", &["--key", s(&ts_key)]));
    has_all(&err, &[s(&ts_key), "is not a key of the current or the new root role"]);
    assert_eq!(r.tree(), before);
    let other = Repo::init(&[]);
    let foreign = other.key_files(&other.dir.join("keys"), "root")[0].clone();
    has_all(
        &fails(r.repo("sign", &["--key", s(&foreign)])),
        &[s(&foreign), "is not a key of the current or the new root role"],
    );
    assert_eq!(r.tree(), before);

    // The second root key holder signs: root v2 is published.
    let out = ok(r.repo("sign", &["--key", s(&roots[1])]));
    has_all(&out, &["root v2 in force", "2.root.json", "timestamp.json"]);
    assert!(!staged.exists());
    assert!(r.dir.join("metadata/2.root.json").exists());
    let root2 = r.signed("root.json");
    assert_eq!(root2["version"], 2);
    let new_ts = root2["roles"]["timestamp"]["keyids"].clone();
    assert_ne!(new_ts, old_ts);
    let ts = read_json(&r.dir.join("metadata/timestamp.json"));
    assert_eq!(ts["signatures"][0]["keyid"], new_ts[0], "the timestamp is signed by the new key");

    // The client follows the rotation and keeps downloading, including new files.
    let w2 = wheel(&r.p("dist"), "hello", "2.0", "hello", None, "x = 2\n");
    ok(r.repo("add", &[w2.p()]));
    let out = ok(client.get(&["packages/hello/hello-2.0-py3-none-any.whl"]));
    assert!(out.contains("root v2"), "{out}");
    assert_eq!(client.trusted_root_version(), 2);
    assert_eq!(client.saved(w2.name()), w2.bytes());

    // Removing a root key with a lower threshold, every needed key at hand: published at once.
    let gone = keyid(&roots[2]);
    let out = ok(r.key("remove", "root", &[&gone[..16], "--threshold", "1", "--keys", s(&offline)]));
    assert!(out.contains("root v3 in force"), "{out}");
    let root3 = r.signed("root.json");
    assert_eq!(root3["roles"]["root"]["threshold"], 1);
    assert_eq!(root3["roles"]["root"]["keyids"].as_array().unwrap().len(), 2);
    assert!(root3["keys"].get(&gone).is_none());
    assert!(ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl"])).contains("root v3"));
    assert_eq!(client.trusted_root_version(), 3);

    // Rotating the bins key re-signs targets and every bin; the client still verifies.
    let bins_before = r.bins();
    let targets_v = r.targets()["version"].as_u64().unwrap();
    let old_bins_key = bins_keyids(&r.targets());
    let out = ok(r.key("rotate", "bins", &[]));
    has_all(&out, &["bins-0.json", "bins-f.json", "targets.json", "snapshot.json"]);
    let targets = r.targets();
    assert_eq!(targets["version"].as_u64().unwrap(), targets_v + 1);
    let new_bins_key = bins_keyids(&targets);
    assert_ne!(new_bins_key, old_bins_key);
    assert_eq!(r.signed("root.json")["version"], 3, "bins keys live in targets, not root");
    for (bin, v) in r.bins() {
        assert_eq!(v, bins_before[&bin] + 1, "{bin}");
        let env = read_json(&r.dir.join(format!("metadata/{v}.{bin}.json")));
        assert_eq!(env["signatures"][0]["keyid"], new_bins_key[0], "{bin}");
    }
    let fresh = Client::file(&r);
    let out =
        ok(fresh.get(&["packages/hello/hello-1.0-py3-none-any.whl", "packages/hello/hello-2.0-py3-none-any.whl"]));
    assert!(out.contains("root v3"), "{out}");
    ok(client.get(&["simple/hello/index.json"]));
}

#[test]
fn bad_input_is_refused_by_name_and_changes_nothing() {
    let r = Repo::init(&[]);
    let src = r.p("dist");
    let good = wheel(&src, "hello", "1.0", "hello", None, "x = 1\n");
    ok(r.repo("add", &[good.p()]));

    let bad = r.p("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let corrupt = bad.join("x-1.0-py3-none-any.whl");
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&corrupt, &noise).unwrap();
    let notawheel = bad.join("notawheel.whl");
    std::fs::copy(&good.path, &notawheel).unwrap();
    let mismatch = wheel(&bad, "other", "1.0", "different", None, "");
    let reused = wheel(&bad, "hello", "1.0", "hello", None, "x = 'other content'\n");
    let new_ok = wheel(&bad, "hello", "2.0", "hello", None, "x = 2\n");
    let missing = bad.join("missing-1.0.tar.gz");
    let root_key = keyid(&r.key_files(&r.dir.join("keys"), "root")[0]);

    let d = r.d().to_string();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["repo", "add", &d, s(&corrupt)], vec!["x-1.0-py3-none-any.whl", "corrupt or unsupported archive"]),
        (vec!["repo", "add", &d, s(&notawheel)], vec!["notawheel.whl", "invalid file name", "PEP 427"]),
        (
            vec!["repo", "add", &d, mismatch.p()],
            vec!["other-1.0-py3-none-any.whl", "\"different\"", "does not match the file name"],
        ),
        (
            vec!["repo", "add", &d, reused.p()],
            vec!["hello-1.0-py3-none-any.whl", "already published with other content"],
        ),
        // A batch is all or nothing: the good file before the bad one is not published either.
        (
            vec!["repo", "add", &d, new_ok.p(), s(&corrupt)],
            vec!["x-1.0-py3-none-any.whl", "corrupt or unsupported archive"],
        ),
        (vec!["repo", "add", &d, s(&missing)], vec!["missing-1.0.tar.gz"]),
        (vec!["repo", "remove", &d, "nothere-1.0.tar.gz"], vec!["nothere-1.0.tar.gz", "not a target of"]),
        (vec!["repo", "remove", &d, "docs/nothere.txt"], vec!["docs/nothere.txt", "not a target of"]),
        (vec!["repo", "remove", &d, good.name(), "nothere-1.0.tar.gz"], vec!["nothere-1.0.tar.gz", "not a target of"]),
        (
            vec!["repo", "yank", &d, "nothere-1.0-py3-none-any.whl"],
            vec!["nothere-1.0-py3-none-any.whl", "not a distribution in"],
        ),
        (vec!["repo", "sign", &d], vec!["nothing to sign", "staged/root.json"]),
        (
            vec!["repo", "key", "remove", &d, "root", &root_key],
            vec!["threshold 1 cannot be met by the 0 key(s) root would have"],
        ),
        (
            vec!["repo", "key", "add", &d, "timestamp", "--threshold", "3"],
            vec!["threshold 3 cannot be met by the 2 key(s) timestamp would have"],
        ),
        (vec!["repo", "key", "remove", &d, "timestamp", "deadbeef"], vec!["timestamp has no key deadbeef"]),
        (vec!["repo", "key", "rotate", &d, "mirror"], vec!["unknown role \"mirror\""]),
        (vec!["repo", "init", &d], vec!["already holds a repository"]),
    ];
    let keys_before = r.walk(&["keys"]);
    for (args, expect) in &cases {
        let before = r.tree();
        let err = fails(run(args, None));
        has_all(&err, expect);
        assert_eq!(r.tree(), before, "{args:?} changed the published tree");
        assert_eq!(r.walk(&["keys"]), keys_before, "{args:?} changed the keys");
    }
    assert!(!r.listed().contains_key("packages/hello/hello-2.0-py3-none-any.whl"));
    // The repository is still fine and the good file was kept as it was.
    let client = Client::file(&r);
    ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl"]));
    assert_eq!(client.saved(good.name()), good.bytes());

    // Thresholds no keys can meet, and bin counts that are not powers of two: no repository.
    let fresh = r.p("never");
    let err = fails(run(&["repo", "init", s(&fresh), "--root-keys", "2", "--root-threshold", "3"], None));
    has_all(&err, &["--root-threshold 3 cannot be met by 2 root key(s)"]);
    let err = fails(run(&["repo", "init", s(&fresh), "--bins", "10"], None));
    has_all(&err, &["--bins 10 must be a power of two"]);
    assert!(!fresh.exists());
    let err = fails(run(&["repo", "status", s(&fresh)], None));
    has_all(&err, &[s(&fresh), "is not a packman repository"]);
}

#[test]
fn encrypted_keys_need_the_right_passphrase() {
    let r = Repo::init_with(&[], Some("secret"));
    for k in std::fs::read_dir(r.dir.join("keys")).unwrap() {
        let t = std::fs::read_to_string(k.unwrap().path()).unwrap();
        assert!(t.contains("ENCRYPTED PRIVATE KEY") && !t.contains("BEGIN PRIVATE KEY"));
    }
    let w = wheel(&r.p("dist"), "hello", "1.0", "hello", None, "x = 1\n");
    let keys = format!("{}/keys/", r.d());

    let before = r.tree();
    let err = fails(r.repo("add", &[w.p()]));
    has_all(
        &err,
        &[&keys, ".key", "is encrypted and there is no terminal to ask for its passphrase", "PACKMAN_PASSPHRASE"],
    );
    assert_eq!(r.tree(), before);
    let err = fails(r.repo_with("add", &[w.p()], Some("not the secret")));
    has_all(&err, &[&keys, ".key", "wrong passphrase"]);
    assert_eq!(r.tree(), before);
    let err = fails(r.repo_with("refresh", &["--margin-hours", "48"], Some("not the secret")));
    has_all(&err, &[&keys, "wrong passphrase"]);
    assert_eq!(r.tree(), before);

    ok(r.repo_with("add", &[w.p()], Some("secret")));
    let client = Client::file(&r);
    ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl"]));
    assert_eq!(client.saved(w.name()), w.bytes());
}

#[test]
fn concurrent_commands_are_serialised_and_leave_a_readable_repository() {
    let r = Repo::init(&[]);
    let src = r.p("dist");
    let a = wheel(&src, "alpha", "1.0", "alpha", None, "a = 1\n");
    let b = wheel(&src, "beta", "1.0", "beta", None, "b = 1\n");
    ok(r.repo("add", &[a.p()]));
    let ts0 = r.version("timestamp");

    let spawn = |args: &[&str]| command(args, None).spawn().expect("spawn packman");
    let d = r.d();
    let two = [
        spawn(&["repo", "refresh", d, "--margin-hours", "48"]),
        spawn(&["repo", "refresh", d, "--margin-hours", "48"]),
    ];
    for c in two {
        let out = ok(c.wait_with_output().unwrap());
        assert!(out.contains("re-signed: timestamp"), "{out}");
    }
    // One after the other (each re-signs the timestamp, which still expires within 48 h).
    assert_eq!(r.version("timestamp"), ts0 + 2);
    let client = Client::file(&r);
    let out = ok(client.get(&["packages/alpha/alpha-1.0-py3-none-any.whl"]));
    assert!(out.contains(&format!("timestamp v{}", ts0 + 2)), "{out}");

    // Two publishes at once: both land, neither loses the other's project.
    let two = [spawn(&["repo", "add", d, b.p()]), spawn(&["repo", "refresh", d, "--margin-hours", "48"])];
    for c in two {
        ok(c.wait_with_output().unwrap());
    }
    let w2 = wheel(&src, "alpha", "2.0", "alpha", None, "a = 2\n");
    let c = wheel(&src, "gamma", "1.0", "gamma", None, "c = 1\n");
    let two = [spawn(&["repo", "add", d, w2.p()]), spawn(&["repo", "add", d, c.p()])];
    for c in two {
        ok(c.wait_with_output().unwrap());
    }
    let index = read_json(&r.dir.join("targets/simple/index.json"));
    let names: Vec<&str> = index["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"], "{index}");
    assert_eq!(r.page("alpha")["files"].as_array().unwrap().len(), 2);
    let leftovers: Vec<String> = r.tree().into_keys().filter(|p| p.contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    ok(client.get(&[
        "packages/alpha/alpha-2.0-py3-none-any.whl",
        "packages/beta/beta-1.0-py3-none-any.whl",
        "packages/gamma/gamma-1.0-py3-none-any.whl",
    ]));
}

#[test]
fn refresh_re_signs_only_what_is_due() {
    let r = Repo::init(&[]);
    let w = wheel(&r.p("dist"), "hello", "1.0", "hello", None, "x = 1\n");
    ok(r.repo("add", &[w.p()]));
    let client = Client::file(&r);
    ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl"]));

    // Nothing expires within 6 h: nothing is written.
    let before = r.tree();
    let out = ok(r.repo("refresh", &[]));
    assert!(out.contains("nothing re-signed"), "{out}");
    assert_eq!(r.tree(), before);

    // The timestamp (1 day) is within 48 h: only timestamp.json changes.
    let (ts, snap) = (r.signed("timestamp.json"), r.version("snapshot"));
    let out = ok(r.repo("refresh", &["--margin-hours", "48"]));
    assert!(out.contains("re-signed: timestamp"), "{out}");
    assert!(!out.contains("snapshot"), "{out}");
    let after = r.tree();
    let changed: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert_eq!(changed, ["metadata/timestamp.json"]);
    assert_eq!(after.len(), before.len());
    let ts2 = r.signed("timestamp.json");
    assert_eq!(ts2["version"].as_u64(), ts["version"].as_u64().map(|v| v + 1));
    assert!(ts2["expires"].as_str() >= ts["expires"].as_str());
    assert_eq!(ts2["meta"]["snapshot.json"], ts["meta"]["snapshot.json"]);
    assert_eq!(r.version("snapshot"), snap);
    assert!(ok(client.get(&["simple/hello/index.json"]))
        .contains(&format!("timestamp v{}", ts["version"].as_u64().unwrap() + 1)));

    // A margin beyond every expiry re-signs everything, bins included.
    let bins = r.bins();
    let out = ok(r.repo("refresh", &["--margin-hours", "100000"]));
    has_all(&out, &["bins-0", "bins-f", "targets", "snapshot", "timestamp"]);
    for (bin, v) in r.bins() {
        assert_eq!(v, bins[&bin] + 1, "{bin}");
    }
    assert_eq!(r.version("snapshot"), snap + 1);
    ok(client.get(&["packages/hello/hello-1.0-py3-none-any.whl", "simple/index.json"]));
    let before = r.tree();
    assert!(ok(r.repo("refresh", &[])).contains("nothing re-signed"));
    assert_eq!(r.tree(), before);
}

/// A root listing one key under two keyids (keyids are opaque, TAP 12) with threshold 2 and
/// that key's one signature filed under both: the publisher counts distinct keys, as every
/// client does. `repo sign` keeps such a root staged, `repo status` reports it below
/// threshold, and the client refuses it; counting keyids would have published it.
#[test]
fn one_key_under_two_keyids_does_not_meet_a_threshold_of_two() {
    let r = Repo::init(&[]);
    let root1 = read_json(&r.dir.join("metadata/root.json"));
    let k1 = root1["signed"]["roles"]["root"]["keyids"][0].as_str().unwrap().to_string();
    let twin = "f".repeat(64);
    let mut signed = root1["signed"].clone();
    signed["version"] = 2.into();
    signed["keys"][&twin] = signed["keys"][&k1].clone();
    signed["roles"]["root"]["keyids"] = serde_json::json!([k1, twin]);
    signed["roles"]["root"]["threshold"] = 2.into();
    let staged = r.dir.join("staged/root.json");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    let write = |p: &Path, v: &Value| std::fs::write(p, serde_json::to_vec(v).unwrap()).unwrap();
    write(&staged, &serde_json::json!({"signatures": [], "signed": signed}));

    // The one root key signs: one key of the two the new root asks for.
    let published = r.walk(&["metadata", "targets"]);
    let out = ok(r.repo("sign", &[]));
    has_all(&out, &["root v2 staged", "1 of 1 signatures from the current root keys, 1 of 2 from the new ones"]);
    // Its signature filed again under the twin keyid is still one key.
    let mut env = read_json(&staged);
    let mut twin_sig = env["signatures"][0].clone();
    assert_eq!(twin_sig["keyid"], k1.as_str());
    twin_sig["keyid"] = twin.as_str().into();
    env["signatures"].as_array_mut().unwrap().push(twin_sig);
    write(&staged, &env);
    let out = ok(r.repo("sign", &[]));
    has_all(&out, &["root v2 staged", "1 of 2 from the new ones"]);
    assert!(!r.dir.join("metadata/2.root.json").exists());
    assert_eq!(r.walk(&["metadata", "targets"]), published);

    // Published anyway (by hand, as another tool might): status says it is below threshold.
    let env = read_json(&staged);
    assert_eq!(env["signatures"].as_array().unwrap().len(), 2);
    write(&r.dir.join("metadata/2.root.json"), &env);
    write(&r.dir.join("metadata/root.json"), &env);
    let out = ok(r.repo("status", &[]));
    let root_line = out.lines().find(|l| l.starts_with("root")).unwrap_or_else(|| panic!("{out}"));
    has_all(root_line, &["v2", "signatures 1/2", "BELOW THRESHOLD"]);
    // And the client, trusting root v1, refuses root v2 for the same reason.
    let c = Client::file(&r);
    let err = fails(c.get(&["any-target"]));
    has_all(&err, &["2.root.json", "root", "threshold"]);
    assert_eq!(c.trusted_root_version(), 1);
}

#[test]
fn status_lists_every_role_with_version_and_signatures() {
    let r = Repo::init(&["--root-keys", "3", "--root-threshold", "2"]);
    let src = r.p("dist");
    ok(r.repo("add", &[wheel(&src, "hello", "1.0", "hello", None, "").p(), sdist(&src, "hello", "1.0").p()]));
    let out = ok(r.repo("status", &[]));
    let line = |role: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(role))
            .unwrap_or_else(|| panic!("no {role} line in:\n{out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    for (role, version, sigs) in
        [("root", 1, "3/2"), ("targets", 1, "1/1"), ("snapshot", 2, "1/1"), ("timestamp", 2, "1/1")]
    {
        let l = line(role);
        assert_eq!(l[1], format!("v{version}"), "{out}");
        assert_eq!(l[2], "expires", "{out}");
        assert_eq!(l[4..], ["signatures".to_string(), sigs.to_string(), "ok".to_string()], "{out}");
    }
    // wheel, its .metadata, sdist, the project's two pages, the index's two pages.
    assert!(out.contains("bins      16 bins (succinct), 7 targets, earliest expiry"), "{out}");
    assert!(!out.contains("warning"), "{out}");

    // --json: the same facts, and a warning once the horizon reaches the roles' expiry.
    let v: serde_json::Value = serde_json::from_str(&ok(r.repo("status", &["--json"]))).unwrap();
    let roles: Vec<(String, u64, u64, u64, bool)> = v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["role"].as_str().unwrap().into(),
                n("version"),
                n("signatures"),
                n("threshold"),
                r["threshold_met"] == true,
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("root".into(), 1, 3, 2, true),
            ("targets".into(), 1, 1, 1, true),
            ("snapshot".into(), 2, 1, 1, true),
            ("timestamp".into(), 2, 1, 1, true)
        ],
        "{v:#}"
    );
    assert_eq!(v["bins"]["count"], 16);
    assert_eq!(v["bins"]["style"], "succinct");
    assert_eq!(v["bins"]["targets"], 7);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert!(v["staged_root"].is_null());
    let v: serde_json::Value = serde_json::from_str(&ok(r.repo("status", &["--json", "--warn-days", "4000"]))).unwrap();
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("packman repo refresh")),
        "{v:#}"
    );
}

#[test]
fn add_reads_a_file_list_for_batches_too_large_for_a_command_line() {
    let r = Repo::init(&[]);
    let src = r.p("dist");
    let a = sdist(&src, "hello", "1.0");
    let b = wheel(&src, "hello", "2.0", "hello", None, "x = 2\n");
    let list = r.p("list.txt");
    std::fs::write(&list, format!("{}\n\n{}\n", a.p(), b.p())).unwrap();
    let out = ok(r.repo("add", &["--files-from", s(&list)]));
    has_all(&out, &["hello-1.0.tar.gz", "hello-2.0-py3-none-any.whl"]);
    assert!(r.listed().keys().any(|k| k.ends_with("hello-1.0.tar.gz")), "{out}");
    assert!(r.listed().keys().any(|k| k.ends_with("hello-2.0-py3-none-any.whl")), "{out}");
    // "-" reads the list from standard input.
    let c = sdist(&src, "hello", "3.0");
    let mut child = command(&["repo", "add", r.d(), "--files-from", "-"], None).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{}\n", c.p()).as_bytes()).unwrap();
    ok(child.wait_with_output().unwrap());
    assert!(r.listed().keys().any(|k| k.ends_with("hello-3.0.tar.gz")));
    // An empty list adds nothing and says so; a missing one is named.
    std::fs::write(&list, "\n").unwrap();
    has_all(&fails(r.repo("add", &["--files-from", s(&list)])), &["no files to add"]);
    let missing = r.p("nolist.txt");
    has_all(&fails(r.repo("add", &["--files-from", s(&missing)])), &["nolist.txt", "cannot read the file list"]);
}

#[test]
fn a_plain_target_named_like_a_distribution_can_be_removed() {
    // `add --raw` lists a file under its own name, even one that parses as a distribution
    // file name; `remove` with that name must find it.
    let r = Repo::init(&[]);
    let sd = sdist(&r.p("dist"), "hello", "1.0");
    has_all(&ok(r.repo("add", &["--raw", sd.p()])), &["hello-1.0.tar.gz -> bins-"]);
    assert!(r.listed().contains_key("hello-1.0.tar.gz"));
    ok(r.repo("remove", &["hello-1.0.tar.gz"]));
    assert!(!r.listed().contains_key("hello-1.0.tar.gz"));
}

#[test]
fn a_removed_file_name_is_not_reused_with_other_content() {
    // python.rs: "A file name, once published with some content, is never reused with other
    // content (as on PyPI)". Removing a file must not open its name to other bytes: the
    // plain copy in targets/packages/ (what pip and caches see) would change under its URL.
    let r = Repo::init(&[]);
    let first = wheel(&r.p("v1"), "hello", "1.0", "hello", None, "x = 1\n");
    let other = wheel(&r.p("v2"), "hello", "1.0", "hello", None, "x = 'other'\n");
    ok(r.repo("add", &[first.p()]));
    ok(r.repo("remove", &[first.name()]));
    let before = r.tree();
    let err = fails(r.repo("add", &[other.p()]));
    has_all(&err, &["hello-1.0-py3-none-any.whl", "never reused"]);
    assert_eq!(r.tree(), before);
    // The very same bytes may come back.
    ok(r.repo("add", &[first.p()]));
    assert!(r.page_entry("hello", first.name()).is_some());
    assert_eq!(std::fs::read(r.dir.join("targets/packages/hello").join(first.name())).unwrap(), first.bytes());
}

#[test]
fn refresh_root_renews_the_root_and_the_client_follows() {
    let r = Repo::init(&[]);
    let file = r.p("notes.txt");
    std::fs::write(&file, b"release notes").unwrap();
    ok(r.repo("add", &[s(&file)]));
    let c = Client::file(&r);
    ok(c.get(&["notes.txt"]));
    let before = r.signed("root.json");
    let out = ok(r.repo("refresh", &["--root"]));
    assert!(out.contains("root v2 in force"), "{out}");
    let after = r.signed("root.json");
    assert_eq!(after["version"], 2);
    assert_eq!(after["keys"], before["keys"], "renewal keeps the keys");
    assert!(after["expires"].as_str() >= before["expires"].as_str());
    let out = ok(c.get(&["notes.txt"]));
    assert!(out.contains("root v2"), "{out}");
}

#[cfg(unix)]
#[test]
fn published_files_are_world_readable_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let r = Repo::init(&[]);
    let file = r.p("notes.txt");
    std::fs::write(&file, b"release notes").unwrap();
    ok(r.repo("add", &[s(&file)]));
    // A static host (nginx as www-data) must be able to read every published file.
    let mut checked = 0;
    for sub in ["metadata", "targets"] {
        let mut stack = vec![r.dir.join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode & 0o044, 0o044, "{} is {mode:o}", p.display());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 5);
    for e in std::fs::read_dir(r.dir.join("keys")).unwrap() {
        let p = e.unwrap().path();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
    }
}

/// s3s-fs serving a fresh directory (with a `bucket`) on 127.0.0.1. `None` (the test is
/// skipped, and says so) when s3s-fs is not installed, except under CI, which installs it.
struct S3s {
    root: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

fn start_s3s() -> Option<S3s> {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bucket")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "pm", "--secret-key", "pm-secret"])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            // Under CI this panics: .ci/run installs s3s-fs.
            packman_testkit::skipped(&format!("s3s-fs not available ({e}); `cargo install s3s-fs --features binary`"));
            return None;
        }
    };
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "s3s-fs did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(S3s { root, port, child })
}

impl Drop for S3s {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A proxy on 127.0.0.1 in front of `upstream` that records "METHOD PATH" of every request
/// in the order they reach it (each connection relayed as is; requests are read by their
/// Content-Length, which is how object_store sends them).
fn recording_proxy(upstream: u16) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = log.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let log = shared.clone();
            std::thread::spawn(move || {
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (mut back_from, mut back_to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut back_from, &mut back_to);
                    let _ = back_to.shutdown(Shutdown::Write);
                });
                let (mut from, mut to) = (BufReader::new(client), server);
                loop {
                    let mut head = Vec::new();
                    let mut len = 0u64;
                    loop {
                        let mut line = Vec::new();
                        if from.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                            let _ = to.shutdown(Shutdown::Write);
                            return;
                        }
                        let l = String::from_utf8_lossy(&line).to_ascii_lowercase();
                        if let Some(v) = l.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        assert!(!l.starts_with("transfer-encoding:"), "the recording proxy reads Content-Length only");
                        if head.is_empty() {
                            let mut parts =
                                String::from_utf8_lossy(&line).split(' ').map(str::to_string).collect::<Vec<_>>();
                            parts.truncate(2);
                            log.lock().unwrap().push(parts.join(" "));
                        }
                        head.extend_from_slice(&line);
                        if line == b"\r\n" {
                            break;
                        }
                    }
                    if to.write_all(&head).is_err() || std::io::copy(&mut (&mut from).take(len), &mut to).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

/// `packman repo push` puts files in the bucket in the order the README promises ("targets
/// first and the timestamp last"; "targets, versioned metadata, `timestamp.json` last,
/// removals after"), so that a reader of the bucket mid-push never finds a file missing.
/// The order is read off the wire, through a recording proxy in front of s3s-fs.
#[test]
fn push_uploads_targets_first_timestamp_last_and_removes_after() {
    let Some(s3) = start_s3s() else { return };
    let (proxy, log) = recording_proxy(s3.port);
    let r = Repo::init(&[]);
    let src = r.p("src");
    let push = || {
        log.lock().unwrap().clear();
        let mut c = command(&["repo", "push", r.d(), "--store", "s3://bucket/repo"], None);
        c.env("AWS_ACCESS_KEY_ID", "pm")
            .env("AWS_SECRET_ACCESS_KEY", "pm-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{proxy}"))
            .env("AWS_ALLOW_HTTP", "true");
        ok(c.output().unwrap());
        log.lock().unwrap().clone()
    };
    // The README's classes, in its order: targets, versioned metadata (the snapshot, which
    // leads to the rest, after the others; root.json with them), timestamp.json.
    let class = |key: &str| -> u8 {
        let key = key.strip_prefix("/bucket/repo/").unwrap_or_else(|| panic!("{key} outside the prefix"));
        match key.strip_prefix("metadata/") {
            None => {
                assert!(key.starts_with("targets/"), "{key}");
                0
            }
            Some("timestamp.json") => 3,
            Some(m) if m.ends_with(".snapshot.json") => 2,
            Some(_) => 1,
        }
    };
    let check = |requests: &[String], want_deletes: bool| {
        let puts: Vec<&str> = requests.iter().filter_map(|r| r.strip_prefix("PUT ")).collect();
        // object_store removes with a multi-object delete (POST ?delete), or DELETE.
        let first_delete =
            requests.iter().position(|r| r.starts_with("DELETE ") || r.starts_with("POST ") && r.ends_with("?delete"));
        let last_put = requests.iter().rposition(|r| r.starts_with("PUT "));
        assert!(!puts.is_empty(), "{requests:#?}");
        let classes: Vec<u8> = puts.iter().map(|k| class(k)).collect();
        assert!(classes.windows(2).all(|w| w[0] <= w[1]), "uploads out of order:\n{puts:#?}");
        assert_eq!(classes.iter().filter(|&&c| c == 3).count(), 1, "{puts:#?}");
        assert_eq!(*puts.last().unwrap(), "/bucket/repo/metadata/timestamp.json", "{puts:#?}");
        assert!(classes.contains(&0) && classes.contains(&1) && classes.contains(&2), "{puts:#?}");
        assert_eq!(first_delete.is_some(), want_deletes, "{requests:#?}");
        if let Some(d) = first_delete {
            assert!(d > last_put.unwrap(), "a removal before the last upload:\n{requests:#?}");
        }
    };

    let w = wheel(&src, "order_demo", "1.0", "order-demo", None, "v1");
    ok(r.repo("add", &[w.p()]));
    let first = push();
    check(&first, false);
    // Every published file went up, and the bucket holds what was published.
    let stored = s3.root.path().join("bucket/repo");
    assert_eq!(
        first.iter().filter(|r| r.starts_with("PUT ")).count(),
        packman_testkit::tree_state(&r.dir.join("metadata")).len()
            + packman_testkit::tree_state(&r.dir.join("targets")).len()
    );
    assert_eq!(
        std::fs::read(stored.join("metadata/timestamp.json")).unwrap(),
        std::fs::read(r.dir.join("metadata/timestamp.json")).unwrap()
    );

    // Publishes enough to garbage-collect old versions: new uploads, then removals.
    for v in 2..=5 {
        let w = wheel(&src, "order_demo", &format!("{v}.0"), "order-demo", None, &format!("v{v}"));
        ok(r.repo("add", &[w.p()]));
    }
    ok(r.repo("yank", &[w.name(), "--reason", "order test"]));
    check(&push(), true);
}

/// `repo add --store s3://…` and `repo push` against a real S3-compatible server (s3s-fs on
/// 127.0.0.1; CI installs it, elsewhere the test is skipped when it is missing).
#[test]
fn add_with_store_mirrors_the_tree_to_s3() {
    for style in BIN_STYLES {
        add_with_store_mirrors_the_tree_to_s3_in(style);
    }
}

fn add_with_store_mirrors_the_tree_to_s3_in(style: &str) {
    let Some(s3) = start_s3s() else { return };
    let (root, port) = (&s3.root, s3.port);
    let r = Repo::init(&["--bin-style", style]);
    let file = r.p("notes.txt");
    std::fs::write(&file, b"release notes").unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let run_s3 = |args: &[&str]| {
        let mut c = command(args, None);
        c.env("AWS_ACCESS_KEY_ID", "pm")
            .env("AWS_SECRET_ACCESS_KEY", "pm-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT", &endpoint)
            .env("AWS_ALLOW_HTTP", "true");
        c.output().unwrap()
    };
    let out = ok(run_s3(&["repo", "add", r.d(), s(&file), "--store", "s3://bucket/repo"]));
    assert!(out.contains("pushed to s3://bucket/repo:"), "{out}");
    let stored = root.path().join("bucket/repo");
    assert_eq!(
        std::fs::read(stored.join("metadata/timestamp.json")).unwrap(),
        std::fs::read(r.dir.join("metadata/timestamp.json")).unwrap()
    );
    assert!(stored.join("metadata/1.root.json").exists());
    // Nothing changed since: a push uploads nothing.
    let out = ok(run_s3(&["repo", "push", r.d(), "--store", "s3://bucket/repo"]));
    assert!(out.contains(" 0 uploaded"), "{out}");
    // A bad store URL is refused by name.
    let err = fails(run_s3(&["repo", "push", r.d(), "--store", "gs://x"]));
    assert!(err.contains("gs://x") && err.contains("only s3://"), "{err}");
    drop(s3);
    // The store gone: the error says why, not just "error sending request".
    let err = fails(run_s3(&["repo", "push", r.d(), "--store", "s3://bucket/repo"]));
    has_all(&err, &["s3://bucket/repo", "error sending request", "tcp connect error"]);
}

/// Hash-prefixed target files that are no longer listed (old page versions, removed
/// distributions) are removed once no kept snapshot can lead a client to them; the current
/// ones, and old content listed again (yank then unyank), stay.
#[test]
fn old_target_versions_are_collected() {
    for style in BIN_STYLES {
        old_target_versions_are_collected_in(style);
    }
}

fn old_target_versions_are_collected_in(style: &str) {
    let r = Repo::init(&["--bin-style", style]);
    let src = r.p("src");
    let hashed = |dir: &str, name: &str| -> BTreeSet<String> {
        std::fs::read_dir(r.dir.join("targets").join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.len() > 65 && n.ends_with(&format!(".{name}")) && n.as_bytes()[64] == b'.')
            .map(|n| n[..64].to_string())
            .collect()
    };
    let listed_sha = |path: &str| r.listed()[path]["hashes"]["sha256"].as_str().unwrap().to_string();

    let first = wheel(&src, "gc_demo", "1.0", "gc-demo", None, "v1");
    ok(r.repo("add", &[first.p()]));
    let page_v1 = listed_sha("simple/gc-demo/index.json");
    // Yank and unyank: the page goes back to its first content.
    ok(r.repo("yank", &[first.name()]));
    ok(r.repo("yank", &[first.name(), "--undo"]));
    assert_eq!(listed_sha("simple/gc-demo/index.json"), page_v1);
    for v in 2..=6 {
        let w = wheel(&src, "gc_demo", &format!("{v}.0"), "gc-demo", None, &format!("v{v}"));
        ok(r.repo("add", &[w.p()]));
    }
    // keep_versions = 3: three snapshots are kept (the current one and two before it), so
    // the current page and the two it replaced.
    let pages = hashed("simple/gc-demo", "index.json");
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.contains(&listed_sha("simple/gc-demo/index.json")));
    assert!(!pages.contains(&page_v1));
    // Every listed target's file is still there.
    for (path, info) in r.listed() {
        let (d, f) = path.rsplit_once('/').unwrap();
        let sha = info["hashes"]["sha256"].as_str().unwrap();
        assert!(r.dir.join("targets").join(d).join(format!("{sha}.{f}")).is_file(), "{path} lost its file");
    }

    // A removed wheel's hash-prefixed copy goes three publishes later; its plain copy stays.
    let wheel_sha = listed_sha(&format!("packages/gc-demo/{}", first.name()));
    ok(r.repo("remove", &[first.name()]));
    assert!(hashed("packages/gc-demo", first.name()).contains(&wheel_sha));
    for v in 7..=9 {
        let w = wheel(&src, "gc_demo", &format!("{v}.0"), "gc-demo", None, &format!("v{v}"));
        ok(r.repo("add", &[w.p()]));
    }
    assert!(hashed("packages/gc-demo", first.name()).is_empty());
    assert!(r.dir.join("targets/packages/gc-demo").join(first.name()).is_file());
}

/// `--bin-style prefixes` writes the classic PEP 458 delegation (one role per bin with its
/// path_hash_prefixes, names and keys as the succinct bins'); every command works on it, and
/// `repo bin-style` switches shapes in one publish (targets, snapshot, timestamp; no bin
/// rewritten) that a following client takes as an ordinary update, downloading what was
/// added after each switch.
#[test]
fn classic_bins_work_and_a_switch_of_shape_is_an_ordinary_update() {
    let r = Repo::init(&["--bin-style", "prefixes"]);
    let shape = |t: &Value| match (t["delegations"].get("roles"), t["delegations"].get("succinct_roles")) {
        (Some(_), None) => "prefixes",
        (None, Some(_)) => "succinct",
        _ => panic!("neither shape: {t}"),
    };
    let t = r.targets();
    assert_eq!(shape(&t), "prefixes");
    let roles = t["delegations"]["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 16);
    for (i, role) in roles.iter().enumerate() {
        assert_eq!(role["name"], format!("bins-{i:x}"));
        assert_eq!(role["path_hash_prefixes"], serde_json::json!([format!("{i:x}")]));
        assert_eq!(role["keyids"], roles[0]["keyids"]);
        assert_eq!(role["terminating"], true);
    }
    let setting = || read_json(&r.dir.join("packman-repo.json"))["bin_style"].as_str().unwrap().to_string();
    assert_eq!(setting(), "prefixes");

    let src = r.p("dist");
    let w1 = wheel(&src, "hello", "1.0", "hello", None, "v = 1\n");
    let out = ok(r.repo("add", &[w1.p()]));
    // The bin named is the one whose prefix the path's sha256 starts with.
    let path = format!("packages/hello/{}", w1.name());
    let bin = format!("bins-{}", &sha256(path.as_bytes())[..1]);
    assert!(out.contains(&format!("{path} ({bin})")), "{out}");
    assert!(r.listed().contains_key(&path));
    let client = Client::file(&r);
    ok(client.get(&[&path]));
    assert_eq!(client.saved(w1.name()), w1.bytes());
    assert!(ok(r.repo("status", &[])).contains("16 bins (prefixes)"));

    // A bins key rotation keeps the shape; the client follows.
    let old_key = bins_keyids(&r.targets());
    ok(r.key("rotate", "bins", &[]));
    let t = r.targets();
    assert_eq!(shape(&t), "prefixes");
    assert_ne!(bins_keyids(&t), old_key);
    assert!(t["delegations"]["roles"].as_array().unwrap().iter().all(|x| x["keyids"] == bins_keyids(&t)));
    ok(client.get(&[&path]));

    let client_targets = || read_json(&client.meta.join("targets.json"))["signed"].clone();
    for (n, to) in [(2, "succinct"), (3, "prefixes")] {
        let bins_before = r.bins();
        let targets_v = r.targets()["version"].as_u64().unwrap();
        let out = ok(r.repo("bin-style", &[to]));
        has_all(&out, &[&format!("now delegates to its 16 bins as {to}"), "published: 3 metadata file(s)"]);
        assert_eq!(r.bins(), bins_before, "no bin is rewritten");
        assert_eq!(r.targets()["version"].as_u64().unwrap(), targets_v + 1);
        assert_eq!(shape(&r.targets()), to);
        assert_eq!(setting(), to);
        let before = r.tree();
        assert!(ok(r.repo("bin-style", &[to])).contains("nothing published"));
        assert_eq!(r.tree(), before);

        // Added after the switch, downloaded by the client that followed from the start.
        let w = wheel(&src, "hello", &format!("{n}.0"), "hello", None, &format!("v = {n}\n"));
        ok(r.repo("add", &[w.p()]));
        let p = format!("packages/hello/{}", w.name());
        ok(client.get(&[&p, &path]));
        assert_eq!(client.saved(w.name()), w.bytes());
        assert_eq!(shape(&client_targets()), to, "the client trusts the new shape");
        assert!(ok(r.repo("status", &[])).contains(&format!("16 bins ({to})")));
    }
}
