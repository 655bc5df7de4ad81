//! Mirrors with failover. [`FailoverTransport`] knows where else a URL can be fetched from
//! ([`Transport::candidates`]) and collects what went wrong where ([`Transport::report`]);
//! [`failover`] is the one loop that tries the candidates, used by the updater for every
//! metadata file and target. Each attempt fetches into its own sink (a new buffer, a new temp
//! file) and is *verified* before it counts, so a mirror that is down, stalls, answers 5xx or
//! serves bytes the trust core or the target check refuses is skipped for the next one, and a
//! partial or bad attempt never mixes with the next (the [`Transport`] sink rule).
//!
//! Mirrors come only from the caller: those the user names, and those of the repository's
//! signed list ([`packman_tuf::mirrors`], added with [`FailoverTransport::add_mirrors`]
//! once it is a verified target). Nothing is discovered.

use std::io::Write;
use std::sync::{Arc, Mutex};

use packman_tuf::mirrors::MirrorEntry;

use crate::transport::Transport;
use crate::{Error, FetchError};

/// One place a URL can be fetched from: the mirror's name and the URL there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The mirror's name (empty for a transport without mirrors).
    pub mirror: String,
    pub url: String,
}

/// How a mirror failed one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused or broken, DNS, TLS: the mirror is down or unreachable.
    Unreachable,
    /// It stalled or sent below the minimum speed (slow retrieval).
    TooSlow,
    /// An HTTP status other than 200, 403 and 404 (a 5xx, typically).
    Status(u16),
    /// It does not have the file another mirror had (behind, or incomplete).
    NotFound,
    /// It sent more than the signed (or configured) length (endless data).
    TooLarge,
    /// It served bytes that failed verification: metadata the trust core refused (bad
    /// signature, rollback, freeze, mix-and-match) or a target with the wrong hashes.
    Refused,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Unreachable => f.write_str("unreachable"),
            FailureKind::TooSlow => f.write_str("too slow (stalled or below the minimum speed)"),
            FailureKind::Status(s) => write!(f, "answered HTTP {s}"),
            FailureKind::NotFound => f.write_str("did not have the file"),
            FailureKind::TooLarge => f.write_str("sent more than allowed"),
            FailureKind::Refused => f.write_str("served bytes that failed verification"),
        }
    }
}

/// One failed attempt on one mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFailure {
    pub mirror: String,
    pub url: String,
    pub kind: FailureKind,
    /// The error, as the updater saw it.
    pub detail: String,
}

impl std::fmt::Display for MirrorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mirror {}: {}: {}", self.mirror, self.kind, self.detail)
    }
}

/// Whether `e` is the mirror's fault (try the next one) and how; `None` for errors that are
/// not (the local disk, a target path the layout refuses): those end the loop.
fn classify(e: &Error) -> Option<FailureKind> {
    Some(match e {
        Error::Fetch(f) => match f {
            FetchError::NotFound { .. } => FailureKind::NotFound,
            FetchError::Status { status, .. } => FailureKind::Status(*status),
            FetchError::TooLarge { .. } => FailureKind::TooLarge,
            FetchError::TooSlow { .. } => FailureKind::TooSlow,
            FetchError::Transport { message, .. } => {
                let m = message.to_ascii_lowercase();
                if m.contains("timeout") || m.contains("timed out") {
                    FailureKind::TooSlow
                } else {
                    FailureKind::Unreachable
                }
            }
            FetchError::UnsupportedScheme { .. } => FailureKind::Unreachable,
        },
        Error::Metadata { .. } | Error::TargetMismatch { .. } => FailureKind::Refused,
        _ => return None,
    })
}

