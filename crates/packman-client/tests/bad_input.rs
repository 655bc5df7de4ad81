//! A server (127.0.0.1) that returns bad input for one role: truncated or invalid JSON, wrong
//! types, numbers out of range, duplicate keys, bytes that are not UTF-8, an HTML page. For
//! every role the client fetches (the next root, timestamp, snapshot, top-level targets) the
//! refresh must fail with an error -- never a panic -- whose message names the role and the
//! URL, and the trusted metadata directory must be left as it was.
//!
//! To reach the parser, a bad snapshot is named (by length and hash) by a validly signed
//! newer timestamp, and bad targets by a validly signed newer snapshot: a broken repository,
//! not a forgery. The client rightly keeps those valid files (spec 5.4.5, 5.5.7); the tests
//! check that they, and nothing else, changed.

use std::path::PathBuf;
use std::time::Duration;

use packman_client::{Config, Error, Updater};
use packman_repo::{sign_metadata, RepoBuilder};
use packman_testkit::{Behavior, TestServer};
use packman_tuf::canonical::to_canonical;
use packman_tuf::crypto::Signer;
use packman_tuf::{Error as TufError, OffsetDateTime};
use tempfile::TempDir;

mod common;
use common::{assert_changed_only, assert_unchanged, dir_state, meta_file};

const TARGET: &str = "pkg/hello.txt";
const HTML: &[u8] = b"<!DOCTYPE html><html><body><h1>Welcome!</h1></body></html>";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The role a trust-core error is about.
fn role_of(e: &TufError) -> &str {
    e.role()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Root,
    Timestamp,
    Snapshot,
    Targets,
}

const ROLES: [Role; 4] = [Role::Root, Role::Timestamp, Role::Snapshot, Role::Targets];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Timestamp => "timestamp",
            Role::Snapshot => "snapshot",
            Role::Targets => "targets",
        }
    }
}

/// A role's next version as the honest repository would sign it: the file's bytes and the
/// canonical form of its `signed` part (the starting point for hand-made bad documents).
struct Doc {
    valid: Vec<u8>,
    canonical: String,
    type_name: &'static str,
}

impl Doc {
    /// `{"signed":<signed>,"signatures":[]}`
    fn envelope(signed: &str) -> Vec<u8> {
        format!("{{\"signed\":{signed},\"signatures\":[]}}").into_bytes()
    }

    /// The canonical signed part with its top-level version's value replaced by `value`.
    /// Canonical JSON sorts keys, so `"version"` is the last key of every role's `signed`.
    fn with_version(&self, value: &str) -> String {
        let c = &self.canonical;
        let at = c.rfind("\"version\":").expect("version key");
        let tail = &c[at + "\"version\":".len()..];
        assert!(tail.ends_with('}') && tail[..tail.len() - 1].bytes().all(|b| b.is_ascii_digit()), "{tail}");
        format!("{}\"version\":{value}}}", &c[..at])
    }
}

struct Env {
    now: OffsetDateTime,
    repo: RepoBuilder,
    server: TestServer,
    repo_dir: TempDir,
    client_dir: TempDir,
}

impl Env {
    /// A published repository on loopback and a client that has refreshed from it once.
    fn new() -> Env {
        let now = OffsetDateTime::now_utc();
        let mut repo = RepoBuilder::new(now).unwrap();
        repo.add_target(TARGET, b"hello").unwrap();
        let repo_dir = tempfile::tempdir().unwrap();
        repo.publish(repo_dir.path()).unwrap();
        let server = TestServer::serve_dir(repo_dir.path()).unwrap();
        let client_dir = tempfile::tempdir().unwrap();
        let env = Env { now, repo, server, repo_dir, client_dir };
        Updater::bootstrap(&env.meta_dir(), &env.repo.signed_roots[0]).unwrap();
        env.refresh().unwrap();
        env
    }

