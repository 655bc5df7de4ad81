use std::path::PathBuf;

use std::sync::Arc;

use packman_client::{Config, FailoverTransport};
use packman_trust::{Home, TrustError, TrustedRepo};

use crate::report::{add_signed_mirrors, explain, failover_transport, print_mirror_failures, print_trusted};

#[derive(clap::Args)]
#[command(after_help = "Two forms:\n  \
    packman download PROJECT[==VERSION]... [-d DIR] [--all] [--python PATH]\n      \
    from the trust ring: the newest version that is not yanked (or the one given), the file\n      \
    that fits the Python interpreter (or every file of the version with --all), read from the\n      \
    repository the ring routes the project to\n  \
    packman download --metadata-url URL [--root FILE] TARGET...\n      \
    target paths of one repository addressed by URL, outside the trust ring\n\
Every file is verified against the signed length and hashes before it gets its name in DIR.")]
pub struct Args {
    /// Trusted root.json, obtained from a trusted place (with --metadata-url). Needed the
    /// first time only: after that the root trusted in the metadata directory is used, and it
    /// changes only through rotations the repository signs.
    #[arg(long, requires = "metadata_url")]
    root: Option<PathBuf>,
    /// Base URL of a repository's metadata (http://, https:// or file://): download TARGETs
    /// of that repository. Without it, PROJECTs are downloaded from the trust ring.
    #[arg(long)]
    metadata_url: Option<String>,
    /// Base URL of the repository's targets [default: the metadata URL with its last
    /// segment "metadata" replaced by "targets"].
    #[arg(long, requires = "metadata_url")]
    targets_url: Option<String>,
    /// Where trusted metadata is kept [default: <data dir>/repos/<hash of metadata URL>, the data
    /// dir being $PACKMAN_HOME if set, else the platform's (~/.local/share/packman on Linux)].
    #[arg(long, requires = "metadata_url")]
    metadata_dir: Option<PathBuf>,
    /// Directory for downloaded files (each saved under its file name).
    #[arg(short = 'd', long, default_value = ".")]
    dest: PathBuf,
    /// A mirror to fail over to, as METADATA_URL,TARGETS_URL (repeatable; tried in order,
    /// after the URLs above and before the mirrors the repository's signed list names).
    /// Every file from a mirror is verified as from the repository itself.
    #[arg(long = "mirror", value_name = "METADATA_URL,TARGETS_URL", requires = "metadata_url")]
    mirrors: Vec<String>,
    /// Every file of the chosen version, not only the one that fits the interpreter.
    #[arg(long, conflicts_with = "metadata_url")]
    all: bool,
    /// The Python interpreter whose wheel tags and version choose the file [default:
    /// $VIRTUAL_ENV/bin/python, else python3]. Without the `packaging` module (or pip's
    /// copy of it) only py3-none-any wheels and sdists are taken.
    #[arg(long, conflicts_with = "metadata_url")]
    python: Option<PathBuf>,
    #[command(flatten)]
    out: super::read::Output,
    /// PROJECT or PROJECT==VERSION from the trust ring; with --metadata-url, target paths as
    /// the repository names them.
    #[arg(required = true, value_name = "PROJECT[==VERSION] | TARGET")]
    targets: Vec<String>,
}

/// The trust errors as the command's flags name them: the library speaks of "a root
/// given", the user passed `--root`.
fn trust_message(e: TrustError) -> String {
    match e {
        TrustError::NoRoot { dir } => {
            format!("{} holds no trusted root yet: pass --root with a root.json from a trusted place", dir.display())
        }
        TrustError::RootDiffers { trusted, .. } => format!(
            "refusing to replace the trusted root in {}: the --root given differs from it. \
             Trusted keys change only through rotations signed by the repository. If you \
             really mean to start over, remove that directory.",
            trusted.display()
        ),
        e @ TrustError::InvalidRoot { .. } => format!(
            "{e}\n  hint: the --root given is not a root signed by its own keys; get root.json again from a trusted place"
        ),
        e @ TrustError::TrustedRootUnusable { .. } => {
            format!("{e}\n  hint: the local trust anchor is unusable; re-initialise it from a trusted copy of root.json")
        }
        e => e.to_string(),
    }
}

