use std::path::PathBuf;

/// Why trust in a repository could not be established or kept.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// First use of a metadata directory and no root to start from.
    #[error("{dir} holds no trusted root yet: give a root.json obtained from a trusted place")]
    NoRoot { dir: PathBuf },

    /// A root was given that is neither the trusted one nor an older one it rotated past.
    /// The trusted root is left as it was.
    #[error(
        "refusing to replace the trusted root in {trusted}: the root given differs from it. Trusted keys \
         change only through rotations signed by the repository. If you really mean to start over, \
         remove {dir}."
    )]
    RootDiffers { trusted: PathBuf, dir: PathBuf },

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

    /// Neither `PACKMAN_HOME` nor the platform's standard directories could be found.
    #[error("no home directory to keep packman's trusted metadata in: set PACKMAN_HOME")]
    NoHome,
}

impl TrustError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrustError::Io { path: path.into(), source }
    }
}