    fn meta_dir(&self) -> PathBuf {
        self.client_dir.path().join("metadata")
    }

    fn open(&self) -> Result<Updater, Error> {
        let mut config = Config::default();
        config.fetcher.read_timeout = Duration::from_secs(5);
        let base = self.server.url();
        Updater::with_time(
            &self.meta_dir(),
            &format!("{base}/metadata"),
            Some(&format!("{base}/targets")),
            config,
            self.now,
        )
    }

    fn refresh(&self) -> Result<(), Error> {
        self.open().unwrap_or_else(|e| panic!("opening the metadata directory: {e}")).refresh()
    }

    fn url(&self, name: &str) -> String {
        format!("{}/metadata/{name}", self.server.url())
    }

    fn serve(&self, name: &str, bytes: &[u8]) {
        self.server.set(&format!("/metadata/{name}"), Behavior::Body(bytes.to_vec()));
    }

    /// Serves `bad(next version of role)` where the client will fetch `role` next (and the
    /// valid timestamp/snapshot that lead there). Returns the URL of the bad file and the
    /// valid files the client may persist on its way to it.
    fn serve_bad(&mut self, role: Role, bad: &dyn Fn(&Doc) -> Vec<u8>) -> (String, Vec<(String, Vec<u8>)>) {
        let signer = |r: &str| &self.repo.signers[r][0];
        match role {
            Role::Root => {
                let mut root = self.repo.root.clone();
                root.version += 1;
                let doc = Doc {
                    valid: sign_metadata(&root, &[signer("root")]).unwrap(),
                    canonical: String::from_utf8(to_canonical(&root).unwrap()).unwrap(),
                    type_name: "root",
                };
                let name = format!("{}.root.json", root.version);
                self.serve(&name, &bad(&doc));
                (self.url(&name), vec![])
            }
            Role::Timestamp => {
                let mut ts = self.repo.timestamp.clone();
                ts.version += 1;
                let doc = Doc {
                    valid: sign_metadata(&ts, &[signer("timestamp")]).unwrap(),
                    canonical: String::from_utf8(to_canonical(&ts).unwrap()).unwrap(),
                    type_name: "timestamp",
                };
                self.serve("timestamp.json", &bad(&doc));
                (self.url("timestamp.json"), vec![])
            }
            Role::Snapshot => {
                self.repo.snapshot.version += 1;
                let snap = &self.repo.snapshot;
                let doc = Doc {
                    valid: self.repo.signed_snapshot().unwrap(),
                    canonical: String::from_utf8(to_canonical(snap).unwrap()).unwrap(),
                    type_name: "snapshot",
                };
                let bytes = bad(&doc);
                let name = format!("{}.snapshot.json", snap.version);
                self.serve(&name, &bytes);
                let ts = self.next_timestamp_naming(&bytes);
                (self.url(&name), vec![("timestamp.json".into(), ts)])
            }
            Role::Targets => {
                self.repo.targets.version += 1;
                let doc = Doc {
                    valid: self.repo.signed_targets("targets").unwrap(),
                    canonical: String::from_utf8(to_canonical(&self.repo.targets).unwrap()).unwrap(),
                    type_name: "targets",
                };
                let bytes = bad(&doc);
                let name = format!("{}.targets.json", self.repo.targets.version);
                self.serve(&name, &bytes);
                self.repo.snapshot.version += 1;
                self.repo.snapshot.meta.insert("targets.json".into(), meta_file(self.repo.targets.version, &bytes));
                let snap = self.repo.signed_snapshot().unwrap();
                self.serve(&format!("{}.snapshot.json", self.repo.snapshot.version), &snap);
                let ts = self.next_timestamp_naming(&snap);
                (self.url(&name), vec![("timestamp.json".into(), ts), ("snapshot.json".into(), snap)])
            }
        }
    }

