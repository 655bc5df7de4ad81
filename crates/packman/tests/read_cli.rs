//! `packman search`, `info`, `download PROJECT` and `verify` as processes: the real binary,
//! PACKMAN_HOME in a temporary directory, two repositories made with `packman repo
//! init/add` from real wheels and sdists, served by packman-testkit on 127.0.0.1 (which can
//! tamper), trusted with `packman trust add`, one owning `acme-*`, the other everything else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{fails, has_all, ok, sdist, sha256, text, wheel_tagged as wheel};
use packman_testkit::{Behavior, TestServer};
use serde_json::Value;

mod common;

struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
}

struct Repo {
    dir: PathBuf,
    server: TestServer,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        World { tmp, home }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn packman(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_packman"))
            .args(args)
            .env("PACKMAN_HOME", &self.home)
            .env_remove("VIRTUAL_ENV")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run packman")
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&ok(self.packman(args))).unwrap()
    }

    /// `packman repo init` + `repo add` of `files`, served, trusted as `name` for `projects`.
    fn repo(&self, name: &str, files: &[PathBuf], projects: &str) -> Repo {
        let dir = self.p(name);
        ok(self.packman(&["repo", "init", dir.to_str().unwrap(), "--bins", "4"]));
        let mut args = vec!["repo".to_string(), "add".into(), dir.display().to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        ok(self.packman(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        let server = TestServer::serve_dir(&dir).unwrap();
        let root = self.p(&format!("{name}-root.json"));
        std::fs::copy(dir.join("metadata/1.root.json"), &root).unwrap();
        let url = format!("{}/", server.url());
        ok(self.packman(&["trust", "add", name, &url, "--root", root.to_str().unwrap(), "--projects", projects]));
        Repo { dir, server }
    }

    /// An executable that answers packman's question as a Python would: its version, then
    /// its supported tags (none: no `packaging`).
    fn fake_python(&self, name: &str, tags: &[&str]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.p(name);
        let mut script = "#!/bin/sh\necho 3.11.7\n".to_string();
        for t in tags {
            script.push_str(&format!("echo {t}\n"));
        }
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

/// Every name in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn search_info_download_and_verify_read_signed_pages_from_the_owning_repository() {
    let w = World::new();
    let src = w.p("dist");
    let any10 = wheel(&src, "acme_widgets", "1.0", "py3-none-any", "v = 10\n");
    let any11 = wheel(&src, "acme_widgets", "1.1", "py3-none-any", "v = 11\n");
    let cp11 = wheel(&src, "acme_widgets", "1.1", "cp311-cp311-linux_x86_64", "v = 11 # compiled\n");
    let sd11 = sdist(&src, "acme_widgets", "1.1");
    let any12 = wheel(&src, "acme_widgets", "1.2", "py3-none-any", "v = 12\n");
    let internal =
        w.repo("internal", &[any10.clone(), any11.clone(), cp11.clone(), sd11.clone(), any12.clone()], "acme-*");
    ok(w.packman(&[
        "repo",
        "yank",
        internal.dir.to_str().unwrap(),
        "acme_widgets-1.2-py3-none-any.whl",
        "--reason",
        "broken build",
    ]));
    // public has its own acme-widgets and acme-tools: squatted names the ring routes to internal.
    let other = w.p("other");
    let squat = wheel(&other, "acme_widgets", "9.0", "py3-none-any", "evil = 1\n");
    let tools = wheel(&other, "acme_tools", "1.0", "py3-none-any", "evil = 2\n");
    let six = wheel(&other, "six", "1.17.0", "py2.py3-none-any", "six = 1\n");
    let public = w.repo("public", &[squat.clone(), tools, six.clone()], "*");

    // search: names containing the text (normalised), each with its owner only.
    let out = ok(w.packman(&["search", "ACME"]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["acme-widgets  internal"], "{out}");
    assert_eq!(ok(w.packman(&["search", "-q", "i"])), "acme-widgets\nsix\n");
    let j = w.json(&["search", "--json", "S"]);
    let hits: Vec<Value> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|h| serde_json::json!({"name": h["name"], "repository": h["repository"]}))
        .collect();
    assert_eq!(
        hits,
        [
            serde_json::json!({"name": "acme-widgets", "repository": "internal"}),
            serde_json::json!({"name": "six", "repository": "public"})
        ]
    );
    // Read online: each hit says so (see offline_cli.rs for the offline case).
    assert!(j.as_array().unwrap().iter().all(|h| h["freshness"]["offline"] == false), "{j}");
    let o = w.packman(&["search", "nothing-like-it"]);
    assert_eq!(ok(o.clone()), "");
    has_all(&text(&o).1, &["no project"]);

    // info: versions newest first, files, yanked with its reason, from internal only.
    let out = ok(w.packman(&["info", "Acme.Widgets"]));
    has_all(
        &out,
        &[
            "acme-widgets (repository internal, signed page simple/acme-widgets/index.json)",
            "  1.2  [yanked]",
            "[yanked: broken build]",
            "acme_widgets-1.1-cp311-cp311-linux_x86_64.whl",
            &format!("sha256 {}", sha256(&std::fs::read(&cp11).unwrap())),
            "requires-python >=3.8",
            "uploaded 20",
        ],
    );
    assert!(!out.contains("9.0"), "{out}");
    assert_eq!(ok(w.packman(&["info", "-q", "acme-widgets"])), "1.2\n1.1\n1.0\n");
    let j = w.json(&["info", "--json", "acme-widgets"]);
    assert_eq!((j["name"].as_str(), j["repository"].as_str()), (Some("acme-widgets"), Some("internal")));
    let v = &j["versions"];
    assert_eq!((v[0]["version"].as_str(), v[0]["yanked"].as_bool()), (Some("1.2"), Some(true)));
    assert_eq!(v[0]["files"][0]["yanked"], "broken build");
    assert_eq!(v[1]["files"].as_array().unwrap().len(), 3);
    let f = v[2]["files"][0].clone();
    assert_eq!(f["size"].as_u64(), Some(std::fs::metadata(&any10).unwrap().len()));
    assert_eq!(f["sha256"].as_str(), Some(sha256(&std::fs::read(&any10).unwrap()).as_str()));
    // Owned by internal, which lacks it: never read from public.
    let (_, err) = fails(w.packman(&["info", "acme-tools"]));
    has_all(&err, &["belongs to repository \"internal\"", "never takes a project from a repository other"]);
    // download too: public's acme-tools is never fetched, nothing is saved.
    let confused = w.p("confused");
    let (_, err) = fails(w.packman(&["download", "acme-tools", "-d", confused.to_str().unwrap()]));
    has_all(&err, &["belongs to repository \"internal\"", "never takes a project from a repository other"]);
    assert!(!confused.exists() || names(&confused).is_empty(), "{:?}", names(&confused));

    // download: the newest version not yanked, the wheel this interpreter prefers.
    let py = w.fake_python("python-cp311", &["cp311-cp311-linux_x86_64", "py3-none-any"]);
    let dest = w.p("out");
    let out =
        ok(w.packman(&["download", "acme-widgets", "-d", dest.to_str().unwrap(), "--python", py.to_str().unwrap()]));
    has_all(&out, &["acme_widgets-1.1-cp311-cp311-linux_x86_64.whl: verified", "repository internal"]);
    assert_eq!(names(&dest), ["acme_widgets-1.1-cp311-cp311-linux_x86_64.whl"]);
    assert_eq!(std::fs::read(dest.join(cp11.file_name().unwrap())).unwrap(), std::fs::read(&cp11).unwrap());
    // Without `packaging`: only py3-none-any, said on stderr. Again: already there.
    let bare = w.fake_python("python-bare", &[]);
    let o = w.packman(&["download", "acme-widgets", "-d", dest.to_str().unwrap(), "--python", bare.to_str().unwrap()]);
    has_all(&text(&o).1, &["no `packaging` module", "py3-none-any"]);
    has_all(&ok(o), &["acme_widgets-1.1-py3-none-any.whl: verified"]);
    let j = w.json(&["download", "acme-widgets==1.1", "-d", dest.to_str().unwrap(), "--all", "--json"]);
    let got: Vec<(&str, bool)> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["filename"].as_str().unwrap(), d["cached"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("acme_widgets-1.1-cp311-cp311-linux_x86_64.whl", true),
            ("acme_widgets-1.1-py3-none-any.whl", true),
            ("acme_widgets-1.1.tar.gz", false)
        ]
    );
    assert_eq!(j[2]["repository"], "internal");
    // A yanked version only when asked for by ==.
    assert_eq!(
        ok(w.packman(&[
            "download",
            "-q",
            "acme-widgets==1.2",
            "-d",
            dest.to_str().unwrap(),
            "--python",
            bare.to_str().unwrap()
        ])),
        ""
    );
    assert!(dest.join("acme_widgets-1.2-py3-none-any.whl").is_file());
    let (_, err) = fails(w.packman(&["download", "acme-widgets==7", "-d", dest.to_str().unwrap(), "--all"]));
    has_all(&err, &["no version 7", "1.2, 1.1, 1.0"]);

    // verify: yes for a good file, naming the repository; no for a modified one.
    let good = dest.join("acme_widgets-1.1-py3-none-any.whl");
    let out = ok(w.packman(&["verify", good.to_str().unwrap(), six.to_str().unwrap()]));
    has_all(
        &out,
        &[
            "acme_widgets-1.1-py3-none-any.whl: ok: repository internal signs it as packages/acme-widgets/acme_widgets-1.1-py3-none-any.whl",
            "six-1.17.0-py2.py3-none-any.whl: ok: repository public",
        ],
    );
    let modified = w.p("mod/acme_widgets-1.1-py3-none-any.whl");
    std::fs::create_dir_all(modified.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(&good).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&modified, &bytes).unwrap();
    let (out, err) =
        fails(w.packman(&["verify", good.to_str().unwrap(), modified.to_str().unwrap(), squat.to_str().unwrap()]));
    has_all(&out, &["ok: repository internal", "mod/acme_widgets-1.1-py3-none-any.whl: NOT SIGNED: its bytes differ from packages/acme-widgets/acme_widgets-1.1-py3-none-any.whl as repository \"internal\" signs it"]);
    // public signs the squatted 9.0, but acme-widgets is internal's: not a trusted file.
    has_all(&out, &["acme_widgets-9.0-py3-none-any.whl: NOT SIGNED: repository \"internal\", which owns project \"acme-widgets\", lists no file"]);
    has_all(&err, &["2 of 3 file(s) are not"]);
    let o = w.packman(&["verify", "--json", modified.to_str().unwrap()]);
    let j: Value = serde_json::from_str(&fails(o).0).unwrap();
    assert_eq!(j[0]["signed"], false);
    assert_eq!(ok(w.packman(&["verify", "-q", good.to_str().unwrap()])), "");

    // A host that swaps a wheel: refused, nothing under the final name, no temp file left.
    let w10 = std::fs::read(&any10).unwrap();
    internal.server.set(
        &format!("/targets/packages/acme-widgets/{}.acme_widgets-1.0-py3-none-any.whl", sha256(&w10)),
        Behavior::Body(b"PK evil wheel".to_vec()),
    );
    let fresh = w.p("fresh");
    let (_, err) = fails(w.packman(&[
        "download",
        "acme-widgets==1.0",
        "-d",
        fresh.to_str().unwrap(),
        "--python",
        bare.to_str().unwrap(),
    ]));
    has_all(&err, &["repository internal", "acme_widgets-1.0-py3-none-any.whl", "nothing saved as"]);
    assert_eq!(names(&fresh), Vec::<String>::new());
    drop(public);
}

#[test]
fn read_commands_without_a_ring_say_how_to_make_one() {
    let w = World::new();
    for args in [&["search", "x"][..], &["info", "x"], &["download", "x"], &["verify", "x-1.0.tar.gz"]] {
        let (_, err) = fails(w.packman(args));
        has_all(&err, &["lists no repository", "packman trust add"]);
    }
}
