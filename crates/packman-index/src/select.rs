//! Which files of a project page fit an interpreter: PEP 425 wheel tags (compressed tag
//! sets expanded), `Requires-Python`, PEP 440 ordering and PEP 592 yanking, the way pip
//! picks a distribution:
//!
//! - a version given with `==` is taken even if yanked (PEP 592), pre-release or not;
//! - otherwise the newest version (PEP 440 order; pre-releases only when there are no final
//!   releases) that has a fitting file not yanked;
//! - of that version, the compatible wheel whose tag the interpreter prefers most (its
//!   supported tags come most preferred first, as `packaging.tags.sys_tags()` lists them),
//!   else its sdist; or, when all files are asked for, every file of the version (not
//!   yanked, unless the version was given).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};

use crate::filename::{parse_filename, DistKind, WheelTags};
use crate::simple::{FileEntry, ProjectPage};

/// What an interpreter accepts.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The interpreter's version, for `Requires-Python`; `None`: not checked.
    python_version: Option<Version>,
    /// Supported `python-abi-platform` tags and their preference (0 is best).
    tags: HashMap<String, usize>,
}

/// The tag every pure-Python 3 wheel carries: what is assumed when the interpreter cannot
/// list its tags (no `packaging`).
pub const FALLBACK_TAG: &str = "py3-none-any";

impl Environment {
    /// `tags` most preferred first (`cp312-cp312-manylinux_2_17_x86_64`, …, `py3-none-any`).
    pub fn new(python_version: Option<&str>, tags: impl IntoIterator<Item = String>) -> Environment {
        let mut map = HashMap::new();
        for (i, t) in tags.into_iter().enumerate() {
            map.entry(t).or_insert(i);
        }
        Environment { python_version: python_version.and_then(|v| Version::from_str(v).ok()), tags: map }
    }

    /// Only [`FALLBACK_TAG`] wheels (and sdists).
    pub fn fallback(python_version: Option<&str>) -> Environment {
        Self::new(python_version, [FALLBACK_TAG.to_string()])
    }

    /// How much the interpreter prefers a wheel with these tags (lower is better); `None` if
    /// it cannot install it. `py2.py3-none-any` stands for each of its expansions.
    pub fn wheel_rank(&self, tags: &WheelTags) -> Option<usize> {
        let mut best = None;
        for py in tags.python.split('.') {
            for abi in tags.abi.split('.') {
                for plat in tags.platform.split('.') {
                    if let Some(&r) = self.tags.get(&format!("{py}-{abi}-{plat}")) {
                        best = Some(best.map_or(r, |b: usize| b.min(r)));
                    }
                }
            }
        }
        best
    }

    /// Whether `requires_python` admits this interpreter (yes when either is unknown or the
    /// specifier does not parse: pip and uv decide then).
    pub fn fits_python(&self, requires_python: Option<&str>) -> bool {
        match (&self.python_version, requires_python.map(VersionSpecifiers::from_str)) {
            (Some(v), Some(Ok(spec))) => spec.contains(v),
            _ => true,
        }
    }
}

/// The files chosen from a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen<'a> {
    /// The version, normalised.
    pub version: String,
    pub files: Vec<&'a FileEntry>,
}

/// Why nothing could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("{project}: no version {version} (signed versions: {})", list(.available))]
    NoSuchVersion { project: String, version: String, available: Vec<String> },
    #[error("{project}: the requested version {given:?} is not a PEP 440 version")]
    BadVersion { project: String, given: String },
    #[error("{project}: the signed page lists no files")]
    Empty { project: String },
    #[error("{project}: {reason}")]
    NothingFits { project: String, reason: String },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A page's files by version, newest first; files whose names do not parse are left out.
