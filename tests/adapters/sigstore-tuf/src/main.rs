//! `sigstore-tuf-adapter METADATA_URL TARGETS_URL ROOT_JSON OUT_DIR TARGET...`: refreshes with
//! sigstore-tuf 0.15 and downloads each target (found by its delegation search, verified
//! against its length and hashes) under OUT_DIR. Exit 0: all saved; 2: a target is not
//! found; 1: any other error (the message is sigstore-tuf's).

#[path = "../../http_get.rs"]
mod http_get;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{Error, Repository, Updater};

struct Http {
    metadata: String,
    targets: String,
}

fn fetch(base: &str, name: &str, max: u64) -> FetchFuture<'static> {
    let url = format!("{}/{}", base.trim_end_matches('/'), name);
    Box::pin(std::future::ready(http_get::get(&url, max).map_err(Error::transport)))
}

impl Repository for Http {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        fetch(&self.metadata, name, max_length)
    }
    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        fetch(&self.targets, path, max_length)
    }
}

/// Runs a future whose I/O is all blocking (the transport above): one poll loop, parked
/// between wakes, instead of an async runtime dependency.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: sigstore-tuf-adapter METADATA_URL TARGETS_URL ROOT_JSON OUT_DIR TARGET...");
        std::process::exit(64);
    }
    std::process::exit(block_on(run(&args)));
}

async fn run(args: &[String]) -> i32 {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("sigstore-tuf: {what}: {e}");
        1
    };
    let root = match std::fs::read(&args[3]) {
        Ok(r) => r,
        Err(e) => return fail(&args[3], &e),
    };
    let repo = Http { metadata: args[1].clone(), targets: args[2].clone() };
    let mut updater = match Updater::new(repo, &root) {
        Ok(u) => u,
        Err(e) => return fail("root", &e),
    };
    if let Err(e) = updater.refresh(jiff::Timestamp::now()).await {
        return fail("refresh", &e);
    }
    let out = std::path::Path::new(&args[4]);
    for t in &args[5..] {
        let bytes = match updater.get_target(t, jiff::Timestamp::now()).await {
            Ok(b) => b,
            Err(Error::TargetNotFound(_)) => {
                eprintln!("sigstore-tuf: target {t} not found");
                return 2;
            }
            Err(e) => return fail(t, &e),
        };
        let dest = out.join(t);
        if let Err(e) = std::fs::create_dir_all(dest.parent().expect("under OUT_DIR")) {
            return fail(t, &e);
        }
        if let Err(e) = std::fs::write(&dest, bytes) {
            return fail(t, &e);
        }
        println!("{t}");
    }
    0
}
