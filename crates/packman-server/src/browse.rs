//! Browsable pages for people: `/` (the projects, with a search form) and `/project/NAME/`
//! (versions, files, install commands), made only from the signed PEP 691 JSON pages the
//! publisher wrote (`targets/simple/index.json`, `targets/simple/NAME/index.json`).
//!
//! - `packman serve` trusts its own directory: these pages are read from the published tree
//!   as every other file is, not verified again. They show only what the signed JSON
//!   contains (a browser cannot check TUF signatures; `packman open` and the installers do).
//! - Everything that comes from a package is escaped with [`packman_index::escape_html`];
//!   the pages have no scripts and are sent with a Content-Security-Policy that forbids them,
//!   so a project whose metadata holds markup shows it as text.
//! - Plain HTML and one small inline style sheet; headings, labels and `lang` for screen
//!   readers; the search is a GET form filtered on the server.

use std::fmt::Write;

use packman_index::{escape_html, normalize_name, parse_index_json, parse_project_json, FileEntry, ProjectPage};

/// Most projects listed on `/` at once; a search narrows the list.
pub const MAX_LISTED: usize = 1000;
/// Longest search accepted, in characters.
pub const MAX_QUERY: usize = 100;

/// `Content-Security-Policy` of the pages: no scripts, no plugins, no frames, nothing
/// fetched; only the inline style sheet.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:72rem;margin:0 auto;padding:1rem;color:#111;background:#fff}\
h1,h2{line-height:1.2}a{color:#0645ad}code,pre{font-family:ui-monospace,monospace;font-size:.9em}\
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
td.hash{font-family:ui-monospace,monospace;font-size:.8em;word-break:break-all}.yanked{color:#a00}td.size{white-space:nowrap}\
ul.projects{columns:16rem}form{margin:1rem 0}input{font-size:1rem;padding:.25rem}\
.note{color:#555;font-size:.9em}";

fn page(title: &str, body: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape_html(title)
    )
    .into_bytes()
}

const NOTE: &str = "<p class=\"note\">Made from the repository's signed simple pages (PEP 691 JSON) as this \
server has them; it shows only what they contain. Installers and <code>packman open</code> verify \
every file against the signed metadata; this page does not.</p>\n";

/// The value of `q` in a query string (`+` and percent-escapes decoded), trimmed; `None`
/// when absent, empty, not UTF-8 or longer than [`MAX_QUERY`].
pub fn search_term(query: Option<&str>) -> Option<String> {
    let raw = query?.split('&').find_map(|kv| kv.strip_prefix("q="))?;
    let spaced = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced).decode_utf8().ok()?;
    let term = decoded.trim();
    (!term.is_empty() && term.chars().count() <= MAX_QUERY).then(|| term.to_string())
}

/// `/`: the projects of the signed project list, filtered by `q` (a substring of the PEP 503
/// normalised name).
pub fn index_page(list_json: &[u8], q: Option<&str>) -> Result<Vec<u8>, packman_index::IndexError> {
    let mut names = parse_index_json("simple/index.json", list_json)?;
    names.sort_by_cached_key(|n| normalize_name(n));
    let total = names.len();
    let needle = q.map(normalize_name);
    let matching: Vec<&String> =
        names.iter().filter(|n| needle.as_ref().is_none_or(|q| normalize_name(n).contains(q.as_str()))).collect();
    let mut body = String::from("<header>\n<h1>Projects</h1>\n</header>\n<main>\n");
    body.push_str("<form method=\"get\" action=\"/\" role=\"search\">\n<label for=\"q\">Search projects</label>\n");
    let _ = write!(
        body,
        "<input id=\"q\" name=\"q\" type=\"search\" maxlength=\"{MAX_QUERY}\" value=\"{}\">\n\
         <button type=\"submit\">Search</button>\n</form>\n",
        escape_html(q.unwrap_or(""))
    );
    match q {
        Some(q) => {
            let _ = writeln!(
                body,
                "<p>{} of {total} projects match \u{201c}{}\u{201d}.</p>",
                matching.len(),
                escape_html(q)
            );
        }
        None => {
            let _ = writeln!(body, "<p>{total} projects.</p>");
        }
    }
    body.push_str("<ul class=\"projects\">\n");
    for name in matching.iter().take(MAX_LISTED) {
        let normal = normalize_name(name);
        let _ = writeln!(body, "<li><a href=\"/project/{}/\">{}</a></li>", escape_html(&normal), escape_html(name));
    }
    body.push_str("</ul>\n");
    if matching.len() > MAX_LISTED {
        let _ = writeln!(body, "<p>{} more not shown: search to narrow the list.</p>", matching.len() - MAX_LISTED);
    }
    body.push_str(NOTE);
    body.push_str("</main>\n");
    Ok(page("Projects", &body))
}

/// A version as a `packman://` link may carry it (the characters of a normalised PEP 440
/// version); anything else gets no link.
fn link_safe(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'!' | b'+' | b'_' | b'-'))
}

