//! Pushing a repository to a real S3-compatible server (s3s-fs, started here on 127.0.0.1).
//! CI installs s3s-fs (`cargo install s3s-fs --features binary`); elsewhere the test says
//! it is skipped unless the binary is on PATH.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use packman_repo::publisher::{InitOptions, Repository};
use packman_store::Remote;
use packman_tuf::OffsetDateTime;

struct S3 {
    child: Child,
    root: tempfile::TempDir,
    port: u16,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_s3() -> Option<S3> {
    let bin = std::env::var("S3S_FS_BIN").unwrap_or_else(|_| "s3s-fs".into());
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bucket")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "packman",
            "--secret-key",
            "packman-secret",
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            // Under CI this panics: CI installs s3s-fs.
            packman_testkit::skipped(&format!(
                "s3s-fs ({bin}) not available ({e}); install with `cargo install s3s-fs --features binary`"
            ));
            return None;
        }
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(S3 { child, root, port })
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p: PathBuf = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if !rel.contains("/.tmp-") && !rel.starts_with(".") && !rel.contains(".s3s") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

fn published(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut t = BTreeMap::new();
    for top in ["metadata", "targets"] {
        for (k, v) in tree(&dir.join(top)) {
            t.insert(format!("{top}/{k}"), v);
        }
    }
    t
}

#[test]
fn push_mirrors_the_published_tree_in_order_and_incrementally() {
    let Some(s3) = start_s3() else { return };
    // object_store reads these; set before building the remote.
    std::env::set_var("AWS_ACCESS_KEY_ID", "packman");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "packman-secret");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT", format!("http://127.0.0.1:{}", s3.port));
    std::env::set_var("AWS_ALLOW_HTTP", "true");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let now = OffsetDateTime::now_utc();
    let opts = InitOptions { bins: 16, ..InitOptions::default() };
    let mut repo = Repository::init(&dir, &opts, now).unwrap();
    let mut nopass = |_: &packman_repo::keys::KeyFile| -> Result<String, packman_repo::Error> { unreachable!() };
    repo.add_target_bytes("docs/a.txt", b"first", None).unwrap();
    repo.publish(&mut nopass).unwrap();

    let remote = Remote::from_url("s3://bucket/mirror").unwrap();
    let r1 = remote.push(&dir).unwrap();
    let local = published(&dir);
    assert_eq!(r1.uploaded, local.len());
    let stored = tree(&s3.root.path().join("bucket/mirror"));
    assert_eq!(stored, local, "the bucket holds exactly the published tree");

    // Nothing changed: nothing uploaded.
    let r2 = remote.push(&dir).unwrap();
    assert_eq!((r2.uploaded, r2.deleted), (0, 0));

    // One more file: its target, its bin, a snapshot and the timestamp; old versions that
    // the publisher garbage-collected disappear from the bucket too.
    for i in 0..4 {
        repo.add_target_bytes(&format!("docs/b{i}.txt"), format!("more {i}").as_bytes(), None).unwrap();
        repo.publish(&mut nopass).unwrap();
    }
    let r3 = remote.push(&dir).unwrap();
    assert!(r3.uploaded >= 4 && r3.deleted >= 1, "{r3:?}");
    assert_eq!(tree(&s3.root.path().join("bucket/mirror")), published(&dir));
    assert_eq!(remote.list().unwrap().len(), published(&dir).len());
}

#[test]
fn a_bad_store_url_is_refused_clearly() {
    let err = Remote::from_url("ftp://x/y").err().unwrap();
    assert!(err.to_string().contains("only s3://"), "{err}");
    let err = Remote::from_url("s3:///prefix").err().unwrap();
    assert!(err.to_string().contains("no bucket"), "{err}");
}
