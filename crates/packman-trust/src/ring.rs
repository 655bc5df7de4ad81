//! The trust ring: the repositories a user trusts, by name, in `config.toml` in
//! [`Home::config_dir`], and which projects each one serves.
//!
//! ```toml
//! [[repository]]
//! name = "internal"
//! url = "https://packages.example.org/"
//! projects = ["acme-*"]
//! added = "2026-12-06T20:00:00Z"
//!
//! [[repository]]
//! name = "pypi"
//! url = "https://mirror.example.net/pypi/"
//! projects = ["*"]
//! mirrors = [{ metadata_url = "https://eu.example.net/pypi/metadata/", targets_url = "https://eu.example.net/pypi/targets/" }]
//! ```
//!
//! `mirrors` (optional, default none) are where else the repository's files can be fetched,
//! tried in order after `url` and before the mirrors of the repository's signed list; every
//! file from a mirror is verified as from the repository itself ([`crate::read::repo_transport`]).
//!
//! Routing is explicit (no dependency confusion): a project belongs to the first repository,
//! in the order they were added, one of whose `projects` patterns matches its PEP 503
//! normalised name. A project a repository owns is never taken from another one, even when
//! the owner lacks it. Patterns are shell-style globs (`*`, `?`, `[…]`), matched by the same
//! code as TUF delegation paths.
//!
//! Each repository's trusted metadata lives in `<data>/ring/NAME/metadata/`; the config only
//! says where to fetch from. The file is replaced atomically; a missing file is an empty
//! ring.

use std::path::{Path, PathBuf};

use packman_tuf::mirrors::{MirrorEntry, MirrorList};
use serde::{Deserialize, Serialize};

use crate::{Home, TrustError, TrustedRepo};

/// The config file's name in [`Home::config_dir`].
pub const CONFIG_FILE: &str = "config.toml";

/// One trusted repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoEntry {
    /// The name commands and links use (see [`check_name`]).
    pub name: String,
    /// The repository's base URL: the parent of `metadata/` and `targets/`.
    pub url: String,
    /// Shell-style patterns on PEP 503 normalised project names; `*` is every project.
    #[serde(default = "every_project")]
    pub projects: Vec<String>,
    /// Overrides of `URL/metadata/` and `URL/targets/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_url: Option<String>,
    /// When it was added (RFC 3339), for `trust list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
    /// Mirrors the user configured, tried in order after the URLs above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<RingMirror>,
}

/// A mirror of a ring repository: where it serves the repository's `metadata/` and
/// `targets/`. Nothing it serves is believed unverified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingMirror {
    pub metadata_url: String,
    pub targets_url: String,
}

impl RingMirror {
    /// `METADATA_URL,TARGETS_URL`, as `--mirror` takes it (`trust add`, `download`).
    pub fn parse(arg: &str) -> Result<RingMirror, String> {
        let (md, tg) = arg
            .split_once(',')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("--mirror {arg:?}: expected METADATA_URL,TARGETS_URL"))?;
        Ok(RingMirror { metadata_url: md.into(), targets_url: tg.into() })
    }

    /// As a failover transport names it: by its metadata URL.
    pub fn entry(&self) -> MirrorEntry {
        MirrorEntry {
            name: self.metadata_url.clone(),
            metadata_url: self.metadata_url.clone(),
            targets_url: self.targets_url.clone(),
        }
    }

    /// `mirrors` as [`MirrorEntry`]s, checked as a signed list is (URLs http(s) or file,
    /// none twice).
    pub fn entries(mirrors: &[RingMirror]) -> Result<Vec<MirrorEntry>, String> {
        let list = MirrorList { mirrors: mirrors.iter().map(RingMirror::entry).collect() };
        list.check().map_err(|e| e.to_string())?;
        Ok(list.mirrors)
    }
}

fn every_project() -> Vec<String> {
    vec!["*".into()]
}

impl RepoEntry {
    pub fn new(name: &str, url: &str) -> RepoEntry {
        RepoEntry {
            name: name.into(),
            url: with_slash(url),
            projects: every_project(),
            metadata_url: None,
            targets_url: None,
            added: None,
            mirrors: Vec::new(),
        }
    }

    pub fn metadata_url(&self) -> String {
        self.metadata_url
            .clone()
            .map(|u| with_slash(&u))
            .unwrap_or_else(|| format!("{}metadata/", with_slash(&self.url)))
    }

    pub fn targets_url(&self) -> String {
        self.targets_url.clone().map(|u| with_slash(&u)).unwrap_or_else(|| format!("{}targets/", with_slash(&self.url)))
    }

