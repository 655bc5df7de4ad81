//! `packman proxy`: a PEP 503 / PEP 691 simple API on 127.0.0.1 for pip and uv, answered
//! only with pages and files verified against the signed TUF metadata of the trust ring's
//! repositories, each project from the one repository the ring routes it to.
//!
//! - [`Proxy`]: the ring's repositories (one updater each), routing, the verified cache,
//!   and what was served or refused ([`Served`], [`Refusal`]);
//! - [`serve`], [`Running`], [`run`]: the HTTP side (hyper), which only turns a request into
//!   [`Proxy::handle`] on a blocking thread and its [`Reply`] into a response.
//!
//! Cache layout: `<cache dir>/files/<sha256>` for every page and file, written by rename
//! only after its signed length and hashes matched; temp files (`.tmp…`) in the same
//! directory are removed when a check fails.
#![forbid(unsafe_code)]

mod error;
mod http;
mod prefetch;
mod proxy;

pub use error::ProxyError;
pub use http::{run, serve, Running};
pub use proxy::{
    Clock, MirrorReport, Options, PlainCopies, Proxy, Refusal, Reply, ReplyBody, Served, HINTED_TARGETS, PLAIN_MAX,
};
