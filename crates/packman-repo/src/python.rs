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

use packman_tuf::layout;
use std::collections::BTreeMap;
use std::path::Path;

use packman_index::{Distribution, FileEntry};
use packman_tuf::TargetFile;

use crate::publisher::Repository;
use crate::Error;

/// Pending page changes of one batch, by project.
#[derive(Default)]
pub struct Pages {
    projects: BTreeMap<String, Vec<FileEntry>>,
    /// Projects that appear in this batch: the project list is rewritten only when one
    /// does, or one goes.
    new_projects: Vec<String>,
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
    layout::package_target(project, filename)
}

fn idx(e: packman_index::IndexError) -> Error {
    Error::Distribution(e)
}

impl Pages {
    /// The file entries of `project`'s current page (empty for a new project).
    fn load(&mut self, repo: &Repository, project: &str) -> Result<&mut Vec<FileEntry>, Error> {
        if !self.projects.contains_key(project) {
            let p = repo.dir().join(layout::TARGETS_DIR).join(layout::SIMPLE_DIR).join(project).join("index.json");
            let files = match std::fs::read(&p) {
                Ok(bytes) => parse_page(&p, &bytes)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(crate::io(&p, e)),
            };
            self.projects.insert(project.to_string(), files);
        }
        Ok(self.projects.get_mut(project).expect("inserted"))
    }

    /// Lists the pages of every project changed in this batch (and the project list) as
    /// targets.
    pub fn stage(self, repo: &mut Repository) -> Result<(), Error> {
        // A project whose last file went leaves the project list.
        let gone: Vec<&str> = self.projects.iter().filter(|(_, f)| f.is_empty()).map(|(p, _)| p.as_str()).collect();
        for (project, files) in &self.projects {
            repo.add_target_bytes(
                &layout::simple_page(Some(project), true),
                packman_index::project_json(project, files),
                None,
            )?;
            repo.add_target_bytes(
                &layout::simple_page(Some(project), false),
                packman_index::project_html(project, files),
                None,
            )?;
        }
        if !gone.is_empty() || !self.new_projects.is_empty() {
            let new: Vec<&str> = self.new_projects.iter().map(String::as_str).collect();
            let (json, html) = project_lists(repo, &new, &gone)?;
            repo.add_target_bytes(&layout::simple_page(None, true), json, None)?;
            repo.add_target_bytes(&layout::simple_page(None, false), html, None)?;
        }
        Ok(())
    }
}

