//! Every attack of packman-attacks' one malicious repository against every surface the real
//! binary offers in Rust: `packman download` (the trust ring), `packman mirror sync`, and
//! `packman proxy` (its HTTP answers; pip, uv and `packman install` meet the same server in
//! tests/interop/test_attack_matrix.py).
//!
//! Each surface first trusts the repository at S2; the repository then publishes S3 and
//! performs the attack while the surface asks for project `gamma`. Each run must fail naming
//! the attack (`Attack::named_in`) and leave the trusted state byte-identical (the one file
//! `Armed::persisted` allows aside), the mirror's DEST byte-identical, and nothing unverified
//! in a cache or output directory. A control per surface gets `gamma` from the genuine S3.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, sha256, text};
use packman_attacks::{Armed, Attack, Upstream, ATTACKED, RECOVERED};
use packman_testkit::tree_state;

type State = BTreeMap<String, Vec<u8>>;

struct Case {
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    up: Upstream,
    root: PathBuf,
}

impl Case {
    fn new() -> Case {
        let t = tempfile::tempdir().unwrap();
        let tmp = t.path().to_path_buf();
        let up = Upstream::new(&tmp.join("upstream")).unwrap();
        let root = tmp.join("1.root.json");
        std::fs::write(&root, up.first_root()).unwrap();
        Case { _tmp: t, tmp, up, root }
    }

    fn packman(&self, home: &Path, args: &[&str]) -> Output {
        Command::new(bin()).args(args).env("PACKMAN_HOME", home).env_remove("NO_COLOR").output().unwrap()
    }

    /// S3 published, then the attack armed (none: the control).
    fn attack(&mut self, attack: Option<Attack>) -> Armed {
        self.up.advance().unwrap();
        match attack {
            Some(a) => self.up.arm(a).unwrap(),
            None => Armed::default(),
        }
    }
}

#[track_caller]
fn ok(o: Output, what: &str) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "{what} failed ({:?})\nstdout:\n{out}\nstderr:\n{err}", o.status);
    out
}

/// The run failed cleanly (exit 1, no panic) and its output names the attack.
#[track_caller]
fn refused(o: &Output, attack: Attack, surface: &str) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "{surface} under {attack:?}: expected exit 1\nstdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(attack.named_in(&err), "{surface} under {attack:?} must name it {:?}:\n{err}", attack.expect());
}

/// `after` equals `before` but for what `armed` allows a client to persist while refusing:
/// the one file it names (under any directory), holding exactly the bytes the attacker
/// served, or, for an attack on a target, metadata files holding the genuine upstream's
/// bytes (`genuine`: every file the upstream published) and the record of that refresh.
#[track_caller]
fn unchanged_but_allowed(before: &State, after: &State, armed: &Armed, genuine: &State, what: &str) {
    let named = |k: &str| match &armed.persisted {
        Some((name, _)) => k == name || k.ends_with(&format!("/{name}")),
        None => false,
    };
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let (b, a) = (before.get(k), after.get(k));
        if b == a {
            continue;
        }
        if named(k) && a == armed.persisted.as_ref().map(|p| &p.1) {
            continue;
        }
        if armed.genuine_metadata_advances && a.is_some_and(|a| genuine.values().any(|g| g == a)) {
            continue;
        }
        // The record of that successful refresh (when, which timestamp version).
        if armed.genuine_metadata_advances && k.ends_with("/state.json") {
            continue;
        }
        panic!("{what}: {k} changed by a refused run");
    }
}

fn genuine(c: &Case) -> State {
    tree_state(&c.up.dir().join("metadata"))
}

/// Every cached file is named by the sha256 of its bytes: nothing unverified was kept.
#[track_caller]
fn cache_holds_only_verified(home: &Path) {
    for (k, v) in tree_state(home) {
        if let Some(name) = k.strip_prefix("cache/files/") {
            assert!(name.starts_with('.') || sha256(&v) == name, "cache file {k} does not hold the bytes it names");
            assert!(!name.starts_with(".tmp"), "temp file {k} left in the cache");
        }
    }
}

fn trust_at_s2(c: &Case, home: &Path) {
    let url = c.up.url();
    ok(c.packman(home, &["trust", "add", "up", &url, "--root", c.root.to_str().unwrap()]), "trust add");
}

fn download(attack: Option<Attack>) {
    let mut c = Case::new();
    let home = c.tmp.join("home");
    trust_at_s2(&c, &home);
    let before = trusted_state(&home);
    let armed = c.attack(attack);
    let out = c.tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = c.packman(&home, &["download", ATTACKED, "-d", out.to_str().unwrap()]);
    match attack {
        None => {
            ok(o, "download");
            let got: Vec<_> = tree_state(&out).into_values().collect();
            let wheel = c.up.repo.target_data.iter().find(|(k, _)| k.starts_with("packages/gamma/")).unwrap().1;
            assert_eq!(got, vec![wheel.clone()]);
        }
        Some(a) => {
            refused(&o, a, "download");
            unchanged_but_allowed(&before, &trusted_state(&home), &armed, &genuine(&c), "download's PACKMAN_HOME");
            assert!(tree_state(&out).is_empty(), "download left files under a refusal");
        }
    }
    cache_holds_only_verified(&home);
}

