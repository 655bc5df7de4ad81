//! The signed list of a repository's mirrors: the content of the target
//! [`layout::MIRRORS_TARGET`](crate::layout::MIRRORS_TARGET). Its bytes are believed only as
//! a verified target (length and hashes signed by the repository); this module only reads and
//! writes the format. Clients add these mirrors after a verified refresh, never from DNS or
//! any other unsigned discovery.
//!
//! ```json
//! {"mirrors": [{"name": "eu", "metadata_url": "https://eu.example/metadata/",
//!               "targets_url": "https://eu.example/targets/"}]}
//! ```

use serde::{Deserialize, Serialize};

/// One mirror: where it serves the repository's `metadata/` and `targets/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    pub name: String,
    pub metadata_url: String,
    pub targets_url: String,
}

/// The list, in the order clients try the mirrors (after the URL they were given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorList {
    pub mirrors: Vec<MirrorEntry>,
}

/// Why a mirror list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MirrorListError {
    #[error("not a mirror list: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("mirror {name:?}: {reason}")]
    Entry { name: String, reason: &'static str },
}

impl MirrorList {
    /// Parses and checks a list (names unique and non-empty, URLs http(s) or file).
    pub fn from_slice(bytes: &[u8]) -> Result<MirrorList, MirrorListError> {
        let list: MirrorList = serde_json::from_slice(bytes)?;
        list.check()?;
        Ok(list)
    }

    pub fn check(&self) -> Result<(), MirrorListError> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.mirrors {
            let bad = |reason| Err(MirrorListError::Entry { name: m.name.clone(), reason });
            if m.name.is_empty() || m.name.chars().any(char::is_control) {
                return bad("a name must be non-empty, without control characters");
            }
            if !seen.insert(m.name.as_str()) {
                return bad("is listed twice");
            }
            for u in [&m.metadata_url, &m.targets_url] {
                if !["http://", "https://", "file://"].iter().any(|s| u.starts_with(s)) {
                    return bad("URLs must be http://, https:// or file://");
                }
            }
        }
        Ok(())
    }

    /// The bytes published: pretty JSON, one line per field, ending in a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("plain strings serialise");
        b.push(b'\n');
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_entries() {
        let e = |n: &str, u: &str| MirrorEntry { name: n.into(), metadata_url: u.into(), targets_url: u.into() };
        let l = MirrorList { mirrors: vec![e("eu", "https://eu/m/"), e("us", "http://us/m/")] };
        assert_eq!(MirrorList::from_slice(&l.to_bytes()).unwrap(), l);
        for bad in [
            MirrorList { mirrors: vec![e("a", "https://x/"), e("a", "https://y/")] },
            MirrorList { mirrors: vec![e("", "https://x/")] },
            MirrorList { mirrors: vec![e("a", "ftp://x/")] },
        ] {
            assert!(MirrorList::from_slice(&bad.to_bytes()).is_err(), "{bad:?}");
        }
        assert!(MirrorList::from_slice(b"[]").is_err());
    }
}
