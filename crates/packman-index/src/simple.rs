//! Simple repository API pages: PEP 503 HTML and PEP 691 JSON at api-version 1.1 (PEP 700
//! `versions`, `size`, `upload-time`), with PEP 592 yanking and PEP 658/714 core metadata.
//!
//! Output is a pure function of the input *set*: files are sorted, projects sorted and
//! de-duplicated, JSON objects have a fixed key order, so the same input gives the same
//! bytes (they get signed).

use serde::Serialize;

use crate::filename::{parse_filename, parse_version};
use crate::name::normalize_name;

/// The API version these pages declare.
pub const API_VERSION: &str = "1.1";
/// `Content-Type` of the JSON pages (PEP 691).
pub const JSON_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// `Content-Type` of the HTML pages (PEP 691).
pub const HTML_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+html";

/// One distribution file as listed on a project page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileEntry {
    pub filename: String,
    /// The link target exactly as it should appear in the page (e.g. a relative URL,
    /// already percent-encoded). The HTML page appends `#sha256=...`.
    pub url: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    pub size: u64,
    /// UTC, RFC 3339 / PEP 700 form `yyyy-mm-ddThh:mm:ss(.ffffff)?Z`, e.g.
    /// `2026-11-23T12:00:00Z`. Passed through as given.
    pub upload_time: Option<String>,
    pub requires_python: Option<String>,
    /// `None`: not yanked; `Some("")`: yanked without reason; `Some(reason)`.
    pub yanked: Option<String>,
    /// SHA-256 of the PEP 658 metadata file served at `url + ".metadata"`, when there is one.
    pub core_metadata_sha256: Option<String>,
}

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: &'static str,
}

const META: Meta = Meta { api_version: API_VERSION };

#[derive(Serialize)]
struct Hashes<'a> {
    sha256: &'a str,
}

/// `false`, `true` or a reason / `false` or `{"sha256": ...}`.
#[derive(Serialize)]
#[serde(untagged)]
enum FlagOr<T> {
    Flag(bool),
    Value(T),
}

#[derive(Serialize)]
struct JsonFile<'a> {
    filename: &'a str,
    url: &'a str,
    hashes: Hashes<'a>,
    #[serde(rename = "requires-python", skip_serializing_if = "Option::is_none")]
    requires_python: Option<&'a str>,
    yanked: FlagOr<&'a str>,
    size: u64,
    #[serde(rename = "upload-time", skip_serializing_if = "Option::is_none")]
    upload_time: Option<&'a str>,
    #[serde(rename = "core-metadata")]
    core_metadata: FlagOr<Hashes<'a>>,
    #[serde(rename = "dist-info-metadata")]
    dist_info_metadata: FlagOr<Hashes<'a>>,
}

#[derive(Serialize)]
struct JsonProject<'a> {
    meta: Meta,
    name: String,
    files: Vec<JsonFile<'a>>,
    versions: Vec<String>,
}

#[derive(Serialize)]
struct JsonIndexEntry<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct JsonIndex<'a> {
    meta: Meta,
    projects: Vec<JsonIndexEntry<'a>>,
}

fn sorted(files: &[FileEntry]) -> Vec<&FileEntry> {
    let mut v: Vec<&FileEntry> = files.iter().collect();
    v.sort();
    v
}

