//! Property test: every fast path of canonical JSON (the streaming pass of
//! `canonical_signed`, the byte scan `signed_if_canonical`, the streaming `to_canonical`, the
//! scan-first `signed_forms` and the direct snapshot writer behind `snapshot_forms`) gives the
//! bytes of the plain canonicaliser (`Value::to_canonical`, a sorted tree), or declines, on
//! generated JSON full of nasty strings (quotes, backslashes, control characters, U+2028,
//! astral-plane characters, every escape form) and numbers (extremes, floats, `-0`, huge).
//!
//! A third, independent model (written from the generated values, not from parsed JSON)
//! says what the canonical bytes must be, so a bug shared by the parser and the tree is
//! caught too. Seeded: a failure names its seed and document; PACKMAN_CANON_SEED=N replays
//! one seed, PACKMAN_CANON_CASES=N runs more.

use std::collections::BTreeMap;

use packman_tuf::canonical::{
    canonical_signed, signed_forms, signed_if_canonical, snapshot_forms, to_canonical, Value,
};
use packman_tuf::metadata::{Expires, Hashes, MetaFile, MetaMap, Snapshot, TargetFile, Targets};

/// splitmix64: small, seedable, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Characters chosen to hit every branch of the escapers and scanners.
const NASTY: &[char] = &[
    '"',
    '\\',
    '/',
    '\u{0}',
    '\u{1}',
    '\u{8}',
    '\t',
    '\n',
    '\u{c}',
    '\r',
    '\u{1f}',
    ' ',
    '\u{7f}',
    '\u{80}',
    '\u{e9}',
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{65e5}',
    '\u{1f980}',
    '\u{1d11e}',
    '\u{10ffff}',
    'u',
    '0',
];

fn gen_string(r: &mut Rng) -> String {
    let len = r.below(9);
    (0..len).map(|_| if r.chance(55) { *r.pick(NASTY) } else { (b'a' + r.below(26) as u8) as char }).collect()
}

/// A number as its JSON text, and what canonical JSON makes of it: `Some(text)` for an integer
/// serde_json reads exactly (i64 or u64 range), `None` where there is no canonical form.
fn gen_number(r: &mut Rng) -> (String, Option<String>) {
    let int = |n: i128| (n.to_string(), Some(n.to_string()));
    match r.below(14) {
        0 => int(0),
        1 => int(-1),
        2 => int(i64::MAX as i128),
        3 => int(i64::MIN as i128),
        4 => int(u64::MAX as i128),
        5 => int(r.next() as i128),
        6 => int(-((r.next() >> 1) as i128)),
        7 => int(r.below(1000) as i128),
        // Past u64 and below i64: serde_json reads a float, which has no canonical form.
        8 => ((u64::MAX as i128 + 1 + r.below(1000) as i128).to_string(), None),
        9 => ((i64::MIN as i128 - 1 - r.below(1000) as i128).to_string(), None),
        10 => (r.pick(&["1.5", "0.0", "1e3", "1E+2", "-2.5e-3", "10.0"]).to_string(), None),
        11 => ("123456789012345678901234567890".into(), None),
        // Python reads -0 as the integer 0; serde_json as a float: either way no fast path
        // may invent a form the tree does not give (checked against the tree, not the model).
        12 => ("-0".into(), Some("?".into())),
        _ => int(r.below(10) as i128 * 10_i128.pow(r.below(19) as u32)),
    }
}

/// A generated JSON value, with its object members in the order they will be written.
#[derive(Clone, Debug)]
enum Gen {
    Null,
    Bool(bool),
    Num(String, Option<String>),
    Str(String),
    Arr(Vec<Gen>),
    Obj(Vec<(String, Gen)>),
}

fn gen_value(r: &mut Rng, depth: u32) -> Gen {
    let leaf = depth == 0 || r.chance(40);
    match if leaf { r.below(4) } else { 4 + r.below(2) } {
        0 => {
            if r.chance(50) {
                Gen::Null
            } else {
                Gen::Bool(r.chance(50))
            }
        }
        1 => {
            let (t, c) = gen_number(r);
            Gen::Num(t, c)
        }
        2 | 3 => Gen::Str(gen_string(r)),
        4 => Gen::Arr((0..r.below(4)).map(|_| gen_value(r, depth - 1)).collect()),
        _ => {
            let mut m: Vec<(String, Gen)> = Vec::new();
            for _ in 0..r.below(5) {
                // Sometimes a duplicate key: every path must refuse it or the tree does.
                let k = match m.last() {
                    Some((k, _)) if r.chance(4) => k.clone(),
                    _ => gen_string(r),
                };
                m.push((k, gen_value(r, depth - 1)));
            }
            if r.chance(60) {
                m.sort_by(|a, b| a.0.cmp(&b.0));
            }
            Gen::Obj(m)
        }
    }
}

