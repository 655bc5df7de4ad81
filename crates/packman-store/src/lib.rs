//! Publishing a repository's tree (`DIR/metadata`, `DIR/targets`) to object storage.
//!
//! The local directory stays the working copy; [`Remote::push`] mirrors it so that a client
//! reading the bucket mid-push never finds a file missing: target files first, then new
//! versioned metadata, then `root.json`, the snapshot, and `timestamp.json` last; objects
//! removed locally (garbage-collected versions) are deleted only after that. Unchanged files
//! are not uploaded again: `DIR/.push-state.json` remembers the size and modification time
//! of what each remote was sent. No compare-and-swap is needed (Garage has none); run one
//! publisher per bucket, as the repository lock already ensures per directory.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: {key}: {source}")]
    Store { url: String, key: String, source: object_store::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// An object store location, e.g. `s3://bucket/prefix`. Credentials and endpoint come from
/// the usual environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT` for S3-compatible servers, `AWS_ALLOW_HTTP=true` for plain HTTP).
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    rt: tokio::runtime::Runtime,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub uploaded: usize,
    pub unchanged: usize,
    pub deleted: usize,
}

#[derive(Default, Serialize, Deserialize)]
struct PushState {
    /// Remote URL -> object key -> (size, mtime in ns) of the file last uploaded.
    remotes: BTreeMap<String, BTreeMap<String, (u64, u128)>>,
}

impl Remote {
    pub fn from_url(url: &str) -> Result<Remote, Error> {
        let bad = |reason: String| Error::Url { url: url.to_string(), reason };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("only s3:// stores are supported".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name".into()));
        }
        // TLS for https:// endpoints goes through ring (see Cargo.toml); an error only means a
        // provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(e.to_string()))?;
        Ok(Remote { url: url.to_string(), store: Arc::new(store), prefix: prefix.trim_matches('/').to_string(), rt })
    }

    fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn err(&self, key: &str, source: object_store::Error) -> Error {
        Error::Store { url: self.url.clone(), key: key.to_string(), source }
    }

    /// Remote objects under the prefix, relative key -> size.
    pub fn list(&self) -> Result<BTreeMap<String, u64>, Error> {
        let prefix = if self.prefix.is_empty() { None } else { Some(ObjectPath::from(self.prefix.as_str())) };
        let metas: Vec<object_store::ObjectMeta> =
            self.rt.block_on(self.store.list(prefix.as_ref()).try_collect()).map_err(|e| self.err(&self.prefix, e))?;
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(|k| (k.to_string(), m.size)))
            .collect())
    }

    fn put(&self, rel: &str, file: &Path) -> Result<(), Error> {
        let bytes = std::fs::read(file).map_err(|source| Error::Io { path: file.into(), source })?;
        self.rt
            .block_on(self.store.put(&self.key(rel), PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| self.err(rel, e))
    }

    fn delete(&self, rel: &str) -> Result<(), Error> {
        self.rt.block_on(self.store.delete(&self.key(rel))).map_err(|e| self.err(rel, e))
    }

    /// Mirrors `dir`'s published tree to this remote (see the module docs for the order).
    pub fn push(&self, dir: &Path) -> Result<PushReport, Error> {
        let local = published_files(dir)?;
        let remote = self.list()?;
        let state_path = dir.join(".push-state.json");
        let mut state: PushState =
            std::fs::read(&state_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let sent = state.remotes.entry(self.url.clone()).or_default();
        let mut report = PushReport::default();

        let mut order: Vec<(&String, &(PathBuf, u64, u128))> = local.iter().collect();
        order.sort_by_key(|(rel, _)| (packman_tuf::layout::write_rank(rel), (*rel).clone()));
        for (rel, (path, size, mtime)) in order {
            let unchanged = remote.get(rel) == Some(size) && sent.get(rel) == Some(&(*size, *mtime));
            if unchanged {
                report.unchanged += 1;
                continue;
            }
            self.put(rel, path)?;
            sent.insert(rel.clone(), (*size, *mtime));
            report.uploaded += 1;
        }
        let keep: BTreeSet<&String> = local.keys().collect();
        for rel in remote.keys().filter(|k| !keep.contains(k)) {
            if rel.starts_with("metadata/") || rel.starts_with("targets/") {
                self.delete(rel)?;
                sent.remove(rel);
                report.deleted += 1;
            }
        }
        let bytes = serde_json::to_vec(&state).unwrap_or_default();
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
        std::fs::write(tmp.path(), bytes).map_err(|source| Error::Io { path: tmp.path().into(), source })?;
        tmp.persist(&state_path).map_err(|e| Error::Io { path: state_path.clone(), source: e.error })?;
        Ok(report)
    }
}

/// Files under DIR/metadata and DIR/targets (temp files aside): relative key -> (path, size, mtime).
fn published_files(dir: &Path) -> Result<BTreeMap<String, (PathBuf, u64, u128)>, Error> {
    let mut out = BTreeMap::new();
    for top in [packman_tuf::layout::METADATA_DIR, packman_tuf::layout::TARGETS_DIR] {
        let mut stack = vec![dir.join(top)];
        while let Some(d) = stack.pop() {
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Io { path: d, source }),
            };
            for e in rd {
                let e = e.map_err(|source| Error::Io { path: d.clone(), source })?;
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") || name.starts_with(".part-") {
                    continue;
                }
                let md = e.metadata().map_err(|source| Error::Io { path: p.clone(), source })?;
                if md.is_dir() {
                    stack.push(p);
                } else if md.is_file() {
                    let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().replace('\\', "/");
                    let mtime =
                        md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
                    out.insert(rel, (p, md.len(), mtime));
                }
            }
        }
    }
    Ok(out)
}
