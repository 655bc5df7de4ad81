//! Canonical JSON as signatures are checked over it: exact expected bytes for the byte scan
//! (`signed_if_canonical`), the streaming path and the tree path of `canonical_signed`, and
//! what each must decline or refuse. A wrong byte here is a signature that fails (or, worse,
//! a `signed` value other than the one the client acts on). Written for the mutation
//! campaign (docs/MUTATION.md); each case names what it holds.

use packman_tuf::canonical::{canonical_signed, signed_if_canonical, SignedError, Value};

/// `(input, expected canonical bytes of its "signed" member)`: canonical up to whitespace,
/// so the byte scan must take each and agree with the full canonicaliser.
const CANONICAL: &[(&str, &str)] = &[
    // "signed" last, first and in the middle of the envelope.
    (r#"{"signatures":[],"signed":{"a":1}}"#, r#"{"a":1}"#),
    (r#"{"signed":{"a":1},"z":[]}"#, r#"{"a":1}"#),
    (r#"{"a":[],"signed":[1,2],"z":{}}"#, r#"[1,2]"#),
    // Whitespace of every kind, everywhere, is dropped.
    ("{ \"signed\" :\t{\r\n\"a\" : [ 1 , 2 ] ,\n\"b\" : { } } \n}", r#"{"a":[1,2],"b":{}}"#),
    // Escaped quote and backslash are kept as written; raw UTF-8 is copied.
    (r#"{"signed":{"a":"q\"b\\c","b":"é"}}"#, r#"{"a":"q\"b\\c","b":"é"}"#),
    // Integers: negative, 19 digits, zero.
    (r#"{"signed":[-12,1234567890123456789,0]}"#, r#"[-12,1234567890123456789,0]"#),
    // Literals.
    (r#"{"signed":[true,false,null]}"#, r#"[true,false,null]"#),
    // A nested "signed" key is only data; nested objects sort on their own.
    (r#"{"signed":{"a":{"signed":1,"z":2},"b":{"a":3}}}"#, r#"{"a":{"signed":1,"z":2},"b":{"a":3}}"#),
    (r#"{"a":{"signed":5},"signed":{"x":[1,{"k":"v"}]}}"#, r#"{"x":[1,{"k":"v"}]}"#),
    // Keys that are prefixes of each other sort shorter first.
    (r#"{"signed":{"a":1,"ab":2,"b":3}}"#, r#"{"a":1,"ab":2,"b":3}"#),
    // Strings that are just a quote or a backslash.
    (r#"{"signed":["\"","\\",""]}"#, r#"["\"","\\",""]"#),
];

#[test]
fn the_byte_scan_returns_exactly_the_signed_bytes() {
    for (input, want) in CANONICAL {
        let got = signed_if_canonical(input.as_bytes()).unwrap_or_else(|| panic!("declined {input}"));
        assert_eq!(String::from_utf8_lossy(&got), *want, "{input}");
        let full = canonical_signed(input.as_bytes()).unwrap();
        assert_eq!(String::from_utf8_lossy(&full), *want, "canonical_signed {input}");
    }
}

/// Inputs the byte scan must decline (`None`), so that the full canonicaliser decides.
const DECLINED: &[&str] = &[
    r#"{"signed":{"b":1,"a":2}}"#,       // unsorted
    r#"{"signed":{"a":1,"a":1}}"#,       // duplicate
    r#"{"signed":{"a":{"x":1,"x":2}}}"#, // duplicate, nested
    r#"{"signed":{"ab":1,"a":2}}"#,      // prefix after the longer key
    r#"{"signed":{"a\"b":1}}"#,          // escape in a key
    r#"{"signed":"\n"}"#,                // escape other than \" and \\
    r#"{"signed":"\u0041"}"#,
    "{\"signed\":\"a\u{1}b\"}", // raw control byte
    "{\"signed\":\"a\nb\"}",
    "{\"signed\":\"x\u{1}\"\"}", // raw control byte before a quote (not an escape)
    r#"{"signed":1.5}"#,
    r#"{"signed":1e3}"#,
    r#"{"signed":1E3}"#,
    r#"{"signed":+1}"#,
    r#"{"signed":-0}"#,
    r#"{"signed":12345678901234567890}"#, // 20 digits: past what the scan copies as is
    r#"{"signed":tru}"#,
    r#"{"signed":nul}"#,
    r#"{"signed":fals}"#,
    r#"{"signed":'a'}"#,
    r#"{"signatures":[]}"#,   // no "signed"
    r#"{"a":{"signed":1}}"#,  // only a nested "signed"
    r#"["signed",1]"#,        // not an object
    r#"{"signed":{"a":1}"#,   // unclosed
    r#"{"signed":{"a":1}}}"#, // one close too many
    r#"{"signed":"abc"#,      // unterminated string
    r#"{"signed":"abc\"#,     // backslash at the end
    r#"{"signed":}"#,         // no value
    r#"{"signed":12"#,        // truncated after a number
    "12",                     // a bare number
];

#[test]
fn the_byte_scan_declines_what_it_does_not_fully_understand() {
    for input in DECLINED {
        if let Some(got) = signed_if_canonical(input.as_bytes()) {
            panic!("{input}: took the fast path, giving {}", String::from_utf8_lossy(&got));
        }
    }
}

#[test]
fn the_streaming_path_writes_the_same_bytes_as_the_tree() {
    // Sorted input takes the streaming path of canonical_signed; each value kind once.
    let input = br#"{"signatures": [{"keyid": "k"}], "signed": {"a": [1, -2, 18446744073709551615], "b": [true, false, null], "c": "x\"y\\z\n", "d": [], "e": {}, "f": [[1], [2, 3]]}}"#;
    let want = "{\"a\":[1,-2,18446744073709551615],\"b\":[true,false,null],\"c\":\"x\\\"y\\\\z\n\",\"d\":[],\"e\":{},\"f\":[[1],[2,3]]}";
    assert_eq!(String::from_utf8_lossy(&canonical_signed(input).unwrap()), want);
    // The same value unsorted takes the tree path.
    let unsorted = br#"{"signed": {"f": [[1], [2, 3]], "e": {}, "d": [], "c": "x\"y\\z\n", "b": [true, false, null], "a": [1, -2, 18446744073709551615]}}"#;
    assert_eq!(String::from_utf8_lossy(&canonical_signed(unsorted).unwrap()), want);
}

#[test]
fn duplicate_keys_are_refused_by_both_paths() {
    for input in [
        &br#"{"signed": {"a": 1, "a": 1}}"#[..],
        br#"{"signed": {"b": 1, "a": 2, "b": 1}}"#,
        br#"{"signed": {"x": {"k": 1, "k": 2}}}"#,
        br#"{"signed": {"x": [{"k": 1, "j": 0, "k": 2}]}}"#,
        br#"{"signed": {}, "signed": {}}"#,
        br#"{"signed": {}, "a": 1, "signed": {}}"#,
    ] {
        match canonical_signed(input) {
            Err(SignedError::Json(e)) => assert!(e.to_string().contains("duplicate"), "{e}"),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(input)),
        }
        assert!(Value::from_slice(input).is_err());
    }
}

#[test]
fn value_lookups_find_each_key_and_nothing_else() {
    let v = Value::from_slice(br#"{"c": "3", "a": "1", "b": 2}"#).unwrap();
    assert_eq!(v.get("a").and_then(Value::as_str), Some("1"));
    assert_eq!(v.get("c").and_then(Value::as_str), Some("3"));
    assert_eq!(v.get("b"), Some(&Value::Int(2)));
    assert_eq!(v.get("b").and_then(Value::as_str), None);
    assert_eq!(v.get("d"), None);
    assert_eq!(Value::from_slice(b"[1]").unwrap().get("a"), None);
}

#[test]
fn an_empty_file_or_envelope_has_no_canonical_signed_part() {
    // Neither may come out as empty canonical bytes (which a signature could be made over).
    assert!(matches!(canonical_signed(b""), Err(SignedError::Json(_))));
    assert!(matches!(canonical_signed(b" \n"), Err(SignedError::Json(_))));
    assert!(matches!(canonical_signed(b"{}"), Err(SignedError::NoSigned)));
    assert!(matches!(canonical_signed(b"{ }"), Err(SignedError::NoSigned)));
}

#[test]
fn empty_objects_and_null_keep_their_bytes_on_the_streaming_path() {
    for (input, want) in [
        (&br#"{"signed": {}}"#[..], "{}"),
        (br#"{"signed": [{}, [], null]}"#, "[{},[],null]"),
        (br#"{"signed": null}"#, "null"),
    ] {
        assert_eq!(String::from_utf8_lossy(&canonical_signed(input).unwrap()), want);
    }
}
