//! One malicious repository for the tests of every surface (`packman download`, `mirror
//! sync`, the proxy through pip and uv, `install`).
//!
//! [`Upstream`] is a real signed repository (succinct hashed bins, simple pages, real wheels)
//! served on 127.0.0.1 by packman-testkit's [`TestServer`], published in three states:
//! - **S1**: project `alpha`;
//! - **S2**: the timestamp key rotated (root version 2; the old key is now revoked) and
//!   project `beta` added, then published once more (so an older timestamp signed by the
//!   current key exists to replay). Each surface first trusts the repository at S2.
//! - **S3** ([`Upstream::advance`]): project `gamma` added. Then [`Upstream::arm`] makes the
//!   server perform one [`Attack`] on top of S3, and the surface is asked for `gamma`.
//!
//! Each attack says which words its refusal must contain on any surface ([`Attack::expect`]):
//! every surface reaches the same trust core, so every surface names the attack the same way.
//! Some attacks legitimately leave one verified file behind (a validly signed timestamp is
//! persisted before the snapshot it names is refused, spec 5.4.5): [`Armed::persisted`].
//!
//! The binary `packman-attack-server` serves an [`Upstream`] for tests in other languages
//! (pytest driving pip, uv and `packman install`), controlled through its stdin.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use packman_index::FileEntry;
use packman_repo::{sign_metadata, RepoBuilder};
use packman_testkit::{Behavior, TestServer};
use packman_tuf::crypto::Signer;
use packman_tuf::{layout, Expires, MetaFile, OffsetDateTime};

/// The attacks of TUF's threat model (spec 1.5.2) and packman's own (a rewritten page), as
/// a malicious repository or mirror performs them on a client that trusts S2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// `gamma`'s wheel is served with other bytes of the same length.
    TamperedTarget,
    /// `gamma`'s wheel is swapped and its simple pages rewritten to the new hash and size
    /// (what pip and uv alone accept).
    PageRewritten,
    /// An older timestamp, signed by the current key, is replayed.
    RollbackTimestamp,
    /// A validly signed new timestamp names snapshot version 1.
    RollbackSnapshot,
    /// A validly signed new timestamp and snapshot list a hashed bin at a lower version.
    RollbackBin,
    /// A validly signed new timestamp and snapshot list `targets.json` at a lower version.
    RollbackTargets,
    /// `3.root.json` holds the genuine root version 2 again.
    RollbackRoot,
    /// A validly signed new timestamp that has expired (freeze).
    Freeze,
    /// S3's genuine timestamp, with another validly signed snapshot of the version it names.
    MixAndMatch,
    /// `timestamp.json` never ends.
    EndlessData,
    /// S3's snapshot never ends.
    EndlessSnapshot,
    /// `gamma`'s wheel never ends.
    EndlessTarget,
    /// `timestamp.json` drips a byte every 250 ms.
    SlowRetrieval,
    /// A new timestamp with no signatures.
    ThresholdNotMet,
    /// A new timestamp signed by a key the root never listed.
    ForgedKey,
    /// A new timestamp signed by the key root version 2 replaced.
    RevokedKey,
    /// `3.root.json` holds root version 4 (a gap in the root chain).
    RootGap,
    /// `3.root.json` replaces every key, signed only by the new ones (no signed rotation).
    RootWithoutRotation,
    /// One compromised bin key: `gamma`'s wheel is moved to a bin whose hash range does not
    /// cover its path (a new, validly signed publish). Clients never look for it there, so
    /// it cannot be installed; a mirror keeps the signed metadata but never fetches it.
    BinOutsideDelegation,
    /// A fast-forward: a validly signed timestamp (the attacker holds the timestamp key) one
    /// thousand versions ahead. A client accepts it; [`Upstream::recover`] then rotates the
    /// timestamp key and publishes at a lower version, which a client must accept.
    FastForward,
}

