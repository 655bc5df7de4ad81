//! The publisher's own snapshot file, read and rewritten as text.
//!
//! At PyPI scale the snapshot lists 16384 bins (~500 KB), and a one-file publish changes one
//! or a few of their versions. Parsing it into a map and writing it out again was the largest
//! CPU cost of such a publish in a fresh process (much of it page faults for the map). Here
//! the file is checked once for the exact layout packman writes (canonical JSON,
//! version-only entries, sorted plain names), entries are found by binary search over an
//! index of their offsets, and the next snapshot's canonical form is made by editing the
//! version numbers and head fields in place. Anything else is declined, and the caller
//! parses the file into a [`Snapshot`] instead.
//!
//! Only the publisher may use this on its own files: it does not look at signatures.

use std::collections::BTreeMap;
use std::ops::Range;

use packman_tuf::metadata::Extra;
use packman_tuf::{Expires, MetaFile, Snapshot};

pub(crate) struct SnapshotText {
    /// The file as read.
    file: Vec<u8>,
    /// Where the `signed` object is in `file`.
    signed: Range<usize>,
    /// Where the expiry's text is (inside its quotes).
    expires_at: Range<usize>,
    /// Offset of each entry's opening quote, in order.
    entries: Vec<u32>,
    /// Where the snapshot's own version number is.
    version_at: Range<usize>,
    pub expires: Expires,
    pub spec_version: String,
    pub version: u64,
    /// Versions changed since reading, by name.
    changes: BTreeMap<String, u64>,
}

const HEAD: &[u8] = b",\"signed\":{\"_type\":\"snapshot\",\"expires\":\"";
const ENTRY_MID: &[u8] = b"\":{\"version\":";
const SIGNATURES: &[u8] = b"{\"signatures\":";

/// A canonical non-negative integer at `b[i..]` (no leading zero, fits u64), and its end.
fn number(b: &[u8], i: usize) -> Option<(u64, usize)> {
    // By hand: this runs once per entry, and str::parse (after a UTF-8 check) was most of
    // the per-entry cost of reading 16384 entries.
    let (mut v, mut j) = (0u64, i);
    while let Some(&c) = b.get(j).filter(|c| c.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        j += 1;
    }
    let n = j - i;
    if n == 0 || (n > 1 && b[i] == b'0') {
        return None;
    }
    Some((v, j))
}

/// Whether `b` is text a canonical JSON string holds as is: UTF-8, with nothing the
/// canonicaliser would escape.
fn plain(b: &[u8]) -> bool {
    let no_escapes = !b.iter().any(|&c| c == b'\\' || c == b'"' || c < 0x20);
    no_escapes && (b.is_ascii() || std::str::from_utf8(b).is_ok())
}

fn expect(b: &[u8], i: usize, lit: &[u8]) -> Option<usize> {
    (b.get(i..i + lit.len())? == lit).then_some(i + lit.len())
}

/// The plain name starting at `b[i]` (up to the next quote) and where it ends.
fn name_at(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let n = b.get(i..)?.iter().position(|&c| c == b'"')?;
    Some((&b[i..i + n], i + n))
}

/// Where things are in a file of packman's layout, from its head and tail alone.
struct Head {
    signed: Range<usize>,
    expires_at: Range<usize>,
    meta: Range<usize>,
    version_at: Range<usize>,
    expires: Expires,
    spec_version: String,
    version: u64,
}