/// Tries `attempt` on each of `transport`'s candidates for `url`, in order, until one
/// succeeds. `attempt` fetches into its own sink *and verifies*, so a failure at any point
/// (fetch or check) moves on to the next mirror. The one failover loop: every fetch of the
/// updater goes through it.
///
/// When all fail: if any mirror answered "not found", the error is not found (an answer
/// from a reachable mirror outweighs the faults of others: the end of a root rotation walk
/// must not turn into a failed update because one mirror is down; a mirror hiding a newer
/// root that every other mirror also fails to serve is then caught as for a single host, by
/// the timestamp naming its root version); otherwise the last fault. Faults are reported to
/// the transport ([`Transport::report`]) whatever the outcome; "not found" only when another
/// mirror then had the file (that mirror is behind).
pub fn failover<T>(
    transport: &dyn Transport,
    url: &str,
    mut attempt: impl FnMut(&str) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut failures: Vec<MirrorFailure> = Vec::new();
    let mut last_fault: Option<Error> = None;
    let mut not_found: Option<Error> = None;
    for c in transport.candidates(url) {
        // `-v` shows each attempt: which mirror, which URL, and how it ended.
        match attempt(&c.url) {
            Ok(v) => {
                tracing::debug!("{}: fetched and verified{}", c.url, mirror_note(&c.mirror));
                failures.iter().for_each(|f| transport.report(f));
                return Ok(v);
            }
            Err(e) => {
                tracing::debug!("{}: failed{}: {e}", c.url, mirror_note(&c.mirror));
                let Some(kind) = classify(&e) else { return Err(e) };
                failures.push(MirrorFailure { mirror: c.mirror, url: c.url, kind, detail: e.to_string() });
                if kind == FailureKind::NotFound {
                    not_found = Some(e);
                } else {
                    last_fault = Some(e);
                }
            }
        }
    }
    failures.iter().filter(|f| f.kind != FailureKind::NotFound).for_each(|f| transport.report(f));
    Err(not_found.or(last_fault).unwrap_or_else(|| Error::Fetch(FetchError::NotFound { url: url.into(), status: 404 })))
}

fn mirror_note(mirror: &str) -> String {
    if mirror.is_empty() {
        String::new()
    } else {
        format!(" (mirror {mirror})")
    }
}

struct State {
    /// The mirrors in the order to try: the primary, then the others as given; a mirror that
    /// failed moves to the back, so one that is down costs one timeout, not one per file.
    order: Vec<MirrorEntry>,
    /// Names of the mirrors that failed at least once (at the back of `order`).
    failed: std::collections::BTreeSet<String>,
    failures: Vec<MirrorFailure>,
}

