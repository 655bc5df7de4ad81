//! Human-readable accounts of what was verified, and of why something was refused; the
//! options every command takes (`--allow-expired`, `-v`); colour on a terminal only.

use std::io::IsTerminal;
use std::sync::OnceLock;

use packman_client::{Error, FetchError, Updater};

/// The options given before or after any command, for this one run (never saved).
#[derive(Debug, Clone, Copy, Default)]
pub struct Global {
    /// `--allow-expired`: accept expired signed metadata, saying so.
    pub allow_expired: bool,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

/// Set once, by `main`.
pub fn set_global(g: Global) {
    let _ = GLOBAL.set(g);
}

pub fn global() -> Global {
    GLOBAL.get().copied().unwrap_or_default()
}

/// The updaters' configuration for this run: the defaults, and the expiry rule the user
/// chose (the rule itself lives in the trust core).
pub fn client_config() -> packman_client::Config {
    let expiry = if global().allow_expired { packman_tuf::Expiry::Allow } else { packman_tuf::Expiry::Enforce };
    packman_client::Config { expiry, ..Default::default() }
}

/// Whether to colour what goes to a stream that `is_tty` says is a terminal: never when
/// `NO_COLOR` is set (no-color.org), always when `CLICOLOR_FORCE` is set (and not "0").
fn colour_for(is_tty: bool, no_color: Option<&str>, force: Option<&str>) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if force.is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    is_tty
}

fn colour_env(is_tty: bool) -> bool {
    let var = |k| std::env::var(k).ok();
    colour_for(is_tty, var("NO_COLOR").as_deref(), var("CLICOLOR_FORCE").as_deref())
}

/// Whether stderr gets colour (decided once).
pub fn stderr_colour() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| colour_env(std::io::stderr().is_terminal()))
}

/// Whether stdout gets colour (decided once).
pub fn stdout_colour() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| colour_env(std::io::stdout().is_terminal()))
}

