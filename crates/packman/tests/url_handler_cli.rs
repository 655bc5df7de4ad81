//! `packman url-handler install|uninstall` against the real `xdg-mime` (xdg-utils), in a
//! throwaway HOME / XDG_DATA_HOME / XDG_CONFIG_HOME. `.ci/run` installs xdg-utils; under CI
//! (`CI` set) a missing xdg-mime fails the test, elsewhere it is skipped with a message.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn env(c: &mut Command, root: &Path) {
    c.env("HOME", root.join("home"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_DATA_DIRS", root.join("system-data"))
        .env("XDG_CONFIG_DIRS", root.join("system-config"))
        // The generic (freedesktop) path of xdg-mime, not a desktop's own tool.
        .env_remove("XDG_CURRENT_DESKTOP")
        .env_remove("DESKTOP_SESSION")
        .env_remove("KDE_FULL_SESSION")
        .env_remove("GNOME_DESKTOP_SESSION_ID")
        .env_remove("DE")
        .stdin(Stdio::null());
}

fn run(root: &Path, program: &str, args: &[&str]) -> Output {
    let mut c = Command::new(program);
    c.args(args);
    env(&mut c, root);
    c.output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[track_caller]
fn ok(o: Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "failed ({:?})\nstdout:\n{out}\nstderr:\n{err}", o.status);
    out.into_owned()
}

#[test]
fn install_registers_the_scheme_with_xdg_mime_and_uninstall_removes_it() {
    if Command::new("xdg-mime").arg("--version").output().is_err() {
        // Under CI this panics: .ci/run installs xdg-utils.
        packman_testkit::skipped("xdg-mime not available (apt-get install xdg-utils)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["home", "data", "config"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let packman = env!("CARGO_BIN_EXE_packman");
    let query = || ok(run(root, "xdg-mime", &["query", "default", "x-scheme-handler/packman"])).trim().to_string();
    assert_eq!(query(), "");

    let out = ok(run(root, packman, &["url-handler", "install"]));
    assert!(out.contains("packman:// links now open with: packman.desktop"), "{out}");
    assert_eq!(query(), "packman.desktop");
    let desktop = std::fs::read_to_string(root.join("data/applications/packman.desktop")).unwrap();
    assert!(desktop.contains("MimeType=x-scheme-handler/packman;\n") && desktop.contains("Terminal=true\n"));
    assert!(desktop.contains(&format!("Exec=\"{packman}\" open --pause-after -- %u\n")), "{desktop}");
    assert!(!desktop.contains("--yes"));
    let list = std::fs::read_to_string(root.join("config/mimeapps.list")).unwrap();
    assert!(list.contains("x-scheme-handler/packman=packman.desktop"), "{list}");
    // Installing again is harmless.
    ok(run(root, packman, &["url-handler", "install"]));
    assert_eq!(query(), "packman.desktop");

    let out = ok(run(root, packman, &["url-handler", "uninstall"]));
    assert!(out.contains("removed"), "{out}");
    assert!(!root.join("data/applications/packman.desktop").exists());
    assert_eq!(query(), "");
    let list = std::fs::read_to_string(root.join("config/mimeapps.list")).unwrap();
    assert!(!list.contains("packman.desktop"), "{list}");
    // And again: nothing to remove is not an error.
    ok(run(root, packman, &["url-handler", "uninstall"]));
}
