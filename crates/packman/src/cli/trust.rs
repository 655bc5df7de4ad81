//! `packman trust add|list|show|remove` and `packman update`: the user's trust ring. The
//! rules live in packman-trust (`add_repo`, `update_repo`, …); this parses and prints.

use std::path::PathBuf;
use std::sync::Arc;

use packman_client::{Config, DefaultTransport, Transport};
use packman_trust::{Home, Imported, RepoEntry, RepoStatus, Ring, RootChange, RootSource, TrustError, Updated};
use packman_tuf::OffsetDateTime;
use serde_json::json;

use crate::report::explain;

#[derive(clap::Subcommand)]
// Parsed once per run: the size of one value does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Trust a repository under NAME. The root comes from --root FILE, or is fetched and
    /// checked against --root-sha256, or (only with --tofu) trusted as first served.
    Add(AddArgs),
    /// Every trusted repository: URL, root version, keys, expiry, projects, last update.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One trusted repository in full: every top-level role's keys, threshold, version and
    /// expiry, and the root's fingerprint.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a repository: removes it from the ring and deletes its trusted metadata.
    Remove {
        name: String,
        /// Print only errors.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// The name commands and links use (a-z, 0-9, '.', '_', '-').
    name: String,
    /// The repository's base URL: the parent of metadata/ and targets/ (http://, https://,
    /// file://).
    url: String,
    /// root.json obtained from a trusted place.
    #[arg(long, group = "source")]
    root: Option<PathBuf>,
    /// sha256 (hex) of the repository's metadata/1.root.json, obtained from a trusted place:
    /// the root is fetched and trusted only if it matches.
    #[arg(long, group = "source", value_name = "HEX")]
    root_sha256: Option<String>,
    /// Trust whatever 1.root.json the repository serves now (trust on first use).
    #[arg(long, group = "source")]
    tofu: bool,
    /// Also fetch the root from this full URL (repeatable); refuse unless every copy is the
    /// same, byte for byte.
    #[arg(long, value_name = "URL")]
    root_from: Vec<String>,
    /// Projects (shell patterns on PEP 503 names) this repository serves (repeatable)
    /// [default: *].
    #[arg(long, value_name = "PATTERN")]
    projects: Vec<String>,
    /// Where the metadata is [default: URL/metadata/].
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// Where the targets are [default: URL/targets/].
    #[arg(long, value_name = "URL")]
    targets_url: Option<String>,
    /// A mirror to fail over to, as METADATA_URL,TARGETS_URL (repeatable; tried in order,
    /// after the URLs above and before the mirrors the repository's signed list names).
    /// Every file from a mirror is verified as from the repository itself.
    #[arg(long = "mirror", value_name = "METADATA_URL,TARGETS_URL")]
    mirrors: Vec<String>,
    /// Take the first update from this bundle (`packman mirror export`) instead of the
    /// network, for a machine that cannot reach the repository: verified as from the
    /// repository, the targets it carries put into the cache. --root-sha256 and --tofu then
    /// check or take the bundle's metadata/1.root.json.
    #[arg(long, value_name = "FILE", conflicts_with = "root_from")]
    bundle: Option<PathBuf>,
    /// Print only errors (the --tofu warning is still printed).
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Repositories to update [default: every trusted one; with --bundle, the only one].
    names: Vec<String>,
    /// Update from this bundle (`packman mirror export`) instead of the network: the
    /// repository's metadata verified by the same rules (a bundle older than the trusted
    /// state, tampered or expired is refused and nothing changes), and the targets it
    /// carries verified and put into the cache, for offline `info`, `download`, `install`.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    /// Print only errors.
    #[arg(short, long)]
    quiet: bool,
}

fn home() -> Result<Home, String> {
    Home::from_env().map_err(|e| e.to_string())
}

fn transport(config: &Config) -> Arc<dyn Transport> {
    Arc::new(DefaultTransport::new(config.fetcher.clone()))
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// `ROLE:KEYID` as `ROLE KEYID8`.
fn short_role_key(k: &str) -> String {
    match k.split_once(':') {
        Some((role, id)) => format!("{role} {}", short(id)),
        None => short(k),
    }
}

fn list_or_none(v: &[String], f: fn(&str) -> String) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter().map(|k| f(k)).collect::<Vec<_>>().join(", ")
    }
}

