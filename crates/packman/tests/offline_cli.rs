//! Offline use, as processes: a repository made with `packman repo init/add`, served by
//! packman-testkit on 127.0.0.1 and trusted with `packman trust add`; then the server is
//! stopped (connection refused) and `info`, `search`, `verify` and `install` run from the
//! metadata and files verified earlier, each saying it ran offline and how old its data is.
//! Expired metadata is refused offline, then used with `--allow-expired` and its warning.
//! A repository that answers with rolled-back or tampered metadata is refused, never
//! quietly replaced by the cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{bin, fails, fails_err, has_all, need, ok, text, wheel};
use packman_testkit::{dir_state, tree_state, Behavior, TestServer};
use packman_tuf::{Envelope, Expires, OffsetDateTime, Timestamp};

mod common;

struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let repo = tmp.path().join("repo");
        let w = World { tmp, home, repo };
        ok(w.packman(&["repo", "init", w.repo.to_str().unwrap(), "--bins", "4"]));
        let hello = wheel(&w.p("wheels"), "hello", "1.0");
        ok(w.packman(&["repo", "add", w.repo.to_str().unwrap(), hello.to_str().unwrap()]));
        w
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn packman(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("PACKMAN_HOME", &self.home)
            .env_remove("VIRTUAL_ENV")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null())
            .output()
            .expect("run packman")
    }

    fn serve_and_trust(&self) -> TestServer {
        let server = TestServer::serve_dir(&self.repo).unwrap();
        let root = self.repo.join("metadata/1.root.json");
        let url = format!("{}/", server.url());
        ok(self.packman(&["trust", "add", "demo", &url, "--root", root.to_str().unwrap()]));
        server
    }

    /// Re-signs the repository's timestamp with the next version, expiring `secs` from now
    /// (the publisher's own key, from `repo init`'s key directory).
    fn short_lived_timestamp(&self, secs: i64) {
        let path = self.repo.join("metadata/timestamp.json");
        let mut env: Envelope<Timestamp> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        env.signed.version += 1;
        env.signed.expires =
            Expires((OffsetDateTime::now_utc() + time::Duration::seconds(secs)).replace_nanosecond(0).unwrap());
        let ids: Vec<String> = env.signatures.iter().map(|s| s.keyid.clone()).collect();
        let signers = packman_repo::keys::KeyDir::new(self.repo.join("keys"))
            .signers_for(&ids, &mut |_| panic!("test keys are not encrypted"))
            .unwrap();
        assert!(!signers.is_empty());
        let bytes = packman_repo::sign_metadata(&env.signed, &signers.iter().collect::<Vec<_>>()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }

    fn state(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        tree_state(&self.home)
    }
}

/// The notice every offline command gives, on stderr.
fn says_offline(err: &str) {
    has_all(err, &["offline: repository \"demo\" cannot be reached", "using metadata verified", "ago (timestamp v"]);
}

#[test]
fn with_the_server_stopped_info_search_and_verify_use_verified_metadata_and_say_so() {
    let w = World::new();
    let server = w.serve_and_trust();
    // Online: no offline notice; the pages are now in the verified cache.
    let o = w.packman(&["info", "hello"]);
    assert!(!text(&o).1.contains("offline"), "{}", text(&o).1);
    ok(o);
    ok(w.packman(&["search", "hel"]));
    drop(server);

    let o = w.packman(&["info", "hello"]);
    let (out, err) = text(&o);
    has_all(&ok(o), &["hello (repository demo", "hello-1.0-py3-none-any.whl"]);
    says_offline(&err);
    assert!(err.contains("connection refused") || err.contains("Connection refused"), "{err}");
    assert!(out.contains("sha256"), "{out}");
    let o = w.packman(&["search", "hel"]);
    says_offline(&text(&o).1);
    assert_eq!(ok(o).trim(), "hello  demo");
    let whl = w.p("wheels/hello-1.0-py3-none-any.whl");
    let o = w.packman(&["verify", whl.to_str().unwrap()]);
    says_offline(&text(&o).1);
    has_all(&ok(o), &["ok: repository demo signs it"]);
    // A project page never fetched is not there offline: a clear error, not a hang.
    let o = w.packman(&["info", "nothing-cached"]);
    let err = fails_err(o);
    assert!(err.contains("nothing-cached") || err.contains("demo"), "{err}");
}

