//! `sync` against an upstream served over HTTP on 127.0.0.1 by the testkit server (which can
//! misbehave), published by packman-repo's RepoBuilder (every version kept, so the mirror
//! must equal the upstream exactly). DEST is compared file by file, its trusted state
//! included.

use std::collections::BTreeMap;

use packman_testkit::tree_state as tree;
use std::path::Path;

use packman_mirror::{sync, MirrorError, MirrorPaths, SyncOptions};
use packman_repo::RepoBuilder;
use packman_testkit::{Behavior, TestServer};
use packman_tuf::{layout, OffsetDateTime};

type Tree = BTreeMap<String, Vec<u8>>;

/// The served part of a tree (metadata/ and targets/).
fn served(dir: &Path) -> Tree {
    tree(dir).into_iter().filter(|(k, _)| k.starts_with("metadata/") || k.starts_with("targets/")).collect()
}

#[track_caller]
fn assert_same(want: &Tree, got: &Tree, what: &str) {
    let mut diff = Vec::new();
    for k in want.keys().chain(got.keys()) {
        match (want.get(k), got.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => diff.push(format!("{k} differs")),
            (Some(_), None) => diff.push(format!("{k} missing")),
            (None, _) => diff.push(format!("{k} extra")),
        }
    }
    diff.dedup();
    assert!(diff.is_empty(), "{what}: {diff:?}");
}

/// A tree without the versioned metadata (roots aside) that a newer version of the same
/// role supersedes.
fn current(t: Tree) -> Tree {
    let newest = |role: &str, t: &Tree| {
        t.keys()
            .filter_map(|k| layout::parse_versioned_metadata(k.strip_prefix("metadata/")?))
            .filter(|(_, r)| *r == role)
            .map(|(v, _)| v)
            .max()
    };
    t.clone()
        .into_iter()
        .filter(|(k, _)| match k.strip_prefix("metadata/").and_then(layout::parse_versioned_metadata) {
            Some((v, role)) => role == "root" || Some(v) == newest(role, &t),
            None => true,
        })
        .collect()
}

struct Upstream {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    repo: RepoBuilder,
    server: TestServer,
}

impl Upstream {
    fn new() -> Upstream {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("upstream");
        let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
        repo.add_target("packages/p/p-1.0.tar.gz", b"sdist of p 1.0").unwrap();
        repo.add_target("simple/p/index.html", b"<a href=p-1.0.tar.gz>").unwrap();
        repo.add_target("docs/readme.txt", b"read me").unwrap();
        let server = TestServer::serve_dir(&dir).unwrap();
        let mut up = Upstream { _tmp: tmp, dir, repo, server };
        up.publish();
        up
    }

    /// Publishes, and writes plain names as packman's publisher does (the builder does not).
    fn publish(&mut self) {
        self.repo.publish(&self.dir).unwrap();
        let roles = std::iter::once(&self.repo.targets).chain(self.repo.delegated.values());
        for path in roles.flat_map(|t| t.targets.keys()).filter(|p| layout::plain_copy_wanted(p)) {
            let plain = self.dir.join("targets").join(path);
            std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
            std::fs::write(plain, &self.repo.target_data[path]).unwrap();
        }
    }

    fn opts(&self) -> SyncOptions {
        let mut o = SyncOptions::from_base(&self.server.url());
        o.root = Some(self.repo.signed_roots[0].clone());
        o
    }

    /// Adds (or changes) a target and publishes; returns its bin.
    fn add(&mut self, path: &str, data: &[u8]) -> String {
        let role = self.repo.add_target(path, data).unwrap();
        self.publish();
        role
    }

    fn hashed(&self, path: &str, data: &[u8]) -> String {
        let sha = packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
        format!("targets/{}", layout::hashed_target(path, &sha))
    }
}

