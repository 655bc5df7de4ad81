//! Request paths and target URLs: the server's resolution never yields a file outside
//! metadata/ or targets/ or with a dot segment, and the client's target URLs never climb
//! above the targets base; a saved file name is one plain path component.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use packman_server::{resolve, Resolved};
use packman_tuf::layout;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match resolve(s) {
        Resolved::File(p) | Resolved::SimplePage(p) => {
            assert!(p.starts_with("metadata") || p.starts_with("targets"), "{s:?} -> {p:?}");
            assert!(p.components().all(|c| matches!(c, Component::Normal(_))), "{s:?} -> {p:?}");
            assert!(!p.to_string_lossy().contains('\0'));
        }
        _ => {}
    }
    let base = "http://127.0.0.1:1/targets/";
    if let Ok(url) = layout::target_url(base, s, Some("ab")) {
        let rest = url.strip_prefix(base).expect("under the base");
        assert!(!rest.split('/').any(|seg| seg == ".." || seg == "."), "{s:?} -> {url}");
    }
    if let Ok(name) = layout::file_name(s) {
        let mut c = std::path::Path::new(&name).components();
        assert!(matches!(c.next(), Some(Component::Normal(_))) && c.next().is_none(), "{s:?} -> {name}");
    }
});
