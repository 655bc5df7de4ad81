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
        if role == "bins" {
            // Classic bins list every key in every role: refused before any key is made.
            let ids = kept.iter().cloned().chain((0..add).map(|_| "0".repeat(64))).collect();
            let probe = SuccinctRoles { keyids: ids, threshold: new_threshold, ..self.succinct().clone() };
            crate::bin_style::checked_delegation(&probe, BTreeMap::new(), self.bin_style)?;
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
            let fresh = new_keys.iter().map(|s| (s.keyid().to_string(), s.public_key().clone())).collect();
            let bins = SuccinctRoles { keyids, threshold: new_threshold, ..self.succinct().clone() };
            self.set_bins_delegation(bins, self.bin_style, fresh)?;
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

    /// Switches the shape of targets' delegation to the bins to `style` in one publish: a new
    /// targets (same bins, keys and threshold; every path stays in its bin) with its snapshot
    /// and timestamp, which a following client takes as an ordinary update. The bins are not
    /// rewritten: both shapes name them alike. `None` when the repository already has `style`.
    pub fn set_bin_style(&mut self, style: BinStyle, pass: Passphrase) -> Result<Option<PublishReport>, Error> {
        if style == self.bin_style {
            return Ok(None);
        }
        let previous = (self.targets.delegations.clone(), self.bin_style);
        self.set_bins_delegation(self.succinct().clone(), style, BTreeMap::new())?;
        match self.publish(pass) {
            Ok(report) => {
                self.write_settings()?;
                Ok(Some(report))
            }
            Err(e) => {
                // Nothing was published (keys are loaded before anything is written).
                self.targets.delegations = previous.0;
                self.bin_style = previous.1;
                self.settings.bin_style = previous.1;
                Err(e)
            }
        }
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

    /// Every publisher job works the same on both shapes, and switching shapes is one publish
    /// of targets, snapshot and timestamp (the bins untouched) that a client verifies: a
    /// client's view (every target, through the trust core) is the model after each step.
    #[test]
    fn every_job_works_on_both_shapes_and_a_switch_is_one_publish() {
        for start in [BinStyle::Prefixes, BinStyle::Succinct] {
            let other = if start == BinStyle::Prefixes { BinStyle::Succinct } else { BinStyle::Prefixes };
            let now = OffsetDateTime::now_utc();
            let d = tempfile::tempdir().unwrap();
            let opts = InitOptions { bins: 8, bin_style: start, ..InitOptions::default() };
            let mut repo = Repository::init(d.path(), &opts, now).unwrap();
            let mut model = BTreeMap::new();
            for (p, tf) in entries().into_iter().take(300) {
                repo.add_target_info(&p, tf.clone()).unwrap();
                model.insert(p, tf);
            }
            repo.publish(&mut no_pass).unwrap();
            let canon = |m: &BTreeMap<String, TargetFile>| packman_tuf::canonical::to_canonical(m).unwrap();
            assert_eq!(canon(&verified_targets(d.path(), now)), canon(&model), "{start}");
            for style in [other, start] {
                let bins_before: Vec<_> = (0..8).map(|b| repo.bin(b).unwrap().version()).collect();
                let report = repo.set_bin_style(style, &mut no_pass).unwrap().expect("a switch publishes");
                let written = &report.metadata_written;
                let kinds: Vec<&str> = written.iter().map(|f| f.split_once('.').map_or(&**f, |(_, k)| k)).collect();
                assert_eq!(kinds, ["targets.json", "snapshot.json", "json"], "{written:?}");
                assert_eq!(written[2], "timestamp.json");
                assert_eq!(bins_before, (0..8).map(|b| repo.bin(b).unwrap().version()).collect::<Vec<_>>());
                assert!(repo.set_bin_style(style, &mut no_pass).unwrap().is_none(), "already {style}");
                assert_eq!(canon(&verified_targets(d.path(), now)), canon(&model), "after switching to {style}");
                // Recorded: in the settings file and in what a reopen reads.
                drop(repo);
                repo = Repository::open(d.path(), None, now).unwrap();
                assert_eq!((repo.bin_style(), repo.settings().bin_style), (style, style));
                let on_disk: Settings = read_json(&d.path().join("packman-repo.json")).unwrap();
                assert_eq!(on_disk.bin_style, style);

                // Add, replace, remove, custom data (yank), bins key rotation, refresh.
                let added = format!("late/{style}.txt");
                let tf = packman_tuf::target::describe(added.as_bytes());
                repo.add_target_info(&added, tf.clone()).unwrap();
                model.insert(added.clone(), tf);
                let gone = model.keys().nth(5).unwrap().clone();
                assert!(repo.remove_target(&gone).unwrap());
                model.remove(&gone);
                let yanked = model.keys().nth(9).unwrap().clone();
                assert!(repo.set_custom(&yanked, |c| c["yanked"] = serde_json::json!(true)).unwrap());
                model.insert(yanked.clone(), repo.target(&yanked).unwrap().unwrap());
                repo.publish(&mut no_pass).unwrap();
                assert_eq!(canon(&verified_targets(d.path(), now)), canon(&model), "jobs on {style}");

                let old_keys = repo.bins_keyids();
                let KeyChange::Published { .. } =
                    repo.change_keys("bins", 1, &old_keys, None, None, &mut no_pass).unwrap()
                else {
                    panic!("bins keys change in one publish")
                };
                let new_keys = repo.bins_keyids();
                assert!(new_keys.len() == 1 && new_keys != old_keys);
                assert_eq!(repo.bin_style(), style, "a key change keeps the shape");
                let del = repo.targets.delegations.clone().unwrap();
                assert_eq!(del.keys.keys().cloned().collect::<Vec<_>>(), new_keys);
                assert!((0..8).all(|b| del.role_keys(&repo.bin_name(b)) == Some((&new_keys[..], 1))));
                assert_eq!(canon(&verified_targets(d.path(), now)), canon(&model), "bins rotated on {style}");
                let done = repo.refresh(time::Duration::days(400), &mut no_pass).unwrap();
                assert!(done.iter().any(|r| r == "targets") && done.iter().any(|r| r.starts_with("bins")), "{done:?}");
                assert_eq!(canon(&verified_targets(d.path(), now)), canon(&model), "refreshed on {style}");
            }
        }
    }

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
        // Classic bins past what clients fetch: refused before anything is written.
        let big = InitOptions { bins: 1 << 15, bin_style: BinStyle::Prefixes, ..InitOptions::default() };
        let Err(e) = Repository::init(other.path(), &big, now) else { panic!("accepted") };
        assert!(
            matches!(e, Error::ClassicTargetsTooLarge { bins: 32768, keys: 1, bytes, limit } if bytes > limit),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0, "nothing written");
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
