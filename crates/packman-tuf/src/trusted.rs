//! [`TrustedSet`]: the TUF client workflow (specification 1.0.34, section 5) as a state
//! machine over bytes. The caller fetches; this type decides what to believe.
//!
//! Loading order, enforced by every method (modelled on python-tuf's TrustedMetadataSet):
//! 1. a trusted root, then any number of newer roots (5.3), each signed by the threshold of
//!    both the old and the new root role, with version exactly `trusted + 1`;
//! 2. timestamp (5.4): once loaded, no more root updates. Final root must not be expired.
//!    Refuses rollback of the timestamp version and of the snapshot version it names;
//! 3. snapshot (5.5): once loaded, no more timestamp updates. Must match the timestamp's
//!    length/hashes (unless loaded from the trusted local cache), its version must equal the
//!    one the timestamp names, and no role listed in the previous snapshot may vanish or
//!    roll back;
//! 4. targets and delegated targets (5.6, 5.7): length/hashes/version as the snapshot says,
//!    signed by the keys the delegator names. A role reached through a second delegator is
//!    verified against that delegator too.
//!
//! Expiry is checked against the time given at construction (the "update start time").
//! Methods that find the new metadata expired after verifying it still keep it, so that it
//! serves for rollback checks, and report [`Error::Expired`]; such metadata is never final.
//! The one exception is [`Expiry::Allow`], which the user asks for by name
//! (`--allow-expired`): then expired metadata is accepted and [`TrustedSet::expired`] names
//! every role it was accepted for, for the caller to report. Nothing else is relaxed:
//! signatures, versions, rollback and consistency are checked as always.

use std::collections::{BTreeMap, HashMap, HashSet};

use time::OffsetDateTime;

use crate::metadata::{
    Envelope, Hashes, Key, MetaFile, Role, Root, Signature, Snapshot, TargetFile, Targets, Timestamp, TopLevelRole,
};
use crate::Error;

/// Caps on what the search for a target may load. Defaults follow python-tuf.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most delegated roles visited while searching for one target.
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_delegations: 32 }
    }
}

/// Metadata whose signatures have been checked, with the canonical bytes they cover (kept so
/// a role can be re-verified against another delegator without fetching it again).
#[derive(Debug, Clone)]
pub struct Verified<T> {
    pub signed: T,
    pub signatures: Vec<Signature>,
    canonical: Vec<u8>,
}

impl<T: Role> Verified<T> {
    /// Parses and validates metadata bytes without checking signatures.
    fn parse(role: &str, bytes: &[u8]) -> Result<Self, Error> {
        // Large files (a PyPI-sized snapshot) are canonicalised on a second thread while this
        // one builds the typed value: the two passes are independent and each is milliseconds.
        const PARALLEL_ABOVE: usize = 128 * 1024;
        // Canonical up to whitespace (what python-tuf and packman write): a byte scan;
        // otherwise the full canonicaliser.
        let canonicalise = || match crate::canonical::signed_if_canonical(bytes) {
            Some(c) => Ok(c),
            None => crate::canonical::canonical_signed(bytes),
        };
        let (canonical, env) = if bytes.len() > PARALLEL_ABOVE {
            std::thread::scope(|s| {
                let c = s.spawn(canonicalise);
                let env = Self::parse_typed(role, bytes);
                let canonical = c.join().unwrap_or(Err(crate::canonical::SignedError::NoSigned));
                (canonical, env)
            })
        } else {
            (canonicalise(), Self::parse_typed(role, bytes))
        };
        let canonical = canonical.map_err(|e| Error::malformed(role, e))?;
        let env = env?;
        env.signed.validate(role)?;
        let mut seen = HashSet::new();
        for s in &env.signatures {
            if !seen.insert(s.keyid.as_str()) {
                return Err(Error::malformed(role, format_args!("more than one signature by keyid {}", s.keyid)));
            }
        }
        Ok(Verified { signed: env.signed, signatures: env.signatures, canonical })
    }

    fn parse_typed(role: &str, bytes: &[u8]) -> Result<Envelope<T>, Error> {
        serde_json::from_slice(bytes).map_err(|e| {
            // A file of another role fails the typed parse; say so plainly.
            match serde_json::from_slice::<TypePeek>(bytes) {
                Ok(p) if p.signed.type_ != T::TYPE => {
                    Error::WrongType { role: role.into(), expected: T::TYPE.into(), found: p.signed.type_ }
                }
                _ => Error::malformed(role, e),
            }
        })
    }