/// Library errors with what to do next, in the flags' terms.
fn message(e: TrustError) -> String {
    match e {
        TrustError::Update { name, source } => format!("{name}: {}", explain(&source)),
        TrustError::RootChanged(c) => root_changed(&c),
        TrustError::BundleRefused { name, bundle, source } => format!(
            "{}: refused for repository {name:?}: {source}\n  hint: {}\n  nothing was changed: the trusted metadata and the cache are as they were",
            bundle.display(),
            bundle_hint(&source)
        ),
        e @ TrustError::InvalidRoot { .. } => {
            format!("{e}\n  hint: a root must carry its own threshold of root signatures; get it again from a trusted place")
        }
        e => e.to_string(),
    }
}

/// What a refused bundle means, in the user's terms (the rule itself is in the message).
fn bundle_hint(e: &packman_client::Error) -> &'static str {
    match e.tuf() {
        Some(packman_tuf::Error::Rollback { .. }) => {
            "the bundle is older than the metadata you already trust: ask for a newer export"
        }
        Some(packman_tuf::Error::Expired { .. }) => {
            "the bundle's signatures have expired: ask for a newer export, or pass --allow-expired to accept it for this one command"
        }
        _ if matches!(e, packman_client::Error::TargetMismatch { .. }) => {
            "a file in the bundle is not the one the repository signed: the bundle was damaged or tampered with"
        }
        _ => "the bundle is not what the repository signed (damaged, tampered with, or of another repository)",
    }
}

pub fn run(c: Command) -> Result<(), String> {
    match c {
        Command::Add(a) => add(a),
        Command::List { json } => {
            let home = home()?;
            let ring = Ring::load(&home).map_err(message)?;
            let all: Vec<RepoStatus> = ring
                .repos
                .iter()
                .map(|e| packman_trust::repo_status(&home, e).map_err(|err| format!("{}: {}", e.name, message(err))))
                .collect::<Result<_, _>>()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all).expect("serialisable"));
            } else if all.is_empty() {
                println!("no trusted repositories (add one: packman trust add NAME URL --root-sha256 HEX)");
            } else {
                for s in &all {
                    print_summary(s);
                }
            }
            Ok(())
        }
        Command::Show { name, json } => {
            let home = home()?;
            let ring = Ring::load(&home).map_err(message)?;
            let entry = ring.get(&name).ok_or_else(|| message(TrustError::NotTrusted { name: name.clone() }))?;
            let s = packman_trust::repo_status(&home, entry).map_err(message)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s).expect("serialisable"));
            } else {
                print_summary(&s);
                println!("  root fingerprint: sha256 {}", s.root_fingerprint);
                println!("  metadata: {}", s.metadata_url);
                println!("  targets:  {}", s.targets_url);
                for r in &s.roles {
                    println!(
                        "  {:<9} v{:<4} expires {:<20} threshold {} of {}: {}",
                        r.role,
                        r.version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                        r.expires.as_deref().unwrap_or("-"),
                        r.threshold,
                        r.keyids.len(),
                        list_or_none(&r.keyids, short)
                    );
                }
            }
            Ok(())
        }
        Command::Remove { name, quiet } => {
            let home = home()?;
            let e = packman_trust::remove_repo(&home, &name).map_err(message)?;
            if !quiet {
                println!("{}: no longer trusted ({} removed, trusted metadata deleted)", e.name, e.url);
            }
            Ok(())
        }
    }
}

fn print_summary(s: &RepoStatus) {
    let root = s.role("root");
    println!("{}  {}", s.name, s.url);
    println!(
        "  root v{} expires {}, threshold {} of {}: {}",
        s.root_version,
        s.root_expires,
        root.map_or(0, |r| r.threshold),
        root.map_or(0, |r| r.keyids.len()),
        root.map(|r| list_or_none(&r.keyids, short)).unwrap_or_default()
    );
    println!("  projects: {}", s.projects.join(" "));
    for m in &s.mirrors {
        let name = if m.name == m.metadata_url { String::new() } else { format!("{} ", m.name) };
        println!("  mirror ({}): {name}{} {}", m.source, m.metadata_url, m.targets_url);
    }
    println!("  last update: {}", s.last_update.as_deref().unwrap_or("never"));
}

