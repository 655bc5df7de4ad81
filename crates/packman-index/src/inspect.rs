//! Reading a distribution file: its name, and its core metadata from inside the archive.
//!
//! Archives are streamed: a wheel's central directory is read, then only its `METADATA`
//! entry is decompressed, through a size bound; a `.tar.gz` is decompressed entry by entry
//! without being kept, up to [`MAX_SDIST_SCAN`] bytes. Nothing reads a whole archive into
//! memory.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use zip::ZipArchive;

use crate::filename::{parse_filename, parse_version, ArchiveFormat, DistFilename, DistKind};
use crate::metadata::parse_core_metadata;
use crate::name::{is_valid_name, normalize_name};
use crate::IndexError;

/// Largest core metadata file (`METADATA` / `PKG-INFO`) accepted, in bytes.
pub const MAX_CORE_METADATA_SIZE: u64 = 4 * 1024 * 1024;

/// Most uncompressed bytes read from an sdist `.tar.gz` while looking for `PKG-INFO`.
pub const MAX_SDIST_SCAN: u64 = 2 * 1024 * 1024 * 1024;

/// A distribution file checked for consistency, with its core metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// The file name, e.g. `foo_bar-1.0-py3-none-any.whl`.
    pub filename: String,
    pub kind: DistKind,
    /// PEP 503-normalised project name, e.g. `foo-bar`.
    pub project: String,
    /// The project name as the metadata spells it, e.g. `Foo_Bar`.
    pub display_name: String,
    /// PEP 440-normalised version.
    pub version: String,
    /// `Metadata-Version`, e.g. `2.1`.
    pub metadata_version: String,
    pub requires_python: Option<String>,
    pub requires_dist: Vec<String>,
    pub summary: Option<String>,
    /// The raw `METADATA` / `PKG-INFO` bytes. For a wheel this is what is published as the
    /// PEP 658 `{url}.metadata` file.
    pub core_metadata: Vec<u8>,
}

/// Inspect a wheel (`.whl`) or sdist (`.tar.gz`, `.zip`): parse the file name, read the
/// core metadata from the archive and check that its `Name` and `Version` agree with the
/// file name after normalisation.
pub fn inspect(path: &Path) -> Result<Distribution, IndexError> {
    let filename = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| IndexError::BadPath { file: path.display().to_string() })?
        .to_string();
    let parsed = parse_filename(&filename)?;
    let file = File::open(path).map_err(|source| IndexError::Io { file: filename.clone(), source })?;
    let core_metadata = match (parsed.kind, parsed.format) {
        (DistKind::Wheel, _) => wheel_metadata(&filename, &parsed, file)?,
        (DistKind::Sdist, ArchiveFormat::Zip) => zip_sdist_metadata(&filename, file)?,
        (DistKind::Sdist, ArchiveFormat::TarGz) => tar_sdist_metadata(&filename, file, MAX_SDIST_SCAN)?,
    };
    check(filename, parsed, core_metadata)
}

fn check(filename: String, parsed: DistFilename, core_metadata: Vec<u8>) -> Result<Distribution, IndexError> {
    let meta = parse_core_metadata(&filename, &core_metadata)?;
    if !is_valid_name(&meta.name) {
        return Err(IndexError::InvalidName { file: filename, name: meta.name });
    }
    if normalize_name(&meta.name) != parsed.project {
        return Err(IndexError::NameMismatch { file: filename, filename: parsed.project, metadata: meta.name });
    }
    let version = parse_version(&filename, &meta.version)?.to_string();
    if version != parsed.version {
        return Err(IndexError::VersionMismatch { file: filename, filename: parsed.version, metadata: meta.version });
    }
    Ok(Distribution {
        filename,
        kind: parsed.kind,
        project: parsed.project,
        display_name: meta.name,
        version,
        metadata_version: meta.metadata_version,
        requires_python: meta.requires_python,
        requires_dist: meta.requires_dist,
        summary: meta.summary,
        core_metadata,
    })
}

/// Read at most [`MAX_CORE_METADATA_SIZE`] bytes; more is an error, whatever a header
/// claimed the size to be.
fn read_bounded(file: &str, member: &str, declared: u64, reader: impl Read) -> Result<Vec<u8>, IndexError> {
    let too_large = || IndexError::MetadataTooLarge {
        file: file.to_string(),
        member: member.to_string(),
        limit: MAX_CORE_METADATA_SIZE,
    };
    if declared > MAX_CORE_METADATA_SIZE {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared as usize);
    reader
        .take(MAX_CORE_METADATA_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| IndexError::CorruptArchive { file: file.to_string(), detail: format!("reading {member}: {e}") })?;
    if buf.len() as u64 > MAX_CORE_METADATA_SIZE {
        return Err(too_large());
    }
    Ok(buf)
}

