//! Distribution file names: wheels (PEP 427 / binary distribution format) and sdists
//! (PEP 625, plus legacy `.zip` sdists), and PEP 440 version normalisation.

use std::str::FromStr;

use pep440_rs::Version;

use crate::name::{is_valid_name, normalize_name};
use crate::IndexError;

/// Whether a distribution is built (wheel) or a source distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DistKind {
    Wheel,
    Sdist,
}

/// The container format of a distribution file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveFormat {
    /// `.whl` and `.zip` sdists.
    Zip,
    /// `.tar.gz` sdists.
    TarGz,
}

/// The compatibility tags of a wheel file name (each may be a `.`-separated compressed set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WheelTags {
    /// Optional build tag; always starts with a digit.
    pub build: Option<String>,
    pub python: String,
    pub abi: String,
    pub platform: String,
}

/// What a distribution's file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFilename {
    pub kind: DistKind,
    pub format: ArchiveFormat,
    /// The name as spelled in the file name (e.g. `Foo_Bar`).
    pub name: String,
    /// PEP 503-normalised project name (e.g. `foo-bar`).
    pub project: String,
    /// PEP 440-normalised version (e.g. `1.0rc1` for `1.0-RC1`).
    pub version: String,
    /// Present for wheels only.
    pub wheel_tags: Option<WheelTags>,
}

impl DistFilename {
    /// The file name without its extension: `{name}-{version}` for sdists (the expected
    /// top-level directory), `{name}-{version}(-{build})?-{py}-{abi}-{plat}` for wheels.
    pub(crate) fn stem(filename: &str) -> &str {
        for ext in [".whl", ".tar.gz", ".zip"] {
            if let Some(stem) = filename.strip_suffix(ext) {
                return stem;
            }
        }
        filename
    }
}

/// Normalise a PEP 440 version (`1.0-RC1` -> `1.0rc1`, `1.0.post0.DEV1` -> `1.0.post0.dev1`).
/// `None` when the string is not a valid PEP 440 version.
pub fn normalize_version(version: &str) -> Option<String> {
    Version::from_str(version).ok().map(|v| v.to_string())
}

pub(crate) fn parse_version(file: &str, version: &str) -> Result<Version, IndexError> {
    Version::from_str(version).map_err(|e| IndexError::InvalidVersion {
        file: file.to_string(),
        version: version.to_string(),
        reason: e.to_string(),
    })
}

fn bad(file: &str, rule: impl Into<String>) -> IndexError {
    IndexError::BadFilename { file: file.to_string(), rule: rule.into() }
}

fn is_tag(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
}

/// Parse a distribution file name (no directory part).
///
/// * wheel: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl` (PEP 427);
/// * sdist: `{name}-{version}.tar.gz` (PEP 625) or `{name}-{version}.zip` (legacy). The split
///   is at the last `-`, so legacy sdists whose name contains `-` still parse.
pub fn parse_filename(filename: &str) -> Result<DistFilename, IndexError> {
    if filename.is_empty()
        || filename.bytes().any(|b| b == b'/' || b == b'\\' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad(filename, "must be a bare file name without separators, whitespace or control characters"));
    }
    if let Some(stem) = filename.strip_suffix(".whl") {
        parse_wheel(filename, stem)
    } else if let Some(stem) = filename.strip_suffix(".tar.gz") {
        parse_sdist(filename, stem, ArchiveFormat::TarGz)
    } else if let Some(stem) = filename.strip_suffix(".zip") {
        parse_sdist(filename, stem, ArchiveFormat::Zip)
    } else {
        Err(IndexError::UnsupportedExtension { file: filename.to_string() })
    }
}

fn check_name(file: &str, name: &str) -> Result<(), IndexError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(IndexError::InvalidName { file: file.to_string(), name: name.to_string() })
    }
}

fn parse_wheel(file: &str, stem: &str) -> Result<DistFilename, IndexError> {
    let parts: Vec<&str> = stem.split('-').collect();
    let (name, version, build, tags) =
        match parts.as_slice() {
            [n, v, py, abi, plat] => (*n, *v, None, [*py, *abi, *plat]),
            [n, v, b, py, abi, plat] => (*n, *v, Some(*b), [*py, *abi, *plat]),
            _ => return Err(bad(
                file,
                "a wheel name has 5 or 6 '-'-separated parts: name-version(-build)?-python-abi-platform.whl (PEP 427)",
            )),
        };
    if name.is_empty() || version.is_empty() {
        return Err(bad(file, "empty name or version part"));
    }
    check_name(file, name)?;
    let version = parse_version(file, version)?;
    if let Some(b) = build {
        if !b.starts_with(|c: char| c.is_ascii_digit()) || !is_tag(b) {
            return Err(bad(
                file,
                format!("build tag {b:?} must start with a digit and hold only letters, digits, '_' and '.' (PEP 427)"),
            ));
        }
    }
    if let Some(t) = tags.iter().find(|t| !is_tag(t)) {
        return Err(bad(
            file,
            format!("compatibility tag {t:?} must be non-empty letters, digits, '_' and '.' (PEP 425)"),
        ));
    }
    Ok(DistFilename {
        kind: DistKind::Wheel,
        format: ArchiveFormat::Zip,
        name: name.to_string(),
        project: normalize_name(name),
        version: version.to_string(),
        wheel_tags: Some(WheelTags {
            build: build.map(str::to_string),
            python: tags[0].to_string(),
            abi: tags[1].to_string(),
            platform: tags[2].to_string(),
        }),
    })
}

