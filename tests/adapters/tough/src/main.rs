//! `tough-adapter METADATA_URL TARGETS_URL ROOT_JSON OUT_DIR TARGET...`: loads the repository
//! with tough 0.24 (which verifies every role, delegated ones included, on load) and saves
//! each target, verified, under OUT_DIR. Exit 0: all saved; 2: a target is not found;
//! 1: any other error (the message is tough's).

#[path = "../../http_get.rs"]
mod http_get;

use futures::stream;
use tough::{RepositoryLoader, TargetName, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

#[derive(Debug, Clone)]
struct Http {
    /// The targets base URL, ending in '/'.
    targets: String,
}

impl Http {
    /// tough names a consistent-snapshot target `HASH.dir/name` (the hash before the whole
    /// path); python-tuf, go-tuf, sigstore-tuf and packman publish and fetch `dir/HASH.name`
    /// (the hash before the file name). Mapped here so that the test is about how tough reads
    /// metadata; tough still checks the length and sha256 of what it gets.
    fn target_url(&self, url: &str) -> String {
        let Some(rest) = url.strip_prefix(&self.targets) else { return url.to_string() };
        let Some((hash, path)) = rest.split_once('.') else { return url.to_string() };
        match path.rsplit_once('/') {
            Some((dir, name)) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("{}{dir}/{hash}.{name}", self.targets)
            }
            _ => url.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Http {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        match http_get::get(&self.target_url(url.as_str()), 1 << 30) {
            Ok(Some(body)) => Ok(Box::pin(stream::iter([Ok(bytes::Bytes::from(body))]))),
            Ok(None) => Err(TransportError::new(TransportErrorKind::FileNotFound, url)),
            Err(e) => Err(TransportError::new_with_cause(TransportErrorKind::Other, url, e)),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: tough-adapter METADATA_URL TARGETS_URL ROOT_JSON OUT_DIR TARGET...");
        std::process::exit(64);
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    std::process::exit(rt.block_on(run(&args)));
}

async fn run(args: &[String]) -> i32 {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("tough: {what}: {e}");
        1
    };
    let root = match std::fs::read(&args[3]) {
        Ok(r) => r,
        Err(e) => return fail(&args[3], &e),
    };
    let (md, tg) = match (Url::parse(&args[1]), Url::parse(&args[2])) {
        (Ok(m), Ok(t)) => (m, t),
        _ => return fail("urls", &"not URLs"),
    };
    let http = Http { targets: tg.to_string() };
    let repo = match RepositoryLoader::new(&root, md, tg).transport(http).load().await {
        Ok(r) => r,
        Err(e) => return fail("loading the repository", &e),
    };
    let out = std::path::Path::new(&args[4]);
    for t in &args[5..] {
        let name = match TargetName::new(t.as_str()) {
            Ok(n) => n,
            Err(e) => return fail(t, &e),
        };
        let stream = match repo.read_target(&name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                eprintln!("tough: target {t} not found");
                return 2;
            }
            Err(e) => return fail(t, &e),
        };
        use tough::IntoVec;
        let bytes = match stream.into_vec().await {
            Ok(b) => b,
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
