//! Describing and verifying the files metadata points at: the one place in packman where a
//! length or a hash is computed or checked (python-tuf's `TargetFile.from_data` and
//! `verify_length_and_hashes`). Target files and the metadata files a snapshot or timestamp
//! lists (`MetaFile`, whose length and hashes are optional) go through the same [`Verifier`].
//!
//! Streaming: a [`Describer`] or [`Verifier`] is fed chunks as they arrive (a download, a
//! copy), and a [`Verifier`] refuses the first byte past the signed length, so an endless
//! stream is cut off by the check itself. Nothing here reads a file or the network: callers
//! pass bytes, or any `Read`.

use std::io::Read;

use ring::digest::{Algorithm, Context, SHA256, SHA384, SHA512};

use crate::metadata::{Extra, Hashes, MetaFile, TargetFile};

/// The hashes packman writes when it describes a file.
pub const DESCRIBE_ALGORITHMS: [&str; 2] = ["sha256", "sha512"];

/// Bytes that are not what the signed length and hashes describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("length {got} where the signed length is {expected}")]
    Length { got: u64, expected: u64 },
    #[error("longer than the signed length {expected}")]
    TooLong { expected: u64 },
    #[error("{algorithm} is {got}, the signed hash is {expected}")]
    Hash { algorithm: String, got: String, expected: String },
    #[error("unsupported hash algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

/// A [`Mismatch`], or the reader failing before the bytes could be checked.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The digest behind a TUF hash algorithm name, for the names packman accepts.
pub fn digest_algorithm(name: &str) -> Option<&'static Algorithm> {
    match name {
        "sha256" => Some(&SHA256),
        "sha384" => Some(&SHA384),
        "sha512" => Some(&SHA512),
        _ => None,
    }
}

/// Lower-case hex (`hex::encode` goes through a `char` iterator, a visible cost when a bulk
/// import describes a million files).
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut buf).expect("twice the length");
    String::from_utf8(buf).expect("hex digits are ASCII")
}

/// Computes the length, SHA-256 and SHA-512 of bytes fed in chunks: a file's description
/// as a target.
pub struct Describer {
    sha256: Context,
    sha512: Context,
    length: u64,
}

impl Default for Describer {
    fn default() -> Self {
        Describer { sha256: Context::new(&SHA256), sha512: Context::new(&SHA512), length: 0 }
    }
}

impl Describer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.length += chunk.len() as u64;
        self.sha256.update(chunk);
        self.sha512.update(chunk);
    }

    pub fn finish(self) -> TargetFile {
        description(self.length, hex_lower(self.sha256.finish().as_ref()), hex_lower(self.sha512.finish().as_ref()))
    }
}

fn description(length: u64, sha256: String, sha512: String) -> TargetFile {
    TargetFile {
        length,
        hashes: Hashes(vec![("sha256".into(), sha256), ("sha512".into(), sha512)]),
        custom: None,
        extra: Extra::new(),
    }
}

/// Above this size [`describe`] computes its two hashes on two threads.
const PARALLEL_DESCRIBE_ABOVE: usize = 1 << 20;

/// The target description (length, SHA-256, SHA-512) of `bytes`.
pub fn describe(bytes: &[u8]) -> TargetFile {
    let hash = |alg| hex_lower(ring::digest::digest(alg, bytes).as_ref());
    // A project list at PyPI's size is tens of megabytes: its two hashes on two cores.
    let (sha256, sha512) = if bytes.len() >= PARALLEL_DESCRIBE_ABOVE {
        std::thread::scope(|s| {
            let sha512 = s.spawn(|| hash(&SHA512));
            let sha256 = hash(&SHA256);
            (sha256, sha512.join().unwrap_or_else(|_| hash(&SHA512)))
        })
    } else {
        (hash(&SHA256), hash(&SHA512))
    };
    description(bytes.len() as u64, sha256, sha512)
}

/// How a timestamp (or snapshot) lists version `version` of a metadata file made of `parts`:
/// its length and SHA-256.
pub fn describe_meta<'a>(version: u64, parts: impl IntoIterator<Item = &'a [u8]>) -> MetaFile {
    let mut sha256 = Context::new(&SHA256);
    let mut length = 0u64;
    for part in parts {
        sha256.update(part);
        length += part.len() as u64;
    }
    let mut meta = MetaFile::new(version);
    meta.length = Some(length);
    meta.hashes = Some(Hashes(vec![("sha256".into(), hex_lower(sha256.finish().as_ref()))]));
    meta
}

