//! `packman open URL`: a `packman://` link, shown from verified metadata and installed only
//! after the person at the terminal says yes.
//!
//! - The link is parsed by [`packman_trust::Link`] (the one parser) and must name a project
//!   the trust ring already routes, to the repository `?repo=` names if it names one.
//! - What is shown comes only from the project's signed PEP 691 page, fetched and verified by
//!   the same in-process proxy the install then uses (`packman install`'s machinery).
//! - The confirmation is read from standard input only when it is a terminal, and defaults
//!   to No. No link can skip it: only `--yes`, on the command line, does; the URL handler
//!   never passes it. Without a terminal and without `--yes`, nothing is fetched or
//!   installed.
//! - Declining installs nothing; the verified metadata fetched to show the page stays in
//!   packman's trusted state and cache (as after `packman update`).
//! - Accepting runs exactly `packman install PROJECT==VERSION` through the same proxy.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use packman_index::{FileEntry, ProjectPage};
use packman_trust::{Home, Link, LinkAction, Ring};

use super::install::{install_through, Installer};

#[derive(clap::Args)]
pub struct Args {
    /// The link: packman://install/PROJECT[@VERSION][?repo=NAME] or packman://info/PROJECT.
    url: String,
    /// The Python environment to install into [default: $VIRTUAL_ENV/bin/python, else python3].
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    installer: Installer,
    /// Install without asking. Only ever given on the command line: a link cannot set it and
    /// the desktop URL handler never passes it.
    #[arg(long)]
    yes: bool,
    /// After the run (and its error, if any), wait for Enter when standard input is a
    /// terminal: the desktop handler's terminal closes when packman exits, and the result
    /// must stay readable. Passed by the .desktop file `url-handler install` writes.
    #[arg(long, hide = true)]
    pub pause_after: bool,
}

/// `--pause-after`: "press Enter to close" and wait for it, only on a terminal (a script or
/// a pipe never blocks here).
pub fn pause_for_enter() {
    if !std::io::stdin().is_terminal() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\n{} ", crate::report::paint_out("press Enter to close", crate::report::BOLD));
    let _ = out.flush();
    drop(out);
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Text from a package page, safe to print on a terminal: control characters (escape
/// sequences, carriage returns, bidi overrides) are shown escaped, never sent raw.
fn shown(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
            if c.is_control() || bidi {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The version an install without `@VERSION` gets: the newest with a file not yanked (PEP 592).
fn newest_installable(page: &ProjectPage) -> Option<String> {
    page.versions.iter().rev().find(|v| files_of(page, v).iter().any(|f| f.yanked.is_none())).cloned()
}

fn files_of<'p>(page: &'p ProjectPage, version: &str) -> Vec<&'p FileEntry> {
    page.files.iter().filter(|f| packman_index::file_version(&f.filename).as_deref() == Some(version)).collect()
}

fn describe(out: &mut String, page: &ProjectPage, version: &str) {
    let files = files_of(page, version);
    out.push_str(&format!("  files of {} {} (sha256 and size as signed):\n", page.name, shown(version)));
    for f in files {
        out.push_str(&format!("    {}\n      {} bytes  sha256 {}\n", shown(&f.filename), f.size, shown(&f.sha256)));
        let mut extra = Vec::new();
        if let Some(t) = &f.upload_time {
            extra.push(format!("uploaded {}", shown(t)));
        }
        if let Some(rp) = &f.requires_python {
            extra.push(format!("requires-python {}", shown(rp)));
        }
        if let Some(reason) = &f.yanked {
            extra.push(if reason.is_empty() { "YANKED".into() } else { format!("YANKED: {}", shown(reason)) });
        }
        if !extra.is_empty() {
            out.push_str(&format!("      {}\n", extra.join("  ")));
        }
    }
}

pub fn run(a: Args) -> Result<(), String> {
    let link = Link::parse(&a.url).map_err(|e| format!("refusing the link: {e}"))?;
    let asks = link.action == LinkAction::Install && !a.yes;
    let home = Home::from_env().map_err(|e| e.to_string())?;
    let ring = Ring::load(&home).map_err(|e| e.to_string())?;
    let entry = link.repository(&ring).map_err(|e| format!("refusing the link: {e}"))?.clone();
    // The link is checked against the ring first (local), then the terminal, then anything
    // is fetched.
    if asks && !std::io::stdin().is_terminal() {
        return Err(
            "refusing to install from a link without a terminal to confirm on (standard input is not a terminal); \
             nothing was fetched or installed"
                .into(),
        );
    }
    let proxy = Arc::new(super::proxy::open(Duration::from_secs(60), false)?);
    let (repo, bytes) = proxy.verified_project_page(&link.project).map_err(|e| e.to_string())?;
    if repo != entry.name {
        // The proxy routes by the same ring: this cannot differ, but never show one
        // repository's page under another's name.
        return Err(format!("{}: routed to {repo:?}, expected {:?}", link.project, entry.name));
    }
    let page = packman_index::parse_project_json(&link.project, &bytes).map_err(|e| e.to_string())?;

    let mut out = format!("{}\n\n", link.to_url());
    out.push_str(&format!("  project     {}\n", page.name));
    out.push_str(&format!("  repository  {} ({})\n", entry.name, shown(&entry.url)));
    out.push_str("  verified    against the repository's signed TUF metadata\n");
    if link.action == LinkAction::Info {
        let all: Vec<String> = page.versions.iter().map(|v| shown(v)).collect();
        out.push_str(&format!("  versions    {}\n", all.join(" ")));
        for v in page.versions.iter().rev() {
            describe(&mut out, &page, v);
        }
        print!("{out}");
        return Ok(());
    }
    let version = match &link.version {
        Some(v) => v.clone(),
        None => newest_installable(&page)
            .ok_or_else(|| format!("{}: the signed page lists no installable (unyanked) version", page.name))?,
    };
    if files_of(&page, &version).is_empty() {
        return Err(format!(
            "{}: version {version} is not on the signed page (versions: {}); nothing installed",
            page.name,
            page.versions.join(" ")
        ));
    }
    out.push_str(&format!("  version     {}\n", shown(&version)));
    describe(&mut out, &page, &version);
    let requirement = format!("{}=={version}", page.name);
    out.push_str(&format!("  command     packman install {requirement}\n"));
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "{out}");
    if asks {
        let question = format!("Install {} {version} from {}? [y/N]", page.name, entry.name);
        let _ = write!(stdout, "\n{} ", crate::report::paint_out(&question, crate::report::BOLD));
        let _ = stdout.flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map_err(|e| format!("reading the answer: {e}"))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            let _ = writeln!(
                stdout,
                "Not installed. (The verified metadata fetched to show this stays in packman's trusted state and cache.)"
            );
            return Ok(());
        }
    }
    drop(stdout);
    install_through(proxy, a.python, a.installer, &[requirement], false)
}
