//! Canonical JSON in the OLPC form securesystemslib produces: keys sorted by code point,
//! no whitespace, only `\` and `"` escaped, integers only.
//!
//! Signatures are checked over the canonical form of the `signed` value *as received*, so
//! parsing goes through [`Value`], which keeps every field (known or not) and rejects
//! duplicate object keys: with duplicates, the signed bytes and the typed view could
//! disagree about what was signed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON value that borrows its strings from the input where it can (most metadata
/// strings have no escapes). Objects are vectors sorted by key, duplicates refused: a
/// 16384-bin snapshot parses in a few allocations per bin instead of a map of owned keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i128),
    /// Kept so that parsing succeeds; canonicalising a float is an error (as in securesystemslib).
    Float(f64),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CanonicalError {
    #[error("floating point numbers have no canonical JSON form")]
    Float,
}

impl<'a> Value<'a> {
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(m) => m.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &m[i].1),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Parses JSON bytes, refusing duplicate keys at any depth.
    pub fn from_slice(bytes: &'a [u8]) -> Result<Value<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_canonical(&self) -> Result<Vec<u8>, CanonicalError> {
        let mut out = Vec::with_capacity(256);
        write_canonical(self, &mut out)?;
        Ok(out)
    }
}

impl From<&serde_json::Value> for Value<'static> {
    fn from(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i as i128)
                } else if let Some(u) = n.as_u64() {
                    Value::Int(u as i128)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::String(Cow::Owned(s.clone())),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(Value::from).collect()),
            // serde_json's map (no preserve_order) iterates in key order already.
            serde_json::Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (Cow::Owned(k.clone()), Value::from(v))).collect())
            }
        }
    }
}

/// Canonical bytes of any serialisable value (used when signing). Serialised with serde_json
/// and re-emitted by the streaming canonicaliser: with fields and map keys in sorted order
/// (packman's metadata types) no tree is built; otherwise the tree path sorts.
pub fn to_canonical<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let json = serde_json::to_vec(value).map_err(|_| CanonicalError::Float)?;
    let mut out = Vec::with_capacity(json.len());
    let mut de = serde_json::Deserializer::from_slice(&json);
    if de::DeserializeSeed::deserialize(CanonSeed { out: &mut out }, &mut de).is_ok() {
        return Ok(out);
    }
    let v: Value = serde_json::from_slice(&json).map_err(|_| CanonicalError::Float)?;
    v.to_canonical()
}

/// A role's canonical bytes (what signatures cover) and, when they differ, the compact JSON a
/// metadata file carries as its `signed` member (canonical JSON writes control characters
/// raw, which JSON may not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedForms {
    pub canonical: Vec<u8>,
    /// `None` when `canonical` is itself the JSON to write.
    pub json: Option<Vec<u8>>,
}

impl SignedForms {
    /// The bytes a metadata file carries as its `signed` member.
    pub fn json(&self) -> &[u8] {
        self.json.as_deref().unwrap_or(&self.canonical)
    }
}

/// The [`SignedForms`] of any role. packman's types serialise compactly with sorted keys,
/// which is canonical JSON unless a string needs escaping or unknown fields sort out of
/// place: a byte scan tells, and only then does the value go through the canonicaliser.
/// The tests tie this to [`to_canonical`].
pub fn signed_forms<T: serde::Serialize>(signed: &T) -> Result<SignedForms, CanonicalError> {
    let json = serde_json::to_vec(signed).map_err(|_| CanonicalError::Float)?;
    let mut wrapped = Vec::with_capacity(json.len() + 11);
    wrapped.extend_from_slice(b"{\"signed\":");
    wrapped.extend_from_slice(&json);
    wrapped.push(b'}');
    let canonical = match signed_if_canonical(&wrapped) {
        Some(c) => c,
        None => to_canonical(signed)?,
    };
    let json = (canonical != json).then_some(json);
    Ok(SignedForms { canonical, json })
}