impl Attack {
    pub const ALL: [Attack; 20] = [
        Attack::TamperedTarget,
        Attack::PageRewritten,
        Attack::RollbackTimestamp,
        Attack::RollbackSnapshot,
        Attack::RollbackBin,
        Attack::RollbackTargets,
        Attack::RollbackRoot,
        Attack::Freeze,
        Attack::MixAndMatch,
        Attack::EndlessData,
        Attack::EndlessSnapshot,
        Attack::EndlessTarget,
        Attack::SlowRetrieval,
        Attack::ThresholdNotMet,
        Attack::ForgedKey,
        Attack::RevokedKey,
        Attack::RootGap,
        Attack::RootWithoutRotation,
        Attack::BinOutsideDelegation,
        Attack::FastForward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::TamperedTarget => "tampered-target",
            Attack::PageRewritten => "page-rewritten",
            Attack::RollbackTimestamp => "rollback-timestamp",
            Attack::RollbackSnapshot => "rollback-snapshot",
            Attack::RollbackBin => "rollback-bin",
            Attack::RollbackTargets => "rollback-targets",
            Attack::RollbackRoot => "rollback-root",
            Attack::Freeze => "freeze",
            Attack::MixAndMatch => "mix-and-match",
            Attack::EndlessData => "endless-data",
            Attack::EndlessSnapshot => "endless-snapshot",
            Attack::EndlessTarget => "endless-target",
            Attack::SlowRetrieval => "slow-retrieval",
            Attack::ThresholdNotMet => "threshold-not-met",
            Attack::ForgedKey => "forged-key",
            Attack::RevokedKey => "revoked-key",
            Attack::RootGap => "root-gap",
            Attack::RootWithoutRotation => "root-without-rotation",
            Attack::BinOutsideDelegation => "bin-outside-delegation",
            Attack::FastForward => "fast-forward",
        }
    }

    pub fn from_name(s: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.name() == s)
    }

    /// What any surface's refusal must say: every group must have one of its words in it.
    pub fn expect(self) -> &'static [&'static [&'static str]] {
        const HASH_OR_LENGTH: &[&str] = &["the signed hash is", "signed length"];
        match self {
            Attack::TamperedTarget => &[&["the signed hash is"]],
            Attack::PageRewritten => &[HASH_OR_LENGTH],
            Attack::RollbackTimestamp => &[&["timestamp: rollback refused"]],
            Attack::RollbackSnapshot => &[&["snapshot: rollback refused"]],
            Attack::RollbackBin => &[&["rollback refused"], &["bins-"]],
            Attack::RollbackTargets => &[&["targets: rollback refused"]],
            Attack::RollbackRoot => &[&["root: version 2 where version 3 is required"]],
            Attack::Freeze => &[&["timestamp: expired at"]],
            Attack::MixAndMatch => &[&["snapshot"], HASH_OR_LENGTH],
            Attack::EndlessData => &[&["endless data attack"]],
            Attack::EndlessSnapshot => &[&["snapshot.json"], &["endless data attack"]],
            Attack::EndlessTarget => &[&["longer than the signed length"]],
            Attack::SlowRetrieval => &[&["slow retrieval attack"]],
            Attack::ThresholdNotMet | Attack::ForgedKey | Attack::RevokedKey => {
                &[&["timestamp: signatures from 0 of the required 1 keys (threshold not met)"]]
            }
            Attack::RootGap => &[&["root: version 4 where version 3 is required"]],
            Attack::RootWithoutRotation => &[&["root: signatures from", "threshold not met"]],
            Attack::BinOutsideDelegation => {
                &[&["packages/gamma/gamma-1.0-py3-none-any.whl"], &["has no", "not listed", "not in"]]
            }
            // Not refused: validly signed. What counts is the recovery (`Upstream::recover`).
            Attack::FastForward => &[],
        }
    }

    /// Whether `text` (a surface's error output) names this attack as [`Attack::expect`] says.
    pub fn named_in(self, text: &str) -> bool {
        self.expect().iter().all(|group| group.iter().any(|w| text.contains(w)))
    }
}

/// What arming an attack left for the test to check.
#[derive(Debug, Default)]
pub struct Armed {
    /// The metadata file a client may persist while refusing (name and exact bytes), when
    /// the attack reaches its check through a validly signed timestamp.
    pub persisted: Option<(String, Vec<u8>)>,
    /// The attack is on a target: a client may first take the repository's genuine new
    /// metadata (S3), verified, before refusing the target.
    pub genuine_metadata_advances: bool,
    /// The bin that lists a path outside its delegation ([`Attack::BinOutsideDelegation`]).
    pub misplaced: Option<String>,
}

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(e: impl std::fmt::Display) -> Error {
    Error(e.to_string())
}

/// A project's wheel as the repository holds it.
struct Wheel {
    project: String,
    file: String,
    bytes: Vec<u8>,
}

