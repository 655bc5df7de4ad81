//! The tuf-conformance client-under-test CLI: `init`, `refresh`, `download`; exit code 0 on
//! success and 1 on any failure, with the reason on stderr.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use packman_client::{Config, Error, Updater};

#[derive(Parser)]
#[command(name = "packman-conformance", about = "packman TUF client for the tuf-conformance suite")]
struct Cli {
    #[arg(long)]
    metadata_dir: PathBuf,
    #[arg(long)]
    metadata_url: Option<String>,
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    #[arg(long)]
    target_base_url: Option<String>,
    #[arg(long)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust the given root (copied as is; checked on first use).
    Init {
        trusted_root: PathBuf,
    },
    Refresh,
    Download,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("packman-conformance: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let metadata_url = || cli.metadata_url.clone().ok_or("--metadata-url is required");
    match &cli.command {
        Command::Init { trusted_root } => {
            let bytes = std::fs::read(trusted_root).map_err(|e| format!("{}: {e}", trusted_root.display()))?;
            let store = packman_client::MetadataStore::open(&cli.metadata_dir).map_err(|e| e.to_string())?;
            store.write("root", &bytes).map_err(|e| e.to_string())
        }
        Command::Refresh => {
            let mut up = Updater::new(&cli.metadata_dir, &metadata_url()?, None, Config::default()).map_err(s)?;
            up.refresh().map_err(s)?;
            exit_now(up)
        }
        Command::Download => {
            let dir = cli.target_dir.as_ref().ok_or("--target-dir is required")?;
            let mut up =
                Updater::new(&cli.metadata_dir, &metadata_url()?, cli.target_base_url.as_deref(), Config::default())
                    .map_err(s)?;
            for name in &cli.target_names {
                let info =
                    up.get_target_info(name).map_err(s)?.ok_or_else(|| s(Error::TargetNotFound(name.clone())))?;
                if up.find_cached_target(dir, name, &info).is_none() {
                    up.download_target(dir, name, &info).map_err(s)?;
                }
            }
            exit_now(up)
        }
    }
}

/// Everything is already durable (refresh and downloads flush before returning); skip
/// freeing a PyPI-sized snapshot just before the process ends (about 1 ms).
fn exit_now(up: Updater) -> Result<(), String> {
    std::mem::forget(up);
    Ok(())
}

fn s(e: Error) -> String {
    e.to_string()
}