fn parse_sdist(file: &str, stem: &str, format: ArchiveFormat) -> Result<DistFilename, IndexError> {
    let Some((name, version)) = stem.rsplit_once('-') else {
        return Err(bad(file, "an sdist name is {name}-{version}.tar.gz (PEP 625)"));
    };
    if name.is_empty() || version.is_empty() {
        return Err(bad(file, "empty name or version part"));
    }
    check_name(file, name)?;
    let version = parse_version(file, version)?;
    Ok(DistFilename {
        kind: DistKind::Sdist,
        format,
        name: name.to_string(),
        project: normalize_name(name),
        version: version.to_string(),
        wheel_tags: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names() {
        let f = parse_filename("Foo_Bar-1.0-py3-none-any.whl").unwrap();
        assert_eq!(f.kind, DistKind::Wheel);
        assert_eq!(f.format, ArchiveFormat::Zip);
        assert_eq!(f.name, "Foo_Bar");
        assert_eq!(f.project, "foo-bar");
        assert_eq!(f.version, "1.0");
        let t = f.wheel_tags.unwrap();
        assert_eq!(t.build, None);
        assert_eq!((t.python.as_str(), t.abi.as_str(), t.platform.as_str()), ("py3", "none", "any"));

        let f = parse_filename("zope.interface-5.4.0-1bld-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
            .unwrap();
        assert_eq!(f.project, "zope-interface");
        let t = f.wheel_tags.unwrap();
        assert_eq!(t.build.as_deref(), Some("1bld"));
        assert_eq!(t.platform, "manylinux_2_17_x86_64.manylinux2014_x86_64");

        // version normalisation
        let f = parse_filename("pkg-1.0RC1-py2.py3-none-any.whl").unwrap();
        assert_eq!(f.version, "1.0rc1");
        let f = parse_filename("pkg-1!2.0.POST1.dev0-py3-none-any.whl").unwrap();
        assert_eq!(f.version, "1!2.0.post1.dev0");
        let f = parse_filename("pkg-1.0+Ubuntu_1-py3-none-any.whl").unwrap();
        assert_eq!(f.version, "1.0+ubuntu.1");
    }

    #[test]
    fn sdist_names() {
        let f = parse_filename("foo_bar-2.1.tar.gz").unwrap();
        assert_eq!((f.kind, f.format), (DistKind::Sdist, ArchiveFormat::TarGz));
        assert_eq!(f.project, "foo-bar");
        assert_eq!(f.version, "2.1");
        assert!(f.wheel_tags.is_none());

        let f = parse_filename("Foo.Bar-2.1a0.zip").unwrap();
        assert_eq!(f.format, ArchiveFormat::Zip);
        assert_eq!(f.project, "foo-bar");
        assert_eq!(f.version, "2.1a0");

        // legacy sdist with '-' in the name: split at the last '-'
        let f = parse_filename("foo-bar-3.0.tar.gz").unwrap();
        assert_eq!(f.name, "foo-bar");
        assert_eq!(f.version, "3.0");
    }

    #[test]
    fn invalid_names() {
        let cases = [
            "foo-1.0-py3-none.whl",             // too few parts
            "foo-1.0-1-2-py3-none-any.whl",     // too many parts
            "foo-notaversion-py3-none-any.whl", // bad version
            "foo-1.0-abc-py3-none-any.whl",     // build tag must start with digit
            "foo-1.0--none-any.whl",            // empty tag
            "-1.0-py3-none-any.whl",            // empty name
            "_foo-1.0-py3-none-any.whl",        // name must start alnum
            "foo-1.0-py3-none-any!.whl",        // bad tag char
            "foo.tar.gz",                       // no version
            "foo-.tar.gz",                      // empty version
            "foo-1.0 .tar.gz",                  // whitespace
            "dir/foo-1.0.tar.gz",               // path separator
            "foo-1.0.tar.bz2",                  // unsupported
            "foo-1.0.egg",                      // unsupported
            "",
        ];
        for c in cases {
            assert!(parse_filename(c).is_err(), "{c:?} should not parse");
        }
        assert!(matches!(parse_filename("foo-1.0.egg"), Err(IndexError::UnsupportedExtension { .. })));
        assert!(matches!(parse_filename("foo-x.y-py3-none-any.whl"), Err(IndexError::InvalidVersion { .. })));
        assert!(matches!(parse_filename("foo.-1.0.tar.gz"), Err(IndexError::InvalidName { .. })));
        let msg = parse_filename("foo-1.0-py3-none.whl").unwrap_err().to_string();
        assert!(msg.starts_with("foo-1.0-py3-none.whl: "), "{msg}");
        assert!(msg.contains("PEP 427"), "{msg}");
    }

    #[test]
    fn version_normalisation() {
        assert_eq!(normalize_version("1.0-RC1").as_deref(), Some("1.0rc1"));
        assert_eq!(normalize_version("1.0-1").as_deref(), Some("1.0.post1"));
        assert_eq!(normalize_version("01.02").as_deref(), Some("1.2"));
        assert_eq!(normalize_version("1.0.alpha2").as_deref(), Some("1.0a2"));
        assert_eq!(normalize_version("nope"), None);
    }
}
