//! `packman proxy`: the trust ring as a simple API for pip and uv, on 127.0.0.1, until
//! SIGINT/SIGTERM. `packman install` runs the same proxy in-process for one install.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use packman_proxy::{Options, Proxy};
use packman_trust::Home;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (printed on the first line of output).
    #[arg(long, default_value = "127.0.0.1:3141")]
    listen: String,
    /// Refresh a repository's metadata when one of its pages is asked for and its last
    /// refresh is older than this many seconds.
    #[arg(long, default_value_t = 60)]
    refresh_every: u64,
}

/// The ring of this user's home as a proxy, every repository refreshed once. A repository
/// that cannot be refreshed is reported on stderr and tried again on its next request.
pub fn open(refresh_every: Duration, log_to_stderr: bool) -> Result<Proxy, String> {
    let home = Home::from_env().map_err(|e| e.to_string())?;
    let options =
        Options { refresh_every, log_to_stderr, client: crate::report::client_config(), ..Options::default() };
    let proxy = Proxy::open(&home, options).map_err(|e| e.to_string())?;
    for (name, result) in proxy.refresh_all() {
        if let Err(e) = result {
            crate::report::warn(format_args!("{e}\n  requests for the projects of {name:?} fail until it refreshes"));
        }
    }
    // A logging proxy printed these as they happened.
    if !log_to_stderr {
        proxy.notes().iter().for_each(|n| crate::report::print_note(n));
    }
    Ok(proxy)
}

pub fn run(a: Args) -> Result<(), String> {
    let proxy = Arc::new(open(Duration::from_secs(a.refresh_every), true)?);
    let names: Vec<String> = proxy.repositories().map(|r| format!("{} ({})", r.name, r.projects.join(" "))).collect();
    let kept = proxy.clone();
    let served = packman_proxy::run(proxy, &a.listen, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "packman proxy on http://{addr}/simple/");
        let _ = writeln!(out, "  repositories: {}", names.join(", "));
        let _ = writeln!(out, "  pip install --index-url http://{addr}/simple/ PROJECT");
        let _ = out.flush();
    });
    // Files served are written to the cache behind the answers: finished before exiting.
    if let Err(e) = kept.flush_cache() {
        crate::report::warn(format_args!("the cache of verified files: {e}"));
    }
    served.map_err(|e| e.to_string())
}
