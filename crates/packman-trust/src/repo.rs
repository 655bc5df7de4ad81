//! One trusted repository, and the one updater it opens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use packman_client::{Config, Transport, Updater};
use packman_tuf::OffsetDateTime;

use crate::{ensure_trust, ensure_trust_fetching, RootFetch, TrustError, TrustOutcome};

/// A repository the user trusts: where its metadata and targets are, and the directory that
/// holds its trusted metadata. Every door that reads the repository for the user opens its
/// updater here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRepo {
    /// The name the user gave it in the trust ring; `None` for a repository addressed by URL
    /// only (`packman download --metadata-url`).
    pub name: Option<String>,
    pub metadata_url: String,
    pub targets_url: Option<String>,
    pub metadata_dir: PathBuf,
}

impl TrustedRepo {
    /// The repository at `metadata_url`; its targets at `targets_url`, or where
    /// [`default_targets_url`] puts them.
    pub fn new(metadata_url: &str, targets_url: Option<&str>, metadata_dir: impl Into<PathBuf>) -> Self {
        TrustedRepo {
            name: None,
            metadata_url: metadata_url.to_string(),
            targets_url: targets_url.map(str::to_string).or_else(|| default_targets_url(metadata_url)),
            metadata_dir: metadata_dir.into(),
        }
    }

    /// [`ensure_trust`] for this repository's metadata directory, at the current time.
    pub fn ensure_trust(&self, root_file: Option<&Path>) -> Result<TrustOutcome, TrustError> {
        ensure_trust(&self.metadata_dir, root_file, OffsetDateTime::now_utc())
    }

    /// [`ensure_trust_fetching`] for this repository's metadata directory, at the current time.
    pub fn ensure_trust_fetching(
        &self,
        root_file: Option<&Path>,
        fetch: RootFetch,
    ) -> Result<TrustOutcome, TrustError> {
        ensure_trust_fetching(&self.metadata_dir, root_file, OffsetDateTime::now_utc(), fetch)
    }

    /// The updater for this repository (HTTP and `file://` as `config.fetcher` says). It
    /// locks the metadata directory until dropped.
    pub fn open(&self, config: Config) -> Result<Updater, packman_client::Error> {
        Updater::new(&self.metadata_dir, &self.metadata_url, self.targets_url.as_deref(), config)
    }

    /// As [`TrustedRepo::open`], fetching through `transport` (a mirror list, a bundle, one
    /// shared connection pool).
    pub fn open_with(&self, config: Config, transport: Arc<dyn Transport>) -> Result<Updater, packman_client::Error> {
        Updater::with_transport(&self.metadata_dir, &self.metadata_url, self.targets_url.as_deref(), config, transport)
    }
}

/// Where a repository's targets are when only its metadata URL is known: the metadata URL
/// with its last segment `metadata` replaced by `targets` (the layout `packman repo init`
/// writes and `packman serve` serves); `None` if it does not end in `metadata`.
pub fn default_targets_url(metadata_url: &str) -> Option<String> {
    let base = metadata_url.trim_end_matches('/');
    base.strip_suffix("metadata").map(|p| format!("{p}targets/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_url_is_derived_from_the_metadata_url() {
        assert_eq!(default_targets_url("http://h/repo/metadata/").as_deref(), Some("http://h/repo/targets/"));
        assert_eq!(default_targets_url("file:///srv/metadata").as_deref(), Some("file:///srv/targets/"));
        assert_eq!(default_targets_url("http://h/metadata//").as_deref(), Some("http://h/targets/"));
        assert_eq!(default_targets_url("http://h/meta"), None);
    }

    #[test]
    fn a_repo_takes_the_given_targets_url_or_the_derived_one() {
        let r = TrustedRepo::new("http://h/repo/metadata", None, "/m");
        assert_eq!(r.targets_url.as_deref(), Some("http://h/repo/targets/"));
        assert_eq!((r.name.as_deref(), r.metadata_dir.as_path()), (None, Path::new("/m")));
        let r = TrustedRepo::new("http://h/repo/metadata", Some("http://cdn/t/"), "/m");
        assert_eq!(r.targets_url.as_deref(), Some("http://cdn/t/"));
        assert_eq!(TrustedRepo::new("http://h/meta", None, "/m").targets_url, None);
    }

    #[test]
    fn repo_by_url_keeps_trust_in_the_home() {
        let home = crate::Home::at("/ph");
        let r = home.repo_by_url("http://h/repo/metadata/", None);
        assert_eq!(r.metadata_dir, home.metadata_dir_for("http://h/repo/metadata"));
        assert_eq!(r.targets_url.as_deref(), Some("http://h/repo/targets/"));
    }
}
