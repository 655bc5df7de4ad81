//! Where packman keeps a user's state.
//!
//! - `PACKMAN_HOME` set (and not empty): everything under it: trusted metadata in
//!   `$PACKMAN_HOME/repos/`, configuration in `$PACKMAN_HOME/config/`, caches in
//!   `$PACKMAN_HOME/cache/`.
//! - Otherwise the platform's standard directories, each with a `packman` folder: on Linux
//!   `$XDG_DATA_HOME` or `~/.local/share` (trusted metadata), `$XDG_CONFIG_HOME` or
//!   `~/.config`, `$XDG_CACHE_HOME` or `~/.cache`; on macOS `~/Library/Application Support`
//!   and `~/Library/Caches`; on Windows the roaming and local AppData folders. Where an
//!   earlier packman already keeps its trusted metadata in `~/.local/share/packman` (it used
//!   that path on every Unix) and the platform's data folder has none yet, that earlier
//!   place stays in use, so no user's trust silently starts over.
//!
//! Trusted metadata of a repository addressed by URL lives in
//! `<data>/repos/<first 16 hex digits of sha256(URL without trailing slashes)>`.
//!
//! The trust ring (`packman trust add NAME URL --root FILE`) will keep its list of named
//! repositories in [`Home::config_dir`] and resolve names to [`TrustedRepo`]s beside
//! [`Home::repo_by_url`].

use std::path::{Path, PathBuf};

use crate::{TrustError, TrustedRepo};

/// A user's packman directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    data: PathBuf,
    config: PathBuf,
    cache: PathBuf,
}

/// The platform's answers, gathered so the rule in [`Home::resolve`] is a pure function.
#[derive(Debug, Clone, Default)]
struct Platform {
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    cache: Option<PathBuf>,
    /// `$XDG_DATA_HOME/packman` or `~/.local/share/packman`: where every earlier packman kept
    /// trusted metadata when `PACKMAN_HOME` was not set.
    legacy_data: Option<PathBuf>,
}

impl Platform {
    fn detect() -> Self {
        let legacy_base = std::env::var_os("XDG_DATA_HOME")
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")));
        Platform {
            data: dirs::data_dir().map(|d| d.join("packman")),
            config: dirs::config_dir().map(|d| d.join("packman")),
            cache: dirs::cache_dir().map(|d| d.join("packman")),
            legacy_data: legacy_base.map(|d| d.join("packman")),
        }
    }
}

impl Home {
    /// The directories for this process: `PACKMAN_HOME` if set, else the platform's.
    pub fn from_env() -> Result<Home, TrustError> {
        Self::resolve(std::env::var_os("PACKMAN_HOME").map(PathBuf::from), Platform::detect())
    }

    /// Everything under `root`, as with `PACKMAN_HOME=root`.
    pub fn at(root: impl Into<PathBuf>) -> Home {
        let root = root.into();
        Home { config: root.join("config"), cache: root.join("cache"), data: root }
    }

    fn resolve(packman_home: Option<PathBuf>, platform: Platform) -> Result<Home, TrustError> {
        if let Some(root) = packman_home.filter(|p| !p.as_os_str().is_empty()) {
            return Ok(Home::at(root));
        }
        let Platform { data, config, cache, legacy_data } = platform;
        let data = data.ok_or(TrustError::NoHome)?;
        let data = match legacy_data {
            Some(legacy) if legacy != data && !data.exists() && legacy.join("repos").is_dir() => legacy,
            _ => data,
        };
        let config = config.unwrap_or_else(|| data.join("config"));
        let cache = cache.unwrap_or_else(|| data.join("cache"));
        Ok(Home { data, config, cache })
    }

    /// State that must survive: the trusted metadata of every repository.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// What the user configures (the trust ring, later).
    pub fn config_dir(&self) -> &Path {
        &self.config
    }

    /// What can be fetched again (downloaded targets kept for reuse).
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The metadata directories of repositories addressed by URL.
    pub fn repos_dir(&self) -> PathBuf {
        self.data.join("repos")
    }

    /// The metadata directory of the repository whose metadata is at `metadata_url`.
    pub fn metadata_dir_for(&self, metadata_url: &str) -> PathBuf {
        self.repos_dir().join(short_id(metadata_url.trim_end_matches('/').as_bytes()))
    }