#[test]
fn expired_metadata_is_refused_offline_then_used_with_allow_expired_and_a_warning() {
    let w = World::new();
    let server = w.serve_and_trust();
    w.short_lived_timestamp(3);
    // Online, the new timestamp (still valid) is verified and kept.
    ok(w.packman(&["info", "hello"]));
    drop(server);
    std::thread::sleep(Duration::from_millis(3500));

    let before = w.state();
    let err = fails_err(w.packman(&["info", "hello"]));
    has_all(&err, &["cannot be reached", "timestamp: expired at", "--allow-expired"]);
    assert_eq!(w.state(), before, "a refusal changed PACKMAN_HOME");

    let o = w.packman(&["--allow-expired", "info", "hello"]);
    let err = text(&o).1;
    has_all(&ok(o), &["hello-1.0-py3-none-any.whl"]);
    says_offline(&err);
    has_all(
        &err,
        &["packman: warning: --allow-expired", "EXPIRED metadata of repository \"demo\"", "timestamp v", "expired 20"],
    );
    // The flag is not saved: the next command refuses again.
    fails_err(w.packman(&["info", "hello"]));
    let config = std::fs::read_to_string(w.home.join("config/config.toml")).unwrap();
    assert!(!config.contains("expire"), "{config}");
    // Also after the flag (clap global).
    ok(w.packman(&["info", "hello", "--allow-expired"]));
}

#[test]
fn a_repository_that_answers_with_an_attack_is_refused_never_replaced_by_the_cache() {
    let w = World::new();
    let server = w.serve_and_trust();
    let old_ts = std::fs::read(w.repo.join("metadata/timestamp.json")).unwrap();
    let more = wheel(&w.p("wheels"), "other", "2.0");
    ok(w.packman(&["repo", "add", w.repo.to_str().unwrap(), more.to_str().unwrap()]));
    ok(w.packman(&["info", "hello"]));
    let metadata = w.home.join("ring/demo/metadata");
    let before = dir_state(&metadata);

    // Rolled back: refused, and it does not fall back to the cache.
    server.set("/metadata/timestamp.json", Behavior::Body(old_ts));
    let err = fails_err(w.packman(&["info", "hello"]));
    has_all(&err, &["rollback refused"]);
    assert!(!err.contains("offline"), "{err}");
    // Tampered (bytes that are not signed metadata): the same.
    server.set("/metadata/timestamp.json", Behavior::Body(b"{\"signed\": {}}".to_vec()));
    let err = fails_err(w.packman(&["info", "hello"]));
    has_all(&err, &["timestamp"]);
    assert!(!err.contains("offline"), "{err}");
    // A 5xx is an answer too, not an unreachable host.
    server.set("/metadata/timestamp.json", Behavior::Status(503));
    let err = fails_err(w.packman(&["info", "hello"]));
    has_all(&err, &["HTTP 503"]);
    assert!(!err.contains("offline"), "{err}");
    assert_eq!(dir_state(&metadata), before, "a refusal changed the trusted metadata");
    drop(server);
    // Unreachable: the cache, said so.
    says_offline(&text(&w.packman(&["info", "hello"])).1);
}