#[test]
fn first_sync_copies_the_upstream_exactly_and_the_next_fetches_only_what_changed() {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");
    let r = sync(&dest, &up.opts()).unwrap();
    assert_eq!((r.roles, r.targets, r.targets_fetched.len()), (5, 3, 3));
    assert_same(&served(&up.dir), &served(&dest), "first sync");
    // Plain names for pip: hard links to the hashed files, for packages/ and simple/ only.
    assert_eq!(std::fs::read(dest.join("targets/packages/p/p-1.0.tar.gz")).unwrap(), b"sdist of p 1.0");
    assert!(dest.join("targets/simple/p/index.html").exists());
    assert!(!dest.join("targets/docs/readme.txt").exists());
    // Nothing under a temp name, staging gone, state in place.
    let all = tree(&dest);
    assert!(all.keys().all(|k| !k.contains(".tmp-") && !k.contains("staging")), "{:?}", all.keys());
    assert!(all.contains_key(".packman-mirror/metadata/root.json"));

    // One more file upstream: the second sync asks for the next root (not there), the
    // timestamp, and then only the new snapshot, the changed bin, the changed pages and the
    // new file.
    let bin = up.repo.add_target("packages/p/p-1.1.tar.gz", b"sdist of p 1.1").unwrap();
    let page_bin = up.add("simple/p/index.html", b"<a href=p-1.0.tar.gz><a href=p-1.1.tar.gz>");
    up.server.clear_log();
    let r = sync(&dest, &up.opts()).unwrap();
    let mut want = vec![
        "/metadata/2.root.json".to_string(),
        "/metadata/timestamp.json".into(),
        "/metadata/2.snapshot.json".into(),
        format!(
            "/metadata/{}",
            layout::metadata_file(
                &page_bin,
                Some(up.repo.snapshot.meta.version(&layout::meta_key(&page_bin)).unwrap())
            )
        ),
        format!("/{}", up.hashed("packages/p/p-1.1.tar.gz", b"sdist of p 1.1")),
        format!("/{}", up.hashed("simple/p/index.html", b"<a href=p-1.0.tar.gz><a href=p-1.1.tar.gz>")),
    ];
    if bin != page_bin {
        let v = up.repo.snapshot.meta.version(&layout::meta_key(&bin)).unwrap();
        want.push(format!("/metadata/{}", layout::metadata_file(&bin, Some(v))));
    }
    let mut got = up.server.requests();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(r.targets_fetched.len(), 2);
    // The old page is unlisted now: gone from the mirror (the builder keeps it upstream).
    let old_page = up.hashed("simple/p/index.html", b"<a href=p-1.0.tar.gz>");
    assert_eq!(r.targets_removed, [old_page.trim_start_matches("targets/")]);
    let mut upstream = served(&up.dir);
    upstream.remove(&old_page);
    assert_same(&upstream, &served(&dest), "second sync");
    assert_eq!(
        std::fs::read(dest.join("targets/simple/p/index.html")).unwrap(),
        b"<a href=p-1.0.tar.gz><a href=p-1.1.tar.gz>"
    );

    // Nothing new: nothing written, nothing fetched but the root probe and the timestamp.
    up.server.clear_log();
    let before = tree(&dest);
    let r = sync(&dest, &up.opts()).unwrap();
    assert!(r.metadata_written.is_empty() && r.targets_fetched.is_empty() && r.targets_removed.is_empty());
    assert_eq!(up.server.requests(), ["/metadata/2.root.json", "/metadata/timestamp.json"]);
    assert_same(&before, &tree(&dest), "sync with nothing new");
    assert!(r.unchanged && r.targets == 0, "stopped after the timestamp: {r:?}");

    // A file lost from DEST: a sync with nothing new does not look (it stops after the
    // timestamp); --full walks every role and fetches it, verified, and only it.
    let lost = up.hashed("packages/p/p-1.1.tar.gz", b"sdist of p 1.1");
    std::fs::remove_file(dest.join(&lost)).unwrap();
    assert!(sync(&dest, &up.opts()).unwrap().unchanged);
    assert!(!dest.join(&lost).exists());
    up.server.clear_log();
    let r = sync(&dest, &SyncOptions { full: true, ..up.opts() }).unwrap();
    assert!(!r.unchanged && r.metadata_written.is_empty());
    assert_eq!(r.targets_fetched, ["packages/p/p-1.1.tar.gz"]);
    assert_eq!(
        up.server.requests(),
        ["/metadata/2.root.json", "/metadata/timestamp.json", format!("/{lost}").as_str()]
    );
    assert_same(&before, &tree(&dest), "sync --full after a file was lost");
}

