//! The verifying client: [`Updater`] drives packman-tuf's `TrustedSet` with bytes it fetches
//! ([`Fetcher`]: HTTP with one connection pool, and `file://`), persists trusted metadata
//! atomically under a lock ([`MetadataStore`]) and downloads targets into place only after
//! their length and hashes check out.
#![forbid(unsafe_code)]

mod error;
mod fetch;
mod store;
mod updater;

pub use error::Error;
pub use fetch::{FetchError, Fetcher, FetcherConfig};
pub use store::MetadataStore;
pub use updater::{is_cached, Config, Updater};
