//! The one error type of this crate. Every variant names the file it is about (the
//! distribution's file name, or the name being checked) and the rule that was broken.

/// Why a distribution file (or a name or version in it) was refused.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The path has no final component, or it is not UTF-8.
    #[error("{file}: file name must be UTF-8 and non-empty")]
    BadPath { file: String },
    /// Neither `.whl`, `.tar.gz` nor `.zip`.
    #[error("{file}: unsupported distribution type (expected .whl, .tar.gz or .zip)")]
    UnsupportedExtension { file: String },
    /// The file name does not follow PEP 427 (wheels) or PEP 625 (sdists).
    #[error("{file}: invalid file name: {rule}")]
    BadFilename { file: String, rule: String },
    /// A project name that breaks the PEP 508 name rules.
    #[error("{file}: invalid project name {name:?}: names must start and end with a letter or digit and contain only letters, digits, '-', '_' and '.' (PEP 508)")]
    InvalidName { file: String, name: String },
    /// A version that is not valid PEP 440.
    #[error("{file}: invalid version {version:?} (PEP 440): {reason}")]
    InvalidVersion { file: String, version: String, reason: String },
    /// The archive itself is damaged or uses a feature this crate refuses.
    #[error("{file}: corrupt or unsupported archive: {detail}")]
    CorruptArchive { file: String, detail: String },
    /// The archive holds two entries with the same name (ambiguous to installers).
    #[error("{file}: archive holds entry {entry:?} more than once")]
    DuplicateEntry { file: String, entry: String },
    /// A zip's central directory lists some entry name more than once (the name itself
    /// is not recoverable once the reader has merged them).
    #[error("{file}: zip central directory lists an entry name more than once")]
    DuplicateNames { file: String },
    /// A wheel has no top-level `*.dist-info` directory.
    #[error("{file}: wheel has no top-level .dist-info directory (PEP 427)")]
    NoDistInfo { file: String },
    /// A wheel has more than one top-level `*.dist-info` directory.
    #[error("{file}: wheel has several top-level .dist-info directories: {dirs:?} (PEP 427 allows one)")]
    SeveralDistInfo { file: String, dirs: Vec<String> },
    /// The `.dist-info` directory's name and version disagree with the file name.
    #[error("{file}: .dist-info directory {dir:?} does not match the file name's {expected:?}")]
    DistInfoMismatch { file: String, dir: String, expected: String },
    /// `METADATA` (wheel) or `PKG-INFO` (sdist) is missing or not a regular file.
    #[error("{file}: core metadata {member:?} not found in the archive")]
    MissingMetadata { file: String, member: String },
    /// Several candidate `PKG-INFO` files and none at `{name}-{version}/PKG-INFO`.
    #[error("{file}: several top-level PKG-INFO files {members:?}, none at {expected:?}")]
    AmbiguousMetadata { file: String, members: Vec<String>, expected: String },
    /// The core metadata file is larger than [`crate::MAX_CORE_METADATA_SIZE`].
    #[error("{file}: core metadata {member:?} is larger than the limit of {limit} bytes")]
    MetadataTooLarge { file: String, member: String, limit: u64 },
    /// The archive took more than [`crate::MAX_SDIST_SCAN`] uncompressed bytes to search.
    #[error("{file}: gave up after {limit} uncompressed bytes without finding PKG-INFO")]
    ArchiveTooLarge { file: String, limit: u64 },
    /// The core metadata headers do not parse (RFC 822 style, UTF-8).
    #[error("{file}: malformed core metadata: {rule}")]
    MalformedMetadata { file: String, rule: String },
    /// A required core metadata field is absent.
    #[error("{file}: core metadata lacks the required field {field}")]
    MissingField { file: String, field: &'static str },
    /// A single-use core metadata field appears more than once.
    #[error("{file}: core metadata has field {field} more than once")]
    DuplicateField { file: String, field: &'static str },
    /// `Metadata-Version` is not one this crate understands.
    #[error("{file}: unsupported Metadata-Version {version:?} (expected 1.x or 2.x)")]
    UnsupportedMetadataVersion { file: String, version: String },
    /// `Requires-Python` is not a valid PEP 440 specifier set.
    #[error("{file}: invalid Requires-Python {value:?} (PEP 440 specifiers): {reason}")]
    InvalidRequiresPython { file: String, value: String, reason: String },
    /// The metadata `Name` normalises to another project than the file name.
    #[error("{file}: metadata Name {metadata:?} does not match the file name's project {filename:?}")]
    NameMismatch { file: String, filename: String, metadata: String },
    /// The metadata `Version` normalises to another version than the file name.
    #[error("{file}: metadata Version {metadata:?} does not match the file name's version {filename:?}")]
    VersionMismatch { file: String, filename: String, metadata: String },
    /// A simple API page that is not the PEP 691 JSON this crate writes.
    #[error("{page}: not a PEP 691 JSON page: {reason}")]
    MalformedPage { page: String, reason: String },
}
