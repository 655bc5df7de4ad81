//! Building and signing TUF repositories. [`RepoBuilder`] keeps every role in memory, signs
//! with in-memory keys and publishes a static tree (`metadata/`, `targets/`) with consistent
//! snapshots, in the order bins -> targets -> snapshot -> timestamp, each file written
//! atomically. The client's tests, the demo and the benchmarks build their repositories
//! with it; the publisher CLI grows on it.
// Platform calls (and the one unsafe FFI call among them) live in packman-fs.
#![forbid(unsafe_code)]

mod batch;
mod bin;
pub mod bin_style;
mod builder;
pub mod keys;
pub mod publisher;
pub mod python;
mod snapshot_text;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use bin::{Bin, PreparedTarget};
pub use bin_style::BinStyle;
pub use builder::RepoBuilder;
pub use packman_fs::Durability;
pub use publisher::{describe_file, read_described, InitOptions, KeyChange, Repository};

use std::path::{Path, PathBuf};

use packman_tuf::canonical;
use packman_tuf::crypto::Signer;
use packman_tuf::metadata::Role;
use packman_tuf::{Expires, Hashes, OffsetDateTime, Signature};

/// What went wrong, naming the file, role or path involved and the rule broken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target path that is not a relative path inside `targets/`.
    #[error("target path {path:?} {reason}")]
    TargetPath { path: String, reason: &'static str },
    /// A source file changed between being hashed (listed) and being published.
    #[error(
        "{path}: changed while being published (it is no longer the {length} bytes with SHA-256 {sha256} it was \
         listed with); nothing was published, add it again"
    )]
    SourceChanged { path: PathBuf, length: u64, sha256: String },
    /// A distribution's file name is published with other content: file names are immutable.
    #[error(
        "{file}: {filename} is already published with other content; a file name is never reused (upload a new \
         version instead)"
    )]
    FileNameReused { file: PathBuf, filename: String },
    /// A distribution file that cannot be read or is not a valid wheel or sdist.
    #[error(transparent)]
    Distribution(#[from] packman_index::IndexError),
    /// A bin count that is not a power of two in range.
    #[error("--bins {bins} must be a power of two between 2 and 2^32")]
    BinCount { bins: u64 },
    /// A classic (`prefixes`) delegation whose targets.json would pass what clients fetch by
    /// default (python-tuf's and packman's 5 MB targets limit).
    #[error(
        "with {bins} bins and {keys} bins key(s), the prefixes bin style makes targets.json {bytes} bytes, over the \
         {limit} bytes TUF clients fetch by default (python-tuf, packman): use fewer bins or fewer bins keys, or the \
         succinct style"
    )]
    ClassicTargetsTooLarge { bins: u64, keys: usize, bytes: usize, limit: usize },
    /// A root threshold the new repository's root keys cannot meet.
    #[error("--root-threshold {threshold} cannot be met by {keys} root key(s)")]
    RootThreshold { threshold: u64, keys: usize },
    /// A key change that would leave a role with fewer keys than its threshold (or a zero
    /// threshold).
    #[error("threshold {threshold} cannot be met by the {keys} key(s) {role} would have")]
    UnmeetableThreshold { role: String, threshold: u64, keys: usize },
    /// `init` in a directory that already holds a repository.
    #[error("{dir} already holds a repository")]
    AlreadyARepository { dir: PathBuf },
    /// A directory without `packman-repo.json`.
    #[error("{dir} is not a packman repository (no packman-repo.json)")]
    NotARepository { dir: PathBuf },
    /// Settings that cannot be written or read as `packman-repo.json`.
    #[error("{path}: {reason}")]
    Settings { path: PathBuf, reason: String },
    /// An encrypted key and no passphrase to decrypt it with.
    #[error("{path}: no passphrase was given for this encrypted key")]
    NoPassphrase { path: PathBuf },
    /// A role name that is neither a top-level role nor `bins`.
    #[error("unknown role {role:?}: use root, targets, snapshot, timestamp or bins")]
    UnknownRole { role: String },
    /// A keyid (prefix) that names none of the role's keys.
    #[error("{role} has no key {pattern}")]
    NoSuchKey { role: String, pattern: String },
    /// A keyid prefix that names several of the role's keys.
    #[error("{pattern} matches several {role} keys: give more of the keyid")]
    AmbiguousKey { role: String, pattern: String },
    /// A key change while another root change waits for signatures.
    #[error("a root change is already staged in {path}: sign it (packman repo sign) or delete it first")]
    RootChangeStaged { path: PathBuf },
    /// `sign` with no staged root change.
    #[error("nothing to sign: {path} does not exist")]
    NothingStaged { path: PathBuf },
    /// A thread doing part of `task` panicked (a bug); nothing was published.
    #[error("{task}: a worker thread panicked")]
    WorkerPanicked { task: &'static str },
    #[error("key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{role}: {have} usable signing key(s) where the threshold is {threshold}")]
    Threshold { role: String, have: usize, threshold: u64 },
    #[error("{role}: {have} usable signing key(s) where the threshold is {threshold}; missing key(s) {missing} (searched {searched}; pass --keys DIR for keys kept elsewhere)")]
    MissingKeys { role: String, have: usize, threshold: u64, missing: String, searched: String },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A mirror list change that cannot be made (a name already listed, a bad URL).
    #[error("mirror list: {reason}")]
    Mirrors { reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("signing {role}: {reason}")]
    Signing { role: String, reason: String },
    #[error("no role {0}")]
    NoRole(String),
}

