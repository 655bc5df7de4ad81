//! Signing keys: the signer cache, each role's keyids and threshold, and the signers loaded for it.

use super::*;

/// Signers for the plaintext key files of the online roles in `key_dir` (in its search
/// order). Errors are left for the publish, which loads what it still needs and reports
/// what it cannot.
pub(super) fn plaintext_online_signers(key_dir: &KeyDir) -> Vec<Signer> {
    let online = ["targets", "bins", "snapshot", "timestamp"];
    let files = key_dir.list().unwrap_or_default();
    let wanted = files.iter().filter(|k| !k.encrypted && online.contains(&k.role.as_str()));
    wanted.filter_map(|k| k.signer(&mut |k| Err(Error::NoPassphrase { path: k.path.clone() })).ok()).collect()
}

impl Repository {
    pub(super) fn with_signers(mut self, signers: Vec<Signer>) -> Repository {
        for signer in signers {
            self.signer_cache.entry(signer.keyid().to_string()).or_insert_with(|| Rc::new(signer));
        }
        self
    }

    pub(super) fn signers(
        &mut self,
        role: &str,
        keyids: &[String],
        threshold: u64,
        pass: Passphrase,
    ) -> Result<Vec<Rc<Signer>>, Error> {
        let kd = self.key_dir();
        let wanted: Vec<String> = keyids.iter().filter(|k| !self.signer_cache.contains_key(*k)).cloned().collect();
        if !wanted.is_empty() {
            for signer in kd.signers_for(&wanted, pass)? {
                self.signer_cache.insert(signer.keyid().to_string(), Rc::new(signer));
            }
        }
        let s: Vec<Rc<Signer>> = keyids.iter().filter_map(|k| self.signer_cache.get(k).cloned()).collect();
        if (s.len() as u64) < threshold {
            let missing: Vec<String> = keyids
                .iter()
                .filter(|k| !s.iter().any(|x| x.keyid() == k.as_str()))
                .map(|k| k[..k.len().min(12)].to_string())
                .collect();
            return Err(Error::MissingKeys {
                role: role.into(),
                have: s.len(),
                threshold,
                missing: missing.join(", "),
                searched: kd.dirs().iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(s)
    }

    /// Loads the signers for `keyids` that key files exist for (missing ones are reported
    /// by [`Repository::signers`], per role).
    pub(super) fn preload_signers(&mut self, keyids: &[String], pass: Passphrase) -> Result<(), Error> {
        let wanted: Vec<String> = keyids.iter().filter(|k| !self.signer_cache.contains_key(*k)).cloned().collect();
        if !wanted.is_empty() {
            for signer in self.key_dir().signers_for(&wanted, pass)? {
                self.signer_cache.insert(signer.keyid().to_string(), Rc::new(signer));
            }
        }
        Ok(())
    }

    /// The keyids and threshold of `role` (a top-level role, or "bins").
    pub(super) fn role_keys(&self, role: &str) -> Result<(Vec<String>, u64), Error> {
        match role {
            "bins" => {
                let s = self.succinct();
                Ok((s.keyids.clone(), s.threshold))
            }
            r => {
                let rk = self.root.roles.get(r).ok_or_else(|| Error::NoRole(r.into()))?;
                Ok((rk.keyids.clone(), rk.threshold))
            }
        }
    }

    pub(super) fn role_signers(&mut self, role: &str, pass: Passphrase) -> Result<Vec<Rc<Signer>>, Error> {
        let (ids, threshold) = self.role_keys(role)?;
        self.signers(role, &ids, threshold, pass)
    }
}