/// The model's canonical form: keys sorted by UTF-8 bytes (code points), only `"` and `\`
/// escaped, integers only, duplicates refused. `Err(())` where there is none; `Ok(None)`
/// where the model does not decide (`-0`).
fn model(v: &Gen) -> Result<Option<Vec<u8>>, ()> {
    fn s(x: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        for c in x.chars() {
            if c == '"' || c == '\\' {
                out.push(b'\\');
            }
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
        out.push(b'"');
    }
    fn go(v: &Gen, out: &mut Vec<u8>, undecided: &mut bool) -> Result<(), ()> {
        match v {
            Gen::Null => out.extend_from_slice(b"null"),
            Gen::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Gen::Num(_, None) => return Err(()),
            Gen::Num(_, Some(c)) if c == "?" => *undecided = true,
            Gen::Num(_, Some(c)) => out.extend_from_slice(c.as_bytes()),
            Gen::Str(x) => s(x, out),
            Gen::Arr(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    go(x, out, undecided)?;
                }
                out.push(b']');
            }
            Gen::Obj(m) => {
                let mut sorted: Vec<&(String, Gen)> = m.iter().collect();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
                    // A parse error, which outranks anything else in the value.
                    *undecided = false;
                    return Err(());
                }
                out.push(b'{');
                for (i, (k, x)) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    s(k, out);
                    out.push(b':');
                    go(x, out, undecided)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut undecided = false;
    let r = go(v, &mut out, &mut undecided);
    if has_duplicate(v) {
        return Err(());
    }
    if undecided {
        return Ok(None);
    }
    r.map(|()| Some(out))
}

fn has_duplicate(v: &Gen) -> bool {
    match v {
        Gen::Arr(a) => a.iter().any(has_duplicate),
        Gen::Obj(m) => {
            let mut keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort();
            keys.windows(2).any(|w| w[0] == w[1]) || m.iter().any(|(_, x)| has_duplicate(x))
        }
        _ => false,
    }
}

/// How a document is written: `plain` writes canonical JSON up to whitespace (what the byte
/// scan is for), otherwise every string character may take any legal escape.
struct Style {
    plain: bool,
    ws: bool,
}

fn write(v: &Gen, r: &mut Rng, st: &Style, out: &mut String) {
    let ws = |r: &mut Rng, out: &mut String| {
        if st.ws && r.chance(30) {
            let space: &&str = r.pick(&[" ", "\n", "\t", "\r\n  ", "  "]);
            out.push_str(space);
        }
    };
    ws(r, out);
    match v {
        Gen::Null => out.push_str("null"),
        Gen::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Gen::Num(t, _) => out.push_str(t),
        Gen::Str(x) => write_str(x, r, st, out),
        Gen::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, r, st, out);
            }
            ws(r, out);
            out.push(']');
        }
        Gen::Obj(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(r, out);
                write_str(k, r, st, out);
                ws(r, out);
                out.push(':');
                write(x, r, st, out);
            }
            ws(r, out);
            out.push('}');
        }
    }
    ws(r, out);
}

fn write_str(x: &str, r: &mut Rng, st: &Style, out: &mut String) {
    out.push('"');
    for c in x.chars() {
        let must = c == '"' || c == '\\' || c < ' ';
        if st.plain && !must {
            out.push(c);
            continue;
        }
        if st.plain && (c == '"' || c == '\\') {
            out.push('\\');
            out.push(c);
            continue;
        }
        match (c, r.below(3)) {
            ('"', 0) => out.push_str("\\\""),
            ('\\', 0) => out.push_str("\\\\"),
            ('/', 0) => out.push_str("\\/"),
            ('\n', 0) => out.push_str("\\n"),
            ('\t', 0) => out.push_str("\\t"),
            ('\r', 0) => out.push_str("\\r"),
            ('\u{8}', 0) => out.push_str("\\b"),
            ('\u{c}', 0) => out.push_str("\\f"),
            (c, 1) | (c, 0) if !must => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let hex = format!("{u:04x}");
                    out.push_str("\\u");
                    out.push_str(&if r.chance(50) { hex.to_uppercase() } else { hex });
                }
            }
        }
    }
    out.push('"');
}

