//! Trust on first use, then pinned: a metadata directory's root is set once from a root the
//! user obtained from a trusted place, and after that changes only through rotations the
//! repository signs (which the updater follows). A root given again later must be the one
//! trusted, or an older one that leads to it, or a newer one it leads to, through those
//! signed rotations (each version fetched and verified against the one before); anything
//! else is refused and the trusted root stays byte for byte as it was.

use std::path::Path;

use packman_client::MetadataStore;
use packman_tuf::{OffsetDateTime, TrustedSet};

use crate::TrustError;

/// What [`ensure_trust`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustOutcome {
    /// No root was trusted yet: the given one (of this version) now is.
    FirstUse { version: u64 },
    /// A root is trusted and none was given.
    AlreadyTrusted,
    /// The root given is the trusted one, byte for byte.
    Same,
    /// The root given is an older version than the trusted one, which signed rotations
    /// have replaced (checked version by version); the trusted one stays.
    RotatedPast { given: u64, trusted: u64 },
    /// The root given is newer than the trusted one and follows it through rotations the
    /// trusted root signed (checked version by version); nothing was written, the next
    /// update takes that chain.
    RotatedAhead { given: u64, trusted: u64 },
}

/// Fetches version N of the repository's root (`N.root.json`), for checking that an older
/// root given leads to the trusted one. An error is a message naming what failed.
pub type RootFetch<'a> = &'a mut dyn FnMut(u64) -> Result<Vec<u8>, String>;

/// Establishes trust in `dir` (a metadata directory): the first time from the root in
/// `root_file`; afterwards `root_file`, if given, must hold the root already trusted or an
/// older one it rotated past. `now` is the time the given root is checked at. With no way
/// to fetch the roots in between, an older root is accepted only when the trusted one is
/// its direct successor (see [`ensure_trust_fetching`]).
pub fn ensure_trust(dir: &Path, root_file: Option<&Path>, now: OffsetDateTime) -> Result<TrustOutcome, TrustError> {
    ensure_trust_fetching(dir, root_file, now, &mut |v| Err(format!("no way to fetch {v}.root.json was given")))
}

/// As [`ensure_trust`], fetching the roots between an older root given and the trusted one
/// with `fetch` to check that the older root leads to the trusted one through signed
/// rotations: a root of another repository, or of a fork, never does.
pub fn ensure_trust_fetching(
    dir: &Path,
    root_file: Option<&Path>,
    now: OffsetDateTime,
    fetch: RootFetch,
) -> Result<TrustOutcome, TrustError> {
    let given = root_file.map(|p| std::fs::read(p).map_err(|e| TrustError::io(p, e))).transpose()?;
    let label = root_file.map(|p| p.display().to_string());
    check(dir, given.as_deref().map(|b| (label.unwrap_or_default(), b)), now, fetch)
}

/// As [`ensure_trust`], with the given root's bytes (from a bundle, say) rather than a file.
pub fn ensure_trust_bytes(dir: &Path, root: Option<&[u8]>, now: OffsetDateTime) -> Result<TrustOutcome, TrustError> {
    check(dir, root.map(|b| ("the root given".to_string(), b)), now, &mut |v| {
        Err(format!("no way to fetch {v}.root.json was given"))
    })
}

/// As [`ensure_trust_fetching`], with the given root's bytes, named `label` in errors (a
/// mirror checks the `--root` its operator gave against the root its state trusts).
pub fn ensure_trust_bytes_fetching(
    dir: &Path,
    label: &str,
    root: &[u8],
    now: OffsetDateTime,
    fetch: RootFetch,
) -> Result<TrustOutcome, TrustError> {
    check(dir, Some((label.to_string(), root)), now, fetch)
}