fn size(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

fn file_rows(body: &mut String, project: &str, files: &[&FileEntry]) {
    body.push_str(
        "<table>\n<caption>Files</caption>\n<thead><tr><th scope=\"col\">File</th><th scope=\"col\">Size</th>\
         <th scope=\"col\">sha256</th><th scope=\"col\">Uploaded</th><th scope=\"col\">Requires-Python</th>\
         <th scope=\"col\">Yanked</th></tr></thead>\n<tbody>\n",
    );
    for f in files {
        // The signed page links files relative to /simple/PROJECT/; only that form is linked.
        let prefix = format!("../../packages/{project}/");
        let name = match f.url.strip_prefix(&prefix) {
            Some(rest) if !rest.contains(['/', '?', '#', '\\']) && !rest.starts_with('.') => format!(
                "<a href=\"/packages/{}/{}\">{}</a>",
                escape_html(project),
                escape_html(rest),
                escape_html(&f.filename)
            ),
            _ => escape_html(&f.filename),
        };
        let yanked = match f.yanked.as_deref() {
            None => "no".to_string(),
            Some("") => "<span class=\"yanked\">yanked</span>".to_string(),
            Some(reason) => format!("<span class=\"yanked\">yanked: {}</span>", escape_html(reason)),
        };
        let _ = writeln!(
            body,
            "<tr><td>{name}</td><td class=\"size\">{}</td><td class=\"hash\">{}</td><td>{}</td><td>{}</td><td>{yanked}</td></tr>",
            size(f.size),
            escape_html(&f.sha256),
            escape_html(f.upload_time.as_deref().unwrap_or("")),
            escape_html(f.requires_python.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody>\n</table>\n");
}

/// `/project/NAME/`: every version of the signed page, newest first, with its files and the
/// commands that install it. `base` is this server's URL (`http://host:port`), already
/// checked by the caller.
pub fn project_page(page_json: &[u8], project: &str, base: &str) -> Result<Vec<u8>, packman_index::IndexError> {
    let page: ProjectPage = parse_project_json(project, page_json)?;
    let name = normalize_name(&page.name);
    let n = escape_html(&name);
    let index = escape_html(&format!("{base}/simple/"));
    let mut body = format!(
        "<header>\n<nav aria-label=\"Breadcrumb\"><a href=\"/\">All projects</a></nav>\n<h1>{n}</h1>\n</header>\n<main>\n\
         <p>Simple index: <code>{index}</code></p>\n"
    );
    let _ = writeln!(body, "<p>{} versions, {} files.</p>", page.versions.len(), page.files.len());
    let mut shown = 0;
    for (i, version) in page.versions.iter().rev().enumerate() {
        let files: Vec<&FileEntry> = page
            .files
            .iter()
            .filter(|f| packman_index::file_version(&f.filename).as_deref() == Some(version.as_str()))
            .collect();
        shown += files.len();
        let v = escape_html(version);
        let _ = writeln!(body, "<section aria-labelledby=\"v{i}\">\n<h2 id=\"v{i}\">{n} {v}</h2>");
        if link_safe(version) && packman_index::is_normalized(&name) {
            let _ = writeln!(
                body,
                "<p><a class=\"install\" href=\"packman://install/{n}@{v}\">Install {n} {v} with packman</a> \
                 <span class=\"note\">(opens <code>packman open</code>, which shows the verified files and asks \
                 before installing)</span></p>"
            );
        }
        let _ = writeln!(
            body,
            "<h3 id=\"v{i}-cmd\">Install commands</h3>\n<pre aria-labelledby=\"v{i}-cmd\"><code>\
             pip install --index-url {index} {n}=={v}\nuv pip install --index-url {index} {n}=={v}\n\
             packman install {n}=={v}</code></pre>"
        );
        file_rows(&mut body, &name, &files);
        body.push_str("</section>\n");
    }
    if shown < page.files.len() {
        let others: Vec<&FileEntry> =
            page.files.iter().filter(|f| packman_index::file_version(&f.filename).is_none()).collect();
        body.push_str("<section aria-labelledby=\"other\">\n<h2 id=\"other\">Other files</h2>\n");
        file_rows(&mut body, &name, &others);
        body.push_str("</section>\n");
    }
    body.push_str(NOTE);
    body.push_str("</main>\n");
    Ok(page_html(&name, &body))
}

fn page_html(name: &str, body: &str) -> Vec<u8> {
    page(&format!("{name} \u{2014} packages"), body)
}

/// The server's own URL for the install commands, from the request's `Host` header when it
/// is a plain host[:port] (anything else: a placeholder, never reflected).
pub fn base_url(host: Option<&str>) -> String {
    match host {
        Some(h)
            if !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')) =>
        {
            format!("http://{h}")
        }
        _ => "http://SERVER".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, yanked: Option<&str>, rp: Option<&str>) -> FileEntry {
        FileEntry {
            filename: name.into(),
            url: format!("../../packages/hello/{name}"),
            sha256: "ab".repeat(32),
            size: 12345,
            upload_time: Some("2026-11-23T12:00:00Z".into()),
            requires_python: rp.map(str::to_string),
            yanked: yanked.map(str::to_string),
            core_metadata_sha256: None,
        }
    }

    #[test]
    fn pages_escape_everything_from_packages() {
        let files = [
            file("hello-1.0-py3-none-any.whl", Some("<script>alert(1)</script>"), Some("<b>x</b>")),
            file("hello-1.1.tar.gz", None, None),
        ];
        let json = packman_index::project_json("hello", &files);
        let html = String::from_utf8(project_page(&json, "hello", "http://h:1").unwrap()).unwrap();
        assert!(!html.contains("<script") && !html.contains("<b>"), "{html}");
        assert!(html.contains("yanked: &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("href=\"packman://install/hello@1.1\""), "{html}");
        assert!(html.contains("pip install --index-url http://h:1/simple/ hello==1.0"), "{html}");
        assert!(html.contains("href=\"/packages/hello/hello-1.1.tar.gz\""), "{html}");
        assert!(html.find("hello 1.1").unwrap() < html.find("hello 1.0").unwrap(), "newest first");
        assert!(html.contains(&"ab".repeat(32)));
    }

    #[test]
    fn the_index_filters_on_normalised_names() {
        let list = packman_index::index_json(&["Foo_Bar".into(), "baz".into(), "<x>".into()]);
        let html = String::from_utf8(index_page(&list, Some("foo-b")).unwrap()).unwrap();
        assert!(html.contains("href=\"/project/foo-bar/\">Foo_Bar</a>") && !html.contains(">baz<"), "{html}");
        let html = String::from_utf8(index_page(&list, None).unwrap()).unwrap();
        assert!(html.contains("&lt;x&gt;") && !html.contains("<x>"), "{html}");
        assert_eq!(search_term(Some("q=Foo+Bar%21")).as_deref(), Some("Foo Bar!"));
        assert_eq!(search_term(Some("a=1&q=%20x%20")).as_deref(), Some("x"));
        assert_eq!(search_term(Some("q=")), None);
        assert_eq!(search_term(Some(&format!("q={}", "a".repeat(MAX_QUERY + 1)))), None);
        assert_eq!(base_url(Some("127.0.0.1:8000")), "http://127.0.0.1:8000");
        assert_eq!(base_url(Some("evil\"><script>")), "http://SERVER");
    }
}
