//! One test per security rule of the trust core that no other test fed bad input to: each
//! offers metadata that breaks exactly that rule, validly signed wherever a signature could
//! matter (so that only the rule stands between the bytes and acceptance), and asserts the
//! specific refusal and that the trusted state did not change. Each was checked by deleting
//! its rule and seeing the test fail (docs/MUTATION.md).

mod common;

use common::{now, search, Repo};
use packman_repo::{sign_metadata, RepoBuilder};
use packman_tuf::target::describe_meta;
use packman_tuf::trusted::SearchStep;
use packman_tuf::{DelegatedRole, Error, Limits, MetaFile, MetaMap, Role, Snapshot, Targets, Timestamp, TrustedSet};

/// Everything a [`TrustedSet`] trusts for the named targets roles, as bytes.
fn state(set: &TrustedSet, roles: &[&str]) -> Vec<Option<Vec<u8>>> {
    fn bytes<T: serde::Serialize>(v: Option<&packman_tuf::Verified<T>>) -> Option<Vec<u8>> {
        v.map(|v| serde_json::to_vec(&(&v.signed, &v.signatures)).unwrap())
    }
    let mut out = vec![bytes(Some(set.root())), bytes(set.timestamp()), bytes(set.snapshot())];
    out.extend(roles.iter().map(|r| bytes(set.targets(r))));
    out
}

fn meta_without(meta: &MetaMap, name: &str) -> MetaMap {
    meta.iter().filter(|(n, _)| *n != name).map(|(n, m)| (n.to_string(), m)).collect()
}

// ---------------------------------------------------------------------------------------
// Snapshot against the trusted snapshot and the timestamp
// ---------------------------------------------------------------------------------------

/// Spec 5.5.5: every role the trusted snapshot listed must still be listed by the new one
/// (else a repository could make a delegated role, and its targets, vanish).
#[test]
fn a_snapshot_that_drops_a_role_the_trusted_snapshot_listed_is_refused() {
    let r = Repo::new(|b| b.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap());
    let old = r.read("1.snapshot.json");
    let mut dropped = r.b.snapshot.clone();
    dropped.version += 1;
    dropped.meta = meta_without(&r.b.snapshot.meta, "a.json");
    assert!(dropped.meta.contains_key("targets.json"));
    let (new, ts) = r.signed_snapshot_and_timestamp(&dropped);

    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&ts).unwrap();
    // The cached snapshot is trusted for the comparison (and not final: the timestamp names v2).
    assert!(matches!(set.update_snapshot(&old, true), Err(Error::Inconsistent { .. })));
    let before = state(&set, &[]);
    match set.update_snapshot(&new, false) {
        Err(Error::Inconsistent { role, reason }) => {
            assert_eq!(role, "snapshot");
            assert!(reason.contains("a.json") && reason.contains("missing"), "{reason}");
        }
        other => panic!("expected Inconsistent, got {:?}", other.map(|s| s.signed.version)),
    }
    assert_eq!(state(&set, &[]), before, "trusted state changed");

    // The same snapshot keeping a.json is accepted: it was the missing role that was refused.
    let mut kept = dropped.clone();
    kept.meta = r.b.snapshot.meta.clone();
    let (new, ts) = r.signed_snapshot_and_timestamp(&kept);
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&ts).unwrap();
    let _ = set.update_snapshot(&old, true);
    set.update_snapshot(&new, false).unwrap();
}

/// Spec 5.5.5: no role listed by the trusted snapshot may go back a version.
#[test]
fn a_snapshot_that_lists_a_role_at_a_lower_version_is_rollback() {
    let r = Repo::new(|b| b.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap());
    let mut rolled = r.b.snapshot.clone();
    rolled.version += 1;
    // Trusted (from the cache): a snapshot listing every role one version higher than the
    // offered one does.
    let mut newer = r.b.snapshot.clone();
    for (name, m) in r.b.snapshot.meta.iter() {
        newer.meta.insert(name.to_string(), MetaFile::new(m.version + 1));
    }
    let old = sign_metadata(&newer, &[r.signer("snapshot")]).unwrap();
    let (new, ts) = r.signed_snapshot_and_timestamp(&rolled);
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&ts).unwrap();
    let _ = set.update_snapshot(&old, true);
    let before = state(&set, &[]);
    match set.update_snapshot(&new, false) {
        Err(Error::Rollback { role, trusted: 2, offered: 1 }) => assert!(role == "a" || role == "targets", "{role}"),
        other => panic!("expected Rollback, got {:?}", other.map(|s| s.signed.version)),
    }
    assert_eq!(state(&set, &[]), before, "trusted state changed");
}