/// PEP 700 `versions`: unique normalised versions of the files whose names parse, in PEP 440
/// order. Files whose names do not parse contribute no version.
pub(crate) fn versions(files: &[FileEntry]) -> Vec<String> {
    let mut v: Vec<(pep440_rs::Version, String)> = files
        .iter()
        .filter_map(|f| {
            let parsed = parse_filename(&f.filename).ok()?;
            let version = parse_version(&f.filename, &parsed.version).ok()?;
            Some((version, parsed.version))
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.1 == b.1);
    v.into_iter().map(|(_, s)| s).collect()
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these plain structs of strings and integers cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// PEP 691 JSON project page (`application/vnd.pypi.simple.v1+json`), api-version 1.1.
/// `project` is normalised for the `name` key.
pub fn project_json(project: &str, files: &[FileEntry]) -> Vec<u8> {
    let files_json = sorted(files)
        .into_iter()
        .map(|f| {
            let core = || match &f.core_metadata_sha256 {
                Some(h) => FlagOr::Value(Hashes { sha256: h }),
                None => FlagOr::Flag(false),
            };
            JsonFile {
                filename: &f.filename,
                url: &f.url,
                hashes: Hashes { sha256: &f.sha256 },
                requires_python: f.requires_python.as_deref(),
                yanked: match f.yanked.as_deref() {
                    None => FlagOr::Flag(false),
                    Some("") => FlagOr::Flag(true),
                    Some(reason) => FlagOr::Value(reason),
                },
                size: f.size,
                upload_time: f.upload_time.as_deref(),
                core_metadata: core(),
                dist_info_metadata: core(),
            }
        })
        .collect();
    to_json(&JsonProject { meta: META, name: normalize_name(project), files: files_json, versions: versions(files) })
}

/// A PEP 691 JSON project page as [`parse_project_json`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPage {
    /// The `name` key (normalised, as [`project_json`] writes it).
    pub name: String,
    pub files: Vec<FileEntry>,
    /// Versions of the files whose names parse, recomputed from the file names in PEP 440
    /// order (oldest first), not taken from the page's `versions` key.
    pub versions: Vec<String>,
}

/// The normalised PEP 440 version in a distribution file name, if the name parses.
pub fn file_version(filename: &str) -> Option<String> {
    let parsed = parse_filename(filename).ok()?;
    Some(parse_version(filename, &parsed.version).ok()?.to_string())
}

/// Reads a PEP 691 JSON project page (what [`project_json`] writes, or any api-version 1.x
/// page): the files with their hashes, sizes, `requires-python`, `yanked` and
/// `upload-time`. A file without a sha256 is refused. `page` names the page in errors.
pub fn parse_project_json(page: &str, bytes: &[u8]) -> Result<ProjectPage, crate::IndexError> {
    #[derive(serde::Deserialize)]
    struct Page {
        name: String,
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Yanked {
        Flag(bool),
        Reason(String),
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        hashes: std::collections::BTreeMap<String, String>,
        #[serde(rename = "requires-python", default)]
        requires_python: Option<String>,
        #[serde(default)]
        yanked: Option<Yanked>,
        #[serde(default)]
        size: Option<u64>,
        #[serde(rename = "upload-time", default)]
        upload_time: Option<String>,
        #[serde(rename = "core-metadata", default)]
        core_metadata: Option<serde_json::Value>,
    }
    let bad = |reason: String| crate::IndexError::BadPage { page: page.to_string(), reason };
    let parsed: Page = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let mut files = Vec::with_capacity(parsed.files.len());
    for f in parsed.files {
        let sha256 = f
            .hashes
            .get("sha256")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad(format!("{}: no sha256", f.filename)))?
            .to_ascii_lowercase();
        let core_metadata_sha256 =
            f.core_metadata.as_ref().and_then(|v| v.get("sha256")).and_then(|h| h.as_str()).map(str::to_string);
        files.push(FileEntry {
            filename: f.filename,
            url: f.url,
            sha256,
            size: f.size.ok_or_else(|| bad("a file without a size (api-version 1.1 needs one)".into()))?,
            upload_time: f.upload_time,
            requires_python: f.requires_python,
            yanked: match f.yanked {
                None | Some(Yanked::Flag(false)) => None,
                Some(Yanked::Flag(true)) => Some(String::new()),
                Some(Yanked::Reason(r)) => Some(r),
            },
            core_metadata_sha256,
        });
    }
    let versions = versions(&files);
    Ok(ProjectPage { name: parsed.name, files, versions })
}

/// The project names of a PEP 691 JSON project list (`/simple/`), in page order.
pub fn parse_index_json(page: &str, bytes: &[u8]) -> Result<Vec<String>, crate::IndexError> {
    #[derive(serde::Deserialize)]
    struct List {
        projects: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
    }
    let list: List = serde_json::from_slice(bytes)
        .map_err(|e| crate::IndexError::BadPage { page: page.to_string(), reason: e.to_string() })?;
    Ok(list.projects.into_iter().map(|e| e.name).collect())
}

/// Escape text for an HTML attribute value or element content.
pub fn escape_html(s: &str) -> String {
    // Most names and URLs have nothing to escape (a page of 2000 files calls this 10000 times).
    if !s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn html_page(title: &str, links: &str) -> Vec<u8> {
    let title = escape_html(title);
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    \
         <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n{links}  </body>\n</html>\n"
    )
    .into_bytes()
}

/// PEP 503 HTML project page with PEP 592 `data-yanked`, `data-requires-python` and
/// PEP 658/714 `data-core-metadata` / `data-dist-info-metadata`.
pub fn project_html(project: &str, files: &[FileEntry]) -> Vec<u8> {
    let mut links = String::new();
    for f in sorted(files) {
        links.push_str("    <a href=\"");
        links.push_str(&escape_html(&format!("{}#sha256={}", f.url, f.sha256)));
        links.push('"');
        if let Some(rp) = &f.requires_python {
            links.push_str(&format!(" data-requires-python=\"{}\"", escape_html(rp)));
        }
        if let Some(reason) = &f.yanked {
            links.push_str(&format!(" data-yanked=\"{}\"", escape_html(reason)));
        }
        if let Some(h) = &f.core_metadata_sha256 {
            let h = escape_html(h);
            links.push_str(&format!(" data-core-metadata=\"sha256={h}\" data-dist-info-metadata=\"sha256={h}\""));
        }
        links.push('>');
        links.push_str(&escape_html(&f.filename));
        links.push_str("</a><br>\n");
    }
    html_page(&format!("Links for {}", normalize_name(project)), &links)
}

/// Projects sorted by normalised name, one per normalised name (the first in that order).
fn unique_projects(projects: &[String]) -> Vec<(String, &str)> {
    let mut v: Vec<(String, &str)> = projects.iter().map(|p| (normalize_name(p), p.as_str())).collect();
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// PEP 691 JSON root index (`/simple/`): `{"meta":{"api-version":"1.1"},"projects":[{"name":..}]}`.
pub fn index_json(projects: &[String]) -> Vec<u8> {
    let unique = unique_projects(projects);
    to_json(&JsonIndex { meta: META, projects: unique.iter().map(|(_, name)| JsonIndexEntry { name }).collect() })
}

/// PEP 503 HTML root index (`/simple/`), linking each project as `{normalised}/`.
pub fn index_html(projects: &[String]) -> Vec<u8> {
    let mut links = String::new();
    for (normal, name) in unique_projects(projects) {
        links.push_str(&format!("    <a href=\"{}/\">{}</a><br>\n", escape_html(&normal), escape_html(name)));
    }
    html_page("Simple index", &links)
}

/// The project list `index_json` wrote as `existing`, with the projects `add` (normalised
/// names) added and `remove` removed, made without parsing it: at PyPI's 700k projects the
/// list is 16 MB of JSON and 33 MB of HTML, rewritten for every new project. `None` when
/// `existing` is not exactly what `index_json` writes for normalised names (another layout,
/// a name not in normal form, out of order): then parse it and call `index_json`.
pub fn index_json_edit(existing: &[u8], add: &[&str], remove: &[&str]) -> Option<Vec<u8>> {
    let empty = index_json(&[]);
    let (head, tail) = empty.split_at(empty.len() - 2); // `]}`
    let format = ListFormat {
        head,
        tail,
        sep: b',',
        terminated: false,
        name: |entry| entry.strip_prefix(b"{\"name\":\"")?.strip_suffix(b"\"}"),
        write: |out, name| {
            out.extend_from_slice(b"{\"name\":\"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\"}");
        },
    };
    format.edit(existing, add, remove)
}

/// [`index_json_edit`] for the HTML list `index_html` wrote.
pub fn index_html_edit(existing: &[u8], add: &[&str], remove: &[&str]) -> Option<Vec<u8>> {
    let empty = index_html(&[]);
    let end = b"  </body>\n</html>\n";
    let (head, tail) = empty.split_at(empty.len().checked_sub(end.len())?);
    if tail != end {
        return None;
    }
    let format = ListFormat {
        head,
        tail,
        sep: b'\n',
        terminated: true,
        name: |line| {
            let rest = line.strip_prefix(b"    <a href=\"")?.strip_suffix(b"</a><br>")?;
            let (href, text) = rest.split_at(memchr::memchr(b'"', rest)?);
            let name = href.strip_suffix(b"/")?;
            (text.strip_prefix(b"\">")? == name).then_some(name)
        },
        write: |out, name| {
            out.extend_from_slice(b"    <a href=\"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"/\">");
            out.extend_from_slice(name);
            out.extend_from_slice(b"</a><br>");
        },
    };
    format.edit(existing, add, remove)
}

/// How a project list is laid out: `head`, one entry per project separated by `sep` (after
/// each entry, if `terminated`), `tail`.
struct ListFormat<'h> {
    head: &'h [u8],
    tail: &'h [u8],
    sep: u8,
    terminated: bool,
    /// The normalised name an entry was written for, if it parses.
    name: fn(&[u8]) -> Option<&[u8]>,
    /// Writes the entry for a name.
    write: fn(&mut Vec<u8>, &[u8]),
}

impl ListFormat<'_> {
    fn edit(&self, existing: &[u8], add: &[&str], remove: &[&str]) -> Option<Vec<u8>> {
        let body = existing.strip_prefix(self.head)?.strip_suffix(self.tail)?;
        let body = match (self.terminated, body) {
            (true, []) | (false, _) => body,
            (true, [entries @ .., last]) if *last == self.sep => entries,
            (true, _) => return None,
        };
        let entries = split_entries(body, self.sep).map(|(s, e)| Some(((self.name)(&body[s..e])?, s, e)));
        let mut out = Vec::with_capacity(existing.len() + add.iter().map(|a| 2 * a.len() + 26).sum::<usize>());
        out.extend_from_slice(self.head);
        let mut first = true;
        edit_list(body, entries, add, remove, |piece| {
            if !self.terminated && !std::mem::take(&mut first) {
                out.push(self.sep);
            }
            match piece {
                Piece::Kept(run) => out.extend_from_slice(run),
                Piece::New(name) => (self.write)(&mut out, name),
            }
            if self.terminated {
                out.push(self.sep);
            }
        })?;
        out.extend_from_slice(self.tail);
        Some(out)
    }
}