pub fn by_version(page: &ProjectPage) -> Vec<(String, Vec<&FileEntry>)> {
    let mut map: BTreeMap<Version, (String, Vec<&FileEntry>)> = BTreeMap::new();
    for f in &page.files {
        let Ok(name) = parse_filename(&f.filename) else { continue };
        let Ok(v) = Version::from_str(&name.version) else { continue };
        map.entry(v).or_insert_with(|| (name.version.clone(), Vec::new())).1.push(f);
    }
    map.into_values().rev().collect()
}

/// Chooses the files of `page` to download (see the module docs): of version `pinned` if
/// given, else the newest that fits; every file of it when `all`, else the best one.
pub fn choose<'a>(
    page: &'a ProjectPage,
    pinned: Option<&str>,
    env: &Environment,
    all: bool,
) -> Result<Chosen<'a>, SelectError> {
    let project = page.name.clone();
    let versions = by_version(page);
    if versions.is_empty() {
        return Err(SelectError::Empty { project });
    }
    if let Some(given) = pinned {
        let want = Version::from_str(given)
            .map_err(|_| SelectError::BadVersion { project: project.clone(), given: given.into() })?;
        let Some((version, files)) = versions.iter().find(|(v, _)| Version::from_str(v).is_ok_and(|v| v == want))
        else {
            let available = versions.iter().map(|(v, _)| v.clone()).collect();
            return Err(SelectError::NoSuchVersion { project, version: given.into(), available });
        };
        if all {
            return Ok(Chosen { version: version.clone(), files: files.clone() });
        }
        return best(env, files).map(|f| Chosen { version: version.clone(), files: vec![f] }).ok_or_else(|| {
            SelectError::NothingFits { project, reason: format!("no file of {version} fits this interpreter") }
        });
    }
    let finals = versions.iter().any(|(v, _)| Version::from_str(v).is_ok_and(|v| !v.any_prerelease()));
    for (version, files) in &versions {
        if finals && Version::from_str(version).is_ok_and(|v| v.any_prerelease()) {
            continue;
        }
        let live: Vec<&FileEntry> = files.iter().copied().filter(|f| f.yanked.is_none()).collect();
        if all {
            if !live.is_empty() {
                return Ok(Chosen { version: version.clone(), files: live });
            }
        } else if let Some(f) = best(env, &live) {
            return Ok(Chosen { version: version.clone(), files: vec![f] });
        }
    }
    let reason = if all {
        "every file is yanked (name a version with ==VERSION to take a yanked one)".to_string()
    } else {
        format!(
            "no file that is not yanked fits this interpreter (its Requires-Python and wheel tags) in any of \
             the versions {}; --all downloads every file of a version",
            list(&versions.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>())
        )
    };
    Err(SelectError::NothingFits { project, reason })
}