impl From<packman_fs::Error> for Error {
    fn from(e: packman_fs::Error) -> Error {
        Error::Io { path: e.path, source: e.source }
    }
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}

/// Signs `signed` with each signer: the bytes of a metadata file.
pub fn sign_metadata<T: Role>(signed: &T, signers: &[&Signer]) -> Result<Vec<u8>, Error> {
    let forms =
        canonical::signed_forms(signed).map_err(|e| Error::Signing { role: T::TYPE.into(), reason: e.to_string() })?;
    sign_envelope(T::TYPE, &forms.canonical, forms.json(), signers)
}

/// Signs a snapshot (through the trust core's direct writer for packman's simple layout).
pub fn sign_snapshot(snapshot: &packman_tuf::Snapshot, signers: &[&Signer]) -> Result<Vec<u8>, Error> {
    let forms = canonical::snapshot_forms(snapshot)
        .map_err(|e| Error::Signing { role: "snapshot".into(), reason: e.to_string() })?;
    sign_envelope("snapshot", &forms.canonical, forms.json(), signers)
}

/// Each signer's signature over `canon`, in an envelope around `signed_json`.
pub(crate) fn sign_envelope(
    role: &str,
    canon: &[u8],
    signed_json: &[u8],
    signers: &[&Signer],
) -> Result<Vec<u8>, Error> {
    let (head, tail) = envelope_parts(canon, signers, role)?;
    Ok([&head[..], signed_json, tail].concat())
}

/// Signs `canon` (canonical JSON, also the file's signed part) and returns the metadata
/// file's head and tail: the file is head + `canon` + tail.
pub(crate) fn envelope_parts(canon: &[u8], signers: &[&Signer], role: &str) -> Result<(Vec<u8>, &'static [u8]), Error> {
    let signatures = signers
        .iter()
        .map(|s| s.sign(canon).map_err(|e| Error::Signing { role: role.into(), reason: e.to_string() }))
        .collect::<Result<Vec<Signature>, _>>()?;
    let sigs =
        serde_json::to_vec(&signatures).map_err(|e| Error::Signing { role: role.into(), reason: e.to_string() })?;
    let mut head = Vec::with_capacity(sigs.len() + 32);
    head.extend_from_slice(b"{\"signatures\":");
    head.extend_from_slice(&sigs);
    head.extend_from_slice(b",\"signed\":");
    Ok((head, b"}\n"))
}

