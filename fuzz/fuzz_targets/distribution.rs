//! Distribution file names and core metadata: no panics, and what parses is consistent
//! (a parsed name is valid and normalises idempotently).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        if let Ok(f) = packman_index::parse_filename(name) {
            let n = packman_index::normalize_name(&f.name);
            assert_eq!(packman_index::normalize_name(&n), n);
            assert!(packman_index::is_normalized(&n));
        }
    }
    let _ = packman_index::parse_core_metadata("fuzz/METADATA", data);
});
