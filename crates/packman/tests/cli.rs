//! End-to-end tests: the real `packman` binary against repositories served on 127.0.0.1.

use std::path::Path;
use std::process::{Command, Output};

use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_tuf::OffsetDateTime;

fn packman(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_packman")).args(args).output().expect("run packman")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: RepoBuilder,
    repo_dir: std::path::PathBuf,
    server: TestServer,
    meta_dir: String,
    dest: String,
    root_file: String,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(6).unwrap();
    repo.add_target("pkgs/a/a-1.0.tar.gz", b"package a").unwrap();
    repo.add_target("pkgs/b/b-2.0.tar.gz", b"package b, version 2").unwrap();
    repo.publish(&repo_dir).unwrap();
    let server = TestServer::serve_dir(&repo_dir).unwrap();
    let p = |n: &str| tmp.path().join(n).display().to_string();
    let (meta_dir, dest, root_file) = (p("meta"), p("dl"), repo_dir.join("metadata/1.root.json").display().to_string());
    Fixture { _tmp: tmp, repo, repo_dir, server, meta_dir, dest, root_file }
}

impl Fixture {
    fn download(&self, root: Option<&str>, target: &str) -> Output {
        let url = format!("{}/metadata/", self.server.url());
        let mut args = vec!["download", "--metadata-url", &url, "--metadata-dir", &self.meta_dir, "--dest", &self.dest];
        if let Some(r) = root {
            args.extend(["--root", r]);
        }
        args.push(target);
        packman(&args)
    }
}

#[test]
fn demo_runs_the_whole_loop() {
    let o = packman(&["demo"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("three attacks refused"), "{out}");
    assert!(out.contains("rollback refused"), "{out}");
    assert!(out.contains("tampered wheel: refused"), "{out}");
    // pip really installed the app and its dependency through packman's proxy, every file
    // verified, and it ran.
    assert!(out.contains("Successfully installed demo-app-1.0 demo-greeting-1.1"), "{out}");
    assert!(out.contains("Hello, world: installed by pip from a packman index."), "{out}");
    assert!(out.contains("demo: trusted http://127.0.0.1:"), "{out}");
    assert!(out.contains("proxy: packages/demo-app/demo_app-1.0-py3-none-any.whl from repository demo"), "{out}");
    // Through the proxy, a wheel swapped together with its page is refused by the page's
    // signed hash, and pip installs nothing.
    assert!(out.contains("pip through the proxy refused, nothing installed"), "{out}");
    assert!(out.contains("the signed hash is"), "{out}");
}

#[test]
fn download_verifies_and_reports_what_it_trusted() {
    let f = fixture();
    let o = f.download(Some(&f.root_file), "pkgs/b/b-2.0.tar.gz");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("root v1"), "{out}");
    assert!(out.contains("timestamp v1"), "{out}");
    assert_eq!(std::fs::read(Path::new(&f.dest).join("b-2.0.tar.gz")).unwrap(), b"package b, version 2");
    // Lazy delegation: of 64 bins only the one holding the target was fetched.
    let bins: Vec<_> = f.server.requests().into_iter().filter(|r| r.contains("bins-")).collect();
    assert_eq!(bins.len(), 1, "{bins:?}");

    // Second run: nothing changed, the file is already there and is not fetched again.
    f.server.clear_log();
    let o = f.download(None, "pkgs/b/b-2.0.tar.gz");
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("already present"));
    assert!(!f.server.requests().iter().any(|r| r.starts_with("/targets/")), "{:?}", f.server.requests());
}

#[test]
fn a_different_root_is_refused_loudly_and_trust_is_unchanged() {
    let f = fixture();
    assert!(f.download(Some(&f.root_file), "pkgs/a/a-1.0.tar.gz").status.success());
    let trusted = std::fs::read(Path::new(&f.meta_dir).join("root.json")).unwrap();

    let other = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    let other_root = Path::new(&f.dest).join("other-root.json");
    std::fs::write(&other_root, &other.signed_roots[0]).unwrap();
    let o = f.download(Some(other_root.to_str().unwrap()), "pkgs/a/a-1.0.tar.gz");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("refusing to replace the trusted root"), "{err}");
    assert_eq!(std::fs::read(Path::new(&f.meta_dir).join("root.json")).unwrap(), trusted);
}