    /// Whether one of this repository's patterns matches `project` (any spelling: it is
    /// normalised first).
    pub fn serves(&self, project: &str) -> bool {
        let name = packman_index::normalize_name(project);
        self.projects.iter().any(|p| packman_tuf::pattern::path_matches(p, &name))
    }

    /// This repository as a [`TrustedRepo`], its metadata in `<data>/ring/NAME/metadata`.
    pub fn trusted(&self, home: &Home) -> TrustedRepo {
        let mut repo = TrustedRepo::new(
            &self.metadata_url(),
            Some(&self.targets_url()),
            ring_dir(home, &self.name).join("metadata"),
        );
        repo.name = Some(self.name.clone());
        repo
    }
}

/// Where the ring keeps a repository's state (its trusted metadata under `metadata/`).
pub fn ring_dir(home: &Home, name: &str) -> PathBuf {
    home.data_dir().join("ring").join(name)
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

/// A repository name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit. It names a
/// directory and appears in `packman://` links, so nothing else is allowed.
pub fn check_name(name: &str) -> Result<(), TrustError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TrustError::BadName { name: name.into() })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default, rename = "repository")]
    repositories: Vec<RepoEntry>,
}

/// The trusted repositories, as the config file lists them.
#[derive(Debug, Clone)]
pub struct Ring {
    path: PathBuf,
    pub repos: Vec<RepoEntry>,
}

impl Ring {
    /// Reads the ring of `home` (empty when the config file does not exist).
    pub fn load(home: &Home) -> Result<Ring, TrustError> {
        Self::load_from(&home.config_dir().join(CONFIG_FILE))
    }

