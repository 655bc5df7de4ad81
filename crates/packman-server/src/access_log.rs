//! Structured access log: one JSON object per line, written by a thread of its own so that a
//! slow log destination never stalls a request. If the log falls more than 64k lines behind,
//! lines are dropped and the count of dropped lines is reported with the next line written.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hyper::{header, Request, Response};

use crate::files::Body;

pub struct AccessLog {
    tx: Option<SyncSender<String>>,
    dropped: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// No access log; errors still go to stderr.
    pub fn off() -> AccessLog {
        AccessLog { tx: None, dropped: AtomicU64::new(0), writer: Mutex::new(None) }
    }

    pub fn to_writer(mut out: Box<dyn Write + Send>) -> AccessLog {
        let (tx, rx) = sync_channel::<String>(65536);
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    // Write what is queued, then flush once.
                    while let Ok(line) = rx.try_recv() {
                        let _ = out.write_all(line.as_bytes());
                    }
                    let _ = out.flush();
                }
            })
            .expect("spawn access log thread");
        AccessLog { tx: Some(tx), dropped: AtomicU64::new(0), writer: Mutex::new(Some(writer)) }
    }

    fn send(&self, mut value: serde_json::Value) {
        let Some(tx) = &self.tx else { return };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            value["dropped_before"] = dropped.into();
        }
        let mut line = value.to_string();
        line.push('\n');
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    pub fn request<B>(&self, peer: SocketAddr, req: &Request<B>, resp: &Response<Body>, elapsed: Duration) {
        if self.tx.is_none() {
            return;
        }
        let header = |h| req.headers().get(h).and_then(|v| v.to_str().ok()).map(|s| truncate(s, 256));
        let bytes = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
        self.send(serde_json::json!({
            "ts": unix_time(),
            "peer": peer.to_string(),
            "method": req.method().as_str(),
            "path": truncate(req.uri().path(), 1024),
            "status": resp.status().as_u16(),
            "bytes": bytes,
            "us": elapsed.as_micros() as u64,
            "ua": header(header::USER_AGENT),
            "range": header(header::RANGE),
        }));
    }

    pub fn error(&self, message: &str) {
        if self.tx.is_none() {
            eprintln!("packman serve: {message}");
            return;
        }
        self.send(serde_json::json!({ "ts": unix_time(), "error": message }));
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // Close the channel, then let the writer drain it.
        self.tx = None;
        if let Some(writer) = self.writer.get_mut().ok().and_then(Option::take) {
            let _ = writer.join();
        }
    }
}

fn unix_time() -> f64 {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (t.as_millis() as f64) / 1000.0
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
