//! Content negotiation: PEP 691 for simple pages, `gzip` for text files.

/// The representation of a simple page a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFormat {
    /// `application/vnd.pypi.simple.v1+json` (or `latest+json`).
    Json,
    /// `application/vnd.pypi.simple.v1+html` (or `latest+html`).
    Html,
    /// Legacy `text/html` (PEP 503), also the default without an `Accept` header.
    LegacyHtml,
}

impl PageFormat {
    pub fn file_name(self) -> &'static str {
        match self {
            PageFormat::Json => "index.json",
            PageFormat::Html | PageFormat::LegacyHtml => "index.html",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PageFormat::Json => packman_index::JSON_CONTENT_TYPE,
            PageFormat::Html => packman_index::HTML_CONTENT_TYPE,
            PageFormat::LegacyHtml => "text/html; charset=utf-8",
        }
    }
}

/// What a 406 response lists.
pub const ACCEPTABLE: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, text/html";

/// Picks the page format for an `Accept` header (PEP 691): the acceptable media range with the
/// highest quality wins, ties going to the one listed first; `None` means 406.
pub fn page_format(accept: Option<&str>) -> Option<PageFormat> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(PageFormat::LegacyHtml);
    };
    let mut best: Option<(u16, PageFormat)> = None;
    for (range, q) in media_ranges(accept) {
        let format = match range.as_str() {
            "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json" => PageFormat::Json,
            "application/vnd.pypi.simple.v1+html" | "application/vnd.pypi.simple.latest+html" => PageFormat::Html,
            "text/html" | "text/*" | "*/*" => PageFormat::LegacyHtml,
            _ => continue,
        };
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f)
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero quality).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else { return false };
    let mut star = false;
    for (coding, q) in media_ranges(header) {
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0,
            "*" => star = q > 0,
            _ => {}
        }
    }
    star
}

/// `type/subtype;q=0.5, …` -> (lower-cased range, quality in thousandths). At most 64 entries
/// are looked at, so a hostile header costs little.
fn media_ranges(header: &str) -> impl Iterator<Item = (String, u16)> + '_ {
    header.split(',').take(64).filter_map(|item| {
        let mut parts = item.split(';');
        let range = parts.next()?.trim().to_ascii_lowercase();
        if range.is_empty() {
            return None;
        }
        let mut q = 1000;
        for param in parts {
            let Some((k, v)) = param.split_once('=') else { continue };
            if k.trim().eq_ignore_ascii_case("q") {
                q = parse_q(v.trim())?;
            }
        }
        Some((range, q))
    })
}

/// RFC 9110 qvalue: `0`, `0.x` up to three decimals, or `1`/`1.0…`. Invalid -> entry ignored.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_and_uv_headers() {
        // What pip sends.
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(page_format(Some(pip)), Some(PageFormat::Json));
        // What uv sends.
        let uv = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
        assert_eq!(page_format(Some(uv)), Some(PageFormat::Json));
        assert_eq!(page_format(Some("application/vnd.pypi.simple.latest+json")), Some(PageFormat::Json));
        assert_eq!(page_format(Some("application/vnd.pypi.simple.v1+html")), Some(PageFormat::Html));
        assert_eq!(page_format(Some("text/html")), Some(PageFormat::LegacyHtml));
        assert_eq!(page_format(None), Some(PageFormat::LegacyHtml));
        assert_eq!(page_format(Some("*/*")), Some(PageFormat::LegacyHtml));
    }

    #[test]
    fn quality_decides() {
        let h = "application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.9";
        assert_eq!(page_format(Some(h)), Some(PageFormat::LegacyHtml));
        let h = "application/vnd.pypi.simple.v1+json;q=0, text/html;q=0.1";
        assert_eq!(page_format(Some(h)), Some(PageFormat::LegacyHtml));
        // Ties: first listed wins.
        let h = "application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json";
        assert_eq!(page_format(Some(h)), Some(PageFormat::Html));
    }

    #[test]
    fn unacceptable() {
        assert_eq!(page_format(Some("application/json")), None);
        assert_eq!(page_format(Some("application/vnd.pypi.simple.v2+json")), None);
        assert_eq!(page_format(Some("text/html;q=0")), None);
        assert_eq!(page_format(Some("text/html;q=banana")), None);
    }

    #[test]
    fn gzip() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("0.0001"), None);
        assert_eq!(parse_q("1.5"), None);
    }
}