/// The target description of everything `reader` yields.
pub fn describe_reader(reader: impl Read) -> std::io::Result<TargetFile> {
    let mut d = Describer::new();
    for_each_chunk(reader, |chunk| {
        d.update(chunk);
        Ok::<(), std::io::Error>(())
    })?;
    Ok(d.finish())
}

/// Checks bytes fed in chunks against a length and hashes from signed metadata. Every hash
/// listed is checked (an algorithm packman does not know fails the check: bytes are never
/// accepted on a partial check), and a length, when given, is enforced as the bytes come.
pub struct Verifier {
    expected_length: Option<u64>,
    length: u64,
    hashes: Vec<(String, Context, String)>,
}

impl Verifier {
    /// A verifier for `length` (if the metadata gives one) and `hashes` (if it gives any).
    pub fn new(length: Option<u64>, hashes: Option<&Hashes>) -> Result<Self, Mismatch> {
        let mut ctxs = Vec::new();
        for (alg, want) in hashes.into_iter().flat_map(Hashes::iter) {
            let a = digest_algorithm(alg).ok_or_else(|| Mismatch::UnsupportedAlgorithm(alg.into()))?;
            ctxs.push((alg.to_string(), Context::new(a), want.to_string()));
        }
        Ok(Verifier { expected_length: length, length: 0, hashes: ctxs })
    }

    /// A verifier for a signed target description: its length and every hash it lists.
    pub fn for_target(info: &TargetFile) -> Result<Self, Mismatch> {
        Self::new(Some(info.length), Some(&info.hashes))
    }

    /// Feeds the next chunk; refuses it if it takes the bytes past the expected length.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), Mismatch> {
        self.length += chunk.len() as u64;
        if let Some(expected) = self.expected_length {
            if self.length > expected {
                return Err(Mismatch::TooLong { expected });
            }
        }
        for (_, ctx, _) in &mut self.hashes {
            ctx.update(chunk);
        }
        Ok(())
    }

    /// How many bytes have been fed.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Whether the bytes fed were exactly the expected length with every expected hash.
    pub fn finish(self) -> Result<(), Mismatch> {
        if let Some(expected) = self.expected_length {
            if self.length != expected {
                return Err(Mismatch::Length { got: self.length, expected });
            }
        }
        for (algorithm, ctx, expected) in self.hashes {
            let got = hex_lower(ctx.finish().as_ref());
            if !got.eq_ignore_ascii_case(&expected) {
                return Err(Mismatch::Hash { algorithm, got, expected });
            }
        }
        Ok(())
    }
}

/// Checks `bytes` against a length and hashes from signed metadata.
pub fn verify(bytes: &[u8], length: Option<u64>, hashes: Option<&Hashes>) -> Result<(), Mismatch> {
    let mut v = Verifier::new(length, hashes)?;
    v.update(bytes)?;
    v.finish()
}

/// Checks everything `reader` yields against a length and hashes from signed metadata,
/// stopping at the first byte past the length.
pub fn verify_reader(reader: impl Read, length: Option<u64>, hashes: Option<&Hashes>) -> Result<(), ReadError> {
    let mut v = Verifier::new(length, hashes)?;
    for_each_chunk(reader, |chunk| v.update(chunk).map_err(ReadError::from))?;
    Ok(v.finish()?)
}

impl TargetFile {
    /// The description (length, SHA-256, SHA-512) of `bytes`.
    pub fn from_data(bytes: &[u8]) -> TargetFile {
        describe(bytes)
    }

    /// Whether `bytes` are exactly what this description signs.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), Mismatch> {
        verify(bytes, Some(self.length), Some(&self.hashes))
    }

    /// As [`TargetFile::verify`], for everything `reader` yields.
    pub fn verify_reader(&self, reader: impl Read) -> Result<(), ReadError> {
        verify_reader(reader, Some(self.length), Some(&self.hashes))
    }

    /// The hash a consistent-snapshot repository prefixes the file name with: the first one
    /// listed (TUF 1.0 section 5.7.3; metadata validation guarantees there is one).
    pub fn name_hash(&self) -> Option<&str> {
        self.hashes.iter().next().map(|(_, h)| h)
    }
}

