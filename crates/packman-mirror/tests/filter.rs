//! Partial mirrors: `--include`/`--exclude` on sync (metadata whole, only matching targets),
//! kept with the state so later syncs and `verify` apply it; a project included later is
//! fetched with nothing new upstream; targets no longer included are removed.

use std::collections::BTreeSet;
use std::path::Path;

use packman_client::file_url;
use packman_mirror::{sync, verify, Filter, SyncOptions, VerifyOptions};
use packman_repo::RepoBuilder;
use packman_testkit::tree_state as tree;
use packman_tuf::OffsetDateTime;

fn filter(include: &[&str], exclude: &[&str]) -> Option<Filter> {
    Some(Filter {
        include: include.iter().map(|s| s.to_string()).collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
    })
}

/// Targets files (hashed names and plain names) under DEST, by the target they hold.
fn target_files(dest: &Path) -> BTreeSet<String> {
    tree(dest).into_keys().filter_map(|k| k.strip_prefix("targets/").map(str::to_string)).collect()
}

fn has(files: &BTreeSet<String>, suffix: &str) -> bool {
    files.iter().any(|f| f.ends_with(suffix))
}

#[test]
fn a_filter_is_kept_applied_by_verify_and_changing_it_fetches_and_removes_with_nothing_new_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    let mut repo = RepoBuilder::new(OffsetDateTime::now_utc()).unwrap().with_succinct_bins(2).unwrap();
    repo.add_target("packages/Django_Rest/django_rest-1.0.tar.gz", b"django rest").unwrap();
    repo.add_target("simple/django-rest/index.html", b"<a>django</a>").unwrap();
    repo.add_target("packages/flask/flask-1.0.tar.gz", b"flask").unwrap();
    repo.add_target("simple/flask/index.html", b"<a>flask</a>").unwrap();
    repo.add_target("simple/index.html", b"<a>projects</a>").unwrap();
    repo.publish(&up).unwrap();
    let mut opts = SyncOptions::from_base(&file_url(&up, true));
    opts.root = Some(repo.signed_roots[0].clone());
    let dest = tmp.path().join("mirror");

    // Only django (by a glob on the normalised name): its files and the project list.
    opts.filter = filter(&["DJANGO.r*"], &[]);
    let r = sync(&dest, &opts).unwrap();
    assert_eq!((r.targets, r.targets_filtered_out, r.targets_fetched.len()), (5, 2, 3));
    let files = target_files(&dest);
    assert!(has(&files, "django_rest-1.0.tar.gz") && has(&files, "simple/index.html"), "{files:?}");
    assert!(!has(&files, "flask-1.0.tar.gz") && !files.iter().any(|f| f.contains("flask")), "{files:?}");
    // Metadata whole: the same files as upstream.
    let md = |d: &Path| tree(d).into_iter().filter(|(k, _)| k.starts_with("metadata/")).collect::<Vec<_>>();
    assert_eq!(md(&up), md(&dest));

    // The filter is kept: a sync without one keeps it, and verify applies it (flask is not
    // missing).
    opts.filter = None;
    let r = sync(&dest, &opts).unwrap();
    assert!(r.targets_fetched.is_empty() && r.targets_removed.is_empty());
    assert!(r.unchanged, "nothing new upstream and the same filter: {r:?}");
    let vopts = VerifyOptions::new(repo.signed_roots[0].clone());
    let v = verify(&dest, &vopts).unwrap();
    assert_eq!((v.exit_bits(), v.filtered_out), (0, 2), "{v:?}");
    // Without the filter, verify finds flask missing.
    let all = VerifyOptions { filter: Some(Filter::default()), ..vopts.clone() };
    let v = verify(&dest, &all).unwrap();
    assert_eq!(v.exit_bits(), packman_mirror::VerifyReport::MISSING, "{v:?}");

    // flask included later, nothing new upstream: fetched now.
    opts.filter = filter(&["django-rest", "flask"], &[]);
    let r = sync(&dest, &opts).unwrap();
    assert!(r.metadata_written.is_empty());
    assert_eq!(r.targets_fetched.len(), 2, "{:?}", r.targets_fetched);
    assert!(has(&target_files(&dest), "packages/flask/flask-1.0.tar.gz"));
    assert_eq!(verify(&dest, &vopts).unwrap().exit_bits(), 0);

    // django excluded: its hashed files and plain names go; verify (with the kept filter)
    // is clean; an extra django file would be reported.
    opts.filter = filter(&[], &["django-*"]);
    let r = sync(&dest, &opts).unwrap();
    assert_eq!(r.targets_removed.len(), 4, "{:?}", r.targets_removed);
    let files = target_files(&dest);
    assert!(!files.iter().any(|f| f.contains("django")), "{files:?}");
    assert_eq!(verify(&dest, &vopts).unwrap().exit_bits(), 0);
    std::fs::create_dir_all(dest.join("targets/packages/Django_Rest")).unwrap();
    std::fs::write(dest.join("targets/packages/Django_Rest/django_rest-1.0.tar.gz"), b"django rest").unwrap();
    let v = verify(&dest, &vopts).unwrap();
    assert_eq!(v.extra, ["targets/packages/Django_Rest/django_rest-1.0.tar.gz"]);
    std::fs::remove_dir_all(dest.join("targets/packages/Django_Rest")).unwrap();

    // No filter: everything again, and the kept filter is gone.
    opts.filter = Some(Filter::default());
    let r = sync(&dest, &opts).unwrap();
    assert_eq!((r.targets_fetched.len(), r.targets_filtered_out), (2, 0));
    assert!(!dest.join(".packman-mirror").join(Filter::FILE).exists());
    let all = tree(&dest);
    let served_up: Vec<_> = tree(&up).into_keys().filter(|k| k.starts_with("targets/")).collect();
    for k in served_up {
        assert!(all.contains_key(&k), "{k} missing");
    }
}
