//! The commit of a verified sync into DEST and the mirror's state (step 2 of the crate
//! docs): verified targets moved to their final names, the accepted metadata written
//! in write order (or a new `metadata/` swapped in), the trusted state replaced, and targets
//! no role lists removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use packman_client::VerifiedFile;
use packman_fs::{Access, DirSync};
use packman_tuf::layout;

use crate::sync::{remove_dir_if_there, MirrorPaths};
use crate::MirrorError;

/// Moves verified journal files (journal name, final name) to their final names. A journal
/// directory whose final directory does not exist yet (a first sync, a new project) goes in
/// one rename of the whole directory, after what else it holds is removed (entries a killed
/// sync left that no listed target claims); the others file by file. Both kinds of rename
/// leave the file's bytes as they were made durable. Returns the directories that changed.
pub(crate) fn move_into_place(staged: Vec<(PathBuf, PathBuf)>) -> Result<BTreeSet<PathBuf>, MirrorError> {
    let mut by_dir: BTreeMap<(PathBuf, PathBuf), BTreeSet<std::ffi::OsString>> = BTreeMap::new();
    for (journal, hashed) in staged {
        let name = hashed.file_name().unwrap_or_default().to_os_string();
        debug_assert_eq!(journal.file_name(), Some(name.as_os_str()));
        let key = (packman_fs::parent(&journal).to_path_buf(), packman_fs::parent(&hashed).to_path_buf());
        by_dir.entry(key).or_default().insert(name);
    }
    let mut changed = BTreeSet::new();
    for ((from, to), names) in by_dir {
        let absent = matches!(std::fs::symlink_metadata(&to), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if absent && only_files_named(&from, &names)? {
            let parent = packman_fs::parent(&to);
            std::fs::create_dir_all(parent).map_err(|e| MirrorError::io(parent, e))?;
            std::fs::rename(&from, &to).map_err(|e| MirrorError::io(&to, e))?;
            changed.insert(parent.to_path_buf());
            continue;
        }
        std::fs::create_dir_all(&to).map_err(|e| MirrorError::io(&to, e))?;
        for name in names {
            let dest = to.join(&name);
            std::fs::rename(from.join(&name), &dest).map_err(|e| MirrorError::io(&dest, e))?;
        }
        changed.insert(to);
    }
    Ok(changed)
}

/// Whether `dir` holds no directories, after removing (durably) the files in it not in
/// `names`.
fn only_files_named(dir: &Path, names: &BTreeSet<std::ffi::OsString>) -> Result<bool, MirrorError> {
    let mut extra = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| MirrorError::io(dir, e))? {
        let e = e.map_err(|e| MirrorError::io(dir, e))?;
        if !e.file_type().map_err(|err| MirrorError::io(e.path(), err))?.is_file() {
            return Ok(false);
        }
        if !names.contains(&e.file_name()) {
            extra.push(e.path());
        }
    }
    for p in &extra {
        std::fs::remove_file(p).map_err(|e| MirrorError::io(p, e))?;
    }
    if !extra.is_empty() {
        // Durable before the directory is moved into DEST, whose move the caller syncs.
        packman_fs::sync_dir(dir)?;
    }
    Ok(true)
}

/// The regular files of a trusted metadata directory (lock and temp files aside).
fn state_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, MirrorError> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(MirrorError::io(dir, e)),
    };
    for e in entries {
        let e = e.map_err(|e| MirrorError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().map_err(|err| MirrorError::io(e.path(), err))?.is_file();
        if !is_file || name.ends_with(".lock") || name.starts_with(packman_fs::TEMP_PREFIX) {
            continue;
        }
        out.insert(name, std::fs::read(e.path()).map_err(|err| MirrorError::io(e.path(), err))?);
    }
    Ok(out)
}

