//! `packman repo …`: the publisher's commands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use packman_repo::keys::KeyFile;
use packman_repo::publisher::{InitOptions, PublishReport, Repository};
use packman_repo::python;
use packman_repo::BinStyle;
use packman_tuf::OffsetDateTime;

#[derive(clap::Subcommand)]
// Arguments built only for the command that runs (see `Command` in main.rs).
#[command(defer = true)]
pub enum Command {
    /// Create a new signed repository: keys, root, targets delegating to hashed bins.
    Init {
        dir: PathBuf,
        /// Number of root keys.
        #[arg(long, default_value_t = 1)]
        root_keys: usize,
        /// Root signatures required (K of --root-keys N).
        #[arg(long, default_value_t = 1)]
        root_threshold: u64,
        /// Hashed bins (a power of two). 256 suits up to ~100k files; raise it so each bin
        /// lists a few hundred files at most (PyPI-sized indexes use 16384).
        #[arg(long, default_value_t = 256)]
        bins: u64,
        /// How targets.json delegates to the bins. `succinct` (TAP 15): targets.json stays under
        /// 1 KB at any bin count; read by packman, python-tuf and go-tuf, not by tough or
        /// sigstore-tuf. `prefixes` (classic PEP 458 path_hash_prefixes): read by every TUF
        /// client, but targets.json lists every bin (~180 bytes each: 41 KB at 256 bins, 3.0 MB
        /// at 16384, the most allowed), which every new client fetches, and every client again
        /// after each new version of it (key changes, refreshes); it suits up to a few thousand
        /// bins, succinct suits PyPI scale. Switch later with `packman repo bin-style`.
        #[arg(long, default_value = "succinct", value_parser = bin_style_parser())]
        bin_style: BinStyle,
        /// Where private keys are written [default: DIR/keys]. Keep the root keys offline.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Switch how targets.json delegates to the bins (`succinct` or `prefixes`, see `repo init
    /// --help`) in one publish: a new targets.json with its snapshot and timestamp; the bins and
    /// their targets stay as they are, and following clients see an ordinary update.
    BinStyle {
        dir: PathBuf,
        #[arg(value_parser = bin_style_parser())]
        style: BinStyle,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Add files and publish one new snapshot and timestamp for the batch. Wheels and sdists
    /// are read (name, version, core metadata) and listed under packages/<project>/ with their
    /// project's simple API pages; other files (or all, with --raw) under --prefix.
    Add {
        dir: PathBuf,
        #[arg(required_unless_present = "files_from")]
        files: Vec<PathBuf>,
        /// Also add the files named in this file, one path per line ("-": standard input),
        /// for batches too large for a command line.
        #[arg(long, value_name = "LIST")]
        files_from: Option<PathBuf>,
        /// Target path prefix for plain files (e.g. "docs/"); the file name is appended.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Treat every file as a plain file, not as a Python distribution.
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Remove targets and publish: distribution file names (with their metadata and page
    /// entries) or plain target paths.
    Remove {
        dir: PathBuf,
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Mark distributions yanked (PEP 592), or un-yank them with --undo.
    Yank {
        dir: PathBuf,
        #[arg(required = true)]
        filenames: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        undo: bool,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Re-sign what expires soon (timestamp; snapshot, targets, bins when due). Safe from cron.
    Refresh {
        dir: PathBuf,
        /// Re-sign roles expiring within this many hours.
        #[arg(long, default_value_t = 6)]
        margin_hours: i64,
        /// Also renew the root (a new root version with a new expiry and the same keys:
        /// needs the root keys, see --keys; staged if fewer than the threshold are at hand).
        #[arg(long)]
        root: bool,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Add, remove or rotate the keys of a role (root, targets, snapshot, timestamp, bins).
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// The repository's signed mirror list (the target mirrors.json): clients fail over to
    /// these mirrors, in order, after the URL they were given.
    Mirrors {
        #[command(subcommand)]
        action: MirrorsAction,
    },
    /// Add signatures to a staged root (DIR/staged/root.json); publishes it once the old
    /// and the new root thresholds are met.
    Sign {
        dir: PathBuf,
        /// Sign with this one key file [default: every root key in the key directory].
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Mirror the published tree to object storage (S3-compatible: credentials and endpoint
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT,
    /// AWS_ALLOW_HTTP): targets first, timestamp last, then removals.
    Push {
        dir: PathBuf,
        #[arg(long)]
        store: String,
    },
    /// Versions, expiry and signatures of every role.
    Status {
        dir: PathBuf,
        /// Warn about roles expiring within this many days.
        #[arg(long, default_value_t = 7)]
        warn_days: i64,
        /// The same as JSON on stdout: each role (version, expiry, signatures, threshold,
        /// whether it meets it), the bins, the staged root and the warnings.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
// Arguments built only for the command that runs (see `Command` in main.rs).
#[command(defer = true)]
pub enum MirrorsAction {
    /// Add a mirror at the end of the list and publish.
    Add {
        dir: PathBuf,
        name: String,
        /// Base URL of the mirror's metadata/ (http://, https:// or file://).
        #[arg(long)]
        metadata_url: String,
        /// Base URL of the mirror's targets/.
        #[arg(long)]
        targets_url: String,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Remove a mirror from the list and publish.
    Remove {
        dir: PathBuf,
        name: String,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// After publishing, mirror the tree to object storage (e.g. s3://bucket/prefix).
        #[arg(long)]
        store: Option<String>,
    },
    /// Print the published list.
    List {
        dir: PathBuf,
        /// The list as published (JSON).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
// Arguments built only for the command that runs (see `Command` in main.rs).
#[command(defer = true)]
pub enum KeyAction {
    /// Generate a new key and add it to ROLE.
    Add {
        dir: PathBuf,
        role: String,
        #[arg(long)]
        threshold: Option<u64>,
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Remove a key (keyid or unique prefix) from ROLE.
    Remove {
        dir: PathBuf,
        role: String,
        keyid: String,
        #[arg(long)]
        threshold: Option<u64>,
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Replace every key of ROLE with one new key (threshold 1 unless given).
    Rotate {
        dir: PathBuf,
        role: String,
        #[arg(long)]
        threshold: Option<u64>,
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

/// `succinct` or `prefixes`, listed in `--help`.
fn bin_style_parser() -> impl clap::builder::TypedValueParser<Value = BinStyle> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new([BinStyle::Succinct.as_str(), BinStyle::Prefixes.as_str()])
        .map(|s| s.parse::<BinStyle>().expect("one of the possible values"))
}

fn print_key_change(c: &packman_repo::KeyChange) {
    match c {
        packman_repo::KeyChange::Published { root_version, report } => {
            println!("root v{root_version} in force");
            print_report(report);
        }
        packman_repo::KeyChange::Staged { root_version, path, old, new } => {
            println!(
                "root v{root_version} staged in {}: {} of {} signatures from the current root keys, {} of {} from the new ones",
                path.display(),
                old.0,
                old.1,
                new.0,
                new.1
            );
            println!("  more root key holders must run: packman repo sign DIR --key THEIR-KEY-FILE");
        }
    }
}

fn key_change(
    dir: &Path,
    keys: Option<&Path>,
    role: &str,
    add: usize,
    remove: &[String],
    threshold: Option<u64>,
) -> Result<(), String> {
    let mut repo = open(dir, keys)?;
    let new_pass = new_passphrase()?;
    let c = repo.change_keys(role, add, remove, threshold, new_pass.as_deref(), &mut passphrase).map_err(e)?;
    print_key_change(&c);
    Ok(())
}

/// Passphrases come from $PACKMAN_PASSPHRASE, else a prompt when there is a terminal.
fn passphrase(kf: &KeyFile) -> Result<String, packman_repo::Error> {
    if let Ok(p) = std::env::var("PACKMAN_PASSPHRASE") {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("passphrase for {} key {}: ", kf.role, &kf.keyid[..12]))
            .map_err(|e| packman_repo::Error::Key { path: kf.path.clone(), reason: e.to_string() });
    }
    Err(packman_repo::Error::Key {
        path: kf.path.clone(),
        reason: "is encrypted and there is no terminal to ask for its passphrase: set PACKMAN_PASSPHRASE".into(),
    })
}

/// The passphrase for new keys: $PACKMAN_PASSPHRASE, else asked twice on a terminal; with
/// neither (scripts, CI) keys are written unencrypted, with a warning.
fn new_passphrase() -> Result<Option<String>, String> {
    if let Ok(p) = std::env::var("PACKMAN_PASSPHRASE") {
        return Ok(Some(p));
    }
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("passphrase for the new private keys (empty: none): ")
            .map_err(|e| e.to_string())?;
        if a.is_empty() {
            eprintln!("packman: warning: private keys are stored unencrypted");
            return Ok(None);
        }
        let b = rpassword::prompt_password("again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the passphrases differ".into());
        }
        return Ok(Some(a));
    }
    eprintln!("packman: warning: no terminal and no PACKMAN_PASSPHRASE: private keys are stored unencrypted");
    Ok(None)
}

/// Stages the changed pages, publishes, mirrors to `store` while still holding the repository
/// lock (no publish interleaves with the push), then lets process exit release the repository:
/// freeing every loaded bin one allocation at a time takes seconds for big publishes (2 s for
/// a million targets) and achieves nothing.
fn publish_and_push(mut repo: Repository, pages: python::Pages, dir: &Path, store: Option<&str>) -> Result<(), String> {
    pages.stage(&mut repo).map_err(e)?;
    print_report(&repo.publish(&mut passphrase).map_err(e)?);
    let pushed = push(dir, store);
    std::mem::forget(repo);
    pushed
}

/// A file `repo add` read and hashed before adding it.
enum Examined {
    Distribution(Box<python::Examined>),
    Raw(packman_tuf::TargetFile, Option<Vec<u8>>),
}

impl Examined {
    /// How many of its bytes are held in memory.
    fn kept(&self) -> u64 {
        match self {
            Examined::Distribution(d) => d.kept(),
            Examined::Raw(_, b) => b.as_ref().map_or(0, |b| b.len() as u64),
        }
    }
}

/// Files up to this size are read once, into memory, by `repo add`, up to
/// [`KEEP_IN_MEMORY`] in all.
const KEEP_FILE: u64 = 16 << 20;
const KEEP_IN_MEMORY: u64 = 256 << 20;

/// The paths listed in `list` (`-`: standard input), one per line; blank lines are skipped.
fn read_file_list(list: &Path) -> Result<Vec<PathBuf>, String> {
    let text = if list == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|err| format!("reading the file list from standard input: {err}"))?
    } else {
        std::fs::read_to_string(list).map_err(|err| format!("{}: cannot read the file list: {err}", list.display()))?
    };
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn e(err: packman_repo::Error) -> String {
    err.to_string()
}

fn open(dir: &Path, keys: Option<&Path>) -> Result<Repository, String> {
    Repository::open(dir, keys, now()).map_err(e)
}

fn push(dir: &Path, store: Option<&str>) -> Result<(), String> {
    let Some(url) = store else { return Ok(()) };
    let remote = packman_store::Remote::from_url(url).map_err(|e| with_causes(&e))?;
    let r = remote.push(dir).map_err(|e| with_causes(&e))?;
    println!("pushed to {url}: {} uploaded, {} unchanged, {} deleted", r.uploaded, r.unchanged, r.deleted);
    Ok(())
}

/// The error and its causes: object storage errors end in "error sending request", and
/// what went wrong (refused connection, TLS certificate) is further down the chain.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        cause = c.source();
    }
    msg
}

fn print_report(r: &PublishReport) {
    println!(
        "published: {} metadata file(s) ({}), {} new target file(s), {} old version(s) removed",
        r.metadata_written.len(),
        r.metadata_written.join(", "),
        r.targets_written,
        r.removed
    );
}

pub fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Init { dir, root_keys, root_threshold, bins, bin_style, keys } => {
            let passphrase = new_passphrase()?;
            let opts =
                InitOptions { root_keys, root_threshold, bins, bin_style, keys, passphrase, ..InitOptions::default() };
            let repo = Repository::init(&dir, &opts, now()).map_err(e)?;
            println!("created repository {} with {bins} hashed bins ({bin_style})", dir.display());
            println!("  root v1: {root_threshold} of {root_keys} root key(s)");
            println!("  private keys in {} (move the root keys offline)", repo.key_dir().path().display());
            println!("  publish {}/metadata and {}/targets from any static host", dir.display(), dir.display());
            Ok(())
        }
        Command::BinStyle { dir, style, keys, store } => {
            let mut repo = open(&dir, keys.as_deref())?;
            match repo.set_bin_style(style, &mut passphrase).map_err(e)? {
                None => println!("{} already delegates to its bins as {style}: nothing published", dir.display()),
                Some(report) => {
                    println!("{} now delegates to its {} bins as {style}", dir.display(), repo.bin_count());
                    print_report(&report);
                }
            }
            let pushed = push(&dir, store.as_deref());
            drop(repo);
            pushed
        }
        Command::Add { dir, mut files, files_from, prefix, raw, keys, store } => {
            if let Some(list) = files_from {
                files.extend(read_file_list(&list)?);
            }
            if files.is_empty() {
                return Err("repo add: no files to add (the --files-from list is empty)".into());
            }
            // Reading and hashing the files needs no repository: done on a thread while the
            // repository is opened (its snapshot alone is half a megabyte at PyPI's size).
            let (repo, examined) = std::thread::scope(|s| {
                let examining = s.spawn(|| {
                    // Files are kept in memory up to a total (published as read: no second
                    // read, nor a change in between); the rest are copied and checked.
                    let mut budget: u64 = KEEP_IN_MEMORY;
                    files
                        .iter()
                        .map(|f| {
                            let keep = budget.min(KEEP_FILE);
                            let examined = match !raw && python::is_distribution(f) {
                                true => python::examine(f, keep).map(|x| Examined::Distribution(Box::new(x))),
                                false => packman_repo::read_described(f, keep).map(|(tf, b)| Examined::Raw(tf, b)),
                            };
                            if let Ok(x) = &examined {
                                budget -= x.kept();
                            }
                            examined
                        })
                        .collect::<Vec<_>>()
                });
                let repo = open(&dir, keys.as_deref());
                (repo, examining.join())
            });
            let mut repo = repo?;
            let examined = examined.map_err(|_| "reading the files failed (thread panicked)".to_string())?;
            if !raw {
                let dists: Vec<&Path> =
                    files.iter().map(|f| f.as_path()).filter(|f| python::is_distribution(f)).collect();
                python::prefetch(&mut repo, &dists);
            }
            let mut pages = python::Pages::default();
            let mut changed = false;
            for (f, examined) in files.iter().zip(examined) {
                match examined.map_err(e)? {
                    Examined::Distribution(examined) => {
                        let a = python::add_examined(&mut repo, &mut pages, f, *examined).map_err(e)?;
                        if a.unchanged {
                            println!("{}: already published, unchanged", a.path);
                        } else {
                            println!("{} {} -> {} ({})", a.project, a.version, a.path, a.bin);
                            changed = true;
                        }
                    }
                    Examined::Raw(tf, bytes) => {
                        let name = f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .ok_or_else(|| format!("{}: not a file name", f.display()))?;
                        let path = format!("{prefix}{name}");
                        let bin = repo.add_read_target(&path, f, tf, bytes).map_err(e)?;
                        println!("{path} -> {bin}");
                        changed = true;
                    }
                }
            }
            if !changed {
                println!("nothing to publish");
                return Ok(());
            }
            publish_and_push(repo, pages, &dir, store.as_deref())
        }
        Command::Remove { dir, names, keys, store } => {
            let mut repo = open(&dir, keys.as_deref())?;
            let mut pages = python::Pages::default();
            for n in &names {
                let found = if !n.contains('/') && packman_index::parse_filename(n).is_ok() {
                    // Or a plain target (`add --raw`) that happens to be named like one.
                    python::remove_distribution(&mut repo, &mut pages, n).map_err(e)?
                        || repo.remove_target(n).map_err(e)?
                } else {
                    repo.remove_target(n).map_err(e)?
                };
                if !found {
                    return Err(format!("{n}: not a target of {}", dir.display()));
                }
            }
            publish_and_push(repo, pages, &dir, store.as_deref())
        }
        Command::Yank { dir, filenames, reason, undo, keys, store } => {
            let mut repo = open(&dir, keys.as_deref())?;
            let mut pages = python::Pages::default();
            let flag = if undo { None } else { Some(reason.as_deref().unwrap_or("")) };
            for n in &filenames {
                if !python::set_yanked(&mut repo, &mut pages, n, flag).map_err(e)? {
                    return Err(format!("{n}: not a distribution in {}", dir.display()));
                }
            }
            publish_and_push(repo, pages, &dir, store.as_deref())
        }
        Command::Refresh { dir, margin_hours, root, keys, store } => {
            if root {
                let mut repo = open(&dir, keys.as_deref())?;
                let c = repo.change_keys("root", 0, &[], None, None, &mut passphrase).map_err(e)?;
                print_key_change(&c);
            }
            let mut repo = open(&dir, keys.as_deref())?;
            let done = repo.refresh(time::Duration::hours(margin_hours), &mut passphrase).map_err(e)?;
            if done.is_empty() {
                println!("nothing expires within {margin_hours} h: nothing re-signed");
            } else {
                println!("re-signed: {}", done.join(", "));
            }
            // Still holding the repository lock: no publish interleaves with the push.
            push(&dir, store.as_deref())
        }
        Command::Push { dir, store } => {
            // Hold the repository lock so no publish runs while the tree is mirrored.
            let repo = open(&dir, None)?;
            let r = push(&dir, Some(&store));
            drop(repo);
            r
        }
        Command::Key { action } => match action {
            KeyAction::Add { dir, role, threshold, keys } => {
                key_change(&dir, keys.as_deref(), &role, 1, &[], threshold)
            }
            KeyAction::Remove { dir, role, keyid, threshold, keys } => {
                key_change(&dir, keys.as_deref(), &role, 0, &[keyid], threshold)
            }
            KeyAction::Rotate { dir, role, threshold, keys } => {
                let repo = open(&dir, keys.as_deref())?;
                let current: Vec<String> = if role == "bins" {
                    repo.bins_keyids()
                } else {
                    repo.root
                        .roles
                        .get(&role)
                        .map(|r| r.keyids.clone())
                        .ok_or_else(|| format!("unknown role {role:?}"))?
                };
                drop(repo);
                key_change(&dir, keys.as_deref(), &role, 1, &current, Some(threshold.unwrap_or(1)))
            }
        },
        Command::Mirrors { action } => mirrors(action),
        Command::Sign { dir, key, keys } => {
            let mut repo = open(&dir, keys.as_deref())?;
            let c = repo.sign_staged_root(key.as_deref(), &mut passphrase).map_err(e)?;
            print_key_change(&c);
            Ok(())
        }
        Command::Status { dir, warn_days, json } => {
            let mut repo = open(&dir, None)?;
            let horizon = now() + time::Duration::days(warn_days);
            let mut warnings = Vec::new();
            let mut roles = Vec::new();
            // Lines are printed as they are found unless --json, which prints them all at the end.
            let say = |line: String| {
                if !json {
                    println!("{line}");
                }
            };
            for s in repo.status().map_err(e)? {
                let met = s.valid_signatures as u64 >= s.threshold;
                let ok = if met { "ok" } else { "BELOW THRESHOLD" };
                say(format!(
                    "{:<9} v{:<6} expires {}  signatures {}/{} {ok}",
                    s.role, s.version, s.expires, s.valid_signatures, s.threshold
                ));
                roles.push(serde_json::json!({
                    "role": s.role,
                    "version": s.version,
                    "expires": s.expires.to_string(),
                    "signatures": s.valid_signatures,
                    "threshold": s.threshold,
                    "threshold_met": met,
                }));
                // The timestamp lives a day by design: warn only when it is within hours of expiry.
                let h = if s.role == "timestamp" { now() + time::Duration::hours(6) } else { horizon };
                if s.role == "root" && s.expires.0 <= h {
                    warnings.push(format!(
                        "root expires {}: renew it with `packman repo refresh --root --keys ROOT-KEYS`",
                        s.expires
                    ));
                } else if s.expires.0 <= h {
                    warnings.push(format!("{} expires {}: run `packman repo refresh`", s.role, s.expires));
                }
            }
            let (n, earliest, targets) = repo.bins_summary().map_err(e)?;
            if let Some(ex) = earliest {
                say(format!("bins      {n} bins ({}), {targets} targets, earliest expiry {ex}", repo.bin_style()));
                if ex.0 <= horizon {
                    warnings.push(format!("bins expire {ex} (within {warn_days} days): run `packman repo refresh`"));
                }
            }
            let staged = repo.staged_root();
            if let Some((v, p)) = &staged {
                warnings
                    .push(format!("root v{v} is staged in {} waiting for signatures: packman repo sign", p.display()));
            }
            if json {
                let v = serde_json::json!({
                    "dir": dir.display().to_string(),
                    "roles": roles,
                    "bins": earliest.map(|ex| serde_json::json!({
                        "count": n,
                        "style": repo.bin_style().to_string(),
                        "targets": targets,
                        "earliest_expiry": ex.to_string(),
                    })),
                    "staged_root": staged.map(|(v, p)| serde_json::json!({"version": v, "path": p.display().to_string()})),
                    "warnings": warnings,
                });
                println!("{v:#}");
                return Ok(());
            }
            for w in warnings {
                println!("warning: {w}");
            }
            Ok(())
        }
    }
}

fn mirrors(action: MirrorsAction) -> Result<(), String> {
    match action {
        MirrorsAction::Add { dir, name, metadata_url, targets_url, keys, store } => {
            let mut repo = open(&dir, keys.as_deref())?;
            let entry = packman_tuf::mirrors::MirrorEntry { name: name.clone(), metadata_url, targets_url };
            repo.add_mirror(entry).map_err(e)?;
            println!("mirror {name} added");
            publish_and_push(repo, python::Pages::default(), &dir, store.as_deref())
        }
        MirrorsAction::Remove { dir, name, keys, store } => {
            let mut repo = open(&dir, keys.as_deref())?;
            if !repo.remove_mirror(&name).map_err(e)? {
                return Err(format!("{name}: not a mirror of {}", dir.display()));
            }
            println!("mirror {name} removed");
            publish_and_push(repo, python::Pages::default(), &dir, store.as_deref())
        }
        MirrorsAction::List { dir, json } => {
            let mut repo = open(&dir, None)?;
            let list = repo.mirrors().map_err(e)?;
            if json {
                print!("{}", String::from_utf8_lossy(&list.to_bytes()));
            } else if list.mirrors.is_empty() {
                println!("no mirrors listed");
            } else {
                for m in &list.mirrors {
                    println!("{}\tmetadata {}\ttargets {}", m.name, m.metadata_url, m.targets_url);
                }
            }
            Ok(())
        }
    }
}