fn open_zip(file: &str, f: File) -> Result<ZipArchive<BufReader<File>>, IndexError> {
    let mut archive = ZipArchive::new(BufReader::new(f))
        .map_err(|e| IndexError::CorruptArchive { file: file.to_string(), detail: e.to_string() })?;
    if archive.has_duplicate_names() {
        return Err(IndexError::DuplicateNames { file: file.to_string() });
    }
    // Local headers must agree with the central directory, entries must not overlap (the
    // classic zip-bomb layout) and no local header may hide outside it: readers that
    // stream local headers and readers that trust the directory then see the same files.
    archive
        .validate_header_consistency()
        .map_err(|e| IndexError::CorruptArchive { file: file.to_string(), detail: e.to_string() })?;
    Ok(archive)
}

fn zip_names<R: Read + Seek>(file: &str, archive: &ZipArchive<R>) -> Result<Vec<String>, IndexError> {
    archive
        .file_names()
        .map(|n| {
            n.map(|n| n.into_owned())
                .map_err(|e| IndexError::CorruptArchive { file: file.to_string(), detail: e.to_string() })
        })
        .collect()
}

fn read_zip_member<R: Read + Seek>(
    file: &str,
    archive: &mut ZipArchive<R>,
    member: &str,
) -> Result<Vec<u8>, IndexError> {
    let missing = || IndexError::MissingMetadata { file: file.to_string(), member: member.to_string() };
    let index = archive.index_for_name(member).ok_or_else(missing)?;
    let entry = archive
        .by_index(index)
        .map_err(|e| IndexError::CorruptArchive { file: file.to_string(), detail: format!("{member}: {e}") })?;
    if !entry.is_file() || entry.is_symlink() {
        return Err(missing());
    }
    let declared = entry.size();
    read_bounded(file, member, declared, entry)
}

fn wheel_metadata(file: &str, parsed: &DistFilename, f: File) -> Result<Vec<u8>, IndexError> {
    let mut archive = open_zip(file, f)?;
    let names = zip_names(file, &archive)?;
    let dirs: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    let dir = match dirs.len() {
        0 => return Err(IndexError::NoDistInfo { file: file.to_string() }),
        1 => dirs.first().copied().unwrap_or_default().to_string(),
        _ => {
            return Err(IndexError::SeveralDistInfo {
                file: file.to_string(),
                dirs: dirs.iter().map(|d| d.to_string()).collect(),
            })
        }
    };
    // `{name}-{version}.dist-info`, compared after normalisation, as installers do.
    let matches = dir.strip_suffix(".dist-info").and_then(|s| s.rsplit_once('-')).is_some_and(|(n, v)| {
        normalize_name(n) == parsed.project && parse_version(file, v).is_ok_and(|v| v.to_string() == parsed.version)
    });
    if !matches {
        return Err(IndexError::DistInfoMismatch {
            file: file.to_string(),
            dir,
            expected: format!("{}-{}.dist-info", parsed.name, parsed.version),
        });
    }
    read_zip_member(file, &mut archive, &format!("{dir}/METADATA"))
}

/// `X/PKG-INFO` exactly one level deep (ignoring a leading `./`).
fn top_level_pkg_info(path: &str) -> Option<&str> {
    let path = path.strip_prefix("./").unwrap_or(path);
    let (top, rest) = path.split_once('/')?;
    (rest == "PKG-INFO" && !top.is_empty() && top != "." && top != "..").then_some(top)
}

/// Pick the sdist's `PKG-INFO` among top-level candidates: `{stem}/PKG-INFO` if present,
/// else the only candidate.
fn choose_pkg_info<'a>(file: &str, candidates: &'a [String]) -> Result<&'a str, IndexError> {
    let stem = DistFilename::stem(file);
    let expected = format!("{stem}/PKG-INFO");
    let normal = |c: &str| c.strip_prefix("./").unwrap_or(c).to_string();
    let exact: Vec<&String> = candidates.iter().filter(|c| normal(c) == expected).collect();
    match (exact.as_slice(), candidates) {
        ([one], _) => Ok(one.as_str()),
        ([_, ..], _) => Err(IndexError::DuplicateEntry { file: file.to_string(), entry: expected }),
        ([], [one]) => Ok(one.as_str()),
        ([], []) => Err(IndexError::MissingMetadata { file: file.to_string(), member: expected }),
        ([], _) => {
            Err(IndexError::AmbiguousMetadata { file: file.to_string(), members: candidates.to_vec(), expected })
        }
    }
}

