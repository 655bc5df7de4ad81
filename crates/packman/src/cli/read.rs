//! `packman search`, `info`, `download PROJECT` and `verify`: the trust ring read for a
//! person, from signed pages only, each project from the repository the ring routes it to
//! (the rules and the reader are `packman_trust::read`, shared with the proxy).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use packman_index::FileEntry;
use packman_trust::read::{ProjectInfo, Verdict};
use packman_trust::{Home, Reader};
use packman_tuf::OffsetDateTime;
use serde_json::{json, Value};

/// The ring read for one command, `f` run with it; then how each repository's metadata was
/// made current, when a person must know (offline, expired metadata allowed), whether `f`
/// succeeded or not.
fn with_reader<T>(f: impl FnOnce(&mut Reader) -> Result<T, String>) -> Result<T, String> {
    let home = Home::from_env().map_err(|e| e.to_string())?;
    let mut r = Reader::open(&home, crate::report::client_config(), OffsetDateTime::now_utc()).map_err(|e| err(&e))?;
    let result = f(&mut r);
    crate::report::print_freshness(r.freshness());
    result
}

fn err(e: &packman_trust::ReadError) -> String {
    crate::report::read_error(e)
}

/// How repository `repo`'s metadata was made current in this run, for `--json`: the notes
/// printed on stderr (offline and how old, expired roles under `--allow-expired`), as data.
/// Every record that comes from a repository carries it as `"freshness"`.
fn freshness_json(r: &Reader, repo: &str) -> Value {
    let f = r.freshness().iter().find(|f| f.repo == repo);
    let offline = f.and_then(|f| f.offline.as_ref());
    let verified_at = offline.and_then(|o| o.verified_at);
    let expired: Vec<String> = f
        .map(|f| f.expired.iter().map(|e| format!("{} v{} expired {}", e.role, e.version, e.expires)).collect())
        .unwrap_or_default();
    json!({
        "offline": offline.is_some(),
        "offline_reason": offline.map(|o| o.reason.clone()),
        "bundle": offline.and_then(|o| o.bundle.clone()),
        "verified_at": verified_at.map(|t| packman_tuf::Expires(t).to_string()),
        "data_age_seconds": offline.zip(verified_at).map(|(o, t)| (o.now - t).whole_seconds().max(0)),
        "allow_expired": crate::report::global().allow_expired,
        "expired": expired,
    })
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values serialise"));
}

// Output options every read command takes (a plain comment: clap would show a doc comment
// as the about text of the commands that flatten it).
#[derive(clap::Args, Clone, Copy)]
pub struct Output {
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only what a script needs (names, versions), or nothing; errors still go to stderr.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Part of a project name (compared normalised: case, '-', '_' and '.' do not matter).
    text: String,
    #[command(flatten)]
    out: Output,
}

/// PEP 503 normalisation, for comparing a search text with names.
fn normal(s: &str) -> String {
    packman_index::normalize_name(s)
}

pub fn search(a: SearchArgs) -> Result<(), String> {
    with_reader(|r| search_in(r, a))
}

