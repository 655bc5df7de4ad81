//! `SyncOptions::state`: the trusted state, filter and lock outside DEST. DEST then holds
//! only what it serves; a refused sync leaves both DEST and the state byte-identical; a
//! mirror whose state is in `DEST/.packman-mirror` moves it on its next sync; a sync with
//! no trusted state never rolls back what DEST serves.

use std::path::{Path, PathBuf};

use packman_mirror::{sync, Filter, MirrorError, MirrorPaths, SyncOptions};
use packman_testkit::tree_state as tree;

mod common;
use common::Upstream;

impl Upstream {
    fn opts_at(&self, state: Option<&Path>) -> SyncOptions {
        let mut o = self.opts();
        o.state = state.map(Path::to_path_buf);
        o
    }
    fn hashed(&self, path: &str, data: &[u8]) -> PathBuf {
        let sha = packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
        self.dir.join("targets").join(packman_tuf::layout::hashed_target(path, &sha))
    }
}

fn only_served(dest: &Path) {
    let t = tree(dest);
    assert!(t.keys().all(|k| k.starts_with("metadata/") || k.starts_with("targets/")), "{:?}", t.keys());
}

#[test]
fn state_elsewhere_leaves_dest_only_what_it_serves_and_refusals_change_neither() {
    let mut up = Upstream::new();
    let dest = up.tmp.path().join("mirror");
    let state = up.tmp.path().join("state");

    // A refused first sync (a tampered target upstream) leaves neither DEST nor the state.
    let readme = up.hashed("docs/readme.txt", b"read me");
    std::fs::write(&readme, b"read m3").unwrap();
    let e = sync(&dest, &up.opts_at(Some(&state))).unwrap_err();
    assert!(matches!(e, MirrorError::Upstream(packman_client::Error::TargetMismatch { .. })), "{e}");
    assert!(!dest.exists() && !state.exists());
    std::fs::write(&readme, b"read me").unwrap();

    sync(&dest, &up.opts_at(Some(&state))).unwrap();
    only_served(&dest);
    assert!(state.join("metadata/root.json").exists() && state.join("lock").exists());

    // A refused sync: both byte-identical.
    up.add("docs/new.txt", b"new file");
    let new = up.hashed("docs/new.txt", b"new file");
    std::fs::write(&new, b"new fil3").unwrap();
    let (d0, s0) = (tree(&dest), tree(&state));
    assert!(sync(&dest, &up.opts_at(Some(&state))).is_err());
    assert_eq!(d0, tree(&dest));
    assert_eq!(s0, tree(&state));
    std::fs::write(&new, b"new file").unwrap();
    sync(&dest, &up.opts_at(Some(&state))).unwrap();
    only_served(&dest);
    assert!(dest.join(up.hashed("docs/new.txt", b"new file").strip_prefix(&up.dir).unwrap()).exists());
}

#[test]
fn state_in_dest_moves_out_on_the_next_sync_with_its_filter() {
    let mut up = Upstream::new();
    let dest = up.tmp.path().join("mirror");
    let mut o = up.opts_at(None);
    o.filter = Some(Filter { include: vec!["docs/*".into()], exclude: vec![] });
    sync(&dest, &o).unwrap();
    let legacy = dest.join(MirrorPaths::STATE_DIR);
    assert!(legacy.join("metadata/root.json").exists() && legacy.join(Filter::FILE).exists());

    up.add("docs/new.txt", b"new file");
    let state = up.tmp.path().join("state");
    let mut o = up.opts_at(Some(&state));
    o.root = None; // the legacy trusted state is the one used
    let r = sync(&dest, &o).unwrap();
    assert_eq!(r.migrated_state_from.as_deref(), Some(legacy.as_path()));
    assert_eq!(r.targets_fetched, ["docs/new.txt"]);
    assert_eq!(r.targets_filtered_out, 1, "the kept filter came along");
    only_served(&dest);
    assert!(state.join("metadata/timestamp.json").exists());
    assert_eq!(Filter::load(&state).unwrap().include, ["docs/*"]);
    // From then on, the state is the new one.
    let r = sync(&dest, &o).unwrap();
    assert!(r.migrated_state_from.is_none() && r.targets_fetched.is_empty());
}

#[test]
fn a_sync_without_trusted_state_never_rolls_back_what_dest_serves() {
    let mut up = Upstream::new();
    let ts1 = std::fs::read(up.dir.join("metadata/timestamp.json")).unwrap();
    let dest = up.tmp.path().join("mirror");
    sync(&dest, &up.opts_at(Some(&up.tmp.path().join("state")))).unwrap();
    up.add("docs/new.txt", b"new file");
    sync(&dest, &up.opts_at(Some(&up.tmp.path().join("state")))).unwrap();

    // The state is lost (or --state points elsewhere) and the upstream replays timestamp v1,
    // which verifies under root v1.
    std::fs::write(up.dir.join("metadata/timestamp.json"), &ts1).unwrap();
    let fresh = up.tmp.path().join("fresh-state");
    let before = tree(&dest);
    let e = sync(&dest, &up.opts_at(Some(&fresh))).unwrap_err();
    assert!(matches!(e, MirrorError::OlderThanDest { served: 2, offered: 1, .. }), "{e}");
    assert_eq!(before, tree(&dest));
    assert!(!fresh.exists());
}

#[test]
fn one_sync_at_a_time_per_dest_even_with_different_state_directories() {
    let mut up = Upstream::new();
    let dest = up.tmp.path().join("mirror");
    let (a, b) = (up.tmp.path().join("state-a"), up.tmp.path().join("state-b"));
    sync(&dest, &up.opts_at(Some(&a))).unwrap();
    up.add("docs/new.txt", b"new file");

    // A sync with the same state directory is running: its lock is held.
    let held = packman_fs::lock_exclusive(&a.join("lock")).unwrap();
    let before = tree(&dest);
    let e = sync(&dest, &up.opts_at(Some(&a))).unwrap_err();
    assert!(matches!(&e, MirrorError::Busy { lock } if lock == &a.join("lock")), "{e}");
    drop(held);

    // One with another state directory is running into the same DEST: DEST's work
    // directory is held, and a second sync neither runs nor removes that directory.
    let work = MirrorPaths::with_state(&dest, Some(&a)).work_dir();
    std::fs::create_dir_all(&work).unwrap();
    let held = packman_fs::lock_exclusive(&work.join("lock")).unwrap();
    let e = sync(&dest, &up.opts_at(Some(&b))).unwrap_err();
    assert!(matches!(&e, MirrorError::Busy { lock } if lock == &work.join("lock")), "{e}");
    assert!(e.to_string().contains("another sync of this mirror is running"), "{e}");
    assert!(work.join("lock").exists(), "the running sync's work directory was removed");
    drop(held);
    std::fs::remove_dir_all(&work).unwrap();
    assert_eq!(before, tree(&dest));

    // Once it is free, the sync runs and leaves no work directory behind.
    sync(&dest, &up.opts_at(Some(&a))).unwrap();
    assert!(dest.join(up.hashed("docs/new.txt", b"new file").strip_prefix(&up.dir).unwrap()).exists());
    assert!(!work.exists());
}
