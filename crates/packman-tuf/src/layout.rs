//! The file names of a TUF repository, in one place: where metadata and targets live, the
//! names consistent snapshots give them, which names are rewritten and which never change,
//! the URLs a client fetches, and the local names it saves under.
//!
//! A repository is two trees under one base: `metadata/` and `targets/`.
//! - Metadata: `N.ROLE.json` for every version of every role (consistent snapshots), plus
//!   `root.json` (the newest root) and `timestamp.json`, the one file a client fetches
//!   without knowing its version. Role names are quoted as Python's `quote(name, safe="")`
//!   quotes them, as python-tuf does, so a role name never makes a path.
//! - Targets: `DIR/HASH.NAME` for a target `DIR/NAME` (consistent snapshots; HASH is the
//!   first hash the signed description lists), and packman also writes `DIR/NAME` for static
//!   hosts and pip. packman's Python index puts distributions under [`PACKAGES_DIR`] and the
//!   PEP 503/691 pages under [`SIMPLE_DIR`].
//!
//! Versioned metadata and hash-prefixed targets never change once written ([`is_immutable`]);
//! a reader may cache them forever. `timestamp.json`, `root.json` and plain target names are
//! replaced by each publish.

use std::path::{Component, Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// The metadata tree under a repository's base.
pub const METADATA_DIR: &str = "metadata";
/// The targets tree under a repository's base.
pub const TARGETS_DIR: &str = "targets";
/// packman's Python index: distribution files, as `packages/PROJECT/FILENAME` targets.
pub const PACKAGES_DIR: &str = "packages";
/// packman's Python index: the PEP 503/691 pages, as `simple/…` targets.
pub const SIMPLE_DIR: &str = "simple";
/// The one metadata file fetched by a fixed name on every update.
pub const TIMESTAMP_FILE: &str = "timestamp.json";
/// The signed target listing a repository's mirrors ([`crate::mirrors::MirrorList`]): read
/// by clients only after a verified refresh, written by `packman repo mirrors`.
pub const MIRRORS_TARGET: &str = "mirrors.json";
/// The newest root under a fixed name (clients walk `N.root.json`; this is for people and
/// tools that bootstrap from the repository itself).
pub const ROOT_FILE: &str = "root.json";

/// A target path or URL this layout refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("target path {path:?} climbs above the targets base ('..' past its first segment)")]
    ClimbsAboveBase { path: String },
    #[error("target path {path:?} names no file (it is empty or ends in a directory)")]
    NoFileName { path: String },
    #[error("target path {path:?} has a last segment {segment:?} that cannot be a file name here")]
    UnsafeFileName { path: String, segment: String },
}

/// Python's `urllib.parse.quote(name, safe="")`: what python-tuf names role files with.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');

/// A role name made safe as one file name or URL segment (Python's `quote(name, safe="")`,
/// and `.`/`..`, which survive that, escaped too).
pub fn quote(name: &str) -> String {
    let q = utf8_percent_encode(name, QUOTE).to_string();
    match q.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => q,
    }
}

/// How a snapshot (or timestamp) lists a role: `ROLE.json`, unquoted.
pub fn meta_key(role: &str) -> String {
    format!("{role}.json")
}

/// The file name of a role's metadata: `N.ROLE.json` for a version, `ROLE.json` without.
pub fn metadata_file(role: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{v}.{}.json", quote(role)),
        None => format!("{}.json", quote(role)),
    }
}

/// The version and role of a metadata file name written by [`metadata_file`] with a
/// version (`N.ROLE.json`); `None` for any other name.
pub fn parse_versioned_metadata(name: &str) -> Option<(u64, &str)> {
    let stem = name.strip_suffix(".json")?;
    let (v, role) = stem.split_once('.')?;
    let version = v.parse().ok().filter(|_| !v.starts_with('+') && !role.is_empty())?;
    Some((version, role))
}

/// The name consistent snapshots give a target: `DIR/HASH.NAME` for `DIR/NAME`.
pub fn hashed_target(path: &str, hash: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{hash}.{name}"),
        None => format!("{hash}.{path}"),
    }
}

/// Whether a target is also written under its plain name `targets/PATH` (a hard link to
/// its `DIR/HASH.NAME` file): distribution files and simple pages, so pip can use a
/// published tree or a mirror from any static host.
pub fn plain_copy_wanted(path: &str) -> bool {
    let top = path.split('/').next().unwrap_or("");
    top == PACKAGES_DIR || top == SIMPLE_DIR
}