/// An older --root that does not lead to the trusted one: said as loudly as a swapped root
/// in `trust add`, with what was checked and the command that would start over with it.
fn not_in_chain(e: &TrustError, a: &Args, metadata_url: &str) -> String {
    let TrustError::RootNotInChain { given, given_version, trusted, trusted_version, dir, reason } = e else {
        return e.to_string();
    };
    let bar = "@".repeat(62);
    let banner = format!("{bar}\n@{:^60}@\n{bar}", "WARNING: THE --root GIVEN IS NOT THIS REPOSITORY'S ROOT!");
    let mut s = crate::report::paint(&banner, crate::report::RED);
    s.push_str(&format!(
        "\nRefusing {given}: root v{given_version} is neither the root trusted for {metadata_url}\n\
         ({}, v{trusted_version}) nor linked to it by rotations the repository signed.\n\
         Refused because: {reason}\n\
         It may be another repository's root, or a root someone forged.\n\
         Nothing was changed: the trusted root and metadata are as they were.\n\
         If you really mean to trust {given} for {metadata_url} instead, start over:\n  \
         rm -r {}\n  packman download --metadata-url {metadata_url}{} --root {given} TARGET...",
        trusted.display(),
        dir.display(),
        a.metadata_dir.as_ref().map(|d| format!(" --metadata-dir {}", d.display())).unwrap_or_default(),
    ));
    s
}

pub fn run(a: Args) -> Result<(), String> {
    let Some(metadata_url) = a.metadata_url.as_deref() else {
        return super::read::download(super::read::DownloadRequest {
            requirements: &a.targets,
            dest: &a.dest,
            all: a.all,
            python: a.python.as_deref(),
            out: a.out,
        });
    };
    if a.out.json {
        return Err("--json is for downloads from the trust ring (without --metadata-url)".into());
    }
    let repo = match &a.metadata_dir {
        Some(dir) => TrustedRepo::new(metadata_url, a.targets_url.as_deref(), dir),
        None => Home::from_env().map_err(trust_message)?.repo_by_url(metadata_url, a.targets_url.as_deref()),
    };
    let config = crate::report::client_config();
    let targets_url = repo.targets_url.clone().unwrap_or_default();
    let mirrors = failover_transport(metadata_url, &targets_url, &a.mirrors, &config)?;
    // An older --root is checked against the trusted one through the roots in between.
    let mut fetch_root = |v: u64| {
        let url = packman_tuf::layout::metadata_url(metadata_url, "root", Some(v));
        let mut buf = Vec::new();
        packman_client::Transport::fetch_to(mirrors.as_ref(), &url, config.root_max_length, &mut buf)
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(buf)
    };
    repo.ensure_trust_fetching(a.root.as_deref(), &mut fetch_root).map_err(|e| match e {
        e @ TrustError::RootNotInChain { .. } => not_in_chain(&e, &a, metadata_url),
        e => trust_message(e),
    })?;
    let result = download(&a, metadata_url, &repo, config, &mirrors);
    print_mirror_failures(&mirrors);
    result
}

fn download(
    a: &Args,
    metadata_url: &str,
    repo: &TrustedRepo,
    config: Config,
    mirrors: &Arc<FailoverTransport>,
) -> Result<(), String> {
    let mut up = repo.open_with(config, mirrors.clone()).map_err(|e| explain(&e))?;
    up.refresh().map_err(|e| explain(&e))?;
    let expired: Vec<String> =
        up.trusted().expired().iter().map(|e| format!("{} v{} expired {}", e.role, e.version, e.expires)).collect();
    if !expired.is_empty() {
        crate::report::warn(format_args!("EXPIRED metadata used because of --allow-expired: {}", expired.join(", ")));
    }
    if !a.out.quiet {
        println!("verified metadata from {metadata_url} (trusted state in {})", repo.metadata_dir.display());
        print_trusted(&up);
    }
    std::fs::create_dir_all(&a.dest).map_err(|e| format!("{}: {e}", a.dest.display()))?;
    // The signed mirror list is read only when a download fails (looking it up costs a
    // bin's metadata); then the failed target is tried again with its mirrors.
    let mut list_read = false;
    for target in &a.targets {
        // Saved under its own file name, which can never lead out of --dest.
        let name = packman_tuf::layout::file_name(target).map_err(|e| format!("{e}: nothing downloaded"))?;
        let dest = a.dest.join(name);
        let got = match up.download_verified_to(&dest, target) {
            Err(e) if !list_read && !matches!(e, packman_client::Error::TargetNotFound(_)) => {
                list_read = true;
                if add_signed_mirrors(&mut up, mirrors, &a.dest) == 0 {
                    return Err(explain(&e));
                }
                up.download_verified_to(&dest, target)
            }
            r => r,
        }
        .map_err(|e| explain(&e))?;
        let info = &got.info;
        let sha = info.hashes.get("sha256").or_else(|| info.hashes.iter().next().map(|(_, h)| h)).unwrap_or("");
        if a.out.quiet {
            continue;
        }
        if got.cached {
            println!("{target}: already present at {} ({} bytes, sha256 {sha})", got.path.display(), info.length);
        } else {
            println!("{target}: verified {} bytes, sha256 {sha} -> {}", info.length, got.path.display());
        }
    }
    Ok(())
}
