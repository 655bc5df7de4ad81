//! Human-readable accounts of what was verified, and of why something was refused.

use packman_client::{Error, FetchError, Updater};

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
            packman_tuf::Error::Expired { .. } => Some("the repository's signatures have expired: the mirror may be frozen, or the publisher has not refreshed them"),
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
            eprintln!("packman: warning: the signed mirror list is not used: {}", explain(&e));
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
