//! A plain HTTP/1.1 GET over std's TcpStream, shared by the adapters (included with
//! `#[path]`): the servers under test are `packman serve` on 127.0.0.1, so an HTTP client
//! stack (and its TLS) would only lengthen CI's build. Bounded: `max` bytes, 30 s timeouts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The body of `url` (`http://host:port/path`), `Ok(None)` on 404/403, `Err` on anything else
/// or on a body longer than `max`.
pub fn get(url: &str, max: u64) -> Result<Option<Vec<u8>>, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// is supported"))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    // Headers are small; the cap leaves room for them.
    s.take(max + 64 * 1024).read_to_end(&mut raw).map_err(|e| format!("{url}: {e}"))?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("{url}: no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status: u16 =
        head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or(format!("{url}: bad status"))?;
    let body = raw[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Err(format!("{url}: chunked bodies are not supported"));
    }
    match status {
        200 if body.len() as u64 <= max => Ok(Some(body)),
        200 => Err(format!("{url}: longer than {max} bytes")),
        403 | 404 => Ok(None),
        _ => Err(format!("{url}: HTTP {status}")),
    }
}