#[test]
fn targets_removed_upstream_leave_the_mirror_after_the_new_timestamp() {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path();
    sync(dest, &up.opts()).unwrap();
    let hashed = up.hashed("packages/p/p-1.0.tar.gz", b"sdist of p 1.0");
    assert!(dest.join(&hashed).exists());
    let role = up.repo.role_for("packages/p/p-1.0.tar.gz");
    up.repo.targets_mut(&role).unwrap().targets.remove("packages/p/p-1.0.tar.gz");
    up.publish();
    let r = sync(dest, &up.opts()).unwrap();
    assert!(!dest.join(&hashed).exists(), "unlisted hashed file kept");
    // The plain name stays, as the publisher keeps it (binding the name to its bytes).
    assert_eq!(std::fs::read(dest.join("targets/packages/p/p-1.0.tar.gz")).unwrap(), b"sdist of p 1.0");
    assert_eq!(r.targets_removed, [hashed.trim_start_matches("targets/")]);
    assert!(dest.join(up.hashed("docs/readme.txt", b"read me")).exists());
    let ts: serde_json_like::Ts = serde_json_like::ts(&std::fs::read(dest.join("metadata/timestamp.json")).unwrap());
    assert_eq!(ts.version, 2);
}

/// The few fields of a timestamp the tests read, without a JSON dependency.
mod serde_json_like {
    pub struct Ts {
        pub version: u64,
    }
    pub fn ts(bytes: &[u8]) -> Ts {
        let s = std::str::from_utf8(bytes).unwrap();
        let at = s.rfind("\"version\"").unwrap();
        let rest = s[at + 9..].trim_start_matches([':', ' ']);
        let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        Ts { version: n.parse().unwrap() }
    }
}

#[test]
fn refused_syncs_leave_dest_byte_identical_state_included() {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");

    // A first sync refused (tampered target) leaves no DEST at all.
    up.server.set(&format!("/{}", up.hashed("docs/readme.txt", b"read me")), Behavior::Body(b"read m3".to_vec()));
    let e = sync(&dest, &up.opts()).unwrap_err();
    assert!(matches!(&e, MirrorError::Upstream(packman_client::Error::TargetMismatch { .. })), "{e}");
    assert!(!dest.exists(), "a refused first sync left {:?}", tree(&dest).keys());
    up.server.reset();

    sync(&dest, &up.opts()).unwrap();
    let ts1 = std::fs::read(up.dir.join("metadata/timestamp.json")).unwrap();
    up.add("docs/new.txt", b"new file");
    sync(&dest, &up.opts()).unwrap();
    let snap2 = std::fs::read(up.dir.join("metadata/2.snapshot.json")).unwrap();
    up.add("docs/newer.txt", b"newer file");
    let before = tree(&dest);
    assert!(before.contains_key(".packman-mirror/lock"));

    let check = |what: &str, e: MirrorError, want: &dyn Fn(&MirrorError) -> bool| {
        assert!(want(&e), "{what}: unexpected error {e:?}");
        assert_same(&before, &tree(&dest), what);
    };
    let tuf = |e: &MirrorError| e.tuf().cloned();

    // A tampered target.
    up.server.set(&format!("/{}", up.hashed("docs/newer.txt", b"newer file")), Behavior::Body(b"newer fil3".to_vec()));
    check("tampered target", sync(&dest, &up.opts()).unwrap_err(), &|e| {
        matches!(e, MirrorError::Upstream(packman_client::Error::TargetMismatch { .. }))
    });
    up.server.reset();

    // A rolled-back timestamp (version 1, the mirror trusts 2).
    up.server.set("/metadata/timestamp.json", Behavior::Body(ts1.clone()));
    check(
        "rolled-back timestamp",
        sync(&dest, &up.opts()).unwrap_err(),
        &|e| matches!(tuf(e), Some(packman_tuf::Error::Rollback { ref role, trusted: 2, offered: 1 }) if role == "timestamp"),
    );
    up.server.reset();

    // An expired timestamp (the clock two days on: the upstream's timestamp lasts one).
    let mut late = up.opts();
    late.now = Some(OffsetDateTime::now_utc() + std::time::Duration::from_secs(2 * 86400));
    check(
        "expired timestamp",
        sync(&dest, &late).unwrap_err(),
        &|e| matches!(tuf(e), Some(packman_tuf::Error::Expired { ref role, .. }) if role == "timestamp"),
    );

    // A snapshot that is not the one the timestamp describes.
    up.server.set("/metadata/3.snapshot.json", Behavior::Body(snap2.clone()));
    check(
        "snapshot not matching the timestamp",
        sync(&dest, &up.opts()).unwrap_err(),
        &|e| matches!(tuf(e), Some(packman_tuf::Error::LengthOrHashMismatch { ref role, .. }) if role == "snapshot"),
    );
    up.server.reset();

    // The honest upstream again: the sync goes through and DEST equals it.
    sync(&dest, &up.opts()).unwrap();
    assert_same(&served(&up.dir), &served(&dest), "after the attacks");
}

