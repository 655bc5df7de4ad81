//! Python distributions in a packman repository.
//!
//! Layout of targets (all listed in hashed bins, so clients verify each before use):
//! - `packages/<project>/<filename>`: the distribution. Custom data: project, version,
//!   requires-python, upload-time, yanked.
//! - `packages/<project>/<filename>.metadata`: a wheel's core metadata (PEP 658).
//! - `simple/<project>/index.json` and `index.html`: the project's simple API pages (PEP 691
//!   JSON, PEP 503 HTML), linking `../../packages/<project>/<filename>`.
//! - `simple/index.json` and `index.html`: the project list.
//!
//! Distribution files and pages are also written under their plain names, so that
//! `DIR/targets/simple/` works as a pip index from any static host. A file name, once
//! published with some content, is never reused with other content (as on PyPI).

use std::collections::BTreeMap;
use std::path::Path;

use packman_index::{Distribution, FileEntry};

use crate::publisher::Repository;
use crate::Error;

/// Pending page changes of one batch, by project.
#[derive(Default)]
pub struct Pages {
    projects: BTreeMap<String, Vec<FileEntry>>,
    index: Option<Vec<String>>,
    /// The project list gained or lost a project (it is rewritten only then).
    index_changed: bool,
}

pub struct Added {
    pub project: String,
    pub version: String,
    pub path: String,
    pub bin: String,
    /// The same file was already published: nothing changed.
    pub unchanged: bool,
}

fn rfc3339(t: packman_tuf::OffsetDateTime) -> String {
    packman_tuf::Expires(t).to_string()
}

pub fn package_path(project: &str, filename: &str) -> String {
    format!("packages/{project}/{filename}")
}

fn idx(e: packman_index::IndexError) -> Error {
    Error::Invalid(e.to_string())
}

impl Pages {
    /// The file entries of `project`'s current page (empty for a new project).
    fn load(&mut self, repo: &Repository, project: &str) -> Result<&mut Vec<FileEntry>, Error> {
        if !self.projects.contains_key(project) {
            let p = repo.dir().join("targets/simple").join(project).join("index.json");
            let files = match std::fs::read(&p) {
                Ok(bytes) => parse_page(&p, &bytes)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(crate::io(&p, e)),
            };
            self.projects.insert(project.to_string(), files);
        }
        Ok(self.projects.get_mut(project).expect("inserted"))
    }

    fn load_index(&mut self, repo: &Repository) -> Result<&mut Vec<String>, Error> {
        if self.index.is_none() {
            let p = repo.dir().join("targets/simple/index.json");
            let names = match std::fs::read(&p) {
                Ok(bytes) => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes)
                        .map_err(|e| Error::Corrupt { path: p.clone(), reason: e.to_string() })?;
                    v["projects"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect())
                        .unwrap_or_default()
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(crate::io(&p, e)),
            };
            self.index = Some(names);
        }
        Ok(self.index.as_mut().expect("loaded"))
    }

    /// Lists the pages of every project changed in this batch (and the project index) as
    /// targets.
    pub fn stage(mut self, repo: &mut Repository) -> Result<(), Error> {
        // A project whose last file went leaves the project list.
        let emptied: Vec<String> = self.projects.iter().filter(|(_, f)| f.is_empty()).map(|(p, _)| p.clone()).collect();
        if !emptied.is_empty() {
            let index = self.load_index(repo)?;
            index.retain(|p| !emptied.contains(p));
            self.index_changed = true;
        }
        for (project, files) in &self.projects {
            repo.add_target_bytes(
                &format!("simple/{project}/index.json"),
                &packman_index::project_json(project, files),
                None,
            )?;
            repo.add_target_bytes(
                &format!("simple/{project}/index.html"),
                &packman_index::project_html(project, files),
                None,
            )?;
        }
        if let (Some(index), true) = (&self.index, self.index_changed) {
            repo.add_target_bytes("simple/index.json", &packman_index::index_json(index), None)?;
            repo.add_target_bytes("simple/index.html", &packman_index::index_html(index), None)?;
        }
        Ok(())
    }
}