/// Spec 5.5.4 when the timestamp gives no length or hashes for the snapshot: the version it
/// names is all that ties the two together.
#[test]
fn a_snapshot_of_another_version_than_the_timestamp_names_is_refused_without_hashes() {
    let r = Repo::new(|_| {});
    let snapshot = r.read("1.snapshot.json");
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&r.timestamp_naming(MetaFile::new(2))).unwrap();
    match set.update_snapshot(&snapshot, false) {
        Err(Error::Inconsistent { role, reason }) => {
            assert_eq!(role, "snapshot");
            assert!(reason.contains("version 1") && reason.contains("names version 2"), "{reason}");
        }
        other => panic!("expected Inconsistent, got {:?}", other.map(|s| s.signed.version)),
    }
    // Kept only to guard the next snapshot against rollback: never final, so nothing is
    // loaded on top of it.
    let before = state(&set, &["targets"]);
    let targets = r.read("1.targets.json");
    assert!(matches!(
        set.update_delegated_targets(&targets, "targets", "root"),
        Err(Error::Inconsistent { ref role, .. }) if role == "snapshot"
    ));
    assert_eq!(state(&set, &["targets"]), before, "trusted state changed");

    // Named as version 1, the same bytes are accepted.
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&r.timestamp_naming(MetaFile::new(1))).unwrap();
    set.update_snapshot(&snapshot, false).unwrap();
    set.update_delegated_targets(&targets, "targets", "root").unwrap();
}

// ---------------------------------------------------------------------------------------
// Targets against the snapshot's length and hashes
// ---------------------------------------------------------------------------------------

/// Spec 5.6.2: when the snapshot gives a length and/or hashes for targets.json, other bytes
/// are refused even though they are validly signed at the version the snapshot names.
#[test]
fn targets_bytes_that_do_not_match_the_snapshot_length_or_hashes_are_refused() {
    let r = Repo::new(|_| {});
    let genuine = r.read("1.targets.json");
    let mut other = r.b.targets.clone();
    other.targets.insert("evil".into(), packman_tuf::target::describe(b"evil"));
    let forged = sign_metadata(&other, &[r.signer("targets")]).unwrap();
    // Same length, other bytes: only a hash can tell.
    let mut same_length = genuine.clone();
    let at = same_length.windows(5).position(|w| w == b"a.txt").unwrap();
    same_length[at] = b'b';

    let full = describe_meta(1, [genuine.as_slice()]);
    let mut hashes_only = full.clone();
    hashes_only.length = None;
    let mut length_only = full.clone();
    length_only.hashes = None;
    for (what, meta, bad) in [
        ("length and hashes", &full, &forged),
        ("hashes only", &hashes_only, &forged),
        ("hashes only, same length", &hashes_only, &same_length),
        ("length only", &length_only, &forged),
    ] {
        let mut snapshot = r.b.snapshot.clone();
        snapshot.version += 1;
        snapshot.meta.insert("targets.json".into(), meta.clone());
        let (snap, ts) = r.signed_snapshot_and_timestamp(&snapshot);
        let mut set = TrustedSet::new(&r.root(), now()).unwrap();
        set.update_timestamp(&ts).unwrap();
        set.update_snapshot(&snap, false).unwrap();
        let before = state(&set, &["targets"]);
        match set.update_delegated_targets(bad, "targets", "root") {
            Err(Error::LengthOrHashMismatch { role, .. }) => assert_eq!(role, "targets", "{what}"),
            other => panic!("{what}: expected LengthOrHashMismatch, got {:?}", other.map(|t| t.signed.version)),
        }
        assert_eq!(state(&set, &["targets"]), before, "{what}: trusted state changed");
        set.update_delegated_targets(&genuine, "targets", "root").unwrap();
    }
}