/// The project whose fetch each attack targets.
pub const ATTACKED: &str = "gamma";

/// The project published by [`Upstream::recover`].
pub const RECOVERED: &str = "delta";

/// A signed repository on 127.0.0.1, able to perform each [`Attack`].
pub struct Upstream {
    pub repo: RepoBuilder,
    dir: PathBuf,
    pub server: TestServer,
    wheels: Vec<Wheel>,
    old_timestamp: Vec<u8>,
    revoked: Signer,
}

fn sha256(b: &[u8]) -> String {
    packman_tuf::target::describe(b).hashes.get("sha256").unwrap_or_default().to_string()
}

fn key_err(e: impl std::fmt::Display) -> Error {
    Error(format!("generating a key: {e}"))
}

impl Upstream {
    /// Publishes S1 and S2 into `dir` (created) and serves it.
    pub fn new(dir: &Path) -> Result<Upstream, Error> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let repo = RepoBuilder::new(OffsetDateTime::now_utc()).map_err(err)?.with_succinct_bins(2).map_err(err)?;
        let server = TestServer::serve_dir(dir).map_err(err)?;
        let (placeholder, _) = Signer::generate_ed25519().map_err(key_err)?;
        let mut up = Upstream {
            repo,
            dir: dir.to_path_buf(),
            server,
            wheels: Vec::new(),
            old_timestamp: Vec::new(),
            revoked: placeholder,
        };
        up.add_project("alpha")?;
        up.repo.publish(dir).map_err(err)?;
        // Rotating replaces the timestamp signer: keep the old one, now revoked.
        let mut old = up.repo.signers.remove("timestamp").unwrap_or_default();
        up.repo.rotate_key("timestamp").map_err(err)?;
        up.revoked = old.pop().ok_or_else(|| Error("no timestamp signer".into()))?;
        up.add_project("beta")?;
        // targets.json re-signed too (version 2), so that it can be rolled back.
        up.repo.targets_mut("targets").map_err(err)?;
        up.repo.publish(dir).map_err(err)?;
        // An older timestamp under the current key, to replay; then S2 proper.
        up.old_timestamp = std::fs::read(up.metadata_path(layout::TIMESTAMP_FILE)).map_err(err)?;
        up.repo.publish(dir).map_err(err)?;
        Ok(up)
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first root, which a surface is told to trust.
    pub fn first_root(&self) -> &[u8] {
        &self.repo.signed_roots[0]
    }

    fn metadata_path(&self, name: &str) -> PathBuf {
        self.dir.join(layout::METADATA_DIR).join(name)
    }

    /// Publishes S3: project [`ATTACKED`] added.
    pub fn advance(&mut self) -> Result<(), Error> {
        self.add_project(ATTACKED)?;
        self.repo.publish(&self.dir.clone()).map_err(err)
    }

    /// A real wheel for `project` 1.0, its pages and the index pages.
    fn add_project(&mut self, project: &str) -> Result<(), Error> {
        let (file, bytes) = wheel(project, "1.0", &format!("VERSION = \"1.0\"\nNAME = {project:?}\n"));
        self.repo.add_target(&layout::package_target(project, &file), &bytes).map_err(err)?;
        self.wheels.push(Wheel { project: project.into(), file: file.clone(), bytes: bytes.clone() });
        self.put_pages(project, &file, &bytes)?;
        let names: Vec<String> = self.wheels.iter().map(|w| w.project.clone()).collect();
        self.repo.add_target(&layout::simple_page(None, true), &packman_index::index_json(&names)).map_err(err)?;
        self.repo.add_target(&layout::simple_page(None, false), &packman_index::index_html(&names)).map_err(err)?;
        Ok(())
    }

    fn pages(project: &str, file: &str, bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let entry = FileEntry {
            filename: file.into(),
            url: layout::page_link_to_package(project, file),
            sha256: sha256(bytes),
            size: bytes.len() as u64,
            upload_time: None,
            requires_python: Some(">=3.8".into()),
            yanked: None,
            core_metadata_sha256: None,
        };
        let json = packman_index::project_json(project, std::slice::from_ref(&entry));
        let html = packman_index::project_html(project, &[entry]);
        (json, html)
    }

