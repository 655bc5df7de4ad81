//! `packman serve DIR`: serve a repository or mirror over HTTP until SIGINT/SIGTERM.
//! `packman mirror sync UPSTREAM DEST`: keep a verified copy of a repository in DEST;
//! `mirror verify` audits it, `mirror export`/`import` carry it across an air gap.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use packman_server::{AccessLog, Config};

#[derive(clap::Args)]
pub struct Args {
    /// Repository or mirror directory (the one holding metadata/ and targets/).
    dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on the first line of output).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Access log: `-` for stderr, a file path (appended to), or `off`.
    #[arg(long, default_value = "-")]
    access_log: String,
    /// Memory for cached file contents, in MiB (files up to 16 MiB are cached).
    #[arg(long, default_value_t = 256)]
    cache_mib: u64,
}

pub fn run(a: Args) -> Result<(), String> {
    let root = packman_server::check_root(&a.dir).map_err(|e| e.to_string())?;
    let log = match a.access_log.as_str() {
        "off" => AccessLog::off(),
        "-" => AccessLog::to_writer(Box::new(std::io::stderr())),
        path => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("access log {path}: {e}"))?;
            AccessLog::to_writer(Box::new(std::io::BufWriter::new(f)))
        }
    };
    if a.max_connections == 0 {
        return Err("--max-connections must be at least 1".into());
    }
    let mut config = Config::new(&root);
    config.max_connections = a.max_connections;
    config.cache_bytes = a.cache_mib << 20;
    packman_server::run(&a.listen, config, log, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "serving {} on http://{addr}/", root.display());
        let _ = writeln!(out, "  TUF metadata: http://{addr}/metadata/   simple index: http://{addr}/simple/");
        let _ = out.flush();
    })
    .map_err(|e| e.to_string())
}

#[derive(clap::Subcommand)]
pub enum Mirror {
    /// Copy a repository into DEST (the layout `packman serve` serves), verifying every
    /// metadata file and target through the updater before it gets its final name; targets
    /// first, timestamp.json last. Later runs fetch only what changed.
    Sync(SyncArgs),
    /// Audit DEST offline against a trusted root: the metadata chain (through the updater,
    /// reading DEST itself), then every signed target's length and hashes on all cores;
    /// lists missing, corrupt and extra files. A partial mirror is checked against the filter
    /// its syncs keep (or --include/--exclude/--no-filter given here): targets left out are
    /// not missing, and their files in DEST are extra.
    ///
    /// Exit status, one bit per kind of finding: 0 all good; 2 metadata refused (no target
    /// checked); 4 files missing; 8 files corrupt; 16 extra files (e.g. 4+8 = 12). 1 means
    /// the audit could not run.
    Verify(VerifyArgs),
    /// Write DEST's repository into one file BUNDLE, to carry to an air-gapped mirror: the
    /// root chain, the current metadata, and every target (or, with --since, only those the
    /// snapshot of that version did not list). A tar archive whose first entry,
    /// packman-bundle.json, lists every file and its length.
    Export(ExportArgs),
    /// Apply BUNDLE (from `mirror export`) to DEST as a sync from it would: the bundle is
    /// checked whole, everything in it DEST needs is verified through the updater before
    /// anything is written, then targets, versioned metadata, and timestamp.json last. A
    /// bundle that is truncated, tampered with, expired or older than DEST is refused (exit 1)
    /// and DEST is left byte-identical.
    Import(ImportArgs),
}

