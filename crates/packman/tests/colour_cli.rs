//! Colour only on a terminal, never with `NO_COLOR`: the real binary's error line piped (no
//! escape codes), forced with `CLICOLOR_FORCE`, and on a real terminal (a tmux pane, read
//! with its attributes), where `NO_COLOR=1` removes it.
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