#[test]
fn root_rotations_are_mirrored_and_a_later_first_root_gets_its_chain() {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("a");
    sync(&dest, &up.opts()).unwrap();
    // A rotation of the timestamp key: root v2, and a timestamp signed by the new key.
    up.repo.rotate_key("timestamp").unwrap();
    up.add("docs/after-rotation.txt", b"after");
    let r = sync(&dest, &up.opts()).unwrap();
    assert_eq!(r.root_version, 2);
    assert_same(&served(&up.dir), &served(&dest), "after the rotation");
    assert_eq!(std::fs::read(dest.join("metadata/root.json")).unwrap(), up.repo.signed_roots[1]);

    // A first sync trusting root v2 fetches v1 too, as it verifies as the chain to v2.
    let dest2 = dest_tmp.path().join("b");
    let mut o = up.opts();
    o.root = Some(up.repo.signed_roots[1].clone());
    let r = sync(&dest2, &o).unwrap();
    assert_eq!(r.root_chain_gap, None);
    // The upstream keeps superseded versions the new mirror never saw a timestamp lead to.
    assert_same(&current(served(&up.dir)), &served(&dest2), "first sync from root v2");

    // A forged 1.root.json (another repository's) is not kept: the gap is reported.
    let dest3 = dest_tmp.path().join("c");
    let other = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    up.server.set("/metadata/1.root.json", Behavior::Body(other.signed_roots[0].clone()));
    let r = sync(&dest3, &o).unwrap();
    assert!(r.root_chain_gap.is_some());
    assert!(!dest3.join("metadata/1.root.json").exists());
    assert!(dest3.join("metadata/2.root.json").exists());
}

#[test]
fn a_sync_needs_a_root_the_first_time_only_and_never_serves_its_state() {
    let up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let mut o = up.opts();
    o.root = None;
    assert!(matches!(sync(dest_tmp.path(), &o), Err(MirrorError::NoRoot { .. })));
    assert!(tree(dest_tmp.path()).is_empty());
    sync(dest_tmp.path(), &up.opts()).unwrap();
    sync(dest_tmp.path(), &o).unwrap();
    let paths = MirrorPaths::new(dest_tmp.path());
    assert!(paths.trusted_dir().join("timestamp.json").exists());
    assert!(!paths.staging_dir().exists());
    // The state lives outside metadata/ and targets/, the only trees a server serves.
    assert!(!paths.state_dir().starts_with(paths.repo().metadata_dir()));
    assert!(!paths.state_dir().starts_with(paths.repo().targets_dir()));
}

/// A rotation of the timestamp key: while the sync commits, a reader keeps reading
/// `root.json`, `timestamp.json` and `root.json` again; whenever both roots are the same
/// file, the timestamp read between them must verify under it (the new root never appears
/// with the old timestamp, nor the old root with the new one).
#[test]
fn a_root_rotation_appears_to_readers_together_with_its_timestamp() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("m");
    sync(&dest, &up.opts()).unwrap();
    up.repo.rotate_key("timestamp").unwrap();
    up.add("docs/after-rotation.txt", b"after");

    let stop = AtomicBool::new(false);
    let md = dest.join("metadata");
    let (reads, mixed) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut mixed) = (0u32, Vec::new());
            let now = OffsetDateTime::now_utc();
            while !stop.load(Ordering::SeqCst) {
                let (Ok(r1), Ok(ts), Ok(r2)) = (
                    std::fs::read(md.join("root.json")),
                    std::fs::read(md.join("timestamp.json")),
                    std::fs::read(md.join("root.json")),
                ) else {
                    continue; // the portable swap's instant without metadata/
                };
                if r1 != r2 {
                    continue;
                }
                reads += 1;
                let mut set = packman_tuf::TrustedSet::new(&r1, now).unwrap();
                if let Err(e) = set.update_timestamp(&ts) {
                    mixed.push(e.to_string());
                }
            }
            (reads, mixed)
        });
        let r = sync(&dest, &up.opts()).unwrap();
        assert_eq!(r.root_version, 2);
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    assert!(reads > 0);
    assert!(
        mixed.is_empty(),
        "{} of {reads} reads saw a root and a timestamp that do not go together: {:?}",
        mixed.len(),
        mixed.first()
    );
    assert_same(&served(&up.dir), &served(&dest), "after the rotation");
    let state = tree(&dest);
    assert!(state.keys().all(|k| !k.contains("metadata-next") && !k.contains(".exchanging")), "{:?}", state.keys());
}

