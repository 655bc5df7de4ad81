use std::path::PathBuf;

/// Why the proxy could not start, or refused a request. Each variant names the repository,
/// the project or file, and the rule; [`ProxyError::status`] is the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Trust(#[from] packman_trust::TrustError),

    #[error("the trust ring ({config}) lists no repository: add one with `packman trust add NAME URL --root FILE`")]
    EmptyRing { config: PathBuf },

    /// Another packman process (a second proxy, `packman update`) holds the repository's
    /// metadata directory.
    #[error(
        "repository {repo:?}: its trusted metadata ({dir}) is in use by another packman process; stop it and try again"
    )]
    Busy { repo: String, dir: PathBuf },

    /// The repository's metadata or one of its files was refused, or could not be fetched.
    #[error("repository {repo:?}: {source}")]
    Repository { repo: String, source: packman_client::Error },

    /// No repository of the ring is configured for the project.
    #[error(
        "no trusted repository is configured for project {project:?}: its name matches none of the project \
         patterns in {config}. packman never looks a project up in a repository not configured for it"
    )]
    NotRouted { project: String, config: PathBuf },

    /// The repository configured for the project does not list it (or the file).
    #[error(
        "project {project:?} belongs to repository {repo:?} (patterns {patterns:?}), whose signed metadata has no \
         {target}. packman never takes a project from a repository other than the one configured for it"
    )]
    NotListed { project: String, repo: String, patterns: Vec<String>, target: String },

    /// A signed target without a SHA-256 hash, which the cache names files by.
    #[error("repository {repo:?}: target {target} is signed without a sha256 hash; the proxy needs one")]
    NoSha256 { repo: String, target: String },

    /// A signed simple index page that is not the PEP 691 JSON the publisher writes.
    #[error("repository {repo:?}: signed {target} is not a PEP 691 project list: {reason}")]
    BadIndex { repo: String, target: String, reason: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

impl ProxyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ProxyError {
        ProxyError::Io { path: path.into(), source }
    }

    /// The HTTP status a request refused with this error gets: 404 for a project or file
    /// no configured repository signs, 502 for a repository whose answer was refused or not
    /// had, 500 for local trouble.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::NotRouted { .. } | ProxyError::NotListed { .. } => 404,
            ProxyError::Repository { source: packman_client::Error::TargetNotFound(_), .. } => 404,
            ProxyError::Repository { source: packman_client::Error::Io { .. }, .. }
            | ProxyError::Repository { source: packman_client::Error::TrustedRoot { .. }, .. } => 500,
            ProxyError::Repository { .. } | ProxyError::NoSha256 { .. } | ProxyError::BadIndex { .. } => 502,
            ProxyError::Busy { .. } => 503,
            _ => 500,
        }
    }
}
