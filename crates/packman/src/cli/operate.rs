//! `packman serve DIR`: serve a repository or mirror over HTTP until SIGINT/SIGTERM.

use std::io::Write;
use std::path::PathBuf;

use packman_server::{AccessLog, Config};

#[derive(clap::Args)]
pub struct Args {
    /// Repository or mirror directory (the one holding metadata/ and targets/).
    dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on the first line of output).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Access log: `-` for stderr, a file path (appended to), or `off`.
    #[arg(long, default_value = "-")]
    access_log: String,
    /// Memory for cached file contents, in MiB (files up to 16 MiB are cached).
    #[arg(long, default_value_t = 256)]
    cache_mib: u64,
}

pub fn run(a: Args) -> Result<(), String> {
    let root = packman_server::check_root(&a.dir).map_err(|e| e.to_string())?;
    let log = match a.access_log.as_str() {
        "off" => AccessLog::off(),
        "-" => AccessLog::to_writer(Box::new(std::io::stderr())),
        path => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("access log {path}: {e}"))?;
            AccessLog::to_writer(Box::new(std::io::BufWriter::new(f)))
        }
    };
    if a.max_connections == 0 {
        return Err("--max-connections must be at least 1".into());
    }
    let mut config = Config::new(&root);
    config.max_connections = a.max_connections;
    config.cache_bytes = a.cache_mib << 20;
    packman_server::run(&a.listen, config, log, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "serving {} on http://{addr}/", root.display());
        let _ = writeln!(out, "  TUF metadata: http://{addr}/metadata/   simple index: http://{addr}/simple/");
        let _ = out.flush();
    })
    .map_err(|e| e.to_string())
}