fn sgr(on: bool, text: &str, colour: u8) -> String {
    if on && colour == BOLD {
        format!("\x1b[1m{text}\x1b[0m")
    } else if on {
        format!("\x1b[1;{colour}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `text` in bold `colour` (an ANSI SGR code: 31 red, 33 yellow, 36 cyan; 0 bold only) for
/// stderr: coloured only when stderr is.
pub fn paint(text: &str, colour: u8) -> String {
    sgr(stderr_colour(), text, colour)
}

/// As [`paint`], for stdout.
pub fn paint_out(text: &str, colour: u8) -> String {
    sgr(stdout_colour(), text, colour)
}

pub const RED: u8 = 31;
pub const YELLOW: u8 = 33;
pub const CYAN: u8 = 36;
pub const BOLD: u8 = 0;

/// `packman: warning: MSG` on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("packman: {} {msg}", paint("warning:", YELLOW));
}

/// `packman: error: MSG` on stderr.
pub fn error(msg: impl std::fmt::Display) {
    eprintln!("packman: {} {msg}", paint("error:", RED));
}

/// `-v`: the libraries' debug events (each fetch attempt, which mirror, how it ended; local
/// metadata that could not be used), `-vv` also their trace events, one line each on stderr.
/// A dozen lines instead of a subscriber crate: no spans, no filtering beyond the level.
pub fn init_verbose(level: u8) {
    if level == 0 {
        return;
    }
    let max = if level > 1 { tracing::Level::TRACE } else { tracing::Level::DEBUG };
    let _ = tracing::subscriber::set_global_default(Lines { max });
}

struct Lines {
    max: tracing::Level,
}

/// An event's message and fields, as `message key=value ...`.
struct EventText(String);

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl tracing::Subscriber for Lines {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= self.max && m.target().starts_with("packman")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut text = EventText(String::new());
        e.record(&mut text);
        eprintln!(
            "packman: {}",
            paint(&text.0, if *e.metadata().level() <= tracing::Level::DEBUG { CYAN } else { BOLD })
        );
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// How each repository's metadata was made current, when a person must know: offline
/// (and how old), or expired metadata used under `--allow-expired` (as a warning).
pub fn print_freshness<'a>(fresh: impl IntoIterator<Item = &'a packman_trust::Freshness>) {
    for f in fresh {
        for note in f.notes() {
            print_note(&note);
        }
    }
}

/// One line of [`packman_trust::Freshness::notes`]: expired metadata is a warning.
pub fn print_note(note: &str) {
    if note.starts_with("EXPIRED") {
        warn(note);
    } else {
        eprintln!("packman: {}", paint(note, CYAN));
    }
}

/// A refusal to read the ring, with what to do about expired metadata when that was it.
pub fn read_error(e: &packman_trust::ReadError) -> String {
    let expired = matches!(e, packman_trust::ReadError::Repository { source, .. }
        if matches!(source.tuf(), Some(packman_tuf::Error::Expired { .. })));
    if expired {
        format!(
            "{e}\n  hint: the repository's signatures have expired (a frozen mirror, or the publisher has not \
             refreshed them). To use it anyway for this one command, pass --allow-expired"
        )
    } else {
        e.to_string()
    }
}

/// Prints the trusted state after a refresh: which keys the root names, thresholds, expiry.
pub fn print_trusted(up: &Updater) {
    let set = up.trusted();
    let root = &set.root().signed;
    println!(
        "root v{} (expires {}, consistent snapshots {})",
        root.version,
        root.expires,
        if root.consistent_snapshot() { "on" } else { "off" }
    );
    for (name, r) in &root.roles {
        let ids: Vec<String> = r.keyids.iter().map(|k| k.chars().take(8).collect()).collect();
        let types: Vec<&str> = r.keyids.iter().filter_map(|k| root.keys.get(k)).map(|k| k.keytype.as_str()).collect();
        println!(
            "  {name:<9} threshold {} of {} key(s): {} [{}]",
            r.threshold,
            r.keyids.len(),
            ids.join(", "),
            types.join(", ")
        );
    }
    if let Some(t) = set.timestamp() {
        println!("timestamp v{} (expires {})", t.signed.version, t.signed.expires);
    }
    if let Some(s) = set.snapshot() {
        println!("snapshot v{} (expires {}, {} roles listed)", s.signed.version, s.signed.expires, s.signed.meta.len());
    }
    if let Some(t) = set.targets("targets") {
        println!("targets v{} (expires {})", t.signed.version, t.signed.expires);
    }
}

/// One line for the error, and a hint where one helps.
pub fn explain(e: &Error) -> String {
    let hint = match e {
        Error::Metadata { source, .. } => match source {
            packman_tuf::Error::Rollback { .. } => Some("the server offers older metadata than you already trust; try another mirror"),
            packman_tuf::Error::Expired { .. } => Some("the repository's signatures have expired: the mirror may be frozen, or the publisher has not refreshed them. To use them anyway for this one command, pass --allow-expired"),
            packman_tuf::Error::ThresholdNotMet { .. } => Some("not enough valid signatures: the metadata was tampered with or signed by the wrong keys"),
            packman_tuf::Error::LengthOrHashMismatch { .. } | packman_tuf::Error::Inconsistent { .. } => {
                Some("the mirror serves files that do not belong together; try again later or another mirror")
            }
            _ => None,
        },
        Error::TargetMismatch { .. } => Some("the downloaded file is not the one the repository signed; nothing was saved"),
        Error::Fetch(FetchError::TooLarge { .. }) | Error::Fetch(FetchError::TooSlow { .. }) => {
            Some("the server misbehaved; try another mirror")
        }
        Error::TrustedRoot { .. } => Some("the local trust anchor is unusable; re-initialise it from a trusted copy of root.json"),
        _ => None,
    };
    match hint {
        Some(h) => format!("{e}\n  hint: {h}"),
        None => e.to_string(),
    }
}

/// The transport every fetching command uses: the repository's URLs first, then each
/// `--mirror METADATA_URL,TARGETS_URL` in order (the signed list is added after a verified
/// refresh, by [`add_signed_mirrors`]).
pub fn failover_transport(
    metadata_url: &str,
    targets_url: &str,
    mirrors: &[String],
    config: &packman_client::Config,
) -> Result<std::sync::Arc<packman_client::FailoverTransport>, String> {
    use packman_tuf::mirrors::MirrorEntry;
    let inner = std::sync::Arc::new(packman_client::DefaultTransport::new(config.fetcher.clone()));
    let primary =
        MirrorEntry { name: metadata_url.into(), metadata_url: metadata_url.into(), targets_url: targets_url.into() };
    let t = packman_client::FailoverTransport::new(inner, primary);
    let given = mirrors.iter().map(|m| packman_trust::RingMirror::parse(m)).collect::<Result<Vec<_>, _>>()?;
    let given = packman_trust::RingMirror::entries(&given).map_err(|e| format!("--mirror: {e}"))?;
    t.add_mirrors(&given);
    Ok(std::sync::Arc::new(t))
}

/// Adds the mirrors of the repository's signed list (after a verified refresh); a list that
/// cannot be read is a warning, not a failure: the URLs given still work. Returns how many
/// mirrors it added.
pub fn add_signed_mirrors(
    up: &mut packman_client::Updater,
    t: &packman_client::FailoverTransport,
    temp_dir: &std::path::Path,
) -> usize {
    match packman_trust::read::add_signed_mirrors(up, t, temp_dir) {
        Ok(added) => {
            if !added.is_empty() {
                println!("{} mirror(s) from the signed list: {}", added.len(), added.join(", "));
            }
            added.len()
        }
        Err(e) => {
            warn(format_args!("the signed mirror list is not used: {}", explain(&e)));
            0
        }
    }
}

/// Which mirror misbehaved, and how (on stderr).
pub fn print_mirror_failures(t: &packman_client::FailoverTransport) {
    for f in t.failures() {
        eprintln!("packman: {f}");
    }
}

#[cfg(test)]
mod tests {
    use super::colour_for;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour_for(true, None, None));
        assert!(!colour_for(false, None, None));
        assert!(!colour_for(true, Some("1"), None));
        assert!(colour_for(true, Some(""), None), "an empty NO_COLOR does not count (no-color.org)");
        assert!(colour_for(false, None, Some("1")));
        assert!(!colour_for(false, None, Some("0")));
        assert!(!colour_for(false, Some("1"), Some("1")), "NO_COLOR wins");
    }
}
