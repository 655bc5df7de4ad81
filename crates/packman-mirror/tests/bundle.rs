//! Air-gapped bundles: `export` from a mirror synced from a RepoBuilder upstream (over
//! file://), `import` into an empty DEST and into an older mirror (`--since`), and bundles
//! that are truncated, tampered with, older than DEST or lacking what DEST needs: each
//! refused, naming the bundle, with DEST byte-identical (its trusted state included).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use packman_mirror::{export, import, sync, ExportOptions, ImportOptions, MirrorError};
use packman_testkit::tree_state as tree;
use packman_tuf::OffsetDateTime;

mod common;
use common::Upstream;

type Tree = BTreeMap<String, Vec<u8>>;

fn served(dir: &Path) -> Tree {
    tree(dir).into_iter().filter(|(k, _)| k.starts_with("metadata/") || k.starts_with("targets/")).collect()
}

impl Upstream {
    fn import_opts(&self) -> ImportOptions {
        ImportOptions { root: Some(self.repo.signed_roots[0].clone()), ..ImportOptions::default() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// The bundle's entry names, from its index.
fn index_files(bundle: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut first = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.path().unwrap().to_str().unwrap(), packman_mirror::BUNDLE_INDEX);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut first, &mut raw).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn export_then_import_gives_the_same_mirror_and_since_carries_only_what_changed() {
    let mut up = Upstream::new();
    let a = up.path("a");
    sync(&a, &up.opts()).unwrap();
    let full = up.path("full.bundle");
    let r = export(&a, &full, &ExportOptions::default()).unwrap();
    assert_eq!((r.snapshot_version, r.targets, r.targets_signed), (1, 2, 2));
    let names = index_files(&full);
    assert_eq!(names[0], "metadata/1.root.json");
    assert!(
        names.iter().position(|n| n == "metadata/timestamp.json")
            < names.iter().position(|n| n.starts_with("targets/"))
    );

    // Into an empty DEST: exactly the mirror it came from.
    let b = up.path("b");
    let ir = import(&full, &b, &up.import_opts()).unwrap();
    assert_eq!(ir.targets_fetched.len(), 2);
    assert_eq!(served(&a), served(&b));
    assert_eq!(std::fs::read(b.join("targets/packages/p/p-1.0.tar.gz")).unwrap(), b"sdist of p 1.0");

    // Upstream moves on; A syncs; a bundle since snapshot 1 carries only the new target.
    up.add("packages/p/p-1.1.tar.gz", b"sdist of p 1.1");
    sync(&a, &up.opts()).unwrap();
    let inc = up.path("inc.bundle");
    let r = export(&a, &inc, &ExportOptions { since: Some(1), ..Default::default() }).unwrap();
    assert_eq!((r.snapshot_version, r.targets, r.targets_signed), (2, 1, 3));
    let targets: Vec<_> = index_files(&inc).into_iter().filter(|n| n.starts_with("targets/")).collect();
    assert_eq!(targets.len(), 1);
    assert!(targets[0].ends_with(".p-1.1.tar.gz"), "{targets:?}");

    // Into the older mirror, with no root given: its own trusted state decides.
    let ir = import(&inc, &b, &ImportOptions::default()).unwrap();
    assert_eq!(ir.targets_fetched, ["packages/p/p-1.1.tar.gz"]);
    assert_eq!(served(&a), served(&b));
    // The same bundle again: nothing to do, nothing changed.
    let before = tree(&b);
    let ir = import(&inc, &b, &ImportOptions::default()).unwrap();
    assert!(ir.targets_fetched.is_empty() && ir.metadata_written.is_empty());
    assert_eq!(before, tree(&b));

    // --since a version the mirror never held is an export error, and no bundle is written.
    let none = up.path("none.bundle");
    let e = export(&a, &none, &ExportOptions { since: Some(9), ..Default::default() }).unwrap_err();
    assert!(matches!(e, MirrorError::Export { .. }), "{e}");
    assert!(!none.exists());
}

#[test]
fn bad_bundles_are_refused_naming_the_bundle_and_dest_stays_byte_identical() {
    let mut up = Upstream::new();
    let a = up.path("a");
    sync(&a, &up.opts()).unwrap();
    let v1 = up.path("v1.bundle");
    export(&a, &v1, &ExportOptions::default()).unwrap();
    up.add("docs/new.txt", b"a new file");
    sync(&a, &up.opts()).unwrap();
    let v2 = up.path("v2.bundle");
    export(&a, &v2, &ExportOptions::default()).unwrap();
    let v2_since1 = up.path("v2-since1.bundle");
    export(&a, &v2_since1, &ExportOptions { since: Some(1), ..Default::default() }).unwrap();
    let good = std::fs::read(&v2).unwrap();

    // An empty DEST, and a mirror at v1 (made from the v1 bundle).
    let empty = up.path("empty");
    let older = up.path("older");
    import(&v1, &older, &up.import_opts()).unwrap();
    let newer = up.path("newer");
    import(&v2, &newer, &up.import_opts()).unwrap();

    let check = |what: &str, bundle: &Path, dest: &Path, want: &dyn Fn(&MirrorError) -> bool| {
        let before = tree(dest);
        let existed = dest.exists();
        let e = import(bundle, dest, &up.import_opts()).unwrap_err();
        assert!(want(&e), "{what}: unexpected error {e:?}");
        assert!(e.to_string().contains(bundle.to_str().unwrap()), "{what}: the error does not name the bundle: {e}");
        assert_eq!(dest.exists(), existed, "{what}");
        assert_eq!(before, tree(dest), "{what}: DEST changed");
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = up.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // Truncated: in the end marker, the last entry's padding, anywhere in the data, inside
    // the index, inside the first header.
    for cut in [good.len() - 1, good.len() - 1100, good.len() - 700, good.len() / 2, 600, 100] {
        let t = write(&format!("cut-{cut}.bundle"), &good[..cut]);
        for dest in [&empty, &older] {
            check(&format!("truncated at {cut}"), &t, dest, &|e| matches!(e, MirrorError::Bundle { .. }));
        }
    }
    // A tar without its end blocks, cut exactly after an entry: the index lists more.
    let names = index_files(&v2);
    let last = names.last().unwrap();
    let mut arch = tar::Archive::new(std::fs::File::open(&v2).unwrap());
    let end_of_second_last = arch
        .entries_with_seek()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().unwrap().to_str().unwrap() != last)
        .map(|e| e.raw_file_position() + e.size().div_ceil(512) * 512)
        .max()
        .unwrap();
    let t = write("cut-at-entry.bundle", &good[..end_of_second_last as usize]);
    check(
        "cut at an entry boundary",
        &t,
        &older,
        &|e| matches!(e, MirrorError::Bundle { reason, .. } if reason.contains("missing")),
    );

    // Tampered: a target's bytes (same length), then the timestamp's.
    let find = |needle: &[u8]| good.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut t = good.clone();
    t[find(b"a new file") + 2] = b'N';
    let t = write("tampered-target.bundle", &t);
    for dest in [&empty, &older] {
        check("tampered target", &t, dest, &|e| {
            matches!(e, MirrorError::BundleRefused { source, .. }
                if matches!(**source, MirrorError::Upstream(packman_client::Error::TargetMismatch { .. })))
        });
    }
    let ts = std::fs::read(a.join("metadata/timestamp.json")).unwrap();
    let at = find(&ts);
    let mut t = good.clone();
    let v = at + ts.windows(9).position(|w| w == b"\"version\"").unwrap() + 10;
    t[v] = if t[v] == b'7' { b'8' } else { b'7' };
    let t = write("tampered-timestamp.bundle", &t);
    check("tampered timestamp", &t, &older, &|e| e.tuf().is_some());

    // Older than DEST: the v1 bundle into the mirror at v2 (a rollback).
    check(
        "older than DEST",
        &v1,
        &newer,
        &|e| matches!(e.tuf(), Some(packman_tuf::Error::Rollback { role, trusted: 2, offered: 1 }) if role == "timestamp"),
    );

    // A --since bundle into a DEST lacking the base it assumes.
    check("since bundle into an empty DEST", &v2_since1, &empty, &|e| {
        matches!(e, MirrorError::BundleRefused { .. }) && e.to_string().contains("--since 1")
    });

    // Expired: the same good bundle, the clock two days on.
    let before = tree(&older);
    let late = ImportOptions {
        now: Some(OffsetDateTime::now_utc() + std::time::Duration::from_secs(2 * 86400)),
        ..up.import_opts()
    };
    let e = import(&v2, &older, &late).unwrap_err();
    assert!(matches!(e.tuf(), Some(packman_tuf::Error::Expired { .. })), "{e}");
    assert_eq!(before, tree(&older));

    // Not a bundle at all.
    let t = write("junk.bundle", &vec![b'x'; 4096]);
    check("junk", &t, &older, &|e| matches!(e, MirrorError::Bundle { .. }));

    // After all that, the good bundle applies.
    import(&v2, &older, &up.import_opts()).unwrap();
    assert_eq!(served(&a), served(&older));
}

#[test]
fn a_partial_mirror_exports_what_its_filter_keeps_and_imports_with_the_same_filter() {
    let up = Upstream::new();
    let a = up.path("a");
    let only_docs = Some(packman_mirror::Filter { include: vec!["docs/*".into()], exclude: vec![] });
    let mut o = up.opts();
    o.filter = only_docs.clone();
    sync(&a, &o).unwrap();
    let bundle = up.path("docs.bundle");
    let r = export(&a, &bundle, &ExportOptions::default()).unwrap();
    assert_eq!((r.targets, r.targets_signed), (1, 2));
    // Without the filter the importer lacks a target it needs: refused, nothing created.
    let b = up.path("b");
    let e = import(&bundle, &b, &up.import_opts()).unwrap_err();
    assert!(matches!(e, MirrorError::BundleRefused { .. }), "{e}");
    assert!(!b.exists());
    let r = import(&bundle, &b, &ImportOptions { filter: only_docs, ..up.import_opts() }).unwrap();
    assert_eq!((r.targets_fetched.len(), r.targets_filtered_out), (1, 1));
    assert_eq!(served(&a), served(&b));
}