    /// Signs and serves a timestamp one version up naming `snapshot` (the current
    /// `repo.snapshot.version`) by length and hash.
    fn next_timestamp_naming(&mut self, snapshot: &[u8]) -> Vec<u8> {
        let meta = meta_file(self.repo.snapshot.version, snapshot);
        self.repo.timestamp.meta.insert("snapshot.json".into(), meta);
        self.repo.timestamp.version += 1;
        let ts = self.repo.signed_timestamp().unwrap();
        self.serve("timestamp.json", &ts);
        ts
    }
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    Malformed,
    WrongType,
}

type Case = (&'static str, Expect, Box<dyn Fn(&Doc) -> Vec<u8>>);

/// For every role and case: a refresh against the bad file fails with the expected
/// trust-core error, names the role and the URL, and leaves the trusted metadata alone.
fn check_cases(cases: Vec<Case>) {
    for role in ROLES {
        let mut env = Env::new();
        for (what, expect, bad) in &cases {
            let what = format!("{} / {what}", role.name());
            let before = dir_state(&env.meta_dir());
            let (url, allowed) = env.serve_bad(role, bad.as_ref());
            let err = match env.refresh() {
                Ok(()) => panic!("{what}: refresh accepted bad input"),
                Err(e) => e,
            };
            let msg = err.to_string();
            assert!(msg.contains(role.name()), "{what}: message does not name the role: {msg}");
            assert!(msg.contains(&url), "{what}: message does not name {url}: {msg}");
            let tuf = err.tuf().unwrap_or_else(|| panic!("{what}: expected a metadata refusal, got {err:?}"));
            assert_eq!(role_of(tuf), role.name(), "{what}: {tuf:?}");
            match (expect, tuf) {
                (Expect::Malformed, TufError::Malformed { .. }) | (Expect::WrongType, TufError::WrongType { .. }) => {}
                _ => panic!("{what}: expected {expect:?}, got {tuf:?}"),
            }
            assert!(env.server.requests().iter().any(|p| url.ends_with(p.as_str())), "{what}: {url} never requested");
            assert_changed_only(&before, &env.meta_dir(), &allowed, &what);
        }
    }
}

fn case(what: &'static str, expect: Expect, f: impl Fn(&Doc) -> Vec<u8> + 'static) -> Case {
    (what, expect, Box::new(f))
}

// ---------------------------------------------------------------------------------------
// Bad input for each role
// ---------------------------------------------------------------------------------------

#[test]
fn truncated_json_is_refused() {
    check_cases(vec![
        case("first half", Expect::Malformed, |d| d.valid[..d.valid.len() / 2].to_vec()),
        case("last brace missing", Expect::Malformed, |d| {
            let s = d.valid.trim_ascii_end();
            s[..s.len() - 1].to_vec()
        }),
        case("empty body", Expect::Malformed, |_| Vec::new()),
    ]);
}

#[test]
fn invalid_json_is_refused() {
    check_cases(vec![
        case("double comma", Expect::Malformed, |d| {
            let c = d.canonical.replacen(",", ",,", 1);
            Doc::envelope(&c)
        }),
        case("leading zero in a number", Expect::Malformed, |d| Doc::envelope(&d.with_version("02"))),
        case("not JSON at all", Expect::Malformed, |_| b"this is not metadata\n".to_vec()),
        case("trailing garbage", Expect::Malformed, |d| [d.valid.as_slice(), b"}garbage"].concat()),
        case("single-quoted strings", Expect::Malformed, |d| {
            String::from_utf8_lossy(&d.valid).replace('"', "'").into_bytes()
        }),
        case("top level is an array", Expect::Malformed, |d| format!("[{}]", d.canonical).into_bytes()),
        case("no signed object", Expect::Malformed, |_| b"{\"signatures\":[]}".to_vec()),
        case("deeply nested", Expect::Malformed, |_| vec![b'['; 10_000]),
    ]);
}

#[test]
fn wrong_types_are_refused() {
    check_cases(vec![
        case("version as string", Expect::Malformed, |d| Doc::envelope(&d.with_version("\"2\""))),
        case("version as float", Expect::Malformed, |d| Doc::envelope(&d.with_version("2.0"))),
        case("version in exponent form", Expect::Malformed, |d| Doc::envelope(&d.with_version("2e0"))),
        case("version -0", Expect::Malformed, |d| Doc::envelope(&d.with_version("-0"))),
        case("version null", Expect::Malformed, |d| Doc::envelope(&d.with_version("null"))),
        case("version negative", Expect::Malformed, |d| Doc::envelope(&d.with_version("-1"))),
        case("signatures is an object", Expect::Malformed, |d| {
            format!("{{\"signed\":{},\"signatures\":{{}}}}", d.canonical).into_bytes()
        }),
        case("signed is a string", Expect::Malformed, |_| b"{\"signed\":\"yes\",\"signatures\":[]}".to_vec()),
        case("_type of another role", Expect::WrongType, |d| {
            let other = if d.type_name == "timestamp" { "snapshot" } else { "timestamp" };
            let c =
                d.canonical.replacen(&format!("\"_type\":\"{}\"", d.type_name), &format!("\"_type\":\"{other}\""), 1);
            Doc::envelope(&c)
        }),
    ]);
}

#[test]
fn huge_numbers_are_refused() {
    check_cases(vec![
        case("1e400", Expect::Malformed, |d| Doc::envelope(&d.with_version("1e400"))),
        case("99999999999999999999999", Expect::Malformed, |d| {
            Doc::envelope(&d.with_version("99999999999999999999999"))
        }),
        case("u64::MAX + 1", Expect::Malformed, |d| Doc::envelope(&d.with_version("18446744073709551616"))),
        case("a thousand digits", Expect::Malformed, |d| Doc::envelope(&d.with_version(&"9".repeat(1000)))),
    ]);
}

#[test]
fn duplicate_keys_are_refused() {
    check_cases(vec![
        case("two versions in signed", Expect::Malformed, |d| {
            Doc::envelope(&format!("{{\"version\":999,{}", &d.canonical[1..]))
        }),
        case("two adjacent versions at the end", Expect::Malformed, |d| {
            Doc::envelope(&d.with_version("1,\"version\":2"))
        }),
        case("two _type keys, the first naming another role", Expect::Malformed, |d| {
            let other = if d.type_name == "timestamp" { "snapshot" } else { "timestamp" };
            Doc::envelope(&format!("{{\"_type\":\"{other}\",{}", &d.canonical[1..]))
        }),
        case("two signed objects", Expect::Malformed, |d| {
            format!("{{\"signed\":{0},\"signed\":{0},\"signatures\":[]}}", d.canonical).into_bytes()
        }),
    ]);
}

#[test]
fn non_utf8_bytes_are_refused() {
    check_cases(vec![
        case("0xff inside _type", Expect::Malformed, |d| {
            let at = d.canonical.find(d.type_name).unwrap();
            let mut c = d.canonical.as_bytes().to_vec();
            c.insert(at + 1, 0xff);
            [b"{\"signed\":".as_slice(), &c, b",\"signatures\":[]}"].concat()
        }),
        case("UTF-16 with BOM", Expect::Malformed, |d| {
            let mut out = vec![0xff, 0xfe];
            for u in String::from_utf8_lossy(&d.valid).encode_utf16() {
                out.extend_from_slice(&u.to_le_bytes());
            }
            out
        }),
        case("binary noise", Expect::Malformed, |_| (0u8..=255).rev().cycle().take(1000).collect()),
    ]);
}

#[test]
fn html_page_for_one_role_is_refused() {
    check_cases(vec![case("captive portal page", Expect::Malformed, |_| HTML.to_vec())]);
}

// ---------------------------------------------------------------------------------------
// An HTML page for every request
// ---------------------------------------------------------------------------------------

#[test]
fn html_page_for_every_request_is_refused() {
    let env = Env::new();
    let before = dir_state(&env.meta_dir());
    env.server.set_all(Behavior::Html);
    let err = env.refresh().unwrap_err();
    // The first request is the next root (spec 5.3): a 200 HTML page is not "no new root".
    let url = env.url("2.root.json");
    let msg = err.to_string();
    assert!(msg.contains("root") && msg.contains(&url), "{msg}");
    assert!(matches!(err.tuf(), Some(TufError::Malformed { role, .. }) if role == "root"), "{err:?}");
    assert_eq!(env.server.requests().last().map(String::as_str), Some("/metadata/2.root.json"));
    assert_unchanged(&before, &env.meta_dir());
}

// ---------------------------------------------------------------------------------------
// Local trusted metadata
// ---------------------------------------------------------------------------------------

#[test]
fn corrupt_local_trusted_root_is_reported_with_its_file() {
    let env = Env::new();
    let root_path = env.meta_dir().join("root.json");
    let good = std::fs::read(&root_path).unwrap();
    let (stranger, _) = Signer::generate_ed25519().unwrap();
    let not_self_signed = sign_metadata(&env.repo.root, &[&stranger]).unwrap();
    let timestamp = std::fs::read(env.meta_dir().join("timestamp.json")).unwrap();
    let requests = env.server.requests().len();
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("garbage", Some(b"\x00\xffnot a root".to_vec())),
        ("truncated", Some(good[..good.len() / 2].to_vec())),
        ("empty", Some(Vec::new())),
        ("not self-signed", Some(not_self_signed)),
        ("a timestamp in its place", Some(timestamp)),
        ("missing", None),
    ];
    for (what, bytes) in cases {
        match &bytes {
            Some(b) => std::fs::write(&root_path, b).unwrap(),
            None => std::fs::remove_file(&root_path).unwrap(),
        }
        let before = dir_state(&env.meta_dir());
        match env.open() {
            Err(Error::TrustedRoot { path, reason }) => {
                assert_eq!(path, root_path, "{what}");
                assert!(!reason.is_empty(), "{what}");
            }
            Err(other) => panic!("{what}: expected Error::TrustedRoot, got {other:?}"),
            Ok(_) => panic!("{what}: a corrupt trusted root was accepted"),
        }
        let err = env.open().err().unwrap();
        assert!(err.to_string().contains(&root_path.display().to_string()), "{what}: {err}");
        assert_unchanged(&before, &env.meta_dir());
    }
    assert_eq!(env.server.requests().len(), requests, "nothing is fetched without a trusted root");

    // Bootstrapping with a bad root is refused the same way, and writes nothing.
    let fresh = tempfile::tempdir().unwrap();
    let dir = fresh.path().join("metadata");
    match Updater::bootstrap(&dir, b"{\"signed\": 1}") {
        Err(Error::TrustedRoot { path, .. }) => assert_eq!(path, dir.join("root.json")),
        other => panic!("expected Error::TrustedRoot, got {other:?}"),
    }
    assert!(!dir.join("root.json").exists());
}

#[test]
fn corrupt_local_timestamp_snapshot_and_targets_are_replaced() {
    // Unlike the root, other local metadata is only a cache: garbage there must not stop a
    // refresh, and is replaced by what the repository serves.
    let env = Env::new();
    for name in ["timestamp.json", "snapshot.json", "targets.json"] {
        std::fs::write(env.meta_dir().join(name), b"\xff{ garbage").unwrap();
    }
    env.refresh().unwrap();
    let published = |n: &str| std::fs::read(env.repo_dir.path().join("metadata").join(n)).unwrap();
    let after = dir_state(&env.meta_dir());
    assert_eq!(after["timestamp.json"], published("timestamp.json"));
    assert_eq!(after["snapshot.json"], published("1.snapshot.json"));
    assert_eq!(after["targets.json"], published("1.targets.json"));
}
