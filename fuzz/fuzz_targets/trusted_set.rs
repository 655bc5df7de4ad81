//! Metadata parsing and verification through the trusted set: the input is a sequence of
//! length-prefixed chunks (2-byte little-endian length), the first a root, then updates in
//! the client's loading order. Nothing may panic; whatever is accepted must be internally
//! consistent (a loaded snapshot matches the timestamp's version).
#![no_main]

use libfuzzer_sys::fuzz_target;
use packman_tuf::{OffsetDateTime, TrustedSet};

fn chunks(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 8 {
        let n = u16::from_le_bytes([data[0], data[1]]) as usize;
        data = &data[2..];
        let n = n.min(data.len());
        out.push(&data[..n]);
        data = &data[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let parts = chunks(data);
    let Some((root, rest)) = parts.split_first() else { return };
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    let Ok(mut set) = TrustedSet::new(root, now) else { return };
    let mut it = rest.iter();
    // Any number of root updates, then timestamp, snapshot, targets, one delegated role.
    for bytes in it.by_ref() {
        if set.update_root(bytes).is_err() {
            if set.update_timestamp(bytes).is_err() {
                return;
            }
            break;
        }
    }
    let Some(snapshot) = it.next() else { return };
    if set.update_snapshot(snapshot, false).is_ok() {
        let named = set.timestamp().expect("snapshot implies timestamp").signed.snapshot_meta().version;
        assert_eq!(set.snapshot().expect("loaded").signed.version, named);
    }
    if let Some(targets) = it.next() {
        let _ = set.update_delegated_targets(targets, "targets", "root");
    }
    if let Some(bin) = it.next() {
        let _ = set.update_delegated_targets(bin, "bins-0", "targets");
    }
});
