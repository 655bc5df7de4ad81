//! Colour only on a terminal, never with `NO_COLOR`: the real binary's error line piped (no
//! escape codes), forced with `CLICOLOR_FORCE`, and on a real terminal (a tmux pane, read
//! with its attributes), where `NO_COLOR=1` removes it.
//!
//! Progress bars likewise: a mirror sync on a terminal shows files, bytes, rate and ETA while
//! it downloads and clears the line after; piped, it writes no bar.
//!
//! The terminal half needs tmux (`.ci/run` installs it; under CI a missing tmux fails).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, need, text};

mod common;

fn run(home: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(["info", "anything"]).env("PACKMAN_HOME", home).env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn piped_output_has_no_escape_codes_unless_forced_and_no_color_wins() {
    let d = tempfile::tempdir().unwrap();
    let err = text(&run(d.path(), &[])).1;
    assert!(err.contains("packman: error: ") && !err.contains('\x1b'), "{err:?}");
    let err = text(&run(d.path(), &[("CLICOLOR_FORCE", "1")])).1;
    assert!(err.contains("packman: \x1b[1;31merror:\x1b[0m "), "{err:?}");
    let err = text(&run(d.path(), &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])).1;
    assert!(err.contains("packman: error: ") && !err.contains('\x1b'), "{err:?}");
}

/// What a tmux pane shows, with its colours as escape codes, once `needle` is on it.
fn on_a_terminal(socket: &Path, env: &str, needle: &str) -> String {
    let home = socket.with_file_name("home");
    let shell = format!("env {env} PACKMAN_HOME='{}' '{}' info anything; sleep 60", home.display(), bin());
    let tmux = |args: &[&str]| Command::new("tmux").arg("-S").arg(socket).args(args).output().unwrap();
    let o = tmux(&["new-session", "-d", "-s", "c", "-x", "200", "-y", "20", &shell]);
    assert!(o.status.success(), "{:?}", text(&o));
    let start = Instant::now();
    let screen = loop {
        let s = text(&tmux(&["capture-pane", "-e", "-p", "-t", "c"])).0;
        if s.contains(needle) || start.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = tmux(&["kill-server"]);
    screen
}

#[test]
fn a_terminal_gets_colour_and_no_color_removes_it() {
    if !need("tmux", &["-V"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // A server per run: a new session on the socket of a server still shutting down fails
    // with "server exited unexpectedly".
    let screen = on_a_terminal(&d.path().join("tmux-1.sock"), "", "lists no repository");
    // tmux redraws the red bold "error:" with its own codes: bold and red, then reset.
    assert!(screen.contains("\x1b[1m") && screen.contains("\x1b[31merror:"), "{screen:?}");
    let screen = on_a_terminal(&d.path().join("tmux-2.sock"), "NO_COLOR=1", "lists no repository");
    assert!(screen.contains("packman: error: ") && !screen.contains('\x1b'), "{screen:?}");
}

#[test]
fn a_sync_on_a_terminal_shows_a_progress_bar_and_piped_none() {
    if !need("tmux", &["-V"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let up = d.path().join("up");
    let run =
        |args: &[&str]| Command::new(bin()).args(args).env("PACKMAN_HOME", d.path().join("home")).output().unwrap();
    assert!(run(&["repo", "init", up.to_str().unwrap(), "--bins", "4"]).status.success());
    let (slow, fast) = (d.path().join("slow.txt"), d.path().join("fast.txt"));
    std::fs::write(&slow, "slowly, byte by byte").unwrap();
    std::fs::write(&fast, "at once").unwrap();
    let o = run(&[
        "repo",
        "add",
        up.to_str().unwrap(),
        "--raw",
        "--prefix",
        "docs/",
        slow.to_str().unwrap(),
        fast.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let server = packman_testkit::TestServer::serve_dir(&up).unwrap();
    let sha = packman_tuf::target::describe(b"slowly, byte by byte").hashes.get("sha256").unwrap().to_string();
    let slow_url = format!("/targets/{}", packman_tuf::layout::hashed_target("docs/slow.txt", &sha));
    server.set(&slow_url, packman_testkit::Behavior::Drip(Duration::from_millis(150)));
    let root = up.join("metadata/1.root.json");

    let socket = d.path().join("tmux.sock");
    let shell = format!(
        "PACKMAN_HOME='{}' '{}' mirror sync {} '{}' --root '{}'; sleep 60",
        d.path().join("home").display(),
        bin(),
        server.url(),
        d.path().join("m1").display(),
        root.display()
    );
    let tmux = |args: &[&str]| Command::new("tmux").arg("-S").arg(&socket).args(args).output().unwrap();
    assert!(tmux(&["new-session", "-d", "-s", "p", "-x", "200", "-y", "20", &shell]).status.success());
    let capture = || text(&tmux(&["capture-pane", "-p", "-t", "p"])).0;
    let wait_for = |needle: &str| {
        let start = Instant::now();
        loop {
            let s = capture();
            if s.contains(needle) || start.elapsed() > Duration::from_secs(20) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let during = wait_for("ETA");
    let done = wait_for("synced ");
    let _ = tmux(&["kill-server"]);
    assert!(during.contains("/2 files") && during.contains("ETA"), "no bar while downloading: {during:?}");
    assert!(done.contains("synced ") && !done.contains("ETA"), "the bar was not cleared: {done:?}");

    server.reset();
    let o = run(&[
        "mirror",
        "sync",
        &server.url(),
        d.path().join("m2").to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success() && out.contains("synced "), "{out}{err}");
    assert!(!err.contains("ETA") && !err.contains('\r'), "a bar on a pipe: {err:?}");
}
