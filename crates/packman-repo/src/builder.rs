//! [`RepoBuilder`]: a whole repository in memory, signed with in-memory keys. The client's
//! tests, the demo and benchmarks use it; `publisher` is the on-disk, incremental one.

use packman_tuf::layout;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use packman_tuf::crypto::Signer;
use packman_tuf::metadata::{Extra, SPEC_VERSION};
use packman_tuf::{
    Delegations, Key, MetaFile, OffsetDateTime, RoleKeys, Root, Snapshot, SuccinctRoles, Targets, Timestamp,
};

use crate::{io, new_expiry, sign_metadata, write_atomic, Error};

/// A repository held in memory: public fields are the roles' signed content, free for tests
/// to bend; `publish` signs and writes what changed.
pub struct RepoBuilder {
    pub root: Root,
    pub timestamp: Timestamp,
    pub snapshot: Snapshot,
    pub targets: Targets,
    /// Delegated targets roles (hashed bins included), by name.
    pub delegated: BTreeMap<String, Targets>,
    /// Signers by role name; "bins" signs every succinct bin.
    pub signers: BTreeMap<String, Vec<Signer>>,
    /// Every root version signed so far, oldest first (clients walk them one by one).
    pub signed_roots: Vec<Vec<u8>>,
    /// Target contents by path.
    pub target_data: BTreeMap<String, Vec<u8>>,
    dirty: BTreeSet<String>,
    now: OffsetDateTime,
}

fn role_keys(signers: &[Signer]) -> RoleKeys {
    RoleKeys { keyids: signers.iter().map(|s| s.keyid().to_string()).collect(), threshold: 1, extra: Extra::new() }
}

fn empty_targets(now: OffsetDateTime) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: new_expiry(now, 90),
        targets: BTreeMap::new(),
        delegations: None,
        extra: Extra::new(),
    }
}