    /// The state directory of a mirror (`<data dir>/mirrors/NAME-ID`): `name` for people,
    /// ID from `key`, what tells mirrors apart (DEST's resolved path, an s3:// URL).
    pub fn mirror_dir(&self, name: &str, key: &[u8]) -> PathBuf {
        self.data.join("mirrors").join(format!("{name}-{}", short_id(key)))
    }

    /// The repository at `metadata_url`, its trusted metadata kept in
    /// [`Home::metadata_dir_for`], its targets at `targets_url` or
    /// [`default_targets_url`](crate::default_targets_url).
    pub fn repo_by_url(&self, metadata_url: &str, targets_url: Option<&str>) -> TrustedRepo {
        TrustedRepo::new(metadata_url, targets_url, self.metadata_dir_for(metadata_url))
    }
}

/// The first 16 hex digits of the sha256 of `key`: a directory name for state keyed by a URL
/// or path (an identifier, not a check of any content).
fn short_id(key: &[u8]) -> String {
    let mut h = hex::encode(ring::digest::digest(&ring::digest::SHA256, key));
    h.truncate(16);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux_like(base: &Path) -> Platform {
        Platform {
            data: Some(base.join("share/packman")),
            config: Some(base.join("config/packman")),
            cache: Some(base.join("cache/packman")),
            legacy_data: Some(base.join("share/packman")),
        }
    }

    #[test]
    fn packman_home_holds_everything() {
        let h = Home::resolve(Some("/ph".into()), linux_like(Path::new("/u"))).unwrap();
        assert_eq!(h, Home::at("/ph"));
        assert_eq!(
            (h.data_dir(), h.config_dir(), h.cache_dir(), h.repos_dir()),
            (Path::new("/ph"), Path::new("/ph/config"), Path::new("/ph/cache"), PathBuf::from("/ph/repos"))
        );
        // An empty PACKMAN_HOME counts as unset.
        let h = Home::resolve(Some("".into()), linux_like(Path::new("/u"))).unwrap();
        assert_eq!(h.data_dir(), Path::new("/u/share/packman"));
    }

    #[test]
    fn otherwise_the_platform_dirs() {
        let h = Home::resolve(None, linux_like(Path::new("/u"))).unwrap();
        assert_eq!(
            (h.data_dir(), h.config_dir(), h.cache_dir()),
            (Path::new("/u/share/packman"), Path::new("/u/config/packman"), Path::new("/u/cache/packman"))
        );
        assert!(matches!(Home::resolve(None, Platform::default()), Err(TrustError::NoHome)));
    }

    #[test]
    fn trusted_metadata_where_an_earlier_packman_kept_it_stays_in_use() {
        let d = tempfile::tempdir().unwrap();
        let mac_like = |d: &Path| Platform {
            data: Some(d.join("Library/Application Support/packman")),
            config: Some(d.join("Library/Application Support/packman")),
            cache: Some(d.join("Library/Caches/packman")),
            legacy_data: Some(d.join(".local/share/packman")),
        };
        // Nothing anywhere yet: the platform's place.
        let h = Home::resolve(None, mac_like(d.path())).unwrap();
        assert_eq!(h.data_dir(), d.path().join("Library/Application Support/packman"));
        // An earlier packman's trusted metadata: still used.
        std::fs::create_dir_all(d.path().join(".local/share/packman/repos/0123456789abcdef")).unwrap();
        let h = Home::resolve(None, mac_like(d.path())).unwrap();
        assert_eq!(h.data_dir(), d.path().join(".local/share/packman"));
        assert_eq!(h.cache_dir(), d.path().join("Library/Caches/packman"));
        // Once the platform's place exists, it wins.
        std::fs::create_dir_all(d.path().join("Library/Application Support/packman")).unwrap();
        let h = Home::resolve(None, mac_like(d.path())).unwrap();
        assert_eq!(h.data_dir(), d.path().join("Library/Application Support/packman"));
    }

    #[test]
    fn metadata_dirs_are_named_by_a_hash_of_the_url_as_before() {
        let h = Home::at("/ph");
        // sha256("http://h/repo/metadata"), first 16 hex digits: the name every earlier
        // packman gave this directory, so existing trust is found.
        let want = Path::new("/ph/repos/a0becf5a95ebed86");
        assert_eq!(h.metadata_dir_for("http://h/repo/metadata"), want);
        assert_eq!(h.metadata_dir_for("http://h/repo/metadata/"), want);
        assert_eq!(h.metadata_dir_for("http://h/repo/metadata//"), want);
        assert_ne!(h.metadata_dir_for("http://h/other/metadata"), want);
    }
}
