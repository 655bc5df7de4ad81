//! End-to-end: `packman mirror sync` (the real binary) of a repository made by `packman repo
//! init/add/remove`, over HTTP on 127.0.0.1 (testkit server, which logs requests) and
//! file://, read back by `packman download`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use packman_testkit::{Behavior, TestServer};

/// This test's PACKMAN_HOME (where mirrors keep their state by default): under cargo's
/// scratch directory, one per test (the harness names each test's thread after it).
fn home() -> std::path::PathBuf {
    let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mirror-cli-home").join(test)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_packman"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("PACKMAN_PASSPHRASE")
        .env("PACKMAN_HOME", home())
        .output()
        .expect("run packman")
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = run(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "packman {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    out.into_owned()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir/sub` for each `sub`, by path relative to `dir`.
fn files(dir: &Path, subs: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<_> = subs.iter().map(|d| dir.join(d)).collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_str().unwrap().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn served(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files(dir, &["metadata", "targets"])
}

#[track_caller]
fn assert_same_names_and_bytes(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>, what: &str) {
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "{what}: file names differ");
    for (k, v) in a {
        assert!(&b[k] == v, "{what}: {k} differs");
    }
}

#[test]
fn mirror_sync_copies_a_published_repository_and_keeps_up_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    // The publisher keeps only the newest version of each role: the mirror must equal it.
    let settings = up.join("packman-repo.json");
    let text = std::fs::read_to_string(&settings).unwrap().replace("\"keep_versions\": 3", "\"keep_versions\": 1");
    std::fs::write(&settings, text).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, body) in [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")] {
        std::fs::write(src.join(name), body).unwrap();
    }
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/p/", s(&src.join("a.txt"))]);
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "docs/", s(&src.join("b.txt"))]);
    let root = up.join("metadata/1.root.json");
    let server = TestServer::serve_dir(&up).unwrap();

    // First sync over HTTP: exactly the upstream's files, plain-name links included.
    let dest = tmp.path().join("mirror");
    let out = ok(&["mirror", "sync", &server.url(), s(&dest), "--root", s(&root)]);
    assert!(out.contains("2 target(s)"), "{out}");
    assert_same_names_and_bytes(&served(&up), &served(&dest), "first sync over HTTP");

    // The same over file://, with the URLs given one by one.
    let dest_file = tmp.path().join("mirror-file");
    let base = format!("file://{}", s(&up));
    ok(&[
        "mirror",
        "sync",
        "unused://",
        s(&dest_file),
        "--root",
        s(&root),
        "--metadata-url",
        &format!("{base}/metadata/"),
        "--targets-url",
        &format!("{base}/targets/"),
    ]);
    assert_same_names_and_bytes(&served(&up), &served(&dest_file), "first sync over file://");

    // The client reads the mirror.
    let dl = tmp.path().join("dl");
    let mirror_url = format!("file://{}", s(&dest));
    ok(&[
        "download",
        "--root",
        s(&dest.join("metadata/1.root.json")),
        "--metadata-url",
        &format!("{mirror_url}/metadata"),
        "--metadata-dir",
        s(&tmp.path().join("client")),
        "--dest",
        s(&dl),
        "packages/p/a.txt",
        "docs/b.txt",
    ]);
    assert_eq!(std::fs::read(dl.join("a.txt")).unwrap(), b"alpha");

    // One more file upstream: the next sync asks for the next root, the timestamp, and then
    // only new metadata versions and the new file.
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "docs/", s(&src.join("c.txt"))]);
    let new_versions: Vec<String> =
        served(&up).into_keys().filter(|k| !served(&dest).contains_key(k)).map(|k| format!("/{k}")).collect();
    server.clear_log();
    ok(&["mirror", "sync", &server.url(), s(&dest)]);
    let mut got = server.requests();
    got.sort();
    let mut want: Vec<String> = ["/metadata/2.root.json".to_string(), "/metadata/timestamp.json".into()]
        .into_iter()
        .chain(new_versions.into_iter().filter(|k| k != "/metadata/timestamp.json"))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(want.iter().any(|k| k.ends_with(".c.txt")) && want.iter().any(|k| k.ends_with(".snapshot.json")));
    let mut mirrored = served(&dest);
    // The mirror keeps every metadata version it accepted; the publisher (keep 1) does not.
    mirrored.retain(|k, _| served(&up).contains_key(k));
    assert_same_names_and_bytes(&served(&up), &mirrored, "second sync");

    // A tampered upstream is refused and changes nothing.
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/p/", s(&src.join("c.txt"))]);
    let hashed =
        served(&up).into_keys().find(|k| k.starts_with("targets/packages/p/") && k.ends_with(".c.txt")).unwrap();
    server.set(&format!("/{hashed}"), Behavior::Body(b"gamm4".to_vec()));
    // DEST holds only what it serves; the state is in PACKMAN_HOME.
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 2);
    let state = || files(&home(), &["mirrors"]);
    assert!(state().keys().any(|k| k.ends_with("metadata/root.json")), "{:?}", state().keys());
    let (before, state_before) = (served(&dest), state());
    let o = run(&["mirror", "sync", &server.url(), s(&dest)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("packman: error: upstream refused") && err.contains("nothing changed"), "{err}");
    assert_same_names_and_bytes(&before, &served(&dest), "refused");
    assert_same_names_and_bytes(&state_before, &state(), "refused: state");
    server.reset();

    // Removed upstream (keep_versions 1: the publisher drops the hashed file at once): the
    // hashed file leaves the mirror too.
    ok(&["mirror", "sync", &server.url(), s(&dest)]);
    let a_hashed =
        served(&dest).into_keys().find(|k| k.starts_with("targets/packages/p/") && k.ends_with(".a.txt")).unwrap();
    ok(&["repo", "remove", s(&up), "packages/p/a.txt"]);
    let out = ok(&["mirror", "sync", &server.url(), s(&dest)]);
    assert!(!dest.join(&a_hashed).exists(), "{out}");
    assert!(dest.join("targets/packages/p/c.txt").exists());
    // As upstream: the hashed file goes, the plain name stays (the publisher keeps it).
    assert!(up.join("targets/packages/p/a.txt").exists() && dest.join("targets/packages/p/a.txt").exists());
    assert!(!up.join(&a_hashed).exists());
}

