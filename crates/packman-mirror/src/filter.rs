//! Partial mirrors: which targets a mirror holds.
//!
//! Metadata is always mirrored whole (it is signed as a whole; clients need every role to
//! find anything); the filter decides only which target files are fetched and kept.
//!
//! A pattern with a `/` is a target path pattern (`docs/*`, `packages/*/*.whl`), matched as
//! delegation paths are ([`packman_tuf::pattern::path_matches`]: `*` does not cross a `/`).
//! Any other pattern is a project-name glob (`numpy`, `django-*`), matched against the PEP
//! 503-normalised name of the project a target belongs to (`packages/PROJECT/…`,
//! `simple/PROJECT/…`); the pattern is normalised the same way, so `Django_Rest*` and
//! `django-rest*` are one pattern.
//!
//! A target is mirrored when no `exclude` pattern matches it and either no `include` is
//! given, an `include` matches it, or it belongs to no project and every `include` is a
//! project glob (a project filter keeps the project list `simple/index.html`, the signed
//! mirror list and other shared files).
//!
//! The filter a sync runs with is kept with the mirror's trusted state (`filter.json`), so
//! later syncs, `mirror verify` and `mirror export` apply it without being told; a sync given
//! a new filter replaces it (when the sync commits), and then fetches what it newly includes
//! and removes what it no longer does, even with nothing new upstream.

use std::path::Path;

use packman_tuf::layout;
use packman_tuf::pattern::path_matches;

use crate::MirrorError;

/// `--include`/`--exclude` patterns (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Filter {
    /// The file in the mirror's state directory that holds the filter.
    pub const FILE: &'static str = "filter.json";

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether the target `path` is mirrored.
    pub fn wants(&self, path: &str) -> bool {
        let project = project_of(path);
        let hit = |p: &String| matches(p, path, project.as_deref());
        if self.exclude.iter().any(hit) {
            return false;
        }
        self.include.is_empty()
            || self.include.iter().any(hit)
            || (project.is_none() && self.include.iter().all(|p| !p.contains('/')))
    }

    /// The filter kept in a state directory (none if there is no file).
    pub fn load(state_dir: &Path) -> Result<Filter, MirrorError> {
        let path = state_dir.join(Self::FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| MirrorError::io(&path, std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Filter::default()),
            Err(e) => Err(MirrorError::io(path, e)),
        }
    }

    /// Keeps the filter in a state directory, atomically (an empty filter removes the file).
    pub(crate) fn store(&self, state_dir: &Path) -> Result<(), MirrorError> {
        let path = state_dir.join(Self::FILE);
        if self.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(MirrorError::io(path, e)),
                _ => Ok(()),
            };
        }
        if Filter::load(state_dir).ok().as_ref() == Some(self) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(self).expect("a filter serialises");
        packman_fs::write_atomic(&path, &bytes)?;
        Ok(())
    }
}

/// The PEP 503-normalised project of a `packages/PROJECT/…` or `simple/PROJECT/…` target.
fn project_of(path: &str) -> Option<String> {
    let mut seg = path.split('/');
    let top = seg.next()?;
    let project = seg.next()?;
    seg.next()?;
    (top == layout::PACKAGES_DIR || top == layout::SIMPLE_DIR).then(|| packman_index::name::normalize_name(project))
}

fn matches(pattern: &str, path: &str, project: Option<&str>) -> bool {
    if pattern.contains('/') {
        return path_matches(pattern, path);
    }
    project.is_some_and(|p| path_matches(&packman_index::name::normalize_name(pattern), p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(include: &[&str], exclude: &[&str]) -> Filter {
        Filter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn project_globs_match_normalised_names_and_path_patterns_match_paths() {
        let all = Filter::default();
        assert!(all.wants("packages/anything/x.whl") && all.wants("docs/a.txt"));
        let django = f(&["Django_Rest*"], &[]);
        assert!(django.wants("packages/django-rest-framework/d-1.0.tar.gz"));
        assert!(django.wants("simple/Django.REST.framework/index.html"));
        assert!(!django.wants("packages/flask/flask-1.0.tar.gz"));
        // No project: kept by a project filter, but not by a path filter.
        assert!(django.wants("simple/index.html") && django.wants("docs/a.txt"));
        let docs = f(&["docs/*"], &[]);
        assert!(docs.wants("docs/a.txt") && !docs.wants("docs/sub/a.txt") && !docs.wants("simple/index.html"));
        let no_whl = f(&[], &["packages/*/*.whl", "flask"]);
        assert!(!no_whl.wants("packages/p/p-1.0-py3-none-any.whl"));
        assert!(no_whl.wants("packages/p/p-1.0.tar.gz"));
        assert!(!no_whl.wants("simple/flask/index.json"));
        // Exclude wins over include.
        assert!(!f(&["p*"], &["pip"]).wants("packages/pip/pip-1.tar.gz"));
        assert!(f(&["p*"], &["pip"]).wants("packages/pep/pep-1.tar.gz"));
    }
}