/// A metadata envelope around `signed`, members in either order, sometimes with more.
fn envelope(signed: &str, r: &mut Rng, st: &Style) -> String {
    let sigs = r#""signatures":[{"keyid":"ab","sig":"cd"}]"#;
    if st.plain || r.chance(50) {
        format!("{{{sigs},\"signed\":{signed}}}")
    } else {
        format!("{{\"signed\":{signed},{sigs},\"x\":{{\"signed\":1}}}}")
    }
}

fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("PACKMAN_CANON_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n = std::env::var("PACKMAN_CANON_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    (1..=n).collect()
}

#[test]
fn fast_paths_agree_with_the_plain_canonicaliser_on_generated_json() {
    let (mut scanned, mut streamed, mut refused) = (0, 0, 0);
    for seed in seeds() {
        let mut r = Rng(seed);
        let value = gen_value(&mut r, 4);
        let st = Style { plain: r.chance(40), ws: r.chance(50) };
        let mut signed = String::new();
        write(&value, &mut r, &st, &mut signed);
        let doc = envelope(&signed, &mut r, &st);
        let ctx = || format!("seed {seed}: {doc:?}");

        let want = model(&value);
        let tree = Value::from_slice(doc.as_bytes())
            .map_err(|_| ())
            .and_then(|v| v.get("signed").expect("has signed").to_canonical().map_err(|_| ()));
        match (&want, &tree) {
            (Ok(Some(m)), Ok(t)) => assert_eq!(t, m, "tree vs model, {}", ctx()),
            (Err(()), Err(())) | (Ok(None), _) => {}
            _ => panic!("tree {tree:?} vs model {want:?}, {}", ctx()),
        }

        let streaming = canonical_signed(doc.as_bytes());
        match (&streaming, &tree) {
            (Ok(s), Ok(t)) => assert_eq!(s, t, "canonical_signed vs tree, {}", ctx()),
            (Err(_), Err(())) => refused += 1,
            _ => panic!("canonical_signed {streaming:?} vs tree {tree:?}, {}", ctx()),
        }

        if let Some(scan) = signed_if_canonical(doc.as_bytes()) {
            scanned += 1;
            assert_eq!(Ok(&scan), tree.as_ref(), "signed_if_canonical vs tree, {}", ctx());
        }

        // The signing side: a parsed value re-emitted by the streaming `to_canonical`.
        // (serde_json::Value keeps the last of duplicate keys: those cases are the tree's.)
        if let Ok(sv) = serde_json::from_str::<serde_json::Value>(&signed).map_err(drop).and_then(|sv| {
            if has_duplicate(&value) {
                Err(())
            } else {
                Ok(sv)
            }
        }) {
            streamed += 1;
            let plain = Value::from(&sv).to_canonical();
            assert_eq!(to_canonical(&sv).ok(), plain.clone().ok(), "to_canonical vs tree, {}", ctx());
            assert_eq!(plain.ok(), tree.clone().ok(), "serde_json::Value tree vs borrowed tree, {}", ctx());
        }
    }
    // The generator must reach every outcome, or the agreement above says little.
    let n = seeds().len();
    if n >= 1000 {
        assert!(scanned * 10 > n, "byte scan taken in only {scanned} of {n} cases");
        assert!(refused * 20 > n, "only {refused} of {n} cases had no canonical form");
        assert!(streamed * 2 > n, "only {streamed} of {n} cases parsed as serde_json values");
    }
}

