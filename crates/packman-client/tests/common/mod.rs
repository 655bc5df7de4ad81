//! Helpers shared by the client's adversarial tests (attacks.rs, bad_input.rs): snapshots of
//! the trusted metadata directory, and how they may differ after a refused update; an
//! in-memory transport (transport.rs, download.rs).
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use packman_client::{Config, FetchError, Transport, Updater};
use packman_tuf::MetaFile;

pub type DirState = BTreeMap<String, Vec<u8>>;

pub fn dir_state(dir: &Path) -> DirState {
    packman_testkit::dir_state(dir)
}

/// Names that differ between two states, each with how.
pub fn differences(want: &DirState, got: &DirState) -> Vec<String> {
    let mut names: Vec<&String> = want.keys().chain(got.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| want.get(*n) != got.get(*n))
        .map(|n| match (want.get(n), got.get(n)) {
            (Some(_), None) => format!("{n} removed"),
            (None, Some(_)) => format!("{n} added"),
            _ => format!("{n} changed"),
        })
        .collect()
}

#[track_caller]
pub fn assert_unchanged(before: &DirState, dir: &Path) {
    let diff = differences(before, &dir_state(dir));
    assert!(diff.is_empty(), "trusted metadata directory changed: {diff:?}");
}

/// The directory equals `before` except for `changes`, which hold exactly the given bytes.
#[track_caller]
pub fn assert_changed_only<N: AsRef<str>, B: AsRef<[u8]>>(
    before: &DirState,
    dir: &Path,
    changes: &[(N, B)],
    what: &str,
) {
    let mut want = before.clone();
    for (name, bytes) in changes {
        want.insert(name.as_ref().to_string(), bytes.as_ref().to_vec());
    }
    let diff = differences(&want, &dir_state(dir));
    assert!(diff.is_empty(), "{what}: trusted metadata directory: unexpected {diff:?}");
}

/// Snapshot/timestamp meta for `bytes`: version, length and sha256.
pub fn meta_file(version: u64, bytes: &[u8]) -> MetaFile {
    packman_tuf::target::describe_meta(version, [bytes])
}

/// Serves the files of a directory from memory under `mem://repo/`, logging each URL asked
/// for; files listed in `tamper` are served with their last byte flipped.
pub struct MemTransport {
    pub files: BTreeMap<String, Vec<u8>>,
    pub tamper: Vec<String>,
    log: Mutex<Vec<String>>,
}

impl MemTransport {
    pub fn of_dir(dir: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                    files.insert(format!("mem://repo/{rel}"), std::fs::read(&p).unwrap());
                }
            }
        }
        MemTransport { files, tamper: Vec::new(), log: Mutex::new(Vec::new()) }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Transport for MemTransport {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        self.log.lock().unwrap().push(url.to_string());
        let mut bytes = self.files.get(url).ok_or(FetchError::NotFound { url: url.into(), status: 404 })?.clone();
        if self.tamper.iter().any(|t| url.ends_with(t.as_str())) {
            *bytes.last_mut().unwrap() ^= 1;
        }
        if bytes.len() as u64 > max_len {
            return Err(FetchError::TooLarge { url: url.into(), limit: max_len });
        }
        sink.write_all(&bytes).unwrap();
        Ok(bytes.len() as u64)
    }
}

/// An updater of the metadata directory `meta` reading the repository published in
/// `repo_dir` through a [`MemTransport`], which is returned too for its log.
pub fn mem_updater(meta: &Path, repo_dir: &Path) -> (Updater, Arc<MemTransport>) {
    let t = Arc::new(MemTransport::of_dir(repo_dir));
    let up =
        Updater::with_transport(meta, "mem://repo/metadata", Some("mem://repo/targets"), Config::default(), t.clone())
            .unwrap();
    (up, t)
}
