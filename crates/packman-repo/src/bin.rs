//! A hashed bin as the publisher holds it in memory.
//!
//! A PyPI-sized index lists millions of targets, and as [`TargetFile`]s each costs ~600 bytes
//! (a String per hash algorithm name and per hex digest). Here the usual shape (sha256 and
//! sha512, lowercase hex, optional custom data) is held as raw digests plus the custom data's
//! canonical JSON text, ~210 bytes per target with its path, and written straight to
//! canonical JSON without going through serde. Any other shape is kept as parsed and takes
//! the general path, so nothing a bin can hold is lost or rewritten.
//!
//! Targets are kept in a vector sorted by path, and additions are appended and sorted in
//! when the bin is next read ([`Bin::settle`]): a bulk import touches each of 16384 bins
//! ~60 times in random order, and a tree insert there cost microseconds of cache misses
//! (every key compared is a pointer to chase) where an append costs one.

use packman_tuf::canonical;
use packman_tuf::crypto::Signer;
use packman_tuf::metadata::{Extra, Role};
use packman_tuf::{Expires, Hashes, TargetFile, Targets};

use crate::Error;

/// One bin: everything but its target list in `head`, its targets by path.
///
/// Readers go through `&mut self` methods (or call [`Bin::settle`] first), which sort in what
/// was appended since; the `&self` ones other than the head's fields expect a settled bin.
#[derive(Debug, Clone)]
pub struct Bin {
    /// The bin's metadata with an empty `targets` map (boxed: the repository's table of
    /// 16384 bins is probed once per added target, and stays small enough to cache).
    head: Box<Targets>,
    /// Changed since published (not part of equality).
    pub(crate) changed: bool,
    /// `entries[..sorted]` is sorted by path without duplicates; after it, appended entries
    /// in the order given (a later one for the same path wins).
    entries: Vec<(Box<str>, Entry)>,
    sorted: usize,
}

impl PartialEq for Bin {
    /// Same metadata and targets (for settled bins; an unsettled one may compare unequal).
    fn eq(&self, other: &Bin) -> bool {
        self.head == other.head && self.entries == other.entries
    }
}

/// A target made ready to list, by any thread: path checked, its bin's hash prefix taken, its
/// description converted (see [`crate::Repository::prepare_target`]).
#[derive(Debug, Clone)]
pub struct PreparedTarget {
    pub(crate) hash_prefix: u32,
    pub(crate) path: Box<str>,
    pub(crate) entry: Entry,
}

impl PreparedTarget {
    pub(crate) fn new(path: &str, tf: TargetFile) -> PreparedTarget {
        PreparedTarget {
            hash_prefix: packman_tuf::metadata::target_hash_prefix(path),
            path: path.into(),
            entry: Entry::new(tf),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    Compact(Compact),
    /// Any other shape (other algorithms, upper-case hex, unknown fields, custom data whose
    /// canonical form holds control characters), as parsed.
    Full(Box<TargetFile>),
}

/// sha256 + sha512 (listed in that order, lower-case hex) and length, custom data as its
/// canonical JSON text (free of control characters, so also valid compact JSON).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compact {
    length: u64,
    sha256: [u8; 32],
    sha512: [u8; 64],
    custom: Option<Box<str>>,
}

/// Nibble values of lower-case hex digits, 0xff for every other byte.
const NIBBLE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes exactly `2 * N` lower-case hex digits (upper case is kept as text elsewhere, so
/// that the file says what it said).
fn lower_hex_to<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let b = hex.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

impl Entry {
    fn new(tf: TargetFile) -> Entry {
        Entry::compact(&tf).map(Entry::Compact).unwrap_or_else(|| Entry::Full(Box::new(tf)))
    }

    fn compact(tf: &TargetFile) -> Option<Compact> {
        if !tf.extra.is_empty() {
            return None;
        }
        let [(a1, h1), (a2, h2)] = tf.hashes.0.as_slice() else { return None };
        if a1 != "sha256" || a2 != "sha512" {
            return None;
        }
        let custom = match &tf.custom {
            None => None,
            Some(v) => {
                let c = canonical::to_canonical(v).ok()?;
                if c.iter().any(|&b| b < 0x20) {
                    return None;
                }
                Some(String::from_utf8(c).ok()?.into_boxed_str())
            }
        };
        Some(Compact { length: tf.length, sha256: lower_hex_to(h1)?, sha512: lower_hex_to(h2)?, custom })
    }

    fn to_target_file(&self) -> TargetFile {
        match self {
            Entry::Full(tf) => (**tf).clone(),
            Entry::Compact(c) => TargetFile {
                custom: c.custom.as_deref().map(|s| serde_json::from_str(s).expect("canonical JSON of a value")),
                hashes: Hashes(vec![
                    ("sha256".into(), packman_tuf::target::hex_lower(&c.sha256)),
                    ("sha512".into(), packman_tuf::target::hex_lower(&c.sha512)),
                ]),
                length: c.length,
                extra: Extra::new(),
            },
        }
    }

    fn sha256(&self) -> Option<String> {
        match self {
            Entry::Compact(c) => Some(packman_tuf::target::hex_lower(&c.sha256)),
            Entry::Full(tf) => tf.hashes.get("sha256").map(str::to_string),
        }
    }
}

/// Canonical JSON string (only `"` and `\` escaped); `None` if `s` holds a control character,
/// which canonical JSON writes raw and a JSON file must escape.
fn push_plain_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.push(b'"');
    let mut rest = s.as_bytes();
    // Copies runs between the bytes that need attention (usually the whole string at once).
    while let Some(i) = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        if rest[i] < 0x20 {
            return None;
        }
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(&[b'\\', rest[i]]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
    Some(())
}

impl Bin {
    /// A bin from its parsed metadata.
    pub fn from_targets(mut t: Targets) -> Bin {
        let targets = std::mem::take(&mut t.targets);
        let entries: Vec<_> = targets.into_iter().map(|(p, tf)| (p.into_boxed_str(), Entry::new(tf))).collect();
        Bin { head: Box::new(t), changed: false, sorted: entries.len(), entries }
    }

    /// Sorts in the entries appended since the last call (a later one for a path replaces
    /// an earlier one).
    pub fn settle(&mut self) {
        if self.sorted == self.entries.len() {
            return;
        }
        // Stable: entries for one path stay in the order they were given; keep the last.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut keep: Vec<(Box<str>, Entry)> = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            match keep.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => keep.push(e),
            }
        }
        self.entries = keep;
        self.sorted = self.entries.len();
    }

