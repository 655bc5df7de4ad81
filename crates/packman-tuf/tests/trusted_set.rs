//! State-machine tests: bytes in, verdicts out. Repositories are signed with packman-repo.

mod common;

use common::{now, search, Repo};
use packman_repo::sign_metadata;
use packman_tuf::crypto::Signer;
use packman_tuf::trusted::SearchStep;
use packman_tuf::{Error, Limits, TargetSearch, TrustedSet};

#[test]
fn loading_order_is_enforced() {
    let r = Repo::new(|_| {});
    let mut set = TrustedSet::new(&r.read("1.root.json"), now()).unwrap();
    assert!(matches!(set.update_snapshot(&r.read("1.snapshot.json"), false), Err(Error::Order(_))));
    assert!(matches!(set.update_delegated_targets(&r.read("1.targets.json"), "targets", "root"), Err(Error::Order(_))));
    set.update_timestamp(&r.read("timestamp.json")).unwrap();
    assert!(matches!(set.update_root(&r.read("1.root.json")), Err(Error::Order(_))));
    set.update_snapshot(&r.read("1.snapshot.json"), false).unwrap();
    assert!(matches!(set.update_timestamp(&r.read("timestamp.json")), Err(Error::Order(_))));
}

#[test]
fn root_must_be_signed_by_old_and_new_threshold_and_be_the_next_version() {
    let mut r = Repo::new(|_| {});
    // Sign root v2 with a brand new key only: the old root did not authorise it.
    let (intruder, _) = Signer::generate_ed25519().unwrap();
    let mut root = r.b.root.clone();
    root.version = 2;
    root.keys.insert(intruder.keyid().into(), intruder.public_key().clone());
    root.roles.get_mut("root").unwrap().keyids = vec![intruder.keyid().into()];
    let forged = sign_metadata(&root, &[&intruder]).unwrap();
    let mut set = TrustedSet::new(&r.read("1.root.json"), now()).unwrap();
    assert!(
        matches!(set.update_root(&forged), Err(Error::ThresholdNotMet { ref role, valid: 0, threshold: 1 }) if role == "root")
    );

    // Properly rotated v2 and v3; offering v3 first skips a version.
    r.b.rotate_key("root").unwrap();
    r.b.rotate_key("root").unwrap();
    let (v2, v3) = (r.b.signed_roots[1].clone(), r.b.signed_roots[2].clone());
    assert!(matches!(set.update_root(&v3), Err(Error::ThresholdNotMet { .. }) | Err(Error::BadVersion { .. })));
    set.update_root(&v2).unwrap();
    set.update_root(&v3).unwrap();
    assert_eq!(set.root().signed.version, 3);
}

#[test]
fn one_key_under_two_keyids_counts_once() {
    let r = Repo::new(|_| {});
    let ts_key = r.b.key_of("timestamp").unwrap().clone();
    let mut root = r.b.root.clone();
    root.version = 2;
    let old_id = root.roles["timestamp"].keyids[0].clone();
    root.keys.insert("alias".into(), ts_key);
    let ts = root.roles.get_mut("timestamp").unwrap();
    ts.keyids.push("alias".into());
    ts.threshold = 2;
    let v2 = sign_metadata(&root, &[&r.b.signers["root"][0]]).unwrap();
    let mut set = TrustedSet::new(&r.read("1.root.json"), now()).unwrap();
    set.update_root(&v2).unwrap();
    // The timestamp carries the same signature under both keyids.
    let mut env: serde_json::Value = serde_json::from_slice(&r.read("timestamp.json")).unwrap();
    let mut sig = env["signatures"][0].clone();
    assert_eq!(sig["keyid"], old_id.as_str());
    sig["keyid"] = "alias".into();
    env["signatures"].as_array_mut().unwrap().push(sig);
    let bytes = serde_json::to_vec(&env).unwrap();
    assert!(matches!(set.update_timestamp(&bytes), Err(Error::ThresholdNotMet { valid: 1, threshold: 2, .. })));
}

