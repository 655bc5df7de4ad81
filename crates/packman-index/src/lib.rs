//! The Python packaging layer of packman, with no TUF knowledge: what the publisher
//! (`packman repo add`) and the server need to know about distribution files and to
//! render the simple repository API.
//!
//! * [`name`]: PEP 508 name validity, PEP 503 normalisation;
//! * [`filename`]: wheel (PEP 427) and sdist (PEP 625) file names, PEP 440 versions;
//! * [`metadata`]: the core metadata header block (`METADATA` / `PKG-INFO`);
//! * [`inspect`](mod@inspect): reads a `.whl` / `.tar.gz` / `.zip` and checks it against its name;
//! * [`simple`]: PEP 503 HTML and PEP 691/700 JSON pages, byte-for-byte deterministic, and
//!   the reader of the JSON pages;
//! * [`select`]: which files of a page fit an interpreter (wheel tags, Requires-Python,
//!   PEP 440 order, yanking);
//! * [`error`]: [`IndexError`], naming the file and the rule broken.
#![forbid(unsafe_code)]

pub mod error;
pub mod filename;
pub mod inspect;
pub mod metadata;
pub mod name;
pub mod select;
pub mod simple;

pub use error::IndexError;
pub use filename::{normalize_version, parse_filename, ArchiveFormat, DistFilename, DistKind, WheelTags};
pub use inspect::{inspect, Distribution, MAX_CORE_METADATA_SIZE, MAX_SDIST_SCAN};
pub use metadata::{parse_core_metadata, CoreMetadata};
pub use name::{is_normalized, is_valid_name, normalize_name};
pub use select::{choose, Chosen, Environment, SelectError, FALLBACK_TAG};
pub use simple::{
    escape_html, file_version, index_html, index_html_edit, index_json, index_json_edit, parse_index_json,
    parse_project_json, project_html, project_json, FileEntry, ProjectPage, API_VERSION, HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
};