    fn find(&mut self, path: &str) -> Result<usize, usize> {
        self.settle();
        self.entries.binary_search_by(|(p, _)| (**p).cmp(path))
    }

    /// The whole bin as TUF metadata (of a settled bin).
    pub fn to_targets(&self) -> Targets {
        let mut t = (*self.head).clone();
        t.targets = self.entries.iter().map(|(p, e)| (p.to_string(), e.to_target_file())).collect();
        t
    }

    pub fn version(&self) -> u64 {
        self.head.version
    }

    pub fn expires(&self) -> Expires {
        self.head.expires
    }

    /// Sets the version and expiry of the next publish.
    pub fn bump(&mut self, expires: Expires) {
        self.head.version += 1;
        self.head.expires = expires;
    }

    /// Number of targets (of a settled bin).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&mut self, path: &str) -> bool {
        self.find(path).is_ok()
    }

    pub fn get(&mut self, path: &str) -> Option<TargetFile> {
        let i = self.find(path).ok()?;
        Some(self.entries[i].1.to_target_file())
    }

    /// The listed sha256 of `path` (hex), if listed with one.
    pub fn sha256(&mut self, path: &str) -> Option<String> {
        let i = self.find(path).ok()?;
        self.entries[i].1.sha256()
    }

    /// Lists `path` (replacing what it listed), to be sorted in when next read.
    pub fn insert(&mut self, path: &str, tf: TargetFile) {
        self.push(path.into(), Entry::new(tf));
    }

    pub(crate) fn push(&mut self, path: Box<str>, entry: Entry) {
        // In order (as when a sorted list is imported): stays settled.
        if self.sorted == self.entries.len() && self.entries.last().is_none_or(|l| l.0 < path) {
            self.sorted += 1;
        }
        self.entries.push((path, entry));
    }

    pub fn remove(&mut self, path: &str) -> Option<TargetFile> {
        let i = self.find(path).ok()?;
        self.sorted -= 1;
        Some(self.entries.remove(i).1.to_target_file())
    }

    /// Paths listed, in order (of a settled bin).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }

    /// Canonical JSON of the bin, written directly when the head has packman's shape (no
    /// delegations or unknown fields, plain strings) and every entry is compact or
    /// canonicalises without control characters; `None` otherwise. The result is then also
    /// valid compact JSON: the `signed` part of the file as is. Of a settled bin.
    pub fn fast_canonical(&self) -> Option<Vec<u8>> {
        debug_assert_eq!(self.sorted, self.entries.len(), "bin not settled");
        let h = &self.head;
        if h.type_ != "targets" || h.delegations.is_some() || !h.extra.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(128 + self.entries.len() * 320);
        out.extend_from_slice(b"{\"_type\":\"targets\",\"expires\":\"");
        out.extend_from_slice(h.expires.to_string().as_bytes());
        out.extend_from_slice(b"\",\"spec_version\":");
        push_plain_str(&mut out, &h.spec_version)?;
        out.extend_from_slice(b",\"targets\":{");
        let mut hexbuf = [0u8; 128];
        let mut num = [0u8; 20];
        for (i, (path, e)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_plain_str(&mut out, path)?;
            out.push(b':');
            match e {
                Entry::Compact(c) => {
                    out.push(b'{');
                    if let Some(custom) = &c.custom {
                        out.extend_from_slice(b"\"custom\":");
                        out.extend_from_slice(custom.as_bytes());
                        out.push(b',');
                    }
                    out.extend_from_slice(b"\"hashes\":{\"sha256\":\"");
                    hex::encode_to_slice(c.sha256, &mut hexbuf[..64]).expect("64 hex digits");
                    out.extend_from_slice(&hexbuf[..64]);
                    out.extend_from_slice(b"\",\"sha512\":\"");
                    hex::encode_to_slice(c.sha512, &mut hexbuf).expect("128 hex digits");
                    out.extend_from_slice(&hexbuf);
                    out.extend_from_slice(b"\"},\"length\":");
                    out.extend_from_slice(itoa(c.length, &mut num));
                    out.push(b'}');
                }
                Entry::Full(tf) => {
                    let c = canonical::to_canonical(&**tf).ok()?;
                    if c.iter().any(|&b| b < 0x20) {
                        return None;
                    }
                    out.extend_from_slice(&c);
                }
            }
        }
        out.extend_from_slice(b"},\"version\":");
        out.extend_from_slice(itoa(h.version, &mut num));
        out.push(b'}');
        Some(out)
    }

    /// The bytes of the signed metadata file (of a settled bin).
    pub fn sign(&self, signers: &[&Signer]) -> Result<Vec<u8>, Error> {
        match self.fast_canonical() {
            Some(canon) => crate::sign_envelope(Targets::TYPE, &canon, &canon, signers),
            None => crate::sign_metadata(&self.to_targets(), signers),
        }
    }
}