/// The [`SignedForms`] of a snapshot. One in packman's simple layout (version-only entries,
/// plain names, no unknown fields) is written directly: at PyPI's size it is tens of
/// thousands of entries rewritten by every publish. Anything else goes through
/// [`signed_forms`]; the tests tie the two to [`to_canonical`].
pub fn snapshot_forms(snapshot: &crate::Snapshot) -> Result<SignedForms, CanonicalError> {
    match snapshot.fast_canonical() {
        Some(canonical) => Ok(SignedForms { canonical, json: None }),
        None => signed_forms(snapshot),
    }
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(_) => return Err(CanonicalError::Float),
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            // Sorted by UTF-8 bytes, which is code point order: the order Python's sorted()
            // gives securesystemslib.
            out.push(b'{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\\' || c == b'"' {
            out.extend_from_slice(&b[start..i]);
            out.push(b'\\');
            start = i;
        }
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// The canonical form of the top-level `"signed"` member of a metadata file.
///
/// Fast path: one streaming pass that writes canonical JSON while parsing, valid when every
/// object's keys already arrive in strictly increasing order (as securesystemslib,
/// python-tuf and packman write them). Anything else (unsorted or duplicate keys, floats,
/// malformed input) takes the slow path, which builds a [`Value`] and gives the precise error.
pub fn canonical_signed(bytes: &[u8]) -> Result<Vec<u8>, SignedError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fast = de::DeserializeSeed::deserialize(EnvelopeSeed { out: &mut out }, &mut de).and_then(|found| {
        de.end()?;
        Ok(found)
    });
    if let Ok(true) = fast {
        return Ok(out);
    }
    let v = Value::from_slice(bytes).map_err(SignedError::Json)?;
    let signed = v.get("signed").ok_or(SignedError::NoSigned)?;
    signed.to_canonical().map_err(SignedError::Canonical)
}

/// The canonical bytes of the top-level `"signed"` value, when the file is canonical JSON up
/// to whitespace: keys strictly increasing in every object, no escapes but `\"` and `\\`,
/// integers only, no `-0`. That holds for what python-tuf (sorted keys, indented) and
/// packman write, and lets a byte scan replace a full parse. `None` means "canonicalise
/// properly" ([`canonical_signed`]), never "invalid": the input's JSON syntax is checked by
/// the caller's typed parse of the same bytes, and this scan only accepts what it fully
/// understands.
pub fn signed_if_canonical(bytes: &[u8]) -> Option<Vec<u8>> {
    struct Frame {
        object: bool,
        expect_key: bool,
        last_key: Option<(usize, usize)>,
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut stack: Vec<Frame> = Vec::new();
    let (mut signed_start, mut signed_end) = (None, None);
    let mut pending_signed = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'"' => {
                let start = out.len();
                out.push(b'"');
                i += 1;
                let mut has_escape = false;
                loop {
                    // Copy the run up to the next quote, backslash or control byte at once.
                    let run = bytes[i..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
                    out.extend_from_slice(&bytes[i..i + run]);
                    i += run;
                    let b = bytes[i];
                    if b == b'"' {
                        break;
                    }
                    if b < 0x20 {
                        return None;
                    }
                    let n = *bytes.get(i + 1)?;
                    if n != b'"' && n != b'\\' {
                        return None;
                    }
                    has_escape = true;
                    out.push(b);
                    out.push(n);
                    i += 2;
                }
                out.push(b'"');
                i += 1;
                if let Some(f) = stack.last_mut() {
                    if f.object && f.expect_key {
                        if has_escape {
                            return None;
                        }
                        let key = (start + 1, out.len() - 1);
                        if let Some((a, b)) = f.last_key {
                            if out[a..b] >= out[key.0..key.1] {
                                return None;
                            }
                        }
                        f.last_key = Some(key);
                        f.expect_key = false;
                        if stack.len() == 1 && &out[key.0..key.1] == b"signed" {
                            pending_signed = true;
                        }
                    }
                }
                continue;
            }
            b'{' | b'[' => {
                stack.push(Frame { object: c == b'{', expect_key: c == b'{', last_key: None });
                out.push(c);
            }
            b'}' | b']' => {
                stack.pop()?;
                out.push(c);
            }
            b':' => {
                out.push(c);
                if pending_signed {
                    signed_start = Some(out.len());
                    pending_signed = false;
                }
            }
            b',' => {
                if stack.len() == 1 && signed_start.is_some() && signed_end.is_none() {
                    signed_end = Some(out.len());
                }
                if let Some(f) = stack.last_mut() {
                    f.expect_key = f.object;
                }
                out.push(c);
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'-' | b'0'..=b'9' | b'.' | b'e' | b'E' | b'+') {
                    i += 1;
                }
                let num = &bytes[start..i];
                // Integers only, and in the form Python prints them.
                if num.iter().any(|b| matches!(b, b'.' | b'e' | b'E' | b'+')) || num == b"-0" || num.len() > 19 {
                    return None;
                }
                out.extend_from_slice(num);
                continue;
            }
            b't' | b'f' | b'n' => {
                let lit: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !bytes[i..].starts_with(lit) {
                    return None;
                }
                out.extend_from_slice(lit);
                i += lit.len();
                continue;
            }
            _ => return None,
        }
        i += 1;
        if stack.is_empty() && signed_start.is_some() && signed_end.is_none() {
            // The top-level object just closed: "signed" was its last member.
            signed_end = Some(out.len() - 1);
        }
    }
    let (a, b) = (signed_start?, signed_end?);
    if !stack.is_empty() || a >= b {
        return None;
    }
    Some(out[a..b].to_vec())
}

