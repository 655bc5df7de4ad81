//! The browsable pages of `packman serve` in a real browser: headless Chromium loads `/`,
//! a search, and `/project/hello/` from the real binary, and the test reads the DOM Chromium
//! built (`--dump-dom`) and takes screenshots (saved in `$CARGO_TARGET_TMPDIR/browse/`).
//! A yank reason holding `<script>` and an `<img onerror>` must stay text: no element of it
//! in the DOM.
//!
//! `.ci/run` installs Debian's `chromium`; under CI (`CI` set) a missing one fails the test,
//! elsewhere the test says it skipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{bin, need, ok, sha256, wheel};

mod common;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const XSS: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

fn chromium(profile: &Path, args: &[&str], url: &str) -> Output {
    Command::new("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium")
}

#[test]
fn chromium_shows_the_signed_pages_and_package_markup_stays_text() {
    if !need("chromium", &["--version"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let run = |args: &[&str]| ok(Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap());
    run(&["repo", "init", repo.to_str().unwrap(), "--bins", "4"]);
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let w10 = wheel(&wheels, "hello", "1.0");
    let w11 = wheel(&wheels, "hello", "1.1");
    let other = wheel(&wheels, "other_tool", "2.0");
    let files: Vec<&str> = [&w10, &w11, &other].iter().map(|p| p.to_str().unwrap()).collect();
    let mut add = vec!["repo", "add", repo.to_str().unwrap()];
    add.extend(files);
    run(&add);
    run(&["repo", "yank", repo.to_str().unwrap(), "hello-1.0-py3-none-any.whl", "--reason", XSS]);

    let mut child = Command::new(bin())
        .args(["serve", repo.to_str().unwrap(), "--listen", "127.0.0.1:0", "--access-log", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let _serve = Serve(child);
    let base = first.split(" on ").nth(1).unwrap().trim().trim_end_matches('/').to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browse");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tmp.path().join("chromium-profile");
    let dom = |url: &str| ok(chromium(&profile, &["--dump-dom"], url));
    let shot = |url: &str, name: &str| {
        let file = shots.join(name);
        let _ = std::fs::remove_file(&file);
        let arg = format!("--screenshot={}", file.display());
        ok(chromium(&profile, &[&arg, "--window-size=1280,1400"], url));
        let png = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{}: not a real screenshot", file.display());
        eprintln!("screenshot: {}", file.display());
    };

    // The project list and a search.
    let index = dom(&format!("{base}/"));
    assert!(index.contains("<html lang=\"en\">") && index.contains("<label for=\"q\">"), "{index}");
    assert!(index.contains("href=\"/project/hello/\"") && index.contains("href=\"/project/other-tool/\""), "{index}");
    let search = dom(&format!("{base}/?q=hel"));
    assert!(search.contains("href=\"/project/hello/\"") && !search.contains("/project/other-tool/"), "{search}");
    assert!(search.contains("value=\"hel\""), "{search}");
    shot(&format!("{base}/"), "index.png");
    shot(&format!("{base}/?q=hel"), "search.png");

    // The project page: links, hashes, commands, and the markup from the yank reason as text.
    let page = dom(&format!("{base}/project/hello/"));
    for needle in [
        "href=\"packman://install/hello@1.1\"".to_string(),
        "href=\"packman://install/hello@1.0\"".to_string(),
        sha256(&std::fs::read(&w10).unwrap()),
        sha256(&std::fs::read(&w11).unwrap()),
        format!("pip install --index-url {base}/simple/ hello==1.1"),
        format!("uv pip install --index-url {base}/simple/ hello==1.1"),
        "packman install hello==1.1".to_string(),
        "&gt;=3.8".to_string(),
        "yanked: &lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;".to_string(),
    ] {
        assert!(page.contains(&needle), "{needle:?} not in the DOM:\n{page}");
    }
    assert!(!page.to_ascii_lowercase().contains("<script"), "a script element in the DOM:\n{page}");
    assert!(!page.contains("<img"), "an img element in the DOM:\n{page}");
    shot(&format!("{base}/project/hello/"), "project.png");
    // A non-normalised name redirects to the page.
    let redirected = dom(&format!("{base}/project/Hello"));
    assert!(redirected.contains("href=\"packman://install/hello@1.1\""), "{redirected}");
}