/// Decimal digits of `v` (an allocation per entry showed up in 1M-target publishes).
fn itoa(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packman_tuf::metadata::SPEC_VERSION;
    use packman_tuf::OffsetDateTime;
    use std::collections::BTreeMap;

    fn head() -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 7,
            expires: crate::new_expiry(OffsetDateTime::UNIX_EPOCH, 400),
            targets: BTreeMap::new(),
            delegations: None,
            extra: Extra::new(),
        }
    }

    /// Targets of every shape a bin may hold: plain, with custom data (non-ASCII, quotes,
    /// backslashes, nested), control characters in custom data or the path, other
    /// algorithms, upper-case hex, unknown fields, one algorithm only.
    fn varied() -> Vec<(String, TargetFile)> {
        let mut v = Vec::new();
        for (i, name) in ["a.whl", "dir/b \"q\" \\ é.tar.gz", "ünï/c.txt", "z/z"].iter().enumerate() {
            v.push((name.to_string(), packman_tuf::target::describe(name.as_bytes())));
            let mut tf = packman_tuf::target::describe(&[i as u8; 3]);
            tf.custom = Some(
                serde_json::json!({"yanked": false, "requires-python": ">=3.8", "x": ["\"\\ü", 1, null, {"b": 1, "a": 2}]}),
            );
            v.push((format!("{name}.custom"), tf));
        }
        let mut ctl = packman_tuf::target::describe(b"ctl");
        ctl.custom = Some(serde_json::json!({"note": "line\nbreak"}));
        v.push(("ctl-custom".into(), ctl));
        v.push(("ctl\tpath".into(), packman_tuf::target::describe(b"tab")));
        let mut other = packman_tuf::target::describe(b"o");
        other.hashes.0.push(("blake2b".into(), "00ff".into()));
        v.push(("other-alg".into(), other));
        let mut upper = packman_tuf::target::describe(b"u");
        upper.hashes.0[0].1.make_ascii_uppercase();
        v.push(("upper".into(), upper));
        let mut extra = packman_tuf::target::describe(b"e");
        extra.extra.insert("x-field".into(), serde_json::json!([1, 2]));
        v.push(("extra".into(), extra));
        let mut one = packman_tuf::target::describe(b"one");
        one.hashes.0.truncate(1);
        v.push(("one-alg".into(), one));
        let mut swapped = packman_tuf::target::describe(b"s");
        swapped.hashes.0.reverse();
        v.push(("swapped".into(), swapped));
        v
    }

    #[test]
    fn every_entry_reads_back_as_given() {
        let mut bin = Bin::from_targets(head());
        for (p, tf) in varied() {
            assert!(!bin.contains(&p));
            bin.insert(&p, tf.clone());
            assert_eq!(bin.get(&p).as_ref(), Some(&tf), "{p}");
            assert_eq!(bin.sha256(&p).as_deref(), tf.hashes.get("sha256"), "{p}");
        }
        let mut expected = head();
        expected.targets = varied().into_iter().collect();
        assert_eq!(bin.to_targets(), expected);
        assert_eq!(Bin::from_targets(expected.clone()), bin);
        bin.insert("a.whl", packman_tuf::target::describe(b"new"));
        assert_eq!(bin.len(), expected.targets.len() + 1, "appended, not yet settled");
        assert_eq!(bin.remove("a.whl"), Some(packman_tuf::target::describe(b"new")));
        assert!(!bin.contains("a.whl"));
        assert_eq!(bin.len(), expected.targets.len() - 1);
    }

    /// Appends in any order, with repeats: the last given for a path wins, as a map would.
    #[test]
    fn appended_entries_settle_like_a_map() {
        let mut bin = Bin::from_targets(head());
        let mut model = BTreeMap::new();
        let mut x: u64 = 12345;
        for round in 0..5 {
            for _ in 0..200 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let p = format!("p/{}", (x >> 33) % 150);
                let tf = packman_tuf::target::describe(&x.to_le_bytes());
                bin.insert(&p, tf.clone());
                model.insert(p, tf);
            }
            if round % 2 == 1 {
                let gone = format!("p/{}", round * 7);
                assert_eq!(bin.remove(&gone), model.remove(&gone));
            }
            bin.settle();
            assert_eq!(bin.to_targets().targets, model);
            assert!(bin.paths().zip(bin.paths().skip(1)).all(|(a, b)| a < b));
        }
        let mut sorted = Bin::from_targets(head());
        for (p, tf) in &model {
            sorted.insert(p, tf.clone());
        }
        assert_eq!(sorted.sorted, model.len(), "in-order appends stay settled");
    }

    /// The direct writer gives the canonicaliser's bytes, and declines what it cannot write
    /// as valid JSON (a control character anywhere); signing then takes the general path.
    #[test]
    fn fast_canonical_is_the_canonical_form() {
        let all = varied();
        let ctl = |p: &str| p == "ctl-custom" || p == "ctl\tpath";
        let mut bin = Bin::from_targets(head());
        for (p, tf) in all.iter().filter(|(p, _)| !ctl(p)) {
            bin.insert(p, tf.clone());
        }
        bin.settle();
        let fast = bin.fast_canonical().expect("no control characters");
        assert_eq!(fast, canonical::to_canonical(&bin.to_targets()).unwrap());
        let v: serde_json::Value = serde_json::from_slice(&fast).expect("valid JSON");
        // Parsed back, it is the same metadata (hash lists compare in file order, so by
        // their canonical form).
        let parsed: Targets = serde_json::from_value(v).unwrap();
        assert_eq!(canonical::to_canonical(&parsed).unwrap(), fast);
        assert_eq!(parsed.targets.keys().collect::<Vec<_>>(), bin.paths().collect::<Vec<_>>());
        assert_eq!(Bin::from_targets(head()).fast_canonical().unwrap(), canonical::to_canonical(&head()).unwrap());

        for (p, tf) in all.iter().filter(|(p, _)| ctl(p)) {
            let mut b = bin.clone();
            b.insert(p, tf.clone());
            b.settle();
            assert_eq!(b.fast_canonical(), None, "{p:?}");
        }
        let mut odd = head();
        odd.extra.insert("x".into(), serde_json::json!(1));
        assert_eq!(Bin::from_targets(odd).fast_canonical(), None);
    }

    /// Both paths sign the canonical form: a client's verification accepts either file.
    #[test]
    fn signed_files_verify() {
        let (signer, _) = Signer::generate_ecdsa_p256().unwrap();
        let mut fast = Bin::from_targets(head());
        let mut slow = Bin::from_targets(head());
        for (p, tf) in varied() {
            if p != "ctl-custom" && p != "ctl\tpath" {
                fast.insert(&p, tf.clone());
            }
            slow.insert(&p, tf);
        }
        fast.settle();
        slow.settle();
        assert!(fast.fast_canonical().is_some() && slow.fast_canonical().is_none());
        for bin in [fast, slow] {
            let file = bin.sign(&[&signer]).unwrap();
            let env: packman_tuf::Envelope<Targets> = serde_json::from_slice(&file).unwrap();
            assert_eq!(env.signed.targets.len(), bin.len());
            let canon = canonical::canonical_signed(&file).unwrap();
            assert_eq!(canon, canonical::to_canonical(&bin.to_targets()).unwrap());
            signer.public_key().verify(&canon, &env.signatures[0].sig).unwrap();
        }
    }
}
