//! The HTTP side: hyper, one blocking task per request, nothing else to decide.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use packman_server::Body;
use tokio::net::TcpListener;

use crate::{Proxy, ProxyError, Reply, ReplyBody};

/// Headers of a request must arrive within this; also the keep-alive idle limit.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `listener` until `shutdown` completes. Needs a multi-threaded runtime.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("packman proxy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(respond(proxy, req).await) }
        });
        let builder = builder.clone();
        tokio::spawn(async move {
            // Errors are clients leaving or misbehaving: drop the connection.
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn respond<B>(proxy: Arc<Proxy>, req: Request<B>) -> Response<Body> {
    let head = *req.method() == Method::HEAD;
    if *req.method() != Method::GET && !head {
        let mut r = packman_server::text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_string();
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let reply = match tokio::task::spawn_blocking(move || proxy.handle(&path, accept.as_deref())).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("packman proxy: request failed: {e}");
            return packman_server::text(StatusCode::INTERNAL_SERVER_ERROR, "packman: the request failed\n");
        }
    };
    response(reply, head)
}

fn response(reply: Reply, head: bool) -> Response<Body> {
    let len = reply.len();
    let mut b = Response::builder()
        .status(reply.status)
        .header(header::CONTENT_TYPE, reply.content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::SERVER, "packman-proxy")
        .header("x-content-type-options", "nosniff");
    b = match (reply.status, &reply.body) {
        // Pages change with each publication: always ask again. Files never change under
        // their name, but a trust ring can: keep them a short while only.
        (200, ReplyBody::File(..)) => b.header(header::CACHE_CONTROL, "max-age=600"),
        (200, _) => b.header(header::CACHE_CONTROL, "no-cache"),
        _ => b.header(header::CACHE_CONTROL, "no-store"),
    };
    if reply.negotiated {
        b = b.header(header::VARY, "Accept");
    }
    if let Some(location) = reply.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
        b = b.header(header::LOCATION, location);
    }
    let body = match reply.body {
        _ if head => Body::empty(),
        ReplyBody::Bytes(bytes) => Body::bytes(bytes),
        ReplyBody::File(file, len) => Body::stream(file, 0, len),
    };
    b.body(body).expect("valid response")
}

/// A proxy serving on a thread (and runtime) of its own, until [`Running::stop`] or drop:
/// what `packman install` and the tests use.
pub struct Running {
    addr: SocketAddr,
    proxy: Arc<Proxy>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn start(proxy: Arc<Proxy>, listener: std::net::TcpListener) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let p = proxy.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                serve(p, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Ok(Running { addr, proxy, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/simple/`: the index URL to give pip or uv.
    pub fn index_url(&self) -> String {
        format!("http://{}/simple/", self.addr)
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    pub fn stop(mut self) -> std::io::Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(std::io::Error::other("proxy thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// Binds `addr` and serves until SIGINT or SIGTERM; `on_ready` gets the bound address.
pub fn run(proxy: Arc<Proxy>, addr: &str, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ProxyError> {
    let io = |e: std::io::Error| ProxyError::Io { path: "packman proxy".into(), source: e };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(io)?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr: addr.to_string(), source })?;
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io)?;
        on_ready(listener.local_addr().map_err(io)?);
        let shutdown = async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        };
        serve(proxy, listener, shutdown).await.map_err(io)
    })
}
