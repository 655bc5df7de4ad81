//! The user's side of trust: where packman keeps its state ([`Home`]), how a repository's
//! root comes to be trusted and stays pinned ([`ensure_trust`]), and the one
//! [`TrustedRepo`] per repository that opens its [`packman_client::Updater`].
//!
//! [`read`] reads the ring's signed pages and files (routing, verified cache): the proxy and
//! the read commands share it.
//!
//! Every door that reads a repository for a user (`packman download`, later `install`, the
//! pip/uv proxy, `packman://` links) goes through here, so there is one rule for where
//! trusted metadata lives and one for when a root may be trusted.
#![forbid(unsafe_code)]

mod bundle;
mod error;
mod home;
mod link;
mod manage;
mod pin;
pub mod read;
mod repo;
mod ring;

pub use bundle::{import_bundle, BundleInput, Imported};
pub use error::TrustError;
pub use home::Home;
pub use link::{Link, LinkAction, LinkError, MAX_LINK_LEN};
pub use manage::{
    add_repo, add_repo_from_bundle, fingerprint, read_state, remove_repo, repo_status, update_repo, Added,
    MirrorStatus, RepoState, RepoStatus, RoleStatus, RootChange, RootSource, Rotation, Updated, SIGNED_MIRRORS_FILE,
    STATE_FILE,
};
pub use pin::{
    ensure_trust, ensure_trust_bytes, ensure_trust_bytes_fetching, ensure_trust_fetching, RootFetch, TrustOutcome,
};
pub use read::{Freshness, ReadError, Reader, VerifiedCache};
pub use repo::{default_targets_url, TrustedRepo};
pub use ring::{check_name, ring_dir, RepoEntry, Ring, RingMirror, CONFIG_FILE};