    /// Checks this role's signatures against `threshold` of `keyids` (see [`check_threshold`]).
    fn verify(&self, role: &str, keys: &BTreeMap<String, Key>, keyids: &[String], threshold: u64) -> Result<(), Error> {
        check_threshold(role, &self.canonical, &self.signatures, keys, keyids, threshold)
    }
}

/// How many distinct keys among `keyids` made a valid signature over `canonical`: the one
/// place a threshold is counted, for clients and publishers alike. Signatures by keys not
/// listed are ignored; a keyid whose key is missing or unusable counts for nothing; the same
/// key material listed under two keyids counts once (otherwise one key could meet a
/// threshold of two).
pub fn count_signers(
    canonical: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, Key>,
    keyids: &[String],
) -> usize {
    let mut counted: HashSet<(&str, &str)> = HashSet::new();
    for keyid in keyids {
        let Some(key) = keys.get(keyid) else { continue };
        if counted.contains(&(key.keytype.as_str(), key.keyval.public.as_str())) {
            continue;
        }
        if signatures.iter().any(|s| &s.keyid == keyid && key.verify(canonical, &s.sig).is_ok()) {
            counted.insert((key.keytype.as_str(), key.keyval.public.as_str()));
        }
    }
    counted.len()
}

/// [`count_signers`] against `threshold`, as an error naming `role` when it is not met.
pub fn check_threshold(
    role: &str,
    canonical: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, Key>,
    keyids: &[String],
    threshold: u64,
) -> Result<(), Error> {
    let valid = count_signers(canonical, signatures, keys, keyids);
    if (valid as u64) < threshold {
        return Err(Error::ThresholdNotMet { role: role.into(), valid, threshold });
    }
    Ok(())
}

fn verify_with_root<T: Role>(md: &Verified<T>, role: &str, root: &Root, keys_of: TopLevelRole) -> Result<(), Error> {
    let (keyids, threshold) =
        root.keys_for(keys_of).ok_or_else(|| Error::malformed("root", format_args!("no role {keys_of}")))?;
    md.verify(role, &root.keys, keyids, threshold)
}

#[derive(serde::Deserialize)]
struct TypePeek {
    signed: TypePeekSigned,
}

#[derive(serde::Deserialize)]
struct TypePeekSigned {
    #[serde(rename = "_type")]
    type_: String,
}

/// Checks `bytes` against the length and hashes a MetaFile or TargetFile declares (through
/// [`crate::target`], the one place hashes are checked), naming `role` in the error.
pub fn check_length_and_hashes(
    role: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&Hashes>,
) -> Result<(), Error> {
    crate::target::verify(bytes, length, hashes)
        .map_err(|m| Error::LengthOrHashMismatch { role: role.into(), reason: m.to_string() })
}

struct TargetsEntry {
    md: Verified<Targets>,
    /// Delegators whose keys this role's signatures have been checked against.
    verified_by: HashSet<String>,
}

/// Whether expired metadata is refused (the TUF rule, the default) or, at the user's
/// explicit request for one run, accepted and reported ([`TrustedSet::expired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    #[default]
    Enforce,
    Allow,
}

/// A role accepted although it had expired (only under [`Expiry::Allow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRole {
    pub role: String,
    pub version: u64,
    pub expires: String,
}

pub struct TrustedSet {
    now: OffsetDateTime,
    expiry: Expiry,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    targets: HashMap<String, TargetsEntry>,
}

impl TrustedSet {
    /// Starts from a root the caller trusts (from local storage or shipped with the
    /// application). It must carry its own threshold of signatures; expiry is not checked
    /// here (a newer root may follow).
    pub fn new(root: &[u8], now: OffsetDateTime) -> Result<Self, Error> {
        let md: Verified<Root> = Verified::parse("root", root)?;
        verify_with_root(&md, "root", &md.signed, TopLevelRole::Root)?;
        Ok(TrustedSet {
            now,
            expiry: Expiry::Enforce,
            root: md,
            timestamp: None,
            snapshot: None,
            targets: HashMap::new(),
        })
    }

