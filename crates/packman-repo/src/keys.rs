//! Private key files. Each key lives in its own file outside the published tree
//! (`DIR/keys/` by default): JSON with the public key as TUF writes it and the private key
//! as PKCS#8 PEM, encrypted with a passphrase (PBES2: scrypt + AES-256-CBC, the standard
//! `ENCRYPTED PRIVATE KEY` form openssl reads) or, with a warning, in plain text.
//! Which role a key signs for is decided by the metadata (keyids), not by the file.

use std::path::{Path, PathBuf};

use packman_tuf::crypto::Signer;
use packman_tuf::Key;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::Decode;
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Serialize, Deserialize)]
struct KeyFileJson {
    /// The role the key was made for (informational).
    role: String,
    keyid: String,
    public: Key,
    private: String,
}

pub struct KeyFile {
    pub path: PathBuf,
    pub role: String,
    pub keyid: String,
    pub public: Key,
    pub encrypted: bool,
    private_pem: String,
}

impl KeyFile {
    pub fn read(path: &Path) -> Result<KeyFile, Error> {
        let bad = |reason: String| Error::Key { path: path.to_path_buf(), reason };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let j: KeyFileJson = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a packman key file: {e}")))?;
        let encrypted = j.private.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----");
        Ok(KeyFile {
            path: path.to_path_buf(),
            role: j.role,
            keyid: j.keyid,
            public: j.public,
            encrypted,
            private_pem: j.private,
        })
    }

    /// Decrypts (if needed) and loads the key. `passphrase` is asked for only when the file
    /// is encrypted.
    pub fn signer(&self, passphrase: &mut dyn FnMut(&KeyFile) -> Result<String, Error>) -> Result<Signer, Error> {
        let bad = |reason: String| Error::Key { path: self.path.clone(), reason };
        let der = if self.encrypted {
            let (_, doc) = pkcs8::SecretDocument::from_pem(&self.private_pem).map_err(|e| bad(format!("PEM: {e}")))?;
            let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes()).map_err(|e| bad(format!("DER: {e}")))?;
            let pass = passphrase(self)?;
            enc.decrypt(pass.as_bytes())
                .map_err(|_| bad("wrong passphrase (or a corrupt key file)".into()))?
                .as_bytes()
                .to_vec()
        } else {
            let (_, doc) = pkcs8::SecretDocument::from_pem(&self.private_pem).map_err(|e| bad(format!("PEM: {e}")))?;
            doc.as_bytes().to_vec()
        };
        let signer = match (self.public.keytype.as_str(), self.public.scheme.as_str()) {
            ("ed25519", "ed25519") => Signer::ed25519_from_pkcs8(&der),
            ("ecdsa", "ecdsa-sha2-nistp256") => Signer::ecdsa_p256_from_pkcs8(&der),
            (t, s) => return Err(bad(format!("cannot sign with {t}/{s} keys"))),
        }
        .map_err(|e| bad(e.to_string()))?;
        if signer.keyid() != self.keyid || signer.public_key() != &self.public {
            return Err(bad("private key does not match the public key in the file".into()));
        }
        Ok(signer)
    }
}

/// Key files in one or more directories: new keys go to the first, lookups search all
/// (so offline root keys on removable media join the online ones for one command).
pub struct KeyDir {
    dir: PathBuf,
    more: Vec<PathBuf>,
}

impl KeyDir {
    pub fn new(dir: impl Into<PathBuf>) -> KeyDir {
        KeyDir { dir: dir.into(), more: Vec::new() }
    }

