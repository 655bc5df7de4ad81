//! Project names: PEP 508 validity and PEP 503 normalisation.

/// PEP 503 normalisation: every run of `-`, `_` and `.` becomes one `-`, and ASCII letters
/// are lower-cased. It does not validate; see [`is_valid_name`].
///
/// `Foo__Bar.baz` -> `foo-bar-baz`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
                in_run = true;
            }
        } else {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        }
    }
    out
}

/// PEP 508 name rule: `^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`, ASCII, case-insensitive.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// True when `name` is already in PEP 503 normal form and valid: lower-case ASCII letters,
/// digits and single `-` between them (what `is_valid_name(name) && normalize_name(name) ==
/// name` says, without allocating: it runs over every name of a project list).
pub fn is_normalized(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
        && !b.windows(2).any(|w| w == b"--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_collapses_runs_and_lowercases() {
        assert_eq!(normalize_name("Foo_Bar"), "foo-bar");
        assert_eq!(normalize_name("foo.bar"), "foo-bar");
        assert_eq!(normalize_name("Foo__-.Bar"), "foo-bar");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("Django"), "django");
        assert_eq!(normalize_name("a"), "a");
        assert_eq!(normalize_name("friendly-bard"), "friendly-bard");
        assert_eq!(normalize_name("FrIeNdLy-._.-bArD"), "friendly-bard");
    }

    #[test]
    fn pep508_name_rules() {
        for ok in ["a", "A1", "foo-bar", "foo_bar", "foo.bar", "Foo_Bar.9", "0"] {
            assert!(is_valid_name(ok), "{ok} should be valid");
        }
        for bad in ["", "-foo", "foo-", "_foo", "foo.", "foo bar", "föö", "foo/bar", "foo+1", "."] {
            assert!(!is_valid_name(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn normal_form_check() {
        assert!(is_normalized("foo-bar"));
        assert!(!is_normalized("Foo-bar"));
        assert!(!is_normalized("foo_bar"));
        assert!(!is_normalized("foo--bar"));
        assert!(!is_normalized("-foo"));
        // The byte rules say what validity plus normal form says, over every short name.
        let alphabet = b"aZ0-_.";
        let mut name = Vec::new();
        for n in 0..(6usize.pow(5)) {
            name.clear();
            let (mut k, len) = (n, 1 + n % 5);
            for _ in 0..len {
                name.push(alphabet[k % 6]);
                k /= 6;
            }
            let s = std::str::from_utf8(&name).unwrap();
            assert_eq!(is_normalized(s), is_valid_name(s) && normalize_name(s) == s, "{s}");
        }
    }
}
