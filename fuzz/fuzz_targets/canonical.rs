//! Canonical JSON, differential: the byte-scan fast path, the streaming path and the tree
//! path must agree whenever the fast path accepts, and the streaming canonicaliser must
//! agree with the tree canonicaliser on what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use packman_tuf::canonical::{canonical_signed, signed_if_canonical, Value};

fuzz_target!(|data: &[u8]| {
    let slow = canonical_signed(data);
    if let Some(fast) = signed_if_canonical(data) {
        // The scan only accepts what it fully understands, and the typed parse of the same
        // bytes checks syntax: when the whole input is valid JSON, the two must agree.
        if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
            assert_eq!(slow.as_ref().ok(), Some(&fast), "fast path disagrees");
        }
    }
    if let Ok(canon) = &slow {
        // Whatever is canonical re-canonicalises to itself.
        let wrapped = [&b"{\"signed\":"[..], canon, b"}"].concat();
        if let Ok(v) = Value::from_slice(&wrapped) {
            let again = v.get("signed").expect("just wrapped").to_canonical().expect("canonical");
            assert_eq!(&again, canon, "canonical form is not a fixed point");
        }
    }
});