/// Spec 5.5.2 likewise for the snapshot against the timestamp's length and hashes.
#[test]
fn snapshot_bytes_that_do_not_match_the_timestamp_hashes_are_refused() {
    let r = Repo::new(|_| {});
    let genuine = r.read("1.snapshot.json");
    let mut other = r.b.snapshot.clone();
    other.meta.insert("extra.json".into(), MetaFile::new(1));
    let forged = sign_metadata(&other, &[r.signer("snapshot")]).unwrap();
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&r.read("timestamp.json")).unwrap();
    let before = state(&set, &[]);
    assert!(matches!(
        set.update_snapshot(&forged, false),
        Err(Error::LengthOrHashMismatch { ref role, .. }) if role == "snapshot"
    ));
    assert_eq!(state(&set, &[]), before, "trusted state changed");
    set.update_snapshot(&genuine, false).unwrap();
}

// ---------------------------------------------------------------------------------------
// Delegation
// ---------------------------------------------------------------------------------------

/// Spec 5.6.3 / 5.7: a role is verified only with the keys of a delegator that delegates it.
/// "evil" is listed by the snapshot and signed with the key "a" is delegated with, but no
/// role delegates it; "a" is not delegated by root.
#[test]
fn a_role_not_delegated_by_its_delegator_is_refused() {
    let r = Repo::new(|b| {
        b.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap();
        b.add_delegation("targets", "evil", vec!["*".into()], false).unwrap();
        b.add_target_to("evil", "x/evil", b"evil").unwrap();
        let d = b.targets_mut("targets").unwrap().delegations.as_mut().unwrap();
        d.roles.as_mut().unwrap().retain(|r| r.name != "evil");
    });
    assert!(r.b.snapshot.meta.contains_key("evil.json"));
    // Signed with a's key, which "targets" trusts for "a" only.
    let evil = sign_metadata(&r.b.delegated["evil"], &[r.signer("a")]).unwrap();
    let a = r.read("1.a.json");
    let a_by_targets_key = sign_metadata(&r.b.delegated["a"], &[r.signer("targets")]).unwrap();

    let mut set = r.to_targets();
    let roles = ["targets", "a", "evil"];
    let before = state(&set, &roles);
    for (what, bytes, role, delegator) in [
        ("evil by targets", &evil, "evil", "targets"),
        ("a by root, signed with the top-level targets key", &a_by_targets_key, "a", "root"),
    ] {
        match set.update_delegated_targets(bytes, role, delegator) {
            Err(Error::NotDelegated { role: r, delegator: d }) => {
                assert_eq!((r.as_str(), d.as_str()), (role, delegator))
            }
            other => panic!("{what}: expected NotDelegated, got {:?}", other.map(|t| t.signed.version)),
        }
        assert_eq!(state(&set, &roles), before, "{what}: trusted state changed");
    }
    // "a" delegates nothing, so it cannot vouch for "evil" either.
    set.update_delegated_targets(&a, "a", "targets").unwrap();
    let before = state(&set, &roles);
    assert!(matches!(
        set.update_delegated_targets(&evil, "evil", "a"),
        Err(Error::NotDelegated { ref role, ref delegator }) if role == "evil" && delegator == "a"
    ));
    assert_eq!(state(&set, &roles), before, "trusted state changed");
}

fn sha256_hex(s: &str) -> String {
    packman_tuf::target::describe(s.as_bytes()).hashes.get("sha256").unwrap().to_string()
}

/// Spec 5.7.3 / 5.6.7.2: a role is consulted only for paths it is delegated (by `paths` or
/// `path_hash_prefixes`); what it lists outside them is never found, and the search does not
/// even load it for such a path.
#[test]
fn a_target_outside_a_roles_delegated_paths_is_not_found_there() {
    for by_hash in [false, true] {
        let r = Repo::new(|b| {
            b.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap();
            if by_hash {
                let role =
                    &mut b.targets_mut("targets").unwrap().delegations.as_mut().unwrap().roles.as_mut().unwrap()[0];
                role.paths = None;
                role.path_hash_prefixes = Some(vec!["ffff".into(), sha256_hex("x/ok")[..6].to_string()]);
            }
            b.add_target_to("a", "x/ok", b"ok").unwrap();
            b.add_target_to("a", "y/evil", b"evil").unwrap();
        });
        assert!(!sha256_hex("y/evil").starts_with(&sha256_hex("x/ok")[..6]));
        let mut set = r.to_targets();
        let (step, asked) = search(&mut set, &r, "y/evil", Limits::default().max_delegations);
        assert_eq!(step, SearchStep::NotFound, "by_hash {by_hash}");
        assert!(asked.is_empty(), "by_hash {by_hash}: loaded {asked:?} for a path none is delegated");
        let (step, asked) = search(&mut set, &r, "x/ok", Limits::default().max_delegations);
        assert!(matches!(step, SearchStep::Found(ref t) if t.length == 2), "by_hash {by_hash}: {step:?}");
        assert_eq!(asked, ["a"]);
        // Directly: the delegation names "a" for x/ok only.
        let d = set.targets("targets").unwrap().signed.delegations.clone().unwrap();
        assert_eq!(d.roles_for_target("x/ok"), [("a".to_string(), false)]);
        assert!(d.roles_for_target("y/evil").is_empty());
    }
}