impl Head {
    /// Reads the head (up to `"meta":{`) and the tail (from the `}` closing `meta`); what is
    /// between is left to [`entries`].
    fn read(b: &[u8]) -> Option<Head> {
        // A whole file, or just its signed object (as `into_canonical` leaves it). In a
        // file, signatures (hex and key ids) come first and cannot contain the head's text.
        let bare = &HEAD[10..];
        let (signed_start, exp_start) = if b.starts_with(bare) {
            (0, bare.len())
        } else {
            let head_at = memchr::memmem::find(b, HEAD)?;
            // What comes before must be a well-formed signature list (small: a few hundred
            // bytes): a file damaged there is declined, as serde would refuse it (found by
            // the snapshot_text fuzz target).
            let sigs = b.get(SIGNATURES.len()..head_at).filter(|_| b.starts_with(SIGNATURES))?;
            serde_json::from_slice::<Vec<packman_tuf::Signature>>(sigs).ok()?;
            (head_at + 10, head_at + HEAD.len())
        };
        let (exp, i) = name_at(b, exp_start)?;
        if !plain(exp) {
            return None;
        }
        let expires = Expires::parse(std::str::from_utf8(exp).ok()?).ok()?;
        let expires_at = exp_start..i;
        let meta_start = expect(b, i, b"\",\"meta\":{")?;
        // The tail, from the end: `},"spec_version":"S","version":N}` (then `}` in a file),
        // then only whitespace.
        // JSON's whitespace only (not form feed, which `is_ascii_whitespace` also takes: found
        // by the snapshot_text fuzz target).
        let mut end = b.len() - b.iter().rev().take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')).count();
        if signed_start > 0 {
            end = end.checked_sub(1).filter(|&e| b[e] == b'}')?;
        }
        let signed_end = end;
        end = end.checked_sub(1).filter(|&e| b[e] == b'}')?;
        let digits = b[..end].iter().rev().take_while(|c| c.is_ascii_digit()).count();
        let version_at = end - digits..end;
        let (version, after) = number(b, version_at.start)?;
        if after != end {
            return None;
        }
        let spec_end = version_at.start.checked_sub(b"\",\"version\":".len())?;
        expect(b, spec_end, b"\",\"version\":")?;
        let spec_start = spec_end - b[meta_start..spec_end].iter().rev().take_while(|&&c| c != b'"').count();
        let spec = &b[spec_start..spec_end];
        let meta_end = spec_start.checked_sub(b"},\"spec_version\":\"".len()).filter(|&m| m >= meta_start)?;
        expect(b, meta_end, b"},\"spec_version\":\"")?;
        if !plain(spec) {
            return None;
        }
        Some(Head {
            signed: signed_start..signed_end,
            expires_at,
            meta: meta_start..meta_end,
            version_at,
            expires,
            spec_version: std::str::from_utf8(spec).ok()?.to_string(),
            version,
        })
    }
}

/// Checks that `b[meta]` is `"NAME":{"version":N}` entries joined by commas, names plain,
/// sorted and unique, versions canonical; returns the offset of each entry's opening quote.
///
/// This runs over every entry of the snapshot each publish reads (16384 at PyPI scale, in
/// a process that lives about 10 ms), so names are scanned eight bytes at a time and
/// compared as big-endian words, several times faster than byte by byte with library calls
/// to find the quote and compare names.
fn entries(b: &[u8], meta: Range<usize>) -> Option<Vec<u32>> {
    let region = &b[..meta.end];
    let mut entries = Vec::with_capacity(meta.len() / 28);
    let mut i = meta.start;
    let mut last: &[u8] = &[];
    while i < meta.end {
        if !entries.is_empty() {
            i = expect(region, i, b",")?;
        }
        let quote = i;
        i = expect(region, i, b"\"")?;
        let (end, ascii_plain) = name_end(region, i)?;
        let name = &region[i..end];
        if !(ascii_plain || plain(name)) || (!entries.is_empty() && !less(last, name)) {
            return None;
        }
        last = name;
        i = expect(region, end, ENTRY_MID)?;
        (_, i) = number(region, i)?;
        i = expect(region, i, b"}")?;
        entries.push(u32::try_from(quote).ok()?);
    }
    Some(entries)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit of each byte of `w` that is zero. Only the lowest one is exact (a borrow can
/// mark bytes above it), which is all that is read here.
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// Where the string starting at `b[i]` ends (its closing quote), and whether every byte
/// before that is ASCII from 0x20 up other than `\` (else [`plain`] decides).
fn name_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quotes = zero_bytes(w ^ (ONES * u64::from(b'"')));
        // Bytes below 0x20 or from 0x80 up, and backslashes.
        let bad = zero_bytes(w & !(ONES * 0x1f) & !HIGHS) | (w & HIGHS) | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if quotes != 0 {
            let at = quotes.trailing_zeros() / 8;
            let before = (1u64 << (at * 8)).wrapping_sub(1);
            return Some((i + at as usize, bad & before == 0));
        }
        if bad != 0 {
            return Some((i + b[i..].iter().position(|&c| c == b'"')?, false));
        }
        i += 8;
    }
    let at = b[i..].iter().position(|&c| c == b'"')?;
    let ascii_plain = b[i..i + at].iter().all(|&c| (0x20..0x80).contains(&c) && c != b'\\');
    Some((i + at, ascii_plain))
}

