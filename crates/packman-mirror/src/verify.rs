//! [`verify`]: an offline audit of a mirror directory, against a root the caller trusts.
//!
//! The metadata is checked by the updater itself, walking DEST's own `metadata/` through a
//! `file://` transport (no network) from a scratch trusted state bootstrapped with the root
//! given: root rotations, timestamp, snapshot, every targets role reachable through the
//! delegations. Then every file the signed targets name is checked under `targets/` (the
//! hashed name, and the plain name for `packages/` and `simple/` targets) against its signed
//! length and hashes by the trust core ([`packman_tuf::TargetFile::verify_reader`]), on all
//! cores. Files that nothing explains are listed as extra.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use packman_client::{file_url, Config, FileTransport, Updater};
use packman_tuf::{layout, OffsetDateTime, TargetFile};

use crate::sync::{hashed_rel, target_rel};
use crate::{Filter, MirrorError, MirrorPaths};

/// How to audit.
#[derive(Clone)]
pub struct VerifyOptions {
    /// The root the audit trusts (the upstream's, from a trusted place).
    pub root: Vec<u8>,
    /// Check sizes only, not hashes.
    pub fast: bool,
    /// Worker threads for the target checks [default: the number of cores].
    pub threads: Option<usize>,
    /// The time metadata must not have expired by [default: now].
    pub now: Option<OffsetDateTime>,
    /// Which targets DEST should hold [default: the filter its syncs keep, see [`Filter`]]:
    /// targets left out are not missing, and their files in DEST are extra.
    pub filter: Option<Filter>,
    /// DEST's state directory, for the filter it keeps (see
    /// [`SyncOptions::state`](crate::SyncOptions::state)).
    pub state: Option<PathBuf>,
}

impl VerifyOptions {
    pub fn new(root: Vec<u8>) -> Self {
        VerifyOptions { root, fast: false, threads: None, now: None, filter: None, state: None }
    }
}

/// A file under `targets/` that does not hold its signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// Path under `targets/`.
    pub path: String,
    pub reason: String,
}

/// What an audit found. [`VerifyReport::exit_bits`] sums it up.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Why the metadata was refused (then no target was checked).
    pub refused: Option<String>,
    pub root_version: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    /// Targets the metadata signs, those of them the filter leaves out, and files checked
    /// for the rest.
    pub targets: usize,
    pub filtered_out: usize,
    pub files_checked: usize,
    /// Paths under `targets/` the signed targets name but DEST lacks.
    pub missing: Vec<String>,
    pub corrupt: Vec<Corrupt>,
    /// Paths (relative to DEST) nothing signed explains: hashed files no role lists, temp
    /// files, files outside `metadata/` and `targets/` naming rules.
    pub extra: Vec<String>,
    /// Plain names under `packages/` and `simple/` of targets no longer listed: kept on
    /// purpose (as the publisher keeps them), not counted as extra.
    pub retained: usize,
}

impl VerifyReport {
    pub const REFUSED: u8 = 2;
    pub const MISSING: u8 = 4;
    pub const CORRUPT: u8 = 8;
    pub const EXTRA: u8 = 16;

    /// One bit per kind of finding: 2 refused metadata, 4 missing, 8 corrupt, 16 extra
    /// (1 is left for "the audit could not run", as every packman error exits with 1).
    pub fn exit_bits(&self) -> u8 {
        let mut b = 0;
        for (found, bit) in [
            (self.refused.is_some(), Self::REFUSED),
            (!self.missing.is_empty(), Self::MISSING),
            (!self.corrupt.is_empty(), Self::CORRUPT),
            (!self.extra.is_empty(), Self::EXTRA),
        ] {
            if found {
                b |= bit;
            }
        }
        b
    }
}