    fn put_pages(&mut self, project: &str, file: &str, bytes: &[u8]) -> Result<(), Error> {
        let (json, html) = Self::pages(project, file, bytes);
        self.repo.add_target(&layout::simple_page(Some(project), true), &json).map_err(err)?;
        self.repo.add_target(&layout::simple_page(Some(project), false), &html).map_err(err)?;
        Ok(())
    }

    /// The URL path a client fetches `target` from (consistent snapshots: hash-prefixed).
    fn target_url_path(&self, target: &str) -> Result<String, Error> {
        let data = self.repo.target_data.get(target).ok_or_else(|| Error(format!("no target {target}")))?;
        let (dir, file) = target.rsplit_once('/').ok_or_else(|| Error(format!("no directory in {target}")))?;
        Ok(format!("/{}/{dir}/{}.{file}", layout::TARGETS_DIR, sha256(data)))
    }

    fn metadata_url_path(name: &str) -> String {
        format!("/{}/{name}", layout::METADATA_DIR)
    }

    fn attacked_wheel(&self) -> Result<&Wheel, Error> {
        self.wheels.iter().find(|w| w.project == ATTACKED).ok_or_else(|| Error("call advance() first".into()))
    }

    /// A timestamp one version past S3's, as `edit` bends it, signed by `signer`.
    fn forged_timestamp(
        &self,
        signer: Option<&Signer>,
        edit: impl FnOnce(&mut packman_tuf::Timestamp),
    ) -> Result<Vec<u8>, Error> {
        let mut ts = self.repo.timestamp.clone();
        ts.version += 1;
        edit(&mut ts);
        let signers: Vec<&Signer> = signer.into_iter().collect();
        sign_metadata(&ts, &signers).map_err(err)
    }

    fn timestamp_signer(&self) -> &Signer {
        &self.repo.signers["timestamp"][0]
    }

