//! Helpers shared by the end-to-end tests: running the binary and reading its output,
//! building real-shaped distributions, and checking for outside tools (tmux, chromium).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A tool the test needs: missing under CI is a failure, elsewhere a skip.
pub fn need(tool: &str, args: &[&str]) -> bool {
    match Command::new(tool).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => true,
        other => {
            // Under CI this panics: .ci/run installs it.
            packman_testkit::skipped(&format!("{tool} not available ({other:?})"));
            false
        }
    }
}

fn b64_urlsafe(data: &[u8]) -> String {
    <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(data)
}

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_packman")
}

pub fn sha256(data: &[u8]) -> String {
    packman_tuf::target::describe(data).hashes.get("sha256").unwrap_or_default().to_string()
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts success; returns stdout.
#[track_caller]
pub fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "packman failed ({:?})\nstdout:\n{out}\nstderr:\n{err}", o.status);
    out
}

/// Asserts a clean failure (exit 1, an error line, no panic); returns stdout and stderr.
#[track_caller]
pub fn fails(o: Output) -> (String, String) {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("packman: error: ") && !err.contains("panicked"), "{err}");
    (out, err)
}

/// [`fails`], returning stderr only.
#[track_caller]
pub fn fails_err(o: Output) -> String {
    fails(o).1
}

#[track_caller]
pub fn has_all(s: &str, needles: &[&str]) {
    for n in needles {
        assert!(s.contains(n), "{n:?} missing from:\n{s}");
    }
}

/// A pure-Python wheel `{project}-{version}-py3-none-any.whl` with module `{project}`.
pub fn wheel(dir: &Path, project: &str, version: &str) -> PathBuf {
    wheel_tagged(dir, project, version, "py3-none-any", &format!("VERSION = {version:?}\n"))
}

/// A wheel `{dist}-{version}-{tag}.whl` as a build backend writes one, module `{dist}`
/// holding `payload`.
pub fn wheel_tagged(dir: &Path, dist: &str, version: &str, tag: &str, payload: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{dist}-{version}-{tag}.whl"));
    let di = format!("{dist}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nRequires-Python: >=3.8\n\n");
    let purelib = tag.ends_with("-none-any");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("{dist}/__init__.py"), payload.as_bytes().to_vec()),
        (format!("{di}/METADATA"), metadata.into_bytes()),
        (
            format!("{di}/WHEEL"),
            format!("Wheel-Version: 1.0\nGenerator: packman-tests\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n")
                .into_bytes(),
        ),
    ];
    let mut record = String::new();
    for (n, b) in &files {
        let digest = ring::digest::digest(&ring::digest::SHA256, b);
        record.push_str(&format!("{n},sha256={},{}\n", b64_urlsafe(digest.as_ref()), b.len()));
    }
    record.push_str(&format!("{di}/RECORD,,\n"));
    files.push((format!("{di}/RECORD"), record.into_bytes()));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (n, b) in files {
        z.start_file(n, opts).unwrap();
        z.write_all(&b).unwrap();
    }
    z.finish().unwrap();
    path
}

/// An sdist `{name}-{version}.tar.gz` with PKG-INFO and pyproject.toml.
pub fn sdist(dir: &Path, name: &str, version: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{version}.tar.gz"));
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n").into_bytes();
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    let pyproject = format!("[project]\nname = \"{name}\"\nversion = \"{version}\"\n");
    for (n, b) in [("PKG-INFO", metadata.as_slice()), ("pyproject.toml", pyproject.as_bytes())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(b.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, format!("{name}-{version}/{n}"), b).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
    path
}