    /// Also look for keys in `dir`.
    pub fn also(mut self, dir: impl Into<PathBuf>) -> KeyDir {
        let d = dir.into();
        if d != self.dir && !self.more.contains(&d) {
            self.more.push(d);
        }
        self
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Every directory searched, in order.
    pub fn dirs(&self) -> Vec<&Path> {
        std::iter::once(self.dir.as_path()).chain(self.more.iter().map(PathBuf::as_path)).collect()
    }

    /// Generates a key for `role` and writes it (mode 0600), encrypted if a passphrase is
    /// given. Online roles (timestamp, snapshot, bins) get ECDSA P-256 keys: they sign large
    /// files often, and P-256 hashes once with SHA-256 (hardware-accelerated on current
    /// CPUs) where Ed25519 hashes twice with SHA-512, which ring runs in portable code on
    /// AMD CPUs; clients verify faster too. Root and targets keys are Ed25519.
    pub fn generate(&self, role: &str, passphrase: Option<&str>) -> Result<Signer, Error> {
        let generated = match role {
            "timestamp" | "snapshot" | "bins" => Signer::generate_ecdsa_p256(),
            _ => Signer::generate_ed25519(),
        };
        let (signer, pkcs8_der) = generated.map_err(|e| Error::Signing { role: role.into(), reason: e.to_string() })?;
        let path = self.dir.join(format!("{role}-{}.key", &signer.keyid()[..12]));
        let bad = |reason: String| Error::Key { path: path.clone(), reason };
        let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8_der).map_err(|e| bad(e.to_string()))?;
        let private = match passphrase {
            Some(p) => info
                .encrypt(pkcs8::rand_core::OsRng, p.as_bytes())
                .map_err(|e| bad(e.to_string()))?
                .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                .map_err(|e| bad(e.to_string()))?
                .to_string(),
            None => pkcs8::SecretDocument::try_from(info)
                .map_err(|e| bad(e.to_string()))?
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| bad(e.to_string()))?
                .to_string(),
        };
        let j = KeyFileJson {
            role: role.into(),
            keyid: signer.keyid().into(),
            public: signer.public_key().clone(),
            private,
        };
        let bytes = serde_json::to_vec_pretty(&j).map_err(|e| bad(e.to_string()))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| crate::io(&self.dir, e))?;
        restrict_dir(&self.dir)?;
        write_private(&path, &bytes)?;
        Ok(signer)
    }

    /// Every key file in the directories (none for a directory that does not exist).
    pub fn list(&self) -> Result<Vec<KeyFile>, Error> {
        let mut out = Vec::new();
        for dir in std::iter::once(&self.dir).chain(&self.more) {
            let rd = match std::fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(crate::io(dir, e)),
            };
            let mut here = Vec::new();
            for e in rd {
                let p = e.map_err(|e| crate::io(dir, e))?.path();
                if p.extension().is_some_and(|x| x == "key") {
                    here.push(KeyFile::read(&p)?);
                }
            }
            here.sort_by(|a, b| a.path.cmp(&b.path));
            out.extend(here);
        }
        Ok(out)
    }

    /// Signers for the given keyids, from the key files present (files for other keys are
    /// ignored: they belong to other roles).
    pub fn signers_for(
        &self,
        keyids: &[String],
        passphrase: &mut dyn FnMut(&KeyFile) -> Result<String, Error>,
    ) -> Result<Vec<Signer>, Error> {
        let mut out = Vec::new();
        for kf in self.list()? {
            if keyids.contains(&kf.keyid) && !out.iter().any(|s: &Signer| s.keyid() == kf.keyid) {
                out.push(kf.signer(passphrase)?);
            }
        }
        Ok(out)
    }
}

fn restrict_dir(dir: &Path) -> Result<(), Error> {
    Ok(packman_fs::restrict_dir(dir)?)
}

/// Writes a key file atomically, readable by its owner only from the moment it exists.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use packman_fs::{Access, DirSync};
    Ok(packman_fs::write_atomic_with(path, bytes, Access::Private, DirSync::Now)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        let d = tempfile::tempdir().unwrap();
        let kd = KeyDir::new(d.path());
        let s = kd.generate("root", Some("correct horse")).unwrap();
        let plain = kd.generate("timestamp", None).unwrap();
        let files = kd.list().unwrap();
        assert_eq!(files.len(), 2);
        let enc = files.iter().find(|f| f.keyid == s.keyid()).unwrap();
        assert!(enc.encrypted);
        assert!(std::fs::read_to_string(&enc.path).unwrap().contains("ENCRYPTED PRIVATE KEY"));
        let err = enc.signer(&mut |_| Ok("wrong".into())).err().unwrap();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        let again = enc.signer(&mut |_| Ok("correct horse".into())).unwrap();
        assert_eq!(again.public_key(), s.public_key());
        // Plain keys never ask.
        let got = kd.signers_for(&[plain.keyid().to_string()], &mut |_| panic!("asked")).unwrap();
        assert_eq!(got.len(), 1);
    }
}