/// A [`Transport`] over a primary repository URL pair and its mirrors. A URL under the
/// primary's metadata or targets base has one candidate per mirror, the same path under
/// that mirror's base; [`failover`] tries them in order. `fetch_to` fetches exactly the URL
/// it is given (through the inner transport), so the sink rule holds trivially: each
/// candidate is a separate fetch into a separate sink.
pub struct FailoverTransport {
    inner: Arc<dyn Transport>,
    primary: MirrorEntry,
    state: Mutex<State>,
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

fn normalised(m: &MirrorEntry) -> MirrorEntry {
    MirrorEntry {
        name: m.name.clone(),
        metadata_url: with_slash(&m.metadata_url),
        targets_url: with_slash(&m.targets_url),
    }
}

impl FailoverTransport {
    /// `primary`: the URLs the updater is configured with (its name is how reports call it).
    pub fn new(inner: Arc<dyn Transport>, primary: MirrorEntry) -> Self {
        let primary = normalised(&primary);
        let state = State { order: vec![primary.clone()], failed: Default::default(), failures: Vec::new() };
        FailoverTransport { inner, primary, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds mirrors after those already known, but before any that has failed (a mirror
    /// with a name or URLs already known is skipped). Returns how many were added.
    pub fn add_mirrors<'a>(&self, mirrors: impl IntoIterator<Item = &'a MirrorEntry>) -> usize {
        let mut s = self.lock();
        let mut added = 0;
        for m in mirrors {
            let m = normalised(m);
            let known = s
                .order
                .iter()
                .any(|o| o.name == m.name || (o.metadata_url == m.metadata_url && o.targets_url == m.targets_url));
            if !known {
                let at = s.order.iter().position(|o| s.failed.contains(&o.name)).unwrap_or(s.order.len());
                s.order.insert(at, m);
                added += 1;
            }
        }
        added
    }

    /// The mirrors in the order they are tried now.
    pub fn mirrors(&self) -> Vec<MirrorEntry> {
        self.lock().order.clone()
    }

    /// Every failure reported so far, in order.
    pub fn failures(&self) -> Vec<MirrorFailure> {
        self.lock().failures.clone()
    }
}

impl Transport for FailoverTransport {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        self.inner.fetch_to(url, max_len, sink)
    }

    fn candidates(&self, url: &str) -> Vec<Candidate> {
        let pick = |m: &MirrorEntry| -> Option<String> {
            if let Some(rest) = url.strip_prefix(&self.primary.metadata_url) {
                Some(format!("{}{rest}", m.metadata_url))
            } else {
                url.strip_prefix(&self.primary.targets_url).map(|rest| format!("{}{rest}", m.targets_url))
            }
        };
        if pick(&self.primary).is_none() {
            return vec![Candidate { mirror: self.primary.name.clone(), url: url.into() }];
        }
        self.lock().order.iter().filter_map(|m| Some(Candidate { mirror: m.name.clone(), url: pick(m)? })).collect()
    }

    fn report(&self, failure: &MirrorFailure) {
        let mut s = self.lock();
        if let Some(i) = s.order.iter().position(|m| m.name == failure.mirror) {
            let m = s.order.remove(i);
            s.order.push(m);
        }
        s.failed.insert(failure.mirror.clone());
        s.failures.push(failure.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, base: &str) -> MirrorEntry {
        MirrorEntry {
            name: name.into(),
            metadata_url: format!("{base}/metadata"),
            targets_url: format!("{base}/targets"),
        }
    }

    struct Canned;
    impl Transport for Canned {
        fn fetch_to(&self, url: &str, _: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
            if url.starts_with("http://down") {
                return Err(FetchError::Transport { url: url.into(), message: "connection refused".into() });
            }
            if url.starts_with("http://missing") {
                return Err(FetchError::NotFound { url: url.into(), status: 404 });
            }
            sink.write_all(url.as_bytes()).unwrap();
            Ok(url.len() as u64)
        }
    }

    #[test]
    fn candidates_map_each_base_and_failed_mirrors_move_last() {
        let t = FailoverTransport::new(Arc::new(Canned), entry("primary", "http://down"));
        assert_eq!(t.add_mirrors(&[entry("a", "http://a"), entry("b", "http://b"), entry("a", "http://c")]), 2);
        let urls = |u: &str| t.candidates(u).into_iter().map(|c| c.url).collect::<Vec<_>>();
        assert_eq!(
            urls("http://down/targets/x/y"),
            ["http://down/targets/x/y", "http://a/targets/x/y", "http://b/targets/x/y"]
        );
        assert_eq!(urls("http://elsewhere/f"), ["http://elsewhere/f"]);
        let got = failover(&t, "http://down/metadata/1.root.json", |u| Ok(t.fetch(u, 100)?)).unwrap();
        assert_eq!(got, b"http://a/metadata/1.root.json");
        let f = t.failures();
        assert_eq!((f.len(), f[0].mirror.as_str(), f[0].kind), (1, "primary", FailureKind::Unreachable));
        assert_eq!(
            urls("http://down/metadata/t"),
            ["http://a/metadata/t", "http://b/metadata/t", "http://down/metadata/t"]
        );
        // Mirrors added later go before those that failed.
        t.add_mirrors(&[entry("c", "http://c")]);
        let order: Vec<_> = t.candidates("http://down/targets/f").into_iter().map(|c| c.mirror).collect();
        assert_eq!(order, ["a", "b", "c", "primary"]);
    }

    #[test]
    fn all_not_found_is_not_found_and_no_fault() {
        let t = FailoverTransport::new(Arc::new(Canned), entry("p", "http://missing1"));
        t.add_mirrors(&[entry("q", "http://missing2")]);
        let e = failover(&t, "http://missing1/metadata/9.root.json", |u| Ok(t.fetch(u, 100)?)).unwrap_err();
        assert!(matches!(e, Error::Fetch(FetchError::NotFound { .. })), "{e}");
        assert!(t.failures().is_empty());
        // Down and missing: still not found (the walk ends), and the fault is reported.
        let t = FailoverTransport::new(Arc::new(Canned), entry("p", "http://missing1"));
        t.add_mirrors(&[entry("q", "http://down")]);
        let e = failover(&t, "http://missing1/metadata/9.root.json", |u| Ok(t.fetch(u, 100)?)).unwrap_err();
        assert!(matches!(e, Error::Fetch(FetchError::NotFound { .. })), "{e}");
        let f = t.failures();
        assert_eq!((f.len(), f[0].mirror.as_str(), f[0].kind), (1, "q", FailureKind::Unreachable));
        // Only down: the fault.
        let t = FailoverTransport::new(Arc::new(Canned), entry("p", "http://down"));
        let e = failover(&t, "http://down/metadata/9.root.json", |u| Ok(t.fetch(u, 100)?)).unwrap_err();
        assert!(matches!(e, Error::Fetch(FetchError::Transport { .. })), "{e}");
    }
}