#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("no \"signed\" object")]
    NoSigned,
    #[error("signed part: {0}")]
    Canonical(CanonicalError),
}

struct EnvelopeSeed<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> de::DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metadata object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            if key == "signed" {
                if found {
                    return Err(de::Error::custom("duplicate signed"));
                }
                found = true;
                map.next_value_seed(CanonSeed { out: &mut *self.out })?;
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct CanonSeed<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> de::DeserializeSeed<'de> for CanonSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CanonSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("float"))
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(v, self.out);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(CanonSeed { out: &mut *self.out })?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let mut prev: Option<Cow<'de, str>> = None;
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            if prev.as_ref().is_some_and(|p| *p >= key) {
                return Err(de::Error::custom("keys not strictly increasing"));
            }
            if prev.is_some() {
                self.out.push(b',');
            }
            write_string(&key, self.out);
            self.out.push(b':');
            map.next_value_seed(CanonSeed { out: &mut *self.out })?;
            prev = Some(key);
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// A string that borrows from the input when it has no escapes.
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Int(v as i128))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Int(v as i128))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            v.push(item);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let mut m: Vec<(Cow<'de, str>, Value<'de>)> = Vec::new();
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            let value: Value<'de> = map.next_value()?;
            m.push((key, value));
        }
        // Most files are written with sorted keys: then this is one pass of comparisons.
        if !m.windows(2).all(|w| w[0].0 < w[1].0) {
            m.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(w) = m.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(de::Error::custom(format_args!("duplicate key {:?}", w[0].0)));
            }
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signed_forms_agree_with_the_plain_canonicaliser() {
        use crate::metadata::{Expires, TargetFile, Targets};
        let mut t = Targets {
            type_: "targets".into(),
            delegations: None,
            expires: Expires::parse("2030-01-01T00:00:00Z").unwrap(),
            spec_version: "1.0.31".into(),
            targets: Default::default(),
            version: 3,
            extra: Default::default(),
        };
        t.targets.insert("a/b.txt".into(), TargetFile::from_data(b"plain"));
        let f = signed_forms(&t).unwrap();
        assert_eq!(f.canonical, to_canonical(&t).unwrap());
        assert_eq!(f.json, None, "compact sorted JSON is already canonical");
        // A newline: canonical JSON writes it raw, serde_json escapes it; an unknown field
        // sorts out of place in the compact form.
        let mut odd = TargetFile::from_data(b"odd");
        odd.custom = Some(serde_json::json!({"note": "two\nlines", "q": "a\"b\\c"}));
        t.targets.insert("c/d.txt".into(), odd);
        t.extra.insert("_aaa".into(), serde_json::json!(1));
        let f = signed_forms(&t).unwrap();
        assert_eq!(f.canonical, to_canonical(&t).unwrap());
        assert!(f.json.is_some());
        let back: Targets = serde_json::from_slice(f.json()).unwrap();
        assert_eq!(back, t);
    }

    use super::*;

    #[test]
    fn sorts_keys_and_escapes_like_securesystemslib() {
        let v = Value::from_slice(br#"{"b": [1, "x\"y\\z", null], "a": true, "\u00e9": "\n"}"#).unwrap();
        let c = v.to_canonical().unwrap();
        // Newline stays raw: securesystemslib escapes only backslash and quote.
        assert_eq!(c, "{\"a\":true,\"b\":[1,\"x\\\"y\\\\z\",null],\"\u{e9}\":\"\n\"}".as_bytes());
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        let err = Value::from_slice(br#"{"a": {"k": 1, "k": 2}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key \"k\""), "{err}");
    }

    #[test]
    fn streaming_and_tree_canonical_forms_agree() {
        let cases: [&[u8]; 5] = [
            br#"{"signatures": [], "signed": {"a": [1, {"x": null, "y": false}], "b": "q\"\\\u00e9\n"}}"#,
            br#"{"signed": {"b": 1, "a": 2}, "signatures": []}"#, // unsorted: slow path
            br#"{"signed": {"a": [], "b": {}, "c": -5}}"#,
            br#"{"signed": "just a string"}"#,
            br#"{"signed": {"k": 18446744073709551615}}"#,
        ];
        for c in cases {
            let tree = Value::from_slice(c).unwrap().get("signed").unwrap().to_canonical().unwrap();
            assert_eq!(canonical_signed(c).unwrap(), tree, "{}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn byte_scan_agrees_with_the_canonicaliser_or_declines() {
        let cases: [&[u8]; 14] = [
            br#"{"signatures":[],"signed":{"a":[1,{"x":null,"y":false}],"b":"q\"\\z"}}"#,
            b"{\n \"signatures\": [\n  {\"keyid\": \"k\", \"sig\": \"s\"}\n ],\n \"signed\": {\n  \"_type\": \"snapshot\",\n  \"meta\": {\"a.json\": {\"version\": 12}}\n }\n}",
            br#"{"signed": {"b": 1, "a": 2}, "signatures": []}"#,
            br#"{"signatures": [], "signed": {"a": 1.5}}"#,
            br#"{"signatures": [], "signed": {"a": -0}}"#,
            br#"{"signatures": [], "signed": {"a": "\u00e9"}}"#,
            br#"{"signatures": [], "signed": {"a": "\n"}}"#,
            br#"{"signatures": [], "signed": {"a": 1, "a": 1}}"#,
            br#"{"signatures": [], "signed": {"a\"b": 1}}"#,
            br#"{"signatures": [], "signed": {"k": -12, "l": true, "m": null, "n": [[], {}]}}"#,
            br#"{"signed": {"x": 1}}"#,
            br#"{"a": {"signed": 1}, "signed": {"x": [1, 2]}}"#,
            "{\"signatures\": [], \"signed\": \"\u{e9}, raw UTF-8\"}".as_bytes(),
            br#"{"signatures": [], "signed": {"big": 123456789012345678901234567890}}"#,
        ];
        let mut fast = 0;
        for c in cases {
            if let Some(got) = signed_if_canonical(c) {
                fast += 1;
                assert_eq!(got, canonical_signed(c).unwrap(), "{}", String::from_utf8_lossy(c));
            }
        }
        assert_eq!(fast, 6, "the scan should take the canonical-up-to-whitespace cases");
    }

    #[test]
    fn streaming_path_defers_to_the_tree_for_errors() {
        assert!(matches!(canonical_signed(br#"{"signed": {"a": 1, "a": 2}}"#), Err(SignedError::Json(_))));
        assert!(matches!(canonical_signed(br#"{"signed": {"a": 1.5}}"#), Err(SignedError::Canonical(_))));
        assert!(matches!(canonical_signed(br#"{"signatures": []}"#), Err(SignedError::NoSigned)));
        assert!(matches!(canonical_signed(br#"{"signed": {}, "signed": {}}"#), Err(SignedError::Json(_))));
        assert!(matches!(canonical_signed(b"{\"signed\": {}} trailing"), Err(SignedError::Json(_))));
    }

    #[test]
    fn floats_have_no_canonical_form() {
        let v = Value::from_slice(br#"{"a": 1.5}"#).unwrap();
        assert_eq!(v.to_canonical(), Err(CanonicalError::Float));
    }

    #[test]
    fn huge_integers_are_not_silently_rounded() {
        // Past u64, serde_json yields a float, which canonicalisation refuses.
        let v = Value::from_slice(b"{\"a\": 123456789012345678901234567890}").unwrap();
        assert!(v.to_canonical().is_err());
        let v = Value::from_slice(b"{\"a\": -9223372036854775808}").unwrap();
        assert_eq!(v.to_canonical().unwrap(), b"{\"a\":-9223372036854775808}");
    }
}