/// The `[start, end)` ranges of the `sep`-separated entries of `body` (none if it is empty).
fn split_entries(body: &[u8], sep: u8) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = (!body.is_empty()).then_some(0);
    let mut seps = memchr::memchr_iter(sep, body);
    std::iter::from_fn(move || {
        let s = start?;
        match seps.next() {
            Some(e) => {
                start = Some(e + 1);
                Some((s, e))
            }
            None => {
                start = None;
                Some((s, body.len()))
            }
        }
    })
}

/// What [`edit_list`] hands on, in order: a run of consecutive entries kept as they were
/// (the separators between them included), or a new name.
enum Piece<'a> {
    Kept(&'a [u8]),
    New(&'a [u8]),
}

/// Merges the existing entries of a list (`(name, start, end)` in `body`, `None` for one that
/// did not parse) with `add`, less `remove`, checking each existing name is normalised and
/// after the one before. `None` at the first check that fails.
fn edit_list<'a>(
    body: &'a [u8],
    existing: impl Iterator<Item = Option<(&'a [u8], usize, usize)>>,
    add: &'a [&str],
    remove: &[&str],
    mut emit: impl FnMut(Piece<'a>),
) -> Option<()> {
    let mut add: Vec<&[u8]> = add.iter().map(|a| a.as_bytes()).collect();
    if !add.iter().all(|a| normalized(a)) {
        return None;
    }
    add.sort_unstable();
    add.dedup();
    let mut add = add.into_iter().peekable();
    let mut prev: &[u8] = &[];
    // The run of kept entries not yet handed on.
    let mut run: Option<(usize, usize)> = None;
    let flush = |run: &mut Option<(usize, usize)>, emit: &mut dyn FnMut(Piece<'a>)| {
        if let Some((s, e)) = run.take() {
            emit(Piece::Kept(&body[s..e]));
        }
    };
    for entry in existing {
        let (name, s, e) = entry?;
        if prev >= name || !normalized(name) {
            return None;
        }
        prev = name;
        while let Some(a) = add.next_if(|a| *a <= name) {
            if a != name {
                flush(&mut run, &mut emit);
                emit(Piece::New(a));
            }
        }
        if remove.iter().any(|r| r.as_bytes() == name) {
            flush(&mut run, &mut emit);
        } else {
            run = Some((run.map_or(s, |(rs, _)| rs), e));
        }
    }
    flush(&mut run, &mut emit);
    add.for_each(|a| emit(Piece::New(a)));
    Some(())
}

/// [`crate::is_normalized`] on bytes, in one pass: it runs over every name of a list.
fn normalized(name: &[u8]) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let (Some(&first), Some(&last)) = (name.first(), name.last()) else { return false };
    let mut dash = false;
    alnum(first)
        && alnum(last)
        && name.iter().all(|&c| {
            let ok = alnum(c) || (c == b'-' && !dash);
            dash = c == b'-';
            ok
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_pages_read_back_as_written() {
        let f = |name: &str, yanked: Option<&str>| FileEntry {
            filename: name.into(),
            url: format!("../../packages/a/{name}"),
            sha256: "ab".repeat(32),
            size: 7,
            upload_time: Some("2026-11-23T12:00:00Z".into()),
            requires_python: Some("<script>".into()),
            yanked: yanked.map(str::to_string),
            core_metadata_sha256: None,
        };
        let files =
            vec![f("a-1.10-py3-none-any.whl", None), f("a-1.9.tar.gz", Some("")), f("a-1.2.tar.gz", Some("bad"))];
        let page = parse_project_json("a", &project_json("A", &files)).unwrap();
        assert_eq!(page.name, "a");
        assert_eq!(page.versions, ["1.2", "1.9", "1.10"]);
        let mut want = files.clone();
        want.sort();
        assert_eq!(page.files, want);
        assert_eq!(file_version("a-1.0RC1-py3-none-any.whl").as_deref(), Some("1.0rc1"));
        assert!(parse_project_json(
            "a",
            b"{\"name\":\"a\",\"files\":[{\"filename\":\"x\",\"url\":\"x\",\"hashes\":{}}]}"
        )
        .is_err());
        assert_eq!(parse_index_json("/", &index_json(&["b".into(), "A".into()])).unwrap(), ["A", "b"]);
    }
    use serde_json::{json, Value};

    /// What the writers write, the readers read back, field for field.
    #[test]
    fn pages_read_back_as_written() {
        let f = |name: &str, yanked: Option<&str>, core: Option<&str>| FileEntry {
            filename: name.into(),
            url: format!("../../packages/p/{name}"),
            sha256: "ab".repeat(32),
            size: 7,
            upload_time: Some("2026-11-23T12:00:00Z".into()),
            requires_python: Some(">=3.8".into()),
            yanked: yanked.map(str::to_string),
            core_metadata_sha256: core.map(str::to_string),
        };
        let files = vec![
            f("p-1.0-py3-none-any.whl", None, Some(&"cd".repeat(32))),
            f("p-1.0.tar.gz", Some(""), None),
            f("p-0.9.tar.gz", Some("broken"), None),
        ];
        let page = parse_project_json("simple/p/index.json", &project_json("P", &files)).unwrap();
        assert_eq!(page.name, "p");
        let mut want = files.clone();
        want.sort();
        assert_eq!(page.files, want);
        let names = vec!["b".to_string(), "a".to_string()];
        assert_eq!(parse_index_json("simple/index.json", &index_json(&names)).unwrap(), ["a", "b"]);
        let err = parse_project_json("simple/p/index.json", b"{\"files\":[]}").unwrap_err().to_string();
        assert!(err.starts_with("simple/p/index.json: not a PEP 691 JSON page"), "{err}");
        let no_size = format!(
            r#"{{"name":"p","files":[{{"filename":"p-1.tar.gz","url":"u","hashes":{{"sha256":"{}"}}}}]}}"#,
            "ab".repeat(32)
        );
        let err = parse_project_json("x", no_size.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("without a size"), "{err}");
        let bad_hash =
            br#"{"name":"p","files":[{"filename":"p-1.tar.gz","url":"u","hashes":{"sha256":"00"},"size":1}]}"#;
        assert!(parse_project_json("x", bad_hash).unwrap_err().to_string().contains("no sha256"));
    }

    /// Editing the lists gives exactly what writing them from the merged names gives, for
    /// additions and removals at the start, middle and end, names already there, and lists
    /// that become or start empty.
    #[test]
    fn project_list_edits_match_full_writes() {
        let mut seed = 7u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut name = |len: u64| -> String {
            let mut n: String = (0..len).map(|_| (b'a' + (next() % 26) as u8) as char).collect();
            if len > 2 && next() % 3 == 0 {
                n.replace_range(1..2, "-");
            }
            n
        };
        for round in 0..200 {
            let size = [0, 1, 2, 50][round % 4];
            let mut names: Vec<String> = (0..size).map(|i| name(1 + (i as u64 + round as u64) % 6)).collect();
            names.sort();
            names.dedup();
            let add: Vec<String> = (0..round % 3).map(|_| name(1 + round as u64 % 5)).collect();
            let mut remove: Vec<String> = names.iter().filter(|_| round % 5 == 0).take(2).cloned().collect();
            remove.push("not-listed".into());
            let mut expected: Vec<String> =
                names.iter().filter(|n| !remove.contains(n)).cloned().chain(add.iter().cloned()).collect();
            expected.sort();
            expected.dedup();
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            assert_eq!(
                index_json_edit(&index_json(&names), &add, &remove).as_deref(),
                Some(&index_json(&expected)[..]),
                "{names:?} + {add:?} - {remove:?}"
            );
            assert_eq!(
                index_html_edit(&index_html(&names), &add, &remove).as_deref(),
                Some(&index_html(&expected)[..]),
                "{names:?} + {add:?} - {remove:?}"
            );
        }
    }

    /// Lists not in the exact layout (or with names not in normal form, or out of order) are
    /// left to the full path.
    #[test]
    fn project_list_edits_decline_other_layouts() {
        let names = vec!["alpha".to_string(), "beta".to_string()];
        let json = index_json(&names);
        let html = index_html(&names);
        let declined = |j: &[u8]| index_json_edit(j, &["gamma"], &[]).is_none();
        let declined_html = |h: &[u8]| index_html_edit(h, &["gamma"], &[]).is_none();
        assert!(!declined(&json) && !declined_html(&html));
        let swap =
            |b: &[u8], from: &str, to: &str| String::from_utf8(b.to_vec()).unwrap().replacen(from, to, 1).into_bytes();
        assert!(declined(&swap(&json, "alpha", "zeta")), "out of order");
        assert!(declined(&swap(&json, "alpha", "Alpha")), "not normalised");
        assert!(declined(&swap(&json, "{\"name\":\"alpha\"}", "{\"name\": \"alpha\"}")), "spacing");
        assert!(declined(&swap(&json, "]}", "],\"x\":1}")), "another key");
        assert!(declined(&json[..json.len() - 1]), "truncated");
        assert!(declined_html(&swap(&html, "alpha/", "zeta/")), "href and text differ");
        assert!(declined_html(&swap(&html, "alpha", "a_b")), "not normalised");
        assert!(declined_html(&swap(&html, "<br>\n", "<br>")), "lines run together");
        assert!(declined_html(&html[..html.len() - 1]), "truncated");
        // A name to add that is not in normal form.
        assert!(index_json_edit(&json, &["Gamma"], &[]).is_none());
        for n in ["a", "a-b", "a--b", "-a", "a-", "A", "a_b", "a.b", "a1-2b", "", "ä"] {
            assert_eq!(normalized(n.as_bytes()), crate::is_normalized(n), "{n}");
        }
    }

    fn entry(filename: &str) -> FileEntry {
        FileEntry {
            filename: filename.to_string(),
            url: format!("../../files/{filename}"),
            sha256: "ab".repeat(32),
            size: 1234,
            upload_time: Some("2026-11-23T12:00:00Z".to_string()),
            requires_python: Some(">=3.8,<4".to_string()),
            yanked: None,
            core_metadata_sha256: Some("cd".repeat(32)),
        }
    }

    fn sample() -> Vec<FileEntry> {
        let mut sdist = entry("foo_bar-1.0.tar.gz");
        sdist.core_metadata_sha256 = None;
        sdist.upload_time = None;
        sdist.requires_python = None;
        let mut yanked = entry("foo_bar-2.0rc1-py3-none-any.whl");
        yanked.yanked = Some("broken \"build\"".to_string());
        let mut yanked_no_reason = entry("foo_bar-0.9-py3-none-any.whl");
        yanked_no_reason.yanked = Some(String::new());
        vec![
            entry("foo_bar-1.0-py3-none-any.whl"),
            sdist,
            yanked,
            entry("foo_bar-10.0-py3-none-any.whl"),
            yanked_no_reason,
            entry("Foo.Bar-1.0.0-py2-none-any.whl"),
        ]
    }

    #[test]
    fn project_json_fields() {
        let v: Value = serde_json::from_slice(&project_json("Foo_Bar", &sample())).unwrap();
        assert_eq!(v["meta"], json!({"api-version": "1.1"}));
        assert_eq!(v["name"], "foo-bar");
        let names: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f["filename"].as_str().unwrap()).collect();
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(names, expected, "files sorted by filename");
        assert_eq!(names.len(), 6);
        // PEP 440 order, unique, normalised; 1.0 and 1.0.0 are distinct strings
        assert_eq!(v["versions"], json!(["0.9", "1.0", "1.0.0", "2.0rc1", "10.0"]));

        let by = |name: &str| v["files"].as_array().unwrap().iter().find(|f| f["filename"] == name).unwrap().clone();
        let wheel = by("foo_bar-1.0-py3-none-any.whl");
        assert_eq!(wheel["url"], "../../files/foo_bar-1.0-py3-none-any.whl");
        assert_eq!(wheel["hashes"], json!({"sha256": "ab".repeat(32)}));
        assert_eq!(wheel["requires-python"], ">=3.8,<4");
        assert_eq!(wheel["yanked"], false);
        assert_eq!(wheel["size"], 1234);
        assert_eq!(wheel["upload-time"], "2026-11-23T12:00:00Z");
        assert_eq!(wheel["core-metadata"], json!({"sha256": "cd".repeat(32)}));
        assert_eq!(wheel["dist-info-metadata"], wheel["core-metadata"]);

        let sdist = by("foo_bar-1.0.tar.gz");
        assert!(sdist.get("requires-python").is_none());
        assert!(sdist.get("upload-time").is_none());
        assert_eq!(sdist["core-metadata"], false);
        assert_eq!(sdist["dist-info-metadata"], false);

        assert_eq!(by("foo_bar-2.0rc1-py3-none-any.whl")["yanked"], "broken \"build\"");
        assert_eq!(by("foo_bar-0.9-py3-none-any.whl")["yanked"], true);
    }

    #[test]
    fn output_is_deterministic() {
        let a = sample();
        let mut b = sample();
        b.reverse();
        assert_eq!(project_json("foo-bar", &a), project_json("Foo_Bar", &b));
        assert_eq!(project_html("foo-bar", &a), project_html("foo-bar", &b));
        let p1 = vec!["b".to_string(), "A".to_string()];
        let p2 = vec!["A".to_string(), "b".to_string()];
        assert_eq!(index_json(&p1), index_json(&p2));
        assert_eq!(index_html(&p1), index_html(&p2));
        // a fixed, exact rendering for one small page
        let page = project_json(
            "x",
            &[FileEntry {
                filename: "x-1.0.tar.gz".into(),
                url: "x-1.0.tar.gz".into(),
                sha256: "00".into(),
                size: 3,
                upload_time: None,
                requires_python: None,
                yanked: None,
                core_metadata_sha256: None,
            }],
        );
        assert_eq!(
            String::from_utf8(page).unwrap(),
            r#"{"meta":{"api-version":"1.1"},"name":"x","files":[{"filename":"x-1.0.tar.gz","url":"x-1.0.tar.gz","hashes":{"sha256":"00"},"yanked":false,"size":3,"core-metadata":false,"dist-info-metadata":false}],"versions":["1.0"]}"#
        );
    }

    #[test]
    fn project_html_links_and_escaping() {
        let html = String::from_utf8(project_html("Foo_Bar", &sample())).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>\n"));
        assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));
        assert!(html.contains("<title>Links for foo-bar</title>"));
        let h = "ab".repeat(32);
        let c = "cd".repeat(32);
        let line = format!(
            "<a href=\"../../files/foo_bar-1.0-py3-none-any.whl#sha256={h}\" data-requires-python=\"&gt;=3.8,&lt;4\" \
             data-core-metadata=\"sha256={c}\" data-dist-info-metadata=\"sha256={c}\">foo_bar-1.0-py3-none-any.whl</a><br>"
        );
        assert!(html.contains(&line), "{html}");
        assert!(html.contains("data-yanked=\"broken &quot;build&quot;\""));
        assert!(html.contains("data-yanked=\"\" data-core-metadata="));
        assert!(html.contains(&format!("<a href=\"../../files/foo_bar-1.0.tar.gz#sha256={h}\">foo_bar-1.0.tar.gz</a>")));
        assert!(!html.contains(">=3.8"), "raw '>' must not appear in attributes");
        // the links appear sorted
        let a = html.find(">Foo.Bar-1.0.0").unwrap();
        let b = html.find(">foo_bar-0.9").unwrap();
        let c2 = html.find(">foo_bar-10.0").unwrap();
        assert!(a < b && b < c2);
    }

    #[test]
    fn html_escaping_of_everything() {
        assert_eq!(escape_html(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;");
        let mut e = entry("x-1.0.tar.gz");
        e.url = "x?a=1&b=\"2\"".into();
        let html = String::from_utf8(project_html("<x>", &[e])).unwrap();
        assert!(html.contains("href=\"x?a=1&amp;b=&quot;2&quot;#sha256="));
        assert!(html.contains("<title>Links for &lt;x&gt;</title>"));
    }

    #[test]
    fn index_pages() {
        let projects =
            vec!["Foo_Bar".to_string(), "zope.interface".to_string(), "foo-bar".to_string(), "a".to_string()];
        let v: Value = serde_json::from_slice(&index_json(&projects)).unwrap();
        assert_eq!(v["meta"]["api-version"], "1.1");
        assert_eq!(v["projects"], json!([{"name": "a"}, {"name": "Foo_Bar"}, {"name": "zope.interface"}]));
        let html = String::from_utf8(index_html(&projects)).unwrap();
        assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));
        assert!(html.contains("    <a href=\"a/\">a</a><br>\n    <a href=\"foo-bar/\">Foo_Bar</a><br>\n    <a href=\"zope-interface/\">zope.interface</a><br>\n"), "{html}");
        assert_eq!(index_json(&[]), br#"{"meta":{"api-version":"1.1"},"projects":[]}"#);
    }

    fn sha256_files(paths: &[&std::path::Path]) -> Vec<String> {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg("import hashlib,sys\nfor p in sys.argv[1:]: print(hashlib.sha256(open(p,'rb').read()).hexdigest())")
            .args(paths)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
    }

    /// pip (if present) reads the HTML pages: it skips the yanked and the incompatible
    /// release, checks the PEP 658 metadata against its hash and the file against its own.
    #[test]
    fn pip_downloads_from_html_pages() {
        use crate::inspect::tests::{make_wheel, metadata};
        use std::process::Command;
        let pip_ok =
            Command::new("python3").args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
        if !pip_ok {
            packman_testkit::skipped("python3 -m pip is not available");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let wheel =
            make_wheel(&files, "foo_bar-1.0-py3-none-any.whl", "foo_bar-1.0.dist-info", &metadata("Foo_Bar", "1.0"));
        let dist = crate::inspect(&wheel).unwrap();
        let md_path = files.join("foo_bar-1.0-py3-none-any.whl.metadata");
        std::fs::write(&md_path, &dist.core_metadata).unwrap();
        let hashes = sha256_files(&[&wheel, &md_path]);

        let page = |core_hash: &str| {
            let good = FileEntry {
                filename: dist.filename.clone(),
                url: format!("../../files/{}", dist.filename),
                sha256: hashes[0].clone(),
                size: std::fs::metadata(&wheel).unwrap().len(),
                upload_time: Some("2026-11-23T12:00:00Z".into()),
                requires_python: dist.requires_python.clone(),
                yanked: None,
                core_metadata_sha256: Some(core_hash.to_string()),
            };
            // neither file exists: pip must not pick them
            let yanked = FileEntry {
                filename: "foo_bar-2.0-py3-none-any.whl".into(),
                url: "../../files/foo_bar-2.0-py3-none-any.whl".into(),
                yanked: Some("broken <release> & \"more\"".into()),
                ..good.clone()
            };
            let too_new = FileEntry {
                filename: "foo_bar-3.0-py3-none-any.whl".into(),
                url: "../../files/foo_bar-3.0-py3-none-any.whl".into(),
                requires_python: Some(">=4,<5".into()),
                ..good.clone()
            };
            let dir = tmp.path().join("simple").join("foo-bar");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("index.html"), project_html("foo-bar", &[good, yanked, too_new])).unwrap();
            std::fs::write(tmp.path().join("simple").join("index.html"), index_html(&["Foo_Bar".into()])).unwrap();
        };
        let pip = |out: &str| {
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "--isolated",
                    "download",
                    "-v",
                    "--no-deps",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--index-url",
                ])
                .arg(format!("file://{}", tmp.path().join("simple").display()))
                .arg("-d")
                .arg(tmp.path().join(out))
                .arg("Foo.Bar")
                .env("PIP_CONFIG_FILE", "/dev/null")
                .env("PIP_NO_INPUT", "1")
                .output()
                .unwrap()
        };

        page(&hashes[1]);
        let out = pip("out");
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{log}");
        assert!(tmp.path().join("out").join("foo_bar-1.0-py3-none-any.whl").is_file(), "{log}");
        // the escaped data-requires-python came back intact, and the .metadata was used
        assert!(log.contains("not in: '>=4,<5'"), "{log}");
        assert!(log.contains("foo_bar-1.0-py3-none-any.whl.metadata"), "{log}");

        // a wrong metadata hash is noticed: pip reads data-core-metadata / data-dist-info-metadata
        page(&"0".repeat(64));
        let out = pip("out2");
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{log}");
        assert!(log.to_lowercase().contains("hash"), "{log}");
    }
}
