use std::path::PathBuf;

use packman_trust::ReadError;

/// Why the proxy could not start, or refused a request. Each variant names the repository,
/// the project or file, and the rule; [`ProxyError::status`] is the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A page or file could not be read from the repository that owns it, or was refused
    /// (routing, verification: the rules of [`packman_trust::read`]).
    /// (Boxed: it is large, and every request's result carries it.)
    #[error(transparent)]
    Read(Box<ReadError>),

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

impl From<ReadError> for ProxyError {
    fn from(e: ReadError) -> Self {
        ProxyError::Read(Box::new(e))
    }
}

impl From<packman_trust::TrustError> for ProxyError {
    fn from(e: packman_trust::TrustError) -> Self {
        ReadError::from(e).into()
    }
}

impl ProxyError {
    /// The HTTP status a request refused with this error gets: 404 for a project or file
    /// no configured repository signs, 502 for a repository whose answer was refused or not
    /// had, 500 for local trouble.
    pub fn status(&self) -> u16 {
        use packman_client::Error as E;
        match self {
            ProxyError::Read(e) => match &**e {
                ReadError::NotRouted { .. } | ReadError::NotListed { .. } => 404,
                ReadError::Repository { source, .. } => match &**source {
                    E::TargetNotFound(_) => 404,
                    E::Io { .. } | E::TrustedRoot { .. } => 500,
                    _ => 502,
                },
                ReadError::NoSha256 { .. } | ReadError::BadPage { .. } => 502,
                // The repository is unreachable and the cache cannot stand in.
                ReadError::Unreachable { .. } | ReadError::NotCached { .. } => 503,
                _ => 500,
            },
            _ => 500,
        }
    }
}