#[track_caller]
fn fails(args: &[&str]) -> (String, String) {
    let o = run(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "packman {args:?} succeeded\nstdout:\n{out}\nstderr:\n{err}");
    (out.into_owned(), err.into_owned())
}

#[test]
fn a_signed_mirror_list_is_published_and_downloads_fail_over_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    let src = tmp.path().join("a.txt");
    std::fs::write(&src, "alpha").unwrap();
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "docs/", s(&src)]);
    let primary = TestServer::serve_dir(&up).unwrap();
    let good = TestServer::serve_dir(&up).unwrap();
    let gone = TestServer::serve_dir(&up).unwrap();

    // The publisher's list: one publish per change, read back as published.
    assert!(ok(&["repo", "mirrors", "list", s(&up)]).contains("no mirrors"));
    let add = |name: &str, url: &str| {
        ok(&[
            "repo",
            "mirrors",
            "add",
            s(&up),
            name,
            "--metadata-url",
            &format!("{url}/metadata/"),
            "--targets-url",
            &format!("{url}/targets/"),
        ])
    };
    assert!(add("gone", &gone.url()).contains("published"));
    assert!(add("good", &good.url()).contains("published"));
    let (_, err) =
        fails(&["repo", "mirrors", "add", s(&up), "good", "--metadata-url", "http://x/", "--targets-url", "http://x/"]);
    assert!(err.contains("already listed"), "{err}");
    ok(&["repo", "mirrors", "remove", s(&up), "gone"]);
    let (_, err) = fails(&["repo", "mirrors", "remove", s(&up), "gone"]);
    assert!(err.contains("not a mirror"), "{err}");
    let json: serde_json::Value = serde_json::from_str(&ok(&["repo", "mirrors", "list", s(&up), "--json"])).unwrap();
    assert_eq!(json["mirrors"].as_array().unwrap().len(), 1);
    assert_eq!(json["mirrors"][0]["name"], "good");

    // The primary tampers with the file; an explicit --mirror is down; the signed list's
    // mirror serves it right.
    let sha = packman_tuf::target::describe(b"alpha").hashes.get("sha256").unwrap().to_string();
    let hashed = format!("/targets/{}", packman_tuf::layout::hashed_target("docs/a.txt", &sha));
    primary.set(&hashed, Behavior::Body(b"ALPHA".to_vec()));
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let download = |dl: &Path, client: &str| {
        run(&[
            "download",
            "--root",
            s(&up.join("metadata/1.root.json")),
            "--metadata-url",
            &format!("{}/metadata/", primary.url()),
            "--metadata-dir",
            s(&tmp.path().join(client)),
            "--mirror",
            &format!("{down}/metadata/,{down}/targets/"),
            "--dest",
            s(dl),
            "docs/a.txt",
        ])
    };
    let dl = tmp.path().join("dl");
    let o = download(&dl, "client");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(std::fs::read(dl.join("a.txt")).unwrap(), b"alpha");
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 mirror(s) from the signed list: good"));
    let primary_name = format!("mirror {}/metadata/: served bytes that failed verification", primary.url());
    assert!(err.contains(&primary_name), "{err}");
    assert!(err.contains(&format!("mirror {down}/metadata/: unreachable")), "{err}");

    // mirror sync: the upstream down, --mirror the primary (which tampers), and the signed
    // list's good mirror: the mirror gets the right bytes.
    let dest = tmp.path().join("mirror");
    let o = run(&[
        "mirror",
        "sync",
        &down,
        s(&dest),
        "--root",
        s(&up.join("metadata/1.root.json")),
        "--mirror",
        &format!("{0}/metadata/,{0}/targets/", primary.url()),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(std::fs::read(dest.join(&hashed[1..])).unwrap(), b"alpha");
    assert!(err.contains(&format!("mirror {down}/metadata/: unreachable")), "{err}");
    assert!(err.contains(&primary_name), "{err}");

    // Every source bad: refused, nothing saved.
    good.set_all(Behavior::Status(500));
    let dl2 = tmp.path().join("dl2");
    let o = download(&dl2, "client2");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(!dl2.join("a.txt").exists());
    assert!(err.contains("mirror good: answered HTTP 500"), "{err}");
}

#[test]
fn mirror_verify_exits_with_one_bit_per_kind_of_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    let src = tmp.path().join("a.txt");
    std::fs::write(&src, "alpha").unwrap();
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "docs/", s(&src)]);
    let root = up.join("metadata/1.root.json");
    let dest = tmp.path().join("mirror");
    ok(&["mirror", "sync", &format!("file://{}", s(&up)), s(&dest), "--root", s(&root)]);
    let out = ok(&["mirror", "verify", s(&dest), "--root", s(&root)]);
    assert!(out.contains("metadata verified") && out.trim_end().ends_with("ok"), "{out}");

    let sha = packman_tuf::target::describe(b"alpha").hashes.get("sha256").unwrap().to_string();
    let hashed = dest.join("targets").join(packman_tuf::layout::hashed_target("docs/a.txt", &sha));
    std::fs::write(&hashed, "ALPHA").unwrap();
    std::fs::write(dest.join("targets/docs/junk"), "junk").unwrap();
    let o = run(&["mirror", "verify", s(&dest), "--root", s(&root), "--json"]);
    assert_eq!(o.status.code(), Some(8 | 16), "{}", String::from_utf8_lossy(&o.stdout));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit"], 24);
    assert_eq!(v["extra"][0], "targets/docs/junk");
    assert!(v["corrupt"][0]["path"].as_str().unwrap().ends_with(".a.txt"));
    // --fast checks sizes only: same length, not seen.
    assert_eq!(run(&["mirror", "verify", s(&dest), "--root", s(&root), "--fast"]).status.code(), Some(16));
    std::fs::remove_file(&hashed).unwrap();
    std::fs::remove_file(dest.join("metadata/timestamp.json")).unwrap();
    let o = run(&["mirror", "verify", s(&dest), "--root", s(&root)]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("REFUSED"));
}

