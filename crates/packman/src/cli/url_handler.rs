//! `packman url-handler install|uninstall`: make the desktop open `packman://` links with
//! `packman open` in a terminal (freedesktop: a `.desktop` file and `xdg-mime`). macOS and
//! Windows: see the README ("packman:// links").
//!
//! The handler runs `packman open --pause-after -- URL` and nothing else: the URL is one
//! argument after `--`, so it can never be read as an option, and `--yes` is never passed, so
//! the confirmation at the terminal always happens. `--pause-after` keeps the terminal open
//! until Enter, so the result (or the refusal) can be read before it closes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The desktop file's name, which `xdg-mime` records as the scheme's default.
pub const DESKTOP_FILE: &str = "packman.desktop";
const MIME: &str = "x-scheme-handler/packman";

#[derive(clap::Subcommand)]
pub enum Action {
    /// Register this packman as the handler of packman:// links: writes
    /// $XDG_DATA_HOME/applications/packman.desktop (Terminal=true, Exec=packman open --pause-after -- %u)
    /// and runs `xdg-mime default packman.desktop x-scheme-handler/packman`.
    Install,
    /// Remove the desktop file and the x-scheme-handler/packman default from
    /// $XDG_CONFIG_HOME/mimeapps.list.
    Uninstall,
}

fn env_dir(var: &str, fallback: &str) -> Result<PathBuf, String> {
    match std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(p) => Ok(p),
        None => {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or("HOME is not set")?;
            Ok(PathBuf::from(home).join(fallback))
        }
    }
}

/// One argument of a desktop entry's `Exec` key, quoted as the Desktop Entry Specification
/// says (double quotes; `"`, `` ` ``, `$` and `\` escaped with `\`; `%` doubled), then
/// escaped once more as a string value (`\` written `\\`). A newline cannot be expressed.
pub fn exec_arg(arg: &str) -> Result<String, String> {
    if arg.contains(['\n', '\r', '\0']) {
        return Err(format!("{arg:?}: a path with a line break cannot go in a desktop file"));
    }
    let mut quoted = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted.replace('\\', "\\\\"))
}

/// The desktop entry for the packman binary at `exe`.
pub fn desktop_entry(exe: &Path) -> Result<String, String> {
    let exe = exe.to_str().ok_or_else(|| format!("{}: the path is not UTF-8", exe.display()))?;
    Ok(format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=packman\n\
         Comment=Open packman:// links: show the verified package and install it only if you confirm\n\
         Exec={} open --pause-after -- %u\n\
         Terminal=true\n\
         NoDisplay=true\n\
         MimeType={MIME};\n",
        exec_arg(exe)?
    ))
}

fn xdg_mime(args: &[&str]) -> Result<String, String> {
    let out = Command::new("xdg-mime")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run xdg-mime ({e}): install xdg-utils"))?;
    if !out.status.success() {
        return Err(format!("xdg-mime {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `mimeapps.list` without packman.desktop as the handler of `x-scheme-handler/packman`
/// (other entries and handlers untouched); `None` when there is nothing to change.
pub fn without_handler(list: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(list.len());
    for line in list.split_inclusive('\n') {
        if let Some((key, value)) = line.trim_end().split_once('=') {
            if key.trim() == MIME && value.split(';').any(|v| v.trim() == DESKTOP_FILE) {
                let kept: Vec<&str> =
                    value.split(';').map(str::trim).filter(|v| !v.is_empty() && *v != DESKTOP_FILE).collect();
                changed = true;
                if !kept.is_empty() {
                    out.push_str(&format!("{MIME}={};\n", kept.join(";")));
                }
                continue;
            }
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

pub fn run(c: Action) -> Result<(), String> {
    if !cfg!(all(unix, not(target_os = "macos"))) {
        return Err("url-handler install works with freedesktop desktops (Linux, BSD); for macOS and Windows \
                    see \"packman:// links\" in the README"
            .into());
    }
    let apps = env_dir("XDG_DATA_HOME", ".local/share")?.join("applications");
    let file = apps.join(DESKTOP_FILE);
    match c {
        Action::Install => {
            let exe = std::env::current_exe().map_err(|e| format!("where is packman? {e}"))?;
            let entry = desktop_entry(&exe)?;
            std::fs::create_dir_all(&apps).map_err(|e| format!("{}: {e}", apps.display()))?;
            packman_fs::write_atomic(&file, entry.as_bytes())
                .map_err(|e| format!("{}: {}", e.path.display(), e.source))?;
            xdg_mime(&["default", DESKTOP_FILE, MIME])?;
            // Desktops that cache the MIME database pick the new file up sooner; optional.
            let _ = Command::new("update-desktop-database").arg(&apps).output();
            let now = xdg_mime(&["query", "default", MIME])?;
            println!("wrote {}", file.display());
            println!(
                "packman:// links now open with: {now} (a terminal running {} open --pause-after -- URL)",
                exe.display()
            );
            if now != DESKTOP_FILE {
                eprintln!("packman: warning: xdg-mime reports {now:?} as the handler, not {DESKTOP_FILE}");
            }
        }
        Action::Uninstall => {
            match std::fs::remove_file(&file) {
                Ok(()) => println!("removed {}", file.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("{} was not there", file.display()),
                Err(e) => return Err(format!("{}: {e}", file.display())),
            }
            let list = env_dir("XDG_CONFIG_HOME", ".config")?.join("mimeapps.list");
            match std::fs::read_to_string(&list) {
                Ok(text) => {
                    if let Some(new) = without_handler(&text) {
                        packman_fs::write_atomic(&list, new.as_bytes())
                            .map_err(|e| format!("{}: {}", e.path.display(), e.source))?;
                        println!("removed the {MIME} default from {}", list.display());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", list.display())),
            }
            let _ = Command::new("update-desktop-database").arg(&apps).output();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_arguments_are_quoted_for_the_desktop_entry_spec() {
        assert_eq!(exec_arg("/usr/bin/packman").unwrap(), "\"/usr/bin/packman\"");
        assert_eq!(exec_arg("/a b/packman").unwrap(), "\"/a b/packman\"");
        // `$` -> `\$` (spec) -> `\\$` (string value); `"` likewise; `\` -> `\\` -> `\\\\`.
        assert_eq!(exec_arg("/x$y\"z").unwrap(), "\"/x\\\\$y\\\\\"z\"");
        assert_eq!(exec_arg("/a\\b").unwrap(), "\"/a\\\\\\\\b\"");
        assert_eq!(exec_arg("/100%/p").unwrap(), "\"/100%%/p\"");
        assert!(exec_arg("/a\nb").is_err());
        let e = desktop_entry(Path::new("/opt/pack man/packman")).unwrap();
        assert!(e.contains("\nExec=\"/opt/pack man/packman\" open --pause-after -- %u\n"), "{e}");
        assert!(e.contains("\nMimeType=x-scheme-handler/packman;\n") && e.contains("\nTerminal=true\n"), "{e}");
        assert!(!e.contains("--yes"));
    }

    #[test]
    fn uninstall_removes_only_our_handler() {
        let list = "[Default Applications]\ntext/html=firefox.desktop\nx-scheme-handler/packman=packman.desktop\n";
        assert_eq!(without_handler(list).unwrap(), "[Default Applications]\ntext/html=firefox.desktop\n");
        let two = "[Added Associations]\nx-scheme-handler/packman=other.desktop;packman.desktop;\n";
        assert_eq!(without_handler(two).unwrap(), "[Added Associations]\nx-scheme-handler/packman=other.desktop;\n");
        assert_eq!(without_handler("[Default Applications]\ntext/html=firefox.desktop\n"), None);
    }
}
