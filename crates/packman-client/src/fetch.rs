//! Bounded fetching over HTTP. Every fetch has a byte cap (no endless data) and a minimum
//! average speed after a grace period plus a per-read stall timeout (no slow retrieval). One
//! ureq agent per [`HttpTransport`], so connections are pooled across all its requests.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::transport::Transport;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 403 or 404: the file is not there (ends a root rotation walk).
    #[error("{url}: not found (HTTP {status})")]
    NotFound { url: String, status: u16 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: more than the allowed {limit} bytes (endless data attack?)")]
    TooLarge { url: String, limit: u64 },
    #[error(
        "{url}: {received} bytes in {secs:.1} s is below the minimum {min_bytes_per_sec} B/s (slow retrieval attack?)"
    )]
    TooSlow { url: String, received: u64, secs: f64, min_bytes_per_sec: u64 },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: unsupported URL scheme")]
    UnsupportedScheme { url: String },
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::NotFound { .. })
    }
}

#[derive(Debug, Clone)]
pub struct FetcherConfig {
    pub connect_timeout: Duration,
    /// Longest wait for any single read (a server that stops sending).
    pub read_timeout: Duration,
    /// Average speed every transfer must keep up after `grace`.
    pub min_bytes_per_sec: u64,
    pub grace: Duration,
    pub user_agent: String,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        FetcherConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            min_bytes_per_sec: 4096,
            grace: Duration::from_secs(4),
            user_agent: concat!("packman/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// `http://` and `https://` through one pooled ureq agent. Other schemes are refused with
/// [`FetchError::UnsupportedScheme`].
pub struct HttpTransport {
    agent: ureq::Agent,
    config: FetcherConfig,
}

impl HttpTransport {
    pub fn new(config: FetcherConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .user_agent(config.user_agent.as_str())
            .max_redirects(5)
            // Enough idle connections for parallel downloads from one host (a mirror sync's
            // --jobs, the proxy's fetches) to reuse theirs: ureq keeps 3 per host by
            // default, and a sync on 8 threads opened a new connection every 6 files.
            .max_idle_connections(64)
            .max_idle_connections_per_host(32)
            .build()
            .into();
        HttpTransport { agent, config }
    }
}

impl Transport for HttpTransport {
    fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::UnsupportedScheme { url: url.into() });
        }
        let transport = |e: ureq::Error| FetchError::Transport { url: url.into(), message: e.to_string() };
        let resp = self.agent.get(url).call().map_err(transport)?;
        let status = resp.status().as_u16();
        if status == 403 || status == 404 {
            return Err(FetchError::NotFound { url: url.into(), status });
        }
        if status != 200 {
            return Err(FetchError::Status { url: url.into(), status });
        }
        let declared = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLarge { url: url.into(), limit: max_len });
        }
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        copy_bounded(&self.config, url, reader, max_len, sink)
    }
}

/// Copies `r` into `sink`, refusing more than `max_len` bytes and an average speed below
/// `config.min_bytes_per_sec` once `config.grace` has passed. The sink gets whole 64 KiB
/// blocks (and the rest at the end): a file written at page-aligned offsets in whole pages
/// is not zero-filled page by page first (`perf` of a mirror sync: 2.4% of its CPU).
/// Both limits are checked after every read, however little it brought.
pub(crate) fn copy_bounded(
    config: &FetcherConfig,
    url: &str,
    mut r: impl Read,
    max_len: u64,
    sink: &mut dyn Write,
) -> Result<u64, FetchError> {
    let start = Instant::now();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let write = |sink: &mut dyn Write, bytes: &[u8]| {
        sink.write_all(bytes).map_err(|e| FetchError::Transport { url: url.into(), message: format!("writing: {e}") })
    };
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) => {
                write(sink, &buf[..filled])?;
                return Ok(total);
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FetchError::Transport { url: url.into(), message: e.to_string() }),
        };
        total += n as u64;
        if total > max_len {
            return Err(FetchError::TooLarge { url: url.into(), limit: max_len });
        }
        filled += n;
        if filled == buf.len() {
            write(sink, &buf)?;
            filled = 0;
        }
        let elapsed = start.elapsed();
        if elapsed > config.grace {
            let rate = total as f64 / elapsed.as_secs_f64();
            if rate < config.min_bytes_per_sec as f64 {
                return Err(FetchError::TooSlow {
                    url: url.into(),
                    received: total,
                    secs: elapsed.as_secs_f64(),
                    min_bytes_per_sec: config.min_bytes_per_sec,
                });
            }
        }
    }
}
