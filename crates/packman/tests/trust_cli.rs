//! End-to-end tests of the trust ring: the real `packman` binary with `PACKMAN_HOME` in a
//! temporary directory, repositories made with `packman repo init/add/key rotate` and served
//! over HTTP on 127.0.0.1 by packman-testkit's server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{fails_err as fails, has_all, ok, sha256, text};
use packman_testkit::{Behavior, TestServer};
use serde_json::Value;

mod common;

/// One user's home and the repositories it talks to.
struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    World { tmp, home }
}

/// A repository made by `packman repo init`, served over HTTP.
struct Repo {
    dir: PathBuf,
    server: TestServer,
}

impl Repo {
    fn url(&self) -> String {
        format!("{}/", self.server.url())
    }
    fn root_v1(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("metadata/1.root.json")).unwrap()
    }
    fn root_json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("metadata/root.json")).unwrap()).unwrap()
    }
    fn keyids(&self, role: &str) -> Vec<String> {
        self.root_json()["signed"]["roles"][role]["keyids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }
}

impl World {
    fn packman(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_packman"))
            .args(args)
            .env("PACKMAN_HOME", &self.home)
            .env_remove("PACKMAN_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run packman")
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `packman repo init` at `rel` (replacing whatever is there).
    fn init_at(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        ok(self.packman(&["repo", "init", dir.to_str().unwrap(), "--bins", "4"]));
    }

    fn repo(&self, rel: &str) -> Repo {
        let dir = self.p(rel);
        self.init_at(&dir);
        let server = TestServer::serve_dir(&dir).unwrap();
        Repo { dir, server }
    }

    fn publish_file(&self, repo: &Repo, name: &str) {
        let f = self.p(name);
        std::fs::write(&f, name.as_bytes()).unwrap();
        ok(self.packman(&["repo", "add", repo.dir.to_str().unwrap(), "--raw", f.to_str().unwrap()]));
    }

    fn publish_file_at(&self, dir: &str, name: &str) {
        let f = self.p(name);
        std::fs::write(&f, name.as_bytes()).unwrap();
        ok(self.packman(&["repo", "add", dir, "--raw", f.to_str().unwrap()]));
    }

    fn root_file(&self, repo: &Repo) -> String {
        let f = self.p(&format!("trusted-root-{}.json", repo.server.url().rsplit(':').next().unwrap()));
        std::fs::write(&f, repo.root_v1()).unwrap();
        f.display().to_string()
    }

    /// Every file and directory under PACKMAN_HOME (lock files included) with its sha256.
    fn tree(&self) -> BTreeMap<String, String> {
        fn go(base: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
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
        let mut out = BTreeMap::new();
        if self.home.exists() {
            go(&self.home, &self.home, &mut out);
        }
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&ok(self.packman(args))).unwrap()
    }
}

#[test]
fn add_with_a_root_file_then_list_show_remove() {
    let w = world();
    let r = w.repo("r");
    let root = w.root_file(&r);
    let fp = sha256(&r.root_v1());
    let out = ok(w.packman(&["trust", "add", "internal", &r.url(), "--root", &root, "--projects", "acme-*"]));
    has_all(&out, &["internal: trusted", &r.url(), "root v1", &fp]);

    let list = ok(w.packman(&["trust", "list"]));
    let root_key = &r.keyids("root")[0];
    has_all(&list, &["internal", &r.url(), "root v1", "threshold 1 of 1", &root_key[..8], "acme-*", "last update: 20"]);
    let j = w.json(&["trust", "list", "--json"]);
    assert_eq!(j.as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j[0]["name"], "internal");
    assert_eq!(j[0]["root_version"], 1);
    assert_eq!(j[0]["root_fingerprint"], fp.as_str());
    assert_eq!(j[0]["projects"], serde_json::json!(["acme-*"]));
    assert!(j[0]["last_update"].as_str().unwrap().starts_with("20"), "{j}");

    let show = ok(w.packman(&["trust", "show", "internal"]));
    has_all(&show, &["root fingerprint: sha256", &fp, "timestamp", "snapshot", "targets"]);
    for role in ["timestamp", "snapshot", "targets"] {
        has_all(&show, &[&r.keyids(role)[0][..8]]);
    }
    let j = w.json(&["trust", "show", "internal", "--json"]);
    let roles: Vec<&str> = j["roles"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["root", "timestamp", "snapshot", "targets"]);
    assert_eq!(j["roles"][1]["keyids"][0], r.keyids("timestamp")[0].as_str());
    assert_eq!(j["roles"][1]["version"], 1);
    // The trusted metadata is in the ring's directory, and the state file beside it.
    let dir = w.home.join("ring/internal");
    assert_eq!(std::fs::read(dir.join("metadata/root.json")).unwrap(), r.root_v1());
    assert!(dir.join("metadata/timestamp.json").is_file() && dir.join("state.json").is_file());

    // A second add under the same name, or of the same URL, is refused; nothing changes.
    let before = w.tree();
    has_all(
        &fails(w.packman(&["trust", "add", "internal", "http://127.0.0.1:9/", "--root", &root])),
        &["already trusted"],
    );
    let other_spelling = r.url().trim_end_matches('/').to_string();
    has_all(
        &fails(w.packman(&["trust", "add", "again", &other_spelling, "--tofu"])),
        &["already trusted as \"internal\""],
    );
    assert_eq!(w.tree(), before);

    let out = ok(w.packman(&["trust", "remove", "internal"]));
    has_all(&out, &["internal: no longer trusted"]);
    assert!(!dir.exists());
    assert_eq!(ok(w.packman(&["trust", "list", "--json"])).trim(), "[]");
    has_all(&fails(w.packman(&["trust", "remove", "internal"])), &["no repository named \"internal\""]);
    has_all(&fails(w.packman(&["trust", "show", "internal"])), &["no repository named \"internal\""]);
}

#[test]
fn root_sha256_must_match_what_the_repository_serves() {
    let w = world();
    let r = w.repo("r");
    let fp = sha256(&r.root_v1());
    let wrong = sha256(b"another root");
    let empty = w.tree();
    let err = fails(w.packman(&["trust", "add", "r", &r.url(), "--root-sha256", &wrong]));
    has_all(&err, &[&wrong, &fp, "1.root.json", "not the fingerprint given", "nothing was added"]);
    assert_eq!(w.tree(), empty);
    has_all(&fails(w.packman(&["trust", "add", "r", &r.url(), "--root-sha256", "abc"])), &["64 hex digits"]);
    assert_eq!(w.tree(), empty);

    let out = ok(w.packman(&["trust", "add", "r", &r.url(), "--root-sha256", &fp.to_uppercase()]));
    has_all(&out, &["r: trusted", &fp]);
    assert_eq!(std::fs::read(w.home.join("ring/r/metadata/root.json")).unwrap(), r.root_v1());
}

#[test]
fn root_from_copies_must_agree_byte_for_byte() {
    let w = world();
    let r = w.repo("r");
    let other = w.repo("other");
    let fp = sha256(&r.root_v1());
    // A second place serving the same root (a copy of the repository).
    let copy = w.p("copy");
    std::fs::create_dir_all(copy.join("metadata")).unwrap();
    std::fs::write(copy.join("metadata/1.root.json"), r.root_v1()).unwrap();
    let copy_server = TestServer::serve_dir(&copy).unwrap();
    let copy_url = format!("{}/metadata/1.root.json", copy_server.url());
    let other_url = format!("{}metadata/1.root.json", other.url());

    let empty = w.tree();
    let err = fails(w.packman(&[
        "trust",
        "add",
        "r",
        &r.url(),
        "--root-sha256",
        &fp,
        "--root-from",
        &copy_url,
        "--root-from",
        &other_url,
    ]));
    let served = format!("{}metadata/1.root.json", r.url());
    has_all(&err, &[&served, &fp, &other_url, &sha256(&other.root_v1()), "differ", "nothing was added"]);
    assert_eq!(w.tree(), empty);

    let out = ok(w.packman(&["trust", "add", "r", &r.url(), "--tofu", "--root-from", &copy_url]));
    has_all(&out, &["r: trusted", &fp, "the same root from", &copy_url]);
}

#[test]
fn a_root_source_is_required_and_tofu_warns() {
    let w = world();
    let r = w.repo("r");
    let err = fails(w.packman(&["trust", "add", "r", &r.url()]));
    has_all(&err, &["--root FILE", "--root-sha256 HEX", "--tofu", "Nothing was added"]);
    assert!(!w.home.exists());
    // Two sources at once are refused by the parser.
    let o = w.packman(&["trust", "add", "r", &r.url(), "--tofu", "--root-sha256", &sha256(b"x")]);
    assert!(!o.status.success());

    let o = w.packman(&["trust", "add", "r", &r.url(), "--tofu"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let fp = sha256(&r.root_v1());
    has_all(&err, &["WARNING", "on first use", "NOT checked", &fp]);
    has_all(&out, &[&fp]);
    // -q keeps the warning (it is about security) but prints nothing else.
    let r2 = w.repo("r2");
    let o = w.packman(&["trust", "add", "r2", &r2.url(), "--tofu", "-q"]);
    assert!(o.status.success());
    let (out, err) = text(&o);
    assert!(out.is_empty(), "{out}");
    has_all(&err, &["WARNING", &sha256(&r2.root_v1())]);
}

#[test]
fn a_failed_first_update_undoes_the_add() {
    let w = world();
    let r = w.repo("r");
    let root = w.root_file(&r);
    // One repository already trusted, so the config and ring dir exist.
    let good = w.repo("good");
    ok(w.packman(&["trust", "add", "good", &good.url(), "--root", &w.root_file(&good)]));
    let before = w.tree();
    r.server.set("/metadata/timestamp.json", Behavior::Status(404));
    let err = fails(w.packman(&["trust", "add", "r", &r.url(), "--root", &root]));
    has_all(&err, &["r:", "timestamp.json", "nothing was added"]);
    assert_eq!(w.tree(), before);
    // A root that does not verify on its own is refused before anything is written.
    let mut bad: Value = serde_json::from_slice(&r.root_v1()).unwrap();
    bad["signed"]["version"] = 7.into();
    std::fs::write(&root, serde_json::to_vec(&bad).unwrap()).unwrap();
    r.server.reset();
    has_all(&fails(w.packman(&["trust", "add", "r", &r.url(), "--root", &root])), &["threshold", "nothing was added"]);
    assert_eq!(w.tree(), before);
}

#[test]
fn signed_rotations_are_followed_and_reported_in_one_line() {
    let w = world();
    let r = w.repo("r");
    ok(w.packman(&["trust", "add", "r", &r.url(), "--root", &w.root_file(&r)]));
    let out = ok(w.packman(&["update"]));
    assert_eq!(out.trim(), "r: root v1 timestamp v1 snapshot v1");

    let old_ts = r.keyids("timestamp")[0].clone();
    ok(w.packman(&["repo", "key", "rotate", r.dir.to_str().unwrap(), "timestamp"]));
    let new_ts = r.keyids("timestamp")[0].clone();
    assert_ne!(old_ts, new_ts);
    let out = ok(w.packman(&["update"]));
    let line =
        format!("r: root v1 -> v2 (keys added: timestamp {}; removed: timestamp {})", &new_ts[..8], &old_ts[..8]);
    has_all(&out, &[&line, "r: root v2 timestamp v2"]);
    // Nothing more to follow: no rotation line.
    assert!(!ok(w.packman(&["update", "r"])).contains("->"));

    // A root key rotation (the new root signed by the old and the new key).
    let old_root = r.keyids("root")[0].clone();
    ok(w.packman(&["repo", "key", "rotate", r.dir.to_str().unwrap(), "root"]));
    let new_root = r.keyids("root")[0].clone();
    let j = w.json(&["update", "--json"]);
    assert_eq!(j[0]["ok"], true, "{j}");
    assert_eq!(j[0]["root_version"], 3);
    assert_eq!(j[0]["rotation"]["from"], 2);
    assert_eq!(j[0]["rotation"]["to"], 3);
    assert_eq!(j[0]["rotation"]["keys_added"], serde_json::json!([format!("root:{new_root}")]));
    assert_eq!(j[0]["rotation"]["keys_removed"], serde_json::json!([format!("root:{old_root}")]));
    let show = w.json(&["trust", "show", "r", "--json"]);
    assert_eq!(show["root_version"], 3);
    assert_eq!(show["roles"][0]["keyids"], serde_json::json!([new_root]));
    // -q: nothing on success.
    assert_eq!(ok(w.packman(&["update", "-q"])), "");
}

#[test]
fn a_swapped_root_is_refused_loudly_and_changes_nothing() {
    let w = world();
    let r = w.repo("r");
    let trusted_fp = sha256(&r.root_v1());
    ok(w.packman(&["trust", "add", "r", &r.url(), "--root", &w.root_file(&r)]));
    ok(w.packman(&["update"]));

    // Another repository with unrelated keys, served at the same URL.
    w.init_at(&r.dir);
    let new_fp = sha256(&r.root_v1());
    assert_ne!(new_fp, trusted_fp);
    let before = w.tree();
    let err = fails(w.packman(&["update"]));
    has_all(
        &err,
        &[
            "REPOSITORY ROOT KEYS HAVE CHANGED",
            "root",
            &trusted_fp,
            &new_fp,
            "attack",
            "Nothing was changed",
            "packman trust remove r",
            &format!("packman trust add r {} --root-sha256 {new_fp}", r.url()),
        ],
    );
    assert_eq!(w.tree(), before);
    let j: Value = serde_json::from_str(&text(&w.packman(&["update", "--json"])).0).unwrap();
    assert_eq!(j[0]["ok"], false);
    assert_eq!(j[0]["root_changed"]["trusted_fingerprint"], trusted_fp.as_str());
    assert_eq!(j[0]["root_changed"]["offered_fingerprint"], new_fp.as_str());
    assert_eq!(w.tree(), before);

    // The commands the warning prints do accept the new root.
    ok(w.packman(&["trust", "remove", "r"]));
    ok(w.packman(&["trust", "add", "r", &r.url(), "--root-sha256", &new_fp]));
    ok(w.packman(&["update"]));
}

#[test]
fn a_next_root_not_signed_by_the_trusted_keys_is_refused_and_changes_nothing() {
    let w = world();
    let r = w.repo("r");
    let trusted_fp = sha256(&r.root_v1());
    ok(w.packman(&["trust", "add", "r", &r.url(), "--root", &w.root_file(&r)]));
    // A genuine version 2 of an unrelated repository, offered as this one's next root.
    let other = w.repo("other");
    ok(w.packman(&["repo", "key", "rotate", other.dir.to_str().unwrap(), "root"]));
    let forged = std::fs::read(other.dir.join("metadata/2.root.json")).unwrap();
    std::fs::write(r.dir.join("metadata/2.root.json"), &forged).unwrap();
    let before = w.tree();
    let err = fails(w.packman(&["update"]));
    has_all(
        &err,
        &[
            "REPOSITORY ROOT KEYS HAVE CHANGED",
            "2.root.json",
            "threshold not met",
            &trusted_fp,
            &sha256(&forged),
            "packman trust remove r",
        ],
    );
    assert_eq!(w.tree(), before);
}

#[test]
fn update_tries_every_repository_and_fails_if_one_is_refused() {
    let w = world();
    let bad = w.repo("bad");
    let good = w.repo("good");
    ok(w.packman(&["trust", "add", "bad", &bad.url(), "--root", &w.root_file(&bad)]));
    ok(w.packman(&["trust", "add", "good", &good.url(), "--root", &w.root_file(&good)]));
    w.init_at(&bad.dir);
    w.publish_file(&good, "new-file.txt");
    let bad_before: BTreeMap<_, _> = w.tree().into_iter().filter(|(k, _)| k.starts_with("ring/bad")).collect();

    let o = w.packman(&["update"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    has_all(&err, &["REPOSITORY ROOT KEYS HAVE CHANGED", "1 of 2 repositories not updated: bad"]);
    has_all(&out, &["good: root v1 timestamp v2 snapshot v2"]);
    assert!(!out.contains("bad:"), "{out}");
    let bad_after: BTreeMap<_, _> = w.tree().into_iter().filter(|(k, _)| k.starts_with("ring/bad")).collect();
    assert_eq!(bad_after, bad_before);
    let j = w.json(&["trust", "show", "good", "--json"]);
    assert_eq!(j["roles"][1]["version"], 2, "{j}");

    // Only the named ones; an unknown name is an error after the others ran.
    let o = w.packman(&["update", "good", "nosuch"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    has_all(&out, &["good: root v1"]);
    has_all(&err, &["nosuch", "no repository named", "1 of 2 repositories not updated: nosuch"]);
    assert_eq!(ok(w.packman(&["update", "good"])).trim(), "good: root v1 timestamp v2 snapshot v2");
}

#[test]
fn add_keeps_the_mirrors_given_and_refuses_a_bad_one() {
    let w = world();
    let r = w.repo("r");
    let root = w.root_file(&r);
    let bad = fails(w.packman(&["trust", "add", "m", &r.url(), "--root", &root, "--mirror", "ftp://x/metadata/"]));
    has_all(&bad, &["--mirror \"ftp://x/metadata/\": expected METADATA_URL,TARGETS_URL", "nothing was added"]);
    let bad = fails(w.packman(&["trust", "add", "m", &r.url(), "--root", &root, "--mirror", "ftp://x/m/,ftp://x/t/"]));
    has_all(&bad, &["mirrors", "http://", "nothing was added"]);
    let (md, tg) = ("http://127.0.0.1:9/eu/metadata/", "http://127.0.0.1:9/eu/targets/");
    let out = ok(w.packman(&["trust", "add", "m", &r.url(), "--root", &root, "--mirror", &format!("{md},{tg}")]));
    has_all(&out, &["m: trusted", &format!("mirror (configured): {md} {tg}")]);
    has_all(&ok(w.packman(&["trust", "list"])), &[&format!("mirror (configured): {md} {tg}")]);
    let found = w.tree().into_keys().find(|k| k.ends_with("config.toml")).expect("a config.toml");
    let config = std::fs::read_to_string(w.home.join(found)).unwrap();
    has_all(&config, &["mirrors", md, tg]);
}

/// A repository whose URL is down is updated through the mirror its signed list names (and
/// one the user configured): `trust show` lists both, `update` succeeds and says which URL
/// failed and how.
#[test]
fn update_fails_over_to_the_mirrors_when_the_repository_url_is_down() {
    let w = world();
    let r = w.repo("r");
    let dir = r.dir.to_str().unwrap();
    // The same directory served a second and a third time: two mirrors.
    let signed = TestServer::serve_dir(&r.dir).unwrap();
    let configured = TestServer::serve_dir(&r.dir).unwrap();
    let (smd, stg) = (format!("{}/metadata/", signed.url()), format!("{}/targets/", signed.url()));
    ok(w.packman(&["repo", "mirrors", "add", dir, "eu", "--metadata-url", &smd, "--targets-url", &stg]));
    let (cmd, ctg) = (format!("{}/metadata/", configured.url()), format!("{}/targets/", configured.url()));
    let root = w.root_file(&r);
    let mirror = format!("{cmd},{ctg}");
    ok(w.packman(&["trust", "add", "m", &r.url(), "--root", &root, "--mirror", &mirror]));
    let show = ok(w.packman(&["trust", "show", "m"]));
    has_all(&show, &[&format!("mirror (configured): {cmd} {ctg}"), &format!("mirror (signed): eu {smd} {stg}")]);
    let j: Value = serde_json::from_str(&ok(w.packman(&["trust", "show", "m", "--json"]))).unwrap();
    let sources: Vec<(&str, &str)> = j["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["source"].as_str().unwrap(), m["metadata_url"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("configured", cmd.as_str()), ("signed", smd.as_str())], "{j}");

    // New metadata, then the repository's URL goes down: the configured mirror serves it.
    w.publish_file(&r, "two.txt");
    let primary = format!("{}/metadata/", r.server.url());
    drop(r.server);
    let o = w.packman(&["update", "m"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    has_all(&out, &["m: root v1 timestamp v3"]);
    has_all(&err, &[&format!("mirror {primary}: unreachable"), "Connection refused"]);
    // That one down too: the signed list's mirror.
    w.publish_file_at(dir, "three.txt");
    drop(configured);
    let o = w.packman(&["update", "m", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j[0]["timestamp_version"], 4, "{j}");
    let failed: Vec<String> =
        j[0]["mirror_failures"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    assert!(failed.iter().any(|f| f.starts_with(&format!("mirror {primary}: unreachable"))), "{failed:?}");
    assert!(failed.iter().any(|f| f.starts_with(&format!("mirror {cmd}: unreachable"))), "{failed:?}");
    assert!(!failed.iter().any(|f| f.contains(&smd)), "{failed:?}");
    // -v: each attempt, which mirror, how it ended.
    let o = w.packman(&["-v", "update", "m"]);
    let err = text(&o).1;
    ok(o);
    has_all(
        &err,
        &[
            &format!("{primary}2.root.json: failed (mirror {primary})"),
            &format!("{cmd}2.root.json: failed (mirror {cmd})"),
            &format!("{smd}timestamp.json: fetched and verified (mirror eu)"),
        ],
    );
    assert!(!text(&w.packman(&["update", "m"])).1.contains("fetched and verified"));
}