fn add(a: AddArgs) -> Result<(), String> {
    let source = match (&a.root, &a.root_sha256, a.tofu) {
        (Some(f), _, _) => RootSource::File(f.clone()),
        (_, Some(h), _) => RootSource::Sha256(h.clone()),
        (_, _, true) => RootSource::Tofu,
        _ => {
            return Err(format!(
                "{}: which root to trust? Pass one of: --root FILE (a root.json from a trusted place), \
                 --root-sha256 HEX (the sha256 of its metadata/1.root.json, from a trusted place), or \
                 --tofu (trust whatever the repository serves now, unverified). Nothing was added.",
                a.name
            ))
        }
    };
    let home = home()?;
    let mut entry = RepoEntry::new(&a.name, &a.url);
    if !a.projects.is_empty() {
        entry.projects = a.projects.clone();
    }
    entry.metadata_url = a.metadata_url.clone();
    entry.targets_url = a.targets_url.clone();
    entry.mirrors = a
        .mirrors
        .iter()
        .map(|m| packman_trust::RingMirror::parse(m))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e}\n  nothing was added"))?;
    let config = crate::report::client_config();
    let nothing = |e| format!("{}\n  nothing was added", message(e));
    let (added, imported) = match &a.bundle {
        Some(file) => {
            let b = open_bundle(file)?;
            let carries = |t: &str, i: &packman_tuf::TargetFile| b.carries(t, i);
            let input = bundle_input(&b, &carries);
            let (added, imported) =
                packman_trust::add_repo_from_bundle(&home, entry, &source, &input, config, OffsetDateTime::now_utc())
                    .map_err(nothing)?;
            (added, Some(imported))
        }
        None => {
            let t = transport(&config);
            let added =
                packman_trust::add_repo(&home, entry, &source, &a.root_from, t, config, OffsetDateTime::now_utc())
                    .map_err(nothing)?;
            (added, None)
        }
    };
    let s = &added.status;
    for f in &added.mirror_failures {
        eprintln!("packman: {}: {f}", s.name);
    }
    if added.tofu {
        let w = crate::report::paint("WARNING:", crate::report::RED);
        eprintln!("{w} trusting the root of {} on first use (--tofu): it was NOT checked against", s.url);
        eprintln!("{w} anything you obtained from a trusted place. Anyone who controls the network or the");
        eprintln!("{w} server right now could have given you their own keys. Compare this fingerprint with");
        eprintln!("{w} the repository's owner through another channel:");
        eprintln!("{w}   sha256 {}", s.root_fingerprint);
    }
    if !a.quiet {
        println!("{}: trusted {} (root v{}, sha256 {})", s.name, s.url, s.root_version, s.root_fingerprint);
        if added.sources.len() > 1 {
            println!("  the same root from: {}", added.sources.join(", "));
        }
        println!("  projects: {}", s.projects.join(" "));
        for m in &s.mirrors {
            println!("  mirror ({}): {} {}", m.source, m.metadata_url, m.targets_url);
        }
        if let Some(i) = &imported {
            print_imported(i);
        }
    }
    Ok(())
}

/// A bundle checked whole, as an upstream (packman-mirror reads the format; the updater
/// verifies every byte).
fn open_bundle(file: &std::path::Path) -> Result<packman_mirror::BundleSource, String> {
    packman_mirror::BundleSource::open(file).map_err(|e| format!("{e}\n  nothing was changed"))
}

fn bundle_input<'a>(
    b: &'a packman_mirror::BundleSource,
    carries: &'a dyn Fn(&str, &packman_tuf::TargetFile) -> bool,
) -> packman_trust::BundleInput<'a> {
    packman_trust::BundleInput {
        path: b.path(),
        metadata_url: b.metadata_url(),
        targets_url: b.targets_url(),
        transport: b.transport(),
        carries,
    }
}

fn print_imported(i: &Imported) {
    println!(
        "  from bundle {}: {} of {} signed targets verified into the cache ({} bytes), {} already there",
        i.bundle.display(),
        i.targets_cached,
        i.targets_signed,
        i.bytes,
        i.targets_present
    );
}