/// Writes the accepted metadata under `metadata/` in write order, `timestamp.json` last after
/// a directory sync; skips files that hold those bytes already. Returns the names written.
/// When the newest root changes, the whole new `metadata/` is built aside and swapped in
/// (see the crate docs).
pub(crate) fn write_metadata(paths: &MirrorPaths, files: Vec<VerifiedFile>) -> Result<Vec<String>, MirrorError> {
    let repo = paths.repo();
    let dir = repo.metadata_dir();
    std::fs::create_dir_all(&dir).map_err(|e| MirrorError::io(&dir, e))?;
    let mut by_name: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let newest = |role: &str| files.iter().filter(|f| f.role == role).max_by_key(|f| f.version);
    if let Some(root) = newest("root") {
        by_name.insert(layout::ROOT_FILE.into(), root.bytes.clone());
    }
    if let Some(ts) = newest("timestamp") {
        by_name.insert(layout::TIMESTAMP_FILE.into(), ts.bytes.clone());
    }
    for f in &files {
        if f.role != "timestamp" {
            by_name.insert(layout::metadata_file(&f.role, Some(f.version)), f.bytes.clone());
        }
    }
    let mut names: Vec<String> = by_name.keys().cloned().collect();
    names.sort_by_key(|n| layout::write_rank(&format!("{}/{n}", layout::METADATA_DIR)));
    let new_root = by_name
        .get(layout::ROOT_FILE)
        .is_some_and(|r| std::fs::read(dir.join(layout::ROOT_FILE)).is_ok_and(|have| &have != r));
    if new_root {
        return swap_metadata(paths, &by_name, &names);
    }
    // Versioned files are new names that nothing served points to until the timestamp does:
    // written as a batch, made durable at once before the timestamp (one syncfs on Linux).
    let durability = packman_fs::Durability::detect();
    let mut batch = Vec::new();
    let mut written = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let bytes = &by_name[&name];
        if std::fs::read(&path).is_ok_and(|have| &have == bytes) {
            continue;
        }
        if name == layout::TIMESTAMP_FILE {
            // Everything it leads to is durable first.
            packman_fs::make_durable(durability, &std::mem::take(&mut batch), std::slice::from_ref(&dir))?;
            packman_fs::write_atomic(&path, bytes)?;
        } else if name == layout::ROOT_FILE {
            // Replaces a served file: its bytes are durable before the rename.
            packman_fs::write_atomic_with(&path, bytes, Access::Public, DirSync::Caller)?;
        } else {
            packman_fs::write_atomic_batch(&path, bytes, durability)?;
            batch.push(path);
        }
        written.push(name);
    }
    if !written.is_empty() {
        packman_fs::make_durable(durability, &batch, std::slice::from_ref(&dir))?;
    }
    Ok(written)
}

/// A sync that brings a new root: the complete new `metadata/` is built as
/// [`MirrorPaths::next_metadata_dir`] (hard links to the files that stay, the new files
/// written), made durable, then swapped with the served one in one step
/// ([`packman_fs::platform::exchange`]), so the new roots and the new timestamp appear to
/// readers together; then the old tree is removed.
fn swap_metadata(
    paths: &MirrorPaths,
    by_name: &BTreeMap<String, Vec<u8>>,
    names: &[String],
) -> Result<Vec<String>, MirrorError> {
    let dir = paths.repo().metadata_dir();
    let next = paths.next_metadata_dir();
    remove_dir_if_there(&next)?;
    std::fs::create_dir_all(&next).map_err(|e| MirrorError::io(&next, e))?;
    for e in std::fs::read_dir(&dir).map_err(|e| MirrorError::io(&dir, e))? {
        let e = e.map_err(|e| MirrorError::io(&dir, e))?;
        let name = e.file_name();
        let is_file = e.file_type().map_err(|err| MirrorError::io(e.path(), err))?.is_file();
        if is_file && !name.to_string_lossy().starts_with(packman_fs::TEMP_PREFIX) {
            std::fs::hard_link(e.path(), next.join(&name)).map_err(|err| MirrorError::io(next.join(&name), err))?;
        }
    }
    let mut written = Vec::new();
    for name in names {
        let bytes = &by_name[name];
        if std::fs::read(dir.join(name)).is_ok_and(|have| &have == bytes) {
            continue;
        }
        // Atomic replace: a linked name gets a new file, the served one is left alone.
        packman_fs::write_atomic_with(&next.join(name), bytes, Access::Public, DirSync::Caller)?;
        written.push(name.clone());
    }
    packman_fs::sync_dir(&next)?;
    packman_fs::platform::exchange(packman_fs::Durability::detect(), &next, &dir)
        .map_err(|e| MirrorError::io(&dir, e))?;
    packman_fs::sync_dir(paths.repo().base())?;
    packman_fs::sync_dir(&paths.work_dir())?;
    remove_dir_if_there(&next)?;
    Ok(written)
}