/// The project list (`simple/index.json` and `index.html`) with the projects `add` added and
/// `remove` removed. The published lists are edited as text (`index_json_edit`): at PyPI's
/// size, parsing the JSON list and writing both again costs seconds and hundreds of MB for
/// every new project. Lists in another layout are parsed and written in full.
fn project_lists(repo: &Repository, add: &[&str], remove: &[&str]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let dir = repo.dir().join(layout::TARGETS_DIR).join(layout::SIMPLE_DIR);
    let read = |name: &str| {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(bytes) => Ok((p, Some(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((p, None)),
            Err(e) => Err(crate::io(&p, e)),
        }
    };
    let (json_path, json) = read("index.json")?;
    let (_, html) = read("index.html")?;
    if let (Some(json), Some(html)) = (&json, &html) {
        let edited =
            (packman_index::index_json_edit(json, add, remove), packman_index::index_html_edit(html, add, remove));
        if let (Some(j), Some(h)) = edited {
            return Ok((j, h));
        }
    }
    drop(html);
    // The first project, another layout, or one list without the other: the names are read
    // from the JSON list and both lists written in full.
    // Only the names are kept: parsing the whole list as JSON values takes several times the
    // memory at PyPI's size.
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        projects: Vec<Project>,
    }
    #[derive(serde::Deserialize)]
    struct Project {
        name: Option<String>,
    }
    let mut names: Vec<String> = match json {
        None => Vec::new(),
        Some(bytes) => serde_json::from_slice::<List>(&bytes)
            .map_err(|e| Error::Corrupt { path: json_path.clone(), reason: e.to_string() })?
            .projects
            .into_iter()
            .filter_map(|p| p.name)
            .collect(),
    };
    names.retain(|n| !remove.contains(&n.as_str()));
    names.extend(add.iter().map(|a| a.to_string()));
    Ok((packman_index::index_json(&names), packman_index::index_html(&names)))
}

/// Hints the reads that adding `files` will make (see [`Repository::prefetch`]): the bins of
/// each distribution, its core metadata and its project's pages, and the project's page.
pub fn prefetch(repo: &mut Repository, files: &[&Path]) {
    let mut paths = Vec::new();
    let mut pages = Vec::new();
    for f in files {
        let Some(name) = f.file_name().and_then(|n| n.to_str()) else { continue };
        let Ok(parsed) = packman_index::parse_filename(name) else { continue };
        let path = package_path(&parsed.project, name);
        paths.push(format!("{path}.metadata"));
        paths.push(path);
        paths.push(layout::simple_page(Some(&parsed.project), true));
        paths.push(layout::simple_page(Some(&parsed.project), false));
        pages.push(
            repo.dir().join(layout::TARGETS_DIR).join(layout::SIMPLE_DIR).join(&parsed.project).join("index.json"),
        );
    }
    repo.prefetch(&paths, &pages);
}

/// A distribution file read and hashed (see [`examine`]).
pub struct Examined {
    dist: Distribution,
    tf: TargetFile,
    /// The file's bytes, if kept (see [`crate::read_described`]).
    bytes: Option<Vec<u8>>,
}

impl Examined {
    /// How many of the file's bytes are held in memory.
    pub fn kept(&self) -> u64 {
        self.bytes.as_ref().map_or(0, |b| b.len() as u64)
    }
}

/// Reads a wheel or sdist (name, version, core metadata) and hashes it: what
/// [`add_examined`] needs of the file, with no repository needed yet (`repo add` does this
/// while the repository is opened). Its bytes are kept if it is at most `keep_up_to` long.
pub fn examine(file: &Path, keep_up_to: u64) -> Result<Examined, Error> {
    let dist: Distribution = packman_index::inspect(file).map_err(idx)?;
    // Read and hashed once: the sha256 checks, the page entry and the target itself.
    let (tf, bytes) = crate::publisher::read_described(file, keep_up_to)?;
    Ok(Examined { dist, tf, bytes })
}

/// Adds a wheel or sdist: the file, its core metadata (wheels), and its project's pages
/// (staged in `pages`; call [`Pages::stage`] once for the batch).
pub fn add_distribution(repo: &mut Repository, pages: &mut Pages, file: &Path) -> Result<Added, Error> {
    add_examined(repo, pages, file, examine(file, 0)?)
}

/// [`add_distribution`] of a file [`examine`] read.
pub fn add_examined(repo: &mut Repository, pages: &mut Pages, file: &Path, examined: Examined) -> Result<Added, Error> {
    let Examined { dist, mut tf, bytes } = examined;
    let path = package_path(&dist.project, &dist.filename);
    let bytes_sha = tf.hashes.get("sha256").unwrap_or_default().to_string();
    let reused = || Error::FileNameReused { file: file.to_path_buf(), filename: dist.filename.clone() };
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
    let plain = repo.dir().join(layout::TARGETS_DIR).join(&path);
    if plain.is_file() && !crate::file_matches(&plain, None, &bytes_sha)? {
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
    let bin = repo.add_read_target(&path, file, tf, bytes)?;
    let is_wheel = matches!(dist.kind, packman_index::DistKind::Wheel);
    let core_sha = if is_wheel {
        let core = packman_tuf::target::describe(&dist.core_metadata);
        let core_sha = core.hashes.get("sha256").map(str::to_string);
        repo.add_target_bytes(&format!("{path}.metadata"), dist.core_metadata, None)?;
        core_sha
    } else {
        None
    };
    let entry = FileEntry {
        filename: dist.filename.clone(),
        url: layout::page_link_to_package(&dist.project, &dist.filename),
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
        pages.new_projects.push(dist.project.clone());
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
    repo.dir().join(layout::TARGETS_DIR).join(layout::SIMPLE_DIR).join(project).join("index.json").exists()
}

/// Whether a file looks like a Python distribution (by name).
pub fn is_distribution(file: &Path) -> bool {
    let n = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    n.ends_with(".whl") || n.ends_with(".tar.gz") || n.ends_with(".zip")
}

/// Reads back a PEP 691 page this publisher wrote (into typed fields: a page of 2000 files is
/// ~1 MB, and parsing it as JSON values was most of adding a file to such a project).
fn parse_page(path: &Path, bytes: &[u8]) -> Result<Vec<FileEntry>, Error> {
    #[derive(serde::Deserialize)]
    struct Page {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        hashes: Hashes,
        #[serde(default)]
        size: u64,
        #[serde(rename = "upload-time")]
        upload_time: Option<String>,
        #[serde(rename = "requires-python")]
        requires_python: Option<String>,
        #[serde(default)]
        yanked: Flag<String>,
        #[serde(rename = "core-metadata", default)]
        core_metadata: Flag<Hashes>,
    }
    #[derive(serde::Deserialize)]
    struct Hashes {
        sha256: String,
    }
    /// `false`, `true`, or a value (PEP 592 `yanked`, PEP 714 `core-metadata`).
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag<T> {
        Set(bool),
        Value(T),
    }
    impl<T> Default for Flag<T> {
        fn default() -> Self {
            Flag::Set(false)
        }
    }
    let page: Page = serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(page
        .files
        .into_iter()
        .map(|f| FileEntry {
            filename: f.filename,
            url: f.url,
            sha256: f.hashes.sha256,
            size: f.size,
            upload_time: f.upload_time,
            requires_python: f.requires_python,
            yanked: match f.yanked {
                Flag::Set(true) => Some(String::new()),
                Flag::Value(reason) => Some(reason),
                Flag::Set(false) => None,
            },
            core_metadata_sha256: match f.core_metadata {
                Flag::Value(h) => Some(h.sha256),
                Flag::Set(_) => None,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page this publisher wrote reads back as the entries it was written from: yanked
    /// with and without a reason or not, core metadata or not, optional fields absent.
    #[test]
    fn pages_read_back_as_written() {
        let entry = |name: &str, yanked: Option<&str>, core: bool, optional: bool| FileEntry {
            filename: name.to_string(),
            url: format!("../../packages/p/{name}"),
            sha256: "ab".repeat(32),
            size: 1234,
            upload_time: optional.then(|| "2026-11-23T12:00:00Z".to_string()),
            requires_python: optional.then(|| ">=3.8, <4".to_string()),
            yanked: yanked.map(str::to_string),
            core_metadata_sha256: core.then(|| "cd".repeat(32)),
        };
        let mut files = vec![
            entry("p-1.0-py3-none-any.whl", None, true, true),
            entry("p-1.0.tar.gz", Some(""), false, true),
            entry("p-1.1-py3-none-any.whl", Some("broken \"build\" <b>"), true, false),
            entry("p-1.2.tar.gz", None, false, false),
        ];
        let page = packman_index::project_json("p", &files);
        let mut read = parse_page(Path::new("index.json"), &page).unwrap();
        files.sort();
        read.sort();
        assert_eq!(read, files);
        let err = parse_page(Path::new("x/index.json"), b"{\"files\": [{\"url\": \"a\"}]}").unwrap_err();
        assert!(err.to_string().contains("x/index.json"), "{err}");
    }
}
