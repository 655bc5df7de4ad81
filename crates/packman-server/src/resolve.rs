//! Request path -> file under the served directory, or a refusal.
//!
//! Only `metadata/` and `targets/` are ever served (a publisher's `keys/` and `staged/` live in
//! the same directory); `/simple/…` and `/packages/…` are the Python layout's names for
//! `targets/simple/…` and `targets/packages/…`, so the relative links in the signed pages work.
//! Every segment is percent-decoded once and must then be a plain file name: no `.`/`..`, no
//! slash or backslash smuggled in encoded, no NUL, no hidden names (temp files being written
//! start with a dot).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use packman_tuf::layout;

use percent_encoding::percent_decode_str;

/// Longest request path accepted, in bytes (nginx and most proxies stop around here too).
pub const MAX_PATH: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A plain file, relative to the served directory.
    File(PathBuf),
    /// A simple API page: the directory (relative to the served one) holding `index.json` and
    /// `index.html`, chosen between by `Accept`.
    SimplePage(PathBuf),
    /// Moved: the canonical URL path (normalised project name, trailing slash).
    Redirect(String),
    NotFound,
    /// The path breaks a rule; the text says which.
    BadRequest(&'static str),
}

pub fn resolve(raw: &str) -> Resolved {
    if raw.len() > MAX_PATH {
        return Resolved::BadRequest("path too long");
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Resolved::BadRequest("path must start with /");
    };
    let trailing_slash = rest.ends_with('/') || rest.is_empty();
    // Segments borrow from the request unless percent-decoding changed them. `/` has none;
    // a trailing slash ends the last one.
    let mut segments: Vec<Cow<'_, str>> = Vec::with_capacity(8);
    if !rest.is_empty() {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        for raw_segment in rest.split('/') {
            match decode_segment_cow(raw_segment) {
                Ok(s) => segments.push(s),
                Err(rule) => return Resolved::BadRequest(rule),
            }
        }
    }
    use layout::{METADATA_DIR, PACKAGES_DIR, SIMPLE_DIR, TARGETS_DIR};
    let first = segments.first().map(|s| &**s);
    let second = segments.get(1).map(|s| &**s);
    let targets = Path::new(TARGETS_DIR);
    let (base, url_prefix, tail) = match first {
        Some(METADATA_DIR) => (PathBuf::from(METADATA_DIR), None, &segments[1..]),
        Some(TARGETS_DIR) if second == Some(SIMPLE_DIR) => {
            (targets.join(SIMPLE_DIR), Some(format!("/{TARGETS_DIR}/{SIMPLE_DIR}")), &segments[2..])
        }
        Some(TARGETS_DIR) => (targets.to_path_buf(), None, &segments[1..]),
        Some(SIMPLE_DIR) => (targets.join(SIMPLE_DIR), Some(format!("/{SIMPLE_DIR}")), &segments[1..]),
        Some(PACKAGES_DIR) => (targets.join(PACKAGES_DIR), None, &segments[1..]),
        _ => return Resolved::NotFound,
    };
    let mut path = base;
    if let Some(prefix) = url_prefix {
        return simple(path, &prefix, tail, trailing_slash);
    }
    if trailing_slash || tail.is_empty() {
        // Directories are never listed.
        return Resolved::NotFound;
    }
    path.extend(tail.iter().map(|s| &**s));
    Resolved::File(path)
}

/// `/simple/` (the project list), `/simple/<project>/`, and the page files themselves.
fn simple(mut path: PathBuf, prefix: &str, tail: &[Cow<'_, str>], trailing_slash: bool) -> Resolved {
    match tail {
        [] if trailing_slash => Resolved::SimplePage(path),
        [] => Resolved::Redirect(format!("{prefix}/")),
        // The project list's own files (`index.json`, and `<hash>.index.json` as updaters ask
        // for it with consistent snapshots) are files, not project names to redirect.
        [file] if !trailing_slash && is_list_file(file) => {
            path.push(&**file);
            Resolved::File(path)
        }
        [project] => {
            let normal = packman_index::normalize_name(project);
            if !packman_index::is_valid_name(project) {
                return Resolved::NotFound;
            }
            if normal != **project || !trailing_slash {
                return Resolved::Redirect(format!("{prefix}/{normal}/"));
            }
            path.push(&**project);
            Resolved::SimplePage(path)
        }
        _ if trailing_slash => Resolved::NotFound,
        _ => {
            path.extend(tail.iter().map(|s| &**s));
            Resolved::File(path)
        }
    }
}

/// A request for one of the browsable pages ([`crate::browse`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Browse {
    /// `/`: the project list.
    Index,
    /// `/project/NAME/`, NAME PEP 503 normalised.
    Project(String),
    /// Moved: `/project/NAME/` with NAME normalised and the trailing slash.
    Redirect(String),
    NotFound,
}

/// `/` and `/project/…` are the browsable pages; every other path is [`resolve`]'s.
pub fn resolve_browse(raw: &str) -> Option<Browse> {
    if raw == "/" {
        return Some(Browse::Index);
    }
    let rest = raw.strip_prefix("/project")?;
    if rest.is_empty() || rest == "/" {
        return Some(Browse::Redirect("/".into()));
    }
    let rest = rest.strip_prefix('/')?;
    let (segment, trailing) = match rest.strip_suffix('/') {
        Some(s) => (s, true),
        None => (rest, false),
    };
    if raw.len() > MAX_PATH || segment.contains('/') {
        return Some(Browse::NotFound);
    }
    let Ok(project) = decode_segment(segment) else { return Some(Browse::NotFound) };
    if !packman_index::is_valid_name(&project) {
        return Some(Browse::NotFound);
    }
    let normal = packman_index::normalize_name(&project);
    if normal != project || !trailing {
        return Some(Browse::Redirect(format!("/project/{normal}/")));
    }
    Some(Browse::Project(normal))
}