    /// As [`TrustedSet::new`], with the expiry rule given.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    pub fn reference_time(&self) -> OffsetDateTime {
        self.now
    }

    /// The one expiry check: [`Error::Expired`] for `role` if `expires` has passed, unless
    /// expired metadata is allowed.
    fn check_expiry(&self, role: &str, expires: &crate::Expires) -> Result<(), Error> {
        if expires.is_expired(self.now) && self.expiry == Expiry::Enforce {
            return Err(Error::Expired { role: role.into(), expires: expires.to_string() });
        }
        Ok(())
    }

    /// The loaded roles that have expired at the reference time (root, timestamp, snapshot,
    /// then targets roles by name). Under [`Expiry::Enforce`] none of them is final; under
    /// [`Expiry::Allow`] they are what the caller must report.
    pub fn expired(&self) -> Vec<ExpiredRole> {
        let mut out = Vec::new();
        let mut add = |role: &str, version: u64, expires: &crate::Expires| {
            if expires.is_expired(self.now) {
                out.push(ExpiredRole { role: role.into(), version, expires: expires.to_string() });
            }
        };
        add("root", self.root.signed.version, &self.root.signed.expires);
        if let Some(t) = &self.timestamp {
            add("timestamp", t.signed.version, &t.signed.expires);
        }
        if let Some(s) = &self.snapshot {
            add("snapshot", s.signed.version, &s.signed.expires);
        }
        let mut roles: Vec<_> = self.targets.iter().collect();
        roles.sort_by(|a, b| a.0.cmp(b.0));
        for (role, e) in roles {
            add(role, e.md.signed.version, &e.md.signed.expires);
        }
        out
    }
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_ref()
    }
    /// A loaded targets role (top-level `targets` or delegated), whatever delegator it was
    /// verified through.
    pub fn targets(&self, role: &str) -> Option<&Verified<Targets>> {
        self.targets.get(role).map(|e| &e.md)
    }

    /// Spec 5.3: one root rotation step.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&Verified<Root>, Error> {
        if self.timestamp.is_some() {
            return Err(Error::Order("root cannot change after timestamp is loaded".into()));
        }
        let new: Verified<Root> = Verified::parse("root", bytes)?;
        verify_with_root(&new, "root", &self.root.signed, TopLevelRole::Root)?;
        let expected = self.root.signed.version + 1;
        if new.signed.version != expected {
            return Err(Error::BadVersion { role: "root".into(), expected, offered: new.signed.version });
        }
        verify_with_root(&new, "root", &new.signed, TopLevelRole::Root)?;
        self.root = new;
        Ok(&self.root)
    }

    /// Spec 5.4. Returns [`Error::EqualVersion`] when the repository offers the timestamp
    /// already trusted: the caller keeps what it has.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<&Verified<Timestamp>, Error> {
        if self.snapshot.is_some() {
            return Err(Error::Order("timestamp cannot change after snapshot is loaded".into()));
        }
        self.check_expiry("root", &self.root.signed.expires)?;
        let new: Verified<Timestamp> = Verified::parse("timestamp", bytes)?;
        verify_with_root(&new, "timestamp", &self.root.signed, TopLevelRole::Timestamp)?;
        // packman extension: a timestamp naming a newer root than the one we could fetch
        // means a root rotation is being withheld from us.
        if let Some(named) = new.signed.extra.get(crate::metadata::ROOT_VERSION_FIELD).and_then(|v| v.as_u64()) {
            if named > self.root.signed.version {
                return Err(Error::HiddenRoot { named, trusted: self.root.signed.version });
            }
        }
        if let Some(old) = &self.timestamp {
            let (o, n) = (old.signed.version, new.signed.version);
            if n < o {
                return Err(Error::Rollback { role: "timestamp".into(), trusted: o, offered: n });
            }
            if n == o {
                return Err(Error::EqualVersion { role: "timestamp".into(), version: n });
            }
            let (os, ns) = (old.signed.snapshot_meta().version, new.signed.snapshot_meta().version);
            if ns < os {
                return Err(Error::Rollback { role: "snapshot".into(), trusted: os, offered: ns });
            }
        }
        // Kept even if expired: it still guards against rollback (see module docs).
        self.timestamp = Some(new);
        self.check_final_timestamp()?;
        Ok(self.timestamp.as_ref().expect("just set"))
    }

    /// Whether the loaded timestamp may be final (spec 5.4.4: not expired): also for a
    /// caller that keeps the trusted timestamp because the repository offers the same one.
    pub fn check_final_timestamp(&self) -> Result<(), Error> {
        let ts = self.timestamp.as_ref().ok_or_else(|| Error::Order("timestamp not loaded".into()))?;
        self.check_expiry("timestamp", &ts.signed.expires)
    }

    /// Spec 5.5. `from_trusted_cache` skips the length/hash check against the timestamp, for
    /// a snapshot read back from local storage (it was checked when it was fetched).
    pub fn update_snapshot(&mut self, bytes: &[u8], from_trusted_cache: bool) -> Result<&Verified<Snapshot>, Error> {
        if self.timestamp.is_none() {
            return Err(Error::Order("snapshot needs a timestamp first".into()));
        }
        if !self.targets.is_empty() {
            return Err(Error::Order("snapshot cannot change after targets are loaded".into()));
        }
        self.check_final_timestamp()?;
        let meta = self.timestamp.as_ref().expect("checked").signed.snapshot_meta();
        if !from_trusted_cache {
            check_length_and_hashes("snapshot", bytes, meta.length, meta.hashes.as_ref())?;
        }
        let new: Verified<Snapshot> = Verified::parse("snapshot", bytes)?;
        verify_with_root(&new, "snapshot", &self.root.signed, TopLevelRole::Snapshot)?;
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in old.signed.meta.iter() {
                let Some(new_meta) = new.signed.meta.get(name) else {
                    return Err(Error::Inconsistent {
                        role: "snapshot".into(),
                        reason: format!("{name} was listed by the trusted snapshot but is missing from the new one"),
                    });
                };
                if new_meta.version < old_meta.version {
                    return Err(Error::Rollback {
                        role: name.trim_end_matches(".json").into(),
                        trusted: old_meta.version,
                        offered: new_meta.version,
                    });
                }
            }
        }
        // Kept even if it turns out not to be final: it guards the next one against rollback.
        self.snapshot = Some(new);
        self.check_final_snapshot()?;
        Ok(self.snapshot.as_ref().expect("just set"))
    }

    fn check_final_snapshot(&self) -> Result<(), Error> {
        let snap = self.snapshot.as_ref().ok_or_else(|| Error::Order("snapshot not loaded".into()))?;
        self.check_expiry("snapshot", &snap.signed.expires)?;
        let want = self.timestamp.as_ref().expect("snapshot implies timestamp").signed.snapshot_meta().version;
        if snap.signed.version != want {
            return Err(Error::Inconsistent {
                role: "snapshot".into(),
                reason: format!("version {} but the timestamp names version {}", snap.signed.version, want),
            });
        }
        Ok(())
    }

    /// The snapshot's entry for a targets role.
    pub fn meta_for(&self, role: &str) -> Option<MetaFile> {
        self.snapshot.as_ref()?.signed.meta.get(&format!("{role}.json"))
    }

    /// Spec 5.6 / 5.7: loads top-level targets (`delegator` = "root") or a delegated role.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<&Verified<Targets>, Error> {
        if self.snapshot.is_none() {
            return Err(Error::Order("targets need a snapshot first".into()));
        }
        self.check_final_snapshot()?;
        let meta = self.meta_for(role).ok_or_else(|| Error::Inconsistent {
            role: role.into(),
            reason: format!("snapshot does not list {role}.json"),
        })?;
        check_length_and_hashes(role, bytes, meta.length, meta.hashes.as_ref())?;
        let new: Verified<Targets> = Verified::parse(role, bytes)?;
        self.verify_delegation(&new, role, delegator)?;
        if new.signed.version != meta.version {
            return Err(Error::BadVersion { role: role.into(), expected: meta.version, offered: new.signed.version });
        }
        self.check_expiry(role, &new.signed.expires)?;
        let entry = TargetsEntry { md: new, verified_by: HashSet::from([delegator.to_string()]) };
        self.targets.insert(role.to_string(), entry);
        Ok(&self.targets[role].md)
    }

    fn verify_delegation(&self, md: &Verified<Targets>, role: &str, delegator: &str) -> Result<(), Error> {
        if delegator == "root" {
            if role != "targets" {
                return Err(Error::NotDelegated { role: role.into(), delegator: delegator.into() });
            }
            return verify_with_root(md, role, &self.root.signed, TopLevelRole::Targets);
        }
        let parent = self
            .targets
            .get(delegator)
            .ok_or_else(|| Error::Order(format!("delegator {delegator} must be loaded before {role}")))?;
        let (keyids, threshold) = parent
            .md
            .signed
            .delegated_role_keys(role)
            .ok_or_else(|| Error::NotDelegated { role: role.into(), delegator: delegator.into() })?;
        let keys = parent.md.signed.delegation_keys().expect("delegated role implies delegations");
        md.verify(role, keys, keyids, threshold)
    }

    /// Whether `role` is loaded *and* verified against `delegator`'s keys.
    pub fn is_trusted_via(&self, role: &str, delegator: &str) -> bool {
        self.targets.get(role).is_some_and(|e| e.verified_by.contains(delegator))
    }

    /// A role loaded through one delegator and now reached through another: its signatures
    /// must also satisfy the new delegator (a role gains no authority from an earlier path).
    pub fn verify_loaded_via(&mut self, role: &str, delegator: &str) -> Result<(), Error> {
        let entry = self.targets.get(role).ok_or_else(|| Error::Order(format!("{role} is not loaded")))?;
        if entry.verified_by.contains(delegator) {
            return Ok(());
        }
        self.verify_delegation(&entry.md, role, delegator)?;
        self.targets.get_mut(role).expect("present").verified_by.insert(delegator.to_string());
        Ok(())
    }
}