#[test]
fn mirror_export_and_import_carry_a_mirror_across_an_air_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, body) in [("a.txt", "alpha"), ("b.txt", "beta")] {
        std::fs::write(src.join(name), body).unwrap();
    }
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/p/", s(&src.join("a.txt"))]);
    let root = up.join("metadata/1.root.json");
    let upstream = format!("file://{}", s(&up));
    let online = tmp.path().join("online");
    ok(&["mirror", "sync", &upstream, s(&online), "--root", s(&root)]);
    let full = tmp.path().join("full.bundle");
    let out = ok(&["mirror", "export", s(&online), s(&full)]);
    assert!(out.contains("1 of 1 target(s)"), "{out}");

    let offline = tmp.path().join("offline");
    // An empty DEST needs the root.
    let (_, err) = fails(&["mirror", "import", s(&full), s(&offline)]);
    assert!(err.contains("--root"), "{err}");
    assert!(!offline.exists());
    let state = tmp.path().join("offline-state");
    let out = ok(&["mirror", "import", s(&full), s(&offline), "--root", s(&root), "--state", s(&state)]);
    assert!(out.contains("1 target(s) added"), "{out}");
    assert_same_names_and_bytes(&served(&online), &served(&offline), "imported");

    // Upstream moves on; the bundle since the offline mirror's snapshot carries one target.
    let snapshot_v = |dir: &Path| -> u64 {
        let ts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metadata/timestamp.json")).unwrap()).unwrap();
        ts["signed"]["meta"]["snapshot.json"]["version"].as_u64().unwrap()
    };
    let since = snapshot_v(&offline).to_string();
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/p/", s(&src.join("b.txt"))]);
    ok(&["mirror", "sync", &upstream, s(&online)]);
    let inc = tmp.path().join("inc.bundle");
    let out = ok(&["mirror", "export", s(&online), s(&inc), "--since", &since]);
    assert!(out.contains("1 of 2 target(s)"), "{out}");

    // Truncated: refused with exit 1, naming the bundle; the offline mirror is unchanged.
    let bytes = std::fs::read(&inc).unwrap();
    let cut = tmp.path().join("cut.bundle");
    std::fs::write(&cut, &bytes[..bytes.len() - 1500]).unwrap();
    let before = files(&tmp.path().join("offline"), &[""]);
    let state = tmp.path().join("offline-state");
    let state_before = files(&state, &[""]);
    let o = run(&["mirror", "import", s(&cut), s(&offline), "--state", s(&state)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("bundle {}", s(&cut))) && err.contains("truncated"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_same_names_and_bytes(&before, &files(&offline, &[""]), "refused");
    assert_same_names_and_bytes(&state_before, &files(&state, &[""]), "refused: state");
    // --json says so too, on stdout.
    let o = run(&["mirror", "import", s(&cut), s(&offline), "--state", s(&state), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["refusal"].as_str().unwrap().contains("truncated"), "{v:#}");
    assert_same_names_and_bytes(&before, &files(&offline, &[""]), "refused, --json");

    let v: serde_json::Value =
        serde_json::from_str(&ok(&["mirror", "import", s(&inc), s(&offline), "--state", s(&state), "--json"])).unwrap();
    assert_eq!((v["ok"].clone(), v["added"].clone(), v["targets"].clone()), (true.into(), 1.into(), 2.into()), "{v:#}");
    assert_same_names_and_bytes(&served(&online), &served(&offline), "incremental import");
    assert_eq!(std::fs::read(offline.join("targets/packages/p/b.txt")).unwrap(), b"beta");
    // The older full bundle is now a rollback.
    let (_, err) = fails(&["mirror", "import", s(&full), s(&offline), "--state", s(&state)]);
    assert!(err.contains(&format!("bundle {} refused", s(&full))), "{err}");
    // DEST holds only what it serves.
    assert!(files(&offline, &[""]).keys().all(|k| k.starts_with("metadata/") || k.starts_with("targets/")));
}

#[test]
fn a_partial_mirror_keeps_its_filter_for_later_syncs_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, body) in [("a.txt", "alpha"), ("b.txt", "beta")] {
        std::fs::write(src.join(name), body).unwrap();
    }
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/Proj_A/", s(&src.join("a.txt"))]);
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/proj-b/", s(&src.join("b.txt"))]);
    let root = up.join("metadata/1.root.json");
    let upstream = format!("file://{}", s(&up));
    let dest = tmp.path().join("mirror");
    let out = ok(&["mirror", "sync", &upstream, s(&dest), "--root", s(&root), "--include", "proj-a"]);
    assert!(out.contains("1 target(s) fetched") && out.contains("1 target(s) left out by the filter"), "{out}");
    assert!(dest.join("targets/packages/Proj_A/a.txt").exists() && !dest.join("targets/packages/proj-b").exists());
    // verify applies the kept filter; --no-filter finds proj-b missing (exit bit 4).
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["mirror", "verify", s(&dest), "--root", s(&root), "--json"])).unwrap();
    assert_eq!((v["filtered_out"].as_u64(), v["exit"].as_u64()), (Some(1), Some(0)), "{v}");
    let o = run(&["mirror", "verify", s(&dest), "--root", s(&root), "--no-filter"]);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stdout));
    // Included later, nothing new upstream: fetched; the first project now excluded: removed.
    let out = ok(&["mirror", "sync", &upstream, s(&dest), "--exclude", "PROJ.A"]);
    assert!(out.contains("1 target(s) fetched") && out.contains("2 file(s) removed"), "{out}");
    assert!(
        dest.join("targets/packages/proj-b/b.txt").exists() && !dest.join("targets/packages/Proj_A/a.txt").exists()
    );
    let out = ok(&["mirror", "sync", &upstream, s(&dest)]);
    assert!(out.contains("up to date") && out.contains("nothing new upstream"), "{out}");
    let out = ok(&["mirror", "sync", &upstream, s(&dest), "--full"]);
    assert!(out.contains("0 target(s) fetched") && out.contains("1 target(s) left out"), "{out}");
}

