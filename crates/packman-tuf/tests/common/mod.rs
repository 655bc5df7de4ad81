//! The repository fixture the trust core's state-machine tests share (trusted_set.rs,
//! rules.rs): a repository signed with packman-repo, published to a temp directory, and
//! loaded into a [`TrustedSet`] step by step.
#![allow(dead_code)] // each test file uses its own subset

use packman_repo::{sign_metadata, RepoBuilder};
use packman_tuf::crypto::Signer;
use packman_tuf::target::describe_meta;
use packman_tuf::trusted::SearchStep;
use packman_tuf::{Limits, MetaFile, OffsetDateTime, Snapshot, TargetSearch, Timestamp, TrustedSet};

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

/// A repository published to a temp directory: `a.txt` in top-level targets, plus whatever
/// `setup` adds before the first publish.
pub struct Repo {
    pub b: RepoBuilder,
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new(setup: impl FnOnce(&mut RepoBuilder)) -> Repo {
        let mut b = RepoBuilder::new(now()).unwrap();
        b.add_target("a.txt", b"a").unwrap();
        setup(&mut b);
        let dir = tempfile::tempdir().unwrap();
        b.publish(dir.path()).unwrap();
        Repo { b, dir }
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("metadata").join(name)).unwrap()
    }

    pub fn signer(&self, role: &str) -> &Signer {
        &self.b.signers[role][0]
    }

    pub fn root(&self) -> Vec<u8> {
        self.read("1.root.json")
    }

    /// The published snapshot and timestamp loaded.
    pub fn to_snapshot(&self) -> TrustedSet {
        let mut set = TrustedSet::new(&self.root(), now()).unwrap();
        set.update_timestamp(&self.read("timestamp.json")).unwrap();
        set.update_snapshot(&self.read(&format!("{}.snapshot.json", self.b.snapshot.version)), false).unwrap();
        set
    }

    /// Everything published loaded, through top-level targets.
    pub fn to_targets(&self) -> TrustedSet {
        let mut set = self.to_snapshot();
        set.update_delegated_targets(
            &self.read(&format!("{}.targets.json", self.b.targets.version)),
            "targets",
            "root",
        )
        .unwrap();
        set
    }

    /// A timestamp one version past the published one, naming the snapshot as `meta`.
    pub fn timestamp_naming(&self, meta: MetaFile) -> Vec<u8> {
        let mut ts: Timestamp = self.b.timestamp.clone();
        ts.version += 1;
        ts.meta.insert("snapshot.json".into(), meta);
        sign_metadata(&ts, &[self.signer("timestamp")]).unwrap()
    }

    /// `snapshot` signed, and a timestamp naming it by length and hash.
    pub fn signed_snapshot_and_timestamp(&self, snapshot: &Snapshot) -> (Vec<u8>, Vec<u8>) {
        let bytes = sign_metadata(snapshot, &[self.signer("snapshot")]).unwrap();
        let ts = self.timestamp_naming(describe_meta(snapshot.version, [bytes.as_slice()]));
        (bytes, ts)
    }
}

/// Runs a target search within `max` delegations, loading from `r` what it asks for;
/// returns the verdict and the roles it asked to load.
pub fn search(set: &mut TrustedSet, r: &Repo, target: &str, max: usize) -> (SearchStep, Vec<String>) {
    let mut s = TargetSearch::new(target, Limits { max_delegations: max });
    let mut asked = Vec::new();
    loop {
        match s.step(set) {
            SearchStep::Load { role, delegator } => {
                if set.targets(&role).is_some() {
                    set.verify_loaded_via(&role, &delegator).unwrap();
                } else {
                    let v = set.meta_for(&role).unwrap().version;
                    set.update_delegated_targets(&r.read(&format!("{v}.{role}.json")), &role, &delegator).unwrap();
                }
                asked.push(role);
                // A search that asks for the same roles forever is a failure, not a hang.
                assert!(asked.len() <= 64.max(max), "the search does not end: {asked:?}");
            }
            other => return (other, asked),
        }
    }
}