/// What a [`TargetSearch`] needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchStep {
    /// Load `role` as delegated by `delegator` (or, if already loaded, verify it against
    /// `delegator` with [`TrustedSet::verify_loaded_via`]), then call `step` again.
    Load {
        role: String,
        delegator: String,
    },
    Found(TargetFile),
    NotFound,
}

/// Spec 5.7.3: pre-order depth-first search of the delegation graph for one target path,
/// with a visited set, a cap on roles visited and terminating delegations. I/O-free: the
/// caller loads what [`SearchStep::Load`] asks for.
pub struct TargetSearch {
    target: String,
    stack: Vec<(String, String)>,
    visited: HashSet<String>,
    remaining: usize,
}

impl TargetSearch {
    pub fn new(target: &str, limits: Limits) -> Self {
        TargetSearch {
            target: target.to_string(),
            stack: vec![("targets".into(), "root".into())],
            visited: HashSet::new(),
            remaining: limits.max_delegations,
        }
    }

    pub fn step(&mut self, set: &TrustedSet) -> SearchStep {
        loop {
            let Some((role, delegator)) = self.stack.last().cloned() else {
                return SearchStep::NotFound;
            };
            if self.visited.contains(&role) {
                self.stack.pop();
                continue;
            }
            if self.remaining == 0 {
                return SearchStep::NotFound;
            }
            if !set.is_trusted_via(&role, &delegator) {
                return SearchStep::Load { role, delegator };
            }
            self.stack.pop();
            let md = set.targets(&role).expect("trusted implies loaded");
            if let Some(t) = md.signed.targets.get(&self.target) {
                return SearchStep::Found(t.clone());
            }
            self.visited.insert(role.clone());
            self.remaining -= 1;
            if let Some(d) = &md.signed.delegations {
                let mut children = Vec::new();
                for (child, terminating) in d.roles_for_target(&self.target) {
                    children.push((child, role.clone()));
                    if terminating {
                        // Nothing after a terminating delegation is consulted, at any level.
                        self.stack.clear();
                        break;
                    }
                }
                self.stack.extend(children.into_iter().rev());
            }
        }
    }
}

