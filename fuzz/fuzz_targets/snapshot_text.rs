//! The publisher's snapshot text reader, differential against serde: whatever the text
//! reader accepts, serde parses to the same snapshot, and its canonical form is the plain
//! canonicaliser's.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    packman_repo::fuzzing::snapshot_text_against_serde(data);
});