#[test]
fn mirror_sync_json_summarises_fetched_reused_removed_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("f{i}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        std::fs::write(src.join(n), format!("file {i} ").repeat(100 + i)).unwrap();
    }
    let paths: Vec<String> = names.iter().map(|n| s(&src.join(n)).to_string()).collect();
    let mut add = vec!["repo", "add", s(&up), "--raw", "--prefix", "docs/"];
    add.extend(paths.iter().map(String::as_str));
    ok(&add);
    let root = up.join("metadata/1.root.json");
    let server = TestServer::serve_dir(&up).unwrap();
    let dest = tmp.path().join("mirror");
    let json = |args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let o = run(args);
        let v =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
        (o.status.code(), v)
    };
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let want_keys = [
        "bytes",
        "dest",
        "fetched",
        "filtered_out",
        "metadata_written",
        "mirror_failures",
        "ok",
        "refusals",
        "removed",
        "resumed",
        "reused",
        "root_version",
        "seconds",
        "snapshot_version",
        "targets",
        "timestamp_version",
        "unchanged",
        "upstream",
        "warnings",
    ];

    // 12 files on 3 download threads.
    let (code, v) = json(&["mirror", "sync", &server.url(), s(&dest), "--root", s(&root), "--json", "--jobs", "3"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(keys(&v), want_keys);
    let total: u64 = names.iter().map(|n| std::fs::metadata(src.join(n)).unwrap().len()).sum();
    assert_eq!((v["ok"].as_bool(), v["fetched"].as_u64(), v["reused"].as_u64()), (Some(true), Some(12), Some(0)));
    assert_eq!(v["bytes"].as_u64(), Some(total));
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(v["refusals"], serde_json::json!([]));

    // One more file: one fetched, twelve reused.
    std::fs::write(src.join("new.txt"), "new").unwrap();
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "docs/", s(&src.join("new.txt"))]);
    let (code, v) = json(&["mirror", "sync", &server.url(), s(&dest), "--json"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!((v["fetched"].as_u64(), v["reused"].as_u64(), v["bytes"].as_u64()), (Some(1), Some(12), Some(3)));

    // A tampered target: exit 1, the refusal in the summary, DEST unchanged.
    std::fs::write(src.join("newer.txt"), "newer").unwrap();
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "docs/", s(&src.join("newer.txt"))]);
    let sha = packman_tuf::target::describe(b"newer").hashes.get("sha256").unwrap().to_string();
    server.set(
        &format!("/targets/{}", packman_tuf::layout::hashed_target("docs/newer.txt", &sha)),
        Behavior::Body(b"NEWER".to_vec()),
    );
    let before = served(&dest);
    let (code, v) = json(&["mirror", "sync", &server.url(), s(&dest), "--json"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(keys(&v), want_keys);
    assert_eq!(v["ok"].as_bool(), Some(false));
    let err = v["refusals"][0]["error"].as_str().unwrap();
    assert!(err.contains("docs/newer.txt"), "{err}");
    assert_eq!(v["mirror_failures"][0]["kind"].as_str().map(|k| k.contains("verification")), Some(true), "{v}");
    assert_same_names_and_bytes(&before, &served(&dest), "refused with --json");
    assert!(v["refusals"][0]["url"].as_str().unwrap().ends_with(".newer.txt"), "{v}");
    assert_eq!(v["refusals"][0]["dest_timestamp_version"].as_u64(), Some(3), "{v}");
    server.reset();

    // A timestamp that fails verification: the refusal names the role, the URL and the rule,
    // and how stale DEST now is.
    let mut ts = std::fs::read(up.join("metadata/timestamp.json")).unwrap();
    let at = ts.windows(9).position(|w| w == b"\"expires\"").unwrap() + 12;
    ts[at] = if ts[at] == b'1' { b'2' } else { b'1' };
    server.set("/metadata/timestamp.json", Behavior::Body(ts));
    let (_, err) = fails(&["mirror", "sync", &server.url(), s(&dest)]);
    assert!(err.contains(&format!("{}/metadata/timestamp.json: timestamp: ", server.url())), "{err}");
    assert!(err.contains("threshold not met") || err.contains("malformed"), "{err}");
    assert!(err.contains("timestamp v3, put in place") && err.contains(" ago, which expires in "), "{err}");
    let (code, v) = json(&["mirror", "sync", &server.url(), s(&dest), "--json"]);
    assert_eq!(code, Some(1));
    assert_eq!(v["refusals"][0]["role"].as_str(), Some("timestamp"), "{v}");
    assert!(v["refusals"][0]["dest_timestamp_age_seconds"].is_u64(), "{v}");
    assert_same_names_and_bytes(&before, &served(&dest), "refused timestamp");
}

#[test]
fn a_sync_killed_mid_download_resumes_without_fetching_verified_files_again() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    for (name, body) in [("a.txt", "alpha"), ("b.txt", "beta")] {
        std::fs::write(tmp.path().join(name), body).unwrap();
    }
    ok(&[
        "repo",
        "add",
        s(&up),
        "--raw",
        "--prefix",
        "docs/",
        s(&tmp.path().join("a.txt")),
        s(&tmp.path().join("b.txt")),
    ]);
    let hashed = |path: &str, data: &[u8]| {
        let sha = packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
        packman_tuf::layout::hashed_target(path, &sha)
    };
    let (a, b) = (hashed("docs/a.txt", b"alpha"), hashed("docs/b.txt", b"beta"));
    let server = TestServer::serve_dir(&up).unwrap();
    server.set(&format!("/targets/{b}"), Behavior::Drip(std::time::Duration::from_secs(2)));
    let dest = tmp.path().join("mirror");
    let state = tmp.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_packman"))
        .args(["mirror", "sync", &server.url(), s(&dest), "--root", s(&up.join("metadata/1.root.json"))])
        .args(["--state", s(&state), "--jobs", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    // a.txt verified into the journal while b.txt drips in: then SIGKILL.
    let journaled = dest.join(".packman-mirror-work/verified").join(&a);
    let t0 = std::time::Instant::now();
    while !journaled.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "a.txt never reached the journal: {} {:?} {:?}",
            std::fs::read_to_string(tmp.path().join("err")).unwrap(),
            files(&dest, &[""]).keys().collect::<Vec<_>>(),
            server.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dest.join("metadata/timestamp.json").exists(), "the killed sync committed");

    server.reset();
    server.clear_log();
    let out = ok(&[
        "mirror",
        "sync",
        &server.url(),
        s(&dest),
        "--state",
        s(&state),
        "--root",
        s(&up.join("metadata/1.root.json")),
    ]);
    let got: Vec<String> = server.requests().into_iter().filter(|u| u.starts_with("/targets/")).collect();
    assert_eq!(got, [format!("/targets/{b}")], "{out}");
    assert!(out.contains("1 target(s) fetched") && out.contains("1 resumed"), "{out}");
    assert_same_names_and_bytes(&files(&up, &["targets"]), &files(&dest, &["targets"]), "after the resumed sync");
    assert_eq!(
        std::fs::read(dest.join("metadata/timestamp.json")).unwrap(),
        std::fs::read(up.join("metadata/timestamp.json")).unwrap()
    );
    assert!(!dest.join(".packman-mirror-work").exists());
}

#[test]
fn mirror_verify_repair_fetches_again_only_what_is_wrong_and_refuses_a_bad_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    ok(&["repo", "init", s(&up), "--bins", "4"]);
    let bodies = [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")];
    let mut args =
        vec!["repo".to_string(), "add".into(), s(&up).into(), "--raw".into(), "--prefix".into(), "packages/".into()];
    for (name, body) in bodies {
        std::fs::write(tmp.path().join(name), body).unwrap();
        args.push(s(&tmp.path().join(name)).into());
    }
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let hashed = |path: &str, data: &[u8]| {
        let sha = packman_tuf::target::describe(data).hashes.get("sha256").unwrap().to_string();
        packman_tuf::layout::hashed_target(path, &sha)
    };
    let (a, b) = (hashed("packages/a.txt", b"alpha"), hashed("packages/b.txt", b"beta"));
    let root = up.join("metadata/1.root.json");
    let server = TestServer::serve_dir(&up).unwrap();
    let dest = tmp.path().join("mirror");
    ok(&["mirror", "sync", &server.url(), s(&dest), "--root", s(&root)]);

    // a corrupt at the signed length (a sync would reuse it), b lost, an orphaned hashed
    // file and a file of no packman naming.
    std::fs::write(dest.join("targets").join(&a), "ALPHA").unwrap();
    std::fs::remove_file(dest.join("targets").join(&b)).unwrap();
    let orphan = hashed("packages/old.txt", b"old");
    std::fs::write(dest.join("targets").join(&orphan), "old").unwrap();
    std::fs::write(dest.join("targets/README.txt"), "junk").unwrap();
    // With nothing new upstream, a plain sync stops after the timestamp and mends nothing.
    ok(&["mirror", "sync", &server.url(), s(&dest)]);
    assert_eq!(std::fs::read(dest.join("targets").join(&a)).unwrap(), b"ALPHA");

    // The upstream now tampers with a: the repair is refused and DEST stays as it was.
    server.set(&format!("/targets/{a}"), Behavior::Body(b"ALPHX".to_vec()));
    let before = files(&dest, &[""]);
    let o = run(&["mirror", "verify", s(&dest), "--root", s(&root), "--repair", &server.url()]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("repair from") && err.contains("packages/a.txt") && err.contains("nothing changed"), "{err}");
    assert!(out.contains(&format!("corrupt  targets/{a}")) && out.contains(&format!("missing  targets/{b}")), "{out}");
    assert_same_names_and_bytes(&before, &files(&dest, &[""]), "after a refused repair");

    server.reset();
    server.clear_log();
    let o = run(&["mirror", "verify", s(&dest), "--root", s(&root), "--repair", &server.url(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Only the unexplained file is left, for the operator: exit bit 16 alone.
    assert_eq!(o.status.code(), Some(16), "{v:#}");
    assert_eq!(v["extra"], serde_json::json!(["targets/README.txt"]), "{v:#}");
    assert_eq!(v["repairs"][0]["fetched"], serde_json::json!(["packages/a.txt", "packages/b.txt"]), "{v:#}");
    assert_eq!(v["repairs"][0]["removed"], serde_json::json!([orphan]), "{v:#}");
    let mut fetched: Vec<String> = server.requests().into_iter().filter(|u| u.starts_with("/targets/")).collect();
    fetched.sort();
    assert_eq!(fetched, [format!("/targets/{a}"), format!("/targets/{b}")], "only what was wrong is fetched");
    std::fs::remove_file(dest.join("targets/README.txt")).unwrap();
    assert_same_names_and_bytes(&files(&up, &["targets"]), &files(&dest, &["targets"]), "after the repair");
    // The plain name (a link to the corrupt file before) holds the signed bytes again.
    assert_eq!(std::fs::read(dest.join("targets/packages/a.txt")).unwrap(), b"alpha");
    let out = ok(&["mirror", "verify", s(&dest), "--root", s(&root)]);
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

/// Issue 18's class of bug on the mirror's surfaces: a `--root` given for a mirror that
/// already trusts one was ignored without a word. Now it must be the trusted root or an
/// older one leading to it through signed rotations (the rule `download --root` applies);
/// anything else is refused, naming the file, both versions and the rule, and DEST and the
/// mirror's state stay byte for byte as they were.
#[test]
fn a_root_given_again_must_be_the_mirrors_or_lead_to_it() {
    use packman_testkit::tree_state;
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upstream");
    let other = tmp.path().join("other");
    for dir in [&up, &other] {
        ok(&["repo", "init", s(dir), "--bins", "4"]);
    }
    std::fs::write(tmp.path().join("a.txt"), "alpha").unwrap();
    ok(&["repo", "add", s(&up), "--raw", "--prefix", "packages/", s(&tmp.path().join("a.txt"))]);
    let upstream = format!("file://{}", s(&up));
    let (dest, state) = (tmp.path().join("mirror"), tmp.path().join("state"));
    let root1 = tmp.path().join("root-v1.json");
    std::fs::copy(up.join("metadata/1.root.json"), &root1).unwrap();
    let foreign = tmp.path().join("foreign-root.json");
    std::fs::copy(other.join("metadata/1.root.json"), &foreign).unwrap();
    ok(&["mirror", "sync", &upstream, s(&dest), "--root", s(&root1), "--state", s(&state)]);

    let refused = |root: &Path, args: &[&str], has: &[&str]| {
        let before = (tree_state(&dest), tree_state(&state));
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "packman {args:?}: {err}");
        for h in [
            &format!("Refusing {}: root v", root.display())[..],
            "rotations the repository signed",
            "Nothing was changed",
        ]
        .iter()
        .chain(has)
        {
            assert!(err.contains(h), "packman {args:?}: {h:?} not in\n{err}");
        }
        assert_eq!((tree_state(&dest), tree_state(&state)), before, "packman {args:?} changed DEST or the state");
    };
    let sync = |root: &Path| {
        ["mirror", "sync", &upstream, s(&dest), "--root", s(root), "--state", s(&state)].map(String::from)
    };
    // Another repository's root, same version as the trusted one.
    refused(&foreign, &args(&sync(&foreign)), &["root v1 is neither", "v1)", "same version, different bytes"]);
    // --json names the file and the rule too.
    let owned = sync(&foreign);
    let mut json_args = args(&owned);
    json_args.push("--json");
    let o = run(&json_args);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let refusal = &v["refusals"][0];
    assert!(refusal["error"].as_str().unwrap().contains(&format!("{} (v1) differs", foreign.display())), "{v:#}");
    assert!(
        refusal["rule"].as_str().unwrap().contains("linked to it through rotations the repository signed"),
        "{v:#}"
    );

    // The upstream rotates its root twice; the mirror follows, given its first root again.
    for _ in 0..2 {
        ok(&["repo", "key", "rotate", s(&up), "root"]);
    }
    assert!(up.join("metadata/3.root.json").exists());
    ok(&args(&sync(&root1)));
    let trusted = std::fs::read(state.join("metadata/root.json")).unwrap();
    assert_eq!(trusted, std::fs::read(up.join("metadata/3.root.json")).unwrap());
    // The trusted root itself, and each older root of its chain, are still accepted.
    let root2 = tmp.path().join("root-v2.json");
    std::fs::copy(up.join("metadata/2.root.json"), &root2).unwrap();
    let root3 = tmp.path().join("root-v3.json");
    std::fs::copy(up.join("metadata/3.root.json"), &root3).unwrap();
    for root in [&root1, &root2, &root3] {
        ok(&args(&sync(root)));
    }
    // Another repository's older-numbered root: not in the chain (v2 is not signed by its keys).
    refused(&foreign, &args(&sync(&foreign)), &["root v1 is neither", "v3)", "Refused because: version 2: "]);
    // A newer root must be a rotation the trusted one signs: another repository's v4 is not.
    for _ in 0..3 {
        ok(&["repo", "key", "rotate", s(&other), "root"]);
    }
    let foreign4 = tmp.path().join("foreign-root-v4.json");
    std::fs::copy(other.join("metadata/4.root.json"), &foreign4).unwrap();
    refused(&foreign4, &args(&sync(&foreign4)), &["root v4 is neither", "v3)", "Refused because: version 4: "]);
    // The upstream's own newer root (a script passing the latest root.json) is accepted:
    // the trusted v3 signs the step to v4, fetched from the upstream; the sync takes it.
    ok(&["repo", "key", "rotate", s(&up), "root"]);
    let root4 = tmp.path().join("root-v4.json");
    std::fs::copy(up.join("metadata/4.root.json"), &root4).unwrap();
    ok(&args(&sync(&root4)));
    assert_eq!(std::fs::read(state.join("metadata/root.json")).unwrap(), std::fs::read(&root4).unwrap());

    // `mirror import` into a mirror with state, and `mirror verify --repair`: the same rule.
    let bundle = tmp.path().join("full.bundle");
    ok(&["mirror", "export", s(&dest), s(&bundle)]);
    let import = |root: &Path| -> Vec<String> {
        ["mirror", "import", s(&bundle), s(&dest), "--root", s(root), "--state", s(&state)].map(String::from).to_vec()
    };
    refused(&foreign, &args(&import(&foreign)), &["v4)", "packman mirror import", "NEW_DEST"]);
    ok(&args(&import(&root1)));
    refused(
        &foreign,
        &["mirror", "verify", s(&dest), "--root", s(&foreign), "--state", s(&state), "--repair", &upstream],
        &["repair from", "v4)"],
    );
}