fn targets_with(custom: serde_json::Value, r: &mut Rng) -> Targets {
    let mut t = Targets {
        type_: "targets".into(),
        delegations: None,
        expires: Expires::parse("2030-01-01T00:00:00Z").unwrap(),
        spec_version: "1.0.31".into(),
        targets: BTreeMap::new(),
        version: r.next() >> 1,
        extra: Default::default(),
    };
    for _ in 0..r.below(4) {
        let mut tf = TargetFile::from_data(gen_string(r).as_bytes());
        // (`"custom": null` reads back as no custom: not a canonical JSON matter.)
        if r.chance(70) && !custom.is_null() {
            tf.custom = Some(custom.clone());
        }
        t.targets.insert(format!("p/{}", gen_string(r)), tf);
    }
    if r.chance(30) {
        // Unknown fields sort among the known ones in canonical form, not after them.
        t.extra.insert(gen_string(r), custom);
    }
    t
}

#[test]
fn signed_forms_agree_with_the_plain_canonicaliser_on_generated_metadata() {
    let mut escaped = 0;
    for seed in seeds() {
        let mut r = Rng(seed);
        let value = gen_value(&mut r, 3);
        let mut text = String::new();
        write(&value, &mut r, &Style { plain: false, ws: false }, &mut text);
        // Floats and duplicates have no place in metadata packman writes.
        let Ok(custom) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if to_canonical(&custom).is_err() {
            continue;
        }
        let t = targets_with(custom, &mut r);
        if t.extra.keys().any(|k| ["_type", "expires", "spec_version", "targets", "version"].contains(&k.as_str())) {
            continue;
        }
        let ctx = || format!("seed {seed}: {t:?}");
        let f = signed_forms(&t).unwrap_or_else(|e| panic!("{e}, {}", ctx()));
        let tree = Value::from(&serde_json::to_value(&t).unwrap()).to_canonical().unwrap();
        assert_eq!(f.canonical, tree, "signed_forms vs tree, {}", ctx());
        // What a verifier does with the file written: parse it back, canonicalise `signed`.
        let file = [b"{\"signatures\":[],\"signed\":".as_slice(), f.json(), b"}"].concat();
        assert_eq!(canonical_signed(&file).unwrap(), tree, "written form re-read, {}", ctx());
        let back: Targets = serde_json::from_slice(f.json()).unwrap();
        assert_eq!(back, t, "{}", ctx());
        escaped += f.json.is_some() as u32;
    }
    assert!(escaped > 0 || seeds().len() < 100, "no case needed the escaped JSON form");
}

#[test]
fn snapshot_forms_agree_with_the_plain_canonicaliser_on_generated_snapshots() {
    let (mut fast, mut n) = (0, 0);
    for seed in seeds() {
        let mut r = Rng(seed);
        let mut meta = MetaMap::default();
        let plain_names = r.chance(50);
        for i in 0..r.below(6) {
            let name = if plain_names { format!("bins-{i:x}.json") } else { format!("{}.json", gen_string(&mut r)) };
            let mut m = MetaFile::new(r.next() >> r.below(64));
            if r.chance(10) {
                m.length = Some(r.next());
            }
            if r.chance(10) {
                m.hashes = Some(Hashes(vec![("sha256".into(), "ab".repeat(32))]));
            }
            meta.insert(name, m);
        }
        let mut s = Snapshot {
            type_: "snapshot".into(),
            expires: Expires::parse("2030-01-01T00:00:00Z").unwrap(),
            meta,
            spec_version: if r.chance(80) { "1.0.31".into() } else { gen_string(&mut r) },
            version: r.next() >> r.below(64),
            extra: Default::default(),
        };
        if r.chance(10) {
            s.extra.insert(format!("_{}", gen_string(&mut r)), serde_json::json!(gen_string(&mut r)));
        }
        n += 1;
        let f = snapshot_forms(&s).unwrap();
        let tree = Value::from(&serde_json::to_value(&s).unwrap()).to_canonical().unwrap();
        assert_eq!(f.canonical, tree, "seed {seed}: snapshot_forms vs tree: {s:?}");
        let file = [b"{\"signatures\":[],\"signed\":".as_slice(), f.json(), b"}"].concat();
        assert_eq!(canonical_signed(&file).unwrap(), tree, "seed {seed}: written form re-read");
        assert_eq!(serde_json::from_slice::<Snapshot>(f.json()).unwrap(), s, "seed {seed}");
        fast += (f.json.is_none() && plain_names) as u32;
    }
    assert!(fast * 10 > n || n < 100, "the direct snapshot writer was hardly used ({fast} of {n})");
}