/// The warning for a root that does not follow from the trusted one, in the manner of ssh's
/// "REMOTE HOST IDENTIFICATION HAS CHANGED".
fn root_changed(c: &RootChange) -> String {
    let bar = "@".repeat(66);
    let new = c.offered_fingerprint.as_deref().unwrap_or("(could not be fetched again)");
    let mut s = String::new();
    let banner = format!("{bar}\n@    WARNING: REPOSITORY ROOT KEYS HAVE CHANGED!                 @\n{bar}");
    s.push_str(&crate::report::paint(&banner, crate::report::RED));
    s.push('\n');
    s.push_str(&format!(
        "The repository {:?} ({}) now serves a root that is not signed by the root keys you trust.\n",
        c.name, c.url
    ));
    s.push_str(&format!("Offending root: {}\n", c.offending_url));
    s.push_str(&format!(
        "Trusted root: v{}, sha256 {}\n  root keys: {}\n",
        c.trusted_version,
        c.trusted_fingerprint,
        list_or_none(&c.trusted_keys, short)
    ));
    s.push_str(&format!(
        "Offered root: {}, sha256 {new}\n  root keys: {}\n",
        c.offered_version.map(|v| format!("v{v}")).unwrap_or_else(|| "version unknown".into()),
        list_or_none(&c.offered_keys, short)
    ));
    s.push_str(&format!("Refused because: {}\n", c.reason));
    s.push_str(
        "It is possible that someone is doing something nasty: this can be an attack on the repository,\n\
         on a mirror of it or on the network between you and it. It is also possible that the\n\
         repository changed its keys without signing the change with its old root keys.\n\
         Nothing was changed: the trusted root and metadata are as they were.\n",
    );
    s.push_str(
        "Ask the repository's owner, through a channel you trust, for the fingerprint of its new root.\n\
         If it is the one above and you accept the change, run:\n",
    );
    let fp = c.first_root_fingerprint.as_deref().unwrap_or("FINGERPRINT-OF-ITS-1.root.json");
    s.push_str(&format!(
        "  packman trust remove {}\n  packman trust add {} {} --root-sha256 {fp}\n",
        c.name, c.name, c.url
    ));
    s.push_str(&format!(
        "(--root-sha256 checks the metadata/1.root.json the repository serves now{}; or pass --root FILE\n\
         with the new root.json obtained from the owner instead.)",
        if c.offered_version == Some(1) { ", the offered root above" } else { "" }
    ));
    s
}

fn update_json(name: &str, r: &Result<Updated, TrustError>) -> serde_json::Value {
    match r {
        Ok(u) => json!({
            "name": name,
            "ok": true,
            "root_version": u.state.root_version,
            "timestamp_version": u.state.timestamp_version,
            "snapshot_version": u.state.snapshot_version,
            "targets_version": u.state.targets_version,
            "rotation": u.rotation,
            "mirror_failures": u.mirror_failures,
            "expired": u.expired,
            "root_changed": null,
            "error": null,
        }),
        Err(e) => json!({
            "name": name,
            "ok": false,
            "root_version": null,
            "timestamp_version": null,
            "snapshot_version": null,
            "targets_version": null,
            "rotation": null,
            "mirror_failures": [],
            "expired": [],
            "root_changed": match e { TrustError::RootChanged(c) => serde_json::to_value(c).ok(), _ => None },
            "error": e.to_string(),
        }),
    }
}

fn refused() -> String {
    crate::report::paint("refused:", crate::report::RED)
}

pub fn update(a: UpdateArgs) -> Result<(), String> {
    let home = home()?;
    let ring = Ring::load(&home).map_err(message)?;
    if let Some(file) = &a.bundle {
        return update_from_bundle(&home, &ring, file, &a);
    }
    let names: Vec<String> =
        if a.names.is_empty() { ring.repos.iter().map(|r| r.name.clone()).collect() } else { a.names.clone() };
    if names.is_empty() && !a.json && !a.quiet {
        println!("no trusted repositories (add one: packman trust add NAME URL --root-sha256 HEX)");
    }
    let config = crate::report::client_config();
    let t = transport(&config);
    let mut results = Vec::new();
    for name in &names {
        let r = match ring.get(name) {
            Some(e) => packman_trust::update_repo(&home, e, t.clone(), config.clone(), OffsetDateTime::now_utc()),
            None => Err(TrustError::NotTrusted { name: name.clone() }),
        };
        if !a.json {
            match &r {
                Ok(u) if !a.quiet => {
                    for f in &u.mirror_failures {
                        eprintln!("packman: {name}: {f}");
                    }
                    warn_expired(u);
                    print_updated(u);
                }
                Ok(_) => {}
                Err(TrustError::RootChanged(c)) => eprintln!("{}", root_changed(c)),
                Err(TrustError::Update { name, source }) => eprintln!("{name}: {} {}", refused(), explain(source)),
                Err(e) => eprintln!("{name}: {} {e}", refused()),
            }
        }
        results.push((name.clone(), r));
    }
    if a.json {
        let all: Vec<_> = results.iter().map(|(n, r)| update_json(n, r)).collect();
        println!("{}", serde_json::to_string_pretty(&all).expect("serialisable"));
    }
    let failed: Vec<&str> = results.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| n.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {} repositories not updated: {}", failed.len(), results.len(), failed.join(", ")))
    }
}