fn check(
    dir: &Path,
    given: Option<(String, &[u8])>,
    now: OffsetDateTime,
    fetch: RootFetch,
) -> Result<TrustOutcome, TrustError> {
    let trusted_path = dir.join("root.json");
    let current = match std::fs::read(&trusted_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(TrustError::io(&trusted_path, e)),
    };
    let Some((label, given)) = given else {
        return match current {
            Some(_) => Ok(TrustOutcome::AlreadyTrusted),
            None => Err(TrustError::NoRoot { dir: dir.to_path_buf() }),
        };
    };
    if current.as_deref() == Some(given) {
        return Ok(TrustOutcome::Same);
    }
    let mut chain =
        TrustedSet::new(given, now).map_err(|source| TrustError::InvalidRoot { given: label.clone(), source })?;
    let given_version = chain.root().signed.version;
    let Some(current) = current else {
        write_root(dir, given)?;
        return Ok(TrustOutcome::FirstUse { version: given_version });
    };
    let mut from_trusted = TrustedSet::new(&current, now)
        .map_err(|source| TrustError::TrustedRootUnusable { path: trusted_path.clone(), source })?;
    let trusted_version = from_trusted.root().signed.version;
    let refused = |reason: String| TrustError::RootNotInChain {
        given: label.clone(),
        given_version,
        trusted: trusted_path.clone(),
        trusted_version,
        dir: dir.to_path_buf(),
        reason,
    };
    // An older root the trusted one has moved past through signed rotations: the user
    // kept the root.json they started from, which is fine; it changes nothing. But only if
    // it really leads to the trusted root, each version signed by the one before (spec
    // 5.3): an older-numbered root of another repository must not pass unremarked.
    if given_version < trusted_version {
        for v in given_version + 1..=trusted_version {
            let bytes = if v == trusted_version { current.clone() } else { fetch(v).map_err(&refused)? };
            chain.update_root(&bytes).map_err(|e| refused(format!("version {v}: {e}")))?;
        }
        // Reaching the trusted version by verified steps is not enough: the last step must
        // be the trusted root itself (it was, `current`), so the chain ends where trust is.
        return Ok(TrustOutcome::RotatedPast { given: given_version, trusted: trusted_version });
    }
    // A newer root (a script that always passes the repository's latest root.json) is a
    // rotation the trusted root must sign, as the updater would check it: each version from
    // the trusted one on, the last being the root given. Nothing is written: the next
    // update fetches and keeps that chain itself.
    if given_version > trusted_version {
        for v in trusted_version + 1..=given_version {
            let bytes = if v == given_version { given.to_vec() } else { fetch(v).map_err(&refused)? };
            from_trusted.update_root(&bytes).map_err(|e| refused(format!("version {v}: {e}")))?;
        }
        return Ok(TrustOutcome::RotatedAhead { given: given_version, trusted: trusted_version });
    }
    Err(TrustError::RootDiffers {
        given: label,
        trusted: trusted_path,
        trusted_version,
        given_version,
        dir: dir.to_path_buf(),
    })
}

/// Writes the first trusted root the way the updater writes all metadata (under the
/// directory's lock, atomically).
fn write_root(dir: &Path, root: &[u8]) -> Result<(), TrustError> {
    let to_trust = |e: packman_client::Error| match e {
        packman_client::Error::Io { path, source } => TrustError::Io { path, source },
        other => TrustError::io(dir, std::io::Error::other(other.to_string())),
    };
    let store = MetadataStore::open(dir).map_err(to_trust)?;
    store.write("root", root).map_err(to_trust)?;
    store.flush().map_err(to_trust)
}

#[cfg(test)]
mod tests {
    use super::*;
    use packman_repo::RepoBuilder;

    struct Roots {
        v1: Vec<u8>,
        v2: Vec<u8>,
        other: Vec<u8>,
    }

    fn roots() -> Roots {
        let now = OffsetDateTime::now_utc();
        let mut repo = RepoBuilder::new(now).unwrap();
        repo.rotate_key("root").unwrap();
        let v1 = repo.signed_roots.first().unwrap().clone();
        let v2 = repo.signed_roots.last().unwrap().clone();
        let other = RepoBuilder::new(now).unwrap().signed_roots[0].clone();
        Roots { v1, v2, other }
    }

