//! [`Prefetching`]: a repository's transport that can fetch metadata files (delegated bins)
//! ahead of the updater, without the updater's lock, and hand the bytes to the updater when
//! it asks for that URL. The bytes are not believed here: the updater gives them to the
//! trust core as any fetched bytes, so a prefetched file is exactly as trusted as one the
//! updater fetched itself at that moment (and a refused one fails over like one).
//!
//! Only versioned metadata URLs (consistent snapshots) are prefetched: their content never
//! changes, so fetching early cannot hand the updater an older file than it would have
//! got. The table is emptied at every refresh ([`Prefetching::clear`]).
//!
//! Bounded: at most [`MAX_ENTRIES`] URLs are kept (the oldest finished one is dropped
//! first), each at most the length its snapshot entry signs; at most [`MAX_RUNNING`]
//! background fetches run at a time for hints (a request's own bin always runs).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use packman_client::{Candidate, FailoverTransport, FetchError, MirrorFailure, Transport};

/// URLs kept at most (fetching or fetched, not yet used).
pub(crate) const MAX_ENTRIES: usize = 64;
/// Background fetches for hints (a page's files) at a time.
pub(crate) const MAX_RUNNING: usize = 4;
/// The longest a request waits for a prefetch before fetching for itself (the fetch has
/// its own timeouts; this only keeps a lost wake-up from hanging a request).
const WAIT_AT_MOST: Duration = Duration::from_secs(120);

enum Entry {
    Running,
    Done(Result<Vec<u8>, FetchError>),
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Insertion order, for eviction.
    order: VecDeque<String>,
    running: usize,
    /// Bumped by [`Prefetching::clear`]: a fetch started before finishes into nothing.
    generation: u64,
}

/// See the module docs.
pub(crate) struct Prefetching {
    inner: Arc<FailoverTransport>,
    table: Mutex<Table>,
    done: Condvar,
}

/// Why a hint was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Started now, or already there.
    Started,
    /// Too many running or kept.
    Full,
}

