//! The `packman` command: a thin shell over the libraries. Parsing arguments and turning
//! errors into messages a person can act on is all that happens here.
#![forbid(unsafe_code)]

mod cli;
mod demo;
mod progress;
mod report;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use cli::{consume, install, open, operate, proxy, publish, read, trust, url_handler};

#[derive(Parser)]
#[command(
    name = "packman",
    version,
    about = "Secure package distribution: every byte checked against signed TUF metadata"
)]
struct Cli {
    /// Accept expired signed metadata for this one command, with a warning naming each
    /// expired role (never saved). Expired metadata can hide a freeze attack.
    #[arg(long, global = true)]
    allow_expired: bool,
    /// Show more: each repository refresh and which mirror served it (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Each command's arguments are built only when it runs, so a short command (a `repo add`
// of a few milliseconds) does not pay for building every other one's (benches/README).
#[command(defer = true)]
enum Command {
    /// Download the files of a project that fit this Python from the trust ring (or, with
    /// --metadata-url, targets of one repository), every file verified before it is saved.
    Download(consume::Args),
    /// Search the trusted repositories' signed project lists for names containing TEXT.
    Search(read::SearchArgs),
    /// A project's versions and files (sizes, sha256, requires-python, yanked) from the
    /// signed page of the repository that owns it.
    Info(read::InfoArgs),
    /// Check that local files are byte for byte files a trusted repository signs.
    Verify(read::VerifyArgs),
    /// Publish: create and maintain a signed repository.
    #[command(subcommand)]
    Repo(publish::Command),
    /// Build a small signed repository, serve it on 127.0.0.1 and show the client verifying
    /// a download and refusing two attacks.
    Demo(demo::Args),
    /// Serve a repository or mirror directory over HTTP: the TUF layout and the Python simple
    /// API (PEP 691), read-only, until SIGINT/SIGTERM.
    Serve(operate::Args),
    /// The repositories you trust (the trust ring): add, list, show, remove.
    #[command(subcommand)]
    Trust(trust::Command),
    /// Refresh every trusted repository's signed metadata (or the ones named), following
    /// signed root rotations and refusing any other root change.
    Update(trust::UpdateArgs),
    /// Mirror a repository: every file verified before it gets its final name.
    #[command(subcommand)]
    Mirror(operate::Mirror),
    /// Serve the trust ring as a simple API (PEP 503/691) on 127.0.0.1 for pip and uv: only
    /// verified bytes, each project from the repository configured for it.
    Proxy(proxy::Args),
    /// Install Python projects with uv or pip through an in-process packman proxy.
    Install(install::Args),
    /// Show what a packman:// link would install, from verified metadata only, and install it
    /// if you confirm at the terminal.
    Open(open::Args),
    /// Register (or remove) packman as the desktop's handler of packman:// links.
    #[command(subcommand)]
    UrlHandler(url_handler::Action),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout, e.g.
    /// `packman completions bash > ~/.local/share/bash-completion/completions/packman`.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    // `packman … | head`: stdout closing early is not an error worth a panic message. Rust
    // ignores SIGPIPE, so println! panics instead; end quietly as a SIGPIPE'd tool would.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if msg.starts_with("failed printing to stdout") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    let cli = Cli::parse();
    report::set_global(report::Global { allow_expired: cli.allow_expired });
    report::init_verbose(cli.verbose);
    if cli.allow_expired {
        report::warn(
            "--allow-expired: expired signed metadata is accepted for this command only. It may be a freeze \
             attack or a stale repository; each expired role is named below.",
        );
    }
    let pause = matches!(&cli.command, Command::Open(a) if a.pause_after);
    let result = match cli.command {
        Command::Download(a) => consume::run(a),
        Command::Search(a) => read::search(a),
        Command::Info(a) => read::info(a),
        Command::Verify(a) => read::verify(a),
        Command::Demo(a) => demo::run(a),
        Command::Repo(c) => publish::run(c),
        Command::Serve(a) => operate::run(a),
        Command::Trust(c) => trust::run(c),
        Command::Update(a) => trust::update(a),
        Command::Mirror(c) => operate::mirror(c),
        Command::Proxy(a) => proxy::run(a),
        Command::Install(a) => install::run(a),
        Command::Open(a) => open::run(a),
        Command::UrlHandler(c) => url_handler::run(c),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "packman", &mut std::io::stdout());
            Ok(())
        }
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            report::error(msg);
            ExitCode::from(1)
        }
    };
    // After the error is printed, so the person at the handler's terminal can read it too.
    if pause {
        open::pause_for_enter();
    }
    code
}