#[test]
fn unknown_fields_are_signed_over_and_kept() {
    let r = Repo::new(|_| {});
    let mut t = r.b.targets.clone();
    t.extra.insert("x-packman-note".into(), serde_json::json!({"b": 1, "a": [true, null]}));
    t.targets.get_mut("a.txt").unwrap().extra.insert("x-extra".into(), "kept".into());
    let bytes = sign_metadata(&t, &[&r.b.signers["targets"][0]]).unwrap();
    let mut set = TrustedSet::new(&r.read("1.root.json"), now()).unwrap();
    set.update_timestamp(&r.read("timestamp.json")).unwrap();
    set.update_snapshot(&r.read("1.snapshot.json"), false).unwrap();
    let got = set.update_delegated_targets(&bytes, "targets", "root").unwrap();
    assert_eq!(got.signed.extra["x-packman-note"]["a"][0], true);
    let again = serde_json::to_value(&got.signed).unwrap();
    assert_eq!(again["x-packman-note"]["b"], 1);
    assert_eq!(again["targets"]["a.txt"]["x-extra"], "kept");

    // Change the unknown field after signing: the signature no longer covers it.
    let mut env: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    env["signed"]["x-packman-note"]["b"] = 2.into();
    let mut set = TrustedSet::new(&r.read("1.root.json"), now()).unwrap();
    set.update_timestamp(&r.read("timestamp.json")).unwrap();
    set.update_snapshot(&r.read("1.snapshot.json"), false).unwrap();
    let tampered = serde_json::to_vec(&env).unwrap();
    assert!(matches!(set.update_delegated_targets(&tampered, "targets", "root"), Err(Error::ThresholdNotMet { .. })));
}

#[test]
fn search_is_preorder_depth_first_with_terminating_and_cycles() {
    let mut r = Repo::new(|_| {});
    r.b.add_delegation("targets", "a", vec!["x/*".into()], false).unwrap();
    r.b.add_delegation("a", "a1", vec!["x/*".into()], true).unwrap();
    r.b.add_delegation("a", "a2", vec!["x/*".into()], false).unwrap();
    r.b.add_delegation("targets", "b", vec!["x/*".into()], false).unwrap();
    // A cycle: a1 delegates back to a (with a's own key).
    let a_key = r.b.key_of("a").unwrap().clone();
    let back = r.b.targets.delegations.as_ref().unwrap().roles.as_ref().unwrap()[0].clone();
    r.b.targets_mut("a1").unwrap().delegations = Some(packman_tuf::Delegations {
        keys: [(back.keyids[0].clone(), a_key)].into(),
        roles: Some(vec![back]),
        succinct_roles: None,
        extra: Default::default(),
    });
    r.b.add_target_to("b", "x/in-b", b"b").unwrap();
    r.b.add_target_to("a2", "x/in-a2", b"a2").unwrap();
    r.b.publish(r.dir.path()).unwrap();

    // a1 is terminating: a2 and b are never consulted, and the cycle back to a ends.
    let mut set = r.to_targets();
    let (step, loaded) = search(&mut set, &r, "x/in-b", 32);
    assert_eq!(step, SearchStep::NotFound);
    assert_eq!(loaded, ["a", "a1"]);

    // The role cap bounds the walk.
    let mut set = r.to_targets();
    let (step, loaded) = search(&mut set, &r, "x/in-b", 1);
    assert_eq!(step, SearchStep::NotFound);
    assert!(loaded.is_empty(), "{loaded:?}");

    // A path only 'b' may hold is found there.
    r.b.targets_mut("b").unwrap().targets.clear();
    r.b.add_target_to("b", "y", b"y").unwrap();
    r.b.targets_mut("targets").unwrap().delegations.as_mut().unwrap().roles.as_mut().unwrap()[1].paths =
        Some(vec!["*".into()]);
    r.b.publish(r.dir.path()).unwrap();
    let mut set = r.to_targets();
    let (step, loaded) = search(&mut set, &r, "y", 32);
    assert!(matches!(step, SearchStep::Found(ref t) if t.length == 1), "{step:?}");
    assert_eq!(loaded, ["b"]);
}