/// Where a mirror keeps its trusted state.
#[derive(clap::Args)]
pub struct StateArgs {
    /// The mirror's trusted metadata, kept filter and lock [default:
    /// $PACKMAN_HOME/mirrors/NAME-HASH, or the platform's data directory
    /// (~/.local/share/packman/mirrors/… on Linux), one per DEST path]. Kept out of DEST, so
    /// DEST holds only what it serves. State an earlier packman kept in DEST/.packman-mirror
    /// moves here on the next successful sync.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

impl StateArgs {
    fn resolve(&self, dest: &std::path::Path) -> Result<PathBuf, String> {
        match &self.state {
            Some(s) => Ok(s.clone()),
            None => default_state_dir(dest),
        }
    }
}

/// `HOME_DATA/mirrors/NAME-ID` ([`packman_trust::Home::mirror_dir`]): NAME is DEST's last
/// component (for people), ID from DEST's absolute path with the part that exists resolved
/// (so the first sync, which creates DEST, finds the same directory as later ones).
fn default_state_dir(dest: &std::path::Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        if let Ok(c) = existing.canonicalize() {
            break rest.iter().rev().fold(c, |p: PathBuf, seg: &&std::ffi::OsStr| p.join(seg));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => break abs.clone(),
        }
    };
    let readable = |c: char| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' };
    let name: String =
        resolved.file_name().map_or_else(|| "root".into(), |n| n.to_string_lossy().chars().map(readable).collect());
    let home = packman_trust::Home::from_env().map_err(|e| e.to_string())?;
    Ok(home.mirror_dir(&name, resolved.as_os_str().as_encoded_bytes()))
}

/// Partial mirrors.
#[derive(clap::Args)]
pub struct FilterArgs {
    /// Mirror only the targets this matches (repeatable): a project-name glob, PEP
    /// 503-normalised (`django-*`, `numpy`), or with a `/` a target path pattern (`docs/*`;
    /// `*` does not cross `/`). Targets of no project (the project list, the signed mirror
    /// list) stay unless a path pattern is included. Metadata is always mirrored whole.
    /// Kept with the mirror's state: later syncs, verify and export apply it until
    /// --include/--exclude/--no-filter change it.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
    /// Leave out the targets this matches (repeatable; same patterns; wins over --include).
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Forget the kept filter: mirror (or check) every target again.
    #[arg(long, conflicts_with_all = ["include", "exclude"])]
    no_filter: bool,
}

impl FilterArgs {
    /// None: the filter the mirror keeps.
    fn filter(&self) -> Option<packman_mirror::Filter> {
        (self.no_filter || !self.include.is_empty() || !self.exclude.is_empty())
            .then(|| packman_mirror::Filter { include: self.include.clone(), exclude: self.exclude.clone() })
    }
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Mirror directory (the one holding metadata/ and targets/).
    dest: PathBuf,
    /// The bundle file to write (replaced atomically).
    bundle: PathBuf,
    /// Only the targets not listed at this snapshot version (the one the importing mirror
    /// has; see its metadata/timestamp.json or `mirror verify`).
    #[arg(long, value_name = "SNAPSHOT_VERSION")]
    since: Option<u64>,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The bundle file (from `packman mirror export`).
    bundle: PathBuf,
    /// Mirror directory (created if needed), or s3://BUCKET/PREFIX: then the sync runs into a
    /// working copy kept with the mirror's state (STATE/tree) and, once it succeeds, pushes
    /// it in write order (targets, versioned metadata, timestamp.json last, removals after;
    /// credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ENDPOINT, AWS_ALLOW_HTTP). A refused sync pushes nothing.
    dest: PathBuf,
    /// Trusted root.json of the upstream, from a trusted place. Needed for an empty DEST
    /// only: after that the mirror's own trusted state is used, and a root given must be that
    /// root or an older one leading to it through signed rotations (anything else is refused).
    #[arg(long)]
    root: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    state: StateArgs,
    /// A summary as JSON on stdout, also when the import is refused: the versions, targets
    /// added, files removed, metadata written, bytes, seconds and the refusal.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Mirror directory (the one holding metadata/ and targets/).
    dest: PathBuf,
    /// Trusted root.json of the upstream, from a trusted place.
    #[arg(long)]
    root: PathBuf,
    /// Check file sizes only, not hashes.
    #[arg(long)]
    fast: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    state: StateArgs,
    /// The findings as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Mend what the audit finds from this repository base URL (the parent of metadata/ and
    /// targets/; the mirror's upstream or another mirror of it): a full sync that fetches
    /// again, verified, only the missing and corrupt files (and whatever is new upstream),
    /// then a second audit, whose findings set the exit status. Hashed files no role lists
    /// are removed; other extra files are left to you.
    #[arg(long, value_name = "UPSTREAM")]
    repair: Option<String>,
}