impl RepoBuilder {
    /// A new repository with one fresh Ed25519 key per top-level role, thresholds of 1 and
    /// consistent snapshots on. Expiry: root 1 year, targets 90 days, snapshot 7 days,
    /// timestamp 1 day, from `now`.
    pub fn new(now: OffsetDateTime) -> Result<Self, Error> {
        let gen = || {
            Signer::generate_ed25519()
                .map(|(s, _)| s)
                .map_err(|e| Error::Signing { role: "new".into(), reason: e.to_string() })
        };
        let mut signers = BTreeMap::new();
        for role in ["root", "timestamp", "snapshot", "targets"] {
            signers.insert(role.to_string(), vec![gen()?]);
        }
        let mut keys = BTreeMap::new();
        let mut roles = BTreeMap::new();
        for (role, ss) in &signers {
            for s in ss {
                keys.insert(s.keyid().to_string(), s.public_key().clone());
            }
            roles.insert(role.clone(), role_keys(ss));
        }
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: new_expiry(now, 365),
            consistent_snapshot: Some(true),
            keys,
            roles,
            extra: Extra::new(),
        };
        let timestamp = Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: new_expiry(now, 1),
            meta: [(layout::meta_key("snapshot"), MetaFile::new(1))].into_iter().collect(),
            extra: Extra::new(),
        };
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: new_expiry(now, 7),
            meta: Default::default(),
            extra: Extra::new(),
        };
        let mut b = RepoBuilder {
            root,
            timestamp,
            snapshot,
            targets: empty_targets(now),
            delegated: BTreeMap::new(),
            signers,
            signed_roots: Vec::new(),
            target_data: BTreeMap::new(),
            dirty: BTreeSet::from(["targets".to_string()]),
            now,
        };
        b.targets.version = 0;
        b.sign_root()?;
        Ok(b)
    }

    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Delegates all targets from `targets` to `2^bit_length` succinct hashed bins named
    /// `bins-XXXX`, signed by one fresh "bins" key.
    pub fn with_succinct_bins(self, bit_length: u32) -> Result<Self, Error> {
        self.with_hashed_bins(bit_length, crate::BinStyle::Succinct)
    }

    /// As [`RepoBuilder::with_succinct_bins`], delegated in `style` (see [`crate::bin_style`]):
    /// the same bins under the same names either way.
    pub fn with_hashed_bins(mut self, bit_length: u32, style: crate::BinStyle) -> Result<Self, Error> {
        let (s, _) =
            Signer::generate_ed25519().map_err(|e| Error::Signing { role: "bins".into(), reason: e.to_string() })?;
        let succinct = SuccinctRoles {
            keyids: vec![s.keyid().to_string()],
            threshold: 1,
            bit_length,
            name_prefix: "bins".into(),
            extra: Extra::new(),
        };
        let keys = BTreeMap::from([(s.keyid().to_string(), s.public_key().clone())]);
        self.targets.delegations = Some(crate::bin_style::delegation(&succinct, keys, style));
        self.signers.insert("bins".into(), vec![s]);
        for bin in 0..succinct.bin_count() {
            let name = succinct.bin_name(bin);
            let mut t = empty_targets(self.now);
            t.version = 0;
            self.delegated.insert(name.clone(), t);
            self.dirty.insert(name);
        }
        self.dirty.insert("targets".into());
        Ok(self)
    }

    /// Adds a delegated role `name` under `parent` for `paths`, with a fresh key.
    pub fn add_delegation(
        &mut self,
        parent: &str,
        name: &str,
        paths: Vec<String>,
        terminating: bool,
    ) -> Result<(), Error> {
        let (s, _) =
            Signer::generate_ed25519().map_err(|e| Error::Signing { role: name.into(), reason: e.to_string() })?;
        let role = packman_tuf::DelegatedRole {
            name: name.into(),
            keyids: vec![s.keyid().to_string()],
            threshold: 1,
            terminating,
            paths: Some(paths),
            path_hash_prefixes: None,
            extra: Extra::new(),
        };
        let p = self.targets_mut(parent)?;
        let d = p.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            extra: Extra::new(),
        });
        d.keys.insert(s.keyid().to_string(), s.public_key().clone());
        d.roles.get_or_insert_with(Vec::new).push(role);
        self.dirty.insert(parent.into());
        let mut t = empty_targets(self.now);
        t.version = 0;
        self.delegated.insert(name.into(), t);
        self.dirty.insert(name.into());
        self.signers.insert(name.into(), vec![s]);
        Ok(())
    }

    pub fn targets_mut(&mut self, role: &str) -> Result<&mut Targets, Error> {
        self.dirty.insert(role.into());
        if role == "targets" {
            return Ok(&mut self.targets);
        }
        self.delegated.get_mut(role).ok_or_else(|| Error::NoRole(role.into()))
    }

    /// The role that should list `path`: its hashed bin if bins are on (either shape), else
    /// `targets`.
    pub fn role_for(&self, path: &str) -> String {
        match self.targets.delegations.as_ref().and_then(crate::bin_style::read_delegation) {
            Some((s, _)) => s.role_for_target(path),
            None => "targets".into(),
        }
    }

    /// Adds (or replaces) a target in the role that should list it.
    pub fn add_target(&mut self, path: &str, data: &[u8]) -> Result<String, Error> {
        let role = self.role_for(path);
        self.add_target_to(&role, path, data)?;
        Ok(role)
    }

    pub fn add_target_to(&mut self, role: &str, path: &str, data: &[u8]) -> Result<(), Error> {
        self.targets_mut(role)?.targets.insert(path.into(), packman_tuf::target::describe(data));
        self.target_data.insert(path.into(), data.to_vec());
        Ok(())
    }

    fn signers_for(&self, role: &str) -> Vec<&Signer> {
        let key = if self.delegated.contains_key(role) && !self.signers.contains_key(role) { "bins" } else { role };
        self.signers.get(key).map(|v| v.iter().collect()).unwrap_or_default()
    }

    /// Replaces the keys of a top-level role with one fresh key and signs a new root (with
    /// the old root keys too, as a rotation must be). Returns the new signer's keyid.
    pub fn rotate_key(&mut self, role: &str) -> Result<String, Error> {
        let (s, _) =
            Signer::generate_ed25519().map_err(|e| Error::Signing { role: role.into(), reason: e.to_string() })?;
        let keyid = s.keyid().to_string();
        let old_root_signers =
            std::mem::take(self.signers.get_mut("root").ok_or_else(|| Error::NoRole("root".into()))?);
        self.root.keys.insert(keyid.clone(), s.public_key().clone());
        self.root.roles.insert(role.into(), role_keys(std::slice::from_ref(&s)));
        let new = vec![s];
        if role == "root" {
            self.signers.insert("root".into(), old_root_signers.into_iter().chain(new).collect());
            self.bump_root()?;
            let all = self.signers.remove("root").unwrap_or_default();
            let keep: Vec<Signer> = all.into_iter().filter(|s| s.keyid() == keyid).collect();
            self.signers.insert("root".into(), keep);
        } else {
            self.signers.insert("root".into(), old_root_signers);
            self.signers.insert(role.into(), new);
            self.bump_root()?;
        }
        Ok(keyid)
    }

    /// Signs the next root version.
    pub fn bump_root(&mut self) -> Result<(), Error> {
        self.root.version += 1;
        self.sign_root()
    }

    fn sign_root(&mut self) -> Result<(), Error> {
        let bytes = sign_metadata(&self.root, &self.signers_for("root"))?;
        self.signed_roots.push(bytes);
        Ok(())
    }

    /// Signed bytes of a targets role as it stands (version not changed).
    pub fn signed_targets(&self, role: &str) -> Result<Vec<u8>, Error> {
        let t = if role == "targets" {
            &self.targets
        } else {
            self.delegated.get(role).ok_or_else(|| Error::NoRole(role.into()))?
        };
        sign_metadata(t, &self.signers_for(role))
    }

    pub fn signed_snapshot(&self) -> Result<Vec<u8>, Error> {
        sign_metadata(&self.snapshot, &self.signers_for("snapshot"))
    }

    pub fn signed_timestamp(&self) -> Result<Vec<u8>, Error> {
        sign_metadata(&self.timestamp, &self.signers_for("timestamp"))
    }

    /// Signs and writes everything changed since the last publish into `dir/metadata` and
    /// `dir/targets`: new versions of changed targets roles, then snapshot, then timestamp.
    pub fn publish(&mut self, dir: &Path) -> Result<(), Error> {
        let md = dir.join(layout::METADATA_DIR);
        let td = dir.join(layout::TARGETS_DIR);
        std::fs::create_dir_all(&md).map_err(|e| io(&md, e))?;
        std::fs::create_dir_all(&td).map_err(|e| io(&td, e))?;
        for (path, data) in &self.target_data {
            let tf = packman_tuf::target::describe(data);
            let sha = tf.hashes.get("sha256").unwrap_or_default();
            let (d, f) = path.rsplit_once('/').map(|(d, f)| (format!("{d}/"), f)).unwrap_or((String::new(), path));
            let p = td.join(format!("{d}{sha}.{f}"));
            if !p.exists() {
                write_atomic(&p, data)?;
            }
        }
        for (i, bytes) in self.signed_roots.iter().enumerate() {
            let p = md.join(format!("{}.root.json", i + 1));
            if !p.exists() {
                write_atomic(&p, bytes)?;
            }
        }
        write_atomic(&md.join(layout::ROOT_FILE), self.signed_roots.last().expect("root signed at creation"))?;
        // Delegated roles first (bins), top-level targets last: a client never sees a
        // snapshot naming a file that is not there yet.
        let dirty: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        let ordered = dirty.iter().filter(|r| *r != "targets").chain(dirty.iter().filter(|r| *r == "targets"));
        for role in ordered {
            let t = self.targets_mut(role)?;
            t.version += 1;
            let version = t.version;
            let bytes = self.signed_targets(role)?;
            write_atomic(&md.join(layout::metadata_file(role, Some(version))), &bytes)?;
            self.snapshot.meta.insert(layout::meta_key(role), MetaFile::new(version));
        }
        self.dirty.clear();
        self.snapshot.version += 1;
        self.snapshot.expires = new_expiry(self.now, 7);
        let snap = self.signed_snapshot()?;
        write_atomic(&md.join(layout::metadata_file("snapshot", Some(self.snapshot.version))), &snap)?;
        let mut meta = MetaFile::new(self.snapshot.version);
        meta.length = Some(snap.len() as u64);
        meta.hashes = packman_tuf::target::describe_meta(0, [snap.as_slice()]).hashes;
        self.timestamp.meta.insert(layout::meta_key("snapshot"), meta);
        self.timestamp.version += 1;
        self.timestamp.expires = new_expiry(self.now, 1);
        write_atomic(&md.join(layout::TIMESTAMP_FILE), &self.signed_timestamp()?)
    }

    /// Public key of the first signer of `role` (tests).
    pub fn key_of(&self, role: &str) -> Option<&Key> {
        self.signers.get(role).and_then(|v| v.first()).map(|s| s.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packman_tuf::TrustedSet;

    #[test]
    fn published_repository_verifies_in_the_trust_core() {
        let now = OffsetDateTime::now_utc();
        let mut b = RepoBuilder::new(now).unwrap().with_succinct_bins(3).unwrap();
        let role = b.add_target("pkg/a.txt", b"hello").unwrap();
        let d = tempfile::tempdir().unwrap();
        b.publish(d.path()).unwrap();
        let md = d.path().join("metadata");
        let read = |n: &str| std::fs::read(md.join(n)).unwrap();
        let mut set = TrustedSet::new(&read("1.root.json"), now).unwrap();
        set.update_timestamp(&read("timestamp.json")).unwrap();
        set.update_snapshot(&read("1.snapshot.json"), false).unwrap();
        set.update_delegated_targets(&read("1.targets.json"), "targets", "root").unwrap();
        set.update_delegated_targets(&read(&format!("1.{role}.json")), &role, "targets").unwrap();
        assert!(set.targets(&role).unwrap().signed.targets.contains_key("pkg/a.txt"));
    }
}