#[test]
fn a_target_listed_outside_its_delegation_is_ignored_with_a_warning_and_the_sync_goes_on() {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");
    sync(&dest, &up.opts()).unwrap();

    // A compromised bin lists a path delegated to the other bin, and the file is there.
    let bin = up.repo.role_for("docs/readme.txt");
    let stray = (0..64).map(|i| format!("docs/stray-{i}.txt")).find(|p| up.repo.role_for(p) != bin).unwrap();
    let info = packman_tuf::target::describe(b"planted");
    let hashed = up.hashed(&stray, b"planted");
    std::fs::create_dir_all(up.dir.join(&hashed).parent().unwrap()).unwrap();
    std::fs::write(up.dir.join(&hashed), b"planted").unwrap();
    up.repo.targets_mut(&bin).unwrap().targets.insert(stray.clone(), info);
    // And an honest change elsewhere, which must still arrive.
    up.repo.add_target("docs/honest.txt", b"honest").unwrap();
    up.publish();
    up.server.clear_log();
    let r = sync(&dest, &up.opts()).unwrap();
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains(&format!("role {bin} lists {stray:?}")), "{:?}", r.warnings);
    assert!(!up.server.requests().iter().any(|u| u.contains("stray")), "{:?}", up.server.requests());
    assert!(!dest.join(&hashed).exists());
    assert!(dest.join(up.hashed("docs/honest.txt", b"honest")).exists());
    // The signed metadata is mirrored whole, the bin with the stray entry included.
    let md = |d: &Path| served(d).into_iter().filter(|(k, _)| k.starts_with("metadata/")).collect::<Tree>();
    assert_same(&md(&up.dir), &md(&dest), "metadata");
}

/// A mirror synced, then `DIR/a.txt` ("file a") and `DIR/b.txt` ("file b") added upstream:
/// the upstream, the mirror's temp dir, and DEST.
fn synced_then_a_and_b_added(dir: &str) -> (Upstream, tempfile::TempDir, std::path::PathBuf) {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");
    sync(&dest, &up.opts()).unwrap();
    up.repo.add_target(&format!("{dir}/a.txt"), b"file a").unwrap();
    up.add(&format!("{dir}/b.txt"), b"file b");
    (up, dest_tmp, dest)
}

/// What a killed sync left in DEST's resume journal: `bytes` under the journal name of the
/// target `path` with content `data` (or `name` instead of that name's file name).
fn plant_journal(paths: &MirrorPaths, up: &Upstream, path: &str, data: &[u8], name: Option<&str>, bytes: &[u8]) {
    let mut j = paths.verified_dir().join(up.hashed(path, data).trim_start_matches("targets/"));
    if let Some(n) = name {
        j.set_file_name(n);
    }
    std::fs::create_dir_all(j.parent().unwrap()).unwrap();
    std::fs::write(&j, bytes).unwrap();
}

#[test]
fn a_killed_sync_resumes_without_fetching_verified_files_again_and_trusts_none_unchecked() {
    let (up, _dest_tmp, dest) = synced_then_a_and_b_added("docs");
    // What a sync killed after downloading both would leave: its journal. One file is as
    // verified; the other was changed on disk since.
    let paths = MirrorPaths::new(&dest);
    plant_journal(&paths, &up, "docs/a.txt", b"file a", None, b"file a");
    plant_journal(&paths, &up, "docs/b.txt", b"file b", None, b"file B");
    up.server.clear_log();
    let r = sync(&dest, &up.opts()).unwrap();
    let got: Vec<String> = up.server.requests().into_iter().filter(|u| u.starts_with("/targets/")).collect();
    assert_eq!(got, [format!("/{}", up.hashed("docs/b.txt", b"file b"))]);
    assert_eq!((r.targets_resumed, r.targets_fetched.as_slice()), (1, ["docs/b.txt".to_string()].as_slice()));
    assert_eq!(std::fs::read(dest.join(up.hashed("docs/a.txt", b"file a"))).unwrap(), b"file a");
    assert_eq!(std::fs::read(dest.join(up.hashed("docs/b.txt", b"file b"))).unwrap(), b"file b");
    assert!(!paths.work_dir().exists());
    assert_same(&served(&up.dir), &served(&dest), "after the resumed sync");
}