#[derive(clap::Args)]
pub struct SyncArgs {
    /// Repository base URL (the parent of metadata/ and targets/, as `packman serve` serves
    /// it): http://, https:// or file://.
    upstream: String,
    /// Mirror directory (created if needed).
    dest: PathBuf,
    /// Trusted root.json of the upstream, from a trusted place. Needed for the first sync
    /// only: after that the mirror's trusted state (see --state) is used, and a root given
    /// must be that root or an older one leading to it through signed rotations (anything
    /// else is refused, DEST untouched).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Metadata base URL [default: UPSTREAM/metadata/].
    #[arg(long)]
    metadata_url: Option<String>,
    /// Targets base URL [default: UPSTREAM/targets/].
    #[arg(long)]
    targets_url: Option<String>,
    /// A mirror of the upstream to fail over to, as METADATA_URL,TARGETS_URL (repeatable;
    /// tried in order after the upstream, before the mirrors its signed list names). Every
    /// file from a mirror is verified as from the upstream.
    #[arg(long = "mirror", value_name = "METADATA_URL,TARGETS_URL")]
    mirrors: Vec<String>,
    /// Target downloads at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
    /// Seconds to wait for a connection or for any read before a source counts as down or
    /// stalled and the next mirror is tried (slow links may need more; a short one moves
    /// off a stuck mirror sooner).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    timeout: u32,
    /// Walk every role and check every target in DEST even when nothing is new upstream,
    /// fetching (verified) what DEST lost; without it such a sync stops after the timestamp.
    #[arg(long)]
    full: bool,
    /// A summary as JSON on stdout, also when the sync is refused: fetched, reused, removed,
    /// bytes, seconds, the refusal and each mirror's failures.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    state: StateArgs,
}

