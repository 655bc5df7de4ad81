//! Key changes and root rotation: new root versions signed by both thresholds, staged until they are.

use super::*;

/// The outcome of a key change.
#[derive(Debug)]
pub enum KeyChange {
    Published {
        root_version: u64,
        report: PublishReport,
    },
    /// Waiting for more root signatures: (valid, threshold) for the current and new root role.
    Staged {
        root_version: u64,
        path: PathBuf,
        old: (usize, u64),
        new: (usize, u64),
    },
}

impl Repository {
    /// Changes the keys of `role`: `add` fresh keys (written to the key directory, encrypted
    /// with `new_passphrase` if given), remove keys by keyid (or unique keyid prefix), and
    /// optionally set the threshold.
    ///
    /// Top-level roles change through a new root version, which must carry the signatures of
    /// both the current and the new root thresholds: with every needed root key at hand it is
    /// published with a new snapshot and timestamp; otherwise it is staged in
    /// `DIR/staged/root.json` for `packman repo sign`. Bins' keys live in top-level targets:
    /// changing them re-signs targets and every bin.
    pub fn change_keys(
        &mut self,
        role: &str,
        add: usize,
        remove: &[String],
        threshold: Option<u64>,
        new_passphrase: Option<&str>,
        pass: Passphrase,
    ) -> Result<KeyChange, Error> {
        if std::path::Path::new(&self.dir).join("staged/root.json").exists() {
            return Err(Error::RootChangeStaged { path: self.dir.join("staged/root.json") });
        }
        let keydir = self.key_dir();
        let current: Vec<String> = match role {
            "bins" => self.succinct().keyids.clone(),
            r if packman_tuf::TopLevelRole::parse(r).is_some() => self.root.roles[r].keyids.clone(),
            r => return Err(Error::UnknownRole { role: r.to_string() }),
        };
        let mut removed = Vec::new();
        for pat in remove {
            let hits: Vec<&String> = current.iter().filter(|k| k.starts_with(pat.as_str())).collect();
            match hits.as_slice() {
                [one] => removed.push((*one).clone()),
                [] => return Err(Error::NoSuchKey { role: role.into(), pattern: pat.clone() }),
                _ => return Err(Error::AmbiguousKey { role: role.into(), pattern: pat.clone() }),
            }
        }
        let kept: Vec<String> = current.iter().filter(|k| !removed.contains(k)).cloned().collect();
        let old_threshold = match role {
            "bins" => self.succinct().threshold,
            r => self.root.roles[r].threshold,
        };
        let new_threshold = threshold.unwrap_or(old_threshold);
        let total = kept.len() + add;
        if new_threshold < 1 || new_threshold as usize > total {
            return Err(Error::UnmeetableThreshold { role: role.into(), threshold: new_threshold, keys: total });
        }
        // Every check passed: only now generate keys (files outside the published tree).
        // New root keys go where --keys points (offline media); online roles' keys go to the
        // repository's own key directory, where unattended refreshes will look for them.
        let gen_dir = if role == "root" { keydir } else { KeyDir::new(resolve(&self.dir, &self.settings.keys)) };
        let mut new_keys = Vec::new();
        for _ in 0..add {
            new_keys.push(gen_dir.generate(role, new_passphrase)?);
        }
        let keyids: Vec<String> = kept.iter().cloned().chain(new_keys.iter().map(|s| s.keyid().to_string())).collect();
        if role == "bins" {
            let targets_signers = self.role_signers("targets", pass)?;
            drop(targets_signers); // loaded to fail early; publish() loads them again
            let d = self.targets.delegations.as_mut().expect("bins are delegated");
            for s in &new_keys {
                d.keys.insert(s.keyid().to_string(), s.public_key().clone());
            }
            d.keys.retain(|k, _| keyids.contains(k));
            let sr = d.succinct_roles.as_mut().expect("succinct");
            sr.keyids = keyids;
            sr.threshold = new_threshold;
            self.targets_dirty = true;
            for b in 0..self.bin_count() {
                self.bin_mut(b)?;
            }
            let report = self.publish(pass)?;
            return Ok(KeyChange::Published { root_version: self.root.version, report });
        }
        let mut new_root = self.root.clone();
        new_root.version += 1;
        new_root.expires = expiry(self.now, self.settings.expiry_days.root);
        for s in &new_keys {
            new_root.keys.insert(s.keyid().to_string(), s.public_key().clone());
        }
        let r = new_root.roles.get_mut(role).expect("top-level role");
        r.keyids = keyids;
        r.threshold = new_threshold;
        let used: BTreeSet<String> = new_root.roles.values().flat_map(|r| r.keyids.iter().cloned()).collect();
        new_root.keys.retain(|k, _| used.contains(k));
        let staged = Envelope { signed: new_root, signatures: Vec::new() };
        self.sign_and_try_root(staged, None, pass)
    }