    /// Makes the server perform `attack` from now on (on top of S3: call
    /// [`Upstream::advance`] first).
    pub fn arm(&mut self, attack: Attack) -> Result<Armed, Error> {
        self.server.reset();
        let ts_path = Self::metadata_url_path(layout::TIMESTAMP_FILE);
        let mut armed = Armed {
            genuine_metadata_advances: matches!(
                attack,
                Attack::TamperedTarget | Attack::PageRewritten | Attack::BinOutsideDelegation | Attack::EndlessTarget
            ),
            ..Armed::default()
        };
        let w = self.attacked_wheel()?;
        let wheel_target = layout::package_target(&w.project, &w.file);
        match attack {
            Attack::TamperedTarget => {
                let mut b = w.bytes.clone();
                let mid = b.len() / 2;
                b[mid] ^= 0xff;
                self.server.set(&self.target_url_path(&wheel_target)?, Behavior::Body(b));
            }
            Attack::PageRewritten => {
                let (_, evil) = wheel(ATTACKED, "1.0", "import os\nVERSION = \"evil\"\n");
                let (json, html) = Self::pages(ATTACKED, &w.file, &evil);
                self.server.set(&self.target_url_path(&wheel_target)?, Behavior::Body(evil));
                let json_path = self.target_url_path(&layout::simple_page(Some(ATTACKED), true))?;
                let html_path = self.target_url_path(&layout::simple_page(Some(ATTACKED), false))?;
                self.server.set(&json_path, Behavior::Body(json));
                self.server.set(&html_path, Behavior::Body(html));
            }
            Attack::RollbackTimestamp => self.server.set(&ts_path, Behavior::Body(self.old_timestamp.clone())),
            Attack::RollbackSnapshot => {
                let ts = self.forged_timestamp(Some(self.timestamp_signer()), |t| {
                    t.meta.insert(layout::meta_key("snapshot"), MetaFile::new(1));
                })?;
                self.server.set(&ts_path, Behavior::Body(ts));
            }
            Attack::RollbackBin | Attack::RollbackTargets => {
                // The bin `beta` went into, and targets.json, have version 2 since S2; list
                // one at version 1.
                let role = match attack {
                    Attack::RollbackBin => self.repo.role_for(&layout::package_target("beta", &self.wheels[1].file)),
                    _ => "targets".to_string(),
                };
                let mut snap = self.repo.snapshot.clone();
                snap.version += 1;
                snap.meta.insert(layout::meta_key(&role), MetaFile::new(1));
                let snap_bytes =
                    sign_metadata(&snap, &self.repo.signers["snapshot"].iter().collect::<Vec<_>>()).map_err(err)?;
                let snap_name = layout::metadata_file("snapshot", Some(snap.version));
                let ts = self.forged_timestamp(Some(self.timestamp_signer()), |t| {
                    let mut m = MetaFile::new(snap.version);
                    m.length = Some(snap_bytes.len() as u64);
                    m.hashes = packman_tuf::target::describe_meta(0, [snap_bytes.as_slice()]).hashes;
                    t.meta.insert(layout::meta_key("snapshot"), m);
                })?;
                self.server.set(&Self::metadata_url_path(&snap_name), Behavior::Body(snap_bytes));
                self.server.set(&ts_path, Behavior::Body(ts.clone()));
                armed.persisted = Some((layout::TIMESTAMP_FILE.into(), ts));
            }
            Attack::Freeze => {
                let past = OffsetDateTime::now_utc() - Duration::from_secs(3600);
                let ts = self.forged_timestamp(Some(self.timestamp_signer()), |t| {
                    t.expires = Expires(past.replace_nanosecond(0).expect("0 ns is valid"));
                })?;
                self.server.set(&ts_path, Behavior::Body(ts));
            }
            Attack::MixAndMatch => {
                // Same version, other (validly signed) content.
                let mut snap = self.repo.snapshot.clone();
                snap.expires = Expires(snap.expires.0 - Duration::from_secs(1));
                let bytes =
                    sign_metadata(&snap, &self.repo.signers["snapshot"].iter().collect::<Vec<_>>()).map_err(err)?;
                let name = layout::metadata_file("snapshot", Some(snap.version));
                self.server.set(&Self::metadata_url_path(&name), Behavior::Body(bytes));
                let genuine = std::fs::read(self.metadata_path(layout::TIMESTAMP_FILE)).map_err(err)?;
                armed.persisted = Some((layout::TIMESTAMP_FILE.into(), genuine));
            }
            Attack::EndlessData => self.server.set(&ts_path, Behavior::Endless),
            Attack::EndlessSnapshot => {
                let name = layout::metadata_file("snapshot", Some(self.repo.snapshot.version));
                self.server.set(&Self::metadata_url_path(&name), Behavior::Endless);
                let genuine = std::fs::read(self.metadata_path(layout::TIMESTAMP_FILE)).map_err(err)?;
                armed.persisted = Some((layout::TIMESTAMP_FILE.into(), genuine));
            }
            Attack::EndlessTarget => self.server.set(&self.target_url_path(&wheel_target)?, Behavior::Endless),
            Attack::SlowRetrieval => self.server.set(&ts_path, Behavior::Drip(Duration::from_millis(250))),
            Attack::ThresholdNotMet => {
                let ts = self.forged_timestamp(None, |_| {})?;
                self.server.set(&ts_path, Behavior::Body(ts));
            }
            Attack::ForgedKey => {
                let (stranger, _) = Signer::generate_ed25519().map_err(key_err)?;
                let ts = self.forged_timestamp(Some(&stranger), |_| {})?;
                self.server.set(&ts_path, Behavior::Body(ts));
            }
            Attack::RevokedKey => {
                let ts = self.forged_timestamp(Some(&self.revoked), |_| {})?;
                self.server.set(&ts_path, Behavior::Body(ts));
            }
            Attack::RollbackRoot => {
                let name = layout::metadata_file("root", Some(self.repo.root.version + 1));
                let older = self.repo.signed_roots[self.repo.signed_roots.len() - 1].clone();
                self.server.set(&Self::metadata_url_path(&name), Behavior::Body(older));
            }
            Attack::RootGap => {
                let mut root = self.repo.root.clone();
                root.version += 2;
                let bytes = sign_metadata(&root, &self.repo.signers["root"].iter().collect::<Vec<_>>()).map_err(err)?;
                let name = layout::metadata_file("root", Some(self.repo.root.version + 1));
                self.server.set(&Self::metadata_url_path(&name), Behavior::Body(bytes));
            }
            Attack::BinOutsideDelegation => {
                let right = self.repo.role_for(&wheel_target);
                let wrong = self
                    .repo
                    .delegated
                    .keys()
                    .find(|b| **b != right)
                    .cloned()
                    .ok_or_else(|| Error("only one bin".into()))?;
                let tf = self
                    .repo
                    .targets_mut(&right)
                    .map_err(err)?
                    .targets
                    .remove(&wheel_target)
                    .ok_or_else(|| Error(format!("{wheel_target} not in {right}")))?;
                self.repo.targets_mut(&wrong).map_err(err)?.targets.insert(wheel_target, tf);
                self.repo.publish(&self.dir.clone()).map_err(err)?;
                armed.misplaced = Some(wrong);
            }
            Attack::FastForward => {
                let ts = self.forged_timestamp(Some(self.timestamp_signer()), |t| t.version += 999)?;
                self.server.set(&ts_path, Behavior::Body(ts.clone()));
                armed.persisted = Some((layout::TIMESTAMP_FILE.into(), ts));
            }
            Attack::RootWithoutRotation => {
                let mut root = self.repo.root.clone();
                root.version += 1;
                let (s, _) = Signer::generate_ed25519().map_err(key_err)?;
                root.keys.clear();
                root.keys.insert(s.keyid().to_string(), s.public_key().clone());
                for r in root.roles.values_mut() {
                    r.keyids = vec![s.keyid().to_string()];
                }
                let bytes = sign_metadata(&root, &[&s]).map_err(err)?;
                let name = layout::metadata_file("root", Some(root.version));
                self.server.set(&Self::metadata_url_path(&name), Behavior::Body(bytes));
            }
        }
        Ok(armed)
    }