pub fn mirror(c: Mirror) -> Result<(), String> {
    let a = match c {
        Mirror::Sync(a) => a,
        Mirror::Verify(a) => return verify(a),
        Mirror::Export(a) => return export(a),
        Mirror::Import(a) => return import(a),
    };
    let mut opts = packman_mirror::SyncOptions::from_base(&a.upstream);
    if let Some(u) = a.metadata_url {
        opts.metadata_url = u;
    }
    if let Some(u) = a.targets_url {
        opts.targets_url = u;
    }
    if let Some(p) = &a.root {
        opts.root = Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?);
        opts.root_name = Some(p.display().to_string());
    }
    opts.filter = a.filter.filter();
    // An s3:// DEST: the sync runs into a local working copy kept with the mirror's state,
    // which is then pushed in the layout's write order (targets, versioned metadata,
    // timestamp.json last, removals after). Only a sync that succeeded is pushed, so the
    // bucket receives verified files only, and a refused sync leaves it untouched.
    let s3 = a.dest.to_str().filter(|d| d.starts_with("s3://")).map(str::to_owned);
    let state = match (&s3, &a.state.state) {
        (Some(url), None) => {
            let home = packman_trust::Home::from_env().map_err(|e| e.to_string())?;
            home.mirror_dir("s3", url.as_bytes())
        }
        _ => a.state.resolve(&a.dest)?,
    };
    let local = if s3.is_some() { state.join("tree") } else { a.dest.clone() };
    opts.state = Some(state);
    opts.jobs = a.jobs.into();
    opts.full = a.full;
    let timeout = std::time::Duration::from_secs(a.timeout.into());
    opts.config.fetcher.connect_timeout = timeout;
    opts.config.fetcher.read_timeout = timeout;
    let given = crate::report::failover_transport(&opts.metadata_url, &opts.targets_url, &a.mirrors, &opts.config)?;
    opts.mirrors = given.mirrors().into_iter().skip(1).collect();
    let bar = crate::progress::SyncBar::new();
    opts.progress = Some(Arc::new(bar.clone()));
    let t0 = Instant::now();
    let (r, failures) = packman_mirror::sync_with(&local, &opts);
    let seconds = t0.elapsed().as_secs_f64();
    bar.finish();
    for f in &failures {
        eprintln!("packman: {f}");
    }
    if let Ok(r) = &r {
        for w in &r.warnings {
            eprintln!("packman: warning: {w}");
        }
    }
    let served = packman_mirror::served(&local);
    if a.json {
        let (report, refused) = match &r {
            Ok(r) => (r.clone(), None),
            Err(e) => (packman_mirror::SyncReport::default(), Some(e)),
        };
        let v = serde_json::json!({
            "upstream": a.upstream,
            "dest": a.dest.display().to_string(),
            "ok": refused.is_none(),
            "unchanged": report.unchanged,
            "root_version": report.root_version,
            "timestamp_version": report.timestamp_version,
            "snapshot_version": report.snapshot_version,
            "targets": report.targets,
            "fetched": report.targets_fetched.len(),
            "reused": report.targets_reused,
            "resumed": report.targets_resumed,
            "removed": report.targets_removed.len(),
            "filtered_out": report.targets_filtered_out,
            "metadata_written": report.metadata_written.len(),
            "bytes": report.bytes_fetched,
            "seconds": seconds,
            "refusals": refused.map(|e| vec![serde_json::json!({
                "error": e.to_string(),
                "role": e.tuf().map(|t| t.role().to_string()),
                "url": e.url(),
                "rule": e.tuf().map(|t| t.to_string()).or_else(|| root_rule(e)),
                "dest_timestamp_version": served.as_ref().map(|s| s.timestamp_version),
                "dest_timestamp_age_seconds": served.as_ref().map(|s| s.age.as_secs()),
                "dest_timestamp_expires": served.as_ref().map(|s| s.expires.to_string()),
            })]).unwrap_or_default(),
            "warnings": report.warnings,
            "mirror_failures": failures.iter().map(|f| serde_json::json!({
                "mirror": f.mirror, "url": f.url, "kind": f.kind.to_string(), "detail": f.detail,
            })).collect::<Vec<_>>(),
        });
        println!("{v:#}");
    }
    let root_name = a.root.as_ref().map_or("ROOT.json".into(), |p| p.display().to_string());
    // DEST serves the repository it trusts: another one starts in a directory of its own.
    let next = format!(
        "If you really mean to mirror the repository of that root, mirror it into a new directory:\n  \
         packman mirror sync UPSTREAM NEW_DEST --root {root_name}"
    );
    let r = r.map_err(|e| match e {
        e @ packman_mirror::MirrorError::Root(_) => {
            root_refusal(&e, a.root.as_deref(), &a.dest, &next).unwrap_or_else(|| e.to_string())
        }
        packman_mirror::MirrorError::NoRoot { .. } => format!("{e}\n  hint: pass --root ROOT.json"),
        e @ packman_mirror::MirrorError::Upstream(_) => format!(
            "{e}\n  nothing changed in {}: the mirror still serves its last verified state{}",
            a.dest.display(),
            staleness(served.as_ref())
        ),
        e => e.to_string(),
    })?;
    if let Some(url) = &s3 {
        let remote = packman_store::Remote::from_url(url).map_err(|e| e.to_string())?;
        let p = remote.push(&local).map_err(|e| {
            format!(
                "{e}\n  the verified mirror is in {}; the bucket may hold part of it (never a timestamp naming files it lacks): run the sync again to finish the push",
                local.display()
            )
        })?;
        let line =
            format!("pushed to {url}: {} uploaded, {} unchanged, {} deleted", p.uploaded, p.unchanged, p.deleted);
        if a.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if a.json {
        return Ok(());
    }
    if r.unchanged {
        println!(
            "up to date {} -> {}: root v{}, timestamp v{}, snapshot v{}; nothing new upstream ({seconds:.3} s)",
            a.upstream,
            a.dest.display(),
            r.root_version,
            r.timestamp_version,
            r.snapshot_version,
        );
        return Ok(());
    }
    print_headline("synced", &a.upstream, &a.dest, &r);
    println!(
        "  {} metadata file(s) written, {} target(s) fetched ({} bytes, {seconds:.2} s), {} reused, {} resumed, {} file(s) removed{}",
        r.metadata_written.len(),
        r.targets_fetched.len(),
        r.bytes_fetched,
        r.targets_reused,
        r.targets_resumed,
        r.targets_removed.len(),
        if r.targets_filtered_out > 0 {
            format!(", {} target(s) left out by the filter", r.targets_filtered_out)
        } else {
            String::new()
        }
    );
    if let (Some(from), Some(to)) = (&r.migrated_state_from, &opts.state) {
        println!("  the mirror's state moved from {} to {}", from.display(), to.display());
    }
    if let Some(gap) = r.root_chain_gap {
        println!("  note: root versions before the trusted one are not mirrored: {gap}");
    }
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<(), String> {
    let root = std::fs::read(&a.root).map_err(|e| format!("{}: {e}", a.root.display()))?;
    let mut opts = packman_mirror::VerifyOptions::new(root.clone());
    opts.fast = a.fast;
    opts.filter = a.filter.filter();
    opts.state = Some(a.state.resolve(&a.dest)?);
    let mut r = packman_mirror::verify(&a.dest, &opts).map_err(|e| e.to_string())?;
    let mut repaired = Vec::new();
    // A second round only after refused metadata: its audit could not check any target.
    let mut rounds = if r.refused.is_some() { 2 } else { 1 };
    while let Some(upstream) = a.repair.as_deref().filter(|_| r.exit_bits() != 0 && rounds > 0) {
        rounds -= 1;
        if !a.json {
            print_audit(&a, &r);
        }
        let mut sync = packman_mirror::SyncOptions::from_base(upstream);
        sync.root = Some(root.clone());
        sync.root_name = Some(a.root.display().to_string());
        sync.filter = opts.filter.clone();
        sync.state = opts.state.clone();
        let t0 = Instant::now();
        let fixed = packman_mirror::repair(&a.dest, &r, &sync).map_err(|e| {
            let next = "A repair syncs DEST: --root must be the root the mirror trusts, or one linked to it by signed rotations.";
            if let Some(refusal) = root_refusal(&e, Some(&a.root), &a.dest, next) {
                return format!("repair from {upstream} refused:\n{refusal}");
            }
            format!(
                "repair from {upstream} refused: {e}\n  nothing changed in {}: the findings above stand",
                a.dest.display()
            )
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        if !a.json {
            println!(
                "repaired from {upstream}: {} target(s) fetched ({} bytes, {seconds:.2} s), {} metadata file(s) rewritten, {} file(s) removed; checking again",
                fixed.targets_fetched.len(),
                fixed.bytes_fetched,
                fixed.metadata_written.len(),
                fixed.targets_removed.len(),
            );
        }
        r = packman_mirror::verify(&a.dest, &opts).map_err(|e| e.to_string())?;
        if r.refused.is_some() {
            rounds = 0;
        }
        repaired.push((upstream.to_owned(), fixed, seconds));
    }
    let bits = r.exit_bits();
    if a.json {
        let mut v = audit_json(&a, &r);
        if a.repair.is_some() {
            // One entry per round (none when the first audit found nothing).
            v["repairs"] = repaired
                .iter()
                .map(|(upstream, fixed, seconds)| {
                    serde_json::json!({
                        "upstream": upstream,
                        "fetched": fixed.targets_fetched,
                        "bytes": fixed.bytes_fetched,
                        "metadata_written": fixed.metadata_written,
                        "removed": fixed.targets_removed,
                        "seconds": seconds,
                    })
                })
                .collect();
        }
        println!("{v:#}");
    } else {
        print_audit(&a, &r);
    }
    if bits != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(bits.into());
    }
    Ok(())
}

fn audit_json(a: &VerifyArgs, r: &packman_mirror::VerifyReport) -> serde_json::Value {
    serde_json::json!({
        "dest": a.dest.display().to_string(),
        "fast": a.fast,
        "refused": r.refused,
        "root_version": r.root_version,
        "timestamp_version": r.timestamp_version,
        "snapshot_version": r.snapshot_version,
        "targets": r.targets,
        "filtered_out": r.filtered_out,
        "files_checked": r.files_checked,
        "missing": r.missing,
        "corrupt": r.corrupt.iter().map(|c| serde_json::json!({"path": c.path, "reason": c.reason})).collect::<Vec<_>>(),
        "extra": r.extra,
        "retained_plain_names": r.retained,
        "exit": r.exit_bits(),
    })
}

fn print_audit(a: &VerifyArgs, r: &packman_mirror::VerifyReport) {
    match &r.refused {
        Some(why) => println!("{}: metadata REFUSED: {why}", a.dest.display()),
        None => println!(
            "{}: metadata verified: root v{}, timestamp v{}, snapshot v{}; {} target(s){}, {} file(s) checked{}",
            a.dest.display(),
            r.root_version,
            r.timestamp_version,
            r.snapshot_version,
            r.targets,
            if r.filtered_out > 0 { format!(" ({} left out by the filter)", r.filtered_out) } else { String::new() },
            r.files_checked,
            if a.fast { " (sizes only)" } else { "" }
        ),
    }
    for m in &r.missing {
        println!("missing  targets/{m}");
    }
    for c in &r.corrupt {
        println!("corrupt  targets/{}: {}", c.path, c.reason);
    }
    for x in &r.extra {
        println!("extra    {x}");
    }
    if r.exit_bits() == 0 {
        println!("ok");
    }
}

fn export(a: ExportArgs) -> Result<(), String> {
    let opts =
        packman_mirror::ExportOptions { since: a.since, state: Some(a.state.resolve(&a.dest)?), ..Default::default() };
    let r = packman_mirror::export(&a.dest, &a.bundle, &opts).map_err(|e| e.to_string())?;
    println!(
        "exported {} -> {}: root v{}, timestamp v{}, snapshot v{}; {} metadata file(s), {} of {} target(s){}, {} bytes",
        a.dest.display(),
        a.bundle.display(),
        r.root_version,
        r.timestamp_version,
        r.snapshot_version,
        r.metadata,
        r.targets,
        r.targets_signed,
        a.since.map_or(String::new(), |s| format!(" (new since snapshot v{s})")),
        r.bytes
    );
    Ok(())
}

fn import(a: ImportArgs) -> Result<(), String> {
    let mut opts = packman_mirror::ImportOptions {
        filter: a.filter.filter(),
        state: Some(a.state.resolve(&a.dest)?),
        ..Default::default()
    };
    if let Some(p) = &a.root {
        opts.root = Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?);
        opts.root_name = Some(p.display().to_string());
    }
    let bar = crate::progress::SyncBar::new();
    opts.progress = Some(Arc::new(bar.clone()));
    let t0 = Instant::now();
    let r = packman_mirror::import(&a.bundle, &a.dest, &opts);
    let seconds = t0.elapsed().as_secs_f64();
    bar.finish();
    if a.json {
        let (report, refused) = match &r {
            Ok(r) => (r.clone(), None),
            Err(e) => (packman_mirror::SyncReport::default(), Some(e.to_string())),
        };
        let v = serde_json::json!({
            "bundle": a.bundle.display().to_string(),
            "dest": a.dest.display().to_string(),
            "ok": refused.is_none(),
            "root_version": report.root_version,
            "timestamp_version": report.timestamp_version,
            "snapshot_version": report.snapshot_version,
            "targets": report.targets,
            "added": report.targets_fetched.len(),
            "reused": report.targets_reused,
            "removed": report.targets_removed.len(),
            "filtered_out": report.targets_filtered_out,
            "metadata_written": report.metadata_written.len(),
            "bytes": report.bytes_fetched,
            "seconds": seconds,
            "refusal": refused,
        });
        println!("{v:#}");
    }
    let r = r.map_err(|e| match e {
        e @ packman_mirror::MirrorError::Root(_) => {
            let next = format!(
                "If you really mean to import a bundle of that root's repository, import it into a new directory:\n  \
                 packman mirror import {} NEW_DEST --root {}",
                a.bundle.display(),
                a.root.as_ref().map_or("ROOT.json".into(), |p| p.display().to_string())
            );
            root_refusal(&e, a.root.as_deref(), &a.dest, &next).unwrap_or_else(|| e.to_string())
        }
        packman_mirror::MirrorError::NoRoot { .. } => format!("{e}\n  hint: pass --root ROOT.json"),
        e @ (packman_mirror::MirrorError::Bundle { .. } | packman_mirror::MirrorError::BundleRefused { .. }) => {
            format!("{e}\n  nothing changed in {}", a.dest.display())
        }
        e => e.to_string(),
    })?;
    if a.json {
        return Ok(());
    }
    print_headline("imported", &a.bundle.display(), &a.dest, &r);
    println!(
        "  {} metadata file(s) written, {} target(s) added ({} bytes), {} file(s) removed",
        r.metadata_written.len(),
        r.targets_fetched.len(),
        r.bytes_fetched,
        r.targets_removed.len()
    );
    Ok(())
}

/// The rule a refused `--root` broke, for `--json`.
fn root_rule(e: &packman_mirror::MirrorError) -> Option<String> {
    matches!(e, packman_mirror::MirrorError::Root(_)).then(|| {
        "a --root given for a mirror with trusted state must be its trusted root, or an older or newer root \
         linked to it through rotations the repository signed"
            .to_string()
    })
}

/// A `--root` refused for a mirror that already trusts a root (packman_trust's rule, as
/// `packman download --root` applies it): said as loudly as download says it, naming the
/// file, both versions and the rule. `next` says what to do instead (a line or two).
fn root_refusal(e: &packman_mirror::MirrorError, root: Option<&Path>, dest: &Path, next: &str) -> Option<String> {
    use packman_trust::TrustError as T;
    let packman_mirror::MirrorError::Root(e) = e else { return None };
    let file = root.map_or_else(|| "the --root given".to_string(), |p| p.display().to_string());
    let (given_version, trusted, trusted_version, dir, reason) = match e.as_ref() {
        T::RootNotInChain { given_version, trusted, trusted_version, dir, reason, .. } => {
            (*given_version, trusted, *trusted_version, dir, reason.clone())
        }
        T::RootDiffers { trusted, trusted_version, given_version, dir, .. } => {
            (*given_version, trusted, *trusted_version, dir, "same version, different bytes".to_string())
        }
        T::InvalidRoot { source, .. } => {
            return Some(format!(
                "{file}: not a usable root: {source}\n  nothing changed in {}: the mirror trusts the root it had",
                dest.display()
            ))
        }
        other => return Some(other.to_string()),
    };
    let bar = "@".repeat(62);
    let banner = format!("{bar}\n@{:^60}@\n{bar}", "WARNING: THE --root GIVEN IS NOT THIS MIRROR'S ROOT!");
    let mut s = crate::report::paint(&banner, crate::report::RED);
    s.push_str(&format!(
        "\nRefusing {file}: root v{given_version} is neither the root this mirror trusts\n\
         ({}, v{trusted_version}) nor linked to it by rotations the repository signed.\n\
         Refused because: {reason}\n\
         It may be another repository's root, or a root someone forged.\n\
         Nothing was changed: {} and the mirror's trusted state ({}) are as they were.\n{next}",
        trusted.display(),
        dest.display(),
        dir.display(),
    ));
    Some(s)
}

/// The first line of what a sync or an import did: where from, where to, which versions.
fn print_headline(verb: &str, from: &dyn std::fmt::Display, dest: &std::path::Path, r: &packman_mirror::SyncReport) {
    println!(
        "{verb} {from} -> {}: root v{}, timestamp v{}, snapshot v{}, {} role(s), {} target(s)",
        dest.display(),
        r.root_version,
        r.timestamp_version,
        r.snapshot_version,
        r.roles,
        r.targets
    );
}

/// How stale a refused mirror now is: what it serves, since when, and until when clients
/// accept it.
fn staleness(served: Option<&packman_mirror::Served>) -> String {
    let Some(s) = served else { return String::new() };
    let left = s.expires.0 - packman_tuf::OffsetDateTime::now_utc();
    let until = if left.is_positive() {
        format!("which expires in {} ({})", human(left.unsigned_abs()), s.expires)
    } else {
        format!(
            "which expired {} ago ({}): clients refuse the mirror until a sync succeeds",
            human(left.unsigned_abs()),
            s.expires
        )
    };
    format!(": timestamp v{}, put in place {} ago, {until}", s.timestamp_version, human(s.age))
}

/// `3 d 4 h`, `2 h 05 min`, `4 min 10 s`, `35 s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        3600..86400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}
