//! [`BackgroundSync`]: a batch of new files written back to disk while it is being written.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::{Durability, Error, Result};

/// Bytes written between two background syncs [`BackgroundSync::start`] picks.
pub const DEFAULT_EVERY: u64 = 64 << 20;

/// Writes a filesystem's dirty pages to disk on a thread of its own, one `syncfs` each time
/// [`BackgroundSync::wrote`] has been told of `every` more bytes, while a batch of files is
/// being downloaded into it; [`BackgroundSync::finish`] is the batch's closing sync.
///
/// Why not a writeback hint per file (`sync_file_range`): each such call submits its own
/// small I/O, and on a virtual disk each submission is a notification to the host; a
/// `syncfs` submits many files' pages together (benches/README, mirror benchmark, "Writing
/// back in the background"). Why not only one sync at the end: then the whole batch is written back
/// after the downloads instead of during them.
///
/// Errors: the descriptor every sync goes through is opened before the batch starts, so
/// [`BackgroundSync::finish`] reports a writeback error of the filesystem from any time since,
/// even one another process's `syncfs` has consumed already (Linux reports to a descriptor
/// the errors recorded since it was opened; one opened later gets only errors nobody has seen
/// yet); an error of a background sync is kept and reported there too. [`Durability::PerFile`] mode (and platforms without
/// `syncfs`): nothing in the background, and `finish` does nothing: the caller fsyncs each
/// file ([`crate::make_durable`]).
pub struct BackgroundSync {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

struct Shared {
    /// Bytes written since the last sync started (an atomic: [`BackgroundSync::wrote`] is
    /// called once per file from every download thread, and locks only when it crosses the
    /// threshold).
    pending: AtomicU64,
    every: u64,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    stop: bool,
    /// Syncs done so far (the last one included).
    syncs: u64,
    error: Option<std::io::Error>,
}

impl BackgroundSync {
    /// Syncs the filesystem `dir` is on each time `every` more bytes were written
    /// ([`Durability::Syncfs`] mode; otherwise nothing happens in the background).
    pub fn start(mode: Durability, dir: &Path, every: u64) -> Result<BackgroundSync> {
        let shared = Arc::new(Shared {
            pending: AtomicU64::new(0),
            every: every.max(1),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let mut thread = None;
        if mode == Durability::Syncfs {
            let fd = File::open(dir).map_err(|e| Error::new(dir, e))?;
            let s = shared.clone();
            thread = Some(
                std::thread::Builder::new()
                    .name("writeback".into())
                    .spawn(move || run(&s, &fd))
                    .map_err(|e| Error::new(dir, e))?,
            );
        }
        Ok(BackgroundSync { shared, thread, dir: dir.to_path_buf() })
    }

    /// `n` more bytes were written into the filesystem (called from any thread).
    pub fn wrote(&self, n: u64) {
        if self.thread.is_none() {
            return;
        }
        let sh = &self.shared;
        let before = sh.pending.fetch_add(n, Ordering::Relaxed);
        if before < sh.every && before.saturating_add(n) >= sh.every {
            // Under the lock: the thread checks `pending` under it before it waits, so this
            // wakes it whether it is waiting already or about to.
            let _st = lock(&sh.state);
            sh.wake.notify_one();
        }
    }

    /// Ends the batch: in [`Durability::Syncfs`] mode, a last `syncfs` through the
    /// descriptor opened at [`BackgroundSync::start`]. Everything written since is then
    /// durable, or this fails (with the first error any of the syncs met).
    pub fn finish(mut self) -> Result<()> {
        match self.stop() {
            None => Ok(()),
            Some(joined) => {
                joined.unwrap_or_else(|p| std::panic::resume_unwind(p));
                match lock(&self.shared.state).error.take() {
                    Some(e) => Err(Error::new(&self.dir, e)),
                    None => Ok(()),
                }
            }
        }
    }

    /// Tells the thread to make its last sync and end, and waits for it (`None`: no thread).
    fn stop(&mut self) -> Option<std::thread::Result<()>> {
        let thread = self.thread.take()?;
        {
            let mut st = lock(&self.shared.state);
            st.stop = true;
            self.shared.wake.notify_one();
        }
        Some(thread.join())
    }
}

impl Drop for BackgroundSync {
    /// Abandoned (the batch failed): the thread still makes its last sync, then ends.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The thread: a sync whenever `every` bytes are pending, and a last one when told to stop.
fn run(shared: &Shared, fd: &File) {
    let mut st = lock(&shared.state);
    loop {
        while !st.stop && shared.pending.load(Ordering::Relaxed) < shared.every {
            st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let last = st.stop;
        shared.pending.store(0, Ordering::Relaxed);
        drop(st);
        let r = crate::platform::syncfs_fd(fd);
        st = lock(&shared.state);
        st.syncs += 1;
        if let Err(e) = r {
            st.error.get_or_insert(e);
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn syncs(bg: &BackgroundSync) -> u64 {
        lock(&bg.shared.state).syncs
    }

    #[test]
    fn a_sync_starts_once_enough_bytes_are_pending_and_finish_syncs_once_more() {
        let d = tempfile::tempdir().unwrap();
        let bg = BackgroundSync::start(Durability::Syncfs, d.path(), 4096).unwrap();
        let mut f = crate::create_public(&d.path().join("a")).unwrap();
        f.write_all(&[7u8; 3000]).unwrap();
        bg.wrote(3000);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(syncs(&bg), 0, "below the threshold");
        f.write_all(&[7u8; 3000]).unwrap();
        bg.wrote(3000);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while syncs(&bg) == 0 {
            assert!(std::time::Instant::now() < deadline, "no background sync after 6000 bytes");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let shared = bg.shared.clone();
        let r = bg.finish();
        if cfg!(target_os = "linux") {
            r.unwrap();
        } else {
            // syncfs is Linux-only: the error is kept and reported, naming the directory.
            assert_eq!(r.unwrap_err().path, d.path());
        }
        assert!(lock(&shared.state).syncs >= 2, "finish syncs once more");
    }

    #[test]
    fn per_file_mode_runs_nothing_in_the_background() {
        let d = tempfile::tempdir().unwrap();
        let bg = BackgroundSync::start(Durability::PerFile, d.path(), 1).unwrap();
        bg.wrote(1 << 20);
        assert!(bg.thread.is_none());
        assert_eq!(syncs(&bg), 0);
        bg.finish().unwrap();
    }

    #[test]
    fn a_directory_that_is_not_there_is_refused_at_start() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("gone");
        let r = BackgroundSync::start(Durability::Syncfs, &gone, DEFAULT_EVERY);
        assert_eq!(r.err().unwrap().path, gone);
    }

    #[test]
    fn an_abandoned_batch_stops_its_thread() {
        let d = tempfile::tempdir().unwrap();
        let bg = BackgroundSync::start(Durability::detect(), d.path(), 1).unwrap();
        bg.wrote(10);
        drop(bg);
    }
}
