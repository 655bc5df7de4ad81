//! The progress bars of long downloads, one look for every command (indicatif): drawn on
//! stderr only when it is a terminal, at most a few times a second, cleared when done.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const BYTES: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";

fn style() -> ProgressStyle {
    ProgressStyle::with_template(BYTES)
        // The template is a constant: a typo in it shows in every test run.
        .expect("progress template")
        .progress_chars("#>-")
}

/// stderr if it is a terminal and `on`; else nothing is drawn.
fn target(on: bool) -> ProgressDrawTarget {
    if on && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(5)
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn bar(on: bool, total: u64, msg: String) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(total), target(on)).with_style(style());
    b.set_message(msg);
    b
}

/// One file's download (`packman download`), `on` unless quiet or --json.
pub fn download(on: bool, name: &str, total: u64) -> ProgressBar {
    bar(on, total, name.to_owned())
}

/// A mirror sync's downloads: bytes with rate and ETA, files done of files in the message.
#[derive(Clone)]
pub struct SyncBar {
    bar: ProgressBar,
    files: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SyncBar {
    pub fn new() -> SyncBar {
        // Hidden until the downloads start (the metadata walk before has no sizes to show).
        SyncBar { bar: bar(false, 0, String::new()), files: Default::default(), done: Default::default() }
    }

    fn message(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.bar.set_message(format!("{}/{} files", self.done.load(Relaxed), self.files.load(Relaxed)));
    }

    /// Clears the line (the summary is printed after).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl packman_mirror::SyncProgress for SyncBar {
    fn start(&self, files: usize, bytes: u64) {
        self.files.store(files, std::sync::atomic::Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.message();
        if files > 0 {
            self.bar.reset_elapsed();
            self.bar.set_draw_target(target(true));
            // Redrawn on a timer too, so rate and ETA move while a large file downloads.
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
    }
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }
    fn file_done(&self) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.message();
    }
}
