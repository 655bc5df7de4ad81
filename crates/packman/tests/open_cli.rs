//! `packman open packman://…` on a real terminal: tmux runs the real binary in a pane, the
//! test reads the screen (capture-pane) and answers (send-keys). The prompt shows the verified
//! details; `n` installs nothing; `y` installs into a throwaway venv; without a terminal the
//! install is refused. The repository is made with `packman repo init/add/yank`, served by
//! packman-testkit on 127.0.0.1 and trusted with `packman trust add`.
//!
//! Needs tmux and `python3 -m venv`. `.ci/run` installs tmux; under CI (`CI` set) a missing
//! tool fails the test, elsewhere the test says it skipped.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, need, ok, sha256, text, wheel};
use packman_testkit::TestServer;

mod common;

struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
    _server: TestServer,
    url: String,
    wheel_sha: String,
    venv: PathBuf,
}

impl World {
    fn packman(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("PACKMAN_HOME", &self.home)
            .stdin(Stdio::null())
            .output()
            .expect("run packman")
    }

    fn installed(&self) -> Option<String> {
        let o = Command::new(self.venv.join("bin/python"))
            .args(["-c", "import hello; print(hello.VERSION)"])
            .output()
            .unwrap();
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

/// hello 1.0 (installable) and 1.1 (yanked, its reason carrying a terminal escape), served
/// and trusted as repository "demo"; an empty venv.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let p = |r: &str| tmp.path().join(r);
    let repo = p("repo");
    let run = |args: &[&str]| ok(Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap());
    run(&["repo", "init", repo.to_str().unwrap(), "--bins", "4"]);
    std::fs::create_dir_all(p("wheels")).unwrap();
    let w10 = wheel(&p("wheels"), "hello", "1.0");
    let w11 = wheel(&p("wheels"), "hello", "1.1");
    run(&["repo", "add", repo.to_str().unwrap(), w10.to_str().unwrap(), w11.to_str().unwrap()]);
    run(&["repo", "yank", repo.to_str().unwrap(), "hello-1.1-py3-none-any.whl", "--reason", "broken \x1b[2J build"]);
    let server = TestServer::serve_dir(&repo).unwrap();
    let url = format!("{}/", server.url());
    let home = p("home");
    let root = repo.join("metadata/1.root.json");
    let o = Command::new(bin())
        .args(["trust", "add", "demo", &url, "--root", root.to_str().unwrap()])
        .env("PACKMAN_HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(o);
    let venv = p("venv");
    ok(Command::new("python3").args(["-m", "venv", venv.to_str().unwrap()]).output().unwrap());
    let wheel_sha = sha256(&std::fs::read(&w10).unwrap());
    World { tmp, home, _server: server, url, wheel_sha, venv }
}

/// A tmux server of the test's own (its socket in the temp dir), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().expect("run tmux")
    }

    /// Runs `shell` in a new 200x50 session `name`.
    fn start(&self, name: &str, shell: &str) {
        ok(self.cmd(&["new-session", "-d", "-s", name, "-x", "200", "-y", "50", shell]));
    }

    fn screen(&self, name: &str) -> String {
        text(&self.cmd(&["capture-pane", "-p", "-J", "-S", "-200", "-t", name])).0
    }