    /// After a fast-forward: the repository rotates its timestamp key (a new root version),
    /// adds project [`RECOVERED`] and publishes, at a timestamp version below the attacker's,
    /// and serves that.
    pub fn recover(&mut self) -> Result<(), Error> {
        self.repo.rotate_key("timestamp").map_err(err)?;
        self.add_project(RECOVERED)?;
        self.repo.publish(&self.dir.clone()).map_err(err)?;
        self.server.reset();
        Ok(())
    }

    /// Serves the genuine repository again.
    pub fn disarm(&self) {
        self.server.reset();
    }
}

/// A pure-Python wheel `{project}-{version}-py3-none-any.whl` (module `{project}` holding
/// `payload`) with a valid RECORD: its file name and bytes.
pub fn wheel(project: &str, version: &str, payload: &str) -> (String, Vec<u8>) {
    let dist = project.replace('-', "_");
    let tag = "py3-none-any";
    let file = format!("{dist}-{version}-{tag}.whl");
    let di = format!("{dist}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {project}\nVersion: {version}\nRequires-Python: >=3.8\n\n");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("{dist}/__init__.py"), payload.as_bytes().to_vec()),
        (format!("{di}/METADATA"), metadata.into_bytes()),
        (
            format!("{di}/WHEEL"),
            format!("Wheel-Version: 1.0\nGenerator: packman-attacks\nRoot-Is-Purelib: true\nTag: {tag}\n").into_bytes(),
        ),
    ];
    let mut record = String::new();
    for (n, b) in &files {
        let digest = ring::digest::digest(&ring::digest::SHA256, b);
        let b64 = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(digest.as_ref());
        record.push_str(&format!("{n},sha256={b64},{}\n", b.len()));
    }
    record.push_str(&format!("{di}/RECORD,,\n"));
    files.push((format!("{di}/RECORD"), record.into_bytes()));
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (n, b) in files {
        z.start_file(n, opts).expect("zip entry in memory");
        z.write_all(&b).expect("zip write in memory");
    }
    let bytes = z.finish().expect("zip in memory").into_inner();
    (file, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_each_attack_has_words() {
        for a in Attack::ALL {
            assert_eq!(Attack::from_name(a.name()), Some(a));
            if a != Attack::FastForward {
                assert!(!a.expect().is_empty());
                assert!(!a.named_in(""), "{a:?} must not be named by an empty message");
            }
        }
        assert_eq!(Attack::from_name("nope"), None);
    }

    #[test]
    fn s2_is_published_and_s3_adds_the_attacked_project() {
        let d = std::env::temp_dir().join(format!("packman-attacks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut up = Upstream::new(&d).unwrap();
        assert!(d.join("metadata/2.root.json").exists());
        assert!(d.join("metadata/2.snapshot.json").exists());
        up.advance().unwrap();
        assert!(d.join("metadata/3.snapshot.json").exists());
        assert!(up.repo.target_data.contains_key(&layout::simple_page(Some(ATTACKED), true)));
        for a in Attack::ALL {
            up.arm(a).unwrap();
        }
        up.disarm();
        drop(up);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