/// Whether a file of the metadata tree (`in_metadata = true`) or the targets tree never
/// changes once written: versioned metadata and hash-prefixed targets (a SHA-256, SHA-384 or
/// SHA-512 in lower-case hex before the first dot of the file name).
pub fn is_immutable(name: &str, in_metadata: bool) -> bool {
    if in_metadata {
        return parse_versioned_metadata(name.rsplit('/').next().unwrap_or(name)).is_some();
    }
    let file = name.rsplit('/').next().unwrap_or(name);
    file.split_once('.').is_some_and(|(h, rest)| {
        !rest.is_empty()
            && matches!(h.len(), 64 | 96 | 128)
            && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Where a file of a repository goes in the one order every writer (publisher, object-store
/// push, mirror, bundle import) puts files in place, so that a reader always finds a
/// complete repository: targets (rank 0), then versioned metadata other than snapshots (1),
/// `root.json` (2), snapshots (3), and `timestamp.json`, which leads to all of them, last (4).
/// `rel` is the path under the repository's base, with `/` separators.
pub fn write_rank(rel: &str) -> u8 {
    let Some(name) = rel.strip_prefix(METADATA_DIR).and_then(|r| r.strip_prefix('/')) else {
        return 0;
    };
    if name == TIMESTAMP_FILE {
        4
    } else if parse_versioned_metadata(name).is_some_and(|(_, role)| role == "snapshot") {
        3
    } else if name == ROOT_FILE {
        2
    } else {
        1
    }
}

/// A target path with its dot segments removed as RFC 3986 section 5.2.4 removes them (as
/// browsers, curl and nginx do): `foo/../data1.txt` is `data1.txt`. A `..` with nothing left
/// to remove climbs above the targets base and is refused (RFC 3986 would drop it silently).
pub fn resolve_target_path(path: &str) -> Result<String, LayoutError> {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let mut trailing_dir = false;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => trailing_dir = last,
            ".." => {
                if out.pop().is_none() {
                    return Err(LayoutError::ClimbsAboveBase { path: path.into() });
                }
                trailing_dir = last;
            }
            s => out.push(s),
        }
    }
    let mut resolved = out.join("/");
    if trailing_dir {
        resolved.push('/');
    }
    Ok(resolved)
}

/// Characters escaped in one URL path segment of a target: controls, space, and those that
/// would end or restructure the path (`/` between segments is added back by the caller, `\`
/// is a separator to browsers and some servers). Everything else is sent as published, as
/// python-tuf sends it.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\');

/// The URL a client fetches target `path` from under `base` (which ends in `/`): hash-
/// prefixed when `hash` is given (consistent snapshots), dot segments resolved (see
/// [`resolve_target_path`]) and each segment percent-encoded. Refuses a path that climbs
/// above `base` or names no file.
pub fn target_url(base: &str, path: &str, hash: Option<&str>) -> Result<String, LayoutError> {
    let name = match hash {
        Some(h) => hashed_target(path, h),
        None => path.to_string(),
    };
    let resolved = resolve_target_path(&name)?;
    if resolved.is_empty() || resolved.ends_with('/') {
        return Err(LayoutError::NoFileName { path: path.into() });
    }
    let mut url = String::with_capacity(base.len() + resolved.len() + 1);
    url.push_str(base);
    if !base.ends_with('/') {
        url.push('/');
    }
    for (i, seg) in resolved.split('/').enumerate() {
        if i > 0 {
            url.push('/');
        }
        url.extend(utf8_percent_encode(seg, SEGMENT));
    }
    Ok(url)
}

/// The URL of a role's metadata under `base` (which ends in `/`).
pub fn metadata_url(base: &str, role: &str, version: Option<u64>) -> String {
    let sep = if base.ends_with('/') { "" } else { "/" };
    format!("{base}{sep}{}", metadata_file(role, version))
}

/// The file name a target is saved under when it is saved by its own name: the last segment
/// of the resolved path. Refused when that cannot be one plain file name on this platform
/// (empty, `.`/`..`, a separator, a drive prefix), so a saved file never lands outside the
/// directory it is saved in.
pub fn file_name(path: &str) -> Result<String, LayoutError> {
    let resolved = resolve_target_path(path)?;
    let segment = resolved.rsplit('/').next().unwrap_or("");
    if segment.is_empty() {
        return Err(LayoutError::NoFileName { path: path.into() });
    }
    let unsafe_name = || LayoutError::UnsafeFileName { path: path.into(), segment: segment.into() };
    if segment.contains(['\\', '\0']) {
        return Err(unsafe_name());
    }
    let mut parts = Path::new(segment).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) if n == std::ffi::OsStr::new(segment) => Ok(segment.to_string()),
        _ => Err(unsafe_name()),
    }
}