    pub fn load_from(path: &Path) -> Result<Ring, TrustError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(TrustError::Io { path: path.into(), source }),
        };
        let file: ConfigFile =
            toml::from_str(&text).map_err(|e| TrustError::Config { path: path.into(), reason: e.to_string() })?;
        let mut ring = Ring { path: path.into(), repos: Vec::new() };
        for r in file.repositories {
            ring.add(r).map_err(|e| TrustError::Config { path: path.into(), reason: e.to_string() })?;
        }
        Ok(ring)
    }

    /// The config file this ring is read from and saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the ring back, atomically.
    pub fn save(&self) -> Result<(), TrustError> {
        let file = ConfigFile { repositories: self.repos.clone() };
        let text = toml::to_string(&file)
            .map_err(|e| TrustError::Config { path: self.path.clone(), reason: e.to_string() })?;
        let dir = packman_fs::parent(&self.path);
        std::fs::create_dir_all(dir).map_err(|source| TrustError::Io { path: dir.into(), source })?;
        packman_fs::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| TrustError::Io { path: e.path, source: e.source })
    }

    pub fn get(&self, name: &str) -> Option<&RepoEntry> {
        self.repos.iter().find(|r| r.name == name)
    }

    /// The repository a URL (any trailing slash) is already trusted under.
    pub fn by_url(&self, url: &str) -> Option<&RepoEntry> {
        let want = with_slash(url);
        self.repos.iter().find(|r| with_slash(&r.url) == want)
    }

    /// Adds a repository after the others (so it comes last in routing). Refuses a second
    /// repository of the same name or URL, a bad name, and an empty or odd pattern.
    pub fn add(&mut self, entry: RepoEntry) -> Result<(), TrustError> {
        check_name(&entry.name)?;
        if self.get(&entry.name).is_some() {
            return Err(TrustError::NameTaken { name: entry.name });
        }
        if let Some(other) = self.by_url(&entry.url) {
            return Err(TrustError::UrlTaken { url: entry.url.clone(), name: other.name.clone() });
        }
        if entry.projects.is_empty() || entry.projects.iter().any(|p| p.is_empty() || p.contains('/')) {
            return Err(TrustError::BadPattern { name: entry.name, patterns: entry.projects });
        }
        if let Err(reason) = RingMirror::entries(&entry.mirrors) {
            return Err(TrustError::BadMirror { name: entry.name, reason });
        }
        self.repos.push(entry);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Option<RepoEntry> {
        let i = self.repos.iter().position(|r| r.name == name)?;
        Some(self.repos.remove(i))
    }

    /// The repository that owns `project`: the first whose patterns match it, or none.
    pub fn route(&self, project: &str) -> Option<&RepoEntry> {
        self.repos.iter().find(|r| r.serves(project))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, url: &str, projects: &[&str]) -> RepoEntry {
        let mut e = RepoEntry::new(name, url);
        e.projects = projects.iter().map(|p| p.to_string()).collect();
        e
    }

    #[test]
    fn routing_is_first_match_on_normalised_names() {
        let mut ring = Ring { path: "x".into(), repos: vec![] };
        ring.add(entry("internal", "http://a/", &["acme-*", "shared"])).unwrap();
        ring.add(entry("public", "http://b", &["*"])).unwrap();
        assert_eq!(ring.route("Acme_Widgets").unwrap().name, "internal");
        assert_eq!(ring.route("acme.tools").unwrap().name, "internal");
        assert_eq!(ring.route("Shared").unwrap().name, "internal");
        assert_eq!(ring.route("requests").unwrap().name, "public");
        let mut only = Ring { path: "x".into(), repos: vec![] };
        only.add(entry("internal", "http://a/", &["acme-*"])).unwrap();
        assert!(only.route("requests").is_none());
    }

    #[test]
    fn names_urls_and_patterns_are_checked() {
        let mut ring = Ring { path: "x".into(), repos: vec![] };
        ring.add(entry("one", "http://a/", &["*"])).unwrap();
        assert!(matches!(ring.add(entry("one", "http://c/", &["*"])), Err(TrustError::NameTaken { .. })));
        assert!(matches!(ring.add(entry("two", "http://a", &["*"])), Err(TrustError::UrlTaken { .. })));
        for bad in ["", "Upper", "-x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(matches!(ring.add(entry(bad, "http://z/", &["*"])), Err(TrustError::BadName { .. })), "{bad}");
        }
        assert!(matches!(ring.add(entry("three", "http://d/", &[])), Err(TrustError::BadPattern { .. })));
        assert!(matches!(ring.add(entry("three", "http://d/", &["a/b"])), Err(TrustError::BadPattern { .. })));
    }

    #[test]
    fn the_config_round_trips_and_urls_default_under_the_base() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path());
        let mut ring = Ring::load(&home).unwrap();
        assert!(ring.repos.is_empty());
        let mut e = entry("internal", "http://127.0.0.1:8080", &["acme-*"]);
        e.added = Some("2026-12-06T20:00:00Z".into());
        ring.add(e).unwrap();
        ring.save().unwrap();
        let back = Ring::load(&home).unwrap();
        assert_eq!(back.repos, ring.repos);
        let r = back.get("internal").unwrap();
        assert_eq!(r.metadata_url(), "http://127.0.0.1:8080/metadata/");
        assert_eq!(r.targets_url(), "http://127.0.0.1:8080/targets/");
        let t = r.trusted(&home);
        assert_eq!(t.metadata_dir, home.data_dir().join("ring/internal/metadata"));
        assert_eq!(t.name.as_deref(), Some("internal"));
        // A hand-edited file with an unknown key is refused, naming the file.
        std::fs::write(ring.path(), "[[repository]]\nname = \"x\"\nurl = \"http://x/\"\nkeys = 1\n").unwrap();
        let err = Ring::load(&home).unwrap_err().to_string();
        assert!(err.contains(CONFIG_FILE) && err.contains("keys"), "{err}");
    }

    #[test]
    fn mirrors_are_optional_round_trip_and_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path());
        let path = home.config_dir().join(CONFIG_FILE);
        std::fs::create_dir_all(home.config_dir()).unwrap();
        // A file written before mirrors existed: none, and none written back.
        std::fs::write(&path, "[[repository]]\nname = \"a\"\nurl = \"http://a/\"\n").unwrap();
        let ring = Ring::load(&home).unwrap();
        assert!(ring.repos[0].mirrors.is_empty());
        ring.save().unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("mirrors"));
        let text = "[[repository]]\nname = \"a\"\nurl = \"http://a/\"\n\
                    mirrors = [{ metadata_url = \"http://m/md/\", targets_url = \"http://m/tg/\" }]\n";
        std::fs::write(&path, text).unwrap();
        let ring = Ring::load(&home).unwrap();
        let m = RingMirror::parse("http://m/md/,http://m/tg/").unwrap();
        assert_eq!(ring.repos[0].mirrors, [m]);
        ring.save().unwrap();
        assert_eq!(Ring::load(&home).unwrap().repos, ring.repos);
        std::fs::write(&path, text.replace("http://m/md/", "ftp://m/md/")).unwrap();
        let err = Ring::load(&home).unwrap_err().to_string();
        assert!(err.contains("mirrors") && err.contains("http://"), "{err}");
        assert!(RingMirror::parse("http://m/md/").is_err());
        assert!(RingMirror::parse(",http://m/tg/").is_err());
    }
}