fn installed(venv: &Path) -> Option<String> {
    let o = Command::new(venv.join("bin/python")).args(["-c", "import hello; print(hello.VERSION)"]).output().unwrap();
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn install_from_the_cache_with_the_server_stopped() {
    if !need("python3", &["-m", "venv", "--help"]) {
        return;
    }
    let w = World::new();
    let server = w.serve_and_trust();
    let venv = w.p("venv");
    ok(Command::new("python3").args(["-m", "venv", venv.to_str().unwrap()]).output().unwrap());
    let python = venv.join("bin/python");
    let install = || w.packman(&["install", "--python", python.to_str().unwrap(), "--installer", "pip", "hello==1.0"]);
    // Online: verified files land in the cache.
    let o = install();
    assert!(!text(&o).1.contains("offline"), "{}", text(&o).1);
    has_all(&ok(o), &["hello-1.0-py3-none-any.whl: from repository demo"]);
    assert_eq!(installed(&venv).as_deref(), Some("1.0"));
    ok(Command::new(&python).args(["-m", "pip", "uninstall", "-y", "-q", "hello"]).output().unwrap());
    assert_eq!(installed(&venv), None);
    drop(server);

    let o = install();
    let err = text(&o).1;
    has_all(&ok(o), &["hello-1.0-py3-none-any.whl: from repository demo"]);
    says_offline(&err);
    assert_eq!(installed(&venv).as_deref(), Some("1.0"));
}

#[test]
fn expired_metadata_served_online_is_refused_then_accepted_with_allow_expired() {
    let w = World::new();
    let _server = w.serve_and_trust();
    w.short_lived_timestamp(2);
    std::thread::sleep(Duration::from_millis(2500));
    let before = w.state();
    let err = fails_err(w.packman(&["info", "hello"]));
    has_all(&err, &["timestamp: expired at", "hint:", "--allow-expired"]);
    assert!(!err.contains("offline"), "{err}");
    let err = fails_err(w.packman(&["update"]));
    has_all(&err, &["timestamp: expired at", "--allow-expired"]);
    assert_eq!(w.state(), before, "a refusal changed PACKMAN_HOME");

    let o = w.packman(&["--allow-expired", "info", "hello"]);
    let err = text(&o).1;
    has_all(&ok(o), &["hello-1.0-py3-none-any.whl"]);
    has_all(&err, &["packman: warning: --allow-expired", "EXPIRED metadata of repository \"demo\"", "timestamp v"]);
    assert!(!err.contains("offline"), "{err}");
    let o = w.packman(&["update", "--allow-expired"]);
    let err = text(&o).1;
    has_all(&ok(o), &["demo: root v1 timestamp v"]);
    has_all(&err, &["demo: EXPIRED metadata accepted because of --allow-expired: timestamp v"]);
}

/// `packman` with its own PACKMAN_HOME (the mirror operator's, not the user's).
fn packman_in(home: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(args).env("PACKMAN_HOME", home).stdin(Stdio::null()).output().expect("run packman")
}

/// `BUNDLE` with one byte of its entry for the wheel of `project` flipped (lengths and the
/// index unchanged: only verification against the signed hashes can tell).
fn tampered_copy(bundle: &Path, project: &str, to: &Path) {
    let mut bytes = std::fs::read(bundle).unwrap();
    let mut a = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let pos = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| {
            let p = e.path().unwrap().to_string_lossy().into_owned();
            p.starts_with(&format!("targets/packages/{project}/")) && p.ends_with(".whl")
        })
        .map(|e| e.raw_file_position() as usize)
        .expect("the bundle carries the wheel");
    bytes[pos + 40] ^= 0x01;
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn a_bundle_imported_into_a_home_that_cannot_reach_the_repository_serves_info_download_and_install() {
    let w = World::new();
    let p = |r: &str| w.p(r);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let root = w.repo.join("metadata/1.root.json");
    // The operator's side, online: a mirror of the repository, exported twice (before and
    // after a second project is published).
    let server = TestServer::serve_dir(&w.repo).unwrap();
    let url = format!("{}/", server.url());
    let (op, mirror) = (p("operator"), p("mirror"));
    let state = p("mirror-state");
    ok(packman_in(&op, &["mirror", "sync", &url, &s(&mirror), "--root", &s(&root), "--state", &s(&state)]));
    ok(packman_in(&op, &["mirror", "export", &s(&mirror), &s(&p("old.bundle")), "--state", &s(&state)]));
    let other = wheel(&p("wheels"), "other", "2.0");
    ok(w.packman(&["repo", "add", &s(&w.repo), &s(&other)]));
    ok(packman_in(&op, &["mirror", "sync", &url, &s(&mirror), "--state", &s(&state)]));
    ok(packman_in(&op, &["mirror", "export", &s(&mirror), &s(&p("new.bundle")), "--state", &s(&state)]));
    // The user's side never reaches the repository: its URL is a closed port from now on.
    drop(server);

    // A tampered first bundle: nothing is added, nothing written.
    tampered_copy(&p("old.bundle"), "hello", &p("bad-old.bundle"));
    let add =
        |bundle: &str| w.packman(&["trust", "add", "demo", &url, "--root", &s(&root), "--bundle", &s(&p(bundle))]);
    let err = fails_err(add("bad-old.bundle"));
    has_all(&err, &["bad-old.bundle: refused for repository \"demo\"", "packages/hello/", "nothing was added"]);
    assert!(w.state().is_empty(), "a refused add wrote {:?}", w.state().keys().collect::<Vec<_>>());

    // Trusted from the old bundle, with its root: no network needed.
    let out = ok(add("old.bundle"));
    has_all(&out, &["demo: trusted", "from bundle", "verified into the cache"]);

    // The new bundle with a byte of the new wheel flipped: its metadata would verify, the
    // wheel does not; refused, and the home is byte for byte as it was.
    tampered_copy(&p("new.bundle"), "other", &p("bad-new.bundle"));
    let before = w.state();
    let err = fails_err(w.packman(&["update", "--bundle", &s(&p("bad-new.bundle")), "demo"]));
    has_all(&err, &["bad-new.bundle: refused for repository \"demo\"", "packages/other/", "nothing was changed"]);
    assert_eq!(w.state(), before, "a refused bundle changed PACKMAN_HOME");
    // Not a bundle at all: named, nothing changed.
    let err = fails_err(w.packman(&["update", "--bundle", &s(&other), "demo"]));
    assert!(err.contains(&s(&other)), "{err}");
    assert_eq!(w.state(), before);

    let out = ok(w.packman(&["update", "--bundle", &s(&p("new.bundle"))]));
    has_all(&out, &["demo: root v1 timestamp v", "from bundle", "verified into the cache", "already there"]);
    // Rolled back (the old bundle again, older than the trusted state): refused, unchanged.
    let before = w.state();
    let err = fails_err(w.packman(&["update", "--bundle", &s(&p("old.bundle")), "demo"]));
    has_all(&err, &["old.bundle: refused for repository \"demo\"", "timestamp", "nothing was changed"]);
    assert_eq!(w.state(), before, "a rolled-back bundle changed PACKMAN_HOME");
    // --json: the shape of `update --json`, with what the bundle brought.
    let j: serde_json::Value =
        serde_json::from_str(&ok(w.packman(&["update", "--bundle", &s(&p("new.bundle")), "--json"]))).unwrap();
    let r = &j[0];
    assert_eq!(
        (r["name"].as_str(), r["ok"].as_bool(), r["targets_cached"].as_u64()),
        (Some("demo"), Some(true), Some(0))
    );
    assert!(r["targets_present"].as_u64().unwrap() >= 2 && r["timestamp_version"].as_u64().is_some(), "{j}");
    let before = w.state();
    let (out, _) = fails(w.packman(&["update", "--bundle", &s(&p("old.bundle")), "--json"]));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j[0]["ok"], false, "{j}");
    assert!(j[0]["error"].as_str().unwrap().contains("rollback refused"), "{j}");
    assert!(j[0]["bundle"].as_str().unwrap().ends_with("old.bundle"), "{j}");
    assert_eq!(w.state(), before);

    // Offline, from what the bundles brought: info, search, download, verify.
    let o = w.packman(&["info", "other"]);
    says_offline(&text(&o).1);
    has_all(&text(&o).1, &[", from bundle ", "new.bundle)"]);
    has_all(&ok(o), &["other (repository demo", "other-2.0-py3-none-any.whl"]);
    let o = w.packman(&["search", "e"]);
    says_offline(&text(&o).1);
    has_all(&ok(o), &["hello  demo", "other  demo"]);
    let dl = p("downloads");
    let o = w.packman(&["download", "hello==1.0", "other", "--all", "-d", &s(&dl)]);
    says_offline(&text(&o).1);
    has_all(&ok(o), &["hello-1.0-py3-none-any.whl: verified", "other-2.0-py3-none-any.whl: verified"]);
    assert_eq!(std::fs::read(dl.join("other-2.0-py3-none-any.whl")).unwrap(), std::fs::read(&other).unwrap());
    let o = w.packman(&["verify", &s(&dl.join("hello-1.0-py3-none-any.whl"))]);
    says_offline(&text(&o).1);
    has_all(&ok(o), &["ok: repository demo signs it"]);

    // And install, through the proxy, from the cache.
    if !need("python3", &["-m", "venv", "--help"]) {
        return;
    }
    let venv = p("venv");
    ok(Command::new("python3").args(["-m", "venv", &s(&venv)]).output().unwrap());
    let python = venv.join("bin/python");
    let o = w.packman(&["install", "--python", &s(&python), "--installer", "pip", "hello==1.0"]);
    says_offline(&text(&o).1);
    has_all(&ok(o), &["hello-1.0-py3-none-any.whl: from repository demo"]);
    assert_eq!(installed(&venv).as_deref(), Some("1.0"));
}

