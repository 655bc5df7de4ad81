//! The verifying client: [`Updater`] drives packman-tuf's `TrustedSet` with bytes it fetches
//! through a [`Transport`] (by default HTTP with one connection pool, and `file://`), persists trusted metadata
//! atomically under a lock ([`MetadataStore`]) and downloads targets into place only after
//! their length and hashes check out.
#![forbid(unsafe_code)]

mod error;
mod failover;
mod fetch;
mod store;
mod transport;
mod updater;

pub use error::Error;
pub use failover::{failover, Candidate, FailoverTransport, FailureKind, MirrorFailure};
pub use fetch::{FetchError, FetcherConfig, HttpTransport};
pub use store::MetadataStore;
pub use transport::{file_url, DefaultTransport, Fetcher, FileTransport, Transport};
pub use updater::{is_cached, Config, Downloaded, PlainCopy, TargetFetcher, Updater, VerifiedFile, VerifiedTarget};