/// Reads `reader` through, passing `f` each chunk as it comes; returns the length read.
pub fn for_each_chunk<E: From<std::io::Error>>(
    mut reader: impl Read,
    mut f: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        f(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_of(b: &[u8]) -> String {
        hex::encode(ring::digest::digest(&SHA256, b))
    }

    #[test]
    fn describe_streaming_and_whole_agree_on_both_sides_of_the_parallel_threshold() {
        for len in [0usize, 1, 4095, PARALLEL_DESCRIBE_ABOVE - 1, PARALLEL_DESCRIBE_ABOVE + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let whole = describe(&data);
            let mut d = Describer::new();
            for chunk in data.chunks(1000) {
                d.update(chunk);
            }
            assert_eq!(d.finish(), whole, "len {len}");
            assert_eq!(describe_reader(&data[..]).unwrap(), whole);
            assert_eq!(whole.length, len as u64);
            assert_eq!(whole.hashes.get("sha256"), Some(sha256_of(&data).as_str()));
            assert_eq!(whole.hashes.get("sha512"), Some(hex::encode(ring::digest::digest(&SHA512, &data)).as_str()));
            whole.verify(&data).unwrap();
            whole.verify_reader(&data[..]).unwrap();
        }
    }

    #[test]
    fn verification_refuses_each_kind_of_difference() {
        let info = describe(b"hello world");
        assert_eq!(info.verify(b"hello worl"), Err(Mismatch::Length { got: 10, expected: 11 }));
        assert_eq!(info.verify(b"hello world!"), Err(Mismatch::TooLong { expected: 11 }));
        match info.verify(b"hello WORLD") {
            Err(Mismatch::Hash { algorithm, .. }) => assert_eq!(algorithm, "sha256"),
            other => panic!("{other:?}"),
        }
        // Every listed hash counts: a right sha256 does not excuse a wrong sha512.
        let mut half = info.clone();
        half.hashes.0[1].1 = "00".repeat(64);
        match half.verify(b"hello world") {
            Err(Mismatch::Hash { algorithm, .. }) => assert_eq!(algorithm, "sha512"),
            other => panic!("{other:?}"),
        }
        // Unknown algorithms are not skipped.
        let mut odd = info.clone();
        odd.hashes.0.push(("md5".into(), "00".into()));
        assert_eq!(odd.verify(b"hello world"), Err(Mismatch::UnsupportedAlgorithm("md5".into())));
        // Hex case does not matter.
        let mut upper = info.clone();
        upper.hashes.0[0].1 = upper.hashes.0[0].1.to_uppercase();
        upper.verify(b"hello world").unwrap();
    }

    #[test]
    fn a_stream_is_cut_off_at_the_first_byte_past_the_length() {
        let info = describe(b"abc");
        let mut v = Verifier::for_target(&info).unwrap();
        v.update(b"ab").unwrap();
        assert_eq!(v.update(b"cd"), Err(Mismatch::TooLong { expected: 3 }));
        // An endless reader stops being read once it passes the length.
        let endless = std::io::repeat(b'a');
        match info.verify_reader(endless) {
            Err(ReadError::Mismatch(Mismatch::TooLong { expected: 3 })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn meta_descriptions_verify() {
        let meta = describe_meta(3, [&b"ab"[..], b"cd"]);
        assert_eq!((meta.version, meta.length), (3, Some(4)));
        verify(b"abcd", meta.length, meta.hashes.as_ref()).unwrap();
        assert!(verify(b"abce", meta.length, meta.hashes.as_ref()).is_err());
    }

    #[test]
    fn metadata_files_may_omit_length_or_hashes() {
        verify(b"anything", None, None).unwrap();
        let h = Hashes(vec![("sha256".into(), sha256_of(b"x"))]);
        verify(b"x", None, Some(&h)).unwrap();
        assert!(matches!(verify(b"y", None, Some(&h)), Err(Mismatch::Hash { .. })));
        assert_eq!(verify(b"xy", Some(1), None), Err(Mismatch::TooLong { expected: 1 }));
    }
}