/// `a < b` in byte order, comparing eight bytes at a time.
fn less(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    if n < 8 {
        return a < b;
    }
    let word = |s: &[u8], i: usize| u64::from_be_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    loop {
        // The last word of the common part overlaps the one before, which was equal.
        let at = i.min(n - 8);
        let (x, y) = (word(a, at), word(b, at));
        if x != y {
            return x < y;
        }
        if at == n - 8 {
            return a.len() < b.len();
        }
        i += 8;
    }
}

impl SnapshotText {
    /// Reads a snapshot file in packman's layout; gives the bytes back for anything else.
    pub fn parse(file: Vec<u8>) -> Result<SnapshotText, Vec<u8>> {
        let Some(h) = Head::read(&file) else { return Err(file) };
        let Some(entries) = entries(&file, h.meta.clone()) else { return Err(file) };
        Ok(SnapshotText {
            file,
            signed: h.signed,
            expires_at: h.expires_at,
            entries,
            version_at: h.version_at,
            expires: h.expires,
            spec_version: h.spec_version,
            version: h.version,
            changes: BTreeMap::new(),
        })
    }

    /// Name of entry `k`, where its version's digits are, and the version as read.
    fn entry(&self, k: usize) -> (&str, Range<usize>, u64) {
        let start = self.entries[k] as usize + 1;
        let (name, end) = name_at(&self.file, start).expect("checked when read");
        let digits = end + ENTRY_MID.len();
        let (v, digits_end) = number(&self.file, digits).expect("checked when read");
        (std::str::from_utf8(name).expect("checked when read"), digits..digits_end, v)
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        // Byte order, as canonical JSON sorts.
        let (mut lo, mut hi) = (0, self.entries.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry(mid).0.as_bytes().cmp(name.as_bytes()) {
                std::cmp::Ordering::Equal => return Ok(mid),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Err(lo)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The version listed for `name`.
    pub fn meta_version(&self, name: &str) -> Option<u64> {
        if let Some(v) = self.changes.get(name) {
            return Some(*v);
        }
        self.find(name).ok().map(|k| self.entry(k).2)
    }

    /// Sets the version of a listed role; `false` (nothing changed) if `name` is not listed.
    pub fn set_meta_version(&mut self, name: &str, version: u64) -> bool {
        if self.find(name).is_err() {
            return false;
        }
        self.changes.insert(name.to_string(), version);
        true
    }

    /// The canonical JSON of the snapshot with its changes, made in the buffer the file was
    /// read into (also the next file's `signed` part: plain names, no escapes needed).
    pub fn into_canonical(self) -> Vec<u8> {
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(self.changes.len() + 2);
        edits.push((self.expires_at.clone(), self.expires.to_string().into_bytes()));
        for (name, v) in &self.changes {
            let k = self.find(name).expect("only listed names are changed");
            edits.push((self.entry(k).1, v.to_string().into_bytes()));
        }
        edits.push((self.version_at.clone(), self.version.to_string().into_bytes()));
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = self.file;
        out.truncate(self.signed.end);
        // From the end, so each edit leaves the offsets of those before it valid.
        for (range, bytes) in edits.into_iter().rev() {
            out.splice(range, bytes);
        }
        out.drain(..self.signed.start);
        out
    }

    /// The snapshot as a whole (for the rare publish that lists a new role, and for
    /// readers of every entry).
    pub fn to_snapshot(&self) -> Snapshot {
        let mut meta: packman_tuf::metadata::MetaMap = (0..self.entries.len())
            .map(|k| {
                let (name, _, v) = self.entry(k);
                (name.to_string(), MetaFile::new(v))
            })
            .collect();
        for (name, v) in &self.changes {
            meta.insert(name.clone(), MetaFile::new(*v));
        }
        Snapshot {
            type_: "snapshot".into(),
            expires: self.expires,
            meta,
            spec_version: self.spec_version.clone(),
            version: self.version,
            extra: Extra::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packman_tuf::canonical::to_canonical;
    use packman_tuf::OffsetDateTime;

    fn snapshot(names: &[&str]) -> Snapshot {
        Snapshot {
            type_: "snapshot".into(),
            expires: crate::new_expiry(OffsetDateTime::UNIX_EPOCH, 10_000),
            meta: names.iter().enumerate().map(|(i, n)| (n.to_string(), MetaFile::new(i as u64 * 7 + 1))).collect(),
            spec_version: "1.0.34".into(),
            version: 9,
            extra: Extra::new(),
        }
    }

    fn file(s: &Snapshot) -> Vec<u8> {
        let (signer, _) = packman_tuf::crypto::Signer::generate_ecdsa_p256().unwrap();
        crate::sign_snapshot(s, &[&signer]).unwrap()
    }

    /// Edits in place give the canonicaliser's bytes for the changed snapshot: versions that
    /// gain or lose digits, the first and last entries, the head fields.
    #[test]
    fn edited_text_is_the_canonical_form_of_the_change() {
        let names: Vec<String> =
            (0..300).map(|i| format!("bins-{i:03x}.json")).chain(["targets.json".into()]).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut model = snapshot(&refs);
        let mut text = SnapshotText::parse(file(&model)).expect("packman's layout");
        assert_eq!(text.len(), 301);
        assert_eq!(text.to_snapshot(), model);
        for (name, v) in
            [("bins-000.json", 1234567u64), ("bins-12b.json", 1), ("targets.json", 10), ("bins-063.json", 5)]
        {
            assert_eq!(text.meta_version(name), model.meta.version(name));
            assert!(text.set_meta_version(name, v));
            model.meta.insert(name.into(), MetaFile::new(v));
            assert_eq!(text.meta_version(name), Some(v));
        }
        assert!(!text.set_meta_version("bins-fff.json", 3), "not listed");
        assert_eq!(text.meta_version("nope.json"), None);
        text.version = 10_000;
        text.expires = crate::new_expiry(OffsetDateTime::UNIX_EPOCH, 1);
        model.version = 10_000;
        model.expires = text.expires;
        assert_eq!(text.to_snapshot(), model);
        let canon = text.into_canonical();
        assert_eq!(canon, to_canonical(&model).unwrap());
        // The edited text reads back as is (the next publish in the same process).
        let again = SnapshotText::parse(canon).expect("bare signed object");
        assert_eq!(again.to_snapshot(), model);
    }

    /// Other layouts are declined (the caller parses them in full).
    #[test]
    fn other_layouts_are_declined() {
        let base = snapshot(&["a.json", "b.json"]);
        assert!(SnapshotText::parse(file(&base)).is_ok());
        let empty = snapshot(&[]);
        let t = SnapshotText::parse(file(&empty)).expect("no entries is fine");
        assert_eq!(t.into_canonical(), to_canonical(&empty).unwrap());

        let mut hashed = base.clone();
        let mut m = MetaFile::new(3);
        m.length = Some(5);
        hashed.meta.insert("a.json".into(), m);
        let mut extra = base.clone();
        extra.extra.insert("x".into(), serde_json::json!(1));
        for s in [hashed, extra] {
            assert!(SnapshotText::parse(crate::sign_snapshot(&s, &[]).unwrap()).is_err());
        }
        let good = String::from_utf8(file(&base)).unwrap();
        for bad in [
            good.replace("\"b.json\"", "\"a.json\""),            // duplicate name
            good.replace("\"a.json\"", "\"c.json\""),            // out of order
            good.replace("{\"version\":1}", "{\"version\":01}"), // not canonical
            good.replace("\"a.json\"", "\"a\\\\json\""),         // escape in a name
            format!("{good}x"),                                  // trailing bytes
            good.replace("}}", "}"),                             // truncated
        ] {
            assert!(SnapshotText::parse(bad.clone().into_bytes()).is_err(), "{bad}");
        }
        // Names are handed out as &str: bytes that are not UTF-8 are declined.
        let at = good.find("\"a.json\"").unwrap() + 1;
        let mut bytes = good.clone().into_bytes();
        bytes[at] = 0xff;
        assert!(SnapshotText::parse(bytes).is_err(), "not UTF-8");
        let non_ascii = good.replace("\"b.json\"", "\"b\u{e9}.json\"");
        assert!(SnapshotText::parse(non_ascii.into_bytes()).is_ok(), "UTF-8 beyond ASCII is fine");
        // Version numbers past u64 are declined, not wrapped.
        let huge = good.replace("{\"version\":1}", "{\"version\":18446744073709551616}");
        assert!(SnapshotText::parse(huge.into_bytes()).is_err(), "overflow");
    }
}

#[cfg(test)]
mod word_tests {
    use super::*;

    /// A small deterministic generator: the same cases on every run.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Names of every length around the word size, with bytes from a small alphabet that
    /// holds the quote, the backslash, a control character, a non-ASCII byte and ordinary
    /// ones, at every position.
    fn names(n: usize) -> Vec<Vec<u8>> {
        let alphabet = [b'a', b'b', b'-', b'.', b'"', b'\\', 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xc3, 0xa9, b'z'];
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                let len = (rng(&mut seed) % 26) as usize;
                (0..len)
                    .map(|_| {
                        let r = rng(&mut seed);
                        // Mostly ordinary bytes, so long runs without a special one occur.
                        if r.is_multiple_of(4) {
                            alphabet[(r / 4) as usize % alphabet.len()]
                        } else {
                            b'a' + (r % 3) as u8
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn name_end_agrees_with_a_byte_by_byte_scan() {
        for name in names(20_000) {
            // The scan must stop at the first quote whatever follows it.
            let text = [&name[..], b"\":{\"version\":1}"].concat();
            let at = text.iter().position(|&c| c == b'"').expect("a quote follows");
            let ascii_plain = text[..at].iter().all(|&c| (0x20..0x80).contains(&c) && c != b'\\');
            assert_eq!(name_end(&text, 0), Some((at, ascii_plain)), "{name:?}");
            // And from an offset, as in a file.
            let shifted = [b"xyz", &text[..]].concat();
            assert_eq!(name_end(&shifted, 3), Some((at + 3, ascii_plain)), "{name:?}");
        }
        assert_eq!(name_end(b"no quote at all, long enough", 0), None);
    }

    #[test]
    fn less_is_byte_order() {
        let all = names(600);
        for a in &all {
            for b in all.iter().take(200) {
                assert_eq!(less(a, b), a < b, "{a:?} {b:?}");
            }
        }
        // Equal up to the shorter one's end, at and around the word size.
        for n in 0..20 {
            let long = vec![b'x'; n + 3];
            assert!(less(&long[..n], &long));
            assert!(!less(&long, &long[..n]));
            assert!(!less(&long, &long), "not less than itself");
        }
    }
}
