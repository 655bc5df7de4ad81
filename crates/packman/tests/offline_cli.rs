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

use common::{bin, fails_err, has_all, need, ok, text, wheel};
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