fn is_list_file(name: &str) -> bool {
    let base = match name.split_once('.') {
        Some((hash, rest)) if hash.len() >= 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => rest,
        _ => name,
    };
    base == "index.json" || base == "index.html"
}

fn decode_segment(raw: &str) -> Result<String, &'static str> {
    decode_segment_cow(raw).map(Cow::into_owned)
}

fn decode_segment_cow(raw: &str) -> Result<Cow<'_, str>, &'static str> {
    if raw.is_empty() {
        return Err("empty path segment");
    }
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| "path is not UTF-8 once decoded")?;
    if decoded == "." || decoded == ".." {
        return Err("dot segment in path");
    }
    if decoded.contains(['/', '\\', '\0']) {
        return Err("encoded slash, backslash or NUL in path");
    }
    if decoded.starts_with('.') {
        // Hidden files: the publisher's temp files and lock are dot files.
        return Err("hidden file name");
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> Resolved {
        Resolved::File(PathBuf::from(p))
    }

    #[test]
    fn tuf_layout() {
        assert_eq!(resolve("/metadata/timestamp.json"), file("metadata/timestamp.json"));
        assert_eq!(resolve("/targets/packages/a/x.whl"), file("targets/packages/a/x.whl"));
        assert_eq!(resolve("/packages/a/x.whl"), file("targets/packages/a/x.whl"));
        assert_eq!(resolve("/targets/a%20b.txt"), file("targets/a b.txt"));
        assert_eq!(resolve("/targets/sub/"), Resolved::NotFound);
        assert_eq!(resolve("/metadata/"), Resolved::NotFound);
        assert_eq!(resolve("/metadata"), Resolved::NotFound);
        assert_eq!(resolve("/"), Resolved::NotFound);
    }

    #[test]
    fn only_published_trees() {
        assert_eq!(resolve("/keys/root-1.key"), Resolved::NotFound);
        assert_eq!(resolve("/staged/root.json"), Resolved::NotFound);
        assert_eq!(resolve("/etc/passwd"), Resolved::NotFound);
    }

    #[test]
    fn traversal_is_refused() {
        for p in [
            "/targets/../keys/root.key",
            "/targets/%2e%2e/keys/root.key",
            "/targets/%2E%2E/keys/root.key",
            "/targets/a%2f..%2f..%2fkeys",
            "/targets/a%5c..%5ckeys",
            "/metadata/./root.json",
            "/metadata//root.json",
            "/metadata/.lock",
            "/targets/.tmpAbc123",
            "/targets/a%00b",
            "/targets/%ff",
            "metadata/root.json",
        ] {
            assert!(matches!(resolve(p), Resolved::BadRequest(_)), "{p} -> {:?}", resolve(p));
        }
        assert!(matches!(resolve(&format!("/targets/{}", "a".repeat(MAX_PATH))), Resolved::BadRequest(_)));
    }

    #[test]
    fn browse_pages() {
        assert_eq!(resolve_browse("/"), Some(Browse::Index));
        assert_eq!(resolve_browse("/project/foo-bar/"), Some(Browse::Project("foo-bar".into())));
        assert_eq!(resolve_browse("/project/Foo_Bar"), Some(Browse::Redirect("/project/foo-bar/".into())));
        assert_eq!(resolve_browse("/project"), Some(Browse::Redirect("/".into())));
        for p in ["/project/a/b/", "/project/..%2f/", "/project/%2e%2e/", "/project/-x/", "/project/a%00/"] {
            assert_eq!(resolve_browse(p), Some(Browse::NotFound), "{p}");
        }
        assert_eq!(resolve_browse("/projects/"), None);
        assert_eq!(resolve_browse("/simple/"), None);
    }

    #[test]
    fn simple_api() {
        assert_eq!(resolve("/simple/"), Resolved::SimplePage("targets/simple".into()));
        assert_eq!(resolve("/simple"), Resolved::Redirect("/simple/".into()));
        assert_eq!(resolve("/simple/foo-bar/"), Resolved::SimplePage("targets/simple/foo-bar".into()));
        assert_eq!(resolve("/simple/Foo_Bar/"), Resolved::Redirect("/simple/foo-bar/".into()));
        assert_eq!(resolve("/simple/Foo.Bar"), Resolved::Redirect("/simple/foo-bar/".into()));
        assert_eq!(resolve("/simple/foo-bar"), Resolved::Redirect("/simple/foo-bar/".into()));
        assert_eq!(resolve("/targets/simple/Foo/"), Resolved::Redirect("/targets/simple/foo/".into()));
        assert_eq!(resolve("/targets/simple/foo/"), Resolved::SimplePage("targets/simple/foo".into()));
        assert_eq!(resolve("/simple/foo/index.json"), file("targets/simple/foo/index.json"));
        // The project list's files, plain and hash-prefixed (what an updater fetches).
        assert_eq!(resolve("/simple/index.json"), file("targets/simple/index.json"));
        let h = "ab".repeat(32);
        assert_eq!(
            resolve(&format!("/targets/simple/{h}.index.json")),
            file(&format!("targets/simple/{h}.index.json"))
        );
        assert_eq!(
            resolve(&format!("/targets/simple/{h}.index.html")),
            file(&format!("targets/simple/{h}.index.html"))
        );
        assert_eq!(resolve("/simple/index.json/"), Resolved::Redirect("/simple/index-json/".into()));
        assert_eq!(resolve("/simple/-bad-/"), Resolved::NotFound);
        assert_eq!(resolve("/simple/foo/bar/"), Resolved::NotFound);
    }
}
