//! `packman install PROJECT...`: pip or uv, given only an in-process packman proxy on
//! 127.0.0.1 as their index, so everything they install is verified against the trust ring.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use packman_proxy::Running;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Installer {
    /// uv if it is on PATH, else pip.
    Auto,
    Uv,
    Pip,
}

#[derive(clap::Args)]
pub struct Args {
    /// The Python environment to install into [default: $VIRTUAL_ENV/bin/python, else python3].
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    installer: Installer,
    /// Requirements, as pip takes them (`requests`, `idna==3.20`).
    #[arg(required = true)]
    projects: Vec<String>,
    /// What was installed as JSON on stdout, also when the install fails: each file with
    /// its repository, sha256 and size, packman's refusals and each mirror's failures (the
    /// installer's own output goes to stderr then).
    #[arg(long)]
    json: bool,
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn default_python() -> PathBuf {
    std::env::var_os("VIRTUAL_ENV")
        .filter(|v| !v.is_empty())
        .map(|v| PathBuf::from(v).join("bin/python"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The installer's command line, with the proxy as its only index and no configuration,
/// environment or cache that could add another source of bytes.
fn command(installer: Installer, python: &Path, index_url: &str, projects: &[String]) -> (String, Command) {
    let uv = match installer {
        Installer::Pip => None,
        Installer::Uv => Some(on_path("uv").unwrap_or_else(|| "uv".into())),
        Installer::Auto => on_path("uv"),
    };
    let (name, mut c) = match uv {
        Some(uv) => {
            let mut c = Command::new(uv);
            c.args(["pip", "install", "--no-config", "--no-cache", "--python"]).arg(python);
            ("uv".to_string(), c)
        }
        None => {
            let mut c = Command::new(python);
            c.args(["-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]);
            ("pip".to_string(), c)
        }
    };
    c.args(["--index-url", index_url]).args(projects);
    // PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, UV_INDEX and friends would add sources the proxy
    // does not vouch for: none of pip's or uv's settings reach the child.
    let drop: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_str().is_some_and(|k| k.starts_with("PIP_") || k.starts_with("UV_")))
        .collect();
    for k in drop {
        c.env_remove(k);
    }
    c.env("PIP_CONFIG_FILE", "/dev/null");
    // The index is this process's proxy on loopback, which already failed over across the
    // repository's mirrors: its refusal is final, and pip's 5 and uv's 3 retries (with
    // backoff) of a 502 would only repeat it, each with a fresh refresh, while the user waits.
    if name == "uv" {
        c.env("UV_HTTP_RETRIES", "0");
    } else {
        c.args(["--retries", "0"]);
    }
    (name, c)
}

pub fn run(a: Args) -> Result<(), String> {
    let proxy = Arc::new(super::proxy::open(Duration::from_secs(60), false)?);
    install_through(proxy, a.python, a.installer, &a.projects, a.json)
}

/// Runs the installer with `proxy` (already open, perhaps already used) as its only index:
/// what `packman install` does, and `packman open` once the user said yes.
pub fn install_through(
    proxy: Arc<packman_proxy::Proxy>,
    python: Option<PathBuf>,
    installer: Installer,
    projects: &[String],
    json: bool,
) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("127.0.0.1:0: {e}"))?;
    let running = Running::start(proxy.clone(), listener).map_err(|e| format!("starting the proxy: {e}"))?;
    let python = python.unwrap_or_else(default_python);
    let (name, mut cmd) = command(installer, &python, &running.index_url(), projects);
    eprintln!("packman: installing into {} with {name}, index {}", python.display(), running.index_url());
    if json {
        // stdout is the JSON's alone.
        cmd.stdout(std::process::Stdio::from(std::io::stderr()));
    }
    let status = cmd.status().map_err(|e| format!("cannot run {name}: {e}"))?;
    let _ = running.stop();
    // Every byte was verified before it was served; only keeping them failed.
    if let Err(e) = proxy.flush_cache() {
        crate::report::warn(format_args!("the cache of verified files: {e}"));
    }

    // Mirrors that failed (the file may then have come from another one): which, and how.
    let failures = proxy.mirror_failures();
    for f in &failures {
        eprintln!("packman: {f}");
    }
    let mut files: Vec<_> = proxy
        .served()
        .into_iter()
        .filter(|s| s.target.starts_with("packages/") && !s.target.ends_with(".metadata"))
        .collect();
    files.sort_by(|a, b| a.target.cmp(&b.target));
    files.dedup_by(|a, b| a.target == b.target);
    // pip and uv retry a failed request: each reason once, in the order first given.
    let mut refused: Vec<String> = Vec::new();
    for r in proxy.refusals().into_iter().filter(|r| r.status >= 400) {
        if !refused.contains(&r.message) {
            refused.push(r.message);
        }
    }
    if json {
        let v = serde_json::json!({
            "ok": status.success(),
            "installer": name,
            "python": python.display().to_string(),
            "requirements": projects,
            "exit": status.code(),
            "installed": files.iter().map(|f| serde_json::json!({
                "file": f.target.rsplit('/').next().unwrap_or(&f.target),
                "target": f.target,
                "repository": f.repo,
                "sha256": f.sha256,
                "length": f.length,
            })).collect::<Vec<_>>(),
            "refused": refused,
            "mirror_failures": failures.iter().map(|f| serde_json::json!({
                "repository": f.repo,
                "mirror": f.failure.mirror,
                "url": f.failure.url,
                "kind": f.failure.kind.to_string(),
                "detail": f.failure.detail,
            })).collect::<Vec<_>>(),
        });
        println!("{v:#}");
    }
    if !status.success() {
        let code = status.code().map_or("a signal".to_string(), |c| c.to_string());
        if refused.is_empty() {
            return Err(format!("{name} failed (exit {code}); packman refused nothing, see {name}'s output above"));
        }
        return Err(format!("{name} failed (exit {code}): packman refused\n  {}", refused.join("\n  ")));
    }
    if json {
        return Ok(());
    }
    if files.is_empty() {
        println!("nothing downloaded: already installed");
    }
    for f in files {
        let file = f.target.rsplit('/').next().unwrap_or(&f.target);
        println!("{file}: from repository {} (sha256 {}, {} bytes, verified)", f.repo, f.sha256, f.length);
    }
    Ok(())
}