/// Adds a wheel or sdist: the file, its core metadata (wheels), and its project's pages
/// (staged in `pages`; call [`Pages::stage`] once for the batch).
pub fn add_distribution(repo: &mut Repository, pages: &mut Pages, file: &Path) -> Result<Added, Error> {
    let dist: Distribution = packman_index::inspect(file).map_err(idx)?;
    let path = package_path(&dist.project, &dist.filename);
    // Read and hashed once: the sha256 checks below, the page entry and the target itself.
    let mut tf = crate::publisher::describe_file(file)?;
    let bytes_sha = tf.hashes.get("sha256").unwrap_or_default().to_string();
    let reused = || {
        Error::Invalid(format!(
            "{}: {} is already published with other content; a file name is never reused (upload a new version instead)",
            file.display(),
            dist.filename
        ))
    };
    if let Some(existing) = repo.target(&path)? {
        if existing.hashes.get("sha256") == Some(bytes_sha.as_str()) {
            return Ok(Added {
                project: dist.project,
                version: dist.version,
                bin: repo.bin_for(&path),
                path,
                unchanged: true,
            });
        }
        return Err(reused());
    }
    // A removed file keeps its plain copy in targets/, which binds its name to its bytes.
    let plain = repo.dir().join("targets").join(&path);
    if plain.is_file() && file_sha256(&plain)? != bytes_sha {
        return Err(reused());
    }
    let upload_time = rfc3339(repo.now());
    let custom = serde_json::json!({
        "project": dist.project,
        "version": dist.version,
        "requires-python": dist.requires_python,
        "upload-time": upload_time,
        "yanked": false,
    });
    tf.custom = Some(custom);
    let size = tf.length;
    let bin = repo.add_described_target(&path, file, tf)?;
    let is_wheel = matches!(dist.kind, packman_index::DistKind::Wheel);
    let core_sha = if is_wheel {
        repo.add_target_bytes(&format!("{path}.metadata"), &dist.core_metadata, None)?;
        Some(hex::encode(ring::digest::digest(&ring::digest::SHA256, &dist.core_metadata)))
    } else {
        None
    };
    let entry = FileEntry {
        filename: dist.filename.clone(),
        url: format!("../../packages/{}/{}", dist.project, percent_encode_segment(&dist.filename)),
        sha256: bytes_sha,
        size,
        upload_time: Some(upload_time),
        requires_python: dist.requires_python.clone(),
        yanked: None,
        core_metadata_sha256: core_sha,
    };
    let files = pages.load(repo, &dist.project)?;
    files.retain(|f| f.filename != entry.filename);
    files.push(entry);
    // The project list changes only when a project appears (its page exists otherwise).
    if pages.projects.get(&dist.project).is_none_or(|f| f.len() <= 1) && !page_exists(repo, &dist.project) {
        let index = pages.load_index(repo)?;
        if !index.contains(&dist.project) {
            index.push(dist.project.clone());
            pages.index_changed = true;
        }
    }
    Ok(Added { project: dist.project, version: dist.version, path, bin, unchanged: false })
}

/// Removes a distribution (by file name), its core metadata and its page entry.
pub fn remove_distribution(repo: &mut Repository, pages: &mut Pages, filename: &str) -> Result<bool, Error> {
    let parsed = packman_index::parse_filename(filename).map_err(idx)?;
    let path = package_path(&parsed.project, filename);
    if !repo.remove_target(&path)? {
        return Ok(false);
    }
    repo.remove_target(&format!("{path}.metadata"))?;
    pages.load(repo, &parsed.project)?.retain(|f| f.filename != filename);
    Ok(true)
}

/// Marks a distribution yanked (PEP 592) with an optional reason, or un-yanks it.
pub fn set_yanked(
    repo: &mut Repository,
    pages: &mut Pages,
    filename: &str,
    yanked: Option<&str>,
) -> Result<bool, Error> {
    let parsed = packman_index::parse_filename(filename).map_err(idx)?;
    let path = package_path(&parsed.project, filename);
    let flag = match yanked {
        None => serde_json::Value::Bool(false),
        Some("") => serde_json::Value::Bool(true),
        Some(r) => serde_json::Value::String(r.to_string()),
    };
    if !repo.set_custom(&path, |c| c["yanked"] = flag)? {
        return Ok(false);
    }
    for f in pages.load(repo, &parsed.project)?.iter_mut().filter(|f| f.filename == filename) {
        f.yanked = yanked.map(str::to_string);
    }
    Ok(true)
}

fn page_exists(repo: &Repository, project: &str) -> bool {
    repo.dir().join("targets/simple").join(project).join("index.json").exists()
}

/// Whether a file looks like a Python distribution (by name).
pub fn is_distribution(file: &Path) -> bool {
    let n = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    n.ends_with(".whl") || n.ends_with(".tar.gz") || n.ends_with(".zip")
}

fn file_sha256(file: &Path) -> Result<String, Error> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(|e| crate::io(file, e))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| crate::io(file, e))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish()))
}

fn percent_encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+!".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads back a PEP 691 page this publisher wrote.
fn parse_page(path: &Path, bytes: &[u8]) -> Result<Vec<FileEntry>, Error> {
    let corrupt = |reason: &str| Error::Corrupt { path: path.to_path_buf(), reason: reason.to_string() };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string()))?;
    let files = v["files"].as_array().ok_or_else(|| corrupt("no files array"))?;
    files
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().map(String::from);
            Ok(FileEntry {
                filename: s("filename").ok_or_else(|| corrupt("file without filename"))?,
                url: s("url").ok_or_else(|| corrupt("file without url"))?,
                sha256: f["hashes"]["sha256"]
                    .as_str()
                    .map(String::from)
                    .ok_or_else(|| corrupt("file without sha256"))?,
                size: f["size"].as_u64().unwrap_or(0),
                upload_time: s("upload-time"),
                requires_python: s("requires-python"),
                yanked: match &f["yanked"] {
                    serde_json::Value::Bool(true) => Some(String::new()),
                    serde_json::Value::String(r) => Some(r.clone()),
                    _ => None,
                },
                core_metadata_sha256: f["core-metadata"]["sha256"].as_str().map(String::from),
            })
        })
        .collect()
}
