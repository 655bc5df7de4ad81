//! Shared helpers of the publisher's tests.

use super::*;
pub(super) use packman_tuf::TrustedSet;

pub(super) fn no_pass(k: &KeyFile) -> Result<String, Error> {
    Err(Error::NoPassphrase { path: k.path.clone() })
}

/// Targets of several shapes, some paths given twice (the later description wins).
pub(super) fn entries() -> Vec<(String, TargetFile)> {
    let mut v = Vec::new();
    for i in 0..3000u32 {
        let path = format!("packages/p{}/p{i}-1.0.tar.gz", i % 700);
        let mut tf = packman_tuf::target::describe(path.as_bytes());
        match i % 5 {
            0 => tf.custom = Some(serde_json::json!({"requires-python": ">=3.8", "yanked": i % 2 == 0})),
            1 => {
                tf.extra.insert("x-unknown".into(), serde_json::json!([i]));
            }
            _ => {}
        }
        v.push((path, tf));
    }
    for i in (0..3000u32).step_by(97) {
        let path = format!("packages/p{}/p{i}-1.0.tar.gz", i % 700);
        v.push((path, packman_tuf::target::describe(format!("replaced {i}").as_bytes())));
    }
    v
}

/// Reads the published repository through the trust core as a client would; returns
/// every target listed.
pub(super) fn verified_targets(dir: &Path, now: OffsetDateTime) -> BTreeMap<String, TargetFile> {
    let md = dir.join("metadata");
    let read = |n: &str| std::fs::read(md.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let mut set = TrustedSet::new(&read("1.root.json"), now).unwrap();
    let ts = set.update_timestamp(&read("timestamp.json")).unwrap().signed.snapshot_meta().version;
    set.update_snapshot(&read(&format!("{ts}.snapshot.json")), false).unwrap();
    let tv = set.meta_for("targets").unwrap().version;
    set.update_delegated_targets(&read(&format!("{tv}.targets.json")), "targets", "root").unwrap();
    // Either shape: the bins are the succinct ones, or the classic roles in order.
    let d = set.targets("targets").unwrap().signed.delegations.clone().unwrap();
    let names: Vec<String> = match (&d.succinct_roles, &d.roles) {
        (Some(sr), None) => (0..sr.bin_count()).map(|b| sr.bin_name(b)).collect(),
        (None, Some(roles)) => roles.iter().map(|r| r.name.clone()).collect(),
        _ => panic!("targets delegates in neither shape"),
    };
    let mut all = BTreeMap::new();
    for name in names {
        let v = set.meta_for(&name).unwrap().version;
        set.update_delegated_targets(&read(&format!("{v}.{name}.json")), &name, "targets").unwrap();
        for (p, tf) in &set.targets(&name).unwrap().signed.targets {
            // As a client searches: the path's one delegated role is this bin.
            assert_eq!(d.roles_for_target(p), vec![(name.clone(), true)], "{p} listed by the wrong bin");
            all.insert(p.clone(), tf.clone());
        }
    }
    all
}

/// Both ways of making publishes durable: the platform's (syncfs on Linux, unless
/// PACKMAN_PORTABLE_FS=1) and the portable one.
pub(super) fn modes() -> [Durability; 2] {
    [Durability::detect(), Durability::PerFile]
}

/// A new repository with 4 bins publishing in `mode`, and a directory for source files.
pub(super) fn four_bin_repo(mode: Durability) -> (OffsetDateTime, tempfile::TempDir, tempfile::TempDir, Repository) {
    let now = OffsetDateTime::now_utc();
    let d = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let opts = InitOptions { bins: 4, durability: mode, ..InitOptions::default() };
    let repo = Repository::init(d.path(), &opts, now).unwrap();
    assert_eq!(repo.durability(), mode);
    (now, d, src, repo)
}

/// Every file under `dir`'s published tree (`metadata/`, `targets/`), by relative path.
pub(super) fn published_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    for sub in ["metadata", "targets"] {
        walk(dir, &dir.join(sub), &mut out);
    }
    out
}

pub(super) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