/// Replaces the trusted state with the staged one, file by file (removals, then `root.json`,
/// then the rest), each atomically.
pub(crate) fn replace_state(staged: &Path, trusted: &Path) -> Result<(), MirrorError> {
    std::fs::create_dir_all(trusted).map_err(|e| MirrorError::io(trusted, e))?;
    let new = state_files(staged)?;
    let old = state_files(trusted)?;
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        let p = trusted.join(name);
        std::fs::remove_file(&p).map_err(|e| MirrorError::io(p, e))?;
    }
    let mut names: Vec<&String> = new.keys().collect();
    names.sort_by_key(|n| (n.as_str() != layout::ROOT_FILE, n.as_str() != layout::TIMESTAMP_FILE));
    // Root and timestamp durable one by one, first; the other roles as one batch (a torn
    // one after a crash fails the updater's check against them and is fetched again).
    let durability = packman_fs::Durability::detect();
    let mut batch = Vec::new();
    for name in names {
        if old.get(name) != Some(&new[name]) {
            let path = trusted.join(name);
            if name == layout::ROOT_FILE || name == layout::TIMESTAMP_FILE {
                packman_fs::write_atomic_with(&path, &new[name], Access::Public, DirSync::Caller)?;
            } else {
                packman_fs::write_atomic_batch(&path, &new[name], durability)?;
                batch.push(path);
            }
        }
    }
    packman_fs::make_durable(durability, &batch, &[trusted.to_path_buf()])?;
    Ok(())
}

/// Removes, under `targets/`, hashed files no role lists (or the filter leaves out), the
/// plain names of targets the filter leaves out, and temp files a crash left. Other plain
/// names stay, as the publisher keeps them: a removed distribution's plain copy binds its
/// name to its bytes (a later upload under that name with other bytes is refused), and a
/// listed one is replaced when its target changes. Returns the paths removed (relative,
/// `/`-separated).
pub(crate) fn remove_unlisted(
    targets_dir: &Path,
    wanted_hashed: &BTreeSet<String>,
    unwanted_plain: &BTreeSet<String>,
) -> Result<Vec<String>, MirrorError> {
    let mut removed = Vec::new();
    let mut stack = vec![(targets_dir.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(MirrorError::io(&dir, e)),
        };
        let mut changed = false;
        for e in entries {
            let e = e.map_err(|e| MirrorError::io(&dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let ft = e.file_type().map_err(|err| MirrorError::io(e.path(), err))?;
            if ft.is_dir() {
                stack.push((e.path(), format!("{rel}/")));
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            let stale = name.starts_with(packman_fs::TEMP_PREFIX)
                || unwanted_plain.contains(&rel)
                || (layout::is_immutable(&rel, false) && !wanted_hashed.contains(&rel));
            if stale {
                std::fs::remove_file(e.path()).map_err(|err| MirrorError::io(e.path(), err))?;
                removed.push(rel);
                changed = true;
            }
        }
        if changed {
            packman_fs::sync_dir(&dir)?;
        }
    }
    removed.sort();
    Ok(removed)
}