fn mirror(attack: Option<Attack>) {
    let mut c = Case::new();
    let (home, dest) = (c.tmp.join("home"), c.tmp.join("mirror"));
    let url = c.up.url();
    let dest_s = dest.to_str().unwrap().to_string();
    ok(c.packman(&home, &["mirror", "sync", &url, &dest_s, "--root", c.root.to_str().unwrap()]), "first sync");
    let before = tree_state(&dest);
    let armed = c.attack(attack);
    let o = c.packman(&home, &["mirror", "sync", &url, &dest_s]);
    if attack == Some(Attack::BinOutsideDelegation) {
        // One compromised bin key must not freeze every mirror: the signed metadata is
        // mirrored, the misplaced entry never fetched, and the sync says which role and path.
        let (_, err) = text(&o);
        assert!(o.status.success(), "mirror sync under {attack:?} must go on:\n{err}");
        let wrong = armed.misplaced.as_deref().unwrap();
        assert!(err.contains(wrong) && err.contains("gamma-1.0-py3-none-any.whl"), "{err}");
        let wheel = c.up.repo.target_data.iter().find(|(k, _)| k.starts_with("packages/gamma/")).unwrap().1;
        assert!(!tree_state(&dest).values().any(|v| v == wheel), "the misplaced wheel was mirrored");
        return;
    }
    match attack {
        None => {
            ok(o, "sync");
            let mirrored = tree_state(&dest);
            let wheel = c.up.repo.target_data.iter().find(|(k, _)| k.starts_with("packages/gamma/")).unwrap().1;
            assert!(mirrored.values().any(|v| v == wheel), "gamma's wheel was not mirrored");
        }
        Some(a) => {
            refused(&o, a, "mirror sync");
            // DEST is what mirrors' clients read: not even a verified timestamp may change it.
            assert!(before == tree_state(&dest), "mirror sync under {a:?} changed DEST");
            let _ = armed;
        }
    }
}

struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(home: &Path) -> Proxy {
        let mut child = Command::new(bin())
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

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.pypi.simple.v1+json\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
        (status, raw[split + 4..].to_vec())
    }

    /// SIGTERM; waits for the exit.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(10), "proxy did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Without the cache (verified copies, checked by `cache_holds_only_verified`).
fn trusted_state(home: &Path) -> State {
    tree_state(home).into_iter().filter(|(k, _)| !k.starts_with("cache/")).collect()
}

fn proxy(attack: Option<Attack>) {
    let mut c = Case::new();
    let home = c.tmp.join("home");
    trust_at_s2(&c, &home);
    let before = trusted_state(&home);
    let armed = c.attack(attack);
    let p = Proxy::start(&home);
    let (status, page) = p.get(&format!("/simple/{ATTACKED}/"));
    // A genuine page leads on to the wheel the attack may have swapped.
    let (status, body) = if status == 200 {
        let v: serde_json::Value = serde_json::from_slice(&page).unwrap();
        let url = v["files"][0]["url"].as_str().unwrap();
        p.get(&resolve(&format!("/simple/{ATTACKED}/"), url))
    } else {
        (status, page)
    };
    p.stop();
    match attack {
        None => {
            assert_eq!(status, 200);
            let wheel = c.up.repo.target_data.iter().find(|(k, _)| k.starts_with("packages/gamma/")).unwrap().1;
            assert_eq!(&body, wheel);
        }
        Some(a) => {
            let body = String::from_utf8_lossy(&body);
            // A file the signed metadata does not list is not there (404); the rest is refused.
            let want = if a == Attack::BinOutsideDelegation { 404 } else { 502 };
            assert_eq!(status, want, "proxy under {a:?}: {body}");
            assert!(a.named_in(&body), "proxy under {a:?} must name it {:?}:\n{body}", a.expect());
            unchanged_but_allowed(&before, &trusted_state(&home), &armed, &genuine(&c), "proxy's PACKMAN_HOME");
        }
    }
    cache_holds_only_verified(&home);
}

/// A page's relative link resolved against the page's path (RFC 3986 dot segments).
fn resolve(base: &str, link: &str) -> String {
    if link.starts_with('/') {
        return link.to_string();
    }
    let mut segs: Vec<&str> = base.trim_end_matches('/').split('/').collect();
    for s in link.split('/') {
        match s {
            ".." => {
                segs.pop();
            }
            "." => {}
            s => segs.push(s),
        }
    }
    segs.join("/")
}

fn every_surface(attack: Attack) {
    download(Some(attack));
    mirror(Some(attack));
    proxy(Some(attack));
}

#[test]
fn controls_get_gamma_from_the_genuine_repository_on_every_surface() {
    download(None);
    mirror(None);
    proxy(None);
}