    /// The signed roots v1..v3 of a repository that rotated its root key twice, and v1..v2
    /// of another repository.
    fn chains(now: OffsetDateTime) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut repo = RepoBuilder::new(now).unwrap();
        repo.rotate_key("root").unwrap();
        repo.rotate_key("root").unwrap();
        let mut other = RepoBuilder::new(now).unwrap();
        other.rotate_key("root").unwrap();
        (repo.signed_roots, other.signed_roots)
    }

    fn version_of(bytes: &[u8]) -> u64 {
        TrustedSet::new(bytes, OffsetDateTime::now_utc()).unwrap().root().signed.version
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn first_use_trusts_the_given_root() {
        let r = roots();
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("meta");
        let file = d.path().join("root.json");
        std::fs::write(&file, &r.v1).unwrap();
        assert_eq!(ensure_trust(&dir, Some(&file), now()).unwrap(), TrustOutcome::FirstUse { version: 1 });
        assert_eq!(std::fs::read(dir.join("root.json")).unwrap(), r.v1);
        // Later runs need no root, and the same one again is fine.
        assert_eq!(ensure_trust(&dir, None, now()).unwrap(), TrustOutcome::AlreadyTrusted);
        assert_eq!(ensure_trust(&dir, Some(&file), now()).unwrap(), TrustOutcome::Same);
        assert_eq!(ensure_trust_bytes(&dir, Some(&r.v1), now()).unwrap(), TrustOutcome::Same);
    }

    #[test]
    fn first_use_without_a_root_is_an_error_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("meta");
        match ensure_trust(&dir, None, now()) {
            Err(TrustError::NoRoot { dir: got }) => assert_eq!(got, dir),
            other => panic!("expected NoRoot, got {other:?}"),
        }
        assert!(!dir.exists());
    }

    #[test]
    fn an_older_root_rotated_past_is_accepted_and_changes_nothing() {
        let r = roots();
        assert_eq!((version_of(&r.v1), version_of(&r.v2)), (1, 2));
        let d = tempfile::tempdir().unwrap();
        ensure_trust_bytes(d.path(), Some(&r.v2), now()).unwrap();
        assert_eq!(
            ensure_trust_bytes(d.path(), Some(&r.v1), now()).unwrap(),
            TrustOutcome::RotatedPast { given: 1, trusted: 2 }
        );
        assert_eq!(std::fs::read(d.path().join("root.json")).unwrap(), r.v2);
    }

    /// An older-numbered root must lead to the trusted one through signed rotations: the
    /// roots in between are fetched and verified; another repository's root never leads
    /// there, and neither does a chain with a step that does not verify.
    #[test]
    fn an_older_root_is_accepted_only_through_the_signed_chain() {
        let now = now();
        let (chain, other) = chains(now);
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("given.json");
        ensure_trust_bytes(d.path(), Some(&chain[2]), now).unwrap();
        let before = std::fs::read(d.path().join("root.json")).unwrap();
        let mut fetched = Vec::new();
        let mut fetch = |v: u64| {
            fetched.push(v);
            Ok(chain[v as usize - 1].clone())
        };
        std::fs::write(&file, &chain[0]).unwrap();
        assert_eq!(
            ensure_trust_fetching(d.path(), Some(&file), now, &mut fetch).unwrap(),
            TrustOutcome::RotatedPast { given: 1, trusted: 3 }
        );
        assert_eq!(fetched, [2], "only the roots in between are fetched");
        for (given, fetch_gives) in [(&other[0], &chain[1]), (&other[1], &chain[1]), (&chain[0], &other[1])] {
            std::fs::write(&file, given).unwrap();
            let mut fetch = |_: u64| Ok(fetch_gives.clone());
            match ensure_trust_fetching(d.path(), Some(&file), now, &mut fetch) {
                Err(e @ TrustError::RootNotInChain { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with(&format!("{}: refusing root v", file.display())), "{msg}");
                    assert!(msg.contains("nor linked to it by rotations the repository signed"), "{msg}");
                    assert!(msg.contains("version 2: ") || msg.contains("version 3: "), "{msg}");
                }
                other => panic!("expected RootNotInChain, got {other:?}"),
            }
            assert_eq!(std::fs::read(d.path().join("root.json")).unwrap(), before);
        }
        // Without a way to fetch the roots in between, v1 cannot be shown to lead to v3.
        std::fs::write(&file, &chain[0]).unwrap();
        assert!(matches!(ensure_trust(d.path(), Some(&file), now), Err(TrustError::RootNotInChain { .. })));
        assert_eq!(
            ensure_trust_bytes(d.path(), Some(&chain[1]), now).unwrap(),
            TrustOutcome::RotatedPast { given: 2, trusted: 3 }
        );
    }

    /// A newer root given is accepted only as a rotation the trusted root signs, step by
    /// step; nothing is written (the next update takes that chain).
    #[test]
    fn a_newer_root_is_accepted_only_as_a_rotation_the_trusted_one_signs() {
        let now = now();
        let (chain, other) = chains(now);
        let d = tempfile::tempdir().unwrap();
        ensure_trust_bytes(d.path(), Some(&chain[0]), now).unwrap();
        let before = std::fs::read(d.path().join("root.json")).unwrap();
        let mut fetched = Vec::new();
        let mut fetch = |v: u64| {
            fetched.push(v);
            Ok(chain[v as usize - 1].clone())
        };
        assert_eq!(
            ensure_trust_bytes_fetching(d.path(), "v3", &chain[2], now, &mut fetch).unwrap(),
            TrustOutcome::RotatedAhead { given: 3, trusted: 1 }
        );
        assert_eq!(fetched, [2], "only the roots in between are fetched");
        // The direct successor needs no fetch.
        assert_eq!(
            ensure_trust_bytes(d.path(), Some(&chain[1]), now).unwrap(),
            TrustOutcome::RotatedAhead { given: 2, trusted: 1 }
        );
        // Another repository's v2, and our v3 reached through another repository's v2.
        for (given, fetch_gives) in [(&other[1], &chain[1]), (&chain[2], &other[1])] {
            let mut fetch = |_: u64| Ok(fetch_gives.clone());
            match ensure_trust_bytes_fetching(d.path(), "given", given, now, &mut fetch) {
                Err(TrustError::RootNotInChain { reason, .. }) => {
                    assert!(reason.starts_with("version 2: "), "{reason}")
                }
                other => panic!("expected RootNotInChain, got {other:?}"),
            }
        }
        assert_eq!(std::fs::read(d.path().join("root.json")).unwrap(), before, "nothing is written");
    }

    #[test]
    fn a_different_root_is_refused_and_the_trusted_one_stays_byte_identical() {
        let r = roots();
        let d = tempfile::tempdir().unwrap();
        ensure_trust_bytes(d.path(), Some(&r.v1), now()).unwrap();
        let before = std::fs::read(d.path().join("root.json")).unwrap();
        // This repository's newer root, given before the updater has followed the rotation,
        // is checked and accepted but written by no one but the updater.
        assert_eq!(
            ensure_trust_bytes(d.path(), Some(&r.v2), now()).unwrap(),
            TrustOutcome::RotatedAhead { given: 2, trusted: 1 }
        );
        assert_eq!(std::fs::read(d.path().join("root.json")).unwrap(), before);
        // Another repository's v1 may not replace what is trusted.
        let given = &r.other;
        match ensure_trust_bytes(d.path(), Some(given), now()) {
            Err(e @ TrustError::RootDiffers { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("refusing to replace the trusted root"), "{msg}");
                assert!(msg.contains(&format!("the root given (v{})", version_of(given))), "{msg}");
                assert!(msg.contains("root.json (v1)"), "{msg}");
                assert!(msg.contains("only through rotations signed by the repository"), "{msg}");
                assert!(msg.contains(&format!("remove {}", d.path().display())), "{msg}");
            }
            other => panic!("expected RootDiffers, got {other:?}"),
        }
        assert_eq!(std::fs::read(d.path().join("root.json")).unwrap(), before);
    }

    #[test]
    fn a_root_that_does_not_verify_is_refused_first_use_or_not() {
        let r = roots();
        let mut tampered = r.v1.clone();
        let at = tampered.windows(9).position(|w| w == b"\"expires\"").unwrap();
        tampered[at + 13] ^= 1; // a digit of the expiry year: the signatures no longer match
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("given-root.json");
        for (bad, signatures_fail) in [(&tampered[..], true), (b"{not json", false)] {
            std::fs::write(&file, bad).unwrap();
            let dir = d.path().join("fresh");
            match ensure_trust(&dir, Some(&file), now()) {
                Err(TrustError::InvalidRoot { given, source }) => {
                    assert_eq!(given, file.display().to_string());
                    let threshold = matches!(source, packman_tuf::Error::ThresholdNotMet { .. });
                    assert_eq!(threshold, signatures_fail, "{source}");
                }
                other => panic!("expected InvalidRoot, got {other:?}"),
            }
            assert!(!dir.join("root.json").exists());
        }
        let dir = d.path().join("pinned");
        ensure_trust_bytes(&dir, Some(&r.v1), now()).unwrap();
        assert!(matches!(ensure_trust(&dir, Some(&file), now()), Err(TrustError::InvalidRoot { .. })));
        assert_eq!(std::fs::read(dir.join("root.json")).unwrap(), r.v1);
    }

    #[test]
    fn io_errors_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("no-such-root.json");
        match ensure_trust(&d.path().join("meta"), Some(&missing), now()) {
            Err(e @ TrustError::Io { .. }) => assert!(e.to_string().contains("no-such-root.json"), "{e}"),
            other => panic!("expected Io, got {other:?}"),
        }
        // A trusted root that is not a root.
        std::fs::write(d.path().join("root.json"), b"[]").unwrap();
        let r = roots();
        match ensure_trust_bytes(d.path(), Some(&r.v1), now()) {
            Err(TrustError::TrustedRootUnusable { path, .. }) => assert_eq!(path, d.path().join("root.json")),
            other => panic!("expected TrustedRootUnusable, got {other:?}"),
        }
    }
}