    /// Adds signatures to the staged root from the key directory (or one key file) and
    /// publishes it once both thresholds are met.
    pub fn sign_staged_root(&mut self, key_file: Option<&Path>, pass: Passphrase) -> Result<KeyChange, Error> {
        let path = self.dir.join("staged/root.json");
        if !path.exists() {
            return Err(Error::NothingStaged { path });
        }
        let staged: Envelope<Root> = read_json(&path)?;
        if staged.signed.version != self.root.version + 1 {
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "stages root v{} but the published root is v{}",
                    staged.signed.version, self.root.version
                ),
            });
        }
        self.sign_and_try_root(staged, key_file, pass)
    }

    pub(super) fn sign_and_try_root(
        &mut self,
        mut staged: Envelope<Root>,
        key_file: Option<&Path>,
        pass: Passphrase,
    ) -> Result<KeyChange, Error> {
        let old_ids = self.root.roles["root"].keyids.clone();
        let new_ids = staged.signed.roles["root"].keyids.clone();
        let all: Vec<String> =
            old_ids.iter().chain(new_ids.iter()).cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let signers = match key_file {
            Some(f) => {
                let kf = KeyFile::read(f)?;
                if !all.contains(&kf.keyid) {
                    return Err(Error::Key {
                        path: f.into(),
                        reason: format!("key {} is not a key of the current or the new root role", &kf.keyid[..12]),
                    });
                }
                vec![kf.signer(pass)?]
            }
            None => self.key_dir().signers_for(&all, pass)?,
        };
        let canon = packman_tuf::canonical::to_canonical(&staged.signed)
            .map_err(|e| Error::Signing { role: "root".into(), reason: e.to_string() })?;
        for s in &signers {
            let sig = s.sign(&canon).map_err(|e| Error::Signing { role: "root".into(), reason: e.to_string() })?;
            staged.signatures.retain(|x| x.keyid != sig.keyid);
            staged.signatures.push(sig);
        }
        staged.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
        // Counted as every client counts it: distinct keys, not keyids.
        let count = |ids: &[String], keys: &BTreeMap<String, packman_tuf::Key>| {
            packman_tuf::count_signers(&canon, &staged.signatures, keys, ids)
        };
        let old = (count(&old_ids, &self.root.keys), self.root.roles["root"].threshold);
        let new = (count(&new_ids, &staged.signed.keys), staged.signed.roles["root"].threshold);
        let json = serde_json::to_vec(&staged.signed)
            .map_err(|e| Error::Signing { role: "root".into(), reason: e.to_string() })?;
        let bytes = crate::envelope_bytes(&json, &staged.signatures)?;
        if (old.0 as u64) < old.1 || (new.0 as u64) < new.1 {
            let p = self.dir.join("staged/root.json");
            write_atomic(&p, &bytes)?;
            return Ok(KeyChange::Staged { root_version: staged.signed.version, path: p, old, new });
        }
        // Publish: the new root first, then everything its key changes require.
        let previous = std::mem::replace(&mut self.root, staged.signed);
        if previous.roles["targets"] != self.root.roles["targets"] {
            self.targets_dirty = true;
        }
        self.pending_root = Some(bytes);
        match self.publish(pass) {
            Ok(report) => Ok(KeyChange::Published { root_version: self.root.version, report }),
            Err(e) => {
                // Nothing was written (keys are loaded first): keep the signed root staged.
                if let Some(bytes) = self.pending_root.take() {
                    let _ = write_atomic(&self.dir.join("staged/root.json"), &bytes);
                }
                self.root = previous;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::testkit::*;

    /// Refused commands name what was wrong in a typed error, and change nothing.
    #[test]
    fn refusals_are_typed() {
        let (now, d, _src, mut repo) = four_bin_repo(Durability::detect());
        let err = |r: Result<KeyChange, Error>| r.unwrap_err();
        assert!(matches!(
            err(repo.change_keys("mirror", 1, &[], None, None, &mut no_pass)),
            Error::UnknownRole { role } if role == "mirror"
        ));
        assert!(matches!(
            err(repo.change_keys("timestamp", 0, &["deadbeef".into()], None, None, &mut no_pass)),
            Error::NoSuchKey { role, pattern } if role == "timestamp" && pattern == "deadbeef"
        ));
        assert!(matches!(
            err(repo.change_keys("timestamp", 0, &[], Some(3), None, &mut no_pass)),
            Error::UnmeetableThreshold { role, threshold: 3, keys: 1 } if role == "timestamp"
        ));
        // A root change waiting for signatures (only its presence counts here).
        let staged = d.path().join("staged/root.json");
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::fs::write(&staged, b"{}").unwrap();
        assert!(matches!(
            err(repo.change_keys("targets", 1, &[], None, None, &mut no_pass)),
            Error::RootChangeStaged { path } if path == staged
        ));
        std::fs::remove_file(&staged).unwrap();
        assert!(
            matches!(err(repo.sign_staged_root(None, &mut no_pass)), Error::NothingStaged { path } if path == staged)
        );
        drop(repo);
        let opts = InitOptions { bins: 4, ..InitOptions::default() };
        assert!(matches!(Repository::init(d.path(), &opts, now), Err(Error::AlreadyARepository { .. })));
        let other = tempfile::tempdir().unwrap();
        let bad = InitOptions { bins: 10, ..InitOptions::default() };
        assert!(matches!(Repository::init(other.path(), &bad, now), Err(Error::BinCount { bins: 10 })));
        let bad = InitOptions { root_keys: 2, root_threshold: 3, ..InitOptions::default() };
        assert!(matches!(
            Repository::init(other.path(), &bad, now),
            Err(Error::RootThreshold { threshold: 3, keys: 2 })
        ));
        assert!(
            matches!(Repository::open(other.path(), None, now), Err(Error::NotARepository { dir }) if dir == other.path())
        );
        for (path, reason) in [
            ("", "must be 1 to 1024 bytes"),
            ("/abs", "must be relative, with '/' separators"),
            ("a/../b", "has an empty, '.' or '..' segment"),
        ] {
            let e = check_target_path(path).unwrap_err();
            assert!(matches!(&e, Error::TargetPath { path: p, reason: r } if p == path && *r == reason), "{e}");
            assert_eq!(e.to_string(), format!("target path {path:?} {reason}"));
        }
    }
}