/// `--json` carries what the notes on stderr say: offline (why, how old the data is) and
/// expired roles used under `--allow-expired`, on every record read from a repository.
#[test]
fn json_output_says_offline_and_expired_as_data() {
    let w = World::new();
    let server = w.serve_and_trust();
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&ok(w.packman(args))).unwrap() };
    let whl = w.p("wheels/hello-1.0-py3-none-any.whl");
    let whl = whl.to_str().unwrap();
    let dl = w.p("dl");
    let dl = dl.to_str().unwrap();
    // Online: said so too.
    let j = json(&["info", "--json", "hello"]);
    assert_eq!(j["freshness"]["offline"], false, "{j}");
    assert_eq!(j["freshness"]["data_age_seconds"], serde_json::Value::Null, "{j}");
    assert_eq!(j["freshness"]["expired"], serde_json::json!([]), "{j}");
    w.short_lived_timestamp(2);
    ok(w.packman(&["search", "hel"]));
    ok(w.packman(&["download", "--all", "-d", dl, "hello"]));
    drop(server);
    std::thread::sleep(Duration::from_millis(2500));

    let records = |j: &serde_json::Value| -> Vec<serde_json::Value> {
        match j {
            serde_json::Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        }
    };
    for args in [
        vec!["--allow-expired", "info", "--json", "hello"],
        vec!["--allow-expired", "search", "--json", "hel"],
        vec!["--allow-expired", "verify", "--json", whl],
        vec!["--allow-expired", "download", "--json", "--all", "-d", dl, "hello"],
    ] {
        let j = json(&args);
        let all = records(&j);
        assert!(!all.is_empty(), "{args:?}: {j}");
        for r in all {
            let f = &r["freshness"];
            assert_eq!(f["offline"], true, "{args:?}: {j}");
            assert!(f["offline_reason"].as_str().unwrap().to_lowercase().contains("refused"), "{args:?}: {j}");
            let age = f["data_age_seconds"].as_i64().unwrap_or(-1);
            assert!((2..600).contains(&age), "{args:?}: age {age}: {j}");
            assert!(f["verified_at"].as_str().is_some_and(|t| t.starts_with("20")), "{args:?}: {j}");
            assert_eq!(f["allow_expired"], true, "{args:?}: {j}");
            assert_eq!(f["bundle"], serde_json::Value::Null, "{args:?}: {j}");
            let expired = f["expired"].as_array().unwrap();
            assert!(expired.iter().any(|e| e.as_str().unwrap().starts_with("timestamp v")), "{args:?}: {j}");
        }
    }
}