/// A target's file in a cache directory: the whole path quoted into one file name (as
/// python-tuf's updater names its downloads), so distinct paths never collide and no path
/// leaves `dir`.
pub fn cache_path(dir: &Path, target: &str) -> PathBuf {
    dir.join(quote(target))
}

/// packman's Python index: the target a distribution file is published as.
pub fn package_target(project: &str, filename: &str) -> String {
    format!("{PACKAGES_DIR}/{project}/{filename}")
}

/// packman's Python index: the target of a project's PEP 691 page (`index.json`) or PEP 503
/// page (`index.html`), or of the project list when `project` is `None`.
pub fn simple_page(project: Option<&str>, json: bool) -> String {
    let file = if json { "index.json" } else { "index.html" };
    match project {
        Some(p) => format!("{SIMPLE_DIR}/{p}/{file}"),
        None => format!("{SIMPLE_DIR}/{file}"),
    }
}

/// Unreserved characters (RFC 3986) and the two pip and uv leave alone in file names.
const LINK_SEGMENT: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'+').remove(b'!');

/// The link from a project's simple page to one of its files: relative (`../../packages/…`),
/// so the pages work from any host that serves the tree, and the file name percent-encoded.
pub fn page_link_to_package(project: &str, filename: &str) -> String {
    format!("../../{PACKAGES_DIR}/{project}/{}", utf8_percent_encode(filename, LINK_SEGMENT))
}

/// The paths of a repository kept on a local filesystem (a published tree or a mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPaths {
    base: PathBuf,
}