#[cfg(test)]
mod threshold_tests {
    use super::*;
    use crate::crypto::Signer;

    /// One key listed under two keyids (TAP 12 keyids are opaque, so a root may do this)
    /// counts once, whichever keyid its signature names and however many copies there are.
    #[test]
    fn one_key_under_two_keyids_counts_once() {
        let (a, _) = Signer::generate_ed25519().unwrap();
        let (b, _) = Signer::generate_ed25519().unwrap();
        let msg = b"canonical bytes";
        let sig_a = a.sign(msg).unwrap();
        let mut keys = BTreeMap::new();
        keys.insert("a1".to_string(), a.public_key().clone());
        keys.insert("a2".to_string(), a.public_key().clone());
        keys.insert("b".to_string(), b.public_key().clone());
        let as_id = |id: &str| Signature { keyid: id.into(), sig: sig_a.sig.clone() };
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = vec![as_id("a1"), as_id("a2")];
        assert_eq!(count_signers(msg, &both, &keys, &ids(&["a1", "a2"])), 1);
        assert_eq!(
            check_threshold("root", msg, &both, &keys, &ids(&["a1", "a2"]), 2),
            Err(Error::ThresholdNotMet { role: "root".into(), valid: 1, threshold: 2 })
        );
        // A second, distinct key meets it.
        let with_b = vec![as_id("a1"), b.sign(msg).unwrap()];
        let b_id = with_b[1].keyid.clone();
        keys.insert(b_id.clone(), b.public_key().clone());
        check_threshold("root", msg, &with_b, &keys, &ids(&["a1", &b_id]), 2).unwrap();
        // Signatures by keys the role does not list, or over other bytes, count for nothing.
        assert_eq!(count_signers(msg, &with_b, &keys, &ids(&["a2"])), 0);
        assert_eq!(count_signers(b"other bytes", &both, &keys, &ids(&["a1", "a2"])), 0);
    }
}