/// `--root` with an older root of another repository than the trusted one: its version
/// number alone (below the trusted one's) once let it pass without a word. It is refused,
/// loudly, naming the file and the rule, and nothing trusted changes; the repository's own
/// older roots and the trusted root itself are still accepted.
#[test]
fn an_older_root_of_another_repository_is_refused_and_trust_is_unchanged() {
    let mut f = fixture();
    assert!(f.download(Some(&f.root_file), "pkgs/a/a-1.0.tar.gz").status.success());
    f.repo.rotate_key("root").unwrap();
    f.repo.rotate_key("root").unwrap();
    f.repo.publish(&f.repo_dir).unwrap();
    let o = f.download(None, "pkgs/a/a-1.0.tar.gz");
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("root v3"), "{:?}", text(&o));

    let mut other = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    other.rotate_key("root").unwrap();
    let meta = Path::new(&f.meta_dir);
    for (i, root) in other.signed_roots.iter().enumerate() {
        let file = Path::new(&f.dest).join(format!("other-{}.root.json", i + 1));
        std::fs::write(&file, root).unwrap();
        let (before, dest_before) =
            (packman_testkit::tree_state(meta), packman_testkit::tree_state(Path::new(&f.dest)));
        f.server.clear_log();
        let o = f.download(Some(file.to_str().unwrap()), "pkgs/a/a-1.0.tar.gz");
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
        let v = i + 1;
        for want in [
            format!("Refusing {}: root v{v} is neither the root trusted for", file.display()),
            "nor linked to it by rotations the repository signed".into(),
            format!("({}, v3)", meta.join("root.json").display()),
            "Nothing was changed".into(),
            format!("rm -r {}", meta.display()),
            format!("--metadata-dir {} --root {}", meta.display(), file.display()),
        ] {
            assert!(err.contains(&want), "{want:?} not in:\n{err}");
        }
        // Why: the next root (fetched) or the trusted one is not signed by this root's keys.
        assert!(err.contains(&format!("version {}: ", v + 1)), "{err}");
        assert_eq!(packman_testkit::tree_state(meta), before, "trusted state changed");
        assert_eq!(packman_testkit::tree_state(Path::new(&f.dest)), dest_before);
        assert!(!f.server.requests().iter().any(|r| r.starts_with("/targets/")), "{:?}", f.server.requests());
    }

    // This repository's own roots: v1 and v2 lead to v3 through its signed rotations, and
    // v3 is the trusted one.
    for v in 1..=3 {
        let file = f.repo_dir.join(format!("metadata/{v}.root.json"));
        let o = f.download(Some(file.to_str().unwrap()), "pkgs/a/a-1.0.tar.gz");
        assert!(o.status.success(), "root v{v}: {:?}", text(&o));
    }
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(meta.join("root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 3);
}

#[test]
fn signed_root_rotation_is_followed() {
    let mut f = fixture();
    assert!(f.download(Some(&f.root_file), "pkgs/a/a-1.0.tar.gz").status.success());
    f.repo.rotate_key("root").unwrap();
    f.repo.rotate_key("timestamp").unwrap();
    f.repo.publish(&f.repo_dir).unwrap();
    let o = f.download(None, "pkgs/a/a-1.0.tar.gz");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("root v3"), "{out}");
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&f.meta_dir).join("root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 3);
}

#[test]
fn unknown_target_and_hostile_server_give_clear_errors() {
    let f = fixture();
    let o = f.download(Some(&f.root_file), "pkgs/nope-1.0.tar.gz");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("\"pkgs/nope-1.0.tar.gz\" is not in the repository's signed metadata"), "{err}");

    f.server.set_all(Behavior::Html);
    let o = f.download(None, "pkgs/a/a-1.0.tar.gz");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("/metadata/2.root.json") && err.contains("root: malformed metadata: invalid JSON"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_root_says_what_to_do() {
    let f = fixture();
    let o = f.download(None, "pkgs/a/a-1.0.tar.gz");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("pass --root"), "{err}");
}

#[test]
fn packman_home_keeps_trust_per_metadata_url() {
    let f = fixture();
    let home = Path::new(&f.dest).parent().unwrap().join("ph");
    let url = format!("{}/metadata/", f.server.url());
    let run = |root: Option<&str>| {
        let mut args = vec!["download", "--metadata-url", &url, "--dest", &f.dest];
        if let Some(r) = root {
            args.extend(["--root", r]);
        }
        args.push("pkgs/a/a-1.0.tar.gz");
        Command::new(env!("CARGO_BIN_EXE_packman")).args(&args).env("PACKMAN_HOME", &home).output().unwrap()
    };
    let o = run(Some(&f.root_file));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, url.trim_end_matches('/').as_bytes()));
    let dir = home.join("repos").join(&hash[..16]);
    assert!(out.contains(&format!("trusted state in {}", dir.display())), "{out}");
    assert_eq!(std::fs::read(dir.join("root.json")).unwrap(), std::fs::read(&f.root_file).unwrap());
    // The next run finds that trust by the URL alone, and the verified file already there.
    let o = run(None);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("pkgs/a/a-1.0.tar.gz: already present at"), "{out}");
}

#[test]
fn a_root_that_does_not_verify_is_refused_at_first_use() {
    let f = fixture();
    let bad = Path::new(&f.dest).parent().unwrap().join("bad-root.json");
    std::fs::write(&bad, b"{\"signed\": {}, \"signatures\": []}").unwrap();
    let o = f.download(Some(bad.to_str().unwrap()), "pkgs/a/a-1.0.tar.gz");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("bad-root.json: not a usable root"), "{err}");
    assert!(err.contains("hint: the --root given is not a root signed by its own keys"), "{err}");
    assert!(!Path::new(&f.meta_dir).join("root.json").exists());
}

#[test]
fn completions_cover_every_command_and_parse_in_bash() {
    let o = packman(&["completions", "bash"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for needle in ["url-handler", "open", "--root-sha256", "--installer", "--yes"] {
        assert!(out.contains(needle), "{needle} missing from the bash completions");
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("packman.bash");
    std::fs::write(&script, &out).unwrap();
    // `bash -n`: the script parses.
    let check = Command::new("bash").arg("-n").arg(&script).output().expect("bash");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = packman(&["completions", shell]);
        assert!(o.status.success() && text(&o).0.contains("url-handler"), "{shell}");
    }
    assert!(!packman(&["completions", "tcsh"]).status.success());
}
