//! packman's trust core: TUF 1.0 metadata, canonical JSON, keys and signatures, and
//! [`TrustedSet`], the client workflow of spec section 5 as a state machine over bytes
//! and an injected clock. Nothing here does I/O or reads the time.
#![forbid(unsafe_code)]

pub mod canonical;
pub mod crypto;
mod error;
pub mod layout;
pub mod metadata;
pub mod mirrors;
pub mod pattern;
pub mod target;
pub mod trusted;

pub use error::Error;
pub use metadata::{
    DelegatedRole, Delegations, Envelope, Expires, Hashes, Key, MetaFile, MetaMap, Role, RoleKeys, Root, Signature,
    Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp, TopLevelRole,
};
pub use target::{digest_algorithm, Describer, Mismatch, Verifier};
pub use trusted::{
    check_length_and_hashes, check_threshold, count_signers, ExpiredRole, Expiry, Limits, SearchStep, TargetSearch,
    TrustedSet, Verified,
};

pub use time::OffsetDateTime;
