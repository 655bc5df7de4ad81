//! `packman serve` as a process: serves what `packman repo` published, logs each request as a
//! JSON line, never serves the keys next to the published tree, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn packman() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_packman"));
    c.env_remove("PACKMAN_PASSPHRASE");
    c
}

fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

#[test]
fn serves_a_published_repository_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let ok = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    ok(packman().args(["repo", "init"]).arg(&dir).args(["--bins", "16"]));
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"release notes\n").unwrap();
    ok(packman().args(["repo", "add", "--raw", "--prefix", "docs/"]).arg(&dir).arg(&file));

    let log = tmp.path().join("access.log");
    let mut child = packman()
        .arg("serve")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--access-log"])
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let addr = first.trim().rsplit("http://").next().unwrap().trim_end_matches('/').to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{first}");

    let (status, body) = get(&addr, "/metadata/timestamp.json");
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(dir.join("metadata/timestamp.json")).unwrap());
    // Consistent snapshots: the target is stored under its hash-prefixed name.
    let stored = std::fs::read_dir(dir.join("targets/docs")).unwrap().next().unwrap().unwrap().file_name();
    let stored = stored.to_str().unwrap();
    assert!(stored.ends_with(".notes.txt"));
    assert_eq!(get(&addr, &format!("/targets/docs/{stored}")), (200, b"release notes\n".to_vec()));
    let key = std::fs::read_dir(dir.join("keys")).unwrap().next().unwrap().unwrap().file_name();
    assert_eq!(get(&addr, &format!("/keys/{}", key.to_string_lossy())).0, 404);

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");

    // One JSON object per request, written out before exit.
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["path"], "/metadata/timestamp.json");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[2]["status"], 404);
}

#[test]
fn refuses_what_it_cannot_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let out = packman().arg("serve").arg(tmp.path().join("missing")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));

    let out = packman().arg("serve").arg(tmp.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not a repository or mirror directory"), "{err}");

    std::fs::create_dir(tmp.path().join("metadata")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = packman().arg("serve").arg(tmp.path()).args(["--listen", &addr]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

/// One descriptor per connection: the usual soft limit of 1024 is raised toward the hard one.
#[test]
fn raises_the_open_file_limit_for_its_connections() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("metadata")).unwrap();
    let script = format!(
        "ulimit -Sn 256 && exec {} serve {} --listen 127.0.0.1:0 --access-log off --max-connections 300",
        env!("CARGO_BIN_EXE_packman"),
        tmp.path().display()
    );
    let mut child = Command::new("sh").args(["-c", &script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let hard: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap_or(u64::MAX);
    assert_eq!(soft, hard.min(300 + 256), "{line}");
}
