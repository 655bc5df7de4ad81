//! `packman serve`: a read-only HTTP server for a repository or mirror directory.
//!
//! It serves `metadata/` and `targets/` as the TUF layout says, and the Python simple API
//! (`/simple/`, PEP 691 content negotiation) from the signed pages the publisher wrote; it
//! never makes up a page. Clients verify everything they get, so the server's job is to be
//! fast, cache-friendly and hard to abuse: bounded connections, header size and read timeouts,
//! a write timeout for clients that stop reading, no directory listings, nothing outside
//! `metadata/` and `targets/`.

mod access_log;
pub mod browse;
mod files;
mod handler;
mod negotiate;
mod resolve;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

pub use access_log::AccessLog;
pub use files::Body;
pub use handler::{content_type, text};
pub use negotiate::{accepts_gzip, page_format, PageFormat, ACCEPTABLE};
pub use resolve::{resolve, resolve_browse, Browse, Resolved};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{dir}: not a repository or mirror directory (it has neither metadata/ nor targets/)")]
    NotARepository { dir: PathBuf },
    #[error("{dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("server failed: {0}")]
    Io(#[from] io::Error),
}

/// Limits and knobs; `Config::new(dir)` gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this (slowloris); also the keep-alive idle limit.
    pub header_timeout: Duration,
    /// A write to a client that stops reading fails after this.
    pub write_timeout: Duration,
    /// Longest time a request may spend before its response starts.
    pub request_timeout: Duration,
    /// Request head size limit (the request is refused with 431 beyond it).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Memory for cached file contents, and the largest file cached.
    pub cache_bytes: u64,
    pub max_cached_file: u64,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            cache_bytes: 256 << 20,
            max_cached_file: 16 << 20,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Checks that `dir` looks like a repository or mirror before serving it.
pub fn check_root(dir: &std::path::Path) -> Result<PathBuf, ServeError> {
    let dir = dir.canonicalize().map_err(|source| ServeError::Dir { dir: dir.into(), source })?;
    if !dir.join(packman_tuf::layout::METADATA_DIR).is_dir() && !dir.join(packman_tuf::layout::TARGETS_DIR).is_dir() {
        return Err(ServeError::NotARepository { dir });
    }
    Ok(dir)
}

/// Serves until `shutdown` completes, then stops accepting and waits up to
/// `config.shutdown_grace` for requests in flight. Runs on either runtime flavour (file reads
/// go to the blocking pool).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    log: AccessLog,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let handler = Arc::new(handler::Handler::new(
        config.root.clone(),
        files::FileCache::new(config.cache_bytes, config.max_cached_file),
    ));
    let log = Arc::new(log);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    log.error(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let log = log.clone();
        let request_timeout = config.request_timeout;
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let log = log.clone();
            async move {
                let started = Instant::now();
                let response = match tokio::time::timeout(request_timeout, handler.handle(&req)).await {
                    Ok(r) => r,
                    Err(_) => handler::text(hyper::StatusCode::SERVICE_UNAVAILABLE, "request took too long\n"),
                };
                log.request(peer, &req, &response, started.elapsed());
                Ok::<_, Infallible>(response)
            }
        });
        let watcher = graceful.watcher();
        let mut closing = closing_rx.clone();
        let builder = builder.clone();
        let (header_timeout, write_timeout) = (config.header_timeout, config.write_timeout);
        tokio::spawn(async move {
            let _permit = permit;
            // hyper allocates its buffers (~16 KiB) as soon as it polls a connection: wait
            // until the client sends something, so that a flood of silent connections costs
            // little memory. Silence past the header timeout ends the connection as hyper would.
            let mut first = [0u8; 1];
            tokio::select! {
                r = stream.peek(&mut first) => if !matches!(r, Ok(n) if n > 0) { return },
                () = tokio::time::sleep(header_timeout) => return,
                _ = closing.changed() => return,
            }
            let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
            // Errors here are clients misbehaving or leaving (timeouts, resets, bad requests
            // hyper already answered): nothing to do but drop the connection.
            let _ = Box::pin(watcher.watch(builder.serve_connection(io, service))).await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.shutdown_grace) => {
            log.error("shutdown: connections still open after the grace period, closing them");
        }
    }
    Ok(())
}

/// A server on a thread (and runtime) of its own, for the demo and tests: serves `listener`
/// until [`Background::stop`] or drop.
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Background {
    pub fn start(listener: std::net::TcpListener, config: Config, log: AccessLog) -> Result<Background, ServeError> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                serve(listener, config, log, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Ok(Background { addr, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for requests in flight (up to the grace period) and returns
    /// how serving ended.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("server thread panicked").into())),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// Binds `addr`, serves until SIGINT or SIGTERM. `on_ready` gets the bound address (port 0
/// picks a free port) once the server accepts connections.
pub fn run(addr: &str, config: Config, log: AccessLog, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    raise_fd_limit(config.max_connections as u64 + 256, &log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr: addr.to_string(), source })?;
        // Handlers first, so a signal sent as soon as the address is printed is not fatal.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        on_ready(listener.local_addr()?);
        let shutdown = async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        };
        serve(listener, config, log, shutdown).await
    })
}

/// Each connection is a file descriptor, and the usual soft limit (1024) is below the default
/// `max_connections`: raise it toward the hard limit, as nginx's `worker_rlimit_nofile` does,
/// and say so when the hard limit is lower than asked (accepts would then fail and back off).
#[cfg(unix)]
fn raise_fd_limit(want: u64, log: &AccessLog) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= want {
        return;
    }
    let hard = current.maximum.unwrap_or(u64::MAX);
    let target = want.min(hard);
    if target > soft && setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: current.maximum }).is_err()
    {
        log.error(&format!("could not raise the open-file limit from {soft}"));
        return;
    }
    if target < want {
        log.error(&format!(
            "open-file limit {target} is below --max-connections + 256 ({want}): raise the hard limit or lower --max-connections"
        ));
    }
}

/// Elsewhere (Windows) sockets are not bound by an open-file limit.
#[cfg(not(unix))]
fn raise_fd_limit(_want: u64, _log: &AccessLog) {}

/// A TCP stream whose writes fail after `timeout` without progress, so a client that stops
/// reading cannot pin a connection (and its buffers) forever.
struct WriteTimeout {
    inner: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    fn new(inner: TcpStream, timeout: Duration) -> WriteTimeout {
        WriteTimeout { inner, timeout, stalled: None }
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
