use std::path::PathBuf;

/// Why a sync stopped. Every refusal happens before anything under DEST's served names (or
/// its trusted state) changes; only [`MirrorError::Io`] can come later (see the crate docs).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// First sync: the mirror trusts nothing yet.
    #[error(
        "{dest} holds no trusted state yet: give the upstream's root.json, from a trusted place, for the first sync"
    )]
    NoRoot { dest: PathBuf },

    /// A root given for a mirror that already trusts one is neither that root nor an older
    /// one leading to it through signed rotations (another repository's root, say), or does
    /// not verify on its own. Nothing was changed.
    #[error("{0}")]
    Root(Box<packman_trust::TrustError>),

    /// The root given for the first sync is not a root signed by its own keys.
    #[error("the root given: {0}")]
    InvalidRoot(packman_tuf::Error),

    /// The upstream served metadata or a target that the updater refused, or could not be
    /// fetched. Nothing was changed.
    #[error("upstream refused: {0}")]
    Upstream(#[from] packman_client::Error),

    /// A mirror copies versioned metadata and hash-prefixed targets; a repository without
    /// consistent snapshots has neither.
    #[error(
        "{url}: the repository does not use consistent snapshots (a mirror needs N.ROLE.json and DIR/HASH.NAME files)"
    )]
    NotConsistent { url: String },

    /// A signed target path that cannot be a file name under DEST/targets.
    #[error("target {target:?}: {source}")]
    TargetPath { target: String, source: packman_tuf::layout::LayoutError },

    /// A sync without trusted state (a first sync, or a new state directory) was offered a
    /// timestamp older than the one DEST already serves.
    #[error(
        "{path} is timestamp version {served}; the upstream offers version {offered}: refusing to roll the mirror back (rollback attack, or the wrong upstream?)"
    )]
    OlderThanDest { path: PathBuf, served: u64, offered: u64 },

    /// Another `mirror sync` holds DEST's lock.
    #[error("{lock}: another sync of this mirror is running")]
    Busy { lock: PathBuf },

    /// A bundle that is not whole (truncated, padded, not a bundle): refused before DEST is
    /// looked at.
    #[error("bundle {bundle}: {reason}")]
    Bundle { bundle: PathBuf, reason: String },

    /// A bundle whose content the updater refused (tampered, older than DEST, expired,
    /// lacking a file DEST needs). Nothing was changed.
    #[error("bundle {bundle} refused: {source}")]
    BundleRefused { bundle: PathBuf, source: Box<MirrorError> },

    /// DEST cannot be exported as asked.
    #[error("export of {dest}: {reason}")]
    Export { dest: PathBuf, reason: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl From<packman_fs::Error> for MirrorError {
    fn from(e: packman_fs::Error) -> Self {
        MirrorError::Io { path: e.path, source: e.source }
    }
}

impl MirrorError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MirrorError::Io { path: path.into(), source }
    }

    /// The URL of the file refused, if the refusal is about one.
    pub fn url(&self) -> Option<&str> {
        use packman_client::{Error as E, FetchError as F};
        match self {
            MirrorError::BundleRefused { source, .. } => source.url(),
            MirrorError::Upstream(E::Metadata { url, .. } | E::TargetMismatch { url, .. }) => Some(url),
            MirrorError::Upstream(E::Fetch(
                F::NotFound { url, .. }
                | F::Status { url, .. }
                | F::TooLarge { url, .. }
                | F::TooSlow { url, .. }
                | F::Transport { url, .. }
                | F::UnsupportedScheme { url },
            )) => Some(url),
            _ => None,
        }
    }

    /// The trust-core rule behind a refusal, if the upstream's metadata was refused.
    pub fn tuf(&self) -> Option<&packman_tuf::Error> {
        match self {
            MirrorError::Upstream(e) => e.tuf(),
            MirrorError::InvalidRoot(e) => Some(e),
            MirrorError::BundleRefused { source, .. } => source.tuf(),
            _ => None,
        }
    }
}