/// Audits DEST (see the module docs). Errors are for audits that could not run (DEST
/// unreadable, an invalid root given); everything DEST gets wrong is in the report.
pub fn verify(dest: &Path, opts: &VerifyOptions) -> Result<VerifyReport, MirrorError> {
    let paths = MirrorPaths::with_state(dest, opts.state.as_deref());
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    packman_tuf::TrustedSet::new(&opts.root, now).map_err(MirrorError::InvalidRoot)?;
    if !paths.repo().metadata_dir().is_dir() {
        return Err(MirrorError::io(paths.repo().metadata_dir(), std::io::ErrorKind::NotFound.into()));
    }
    let scratch = tempfile::tempdir().map_err(|e| MirrorError::io(std::env::temp_dir(), e))?;
    let state = scratch.path().join("metadata");
    Updater::bootstrap(&state, &opts.root)?;
    let config = Config::default();
    let transport = Arc::new(FileTransport::new(config.fetcher.clone()));
    let mut up = Updater::open(
        &state,
        &file_url(&paths.repo().metadata_dir(), true),
        Some(&file_url(&paths.repo().targets_dir(), true)),
        config,
        transport,
        now,
    )?;
    let mut report = VerifyReport::default();
    let walked = up.refresh().and_then(|()| up.all_targets());
    report.root_version = up.trusted().root().signed.version;
    report.timestamp_version = up.trusted().timestamp().map_or(0, |t| t.signed.version);
    report.snapshot_version = up.trusted().snapshot().map_or(0, |s| s.signed.version);
    let targets = match walked {
        Ok(t) => t,
        Err(e) => {
            report.refused = Some(e.to_string());
            return Ok(report);
        }
    };
    report.targets = targets.len();

    // The files the signed targets name.
    let filter = match &opts.filter {
        Some(f) => f.clone(),
        None => paths.kept_filter()?,
    };
    let mut unwanted_plain = BTreeSet::new();
    let mut jobs: Vec<(String, TargetFile)> = Vec::new();
    for (path, info) in &targets {
        if !filter.wants(path) {
            report.filtered_out += 1;
            if layout::plain_copy_wanted(path) {
                unwanted_plain.extend(target_rel(path, path).ok());
            }
            continue;
        }
        let hashed = match hashed_rel(path, info) {
            Ok(h) => h,
            Err(e) => {
                report.corrupt.push(Corrupt { path: path.clone(), reason: e.to_string() });
                continue;
            }
        };
        jobs.push((hashed, info.clone()));
        if layout::plain_copy_wanted(path) {
            if let Ok(plain) = target_rel(path, path) {
                jobs.push((plain, info.clone()));
            }
        }
    }
    let expected: BTreeSet<String> = jobs.iter().map(|(p, _)| p.clone()).collect();
    let (missing, corrupt) = check_files(&paths.repo().targets_dir(), &jobs, opts);
    report.files_checked = jobs.len();
    report.missing = missing;
    report.corrupt.extend(corrupt);
    report.corrupt.sort_by(|a, b| a.path.cmp(&b.path));
    find_extra(dest, &expected, &unwanted_plain, &mut report)?;
    Ok(report)
}

/// Checks each file on `threads` workers taking the next job as they finish one.
fn check_files(targets_dir: &Path, jobs: &[(String, TargetFile)], opts: &VerifyOptions) -> (Vec<String>, Vec<Corrupt>) {
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let next = AtomicUsize::new(0);
    let found = Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((rel, info)) = jobs.get(i) else { break };
                let result = check_file(&targets_dir.join(rel), info, opts.fast);
                let mut f = found.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(()) => {}
                    Err(None) => f.0.push(rel.clone()),
                    Err(Some(reason)) => f.1.push(Corrupt { path: rel.clone(), reason }),
                }
            });
        }
    });
    let (mut missing, corrupt) = found.into_inner().unwrap_or_else(|p| p.into_inner());
    missing.sort();
    (missing, corrupt)
}

/// `Err(None)`: missing; `Err(Some(reason))`: not the signed bytes.
fn check_file(path: &Path, info: &TargetFile, fast: bool) -> Result<(), Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Err(Some("not a regular file".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => return Err(Some(e.to_string())),
    };
    if meta.len() != info.length {
        return Err(Some(format!("{} bytes where {} are signed", meta.len(), info.length)));
    }
    if fast {
        return Ok(());
    }
    let f = std::fs::File::open(path).map_err(|e| Some(e.to_string()))?;
    info.verify_reader(f).map_err(|e| Some(e.to_string()))
}

/// Lists files under `targets/` that are not expected (the plain names of targets the filter
/// leaves out included), and files under `metadata/` whose names no repository writes.
fn find_extra(
    dest: &Path,
    expected: &BTreeSet<String>,
    unwanted_plain: &BTreeSet<String>,
    report: &mut VerifyReport,
) -> Result<(), MirrorError> {
    let targets_dir = dest.join(layout::TARGETS_DIR);
    for rel in walk(&targets_dir)? {
        if expected.contains(&rel) {
            continue;
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if !name.starts_with(packman_fs::TEMP_PREFIX)
            && !unwanted_plain.contains(&rel)
            && !layout::is_immutable(&rel, false)
            && layout::plain_copy_wanted(&rel)
        {
            report.retained += 1;
        } else {
            report.extra.push(format!("{}/{rel}", layout::TARGETS_DIR));
        }
    }
    for rel in walk(&dest.join(layout::METADATA_DIR))? {
        let known = !rel.contains('/')
            && (rel == layout::ROOT_FILE
                || rel == layout::TIMESTAMP_FILE
                || layout::parse_versioned_metadata(&rel).is_some());
        if !known {
            report.extra.push(format!("{}/{rel}", layout::METADATA_DIR));
        }
    }
    report.extra.sort();
    Ok(())
}

/// Every regular file under `dir` (none if it is missing), by `/`-separated relative path.
fn walk(dir: &Path) -> Result<Vec<String>, MirrorError> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(MirrorError::io(&d, e)),
        };
        for e in entries {
            let e = e.map_err(|err| MirrorError::io(&d, err))?;
            let rel = format!("{prefix}{}", e.file_name().to_string_lossy());
            let ft = e.file_type().map_err(|err| MirrorError::io(e.path(), err))?;
            if ft.is_dir() {
                stack.push((e.path(), format!("{rel}/")));
            } else {
                out.push(rel);
            }
        }
    }
    Ok(out)
}