/// A metadata file from the JSON of `signed` and its signatures: compact, keys in sorted
/// order ("signatures" before "signed", and packman's types serialise their fields sorted).
/// Unless a string holds a control character (a PEM key's newlines, which valid JSON must
/// escape), the file is canonical JSON up to nothing, and clients verify it with a byte scan.
pub fn envelope_bytes(signed_json: &[u8], signatures: &[Signature]) -> Result<Vec<u8>, Error> {
    let sigs = serde_json::to_vec(signatures)
        .map_err(|e| Error::Signing { role: "envelope".into(), reason: e.to_string() })?;
    let mut out = Vec::with_capacity(signed_json.len() + sigs.len() + 32);
    out.extend_from_slice(b"{\"signatures\":");
    out.extend_from_slice(&sigs);
    out.extend_from_slice(b",\"signed\":");
    out.extend_from_slice(signed_json);
    out.extend_from_slice(b"}\n");
    Ok(out)
}

pub(crate) fn new_expiry(now: OffsetDateTime, days: i64) -> Expires {
    Expires((now + time::Duration::days(days)).replace_nanosecond(0).unwrap_or(now))
}

/// Temp file in the same directory, fsync, rename: readers see the old file or the new one.
/// The directory is not synced (callers sync it once after several files).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = packman_fs::parent(path);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    use packman_fs::{Access, DirSync};
    Ok(packman_fs::write_atomic_with(path, bytes, Access::Public, DirSync::Caller)?)
}

/// Whether the file at `path` is exactly `length` bytes (when given) with this SHA-256, by
/// the trust core's verifier. `Ok(false)` for a missing file.
pub(crate) fn file_matches(path: &Path, length: Option<u64>, sha256: &str) -> Result<bool, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path, e)),
    };
    let hashes = Hashes(vec![("sha256".into(), sha256.into())]);
    match packman_tuf::target::verify_reader(file, length, Some(&hashes)) {
        Ok(()) => Ok(true),
        Err(packman_tuf::target::ReadError::Mismatch(_)) => Ok(false),
        Err(packman_tuf::target::ReadError::Io(e)) => Err(io(path, e)),
    }
}

/// A temp file for the published tree: readable by everyone (static hosts serve it as
/// another user), unlike tempfile's private default.
pub(crate) fn published_tempfile(dir: &Path) -> Result<tempfile::NamedTempFile, Error> {
    Ok(packman_fs::public_tempfile(dir)?)
}

/// fsync a directory, making renames inside it durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    Ok(packman_fs::sync_dir(dir)?)
}

#[cfg(test)]
mod sign_tests {
    use super::*;
    use packman_tuf::{Expires, OffsetDateTime, Targets};

    /// The signature covers the canonical form whether the compact JSON already is canonical
    /// (the fast path) or needs the canonicaliser (a string with a newline, which canonical
    /// JSON writes raw and serde_json escapes).
    #[test]
    fn signatures_cover_the_canonical_form() {
        let (signer, _) = Signer::generate_ed25519().unwrap();
        let mut t = Targets {
            type_: "targets".into(),
            delegations: None,
            expires: Expires(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()),
            spec_version: "1.0.31".into(),
            targets: Default::default(),
            version: 3,
            extra: Default::default(),
        };
        t.targets.insert("a/b.txt".into(), packman_tuf::TargetFile::from_data(b"plain"));
        let mut odd = packman_tuf::TargetFile::from_data(b"odd");
        odd.custom = Some(serde_json::json!({"note": "two\nlines", "q": "a\"b\\c"}));
        for with_escape in [false, true] {
            if with_escape {
                t.targets.insert("c/d.txt".into(), odd.clone());
            }
            let bytes = sign_metadata(&t, &[&signer]).unwrap();
            let env: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let canon = canonical::to_canonical(&t).unwrap();
            let sig = env["signatures"][0]["sig"].as_str().unwrap();
            signer.public_key().verify(&canon, sig).unwrap();
            // And the file's signed part is the same value.
            let back: Targets = serde_json::from_value(env["signed"].clone()).unwrap();
            assert_eq!(back, t);
        }
    }
}