fn search_in(r: &mut Reader, a: SearchArgs) -> Result<(), String> {
    let want = normal(&a.text);
    let mut found: Vec<_> = r.projects().map_err(|e| err(&e))?;
    found.retain(|l| normal(&l.project).contains(&want));
    found.sort_by_key(|l| normal(&l.project));
    if a.out.json {
        print_json(&Value::Array(
            found
                .iter()
                .map(|l| {
                    json!({"name": normal(&l.project), "repository": l.repo, "freshness": freshness_json(r, &l.repo)})
                })
                .collect(),
        ));
        return Ok(());
    }
    if found.is_empty() && !a.out.quiet {
        eprintln!("no project of the trusted repositories has {:?} in its name", a.text);
    }
    let width = found.iter().map(|l| normal(&l.project).len()).max().unwrap_or(0);
    for l in &found {
        if a.out.quiet {
            println!("{}", normal(&l.project));
        } else {
            println!("{:<width$}  {}", normal(&l.project), l.repo);
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct InfoArgs {
    project: String,
    #[command(flatten)]
    out: Output,
}

fn yanked_json(f: &FileEntry) -> Value {
    match f.yanked.as_deref() {
        None => json!(false),
        Some("") => json!(true),
        Some(reason) => json!(reason),
    }
}

pub fn info(a: InfoArgs) -> Result<(), String> {
    with_reader(|r| info_in(r, a))
}

fn info_in(r: &mut Reader, a: InfoArgs) -> Result<(), String> {
    let info = r.project(&a.project).map_err(|e| err(&e))?;
    let versions = packman_index::select::by_version(&info.page);
    if a.out.json {
        let versions: Vec<Value> = versions
            .iter()
            .map(|(v, files)| {
                let files: Vec<Value> = files
                    .iter()
                    .map(|f| {
                        json!({
                            "filename": f.filename, "size": f.size, "sha256": f.sha256,
                            "requires_python": f.requires_python, "yanked": yanked_json(f),
                            "upload_time": f.upload_time,
                        })
                    })
                    .collect();
                json!({"version": v, "yanked": files.iter().all(|f| f["yanked"] != json!(false)), "files": files})
            })
            .collect();
        print_json(&json!({
            "name": info.page.name, "repository": info.repo.name, "page": info.target, "versions": versions,
            "freshness": freshness_json(r, &info.repo.name),
        }));
        return Ok(());
    }
    if a.out.quiet {
        for (v, _) in &versions {
            println!("{v}");
        }
        return Ok(());
    }
    println!("{} (repository {}, signed page {})", info.page.name, info.repo.name, info.target);
    if versions.is_empty() {
        println!("  no files");
    }
    for (v, files) in &versions {
        let all_yanked = files.iter().all(|f| f.yanked.is_some());
        println!("  {v}{}", if all_yanked { "  [yanked]" } else { "" });
        for f in files {
            let mut line = format!("    {}  {} bytes  sha256 {}", f.filename, f.size, f.sha256);
            if let Some(rp) = &f.requires_python {
                line.push_str(&format!("  requires-python {rp}"));
            }
            if let Some(t) = &f.upload_time {
                line.push_str(&format!("  uploaded {t}"));
            }
            match f.yanked.as_deref() {
                None => {}
                Some("") => line.push_str("  [yanked]"),
                Some(reason) => line.push_str(&format!("  [yanked: {reason}]")),
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// `packman download PROJECT[==VERSION]...` (no `--metadata-url`).
pub struct DownloadRequest<'a> {
    pub requirements: &'a [String],
    pub dest: &'a Path,
    pub all: bool,
    pub python: Option<&'a Path>,
    pub out: Output,
}

/// `NAME` or `NAME==VERSION`.
fn requirement(s: &str) -> Result<(&str, Option<&str>), String> {
    let (name, version) = match s.split_once("==") {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (s.trim(), None),
    };
    if !packman_index::is_valid_name(name) || version.is_some_and(str::is_empty) {
        return Err(format!(
            "{s:?}: give a project as NAME or NAME==VERSION (other PEP 508 specifiers are for pip and uv)"
        ));
    }
    Ok((name, version))
}

pub fn download(req: DownloadRequest) -> Result<(), String> {
    let parsed: Vec<_> = req.requirements.iter().map(|s| requirement(s)).collect::<Result<_, _>>()?;
    with_reader(|r| download_in(r, req, parsed))
}

fn download_in(r: &mut Reader, req: DownloadRequest, parsed: Vec<(&str, Option<&str>)>) -> Result<(), String> {
    let env = if req.all {
        None
    } else {
        let python = super::python::choose(req.python);
        let (env, note) = super::python::environment(&python)?;
        if let (Some(note), false) = (note, req.out.quiet) {
            eprintln!("packman: note: {note}");
        }
        Some(env)
    };
    std::fs::create_dir_all(req.dest).map_err(|e| format!("{}: {e}", req.dest.display()))?;
    let progress = !req.out.quiet && !req.out.json && std::io::stderr().is_terminal();
    let mut done = Vec::new();
    for (name, version) in parsed {
        let info = r.project(name).map_err(|e| err(&e))?;
        let fallback = packman_index::Environment::fallback(None);
        let chosen = packman_index::choose(&info.page, version, env.as_ref().unwrap_or(&fallback), req.all)
            .map_err(|e| format!("{e} (signed page {} of repository {})", info.target, info.repo.name))?;
        for f in &chosen.files {
            let got = fetch_one(r, &info, f, req.dest, progress)?;
            if !req.out.quiet && !req.out.json {
                let Got { path, sha256, length, cached, .. } = &got;
                let what = if *cached { "already present, verified" } else { "verified" };
                println!(
                    "{}: {what} {length} bytes, sha256 {sha256}, repository {} -> {}",
                    f.filename,
                    info.repo.name,
                    path.display()
                );
            }
            done.push(json!({
                "project": info.page.name, "version": chosen.version, "repository": info.repo.name,
                "target": got.target, "filename": f.filename, "path": got.path, "size": got.length,
                "sha256": got.sha256, "cached": got.cached, "freshness": freshness_json(r, &info.repo.name),
            }));
        }
    }
    if req.out.json {
        print_json(&Value::Array(done));
    }
    Ok(())
}

struct Got {
    target: String,
    path: PathBuf,
    sha256: String,
    length: u64,
    cached: bool,
}

/// Downloads one file of a page through its repository's updater into `dest`: streamed into
/// a temp file there, checked against the signed length and hashes, and only then renamed to
/// its file name. A copy already there with the signed bytes is kept.
fn fetch_one(r: &mut Reader, info: &ProjectInfo, f: &FileEntry, dest: &Path, progress: bool) -> Result<Got, String> {
    let (target, signed, fetcher) = r.package(info, &f.filename).map_err(|e| err(&e))?;
    // Saved under its own file name, which can never lead out of DIR.
    let name = packman_tuf::layout::file_name(&target).map_err(|e| format!("{e}: nothing downloaded"))?;
    let path = dest.join(name);
    let sha256 = signed.hashes.get("sha256").unwrap_or_default().to_string();
    let got = |cached| Got {
        target: target.clone(),
        path: path.clone(),
        sha256: sha256.clone(),
        length: signed.length,
        cached,
    };
    if packman_client::is_cached(&path, &signed) {
        return Ok(got(true));
    }
    // A verified copy in the cache (an earlier read, or `packman update --bundle`): nothing
    // to fetch, which offline is the only way. Copied to a temp file in DIR and checked
    // against the signed length and hashes (by the trust core) before it gets its name.
    if let Some(cached) = r.cache().cached(&info.repo, &target, &signed) {
        let tmp = packman_fs::public_tempfile(dest).map_err(|e| format!("{}: {}", e.path.display(), e.source))?;
        std::fs::copy(&cached, tmp.path()).map_err(|e| format!("{}: {e}", cached.display()))?;
        if packman_client::is_cached(tmp.path(), &signed) {
            tmp.persist(&path).map_err(|e| format!("{}: {}", path.display(), e.error))?;
            packman_fs::sync_dir(dest).map_err(|e| format!("{}: {}", e.path.display(), e.source))?;
            return Ok(got(false));
        }
        // Not the signed bytes after all: fetched below, as if it were not cached.
    }
    let bar = crate::progress::download(progress, &f.filename, signed.length);
    let verified = fetcher.download_target_temp_with(dest, &target, &signed, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let verified = verified.map_err(|e| {
        format!("repository {}: {}: nothing saved as {}", info.repo.name, crate::report::explain(&e), path.display())
    })?;
    verified.persist(&path).map_err(|e| crate::report::explain(&e))?;
    Ok(got(false))
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Local wheels or sdists, each matched by its file name.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    out: Output,
}

pub fn verify(a: VerifyArgs) -> Result<(), String> {
    with_reader(|r| verify_in(r, a))
}

fn verify_in(r: &mut Reader, a: VerifyArgs) -> Result<(), String> {
    let mut results = Vec::new();
    let mut bad = 0;
    for file in &a.files {
        let verdict = r.verify_file(file).map_err(|e| format!("{}: {}", file.display(), err(&e)))?;
        match &verdict {
            Verdict::Signed { repo, target, sha256, length } => {
                if !a.out.quiet && !a.out.json {
                    println!(
                        "{}: ok: repository {repo} signs it as {target} ({length} bytes, sha256 {sha256})",
                        file.display()
                    );
                }
                results.push(json!({"file": file, "signed": true, "repository": repo, "target": target,
                    "sha256": sha256, "length": length, "freshness": freshness_json(r, repo)}));
            }
            Verdict::NotSigned { reason } => {
                bad += 1;
                if !a.out.quiet && !a.out.json {
                    println!("{}: NOT SIGNED: {reason}", file.display());
                }
                results.push(json!({"file": file, "signed": false, "reason": reason}));
            }
        }
    }
    if a.out.json {
        print_json(&Value::Array(results));
    }
    if bad > 0 {
        return Err(format!(
            "{bad} of {} file(s) are not byte for byte a file a trusted repository signs",
            a.files.len()
        ));
    }
    Ok(())
}
