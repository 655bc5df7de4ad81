//! Bounded fetching. Every fetch has a byte cap (no endless data) and a minimum average speed
//! after a grace period plus a per-read stall timeout (no slow retrieval). One ureq agent,
//! so connections are pooled across all requests of an updater.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

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

pub struct Fetcher {
    agent: ureq::Agent,
    config: FetcherConfig,
}

impl Fetcher {
    pub fn new(config: FetcherConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .user_agent(config.user_agent.as_str())
            .max_redirects(5)
            .build()
            .into();
        Fetcher { agent, config }
    }

    /// Fetches `url` into memory, refusing more than `max_len` bytes.
    pub fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut buf = Vec::new();
        self.fetch_to(url, max_len, &mut buf)?;
        Ok(buf)
    }

    /// Streams `url` into `sink`, refusing more than `max_len` bytes; returns the byte count.
    pub fn fetch_to(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
            let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => FetchError::NotFound { url: url.into(), status: 404 },
                _ => FetchError::Transport { url: url.into(), message: e.to_string() },
            })?;
            return self.copy_bounded(url, file, max_len, sink);
        }
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
        self.copy_bounded(url, reader, max_len, sink)
    }

    fn copy_bounded(&self, url: &str, mut r: impl Read, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let start = Instant::now();
        let mut total: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FetchError::Transport { url: url.into(), message: e.to_string() }),
            };
            total += n as u64;
            if total > max_len {
                return Err(FetchError::TooLarge { url: url.into(), limit: max_len });
            }
            sink.write_all(&buf[..n])
                .map_err(|e| FetchError::Transport { url: url.into(), message: format!("writing: {e}") })?;
            let elapsed = start.elapsed();
            if elapsed > self.config.grace {
                let rate = total as f64 / elapsed.as_secs_f64();
                if rate < self.config.min_bytes_per_sec as f64 {
                    return Err(FetchError::TooSlow {
                        url: url.into(),
                        received: total,
                        secs: elapsed.as_secs_f64(),
                        min_bytes_per_sec: self.config.min_bytes_per_sec,
                    });
                }
            }
        }
    }
}