/// TAP 15: a target is looked up only in the one bin its hash falls in; listed in another
/// bin, it is not found.
#[test]
fn a_target_listed_in_the_wrong_succinct_bin_is_not_found() {
    let path = "pkg/evil";
    let r = Repo::new(|b| {
        *b = RepoBuilder::new(now()).unwrap().with_succinct_bins(2).unwrap();
        let right = b.role_for(path);
        let wrong = if right == "bins-0" { "bins-1" } else { "bins-0" };
        b.add_target_to(wrong, path, b"evil").unwrap();
    });
    let right = r.b.role_for(path);
    let mut set = r.to_targets();
    let (step, asked) = search(&mut set, &r, path, Limits::default().max_delegations);
    assert_eq!(step, SearchStep::NotFound);
    assert_eq!(asked, [right]);
    let d = set.targets("targets").unwrap().signed.delegations.clone().unwrap();
    assert_eq!(d.roles_for_target(path), [(r.b.role_for(path), true)]);
    // A name outside the bins is not delegated.
    for name in ["bins-4", "bins-00", "bins", "other-0"] {
        assert_eq!(d.role_keys(name), None, "{name}");
    }
    assert!(d.role_keys("bins-3").is_some());
}

// ---------------------------------------------------------------------------------------
// Metadata validation
// ---------------------------------------------------------------------------------------

/// Where in the loading order bad metadata is offered.
enum At {
    Root,
    NewRoot,
    Timestamp,
    Snapshot,
    Targets,
}

/// Offers `bytes` at `at` on top of the published repository and returns the refusal,
/// checking that the trusted state did not change.
fn offer(what: &str, r: &Repo, at: &At, bytes: &[u8]) -> Error {
    let mut set = match at {
        At::Root => return TrustedSet::new(bytes, now()).err().unwrap_or_else(|| panic!("{what}: accepted")),
        At::NewRoot | At::Timestamp => TrustedSet::new(&r.root(), now()).unwrap(),
        At::Snapshot => {
            let mut set = TrustedSet::new(&r.root(), now()).unwrap();
            set.update_timestamp(&r.read("timestamp.json")).unwrap();
            set
        }
        At::Targets => r.to_snapshot(),
    };
    let before = state(&set, &["targets"]);
    let err = match at {
        At::Root => unreachable!(),
        At::NewRoot => set.update_root(bytes).map(drop),
        At::Timestamp => set.update_timestamp(bytes).map(drop),
        // From the trusted cache, so that the length/hash check does not come first.
        At::Snapshot => set.update_snapshot(bytes, true).map(drop),
        At::Targets => set.update_delegated_targets(bytes, "targets", "root").map(drop),
    }
    .err()
    .unwrap_or_else(|| panic!("{what}: accepted"));
    assert_eq!(state(&set, &["targets"]), before, "{what}: trusted state changed");
    err
}

fn signed<T: Role>(r: &Repo, role: &str, v: &T) -> Vec<u8> {
    sign_metadata(v, &[r.signer(role)]).unwrap()
}