#[test]
fn a_role_reached_through_a_second_delegator_is_verified_against_it() {
    let mut r = Repo::new(|_| {});
    r.b.add_delegation("targets", "pa", vec!["a/*".into()], false).unwrap();
    r.b.add_delegation("targets", "pb", vec!["b/*".into()], false).unwrap();
    r.b.add_delegation("pa", "release", vec!["a/*".into()], false).unwrap();
    let release_key_a = r.b.signers.remove("release").unwrap();
    r.b.add_delegation("pb", "release", vec!["b/*".into()], false).unwrap();
    // 'release' is signed with pa's key for it only.
    r.b.signers.insert("release".into(), release_key_a);
    r.b.add_target_to("release", "a/ok", b"ok").unwrap();
    r.b.add_target_to("release", "b/evil", b"evil").unwrap();
    r.b.publish(r.dir.path()).unwrap();

    let mut set = r.to_targets();
    let (step, _) = search(&mut set, &r, "a/ok", 32);
    assert!(matches!(step, SearchStep::Found(_)));
    let mut s = TargetSearch::new("b/evil", Limits::default());
    loop {
        match s.step(&set) {
            SearchStep::Load { role, delegator } if set.targets(&role).is_some() => {
                assert_eq!((role.as_str(), delegator.as_str()), ("release", "pb"));
                let err = set.verify_loaded_via(&role, &delegator).unwrap_err();
                assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");
                break;
            }
            SearchStep::Load { role, delegator } => {
                let v = set.meta_for(&role).unwrap().version;
                set.update_delegated_targets(&r.read(&format!("{v}.{role}.json")), &role, &delegator).unwrap();
            }
            other => panic!("the search must stop at the unverified role, got {other:?}"),
        }
    }
}

#[test]
fn freeze_is_refused_at_every_level() {
    let r = Repo::new(|_| {});
    let late = now() + time::Duration::days(2); // timestamp lives 1 day
    let mut set = TrustedSet::new(&r.read("1.root.json"), late).unwrap();
    assert!(
        matches!(set.update_timestamp(&r.read("timestamp.json")), Err(Error::Expired { ref role, .. }) if role == "timestamp")
    );
    let later = now() + time::Duration::days(400); // root lives a year
    let mut set = TrustedSet::new(&r.read("1.root.json"), later).unwrap();
    assert!(
        matches!(set.update_timestamp(&r.read("timestamp.json")), Err(Error::Expired { ref role, .. }) if role == "root")
    );
}

/// `Expiry::Allow` (the user's `--allow-expired`) accepts expired roles and names each one;
/// it relaxes nothing else: a rolled-back timestamp is still refused.
#[test]
fn allow_expired_accepts_and_names_expired_roles_and_nothing_else() {
    let r = Repo::new(|_| {});
    let late = now() + time::Duration::days(10); // timestamp (1 day) and snapshot (7) expired
    let mut set = TrustedSet::new(&r.read("1.root.json"), late).unwrap().with_expiry(packman_tuf::Expiry::Allow);
    set.update_timestamp(&r.read("timestamp.json")).unwrap();
    set.update_snapshot(&r.read(&format!("{}.snapshot.json", r.b.snapshot.version)), false).unwrap();
    set.update_delegated_targets(&r.read(&format!("{}.targets.json", r.b.targets.version)), "targets", "root").unwrap();
    let expired: Vec<String> = set.expired().into_iter().map(|e| e.role).collect();
    assert!(expired.contains(&"timestamp".to_string()) && expired.contains(&"snapshot".to_string()), "{expired:?}");
    assert!(!expired.contains(&"root".to_string()), "{expired:?}");
    assert!(set.check_final_timestamp().is_ok());
    // The same under the default rule is refused, naming the role.
    let mut strict = TrustedSet::new(&r.read("1.root.json"), late).unwrap();
    assert_eq!(strict.expiry(), packman_tuf::Expiry::Enforce);
    assert!(
        matches!(strict.update_timestamp(&r.read("timestamp.json")), Err(Error::Expired { ref role, .. }) if role == "timestamp")
    );
    // Rollback is refused whatever the expiry rule.
    let mut r2 = Repo::new(|_| {});
    let old_ts = r2.read("timestamp.json");
    r2.b.add_target("b.txt", b"b").unwrap();
    r2.b.publish(r2.dir.path()).unwrap();
    let mut set = TrustedSet::new(&r2.read("1.root.json"), late).unwrap().with_expiry(packman_tuf::Expiry::Allow);
    set.update_timestamp(&r2.read("timestamp.json")).unwrap();
    assert!(matches!(set.update_timestamp(&old_ts), Err(Error::Rollback { .. })));
}