/// The most preferred compatible wheel among `files`, else the first sdist (`.tar.gz`
/// before `.zip`); only files whose `Requires-Python` admits the interpreter.
fn best<'a>(env: &Environment, files: &[&'a FileEntry]) -> Option<&'a FileEntry> {
    let fitting = files.iter().copied().filter(|f| env.fits_python(f.requires_python.as_deref()));
    let mut wheel: Option<(usize, &FileEntry)> = None;
    let mut sdist: Option<&FileEntry> = None;
    for f in fitting {
        let Ok(name) = parse_filename(&f.filename) else { continue };
        match (name.kind, &name.wheel_tags) {
            (DistKind::Wheel, Some(tags)) => {
                if let Some(r) = env.wheel_rank(tags) {
                    if wheel.is_none_or(|(b, _)| r < b) {
                        wheel = Some((r, f));
                    }
                }
            }
            _ => {
                if sdist.is_none_or(|s| !s.filename.ends_with(".tar.gz") && f.filename.ends_with(".tar.gz")) {
                    sdist = Some(f);
                }
            }
        }
    }
    wheel.map(|(_, f)| f).or(sdist)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, yanked: Option<&str>, rp: Option<&str>) -> FileEntry {
        FileEntry {
            filename: name.into(),
            url: name.into(),
            sha256: "00".repeat(32),
            size: 1,
            upload_time: None,
            requires_python: rp.map(str::to_string),
            yanked: yanked.map(str::to_string),
            core_metadata_sha256: None,
        }
    }

    fn page(files: Vec<FileEntry>) -> ProjectPage {
        ProjectPage { name: "p".into(), versions: crate::simple::versions(&files), files }
    }

    fn linux() -> Environment {
        let tags = ["cp311-cp311-manylinux_2_17_x86_64", "cp311-abi3-manylinux_2_17_x86_64", "py3-none-any"];
        Environment::new(Some("3.11.7"), tags.iter().map(|t| t.to_string()))
    }

    fn names(c: &Chosen) -> Vec<String> {
        c.files.iter().map(|f| f.filename.clone()).collect()
    }

    #[test]
    fn the_best_wheel_of_the_newest_fitting_version() {
        let p = page(vec![
            file("p-1.0-py3-none-any.whl", None, None),
            file("p-1.0.tar.gz", None, None),
            file("p-1.10-cp311-abi3-manylinux_2_17_x86_64.whl", None, None),
            file("p-1.10-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", None, None),
            file("p-1.10-cp311-cp311-win_amd64.whl", None, None),
            file("p-1.2-py2.py3-none-any.whl", None, None),
            file("p-2.0-py3-none-any.whl", Some("broken"), None),
            file("p-3.0-py3-none-any.whl", None, Some(">=3.12")),
            file("p-4.0rc1-py3-none-any.whl", None, None),
        ]);
        let env = linux();
        // 1.10 > 1.2 (PEP 440, not text), 2.0 yanked, 3.0 needs 3.12, 4.0rc1 a pre-release.
        let c = choose(&p, None, &env, false).unwrap();
        assert_eq!(c.version, "1.10");
        assert_eq!(names(&c), ["p-1.10-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]);
        // Only py3-none-any known: 1.10 has nothing for it, 1.2's py2.py3 wheel fits.
        let c = choose(&p, None, &Environment::fallback(Some("3.11")), false).unwrap();
        assert_eq!((c.version.as_str(), names(&c)), ("1.2", vec!["p-1.2-py2.py3-none-any.whl".to_string()]));
        // Pinned: a yanked version is taken; --all gives every file of it.
        let c = choose(&p, Some("2.0"), &env, false).unwrap();
        assert_eq!(names(&c), ["p-2.0-py3-none-any.whl"]);
        let c = choose(&p, Some("1.0.0"), &env, true).unwrap();
        assert_eq!(names(&c), ["p-1.0-py3-none-any.whl", "p-1.0.tar.gz"]);
        let c = choose(&p, None, &env, true).unwrap();
        assert_eq!(c.version, "3.0");
        assert_eq!(c.files.len(), 1);
        let err = choose(&p, Some("9"), &env, false).unwrap_err().to_string();
        assert!(err.contains("no version 9") && err.contains("4.0rc1, 3.0, 2.0, 1.10, 1.2, 1.0"), "{err}");
    }

    #[test]
    fn sdists_when_no_wheel_fits_and_pre_releases_when_nothing_else() {
        let env = linux();
        let p = page(vec![file("p-1.0-cp27-cp27m-win32.whl", None, None), file("p-1.0.tar.gz", None, None)]);
        assert_eq!(names(&choose(&p, None, &env, false).unwrap()), ["p-1.0.tar.gz"]);
        let p = page(vec![file("p-1.0b1-py3-none-any.whl", None, None)]);
        assert_eq!(choose(&p, None, &env, false).unwrap().version, "1.0b1");
        let p = page(vec![file("p-1.0-cp27-cp27m-win32.whl", None, None)]);
        assert!(matches!(choose(&p, None, &env, false), Err(SelectError::NothingFits { .. })));
        assert!(matches!(choose(&page(vec![]), None, &env, false), Err(SelectError::Empty { .. })));
    }
}