fn zip_sdist_metadata(file: &str, f: File) -> Result<Vec<u8>, IndexError> {
    let mut archive = open_zip(file, f)?;
    let names = zip_names(file, &archive)?;
    let candidates: Vec<String> = names.into_iter().filter(|n| top_level_pkg_info(n).is_some()).collect();
    let member = choose_pkg_info(file, &candidates)?.to_string();
    read_zip_member(file, &mut archive, &member)
}

/// Counts decompressed bytes and refuses to go past a limit, recording that it did.
struct ScanLimit<R> {
    inner: R,
    remaining: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for ScanLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 && !buf.is_empty() {
            // Only an error if there really is more data.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.hit.set(true);
            return Err(io::Error::other("scan limit reached"));
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn tar_sdist_metadata(file: &str, f: File, scan_limit: u64) -> Result<Vec<u8>, IndexError> {
    let hit = Rc::new(Cell::new(false));
    let reader = ScanLimit {
        inner: flate2::read::MultiGzDecoder::new(BufReader::new(f)),
        remaining: scan_limit,
        hit: hit.clone(),
    };
    let mut archive = tar::Archive::new(reader);
    let stem = DistFilename::stem(file);
    let expected = format!("{stem}/PKG-INFO");
    let fail = |e: io::Error| {
        if hit.get() {
            IndexError::ArchiveTooLarge { file: file.to_string(), limit: scan_limit }
        } else {
            IndexError::CorruptArchive { file: file.to_string(), detail: e.to_string() }
        }
    };

    // The whole archive is walked, so that a second PKG-INFO (which an extractor would let
    // win) cannot hide behind the first. Only the preferred candidate's bytes, or the first
    // candidate's, are kept.
    let mut candidates: Vec<String> = Vec::new();
    let mut kept: Option<(String, Vec<u8>)> = None;
    for entry in archive.entries().map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if top_level_pkg_info(&path).is_none() {
            continue;
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(IndexError::CorruptArchive {
                file: file.to_string(),
                detail: format!("{path} is not a regular file"),
            });
        }
        let preferred = path.strip_prefix("./").unwrap_or(&path) == expected;
        let keep = match &kept {
            None => true,
            Some((k, _)) => preferred && k.strip_prefix("./").unwrap_or(k) != expected,
        };
        if keep {
            let declared = entry.size();
            let bytes = read_bounded(file, &path, declared, entry).map_err(|e| {
                if hit.get() {
                    IndexError::ArchiveTooLarge { file: file.to_string(), limit: scan_limit }
                } else {
                    e
                }
            })?;
            kept = Some((path.clone(), bytes));
        }
        candidates.push(path);
    }
    let chosen = choose_pkg_info(file, &candidates)?;
    match kept {
        Some((path, bytes)) if path == chosen => Ok(bytes),
        _ => Err(IndexError::MissingMetadata { file: file.to_string(), member: expected }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use zip::write::SimpleFileOptions;

    pub(crate) fn metadata(name: &str, version: &str) -> String {
        format!(
            "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: A test package\n\
             Requires-Python: >=3.8,<4\nRequires-Dist: requests>=2\nRequires-Dist: tomli; python_version<\"3.11\"\n\n\
             Long description.\n"
        )
    }

    pub(crate) fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }

    fn write_targz(path: &Path, entries: &[(&str, &[u8])]) {
        let gz = GzEncoder::new(File::create(path).unwrap(), Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }

    /// Build a plausible wheel; returns its path.
    pub(crate) fn make_wheel(dir: &Path, filename: &str, distinfo: &str, meta: &str) -> PathBuf {
        let path = dir.join(filename);
        let md = format!("{distinfo}/METADATA");
        let wheel = format!("{distinfo}/WHEEL");
        let record = format!("{distinfo}/RECORD");
        write_zip(
            &path,
            &[
                ("pkg/__init__.py", b"x = 1\n"),
                (&md, meta.as_bytes()),
                (&wheel, b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
                (&record, b""),
            ],
        );
        path
    }

    #[test]
    fn wheel_is_inspected() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = metadata("Foo_Bar", "1.0");
        let p = make_wheel(tmp.path(), "Foo_Bar-1.0-py3-none-any.whl", "Foo_Bar-1.0.dist-info", &meta);
        let d = inspect(&p).unwrap();
        assert_eq!(d.filename, "Foo_Bar-1.0-py3-none-any.whl");
        assert_eq!(d.kind, DistKind::Wheel);
        assert_eq!(d.project, "foo-bar");
        assert_eq!(d.display_name, "Foo_Bar");
        assert_eq!(d.version, "1.0");
        assert_eq!(d.metadata_version, "2.1");
        assert_eq!(d.requires_python.as_deref(), Some(">=3.8,<4"));
        assert_eq!(d.requires_dist, vec!["requests>=2", "tomli; python_version<\"3.11\""]);
        assert_eq!(d.summary.as_deref(), Some("A test package"));
        assert_eq!(d.core_metadata, meta.as_bytes());
    }

    #[test]
    fn wheel_versions_compare_normalised() {
        let tmp = tempfile::tempdir().unwrap();
        // file name says 1.0rc1, metadata says 1.0-RC1, dist-info spells it yet another way
        let p = make_wheel(
            tmp.path(),
            "foo.bar-1.0rc1-py3-none-any.whl",
            "foo_bar-1.0c1.dist-info",
            &metadata("Foo.Bar", "1.0-RC1"),
        );
        let d = inspect(&p).unwrap();
        assert_eq!((d.project.as_str(), d.version.as_str()), ("foo-bar", "1.0rc1"));
    }

    #[test]
    fn sdist_targz_is_inspected() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("foo_bar-2.0.tar.gz");
        let meta = metadata("foo-bar", "2.0");
        write_targz(
            &p,
            &[
                ("foo_bar-2.0/setup.py", b"pass\n"),
                ("foo_bar-2.0/src/foo_bar.egg-info/PKG-INFO", b"not this one"),
                ("foo_bar-2.0/PKG-INFO", meta.as_bytes()),
            ],
        );
        let d = inspect(&p).unwrap();
        assert_eq!(d.kind, DistKind::Sdist);
        assert_eq!(d.project, "foo-bar");
        assert_eq!(d.display_name, "foo-bar");
        assert_eq!(d.version, "2.0");
        assert_eq!(d.core_metadata, meta.as_bytes());
    }

    #[test]
    fn sdist_with_other_top_dir_and_zip_sdist() {
        let tmp = tempfile::tempdir().unwrap();
        // top-level directory spelled differently from the file name: the only candidate wins
        let p = tmp.path().join("Foo-3.0.tar.gz");
        write_targz(&p, &[("./foo-3.0/PKG-INFO", metadata("foo", "3.0").as_bytes())]);
        assert_eq!(inspect(&p).unwrap().version, "3.0");

        let p = tmp.path().join("foo-3.1.zip");
        write_zip(&p, &[("foo-3.1/PKG-INFO", metadata("Foo", "3.1").as_bytes())]);
        let d = inspect(&p).unwrap();
        assert_eq!((d.kind, d.project.as_str(), d.version.as_str()), (DistKind::Sdist, "foo", "3.1"));
    }

    #[test]
    fn sdist_pkg_info_ambiguity_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let m = metadata("foo", "1.0");
        let p = tmp.path().join("foo-1.0.tar.gz");
        write_targz(&p, &[("foo-1.0/PKG-INFO", m.as_bytes()), ("foo-1.0/PKG-INFO", b"evil")]);
        assert!(matches!(inspect(&p), Err(IndexError::DuplicateEntry { .. })), "{:?}", inspect(&p));

        let p = tmp.path().join("foo-1.1.tar.gz");
        write_targz(&p, &[("a/PKG-INFO", m.as_bytes()), ("b/PKG-INFO", m.as_bytes())]);
        assert!(matches!(inspect(&p), Err(IndexError::AmbiguousMetadata { .. })));

        // the preferred location wins over other top-level candidates
        let p = tmp.path().join("foo-1.0.zip");
        write_zip(&p, &[("other/PKG-INFO", b"junk"), ("foo-1.0/PKG-INFO", m.as_bytes())]);
        assert_eq!(inspect(&p).unwrap().version, "1.0");
    }

    #[test]
    fn sdist_without_pkg_info() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("foo-1.0.tar.gz");
        write_targz(&p, &[("foo-1.0/setup.py", b"pass\n")]);
        let e = inspect(&p).unwrap_err();
        assert!(matches!(e, IndexError::MissingMetadata { ref member, .. } if member == "foo-1.0/PKG-INFO"), "{e}");
    }

