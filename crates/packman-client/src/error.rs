use std::path::PathBuf;

use crate::FetchError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository served metadata that the TUF rules refuse.
    #[error("{url}: {source}")]
    Metadata { url: String, source: packman_tuf::Error },

    #[error(transparent)]
    Fetch(#[from] FetchError),

    /// The locally trusted root cannot be used (missing, corrupt or not self-signed).
    #[error("trusted root {path}: {reason}")]
    TrustedRoot { path: PathBuf, reason: String },

    #[error("target {target:?} from {url}: {reason}")]
    TargetMismatch { target: String, url: String, reason: String },

    /// A target path the repository layout refuses to fetch or save (it climbs above the
    /// targets base, or names no file).
    #[error("target {target:?}: {source}")]
    TargetPath { target: String, source: packman_tuf::layout::LayoutError },

    #[error("target {0:?} is not in the repository's signed metadata")]
    TargetNotFound(String),

    /// The repository signs a mirror list that is not a valid one.
    #[error("the signed mirror list ({}): {reason}", packman_tuf::layout::MIRRORS_TARGET)]
    MirrorList { reason: String },

    #[error("no targets URL configured")]
    NoTargetsUrl,

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl From<packman_fs::Error> for Error {
    fn from(e: packman_fs::Error) -> Self {
        Error::Io { path: e.path, source: e.source }
    }
}

impl Error {
    /// The trust-core error behind this one, if the repository's metadata was refused.
    pub fn tuf(&self) -> Option<&packman_tuf::Error> {
        match self {
            Error::Metadata { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The repository could not be reached at all (connection refused or reset, DNS, a
    /// timeout): the one failure after which cached metadata may be used offline. Anything
    /// the repository answered (a refusal, a status, bad bytes) is not this.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Fetch(FetchError::Transport { .. }))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