/// A directory new to DEST goes into place in one rename of its journal directory; what a
/// killed sync left there that no listed target claims (a target since removed upstream, a
/// torn file) stays out of DEST, and the listed file torn in the journal is fetched again.
#[test]
fn a_new_directory_moves_in_whole_without_what_no_listed_target_claims() {
    let (up, _dest_tmp, dest) = synced_then_a_and_b_added("fresh");
    let paths = MirrorPaths::new(&dest);
    // Left by a killed sync: a target no longer listed, a stray name, and b torn.
    plant_journal(&paths, &up, "fresh/gone.txt", b"removed upstream", None, b"removed upstream");
    plant_journal(&paths, &up, "fresh/a.txt", b"file a", Some("stray"), b"?");
    plant_journal(&paths, &up, "fresh/b.txt", b"file b", None, b"file");
    assert!(!dest.join("targets/fresh").exists());
    up.server.clear_log();
    let r = sync(&dest, &up.opts()).unwrap();
    let mut got: Vec<String> = up.server.requests().into_iter().filter(|u| u.starts_with("/targets/")).collect();
    got.sort();
    let mut want =
        [format!("/{}", up.hashed("fresh/a.txt", b"file a")), format!("/{}", up.hashed("fresh/b.txt", b"file b"))];
    want.sort();
    assert_eq!(got, want, "a was never in the journal, b was torn there");
    assert_eq!(r.targets_fetched.len(), 2);
    assert!(!paths.work_dir().exists());
    // Nothing more in DEST than upstream: neither the stray name nor the removed target.
    assert_same(&served(&up.dir), &served(&dest), "after the sync");
}

/// A root given once the mirror trusts one: the trusted root, or an older one leading to it
/// through signed rotations (from DEST's N.root.json, or the upstream's when DEST lacks one),
/// passes; another repository's root is refused with packman_trust's rule, DEST and its
/// state byte for byte as they were (it used to be ignored without a word).
#[test]
fn a_root_given_again_must_be_the_trusted_one_or_lead_to_it() {
    let mut up = Upstream::new();
    let dest_tmp = tempfile::tempdir().unwrap();
    let dest = dest_tmp.path().join("mirror");
    sync(&dest, &up.opts()).unwrap();
    let other = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap();
    let base = up.opts();
    let with_root = |root: &[u8]| SyncOptions { root: Some(root.to_vec()), ..base.clone() };
    let refused = |root: &[u8], want: &str| {
        let before = tree(&dest);
        match sync(&dest, &with_root(root)) {
            Err(e @ MirrorError::Root(_)) => {
                let MirrorError::Root(t) = &e else { unreachable!() };
                assert_eq!(format!("{:?}", t).split([' ', '{']).next(), Some(want), "{e}");
                let rule = if want == "InvalidRoot" { "not a usable root" } else { "signed by the repository" };
                assert!(e.to_string().contains(rule), "{e}");
            }
            other => panic!("expected MirrorError::Root, got {other:?}"),
        }
        assert_same(&before, &tree(&dest), "a refused root");
    };
    refused(&other.signed_roots[0], "RootDiffers");

    up.repo.rotate_key("root").unwrap();
    up.repo.rotate_key("timestamp").unwrap();
    up.add("docs/after-rotation.txt", b"after");
    sync(&dest, &base).unwrap();
    assert_eq!(std::fs::read(dest.join("metadata/root.json")).unwrap(), up.repo.signed_roots[2]);
    for root in &up.repo.signed_roots {
        sync(&dest, &with_root(root)).unwrap();
    }
    refused(&other.signed_roots[0], "RootNotInChain");
    // DEST lost 2.root.json: the check reads the upstream's instead, and still passes v1.
    let kept = std::fs::read(dest.join("metadata/2.root.json")).unwrap();
    std::fs::remove_file(dest.join("metadata/2.root.json")).unwrap();
    sync(&dest, &with_root(&up.repo.signed_roots[0])).unwrap();
    std::fs::write(dest.join("metadata/2.root.json"), kept).unwrap();
    // A root of the chain that does not verify on its own is refused too.
    let mut tampered = up.repo.signed_roots[0].clone();
    let at = tampered.windows(9).position(|w| w == b"\"expires\"").unwrap();
    tampered[at + 13] ^= 1;
    refused(&tampered, "InvalidRoot");
}