macro_rules! attacks {
    ($($test:ident: $attack:ident,)*) => {$(
        #[test]
        fn $test() {
            every_surface(Attack::$attack);
        }
    )*};
}

attacks! {
    tampered_target: TamperedTarget,
    page_rewritten_with_its_wheel: PageRewritten,
    rollback_timestamp: RollbackTimestamp,
    rollback_snapshot: RollbackSnapshot,
    rollback_bin: RollbackBin,
    rollback_targets: RollbackTargets,
    rollback_root: RollbackRoot,
    freeze: Freeze,
    mix_and_match: MixAndMatch,
    endless_data: EndlessData,
    endless_snapshot: EndlessSnapshot,
    endless_target: EndlessTarget,
    slow_retrieval: SlowRetrieval,
    threshold_not_met: ThresholdNotMet,
    forged_key: ForgedKey,
    revoked_key: RevokedKey,
    root_gap: RootGap,
    root_without_rotation: RootWithoutRotation,
    bin_outside_delegation: BinOutsideDelegation,
}

fn wheel_of(c: &Case, project: &str) -> Vec<u8> {
    let prefix = format!("packages/{project}/");
    c.up.repo.target_data.iter().find(|(k, _)| k.starts_with(&prefix)).unwrap().1.clone()
}

/// A fast-forward is validly signed, so every surface takes it; what counts is that each
/// recovers once the repository rotates its timestamp key and publishes at a lower version
/// (spec 5.3.11), and then gets what was published after.
#[test]
fn fast_forward_is_recovered_from_after_a_timestamp_key_rotation_on_every_surface() {
    // download
    let mut c = Case::new();
    let home = c.tmp.join("home");
    trust_at_s2(&c, &home);
    let armed = c.attack(Some(Attack::FastForward));
    let forged = armed.persisted.unwrap().1;
    let out = c.tmp.join("out");
    ok(c.packman(&home, &["download", ATTACKED, "-d", out.to_str().unwrap()]), "download under the fast-forward");
    assert!(tree_state(&home).values().any(|v| *v == forged), "the client did not take the fast-forward");
    c.up.recover().unwrap();
    ok(c.packman(&home, &["download", RECOVERED, "-d", out.to_str().unwrap()]), "download after the recovery");
    assert!(tree_state(&out).values().any(|v| *v == wheel_of(&c, RECOVERED)));

    // mirror sync: DEST follows the attacker's timestamp, then the recovery.
    let mut c = Case::new();
    let (home, dest) = (c.tmp.join("home"), c.tmp.join("mirror"));
    let (url, dest_s) = (c.up.url(), dest.to_str().unwrap().to_string());
    ok(c.packman(&home, &["mirror", "sync", &url, &dest_s, "--root", c.root.to_str().unwrap()]), "first sync");
    let forged = c.attack(Some(Attack::FastForward)).persisted.unwrap().1;
    ok(c.packman(&home, &["mirror", "sync", &url, &dest_s]), "sync under the fast-forward");
    assert_eq!(tree_state(&dest)["metadata/timestamp.json"], forged, "DEST did not take the fast-forward");
    c.up.recover().unwrap();
    ok(c.packman(&home, &["mirror", "sync", &url, &dest_s]), "sync after the recovery");
    let mirrored = tree_state(&dest);
    assert!(mirrored.values().any(|v| *v == wheel_of(&c, RECOVERED)), "delta was not mirrored");
    let upstream_ts = std::fs::read(c.up.dir().join("metadata/timestamp.json")).unwrap();
    assert_eq!(mirrored["metadata/timestamp.json"], upstream_ts, "DEST does not serve the recovered timestamp");

    // proxy
    let mut c = Case::new();
    let home = c.tmp.join("home");
    trust_at_s2(&c, &home);
    c.attack(Some(Attack::FastForward));
    let p = Proxy::start(&home);
    assert_eq!(p.get(&format!("/simple/{ATTACKED}/")).0, 200);
    c.up.recover().unwrap();
    let (status, page) = p.get(&format!("/simple/{RECOVERED}/"));
    let got = if status == 200 {
        let v: serde_json::Value = serde_json::from_slice(&page).unwrap();
        p.get(&resolve(&format!("/simple/{RECOVERED}/"), v["files"][0]["url"].as_str().unwrap()))
    } else {
        (status, page)
    };
    p.stop();
    assert_eq!(got.0, 200, "{}", String::from_utf8_lossy(&got.1));
    assert_eq!(got.1, wheel_of(&c, RECOVERED));
    cache_holds_only_verified(&home);
}

#[test]
fn every_attack_has_a_test_here() {
    let src = include_str!("attack_matrix.rs");
    for a in Attack::ALL {
        assert!(
            src.contains(&format!(": {a:?},")) || src.contains(&format!("Some(Attack::{a:?})")),
            "{a:?} is not in the attacks! list nor a test of its own"
        );
    }
}
