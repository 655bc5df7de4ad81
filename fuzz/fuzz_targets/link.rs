//! `packman://` links: the one parser never panics; what it accepts is within the length
//! limit, holds no `%`, `#`, `&`, whitespace, control or non-ASCII byte, has a project that
//! cannot read as an option (no leading `-`, no `--`) and an option-free version, and its
//! canonical spelling parses back to the same link (so a link means one thing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use packman_trust::{Link, MAX_LINK_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(link) = Link::parse(s) else { return };
    assert!(s.len() <= MAX_LINK_LEN, "{s:?} accepted past the limit");
    assert!(
        s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'#' | b'&' | b'\\')),
        "{s:?} accepted with a forbidden byte"
    );
    assert!(!link.project.is_empty() && !link.project.starts_with('-') && !link.project.contains("--"), "{link:?}");
    assert!(link.project.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')), "{link:?}");
    if let Some(v) = &link.version {
        assert!(!v.is_empty() && !v.starts_with('-'), "{link:?}");
    }
    if let Some(r) = &link.repo {
        assert!(!r.is_empty() && !r.starts_with('-'), "{link:?}");
    }
    let canonical = link.to_url();
    assert_eq!(Link::parse(&canonical).as_ref(), Ok(&link), "{s:?} -> {canonical:?} does not round-trip");
});