impl Prefetching {
    pub(crate) fn new(inner: Arc<FailoverTransport>) -> Arc<Prefetching> {
        Arc::new(Prefetching { inner, table: Mutex::default(), done: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The URL the updater's failover loop tries first for `url` (the one to prefetch).
    pub(crate) fn first_candidate(&self, url: &str) -> String {
        self.inner.candidates(url).into_iter().next().map_or_else(|| url.to_string(), |c| c.url)
    }

    /// Starts fetching `url` (at most `max_len` bytes) in the background, unless it is
    /// fetched or being fetched already. `needed`: a request waits for it (always started);
    /// otherwise a hint, dropped when [`MAX_RUNNING`] run or [`MAX_ENTRIES`] are kept.
    pub(crate) fn start(self: &Arc<Self>, url: &str, max_len: u64, needed: bool) -> Start {
        let mut t = self.lock();
        if t.entries.contains_key(url) {
            return Start::Started;
        }
        if !needed && t.running >= MAX_RUNNING {
            return Start::Full;
        }
        while t.entries.len() >= MAX_ENTRIES {
            let Some(i) = t.order.iter().position(|u| matches!(t.entries.get(u), Some(Entry::Done(_)))) else { break };
            let old = t.order.remove(i).expect("in range");
            t.entries.remove(&old);
        }
        if !needed && t.entries.len() >= MAX_ENTRIES {
            return Start::Full;
        }
        t.entries.insert(url.to_string(), Entry::Running);
        t.order.push_back(url.to_string());
        t.running += 1;
        let generation = t.generation;
        drop(t);
        let (me, u) = (self.clone(), url.to_string());
        let spawned = std::thread::Builder::new().name("packman-prefetch".into()).spawn(move || {
            let got = me.inner.fetch(&u, max_len);
            let mut t = me.lock();
            t.running -= 1;
            if t.generation == generation {
                if let Some(e) = t.entries.get_mut(&u) {
                    *e = Entry::Done(got);
                }
            }
            drop(t);
            me.done.notify_all();
        });
        if spawned.is_err() {
            // No thread: forget it, the updater fetches for itself.
            let mut t = self.lock();
            t.running -= 1;
            t.entries.remove(url);
            t.order.retain(|u| u != url);
            return Start::Full;
        }
        Start::Started
    }

    /// Whether `url` is fetched (not still running) or not in the table.
    pub(crate) fn is_done(&self, url: &str) -> bool {
        !matches!(self.lock().entries.get(url), Some(Entry::Running))
    }

    /// Waits until the fetch of `url` (if any) has finished.
    pub(crate) fn wait(&self, url: &str) {
        let t = self.lock();
        let _t = self
            .done
            .wait_timeout_while(t, WAIT_AT_MOST, |t| matches!(t.entries.get(url), Some(Entry::Running)))
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Forgets every prefetched file (at a refresh).
    pub(crate) fn clear(&self) {
        let mut t = self.lock();
        t.generation += 1;
        t.entries.clear();
        t.order.clear();
        drop(t);
        self.done.notify_all();
    }

    /// How many URLs are kept (tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.lock().entries.len()
    }

    /// The prefetched result for `url`, taken out of the table (waiting if it is running).
    fn take(&self, url: &str) -> Option<Result<Vec<u8>, FetchError>> {
        let t = self.lock();
        if !t.entries.contains_key(url) {
            return None;
        }
        let mut t = self
            .done
            .wait_timeout_while(t, WAIT_AT_MOST, |t| matches!(t.entries.get(url), Some(Entry::Running)))
            .unwrap_or_else(|e| e.into_inner())
            .0;
        match t.entries.get(url) {
            Some(Entry::Done(_)) => {
                t.order.retain(|u| u != url);
                match t.entries.remove(url) {
                    Some(Entry::Done(r)) => Some(r),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl Transport for Prefetching {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        match self.take(url) {
            Some(Ok(bytes)) if bytes.len() as u64 > max_len => {
                Err(FetchError::TooLarge { url: url.into(), limit: max_len })
            }
            Some(Ok(bytes)) => {
                sink.write_all(&bytes)
                    .map_err(|e| FetchError::Transport { url: url.into(), message: format!("writing: {e}") })?;
                Ok(bytes.len() as u64)
            }
            // The same answer the updater would have got had it fetched a moment earlier.
            Some(Err(e)) => Err(e),
            None => self.inner.fetch_to(url, max_len, sink),
        }
    }

    fn candidates(&self, url: &str) -> Vec<Candidate> {
        self.inner.candidates(url)
    }

    fn report(&self, failure: &MirrorFailure) {
        self.inner.report(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers every URL with its own bytes after `delay`; counts fetches.
    struct Slow {
        delay: Duration,
        fetches: AtomicUsize,
    }

    impl Transport for Slow {
        fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            if url.len() as u64 > max_len {
                return Err(FetchError::TooLarge { url: url.into(), limit: max_len });
            }
            sink.write_all(url.as_bytes()).unwrap();
            Ok(url.len() as u64)
        }
    }

    fn prefetching(delay: Duration) -> (Arc<Slow>, Arc<Prefetching>) {
        let slow = Arc::new(Slow { delay, fetches: AtomicUsize::new(0) });
        let primary = packman_tuf::mirrors::MirrorEntry {
            name: "origin".into(),
            metadata_url: "http://o/metadata/".into(),
            targets_url: "http://o/targets/".into(),
        };
        (slow.clone(), Prefetching::new(Arc::new(FailoverTransport::new(slow, primary))))
    }

    #[test]
    fn hints_are_bounded_and_a_needed_fetch_always_starts() {
        let (slow, p) = prefetching(Duration::from_millis(300));
        let started = (0..100)
            .filter(|i| p.start(&format!("http://o/metadata/1.bins-{i}.json"), 1000, false) == Start::Started)
            .count();
        assert_eq!(started, MAX_RUNNING);
        assert_eq!(p.start("http://o/metadata/1.bins-x.json", 1000, true), Start::Started);
        // The same URL again: not fetched twice.
        assert_eq!(p.start("http://o/metadata/1.bins-x.json", 1000, true), Start::Started);
        p.wait("http://o/metadata/1.bins-x.json");
        assert!(p.is_done("http://o/metadata/1.bins-x.json"));
        let mut buf = Vec::new();
        p.fetch_to("http://o/metadata/1.bins-x.json", 1000, &mut buf).unwrap();
        assert_eq!(buf, b"http://o/metadata/1.bins-x.json");
        // Handed over once: the next fetch goes to the network.
        let before = slow.fetches.load(Ordering::SeqCst);
        p.fetch_to("http://o/metadata/1.bins-x.json", 1000, &mut Vec::new()).unwrap();
        assert_eq!(slow.fetches.load(Ordering::SeqCst), before + 1);
        for i in 0..MAX_RUNNING {
            p.wait(&format!("http://o/metadata/1.bins-{i}.json"));
        }
        assert_eq!(slow.fetches.load(Ordering::SeqCst), MAX_RUNNING + 2);
        // A prefetched file longer than the updater allows is refused as a fetch would be.
        let e = p.fetch_to("http://o/metadata/1.bins-0.json", 5, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn the_table_is_bounded_and_emptied_at_a_refresh() {
        let (slow, p) = prefetching(Duration::ZERO);
        for i in 0..3 * MAX_ENTRIES {
            let url = format!("http://o/metadata/1.bins-{i}.json");
            p.start(&url, 1000, false);
            p.wait(&url);
            assert!(p.kept() <= MAX_ENTRIES);
        }
        assert_eq!(p.kept(), MAX_ENTRIES);
        p.clear();
        assert_eq!(p.kept(), 0);
        let n = slow.fetches.load(Ordering::SeqCst);
        // Not prefetched (any more): fetched now.
        p.fetch_to("http://o/metadata/1.bins-0.json", 1000, &mut Vec::new()).unwrap();
        assert_eq!(slow.fetches.load(Ordering::SeqCst), n + 1);
    }
}
