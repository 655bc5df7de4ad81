//! Duplicate keys in metadata: with two values for one key, the bytes a signature covers
//! and the value the client acts on could disagree about what was signed, so every
//! deserialiser that checks keys itself (rather than through serde's derive) refuses them,
//! whether the keys arrive sorted (adjacent duplicates) or not. Also ties the unsorted path
//! of `MetaMap` to its lookups. Written for the mutation campaign (docs/MUTATION.md).

use packman_tuf::{Hashes, MetaFile, MetaMap};

fn refused<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str, what: &str) {
    match serde_json::from_str::<T>(json) {
        Err(e) => assert!(e.to_string().contains(what), "{json}: error {e} does not mention {what:?}"),
        Ok(v) => panic!("{json}: accepted as {v:?}"),
    }
}

#[test]
fn a_hash_algorithm_listed_twice_is_refused() {
    refused::<Hashes>(r#"{"sha256": "aa", "sha256": "bb"}"#, "duplicate hash \"sha256\"");
    refused::<Hashes>(r#"{"sha256": "aa", "sha512": "cc", "sha256": "aa"}"#, "duplicate hash");
    let h: Hashes = serde_json::from_str(r#"{"sha256": "aa", "sha512": "cc"}"#).unwrap();
    assert_eq!((h.get("sha256"), h.get("sha512")), (Some("aa"), Some("cc")));
}

#[test]
fn a_metafile_field_listed_twice_is_refused() {
    refused::<MetaFile>(r#"{"version": 1, "version": 2}"#, "duplicate field \"version\"");
    refused::<MetaFile>(r#"{"length": 1, "version": 1, "length": 2}"#, "duplicate field \"length\"");
    refused::<MetaFile>(
        r#"{"hashes": {"sha256": "aa"}, "version": 1, "hashes": {"sha256": "bb"}}"#,
        "duplicate field \"hashes\"",
    );
    refused::<MetaFile>(r#"{"x-note": 1, "version": 1, "x-note": 2}"#, "duplicate field \"x-note\"");
    let m: MetaFile = serde_json::from_str(r#"{"hashes": {"sha256": "aa"}, "length": 7, "version": 3}"#).unwrap();
    assert_eq!((m.version, m.length, m.hashes.as_ref().and_then(|h| h.get("sha256"))), (3, Some(7), Some("aa")));
}

#[test]
fn a_role_listed_twice_in_meta_is_refused_sorted_or_not() {
    // Adjacent (as a sorted writer would put them), and apart in unsorted input.
    refused::<MetaMap>(r#"{"a.json": {"version": 1}, "a.json": {"version": 2}}"#, "duplicate key \"a.json\"");
    refused::<MetaMap>(
        r#"{"b.json": {"version": 1}, "a.json": {"version": 1}, "b.json": {"version": 9}}"#,
        "duplicate key \"b.json\"",
    );
}

#[test]
fn meta_in_any_key_order_is_looked_up_by_name() {
    for json in [
        r#"{"a.json": {"version": 1}, "b.json": {"version": 2}, "c.json": {"version": 3}}"#,
        r#"{"c.json": {"version": 3}, "a.json": {"version": 1}, "b.json": {"version": 2}}"#,
        r#"{"b.json": {"version": 2}, "c.json": {"version": 3}, "a.json": {"version": 1}}"#,
    ] {
        let m: MetaMap = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let got: Vec<_> = ["a.json", "b.json", "c.json", "d.json"].iter().map(|n| m.version(n)).collect();
        assert_eq!(got, [Some(1), Some(2), Some(3), None], "{json}");
    }
}
