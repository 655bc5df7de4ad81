//! Helpers shared by the client's adversarial tests (attacks.rs, bad_input.rs): snapshots of
//! the trusted metadata directory, and how they may differ after a refused update.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::path::Path;

use packman_tuf::{Hashes, MetaFile};

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
    let mut m = MetaFile::new(version);
    m.length = Some(bytes.len() as u64);
    m.hashes = Some(Hashes(vec![("sha256".into(), hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes)))]));
    m
}
