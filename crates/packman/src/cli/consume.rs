use std::path::{Path, PathBuf};

use packman_client::{Config, Updater};

use crate::report::{explain, print_trusted};

#[derive(clap::Args)]
pub struct Args {
    /// Trusted root.json, obtained from a trusted place. Needed the first time only: after
    /// that the root trusted in the metadata directory is used, and it changes only through
    /// rotations the repository signs.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Base URL of the repository's metadata (http://, https:// or file://).
    #[arg(long)]
    metadata_url: String,
    /// Base URL of the repository's targets [default: the metadata URL with its last
    /// segment "metadata" replaced by "targets"].
    #[arg(long)]
    targets_url: Option<String>,
    /// Where trusted metadata is kept [default: $PACKMAN_HOME/repos/<hash of metadata URL>].
    #[arg(long)]
    metadata_dir: Option<PathBuf>,
    /// Directory for downloaded files (each saved under its file name).
    #[arg(long, default_value = ".")]
    dest: PathBuf,
    /// Target paths, as the repository names them.
    #[arg(required = true)]
    targets: Vec<String>,
}

fn packman_home() -> PathBuf {
    if let Some(h) = std::env::var_os("PACKMAN_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("packman");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/packman")
}

fn default_metadata_dir(url: &str) -> PathBuf {
    let h = hex::encode(ring::digest::digest(&ring::digest::SHA256, url.trim_end_matches('/').as_bytes()));
    packman_home().join("repos").join(&h[..16])
}

pub fn default_targets_url(metadata_url: &str) -> Option<String> {
    let base = metadata_url.trim_end_matches('/');
    base.strip_suffix("metadata").map(|p| format!("{p}targets/"))
}

/// Establishes trust in `dir`: the first time from `root`; afterwards `root`, if given,
/// must be the very root already trusted (keys change only through signed rotation).
fn ensure_trust(dir: &Path, root: Option<&Path>) -> Result<(), String> {
    let trusted = dir.join("root.json");
    let given = root.map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))).transpose()?;
    match (trusted.exists(), given) {
        (false, None) => Err(format!(
            "{} holds no trusted root yet: pass --root with a root.json from a trusted place",
            dir.display()
        )),
        (false, Some(bytes)) => Updater::bootstrap(dir, &bytes).map_err(|e| explain(&e)),
        (true, Some(bytes)) => {
            let current = std::fs::read(&trusted).map_err(|e| format!("{}: {e}", trusted.display()))?;
            if current == bytes {
                return Ok(());
            }
            // An older root we already moved past through signed rotations is fine too.
            let first = |b: &[u8]| {
                packman_tuf::TrustedSet::new(b, packman_tuf::OffsetDateTime::now_utc()).map(|s| s.root().signed.version)
            };
            match (first(&bytes), first(&current)) {
                (Ok(g), Ok(c)) if g < c => Ok(()),
                _ => Err(format!(
                    "refusing to replace the trusted root in {}: the --root given differs from it. \
                     Trusted keys change only through rotations signed by the repository. If you \
                     really mean to start over, remove that directory.",
                    trusted.display()
                )),
            }
        }
        (true, None) => Ok(()),
    }
}

pub fn run(a: Args) -> Result<(), String> {
    let dir = a.metadata_dir.clone().unwrap_or_else(|| default_metadata_dir(&a.metadata_url));
    ensure_trust(&dir, a.root.as_deref())?;
    let targets_url = a.targets_url.clone().or_else(|| default_targets_url(&a.metadata_url));
    let mut up =
        Updater::new(&dir, &a.metadata_url, targets_url.as_deref(), Config::default()).map_err(|e| explain(&e))?;
    up.refresh().map_err(|e| explain(&e))?;
    println!("verified metadata from {} (trusted state in {})", a.metadata_url, dir.display());
    print_trusted(&up);
    std::fs::create_dir_all(&a.dest).map_err(|e| format!("{}: {e}", a.dest.display()))?;
    for target in &a.targets {
        let info = up
            .get_target_info(target)
            .map_err(|e| explain(&e))?
            .ok_or_else(|| format!("target {target:?} is not in the repository's signed metadata"))?;
        let name = target
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| format!("target {target:?} has no usable file name"))?;
        let dest = a.dest.join(name);
        let sha = info.hashes.get("sha256").or_else(|| info.hashes.iter().next().map(|(_, h)| h)).unwrap_or("");
        if packman_client::is_cached(&dest, &info) {
            println!("{target}: already present at {} ({} bytes, sha256 {sha})", dest.display(), info.length);
            continue;
        }
        up.download_target_to(&dest, target, &info).map_err(|e| explain(&e))?;
        println!("{target}: verified {} bytes, sha256 {sha} -> {}", info.length, dest.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_targets_url;

    #[test]
    fn targets_url_is_derived_from_the_metadata_url() {
        assert_eq!(default_targets_url("http://h/repo/metadata/").as_deref(), Some("http://h/repo/targets/"));
        assert_eq!(default_targets_url("file:///srv/metadata").as_deref(), Some("file:///srv/targets/"));
        assert_eq!(default_targets_url("http://h/meta"), None);
    }
}