/// Every rule `validate` holds, each broken on its own in otherwise valid, validly signed
/// metadata: refused as malformed, naming the role and the rule.
#[test]
fn metadata_breaking_a_validation_rule_is_refused() {
    let r = Repo::new(|b| b.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap());
    let root = |f: &dyn Fn(&mut packman_tuf::Root)| {
        let mut v = r.b.root.clone();
        f(&mut v);
        signed(&r, "root", &v)
    };
    let new_root = |f: &dyn Fn(&mut packman_tuf::Root)| {
        let mut v = r.b.root.clone();
        v.version = 2;
        f(&mut v);
        signed(&r, "root", &v)
    };
    let timestamp = |f: &dyn Fn(&mut Timestamp)| {
        let mut v = r.b.timestamp.clone();
        v.version += 1;
        f(&mut v);
        signed(&r, "timestamp", &v)
    };
    let snapshot = |f: &dyn Fn(&mut Snapshot)| {
        let mut v = r.b.snapshot.clone();
        f(&mut v);
        signed(&r, "snapshot", &v)
    };
    let targets = |f: &dyn Fn(&mut Targets)| {
        let mut v = r.b.targets.clone();
        f(&mut v);
        signed(&r, "targets", &v)
    };
    let delegated = |f: &dyn Fn(&mut DelegatedRole)| {
        targets(&|t| f(&mut t.delegations.as_mut().unwrap().roles.as_mut().unwrap()[0]))
    };
    let succinct = |f: &dyn Fn(&mut packman_tuf::SuccinctRoles)| {
        targets(&|t| {
            let d = t.delegations.as_mut().unwrap();
            let mut s = packman_tuf::SuccinctRoles {
                bit_length: 4,
                keyids: d.roles.as_ref().unwrap()[0].keyids.clone(),
                name_prefix: "bins".into(),
                threshold: 1,
                extra: Default::default(),
            };
            f(&mut s);
            d.roles = None;
            d.succinct_roles = Some(s);
        })
    };
    let ts_id = r.signer("timestamp").keyid().to_string();
    let mut hashes_empty = MetaFile::new(1);
    hashes_empty.hashes = Some(packman_tuf::Hashes(vec![]));

    let cases: Vec<(&str, At, Vec<u8>, &str)> = vec![
        // Thresholds: 0 would let a role be met by no signature at all.
        (
            "root: timestamp threshold 0",
            At::Root,
            root(&|v| v.roles.get_mut("timestamp").unwrap().threshold = 0),
            "timestamp: threshold must be at least 1",
        ),
        (
            "new root: root threshold 0",
            At::NewRoot,
            new_root(&|v| v.roles.get_mut("root").unwrap().threshold = 0),
            "root: threshold must be at least 1",
        ),
        ("delegated role threshold 0", At::Targets, delegated(&|d| d.threshold = 0), "a: threshold must be at least 1"),
        (
            "succinct threshold 0",
            At::Targets,
            succinct(&|s| s.threshold = 0),
            "succinct_roles: threshold must be at least 1",
        ),
        // Keyids listed twice.
        (
            "root: duplicate keyids",
            At::Root,
            root(&|v| v.roles.get_mut("timestamp").unwrap().keyids.push(ts_id.clone())),
            "timestamp: keyids are not unique",
        ),
        (
            "delegated role: duplicate keyids",
            At::Targets,
            delegated(&|d| d.keyids.push(d.keyids[0].clone())),
            "a: keyids are not unique",
        ),
        (
            "succinct: duplicate keyids",
            At::Targets,
            succinct(&|s| s.keyids.push(s.keyids[0].clone())),
            "succinct_roles: keyids are not unique",
        ),
        // Root's roles.
        (
            "root without a snapshot role",
            At::Root,
            root(&|v| drop(v.roles.remove("snapshot"))),
            "does not define role \"snapshot\"",
        ),
        (
            "root with a fifth role",
            At::Root,
            root(&|v| drop(v.roles.insert("mirrors".into(), v.roles["timestamp"].clone()))),
            "other than the four",
        ),
        // Common fields.
        ("root version 0", At::Root, root(&|v| v.version = 0), "version must be at least 1"),
        ("timestamp version 0", At::Timestamp, timestamp(&|v| v.version = 0), "version must be at least 1"),
        (
            "spec_version 2.0.0",
            At::Timestamp,
            timestamp(&|v| v.spec_version = "2.0.0".into()),
            "unsupported spec_version",
        ),
        ("spec_version 1", At::Timestamp, timestamp(&|v| v.spec_version = "1".into()), "is not X.Y.Z"),
        ("spec_version 1.0.x", At::Timestamp, timestamp(&|v| v.spec_version = "1.0.x".into()), "is not X.Y.Z"),
        ("spec_version 1..0", At::Timestamp, timestamp(&|v| v.spec_version = "1..0".into()), "is not X.Y.Z"),
        ("spec_version 1.0.0.0", At::Timestamp, timestamp(&|v| v.spec_version = "1.0.0.0".into()), "is not X.Y.Z"),
        // Meta entries.
        (
            "timestamp without snapshot.json",
            At::Timestamp,
            timestamp(&|v| v.meta = meta_without(&v.meta, "snapshot.json")),
            "no \"snapshot.json\"",
        ),
        (
            "timestamp: snapshot version 0",
            At::Timestamp,
            timestamp(&|v| drop(v.meta.insert("snapshot.json".into(), MetaFile::new(0)))),
            "version must be at least 1",
        ),
        (
            "timestamp: snapshot hashes empty",
            At::Timestamp,
            timestamp(&|v| drop(v.meta.insert("snapshot.json".into(), hashes_empty.clone()))),
            "empty hashes",
        ),
        (
            "snapshot: a role at version 0",
            At::Snapshot,
            snapshot(&|v| drop(v.meta.insert("a.json".into(), MetaFile::new(0)))),
            "meta \"a.json\": version must be at least 1",
        ),
        (
            "snapshot: empty hashes",
            At::Snapshot,
            snapshot(&|v| drop(v.meta.insert("a.json".into(), hashes_empty.clone()))),
            "meta \"a.json\": empty hashes",
        ),
        // Targets and delegations.
        (
            "target without hashes",
            At::Targets,
            targets(&|v| v.targets.get_mut("a.txt").unwrap().hashes = Default::default()),
            "target \"a.txt\" has no hashes",
        ),
        (
            "delegations with neither roles nor succinct_roles",
            At::Targets,
            targets(&|v| v.delegations.as_mut().unwrap().roles = None),
            "exactly one of roles and succinct_roles",
        ),
        (
            "delegations with both",
            At::Targets,
            targets(&|v| {
                let d = v.delegations.as_mut().unwrap();
                let keyids = d.roles.as_ref().unwrap()[0].keyids.clone();
                d.succinct_roles = Some(packman_tuf::SuccinctRoles {
                    bit_length: 1,
                    keyids,
                    name_prefix: "bins".into(),
                    threshold: 1,
                    extra: Default::default(),
                });
            }),
            "exactly one of roles and succinct_roles",
        ),
        (
            "delegated role named snapshot",
            At::Targets,
            delegated(&|d| d.name = "snapshot".into()),
            "top-level name \"snapshot\"",
        ),
        (
            "delegated role twice",
            At::Targets,
            targets(&|v| {
                let roles = v.delegations.as_mut().unwrap().roles.as_mut().unwrap();
                roles.push(roles[0].clone());
            }),
            "\"a\" appears twice",
        ),
        (
            "delegated role with paths and path_hash_prefixes",
            At::Targets,
            delegated(&|d| d.path_hash_prefixes = Some(vec!["00".into()])),
            "exactly one of paths and path_hash_prefixes",
        ),
        (
            "delegated role with neither",
            At::Targets,
            delegated(&|d| d.paths = None),
            "exactly one of paths and path_hash_prefixes",
        ),
        ("succinct bit_length 0", At::Targets, succinct(&|s| s.bit_length = 0), "bit_length must be 1..=32"),
        ("succinct bit_length 33", At::Targets, succinct(&|s| s.bit_length = 33), "bit_length must be 1..=32"),
    ];
    // The helpers really produce valid metadata when nothing is broken.
    offer_ok(&r, &At::Targets, &succinct(&|_| {}));
    offer_ok(&r, &At::Targets, &targets(&|_| {}));
    offer_ok(&r, &At::Timestamp, &timestamp(&|_| {}));
    offer_ok(&r, &At::NewRoot, &new_root(&|_| {}));

    for (what, at, bytes, rule) in cases {
        let want_role = match at {
            At::Root | At::NewRoot => "root",
            At::Timestamp => "timestamp",
            At::Snapshot => "snapshot",
            At::Targets => "targets",
        };
        match offer(what, &r, &at, &bytes) {
            Error::Malformed { role, reason } => {
                assert_eq!(role, want_role, "{what}");
                assert!(reason.contains(rule), "{what}: {reason:?} does not name the rule {rule:?}");
            }
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }
}

fn offer_ok(r: &Repo, at: &At, bytes: &[u8]) {
    let mut set = match at {
        At::Targets => r.to_snapshot(),
        _ => TrustedSet::new(&r.root(), now()).unwrap(),
    };
    match at {
        At::Targets => drop(set.update_delegated_targets(bytes, "targets", "root").unwrap()),
        At::Timestamp => drop(set.update_timestamp(bytes).unwrap()),
        At::NewRoot => drop(set.update_root(bytes).unwrap()),
        _ => unreachable!(),
    }
}

/// A second signature by the same keyid is refused outright (it could otherwise be counted
/// twice toward a threshold by a careless counter).
#[test]
fn two_signatures_by_one_keyid_are_refused() {
    let r = Repo::new(|_| {});
    let mut env: serde_json::Value = serde_json::from_slice(&r.read("timestamp.json")).unwrap();
    let sig = env["signatures"][0].clone();
    env["signatures"].as_array_mut().unwrap().push(sig);
    let bytes = serde_json::to_vec(&env).unwrap();
    match offer("two signatures by one keyid", &r, &At::Timestamp, &bytes) {
        Error::Malformed { role, reason } => {
            assert_eq!(role, "timestamp");
            assert!(reason.contains("more than one signature by keyid"), "{reason}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// A file of another role is refused by its type, naming both.
#[test]
fn metadata_of_another_role_is_refused_by_type() {
    let r = Repo::new(|_| {});
    match offer("timestamp as snapshot", &r, &At::Snapshot, &r.read("timestamp.json")) {
        Error::WrongType { role, expected, found } => {
            assert_eq!((role.as_str(), expected.as_str(), found.as_str()), ("snapshot", "snapshot", "timestamp"))
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    // One that does not even parse as the role asked for (root has no "meta") is named by
    // its type too.
    match offer("root as snapshot", &r, &At::Snapshot, &r.root()) {
        Error::WrongType { role, expected, found } => {
            assert_eq!((role.as_str(), expected.as_str(), found.as_str()), ("snapshot", "snapshot", "root"))
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    // A file of the right type that does not parse is malformed, not of another type.
    let mut env: serde_json::Value = serde_json::from_slice(&r.read("1.snapshot.json")).unwrap();
    env["signed"]["meta"] = serde_json::json!("not a map");
    match offer("snapshot with a string for meta", &r, &At::Snapshot, &serde_json::to_vec(&env).unwrap()) {
        Error::Malformed { role, .. } => assert_eq!(role, "snapshot"),
        other => panic!("expected Malformed, got {other:?}"),
    }
    // A root whose _type is changed and re-signed still parses, but validate refuses it.
    let mut root = r.b.root.clone();
    root.type_ = "targets".into();
    match offer("root of _type targets", &r, &At::Root, &signed(&r, "root", &root)) {
        Error::WrongType { role, found, .. } => assert_eq!((role.as_str(), found.as_str()), ("root", "targets")),
        other => panic!("expected WrongType, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Lookups other verifiers build on (mutation testing found them unchecked)
// ---------------------------------------------------------------------------------------

/// `is_delegated_path` (what the mirror checks a listed path with) agrees with the search:
/// inside the delegated patterns or hash prefixes only.
#[test]
fn is_delegated_path_holds_only_inside_the_delegation() {
    let mut role = DelegatedRole {
        keyids: vec![],
        name: "a".into(),
        path_hash_prefixes: None,
        paths: Some(vec!["x/*".into()]),
        terminating: false,
        threshold: 1,
        extra: Default::default(),
    };
    assert!(role.is_delegated_path("x/ok"));
    assert!(!role.is_delegated_path("y/evil"));
    role.paths = None;
    role.path_hash_prefixes = Some(vec![sha256_hex("x/ok")[..4].to_string()]);
    assert!(role.is_delegated_path("x/ok"));
    assert!(!role.is_delegated_path("y/evil"));
}

/// A snapshot's entries are found by name, and only by their own name.
#[test]
fn meta_map_lookups_find_each_entry_and_nothing_else() {
    let m: MetaMap =
        [("b.json", 3), ("a.json", 2)].into_iter().map(|(n, v)| (n.to_string(), MetaFile::new(v))).collect();
    assert_eq!((m.version("a.json"), m.version("b.json"), m.version("c.json")), (Some(2), Some(3), None));
    assert!(m.contains_key("a.json") && m.contains_key("b.json"));
    assert!(!m.contains_key("c.json") && !m.contains_key("a"));
    assert_eq!(m.get("b.json"), Some(MetaFile::new(3)));
}

/// Every hash algorithm packman accepts is checked, SHA-384 included; the streaming verifier
/// counts what it was fed.
#[test]
fn sha384_hashes_are_checked_and_the_verifier_counts_bytes() {
    use packman_tuf::target::{verify, Mismatch, Verifier};
    let sha384 = |b: &[u8]| hex::encode(ring::digest::digest(&ring::digest::SHA384, b));
    let h = packman_tuf::Hashes(vec![("sha384".into(), sha384(b"abc"))]);
    verify(b"abc", Some(3), Some(&h)).unwrap();
    assert!(
        matches!(verify(b"abd", Some(3), Some(&h)), Err(Mismatch::Hash { ref algorithm, .. }) if algorithm == "sha384")
    );
    let mut v = Verifier::new(None, Some(&h)).unwrap();
    v.update(b"ab").unwrap();
    v.update(b"c").unwrap();
    assert_eq!(v.length(), 3);
    v.finish().unwrap();
}

/// A consistent-snapshot target is fetched by its first listed hash (spec 5.7.3).
#[test]
fn a_targets_name_hash_is_its_first_listed_hash() {
    let mut t = packman_tuf::target::describe(b"x");
    assert_eq!(t.name_hash(), t.hashes.get("sha256"));
    assert_eq!(t.name_hash().map(str::len), Some(64));
    t.hashes.0.reverse();
    assert_eq!(t.name_hash(), t.hashes.get("sha512"));
    t.hashes.0.clear();
    assert_eq!(t.name_hash(), None);
}

// ---------------------------------------------------------------------------------------
// Timestamp against the trusted root and timestamp
// ---------------------------------------------------------------------------------------

/// A timestamp at `version` naming snapshot `snapshot` and, if given, root `root`.
fn timestamp(r: &Repo, version: u64, snapshot: u64, root: Option<u64>) -> Vec<u8> {
    let mut ts: Timestamp = r.b.timestamp.clone();
    ts.version = version;
    ts.meta.insert("snapshot.json".into(), MetaFile::new(snapshot));
    if let Some(v) = root {
        ts.extra.insert(packman_tuf::metadata::ROOT_VERSION_FIELD.into(), v.into());
    }
    signed(r, "timestamp", &ts)
}

/// A timestamp naming a root newer than any the repository served: a withheld rotation.
#[test]
fn a_timestamp_naming_a_newer_root_than_the_trusted_one_is_refused() {
    let r = Repo::new(|_| {});
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    let before = state(&set, &[]);
    assert_eq!(
        set.update_timestamp(&timestamp(&r, 2, 1, Some(2))).err(),
        Some(Error::HiddenRoot { named: 2, trusted: 1 })
    );
    assert_eq!(state(&set, &[]), before, "trusted state changed");
    // Naming the trusted root (or none) is fine.
    set.update_timestamp(&timestamp(&r, 2, 1, Some(1))).unwrap();
    set.update_timestamp(&timestamp(&r, 3, 1, None)).unwrap();
}

/// Spec 5.4.3: the timestamp version and the snapshot version it names never go back; the
/// same timestamp again is not an error but "already trusted".
#[test]
fn timestamp_and_its_snapshot_version_never_go_back() {
    let r = Repo::new(|_| {});
    let mut set = TrustedSet::new(&r.root(), now()).unwrap();
    set.update_timestamp(&timestamp(&r, 3, 2, None)).unwrap();
    let before = state(&set, &[]);
    for (what, bytes, want) in [
        (
            "older timestamp",
            timestamp(&r, 2, 2, None),
            Error::Rollback { role: "timestamp".into(), trusted: 3, offered: 2 },
        ),
        ("the same version", timestamp(&r, 3, 2, None), Error::EqualVersion { role: "timestamp".into(), version: 3 }),
        (
            "newer timestamp, older snapshot",
            timestamp(&r, 4, 1, None),
            Error::Rollback { role: "snapshot".into(), trusted: 2, offered: 1 },
        ),
    ] {
        assert_eq!(set.update_timestamp(&bytes).err(), Some(want), "{what}");
        assert_eq!(state(&set, &[]), before, "{what}: trusted state changed");
    }
    // Newer timestamps naming the same or a newer snapshot are taken.
    set.update_timestamp(&timestamp(&r, 4, 2, None)).unwrap();
    set.update_timestamp(&timestamp(&r, 5, 3, None)).unwrap();
    assert_eq!(set.timestamp().unwrap().signed.version, 5);
}
