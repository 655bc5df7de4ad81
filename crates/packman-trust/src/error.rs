use std::path::PathBuf;

/// Why trust in a repository could not be established or kept.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// First use of a metadata directory and no root to start from.
    #[error("{dir} holds no trusted root yet: give a root.json obtained from a trusted place")]
    NoRoot { dir: PathBuf },

    /// A root was given of the trusted one's version with other bytes. The trusted root is
    /// left as it was.
    #[error(
        "refusing to replace the trusted root in {trusted} (v{trusted_version}): {given} (v{given_version}) \
         differs from it. Trusted keys change only through rotations signed by the repository. If you really \
         mean to start over, remove {dir}."
    )]
    RootDiffers { given: String, trusted: PathBuf, trusted_version: u64, given_version: u64, dir: PathBuf },

    /// A root was given of another version than the trusted one, not linked to it through
    /// rotations signed by the repository (another repository's root, say). The trusted
    /// root is left as it was.
    #[error(
        "{given}: refusing root v{given_version}: it is neither the trusted root ({trusted}, v{trusted_version}) \
         nor linked to it by rotations the repository signed ({reason}). Trusted keys change only \
         through rotations signed by the repository. If you really mean to start over with it, remove {dir}."
    )]
    RootNotInChain {
        given: String,
        given_version: u64,
        trusted: PathBuf,
        trusted_version: u64,
        dir: PathBuf,
        reason: String,
    },

    /// The root given does not verify on its own (malformed, or not signed by its own
    /// threshold of root keys). Nothing was written.
    #[error("{given}: not a usable root: {source}")]
    InvalidRoot { given: String, source: packman_tuf::Error },

    /// The root already trusted in the metadata directory cannot be read as a root.
    #[error("trusted root {path}: {source}")]
    TrustedRootUnusable { path: PathBuf, source: packman_tuf::Error },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The trust ring's config file cannot be read or written as a ring.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("repository name {name:?}: use 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")]
    BadName { name: String },

    #[error("a repository named {name:?} is already trusted (packman trust show {name})")]
    NameTaken { name: String },

    #[error("{url} is already trusted as {name:?}: one repository, one name (packman trust show {name})")]
    UrlTaken { url: String, name: String },

    #[error("repository {name:?}: project patterns {patterns:?}: give at least one, none empty or with '/'")]
    BadPattern { name: String, patterns: Vec<String> },

    #[error("repository {name:?}: mirrors: {reason}")]
    BadMirror { name: String, reason: String },

    #[error("no repository named {name:?} is trusted (packman trust list shows those that are)")]
    NotTrusted { name: String },

    /// `--root-sha256` is not a sha256 in hex.
    #[error("root fingerprint {given:?}: expected 64 hex digits (the sha256 of the repository's 1.root.json)")]
    BadFingerprint { given: String },

    /// The root the repository serves is not the one whose fingerprint the user was given.
    #[error(
        "{url}: sha256 {got} is not the fingerprint given ({expected}): refusing to trust this root. \
         Check the fingerprint and the URL with the repository's owner through a trusted channel."
    )]
    FingerprintMismatch { url: String, expected: String, got: String },

    /// Two places that should serve the same root serve different bytes.
    #[error(
        "the root from {first} (sha256 {first_fingerprint}) and the root from {other} (sha256 \
         {other_fingerprint}) differ: refusing to trust either. One of them is not the repository's root."
    )]
    RootSourcesDisagree { first: String, first_fingerprint: String, other: String, other_fingerprint: String },

    /// A root could not be fetched.
    #[error("fetching the root: {0}")]
    FetchRoot(#[source] packman_client::FetchError),

    /// Updating a trusted repository failed (the trusted state is as it was before the update,
    /// or advanced only by what the trust core accepted).
    #[error("{name}: {source}")]
    Update { name: String, source: packman_client::Error },

    /// A bundle offered for the repository was refused (tampered, older than the trusted
    /// state, expired, not signed by the trusted keys…): the trust core's rule, and the
    /// URL of the entry that broke it. Nothing under the home was changed.
    #[error("{bundle}: refused for repository {name:?}: {source}")]
    BundleRefused { name: String, bundle: PathBuf, source: Box<packman_client::Error> },

    /// The repository now serves a root that does not follow from the trusted one through a
    /// signed rotation. Nothing was changed.
    #[error("{}: the repository's root keys changed without a rotation signed by the trusted root ({})", .0.name, .0.reason)]
    RootChanged(Box<crate::RootChange>),

    /// Another packman process (a running `packman proxy`) kept the repository's metadata
    /// directory for longer than an update waits.
    #[error(
        "{name}: its trusted metadata ({dir}) is in use by another packman process (a running `packman proxy` \
         refreshes it itself); try again when it has stopped"
    )]
    Busy { name: String, dir: PathBuf },

    /// Neither `PACKMAN_HOME` nor the platform's standard directories could be found.
    #[error("no home directory to keep packman's trusted metadata in: set PACKMAN_HOME")]
    NoHome,
}

impl TrustError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrustError::Io { path: path.into(), source }
    }
}