    /// Waits until the screen holds `needle`; returns the screen.
    fn wait_for(&self, name: &str, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen(name);
            if s.contains(needle) {
                return s;
            }
            assert!(start.elapsed() < timeout, "{needle:?} never appeared; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", name];
        a.extend_from_slice(keys);
        ok(self.cmd(&a));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn the_prompt_shows_verified_details_no_installs_nothing_yes_installs() {
    if !need("tmux", &["-V"]) || !need("python3", &["-m", "venv", "--help"]) {
        return;
    }
    let w = world();
    let tmux = Tmux { socket: w.tmp.path().join("tmux.sock") };
    let shell = |link: &str| {
        format!(
            "env PACKMAN_HOME='{}' '{}' open '{link}' --python '{}' --installer pip; echo EXIT=$?; sleep 600",
            w.home.display(),
            bin(),
            w.venv.join("bin/python").display()
        )
    };
    let link = "packman://install/hello@1.0?repo=demo";

    // Answer n: the details were on screen, nothing is installed.
    tmux.start("no", &shell(link));
    let screen = tmux.wait_for("no", "[y/N]", Duration::from_secs(60));
    std::fs::write(w.tmp.path().join("prompt.txt"), &screen).unwrap();
    eprintln!("the prompt, as captured:\n{screen}");
    for needle in [
        "packman://install/hello@1.0?repo=demo",
        "project     hello",
        &format!("repository  demo ({})", w.url),
        "version     1.0",
        "hello-1.0-py3-none-any.whl",
        &format!("sha256 {}", w.wheel_sha),
        "requires-python >=3.8",
        "command     packman install hello==1.0",
        "Install hello 1.0 from demo? [y/N]",
    ] {
        assert!(screen.contains(needle), "{needle:?} not on screen:\n{screen}");
    }
    assert!(!screen.contains("hello-1.1"), "only the asked-for version's files are shown:\n{screen}");
    tmux.keys("no", &["n", "Enter"]);
    let screen = tmux.wait_for("no", "EXIT=", Duration::from_secs(30));
    assert!(screen.contains("Not installed.") && screen.contains("EXIT=0"), "{screen}");
    assert_eq!(w.installed(), None, "answering n installed something");

    // Just Enter is No too.
    tmux.start("enter", &shell("packman://install/hello"));
    let screen = tmux.wait_for("enter", "[y/N]", Duration::from_secs(60));
    // Without a version: the newest one not yanked (1.1 is yanked).
    assert!(screen.contains("version     1.0"), "{screen}");
    tmux.keys("enter", &["Enter"]);
    tmux.wait_for("enter", "EXIT=0", Duration::from_secs(30));
    assert_eq!(w.installed(), None, "Enter installed something");

    // Answer y: pip installs hello 1.0 through packman's proxy.
    tmux.start("yes", &shell(link));
    tmux.wait_for("yes", "[y/N]", Duration::from_secs(60));
    tmux.keys("yes", &["y", "Enter"]);
    let screen = tmux.wait_for("yes", "EXIT=", Duration::from_secs(180));
    std::fs::write(w.tmp.path().join("installed.txt"), &screen).unwrap();
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains(&format!("hello-1.0-py3-none-any.whl: from repository demo (sha256 {}", w.wheel_sha)),
        "{screen}"
    );
    assert_eq!(w.installed().as_deref(), Some("1.0"));
}

#[test]
fn without_a_terminal_nothing_is_fetched_or_installed_and_bad_links_are_refused() {
    if !need("python3", &["-m", "venv", "--help"]) {
        return;
    }
    let w = world();
    let cache = w.home.join("cache");
    let before = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    let o =
        w.packman(&["open", "packman://install/hello@1.0", "--python", w.venv.join("bin/python").to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("without a terminal") && err.contains("nothing was fetched or installed"), "{err}");
    assert_eq!(std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0), before);
    assert_eq!(w.installed(), None);

    // A link never adds a repository, nor takes a project from another one.
    for (link, says) in [
        ("packman://install/hello?repo=evil", "do not trust"),
        ("packman://install/hello@1.0?repo=demo&yes=1", "?repo=NAME"),
        ("packman://install/--yes", "not a valid PEP 508 name"),
        ("packman://install/hello%2F..", "percent-encoding"),
        ("PACKMAN://install/hello", "scheme"),
    ] {
        let o = w.packman(&["open", link]);
        let err = text(&o).1;
        assert_eq!(o.status.code(), Some(1), "{link}: {err}");
        assert!(err.contains("refusing the link") && err.contains(says), "{link}: {err}");
    }

    // info needs no terminal: it shows, installs nothing, and a yank reason's escape
    // sequence is printed escaped, not sent to the terminal.
    let out = ok(w.packman(&["open", "packman://info/hello"]));
    assert!(out.contains("versions    1.0 1.1") && out.contains("hello-1.0-py3-none-any.whl"), "{out}");
    assert!(out.contains("YANKED: broken \\u{1b}[2J build"), "{out}");
    assert!(!out.contains('\x1b'), "{out:?}");
    assert_eq!(w.installed(), None);
}

/// The URL handler's terminal closes when packman exits: with `--pause-after` (which the
/// .desktop file passes) the result, and an error too, stay on screen until Enter.
#[test]
fn pause_after_waits_for_enter_on_a_terminal_after_the_result_and_after_an_error() {
    if !need("tmux", &["-V"]) || !need("python3", &["-m", "venv", "--help"]) {
        return;
    }
    let w = world();
    let tmux = Tmux { socket: w.tmp.path().join("tmux.sock") };
    let shell = |link: &str| {
        format!(
            "env PACKMAN_HOME='{}' '{}' open --pause-after -- '{link}'; echo EXIT=$?; sleep 600",
            w.home.display(),
            bin()
        )
    };
    for (name, link, shows, code) in [
        ("shown", "packman://info/hello", "versions    1.0 1.1", "EXIT=0"),
        ("refused", "packman://install/hello?repo=evil", "refusing the link", "EXIT=1"),
    ] {
        tmux.start(name, &shell(link));
        let screen = tmux.wait_for(name, "press Enter to close", Duration::from_secs(60));
        assert!(screen.contains(shows), "{name}: {screen}");
        // Still waiting: packman has not exited.
        std::thread::sleep(Duration::from_millis(500));
        assert!(!tmux.screen(name).contains("EXIT="), "{name}: exited without Enter:\n{}", tmux.screen(name));
        tmux.keys(name, &["Enter"]);
        let screen = tmux.wait_for(name, "EXIT=", Duration::from_secs(30));
        assert!(screen.contains(code), "{name}: {screen}");
    }
    // Without a terminal it never waits (stdin is /dev/null here) and prints no prompt.
    let o = w.packman(&["open", "--pause-after", "packman://info/hello"]);
    assert!(!text(&o).0.contains("press Enter"), "{}", text(&o).0);
    ok(o);
}
