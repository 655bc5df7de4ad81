//! Core metadata (`METADATA` / `PKG-INFO`): the RFC 822-style header block, read strictly
//! enough to get the fields an index serves. The body (long description) is not parsed and
//! need not be UTF-8.

use std::str::FromStr;

use pep440_rs::VersionSpecifiers;

use crate::IndexError;

/// The fields of a core metadata file that the index uses. Values are as written, with
/// folded lines unfolded and surrounding whitespace trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    pub metadata_version: String,
    pub name: String,
    pub version: String,
    pub summary: Option<String>,
    pub requires_python: Option<String>,
    pub requires_dist: Vec<String>,
}

fn malformed(file: &str, rule: impl Into<String>) -> IndexError {
    IndexError::MalformedMetadata { file: file.to_string(), rule: rule.into() }
}

/// Split the header block into `(field name, unfolded value)` pairs, in order.
fn headers<'a>(file: &str, bytes: &'a [u8]) -> Result<Vec<(&'a str, String)>, IndexError> {
    let mut out: Vec<(&'a str, String)> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            break; // end of headers; the body follows
        }
        let line =
            std::str::from_utf8(raw).map_err(|_| malformed(file, format!("header line {line_no} is not UTF-8")))?;
        if line.starts_with([' ', '\t']) {
            // RFC 5322 unfolding: drop the line break, keep the whitespace.
            let Some((_, value)) = out.last_mut() else {
                return Err(malformed(file, "continuation line before any header"));
            };
            value.push_str(line);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(file, format!("header line {line_no} is neither 'Field: value' nor a continuation")));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed(file, format!("header line {line_no} has an invalid field name {name:?}")));
        }
        out.push((name, value.to_string()));
    }
    for (_, v) in &mut out {
        let trimmed = v.trim();
        if trimmed.len() != v.len() {
            *v = trimmed.to_string();
        }
    }
    Ok(out)
}

/// Parse core metadata bytes. `file` names the distribution in errors.
///
/// Rules: `Metadata-Version`, `Name` and `Version` are required and single; `Summary` and
/// `Requires-Python` are single; `Metadata-Version` must be 1.x or 2.x; `Requires-Python`
/// must be a PEP 440 specifier set. Field names are case-insensitive.
pub fn parse_core_metadata(file: &str, bytes: &[u8]) -> Result<CoreMetadata, IndexError> {
    let mut metadata_version = None;
    let mut name = None;
    let mut version = None;
    let mut summary = None;
    let mut requires_python = None;
    let mut requires_dist = Vec::new();

    fn single(file: &str, slot: &mut Option<String>, field: &'static str, value: String) -> Result<(), IndexError> {
        if slot.is_some() {
            return Err(IndexError::DuplicateField { file: file.to_string(), field });
        }
        *slot = Some(value);
        Ok(())
    }

    for (field, value) in headers(file, bytes)? {
        match field.to_ascii_lowercase().as_str() {
            "metadata-version" => single(file, &mut metadata_version, "Metadata-Version", value)?,
            "name" => single(file, &mut name, "Name", value)?,
            "version" => single(file, &mut version, "Version", value)?,
            "summary" => single(file, &mut summary, "Summary", value)?,
            "requires-python" => single(file, &mut requires_python, "Requires-Python", value)?,
            "requires-dist" => requires_dist.push(value),
            _ => {}
        }
    }

    let missing = |field| IndexError::MissingField { file: file.to_string(), field };
    let metadata_version = metadata_version.filter(|v| !v.is_empty()).ok_or_else(|| missing("Metadata-Version"))?;
    let name = name.filter(|v| !v.is_empty()).ok_or_else(|| missing("Name"))?;
    let version = version.filter(|v| !v.is_empty()).ok_or_else(|| missing("Version"))?;

    let supported = metadata_version.split_once('.').is_some_and(|(major, minor)| {
        matches!(major, "1" | "2") && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if !supported {
        return Err(IndexError::UnsupportedMetadataVersion { file: file.to_string(), version: metadata_version });
    }

    let requires_python = requires_python.filter(|v| !v.is_empty());
    if let Some(rp) = &requires_python {
        VersionSpecifiers::from_str(rp).map_err(|e| IndexError::InvalidRequiresPython {
            file: file.to_string(),
            value: rp.clone(),
            reason: e.to_string(),
        })?;
    }

    Ok(CoreMetadata {
        metadata_version,
        name,
        version,
        summary: summary.filter(|v| !v.is_empty()),
        requires_python,
        requires_dist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Metadata-Version: 2.1\r\n\
Name: Foo_Bar\r\n\
Version: 1.0\r\n\
Summary: A folded\r\n  summary\r\n\
requires-python: >=3.8,<4\r\n\
Requires-Dist: requests (>=2.0)\r\n\
Requires-Dist: tomli; python_version < \"3.11\"\r\n\
Classifier: Programming Language :: Python\r\n\
\r\n\
Name: Not a header, this is the body\n";

    #[test]
    fn parses_fields() {
        let m = parse_core_metadata("f", SAMPLE.as_bytes()).unwrap();
        assert_eq!(m.metadata_version, "2.1");
        assert_eq!(m.name, "Foo_Bar");
        assert_eq!(m.version, "1.0");
        assert_eq!(m.summary.as_deref(), Some("A folded  summary"));
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8,<4"));
        assert_eq!(m.requires_dist, vec!["requests (>=2.0)", "tomli; python_version < \"3.11\""]);
    }

    #[test]
    fn body_need_not_be_utf8() {
        let mut bytes = b"Metadata-Version: 2.1\nName: a\nVersion: 1\n\n".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, 0x00]);
        assert!(parse_core_metadata("f", &bytes).is_ok());
    }

    #[test]
    fn rule_violations() {
        let err = |s: &[u8]| parse_core_metadata("pkg.whl", s).unwrap_err();
        assert!(matches!(err(b"Metadata-Version: 2.1\nVersion: 1\n"), IndexError::MissingField { field: "Name", .. }));
        assert!(matches!(err(b"Metadata-Version: 2.1\nName: a\n"), IndexError::MissingField { field: "Version", .. }));
        assert!(matches!(err(b"Name: a\nVersion: 1\n"), IndexError::MissingField { field: "Metadata-Version", .. }));
        assert!(matches!(
            err(b"Metadata-Version: 2.1\nName: a\nName: b\nVersion: 1\n"),
            IndexError::DuplicateField { field: "Name", .. }
        ));
        assert!(matches!(
            err(b"Metadata-Version: 3.0\nName: a\nVersion: 1\n"),
            IndexError::UnsupportedMetadataVersion { .. }
        ));
        assert!(matches!(
            err(b"Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Python: >=3.6.*\n"),
            IndexError::InvalidRequiresPython { .. }
        ));
        assert!(matches!(
            err(b"Metadata-Version: 2.1\nName: a\nthis is not a header\n"),
            IndexError::MalformedMetadata { .. }
        ));
        assert!(matches!(err(b" leading continuation\n"), IndexError::MalformedMetadata { .. }));
        assert!(matches!(err(b"Metadata-Version: 2.1\nName: \xff\n"), IndexError::MalformedMetadata { .. }));
        let msg = err(b"Metadata-Version: 2.1\nName: a\n").to_string();
        assert_eq!(msg, "pkg.whl: core metadata lacks the required field Version");
    }
}
