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
fn versions(files: &[FileEntry]) -> Vec<String> {
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

/// Escape text for an HTML attribute value or element content.
pub fn escape_html(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
            eprintln!("skipped: python3 -m pip is not available");
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