    #[test]
    fn corrupt_archives() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("foo-1.0-py3-none-any.whl");
        std::fs::write(&p, b"this is not a zip file at all").unwrap();
        assert!(matches!(inspect(&p), Err(IndexError::CorruptArchive { .. })));

        let p = tmp.path().join("foo-1.0.tar.gz");
        std::fs::write(&p, b"not gzip").unwrap();
        assert!(matches!(inspect(&p), Err(IndexError::CorruptArchive { .. })));

        // a valid wheel cut short
        let good = make_wheel(tmp.path(), "bar-1.0-py3-none-any.whl", "bar-1.0.dist-info", &metadata("bar", "1.0"));
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&good, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(inspect(&good), Err(IndexError::CorruptArchive { .. })));

        // a truncated tar.gz
        let p = tmp.path().join("baz-1.0.tar.gz");
        write_targz(&p, &[("baz-1.0/PKG-INFO", metadata("baz", "1.0").as_bytes())]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(inspect(&p), Err(IndexError::CorruptArchive { .. })), "{:?}", inspect(&p));

        let missing = tmp.path().join("nothere-1.0.tar.gz");
        assert!(matches!(inspect(&missing), Err(IndexError::Io { .. })));
    }

    #[test]
    fn wheel_dist_info_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let m = metadata("foo", "1.0");
        let p = tmp.path().join("foo-1.0-py3-none-any.whl");

        write_zip(&p, &[("foo/__init__.py", b"")]);
        assert!(matches!(inspect(&p), Err(IndexError::NoDistInfo { .. })));

        write_zip(&p, &[("foo-1.0.dist-info/METADATA", m.as_bytes()), ("bar-1.0.dist-info/METADATA", m.as_bytes())]);
        let e = inspect(&p).unwrap_err();
        assert!(matches!(e, IndexError::SeveralDistInfo { ref dirs, .. } if dirs.len() == 2), "{e}");

        write_zip(&p, &[("foo-1.0.dist-info/WHEEL", b"")]);
        let e = inspect(&p).unwrap_err();
        assert!(
            matches!(e, IndexError::MissingMetadata { ref member, .. } if member == "foo-1.0.dist-info/METADATA"),
            "{e}"
        );

        write_zip(&p, &[("foo-2.0.dist-info/METADATA", m.as_bytes())]);
        assert!(matches!(inspect(&p), Err(IndexError::DistInfoMismatch { .. })));

        // a nested dist-info directory does not count
        write_zip(&p, &[("foo-1.0.dist-info/METADATA", m.as_bytes()), ("vendored/x-1.0.dist-info/METADATA", b"")]);
        assert!(inspect(&p).is_ok());
    }

    #[test]
    fn name_and_version_mismatch() {
        let tmp = tempfile::tempdir().unwrap();
        let p = make_wheel(tmp.path(), "foo-1.0-py3-none-any.whl", "foo-1.0.dist-info", &metadata("bar", "1.0"));
        let e = inspect(&p).unwrap_err();
        assert!(matches!(e, IndexError::NameMismatch { .. }), "{e}");
        assert!(e.to_string().starts_with("foo-1.0-py3-none-any.whl: "));

        let p = make_wheel(tmp.path(), "foo-1.0-py3-none-any.whl", "foo-1.0.dist-info", &metadata("foo", "1.0.1"));
        assert!(matches!(inspect(&p), Err(IndexError::VersionMismatch { .. })));

        let p = tmp.path().join("foo-1.0.tar.gz");
        write_targz(&p, &[("foo-1.0/PKG-INFO", metadata("foo", "2.0").as_bytes())]);
        assert!(matches!(inspect(&p), Err(IndexError::VersionMismatch { .. })));

        let p = make_wheel(tmp.path(), "foo-1.0-py3-none-any.whl", "foo-1.0.dist-info", &metadata("foo bar", "1.0"));
        assert!(matches!(inspect(&p), Err(IndexError::InvalidName { .. })));
    }

    #[test]
    fn bad_file_names_are_refused_before_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("not-a-wheel.whl");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(inspect(&p), Err(IndexError::BadFilename { .. })));
        let p = tmp.path().join("foo-1.0.egg");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(inspect(&p), Err(IndexError::UnsupportedExtension { .. })));
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut big = metadata("foo", "1.0");
        big.push_str(&"x".repeat(MAX_CORE_METADATA_SIZE as usize));
        let p = make_wheel(tmp.path(), "foo-1.0-py3-none-any.whl", "foo-1.0.dist-info", &big);
        // highly compressible: the archive is small, the entry is not
        assert!(std::fs::metadata(&p).unwrap().len() < 64 * 1024);
        let e = inspect(&p).unwrap_err();
        assert!(matches!(e, IndexError::MetadataTooLarge { .. }), "{e}");

        let p = tmp.path().join("foo-1.0.tar.gz");
        write_targz(&p, &[("foo-1.0/PKG-INFO", big.as_bytes())]);
        assert!(matches!(inspect(&p), Err(IndexError::MetadataTooLarge { .. })));

        // exactly at the limit is fine
        let mut edge = metadata("foo", "1.0");
        edge.push_str(&"y".repeat(MAX_CORE_METADATA_SIZE as usize - edge.len()));
        let p = make_wheel(tmp.path(), "foo-1.0-py3-none-any.whl", "foo-1.0.dist-info", &edge);
        assert_eq!(inspect(&p).unwrap().core_metadata.len() as u64, MAX_CORE_METADATA_SIZE);
    }

    #[test]
    fn duplicate_zip_entries_are_refused() {
        // ZipWriter refuses duplicates, so rename the second entry in place: both local
        // header and central directory store the name, same length.
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("foo-1.0-py3-none-any.whl");
        let m = metadata("foo", "1.0");
        write_zip(&p, &[("foo-1.0.dist-info/METADATA", m.as_bytes()), ("foo-1.0.dist-info/METADATX", b"evil")]);
        let mut bytes = std::fs::read(&p).unwrap();
        let needle = b"METADATX";
        let mut i = 0;
        while i + needle.len() <= bytes.len() {
            if &bytes[i..i + needle.len()] == needle {
                bytes[i + needle.len() - 1] = b'A';
            }
            i += 1;
        }
        std::fs::write(&p, &bytes).unwrap();
        let e = inspect(&p).unwrap_err();
        assert!(matches!(e, IndexError::DuplicateNames { .. }), "{e}");
    }

    #[test]
    fn sdist_scan_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("foo-1.0.tar.gz");
        let filler = vec![0u8; 256 * 1024];
        // PKG-INFO last, behind more data than the scan allows
        write_targz(&p, &[("foo-1.0/big.bin", &filler), ("foo-1.0/PKG-INFO", metadata("foo", "1.0").as_bytes())]);
        let open = || File::open(&p).unwrap();
        let e = tar_sdist_metadata("foo-1.0.tar.gz", open(), 64 * 1024).unwrap_err();
        assert!(matches!(e, IndexError::ArchiveTooLarge { limit: 65536, .. }), "{e}");
        assert!(tar_sdist_metadata("foo-1.0.tar.gz", open(), 1024 * 1024).is_ok());
    }

    /// A METADATA entry whose headers claim 100 bytes but which inflates to more than the
    /// limit: the bounded read stops it, whatever the zip reader makes of the lie.
    #[test]
    fn lying_zip_size_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let mut big = metadata("foo", "1.0");
        big.push_str(&"x".repeat(2 * MAX_CORE_METADATA_SIZE as usize));
        let p = tmp.path().join("foo-1.0-py3-none-any.whl");
        write_zip(&p, &[("foo-1.0.dist-info/METADATA", big.as_bytes())]);
        let mut bytes = std::fs::read(&p).unwrap();
        let real = (big.len() as u32).to_le_bytes();
        let mut patched = 0;
        for i in 0..bytes.len().saturating_sub(4) {
            if bytes[i..i + 4] == real {
                bytes[i..i + 4].copy_from_slice(&100u32.to_le_bytes());
                patched += 1;
            }
        }
        assert!(patched >= 2, "local and central sizes patched");
        std::fs::write(&p, &bytes).unwrap();
        let e = inspect(&p).unwrap_err();
        assert!(matches!(e, IndexError::MetadataTooLarge { .. } | IndexError::CorruptArchive { .. }), "{e}");
    }

    #[test]
    fn scan_limit_reader() {
        let hit = Rc::new(Cell::new(false));
        let mut r = ScanLimit { inner: &[1u8, 2, 3, 4][..], remaining: 4, hit: hit.clone() };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 4);
        assert!(!hit.get());
        let mut r = ScanLimit { inner: &[1u8, 2, 3, 4, 5][..], remaining: 4, hit: hit.clone() };
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert!(hit.get());
    }
}
