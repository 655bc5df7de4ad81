//! Helpers shared by the end-to-end tests that need outside tools (tmux, chromium).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tool the test needs: missing under CI is a failure, elsewhere a skip.
pub fn need(tool: &str, args: &[&str]) -> bool {
    match Command::new(tool).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => true,
        other => {
            if std::env::var_os("CI").is_some() {
                panic!("{tool} is needed in CI (.ci/run installs it): {other:?}");
            }
            eprintln!("skipped: {tool} not available ({other:?})");
            false
        }
    }
}

fn b64_urlsafe(data: &[u8]) -> String {
    <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(data)
}

/// A pure-Python wheel `{project}-{version}-py3-none-any.whl` with module `{project}`.
pub fn wheel(dir: &Path, project: &str, version: &str) -> PathBuf {
    let path = dir.join(format!("{project}-{version}-py3-none-any.whl"));
    let di = format!("{project}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {project}\nVersion: {version}\nRequires-Python: >=3.8\n\n");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("{project}/__init__.py"), format!("VERSION = {version:?}\n").into_bytes()),
        (format!("{di}/METADATA"), metadata.into_bytes()),
        (
            format!("{di}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: packman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
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