impl RepoPaths {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        RepoPaths { base: base.into() }
    }
    pub fn base(&self) -> &Path {
        &self.base
    }
    pub fn metadata_dir(&self) -> PathBuf {
        self.base.join(METADATA_DIR)
    }
    pub fn targets_dir(&self) -> PathBuf {
        self.base.join(TARGETS_DIR)
    }
    /// `metadata/N.ROLE.json`, or `metadata/ROLE.json` without a version.
    pub fn metadata(&self, role: &str, version: Option<u64>) -> PathBuf {
        self.metadata_dir().join(metadata_file(role, version))
    }
    /// `targets/PATH` (a path checked by the publisher: relative, no dot segments).
    pub fn target(&self, path: &str) -> PathBuf {
        self.targets_dir().join(path)
    }
    /// `targets/DIR/HASH.NAME`.
    pub fn hashed_target(&self, path: &str, hash: &str) -> PathBuf {
        self.targets_dir().join(hashed_target(path, hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_python_and_keeps_names_inside_the_directory() {
        assert_eq!(quote("targets"), "targets");
        assert_eq!(quote("bins-3f"), "bins-3f");
        assert_eq!(quote("/delegatedrole"), "%2Fdelegatedrole");
        assert_eq!(quote("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(quote("?"), "%3F");
        assert_eq!(quote(".."), "%2E%2E");
        assert_eq!(quote("."), "%2E");
    }

    #[test]
    fn metadata_names() {
        assert_eq!(metadata_file("snapshot", Some(7)), "7.snapshot.json");
        assert_eq!(metadata_file("timestamp", None), TIMESTAMP_FILE);
        assert_eq!(metadata_file("a/b", Some(1)), "1.a%2Fb.json");
        assert_eq!(meta_key("bins-0a"), "bins-0a.json");
        assert_eq!(metadata_url("http://h/m/", "root", Some(2)), "http://h/m/2.root.json");
        assert_eq!(metadata_url("http://h/m", "root", None), "http://h/m/root.json");
        assert_eq!(parse_versioned_metadata("12.bins-0a.json"), Some((12, "bins-0a")));
        assert_eq!(parse_versioned_metadata("timestamp.json"), None);
        assert_eq!(parse_versioned_metadata("x.targets.json"), None);
        assert_eq!(parse_versioned_metadata("+1.targets.json"), None);
        assert_eq!(parse_versioned_metadata("1..json"), None);
    }

    #[test]
    fn write_order_puts_targets_first_and_the_timestamp_last() {
        let mut files = [
            "metadata/timestamp.json",
            "metadata/4.snapshot.json",
            "metadata/root.json",
            "metadata/2.root.json",
            "metadata/7.bins-0a.json",
            "targets/packages/p/p-1.0.tar.gz",
        ];
        files.sort_by_key(|f| write_rank(f));
        assert_eq!(files[0], "targets/packages/p/p-1.0.tar.gz");
        assert_eq!(&files[3..], ["metadata/root.json", "metadata/4.snapshot.json", "metadata/timestamp.json"]);
    }

    #[test]
    fn immutable_names() {
        assert!(is_immutable("3.snapshot.json", true));
        assert!(!is_immutable("timestamp.json", true));
        assert!(!is_immutable("root.json", true));
        let h = "ab".repeat(32);
        assert!(is_immutable(&format!("packages/p/{h}.p-1.0.tar.gz"), false));
        assert!(!is_immutable("packages/p/p-1.0.tar.gz", false));
        assert!(!is_immutable("simple/p/index.html", false));
        assert!(!is_immutable(&format!("packages/p/{}.p-1.0.tar.gz", h.to_uppercase()), false));
    }

    #[test]
    fn dot_segments_resolve_as_rfc3986_says_and_never_climb_above_the_base() {
        assert_eq!(resolve_target_path("foo/../data1.txt").unwrap(), "data1.txt");
        assert_eq!(resolve_target_path("a/./b/../c").unwrap(), "a/c");
        assert_eq!(resolve_target_path("a/b/..").unwrap(), "a/");
        assert_eq!(resolve_target_path("a//b").unwrap(), "a//b");
        for bad in ["..", "../x", "a/../../x", "./../x"] {
            assert_eq!(resolve_target_path(bad), Err(LayoutError::ClimbsAboveBase { path: bad.into() }), "{bad}");
        }
    }

    #[test]
    fn target_urls_encode_each_segment_and_prefix_the_hash() {
        let base = "http://127.0.0.1:8000/targets/";
        assert_eq!(target_url(base, "foo/../data1.txt", None).unwrap(), format!("{base}data1.txt"));
        assert_eq!(target_url(base, "dir/file.txt", Some("abc")).unwrap(), format!("{base}dir/abc.file.txt"));
        assert_eq!(target_url(base, "file.txt", Some("abc")).unwrap(), format!("{base}abc.file.txt"));
        assert_eq!(target_url(base, "a b/c?d#e%f\\g", None).unwrap(), format!("{base}a%20b/c%3Fd%23e%25f%5Cg"));
        // Names are sent as published otherwise, non-ASCII as UTF-8.
        assert_eq!(target_url(base, "p/x+y@1:2~é", None).unwrap(), format!("{base}p/x+y@1:2~%C3%A9"));
        // An encoded dot is a name, not a dot segment.
        assert_eq!(target_url(base, "%2e%2e/x", None).unwrap(), format!("{base}%252e%252e/x"));
        assert!(matches!(target_url(base, "../etc/passwd", None), Err(LayoutError::ClimbsAboveBase { .. })));
        assert!(matches!(target_url(base, "a/..", None), Err(LayoutError::NoFileName { .. })));
        assert!(matches!(target_url(base, "", None), Err(LayoutError::NoFileName { .. })));
        // With a hash prefix a trailing ".." is part of a file name ("HASH..."), as python-tuf
        // builds it.
        assert_eq!(target_url(base, "a/..", Some("h")).unwrap(), format!("{base}a/h..."));
        // The base may lack its slash.
        assert_eq!(target_url("http://h/t", "x", None).unwrap(), "http://h/t/x");
    }

    #[test]
    fn saved_file_names_stay_in_their_directory() {
        assert_eq!(file_name("packages/p/p-1.0.tar.gz").unwrap(), "p-1.0.tar.gz");
        assert_eq!(file_name("foo/../data1.txt").unwrap(), "data1.txt");
        assert!(file_name("a/..").is_err());
        assert!(file_name("a/.").is_err());
        assert!(file_name("..").is_err());
        assert!(file_name("a/").is_err());
        assert!(file_name("a/b\\..\\..\\c").is_err());
        assert!(file_name("x\0y").is_err());
        let d = Path::new("/cache");
        assert_eq!(cache_path(d, "../../etc/passwd"), Path::new("/cache/..%2F..%2Fetc%2Fpasswd"));
    }

    #[test]
    fn python_index_names() {
        assert_eq!(package_target("p", "p-1.0.tar.gz"), "packages/p/p-1.0.tar.gz");
        assert_eq!(simple_page(Some("p"), true), "simple/p/index.json");
        assert_eq!(simple_page(None, false), "simple/index.html");
        assert_eq!(page_link_to_package("p", "p-1.0+local!x y#.whl"), "../../packages/p/p-1.0+local!x%20y%23.whl");
    }

    #[test]
    fn repo_paths() {
        let p = RepoPaths::new("/srv/r");
        assert_eq!(p.metadata("targets", Some(3)), Path::new("/srv/r/metadata/3.targets.json"));
        assert_eq!(p.metadata("timestamp", None), Path::new("/srv/r/metadata/timestamp.json"));
        assert_eq!(p.hashed_target("packages/p/x.whl", "ff"), Path::new("/srv/r/targets/packages/p/ff.x.whl"));
        assert_eq!(p.target("simple/index.html"), Path::new("/srv/r/targets/simple/index.html"));
    }
}