/// `packman update --bundle FILE [NAME]`: one repository, from the bundle (see
/// `packman_trust::import_bundle`).
fn update_from_bundle(home: &Home, ring: &Ring, file: &std::path::Path, a: &UpdateArgs) -> Result<(), String> {
    let name = match (a.names.as_slice(), ring.repos.as_slice()) {
        ([name], _) => name.clone(),
        ([], [only]) => only.name.clone(),
        ([], []) => {
            return Err(
                "no trusted repositories: add one first (packman trust add NAME URL --root FILE --bundle FILE)".into()
            )
        }
        _ => {
            return Err(format!(
                "{}: name the one repository this bundle is for (packman update --bundle FILE NAME); trusted: {}",
                file.display(),
                ring.repos.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let entry = ring.get(&name).ok_or_else(|| message(TrustError::NotTrusted { name: name.clone() }))?;
    let b = open_bundle(file)?;
    let carries = |t: &str, i: &packman_tuf::TargetFile| b.carries(t, i);
    let input = bundle_input(&b, &carries);
    let config = crate::report::client_config();
    let (r, imported) = match packman_trust::import_bundle(home, entry, &input, config, OffsetDateTime::now_utc()) {
        Ok(i) => {
            let u = Updated {
                name: name.clone(),
                state: i.state.clone(),
                rotation: i.rotation.clone(),
                mirror_failures: Vec::new(),
                expired: i.expired.clone(),
            };
            (Ok(u), Some(i))
        }
        Err(e) => (Err(e), None),
    };
    if a.json {
        // The shape of `update --json` (one repository), with what the bundle brought.
        let mut j = update_json(&name, &r);
        j["bundle"] = json!(file);
        if let Some(i) = &imported {
            j["targets_signed"] = json!(i.targets_signed);
            j["targets_cached"] = json!(i.targets_cached);
            j["targets_present"] = json!(i.targets_present);
            j["bytes"] = json!(i.bytes);
        }
        println!("{}", serde_json::to_string_pretty(&json!([j])).expect("serialisable"));
    }
    let u = r.map_err(message)?;
    let i = imported.expect("imported when the update succeeded");
    if a.json {
        return Ok(());
    }
    warn_expired(&u);
    if a.quiet {
        return Ok(());
    }
    print_updated(&u);
    print_imported(&i);
    Ok(())
}

/// The warning every command gives for expired metadata it accepted (--allow-expired).
fn warn_expired(u: &Updated) {
    if !u.expired.is_empty() {
        crate::report::warn(format_args!(
            "{}: EXPIRED metadata accepted because of --allow-expired: {}",
            u.name,
            u.expired.join(", ")
        ));
    }
}

/// What a refresh of one repository brought: its versions, and a root rotation it followed.
fn print_updated(u: &Updated) {
    let (name, s) = (&u.name, &u.state);
    let v = |x: Option<u64>| x.map(|v| format!("v{v}")).unwrap_or_else(|| "-".into());
    println!(
        "{name}: root v{} timestamp {} snapshot {}",
        s.root_version,
        v(s.timestamp_version),
        v(s.snapshot_version)
    );
    if let Some(rot) = &u.rotation {
        println!(
            "{name}: root v{} -> v{} (keys added: {}; removed: {})",
            rot.from,
            rot.to,
            list_or_none(&rot.keys_added, short_role_key),
            list_or_none(&rot.keys_removed, short_role_key)
        );
    }
}
