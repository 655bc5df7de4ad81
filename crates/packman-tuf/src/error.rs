use thiserror::Error;

/// Why the trust core refused a piece of metadata. Every variant names the role; the client
/// layer adds the URL or file it came from.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("{role}: malformed metadata: {reason}")]
    Malformed { role: String, reason: String },

    #[error("{role}: expected _type {expected:?}, found {found:?}")]
    WrongType { role: String, expected: String, found: String },

    #[error("{role}: signatures from {valid} of the required {threshold} keys (threshold not met)")]
    ThresholdNotMet { role: String, valid: usize, threshold: u64 },

    #[error("{role}: rollback refused: trusted version is {trusted}, repository offers {offered}")]
    Rollback { role: String, trusted: u64, offered: u64 },

    #[error("{role}: version {offered} where version {expected} is required")]
    BadVersion { role: String, expected: u64, offered: u64 },

    /// Not an attack: the repository offers the version we already trust.
    #[error("{role}: version {version} is already trusted")]
    EqualVersion { role: String, version: u64 },

    #[error("{role}: expired at {expires} (freeze attack or stale repository)")]
    Expired { role: String, expires: String },

    #[error("{role}: {reason}")]
    LengthOrHashMismatch { role: String, reason: String },

    #[error("{role}: {reason} (mix-and-match or inconsistent repository)")]
    Inconsistent { role: String, reason: String },

    /// The timestamp names a root version the repository did not serve: someone withholds
    /// a root rotation (theupdateframework/specification#225).
    #[error("timestamp: names root version {named}, but the newest root the repository served is version {trusted} (withheld root rotation: freeze attack?)")]
    HiddenRoot { named: u64, trusted: u64 },

    #[error("{role}: not delegated by {delegator}")]
    NotDelegated { role: String, delegator: String },

    /// The caller broke the loading order of spec section 5 (a bug in the caller).
    #[error("loading order: {0}")]
    Order(String),
}

impl Error {
    /// The role the error is about.
    pub fn role(&self) -> &str {
        match self {
            Error::Malformed { role, .. }
            | Error::WrongType { role, .. }
            | Error::ThresholdNotMet { role, .. }
            | Error::Rollback { role, .. }
            | Error::BadVersion { role, .. }
            | Error::EqualVersion { role, .. }
            | Error::Expired { role, .. }
            | Error::LengthOrHashMismatch { role, .. }
            | Error::Inconsistent { role, .. }
            | Error::NotDelegated { role, .. } => role,
            Error::HiddenRoot { .. } => "timestamp",
            Error::Order(_) => "<loading order>",
        }
    }

    pub(crate) fn malformed(role: &str, reason: impl std::fmt::Display) -> Self {
        Error::Malformed { role: role.to_string(), reason: reason.to_string() }
    }
}
